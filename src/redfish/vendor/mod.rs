//! Vendor modules: each recognises its BMCs and adds what only its OEM
//! resources say. A module never fails a discovery: an OEM resource that is
//! missing or malformed becomes a warning, and the generic inventory stands.

use serde_json::Value;

use super::fetch::Fetcher;
use super::generic::Found;
use super::inventory::{EventLog, Inventory};
use super::values::{link, text};

mod dell;
mod hpe;
mod lenovo;
mod supermicro;

pub trait Vendor: Sync {
    /// The name credentials files and inventories use (`dell`, `hpe`, ...).
    fn name(&self) -> &'static str;
    /// Recognises the BMC from its unauthenticated service root alone, to
    /// pick credentials before logging in. False when the root is silent.
    fn detect_root(&self, root: &Value) -> bool;
    /// Recognises the BMC once the system and manager are read.
    fn detect(&self, found: &Found) -> bool;
    /// OEM links to fetch, given what is fetched so far; asked again after
    /// each wave until nothing new is wanted.
    fn wanted(&self, _found: &Found, _f: &Fetcher) -> Vec<String> {
        Vec::new()
    }
    /// Corrects and completes the generic inventory.
    fn enrich(&self, found: &Found, f: &Fetcher, inv: &mut Inventory);
}

static VENDORS: &[&dyn Vendor] = &[
    &dell::Dell,
    &hpe::Hpe,
    &lenovo::Lenovo,
    &supermicro::Supermicro,
];

/// The vendor named by the service root, if it says.
pub fn from_root(root: &Value) -> Option<&'static dyn Vendor> {
    VENDORS.iter().copied().find(|v| v.detect_root(root))
}

/// The vendor module for a discovered BMC; None = generic only.
pub fn detect(found: &Found) -> Option<&'static dyn Vendor> {
    VENDORS
        .iter()
        .copied()
        .find(|v| v.detect_root(&found.root) || v.detect(found))
}

/// True when `s` names `vendor` (case-insensitive substring).
fn mentions(s: Option<String>, vendor: &str) -> bool {
    s.is_some_and(|s| s.to_ascii_lowercase().contains(vendor))
}

/// Shared by Dell (SEL) and HPE (IML): the LogServices collection of a
/// resource, the log service named `id`, and its Entries.
fn log_links(owner: &Value, id: &str, f: &Fetcher) -> Vec<String> {
    let Some(services) = link(owner, "LogServices") else {
        return Vec::new();
    };
    let coll = f.coll(&services);
    if !f.asked(&coll) {
        return vec![coll];
    }
    let mut out = f.missing_members(&services);
    for svc in f.members(&services) {
        if text(&svc, "Id").is_some_and(|s| s.eq_ignore_ascii_case(id)) {
            if let Some(entries) = link(&svc, "Entries") {
                // The newest handful is all an inventory needs.
                let top = format!("{entries}?$top=10");
                if !f.asked(&top) {
                    out.push(top);
                }
            }
        }
    }
    out
}

fn read_log(owner: &Value, id: &str, f: &Fetcher) -> Option<EventLog> {
    let services = link(owner, "LogServices")?;
    let svc = f
        .members(&services)
        .into_iter()
        .find(|s| text(s, "Id").is_some_and(|s| s.eq_ignore_ascii_case(id)))?;
    let top = format!("{}?$top=10", link(&svc, "Entries")?);
    let entries = f.cached(&top)?;
    // Entries come embedded in the collection; the cache holds them.
    let members = f.members(&top);
    Some(EventLog {
        source: id.to_string(),
        entries: entries.get("Members@odata.count").and_then(Value::as_u64),
        critical: members
            .iter()
            .filter(|e| e.get("Severity").and_then(Value::as_str) == Some("Critical"))
            .count() as u64,
        latest: members
            .iter()
            .filter_map(|e| text(e, "Message"))
            .take(5)
            .collect(),
    })
}

/// Warns that an OEM resource the module wanted is not there.
fn missing(f: &Fetcher, vendor: &str, what: &str) {
    f.warn(format!(
        "{vendor}: {what} not available; inventory without it"
    ));
}
