//! A Kea HA pair with the hook in both servers, for real: two kea-dhcp4
//! with libdhcp_lease_cmds + libdhcp_ha + this hook, each on loopback
//! addresses of its own, talking HA over their own HTTP listeners; perfdhcp
//! plays the relay that forwards to both; the Redfish emulator and the
//! tests' NetBox serve both.
//!
//! Hot-standby: a burst leased by the primary, the primary killed (SIGKILL)
//! mid-burst, the standby takes over and finds the BMCs the primary leased
//! but never registered (they reached it only as HA lease updates, which
//! run no lease callouts); every BMC ends one device in NetBox; the primary
//! comes back and writes nothing. The same takeover without NetBox
//! (`..._discovers_...`) runs on every Kea of the version matrix, where
//! NetBox is not reachable.
//!
//! Needs root (loopback addresses), kea-dhcp4 with Debian's HA and
//! lease_cmds hooks, perfdhcp and the tests' NetBox: see README.md.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bmc_test_support::discovery::{count, leases, pool_addr, redfish_params, PASS};
use bmc_test_support::emulator::{Emulator, Faults, FleetBmc};
use bmc_test_support::kea::{config, hook, stock_hook, Hook, Kea, Net};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

/// One server of the pair: its addresses, its HA listener's port, its name.
struct Server {
    net: Net,
    name: &'static str,
    port: u16,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}:{}/", self.net.server(), self.port)
    }
}

/// Kea's configuration for `this` server of a pair of `servers` in `mode`:
/// lease_cmds, HA (fast failure detection: a heartbeat a second, partner
/// down after 3 s without one), the hook with `params`. Both servers take
/// relayed packets from either relay address (a relay forwarding to both).
fn pair_config(
    this: &Server,
    servers: [&Server; 2],
    mode: &str,
    dir: &std::path::Path,
    params: Value,
) -> Value {
    let roles = match mode {
        "hot-standby" => ["primary", "standby"],
        _ => ["primary", "secondary"],
    };
    let peers: Vec<Value> = servers
        .iter()
        .zip(roles)
        .map(|(s, role)| {
            json!({"name": s.name, "url": s.url(), "role": role, "auto-failover": true})
        })
        .collect();
    let ha = json!({"high-availability": [{
        "this-server-name": this.name,
        "mode": mode,
        "heartbeat-delay": 1000,
        "max-response-delay": 3000,
        "max-ack-delay": 1000,
        "max-unacked-clients": 0,
        // Each server's own HTTP listener (Kea 2.2 needs it said; 2.4 and
        // later do it by default when Kea is multi-threaded, as here).
        "multi-threading": {"enable-multi-threading": true, "http-dedicated-listener": true,
                            "http-listener-threads": 2, "http-client-threads": 2},
        "peers": peers,
    }]});
    let hooks = [
        Hook::Library {
            path: stock_hook("libdhcp_lease_cmds.so"),
            parameters: json!({}),
        },
        Hook::Library {
            path: stock_hook("libdhcp_ha.so"),
            parameters: ha,
        },
        hook(params),
    ];
    let mut cfg = config(this.net, dir, &hooks, "INFO");
    let relays: Vec<String> = servers.iter().map(|s| s.net.relay_bmc()).collect();
    cfg["Dhcp4"]["subnet4"][0]["relay"] = json!({ "ip-addresses": relays });
    // A lease lifetime the test outlasts: BMCs never renew during it, so
    // what the standby registers it found by reconciling.
    cfg["Dhcp4"]["valid-lifetime"] = json!(3600);
    cfg
}

/// A NetBox that drops a connection under load fails an attempt
/// (netbox-unavailable), which is retried; no BMC may give up.
fn none_dead(kea: &Kea, status: &Value) {
    assert_eq!(count(status, "dead"), 0, "{status}\n{}", kea.log_tail(20));
}

fn ha_state(kea: &Kea) -> Value {
    kea.command("ha-heartbeat", None)["arguments"].clone()
}

fn wait_ha_state(kea: &Kea, who: &str, state: &str, limit: Duration) {
    wait_for(&format!("{who} in HA state {state}"), limit, || {
        (ha_state(kea)["state"] == state).then_some(())
    });
}

/// A hot-standby pair on Net blocks `block` (server1, the primary) and
/// `block + 1` (server2), HA listeners on ports 17000 + block, each
/// server's directory and configuration, the hook with `params(dir)`.
struct Pair {
    a: Server,
    dir_a: TempDir,
    dir_b: TempDir,
    cfg_a: Value,
    cfg_b: Value,
}

impl Pair {
    fn hot_standby(block: u8, what: &str, params: impl Fn(&TempDir) -> Value) -> Pair {
        let server = |block: u8, name| Server {
            net: Net::new(block),
            name,
            port: 17000 + u16::from(block),
        };
        let (a, b) = (server(block, "server1"), server(block + 1, "server2"));
        let dir_a = TempDir::new(&format!("{what}-primary"));
        let dir_b = TempDir::new(&format!("{what}-standby"));
        let cfg_a = pair_config(&a, [&a, &b], "hot-standby", dir_a.path(), params(&dir_a));
        let cfg_b = pair_config(&b, [&a, &b], "hot-standby", dir_b.path(), params(&dir_b));
        Pair {
            a,
            dir_a,
            dir_b,
            cfg_a,
            cfg_b,
        }
    }

    /// Starts both (the standby first) and waits until both are in
    /// hot-standby: (primary, standby).
    fn start(&self) -> (Kea, Kea) {
        let standby = Kea::start(&self.dir_b, &self.cfg_b);
        let primary = self.start_primary(Duration::from_secs(60));
        wait_ha_state(
            &standby,
            "the standby",
            "hot-standby",
            Duration::from_secs(60),
        );
        (primary, standby)
    }

