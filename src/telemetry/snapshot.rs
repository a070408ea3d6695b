//! Everything the publishers show, read at one moment: the Kea statistics
//! and the Prometheus page of one tick come from the same snapshot.

use std::collections::BTreeMap;

use serde::Serialize;

use super::catalogue::{Metric, COUNTERS, GAUGES, HISTOGRAMS};
use super::counters::{CostSnapshot, CountersSnapshot};
use super::latency::{HistogramSnapshot, Reachability};

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

/// The workers' latencies at one moment.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub lease_to_done: HistogramSnapshot,
    pub discovery: HistogramSnapshot,
    pub netbox: HistogramSnapshot,
}

/// The NetBox side at one moment.
#[derive(Debug, Clone, Copy)]
pub struct NetBoxState {
    pub reachable: Reachability,
    /// Registrations talking to NetBox and waiting to.
    pub registrations: GateLoad,
    /// Requests sent (reads, writes; a dry run's planned writes count).
    pub requests: (u64, u64),
    /// Registrations' requests merged into bulk ones.
    pub batches: Batches,
}

/// What merging concurrent registrations' requests into bulk requests did
/// (`netbox.batch-size`), since the load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Batches {
    /// Bulk requests sent that carried more than one registration's.
    pub merged: u64,
    /// The registrations' requests those carried.
    pub carried: u64,
    /// The most one carried.
    pub largest: u64,
    /// Requests a bulk rejection sent alone, for their own answer.
    pub sent_alone: u64,
}

/// The credentials entries' failure budgets at one moment.
#[derive(Debug, Clone, Default)]
pub struct CredentialsState {
    /// (entry name, suspended now), in file order.
    pub entries: Vec<(String, bool)>,
    /// Suspensions begun since the load.
    pub suspensions: u64,
}

impl CredentialsState {
    pub fn suspended(&self) -> u64 {
        self.entries.iter().filter(|(_, s)| *s).count() as u64
    }
}

/// Everything `bmc-status`, Kea's statistics and the Prometheus page show,
/// read at one moment from the atomics the workers and the scheduler keep
/// (the state file is not read).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: CountersSnapshot,
    pub queue: QueueStatus,
    /// The lease callouts' cost.
    pub cost: CostSnapshot,
    /// BMCs per state, once the scheduler has counted them (every second).
    pub bmcs: Vec<(&'static str, u64)>,
    /// None without discovery.
    pub latency: Option<Latencies>,
    /// None without NetBox.
    pub netbox: Option<NetBoxState>,
    /// Failed attempts by class.
    pub failures: BTreeMap<String, u64>,
    /// LLDP neighbours newly reported as not cabled, by reason.
    pub lldp_unmatched: BTreeMap<String, u64>,
    /// None without discovery.
    pub credentials: Option<CredentialsState>,
}

impl Snapshot {
    /// The lease callouts' cost: p50, p99, max (ns).
    pub fn callout_ns(&self) -> [u64; 3] {
        [self.cost.p50_ns, self.cost.p99_ns, self.cost.max_ns]
    }

    /// The histograms that are published, in [`HISTOGRAMS`] order:
    /// netbox-ms only with NetBox.
    pub fn histograms(&self) -> Vec<(&'static Metric, &HistogramSnapshot)> {
        let Some(l) = &self.latency else {
            return Vec::new();
        };
        let mut out = vec![
            (&HISTOGRAMS[0], &l.lease_to_done),
            (&HISTOGRAMS[1], &l.discovery),
        ];
        if self.netbox.is_some() {
            out.push((&HISTOGRAMS[2], &l.netbox));
        }
        out
    }

    /// The counters in [`COUNTERS`] order.
    pub fn counter_values(&self) -> [u64; COUNTERS.len()] {
        let c = &self.counters;
        [
            c.seen,
            c.accepted,
            c.not_opted_in,
            c.no_match,
            c.no_mac,
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
