//! The scheduler thread: the one writer of reconciliation results, and the
//! feeder that moves BMCs from the state store (the durable queue) into the
//! in-memory queue as fast as the workers make room, oldest lease first.
//! It also keeps the per-state counts that the Kea statistics and
//! `bmc-status` read without touching the file.
//!
//! Kea's main thread only walks the lease database (it must be there) and
//! hands the result over; it never waits for SQLite unless a command asks
//! for the answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{ReconcilePolicy, Services};
use crate::intake::admission::{Admission, Origin, Refusal};
use crate::kea::lease::LeaseEvent;
use crate::kea::log::kea_log;
use crate::state::{ActiveLease, Reconciled, State, Store};
use crate::telemetry::latency::Metrics;

/// How often the feeder looks for due BMCs when it found none last time;
/// with a backlog it looks again every `STEP`.
const IDLE_TICK: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(50);
/// Most BMCs taken from the store at once.
const BATCH: usize = 256;
/// Queued jobs per worker up to which the feeder adds due BMCs: enough that
/// no worker waits a step for work, few enough that a fresh lease queued
/// now starts after at most this many retries per worker.
const AHEAD_PER_WORKER: usize = 4;

/// How many due BMCs to queue now, with `depth` jobs queued out of
/// `capacity`. Retries fill the queue only up to a few per worker and
/// never beyond half of it: the rest is kept for lease events, which the
/// packet path drops when the queue is full (a backlog of thousands of due
/// BMCs left by an earlier run once filled all of it at start-up and
/// dropped every fresh lease of the next minute to reconciliation).
pub fn retry_room(depth: usize, capacity: usize, workers: usize) -> usize {
    let ceiling = (workers.max(1) * AHEAD_PER_WORKER).min(capacity / 2).max(1);
    ceiling.saturating_sub(depth).min(BATCH)
}

/// Work for the scheduler from other threads.
pub struct Reconcile {
    pub leases: Vec<ActiveLease>,
    /// Where the outcome goes, for a command waiting on it.
    pub reply: Option<Sender<Result<Reconciled, String>>>,
}

/// Per-state BMC counts as of the scheduler's last look (every second).
#[derive(Default)]
pub struct StateCounts {
    counts: [AtomicU64; State::ALL.len()],
    known: AtomicBool,
}

impl StateCounts {
    /// (state, count) for every state; None before the first look (or
    /// without a state file).
    pub fn get(&self) -> Option<Vec<(State, u64)>> {
        if !self.known.load(Ordering::Acquire) {
            return None;
        }
        Some(
            State::ALL
                .iter()
                .zip(self.counts.iter())
                .map(|(s, c)| (*s, c.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}

pub struct Scheduler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    requests: Sender<Reconcile>,
    counts: Arc<StateCounts>,
}

struct Feeder {
    /// Where the Ansible inventory is written, if anywhere.
    inventory_dir: Option<std::path::PathBuf>,
    admission: Admission,
    /// None without discovery: nothing is ever due, nothing reconciled.
    store: Option<Arc<Store>>,
    metrics: Option<Arc<Metrics>>,
    policy: ReconcilePolicy,
    counts: Arc<StateCounts>,
}

impl Scheduler {
    pub fn start(
        inventory_dir: Option<std::path::PathBuf>,
        admission: Admission,
        services: &Services,
    ) -> Result<Scheduler, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(StateCounts::default());
        // A few pending walks at most: each one holds every active lease.
        let (requests, incoming) = crossbeam_channel::bounded(4);
        let feeder = Feeder {
            inventory_dir,
            admission,
            store: services.store.clone(),
            metrics: services.metrics.clone(),
            policy: services.reconcile,
            counts: counts.clone(),
        };
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bmc-scheduler".into())
            .spawn(move || feeder.run(&flag, &incoming))
            .map_err(|e| format!("cannot start the scheduler thread: {e}"))?;
        Ok(Scheduler {
            stop,
            handle: Some(handle),
            requests,
            counts,
        })
    }

    /// Hands a reconciliation over. False if too many are pending already
    /// (one of those covers this one).
    pub fn reconcile(&self, job: Reconcile) -> bool {
        match self.requests.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn counts(&self) -> &StateCounts {
        &self.counts
    }

    /// Stops and joins the thread (it holds a queue sender, so this comes
    /// before the workers are joined).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Feeder {
    fn run(&self, stop: &AtomicBool, incoming: &Receiver<Reconcile>) {
        let mut last_look = Instant::now() - IDLE_TICK;
        let mut backlog = false;
        let mut inventory_stale = true;
        while !stop.load(Ordering::Acquire) {
            let mut reconciled = false;
            while let Ok(job) = incoming.try_recv() {
                self.reconcile(job);
                reconciled = true;
            }
            if reconciled || backlog || last_look.elapsed() >= IDLE_TICK {
                if last_look.elapsed() >= IDLE_TICK {
                    self.refresh_counts();
                    let changed = self.metrics.as_ref().is_some_and(|m| m.take_changed());
                    if changed || inventory_stale {
                        inventory_stale = !self.write_inventory();
                    }
                }
                last_look = Instant::now();
                backlog = self.feed();
            }
            std::thread::sleep(STEP);
        }
    }

    fn reconcile(&self, job: Reconcile) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.store {
                Some(store) => store.reconcile(
                    &job.leases,
                    self.policy.rediscover_after,
                    self.policy.registers,
                ),
                None => Ok(Reconciled::default()),
            }))
            .map(|r| r.map_err(|e| e.to_string()))
            .unwrap_or_else(|_| Err("internal error during reconciliation".into()));
        match &outcome {
            Ok(r) if r.queued > 0 => kea_log!(
                BMC_DISCOVERY_RECONCILED,
                r.leases,
                r.queued,
                r.up_to_date,
                r.in_progress,
                r.failed,
                r.dead
            ),
            Ok(r) => kea_log!(BMC_DISCOVERY_RECONCILED_NOTHING, r.leases),
            Err(e) => kea_log!(BMC_DISCOVERY_RECONCILE_FAILED, e),
        }
        if let Some(reply) = job.reply {
            let _ = reply.try_send(outcome);
        }
    }

