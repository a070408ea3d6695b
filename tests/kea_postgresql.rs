//! The hook with Kea's PostgreSQL lease backend instead of the memfile: a
//! throwaway cluster per test (tests/support/src/postgres.rs), one database
//! initialised by `kea-admin db-init pgsql`, Kea's `lease-database` pointing
//! at it (and on Kea ≥ 2.7.3 the backend's hook library loaded). A burst of
//! 200 BMCs is discovered, reconciliation and the pool report walk the
//! leases through Kea's lease manager (a lease that exists only in the
//! database is found), and the scenarios of tests/kea_reconciliation.rs
//! (queue overflow, SIGKILL mid-burst) recover every BMC from PostgreSQL.
//!
//! Needs root (loopback addresses), kea-dhcp4, perfdhcp, kea-admin and
//! Debian's postgresql (run as the postgres user): see README.md.

use std::path::Path;
use std::time::Duration;

use bmc_test_support::discovery::{
    all_in_state, discoveries_per_mac, good_bmcs_on_pool, pool_addr, redfish_params, LeaseStore,
    PASS,
};
use bmc_test_support::kea::{hook, kea_version, Kea, Net};
use bmc_test_support::postgres::Postgres;
use bmc_test_support::reconciliation::{full_queue_recovered, killed_mid_burst_recovered};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::json;

fn postgres(port: u16) -> Postgres {
    Postgres::start(port, kea_version(env!("BMC_KEA_VERSION")))
}

#[test]
fn a_200_bmc_burst_with_leases_in_postgresql_is_discovered_and_reconciled_from_it() {
    let net = Net::new(81);
    let pg = postgres(15481);
    let store = LeaseStore::Postgres(pg.database("server1"));
    let LeaseStore::Postgres(db) = &store else {
        unreachable!()
    };
    let dir = TempDir::new("pg-burst");
    let n = 200u32;
    // One more BMC than the burst: its lease is written straight into the
    // database below, past Kea's callouts.
    let emu = good_bmcs_on_pool(n + 1, Duration::ZERO);
    let params = json!({
        "workers": 8,
        "mac-ouis": ["14:18:77"],
        "reconcile-interval-s": 0,
        "redfish": redfish_params(dir.path(), &emu, PASS),
    });
    let cfg = store.config(net, dir.path(), &[hook(params)], "INFO");
    let kea = Kea::start(&dir, &cfg);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:81:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(120));
    assert_eq!(status["events"]["panics"], 0, "{status}");

    // The leases are in PostgreSQL, and nowhere else.
    let leased = store.leases(&kea);
    assert_eq!(leased.len(), n as usize, "{leased:?}");
    assert!(
        !Path::new(&dir.path().join("leases4.csv")).exists(),
        "Kea wrote a memfile"
    );
    // Every BMC discovered, none without a lease event of its own. Once
    // in a few runs here a lease's INSERT took over a second, perfdhcp
    // sent its REQUEST again, Kea selected the lease a second time and the
    // hook, seeing a new lease, discovered that BMC again: a duplicate,
    // bounded by the extra events, never a loss.
    let per_mac = discoveries_per_mac(&kea.log());
    for mac in leased.values() {
        assert!(per_mac.contains_key(mac), "{mac} never discovered");
    }
    let discoveries: usize = per_mac.values().sum();
    let seen = status["events"]["seen"].as_u64().unwrap_or(0) as usize;
    assert!(
        discoveries <= seen,
        "{discoveries} discoveries from {seen} lease events: {status}"
    );
    eprintln!("{n} BMCs: {discoveries} discoveries from {seen} lease events");

    // Reconciliation walks the database through Kea's lease manager: all
    // 200 up to date.
    let a = kea.command("bmc-reconcile", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["arguments"]["leases"], n, "{a}");
    assert_eq!(a["arguments"]["up-to-date"], n, "{a}");
    assert_eq!(a["arguments"]["queued"], 0, "{a}");

    // A lease no callout saw (written by another server on the same
    // database, or kea-admin lease-upload): only a walk of the database
    // finds it, and its BMC is discovered.
    let extra = pool_addr(n);
    pg.sql(
        &db.name,
        &format!(
            "INSERT INTO lease4 (address, hwaddr, valid_lifetime, expire, subnet_id, \
             fqdn_fwd, fqdn_rev, hostname, state) VALUES \
             ('{extra}'::inet - '0.0.0.0'::inet, decode('141877810fff', 'hex'), 3600, \
             now() + interval '1 hour', 1, false, false, '', 0)"
        ),
    );
    let a = kea.command("bmc-reconcile", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["arguments"]["leases"], n + 1, "{a}");
    assert_eq!(a["arguments"]["queued"], 1, "{a}");
    all_in_state(&kea, "discovered", n as u64 + 1, Duration::from_secs(30));
    assert!(
        kea.log()
            .contains(&format!("discovered BMC 14:18:77:81:0f:ff at {extra}:")),
        "{}",
        kea.log_tail(20)
    );

    // The pool report walks the same database.
    let a = kea.command("bmc-pool-report", Some(json!({"subnet-id": 1})));
    assert_eq!(a["result"], 0, "{a}");
    let s = &a["arguments"]["subnets"][0];
    assert_eq!(s["assigned-addresses"], n + 1, "{a}");
    assert_eq!(s["bmc-leases"], n + 1, "{a}");
    assert!(kea.child_alive());
}

