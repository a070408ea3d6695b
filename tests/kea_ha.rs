//! A Kea HA pair with the hook in both servers, for real: two kea-dhcp4
//! with libdhcp_lease_cmds + libdhcp_ha + this hook, each on loopback
//! addresses of its own, talking HA over their own HTTP listeners; perfdhcp
//! plays the relay that forwards to both; the Redfish emulator and the
//! tests' NetBox serve both (the pair: tests/support/src/ha.rs).
//!
//! Hot-standby: a burst leased by the primary, the primary killed (SIGKILL)
//! mid-burst, the standby takes over and finds the BMCs the primary leased
//! but never registered (they reached it only as HA lease updates, which
//! run no lease callouts); every BMC ends one device in NetBox; the primary
//! comes back and writes nothing.
//!
//! Load-balancing: each server leases and registers the BMCs of its own
//! scope; one is killed before it has registered its share, the survivor
//! takes over its scope and registers the rest; every BMC ends one device.
//!
//! The takeovers without NetBox (`..._discovers_...`) run on every Kea of
//! the version matrix, where NetBox is not reachable.
//!
//! Needs root (loopback addresses), kea-dhcp4 with Debian's HA and
//! lease_cmds hooks, perfdhcp and the tests' NetBox: see README.md.

use std::time::{Duration, Instant};

use bmc_test_support::discovery::{count, redfish_params, PASS};
use bmc_test_support::ha::{fleet, in_netbox, kill_when, none_dead, wait_ha_state, Mode, Pair};
use bmc_test_support::kea::{kea_version, Kea};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::postgres::Postgres;
use bmc_test_support::wait_for;
use serde_json::{json, Value};

/// The hook's HA role in `kea`'s bmc-status once it reads `state` (the
/// hook asks the HA hook every 2 s).
fn role_in(kea: &Kea, who: &str, state: &str) -> Value {
    wait_for(
        &format!("{who}'s HA role {state} in bmc-status"),
        Duration::from_secs(10),
        || {
            let s = kea.bmc_status();
            (s["ha"]["state"] == state).then(|| s["ha"].clone())
        },
    )
}

