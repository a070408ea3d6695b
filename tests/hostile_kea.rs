//! Hostile BMCs through the hook inside a real kea-dhcp4: every worker busy
//! with the worst payloads the emulator's hostile mode has (huge
//! collections, bodies at the size limit, JSON that is costly to parse,
//! deep nesting, endless members, strings that forge log lines), while
//! perfdhcp keeps taking leases. Kea must keep answering (no lost leases),
//! its peak RSS must stay within the bound docs/CONFIGURATION.md states,
//! every BMC over a budget must end failed with that budget's class, and
//! no BMC string may forge a line of Kea's log.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bmc_test_support::discovery::{pool_addr, redfish_params};
use bmc_test_support::emulator::hostile::Hostile;
use bmc_test_support::emulator::{Emulator, Faults, FleetBmc};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, TempDir};
use serde_json::{json, Value};

const PASS: &str = "hostile-Passw0rd";

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// CPU time (user + system) of `pid` so far, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The bound docs/CONFIGURATION.md ("Memory") states for one discovery
/// with the default budgets, in MiB: 1.25 x max-parsed-bytes (parsed
/// answers, and the member lists and link keys read from them: 20), twice
/// max-discovery-bytes (raw bodies, Vec growth: 8), connections and
/// threads (1).
const PER_DISCOVERY_MIB: u64 = 29;

