//! The hook's `parameters` map: typed, validated once in `load()`.
//!
//! Every error names the parameter, the value and what would be accepted,
//! because Kea prints exactly this line when it refuses the configuration.

pub mod defaults;

use std::fmt;

use serde_json::{Map, Value};

use defaults::{Choice, Flag, Integer};

/// Validated hook parameters. Defaults are in the table of [`defaults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Worker threads that process accepted leases.
    pub workers: usize,
    /// Capacity of the queue between packet threads and workers.
    pub queue_capacity: usize,
    /// Subnets opted in by id, in addition to those whose `user-context`
    /// says `"bmc-discovery": true`.
    pub subnet_ids: Vec<u32>,
    /// Optional: accept leases whose hostname matches this regex.
    pub hostname_pattern: Option<String>,
    /// Optional: accept leases whose DHCP option 60 matches one of these.
    pub vendor_class_patterns: Vec<String>,
    /// Optional: accept leases whose MAC starts with one of these OUIs.
    pub mac_ouis: Vec<[u8; 3]>,
    /// Redfish discovery; None = off (workers only log each BMC lease).
    pub redfish: Option<RedfishConfig>,
    /// NetBox registration of what discovery found; None = off.
    pub netbox: Option<NetBoxConfig>,
    /// The SQLite file of every BMC's state (used with `redfish`).
    pub state_file: String,
    /// Attempts per BMC before it is dead.
    pub retry_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_s: u64,
    /// The longest wait between attempts.
    pub retry_backoff_max_s: u64,
    /// How often Kea's lease database is reconciled with the state file
    /// (besides at start-up, after queue drops and on `bmc-reconcile`);
    /// 0 = never on a timer.
    pub reconcile_interval_s: u64,
    /// Where the Ansible inventory files go; None = not written.
    pub ansible_inventory_dir: Option<String>,
    /// Pool utilisation (percent) at which `bmc-pool-report` warns, calls
    /// it high and critical.
    pub pool_alert_levels: crate::pool_report::Levels,
    /// Where Prometheus scrapes the hook's metrics; None = not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The `netbox` map: where discovered servers are registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetBoxConfig {
    pub url: String,
    /// File holding the API token (v1 or v2) on its first line.
    pub token_file: String,
    /// Device role of registered servers.
    pub role: String,
    /// Create sites and racks the hostnames name but NetBox lacks (true),
    /// or refuse those registrations with the reason (false).
    pub create_missing: bool,
    /// Regex with named groups site/rack/ru/ru_last, on the BMC hostname;
    /// compiled here, once.
    pub placement_pattern: crate::placement::PlacementPattern,
    /// Name of the BMC interface on the device.
    pub interface: String,
    /// The tag marking what the hook owns.
    pub tag: String,
    /// "off", "use" (set the hook's custom fields where they exist) or
    /// "create" (create them too).
    pub custom_fields: crate::netbox::CustomFields,
    /// A journal entry on the device per registration that changed it.
    pub journal: bool,
    /// Plan and log the changes, write nothing.
    pub dry_run: bool,
    /// Place servers by the BMC's self-reported HostName when the lease
    /// has no hostname (off: a device must not pick its own rack).
    pub place_by_bmc_hostname: bool,
    /// A server whose hostname names no rack takes the site and rack of
    /// the switch its host ports are cabled to (by LLDP).
    pub placement_from_switch: bool,
    /// Registrations talking to NetBox at once; the others wait, oldest
    /// lease first.
    pub parallel_registrations: usize,
    /// Most requests of concurrent registrations merged into one bulk
    /// request (1: each alone).
    pub batch_size: usize,
    /// How long a batch is collected at most while one of its kind is in
    /// flight.
    pub batch_window_ms: u64,
    /// What happens to the leased address or the BMC's MAC when NetBox
    /// has it on another device's interface: moved, or a conflict.
    pub address_moves: crate::netbox::AddressMoves,
    /// Which of a dual-stack BMC's addresses is its device's `oob_ip`.
    pub oob_ip_family: crate::netbox::OobIpFamily,
}

/// The `redfish` map: how workers reach and trust BMCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedfishConfig {
    /// The credentials file (JSON list of username/password entries).
    pub credentials_file: String,
    pub port: u16,
    pub tls_mode: TlsMode,
    /// With `verify`: the CA bundle; None = the system trust store.
    pub tls_ca_file: Option<String>,
    /// With `pin`: where certificate fingerprints are kept.
    pub tls_pin_file: String,
    pub request_timeout_ms: u64,
    pub deadline_ms: u64,
    pub retries: u32,
    pub parallel_requests: usize,
    /// A credential that failed on a BMC is not tried there again for this
    /// long, so that retries never lock the account.
    pub login_retry_window_s: u64,
    /// Failed logins one BMC may see per window, over all usernames.
    pub max_failed_logins: usize,
    /// Failed logins one credentials entry may have across all BMCs within
    /// `credential_failure_window_s` before it is suspended for
    /// `credential_suspension_s` (redfish::credentials::guard).
    pub credential_failure_budget: u32,
    pub credential_failure_window_s: u64,
    pub credential_suspension_s: u64,
    pub max_response_bytes: u64,
    // Budgets of one discovery (see redfish::Limits); exceeding one fails
    // it with class budget-*.
    pub max_discovery_bytes: u64,
    pub max_requests: u32,
    pub max_collection_members: usize,
    pub max_parsed_bytes: u64,
    /// Renewals of a BMC discovered less than this long ago at the same
    /// address are not discovered again.
    pub rediscover_after_s: u64,
}

