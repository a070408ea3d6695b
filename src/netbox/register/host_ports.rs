//! The server's own network ports (`Inventory::host_ports`) as interfaces
//! of its device, each with its MAC as a `dcim/mac-addresses` object set as
//! the interface's primary MAC, so that provisioning finds a server's boot
//! MACs in NetBox.
//!
//! - Only interfaces carrying the hook's tag are changed or removed; a port
//!   whose name people already use on the device is left to them. The BMC's
//!   interface (`netbox.interface`) is not a host port and stays
//!   `mgmt_only`; host ports are `mgmt_only: false`.
//! - Type from the port's technology, fastest speed and medium
//!   ([`interface_type`]), else `other`; `enabled` from the port's
//!   administrative state (Redfish LinkState / InterfaceEnabled), not its
//!   link, which comes and goes; the description names the adapter, the
//!   PXE mark and the LLDP neighbour.
//! - PXE: a port whose device function boots by PXE carries a second tag,
//!   `<tag>-pxe` ("bmc-discovery-pxe"): `GET /api/dcim/interfaces/?tag=
//!   bmc-discovery-pxe&device_id=N` is the boot MACs of a server. The tag
//!   is taken off when the BMC stops saying so.
//! - A MAC is in NetBox once: one already there on another device (or
//!   someone else's object) is left where it is, and the port gets no
//!   primary MAC (noted); an unassigned one is taken. Creates that race
//!   (two registrations of one server) keep the oldest object per MAC.
//! - Bulk requests: a fresh server costs two writes (its MACs, made on
//!   nothing, then the interfaces created with them as primary MACs,
//!   which NetBox assigns on create) and one read (the MACs by value); an
//!   unchanged one two reads, no write.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::writes::{is_duplicate, Ctx};
use super::{Options, RegisterError, Registration};
use crate::netbox::client::ObjectId;
use crate::netbox::items::has_tag;
use crate::placement::slug;
use crate::redfish::inventory::HostPort;

/// NetBox's limit for a description.
const MAX_DESCRIPTION: usize = 200;

/// The device the ports go on.
pub(super) struct Device {
    pub id: ObjectId,
    pub tag: ObjectId,
    /// Created by this registration: nothing is on it to read.
    pub new: bool,
    /// Whether the hook's interfaces that are no longer ports may go (not
    /// while the device's identity is unproven).
    pub remove_stale: bool,
}

/// One interface as the hook wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub name: String,
    pub kind: &'static str,
    pub enabled: bool,
    pub description: String,
    pub pxe: bool,
    pub mac: Option<String>,
}

/// The interfaces for `ports`, without one named like the BMC's interface.
pub fn desired(ports: &[HostPort], bmc_interface: &str) -> Vec<Wanted> {
    ports
        .iter()
        .filter(|p| p.name != bmc_interface)
        .map(|p| Wanted {
            name: p.name.clone(),
            kind: interface_type(p),
            enabled: p.enabled.unwrap_or(true),
            description: description(p),
            pxe: p.pxe,
            mac: p.mac.clone(),
        })
        .collect()
}

