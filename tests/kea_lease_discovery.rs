//! Discovery inside the real kea-dhcp4: perfdhcp BMCs take leases, the
//! hook's workers discover each leased address over Redfish, answered by the
//! emulator serving the real vendor payloads; every lease ends discovered or
//! failed with its reason in Kea's log, Kea's debuglevel picks the hook's
//! debug messages, bad Redfish parameters refuse the configuration, and Kea
//! stops promptly while BMCs hang.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bmc_test_support::discovery::{
    bmcs_on_pool, handled, leases, pool_addr, redfish_params, settled, PASS,
};
use bmc_test_support::emulator::{Emulator, Faults};
use bmc_test_support::kea::{check_config, config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::json;

#[test]
fn every_bmc_lease_is_discovered_or_fails_visibly() {
    let net = Net::new(21);
    let dir = TempDir::new("discovery");
    let emu = bmcs_on_pool(60);
    let params = json!({"workers": 8, "redfish": redfish_params(dir.path(), &emu, PASS)});
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));

    let n = 30;
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = settled(&kea, n as u64);

    let leased = leases(&kea);
    assert_eq!(leased.len(), n, "{leased:?}");
    let index = |ip: &str| u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
    let bad = |ip: &str| index(ip) % 7 == 3;
    let wrong_password = leased.keys().filter(|ip| bad(ip)).count();
    assert!(
        wrong_password > 0,
        "the test needs some BMCs with another password"
    );
    // Under load perfdhcp may retransmit a REQUEST, which Kea answers as a
    // renewal, so a lease can be handled more than once. What must hold
    // exactly is checked below: one discovery per good BMC, one failed
    // login per bad one.
    let events = &status["events"];
    assert!(
        events["failed"].as_u64() >= Some(wrong_password as u64),
        "{status}"
    );
    assert!(
        events["processed"].as_u64() >= Some((n - wrong_password) as u64),
        "{status}"
    );
    assert_eq!(events["panics"], 0, "{status}");

    // Each good BMC shows up once in Kea's log as discovered; each bad one
    // with its failure and reason.
    let log = kea.log();
    for (ip, mac) in &leased {
        if bad(ip) {
            let failed: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!("lease of {mac} failed")))
                .collect();
            assert!(!failed.is_empty(), "{mac}: no failure logged");
            assert!(
                failed[0].contains("discovery failed (auth)"),
                "{}",
                failed[0]
            );
        } else {
            let needle = format!("discovered BMC {mac} at {ip}:");
            let lines = log.lines().filter(|l| l.contains(&needle)).count();
            assert_eq!(lines, 1, "{mac} at {ip}");
        }
    }
    assert!(!log.contains(PASS), "a password reached Kea's log");
    for l in log.lines().filter(|l| l.contains("discovered BMC")).take(3) {
        eprintln!("{l}");
    }
    for l in log.lines().filter(|l| l.contains("failed (auth)")).take(1) {
        eprintln!("{l}");
    }
    assert_eq!(emu.open_sessions(), 0);
    let requests_to = |emu: &Emulator, good: bool| -> u64 {
        leased
            .keys()
            .filter(|ip| bad(ip) != good)
            .map(|ip| {
                emu.stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
                    .requests
            })
            .sum()
    };
    for ip in leased.keys().filter(|ip| bad(ip)) {
        assert_eq!(
            emu.stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
                .logins_failed,
            1,
            "{ip}"
        );
    }

    // The same BMCs again: Kea renews their leases. Discovered ones are not
    // discovered again (no request reaches them); the failed ones are
    // tried, and the login guard keeps their failed logins at one.
    let good_before = requests_to(&emu, true);
    let again = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:00:00");
    assert!(again.success, "perfdhcp failed:\n{}", again.output);
    let status = settled(&kea, handled(&status) + n as u64);
    assert_eq!(leases(&kea).len(), n, "same BMCs, same leases");
    assert_eq!(requests_to(&emu, true), good_before, "{status}");
    assert!(requests_to(&emu, false) > 0);
    for ip in leased.keys().filter(|ip| bad(ip)) {
        assert_eq!(
            emu.stats(ip.parse::<std::net::Ipv4Addr>().unwrap())
                .logins_failed,
            1,
            "{ip}"
        );
    }
    assert!(kea.child_alive());
}

