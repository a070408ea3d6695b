//! The hook's Prometheus page as tests read it: scraped, one sample's
//! value, promtool's verdict, and whether the packaged monitoring uses only
//! what the page serves.

use std::time::Duration;

/// The metrics page at `url`, or None while it is not there.
pub fn scrape(url: &str) -> Option<String> {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()
}

/// The value of the sample `name` (with its labels, as written) on `page`.
pub fn sample<T: std::str::FromStr>(page: &str, name: &str) -> Option<T> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` (Debian's prometheus package) passes the page:
/// the format parses and the names follow Prometheus's conventions.
pub fn promtool_accepts(page: &str) {
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
pub fn monitoring_uses_only_served_metrics(page: &str) {
    let dir = crate::shared::repo_dir().join("packaging/monitoring");
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
