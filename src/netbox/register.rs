//! One server into NetBox: manufacturer, device type, role, site, rack,
//! device, management interface, MAC address, IP address and `oob_ip`, each
//! read first and written only when it differs, so a repeated registration
//! writes nothing. Concurrent registrations of one server (two workers, two
//! Kea servers) converge: NetBox's uniqueness errors are answered by
//! reading the winner's object, and MAC objects, which NetBox does not keep
//! unique, are settled by keeping the oldest. What changed goes into a
//! journal entry on the device.
//!
//! Requests that do not depend on each other go out together (the
//! lookups of a server; then its MAC, address and inventory items), each
//! chain on a scoped thread of the worker: NetBox answers in a few hundred
//! milliseconds, and a registration is ~14 requests.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::client::{NetBox, NetBoxError};
use super::items::has_tag;
use crate::kea::log::kea_log;
use crate::placement::{slug, Placement};
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
    /// What vouches for this BMC beyond its own claims (serial, name).
    pub identity: Identity<'a>,
}

/// Evidence about a device found by serial or name rather than by this
/// BMC's own MAC: serials and names are claims any device on the BMC
/// network can make, so the device's other BMC MACs decide whether this is
/// a replacement or a conflict.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    /// Why another MAC still belongs to a live BMC (an active lease, seen
    /// recently, or not known to be gone), or None when it is gone.
    pub in_use: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The operator accepted this BMC as a replacement (`bmc-retry` with
    /// `"replace-bmc": true`): other MACs and a name match are accepted.
    pub replace_bmc: bool,
}

/// With no state file to ask, no other MAC is known to be gone.
fn not_known_gone(_: &str) -> Option<String> {
    Some("nothing shows its lease is gone".into())
}

impl Default for Identity<'_> {
    fn default() -> Self {
        Identity {
            in_use: &not_known_gone,
            replace_bmc: false,
        }
    }
}

impl<'a> Registration<'a> {
    /// The registration of a discovered server at `ip`, named after the
    /// lease's hostname, else the BMC's own, else `bmc-<mac>`; placed by
    /// `pattern` on the lease's hostname (on the BMC's own only with
    /// `place_by_bmc_hostname`: a device must not pick its own site, rack
    /// and unit), with `site` (the subnet's user-context) overriding the
    /// site.
    #[allow(clippy::too_many_arguments)]
    pub fn for_lease(
        inventory: &'a Inventory,
        bmc_mac: &str,
        bmc_ip: Ipv4Addr,
        prefix_len: u8,
        lease_hostname: Option<&str>,
        site: Option<&str>,
        pattern: &crate::placement::PlacementPattern,
        place_by_bmc_hostname: bool,
    ) -> Registration<'a> {
        let from_lease = crate::placement::pick(&[lease_hostname]);
        let placed_by_name = from_lease.is_some() || place_by_bmc_hostname;
        let name = from_lease
            .or_else(|| {
                crate::placement::pick(&[
                    inventory.bmc.hostname.as_deref(),
                    inventory.bmc.fqdn.as_deref(),
                ])
            })
            .unwrap_or_else(|| format!("bmc-{}", bmc_mac.replace(':', "")));
        let mut placement = if placed_by_name {
            pattern.place(&name).unwrap_or_default()
        } else {
            Placement::default()
        };
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
            identity: Identity::default(),
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
    /// Whether the device's BMC custom fields are set, and created.
    pub custom_fields: CustomFields,
    /// A journal entry on the device for each registration that changed
    /// something.
    pub journal: bool,
    /// Place a server by the BMC's self-reported HostName when its lease
    /// has none (`netbox.place-by-bmc-hostname`).
    pub place_by_bmc_hostname: bool,
}

/// What the hook does with its custom fields on devices (`FIELDS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomFields {
    /// Leave them alone.
    Off,
    /// Set those the operator has created; ignore the others.
    Use,
    /// Create those missing, then set them.
    Create,
}

impl CustomFields {
    /// The `netbox.custom-fields` parameter's value: "off", "use", "create".
    pub fn parse(text: &str) -> Option<CustomFields> {
        match text {
            "off" => Some(CustomFields::Off),
            "use" => Some(CustomFields::Use),
            "create" => Some(CustomFields::Create),
            _ => None,
        }
    }
}