/// Kea's debuglevel decides which of the hook's debug messages appear:
/// each has its own ID and level in the message file (40 for a missing
/// Redfish resource, 50 for every request), and the INFO lines keep theirs.
#[test]
fn kea_debuglevel_selects_the_hooks_debug_messages_by_id() {
    let emu = bmcs_on_pool(4);
    let mut lines = Vec::new();
    for (block, level) in [(34u8, 40), (35, 50)] {
        let net = Net::new(block);
        let dir = TempDir::new("debuglevel");
        let params = json!({"workers": 2, "redfish": redfish_params(dir.path(), &emu, PASS)});
        let mut cfg = config(net, dir.path(), &[hook(params)], "DEBUG");
        cfg["Dhcp4"]["loggers"][0]["debuglevel"] = json!(level);
        let kea = Kea::start(&dir, &cfg);
        let run = perfdhcp::avalanche(net, &net.relay_bmc(), 3, "14:18:77:00:00:00");
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
        settled(&kea, 3);
        let log = kea.log();
        let has = |id: &str| log.lines().any(|l| l.contains(&format!("] {id} ")));
        let debug_has = |id: &str| {
            log.lines()
                .any(|l| l.contains(" DEBUG ") && l.contains(&format!("] {id} ")))
        };
        assert!(has("BMC_DISCOVERY_DISCOVERED"), "{}", kea.log_tail(20));
        assert!(
            debug_has("BMC_DISCOVERY_DISCOVERY_GAP"),
            "debuglevel {level}: {}",
            kea.log_tail(20)
        );
        assert_eq!(
            debug_has("BMC_DISCOVERY_REDFISH_GET"),
            level >= 50,
            "debuglevel {level}: {}",
            kea.log_tail(20)
        );
        lines.push(log.lines().filter(|l| l.contains("BMC_DISCOVERY_")).count());
    }
    assert!(lines[1] > lines[0], "debuglevel 50 adds lines: {lines:?}");
}

#[test]
fn kea_stops_promptly_while_bmcs_hang() {
    let net = Net::new(22);
    let dir = TempDir::new("discovery-hang");
    let emu = bmcs_on_pool(20);
    for i in 0..20 {
        emu.set_faults(
            pool_addr(i),
            Faults {
                hang: true,
                ..Faults::default()
            },
        );
    }
    let mut params = redfish_params(dir.path(), &emu, PASS);
    params["request-timeout-ms"] = json!(3000);
    let kea = Kea::start(
        &dir,
        &config(
            net,
            dir.path(),
            &[hook(json!({"workers": 4, "redfish": params}))],
            "INFO",
        ),
    );
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 8, "14:18:77:00:01:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    wait_for("the workers to be busy", Duration::from_secs(20), || {
        (kea.bmc_status()["events"]["accepted"] == 8).then_some(())
    });
    // Every worker is now stuck in a request to a BMC that never answers.
    let t = Instant::now();
    let status = kea.stop();
    let took = t.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(6),
        "Kea took {took:?} to stop; in-flight requests must end within request-timeout-ms"
    );
    eprintln!(
        "kea-dhcp4 stopped in {} ms with 4 workers stuck on hung BMCs",
        took.as_millis()
    );
}

#[test]
fn bad_redfish_parameters_refuse_the_configuration() {
    let net = Net::new(23);
    let dir = TempDir::new("discovery-params");
    let missing = dir.path().join("no-such-file.json");
    let cases = [
        (
            json!({"redfish": {"credentials-file": missing}}),
            "parameter 'redfish.credentials-file' cannot be used: credentials file",
        ),
        (
            json!({"redfish": {"port": 443}}),
            "parameter 'redfish.credentials-file' is required",
        ),
        (
            json!({"redfish": {"credentials-file": "/etc/hostname", "tls-pin-file": "/nonexistent-dir/pins.json"}}),
            "parameter 'redfish.credentials-file' cannot be used",
        ),
    ];
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, r#"[{"username": "root", "password": "calvin"}]"#).unwrap();
    let more = [(
        json!({"redfish": {"credentials-file": creds, "tls-pin-file": "/nonexistent-dir/pins.json"}}),
        "parameter 'redfish.tls-pin-file' must be in an existing directory",
    )];
    for (parameters, expected) in cases.iter().chain(more.iter()) {
        let out = check_config(
            dir.path(),
            &config(net, dir.path(), &[hook(parameters.clone())], "INFO"),
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {parameters}:\n{text}");
        assert!(
            text.contains(expected),
            "{parameters}: want {expected:?} in:\n{text}"
        );
        assert!(
            !text.contains("calvin"),
            "a password in Kea's output:\n{text}"
        );
    }
}
