//! Discovery inside the real kea-dhcp4: perfdhcp BMCs take leases, the
//! hook's workers discover each leased address over Redfish, answered by the
//! emulator serving the real vendor payloads.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use bmc_test_support::emulator::{Emulator, Faults};
use bmc_test_support::kea::{check_config, config, path_env, Hook, Kea, Net};
use bmc_test_support::netbox::{netbox, reset};
use bmc_test_support::proxy::Proxy;
use bmc_test_support::{hook_library, perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

const PASS: &str = "emulated-Passw0rd";

/// The first addresses of the opted-in pool (see bmc_test_support::kea::config):
/// Kea hands these out first.
fn pool_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 10)) + i)
}

/// An emulated BMC on each of the first `n` pool addresses, every model in
/// turn; BMC `i` with `i % 7 == 3` has another password.
fn bmcs_on_pool(n: u32) -> Emulator {
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
fn fleet_on_pool(n: u32, latency: Duration, password: impl Fn(u32) -> &'static str) -> Emulator {
    let emu = Emulator::start(0);
    let faults = Faults {
        latency,
        ..Faults::default()
    };
    emu.add_fleet(pool_addr(0), n, &faults, password);
    emu
}

fn redfish_params(dir: &Path, emu: &Emulator) -> Value {
    let creds = dir.join("bmc-credentials.json");
    std::fs::write(
        &creds,
        json!([{"username": "root", "password": PASS}]).to_string(),
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

fn hook(parameters: Value) -> Hook {
    Hook::Library {
        path: hook_library(),
        parameters,
    }
}

/// Leased address -> MAC, from Kea's memfile.
fn leases(kea: &Kea) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(kea.dir.join("leases4.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.to_string(), f.get(1)?.to_string()))
        })
        .collect()
}

fn handled(s: &Value) -> u64 {
    s["events"]["processed"].as_u64().unwrap_or(0) + s["events"]["failed"].as_u64().unwrap_or(0)
}

/// Waits until at least `n` leases are handled and nothing is queued or in
/// flight; returns `bmc-status`. On timeout the panic shows the last status
/// and Kea's log tail.
fn settled(kea: &Kea, n: u64) -> Value {
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

#[test]
fn every_bmc_lease_is_discovered_or_fails_visibly() {
    let net = Net::new(21);
    let dir = TempDir::new("discovery");
    let emu = bmcs_on_pool(60);
    let params = json!({"workers": 8, "redfish": redfish_params(dir.path(), &emu)});
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));

    let n = 30;
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = settled(&kea, n as u64);

    let leased = leases(&kea);
    assert_eq!(leased.len(), n, "{leased:?}");
    let index = |ip: &str| u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
    let bad = |ip: &str| index(ip) % 7 == 3;
    let wrong_password = leased.keys().filter(|ip| bad(ip)).count();
    assert!(
        wrong_password > 0,
        "the test needs some BMCs with another password"
    );
    // Under load perfdhcp may retransmit a REQUEST, which Kea answers as a
    // renewal, so a lease can be handled more than once. What must hold
    // exactly is checked below: one discovery per good BMC, one failed
    // login per bad one.
    let events = &status["events"];
    assert!(
        events["failed"].as_u64() >= Some(wrong_password as u64),
        "{status}"
    );
    assert!(
        events["processed"].as_u64() >= Some((n - wrong_password) as u64),
        "{status}"
    );
    assert_eq!(events["panics"], 0, "{status}");

    // Each good BMC shows up once in Kea's log as discovered; each bad one
    // with its failure and reason.
    let log = kea.log();
    for (ip, mac) in &leased {
        if bad(ip) {
            let failed: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!("lease of {mac} failed")))
                .collect();
            assert!(!failed.is_empty(), "{mac}: no failure logged");
            assert!(
                failed[0].contains("discovery failed (auth)"),
                "{}",
                failed[0]
            );
        } else {
            let needle = format!("discovered BMC {mac} at {ip}:");
            let lines = log.lines().filter(|l| l.contains(&needle)).count();
            assert_eq!(lines, 1, "{mac} at {ip}");
        }
    }
    assert!(!log.contains(PASS), "a password reached Kea's log");
    for l in log.lines().filter(|l| l.contains("discovered BMC")).take(3) {
        eprintln!("{l}");
    }
    for l in log.lines().filter(|l| l.contains("failed (auth)")).take(1) {
        eprintln!("{l}");
    }
    assert_eq!(emu.open_sessions(), 0);
    let requests_to = |emu: &Emulator, good: bool| -> u64 {
        leased
            .keys()
            .filter(|ip| bad(ip) != good)
            .map(|ip| emu.stats(ip.parse().unwrap()).requests)
            .sum()
    };
    for ip in leased.keys().filter(|ip| bad(ip)) {
        assert_eq!(emu.stats(ip.parse().unwrap()).logins_failed, 1, "{ip}");
    }

    // The same BMCs again: Kea renews their leases. Discovered ones are not
    // discovered again (no request reaches them); the failed ones are
    // tried, and the login guard keeps their failed logins at one.
    let good_before = requests_to(&emu, true);
    let again = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:00:00");
    assert!(again.success, "perfdhcp failed:\n{}", again.output);
    let status = settled(&kea, handled(&status) + n as u64);
    assert_eq!(leases(&kea).len(), n, "same BMCs, same leases");
    assert_eq!(requests_to(&emu, true), good_before, "{status}");
    assert!(requests_to(&emu, false) > 0);
    for ip in leased.keys().filter(|ip| bad(ip)) {
        assert_eq!(emu.stats(ip.parse().unwrap()).logins_failed, 1, "{ip}");
    }
    assert!(kea.child_alive());
}

