//! The walks of Kea's lease database, on Kea's main thread (the lease
//! managers are safe only there): reconciliation, which hands the active
//! leases of BMCs to the scheduler, and the pool report.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::Hook;
use crate::intake::filter::Verdict;
use crate::kea::log::kea_log;
use crate::kea::shim;
use crate::pool_report::{LeaseSeen, Report};
use crate::state::{ActiveLease, Reconciled};
use crate::subnets::SubnetInfo;
use crate::telemetry::counters::Counter;
use crate::telemetry::prometheus::PoolGauge;
use crate::work::scheduler::Reconcile;

impl Hook {
    /// Walks Kea's lease database (main thread only) and hands the active
    /// leases of BMCs to the scheduler. Returns how many active leases
    /// there were; with `reply`, the scheduler sends its outcome there.
    pub fn reconcile(
        &self,
        reply: Option<crossbeam_channel::Sender<Result<Reconciled, String>>>,
    ) -> Result<usize, String> {
        // The drops this walk answers for count as seen only once the
        // scheduler has its leases: a walk that fails (a PostgreSQL or
        // MySQL lease database can be unreachable; a memfile cannot) or a
        // busy scheduler leaves them unseen, so the tick tries again
        // RECONCILE_AFTER_DROPS_EVERY later instead of waiting for the next
        // reconcile-interval-s.
        let drops = {
            let mut t = self.tick_state();
            t.requested = false;
            t.last = Some(Instant::now());
            self.stats.counters().dropped_queue_full
        };
        let active = shim::active_leases()?;
        let walked = active.len();
        let subnets = self.subnets();
        let leases: Vec<ActiveLease> = active
            .iter()
            .filter_map(|ev| {
                let matched = match self.intake.verdict(subnets, ev) {
                    Verdict::Accept => true,
                    Verdict::NoMatch => false,
                    Verdict::NotOptedIn | Verdict::NoMac => return None,
                };
                Some(ActiveLease {
                    mac: ev.mac_string(),
                    ip: ev.ip().to_string(),
                    subnet_id: ev.subnet_id(),
                    hostname: ev.hostname_text(),
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
        self.tick_state().drops_seen = drops;
        Ok(walked)
    }

    /// The opted-in subnets' pool usage for the metrics page (main thread;
    /// the state file is not read, so the tick never waits on it).
    pub(super) fn pool_gauges(&self) -> Vec<PoolGauge> {
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
                kea_log!(BMC_DISCOVERY_POOL_GAUGES_FAILED, e);
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
        let known = match &self.services.store {
            Some(store) if known => store.macs_by_subnet()?,
            _ => Vec::new(),
        };
        let mut seen: HashMap<u32, u64> = HashMap::new();
        for (_, subnet) in &known {
            *seen.entry(*subnet).or_insert(0) += 1;
        }
        let known: HashSet<String> = known.into_iter().map(|(mac, _)| mac).collect();
        // kea-dhcp4's leases, or kea-dhcp6's address leases (the shim
        // leaves delegated prefixes out).
        let leases: Vec<LeaseSeen> = shim::active_leases()?
            .iter()
            .filter(|ev| chosen.iter().any(|s| s.id == ev.subnet_id()))
            .map(|ev| LeaseSeen {
                ip: ev.ip(),
                subnet_id: ev.subnet_id(),
                bmc: self.intake.verdict(Some(table), ev) == Verdict::Accept
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
}