/// How BMC certificates are trusted (see `redfish::tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Pin,
    Verify,
    Insecure,
}

impl Default for TlsMode {
    fn default() -> TlsMode {
        TlsMode::parse(defaults::REDFISH_TLS_MODE.default).expect("the default is a mode")
    }
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Pin => "pin",
            TlsMode::Verify => "verify",
            TlsMode::Insecure => "insecure",
        }
    }

    /// The `redfish.tls-mode` parameter's value (`defaults::REDFISH_TLS_MODE`).
    pub fn parse(text: &str) -> Option<TlsMode> {
        [TlsMode::Pin, TlsMode::Verify, TlsMode::Insecure]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: defaults::WORKERS.default as usize,
            queue_capacity: defaults::QUEUE_CAPACITY.default as usize,
            subnet_ids: Vec::new(),
            hostname_pattern: None,
            vendor_class_patterns: Vec::new(),
            mac_ouis: Vec::new(),
            redfish: None,
            netbox: None,
            state_file: defaults::STATE_FILE.default.into(),
            retry_attempts: defaults::RETRY_ATTEMPTS.default as u32,
            retry_backoff_s: defaults::RETRY_BACKOFF_S.default,
            retry_backoff_max_s: defaults::RETRY_BACKOFF_MAX_S.default,
            reconcile_interval_s: defaults::RECONCILE_INTERVAL_S.default,
            ansible_inventory_dir: None,
            pool_alert_levels: crate::pool_report::Levels::default(),
            metrics_listen: None,
        }
    }
}

/// A parameter Kea's configuration got wrong. `Display` is the line Kea logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The parameter at fault, as written in the configuration.
    pub parameter: String,
    /// What is wrong with it and what would be accepted.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter '{}' {}", self.parameter, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(parameter: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        parameter: parameter.to_string(),
        problem: problem.into(),
    }
}

/// Shows a value as the operator wrote it, bounded so that a huge value
/// cannot flood the log.
fn shown(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

impl Config {
    /// Parses Kea's `parameters` JSON (the map, or `null` when absent).
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| err("parameters", format!("is not valid JSON: {e}")))?;
        match value {
            Value::Null => Ok(Config::default()),
            Value::Object(map) => Config::from_map(&map),
            other => Err(err(
                "parameters",
                format!("must be a map, got {}", shown(&other)),
            )),
        }
    }

    fn from_map(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for entry in entries(map, "") {
            let (name, _, value) = entry?;
            let key = name.as_str();
            match key {
                "workers" => config.workers = int(&defaults::WORKERS, value)? as usize,
                "queue-capacity" => {
                    config.queue_capacity = int(&defaults::QUEUE_CAPACITY, value)? as usize
                }
                "subnet-ids" => {
                    config.subnet_ids = list(key, value)?
                        .iter()
                        .map(|v| integer(key, v, 1, u32::MAX as u64 - 1).map(|id| id as u32))
                        .collect::<Result<_, _>>()?;
                    config.subnet_ids.sort_unstable();
                    config.subnet_ids.dedup();
                }
                "hostname-pattern" => config.hostname_pattern = Some(text(key, value)?),
                "vendor-class-patterns" => {
                    config.vendor_class_patterns = list(key, value)?
                        .iter()
                        .map(|v| text(key, v))
                        .collect::<Result<_, _>>()?
                }
                "mac-ouis" => {
                    config.mac_ouis = list(key, value)?
                        .iter()
                        .map(|v| oui(key, v))
                        .collect::<Result<_, _>>()?
                }
                "redfish" => config.redfish = Some(redfish(value)?),
                "netbox" => config.netbox = Some(netbox(value)?),
                "state-file" => config.state_file = text(key, value)?,
                "retry-attempts" => {
                    config.retry_attempts = int(&defaults::RETRY_ATTEMPTS, value)? as u32
                }
                "retry-backoff-s" => {
                    config.retry_backoff_s = int(&defaults::RETRY_BACKOFF_S, value)?
                }
                "retry-backoff-max-s" => {
                    config.retry_backoff_max_s = int(&defaults::RETRY_BACKOFF_MAX_S, value)?
                }
                "reconcile-interval-s" => {
                    config.reconcile_interval_s = int(&defaults::RECONCILE_INTERVAL_S, value)?
                }
                "ansible-inventory-dir" => config.ansible_inventory_dir = Some(text(key, value)?),
                "pool-alert-levels" => config.pool_alert_levels = alert_levels(key, value)?,
                "metrics-listen" => {
                    config.metrics_listen = Some(
                        text(key, value)?
                            .parse::<std::net::SocketAddr>()
                            .ok()
                            .filter(|a| a.port() != 0)
                            .ok_or_else(|| {
                                err(
                                    key,
                                    format!(
                                        "must be an address and port like \"127.0.0.1:9547\", \
                                         got {}",
                                        shown(value)
                                    ),
                                )
                            })?,
                    )
                }
                _ => {
                    return Err(err(
                        key,
                        format!(
                            "is unknown; known parameters: {}",
                            defaults::keys("").join(", ")
                        ),
                    ))
                }
            }
        }
        if config.retry_backoff_max_s < config.retry_backoff_s {
            return Err(err(
                "retry-backoff-max-s",
                format!(
                    "must be at least retry-backoff-s ({}), got {}",
                    config.retry_backoff_s, config.retry_backoff_max_s
                ),
            ));
        }
        Ok(config)
    }
}

