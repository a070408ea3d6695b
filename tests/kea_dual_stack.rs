//! Dual-stack BMCs: each leases from kea-dhcp4 and from kea-dhcp6 with the
//! same MAC, answers Redfish on both addresses with the same serial, and
//! ends as one NetBox device whose BMC interface holds both addresses;
//! `oob_ip` is the IPv4 one (`netbox.oob-ip-family` left at its default)
//! whichever daemon's hook registered a BMC first (half of them each way).
//! A second round of both daemons changes nothing in NetBox.
//!
//! Each daemon runs the hook with its own state file; they meet only in
//! NetBox. kea-dhcp4 runs on loopback addresses (Net block 91), kea-dhcp6
//! in namespaces of its own (`bmcds-*`, fd00:91::/48) and reaches NetBox
//! through a forwarder; one emulator answers every BMC on its IPv4 address
//! here and on its IPv6 address in the clients' namespace. Host
//! reservations tie each MAC to its two addresses, so that the emulator's
//! BMC on both is the same one.
//!
//! Needs root, kea-dhcp4, kea-dhcp6, perfdhcp and the tests' NetBox.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bmc_test_support::discovery::{self, handled, pool_addr, redfish_params, settled, PASS};
use bmc_test_support::emulator::{nth_addr, Emulator};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::kea6::{self, Net6};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::proxy::Proxy;
use bmc_test_support::{perfdhcp, TempDir};
use serde_json::{json, Value};

const BMCS: u32 = 20;
const BASE_MAC: &str = "14:18:77:91:00:00";

fn mac(i: u32) -> String {
    format!("14:18:77:91:00:{i:02x}")
}

/// Waits until `kea`'s hook has registered `n` BMCs (a registration this
/// machine's NetBox answers too slowly is retried).
fn registered(kea: &Kea, n: u64) -> Value {
    let start = Instant::now();
    let mut status = kea.bmc_status();
    while status["bmcs"]["registered"].as_u64() < Some(n)
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
        status = kea.bmc_status();
    }
    assert_eq!(
        status["bmcs"]["registered"],
        n,
        "{status}\n{}",
        kea.log_tail(30)
    );
    status
}

/// How many changes NetBox has recorded (every write is one).
fn object_changes(client: &dhcp_bmc_discovery::netbox::NetBox) -> u64 {
    client.get("/api/core/object-changes/?limit=1").unwrap()["count"]
        .as_u64()
        .expect("object-changes count")
}

/// Every registration that found the device up to date, in a Kea log.
fn up_to_date(kea: &Kea) -> usize {
    kea.log().matches("is up to date").count()
}

