//! perfdhcp runs against a test Kea.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kea::Net;

/// What a perfdhcp run reported.
#[derive(Debug)]
pub struct Report {
    pub output: String,
    pub success: bool,
}

impl Report {
    /// "Rate: N 4-way exchanges/second" of a rate run.
    pub fn rate(&self) -> Option<f64> {
        self.output.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("Rate: ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }
}

/// Runs perfdhcp with `args` from `relay` to the test server, killed after
/// `limit` (perfdhcp's avalanche retries until every client has a lease).
pub fn run(net: Net, relay: &str, args: &[&str], limit: Duration) -> Report {
    let mut command = Command::new("perfdhcp");
    command
        .args(["-4", "-l", relay])
        .args(args)
        .arg(net.server());
    run_command(command, limit)
}

/// Runs a perfdhcp `command` (perhaps wrapped, e.g. in `ip netns exec`),
/// killed after `limit`; what it printed and whether it succeeded.
pub fn run_command(mut command: Command, limit: Duration) -> Report {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run perfdhcp (install Debian's kea-admin)");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait perfdhcp") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("perfdhcp output");
    Report {
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        success: status.is_some_and(|s| s.success()),
    }
}

/// `clients` BMCs power on: each does exactly one DORA (avalanche scenario),
/// MACs counting up from `base_mac`.
pub fn avalanche(net: Net, relay: &str, clients: usize, base_mac: &str) -> Report {
    let r = clients.to_string();
    let b = format!("mac={base_mac}");
    run(
        net,
        relay,
        &["--scenario", "avalanche", "-R", &r, "-b", &b],
        Duration::from_secs(120),
    )
}
