//! The Redfish engine against the emulator serving the real vendor payloads
//! in ../shared/redfish-mockups. Expectations are read from the mockup files
//! themselves, never copied into the test.
//!
//! Every test uses its own 127.N.x.y block and its own emulator.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bmc_test_support::emulator::hostile::{Hostile, Place, Spy};
use bmc_test_support::emulator::{self, Emulator, Faults};
use bmc_test_support::shared::mockups_dir;
use dhcp_bmc_discovery::redfish::values::{is_placeholder, mac};
use dhcp_bmc_discovery::redfish::{
    Credentials, Discoverer, FailureKind, Limits, PinStore, Target, TlsPolicy,
};
use serde_json::Value;

const USER: &str = "root";
const PASS: &str = "s3cret-calvin";

fn discoverer(tls: TlsPolicy, creds: Credentials, limits: Limits) -> Discoverer {
    Discoverer::new(tls, creds, limits, Duration::from_secs(600))
}

fn good_creds() -> Credentials {
    Credentials::single(USER, PASS)
}

fn target(emu: &Emulator, addr: Ipv4Addr) -> Target {
    Target::new(&addr.to_string(), emu.port)
}

fn read(model: &str, uri: &str) -> Option<Value> {
    let p = mockups_dir()
        .join(model)
        .join(uri.trim_start_matches('/').trim_end_matches('/'))
        .join("index.json");
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn children(model: &str, uri: &str) -> Vec<String> {
    let dir = mockups_dir().join(model).join(uri.trim_start_matches('/'));
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("index.json").is_file())
                .map(|e| format!("{uri}/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !is_placeholder(x))
        .map(|x| x.trim().to_string())
}

/// What the mockup itself says, by the rules the README documents: the
/// system is the one that names the most of manufacturer, model, serial
/// and SKU; Dell's serial is its SKU (the service tag); the BMC's port is
/// the manager's first enabled interface with a routable IPv4 that is not a
/// host interface.
struct Expected {
    manufacturer: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    bmc_mac: Option<String>,
    firmware: Option<String>,
}

fn expected(model: &str) -> Expected {
    let systems = children(model, "/redfish/v1/Systems");
    let system = systems
        .iter()
        .filter_map(|p| read(model, p))
        .filter(|v| v.get("SystemType").and_then(Value::as_str) != Some("DPU"))
        .max_by_key(|v| {
            // max_by_key keeps the last maximum; prefer the first.
            let n = ["Manufacturer", "Model", "SerialNumber", "SKU"]
                .iter()
                .filter(|k| s(v, k).is_some())
                .count();
            (
                n,
                std::cmp::Reverse(v["@odata.id"].as_str().unwrap_or("").to_string()),
            )
        })
        .expect("a system");
    let dell = model.starts_with("dell-");
    let manager_uri = system
        .pointer("/Links/ManagedBy/0/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| children(model, "/redfish/v1/Managers")[0].clone());
    let manager = read(model, &manager_uri).expect("manager");
    let eth = manager
        .pointer("/EthernetInterfaces/@odata.id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let bmc_mac = children(model, eth.trim_end_matches('/'))
        .iter()
        .filter_map(|p| read(model, p))
        .find(|i| {
            let routable = i["IPv4Addresses"].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["Address"]
                        .as_str()
                        .and_then(|a| a.parse::<Ipv4Addr>().ok())
                        .is_some_and(|a| !a.is_unspecified() && !a.is_link_local())
                })
            });
            routable
                && i.pointer("/Links/HostInterface").is_none()
                && i.get("InterfaceEnabled").and_then(Value::as_bool) != Some(false)
        })
        .and_then(|i| {
            i.get("PermanentMACAddress")
                .or(i.get("MACAddress"))
                .and_then(Value::as_str)
                .and_then(mac)
        });
    Expected {
        manufacturer: s(&system, "Manufacturer"),
        model: s(&system, "Model"),
        serial: if dell {
            s(&system, "SKU")
        } else {
            s(&system, "SerialNumber")
        },
        bmc_mac,
        firmware: s(&manager, "FirmwareVersion"),
    }
}

