//! The composition root: one loaded instance of the hook. [`Hook::start`]
//! builds the parts in order (the metrics port, the queue, the workers, the
//! scheduler) and dropping it stops them in the reverse order; it owns
//! them all. The main thread's tick (`tick.rs`) and the walks of Kea's
//! lease database (`leases.rs`: reconciliation, the pool report) are here
//! too, because they use several parts at once.
//!
//! Kea reloads a hook library as unload + load, and the library may or may
//! not be unmapped in between, so nothing here lives in a lazily
//! initialised static (the one pointer to the current instance is in
//! `kea/instance.rs`).

mod ha;
mod leases;
mod tick;

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::intake::admission::{Admission, Refusal};
use crate::intake::filter::Filter;
use crate::intake::inflight::InFlight;
use crate::intake::Intake;
use crate::kea::lease::LeaseEvent;
use crate::subnets::SubnetTable;
use crate::telemetry::counters::Stats;
use crate::telemetry::kea_stats::KeaStats;
use crate::telemetry::prometheus::MetricsServer;
use crate::telemetry::snapshot::{Latencies, NetBoxState};
use crate::telemetry::{CredentialsState, QueueStatus, Snapshot};
use crate::work::pipeline::Pipeline;
use crate::work::pool::WorkerPool;
use crate::work::scheduler::{Scheduler, StateCounts};
use crate::work::Services;

pub use ha::HaRole;
pub use tick::TICK_MS;

/// The running hook.
pub struct Hook {
    config: Config,
    intake: Intake,
    workers: Option<WorkerPool>,
    /// Feeds due BMCs from the state file to the queue; records
    /// reconciliations.
    scheduler: Option<Scheduler>,
    services: Services,
    stats: Arc<Stats>,
    loaded_at: u64,
    /// Main-thread bookkeeping of the timer tick.
    tick: Mutex<tick::TickState>,
    kea_stats: KeaStats,
    /// Serves the metrics to Prometheus (`metrics-listen`).
    metrics: Option<MetricsServer>,
}

impl Hook {
    /// Starts the parts. `config` is validated, `filter` compiled from it,
    /// `pipeline` and `services` built from it (`work::pipeline::build`).
    pub fn start(
        config: Config,
        filter: Filter,
        pipeline: Arc<dyn Pipeline>,
        services: Services,
    ) -> Result<Hook, String> {
        // First: a port in use refuses the load before any thread starts.
        let metrics = match config.metrics_listen {
            Some(addr) => Some(MetricsServer::start(addr)?),
            None => None,
        };
        let (sender, receiver) = crossbeam_channel::bounded(config.queue_capacity);
        let inflight = Arc::new(InFlight::new(config.queue_capacity + config.workers));
        let stats = Arc::new(Stats::default());
        let admission = Admission::new(sender, inflight.clone(), stats.clone());
        let workers = WorkerPool::start(
            config.workers,
            receiver,
            pipeline,
            stats.clone(),
            inflight.clone(),
        )?;
        let inventory_dir = config
            .ansible_inventory_dir
            .as_ref()
            .map(std::path::PathBuf::from);
        let scheduler = match Scheduler::start(inventory_dir, admission.clone(), &services) {
            Ok(s) => s,
            Err(e) => {
                workers.request_stop();
                drop(admission);
                workers.join();
                return Err(e);
            }
        };
        let intake = Intake::new(
            filter,
            services.subnets.clone(),
            admission,
            inflight,
            stats.clone(),
        );
        Ok(Hook {
            config,
            intake,
            workers: Some(workers),
            scheduler: Some(scheduler),
            services,
            stats,
            loaded_at: crate::clock::unix_s() as u64,
            tick: Mutex::new(tick::TickState::default()),
            kea_stats: KeaStats::default(),
            metrics,
        })
    }

    /// A lease from a callout (packet thread): see [`Intake::on_lease`].
    #[inline]
    pub fn on_lease(&self, ev: &LeaseEvent) {
        self.intake.on_lease(ev);
    }

    /// Queues a lease from outside a callout (a command): the packet
    /// path's rules, without its filter.
    pub fn submit(&self, ev: &LeaseEvent) -> Result<(), Refusal> {
        self.intake.submit(ev)
    }

    /// The validated parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters and histograms.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The state store, metrics, NetBox side and pins of the workflow.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Kea's subnets, once the server has reported them.
    pub fn subnets(&self) -> Option<&SubnetTable> {
        self.intake.subnets()
    }

