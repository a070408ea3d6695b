//! Counters and the callout-cost histogram.
//!
//! Packet threads update these on every lease, so they are sharded: each
//! thread writes to its own cache-line-padded shard (picked once per thread)
//! and readers sum the shards. No lock, no shared cache line on the hot path.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use serde::Serialize;

use super::latency::{Buckets, Counts, OPEN};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Real leases the callouts saw (DHCPDISCOVER excluded).
    Seen,
    /// Handed to the worker pool.
    Accepted,
    /// Subnet not opted in.
    NotOptedIn,
    /// Opted-in subnet, no pattern matched.
    NoMatch,
    /// A DHCPv6 lease for which Kea found no MAC address (its mac-sources):
    /// the hook identifies BMCs by MAC, so it leaves these out for now.
    NoMac,
    /// Same MAC already queued or being processed.
    DuplicateInFlight,
    /// The queue was full: dropped here, recovered by reconciliation.
    DroppedQueueFull,
    /// Processed by a worker without an error: attempts that succeeded,
    /// and leases with nothing to do (a renewal of a BMC discovered
    /// recently or dead, a replay no longer due, a lease only logged).
    Processed,
    /// Processed by a worker with an error: an attempt that failed.
    Failed,
    /// Attempts that ended registered in NetBox (or discovered, without
    /// NetBox): `attempts-succeeded`.
    Succeeded,
    /// Still queued when the hook was unloaded.
    AbandonedAtUnload,
    /// Queued from the state file (retries, reconciliation) or a command.
    Scheduled,
    /// Reconciliations of Kea's lease database run.
    Reconciliations,
    /// Panics caught at the FFI boundary or in a worker.
    Panics,
}

const COUNTERS: usize = Counter::Panics as usize + 1;

/// Upper bounds (ns) of the callout-cost histogram buckets; the last bucket
/// is everything above the previous bound.
pub const COST_BOUNDS_NS: [u64; 16] = [
    250, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500, 10_000, 20_000, 50_000,
    100_000, 1_000_000, OPEN,
];

#[derive(Default)]
struct Shard {
    counters: [AtomicU64; COUNTERS],
    cost: Buckets<{ COST_BOUNDS_NS.len() }>,
}

const SHARDS: usize = 16;

/// All counters of one loaded instance of the hook.
pub struct Stats {
    shards: Box<[CachePadded<Shard>]>,
}

static NEXT_THREAD_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // A const-initialised Cell<usize> needs no destructor, so touching it on
    // a Kea thread does not pin this library in memory (see ARCHITECTURE.md).
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn thread_slot() -> usize {
    THREAD_SLOT.with(|slot| {
        let mut s = slot.get();
        if s == usize::MAX {
            s = NEXT_THREAD_SLOT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            slot.set(s);
        }
        s
    })
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Shard::default()))
                .collect(),
        }
    }
}

/// A point-in-time sum of all shards.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct CountersSnapshot {
    pub seen: u64,
    pub accepted: u64,
    pub filtered_out: u64,
    pub not_opted_in: u64,
    pub no_match: u64,
    pub no_mac: u64,
    pub duplicate_in_flight: u64,
    pub dropped_queue_full: u64,
    pub processed: u64,
    pub failed: u64,
    /// Published as `attempts-succeeded` (Kea, Prometheus, `bmc-status`),
    /// not as an event.
    #[serde(skip)]
    pub succeeded: u64,
    pub abandoned_at_unload: u64,
    pub scheduled: u64,
    pub reconciliations: u64,
    pub panics: u64,
}

/// One histogram bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    #[serde(rename = "le-ns")]
    pub le_ns: serde_json::Value,
    pub count: u64,
}

/// Callout cost percentiles. Values are bucket upper bounds, so they never
/// understate the cost.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct CostSnapshot {
    pub count: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// `{"le-ns": bound, "count": n}` for every non-empty bucket; the open
    /// last bucket has `"le-ns": "+Inf"` (Kea's JSON holds only int64).
    pub buckets: Vec<Bucket>,
}

