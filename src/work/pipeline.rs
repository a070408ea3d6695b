//! What a worker does with an accepted BMC lease: discover the server over
//! Redfish (when the `redfish` parameters are given), register it in NetBox
//! (when the `netbox` parameters are given too), record the outcome in the
//! state store, and report it. Failures are retried from the store.
//!
//! `build` makes the pipeline for a configuration together with the
//! services it shares with the rest of the hook ([`Services`]): the state
//! store, the latency metrics, the NetBox side and the TLS pins.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gate::Gate;
use super::{ReconcilePolicy, Services};
use crate::config::{Config, ConfigError, NetBoxConfig, RedfishConfig, TlsMode};
use crate::kea::lease::{LeaseEvent, LeaseKind};
use crate::kea::log::kea_log;
use crate::netbox::{self, Identity, NetBox, Options, RegisterError, Registration};
use crate::placement::PlacementPattern;
use crate::redfish::{
    Credentials, Discoverer, FailureKind, GuardPolicy, Limits, LoginGuard, PinStore, Target,
    TlsPolicy,
};
use crate::state::{self, Failure, Found, Lease, RetryPolicy, Store, StoreError, Success};
use crate::subnets::LiveSubnets;
use crate::telemetry::latency::Metrics;
use crate::telemetry::GateLoad;

/// How a lease ended that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// An attempt succeeded: registered in NetBox (or discovered, without
    /// NetBox). Counted as `attempts-succeeded`.
    Succeeded,
    /// Nothing was attempted: a renewal of a BMC discovered recently or
    /// dead, a replay no longer due, or a lease only logged.
    NothingToDo,
}

/// What the workers do with each accepted lease.
pub trait Pipeline: Send + Sync + 'static {
    /// Processes one lease. The pool counts the outcome and logs errors
    /// (an error is a failed attempt).
    fn process(&self, event: &LeaseEvent) -> Result<Done, String>;

    /// Asks work in progress to end soon: the pool is stopping and will
    /// join the workers.
    fn stop(&self) {}
}

/// The pipeline without discovery (no `redfish` parameters): one log line
/// per BMC lease.
pub struct LogPipeline;

impl Pipeline for LogPipeline {
    fn process(&self, ev: &LeaseEvent) -> Result<Done, String> {
        kea_log!(
            BMC_DISCOVERY_LEASE,
            format!("{:?}", ev.kind()),
            ev.mac_string(),
            ev.ip(),
            ev.subnet_id(),
            format!("{:?}", String::from_utf8_lossy(ev.hostname())),
            format!("{:?}", String::from_utf8_lossy(ev.vendor_class())),
        );
        Ok(Done::NothingToDo)
    }
}

/// Whether `build` is checking a configuration (`kea-dhcp4 -t`, Kea's
/// validation before a load) or loading it. Only a load opens the state
/// file: a check run as root must not create it root-owned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Load,
}

/// The pipeline for a configuration and the services it shares:
/// discovery when `redfish` is set, the lease log otherwise. Reads the
/// credentials and pin files, so a bad path refuses the configuration at
/// load (and in `kea-dhcp4 -t`).
pub fn build(config: &Config, mode: Mode) -> Result<(Arc<dyn Pipeline>, Services), ConfigError> {
    match (&config.redfish, &config.netbox) {
        (None, None) => Ok((Arc::new(LogPipeline), Services::default())),
        (None, Some(_)) => Err(bad(
            "netbox",
            "needs 'redfish' too: what is registered comes from discovery".into(),
        )),
        (Some(r), nb) => {
            let subnets = Arc::new(LiveSubnets::default());
            let mut p = DiscoveryPipeline::new(r, subnets.clone())?;
            if let Some(nb) = nb {
                p.netbox = Some(Arc::new(Registrar::new(nb)?));
            }
            p.retry = RetryPolicy {
                attempts: config.retry_attempts,
                backoff: Duration::from_secs(config.retry_backoff_s),
                max_backoff: Duration::from_secs(config.retry_backoff_max_s),
            };
            p.state = open_state(&config.state_file, mode)?;
            if let Some(store) = &p.state {
                restore_login_guard(&p.discoverer.guard, store);
            }
            if let Some(dir) = &config.ansible_inventory_dir {
                if !Path::new(dir).is_dir() {
                    return Err(bad(
                        "ansible-inventory-dir",
                        format!(
                            "must be an existing directory, got {dir:?}; create it (writable by \
                             Kea's user) or leave the parameter out"
                        ),
                    ));
                }
            }
            let services = Services {
                store: p.state.clone(),
                metrics: Some(p.metrics.clone()),
                netbox: p.netbox.clone(),
                pins: match &p.discoverer.tls {
                    TlsPolicy::Pin(pins) => Some(pins.clone()),
                    _ => None,
                },
                subnets,
                guard: Some(p.discoverer.guard.clone()),
                reconcile: ReconcilePolicy {
                    rediscover_after: p.rediscover_after,
                    registers: p.netbox.is_some(),
                    workers: config.workers,
                },
            };
            Ok((Arc::new(p), services))
        }
    }
}

