//! The host's network ports, from the standard resources: every port of
//! the chassis' NetworkAdapters (`Ports`, or the older `NetworkPorts`) with
//! the NetworkDeviceFunction that links to it, then the system's
//! EthernetInterfaces, merged by MAC. Vendor modules add what only their
//! OEM resources say (HPE BaseNetworkAdapters, Dell switch connections)
//! through [`merge`]; [`finish`] then drops the BMC's own interfaces,
//! makes names unique, sorts and caps the list.
//!
//! Which MAC is a port's: the PermanentMACAddress of the device function
//! that links to it, where one does. A port's own `AssociatedMACAddresses`
//! is not enough: the HPE DL360 Gen10 Plus capture lists its partner
//! port's MAC first on port 2 (the ports look bonded: the function's
//! current MACAddress is the partner's too, its permanent one is not).

use std::collections::HashSet;

use serde_json::Value;

use super::fetch::Fetcher;
use super::generic::Found;
use super::inventory::{HostPort, LldpNeighbor};
use super::values::{clean, iface_mac, link, links, mac, mac_of, odata_id, text, text_at, uint};

/// More ports than any server has (the largest capture, a DGX H100, has
/// 19): a BMC listing more is broken or hostile, and the rest is dropped.
pub const MAX_HOST_PORTS: usize = 128;
/// Adapters read per chassis, for the same reason (the DGX has 12).
pub const MAX_ADAPTERS: usize = 64;
/// NetBox's limit for an interface name.
pub const MAX_NAME: usize = 64;
/// Any other string kept from a port (LLDP system description, ...):
/// NetBox's description limit.
pub const MAX_TEXT: usize = 200;

/// The collections behind the chassis' adapters: each adapter's Ports
/// (NetworkPorts only where it has no Ports) and NetworkDeviceFunctions,
/// and their members not expanded.
pub fn wanted(found: &Found, f: &Fetcher) -> Vec<String> {
    let mut out = Vec::new();
    let Some(coll) = found
        .chassis
        .as_ref()
        .and_then(|c| link(c, "NetworkAdapters"))
    else {
        return out;
    };
    for a in f.members(&coll).iter().take(MAX_ADAPTERS) {
        for sub in port_collections(a)
            .into_iter()
            .chain(link(a, "NetworkDeviceFunctions"))
        {
            let c = f.coll(&sub);
            if !f.asked(&c) {
                out.push(c);
            } else {
                out.extend(f.missing_members(&sub));
            }
        }
    }
    out
}

/// Where an adapter lists its ports: `Ports` (Redfish 2020.4 and later)
/// or the deprecated `NetworkPorts`, never both (Dell and Supermicro
/// serve the same ports under each).
fn port_collections(adapter: &Value) -> Option<String> {
    link(adapter, "Ports").or_else(|| link(adapter, "NetworkPorts"))
}

/// The standard host ports, merged by MAC; not yet [`finish`]ed.
pub fn build(found: &Found, f: &Fetcher) -> Vec<HostPort> {
    let mut ports = Vec::new();
    if let Some(coll) = found
        .chassis
        .as_ref()
        .and_then(|c| link(c, "NetworkAdapters"))
    {
        for a in f.members(&coll).iter().take(MAX_ADAPTERS) {
            adapter_ports(a, f, &mut ports);
        }
    }
    if let Some(coll) = link(&found.system, "EthernetInterfaces") {
        let mut ifaces = f.members(&coll);
        ifaces.truncate(2 * MAX_HOST_PORTS);
        // A VLAN or bond names its parent in RelatedInterfaces and repeats
        // its MAC: parents first, so the port keeps the parent's name.
        let (children, parents): (Vec<_>, Vec<_>) = ifaces.iter().partition(|i| {
            !links(i.get("Links").unwrap_or(&Value::Null), "RelatedInterfaces").is_empty()
        });
        let names: Vec<Option<String>> = ifaces.iter().map(|i| text(i, "Name")).collect();
        for i in parents.into_iter().chain(children) {
            if is_host_interface(i) {
                continue;
            }
            let Some(m) = iface_mac(i) else { continue };
            let id = text(i, "Id");
            let name = text(i, "Name");
            // Numbers (HPE's 13, 14; Supermicro's 1, 2) mean nothing on
            // their own; a Name that tells the interfaces apart does
            // (Supermicro "OnBoard LAN 1", Gigabyte "Lan1").
            let unique_name = name
                .as_ref()
                .filter(|n| names.iter().filter(|x| x.as_ref() == Some(n)).count() == 1);
            let label = match (&id, unique_name) {
                (Some(id), _) if has_letter(id) => id.clone(),
                (_, Some(n)) => n.clone(),
                (Some(id), None) => id.clone(),
                (None, None) => m.clone(),
            };
            merge(
                &mut ports,
                HostPort {
                    name: label,
                    mac: Some(m),
                    speed_mbps: uint(i, "SpeedMbps").filter(|s| *s > 0),
                    link_up: link_up(text(i, "LinkStatus").as_deref()),
                    enabled: i.get("InterfaceEnabled").and_then(Value::as_bool),
                    ..HostPort::default()
                },
                false,
            );
        }
    }
    ports
}

