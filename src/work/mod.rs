//! The work behind the queue: the worker pool (`pool`) runs each lease
//! through the per-lease workflow (`pipeline`: Redfish discovery, the NetBox
//! gate (`gate`), NetBox registration, the state file); the scheduler
//! (`scheduler`) feeds due BMCs from the state file back into the queue and
//! records reconciliations.

pub mod gate;
pub mod pipeline;
pub mod pool;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use crate::redfish::{LoginGuard, PinStore};
use crate::state::Store;
use crate::subnets::LiveSubnets;
use crate::telemetry::latency::Metrics;

/// What the workflow shares with the rest of the hook, made once from the
/// configuration by [`pipeline::build`]: the commands, the scheduler and
/// the statistics read these, the workers write them.
#[derive(Default)]
pub struct Services {
    /// Every BMC's state; None without discovery (or while checking a
    /// configuration).
    pub store: Option<Arc<Store>>,
    /// Latencies and failures; None without discovery.
    pub metrics: Option<Arc<Metrics>>,
    /// NetBox registration; None without NetBox.
    pub netbox: Option<Arc<pipeline::Registrar>>,
    /// The pinned TLS certificates; None unless `redfish.tls-mode` is "pin".
    pub pins: Option<Arc<PinStore>>,
    /// Kea's live subnet table: the packet path filters with it, the
    /// workflow reads a subnet's prefix and site from it.
    pub subnets: Arc<LiveSubnets>,
    /// The login guard: failure budgets per credentials entry
    /// (`bmc-status`, `bmc-credential-lift`, the metrics); None without
    /// discovery.
    pub guard: Option<Arc<LoginGuard>>,
    /// How reconciliation judges what it finds.
    pub reconcile: ReconcilePolicy,
}

/// What reconciliation needs to know of the workflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcilePolicy {
    /// A BMC discovered less than this long ago is up to date.
    pub rediscover_after: Duration,
    /// Whether BMCs are registered in NetBox (not only discovered).
    pub registers: bool,
    /// The worker threads: the scheduler keeps only enough retries queued
    /// to keep them busy, so a fresh lease never waits behind a backlog.
    pub workers: usize,
}