/// NetBox's interface type for a port: by technology, the fastest speed
/// it supports (else the one it runs at) and its medium; `other` where
/// they do not say enough.
pub fn interface_type(p: &HostPort) -> &'static str {
    let speed = p.max_speed_mbps.or(p.speed_mbps).unwrap_or(0);
    let optical = p.medium.as_deref() == Some("Optical");
    let electrical = p.medium.as_deref() == Some("Electrical");
    match p.technology.as_deref() {
        Some("InfiniBand") => match speed {
            800_000.. => "infiniband-xdr",
            400_000.. => "infiniband-ndr",
            200_000.. => "infiniband-hdr",
            100_000.. => "infiniband-edr",
            56_000.. => "infiniband-fdr",
            40_000.. => "infiniband-qdr",
            20_000.. => "infiniband-ddr",
            10_000.. => "infiniband-sdr",
            _ => "other",
        },
        Some("FibreChannel") => match speed {
            128_000.. => "128gfc-qsfp28",
            64_000.. => "64gfc-qsfpp",
            32_000.. => "32gfc-sfp28",
            16_000.. => "16gfc-sfpp",
            8_000.. => "8gfc-sfpp",
            _ => "other",
        },
        None | Some("Ethernet") => match speed {
            400_000.. => "400gbase-x-qsfpdd",
            200_000.. => "200gbase-x-qsfp56",
            100_000.. => "100gbase-x-qsfp28",
            50_000.. => "50gbase-x-sfp56",
            40_000.. => "40gbase-x-qsfpp",
            25_000.. => "25gbase-x-sfp28",
            10_000.. if electrical => "10gbase-t",
            10_000.. => "10gbase-x-sfpp",
            5_000.. => "5gbase-t",
            2_500.. => "2.5gbase-t",
            1_000.. if optical => "1000base-x-sfp",
            1_000.. => "1000base-t",
            100.. => "100base-tx",
            _ => "other",
        },
        Some(_) => "other",
    }
}

/// The adapter, the PXE mark and the LLDP neighbour, as one line.
fn description(p: &HostPort) -> String {
    let mut parts: Vec<String> = p.adapter.iter().cloned().collect();
    if p.pxe {
        parts.push("PXE boot".into());
    }
    if let Some(n) = &p.lldp {
        let switch = n
            .system_name
            .clone()
            .or_else(|| n.chassis_id.clone())
            .unwrap_or_else(|| "?".into());
        parts.push(match &n.port_id {
            Some(port) => format!("LLDP {switch} port {port}"),
            None => format!("LLDP {switch}"),
        });
    }
    let d = parts.join("; ");
    match d.char_indices().nth(MAX_DESCRIPTION) {
        Some((i, _)) => d[..i].to_string(),
        None => d,
    }
}

/// The hook's host interfaces after [`sync`]: by name, their id and, for
/// those that were there before, the interface as NetBox answered it
/// (with its `cable` and `link_peers`). Interfaces left to people are not
/// in it.
#[derive(Default)]
pub(super) struct Synced {
    pub ifaces: BTreeMap<String, (ObjectId, Option<Value>)>,
}

/// Brings the device's host-port interfaces and their MACs in line with
/// the inventory. A create that loses a race to a concurrent registration
/// of the same server reads again and converges.
pub(super) fn sync(
    cx: &mut Ctx,
    reg: &Registration,
    opts: &Options,
    dev: &Device,
) -> Result<Synced, RegisterError> {
    let want = desired(&reg.inventory.host_ports, &opts.interface);
    if want.is_empty() && dev.new {
        return Ok(Synced::default());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sync_once(cx, opts, dev, &want, dev.new && attempt == 1) {
            Err(Race) if attempt < 3 => continue,
            Err(Race) => {
                return Err(RegisterError::Failed(format!(
                    "host interfaces of device {}: other registrations kept changing them; \
                     the next discovery tries again",
                    dev.id
                )))
            }
            Ok(r) => return r,
        }
    }
}

/// A create that lost to a concurrent one: read again.
struct Race;

fn sync_once(
    cx: &mut Ctx,
    opts: &Options,
    dev: &Device,
    want: &[Wanted],
    new: bool,
) -> Result<Result<Synced, RegisterError>, Race> {
    match plan_and_write(cx, opts, dev, want, new) {
        Err(Step::Race) => Err(Race),
        Err(Step::Failed(e)) => Ok(Err(e)),
        Ok(s) => Ok(Ok(s)),
    }
}

enum Step {
    Race,
    Failed(RegisterError),
}

impl<E: Into<RegisterError>> From<E> for Step {
    fn from(e: E) -> Step {
        Step::Failed(e.into())
    }
}

