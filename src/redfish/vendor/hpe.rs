//! HPE iLO 4/5/6/7: OEM data under `Oem.Hpe` (iLO 5 and later) or `Oem.Hp`
//! (iLO 4). Smart Array controllers and their drives live under the
//! system's SmartStorage, NICs under BaseNetworkAdapters when the standard
//! NetworkInterfaces is empty, the Integrated Management Log under the
//! system's LogServices.
//!
//! Host ports: iLO 5 names its adapters in BaseNetworkAdapters
//! (`StructuredName` `NIC.Slot.1.1`, `OCP.Slot.10.1`, `NIC.FlexLOM.1.1`)
//! and lists their ports with MACs, so an iLO 5 port is called
//! `<StructuredName>-<port number>` whichever standard resource also
//! shows it. iLO 6 and 7 have no BaseNetworkAdapters; their ports keep
//! the generic names (chassis adapter id + port label).

use serde_json::Value;

use super::{log_links, mentions, missing, read_log, Vendor};
use crate::redfish::fetch::Fetcher;
use crate::redfish::generic::{drive, Found};
use crate::redfish::inventory::{HostPort, Inventory, NetworkAdapter, StorageController};
use crate::redfish::ports;
use crate::redfish::values::{link, mac, text, text_at, uint};

pub struct Hpe;

/// `Oem.Hpe` or, on iLO 4, `Oem.Hp`.
fn oem(v: &Value) -> Option<&Value> {
    v.pointer("/Oem/Hpe").or_else(|| v.pointer("/Oem/Hp"))
}

fn oem_link(v: &Value, key: &str) -> Option<String> {
    link(oem(v)?.get("Links")?, key)
}

