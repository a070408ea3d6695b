//! A power-on burst end to end: BENCH_BMCS BMCs (default 200) take leases
//! from the real kea-dhcp4 (perfdhcp avalanche), the emulator answers every
//! Redfish request after BENCH_LATENCY_MS (default 50), and the hook
//! registers them in the real NetBox. Measured side by side in one run:
//!
//! 1. NetBox's raw capacity: one device create and one read by one client
//!    (its idle latency), and creates and reads per second with
//!    BENCH_WORKERS (at most 8) clients;
//! 2. idle: BENCH_IDLE BMCs (default 12) one after another, each alone;
//! 3. the burst without NetBox (discovery only: what the hook itself
//!    manages);
//! 4. the burst as a dry run (netbox.dry-run: every read, no write);
//! 5. the burst for real, into an emptied NetBox.
//!
//! Printed: p50/p99 lease-to-registered from the hook's own histogram
//! (idle, and in the burst) against what NetBox alone needs for the
//! requests a registration makes; time until every BMC is registered and
//! the share of NetBox's capacity the burst used; how much faster the
//! burst is without NetBox and as a dry run; and how far into the burst
//! the earliest leases were registered (oldest leases first).
//!
//! `cargo bench --bench bmc_burst` (root; resets the test NetBox).
//! BENCH_PARALLEL sets netbox.parallel-registrations (default: the
//! hook's); BENCH_COMPARE_PARALLEL=N adds the real burst again with N;
//! BENCH_BATCH sets netbox.batch-size (default: the hook's);
//! BENCH_COMPARE_BATCH=N adds the real burst again with batch size N
//! (1: every request alone, as before batching, with the hook's own
//! parallel-registrations), side by side;
//! BENCH_IDLE=0 and BENCH_DRY=0 leave those phases out (a 1,000-BMC run
//! is long enough). BENCH_KEA_LOG=INFO (default WARN) keeps Kea's per-BMC
//! lines.

use std::time::{Duration, Instant};

use bmc_test_support::discovery::{count, pool_addr, redfish_params, PASS};
use bmc_test_support::emulator::{Emulator, Faults, FleetBmc};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::netbox::{netbox, reset, RawDevices};
use bmc_test_support::{env_or, perfdhcp, shared, TempDir};
use dhcp_bmc_discovery::netbox::NetBox;
use serde_json::{json, Value};

/// CPU seconds by who spent them, read from /proc: NetBox (gunicorn,
/// Redis, PostgreSQL with its exited per-request backends, which the
/// postmaster's child times keep), Kea with the hook, this process (the
/// Redfish emulator), and the whole machine.
#[derive(Clone, Copy, Default)]
struct Cpu {
    netbox: f64,
    kea: f64,
    emulator: f64,
    machine: f64,
}

impl Cpu {
    fn now() -> Cpu {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let me = std::process::id().to_string();
        let mut cpu = Cpu::default();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            let f: Vec<f64> = stat[close + 2..]
                .split(' ')
                .map(|x| x.parse().unwrap_or(0.0))
                .collect();
            let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
            let (own, children) = ((at(11) + at(12)) / hz, (at(13) + at(14)) / hz);
            match comm {
                "gunicorn" | "redis-server" => cpu.netbox += own,
                "postgres" => cpu.netbox += own + children,
                "kea-dhcp4" => cpu.kea += own,
                _ if pid == me => cpu.emulator += own,
                _ => {}
            }
        }
        // The first line of /proc/stat: user nice system idle iowait ...
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            let f: Vec<f64> = stat
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0.0))
                .collect();
            if f.len() >= 5 {
                cpu.machine = (f.iter().sum::<f64>() - f[3] - f[4]) / hz;
            }
        }
        cpu
    }

    /// What was spent since `before`, as shares of the machine's cores over
    /// `secs`.
    fn report(&self, before: &Cpu, secs: f64) -> String {
        // SAFETY: as above.
        let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
        let pct = |a: f64, b: f64| (a - b) * 100.0 / (secs * cores);
        format!(
            "CPU of the machine's {cores} cores: NetBox {:.0} %, Kea with the hook {:.0} %, \
             emulator {:.0} %, all {:.0} %",
            pct(self.netbox, before.netbox),
            pct(self.kea, before.kea),
            pct(self.emulator, before.emulator),
            pct(self.machine, before.machine),
        )
    }
}

