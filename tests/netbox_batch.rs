//! Registrations merged into NetBox's bulk requests (`netbox.batch-size`),
//! against a real NetBox (../shared/netbox, see tests/netbox.rs) with
//! inventories of real discoveries (the emulator serving the mockups): one
//! bad server does not fail its batch, a second writer racing on the same
//! servers still leaves one device each, and a re-run writes nothing.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bmc_test_support::emulator::{all_models, Emulator};
use bmc_test_support::netbox::{empty_netbox, get};
use dhcp_bmc_discovery::netbox::{
    register, Identity, NetBox, ObjectId, Options, RegisterError, Registration,
};
use dhcp_bmc_discovery::placement::PlacementPattern;
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Inventory, Limits, Target, TlsPolicy};
use serde_json::Value;

const N: u32 = 50;
/// Server 7's name is another server's already.
const NAME_TAKEN: u32 = 7;
/// Server 13's rack unit is another device's: NetBox rejects its device.
const UNIT_TAKEN: u32 = 13;

/// `n` discovered servers of a fleet (every mockup model in turn, each
/// instance after `after` its own serial and MACs), on this test's own
/// addresses.
fn fleet(after: u32, n: u32) -> Vec<Inventory> {
    let emu = Emulator::start(0);
    let first = Ipv4Addr::new(127, 58, (after / 200) as u8, 1);
    let models = all_models();
    for i in 0..n {
        let addr = Ipv4Addr::from(u32::from(first) + i);
        emu.add(
            addr,
            &models[i as usize % models.len()],
            after + i + 1,
            "root",
            "calvin",
        );
    }
    let d = Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("root", "calvin"),
        Limits::default(),
        Duration::from_secs(60),
    );
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(first) + i);
            d.discover(&Target::new(&addr.to_string(), emu.port))
                .unwrap_or_else(|e| panic!("BMC {addr}: {e}"))
                .inventory
        })
        .collect()
}

/// Server `i`: ten to a rack, four units apart (the fleet's models are up
/// to 4 U high), its BMC at 10.58.0.(10 + i).
fn server(inv: &Inventory, i: u32) -> Registration<'_> {
    let name = format!("b58-cab{}-ru{}-srv{i:02}", i / 10, 1 + 4 * (i % 10));
    registration(inv, i, &name)
}

fn registration<'a>(inv: &'a Inventory, i: u32, name: &str) -> Registration<'a> {
    Registration {
        inventory: inv,
        bmc_mac: inv
            .bmc
            .mac
            .clone()
            .unwrap_or_else(|| format!("02:00:00:00:58:{i:02x}")),
        bmc_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 58, 0, 10)) + i).into(),
        prefix_len: 16,
        name: name.to_string(),
        placement: PlacementPattern::default_pattern()
            .place(name)
            .unwrap_or_default(),
        dns_name: None,
        identity: Identity::default(),
    }
}

fn options() -> Options {
    Options {
        create_missing: true,
        ..Options::default()
    }
}

fn batched(url: &str, token: &str) -> NetBox {
    let mut nb = NetBox::connect(url, token).unwrap();
    nb.set_batching(50, Duration::from_millis(200));
    nb
}

