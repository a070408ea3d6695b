//! A power-on burst end to end: BENCH_BMCS BMCs (default 200) take leases
//! from the real kea-dhcp4 (perfdhcp avalanche), the emulator answers every
//! Redfish request after BENCH_LATENCY_MS (default 50), and the hook
//! registers them in the real NetBox. Measured side by side in one run:
//!
//! 1. NetBox's raw write capacity: plain device creates with BENCH_WORKERS
//!    clients;
//! 2. the burst as a dry run (netbox.dry-run: every read, no write);
//! 3. the burst for real, into an emptied NetBox.
//!
//! Printed: time until every BMC is registered, registrations/s against raw
//! creates/s, the dry run's speed-up, p50/p99 lease-to-registered from the
//! hook's own histogram, and how much of the burst the earliest leases
//! waited (oldest leases first: no server waits behind the whole burst).
//!
//! `cargo bench --bench bmc_burst` (root; resets the test NetBox).
//! BENCH_KEA_LOG=INFO (default WARN) keeps Kea's per-BMC lines in its log.

#[path = "../tests/emulator/mod.rs"]
mod emulator;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcp_bmc_discovery::netbox::NetBox;
use emulator::{Emulator, Faults};
use serde_json::{json, Value};
use support::kea::{config, Hook, Kea, Net};
use support::netbox::{netbox, reset};
use support::{env_or, hook_library, perfdhcp, TempDir};

const PASS: &str = "emulated-Passw0rd";

fn pool_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 10)) + i)
}

fn count(status: &Value, state: &str) -> u64 {
    status["bmcs"][state].as_u64().unwrap_or(0)
}

