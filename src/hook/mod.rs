//! One loaded instance of the hook: configuration, filter, queue, workers and
//! counters, created by `load()` and torn down completely by `unload()`.
//!
//! Kea reloads a hook library as unload + load, and the library may or may
//! not be unmapped in between, so nothing here lives in a lazily initialised
//! static: the only static is the pointer to the current instance.

use std::collections::{HashMap, HashSet};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, TrySendError};
use serde_json::{json, Value};

use crate::clock::monotonic_ns;
use crate::config::Config;
use crate::intake::filter::{Filter, Verdict};
use crate::intake::inflight::{Claim, InFlight};
use crate::kea::lease::LeaseEvent;
use crate::pool_report::{LeaseSeen, Report};
use crate::state::{ActiveLease, Reconciled};
use crate::subnets::{SubnetInfo, SubnetTable};
use crate::telemetry::counters::{Counter, Stats};
use crate::telemetry::kea_stats::{KeaStats, Snapshot};
use crate::telemetry::prometheus::{MetricsServer, PoolGauge};
use crate::work::pool::{Job, Pipeline, WorkerPool};
use crate::work::scheduler::{Reconcile, Scheduler, StateCounts};

use std::time::{Duration, Instant};

/// The running hook.
pub struct Runtime {
    config: Config,
    filter: Filter,
    /// Kea's live subnet table, swapped after each reconfiguration. Replaced
    /// tables are kept in `retired` until the runtime is dropped, so a packet
    /// thread holding a reference can never see it freed.
    subnets: AtomicPtr<SubnetTable>,
    // Boxed on purpose: readers hold `&SubnetTable` into the box, so the
    // table must not move when the vector grows.
    #[allow(clippy::vec_box)]
    retired: Mutex<Vec<Box<SubnetTable>>>,
    sender: Option<Sender<Job>>,
    workers: Option<WorkerPool>,
    inflight: Arc<InFlight>,
    stats: Arc<Stats>,
    loaded_at: u64,
    /// Feeds due BMCs from the state file to the queue; records
    /// reconciliations.
    scheduler: Option<Scheduler>,
    /// Main-thread bookkeeping of the timer tick.
    tick: Mutex<TickState>,
    kea_stats: KeaStats,
    /// Serves the metrics to Prometheus (`metrics-listen`).
    metrics: Option<MetricsServer>,
}

/// When reconciliation last ran and why it should run again.
struct TickState {
    /// Set at (re)configuration: reconcile at the next tick.
    requested: bool,
    last: Option<Instant>,
    drops_seen: u64,
    /// The pool gauges of the metrics page and when they were measured
    /// (None: measure at the next tick).
    pools: Vec<PoolGauge>,
    pools_at: Option<Instant>,
    /// Leases seen when the pool gauges were measured.
    pools_seen: u64,
}

/// How often the metrics page's pool gauges walk Kea's lease database:
/// every minute, and a few seconds after new leases.
const POOL_GAUGES_EVERY: Duration = Duration::from_secs(60);
const POOL_GAUGES_AFTER_LEASES: Duration = Duration::from_secs(3);

/// Reconcile after queue drops only this often: a burst drops many.
const RECONCILE_AFTER_DROPS_EVERY: Duration = Duration::from_secs(5);
/// How often the timer calls `on_tick` on Kea's main thread.
pub const TICK_MS: u32 = 1000;

/// Where a lease handed to the workers comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A callout: a refusal for a full queue is a drop, counted, and
    /// recovered by reconciliation.
    Packet,
    /// The state file or a command: a full queue only delays it.
    Store,
}

/// Hands `ev` to the workers unless its MAC is in flight or the queue is
/// full. Shared by the packet path, the scheduler and the commands.
pub fn hand_over(
    sender: &Sender<Job>,
    inflight: &InFlight,
    stats: &Stats,
    ev: &LeaseEvent,
    origin: Origin,
) -> Result<(), Refusal> {
    let key = ev.hwaddr_key();
    let claimed = match key {
        0 => false,
        _ => match inflight.claim(key) {
            Claim::Claimed => true,
            Claim::Unclaimed => false,
            Claim::AlreadyInFlight => {
                stats.bump(Counter::DuplicateInFlight);
                return Err(Refusal::InFlight);
            }
        },
    };
    match sender.try_send(Job {
        event: *ev,
        claimed,
    }) {
        Ok(()) => {
            stats.bump(match origin {
                Origin::Packet => Counter::Accepted,
                Origin::Store => Counter::Scheduled,
            });
            Ok(())
        }
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            if origin == Origin::Packet {
                stats.bump(Counter::DroppedQueueFull);
            }
            if claimed {
                inflight.release(key);
            }
            Err(Refusal::QueueFull)
        }
    }
}

