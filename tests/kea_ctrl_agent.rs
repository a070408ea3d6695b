//! Every hook command answers the same on Kea's control socket and through
//! kea-ctrl-agent's HTTP API.
//!
//! Needs root (loopback addresses), kea-dhcp4, kea-ctrl-agent and perfdhcp:
//! see README.md.

use std::time::Duration;

use bmc_test_support::discovery::{
    all_in_state, good_bmcs_on_pool, pool_addr, redfish_params, PASS,
};
use bmc_test_support::kea::{config, hook, path_env, Kea, Net};
use bmc_test_support::{perfdhcp, wait_for, TempDir};
use serde_json::{json, Value};

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
        "redfish": redfish_params(dir.path(), &emu, PASS),
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
