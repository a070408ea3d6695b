//! Every hook parameter, its default and its range: the one table the
//! parser (`config`), the parts' own defaults (`netbox::Options`,
//! `redfish::Limits`, `pool_report::Levels`, the placement pattern) and
//! docs/CONFIGURATION.md read. A unit test holds the document to it.
//!
//! It sits at the bottom of the layers (it imports nothing), so that every
//! part can take its defaults from here rather than write them again.

/// An integer parameter.
#[derive(Clone, Copy, Debug)]
pub struct Integer {
    /// As the configuration writes it (`redfish.port` inside a map).
    pub name: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

/// A boolean parameter.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub default: bool,
}

/// A string parameter with a default.
#[derive(Clone, Copy, Debug)]
pub struct Text {
    pub name: &'static str,
    pub default: &'static str,
}

/// A string parameter that takes one of a few words.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub name: &'static str,
    pub default: &'static str,
    pub choices: &'static [&'static str],
}

/// Rising percentages (`pool-alert-levels`).
#[derive(Clone, Copy, Debug)]
pub struct Percentages {
    pub name: &'static str,
    pub default: [u8; 3],
}

/// What a parameter without a default value means when it is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unset {
    /// The configuration is refused without it.
    Required,
    /// What it configures is off (or, for `tls-ca-file`, the system's).
    Off,
    /// An empty list.
    Empty,
    /// A map of parameters of its own (`redfish`, `netbox`): the feature
    /// is off.
    Section,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub enum Parameter {
    Integer(Integer),
    Flag(Flag),
    Text(Text),
    Choice(Choice),
    Percentages(Percentages),
    Unset(&'static str, Unset),
}

impl Parameter {
    pub fn name(&self) -> &'static str {
        match self {
            Parameter::Integer(p) => p.name,
            Parameter::Flag(p) => p.name,
            Parameter::Text(p) => p.name,
            Parameter::Choice(p) => p.name,
            Parameter::Percentages(p) => p.name,
            Parameter::Unset(name, _) => name,
        }
    }

    /// The default as docs/CONFIGURATION.md writes it; None for one
    /// required or off.
    pub fn shown_default(&self) -> Option<String> {
        match self {
            Parameter::Integer(p) => Some(p.default.to_string()),
            Parameter::Flag(p) => Some(p.default.to_string()),
            Parameter::Text(p) => Some(p.default.to_string()),
            Parameter::Choice(p) => Some(p.default.to_string()),
            Parameter::Percentages(p) => Some(format!(
                "[{}, {}, {}]",
                p.default[0], p.default[1], p.default[2]
            )),
            Parameter::Unset(_, Unset::Empty) => Some("[]".into()),
            Parameter::Unset(..) => None,
        }
    }
}

/// The keys of the map `section` ("" for the top level, "redfish",
/// "netbox"), in the table's order.
pub fn keys(section: &str) -> Vec<&'static str> {
    PARAMETERS
        .iter()
        .map(Parameter::name)
        .filter_map(|name| match name.split_once('.') {
            Some((s, key)) if s == section => Some(key),
            None if section.is_empty() => Some(name),
            _ => None,
        })
        .collect()
}

pub const WORKERS: Integer = Integer {
    name: "workers",
    default: 4,
    min: 1,
    max: 256,
};
pub const QUEUE_CAPACITY: Integer = Integer {
    name: "queue-capacity",
    default: 1024,
    min: 1,
    max: 1 << 20,
};
/// Where Debian's Kea keeps its state (owned by Kea's user `_kea`).
pub const STATE_FILE: Text = Text {
    name: "state-file",
    default: "/var/lib/kea/bmc-discovery.sqlite",
};
pub const RETRY_ATTEMPTS: Integer = Integer {
    name: "retry-attempts",
    default: 3,
    min: 1,
    max: 100,
};
pub const RETRY_BACKOFF_S: Integer = Integer {
    name: "retry-backoff-s",
    default: 30,
    min: 0,
    max: 86_400,
};
pub const RETRY_BACKOFF_MAX_S: Integer = Integer {
    name: "retry-backoff-max-s",
    default: 3600,
    min: 0,
    max: 604_800,
};
pub const RECONCILE_INTERVAL_S: Integer = Integer {
    name: "reconcile-interval-s",
    default: 600,
    min: 0,
    max: 604_800,
};
pub const POOL_ALERT_LEVELS: Percentages = Percentages {
    name: "pool-alert-levels",
    default: [80, 90, 95],
};

