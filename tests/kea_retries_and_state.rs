//! Failed discoveries inside the real kea-dhcp4: retried, then dead; the
//! BMC commands' answers to bad arguments; and every BMC's state kept across
//! a restart of Kea.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::net::Ipv4Addr;
use std::time::Duration;

use bmc_test_support::discovery::{
    bmcs_on_pool, in_state, leases, pool_addr, redfish_params, PASS,
};
use bmc_test_support::emulator::Faults;
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::json;

#[test]
fn failures_are_retried_then_dead_and_the_state_survives_a_restart() {
    let net = Net::new(25);
    let dir = TempDir::new("discovery-state");
    let emu = bmcs_on_pool(8);
    let n = 8u32;
    // Every BMC answers garbage at first: each attempt fails.
    for i in 0..n {
        emu.set_faults(
            pool_addr(i),
            Faults {
                malformed: true,
                ..Faults::default()
            },
        );
    }
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "retry-attempts": 3,
        "retry-backoff-s": 1,
        "retry-backoff-max-s": 2,
    });
    let cfg = config(net, dir.path(), &[hook(params)], "INFO");
    let kea = Kea::start(&dir, &cfg);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:03:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let leased = leases(&kea);
    // Every lease is tried 3 times (the retry thread queues the due ones),
    // then dead (the BMC with the wrong password too: its login guard
    // holds back further logins, and those attempts fail as well).
    let dead = wait_for("every BMC dead", Duration::from_secs(60), || {
        let dead = in_state(&kea, "dead");
        (dead.len() == leased.len()).then_some(dead)
    });
    let (ip, mac) = leased
        .iter()
        .find(|(ip, _)| {
            let i = u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
            i != 0 && i != 3
        })
        .unwrap();
    assert!(dead.contains(mac));
    let b = kea.command("bmc-get", Some(json!({ "ip": ip })));
    assert_eq!(b["result"], 0, "{b}");
    let b = &b["arguments"];
    assert_eq!(b["state"], "dead", "{b}");
    assert_eq!(b["attempts"], 3, "{b}");
    assert_eq!(b["mac"], *mac);
    assert!(
        b["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{b}"
    );
    let requests = emu
        .stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
        .requests;
    let log = kea.log();
    assert!(
        log.contains(&format!("{mac} failed")) && log.contains("dead after 3 attempts"),
        "{}",
        kea.log_tail(20)
    );
    let status = kea.bmc_status();
    assert_eq!(status["bmcs"]["dead"], leased.len(), "{status}");

    // The fault is fixed; bmc-retry brings one back at once.
    emu.set_faults(pool_addr(0), Faults::default());
    let first_ip = pool_addr(0).to_string();
    let a = kea.command("bmc-retry", Some(json!({ "ip": first_ip })));
    assert_eq!(a["result"], 0, "{a}");
    wait_for(
        "the retried BMC discovered",
        Duration::from_secs(30),
        || {
            let b = kea.command("bmc-get", Some(json!({ "ip": first_ip })));
            (b["arguments"]["state"] == "discovered").then_some(())
        },
    );
    // The others stay dead: no more requests reach them on their own.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        emu.stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
            .requests,
        requests
    );

    // Bad arguments get an answer that says what is wrong.
    for (command, arguments, expected) in [
        (
            "bmc-list",
            json!({"state": "lost"}),
            "'state' must be one of queued, discovering",
        ),
        ("bmc-list", json!({"limit": 0}), "'limit' must be 1..=10000"),
        (
            "bmc-list",
            json!({"colour": "red"}),
            "unknown argument 'colour'",
        ),
        ("bmc-get", json!({}), "needs 'mac' or 'ip'"),
        ("bmc-get", json!({"mac": "14:18:77"}), "'mac' must be like"),
        (
            "bmc-get",
            json!({"ip": "10.0.0.300"}),
            "'ip' must be an IPv4 or IPv6 address",
        ),
        (
            "bmc-retry",
            json!({"ip": first_ip}),
            "is discovered, not failed or dead",
        ),
        ("bmc-discover", json!("x"), "arguments must be a map"),
    ] {
        let a = kea.command(command, Some(arguments.clone()));
        assert_eq!(a["result"], 1, "{command} {arguments}: {a}");
        assert!(
            a["text"].as_str().unwrap_or("").contains(expected),
            "{command} {arguments}: {a}"
        );
    }
    let a = kea.command("bmc-get", Some(json!({"mac": "02:00:00:00:00:99"})));
    assert_eq!(a["result"], 3, "{a}");

    // Restarted, Kea's hook still knows every BMC and its state; renewals
    // of the discovered one and of the dead ones are not tried again, and
    // bmc-discover forces one.
    drop(kea);
    let kea = Kea::start(&dir, &cfg);
    assert_eq!(in_state(&kea, "dead").len(), leased.len() - 1);
    assert_eq!(in_state(&kea, "discovered").len(), 1);
    let before = emu.stats(pool_addr(0)).requests;
    let again = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:03:00");
    assert!(again.success, "perfdhcp failed:\n{}", again.output);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        emu.stats(pool_addr(0)).requests,
        before,
        "renewal rediscovered"
    );
    assert_eq!(
        emu.stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
            .requests,
        requests,
        "dead BMC tried"
    );
    let a = kea.command("bmc-discover", Some(json!({ "ip": first_ip })));
    assert_eq!(a["result"], 0, "{a}");
    wait_for("the forced discovery", Duration::from_secs(30), || {
        (emu.stats(pool_addr(0)).requests > before).then_some(())
    });
    assert!(kea.child_alive());
}
