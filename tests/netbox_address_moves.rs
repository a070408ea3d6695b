//! The leased address, or the BMC's MAC, that NetBox still has on another
//! device (a pool handed an expired lease to another server, a server
//! moved, a BMC card moved between servers), against the real NetBox from
//! ../shared/netbox: moved with journal entries on both devices, or with
//! `netbox.address-moves: "conflict"` a conflict naming the other device.
//! Servers are real discoveries of the emulator (two instances of one
//! model: their own serials and MACs).

use std::net::Ipv4Addr;
use std::time::Duration;

use bmc_test_support::emulator;
use bmc_test_support::netbox::{empty_netbox, get};
use dhcp_bmc_discovery::netbox::{
    register, AddressMoves, NetBox, ObjectId, OobIpFamily, Options, Outcome, RegisterError,
    Registration,
};
use dhcp_bmc_discovery::placement::PlacementPattern;
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Inventory, Limits, Target, TlsPolicy};
use serde_json::{json, Value};

const MODEL: &str = "dell-idrac9-r750";

/// Instances 0..n of one model, discovered through the emulator.
fn servers(n: u32) -> Vec<Inventory> {
    let emu = emulator::Emulator::start(0);
    let d = Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("root", "calvin"),
        Limits::default(),
        Duration::from_secs(60),
    );
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::new(127, 51, 0, i as u8 + 1);
            emu.add(addr, MODEL, i, "root", "calvin");
            d.discover(&Target::new(&addr.to_string(), emu.port))
                .unwrap_or_else(|e| panic!("{MODEL} #{i}: {e}"))
                .inventory
        })
        .collect()
}

/// The lease of `inv`'s BMC (its own MAC) at `ip`, named `host`.
fn lease<'a>(inv: &'a Inventory, ip: impl Into<std::net::IpAddr>, host: &str) -> Registration<'a> {
    let mac = inv
        .bmc
        .mac
        .clone()
        .expect("the mockup reports the BMC's MAC");
    Registration::for_lease(
        inv,
        &mac,
        ip,
        24,
        Some(host),
        None,
        &PlacementPattern::default_pattern(),
        false,
    )
}

fn options(moves: AddressMoves) -> Options {
    Options {
        create_missing: true,
        address_moves: moves,
        ..Options::default()
    }
}

fn device(nb: &NetBox, id: ObjectId) -> Value {
    get(nb, &format!("/api/dcim/devices/{id}/"))
}

/// The device's BMC interface.
fn bmc_iface(nb: &NetBox, id: ObjectId) -> Value {
    let page = get(
        nb,
        &format!("/api/dcim/interfaces/?device_id={id}&name=bmc"),
    );
    assert_eq!(page["count"], 1, "{page}");
    page["results"][0].clone()
}

/// Addresses (`ip/len`) and MACs (lower case) assigned to the device's
/// BMC interface.
fn on_bmc_iface(nb: &NetBox, id: ObjectId) -> (Vec<String>, Vec<String>) {
    let iface = bmc_iface(nb, id)["id"].as_u64().unwrap();
    let field = |path: &str, key: &str| -> Vec<String> {
        nb.list(&format!("{path}?interface_id={iface}"))
            .unwrap()
            .iter()
            .filter(|o| o["assigned_object_id"].as_u64() == Some(iface))
            .map(|o| o[key].as_str().unwrap_or("").to_lowercase())
            .collect()
    };
    (
        field("/api/ipam/ip-addresses/", "address"),
        field("/api/dcim/mac-addresses/", "mac_address"),
    )
}

fn journal(nb: &NetBox, id: ObjectId) -> Vec<String> {
    nb.list(&format!(
        "/api/extras/journal-entries/?assigned_object_type=dcim.device&assigned_object_id={id}"
    ))
    .unwrap()
    .iter()
    .map(|e| e["comments"].as_str().unwrap_or("").to_string())
    .collect()
}