pub const REDFISH_PORT: Integer = Integer {
    name: "redfish.port",
    default: 443,
    min: 1,
    max: 65535,
};
pub const REDFISH_TLS_MODE: Choice = Choice {
    name: "redfish.tls-mode",
    default: "pin",
    choices: &["pin", "verify", "insecure"],
};
/// Where Debian's Kea keeps its state; the pin file's default home.
pub const REDFISH_TLS_PIN_FILE: Text = Text {
    name: "redfish.tls-pin-file",
    default: "/var/lib/kea/bmc-discovery-tls-pins.json",
};
pub const REDFISH_REQUEST_TIMEOUT_MS: Integer = Integer {
    name: "redfish.request-timeout-ms",
    default: 10_000,
    min: 100,
    max: 600_000,
};
pub const REDFISH_DEADLINE_MS: Integer = Integer {
    name: "redfish.deadline-ms",
    default: 60_000,
    min: 1000,
    max: 3_600_000,
};
pub const REDFISH_RETRIES: Integer = Integer {
    name: "redfish.retries",
    default: 2,
    min: 0,
    max: 10,
};
pub const REDFISH_PARALLEL_REQUESTS: Integer = Integer {
    name: "redfish.parallel-requests",
    default: 6,
    min: 1,
    max: 32,
};
pub const REDFISH_LOGIN_RETRY_WINDOW_S: Integer = Integer {
    name: "redfish.login-retry-window-s",
    default: 1800,
    min: 0,
    max: 86_400,
};
/// iDRAC blocks the client's address for minutes after three.
pub const REDFISH_MAX_FAILED_LOGINS: Integer = Integer {
    name: "redfish.max-failed-logins",
    default: 2,
    min: 1,
    max: 10,
};
/// Failed logins one credentials entry may have across all BMCs within
/// the window before it is suspended (redfish::credentials::guard).
pub const REDFISH_CREDENTIAL_FAILURE_BUDGET: Integer = Integer {
    name: "redfish.credential-failure-budget",
    default: 20,
    min: 1,
    max: 100_000,
};
pub const REDFISH_CREDENTIAL_FAILURE_WINDOW_S: Integer = Integer {
    name: "redfish.credential-failure-window-s",
    default: 3600,
    min: 60,
    max: 604_800,
};
pub const REDFISH_CREDENTIAL_SUSPENSION_S: Integer = Integer {
    name: "redfish.credential-suspension-s",
    default: 1800,
    min: 60,
    max: 604_800,
};
// The budgets leave every real BMC in the shared mockups at least a
// 4-fold margin (tests/redfish.rs checks it for every model).
pub const REDFISH_MAX_RESPONSE_BYTES: Integer = Integer {
    name: "redfish.max-response-bytes",
    default: 1 << 20,
    min: 65_536,
    max: 64 << 20,
};
pub const REDFISH_MAX_DISCOVERY_BYTES: Integer = Integer {
    name: "redfish.max-discovery-bytes",
    default: 4 << 20,
    min: 1 << 20,
    max: 256 << 20,
};
pub const REDFISH_MAX_REQUESTS: Integer = Integer {
    name: "redfish.max-requests",
    default: 400,
    min: 50,
    max: 10_000,
};
pub const REDFISH_MAX_COLLECTION_MEMBERS: Integer = Integer {
    name: "redfish.max-collection-members",
    default: 1000,
    min: 100,
    max: 100_000,
};
pub const REDFISH_MAX_PARSED_BYTES: Integer = Integer {
    name: "redfish.max-parsed-bytes",
    default: 16 << 20,
    min: 4 << 20,
    max: 1 << 30,
};
pub const REDFISH_REDISCOVER_AFTER_S: Integer = Integer {
    name: "redfish.rediscover-after-s",
    default: 86_400,
    min: 0,
    max: 31_536_000,
};

