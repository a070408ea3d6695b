//! Which NetBox device is this server's: found by serial, then by the
//! BMC's own MAC, then by name in the site. Serials and names are claims
//! any device on the BMC network can make, so a device not found by this
//! BMC's own MAC must be vouched for: its other BMC MACs must be gone.

use serde_json::Value;

use super::moves::pick_mac;
use super::writes::{id, joined, name_of, shown_id, Ctx};
use super::{AddressMoves, Options, RegisterError, Registration};
use crate::netbox::client::ObjectId;
use crate::netbox::items::has_tag;

/// What NetBox holds for one server, read in parallel: none of these
/// answers depends on another, and on a NetBox where a request costs a
/// few hundred milliseconds, reading them one after another was a second
/// of every registration.
pub(super) struct Found {
    pub by_serial: Option<Value>,
    pub by_name: Option<Value>,
    /// Every MAC address object for the BMC's MAC.
    pub macs: Vec<Value>,
    pub asset_tag_holder: Option<Value>,
    /// The object for the BMC's IP address.
    pub ip: Option<Value>,
}

impl Found {
    pub fn read(cx: &Ctx, reg: &Registration, site: ObjectId) -> Result<Found, RegisterError> {
        let inv = reg.inventory;
        let ip = reg.bmc_ip.to_string();
        let site_id = site.wire().to_string();
        let find = |endpoint: &str, filter: &[(&str, &str)]| cx.find(endpoint, filter);
        std::thread::scope(|s| {
            let by_serial = inv
                .serial_number
                .as_deref()
                .map(|serial| s.spawn(move || find("dcim/devices", &[("serial", serial)])));
            let by_name = s.spawn(|| {
                find(
                    "dcim/devices",
                    &[("name", &reg.name), ("site_id", &site_id)],
                )
            });
            let asset_tag_holder = inv
                .asset_tag
                .as_deref()
                .map(|tag| s.spawn(move || find("dcim/devices", &[("asset_tag", tag)])));
            let ip_found = s.spawn(|| find("ipam/ip-addresses", &[("address", &ip)]));
            let macs = list_macs(cx, &reg.bmc_mac);
            // Every thread is joined before any answer is looked at.
            let by_serial = by_serial.map(joined);
            let by_name = joined(by_name);
            let asset_tag_holder = asset_tag_holder.map(joined);
            let ip = joined(ip_found);
            Ok(Found {
                by_serial: by_serial.transpose()?.flatten(),
                by_name: by_name?,
                macs: macs?,
                asset_tag_holder: asset_tag_holder.transpose()?.flatten(),
                ip: ip?,
            })
        })
    }
}

/// Every MAC address object NetBox holds for `mac`.
pub(super) fn list_macs(cx: &Ctx, mac: &str) -> Result<Vec<Value>, RegisterError> {
    Ok(cx.nb.list(&format!(
        "/api/dcim/mac-addresses/{}",
        super::writes::query(&[("mac_address", mac)])
    ))?)
}

/// The device this server is, if NetBox has one.
pub(super) struct Matched {
    pub device: Option<Value>,
    /// Whether the device is proven this server's, so that the hook's
    /// other MACs and addresses on it may go: it was found by this BMC's
    /// own MAC, or `vouch` cleared it (the old BMC is gone). Otherwise only
    /// duplicates of this BMC's own MAC and address go (concurrent
    /// creates).
    pub verified: bool,
}

