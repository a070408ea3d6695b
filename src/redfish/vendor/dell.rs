//! Dell iDRAC 8/9: the service tag is `SKU` (SerialNumber is the board's
//! PPID), `Oem.Dell.DellSystem` carries height and health rollups, the SEL
//! lives under the manager's LogServices, and the lifecycle controller
//! reports its state through `DellLCService`. The switch port each host
//! port is cabled to comes from the iDRAC's own LLDP reading,
//! `DellSwitchConnection`, where the standard Port has no LLDPReceive.

use serde_json::{json, Value};

use super::{log_links, mentions, missing, read_log, Vendor};
use crate::redfish::fetch::Fetcher;
use crate::redfish::generic::Found;
use crate::redfish::inventory::{HostPort, Inventory, LldpNeighbor};
use crate::redfish::ports;
use crate::redfish::values::{mac, text, text_at};

pub struct Dell;

impl Vendor for Dell {
    fn name(&self) -> &'static str {
        "dell"
    }

    fn detect_root(&self, root: &Value) -> bool {
        root.pointer("/Oem/Dell").is_some() || mentions(text(root, "Vendor"), "dell")
    }

    fn detect(&self, found: &Found) -> bool {
        // iDRAC 8 leaves Manufacturer blank; its ids are unmistakable.
        mentions(text(&found.system, "Manufacturer"), "dell")
            || found.system.pointer("/Oem/Dell").is_some()
            || found
                .manager
                .as_ref()
                .is_some_and(|m| mentions(text(m, "Id"), "idrac"))
    }

    fn wanted(&self, found: &Found, f: &Fetcher) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &found.manager {
            out.extend(log_links(m, "Sel", f));
            if let Some(lc) = lc_service(m) {
                out.push(lc);
            }
            if let Some(sc) = switch_connections(m) {
                let c = f.coll(&sc);
                // Linked by every iDRAC 9 capture, served by none of them:
                // its absence is no gap of the inventory.
                f.optional(&c);
                if f.asked(&c) {
                    out.extend(f.missing_members(&sc));
                } else {
                    out.push(c);
                }
            }
        }
        out.retain(|p| !f.asked(p));
        out
    }

    fn enrich(&self, found: &Found, f: &Fetcher, inv: &mut Inventory) {
        let sys = &found.system;
        let tag = text(sys, "SKU")
            .or_else(|| text_at(sys, "/Oem/Dell/DellSystem/ChassisServiceTag"))
            .or_else(|| text_at(&found.root, "/Oem/Dell/ServiceTag"));
        if tag.is_some() {
            inv.board_serial = text(sys, "SerialNumber");
            inv.serial_number = tag.clone();
            inv.service_tag = tag;
            inv.sku = None;
        }
        if inv.manufacturer.is_none() {
            inv.manufacturer = Some("Dell Inc.".into());
        }
        if let Some(dell) = sys.pointer("/Oem/Dell/DellSystem") {
            inv.height_u = dell
                .get("ChassisSystemHeightUnit")
                .and_then(Value::as_u64)
                .filter(|u| (1..=16).contains(u))
                .map(|u| u as u32);
            if let Some(h) = text(dell, "CurrentRollupStatus") {
                inv.health = Some(h);
            }
        }
        if let Some(m) = &found.manager {
            inv.event_log = read_log(m, "Sel", f);
            if inv.event_log.is_none() && m.get("LogServices").is_some() {
                missing(f, "dell", "system event log (SEL)");
            }
            if let Some(sc) = switch_connections(m) {
                for c in f.members(&sc).iter().take(ports::MAX_HOST_PORTS) {
                    switch_connection(c, &mut inv.host_ports);
                }
            }
            if let Some(lc) = lc_service(m) {
                inv.lifecycle_controller = lc_status(&lc, f);
                if inv.lifecycle_controller.is_none() {
                    missing(f, "dell", "lifecycle controller status");
                }
            }
        }
    }
}

