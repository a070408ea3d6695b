//! The server's parts as NetBox inventory items on its device: CPUs, DIMMs,
//! storage controllers, drives, network adapters, host NICs and power
//! supplies. Only items carrying the hook's tag are created, changed or
//! removed; items people added stay. Creates, updates and removals each go
//! in one bulk request, so a fresh server costs one write here.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::client::{NetBox, NetBoxError, ObjectId};
use crate::placement::MAX_DEVICE_NAME;
use crate::redfish::Inventory;

/// Whether a NetBox object carries the tag with id `tag_id`: the mark of
/// what the hook owns.
pub(super) fn has_tag(v: &Value, tag_id: ObjectId) -> bool {
    v.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| ObjectId::of(t) == Some(tag_id)))
}

/// One desired item: NetBox's `name`, `part_id`, `serial`, `description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub part_id: String,
    pub serial: String,
    pub description: String,
}

fn gib(mib: u64) -> String {
    format!("{} GiB", mib / 1024)
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 40 {
        format!("{:.1} TB", bytes as f64 / 1e12)
    } else {
        format!("{:.0} GB", bytes as f64 / 1e9)
    }
}

fn join(parts: &[Option<String>]) -> String {
    parts
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The items an inventory describes, with unique names of at most 64
/// characters (NetBox's limit; names are unique per device).
pub fn desired(inv: &Inventory) -> Vec<Item> {
    let mut items = Vec::new();
    let mut push = |kind: &str,
                    name: Option<&String>,
                    i: usize,
                    part: Option<&String>,
                    serial: Option<&String>,
                    desc: String| {
        let base = name.cloned().unwrap_or_else(|| format!("{kind} {}", i + 1));
        let base = if base
            .to_ascii_lowercase()
            .starts_with(&kind.to_ascii_lowercase())
        {
            base
        } else {
            format!("{kind} {base}")
        };
        items.push(Item {
            name: base,
            part_id: part.cloned().unwrap_or_default(),
            serial: serial.cloned().unwrap_or_default(),
            description: desc,
        });
    };
    for (i, c) in inv.cpus.iter().enumerate() {
        push(
            "CPU",
            c.socket.as_ref(),
            i,
            c.model.as_ref(),
            None,
            join(&[
                c.cores.map(|n| format!("{n} cores")),
                c.threads.map(|n| format!("{n} threads")),
                c.max_speed_mhz.map(|n| format!("{n} MHz")),
            ]),
        );
    }
    for (i, d) in inv.dimms.iter().enumerate() {
        push(
            "DIMM",
            d.slot.as_ref(),
            i,
            d.part_number.as_ref(),
            d.serial_number.as_ref(),
            join(&[
                d.capacity_mib.map(gib),
                d.memory_type.clone(),
                d.speed_mhz.map(|n| format!("{n} MHz")),
                d.manufacturer.clone(),
            ]),
        );
    }
    for (i, c) in inv.storage_controllers.iter().enumerate() {
        push(
            "Controller",
            c.name.as_ref(),
            i,
            c.model.as_ref(),
            c.serial_number.as_ref(),
            join(&[
                c.raid.then(|| "RAID".to_string()),
                c.firmware_version.as_ref().map(|f| format!("firmware {f}")),
            ]),
        );
    }
    for (i, d) in inv.drives.iter().enumerate() {
        push(
            "Drive",
            d.name.as_ref(),
            i,
            d.model.as_ref(),
            d.serial_number.as_ref(),
            join(&[
                d.capacity_bytes.map(size),
                d.media_type.clone(),
                d.protocol.clone(),
            ]),
        );
    }
    for (i, a) in inv.network_adapters.iter().enumerate() {
        push(
            "Adapter",
            a.name.as_ref(),
            i,
            a.model.as_ref(),
            a.serial_number.as_ref(),
            join(&[
                a.manufacturer.clone(),
                a.firmware_version.as_ref().map(|f| format!("firmware {f}")),
            ]),
        );
    }
    for (i, n) in inv.nics.iter().enumerate() {
        push(
            "NIC",
            n.name.as_ref(),
            i,
            None,
            None,
            join(&[n.mac.clone(), n.speed_mbps.map(|s| format!("{s} Mb/s"))]),
        );
    }
    for (i, p) in inv.power_supplies.iter().enumerate() {
        push(
            "PSU",
            p.name.as_ref(),
            i,
            p.model.as_ref(),
            p.serial_number.as_ref(),
            join(&[
                p.capacity_watts.map(|w| format!("{w} W")),
                p.firmware_version.as_ref().map(|f| format!("firmware {f}")),
            ]),
        );
    }
    // Unique, bounded names: a second "Drive Disk 0" becomes "Drive Disk 0 #2".
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for item in &mut items {
        let mut name: String = item.name.chars().take(MAX_DEVICE_NAME).collect();
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            let suffix = format!(" #{n}");
            name = name
                .chars()
                .take(MAX_DEVICE_NAME - suffix.len())
                .collect::<String>()
                + &suffix;
        }
        // NetBox trims what it stores: so must we, or a cut ending in a
        // space would differ on every run.
        item.name = name.trim().to_string();
        for (f, max) in [
            (&mut item.part_id, 50),
            (&mut item.serial, 50),
            (&mut item.description, 200),
        ] {
            *f = f.chars().take(max).collect::<String>().trim().to_string();
        }
    }
    items
}

