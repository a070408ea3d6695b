//! Everything the publishers show, read at one moment: the Kea statistics
//! and the Prometheus page of one tick come from the same snapshot.

use std::collections::BTreeMap;

use serde::Serialize;

use super::catalogue::{Metric, COUNTERS, GAUGES};
use super::counters::CountersSnapshot;
use super::latency::HistogramSnapshot;

/// The queue and the workers at one moment.
#[derive(Debug, Clone, Default)]
pub struct QueueStatus {
    pub depth: usize,
    pub capacity: usize,
    pub in_flight: usize,
    pub workers: usize,
}

/// How many registrations may talk to NetBox at once, do, and wait to
/// (the NetBox gate, `work/gate.rs`), at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GateLoad {
    pub limit: usize,
    pub running: usize,
    pub waiting: usize,
}

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
    pub netbox_registrations: Option<GateLoad>,
    /// NetBox requests (reads, writes); None without NetBox.
    pub netbox_requests: Option<(u64, u64)>,
    pub failures: BTreeMap<String, u64>,
}

impl Snapshot {
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
            c.succeeded,
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
}