/// The DellLCService link, where the iDRAC offers it.
fn lc_service(manager: &Value) -> Option<String> {
    manager
        .pointer("/Links/Oem/Dell/DellLCService/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The DellSwitchConnection collection the manager links to (all three
/// iDRAC 9 captures link it; none of them carries its members).
fn switch_connections(manager: &Value) -> Option<String> {
    manager
        .pointer("/Links/Oem/Dell/DellSwitchConnectionCollection/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One DellSwitchConnection, as Dell's schema (DellSwitchConnection v1)
/// defines it, no capture having one: `FQDD` names the host port or its
/// function (`NIC.Integrated.1-1-1` for port `NIC.Integrated.1-1`),
/// `SwitchConnectionID` the switch's chassis MAC ("No Link" when none),
/// `SwitchPortConnectionID` the switch port. A port that reported a
/// standard LLDP neighbour keeps it.
fn switch_connection(c: &Value, ports: &mut [HostPort]) {
    if text(c, "StaleData").as_deref() == Some("Stale") {
        return;
    }
    let Some(fqdd) = text(c, "FQDD") else { return };
    let Some(switch) = text(c, "SwitchConnectionID").filter(|s| !s.eq_ignore_ascii_case("No Link"))
    else {
        return;
    };
    let Some(port) = ports.iter_mut().find(|p| {
        p.name == fqdd
            || fqdd
                .strip_prefix(p.name.as_str())
                .is_some_and(|r| r.starts_with('-'))
    }) else {
        return;
    };
    if port.lldp.is_some() {
        return;
    }
    let chassis_mac = mac(&switch);
    port.lldp = Some(LldpNeighbor {
        chassis_id_subtype: chassis_mac.as_ref().map(|_| "MacAddr".to_string()),
        chassis_id: Some(chassis_mac.unwrap_or_else(|| ports::bounded(&switch, ports::MAX_TEXT))),
        port_id: text(c, "SwitchPortConnectionID")
            .filter(|s| !s.eq_ignore_ascii_case("No Link"))
            .map(|s| ports::bounded(&s, ports::MAX_TEXT)),
        ..LldpNeighbor::default()
    });
}

/// Asks the lifecycle controller whether it is ready (the action iDRAC
/// offers for this; it changes nothing).
fn lc_status(service: &str, f: &Fetcher) -> Option<String> {
    let svc = f.cached(service)?;
    let target = svc
        .pointer("/Actions/#DellLCService.GetRemoteServicesAPIStatus/target")?
        .as_str()?;
    let posted = f.client.post(target, &json!({})).ok()?;
    if !(200..300).contains(&posted.status) {
        return None;
    }
    text(&posted.body, "LCStatus").or_else(|| text(&posted.body, "Status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_connections_become_neighbours_of_their_ports() {
        // Shaped as Dell's DellSwitchConnection schema; no capture has one.
        let mut ports = vec![
            HostPort {
                name: "NIC.Integrated.1-1".into(),
                ..HostPort::default()
            },
            HostPort {
                name: "NIC.Integrated.1-10".into(),
                ..HostPort::default()
            },
        ];
        switch_connection(
            &json!({"FQDD": "NIC.Integrated.1-1-1", "SwitchConnectionID": "30:D0:42:E2:AB:01",
                    "SwitchPortConnectionID": "ethernet1/1/5", "StaleData": "NotStale"}),
            &mut ports,
        );
        switch_connection(
            &json!({"FQDD": "NIC.Integrated.1-10-1", "SwitchConnectionID": "No Link",
                    "SwitchPortConnectionID": "No Link"}),
            &mut ports,
        );
        let n = ports[0].lldp.as_ref().expect("neighbour");
        assert_eq!(n.chassis_id.as_deref(), Some("30:d0:42:e2:ab:01"));
        assert_eq!(n.port_id.as_deref(), Some("ethernet1/1/5"));
        assert_eq!(ports[1].lldp, None, "No Link is no neighbour");
    }
}