/// One burst: Kea with the hook, `n` BMCs, until all are in `done`.
/// Returns (seconds from the first DHCP packet, final bmc-status, the BMCs).
fn burst(
    emu: &Emulator,
    n: u32,
    workers: u64,
    netbox: &Value,
    done: &str,
    tag: &str,
) -> (f64, Value, Vec<Value>) {
    let net = Net::new(101);
    let dir = TempDir::new(tag);
    let creds = dir.path().join("bmc-credentials.json");
    std::fs::write(
        &creds,
        json!([{"username": "root", "password": PASS}]).to_string(),
    )
    .unwrap();
    let ca = dir.path().join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let mut netbox = netbox.clone();
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, netbox["token"].as_str().unwrap_or("")).unwrap();
    netbox["token-file"] = json!(token_file);
    netbox.as_object_mut().unwrap().remove("token");
    let params = json!({
        "workers": workers,
        "queue-capacity": 4096,
        "redfish": {"credentials-file": creds, "port": emu.port, "tls-mode": "verify",
                    "tls-ca-file": ca, "request-timeout-ms": 10000, "deadline-ms": 120000},
        "netbox": netbox,
    });
    let hook = Hook::Library {
        path: hook_library(),
        parameters: params,
    };
    let severity = std::env::var("BENCH_KEA_LOG").unwrap_or_else(|_| "WARN".into());
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook], &severity));
    let start = Instant::now();
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:10:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let limit = Duration::from_secs(env_or("BENCH_LIMIT_S", 3600));
    let status = loop {
        let s = match kea.try_command("bmc-status", None) {
            Ok(a) => a["arguments"].clone(),
            Err(e) => {
                let log = kea.log();
                let head: Vec<&str> = log.lines().take(20).collect();
                let tail = kea.log_tail(15);
                let status = kea.stop();
                panic!(
                    "{tag}: bmc-status: {e}; Kea exited: {status:?}\n{}\n...\n{tail}",
                    head.join("\n")
                );
            }
        };
        if count(&s, done) >= n as u64 {
            break s;
        }
        assert!(
            start.elapsed() < limit,
            "{tag}: not all {done} after {limit:?}: {}\n{}",
            s["bmcs"],
            kea.log_tail(10)
        );
        assert_eq!(count(&s, "dead"), 0, "{tag}: {s}\n{}", kea.log_tail(10));
        std::thread::sleep(Duration::from_millis(200));
    };
    let secs = start.elapsed().as_secs_f64();
    let list = kea.command("bmc-list", None);
    let bmcs = list["arguments"]["bmcs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    kea.stop();
    (secs, status, bmcs)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bmc_burst: skipped (run it with `cargo bench --bench bmc_burst`)");
        return;
    }
    let n = env_or("BENCH_BMCS", 200) as u32;
    let latency = Duration::from_millis(env_or("BENCH_LATENCY_MS", 50));
    let workers = env_or("BENCH_WORKERS", 16);
    let (_guard, inst) = netbox();

    let emu = Emulator::start(0);
    let faults = Faults {
        latency,
        ..Faults::default()
    };
    emu.add_fleet(pool_addr(0), n, &faults, |_| PASS);
    for i in 0..n {
        // Named as a data centre names them: site, cabinet, unit; ten
        // servers per cabinet, 4 U apart (the models are 1 to 4 U high).
        emu.set_hostname(
            pool_addr(i),
            &format!("us3-cab{:02}-ru{:02}-bmc", i / 10 + 1, (i % 10) * 4 + 1),
        );
    }
    println!(
        "bmc_burst: {n} BMCs, {} ms per Redfish request, {workers} workers, NetBox at {}",
        latency.as_millis(),
        inst.url
    );

    // 1. NetBox's raw write capacity, now.
    reset();
    let nb = NetBox::connect(&inst.url, &inst.token).expect("connect");
    let raw =
        support::netbox::RawDevices::new(&nb).create_rate(&nb, 40, workers.min(8) as usize, "raw");
    println!(
        "NetBox raw device creates: {raw:.1}/s ({} clients)",
        workers.min(8)
    );

    let netbox_params = |dry: bool| json!({"url": inst.url, "token": inst.token, "create-missing": true, "dry-run": dry});
    // 2. Dry run: everything but NetBox's writes.
    reset();
    let (dry_s, dry_status, _) = burst(
        &emu,
        n,
        workers,
        &netbox_params(true),
        "discovered",
        "burst-dry",
    );
    println!(
        "dry run: all {n} discovered and planned in {dry_s:.1} s ({:.1}/s); lease-to-done p50 {} ms, p99 {} ms",
        n as f64 / dry_s,
        dry_status["latency"]["lease-to-done"]["p50-ms"],
        dry_status["latency"]["lease-to-done"]["p99-ms"],
    );

    // 3. For real.
    reset();
    let (real_s, status, bmcs) = burst(
        &emu,
        n,
        workers,
        &netbox_params(false),
        "registered",
        "burst-real",
    );
    let rate = n as f64 / real_s;
    let l = &status["latency"]["lease-to-done"];
    println!(
        "registered: all {n} in {real_s:.1} s ({rate:.2}/s = {:.2} x raw device creates, a \
         registration being ~8 writes); lease-to-registered p50 {} ms, p99 {} ms, max {} ms; \
         NetBox time p50 {} ms",
        rate / raw,
        l["p50-ms"],
        l["p99-ms"],
        l["max-ms"],
        status["latency"]["netbox"]["p50-ms"],
    );
    println!(
        "dry run {:.1} x faster than the real burst (goal >= 20: the burst is bound by NetBox)",
        real_s / dry_s
    );

    // Oldest leases first: the first tenth of the leases, by lease time,
    // were registered how far into the burst?
    let mut by_lease: Vec<(i64, i64)> = bmcs
        .iter()
        .filter_map(|b| Some((b["leased-at-ms"].as_i64()?, b["registered-at"].as_i64()?)))
        .collect();
    by_lease.sort();
    if let (Some(first), Some(last_reg)) = (
        by_lease.first().map(|f| f.0 / 1000),
        by_lease.iter().map(|b| b.1).max(),
    ) {
        let tenth = (by_lease.len() / 10).max(1);
        let first_tenth_done = by_lease[..tenth].iter().map(|b| b.1).max().unwrap_or(0);
        let span = (last_reg - first).max(1);
        println!(
            "oldest first: the earliest {tenth} leases were all registered {} s into the {} s \
             burst ({:.0} %)",
            first_tenth_done - first,
            span,
            (first_tenth_done - first) as f64 * 100.0 / span as f64
        );
    }
}