/// Kea with the hook on net block 101: `workers` workers, Redfish to the
/// emulator, NetBox when given.
fn start_kea(dir: &TempDir, emu: &Emulator, workers: u64, netbox: Option<&Value>) -> Kea {
    let net = Net::new(101);
    let mut redfish = redfish_params(dir.path(), emu, PASS);
    redfish["request-timeout-ms"] = json!(10000);
    redfish["deadline-ms"] = json!(120000);
    let mut params = json!({
        "workers": workers,
        "queue-capacity": 4096,
        "redfish": redfish,
    });
    if let Some(netbox) = netbox {
        let mut netbox = netbox.clone();
        let token_file = dir.path().join("netbox-token");
        std::fs::write(&token_file, netbox["token"].as_str().unwrap_or("")).unwrap();
        netbox["token-file"] = json!(token_file);
        netbox.as_object_mut().unwrap().remove("token");
        params["netbox"] = netbox;
    }
    let severity = std::env::var("BENCH_KEA_LOG").unwrap_or_else(|_| "WARN".into());
    Kea::start(dir, &config(net, dir.path(), &[hook(params)], &severity))
}

/// bmc-status, or the end of the run with Kea's log.
fn status(kea: &Kea, tag: &str) -> Value {
    match kea.try_command("bmc-status", None) {
        Ok(a) => a["arguments"].clone(),
        Err(e) => {
            let log = kea.log();
            let head: Vec<&str> = log.lines().take(20).collect();
            panic!(
                "{tag}: bmc-status: {e}\n{}\n...\n{}",
                head.join("\n"),
                kea.log_tail(15)
            );
        }
    }
}

/// `n` BMCs one after another, each alone (the next leases once the last
/// is registered). Returns the final bmc-status.
fn idle(emu: &Emulator, n: u32, workers: u64, netbox: &Value) -> Value {
    let dir = TempDir::new("burst-idle");
    let kea = start_kea(&dir, emu, workers, Some(netbox));
    let net = Net::new(101);
    for i in 0..n {
        let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, &format!("14:18:77:20:00:{i:02x}"));
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
        let t = Instant::now();
        loop {
            let s = status(&kea, "idle");
            if count(&s, "registered") > i as u64 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120) && count(&s, "dead") == 0,
                "idle BMC {i} not registered: {}\n{}",
                s["bmcs"],
                kea.log_tail(10)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Settled: nothing of this one still in NetBox when the next leases.
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = status(&kea, "idle");
    kea.stop();
    s
}

