//! The pool report of a real kea-dhcp4's pools: the bmc-pool-report
//! command and the bmc-pool-report CLI measure the same and recommend.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::time::Duration;

use bmc_test_support::discovery::{all_in_state, good_bmcs_on_pool, leases, redfish_params, PASS};
use bmc_test_support::kea::{config, hook, Kea, Net};
use bmc_test_support::{perfdhcp, TempDir};
use serde_json::{json, Value};

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
        "redfish": redfish_params(dir.path(), &emu, PASS),
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
