//! The NetBox client against a real NetBox, started by
//! ../shared/netbox/netbox-up (the first start installs and migrates it:
//! about 8 minutes; later ones take seconds).

use std::net::Ipv4Addr;
use std::time::Duration;

use bmc_test_support::emulator;
use bmc_test_support::netbox::{empty_netbox, get, netbox, reset, script, switch};
use dhcp_bmc_discovery::netbox::{
    register, CustomFields, Identity, NetBox, NetBoxError, ObjectId, Options, Outcome,
    RegisterError, Registration,
};
use dhcp_bmc_discovery::placement::{Placement, PlacementPattern};
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Inventory, Limits, Target, TlsPolicy};
use serde_json::{json, Value};

#[test]
fn connects_with_either_token_format_and_checks_the_version() {
    let (_guard, nb) = netbox();
    for token in [&nb.token, &nb.token_v1] {
        let client = NetBox::connect(&nb.url, token).unwrap();
        assert!(client.version.starts_with('4'), "{}", client.version);
    }
    let wrong = "nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let err = NetBox::connect(&nb.url, wrong).unwrap_err();
    assert!(matches!(err, NetBoxError::Auth(_)), "{err}");
    assert!(!err.to_string().contains("BBBBBBBB"), "token in {err}");
    // Before 4.5 NetBox ignores a Bearer header: the client says why, up front.
    let found = NetBox::connect(&nb.url, &nb.token_v1).unwrap();
    if !found.takes_v2_tokens() {
        let msg = err.to_string();
        assert!(
            msg.contains("v2 token") && msg.contains(&found.version),
            "{msg}"
        );
    }
    // A NetBox that is not there.
    let err = NetBox::connect("http://127.0.0.1:9", &nb.token).unwrap_err();
    assert!(err.to_string().starts_with("NetBox unavailable"), "{err}");
}

#[test]
fn lists_follow_pagination_and_writes_are_counted() {
    let (_guard, nb) = netbox();
    reset();
    let client = NetBox::connect(&nb.url, &nb.token).unwrap();
    for i in 0..30 {
        client
            .post(
                "/api/dcim/sites/",
                &json!({"name": format!("site-{i:02}"), "slug": format!("site-{i:02}")}),
            )
            .unwrap();
    }
    assert_eq!(client.writes(), 30);
    let all = client.list("/api/dcim/sites/?limit=7").unwrap();
    assert_eq!(all.len(), 30);
    // A duplicate is refused with NetBox's own reason.
    let err = client
        .post(
            "/api/dcim/sites/",
            &json!({"name": "site-00", "slug": "site-00"}),
        )
        .unwrap_err();
    match err {
        NetBoxError::Rejected { status, message } => {
            assert_eq!(status, 400);
            assert!(message.contains("already exists"), "{message}");
        }
        e => panic!("{e}"),
    }
}

/// Inventories of real discoveries: every mockup model through the emulator.
fn inventories() -> Vec<(String, Inventory)> {
    let emu = emulator::Emulator::start(0);
    let d = Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("root", "calvin"),
        Limits::default(),
        Duration::from_secs(60),
    );
    emulator::all_models()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let addr = Ipv4Addr::new(127, 50, 0, i as u8 + 1);
            emu.add(addr, &m, 0, "root", "calvin");
            let inv = d
                .discover(&Target::new(&addr.to_string(), emu.port))
                .unwrap_or_else(|e| panic!("{m}: {e}"))
                .inventory;
            (m, inv)
        })
        .collect()
}

fn registration<'a>(inv: &'a Inventory, i: u32, hostname: &str) -> Registration<'a> {
    Registration {
        inventory: inv,
        bmc_mac: inv
            .bmc
            .mac
            .clone()
            .unwrap_or_else(|| format!("02:00:00:00:01:{i:02x}")),
        bmc_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20, 0, 10)) + i).into(),
        prefix_len: 16,
        name: hostname.to_string(),
        placement: PlacementPattern::default_pattern()
            .place(hostname)
            .unwrap_or_default(),
        // Upper case on purpose: NetBox lower-cases DNS names, and a re-run
        // must still write nothing.
        dns_name: Some(format!("{hostname}.OOB.Example.net")),
        identity: Identity::default(),
    }
}

/// The state file's answer for a BMC whose lease is gone.
fn gone(_: &str) -> Option<String> {
    None
}

fn create_missing() -> Options {
    Options {
        create_missing: true,
        ..Options::default()
    }
}

