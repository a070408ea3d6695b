//! One server into NetBox: manufacturer, device type, role, site, rack,
//! device, management interface, MAC address, IP address and `oob_ip`, each
//! read first and written only when it differs, so a repeated registration
//! writes nothing. Concurrent registrations of one server (two workers, two
//! Kea servers) converge: NetBox's uniqueness errors are answered by
//! reading the winner's object, and MAC objects, which NetBox does not keep
//! unique, are settled by keeping the oldest.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::client::{NetBox, NetBoxError};
use crate::hostname::{slug, Placement};
use crate::redfish::Inventory;

/// What to register: the discovery's inventory and what the lease says.
pub struct Registration<'a> {
    pub inventory: &'a Inventory,
    /// The BMC's MAC from its lease (canonical `aa:bb:..`).
    pub bmc_mac: String,
    pub bmc_ip: Ipv4Addr,
    /// The subnet's prefix length, for the IP address object.
    pub prefix_len: u8,
    /// The device's name (already NetBox-safe, see `hostname::device_name`).
    pub name: String,
    pub placement: Placement,
    /// DNS name for the IP address object.
    pub dns_name: Option<String>,
}

impl<'a> Registration<'a> {
    /// The registration of a discovered server at `ip`, named after the
    /// lease's hostname, else the BMC's own, else `bmc-<mac>`; placed by
    /// `pattern` on that name, with `site` (the subnet's user-context)
    /// overriding the site.
    pub fn for_lease(
        inventory: &'a Inventory,
        bmc_mac: &str,
        bmc_ip: Ipv4Addr,
        prefix_len: u8,
        lease_hostname: Option<&str>,
        site: Option<&str>,
        pattern: &crate::hostname::PlacementPattern,
    ) -> Registration<'a> {
        let name = crate::hostname::pick(&[
            lease_hostname,
            inventory.bmc.hostname.as_deref(),
            inventory.bmc.fqdn.as_deref(),
        ])
        .unwrap_or_else(|| format!("bmc-{}", bmc_mac.replace(':', "")));
        let mut placement = pattern.place(&name).unwrap_or_default();
        if let Some(site) = site {
            placement.site = Some(site.to_string());
        }
        Registration {
            inventory,
            bmc_mac: bmc_mac.to_string(),
            bmc_ip,
            prefix_len,
            name,
            placement,
            dns_name: inventory.bmc.fqdn.clone(),
        }
    }
}

/// Policy, from the hook's parameters.
#[derive(Clone, Debug)]
pub struct Options {
    /// Device role (created if missing).
    pub role: String,
    /// Create a missing site or rack (true), or refuse the registration.
    pub create_missing: bool,
    /// The tag marking what the hook owns.
    pub tag: String,
    /// Name of the BMC's interface on the device.
    pub interface: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            role: "Server".into(),
            create_missing: false,
            tag: "bmc-discovery".into(),
            interface: "bmc".into(),
        }
    }
}

/// What a registration did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub device_id: u64,
    /// One line per object created or changed; empty = nothing written.
    pub changes: Vec<String>,
    /// What was left out and why (conflicts that did not stop the rest).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// NetBox could not be reached or kept failing: retry later.
    Unavailable(String),
    /// The registration cannot proceed as configured (missing site with
    /// create-missing off, no site at all, a conflict with another
    /// device). Nothing was overwritten.
    Refused(String),
    /// NetBox refused a request, or answered unexpectedly.
    Failed(String),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Unavailable(m) | RegisterError::Failed(m) => f.write_str(m),
            RegisterError::Refused(m) => write!(f, "not registered: {m}"),
        }
    }
}

impl From<NetBoxError> for RegisterError {
    fn from(e: NetBoxError) -> RegisterError {
        match e {
            NetBoxError::Unavailable(_) => RegisterError::Unavailable(e.to_string()),
            _ => RegisterError::Failed(e.to_string()),
        }
    }
}

fn id_of(v: &Value) -> Option<u64> {
    v.get("id").and_then(Value::as_u64)
}

/// Whether a NetBox object carries the tag with id `tag_id`: the mark of
/// what the hook owns.
pub(super) fn has_tag(v: &Value, tag_id: u64) -> bool {
    v.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| id_of(t) == Some(tag_id)))
}