/// The device custom fields the hook keeps: name, label, description.
/// A "last discovered" time is deliberately not among them: it would
/// make every re-discovery a write (see docs/NETBOX.md); the state store
/// keeps that.
pub const FIELDS: &[(&str, &str, &str)] = &[
    (
        "bmc_firmware",
        "BMC firmware",
        "Firmware version of the BMC, as its Redfish service reports it",
    ),
    (
        "bmc_bios_version",
        "BIOS version",
        "System BIOS/UEFI version, as the BMC reports it",
    ),
    (
        "bmc_discovery_state",
        "Discovery state",
        "State of the server in kea-hook-bmc-discovery",
    ),
];

impl Default for Options {
    fn default() -> Options {
        Options {
            role: "Server".into(),
            create_missing: false,
            tag: "bmc-discovery".into(),
            interface: "bmc".into(),
            custom_fields: CustomFields::Use,
            journal: true,
            place_by_bmc_hostname: false,
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
    /// The changes were planned, not made (`NetBox::set_dry_run`).
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// NetBox could not be reached or kept failing: retry later.
    Unavailable(String),
    /// The registration cannot proceed as configured (missing site with
    /// create-missing off, no site at all, a conflict with another
    /// device). Nothing was overwritten.
    Refused(String),
    /// Another device's record is claimed by this BMC (its serial or name)
    /// while that device's own BMC is still live: nothing was written to
    /// either. Accepted once the other BMC's lease is gone, or with
    /// `bmc-retry {"mac": .., "replace-bmc": true}`.
    Conflict(String),
    /// NetBox refused a request, or answered unexpectedly.
    Failed(String),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Unavailable(m) | RegisterError::Failed(m) => f.write_str(m),
            RegisterError::Refused(m) => write!(f, "not registered: {m}"),
            RegisterError::Conflict(m) => write!(f, "not registered, conflict: {m}"),
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

/// The id of `v`, an object NetBox answered with (a dry run's planned
/// objects carry `DRY_RUN_ID`). Without one NetBox answered unexpectedly:
/// an error, never an id of 0, which would pass for a planned object.
fn id(v: Option<&Value>, what: &str) -> Result<u64, RegisterError> {
    v.and_then(id_of)
        .ok_or_else(|| RegisterError::Failed(format!("NetBox answered {what} without an id")))
}

/// An object's id for a message: the id, or "unknown".
fn shown_id(v: &Value) -> String {
    id_of(v).map_or_else(|| "unknown".into(), |i| i.to_string())
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
    /// Shared objects taken from the client's memory rather than NetBox:
    /// if the registration fails, one of them may be stale.
    remembered: u32,
}

impl Ctx<'_> {
    /// A shared object (tag, site, rack, manufacturer, device type, role,
    /// custom field): remembered, else found, else created from `create`
    /// (None: not created, and None is the answer). With
    /// `remember_absent`, "not there" is remembered too.
    fn shared(
        &mut self,
        endpoint: &str,
        filter: &[(&str, &str)],
        create: Option<Value>,
        remember_absent: bool,
        what: &str,
    ) -> Result<Option<Value>, RegisterError> {
        let key = format!("{endpoint}{}", query(filter));
        match self.nb.shared.get(&key) {
            // "Not there" does not stop a create.
            Some(Value::Null) if create.is_some() => {}
            Some(v) => {
                self.remembered += 1;
                return Ok((!v.is_null()).then_some(v));
            }
            None => {}
        }
        let found = match create {
            Some(body) => Some(self.get_or_create(endpoint, filter, body, what)?),
            None => self.find(endpoint, filter)?,
        };
        match &found {
            // Planned objects of a dry run are not remembered: they are not
            // there.
            Some(v) if id_of(v) != Some(super::client::DRY_RUN_ID) => {
                self.nb.shared.put(key, v.clone())
            }
            None if remember_absent => self.nb.shared.put(key, Value::Null),
            _ => {}
        }
        Ok(found)
    }

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
        self.create(endpoint, filter, body, what)
    }

    /// Creates `body`; one that loses a race to an identical object
    /// (uniqueness error) reads the winner's, found by `filter`.
    fn create(
        &mut self,
        endpoint: &str,
        filter: &[(&str, &str)],
        body: Value,
        what: &str,
    ) -> Result<Value, RegisterError> {
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
        let path = format!("/api/{endpoint}/{}/", id(Some(obj), endpoint)?);
        match self.nb.delete(&path) {
            Ok(()) | Err(NetBoxError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `have` brought to `want`; without one, `want` created (status
    /// active). A create that loses a race updates the winner, found by
    /// `filter`. The flag: whether this call created the object.
    fn upsert(
        &mut self,
        endpoint: &str,
        have: Option<Value>,
        filter: &[(&str, &str)],
        want: &Map<String, Value>,
        what: &str,
    ) -> Result<(Value, bool), RegisterError> {
        if let Some(have) = have {
            return Ok((self.update(endpoint, &have, want, what)?, false));
        }
        let mut body = want.clone();
        body.insert("status".into(), json!("active"));
        match self
            .nb
            .post(&format!("/api/{endpoint}/"), &Value::Object(body))
        {
            Ok(v) => {
                self.outcome.changes.push(format!("created {what}"));
                Ok((v, true))
            }
            Err(e) if is_duplicate(&e) => {
                let winner = self
                    .find(endpoint, filter)?
                    .ok_or_else(|| RegisterError::from(e))?;
                Ok((self.update(endpoint, &winner, want, what)?, false))
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
        let id = id(Some(have), what)?;
        let mut diff = Map::new();
        for (k, v) in want {
            // Custom fields: only those that differ are sent (NetBox merges
            // them into the object's others).
            if let (Value::Object(fields), "custom_fields") = (v, k.as_str()) {
                let changed: Map<String, Value> = fields
                    .iter()
                    .filter(|(f, val)| have.pointer(&format!("/custom_fields/{f}")) != Some(*val))
                    .map(|(f, val)| (f.clone(), val.clone()))
                    .collect();
                if !changed.is_empty() {
                    diff.insert(k.clone(), Value::Object(changed));
                }
                continue;
            }
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
        let fields: Vec<String> = diff
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                ("custom_fields", Value::Object(f)) => f.keys().cloned().collect(),
                _ => vec![k.clone()],
            })
            .collect();
        self.outcome
            .changes
            .push(format!("updated {what}: {}", fields.join(", ")));
        let patched = self.nb.patch(
            &format!("/api/{endpoint}/{id}/"),
            &Value::Object(diff.clone()),
        )?;
        if !self.nb.dry_run() {
            return Ok(patched);
        }
        // A dry run answers only what was sent: the object as it would be
        // is the one read, with the changes on top.
        let mut merged = have.clone();
        if let Value::Object(m) = &mut merged {
            for (k, v) in diff {
                m.insert(k, v);
            }
        }
        Ok(merged)
    }
}

/// Registers one server. See the module comment for the guarantees.
pub fn register(nb: &NetBox, reg: &Registration, opts: &Options) -> Result<Outcome, RegisterError> {
    let mut cx = Ctx::new(nb);
    match register_with(&mut cx, reg, opts) {
        Ok(()) => Ok(cx.outcome),
        Err(e) => {
            // A remembered object someone deleted or changed in NetBox
            // makes writes that refer to it fail: forget them all, and try
            // once more with what NetBox holds now.
            nb.shared.clear();
            if cx.remembered == 0
                || matches!(
                    e,
                    RegisterError::Unavailable(_) | RegisterError::Conflict(_)
                )
            {
                return Err(e);
            }
            kea_log!(BMC_DISCOVERY_NETBOX_RETRY, reg.name, e);
            let mut cx = Ctx::new(nb);
            register_with(&mut cx, reg, opts)?;
            Ok(cx.outcome)
        }
    }
}

impl<'a> Ctx<'a> {
    /// A context for a chain of steps run beside this one: same NetBox and
    /// tag, its own list of changes.
    fn branch(&self) -> Ctx<'a> {
        Ctx {
            nb: self.nb,
            outcome: Outcome {
                dry_run: self.outcome.dry_run,
                ..Outcome::default()
            },
            tag_id: self.tag_id,
            remembered: 0,
        }
    }

    fn new(nb: &'a NetBox) -> Ctx<'a> {
        Ctx {
            nb,
            outcome: Outcome {
                dry_run: nb.dry_run(),
                ..Outcome::default()
            },
            tag_id: 0,
            remembered: 0,
        }
    }
}

/// What NetBox holds for one server, read in parallel: none of these
/// answers depends on another, and on a NetBox where a request costs a
/// few hundred milliseconds, reading them one after another was a second
/// of every registration.
struct Found {
    by_serial: Option<Value>,
    by_name: Option<Value>,
    /// Every MAC address object for the BMC's MAC.
    macs: Vec<Value>,
    asset_tag_holder: Option<Value>,
    /// The object for the BMC's IP address.
    ip: Option<Value>,
}

impl Found {
    fn read(cx: &Ctx, reg: &Registration, site_id: &str) -> Result<Found, RegisterError> {
        let inv = reg.inventory;
        let ip = reg.bmc_ip.to_string();
        let find = |endpoint: &str, filter: &[(&str, &str)]| cx.find(endpoint, filter);
        std::thread::scope(|s| {
            let by_serial = inv
                .serial_number
                .as_deref()
                .map(|serial| s.spawn(move || find("dcim/devices", &[("serial", serial)])));
            let by_name =
                s.spawn(|| find("dcim/devices", &[("name", &reg.name), ("site_id", site_id)]));
            let asset_tag_holder = inv
                .asset_tag
                .as_deref()
                .map(|tag| s.spawn(move || find("dcim/devices", &[("asset_tag", tag)])));
            let ip_found = s.spawn(|| find("ipam/ip-addresses", &[("address", &ip)]));
            let macs = list_macs(cx, &reg.bmc_mac);
            // Every thread is joined before any answer is looked at.
            let by_serial = by_serial.map(joined);
            let by_name = joined(by_name);
            let asset_tag_holder = asset_tag_holder.map(joined);
            let ip = joined(ip_found);
            Ok(Found {
                by_serial: by_serial.transpose()?.flatten(),
                by_name: by_name?,
                macs: macs?,
                asset_tag_holder: asset_tag_holder.transpose()?.flatten(),
                ip: ip?,
            })
        })
    }
}

/// A lookup thread's answer; a panic there is an error of this
/// registration, not of the worker.
fn joined<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T, RegisterError>>,
) -> Result<T, RegisterError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(RegisterError::Failed("a NetBox lookup panicked".into())))
}

fn register_with(cx: &mut Ctx, reg: &Registration, opts: &Options) -> Result<(), RegisterError> {
    let inv = reg.inventory;
    let tag_slug = slug(&opts.tag);
    let tag = cx.shared(
        "extras/tags",
        &[("slug", &tag_slug)],
        Some(
            json!({"name": opts.tag, "slug": tag_slug, "color": "2196f3",
               "description": "created and updated by kea-hook-bmc-discovery"}),
        ),
        false,
        &format!("tag {}", opts.tag),
    )?;
    cx.tag_id = id(tag.as_ref(), &format!("tag {}", opts.tag))?;
    let tags = json!([cx.tag_id]);

    // Site and rack: from the placement; missing ones per policy.
    let site_name = reg.placement.site.clone().ok_or_else(|| {
        RegisterError::Refused(format!(
            "no site for {}: its hostname names none and its subnet's user-context has no \"site\"",
            reg.name
        ))
    })?;
    let site_slug = slug(&site_name);
    let site = cx
        .shared(
            "dcim/sites",
            &[("slug", &site_slug)],
            opts.create_missing.then(
                || json!({"name": site_name, "slug": site_slug, "status": "active", "tags": tags}),
            ),
            false,
            &format!("site {site_name}"),
        )?
        .ok_or_else(|| {
            RegisterError::Refused(format!(
                "site {site_name:?} (slug {site_slug}) does not exist in NetBox; create it, \
                 or let the hook create missing sites and racks (netbox.create-missing)"
            ))
        })?;
    let site_id = id(Some(&site), &format!("site {site_slug}"))?;
    let sid = site_id.to_string();
    let rack = match &reg.placement.rack {
        None => None,
        Some(rack_name) => Some(
            cx.shared(
                "dcim/racks",
                &[("site_id", &sid), ("name", rack_name)],
                opts.create_missing.then(|| {
                    json!({"name": rack_name, "site": site_id, "status": "active", "tags": tags})
                }),
                false,
                &format!("rack {rack_name} in {site_name}"),
            )?
            .ok_or_else(|| {
                RegisterError::Refused(format!(
                    "rack {rack_name:?} does not exist in site {site_name:?}; create it, \
                     or let the hook create missing sites and racks (netbox.create-missing)"
                ))
            })?,
        ),
    };

    // Manufacturer, device type, role.
    let mfr_name = inv
        .manufacturer
        .clone()
        .unwrap_or_else(|| format!("Unknown ({})", inv.vendor));
    let mfr_slug = slug(&mfr_name);
    let mfr = cx.shared(
        "dcim/manufacturers",
        &[("slug", &mfr_slug)],
        Some(json!({"name": mfr_name, "slug": mfr_slug})),
        false,
        &format!("manufacturer {mfr_name}"),
    )?;
    let mfr_id = id(mfr.as_ref(), &format!("manufacturer {mfr_name}"))?;
    let model = inv.model.clone().unwrap_or_else(|| "Unknown model".into());
    let model_slug = slug(&format!("{mfr_slug}-{model}"));
    let height = reg.placement.height.or(inv.height_u).unwrap_or(1);
    let dtype = cx.shared(
        "dcim/device-types",
        &[("manufacturer_id", &mfr_id.to_string()), ("slug", &model_slug)],
        Some(json!({"manufacturer": mfr_id, "model": model, "slug": model_slug,
               "part_number": inv.sku.clone().or_else(|| inv.part_number.clone()).unwrap_or_default(),
               "u_height": height, "tags": tags})),
        false,
        &format!("device type {model}"),
    )?;
    let role_slug = slug(&opts.role);
    let role = cx.shared(
        "dcim/device-roles",
        &[("slug", &role_slug)],
        Some(json!({"name": opts.role, "slug": role_slug, "color": "9e9e9e"})),
        false,
        &format!("role {}", opts.role),
    )?;
    let custom = custom_fields(cx, opts, inv)?;

    // The device: by serial, then by BMC MAC, then by name in the site;
    // one not found by this BMC's own MAC must pass `vouch`.
    let found = Found::read(cx, reg, &sid)?;
    let own_mac_device = found
        .macs
        .iter()
        .min_by_key(|m| id_of(m).unwrap_or(u64::MAX))
        .and_then(|m| m.pointer("/assigned_object/device/id"))
        .and_then(Value::as_u64);
    let by_serial = found.by_serial.is_some();
    let mut device = found.by_serial;
    if device.is_none() {
        if let Some(dev_id) = own_mac_device {
            device = Some(cx.nb.get(&format!("/api/dcim/devices/{dev_id}/"))?);
        }
    }
    if device.is_none() {
        if let Some(d) = found.by_name {
            // A name is anyone's to claim: with no serial to compare,
            // nothing shows this is that server.
            if inv.serial_number.is_none() && !reg.identity.replace_bmc {
                return Err(RegisterError::Conflict(format!(
                    "device {:?} (id {}) in this site has the name this BMC {} asks for, and                      the BMC reports no serial to show it is that server; nothing written                      (give the BMC another hostname, or bmc-retry with \"replace-bmc\": true                      if it is that server)",
                    reg.name,
                    shown_id(&d),
                    reg.bmc_mac
                )));
            }
            device = Some(d);
        }
    }
    if let (Some(d), Some(serial)) = (&device, &inv.serial_number) {
        let theirs = d.get("serial").and_then(Value::as_str).unwrap_or("");
        if !theirs.is_empty() && theirs != serial {
            return Err(RegisterError::Conflict(format!(
                "device {:?} (id {}) has serial {theirs:?}, this server {serial:?}; \
                 nothing overwritten",
                d.get("name").and_then(Value::as_str).unwrap_or(""),
                shown_id(d)
            )));
        }
    }
    // Stale MACs and addresses go only from a device this BMC's own MAC
    // found, or one `vouch` cleared (the old BMC is gone); on another, only
    // duplicates of this BMC's own MAC and address (concurrent creates).
    let mut verified = true;
    if let Some(d) = &device {
        if !has_tag(d, cx.tag_id) {
            return Err(RegisterError::Refused(format!(
                "device {:?} (id {}) matches this BMC {} but does not carry the tag {:?}: the \
                 hook never updates devices it does not own; add the tag to the device to let \
                 it, or remove the device's serial/name",
                d.get("name").and_then(Value::as_str).unwrap_or(""),
                shown_id(d),
                reg.bmc_mac,
                opts.tag
            )));
        }
        if id_of(d) != own_mac_device {
            verified = vouch(cx, reg, opts, d, if by_serial { "serial" } else { "name" })?;
        }
    }
    let mut want = Map::new();
    want.insert("name".into(), json!(reg.name));
    want.insert("device_type".into(), json!(dtype.as_ref().and_then(id_of)));
    want.insert("role".into(), json!(role.as_ref().and_then(id_of)));
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
    if !custom.is_empty() {
        want.insert("custom_fields".into(), Value::Object(custom));
    }
    // Asset tags are unique in NetBox, and BMCs ship with copied defaults:
    // a tag another device holds is left unset here, and said so.
    if let Some(a) = &inv.asset_tag {
        if let Some(holder) = &found.asset_tag_holder {
            if device.as_ref().and_then(id_of) != id_of(holder) {
                want.remove("asset_tag");
                cx.outcome.notes.push(format!(
                    "asset tag {a:?} is held by device {:?} (id {}); left unset",
                    holder.get("name").and_then(Value::as_str).unwrap_or(""),
                    shown_id(holder)
                ));
            }
        }
    }
    // Only a device this registration created is known to have nothing on
    // it yet: then the lookups of its interface, addresses and items are
    // skipped.
    let (device, new_device) = cx.upsert(
        "dcim/devices",
        device,
        &[("name", &reg.name), ("site_id", &sid)],
        &want,
        &format!("device {}", reg.name),
    )?;
    let device_id = id(Some(&device), &format!("device {}", reg.name))?;
    cx.outcome.device_id = device_id;
    let dev = device_id.to_string();

    // The BMC's interface.
    let iface_filter = [
        ("device_id", dev.as_str()),
        ("name", opts.interface.as_str()),
    ];
    let iface_body = json!({"device": device_id, "name": opts.interface, "type": "1000base-t",
               "mgmt_only": true, "description": "BMC", "tags": tags});
    let iface_what = format!("interface {}", opts.interface);
    let iface = if new_device {
        cx.create("dcim/interfaces", &iface_filter, iface_body, &iface_what)?
    } else {
        cx.get_or_create("dcim/interfaces", &iface_filter, iface_body, &iface_what)?
    };
    let iface_id = id(Some(&iface), &iface_what)?;

    // Three chains need only the device and the interface, not each
    // other: the MAC (then the interface's primary MAC), the address (then
    // the device's oob_ip) and the inventory items. Each runs on its own
    // thread with its own list of changes, merged in this order.
    let stale = match (new_device, verified) {
        (true, _) => Stale::Keep,
        (false, true) => Stale::Remove,
        (false, false) => Stale::Duplicates,
    };
    let items = super::items::desired(inv);
    let (mac_chain, ip_chain, items_chain) = std::thread::scope(|s| {
        let mut mac_cx = cx.branch();
        let (macs, iface, tags) = (found.macs, &iface, &tags);
        let mac_chain = s.spawn(move || {
            mac_steps(&mut mac_cx, reg, macs, iface, tags, stale)?;
            Ok(mac_cx.outcome)
        });
        let (nb, tag_id) = (cx.nb, cx.tag_id);
        let items_chain = s.spawn(move || {
            super::items::sync(nb, device_id, tag_id, &items, !new_device)
                .map_err(RegisterError::from)
        });
        let mut ip_cx = cx.branch();
        let ip_chain = ip_steps(&mut ip_cx, reg, found.ip, iface_id, &device, tags, stale)
            .map(|()| ip_cx.outcome);
        (joined(mac_chain), ip_chain, joined(items_chain))
    });
    for part in [mac_chain?, ip_chain?] {
        cx.outcome.changes.extend(part.changes);
        cx.outcome.notes.extend(part.notes);
    }
    cx.outcome.changes.extend(items_chain?);

    if opts.journal && !cx.outcome.changes.is_empty() {
        journal(cx, reg, device_id)?;
    }
    Ok(())
}

/// A device found by serial or name, not by this BMC's own MAC: each other
/// MAC on its hook-owned BMC interface must belong to a BMC that is gone
/// (`Identity::in_use`), else this is a conflict and nothing is written.
/// Whether the replacement is proven, so that the old BMC's objects may be
/// removed: an old MAC was found and is gone, or the operator said so.
fn vouch(
    cx: &Ctx,
    reg: &Registration,
    opts: &Options,
    device: &Value,
    by: &str,
) -> Result<bool, RegisterError> {
    if reg.identity.replace_bmc {
        return Ok(true);
    }
    let dev = id(Some(device), "device")?.to_string();
    let iface = cx.find(
        "dcim/interfaces",
        &[
            ("device_id", dev.as_str()),
            ("name", opts.interface.as_str()),
        ],
    )?;
    let Some(iface) = iface.filter(|i| has_tag(i, cx.tag_id)) else {
        return Ok(false);
    };
    let iface_id = id(Some(&iface), "the BMC interface")?;
    let macs = cx.nb.list(&format!(
        "/api/dcim/mac-addresses/{}",
        query(&[("interface_id", &iface_id.to_string())])
    ))?;
    let mut old = 0;
    for m in &macs {
        // Checked here too: a filter NetBox did not know would be ignored
        // and list everything.
        let on_iface = m.get("assigned_object_type").and_then(Value::as_str)
            == Some("dcim.interface")
            && m.get("assigned_object_id").and_then(Value::as_u64) == Some(iface_id);
        let Some(mac) = m.get("mac_address").and_then(Value::as_str) else {
            continue;
        };
        let mac = mac.to_ascii_lowercase();
        if !on_iface || mac == reg.bmc_mac {
            continue;
        }
        old += 1;
        if let Some(why) = (reg.identity.in_use)(&mac) {
            return Err(RegisterError::Conflict(format!(
                "BMC {} at {} claims device {:?} (id {dev}) by its {by}, but that device's BMC \
                 is MAC {mac}, which is still live ({why}); nothing written. If this BMC \
                 replaced it: bmc-retry {{\"mac\": \"{}\", \"replace-bmc\": true}}",
                reg.bmc_mac,
                reg.bmc_ip,
                device.get("name").and_then(Value::as_str).unwrap_or(""),
                reg.bmc_mac
            )));
        }
    }
    Ok(old > 0)
}

/// The MAC: NetBox does not keep MACs unique, so after a create the oldest
/// object for this MAC wins and the others are removed. Then it is the
/// interface's primary MAC, and (on a device that existed) the hook's
/// older MACs on the interface go.
fn mac_steps(
    cx: &mut Ctx,
    reg: &Registration,
    macs: Vec<Value>,
    iface: &Value,
    tags: &Value,
    stale: Stale,
) -> Result<(), RegisterError> {
    let iface_id = id(Some(iface), "the BMC interface")?;
    let mac = mac_object(cx, &reg.bmc_mac, macs, iface_id, tags)?;
    let mac_id = id(Some(&mac), &format!("MAC address {}", reg.bmc_mac))?;
    let mut want = Map::new();
    want.insert("primary_mac_address".into(), json!(mac_id));
    cx.update("dcim/interfaces", iface, &want, "interface primary MAC")?;
    remove_stale(
        cx,
        "dcim/mac-addresses",
        iface_id,
        Some(mac_id),
        ("MAC address", "mac_address", &reg.bmc_mac),
        stale,
    )?;
    Ok(())
}

/// The IP address, then the device's out-of-band IP.
fn ip_steps(
    cx: &mut Ctx,
    reg: &Registration,
    found: Option<Value>,
    iface_id: u64,
    device: &Value,
    tags: &Value,
    stale: Stale,
) -> Result<(), RegisterError> {
    let ip = ip_object(cx, reg, found, iface_id, tags, stale)?;
    let mut want = Map::new();
    want.insert("oob_ip".into(), json!(id_of(&ip)));
    cx.update("dcim/devices", device, &want, "device oob_ip")?;
    Ok(())
}

/// The values of the hook's custom fields that exist (or were created, per
/// `opts.custom_fields`); one missing is noted once per a few minutes.
fn custom_fields(
    cx: &mut Ctx,
    opts: &Options,
    inv: &Inventory,
) -> Result<Map<String, Value>, RegisterError> {
    let mut values = Map::new();
    if opts.custom_fields == CustomFields::Off {
        return Ok(values);
    }
    for (name, label, description) in FIELDS {
        let create = (opts.custom_fields == CustomFields::Create).then(|| {
            json!({"name": name, "label": label, "description": description, "type": "text",
                   "object_types": ["dcim.device"], "group_name": "BMC discovery",
                   "required": false})
        });
        let found = cx.shared(
            "extras/custom-fields",
            &[("name", name)],
            create,
            true,
            &format!("custom field {name}"),
        )?;
        if found.is_none() {
            let key = format!("noted missing custom field {name}");
            if cx.nb.shared.get(&key).is_none() {
                cx.nb.shared.put(key, Value::Bool(true));
                cx.outcome.notes.push(format!(
                    "custom field {name} does not exist in NetBox; create it, or set \
                     netbox.custom-fields to \"create\" (or \"off\" to silence this)"
                ));
            }
            continue;
        }
        let value = match *name {
            "bmc_firmware" => inv.bmc.firmware_version.clone(),
            "bmc_bios_version" => inv.bios_version.clone(),
            _ => Some("registered".to_string()),
        };
        values.insert(name.to_string(), json!(value));
    }
    Ok(values)
}

/// One journal entry on the device listing what this registration changed.
fn journal(cx: &mut Ctx, reg: &Registration, device_id: u64) -> Result<(), RegisterError> {
    let mut text = format!(
        "kea-hook-bmc-discovery: BMC `{}` at {} (Redfish: {} module)\n",
        reg.bmc_mac, reg.bmc_ip, reg.inventory.vendor
    );
    for c in &cx.outcome.changes {
        text.push_str(&format!("\n- {c}"));
    }
    cx.nb.post(
        "/api/extras/journal-entries/",
        &json!({"assigned_object_type": "dcim.device", "assigned_object_id": device_id,
                "kind": "info", "comments": text}),
    )?;
    Ok(())
}

/// Every MAC address object NetBox holds for `mac`.
fn list_macs(cx: &Ctx, mac: &str) -> Result<Vec<Value>, RegisterError> {
    Ok(cx.nb.list(&format!(
        "/api/dcim/mac-addresses/{}",
        query(&[("mac_address", mac)])
    ))?)
}

/// The MAC's object on the interface: the oldest of those `existing`
/// (read with the other lookups), else a new one.
fn mac_object(
    cx: &mut Ctx,
    mac: &str,
    existing: Vec<Value>,
    iface_id: u64,
    tags: &Value,
) -> Result<Value, RegisterError> {
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
            let all = list_macs(cx, mac)?;
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

/// Which of the hook's other objects on the BMC interface go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// None: the device was just created, there are none to look for.
    Keep,
    /// Only duplicates of this BMC's own MAC or address (a concurrent
    /// registration's): the device's identity is not proven.
    Duplicates,
    /// All: the device was found by this BMC's MAC, or the old BMC is gone.
    Remove,
}

/// Removes objects at `endpoint` on the interface that carry the hook's tag
/// and are not `keep` (with `Stale::Duplicates`, only those whose `label`
/// field is this BMC's `value`: `what` names them).
fn remove_stale(
    cx: &mut Ctx,
    endpoint: &str,
    iface_id: u64,
    keep: Option<u64>,
    (what, label, value): (&str, &str, &str),
    stale: Stale,
) -> Result<(), RegisterError> {
    if stale == Stale::Keep {
        return Ok(());
    }
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
        let shown = old.get(label).and_then(Value::as_str).unwrap_or("?");
        // An address is `ip/len`; a MAC is upper-cased by NetBox.
        let same = shown
            .split('/')
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(value));
        if id_of(&old) != keep && tagged && on_ours && (stale == Stale::Remove || same) {
            cx.remove(endpoint, &old)?;
            cx.outcome
                .changes
                .push(format!("removed old {what} {shown}"));
        }
    }
    Ok(())
}

/// The BMC's address on the interface: `found` (the object NetBox had for
/// the address, read with the other lookups) updated, else created.
fn ip_object(
    cx: &mut Ctx,
    reg: &Registration,
    found: Option<Value>,
    iface_id: u64,
    tags: &Value,
    stale: Stale,
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
    let (obj, _) = cx.upsert(
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
        ("IP address", "address", &ip),
        stale,
    )?;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_lease_hostname_places_unless_allowed() {
        let mut inv = crate::redfish::Inventory::default();
        inv.bmc.hostname = Some("fra1-r7-ru12-idrac".into());
        let pattern = crate::placement::PlacementPattern::default_pattern();
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let reg = |lease: Option<&str>, allow: bool| {
            super::Registration::for_lease(
                &inv,
                "aa:bb:cc:00:00:01",
                ip,
                24,
                lease,
                None,
                &pattern,
                allow,
            )
        };
        let own = reg(None, false);
        assert_eq!(own.name, "fra1-r7-ru12-idrac", "still named by the BMC");
        assert_eq!(own.placement.site, None);
        assert_eq!(own.placement.rack, None);
        let allowed = reg(None, true);
        assert_eq!(allowed.placement.site.as_deref(), Some("fra1"));
        assert_eq!(allowed.placement.rack.as_deref(), Some("r7"));
        let leased = reg(Some("us3-cab1-ru2-idrac"), false);
        assert_eq!(leased.placement.site.as_deref(), Some("us3"));
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            super::query(&[("name", "us3 cab/10"), ("mac_address", "aa:bb")]),
            "?name=us3%20cab%2F10&mac_address=aa%3Abb"
        );
    }
}
