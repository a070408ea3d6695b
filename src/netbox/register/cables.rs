//! The LLDP neighbours of the server's host ports as cables: each port
//! that heard a switch is cabled (`dcim/cables`, A = the server's host
//! interface, B = the switch's interface) to the switch port it names.
//!
//! - **The switch** is the device whose interface holds the neighbour's
//!   chassis MAC (a `dcim/mac-addresses` object, which is also how an
//!   interface's primary MAC is kept); else the device named like the
//!   neighbour's system name; else the device the neighbour's management
//!   address (an IP address object) is assigned to. Its **port** is its
//!   interface named like the decoded port id (`1/1/1:4`). A neighbour
//!   two devices could be is ambiguous and not cabled.
//! - **Never forced**: a switch that is not in NetBox, a port it lacks, a
//!   switch port cabled to something else and a host interface cabled by
//!   someone else are reported (notes, [`Unmatched`] for the state store
//!   and the counter, one journal entry), never rewired. Only cables with
//!   the hook's tag are removed, and only from this server's own host
//!   interfaces, when LLDP names another switch port that is free: the
//!   server was recabled. A port that hears nothing (empty or
//!   `NotTransmitted` LLDP, no neighbour in the inventory) keeps its cable:
//!   silence says nothing about where it goes.
//! - **Requests**: the switches are found with one read (by MAC; names and
//!   addresses only for neighbours the MACs did not find), their ports
//!   with one more only where a host interface is not cabled to its
//!   neighbour yet; cables are removed and created in one bulk request
//!   each. An unchanged server costs the MAC read and no write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::{json, Value};

use super::host_ports::Synced;
use super::writes::{is_duplicate, query, Ctx};
use super::RegisterError;
use crate::netbox::client::ObjectId;
use crate::netbox::items::has_tag;
use crate::redfish::inventory::{HostPort, LldpNeighbor};

/// At most this many switch ports are cabled per server (one per host
/// port: `ports::MAX_HOST_PORTS`); the queries name at most this many
/// values each.
const MAX_NEIGHBOURS: usize = 128;

/// A host port's neighbour that is not cabled, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unmatched {
    /// The host port (interface name on the server).
    pub port: String,
    /// `switch-unknown`, `switch-ambiguous`, `port-unknown`,
    /// `port-taken`, `host-port-taken`.
    pub reason: &'static str,
    /// The neighbour as LLDP names it: `<chassis or system name> port <id>`.
    pub neighbour: String,
    /// What was looked for, what was found, what to do.
    pub detail: String,
}

/// Every reason an [`Unmatched`] can have (the counter's label values).
pub const REASONS: [&str; 5] = [
    "switch-unknown",
    "switch-ambiguous",
    "port-unknown",
    "port-taken",
    "host-port-taken",
];

/// A switch found for a neighbour.
#[derive(Clone, Debug)]
pub(super) struct Switch {
    pub id: ObjectId,
    pub name: String,
    /// How it was found: "chassis MAC", "system name", "management address".
    pub by: &'static str,
}

/// The switches of the host ports' neighbours, by host port name; found
/// before the server's device is (placement may depend on them).
#[derive(Default)]
pub(super) struct Switches {
    found: BTreeMap<String, Result<Switch, Unmatched>>,
}

impl Switches {
    /// The switches found, without duplicates.
    pub fn devices(&self) -> Vec<&Switch> {
        let mut seen = HashSet::new();
        self.found
            .values()
            .filter_map(|r| r.as_ref().ok())
            .filter(|s| seen.insert(s.id))
            .collect()
    }
}

/// How a neighbour reads in a message: its system name or chassis id,
/// and its port.
fn shown(n: &LldpNeighbor) -> String {
    let switch = n
        .system_name
        .clone()
        .or_else(|| n.chassis_id.clone())
        .or_else(|| n.management_ipv4.clone())
        .unwrap_or_else(|| "?".into());
    match &n.port_id {
        Some(p) => format!("{switch} port {p}"),
        None => switch,
    }
}

