//! The standard Redfish inventory, read the same way from every BMC: the
//! links to follow, and how the resources become an `Inventory`.

use std::sync::Arc;

use serde_json::Value;

use super::fetch::Fetcher;
use super::inventory::*;
use super::values::*;

/// The resources a discovery is anchored on.
pub struct Found {
    pub root: Value,
    pub system: Arc<Value>,
    pub manager: Option<Arc<Value>>,
    pub chassis: Option<Arc<Value>>,
    pub update_service: Option<Arc<Value>>,
    /// The address we reached the BMC on, to recognise its own interface.
    pub address: String,
    /// The BMC's MAC from the lease, when known.
    pub mac: Option<String>,
}

/// The sub-resources the generic inventory reads, given what is fetched so
/// far: collections first, then members not expanded, then drives.
pub fn wanted(found: &Found, f: &Fetcher) -> Vec<String> {
    let mut colls = Vec::new();
    // Storage first: its drives are one more hop.
    for k in ["Storage", "Processors", "Memory", "EthernetInterfaces"] {
        colls.extend(link(&found.system, k));
    }
    // SimpleStorage is the older view of the same disks: read it only
    // where the BMC has no Storage.
    if link(&found.system, "Storage").is_none() {
        colls.extend(link(&found.system, "SimpleStorage"));
    }
    if let Some(m) = &found.manager {
        colls.extend(link(m, "EthernetInterfaces"));
    }
    if let Some(u) = &found.update_service {
        colls.extend(link(u, "FirmwareInventory"));
    }
    if let Some(c) = &found.chassis {
        colls.extend(link(c, "NetworkAdapters"));
    }
    let mut out: Vec<String> = colls.iter().map(|c| f.coll(c)).collect();
    if let Some(m) = &found.manager {
        out.extend(link(m, "NetworkProtocol"));
    }
    if let Some(c) = &found.chassis {
        out.extend(link(c, "Power"));
    }
    for c in &colls {
        out.extend(f.missing_members(c));
    }
    // Drives hang off each Storage member.
    if let Some(storage) = link(&found.system, "Storage") {
        for s in f.members(&storage) {
            out.extend(links(&s, "Drives").into_iter().filter(|d| !f.asked(d)));
        }
    }
    out.retain(|p| !f.asked(p));
    out
}

/// Reads the generic inventory out of everything fetched.
pub fn build(found: &Found, f: &Fetcher) -> Inventory {
    let sys = &found.system;
    let chassis = found.chassis.as_ref();
    let mut inv = Inventory {
        vendor: "generic".into(),
        manufacturer: text(sys, "Manufacturer")
            .or_else(|| chassis.and_then(|c| text(c, "Manufacturer"))),
        model: text(sys, "Model").or_else(|| chassis.and_then(|c| text(c, "Model"))),
        serial_number: text(sys, "SerialNumber")
            .or_else(|| chassis.and_then(|c| text(c, "SerialNumber"))),
        sku: text(sys, "SKU"),
        part_number: text(sys, "PartNumber")
            .or_else(|| chassis.and_then(|c| text(c, "PartNumber"))),
        asset_tag: text(sys, "AssetTag").or_else(|| chassis.and_then(|c| text(c, "AssetTag"))),
        uuid: text(sys, "UUID").filter(|u| !is_placeholder(&u.replace('-', ""))),
        bios_version: text(sys, "BiosVersion"),
        power_state: text(sys, "PowerState"),
        health: sys
            .pointer("/Status/HealthRollup")
            .or_else(|| sys.pointer("/Status/Health"))
            .and_then(Value::as_str)
            .and_then(clean),
        host_name: text(sys, "HostName"),
        ..Inventory::default()
    };
    inv.bmc = bmc(found, f);
    inv.cpus = cpus(sys, f);
    inv.memory_gib = sys
        .pointer("/MemorySummary/TotalSystemMemoryGiB")
        .and_then(Value::as_f64)
        .filter(|g| *g > 0.0);
    inv.dimms = dimms(sys, f);
    storage(sys, f, &mut inv);
    inv.nics = nics(sys, f);
    if let Some(c) = chassis {
        inv.network_adapters = adapters(c, f);
        inv.power_supplies = power_supplies(c, f);
        inv.location = location(c);
    }
    if let Some(u) = &found.update_service {
        if let Some(fw) = link(u, "FirmwareInventory") {
            inv.firmware = f
                .members(&fw)
                .iter()
                .map(|m| Firmware {
                    id: text(m, "Id"),
                    name: text(m, "Name"),
                    version: text(m, "Version"),
                })
                .filter(|fw| fw.version.is_some())
                .collect();
        }
    }
    inv
}

