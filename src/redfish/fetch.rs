//! Fetching a BMC's resources in waves: every link known at a point is
//! fetched at once (a few requests in parallel), collections with `$expand`
//! where the service root offers it, and every answer is cached by its
//! `@odata.id`, so a resource is never asked for twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;

use super::error::Error;
use super::http::{Client, Fetch};
use super::values::odata_id;
use crate::kea::log::kea_log;

/// The query that expands a collection's members (one level, subordinate
/// resources only), as Redfish 1.x defines it.
const EXPAND: &str = "$expand=.($levels=1)";

/// A collection's member links, each with its cache key.
type MemberList = Arc<Vec<(String, String)>>;

pub struct Fetcher<'a> {
    pub client: &'a Client,
    expand: bool,
    parallel: usize,
    cache: Mutex<HashMap<String, Result<Arc<Value>, u16>>>,
    /// The member links of each fetched collection, with their cache keys,
    /// read once when it is stored (not re-read from its JSON at every
    /// look).
    member_lists: Mutex<HashMap<String, MemberList>>,
    /// Cache keys of the links seen: resolving a link as a URL is the
    /// costly part of a look-up, and `wanted` asks about every known link
    /// again after each fetch.
    keys: Mutex<HashMap<String, String>>,
    /// Set by the first failure that is about the connection rather than
    /// one resource (timeout, unreachable, TLS): the BMC is gone, so later
    /// waves stop at once instead of each waiting out its timeout.
    fatal: Mutex<Option<Error>>,
    warnings: Mutex<Vec<String>>,
    /// Cache keys of linked OEM resources that many BMCs link and do not
    /// serve (Dell's DellSwitchConnection): a 404 there is no gap.
    optional: Mutex<HashSet<String>>,
}

/// Cache key: the path without a trailing slash (HPE writes most ids with
/// one, and links to the same resource without).
fn key(path: &str) -> String {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let p = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    match q {
        Some(q) => format!("{p}?{q}"),
        None => p.to_string(),
    }
}

impl<'a> Fetcher<'a> {
    pub fn new(client: &'a Client, expand: bool, parallel: usize) -> Fetcher<'a> {
        Fetcher {
            client,
            expand,
            parallel: parallel.max(1),
            cache: Mutex::new(HashMap::new()),
            member_lists: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            fatal: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            optional: Mutex::new(HashSet::new()),
        }
    }

    /// The URL to ask for a collection with: expanded when supported.
    pub fn coll(&self, path: &str) -> String {
        if self.expand {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}{EXPAND}")
        } else {
            path.to_string()
        }
    }

    pub fn warn(&self, w: String) {
        kea_log!(BMC_DISCOVERY_REDFISH_WARNING, w);
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(w);
    }

    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn fatal(&self) -> Option<Error> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cache key of a link: its path on the BMC, resolved as a URL.
    fn key(&self, link: &str) -> String {
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(link)
        {
            return k.clone();
        }
        let k = key(&self.client.key(link));
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(link.to_string(), k.clone());
        k
    }

    /// A resource already fetched (None when absent, failed or not asked).
    pub fn cached(&self, path: &str) -> Option<Arc<Value>> {
        match self.lock().get(&self.key(path)) {
            Some(Ok(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// Marks `path` as a linked resource the BMC may not serve: a 404 for
    /// it is logged at debug level and is not a warning (a gap of the
    /// inventory). Other failures there still are.
    pub fn optional(&self, path: &str) {
        let k = self.key(path);
        self.optional
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k);
    }

    fn is_optional(&self, path: &str) -> bool {
        let k = self.key(path);
        self.optional
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&k)
    }

    /// Whether `path` was asked for already (whatever the answer).
    pub fn asked(&self, path: &str) -> bool {
        self.lock().contains_key(&self.key(path))
    }

    /// Drops what is known about `path`, so that it is asked again.
    pub fn forget(&self, path: &str) {
        self.lock().remove(&self.key(path));
    }

    /// Fetches every path not asked before, `parallel` at a time.
    pub fn get_many(&self, paths: &[String]) {
        let once = std::sync::atomic::AtomicBool::new(false);
        self.crawl(&|_| {
            if once.swap(true, std::sync::atomic::Ordering::Relaxed) {
                Vec::new()
            } else {
                paths.to_vec()
            }
        });
    }

    /// Fetches everything `wanted` names, and whatever it names once those
    /// answers are in, until it names nothing new: `parallel` requests in
    /// flight, each new link started as soon as a slot frees (no waiting
    /// for a whole wave). The client's request budget bounds the total; the
    /// first failure that ends the discovery stops the rest.
    pub fn crawl(&self, wanted: &(dyn Fn(&Fetcher) -> Vec<String> + Sync)) {
        struct Queue {
            todo: VecDeque<String>,
            scheduled: HashSet<String>,
            in_flight: usize,
        }
        let q = Mutex::new(Queue {
            todo: VecDeque::new(),
            scheduled: HashSet::new(),
            in_flight: 0,
        });
        let cv = Condvar::new();
        let enqueue = |q: &mut Queue, links: Vec<String>| {
            for l in links {
                if !self.asked(&l) && q.scheduled.insert(self.key(&l)) {
                    q.todo.push_back(l);
                }
            }
        };
        {
            let mut g = q.lock().unwrap_or_else(|p| p.into_inner());
            enqueue(&mut g, wanted(self));
            if g.todo.is_empty() || self.fatal().is_some() {
                return;
            }
        }
        let work = || loop {
            let path = {
                let mut g = q.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if self.fatal().is_some() {
                        g.todo.clear();
                    }
                    if let Some(p) = g.todo.pop_front() {
                        g.in_flight += 1;
                        break Some(p);
                    }
                    if g.in_flight == 0 {
                        break None;
                    }
                    g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
                }
            };
            let Some(path) = path else {
                cv.notify_all();
                return;
            };
            self.fetch_one(&path);
            // Asking `wanted` again is worth it only when the queue runs
            // low: with thousands of links queued (a hostile BMC) it would
            // rescan them all after every fetch. Whatever a fetch taught is
            // picked up once the queue is short, the last fetch included.
            let low = q.lock().unwrap_or_else(|p| p.into_inner()).todo.len() < 2 * self.parallel;
            let more = if low { wanted(self) } else { Vec::new() };
            let mut g = q.lock().unwrap_or_else(|p| p.into_inner());
            enqueue(&mut g, more);
            g.in_flight -= 1;
            drop(g);
            cv.notify_all();
        };
        std::thread::scope(|s| {
            for _ in 1..self.parallel {
                s.spawn(work);
            }
            work();
        });
    }

    /// Fetches one resource now (or returns the cached answer).
    pub fn get(&self, path: &str) -> Result<Arc<Value>, u16> {
        if !self.asked(path) && self.fatal().is_none() {
            self.fetch_one(path);
        }
        match self.lock().get(&self.key(path)) {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(code)) => Err(*code),
            None => Err(0),
        }
    }