fn plan_and_write(
    cx: &mut Ctx,
    opts: &Options,
    dev: &Device,
    want: &[Wanted],
    new: bool,
) -> Result<Synced, Step> {
    let nb = cx.nb;
    let pxe_slug = format!("{}-pxe", slug(&opts.tag));
    let pxe_tag = if want.iter().any(|w| w.pxe) {
        let what = format!("tag {}-pxe", opts.tag);
        cx.shared(
            "extras/tags",
            &[("slug", &pxe_slug)],
            Some(json!({"name": format!("{}-pxe", opts.tag), "slug": pxe_slug, "color": "4caf50",
                        "description": "host port that boots by PXE, per its BMC (kea-hook-bmc-discovery)"})),
            false,
            &what,
        )?
        .as_ref()
        .and_then(ObjectId::of)
    } else {
        None
    };
    let have: Vec<Value> = if new {
        Vec::new()
    } else {
        nb.list(&format!(
            "/api/dcim/interfaces/?device_id={}&limit=1000",
            dev.id.wire()
        ))?
    };
    let mut ours: BTreeMap<String, &Value> = BTreeMap::new();
    let mut theirs: HashSet<String> = HashSet::new();
    for v in &have {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        if name == opts.interface {
            continue;
        }
        if has_tag(v, dev.tag) {
            ours.insert(name.to_string(), v);
        } else {
            theirs.insert(name.to_string());
        }
    }
    // Every object NetBox has for the MACs wanted, wherever it is.
    let macs: Vec<&str> = want.iter().filter_map(|w| w.mac.as_deref()).collect();
    let known = mac_objects(cx, &macs)?;

    // Interfaces: created, or their fields brought in line.
    let mut creates = Vec::new();
    let mut patches: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut left_to_people = Vec::new();
    for w in want {
        if theirs.contains(&w.name) {
            left_to_people.push(w.name.clone());
            continue;
        }
        // The hook's tags added, the PXE tag taken off a port that no
        // longer boots by PXE; other tags stay.
        let tags = |current: &[ObjectId]| {
            let mut t: Vec<ObjectId> = current
                .iter()
                .copied()
                .filter(|t| w.pxe || (Some(*t) != pxe_tag && !is_pxe_tag(&have, *t, &pxe_slug)))
                .collect();
            for add in [Some(dev.tag), pxe_tag.filter(|_| w.pxe)]
                .into_iter()
                .flatten()
            {
                if !t.contains(&add) {
                    t.push(add);
                }
            }
            t
        };
        match ours.get(&w.name) {
            None => creates.push((
                w,
                json!({
                    "device": dev.id, "name": w.name, "type": w.kind, "enabled": w.enabled,
                    "mgmt_only": false, "description": w.description, "tags": tags(&[]),
                }),
            )),
            Some(v) => {
                let mut p = Map::new();
                let s = |k: &str| v.pointer(k).cloned().unwrap_or(Value::Null);
                if s("/type/value") != json!(w.kind) {
                    p.insert("type".into(), json!(w.kind));
                }
                if s("/enabled") != json!(w.enabled) {
                    p.insert("enabled".into(), json!(w.enabled));
                }
                if s("/mgmt_only") != json!(false) {
                    p.insert("mgmt_only".into(), json!(false));
                }
                if s("/description") != json!(w.description) {
                    p.insert("description".into(), json!(w.description));
                }
                let current = tag_ids(v);
                let t = tags(&current);
                if t.iter().collect::<HashSet<_>>() != current.iter().collect::<HashSet<_>>() {
                    p.insert("tags".into(), json!(t));
                }
                if !p.is_empty() {
                    patches.insert(w.name.clone(), p);
                }
            }
        }
    }
    if !left_to_people.is_empty() {
        cx.notes.push(format!(
            "host interfaces {} exist on the device without the hook's tag: left as they are",
            left_to_people.join(", ")
        ));
    }
    let mut primary_at_create: HashMap<String, ObjectId> = HashMap::new();
    let mut ids: HashMap<String, ObjectId> = ours
        .iter()
        .filter_map(|(n, v)| Some((n.clone(), ObjectId::of(v)?)))
        .collect();
    // An interface created with its primary MAC set takes that MAC
    // object (NetBox assigns it on create, from 4.7): a new interface's MAC
    // is made first, on nothing, and the interfaces then cost one request
    // with their MACs instead of two more. An older NetBox refuses that,
    // and its MACs are made below, assigned, then set as primary.
    let mut created_primary: HashSet<String> = HashSet::new();
    if !creates.is_empty() {
        let mut early = Vec::new();
        let mut early_names = Vec::new();
        let at_create = nb.assigns_primary_mac_at_create();
        for (w, body) in creates.iter_mut().filter(|_| at_create) {
            let Some(m) = &w.mac else { continue };
            let objs = known.get(m.as_str()).map(Vec::as_slice).unwrap_or_default();
            if objs.is_empty() {
                early.push(json!({"mac_address": m, "tags": [dev.tag]}));
                early_names.push(w.name.clone());
            } else if let Some(o) = objs
                .iter()
                .find(|o| o.get("assigned_object_id").is_none_or(Value::is_null))
            {
                body["primary_mac_address"] = json!(ObjectId::of(o));
                created_primary.insert(w.name.clone());
            }
        }
        let mut early_ids = Vec::new();
        if !early.is_empty() {
            let made = nb.post("/api/dcim/mac-addresses/", &Value::from(early.clone()))?;
            for (name, c) in early_names
                .iter()
                .zip(made.as_array().into_iter().flatten())
            {
                if let Some(id) = ObjectId::of(c) {
                    if let Some((_, body)) = creates.iter_mut().find(|(w, _)| w.name == *name) {
                        body["primary_mac_address"] = json!(id);
                    }
                    created_primary.insert(name.clone());
                    early_ids.extend(id.real());
                }
            }
            cx.changes
                .push(format!("created {} host MAC addresses", early.len()));
        }
        let body: Vec<Value> = creates.iter().map(|(_, b)| b.clone()).collect();
        let created = match nb.post("/api/dcim/interfaces/", &Value::from(body)) {
            Ok(c) => c,
            Err(e) => {
                // The MACs made for them would be left on nothing: gone
                // again, so that the read after a lost race sees the
                // winner's alone.
                if !early_ids.is_empty() {
                    let _ = nb.delete_many("/api/dcim/mac-addresses/", &early_ids);
                }
                return Err(if is_duplicate(&e) {
                    Step::Race
                } else {
                    e.into()
                });
            }
        };
        for c in created.as_array().into_iter().flatten() {
            if let (Some(n), Some(id)) = (c.get("name").and_then(Value::as_str), ObjectId::of(c)) {
                ids.insert(n.to_string(), id);
                if let Some(p) = c.get("primary_mac_address").and_then(ObjectId::of) {
                    primary_at_create.insert(n.to_string(), p);
                }
            }
        }
        cx.changes
            .push(format!("created {} host interfaces", creates.len()));
    }

    // MACs: the object each interface's primary MAC is to be.
    let mut mac_creates = Vec::new();
    let mut mac_moves = Vec::new();
    let mut primary: HashMap<String, ObjectId> = HashMap::new();
    let mut elsewhere = Vec::new();
    for w in want {
        let (Some(m), Some(iface)) = (&w.mac, ids.get(&w.name)) else {
            continue;
        };
        if created_primary.contains(&w.name) {
            if let Some(p) = primary_at_create.get(&w.name) {
                primary.insert(w.name.clone(), *p);
            }
            continue;
        }
        let objs = known.get(m.as_str()).map(Vec::as_slice).unwrap_or_default();
        let on_it = objs
            .iter()
            .filter(|o| assigned_to(o) == Some(*iface))
            .min_by_key(|o| ObjectId::of(o).map(ObjectId::wire));
        if let Some(o) = on_it {
            if let Some(id) = ObjectId::of(o) {
                primary.insert(w.name.clone(), id);
            }
            continue;
        }
        // An object of the hook's on an interface of this device that is
        // no longer a port (a renamed port), or one on nothing: taken.
        let movable = objs.iter().find(|o| {
            let on_ours = assigned_to(o)
                .is_some_and(|i| ids.values().any(|x| *x == i) || is_ours_here(&have, i, dev.tag));
            o.get("assigned_object_id").is_none_or(Value::is_null)
                || (on_ours && has_tag(o, dev.tag))
        });
        match movable {
            Some(o) => {
                if let Some(id) = ObjectId::of(o) {
                    mac_moves.push(json!({"id": id, "assigned_object_type": "dcim.interface",
                                          "assigned_object_id": iface, "tags": [dev.tag]}));
                    primary.insert(w.name.clone(), id);
                }
            }
            None if objs.is_empty() => mac_creates.push((
                w.name.clone(),
                json!({"mac_address": m, "assigned_object_type": "dcim.interface",
                       "assigned_object_id": iface, "tags": [dev.tag]}),
            )),
            None => elsewhere.push(m.clone()),
        }
    }
    if !elsewhere.is_empty() {
        cx.notes.push(format!(
            "MAC addresses {} are in NetBox on another device or object: left there, \
             not duplicated; their ports have no primary MAC",
            elsewhere.join(", ")
        ));
    }
    if !mac_moves.is_empty() {
        nb.patch("/api/dcim/mac-addresses/", &Value::from(mac_moves.clone()))?;
        cx.changes.push(format!(
            "moved {} MAC addresses to host interfaces",
            mac_moves.len()
        ));
    }
    if !mac_creates.is_empty() {
        let body: Vec<Value> = mac_creates.iter().map(|(_, b)| b.clone()).collect();
        let created = nb.post("/api/dcim/mac-addresses/", &Value::from(body))?;
        for ((name, _), c) in mac_creates
            .iter()
            .zip(created.as_array().into_iter().flatten())
        {
            if let Some(id) = ObjectId::of(c) {
                primary.insert(name.clone(), id);
            }
        }
        cx.changes
            .push(format!("created {} host MAC addresses", mac_creates.len()));
        if !nb.dry_run() {
            settle_races(cx, dev, want, &ids, &mut primary)?;
        }
    }

    // Primary MACs, with the field changes, in one request; the hook's
    // MACs they replace go after.
    let mut stale_macs = Vec::new();
    for w in want {
        let current = ours
            .get(&w.name)
            .and_then(|v| v.get("primary_mac_address"))
            .and_then(ObjectId::of)
            .or_else(|| primary_at_create.get(&w.name).copied());
        let target = primary.get(&w.name).copied();
        if target.is_some() && target != current {
            patches
                .entry(w.name.clone())
                .or_default()
                .insert("primary_mac_address".into(), json!(target));
            if let Some(old) = current {
                stale_macs.push(old);
            }
        }
    }
    if !patches.is_empty() {
        let body: Vec<Value> = patches
            .iter()
            .filter_map(|(name, p)| {
                let mut p = p.clone();
                p.insert("id".into(), json!(ids.get(name)?));
                Some(Value::Object(p))
            })
            .collect();
        nb.patch("/api/dcim/interfaces/", &Value::from(body))?;
        let changed: Vec<String> = patches
            .iter()
            .filter(|(n, _)| ours.contains_key(*n))
            .map(|(n, p)| format!("{n} ({})", p.keys().cloned().collect::<Vec<_>>().join(", ")))
            .collect();
        if !changed.is_empty() {
            cx.changes
                .push(format!("updated host interfaces: {}", changed.join(", ")));
        }
    }
    // A replaced NIC's old MAC, if it was the hook's.
    for old in stale_macs {
        let still_used = primary.values().any(|p| *p == old);
        let was_ours = have.iter().any(|v| {
            v.get("primary_mac_address").and_then(ObjectId::of) == Some(old) && has_tag(v, dev.tag)
        });
        if !still_used && was_ours {
            cx.remove("dcim/mac-addresses", &json!({"id": old}))?;
            cx.changes
                .push("removed a replaced host MAC address".into());
        }
    }
    // The hook's interfaces that are no ports any more (their MACs go with
    // them: NetBox deletes an interface's MAC objects).
    if dev.remove_stale {
        let names: HashSet<&str> = want.iter().map(|w| w.name.as_str()).collect();
        let gone: Vec<u64> = ours
            .iter()
            .filter(|(n, _)| !names.contains(n.as_str()))
            .filter_map(|(_, v)| ObjectId::of(v)?.real())
            .collect();
        if !gone.is_empty() {
            nb.delete_many("/api/dcim/interfaces/", &gone)?;
            cx.changes
                .push(format!("removed {} host interfaces", gone.len()));
        }
    }
    let mut synced = Synced::default();
    for w in want {
        if let Some(id) = ids.get(&w.name) {
            let read = ours.get(&w.name).map(|v| (*v).clone());
            synced.ifaces.insert(w.name.clone(), (*id, read));
        }
    }
    Ok(synced)
}

