//! The same hook library in the real kea-dhcp6: DHCPv6 leases of an
//! opted-in subnet6 are discovered over Redfish at their IPv6 address (the
//! emulator serving the real vendor payloads on the leased addresses), the
//! leases of another subnet6 are filtered, SOLICIT/ADVERTISE (fake
//! allocations) count for nothing, a client asking again for the address it
//! holds is seen (Kea runs no lease6 callout for it: leases6_committed), the
//! pool report measures the subnet6 pools (a /64 saturating), and
//! bad parameters and the shipped example are judged by `kea-dhcp6 -t`.
//!
//! Needs root (network namespaces), kea-dhcp6 and perfdhcp: tests/setup.sh.
//! Each test's Kea runs in namespaces of its own (tests/support/src/kea6.rs).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bmc_test_support::discovery::{handled, redfish_params, settled, PASS};
use bmc_test_support::emulator::Emulator;
use bmc_test_support::kea::hook;
use bmc_test_support::kea6::{self, avalanche, Net6};
use bmc_test_support::{hook_library, TempDir};
use serde_json::json;

#[test]
fn bmcs_in_an_opted_in_subnet6_are_discovered_and_the_others_filtered() {
    let bmcs = 100;
    let others = 30;
    let net = Net6::new(61);
    net.add_bmc_addresses(bmcs);
    let emu = Emulator::start_in_netns(0, &net.client_ns);
    emu.add_fleet(
        IpAddr::V6(net.pool_addr(1, 0)),
        bmcs,
        &Default::default(),
        |_| PASS,
    );
    let dir = TempDir::new("dhcp6");
    let params = json!({"workers": 8, "redfish": redfish_params(dir.path(), &emu, PASS)});
    let mut cfg = kea6::config(&net, dir.path(), &[hook(params)], "INFO");
    // A subnet whose pool is all of a /64: 2^64 addresses, more than the
    // pool report carries (Kea's JSON integers are i64).
    let whole = format!("{}/64", net.subnet(3));
    cfg["Dhcp6"]["subnet6"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 3, "subnet": whole, "pools": [{"pool": whole}]}));
    let kea = kea6::start(&dir, &net, &cfg);
    assert!(
        kea.log().contains("DHCPv6 leases (kea-dhcp6)"),
        "{}",
        kea.log_tail(20)
    );

    let run = avalanche(&net, &net.relay_bmc(), bmcs as usize, "14:18:77:06:00:00");
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);
    let run = avalanche(&net, &net.relay_other(), others, "00:0c:01:06:00:00");
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);

    // Clients of the BMCs' subnet with DUID-ENs, which carry no MAC: Kea
    // finds none for them, and the hook, which knows BMCs by MAC, leaves
    // them out (counted as no-mac).
    let macless = 5;
    let run = kea6::avalanche_duid(
        &net,
        &net.relay_bmc(),
        macless,
        "0002000009bf0b0c0d0e0f000000",
        "00:0c:01:06:ee:00",
    );
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);

    // Every client has its address; only the BMCs' reached the workers.
    let by_subnet = kea6::leases_by_subnet(&kea);
    assert_eq!(
        by_subnet,
        BTreeMap::from([(1, bmcs as usize + macless), (2, others)]),
        "leases by subnet"
    );
    let status = settled(&kea, u64::from(bmcs));
    let events = &status["events"];
    // One event per REQUEST: the SOLICITs (fake allocations) are not seen.
    let seen = bmcs + (others + macless) as u32;
    assert_eq!(events["seen"], seen, "{status}");
    assert_eq!(events["accepted"], bmcs, "{status}");
    assert_eq!(events["not-opted-in"], others, "{status}");
    assert_eq!(events["no-mac"], macless, "{status}");
    assert_eq!(events["processed"], bmcs, "{status}");
    assert_eq!(events["failed"], 0, "{status}");
    assert_eq!(events["panics"], 0, "{status}");
    assert_eq!(events["dropped-queue-full"], 0, "{status}");
    // (duplicate-in-flight is not 0: the reconciliation at start-up may
    // find leases of BMCs still in flight, as with kea-dhcp4.)
    assert_eq!(status["callout-cost"]["count"], seen, "{status}");
    assert_eq!(status["subnets"]["opted-in"], json!([1]), "{status}");

    // The pool report measures the subnet6 pools: ::10-::ffff is 65520
    // addresses; the /64 is saturated, and says so.
    let a = kea.command("bmc-pool-report", Some(json!({"all": true})));
    assert_eq!(a["result"], 0, "{a}");
    let subnets = a["arguments"]["subnets"].as_array().unwrap();
    let of = |id: u32| subnets.iter().find(|s| s["subnet-id"] == id).unwrap();
    let one = of(1);
    assert_eq!(one["total-addresses"], 65520, "{one}");
    assert_eq!(one["total-addresses-saturated"], false, "{one}");
    assert_eq!(one["assigned-addresses"], bmcs + macless as u32, "{one}");
    assert_eq!(one["utilisation-percent"], 0.2, "{one}");
    assert_eq!(one["level"], "ok", "{one}");
    assert_eq!(one["bmc-leases"], bmcs, "{one}");
    assert_eq!(
        one["pools"][0]["pool"],
        format!(
            "{}-{}",
            net.pool_addr(1, 0),
            format_args!("{}ffff", net.subnet(1))
        )
    );
    assert_eq!(of(2)["assigned-addresses"], others, "{a}");
    let three = of(3);
    assert_eq!(three["total-addresses"], i64::MAX, "{three}");
    assert_eq!(three["total-addresses-saturated"], true, "{three}");
    assert_eq!(three["assigned-addresses"], 0, "{three}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_bmc-pool-report"))
        .args([
            "--socket",
            dir.path().join("kea.sock").to_str().unwrap(),
            "--all",
        ])
        .output()
        .expect("run bmc-pool-report");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        text.contains(&format!(
            "subnet 1 {}/64, site us3: {}/65520 addresses leased (0.2 %) OK",
            net.subnet(1),
            bmcs + macless as u32
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "subnet 3 {whole}: 0/9223372036854775807+ addresses leased (0.0 %) OK"
        )),
        "{text}"
    );
    let cost = &status["callout-cost"];
    eprintln!(
        "kea-dhcp6 callout cost over {} leases: p50 {} ns, p99 {} ns, max {} ns",
        cost["count"], cost["p50-ns"], cost["p99-ns"], cost["max-ns"]
    );

    // Each BMC discovered once, at its IPv6 address, under the MAC Kea's
    // mac-sources read from its DUID-LL.
    let log = kea.log();
    for (addr, mac, subnet) in kea6::leases(&kea) {
        if subnet != 1 || mac.is_empty() {
            continue;
        }
        assert!(mac.starts_with("14:18:77:06:"), "{addr}: hwaddr {mac:?}");
        let needle = format!("discovered BMC {mac} at {addr}:");
        assert_eq!(
            log.lines().filter(|l| l.contains(&needle)).count(),
            1,
            "{needle}\n{}",
            kea.log_tail(20)
        );
        let ip: IpAddr = addr.parse().unwrap();
        assert!(emu.stats(ip).requests > 0, "no Redfish request to [{addr}]");
    }
    assert_eq!(emu.open_sessions(), 0);
    for l in log.lines().filter(|l| l.contains("discovered BMC")).take(2) {
        eprintln!("{l}");
    }
    let bmc = kea.command("bmc-get", Some(json!({"mac": "14:18:77:06:00:00"})));
    assert_eq!(bmc["result"], 0, "{bmc}");
    // Kea's packet threads allocate in parallel: the address is the lease's.
    let addr = kea6::leases(&kea)
        .into_iter()
        .find(|(_, mac, _)| mac == "14:18:77:06:00:00")
        .map(|(addr, _, _)| addr)
        .expect("a lease of 14:18:77:06:00:00");
    assert_eq!(bmc["arguments"]["ip"], addr.as_str(), "{bmc}");
    assert_eq!(bmc["arguments"]["ipv6"], addr.as_str(), "{bmc}");
    assert!(bmc["arguments"].get("ipv4").is_none(), "{bmc}");
    // Asked by its address, written out in full and in capitals: the same BMC.
    let v6: std::net::Ipv6Addr = addr.parse().unwrap();
    let spelled: Vec<String> = v6.segments().iter().map(|s| format!("{s:04X}")).collect();
    let by_ip = kea.command("bmc-get", Some(json!({"ip": spelled.join(":")})));
    assert_eq!(by_ip["result"], 0, "{by_ip}");
    assert_eq!(by_ip["arguments"]["mac"], "14:18:77:06:00:00", "{by_ip}");

    // The same BMCs again (the same DUIDs): each REQUESTs the address it
    // holds, which passes no lease6 callout; the hook sees it through
    // leases6_committed, as a renewal, and a BMC discovered a moment ago
    // is not discovered again.
    let requests: u64 = (0..bmcs)
        .map(|i| emu.stats(net.pool_addr(1, i)).requests)
        .sum();
    let run = avalanche(&net, &net.relay_bmc(), bmcs as usize, "14:18:77:06:00:00");
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);
    let status = settled(&kea, handled(&status) + u64::from(bmcs));
    assert_eq!(
        kea6::leases_by_subnet(&kea)[&1],
        bmcs as usize + macless,
        "same clients, same leases"
    );
    let events = &status["events"];
    assert_eq!(events["seen"], seen + bmcs, "{status}");
    assert_eq!(events["accepted"], 2 * bmcs, "{status}");
    // Had leases6_committed passed them on as new allocations, each would
    // have been discovered again (a renewal of a BMC discovered less than
    // rediscover-after ago is not).
    let discovered = kea
        .log()
        .lines()
        .filter(|l| l.contains("discovered BMC "))
        .count();
    assert_eq!(discovered, bmcs as usize, "{}", kea.log_tail(10));
    let again: u64 = (0..bmcs)
        .map(|i| emu.stats(net.pool_addr(1, i)).requests)
        .sum();
    assert_eq!(again, requests, "a renewal reached a BMC");
    assert!(kea.child_alive());
}