/// A canonical MAC chassis id, as ports.rs decodes the MacAddr subtype.
fn chassis_mac(n: &LldpNeighbor) -> Option<&str> {
    let c = n.chassis_id.as_deref()?;
    let canonical = c.len() == 17
        && c.split(':')
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    canonical.then_some(c)
}

/// The host ports with a neighbour, at most [`MAX_NEIGHBOURS`].
fn neighbours(ports: &[HostPort]) -> Vec<(&HostPort, &LldpNeighbor)> {
    ports
        .iter()
        .filter_map(|p| Some((p, p.lldp.as_ref()?)))
        .take(MAX_NEIGHBOURS)
        .collect()
}

/// The device ids a list of objects assigned to interfaces (MAC or IP
/// address objects) names, by the value of `key` (lower-cased; an IP's
/// address without its prefix length).
fn devices_by(objects: &[Value], key: &str) -> HashMap<String, BTreeMap<u64, String>> {
    let mut out: HashMap<String, BTreeMap<u64, String>> = HashMap::new();
    for o in objects {
        if o.get("assigned_object_type").and_then(Value::as_str) != Some("dcim.interface") {
            continue;
        }
        let (Some(v), Some(dev)) = (
            o.get(key).and_then(Value::as_str),
            o.pointer("/assigned_object/device"),
        ) else {
            continue;
        };
        let Some(id) = dev.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let name = dev.get("name").and_then(Value::as_str).unwrap_or("");
        let v = v.split('/').next().unwrap_or(v).to_ascii_lowercase();
        out.entry(v).or_default().insert(id, name.to_string());
    }
    out
}

