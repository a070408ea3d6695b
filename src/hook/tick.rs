//! Kea's main thread, every `TICK_MS`: publish the statistics (Kea's and
//! the Prometheus page), watch this server's HA role (`ha.rs`), and
//! reconcile when it is time.

use std::time::{Duration, Instant};

use super::ha::{parse_heartbeat, Change, HaWatch};
use super::Hook;
use crate::clock::unix_s;
use crate::kea::log::kea_log;
use crate::kea::shim;
use crate::telemetry::prometheus::PoolGauge;

/// How often the timer calls `on_tick` on Kea's main thread.
pub const TICK_MS: u32 = 1000;

/// How often the metrics page's pool gauges walk Kea's lease database:
/// every minute, and a few seconds after new leases.
const POOL_GAUGES_EVERY: Duration = Duration::from_secs(60);
const POOL_GAUGES_AFTER_LEASES: Duration = Duration::from_secs(3);

/// Reconcile after queue drops only this often: a burst drops many.
const RECONCILE_AFTER_DROPS_EVERY: Duration = Duration::from_secs(5);

/// When reconciliation last ran and why it should run again.
#[derive(Default)]
pub(super) struct TickState {
    /// Set at (re)configuration: reconcile at the next tick.
    pub(super) requested: bool,
    pub(super) last: Option<Instant>,
    pub(super) drops_seen: u64,
    /// The pool gauges of the metrics page and when they were measured
    /// (None: measure at the next tick).
    pools: Vec<PoolGauge>,
    pools_at: Option<Instant>,
    /// Leases seen when the pool gauges were measured.
    pools_seen: u64,
    /// This server's HA role, when an HA hook is loaded.
    pub(super) ha: HaWatch,
}

impl Hook {
    pub(super) fn tick_state(&self) -> std::sync::MutexGuard<'_, TickState> {
        self.tick.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Kea's configuration is live (main thread): reconcile at the next
    /// tick.
    pub fn configured(&self) {
        let mut t = self.tick_state();
        t.requested = true;
        t.pools_at = None;
    }

    /// Kea's main thread, every `TICK_MS`: publishes the statistics and
    /// reconciles when it is time (start-up, after queue drops once the
    /// burst has passed, when this server takes over its HA partner's
    /// clients, every `reconcile-interval-s`).
    pub fn on_tick(&self) {
        let snapshot = self.snapshot();
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
        if t.ha.due() {
            watch_ha(&mut t);
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
                kea_log!(BMC_DISCOVERY_RECONCILE_START_FAILED, e);
            }
        }
    }
}

/// Asks the HA hook for this server's role; a takeover requests a
/// reconciliation at this tick.
fn watch_ha(t: &mut TickState) {
    t.ha.polled_at = Some(Instant::now());
    let Some(answer) = shim::ha_heartbeat() else {
        t.ha.role = None;
        return;
    };
    let (state, scopes) = match answer.and_then(|a| parse_heartbeat(&a)) {
        Ok(read) => read,
        Err(e) => {
            if t.ha.error.as_deref() != Some(e.as_str()) {
                kea_log!(BMC_DISCOVERY_HA_UNREADABLE, e);
                t.ha.error = Some(e);
            }
            return;
        }
    };
    t.ha.error = None;
    let served = scopes.join(", ");
    let now = u64::try_from(unix_s()).unwrap_or(0);
    match t.ha.observe(state.clone(), scopes, now) {
        Change::Nothing => {}
        Change::State { from } => kea_log!(BMC_DISCOVERY_HA_STATE, state, from, served),
        Change::TookOver { from, gained } => {
            kea_log!(BMC_DISCOVERY_HA_TAKEOVER, gained.join(", "), state, from);
            t.requested = true;
        }
    }
}