/// The queue and the workers at one moment.
#[derive(Debug, Clone, Default)]
pub struct QueueStatus {
    pub depth: usize,
    pub capacity: usize,
    pub in_flight: usize,
    pub workers: usize,
}

/// Why a lease was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The same MAC is queued or being worked on already.
    InFlight,
    /// The queue is full (or the hook is stopping).
    QueueFull,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::InFlight => "it is queued or being worked on already",
            Refusal::QueueFull => "the queue is full; try again shortly",
        })
    }
}

impl Runtime {
    /// Starts the workers. `config` is validated, `filter` compiled from it.
    pub fn start(
        config: Config,
        filter: Filter,
        pipeline: Arc<dyn Pipeline>,
    ) -> Result<Runtime, String> {
        // First: a port in use refuses the load before any thread starts.
        let metrics = match config.metrics_listen {
            Some(addr) => Some(MetricsServer::start(addr)?),
            None => None,
        };
        let (sender, receiver) = crossbeam_channel::bounded(config.queue_capacity);
        let inflight = Arc::new(InFlight::new(config.queue_capacity + config.workers));
        let stats = Arc::new(Stats::default());
        let workers = WorkerPool::start(
            config.workers,
            receiver,
            pipeline.clone(),
            stats.clone(),
            inflight.clone(),
        )?;
        let inventory_dir = config
            .ansible_inventory_dir
            .as_ref()
            .map(std::path::PathBuf::from);
        let scheduler = match Scheduler::start(
            inventory_dir,
            sender.clone(),
            inflight.clone(),
            stats.clone(),
            pipeline,
        ) {
            Ok(s) => s,
            Err(e) => {
                workers.request_stop();
                drop(sender);
                workers.join();
                return Err(e);
            }
        };
        Ok(Runtime {
            config,
            filter,
            subnets: AtomicPtr::new(ptr::null_mut()),
            retired: Mutex::new(Vec::new()),
            sender: Some(sender),
            workers: Some(workers),
            inflight,
            stats,
            loaded_at: crate::clock::unix_s() as u64,
            scheduler: Some(scheduler),
            tick: Mutex::new(TickState {
                requested: false,
                last: None,
                drops_seen: 0,
                pools: Vec::new(),
                pools_at: None,
                pools_seen: 0,
            }),
            kea_stats: KeaStats::default(),
            metrics,
        })
    }

    /// The pipeline the workers run (its state store serves commands).
    pub fn pipeline(&self) -> Option<&dyn Pipeline> {
        self.workers.as_ref().map(|w| w.pipeline())
    }

    /// Queues a lease from outside a callout (a command): the packet
    /// path's rules, without its filter.
    pub fn submit(&self, ev: &LeaseEvent) -> Result<(), Refusal> {
        let Some(sender) = &self.sender else {
            return Err(Refusal::QueueFull);
        };
        hand_over(sender, &self.inflight, &self.stats, ev, Origin::Store)
    }

    /// Per-state BMC counts as the scheduler last saw them.
    pub fn state_counts(&self) -> Option<&StateCounts> {
        self.scheduler.as_ref().map(|s| s.counts())
    }

    /// Kea's configuration is live (main thread): reconcile at the next
    /// tick.
    pub fn configured(&self) {
        let mut t = self.tick_state();
        t.requested = true;
        t.pools_at = None;
    }

    fn tick_state(&self) -> std::sync::MutexGuard<'_, TickState> {
        self.tick.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Kea's main thread, every `TICK_MS`: publishes the statistics and
    /// reconciles when it is time (start-up, after queue drops once the
    /// burst has passed, every `reconcile-interval-s`).
    pub fn on_tick(&self) {
        let snapshot = Snapshot::take(self);
        self.kea_stats.publish(&snapshot);
        let mut t = self.tick_state();
        if let Some(server) = &self.metrics {
            let seen = snapshot.counters.seen;
            let due = t.pools_at.is_none_or(|at| {
                at.elapsed() >= POOL_GAUGES_EVERY
                    || (seen != t.pools_seen && at.elapsed() >= POOL_GAUGES_AFTER_LEASES)
            });
            if due {
                t.pools = self.pool_gauges();
                t.pools_at = Some(Instant::now());
                t.pools_seen = seen;
            }
            server.update(crate::telemetry::prometheus::render(
                &snapshot,
                &t.pools,
                self.config.pool_alert_levels,
            ));
        }
        let since = t.last.map(|l| l.elapsed());
        let interval = self.config.reconcile_interval_s;
        let due = t.requested
            || (snapshot.counters.dropped_queue_full > t.drops_seen
                && snapshot.queue.depth <= self.config.queue_capacity / 2
                && since.is_none_or(|s| s >= RECONCILE_AFTER_DROPS_EVERY))
            || (interval > 0 && since.is_some_and(|s| s >= Duration::from_secs(interval)));
        // reconcile() takes the tick state itself.
        drop(t);
        if due {
            if let Err(e) = self.reconcile(None) {
                log::error!("reconciliation: {e}");
            }
        }
    }