/// Brings the device's tagged items in line with `want`. Returns a change
/// line per kind of write made. `existing`: whether the device may have
/// items already (false for one just created: nothing to read).
pub fn sync(
    nb: &NetBox,
    device_id: ObjectId,
    tag_id: ObjectId,
    want: &[Item],
    existing: bool,
) -> Result<Vec<String>, NetBoxError> {
    let have = if existing {
        nb.list(&format!(
            "/api/dcim/inventory-items/?device_id={}&limit=1000",
            device_id.wire()
        ))?
    } else {
        Vec::new()
    };
    let mut by_name: BTreeMap<String, &Value> = BTreeMap::new();
    let mut theirs = Vec::new();
    for v in &have {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if has_tag(v, tag_id) {
            by_name.insert(name, v);
        } else {
            theirs.push(name);
        }
    }
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut updated = Vec::new();
    for item in want {
        // A name people already use on this device is theirs.
        if theirs.contains(&item.name) {
            continue;
        }
        match by_name.remove(&item.name) {
            None => creates.push(json!({
                "device": device_id, "name": item.name, "part_id": item.part_id,
                "serial": item.serial, "description": item.description,
                "discovered": true, "tags": [tag_id],
            })),
            Some(v) => {
                let differs: Vec<&str> = [
                    ("part_id", &item.part_id),
                    ("serial", &item.serial),
                    ("description", &item.description),
                ]
                .iter()
                .filter(|(k, want)| field(v, k) != **want)
                .map(|(k, _)| *k)
                .collect();
                if !differs.is_empty() {
                    updated.push(format!("{} ({})", item.name, differs.join(", ")));
                    updates.push(json!({
                        "id": v.get("id"), "part_id": item.part_id,
                        "serial": item.serial, "description": item.description,
                    }));
                }
            }
        }
    }
    let removals: Vec<u64> = by_name
        .values()
        .filter_map(|v| v.get("id").and_then(Value::as_u64))
        .collect();
    let mut changes = Vec::new();
    if !creates.is_empty() {
        nb.post("/api/dcim/inventory-items/", &Value::from(creates.clone()))?;
        changes.push(format!("created {} inventory items", creates.len()));
    }
    if !updates.is_empty() {
        nb.patch("/api/dcim/inventory-items/", &Value::from(updates.clone()))?;
        changes.push(format!("updated inventory items: {}", updated.join(", ")));
    }
    if !removals.is_empty() {
        nb.delete_many("/api/dcim/inventory-items/", &removals)?;
        changes.push(format!("removed {} inventory items", removals.len()));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redfish::inventory::{Cpu, Drive};

    #[test]
    fn names_are_unique_and_bounded() {
        let inv = Inventory {
            cpus: vec![Cpu {
                socket: Some("CPU.Socket.1".into()),
                cores: Some(18),
                ..Cpu::default()
            }],
            drives: vec![
                Drive {
                    name: Some("Disk 0".into()),
                    capacity_bytes: Some(960_000_000_000),
                    ..Drive::default()
                },
                Drive {
                    name: Some("Disk 0".into()),
                    ..Drive::default()
                },
                Drive {
                    name: Some("x".repeat(80)),
                    ..Drive::default()
                },
            ],
            ..Inventory::default()
        };
        let items = desired(&inv);
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names[0], "CPU.Socket.1");
        assert_eq!(names[1], "Drive Disk 0");
        assert_eq!(names[2], "Drive Disk 0 #2");
        assert_eq!(names[3].chars().count(), 64);
        assert_eq!(items[0].description, "18 cores");
        assert_eq!(items[1].description, "960 GB");
    }
}
