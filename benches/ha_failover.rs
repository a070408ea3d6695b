//! What a failover costs: the same hot-standby burst of BENCH_HA_BMCS BMCs
//! (default 100; real kea-dhcp4 pair, perfdhcp, the emulator answering
//! every Redfish request after BENCH_LATENCY_MS, default 50; the test
//! NetBox), run side by side in one run:
//!
//! 1. without a failover: the primary registers every BMC;
//! 2. with the primary killed (SIGKILL) once BENCH_HA_KILL_PCT % (default
//!    40) are registered: the standby takes over, reconciles and registers
//!    the rest, rediscovering the BMCs the primary had finished.
//!
//! Printed for both: the time from the burst's start to the last BMC
//! registered (and, with the failover, from the primary's death), the
//! Redfish requests the BMCs answered (the emulator's count) and the NetBox
//! requests (the hook's `bmc-status` counters, both servers; the dead
//! primary's as read just before it was killed); then the failover's
//! extra requests against the BMCs the dead primary had not registered
//! (its lost work).
//!
//! `cargo bench --bench ha_failover` (root; resets the test NetBox).
//! BENCH_WORKERS sets each server's workers (default 4, as in
//! tests/kea_ha.rs).

use std::time::{Duration, Instant};

use bmc_test_support::discovery::{count, redfish_params, PASS};
use bmc_test_support::ha::{
    bmc_requests, fleet, in_netbox, kill_when, netbox_requests, none_dead, wait_ha_state, Mode,
    Pair,
};
use bmc_test_support::kea::Kea;
use bmc_test_support::netbox::{netbox, reset, Instance};
use bmc_test_support::{env_or, shared};
use dhcp_bmc_discovery::netbox::NetBox;
use serde_json::{json, Value};

/// One burst's measurements.
struct Run {
    /// Burst start to the last BMC registered.
    all_registered_s: f64,
    /// The primary's death to the last BMC registered (failover only).
    after_death_s: Option<f64>,
    /// BMCs the primary had registered when it died (failover only).
    registered_at_death: Option<u64>,
    redfish: u64,
    netbox_reads: u64,
    netbox_writes: u64,
}

impl Run {
    fn netbox(&self) -> u64 {
        self.netbox_reads + self.netbox_writes
    }
}

fn reads_writes(status: &Value) -> (u64, u64) {
    let r = &status["netbox"]["requests"];
    (
        r["reads"].as_u64().unwrap_or(0),
        r["writes"].as_u64().unwrap_or(0),
    )
}

