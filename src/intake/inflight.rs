//! Per-MAC de-duplication of work in flight, lock-free and allocation-free.
//!
//! A BMC that renews while its previous event is still queued or being
//! processed must not be discovered twice at once. Packet threads claim the
//! MAC's key before queueing; the worker releases it when done. The table is
//! open addressing over atomics with a bounded probe window, sized well above
//! the most events that can be in flight (queue capacity + workers).
//!
//! It is best effort by design: if a key is released while another thread is
//! half-way through claiming the same key, both may win; if a probe window
//! is full, the event goes through unclaimed. Both cost at most one extra
//! discovery, and everything downstream is idempotent.

use std::sync::atomic::{AtomicU64, Ordering};

const PROBE: usize = 16;

/// Outcome of [`InFlight::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the key and must [`InFlight::release`] it.
    Claimed,
    /// Someone else is already working on this key.
    AlreadyInFlight,
    /// No room in the probe window: proceed, but there is nothing to release.
    Unclaimed,
}

/// The set of hardware-address keys with work in flight.
pub struct InFlight {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

impl InFlight {
    /// A table for up to `in_flight` concurrent keys.
    pub fn new(in_flight: usize) -> InFlight {
        let size = (in_flight.saturating_mul(4)).next_power_of_two().max(64);
        InFlight {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
        }
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        // Fibonacci hashing spreads sequential MACs across the table.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    /// Claims a non-zero key.
    #[inline]
    pub fn claim(&self, key: u64) -> Claim {
        debug_assert!(key != 0);
        let start = self.start(key);
        // First look for the key anywhere in the window: it may sit behind a
        // slot that was empty when it was claimed and has been filled since.
        for i in 0..PROBE {
            if self.slots[(start + i) & self.mask].load(Ordering::Acquire) == key {
                return Claim::AlreadyInFlight;
            }
        }
        for i in 0..PROBE {
            let slot = &self.slots[(start + i) & self.mask];
            match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Claim::Claimed,
                Err(current) if current == key => return Claim::AlreadyInFlight,
                Err(_) => {}
            }
        }
        Claim::Unclaimed
    }

    /// Releases a key obtained with [`Claim::Claimed`].
    pub fn release(&self, key: u64) {
        let start = self.start(key);
        for i in 0..PROBE {
            let slot = &self.slots[(start + i) & self.mask];
            if slot
                .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Keys currently claimed (a snapshot, for status output).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Whether nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn claim_release_claim() {
        let t = InFlight::new(8);
        assert_eq!(t.claim(42), Claim::Claimed);
        assert_eq!(t.claim(42), Claim::AlreadyInFlight);
        assert_eq!(t.claim(43), Claim::Claimed);
        t.release(42);
        assert_eq!(t.len(), 1);
        assert_eq!(t.claim(42), Claim::Claimed);
    }

    #[test]
    fn a_full_window_lets_events_through_unclaimed() {
        let t = InFlight::new(1); // 64 slots
        let mut claimed = 0;
        let mut unclaimed = 0;
        for key in 1..=1000u64 {
            match t.claim(key) {
                Claim::Claimed => claimed += 1,
                Claim::Unclaimed => unclaimed += 1,
                Claim::AlreadyInFlight => panic!("key {key} was never claimed"),
            }
        }
        assert_eq!(claimed, 64);
        assert_eq!(unclaimed, 1000 - 64);
    }

    #[test]
    fn concurrent_claims_of_one_key_have_one_winner() {
        for _ in 0..200 {
            let t = Arc::new(InFlight::new(64));
            let winners: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let t = &t;
                        s.spawn(move || (t.claim(7) == Claim::Claimed) as usize)
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(winners, 1);
        }
    }
}
