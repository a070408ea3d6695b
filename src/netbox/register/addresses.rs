//! What hangs off the device's BMC interface: the MAC address object (the
//! interface's primary MAC), the IP address object (the device's
//! `oob_ip`), and the removal of the hook's stale ones; beside them, the
//! device's inventory items. Either object found on another device's
//! interface is moved here (`moves`; a conflict was raised earlier when
//! moves are off).
//!
//! A dual-stack BMC leases from kea-dhcp4 and kea-dhcp6, whose hooks
//! register it independently: each keeps (and replaces) only its own
//! family's address on the interface, and `oob_ip` is the address of the
//! family `netbox.oob-ip-family` names whenever the interface holds one,
//! whichever daemon registers first or last.
//!
//! The hook's tag goes on the MAC and IP objects it creates, and only
//! those are ever removed as stale. An object someone else made (or
//! another server's, moved here) is used as it is, tags and all, so the
//! hook never comes to own, and later delete, what a person created.

use serde_json::{json, Map, Value};

use super::identity::list_macs;
use super::moves::{self, Holder, Moved};
use super::writes::{id, joined, oldest, Ctx};
use super::{OobIpFamily, RegisterError, Registration};
use crate::netbox::client::ObjectId;
use crate::netbox::items::{self, has_tag};

/// Which of the hook's other objects on the BMC interface go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stale {
    /// None: the device was just created, there are none to look for.
    Keep,
    /// Only duplicates of this BMC's own MAC or address (a concurrent
    /// registration's): the device's identity is not proven.
    Duplicates,
    /// All: the device was found by this BMC's MAC, or the old BMC is gone.
    Remove,
}

impl Stale {
    /// For a device just created (`new_device`) or found, proven this
    /// server's (`verified`) or not.
    pub fn of(new_device: bool, verified: bool) -> Stale {
        match (new_device, verified) {
            (true, _) => Stale::Keep,
            (false, true) => Stale::Remove,
            (false, false) => Stale::Duplicates,
        }
    }
}

/// The device and its BMC interface, as the chains below need them.
pub(super) struct Attached<'v> {
    pub device: &'v Value,
    pub device_id: ObjectId,
    pub iface: &'v Value,
    pub tag: ObjectId,
    /// The device was created by this registration: nothing is on it yet.
    pub new_device: bool,
    pub stale: Stale,
    pub oob_ip_family: OobIpFamily,
}

/// Three chains need only the device and the interface, not each other:
/// the MAC (then the interface's primary MAC), the address (then the
/// device's oob_ip) and the inventory items. Each runs on its own thread
/// with its own list of changes, merged in this order. What moved here
/// from other devices is returned, for their journals.
pub(super) fn attach(
    cx: &mut Ctx,
    reg: &Registration,
    on: &Attached,
    macs: Vec<Value>,
    ip: Option<Value>,
) -> Result<Vec<Moved>, RegisterError> {
    let iface_id = id(Some(on.iface), "the BMC interface")?;
    let wanted_items = items::desired(reg.inventory);
    let (mac_chain, ip_chain, items_chain) = std::thread::scope(|s| {
        let mut mac_cx = cx.branch();
        let mac_chain = s.spawn(move || {
            let moved = mac_steps(&mut mac_cx, reg, macs, on)?;
            Ok((mac_cx, moved))
        });
        let nb = cx.nb;
        let items_chain = s.spawn(move || {
            items::sync(nb, on.device_id, on.tag, &wanted_items, !on.new_device)
                .map_err(RegisterError::from)
        });
        let mut ip_cx = cx.branch();
        let ip_chain = ip_steps(&mut ip_cx, reg, ip, iface_id, on).map(|moved| (ip_cx, moved));
        (joined(mac_chain), ip_chain, joined(items_chain))
    });
    let mut moved = Vec::new();
    for (part, m) in [mac_chain?, ip_chain?] {
        cx.merge(part);
        moved.extend(m);
    }
    cx.changes.extend(items_chain?);
    Ok(moved)
}

/// The MAC: NetBox does not keep MACs unique, so after a create the oldest
/// object for this MAC wins and the others are removed. Then it is the
/// interface's primary MAC, and (on a device that existed) the hook's
/// older MACs on the interface go. A MAC object on another interface
/// moves here.
fn mac_steps(
    cx: &mut Ctx,
    reg: &Registration,
    macs: Vec<Value>,
    on: &Attached,
) -> Result<Option<Moved>, RegisterError> {
    let iface_id = id(Some(on.iface), "the BMC interface")?;
    let (mac, moved) = mac_object(cx, &reg.bmc_mac, macs, iface_id, on)?;
    let mac_id = id(Some(&mac), &format!("MAC address {}", reg.bmc_mac))?;
    let mut want = Map::new();
    want.insert("primary_mac_address".into(), json!(mac_id));
    cx.update("dcim/interfaces", on.iface, &want, "interface primary MAC")?;
    remove_stale(
        cx,
        "dcim/mac-addresses",
        iface_id,
        Some(mac_id),
        ("MAC address", "mac_address", &reg.bmc_mac),
        &|_| true,
        on,
    )?;
    Ok(moved)
}

