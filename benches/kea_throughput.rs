//! Kea DHCPv4 throughput four ways, interleaved in one run, and the cost of
//! the hook's callout path measured inside the hook:
//!
//!   none       no hook library
//!   empty      a C++ hook with the same callouts that returns at once (the floor)
//!   ours       libdhcp_bmc_discovery.so, every lease in an opted-in subnet
//!   run_script Kea's libdhcp_run_script.so running `exit 0`
//!
//! `cargo bench --bench kea_throughput` (as root). BENCH_ROUNDS (default 5)
//! and BENCH_SECONDS (default 8) set the length; each round runs the four in
//! a rotated order, since position within a round biases results. It runs on
//! whichever Kea it was built against (2.2 on the host; 2.6 and 3.0 inside
//! the matrix roots: `KEA_MATRIX_STEPS="build bench" bash tests/kea-matrix.sh`).
//! Besides the medians it prints each round's ratio to the empty hook and
//! their spread: on a shared machine the rounds move, the ratio within a
//! round moves less, and the callout histogram hardly at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bmc_test_support::kea::{config, kea_version, stock_hook, Hook, Kea, Net};
use bmc_test_support::{env_or, hook_library, perfdhcp, target_dir, TempDir};
use serde_json::{json, Value};

const VARIANTS: [&str; 4] = ["none", "empty", "ours", "run_script"];

fn build_empty_hook() -> PathBuf {
    let out = target_dir().join("libbench_empty_hook.so");
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
        // -z defs: every symbol resolved at link time, so a library name
        // this Kea lacks fails here, not at Kea's dlopen. The same two names
        // on 2.2, 2.6 and 3.0.
        .args(["-Wl,-z,defs", "-lkea-hooks", "-lkea-exceptions"])
        .status()
        .expect("run g++");
    assert!(
        status.success(),
        "building benches/empty_hook.cc against {} failed (g++'s errors above)",
        kea_include
    );
    out
}

fn hooks_for(variant: &str, empty: &Path, script: &Path) -> Vec<Hook> {
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
        "run_script" => vec![Hook::Library {
            path: stock_hook("libdhcp_run_script.so"),
            parameters: json!({"name": script.to_str().unwrap(), "sync": false}),
        }],
        other => unreachable!("{other}"),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// The machine's 1-minute load average: the bench's figures move with it,
/// so it is printed beside them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    // `cargo test --all-targets` builds and runs benches without `--bench`:
    // compile-checked there, measured only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kea_throughput: skipped (run it with `cargo bench --bench kea_throughput`)");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 5) as usize;
    let seconds = env_or("BENCH_SECONDS", 8);
    let net = Net::new(100);
    // Also asserts that the hook was built against this kea-dhcp4.
    let (major, minor, patch) = kea_version(env!("BMC_KEA_VERSION"));
    let empty = build_empty_hook();

    println!(
        "kea_throughput: Kea {major}.{minor}.{patch}, {rounds} rounds x {seconds} s per variant, \
         perfdhcp -r 12000 -R 20000, load average {} on {} CPUs",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut costs: Vec<Value> = Vec::new();
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        for k in 0..VARIANTS.len() {
            let i = (k + round) % VARIANTS.len();
            let variant = VARIANTS[i];
            let dir = TempDir::new(&format!("bench-{variant}"));
            // In Kea's directory: Kea 3.0 runs scripts only from
            // KEA_HOOK_SCRIPTS_PATH, which bmc_test_support::kea sets to it.
            let script = dir.path().join("noop.sh");
            std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let cfg = config(
                net,
                dir.path(),
                &hooks_for(variant, &empty, &script),
                "WARN",
            );
            let kea = Kea::start(&dir, &cfg);
            let p = seconds.to_string();
            let report = perfdhcp::run(
                net,
                &net.relay_bmc(),
                &["-r", "12000", "-R", "20000", "-p", &p],
                Duration::from_secs(seconds + 30),
            );
            let rate = report
                .rate()
                .unwrap_or_else(|| panic!("no rate from perfdhcp ({variant}):\n{}", report.output));
            if variant == "ours" {
                costs.push(kea.bmc_status());
            }
            kea.stop();
            rates[i].push(rate);
            line.push_str(&format!("  {variant} {rate:.0}/s"));
        }
        println!("{line}");
    }

    // Within a round the variants ran seconds apart, so the per-round ratio
    // cancels most of what the machine's other load does to whole rounds.
    let per_round = |a: usize, b: usize| -> Vec<f64> {
        rates[a].iter().zip(&rates[b]).map(|(x, y)| x / y).collect()
    };
    let at = |name: &str| VARIANTS.iter().position(|v| *v == name).unwrap();
    let mut ours_empty = per_round(at("ours"), at("empty"));
    let mut empty_none = per_round(at("empty"), at("none"));
    let round_spread: Vec<String> = rates
        .iter()
        .map(|r| {
            let (lo, hi) = min_max(r);
            format!("{:.0} %", (hi - lo) / lo * 100.0)
        })
        .collect();
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    println!("load average at the end: {}", load_average());
    println!(
        "\nmedian 4-way exchanges/s (ratio to no hook, ratio to empty hook, \
         spread of the rounds (max-min)/min):"
    );
    for ((variant, m), s) in VARIANTS.iter().zip(&medians).zip(&round_spread) {
        println!(
            "  {variant:<10} {m:>8.0}   {:.3}   {:.3}   {s}",
            m / medians[0],
            m / medians[1]
        );
    }
    let (oe_lo, oe_hi) = min_max(&ours_empty);
    let (en_lo, en_hi) = min_max(&empty_none);
    println!(
        "per-round ratios, median (min..max): ours/empty {:.3} ({oe_lo:.3}..{oe_hi:.3}), \
         empty/none {:.3} ({en_lo:.3}..{en_hi:.3})",
        median(&mut ours_empty),
        median(&mut empty_none)
    );
    let mut p50: Vec<f64> = costs
        .iter()
        .map(|s| s["callout-cost"]["p50-ns"].as_f64().unwrap())
        .collect();
    let mut p99: Vec<f64> = costs
        .iter()
        .map(|s| s["callout-cost"]["p99-ns"].as_f64().unwrap())
        .collect();
    let mut mean: Vec<f64> = costs
        .iter()
        .map(|s| s["callout-cost"]["mean-ns"].as_f64().unwrap())
        .collect();
    let events: u64 = costs
        .iter()
        .map(|s| s["callout-cost"]["count"].as_u64().unwrap())
        .sum();
    let (p99_lo, p99_hi) = min_max(&p99);
    println!(
        "\nhook callout path (copy + filter + try_send), from bmc-status, median over rounds \
         ({events} events): p50 <= {:.0} ns, p99 <= {:.0} ns (rounds {p99_lo:.0}..{p99_hi:.0}), \
         mean {:.0} ns",
        median(&mut p50),
        median(&mut p99),
        median(&mut mean)
    );
    if let Some(last) = costs.last() {
        println!(
            "last round's histogram: {}",
            last["callout-cost"]["buckets"]
        );
        println!("last round's events: {}", last["events"]);
    }
}
