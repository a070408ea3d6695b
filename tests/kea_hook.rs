//! The hook inside the real kea-dhcp4, driven by real perfdhcp traffic.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::kea::{check_config, config, Hook, Kea, Net};
use support::{hook_library, perfdhcp, wait_for, TempDir};

fn hook(parameters: Value) -> Hook {
    Hook::Library {
        path: hook_library(),
        parameters,
    }
}

#[test]
fn bmc_leases_reach_the_workers_and_others_are_filtered() {
    let net = Net::new(11);
    let dir = TempDir::new("select");
    let kea = Kea::start(
        &dir,
        &config(net, dir.path(), &[hook(json!({"workers": 4}))], "INFO"),
    );

    let bmcs = perfdhcp::avalanche(net, &net.relay_bmc(), 200, "14:18:77:00:00:00");
    assert!(
        bmcs.success,
        "perfdhcp (BMC subnet) failed:\n{}",
        bmcs.output
    );
    let others = perfdhcp::avalanche(net, &net.relay_other(), 50, "02:00:00:00:00:00");
    assert!(
        others.success,
        "perfdhcp (other subnet) failed:\n{}",
        others.output
    );

    let status = wait_for(
        "the workers to process 200 leases",
        Duration::from_secs(20),
        || {
            let s = kea.bmc_status();
            (s["events"]["processed"] == 200).then_some(s)
        },
    );
    let events = &status["events"];
    assert_eq!(events["seen"], 250, "DHCPDISCOVER must not count: {status}");
    assert_eq!(events["accepted"], 200, "{status}");
    assert_eq!(events["filtered-out"], 50, "{status}");
    assert_eq!(events["not-opted-in"], 50, "{status}");
    assert_eq!(events["dropped-queue-full"], 0, "{status}");
    assert_eq!(events["duplicate-in-flight"], 0, "{status}");
    assert_eq!(events["panics"], 0, "{status}");
    assert_eq!(status["callout-cost"]["count"], 250, "{status}");
    assert_eq!(status["subnets"]["opted-in"], json!([1]), "{status}");

    // Every client still got its lease.
    let leases = kea.leases_by_subnet();
    assert_eq!(leases.get(&1), Some(&200), "{leases:?}");
    assert_eq!(leases.get(&2), Some(&50), "{leases:?}");

    // The worker logged each BMC through Kea's logger.
    let log = kea.log();
    assert_eq!(
        log.matches("BMC_DISCOVERY_INFO BMC lease Select").count(),
        200
    );
    assert!(log.contains("mac 14:18:77:00:00:"), "{}", kea.log_tail(5));
}

#[test]
fn list_commands_shows_bmc_status_and_bad_arguments_are_refused() {
    let net = Net::new(12);
    let dir = TempDir::new("commands");
    let kea = Kea::start(&dir, &config(net, dir.path(), &[hook(json!({}))], "INFO"));
    let list = kea.command("list-commands", None);
    let names: Vec<&str> = list["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"bmc-status"), "{list}");

    let status = kea.bmc_status();
    assert_eq!(status["workers"], 4);
    assert_eq!(status["queue"]["capacity"], 1024);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));

    let bad = kea.command("bmc-status", Some(json!({"verbose": true})));
    assert_eq!(bad["result"], 1, "{bad}");
    assert_eq!(
        bad["text"],
        "bmc-status takes no arguments, got {\"verbose\":true}"
    );
}

/// Each bad parameter makes `kea-dhcp4 -t` fail with a line naming it.
#[test]
fn bad_parameters_make_kea_refuse_the_configuration() {
    let net = Net::new(13); // -t checks that the interface has the address
    let dir = TempDir::new("badparams");
    let cases = [
        (
            json!({"wrkers": 4}),
            "parameter 'wrkers' is unknown; known parameters: workers",
        ),
        (
            json!({"workers": "four"}),
            "parameter 'workers' must be an integer 1..=256, got \"four\"",
        ),
        (
            json!({"workers": 0}),
            "parameter 'workers' must be 1..=256, got 0",
        ),
        (
            json!({"queue-capacity": 2_000_000}),
            "parameter 'queue-capacity' must be 1..=1048576, got 2000000",
        ),
        (
            json!({"hostname-pattern": "(idrac"}),
            "parameter 'hostname-pattern' is not a usable regular expression",
        ),
        (
            json!({"mac-ouis": ["14:18"]}),
            "parameter 'mac-ouis' entries must be MAC prefixes",
        ),
        (
            json!({"subnet-ids": null}),
            "parameter 'subnet-ids' needs a value, got null",
        ),
        (
            json!({"hostname-pattern": ""}),
            "parameter 'hostname-pattern' must not be empty",
        ),
    ];
    for (parameters, expected) in cases {
        let cfg = config(net, dir.path(), &[hook(parameters.clone())], "INFO");
        let out = check_config(dir.path(), &cfg);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "kea-dhcp4 -t accepted {parameters}:\n{text}"
        );
        let line = text
            .lines()
            .find(|l| l.contains("BMC_DISCOVERY_ERROR"))
            .unwrap_or_else(|| panic!("no hook error line for {parameters}:\n{text}"));
        assert!(
            line.contains(&format!("bmc-discovery: {expected}")),
            "{parameters}: {line}"
        );
    }

    // The same configuration is accepted once corrected.
    let good = check_config(
        dir.path(),
        &config(net, dir.path(), &[hook(json!({"workers": 2}))], "INFO"),
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
}

