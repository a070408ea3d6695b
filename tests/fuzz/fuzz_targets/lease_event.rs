//! The fixed C struct the shim copies out of Kea on a packet thread
//! (`bmc_lease_event`: MAC, hostname, option 60, client id, each with a
//! length byte that may lie) -> the event the hook reads: its accessors,
//! the packet-path filter (hostname and option-60 DFAs, OUIs, subnets), the
//! log form, the state file's replayed event, and the name and placement
//! registration makes of it.
#![no_main]

use std::sync::OnceLock;

use dhcp_bmc_discovery::config::Config;
use dhcp_bmc_discovery::intake::filter::Filter;
use dhcp_bmc_discovery::kea::lease::LeaseEvent;
use dhcp_bmc_discovery::netbox::register::Registration;
use dhcp_bmc_discovery::placement::PlacementPattern;
use dhcp_bmc_discovery::redfish::Inventory;
use libfuzzer_sys::fuzz_target;

fn filter() -> &'static Filter {
    static F: OnceLock<Filter> = OnceLock::new();
    F.get_or_init(|| {
        let config = Config::from_json(
            r#"{"subnet-ids": [1, 7, 4294967294],
                "hostname-pattern": "(?i)^(idrac|ilo|xcc|bmc)-",
                "vendor-class-patterns": ["^iDRAC", "(?i)supermicro"],
                "mac-ouis": ["b0:7b:25", "14:18:77"]}"#,
        )
        .expect("the fuzz filter's parameters are valid");
        Filter::new(&config).expect("the fuzz filter compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut ev = LeaseEvent::empty();
    let size = std::mem::size_of_val(&ev.0);
    let n = data.len().min(size);
    // SAFETY: bmc_lease_event is integers and byte arrays only: every bit
    // pattern is a valid value, as it is when the shim fills it.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), std::ptr::addr_of_mut!(ev.0).cast::<u8>(), n);
    }
    assert!(ev.hwaddr().len() <= ev.0.hwaddr.len());
    assert!(ev.hostname().len() <= ev.0.hostname.len());
    assert!(ev.vendor_class().len() <= ev.0.vendor_class.len());
    assert!(ev.client_id().len() <= ev.0.client_id.len());
    let _ = (ev.ip(), ev.subnet_id(), ev.kind(), ev.hwaddr_key());
    let _ = filter().check(None, &ev);
    let _ = format!("{ev:?}");
    let mac = ev.mac_string();
    let hostname = ev.hostname_text();
    // What the state file stores comes back as an event (bmc-discover,
    // retries): the same MAC, and the hostname cut on a char boundary.
    if let Some(again) = LeaseEvent::replay(&mac, ev.ip(), ev.subnet_id(), &hostname) {
        assert_eq!(again.mac_string(), mac);
        assert!(again.hostname().len() <= ev.0.hostname.len());
    }
    static PATTERN: OnceLock<PlacementPattern> = OnceLock::new();
    let inv = Inventory::default();
    let _ = Registration::for_lease(
        &inv,
        &mac,
        ev.ip(),
        24,
        Some(&hostname),
        None,
        PATTERN.get_or_init(PlacementPattern::default_pattern),
        false,
    );
});