#[test]
fn every_mockup_model_yields_its_own_identity() {
    let emu = Emulator::start(0);
    let models = emulator::all_models();
    assert!(models.len() >= 20, "mockups missing? {models:?}");
    let ca = std::env::temp_dir().join(format!("emu-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let d = discoverer(
        TlsPolicy::ca_file(&ca).unwrap(),
        good_creds(),
        Limits::default(),
    );
    let mut report = Vec::new();
    let mut most = (0u32, 0u64, 0u64);
    for (i, model) in models.iter().enumerate() {
        let addr = Ipv4Addr::new(127, 30, 0, i as u8 + 1);
        emu.add(addr, model, 0, USER, PASS);
        let got = d
            .discover(&target(&emu, addr))
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let inv = &got.inventory;
        let want = expected(model);
        // A placeholder in the file is "unknown": the engine may fill it
        // from elsewhere (Dell's manufacturer), never with the placeholder.
        let check = |what: &str, want: &Option<String>, got: &Option<String>| {
            if want.is_some() {
                assert_eq!(got, want, "{model}: {what}");
            } else if let Some(g) = got {
                assert!(!is_placeholder(g), "{model}: {what} is a placeholder {g:?}");
            }
        };
        check("manufacturer", &want.manufacturer, &inv.manufacturer);
        check("model", &want.model, &inv.model);
        check("serial", &want.serial, &inv.serial_number);
        check("BMC MAC", &want.bmc_mac, &inv.bmc.mac);
        check("BMC firmware", &want.firmware, &inv.bmc.firmware_version);
        assert_eq!(
            emu.stats(addr).sessions_open,
            0,
            "{model}: session left open"
        );
        most = (
            most.0.max(got.round_trips),
            most.1.max(got.bytes_read),
            most.2.max(got.parsed_bytes),
        );
        report.push(format!(
            "{model:32} {:10} rt {:3} {:7} B read {:8} B parsed {:5} ms  cpus {:2} dimms {:2} drives {:2} nics {:2} fw {:3} warnings {}",
            inv.vendor,
            got.round_trips,
            got.bytes_read,
            got.parsed_bytes,
            got.elapsed_ms,
            inv.cpus.len(),
            inv.dimms.len(),
            inv.drives.len(),
            inv.nics.len(),
            inv.firmware.len(),
            got.warnings.len()
        ));
        // Every iDRAC 9 capture links DellSwitchConnection and none serves
        // it: asked for (within the budget), never a warning.
        assert!(
            !got.warnings
                .iter()
                .any(|w| w.contains("DellSwitchConnection")),
            "{model}: {:?}",
            got.warnings
        );
        let vendor = model.split('-').next().unwrap();
        match vendor {
            "dell" | "hpe" | "lenovo" | "supermicro" => {
                assert_eq!(inv.vendor, vendor, "{model}: vendor module")
            }
            _ => assert_eq!(inv.vendor, "generic", "{model}: vendor module"),
        }
    }
    eprintln!("{}", report.join("\n"));
    // The budgets' defaults leave every real BMC a wide margin: at least
    // 4x its requests, bytes and parsed memory.
    let l = Limits::default();
    eprintln!(
        "largest: {} requests (budget {}), {} bytes read (budget {}), {} bytes parsed (budget {})",
        most.0, l.max_requests, most.1, l.max_discovery_bytes, most.2, l.max_parsed_bytes
    );
    assert!(most.0 * 4 <= l.max_requests, "requests {most:?}");
    assert!(most.1 * 4 <= l.max_discovery_bytes, "bytes {most:?}");
    assert!(most.2 * 4 <= l.max_parsed_bytes, "parsed {most:?}");
    assert_eq!(emu.open_sessions(), 0);
    std::fs::remove_file(&ca).ok();
}

#[test]
fn a_bmc_never_seen_before_yields_a_generic_inventory() {
    // The DMTF public mockup is no vendor's: nothing in the engine names it.
    let emu = Emulator::start(0);
    let addr = Ipv4Addr::new(127, 31, 0, 1);
    emu.add(addr, "dmtf-public-rackmount1", 0, USER, PASS);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let got = d.discover(&target(&emu, addr)).unwrap();
    let inv = got.inventory;
    assert_eq!(inv.vendor, "generic");
    assert_eq!(inv.manufacturer.as_deref(), Some("Contoso"));
    assert!(!inv.cpus.is_empty() && !inv.dimms.is_empty() && !inv.nics.is_empty());
    assert!(inv.location.is_some(), "the DMTF mockup carries a Location");
    assert_eq!(got.auth, "session");
}

#[test]
fn instances_of_one_model_have_their_own_serials_and_macs() {
    let emu = Emulator::start(0);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let mut seen = Vec::new();
    for k in 0..3u8 {
        let addr = Ipv4Addr::new(127, 32, 0, k + 1);
        emu.add(addr, "dell-idrac9-r750", u32::from(k), USER, PASS);
        let inv = d.discover(&target(&emu, addr)).unwrap().inventory;
        // What the emulator serves at this address is what was read.
        let sys = emu
            .served(addr, "/redfish/v1/Systems/System.Embedded.1")
            .unwrap();
        assert_eq!(inv.service_tag.as_deref(), sys["SKU"].as_str());
        seen.push((inv.service_tag.unwrap(), inv.bmc.mac.unwrap()));
    }
    for i in 0..seen.len() {
        for j in i + 1..seen.len() {
            assert_ne!(seen[i].0, seen[j].0, "service tags");
            assert_ne!(seen[i].1, seen[j].1, "BMC MACs");
        }
    }
}

/// What one discovery of a BMC alone on its emulator gave, how long it
/// took, and the emulator and address (for its counters).
type Alone = (
    Result<dhcp_bmc_discovery::redfish::Discovery, dhcp_bmc_discovery::redfish::Error>,
    Duration,
    Emulator,
    Ipv4Addr,
);

/// Discovers one BMC of `model` with `faults` at `addr`, alone on its
/// emulator, within `limits`.
fn discover_alone(addr: Ipv4Addr, model: &str, faults: Faults, limits: Limits) -> Alone {
    let emu = Emulator::start(0);
    emu.add(addr, model, 0, USER, PASS);
    emu.set_faults(addr, faults);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), limits);
    let t = Instant::now();
    let r = d.discover(&target(&emu, addr));
    (r, t.elapsed(), emu, addr)
}

/// One fault on its own address: the discovery ends within its deadline,
/// with the expected kind of failure, and leaves no session open.
fn faulty(block: u8, fault: Faults, limits: Limits) -> Alone {
    let addr = Ipv4Addr::new(127, 33, block, 1);
    discover_alone(addr, "hpe-ilo5-dl385gen10plusv2", fault, limits)
}

fn quick() -> Limits {
    Limits {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(4),
        backoff: Duration::from_millis(50),
        ..Limits::default()
    }
}

#[test]
fn faults_end_in_bounded_time_with_a_clear_reason() {
    let slack = Duration::from_secs(6);
    let cases: Vec<(&str, Faults, Option<FailureKind>, &str)> = vec![
        (
            "hang",
            Faults {
                hang: true,
                ..Faults::default()
            },
            Some(FailureKind::Timeout),
            "timed out",
        ),
        (
            "5xx",
            Faults {
                server_errors: u32::MAX,
                ..Faults::default()
            },
            Some(FailureKind::Protocol),
            "answered 503",
        ),
        (
            "malformed",
            Faults {
                malformed: true,
                ..Faults::default()
            },
            Some(FailureKind::Protocol),
            "not valid JSON",
        ),
        (
            "truncated",
            Faults {
                truncated: true,
                ..Faults::default()
            },
            Some(FailureKind::Protocol),
            "reading the response",
        ),
        (
            "huge",
            Faults {
                huge: true,
                ..Faults::default()
            },
            Some(FailureKind::BudgetResponse),
            "byte limit",
        ),
        (
            "redirect loop",
            Faults {
                redirect_loop: true,
                ..Faults::default()
            },
            Some(FailureKind::Protocol),
            "redirect",
        ),
        (
            "401",
            Faults {
                unauthorized: true,
                ..Faults::default()
            },
            Some(FailureKind::Auth),
            "rejected",
        ),
        (
            "missing system",
            Faults {
                missing: vec!["/redfish/v1/Systems".into()],
                ..Faults::default()
            },
            Some(FailureKind::Protocol),
            "no ComputerSystem",
        ),
        (
            "latency 50 ms",
            Faults {
                latency: Duration::from_millis(50),
                ..Faults::default()
            },
            None,
            "",
        ),
    ];
    for (i, (name, fault, kind, text)) in cases.into_iter().enumerate() {
        let (r, took, emu, addr) = faulty(i as u8, fault, quick());
        assert!(took < quick().deadline + slack, "{name}: took {took:?}");
        match (kind, r) {
            (None, Ok(_)) => {}
            (Some(k), Err(e)) => {
                assert_eq!(e.kind, k, "{name}: {e}");
                assert!(e.message.contains(text), "{name}: {e}");
                assert!(!e.message.contains(PASS), "{name}: password in {e}");
                eprintln!("{name:15} {:5} ms  {e}", took.as_millis());
            }
            (k, r) => panic!("{name}: wanted {k:?}, got {:?}", r.map(|d| d.round_trips)),
        }
        assert_eq!(
            emu.stats(addr).sessions_open,
            0,
            "{name}: session left open"
        );
    }
}

#[test]
fn missing_resources_degrade_to_warnings() {
    let fault = Faults {
        missing: vec![
            "/redfish/v1/Systems/1/Processors".into(),
            "/redfish/v1/UpdateService".into(),
            "/redfish/v1/Systems/1/SmartStorage".into(),
        ],
        ..Faults::default()
    };
    let (r, _, emu, _) = faulty(40, fault, quick());
    let got = r.unwrap();
    assert!(got.inventory.cpus.is_empty());
    assert!(got.inventory.firmware.is_empty());
    assert!(got.inventory.serial_number.is_some());
    assert!(
        got.warnings.iter().any(|w| w.contains("Processors")),
        "{:?}",
        got.warnings
    );
    assert!(
        got.warnings.iter().any(|w| w.contains("SmartStorage")),
        "{:?}",
        got.warnings
    );
    assert_eq!(emu.open_sessions(), 0);
}

