//! The real NetBox the tests share, from ../shared/netbox (started once per
//! test binary; the first start on a machine installs and migrates it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct Instance {
    pub url: String,
    pub token: String,
    pub token_v1: String,
}

/// The port the tests' NetBox listens on: NETBOX_PORT, else 18000 (8000,
/// NetBox's default, is also kea-ctrl-agent's). tests/setup.sh agrees.
pub fn port() -> String {
    std::env::var("NETBOX_PORT").unwrap_or_else(|_| "18000".into())
}

pub fn scripts() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("NETBOX_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../shared/netbox"))
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

/// Runs one of ../shared/netbox's scripts against the tests' NetBox,
/// panicking with its stderr if it fails.
pub fn script(name: &str) {
    let out = Command::new(scripts().join(name))
        .env("NETBOX_PORT", port())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
