//! The leased address, or the BMC's MAC, found in NetBox on another
//! device's interface. The DHCP lease proves who holds them now (an
//! expired lease handed on by the pool, a server moved, a BMC card moved
//! between servers), so with `netbox.address-moves: "move"` they move to
//! this BMC's interface; with `"conflict"` the registration is a conflict
//! naming the other device, and nothing is written.
//!
//! NetBox refuses to reassign an IP address that is its device's `oob_ip`
//! (or primary IP), or a MAC object that is its interface's primary MAC:
//! the other side lets go first, read-first like every write here. Only
//! those references to the moved object are cleared; the object itself
//! keeps its other fields, and the other device keeps everything else. A
//! serial or name (claims) never moves anything: only what the lease
//! proves does.

use serde_json::{json, Map, Value};

use super::writes::{oldest, Ctx};
use super::{AddressMoves, Options, RegisterError, Registration};
use crate::netbox::client::ObjectId;

/// The interface (and its device) that holds an object this BMC needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Holder {
    pub device: ObjectId,
    pub device_name: String,
    pub iface: ObjectId,
    pub iface_name: String,
}

impl Holder {
    /// Where `obj` (an IP or MAC address object as NetBox answers it) is
    /// assigned, when that is a device interface; None when it is
    /// unassigned or on something else (a VM interface, an FHRP group).
    pub fn of(obj: &Value) -> Option<Holder> {
        if obj.get("assigned_object_type").and_then(Value::as_str) != Some("dcim.interface") {
            return None;
        }
        let iface = obj.get("assigned_object")?;
        let device = iface.get("device")?;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(Holder {
            device: ObjectId::of(device)?,
            device_name: text(device, "name"),
            iface: ObjectId::of(iface)?,
            iface_name: text(iface, "name"),
        })
    }

    /// "device "a" (id 7), interface bmc", for messages and journals.
    fn shown(&self) -> String {
        format!(
            "device {:?} (id {}), interface {}",
            self.device_name, self.device, self.iface_name
        )
    }
}

/// The MAC object a registration uses among `macs` (every object NetBox
/// holds for the BMC's MAC): the one on the BMC interface `iface`, else
/// one on the `device`, else the oldest. The conflict check (which knows
/// only the device) and the MAC step (which knows the interface too)
/// rank alike, so they agree on whether the MAC moves.
pub(super) fn pick_mac(
    macs: &[Value],
    device: Option<ObjectId>,
    iface: Option<ObjectId>,
) -> Option<&Value> {
    let on = |pred: &dyn Fn(&Holder) -> bool| {
        oldest(
            macs.iter()
                .filter(|m| Holder::of(m).is_some_and(|h| pred(&h))),
        )
    };
    iface
        .and_then(|i| on(&|h| h.iface == i))
        .or_else(|| device.and_then(|d| on(&|h| h.device == d)))
        .or_else(|| oldest(macs))
}

/// With `netbox.address-moves: "conflict"`: the leased address or the
/// BMC's MAC on another device than `device` (the one this server is;
/// None: it has none yet) is a conflict, found before anything is
/// written.
pub(super) fn check(
    reg: &Registration,
    opts: &Options,
    device: Option<&Value>,
    ip: Option<&Value>,
    macs: &[Value],
) -> Result<(), RegisterError> {
    if opts.address_moves == AddressMoves::Move {
        return Ok(());
    }
    let ours = device.and_then(ObjectId::of);
    let elsewhere =
        |obj: Option<&Value>| obj.and_then(Holder::of).filter(|h| Some(h.device) != ours);
    let found = [
        (
            elsewhere(ip),
            format!("address {}", reg.bmc_ip),
            "its DHCP lease",
        ),
        (
            elsewhere(pick_mac(macs, ours, None)),
            format!("MAC {}", reg.bmc_mac),
            "its own MAC",
        ),
    ];
    for (holder, what, proof) in found {
        if let Some(h) = holder {
            return Err(RegisterError::Conflict(format!(
                "BMC {} at {} holds {what} by {proof}, but NetBox has it on {}; nothing \
                 written (netbox.address-moves is \"conflict\": remove it from that device, \
                 or set \"move\" to let it move)",
                reg.bmc_mac,
                reg.bmc_ip,
                h.shown()
            )));
        }
    }
    Ok(())
}

/// One object moved here from another device's interface, for that
/// device's journal.
#[derive(Clone, Debug)]
pub(super) struct Moved {
    pub from: Holder,
    /// "IP address 10.0.5.17/24", "MAC address 02:00:...".
    pub what: String,
    /// What the other side let go of first ("oob_ip", "primary MAC").
    pub cleared: Vec<&'static str>,
    /// The other device's `oob_ip` now: its other address on that
    /// interface (a dual-stack BMC's other family), if it has one.
    pub oob_now: Option<String>,
}