/// The entries of a parameter map in name order, so that with several
/// mistakes the reported one is stable: (the name as the configuration
/// writes it, `redfish.port` inside a nested map; the key; the value). A
/// null value is an error in its place in that order.
fn entries<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
) -> Vec<Result<(String, &'a str, &'a Value), ConfigError>> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &map[k] {
                Value::Null => Err(err(&name, "needs a value, got null")),
                v => Ok((name, k.as_str(), v)),
            }
        })
        .collect()
}

/// `[warning, high, critical]`: rising percentages.
fn alert_levels(key: &str, value: &Value) -> Result<crate::pool_report::Levels, ConfigError> {
    let wrong = || {
        err(
            key,
            format!(
                "must be three rising percentages [warning, high, critical] within 1..=100, \
                 e.g. [80, 90, 95], got {}",
                shown(value)
            ),
        )
    };
    let levels: Vec<u8> = value
        .as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|p| (1..=100).contains(p))
                .map(|p| p as u8)
                .ok_or_else(wrong)
        })
        .collect::<Result<_, _>>()?;
    match levels[..] {
        [warning, high, critical] if warning < high && high < critical => {
            Ok(crate::pool_report::Levels {
                warning,
                high,
                critical,
            })
        }
        _ => Err(wrong()),
    }
}

/// A nested parameter map (`redfish`, `netbox`).
fn submap<'a>(name: &str, value: &'a Value) -> Result<&'a Map<String, Value>, ConfigError> {
    value
        .as_object()
        .ok_or_else(|| err(name, format!("must be a map, got {}", shown(value))))
}

fn netbox(value: &Value) -> Result<NetBoxConfig, ConfigError> {
    let map = submap("netbox", value)?;
    let mut c = NetBoxConfig {
        url: String::new(),
        token_file: String::new(),
        role: defaults::NETBOX_ROLE.default.into(),
        create_missing: defaults::NETBOX_CREATE_MISSING.default,
        placement_pattern: crate::placement::PlacementPattern::default_pattern(),
        interface: defaults::NETBOX_INTERFACE.default.into(),
        tag: defaults::NETBOX_TAG.default.into(),
        custom_fields: crate::netbox::CustomFields::default(),
        journal: defaults::NETBOX_JOURNAL.default,
        dry_run: defaults::NETBOX_DRY_RUN.default,
        parallel_registrations: defaults::NETBOX_PARALLEL_REGISTRATIONS.default as usize,
        batch_size: defaults::NETBOX_BATCH_SIZE.default as usize,
        batch_window_ms: defaults::NETBOX_BATCH_WINDOW_MS.default,
        place_by_bmc_hostname: defaults::NETBOX_PLACE_BY_BMC_HOSTNAME.default,
        address_moves: crate::netbox::AddressMoves::default(),
        oob_ip_family: crate::netbox::OobIpFamily::default(),
        placement_from_switch: defaults::NETBOX_PLACEMENT_FROM_SWITCH.default,
    };
    for entry in entries(map, "netbox") {
        let (name, key, value) = entry?;
        let k = name.as_str();
        match key {
            "url" => {
                let u = text(k, value)?;
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(err(
                        k,
                        format!("must start with http:// or https://, got {}", shown(value)),
                    ));
                }
                c.url = u;
            }
            "token-file" => c.token_file = text(k, value)?,
            "role" => c.role = text(k, value)?,
            "create-missing" => c.create_missing = flag(&defaults::NETBOX_CREATE_MISSING, value)?,
            "journal" => c.journal = flag(&defaults::NETBOX_JOURNAL, value)?,
            "dry-run" => c.dry_run = flag(&defaults::NETBOX_DRY_RUN, value)?,
            "place-by-bmc-hostname" => {
                c.place_by_bmc_hostname = flag(&defaults::NETBOX_PLACE_BY_BMC_HOSTNAME, value)?
            }
            "placement-from-switch" => {
                c.placement_from_switch = flag(&defaults::NETBOX_PLACEMENT_FROM_SWITCH, value)?
            }
            "parallel-registrations" => {
                c.parallel_registrations =
                    int(&defaults::NETBOX_PARALLEL_REGISTRATIONS, value)? as usize
            }
            "batch-size" => c.batch_size = int(&defaults::NETBOX_BATCH_SIZE, value)? as usize,
            "batch-window-ms" => c.batch_window_ms = int(&defaults::NETBOX_BATCH_WINDOW_MS, value)?,
            "custom-fields" => {
                c.custom_fields = choice(
                    &defaults::NETBOX_CUSTOM_FIELDS,
                    value,
                    crate::netbox::CustomFields::parse,
                )?
            }
            "address-moves" => {
                c.address_moves = choice(
                    &defaults::NETBOX_ADDRESS_MOVES,
                    value,
                    crate::netbox::AddressMoves::parse,
                )?
            }
            "oob-ip-family" => {
                c.oob_ip_family = choice(
                    &defaults::NETBOX_OOB_IP_FAMILY,
                    value,
                    crate::netbox::OobIpFamily::parse,
                )?
            }
            "placement-pattern" => {
                let p = text(k, value)?;
                c.placement_pattern =
                    crate::placement::PlacementPattern::new(&p).map_err(|e| err(k, e))?;
            }
            "interface" => c.interface = text(k, value)?,
            "tag" => c.tag = text(k, value)?,
            _ => {
                return Err(err(
                    k,
                    format!(
                        "is unknown; known netbox parameters: {}",
                        defaults::keys("netbox").join(", ")
                    ),
                ))
            }
        }
    }
    for (field, key) in [(&c.url, "netbox.url"), (&c.token_file, "netbox.token-file")] {
        if field.is_empty() {
            return Err(err(key, "is required to register in NetBox"));
        }
    }
    Ok(c)
}

