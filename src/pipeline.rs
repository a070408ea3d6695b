//! What a worker does with an accepted BMC lease: discover the server over
//! Redfish (when the `redfish` parameters are given) and report it. NetBox
//! registration and the state store plug in after discovery.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, RedfishConfig, TlsMode};
use crate::event::LeaseEvent;
use crate::redfish::{Credentials, Discoverer, Limits, LoginGuard, PinStore, Target, TlsPolicy};
use crate::worker::{LogPipeline, Pipeline};

/// The pipeline for a configuration: discovery when `redfish` is set, the
/// lease log otherwise. Reads the credentials and pin files, so a bad path
/// refuses the configuration at load (and in `kea-dhcp4 -t`).
pub fn build(redfish: Option<&RedfishConfig>) -> Result<Arc<dyn Pipeline>, ConfigError> {
    match redfish {
        None => Ok(Arc::new(LogPipeline)),
        Some(r) => Ok(Arc::new(DiscoveryPipeline::new(r)?)),
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
        })
    }
}

impl Pipeline for DiscoveryPipeline {
    fn process(&self, ev: &LeaseEvent) -> Result<(), String> {
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
}
