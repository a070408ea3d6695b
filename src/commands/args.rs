//! Reading a command's arguments: each reader names the command, the
//! argument and what it got, and answers with Kea's error when it is wrong.

use serde_json::{Map, Value};

use super::Answer;
use crate::mac::Mac;

/// A command that takes no arguments got none.
pub fn no_arguments(name: &str, arguments: Option<&Value>) -> Result<(), Answer> {
    match arguments {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) if m.is_empty() => Ok(()),
        Some(other) => Err(Answer::error(format!(
            "{name} takes no arguments, got {other}"
        ))),
    }
}

/// The arguments as a map whose keys are all in `known`.
pub fn arguments_map<'a>(
    name: &str,
    arguments: Option<&'a Value>,
    known: &[&str],
) -> Result<Option<&'a Map<String, Value>>, Answer> {
    let map = match arguments {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Answer::error(format!(
                "{name}: arguments must be a map, got {other}"
            )))
        }
    };
    if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Answer::error(format!(
            "{name}: unknown argument '{k}'; arguments: {}",
            known.join(", ")
        )));
    }
    Ok(Some(map))
}

/// The optional string argument `key` of command `name`.
pub fn optional_string<'a>(
    name: &str,
    map: Option<&'a Map<String, Value>>,
    key: &str,
) -> Result<Option<&'a str>, Answer> {
    match map.and_then(|m| m.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(Answer::error(format!(
            "{name}: '{key}' must be a string, got {v}"
        ))),
    }
}

/// The boolean argument `key` of command `name`: false when absent.
pub fn flag(name: &str, arguments: Option<&Value>, key: &str) -> Result<bool, Answer> {
    match arguments.and_then(|a| a.get(key)) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Answer::error(format!(
            "{name}: '{key}' must be true or false, got {other}"
        ))),
    }
}

/// The `mac` or `ip` argument (exactly one), as the state file keys it.
pub fn key_argument(name: &str, arguments: Option<&Value>) -> Result<String, Answer> {
    key_argument_and(name, arguments, &[])
}

/// As `key_argument`, with other arguments of the command (`extra`)
/// allowed beside the key.
pub fn key_argument_and(
    name: &str,
    arguments: Option<&Value>,
    extra: &[&str],
) -> Result<String, Answer> {
    let known: Vec<&str> = ["mac", "ip"].iter().chain(extra).copied().collect();
    let map = arguments_map(name, arguments, &known)?;
    let pick = |k: &str| map.and_then(|m| m.get(k));
    let usage = |why: String| {
        Answer::error(format!(
            "{name}: {why}; e.g. {{\"mac\": \"14:18:77:0a:0b:0c\"}} or {{\"ip\": \"10.0.5.17\"}}"
        ))
    };
    match (pick("mac"), pick("ip")) {
        (Some(Value::String(m)), None) => match Mac::parse(m) {
            Ok(mac) if mac.is_ethernet() => Ok(mac.to_string()),
            _ => Err(usage(format!(
                "'mac' must be like 14:18:77:0a:0b:0c, got {m:?}"
            ))),
        },
        (None, Some(Value::String(ip))) => match ip.parse::<std::net::Ipv4Addr>() {
            Ok(a) => Ok(a.to_string()),
            Err(_) => Err(usage(format!("'ip' must be an IPv4 address, got {ip:?}"))),
        },
        (None, None) => Err(usage("needs 'mac' or 'ip'".into())),
        (Some(_), Some(_)) => Err(usage("takes 'mac' or 'ip', not both".into())),
        (Some(v), None) | (None, Some(v)) => Err(usage(format!("expects a string, got {v}"))),
    }
}