fn redfish(value: &Value) -> Result<RedfishConfig, ConfigError> {
    let map = submap("redfish", value)?;
    let mut credentials_file = None;
    let mut c = RedfishConfig {
        credentials_file: String::new(),
        port: defaults::REDFISH_PORT.default as u16,
        tls_mode: TlsMode::default(),
        tls_ca_file: None,
        tls_pin_file: defaults::REDFISH_TLS_PIN_FILE.default.into(),
        request_timeout_ms: defaults::REDFISH_REQUEST_TIMEOUT_MS.default,
        deadline_ms: defaults::REDFISH_DEADLINE_MS.default,
        retries: defaults::REDFISH_RETRIES.default as u32,
        parallel_requests: defaults::REDFISH_PARALLEL_REQUESTS.default as usize,
        login_retry_window_s: defaults::REDFISH_LOGIN_RETRY_WINDOW_S.default,
        max_failed_logins: defaults::REDFISH_MAX_FAILED_LOGINS.default as usize,
        credential_failure_budget: defaults::REDFISH_CREDENTIAL_FAILURE_BUDGET.default as u32,
        credential_failure_window_s: defaults::REDFISH_CREDENTIAL_FAILURE_WINDOW_S.default,
        credential_suspension_s: defaults::REDFISH_CREDENTIAL_SUSPENSION_S.default,
        max_response_bytes: defaults::REDFISH_MAX_RESPONSE_BYTES.default,
        max_discovery_bytes: defaults::REDFISH_MAX_DISCOVERY_BYTES.default,
        max_requests: defaults::REDFISH_MAX_REQUESTS.default as u32,
        max_collection_members: defaults::REDFISH_MAX_COLLECTION_MEMBERS.default as usize,
        max_parsed_bytes: defaults::REDFISH_MAX_PARSED_BYTES.default,
        rediscover_after_s: defaults::REDFISH_REDISCOVER_AFTER_S.default,
    };
    for entry in entries(map, "redfish") {
        let (name, key, value) = entry?;
        let k = name.as_str();
        match key {
            "credentials-file" => credentials_file = Some(text(k, value)?),
            "port" => c.port = int(&defaults::REDFISH_PORT, value)? as u16,
            "tls-mode" => c.tls_mode = choice(&defaults::REDFISH_TLS_MODE, value, TlsMode::parse)?,
            "tls-ca-file" => c.tls_ca_file = Some(text(k, value)?),
            "tls-pin-file" => c.tls_pin_file = text(k, value)?,
            "request-timeout-ms" => {
                c.request_timeout_ms = int(&defaults::REDFISH_REQUEST_TIMEOUT_MS, value)?
            }
            "deadline-ms" => c.deadline_ms = int(&defaults::REDFISH_DEADLINE_MS, value)?,
            "retries" => c.retries = int(&defaults::REDFISH_RETRIES, value)? as u32,
            "parallel-requests" => {
                c.parallel_requests = int(&defaults::REDFISH_PARALLEL_REQUESTS, value)? as usize
            }
            "login-retry-window-s" => {
                c.login_retry_window_s = int(&defaults::REDFISH_LOGIN_RETRY_WINDOW_S, value)?
            }
            "max-failed-logins" => {
                c.max_failed_logins = int(&defaults::REDFISH_MAX_FAILED_LOGINS, value)? as usize
            }
            "credential-failure-budget" => {
                c.credential_failure_budget =
                    int(&defaults::REDFISH_CREDENTIAL_FAILURE_BUDGET, value)? as u32
            }
            "credential-failure-window-s" => {
                c.credential_failure_window_s =
                    int(&defaults::REDFISH_CREDENTIAL_FAILURE_WINDOW_S, value)?
            }
            "credential-suspension-s" => {
                c.credential_suspension_s = int(&defaults::REDFISH_CREDENTIAL_SUSPENSION_S, value)?
            }
            "rediscover-after-s" => {
                c.rediscover_after_s = int(&defaults::REDFISH_REDISCOVER_AFTER_S, value)?
            }
            "max-response-bytes" => {
                c.max_response_bytes = int(&defaults::REDFISH_MAX_RESPONSE_BYTES, value)?
            }
            "max-discovery-bytes" => {
                c.max_discovery_bytes = int(&defaults::REDFISH_MAX_DISCOVERY_BYTES, value)?
            }
            "max-requests" => c.max_requests = int(&defaults::REDFISH_MAX_REQUESTS, value)? as u32,
            "max-collection-members" => {
                c.max_collection_members =
                    int(&defaults::REDFISH_MAX_COLLECTION_MEMBERS, value)? as usize
            }
            "max-parsed-bytes" => {
                c.max_parsed_bytes = int(&defaults::REDFISH_MAX_PARSED_BYTES, value)?
            }
            _ => {
                return Err(err(
                    k,
                    format!(
                        "is unknown; known redfish parameters: {}",
                        defaults::keys("redfish").join(", ")
                    ),
                ))
            }
        }
    }
    c.credentials_file = credentials_file.ok_or_else(|| {
        err(
            "redfish.credentials-file",
            "is required to discover BMCs: a JSON file of {\"username\", \"password\"} entries",
        )
    })?;
    if c.tls_ca_file.is_some() && c.tls_mode != TlsMode::Verify {
        return Err(err(
            "redfish.tls-ca-file",
            "applies only with \"tls-mode\": \"verify\"",
        ));
    }
    if c.max_response_bytes > c.max_discovery_bytes {
        return Err(err(
            "redfish.max-response-bytes",
            format!(
                "must not exceed redfish.max-discovery-bytes ({}), got {}",
                c.max_discovery_bytes, c.max_response_bytes
            ),
        ));
    }
    if c.request_timeout_ms > c.deadline_ms {
        return Err(err(
            "redfish.request-timeout-ms",
            format!(
                "must not exceed redfish.deadline-ms ({}), got {}",
                c.deadline_ms, c.request_timeout_ms
            ),
        ));
    }
    Ok(c)
}

