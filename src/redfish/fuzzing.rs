//! Entry points for the fuzz targets (tests/fuzz, docs/FUZZING.md): the
//! discovery's own handling of what a BMC answers, fed from memory instead
//! of the network. Not an API: nothing in the hook calls this.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub use super::http::Canned;
pub use super::json::{shape, Shape, TooBig, MAX_DEPTH};

use super::fetch::Fetcher;
use super::http::{Client, Fetch};
use super::{
    session, supports_expand, values, vendor, Credentials, Discoverer, Error, FailureKind,
    Inventory, Limits, Target, TlsPolicy, FALLBACK_CHASSIS, FALLBACK_MANAGERS, FALLBACK_SYSTEMS,
};

/// What discovery makes of a BMC whose GETs `canned` answers, within
/// `limits`: what `Discoverer::discover` does around the login (the service
/// root, its links and vendor, the Sessions link) and then its walk itself
/// (collections, primary system, manager, chassis, sub-resources, vendor
/// OEM resources, the inventory). Every body goes through the client's
/// budgets, `json::shape` and serde_json as one read from a BMC would.
pub fn inventory(
    canned: Canned,
    limits: Limits,
    mac: Option<&str>,
) -> Result<(Inventory, Vec<String>), Error> {
    // One TLS configuration for the process: building one per input would
    // be most of the cost, and no byte of it is ever used.
    static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let tls = TLS
        .get_or_init(|| TlsPolicy::Insecure.client_config("fuzz").0)
        .clone();
    let target = Target {
        host: "192.0.2.10".into(),
        port: 443,
        mac: mac.map(str::to_string),
    };
    let client = Client::new(
        &target.host,
        target.port,
        tls,
        None,
        limits,
        Arc::new(AtomicBool::new(false)),
    )?
    .with_canned(canned);
    let root = match client.get("/redfish/v1/") {
        Ok(v) if v.is_object() => v,
        Ok(_) => {
            return Err(Error::new(
                FailureKind::Protocol,
                "the service root is not a JSON object".to_string(),
            ))
        }
        Err(Fetch::Status(404)) => Value::Null,
        Err(Fetch::Status(code)) => {
            return Err(Error::new(FailureKind::Protocol, format!("HTTP {code}")))
        }
        Err(Fetch::Failed(e)) => return Err(e),
    };
    let f = Fetcher::new(&client, supports_expand(&root), limits.parallel_requests);
    let systems = values::link(&root, "Systems").unwrap_or_else(|| FALLBACK_SYSTEMS.into());
    let managers = values::link(&root, "Managers").unwrap_or_else(|| FALLBACK_MANAGERS.into());
    let chassis = values::link(&root, "Chassis").unwrap_or_else(|| FALLBACK_CHASSIS.into());
    if !root.is_null() {
        let _ = session::sessions_path(&root, &f);
    }
    let _ = vendor::from_root(&root).map(|v| v.name());
    let d = Discoverer::new(
        TlsPolicy::Insecure,
        Credentials::single("fuzz", "fuzz"),
        limits,
        Duration::from_secs(1),
    );
    d.walk(&f, root, &target, &systems, &managers, &chassis)
}
