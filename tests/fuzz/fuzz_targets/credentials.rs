//! The credentials file (JSON text) -> the credential list, and which
//! entries apply to a BMC of each vendor and MAC (known or not).
#![no_main]

use dhcp_bmc_discovery::redfish::credentials::Secret;
use dhcp_bmc_discovery::redfish::Credentials;
use libfuzzer_sys::fuzz_target;

/// Whether the input names a `password_file` (under any JSON spelling of
/// the key): the parser then reads that file, and a fuzzer that finds
/// /dev/zero or a FIFO would hang on the operator's file, not a device's
/// input. Such inputs are left out.
fn names_a_file(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Array(a) => a.iter().any(names_a_file),
        serde_json::Value::Object(m) => m.contains_key("password_file"),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if names_a_file(&v) => return,
        _ => {}
    }
    let Ok(creds) = Credentials::parse(text) else {
        return;
    };
    let hidden = format!("{:?}", Secret::new(String::new()));
    for c in &creds.entries {
        for vendor in [None, Some("dell"), Some("hpe"), Some("lenovo"), Some("")] {
            for mac in [
                None,
                Some("b0:7b:25:d6:51:82"),
                Some("00:00:00:00:00:00"),
                Some("x"),
            ] {
                let _ = c.applies(vendor, mac);
            }
        }
        // A password never shows in what may be logged.
        assert_eq!(format!("{:?}", c.password), hidden);
    }
});