fn open_state(file: &str, mode: Mode) -> Result<Option<Arc<Store>>, ConfigError> {
    let path = Path::new(file);
    if !in_existing_dir(path) || path.is_dir() {
        return Err(bad(
            "state-file",
            format!(
                "must be a file in an existing directory, got {file:?}; create the directory \
                 (owned by Kea's user) or choose another path"
            ),
        ));
    }
    match mode {
        Mode::Check => Ok(None),
        Mode::Load => Store::open(path)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| bad("state-file", format!("cannot be used: {e}"))),
    }
}

/// Gives the login guard back what the state file kept of it (failed
/// logins, suspensions) and has it write there from now on; logs the
/// suspensions still running.
fn restore_login_guard(guard: &Arc<LoginGuard>, store: &Arc<Store>) {
    let records = match store.login_records() {
        Ok(r) => r,
        Err(e) => {
            kea_log!(BMC_DISCOVERY_STATE_FAILED, e);
            Default::default()
        }
    };
    let now = crate::clock::unix_ms();
    for s in guard.restore(records, store.clone()) {
        kea_log!(
            BMC_DISCOVERY_CREDENTIAL_STILL_SUSPENDED,
            s.credential,
            ((s.until_ms - now) / 1000).max(0),
            s.failures,
            s.spent_by.len(),
            s.spent_by.join(" ")
        );
    }
}

/// NetBox registration as configured; connects on first use, so that a
/// NetBox that is down never delays Kea's start.
pub struct Registrar {
    url: String,
    token: String,
    pattern: PlacementPattern,
    options: Options,
    dry_run: bool,
    client: Mutex<Option<Arc<NetBox>>>,
    /// `parallel-registrations`: how many talk to NetBox at once (and so
    /// the most that share a bulk request).
    gate: Gate,
    /// `batch-size` and `batch-window-ms`: requests of concurrent
    /// registrations merged into bulk ones.
    batch: (usize, Duration),
}

impl Registrar {
    fn new(c: &NetBoxConfig) -> Result<Registrar, ConfigError> {
        let text = std::fs::read_to_string(&c.token_file).map_err(|e| {
            bad(
                "netbox.token-file",
                format!("cannot be read: {}: {e}", c.token_file),
            )
        })?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(bad(
                "netbox.token-file",
                format!("{} is empty", c.token_file),
            ));
        }
        Ok(Registrar {
            url: c.url.clone(),
            token,
            pattern: c.placement_pattern.clone(),
            options: Options {
                role: c.role.clone(),
                create_missing: c.create_missing,
                tag: c.tag.clone(),
                interface: c.interface.clone(),
                custom_fields: c.custom_fields,
                journal: c.journal,
                place_by_bmc_hostname: c.place_by_bmc_hostname,
                address_moves: c.address_moves,
                oob_ip_family: c.oob_ip_family,
                placement_from_switch: c.placement_from_switch,
            },
            dry_run: c.dry_run,
            client: Mutex::new(None),
            // Batched or not, this many at once: they share bulk
            // requests when batching, so a burst wants more of them.
            gate: Gate::new(c.parallel_registrations),
            batch: (c.batch_size, Duration::from_millis(c.batch_window_ms)),
        })
    }

    fn client(&self) -> Result<Arc<NetBox>, RegisterError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nb) = &*c {
            return Ok(nb.clone());
        }
        let mut nb = NetBox::connect(&self.url, &self.token).map_err(RegisterError::from)?;
        nb.set_dry_run(self.dry_run);
        nb.set_batching(self.batch.0, self.batch.1);
        kea_log!(
            BMC_DISCOVERY_NETBOX_CONNECTED,
            nb.version,
            self.url,
            if self.dry_run {
                " (dry run: changes are logged, not written)"
            } else {
                ""
            }
        );
        let nb = Arc::new(nb);
        *c = Some(nb.clone());
        Ok(nb)
    }

    /// Registrations talking to NetBox and waiting to.
    pub fn load(&self) -> GateLoad {
        self.gate.load()
    }

    /// Requests sent to NetBox since the load: (reads, writes; a dry run's
    /// planned writes count).
    pub fn requests(&self) -> (u64, u64) {
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        client
            .as_ref()
            .map_or((0, 0), |nb| (nb.reads(), nb.writes()))
    }

    /// What merging requests into bulk ones did since the load.
    pub fn batches(&self) -> crate::telemetry::Batches {
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let b = client.as_ref().map(|nb| nb.batches()).unwrap_or_default();
        crate::telemetry::Batches {
            merged: b.merged,
            carried: b.parts,
            largest: b.largest,
            sent_alone: b.alone,
        }
    }
}