impl Stats {
    #[inline]
    fn shard(&self) -> &Shard {
        &self.shards[thread_slot()]
    }

    /// Adds one to a counter.
    #[inline]
    pub fn bump(&self, counter: Counter) {
        self.shard().counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, counter: Counter, n: u64) {
        self.shard().counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Records the cost of one callout.
    #[inline]
    pub fn record_cost(&self, ns: u64) {
        self.shard().cost.record(&COST_BOUNDS_NS, ns);
    }

    fn total(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.counters[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Current counter values.
    pub fn counters(&self) -> CountersSnapshot {
        let not_opted_in = self.total(Counter::NotOptedIn);
        let no_match = self.total(Counter::NoMatch);
        let no_mac = self.total(Counter::NoMac);
        CountersSnapshot {
            seen: self.total(Counter::Seen),
            accepted: self.total(Counter::Accepted),
            filtered_out: not_opted_in + no_match + no_mac,
            not_opted_in,
            no_match,
            no_mac,
            duplicate_in_flight: self.total(Counter::DuplicateInFlight),
            dropped_queue_full: self.total(Counter::DroppedQueueFull),
            processed: self.total(Counter::Processed),
            failed: self.total(Counter::Failed),
            succeeded: self.total(Counter::Succeeded),
            abandoned_at_unload: self.total(Counter::AbandonedAtUnload),
            scheduled: self.total(Counter::Scheduled),
            reconciliations: self.total(Counter::Reconciliations),
            panics: self.total(Counter::Panics),
        }
    }

    /// Current callout-cost distribution.
    pub fn cost(&self) -> CostSnapshot {
        let mut all = Counts::default();
        for s in self.shards.iter() {
            s.cost.add_to(&mut all);
        }
        let Counts { counts, sum, max } = all;
        let count: u64 = counts.iter().sum();
        let percentile =
            |q| crate::telemetry::latency::percentile(&counts, &COST_BOUNDS_NS, max, q);
        CostSnapshot {
            count,
            mean_ns: sum.checked_div(count).unwrap_or(0),
            p50_ns: percentile(0.50),
            p90_ns: percentile(0.90),
            p99_ns: percentile(0.99),
            p999_ns: percentile(0.999),
            max_ns: max,
            buckets: COST_BOUNDS_NS
                .iter()
                .zip(counts.iter())
                .filter(|(_, c)| **c > 0)
                .map(|(b, c)| Bucket {
                    le_ns: if *b == OPEN {
                        serde_json::json!("+Inf")
                    } else {
                        serde_json::json!(b)
                    },
                    count: *c,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_across_threads() {
        let stats = Stats::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        stats.bump(Counter::Seen);
                    }
                    stats.bump(Counter::NoMatch);
                });
            }
        });
        let c = stats.counters();
        assert_eq!(c.seen, 8000);
        assert_eq!(c.no_match, 8);
        assert_eq!(c.filtered_out, 8);
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let stats = Stats::default();
        for _ in 0..98 {
            stats.record_cost(300); // bucket <= 500
        }
        stats.record_cost(4_500); // bucket <= 5000
        stats.record_cost(2_000_000); // open bucket
        let c = stats.cost();
        assert_eq!(c.count, 100);
        assert_eq!(c.p50_ns, 500);
        assert_eq!(c.p99_ns, 5_000);
        assert_eq!(c.p999_ns, 2_000_000);
        assert_eq!(c.max_ns, 2_000_000);
        let buckets = serde_json::to_string(&c.buckets).unwrap();
        assert_eq!(
            buckets,
            r#"[{"le-ns":500,"count":98},{"le-ns":5000,"count":1},{"le-ns":"+Inf","count":1}]"#
        );
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Stats::default().cost(), CostSnapshot::default());
    }
}