fn bmc(found: &Found, f: &Fetcher) -> Bmc {
    let mut b = Bmc {
        redfish_version: text(&found.root, "RedfishVersion"),
        ..Bmc::default()
    };
    let Some(m) = &found.manager else { return b };
    b.model = text(m, "Model");
    b.firmware_version = text(m, "FirmwareVersion");
    b.uuid = text(m, "UUID");
    if let Some(eth) = link(m, "EthernetInterfaces") {
        let ifaces = f.members(&eth);
        if let Some(i) = pick_bmc_interface(&ifaces, &found.address, found.mac.as_deref()) {
            let iface = &ifaces[i];
            b.mac = iface_mac(iface);
            b.hostname = text(iface, "HostName");
            b.fqdn = text(iface, "FQDN").map(|s| s.trim_end_matches('.').to_string());
            b.ipv4 = routable_ipv4(iface);
        }
    }
    if let Some(proto) = link(m, "NetworkProtocol").and_then(|p| f.cached(&p)) {
        b.hostname = b.hostname.or_else(|| text(&proto, "HostName"));
        b.fqdn = b
            .fqdn
            .or_else(|| text(&proto, "FQDN").map(|s| s.trim_end_matches('.').to_string()));
    }
    b
}

/// Which of the manager's interfaces is the BMC's own network port: the one
/// with the lease's MAC; else the one with the address we reached it on;
/// else the first enabled one with a MAC and a routable address that is
/// not a host interface (USB/virtual NICs to the host OS).
pub fn pick_bmc_interface(
    ifaces: &[Arc<Value>],
    address: &str,
    lease_mac: Option<&str>,
) -> Option<usize> {
    if let Some(want) = lease_mac.and_then(mac) {
        if let Some(i) = ifaces
            .iter()
            .position(|i| iface_mac(i).as_deref() == Some(&want))
        {
            return Some(i);
        }
    }
    if let Some(i) = ifaces
        .iter()
        .position(|i| routable_ipv4(i).iter().any(|a| a == address))
    {
        return Some(i);
    }
    let is_host_iface = |i: &Value| {
        i.pointer("/Links/HostInterface").is_some()
            || i.get("InterfaceType").and_then(Value::as_str) == Some("HostInterface")
    };
    let candidates = |need_ip: bool| {
        ifaces.iter().position(|i| {
            i.get("InterfaceEnabled").and_then(Value::as_bool) != Some(false)
                && !is_host_iface(i)
                && iface_mac(i).is_some()
                && (!need_ip || !routable_ipv4(i).is_empty())
        })
    };
    candidates(true).or_else(|| candidates(false))
}

fn cpus(sys: &Value, f: &Fetcher) -> Vec<Cpu> {
    let Some(coll) = link(sys, "Processors") else {
        return Vec::new();
    };
    f.members(&coll)
        .iter()
        .filter(|p| {
            // GPUs and accelerators are listed as Processors too.
            matches!(
                p.get("ProcessorType").and_then(Value::as_str),
                None | Some("CPU")
            ) && p.pointer("/Status/State").and_then(Value::as_str) != Some("Absent")
        })
        .map(|p| Cpu {
            socket: text(p, "Socket").or_else(|| text(p, "Id")),
            manufacturer: text(p, "Manufacturer"),
            model: text(p, "Model").map(|m| m.split_whitespace().collect::<Vec<_>>().join(" ")),
            cores: uint(p, "TotalCores"),
            threads: uint(p, "TotalThreads"),
            max_speed_mhz: uint(p, "MaxSpeedMHz"),
        })
        .collect()
}

