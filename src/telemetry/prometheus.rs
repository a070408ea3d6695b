//! The hook's metrics for Prometheus, at `http://<metrics-listen>/metrics`.
//!
//! kea-exporter only exports the statistic names it knows, so the hook's
//! own statistics would never reach Prometheus through it. With the
//! `metrics-listen` parameter the hook serves them itself, in Prometheus's
//! text format, from one thread of its own: the page is rendered on Kea's
//! main thread at each tick (the same snapshot Kea's statistics get) and
//! the thread only copies it out, so a scrape never touches Kea, the state
//! file or a packet thread. The thread is joined at unload, which frees the
//! port for the next load (a reload is unload + load).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::catalogue::{COUNTERS, CREDENTIALS, FAILURE_CLASSES_HELP, GAUGES, LLDP_UNMATCHED};
use super::latency::{HistogramSnapshot, MS_BOUNDS};
use super::snapshot::Snapshot;
use crate::kea::log::kea_log;
use crate::pool_report::{Level, Levels};

/// How long a scraper may take to send its request or read the page.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle thread looks for a connection or a stop.
const POLL: Duration = Duration::from_millis(50);
/// A request head larger than this is not a scrape.
const MAX_REQUEST: usize = 8192;

/// One subnet's pools, as the metrics show them.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGauge {
    pub subnet_id: u32,
    pub subnet: String,
    pub site: String,
    pub total: u64,
    pub assigned: u64,
    pub level: Level,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    family(out, name, "histogram", help);
    let mut cumulative = 0u64;
    for (bound, n) in MS_BOUNDS.iter().zip(&h.counts) {
        cumulative += n;
        if *bound == u64::MAX {
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        } else {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
    }
    let _ = writeln!(out, "{name}_sum {}", seconds(h.sum_ms));
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// The page: every metric of `s`, plus the pools and their alert levels.
pub fn render(s: &Snapshot, pools: &[PoolGauge], levels: Levels) -> String {
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "bmc_discovery_info",
        "gauge",
        "The hook's version; always 1.",
    );
    let _ = writeln!(
        out,
        "bmc_discovery_info{{version=\"{}\"}} 1",
        label(crate::VERSION)
    );
    for (m, v) in COUNTERS.iter().zip(s.counter_values()) {
        family(&mut out, m.prom, "counter", m.help);
        let _ = writeln!(out, "{} {v}", m.prom);
    }
    for (m, v) in GAUGES.iter().zip(s.gauge_values()) {
        family(&mut out, m.prom, "gauge", m.help);
        let _ = writeln!(out, "{} {v}", m.prom);
    }
    family(
        &mut out,
        "bmc_discovery_callout_seconds",
        "gauge",
        "Cost of the lease callouts on Kea's packet threads (p50, p99, max).",
    );
    for (stat, ns) in ["p50", "p99", "max"].iter().zip(s.callout_ns()) {
        let _ = writeln!(
            out,
            "bmc_discovery_callout_seconds{{stat=\"{stat}\"}} {}",
            ns as f64 / 1e9
        );
    }
    family(
        &mut out,
        "bmc_discovery_bmcs",
        "gauge",
        "BMCs in each state in the state file.",
    );
    for (state, n) in &s.bmcs {
        let _ = writeln!(out, "bmc_discovery_bmcs{{state=\"{state}\"}} {n}");
    }
    for (m, h) in s.histograms() {
        histogram(&mut out, m.prom, m.help, h);
    }
    if let Some(nb) = s.netbox {
        family(
            &mut out,
            "bmc_discovery_netbox_reachable",
            "gauge",
            "1 NetBox answered the last attempt, 0 it did not, -1 not tried yet.",
        );
        let _ = writeln!(
            out,
            "bmc_discovery_netbox_reachable {}",
            nb.reachable.gauge()
        );
        let g = nb.registrations;
        for (name, help, v) in [
            (
                "bmc_discovery_netbox_registrations_running",
                "Registrations talking to NetBox now (at most netbox.parallel-registrations).",
                g.running,
            ),
            (
                "bmc_discovery_netbox_registrations_waiting",
                "Discovered BMCs waiting for their turn at NetBox, oldest lease first.",
                g.waiting,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
        let (reads, writes) = nb.requests;
        family(
            &mut out,
            "bmc_discovery_netbox_requests_total",
            "counter",
            "Requests sent to NetBox (a dry run's planned writes count as writes).",
        );
        let _ = writeln!(
            out,
            "bmc_discovery_netbox_requests_total{{method=\"read\"}} {reads}"
        );
        let _ = writeln!(
            out,
            "bmc_discovery_netbox_requests_total{{method=\"write\"}} {writes}"
        );
        let b = nb.batches;
        for (name, kind, help, v) in [
            (
                "bmc_discovery_netbox_batches_total",
                "counter",
                "Bulk requests sent to NetBox that carried more than one registration's request.",
                b.merged,
            ),
            (
                "bmc_discovery_netbox_batched_requests_total",
                "counter",
                "Registrations' requests carried in bulk requests (divided by the batches: the \
                 mean batch size).",
                b.carried,
            ),
            (
                "bmc_discovery_netbox_batch_largest",
                "gauge",
                "The most registrations' requests one bulk request carried since the load.",
                b.largest,
            ),
            (
                "bmc_discovery_netbox_sent_alone_total",
                "counter",
                "Requests a rejected bulk request sent again alone, for their own answer.",
                b.sent_alone,
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    family(
        &mut out,
        "bmc_discovery_attempt_failures_total",
        "counter",
        FAILURE_CLASSES_HELP,
    );
    for (class, n) in &s.failures {
        let _ = writeln!(
            out,
            "bmc_discovery_attempt_failures_total{{class=\"{}\"}} {n}",
            label(class)
        );
    }
    if !s.lldp_unmatched.is_empty() {
        let m = &LLDP_UNMATCHED;
        family(&mut out, m.prom, "counter", m.help);
        for (reason, n) in &s.lldp_unmatched {
            let _ = writeln!(out, "{}{{reason=\"{}\"}} {n}", m.prom, label(reason));
        }
    }
    if let Some(c) = &s.credentials {
        let [suspended, suspensions] = &CREDENTIALS;
        family(&mut out, suspended.prom, "gauge", suspended.help);
        for (name, on) in &c.entries {
            let _ = writeln!(
                out,
                "{}{{credential=\"{}\"}} {}",
                suspended.prom,
                label(name),
                u8::from(*on)
            );
        }
        family(&mut out, suspensions.prom, "counter", suspensions.help);
        let _ = writeln!(out, "{} {}", suspensions.prom, c.suspensions);
    }
    pool_families(&mut out, pools, levels);
    out
}

fn pool_families(out: &mut String, pools: &[PoolGauge], levels: Levels) {
    let labels = |p: &PoolGauge| {
        format!(
            "subnet_id=\"{}\",subnet=\"{}\",site=\"{}\"",
            p.subnet_id,
            label(&p.subnet),
            label(&p.site)
        )
    };
    type Family = (&'static str, &'static str, fn(&PoolGauge) -> String);
    let families: [Family; 4] = [
        (
            "bmc_discovery_pool_addresses",
            "Addresses in the pools of an opted-in subnet.",
            |p| p.total.to_string(),
        ),
        (
            "bmc_discovery_pool_assigned_addresses",
            "Active leases in the pools of an opted-in subnet.",
            |p| p.assigned.to_string(),
        ),
        (
            "bmc_discovery_pool_utilisation_ratio",
            "Assigned over total pool addresses of an opted-in subnet.",
            |p| {
                if p.total == 0 {
                    "0".into()
                } else {
                    (p.assigned as f64 / p.total as f64).to_string()
                }
            },
        ),
        (
            "bmc_discovery_pool_level",
            "Alert level of a subnet's pools at pool-alert-levels: 0 ok, 1 warning, 2 high, 3 critical.",
            |p| (p.level as u8).to_string(),
        ),
    ];
    for (name, help, value) in families {
        family(out, name, "gauge", help);
        for p in pools {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(p), value(p));
        }
    }
    family(
        out,
        "bmc_discovery_pool_alert_threshold_ratio",
        "gauge",
        "The hook's pool-alert-levels, as ratios.",
    );
    for (level, pct) in [
        ("warning", levels.warning),
        ("high", levels.high),
        ("critical", levels.critical),
    ] {
        let _ = writeln!(
            out,
            "bmc_discovery_pool_alert_threshold_ratio{{level=\"{level}\"}} {}",
            f64::from(pct) / 100.0
        );
    }
}

/// The listening thread. Dropping it stops and joins the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    page: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (load time: a port in use refuses the load).
    pub fn start(addr: SocketAddr) -> Result<MetricsServer, String> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            format!("parameter 'metrics-listen' cannot be used: {addr}: {e}; choose a free port")
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("metrics listener {addr}: {e}"))?;
        let page = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bmc-metrics".into())
            .spawn({
                let page = page.clone();
                let stop = stop.clone();
                move || serve(&listener, &page, &stop)
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        Ok(MetricsServer {
            addr,
            page,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the page scrapes get.
    pub fn update(&self, page: String) {
        *self.page.lock().unwrap_or_else(|p| p.into_inner()) = page;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, page: &Mutex<String>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, page) {
                    kea_log!(BMC_DISCOVERY_METRICS_SCRAPE_FAILED, peer, e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                kea_log!(BMC_DISCOVERY_METRICS_ACCEPT_FAILED, e);
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Reads one request head and answers it; the connection then closes.
fn answer(mut stream: TcpStream, page: &Mutex<String>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let path = path.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => {
            let body = page.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if body.is_empty() {
                // Between load and Kea's first timer tick (a second).
                return respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "text/plain",
                    "the hook is starting; metrics within a second\n",
                );
            }
            let body = if method == b"HEAD" {
                String::new()
            } else {
                body
            };
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        (b"GET", b"/") => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            "kea-hook-bmc-discovery: metrics at /metrics\n",
        ),
        (b"GET" | b"HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n",
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn suspended_credentials_are_on_the_page_with_discovery() {
        let mut s = Snapshot::default();
        let page = render(&s, &[], Levels::default());
        assert!(!page.contains("bmc_discovery_credential"), "{page}");
        s.credentials = Some(crate::telemetry::CredentialsState {
            entries: vec![("root".into(), true), ("ad\"min".into(), false)],
            suspensions: 3,
        });
        let page = render(&s, &[], Levels::default());
        for line in [
            "# TYPE bmc_discovery_credential_suspended gauge",
            "bmc_discovery_credential_suspended{credential=\"root\"} 1",
            "bmc_discovery_credential_suspended{credential=\"ad\\\"min\"} 0",
            "bmc_discovery_credential_suspensions_total 3",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in\n{page}");
        }
    }

    #[test]
    fn serves_the_page_and_frees_the_port_when_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = MetricsServer::start(addr).unwrap();
        assert!(get(addr, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        server.update("bmc_discovery_workers 4\n".into());
        let r = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"), "{r}");
        assert!(r.ends_with("\r\n\r\nbmc_discovery_workers 4\n"), "{r}");
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let e = MetricsServer::start(addr).err().unwrap();
        assert!(
            e.starts_with(&format!(
                "parameter 'metrics-listen' cannot be used: {addr}:"
            )),
            "{e}"
        );
        drop(server);
        // Joined and closed: the port is free again at once.
        drop(MetricsServer::start(addr).unwrap());
    }

    #[test]
    fn renders_histograms_in_seconds_and_escapes_labels() {
        let mut counts = vec![0; MS_BOUNDS.len()];
        counts[0] = 2; // <= 25 ms
        counts[2] = 1; // <= 100 ms
        let s = Snapshot {
            counters: crate::telemetry::counters::CountersSnapshot {
                seen: 1,
                ..Default::default()
            },
            queue: crate::telemetry::QueueStatus {
                workers: 4,
                ..Default::default()
            },
            cost: crate::telemetry::counters::CostSnapshot {
                p50_ns: 1500,
                p99_ns: 3000,
                max_ns: 9000,
                ..Default::default()
            },
            bmcs: vec![("registered", 3)],
            latency: Some(crate::telemetry::snapshot::Latencies {
                lease_to_done: HistogramSnapshot {
                    count: 3,
                    sum_ms: 140,
                    p50_ms: 25,
                    p90_ms: 100,
                    p99_ms: 100,
                    max_ms: 90,
                    counts,
                },
                ..Default::default()
            }),
            netbox: Some(crate::telemetry::snapshot::NetBoxState {
                reachable: crate::telemetry::latency::Reachability::Reachable,
                registrations: crate::telemetry::GateLoad {
                    limit: 4,
                    running: 3,
                    waiting: 7,
                },
                requests: (12, 8),
                batches: crate::telemetry::Batches {
                    merged: 3,
                    carried: 40,
                    largest: 20,
                    sent_alone: 1,
                },
            }),
            failures: [("auth".to_string(), 2)].into(),
            lldp_unmatched: [("switch-unknown".to_string(), 2)].into(),
            credentials: None,
        };
        let pools = [PoolGauge {
            subnet_id: 1,
            subnet: "10.0.0.0/24".into(),
            site: "a\"b".into(),
            total: 20,
            assigned: 18,
            level: Level::High,
        }];
        let page = render(&s, &pools, Levels::default());
        for line in [
            "bmc_discovery_leases_seen_total 1",
            "bmc_discovery_leases_accepted_total 0",
            "bmc_discovery_workers 4",
            "# TYPE bmc_discovery_lease_to_done_seconds histogram",
            "bmc_discovery_lease_to_done_seconds_bucket{le=\"0.025\"} 2",
            "bmc_discovery_lease_to_done_seconds_bucket{le=\"0.05\"} 2",
            "bmc_discovery_lease_to_done_seconds_bucket{le=\"0.1\"} 3",
            "bmc_discovery_lease_to_done_seconds_bucket{le=\"+Inf\"} 3",
            "bmc_discovery_lease_to_done_seconds_sum 0.14",
            "bmc_discovery_lease_to_done_seconds_count 3",
            "bmc_discovery_bmcs{state=\"registered\"} 3",
            "bmc_discovery_attempt_failures_total{class=\"auth\"} 2",
            "# TYPE bmc_discovery_lldp_unmatched_total counter",
            "bmc_discovery_lldp_unmatched_total{reason=\"switch-unknown\"} 2",
            "bmc_discovery_callout_seconds{stat=\"p50\"} 0.0000015",
            "bmc_discovery_pool_utilisation_ratio{subnet_id=\"1\",subnet=\"10.0.0.0/24\",site=\"a\\\"b\"} 0.9",
            "bmc_discovery_pool_level{subnet_id=\"1\",subnet=\"10.0.0.0/24\",site=\"a\\\"b\"} 2",
            "bmc_discovery_pool_alert_threshold_ratio{level=\"warning\"} 0.8",
            "bmc_discovery_netbox_reachable 1",
            "bmc_discovery_netbox_registrations_waiting 7",
            "bmc_discovery_netbox_requests_total{method=\"write\"} 8",
            "bmc_discovery_netbox_batches_total 3",
            "bmc_discovery_netbox_batched_requests_total 40",
            "bmc_discovery_netbox_batch_largest 20",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line}:\n{page}");
        }
    }
}