    /// Rewrites the Ansible inventory files that changed. False if they
    /// could not be written (tried again next second).
    fn write_inventory(&self) -> bool {
        let (Some(dir), Some(store)) = (&self.inventory_dir, &self.store) else {
            return true;
        };
        let written = store
            .list(None, None, usize::MAX >> 1)
            .map_err(String::from)
            .and_then(|bmcs| crate::ansible::write_dir(dir, &crate::ansible::cabinets(&bmcs)));
        match written {
            Ok(w) => {
                if w.changed + w.removed > 0 {
                    kea_log!(
                        BMC_DISCOVERY_INVENTORY_WRITTEN,
                        dir.display(),
                        w.files,
                        w.changed,
                        w.removed
                    );
                }
                true
            }
            Err(e) => {
                kea_log!(BMC_DISCOVERY_INVENTORY_FAILED, e);
                false
            }
        }
    }

    fn refresh_counts(&self) {
        let Some(store) = &self.store else {
            return;
        };
        if let Ok(map) = store.counts() {
            for (state, slot) in State::ALL.iter().zip(self.counts.counts.iter()) {
                slot.store(
                    map.get(state.as_str()).copied().unwrap_or(0),
                    Ordering::Relaxed,
                );
            }
            self.counts.known.store(true, Ordering::Release);
        }
    }

    /// Queues due BMCs while there is room for retries (see
    /// [`retry_room`]). Returns whether more may be waiting (the batch was
    /// as large as the room).
    fn feed(&self) -> bool {
        let depth = self.admission.depth();
        let capacity = depth + self.admission.room();
        let want = retry_room(depth, capacity, self.policy.workers).min(self.admission.room());
        if want == 0 {
            return true;
        }
        let due = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.due(want)))
            .unwrap_or_default();
        for ev in &due {
            match self.admission.hand_over(ev, Origin::Store) {
                Ok(()) => kea_log!(BMC_DISCOVERY_REQUEUED, ev.mac_string(), ev.ip()),
                Err(Refusal::InFlight) => {}
                Err(Refusal::QueueFull) => {
                    if let Some(store) = &self.store {
                        let _ = store.release(&ev.mac_string());
                    }
                }
            }
        }
        due.len() == want
    }

    /// Up to `limit` BMCs whose attempt is due (queued, or failed and due
    /// again), oldest lease first, as lease events to replay.
    fn due(&self, limit: usize) -> Vec<LeaseEvent> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        // Held for a minute: handed out once, and due again if the attempt
        // never runs.
        match store.take_due(limit, Duration::from_secs(60)) {
            Ok(rows) => rows
                .iter()
                .filter_map(crate::state::Bmc::lease_event)
                .collect(),
            Err(e) => {
                kea_log!(BMC_DISCOVERY_DUE_READ_FAILED, e);
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retry_room;

    #[test]
    fn retries_leave_most_of_the_queue_to_lease_events() {
        // The default queue and workers: 16 retries ahead at most.
        assert_eq!(retry_room(0, 1024, 4), 16);
        assert_eq!(retry_room(10, 1024, 4), 6);
        assert_eq!(retry_room(16, 1024, 4), 0);
        // Fresh leases queued beyond the ceiling: no retry joins them.
        assert_eq!(retry_room(900, 1024, 4), 0);
        // A small queue keeps half for leases; a queue of one still feeds.
        assert_eq!(retry_room(0, 8, 4), 4);
        assert_eq!(retry_room(4, 8, 4), 0);
        assert_eq!(retry_room(0, 1, 4), 1);
        assert_eq!(retry_room(1, 1, 4), 0);
        // Many workers: at most one batch at once.
        assert_eq!(retry_room(0, 1 << 20, 256), 256);
        assert_eq!(retry_room(0, 1024, 0), 4);
    }
}
