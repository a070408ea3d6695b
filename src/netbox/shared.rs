//! The objects nearly every registration needs and that rarely change —
//! the hook's tag, sites, racks, manufacturers, device types, the role,
//! custom fields — remembered per NetBox client, so a registration reads
//! them once a few minutes instead of every time (a NetBox request costs
//! 100–200 ms on a busy NetBox). An entry can go stale when someone
//! deletes or renames the object in NetBox: entries expire after `ttl`,
//! and a registration that fails after using one clears them all and
//! tries once more (see `register`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SharedObjects {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Value)>>,
}

impl SharedObjects {
    pub fn new(ttl: Duration) -> SharedObjects {
        SharedObjects {
            ttl,
            entries: Mutex::new(HashMap::new()),
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
}