/// The integer parameter `p`, within its range.
fn int(p: &Integer, value: &Value) -> Result<u64, ConfigError> {
    integer(p.name, value, p.min, p.max)
}

fn flag(p: &Flag, value: &Value) -> Result<bool, ConfigError> {
    value.as_bool().ok_or_else(|| {
        err(
            p.name,
            format!("must be true or false, got {}", shown(value)),
        )
    })
}

/// One of the words of `p`, as the value `parse` makes of it.
fn choice<T>(p: &Choice, value: &Value, parse: fn(&str) -> Option<T>) -> Result<T, ConfigError> {
    let wrong = || {
        let quoted: Vec<String> = p.choices.iter().map(|c| format!("{c:?}")).collect();
        let (last, rest) = quoted.split_last().expect("a choice has words");
        err(
            p.name,
            format!(
                "must be {} or {last}, got {}",
                rest.join(", "),
                shown(value)
            ),
        )
    };
    let text = text(p.name, value)?;
    Some(text.as_str())
        .filter(|v| p.choices.contains(v))
        .and_then(parse)
        .ok_or_else(wrong)
}

fn integer(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ if value.is_number() => Err(err(
            key,
            format!("must be {min}..={max}, got {}", shown(value)),
        )),
        _ => Err(err(
            key,
            format!("must be an integer {min}..={max}, got {}", shown(value)),
        )),
    }
}

fn text(key: &str, value: &Value) -> Result<String, ConfigError> {
    match value.as_str() {
        Some("") => Err(err(key, "must not be empty")),
        Some(s) => Ok(s.to_string()),
        None => Err(err(key, format!("must be a string, got {}", shown(value)))),
    }
}

fn list<'a>(key: &str, value: &'a Value) -> Result<&'a Vec<Value>, ConfigError> {
    value
        .as_array()
        .ok_or_else(|| err(key, format!("must be a list, got {}", shown(value))))
}

