//! A kea-dhcp6 under test, in network namespaces of the test's own.
//!
//! kea-dhcp6 needs a real interface with a link-local address (lo has none),
//! so each test gets two namespaces joined by a veth pair: Kea's, with the
//! server address on its end, and the clients', where perfdhcp -6 runs as a
//! relay from two addresses (one per subnet6, as the v4 tests' relays) and
//! where the emulated BMCs listen on the addresses Kea leases. Kea reaches
//! them through a route to the BMC subnet via the clients' end. Nothing
//! touches the host's own interfaces.
//!
//! Addresses of block N (2001:db8::/32 is the documentation prefix; a test
//! may use another /48 of its own, [`Net6::named`]):
//!   link     2001:db8:N:ff::/64   server ::1, relay of the BMCs ::2, of the others ::3
//!   subnet 1 2001:db8:N:1::/64    opted in through user-context
//!   subnet 2 2001:db8:N:2::/64    not opted in

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::kea::{path_env, prepare_dir, stage_hook, Hook, Kea};
use crate::{wait_for, TempDir};

/// The two namespaces of one test and their addresses.
pub struct Net6 {
    pub block: u8,
    /// Where kea-dhcp6 runs.
    pub kea_ns: String,
    /// Where perfdhcp and the emulated BMCs are.
    pub client_ns: String,
    /// The first three groups of every address (`2001:db8:N`).
    prefix: String,
    /// Kea's end of the veth pair (in `kea_ns`), and the clients' end.
    pub kea_if: String,
    client_if: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run `ip` (iproute2)");
    assert!(
        out.status.success(),
        "ip {} (tests need root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net6 {
    /// Makes the namespaces `bmc6-N-<pid>-k` and `-c`, the veth pair and
    /// the addresses (without duplicate address detection, so they are
    /// usable at once), and waits for Kea's side to have its link-local
    /// address.
    pub fn new(block: u8) -> Net6 {
        Net6::create(block, "bmc6", &format!("2001:db8:{block}"), ["v6k", "v6c"])
    }

    /// As [`Net6::new`], with namespaces `<name>-N-<pid>-k` and `-c`, veth
    /// ends `<name>k` and `<name>c` (`name` at most 14 bytes) and
    /// addresses under `prefix` (three groups, e.g. `fd00:91`) instead of
    /// `2001:db8:N`.
    pub fn named(block: u8, name: &str, prefix: &str) -> Net6 {
        let ends = [format!("{name}k"), format!("{name}c")];
        Net6::create(block, name, prefix, [&ends[0], &ends[1]])
    }

    fn create(block: u8, name: &str, prefix: &str, [kea_if, client_if]: [&str; 2]) -> Net6 {
        let base = format!("{name}-{block}-{}", std::process::id());
        let net = Net6 {
            block,
            kea_ns: format!("{base}-k"),
            client_ns: format!("{base}-c"),
            prefix: prefix.to_string(),
            kea_if: kea_if.to_string(),
            client_if: client_if.to_string(),
        };
        for ns in [&net.kea_ns, &net.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
            for sysctl in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                ip(&["netns", "exec", ns, "sysctl", "-qw", sysctl]);
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            &net.kea_if,
            "netns",
            &net.kea_ns,
            "type",
            "veth",
            "peer",
            "name",
            &net.client_if,
            "netns",
            &net.client_ns,
        ]);
        ip(&["-n", &net.kea_ns, "link", "set", &net.kea_if, "up"]);
        ip(&["-n", &net.client_ns, "link", "set", &net.client_if, "up"]);
        let link = |host: u8| format!("{}/64", net.link_addr(host));
        ip(&[
            "-n",
            &net.kea_ns,
            "addr",
            "add",
            &link(1),
            "dev",
            &net.kea_if,
            "nodad",
        ]);
        for host in [2, 3] {
            ip(&[
                "-n",
                &net.client_ns,
                "addr",
                "add",
                &link(host),
                "dev",
                &net.client_if,
                "nodad",
            ]);
        }
        let bmcs = format!("{}/64", net.subnet(1));
        ip(&[
            "-n",
            &net.kea_ns,
            "-6",
            "route",
            "add",
            &bmcs,
            "via",
            &net.relay_bmc(),
        ]);
        wait_for(
            "a link-local address on Kea's veth",
            Duration::from_secs(10),
            || {
                let out = Command::new("ip")
                    .args([
                        "-n",
                        &net.kea_ns,
                        "-6",
                        "addr",
                        "show",
                        "dev",
                        &net.kea_if,
                        "scope",
                        "link",
                    ])
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                (text.contains("fe80") && !text.contains("tentative")).then_some(())
            },
        );
        net
    }

