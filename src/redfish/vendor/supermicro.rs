//! Supermicro: placeholders in SKU and AssetTag (handled generically), the
//! chassis `Model` is the motherboard, the board serial and board id are
//! under the chassis's `Oem.Supermicro` (FRU data), and the manager's Model
//! is the BMC chip ("ASPEED").

use serde_json::Value;

use super::{mentions, Vendor};
use crate::redfish::fetch::Fetcher;
use crate::redfish::generic::Found;
use crate::redfish::inventory::Inventory;
use crate::redfish::values::{link, text, text_at};

pub struct Supermicro;

impl Vendor for Supermicro {
    fn name(&self) -> &'static str {
        "supermicro"
    }

    fn detect_root(&self, root: &Value) -> bool {
        root.pointer("/Oem/Supermicro").is_some() || mentions(text(root, "Vendor"), "supermicro")
    }

    fn detect(&self, found: &Found) -> bool {
        mentions(text(&found.system, "Manufacturer"), "supermicro")
    }

    fn wanted(&self, found: &Found, f: &Fetcher) -> Vec<String> {
        // Sensors: one collection read gives their count and health.
        let mut out = Vec::new();
        if let Some(s) = found.chassis.as_ref().and_then(|c| link(c, "Sensors")) {
            out.push(f.coll(&s));
        }
        out.retain(|p| !f.asked(p));
        out
    }

    fn enrich(&self, found: &Found, f: &Fetcher, inv: &mut Inventory) {
        if let Some(c) = &found.chassis {
            inv.board_serial = text_at(c, "/Oem/Supermicro/BoardSerialNumber").or_else(|| {
                text(c, "SerialNumber").filter(|s| Some(s) != inv.serial_number.as_ref())
            });
            if let Some(s) = link(c, "Sensors") {
                let sensors = f.members(&s);
                let bad = sensors
                    .iter()
                    .filter(|s| {
                        matches!(
                            s.pointer("/Status/Health").and_then(Value::as_str),
                            Some("Warning" | "Critical")
                        )
                    })
                    .count();
                if !sensors.is_empty() && inv.health.is_none() {
                    inv.health = Some(if bad == 0 {
                        "OK".into()
                    } else {
                        format!("{bad} sensors not OK")
                    });
                }
            }
        }
        // The SKU Supermicro reports is a board id (0x1D1415D9), not a
        // product number.
        if inv.sku.as_deref().is_some_and(|s| s.starts_with("0x")) {
            inv.sku = None;
        }
    }
}
