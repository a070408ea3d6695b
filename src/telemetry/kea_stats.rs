//! Publishes the hook's counters, gauges and histograms into Kea's own
//! statistics (StatsMgr), so `statistic-get`, `statistic-get-all` and
//! anything that scrapes them see the hook next to Kea's packet counters.
//!
//! Kea's main thread only (the timer tick). Every value is read from
//! atomics the workers and the scheduler keep: nothing here touches the
//! state file. Only values that changed are written, because each write
//! adds a sample to Kea's history of that statistic.
//!
//! The names are part of the interface (dashboards, alert rules): see
//! docs/METRICS.md before changing one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::catalogue::{COUNTERS, CREDENTIALS, GAUGES, LLDP_UNMATCHED};
use super::latency::{HistogramSnapshot, MS_BOUNDS};
use super::snapshot::Snapshot;
use crate::kea::shim;

/// Every statistic of the hook starts with this.
pub const PREFIX: &str = "bmc-discovery.";

/// What was last written, by name.
#[derive(Default)]
pub struct KeaStats {
    published: Mutex<BTreeMap<String, i64>>,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `name.count`, `.sum`, `.p50`, `.p90`, `.p99`, `.max` and cumulative
/// `.le-<ms>` buckets (`.le-inf` last), as Prometheus histograms have them.
fn histogram(out: &mut Vec<(String, i64)>, name: &str, h: &HistogramSnapshot) {
    for (field, v) in [
        ("count", h.count),
        ("sum", h.sum_ms),
        ("p50", h.p50_ms),
        ("p90", h.p90_ms),
        ("p99", h.p99_ms),
        ("max", h.max_ms),
    ] {
        out.push((format!("{name}.{field}"), clamp(v)));
    }
    let mut cumulative = 0;
    for (bound, n) in MS_BOUNDS.iter().zip(&h.counts) {
        cumulative += n;
        let le = if *bound == u64::MAX {
            "inf".to_string()
        } else {
            bound.to_string()
        };
        out.push((format!("{name}.le-{le}"), clamp(cumulative)));
    }
}

/// The statistics as Kea gets them, names without the prefix.
pub fn kea_values(snapshot: &Snapshot) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = COUNTERS
        .iter()
        .zip(snapshot.counter_values())
        .chain(GAUGES.iter().zip(snapshot.gauge_values()))
        .map(|(m, v)| (m.kea.to_string(), clamp(v)))
        .collect();
    for (field, v) in ["p50", "p99", "max"].iter().zip(snapshot.callout_ns()) {
        out.push((format!("callout-ns.{field}"), clamp(v)));
    }
    for (state, n) in &snapshot.bmcs {
        out.push((format!("bmcs.{state}"), clamp(*n)));
    }
    for (m, h) in snapshot.histograms() {
        histogram(&mut out, m.kea, h);
    }
    if let Some(nb) = snapshot.netbox {
        out.push(("netbox-reachable".into(), nb.reachable.gauge()));
        let g = nb.registrations;
        out.push((
            "netbox-registrations-running".into(),
            clamp(g.running as u64),
        ));
        out.push((
            "netbox-registrations-waiting".into(),
            clamp(g.waiting as u64),
        ));
        let (reads, writes) = nb.requests;
        out.push(("netbox-reads".into(), clamp(reads)));
        out.push(("netbox-writes".into(), clamp(writes)));
    }
    for (class, n) in &snapshot.failures {
        out.push((format!("failures.{class}"), clamp(*n)));
    }
    for (reason, n) in &snapshot.lldp_unmatched {
        out.push((format!("{}.{reason}", LLDP_UNMATCHED.kea), clamp(*n)));
    }
    if let Some(c) = &snapshot.credentials {
        let [suspended, suspensions] = &CREDENTIALS;
        out.push((suspended.kea.to_string(), clamp(c.suspended())));
        out.push((suspensions.kea.to_string(), clamp(c.suspensions)));
    }
    out
}

impl KeaStats {
    /// Writes what changed since the last call.
    pub fn publish(&self, snapshot: &Snapshot) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in kea_values(snapshot) {
            if published.get(&name) == Some(&value) {
                continue;
            }
            if shim::stat_set(&format!("{PREFIX}{name}"), value) {
                published.insert(name, value);
            }
        }
    }

    /// Removes every statistic this instance wrote (unload): a hook that
    /// is gone must not leave frozen values behind.
    pub fn withdraw(&self) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for name in std::mem::take(&mut *published).into_keys() {
            shim::stat_del(&format!("{PREFIX}{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::counters::CountersSnapshot;

    #[test]
    fn attempts_succeeded_counts_successes_not_everything_processed() {
        let s = Snapshot {
            counters: CountersSnapshot {
                processed: 7,
                succeeded: 4,
                failed: 2,
                ..CountersSnapshot::default()
            },
            ..Snapshot::default()
        };
        let values: BTreeMap<String, i64> = kea_values(&s).into_iter().collect();
        assert_eq!(values["attempts-succeeded"], 4);
        assert_eq!(values["attempts-failed"], 2);
        let page = crate::telemetry::prometheus::render(&s, &[], Default::default());
        assert!(
            page.lines()
                .any(|l| l == "bmc_discovery_attempts_succeeded_total 4"),
            "{page}"
        );
    }
}