/// Kea's debuglevel decides which of the hook's debug messages appear:
/// each has its own ID and level in the message file (40 for a missing
/// Redfish resource, 50 for every request), and the INFO lines keep theirs.
#[test]
fn kea_debuglevel_selects_the_hooks_debug_messages_by_id() {
    let emu = bmcs_on_pool(4);
    let mut lines = Vec::new();
    for (block, level) in [(34u8, 40), (35, 50)] {
        let net = Net::new(block);
        let dir = TempDir::new("debuglevel");
        let params = json!({"workers": 2, "redfish": redfish_params(dir.path(), &emu)});
        let mut cfg = config(net, dir.path(), &[hook(params)], "DEBUG");
        cfg["Dhcp4"]["loggers"][0]["debuglevel"] = json!(level);
        let kea = Kea::start(&dir, &cfg);
        let run = perfdhcp::avalanche(net, &net.relay_bmc(), 3, "14:18:77:00:00:00");
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
        settled(&kea, 3);
        let log = kea.log();
        let has = |id: &str| log.lines().any(|l| l.contains(&format!("] {id} ")));
        let debug_has = |id: &str| {
            log.lines()
                .any(|l| l.contains(" DEBUG ") && l.contains(&format!("] {id} ")))
        };
        assert!(has("BMC_DISCOVERY_DISCOVERED"), "{}", kea.log_tail(20));
        assert!(
            debug_has("BMC_DISCOVERY_DISCOVERY_GAP"),
            "debuglevel {level}: {}",
            kea.log_tail(20)
        );
        assert_eq!(
            debug_has("BMC_DISCOVERY_REDFISH_GET"),
            level >= 50,
            "debuglevel {level}: {}",
            kea.log_tail(20)
        );
        lines.push(log.lines().filter(|l| l.contains("BMC_DISCOVERY_")).count());
    }
    assert!(lines[1] > lines[0], "debuglevel 50 adds lines: {lines:?}");
}

#[test]
fn kea_stops_promptly_while_bmcs_hang() {
    let net = Net::new(22);
    let dir = TempDir::new("discovery-hang");
    let emu = bmcs_on_pool(20);
    for i in 0..20 {
        emu.set_faults(
            pool_addr(i),
            Faults {
                hang: true,
                ..Faults::default()
            },
        );
    }
    let mut params = redfish_params(dir.path(), &emu);
    params["request-timeout-ms"] = json!(3000);
    let kea = Kea::start(
        &dir,
        &config(
            net,
            dir.path(),
            &[hook(json!({"workers": 4, "redfish": params}))],
            "INFO",
        ),
    );
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 8, "14:18:77:00:01:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    wait_for("the workers to be busy", Duration::from_secs(20), || {
        (kea.bmc_status()["events"]["accepted"] == 8).then_some(())
    });
    // Every worker is now stuck in a request to a BMC that never answers.
    let t = Instant::now();
    let status = kea.stop();
    let took = t.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(6),
        "Kea took {took:?} to stop; in-flight requests must end within request-timeout-ms"
    );
    eprintln!(
        "kea-dhcp4 stopped in {} ms with 4 workers stuck on hung BMCs",
        took.as_millis()
    );
}

