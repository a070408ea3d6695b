//! TLS certificate pins inside the real kea-dhcp4: a BMC with a replaced
//! certificate fails until `bmc-retry` with `forget-tls-pin` forgets it.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::time::Duration;

use bmc_test_support::discovery::{
    all_in_state, good_bmcs_on_pool, pool_addr, redfish_params, PASS,
};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

#[test]
fn a_replaced_certificate_fails_until_bmc_retry_forgets_its_pin() {
    let net = Net::new(33);
    let dir = TempDir::new("discovery-tls-pin");
    let emu = good_bmcs_on_pool(2, Duration::ZERO);
    let pins = dir.path().join("tls-pins.json");
    let mut redfish = redfish_params(dir.path(), &emu, PASS);
    redfish["tls-mode"] = json!("pin");
    redfish["tls-pin-file"] = json!(pins);
    redfish.as_object_mut().unwrap().remove("tls-ca-file");
    let params = json!({"workers": 2, "redfish": redfish, "retry-attempts": 1});
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 2, "14:18:77:00:0d:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    all_in_state(&kea, "discovered", 2, Duration::from_secs(60));
    let ip = pool_addr(0).to_string();
    let mac = kea.command("bmc-get", Some(json!({ "ip": ip })))["arguments"]["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = |mac: &str| -> Option<String> {
        let text = std::fs::read_to_string(&pins).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v[mac].as_str().map(str::to_string)
    };
    let first_pin = pinned(&mac).expect("pinned at first discovery");

    // The BMC is replaced (new certificate): it no longer discovers.
    emu.rotate_cert(pool_addr(0));
    let a = kea.command("bmc-discover", Some(json!({ "ip": ip })));
    assert_eq!(a["result"], 0, "{a}");
    let dead = wait_for(
        "the BMC dead on its new certificate",
        Duration::from_secs(30),
        || {
            let b = kea.command("bmc-get", Some(json!({ "ip": ip })))["arguments"].clone();
            (b["state"] == "dead").then_some(b)
        },
    );
    assert_eq!(dead["error-class"], "tls", "{dead}");

    // A bad flag changes nothing; the right one forgets the pin and retries.
    let a = kea.command(
        "bmc-retry",
        Some(json!({"ip": ip, "forget-tls-pin": "yes"})),
    );
    assert_eq!(a["result"], 1, "{a}");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("'forget-tls-pin' must be true or false"),
        "{a}"
    );
    assert_eq!(pinned(&mac).as_deref(), Some(first_pin.as_str()));
    let a = kea.command("bmc-retry", Some(json!({"ip": ip, "forget-tls-pin": true})));
    assert_eq!(a["result"], 0, "{a}");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("TLS certificate forgotten"),
        "{a}"
    );
    wait_for("the BMC discovered again", Duration::from_secs(30), || {
        let b = kea.command("bmc-get", Some(json!({ "ip": ip })));
        (b["arguments"]["state"] == "discovered").then_some(())
    });
    let new_pin = pinned(&mac).expect("the new certificate pinned");
    assert_ne!(new_pin, first_pin);
    // The other BMC's pin was left alone.
    let other = kea.command("bmc-get", Some(json!({ "ip": pool_addr(1).to_string() })));
    assert!(pinned(other["arguments"]["mac"].as_str().unwrap()).is_some());
}
