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
//!
//! The steps, in order (`register_with`): the hook's tag, the site and
//! rack, the manufacturer, device type and role, the custom fields; then
//! which device this server is (`identity`), the device itself and its
//! BMC interface; then what hangs off the interface (`addresses`), and the
//! server's own network ports as interfaces (`host_ports`) and their LLDP
//! neighbours as cables (`cables`; the switches are found first, since
//! `placement-from-switch` places a server by them). The read-first
//! writes they all use are in `writes`.

mod addresses;
pub mod cables;
mod host_ports;
mod identity;
mod moves;
mod writes;

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::client::{NetBox, NetBoxError, ObjectId};
use crate::config::defaults;
use crate::kea::log::kea_log;
use crate::placement::{slug, Placement};
use crate::redfish::Inventory;
use addresses::{Attached, Stale};
use identity::Found;
use writes::{id, name_of, shown_id, Ctx};

/// What to register: the discovery's inventory and what the lease says.
pub struct Registration<'a> {
    pub inventory: &'a Inventory,
    /// The BMC's MAC from its lease (canonical `aa:bb:..`).
    pub bmc_mac: String,
    pub bmc_ip: IpAddr,
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
        bmc_ip: impl Into<IpAddr>,
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
            bmc_ip: bmc_ip.into(),
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
    /// The leased address or the BMC's MAC on another device's interface:
    /// moved here, or a conflict (`netbox.address-moves`).
    pub address_moves: AddressMoves,
    /// A server whose placement names no rack takes the site and rack of
    /// the switch its host ports' LLDP neighbours are
    /// (`netbox.placement-from-switch`).
    pub placement_from_switch: bool,
    /// Which family's address is the device's `oob_ip` when its BMC
    /// interface holds both (a dual-stack BMC registered by kea-dhcp4 and
    /// kea-dhcp6; `netbox.oob-ip-family`).
    pub oob_ip_family: OobIpFamily,
}

/// The family of the address a dual-stack BMC's device has as `oob_ip`.
/// A BMC with an address of one family only has that one, whatever this
/// says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OobIpFamily {
    Ipv4,
    Ipv6,
}

impl Default for OobIpFamily {
    fn default() -> OobIpFamily {
        OobIpFamily::parse(defaults::NETBOX_OOB_IP_FAMILY.default).expect("the default is a choice")
    }
}

impl OobIpFamily {
    /// The `netbox.oob-ip-family` parameter's value: "ipv4", "ipv6".
    pub fn parse(text: &str) -> Option<OobIpFamily> {
        match text {
            "ipv4" => Some(OobIpFamily::Ipv4),
            "ipv6" => Some(OobIpFamily::Ipv6),
            _ => None,
        }
    }

    /// Whether `ip` is of this family.
    pub fn holds(self, ip: IpAddr) -> bool {
        match self {
            OobIpFamily::Ipv4 => ip.is_ipv4(),
            OobIpFamily::Ipv6 => ip.is_ipv6(),
        }
    }
}

/// What a registration does with the leased address, or the BMC's MAC,
/// when NetBox has it on another device's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressMoves {
    /// The DHCP lease is the authority: it moves to this BMC, and both
    /// devices' journals say so.
    Move,
    /// A conflict naming the other device; nothing is written.
    Conflict,
}

impl Default for AddressMoves {
    fn default() -> AddressMoves {
        AddressMoves::parse(defaults::NETBOX_ADDRESS_MOVES.default)
            .expect("the default is a choice")
    }
}