/// A bad parameter in the configuration Kea starts with stops Kea itself.
#[test]
fn kea_does_not_start_with_bad_parameters() {
    let net = Net::new(14);
    let dir = TempDir::new("badstart");
    let cfg = config(net, dir.path(), &[hook(json!({"workers": 999}))], "INFO");
    let file = dir.path().join("kea-dhcp4.conf");
    std::fs::write(&file, cfg.to_string()).unwrap();
    let out = std::process::Command::new("timeout")
        .args(["20", "kea-dhcp4", "-c"])
        .arg(&file)
        .env("KEA_PIDFILE_DIR", dir.path())
        .env("KEA_LOCKFILE_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "Kea must exit with an error, not run or time out"
    );
    let log = std::fs::read_to_string(dir.path().join("kea.log")).unwrap_or_default();
    assert!(
        log.contains("bmc-discovery: parameter 'workers' must be 1..=256, got 999"),
        "{log}"
    );
}

/// A reload with a bad parameter is refused and the running hook carries on.
#[test]
fn config_reload_with_bad_parameters_keeps_the_running_hook() {
    let net = Net::new(16);
    let dir = TempDir::new("badreload");
    let kea = Kea::start(
        &dir,
        &config(net, dir.path(), &[hook(json!({"workers": 3}))], "INFO"),
    );
    let bad = config(net, dir.path(), &[hook(json!({"workers": 0}))], "INFO");
    std::fs::write(&kea.config_file, bad.to_string()).unwrap();
    let answer = kea.command("config-reload", None);
    assert_eq!(answer["result"], 1, "{answer}");
    assert!(
        kea.log()
            .contains("bmc-discovery: parameter 'workers' must be 1..=256, got 0"),
        "{}",
        kea.log_tail(10)
    );
    assert_eq!(
        kea.bmc_status()["workers"],
        3,
        "the old instance keeps running"
    );
}

/// 100 config-reloads while perfdhcp keeps going: Kea keeps serving, the
/// hook's threads are joined every time, nothing leaks.
#[test]
fn config_reload_under_load_leaks_nothing() {
    let net = Net::new(15);
    let dir = TempDir::new("reload");
    let kea = Kea::start(
        &dir,
        &config(net, dir.path(), &[hook(json!({"workers": 4}))], "WARN"),
    );
    let baseline_threads = kea.threads();
    let baseline_fds = kea.fds();

    // Background load for the whole loop: 200 exchanges/s over 2000 clients.
    let load = {
        let relay = net.relay_bmc();
        std::thread::spawn(move || {
            perfdhcp::run(
                net,
                &relay,
                &["-r", "200", "-R", "2000", "-p", "40"],
                Duration::from_secs(60),
            )
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = kea.rss_kib();
    for i in 0..100 {
        let answer = kea.command("config-reload", None);
        assert_eq!(
            answer["result"],
            0,
            "reload {i}: {answer}\n{}",
            kea.log_tail(20)
        );
        assert!(
            kea.child_alive(),
            "Kea died at reload {i}:\n{}",
            kea.log_tail(30)
        );
    }
    let status = kea.bmc_status();
    let rss_after = kea.rss_kib();
    let load = load.join().unwrap();

    // Kea kept answering throughout.
    let rate = load.rate().unwrap_or(0.0);
    assert!(
        rate > 50.0,
        "perfdhcp rate fell to {rate}/s during reloads:\n{}",
        load.output
    );
    assert!(status["events"]["seen"].as_u64().unwrap() > 0 || rate > 0.0);

    let threads = wait_for(
        "thread count back to baseline",
        Duration::from_secs(10),
        || {
            let t = kea.threads();
            (t == baseline_threads).then_some(t)
        },
    );
    assert_eq!(threads, baseline_threads);
    // Sockets of the reloads and of our own commands close asynchronously,
    // and the baseline may include one still open from start-up; a leak of
    // even one descriptor per reload would show as 100 more.
    let mut fds = 0;
    let settled = (0..250).any(|_| {
        fds = kea.fds();
        std::thread::sleep(Duration::from_millis(20));
        fds <= baseline_fds
    });
    assert!(
        settled,
        "file descriptors leaked across reloads: {baseline_fds} -> {fds}"
    );
    eprintln!(
        "config-reload x100 under load: threads {baseline_threads} -> {threads}, fds {baseline_fds} -> {fds}, \
         RSS {rss_before} KiB -> {rss_after} KiB, perfdhcp {rate}/s"
    );
    // Allocator noise aside, 100 reloads must not grow Kea by megabytes.
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew {rss_before} -> {rss_after} KiB"
    );
}

/// The documented example passes `kea-dhcp4 -t` (library path pointed at
/// this build, since the example names the release build).
#[test]
fn example_config_passes_kea_check() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kea-config/kea-dhcp4.conf"
    ))
    .unwrap();
    let release_lib = "\"target/release/libdhcp_bmc_discovery.so\"";
    assert!(
        example.contains(release_lib),
        "the example must load the release build"
    );
    let lib = format!("{:?}", hook_library().to_str().unwrap());
    let dir = TempDir::new("example");
    let file = dir.path().join("kea-dhcp4.conf");
    std::fs::write(&file, example.replace(release_lib, &lib)).unwrap();
    let out = std::process::Command::new("kea-dhcp4")
        .arg("-t")
        .arg(&file)
        // The example credentials file takes the password from here.
        .env("BMC_PASSWORD", "example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