/// Whether `path`'s directory exists (a bare file name: the current one),
/// for files the hook creates there.
fn in_existing_dir(path: &Path) -> bool {
    path.parent()
        .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
}

fn bad(parameter: &str, problem: String) -> ConfigError {
    ConfigError {
        parameter: parameter.to_string(),
        problem,
    }
}

pub struct DiscoveryPipeline {
    discoverer: Discoverer,
    port: u16,
    /// A renewal within this long of a successful discovery of the same
    /// BMC at the same address is not discovered again.
    rediscover_after: Duration,
    /// Every BMC's state; None only while checking a configuration.
    state: Option<Arc<Store>>,
    retry: RetryPolicy,
    netbox: Option<Arc<Registrar>>,
    /// Kea's subnets (prefix length, user-context site), as of the last
    /// configuration.
    subnets: Arc<LiveSubnets>,
    metrics: Arc<Metrics>,
}

impl DiscoveryPipeline {
    pub fn new(
        r: &RedfishConfig,
        subnets: Arc<LiveSubnets>,
    ) -> Result<DiscoveryPipeline, ConfigError> {
        let credentials = Credentials::load(Path::new(&r.credentials_file))
            .map_err(|e| bad("redfish.credentials-file", format!("cannot be used: {e}")))?;
        let tls = match r.tls_mode {
            TlsMode::Pin => {
                let path = Path::new(&r.tls_pin_file);
                if !in_existing_dir(path) {
                    return Err(bad(
                        "redfish.tls-pin-file",
                        format!(
                            "must be in an existing directory, got {:?}; create the directory \
                             (owned by Kea's user) or choose another path",
                            r.tls_pin_file
                        ),
                    ));
                }
                let store = PinStore::open(path)
                    .map_err(|e| bad("redfish.tls-pin-file", format!("cannot be used: {e}")))?;
                TlsPolicy::Pin(Arc::new(store))
            }
            TlsMode::Verify => match &r.tls_ca_file {
                Some(ca) => TlsPolicy::ca_file(Path::new(ca))
                    .map_err(|e| bad("redfish.tls-ca-file", format!("cannot be used: {e}")))?,
                None => TlsPolicy::system_roots().map_err(|e| {
                    bad(
                        "redfish.tls-mode",
                        format!("\"verify\" needs CA roots: {e}"),
                    )
                })?,
            },
            TlsMode::Insecure => TlsPolicy::Insecure,
        };
        let limits = Limits {
            request_timeout: Duration::from_millis(r.request_timeout_ms),
            deadline: Duration::from_millis(r.deadline_ms),
            max_body_bytes: r.max_response_bytes,
            max_discovery_bytes: r.max_discovery_bytes,
            max_requests: r.max_requests,
            max_members: r.max_collection_members,
            max_parsed_bytes: r.max_parsed_bytes,
            retries: r.retries,
            parallel_requests: r.parallel_requests,
            ..Limits::default()
        };
        let names: Vec<&str> = credentials
            .entries
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let guard = LoginGuard::with_policy(
            GuardPolicy {
                window: Duration::from_secs(r.login_retry_window_s),
                max_failures_per_bmc: r.max_failed_logins,
                budget: r.credential_failure_budget,
                budget_window: Duration::from_secs(r.credential_failure_window_s),
                suspension: Duration::from_secs(r.credential_suspension_s),
            },
            &names,
        );
        Ok(DiscoveryPipeline {
            discoverer: Discoverer::with_guard(tls, credentials, limits, guard),
            port: r.port,
            rediscover_after: Duration::from_secs(r.rediscover_after_s),
            state: None,
            retry: RetryPolicy::default(),
            netbox: None,
            subnets,
            metrics: Arc::new(Metrics::default()),
        })
    }
}

