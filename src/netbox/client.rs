//! The NetBox REST client: token from a file (either token format), a version
//! check at connect, keep-alive, 429/5xx retried with backoff, pagination,
//! a count of reads and writes (the goal is few of them), and a dry-run
//! mode in which writes are planned and counted but never sent.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::batch::Batcher;
use super::shared::SharedObjects;

pub use super::error::NetBoxError;

/// A registration running (`NetBox::registering`).
pub struct Registering<'a> {
    nb: &'a NetBox,
}

impl Drop for Registering<'_> {
    fn drop(&mut self) {
        if let Some(b) = &self.nb.batcher {
            b.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A request in flight, counted while it is.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn new(n: &'a AtomicUsize) -> Busy<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Busy(n)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the batcher did since the client connected (`NetBox::batches`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Requests that carried the requests of more than one registration.
    pub merged: u64,
    /// The registrations' requests those carried.
    pub parts: u64,
    /// The most one carried.
    pub largest: u64,
    /// Requests a bulk rejection sent alone, for their own answer.
    pub alone: u64,
}

/// The oldest NetBox this client speaks to (MAC address objects, `oob_ip`).
pub const MIN_VERSION: (u32, u32) = (4, 2);

/// The first NetBox with v2 tokens (`nbt_<key>.<secret>`, sent as Bearer).
/// Before it NetBox ignores a Bearer header and answers as to an anonymous
/// user, so a v2 token is refused here rather than on the first write.
pub const V2_TOKENS_SINCE: (u32, u32) = (4, 5);

/// The first release seen to assign a MAC object to the interface created
/// with it as `primary_mac_address` (4.7.3 does; 4.2.9 answers 400 "MAC
/// address ... is not assigned to this interface"). 4.3-4.6 are untested,
/// so they take the longer way too.
pub const PRIMARY_MAC_AT_CREATE_SINCE: (u32, u32) = (4, 7);

/// The NetBox releases the integration tests run against (docs/NETBOX.md).
pub const TESTED_VERSIONS: &str = "4.2.9 and 4.7.3";

/// Major and minor of a `netbox-version` ("4.2.9", "4.7.0-beta1"); 0 for
/// what is missing.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

pub struct NetBox {
    agent: ureq::Agent,
    base: String,
    auth: String,
    /// `netbox-version` from `/api/status/`.
    pub version: String,
    retries: u32,
    reads: AtomicU64,
    writes: AtomicU64,
    dry_run: bool,
    /// Objects registrations share, remembered for a while.
    pub(super) shared: SharedObjects,
    /// Concurrent registrations' requests merged into bulk ones; None:
    /// every request alone (`netbox.batch-size` 1).
    batcher: Option<Batcher>,
}

/// The number a dry run gives the objects it would have created, in the
/// bodies it answers and in the paths and filters that name them. NetBox
/// numbers its objects from 1, and a filter on this one is answered here,
/// never sent. Outside this module a planned object is `ObjectId::Planned`.
const DRY_RUN_ID: u64 = 0;

/// A NetBox object's id, or the mark of an object a dry run only planned:
/// the two never pass for each other (a planned object has no number
/// NetBox knows, and is never remembered, looked up or shown as one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// An object NetBox holds.
    Real(u64),
    /// An object a dry run would have created.
    Planned,
}

impl ObjectId {
    /// The id of `object`, as NetBox (or a dry run) answered it; None when
    /// it has none.
    pub fn of(object: &Value) -> Option<ObjectId> {
        object
            .get("id")
            .and_then(Value::as_u64)
            .map(ObjectId::from_wire)
    }

    fn from_wire(n: u64) -> ObjectId {
        if n == DRY_RUN_ID {
            ObjectId::Planned
        } else {
            ObjectId::Real(n)
        }
    }

    /// The number to put in a request's path, filter or body. A request
    /// naming a planned object is a dry run's, answered by this client
    /// without asking NetBox.
    pub fn wire(self) -> u64 {
        match self {
            ObjectId::Real(n) => n,
            ObjectId::Planned => DRY_RUN_ID,
        }
    }

    /// The id of an object NetBox holds; None for a planned one.
    pub fn real(self) -> Option<u64> {
        match self {
            ObjectId::Real(n) => Some(n),
            ObjectId::Planned => None,
        }
    }
}

/// The number, or "new" for a planned object.
impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectId::Real(n) => write!(f, "{n}"),
            ObjectId::Planned => f.write_str("new"),
        }
    }
}

