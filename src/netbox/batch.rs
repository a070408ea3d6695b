//! Requests of concurrent registrations merged into NetBox's bulk requests.
//!
//! Why: NetBox answers a request in a few hundred milliseconds of its CPU
//! whether it carries one object or fifty (one POST of a list creates them
//! in one transaction, one PATCH of a list updates many, and its filters
//! take many values: `?serial=A&serial=B`). A registration is ~14 requests
//! one after another, so a burst of servers registered one request each
//! runs at NetBox's request rate, not at the rate it stores objects.
//!
//! How: each registration still plans and sends its own requests in its
//! own order, exactly as alone (identity, races, dry run and conflicts are
//! decided there, per server). A request of a kind that merges (a POST or
//! PATCH to a list endpoint; a lookup by serial, name, asset tag, address,
//! MAC, device or interface) joins the batch being collected for its
//! endpoint and waits for its own share of the answer. A batch is sent at
//! once when no request of its kind is in flight (an idle system is not
//! delayed), else when it is full (`netbox.batch-size`) or the window
//! (`netbox.batch-window-ms`) has passed, or the one in flight is back.
//!
//! NetBox rejects a whole bulk write when one object is invalid. Then the
//! objects its answer does not blame are sent again together, and each
//! one it blames (or all, when the answer blames none) is sent alone by
//! its own registration, which so gets exactly the answer it would have
//! got alone: its own reason, and its own race handling (a uniqueness
//! error re-reads the winner). A write whose fate is unknown (no answer)
//! is not sent again: every registration in it gets the error and decides.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::{json, Value};

use super::error::NetBoxError;

/// Most objects in a merged lookup's answer pages (NetBox's default
/// MAX_PAGE_SIZE): more are followed by `next`.
const PAGE: usize = 1000;

/// How often a batch waiting for others looks whether they can still come.
const POLL: Duration = Duration::from_millis(5);

/// How a lookup's answer is told apart when many lookups went as one: the
/// filter key that takes many values, and whether an object answered
/// matches a value.
struct Merged {
    endpoint: &'static str,
    key: &'static str,
    /// The other filter keys a lookup of this kind has (their values must
    /// be the same for lookups to merge).
    with: &'static [&'static str],
    matches: fn(&Value, &str) -> bool,
}

fn text_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn id_at(v: &Value, pointer: &str, want: &str) -> bool {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .is_some_and(|n| want.parse::<u64>() == Ok(n))
}

/// The lookups registrations make, with NetBox's own matching of each
/// filter: serials and MACs ignoring case (`iexact`, MAC normalisation),
/// names and asset tags exactly, an address by its host part (any prefix
/// length), objects on an interface or a device by id.
const MERGED: &[Merged] = &[
    // The objects servers share, looked up when a burst starts (each key
    // by one registration at a time, `SharedObjects::turn`).
    Merged {
        endpoint: "extras/tags",
        key: "slug",
        with: &[],
        matches: |o, v| text_at(o, "/slug") == Some(v),
    },
    Merged {
        endpoint: "dcim/sites",
        key: "slug",
        with: &[],
        matches: |o, v| text_at(o, "/slug") == Some(v),
    },
    Merged {
        endpoint: "dcim/racks",
        key: "name",
        with: &["site_id"],
        matches: |o, v| text_at(o, "/name") == Some(v),
    },
    Merged {
        endpoint: "dcim/manufacturers",
        key: "slug",
        with: &[],
        matches: |o, v| text_at(o, "/slug") == Some(v),
    },
    Merged {
        endpoint: "dcim/device-types",
        key: "slug",
        with: &["manufacturer_id"],
        matches: |o, v| text_at(o, "/slug") == Some(v),
    },
    Merged {
        endpoint: "dcim/device-roles",
        key: "slug",
        with: &[],
        matches: |o, v| text_at(o, "/slug") == Some(v),
    },
    Merged {
        endpoint: "extras/custom-fields",
        key: "name",
        with: &[],
        matches: |o, v| text_at(o, "/name") == Some(v),
    },
    Merged {
        endpoint: "dcim/devices",
        key: "serial",
        with: &[],
        matches: |o, v| text_at(o, "/serial").is_some_and(|s| s.eq_ignore_ascii_case(v)),
    },
    Merged {
        endpoint: "dcim/devices",
        key: "asset_tag",
        with: &[],
        matches: |o, v| text_at(o, "/asset_tag") == Some(v),
    },
    Merged {
        endpoint: "dcim/devices",
        key: "name",
        with: &["site_id"],
        matches: |o, v| text_at(o, "/name") == Some(v),
    },
    Merged {
        endpoint: "ipam/ip-addresses",
        key: "address",
        with: &[],
        matches: |o, v| {
            let host = |s: &str| s.split('/').next().and_then(|h| h.parse::<IpAddr>().ok());
            text_at(o, "/address")
                .and_then(host)
                .is_some_and(|h| Some(h) == host(v))
        },
    },
    Merged {
        endpoint: "dcim/mac-addresses",
        key: "mac_address",
        with: &[],
        matches: |o, v| text_at(o, "/mac_address").is_some_and(|m| m.eq_ignore_ascii_case(v)),
    },
    Merged {
        endpoint: "dcim/interfaces",
        key: "device_id",
        with: &["name"],
        matches: |o, v| id_at(o, "/device/id", v),
    },
    Merged {
        endpoint: "dcim/mac-addresses",
        key: "interface_id",
        with: &[],
        matches: |o, v| {
            text_at(o, "/assigned_object_type") == Some("dcim.interface")
                && id_at(o, "/assigned_object_id", v)
        },
    },
    Merged {
        endpoint: "ipam/ip-addresses",
        key: "interface_id",
        with: &[],
        matches: |o, v| {
            text_at(o, "/assigned_object_type") == Some("dcim.interface")
                && id_at(o, "/assigned_object_id", v)
        },
    },
];