/// After a BMC replacement: the device's BMC interface has `mac` as its
/// primary MAC address, and `old_mac` is gone from NetBox.
#[track_caller]
fn assert_bmc_mac_replaced(nb: &NetBox, device_id: ObjectId, mac: &str, old_mac: &str) {
    let ifaces = get(
        nb,
        &format!("/api/dcim/interfaces/?device_id={device_id}&name=bmc"),
    );
    assert_eq!(
        ifaces["results"][0]["primary_mac_address"]["mac_address"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some(mac)
    );
    assert_eq!(
        get(
            nb,
            &format!("/api/dcim/mac-addresses/?mac_address={old_mac}")
        )["count"],
        0
    );
}

/// The device's interfaces are its BMC's and one per host port, by name,
/// each host port's MAC its interface's primary MAC and in NetBox once.
#[track_caller]
fn assert_host_ports(nb: &NetBox, model: &str, inv: &Inventory, ifaces: &[Value]) {
    let mut names: Vec<&str> = ifaces.iter().filter_map(|i| i["name"].as_str()).collect();
    names.sort();
    let mut want: Vec<&str> = inv.host_ports.iter().map(|p| p.name.as_str()).collect();
    want.push("bmc");
    want.sort();
    assert_eq!(names, want, "{model}: interfaces");
    for p in &inv.host_ports {
        let i = ifaces
            .iter()
            .find(|i| i["name"] == p.name.as_str())
            .unwrap();
        assert_eq!(i["mgmt_only"], false, "{model} {}", p.name);
        let primary = i["primary_mac_address"]["mac_address"]
            .as_str()
            .map(str::to_lowercase);
        assert_eq!(primary, p.mac, "{model} {}: primary MAC", p.name);
        if let Some(m) = &p.mac {
            assert_eq!(
                get(nb, &format!("/api/dcim/mac-addresses/?mac_address={m}"))["count"],
                1,
                "{model} {}: {m} once in NetBox",
                p.name
            );
        }
        let pxe = i["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["slug"] == "bmc-discovery-pxe");
        assert_eq!(pxe, p.pxe, "{model} {}: PXE tag", p.name);
    }
}

/// Registers `reg` and prints what it cost NetBox (docs/NETBOX.md's
/// request tables are read from these lines).
#[track_caller]
fn register_measured(nb: &NetBox, reg: &Registration, opts: &Options, what: &str) -> Outcome {
    let (w, r) = (nb.writes(), nb.reads());
    let out = register(nb, reg, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {} writes {} reads: {:?}",
        nb.writes() - w,
        nb.reads() - r,
        out.changes
    );
    out
}

#[test]
fn every_model_registers_completely_and_a_second_run_writes_nothing() {
    let invs = inventories();
    let (_guard, _, nb) = empty_netbox();
    for (i, (model, inv)) in invs.iter().enumerate() {
        let i = i as u32;
        let host = format!("us3-cab{}-ru{}-bmc", i % 3 + 1, 2 * i + 1);
        let reg = registration(inv, i, &host);
        let (before, reads_before) = (nb.writes(), nb.reads());
        let out = register(&nb, &reg, &create_missing()).unwrap_or_else(|e| panic!("{model}: {e}"));
        let fresh_writes = nb.writes() - before;
        let fresh_reads = nb.reads() - reads_before;
        // The goal: at most 8 writes for a server, 3 more for its network
        // side (MACs, interfaces, cables, each one bulk request), plus one
        // per shared object (site, rack, model...) seen for the first
        // time. No switch is in this NetBox: no cable, but a warning
        // journal entry where a port heard a neighbour.
        let shared_creates = out
            .changes
            .iter()
            .filter(|c| {
                [
                    "created tag",
                    "created site",
                    "created rack",
                    "created manufacturer",
                    "created device type",
                    "created role",
                ]
                .iter()
                .any(|p| c.starts_with(p))
            })
            .count() as u64;
        let heard = inv.host_ports.iter().any(|p| p.lldp.is_some());
        // MACs, then the interfaces with them; before NetBox 4.7 the
        // primary MACs take a third request (docs/NETBOX.md).
        let port_writes = if nb.assigns_primary_mac_at_create() {
            2
        } else {
            3
        };
        let host_writes = if inv.host_ports.is_empty() {
            0
        } else {
            port_writes
        } + u64::from(heard);
        assert!(
            fresh_writes - shared_creates <= 8 + host_writes,
            "{model}: {fresh_writes} writes: {:?}",
            out.changes
        );
        let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
        assert_eq!(dev["name"], host, "{model}");
        assert_eq!(
            dev["serial"].as_str(),
            Some(inv.serial_number.as_deref().unwrap_or("")),
            "{model}"
        );
        assert_eq!(dev["site"]["slug"], "us3", "{model}");
        assert_eq!(dev["rack"]["name"], format!("cab{}", i % 3 + 1), "{model}");
        assert_eq!(
            dev["position"].as_f64(),
            Some(f64::from(2 * i + 1)),
            "{model}"
        );
        assert_eq!(
            dev["device_type"]["model"].as_str(),
            Some(inv.model.as_deref().unwrap_or("Unknown model")),
            "{model}"
        );
        let oob = dev["oob_ip"]["address"].as_str().unwrap_or("");
        assert_eq!(oob, format!("{}/16", reg.bmc_ip), "{model}");
        let ifaces = nb
            .list(&format!(
                "/api/dcim/interfaces/?device_id={}&limit=1000",
                out.device_id
            ))
            .unwrap();
        assert_host_ports(&nb, model, inv, &ifaces);
        let iface = ifaces.iter().find(|i| i["name"] == "bmc").expect("bmc");
        assert_eq!(iface["mgmt_only"], true);
        assert_eq!(
            iface["primary_mac_address"]["mac_address"]
                .as_str()
                .map(str::to_lowercase),
            Some(reg.bmc_mac.clone()),
            "{model}"
        );
        let items = get(
            &nb,
            &format!(
                "/api/dcim/inventory-items/?device_id={}&limit=1000",
                out.device_id
            ),
        );
        let want = dhcp_bmc_discovery::netbox::items::desired(inv).len();
        assert_eq!(
            items["count"].as_u64(),
            Some(want as u64),
            "{model}: inventory items"
        );
        // The same again: nothing to write.
        let (before, reads_before) = (nb.writes(), nb.reads());
        let again = register(&nb, &reg, &create_missing()).unwrap();
        assert_eq!(again.device_id, out.device_id);
        assert!(again.changes.is_empty(), "{model}: {:?}", again.changes);
        assert_eq!(
            nb.writes(),
            before,
            "{model}: writes on an unchanged re-run"
        );
        let rerun_reads = nb.reads() - reads_before;
        eprintln!(
            "{model:32} device {:3}  host ports {:2}  fresh {fresh_writes:2} writes {fresh_reads:2} reads, re-run 0 writes {rerun_reads:2} reads",
            out.device_id,
            inv.host_ports.len()
        );
    }
}

#[test]
fn concurrent_registrations_of_one_server_converge() {
    let invs = inventories();
    let inv = model(&invs, "dell-idrac9-r750");
    let (_guard, inst, nb) = empty_netbox();
    // The shared objects exist already (a site with other servers).
    register(
        &nb,
        &registration(&invs[0].1, 99, "us3-cab1-ru40-other"),
        &create_missing(),
    )
    .unwrap();
    let reg = registration(inv, 1, "us3-cab1-ru10-r750");
    let results: Vec<Result<ObjectId, RegisterError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let nb = NetBox::connect(&inst.url, &inst.token).unwrap();
                    // As the hook does on netbox-unavailable: try again. On a
                    // busy machine 20 at once can outlast the 30 s read
                    // timeout, and the POST that timed out may have landed:
                    // the retry must find it, not add a second.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match register(&nb, &reg, &create_missing()) {
                            Err(RegisterError::Unavailable(e)) if attempt < 4 => {
                                eprintln!("attempt {attempt}: {e}; again");
                            }
                            other => break other.map(|o| o.device_id),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: Vec<ObjectId> = results
        .iter()
        .map(|r| r.clone().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let serial = inv.serial_number.clone().unwrap();
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/?serial={serial}"))["count"],
        1
    );
    let ifaces = nb
        .list(&format!(
            "/api/dcim/interfaces/?device_id={}&limit=1000",
            ids[0]
        ))
        .unwrap();
    assert_host_ports(&nb, "dell-idrac9-r750", inv, &ifaces);
    assert_eq!(
        get(
            &nb,
            &format!("/api/dcim/mac-addresses/?mac_address={}", reg.bmc_mac)
        )["count"],
        1
    );
    assert_eq!(
        get(
            &nb,
            &format!("/api/ipam/ip-addresses/?address={}", reg.bmc_ip)
        )["count"],
        1
    );
}

#[test]
fn ip_change_bmc_replacement_conflicts_and_missing_sites() {
    let invs = inventories();
    let inv = model(&invs, "hpe-ilo6-dl380agen11");
    let (_guard, _, nb) = empty_netbox();

    // Missing site: refused by default, created when allowed.
    let reg = registration(inv, 1, "fra1-r7-ru12-ilo");
    let e = register(&nb, &reg, &Options::default()).unwrap_err();
    assert!(
        matches!(e, RegisterError::Refused(_)) && e.to_string().contains("site \"fra1\""),
        "{e}"
    );
    let first = register(&nb, &reg, &create_missing()).unwrap();

    // New IP: updated, the old one removed.
    let mut moved = registration(inv, 2, "fra1-r7-ru12-ilo");
    let out = register(&nb, &moved, &create_missing()).unwrap();
    assert_eq!(out.device_id, first.device_id);
    assert_eq!(
        get(
            &nb,
            &format!("/api/ipam/ip-addresses/?address={}", reg.bmc_ip)
        )["count"],
        0
    );
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["oob_ip"]["address"], format!("{}/16", moved.bmc_ip));

    // Replaced BMC: same serial, new MAC. While nothing shows the old
    // BMC's lease is gone, a conflict; once it is, accepted.
    moved.bmc_mac = "02:aa:bb:cc:dd:ee".into();
    let e = register(&nb, &moved, &create_missing()).unwrap_err();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    moved.identity = Identity {
        in_use: &gone,
        replace_bmc: false,
    };
    let out = register(&nb, &moved, &create_missing()).unwrap();
    assert_eq!(out.device_id, first.device_id, "found by serial");
    assert_bmc_mac_replaced(&nb, out.device_id, "02:aa:bb:cc:dd:ee", &reg.bmc_mac);

    // A hand edit the hook does not own stays.
    nb.patch(
        &format!("/api/dcim/devices/{}/", out.device_id),
        &json!({"description": "racked by Ana"}),
    )
    .unwrap();
    let again = register(&nb, &moved, &create_missing()).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/{}/", out.device_id))["description"],
        "racked by Ana"
    );

    // Another server with the same name in the site: a conflict, nothing
    // overwritten.
    let other = model(&invs, "lenovo-xcc-sr670v2");
    let clash = registration(other, 3, "fra1-r7-ru12-ilo");
    let e = register(&nb, &clash, &create_missing()).unwrap_err();
    assert!(e.to_string().contains("conflict"), "{e}");
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/{}/", out.device_id))["serial"],
        inv.serial_number.clone().unwrap()
    );

    // No rack unit in the hostname: in the rack, no position.
    let plain = registration(other, 4, "fra1-r7-xcc");
    let out = register(&nb, &plain, &create_missing()).unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["rack"]["name"], "r7");
    assert!(dev["position"].is_null());
    let _ = Placement::default();
}