/// The host side of the BMC's USB/virtual NIC (`ToManager`) is no port of
/// the server's.
fn is_host_interface(i: &Value) -> bool {
    i.pointer("/Links/HostInterface").is_some()
        || text(i, "InterfaceType").as_deref() == Some("HostInterface")
}

fn has_letter(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_alphabetic())
}

/// The ports of one NetworkAdapter, each with the MAC, boot mode and
/// state of the device function assigned to it.
fn adapter_ports(adapter: &Value, f: &Fetcher, out: &mut Vec<HostPort>) {
    let Some(adapter_id) = text(adapter, "Id") else {
        return;
    };
    let adapter_name = text(adapter, "Model").or_else(|| text(adapter, "Name"));
    // Bounded so that a hostile adapter (1000 ports, 1000 functions)
    // costs no more to match than a real one many times over.
    let mut functions = link(adapter, "NetworkDeviceFunctions")
        .map(|c| f.members(&c))
        .unwrap_or_default();
    functions.truncate(4 * MAX_HOST_PORTS);
    let Some(ports_coll) = port_collections(adapter) else {
        return;
    };
    let mut found: Vec<(HostPort, Vec<String>)> = Vec::new();
    for p in f.members(&ports_coll).into_iter().take(MAX_HOST_PORTS) {
        if p.pointer("/Status/State").and_then(Value::as_str) == Some("Absent") {
            continue;
        }
        let Some(port_id) = text(&p, "Id") else {
            continue;
        };
        let me = odata_id(&p).map(|s| s.trim_end_matches('/').to_string());
        let ndf = me.as_ref().and_then(|me| {
            functions
                .iter()
                .find(|d| assigned_ports(d).iter().any(|x| x == me))
                .or_else(|| {
                    functions
                        .iter()
                        .find(|d| only_assignable(d).as_ref() == Some(me))
                })
        });
        let label = text(&p, "PortId").or_else(|| {
            p.get("PhysicalPortNumber").and_then(|n| {
                n.as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| n.as_str().and_then(clean))
            })
        });
        let name = if has_letter(&port_id) {
            // Dell's NIC.Slot.5-1 and the DGX's ..._PORT0 are names already.
            port_id.clone()
        } else {
            // Supermicro numbers its adapters as its PCIeDevices NIC1..NIC10.
            let a = if adapter_id.chars().all(|c| c.is_ascii_digit()) {
                format!("NIC{adapter_id}")
            } else {
                adapter_id.clone()
            };
            format!("{a}-{}", label.unwrap_or(port_id))
        };
        let ndf_mac = ndf.and_then(|d| {
            d.get("Ethernet")
                .and_then(|e| mac_of(e, "PermanentMACAddress").or_else(|| mac_of(e, "MACAddress")))
        });
        let associated: Vec<String> = p
            .pointer("/Ethernet/AssociatedMACAddresses")
            .or_else(|| p.get("AssociatedNetworkAddresses"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).filter_map(mac).collect())
            .unwrap_or_default();
        let speed = p
            .get("CurrentSpeedGbps")
            .and_then(Value::as_f64)
            .map(gbps)
            .or_else(|| uint(&p, "CurrentLinkSpeedMbps"))
            .filter(|s| *s > 0);
        let max_speed = p
            .get("MaxSpeedGbps")
            .and_then(Value::as_f64)
            .map(gbps)
            .or_else(|| max_capable_mbps(&p))
            .filter(|s| *s > 0);
        let technology = text(&p, "LinkNetworkTechnology")
            .or_else(|| text(&p, "ActiveLinkTechnology"))
            .or_else(|| ndf.and_then(|d| function_type(d)));
        let enabled = match text(&p, "LinkState").as_deref() {
            Some("Enabled") => Some(true),
            Some("Disabled") => Some(false),
            _ => ndf
                .and_then(|d| d.get("DeviceEnabled").and_then(Value::as_bool))
                .or_else(|| match text_at(&p, "/Status/State").as_deref() {
                    Some("Enabled") => Some(true),
                    Some("Disabled") => Some(false),
                    _ => None,
                }),
        };
        let port = HostPort {
            name,
            mac: ndf_mac,
            speed_mbps: speed,
            max_speed_mbps: max_speed,
            technology,
            medium: text(&p, "PortMedium"),
            link_up: link_up(text(&p, "LinkStatus").as_deref()),
            enabled,
            pxe: ndf.is_some_and(|d| {
                text(d, "BootMode").is_some_and(|b| b.eq_ignore_ascii_case("PXE"))
            }),
            lldp: p.pointer("/Ethernet/LLDPReceive").and_then(lldp_receive),
            adapter: adapter_name.clone(),
        };
        found.push((port, associated));
    }
    // A port no function links to takes the first of its associated MACs
    // that is no other port's own.
    let mut taken: HashSet<String> = out
        .iter()
        .chain(found.iter().map(|(p, _)| p))
        .filter_map(|p| p.mac.clone())
        .collect();
    for (port, associated) in found.iter_mut().filter(|(p, _)| p.mac.is_none()) {
        port.mac = associated.iter().find(|m| !taken.contains(*m)).cloned();
        taken.extend(port.mac.clone());
    }
    for (p, _) in found {
        merge(out, p, false);
    }
    // A function whose port the adapter does not list is still a port of
    // the host's (the Dell R750 capture's InfiniBand functions name a port
    // `InfiniBand.Slot.7` that is not there, and its Ports collection
    // lists one of the two ports).
    let listed: HashSet<String> = f
        .members(&ports_coll)
        .iter()
        .filter_map(|p| odata_id(p))
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    for d in &functions {
        if assigned_ports(d)
            .into_iter()
            .chain(only_assignable(d))
            .any(|p| listed.contains(&p))
        {
            continue;
        }
        let Some(id) = text(d, "Id") else { continue };
        let Some(m) = d
            .get("Ethernet")
            .and_then(|e| mac_of(e, "PermanentMACAddress").or_else(|| mac_of(e, "MACAddress")))
        else {
            continue;
        };
        merge(
            out,
            HostPort {
                name: if has_letter(&id) {
                    id
                } else {
                    format!("{adapter_id}-{id}")
                },
                mac: Some(m),
                technology: function_type(d),
                enabled: d.get("DeviceEnabled").and_then(Value::as_bool),
                pxe: text(d, "BootMode").is_some_and(|b| b.eq_ignore_ascii_case("PXE")),
                adapter: adapter_name.clone(),
                ..HostPort::default()
            },
            false,
        );
    }
}

