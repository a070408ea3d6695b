//! The objects nearly every registration needs and that rarely change —
//! the hook's tag, sites, racks, manufacturers, device types, the role,
//! custom fields — remembered per NetBox client, so a registration reads
//! them once a few minutes instead of every time (a NetBox request costs
//! 100–200 ms on a busy NetBox). An entry can go stale when someone
//! deletes or renames the object in NetBox: entries expire after `ttl`,
//! and a registration that fails after using one clears them all and
//! tries once more (see `register`).

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SharedObjects {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Value)>>,
    /// Keys a registration is looking up (or creating) now.
    looking: Mutex<HashSet<String>>,
    done: Condvar,
}

/// The one lookup of a key under way; the others wait for its answer
/// (`SharedObjects::turn`). Dropped: the next may go.
pub struct Turn<'a> {
    objects: &'a SharedObjects,
    key: String,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.objects.looking().remove(&self.key);
        self.objects.done.notify_all();
    }
}

impl SharedObjects {
    pub fn new(ttl: Duration) -> SharedObjects {
        SharedObjects {
            ttl,
            entries: Mutex::new(HashMap::new()),
            looking: Mutex::new(HashSet::new()),
            done: Condvar::new(),
        }
    }

    fn looking(&self) -> MutexGuard<'_, HashSet<String>> {
        self.looking.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no other registration is looking `key` up, then holds
    /// it: when a burst of servers starts, one of them reads (or creates)
    /// the site, rack and device type, and the others take what it found
    /// instead of all asking NetBox at once and racing to create it.
    pub fn turn(&self, key: &str) -> Turn<'_> {
        let mut looking = self.looking();
        while looking.contains(key) {
            looking = self.done.wait(looking).unwrap_or_else(|p| p.into_inner());
        }
        looking.insert(key.to_string());
        Turn {
            objects: self,
            key: key.to_string(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: String, value: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by what NetBox holds (sites, racks, models); expired
        // entries go whenever one is added.
        let ttl = self.ttl;
        entries.retain(|_, (at, _)| at.elapsed() < ttl);
        entries.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let s = SharedObjects::new(Duration::from_millis(50));
        s.put("site:us3".into(), Value::from(3));
        assert_eq!(s.get("site:us3"), Some(Value::from(3)));
        s.clear();
        assert_eq!(s.get("site:us3"), None);
        s.put("site:us3".into(), Value::from(3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.get("site:us3"), None);
    }

    #[test]
    fn one_looks_a_key_up_the_others_wait() {
        let s = SharedObjects::new(Duration::from_secs(60));
        let first = s.turn("site:us3");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let _t = s.turn("site:us3");
                s.get("site:us3")
            });
            // Another key is not held up.
            drop(s.turn("site:fra1"));
            std::thread::sleep(Duration::from_millis(20));
            s.put("site:us3".into(), Value::from(3));
            drop(first);
            assert_eq!(waiter.join().unwrap(), Some(Value::from(3)));
        });
    }
}
