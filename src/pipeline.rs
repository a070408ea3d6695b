//! What a worker does with an accepted BMC lease: discover the server over
//! Redfish (when the `redfish` parameters are given), register it in NetBox
//! (when the `netbox` parameters are given too), and report it. The state
//! store plugs in after registration.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, NetBoxConfig, RedfishConfig, TlsMode};
use crate::event::{LeaseEvent, LeaseKind};
use crate::hostname::PlacementPattern;
use crate::netbox::{self, NetBox, Options, RegisterError, Registration};
use crate::redfish::{Credentials, Discoverer, Limits, LoginGuard, PinStore, Target, TlsPolicy};
use crate::subnets::SubnetInfo;
use crate::worker::{LogPipeline, Pipeline};

/// The pipeline for a configuration: discovery when `redfish` is set, the
/// lease log otherwise. Reads the credentials and pin files, so a bad path
/// refuses the configuration at load (and in `kea-dhcp4 -t`).
pub fn build(config: &Config) -> Result<Arc<dyn Pipeline>, ConfigError> {
    match (&config.redfish, &config.netbox) {
        (None, None) => Ok(Arc::new(LogPipeline)),
        (None, Some(_)) => Err(bad(
            "netbox",
            "needs 'redfish' too: what is registered comes from discovery".into(),
        )),
        (Some(r), nb) => {
            let mut p = DiscoveryPipeline::new(r)?;
            if let Some(nb) = nb {
                p.netbox = Some(Registrar::new(nb)?);
            }
            Ok(Arc::new(p))
        }
    }
}

/// NetBox registration as configured; connects on first use, so that a
/// NetBox that is down never delays Kea's start.
struct Registrar {
    url: String,
    token: String,
    pattern: PlacementPattern,
    options: Options,
    client: Mutex<Option<Arc<NetBox>>>,
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
        let pattern = PlacementPattern::new(&c.placement_pattern)
            .map_err(|e| bad("netbox.placement-pattern", e))?;
        Ok(Registrar {
            url: c.url.clone(),
            token,
            pattern,
            options: Options {
                role: c.role.clone(),
                create_missing: c.create_missing,
                tag: c.tag.clone(),
                interface: c.interface.clone(),
            },
            client: Mutex::new(None),
        })
    }

    fn client(&self) -> Result<Arc<NetBox>, RegisterError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nb) = &*c {
            return Ok(nb.clone());
        }
        let nb = NetBox::connect(&self.url, &self.token).map_err(RegisterError::from)?;
        log::info!("connected to NetBox {} at {}", nb.version, self.url);
        let nb = Arc::new(nb);
        *c = Some(nb.clone());
        Ok(nb)
    }
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
    /// MAC -> (address, when) of the last successful discovery. Workers
    /// only; bounded by pruning what is older than `rediscover_after`.
    /// (The state store of a later version will keep this across restarts.)
    recent: Mutex<HashMap<String, (std::net::Ipv4Addr, Instant)>>,
    netbox: Option<Registrar>,
    /// Kea's subnets by id (prefix length, user-context site), as of the
    /// last configuration.
    subnets: Mutex<HashMap<u32, SubnetInfo>>,
}