/// The scopes of an `ha` role, sorted.
fn scopes(role: &Value) -> Vec<String> {
    let mut s: Vec<String> = role["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    s.sort();
    s
}

/// The hook's parameters for a pair's server: `workers`, no periodic
/// reconciliation, the emulator's BMCs, NetBox if given (url, token).
fn params(
    dir: &bmc_test_support::TempDir,
    emu: &bmc_test_support::emulator::Emulator,
    workers: u64,
    netbox: Option<(&str, &str)>,
) -> Value {
    let mut p = json!({
        "workers": workers,
        "reconcile-interval-s": 0,
        "redfish": redfish_params(dir.path(), emu, PASS),
    });
    if let Some((url, token)) = netbox {
        let token_file = dir.path().join("netbox-token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        p["retry-backoff-s"] = json!(1);
        p["netbox"] = json!({"url": url, "token-file": token_file, "create-missing": true});
    }
    p
}

#[test]
fn hot_standby_primary_killed_mid_burst_every_bmc_registered_once() {
    let (_guard, nb) = netbox();
    reset();
    let n = 100;
    // 50 ms a Redfish request: the primary is still busy when it dies.
    let emu = fleet(n, Duration::from_millis(50), true);
    let pair = Pair::new(67, Mode::HotStandby, "ha", n, |dir| {
        params(dir, &emu, 4, Some((&nb.url, &nb.token)))
    });
    let (mut primary, standby) = pair.start();
    let role = role_in(&standby, "the standby", "hot-standby");
    assert_eq!(role["scopes"], json!([]), "{role}");
    assert_eq!(role["takeovers"], 0, "{role}");
    // Taking up its own scope at start-up is no takeover.
    let role = role_in(&primary, "the primary", "hot-standby");
    assert_eq!(role["scopes"], json!(["server1"]), "{role}");
    assert_eq!(role["takeovers"], 0, "{role}");

    let leased = pair.burst(&primary, &standby, n, "14:18:77:67:00:00");
    // SIGKILL once ~40 are registered.
    let killed_at = kill_when(
        &mut primary,
        "40 registered by the primary",
        Duration::from_secs(240),
        |s| count(s, "registered") >= 40,
    );
    let t_kill = Instant::now();
    eprintln!(
        "primary killed with {} registered: {}",
        count(&killed_at, "registered"),
        killed_at["bmcs"]
    );

    // The standby takes over and reconciles the leases it got as updates.
    wait_ha_state(
        &standby,
        "the standby",
        "partner-down",
        Duration::from_secs(30),
    );
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let settled = wait_for(
        "all 100 registered by the standby",
        Duration::from_secs(600),
        || {
            let s = standby.bmc_status();
            none_dead(&standby, &s);
            (count(&s, "registered") == n as u64).then_some(s)
        },
    );
    let t_all = t_kill.elapsed();
    assert_eq!(settled["ha"]["takeovers"], 1, "{}", settled["ha"]);
    assert_eq!(
        settled["ha"]["scopes"],
        json!(["server1"]),
        "{}",
        settled["ha"]
    );
    let log = standby.log();
    let takeover = log
        .lines()
        .find(|l| l.contains("BMC_DISCOVERY_HA_TAKEOVER"))
        .unwrap_or_else(|| panic!("no takeover logged:\n{}", standby.log_tail(40)));
    eprintln!("{takeover}");
    eprintln!(
        "standby: all {n} registered {:.1} s after the primary's death",
        t_all.as_secs_f64()
    );
    let after_failover = in_netbox(&client, &leased);
    assert_eq!(after_failover.devices, n as usize);
    assert!(
        after_failover.not_once().is_empty(),
        "{:?}",
        after_failover.not_once()
    );

    // The primary returns with its state file, syncs from the standby and
    // takes its role back; what it had left undone it discovers again and
    // finds in NetBox as it should be.
    // A returning primary syncs the leases first.
    let primary = pair.start_server1(Duration::from_secs(90));
    wait_ha_state(
        &standby,
        "the standby",
        "hot-standby",
        Duration::from_secs(30),
    );
    let back = wait_for(
        "the primary's backlog done",
        Duration::from_secs(300),
        || {
            let s = primary.bmc_status();
            none_dead(&primary, &s);
            let busy = ["queued", "discovering", "discovered", "failed"]
                .iter()
                .map(|st| count(&s, st))
                .sum::<u64>();
            (busy == 0 && s["queue"]["depth"] == 0 && s["queue"]["in-flight"] == 0).then_some(s)
        },
    );
    eprintln!("primary after its return: {}", back["bmcs"]);
    let after_return = in_netbox(&client, &leased);
    assert_eq!(after_return.devices, n as usize);
    assert_eq!(
        after_return.changes, after_failover.changes,
        "the returning primary changed NetBox"
    );
    assert!(primary.child_alive() && standby.child_alive());
}

/// The takeover without NetBox, on every Kea version of the matrix: the
/// primary leases 60 BMCs and is killed with about a third discovered;
/// the standby, which saw none of them as a lease callout, discovers all.
#[test]
fn hot_standby_takeover_discovers_the_bmcs_the_dead_primary_left() {
    hot_standby_takeover(69, None);
}

/// The same with each server's leases in a PostgreSQL database of its own
/// (one cluster): the standby's reconciliation reads them through Kea's
/// lease manager.
#[test]
fn hot_standby_takeover_with_leases_in_postgresql() {
    let pg = Postgres::start(15475, kea_version(env!("BMC_KEA_VERSION")));
    hot_standby_takeover(75, Some(&pg));
}

fn hot_standby_takeover(block: u8, pg: Option<&Postgres>) {
    let n = 60;
    // 100 ms a Redfish request: a discovery takes a second or two, so the
    // primary dies with most of the burst still to do.
    let emu = fleet(n, Duration::from_millis(100), false);
    let what = if pg.is_some() {
        "ha-pg"
    } else {
        "ha-discovery"
    };
    let mut pair = Pair::new(block, Mode::HotStandby, what, n, |dir| {
        params(dir, &emu, 2, None)
    });
    let dbs = pg.map(|pg| (pg.database("server1"), pg.database("server2")));
    if let Some((db_a, db_b)) = &dbs {
        db_a.use_in(&mut pair.cfg_a, pair.dir_a.path());
        db_b.use_in(&mut pair.cfg_b, pair.dir_b.path());
    }
    let (mut primary, standby) = pair.start();
    let base_mac = format!("14:18:77:{block}:00:00");
    match &dbs {
        None => {
            pair.burst(&primary, &standby, n, &base_mac);
        }
        Some((db_a, db_b)) => {
            pair.send_burst(n, &base_mac);
            assert_eq!(db_a.leases4().len(), n as usize, "server1's leases");
            assert_eq!(db_b.leases4().len(), n as usize, "server2's leases");
        }
    }
    let killed_at = kill_when(
        &mut primary,
        "20 discovered by the primary",
        Duration::from_secs(120),
        |s| count(s, "discovered") >= 20,
    );
    eprintln!("primary killed: {}", killed_at["bmcs"]);
    assert!(count(&killed_at, "discovered") < n as u64);
    assert_eq!(
        standby.bmc_status()["events"]["accepted"],
        0,
        "the standby ran no lease callout"
    );

    wait_ha_state(
        &standby,
        "the standby",
        "partner-down",
        Duration::from_secs(30),
    );
    let done = wait_for(
        "all 60 discovered by the standby",
        Duration::from_secs(180),
        || {
            let s = standby.bmc_status();
            none_dead(&standby, &s);
            (count(&s, "discovered") == n as u64).then_some(s)
        },
    );
    assert_eq!(done["ha"]["takeovers"], 1, "{}", done["ha"]);
    assert_eq!(done["ha"]["state"], "partner-down", "{}", done["ha"]);
    assert!(standby
        .log()
        .lines()
        .any(|l| l.contains("BMC_DISCOVERY_HA_TAKEOVER")));
    assert!(standby.child_alive());
}

/// `events.accepted` of a bmc-status: the leases its lease callouts took.
fn accepted(status: &Value) -> u64 {
    status["events"]["accepted"].as_u64().unwrap_or(0)
}

/// Both servers of a load-balancing pair in load-balancing, each serving
/// its own scope and having taken over nothing.
fn both_balancing(one: &Kea, two: &Kea) {
    for (kea, name) in [(one, "server1"), (two, "server2")] {
        let role = role_in(kea, name, "load-balancing");
        assert_eq!(scopes(&role), [name], "{role}");
        assert_eq!(role["takeovers"], 0, "{role}");
    }
}

/// Each server's share of a burst of `n` (its lease callouts' count):
/// both non-trivial (Kea's hash splits sequential MACs about evenly), and
/// together every BMC once.
fn shares(one: &Kea, two: &Kea, n: u64) -> (u64, u64) {
    let (s1, s2) = (accepted(&one.bmc_status()), accepted(&two.bmc_status()));
    eprintln!("shares of {n}: server1 {s1}, server2 {s2}");
    assert_eq!(s1 + s2, n, "server1 {s1} + server2 {s2}");
    assert!(s1 >= n / 5 && s2 >= n / 5, "a lopsided split: {s1} / {s2}");
    (s1, s2)
}

#[test]
fn load_balancing_each_registers_its_share_the_survivor_the_rest() {
    let (_guard, nb) = netbox();
    reset();
    let t_start = Instant::now();
    // 40, not 100 as with hot-standby: NetBox's write rate (~0.3-0.6
    // registrations/s here) sets the length; 100 took 7 min.
    let n = 40;
    let mode = Mode::LoadBalancing;
    // 50 ms a Redfish request, as in the hot-standby test.
    let emu = fleet(mode.addresses(n), Duration::from_millis(50), true);
    let pair = Pair::new(71, mode, "ha-lb", n, |dir| {
        params(dir, &emu, 4, Some((&nb.url, &nb.token)))
    });
    let (one, mut two) = pair.start();
    both_balancing(&one, &two);

    let leased = pair.burst(&one, &two, n, "14:18:77:71:00:00");
    let (_, share2) = shares(&one, &two, u64::from(n));
    // server2 dies with ~40 % of its share registered: the rest of it is
    // the survivor's to find.
    let killed_at = kill_when(
        &mut two,
        "server2 with 40 % of its share registered",
        Duration::from_secs(240),
        |s| count(s, "registered") * 10 >= share2 * 4,
    );
    let t_kill = Instant::now();
    eprintln!("server2 killed: {}", killed_at["bmcs"]);
    assert!(
        count(&killed_at, "registered") < share2,
        "{}",
        killed_at["bmcs"]
    );

    wait_ha_state(&one, "server1", "partner-down", Duration::from_secs(30));
    let settled = wait_for(
        "all 40 registered by server1",
        Duration::from_secs(600),
        || {
            let s = one.bmc_status();
            none_dead(&one, &s);
            (count(&s, "registered") == u64::from(n)).then_some(s)
        },
    );
    eprintln!(
        "server1: all {n} registered {:.1} s after server2's death, {:.1} s into the test",
        t_kill.elapsed().as_secs_f64(),
        t_start.elapsed().as_secs_f64()
    );
    let role = &settled["ha"];
    assert_eq!(role["takeovers"], 1, "{role}");
    assert_eq!(role["state"], "partner-down", "{role}");
    assert_eq!(scopes(role), ["server1", "server2"], "{role}");
    // (Its start-up logged one too, for its own scope.)
    assert!(
        one.log()
            .lines()
            .any(|l| l.contains("BMC_DISCOVERY_HA_TAKEOVER") && l.contains("partner-down")),
        "no takeover logged:\n{}",
        one.log_tail(40)
    );
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let objs = in_netbox(&client, &leased);
    assert_eq!(objs.devices, n as usize);
    assert!(objs.not_once().is_empty(), "{:?}", objs.not_once());
    assert!(one.child_alive());
}

/// The load-balancing takeover without NetBox, on every Kea version of the
/// matrix: server1 is killed with a third of its share discovered; server2
/// takes over its scope and discovers the rest of it.
#[test]
fn load_balancing_takeover_discovers_the_dead_servers_share() {
    let n = 60;
    let mode = Mode::LoadBalancing;
    let emu = fleet(mode.addresses(n), Duration::from_millis(100), false);
    let pair = Pair::new(73, mode, "ha-lb-discovery", n, |dir| {
        params(dir, &emu, 2, None)
    });
    let (mut one, two) = pair.start();
    both_balancing(&one, &two);
    pair.burst(&one, &two, n, "14:18:77:73:00:00");
    let (share1, _) = shares(&one, &two, u64::from(n));
    let killed_at = kill_when(
        &mut one,
        "server1 with a third of its share discovered",
        Duration::from_secs(120),
        |s| count(s, "discovered") * 3 >= share1,
    );
    eprintln!("server1 killed: {}", killed_at["bmcs"]);
    assert!(count(&killed_at, "discovered") < share1);

    wait_ha_state(&two, "server2", "partner-down", Duration::from_secs(30));
    let done = wait_for(
        "all 60 discovered by server2",
        Duration::from_secs(180),
        || {
            let s = two.bmc_status();
            none_dead(&two, &s);
            (count(&s, "discovered") == u64::from(n)).then_some(s)
        },
    );
    let role = &done["ha"];
    assert_eq!(role["takeovers"], 1, "{role}");
    assert_eq!(scopes(role), ["server1", "server2"], "{role}");
    assert!(two.child_alive());
}
