//! The hook's Prometheus page inside the real kea-dhcp4: served from load
//! to unload, through a reload, with what promtool accepts; and the packaged
//! alert rules and dashboard are valid.
//!
//! Needs root (loopback addresses), kea-dhcp4, perfdhcp and promtool: see
//! README.md.

use std::path::Path;
use std::time::Duration;

use bmc_test_support::discovery::{all_in_state, good_bmcs_on_pool, redfish_params, PASS};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::prometheus::{promtool_accepts, sample, scrape};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

#[test]
fn metrics_page_is_served_from_load_to_unload_and_survives_reload() {
    let net = Net::new(30);
    let dir = TempDir::new("discovery-metrics");
    let n = 5u32;
    let emu = good_bmcs_on_pool(n, Duration::ZERO);
    let listen = format!("{}:19030", net.server());
    let params = json!({
        "workers": 2,
        "redfish": redfish_params(dir.path(), &emu, PASS),
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
