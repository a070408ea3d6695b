//! Every counter the hook publishes means what docs/METRICS.md says, and
//! says it the same way in Kea's statistics, on the Prometheus page and in
//! `bmc-status`: after a run through the real kea-dhcp4 with successes,
//! failures, retries (replays from the state file) and renewals that need
//! nothing, each counter is checked against what happened, counted
//! independently (Kea's own packet statistics, the hook's log lines).
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::time::{Duration, Instant};

use bmc_test_support::discovery::{pool_addr, redfish_params, PASS};
use bmc_test_support::emulator::{Emulator, Faults};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::prometheus::{sample, scrape};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

/// BMCs that never let the hook in: every attempt fails, until dead.
fn locked_out(i: u32) -> bool {
    i % 5 == 3
}

/// BMCs that answer garbage at first, then are fixed: a retry succeeds.
fn broken_at_first(i: u32) -> bool {
    i % 5 == 4
}

/// The BMCs per state, as `bmc-status` reports them.
fn in_state(kea: &Kea, state: &str) -> u64 {
    kea.bmc_status()["bmcs"][state].as_u64().unwrap_or(0)
}

/// One of Kea's statistics, by full name.
fn statistic(kea: &Kea, name: &str) -> Option<u64> {
    let a = kea.command("statistic-get", Some(json!({ "name": name })));
    a["arguments"][name][0][0].as_u64()
}