#[test]
fn netbox_down_mid_run_reports_unavailable_and_the_retry_succeeds() {
    let invs = inventories();
    let (_guard, _, nb) = empty_netbox();
    let first = registration(&invs[2].1, 1, "us3-cab1-ru1-a");
    register(&nb, &first, &create_missing()).unwrap();

    script("netbox-down");
    let second = registration(&invs[5].1, 2, "us3-cab1-ru3-b");
    let e = register(&nb, &second, &create_missing()).unwrap_err();
    assert!(matches!(e, RegisterError::Unavailable(_)), "{e}");
    assert!(e.to_string().starts_with("NetBox unavailable"), "{e}");
    script("netbox-up");

    // The same client, retried: registered; the first is unchanged.
    register(&nb, &second, &create_missing()).unwrap();
    let again = register(&nb, &first, &create_missing()).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

/// Registering `reg` again finds nothing to change and writes nothing.
fn assert_rerun_writes_nothing(nb: &NetBox, reg: &Registration, options: &Options) {
    let before = nb.writes();
    let out = register(nb, reg, options).unwrap();
    assert!(out.changes.is_empty(), "{}: {:?}", reg.name, out.changes);
    assert_eq!(nb.writes(), before, "{}: a re-run wrote", reg.name);
}

fn model<'a>(invs: &'a [(String, Inventory)], name: &str) -> &'a Inventory {
    &invs
        .iter()
        .find(|(m, _)| m == name)
        .unwrap_or_else(|| panic!("no mockup {name}"))
        .1
}

/// Through `Registration::for_lease`, as the hook names and places a lease.
fn lease<'a>(inv: &'a Inventory, i: u32, hostname: &str) -> Registration<'a> {
    Registration::for_lease(
        inv,
        &format!("02:00:00:00:02:{i:02x}"),
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 30, 0, 10)) + i),
        24,
        Some(hostname),
        None,
        &PlacementPattern::default_pattern(),
        false,
    )
}