/// The IP address, then the device's out-of-band IP (`oob_object`).
fn ip_steps(
    cx: &mut Ctx,
    reg: &Registration,
    found: Option<Value>,
    iface_id: ObjectId,
    on: &Attached,
) -> Result<Option<Moved>, RegisterError> {
    let (ip, moved, on_iface) = ip_object(cx, reg, found, iface_id, on)?;
    let oob = oob_object(&ip, reg.bmc_ip, on.oob_ip_family, on.device, &on_iface);
    let mut want = Map::new();
    want.insert("oob_ip".into(), json!(ObjectId::of(oob)));
    cx.update("dcim/devices", on.device, &want, "device oob_ip")?;
    Ok(moved)
}

/// The address the device's `oob_ip` should be: this BMC's `ip` (its
/// object `this`) when it is of the `family` asked for; else an address
/// of that family on the BMC interface (`on_iface`, the other daemon's
/// registration: the device's current `oob_ip` if it is one of them, else
/// the oldest); else `this`. Both daemons so agree on the same address,
/// whichever registered first.
fn oob_object<'v>(
    this: &'v Value,
    ip: std::net::IpAddr,
    family: OobIpFamily,
    device: &Value,
    on_iface: &'v [Value],
) -> &'v Value {
    if family.holds(ip) {
        return this;
    }
    let wanted: Vec<&Value> = on_iface
        .iter()
        .filter(|o| host_of(o).is_some_and(|h| family.holds(h)))
        .collect();
    let current = device.get("oob_ip").and_then(ObjectId::of);
    wanted
        .iter()
        .find(|o| current.is_some() && ObjectId::of(o) == current)
        .copied()
        .or_else(|| oldest(wanted.iter().copied()))
        .unwrap_or(this)
}