impl Vendor for Hpe {
    fn name(&self) -> &'static str {
        "hpe"
    }

    fn detect_root(&self, root: &Value) -> bool {
        oem(root).is_some() || matches!(text(root, "Vendor").as_deref(), Some("HPE" | "HP"))
    }

    fn detect(&self, found: &Found) -> bool {
        let m = text(&found.system, "Manufacturer");
        matches!(m.as_deref(), Some("HPE" | "HP")) || mentions(m, "hewlett")
    }

    fn wanted(&self, found: &Found, f: &Fetcher) -> Vec<String> {
        let sys = &found.system;
        let mut out = log_links(sys, "IML", f);
        if let Some(ss) = oem_link(sys, "SmartStorage") {
            out.push(ss.clone());
            if let Some(ac) = f.cached(&ss).and_then(|s| link(&s, "ArrayControllers")) {
                out.push(f.coll(&ac));
                out.extend(f.missing_members(&ac));
                for c in f.members(&ac) {
                    if let Some(dd) = c
                        .pointer("/Links/PhysicalDrives/@odata.id")
                        .and_then(Value::as_str)
                    {
                        out.push(f.coll(dd));
                        out.extend(f.missing_members(dd));
                    }
                }
            }
        }
        if let Some(na) = oem_link(sys, "NetworkAdapters") {
            out.push(f.coll(&na));
            out.extend(f.missing_members(&na));
        }
        out.retain(|p| !f.asked(p));
        out
    }

    fn enrich(&self, found: &Found, f: &Fetcher, inv: &mut Inventory) {
        let sys = &found.system;
        if let Some(h) = text_at(sys, "/Oem/Hpe/AggregateHealthStatus/AggregateServerHealth") {
            inv.health = Some(h);
        }
        if let Some(m) = &found.manager {
            // iLO 5 v1.45 omits Manager.Model; the firmware string names it.
            if inv.bmc.model.is_none() {
                inv.bmc.model = text(m, "FirmwareVersion")
                    .and_then(|fw| fw.split(" v").next().map(str::to_string))
                    .filter(|s| s.starts_with("iLO"));
            }
        }
        inv.event_log = read_log(sys, "IML", f);
        if inv.event_log.is_none() && sys.get("LogServices").is_some() {
            missing(f, "hpe", "Integrated Management Log (IML)");
        }
        if let Some(ss) = oem_link(sys, "SmartStorage") {
            let ac = f.cached(&ss).and_then(|s| link(&s, "ArrayControllers"));
            match ac {
                Some(ac) => {
                    for c in f.members(&ac) {
                        let model = text(&c, "Model");
                        if !inv.storage_controllers.iter().any(|x| {
                            x.serial_number.is_some() && x.serial_number == text(&c, "SerialNumber")
                        }) {
                            inv.storage_controllers.push(StorageController {
                                name: text(&c, "Name").or_else(|| text(&c, "Location")),
                                model,
                                manufacturer: Some("HPE".into()),
                                serial_number: text(&c, "SerialNumber"),
                                firmware_version: text_at(
                                    &c,
                                    "/FirmwareVersion/Current/VersionString",
                                ),
                                raid: true,
                            });
                        }
                        if let Some(dd) = c
                            .pointer("/Links/PhysicalDrives/@odata.id")
                            .and_then(Value::as_str)
                        {
                            for d in f.members(dd) {
                                let mut drv = drive(&d);
                                drv.capacity_bytes = drv.capacity_bytes.or_else(|| {
                                    d.get("CapacityMiB")
                                        .and_then(Value::as_u64)
                                        .map(|m| m * 1024 * 1024)
                                });
                                drv.protocol = drv.protocol.or_else(|| text(&d, "InterfaceType"));
                                if !inv.drives.iter().any(|x| {
                                    x.serial_number.is_some()
                                        && x.serial_number == drv.serial_number
                                }) {
                                    inv.drives.push(drv);
                                }
                            }
                        }
                    }
                }
                None => missing(f, "hpe", "SmartStorage array controllers"),
            }
        }
        if let Some(na) = oem_link(sys, "NetworkAdapters") {
            for a in f.members(&na).iter().take(ports::MAX_ADAPTERS) {
                base_adapter_ports(a, &mut inv.host_ports);
            }
            for a in f.members(&na) {
                let serial = text(&a, "SerialNumber");
                if serial.is_some()
                    && inv
                        .network_adapters
                        .iter()
                        .any(|x| x.serial_number == serial)
                {
                    continue;
                }
                inv.network_adapters.push(NetworkAdapter {
                    name: text(&a, "Name"),
                    manufacturer: None,
                    model: text(&a, "Name"),
                    serial_number: serial,
                    part_number: text(&a, "PartNumber"),
                    firmware_version: text_at(&a, "/Firmware/Current/VersionString"),
                });
            }
        }
    }
}

/// The ports of one BaseNetworkAdapter, named `<StructuredName>-<n>` with
/// n its `Oem.Hpe.PortNumber` (or its place in PhysicalPorts, which lists
/// them in order, where the number is missing: DL385 Gen10 Plus v2,
/// BL460c). Fibre Channel ports (`FcPorts`) have WWNs, no MAC, and are
/// seen through the chassis adapters where iLO reports them.
fn base_adapter_ports(a: &Value, out: &mut Vec<HostPort>) {
    let Some(adapter) = text(a, "StructuredName")
        .or_else(|| text(a, "Id").map(|i| format!("BaseNetworkAdapter{i}")))
    else {
        return;
    };
    let Some(list) = a.get("PhysicalPorts").and_then(Value::as_array) else {
        return;
    };
    for (i, p) in list.iter().enumerate().take(ports::MAX_HOST_PORTS) {
        let Some(m) = p.get("MacAddress").and_then(Value::as_str).and_then(mac) else {
            continue;
        };
        let n = oem(p)
            .and_then(|o| o.get("PortNumber"))
            .and_then(Value::as_u64)
            .unwrap_or(i as u64 + 1);
        ports::merge(
            out,
            HostPort {
                name: format!("{adapter}-{n}"),
                mac: Some(m),
                speed_mbps: uint(p, "SpeedMbps").filter(|s| *s > 0),
                link_up: ports::link_up(text(p, "LinkStatus").as_deref()),
                adapter: text(a, "Name"),
                ..HostPort::default()
            },
            true,
        );
    }
}