    fn fetch_one(&self, path: &str) {
        match self.client.get(path) {
            Ok(v) => self.store(path, Ok(v)),
            Err(Fetch::Status(404)) if self.is_optional(path) => {
                kea_log!(BMC_DISCOVERY_REDFISH_OPTIONAL_ABSENT, path);
                self.store(path, Err(404));
            }
            Err(Fetch::Status(code)) => {
                self.warn(format!("GET {path}: HTTP {code}"));
                self.store(path, Err(code));
            }
            Err(Fetch::Failed(e)) => {
                if e.kind.ends_discovery() {
                    let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                    if f.is_none() {
                        *f = Some(e.clone());
                    }
                }
                self.warn(e.message.clone());
                self.store(path, Err(0));
            }
        }
    }

    fn store(&self, path: &str, r: Result<Value, u16>) {
        let path_key = self.key(path);
        let mut ids = None;
        let r = r.map(|mut v| {
            // An expanded collection carries its members: each moves to the
            // cache under its own id, and leaves a Null behind (a link
            // object in its place would cost a B-tree node per member, out
            // of any budget); the member links are kept in `member_lists`.
            if let Some(members) = v.get_mut("Members").and_then(Value::as_array_mut) {
                let mut list = Vec::with_capacity(members.len());
                let mut moved = Vec::new();
                for m in members.iter_mut() {
                    let Some(id) = odata_id(m) else { continue };
                    let k = self.key(&id);
                    if m.as_object().is_some_and(|o| o.len() > 1) {
                        moved.push((k.clone(), std::mem::take(m)));
                    }
                    list.push((id, k));
                }
                let mut cache = self.lock();
                for (k, full) in moved {
                    cache.entry(k).or_insert_with(|| Ok(Arc::new(full)));
                }
                ids = Some(Arc::new(list));
            }
            Arc::new(v)
        });
        if let Some(ids) = ids {
            self.member_lists
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path_key.clone(), ids);
        }
        self.lock().insert(path_key, r);
    }

    /// The member links of a fetched collection (asked for expanded or not).
    fn member_ids(&self, coll_path: &str) -> MemberList {
        let lists = self.member_lists.lock().unwrap_or_else(|p| p.into_inner());
        lists
            .get(&self.key(&self.coll(coll_path)))
            .or_else(|| lists.get(&self.key(coll_path)))
            .cloned()
            .unwrap_or_default()
    }

    /// The members of a fetched collection that are in the cache (expanded
    /// or fetched); the others are in `missing_members`.
    pub fn members(&self, coll_path: &str) -> Vec<Arc<Value>> {
        let ids = self.member_ids(coll_path);
        let cache = self.lock();
        ids.iter()
            .filter_map(|(_, k)| match cache.get(k) {
                Some(Ok(v)) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    /// Member links of a fetched collection not fetched (or expanded) yet.
    pub fn missing_members(&self, coll_path: &str) -> Vec<String> {
        let ids = self.member_ids(coll_path);
        let cache = self.lock();
        ids.iter()
            .filter(|(_, k)| !cache.contains_key(k))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<Arc<Value>, u16>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_ignore_trailing_slashes() {
        assert_eq!(
            super::key("/redfish/v1/Systems/1/"),
            "/redfish/v1/Systems/1"
        );
        assert_eq!(super::key("/redfish/v1/"), "/redfish/v1");
        assert_eq!(super::key("/"), "/");
        assert_eq!(super::key("/a/?$expand=x"), "/a?$expand=x");
    }
}