/// The device: by serial, then by BMC MAC, then by name in the site; one
/// not found by this BMC's own MAC must pass `vouch`, and one the hook
/// does not own (no tag) or whose serial differs is refused. A device
/// holding the BMC's MAC under another serial is another server's: with
/// `netbox.address-moves: "move"` only the MAC moves from it, else it is
/// a conflict.
pub(super) fn match_device(
    cx: &Ctx,
    reg: &Registration,
    opts: &Options,
    tag: ObjectId,
    by_serial: Option<Value>,
    by_name: Option<Value>,
    macs: &[Value],
) -> Result<Matched, RegisterError> {
    let inv = reg.inventory;
    // One of the MAC's objects on the device found by serial makes that
    // device found by its own MAC too.
    let own_mac_device = pick_mac(macs, by_serial.as_ref().and_then(ObjectId::of), None)
        .and_then(|m| m.pointer("/assigned_object/device"))
        .and_then(ObjectId::of);
    let mut found_by = "serial";
    let mut device = by_serial;
    if device.is_none() {
        if let Some(dev_id) = own_mac_device {
            let d = cx
                .nb
                .get(&format!("/api/dcim/devices/{}/", dev_id.wire()))?;
            // The lease proves the MAC, the serial says another server:
            // the BMC (card) moved. Its MAC moves to this server's own
            // record (addresses.rs); that server's record stays its own.
            let card_moved = other_serial(inv.serial_number.as_deref(), &d).is_some();
            if !(card_moved && opts.address_moves == AddressMoves::Move) {
                device = Some(d);
                found_by = "MAC";
            }
        }
    }
    if device.is_none() {
        if let Some(d) = by_name {
            // A name is anyone's to claim: with no serial to compare,
            // nothing shows this is that server.
            if inv.serial_number.is_none() && !reg.identity.replace_bmc {
                return Err(RegisterError::Conflict(format!(
                    "device {:?} (id {}) in this site has the name this BMC {} asks for, and \
                     the BMC reports no serial to show it is that server; nothing written \
                     (give the BMC another hostname, or bmc-retry with \"replace-bmc\": true \
                     if it is that server)",
                    reg.name,
                    shown_id(&d),
                    reg.bmc_mac
                )));
            }
            device = Some(d);
            found_by = "name";
        }
    }
    let Some(d) = device else {
        return Ok(Matched {
            device: None,
            verified: true,
        });
    };
    if let (Some(serial), Some(theirs)) = (
        &inv.serial_number,
        other_serial(inv.serial_number.as_deref(), &d),
    ) {
        if found_by == "MAC" {
            return Err(RegisterError::Conflict(format!(
                "BMC {} at {} is on device {:?} (id {}) in NetBox (its MAC object is on that \
                 device's interface), but reports serial {serial:?}, that device {theirs:?}: \
                 the BMC moved to another server; nothing written (netbox.address-moves is \
                 \"conflict\": remove the MAC from that device, or set \"move\" to let it \
                 move)",
                reg.bmc_mac,
                reg.bmc_ip,
                name_of(&d),
                shown_id(&d)
            )));
        }
        return Err(RegisterError::Conflict(format!(
            "device {:?} (id {}) has serial {theirs:?}, this server {serial:?}; \
             nothing overwritten",
            name_of(&d),
            shown_id(&d)
        )));
    }
    if !has_tag(&d, tag) {
        return Err(RegisterError::Refused(format!(
            "device {:?} (id {}) matches this BMC {} but does not carry the tag {:?}: the \
             hook never updates devices it does not own; add the tag to the device to let \
             it, or remove the device's serial/name",
            name_of(&d),
            shown_id(&d),
            reg.bmc_mac,
            opts.tag
        )));
    }
    let verified = ObjectId::of(&d) == own_mac_device || vouch(cx, reg, opts, tag, &d, found_by)?;
    Ok(Matched {
        device: Some(d),
        verified,
    })
}

/// The serial `device` has when it is not empty and not `serial` (the
/// server's; None: it reports none, and nothing differs).
fn other_serial<'v>(serial: Option<&str>, device: &'v Value) -> Option<&'v str> {
    let theirs = device.get("serial").and_then(Value::as_str).unwrap_or("");
    (serial.is_some_and(|s| s != theirs) && !theirs.is_empty()).then_some(theirs)
}

/// A device found by serial or name, not by this BMC's own MAC: each other
/// MAC on its hook-owned BMC interface must belong to a BMC that is gone
/// (`Identity::in_use`), else this is a conflict and nothing is written.
/// Whether the replacement is proven, so that the old BMC's objects may be
/// removed: an old MAC was found and is gone, or the operator said so.
fn vouch(
    cx: &Ctx,
    reg: &Registration,
    opts: &Options,
    tag: ObjectId,
    device: &Value,
    by: &str,
) -> Result<bool, RegisterError> {
    if reg.identity.replace_bmc {
        return Ok(true);
    }
    let dev = id(Some(device), "device")?;
    let iface = cx.find(
        "dcim/interfaces",
        &[
            ("device_id", dev.wire().to_string().as_str()),
            ("name", opts.interface.as_str()),
        ],
    )?;
    let Some(iface) = iface.filter(|i| has_tag(i, tag)) else {
        return Ok(false);
    };
    let iface_id = id(Some(&iface), "the BMC interface")?;
    let mut old = 0;
    for m in cx.on_interface("dcim/mac-addresses", iface_id)? {
        let Some(mac) = m.get("mac_address").and_then(Value::as_str) else {
            continue;
        };
        let mac = mac.to_ascii_lowercase();
        if mac == reg.bmc_mac {
            continue;
        }
        old += 1;
        if let Some(why) = (reg.identity.in_use)(&mac) {
            return Err(RegisterError::Conflict(format!(
                "BMC {} at {} claims device {:?} (id {dev}) by its {by}, but that device's BMC \
                 is MAC {mac}, which is still live ({why}); nothing written. If this BMC \
                 replaced it: bmc-retry {{\"mac\": \"{}\", \"replace-bmc\": true}}",
                reg.bmc_mac,
                reg.bmc_ip,
                name_of(device),
                reg.bmc_mac
            )));
        }
    }
    Ok(old > 0)
}