#[track_caller]
fn registered(nb: &NetBox, reg: &Registration, opts: &Options) -> (Outcome, u64) {
    let before = nb.writes();
    let out = register(nb, reg, opts).unwrap_or_else(|e| panic!("{}: {e}", reg.name));
    (out, nb.writes() - before)
}

#[track_caller]
fn assert_rerun_writes_nothing(nb: &NetBox, reg: &Registration, opts: &Options) {
    let (out, writes) = registered(nb, reg, opts);
    assert!(out.changes.is_empty(), "{}: {:?}", reg.name, out.changes);
    assert_eq!(writes, 0, "{}: a re-run wrote", reg.name);
}

#[test]
fn an_address_leased_again_moves_to_the_bmc_that_holds_it_now() {
    let invs = servers(3);
    let (_guard, _, nb) = empty_netbox();
    let x = Ipv4Addr::new(10, 51, 0, 20);
    let opts = options(AddressMoves::Move);
    // A third server first, so that the site, rack, model and role exist
    // and the writes counted below are the servers' own.
    registered(
        &nb,
        &lease(&invs[2], Ipv4Addr::new(10, 51, 0, 99), "us3-cab1-ru40-c"),
        &opts,
    );
    let a = lease(&invs[0], x, "us3-cab1-ru1-a");
    let (a_out, a_writes) = registered(&nb, &a, &opts);
    assert_eq!(
        device(&nb, a_out.device_id)["oob_ip"]["address"],
        "10.51.0.20/24"
    );

    // A's lease expired; the pool hands X to B's BMC.
    let b = lease(&invs[1], x, "us3-cab1-ru3-b");
    assert_ne!(a.bmc_mac, b.bmc_mac);
    assert_ne!(invs[0].serial_number, invs[1].serial_number);
    let (b_out, b_writes) = registered(&nb, &b, &opts);
    assert_ne!(b_out.device_id, a_out.device_id);
    eprintln!(
        "fresh server: {a_writes} writes; fresh server whose address moved from another: \
         {b_writes} writes: {:?}",
        b_out.changes
    );
    // Instead of creating the IP it is patched; A's oob_ip cleared and A's
    // journal entry are the move's own.
    assert_eq!(b_writes, a_writes + 2, "{:?}", b_out.changes);
    assert_eq!(
        device(&nb, b_out.device_id)["oob_ip"]["address"],
        "10.51.0.20/24"
    );
    let a_dev = device(&nb, a_out.device_id);
    assert!(a_dev["oob_ip"].is_null(), "{}", a_dev["oob_ip"]);
    assert_eq!(a_dev["serial"].as_str(), invs[0].serial_number.as_deref());
    assert_eq!(
        on_bmc_iface(&nb, a_out.device_id),
        (vec![], vec![a.bmc_mac.clone()])
    );
    assert_eq!(
        on_bmc_iface(&nb, b_out.device_id),
        (vec!["10.51.0.20/24".into()], vec![b.bmc_mac.clone()])
    );
    assert_eq!(
        get(&nb, "/api/ipam/ip-addresses/?address=10.51.0.20")["count"],
        1
    );

    // Both journals say where it went.
    let a_journal = journal(&nb, a_out.device_id);
    assert_eq!(a_journal.len(), 2, "{a_journal:?}");
    let moved = a_journal
        .iter()
        .find(|t| t.contains("moved to device"))
        .unwrap();
    for part in [
        "\"us3-cab1-ru3-b\"",
        &format!("(id {})", b_out.device_id),
        &b.bmc_mac,
        "IP address 10.51.0.20/24 from interface bmc (oob_ip cleared first)",
    ] {
        assert!(moved.contains(part), "{part} not in {moved}");
    }
    let b_journal = journal(&nb, b_out.device_id);
    assert_eq!(b_journal.len(), 1, "{b_journal:?}");
    let line = format!(
        "moved IP address 10.51.0.20/24 here from device \"us3-cab1-ru1-a\" (id {}), \
         interface bmc (its oob_ip there cleared)",
        a_out.device_id
    );
    assert!(
        b_journal[0].contains(&line),
        "{line} not in {}",
        b_journal[0]
    );

    assert_rerun_writes_nothing(&nb, &b, &opts);

    // A comes back with another lease.
    let a_back = lease(&invs[0], Ipv4Addr::new(10, 51, 0, 21), "us3-cab1-ru1-a");
    let (out, _) = registered(&nb, &a_back, &opts);
    assert_eq!(out.device_id, a_out.device_id);
    assert_eq!(
        device(&nb, a_out.device_id)["oob_ip"]["address"],
        "10.51.0.21/24"
    );
    assert_eq!(
        device(&nb, b_out.device_id)["oob_ip"]["address"],
        "10.51.0.20/24"
    );
    assert_rerun_writes_nothing(&nb, &a_back, &opts);
    assert_rerun_writes_nothing(&nb, &b, &opts);
}