#[test]
fn a_dual_stack_bmc_is_one_device_with_both_addresses() {
    let (_guard, nb) = netbox();
    reset();
    let started = Instant::now();
    let net4 = Net::new(91);
    let net6 = Net6::named(91, "bmcds", "fd00:91");
    net6.add_bmc_addresses(BMCS);
    // BMC i: 127.1.0.(10+i) here, fd00:91:1::(10+i) in the clients'
    // namespace, one serial.
    let mut emu = Emulator::start(0);
    emu.also_in_netns(&net6.client_ns);
    emu.add_fleet(pool_addr(0), BMCS, &Default::default(), |_| PASS);
    let v6 = |i: u32| net6.pool_addr(1, i);
    for i in 0..BMCS {
        emu.alias(nth_addr(IpAddr::V4(pool_addr(0)), i), IpAddr::V6(v6(i)));
    }
    let token = |dir: &TempDir| {
        let file = dir.path().join("netbox-token");
        std::fs::write(&file, format!("{}\n", nb.token)).unwrap();
        file
    };

    let dir4 = TempDir::new("dual-stack-4");
    let params4 = json!({
        "workers": 4,
        "redfish": redfish_params(dir4.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token(&dir4), "create-missing": true},
        "retry-backoff-s": 1,
    });
    let mut cfg4 = config(net4, dir4.path(), &[hook(params4)], "INFO");
    cfg4["Dhcp4"]["subnet4"][0]["reservations"] = (0..BMCS)
        .map(|i| json!({"hw-address": mac(i), "ip-address": nth_addr(IpAddr::V4(pool_addr(0)), i).to_string()}))
        .collect();

    let upstream = nb.socket_addr();
    let proxy = Proxy::start_in_netns(upstream, &net6.kea_ns);
    let dir6 = TempDir::new("dual-stack-6");
    let params6 = json!({
        "workers": 4,
        "redfish": redfish_params(dir6.path(), &emu, PASS),
        "netbox": {"url": format!("http://127.0.0.1:{}", proxy.port),
                   "token-file": token(&dir6), "create-missing": true},
        "retry-backoff-s": 1,
    });
    let mut cfg6 = kea6::config(&net6, dir6.path(), &[hook(params6)], "INFO");
    cfg6["Dhcp6"]["subnet6"][0]["reservations"] = (0..BMCS)
        .map(|i| {
            let duid = format!("00:03:00:01:{}", mac(i));
            json!({"duid": duid, "ip-addresses": [v6(i).to_string()]})
        })
        .collect();

    // Both orders: BMCs 0..10 lease IPv4 first (kea-dhcp6's hook then
    // finds their devices and must leave oob_ip the IPv4 address), BMCs
    // 10..20 IPv6 first (their oob_ip is the IPv6 address until
    // kea-dhcp4's hook registers them). perfdhcp's clients count up from
    // the base MAC, so the first 10 of 20 are the 10 of the first run.
    let kea4 = Kea::start(&dir4, &cfg4);
    let kea6 = kea6::start(&dir6, &net6, &cfg6);
    let half = BMCS / 2;
    let run = perfdhcp::avalanche(net4, &net4.relay_bmc(), half as usize, BASE_MAC);
    assert!(run.success, "perfdhcp -4 failed:\n{}", run.output);
    registered(&kea4, u64::from(half));
    let run = kea6::avalanche(&net6, &net6.relay_bmc(), BMCS as usize, BASE_MAC);
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);
    settled(&kea6, u64::from(BMCS));
    registered(&kea6, u64::from(BMCS));
    let run = perfdhcp::avalanche(net4, &net4.relay_bmc(), BMCS as usize, BASE_MAC);
    assert!(run.success, "perfdhcp -4 failed:\n{}", run.output);
    registered(&kea4, u64::from(BMCS));
    settled(&kea4, u64::from(BMCS));
    let first_round = started.elapsed();

    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    let logs = || format!("{}\n{}", kea4.log_tail(20), kea6.log_tail(20));
    assert_eq!(devices.len(), BMCS as usize, "{}", logs());
    let leases4 = discovery::leases(&kea4);
    let leases6: BTreeMap<String, String> = kea6::leases(&kea6)
        .into_iter()
        .map(|(addr, hw, _)| (hw, addr))
        .collect();
    for i in 0..BMCS {
        let ip4 = nth_addr(IpAddr::V4(pool_addr(0)), i).to_string();
        let ip6 = v6(i).to_string();
        assert_eq!(leases4.get(&ip4), Some(&mac(i)), "{ip4}: {leases4:?}");
        assert_eq!(leases6.get(&mac(i)), Some(&ip6), "{}: {leases6:?}", mac(i));
        let macs = client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={}", mac(i)))
            .unwrap();
        assert_eq!(macs.len(), 1, "{}: {macs:?}", mac(i));
        let iface = macs[0]["assigned_object"]["id"].as_u64().unwrap();
        let dev_id = macs[0]["assigned_object"]["device"]["id"].as_u64().unwrap();
        let mut on_iface: Vec<String> = client
            .list(&format!("/api/ipam/ip-addresses/?interface_id={iface}"))
            .unwrap()
            .iter()
            .map(|a| a["address"].as_str().unwrap_or("").to_string())
            .collect();
        on_iface.sort();
        let mut want = vec![format!("{ip4}/16"), format!("{ip6}/64")];
        want.sort();
        assert_eq!(on_iface, want, "{}", mac(i));
        let dev = client.get(&format!("/api/dcim/devices/{dev_id}/")).unwrap();
        assert_eq!(dev["oob_ip"]["address"], format!("{ip4}/16"), "{}", mac(i));
        assert!(
            !dev["serial"].as_str().unwrap_or("").is_empty(),
            "{}: {dev}",
            mac(i)
        );
    }

    // Second round: both daemons discover every BMC again; each finds its
    // device as it left it, and NetBox records no change.
    let changes = object_changes(&client);
    let (before4, before6) = (handled(&kea4.bmc_status()), handled(&kea6.bmc_status()));
    let (quiet4, quiet6) = (up_to_date(&kea4), up_to_date(&kea6));
    for i in 0..BMCS {
        for kea in [&kea4, &kea6] {
            let a = kea.command("bmc-discover", Some(json!({ "mac": mac(i) })));
            assert_eq!(a["result"], 0, "{a}");
        }
    }
    settled(&kea4, before4 + u64::from(BMCS));
    settled(&kea6, before6 + u64::from(BMCS));
    assert_eq!(
        (up_to_date(&kea4) - quiet4, up_to_date(&kea6) - quiet6),
        (BMCS as usize, BMCS as usize),
        "every BMC registered again by both, finding nothing to write\n{}",
        logs()
    );
    assert_eq!(object_changes(&client), changes, "{}", logs());
    eprintln!(
        "dual-stack: {BMCS} BMCs registered by both daemons after {:.1} s, second round \
         done after {:.1} s",
        first_round.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