impl Pipeline for DiscoveryPipeline {
    fn process(&self, ev: &LeaseEvent) -> Result<Done, String> {
        let mac = ev.mac_string();
        let ip = ev.ip().to_string();
        if ev.kind() == LeaseKind::Renew {
            let skip = self
                .state
                .as_ref()
                .and_then(|s| s.renewal_needs_nothing(&mac, &ip, self.rediscover_after));
            match skip {
                Some(state::State::Dead) => {
                    kea_log!(BMC_DISCOVERY_RENEWAL_DEAD, mac, ip);
                    return Ok(Done::NothingToDo);
                }
                Some(_) => {
                    kea_log!(
                        BMC_DISCOVERY_RENEWAL_RECENT,
                        mac,
                        ip,
                        self.rediscover_after.as_secs()
                    );
                    return Ok(Done::NothingToDo);
                }
                None => {}
            }
        }
        let mut leased_at = leased_at_ms(ev);
        if ev.kind() == LeaseKind::Replay {
            // Scheduled from the store: a real lease event may have got
            // there first, and then there is nothing left to do.
            match self.with_state(|s| s.begin_scheduled(&mac)) {
                Some(None) => {
                    kea_log!(BMC_DISCOVERY_NOT_DUE, mac, ip);
                    return Ok(Done::NothingToDo);
                }
                Some(Some(at)) => leased_at = at,
                None => {}
            }
        } else {
            let hostname = ev.hostname_text();
            self.with_state(|s| {
                s.begin(
                    &Lease {
                        mac: &mac,
                        ip: &ip,
                        subnet_id: ev.subnet_id(),
                        hostname: &hostname,
                    },
                    leased_at,
                    ev.kind() == LeaseKind::Select,
                )
            });
        }
        let outcome = self.attempt(ev, &mac, leased_at);
        self.metrics.mark_changed();
        match outcome {
            Ok(success) => {
                let leased_at = self.with_state(|s| s.succeeded(&mac, &success));
                let m = &self.metrics;
                m.discovery.record(success.discovery_ms);
                if self.netbox.is_some() {
                    m.netbox.record(success.register_ms);
                    m.set_netbox(true);
                }
                let done_at = leased_at.unwrap_or_else(|| leased_at_ms(ev));
                m.lease_to_done
                    .record((crate::clock::unix_ms() - done_at).max(0) as u64);
                Ok(Done::Succeeded)
            }
            Err((failure, message)) => {
                self.metrics.failed(failure.class);
                let f = Failure {
                    class: failure.class,
                    message: &message,
                    counts: failure.counts,
                    retry_at: failure.retry_at,
                };
                let next = self.with_state(|s| s.failed(&mac, &f, &self.retry));
                Err(match next {
                    Some((state::State::Dead, _)) => format!(
                        "{message}; dead after {} attempts (bmc-retry {mac} tries again)",
                        self.retry.attempts
                    ),
                    Some((_, Some(at))) => format!(
                        "{message}; next attempt in {} s",
                        (at - crate::clock::unix_s()).max(0)
                    ),
                    _ => message,
                })
            }
        }
    }

    fn stop(&self) {
        self.discoverer.cancel();
        if let Some(r) = &self.netbox {
            r.gate.close();
        }
    }
}

/// Why an attempt failed: a class for the state store and whether it counts
/// towards `dead`.
struct Failed {
    class: &'static str,
    counts: bool,
    /// When to try again instead of after the backoff (Unix s).
    retry_at: Option<i64>,
}

impl Failed {
    fn new(class: &'static str, counts: bool) -> Failed {
        Failed {
            class,
            counts,
            retry_at: None,
        }
    }
}

/// The failure class of a registration error (the metrics' label).
fn register_class(e: &RegisterError) -> &'static str {
    match e {
        RegisterError::Unavailable(_) => "netbox-unavailable",
        RegisterError::Refused(_) => "netbox-refused",
        RegisterError::Conflict(_) => "netbox-conflict",
        RegisterError::Failed(_) => "netbox-failed",
    }
}