#[test]
fn bad_redfish_parameters_refuse_the_configuration() {
    let net = Net::new(23);
    let dir = TempDir::new("discovery-params");
    let missing = dir.path().join("no-such-file.json");
    let cases = [
        (
            json!({"redfish": {"credentials-file": missing}}),
            "parameter 'redfish.credentials-file' cannot be used: credentials file",
        ),
        (
            json!({"redfish": {"port": 443}}),
            "parameter 'redfish.credentials-file' is required",
        ),
        (
            json!({"redfish": {"credentials-file": "/etc/hostname", "tls-pin-file": "/nonexistent-dir/pins.json"}}),
            "parameter 'redfish.credentials-file' cannot be used",
        ),
    ];
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, r#"[{"username": "root", "password": "calvin"}]"#).unwrap();
    let more = [(
        json!({"redfish": {"credentials-file": creds, "tls-pin-file": "/nonexistent-dir/pins.json"}}),
        "parameter 'redfish.tls-pin-file' must be in an existing directory",
    )];
    for (parameters, expected) in cases.iter().chain(more.iter()) {
        let out = check_config(
            dir.path(),
            &config(net, dir.path(), &[hook(parameters.clone())], "INFO"),
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {parameters}:\n{text}");
        assert!(
            text.contains(expected),
            "{parameters}: want {expected:?} in:\n{text}"
        );
        assert!(
            !text.contains("calvin"),
            "a password in Kea's output:\n{text}"
        );
    }
}

#[test]
fn bmc_leases_end_up_registered_in_netbox() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(24);
    let dir = TempDir::new("discovery-netbox");
    let emu = bmcs_on_pool(60);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let inventory = dir.path().join("inventory");
    std::fs::create_dir(&inventory).unwrap();
    let params = json!({
        "workers": 8,
        "redfish": redfish_params(dir.path(), &emu),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true},
        "ansible-inventory-dir": inventory,
        "metrics-listen": format!("{}:19024", net.server()),
        // A registration this machine's NetBox answers too slowly (8 at
        // once on 2 cores) fails netbox-unavailable and is retried; soon.
        "retry-backoff-s": 1,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let n = 20;
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n, "14:18:77:00:02:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let status = settled(&kea, n as u64);
    let leased = leases(&kea);
    let index = |ip: &str| u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
    let good: Vec<(&String, &String)> =
        leased.iter().filter(|(ip, _)| index(ip) % 7 != 3).collect();
    // Every good BMC ends registered, a NetBox timeout's retry included.
    let start = std::time::Instant::now();
    let mut status = status;
    while status["events"]["processed"].as_u64() < Some(good.len() as u64)
        && status["failures"]["netbox-unavailable"].as_u64().is_some()
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
        status = kea.bmc_status();
    }
    assert!(
        status["events"]["processed"].as_u64() >= Some(good.len() as u64),
        "{status}\n{}",
        kea.log_tail(40)
    );

    // Every discovered BMC is one device in site us3 (the subnet's
    // user-context), with its lease's MAC and address.
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    assert_eq!(devices.len(), good.len(), "{}", kea.log_tail(40));
    for (ip, mac) in &good {
        let ips = client
            .list(&format!("/api/ipam/ip-addresses/?address={ip}"))
            .unwrap();
        assert_eq!(ips.len(), 1, "{ip}");
        assert_eq!(ips[0]["address"], format!("{ip}/16"));
        let dev_id = ips[0]["assigned_object"]["device"]["id"].as_u64().unwrap();
        let dev = client.get(&format!("/api/dcim/devices/{dev_id}/")).unwrap();
        assert_eq!(dev["site"]["slug"], "us3", "{ip}");
        assert_eq!(dev["oob_ip"]["address"], format!("{ip}/16"), "{ip}");
        let macs = client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={mac}"))
            .unwrap();
        assert_eq!(macs.len(), 1, "{mac}");
    }
    for l in kea
        .log()
        .lines()
        .filter(|l| l.contains("as NetBox device"))
        .take(2)
    {
        eprintln!("{l}");
    }

    // The Ansible inventory: every registered BMC once, in files that
    // yamllint passes and ansible-inventory reads; bmc-inventory says the same.
    let hosts = wait_for("the inventory written", Duration::from_secs(10), || {
        let inv = ansible_inventory(&inventory);
        let hosts = inv["bmc_targets"]["hosts"].as_array().cloned()?;
        (hosts.len() == good.len()).then_some(inv)
    });
    for (ip, _) in &good {
        assert!(
            hosts["_meta"]["hostvars"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v["ansible_host"] == **ip),
            "{ip} missing: {hosts}"
        );
    }
    let a = kea.command("bmc-inventory", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(
        a["arguments"]["bmc_targets"]["hosts"]
            .as_array()
            .map(Vec::len),
        Some(good.len()),
        "{a}"
    );
    let a = kea.command("bmc-inventory", Some(json!({"site": "fra1"})));
    assert_eq!(a["result"], 3, "{a}");
    let a = kea.command("bmc-inventory", Some(json!({"site": 1})));
    assert_eq!(a["result"], 1, "{a}");

    // Prometheus sees the same: a page promtool accepts, carrying every
    // metric the packaged dashboard and alert rules use.
    let url = format!("http://{}:19024/metrics", net.server());
    let page = wait_for(
        "registered BMCs on the metrics page",
        Duration::from_secs(10),
        || {
            let page = scrape(&url)?;
            (sample(&page, "bmc_discovery_bmcs{state=\"registered\"}") == Some(good.len() as f64))
                .then_some(page)
        },
    );
    promtool_accepts(&page);
    assert_eq!(sample(&page, "bmc_discovery_netbox_reachable"), Some(1.0));
    assert_eq!(
        sample(&page, "bmc_discovery_netbox_seconds_count"),
        sample(&page, "bmc_discovery_attempts_succeeded_total"),
        "one NetBox registration per successful attempt"
    );
    assert!(
        sample(
            &page,
            "bmc_discovery_attempt_failures_total{class=\"auth\"}"
        ) >= Some(1.0)
    );
    monitoring_uses_only_served_metrics(&page);
}

/// The metrics page at `url`, or None while it is not there.
fn scrape(url: &str) -> Option<String> {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()
}

/// The value of the sample `name` (with its labels, as written) on `page`.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` (Debian's prometheus package) passes the page:
/// the format parses and the names follow Prometheus's conventions.
fn promtool_accepts(page: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool (tests/setup.sh installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `bmc_discovery_*` name the Grafana dashboard and the alert rules
/// use is on the page (a histogram's `_bucket` by its samples).
fn monitoring_uses_only_served_metrics(page: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring");
    let mut used = std::collections::BTreeSet::new();
    for file in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for (i, _) in text.match_indices("bmc_discovery_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    assert!(used.len() > 10, "{used:?}");
    for name in &used {
        assert!(
            page.lines().any(|l| !l.starts_with('#')
                && (l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))),
            "{name} is used by packaging/monitoring but not served:\n{page}"
        );
    }
}

#[test]
fn metrics_page_is_served_from_load_to_unload_and_survives_reload() {
    let net = Net::new(30);
    let dir = TempDir::new("discovery-metrics");
    let n = 5u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let listen = format!("{}:19030", net.server());
    let params = json!({
        "workers": 2,
        "redfish": redfish_params(dir.path(), &emu),
        "metrics-listen": listen,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let url = format!("http://{listen}/metrics");
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:0a:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    all_in_state(&kea, "discovered", n as u64, Duration::from_secs(60));
    // The pool gauges follow new leases within seconds.
    let page = wait_for(
        "the metrics page with 5 BMCs",
        Duration::from_secs(15),
        || {
            let page = scrape(&url)?;
            let pool = "bmc_discovery_pool_assigned_addresses{subnet_id=\"1\",subnet=\"127.1.0.0/16\",site=\"us3\"}";
            (sample(&page, "bmc_discovery_bmcs{state=\"discovered\"}") == Some(n as f64)
                && sample(&page, pool) == Some(n as f64))
            .then_some(page)
        },
    );
    promtool_accepts(&page);
    assert_eq!(
        sample(&page, "bmc_discovery_lease_to_done_seconds_count"),
        Some(n as f64)
    );
    assert_eq!(
        sample(&page, "bmc_discovery_leases_accepted_total"),
        Some(n as f64)
    );
    assert_eq!(
        sample(
            &page,
            "bmc_discovery_pool_level{subnet_id=\"1\",subnet=\"127.1.0.0/16\",site=\"us3\"}"
        ),
        Some(0.0)
    );
    assert!(page.contains("bmc_discovery_info{version=\""), "{page}");

    let metrics_threads = |kea: &Kea| {
        std::fs::read_dir(format!("/proc/{}/task", kea.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == "bmc-metrics")
            .count()
    };
    assert_eq!(metrics_threads(&kea), 1);
    // A reload is unload + load: the old thread is joined and the port
    // freed before the new instance binds it; counters start again.
    let a = kea.command("config-reload", None);
    assert_eq!(a["result"], 0, "{a}\n{}", kea.log_tail(20));
    let page = wait_for(
        "the metrics page after the reload",
        Duration::from_secs(10),
        || {
            let page = scrape(&url)?;
            (sample(&page, "bmc_discovery_leases_accepted_total") == Some(0.0)).then_some(page)
        },
    );
    assert_eq!(
        sample(&page, "bmc_discovery_bmcs{state=\"discovered\"}"),
        Some(n as f64)
    );
    assert_eq!(metrics_threads(&kea), 1);
    assert!(
        scrape(&format!("http://{listen}/other")).is_none(),
        "404 is an error to ureq"
    );
    let status = kea.stop();
    assert!(status.success(), "{status:?}");
    assert!(scrape(&url).is_none(), "the port closes with Kea");
}

/// Runs yamllint and `ansible-inventory --list` (from the virtualenv
/// tests/setup.sh makes) on an inventory directory; the parsed list.
fn ansible_inventory(dir: &Path) -> Value {
    let venv = std::env::var("BMC_TEST_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/kea-hook-bmc-discovery/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let bin = Path::new(&venv).join("bin");
    let lint = std::process::Command::new(bin.join("yamllint"))
        .args([
            "-s",
            "-d",
            "{extends: default, rules: {line-length: {max: 160}}}",
        ])
        .arg(dir)
        .output()
        .expect("run yamllint (tests/setup.sh installs it)");
    assert!(
        lint.status.success(),
        "yamllint: {}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let list = std::process::Command::new(bin.join("ansible-inventory"))
        .arg("-i")
        .arg(dir)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_LOCAL_TEMP", dir.join(".ansible-tmp"))
        .output()
        .expect("run ansible-inventory (tests/setup.sh installs it)");
    assert!(
        list.status.success(),
        "ansible-inventory: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    serde_json::from_slice(&list.stdout).unwrap()
}

/// `bmc-list` filtered by state: the MACs in it.
fn in_state(kea: &Kea, state: &str) -> Vec<String> {
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

#[test]
fn failures_are_retried_then_dead_and_the_state_survives_a_restart() {
    let net = Net::new(25);
    let dir = TempDir::new("discovery-state");
    let emu = bmcs_on_pool(8);
    let n = 8u32;
    // Every BMC answers garbage at first: each attempt fails.
    for i in 0..n {
        emu.set_faults(
            pool_addr(i),
            Faults {
                malformed: true,
                ..Faults::default()
            },
        );
    }
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu),
        "retry-attempts": 3,
        "retry-backoff-s": 1,
        "retry-backoff-max-s": 2,
    });
    let cfg = config(net, dir.path(), &[hook(params)], "INFO");
    let kea = Kea::start(&dir, &cfg);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:03:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let leased = leases(&kea);
    // Every lease is tried 3 times (the retry thread queues the due ones),
    // then dead (the BMC with the wrong password too: its login guard
    // holds back further logins, and those attempts fail as well).
    let dead = wait_for("every BMC dead", Duration::from_secs(60), || {
        let dead = in_state(&kea, "dead");
        (dead.len() == leased.len()).then_some(dead)
    });
    let (ip, mac) = leased
        .iter()
        .find(|(ip, _)| {
            let i = u32::from(ip.parse::<Ipv4Addr>().unwrap()) - u32::from(pool_addr(0));
            i != 0 && i != 3
        })
        .unwrap();
    assert!(dead.contains(mac));
    let b = kea.command("bmc-get", Some(json!({ "ip": ip })));
    assert_eq!(b["result"], 0, "{b}");
    let b = &b["arguments"];
    assert_eq!(b["state"], "dead", "{b}");
    assert_eq!(b["attempts"], 3, "{b}");
    assert_eq!(b["mac"], *mac);
    assert!(
        b["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{b}"
    );
    let requests = emu.stats(ip.parse().unwrap()).requests;
    let log = kea.log();
    assert!(
        log.contains(&format!("{mac} failed")) && log.contains("dead after 3 attempts"),
        "{}",
        kea.log_tail(20)
    );
    let status = kea.bmc_status();
    assert_eq!(status["bmcs"]["dead"], leased.len(), "{status}");

    // The fault is fixed; bmc-retry brings one back at once.
    emu.set_faults(pool_addr(0), Faults::default());
    let first_ip = pool_addr(0).to_string();
    let a = kea.command("bmc-retry", Some(json!({ "ip": first_ip })));
    assert_eq!(a["result"], 0, "{a}");
    wait_for(
        "the retried BMC discovered",
        Duration::from_secs(30),
        || {
            let b = kea.command("bmc-get", Some(json!({ "ip": first_ip })));
            (b["arguments"]["state"] == "discovered").then_some(())
        },
    );
    // The others stay dead: no more requests reach them on their own.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(emu.stats(ip.parse().unwrap()).requests, requests);

    // Bad arguments get an answer that says what is wrong.
    for (command, arguments, expected) in [
        (
            "bmc-list",
            json!({"state": "lost"}),
            "'state' must be one of queued, discovering",
        ),
        ("bmc-list", json!({"limit": 0}), "'limit' must be 1..=10000"),
        (
            "bmc-list",
            json!({"colour": "red"}),
            "unknown argument 'colour'",
        ),
        ("bmc-get", json!({}), "needs 'mac' or 'ip'"),
        ("bmc-get", json!({"mac": "14:18:77"}), "'mac' must be like"),
        (
            "bmc-get",
            json!({"ip": "10.0.0.300"}),
            "'ip' must be an IPv4 address",
        ),
        (
            "bmc-retry",
            json!({"ip": first_ip}),
            "is discovered, not failed or dead",
        ),
        ("bmc-discover", json!("x"), "arguments must be a map"),
    ] {
        let a = kea.command(command, Some(arguments.clone()));
        assert_eq!(a["result"], 1, "{command} {arguments}: {a}");
        assert!(
            a["text"].as_str().unwrap_or("").contains(expected),
            "{command} {arguments}: {a}"
        );
    }
    let a = kea.command("bmc-get", Some(json!({"mac": "02:00:00:00:00:99"})));
    assert_eq!(a["result"], 3, "{a}");

    // Restarted, Kea's hook still knows every BMC and its state; renewals
    // of the discovered one and of the dead ones are not tried again, and
    // bmc-discover forces one.
    drop(kea);
    let kea = Kea::start(&dir, &cfg);
    assert_eq!(in_state(&kea, "dead").len(), leased.len() - 1);
    assert_eq!(in_state(&kea, "discovered").len(), 1);
    let before = emu.stats(pool_addr(0)).requests;
    let again = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:03:00");
    assert!(again.success, "perfdhcp failed:\n{}", again.output);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        emu.stats(pool_addr(0)).requests,
        before,
        "renewal rediscovered"
    );
    assert_eq!(
        emu.stats(ip.parse().unwrap()).requests,
        requests,
        "dead BMC tried"
    );
    let a = kea.command("bmc-discover", Some(json!({ "ip": first_ip })));
    assert_eq!(a["result"], 0, "{a}");
    wait_for("the forced discovery", Duration::from_secs(30), || {
        (emu.stats(pool_addr(0)).requests > before).then_some(())
    });
    assert!(kea.child_alive());
}

/// An emulated BMC with the right password on each of the first `n` pool
/// addresses, every model in turn, each answering after `latency`.
fn good_bmcs_on_pool(n: u32, latency: Duration) -> Emulator {
    fleet_on_pool(n, latency, |_| PASS)
}

/// `bmc-status`'s count of BMCs in `state` (0 before the first count).
fn count(status: &Value, state: &str) -> u64 {
    status["bmcs"][state].as_u64().unwrap_or(0)
}

/// Waits until `n` BMCs are in `state`; returns `bmc-status`.
fn all_in_state(kea: &Kea, state: &str, n: u64, limit: Duration) -> Value {
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
fn discoveries_per_mac(log: &str) -> BTreeMap<String, usize> {
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

#[test]
fn a_full_queue_loses_nothing_reconciliation_recovers_every_bmc() {
    let net = Net::new(26);
    let dir = TempDir::new("discovery-queue-full");
    let n = 500u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    // Queue of 8 and no timed reconciliation: what the burst drops comes
    // back only through the reconciliation the drops trigger.
    let params = json!({
        "workers": 4,
        "queue-capacity": 8,
        "reconcile-interval-s": 0,
        "redfish": redfish_params(dir.path(), &emu),
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:05:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    assert_eq!(leases(&kea).len(), n as usize);

    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(180));
    let events = &status["events"];
    let drops = events["dropped-queue-full"].as_u64().unwrap_or(0);
    eprintln!("queue drops during the burst: {drops}; {events}");
    assert!(
        drops > 0,
        "the burst should overflow a queue of 8: {status}"
    );
    assert!(events["reconciliations"].as_u64() >= Some(2), "{status}");
    assert_eq!(
        count(&status, "failed") + count(&status, "dead"),
        0,
        "{status}"
    );

    // Every leased MAC discovered exactly once: none lost, none twice.
    let log = kea.log();
    let per_mac = discoveries_per_mac(&log);
    let leased = leases(&kea);
    for mac in leased.values() {
        assert_eq!(per_mac.get(mac), Some(&1), "{mac}");
    }
    assert!(log.contains("reconciliation:"), "{}", kea.log_tail(20));

    // The statistics Kea publishes agree (the tick writes them every second).
    let stats = wait_for("statistics published", Duration::from_secs(5), || {
        let a = kea.command("statistic-get-all", None);
        let a = &a["arguments"];
        (a["bmc-discovery.bmcs.discovered"][0][0] == n).then(|| a.clone())
    });
    assert_eq!(stats["bmc-discovery.queue-drops"][0][0], drops);
    assert_eq!(stats["bmc-discovery.lease-to-done-ms.count"][0][0], n);
    assert_eq!(stats["bmc-discovery.lease-to-done-ms.le-inf"][0][0], n);
    assert_eq!(stats["bmc-discovery.queue-capacity"][0][0], 8);

    // Asked again, reconciliation finds nothing to do.
    let a = kea.command("bmc-reconcile", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["arguments"]["leases"], n, "{a}");
    assert_eq!(a["arguments"]["up-to-date"], n, "{a}");
    assert_eq!(a["arguments"]["queued"], 0, "{a}");
    let a = kea.command("bmc-reconcile", Some(json!({"subnet": 1})));
    assert_eq!(a["result"], 1, "{a}");
    assert!(kea.child_alive());
}

#[test]
fn kea_killed_mid_burst_discovers_every_bmc_after_restart() {
    let net = Net::new(27);
    let dir = TempDir::new("discovery-sigkill");
    let n = 200u32;
    // ~15 requests per discovery at 20 ms each: the burst takes a while.
    let emu = good_bmcs_on_pool(n, Duration::from_millis(20));
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu),
    });
    let cfg = config(net, dir.path(), &[hook(params)], "INFO");
    let mut kea = Kea::start(&dir, &cfg);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:06:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    // Half-way: SIGKILL, no unload, queued work lost with the process.
    let before = all_in_state(&kea, "discovered", n as u64 / 4, Duration::from_secs(120));
    kea.child.kill().unwrap();
    kea.child.wait().unwrap();
    let first_log_len = kea.log().len();
    let done_before = count(&before, "discovered");
    assert!(done_before < n as u64, "killed too late: {before}");
    drop(kea);

    let kea = Kea::start(&dir, &cfg);
    let status = all_in_state(&kea, "discovered", n as u64, Duration::from_secs(180));
    assert_eq!(
        count(&status, "failed") + count(&status, "dead"),
        0,
        "{status}"
    );
    // Kea appends to its log: both runs are in it.
    let log = kea.log();
    assert!(
        log[first_log_len..].contains("reconciliation:"),
        "{}",
        kea.log_tail(20)
    );
    // Only what was in a worker's hands at the kill is done twice: the
    // kill came between discovery and its record.
    let per_mac = discoveries_per_mac(&log);
    let leased = leases(&kea);
    assert_eq!(leased.len(), n as usize);
    let twice: Vec<_> = leased
        .values()
        .filter(|m| per_mac.get(*m).copied().unwrap_or(0) != 1)
        .collect();
    for mac in leased.values() {
        assert!(per_mac.contains_key(mac), "{mac} never discovered");
    }
    assert!(
        twice.len() <= 4,
        "more than the 4 workers' BMCs twice: {twice:?}"
    );
    eprintln!(
        "killed with {done_before}/{n} discovered; after restart all {n}, {} discovered twice",
        twice.len()
    );
}

/// A kea-ctrl-agent in front of `kea`'s control socket, killed on drop.
struct CtrlAgent {
    child: std::process::Child,
    url: String,
}

impl CtrlAgent {
    fn start(kea: &Kea, net: Net, port: u16) -> CtrlAgent {
        let file = kea.dir.join("kea-ctrl-agent.conf");
        let config = json!({"Control-agent": {
            "http-host": net.server(),
            "http-port": port,
            "control-sockets": {"dhcp4": {
                "socket-type": "unix",
                "socket-name": kea.dir.join("kea.sock").to_str().unwrap(),
            }},
            "loggers": [{"name": "kea-ctrl-agent", "severity": "WARN",
                         "output_options": [{"output": kea.dir.join("ctrl-agent.log").to_str().unwrap()}]}],
        }});
        std::fs::write(&file, config.to_string()).unwrap();
        let child = std::process::Command::new("kea-ctrl-agent")
            .arg("-c")
            .arg(&file)
            // Kea >= 2.6.3 takes the dhcp4 socket only from KEA_CONTROL_SOCKET_DIR.
            .envs(path_env(&kea.dir))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kea-ctrl-agent (install Debian's kea-ctrl-agent)");
        let agent = CtrlAgent {
            child,
            url: format!("http://{}:{port}/", net.server()),
        };
        wait_for("kea-ctrl-agent", Duration::from_secs(20), || {
            agent.try_command("version-get", None).ok()
        });
        agent
    }

    fn try_command(&self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({"command": command, "service": ["dhcp4"]});
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let body = ureq::post(&self.url)
            .timeout(Duration::from_secs(30))
            .set("Content-Type", "application/json")
            .send_string(&request.to_string())
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        // One answer per service asked.
        Ok(answer[0].clone())
    }
}

impl Drop for CtrlAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_command_answers_the_same_through_kea_ctrl_agent() {
    let net = Net::new(28);
    let dir = TempDir::new("discovery-ctrl-agent");
    let n = 6u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let inventory = dir.path().join("inventory");
    std::fs::create_dir(&inventory).unwrap();
    let params = json!({
        "workers": 2,
        "redfish": redfish_params(dir.path(), &emu),
        "ansible-inventory-dir": inventory,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:08:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    all_in_state(&kea, "discovered", n as u64, Duration::from_secs(60));
    let agent = CtrlAgent::start(&kea, net, 18028);
    let ip = pool_addr(0).to_string();
    let cases: Vec<(&str, Option<Value>, i64, &str)> = vec![
        ("bmc-status", None, 0, "workers"),
        ("bmc-status", Some(json!({"x": 1})), 1, "takes no arguments"),
        ("bmc-list", Some(json!({"state": "discovered"})), 0, ""),
        (
            "bmc-list",
            Some(json!({"state": "lost"})),
            1,
            "'state' must be one of",
        ),
        ("bmc-get", Some(json!({"ip": ip})), 0, "discovered"),
        (
            "bmc-get",
            Some(json!({"mac": "zz"})),
            1,
            "'mac' must be like",
        ),
        (
            "bmc-get",
            Some(json!({"mac": "02:00:00:00:00:99"})),
            3,
            "no BMC",
        ),
        (
            "bmc-retry",
            Some(json!({"ip": ip})),
            1,
            "not failed or dead",
        ),
        ("bmc-retry", None, 1, "needs 'mac' or 'ip'"),
        ("bmc-discover", Some(json!({"ip": ip})), 0, "queued"),
        (
            "bmc-discover",
            Some(json!({"ip": "10.0.0.300"})),
            1,
            "'ip' must be an IPv4",
        ),
        ("bmc-reconcile", None, 0, "active leases"),
        (
            "bmc-reconcile",
            Some(json!({"subnet": 1})),
            1,
            "takes no arguments",
        ),
        ("bmc-inventory", None, 0, "BMCs in"),
        (
            "bmc-inventory",
            Some(json!({"site": 3})),
            1,
            "'site' must be a string",
        ),
        ("bmc-pool-report", None, 0, "fullest: subnet 1"),
        (
            "bmc-pool-report",
            Some(json!({"subnet-id": 0})),
            1,
            "'subnet-id' must be a subnet id",
        ),
    ];
    for (command, arguments, result, text) in cases {
        let direct = kea.command(command, arguments.clone());
        // A second bmc-discover while the first is in a worker is refused
        // (in flight): let the first finish.
        wait_for("an idle queue", Duration::from_secs(30), || {
            let s = kea.bmc_status();
            (s["queue"]["in-flight"] == 0).then_some(())
        });
        let http = agent
            .try_command(command, arguments.clone())
            .unwrap_or_else(|e| panic!("{command} through kea-ctrl-agent: {e}"));
        for (via, a) in [("socket", &direct), ("kea-ctrl-agent", &http)] {
            assert_eq!(
                a["result"], result,
                "{command} {arguments:?} via {via}: {a}"
            );
            assert!(
                a["text"].as_str().unwrap_or("").contains(text),
                "{command} {arguments:?} via {via}: {a}"
            );
        }
        if command != "bmc-status" && command != "bmc-discover" {
            assert_eq!(direct["text"], http["text"], "{command} {arguments:?}");
        }
    }
    // Kea's own statistics carry the hook's numbers through the agent too.
    let stats = agent
        .try_command(
            "statistic-get",
            Some(json!({"name": "bmc-discovery.bmcs.discovered"})),
        )
        .unwrap();
    assert_eq!(stats["result"], 0, "{stats}");
}

/// Runs the bmc-pool-report CLI; its exit code and stdout.
fn pool_report_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bmc-pool-report"))
        .args(args)
        .output()
        .expect("run bmc-pool-report");
    assert!(
        out.stderr.is_empty() || out.status.code() != Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pool_report_measures_kea_pools_and_recommends() {
    let net = Net::new(29);
    let dir = TempDir::new("discovery-pool-report");
    let bmcs = 17u32;
    let emu = good_bmcs_on_pool(bmcs, Duration::ZERO);
    let params = json!({
        "workers": 2,
        "mac-ouis": ["14:18:77"],
        "redfish": redfish_params(dir.path(), &emu),
    });
    // A 20-address pool with 10-minute leases in the BMC subnet.
    let mut conf = config(net, dir.path(), &[hook(params)], "INFO");
    let bmc_subnet = &mut conf["Dhcp4"]["subnet4"][0];
    bmc_subnet["pools"] = json!([{"pool": "127.1.0.10 - 127.1.0.29"}]);
    bmc_subnet["valid-lifetime"] = json!(600);
    let kea = Kea::start(&dir, &conf);
    // 17 BMCs, then one other client in the BMC subnet and two elsewhere.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), bmcs as usize, "14:18:77:00:09:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    all_in_state(&kea, "discovered", bmcs as u64, Duration::from_secs(60));
    for (relay, clients, mac) in [
        (net.relay_bmc(), 1, "02:00:00:00:09:00"),
        (net.relay_other(), 2, "02:00:00:00:09:10"),
    ] {
        let run = perfdhcp::avalanche(net, &relay, clients, mac);
        assert!(run.success, "perfdhcp failed:\n{}", run.output);
    }
    assert_eq!(leases(&kea).len(), 20);

    let a = kea.command("bmc-pool-report", None);
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(
        a["text"],
        "1 subnet, fullest: subnet 1 (127.1.0.0/16) at 90.0 %; alerts: 1 high; 2 recommendations"
    );
    let report = &a["arguments"];
    assert_eq!(
        report["levels"],
        json!({"warning": 80, "high": 90, "critical": 95})
    );
    let s = &report["subnets"][0];
    assert_eq!(report["subnets"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(s["subnet-id"], 1);
    assert_eq!(s["site"], "us3");
    assert_eq!(s["total-addresses"], 20);
    assert_eq!(s["assigned-addresses"], 18);
    assert_eq!(s["utilisation-percent"], 90.0);
    assert_eq!(s["level"], "high");
    assert_eq!(s["bmc-leases"], bmcs);
    assert_eq!(s["other-leases"], 1);
    assert_eq!(s["bmcs-seen"], bmcs);
    assert_eq!(s["lease-lifetime-s"], 600);
    assert_eq!(s["pools"][0]["pool"], "127.1.0.10-127.1.0.29");
    let recs: Vec<&str> = s["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        recs[0].contains("grow its pools by at least 3 addresses (to 23)"),
        "{recs:?}"
    );
    assert!(
        recs[1].contains("BMC leases last 600 s") && recs[1].contains("86400"),
        "{recs:?}"
    );
    // Kea's own per-subnet statistics count the same.
    let kea_stat = |name: &str| {
        kea.command("statistic-get", Some(json!({"name": name})))["arguments"][name][0][0].clone()
    };
    assert_eq!(kea_stat("subnet[1].total-addresses"), 20);
    assert_eq!(kea_stat("subnet[1].assigned-addresses"), 18);

    // Every subnet, or one; mistakes named.
    let a = kea.command("bmc-pool-report", Some(json!({"all": true})));
    let other = &a["arguments"]["subnets"][1];
    assert_eq!(other["subnet-id"], 2, "{a}");
    assert_eq!(other["assigned-addresses"], 2, "{a}");
    assert_eq!(other["bmc-leases"], 0, "{a}");
    assert_eq!(other["level"], "ok", "{a}");
    let a = kea.command("bmc-pool-report", Some(json!({"subnet-id": 2})));
    assert_eq!(a["arguments"]["subnets"][0]["subnet-id"], 2, "{a}");
    let a = kea.command("bmc-pool-report", Some(json!({"subnet-id": 9})));
    assert_eq!(
        a["text"],
        "bmc-pool-report: subnet 9 is not in Kea's configuration; its subnets: 1, 2"
    );
    let a = kea.command("bmc-pool-report", Some(json!({"all": "yes"})));
    assert_eq!(
        a["text"],
        "bmc-pool-report: 'all' must be true or false, got \"yes\""
    );

    // The CLI: the same report as text, JSON and CSV; --fail-at for cron.
    let socket = dir.path().join("kea.sock");
    let socket = socket.to_str().unwrap();
    let (code, text) = pool_report_cli(&["--socket", socket, "--all"]);
    eprintln!("{text}");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("subnet 1 127.1.0.0/16, site us3: 18/20 addresses leased (90.0 %) HIGH"),
        "{text}"
    );
    assert!(text.contains("recommendation: subnet 1"), "{text}");
    let (_, json_out) = pool_report_cli(&["--socket", socket, "--format", "json"]);
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(parsed["subnets"][0]["assigned-addresses"], 18);
    let (_, csv) = pool_report_cli(&["--socket", socket, "--format", "csv", "--all"]);
    eprintln!("{csv}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "header, pool and total of 2 subnets: {csv}");
    assert!(
        rows[1].starts_with("1,127.1.0.0/16,us3,127.1.0.10-127.1.0.29,20,18,90.0,high"),
        "{csv}"
    );
    assert_eq!(
        pool_report_cli(&["--socket", socket, "--fail-at", "high"]).0,
        1
    );
    assert_eq!(
        pool_report_cli(&["--socket", socket, "--fail-at", "critical"]).0,
        0
    );
    assert_eq!(pool_report_cli(&["--socket", "/nonexistent.sock"]).0, 2);
    assert_eq!(pool_report_cli(&["--format", "xml"]).0, 64);
    assert!(kea.child_alive());
}

#[test]
fn packaged_alert_rules_and_dashboard_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring");
    for args in [
        &["check", "rules", "prometheus-alerts.yml"][..],
        // Fires each alert on made-up series and checks its text.
        &["test", "rules", "prometheus-alerts.test.yml"][..],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool (tests/setup.sh installs Debian's prometheus package)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap())
            .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert!(
                t["expr"].as_str().unwrap().contains("bmc_discovery_"),
                "{t}"
            );
        }
    }
}

#[test]
fn netbox_down_for_a_minute_mid_burst_loses_nothing_and_duplicates_nothing() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(31);
    let dir = TempDir::new("discovery-netbox-down");
    let n = 20u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let upstream = {
        use std::net::ToSocketAddrs;
        let hostport = nb.url.trim_start_matches("http://").trim_end_matches('/');
        hostport.to_socket_addrs().unwrap().next().unwrap()
    };
    let proxy = Proxy::start(upstream);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 4,
        "redfish": redfish_params(dir.path(), &emu),
        "netbox": {"url": format!("http://127.0.0.1:{}", proxy.port),
                   "token-file": token_file, "create-missing": true},
        "retry-backoff-s": 5,
        "retry-backoff-max-s": 10,
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:0b:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);

    // NetBox goes away once a few servers are in, for a minute.
    all_in_state(&kea, "registered", 3, Duration::from_secs(120));
    proxy.set_down(true);
    let outage = Instant::now();
    let mut failed_seen = 0;
    let mut unreachable_seen = false;
    while outage.elapsed() < Duration::from_secs(60) {
        let s = kea.bmc_status();
        failed_seen = failed_seen.max(count(&s, "failed"));
        unreachable_seen |= s["netbox"]["reachable"] == "unreachable";
        assert_eq!(
            count(&s, "dead"),
            0,
            "an outage must not use up attempts: {s}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let during = kea.bmc_status();
    let registered_during = count(&during, "registered");
    assert!(unreachable_seen, "{during}");
    assert!(
        failed_seen > 0,
        "BMCs wait in failed during the outage: {during}"
    );
    for mac in in_state(&kea, "failed") {
        let b = kea.command("bmc-get", Some(json!({ "mac": mac })));
        assert_eq!(b["arguments"]["error-class"], "netbox-unavailable", "{b}");
    }
    proxy.set_down(false);
    let back = Instant::now();
    let status = all_in_state(&kea, "registered", n as u64, Duration::from_secs(300));
    let recovered = back.elapsed();
    assert_eq!(
        count(&status, "dead") + count(&status, "failed"),
        0,
        "{status}"
    );
    assert_eq!(status["netbox"]["reachable"], "reachable", "{status}");
    assert!(
        status["failures"]["netbox-unavailable"].as_u64() > Some(0),
        "{status}"
    );

    // One device per server: nothing lost, nothing twice.
    let client = dhcp_bmc_discovery::netbox::NetBox::connect(&nb.url, &nb.token).unwrap();
    let devices = client
        .list("/api/dcim/devices/?tag=bmc-discovery&limit=100")
        .unwrap();
    assert_eq!(devices.len(), n as usize, "{}", kea.log_tail(30));
    for mac in leases(&kea).values() {
        let macs = client
            .list(&format!("/api/dcim/mac-addresses/?mac_address={mac}"))
            .unwrap();
        assert_eq!(macs.len(), 1, "{mac}");
    }
    let l = &status["latency"]["lease-to-done"];
    eprintln!(
        "NetBox down 60 s with {registered_during}/{n} registered; all {n} registered {:.1} s after \
         it returned; lease-to-registered p50 {} ms, p99 {} ms, max {} ms; {} attempts failed on \
         the outage",
        recovered.as_secs_f64(),
        l["p50-ms"],
        l["p99-ms"],
        l["max-ms"],
        status["failures"]["netbox-unavailable"]
    );
}

#[test]
fn netbox_registrations_take_turns_oldest_lease_first() {
    let (_guard, nb) = netbox();
    reset();
    let net = Net::new(32);
    let dir = TempDir::new("discovery-netbox-turns");
    let n = 8u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let token_file = dir.path().join("netbox-token");
    std::fs::write(&token_file, format!("{}\n", nb.token)).unwrap();
    let params = json!({
        "workers": 8,
        "redfish": redfish_params(dir.path(), &emu),
        "netbox": {"url": nb.url, "token-file": token_file, "create-missing": true,
                   "parallel-registrations": 1},
    });
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), n as usize, "14:18:77:00:0c:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);

    // Eight workers discover at once; NetBox sees one registration at a
    // time, the others wait their turn.
    let start = Instant::now();
    let mut most_waiting = 0;
    let status = loop {
        let s = kea.bmc_status();
        let gate = &s["netbox"]["registrations"];
        assert_eq!(gate["limit"], 1, "{s}");
        assert!(gate["running"].as_u64() <= Some(1), "{s}");
        most_waiting = most_waiting.max(gate["waiting"].as_u64().unwrap_or(0));
        if count(&s, "registered") >= n as u64 {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{}\n{}",
            s["bmcs"],
            kea.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(most_waiting >= 2, "discovered BMCs waited: {most_waiting}");
    let requests = &status["netbox"]["requests"];
    assert!(
        requests["writes"].as_u64() >= Some(7 * n as u64) && requests["reads"].as_u64() > Some(0),
        "{status}"
    );

    // The first to reach NetBox went in alone; every other took its turn
    // by lease time.
    let list = kea.command("bmc-list", None);
    let mut by_lease: Vec<(i64, i64)> = list["arguments"]["bmcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["leased-at-ms"].as_i64().unwrap(),
                b["registered-at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_lease.len(), n as usize);
    by_lease.sort();
    let first_in = (0..by_lease.len()).min_by_key(|&i| by_lease[i].1).unwrap();
    by_lease.remove(first_in);
    let registered: Vec<i64> = by_lease.iter().map(|b| b.1).collect();
    assert!(
        registered.windows(2).all(|w| w[0] <= w[1]),
        "registered out of lease order: {by_lease:?}"
    );
    eprintln!(
        "{n} BMCs, one registration at a time: up to {most_waiting} waited; {} reads + {} writes; \
         lease-to-registered p50 {} ms, max {} ms",
        requests["reads"],
        requests["writes"],
        status["latency"]["lease-to-done"]["p50-ms"],
        status["latency"]["lease-to-done"]["max-ms"],
    );
}

#[test]
fn a_replaced_certificate_fails_until_bmc_retry_forgets_its_pin() {
    let net = Net::new(33);
    let dir = TempDir::new("discovery-tls-pin");
    let emu = good_bmcs_on_pool(2, Duration::ZERO);
    let pins = dir.path().join("tls-pins.json");
    let mut redfish = redfish_params(dir.path(), &emu);
    redfish["tls-mode"] = json!("pin");
    redfish["tls-pin-file"] = json!(pins);
    redfish.as_object_mut().unwrap().remove("tls-ca-file");
    let params = json!({"workers": 2, "redfish": redfish, "retry-attempts": 1});
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(params)], "INFO"));
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 2, "14:18:77:00:0d:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    all_in_state(&kea, "discovered", 2, Duration::from_secs(60));
    let ip = pool_addr(0).to_string();
    let mac = kea.command("bmc-get", Some(json!({ "ip": ip })))["arguments"]["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = |mac: &str| -> Option<String> {
        let text = std::fs::read_to_string(&pins).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v[mac].as_str().map(str::to_string)
    };
    let first_pin = pinned(&mac).expect("pinned at first discovery");

    // The BMC is replaced (new certificate): it no longer discovers.
    emu.rotate_cert(pool_addr(0));
    let a = kea.command("bmc-discover", Some(json!({ "ip": ip })));
    assert_eq!(a["result"], 0, "{a}");
    let dead = wait_for(
        "the BMC dead on its new certificate",
        Duration::from_secs(30),
        || {
            let b = kea.command("bmc-get", Some(json!({ "ip": ip })))["arguments"].clone();
            (b["state"] == "dead").then_some(b)
        },
    );
    assert_eq!(dead["error-class"], "tls", "{dead}");

    // A bad flag changes nothing; the right one forgets the pin and retries.
    let a = kea.command(
        "bmc-retry",
        Some(json!({"ip": ip, "forget-tls-pin": "yes"})),
    );
    assert_eq!(a["result"], 1, "{a}");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("'forget-tls-pin' must be true or false"),
        "{a}"
    );
    assert_eq!(pinned(&mac).as_deref(), Some(first_pin.as_str()));
    let a = kea.command("bmc-retry", Some(json!({"ip": ip, "forget-tls-pin": true})));
    assert_eq!(a["result"], 0, "{a}");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("TLS certificate forgotten"),
        "{a}"
    );
    wait_for("the BMC discovered again", Duration::from_secs(30), || {
        let b = kea.command("bmc-get", Some(json!({ "ip": ip })));
        (b["arguments"]["state"] == "discovered").then_some(())
    });
    let new_pin = pinned(&mac).expect("the new certificate pinned");
    assert_ne!(new_pin, first_pin);
    // The other BMC's pin was left alone.
    let other = kea.command("bmc-get", Some(json!({ "ip": pool_addr(1).to_string() })));
    assert!(pinned(other["arguments"]["mac"].as_str().unwrap()).is_some());
}