/// The tag ids of an object as NetBox answers it.
fn tag_ids(v: &Value) -> Vec<ObjectId> {
    v.get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(ObjectId::of).collect())
        .unwrap_or_default()
}

/// Whether `tag` is the PXE tag, by its slug on an interface read.
fn is_pxe_tag(have: &[Value], tag: ObjectId, pxe_slug: &str) -> bool {
    have.iter().any(|v| {
        v.get("tags").and_then(Value::as_array).is_some_and(|t| {
            t.iter().any(|t| {
                ObjectId::of(t) == Some(tag)
                    && t.get("slug").and_then(Value::as_str) == Some(pxe_slug)
            })
        })
    })
}

/// Whether interface `iface` is one of the hook's on this device.
fn is_ours_here(have: &[Value], iface: ObjectId, tag: ObjectId) -> bool {
    have.iter()
        .any(|v| ObjectId::of(v) == Some(iface) && has_tag(v, tag))
}

/// The interface a MAC object is assigned to.
fn assigned_to(o: &Value) -> Option<ObjectId> {
    if o.get("assigned_object_type").and_then(Value::as_str) != Some("dcim.interface") {
        return None;
    }
    o.get("assigned_object_id")
        .and_then(Value::as_u64)
        .map(|n| ObjectId::of(&json!({ "id": n })).unwrap_or(ObjectId::Planned))
}