#[test]
fn retry_after_is_honoured_and_the_retry_succeeds() {
    let fault = Faults {
        server_errors: 2,
        retry_after_s: Some(1),
        ..Faults::default()
    };
    let limits = Limits {
        deadline: Duration::from_secs(20),
        ..quick()
    };
    let (r, took, emu, _) = faulty(41, fault, limits);
    assert!(r.is_ok(), "{:?}", r.err());
    assert!(
        took >= Duration::from_secs(2),
        "two Retry-After: 1 waits, took {took:?}"
    );
    assert_eq!(emu.open_sessions(), 0);
}

#[test]
fn basic_auth_when_the_bmc_has_no_sessions() {
    let fault = Faults {
        no_sessions: true,
        ..Faults::default()
    };
    let (r, _, emu, addr) = faulty(42, fault, quick());
    let got = r.unwrap();
    assert_eq!(got.auth, "basic");
    assert_eq!(emu.stats(addr).sessions_created, 0);
}

#[test]
fn a_wrong_password_fails_once_per_credential_per_window() {
    let emu = Emulator::start(0);
    let addr = Ipv4Addr::new(127, 34, 0, 1);
    emu.add(addr, "lenovo-xcc-sr670v2", 0, USER, PASS);
    let file = std::env::temp_dir().join(format!("creds-{}.json", std::process::id()));
    std::fs::write(
        &file,
        format!(
            r#"[{{"username": "USERID", "password": "PASSW0RD"}},
                {{"username": "{USER}", "password": "wrong"}},
                {{"username": "{USER}-hpe", "password": "x", "vendor": "hpe"}},
                {{"username": "{USER}", "password": "{PASS}"}}]"#
        ),
    )
    .unwrap();
    let creds = Credentials::load(Path::new(&file)).unwrap();
    std::fs::remove_file(&file).ok();
    let d = discoverer(TlsPolicy::Insecure, creds, quick());
    // Entries 1 and 2 fail, the HPE-only entry is skipped (the root says
    // Lenovo), entry 4 shares entry 2's username, which just failed here,
    // and the BMC has seen the two failed logins it may per window: held
    // back. So the first run fails with exactly two failures.
    let e = d.discover(&target(&emu, addr)).unwrap_err();
    assert_eq!(e.kind, FailureKind::Auth);
    assert!(e.message.contains("held back"), "{e}");
    assert!(
        !e.message.contains("wrong") && !e.message.contains(PASS),
        "{e}"
    );
    assert_eq!(emu.stats(addr).logins_failed, 2);
    // Retried at once: everything is held back, nothing reaches the BMC.
    let e = d.discover(&target(&emu, addr)).unwrap_err();
    assert_eq!(e.kind, FailureKind::Auth);
    assert_eq!(emu.stats(addr).logins_failed, 2);
    assert_eq!(emu.open_sessions(), 0);

    // Three wrong usernames before the right one: two failures, then the
    // BMC's limit holds the rest back (iDRAC blocks after three).
    let creds = Credentials::parse(&format!(
        r#"[{{"username": "a", "password": "x"}}, {{"username": "b", "password": "x"}},
            {{"username": "c", "password": "x"}}, {{"username": "{USER}", "password": "{PASS}"}}]"#
    ))
    .unwrap();
    let addr3 = Ipv4Addr::new(127, 34, 0, 3);
    emu.add(addr3, "dell-idrac9-r750", 2, USER, PASS);
    let e = discoverer(TlsPolicy::Insecure, creds, quick())
        .discover(&target(&emu, addr3))
        .unwrap_err();
    assert!(e.message.contains("the most it may see"), "{e}");
    assert_eq!(emu.stats(addr3).logins_failed, 2);

    // With distinct usernames, the next credential is tried and works,
    // and the one that worked goes first next time.
    let creds = Credentials::parse(&format!(
        r#"[{{"username": "USERID", "password": "PASSW0RD"}},
            {{"username": "{USER}", "password": "{PASS}"}}]"#
    ))
    .unwrap();
    let addr2 = Ipv4Addr::new(127, 34, 0, 2);
    emu.add(addr2, "lenovo-xcc-sr670v2", 1, USER, PASS);
    let d = discoverer(TlsPolicy::Insecure, creds, quick());
    let got = d.discover(&target(&emu, addr2)).unwrap();
    assert_eq!(got.username, USER);
    assert_eq!(emu.stats(addr2).logins_failed, 1);
    d.discover(&target(&emu, addr2)).unwrap();
    assert_eq!(
        emu.stats(addr2).logins_failed,
        1,
        "the good credential goes first"
    );
    assert_eq!(emu.open_sessions(), 0);
}

