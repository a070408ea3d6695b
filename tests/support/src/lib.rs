//! Test support shared by the tests, the benchmarks and
//! examples/redfish-emulator.rs: a real kea-dhcp4 with the built hook on its
//! own loopback addresses ([`kea`]), perfdhcp ([`perfdhcp`]), the shared
//! NetBox ([`netbox`]) and a proxy that cuts it ([`proxy`]), the Redfish
//! emulator ([`emulator`]), BMC fleets behind a test Kea ([`discovery`]),
//! the hook's Prometheus page ([`prometheus`]), a Kea HA pair ([`ha`]), a
//! throwaway PostgreSQL for Kea's lease database ([`postgres`]), the
//! reconciliation scenarios on any lease store ([`reconciliation`]), and
//! the team's shared folder ([`shared`]).
//!
//! Each Kea gets a block 127.0.N.0/24 of its own (server .1, relays .2/.3),
//! so tests in one binary can run in parallel. Traffic never leaves 127/8.
//! A kea-dhcp6 ([`kea6`]) gets two network namespaces of its own instead,
//! joined by a veth pair.

pub mod discovery;
pub mod emulator;
pub mod ha;
pub mod kea;
pub mod kea6;
pub mod netbox;
pub mod perfdhcp;
pub mod postgres;
pub mod prometheus;
pub mod proxy;
pub mod reconciliation;
pub mod shared;

/// A benchmark setting: the environment variable `name` as a number, else
/// `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The directory cargo built this test into (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The hook library cargo built alongside this test. Cargo always writes
/// the cdylib into deps/; it copies it up to target/<profile>/ only for some
/// commands, so deps/ is the copy that is current.
pub fn hook_library() -> PathBuf {
    let lib = target_dir().join("deps/libdhcp_bmc_discovery.so");
    assert!(
        lib.is_file(),
        "{} is missing: run the tests through cargo",
        lib.display()
    );
    lib
}

/// Polls `f` every 20 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory removed on drop (kept if the test panicked).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("bmc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