    /// Publishes a new subnet table (Kea's main thread, after reconfiguring).
    pub fn set_subnets(&self, table: SubnetTable) {
        self.intake.set_subnets(table);
    }

    /// Per-state BMC counts as the scheduler last saw them.
    pub fn state_counts(&self) -> Option<&StateCounts> {
        self.scheduler.as_ref().map(|s| s.counts())
    }

    /// The queue and the workers right now.
    pub fn queue_status(&self) -> QueueStatus {
        QueueStatus {
            depth: self.intake.depth(),
            capacity: self.config.queue_capacity,
            in_flight: self.intake.in_flight(),
            workers: self.workers.as_ref().map_or(0, |w| w.len()),
        }
    }

    /// The statistics written into Kea's StatsMgr.
    pub fn kea_stats(&self) -> &KeaStats {
        &self.kea_stats
    }

    /// Everything the publishers show, read now from the atomics the
    /// workers and the scheduler keep (the state file is not read).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            counters: self.stats.counters(),
            queue: self.queue_status(),
            cost: self.stats.cost(),
            ..Snapshot::default()
        };
        if let Some(counts) = self.state_counts().and_then(|c| c.get()) {
            s.bmcs = counts.into_iter().map(|(st, n)| (st.as_str(), n)).collect();
        }
        if let Some(m) = &self.services.metrics {
            s.latency = Some(Latencies {
                lease_to_done: m.lease_to_done.snapshot(),
                discovery: m.discovery.snapshot(),
                netbox: m.netbox.snapshot(),
            });
            s.netbox = self.services.netbox.as_ref().map(|nb| NetBoxState {
                reachable: m.netbox(),
                registrations: nb.load(),
                requests: nb.requests(),
                batches: nb.batches(),
            });
            s.failures = m.failures();
            s.lldp_unmatched = m.lldp_unmatched_counts();
        }
        if let Some(g) = &self.services.guard {
            s.credentials = Some(CredentialsState {
                entries: g
                    .status()
                    .into_iter()
                    .map(|c| (c.name, c.suspended))
                    .collect(),
                suspensions: g.suspensions(),
            });
        }
        s
    }

    /// This server's HA state and served scopes, as last asked (every
    /// few seconds); None without an HA hook.
    pub fn ha_role(&self) -> Option<HaRole> {
        self.tick_state().ha.role.clone()
    }

    /// When this instance was loaded (Unix seconds).
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at
    }

    /// The opted-in subnets: Kea's table once it has reported its subnets,
    /// the `subnet-ids` parameter until then.
    pub fn opted_in(&self) -> Vec<u32> {
        self.subnets().map_or_else(
            || self.config.subnet_ids.clone(),
            |t| {
                t.all()
                    .iter()
                    .filter(|s| s.opted_in)
                    .map(|s| s.id)
                    .collect()
            },
        )
    }

    /// Stops and joins every worker. Queued events are abandoned and counted;
    /// reconciliation finds their leases again. (Dropping does the same.)
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Hook {
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
            // Dropping the last sender wakes idle workers with
            // "disconnected" once they have drained (and counted) what is
            // queued.
            self.intake.close();
            workers.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kea::lease::tests::event;
    use crate::work::pipeline::Done;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Condvar;

    /// Blocks every worker until released, to make queue states exact.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
        processed: AtomicUsize,
    }
    impl Pipeline for Gate {
        fn process(&self, _: &LeaseEvent) -> Result<Done, String> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            self.processed.fetch_add(1, Ordering::SeqCst);
            Ok(Done::Succeeded)
        }
    }
    impl Gate {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn runtime(json: &str, gate: Arc<Gate>) -> Hook {
        let config = Config::from_json(json).unwrap();
        let filter = Filter::new(&config).unwrap();
        Hook::start(config, filter, gate, Services::default()).unwrap()
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
        for _ in 0..500 {
            if rt.queue_status().in_flight == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(rt.queue_status().in_flight, 0, "every claim released");
        let stats = rt.stats.clone();
        rt.shutdown();
        assert_eq!(gate.processed.load(Ordering::SeqCst), 3);
        assert_eq!(stats.counters().processed, 3);
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
        assert_eq!(rt.opted_in(), [5]);
        rt.shutdown();
    }
}