/// In request bodies: the number (`wire`).
impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.wire())
    }
}

/// How long one request may take to be answered (a bulk one longer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shared objects (sites, racks, device types...) are remembered.
const SHARED_TTL: Duration = Duration::from_secs(300);

impl std::fmt::Debug for NetBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetBox({}, {})", self.base, self.version)
    }
}

/// The header for a token: v2 tokens (`nbt_...`) are Bearer, v1 Token.
fn auth_header(token: &str) -> String {
    if token.starts_with("nbt_") {
        format!("Bearer {token}")
    } else {
        format!("Token {token}")
    }
}

impl NetBox {
    /// Reads the token from `token_file` (first line) and connects.
    pub fn connect_with_token_file(url: &str, token_file: &Path) -> Result<NetBox, String> {
        let text = std::fs::read_to_string(token_file)
            .map_err(|e| format!("NetBox token file {}: {e}", token_file.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!(
                "NetBox token file {} is empty",
                token_file.display()
            ));
        }
        NetBox::connect(url, &token).map_err(|e| e.to_string())
    }

    /// Connects and checks the version (`GET /api/status/`).
    pub fn connect(url: &str, token: &str) -> Result<NetBox, NetBoxError> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .max_idle_connections_per_host(16)
            .user_agent(concat!(
                "kea-hook-bmc-discovery/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let mut nb = NetBox {
            agent,
            base: url.trim_end_matches('/').to_string(),
            auth: auth_header(token),
            version: String::new(),
            retries: 3,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            dry_run: false,
            shared: SharedObjects::new(SHARED_TTL),
            batcher: None,
        };
        let status = nb.get("/api/status/")?;
        let version = status
            .get("netbox-version")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                NetBoxError::Protocol(format!(
                    "{}/api/status/ has no netbox-version: is this NetBox?",
                    nb.base
                ))
            })?
            .to_string();
        let found = major_minor(&version);
        if found < MIN_VERSION {
            return Err(NetBoxError::Protocol(format!(
                "{} runs NetBox {version}, which is too old: NetBox {}.{} or later is \
                 needed (MAC address objects; tested: {TESTED_VERSIONS})",
                nb.base, MIN_VERSION.0, MIN_VERSION.1
            )));
        }
        if token.starts_with("nbt_") && found < V2_TOKENS_SINCE {
            return Err(NetBoxError::Auth(format!(
                "the token is a v2 token (nbt_...), which NetBox {version} at {} does not \
                 know (v2 tokens came with NetBox {}.{}): use a v1 token (40 characters, \
                 sent as \"Token ...\")",
                nb.base, V2_TOKENS_SINCE.0, V2_TOKENS_SINCE.1
            )));
        }
        nb.version = version;
        // Whether the token is good is only known once it is used on an
        // endpoint that needs one (status is public).
        nb.get("/api/users/tokens/?limit=1")?;
        Ok(nb)
    }

    /// Whether this NetBox knows v2 tokens (`nbt_...`, NetBox 4.5 and later).
    pub fn takes_v2_tokens(&self) -> bool {
        major_minor(&self.version) >= V2_TOKENS_SINCE
    }

    /// Whether an interface can be created with an unassigned MAC object
    /// as its primary MAC, which NetBox then assigns to it: one request
    /// fewer per registration with new host ports.
    pub fn assigns_primary_mac_at_create(&self) -> bool {
        major_minor(&self.version) >= PRIMARY_MAC_AT_CREATE_SINCE
    }

    /// From now on, plan writes instead of sending them: POST answers the
    /// body with a planned object's id, PATCH the body with the object's id,
    /// DELETE nothing. Reads still go to NetBox.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// From now on, merge concurrent requests into bulk ones of up to
    /// `size` objects, collected for up to `window` while one of their
    /// kind is in flight (see `batch.rs`); `size` 1: each alone.
    pub fn set_batching(&mut self, size: usize, window: Duration) {
        self.batcher = Batcher::new(size, window);
    }

    /// Merged requests sent, the requests of registrations they carried,
    /// the most one carried, and those a bulk rejection sent alone.
    pub fn batches(&self) -> BatchCounts {
        let Some(b) = &self.batcher else {
            return BatchCounts::default();
        };
        let c = &b.counts;
        BatchCounts {
            merged: c.merged.load(Ordering::Relaxed),
            parts: c.parts.load(Ordering::Relaxed),
            largest: c.largest.load(Ordering::Relaxed),
            alone: c.alone.load(Ordering::Relaxed),
        }
    }

    /// Marks a registration running on this client until the guard is
    /// dropped: while others run, a batch waits a little for them.
    pub fn registering(&self) -> Registering<'_> {
        if let Some(b) = &self.batcher {
            b.active.fetch_add(1, Ordering::Relaxed);
        }
        Registering { nb: self }
    }

    /// One request to NetBox, counted.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, NetBoxError> {
        let _busy = self.batcher.as_ref().map(|b| Busy::new(&b.busy));
        match method {
            "GET" => self.reads.fetch_add(1, Ordering::Relaxed),
            _ => self.writes.fetch_add(1, Ordering::Relaxed),
        };
        self.call(method, path, body)
    }

    /// Write requests (POST, PATCH, DELETE) made, or planned in a dry run.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// GET requests made.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    pub fn get(&self, path: &str) -> Result<Value, NetBoxError> {
        if self.dry_run && filters_on_planned_object(path) {
            // Nothing in NetBox refers to an object a dry run only planned.
            return Ok(serde_json::json!({"count": 0, "next": null, "results": []}));
        }
        if let Some(r) = self.batcher.as_ref().and_then(|b| {
            b.get(path, &|m: &str, p: &str, body: Option<&Value>| {
                self.send(m, p, body)
            })
        }) {
            return r;
        }
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, NetBoxError> {
        if self.dry_run {
            self.writes.fetch_add(1, Ordering::Relaxed);
            return Ok(planned(body, DRY_RUN_ID));
        }
        if let Some(r) = self.batcher.as_ref().and_then(|b| {
            b.post(path, body, &|m: &str, p: &str, body: Option<&Value>| {
                self.send(m, p, body)
            })
        }) {
            return r;
        }
        self.send("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, NetBoxError> {
        if self.dry_run {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let id = path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(DRY_RUN_ID);
            return Ok(planned(body, id));
        }
        if let Some(r) = self.batcher.as_ref().and_then(|b| {
            b.patch(path, body, &|m: &str, p: &str, body: Option<&Value>| {
                self.send(m, p, body)
            })
        }) {
            return r;
        }
        self.send("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<(), NetBoxError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        self.call("DELETE", path, None).map(|_| ())
    }

    /// Bulk delete: `[{"id": 1}, ...]` in one request.
    pub fn delete_many(&self, path: &str, ids: &[u64]) -> Result<(), NetBoxError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        let body = Value::from(
            ids.iter()
                .map(|id| serde_json::json!({ "id": id }))
                .collect::<Vec<_>>(),
        );
        self.call("DELETE", path, Some(&body)).map(|_| ())
    }

    /// Every object of a list endpoint, following `next` links.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, NetBoxError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let page = self.get(&p)?;
            if let Some(results) = page.get("results").and_then(Value::as_array) {
                out.extend(results.iter().cloned());
            }
            next = page
                .get("next")
                .and_then(Value::as_str)
                .map(|n| self.relative(n));
        }
        Ok(out)
    }

    /// `next` links are absolute; keep our own scheme, host and port.
    fn relative(&self, url: &str) -> String {
        match url.find("/api/") {
            Some(i) => url[i..].to_string(),
            None => url.to_string(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, NetBoxError> {
        let url = format!("{}{path}", self.base);
        // A bulk request is many requests' work: its answer may take as
        // long as theirs together.
        let objects = body.and_then(Value::as_array).map_or(0, Vec::len)
            + path
                .split_once('?')
                .map_or(0, |(_, q)| q.matches('&').count());
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(500) * objects as u32;
        let mut attempt = 0;
        loop {
            let req = self
                .agent
                .request(method, &url)
                .timeout(timeout)
                .set("Authorization", &self.auth)
                .set("Accept", "application/json");
            let result = match body {
                Some(b) => req
                    .set("Content-Type", "application/json")
                    .send_string(&b.to_string()),
                None => req.call(),
            };
            let (err, wait) = match result {
                Ok(resp) => return read_json(resp, method, path),
                Err(ureq::Error::Status(code, resp)) => {
                    let wait = resp
                        .header("Retry-After")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = body_text(resp);
                    match code {
                        401 | 403 => {
                            return Err(NetBoxError::Auth(format!("{method} {path}: {text}")))
                        }
                        429 | 502..=504 => (
                            NetBoxError::Unavailable(format!(
                                "{method} {path} answered {code}: {text}"
                            )),
                            wait,
                        ),
                        _ => {
                            return Err(NetBoxError::Rejected {
                                status: code,
                                message: format!("{method} {path}: {text}"),
                            })
                        }
                    }
                }
                Err(ureq::Error::Transport(t)) => (
                    NetBoxError::Unavailable(format!(
                        "{method} {}{path}: {}",
                        self.base,
                        std::error::Error::source(&t)
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| t.kind().to_string())
                    )),
                    None,
                ),
            };
            // A write that may have reached NetBox is not sent again blindly:
            // the caller re-reads and decides (idempotence lives there).
            if attempt >= self.retries || (method != "GET" && wait.is_none()) {
                return Err(err);
            }
            attempt += 1;
            let backoff = wait.unwrap_or(Duration::from_millis(250 << attempt));
            std::thread::sleep(backoff.min(Duration::from_secs(10)));
        }
    }
}

/// What a dry-run write answers: the body, with `id` on each object.
fn planned(body: &Value, id: u64) -> Value {
    match body {
        Value::Array(a) => Value::from(a.iter().map(|b| planned(b, id)).collect::<Vec<_>>()),
        Value::Object(o) => {
            let mut o = o.clone();
            o.entry("id").or_insert(Value::from(id));
            Value::Object(o)
        }
        other => other.clone(),
    }
}

/// Whether a query filters on the id a dry run gives planned objects
/// (`?device_id=0`, `?interface_id=0`): NetBox would refuse it.
fn filters_on_planned_object(path: &str) -> bool {
    let planned = format!("_id={DRY_RUN_ID}");
    path.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|pair| {
            pair.ends_with(&planned)
                && pair.len() > planned.len()
                && pair[..pair.len() - planned.len()]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
        })
    })
}

