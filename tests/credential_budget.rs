//! A credentials entry's failure budget across all BMCs, through the hook
//! inside a real kea-dhcp4: a fleet of devices with new MACs that all
//! refuse the login (what a device cycling its MAC to collect passwords
//! looks like) gets the entry exactly `credential-failure-budget` times in
//! all; then it is suspended (an ERROR, Kea's statistic, Prometheus,
//! bmc-status). The BMC it logged in to before keeps it; a new BMC arriving
//! during the suspension is not sent the password and waits, not counted
//! towards dead. A restart of Kea keeps the suspension and the per-BMC
//! guard; bmc-credential-lift ends it and the waiting BMC is discovered.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use std::net::Ipv4Addr;
use std::time::Duration;

use bmc_test_support::discovery::{leases, pool_addr, redfish_params};
use bmc_test_support::emulator::{Emulator, Faults};
use bmc_test_support::kea::{config, Hook, Kea, Net};
use bmc_test_support::prometheus::{promtool_accepts, sample, scrape};
use bmc_test_support::{hook_library, perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

const PASS: &str = "budget-Passw0rd";
const BUDGET: u64 = 5;
const ROGUES: u32 = 12;
const MODEL: &str = "dell-idrac9-r750";

fn bmc(kea: &Kea, ip: Ipv4Addr) -> Value {
    let a = kea.command("bmc-get", Some(json!({ "ip": ip.to_string() })));
    assert_eq!(a["result"], 0, "{ip}: {a}");
    a["arguments"].clone()
}

/// The BMC at `ip` once it is in `state`.
fn when_in_state(kea: &Kea, ip: Ipv4Addr, state: &str) -> Value {
    wait_for(&format!("{ip} {state}"), Duration::from_secs(60), || {
        let a = kea.command("bmc-get", Some(json!({ "ip": ip.to_string() })));
        (a["arguments"]["state"] == state).then(|| a["arguments"].clone())
    })
}

fn statistic(kea: &Kea, name: &str) -> Value {
    let name = format!("bmc-discovery.{name}");
    let a = kea.command("statistic-get", Some(json!({ "name": name })));
    a["arguments"][&name][0][0].clone()
}

fn root_entry(kea: &Kea) -> Value {
    let s = kea.bmc_status();
    let entries = s["credentials"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{s}");
    entries[0].clone()
}

#[test]
fn a_mac_cycling_fleet_spends_the_budget_and_the_entry_is_suspended_until_lifted() {
    let net = Net::new(43);
    let dir = TempDir::new("credential-budget");
    let emu = Emulator::start(0);
    // In lease order: the entry's own BMC, the rogue fleet, a new genuine
    // BMC, one more rogue after the restart.
    let own = pool_addr(0);
    let rogues: Vec<Ipv4Addr> = (1..=ROGUES).map(pool_addr).collect();
    let newcomer = pool_addr(ROGUES + 1);
    let late_rogue = pool_addr(ROGUES + 2);
    let refuses = Faults {
        unauthorized: true,
        ..Faults::default()
    };
    for (i, addr) in std::iter::once(own)
        .chain(rogues.iter().copied())
        .chain([newcomer, late_rogue])
        .enumerate()
    {
        emu.add(addr, MODEL, i as u32 + 1, "root", PASS);
    }
    for addr in rogues.iter().chain([&late_rogue]) {
        emu.set_faults(*addr, refuses.clone());
    }
    let mut redfish = redfish_params(dir.path(), &emu, PASS);
    redfish["credential-failure-budget"] = json!(BUDGET);
    let listen = format!("{}:19043", net.server());
    let params = json!({
        "workers": 4,
        "retry-backoff-s": 1,
        "retry-backoff-max-s": 2,
        "metrics-listen": listen,
        "redfish": redfish,
    });
    let hook = Hook::Library {
        path: hook_library(),
        parameters: params,
    };
    let cfg = config(net, dir.path(), &[hook], "INFO");
    let kea = Kea::start(&dir, &cfg);
    let url = format!("http://{listen}/metrics");

    // The entry's own BMC logs in with it before anything happens.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, "14:18:77:43:00:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    when_in_state(&kea, own, "discovered");
    assert_eq!(emu.stats(own).logins_ok, 1);

    // Twelve devices with new MACs, each refusing the login.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), ROGUES as usize, "14:18:77:43:01:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let leased = leases(&kea);
    for addr in &rogues {
        assert!(
            leased.contains_key(&addr.to_string()),
            "{addr} not leased: {leased:?}"
        );
    }
    let classes = wait_for("every rogue failed", Duration::from_secs(60), || {
        let classes: Vec<String> = rogues
            .iter()
            .map(|a| {
                bmc(&kea, *a)["error-class"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let suspended = classes
            .iter()
            .filter(|c| *c == "credential-suspended")
            .count();
        let refused = classes.iter().filter(|c| *c == "auth").count();
        (suspended + refused == rogues.len() && refused as u64 == BUDGET).then_some(classes)
    });
    let tried = |emu: &Emulator| -> u64 {
        rogues
            .iter()
            .chain([&late_rogue])
            .map(|a| emu.stats(*a).logins_failed)
            .sum()
    };
    assert_eq!(
        tried(&emu),
        BUDGET,
        "the entry is tried exactly budget times"
    );
    for (addr, class) in rogues.iter().zip(&classes) {
        let want = u64::from(class == "auth");
        assert_eq!(emu.stats(*addr).logins_failed, want, "{addr}: {class}");
        if class == "credential-suspended" {
            let b = bmc(&kea, *addr);
            assert_eq!(
                (b["state"].as_str(), b["attempts"].as_u64()),
                (Some("failed"), Some(0)),
                "{b}"
            );
        }
    }

    // The ERROR, bmc-status, Kea's statistic, Prometheus.
    let entry = root_entry(&kea);
    assert_eq!(entry["name"], "root", "{entry}");
    assert_eq!(entry["suspended"], true, "{entry}");
    assert_eq!(entry["failures"], BUDGET, "{entry}");
    let spent_by: Vec<&str> = entry["spent-by"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(spent_by.len() as u64, BUDGET, "{entry}");
    for mac in &spent_by {
        let ip = leased
            .iter()
            .find(|(_, m)| m == mac)
            .and_then(|(ip, _)| ip.parse::<Ipv4Addr>().ok());
        assert!(
            ip.is_some_and(|ip| rogues.contains(&ip)),
            "{mac} is not a rogue"
        );
    }
    let until = entry["suspended-until"].as_i64().unwrap();
    let log = kea.log();
    let error = log
        .lines()
        .find(|l| l.contains("BMC_DISCOVERY_CREDENTIAL_SUSPENDED"))
        .unwrap_or_else(|| panic!("no suspension logged:\n{}", kea.log_tail(30)));
    assert!(
        error.contains("ERROR") && error.contains("credentials entry root suspended for 1800 s"),
        "{error}"
    );
    assert!(!log.contains(PASS), "a password reached Kea's log");
    let page = wait_for(
        "the suspension on the metrics page",
        Duration::from_secs(10),
        || {
            let page = scrape(&url)?;
            (sample(
                &page,
                "bmc_discovery_credential_suspended{credential=\"root\"}",
            ) == Some(1.0))
            .then_some(page)
        },
    );
    assert_eq!(
        sample(&page, "bmc_discovery_credential_suspensions_total"),
        Some(1.0)
    );
    promtool_accepts(&page);
    wait_for("Kea's statistic", Duration::from_secs(5), || {
        (statistic(&kea, "credentials-suspended") == 1).then_some(())
    });

    // Its own BMC still logs in with it.
    let a = kea.command("bmc-discover", Some(json!({ "ip": own.to_string() })));
    assert_eq!(a["result"], 0, "{a}");
    wait_for(
        "the own BMC's second login",
        Duration::from_secs(30),
        || (emu.stats(own).logins_ok == 2).then_some(()),
    );
    when_in_state(&kea, own, "discovered");

    // A genuine BMC arriving now is not sent the password: it waits for
    // the end of the suspension, without using up an attempt.
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, "14:18:77:43:02:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let b = when_in_state(&kea, newcomer, "failed");
    assert_eq!(b["error-class"], "credential-suspended", "{b}");
    assert_eq!(b["attempts"], 0, "{b}");
    let next = b["next-attempt-at"].as_i64().unwrap();
    assert!(
        (until..=until + 2).contains(&next),
        "next attempt {next}, suspension until {until}"
    );
    assert!(
        b["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("bmc-credential-lift"),
        "{b}"
    );
    let st = emu.stats(newcomer);
    assert_eq!(
        st.logins_ok + st.logins_failed,
        0,
        "the password went to {newcomer}"
    );

    // A restart keeps the suspension: a rogue arriving afterwards gets nothing.
    drop(kea);
    let kea = Kea::start(&dir, &cfg);
    assert!(
        kea.log()
            .contains("BMC_DISCOVERY_CREDENTIAL_STILL_SUSPENDED"),
        "{}",
        kea.log_tail(20)
    );
    assert_eq!(root_entry(&kea)["suspended"], true);
    let run = perfdhcp::avalanche(net, &net.relay_bmc(), 1, "14:18:77:43:03:00");
    assert!(run.success, "perfdhcp failed:\n{}", run.output);
    let b = when_in_state(&kea, late_rogue, "failed");
    assert_eq!(b["error-class"], "credential-suspended", "{b}");
    assert_eq!(tried(&emu), BUDGET);

    // The operator finds the devices and unplugs them (they stop
    // answering), keeping one that refused the entry to check the per-BMC
    // guard; then lifts the suspension.
    let kept = rogues[classes.iter().position(|c| c == "auth").unwrap()];
    for addr in rogues.iter().chain([&late_rogue]).filter(|a| **a != kept) {
        emu.set_faults(
            *addr,
            Faults {
                server_errors: u32::MAX,
                ..refuses.clone()
            },
        );
    }
    for (arguments, text) in [
        (json!({}), "needs 'credential'"),
        (
            json!({"credential": "admin"}),
            "no credentials entry is named \"admin\"; entries: root",
        ),
        (json!({"credential": 1}), "'credential' must be a string"),
    ] {
        let a = kea.command("bmc-credential-lift", Some(arguments.clone()));
        assert_eq!(a["result"], 1, "{arguments}: {a}");
        assert!(
            a["text"].as_str().unwrap_or("").contains(text),
            "{arguments}: {a}"
        );
    }
    let a = kea.command("bmc-credential-lift", Some(json!({"credential": "root"})));
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["arguments"]["was-suspended"], true, "{a}");
    // The newcomer, the late rogue and the rogues held back.
    let waiting = 2 + classes
        .iter()
        .filter(|c| *c == "credential-suspended")
        .count();
    assert_eq!(a["arguments"]["bmcs-queued"], waiting, "{a}");
    let b = when_in_state(&kea, newcomer, "discovered");
    assert_eq!(emu.stats(newcomer).logins_ok, 1, "{b}");
    assert_eq!(root_entry(&kea)["suspended"], false);
    wait_for("Kea's statistic back to 0", Duration::from_secs(5), || {
        (statistic(&kea, "credentials-suspended") == 0).then_some(())
    });
    assert!(kea.log().contains("BMC_DISCOVERY_CREDENTIAL_LIFTED"));

    // The per-BMC guard survived the restart too: the kept rogue refused
    // the entry within the window, so it is not offered it again.
    wait_for(
        "the kept rogue between attempts",
        Duration::from_secs(30),
        || {
            let state = bmc(&kea, kept)["state"].clone();
            (state == "failed" || state == "dead").then_some(())
        },
    );
    let a = kea.command("bmc-retry", Some(json!({ "ip": kept.to_string() })));
    assert_eq!(a["result"], 0, "{a}");
    let b = wait_for("the kept rogue retried", Duration::from_secs(30), || {
        let b = bmc(&kea, kept);
        (b["state"] == "failed" && b["attempts"] == 1).then_some(b)
    });
    assert_eq!(b["error-class"], "auth", "{b}");
    assert!(
        b["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("it failed here"),
        "{b}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tried(&emu), BUDGET, "a rogue got the entry again");
    assert!(!kea.log().contains(PASS), "a password reached Kea's log");
    assert!(kea.child_alive());
    let code = kea.stop();
    assert!(code.success(), "kea-dhcp4 exited with {code}");
}