/// Waits (polling every 200 ms, so as not to load Kea) until `kea` has
/// `n` BMCs registered; its bmc-status then.
fn all_registered(kea: &Kea, who: &str, n: u32) -> Value {
    let start = Instant::now();
    loop {
        let s = kea.bmc_status();
        none_dead(kea, &s);
        if count(&s, "registered") >= u64::from(n) {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "{who}: not all {n} registered after 30 min: {}\n{}",
            s["bmcs"],
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The burst on Net blocks `block`/`block + 1`, the primary killed at
/// `kill_pct` % registered if given.
fn run(
    inst: &Instance,
    n: u32,
    latency: Duration,
    workers: u64,
    kill_pct: Option<u64>,
    block: u8,
) -> Run {
    reset();
    let emu = fleet(n, latency, true);
    let tag = if kill_pct.is_some() {
        "bench-ha-failover"
    } else {
        "bench-ha-steady"
    };
    let pair = Pair::new(block, Mode::HotStandby, tag, n, |dir| {
        let token_file = dir.path().join("netbox-token");
        std::fs::write(&token_file, format!("{}\n", inst.token)).expect("write the token file");
        json!({
            "workers": workers,
            "reconcile-interval-s": 0,
            "retry-backoff-s": 1,
            "redfish": redfish_params(dir.path(), &emu, PASS),
            "netbox": {"url": inst.url, "token-file": token_file, "create-missing": true},
        })
    });
    let (mut primary, standby) = pair.start();
    let t0 = Instant::now();
    let leased = pair.burst(
        &primary,
        &standby,
        n,
        &format!("14:18:77:{block:02x}:00:00"),
    );
    let (primary_status, standby_status, after_death_s, registered_at_death) = match kill_pct {
        None => {
            let p = all_registered(&primary, "the primary", n);
            (p, standby.bmc_status(), None, None)
        }
        Some(pct) => {
            let at = (u64::from(n) * pct).div_ceil(100);
            let killed = kill_when(
                &mut primary,
                &format!("{at} registered by the primary"),
                Duration::from_secs(900),
                |s| count(s, "registered") >= at,
            );
            let death = Instant::now();
            wait_ha_state(
                &standby,
                "the standby",
                "partner-down",
                Duration::from_secs(30),
            );
            let s = all_registered(&standby, "the standby", n);
            let registered = count(&killed, "registered");
            (
                killed,
                s,
                Some(death.elapsed().as_secs_f64()),
                Some(registered),
            )
        }
    };
    let all_registered_s = t0.elapsed().as_secs_f64();
    let client = NetBox::connect(&inst.url, &inst.token).expect("connect to NetBox");
    let objs = in_netbox(&client, &leased);
    assert_eq!(objs.devices, n as usize, "devices in NetBox");
    assert!(
        objs.not_once().is_empty(),
        "not once in NetBox: {:?}",
        objs.not_once()
    );
    let (r1, w1) = reads_writes(&primary_status);
    let (r2, w2) = reads_writes(&standby_status);
    assert_eq!(
        netbox_requests(&primary_status) + netbox_requests(&standby_status),
        r1 + w1 + r2 + w2
    );
    Run {
        all_registered_s,
        after_death_s,
        registered_at_death,
        redfish: bmc_requests(&emu, n),
        netbox_reads: r1 + r2,
        netbox_writes: w1 + w2,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("ha_failover: skipped (run it with `cargo bench --bench ha_failover`)");
        return;
    }
    let n = env_or("BENCH_HA_BMCS", 100) as u32;
    let latency = Duration::from_millis(env_or("BENCH_LATENCY_MS", 50));
    let workers = env_or("BENCH_WORKERS", 4);
    let kill_pct = env_or("BENCH_HA_KILL_PCT", 40).clamp(1, 99);
    shared::or_exit(
        "ha_failover",
        shared::find_mockups_dir().and(shared::find_netbox_scripts()),
    );
    let (_guard, inst) = netbox();
    println!(
        "ha_failover: {n} BMCs, a hot-standby pair, {} ms per Redfish request, {workers} workers \
         a server, NetBox at {}",
        latency.as_millis(),
        inst.url
    );

    let steady = run(inst, n, latency, workers, None, 75);
    println!(
        "no failover: all {n} registered {:.1} s after the burst started; {} Redfish requests, \
         {} NetBox requests ({} reads, {} writes)",
        steady.all_registered_s,
        steady.redfish,
        steady.netbox(),
        steady.netbox_reads,
        steady.netbox_writes
    );
    let failover = run(inst, n, latency, workers, Some(kill_pct), 77);
    let at_death = failover.registered_at_death.unwrap_or(0);
    let lost = u64::from(n) - at_death;
    println!(
        "failover:    primary killed with {at_death} registered; all {n} registered {:.1} s after \
         the burst started, {:.1} s after the primary's death; {} Redfish requests, {} NetBox \
         requests ({} reads, {} writes)",
        failover.all_registered_s,
        failover.after_death_s.unwrap_or(0.0),
        failover.redfish,
        failover.netbox(),
        failover.netbox_reads,
        failover.netbox_writes
    );
    let extra = |with: u64, without: u64| {
        let d = with as f64 - without as f64;
        format!("{d:+.0} ({:+.0} %)", 100.0 * d / (without.max(1) as f64))
    };
    println!(
        "failover cost: {:+.1} s to the last registration; {} Redfish requests, {} NetBox requests \
         ({} reads, {} writes); the dead primary's lost work: {lost} BMCs not registered \
         ({:.0} % of the fleet), {:.1} extra Redfish and {:.1} extra NetBox requests per lost BMC",
        failover.all_registered_s - steady.all_registered_s,
        extra(failover.redfish, steady.redfish),
        extra(failover.netbox(), steady.netbox()),
        extra(failover.netbox_reads, steady.netbox_reads),
        extra(failover.netbox_writes, steady.netbox_writes),
        100.0 * lost as f64 / f64::from(n),
        (failover.redfish as f64 - steady.redfish as f64) / lost.max(1) as f64,
        (failover.netbox() as f64 - steady.netbox() as f64) / lost.max(1) as f64,
    );
}
