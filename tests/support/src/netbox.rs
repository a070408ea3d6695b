//! The real NetBox the tests share, run by the shared folder's NetBox
//! scripts ([`crate::shared::find_netbox_scripts`]; started once per test
//! binary; the first start on a machine installs and migrates it).

use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use dhcp_bmc_discovery::netbox::NetBox;
use serde_json::{json, Value};

use crate::shared::netbox_scripts;

pub struct Instance {
    pub url: String,
    pub token: String,
    pub token_v1: String,
}

impl Instance {
    /// NetBox's listening address, for a proxy that forwards to it (from a
    /// network namespace that cannot reach the host's loopback).
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the tests' NetBox URL is http://127.0.0.1:PORT")
    }
}

/// The port the tests' NetBox listens on: NETBOX_PORT, else 18000 (8000,
/// NetBox's default, is also kea-ctrl-agent's). tests/setup.sh agrees.
pub fn port() -> String {
    std::env::var("NETBOX_PORT").unwrap_or_else(|_| "18000".into())
}

/// NetBox, started once per test binary. Tests hold `LOCK` for their whole
/// run: a reset by one would fail the requests of another.
pub fn netbox() -> (MutexGuard<'static, ()>, &'static Instance) {
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    (guard, instance())
}

fn instance() -> &'static Instance {
    static NB: OnceLock<Instance> = OnceLock::new();
    NB.get_or_init(|| {
        script("netbox-up");
        let home = std::env::var("NETBOX_HOME").unwrap_or_else(|_| {
            format!(
                "{}/.cache/netbox-test",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let env = std::fs::read_to_string(format!("{home}/env"))
            .expect("netbox-up writes $NETBOX_HOME/env");
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{k} missing from {home}/env"))
        };
        Instance {
            url: get("NETBOX_URL"),
            token: get("NETBOX_TOKEN"),
            token_v1: get("NETBOX_TOKEN_V1"),
        }
    })
}

static LOCK: Mutex<()> = Mutex::new(());

pub fn reset() {
    script("netbox-reset");
}

/// Runs one of the shared NetBox scripts against the tests' NetBox,
/// panicking with its stderr if it fails.
pub fn script(name: &str) {
    let out = Command::new(netbox_scripts().join(name))
        .env("NETBOX_PORT", port())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// NetBox's raw write capacity, for benchmarks to compare against: plain
/// device creates with nothing else to do (their site, type and role made
/// once by `new`).
pub struct RawDevices {
    site: u64,
    dtype: u64,
    role: u64,
}

impl RawDevices {
    pub fn new(nb: &dhcp_bmc_discovery::netbox::NetBox) -> RawDevices {
        let id = |path: &str, body: serde_json::Value| {
            nb.post(path, &body).expect("raw fixture")["id"]
                .as_u64()
                .unwrap_or(0)
        };
        let site = id(
            "/api/dcim/sites/",
            serde_json::json!({"name": "raw", "slug": "raw"}),
        );
        let mfr = id(
            "/api/dcim/manufacturers/",
            serde_json::json!({"name": "Raw", "slug": "raw"}),
        );
        let dtype = id(
            "/api/dcim/device-types/",
            serde_json::json!({"manufacturer": mfr, "model": "R", "slug": "r"}),
        );
        let role = id(
            "/api/dcim/device-roles/",
            serde_json::json!({"name": "Raw", "slug": "raw", "color": "9e9e9e"}),
        );
        RawDevices { site, dtype, role }
    }

    /// Creates `n` devices named `<prefix>-<i>` from `clients` threads;
    /// creates per second.
    pub fn create_rate(
        &self,
        nb: &dhcp_bmc_discovery::netbox::NetBox,
        n: usize,
        clients: usize,
        prefix: &str,
    ) -> f64 {
        per_second(n, clients, |i| {
            let body = serde_json::json!({"name": format!("{prefix}-{i}"),
                "device_type": self.dtype, "role": self.role, "site": self.site});
            nb.post("/api/dcim/devices/", &body)
                .expect("raw device create");
        })
    }

    /// Reads the devices named `<prefix>-<i>` (i < n) back, by name, from
    /// `clients` threads; reads per second.
    pub fn read_rate(
        &self,
        nb: &dhcp_bmc_discovery::netbox::NetBox,
        n: usize,
        clients: usize,
        prefix: &str,
    ) -> f64 {
        per_second(n, clients, |i| {
            let page = nb
                .get(&format!("/api/dcim/devices/?name={prefix}-{i}"))
                .expect("raw device read");
            assert_eq!(page["count"], 1, "{prefix}-{i}: {page}");
        })
    }
}

/// Runs `job(0..n)` on `clients` threads; jobs per second.
pub fn per_second(n: usize, clients: usize, job: impl Fn(usize) + Sync) -> f64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                job(i);
            });
        }
    });
    n as f64 / t.elapsed().as_secs_f64()
}