/// Accepts `aa:bb:cc`, `aa-bb-cc` and `aabbcc`, any case.
fn oui(key: &str, value: &Value) -> Result<[u8; 3], ConfigError> {
    let s = text(key, value)?;
    crate::mac::parse_oui(&s).map_err(|_| {
        err(
            key,
            format!("entries must be MAC prefixes like \"14:18:77\", got {s:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> String {
        Config::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn absent_parameters_give_defaults() {
        assert_eq!(Config::from_json("null").unwrap(), Config::default());
        assert_eq!(Config::from_json("{}").unwrap(), Config::default());
    }

    #[test]
    fn every_parameter_parses() {
        let c = Config::from_json(
            r#"{"workers": 8, "queue-capacity": 16, "subnet-ids": [3, 1, 3],
                "hostname-pattern": "-(idrac|ilo)$", "vendor-class-patterns": ["^iDRAC"],
                "mac-ouis": ["14:18:77", "B4-7A-F1", "aabbcc"]}"#,
        )
        .unwrap();
        assert_eq!(c.workers, 8);
        assert_eq!(c.queue_capacity, 16);
        assert_eq!(c.subnet_ids, vec![1, 3]);
        assert_eq!(c.hostname_pattern.as_deref(), Some("-(idrac|ilo)$"));
        assert_eq!(c.vendor_class_patterns, vec!["^iDRAC".to_string()]);
        assert_eq!(
            c.mac_ouis,
            vec![[0x14, 0x18, 0x77], [0xb4, 0x7a, 0xf1], [0xaa, 0xbb, 0xcc]]
        );
    }

    #[test]
    fn errors_name_parameter_value_and_fix() {
        assert_eq!(
            error_of(r#"{"workers": 0}"#),
            "parameter 'workers' must be 1..=256, got 0"
        );
        assert_eq!(
            error_of(r#"{"workers": "four"}"#),
            "parameter 'workers' must be an integer 1..=256, got \"four\""
        );
        assert_eq!(
            error_of(r#"{"workers": -1}"#),
            "parameter 'workers' must be 1..=256, got -1"
        );
        assert_eq!(
            error_of(r#"{"queue-capacity": null}"#),
            "parameter 'queue-capacity' needs a value, got null"
        );
        assert!(error_of(r#"{"wrkers": 2}"#)
            .starts_with("parameter 'wrkers' is unknown; known parameters: workers,"));
        assert_eq!(
            error_of(r#"{"subnet-ids": 5}"#),
            "parameter 'subnet-ids' must be a list, got 5"
        );
        assert_eq!(
            error_of(r#"{"subnet-ids": [0]}"#),
            "parameter 'subnet-ids' must be 1..=4294967294, got 0"
        );
        assert_eq!(
            error_of(r#"{"mac-ouis": ["14:18"]}"#),
            "parameter 'mac-ouis' entries must be MAC prefixes like \"14:18:77\", got \"14:18\""
        );
        assert_eq!(
            error_of(r#"{"hostname-pattern": ""}"#),
            "parameter 'hostname-pattern' must not be empty"
        );
        assert_eq!(
            error_of("[1]"),
            "parameter 'parameters' must be a map, got [1]"
        );
    }

    #[test]
    fn metrics_listen_is_an_address_and_port() {
        let c = Config::from_json(r#"{"metrics-listen": "127.0.0.1:9547"}"#).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9547".parse().unwrap()));
        let c = Config::from_json(r#"{"metrics-listen": "[::1]:9547"}"#).unwrap();
        assert_eq!(c.metrics_listen.unwrap().port(), 9547);
        for bad in [
            r#""localhost:9547""#,
            r#""127.0.0.1""#,
            r#""127.0.0.1:0""#,
            "9547",
        ] {
            let e = error_of(&format!(r#"{{"metrics-listen": {bad}}}"#));
            assert!(e.starts_with("parameter 'metrics-listen' must be"), "{e}");
        }
    }

    #[test]
    fn pool_alert_levels_rise_within_percent() {
        let c = Config::from_json(r#"{"pool-alert-levels": [70, 85, 100]}"#).unwrap();
        assert_eq!(
            (
                c.pool_alert_levels.warning,
                c.pool_alert_levels.high,
                c.pool_alert_levels.critical
            ),
            (70, 85, 100)
        );
        for bad in [
            "[90, 80, 95]",
            "[80, 90]",
            "[0, 90, 95]",
            "[80, 90, 101]",
            "80",
            "[80, 80, 95]",
        ] {
            assert_eq!(
                error_of(&format!(r#"{{"pool-alert-levels": {bad}}}"#)),
                format!(
                    "parameter 'pool-alert-levels' must be three rising percentages \
                     [warning, high, critical] within 1..=100, e.g. [80, 90, 95], got {}",
                    serde_json::from_str::<Value>(bad).unwrap()
                )
            );
        }
    }

    #[test]
    fn redfish_map_parses_and_names_its_keys_in_errors() {
        let c = Config::from_json(
            r#"{"redfish": {"credentials-file": "/etc/kea/bmc.json", "tls-mode": "verify",
                "tls-ca-file": "/etc/ssl/bmc-ca.pem", "port": 8443}}"#,
        )
        .unwrap();
        let r = c.redfish.unwrap();
        assert_eq!(r.port, 8443);
        assert_eq!(r.tls_mode, TlsMode::Verify);
        assert_eq!(r.tls_pin_file, defaults::REDFISH_TLS_PIN_FILE.default);
        assert_eq!(
            error_of(r#"{"redfish": {}}"#),
            "parameter 'redfish.credentials-file' is required to discover BMCs: a JSON file of {\"username\", \"password\"} entries"
        );
        assert_eq!(
            error_of(r#"{"redfish": {"credentials-file": "f", "tls-mode": "none"}}"#),
            "parameter 'redfish.tls-mode' must be \"pin\", \"verify\" or \"insecure\", got \"none\""
        );
        assert_eq!(
            error_of(r#"{"redfish": {"credentials-file": "f", "tls-ca-file": "ca.pem"}}"#),
            "parameter 'redfish.tls-ca-file' applies only with \"tls-mode\": \"verify\""
        );
        assert_eq!(
            error_of(r#"{"redfish": {"credentials-file": "f", "parallel-requests": 0}}"#),
            "parameter 'redfish.parallel-requests' must be 1..=32, got 0"
        );
        assert!(error_of(r#"{"redfish": {"credentials-file": "f", "password": "x"}}"#)
            .starts_with("parameter 'redfish.password' is unknown; known redfish parameters: credentials-file,"));
    }

    #[test]
    fn credential_failure_budget_has_defaults_and_bounds() {
        let r = Config::from_json(r#"{"redfish": {"credentials-file": "f"}}"#)
            .unwrap()
            .redfish
            .unwrap();
        assert_eq!(
            (
                r.credential_failure_budget,
                r.credential_failure_window_s,
                r.credential_suspension_s
            ),
            (20, 3600, 1800)
        );
        for (key, value, range) in [
            ("credential-failure-budget", "0", "1..=100000"),
            ("credential-failure-window-s", "59", "60..=604800"),
            ("credential-suspension-s", "604801", "60..=604800"),
        ] {
            assert_eq!(
                error_of(&format!(
                    r#"{{"redfish": {{"credentials-file": "f", "{key}": {value}}}}}"#
                )),
                format!("parameter 'redfish.{key}' must be {range}, got {value}")
            );
        }
    }

    #[test]
    fn redfish_budgets_parse_with_bounds() {
        let r = Config::from_json(r#"{"redfish": {"credentials-file": "f"}}"#)
            .unwrap()
            .redfish
            .unwrap();
        assert_eq!(
            (r.max_response_bytes, r.max_discovery_bytes, r.max_requests),
            (1 << 20, 4 << 20, 400)
        );
        assert_eq!(
            (r.max_collection_members, r.max_parsed_bytes),
            (1000, 16 << 20)
        );
        let r = Config::from_json(
            r#"{"redfish": {"credentials-file": "f", "max-requests": 1000,
                "max-discovery-bytes": 16777216, "max-collection-members": 5000,
                "max-parsed-bytes": 67108864, "max-response-bytes": 2097152}}"#,
        )
        .unwrap()
        .redfish
        .unwrap();
        assert_eq!(
            (
                r.max_requests,
                r.max_discovery_bytes,
                r.max_collection_members
            ),
            (1000, 16 << 20, 5000)
        );
        assert_eq!(
            (r.max_parsed_bytes, r.max_response_bytes),
            (64 << 20, 2 << 20)
        );
        assert_eq!(
            error_of(r#"{"redfish": {"credentials-file": "f", "max-requests": 10}}"#),
            "parameter 'redfish.max-requests' must be 50..=10000, got 10"
        );
        assert_eq!(
            error_of(
                r#"{"redfish": {"credentials-file": "f", "max-response-bytes": 8388608,
                    "max-discovery-bytes": 4194304}}"#
            ),
            "parameter 'redfish.max-response-bytes' must not exceed \
             redfish.max-discovery-bytes (4194304), got 8388608"
        );
    }

    #[test]
    fn netbox_map_parses_and_names_its_keys_in_errors() {
        let c = Config::from_json(
            r#"{"netbox": {"url": "https://netbox.example.net", "token-file": "/etc/kea/nb",
                "create-missing": true, "role": "BMC host"}}"#,
        )
        .unwrap();
        let n = c.netbox.unwrap();
        assert!(n.create_missing);
        assert_eq!(n.role, "BMC host");
        assert_eq!(
            n.placement_pattern.as_str(),
            crate::placement::DEFAULT_PATTERN
        );
        assert_eq!(n.custom_fields, crate::netbox::CustomFields::Use);
        assert!(!n.place_by_bmc_hostname, "off unless asked for");
        let c = Config::from_json(
            r#"{"netbox": {"url": "https://n", "token-file": "t", "place-by-bmc-hostname": true}}"#,
        )
        .unwrap();
        assert!(c.netbox.unwrap().place_by_bmc_hostname);
        assert_eq!(n.address_moves, crate::netbox::AddressMoves::Move);
        let c = Config::from_json(
            r#"{"netbox": {"url": "https://n", "token-file": "t", "address-moves": "conflict"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.netbox.unwrap().address_moves,
            crate::netbox::AddressMoves::Conflict
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "address-moves": "steal"}}"#
            ),
            "parameter 'netbox.address-moves' must be \"move\" or \"conflict\", got \"steal\""
        );
        let n = Config::from_json(r#"{"netbox": {"url": "https://n", "token-file": "t"}}"#)
            .unwrap()
            .netbox
            .unwrap();
        assert_eq!(n.oob_ip_family, crate::netbox::OobIpFamily::Ipv4);
        let c = Config::from_json(
            r#"{"netbox": {"url": "https://n", "token-file": "t", "oob-ip-family": "ipv6"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.netbox.unwrap().oob_ip_family,
            crate::netbox::OobIpFamily::Ipv6
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "oob-ip-family": "v6"}}"#
            ),
            "parameter 'netbox.oob-ip-family' must be \"ipv4\" or \"ipv6\", got \"v6\""
        );
        assert!(!n.placement_from_switch, "off unless asked for");
        let c = Config::from_json(
            r#"{"netbox": {"url": "https://n", "token-file": "t", "placement-from-switch": true}}"#,
        )
        .unwrap();
        assert!(c.netbox.unwrap().placement_from_switch);
        let e = Config::from_json(
            r#"{"netbox": {"url": "https://n", "token-file": "t", "placement-from-switch": "yes"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("netbox.placement-from-switch"), "{e}");
        for (text, want) in [
            ("off", crate::netbox::CustomFields::Off),
            ("create", crate::netbox::CustomFields::Create),
        ] {
            let json = format!(
                r#"{{"netbox": {{"url": "http://n", "token-file": "t", "custom-fields": "{text}"}}}}"#
            );
            let c = Config::from_json(&json).unwrap();
            assert_eq!(c.netbox.unwrap().custom_fields, want, "{text}");
        }
        assert_eq!(
            error_of(r#"{"netbox": {"token-file": "t"}}"#),
            "parameter 'netbox.url' is required to register in NetBox"
        );
        assert_eq!(
            error_of(r#"{"netbox": {"url": "netbox:8000", "token-file": "t"}}"#),
            "parameter 'netbox.url' must start with http:// or https://, got \"netbox:8000\""
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "create-missing": "yes"}}"#
            ),
            "parameter 'netbox.create-missing' must be true or false, got \"yes\""
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "custom-fields": "yes"}}"#
            ),
            "parameter 'netbox.custom-fields' must be \"off\", \"use\" or \"create\", got \"yes\""
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "parallel-registrations": 0}}"#
            ),
            "parameter 'netbox.parallel-registrations' must be 1..=64, got 0"
        );
        assert_eq!(
            error_of(r#"{"netbox": {"url": "http://n", "token-file": "t", "batch-size": 0}}"#),
            "parameter 'netbox.batch-size' must be 1..=500, got 0"
        );
        assert_eq!(
            error_of(
                r#"{"netbox": {"url": "http://n", "token-file": "t", "batch-window-ms": 9000}}"#
            ),
            "parameter 'netbox.batch-window-ms' must be 0..=5000, got 9000"
        );
        assert!(error_of(
            r#"{"netbox": {"url": "http://n", "token-file": "t", "placement-pattern": "^(?P<room>x)"}}"#
        )
        .starts_with("parameter 'netbox.placement-pattern' names a group 'room'"));
        assert!(
            error_of(r#"{"netbox": {"url": "http://n", "token-file": "t", "token": "x"}}"#)
                .starts_with("parameter 'netbox.token' is unknown; known netbox parameters: url,")
        );
    }

    #[test]
    fn every_choice_in_the_table_parses() {
        for mode in defaults::REDFISH_TLS_MODE.choices {
            assert_eq!(TlsMode::parse(mode).map(TlsMode::as_str), Some(*mode));
        }
        for moves in defaults::NETBOX_ADDRESS_MOVES.choices {
            assert!(
                crate::netbox::AddressMoves::parse(moves).is_some(),
                "{moves}"
            );
        }
        for family in defaults::NETBOX_OOB_IP_FAMILY.choices {
            assert!(
                crate::netbox::OobIpFamily::parse(family).is_some(),
                "{family}"
            );
        }
        for fields in defaults::NETBOX_CUSTOM_FIELDS.choices {
            assert!(
                crate::netbox::CustomFields::parse(fields).is_some(),
                "{fields}"
            );
        }
        assert_eq!(TlsMode::default(), TlsMode::Pin);
    }

    /// Each parameter given its table default parses to what leaving it
    /// out gives: the parser knows every key of the table, and the
    /// defaults the code starts from are the table's.
    #[test]
    fn the_table_defaults_are_the_defaults() {
        use defaults::{Parameter, Unset};
        let mut top = Map::new();
        let mut sections: [(&str, Map<String, Value>); 2] =
            [("redfish", Map::new()), ("netbox", Map::new())];
        for p in defaults::PARAMETERS {
            let value = match p {
                Parameter::Integer(i) => Value::from(i.default),
                Parameter::Flag(f) => Value::from(f.default),
                Parameter::Text(t) => Value::from(t.default),
                Parameter::Choice(c) => Value::from(c.default),
                Parameter::Percentages(l) => Value::from(l.default.to_vec()),
                Parameter::Unset(_, Unset::Empty) => Value::Array(Vec::new()),
                Parameter::Unset(..) => continue,
            };
            let (section, key) = p.name().split_once('.').unwrap_or(("", p.name()));
            match sections.iter_mut().find(|(s, _)| *s == section) {
                Some((_, map)) => map.insert(key.into(), value),
                None => top.insert(key.into(), value),
            };
        }
        let required = [
            ("redfish", "credentials-file", "f"),
            ("netbox", "url", "http://n"),
            ("netbox", "token-file", "t"),
        ];
        let mut bare = Map::new();
        for (section, map) in &mut sections {
            let mut minimal = Map::new();
            for (_, k, v) in required.iter().filter(|(s, ..)| s == section) {
                map.insert(k.to_string(), Value::from(*v));
                minimal.insert(k.to_string(), Value::from(*v));
            }
            top.insert(section.to_string(), Value::Object(map.clone()));
            bare.insert(section.to_string(), Value::Object(minimal));
        }
        let explicit = Config::from_map(&top).unwrap();
        assert_eq!(explicit, Config::from_map(&bare).unwrap());
        let Config {
            redfish, netbox, ..
        } = explicit.clone();
        assert_eq!(
            Config {
                redfish: None,
                netbox: None,
                ..explicit
            },
            Config::default()
        );
        assert!(redfish.is_some() && netbox.is_some());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(500);
        let msg = error_of(&format!(r#"{{"workers": "{long}"}}"#));
        assert!(msg.len() < 150, "{msg}");
        assert!(msg.ends_with("...") || msg.ends_with("...\""), "{msg}");
    }
}