impl DiscoveryPipeline {
    pub fn new(r: &RedfishConfig) -> Result<DiscoveryPipeline, ConfigError> {
        let credentials = Credentials::load(Path::new(&r.credentials_file))
            .map_err(|e| bad("redfish.credentials-file", format!("cannot be used: {e}")))?;
        let tls = match r.tls_mode {
            TlsMode::Pin => {
                let path = Path::new(&r.tls_pin_file);
                let dir_ok = path
                    .parent()
                    .map(|d| d.as_os_str().is_empty() || d.is_dir())
                    .unwrap_or(false);
                if !dir_ok {
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
            retries: r.retries,
            parallel_requests: r.parallel_requests,
            ..Limits::default()
        };
        Ok(DiscoveryPipeline {
            discoverer: Discoverer::with_guard(
                tls,
                credentials,
                limits,
                LoginGuard::with_limit(
                    Duration::from_secs(r.login_retry_window_s),
                    r.max_failed_logins,
                ),
            ),
            port: r.port,
            rediscover_after: Duration::from_secs(r.rediscover_after_s),
            recent: Mutex::new(HashMap::new()),
            netbox: None,
            subnets: Mutex::new(HashMap::new()),
        })
    }
}

impl Pipeline for DiscoveryPipeline {
    fn process(&self, ev: &LeaseEvent) -> Result<(), String> {
        let mac = ev.mac_string();
        if ev.kind() == LeaseKind::Renew && self.fresh(&mac, ev.ipv4()) {
            log::debug!(
                "BMC {mac} at {} renewed; discovered less than {} s ago, not again",
                ev.ipv4(),
                self.rediscover_after.as_secs()
            );
            return Ok(());
        }
        let mut target = Target::new(&ev.ipv4().to_string(), self.port);
        target.mac = Some(ev.mac_string());
        match self.discoverer.discover(&target) {
            Ok(d) => {
                let inv = &d.inventory;
                log::info!(
                    "discovered BMC {} at {}: {} {} serial {} ({} module), BMC {} firmware {}; \
                     {} requests in {} ms{}",
                    ev.mac_string(),
                    ev.ipv4(),
                    inv.manufacturer.as_deref().unwrap_or("unknown"),
                    inv.model.as_deref().unwrap_or("unknown model"),
                    inv.serial_number.as_deref().unwrap_or("unknown"),
                    inv.vendor,
                    inv.bmc.model.as_deref().unwrap_or("unknown"),
                    inv.bmc.firmware_version.as_deref().unwrap_or("unknown"),
                    d.round_trips,
                    d.elapsed_ms,
                    if d.warnings.is_empty() {
                        String::new()
                    } else {
                        format!("; {} resources missing", d.warnings.len())
                    }
                );
                for w in &d.warnings {
                    log::debug!("BMC {}: {w}", ev.mac_string());
                }
                if let Some(r) = &self.netbox {
                    self.register(r, ev, &d.inventory)
                        .map_err(|e| format!("registration failed: {e}"))?;
                }
                self.remember(mac, ev.ipv4());
                Ok(())
            }
            Err(e) => Err(format!(
                "discovery failed ({}): {}",
                e.kind.as_str(),
                e.message
            )),
        }
    }

    fn stop(&self) {
        self.discoverer.cancel();
    }

    fn subnets_changed(&self, subnets: &[SubnetInfo]) {
        let mut map = self.subnets.lock().unwrap_or_else(|p| p.into_inner());
        *map = subnets.iter().map(|s| (s.id, s.clone())).collect();
    }
}

impl DiscoveryPipeline {
    fn register(
        &self,
        r: &Registrar,
        ev: &LeaseEvent,
        inv: &crate::redfish::Inventory,
    ) -> Result<(), RegisterError> {
        let subnet = self
            .subnets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ev.subnet_id())
            .cloned();
        let lease_name = String::from_utf8_lossy(ev.hostname()).into_owned();
        let prefix_len = subnet
            .as_ref()
            .and_then(|s| s.prefix.split('/').nth(1)?.parse().ok())
            .unwrap_or(32);
        let mac = ev.mac_string();
        let reg = Registration::for_lease(
            inv,
            &mac,
            ev.ipv4(),
            prefix_len,
            Some(lease_name.as_str()),
            subnet.as_ref().and_then(|s| s.site.as_deref()),
            &r.pattern,
        );
        let name = reg.name.clone();
        let nb = r.client()?;
        let out = netbox::register(&nb, &reg, &r.options)?;
        for n in &out.notes {
            log::warn!("BMC {} at {}: NetBox: {n}", ev.mac_string(), ev.ipv4());
        }
        if out.changes.is_empty() {
            log::info!(
                "BMC {} at {}: NetBox device {} ({name}) is up to date",
                ev.mac_string(),
                ev.ipv4(),
                out.device_id
            );
        } else {
            log::info!(
                "registered BMC {} at {} as NetBox device {} ({name}): {}",
                ev.mac_string(),
                ev.ipv4(),
                out.device_id,
                out.changes.join("; ")
            );
        }
        Ok(())
    }

    fn fresh(&self, mac: &str, ip: std::net::Ipv4Addr) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .get(mac)
            .is_some_and(|(addr, at)| *addr == ip && at.elapsed() < self.rediscover_after)
    }

    fn remember(&self, mac: String, ip: std::net::Ipv4Addr) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let keep = self.rediscover_after;
        recent.retain(|_, (_, at)| at.elapsed() < keep);
        recent.insert(mac, (ip, Instant::now()));
    }
}