/// The tests' NetBox, emptied, its lock held, and a client of it.
pub fn empty_netbox() -> (MutexGuard<'static, ()>, &'static Instance, NetBox) {
    let (guard, inst) = netbox();
    reset();
    let nb = NetBox::connect(&inst.url, &inst.token).unwrap();
    (guard, inst, nb)
}

/// A NetBox object the test expects to be there.
pub fn get(nb: &NetBox, path: &str) -> Value {
    nb.get(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `endpoint`'s object with `slug`, created from `body` if missing.
pub fn by_slug(nb: &NetBox, endpoint: &str, slug: &str, body: Value) -> u64 {
    let found = get(nb, &format!("/api/{endpoint}/?slug={slug}"));
    if let Some(id) = found["results"][0]["id"].as_u64() {
        return id;
    }
    nb.post(&format!("/api/{endpoint}/"), &body).unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// A switch as people put one in NetBox: a device (in `site`, `rack`)
/// whose `mgmt` interface carries the chassis MAC, and its ports by the
/// names LLDP decodes. Returns its ports' ids by name.
pub fn switch(
    nb: &NetBox,
    name: &str,
    site: &str,
    rack: Option<&str>,
    chassis: &str,
    ports: &[&str],
) -> std::collections::HashMap<String, u64> {
    let site_id = by_slug(nb, "dcim/sites", site, json!({"name": site, "slug": site}));
    let mfr = by_slug(
        nb,
        "dcim/manufacturers",
        "aruba",
        json!({"name": "Aruba", "slug": "aruba"}),
    );
    let dtype = by_slug(
        nb,
        "dcim/device-types",
        "aruba-8325",
        json!({"manufacturer": mfr, "model": "8325", "slug": "aruba-8325"}),
    );
    let role = by_slug(
        nb,
        "dcim/device-roles",
        "access-switch",
        json!({"name": "access switch", "slug": "access-switch", "color": "2196f3"}),
    );
    let rack_id = rack.map(|r| {
        let found = get(nb, &format!("/api/dcim/racks/?site_id={site_id}&name={r}"));
        found["results"][0]["id"].as_u64().unwrap_or_else(|| {
            nb.post(
                "/api/dcim/racks/",
                &json!({"name": r, "site": site_id, "status": "active"}),
            )
            .unwrap()["id"]
                .as_u64()
                .unwrap()
        })
    });
    let dev = nb
        .post(
            "/api/dcim/devices/",
            &json!({"name": name, "site": site_id, "rack": rack_id, "device_type": dtype,
                    "role": role, "status": "active"}),
        )
        .unwrap();
    let mut bodies = vec![
        json!({"device": dev["id"], "name": "mgmt", "type": "1000base-t",
                                 "mgmt_only": true}),
    ];
    for p in ports {
        bodies.push(json!({"device": dev["id"], "name": p, "type": "25gbase-x-sfp28"}));
    }
    let made = nb
        .post("/api/dcim/interfaces/", &Value::from(bodies))
        .unwrap();
    let mgmt = made[0]["id"].as_u64().unwrap();
    let mac = nb
        .post(
            "/api/dcim/mac-addresses/",
            &json!({"mac_address": chassis, "assigned_object_type": "dcim.interface",
                    "assigned_object_id": mgmt}),
        )
        .unwrap();
    nb.patch(
        &format!("/api/dcim/interfaces/{mgmt}/"),
        &json!({"primary_mac_address": mac["id"]}),
    )
    .unwrap();
    made.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["id"].as_u64().unwrap(),
            )
        })
        .collect()
}