pub const NETBOX_ROLE: Text = Text {
    name: "netbox.role",
    default: "Server",
};
pub const NETBOX_CREATE_MISSING: Flag = Flag {
    name: "netbox.create-missing",
    default: false,
};
/// Without a rack unit, a third token is required: vendors' default names
/// (`idrac-F54P1G3`) have two and must not become site "idrac", rack
/// "F54P1G3". Case-insensitive.
pub const NETBOX_PLACEMENT_PATTERN: Text = Text {
    name: "netbox.placement-pattern",
    default: r"(?i)^(?P<site>[a-z0-9_]+)-(?P<rack>[a-z0-9_]+)(?:-ru(?P<ru>\d{1,3})(?:-(?P<ru_last>\d{1,3}))?(?:-.*)?|-.+)$",
};
pub const NETBOX_INTERFACE: Text = Text {
    name: "netbox.interface",
    default: "bmc",
};
pub const NETBOX_TAG: Text = Text {
    name: "netbox.tag",
    default: "bmc-discovery",
};
pub const NETBOX_CUSTOM_FIELDS: Choice = Choice {
    name: "netbox.custom-fields",
    default: "use",
    choices: &["off", "use", "create"],
};
pub const NETBOX_JOURNAL: Flag = Flag {
    name: "netbox.journal",
    default: true,
};
pub const NETBOX_DRY_RUN: Flag = Flag {
    name: "netbox.dry-run",
    default: false,
};
pub const NETBOX_PARALLEL_REGISTRATIONS: Integer = Integer {
    name: "netbox.parallel-registrations",
    default: 8,
    min: 1,
    max: 64,
};
/// Most requests of concurrent registrations merged into one bulk request
/// (1: each alone). NetBox costs about as much per request as per object,
/// so a burst of servers is registered in batches.
pub const NETBOX_BATCH_SIZE: Integer = Integer {
    name: "netbox.batch-size",
    default: 50,
    min: 1,
    max: 500,
};
/// How long a batch is collected at most while one of its kind is in
/// flight; a request with none in flight goes at once.
pub const NETBOX_BATCH_WINDOW_MS: Integer = Integer {
    name: "netbox.batch-window-ms",
    default: 100,
    min: 0,
    max: 5_000,
};
/// Off: a device must not pick its own site, rack and unit.
pub const NETBOX_PLACE_BY_BMC_HOSTNAME: Flag = Flag {
    name: "netbox.place-by-bmc-hostname",
    default: false,
};
/// "move": the DHCP lease proves who holds an address (and a MAC) now, so
/// one NetBox still has on another device's interface moves to this BMC.
pub const NETBOX_ADDRESS_MOVES: Choice = Choice {
    name: "netbox.address-moves",
    default: "move",
    choices: &["move", "conflict"],
};

/// "ipv4": a dual-stack BMC's device keeps its IPv4 address as `oob_ip`
/// whichever of kea-dhcp4 and kea-dhcp6 registered it first (IPv4 is what
/// most out-of-band tooling still reaches first).
pub const NETBOX_OOB_IP_FAMILY: Choice = Choice {
    name: "netbox.oob-ip-family",
    default: "ipv4",
    choices: &["ipv4", "ipv6"],
};

/// Off: LLDP is what the BMC says it heard; a server whose hostname names
/// no rack is placed by the switch it says it is cabled to only when asked.
pub const NETBOX_PLACEMENT_FROM_SWITCH: Flag = Flag {
    name: "netbox.placement-from-switch",
    default: false,
};