#[test]
fn a_full_queue_with_leases_in_postgresql_loses_nothing() {
    let pg = postgres(15482);
    let store = LeaseStore::Postgres(pg.database("server1"));
    full_queue_recovered(Net::new(82), "pg-queue-full", 200, &store);
}

#[test]
fn kea_killed_mid_burst_with_leases_in_postgresql_recovers_every_bmc() {
    let pg = postgres(15483);
    let store = LeaseStore::Postgres(pg.database("server1"));
    killed_mid_burst_recovered(Net::new(83), "pg-sigkill", 200, &store);
}

/// The database unreachable when reconciliation should recover a full
/// queue's drops: the walk fails (Kea's error answered and logged), and
/// once PostgreSQL is back the hook tries again by itself (no timed
/// reconciliation here) and recovers every dropped BMC.
#[test]
fn drops_are_recovered_after_the_lease_database_comes_back() {
    let net = Net::new(84);
    let mut pg = postgres(15484);
    let store = LeaseStore::Postgres(pg.database("server1"));
    let dir = TempDir::new("pg-outage");
    let n = 20u32;
    // ~15 requests of 400 ms a discovery: the 4 workers and the queue of
    // 8 stay busy for seconds after the burst, before the tick's own
    // reconciliation of the drops (queue half empty) could run.
    let emu = good_bmcs_on_pool(n, Duration::from_millis(400));
    let params = json!({
        "workers": 4,
        "queue-capacity": 8,
        "reconcile-interval-s": 0,
        "redfish": redfish_params(dir.path(), &emu, PASS),
    });
    let kea = Kea::start(
        &dir,
        &store.config(net, dir.path(), &[hook(params)], "INFO"),
    );
    // The start-up walk first: after the burst it would find the dropped
    // leases itself.
    wait_for(
        "the start-up reconciliation",
        Duration::from_secs(10),
        || (kea.bmc_status()["events"]["reconciliations"] == 1).then_some(()),
    );
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:84:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = kea.bmc_status();
    let drops = status["events"]["dropped-queue-full"].as_u64().unwrap_or(0);
    assert!(
        drops > 0,
        "the burst should overflow a queue of 8: {status}"
    );

    pg.stop();
    let a = kea.command("bmc-reconcile", None);
    assert_eq!(a["result"], 1, "a walk of a stopped database: {a}");
    eprintln!("bmc-reconcile with PostgreSQL stopped: {}", a["text"]);
    let status = kea.bmc_status();
    assert_eq!(
        status["events"]["reconciliations"], 1,
        "only the start-up walk may have run before the outage (else this test \
         proves nothing; slow the BMCs down): {status}"
    );
    std::thread::sleep(Duration::from_secs(1));
    pg.start_again();

    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(90));
    eprintln!(
        "{drops} drops, recovered after the outage: {}",
        status["events"]
    );
    let per_mac = discoveries_per_mac(&kea.log());
    for mac in store.leases(&kea).values() {
        assert_eq!(per_mac.get(mac), Some(&1), "{mac}");
    }
    assert!(kea.child_alive());
}
