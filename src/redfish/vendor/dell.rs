//! Dell iDRAC 8/9: the service tag is `SKU` (SerialNumber is the board's
//! PPID), `Oem.Dell.DellSystem` carries height and health rollups, the SEL
//! lives under the manager's LogServices, and the lifecycle controller
//! reports its state through `DellLCService`.

use serde_json::{json, Value};

use super::{log_links, mentions, missing, read_log, Vendor};
use crate::redfish::fetch::Fetcher;
use crate::redfish::generic::Found;
use crate::redfish::inventory::Inventory;
use crate::redfish::values::{text, text_at};

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