/// Whether a create lost a race to an identical object: NetBox's validators
/// answer 400 ("already exists"), and when two requests pass validation at
/// once the database constraint answers 500 (IntegrityError).
fn is_duplicate(e: &NetBoxError) -> bool {
    match e {
        NetBoxError::Rejected {
            status: 400,
            message,
        } => {
            message.contains("already exists")
                || message.contains("Duplicate")
                || message.contains("must make a unique set")
                || message.contains("must be unique")
        }
        NetBoxError::Rejected {
            status: 500,
            message,
        } => message.contains("duplicate key value violates unique constraint"),
        _ => false,
    }
}

/// `?key=value&...` with the values percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

struct Ctx<'a> {
    nb: &'a NetBox,
    outcome: Outcome,
    tag_id: u64,
}

impl Ctx<'_> {
    /// The first object the filter finds.
    fn find(
        &self,
        endpoint: &str,
        filter: &[(&str, &str)],
    ) -> Result<Option<Value>, RegisterError> {
        let page = self.nb.get(&format!("/api/{endpoint}/{}", query(filter)))?;
        Ok(page
            .get("results")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned())
    }

    /// Finds by `filter`, else creates `body`; a create that loses a race
    /// (uniqueness error) reads the winner's object.
    fn get_or_create(
        &mut self,
        endpoint: &str,
        filter: &[(&str, &str)],
        body: Value,
        what: &str,
    ) -> Result<Value, RegisterError> {
        if let Some(v) = self.find(endpoint, filter)? {
            return Ok(v);
        }
        match self.nb.post(&format!("/api/{endpoint}/"), &body) {
            Ok(v) => {
                self.outcome.changes.push(format!("created {what}"));
                Ok(v)
            }
            Err(e) if is_duplicate(&e) => self.find(endpoint, filter)?.ok_or_else(|| e.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `obj`; one already gone (a concurrent registration removed
    /// it) is fine.
    fn remove(&mut self, endpoint: &str, obj: &Value) -> Result<(), RegisterError> {
        let path = format!("/api/{endpoint}/{}/", id_of(obj).unwrap_or(0));
        match self.nb.delete(&path) {
            Ok(()) | Err(NetBoxError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `have` brought to `want`; without one, `want` created (status
    /// active). A create that loses a race updates the winner, found by
    /// `filter`.
    fn upsert(
        &mut self,
        endpoint: &str,
        have: Option<Value>,
        filter: &[(&str, &str)],
        want: &Map<String, Value>,
        what: &str,
    ) -> Result<Value, RegisterError> {
        if let Some(have) = have {
            return self.update(endpoint, &have, want, what);
        }
        let mut body = want.clone();
        body.insert("status".into(), json!("active"));
        match self
            .nb
            .post(&format!("/api/{endpoint}/"), &Value::Object(body))
        {
            Ok(v) => {
                self.outcome.changes.push(format!("created {what}"));
                Ok(v)
            }
            Err(e) if is_duplicate(&e) => {
                let winner = self
                    .find(endpoint, filter)?
                    .ok_or_else(|| RegisterError::from(e))?;
                self.update(endpoint, &winner, want, what)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// PATCHes the fields of `want` that differ from `have`.
    fn update(
        &mut self,
        endpoint: &str,
        have: &Value,
        want: &Map<String, Value>,
        what: &str,
    ) -> Result<Value, RegisterError> {
        let id = id_of(have).unwrap_or(0);
        let mut diff = Map::new();
        for (k, v) in want {
            let current = match v {
                // A number, or a nested object ({"id": 3, ...}) for a
                // foreign key.
                Value::Number(_) => match have.get(k) {
                    Some(Value::Number(n)) => Value::Number(n.clone()),
                    Some(h) => h.get("id").cloned().unwrap_or(Value::Null),
                    None => Value::Null,
                },
                Value::Array(_) if k == "tags" => Value::from(
                    have.get("tags")
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(id_of)
                                .map(Value::from)
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                ),
                Value::String(_) if k == "face" || k == "status" => have
                    .get(k)
                    .and_then(|f| f.get("value").cloned().or_else(|| Some(f.clone())))
                    .unwrap_or(Value::Null),
                _ => have.get(k).cloned().unwrap_or(Value::Null),
            };
            let same = match (v, &current) {
                (Value::Array(a), Value::Array(b)) if k == "tags" => {
                    a.iter().all(|t| b.contains(t))
                }
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => *v == current,
            };
            if !same {
                // Tags are added to, never replaced: operators' tags stay.
                let v = if k == "tags" {
                    let mut all = current.as_array().cloned().unwrap_or_default();
                    for t in v.as_array().into_iter().flatten() {
                        if !all.contains(t) {
                            all.push(t.clone());
                        }
                    }
                    Value::from(all)
                } else {
                    v.clone()
                };
                diff.insert(k.clone(), v);
            }
        }
        if diff.is_empty() {
            return Ok(have.clone());
        }
        let fields: Vec<&String> = diff.keys().collect();
        self.outcome.changes.push(format!(
            "updated {what}: {}",
            fields
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(self
            .nb
            .patch(&format!("/api/{endpoint}/{id}/"), &Value::Object(diff))?)
    }
}

/// Registers one server. See the module comment for the guarantees.
pub fn register(nb: &NetBox, reg: &Registration, opts: &Options) -> Result<Outcome, RegisterError> {
    let inv = reg.inventory;
    let mut cx = Ctx {
        nb,
        outcome: Outcome::default(),
        tag_id: 0,
    };
    let tag_slug = slug(&opts.tag);
    let tag = cx.get_or_create(
        "extras/tags",
        &[("slug", &tag_slug)],
        json!({"name": opts.tag, "slug": tag_slug, "color": "2196f3",
               "description": "created and updated by kea-hook-bmc-discovery"}),
        &format!("tag {}", opts.tag),
    )?;
    cx.tag_id = id_of(&tag).unwrap_or(0);
    let tags = json!([cx.tag_id]);

    // Site and rack: from the placement; missing ones per policy.
    let site_name = reg.placement.site.clone().ok_or_else(|| {
        RegisterError::Refused(format!(
            "no site for {}: its hostname names none and its subnet's user-context has no \"site\"",
            reg.name
        ))
    })?;
    let site_slug = slug(&site_name);
    let site = match cx.find("dcim/sites", &[("slug", &site_slug)])? {
        Some(s) => s,
        None if opts.create_missing => cx.get_or_create(
            "dcim/sites",
            &[("slug", &site_slug)],
            json!({"name": site_name, "slug": site_slug, "status": "active", "tags": tags}),
            &format!("site {site_name}"),
        )?,
        None => {
            return Err(RegisterError::Refused(format!(
                "site {site_name:?} (slug {site_slug}) does not exist in NetBox; create it, \
                 or let the hook create missing sites and racks"
            )))
        }
    };
    let site_id = id_of(&site).unwrap_or(0);
    let rack = match &reg.placement.rack {
        None => None,
        Some(rack_name) => {
            let sid = site_id.to_string();
            match cx.find("dcim/racks", &[("site_id", &sid), ("name", rack_name)])? {
                Some(r) => Some(r),
                None if opts.create_missing => Some(cx.get_or_create(
                    "dcim/racks",
                    &[("site_id", &sid), ("name", rack_name)],
                    json!({"name": rack_name, "site": site_id, "status": "active", "tags": tags}),
                    &format!("rack {rack_name} in {site_name}"),
                )?),
                None => {
                    return Err(RegisterError::Refused(format!(
                        "rack {rack_name:?} does not exist in site {site_name:?}; create it, \
                         or let the hook create missing sites and racks"
                    )))
                }
            }
        }
    };

    // Manufacturer, device type, role.
    let mfr_name = inv
        .manufacturer
        .clone()
        .unwrap_or_else(|| format!("Unknown ({})", inv.vendor));
    let mfr_slug = slug(&mfr_name);
    let mfr = cx.get_or_create(
        "dcim/manufacturers",
        &[("slug", &mfr_slug)],
        json!({"name": mfr_name, "slug": mfr_slug}),
        &format!("manufacturer {mfr_name}"),
    )?;
    let mfr_id = id_of(&mfr).unwrap_or(0).to_string();
    let model = inv.model.clone().unwrap_or_else(|| "Unknown model".into());
    let model_slug = slug(&format!("{mfr_slug}-{model}"));
    let height = reg.placement.height.or(inv.height_u).unwrap_or(1);
    let dtype = cx.get_or_create(
        "dcim/device-types",
        &[("manufacturer_id", &mfr_id), ("slug", &model_slug)],
        json!({"manufacturer": id_of(&mfr), "model": model, "slug": model_slug,
               "part_number": inv.sku.clone().or_else(|| inv.part_number.clone()).unwrap_or_default(),
               "u_height": height, "tags": tags}),
        &format!("device type {model}"),
    )?;
    let role_slug = slug(&opts.role);
    let role = cx.get_or_create(
        "dcim/device-roles",
        &[("slug", &role_slug)],
        json!({"name": opts.role, "slug": role_slug, "color": "9e9e9e"}),
        &format!("role {}", opts.role),
    )?;

    // The device: by serial, then by BMC MAC, then by name in the site.
    let mut device = None;
    if let Some(serial) = &inv.serial_number {
        device = cx.find("dcim/devices", &[("serial", serial)])?;
    }
    if device.is_none() {
        if let Some(mac) = cx.find("dcim/mac-addresses", &[("mac_address", &reg.bmc_mac)])? {
            if let Some(dev_id) = mac
                .pointer("/assigned_object/device/id")
                .and_then(Value::as_u64)
            {
                device = Some(nb.get(&format!("/api/dcim/devices/{dev_id}/"))?);
            }
        }
    }
    if device.is_none() {
        device = cx.find(
            "dcim/devices",
            &[("name", &reg.name), ("site_id", &site_id.to_string())],
        )?;
    }
    if let (Some(d), Some(serial)) = (&device, &inv.serial_number) {
        let theirs = d.get("serial").and_then(Value::as_str).unwrap_or("");
        if !theirs.is_empty() && theirs != serial {
            return Err(RegisterError::Refused(format!(
                "conflict: device {:?} (id {}) has serial {theirs:?}, this server {serial:?}; \
                 nothing overwritten",
                d.get("name").and_then(Value::as_str).unwrap_or(""),
                id_of(d).unwrap_or(0)
            )));
        }
    }
    let mut want = Map::new();
    want.insert("name".into(), json!(reg.name));
    want.insert("device_type".into(), json!(id_of(&dtype)));
    want.insert("role".into(), json!(id_of(&role)));
    want.insert("site".into(), json!(site_id));
    if let Some(r) = &rack {
        want.insert("rack".into(), json!(id_of(r)));
        if let Some(pos) = reg.placement.position {
            want.insert("position".into(), json!(pos));
            want.insert("face".into(), json!("front"));
        }
    }
    if let Some(s) = &inv.serial_number {
        want.insert("serial".into(), json!(s));
    }
    if let Some(a) = &inv.asset_tag {
        want.insert("asset_tag".into(), json!(a));
    }
    want.insert("tags".into(), tags.clone());
    // Asset tags are unique in NetBox, and BMCs ship with copied defaults:
    // a tag another device holds is left unset here, and said so.
    if let Some(a) = &inv.asset_tag {
        if let Some(holder) = cx.find("dcim/devices", &[("asset_tag", a)])? {
            if device.as_ref().and_then(id_of) != id_of(&holder) {
                want.remove("asset_tag");
                cx.outcome.notes.push(format!(
                    "asset tag {a:?} is held by device {:?} (id {}); left unset",
                    holder.get("name").and_then(Value::as_str).unwrap_or(""),
                    id_of(&holder).unwrap_or(0)
                ));
            }
        }
    }
    let site_filter = site_id.to_string();
    let device = cx.upsert(
        "dcim/devices",
        device,
        &[("name", &reg.name), ("site_id", &site_filter)],
        &want,
        &format!("device {}", reg.name),
    )?;
    let device_id = id_of(&device).unwrap_or(0);
    cx.outcome.device_id = device_id;
    let dev = device_id.to_string();

    // The BMC's interface.
    let iface = cx.get_or_create(
        "dcim/interfaces",
        &[("device_id", &dev), ("name", &opts.interface)],
        json!({"device": device_id, "name": opts.interface, "type": "1000base-t",
               "mgmt_only": true, "description": "BMC", "tags": tags}),
        &format!("interface {}", opts.interface),
    )?;
    let iface_id = id_of(&iface).unwrap_or(0);

    // The MAC: NetBox does not keep MACs unique, so after a create the
    // oldest object for this MAC wins and the others are removed.
    let mac = mac_object(&mut cx, &reg.bmc_mac, iface_id, &tags)?;
    let mac_id = id_of(&mac).unwrap_or(0);
    let mut want = Map::new();
    want.insert("primary_mac_address".into(), json!(mac_id));
    cx.update("dcim/interfaces", &iface, &want, "interface primary MAC")?;
    remove_stale(
        &mut cx,
        "dcim/mac-addresses",
        iface_id,
        Some(mac_id),
        "MAC address",
        "mac_address",
    )?;

    // The IP address, and the device's out-of-band IP.
    let ip = ip_object(&mut cx, reg, iface_id, &tags)?;
    let mut want = Map::new();
    want.insert("oob_ip".into(), json!(id_of(&ip)));
    cx.update("dcim/devices", &device, &want, "device oob_ip")?;

    // The parts, as inventory items.
    let items = super::items::desired(inv);
    let changed = super::items::sync(nb, device_id, cx.tag_id, &items)?;
    cx.outcome.changes.extend(changed);
    Ok(cx.outcome)
}

fn mac_object(
    cx: &mut Ctx,
    mac: &str,
    iface_id: u64,
    tags: &Value,
) -> Result<Value, RegisterError> {
    let existing = cx.nb.list(&format!(
        "/api/dcim/mac-addresses/{}",
        query(&[("mac_address", mac)])
    ))?;
    let mut obj = match existing
        .into_iter()
        .min_by_key(|m| id_of(m).unwrap_or(u64::MAX))
    {
        Some(m) => m,
        None => {
            let created = cx.nb.post(
                "/api/dcim/mac-addresses/",
                &json!({"mac_address": mac, "assigned_object_type": "dcim.interface",
                        "assigned_object_id": iface_id, "tags": tags}),
            )?;
            cx.outcome
                .changes
                .push(format!("created MAC address {mac}"));
            // A concurrent registration may have created one too.
            let all = cx.nb.list(&format!(
                "/api/dcim/mac-addresses/{}",
                query(&[("mac_address", mac)])
            ))?;
            let oldest = all
                .iter()
                .min_by_key(|m| id_of(m).unwrap_or(u64::MAX))
                .cloned()
                .unwrap_or(created.clone());
            if id_of(&oldest) != id_of(&created) {
                cx.remove("dcim/mac-addresses", &created)?;
                cx.outcome.changes.pop();
            }
            oldest
        }
    };
    let mut want = Map::new();
    want.insert("assigned_object_type".into(), json!("dcim.interface"));
    want.insert("assigned_object_id".into(), json!(iface_id));
    want.insert("tags".into(), tags.clone());
    obj = cx.update(
        "dcim/mac-addresses",
        &obj,
        &want,
        &format!("MAC address {mac}"),
    )?;
    // A replaced BMC's old MAC, if the hook made it, goes (after the new
    // one is the interface's primary: see the caller).
    Ok(obj)
}

/// Removes objects at `endpoint` on the interface that carry the hook's tag
/// and are not `keep`.
fn remove_stale(
    cx: &mut Ctx,
    endpoint: &str,
    iface_id: u64,
    keep: Option<u64>,
    what: &str,
    label: &str,
) -> Result<(), RegisterError> {
    let on_iface = cx.nb.list(&format!(
        "/api/{endpoint}/{}",
        query(&[("interface_id", &iface_id.to_string())])
    ))?;
    for old in on_iface {
        let tagged = has_tag(&old, cx.tag_id);
        // Checked here too: a filter NetBox did not know would be ignored
        // and list everything.
        let on_ours = old.get("assigned_object_type").and_then(Value::as_str)
            == Some("dcim.interface")
            && old.get("assigned_object_id").and_then(Value::as_u64) == Some(iface_id);
        if id_of(&old) != keep && tagged && on_ours {
            cx.remove(endpoint, &old)?;
            cx.outcome.changes.push(format!(
                "removed old {what} {}",
                old.get(label).and_then(Value::as_str).unwrap_or("?")
            ));
        }
    }
    Ok(())
}

fn ip_object(
    cx: &mut Ctx,
    reg: &Registration,
    iface_id: u64,
    tags: &Value,
) -> Result<Value, RegisterError> {
    let ip = reg.bmc_ip.to_string();
    let address = format!("{ip}/{}", reg.prefix_len);
    let mut want = Map::new();
    want.insert("address".into(), json!(address));
    want.insert("assigned_object_type".into(), json!("dcim.interface"));
    want.insert("assigned_object_id".into(), json!(iface_id));
    // NetBox stores DNS names lower-cased; sending them so keeps re-runs
    // write-free.
    want.insert(
        "dns_name".into(),
        json!(reg
            .dns_name
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase()),
    );
    want.insert("tags".into(), tags.clone());
    let found = cx.find("ipam/ip-addresses", &[("address", &ip)])?;
    let obj = cx.upsert(
        "ipam/ip-addresses",
        found,
        &[("address", &ip)],
        &want,
        &format!("IP address {address}"),
    )?;
    // The BMC's earlier addresses on this interface, if the hook made them,
    // are gone from DHCP: remove them.
    remove_stale(
        cx,
        "ipam/ip-addresses",
        iface_id,
        id_of(&obj),
        "IP address",
        "address",
    )?;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            super::query(&[("name", "us3 cab/10"), ("mac_address", "aa:bb")]),
            "?name=us3%20cab%2F10&mac_address=aa%3Abb"
        );
    }
}
