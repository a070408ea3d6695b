//! The team's shared folder (Redfish mockups, NetBox scripts), found the way
//! tests/shared-dir.sh finds it, so that `cargo test` and `cargo bench` run
//! alone find what tests/run.sh would export: `REDFISH_MOCKUPS` and
//! `NETBOX_SCRIPTS` if set; else the first of `$SHARED_DIR`, `shared`
//! beside the repository, `shared` inside it, and, for a clone of a local
//! checkout (`git clone /path/to/repo /tmp/x`), `shared` beside the
//! repository it was cloned from, that holds both `redfish-mockups` and
//! `netbox`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository this crate is part of (it lives in tests/support).
pub fn repo_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .expect("tests/support lives two levels below the repository")
        .to_path_buf()
}

/// Where the shared folder may be, in the order tests/shared-dir.sh tries.
pub fn candidates() -> Vec<PathBuf> {
    let repo = repo_dir();
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("SHARED_DIR").filter(|d| !d.is_empty()) {
        out.push(PathBuf::from(dir));
    }
    out.push(repo.join("../shared"));
    out.push(repo.join("shared"));
    if let Some(origin) = local_origin(&repo) {
        out.push(origin.join("../shared"));
    }
    out
}

/// The origin of `repo` when it is a clone of a checkout on this machine.
fn local_origin(repo: &Path) -> Option<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["config", "--get", "remote.origin.url"])
        .output()
        .ok()?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(&url));
    (path.is_absolute() && path.is_dir()).then_some(path)
}

/// The shared folder: the first candidate with both `redfish-mockups` and
/// `netbox` in it, or one line saying where it was looked for and what to
/// set.
pub fn find_shared_dir() -> Result<PathBuf, String> {
    let candidates = candidates();
    candidates
        .iter()
        .find(|d| d.join("redfish-mockups").is_dir() && d.join("netbox").is_dir())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
            format!(
                "the shared folder (redfish-mockups, netbox) is not at {}; \
                 set SHARED_DIR=/path/to/shared",
                tried.join(" or ")
            )
        })
}

/// `$var` if set, else `sub` of the shared folder.
fn in_shared(var: &str, sub: &str) -> Result<PathBuf, String> {
    match std::env::var_os(var).filter(|d| !d.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => find_shared_dir().map(|d| d.join(sub)),
    }
}

/// The Redfish mockups: `REDFISH_MOCKUPS`, else the shared folder's
/// `redfish-mockups`.
pub fn find_mockups_dir() -> Result<PathBuf, String> {
    in_shared("REDFISH_MOCKUPS", "redfish-mockups")
}

/// The NetBox scripts (netbox-up, netbox-reset, ...): `NETBOX_SCRIPTS`,
/// else the shared folder's `netbox`.
pub fn find_netbox_scripts() -> Result<PathBuf, String> {
    in_shared("NETBOX_SCRIPTS", "netbox")
}

/// `find_mockups_dir`, for tests: a missing folder fails the test.
pub fn mockups_dir() -> PathBuf {
    find_mockups_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// `find_netbox_scripts`, for tests: a missing folder fails the test.
pub fn netbox_scripts() -> PathBuf {
    find_netbox_scripts().unwrap_or_else(|e| panic!("{e}"))
}

/// For a benchmark's `main` before it starts anything: what `found` found,
/// or, when it is not there, one line saying so and exit status 2 (not a
/// panic and its backtrace note).
pub fn or_exit<T>(program: &str, found: Result<T, String>) -> T {
    found.unwrap_or_else(|e| {
        eprintln!("{program}: {e}");
        std::process::exit(2)
    })
}