/// Finds the switch of every host port's neighbour: by chassis MAC, then
/// system name, then management address, each one read for all the
/// neighbours still unfound.
pub(super) fn resolve(cx: &Ctx, ports: &[HostPort]) -> Result<Switches, RegisterError> {
    let mut out = Switches::default();
    let ns = neighbours(ports);
    if ns.is_empty() {
        return Ok(out);
    }
    let one = |ids: &BTreeMap<u64, String>, by: &'static str| -> Option<Result<Switch, String>> {
        match ids.len() {
            0 => None,
            1 => ids.iter().next().map(|(id, name)| {
                Ok(Switch {
                    id: ObjectId::of(&json!({ "id": id })).unwrap_or(ObjectId::Planned),
                    name: name.clone(),
                    by,
                })
            }),
            _ => Some(Err(format!(
                "its {by} is on {} devices ({}): not cabled; keep it on one",
                ids.len(),
                ids.values().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    let mut pending: Vec<(&HostPort, &LldpNeighbor)> = ns;
    let settle =
        |out: &mut Switches,
         pending: &mut Vec<(&HostPort, &LldpNeighbor)>,
         found: &dyn Fn(&LldpNeighbor) -> Option<Result<Switch, String>>| {
            pending.retain(|(p, n)| match found(n) {
                None => true,
                Some(r) => {
                    let r = r.map_err(|detail| Unmatched {
                        port: p.name.clone(),
                        reason: "switch-ambiguous",
                        neighbour: shown(n),
                        detail,
                    });
                    out.found.insert(p.name.clone(), r);
                    false
                }
            });
        };

    let macs: BTreeSet<&str> = pending.iter().filter_map(|(_, n)| chassis_mac(n)).collect();
    if !macs.is_empty() {
        let q: Vec<(&str, &str)> = macs.iter().map(|m| ("mac_address", *m)).collect();
        let objs = cx
            .nb
            .list(&format!("/api/dcim/mac-addresses/{}&limit=1000", query(&q)))?;
        let by = devices_by(&objs, "mac_address");
        settle(&mut out, &mut pending, &|n| {
            one(by.get(chassis_mac(n)?)?, "chassis MAC")
        });
    }
    let names: BTreeSet<&str> = pending
        .iter()
        .filter_map(|(_, n)| n.system_name.as_deref())
        .collect();
    if !names.is_empty() {
        let q: Vec<(&str, &str)> = names.iter().map(|m| ("name", *m)).collect();
        let devs = cx
            .nb
            .list(&format!("/api/dcim/devices/{}&limit=1000", query(&q)))?;
        let mut by: HashMap<String, BTreeMap<u64, String>> = HashMap::new();
        for d in &devs {
            if let (Some(name), Some(id)) = (
                d.get("name").and_then(Value::as_str),
                d.get("id").and_then(Value::as_u64),
            ) {
                by.entry(name.to_string())
                    .or_default()
                    .insert(id, name.to_string());
            }
        }
        settle(&mut out, &mut pending, &|n| {
            one(by.get(n.system_name.as_deref()?)?, "system name")
        });
    }
    let addrs: BTreeSet<&str> = pending
        .iter()
        .filter_map(|(_, n)| n.management_ipv4.as_deref())
        .collect();
    if !addrs.is_empty() {
        let q: Vec<(&str, &str)> = addrs.iter().map(|a| ("address", *a)).collect();
        let objs = cx
            .nb
            .list(&format!("/api/ipam/ip-addresses/{}&limit=1000", query(&q)))?;
        let by = devices_by(&objs, "address");
        settle(&mut out, &mut pending, &|n| {
            one(by.get(n.management_ipv4.as_deref()?)?, "management address")
        });
    }
    for (p, n) in pending {
        let mut looked = Vec::new();
        if let Some(m) = chassis_mac(n) {
            looked.push(format!("an interface with MAC {m}"));
        }
        if let Some(s) = &n.system_name {
            looked.push(format!("a device named {s:?}"));
        }
        if let Some(a) = &n.management_ipv4 {
            looked.push(format!("the IP address {a}"));
        }
        let detail = if looked.is_empty() {
            "its chassis id is no MAC and it sent no system name or management address: \
             nothing to find the switch by"
                .to_string()
        } else {
            format!(
                "no switch in NetBox: looked for {}; add the switch (its chassis MAC on one of \
                 its interfaces) and the next discovery cables the port",
                looked.join(", then ")
            )
        };
        out.found.insert(
            p.name.clone(),
            Err(Unmatched {
                port: p.name.clone(),
                reason: "switch-unknown",
                neighbour: shown(n),
                detail,
            }),
        );
    }
    Ok(out)
}

/// The one interface a host interface's cable reaches, as NetBox answers
/// the host interface: (interface id, its name, its device id).
fn peer(iface: &Value) -> Option<(u64, String, u64)> {
    if iface.get("link_peers_type").and_then(Value::as_str) != Some("dcim.interface") {
        return None;
    }
    let peers = iface.get("link_peers")?.as_array()?;
    let [p] = peers.as_slice() else { return None };
    Some((
        p.get("id")?.as_u64()?,
        p.get("name")?.as_str()?.to_string(),
        p.pointer("/device/id")?.as_u64()?,
    ))
}

fn cable_id(iface: &Value) -> Option<u64> {
    iface.pointer("/cable/id").and_then(Value::as_u64)
}

/// Cables the host ports to their neighbours' switch ports. What cannot
/// be cabled is returned (and noted); a create that loses a race to a
/// concurrent registration reads again.
pub(super) fn sync(
    cx: &mut Ctx,
    ports: &[HostPort],
    switches: &Switches,
    device: ObjectId,
    tag: ObjectId,
    synced: &Synced,
) -> Result<Vec<Unmatched>, RegisterError> {
    if neighbours(ports).is_empty() {
        return Ok(Vec::new());
    }
    let mut current: BTreeMap<String, (ObjectId, Option<Value>)> = synced.ifaces.clone();
    for attempt in 1..=3 {
        match sync_once(cx, ports, switches, device, tag, &current) {
            Ok(r) => return Ok(r),
            Err(Retry::Race) if attempt < 3 => {
                // What the other registration made: the host interfaces
                // as they are now.
                let now = cx.nb.list(&format!(
                    "/api/dcim/interfaces/?device_id={}&limit=1000",
                    device.wire()
                ))?;
                for v in now {
                    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
                    if let Some(entry) = current.get_mut(name) {
                        entry.1 = Some(v.clone());
                    }
                }
            }
            Err(Retry::Race) => break,
            Err(Retry::Failed(e)) => return Err(e),
        }
    }
    Err(RegisterError::Failed(format!(
        "cables of device {device}: other registrations kept changing them; the next \
         discovery tries again"
    )))
}

enum Retry {
    Race,
    Failed(RegisterError),
}

impl<E: Into<RegisterError>> From<E> for Retry {
    fn from(e: E) -> Retry {
        Retry::Failed(e.into())
    }
}

/// One cable wanted: host interface → switch port.
struct Want<'a> {
    port: &'a HostPort,
    neighbour: &'a LldpNeighbor,
    host: ObjectId,
    host_read: Option<&'a Value>,
    switch: &'a Switch,
    port_name: String,
}

fn sync_once(
    cx: &mut Ctx,
    ports: &[HostPort],
    switches: &Switches,
    device: ObjectId,
    tag: ObjectId,
    ifaces: &BTreeMap<String, (ObjectId, Option<Value>)>,
) -> Result<Vec<Unmatched>, Retry> {
    let mut unmatched = Vec::new();
    let mut wants = Vec::new();
    for (p, n) in neighbours(ports) {
        // A host interface left to people is not the hook's to cable.
        let Some((host, read)) = ifaces.get(&p.name) else {
            continue;
        };
        let switch = match switches.found.get(&p.name) {
            Some(Ok(s)) => s,
            Some(Err(u)) => {
                unmatched.push(u.clone());
                continue;
            }
            None => continue,
        };
        let Some(port_name) = n.port_id.clone() else {
            unmatched.push(Unmatched {
                port: p.name.clone(),
                reason: "port-unknown",
                neighbour: shown(n),
                detail: format!(
                    "switch {} (by {}) sent no port id: not cabled",
                    switch.name, switch.by
                ),
            });
            continue;
        };
        if switch.id == device {
            // The server's own device holds the "switch's" MAC: a BMC
            // that reports itself as its neighbour.
            unmatched.push(Unmatched {
                port: p.name.clone(),
                reason: "switch-unknown",
                neighbour: shown(n),
                detail: "the neighbour is this server's own device: not cabled".into(),
            });
            continue;
        }
        wants.push(Want {
            port: p,
            neighbour: n,
            host: *host,
            host_read: read.as_ref(),
            switch,
            port_name,
        });
    }
    // Already cabled to its neighbour: nothing to read or write.
    let cabled = |w: &Want| {
        w.host_read
            .and_then(peer)
            .is_some_and(|(_, name, dev)| name == w.port_name && Some(dev) == w.switch.id.real())
    };
    let todo: Vec<&Want> = wants.iter().filter(|w| !cabled(w)).collect();
    if todo.is_empty() {
        note(cx, &unmatched);
        return Ok(unmatched);
    }
    // The switch ports, in one read.
    let devs: BTreeSet<String> = todo
        .iter()
        .map(|w| w.switch.id.wire().to_string())
        .collect();
    let names: BTreeSet<&str> = todo.iter().map(|w| w.port_name.as_str()).collect();
    let mut q: Vec<(&str, &str)> = devs.iter().map(|d| ("device_id", d.as_str())).collect();
    q.extend(names.iter().map(|n| ("name", *n)));
    let switch_ports = cx
        .nb
        .list(&format!("/api/dcim/interfaces/{}&limit=1000", query(&q)))?;
    let switch_port = |w: &Want| {
        switch_ports.iter().find(|i| {
            i.get("name").and_then(Value::as_str) == Some(w.port_name.as_str())
                && i.pointer("/device/id").and_then(Value::as_u64) == w.switch.id.real()
        })
    };
    // The cables in the way, for their tags and ends, in one read.
    let mut in_the_way: BTreeSet<u64> = BTreeSet::new();
    for w in &todo {
        in_the_way.extend(w.host_read.and_then(cable_id));
        in_the_way.extend(switch_port(w).and_then(cable_id));
    }
    let cables: HashMap<u64, Value> = if in_the_way.is_empty() {
        HashMap::new()
    } else {
        let ids: Vec<String> = in_the_way.iter().map(u64::to_string).collect();
        let q: Vec<(&str, &str)> = ids.iter().map(|i| ("id", i.as_str())).collect();
        cx.nb
            .list(&format!("/api/dcim/cables/{}&limit=1000", query(&q)))?
            .into_iter()
            .filter_map(|c| Some((c.get("id")?.as_u64()?, c)))
            .collect()
    };
    // Whether a cable is the hook's and reaches only this server's host
    // interfaces on its A side: then it may go.
    let host_ids: HashSet<u64> = ifaces.values().filter_map(|(id, _)| id.real()).collect();
    let removable = |id: u64| {
        cables.get(&id).is_some_and(|c| {
            has_tag(c, tag)
                && c.get("a_terminations")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        !a.is_empty()
                            && a.iter().all(|t| {
                                t.get("object_type").and_then(Value::as_str)
                                    == Some("dcim.interface")
                                    && t.get("object_id")
                                        .and_then(Value::as_u64)
                                        .is_some_and(|i| host_ids.contains(&i))
                            })
                    })
        })
    };

    let mut remove: BTreeSet<u64> = BTreeSet::new();
    let mut create = Vec::new();
    let mut created_on: Vec<String> = Vec::new();
    let mut taken_ports: HashSet<u64> = HashSet::new();
    for w in todo {
        let un = |reason: &'static str, detail: String| Unmatched {
            port: w.port.name.clone(),
            reason,
            neighbour: shown(w.neighbour),
            detail,
        };
        let Some(sp) = switch_port(w) else {
            unmatched.push(un(
                "port-unknown",
                format!(
                    "switch {} (found by {}) has no interface named {:?}; add it and the next \
                     discovery cables the port",
                    w.switch.name, w.switch.by, w.port_name
                ),
            ));
            continue;
        };
        let Some(sp_id) = sp.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if !taken_ports.insert(sp_id) {
            unmatched.push(un(
                "port-taken",
                format!(
                    "switch {} port {} is the neighbour of another port of this server too: \
                     cabled to that one only",
                    w.switch.name, w.port_name
                ),
            ));
            continue;
        }
        if let Some(c) = cable_id(sp) {
            if !removable(c) {
                unmatched.push(un(
                    "port-taken",
                    format!(
                        "switch {} port {} already has cable #{c} to something else, not made \
                         by the hook for this server: left as it is; remove it if the server \
                         is what is plugged in there",
                        w.switch.name, w.port_name
                    ),
                ));
                continue;
            }
            remove.insert(c);
        }
        if let Some(c) = w.host_read.and_then(cable_id) {
            if !removable(c) {
                unmatched.push(un(
                    "host-port-taken",
                    format!(
                        "the host interface already has cable #{c}, not the hook's: left as it \
                         is (LLDP says switch {} port {})",
                        w.switch.name, w.port_name
                    ),
                ));
                continue;
            }
            remove.insert(c);
        }
        let description = crate::redfish::ports::bounded(
            &format!("LLDP of {}: {}", w.port.name, shown(w.neighbour)),
            200,
        );
        create.push(json!({
            "a_terminations": [{"object_type": "dcim.interface", "object_id": w.host}],
            "b_terminations": [{"object_type": "dcim.interface", "object_id": sp_id}],
            "status": "connected",
            "description": description,
            "tags": [tag],
        }));
        created_on.push(format!(
            "{} to {} {}",
            w.port.name, w.switch.name, w.port_name
        ));
    }
    if !remove.is_empty() {
        let ids: Vec<u64> = remove.iter().copied().collect();
        cx.nb.delete_many("/api/dcim/cables/", &ids)?;
        cx.changes
            .push(format!("removed {} cables LLDP no longer shows", ids.len()));
    }
    if !create.is_empty() {
        match cx.nb.post("/api/dcim/cables/", &Value::from(create)) {
            Ok(_) => cx.changes.push(format!("cabled {}", created_on.join(", "))),
            Err(e) if is_duplicate(&e) => return Err(Retry::Race),
            Err(e) => return Err(e.into()),
        }
    }
    note(cx, &unmatched);
    Ok(unmatched)
}

