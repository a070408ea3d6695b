//! Lenovo XClarity Controller: the SKU is the machine type and model
//! (`7Z23CTO1WW`), the board serial and FRU part number are under
//! `Oem.Lenovo` of the chassis, and the firmware string packs build,
//! version and date (`TGBT42S 2.83 2023-07-05`).

use serde_json::Value;

use super::{mentions, Vendor};
use crate::redfish::fetch::Fetcher;
use crate::redfish::generic::Found;
use crate::redfish::inventory::Inventory;
use crate::redfish::values::{text, text_at};

pub struct Lenovo;

impl Vendor for Lenovo {
    fn name(&self) -> &'static str {
        "lenovo"
    }

    fn detect_root(&self, root: &Value) -> bool {
        mentions(text(root, "Vendor"), "lenovo") || root.pointer("/Oem/Lenovo").is_some()
    }

    fn detect(&self, found: &Found) -> bool {
        mentions(text(&found.system, "Manufacturer"), "lenovo")
            || found
                .manager
                .as_ref()
                .is_some_and(|m| mentions(text(m, "Model"), "xclarity"))
    }

    fn enrich(&self, found: &Found, _f: &Fetcher, inv: &mut Inventory) {
        if let Some(c) = &found.chassis {
            inv.board_serial =
                text_at(c, "/Oem/Lenovo/SystemBoardSerialNumber").or(inv.board_serial.take());
            inv.part_number = inv
                .part_number
                .take()
                .or_else(|| text_at(c, "/Oem/Lenovo/FruPartNumber"));
        }
        if inv.health.is_none() {
            inv.health = found
                .system
                .pointer("/Status/HealthRollup")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
}
