//! BMCs that lease from kea-dhcp6 registered in the real NetBox: each one
//! device whose BMC interface holds its MAC and its IPv6 address (with the
//! subnet6's prefix length), that address the device's oob_ip.
//!
//! Needs root (network namespaces), kea-dhcp6, perfdhcp and the tests'
//! NetBox (bmc_test_support::netbox). Kea runs in a namespace of its own
//! (tests/support/src/kea6.rs) and reaches NetBox through a forwarder
//! listening in there.

use std::net::IpAddr;
use std::time::Duration;

use bmc_test_support::discovery::{redfish_params, settled, PASS};
use bmc_test_support::emulator::Emulator;
use bmc_test_support::kea::hook;
use bmc_test_support::kea6::{self, avalanche, Net6};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::proxy::Proxy;
use bmc_test_support::TempDir;
use serde_json::json;

#[test]
fn ipv6_bmcs_are_registered_with_their_ipv6_address() {
    let (_guard, nb) = netbox();
    reset();
    let bmcs = 10;
    let net = Net6::new(64);
    net.add_bmc_addresses(bmcs);
    let emu = Emulator::start_in_netns(0, &net.client_ns);
    emu.add_fleet(
        IpAddr::V6(net.pool_addr(1, 0)),
        bmcs,
        &Default::default(),
        |_| PASS,
    );
    let upstream = nb.socket_addr();
    let proxy = Proxy::start_in_netns(upstream, &net.kea_ns);
    let dir = TempDir::new("dhcp6-netbox");
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": format!("http://127.0.0.1:{}", proxy.port),
                   "token-file": token_file, "create-missing": true},
        "retry-backoff-s": 1,
    });
    let cfg = kea6::config(&net, dir.path(), &[hook(params)], "INFO");
    let kea = kea6::start(&dir, &net, &cfg);
    let run = avalanche(&net, &net.relay_bmc(), bmcs as usize, "14:18:77:06:40:00");
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);
    settled(&kea, u64::from(bmcs));
    // A registration this machine's NetBox answers too slowly is retried.
    let start = std::time::Instant::now();
    let mut status = kea.bmc_status();
    while status["bmcs"]["registered"].as_u64() < Some(u64::from(bmcs))
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
        status = kea.bmc_status();
    }
    assert_eq!(
        status["bmcs"]["registered"],
        bmcs,
        "{status}\n{}",
        kea.log_tail(30)
    );

    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    assert_eq!(devices.len(), bmcs as usize, "{}", kea.log_tail(30));
    for (addr, mac, subnet) in kea6::leases(&kea) {
        assert_eq!(subnet, 1);
        let ips = client
            .list(&format!("/api/ipam/ip-addresses/?address={addr}"))
            .unwrap();
        assert_eq!(ips.len(), 1, "{addr}: {ips:?}");
        assert_eq!(ips[0]["address"], format!("{addr}/64"));
        assert_eq!(ips[0]["family"]["value"], 6, "{addr}");
        let dev_id = ips[0]["assigned_object"]["device"]["id"].as_u64().unwrap();
        let dev = client.get(&format!("/api/dcim/devices/{dev_id}/")).unwrap();
        assert_eq!(dev["site"]["slug"], "us3", "{addr}");
        assert_eq!(dev["oob_ip"]["address"], format!("{addr}/64"), "{addr}");
        let macs = client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={mac}"))
            .unwrap();
        assert_eq!(macs.len(), 1, "{mac}");
    }
    for l in kea
        .log()
        .lines()
        .filter(|l| l.contains("as NetBox device"))
        .take(2)
    {
        eprintln!("{l}");
    }
}
