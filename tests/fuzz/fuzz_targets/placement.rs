//! A hostname (the lease's, or the BMC's own) -> the NetBox device name and
//! the placement the default pattern reads from it, as registration does
//! (`Registration::for_lease`), and the slugs made of site and rack.
#![no_main]

use std::net::Ipv4Addr;

use dhcp_bmc_discovery::netbox::register::Registration;
use dhcp_bmc_discovery::placement::{device_name, slug, PlacementPattern, MAX_DEVICE_NAME};
use dhcp_bmc_discovery::redfish::Inventory;
use libfuzzer_sys::fuzz_target;

fn pattern() -> &'static PlacementPattern {
    static P: std::sync::OnceLock<PlacementPattern> = std::sync::OnceLock::new();
    P.get_or_init(PlacementPattern::default_pattern)
}

fn check_slug(s: &str) {
    let out = slug(s);
    assert!(out.len() <= 100, "slug of {s:?} is {} long", out.len());
    assert!(
        out.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "slug {out:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    // The lease hostname arrives as bytes; the pipeline reads it lossily.
    let lease = String::from_utf8_lossy(data);
    if let Some(name) = device_name(&lease) {
        assert!(name.chars().count() <= MAX_DEVICE_NAME);
        assert!(
            !name.is_empty() && !name.chars().any(char::is_control),
            "{name:?}"
        );
    }
    // The BMC's own hostname takes over when the lease has none.
    let mut inv = Inventory::default();
    inv.bmc.hostname = Some(lease.to_string());
    // Placement from the BMC's own hostname is off by default
    // (netbox.place-by-bmc-hostname): both ways.
    for (lease_name, by_bmc) in [(Some(&*lease), false), (None, false), (None, true)] {
        let reg = Registration::for_lease(
            &inv,
            "b0:7b:25:d6:51:82",
            Ipv4Addr::new(10, 0, 5, 17),
            24,
            lease_name,
            None,
            pattern(),
            by_bmc,
        );
        assert!(reg.name.chars().count() <= MAX_DEVICE_NAME.max(16));
        let p = &reg.placement;
        if let Some(u) = p.position {
            assert!((1..=100).contains(&u), "position {u}");
        }
        if let Some(h) = p.height {
            assert!(
                h >= 1 && p.position.is_some_and(|u| u + h - 1 <= 100),
                "{p:?}"
            );
        }
        for s in [&p.site, &p.rack].into_iter().flatten() {
            check_slug(s);
        }
    }
    check_slug(&lease);
});
