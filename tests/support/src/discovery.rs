//! What the tests and benchmarks that run BMC fleets behind a test Kea
//! share: emulated BMCs on the opted-in pool's first addresses, the hook's
//! Redfish parameters for them, and waiting on `bmc-status`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::emulator::{Emulator, Faults};
use crate::kea::{config, Hook, Kea, Net};
use crate::postgres::LeaseDb;

/// The password of the BMCs [`bmcs_on_pool`] and [`good_bmcs_on_pool`] set
/// up (but BMC `i % 7 == 3` of the former).
pub const PASS: &str = "emulated-Passw0rd";

/// The first addresses of the opted-in pool (see [`crate::kea::config`]):
/// Kea hands these out first.
pub fn pool_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 10)) + i)
}

/// An emulated BMC on each of the first `n` pool addresses, every model in
/// turn; BMC `i` with `i % 7 == 3` has another password.
pub fn bmcs_on_pool(n: u32) -> Emulator {
    fleet_on_pool(n, Duration::ZERO, |i| {
        if i % 7 == 3 {
            "not-the-one"
        } else {
            PASS
        }
    })
}

/// An emulated BMC on each of the first `n` pool addresses, every model in
/// turn, BMC `i` accepting `password(i)`, each answering after `latency`.
pub fn fleet_on_pool(
    n: u32,
    latency: Duration,
    password: impl Fn(u32) -> &'static str,
) -> Emulator {
    let emu = Emulator::start(0);
    let faults = Faults {
        latency,
        ..Faults::default()
    };
    emu.add_fleet(pool_addr(0), n, &faults, password);
    emu
}

/// An emulated BMC with the right password on each of the first `n` pool
/// addresses, every model in turn, each answering after `latency`.
pub fn good_bmcs_on_pool(n: u32, latency: Duration) -> Emulator {
    fleet_on_pool(n, latency, |_| PASS)
}

/// `bmc-status`'s count of BMCs in `state` (0 before the first count).
pub fn count(status: &Value, state: &str) -> u64 {
    status["bmcs"][state].as_u64().unwrap_or(0)
}

/// Waits until `n` BMCs are in `state`; returns `bmc-status`.
pub fn all_in_state(kea: &Kea, state: &str, n: u64, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let s = kea.bmc_status();
        if count(&s, state) >= n {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {n} BMCs {state}: {}\n{}",
            s["bmcs"],
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How often each MAC was logged as discovered.
pub fn discoveries_per_mac(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in log.lines() {
        if let Some(rest) = l.split("discovered BMC ").nth(1) {
            if let Some(mac) = rest.split_whitespace().next() {
                *out.entry(mac.to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// The hook's `redfish` parameters for `emu`: a credentials file with
/// root/`password` and the emulator's CA written into `dir`, certificates
/// verified, 2 s per request, 20 s per discovery.
pub fn redfish_params(dir: &Path, emu: &Emulator, password: &str) -> Value {
    let creds = dir.join("bmc-credentials.json");
    std::fs::write(
        &creds,
        json!([{"username": "root", "password": password}]).to_string(),
    )
    .unwrap();
    let ca = dir.join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    json!({
        "credentials-file": creds,
        "port": emu.port,
        "tls-mode": "verify",
        "tls-ca-file": ca,
        "request-timeout-ms": 2000,
        "deadline-ms": 20000,
    })
}

/// Where a test's Kea keeps its leases: the memfile of
/// [`crate::kea::config`], or a PostgreSQL database ([`crate::postgres`]).
pub enum LeaseStore {
    Memfile,
    Postgres(LeaseDb),
}

impl LeaseStore {
    /// [`crate::kea::config`] with its leases here.
    pub fn config(&self, net: Net, dir: &Path, hooks: &[Hook], log_severity: &str) -> Value {
        let mut cfg = config(net, dir, hooks, log_severity);
        if let LeaseStore::Postgres(db) = self {
            db.use_in(&mut cfg, dir);
        }
        cfg
    }

    /// Leased address -> MAC, read from the store itself (not through
    /// Kea or the hook).
    pub fn leases(&self, kea: &Kea) -> BTreeMap<String, String> {
        match self {
            LeaseStore::Memfile => leases(kea),
            LeaseStore::Postgres(db) => db.leases4(),
        }
    }
}

/// Leased address -> MAC, from Kea's memfile.
pub fn leases(kea: &Kea) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(kea.dir.join("leases4.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.to_string(), f.get(1)?.to_string()))
        })
        .collect()
}

/// Leases the hook has handled: processed or failed.
pub fn handled(s: &Value) -> u64 {
    s["events"]["processed"].as_u64().unwrap_or(0) + s["events"]["failed"].as_u64().unwrap_or(0)
}

/// Waits until at least `n` leases are handled and nothing is queued or in
/// flight; returns `bmc-status`. On timeout the panic shows the last status
/// and Kea's log tail.
pub fn settled(kea: &Kea, n: u64) -> Value {
    let start = std::time::Instant::now();
    loop {
        let s = kea.bmc_status();
        let idle = s["queue"]["depth"] == 0 && s["queue"]["in-flight"] == 0;
        if handled(&s) >= n && idle {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {n} leases to be handled: {s}\n{}",
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bmc-list` filtered by state: the MACs in it.
pub fn in_state(kea: &Kea, state: &str) -> Vec<String> {
    let a = kea.command("bmc-list", Some(json!({ "state": state })));
    assert!(a["result"] == 0 || a["result"] == 3, "{a}");
    a["arguments"]["bmcs"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|b| b["mac"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
