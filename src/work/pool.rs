//! The worker pool: threads that take accepted leases off the queue and run
//! each through the pipeline (`pipeline.rs`: discover, register, record),
//! counting the outcome and releasing the MAC's in-flight claim.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use super::pipeline::{Done, Pipeline};
use crate::intake::admission::Job;
use crate::intake::inflight::InFlight;
use crate::kea::log::kea_log;
use crate::telemetry::counters::{Counter, Stats};

/// Running worker threads.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pipeline: Arc<dyn Pipeline>,
}

struct Shared {
    pipeline: Arc<dyn Pipeline>,
    stats: Arc<Stats>,
    inflight: Arc<InFlight>,
    stop: Arc<AtomicBool>,
}

impl WorkerPool {
    /// Starts `n` workers on `queue`. On failure, the workers already
    /// started are stopped once the queue's sender is dropped.
    pub fn start(
        n: usize,
        queue: Receiver<Job>,
        pipeline: Arc<dyn Pipeline>,
        stats: Arc<Stats>,
        inflight: Arc<InFlight>,
    ) -> Result<WorkerPool, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            stats,
            inflight,
            stop: stop.clone(),
        });
        let mut pool = WorkerPool {
            handles: Vec::with_capacity(n),
            stop,
            pipeline,
        };
        for i in 0..n {
            let rx = queue.clone();
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bmc-worker-{i}"))
                .spawn(move || run(&rx, &shared));
            match spawned {
                Ok(handle) => pool.handles.push(handle),
                Err(e) => {
                    pool.stop.store(true, Ordering::Release);
                    return Err(format!("cannot start worker thread {i} of {n}: {e}"));
                }
            }
        }
        Ok(pool)
    }

    /// Number of running workers.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the pool has no workers.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Asks the workers to stop; queued jobs are abandoned (and counted).
    /// Call before dropping the queue's sender, then [`WorkerPool::join`].
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.pipeline.stop();
    }

    /// Waits for every worker to exit. The sender must be gone by now, or
    /// idle workers would wait forever.
    pub fn join(self) {
        for handle in self.handles {
            // A worker's panics are caught per job; a join error would mean
            // a panic outside that, which has been logged by the hook.
            let _ = handle.join();
        }
    }
}

/// Idle workers poll the queue, sleeping a little longer each time it is
/// empty, up to this. A worker blocked in `recv()` would make every
/// `try_send` on a packet thread wake it with a futex call, and on a small
/// machine the woken worker then preempts the packet thread: measured, that
/// stretched the callout's p99 from microseconds to a millisecond. Polling
/// keeps the packet path free of system calls for at most this much pickup
/// latency, which is nothing next to a Redfish discovery. The floor matters
/// too: at 0.5 ms, four workers woke thousands of times a second under load
/// and cost Kea ~8 % throughput; at 2 ms the hook is within noise of an
/// empty hook (benches/kea_throughput.rs).
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(20);
const MIN_IDLE_SLEEP: Duration = Duration::from_millis(2);

/// Workers yield the CPU to Kea's packet threads under contention.
const WORKER_NICE: libc::c_int = 10;

fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id
    // only changes this thread's nice value (Linux: per-thread).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICE);
    }
}

fn next_job(queue: &Receiver<Job>, idle_sleep: &mut Duration) -> Option<Job> {
    loop {
        match queue.try_recv() {
            Ok(job) => {
                *idle_sleep = MIN_IDLE_SLEEP;
                return Some(job);
            }
            // Disconnected comes only once the queue is also empty.
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(*idle_sleep);
                *idle_sleep = (*idle_sleep * 2).min(MAX_IDLE_SLEEP);
            }
        }
    }
}

fn run(queue: &Receiver<Job>, shared: &Shared) {
    lower_priority();
    let mut idle_sleep = MIN_IDLE_SLEEP;
    while let Some(job) = next_job(queue, &mut idle_sleep) {
        if shared.stop.load(Ordering::Acquire) {
            shared.stats.bump(Counter::AbandonedAtUnload);
        } else {
            let result = catch_unwind(AssertUnwindSafe(|| shared.pipeline.process(&job.event)));
            match result {
                Ok(Ok(done)) => {
                    shared.stats.bump(Counter::Processed);
                    if done == Done::Succeeded {
                        shared.stats.bump(Counter::Succeeded);
                    }
                }
                Ok(Err(reason)) => {
                    shared.stats.bump(Counter::Failed);
                    kea_log!(BMC_DISCOVERY_LEASE_FAILED, job.event.mac_string(), reason);
                }
                Err(_) => {
                    shared.stats.bump(Counter::Panics);
                    shared.stats.bump(Counter::Failed);
                    kea_log!(BMC_DISCOVERY_WORKER_PANIC, job.event.mac_string());
                }
            }
        }
        if job.claimed {
            shared.inflight.release(job.event.hwaddr_key());
        }
    }
}