#[test]
fn a_bmc_card_moved_to_another_server_takes_its_mac_along() {
    let invs = servers(4);
    let (_guard, _, nb) = empty_netbox();
    let opts = options(AddressMoves::Move);
    let a = lease(&invs[0], Ipv4Addr::new(10, 51, 0, 30), "us3-cab2-ru1-a");
    let (a_out, _) = registered(&nb, &a, &opts);
    let a_before = device(&nb, a_out.device_id);

    // A's BMC card is now in server B: B's serial, A's MAC, a new address.
    let mut b = lease(&invs[1], Ipv4Addr::new(10, 51, 0, 31), "us3-cab2-ru3-b");
    b.bmc_mac = a.bmc_mac.clone();
    let (b_out, b_writes) = registered(&nb, &b, &opts);
    eprintln!("MAC moved: {b_writes} writes: {:?}", b_out.changes);
    assert_ne!(
        b_out.device_id, a_out.device_id,
        "the serial names another server"
    );
    let b_dev = device(&nb, b_out.device_id);
    assert_eq!(b_dev["serial"].as_str(), invs[1].serial_number.as_deref());
    assert_eq!(
        bmc_iface(&nb, b_out.device_id)["primary_mac_address"]["mac_address"]
            .as_str()
            .map(str::to_lowercase),
        Some(a.bmc_mac.clone())
    );
    assert!(bmc_iface(&nb, a_out.device_id)["primary_mac_address"].is_null());
    assert_eq!(
        get(
            &nb,
            &format!("/api/dcim/mac-addresses/?mac_address={}", a.bmc_mac)
        )["count"],
        1,
        "moved, not copied"
    );
    // A's record is A's: only the MAC left it (its address is not B's).
    let a_dev = device(&nb, a_out.device_id);
    for field in ["name", "serial", "site", "rack", "position", "oob_ip"] {
        assert_eq!(a_dev[field], a_before[field], "{field}");
    }
    assert_eq!(
        on_bmc_iface(&nb, a_out.device_id),
        (vec!["10.51.0.30/24".into()], vec![])
    );
    let a_journal = journal(&nb, a_out.device_id);
    assert!(
        a_journal.iter().any(|t| t.contains(&format!(
            "MAC address {} from interface bmc (primary MAC cleared first)",
            a.bmc_mac
        ))),
        "{a_journal:?}"
    );
    let b_journal = journal(&nb, b_out.device_id);
    assert!(
        b_journal[0].contains(&format!(
            "moved MAC address {} here from device \"us3-cab2-ru1-a\"",
            a.bmc_mac
        )),
        "{b_journal:?}"
    );
    assert_rerun_writes_nothing(&nb, &b, &opts);

    // A card moved with its lease (the usual case: the DHCP server keeps
    // the address for the MAC): both move, one journal entry on C.
    let c = lease(&invs[2], Ipv4Addr::new(10, 51, 0, 40), "us3-cab2-ru5-c");
    let (c_out, fresh_writes) = registered(&nb, &c, &opts);
    // B cost what a fresh server of this model does once the site, model
    // and role exist (C's), the MAC patched instead of created, plus A's
    // primary MAC cleared and A's journal entry.
    assert_eq!(b_writes, fresh_writes + 2, "{:?}", b_out.changes);
    let mut d = lease(&invs[3], c.bmc_ip, "us3-cab2-ru7-d");
    d.bmc_mac = c.bmc_mac.clone();
    let (d_out, d_writes) = registered(&nb, &d, &opts);
    eprintln!(
        "MAC and address moved: {d_writes} writes: {:?}",
        d_out.changes
    );
    assert_eq!(
        on_bmc_iface(&nb, d_out.device_id),
        (vec!["10.51.0.40/24".into()], vec![c.bmc_mac.clone()])
    );
    assert_eq!(on_bmc_iface(&nb, c_out.device_id), (vec![], vec![]));
    let c_dev = device(&nb, c_out.device_id);
    assert!(c_dev["oob_ip"].is_null());
    let c_journal = journal(&nb, c_out.device_id);
    assert_eq!(c_journal.len(), 2, "{c_journal:?}");
    let moved = &c_journal
        .iter()
        .find(|t| t.contains("moved to device"))
        .unwrap();
    assert!(
        moved.contains("IP address 10.51.0.40/24") && moved.contains("MAC address"),
        "{moved}"
    );
    assert_rerun_writes_nothing(&nb, &d, &opts);
}