#[test]
fn bad_parameters_are_refused_by_name_in_kea_dhcp6_check() {
    let net = Net6::new(62);
    let dir = TempDir::new("dhcp6-params");
    let cases = [
        (
            json!({"workers": "eight"}),
            "parameter 'workers' must be an integer",
        ),
        (
            json!({"redfish": {"port": 443}}),
            "parameter 'redfish.credentials-file' is required",
        ),
        (
            json!({"hostname-pattern": "("}),
            "parameter 'hostname-pattern' is not a usable regular expression",
        ),
    ];
    for (parameters, expected) in cases {
        let cfg = kea6::config(&net, dir.path(), &[hook(parameters.clone())], "INFO");
        let out = kea6::check_config(&net, dir.path(), &cfg);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {parameters}:\n{text}");
        assert!(
            text.contains(expected),
            "{parameters}: want {expected:?} in:\n{text}"
        );
    }
    let good = kea6::config(&net, dir.path(), &[hook(json!({"workers": 2}))], "INFO");
    let out = kea6::check_config(&net, dir.path(), &good);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped example passes `kea-dhcp6 -t`, with this build in place of
/// the installed library, the test's own credentials and token files in
/// place of /etc/kea's, and the test's veth in place of eth1 (kea-dhcp6 -t
/// wants the interface to exist).
#[test]
fn example_kea_dhcp6_conf_passes_kea_check() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kea-config/kea-dhcp6.conf"
    ))
    .unwrap();
    let net = Net6::new(63);
    let dir = TempDir::new("dhcp6-example");
    let creds = dir.path().join("bmc-credentials.json");
    std::fs::write(
        &creds,
        json!([{"username": "root", "password": "x"}]).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let token = dir.path().join("netbox-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let lib = hook_library();
    let installed = "\"/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_bmc_discovery.so\"";
    for needle in [
        installed,
        "\"/etc/kea/bmc-credentials.json\"",
        "\"/etc/kea/netbox-token\"",
        "\"eth1\"",
    ] {
        assert!(example.contains(needle), "the example names {needle}");
    }
    let text = example
        .replace(installed, &format!("{:?}", lib.to_str().unwrap()))
        .replace(
            "\"/etc/kea/bmc-credentials.json\"",
            &format!("{:?}", creds.to_str().unwrap()),
        )
        .replace(
            "\"/etc/kea/netbox-token\"",
            &format!("{:?}", token.to_str().unwrap()),
        )
        .replace("\"eth1\"", "\"v6k\"");
    let file = dir.path().join("kea-dhcp6.conf");
    std::fs::write(&file, text).unwrap();
    // -T (Kea >= 2.4) also runs the hook's load() and unload(), which then
    // only validate, as in kea-dhcp4.
    let version = bmc_test_support::kea::kea_version(env!("BMC_KEA_VERSION"));
    let flags: &[&str] = if version >= (2, 4, 0) {
        &["-t", "-T"]
    } else {
        &["-t"]
    };
    for flag in flags {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &net.kea_ns, "kea-dhcp6", flag])
            .arg(&file)
            .env("KEA_HOOKS_PATH", lib.parent().unwrap())
            .output()
            .expect("run kea-dhcp6 (tests/setup.sh installs kea-dhcp6-server)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kea-dhcp6 {flag} {}:\n{text}",
            file.display()
        );
        if *flag == "-T" {
            assert!(text.contains("check: nothing started"), "{text}");
        }
    }
}

