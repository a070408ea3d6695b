//! A backlog of due BMCs in the state file (left by an earlier run) never
//! starves fresh leases inside the real kea-dhcp4: the scheduler leaves the
//! queue's room to lease events, so none is dropped and they go first.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::time::{Duration, Instant};

use bmc_test_support::discovery::{count, good_bmcs_on_pool, pool_addr, redfish_params, PASS};
use bmc_test_support::emulator::Faults;
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::json;

#[test]
fn a_backlog_of_due_bmcs_never_starves_fresh_leases() {
    let net = Net::new(57);
    let dir = TempDir::new("discovery-backlog");
    let (backlog, fresh) = (300u32, 200u32);
    let emu = good_bmcs_on_pool(backlog + fresh, Duration::ZERO);
    // The earlier run: every backlog BMC answers garbage, each attempt
    // fails at once and is due again a second later.
    let garbage = Faults {
        malformed: true,
        ..Faults::default()
    };
    for i in 0..backlog {
        emu.set_faults(pool_addr(i), garbage.clone());
    }
    let mut redfish = redfish_params(dir.path(), &emu, PASS);
    redfish["request-timeout-ms"] = json!(1000);
    redfish["deadline-ms"] = json!(3000);
    // A queue smaller than the backlog, as 1,024 slots are smaller than
    // the 16,000 due BMCs once seen; no timed reconciliation, so that a
    // dropped lease would stay missing for this test's length.
    let params = json!({
        "workers": 4,
        "queue-capacity": 256,
        "reconcile-interval-s": 0,
        "retry-attempts": 100,
        "retry-backoff-s": 1,
        "retry-backoff-max-s": 1,
        "redfish": redfish,
    });
    let cfg = config(net, dir.path(), &[hook(params.clone())], "INFO");
    // The earlier run took every lease in (a queue large enough).
    let mut earlier = params;
    earlier["queue-capacity"] = json!(1024);
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(earlier)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), backlog as usize, "14:18:77:57:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    wait_for(
        "the backlog failed once each",
        Duration::from_secs(120),
        || {
            let s = kea.bmc_status();
            let sum = |v: &serde_json::Value| -> u64 {
                v.as_object()
                    .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
            };
            (sum(&s["bmcs"]) >= backlog as u64 && sum(&s["failures"]) >= backlog as u64)
                .then_some(())
        },
    );
    drop(kea);

    // Now the backlog's BMCs never answer: each attempt holds a worker
    // for its whole timeout. Kea starts with all of them due.
    let hang = Faults {
        hang: true,
        ..Faults::default()
    };
    for i in 0..backlog {
        emu.set_faults(pool_addr(i), hang.clone());
    }
    let kea = Kea::start(&dir, &cfg);
    let before: Vec<u64> = (0..backlog)
        .map(|i| emu.stats(pool_addr(i)).requests)
        .collect();
    // The scheduler has looked at the backlog by now.
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), fresh as usize, "14:18:77:58:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = loop {
        let s = kea.bmc_status();
        if count(&s, "discovered") >= fresh as u64 || t.elapsed() > Duration::from_secs(120) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = t.elapsed();
    let tried = (0..backlog)
        .filter(|&i| emu.stats(pool_addr(i)).requests > before[i as usize])
        .count();
    let drops = status["events"]["dropped-queue-full"].as_u64().unwrap_or(0);
    eprintln!(
        "{fresh} fresh leases discovered in {:.1} s; {tried} of {backlog} backlog BMCs tried \
         meanwhile; {drops} drops; {}",
        took.as_secs_f64(),
        status["events"]
    );
    assert_eq!(
        count(&status, "discovered"),
        fresh as u64,
        "{status}\n{}",
        kea.log_tail(20)
    );
    assert_eq!(drops, 0, "fresh leases dropped: {status}");
    // Fresh first: most of the backlog still waits (4 workers, a backlog
    // attempt holds one for a second or more).
    assert!(
        tried < (backlog / 2) as usize,
        "{tried} backlog BMCs went before the {fresh} fresh ones were done"
    );
    assert!(kea.child_alive());
}