/// When the lease was seen, in Unix milliseconds: the callout's monotonic
/// timestamp carried over to the wall clock (replays: now).
fn leased_at_ms(ev: &LeaseEvent) -> i64 {
    let now = crate::clock::unix_ms();
    if ev.0.start_ns == 0 {
        return now;
    }
    let age_ms = crate::clock::monotonic_ns().saturating_sub(ev.0.start_ns) / 1_000_000;
    now - age_ms as i64
}

impl DiscoveryPipeline {
    /// Runs `f` on the state store, logging (not failing on) its errors:
    /// a full disk must not stop discovery.
    fn with_state<R>(&self, f: impl FnOnce(&Store) -> Result<R, StoreError>) -> Option<R> {
        let store = self.state.as_ref()?;
        match f(store) {
            Ok(r) => Some(r),
            Err(e) => {
                kea_log!(BMC_DISCOVERY_STATE_FAILED, e);
                None
            }
        }
    }

    /// One discovery (and registration) of the BMC of `ev`, leased at
    /// `leased_at` (Unix ms): the older, the sooner it gets to NetBox.
    fn attempt(
        &self,
        ev: &LeaseEvent,
        mac: &str,
        leased_at: i64,
    ) -> Result<Success, (Failed, String)> {
        let mut target = Target::new(&ev.ip().to_string(), self.port);
        target.mac = Some(mac.to_string());
        let d = self.discoverer.discover(&target).map_err(|e| {
            // Held back by a suspension: not this BMC's failure; it is
            // tried again when the suspension ends.
            let held_back = e.kind == FailureKind::CredentialSuspended;
            let mut failed = Failed::new(e.kind.as_str(), !held_back);
            if held_back {
                failed.retry_at = self.discoverer.guard.next_lift_ms().map(|ms| ms / 1000 + 1);
            }
            (
                failed,
                format!("discovery failed ({}): {}", e.kind.as_str(), e.message),
            )
        })?;
        let inv = &d.inventory;
        kea_log!(
            BMC_DISCOVERY_DISCOVERED,
            mac,
            ev.ip(),
            format!(
                "{} {} serial {} ({} module)",
                inv.manufacturer.as_deref().unwrap_or("unknown"),
                inv.model.as_deref().unwrap_or("unknown model"),
                inv.serial_number.as_deref().unwrap_or("unknown"),
                inv.vendor
            ),
            format!(
                "{} firmware {}",
                inv.bmc.model.as_deref().unwrap_or("unknown"),
                inv.bmc.firmware_version.as_deref().unwrap_or("unknown")
            ),
            d.round_trips,
            d.elapsed_ms,
            if d.warnings.is_empty() {
                String::new()
            } else {
                format!("; {} resources missing", d.warnings.len())
            }
        );
        for w in &d.warnings {
            kea_log!(BMC_DISCOVERY_DISCOVERY_GAP, mac, w);
        }
        let mut success = Success {
            found: Found {
                manufacturer: inv.manufacturer.clone(),
                model: inv.model.clone(),
                serial: inv.serial_number.clone(),
                ..Found::default()
            },
            discovery_ms: d.elapsed_ms,
            ..Success::default()
        };
        if let Some(r) = &self.netbox {
            let _pass = r.gate.enter(leased_at).ok_or_else(|| {
                (
                    Failed::new("cancelled", false),
                    "registration cancelled: the hook is stopping".to_string(),
                )
            })?;
            // NetBox's own time, not the wait at the gate (that is in
            // lease-to-done).
            let t = Instant::now();
            let (out, reg) = self.register(r, ev, inv).map_err(|e| {
                // Any answer, even a refusal, means NetBox is reachable.
                self.metrics
                    .set_netbox(!matches!(e, RegisterError::Unavailable(_)));
                // NetBox being down is not this BMC's failure: it is
                // retried until NetBox is back.
                let counts = !matches!(e, RegisterError::Unavailable(_));
                (
                    Failed::new(register_class(&e), counts),
                    format!("registration failed: {e}"),
                )
            })?;
            success.registered = !out.dry_run;
            // Counted once per neighbour, when it first appears for this
            // BMC (as its journal entry is written once).
            let before = self
                .with_state(|s| s.lldp_unmatched(mac))
                .unwrap_or_default();
            let now: Vec<serde_json::Value> = out
                .lldp_unmatched
                .iter()
                .filter_map(|u| serde_json::to_value(u).ok())
                .collect();
            for (u, v) in out.lldp_unmatched.iter().zip(&now) {
                if !before.contains(v) {
                    self.metrics.lldp_unmatched(u.reason);
                }
            }
            let found = &mut success.found;
            found.device_id = out.device_id.real();
            found.name = Some(reg.name);
            found.site = reg.placement.site;
            found.rack = reg.placement.rack;
            found.unit = reg.placement.position;
            found.lldp_unmatched = now;
            success.register_ms = t.elapsed().as_millis() as u64;
        }
        Ok(success)
    }
}