    /// Walks Kea's lease database (main thread only) and hands the active
    /// leases of BMCs to the scheduler. Returns how many active leases
    /// there were; with `reply`, the scheduler sends its outcome there.
    pub fn reconcile(
        &self,
        reply: Option<crossbeam_channel::Sender<Result<Reconciled, String>>>,
    ) -> Result<usize, String> {
        {
            let mut t = self.tick_state();
            t.requested = false;
            t.last = Some(Instant::now());
            t.drops_seen = self.stats.counters().dropped_queue_full;
        }
        let active = crate::kea::shim::active_leases()?;
        let walked = active.len();
        let subnets = self.subnets();
        let leases: Vec<ActiveLease> = active
            .iter()
            .filter_map(|ev| {
                let matched = match self.filter.check(subnets, ev) {
                    Verdict::Accept => true,
                    Verdict::NoMatch => false,
                    Verdict::NotOptedIn => return None,
                };
                Some(ActiveLease {
                    mac: ev.mac_string(),
                    ip: ev.ipv4().to_string(),
                    subnet_id: ev.subnet_id(),
                    hostname: String::from_utf8_lossy(ev.hostname()).into_owned(),
                    leased_at_ms: ev.0.cltt.saturating_mul(1000),
                    matched,
                })
            })
            .filter(|l| !l.mac.is_empty())
            .collect();
        self.stats.bump(Counter::Reconciliations);
        let Some(scheduler) = &self.scheduler else {
            return Err("the hook is stopping".into());
        };
        if !scheduler.reconcile(Reconcile { leases, reply }) {
            return Err(
                "earlier reconciliations are still being recorded; try again shortly".into(),
            );
        }
        Ok(walked)
    }

    /// The opted-in subnets' pool usage for the metrics page (main thread;
    /// the state file is not read, so the tick never waits on it).
    fn pool_gauges(&self) -> Vec<PoolGauge> {
        match self.pool_report(None, false, false) {
            Ok(r) => r
                .subnets
                .into_iter()
                .map(|s| PoolGauge {
                    subnet_id: s.subnet_id,
                    subnet: s.subnet,
                    site: s.site.unwrap_or_default(),
                    total: s.total_addresses,
                    assigned: s.assigned_addresses,
                    level: s.level,
                })
                .collect(),
            Err(e) => {
                log::debug!("pool gauges: {e}");
                Vec::new()
            }
        }
    }

