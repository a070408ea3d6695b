//! The hook's parameters as Kea hands them over (JSON text) -> the
//! validated configuration, and what the hook compiles from it at load:
//! the packet-path filter and the placement pattern.
#![no_main]

use dhcp_bmc_discovery::config::Config;
use dhcp_bmc_discovery::intake::filter::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_json(text) else {
        return;
    };
    let _ = Filter::new(&config);
    let _ = format!("{config:?}");
});