/// 50 config-reloads of kea-dhcp6 while perfdhcp -6 keeps going: Kea keeps
/// serving, the hook's threads are joined every time, no descriptor leaks;
/// then the BMCs' state (with their IPv6 addresses) survives a restart.
#[test]
fn config_reloads_under_load_leak_nothing_and_the_state_survives_a_restart() {
    let net = Net6::new(65);
    let dir = TempDir::new("dhcp6-reload");
    let creds = dir.path().join("bmc-credentials.json");
    std::fs::write(
        &creds,
        json!([{"username": "root", "password": "x"}]).to_string(),
    )
    .unwrap();
    // Redfish towards a port nothing listens on: every discovery fails
    // quickly and is recorded, which is state enough to survive a restart.
    let params = json!({"workers": 4, "redfish": {"credentials-file": creds, "port": 1,
        "tls-mode": "insecure", "request-timeout-ms": 500, "deadline-ms": 2000}});
    let cfg = kea6::config(&net, dir.path(), &[hook(params)], "WARN");
    let kea = kea6::start(&dir, &net, &cfg);
    let run = avalanche(&net, &net.relay_bmc(), 5, "14:18:77:06:50:00");
    assert!(run.success, "perfdhcp -6 failed:\n{}", run.output);
    settled(&kea, 5);
    let baseline_threads = kea.threads();
    let baseline_fds = kea.fds();

    let relay = net.relay_bmc();
    let rate_run = std::thread::scope(|s| {
        let perf = s.spawn(|| {
            kea6::run(
                &net,
                &relay,
                &["-r", "200", "-R", "2000", "-p", "20"],
                Duration::from_secs(60),
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        for i in 0..50 {
            let answer = kea.command("config-reload", None);
            assert_eq!(
                answer["result"],
                0,
                "reload {i}: {answer}\n{}",
                kea.log_tail(20)
            );
            assert!(
                kea.child_alive(),
                "Kea died at reload {i}:\n{}",
                kea.log_tail(30)
            );
        }
        perf.join().unwrap()
    });
    let rate = rate_run.rate().unwrap_or(0.0);
    assert!(
        rate > 50.0,
        "perfdhcp -6 rate fell to {rate}/s during reloads:\n{}",
        rate_run.output
    );
    bmc_test_support::wait_for(
        "thread count back to baseline",
        Duration::from_secs(10),
        || (kea.threads() == baseline_threads).then_some(()),
    );
    // Sockets of the reloads and of our own commands close asynchronously;
    // a leak of one descriptor per reload would show as 50 more.
    let fds_settled = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        kea.fds() <= baseline_fds + 2
    });
    assert!(fds_settled, "descriptors: {baseline_fds} -> {}", kea.fds());
    eprintln!(
        "kea-dhcp6 config-reload x50 under perfdhcp -6 ({rate:.0}/s): threads {baseline_threads}, \
         fds {baseline_fds} -> {}",
        kea.fds()
    );

    // The state file outlives the process.
    let addr = kea6::leases(&kea)
        .into_iter()
        .find(|(_, mac, _)| mac == "14:18:77:06:50:00")
        .map(|(addr, _, _)| addr)
        .expect("a lease of 14:18:77:06:50:00");
    let status = kea.stop();
    assert!(status.success(), "{status}");
    let kea = kea6::start(&dir, &net, &cfg);
    let bmc = kea.command("bmc-get", Some(json!({"mac": "14:18:77:06:50:00"})));
    assert_eq!(bmc["result"], 0, "{bmc}");
    assert_eq!(bmc["arguments"]["ipv6"], addr.as_str(), "{bmc}");
    assert!(
        bmc["arguments"]["attempts"].as_u64() >= Some(1),
        "the failed attempt is remembered: {bmc}"
    );
}