fn note(cx: &mut Ctx, unmatched: &[Unmatched]) {
    for u in unmatched {
        cx.notes.push(format!(
            "host port {}: LLDP neighbour {} not cabled ({}): {}",
            u.port, u.neighbour, u.reason, u.detail
        ));
    }
}

/// The journal text for what could not be cabled; the same problems give
/// the same text, so that a re-run can tell it wrote it already.
pub(super) fn journal_text(unmatched: &[Unmatched]) -> String {
    let mut text = String::from(JOURNAL_HEADER);
    for u in unmatched {
        text.push_str(&format!(
            "\n- {}: {} ({}): {}",
            u.port, u.neighbour, u.reason, u.detail
        ));
    }
    text
}

/// The first line of the journal entry about uncabled neighbours.
pub(super) const JOURNAL_HEADER: &str =
    "kea-hook-bmc-discovery: LLDP neighbours not cabled (nothing was forced)\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_macs_are_looked_up_as_macs() {
        let n = |c: &str| LldpNeighbor {
            chassis_id: Some(c.into()),
            ..LldpNeighbor::default()
        };
        assert_eq!(
            chassis_mac(&n("bc:d7:a5:72:f4:00")),
            Some("bc:d7:a5:72:f4:00")
        );
        assert_eq!(chassis_mac(&n("switch-7")), None);
        assert_eq!(chassis_mac(&n("bc:d7:a5:72:f4:00:11")), None);
    }

    #[test]
    fn a_peer_is_one_interface() {
        let iface = json!({"link_peers_type": "dcim.interface", "cable": {"id": 4},
            "link_peers": [{"id": 9, "name": "1/1/1:4", "device": {"id": 3}}]});
        assert_eq!(peer(&iface), Some((9, "1/1/1:4".into(), 3)));
        assert_eq!(cable_id(&iface), Some(4));
        let two = json!({"link_peers_type": "dcim.interface",
            "link_peers": [{"id": 9, "name": "a", "device": {"id": 3}},
                           {"id": 10, "name": "b", "device": {"id": 3}}]});
        assert_eq!(peer(&two), None);
        assert_eq!(peer(&json!({"link_peers": [], "cable": null})), None);
    }

    #[test]
    fn the_journal_text_tells_problems_apart() {
        let u = Unmatched {
            port: "NIC.Slot.1.1-1".into(),
            reason: "switch-unknown",
            neighbour: "bc:d7:a5:72:f4:00 port 1/1/1:4".into(),
            detail: "no switch".into(),
        };
        let mut other = u.clone();
        other.reason = "port-unknown";
        let one = journal_text(std::slice::from_ref(&u));
        assert!(one.starts_with(JOURNAL_HEADER));
        assert!(one.contains("NIC.Slot.1.1-1: bc:d7:a5:72:f4:00 port 1/1/1:4 (switch-unknown)"));
        assert_ne!(one, journal_text(&[other]));
        assert_ne!(one, journal_text(&[u.clone(), u]));
    }
}