fn body_text(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(4096).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    // NetBox's error bodies are JSON objects: show them compactly.
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => v.to_string(),
        Err(_) => text.chars().take(300).collect(),
    }
}

fn read_json(resp: ureq::Response, method: &str, path: &str) -> Result<Value, NetBoxError> {
    if resp.status() == 204 {
        return Ok(Value::Null);
    }
    let mut buf = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| {
            NetBoxError::Unavailable(format!("{method} {path}: reading the answer: {e}"))
        })?;
    serde_json::from_slice(&buf)
        .map_err(|e| NetBoxError::Protocol(format!("{method} {path}: answer is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_formats() {
        assert_eq!(super::auth_header("nbt_abc.def"), "Bearer nbt_abc.def");
        assert_eq!(
            super::auth_header("0123456789abcdef"),
            "Token 0123456789abcdef"
        );
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        use super::{major_minor, MIN_VERSION, V2_TOKENS_SINCE};
        assert_eq!(major_minor("4.2.9"), (4, 2));
        assert_eq!(major_minor("4.7.0-beta1"), (4, 7));
        assert_eq!(major_minor("v4.10.1"), (4, 10));
        assert_eq!(major_minor("garbage"), (0, 0));
        assert!(major_minor("4.1.11") < MIN_VERSION);
        assert!(major_minor("4.2.0") >= MIN_VERSION);
        assert!(major_minor("4.4.10") < V2_TOKENS_SINCE);
        assert!(major_minor("4.10.0") >= V2_TOKENS_SINCE);
    }

    #[test]
    fn dry_runs_answer_filters_on_planned_objects() {
        use super::filters_on_planned_object as f;
        assert!(f("/api/dcim/interfaces/?device_id=0&name=bmc"));
        assert!(f("/api/dcim/inventory-items/?limit=1000&device_id=0"));
        assert!(!f("/api/dcim/interfaces/?device_id=10&name=bmc"));
        assert!(!f("/api/dcim/devices/?serial=AB_id=0"));
        assert!(!f("/api/dcim/devices/0/"));
    }

    #[test]
    fn planned_objects_are_not_numbered() {
        use super::ObjectId;
        let planned = super::planned(&serde_json::json!({"name": "x"}), super::DRY_RUN_ID);
        assert_eq!(ObjectId::of(&planned), Some(ObjectId::Planned));
        assert_eq!(ObjectId::Planned.real(), None);
        assert_eq!(
            ObjectId::of(&serde_json::json!({"id": 7})),
            Some(ObjectId::Real(7))
        );
        assert_eq!(ObjectId::of(&serde_json::json!({"name": "x"})), None);
        assert_eq!(
            serde_json::json!({"device": ObjectId::Real(7)}),
            serde_json::json!({"device": 7})
        );
        assert_eq!(ObjectId::Planned.to_string(), "new");
    }
}