#[test]
fn hostile_bmcs_cost_kea_bounded_memory_and_lose_no_lease() {
    let workers = 4u64;
    let net = Net::new(42);
    let dir = TempDir::new("hostile-kea");
    let emu = Emulator::start(0);
    // The worst of each kind, sized to be as costly as the budgets let
    // through: parsed answers just under max-parsed-bytes, bodies just
    // under max-response-bytes, one request short of max-requests.
    let behaviours = [
        Hostile::CostlyJson(7_000),
        Hostile::BigBodies(1_000_000),
        Hostile::CostlyJson(14_000),
        Hostile::ManyMembers(900),
        Hostile::DeepNesting(100_000),
        Hostile::ManyMembers(150_000),
        Hostile::ManyMembers(5_000),
        Hostile::ManySubMembers(999),
        Hostile::DirtyStrings,
    ];
    let n = 36u32;
    emu.add_fleet_with(pool_addr(0), n, |i| FleetBmc {
        model: Some("dell-idrac9-r750".into()),
        password: PASS.into(),
        faults: Faults {
            hostile: Some(behaviours[i as usize % behaviours.len()].clone()),
            ..Faults::default()
        },
        hostname: None,
    });
    let mut redfish = redfish_params(dir.path(), &emu, PASS);
    redfish["request-timeout-ms"] = json!(5000);
    redfish["deadline-ms"] = json!(30000);
    let params = json!({"workers": workers, "redfish": redfish});
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let before = peak_rss_kib(kea.pid());
    let cpu_before = cpu_s(kea.pid());

    // The hostile BMCs take their leases; while they are discovered, 200
    // other clients (the other subnet) take theirs.
    let start = Instant::now();
    let bmcs = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:00:00");
    assert!(bmcs.success, "perfdhcp (BMCs) failed:\n{}", bmcs.output);
    let others = perfdhcp::avalanche(net, &net.relay_other(), 200, "02:00:00:00:00:00");
    assert!(
        others.success,
        "perfdhcp (others) lost leases:\n{}",
        others.output
    );

    let status = loop {
        let s = kea.bmc_status();
        let handled = s["events"]["processed"].as_u64().unwrap_or(0)
            + s["events"]["failed"].as_u64().unwrap_or(0);
        if handled >= u64::from(n) && s["queue"]["depth"] == 0 && s["queue"]["in-flight"] == 0 {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "hostile discoveries did not end: {s}\n{}",
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let gave_up = start.elapsed();
    let after = peak_rss_kib(kea.pid());
    let cpu = cpu_s(kea.pid()) - cpu_before;
    assert!(kea.child_alive(), "kea-dhcp4 died:\n{}", kea.log_tail(30));
    assert_eq!(status["events"]["panics"], 0, "{status}");
    let dirty = (0..n)
        .filter(|i| {
            matches!(
                behaviours[*i as usize % behaviours.len()],
                Hostile::DirtyStrings
            )
        })
        .count();
    assert_eq!(
        status["events"]["processed"], dirty,
        "only the BMCs with dirty strings are discovered: {status}"
    );

    // Each hostile BMC ended failed, with its budget's class.
    let mut classes = BTreeMap::<String, u32>::new();
    for i in 0..n {
        let b = kea.command("bmc-get", Some(json!({"ip": pool_addr(i).to_string()})));
        assert_eq!(b["result"], 0, "{b}");
        let b = &b["arguments"];
        if matches!(
            behaviours[i as usize % behaviours.len()],
            Hostile::DirtyStrings
        ) {
            assert_eq!(b["state"], "discovered", "{}: {b}", pool_addr(i));
            continue;
        }
        assert!(
            b["state"] == "failed" || b["state"] == "dead",
            "{}: {b}",
            pool_addr(i)
        );
        let class = b["error-class"].as_str().unwrap_or("").to_string();
        let want = match &behaviours[i as usize % behaviours.len()] {
            Hostile::CostlyJson(_) => "budget-memory",
            Hostile::BigBodies(_) => "budget-bytes",
            Hostile::DeepNesting(_) => "budget-response",
            Hostile::ManyMembers(900) | Hostile::ManySubMembers(_) => "budget-requests",
            Hostile::ManyMembers(5_000) => "budget-members",
            Hostile::ManyMembers(_) => "budget-response",
            Hostile::DirtyStrings | Hostile::OddToken | Hostile::ForeignLink { .. } => {
                unreachable!()
            }
        };
        assert_eq!(class, want, "{}: {b}", pool_addr(i));
        *classes.entry(class).or_default() += 1;
    }
    let failures: &Value = &status["failures"];
    for (class, count) in &classes {
        assert!(
            failures[class].as_u64() >= Some(u64::from(*count)),
            "metric failures.{class}: {failures}"
        );
    }

    // Kea kept serving: every other client has its lease.
    let by_subnet = kea.leases_by_subnet();
    assert_eq!(by_subnet.get(&2), Some(&200), "{by_subnet:?}");
    assert_eq!(by_subnet.get(&1), Some(&(n as usize)), "{by_subnet:?}");

    let grew_mib = after.saturating_sub(before) / 1024;
    let bound = workers * PER_DISCOVERY_MIB;
    eprintln!(
        "{n} hostile BMCs, {workers} workers: all handled in {:.1} s; kea-dhcp4 peak RSS \
         {} MiB before, {} MiB after (+{grew_mib} MiB, bound {bound} MiB), {cpu:.1} s of CPU; \
         classes {classes:?}",
        gave_up.as_secs_f64(),
        before / 1024,
        after / 1024
    );
    assert!(
        grew_mib <= bound,
        "kea-dhcp4's peak RSS grew by {grew_mib} MiB, over the {bound} MiB bound"
    );
    let log = kea.log();
    assert!(!log.contains(PASS), "a password reached Kea's log");
    // The dirty strings reached Kea's log on the discovery's own line,
    // without their line break, escapes or controls: no forged line.
    let forged: Vec<&str> = log.lines().filter(|l| l.contains("forged")).collect();
    assert!(forged.len() >= dirty, "{}", kea.log_tail(20));
    for l in &forged {
        assert!(l.contains("discovered BMC"), "a forged log line: {l:?}");
    }
    let bad = |c: char| {
        c == '\u{1b}' || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{202e}'
    };
    assert!(
        !log.chars().any(bad),
        "control or bidi characters in Kea's log"
    );
    drop(emu);
    let code = kea.stop();
    assert!(code.success(), "kea-dhcp4 exited with {code}");
}