/// Decoded `?k=v&...` (values percent-decoded).
fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one registration asked, as a part of a batch.
enum Part {
    /// Objects to create (the caller sent one: `single`).
    Create { objects: Vec<Value>, single: bool },
    /// Objects to update, each with its `id` (the caller sent one to
    /// `/<endpoint>/<id>/`: `single`).
    Update { objects: Vec<Value>, single: bool },
    /// A lookup by one value of the lane's filter key.
    Lookup { value: String },
}

impl Part {
    fn units(&self) -> usize {
        match self {
            Part::Create { objects, .. } | Part::Update { objects, .. } => objects.len(),
            Part::Lookup { .. } => 1,
        }
    }

    fn ids(&self) -> Vec<u64> {
        match self {
            Part::Update { objects, .. } => objects
                .iter()
                .filter_map(|o| o.get("id").and_then(Value::as_u64))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What a registration gets back from its batch.
enum Reply {
    Done(Result<Value, NetBoxError>),
    /// The bulk request blamed this part (or could not say which): send it
    /// alone, for its own answer.
    Alone,
}

struct Item {
    part: Part,
    reply: Sender<Reply>,
}

/// A batch being collected.
struct Open {
    number: u64,
    items: Vec<Item>,
    units: usize,
}

#[derive(Default)]
struct Lane {
    in_flight: usize,
    open: Option<Open>,
    numbers: u64,
}

/// How a lane's batch goes to NetBox.
#[derive(Clone)]
enum Kind {
    Create {
        path: String,
    },
    Update {
        path: String,
    },
    Lookup {
        endpoint: String,
        key: &'static str,
        common: Vec<(String, String)>,
        matches: fn(&Value, &str) -> bool,
    },
}

/// Batches sent, and what they carried.
#[derive(Default)]
pub struct Tally {
    /// Requests that carried the parts of more than one registration.
    pub merged: AtomicU64,
    /// Parts (requests of registrations) those carried.
    pub parts: AtomicU64,
    /// The most parts one carried.
    pub largest: AtomicU64,
    /// Parts a bulk write's rejection sent alone.
    pub alone: AtomicU64,
}

pub struct Batcher {
    size: usize,
    window: Duration,
    /// Requests of this client in flight now, of every kind.
    pub(super) busy: AtomicUsize,
    /// Registrations running on this client now (`NetBox::registering`).
    pub(super) active: AtomicUsize,
    lanes: Mutex<HashMap<String, Lane>>,
    turn: Condvar,
    pub counts: Tally,
}

/// The one request a batch becomes, sent by the caller's client.
pub(super) type Transport<'a> =
    &'a dyn Fn(&str, &str, Option<&Value>) -> Result<Value, NetBoxError>;

impl Batcher {
    /// Batches of up to `size` objects, collected for at most `window`
    /// while one of their kind is in flight. None for `size` 1: every
    /// request goes alone, as before batching.
    pub fn new(size: usize, window: Duration) -> Option<Batcher> {
        (size > 1).then(|| Batcher {
            size,
            window,
            busy: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            lanes: Mutex::new(HashMap::new()),
            turn: Condvar::new(),
            counts: Tally::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A GET, merged with others of its kind when it is a lookup that
    /// merges; None: send it alone.
    pub(super) fn get(&self, path: &str, send: Transport) -> Option<Result<Value, NetBoxError>> {
        let rest = path.strip_prefix("/api/")?;
        let (endpoint, query) = rest.split_once("/?")?;
        let mut given = pairs(query);
        given.sort();
        let m = MERGED.iter().find(|m| {
            m.endpoint == endpoint
                && given.len() == 1 + m.with.len()
                && given.iter().filter(|(k, _)| k == m.key).count() == 1
                && m.with.iter().all(|w| given.iter().any(|(k, _)| k == w))
        })?;
        let value = given.iter().find(|(k, _)| k == m.key)?.1.clone();
        let common: Vec<(String, String)> = given.into_iter().filter(|(k, _)| k != m.key).collect();
        let lane = format!(
            "GET {endpoint} {} {}",
            m.key,
            common
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        let kind = Kind::Lookup {
            endpoint: endpoint.to_string(),
            key: m.key,
            common,
            matches: m.matches,
        };
        Some(self.submit(&lane, &kind, Part::Lookup { value }, send, path, None))
    }

    /// A POST to a list endpoint, merged with others to it.
    pub(super) fn post(
        &self,
        path: &str,
        body: &Value,
        send: Transport,
    ) -> Option<Result<Value, NetBoxError>> {
        if !is_list_endpoint(path) {
            return None;
        }
        let part = match body {
            Value::Object(_) => Part::Create {
                objects: vec![body.clone()],
                single: true,
            },
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => Part::Create {
                objects: a.clone(),
                single: false,
            },
            _ => return None,
        };
        let kind = Kind::Create {
            path: path.to_string(),
        };
        Some(self.submit(&format!("POST {path}"), &kind, part, send, path, Some(body)))
    }

    /// A PATCH of one object (`/api/<endpoint>/<id>/`) or of a list of
    /// them, merged with others to the endpoint.
    pub(super) fn patch(
        &self,
        path: &str,
        body: &Value,
        send: Transport,
    ) -> Option<Result<Value, NetBoxError>> {
        let (list, part) = if is_list_endpoint(path) {
            let objects = body.as_array()?;
            let with_ids = objects
                .iter()
                .all(|o| o.get("id").and_then(Value::as_u64).is_some());
            if objects.is_empty() || !with_ids {
                return None;
            }
            (
                path.to_string(),
                Part::Update {
                    objects: objects.clone(),
                    single: false,
                },
            )
        } else {
            let trimmed = path.strip_suffix('/')?;
            let (list, id) = trimmed.rsplit_once('/')?;
            let id: u64 = id.parse().ok()?;
            let mut object = body.as_object()?.clone();
            object.insert("id".into(), json!(id));
            (
                format!("{list}/"),
                Part::Update {
                    objects: vec![Value::Object(object)],
                    single: true,
                },
            )
        };
        if !is_list_endpoint(&list) {
            return None;
        }
        let kind = Kind::Update { path: list.clone() };
        Some(self.submit(
            &format!("PATCH {list}"),
            &kind,
            part,
            send,
            path,
            Some(body),
        ))
    }

    /// Puts `part` into the lane's batch and waits for its share of the
    /// answer; the first part of a batch sends it.
    fn submit(
        &self,
        lane_key: &str,
        kind: &Kind,
        part: Part,
        send: Transport,
        alone_path: &str,
        alone_body: Option<&Value>,
    ) -> Result<Value, NetBoxError> {
        let method = match kind {
            Kind::Create { .. } => "POST",
            Kind::Update { .. } => "PATCH",
            Kind::Lookup { .. } => "GET",
        };
        let units = part.units();
        if units >= self.size {
            return send(method, alone_path, alone_body);
        }
        let ids = part.ids();
        let (tx, rx) = bounded(1);
        let mut lanes = self.lock();
        let my_number;
        loop {
            let lane = lanes.entry(lane_key.to_string()).or_default();
            match &mut lane.open {
                Some(open) if open.units + units <= self.size => {
                    // The same object twice in one bulk update: NetBox's
                    // answer could not be told apart; it goes alone.
                    let clash = !ids.is_empty()
                        && open
                            .items
                            .iter()
                            .any(|i| i.part.ids().iter().any(|x| ids.contains(x)));
                    if clash {
                        drop(lanes);
                        return send(method, alone_path, alone_body);
                    }
                    open.items.push(Item { part, reply: tx });
                    open.units += units;
                    if open.units >= self.size {
                        self.turn.notify_all();
                    }
                    drop(lanes);
                    return self.wait(&rx, method, alone_path, alone_body, send);
                }
                // Full: its leader is about to take it.
                Some(_) => {
                    lanes = self.turn.wait(lanes).unwrap_or_else(|p| p.into_inner());
                }
                None => {
                    lane.numbers += 1;
                    my_number = lane.numbers;
                    lane.open = Some(Open {
                        number: my_number,
                        items: vec![Item { part, reply: tx }],
                        units,
                    });
                    break;
                }
            }
        }
        // The leader: collect while one of this kind is in flight, or
        // while other registrations, busy with other requests, may come
        // to this one next.
        let started = Instant::now();
        let batch = loop {
            let active = self.active.load(Ordering::Relaxed);
            let busy = self.busy.load(Ordering::Relaxed) > 0;
            let lane = lanes.entry(lane_key.to_string()).or_default();
            let (full, parts) = lane
                .open
                .as_ref()
                .filter(|o| o.number == my_number)
                .map_or((true, 0), |o| (o.units >= self.size, o.items.len()));
            let others_may_come = busy && active > parts;
            let waited = started.elapsed();
            if (lane.in_flight == 0 && !others_may_come) || full || waited >= self.window {
                let Some(open) = lane.open.take_if(|o| o.number == my_number) else {
                    // Cannot happen: only the leader takes its batch.
                    drop(lanes);
                    return Err(NetBoxError::Protocol("a batch was lost".into()));
                };
                lane.in_flight += 1;
                break open;
            }
            // Requests of other kinds ending do not wake this one: look
            // again every few milliseconds.
            lanes = self
                .turn
                .wait_timeout(lanes, (self.window - waited).min(POLL))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        self.turn.notify_all();
        drop(lanes);
        // Alone after all: as it would have gone without batching, and
        // still in flight meanwhile, so that others gather behind it.
        let mine = match batch.items.len() {
            1 => Some(send(method, alone_path, alone_body)),
            _ => {
                self.send_batch(kind, batch.items, send);
                None
            }
        };
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(lane_key) {
            lane.in_flight -= 1;
            if lane.in_flight == 0 && lane.open.is_none() {
                lanes.remove(lane_key);
            }
        }
        self.turn.notify_all();
        drop(lanes);
        match mine {
            Some(r) => r,
            None => self.wait(&rx, method, alone_path, alone_body, send),
        }
    }

    fn wait(
        &self,
        rx: &Receiver<Reply>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        send: Transport,
    ) -> Result<Value, NetBoxError> {
        match rx.recv() {
            Ok(Reply::Done(r)) => r,
            Ok(Reply::Alone) => {
                self.counts.alone.fetch_add(1, Ordering::Relaxed);
                send(method, path, body)
            }
            // The leader panicked: this request was not sent.
            Err(_) => send(method, path, body),
        }
    }

    fn count(&self, parts: usize) {
        if parts > 1 {
            let c = &self.counts;
            c.merged.fetch_add(1, Ordering::Relaxed);
            c.parts.fetch_add(parts as u64, Ordering::Relaxed);
            c.largest.fetch_max(parts as u64, Ordering::Relaxed);
        }
    }

    /// Sends the batch as one request and hands each part its share.
    fn send_batch(&self, kind: &Kind, items: Vec<Item>, send: Transport) {
        self.count(items.len());
        match kind {
            Kind::Lookup {
                endpoint,
                key,
                common,
                matches,
            } => self.send_lookup(endpoint, key, common, *matches, items, send),
            Kind::Create { path } => self.send_writes("POST", path, items, send, true),
            Kind::Update { path } => self.send_writes("PATCH", path, items, send, true),
        }
    }

    fn send_lookup(
        &self,
        endpoint: &str,
        key: &str,
        common: &[(String, String)],
        matches: fn(&Value, &str) -> bool,
        items: Vec<Item>,
        send: Transport,
    ) {
        let mut values: Vec<&str> = items
            .iter()
            .filter_map(|i| match &i.part {
                Part::Lookup { value } => Some(value.as_str()),
                _ => None,
            })
            .collect();
        values.sort_unstable();
        values.dedup();
        let mut q: Vec<String> = values
            .iter()
            .map(|v| format!("{key}={}", encode(v)))
            .collect();
        q.extend(common.iter().map(|(k, v)| format!("{k}={}", encode(v))));
        q.push(format!("limit={PAGE}"));
        let mut next = Some(format!("/api/{endpoint}/?{}", q.join("&")));
        let mut all = Vec::new();
        let mut failed = None;
        while let Some(p) = next.take() {
            match send("GET", &p, None) {
                Ok(page) => {
                    if let Some(r) = page.get("results").and_then(Value::as_array) {
                        all.extend(r.iter().cloned());
                    }
                    next = page
                        .get("next")
                        .and_then(Value::as_str)
                        .and_then(|n| n.find("/api/").map(|i| n[i..].to_string()));
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        for item in items {
            let reply = match (&failed, &item.part) {
                (Some(e), _) => Reply::Done(Err(e.clone())),
                (None, Part::Lookup { value }) => {
                    // NetBox's order, filtered: what the lookup alone
                    // would have answered, on one page.
                    let mine: Vec<Value> =
                        all.iter().filter(|o| matches(o, value)).cloned().collect();
                    Reply::Done(Ok(json!({"count": mine.len(), "next": null,
                                          "previous": null, "results": mine})))
                }
                (None, _) => Reply::Alone,
            };
            let _ = item.reply.send(reply);
        }
    }

    /// A bulk create or update. A rejection: the parts NetBox did not blame
    /// go again together (once), the others alone.
    fn send_writes(
        &self,
        method: &str,
        path: &str,
        items: Vec<Item>,
        send: Transport,
        again: bool,
    ) {
        let objects: Vec<Value> = items
            .iter()
            .flat_map(|i| match &i.part {
                Part::Create { objects, .. } | Part::Update { objects, .. } => objects.clone(),
                Part::Lookup { .. } => Vec::new(),
            })
            .collect();
        let total = objects.len();
        match send(method, path, Some(&Value::from(objects))) {
            Ok(Value::Array(answered)) if answered.len() == total => {
                self.share(method, items, answered);
            }
            Ok(other) => {
                let e = NetBoxError::Protocol(format!(
                    "{method} {path} of {total} objects answered {} instead of a list of them",
                    shorten(&other)
                ));
                for i in items {
                    let _ = i.reply.send(Reply::Done(Err(e.clone())));
                }
            }
            Err(NetBoxError::Rejected { message, .. }) => {
                let Some(blamed) = blamed(&message, total) else {
                    // Not said which (a uniqueness race answers 500 for
                    // the whole transaction, rolled back): halves, each
                    // again, down to the culprits alone.
                    self.split(method, path, items, send);
                    return;
                };
                let mut good = Vec::new();
                let mut at = 0;
                for i in items {
                    let n = i.part.units();
                    let guilty = blamed[at..at + n].contains(&true);
                    at += n;
                    if guilty || !again {
                        let _ = i.reply.send(Reply::Alone);
                    } else {
                        good.push(i);
                    }
                }
                match good.len() {
                    0 => {}
                    1 => {
                        let _ = good[0].reply.send(Reply::Alone);
                    }
                    n => {
                        self.count(n);
                        self.send_writes(method, path, good, send, false);
                    }
                }
            }
            Err(e) => {
                for i in items {
                    let _ = i.reply.send(Reply::Done(Err(e.clone())));
                }
            }
        }
    }

    /// A rejected batch that did not say why, sent again as two halves
    /// (a half of one goes alone).
    fn split(&self, method: &str, path: &str, mut items: Vec<Item>, send: Transport) {
        let second = items.split_off(items.len() / 2);
        for half in [items, second] {
            match half.len() {
                0 => {}
                1 => {
                    for i in half {
                        let _ = i.reply.send(Reply::Alone);
                    }
                }
                n => {
                    self.count(n);
                    self.send_writes(method, path, half, send, true);
                }
            }
        }
    }

    /// Each part's objects from a bulk answer: a create's in order, an
    /// update's by id.
    fn share(&self, method: &str, items: Vec<Item>, answered: Vec<Value>) {
        let by_id: BTreeMap<u64, &Value> = answered
            .iter()
            .filter_map(|o| Some((o.get("id")?.as_u64()?, o)))
            .collect();
        let mut at = 0;
        for i in items {
            let reply = match &i.part {
                Part::Create { objects, single } => {
                    let mine = answered[at..at + objects.len()].to_vec();
                    at += objects.len();
                    Ok(one_or_list(mine, *single))
                }
                Part::Update { objects, single } => {
                    let mine: Option<Vec<Value>> = objects
                        .iter()
                        .map(|o| {
                            let id = o.get("id").and_then(Value::as_u64)?;
                            by_id.get(&id).map(|v| (*v).clone())
                        })
                        .collect();
                    mine.map(|m| one_or_list(m, *single)).ok_or_else(|| {
                        NetBoxError::Protocol(format!(
                            "{method}: NetBox's answer to a bulk update lacks an object sent"
                        ))
                    })
                }
                Part::Lookup { .. } => Err(NetBoxError::Protocol("a lookup in a write".into())),
            };
            let _ = i.reply.send(Reply::Done(reply));
        }
    }
}

fn one_or_list(mut objects: Vec<Value>, single: bool) -> Value {
    if single && objects.len() == 1 {
        objects.remove(0)
    } else {
        Value::from(objects)
    }
}

/// `/api/<app>/<model>/`: where lists are created and updated.
fn is_list_endpoint(path: &str) -> bool {
    path.strip_prefix("/api/")
        .and_then(|r| r.strip_suffix('/'))
        .is_some_and(|r| {
            let parts: Vec<&str> = r.split('/').collect();
            parts.len() == 2
                && parts.iter().all(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                })
        })
}

/// Which of `total` objects a bulk rejection blames: NetBox answers a list
/// with one entry per object sent, `{}` for those it had nothing against.
/// None when the answer does not say (then every part goes alone).
fn blamed(message: &str, total: usize) -> Option<Vec<bool>> {
    let at = message.find('[')?;
    let list: Vec<Value> = serde_json::from_str(&message[at..]).ok()?;
    if list.len() != total {
        return None;
    }
    let flags: Vec<bool> = list
        .iter()
        .map(|e| !matches!(e, Value::Object(m) if m.is_empty()))
        .collect();
    flags.contains(&true).then_some(flags)
}

fn shorten(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

/// For the tests: what a merged lookup's lane is made of.
#[cfg(test)]
fn lookup_of(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/api/")?;
    let (endpoint, query) = rest.split_once("/?")?;
    let given: serde_json::Map<String, Value> = pairs(query)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    let m = MERGED
        .iter()
        .find(|m| m.endpoint == endpoint && given.contains_key(m.key))?;
    Some((m.key.to_string(), given.get(m.key)?.as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lookups_that_merge_are_recognised() {
        assert_eq!(
            lookup_of("/api/dcim/devices/?serial=AB%201"),
            Some(("serial".into(), "AB 1".into()))
        );
        assert_eq!(
            lookup_of("/api/dcim/mac-addresses/?mac_address=aa%3Abb"),
            Some(("mac_address".into(), "aa:bb".into()))
        );
        assert!(is_list_endpoint("/api/dcim/devices/"));
        assert!(is_list_endpoint("/api/extras/journal-entries/"));
        assert!(!is_list_endpoint("/api/dcim/devices/7/"));
        assert!(!is_list_endpoint("/api/dcim/devices/?name=a"));
    }

    #[test]
    fn a_rejection_blames_the_objects_it_names() {
        let m = r#"POST /api/dcim/devices/: [{}, {"asset_tag": ["exists"]}, {}]"#;
        assert_eq!(blamed(m, 3), Some(vec![false, true, false]));
        assert_eq!(blamed(m, 2), None);
        assert_eq!(blamed(r#"POST x: {"detail": "no"}"#, 3), None);
        assert_eq!(blamed("POST x: [{}, {}]", 2), None);
    }

    #[test]
    fn matching_follows_netbox_filters() {
        let by = |key: &str, endpoint: &str| {
            MERGED
                .iter()
                .find(|m| m.key == key && m.endpoint == endpoint)
                .unwrap()
                .matches
        };
        let ip = by("address", "ipam/ip-addresses");
        assert!(ip(&json!({"address": "10.0.0.1/24"}), "10.0.0.1"));
        assert!(!ip(&json!({"address": "10.0.0.11/24"}), "10.0.0.1"));
        assert!(ip(&json!({"address": "2001:db8::1/64"}), "2001:0db8::1"));
        let mac = by("mac_address", "dcim/mac-addresses");
        assert!(mac(
            &json!({"mac_address": "AA:BB:CC:00:00:01"}),
            "aa:bb:cc:00:00:01"
        ));
        let on = by("interface_id", "dcim/mac-addresses");
        assert!(on(
            &json!({"assigned_object_type": "dcim.interface", "assigned_object_id": 7}),
            "7"
        ));
        assert!(!on(
            &json!({"assigned_object_type": "virtualization.vminterface",
                    "assigned_object_id": 7}),
            "7"
        ));
    }

    /// A NetBox stand-in for the batcher's own logic only (the real one is
    /// in tests/netbox_batch.rs): creates number objects, and rejects
    /// every object named "bad" the way NetBox does, per object.
    fn fake(
        calls: Arc<AtomicUsize>,
    ) -> impl Fn(&str, &str, Option<&Value>) -> Result<Value, NetBoxError> {
        move |method, path, body| {
            calls.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(30));
            assert_eq!(method, "POST", "{path}");
            let objects = match body {
                Some(Value::Array(a)) => a.clone(),
                Some(o) => vec![o.clone()],
                None => Vec::new(),
            };
            let errors: Vec<Value> = objects
                .iter()
                .map(|o| match o["name"].as_str() {
                    Some("bad") => json!({"name": ["bad name"]}),
                    _ => json!({}),
                })
                .collect();
            if errors.iter().any(|e| e != &json!({})) {
                let message = match body {
                    Some(Value::Array(_)) => format!("{method} {path}: {}", Value::from(errors)),
                    _ => format!("{method} {path}: {}", errors[0]),
                };
                return Err(NetBoxError::Rejected {
                    status: 400,
                    message,
                });
            }
            let made: Vec<Value> = objects
                .iter()
                .map(|o| {
                    let mut o = o.clone();
                    o["id"] = json!(o["name"].as_str().unwrap().len());
                    o
                })
                .collect();
            Ok(match body {
                Some(Value::Array(_)) => Value::from(made),
                _ => made[0].clone(),
            })
        }
    }

    #[test]
    fn concurrent_creates_go_together_and_a_bad_one_alone() {
        let batcher = Arc::new(Batcher::new(50, Duration::from_millis(200)).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let send = Arc::new(fake(calls.clone()));
        let names = ["a", "bb", "bad", "cccc", "ddddd", "eeeeee"];
        // One in flight first: the others gather behind it.
        let results: Vec<Result<Value, NetBoxError>> = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let (b, send) = (batcher.clone(), send.clone());
                    s.spawn(move || {
                        std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 10 }));
                        let f = |m: &str, p: &str, body: Option<&Value>| send(m, p, body);
                        b.post("/api/dcim/devices/", &json!({"name": name}), &f)
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (name, r) in names.iter().zip(&results) {
            match *name {
                "bad" => assert!(
                    matches!(r, Err(NetBoxError::Rejected { message, .. })
                             if message.contains("bad name") && !message.contains("[{")),
                    "{r:?}"
                ),
                _ => assert_eq!(r.as_ref().unwrap()["id"], json!(name.len()), "{name}"),
            }
        }
        // The first alone; the five behind it in one, rejected; the four
        // good ones again together; the bad one alone.
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!(batcher.counts.largest.load(Ordering::Relaxed), 5);
        assert_eq!(batcher.counts.alone.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn size_one_is_no_batching() {
        assert!(Batcher::new(1, Duration::from_millis(50)).is_none());
    }
}
