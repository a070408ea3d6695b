//! The hook's `parameters` map: typed, validated once in `load()`.
//!
//! Every error names the parameter, the value and what would be accepted,
//! because Kea prints exactly this line when it refuses the configuration.

use std::fmt;

use serde_json::{Map, Value};

/// Validated hook parameters. Defaults are in [`Config::default`].
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 4,
            queue_capacity: 1024,
            subnet_ids: Vec::new(),
            hostname_pattern: None,
            vendor_class_patterns: Vec::new(),
            mac_ouis: Vec::new(),
        }
    }
}

/// Every parameter the hook knows, for the "unknown parameter" message.
pub const KNOWN: &[&str] = &[
    "workers",
    "queue-capacity",
    "subnet-ids",
    "hostname-pattern",
    "vendor-class-patterns",
    "mac-ouis",
];

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
        // Sorted, so that with several mistakes the reported one is stable.
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let value = &map[key];
            if value.is_null() {
                return Err(err(key, "needs a value, got null"));
            }
            match key.as_str() {
                "workers" => config.workers = integer(key, value, 1, 256)? as usize,
                "queue-capacity" => {
                    config.queue_capacity = integer(key, value, 1, 1 << 20)? as usize
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
                _ => {
                    return Err(err(
                        key,
                        format!("is unknown; known parameters: {}", KNOWN.join(", ")),
                    ))
                }
            }
        }
        Ok(config)
    }
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
    let hex: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    let bad = || {
        err(
            key,
            format!("entries must be MAC prefixes like \"14:18:77\", got {s:?}"),
        )
    };
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 3];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
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
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(500);
        let msg = error_of(&format!(r#"{{"workers": "{long}"}}"#));
        assert!(msg.len() < 150, "{msg}");
        assert!(msg.ends_with("...") || msg.ends_with("...\""), "{msg}");
    }
}
