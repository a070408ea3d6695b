//! Redfish discovery against the emulator with a fixed latency per request
//! (default 50 ms, like a real iDRAC/iLO on a quiet network):
//!
//! 1. per model: requests per discovery and time of one discovery, with
//!    requests in parallel (BENCH_PARALLEL, default the engine's 6 per
//!    BMC) and one at a time,
//!    side by side;
//! 2. throughput: N workers (default 32) discovering M emulated BMCs
//!    (default 500, all models round robin), in discoveries per second,
//!    against the latency bound (workers / mean single-discovery time).
//!
//! Runs only under `cargo bench --bench redfish_discovery`; `cargo test
//! --all-targets` just builds it. Knobs: BENCH_LATENCY_MS, BENCH_WORKERS,
//! BENCH_BMCS, BENCH_PARALLEL. The emulator runs in a child process so that
//! the engine's CPU is measured on its own.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bmc_test_support::{emulator, shared};
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Limits, Target, TlsPolicy};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn discoverer(parallel: usize) -> Discoverer {
    let limits = Limits {
        parallel_requests: parallel,
        ..Limits::default()
    };
    Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("root", "calvin"),
        limits,
        Duration::from_secs(600),
    )
}

/// BMC addresses: block 127.60/16 holds one instance-0 BMC per model,
/// 127.61/16 the throughput set.
fn model_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 60, 0, i as u8 + 1)
}

fn bulk_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 61, 0, 1)) + i)
}

/// The emulator runs in a child process, so that the CPU the discovery
/// engine uses is measured apart from the emulator's.
fn emulator_child(latency: Duration, n_bmcs: u32) {
    let models = emulator::all_models();
    let emu = emulator::Emulator::start(0);
    let faults = emulator::Faults {
        latency,
        ..Default::default()
    };
    for (i, m) in models.iter().enumerate() {
        emu.add(model_addr(i), m, 0, "root", "calvin");
        emu.set_faults(model_addr(i), faults.clone());
    }
    emu.add_fleet(bulk_addr(0), n_bmcs, &faults, |_| "calvin");
    println!("{}", emu.port);
    // Serve until the parent closes our stdin.
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    println!("{}", emu.open_sessions());
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", 50));
    let workers = env("BENCH_WORKERS", 32) as usize;
    let n_bmcs = env("BENCH_BMCS", 500) as u32;
    let parallel = env("BENCH_PARALLEL", Limits::default().parallel_requests as u64) as usize;
    if std::env::var_os("BENCH_EMULATOR_CHILD").is_some() {
        return emulator_child(latency, n_bmcs);
    }
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    shared::or_exit("redfish_discovery", shared::find_mockups_dir());
    let models = emulator::all_models();
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env("BENCH_EMULATOR_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the emulator");
    let mut out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("emulator port");
    let port: u16 = line.trim().parse().expect("emulator port");
    let emu_pid = child.id();

    println!(
        "# 1. one discovery per model, {} ms per request: parallel ({parallel} per BMC) vs sequential",
        latency.as_millis()
    );
    println!(
        "{:32} {:>10} {:>8} {:>12} {:>14} {:>7}",
        "model", "vendor", "requests", "parallel ms", "sequential ms", "ratio"
    );
    let par = discoverer(parallel);
    let seq = discoverer(1);
    let mut single_ms = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let t = Target::new(&model_addr(i).to_string(), port);
        let p = par.discover(&t).expect("parallel discovery");
        let s = seq.discover(&t).expect("sequential discovery");
        single_ms.push(p.elapsed_ms as f64);
        println!(
            "{m:32} {:>10} {:>8} {:>12} {:>14} {:>6.2}x",
            p.inventory.vendor,
            p.round_trips,
            p.elapsed_ms,
            s.elapsed_ms,
            s.elapsed_ms as f64 / p.elapsed_ms.max(1) as f64
        );
    }
    let mean_ms = single_ms.iter().sum::<f64>() / single_ms.len() as f64;
    let max_ms = single_ms.iter().cloned().fold(0.0, f64::max);
    println!("mean {mean_ms:.0} ms, slowest {max_ms:.0} ms per discovery (goal: <= 2000 ms)");

    println!(
        "\n# 2. {workers} workers, {n_bmcs} emulated BMCs (all models round robin), {} ms per request",
        latency.as_millis()
    );
    let targets: Vec<Target> = (0..n_bmcs)
        .map(|i| Target::new(&bulk_addr(i).to_string(), port))
        .collect();
    let d = Arc::new(discoverer(parallel));
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let cpu0 = proc_cpu_seconds(std::process::id());
    let emu_cpu0 = proc_cpu_seconds(emu_pid);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (d, next, targets, failures) =
                (d.clone(), next.clone(), targets.clone(), failures.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = targets.get(i) else { break };
                if let Err(e) = d.discover(t) {
                    failures.lock().unwrap().push(e.message);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(std::process::id()) - cpu0;
    let emu_cpu = proc_cpu_seconds(emu_pid) - emu_cpu0;
    drop(child.stdin.take());
    line.clear();
    out.read_line(&mut line).ok();
    let open_sessions = line.trim().to_string();
    child.wait().ok();
    let failures = failures.lock().unwrap();
    let rate = n_bmcs as f64 / wall;
    let bound = workers as f64 / (mean_ms / 1000.0);
    println!(
        "{n_bmcs} discoveries in {wall:.2} s: {rate:.1} discoveries/s (goal >= 100); \
         latency bound {workers} / {mean_ms:.0} ms = {bound:.1}/s; measured / bound = {:.2}",
        rate / bound
    );
    println!(
        "CPU: discovery engine {:.1} ms per discovery ({:.0}% of one core), emulator {:.1} ms per discovery; \
         {} failures; sessions left open: {open_sessions}",
        1000.0 * cpu / n_bmcs as f64,
        100.0 * cpu / wall,
        1000.0 * emu_cpu / n_bmcs as f64,
        failures.len(),
    );
    for f in failures.iter().take(5) {
        println!("  failure: {f}");
    }
}