fn dimms(sys: &Value, f: &Fetcher) -> Vec<Dimm> {
    let Some(coll) = link(sys, "Memory") else {
        return Vec::new();
    };
    f.members(&coll)
        .iter()
        .filter(|d| {
            d.pointer("/Status/State").and_then(Value::as_str) != Some("Absent")
                && uint(d, "CapacityMiB").unwrap_or(0) > 0
        })
        .map(|d| Dimm {
            slot: text(d, "DeviceLocator")
                .or_else(|| {
                    let slot = d.pointer("/MemoryLocation/Slot")?;
                    slot.as_u64()
                        .map(|n| n.to_string())
                        .or_else(|| slot.as_str().and_then(clean))
                })
                .or_else(|| text(d, "Id")),
            capacity_mib: uint(d, "CapacityMiB"),
            manufacturer: text(d, "Manufacturer"),
            part_number: text(d, "PartNumber"),
            serial_number: text(d, "SerialNumber"),
            speed_mhz: uint(d, "OperatingSpeedMhz"),
            memory_type: text(d, "MemoryDeviceType"),
        })
        .collect()
}

fn storage(sys: &Value, f: &Fetcher, inv: &mut Inventory) {
    if let Some(coll) = link(sys, "Storage") {
        for s in f.members(&coll) {
            for c in s
                .get("StorageControllers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let model = text(c, "Model").or_else(|| text(c, "Name"));
                let raid = c
                    .get("SupportedRAIDTypes")
                    .and_then(Value::as_array)
                    .is_some_and(|r| !r.is_empty())
                    || model.as_deref().is_some_and(|m| {
                        let m = m.to_ascii_lowercase();
                        m.contains("perc") || m.contains("raid") || m.contains("smart array")
                    });
                inv.storage_controllers.push(StorageController {
                    name: text(c, "Name"),
                    model,
                    manufacturer: text(c, "Manufacturer"),
                    serial_number: text(c, "SerialNumber"),
                    firmware_version: text(c, "FirmwareVersion"),
                    raid,
                });
            }
            for d in links(&s, "Drives") {
                if let Some(d) = f.cached(&d) {
                    inv.drives.push(drive(&d));
                }
            }
            for e in links(s.get("Links").unwrap_or(&Value::Null), "Enclosures") {
                if let Some(id) = e.trim_end_matches('/').rsplit('/').next().and_then(clean) {
                    if !inv.enclosures.contains(&id) {
                        inv.enclosures.push(id);
                    }
                }
            }
        }
    }
    if let Some(coll) = link(sys, "SimpleStorage") {
        for s in f.members(&coll) {
            for d in s
                .get("Devices")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if d.pointer("/Status/State").and_then(Value::as_str) == Some("Absent") {
                    continue;
                }
                let serial = text(d, "SerialNumber");
                // Drives seen through Storage are not listed twice.
                if serial.is_some() && inv.drives.iter().any(|x| x.serial_number == serial) {
                    continue;
                }
                inv.drives.push(Drive {
                    name: text(d, "Name"),
                    model: text(d, "Model"),
                    manufacturer: text(d, "Manufacturer"),
                    serial_number: serial,
                    capacity_bytes: uint(d, "CapacityBytes"),
                    ..Drive::default()
                });
            }
        }
    }
}

pub fn drive(d: &Value) -> Drive {
    Drive {
        name: text(d, "Name"),
        model: text(d, "Model"),
        manufacturer: text(d, "Manufacturer"),
        serial_number: text(d, "SerialNumber"),
        capacity_bytes: uint(d, "CapacityBytes").filter(|c| *c > 0),
        media_type: text(d, "MediaType"),
        protocol: text(d, "Protocol"),
        firmware_version: text(d, "Revision"),
    }
}