    /// Starts the primary (again, with its state file and leases) and
    /// waits up to `limit` until it is in hot-standby.
    fn start_primary(&self, limit: Duration) -> Kea {
        let primary = Kea::start(&self.dir_a, &self.cfg_a);
        wait_ha_state(&primary, "the primary", "hot-standby", limit);
        primary
    }

    /// The burst of `n` BMCs, through the relay to the primary (the
    /// standby, which answers no client while the primary is up, is not
    /// asked); the leases, by address.
    fn burst(&self, primary: &Kea, n: u32, base_mac: &str) -> Vec<(String, String)> {
        let net = self.a.net;
        let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, base_mac);
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
        let leased: Vec<(String, String)> = leases(primary).into_iter().collect();
        assert_eq!(leased.len(), n as usize);
        leased
    }
}

/// `n` emulated BMCs on the pool, every model in turn, each answering
/// after `latency`; `named`: each reports a host name of its own (the
/// captures' own names repeat across instances of a model).
fn fleet(n: u32, latency: Duration, named: bool) -> Emulator {
    let emu = Emulator::start(0);
    emu.add_fleet_with(pool_addr(0), n, |i| FleetBmc {
        password: PASS.into(),
        faults: Faults {
            latency,
            ..Faults::default()
        },
        hostname: named.then(|| format!("us3-cab{:02}-ru{:02}-bmc", i / 10 + 1, (i % 10) * 4 + 1)),
        ..FleetBmc::default()
    });
    emu
}

/// Kills the primary with SIGKILL once its `bmc-status` meets `ready`
/// (no BMC may give up before); the status it died with.
fn kill_when(
    primary: &mut Kea,
    what: &str,
    limit: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let status = wait_for(what, limit, || {
        let s = primary.bmc_status();
        none_dead(primary, &s);
        ready(&s).then_some(s)
    });
    primary.child.kill().unwrap();
    let _ = primary.child.wait();
    status
}

/// NetBox's objects of the burst: devices, BMC MACs and IP addresses,
/// each listed with how often it occurs.
struct InNetBox {
    devices: usize,
    macs: Vec<(String, usize)>,
    ips: Vec<(String, usize)>,
    changes: u64,
}

fn in_netbox(client: &dhcp_bmc_discovery::netbox::NetBox, leased: &[(String, String)]) -> InNetBox {
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=1000")
        .unwrap()
        .len();
    let count_of = |path: String| client.list(&path).unwrap().len();
    let macs = leased
        .iter()
        .map(|(_, mac)| {
            (
                mac.clone(),
                count_of(format!("/api/dcim/mac-addresses/?mac_address={mac}")),
            )
        })
        .collect();
    let ips = leased
        .iter()
        .map(|(ip, _)| {
            (
                ip.clone(),
                count_of(format!("/api/ipam/ip-addresses/?address={ip}")),
            )
        })
        .collect();
    let changes = client.get("/api/core/object-changes/?limit=1").unwrap()["count"]
        .as_u64()
        .unwrap();
    InNetBox {
        devices,
        macs,
        ips,
        changes,
    }
}

#[test]
fn hot_standby_primary_killed_mid_burst_every_bmc_registered_once() {
    let (_guard, nb) = netbox();
    reset();
    let n = 100;
    // 50 ms a Redfish request: the primary is still busy when it dies.
    let emu = fleet(n, Duration::from_millis(50), true);
    let pair = Pair::hot_standby(67, "ha", |dir| {
        let token_file = dir.path().join("netbox-token");
        std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
        json!({
            "workers": 4,
            "reconcile-interval-s": 0,
            "retry-backoff-s": 1,
            "redfish": redfish_params(dir.path(), &emu, PASS),
            "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
        })
    });
    let (mut primary, standby) = pair.start();
    let role = wait_for(
        "the standby's HA role in bmc-status",
        Duration::from_secs(10),
        || {
            let s = standby.bmc_status();
            (s["ha"]["state"] == "hot-standby").then(|| s["ha"].clone())
        },
    );
    assert_eq!(role["scopes"], json!([]), "{role}");
    assert_eq!(role["takeovers"], 0, "{role}");

    let leased = pair.burst(&primary, n, "14:18:77:67:00:00");
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
    let twice = |objs: &[(String, usize)]| -> BTreeSet<String> {
        objs.iter()
            .filter(|(_, k)| *k != 1)
            .map(|(o, k)| format!("{o} x{k}"))
            .collect()
    };
    assert!(
        twice(&after_failover.macs).is_empty(),
        "{:?}",
        twice(&after_failover.macs)
    );
    assert!(
        twice(&after_failover.ips).is_empty(),
        "{:?}",
        twice(&after_failover.ips)
    );

    // The primary returns with its state file, syncs from the standby and
    // takes its role back; what it had left undone it discovers again and
    // finds in NetBox as it should be.
    // A returning primary syncs the leases first.
    let primary = pair.start_primary(Duration::from_secs(90));
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
    let n = 60;
    // 100 ms a Redfish request: a discovery takes a second or two, so the
    // primary dies with most of the burst still to do.
    let emu = fleet(n, Duration::from_millis(100), false);
    let pair = Pair::hot_standby(69, "ha-discovery", |dir| {
        json!({
            "workers": 2,
            "reconcile-interval-s": 0,
            "redfish": redfish_params(dir.path(), &emu, PASS),
        })
    });
    let (mut primary, standby) = pair.start();
    pair.burst(&primary, n, "14:18:77:69:00:00");
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