impl DiscoveryPipeline {
    /// Why the BMC with MAC `other`, on a NetBox device another BMC's
    /// serial or name found, is still live; None when its lease is gone.
    /// An active BMC is discovered again at least every rediscover-after
    /// (renewals in between leave its row alone), so a lease seen within
    /// twice that (at least two hours) is live; a MAC this hook has no
    /// record of is not known to be gone.
    fn other_bmc_in_use(&self, other: &str) -> Option<String> {
        let window_s = self.rediscover_after.as_secs().max(3600) * 2;
        let Some(store) = &self.state else {
            return Some("without a state file nothing shows its lease is gone".into());
        };
        match store.last_lease_ms(other) {
            Err(e) => Some(format!("the state file could not be read: {e}")),
            Ok(None) => Some("this hook has no record of its lease".into()),
            Ok(Some(at)) => {
                let age_s = (crate::clock::unix_ms() - at).max(0) / 1000;
                (age_s < window_s as i64)
                    .then(|| format!("its lease was seen {age_s} s ago, less than {window_s} s"))
            }
        }
    }
}

/// What a registration was made of, for the state store.
struct Registered {
    name: String,
    placement: crate::placement::Placement,
}

impl DiscoveryPipeline {
    fn register(
        &self,
        r: &Registrar,
        ev: &LeaseEvent,
        inv: &crate::redfish::Inventory,
    ) -> Result<(netbox::Outcome, Registered), RegisterError> {
        let subnet = self
            .subnets
            .current()
            .and_then(|t| t.get(ev.subnet_id()))
            .cloned();
        let lease_name = ev.hostname_text();
        let prefix_len = subnet
            .as_ref()
            .and_then(|s| s.prefix.split('/').nth(1)?.parse().ok())
            .unwrap_or(32);
        let mac = ev.mac_string();
        let in_use = |other: &str| self.other_bmc_in_use(other);
        let mut reg = Registration::for_lease(
            inv,
            &mac,
            ev.ip(),
            prefix_len,
            Some(lease_name.as_str()),
            subnet.as_ref().and_then(|s| s.site.as_deref()),
            &r.pattern,
            r.options.place_by_bmc_hostname,
        );
        reg.identity = Identity {
            in_use: &in_use,
            replace_bmc: self.with_state(|s| s.replace_bmc(&mac)).unwrap_or(false),
        };
        let name = reg.name.clone();
        let nb = r.client()?;
        let out = netbox::register(&nb, &reg, &r.options)?;
        for n in &out.notes {
            kea_log!(BMC_DISCOVERY_NETBOX_NOTE, ev.mac_string(), ev.ip(), n);
        }
        if out.dry_run && !out.changes.is_empty() {
            kea_log!(
                BMC_DISCOVERY_NETBOX_DRY_RUN,
                ev.mac_string(),
                ev.ip(),
                name,
                out.device_id.to_string(),
                out.changes.join("; ")
            );
        } else if out.changes.is_empty() {
            kea_log!(
                BMC_DISCOVERY_NETBOX_UP_TO_DATE,
                ev.mac_string(),
                ev.ip(),
                out.device_id,
                name
            );
        } else {
            kea_log!(
                BMC_DISCOVERY_NETBOX_REGISTERED,
                ev.mac_string(),
                ev.ip(),
                out.device_id,
                name,
                out.changes.join("; ")
            );
        }
        let done = Registered {
            name,
            placement: out.placement.clone(),
        };
        Ok((out, done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::catalogue::failure_class_listed;

    #[test]
    fn every_registration_class_is_in_the_metrics_help() {
        for e in [
            RegisterError::Unavailable(String::new()),
            RegisterError::Refused(String::new()),
            RegisterError::Conflict(String::new()),
            RegisterError::Failed(String::new()),
        ] {
            assert!(failure_class_listed(register_class(&e)), "{e}");
        }
        assert!(failure_class_listed("cancelled"));
    }
}