fn nics(sys: &Value, f: &Fetcher) -> Vec<Nic> {
    let Some(coll) = link(sys, "EthernetInterfaces") else {
        return Vec::new();
    };
    f.members(&coll)
        .iter()
        .map(|n| Nic {
            name: text(n, "Id").or_else(|| text(n, "Name")),
            mac: iface_mac(n),
            speed_mbps: uint(n, "SpeedMbps").filter(|s| *s > 0),
            link_status: text(n, "LinkStatus"),
        })
        .filter(|n| n.mac.is_some())
        .collect()
}

fn adapters(chassis: &Value, f: &Fetcher) -> Vec<NetworkAdapter> {
    let Some(coll) = link(chassis, "NetworkAdapters") else {
        return Vec::new();
    };
    f.members(&coll)
        .iter()
        .map(|a| NetworkAdapter {
            name: text(a, "Name").or_else(|| text(a, "Id")),
            manufacturer: text(a, "Manufacturer"),
            model: text(a, "Model"),
            serial_number: text(a, "SerialNumber"),
            part_number: text(a, "PartNumber"),
            firmware_version: a
                .pointer("/Controllers/0/FirmwarePackageVersion")
                .and_then(Value::as_str)
                .and_then(clean),
        })
        .collect()
}

fn power_supplies(chassis: &Value, f: &Fetcher) -> Vec<PowerSupply> {
    let Some(power) = link(chassis, "Power").and_then(|p| f.cached(&p)) else {
        return Vec::new();
    };
    power
        .get("PowerSupplies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.pointer("/Status/State").and_then(Value::as_str) != Some("Absent"))
        .map(|p| PowerSupply {
            name: text(p, "Name").or_else(|| text(p, "MemberId")),
            model: text(p, "Model"),
            manufacturer: text(p, "Manufacturer"),
            serial_number: text(p, "SerialNumber"),
            part_number: text(p, "PartNumber"),
            capacity_watts: uint(p, "PowerCapacityWatts"),
            firmware_version: text(p, "FirmwareVersion"),
        })
        .collect()
}

fn location(chassis: &Value) -> Option<Location> {
    let loc = chassis.get("Location")?;
    let l = Location {
        site: loc
            .pointer("/PostalAddress/Location")
            .and_then(Value::as_str)
            .and_then(clean),
        building: loc
            .pointer("/PostalAddress/Building")
            .and_then(Value::as_str)
            .and_then(clean),
        room: loc
            .pointer("/PostalAddress/Room")
            .and_then(Value::as_str)
            .and_then(clean),
        row: loc
            .pointer("/Placement/Row")
            .and_then(Value::as_str)
            .and_then(clean),
        rack: loc
            .pointer("/Placement/Rack")
            .and_then(Value::as_str)
            .and_then(clean),
        rack_unit: loc.pointer("/Placement/RackOffset").and_then(Value::as_u64),
    };
    if l == Location::default() {
        None
    } else {
        Some(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bmc_interface_skips_host_and_disabled_ports() {
        let ifaces: Vec<Arc<Value>> = [
            json!({"MACAddress": "BE:B5:71:8C:CC:4F", "IPv4Addresses": [{"Address": "169.254.3.254"}],
                   "Links": {"HostInterface": {"@odata.id": "/x"}}}),
            json!({"MACAddress": "5C:ED:8C:34:C2:95", "InterfaceEnabled": false,
                   "IPv4Addresses": [{"Address": "10.0.0.9"}]}),
            json!({"MACAddress": "a4-bf-01-2c-f7-d0", "IPv4Addresses": [{"Address": "0.0.0.0"}]}),
            json!({"MACAddress": "a4-bf-01-2c-f7-d2", "IPv4Addresses": [{"Address": "10.100.172.20"}]}),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        assert_eq!(pick_bmc_interface(&ifaces, "127.0.0.1", None), Some(3));
        assert_eq!(pick_bmc_interface(&ifaces, "10.0.0.9", None), Some(1));
        assert_eq!(
            pick_bmc_interface(&ifaces, "x", Some("A4:BF:01:2C:F7:D0")),
            Some(2)
        );
        assert_eq!(pick_bmc_interface(&ifaces[..3], "x", None), Some(2));
    }
}
