//! Redfish discovery: given a BMC's address, one typed `Inventory` of the
//! server, in as few round trips as the BMC allows, without ever locking an
//! account, leaking a session, hanging or crashing on a broken BMC.
//!
//! The walk: the service root (no auth) -> login (session, else basic auth)
//! -> Systems, Managers, Chassis and UpdateService in one parallel wave ->
//! the primary system, its manager and chassis -> their sub-resources in
//! further waves until nothing new is wanted -> logout. Links are followed
//! from `@odata.id`s; the fixed paths below are used only when a BMC has no
//! service root to link from.

mod budget;
pub mod credentials;
pub mod error;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
mod generic;
mod http;
pub mod inventory;
mod json;
mod origin;
pub mod ports;
mod session;
pub mod tls;
pub mod values;
mod vendor;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use credentials::guard::{GuardPolicy, LoginGuard};
pub use credentials::Credentials;
pub use error::{Error, FailureKind};
pub use inventory::Inventory;
pub use tls::{PinStore, TlsPolicy};

use fetch::Fetcher;
use generic::Found;
use http::Client;

use crate::config::defaults;
use crate::kea::log::kea_log;

/// Time, size and retry bounds for one BMC. The budgets (requests, bytes,
/// members, parsed memory, deadline) are per discovery; exceeding one
/// fails the discovery with its own `FailureKind::Budget*`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// One request, connect included.
    pub request_timeout: Duration,
    /// The whole discovery of one BMC.
    pub deadline: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: u64,
    /// Body bytes one discovery may read in all.
    pub max_discovery_bytes: u64,
    /// Requests one discovery may make, login included (the logout is
    /// always sent).
    pub max_requests: u32,
    /// Elements of any one array or object in an answer (collection
    /// members above all).
    pub max_members: usize,
    /// Memory the parsed answers of one discovery may take (estimated
    /// from each body before it is parsed; see `json::shape`).
    pub max_parsed_bytes: u64,
    /// Retries of a GET after a 5xx, 429, timeout or dropped connection.
    pub retries: u32,
    /// First retry delay; doubles each retry. `Retry-After` overrides it.
    pub backoff: Duration,
    /// Cap on any one retry delay, `Retry-After` included.
    pub max_backoff: Duration,
    pub max_redirects: u32,
    /// Requests in flight to one BMC at once.
    pub parallel_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_timeout: Duration::from_millis(defaults::REDFISH_REQUEST_TIMEOUT_MS.default),
            deadline: Duration::from_millis(defaults::REDFISH_DEADLINE_MS.default),
            max_body_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_discovery_bytes: DEFAULT_MAX_DISCOVERY_BYTES,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_members: DEFAULT_MAX_MEMBERS,
            max_parsed_bytes: DEFAULT_MAX_PARSED_BYTES,
            retries: defaults::REDFISH_RETRIES.default as u32,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_redirects: 3,
            parallel_requests: defaults::REDFISH_PARALLEL_REQUESTS.default as usize,
        }
    }
}

/// Everything discovery needs besides the address; shared by all workers.
pub struct Discoverer {
    pub tls: TlsPolicy,
    pub credentials: Credentials,
    pub guard: Arc<LoginGuard>,
    pub limits: Limits,
    /// Set when the hook stops: discoveries end at their next request.
    pub cancel: Arc<AtomicBool>,
}

/// One BMC to discover.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The BMC's MAC from its lease: names it for the pin store and the
    /// login guard (its address may change), picks OUI-bound credentials,
    /// and identifies its network port among the manager's interfaces.
    pub mac: Option<String>,
}