/// One burst: Kea with the hook, `n` BMCs, until all are in `done`.
/// Returns (seconds from the first DHCP packet, final bmc-status, the BMCs).
fn burst(
    emu: &Emulator,
    n: u32,
    workers: u64,
    netbox: Option<&Value>,
    done: &str,
    tag: &str,
) -> (f64, Value, Vec<Value>) {
    let dir = TempDir::new(tag);
    let kea = start_kea(&dir, emu, workers, netbox);
    let net = Net::new(101);
    let cpu = Cpu::now();
    let start = Instant::now();
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:10:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let limit = Duration::from_secs(env_or("BENCH_LIMIT_S", 3600));
    let status = loop {
        let s = status(&kea, tag);
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
    println!("  {tag}: {}", Cpu::now().report(&cpu, secs));
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
    shared::or_exit(
        "bmc_burst",
        shared::find_mockups_dir().and(shared::find_netbox_scripts()),
    );
    let (_guard, inst) = netbox();

    let emu = Emulator::start(0);
    let faults = Faults {
        latency,
        ..Faults::default()
    };
    // Spare BMCs past the n-th address: multi-threaded Kea may skip an
    // address now and then (two packet threads racing for one), and a
    // lease past the fleet would find no BMC (seen at 1,000).
    let fleet = n + n / 20 + 8;
    emu.add_fleet_with(pool_addr(0), fleet, |i| FleetBmc {
        password: PASS.into(),
        faults: faults.clone(),
        // Named as a data centre names them: site, cabinet, unit; ten
        // servers per cabinet, 4 U apart (the models are 1 to 4 U high).
        hostname: Some(format!(
            "us3-cab{:02}-ru{:02}-bmc",
            i / 10 + 1,
            (i % 10) * 4 + 1
        )),
        ..FleetBmc::default()
    });
    println!(
        "bmc_burst: {n} BMCs, {} ms per Redfish request, {workers} workers, NetBox at {}",
        latency.as_millis(),
        inst.url
    );

    // 1. NetBox's raw capacity, now: one client's latency, then many.
    reset();
    let nb = NetBox::connect(&inst.url, &inst.token).expect("connect");
    let raw = RawDevices::new(&nb);
    let write_ms = 1000.0 / raw.create_rate(&nb, 20, 1, "one");
    let read_ms = 1000.0 / raw.read_rate(&nb, 20, 1, "one");
    let clients = workers.min(8) as usize;
    let creates = raw.create_rate(&nb, 40, clients, "raw");
    let reads = raw.read_rate(&nb, 40, clients, "raw");
    println!(
        "NetBox raw: one client {write_ms:.0} ms per device create, {read_ms:.0} ms per read; \
         {clients} clients {creates:.1} creates/s, {reads:.1} reads/s"
    );

    let parallel = std::env::var("BENCH_PARALLEL").ok();
    let batch = std::env::var("BENCH_BATCH").ok();
    let netbox_params = |dry: bool| {
        let mut p =
            json!({"url": inst.url, "token": inst.token, "create-missing": true, "dry-run": dry});
        if let Some(v) = parallel.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            p["parallel-registrations"] = json!(v);
        }
        if let Some(v) = batch.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            p["batch-size"] = json!(v);
        }
        p
    };
    // Requests per registration, from the hook's own counters.
    let per_registration = |s: &Value, registrations: u64| {
        let per = |k: &str| {
            s["netbox"]["requests"][k].as_f64().unwrap_or(0.0) / registrations.max(1) as f64
        };
        (per("reads"), per("writes"))
    };

    // 2. Idle: one BMC at a time.
    let idle_n = env_or("BENCH_IDLE", 12) as u32;
    if idle_n > 0 {
        reset();
        let s = idle(&emu, idle_n.min(n), workers, &netbox_params(false));
        let (r, w) = per_registration(&s, idle_n.min(n) as u64);
        let l = &s["latency"];
        let mean = |h: &str| {
            l[h]["sum-ms"].as_f64().unwrap_or(0.0) / l[h]["count"].as_f64().unwrap_or(1.0).max(1.0)
        };
        let netbox_ms = mean("netbox");
        println!(
            "idle ({} BMCs one at a time): lease-to-registered p50 {} ms, p99 {} ms (goal p50 < \
             1000, p99 < 3000); of which discovery p50 {} ms, NetBox p50 {} ms: {r:.1} reads + \
             {w:.1} writes, {:.0} ms of NetBox time each (some go out together; NetBox alone: \
             {write_ms:.0} ms a create, {read_ms:.0} ms a read); the rest (queue, gate, state \
             file) {:.0} ms on average",
            idle_n.min(n),
            l["lease-to-done"]["p50-ms"],
            l["lease-to-done"]["p99-ms"],
            l["discovery"]["p50-ms"],
            l["netbox"]["p50-ms"],
            netbox_ms / (r + w).max(1.0),
            mean("lease-to-done") - mean("discovery") - netbox_ms,
        );
    }

    // 3. Without NetBox: what the hook itself does with the burst.
    let (bare_s, bare_status, _) = burst(&emu, n, workers, None, "discovered", "burst-bare");
    println!(
        "without NetBox: all {n} discovered in {bare_s:.1} s ({:.1}/s); lease-to-done p50 {} ms, p99 {} ms",
        n as f64 / bare_s,
        bare_status["latency"]["lease-to-done"]["p50-ms"],
        bare_status["latency"]["lease-to-done"]["p99-ms"],
    );

    // 4. Dry run: everything but NetBox's writes.
    let dry_s = if env_or("BENCH_DRY", 1) == 0 {
        None
    } else {
        reset();
        let (dry_s, dry_status, _) = burst(
            &emu,
            n,
            workers,
            Some(&netbox_params(true)),
            "discovered",
            "burst-dry",
        );
        println!(
            "dry run: all {n} discovered and planned in {dry_s:.1} s ({:.1}/s); lease-to-done \
             p50 {} ms, p99 {} ms",
            n as f64 / dry_s,
            dry_status["latency"]["lease-to-done"]["p50-ms"],
            dry_status["latency"]["lease-to-done"]["p99-ms"],
        );
        Some(dry_s)
    };

    // 5. For real.
    reset();
    let (real_s, status, bmcs) = burst(
        &emu,
        n,
        workers,
        Some(&netbox_params(false)),
        "registered",
        "burst-real",
    );
    let rate = n as f64 / real_s;
    let (r, w) = per_registration(&status, n as u64);
    let l = &status["latency"]["lease-to-done"];
    println!(
        "registered (batch size {}): {}",
        batch.as_deref().unwrap_or("default"),
        batches(&status)
    );
    println!(
        "registered: all {n} in {real_s:.1} s ({rate:.2}/s); {r:.1} reads + {w:.1} writes each: \
         {:.1} NetBox requests/s (NetBox alone, {clients} clients: {creates:.1} creates/s, \
         {reads:.1} reads/s); lease-to-registered p50 {} ms, p99 {} ms, max {} ms; NetBox time \
         p50 {} ms ({} registrations at once)",
        rate * (r + w),
        l["p50-ms"],
        l["p99-ms"],
        l["max-ms"],
        status["latency"]["netbox"]["p50-ms"],
        status["netbox"]["registrations"]["limit"],
    );
    println!(
        "without NetBox {:.1} x faster{} than the real burst (goal >= 20: the burst is bound by \
         NetBox)",
        real_s / bare_s,
        dry_s
            .map(|d| format!(", dry run {:.1} x faster", real_s / d))
            .unwrap_or_default()
    );

    println!("oldest first: {}", oldest_first(&bmcs));
    println!("placement: {}", check_placement(&nb, n));

    // The same burst with another batch size, side by side (e.g.
    // BENCH_COMPARE_BATCH=1: every request alone, as before batching).
    if let Some(other) = std::env::var("BENCH_COMPARE_BATCH")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        reset();
        let mut params = netbox_params(false);
        params["batch-size"] = json!(other);
        if other == 1 {
            // Today's path as it is configured today: the hook's own
            // parallel-registrations (more writers without batching only
            // make each wait inside NetBox).
            if let Some(p) = params.as_object_mut() {
                p.remove("parallel-registrations");
            }
        }
        let (secs, status, bmcs) =
            burst(&emu, n, workers, Some(&params), "registered", "burst-batch");
        check_placement(&nb, n);
        let (r, w) = per_registration(&status, n as u64);
        let l = &status["latency"]["lease-to-done"];
        println!(
            "with batch size {other}: all {n} in {secs:.1} s ({:.2}/s; the burst above \
             registered {:.1} x as fast); {r:.1} reads + {w:.1} writes each; lease-to-registered \
             p50 {} ms, p99 {} ms; {}; oldest first: {}",
            n as f64 / secs,
            rate / (n as f64 / secs),
            l["p50-ms"],
            l["p99-ms"],
            batches(&status),
            oldest_first(&bmcs)
        );
    }

    // The same burst with another limit on registrations at once, for
    // comparison (e.g. BENCH_COMPARE_PARALLEL=16: as many as workers).
    if let Some(other) = std::env::var("BENCH_COMPARE_PARALLEL")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        reset();
        let mut params = netbox_params(false);
        params["parallel-registrations"] = json!(other);
        let (secs, status, bmcs) =
            burst(&emu, n, workers, Some(&params), "registered", "burst-other");
        check_placement(&nb, n);
        let l = &status["latency"]["lease-to-done"];
        println!(
            "with {other} registrations at once: all {n} in {secs:.1} s ({:.2}/s); \
             lease-to-registered p50 {} ms, p99 {} ms; NetBox time p50 {} ms; oldest first: {}",
            n as f64 / secs,
            l["p50-ms"],
            l["p99-ms"],
            status["latency"]["netbox"]["p50-ms"],
            oldest_first(&bmcs)
        );
    }
}