/// NetBox's MAC objects for `macs`, by canonical MAC, in one request.
fn mac_objects(cx: &Ctx, macs: &[&str]) -> Result<HashMap<String, Vec<Value>>, RegisterError> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    if macs.is_empty() {
        return Ok(out);
    }
    let q: Vec<String> = macs.iter().map(|m| format!("mac_address={m}")).collect();
    for o in cx.nb.list(&format!(
        "/api/dcim/mac-addresses/?{}&limit=1000",
        q.join("&")
    ))? {
        if let Some(m) = o.get("mac_address").and_then(Value::as_str) {
            out.entry(m.to_ascii_lowercase()).or_default().push(o);
        }
    }
    Ok(out)
}

/// After creating MACs: where a concurrent registration created the same
/// MAC for the same interface, the oldest object stays and the hook's
/// newer ones go, whoever made them (each registration decides alike).
fn settle_races(
    cx: &mut Ctx,
    dev: &Device,
    want: &[Wanted],
    ids: &HashMap<String, ObjectId>,
    primary: &mut HashMap<String, ObjectId>,
) -> Result<(), RegisterError> {
    let macs: Vec<&str> = want.iter().filter_map(|w| w.mac.as_deref()).collect();
    let all = mac_objects(cx, &macs)?;
    for w in want {
        let (Some(m), Some(iface)) = (&w.mac, ids.get(&w.name)) else {
            continue;
        };
        let mut on_it: Vec<&Value> = all
            .get(m.as_str())
            .into_iter()
            .flatten()
            .filter(|o| assigned_to(o) == Some(*iface) && has_tag(o, dev.tag))
            .collect();
        if on_it.len() < 2 {
            continue;
        }
        on_it.sort_by_key(|o| ObjectId::of(o).map(ObjectId::wire));
        if let Some(id) = ObjectId::of(on_it[0]) {
            primary.insert(w.name.clone(), id);
        }
        for extra in &on_it[1..] {
            cx.remove("dcim/mac-addresses", extra)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redfish::inventory::LldpNeighbor;

    #[test]
    fn types_follow_technology_speed_and_medium() {
        let p = |tech: Option<&str>, max: Option<u64>, cur: Option<u64>, medium: Option<&str>| {
            HostPort {
                technology: tech.map(str::to_string),
                max_speed_mbps: max,
                speed_mbps: cur,
                medium: medium.map(str::to_string),
                ..HostPort::default()
            }
        };
        // HPE DL365 Gen10 Plus BCM57414: Ethernet, 25 Gbps, Electrical.
        assert_eq!(
            interface_type(&p(Some("Ethernet"), Some(25_000), None, Some("Electrical"))),
            "25gbase-x-sfp28"
        );
        assert_eq!(
            interface_type(&p(None, None, Some(1000), None)),
            "1000base-t"
        );
        assert_eq!(
            interface_type(&p(Some("Ethernet"), Some(10_000), None, Some("Electrical"))),
            "10gbase-t"
        );
        assert_eq!(
            interface_type(&p(Some("Ethernet"), Some(10_000), None, None)),
            "10gbase-x-sfpp"
        );
        assert_eq!(
            interface_type(&p(Some("InfiniBand"), Some(400_000), None, None)),
            "infiniband-ndr"
        );
        assert_eq!(
            interface_type(&p(Some("FibreChannel"), Some(32_000), None, None)),
            "32gfc-sfp28"
        );
        assert_eq!(
            interface_type(&p(Some("Ethernet"), None, None, None)),
            "other"
        );
        assert_eq!(
            interface_type(&p(Some("Token Ring"), Some(16), None, None)),
            "other"
        );
    }

    #[test]
    fn descriptions_carry_adapter_pxe_and_neighbour_within_bounds() {
        let port = HostPort {
            name: "NIC.Slot.1.1-2".into(),
            adapter: Some("Ethernet 10/25Gb 2-port SFP28 MCX512F-ACHT Adapter".into()),
            pxe: true,
            lldp: Some(LldpNeighbor {
                chassis_id: Some("90:20:c2:c7:22:00".into()),
                port_id: Some("1/1/1:4".into()),
                ..LldpNeighbor::default()
            }),
            ..HostPort::default()
        };
        assert_eq!(
            description(&port),
            "Ethernet 10/25Gb 2-port SFP28 MCX512F-ACHT Adapter; PXE boot; LLDP 90:20:c2:c7:22:00 port 1/1/1:4"
        );
        let long = HostPort {
            adapter: Some("x".repeat(500)),
            ..HostPort::default()
        };
        assert_eq!(description(&long).chars().count(), MAX_DESCRIPTION);
        let want = desired(
            &[
                HostPort {
                    name: "bmc".into(),
                    ..HostPort::default()
                },
                HostPort {
                    name: "eth0".into(),
                    enabled: Some(false),
                    ..HostPort::default()
                },
            ],
            "bmc",
        );
        assert_eq!(
            want.len(),
            1,
            "a port named like the BMC interface is left out"
        );
        assert!(!want[0].enabled);
    }
}
