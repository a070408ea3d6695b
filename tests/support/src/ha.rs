//! A Kea HA pair with the hook in both servers, shared by tests/kea_ha.rs
//! and benches/ha_failover.rs: two kea-dhcp4 with libdhcp_lease_cmds +
//! libdhcp_ha + the hook, each on a Net block of its own, talking HA over
//! their own HTTP listeners (port 17000 + block); a relay that forwards
//! every client packet to both servers, as a relay with both servers as
//! helper addresses does; the BMC fleet; killing a server; what NetBox
//! holds afterwards.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::discovery::{count, leases, pool_addr, PASS};
use crate::emulator::{Emulator, Faults, FleetBmc};
use crate::kea::{config, hook, stock_hook, Hook, Kea, Net};
use crate::{perfdhcp, wait_for, TempDir};

/// The HA mode of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// server1 (primary) answers every client, server2 (standby) none.
    HotStandby,
    /// Each answers the clients of its own scope (Kea's hash of the
    /// client's identifier or MAC), from a pool of its own.
    LoadBalancing,
}

impl Mode {
    /// Kea's name of the mode, which is also the HA state of a healthy
    /// pair in it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::HotStandby => "hot-standby",
            Mode::LoadBalancing => "load-balancing",
        }
    }

    fn roles(self) -> [&'static str; 2] {
        match self {
            Mode::HotStandby => ["primary", "standby"],
            Mode::LoadBalancing => ["primary", "secondary"],
        }
    }

    /// How many pool addresses (and emulated BMCs on them, see [`fleet`])
    /// a burst of `n` needs: load-balancing splits the pool in two of `n`
    /// each, as Kea requires, and a server's share lands in its own half.
    pub fn addresses(self, n: u32) -> u32 {
        match self {
            Mode::HotStandby => n,
            Mode::LoadBalancing => 2 * n,
        }
    }
}

/// One server of the pair: its addresses, its HA listener's port, its name.
pub struct Server {
    pub net: Net,
    pub name: &'static str,
    pub port: u16,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}:{}/", self.net.server(), self.port)
    }
}

