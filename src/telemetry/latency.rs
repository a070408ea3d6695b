//! What the workers measure: latency histograms (lease → done, Redfish
//! discovery, NetBox registration), failures by class, and whether NetBox
//! answered last time. Workers write these; `bmc-status` and the Kea
//! statistics publisher (kea_stats.rs) read them. Not on the packet path,
//! so plain atomics and one small mutex are enough.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Upper bounds (ms) of the latency buckets; the last is open-ended. Fine
/// below 3 s, where the goals are (p50 < 1 s, p99 < 3 s).
pub const MS_BOUNDS: [u64; 22] = [
    25, 50, 100, 150, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 3_600_000, OPEN,
];

/// The last bucket's bound: it holds everything above the one before.
pub const OPEN: u64 = u64::MAX;

/// A distribution counted into `N` buckets by upper bound, with its sum
/// and max, written without a lock: each latency histogram, and each
/// shard of the callout cost (counters.rs).
pub struct Buckets<const N: usize> {
    counts: [AtomicU64; N],
    sum: AtomicU64,
    max: AtomicU64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Buckets {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

/// What buckets held at one moment, or several buckets summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts<const N: usize> {
    pub counts: [u64; N],
    pub sum: u64,
    pub max: u64,
}

impl<const N: usize> Default for Counts<N> {
    fn default() -> Self {
        Counts {
            counts: [0; N],
            sum: 0,
            max: 0,
        }
    }
}

impl<const N: usize> Buckets<N> {
    /// Counts `value` in the first bucket whose bound in `bounds` is at
    /// least `value` (the last one past them all).
    #[inline]
    pub fn record(&self, bounds: &[u64; N], value: u64) {
        let i = bounds.partition_point(|&b| b < value);
        self.counts[i.min(N - 1)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Adds what these buckets hold to `into`.
    pub fn add_to(&self, into: &mut Counts<N>) {
        for (c, b) in into.counts.iter_mut().zip(&self.counts) {
            *c += b.load(Ordering::Relaxed);
        }
        into.sum += self.sum.load(Ordering::Relaxed);
        into.max = into.max.max(self.max.load(Ordering::Relaxed));
    }
}

/// Where the rank-`q` observation lies: its bucket's index, the
/// observations in the buckets below, and the rank. None when empty or
/// past the last bound.
fn locate(counts: &[u64], q: f64) -> Option<(usize, u64, u64)> {
    let count: u64 = counts.iter().sum();
    if count == 0 {
        return None;
    }
    let rank = ((count as f64) * q).ceil().max(1.0) as u64;
    let mut below = 0;
    for (i, c) in counts.iter().enumerate() {
        if *c > 0 && below + c >= rank {
            return Some((i, below, rank));
        }
        below += c;
    }
    None
}

/// The rank-`q` value of a bucketed distribution: the upper bound of the
/// bucket holding it (so it never understates), the observed max for the
/// open last bucket. Shared with the callout-cost histogram.
pub fn percentile(counts: &[u64], bounds: &[u64], max: u64, q: f64) -> u64 {
    match locate(counts, q) {
        None if counts.iter().all(|c| *c == 0) => 0,
        None => max,
        Some((i, _, _)) => bounds.get(i).map_or(max, |b| (*b).min(max)),
    }
}

/// The rank-`q` value of a bucketed distribution, interpolated linearly
/// inside its bucket (between the bucket's bounds, the upper one clipped at
/// the observed max). For latencies: over a long burst most observations
/// share one wide bucket (60–120 s, say), and its upper bound alone would
/// call the median of a 70 s burst "120 s".
pub fn interpolated_percentile(counts: &[u64], bounds: &[u64], max: u64, q: f64) -> u64 {
    match locate(counts, q) {
        None if counts.iter().all(|c| *c == 0) => 0,
        None => max,
        Some((i, below, rank)) => {
            let upper = bounds.get(i).map_or(max, |b| (*b).min(max));
            let lower = i
                .checked_sub(1)
                .and_then(|j| bounds.get(j))
                .map_or(0, |b| (*b).min(upper));
            let within = (rank - below) as f64 / counts[i] as f64;
            lower + ((upper - lower) as f64 * within).round() as u64
        }
    }
}

/// A latency histogram in milliseconds.
#[derive(Default)]
pub struct Histogram {
    buckets: Buckets<{ MS_BOUNDS.len() }>,
}

/// A histogram at one moment.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_ms: u64,
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    /// Per bucket (same order as `MS_BOUNDS`), not cumulative.
    #[serde(skip)]
    pub counts: Vec<u64>,
}

impl Histogram {
    pub fn record(&self, ms: u64) {
        self.buckets.record(&MS_BOUNDS, ms);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut read = Counts::default();
        self.buckets.add_to(&mut read);
        let (counts, max) = (read.counts.to_vec(), read.max);
        HistogramSnapshot {
            count: counts.iter().sum(),
            sum_ms: read.sum,
            p50_ms: interpolated_percentile(&counts, &MS_BOUNDS, max, 0.50),
            p90_ms: interpolated_percentile(&counts, &MS_BOUNDS, max, 0.90),
            p99_ms: interpolated_percentile(&counts, &MS_BOUNDS, max, 0.99),
            max_ms: max,
            counts,
        }
    }
}

/// NetBox's reachability as last seen: unknown until the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    Unknown,
    Reachable,
    Unreachable,
}

impl Reachability {
    /// As a gauge: 1 reachable, 0 not, -1 not tried yet.
    pub fn gauge(self) -> i64 {
        match self {
            Reachability::Reachable => 1,
            Reachability::Unreachable => 0,
            Reachability::Unknown => -1,
        }
    }
}

/// Everything the workers measure.
#[derive(Default)]
pub struct Metrics {
    /// From the lease (the callout, or the lease's last transaction for
    /// leases found by reconciliation) to registered (or discovered,
    /// without NetBox), retries included.
    pub lease_to_done: Histogram,
    pub discovery: Histogram,
    pub netbox: Histogram,
    failures: Mutex<BTreeMap<String, u64>>,
    /// LLDP neighbours not cabled, by reason, counted when first reported
    /// for a BMC.
    lldp_unmatched: Mutex<BTreeMap<String, u64>>,
    /// 0 unknown, 1 reachable, -1 unreachable.
    netbox_reachable: AtomicI64,
    /// An attempt finished since the inventory was last written.
    changed: AtomicBool,
}

impl Metrics {
    /// One failed attempt, by class (timeout, auth, netbox-unavailable, ...).
    pub fn failed(&self, class: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *f.entry(class.to_string()).or_insert(0) += 1;
    }