/// What batching did in a burst, from `bmc-status`.
fn batches(status: &Value) -> String {
    let b = &status["netbox"]["batches"];
    let mean = b["carried"].as_f64().unwrap_or(0.0) / b["merged"].as_f64().unwrap_or(0.0).max(1.0);
    format!(
        "{} bulk requests carried {} registrations' requests ({mean:.1} on average, at most {}), \
         {} sent alone after a rejection; {} NetBox requests per registration",
        b["merged"],
        b["carried"],
        b["largest"],
        b["sent-alone"],
        status["netbox"]["requests-per-registration"]
    )
}

/// How far into the burst the first tenth of the leases, by lease time,
/// were all registered.
fn oldest_first(bmcs: &[Value]) -> String {
    let mut by_lease: Vec<(i64, i64)> = bmcs
        .iter()
        .filter_map(|b| Some((b["leased-at-ms"].as_i64()?, b["registered-at"].as_i64()?)))
        .collect();
    by_lease.sort();
    let (Some(first), Some(last_reg)) = (
        by_lease.first().map(|f| f.0 / 1000),
        by_lease.iter().map(|b| b.1).max(),
    ) else {
        return "nothing registered".into();
    };
    let tenth = (by_lease.len() / 10).max(1);
    let first_tenth_done = by_lease[..tenth].iter().map(|b| b.1).max().unwrap_or(0);
    let span = (last_reg - first).max(1);
    format!(
        "the earliest {tenth} leases were all registered {} s into the {span} s burst ({:.0} %)",
        first_tenth_done - first,
        (first_tenth_done - first) as f64 * 100.0 / span as f64
    )
}