#[test]
fn tls_modes_verify_pin_and_insecure() {
    let emu = Emulator::start(0);
    let addr = Ipv4Addr::new(127, 35, 0, 1);
    emu.add(addr, "supermicro-x13-sys821ge-tnhr", 0, USER, PASS);
    let t = target(&emu, addr);

    // System roots do not know the emulator's CA: refused, with the fix.
    let d = discoverer(TlsPolicy::system_roots().unwrap(), good_creds(), quick());
    let e = d.discover(&t).unwrap_err();
    assert_eq!(e.kind, FailureKind::Tls, "{e}");
    assert!(e.message.contains("--ca-file"), "{e}");

    // Pinning: first sight pins, the same certificate passes, a new one is
    // refused and reported with both fingerprints.
    let dir = std::env::temp_dir().join(format!("pins-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pins = dir.join("pins.json");
    let store = Arc::new(PinStore::open(&pins).unwrap());
    let d = discoverer(TlsPolicy::Pin(store.clone()), good_creds(), quick());
    d.discover(&t).unwrap();
    assert_eq!(store.get(&t.key()), Some(emu.fingerprint(addr)));
    d.discover(&t).unwrap();
    let old = emu.fingerprint(addr);
    emu.rotate_cert(addr);
    let e = d.discover(&t).unwrap_err();
    assert_eq!(e.kind, FailureKind::Tls);
    assert!(
        e.message.contains(&old) && e.message.contains(&emu.fingerprint(addr)),
        "{e}"
    );
    // The pin survives a restart (the file).
    assert_eq!(PinStore::open(&pins).unwrap().get(&t.key()), Some(old));
    std::fs::remove_dir_all(&dir).ok();

    let d = discoverer(TlsPolicy::Insecure, good_creds(), quick());
    d.discover(&t).unwrap();
    assert_eq!(emu.open_sessions(), 0);
}

/// A hostile BMC on its own address in block 127.36.`block`.0, discovered
/// with the default limits (but a short deadline).
fn hostile(block: u8, h: Hostile, limits: Limits) -> Alone {
    let addr = Ipv4Addr::new(127, 36, block, 1);
    let faults = Faults {
        hostile: Some(h),
        ..Faults::default()
    };
    discover_alone(addr, "dell-idrac9-r750", faults, limits)
}

#[test]
fn each_budget_stops_a_hostile_bmc_with_its_own_class() {
    let limits = Limits {
        deadline: Duration::from_secs(20),
        ..Limits::default()
    };
    let cases: Vec<(&str, Hostile, Limits, FailureKind, &str)> = vec![
        (
            "150,000 Systems members",
            Hostile::ManyMembers(150_000),
            limits,
            FailureKind::BudgetResponse,
            "max-response-bytes",
        ),
        (
            "5,000 Systems members",
            Hostile::ManyMembers(5_000),
            limits,
            FailureKind::BudgetMembers,
            "more than 1000 elements",
        ),
        (
            "900 Systems members, each fetched",
            Hostile::ManyMembers(900),
            limits,
            FailureKind::BudgetRequests,
            "more than 400 requests",
        ),
        (
            "5 x 999 members under the system",
            Hostile::ManySubMembers(999),
            limits,
            FailureKind::BudgetRequests,
            "more than 400 requests",
        ),
        (
            "1 MB bodies",
            Hostile::BigBodies(1_000_000),
            limits,
            FailureKind::BudgetBytes,
            "max-discovery-bytes",
        ),
        (
            "costly JSON",
            Hostile::CostlyJson(20_000),
            limits,
            FailureKind::BudgetMemory,
            "max-parsed-bytes",
        ),
        (
            "deep nesting",
            Hostile::DeepNesting(100_000),
            limits,
            FailureKind::BudgetResponse,
            "nests deeper than 32",
        ),
        (
            "slow answers past the deadline",
            Hostile::BigBodies(0),
            Limits {
                deadline: Duration::from_millis(1500),
                ..Limits::default()
            },
            FailureKind::BudgetTime,
            "deadline",
        ),
    ];
    for (i, (name, h, limits, kind, text)) in cases.into_iter().enumerate() {
        let slow = kind == FailureKind::BudgetTime;
        let (r, took, emu, addr) = if slow {
            // Every answer takes 400 ms: the deadline passes mid-walk.
            let faults = Faults {
                latency: Duration::from_millis(400),
                hostile: Some(h),
                ..Faults::default()
            };
            let addr = Ipv4Addr::new(127, 36, i as u8, 1);
            discover_alone(addr, "dell-idrac9-r750", faults, limits)
        } else {
            hostile(i as u8, h, limits)
        };
        let e = match r {
            Err(e) => e,
            Ok(d) => panic!("{name}: discovered, {} requests", d.round_trips),
        };
        eprintln!(
            "{name:34} {:6} ms  {}: {e}",
            took.as_millis(),
            e.kind.as_str()
        );
        assert_eq!(e.kind, kind, "{name}: {e}");
        assert!(e.message.contains(text), "{name}: {e}");
        // Giving up is quick: the budgets cut the work, not the deadline.
        assert!(took < Duration::from_secs(10), "{name}: took {took:?}");
        let st = emu.stats(addr);
        assert!(st.requests <= 401, "{name}: {} requests", st.requests);
        assert_eq!(st.sessions_open, 0, "{name}: session left open");
    }
}

#[test]
fn links_off_the_bmc_are_refused_and_nothing_reaches_them() {
    let spy = Spy::start(Ipv4Addr::new(127, 3, 0, 1));
    let to = spy.addr.to_string();
    // The spy sees what connects to it.
    drop(std::net::TcpStream::connect(spy.addr).unwrap());
    support_wait(|| spy.hits() == 1);
    let seen = spy.hits();
    let places = [
        Place::Member,
        Place::MemberUserinfo,
        Place::Links,
        Place::SessionsLink,
        Place::SessionLocation,
        Place::SessionLocationOnly,
        Place::Redirect,
        Place::RedirectHttp,
        Place::DeleteRedirect,
    ];
    for (i, place) in places.into_iter().enumerate() {
        let h = Hostile::ForeignLink {
            place,
            to: to.clone(),
        };
        let (r, took, emu, addr) = hostile(100 + i as u8, h, quick());
        let name = format!("{place:?}");
        match (place, r) {
            // Logging out is best effort: a DELETE answered 302 leaves the
            // session to time out, and is not followed.
            // A Location elsewhere is not used; the session's own id on
            // the BMC is, and the session is deleted there.
            (Place::SessionLocationOnly, Ok(d)) => {
                eprintln!(
                    "{name:16} {:5} ms  discovered ({} requests); logged out at the session's own id",
                    took.as_millis(),
                    d.round_trips
                );
            }
            (Place::DeleteRedirect, Ok(d)) => {
                eprintln!(
                    "{name:16} {:5} ms  discovered ({} requests); the 302 was not followed",
                    took.as_millis(),
                    d.round_trips
                );
            }
            (_, Err(e)) => {
                eprintln!(
                    "{name:16} {:5} ms  {}: {e}",
                    took.as_millis(),
                    e.kind.as_str()
                );
                assert_eq!(e.kind, FailureKind::ForeignLink, "{name}: {e}");
                assert!(e.message.contains("127.3.0.1"), "{name}: {e}");
                assert!(!e.message.contains(PASS), "{name}: password in {e}");
            }
            (_, Ok(d)) => panic!("{name}: discovered ({} requests)", d.round_trips),
        }
        // A session that cannot be deleted on the BMC itself is left to
        // time out there.
        if ![Place::SessionLocation, Place::DeleteRedirect].contains(&place) {
            assert_eq!(
                emu.stats(addr).sessions_open,
                0,
                "{name}: session left open"
            );
        }
        assert_eq!(
            spy.hits(),
            seen,
            "{name}: a connection reached the other host"
        );
    }
}

/// Polls `f` for up to 5 s.
fn support_wait(f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The CLI, built now beside this test (same profile; a no-op when it is
/// fresh): `cargo test --all-targets` builds examples only as test
/// harnesses, not the program itself.
fn bmc_discover_cli() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let mut build = std::process::Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--example", "bmc-discover"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Without the variables cargo sets for a test run: build scripts that
    // watch them would rebuild (ring, the shim) here and again next time.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let ours = k.starts_with("CARGO_")
            && !k.starts_with("CARGO_HOME")
            && !k.starts_with("CARGO_TARGET_DIR")
            && !k.starts_with("CARGO_BUILD_")
            && !k.starts_with("CARGO_PROFILE_");
        if ours || ["LD_LIBRARY_PATH", "CARGO", "OUT_DIR"].contains(&k.as_ref()) {
            build.env_remove(k.as_ref());
        }
    }
    if dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let out = build.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --example bmc-discover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = dir.join("examples/bmc-discover");
    assert!(cli.is_file(), "{} is missing", cli.display());
    cli
}

#[test]
fn the_cli_at_trace_level_never_prints_a_token_or_password() {
    let cli = bmc_discover_cli();
    let emu = Emulator::start(0);
    for (k, basic) in [(1u8, false), (2, true)] {
        let addr = Ipv4Addr::new(127, 37, 0, k);
        emu.add(addr, "dell-idrac9-r750", 0, USER, PASS);
        emu.set_faults(
            addr,
            Faults {
                no_sessions: basic,
                ..Faults::default()
            },
        );
        let out = std::process::Command::new(&cli)
            .args([
                "--insecure",
                "--port",
                &emu.port.to_string(),
                &addr.to_string(),
            ])
            .env("RUST_LOG", "trace,ureq=trace,ureq::unit=trace")
            .env("BMC_USERNAME", USER)
            .env("BMC_PASSWORD", PASS)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // Trace is on: the engine's own request lines are there.
        assert!(err.contains("GET /redfish/v1/Systems"), "{err}");
        let tokens = emu.tokens(addr);
        assert_eq!(tokens.is_empty(), basic, "{tokens:?}");
        // No header that carries a credential, and none of their values.
        for secret in tokens.iter().map(String::as_str).chain([
            PASS,
            "X-Auth-Token:",
            "Authorization:",
            "Basic ",
        ]) {
            assert!(!err.contains(secret), "{secret:?} on stderr:\n{err}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains(PASS));
        eprintln!(
            "{} auth: {} lines on stderr at trace, no token or password",
            if basic { "basic" } else { "session" },
            err.lines().count()
        );
    }
}

#[test]
fn vendor_and_oui_bound_entries_need_the_fact_known() {
    let emu = Emulator::start(0);
    let creds = |extra: &str| {
        Credentials::parse(&format!(
            r#"[{{"username": "{USER}", "password": "{PASS}", {extra}}}]"#
        ))
        .unwrap()
    };
    let try_on = |k: u8, model: &str, creds: Credentials, mac: Option<&str>| {
        let addr = Ipv4Addr::new(127, 38, 0, k);
        emu.add(addr, model, 0, USER, PASS);
        let mut t = target(&emu, addr);
        t.mac = mac.map(str::to_string);
        let r = discoverer(TlsPolicy::Insecure, creds, quick()).discover(&t);
        (r, emu.stats(addr))
    };
    // iDRAC 8's service root names no vendor: a Dell-only entry is not
    // tried there, and nothing reaches the BMC's login.
    let (r, st) = try_on(1, "dell-idrac8-13g", creds(r#""vendor": "dell""#), None);
    let e = r.unwrap_err();
    assert_eq!(e.kind, FailureKind::Auth, "{e}");
    assert!(e.message.contains("no credential"), "{e}");
    assert_eq!(st.logins_ok + st.logins_failed, 0);
    // iDRAC 9's does: the same entry logs in.
    let (r, _) = try_on(2, "dell-idrac9-r750", creds(r#""vendor": "dell""#), None);
    assert_eq!(r.unwrap().username, USER);
    // ... but not an HPE-only one.
    let (r, st) = try_on(3, "dell-idrac9-r750", creds(r#""vendor": "hpe""#), None);
    assert_eq!(r.unwrap_err().kind, FailureKind::Auth);
    assert_eq!(st.logins_ok + st.logins_failed, 0);
    // OUI-bound: only with a lease MAC that starts with it.
    let oui = r#""oui": ["14:18:77"]"#;
    let (r, st) = try_on(4, "dell-idrac9-r750", creds(oui), None);
    assert_eq!(r.unwrap_err().kind, FailureKind::Auth);
    assert_eq!(st.logins_ok + st.logins_failed, 0);
    let (r, st) = try_on(5, "dell-idrac9-r750", creds(oui), Some("94:40:c9:00:00:05"));
    assert_eq!(r.unwrap_err().kind, FailureKind::Auth);
    assert_eq!(st.logins_ok + st.logins_failed, 0);
    let (r, _) = try_on(6, "dell-idrac9-r750", creds(oui), Some("14:18:77:00:00:06"));
    assert_eq!(r.unwrap().username, USER);
    assert_eq!(emu.open_sessions(), 0);
}

#[test]
fn strings_from_the_bmc_lose_control_and_bidi_characters() {
    let (r, _, _emu, _) = hostile(200, Hostile::DirtyStrings, quick());
    let inv = r.unwrap().inventory;
    // The hostile values carry a forged log line, escapes and controls;
    // what the inventory holds is the printable part, the forged line
    // joined on with a space.
    let fields = [
        inv.manufacturer.clone(),
        inv.model.clone(),
        inv.serial_number.clone(),
        inv.bmc.hostname.clone(),
    ];
    for f in fields.iter() {
        let f = f.as_deref().expect("a value");
        assert!(
            !f.chars()
                .any(dhcp_bmc_discovery::redfish::values::is_unsafe),
            "{f:?}"
        );
        assert!(f.contains(" 2026-12-01 12:00:00.000 ERROR"), "{f:?}");
    }
    let model = inv.model.unwrap();
    assert!(model.starts_with("PowerEdge R750 2026"), "{model:?}");
    for d in &inv.dimms {
        for s in [&d.manufacturer, &d.part_number, &d.serial_number]
            .into_iter()
            .flatten()
        {
            assert!(
                !s.chars()
                    .any(dhcp_bmc_discovery::redfish::values::is_unsafe),
                "{s:?}"
            );
        }
    }
}

#[test]
fn same_origin_redirects_are_followed_by_hand() {
    let emu = Emulator::start(0);
    let (plain, moved) = (Ipv4Addr::new(127, 39, 0, 1), Ipv4Addr::new(127, 39, 0, 2));
    emu.add(plain, "dell-idrac9-r750", 0, USER, PASS);
    emu.add(moved, "dell-idrac9-r750", 0, USER, PASS);
    emu.set_faults(
        moved,
        Faults {
            redirect_once: true,
            ..Faults::default()
        },
    );
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let a = d.discover(&target(&emu, plain)).unwrap();
    let b = d.discover(&target(&emu, moved)).unwrap();
    assert_eq!(a.inventory.service_tag, b.inventory.service_tag);
    assert_eq!(a.inventory.bmc.mac, b.inventory.bmc.mac);
    assert_eq!(a.inventory.dimms.len(), b.inventory.dimms.len());
    // Each redirect hop is a request of the budget.
    assert!(
        b.round_trips > a.round_trips,
        "{} vs {}",
        b.round_trips,
        a.round_trips
    );
    assert_eq!(u64::from(b.round_trips), emu.stats(moved).requests);
    assert_eq!(emu.open_sessions(), 0);
}

#[test]
fn a_session_token_that_is_not_a_plain_token_is_refused() {
    let (r, _, _emu, _) = hostile(201, Hostile::OddToken, quick());
    let e = r.unwrap_err();
    assert_eq!(e.kind, FailureKind::Protocol, "{e}");
    assert!(e.message.contains("not a printable ASCII token"), "{e}");
    assert!(!e.message.contains("odd token"), "{e}");
}

/// The host ports a model's files show, by simple rules of their own:
/// every MAC of a NetworkDeviceFunction under the chassis' adapters
/// (permanent first), of the system's EthernetInterfaces that are not the
/// host side of the BMC's NIC, and of HPE's BaseNetworkAdapters; an
/// adapter port no function gives a MAC adds its one associated MAC, or
/// counts as a port without one; the manager's own MACs are none of them.
struct ExpectedPorts {
    macs: std::collections::BTreeSet<String>,
    without_mac: usize,
    /// MACs whose device function boots by PXE.
    pxe: std::collections::BTreeSet<String>,
    /// MAC -> (neighbour chassis id, decoded port id) from LLDPReceive.
    lldp: std::collections::BTreeMap<String, (String, String)>,
    bmc_macs: std::collections::BTreeSet<String>,
}

/// The members a collection lists (the BMC's view: the Dell R750's
/// InfiniBand NetworkPorts lists one of its two port folders).
fn member_docs(model: &str, coll: Option<&str>) -> Vec<Value> {
    let Some(c) = coll else { return Vec::new() };
    let Some(list) = read(model, c) else {
        return Vec::new();
    };
    list["Members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["@odata.id"].as_str())
        .filter_map(|p| read(model, p))
        .collect()
}

fn id_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer(&format!("/{key}/@odata.id"))
        .and_then(Value::as_str)
}

/// `31:2F:31` -> "1/1"; anything else unchanged.
fn unhex(s: &str) -> String {
    let bytes: Option<Vec<u8>> = s
        .split(':')
        .map(|p| {
            u8::from_str_radix(p, 16)
                .ok()
                .filter(|b| (0x20..0x7f).contains(b))
        })
        .collect();
    match bytes {
        Some(b) if b.len() > 1 => String::from_utf8(b).unwrap(),
        _ => s.to_string(),
    }
}

fn expected_ports(model: &str) -> ExpectedPorts {
    let sys_uri = children(model, "/redfish/v1/Systems")
        .into_iter()
        .find(|p| {
            read(model, p)
                .is_some_and(|s| s.get("SystemType").and_then(Value::as_str) != Some("DPU"))
        });
    let sys = sys_uri
        .as_deref()
        .and_then(|p| read(model, p))
        .unwrap_or(Value::Null);
    let chassis = sys
        .pointer("/Links/Chassis/0/@odata.id")
        .and_then(Value::as_str)
        .and_then(|c| read(model, c))
        .or_else(|| {
            children(model, "/redfish/v1/Chassis")
                .first()
                .and_then(|c| read(model, c))
        })
        .unwrap_or(Value::Null);
    let manager = sys
        .pointer("/Links/ManagedBy/0/@odata.id")
        .and_then(Value::as_str)
        .and_then(|m| read(model, m))
        .unwrap_or(Value::Null);
    let mac_at = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.pointer(k).and_then(Value::as_str).and_then(mac))
    };
    let mut e = ExpectedPorts {
        macs: Default::default(),
        without_mac: 0,
        pxe: Default::default(),
        lldp: Default::default(),
        bmc_macs: Default::default(),
    };
    for i in member_docs(model, id_of(&manager, "EthernetInterfaces")) {
        e.bmc_macs.extend(mac_at(&i, &["/PermanentMACAddress"]));
        e.bmc_macs.extend(mac_at(&i, &["/MACAddress"]));
    }
    let mut found = Vec::new();
    for a in member_docs(model, id_of(&chassis, "NetworkAdapters")) {
        let ndfs = member_docs(model, id_of(&a, "NetworkDeviceFunctions"));
        let ports = member_docs(model, id_of(&a, "Ports").or(id_of(&a, "NetworkPorts")));
        for d in &ndfs {
            if let Some(m) = mac_at(
                d,
                &["/Ethernet/PermanentMACAddress", "/Ethernet/MACAddress"],
            ) {
                if d["BootMode"] == "PXE" {
                    e.pxe.insert(m.clone());
                }
                found.push(m);
            }
        }
        for p in &ports {
            let pid = p["@odata.id"].as_str().unwrap().trim_end_matches('/');
            // A function names its port in Links (or, deprecated, at its
            // top level); a list of assignable ports counts when it holds
            // one port only.
            let names = |d: &Value, p: &str| {
                [
                    "/Links/PhysicalNetworkPortAssignment",
                    "/Links/PhysicalPortAssignment",
                    "/PhysicalNetworkPortAssignment",
                    "/PhysicalPortAssignment",
                ]
                .iter()
                .any(|k| d.pointer(&format!("{k}/@odata.id")).and_then(Value::as_str) == Some(p))
            };
            let only = |d: &Value, p: &str| {
                let l: Vec<&str> = ["AssignablePhysicalNetworkPorts", "AssignablePhysicalPorts"]
                    .iter()
                    .flat_map(|k| d[*k].as_array().into_iter().flatten())
                    .filter_map(|x| x["@odata.id"].as_str())
                    .collect();
                l.len() == 1 && l[0] == p
            };
            let linked = ndfs
                .iter()
                .find(|d| names(d, pid))
                .or_else(|| ndfs.iter().find(|d| only(d, pid)));
            let own = linked.and_then(|d| {
                mac_at(
                    d,
                    &["/Ethernet/PermanentMACAddress", "/Ethernet/MACAddress"],
                )
            });
            let assoc: Vec<String> = p
                .pointer("/Ethernet/AssociatedMACAddresses")
                .or(p.get("AssociatedNetworkAddresses"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|m| m.as_str().and_then(mac)).collect())
                .unwrap_or_default();
            match (&own, assoc.len()) {
                (Some(_), _) => {}
                (None, 0) => e.without_mac += 1,
                (None, 1) => found.push(assoc[0].clone()),
                (None, n) => panic!("{model}: {pid} has {n} MACs and no function: no rule"),
            }
            let lldp = p.pointer("/Ethernet/LLDPReceive");
            if let (Some(own), Some(l)) = (own, lldp) {
                if l["ChassisIdSubtype"] == "MacAddr" {
                    e.lldp.insert(
                        own,
                        (
                            mac(l["ChassisId"].as_str().unwrap()).unwrap(),
                            unhex(l["PortId"].as_str().unwrap()),
                        ),
                    );
                }
            }
        }
    }
    for i in member_docs(model, id_of(&sys, "EthernetInterfaces")) {
        if i.pointer("/Links/HostInterface").is_none() {
            found.extend(mac_at(&i, &["/PermanentMACAddress", "/MACAddress"]));
        }
    }
    let base = sys
        .pointer("/Oem/Hpe/Links/NetworkAdapters/@odata.id")
        .and_then(Value::as_str);
    for a in member_docs(model, base) {
        for p in a["PhysicalPorts"].as_array().into_iter().flatten() {
            found.extend(mac_at(p, &["/MacAddress"]));
        }
    }
    e.macs = found
        .into_iter()
        .filter(|m| !e.bmc_macs.contains(m))
        .collect();
    e
}

#[test]
fn every_model_lists_its_host_ports_once_each_with_its_own_mac() {
    let emu = Emulator::start(0);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let mut report = Vec::new();
    for (i, model) in emulator::all_models().iter().enumerate() {
        let addr = Ipv4Addr::new(127, 40, 0, i as u8 + 1);
        emu.add(addr, model, 0, USER, PASS);
        let inv = d
            .discover(&target(&emu, addr))
            .unwrap_or_else(|e| panic!("{model}: {e}"))
            .inventory;
        let want = expected_ports(model);
        let ports = &inv.host_ports;
        let got: std::collections::BTreeSet<String> =
            ports.iter().filter_map(|p| p.mac.clone()).collect();
        assert_eq!(got, want.macs, "{model}: host port MACs");
        assert_eq!(
            ports.len(),
            want.macs.len() + want.without_mac,
            "{model}: one port per MAC, plus the ports without one: {ports:#?}"
        );
        let names: std::collections::BTreeSet<&String> = ports.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), ports.len(), "{model}: names unique");
        assert!(
            ports
                .iter()
                .all(|p| p.mac.as_ref().is_none_or(|m| !want.bmc_macs.contains(m))),
            "{model}: a BMC interface listed as a host port"
        );
        let pxe: std::collections::BTreeSet<String> = ports
            .iter()
            .filter(|p| p.pxe)
            .filter_map(|p| p.mac.clone())
            .collect();
        assert_eq!(
            pxe,
            want.pxe.intersection(&want.macs).cloned().collect(),
            "{model}: PXE"
        );
        for p in ports {
            let m = p.mac.clone().unwrap_or_default();
            match (want.lldp.get(&m), &p.lldp) {
                (Some((chassis, port)), Some(n)) => {
                    assert_eq!(n.chassis_id.as_ref(), Some(chassis), "{model} {}", p.name);
                    assert_eq!(n.port_id.as_ref(), Some(port), "{model} {}", p.name);
                }
                (None, None) => {}
                (w, g) => panic!("{model} {}: LLDP neighbour {w:?}, got {g:?}", p.name),
            }
        }
        report.push(format!(
            "{model:32} {:2} ports: {}",
            ports.len(),
            ports
                .iter()
                .map(|p| format!("{}={}", p.name, p.mac.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        // Names per vendor, as the captures name the ports.
        if model.starts_with("dell-") {
            for a in member_docs(
                model,
                Some(&format!(
                    "{}/NetworkAdapters",
                    "/redfish/v1/Chassis/System.Embedded.1"
                )),
            ) {
                let coll = id_of(&a, "Ports").or(id_of(&a, "NetworkPorts"));
                for p in member_docs(model, coll) {
                    let id = p["Id"].as_str().unwrap();
                    assert!(
                        ports.iter().any(|x| x.name == id),
                        "{model}: Dell port {id} by its own id"
                    );
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn hpe_lldp_neighbours_and_the_bonded_mac_are_read_as_captured() {
    // Listed from the captures, port by port, so each line is checked
    // against the file it names.
    let emu = Emulator::start(0);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let cases = [
        // hpe-ilo5-dl360gen10plus: Chassis/1/NetworkAdapters/DE080000,
        // BaseNetworkAdapters/1 (StructuredName NIC.Slot.1.1). Port 1's
        // AssociatedMACAddresses start with port 0's MAC (..:ac); its
        // function's PermanentMACAddress is ..:ad.
        (
            "hpe-ilo5-dl360gen10plus",
            "NIC.Slot.1.1-1",
            "88:e9:a4:6b:a8:ac",
            "bc:d7:a5:72:f4:00",
            "1/1/1:4",
        ),
        (
            "hpe-ilo5-dl360gen10plus",
            "NIC.Slot.1.1-2",
            "88:e9:a4:6b:a8:ad",
            "90:20:c2:c7:22:00",
            "1/1/1:4",
        ),
        // hpe-ilo5-dl365gen10plus: NetworkAdapters/DE07A000,
        // BaseNetworkAdapters/1 (OCP.Slot.10.1).
        (
            "hpe-ilo5-dl365gen10plus",
            "OCP.Slot.10.1-1",
            "84:16:0c:39:a1:e2",
            "18:7a:3b:4b:92:00",
            "1/1/1:2",
        ),
        (
            "hpe-ilo5-dl365gen10plus",
            "OCP.Slot.10.1-2",
            "84:16:0c:39:a1:e3",
            "90:20:c2:c9:55:00",
            "1/1/1:2",
        ),
    ];
    for (i, model) in ["hpe-ilo5-dl360gen10plus", "hpe-ilo5-dl365gen10plus"]
        .iter()
        .enumerate()
    {
        let addr = Ipv4Addr::new(127, 41, 0, i as u8 + 1);
        emu.add(addr, model, 0, USER, PASS);
        let inv = d.discover(&target(&emu, addr)).unwrap().inventory;
        for (m, name, port_mac, chassis, port_id) in cases.iter().filter(|c| c.0 == *model) {
            let _ = m;
            let p = inv
                .host_ports
                .iter()
                .find(|p| p.name == *name)
                .unwrap_or_else(|| panic!("{model}: no port {name}: {:#?}", inv.host_ports));
            assert_eq!(p.mac.as_deref(), Some(*port_mac), "{model} {name}");
            assert!(p.pxe, "{model} {name}: BootMode PXE");
            assert_eq!(p.link_up, Some(true), "{model} {name}");
            assert_eq!(p.speed_mbps, Some(25_000), "{model} {name}");
            let n = p.lldp.as_ref().expect("neighbour");
            assert_eq!(n.chassis_id.as_deref(), Some(*chassis), "{model} {name}");
            assert_eq!(n.chassis_id_subtype.as_deref(), Some("MacAddr"));
            assert_eq!(n.port_id.as_deref(), Some(*port_id), "{model} {name}");
            assert_eq!(n.port_id_subtype.as_deref(), Some("IfName"));
        }
        // The partner's MAC the bonded port also lists is no port of its own.
        if *model == "hpe-ilo5-dl360gen10plus" {
            for stray in ["88:e9:a4:6b:a8:ae", "88:e9:a4:6b:a8:af"] {
                assert!(
                    inv.host_ports
                        .iter()
                        .all(|p| p.mac.as_deref() != Some(stray)),
                    "{stray} is in AssociatedMACAddresses only"
                );
            }
        }
    }
}

#[test]
fn ports_are_named_and_addressed_as_their_captures_say() {
    // (model, port name, MAC, where the pair is in the capture)
    let cases = [
        // Chassis/1/NetworkAdapters/slot-27/Ports/2 and the function that
        // names it (NetworkDeviceFunctions/2.1); every function there lists
        // all four ports as assignable.
        ("lenovo-xcc-sr670v2", "slot-27-2", "00:62:0b:4c:28:4f"),
        ("lenovo-xcc-sr670v2", "slot-27-4", "00:62:0b:4c:28:51"),
        // NetworkAdapters/9/Ports/2 + NetworkDeviceFunctions/2 (MACAddress
        // only); PCIeDevices/NIC9.
        (
            "supermicro-x13-sys821ge-tnhr",
            "NIC9-2",
            "7c:c2:55:79:3f:8f",
        ),
        // NetworkAdapters/NIC.Integrated.1/NetworkPorts/NIC.Integrated.1-2.
        (
            "dell-idrac9-r750",
            "NIC.Integrated.1-2",
            "e4:3d:1a:13:27:f1",
        ),
        // Systems/.../EthernetInterfaces/NIC.Integrated.1-3-1 (iDRAC 8 has
        // no NetworkAdapters).
        (
            "dell-idrac8-13g",
            "NIC.Integrated.1-3-1",
            "80:18:44:de:4f:e6",
        ),
        // DevType7_NIC3/Ports/DevTypeE_Slot0_Instance11_PORT1 +
        // NetworkDeviceFunction5.
        (
            "nvidia-dgxh100-ami",
            "DevTypeE_Slot0_Instance11_PORT1",
            "94:6d:ae:aa:2a:19",
        ),
        // BaseNetworkAdapters/4 (NIC.Slot.5.1), PhysicalPorts[0].
        (
            "hpe-ilo5-dl385gen10plusv2",
            "NIC.Slot.5.1-1",
            "b8:3f:d2:d7:f7:4a",
        ),
        // NetworkAdapters/DE040000/Ports/1 (PortId 2) + function 1.
        ("hpe-ilo7-dl360gen12", "DE040000-2", "58:a2:e1:48:93:af"),
        // EthernetInterfaces/2, Name "OnBoard LAN 2".
        (
            "supermicro-x10-sysf618h6",
            "OnBoard LAN 2",
            "0c:c4:7a:b7:21:c7",
        ),
        // EthernetInterfaces/12446A3B8890: PermanentMACAddress, not the
        // MACAddress AA:BB:CC:DD:EE:00 it runs with.
        (
            "dmtf-public-rackmount1",
            "12446A3B8890",
            "12:44:6a:3b:88:90",
        ),
    ];
    let emu = Emulator::start(0);
    let d = discoverer(TlsPolicy::Insecure, good_creds(), Limits::default());
    let mut models: Vec<&str> = cases.iter().map(|c| c.0).collect();
    models.dedup();
    for (i, model) in models.iter().enumerate() {
        let addr = Ipv4Addr::new(127, 42, 0, i as u8 + 1);
        emu.add(addr, model, 0, USER, PASS);
        let inv = d.discover(&target(&emu, addr)).unwrap().inventory;
        for (_, name, want) in cases.iter().filter(|c| c.0 == *model) {
            let p = inv
                .host_ports
                .iter()
                .find(|p| p.name == *name)
                .unwrap_or_else(|| panic!("{model}: no port {name}: {:#?}", inv.host_ports));
            assert_eq!(p.mac.as_deref(), Some(*want), "{model} {name}");
        }
    }
}

/// A made-up, DMTF-shaped BMC (no capture is hostile): an adapter with
/// 400 ports and 400 functions of odd types, 400 interfaces named
/// alike, through the whole walk as the fuzz target runs it.
#[test]
fn a_hostile_bmc_gets_a_bounded_port_list_and_no_panic() {
    use dhcp_bmc_discovery::redfish::fuzzing::{self, Canned};
    use dhcp_bmc_discovery::redfish::ports::{MAX_HOST_PORTS, MAX_NAME, MAX_TEXT};
    use serde_json::json;
    use std::collections::{HashMap, HashSet};
    let coll = |id: &str, members: Vec<Value>| json!({"@odata.id": id, "Members": members, "Members@odata.count": members.len()});
    let a = "/redfish/v1/Chassis/1/NetworkAdapters/X";
    let ports: Vec<Value> = (0..400)
        .map(|i| {
            json!({"@odata.id": format!("{a}/Ports/{i}"), "Id": i.to_string(),
                   "PortId": if i % 2 == 0 { json!("\u{202e}1") } else { json!([1]) },
                   "CurrentSpeedGbps": if i % 3 == 0 { json!(1e300) } else { json!(-4) },
                   "LinkStatus": 7,
                   "Ethernet": {"AssociatedMACAddresses": ["02:00:00:00:00:01", 5, "zz"],
                                "LLDPReceive": {"ChassisId": if i % 10 == 0 { "41:".repeat(300) } else { String::new() },
                                                "ChassisIdSubtype": "IfName",
                                                "PortId": {"x": 1}, "SystemName": if i % 10 == 0 { "s".repeat(500) } else { String::new() }}}})
        })
        .collect();
    let ndfs: Vec<Value> = (0..400)
        .map(|i| {
            json!({"@odata.id": format!("{a}/NetworkDeviceFunctions/{i}"), "Id": format!("f{i}"),
                   "Ethernet": {"PermanentMACAddress": format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)},
                   "BootMode": "PXE",
                   "Links": {"PhysicalNetworkPortAssignment": {"@odata.id": format!("{a}/Ports/0")}}})
        })
        .collect();
    let eths: Vec<Value> = (0..400)
        .map(|i| {
            json!({"@odata.id": format!("/redfish/v1/Systems/1/EthernetInterfaces/{i}"),
                   "Id": i.to_string(), "Name": "same",
                   "MACAddress": format!("02:00:00:01:{:02x}:{:02x}", i / 256, i % 256)})
        })
        .collect();
    let mut answers: HashMap<String, Value> = HashMap::new();
    answers.insert("/redfish/v1/".into(), json!({"Systems": {"@odata.id": "/redfish/v1/Systems"},
        "Chassis": {"@odata.id": "/redfish/v1/Chassis"}, "Managers": {"@odata.id": "/redfish/v1/Managers"}}));
    answers.insert(
        "/redfish/v1/Systems".into(),
        coll(
            "/redfish/v1/Systems",
            vec![json!({
        "@odata.id": "/redfish/v1/Systems/1", "Id": "1", "Model": "m", "SerialNumber": "S1",
        "EthernetInterfaces": {"@odata.id": "/redfish/v1/Systems/1/EthernetInterfaces"},
        "Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/1"}]}})],
        ),
    );
    answers.insert(
        "/redfish/v1/Managers".into(),
        coll("/redfish/v1/Managers", vec![]),
    );
    answers.insert(
        "/redfish/v1/Chassis".into(),
        coll("/redfish/v1/Chassis", vec![]),
    );
    answers.insert(
        "/redfish/v1/Chassis/1".into(),
        json!({"@odata.id": "/redfish/v1/Chassis/1",
        "NetworkAdapters": {"@odata.id": "/redfish/v1/Chassis/1/NetworkAdapters"}}),
    );
    answers.insert("/redfish/v1/Chassis/1/NetworkAdapters".into(), coll("/redfish/v1/Chassis/1/NetworkAdapters",
        vec![json!({"@odata.id": a, "Id": "X", "Ports": {"@odata.id": format!("{a}/Ports")},
                    "NetworkDeviceFunctions": {"@odata.id": format!("{a}/NetworkDeviceFunctions")}})]));
    answers.insert(format!("{a}/Ports"), coll(&format!("{a}/Ports"), ports));
    answers.insert(
        format!("{a}/NetworkDeviceFunctions"),
        coll(&format!("{a}/NetworkDeviceFunctions"), ndfs),
    );
    answers.insert(
        "/redfish/v1/Systems/1/EthernetInterfaces".into(),
        coll("/redfish/v1/Systems/1/EthernetInterfaces", eths),
    );
    let answers: HashMap<String, Vec<u8>> = answers
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_vec(&v).unwrap()))
        .collect();
    let canned: Canned = std::sync::Arc::new(move |p: &str| answers.get(p).cloned());
    let limits = Limits {
        parallel_requests: 1,
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let (inv, _) = fuzzing::inventory(canned, limits, None).expect("a discovery");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let ports = &inv.host_ports;
    assert_eq!(ports.len(), MAX_HOST_PORTS);
    let names: HashSet<&String> = ports.iter().map(|p| &p.name).collect();
    assert_eq!(names.len(), ports.len());
    for p in ports {
        assert!(p.name.chars().count() <= MAX_NAME && !p.name.contains('\u{202e}'));
        if let Some(n) = &p.lldp {
            assert!(n
                .chassis_id
                .as_ref()
                .is_none_or(|c| c.chars().count() <= MAX_TEXT));
            assert!(n
                .system_name
                .as_ref()
                .is_none_or(|c| c.chars().count() <= MAX_TEXT));
        }
        assert!(p.speed_mbps.is_none_or(|s| s < 1_000_000_000));
    }
}