/// The ports a device function is assigned to: its Links (Port, then
/// NetworkPort schema), and the same properties at its top level, where
/// they were before Redfish deprecated them (Lenovo XCC still has them).
fn assigned_ports(d: &Value) -> Vec<String> {
    let l = d.get("Links").unwrap_or(&Value::Null);
    ["PhysicalNetworkPortAssignment", "PhysicalPortAssignment"]
        .iter()
        .flat_map(|k| [link(l, k), link(d, k)])
        .flatten()
        .map(|s| s.trim_end_matches('/').to_string())
        .collect()
}

/// The one port a function may be assigned to, when it says no more. A
/// list of several says where it could go, not where it is (every
/// function of the Lenovo SR670 V2's adapter lists all four ports).
fn only_assignable(d: &Value) -> Option<String> {
    let mut all = links(d, "AssignablePhysicalNetworkPorts");
    all.extend(links(d, "AssignablePhysicalPorts"));
    all.dedup();
    match all.as_slice() {
        [one] => Some(one.trim_end_matches('/').to_string()),
        _ => None,
    }
}

/// Ethernet / InfiniBand / FibreChannel, from a device function.
fn function_type(d: &Value) -> Option<String> {
    text(d, "NetDevFuncType").or_else(|| {
        let caps: Vec<String> = d
            .get("NetDevFuncCapabilities")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(Value::as_str)
            .filter(|c| *c != "Disabled")
            .filter_map(clean)
            .collect();
        (caps.len() == 1).then(|| caps[0].clone())
    })
}

