//! At most N registrations talk to NetBox at once, and when more want to,
//! the one whose lease is oldest goes next.
//!
//! Why: NetBox is the slow part (a write costs ~250 ms on a small one) and
//! it does not get faster with more clients; with every worker writing at
//! once, each registration's ~14 requests queue behind everyone else's, so
//! in a burst *every* server finishes late. Redfish discovery keeps all the
//! workers (BMCs are slow one by one, and many of them answer in parallel);
//! only the NetBox step is narrowed, and ordered by lease time so that the
//! servers that powered on first are registered first.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard};

pub use crate::telemetry::GateLoad;

pub struct Gate {
    limit: usize,
    inner: Mutex<Inner>,
    turn: Condvar,
}

#[derive(Default)]
struct Inner {
    running: usize,
    /// (priority, arrival): the smallest goes first.
    waiting: BTreeSet<(i64, u64)>,
    arrivals: u64,
    closed: bool,
}

/// A place inside the gate; leaving it (drop) lets the next one in.
pub struct Pass<'a> {
    gate: &'a Gate,
}

impl Gate {
    /// A gate for `limit` at once (at least one).
    pub fn new(limit: usize) -> Gate {
        Gate {
            limit: limit.max(1),
            inner: Mutex::new(Inner::default()),
            turn: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place; the smallest `priority` (the lease time, in ms)
    /// is let in first, equal ones in arrival order. None once the gate is
    /// closed: the hook is stopping.
    pub fn enter(&self, priority: i64) -> Option<Pass<'_>> {
        let mut inner = self.lock();
        inner.arrivals += 1;
        let me = (priority, inner.arrivals);
        inner.waiting.insert(me);
        loop {
            if inner.closed {
                inner.waiting.remove(&me);
                return None;
            }
            if inner.running < self.limit && inner.waiting.first() == Some(&me) {
                inner.waiting.remove(&me);
                inner.running += 1;
                // A second free place belongs to the next in line, who may
                // be asleep.
                self.turn.notify_all();
                return Some(Pass { gate: self });
            }
            inner = self.turn.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Refuses everyone waiting and everyone to come (unload).
    pub fn close(&self) {
        self.lock().closed = true;
        self.turn.notify_all();
    }

    pub fn load(&self) -> GateLoad {
        let inner = self.lock();
        GateLoad {
            limit: self.limit,
            running: inner.running,
            waiting: inner.waiting.len(),
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut inner = self.gate.lock();
        inner.running -= 1;
        drop(inner);
        self.gate.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Waits until `n` threads wait at the gate (bounded).
    fn until_waiting(gate: &Gate, n: usize) {
        for _ in 0..2_000 {
            if gate.load().waiting == n {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("never {n} waiting: {:?}", gate.load());
    }

    #[test]
    fn oldest_goes_first_and_no_more_than_the_limit() {
        let gate = Arc::new(Gate::new(2));
        let a = gate.enter(50).unwrap();
        let b = gate.enter(60).unwrap();
        assert_eq!(
            gate.load(),
            GateLoad {
                limit: 2,
                running: 2,
                waiting: 0
            }
        );
        // Three arrive while the gate is full, youngest first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (i, priority) in [(0, 30), (1, 20), (2, 10)] {
            let (g, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let pass = g.enter(priority).unwrap();
                order.lock().unwrap().push(priority);
                assert!(g.load().running <= 2);
                // Held until the test has seen who got in.
                std::thread::sleep(Duration::from_millis(20));
                drop(pass);
            }));
            until_waiting(&gate, i + 1);
        }
        drop(a);
        drop(b);
        for t in threads {
            t.join().unwrap();
        }
        let order = order.lock().unwrap().clone();
        // Two places free at once: 10 and 20 go in (either first), then 30.
        assert_eq!(order.len(), 3);
        assert_eq!(order[2], 30, "{order:?}");
        assert_eq!((gate.load().running, gate.load().waiting), (0, 0));
    }

    #[test]
    fn one_at_a_time_is_strict_lease_order() {
        let gate = Arc::new(Gate::new(1));
        let first = gate.enter(0).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (i, priority) in [40, 10, 30, 20].into_iter().enumerate() {
            let (g, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _pass = g.enter(priority).unwrap();
                order.lock().unwrap().push(priority);
            }));
            until_waiting(&gate, i + 1);
        }
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30, 40]);
    }

    #[test]
    fn closing_releases_the_waiting() {
        let gate = Arc::new(Gate::new(1));
        let _held = gate.enter(0).unwrap();
        let g = gate.clone();
        let waiter = std::thread::spawn(move || g.enter(1).is_none());
        until_waiting(&gate, 1);
        gate.close();
        assert!(waiter.join().unwrap(), "a closed gate lets nobody in");
        assert!(gate.enter(2).is_none());
    }
}
