//! NetBox registration throughput against the real NetBox from
//! ../shared/netbox, side by side with NetBox's raw capacity measured in the
//! same run:
//!
//! 1. raw: plain device POSTs (site, type and role exist), one client and
//!    BENCH_WORKERS clients;
//! 2. fresh registrations of BENCH_SERVERS discovered servers (all mockup
//!    models, distinct serials and MACs) with 1 and BENCH_WORKERS workers:
//!    registrations/s, NetBox writes per registration;
//! 3. the same registrations again (nothing changed): writes and rate;
//! 4. the fresh registrations as a dry run (reads only, writes planned).
//!
//! Runs only under `cargo bench --bench netbox_registration`. Resets the
//! test NetBox.

use std::net::Ipv4Addr;
use std::time::Duration;

use bmc_test_support::netbox::{netbox, per_second, reset, RawDevices};
use bmc_test_support::{emulator, shared};
use dhcp_bmc_discovery::netbox::{register, NetBox, Options, Registration};
use dhcp_bmc_discovery::placement::PlacementPattern;
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Inventory, Limits, Target, TlsPolicy};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let servers = env("BENCH_SERVERS", 40);
    let workers = env("BENCH_WORKERS", 4);
    shared::or_exit(
        "netbox_registration",
        shared::find_mockups_dir().and(shared::find_netbox_scripts()),
    );
    let (_guard, inst) = netbox();

    // Inventories of real discoveries (not timed).
    let emu = emulator::Emulator::start(0);
    let models = emulator::all_models();
    let d = Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("root", "calvin"),
        Limits::default(),
        Duration::from_secs(60),
    );
    let invs: Vec<Inventory> = (0..servers)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 70, 0, 1)) + i as u32);
            emu.add(
                addr,
                &models[i % models.len()],
                i as u32 + 1,
                "root",
                "calvin",
            );
            d.discover(&Target::new(&addr.to_string(), emu.port))
                .expect("discovery")
                .inventory
        })
        .collect();
    let pattern = PlacementPattern::default_pattern();
    let regs: Vec<Registration> = invs
        .iter()
        .enumerate()
        .map(|(i, inv)| {
            let mac = format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
            let name = format!("bench{}-cab{}-ru{}-bmc", i % 2, i % 5, i % 40 + 1);
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 30, 0, 10)) + i as u32);
            Registration::for_lease(inv, &mac, ip, 16, Some(&name), None, &pattern, false)
        })
        .collect();
    let opts = Options {
        create_missing: true,
        ..Options::default()
    };

    println!(
        "# NetBox {} at {}, {servers} servers, {workers} workers",
        {
            NetBox::connect(&inst.url, &inst.token)
                .map(|n| n.version)
                .unwrap_or_default()
        },
        inst.url
    );

    // 1. Raw capacity: plain device creates.
    reset();
    let nb = NetBox::connect(&inst.url, &inst.token).expect("connect");
    let raw = RawDevices::new(&nb);
    let raw1 = raw.create_rate(&nb, servers, 1, "seq");
    let raw_n = raw.create_rate(&nb, servers, workers, "par");
    println!("raw device creates: {raw1:.1}/s with 1 client, {raw_n:.1}/s with {workers} clients");

    // 2. and 3. Registrations, fresh then unchanged.
    for w in [1, workers] {
        reset();
        let nb = NetBox::connect(&inst.url, &inst.token).expect("connect");
        // The shared objects (tag, sites, racks, types) exist, as in a
        // running installation: register every model once first.
        for r in regs.iter().take(models.len()) {
            register(&nb, r, &opts).expect("warm-up registration");
        }
        let rest = &regs[models.len().min(regs.len())..];
        let per = |n: u64| n as f64 / rest.len().max(1) as f64;
        let mut dry = NetBox::connect(&inst.url, &inst.token).expect("connect");
        dry.set_dry_run(true);
        let dry_rate = per_second(rest.len(), w, |i| {
            register(&dry, &rest[i], &opts).expect("dry-run registration");
        });
        let (before, reads_before) = (nb.writes(), nb.reads());
        let fresh = per_second(rest.len(), w, |i| {
            register(&nb, &rest[i], &opts).expect("registration");
        });
        let writes = per(nb.writes() - before);
        let reads = per(nb.reads() - reads_before);
        let before = nb.writes();
        let again = per_second(regs.len(), w, |i| {
            let out = register(&nb, &regs[i], &opts).expect("re-registration");
            if !out.changes.is_empty() {
                println!("  re-run of {} changed: {:?}", regs[i].name, out.changes);
            }
        });
        let rewrites = nb.writes() - before;
        let raw = if w == 1 { raw1 } else { raw_n };
        println!(
            "{w} worker(s): fresh {fresh:.2} registrations/s = {:.2} x raw device creates, \
             {writes:.1} writes + {reads:.1} reads each (goal <= 8 writes); \
             unchanged re-run {again:.2}/s, {rewrites} writes (goal 0); \
             dry run {dry_rate:.2}/s = {:.1} x fresh",
            fresh / raw,
            dry_rate / fresh
        );
    }
}
