//! Discovered BMCs registered in the real NetBox from inside the real
//! kea-dhcp4: every lease ends one device with its MAC and address (and in
//! the Ansible inventory and on the metrics page), a NetBox outage mid-burst
//! loses and duplicates nothing, registrations take turns oldest lease
//! first, and an address the pool hands from one BMC to another moves
//! between their devices; LLDP neighbours are shown, counted and cabled.
//!
//! Needs root (loopback addresses), kea-dhcp4, perfdhcp and the tests'
//! NetBox (bmc_test_support::netbox): see README.md.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use bmc_test_support::discovery::{
    all_in_state, bmcs_on_pool, count, good_bmcs_on_pool, in_state, leases, pool_addr,
    redfish_params, settled, PASS,
};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::prometheus::{
    monitoring_uses_only_served_metrics, promtool_accepts, sample, scrape,
};
use bmc_test_support::proxy::Proxy;
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

#[test]
fn bmc_leases_end_up_registered_in_netbox() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(24);
    let dir = TempDir::new("discovery-netbox");
    let emu = bmcs_on_pool(60);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let inventory = dir.path().join("inventory");
    std::fs::create_dir(&inventory).unwrap();
    let params = json!({
        "workers": 8,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
        "ansible-inventory-dir": inventory,
        "metrics-listen": format!("{}:19024", net.server()),
        // A registration this machine's NetBox answers too slowly (8 at
        // once on 2 cores) fails netbox-unavailable and is retried; soon.
        "retry-backoff-s": 1,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let n = 20;
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:02:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = settled(&kea, n as u64);
    let leased = leases(&kea);
    let index = |ip: &str| u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
    let good: Vec<(&String, &String)> =
        leased.iter().filter(|(ip, _)| index(ip) % 7 != 3).collect();
    // Every good BMC ends registered, a NetBox timeout's retry included.
    let start = std::time::Instant::now();
    let mut status = status;
    while status["events"]["processed"].as_u64() < Some(good.len() as u64)
        && status["failures"]["netbox-unavailable"].as_u64().is_some()
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
        status = kea.bmc_status();
    }
    assert!(
        status["events"]["processed"].as_u64() >= Some(good.len() as u64),
        "{status}\n{}",
        kea.log_tail(40)
    );

    // Every discovered BMC is one device in site us3 (the subnet's
    // user-context), with its lease's MAC and address.
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    assert_eq!(devices.len(), good.len(), "{}", kea.log_tail(40));
    for (ip, mac) in &good {
        let ips = client
            .list(&format!("/api/ipam/ip-addresses/?address={ip}"))
            .unwrap();
        assert_eq!(ips.len(), 1, "{ip}");
        assert_eq!(ips[0]["address"], format!("{ip}/16"));
        let dev_id = ips[0]["assigned_object"]["device"]["id"].as_u64().unwrap();
        let dev = client.get(&format!("/api/dcim/devices/{dev_id}/")).unwrap();
        assert_eq!(dev["site"]["slug"], "us3", "{ip}");
        assert_eq!(dev["oob_ip"]["address"], format!("{ip}/16"), "{ip}");
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

    // The Ansible inventory: every registered BMC once, in files that
    // yamllint passes and ansible-inventory reads; bmc-inventory says the same.
    let hosts = wait_for("the inventory written", Duration::from_secs(10), || {
        let inv = ansible_inventory(&inventory);
        let hosts = inv["bmc_targets"]["hosts"].as_array().cloned()?;
        (hosts.len() == good.len()).then_some(inv)
    });
    for (ip, _) in &good {
        assert!(
            hosts["_meta"]["hostvars"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v["ansible_host"] == **ip),
            "{ip} missing: {hosts}"
        );
    }
    let a = kea.command("bmc-inventory", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(
        a["arguments"]["bmc_targets"]["hosts"]
            .as_array()
            .map(Vec::len),
        Some(good.len()),
        "{a}"
    );
    let a = kea.command("bmc-inventory", Some(json!({"site": "fra1"})));
    assert_eq!(a["result"], 3, "{a}");
    let a = kea.command("bmc-inventory", Some(json!({"site": 1})));
    assert_eq!(a["result"], 1, "{a}");

    // Prometheus sees the same: a page promtool accepts, carrying every
    // metric the packaged dashboard and alert rules use.
    let url = format!("http://{}:19024/metrics", net.server());
    let page = wait_for(
        "registered BMCs on the metrics page",
        Duration::from_secs(10),
        || {
            let page = scrape(&url)?;
            (sample(&page, "bmc_discovery_bmcs{state=\"registered\"}") == Some(good.len() as f64))
                .then_some(page)
        },
    );
    promtool_accepts(&page);
    assert_eq!(sample(&page, "bmc_discovery_netbox_reachable"), Some(1.0));
    assert_eq!(
        sample::<f64>(&page, "bmc_discovery_netbox_seconds_count"),
        sample(&page, "bmc_discovery_attempts_succeeded_total"),
        "one NetBox registration per successful attempt"
    );
    assert!(
        sample(
            &page,
            "bmc_discovery_attempt_failures_total{class=\"auth\"}"
        ) >= Some(1.0)
    );
    monitoring_uses_only_served_metrics(&page);
}

/// Runs yamllint and `ansible-inventory --list` (from the virtualenv
/// tests/setup.sh makes) on an inventory directory; the parsed list.
fn ansible_inventory(dir: &Path) -> Value {
    let venv = std::env::var("BMC_TEST_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/kea-hook-bmc-discovery/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let bin = Path::new(&venv).join("bin");
    let lint = std::process::Command::new(bin.join("yamllint"))
        .args([
            "-s",
            "-d",
            "{extends: default, rules: {line-length: {max: 160}}}",
        ])
        .arg(dir)
        .output()
        .expect("run yamllint (tests/setup.sh installs it)");
    assert!(
        lint.status.success(),
        "yamllint: {}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let list = std::process::Command::new(bin.join("ansible-inventory"))
        .arg("-i")
        .arg(dir)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_LOCAL_TEMP", dir.join(".ansible-tmp"))
        .output()
        .expect("run ansible-inventory (tests/setup.sh installs it)");
    assert!(
        list.status.success(),
        "ansible-inventory: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    serde_json::from_slice(&list.stdout).unwrap()
}

#[test]
fn netbox_down_for_a_minute_mid_burst_loses_nothing_and_duplicates_nothing() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(31);
    let dir = TempDir::new("discovery-netbox-down");
    let n = 20u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let upstream = {
        use std::net::ToSocketAddrs;
        let hostport = nb.url.trim_start_matches("http://").trim_end_matches('/');
        hostport.to_socket_addrs().unwrap().next().unwrap()
    };
    let proxy = Proxy::start(upstream);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": format!("http://127.0.0.1:{}", proxy.port),
                   "token-file": token_file, "create-missing": true},
        "retry-backoff-s": 5,
        "retry-backoff-max-s": 10,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:0b:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);

    // NetBox goes away once a few servers are in, for a minute.
    all_in_state(&kea, "registered", 3, Duration::from_secs(120));
    proxy.set_down(true);
    let outage = Instant::now();
    let mut failed_seen = 0;
    let mut unreachable_seen = false;
    while outage.elapsed() < Duration::from_secs(60) {
        let s = kea.bmc_status();
        failed_seen = failed_seen.max(count(&s, "failed"));
        unreachable_seen |= s["netbox"]["reachable"] == "unreachable";
        assert_eq!(
            count(&s, "dead"),
            0,
            "an outage must not use up attempts: {s}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let during = kea.bmc_status();
    let registered_during = count(&during, "registered");
    assert!(unreachable_seen, "{during}");
    assert!(
        failed_seen > 0,
        "BMCs wait in failed during the outage: {during}"
    );
    for mac in in_state(&kea, "failed") {
        let b = kea.command("bmc-get", Some(json!({ "mac": mac })));
        assert_eq!(b["arguments"]["error-class"], "netbox-unavailable", "{b}");
    }
    proxy.set_down(false);
    let back = Instant::now();
    let status = all_in_state(&kea, "registered", n as u64, Duration::from_secs(300));
    let recovered = back.elapsed();
    assert_eq!(
        count(&status, "dead") + count(&status, "failed"),
        0,
        "{status}"
    );
    assert_eq!(status["netbox"]["reachable"], "reachable", "{status}");
    assert!(
        status["failures"]["netbox-unavailable"].as_u64() > Some(0),
        "{status}"
    );

    // One device per server: nothing lost, nothing twice.
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    assert_eq!(devices.len(), n as usize, "{}", kea.log_tail(30));
    for mac in leases(&kea).values() {
        let macs = client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={mac}"))
            .unwrap();
        assert_eq!(macs.len(), 1, "{mac}");
    }
    let l = &status["latency"]["lease-to-done"];
    eprintln!(
        "NetBox down 60 s with {registered_during}/{n} registered; all {n} registered {:.1} s after \
         it returned; lease-to-registered p50 {} ms, p99 {} ms, max {} ms; {} attempts failed on \
         the outage",
        recovered.as_secs_f64(),
        l["p50-ms"],
        l["p99-ms"],
        l["max-ms"],
        status["failures"]["netbox-unavailable"]
    );
}

#[test]
fn netbox_registrations_take_turns_oldest_lease_first() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(32);
    let dir = TempDir::new("discovery-netbox-turns");
    let n = 8u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 8,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true,
                   "parallel-registrations": 1},
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:0c:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);

    // Eight workers discover at once; NetBox sees one registration at a
    // time, the others wait their turn.
    let start = Instant::now();
    let mut most_waiting = 0;
    let status = loop {
        let s = kea.bmc_status();
        let gate = &s["netbox"]["registrations"];
        assert_eq!(gate["limit"], 1, "{s}");
        assert!(gate["running"].as_u64() <= Some(1), "{s}");
        most_waiting = most_waiting.max(gate["waiting"].as_u64().unwrap_or(0));
        if count(&s, "registered") >= n as u64 {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{}\n{}",
            s["bmcs"],
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(most_waiting >= 2, "discovered BMCs waited: {most_waiting}");
    let requests = &status["netbox"]["requests"];
    assert!(
        requests["writes"].as_u64() >= Some(7 * n as u64) && requests["reads"].as_u64() > Some(0),
        "{status}"
    );

    // The first to reach NetBox went in alone; every other took its turn
    // by lease time.
    let list = kea.command("bmc-list", None);
    let mut by_lease: Vec<(i64, i64)> = list["arguments"]["bmcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["leased-at-ms"].as_i64().unwrap(),
                b["registered-at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_lease.len(), n as usize);
    by_lease.sort();
    let first_in = (0..by_lease.len()).min_by_key(|&i| by_lease[i].1).unwrap();
    by_lease.remove(first_in);
    let registered: Vec<i64> = by_lease.iter().map(|b| b.1).collect();
    assert!(
        registered.windows(2).all(|w| w[0] <= w[1]),
        "registered out of lease order: {by_lease:?}"
    );
    eprintln!(
        "{n} BMCs, one registration at a time: up to {most_waiting} waited; {} reads + {} writes; \
         lease-to-registered p50 {} ms, max {} ms",
        requests["reads"],
        requests["writes"],
        status["latency"]["lease-to-done"]["p50-ms"],
        status["latency"]["lease-to-done"]["max-ms"],
    );
}

/// A BMC board replaced in the same server, through Kea: the new board
/// (another MAC, the same serial) is a conflict while the old board's
/// lease is live, and NetBox keeps the old record untouched; the
/// operator's `bmc-retry {"mac": .., "replace-bmc": true}` makes the new
/// board the device's BMC, and the old MAC's objects go.
#[test]
fn a_replaced_bmc_board_conflicts_until_bmc_retry_replace_bmc() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(47);
    let dir = TempDir::new("discovery-replace-bmc");
    let emu = bmc_test_support::emulator::Emulator::start(0);
    // Two boards of one server: one model, one instance, so one serial.
    for i in 0..2 {
        emu.add(pool_addr(i), "dell-idrac9-r750", 7, "root", PASS);
    }
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 2,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
        // The default backoff (30 s): the conflict must still be failed,
        // not already retrying, when the operator's bmc-retry comes.
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let bmc = |mac: &str| {
        let a = kea.command("bmc-get", Some(json!({ "mac": mac })));
        a["arguments"].clone()
    };
    let when = |mac: &str, state: &str| {
        wait_for(&format!("{mac} {state}"), Duration::from_secs(120), || {
            (bmc(mac)["state"] == state).then(|| bmc(mac))
        })
    };
    let old_mac = "14:18:77:47:00:00";
    let new_mac = "14:18:77:47:01:00";
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, old_mac);
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    when(old_mac, "registered");
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = || {
        client
            .list("/api/dcim/devices/?tag=bmc-discovery&limit=10")
            .unwrap()
    };
    let before = devices();
    assert_eq!(before.len(), 1, "{before:?}");
    let device_id = before[0]["id"].as_u64().unwrap();
    let macs_of = |mac: &str| {
        client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={mac}"))
            .unwrap()
            .len()
    };

    // The new board takes a lease while the old one's is live.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, new_mac);
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let leased = leases(&kea);
    assert_eq!(leased.len(), 2, "{leased:?}");
    let conflict = when(new_mac, "failed");
    assert_eq!(conflict["error-class"], "netbox-conflict", "{conflict}");
    assert!(
        conflict["last-error"]
            .as_str()
            .is_some_and(|e| e.contains("replace-bmc")),
        "the error says how to accept the board: {conflict}"
    );
    let device = || {
        client
            .get(&format!("/api/dcim/devices/{device_id}/"))
            .unwrap()
    };
    assert_eq!(devices().len(), 1);
    assert_eq!(
        device(),
        before[0].clone(),
        "the record changed on a conflict"
    );
    assert_eq!(macs_of(new_mac), 0);
    assert_eq!(macs_of(old_mac), 1);

    // The operator says it is the replacement.
    let a = kea.command(
        "bmc-retry",
        Some(json!({ "mac": new_mac, "replace-bmc": true })),
    );
    assert_eq!(a["result"], 0, "{a}");
    let done = when(new_mac, "registered");
    assert_eq!(devices().len(), 1, "{done}");
    let dev = device();
    assert_eq!(
        dev["oob_ip"]["address"],
        format!("{}/16", pool_addr(1)),
        "{dev}"
    );
    assert_eq!(macs_of(new_mac), 1);
    assert_eq!(
        macs_of(old_mac),
        0,
        "the old board's MAC is still in NetBox"
    );
    assert!(kea.child_alive());
}

/// The pool hands an expired lease's address to another BMC, through Kea:
/// one address in the pool, a 4 s lease; BMC A registers, its lease
/// expires, BMC B (another server) gets the same address. The address
/// moves to B's device in NetBox (A loses it as oob_ip, both journals say
/// so); no error, no retry.
#[test]
fn an_expired_lease_handed_to_another_bmc_moves_the_address_in_netbox() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(51);
    let dir = TempDir::new("discovery-address-moves");
    let emu = bmc_test_support::emulator::Emulator::start(0);
    let x = pool_addr(0);
    // Two servers of one model: instances 1 and 2, their own serials and
    // MACs. A answers on the address first.
    emu.add(x, "dell-idrac9-r750", 1, "root", PASS);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 2,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
    });
    let mut cfg = config(net, dir.path(), &[hook(params)], "INFO");
    let subnet = &mut cfg["Dhcp4"]["subnet4"][0];
    subnet["pools"] = json!([{"pool": format!("{x} - {x}")}]);
    subnet["valid-lifetime"] = json!(4);
    let kea = Kea::start(&dir, &cfg);
    let bmc = |mac: &str| kea.command("bmc-get", Some(json!({ "mac": mac })))["arguments"].clone();
    let when = |mac: &str, state: &str| {
        wait_for(&format!("{mac} {state}"), Duration::from_secs(120), || {
            (bmc(mac)["state"] == state).then(|| bmc(mac))
        })
    };
    let (mac_a, mac_b) = ("14:18:77:51:00:00", "14:18:77:51:01:00");
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, mac_a);
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    when(mac_a, "registered");
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let device_at = |ip: Ipv4Addr| {
        let ips = client
            .list(&format!("/api/ipam/ip-addresses/?address={ip}"))
            .unwrap();
        assert_eq!(ips.len(), 1, "{ips:?}");
        ips[0]["assigned_object"]["device"]["id"].as_u64().unwrap()
    };
    let a = device_at(x);

    // A's lease expires; B powers on and gets the same address, and the
    // emulator answers there as B.
    std::thread::sleep(Duration::from_secs(5));
    emu.add(x, "dell-idrac9-r750", 2, "root", PASS);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, mac_b);
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    assert_eq!(
        leases(&kea).get(&x.to_string()).map(String::as_str),
        Some(mac_b),
        "the pool's one address went to B"
    );
    when(mac_b, "registered");
    let status = kea.bmc_status();
    assert!(
        status["failures"]
            .as_object()
            .is_none_or(|f| f.values().all(|n| n == 0)),
        "no attempt failed, none was retried: {status}"
    );
    let b = device_at(x);
    assert_ne!(a, b, "B is its own device");
    let dev = |id: u64| client.get(&format!("/api/dcim/devices/{id}/")).unwrap();
    assert_eq!(dev(b)["oob_ip"]["address"], format!("{x}/16"));
    assert!(dev(a)["oob_ip"].is_null(), "{}", dev(a));
    let journal = |id: u64| {
        client
            .list(&format!(
                "/api/extras/journal-entries/?assigned_object_type=dcim.device&assigned_object_id={id}"
            ))
            .unwrap()
            .iter()
            .map(|e| e["comments"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        journal(a)
            .iter()
            .any(|t| t.contains("moved to device") && t.contains(mac_b)),
        "{:?}",
        journal(a)
    );
    assert!(
        journal(b).iter().any(|t| t.contains("moved IP address")),
        "{:?}",
        journal(b)
    );
    let log = kea.log();
    let line = log
        .lines()
        .find(|l| l.contains(mac_b) && l.contains("as NetBox device"))
        .unwrap_or_else(|| panic!("{}", kea.log_tail(30)));
    eprintln!("{line}");
    assert!(line.contains("moved IP address"), "{line}");
    assert!(kea.child_alive());
}

/// LLDP through Kea: a DL360 Gen10 Plus (its capture's ports hear two
/// Aruba switches) registers while NetBox has no switches → no cable, both
/// neighbours in `bmc-get` under `lldp-unmatched`, counted once on the
/// metrics page and in Kea's statistics; the switches are added, the BMC
/// is discovered again → two cables, the list is gone, nothing is counted
/// again.
#[test]
fn unmatched_lldp_neighbours_are_shown_counted_and_cabled_once_the_switches_exist() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(66);
    let dir = TempDir::new("discovery-lldp");
    let emu = bmc_test_support::emulator::Emulator::start(0);
    let ip = pool_addr(0);
    // Instance 0: the capture unchanged, its neighbours as Aruba sent them.
    emu.add(ip, "hpe-ilo5-dl360gen10plus", 0, "root", PASS);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let listen = format!("{}:19066", net.server());
    let params = json!({
        "workers": 1,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
        "metrics-listen": listen,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let mac = "14:18:77:66:00:00";
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, mac);
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let processed = |n: u64| {
        wait_for(
            &format!("{n} registrations"),
            Duration::from_secs(90),
            || {
                let s = kea.bmc_status();
                (s["events"]["processed"].as_u64() >= Some(n)).then_some(())
            },
        );
        let a = kea.command("bmc-get", Some(json!({ "mac": mac })));
        assert_eq!(
            a["arguments"]["state"],
            "registered",
            "{a}\n{}",
            kea.log_tail(30)
        );
        a["arguments"].clone()
    };
    let bmc = processed(1);
    eprintln!(
        "bmc-get, no switches in NetBox: {}",
        serde_json::to_string_pretty(&bmc["lldp-unmatched"]).unwrap()
    );
    let unmatched: Vec<(&str, &str, &str)> = bmc["lldp-unmatched"]
        .as_array()
        .unwrap_or_else(|| panic!("no lldp-unmatched: {bmc}"))
        .iter()
        .map(|u| {
            (
                u["port"].as_str().unwrap(),
                u["reason"].as_str().unwrap(),
                u["neighbour"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unmatched,
        [
            (
                "NIC.Slot.1.1-1",
                "switch-unknown",
                "bc:d7:a5:72:f4:00 port 1/1/1:4"
            ),
            (
                "NIC.Slot.1.1-2",
                "switch-unknown",
                "90:20:c2:c7:22:00 port 1/1/1:4"
            ),
        ]
    );
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let cables = || client.list("/api/dcim/cables/").unwrap().len();
    assert_eq!(cables(), 0);
    let url = format!("http://{listen}/metrics");
    let counted = |want: f64| {
        let page = wait_for("the LLDP counter", Duration::from_secs(10), || {
            let page = scrape(&url)?;
            let n = sample::<f64>(
                &page,
                "bmc_discovery_lldp_unmatched_total{reason=\"switch-unknown\"}",
            );
            (n == Some(want)).then_some(page)
        });
        assert_eq!(
            sample(
                &page,
                "bmc_discovery_lldp_unmatched_total{reason=\"port-taken\"}"
            ),
            Some(0.0),
            "every reason is served from 0"
        );
        let stat = "bmc-discovery.lldp-unmatched.switch-unknown";
        assert_eq!(kea.statistic(stat), want as u64, "{stat}");
    };
    counted(2.0);

    // The switches as the capture's neighbours name them; discovered again.
    let sw_a = bmc_test_support::netbox::switch(
        &client,
        "sw-a",
        "us3",
        None,
        "bc:d7:a5:72:f4:00",
        &["1/1/1:4"],
    );
    let sw_b = bmc_test_support::netbox::switch(
        &client,
        "sw-b",
        "us3",
        None,
        "90:20:c2:c7:22:00",
        &["1/1/1:4"],
    );
    let a = kea.command("bmc-discover", Some(json!({ "mac": mac })));
    assert_eq!(a["result"], 0, "{a}");
    let bmc = processed(2);
    assert!(bmc.get("lldp-unmatched").is_none(), "{bmc}");
    assert_eq!(cables(), 2, "{}", kea.log_tail(20));
    for sw in [&sw_a, &sw_b] {
        let port = client
            .get(&format!("/api/dcim/interfaces/{}/", sw["1/1/1:4"]))
            .unwrap();
        assert!(
            port["cable"]["id"].as_u64().is_some(),
            "{} is cabled: {port}",
            port["name"]
        );
    }
    counted(2.0);
    assert!(kea.child_alive());
}