fn gbps(g: f64) -> u64 {
    if g.is_finite() && g > 0.0 && g < 1e6 {
        (g * 1000.0).round() as u64
    } else {
        0
    }
}

/// The fastest of a NetworkPort's SupportedLinkCapabilities.
fn max_capable_mbps(p: &Value) -> Option<u64> {
    p.get("SupportedLinkCapabilities")?
        .as_array()?
        .iter()
        .filter_map(|c| {
            uint(c, "LinkSpeedMbps").or_else(|| {
                c.get("CapableLinkSpeedMbps")?
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_u64)
                    .max()
            })
        })
        .max()
}

/// LinkStatus of a Port (`LinkUp`, `LinkDown`, `NoLink`), a NetworkPort
/// (`Up`, `Down`) or an EthernetInterface.
pub fn link_up(status: Option<&str>) -> Option<bool> {
    match status? {
        "LinkUp" | "Up" => Some(true),
        "LinkDown" | "Down" | "NoLink" => Some(false),
        _ => None,
    }
}

/// A port's `Ethernet.LLDPReceive`; None when it heard nothing (empty or
/// `NotTransmitted` ids, as every port without a neighbour reports).
pub fn lldp_receive(v: &Value) -> Option<LldpNeighbor> {
    let id = |key: &str, sub: &str| {
        let subtype = text(v, sub);
        if subtype.as_deref() == Some("NotTransmitted") {
            return None;
        }
        let value = v.get(key).and_then(Value::as_str)?;
        decode_id(value, subtype.as_deref()).map(|d| (d, subtype))
    };
    let chassis = id("ChassisId", "ChassisIdSubtype");
    let port = id("PortId", "PortIdSubtype");
    let n = LldpNeighbor {
        chassis_id_subtype: chassis.as_ref().and_then(|c| c.1.clone()),
        chassis_id: chassis.map(|c| c.0),
        port_id_subtype: port.as_ref().and_then(|p| p.1.clone()),
        port_id: port.map(|p| p.0),
        system_name: bounded_text(v, "SystemName"),
        system_description: bounded_text(v, "SystemDescription"),
        management_ipv4: text(v, "ManagementAddressIPv4")
            .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok()),
        management_mac: v
            .get("ManagementAddressMAC")
            .and_then(Value::as_str)
            .and_then(mac),
    };
    (n.chassis_id.is_some() || n.port_id.is_some() || n.system_name.is_some()).then_some(n)
}

fn bounded_text(v: &Value, key: &str) -> Option<String> {
    text(v, key).map(|s| bounded(&s, MAX_TEXT))
}