/// The host part of an IP address object's `address` (`ip/len`).
fn host_of(obj: &Value) -> Option<std::net::IpAddr> {
    obj.get("address")
        .and_then(Value::as_str)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The MAC's object on the interface: of those `existing` (read with the
/// other lookups) the one `moves::pick_mac` ranks first, moved here from
/// another interface if it is on one; else a new one.
fn mac_object(
    cx: &mut Ctx,
    mac: &str,
    existing: Vec<Value>,
    iface_id: ObjectId,
    on: &Attached,
) -> Result<(Value, Option<Moved>), RegisterError> {
    let tag = on.tag;
    let mut moved = None;
    let obj = match moves::pick_mac(&existing, Some(on.device_id), Some(iface_id)) {
        Some(m) => {
            if let Some(from) = Holder::of(m).filter(|h| h.iface != iface_id) {
                moved = Some(moves::release_mac(
                    cx,
                    from,
                    m,
                    format!("MAC address {mac}"),
                )?);
            }
            m.clone()
        }
        None => {
            let created = cx.nb.post(
                "/api/dcim/mac-addresses/",
                &json!({"mac_address": mac, "assigned_object_type": "dcim.interface",
                        "assigned_object_id": iface_id, "tags": [tag]}),
            )?;
            cx.changes.push(format!("created MAC address {mac}"));
            // A concurrent registration may have created one too.
            let all = list_macs(cx, mac)?;
            let oldest = oldest(&all).cloned().unwrap_or(created.clone());
            if ObjectId::of(&oldest) != ObjectId::of(&created) {
                cx.remove("dcim/mac-addresses", &created)?;
                cx.changes.pop();
            }
            oldest
        }
    };
    let mut want = Map::new();
    want.insert("assigned_object_type".into(), json!("dcim.interface"));
    want.insert("assigned_object_id".into(), json!(iface_id));
    // A replaced BMC's old MAC, if the hook made it, goes (after the new
    // one is the interface's primary: see the caller).
    let obj = cx.update(
        "dcim/mac-addresses",
        &obj,
        &want,
        &format!("MAC address {mac}"),
    )?;
    Ok((obj, moved))
}

/// The BMC's address on the interface: `found` (the object NetBox had for
/// the address, read with the other lookups) updated (moved here if
/// another device holds it), else created. Also the addresses left on the
/// interface (none looked for on a device just created).
fn ip_object(
    cx: &mut Ctx,
    reg: &Registration,
    found: Option<Value>,
    iface_id: ObjectId,
    on: &Attached,
) -> Result<(Value, Option<Moved>, Vec<Value>), RegisterError> {
    let ip = reg.bmc_ip.to_string();
    let address = format!("{ip}/{}", reg.prefix_len);
    let mut want = Map::new();
    want.insert("address".into(), json!(address));
    want.insert("assigned_object_type".into(), json!("dcim.interface"));
    want.insert("assigned_object_id".into(), json!(iface_id));
    // NetBox stores DNS names lower-cased; sending them so keeps re-runs
    // write-free.
    want.insert(
        "dns_name".into(),
        json!(reg
            .dns_name
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase()),
    );
    let mut moved = None;
    match &found {
        // Only a create is tagged (see the module comment).
        None => {
            want.insert("tags".into(), json!([on.tag]));
        }
        Some(have) => {
            // Another device's: it lets go first. Another interface of
            // this device's needs nothing (NetBox allows that move).
            if let Some(from) = Holder::of(have).filter(|h| h.device != on.device_id) {
                moved = Some(moves::release_ip(
                    cx,
                    from,
                    have,
                    format!("IP address {address}"),
                )?);
            }
        }
    }
    let (obj, _) = cx.upsert(
        "ipam/ip-addresses",
        found,
        &[("address", &ip)],
        &want,
        &format!("IP address {address}"),
    )?;
    // The BMC's earlier addresses of this family on this interface, if the
    // hook made them, are gone from DHCP: remove them. The other family's
    // address is the other daemon's lease (a dual-stack BMC): it stays.
    let family = reg.bmc_ip.is_ipv4();
    let left = remove_stale(
        cx,
        "ipam/ip-addresses",
        iface_id,
        ObjectId::of(&obj),
        ("IP address", "address", &ip),
        &|o| host_of(o).is_some_and(|h| h.is_ipv4() == family),
        on,
    )?;
    Ok((obj, moved, left))
}

/// Removes objects at `endpoint` on the interface that carry the hook's tag,
/// are `of_this_kind` and are not `keep` (with `Stale::Duplicates`, only
/// those whose `label` field is this BMC's `value`: `what` names them).
/// The objects left on the interface (none looked for with `Stale::Keep`).
#[allow(clippy::too_many_arguments)]
fn remove_stale(
    cx: &mut Ctx,
    endpoint: &str,
    iface_id: ObjectId,
    keep: Option<ObjectId>,
    (what, label, value): (&str, &str, &str),
    of_this_kind: &dyn Fn(&Value) -> bool,
    on: &Attached,
) -> Result<Vec<Value>, RegisterError> {
    let mut left = Vec::new();
    if on.stale == Stale::Keep {
        return Ok(left);
    }
    for old in cx.on_interface(endpoint, iface_id)? {
        let shown = old.get(label).and_then(Value::as_str).unwrap_or("?");
        // An address is `ip/len`; a MAC is upper-cased by NetBox.
        let same = shown
            .split('/')
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(value));
        if ObjectId::of(&old) != keep
            && has_tag(&old, on.tag)
            && of_this_kind(&old)
            && (on.stale == Stale::Remove || same)
        {
            cx.remove(endpoint, &old)?;
            cx.changes.push(format!("removed old {what} {shown}"));
        } else {
            left.push(old);
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::{oob_object, OobIpFamily};
    use crate::netbox::client::ObjectId;
    use serde_json::{json, Value};

    fn ip(id: u64, address: &str) -> Value {
        json!({"id": id, "address": address})
    }

    #[test]
    fn oob_ip_is_the_policy_family_whichever_daemon_registers() {
        let v4 = ip(7, "127.1.0.10/16");
        let v6 = ip(9, "fd00:91:1::10/64");
        let none = json!({"oob_ip": null});
        let id = |v: &Value| ObjectId::of(v);
        let v4_ip = "127.1.0.10".parse().unwrap();
        let v6_ip = "fd00:91:1::10".parse().unwrap();
        let both = [v4.clone(), v6.clone()];
        // Preferring IPv4: the v6 daemon alone takes its own; once the
        // v4 address is on the interface, both daemons pick the v4 one.
        let v4_pref = OobIpFamily::Ipv4;
        assert_eq!(
            id(oob_object(
                &v6,
                v6_ip,
                v4_pref,
                &none,
                std::slice::from_ref(&v6)
            )),
            id(&v6)
        );
        assert_eq!(id(oob_object(&v6, v6_ip, v4_pref, &none, &both)), id(&v4));
        assert_eq!(id(oob_object(&v4, v4_ip, v4_pref, &none, &both)), id(&v4));
        // Preferring IPv6, the other way round.
        let v6_pref = OobIpFamily::Ipv6;
        assert_eq!(id(oob_object(&v4, v4_ip, v6_pref, &none, &both)), id(&v6));
        assert_eq!(id(oob_object(&v4, v4_ip, v6_pref, &none, &[])), id(&v4));
        assert_eq!(id(oob_object(&v6, v6_ip, v6_pref, &none, &both)), id(&v6));
        // Of two v4 addresses (one someone added), the current oob_ip
        // stays; without it the oldest.
        let other = ip(3, "127.1.0.99/16");
        let three = [v4.clone(), v6.clone(), other.clone()];
        let current = json!({"oob_ip": {"id": 7}});
        assert_eq!(
            id(oob_object(&v6, v6_ip, v4_pref, &current, &three)),
            id(&v4)
        );
        assert_eq!(
            id(oob_object(&v6, v6_ip, v4_pref, &none, &three)),
            id(&other)
        );
    }

    #[test]
    fn the_family_names_parse() {
        assert_eq!(OobIpFamily::parse("ipv4"), Some(OobIpFamily::Ipv4));
        assert_eq!(OobIpFamily::parse("ipv6"), Some(OobIpFamily::Ipv6));
        assert_eq!(OobIpFamily::parse("IPv6"), None);
        assert_eq!(OobIpFamily::default(), OobIpFamily::Ipv4);
    }
}