/// The IP address object `ip`, held by another device's interface, made
/// free to move: that device's `oob_ip`, `primary_ip4` and `primary_ip6`,
/// where they are this address, are cleared (one PATCH). A dual-stack
/// device losing one family's address keeps its other address on that
/// interface as `oob_ip` (the oldest, if it has several) rather than none.
/// Its interface assignment moves with the caller's update.
pub(super) fn release_ip(
    cx: &mut Ctx,
    from: Holder,
    ip: &Value,
    what: String,
) -> Result<Moved, RegisterError> {
    let ip_id = ObjectId::of(ip);
    let device = cx
        .nb
        .get(&format!("/api/dcim/devices/{}/", from.device.wire()))?;
    let mut clear = Map::new();
    let mut cleared = Vec::new();
    for field in ["oob_ip", "primary_ip4", "primary_ip6"] {
        if device.get(field).and_then(ObjectId::of) == ip_id && ip_id.is_some() {
            clear.insert(field.into(), Value::Null);
            cleared.push(field);
        }
    }
    let mut oob_now = None;
    if clear.contains_key("oob_ip") {
        let others = cx.on_interface("ipam/ip-addresses", from.iface)?;
        if let Some(other) = oldest(others.iter().filter(|o| ObjectId::of(o) != ip_id)) {
            clear.insert("oob_ip".into(), json!(ObjectId::of(other)));
            oob_now = other
                .get("address")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    if !clear.is_empty() {
        cx.nb.patch(
            &format!("/api/dcim/devices/{}/", from.device.wire()),
            &Value::Object(clear),
        )?;
    }
    let mut moved = moved_here(cx, from, what, cleared)?;
    moved.oob_now = oob_now;
    Ok(moved)
}

/// The MAC object `mac`, held by another interface, made free to move:
/// that interface's primary MAC, if it is this one, is cleared.
pub(super) fn release_mac(
    cx: &mut Ctx,
    from: Holder,
    mac: &Value,
    what: String,
) -> Result<Moved, RegisterError> {
    let iface = cx
        .nb
        .get(&format!("/api/dcim/interfaces/{}/", from.iface.wire()))?;
    let mut cleared = Vec::new();
    let mac_id = ObjectId::of(mac);
    if mac_id.is_some() && iface.get("primary_mac_address").and_then(ObjectId::of) == mac_id {
        cx.nb.patch(
            &format!("/api/dcim/interfaces/{}/", from.iface.wire()),
            &json!({"primary_mac_address": null}),
        )?;
        cleared.push("primary MAC");
    }
    moved_here(cx, from, what, cleared)
}

/// The line in this registration's changes (and so in this device's
/// journal) for a move.
fn moved_here(
    cx: &mut Ctx,
    from: Holder,
    what: String,
    cleared: Vec<&'static str>,
) -> Result<Moved, RegisterError> {
    let mut line = format!("moved {what} here from {}", from.shown());
    if !cleared.is_empty() {
        line.push_str(&format!(" (its {} there cleared)", cleared.join(", ")));
    }
    cx.changes.push(line);
    Ok(Moved {
        from,
        what,
        cleared,
        oob_now: None,
    })
}

/// One journal entry on each device something moved away from, saying
/// what went where: this BMC, its device and interface.
pub(super) fn journal(
    cx: &mut Ctx,
    reg: &Registration,
    opts: &Options,
    device_id: ObjectId,
    moved: &[Moved],
) -> Result<(), RegisterError> {
    // A move between this device's own interfaces is in its own journal.
    let mut devices: Vec<ObjectId> = moved
        .iter()
        .map(|m| m.from.device)
        .filter(|d| *d != device_id)
        .collect();
    devices.sort_by_key(|d| d.wire());
    devices.dedup();
    for from in devices {
        let mut text = format!(
            "kea-hook-bmc-discovery: moved to device {:?} (id {device_id}), interface {}, \
             because BMC `{}` holds it now (DHCP lease of {})\n",
            reg.name, opts.interface, reg.bmc_mac, reg.bmc_ip
        );
        for m in moved.iter().filter(|m| m.from.device == from) {
            text.push_str(&format!(
                "\n- {} from interface {}",
                m.what, m.from.iface_name
            ));
            if !m.cleared.is_empty() {
                text.push_str(&format!(" ({} cleared first)", m.cleared.join(", ")));
            }
            if let Some(now) = &m.oob_now {
                text.push_str(&format!("; its oob_ip is now {now}, its other address"));
            }
        }
        cx.nb.post(
            "/api/extras/journal-entries/",
            &json!({"assigned_object_type": "dcim.device", "assigned_object_id": from,
                    "kind": "warning", "comments": text}),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{pick_mac, Holder};
    use crate::netbox::client::ObjectId;
    use serde_json::json;

    fn on(id: u64, device: u64, iface: u64) -> serde_json::Value {
        json!({"id": id, "assigned_object_type": "dcim.interface",
               "assigned_object_id": iface,
               "assigned_object": {"id": iface, "name": "bmc",
                                   "device": {"id": device, "name": format!("dev{device}")}}})
    }

    #[test]
    fn only_device_interfaces_hold() {
        assert_eq!(
            Holder::of(&on(1, 7, 70)),
            Some(Holder {
                device: ObjectId::Real(7),
                device_name: "dev7".into(),
                iface: ObjectId::Real(70),
                iface_name: "bmc".into(),
            })
        );
        assert_eq!(
            Holder::of(&json!({"id": 1, "assigned_object_type": null})),
            None
        );
        let vm = json!({"id": 1, "assigned_object_type": "virtualization.vminterface",
                        "assigned_object": {"id": 3, "virtual_machine": {"id": 4}}});
        assert_eq!(Holder::of(&vm), None);
    }

    #[test]
    fn the_mac_on_this_interface_then_device_then_the_oldest() {
        let macs = [on(3, 7, 70), on(5, 8, 80), on(9, 8, 81), json!({"id": 2})];
        let id = |v: Option<&serde_json::Value>| v.and_then(ObjectId::of);
        let real = |n| Some(ObjectId::Real(n));
        assert_eq!(id(pick_mac(&macs, real(8), real(81))), real(9));
        assert_eq!(id(pick_mac(&macs, real(8), real(99))), real(5));
        assert_eq!(id(pick_mac(&macs, real(8), None)), real(5));
        assert_eq!(id(pick_mac(&macs, real(1), None)), real(2));
        assert_eq!(id(pick_mac(&macs, None, None)), real(2));
        assert_eq!(pick_mac(&[], real(8), None), None);
    }
}