/// Registers every server at once, each on its own thread as the hook's
/// workers do, on one client.
fn register_all(
    nb: &NetBox,
    regs: &[Registration],
) -> Vec<Result<dhcp_bmc_discovery::netbox::Outcome, RegisterError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = regs
            .iter()
            .map(|r| {
                s.spawn(move || {
                    // As the hook does on netbox-unavailable: again (a busy
                    // machine can outlast a read timeout, and what timed
                    // out may have landed: the retry must find it).
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match register(nb, r, &options()) {
                            Err(RegisterError::Unavailable(e)) if attempt < 4 => {
                                eprintln!("{}: attempt {attempt}: {e}; again", r.name);
                            }
                            other => break other,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(nb: &NetBox, path: &str) -> u64 {
    get(nb, path)["count"].as_u64().unwrap()
}

#[test]
fn one_batch_of_fifty_two_bad_servers_fail_alone_and_a_racing_writer_converges() {
    let invs = fleet(0, N);
    let others = fleet(200, 2);
    let (_guard, inst, nb) = empty_netbox();

    // Before the burst, one at a time and unbatched: a server already
    // holding server 7's name, and one in server 13's rack unit.
    let name_holder = registration(&others[0], 100, &server(&invs[7], NAME_TAKEN).name);
    let unit_holder = registration(&others[1], 101, "b58-cab1-ru13-old");
    let holder_ids: Vec<ObjectId> = [&name_holder, &unit_holder]
        .iter()
        .map(|r| register(&nb, r, &options()).unwrap().device_id)
        .collect();
    // The racks exist (NetBox keeps rack names unique only within a
    // location: two writers creating a missing rack at once make two, a
    // race of its own, not this test's).
    let site = get(&nb, &format!("/api/dcim/devices/{}/", holder_ids[0]))["site"]["id"].clone();
    for rack in 2..N / 10 {
        nb.post(
            "/api/dcim/racks/",
            &serde_json::json!({"name": format!("cab{rack}"), "site": site, "status": "active"}),
        )
        .unwrap();
    }
    let holders_before: Vec<Value> = holder_ids
        .iter()
        .map(|id| get(&nb, &format!("/api/dcim/devices/{id}/")))
        .collect();

    let regs: Vec<Registration> = invs
        .iter()
        .zip(0..)
        .map(|(inv, i)| server(inv, i))
        .collect();
    let first = batched(&inst.url, &inst.token);
    let second = batched(&inst.url, &inst.token);
    let t = Instant::now();
    // The second writer (another Kea server) registers servers 20..30 at
    // the same moment.
    let (results, raced) = std::thread::scope(|s| {
        let racer = s.spawn(|| register_all(&second, &regs[20..30]));
        (register_all(&first, &regs), racer.join().unwrap())
    });
    let took = t.elapsed();
    let (reads, writes) = (first.reads(), first.writes());
    let b = first.batches();
    eprintln!(
        "{N} servers in {:.1} s: {reads} reads, {writes} writes ({:.2} requests per \
         server); {} bulk requests carried {} (largest {}), {} sent alone",
        took.as_secs_f64(),
        (reads + writes) as f64 / N as f64,
        b.merged,
        b.parts,
        b.largest,
        b.alone
    );

    for (i, r) in (0..).zip(&results) {
        match i {
            NAME_TAKEN => {
                let e = r.as_ref().unwrap_err();
                assert!(
                    matches!(e, RegisterError::Conflict(_) | RegisterError::Refused(_))
                        && e.to_string().contains(&regs[i as usize].name),
                    "server {i}: {e}"
                );
            }
            UNIT_TAKEN => {
                let e = r.as_ref().unwrap_err();
                assert!(
                    matches!(e, RegisterError::Failed(_))
                        && e.to_string().contains("HTTP 400")
                        && e.to_string().contains("occupied"),
                    "server {i}: {e}"
                );
            }
            _ => {
                let out = r
                    .as_ref()
                    .unwrap_or_else(|e| panic!("server {i} ({}): {e}", regs[i as usize].name));
                // Of the two writers racing on 20..30, either may have
                // made it.
                let racer = (20..30).contains(&i).then(|| &raced[i as usize - 20]);
                let made_by_racer = racer
                    .and_then(|r| r.as_ref().ok())
                    .is_some_and(|o| !o.changes.is_empty());
                assert!(!out.changes.is_empty() || made_by_racer, "server {i}");
            }
        }
    }
    for (i, r) in (20..).zip(&raced) {
        let out = r
            .as_ref()
            .unwrap_or_else(|e| panic!("racer, server {i}: {e}"));
        let mine = results[i as usize].as_ref().unwrap();
        assert_eq!(out.device_id, mine.device_id, "server {i}: one device");
    }
    // Merged: most of the servers' requests went in bulk requests of many
    // (an empty NetBox: the first of each site, rack and model are read
    // and created on the way, and the racing writer's losses go alone).
    assert!(b.largest >= 10, "{b:?}");
    assert!(b.parts >= 5 * N as u64, "{b:?}");
    assert!(
        reads + writes < 12 * N as u64,
        "{reads} reads, {writes} writes"
    );

    // In NetBox: the 48 and the two holders, nothing else; each server
    // one device in its own unit, with one MAC object and one address.
    assert_eq!(count(&nb, "/api/dcim/devices/?limit=1"), N as u64);
    for (i, reg) in (0..).zip(&regs) {
        let serial = reg.inventory.serial_number.clone().unwrap();
        let devices = get(&nb, &format!("/api/dcim/devices/?serial={serial}"));
        let macs = count(
            &nb,
            &format!("/api/dcim/mac-addresses/?mac_address={}", reg.bmc_mac),
        );
        let ips = count(
            &nb,
            &format!("/api/ipam/ip-addresses/?address={}", reg.bmc_ip),
        );
        if i == NAME_TAKEN || i == UNIT_TAKEN {
            assert_eq!(
                (devices["count"].as_u64(), macs, ips),
                (Some(0), 0, 0),
                "{i}"
            );
            continue;
        }
        assert_eq!(devices["count"], 1, "server {i}: {devices}");
        let d = &devices["results"][0];
        assert_eq!(d["name"], reg.name.as_str());
        assert_eq!(d["rack"]["name"], format!("cab{}", i / 10));
        assert_eq!(d["position"].as_f64(), Some((1 + 4 * (i % 10)) as f64));
        assert_eq!((macs, ips), (1, 1), "server {i}");
        assert_eq!(
            d["oob_ip"]["address"],
            format!("{}/16", reg.bmc_ip),
            "server {i}"
        );
    }
    // The holders are as they were.
    for (id, before) in holder_ids.iter().zip(&holders_before) {
        let now = get(&nb, &format!("/api/dcim/devices/{id}/"));
        for k in ["name", "serial", "position", "rack", "oob_ip"] {
            assert_eq!(now[k], before[k], "{k} of device {id}");
        }
    }

    // Again, batched: nothing written, the two still fail on their own.
    let (w0, r0) = (first.writes(), first.reads());
    let again = register_all(&first, &regs);
    for (i, r) in (0..).zip(&again) {
        match i {
            NAME_TAKEN | UNIT_TAKEN => assert!(r.is_err(), "server {i}"),
            _ => assert!(
                r.as_ref().unwrap().changes.is_empty(),
                "server {i}: {:?}",
                r.as_ref().unwrap().changes
            ),
        }
    }
    // The two failing ones try a write each time (the device they would
    // create); nobody else writes.
    let written = first.writes() - w0;
    eprintln!("re-run: {written} writes, {} reads", first.reads() - r0);
    assert!(written <= 2, "{written} writes on a re-run");
}