#[test]
fn each_published_counter_means_what_the_docs_say() {
    let net = Net::new(41);
    let dir = TempDir::new("counters");
    let n = 15u32;
    let emu = Emulator::start(0);
    emu.add_fleet(pool_addr(0), n, &Faults::default(), |i| {
        if locked_out(i) {
            "not-the-one"
        } else {
            PASS
        }
    });
    for i in (0..n).filter(|i| broken_at_first(*i)) {
        emu.set_faults(
            pool_addr(i),
            Faults {
                malformed: true,
                ..Faults::default()
            },
        );
    }
    let metrics = format!("{}:19041", net.server());
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu, PASS),
        "retry-attempts": 3,
        "retry-backoff-s": 2,
        "retry-backoff-max-s": 2,
        "metrics-listen": metrics,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));

    // Successes and first failures.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:41:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let good = (0..n)
        .filter(|i| !locked_out(*i) && !broken_at_first(*i))
        .count() as u64;
    let broken = (0..n).filter(|i| broken_at_first(*i)).count() as u64;
    let locked = (0..n).filter(|i| locked_out(*i)).count() as u64;
    wait_for("the first round", Duration::from_secs(60), || {
        (in_state(&kea, "discovered") == good
            && in_state(&kea, "failed") + in_state(&kea, "dead") == broken + locked)
            .then_some(())
    });
    // Fixed: their retries (replays from the state file) succeed; the
    // locked-out ones are retried until dead.
    for i in (0..n).filter(|i| broken_at_first(*i)) {
        emu.set_faults(pool_addr(i), Faults::default());
    }
    wait_for("retries done", Duration::from_secs(60), || {
        (in_state(&kea, "discovered") == good + broken && in_state(&kea, "dead") == locked)
            .then_some(())
    });
    // Renewals: the same clients again. Nothing is attempted for any of
    // them (discovered recently, or dead).
    let again = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:41:00");
    assert!(again.success, "perfdhcp failed:\n{}", again.output);
    let status = wait_for("the renewals handled", Duration::from_secs(60), || {
        let s = kea.bmc_status();
        let e = &s["events"];
        let handed = e["accepted"].as_u64()? + e["scheduled"].as_u64()?;
        let done = e["processed"].as_u64()? + e["failed"].as_u64()?;
        (e["seen"].as_u64()? >= 2 * u64::from(n) && done == handed && s["queue"]["in-flight"] == 0)
            .then_some(s)
    });
    let e = &status["events"];
    let count = |v: &Value| {
        v.as_u64()
            .unwrap_or_else(|| panic!("not a count: {v} in {status}"))
    };

    // What happened, counted without the hook's counters.
    let log = kea.log();
    let discovered = log
        .lines()
        .filter(|l| l.contains(" discovered BMC "))
        .count() as u64;
    let failed_lines = log
        .lines()
        .filter(|l| l.contains("failed: discovery failed ("))
        .count() as u64;
    assert_eq!(
        discovered,
        good + broken,
        "one discovery per BMC that let the hook in"
    );
    assert!(
        failed_lines >= broken + 3 * locked,
        "at least a failure per broken BMC, three per locked-out one: {failed_lines}"
    );

    // Each counter against its definition.
    let succeeded = count(&status["attempts-succeeded"]);
    assert_eq!(
        succeeded, discovered,
        "attempts-succeeded: attempts that ended discovered"
    );
    assert_eq!(
        count(&e["failed"]),
        failed_lines,
        "attempts-failed: attempts that failed"
    );
    let failures: u64 = status["failures"]
        .as_object()
        .unwrap()
        .values()
        .map(count)
        .sum();
    assert_eq!(
        failures, failed_lines,
        "failures.<class> add up to attempts-failed"
    );
    assert!(
        count(&e["processed"]) >= succeeded + u64::from(n),
        "processed also counts the {n} renewals that needed nothing: {status}"
    );
    // Every lease Kea granted was seen, once: Kea also runs lease4_renew
    // for the DHCPDISCOVER of a client that already holds a lease, which
    // the shim does not count (only the DHCPREQUEST extends the lease).
    let acks = statistic(&kea, "pkt4-ack-sent").expect("Kea counts its ACKs");
    assert_eq!(
        count(&e["seen"]),
        acks,
        "leases-seen: every lease Kea granted, once: {status}"
    );
    assert_eq!(
        count(&e["accepted"]) + count(&e["duplicate-in-flight"]) + count(&e["dropped-queue-full"]),
        count(&e["seen"]),
        "every lease here is a BMC's: accepted, merged or dropped"
    );
    assert_eq!(count(&e["not-opted-in"]) + count(&e["no-match"]), 0);
    assert!(
        count(&e["scheduled"]) >= broken + 2 * locked,
        "every retry is scheduled from the state file: {status}"
    );
    assert_eq!(count(&e["panics"]), 0);
    assert_eq!(count(&e["abandoned-at-unload"]), 0);

    // Kea's statistics and the Prometheus page say the same, name by name
    // (the tick publishes every second).
    let published = [
        (
            "leases-seen",
            "bmc_discovery_leases_seen_total",
            count(&e["seen"]),
        ),
        (
            "leases-accepted",
            "bmc_discovery_leases_accepted_total",
            count(&e["accepted"]),
        ),
        (
            "leases-not-opted-in",
            "bmc_discovery_leases_not_opted_in_total",
            count(&e["not-opted-in"]),
        ),
        (
            "leases-no-match",
            "bmc_discovery_leases_no_match_total",
            count(&e["no-match"]),
        ),
        (
            "leases-merged-in-flight",
            "bmc_discovery_leases_merged_in_flight_total",
            count(&e["duplicate-in-flight"]),
        ),
        (
            "queue-drops",
            "bmc_discovery_queue_drops_total",
            count(&e["dropped-queue-full"]),
        ),
        (
            "scheduled",
            "bmc_discovery_scheduled_total",
            count(&e["scheduled"]),
        ),
        (
            "attempts-succeeded",
            "bmc_discovery_attempts_succeeded_total",
            succeeded,
        ),
        (
            "attempts-failed",
            "bmc_discovery_attempts_failed_total",
            count(&e["failed"]),
        ),
        (
            "abandoned-at-unload",
            "bmc_discovery_abandoned_at_unload_total",
            0,
        ),
        (
            "reconciliations",
            "bmc_discovery_reconciliations_total",
            count(&e["reconciliations"]),
        ),
        ("panics", "bmc_discovery_panics_total", 0),
    ];
    let url = format!("http://{metrics}/metrics");
    let agree = |page: &str| {
        published.iter().all(|(kea_name, prom, want)| {
            statistic(&kea, &format!("bmc-discovery.{kea_name}")) == Some(*want)
                && sample(page, prom) == Some(*want)
        })
    };
    // Up to 10 s for the tick; then the first name that disagrees fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = scrape(&url).unwrap_or_default();
        if agree(&page) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (kea_name, prom, want) in published {
        assert_eq!(
            statistic(&kea, &format!("bmc-discovery.{kea_name}")),
            Some(want),
            "{kea_name}"
        );
        assert_eq!(sample(&page, prom), Some(want), "{prom}");
    }
    assert!(kea.child_alive());
}