/// Everything NetBox holds on a device and its BMC interface, for
/// before/after comparisons (`last_updated` shows any write).
fn snapshot(nb: &NetBox, id: ObjectId) -> Value {
    let iface = bmc_iface(nb, id);
    let i = iface["id"].as_u64().unwrap();
    json!({
        "device": device(nb, id),
        "iface": iface,
        "macs": nb.list(&format!("/api/dcim/mac-addresses/?interface_id={i}")).unwrap(),
        "ips": nb.list(&format!("/api/ipam/ip-addresses/?interface_id={i}")).unwrap(),
        "journal": journal(nb, id),
    })
}

#[test]
fn with_moves_off_it_is_a_conflict_naming_the_other_device_and_a_dry_run_plans_the_move() {
    let invs = servers(2);
    let (_guard, inst, nb) = empty_netbox();
    let x = Ipv4Addr::new(10, 51, 0, 50);
    let conflict = options(AddressMoves::Conflict);
    let a = lease(&invs[0], x, "us3-cab3-ru1-a");
    let (a_out, _) = registered(&nb, &a, &conflict);
    let before = snapshot(&nb, a_out.device_id);

    // The address: a conflict, nothing written to either.
    let b = lease(&invs[1], x, "us3-cab3-ru3-b");
    let writes = nb.writes();
    let e = register(&nb, &b, &conflict).unwrap_err();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    let text = e.to_string();
    for part in [
        "address 10.51.0.50",
        "\"us3-cab3-ru1-a\"",
        &format!("(id {})", a_out.device_id),
        "netbox.address-moves",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    assert_eq!(nb.writes(), writes, "the conflict wrote");
    let serial = invs[1].serial_number.clone().unwrap();
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/?serial={serial}"))["count"],
        0
    );

    // The MAC (a card moved, with another address): a conflict too.
    let mut card = lease(&invs[1], Ipv4Addr::new(10, 51, 0, 51), "us3-cab3-ru3-b");
    card.bmc_mac = a.bmc_mac.clone();
    let e = register(&nb, &card, &conflict).unwrap_err();
    assert!(matches!(e, RegisterError::Conflict(_)), "{e}");
    assert!(
        e.to_string().contains("\"us3-cab3-ru1-a\"") && e.to_string().contains(&a.bmc_mac),
        "{e}"
    );
    assert_eq!(nb.writes(), writes, "the conflict wrote");
    assert_eq!(snapshot(&nb, a_out.device_id), before);

    // A dry run with moves on: the move is planned, nothing is sent.
    let mut dry = NetBox::connect(&inst.url, &inst.token).unwrap();
    dry.set_dry_run(true);
    let planned = register(&dry, &b, &options(AddressMoves::Move)).unwrap();
    assert!(planned.dry_run);
    assert!(
        planned.changes.iter().any(|c| c.starts_with(&format!(
            "moved IP address 10.51.0.50/24 here from device \"us3-cab3-ru1-a\" (id {})",
            a_out.device_id
        ))),
        "{:?}",
        planned.changes
    );
    assert_eq!(snapshot(&nb, a_out.device_id), before);
    assert_eq!(
        get(&nb, &format!("/api/dcim/devices/?serial={serial}"))["count"],
        0
    );

    // Then for real.
    let (out, _) = registered(&nb, &b, &options(AddressMoves::Move));
    assert_eq!(
        device(&nb, out.device_id)["oob_ip"]["address"],
        "10.51.0.50/24"
    );
    assert!(device(&nb, a_out.device_id)["oob_ip"].is_null());
}

