//! Queue admission: the one way onto the bounded queue between Kea's
//! threads and the workers, shared by the packet path, the scheduler and
//! the commands. A MAC already in flight is merged; a full queue refuses.
//! No allocation, no lock, no system call: it runs on packet threads.

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::inflight::{Claim, InFlight};
use crate::kea::lease::LeaseEvent;
use crate::telemetry::counters::{Counter, Stats};

/// One unit of work on the queue.
#[derive(Clone, Copy)]
pub struct Job {
    /// The lease as the shim copied it.
    pub event: LeaseEvent,
    /// Whether this job owns the MAC's in-flight claim (and must release it).
    pub claimed: bool,
}

/// Where a lease handed to the workers comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A callout: a refusal for a full queue is a drop, counted, and
    /// recovered by reconciliation.
    Packet,
    /// The state file or a command: a full queue only delays it.
    Store,
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

/// The queue's sending side with its de-duplication and counters. Every
/// clone holds a sender: the workers see the queue disconnected only once
/// every clone is gone.
#[derive(Clone)]
pub struct Admission {
    sender: Sender<Job>,
    inflight: Arc<InFlight>,
    stats: Arc<Stats>,
}

impl Admission {
    pub fn new(sender: Sender<Job>, inflight: Arc<InFlight>, stats: Arc<Stats>) -> Admission {
        Admission {
            sender,
            inflight,
            stats,
        }
    }

    /// Hands `ev` to the workers unless its MAC is in flight or the queue
    /// is full.
    #[inline]
    pub fn hand_over(&self, ev: &LeaseEvent, origin: Origin) -> Result<(), Refusal> {
        let key = ev.hwaddr_key();
        let claimed = match key {
            0 => false,
            _ => match self.inflight.claim(key) {
                Claim::Claimed => true,
                Claim::Unclaimed => false,
                Claim::AlreadyInFlight => {
                    self.stats.bump(Counter::DuplicateInFlight);
                    return Err(Refusal::InFlight);
                }
            },
        };
        match self.sender.try_send(Job {
            event: *ev,
            claimed,
        }) {
            Ok(()) => {
                self.stats.bump(match origin {
                    Origin::Packet => Counter::Accepted,
                    Origin::Store => Counter::Scheduled,
                });
                Ok(())
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if origin == Origin::Packet {
                    self.stats.bump(Counter::DroppedQueueFull);
                }
                if claimed {
                    self.inflight.release(key);
                }
                Err(Refusal::QueueFull)
            }
        }
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.sender.len()
    }

    /// Free places in the queue.
    pub fn room(&self) -> usize {
        self.sender
            .capacity()
            .unwrap_or(0)
            .saturating_sub(self.sender.len())
    }
}
