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
use std::ffi::CString;
use std::sync::Mutex;

use crate::bindings::{shim_stat_del, shim_stat_set};
use crate::metrics::{HistogramSnapshot, Reachability, MS_BOUNDS};
use crate::runtime::Runtime;

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

/// The statistics of `rt`, names without the prefix.
pub fn values(rt: &Runtime) -> Vec<(String, i64)> {
    let c = rt.stats().counters();
    let status = rt.queue_status();
    let mut out: Vec<(String, i64)> = [
        ("leases-seen", c.seen),
        ("leases-accepted", c.accepted),
        ("leases-not-opted-in", c.not_opted_in),
        ("leases-no-match", c.no_match),
        ("leases-merged-in-flight", c.duplicate_in_flight),
        ("queue-drops", c.dropped_queue_full),
        ("scheduled", c.scheduled),
        ("attempts-succeeded", c.processed),
        ("attempts-failed", c.failed),
        ("abandoned-at-unload", c.abandoned_at_unload),
        ("reconciliations", c.reconciliations),
        ("panics", c.panics),
        ("queue-depth", status.depth as u64),
        ("queue-capacity", status.capacity as u64),
        ("in-flight", status.in_flight as u64),
        ("workers", status.workers as u64),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), clamp(v)))
    .collect();
    let cost = rt.stats().cost();
    for (field, v) in [
        ("p50", cost.p50_ns),
        ("p99", cost.p99_ns),
        ("max", cost.max_ns),
    ] {
        out.push((format!("callout-ns.{field}"), clamp(v)));
    }
    if let Some(counts) = rt.state_counts().and_then(|c| c.get()) {
        for (state, n) in counts {
            out.push((format!("bmcs.{}", state.as_str()), clamp(n)));
        }
    }
    if let Some(p) = rt.pipeline() {
        if let Some(m) = p.metrics() {
            histogram(&mut out, "lease-to-done-ms", &m.lease_to_done.snapshot());
            histogram(&mut out, "discovery-ms", &m.discovery.snapshot());
            if p.netbox_configured() {
                histogram(&mut out, "netbox-ms", &m.netbox.snapshot());
                out.push((
                    "netbox-reachable".into(),
                    match m.netbox() {
                        Reachability::Reachable => 1,
                        Reachability::Unreachable => 0,
                        Reachability::Unknown => -1,
                    },
                ));
            }
            for (class, n) in m.failures() {
                out.push((format!("failures.{class}"), clamp(n)));
            }
        }
    }
    out
}

impl KeaStats {
    /// Writes what changed since the last call.
    pub fn publish(&self, rt: &Runtime) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in values(rt) {
            if published.get(&name) == Some(&value) {
                continue;
            }
            let Ok(full) = CString::new(format!("{PREFIX}{name}")) else {
                continue;
            };
            // SAFETY: `full` is a NUL-terminated string alive for the call.
            if unsafe { shim_stat_set(full.as_ptr(), value) } == 0 {
                published.insert(name, value);
            }
        }
    }

    /// Removes every statistic this instance wrote (unload): a hook that
    /// is gone must not leave frozen values behind.
    pub fn withdraw(&self) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for name in std::mem::take(&mut *published).into_keys() {
            if let Ok(full) = CString::new(format!("{PREFIX}{name}")) {
                // SAFETY: as in publish.
                unsafe { shim_stat_del(full.as_ptr()) };
            }
        }
    }
}