#[test]
fn hostnames_multi_unit_long_non_ascii_and_missing_racks() {
    let invs = inventories();
    let (_guard, _, nb) = empty_netbox();

    // Units 17-18: position 17, and the new device type is 2 units high.
    let r750 = model(&invs, "dell-idrac9-r750");
    let out = register(
        &nb,
        &lease(r750, 1, "us3-cab10-ru17-18-idrac"),
        &create_missing(),
    )
    .unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["name"], "us3-cab10-ru17-18-idrac");
    assert_eq!(dev["position"].as_f64(), Some(17.0));
    let dtype = get(
        &nb,
        &format!("/api/dcim/device-types/{}/", dev["device_type"]["id"]),
    );
    assert_eq!(dtype["u_height"].as_f64(), Some(2.0));

    // A 90-character FQDN: the first label, cut to NetBox's 64 characters,
    // still placed by its rack unit; the re-run writes nothing.
    let long = format!("us3-cab10-ru20-{}.oob.example.net", "x".repeat(75));
    let reg = lease(model(&invs, "hpe-ilo6-dl380agen11"), 2, &long);
    assert_eq!(reg.name.chars().count(), 64);
    let out = register(&nb, &reg, &create_missing()).unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["name"].as_str(), Some(reg.name.as_str()));
    assert_eq!(dev["position"].as_f64(), Some(20.0));
    assert_rerun_writes_nothing(&nb, &reg, &create_missing());

    // Non-ASCII: kept as it is in the name (NetBox allows it).
    let name = "us3-cab10-ru22-sérveur-ünïcode-Ω";
    let reg = lease(model(&invs, "lenovo-xcc-sr670v2"), 3, name);
    let out = register(&nb, &reg, &create_missing()).unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["name"], name);
    assert_eq!(dev["rack"]["name"], "cab10");
    assert_rerun_writes_nothing(&nb, &reg, &create_missing());

    // A rack the site lacks: refused by default, with the parameter to
    // change; created when allowed.
    let reg = lease(
        model(&invs, "supermicro-x13-sys821ge-tnhr"),
        4,
        "us3-cab99-ru5-bmc",
    );
    let e = register(&nb, &reg, &Options::default()).unwrap_err();
    assert!(matches!(e, RegisterError::Refused(_)), "{e}");
    assert!(
        e.to_string()
            .contains("rack \"cab99\" does not exist in site \"us3\"")
            && e.to_string().contains("netbox.create-missing"),
        "{e}"
    );
    assert_eq!(get(&nb, "/api/dcim/racks/?name=cab99")["count"], 0);
    let out = register(&nb, &reg, &create_missing()).unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["rack"]["name"], "cab99");
    assert_eq!(dev["position"].as_f64(), Some(5.0));
}

fn journal_count(nb: &NetBox, device_id: impl std::fmt::Display) -> u64 {
    get(
        nb,
        &format!(
            "/api/extras/journal-entries/?assigned_object_type=dcim.device&assigned_object_id={device_id}"
        ),
    )["count"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn custom_fields_journal_entries_and_dry_runs() {
    let invs = inventories();
    let (_guard, inst) = netbox();
    reset();
    let inv = model(&invs, "dell-idrac9-r750");
    let reg = registration(inv, 1, "us3-cab1-ru1-r750");

    // The fields do not exist and the hook may not create them: registered
    // without them, said once.
    let nb = NetBox::connect(&inst.url, &inst.token).unwrap();
    let out = register(&nb, &reg, &create_missing()).unwrap();
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("custom field bmc_firmware does not exist")),
        "{:?}",
        out.notes
    );
    assert_eq!(
        get(&nb, "/api/extras/custom-fields/?name=bmc_firmware")["count"],
        0
    );
    let again = register(&nb, &reg, &create_missing()).unwrap();
    assert!(again.notes.is_empty(), "noted twice: {:?}", again.notes);
    assert_eq!(journal_count(&nb, out.device_id), 1);
    let entry = &get(
        &nb,
        &format!(
            "/api/extras/journal-entries/?assigned_object_id={}",
            out.device_id
        ),
    )["results"][0];
    let text = entry["comments"].as_str().unwrap_or("");
    assert!(
        text.contains(&reg.bmc_mac) && text.contains("created device us3-cab1-ru1-r750"),
        "{text}"
    );

    // Allowed to create them: created, set, and a journal entry says so.
    let create = Options {
        custom_fields: CustomFields::Create,
        ..create_missing()
    };
    let out = register(&nb, &reg, &create).unwrap();
    assert_eq!(
        get(&nb, "/api/extras/custom-fields/?name=bmc_firmware")["count"],
        1
    );
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    let cf = &dev["custom_fields"];
    assert_eq!(
        cf["bmc_firmware"].as_str(),
        inv.bmc.firmware_version.as_deref()
    );
    assert_eq!(cf["bmc_bios_version"].as_str(), inv.bios_version.as_deref());
    assert_eq!(cf["bmc_discovery_state"], "registered");
    assert_eq!(journal_count(&nb, out.device_id), 2);
    // Unchanged: no writes, no journal entry.
    assert_rerun_writes_nothing(&nb, &reg, &create);
    assert_eq!(journal_count(&nb, out.device_id), 2);

    // A firmware update: one field patched, one journal entry.
    let mut updated = inv.clone();
    updated.bmc.firmware_version = Some("7.99.99.99".into());
    let reg2 = registration(&updated, 1, "us3-cab1-ru1-r750");
    let before = nb.writes();
    let out = register(&nb, &reg2, &create).unwrap();
    assert_eq!(
        out.changes,
        vec!["updated device us3-cab1-ru1-r750: bmc_firmware".to_string()]
    );
    assert_eq!(nb.writes() - before, 2);
    assert_eq!(journal_count(&nb, out.device_id), 3);

    // Dry run: the change is planned, NetBox keeps the old value.
    let mut dry = NetBox::connect(&inst.url, &inst.token).unwrap();
    dry.set_dry_run(true);
    let planned = register(&dry, &registration(inv, 1, "us3-cab1-ru1-r750"), &create).unwrap();
    assert!(planned.dry_run);
    assert_eq!(
        planned.changes,
        vec!["updated device us3-cab1-ru1-r750: bmc_firmware".to_string()]
    );
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["custom_fields"]["bmc_firmware"], "7.99.99.99");
    assert_eq!(journal_count(&nb, out.device_id), 3);

    // Dry run of a new server in a new site: every create planned, none made.
    let other = model(&invs, "hpe-ilo6-dl380agen11");
    let planned = register(&dry, &registration(other, 2, "fra9-r1-ru3-ilo"), &create).unwrap();
    for what in [
        "created site fra9",
        "created rack r1 in fra9",
        "created device fra9-r1-ru3-ilo",
        "created interface bmc",
        "created IP address",
    ] {
        assert!(
            planned.changes.iter().any(|c| c.starts_with(what)),
            "{what}: {:?}",
            planned.changes
        );
    }
    assert_eq!(get(&nb, "/api/dcim/sites/?slug=fra9")["count"], 0);
    let serial = other.serial_number.clone().unwrap();
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/?serial={serial}"))["count"],
        0
    );
}

