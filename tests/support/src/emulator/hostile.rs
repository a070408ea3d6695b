//! Hostile behaviours: what a compromised or malicious device on a BMC
//! network could answer, to test that a discovery's budgets and origin rules
//! hold. None of this is from the real mockups: the payloads are made up
//! here, DMTF-shaped (collections with `Members`, ComputerSystems with
//! `@odata.id`/`@odata.type`, Redfish links), and every one of them is
//! switched on per BMC through `Faults::hostile`; a BMC without it serves
//! its mockup exactly as captured.

use std::io::Write;

use serde_json::{json, Value};

use super::{respond, Request};

/// One hostile behaviour of a BMC.
#[derive(Clone, Debug)]
pub enum Hostile {
    /// The Systems collection lists this many members, each a small
    /// made-up ComputerSystem (`/redfish/v1/Systems/h<i>`).
    ManyMembers(u32),
    /// Every collection under the system (Processors, Memory, ...) lists
    /// this many members, each a small made-up resource: a BMC that makes
    /// the crawl long, not one collection wide.
    ManySubMembers(u32),
    /// Every authenticated answer padded to about this many bytes (an
    /// `Oem` string).
    BigBodies(usize),
    /// Every authenticated answer carries this many one-key objects (in
    /// arrays of 1,000): few bytes each, ~1 KB each once parsed.
    CostlyJson(usize),
    /// Every authenticated answer carries arrays nested this deep.
    DeepNesting(usize),
    /// Every `Manufacturer`, `Model`, `SerialNumber`, `SKU`, `HostName`, `Name`
    /// ends in `DIRTY`: a forged log line, terminal escapes, DEL, C1 and
    /// bidi controls.
    DirtyStrings,
    /// New sessions get a token with a space in it: not a token a client
    /// may send back as a header.
    OddToken,
    /// A link, Location or redirect towards `to` (`host:port` of another
    /// listener), placed as `place` says.
    ForeignLink { place: Place, to: String },
}

/// Where a foreign link is put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The Systems collection's only member is `https://<to>/...`.
    Member,
    /// ... is `@<to>/...`, which a string join turns into userinfo.
    MemberUserinfo,
    /// Every `Links.ManagedBy` and `Links.Chassis` point to `https://<to>`.
    Links,
    /// The service root's `Links.Sessions` is `@<to>/...`.
    SessionsLink,
    /// A new session's `Location` and its `@odata.id` are on `<to>`.
    SessionLocation,
    /// Only the `Location` is on `<to>`; the session itself is on the BMC.
    SessionLocationOnly,
    /// Every authenticated GET below the root redirects (302) to `<to>`.
    Redirect,
    /// ... to `http://<to>` (a downgrade).
    RedirectHttp,
    /// DELETE of a session answers 302 to `<to>`.
    DeleteRedirect,
}

const SYSTEMS: &str = "/redfish/v1/Systems";

/// What `DirtyStrings` appends.
pub const DIRTY: &str =
    "\n2026-12-01 12:00:00.000 ERROR [kea-dhcp4] forged\u{1b}]0;owned\u{7}\u{1b}[31m\u{7f}\u{85}\u{202e}\u{200b}";

