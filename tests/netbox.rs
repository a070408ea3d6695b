//! The NetBox client against a real NetBox, started by
//! ../shared/netbox/netbox-up (the first start installs and migrates it:
//! about 8 minutes; later ones take seconds).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use dhcp_bmc_discovery::netbox::{NetBox, NetBoxError};
use serde_json::json;

/// The port the tests' NetBox listens on: NETBOX_PORT, else 18000 (8000,
/// NetBox's default, is also kea-ctrl-agent's). tests/setup.sh agrees.
fn port() -> String {
    std::env::var("NETBOX_PORT").unwrap_or_else(|_| "18000".into())
}

struct Instance {
    url: String,
    token: String,
    token_v1: String,
}

fn scripts() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("NETBOX_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../shared/netbox"))
}

/// NetBox, started once per test binary. Tests hold `LOCK` for their whole
/// run: a reset by one would fail the requests of another.
fn netbox() -> (MutexGuard<'static, ()>, &'static Instance) {
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    (guard, instance())
}

fn instance() -> &'static Instance {
    static NB: OnceLock<Instance> = OnceLock::new();
    NB.get_or_init(|| {
        let out = Command::new(scripts().join("netbox-up"))
            .env("NETBOX_PORT", port())
            .output()
            .expect("run ../shared/netbox/netbox-up");
        assert!(
            out.status.success(),
            "netbox-up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
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

fn reset() {
    let out = Command::new(scripts().join("netbox-reset"))
        .env("NETBOX_PORT", port())
        .output()
        .expect("run netbox-reset");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connects_with_either_token_format_and_checks_the_version() {
    let (_guard, nb) = netbox();
    for token in [&nb.token, &nb.token_v1] {
        let client = NetBox::connect(&nb.url, token).unwrap();
        assert!(client.version.starts_with('4'), "{}", client.version);
    }
    let wrong = "nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let err = NetBox::connect(&nb.url, wrong).unwrap_err();
    assert!(matches!(err, NetBoxError::Auth(_)), "{err}");
    assert!(!err.to_string().contains("BBBBBBBB"), "token in {err}");
    // A NetBox that is not there.
    let err = NetBox::connect("http://127.0.0.1:9", &nb.token).unwrap_err();
    assert!(err.to_string().starts_with("NetBox unavailable"), "{err}");
}

#[test]
fn lists_follow_pagination_and_writes_are_counted() {
    let (_guard, nb) = netbox();
    reset();
    let client = NetBox::connect(&nb.url, &nb.token).unwrap();
    for i in 0..30 {
        client
            .post(
                "/api/dcim/sites/",
                &json!({"name": format!("site-{i:02}"), "slug": format!("site-{i:02}")}),
            )
            .unwrap();
    }
    assert_eq!(client.writes(), 30);
    let all = client.list("/api/dcim/sites/?limit=7").unwrap();
    assert_eq!(all.len(), 30);
    // A duplicate is refused with NetBox's own reason.
    let err = client
        .post(
            "/api/dcim/sites/",
            &json!({"name": "site-00", "slug": "site-00"}),
        )
        .unwrap_err();
    match err {
        NetBoxError::Rejected { status, message } => {
            assert_eq!(status, 400);
            assert!(message.contains("already exists"), "{message}");
        }
        e => panic!("{e}"),
    }
}