/// An LLDP chassis or port id as a person reads it. LLDP sends names
/// (`IfName`, `IfAlias`, `LocallyAssigned`, component names) as octets,
/// and some BMCs print them as hex (`31:2F:31:2F:31:3A:34` for `1/1/1:4`,
/// the Aruba neighbours of the HPE DL360/DL365 Gen10 Plus captures):
/// decoded when every octet is printable ASCII. A MAC subtype becomes a
/// canonical MAC; anything else stays as sent.
pub fn decode_id(value: &str, subtype: Option<&str>) -> Option<String> {
    let value = clean(value)?;
    let textual = matches!(
        subtype,
        Some(
            "IfName"
                | "IfAlias"
                | "LocalAssign"
                | "LocallyAssigned"
                | "PortComp"
                | "ChassisComp"
                | "AgentId"
        )
    );
    if subtype == Some("MacAddr") {
        return Some(mac(&value).unwrap_or_else(|| bounded(&value, MAX_TEXT)));
    }
    if textual {
        if let Some(decoded) = hex_text(&value) {
            return clean(&decoded).map(|d| bounded(&d, MAX_TEXT));
        }
    }
    Some(bounded(&value, MAX_TEXT))
}

/// `31:2F:31` → `1/1`, when it is two or more hex octets of printable ASCII.
fn hex_text(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 {
        return None;
    }
    let mut out = String::with_capacity(parts.len());
    for p in parts {
        if p.len() != 2 {
            return None;
        }
        let b = u8::from_str_radix(p, 16).ok()?;
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        out.push(char::from(b));
    }
    Some(out)
}

/// At most `max` characters of `s`.
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Adds `p`, or folds it into the port with the same MAC: what that one
/// does not know yet is taken from `p`, and with `rename` it takes `p`'s
/// name (a vendor's name for the port wins over the generic one).
pub fn merge(ports: &mut Vec<HostPort>, p: HostPort, rename: bool) {
    let same = p
        .mac
        .as_ref()
        .and_then(|m| ports.iter_mut().find(|x| x.mac.as_ref() == Some(m)));
    let Some(x) = same else {
        if ports.len() < MAX_HOST_PORTS * 2 {
            ports.push(p);
        }
        return;
    };
    if rename {
        x.name = p.name;
    }
    x.speed_mbps = x.speed_mbps.or(p.speed_mbps);
    x.max_speed_mbps = x.max_speed_mbps.or(p.max_speed_mbps);
    x.technology = x.technology.take().or(p.technology);
    x.medium = x.medium.take().or(p.medium);
    x.link_up = x.link_up.or(p.link_up);
    x.enabled = x.enabled.or(p.enabled);
    x.pxe |= p.pxe;
    x.lldp = x.lldp.take().or(p.lldp);
    x.adapter = x.adapter.take().or(p.adapter);
}

/// The final list: without the BMC's own interfaces (by MAC: the
/// manager's EthernetInterfaces, the iLO's virtual NIC among them), names
/// cleaned, bounded and unique, sorted by name, at most
/// [`MAX_HOST_PORTS`].
pub fn finish(found: &Found, f: &Fetcher, ports: Vec<HostPort>) -> Vec<HostPort> {
    let mut bmc_macs: HashSet<String> = HashSet::new();
    if let Some(eth) = found
        .manager
        .as_ref()
        .and_then(|m| link(m, "EthernetInterfaces"))
    {
        for i in f.members(&eth) {
            bmc_macs.extend(iface_mac(&i));
            bmc_macs.extend(mac_of(&i, "MACAddress"));
        }
    }
    bmc_macs.extend(found.mac.clone());
    finish_with(ports, &bmc_macs)
}