#[test]
fn remembered_objects_deleted_in_netbox_are_read_again() {
    let invs = inventories();
    let (_guard, _, nb) = empty_netbox();
    let first = register(
        &nb,
        &registration(&invs[0].1, 1, "us3-cab1-ru1-a"),
        &create_missing(),
    )
    .unwrap();
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", first.device_id));
    let old_rack = dev["rack"]["id"].as_u64().unwrap();
    // Someone removes the server and its rack; the client still remembers
    // the rack.
    nb.delete(&format!("/api/dcim/devices/{}/", first.device_id))
        .unwrap();
    nb.delete(&format!("/api/dcim/racks/{old_rack}/")).unwrap();
    let reads = nb.reads();
    let out = register(
        &nb,
        &registration(&invs[1].1, 2, "us3-cab1-ru3-b"),
        &create_missing(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["rack"]["name"], "cab1");
    assert_ne!(dev["rack"]["id"].as_u64(), Some(old_rack));
    assert!(
        out.changes
            .iter()
            .any(|c| c.starts_with("created rack cab1")),
        "{:?}",
        out.changes
    );
    assert!(nb.reads() > reads);
}

/// Everything NetBox holds on a device: the device, its interfaces, their
/// MAC and IP objects, its journal. `last_updated` is in each, so any
/// write shows.
fn snapshot(nb: &NetBox, device_id: ObjectId) -> Value {
    let ifaces = nb
        .list(&format!("/api/dcim/interfaces/?device_id={device_id}"))
        .unwrap();
    let mut macs = Vec::new();
    let mut ips = Vec::new();
    for i in &ifaces {
        let id = i["id"].as_u64().unwrap();
        macs.extend(
            nb.list(&format!("/api/dcim/mac-addresses/?interface_id={id}"))
                .unwrap(),
        );
        ips.extend(
            nb.list(&format!("/api/ipam/ip-addresses/?interface_id={id}"))
                .unwrap(),
        );
    }
    assert!(!macs.is_empty() && !ips.is_empty(), "{ifaces:?}");
    json!({
        "device": get(nb, &format!("/api/dcim/devices/{device_id}/")),
        "interfaces": ifaces, "macs": macs, "ips": ips,
        "journal": journal_count(nb, device_id),
    })
}

#[test]
fn takeover_attempts_leave_the_victim_untouched() {
    let invs = inventories();
    let inv = model(&invs, "dell-idrac9-r750");
    let (_guard, _, nb) = empty_netbox();
    let victim = registration(inv, 1, "fra1-r7-ru12-idrac");
    let first = register(&nb, &victim, &create_missing()).unwrap();
    let before = snapshot(&nb, first.device_id);
    let live = |mac: &str| {
        (mac == victim.bmc_mac).then(|| "its lease was seen 60 s ago, less than 172800 s".into())
    };

    // A rogue reporting the victim's serial (service tag), another name.
    let mut rogue = registration(inv, 2, "fra1-r7-ru30-rogue");
    rogue.bmc_mac = "02:66:66:66:66:01".into();
    rogue.identity = Identity {
        in_use: &live,
        replace_bmc: false,
    };
    let writes = nb.writes();
    let e = register(&nb, &rogue, &create_missing()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    assert!(
        text.contains(&victim.bmc_mac) && text.contains("fra1-r7-ru12-idrac"),
        "{text}"
    );
    // Nothing shows the victim's lease is gone (no state file record):
    // the same conflict.
    rogue.identity = Identity::default();
    let e = register(&nb, &rogue, &create_missing()).unwrap_err();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    assert_eq!(nb.writes(), writes, "the rogue wrote");
    assert_eq!(snapshot(&nb, first.device_id), before);

    // A rogue with no serial asking for the victim's name: no match by
    // name alone.
    let mut anon = inv.clone();
    anon.serial_number = None;
    let mut named = registration(&anon, 3, "fra1-r7-ru12-idrac");
    named.bmc_mac = "02:66:66:66:66:02".into();
    named.identity = Identity {
        in_use: &gone,
        replace_bmc: false,
    };
    let e = register(&nb, &named, &create_missing()).unwrap_err();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("no serial"), "{e}");
    assert_eq!(nb.writes(), writes, "the nameless rogue wrote");
    assert_eq!(snapshot(&nb, first.device_id), before);

    // A device the hook does not own (no tag) with a server's serial:
    // never updated, even when its serial matches.
    let other = model(&invs, "lenovo-xcc-sr670v2");
    let serial = other.serial_number.clone().unwrap();
    let dev = &before["device"];
    let manual = nb
        .post(
            "/api/dcim/devices/",
            &json!({"name": "hand-made", "serial": serial, "site": dev["site"]["id"],
                    "role": dev["role"]["id"], "device_type": dev["device_type"]["id"]}),
        )
        .unwrap();
    let manual_id = manual["id"].as_u64().unwrap();
    let manual_before = get(&nb, &format!("/api/dcim/devices/{manual_id}/"));
    let claim = registration(other, 4, "fra1-r7-ru20-xcc");
    let e = register(&nb, &claim, &create_missing()).unwrap_err();
    assert!(
        matches!(e, RegisterError::Refused(_)) && e.to_string().contains("tag"),
        "{e}"
    );
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/{manual_id}/")),
        manual_before
    );
    assert_eq!(journal_count(&nb, manual_id), 0);

    // The operator says the rogue is the replacement (bmc-retry with
    // replace-bmc): accepted, the old BMC's objects go.
    rogue.identity = Identity {
        in_use: &live,
        replace_bmc: true,
    };
    let out = register(&nb, &rogue, &create_missing()).unwrap();
    assert_eq!(out.device_id, first.device_id);
    assert_bmc_mac_replaced(&nb, out.device_id, &rogue.bmc_mac, &victim.bmc_mac);
    // Now found by its own MAC: a re-run, without the flag, writes nothing.
    rogue.identity = Identity::default();
    assert_rerun_writes_nothing(&nb, &rogue, &create_missing());
}