/// Kea's configuration for `this` server of a pair of `servers` in `mode`
/// for bursts of up to `n` BMCs: lease_cmds, HA (fast failure detection: a
/// heartbeat a second, partner down after 3 s without one), the hook with
/// `params`. Both servers take relayed packets from either relay address.
pub fn pair_config(
    this: &Server,
    servers: [&Server; 2],
    mode: Mode,
    n: u32,
    dir: &std::path::Path,
    params: Value,
) -> Value {
    let peers: Vec<Value> = servers
        .iter()
        .zip(mode.roles())
        .map(|(s, role)| {
            json!({"name": s.name, "url": s.url(), "role": role, "auto-failover": true})
        })
        .collect();
    let ha = json!({"high-availability": [{
        "this-server-name": this.name,
        "mode": mode.name(),
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
    let subnet = &mut cfg["Dhcp4"]["subnet4"][0];
    let relays: Vec<String> = servers.iter().map(|s| s.net.relay_bmc()).collect();
    subnet["relay"] = json!({ "ip-addresses": relays });
    if mode == Mode::LoadBalancing {
        // Load-balancing needs the pool split by scope (Kea's built-in
        // classes HA_<server name>): both allocating from one pool would
        // hand one address to two clients before the lease updates cross.
        let half = |k: u32, name: &str| {
            json!({"pool": format!("{} - {}", pool_addr(k * n), pool_addr(k * n + n - 1)),
                   "client-class": format!("HA_{name}")})
        };
        subnet["pools"] = json!([half(0, servers[0].name), half(1, servers[1].name)]);
    }
    // A lease lifetime the test outlasts: BMCs never renew during it, so
    // what a server registers after a takeover it found by reconciling.
    cfg["Dhcp4"]["valid-lifetime"] = json!(3600);
    cfg
}

/// A NetBox that drops a connection under load fails an attempt
/// (netbox-unavailable), which is retried; no BMC may give up.
pub fn none_dead(kea: &Kea, status: &Value) {
    assert_eq!(count(status, "dead"), 0, "{status}\n{}", kea.log_tail(20));
}

pub fn ha_state(kea: &Kea) -> Value {
    kea.command("ha-heartbeat", None)["arguments"].clone()
}

pub fn wait_ha_state(kea: &Kea, who: &str, state: &str, limit: Duration) {
    wait_for(&format!("{who} in HA state {state}"), limit, || {
        (ha_state(kea)["state"] == state).then_some(())
    });
}

/// A pair in `mode` on Net blocks `block` (server1, the primary) and
/// `block + 1` (server2), HA listeners on ports 17000 + block, each
/// server's directory and configuration, the hook with `params(dir)`,
/// for bursts of up to `n` BMCs.
pub struct Pair {
    pub mode: Mode,
    pub a: Server,
    pub b: Server,
    pub dir_a: TempDir,
    pub dir_b: TempDir,
    pub cfg_a: Value,
    pub cfg_b: Value,
}

impl Pair {
    pub fn new(
        block: u8,
        mode: Mode,
        what: &str,
        n: u32,
        params: impl Fn(&TempDir) -> Value,
    ) -> Pair {
        let server = |block: u8, name| Server {
            net: Net::new(block),
            name,
            port: 17000 + u16::from(block),
        };
        let (a, b) = (server(block, "server1"), server(block + 1, "server2"));
        let dir_a = TempDir::new(&format!("{what}-server1"));
        let dir_b = TempDir::new(&format!("{what}-server2"));
        let cfg_a = pair_config(&a, [&a, &b], mode, n, dir_a.path(), params(&dir_a));
        let cfg_b = pair_config(&b, [&a, &b], mode, n, dir_b.path(), params(&dir_b));
        Pair {
            mode,
            a,
            b,
            dir_a,
            dir_b,
            cfg_a,
            cfg_b,
        }
    }

    /// Starts both (server2 first) and waits until both are in the
    /// mode's state: (server1, server2).
    pub fn start(&self) -> (Kea, Kea) {
        let two = Kea::start(&self.dir_b, &self.cfg_b);
        let one = self.start_server1(Duration::from_secs(60));
        wait_ha_state(&two, "server2", self.mode.name(), Duration::from_secs(60));
        (one, two)
    }

    /// Starts server1 (again, with its state file and leases) and waits up
    /// to `limit` until it is in the mode's state.
    pub fn start_server1(&self, limit: Duration) -> Kea {
        let one = Kea::start(&self.dir_a, &self.cfg_a);
        wait_ha_state(&one, "server1", self.mode.name(), limit);
        one
    }

    /// The burst of `n` BMCs, through a relay that forwards to both
    /// servers (hot-standby: the standby drops what it does not serve;
    /// load-balancing: each drops the other's scope); the leases, by
    /// address, which both servers hold (a server sends each lease to its
    /// partner before it answers the client).
    pub fn burst(&self, one: &Kea, two: &Kea, n: u32, base_mac: &str) -> Vec<(String, String)> {
        self.send_burst(n, base_mac);
        let leased: Vec<(String, String)> = leases(one).into_iter().collect();
        assert_eq!(leased.len(), n as usize, "server1's leases");
        assert_eq!(leases(two).len(), n as usize, "server2's leases");
        leased
    }

    /// The burst alone, for a pair whose leases are not in memfiles (the
    /// caller counts them where they are).
    pub fn send_burst(&self, n: u32, base_mac: &str) {
        let relay = Fanout::start(
            &self.a.net.relay_other(),
            &[self.a.net.server(), self.b.net.server()],
        );
        let mut perfdhcp = Command::new("perfdhcp");
        perfdhcp
            .args(["-4", "-l", &self.a.net.relay_bmc()])
            .args(["--scenario", "avalanche", "-R", &n.to_string()])
            .args(["-b", &format!("mac={base_mac}")])
            .arg(relay.addr());
        let run = perfdhcp::run_command(perfdhcp, Duration::from_secs(120));
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
        drop(relay);
    }
}

/// The relay's forwarding to both servers: every packet perfdhcp sends to
/// `listen`:67 goes on to each server's port 67 unchanged (giaddr stays
/// perfdhcp's relay address, so the servers answer perfdhcp directly).
/// Stops when dropped.
pub struct Fanout {
    listen: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fanout {
    pub fn start(listen: &str, servers: &[String]) -> Fanout {
        let socket = UdpSocket::bind((listen, 67))
            .unwrap_or_else(|e| panic!("the relay cannot bind {listen}:67: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let servers: Vec<String> = servers.iter().map(|s| format!("{s}:67")).collect();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((len, _)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    for s in &servers {
                        // A server that is down loses the copy, as from a
                        // real relay.
                        let _ = socket.send_to(&buf[..len], s.as_str());
                    }
                }
            })
        };
        Fanout {
            listen: listen.to_string(),
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> &str {
        &self.listen
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` emulated BMCs on the pool, every model in turn, each answering
/// after `latency`; `named`: each reports a host name of its own (the
/// captures' own names repeat across instances of a model).
pub fn fleet(n: u32, latency: Duration, named: bool) -> Emulator {
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

/// Redfish requests the first `n` BMCs of a [`fleet`] have answered.
pub fn bmc_requests(emu: &Emulator, n: u32) -> u64 {
    (0..n).map(|i| emu.stats(pool_addr(i)).requests).sum()
}

/// The NetBox requests (reads and writes) of a `bmc-status`.
pub fn netbox_requests(status: &Value) -> u64 {
    let r = &status["netbox"]["requests"];
    r["reads"].as_u64().unwrap_or(0) + r["writes"].as_u64().unwrap_or(0)
}

/// Kills `kea` with SIGKILL once its `bmc-status` meets `ready` (no BMC
/// may give up before); the status it died with (read just before).
pub fn kill_when(
    kea: &mut Kea,
    what: &str,
    limit: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let status = wait_for(what, limit, || {
        let s = kea.bmc_status();
        none_dead(kea, &s);
        ready(&s).then_some(s)
    });
    kea.child.kill().unwrap();
    let _ = kea.child.wait();
    status
}

/// NetBox's objects of the burst: devices, BMC MACs and IP addresses,
/// each listed with how often it occurs.
pub struct InNetBox {
    pub devices: usize,
    pub macs: Vec<(String, usize)>,
    pub ips: Vec<(String, usize)>,
    pub changes: u64,
}

impl InNetBox {
    /// The MACs and addresses NetBox does not hold exactly once.
    pub fn not_once(&self) -> BTreeSet<String> {
        self.macs
            .iter()
            .chain(&self.ips)
            .filter(|(_, k)| *k != 1)
            .map(|(o, k)| format!("{o} x{k}"))
            .collect()
    }
}

pub fn in_netbox(
    client: &dhcp_bmc_discovery::netbox::NetBox,
    leased: &[(String, String)],
) -> InNetBox {
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