    /// `bmc-pool-report` (main thread: walks Kea's lease database): the
    /// opted-in subnets (all with `all`, or only `subnet_id`) with their
    /// pools, leases and, with `known`, the BMCs the state file has seen
    /// there.
    pub fn pool_report(
        &self,
        subnet_id: Option<u32>,
        all: bool,
        known: bool,
    ) -> Result<Report, String> {
        let Some(table) = self.subnets() else {
            return Err(
                "Kea has not handed its subnets to the hook yet (after libreload, \
                        run config-reload)"
                    .into(),
            );
        };
        let chosen: Vec<&SubnetInfo> = table
            .all()
            .iter()
            .filter(|s| subnet_id.map_or(all || s.opted_in, |id| s.id == id))
            .collect();
        if let (Some(id), true) = (subnet_id, chosen.is_empty()) {
            return Err(format!(
                "subnet {id} is not in Kea's configuration; its subnets: {}",
                table
                    .all()
                    .iter()
                    .map(|s| s.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let known = match self.pipeline().and_then(|p| p.state()) {
            Some(store) if known => store.macs_by_subnet()?,
            _ => Vec::new(),
        };
        let mut seen: HashMap<u32, u64> = HashMap::new();
        for (_, subnet) in &known {
            *seen.entry(*subnet).or_insert(0) += 1;
        }
        let known: HashSet<String> = known.into_iter().map(|(mac, _)| mac).collect();
        let leases: Vec<LeaseSeen> = crate::kea::shim::active_leases()?
            .iter()
            .filter(|ev| chosen.iter().any(|s| s.id == ev.subnet_id()))
            .map(|ev| LeaseSeen {
                ip: ev.ipv4(),
                subnet_id: ev.subnet_id(),
                bmc: self.filter.check(Some(table), ev) == Verdict::Accept
                    || known.contains(&ev.mac_string()),
                valid_lifetime_s: ev.0.valid_lifetime,
            })
            .collect();
        Ok(crate::pool_report::build(
            &chosen,
            &leases,
            &seen,
            self.config.pool_alert_levels,
        ))
    }

    /// The validated parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters and histograms.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Kea's subnets, once the server has reported them.
    pub fn subnets(&self) -> Option<&SubnetTable> {
        let p = self.subnets.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in set_subnets
        // and is freed only in Drop, which needs `&mut self`.
        unsafe { p.as_ref() }
    }

    /// Publishes a new subnet table (Kea's main thread, after reconfiguring).
    pub fn set_subnets(&self, table: SubnetTable) {
        if let Some(w) = &self.workers {
            w.pipeline().subnets_changed(table.all());
        }
        let new = Box::into_raw(Box::new(table));
        let old = self.subnets.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` came from Box::into_raw and is no longer published.
            let old = unsafe { Box::from_raw(old) };
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(old);
        }
    }

    /// The packet-thread path: filter, de-duplicate, `try_send`. Never
    /// blocks, never allocates, never logs.
    #[inline]
    pub fn on_lease(&self, ev: &LeaseEvent) {
        self.stats.bump(Counter::Seen);
        match self.filter.check(self.subnets(), ev) {
            Verdict::Accept => self.enqueue(ev),
            Verdict::NotOptedIn => self.stats.bump(Counter::NotOptedIn),
            Verdict::NoMatch => self.stats.bump(Counter::NoMatch),
        }
        if ev.0.start_ns != 0 {
            self.stats
                .record_cost(monotonic_ns().saturating_sub(ev.0.start_ns));
        }
    }

    fn enqueue(&self, ev: &LeaseEvent) {
        if let Some(sender) = &self.sender {
            let _ = hand_over(sender, &self.inflight, &self.stats, ev, Origin::Packet);
        }
    }

    /// The queue and the workers right now.
    pub fn queue_status(&self) -> QueueStatus {
        QueueStatus {
            depth: self.sender.as_ref().map_or(0, |s| s.len()),
            capacity: self.config.queue_capacity,
            in_flight: self.inflight.len(),
            workers: self.workers.as_ref().map_or(0, |w| w.len()),
        }
    }

    /// The statistics written into Kea's StatsMgr.
    pub fn kea_stats(&self) -> &KeaStats {
        &self.kea_stats
    }

    /// The `bmc-status` report.
    pub fn status(&self) -> Value {
        let q = self.queue_status();
        let subnets = self.subnets();
        let opted_in: Vec<u32> = subnets.map_or_else(
            || self.config.subnet_ids.clone(),
            |t| {
                t.all()
                    .iter()
                    .filter(|s| s.opted_in)
                    .map(|s| s.id)
                    .collect()
            },
        );
        json!({
            "version": crate::VERSION,
            "loaded-at": self.loaded_at,
            "workers": q.workers,
            "queue": {
                "depth": q.depth,
                "capacity": q.capacity,
                "in-flight": q.in_flight,
            },
            "subnets": {
                "configured": subnets.map_or(0, |t| t.all().len()),
                "opted-in": opted_in,
            },
            "events": self.stats.counters(),
            "callout-cost": self.stats.cost(),
        })
    }

    /// Stops and joins every worker. Queued events are abandoned and counted;
    /// reconciliation finds their leases again. (Dropping does the same.)
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(workers) = &self.workers {
            workers.request_stop();
        }
        // The scheduler holds a sender: it goes before the workers are
        // joined, so that they see the queue disconnected.
        if let Some(mut scheduler) = self.scheduler.take() {
            scheduler.stop();
        }
        if let Some(workers) = self.workers.take() {
            // Dropping the only sender wakes idle workers with "disconnected"
            // once they have drained (and counted) what is queued.
            self.sender = None;
            workers.join();
        }
        let p = self.subnets.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw; `&mut self` means no reader.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// The instance Kea's callouts and commands reach.
static CURRENT: AtomicPtr<Runtime> = AtomicPtr::new(ptr::null_mut());

/// Makes `runtime` current. Returns any instance that was still installed
/// (a load without unload), which the caller shuts down.
pub fn install(runtime: Runtime) -> Option<Box<Runtime>> {
    let old = CURRENT.swap(Box::into_raw(Box::new(runtime)), Ordering::AcqRel);
    // SAFETY: non-null pointers in CURRENT come from Box::into_raw above.
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

/// Takes the current instance away (unload).
///
/// Kea calls `unload()` only with packet processing stopped (reconfiguration
/// and shutdown run in a multi-threading critical section), so no callout
/// can still be using the instance when it is freed.
pub fn uninstall() -> Option<Box<Runtime>> {
    let old = CURRENT.swap(ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: as in install.
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

/// Runs `f` on the current instance, if the hook is loaded.
#[inline]
pub fn with_current<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: see uninstall: the instance outlives every callout and command.
    unsafe { p.as_ref() }.map(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kea::lease::tests::event;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Condvar;

    /// Blocks every worker until released, to make queue states exact.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
        processed: AtomicUsize,
    }
    impl Pipeline for Gate {
        fn process(&self, _: &LeaseEvent) -> Result<(), String> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            self.processed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    impl Gate {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn runtime(json: &str, gate: Arc<Gate>) -> Runtime {
        let config = Config::from_json(json).unwrap();
        let filter = Filter::new(&config).unwrap();
        Runtime::start(config, filter, gate).unwrap()
    }

    fn mac(i: u8) -> [u8; 6] {
        [2, 0, 0, 0, 0, i]
    }

    #[test]
    fn full_queue_drops_and_counts_duplicates_are_merged() {
        let gate = Arc::new(Gate::default());
        let rt = runtime(
            r#"{"workers": 1, "queue-capacity": 2, "subnet-ids": [1]}"#,
            gate.clone(),
        );
        rt.on_lease(&event(&mac(1), 1, "", "")); // taken by the worker, which blocks
        std::thread::sleep(std::time::Duration::from_millis(50));
        rt.on_lease(&event(&mac(1), 1, "", "")); // same MAC in flight
        rt.on_lease(&event(&mac(2), 1, "", ""));
        rt.on_lease(&event(&mac(3), 1, "", ""));
        rt.on_lease(&event(&mac(4), 1, "", "")); // queue (2) full
        rt.on_lease(&event(&mac(5), 9, "", "")); // not opted in
        let c = rt.stats().counters();
        assert_eq!(c.seen, 6);
        assert_eq!(c.accepted, 3);
        assert_eq!(c.duplicate_in_flight, 1);
        assert_eq!(c.dropped_queue_full, 1);
        assert_eq!(c.not_opted_in, 1);
        gate.open();
        for _ in 0..500 {
            if rt.stats().counters().processed == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let stats = rt.stats.clone();
        let inflight = rt.inflight.clone();
        rt.shutdown();
        assert_eq!(gate.processed.load(Ordering::SeqCst), 3);
        assert_eq!(stats.counters().processed, 3);
        assert!(inflight.is_empty(), "every claim released");
    }

    #[test]
    fn shutdown_abandons_the_backlog_and_joins() {
        let gate = Arc::new(Gate::default());
        let rt = runtime(
            r#"{"workers": 2, "queue-capacity": 64, "subnet-ids": [1]}"#,
            gate.clone(),
        );
        for i in 0..20 {
            rt.on_lease(&event(&mac(i), 1, "", ""));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let stats = rt.stats.clone();
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                gate.open();
            })
        };
        rt.shutdown();
        opener.join().unwrap();
        let c = stats.counters();
        assert_eq!(c.processed, 2, "only the jobs already taken are finished");
        assert_eq!(c.abandoned_at_unload, 18);
    }

    #[test]
    fn subnet_table_replaces_the_parameter_list() {
        let gate = Arc::new(Gate::default());
        gate.open();
        let rt = runtime(r#"{"workers": 1}"#, gate);
        rt.on_lease(&event(&mac(1), 5, "", ""));
        assert_eq!(rt.stats().counters().not_opted_in, 1);
        let json = r#"{"subnet4": [{"id": 5, "user-context": {"bmc-discovery": true}}]}"#;
        rt.set_subnets(SubnetTable::from_json(json, &[]).unwrap().0);
        rt.set_subnets(SubnetTable::from_json(json, &[]).unwrap().0);
        rt.on_lease(&event(&mac(1), 5, "", ""));
        assert_eq!(rt.stats().counters().accepted, 1);
        assert_eq!(rt.status()["subnets"]["opted-in"], json!([5]));
        rt.shutdown();
    }
}
