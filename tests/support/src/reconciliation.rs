//! The reconciliation scenarios, with the leases in any [`LeaseStore`]
//! (tests/kea_reconciliation.rs runs them on the memfile,
//! tests/kea_postgresql.rs on PostgreSQL): whatever the hook did not finish
//! comes back from Kea's lease database, read through Kea's lease manager.

use std::time::Duration;

use serde_json::json;

use crate::discovery::{
    all_in_state, count, discoveries_per_mac, good_bmcs_on_pool, redfish_params, LeaseStore, PASS,
};
use crate::kea::{hook, Kea, Net};
use crate::{perfdhcp, wait_for, TempDir};

/// A burst of `n` BMCs into a queue of 8 with no timed reconciliation:
/// what the full queue drops comes back only through the reconciliation
/// the drops trigger. Every BMC ends discovered (a second time only where
/// Kea sent its lease again), Kea's statistics agree, and `bmc-reconcile`
/// then finds all `n` leases up to date.
pub fn full_queue_recovered(net: Net, tag: &str, n: u32, store: &LeaseStore) {
    let dir = TempDir::new(tag);
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let params = json!({
        "workers": 4,
        "queue-capacity": 8,
        "reconcile-interval-s": 0,
        "redfish": redfish_params(dir.path(), &emu, PASS),
    });
    let kea = Kea::start(
        &dir,
        &store.config(net, dir.path(), &[hook(params)], "INFO"),
    );
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:05:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    assert_eq!(store.leases(&kea).len(), n as usize);

    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(180));
    let events = &status["events"];
    let drops = events["dropped-queue-full"].as_u64().unwrap_or(0);
    eprintln!("queue drops during the burst of {n}: {drops}; {events}");
    assert!(
        drops > 0,
        "the burst should overflow a queue of 8: {status}"
    );
    assert!(events["reconciliations"].as_u64() >= Some(2), "{status}");
    assert_eq!(
        count(&status, "failed") + count(&status, "dead"),
        0,
        "{status}"
    );

    // Every leased MAC discovered: none lost, and none twice unless Kea
    // itself sent its lease again. Seen with PostgreSQL on Kea 3.0: a slow
    // lease insert makes perfdhcp resend its REQUEST, and that second lease
    // event (counted in `seen`) may come after the first discovery ended.
    let log = kea.log();
    let per_mac = discoveries_per_mac(&log);
    let leased = store.leases(&kea);
    let resent = events["seen"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(n as u64);
    let mut again = 0;
    for mac in leased.values() {
        let times = per_mac.get(mac).copied().unwrap_or(0);
        assert!(times >= 1, "{mac} never discovered");
        again += times as u64 - 1;
    }
    assert!(
        again <= resent,
        "{again} BMCs discovered again, but Kea sent only {resent} lease events beyond one a BMC"
    );
    assert!(log.contains("reconciliation:"), "{}", kea.log_tail(20));

    // The statistics Kea publishes agree (the tick writes them every second).
    let stats = wait_for("statistics published", Duration::from_secs(5), || {
        let a = kea.command("statistic-get-all", None);
        let a = &a["arguments"];
        (a["bmc-discovery.bmcs.discovered"][0][0] == n).then(|| a.clone())
    });
    assert_eq!(stats["bmc-discovery.queue-drops"][0][0], drops);
    // One latency sample per finished discovery: the repeats of resent
    // leases included, which may still be running.
    for stat in ["count", "le-inf"] {
        let name = format!("bmc-discovery.lease-to-done-ms.{stat}");
        let samples = stats[&name][0][0].as_u64().unwrap_or(0);
        assert!(
            (n as u64..=n as u64 + resent).contains(&samples),
            "{name} = {samples}, expected {n}..={}",
            n as u64 + resent
        );
    }
    assert_eq!(stats["bmc-discovery.queue-capacity"][0][0], 8);

    // Asked again, reconciliation finds nothing to do.
    let a = kea.command("bmc-reconcile", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["arguments"]["leases"], n, "{a}");
    assert_eq!(a["arguments"]["up-to-date"], n, "{a}");
    assert_eq!(a["arguments"]["queued"], 0, "{a}");
    let a = kea.command("bmc-reconcile", Some(json!({"subnet": 1})));
    assert_eq!(a["result"], 1, "{a}");
    assert!(kea.child_alive());
}

/// A burst of `n` BMCs (20 ms a Redfish request, so it takes a while),
/// Kea SIGKILLed a quarter of the way (no unload: queued work lost with
/// the process), started again on the same configuration: every BMC ends
/// discovered, only what the 4 workers held at the kill twice.
pub fn killed_mid_burst_recovered(net: Net, tag: &str, n: u32, store: &LeaseStore) {
    let dir = TempDir::new(tag);
    let emu = good_bmcs_on_pool(n, Duration::from_millis(20));
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu, PASS),
    });
    let cfg = store.config(net, dir.path(), &[hook(params)], "INFO");
    let mut kea = Kea::start(&dir, &cfg);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:06:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let before = all_in_state(&kea, "discovered", n as u64 / 4, Duration::from_secs(120));
    kea.child.kill().unwrap();
    kea.child.wait().unwrap();
    let first_log_len = kea.log().len();
    let done_before = count(&before, "discovered");
    assert!(done_before < n as u64, "killed too late: {before}");
    drop(kea);

    let kea = Kea::start(&dir, &cfg);
    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(180));
    assert_eq!(
        count(&status, "failed") + count(&status, "dead"),
        0,
        "{status}"
    );
    // Kea appends to its log: both runs are in it.
    let log = kea.log();
    assert!(
        log[first_log_len..].contains("reconciliation:"),
        "{}",
        kea.log_tail(20)
    );
    // Only what was in a worker's hands at the kill is done twice: the
    // kill came between discovery and its record.
    let per_mac = discoveries_per_mac(&log);
    let leased = store.leases(&kea);
    assert_eq!(leased.len(), n as usize);
    let twice: Vec<_> = leased
        .values()
        .filter(|m| per_mac.get(*m).copied().unwrap_or(0) != 1)
        .collect();
    for mac in leased.values() {
        assert!(per_mac.contains_key(mac), "{mac} never discovered");
    }
    assert!(
        twice.len() <= 4,
        "more than the 4 workers' BMCs twice: {twice:?}"
    );
    eprintln!(
        "killed with {done_before}/{n} discovered; after restart all {n}, {} discovered twice",
        twice.len()
    );
}
