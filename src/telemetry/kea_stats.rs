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

use crate::hook::{QueueStatus, Runtime};
use crate::kea::bindings::{shim_stat_del, shim_stat_set};
use crate::telemetry::counters::CountersSnapshot;
use crate::telemetry::latency::{HistogramSnapshot, Reachability, MS_BOUNDS};

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

/// One metric the hook publishes: its name in Kea's statistics (after
/// [`PREFIX`]) and in Prometheus (`src/prometheus.rs`), and what it means.
#[derive(Debug)]
pub struct Metric {
    pub kea: &'static str,
    pub prom: &'static str,
    pub help: &'static str,
}

const fn metric(kea: &'static str, prom: &'static str, help: &'static str) -> Metric {
    Metric { kea, prom, help }
}

/// Counters, in `Snapshot::counter_values` order.
pub const COUNTERS: [Metric; 12] = [
    metric(
        "leases-seen",
        "bmc_discovery_leases_seen_total",
        "Real leases the lease callouts saw (no DHCPDISCOVER).",
    ),
    metric(
        "leases-accepted",
        "bmc_discovery_leases_accepted_total",
        "BMC leases handed to the workers.",
    ),
    metric(
        "leases-not-opted-in",
        "bmc_discovery_leases_not_opted_in_total",
        "Leases of subnets not opted in.",
    ),
    metric(
        "leases-no-match",
        "bmc_discovery_leases_no_match_total",
        "Leases of opted-in subnets no pattern matched.",
    ),
    metric(
        "leases-merged-in-flight",
        "bmc_discovery_leases_merged_in_flight_total",
        "Leases of a BMC already queued or in a worker.",
    ),
    metric(
        "queue-drops",
        "bmc_discovery_queue_drops_total",
        "BMC leases dropped because the queue was full (reconciliation recovers them).",
    ),
    metric(
        "scheduled",
        "bmc_discovery_scheduled_total",
        "BMCs queued from the state file (retries, reconciliation) or by a command.",
    ),
    metric(
        "attempts-succeeded",
        "bmc_discovery_attempts_succeeded_total",
        "Attempts that ended registered (or discovered without NetBox).",
    ),
    metric(
        "attempts-failed",
        "bmc_discovery_attempts_failed_total",
        "Attempts that failed.",
    ),
    metric(
        "abandoned-at-unload",
        "bmc_discovery_abandoned_at_unload_total",
        "BMC leases still queued when the hook was unloaded.",
    ),
    metric(
        "reconciliations",
        "bmc_discovery_reconciliations_total",
        "Walks of Kea's lease database.",
    ),
    metric(
        "panics",
        "bmc_discovery_panics_total",
        "Internal errors caught before they reached Kea.",
    ),
];

/// Gauges of the queue and the workers, in `Snapshot::gauge_values` order.
pub const GAUGES: [Metric; 4] = [
    metric(
        "queue-depth",
        "bmc_discovery_queue_depth",
        "BMC leases waiting for a worker.",
    ),
    metric(
        "queue-capacity",
        "bmc_discovery_queue_capacity",
        "Size of the queue between packet threads and workers.",
    ),
    metric(
        "in-flight",
        "bmc_discovery_in_flight",
        "BMCs queued or in a worker.",
    ),
    metric("workers", "bmc_discovery_workers", "Worker threads."),
];

/// Histograms, in `Snapshot::histograms` order.
pub const HISTOGRAMS: [Metric; 3] = [
    metric(
        "lease-to-done-ms",
        "bmc_discovery_lease_to_done_seconds",
        "From the lease to registered in NetBox (or discovered without NetBox), retries included.",
    ),
    metric(
        "discovery-ms",
        "bmc_discovery_discovery_seconds",
        "One Redfish discovery.",
    ),
    metric(
        "netbox-ms",
        "bmc_discovery_netbox_seconds",
        "One NetBox registration.",
    ),
];

