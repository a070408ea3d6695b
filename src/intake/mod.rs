//! The packet-thread intake: what runs inside Kea's lease callouts. Filter
//! the lease (`filter`), merge a MAC already in flight (`inflight`), and
//! hand it to the queue (`admission`). Nothing here allocates, locks, logs
//! or makes a system call on that path (`clock_gettime` is the vDSO's).

pub mod admission;
pub mod filter;
pub mod inflight;

use std::sync::Arc;

use admission::{Admission, Origin, Refusal};
use filter::{Filter, Verdict};
use inflight::InFlight;

use crate::clock::monotonic_ns;
use crate::kea::lease::LeaseEvent;
use crate::subnets::{LiveSubnets, SubnetTable};
use crate::telemetry::counters::{Counter, Stats};

/// The filter, Kea's live subnets and the queue's admission, as the lease
/// callouts use them.
pub struct Intake {
    filter: Filter,
    subnets: Arc<LiveSubnets>,
    /// None once closed (unload): the workers then drain and stop.
    admission: Option<Admission>,
    inflight: Arc<InFlight>,
    stats: Arc<Stats>,
}

impl Intake {
    pub fn new(
        filter: Filter,
        subnets: Arc<LiveSubnets>,
        admission: Admission,
        inflight: Arc<InFlight>,
        stats: Arc<Stats>,
    ) -> Intake {
        Intake {
            filter,
            subnets,
            admission: Some(admission),
            inflight,
            stats,
        }
    }

    /// The packet-thread path: filter, de-duplicate, `try_send`. Never
    /// blocks, never allocates, never logs.
    #[inline]
    pub fn on_lease(&self, ev: &LeaseEvent) {
        self.stats.bump(Counter::Seen);
        match self.filter.check(self.subnets.current(), ev) {
            Verdict::Accept => {
                if let Some(admission) = &self.admission {
                    let _ = admission.hand_over(ev, Origin::Packet);
                }
            }
            Verdict::NotOptedIn => self.stats.bump(Counter::NotOptedIn),
            Verdict::NoMatch => self.stats.bump(Counter::NoMatch),
            Verdict::NoMac => self.stats.bump(Counter::NoMac),
        }
        if ev.0.start_ns != 0 {
            self.stats
                .record_cost(monotonic_ns().saturating_sub(ev.0.start_ns));
        }
    }

    /// Queues a lease from outside a callout (a command): the packet
    /// path's rules, without its filter.
    pub fn submit(&self, ev: &LeaseEvent) -> Result<(), Refusal> {
        match &self.admission {
            Some(admission) => admission.hand_over(ev, Origin::Store),
            None => Err(Refusal::QueueFull),
        }
    }

    /// What the filter says of `ev` in `subnets` (reconciliation, the pool
    /// report: leases read from Kea's lease database).
    pub fn verdict(&self, subnets: Option<&SubnetTable>, ev: &LeaseEvent) -> Verdict {
        self.filter.check(subnets, ev)
    }

    /// Kea's subnets, once the server has reported them.
    pub fn subnets(&self) -> Option<&SubnetTable> {
        self.subnets.current()
    }

    /// Publishes a new subnet table (Kea's main thread, after reconfiguring).
    pub fn set_subnets(&self, table: SubnetTable) {
        self.subnets.set(table);
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.admission.as_ref().map_or(0, Admission::depth)
    }

    /// MACs queued or in a worker.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Drops the intake's sender (unload, after the scheduler has stopped):
    /// idle workers then see the queue disconnected once they have drained
    /// (and counted) what is queued.
    pub fn close(&mut self) {
        self.admission = None;
    }
}