#[test]
fn host_ports_follow_the_inventory_and_leave_peoples_interfaces_alone() {
    let invs = inventories();
    let inv = model(&invs, "hpe-ilo5-dl360gen10plus");
    let (_guard, _, nb) = empty_netbox();
    let reg = registration(inv, 1, "us3-cab2-ru5-dl360");
    let first = register(&nb, &reg, &create_missing()).unwrap();
    let dev = first.device_id;
    let ifaces = |nb: &NetBox| {
        nb.list(&format!("/api/dcim/interfaces/?device_id={dev}&limit=1000"))
            .unwrap()
    };
    assert_host_ports(&nb, "dl360", inv, &ifaces(&nb));
    // The bonded port of the capture: its own MAC, the LLDP neighbour and
    // the PXE mark in NetBox.
    let bonded = ifaces(&nb)
        .into_iter()
        .find(|i| i["name"] == "NIC.Slot.1.1-2")
        .unwrap();
    let d = bonded["description"].as_str().unwrap();
    assert!(
        d.contains("PXE boot") && d.contains("LLDP 90:20:c2:c7:22:00 port 1/1/1:4"),
        "{d}"
    );
    assert_eq!(bonded["type"]["value"], "25gbase-x-sfp28");
    // Someone's own interface on the device, and one named like a port.
    let tag_free = |name: &str| {
        nb.post(
            "/api/dcim/interfaces/",
            &json!({"device": dev, "name": name, "type": "1000base-t"}),
        )
        .unwrap()
    };
    let manual = tag_free("mgmt-switch-uplink");
    tag_free("ens9f0");

    // The NIC of port 2 replaced, the 4th OCP port gone, PXE off on port 1,
    // a port named like the person's interface.
    let mut changed = inv.clone();
    let old_mac = "88:e9:a4:6b:a8:ad";
    for p in &mut changed.host_ports {
        if p.name == "NIC.Slot.1.1-2" {
            p.mac = Some("02:00:00:aa:bb:02".into());
        }
        if p.name == "NIC.Slot.1.1-1" {
            p.pxe = false;
        }
    }
    changed.host_ports.retain(|p| p.name != "OCP.Slot.10.1-4");
    let mut theirs = changed.host_ports[0].clone();
    theirs.name = "ens9f0".into();
    theirs.mac = Some("02:00:00:aa:bb:09".into());
    changed.host_ports.push(theirs);
    let reg2 = registration(&changed, 1, "us3-cab2-ru5-dl360");
    let before = nb.writes();
    let out = register(&nb, &reg2, &create_missing()).unwrap();
    assert!(
        nb.writes() - before <= 6,
        "{} writes: {:?}",
        nb.writes() - before,
        out.changes
    );
    assert!(
        out.notes.iter().any(|n| n.contains("ens9f0")),
        "{:?}",
        out.notes
    );
    let now = ifaces(&nb);
    let names: Vec<&str> = now.iter().filter_map(|i| i["name"].as_str()).collect();
    assert!(!names.contains(&"OCP.Slot.10.1-4"), "{names:?}");
    assert!(names.contains(&"mgmt-switch-uplink") && names.contains(&"ens9f0"));
    let by = |n: &str| now.iter().find(|i| i["name"] == n).unwrap().clone();
    assert_eq!(
        by("NIC.Slot.1.1-2")["primary_mac_address"]["mac_address"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("02:00:00:aa:bb:02")
    );
    assert_eq!(
        get(
            &nb,
            &format!("/api/dcim/mac-addresses/?mac_address={old_mac}")
        )["count"],
        0,
        "the replaced NIC's MAC is gone"
    );
    assert_eq!(
        get(
            &nb,
            "/api/dcim/mac-addresses/?mac_address=50:7c:6f:13:90:99"
        )["count"],
        0,
        "the removed port's MAC went with its interface"
    );
    let pxe_tagged = |i: &Value| {
        i["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["slug"] == "bmc-discovery-pxe")
    };
    assert!(!pxe_tagged(&by("NIC.Slot.1.1-1")), "PXE tag taken off");
    assert!(pxe_tagged(&by("NIC.Slot.1.1-2")));
    // People's interfaces untouched.
    for name in ["mgmt-switch-uplink", "ens9f0"] {
        let i = by(name);
        assert_eq!(i["tags"], json!([]), "{name}");
        if name == "mgmt-switch-uplink" {
            assert_eq!(i["last_updated"], manual["last_updated"], "{name} written");
        }
    }
    assert!(by("ens9f0")["primary_mac_address"].is_null());
    assert_rerun_writes_nothing(&nb, &reg2, &create_missing());
}

/// The interface at the far end of the device's host interface `port`'s
/// cable: (device name, interface name), and whether the cable carries
/// the hook's tag.
fn cabled_to(nb: &NetBox, device: ObjectId, port: &str) -> Option<(String, String, bool)> {
    let i = &get(
        nb,
        &format!("/api/dcim/interfaces/?device_id={device}&name={port}"),
    )["results"][0];
    let peers = i["link_peers"].as_array()?;
    assert!(peers.len() <= 1, "{port}: {peers:?}");
    let p = peers.first()?;
    let cable = get(nb, &format!("/api/dcim/cables/{}/", i["cable"]["id"]));
    let tagged = cable["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["slug"] == "bmc-discovery");
    Some((
        p["device"]["name"].as_str()?.to_string(),
        p["name"].as_str()?.to_string(),
        tagged,
    ))
}

fn cable_count(nb: &NetBox) -> u64 {
    get(nb, "/api/dcim/cables/?limit=1")["count"]
        .as_u64()
        .unwrap()
}

fn warnings_in_journal(nb: &NetBox, device: ObjectId) -> u64 {
    get(
        nb,
        &format!(
            "/api/extras/journal-entries/?assigned_object_type=dcim.device&assigned_object_id={device}&kind=warning"
        ),
    )["count"]
        .as_u64()
        .unwrap()
}

/// The HPE DL360 and DL365 Gen10 Plus captures' real Aruba neighbours
/// (chassis MAC, hex IfName port ids): cabled where NetBox has the switch
/// and its port, reported (never forced) where it has not.
#[test]
fn lldp_neighbours_become_cables_and_what_is_missing_is_reported() {
    let invs = inventories();
    let dl360 = model(&invs, "hpe-ilo5-dl360gen10plus");
    let dl365 = model(&invs, "hpe-ilo5-dl365gen10plus");
    let heard = |inv: &Inventory| {
        inv.host_ports
            .iter()
            .filter_map(|p| {
                let n = p.lldp.as_ref()?;
                Some((
                    p.name.clone(),
                    n.chassis_id.clone().unwrap(),
                    n.port_id.clone().unwrap(),
                ))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        heard(dl360),
        [
            (
                "NIC.Slot.1.1-1".to_string(),
                "bc:d7:a5:72:f4:00".to_string(),
                "1/1/1:4".to_string()
            ),
            (
                "NIC.Slot.1.1-2".to_string(),
                "90:20:c2:c7:22:00".to_string(),
                "1/1/1:4".to_string()
            ),
        ]
    );
    assert_eq!(heard(dl365).len(), 2);
    let (_guard, _, nb) = empty_netbox();
    let opts = create_missing();

    // No switch in NetBox: nothing cabled, each neighbour reported once.
    let reg360 = registration(dl360, 1, "us3-cab2-ru5-dl360");
    let out = register_measured(&nb, &reg360, &opts, "dl360 fresh, no switch in NetBox");
    let dev360 = out.device_id;
    assert_eq!(cable_count(&nb), 0);
    let reasons: Vec<(&str, &str)> = out
        .lldp_unmatched
        .iter()
        .map(|u| (u.port.as_str(), u.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("NIC.Slot.1.1-1", "switch-unknown"),
            ("NIC.Slot.1.1-2", "switch-unknown")
        ]
    );
    assert!(
        out.lldp_unmatched[0]
            .detail
            .contains("an interface with MAC bc:d7:a5:72:f4:00, then the IP address 196.168.4.1"),
        "{}",
        out.lldp_unmatched[0].detail
    );
    assert!(out.notes.iter().any(|n| n.contains("not cabled")));
    assert_eq!(warnings_in_journal(&nb, dev360), 1);
    let (w, r) = (nb.writes(), nb.reads());
    let again = register(&nb, &reg360, &opts).unwrap();
    assert_eq!(nb.writes(), w, "a re-run wrote: {:?}", again.changes);
    assert_eq!(again.lldp_unmatched, out.lldp_unmatched);
    assert_eq!(warnings_in_journal(&nb, dev360), 1, "journalled once");
    eprintln!(
        "dl360 re-run, no switch in NetBox: 0 writes {} reads",
        nb.reads() - r
    );

    // The switches, as the captures name them.
    let a = switch(
        &nb,
        "sw-a",
        "us3",
        Some("cab2"),
        "bc:d7:a5:72:f4:00",
        &["1/1/1:4", "1/1/1:5", "1/1/1:7"],
    );
    switch(
        &nb,
        "sw-b",
        "us3",
        Some("cab2"),
        "90:20:c2:c7:22:00",
        &["1/1/1:4"],
    );
    switch(
        &nb,
        "sw-c",
        "us3",
        Some("cab3"),
        "18:7a:3b:4b:92:00",
        &["1/1/1:2"],
    );
    switch(
        &nb,
        "sw-d",
        "us3",
        Some("cab3"),
        "90:20:c2:c9:55:00",
        &["1/1/1:2"],
    );

    // A fresh DL365 with its switches there: one cable per neighbour.
    let reg365 = registration(dl365, 2, "us3-cab3-ru7-dl365");
    let out = register_measured(&nb, &reg365, &opts, "dl365 fresh, switches in NetBox");
    assert!(out.lldp_unmatched.is_empty(), "{:?}", out.lldp_unmatched);
    for (port, chassis, sw_port) in heard(dl365) {
        let sw = if chassis == "18:7a:3b:4b:92:00" {
            "sw-c"
        } else {
            "sw-d"
        };
        assert_eq!(
            cabled_to(&nb, out.device_id, &port),
            Some((sw.to_string(), sw_port, true)),
            "{port}"
        );
    }
    assert_eq!(cable_count(&nb), 2);
    let (w, r) = (nb.writes(), nb.reads());
    assert_rerun_writes_nothing(&nb, &reg365, &opts);
    eprintln!(
        "dl365 re-run, cabled: {} writes {} reads",
        nb.writes() - w,
        nb.reads() - r
    );

    // The DL360 again, now that its switches are there: cabled, and the
    // warning is not repeated.
    let out = register_measured(&nb, &reg360, &opts, "dl360 once its switches exist");
    assert!(out.lldp_unmatched.is_empty());
    assert_eq!(
        cabled_to(&nb, dev360, "NIC.Slot.1.1-1"),
        Some(("sw-a".into(), "1/1/1:4".into(), true))
    );
    assert_eq!(
        cabled_to(&nb, dev360, "NIC.Slot.1.1-2"),
        Some(("sw-b".into(), "1/1/1:4".into(), true))
    );
    assert_eq!(cable_count(&nb), 4);
    assert_eq!(warnings_in_journal(&nb, dev360), 1);
    assert_rerun_writes_nothing(&nb, &reg360, &opts);

    // Recabled to a free port of the same switch: the hook's cable moves.
    let mut moved = dl360.clone();
    let lldp_of = |inv: &mut Inventory, port: &str, to: &str| {
        let p = inv.host_ports.iter_mut().find(|p| p.name == port).unwrap();
        p.lldp.as_mut().unwrap().port_id = Some(to.to_string());
    };
    lldp_of(&mut moved, "NIC.Slot.1.1-1", "1/1/1:5");
    let reg = registration(&moved, 1, "us3-cab2-ru5-dl360");
    let w = nb.writes();
    let out = register(&nb, &reg, &opts).unwrap();
    assert_eq!(
        nb.writes() - w,
        4,
        "description (it names the neighbour), cable removed, cable created, journal: {:?}",
        out.changes
    );
    assert_eq!(
        cabled_to(&nb, dev360, "NIC.Slot.1.1-1"),
        Some(("sw-a".into(), "1/1/1:5".into(), true))
    );
    assert_eq!(cable_count(&nb), 4);
    assert_rerun_writes_nothing(&nb, &reg, &opts);

    // A port someone cabled by hand (to a patch panel), and a port the
    // switch lacks: both reported, neither forced; the hook's cable stays.
    let panel = switch(
        &nb,
        "patch-1",
        "us3",
        Some("cab2"),
        "02:00:00:00:99:01",
        &["p7"],
    );
    let hand = nb
        .post(
            "/api/dcim/cables/",
            &json!({"a_terminations": [{"object_type": "dcim.interface", "object_id": a["1/1/1:7"]}],
                    "b_terminations": [{"object_type": "dcim.interface", "object_id": panel["p7"]}],
                    "status": "connected"}),
        )
        .unwrap();
    let mut taken = moved.clone();
    lldp_of(&mut taken, "NIC.Slot.1.1-1", "1/1/1:7");
    lldp_of(&mut taken, "NIC.Slot.1.1-2", "1/1/1:9");
    let reg = registration(&taken, 1, "us3-cab2-ru5-dl360");
    let w = nb.writes();
    let out = register(&nb, &reg, &opts).unwrap();
    let reasons: Vec<(&str, &str)> = out
        .lldp_unmatched
        .iter()
        .map(|u| (u.port.as_str(), u.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("NIC.Slot.1.1-1", "port-taken"),
            ("NIC.Slot.1.1-2", "port-unknown")
        ]
    );
    assert_eq!(
        nb.writes() - w,
        3,
        "descriptions (one bulk PATCH), their journal entry, the warning; no cable: {:?}",
        out.changes
    );
    assert_eq!(warnings_in_journal(&nb, dev360), 2);
    let hand_now = get(&nb, &format!("/api/dcim/cables/{}/", hand["id"]));
    assert_eq!(hand_now["last_updated"], hand["last_updated"]);
    assert_eq!(
        cabled_to(&nb, dev360, "NIC.Slot.1.1-1"),
        Some(("sw-a".into(), "1/1/1:5".into(), true)),
        "the hook's cable is not moved onto a taken port"
    );
    let w = nb.writes();
    let again = register(&nb, &reg, &opts).unwrap();
    assert_eq!(nb.writes(), w, "{:?}", again.changes);
    assert_eq!(warnings_in_journal(&nb, dev360), 2, "journalled once");
}

/// `placement-from-switch`: a DL360 whose hostname names no rack lands
/// in its switches' site and rack when asked, and stays unplaced when not.
#[test]
fn placement_from_switch_takes_the_switch_rack_only_when_asked() {
    let invs = inventories();
    let dl360 = model(&invs, "hpe-ilo5-dl360gen10plus");
    let (_guard, _, nb) = empty_netbox();
    switch(
        &nb,
        "sw-a",
        "fra1",
        Some("r12"),
        "bc:d7:a5:72:f4:00",
        &["1/1/1:4"],
    );
    switch(
        &nb,
        "sw-b",
        "fra1",
        Some("r12"),
        "90:20:c2:c7:22:00",
        &["1/1/1:4"],
    );
    let pattern = PlacementPattern::default_pattern();
    let lease = |site: Option<&'static str>| {
        Registration::for_lease(
            dl360,
            "02:00:00:00:03:01",
            Ipv4Addr::new(10, 40, 0, 11),
            24,
            Some("dl360web7"),
            site,
            &pattern,
            false,
        )
    };
    let off = create_missing();
    let on = Options {
        placement_from_switch: true,
        ..create_missing()
    };
    let out = register_measured(
        &nb,
        &lease(Some("fra1")),
        &off,
        "dl360 fresh, switches in NetBox",
    );
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["site"]["slug"], "fra1");
    assert!(dev["rack"].is_null(), "off: unplaced");
    assert_eq!(out.placement.rack, None);

    // On: the same server (found by its MAC) moves into the switches'
    // rack, without a unit.
    let out = register_measured(&nb, &lease(Some("fra1")), &on, "placement-from-switch on");
    let dev = get(&nb, &format!("/api/dcim/devices/{}/", out.device_id));
    assert_eq!(dev["rack"]["name"], "r12");
    assert_eq!(dev["site"]["slug"], "fra1");
    assert!(dev["position"].is_null());
    assert_eq!(out.placement.rack.as_deref(), Some("r12"));
    assert_eq!(out.placement.site.as_deref(), Some("fra1"));
    assert_rerun_writes_nothing(&nb, &lease(Some("fra1")), &on);
    // With no site from hostname or subnet it is registrable at all only
    // by its switches.
    let e = register(&nb, &lease(None), &off).unwrap_err();
    assert!(e.to_string().contains("no site"), "{e}");
    let out = register(&nb, &lease(None), &on).unwrap();
    assert_eq!(out.placement.rack.as_deref(), Some("r12"));
    // A subnet site the switches are not in wins: the rack is not taken.
    let out = register(&nb, &lease(Some("us3")), &on).unwrap();
    assert_eq!(out.placement.rack, None);
    assert!(
        out.notes.iter().any(|n| n.contains("the site named wins")),
        "{:?}",
        out.notes
    );
}