/// Everything published, read once per tick (main thread) from the
/// atomics the workers and the scheduler keep.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: CountersSnapshot,
    pub queue: QueueStatus,
    /// The lease callouts' cost: p50, p99, max (ns).
    pub callout_ns: [u64; 3],
    /// BMCs per state, once the scheduler has counted them.
    pub bmcs: Vec<(&'static str, u64)>,
    /// Present only where recorded (netbox-ms only with NetBox).
    pub histograms: Vec<(&'static Metric, HistogramSnapshot)>,
    /// 1 reachable, 0 not, -1 not tried yet; None without NetBox.
    pub netbox_reachable: Option<i64>,
    /// Registrations talking to NetBox and waiting to; None without NetBox.
    pub netbox_registrations: Option<crate::work::gate::GateLoad>,
    /// NetBox requests (reads, writes); None without NetBox.
    pub netbox_requests: Option<(u64, u64)>,
    pub failures: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn take(rt: &Runtime) -> Snapshot {
        let cost = rt.stats().cost();
        let mut s = Snapshot {
            counters: rt.stats().counters(),
            queue: rt.queue_status(),
            callout_ns: [cost.p50_ns, cost.p99_ns, cost.max_ns],
            ..Snapshot::default()
        };
        if let Some(counts) = rt.state_counts().and_then(|c| c.get()) {
            s.bmcs = counts.into_iter().map(|(st, n)| (st.as_str(), n)).collect();
        }
        if let Some(p) = rt.pipeline() {
            if let Some(m) = p.metrics() {
                s.histograms
                    .push((&HISTOGRAMS[0], m.lease_to_done.snapshot()));
                s.histograms.push((&HISTOGRAMS[1], m.discovery.snapshot()));
                if p.netbox_configured() {
                    s.histograms.push((&HISTOGRAMS[2], m.netbox.snapshot()));
                    s.netbox_reachable = Some(match m.netbox() {
                        Reachability::Reachable => 1,
                        Reachability::Unreachable => 0,
                        Reachability::Unknown => -1,
                    });
                    s.netbox_registrations = p.netbox_registrations();
                    s.netbox_requests = p.netbox_requests();
                }
                s.failures = m.failures();
            }
        }
        s
    }

    /// The counters in [`COUNTERS`] order.
    pub fn counter_values(&self) -> [u64; COUNTERS.len()] {
        let c = &self.counters;
        [
            c.seen,
            c.accepted,
            c.not_opted_in,
            c.no_match,
            c.duplicate_in_flight,
            c.dropped_queue_full,
            c.scheduled,
            c.processed,
            c.failed,
            c.abandoned_at_unload,
            c.reconciliations,
            c.panics,
        ]
    }

    /// The queue gauges in [`GAUGES`] order.
    pub fn gauge_values(&self) -> [u64; GAUGES.len()] {
        let q = &self.queue;
        [q.depth, q.capacity, q.in_flight, q.workers].map(|v| v as u64)
    }

    /// The statistics as Kea gets them, names without the prefix.
    pub fn kea_values(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = COUNTERS
            .iter()
            .zip(self.counter_values())
            .chain(GAUGES.iter().zip(self.gauge_values()))
            .map(|(m, v)| (m.kea.to_string(), clamp(v)))
            .collect();
        for (field, v) in ["p50", "p99", "max"].iter().zip(self.callout_ns) {
            out.push((format!("callout-ns.{field}"), clamp(v)));
        }
        for (state, n) in &self.bmcs {
            out.push((format!("bmcs.{state}"), clamp(*n)));
        }
        for (m, h) in &self.histograms {
            histogram(&mut out, m.kea, h);
        }
        if let Some(r) = self.netbox_reachable {
            out.push(("netbox-reachable".into(), r));
        }
        if let Some(g) = self.netbox_registrations {
            out.push((
                "netbox-registrations-running".into(),
                clamp(g.running as u64),
            ));
            out.push((
                "netbox-registrations-waiting".into(),
                clamp(g.waiting as u64),
            ));
        }
        if let Some((reads, writes)) = self.netbox_requests {
            out.push(("netbox-reads".into(), clamp(reads)));
            out.push(("netbox-writes".into(), clamp(writes)));
        }
        for (class, n) in &self.failures {
            out.push((format!("failures.{class}"), clamp(*n)));
        }
        out
    }
}

impl KeaStats {
    /// Writes what changed since the last call.
    pub fn publish(&self, snapshot: &Snapshot) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in snapshot.kea_values() {
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