impl Target {
    pub fn new(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            mac: None,
        }
    }

    /// The BMC's stable name: its MAC when known, else host:port.
    pub fn key(&self) -> String {
        match &self.mac {
            Some(m) => m.clone(),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

/// A successful discovery.
#[derive(Clone, Debug, Serialize)]
pub struct Discovery {
    pub inventory: Inventory,
    /// What was missing or malformed and left out; never fatal.
    pub warnings: Vec<String>,
    /// HTTP requests made, login and logout included.
    pub round_trips: u32,
    /// Body bytes read, and the memory their parsed forms were counted
    /// as (what the budgets `max-discovery-bytes` / `max-parsed-bytes`
    /// were charged).
    pub bytes_read: u64,
    pub parsed_bytes: u64,
    pub elapsed_ms: u64,
    /// The credential that logged in (never the password).
    pub username: String,
    /// "session" or "basic".
    pub auth: &'static str,
}

// Budget defaults, with the largest real discovery of the shared mockups
// for scale (tests/redfish.rs prints every model's figures and checks a
// 4-fold margin): an answer of at most 39 KB (the DGX's ComputerSystem),
// a whole discovery of at most 289 KB read, 45 requests, 4.0 MB parsed
// (host ports included), 151 elements in one array or object.
// The values are the parameters' table's (`config::defaults`).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = defaults::REDFISH_MAX_RESPONSE_BYTES.default;
pub const DEFAULT_MAX_DISCOVERY_BYTES: u64 = defaults::REDFISH_MAX_DISCOVERY_BYTES.default;
pub const DEFAULT_MAX_REQUESTS: u32 = defaults::REDFISH_MAX_REQUESTS.default as u32;
pub const DEFAULT_MAX_MEMBERS: usize = defaults::REDFISH_MAX_COLLECTION_MEMBERS.default as usize;
pub const DEFAULT_MAX_PARSED_BYTES: u64 = defaults::REDFISH_MAX_PARSED_BYTES.default;

/// The paths Redfish services conventionally use, for BMCs whose service
/// root is missing (seen on a Supermicro X10 capture).
const FALLBACK_SYSTEMS: &str = "/redfish/v1/Systems";
const FALLBACK_MANAGERS: &str = "/redfish/v1/Managers";
const FALLBACK_CHASSIS: &str = "/redfish/v1/Chassis";
const FALLBACK_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

impl Discoverer {
    /// A discoverer whose login guard holds a failed credential back for
    /// `login_window` on the BMC it failed on, and allows two failed logins
    /// per BMC per window.
    pub fn new(
        tls: TlsPolicy,
        credentials: Credentials,
        limits: Limits,
        login_window: Duration,
    ) -> Discoverer {
        Discoverer::with_guard(tls, credentials, limits, LoginGuard::new(login_window))
    }

    pub fn with_guard(
        tls: TlsPolicy,
        credentials: Credentials,
        limits: Limits,
        guard: LoginGuard,
    ) -> Discoverer {
        Discoverer {
            tls,
            credentials,
            guard: Arc::new(guard),
            limits,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Makes running and later discoveries end at their next request.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Discovers one BMC. Blocking; bounded by `limits.deadline` (plus the
    /// logout's own short timeout).
    pub fn discover(&self, target: &Target) -> Result<Discovery, Error> {
        let key = target.key();
        let (tls, pin) = self.tls.client_config(&key);
        let client = Client::new(
            &target.host,
            target.port,
            tls,
            pin,
            self.limits,
            self.cancel.clone(),
        )?;
        let root = match client.get("/redfish/v1/") {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                return Err(Error::new(
                    FailureKind::Protocol,
                    format!(
                        "BMC {}: the service root /redfish/v1/ is not a JSON object",
                        client.bmc
                    ),
                ))
            }
            Err(http::Fetch::Status(404)) => {
                kea_log!(BMC_DISCOVERY_REDFISH_NO_SERVICE_ROOT, client.bmc);
                Value::Null
            }
            Err(http::Fetch::Status(code)) => {
                return Err(Error::new(
                    FailureKind::Protocol,
                    format!(
                        "BMC {}: GET /redfish/v1/ answered HTTP {code}; is this a Redfish service?",
                        client.bmc
                    ),
                ))
            }
            Err(http::Fetch::Failed(e)) => return Err(e),
        };
        let expand = supports_expand(&root);
        let f = Fetcher::new(&client, expand, self.limits.parallel_requests);

        let systems = values::link(&root, "Systems").unwrap_or_else(|| FALLBACK_SYSTEMS.into());
        let managers = values::link(&root, "Managers").unwrap_or_else(|| FALLBACK_MANAGERS.into());
        let chassis = values::link(&root, "Chassis").unwrap_or_else(|| FALLBACK_CHASSIS.into());
        let sessions = if root.is_null() {
            Some(FALLBACK_SESSIONS.to_string())
        } else {
            session::sessions_path(&root, &f)
        };
        let vendor_hint = vendor::from_root(&root).map(|v| v.name());

        let session = session::login(
            &f,
            sessions.as_deref(),
            &f.coll(&systems),
            &self.credentials,
            &self.guard,
            &key,
            vendor_hint,
            target.mac.as_deref(),
        )?;

        let result = self.walk(&f, root, target, &systems, &managers, &chassis);
        let username = session.username.clone();
        let auth = if session.basic { "basic" } else { "session" };
        drop(session);
        let (inventory, warnings) = result?;
        let (bytes_read, parsed_bytes) = client.bytes_read();
        Ok(Discovery {
            inventory,
            warnings,
            round_trips: client.round_trips(),
            bytes_read,
            parsed_bytes,
            elapsed_ms: client.elapsed().as_millis() as u64,
            username,
            auth,
        })
    }

    fn walk(
        &self,
        f: &Fetcher,
        root: Value,
        target: &Target,
        systems: &str,
        managers: &str,
        chassis: &str,
    ) -> Result<(Inventory, Vec<String>), Error> {
        let bmc = &f.client.bmc;
        let mut first = vec![f.coll(systems), f.coll(managers), f.coll(chassis)];
        first.extend(values::link(&root, "UpdateService"));
        f.get_many(&first);
        if let Some(e) = f.fatal() {
            return Err(e);
        }
        f.get_many(&f.missing_members(systems));
        let mut candidates = f.members(systems);
        if candidates.is_empty() {
            // No Systems collection (seen on a Quanta capture): the chassis
            // link their systems.
            f.get_many(&f.missing_members(chassis));
            let via_chassis: Vec<String> = f
                .members(chassis)
                .iter()
                .flat_map(|c| {
                    values::links(c.get("Links").unwrap_or(&Value::Null), "ComputerSystems")
                })
                .collect();
            f.get_many(&via_chassis);
            candidates = via_chassis.iter().filter_map(|s| f.cached(s)).collect();
        }
        let system = primary_system(&candidates).ok_or_else(|| {
            f.fatal().unwrap_or_else(|| {
                let why = f.take_warnings();
                Error::new(
                    FailureKind::Protocol,
                    format!(
                        "BMC {bmc}: no ComputerSystem found under {systems}{}{}",
                        if why.is_empty() { "" } else { ": " },
                        why.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                    ),
                )
            })
        })?;

        // The system's own manager and chassis; else the first of each.
        let links = system.get("Links").cloned().unwrap_or(Value::Null);
        let manager_link = values::links(&links, "ManagedBy").into_iter().next();
        let chassis_link = values::links(&links, "Chassis").into_iter().next();
        let mut need: Vec<String> = manager_link
            .iter()
            .chain(chassis_link.iter())
            .cloned()
            .collect();
        if manager_link.is_none() {
            need.extend(f.missing_members(managers).into_iter().take(1));
        }
        if chassis_link.is_none() {
            need.extend(f.missing_members(chassis).into_iter().take(1));
        }
        f.get_many(&need);
        let manager = manager_link
            .and_then(|m| f.cached(&m))
            .or_else(|| first_bmc_manager(&f.members(managers)));
        let chassis_v = chassis_link
            .and_then(|c| f.cached(&c))
            .or_else(|| f.members(chassis).into_iter().next());
        let update_service = values::link(&root, "UpdateService").and_then(|u| f.cached(&u));

        let found = Found {
            root,
            system,
            manager,
            chassis: chassis_v,
            update_service,
            address: target.host.clone(),
            mac: target.mac.as_deref().and_then(values::mac),
        };
        let vendor = vendor::detect(&found);

        // Everything the inventory wants, each link fetched as soon as it
        // is known. The request budget stops a BMC that links without end.
        let wanted = |f: &Fetcher| {
            let mut w = vendor.map(|v| v.wanted(&found, f)).unwrap_or_default();
            w.extend(generic::wanted(&found, f));
            w.extend(ports::wanted(&found, f).into_iter().filter(|p| !f.asked(p)));
            w
        };
        f.crawl(&wanted);
        if let Some(e) = f.fatal() {
            return Err(e);
        }
        let mut inv = generic::build(&found, f);
        inv.host_ports = ports::build(&found, f);
        if let Some(v) = vendor {
            inv.vendor = v.name().to_string();
            v.enrich(&found, f, &mut inv);
        }
        inv.host_ports = ports::finish(&found, f, std::mem::take(&mut inv.host_ports));
        Ok((inv, f.take_warnings()))
    }
}

/// Whether `$expand=.($levels=1)` may be used, per the service root.
fn supports_expand(root: &Value) -> bool {
    let Some(q) = root.pointer("/ProtocolFeaturesSupported/ExpandQuery") else {
        return false;
    };
    let flag = |k: &str| q.get(k).and_then(Value::as_bool) == Some(true);
    (flag("NoLinks") || flag("ExpandAll")) && flag("Levels")
}

/// The system that is the server: not a DPU, and the one that says the most
/// about itself (a DGX lists its HGX baseboard as a second system).
fn primary_system(members: &[Arc<Value>]) -> Option<Arc<Value>> {
    let score = |s: &Value| {
        ["Manufacturer", "Model", "SerialNumber", "SKU"]
            .iter()
            .filter(|k| values::text(s, k).is_some())
            .count()
    };
    let mut best: Option<(&Arc<Value>, usize)> = None;
    for s in members {
        if values::text(s, "SystemType").as_deref() == Some("DPU") {
            continue;
        }
        let sc = score(s);
        if best.is_none_or(|(_, b)| sc > b) {
            best = Some((s, sc));
        }
    }
    best.map(|(s, _)| s.clone())
}

fn first_bmc_manager(members: &[Arc<Value>]) -> Option<Arc<Value>> {
    members
        .iter()
        .find(|m| values::text(m, "ManagerType").as_deref() == Some("BMC"))
        .or_else(|| members.first())
        .cloned()
}