#[test]
fn a_moved_object_someone_made_keeps_its_fields_and_is_never_removed() {
    let invs = servers(2);
    let (_guard, _, nb) = empty_netbox();
    let opts = options(AddressMoves::Move);
    // A person's server, not the hook's: its own interface, a MAC-less
    // address with a description and a tag of theirs, set as its oob_ip.
    let c = lease(&invs[1], Ipv4Addr::new(10, 51, 0, 98), "us3-cab4-ru40-c");
    let (c_out, _) = registered(&nb, &c, &opts);
    let c_dev = device(&nb, c_out.device_id);
    let hand = nb
        .post(
            "/api/dcim/devices/",
            &json!({"name": "hand-made", "site": c_dev["site"]["id"],
                    "role": c_dev["role"]["id"], "device_type": c_dev["device_type"]["id"]}),
        )
        .unwrap();
    let hand_id = ObjectId::of(&hand).unwrap();
    let iface = nb
        .post(
            "/api/dcim/interfaces/",
            &json!({"device": hand_id, "name": "ipmi", "type": "1000base-t"}),
        )
        .unwrap();
    let theirs = nb
        .post(
            "/api/extras/tags/",
            &json!({"name": "theirs", "slug": "theirs"}),
        )
        .unwrap();
    let ip = nb
        .post(
            "/api/ipam/ip-addresses/",
            &json!({"address": "10.51.0.60/24", "assigned_object_type": "dcim.interface",
                    "assigned_object_id": iface["id"], "description": "Ana's",
                    "tags": [theirs["id"]]}),
        )
        .unwrap();
    nb.patch(
        &format!("/api/dcim/devices/{hand_id}/"),
        &json!({"oob_ip": ip["id"], "primary_ip4": ip["id"]}),
    )
    .unwrap();

    let a = lease(&invs[0], Ipv4Addr::new(10, 51, 0, 60), "us3-cab4-ru1-a");
    let (a_out, _) = registered(&nb, &a, &opts);
    let moved = get(&nb, &format!("/api/ipam/ip-addresses/{}/", ip["id"]));
    assert_eq!(moved["description"], "Ana's");
    let tags: Vec<&str> = moved["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["slug"].as_str())
        .collect();
    assert_eq!(tags, ["theirs"], "not made the hook's");
    assert_eq!(device(&nb, a_out.device_id)["oob_ip"]["id"], ip["id"]);
    let hand = device(&nb, hand_id);
    assert!(
        hand["oob_ip"].is_null() && hand["primary_ip4"].is_null(),
        "{hand}"
    );
    assert!(journal(&nb, hand_id)[0].contains("oob_ip, primary_ip4 cleared first"));
    assert_rerun_writes_nothing(&nb, &a, &opts);

    // A's BMC gets another address: the hook's old one would go; this one
    // is Ana's, and stays (on A's interface, no longer its oob_ip).
    let a2 = lease(&invs[0], Ipv4Addr::new(10, 51, 0, 61), "us3-cab4-ru1-a");
    registered(&nb, &a2, &opts);
    assert_eq!(
        get(&nb, &format!("/api/ipam/ip-addresses/{}/", ip["id"]))["description"],
        "Ana's"
    );
    assert_eq!(
        device(&nb, a_out.device_id)["oob_ip"]["address"],
        "10.51.0.61/24"
    );
    assert_rerun_writes_nothing(&nb, &a2, &opts);
}

/// A dual-stack BMC registered by kea-dhcp4's hook and by kea-dhcp6's: one
/// device with both addresses, `oob_ip` by `oob_ip_family` in either
/// order; when its IPv6 address moves to another server it keeps the IPv4
/// one, which becomes its `oob_ip`.
#[test]
fn a_dual_stack_bmc_keeps_its_other_address_when_one_moves() {
    let invs = servers(2);
    let (_guard, _, nb) = empty_netbox();
    let opts = Options {
        oob_ip_family: OobIpFamily::Ipv6,
        ..options(AddressMoves::Move)
    };
    let v4 = Ipv4Addr::new(10, 91, 0, 20);
    let v6: std::net::Ipv6Addr = "fd00:91:5::20".parse().unwrap();
    let a4 = lease(&invs[0], v4, "us3-cab1-ru1-a");
    let mut a6 = lease(&invs[0], v6, "us3-cab1-ru1-a");
    a6.prefix_len = 64;
    // IPv6 preferred, IPv4 registered first: its address is oob_ip until
    // the IPv6 one comes.
    let (a_out, _) = registered(&nb, &a4, &opts);
    assert_eq!(
        device(&nb, a_out.device_id)["oob_ip"]["address"],
        "10.91.0.20/24"
    );
    let (out, _) = registered(&nb, &a6, &opts);
    assert_eq!(out.device_id, a_out.device_id, "one device");
    let mut addrs = on_bmc_iface(&nb, a_out.device_id);
    addrs.0.sort();
    assert_eq!(
        addrs,
        (
            vec!["10.91.0.20/24".into(), "fd00:91:5::20/64".into()],
            vec![a4.bmc_mac.clone()]
        )
    );
    assert_eq!(
        device(&nb, a_out.device_id)["oob_ip"]["address"],
        "fd00:91:5::20/64"
    );
    assert_rerun_writes_nothing(&nb, &a4, &opts);
    assert_rerun_writes_nothing(&nb, &a6, &opts);

    // A's IPv6 lease expired; the pool hands its address to B.
    let mut b6 = lease(&invs[1], v6, "us3-cab1-ru3-b");
    b6.prefix_len = 64;
    let (b_out, _) = registered(&nb, &b6, &opts);
    assert_ne!(b_out.device_id, a_out.device_id);
    assert_eq!(
        device(&nb, b_out.device_id)["oob_ip"]["address"],
        "fd00:91:5::20/64"
    );
    let a_dev = device(&nb, a_out.device_id);
    assert_eq!(a_dev["oob_ip"]["address"], "10.91.0.20/24", "{a_dev}");
    assert_eq!(
        on_bmc_iface(&nb, a_out.device_id).0,
        vec!["10.91.0.20/24".to_string()]
    );
    let a_journal = journal(&nb, a_out.device_id);
    let moved = a_journal
        .iter()
        .find(|t| t.contains("moved to device"))
        .unwrap_or_else(|| panic!("{a_journal:?}"));
    assert!(
        moved.contains(
            "IP address fd00:91:5::20/64 from interface bmc (oob_ip cleared first); its \
             oob_ip is now 10.91.0.20/24, its other address"
        ),
        "{moved}"
    );
    assert_rerun_writes_nothing(&nb, &a4, &opts);
    assert_rerun_writes_nothing(&nb, &b6, &opts);
}