    /// A host port's LLDP neighbour newly reported as not cabled, by reason
    /// (switch-unknown, port-taken, ...).
    pub fn lldp_unmatched(&self, reason: &str) {
        let mut f = self
            .lldp_unmatched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *f.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// Every reason, 0 where none was counted: a series that appears only
    /// at its first event hides that event from `increase()`, and alert
    /// rules would not see the first unmatched neighbour.
    pub fn lldp_unmatched_counts(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = crate::netbox::register::cables::REASONS
            .iter()
            .map(|r| (r.to_string(), 0))
            .collect();
        let counted = self
            .lldp_unmatched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counts.extend(counted.iter().map(|(r, n)| (r.clone(), *n)));
        counts
    }

    pub fn set_netbox(&self, reachable: bool) {
        self.netbox_reachable
            .store(if reachable { 1 } else { -1 }, Ordering::Relaxed);
    }

    pub fn netbox(&self) -> Reachability {
        match self.netbox_reachable.load(Ordering::Relaxed) {
            1 => Reachability::Reachable,
            -1 => Reachability::Unreachable,
            _ => Reachability::Unknown,
        }
    }

    /// An attempt finished: what the inventory shows may have changed.
    pub fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// Whether an attempt finished since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_interpolated_inside_their_bucket() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(420); // 400..=500
        }
        for _ in 0..9 {
            h.record(1_200); // 1000..=1500
        }
        h.record(4_000_000); // 3600 s..open
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        // Rank 50 of the 90 in 400..500: 400 + 100 * 50/90.
        assert_eq!(s.p50_ms, 456);
        assert_eq!(s.p90_ms, 500);
        // Rank 99 is the last of the 9 in 1000..1500.
        assert_eq!(s.p99_ms, 1_500);
        assert_eq!(s.max_ms, 4_000_000);
        assert_eq!(s.sum_ms, 90 * 420 + 9 * 1_200 + 4_000_000);
        // The upper bound is clipped at the largest seen: a burst whose
        // BMCs all took 61..70 s has a median near 65 s, not 120 s.
        let h = Histogram::default();
        for ms in 61_000..=70_000 {
            h.record(ms);
        }
        let s = h.snapshot();
        // 60 s (the bucket's floor) + 10 s * 5001/10001.
        assert_eq!(s.p50_ms, 65_001);
        assert_eq!(s.max_ms, 70_000);
        // Bucket upper bounds (the callout cost's conservative reading).
        let counts = h.snapshot().counts;
        assert_eq!(percentile(&counts, &MS_BOUNDS, 70_000, 0.5), 70_000);
        assert_eq!(interpolated_percentile(&[], &MS_BOUNDS, 0, 0.5), 0);
    }

    #[test]
    fn failures_count_by_class() {
        let m = Metrics::default();
        m.failed("timeout");
        m.failed("timeout");
        m.failed("auth");
        assert_eq!(m.failures()["timeout"], 2);
        assert_eq!(m.failures()["auth"], 1);
        assert_eq!(m.netbox(), Reachability::Unknown);
        m.set_netbox(false);
        assert_eq!(m.netbox(), Reachability::Unreachable);
    }

    #[test]
    fn every_lldp_reason_is_served_from_zero() {
        let m = Metrics::default();
        let counts = m.lldp_unmatched_counts();
        assert_eq!(counts.len(), crate::netbox::register::cables::REASONS.len());
        assert!(counts.values().all(|n| *n == 0), "{counts:?}");
        m.lldp_unmatched("switch-unknown");
        m.lldp_unmatched("switch-unknown");
        assert_eq!(m.lldp_unmatched_counts()["switch-unknown"], 2);
        assert_eq!(m.lldp_unmatched_counts()["port-taken"], 0);
    }
}
