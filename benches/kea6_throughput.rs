//! kea-dhcp6 throughput three ways, interleaved in one run, and the cost of
//! the hook's callout path measured inside the hook, as
//! benches/kea_throughput.rs does for kea-dhcp4:
//!
//!   none   no hook library
//!   empty  a C++ hook with the same callouts (lease6_select, lease6_renew,
//!          lease6_rebind, leases6_committed) that returns at once: the floor,
//!          Kea's own callout machinery (leases6_committed makes Kea park
//!          each REQUEST's reply for the callout, with or without work)
//!   ours   libdhcp_bmc_discovery.so, every lease in an opted-in subnet6
//!
//! `cargo bench --bench kea6_throughput` (as root: network namespaces,
//! tests/support/src/kea6.rs). BENCH_ROUNDS (default 5) and BENCH_SECONDS
//! (default 8) set the length; each round runs the three in a rotated order.
//! perfdhcp -6 relays SOLICIT/ADVERTISE/REQUEST/REPLY exchanges over the
//! veth pair from the clients' namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bmc_test_support::kea::{kea_version, Hook};
use bmc_test_support::kea6::{self, Net6};
use bmc_test_support::{env_or, hook_library, target_dir, TempDir};
use serde_json::{json, Value};

const VARIANTS: [&str; 3] = ["none", "empty", "ours"];
/// Seconds between perfdhcp's end and the CPU reading: the workers' share
/// of the exchanges' cost.
const SETTLE_SECONDS: u64 = 2;

fn build_empty_hook() -> PathBuf {
    let out = target_dir().join("libbench_empty_hook6.so");
    let kea_include =
        std::env::var("KEA_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/kea".into());
    let status = Command::new("g++")
        .args([
            "-std=c++14",
            "-O2",
            "-shared",
            "-fPIC",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-isystem",
        ])
        .arg(&kea_include)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/empty_hook.cc"))
        .arg("-o")
        .arg(&out)
        .args(["-Wl,-z,defs", "-lkea-hooks", "-lkea-exceptions"])
        .status()
        .expect("run g++");
    assert!(status.success(), "building benches/empty_hook.cc failed");
    out
}

fn hooks_for(variant: &str, empty: &Path) -> Vec<Hook> {
    match variant {
        "none" => vec![],
        "empty" => vec![Hook::Library {
            path: empty.to_path_buf(),
            parameters: json!({}),
        }],
        "ours" => vec![Hook::Library {
            path: hook_library(),
            parameters: json!({"workers": 4}),
        }],
        other => unreachable!("{other}"),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("kea6_throughput: skipped (run it with `cargo bench --bench kea6_throughput`)");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 5) as usize;
    let seconds = env_or("BENCH_SECONDS", 8);
    let (major, minor, patch) = kea_version(env!("BMC_KEA_VERSION"));
    let empty = build_empty_hook();
    let net = Net6::new(102);
    println!(
        "kea6_throughput: Kea {major}.{minor}.{patch}, {rounds} rounds x {seconds} s per variant, \
         perfdhcp -6 -r 8000 -R 20000"
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut cpu_per_reply: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut costs: Vec<Value> = Vec::new();
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        for k in 0..VARIANTS.len() {
            let i = (k + round) % VARIANTS.len();
            let variant = VARIANTS[i];
            let dir = TempDir::new(&format!("bench6-{variant}"));
            let mut cfg = kea6::config(&net, dir.path(), &hooks_for(variant, &empty), "WARN");
            // A fresh lease file per variant, and no lease caching (Kea 3.0),
            // as in the tests.
            cfg["Dhcp6"]["lease-database"]["persist"] = json!(false);
            let kea = kea6::start(&dir, &net, &cfg);
            let (cpu0, replies0) = (kea.cpu_seconds(), kea.statistic("pkt6-reply-sent"));
            let p = seconds.to_string();
            let report = kea6::run(
                &net,
                &net.relay_bmc(),
                &["-r", "8000", "-R", "20000", "-p", &p],
                Duration::from_secs(seconds + 30),
            );
            let rate = report.rate().unwrap_or_else(|| {
                panic!("no rate from perfdhcp -6 ({variant}):\n{}", report.output)
            });
            std::thread::sleep(Duration::from_secs(SETTLE_SECONDS));
            let replies = kea.statistic("pkt6-reply-sent") - replies0;
            let cpu = kea.cpu_seconds() - cpu0;
            if variant == "ours" {
                costs.push(kea.bmc_status());
            }
            kea.stop();
            let micros = cpu * 1e6 / replies.max(1) as f64;
            rates[i].push(rate);
            cpu_per_reply[i].push(micros);
            line.push_str(&format!("  {variant} {rate:.0}/s {micros:.1} µs"));
        }
        println!("{line}");
    }
    let med: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cpu: Vec<f64> = cpu_per_reply.iter_mut().map(|r| median(r)).collect();
    println!("\nmedian exchanges/s (ratio to no hook, to the empty hook), CPU µs per REPLY:");
    for (k, v) in VARIANTS.iter().enumerate() {
        println!(
            "  {v:<6} {:>8.0}/s  {:.3}  {:.3}  {:.1} µs",
            med[k],
            med[k] / med[0],
            med[k] / med[1],
            cpu[k]
        );
    }
    let per_round: Vec<f64> = (0..rounds)
        .map(|r| rates[2][r] / rates[1][r])
        .collect::<Vec<_>>();
    println!("per-round ours/empty: {per_round:.3?}");
    let mut cpu_ratio: Vec<f64> = (0..rounds)
        .map(|r| cpu_per_reply[1][r] / cpu_per_reply[2][r])
        .collect();
    println!(
        "per-round empty-hook CPU / ours (goal >= 0.99): median {:.3}, {cpu_ratio:.3?}",
        median(&mut cpu_ratio)
    );
    let mut p50: Vec<f64> = costs
        .iter()
        .map(|s| s["callout-cost"]["p50-ns"].as_f64().unwrap_or(0.0))
        .collect();
    let mut p99: Vec<f64> = costs
        .iter()
        .map(|s| s["callout-cost"]["p99-ns"].as_f64().unwrap_or(0.0))
        .collect();
    let events: u64 = costs
        .iter()
        .map(|s| s["callout-cost"]["count"].as_u64().unwrap_or(0))
        .sum();
    println!(
        "hook callout path from bmc-status, median over rounds ({events} events): \
         p50 <= {:.0} ns, p99 <= {:.0} ns",
        median(&mut p50),
        median(&mut p99)
    );
    if let Some(last) = costs.last() {
        println!(
            "last round's histogram: {}",
            last["callout-cost"]["buckets"]
        );
        println!("last round's events: {}", last["events"]);
    }
}