/// Every BMC of the burst is one device in NetBox, in the site, rack and
/// unit its hostname names (a model whose payload has no host name is
/// named `bmc-<mac>`, in the subnet's site, without a rack), and each BMC
/// MAC is there once: panics otherwise, so the burst's figures are those of
/// a correct run.
fn check_placement(nb: &NetBox, n: u32) -> String {
    let devices = nb
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=1000")
        .expect("list devices");
    assert_eq!(devices.len(), n as usize, "one device per BMC");
    let mut unnamed = 0;
    for d in &devices {
        let name = d["name"].as_str().unwrap_or("");
        assert_eq!(d["site"]["slug"], "us3", "{name}");
        if name.starts_with("bmc-") {
            assert!(d["rack"].is_null(), "{name} has no placement: {d}");
            unnamed += 1;
            continue;
        }
        // us3-cab07-ru13-bmc
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(d["rack"]["name"], parts[1], "{name}");
        let unit: f64 = parts[2].trim_start_matches("ru").parse().unwrap_or(0.0);
        assert_eq!(d["position"].as_f64(), Some(unit), "{name}");
    }
    let macs = nb
        .list("/api/dcim/mac-addresses/?limit=1000")
        .expect("list MACs");
    let mut seen = std::collections::BTreeSet::new();
    for m in &macs {
        let mac = m["mac_address"].as_str().unwrap_or("").to_string();
        assert!(seen.insert(mac.clone()), "MAC {mac} twice");
    }
    assert_eq!(seen.len(), n as usize, "one MAC object per BMC");
    format!(
        "{n} devices: {} in the site, rack and unit their hostname names, {unnamed} whose model \
         reports no host name in the site alone; {n} MACs, none twice",
        n as usize - unnamed
    )
}