    fn link_addr(&self, host: u8) -> String {
        format!("{}:ff::{host}", self.prefix)
    }
    /// Kea's unicast address on the link.
    pub fn server(&self) -> String {
        self.link_addr(1)
    }
    /// perfdhcp's address when it relays for the BMCs' subnet.
    pub fn relay_bmc(&self) -> String {
        self.link_addr(2)
    }
    /// perfdhcp's address when it relays for the other subnet.
    pub fn relay_other(&self) -> String {
        self.link_addr(3)
    }
    /// Subnet `n`'s prefix address (`2001:db8:N:n::`).
    pub fn subnet(&self, n: u8) -> String {
        format!("{}:{n}::", self.prefix)
    }
    /// The `i`-th address of subnet `n`'s pool: Kea's iterative allocator
    /// hands them out in order.
    pub fn pool_addr(&self, n: u8, i: u32) -> Ipv6Addr {
        let first: Ipv6Addr = format!("{}:{n}::10", self.prefix).parse().unwrap();
        Ipv6Addr::from(u128::from(first) + u128::from(i))
    }

    /// Puts the first `count` pool addresses of subnet 1 on the clients'
    /// lo, where the emulated BMCs answer on them.
    pub fn add_bmc_addresses(&self, count: u32) {
        let batch: String = (0..count)
            .map(|i| format!("addr add {}/128 dev lo nodad\n", self.pool_addr(1, i)))
            .collect();
        let mut child = Command::new("ip")
            .args(["-n", &self.client_ns, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run ip -batch");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "ip -batch addr add");
    }
}

impl Drop for Net6 {
    fn drop(&mut self) {
        for ns in [&self.kea_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Kea's DHCPv6 configuration for a test, as [`crate::kea::config`] is for
/// DHCPv4: subnet 1 opted in by user-context and relayed by `relay_bmc`,
/// subnet 2 not, relayed by `relay_other`. Every file in `dir`.
pub fn config(net: &Net6, dir: &Path, hooks: &[Hook], log_severity: &str) -> Value {
    let libraries: Vec<Value> = hooks
        .iter()
        .filter_map(|h| match h {
            Hook::None => None,
            Hook::Library { path, parameters } => {
                let mut parameters = parameters.clone();
                if let Some(p) = parameters.as_object_mut() {
                    if p.contains_key("redfish") && !p.contains_key("state-file") {
                        p.insert(
                            "state-file".into(),
                            json!(dir.join("bmc-state.sqlite").to_str().unwrap()),
                        );
                    }
                }
                Some(json!({
                    "library": stage_hook(dir, path).to_str().unwrap(),
                    "parameters": parameters,
                }))
            }
        })
        .collect();
    let pool = |n: u8| {
        format!(
            "{} - {}",
            net.pool_addr(n, 0),
            format_args!("{}:{n}::ffff", net.prefix)
        )
    };
    json!({"Dhcp6": {
        "interfaces-config": {"interfaces": [format!("{}/{}", net.kea_if, net.server())]},
        "control-socket": {"socket-type": "unix", "socket-name": dir.join("kea.sock").to_str().unwrap()},
        "lease-database": {"type": "memfile", "persist": true,
                           "name": dir.join("leases6.csv").to_str().unwrap(), "lfc-interval": 0},
        "multi-threading": {"enable-multi-threading": true, "thread-pool-size": 4, "packet-queue-size": 64},
        "preferred-lifetime": 1800,
        "valid-lifetime": 3600,
        // Kea 3.0 caches leases by default (cache-threshold 0.25): a lease
        // asked for again within a quarter of its lifetime is reused, and
        // Kea then runs no lease hook for it at all (leases6_committed
        // leaves reused leases out). Off here, so that the tests see the
        // REQUEST for a held address on every Kea; "cache-max-age": 0
        // turns caching off on 3.0 and is accepted by 2.2, which refuses
        // a cache-threshold of 0.
        "cache-max-age": 0,
        "hooks-libraries": libraries,
        "subnet6": [
            {"id": 1, "subnet": format!("{}/64", net.subnet(1)), "pools": [{"pool": pool(1)}],
             "relay": {"ip-addresses": [net.relay_bmc()]},
             "user-context": {"bmc-discovery": true, "site": "us3"}},
            {"id": 2, "subnet": format!("{}/64", net.subnet(2)), "pools": [{"pool": pool(2)}],
             "relay": {"ip-addresses": [net.relay_other()]}}
        ],
        "loggers": [{"name": "kea-dhcp6", "severity": log_severity,
                     "output_options": [{"output": dir.join("kea.log").to_str().unwrap()}]}]
    }})
}

/// Writes `config` and runs `kea-dhcp6 -t` on it in `net`'s Kea namespace
/// (Kea calls only the hook's version(), as kea-dhcp4 does; kea-dhcp6 -t
/// also wants the configured interfaces to exist).
pub fn check_config(net: &Net6, dir: &Path, config: &Value) -> Output {
    let file = dir.join("kea-dhcp6.conf");
    std::fs::write(&file, serde_json::to_string_pretty(config).unwrap()).unwrap();
    check_file(net, dir, &file)
}

/// Runs `kea-dhcp6 -t file` in `net`'s Kea namespace, with [`path_env`]'s
/// directories in `dir`.
pub fn check_file(net: &Net6, dir: &Path, file: &Path) -> Output {
    prepare_dir(dir);
    Command::new("ip")
        .args(["netns", "exec", &net.kea_ns, "kea-dhcp6", "-t"])
        .arg(file)
        .envs(path_env(dir))
        .output()
        .expect("run kea-dhcp6 (install Debian's kea-dhcp6-server: tests/setup.sh)")
}

/// Starts kea-dhcp6 in `net`'s Kea namespace on `config` and waits for its
/// control socket (a file, so the test talks to it from outside).
pub fn start(dir: &TempDir, net: &Net6, config: &Value) -> Kea {
    let wrapper: Vec<String> = ["ip", "netns", "exec", net.kea_ns.as_str()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Kea::start_program(dir, config, &wrapper, "kea-dhcp6", Duration::from_secs(20))
}

/// Distinct leased addresses in kea-dhcp6's memfile, by subnet id.
pub fn leases_by_subnet(kea: &Kea) -> std::collections::BTreeMap<u32, usize> {
    let mut seen = std::collections::BTreeMap::<u32, std::collections::BTreeSet<String>>::new();
    for (addr, _, subnet) in leases(kea) {
        seen.entry(subnet).or_default().insert(addr);
    }
    seen.into_iter().map(|(k, v)| (k, v.len())).collect()
}

/// (address, hwaddr, subnet id) of every line of kea-dhcp6's memfile
/// (address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,
/// iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,...).
pub fn leases(kea: &Kea) -> Vec<(String, String, u32)> {
    let text = std::fs::read_to_string(kea.dir.join("leases6.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()?.to_string(),
                f.get(12)?.to_string(),
                f.get(4)?.parse().ok()?,
            ))
        })
        .collect()
}

/// What one perfdhcp -6 run reported.
pub use crate::perfdhcp::Report;

/// `clients` DHCPv6 clients do one SOLICIT/ADVERTISE/REQUEST/REPLY each,
/// relayed from `relay`, from the clients' namespace. Each has a DUID-LL of
/// its MAC (counting up from `base_mac`), which Kea's mac-sources turn into
/// the lease's hardware address, and which stays the same between runs:
/// the same `base_mac` again is the same clients asking again.
pub fn avalanche(net: &Net6, relay: &str, clients: usize, base_mac: &str) -> Report {
    let duid = format!("00030001{}", base_mac.replace(':', ""));
    avalanche_duid(net, relay, clients, &duid, base_mac)
}

/// As [`avalanche`], with the clients' DUIDs counting up from `duid` (hex):
/// a DUID-EN (type 2) or DUID-UUID (type 4) carries no MAC, so Kea's
/// mac-sources find none for a relayed client without option 79.
pub fn avalanche_duid(
    net: &Net6,
    relay: &str,
    clients: usize,
    duid: &str,
    base_mac: &str,
) -> Report {
    let duid = format!("duid={duid}");
    let mac = format!("mac={base_mac}");
    let r = clients.to_string();
    run(
        net,
        relay,
        &["--scenario", "avalanche", "-R", &r, "-b", &duid, "-b", &mac],
        Duration::from_secs(120),
    )
}

/// Runs `perfdhcp -6 -A1 -l relay <args> <server>` in the clients'
/// namespace, killed after `limit`.
pub fn run(net: &Net6, relay: &str, args: &[&str], limit: Duration) -> Report {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", net.client_ns.as_str()])
        .args(["perfdhcp", "-6", "-A1", "-l", relay])
        .args(args)
        .arg(net.server());
    crate::perfdhcp::run_command(command, limit)
}