/// Answers `req` entirely when the behaviour replaces the real answer
/// (Some(keep-alive)); None lets the mockup answer. Called once the
/// request is authenticated.
pub(super) fn answer<W: Write>(h: &Hostile, req: &Request, path: &str, w: &mut W) -> Option<bool> {
    match h {
        Hostile::ManyMembers(n) if req.method == "GET" => {
            if path == SYSTEMS {
                let members: Vec<Value> = (0..*n)
                    .map(|i| json!({"@odata.id": format!("{SYSTEMS}/h{i}")}))
                    .collect();
                let body = json!({
                    "@odata.id": SYSTEMS,
                    "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                    "Name": "Computer System Collection",
                    "Members@odata.count": n,
                    "Members": members,
                });
                return Some(respond(w, 200, &[], &body.to_string()));
            }
            let i = path.strip_prefix(&format!("{SYSTEMS}/h"))?;
            let body = json!({
                "@odata.id": path,
                "@odata.type": "#ComputerSystem.v1_5_0.ComputerSystem",
                "Id": format!("h{i}"),
                "Manufacturer": "Hostile",
                "Model": "Many",
                "SerialNumber": format!("HOSTILE{i}"),
            });
            Some(respond(w, 200, &[], &body.to_string()))
        }
        Hostile::ManySubMembers(n) if req.method == "GET" => {
            let sys = format!("{SYSTEMS}/");
            let rest = path.strip_prefix(&sys)?;
            let mut parts = rest.split('/');
            let (_id, coll) = (parts.next()?, parts.next()?);
            if ![
                "Processors",
                "Memory",
                "EthernetInterfaces",
                "Storage",
                "SimpleStorage",
            ]
            .contains(&coll)
            {
                return None;
            }
            let body = match parts.next() {
                None => {
                    let members: Vec<Value> = (0..*n)
                        .map(|i| json!({"@odata.id": format!("{path}/h{i}")}))
                        .collect();
                    json!({
                        "@odata.id": path,
                        "@odata.type": format!("#{coll}Collection.{coll}Collection"),
                        "Name": coll,
                        "Members@odata.count": n,
                        "Members": members,
                    })
                }
                Some(member) => json!({
                    "@odata.id": path,
                    "Id": member,
                    "Name": format!("{coll} {member}"),
                }),
            };
            Some(respond(w, 200, &[], &body.to_string()))
        }
        Hostile::ForeignLink { place, to } => {
            let target = |scheme: &str| format!("{scheme}://{to}{path}");
            match place {
                Place::Member if req.method == "GET" && path == SYSTEMS => {
                    let body = collection(&format!("https://{to}{SYSTEMS}/1"));
                    Some(respond(w, 200, &[], &body))
                }
                Place::MemberUserinfo if req.method == "GET" && path == SYSTEMS => {
                    let body = collection(&format!("@{to}{SYSTEMS}/1"));
                    Some(respond(w, 200, &[], &body))
                }
                Place::Redirect | Place::RedirectHttp if req.method == "GET" => {
                    let scheme = if *place == Place::Redirect {
                        "https"
                    } else {
                        "http"
                    };
                    Some(respond(w, 302, &[("Location", target(scheme))], ""))
                }
                Place::DeleteRedirect if req.method == "DELETE" => {
                    Some(respond(w, 302, &[("Location", target("https"))], ""))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn collection(member: &str) -> String {
    json!({
        "@odata.id": SYSTEMS,
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Name": "Computer System Collection",
        "Members@odata.count": 1,
        "Members": [{"@odata.id": member}],
    })
    .to_string()
}

/// The service root as the behaviour wants it (unauthenticated).
pub(super) fn root(h: &Hostile, body: String) -> String {
    let Hostile::ForeignLink {
        place: Place::SessionsLink,
        to,
    } = h
    else {
        return body;
    };
    let Ok(mut v) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    v["Links"]["Sessions"] =
        json!({"@odata.id": format!("@{to}/redfish/v1/SessionService/Sessions")});
    v.to_string()
}

/// A new session's token, when the behaviour chooses it.
pub(super) fn session_token(h: &Hostile) -> Option<String> {
    matches!(h, Hostile::OddToken).then(|| "odd token".to_string())
}

/// A new session's `Location` on `to`, when the behaviour moves it
/// there, and whether its `@odata.id` moves too.
pub(super) fn session_location(h: &Hostile) -> Option<(String, bool)> {
    match h {
        Hostile::ForeignLink { place, to }
            if matches!(place, Place::SessionLocation | Place::SessionLocationOnly) =>
        {
            Some((
                format!("https://{to}/redfish/v1/SessionService/Sessions/1"),
                *place == Place::SessionLocation,
            ))
        }
        _ => None,
    }
}

/// An authenticated answer from the mockup, made hostile.
pub(super) fn body(h: &Hostile, body: String) -> String {
    match h {
        Hostile::BigBodies(size) => {
            let pad = size.saturating_sub(body.len() + 32);
            with_member(&body, "HostilePadding", &format!("\"{}\"", "x".repeat(pad)))
        }
        Hostile::CostlyJson(n) => {
            let chunk = format!("[{}]", vec![r#"{"a":0}"#; 1000].join(","));
            let arrays = vec![chunk.as_str(); n.div_ceil(1000)].join(",");
            with_member(&body, "HostileObjects", &format!("[{arrays}]"))
        }
        Hostile::DeepNesting(depth) => {
            let deep = "[".repeat(*depth) + &"]".repeat(*depth);
            with_member(&body, "HostileNesting", &deep)
        }
        Hostile::DirtyStrings => {
            let Ok(mut v) = serde_json::from_str::<Value>(&body) else {
                return body;
            };
            dirty(&mut v);
            v.to_string()
        }
        Hostile::ForeignLink {
            place: Place::Links,
            to,
        } => {
            let Ok(mut v) = serde_json::from_str::<Value>(&body) else {
                return body;
            };
            foreign_links(&mut v, to);
            v.to_string()
        }
        _ => body,
    }
}

fn dirty(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match x {
                    Value::String(s)
                        if [
                            "Manufacturer",
                            "Model",
                            "SerialNumber",
                            "SKU",
                            "HostName",
                            "Name",
                        ]
                        .contains(&k.as_str()) =>
                    {
                        s.push_str(DIRTY)
                    }
                    _ => dirty(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(dirty),
        _ => {}
    }
}

/// Every `Links.ManagedBy` and `Links.Chassis`, at any depth (expanded
/// collections carry their members' Links), pointed to `to`.
fn foreign_links(v: &mut Value, to: &str) {
    match v {
        Value::Object(o) => {
            if let Some(links) = o.get_mut("Links").and_then(Value::as_object_mut) {
                for k in ["ManagedBy", "Chassis"] {
                    if links.contains_key(k) {
                        links.insert(
                            k.into(),
                            json!([{"@odata.id": format!("https://{to}/redfish/v1/{k}/1")}]),
                        );
                    }
                }
            }
            o.values_mut().for_each(|x| foreign_links(x, to));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| foreign_links(x, to)),
        _ => {}
    }
}

/// `body` (a JSON object's text) with one more member, inserted as text:
/// a Value this deep could not be serialized by serde_json.
fn with_member(body: &str, key: &str, raw: &str) -> String {
    let t = body.trim_end();
    match t.strip_suffix('}') {
        Some(head) if head.trim_end().ends_with('{') => format!("{head}\"{key}\": {raw}}}"),
        Some(head) => format!("{head}, \"{key}\": {raw}}}"),
        None => body.to_string(),
    }
}

/// A listener on another address that records every connection and
/// answers nothing: where hostile links point. Nothing must ever reach it.
pub struct Spy {
    pub addr: std::net::SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Spy {
    pub fn start(ip: std::net::Ipv4Addr) -> Spy {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("spy: bind");
        let addr = listener.local_addr().expect("spy: addr");
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        // Detached: it lives as long as the test process, counting.
        std::thread::spawn(move || {
            for s in listener.incoming() {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(s);
            }
        });
        Spy { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}