/// Every parameter, each map's in the order its "unknown parameter"
/// message lists them.
pub const PARAMETERS: &[Parameter] = &[
    Parameter::Integer(WORKERS),
    Parameter::Integer(QUEUE_CAPACITY),
    Parameter::Unset("subnet-ids", Unset::Empty),
    Parameter::Unset("hostname-pattern", Unset::Off),
    Parameter::Unset("vendor-class-patterns", Unset::Empty),
    Parameter::Unset("mac-ouis", Unset::Empty),
    Parameter::Unset("redfish", Unset::Section),
    Parameter::Unset("netbox", Unset::Section),
    Parameter::Text(STATE_FILE),
    Parameter::Integer(RETRY_ATTEMPTS),
    Parameter::Integer(RETRY_BACKOFF_S),
    Parameter::Integer(RETRY_BACKOFF_MAX_S),
    Parameter::Integer(RECONCILE_INTERVAL_S),
    Parameter::Unset("ansible-inventory-dir", Unset::Off),
    Parameter::Percentages(POOL_ALERT_LEVELS),
    Parameter::Unset("metrics-listen", Unset::Off),
    Parameter::Unset("redfish.credentials-file", Unset::Required),
    Parameter::Integer(REDFISH_PORT),
    Parameter::Choice(REDFISH_TLS_MODE),
    Parameter::Unset("redfish.tls-ca-file", Unset::Off),
    Parameter::Text(REDFISH_TLS_PIN_FILE),
    Parameter::Integer(REDFISH_REQUEST_TIMEOUT_MS),
    Parameter::Integer(REDFISH_DEADLINE_MS),
    Parameter::Integer(REDFISH_RETRIES),
    Parameter::Integer(REDFISH_PARALLEL_REQUESTS),
    Parameter::Integer(REDFISH_LOGIN_RETRY_WINDOW_S),
    Parameter::Integer(REDFISH_MAX_FAILED_LOGINS),
    Parameter::Integer(REDFISH_CREDENTIAL_FAILURE_BUDGET),
    Parameter::Integer(REDFISH_CREDENTIAL_FAILURE_WINDOW_S),
    Parameter::Integer(REDFISH_CREDENTIAL_SUSPENSION_S),
    Parameter::Integer(REDFISH_MAX_RESPONSE_BYTES),
    Parameter::Integer(REDFISH_MAX_DISCOVERY_BYTES),
    Parameter::Integer(REDFISH_MAX_REQUESTS),
    Parameter::Integer(REDFISH_MAX_COLLECTION_MEMBERS),
    Parameter::Integer(REDFISH_MAX_PARSED_BYTES),
    Parameter::Integer(REDFISH_REDISCOVER_AFTER_S),
    Parameter::Unset("netbox.url", Unset::Required),
    Parameter::Unset("netbox.token-file", Unset::Required),
    Parameter::Text(NETBOX_ROLE),
    Parameter::Flag(NETBOX_CREATE_MISSING),
    Parameter::Text(NETBOX_PLACEMENT_PATTERN),
    Parameter::Text(NETBOX_INTERFACE),
    Parameter::Text(NETBOX_TAG),
    Parameter::Choice(NETBOX_CUSTOM_FIELDS),
    Parameter::Flag(NETBOX_JOURNAL),
    Parameter::Flag(NETBOX_DRY_RUN),
    Parameter::Integer(NETBOX_PARALLEL_REGISTRATIONS),
    Parameter::Integer(NETBOX_BATCH_SIZE),
    Parameter::Integer(NETBOX_BATCH_WINDOW_MS),
    Parameter::Flag(NETBOX_PLACE_BY_BMC_HOSTNAME),
    Parameter::Choice(NETBOX_ADDRESS_MOVES),
    Parameter::Choice(NETBOX_OOB_IP_FAMILY),
    Parameter::Flag(NETBOX_PLACEMENT_FROM_SWITCH),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_their_ranges_and_choices() {
        for p in PARAMETERS {
            match p {
                Parameter::Integer(i) => {
                    assert!((i.min..=i.max).contains(&i.default), "{}", i.name)
                }
                Parameter::Choice(c) => assert!(c.choices.contains(&c.default), "{}", c.name),
                Parameter::Percentages(l) => {
                    let [w, h, c] = l.default;
                    assert!(0 < w && w < h && h < c && c <= 100, "{}", l.name)
                }
                _ => {}
            }
        }
        let mut names: Vec<&str> = PARAMETERS.iter().map(Parameter::name).collect();
        names.sort_unstable();
        let all = names.len();
        names.dedup();
        assert_eq!(names.len(), all, "a parameter is in the table twice");
    }

    #[test]
    fn each_map_lists_its_own_keys() {
        assert_eq!(keys("")[..3], ["workers", "queue-capacity", "subnet-ids"]);
        assert!(keys("").contains(&"netbox") && !keys("").contains(&"port"));
        assert_eq!(keys("redfish")[..2], ["credentials-file", "port"]);
        assert_eq!(keys("netbox").len(), 17);
    }

    /// The parameter tables of docs/CONFIGURATION.md say what this table
    /// says: the same parameters, defaults, ranges and choices.
    #[test]
    fn the_configuration_document_agrees() {
        let doc = include_str!("../../docs/CONFIGURATION.md");
        let header = "| parameter | type | default | range / form | meaning |";
        let mut in_table = false;
        let mut documented = Vec::new();
        for line in doc.lines() {
            if line == header {
                in_table = true;
                continue;
            }
            if !line.starts_with('|') {
                in_table = false;
            }
            if !in_table || line.starts_with("| ---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_start_matches("| ").split(" | ").collect();
            let (name, default, range) = (ticked(cells[0])[0].clone(), cells[2], cells[3]);
            let p = PARAMETERS
                .iter()
                .find(|p| p.name() == name)
                .unwrap_or_else(|| panic!("docs list {name}, which the table does not"));
            let shown = ticked(default);
            match p.shown_default() {
                Some(want) if default == "see below" => assert!(
                    doc.contains(&format!("`{want}`")),
                    "{name}: the default is to be shown below the table, as `{want}`"
                ),
                Some(want) => assert_eq!(shown.first(), Some(&want), "{name}: default"),
                None if matches!(p, Parameter::Unset(_, Unset::Required)) => {
                    assert_eq!(default, "**required**", "{name}")
                }
                None => assert!(shown.is_empty(), "{name}: has no default, docs: {default}"),
            }
            match p {
                Parameter::Integer(i) => assert_eq!(
                    range.split([',', ' ']).next(),
                    Some(format!("{}..={}", i.min, i.max).as_str()),
                    "{name}: range"
                ),
                Parameter::Choice(c) => assert_eq!(ticked(range), c.choices, "{name}: choices"),
                _ => {}
            }
            documented.push(name);
        }
        for p in PARAMETERS {
            match p {
                Parameter::Unset(name, Unset::Section) => assert!(
                    doc.contains(&format!("### `{name}`")),
                    "docs have no section for {name}"
                ),
                _ => assert!(
                    documented.iter().any(|d| d == p.name()),
                    "docs/CONFIGURATION.md does not list {}",
                    p.name()
                ),
            }
        }
    }

    /// The `code` spans of a table cell, quotes taken off.
    fn ticked(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(|s| s.trim_matches('"').to_string())
            .collect()
    }
}