impl AddressMoves {
    /// The `netbox.address-moves` parameter's value: "move", "conflict".
    pub fn parse(text: &str) -> Option<AddressMoves> {
        match text {
            "move" => Some(AddressMoves::Move),
            "conflict" => Some(AddressMoves::Conflict),
            _ => None,
        }
    }
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

impl Default for CustomFields {
    fn default() -> CustomFields {
        CustomFields::parse(defaults::NETBOX_CUSTOM_FIELDS.default)
            .expect("the default is a choice")
    }
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

/// One of the device custom fields the hook keeps.
pub struct CustomField {
    pub name: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    /// Its value for a server.
    pub value: fn(&Inventory) -> Option<String>,
}

/// The device custom fields the hook keeps. A "last discovered" time is
/// deliberately not among them: it would make every re-discovery a write
/// (see docs/NETBOX.md); the state store keeps that.
pub const FIELDS: &[CustomField] = &[
    CustomField {
        name: "bmc_firmware",
        label: "BMC firmware",
        description: "Firmware version of the BMC, as its Redfish service reports it",
        value: |inv| inv.bmc.firmware_version.clone(),
    },
    CustomField {
        name: "bmc_bios_version",
        label: "BIOS version",
        description: "System BIOS/UEFI version, as the BMC reports it",
        value: |inv| inv.bios_version.clone(),
    },
    CustomField {
        name: "bmc_discovery_state",
        label: "Discovery state",
        description: "State of the server in kea-hook-bmc-discovery",
        // Written only by a registration, which is what it says.
        value: |_| Some("registered".into()),
    },
];

impl Default for Options {
    fn default() -> Options {
        Options {
            role: defaults::NETBOX_ROLE.default.into(),
            create_missing: defaults::NETBOX_CREATE_MISSING.default,
            tag: defaults::NETBOX_TAG.default.into(),
            interface: defaults::NETBOX_INTERFACE.default.into(),
            custom_fields: CustomFields::default(),
            journal: defaults::NETBOX_JOURNAL.default,
            place_by_bmc_hostname: defaults::NETBOX_PLACE_BY_BMC_HOSTNAME.default,
            address_moves: AddressMoves::default(),
            placement_from_switch: defaults::NETBOX_PLACEMENT_FROM_SWITCH.default,
            oob_ip_family: OobIpFamily::default(),
        }
    }
}

/// What a registration did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The device; `ObjectId::Planned` when a dry run would have created
    /// it.
    pub device_id: ObjectId,
    /// One line per object created or changed; empty = nothing written.
    pub changes: Vec<String>,
    /// What was left out and why (conflicts that did not stop the rest).
    pub notes: Vec<String>,
    /// The changes were planned, not made (`NetBox::set_dry_run`).
    pub dry_run: bool,
    /// Where the device was placed: the registration's placement, or the
    /// switch's site and rack (`placement-from-switch`).
    pub placement: Placement,
    /// Host ports whose LLDP neighbour could not be cabled, and why.
    pub lldp_unmatched: Vec<cables::Unmatched>,
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

/// Registers one server. See the module comment for the guarantees.
pub fn register(nb: &NetBox, reg: &Registration, opts: &Options) -> Result<Outcome, RegisterError> {
    let _running = nb.registering();
    let mut cx = Ctx::new(nb);
    let done = match register_with(&mut cx, reg, opts) {
        Ok(done) => done,
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
            cx = Ctx::new(nb);
            register_with(&mut cx, reg, opts)?
        }
    };
    Ok(Outcome {
        device_id: done.device_id,
        changes: cx.changes,
        notes: cx.notes,
        dry_run: nb.dry_run(),
        placement: done.placement,
        lldp_unmatched: done.unmatched,
    })
}

/// What `register_with` made of a server.
struct Done {
    device_id: ObjectId,
    placement: Placement,
    unmatched: Vec<cables::Unmatched>,
}

/// The steps of one registration, in order.
fn register_with(cx: &mut Ctx, reg: &Registration, opts: &Options) -> Result<Done, RegisterError> {
    let tag = ensure_tag(cx, opts)?;
    let switches = cables::resolve(cx, &reg.inventory.host_ports)?;
    let from_switch = switch_place(cx, reg, opts, &switches)?;
    let placed;
    let reg = match &from_switch {
        Some(s) => {
            placed = Registration {
                bmc_mac: reg.bmc_mac.clone(),
                name: reg.name.clone(),
                dns_name: reg.dns_name.clone(),
                placement: s.placement.clone(),
                ..*reg
            };
            &placed
        }
        None => reg,
    };
    let place = match &from_switch {
        Some(s) => Place {
            site: s.site,
            rack: Some(s.rack),
        },
        None => ensure_place(cx, reg, opts, tag)?,
    };
    let model = ensure_model(cx, reg, opts, tag)?;
    let custom = custom_fields(cx, opts, reg.inventory)?;
    let found = Found::read(cx, reg, place.site)?;
    let matched = identity::match_device(
        cx,
        reg,
        opts,
        tag,
        found.by_serial,
        found.by_name,
        &found.macs,
    )?;
    moves::check(
        reg,
        opts,
        matched.device.as_ref(),
        found.ip.as_ref(),
        &found.macs,
    )?;
    let want = device_fields(
        cx,
        reg,
        tag,
        &place,
        &model,
        custom,
        matched.device.as_ref(),
        found.asset_tag_holder.as_ref(),
    )?;
    // Only a device this registration created is known to have nothing on
    // it yet: then the lookups of its interface, addresses and items are
    // skipped.
    let (device, new_device) = cx.upsert(
        "dcim/devices",
        matched.device,
        &[
            ("name", &reg.name),
            ("site_id", &place.site.wire().to_string()),
        ],
        &want,
        &format!("device {}", reg.name),
    )?;
    let device_id = id(Some(&device), &format!("device {}", reg.name))?;
    let iface = ensure_interface(cx, opts, device_id, new_device, tag)?;
    let on = Attached {
        device: &device,
        device_id,
        iface: &iface,
        tag,
        new_device,
        stale: Stale::of(new_device, matched.verified),
        oob_ip_family: opts.oob_ip_family,
    };
    let moved = addresses::attach(cx, reg, &on, found.macs, found.ip)?;
    let host = host_ports::Device {
        id: device_id,
        tag,
        new: new_device,
        remove_stale: new_device || matched.verified,
    };
    let synced = host_ports::sync(cx, reg, opts, &host)?;
    let unmatched = cables::sync(
        cx,
        &reg.inventory.host_ports,
        &switches,
        device_id,
        tag,
        &synced,
    )?;
    if opts.journal && !cx.changes.is_empty() {
        journal(cx, reg, device_id)?;
    }
    if opts.journal {
        moves::journal(cx, reg, opts, device_id, &moved)?;
    }
    if opts.journal && !unmatched.is_empty() {
        journal_unmatched(cx, device_id, new_device, &unmatched)?;
    }
    Ok(Done {
        device_id,
        placement: reg.placement.clone(),
        unmatched,
    })
}

/// Where the switches put a server (`placement-from-switch`).
struct SwitchPlace {
    site: ObjectId,
    rack: ObjectId,
    placement: Placement,
}

/// The site and rack of the switches the server's host ports hear, when
/// `placement-from-switch` is on and the server's placement names no
/// rack: all its switches in one rack, and that rack in the site the
/// placement names, if it names one (the operator's site wins; the
/// difference is noted). Never a unit.
fn switch_place(
    cx: &mut Ctx,
    reg: &Registration,
    opts: &Options,
    switches: &cables::Switches,
) -> Result<Option<SwitchPlace>, RegisterError> {
    if !opts.placement_from_switch || reg.placement.rack.is_some() {
        return Ok(None);
    }
    let ids: Vec<String> = switches
        .devices()
        .iter()
        .filter_map(|s| s.id.real())
        .map(|i| i.to_string())
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let q: Vec<(&str, &str)> = ids.iter().map(|i| ("id", i.as_str())).collect();
    let devs = cx.nb.list(&format!(
        "/api/dcim/devices/{}&limit=1000",
        writes::query(&q)
    ))?;
    let mut racks: Vec<(ObjectId, ObjectId, String, String, String)> = Vec::new();
    let mut rackless = Vec::new();
    for d in &devs {
        let site = d.get("site").and_then(ObjectId::of);
        let rack = d.get("rack").and_then(ObjectId::of);
        match (site, rack) {
            (Some(site), Some(rack)) => {
                let s = |k: &str| {
                    d.pointer(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let entry = (site, rack, s("/site/slug"), s("/rack/name"), s("/name"));
                if !racks.iter().any(|r| r.1 == rack) {
                    racks.push(entry);
                }
            }
            _ => rackless.push(name_of(d).to_string()),
        }
    }
    let switch_names = |r: &[(ObjectId, ObjectId, String, String, String)]| {
        r.iter()
            .map(|x| format!("{} (rack {} in {})", x.4, x.3, x.2))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [(site, rack, site_slug, rack_name, switch)] = racks.as_slice() else {
        if racks.len() > 1 {
            cx.notes.push(format!(
                "placement-from-switch: {} hears switches in different racks, {}: not placed \
                 by them",
                reg.name,
                switch_names(&racks)
            ));
        } else if !rackless.is_empty() {
            cx.notes.push(format!(
                "placement-from-switch: switch {} is in no rack: {} not placed by it",
                rackless.join(", "),
                reg.name
            ));
        }
        return Ok(None);
    };
    if let Some(named) = &reg.placement.site {
        if slug(named) != *site_slug {
            cx.notes.push(format!(
                "placement-from-switch: switch {switch} is in rack {rack_name} of site \
                 {site_slug}, but {} is placed in site {named} (hostname or subnet): the \
                 site named wins, the rack is not taken",
                reg.name
            ));
            return Ok(None);
        }
    }
    Ok(Some(SwitchPlace {
        site: *site,
        rack: *rack,
        placement: Placement {
            site: Some(site_slug.clone()),
            rack: Some(rack_name.clone()),
            position: None,
            height: reg.placement.height,
        },
    }))
}

/// One warning journal entry on the device for the neighbours that could
/// not be cabled, unless its newest warning already says the same (a
/// re-run of an unchanged server writes nothing).
fn journal_unmatched(
    cx: &mut Ctx,
    device_id: ObjectId,
    new_device: bool,
    unmatched: &[cables::Unmatched],
) -> Result<(), RegisterError> {
    let text = cables::journal_text(unmatched);
    if !new_device {
        let dev = device_id.wire().to_string();
        let last = cx.find(
            "extras/journal-entries",
            &[
                ("assigned_object_type", "dcim.device"),
                ("assigned_object_id", &dev),
                ("kind", "warning"),
                ("ordering", "-created"),
                ("limit", "1"),
            ],
        )?;
        if last
            .as_ref()
            .and_then(|e| e.get("comments"))
            .and_then(Value::as_str)
            == Some(text.as_str())
        {
            return Ok(());
        }
    }
    cx.nb.post(
        "/api/extras/journal-entries/",
        &json!({"assigned_object_type": "dcim.device", "assigned_object_id": device_id,
                "kind": "warning", "comments": text}),
    )?;
    Ok(())
}

/// The tag marking what the hook owns, created if missing.
fn ensure_tag(cx: &mut Ctx, opts: &Options) -> Result<ObjectId, RegisterError> {
    let tag_slug = slug(&opts.tag);
    let what = format!("tag {}", opts.tag);
    let tag = cx.shared(
        "extras/tags",
        &[("slug", &tag_slug)],
        Some(
            json!({"name": opts.tag, "slug": tag_slug, "color": "2196f3",
               "description": "created and updated by kea-hook-bmc-discovery"}),
        ),
        false,
        &what,
    )?;
    id(tag.as_ref(), &what)
}

/// Where the device goes in NetBox.
struct Place {
    site: ObjectId,
    rack: Option<ObjectId>,
}

/// Site and rack, from the placement; missing ones created or refused per
/// `create-missing`.
fn ensure_place(
    cx: &mut Ctx,
    reg: &Registration,
    opts: &Options,
    tag: ObjectId,
) -> Result<Place, RegisterError> {
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
                || json!({"name": site_name, "slug": site_slug, "status": "active", "tags": [tag]}),
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
    let Some(rack_name) = &reg.placement.rack else {
        return Ok(Place {
            site: site_id,
            rack: None,
        });
    };
    let what = format!("rack {rack_name} in {site_name}");
    let rack = cx
        .shared(
            "dcim/racks",
            &[
                ("site_id", &site_id.wire().to_string()),
                ("name", rack_name),
            ],
            opts.create_missing.then(
                || json!({"name": rack_name, "site": site_id, "status": "active", "tags": [tag]}),
            ),
            false,
            &what,
        )?
        .ok_or_else(|| {
            RegisterError::Refused(format!(
                "rack {rack_name:?} does not exist in site {site_name:?}; create it, \
                 or let the hook create missing sites and racks (netbox.create-missing)"
            ))
        })?;
    Ok(Place {
        site: site_id,
        rack: Some(id(Some(&rack), &what)?),
    })
}

/// What kind of device it is.
struct Model {
    device_type: ObjectId,
    role: ObjectId,
}

/// Manufacturer, device type and role, created if missing.
fn ensure_model(
    cx: &mut Ctx,
    reg: &Registration,
    opts: &Options,
    tag: ObjectId,
) -> Result<Model, RegisterError> {
    let inv = reg.inventory;
    let mfr_name = inv
        .manufacturer
        .clone()
        .unwrap_or_else(|| format!("Unknown ({})", inv.vendor));
    let mfr_slug = slug(&mfr_name);
    let mfr_what = format!("manufacturer {mfr_name}");
    let mfr = cx.shared(
        "dcim/manufacturers",
        &[("slug", &mfr_slug)],
        Some(json!({"name": mfr_name, "slug": mfr_slug})),
        false,
        &mfr_what,
    )?;
    let mfr_id = id(mfr.as_ref(), &mfr_what)?;
    let model = inv.model.clone().unwrap_or_else(|| "Unknown model".into());
    let model_slug = slug(&format!("{mfr_slug}-{model}"));
    let height = reg.placement.height.or(inv.height_u).unwrap_or(1);
    let dtype_what = format!("device type {model}");
    let dtype = cx.shared(
        "dcim/device-types",
        &[
            ("manufacturer_id", &mfr_id.wire().to_string()),
            ("slug", &model_slug),
        ],
        Some(json!({"manufacturer": mfr_id, "model": model, "slug": model_slug,
               "part_number": inv.sku.clone().or_else(|| inv.part_number.clone()).unwrap_or_default(),
               "u_height": height, "tags": [tag]})),
        false,
        &dtype_what,
    )?;
    let role_slug = slug(&opts.role);
    let role_what = format!("role {}", opts.role);
    let role = cx.shared(
        "dcim/device-roles",
        &[("slug", &role_slug)],
        Some(json!({"name": opts.role, "slug": role_slug, "color": "9e9e9e"})),
        false,
        &role_what,
    )?;
    Ok(Model {
        device_type: id(dtype.as_ref(), &dtype_what)?,
        role: id(role.as_ref(), &role_what)?,
    })
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
    for field in FIELDS {
        let name = field.name;
        let create = (opts.custom_fields == CustomFields::Create).then(|| {
            json!({"name": name, "label": field.label, "description": field.description,
                   "type": "text", "object_types": ["dcim.device"],
                   "group_name": "BMC discovery", "required": false})
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
                cx.notes.push(format!(
                    "custom field {name} does not exist in NetBox; create it, or set \
                     netbox.custom-fields to \"create\" (or \"off\" to silence this)"
                ));
            }
            continue;
        }
        values.insert(name.to_string(), json!((field.value)(inv)));
    }
    Ok(values)
}

/// The device as it should be. Asset tags are unique in NetBox, and BMCs
/// ship with copied defaults: a tag another device (`asset_tag_holder`)
/// holds is left unset, and said so.
#[allow(clippy::too_many_arguments)]
fn device_fields(
    cx: &mut Ctx,
    reg: &Registration,
    tag: ObjectId,
    place: &Place,
    model: &Model,
    custom: Map<String, Value>,
    device: Option<&Value>,
    asset_tag_holder: Option<&Value>,
) -> Result<Map<String, Value>, RegisterError> {
    let inv = reg.inventory;
    let mut want = Map::new();
    want.insert("name".into(), json!(reg.name));
    want.insert("device_type".into(), json!(model.device_type));
    want.insert("role".into(), json!(model.role));
    want.insert("site".into(), json!(place.site));
    if let Some(rack) = place.rack {
        want.insert("rack".into(), json!(rack));
        if let Some(pos) = reg.placement.position {
            want.insert("position".into(), json!(pos));
            want.insert("face".into(), json!("front"));
        }
    } else if device.is_some_and(|d| {
        d.pointer("/site/id").and_then(Value::as_u64) != Some(place.site.wire())
            && d.get("rack").is_some_and(|r| !r.is_null())
    }) {
        // Moved to another site without a rack there: NetBox refuses a
        // rack of another site, so the old one goes (a rack in the same
        // site is left to people).
        want.insert("rack".into(), Value::Null);
        want.insert("position".into(), Value::Null);
        want.insert("face".into(), Value::Null);
    }
    if let Some(s) = &inv.serial_number {
        want.insert("serial".into(), json!(s));
    }
    want.insert("tags".into(), json!([tag]));
    if !custom.is_empty() {
        want.insert("custom_fields".into(), Value::Object(custom));
    }
    if let Some(a) = &inv.asset_tag {
        match asset_tag_holder {
            Some(holder) if device.and_then(ObjectId::of) != ObjectId::of(holder) => {
                cx.notes.push(format!(
                    "asset tag {a:?} is held by device {:?} (id {}); left unset",
                    name_of(holder),
                    shown_id(holder)
                ));
            }
            _ => {
                want.insert("asset_tag".into(), json!(a));
            }
        }
    }
    Ok(want)
}

/// The BMC's interface on the device: found, else created.
fn ensure_interface(
    cx: &mut Ctx,
    opts: &Options,
    device_id: ObjectId,
    new_device: bool,
    tag: ObjectId,
) -> Result<Value, RegisterError> {
    let dev = device_id.wire().to_string();
    let filter = [
        ("device_id", dev.as_str()),
        ("name", opts.interface.as_str()),
    ];
    let body = json!({"device": device_id, "name": opts.interface, "type": "1000base-t",
               "mgmt_only": true, "description": "BMC", "tags": [tag]});
    let what = format!("interface {}", opts.interface);
    // On a device just created there is nothing to find.
    let iface = cx.ensure("dcim/interfaces", &filter, body, &what, !new_device)?;
    id(Some(&iface), &what)?;
    Ok(iface)
}

/// One journal entry on the device listing what this registration changed.
fn journal(cx: &mut Ctx, reg: &Registration, device_id: ObjectId) -> Result<(), RegisterError> {
    let mut text = format!(
        "kea-hook-bmc-discovery: BMC `{}` at {} (Redfish: {} module)\n",
        reg.bmc_mac, reg.bmc_ip, reg.inventory.vendor
    );
    for c in &cx.changes {
        text.push_str(&format!("\n- {c}"));
    }
    cx.nb.post(
        "/api/extras/journal-entries/",
        &json!({"assigned_object_type": "dcim.device", "assigned_object_id": device_id,
                "kind": "info", "comments": text}),
    )?;
    Ok(())
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
    fn every_custom_field_has_its_own_value() {
        let mut inv = crate::redfish::Inventory::default();
        inv.bmc.firmware_version = Some("7.10".into());
        inv.bios_version = Some("2.1".into());
        let values: Vec<(&str, Option<String>)> = super::FIELDS
            .iter()
            .map(|f| (f.name, (f.value)(&inv)))
            .collect();
        assert_eq!(
            values,
            [
                ("bmc_firmware", Some("7.10".into())),
                ("bmc_bios_version", Some("2.1".into())),
                ("bmc_discovery_state", Some("registered".into())),
            ]
        );
    }
}