fn finish_with(ports: Vec<HostPort>, bmc_macs: &HashSet<String>) -> Vec<HostPort> {
    let mut out: Vec<HostPort> = ports
        .into_iter()
        .filter(|p| !p.mac.as_ref().is_some_and(|m| bmc_macs.contains(m)))
        .filter_map(|mut p| {
            p.name = bounded(&clean(&p.name)?, MAX_NAME);
            p.adapter = p.adapter.map(|a| bounded(&a, MAX_TEXT));
            Some(p)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.mac.cmp(&b.mac)));
    out.truncate(MAX_HOST_PORTS);
    let mut seen: HashSet<String> = HashSet::new();
    for p in &mut out {
        let mut n = 1;
        while !seen.insert(p.name.clone()) {
            // Two ports the BMC names alike: the later one by its MAC
            // (or a number), within the length limit.
            let tag = match (&p.mac, n) {
                (Some(m), 1) => m.clone(),
                _ => format!("#{n}"),
            };
            let base = bounded(&p.name, MAX_NAME.saturating_sub(tag.len() + 1));
            p.name = format!("{base} {tag}");
            n += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lldp_ids_are_decoded_by_subtype() {
        // As the HPE DL360 Gen10 Plus capture sends its Aruba neighbour.
        let n = lldp_receive(&json!({
            "ChassisId": "BC:D7:A5:72:F4:00", "ChassisIdSubtype": "MacAddr",
            "ManagementAddressIPv4": "196.168.4.1", "ManagementAddressIPv6": "",
            "ManagementAddressMAC": "", "ManagementVlanId": 4095,
            "PortId": "31:2F:31:2F:31:3A:34", "PortIdSubtype": "IfName"
        }))
        .unwrap();
        assert_eq!(n.chassis_id.as_deref(), Some("bc:d7:a5:72:f4:00"));
        assert_eq!(n.port_id.as_deref(), Some("1/1/1:4"));
        assert_eq!(n.management_ipv4.as_deref(), Some("196.168.4.1"));
        assert_eq!(n.management_mac, None);
        // What every port without a neighbour says.
        let none = json!({"ChassisId": "", "ChassisIdSubtype": "NotTransmitted",
            "ManagementAddressIPv4": "", "PortId": "", "PortIdSubtype": "NotTransmitted"});
        assert_eq!(lldp_receive(&none), None);
        assert_eq!(lldp_receive(&json!({})), None);
        // A name that merely looks like hex but is not printable stays.
        assert_eq!(decode_id("00:01", Some("IfName")).as_deref(), Some("00:01"));
        assert_eq!(
            decode_id("ethernet1/1/5", Some("IfName")).as_deref(),
            Some("ethernet1/1/5")
        );
        assert_eq!(
            decode_id("31:32", Some("NetworkAddr")).as_deref(),
            Some("31:32")
        );
        assert_eq!(
            decode_id("0a:0d:31", Some("IfName")).as_deref(),
            Some("0a:0d:31")
        );
    }

    #[test]
    fn merging_by_mac_keeps_the_first_name_unless_renamed() {
        let mut ports = vec![HostPort {
            name: "DE080000-2".into(),
            mac: Some("88:e9:a4:6b:a8:ad".into()),
            pxe: true,
            ..HostPort::default()
        }];
        merge(
            &mut ports,
            HostPort {
                name: "14".into(),
                mac: Some("88:e9:a4:6b:a8:ad".into()),
                link_up: Some(true),
                ..HostPort::default()
            },
            false,
        );
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name, "DE080000-2");
        assert_eq!(ports[0].link_up, Some(true));
        merge(
            &mut ports,
            HostPort {
                name: "NIC.Slot.1.1-2".into(),
                mac: Some("88:e9:a4:6b:a8:ad".into()),
                ..HostPort::default()
            },
            true,
        );
        assert_eq!(ports[0].name, "NIC.Slot.1.1-2");
        assert!(ports[0].pxe);
    }

    #[test]
    fn the_final_list_is_bounded_unique_and_without_the_bmc() {
        let mut ports: Vec<HostPort> = (0..400)
            .map(|i| HostPort {
                name: format!("p\u{202e}{}{}", "x".repeat(100), i % 3),
                mac: mac(&format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)),
                ..HostPort::default()
            })
            .collect();
        ports.push(HostPort {
            name: "bmc".into(),
            mac: Some("02:00:00:00:00:05".into()),
            ..HostPort::default()
        });
        let bmc: HashSet<String> = ["02:00:00:00:00:05".to_string()].into();
        let out = finish_with(ports, &bmc);
        assert_eq!(out.len(), MAX_HOST_PORTS);
        assert!(out.iter().all(|p| p.name.chars().count() <= MAX_NAME));
        assert!(out.iter().all(|p| !p.name.contains('\u{202e}')));
        assert!(out
            .iter()
            .all(|p| p.mac.as_deref() != Some("02:00:00:00:00:05")));
        let names: HashSet<&String> = out.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), out.len(), "names unique");
    }
}
