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
            "{name}: {why}; e.g. {{\"mac\": \"14:18:77:0a:0b:0c\"}}, {{\"ip\": \"10.0.5.17\"}} \
             or {{\"ip\": \"2001:db8:5::17\"}}"
        ))
    };
    match (pick("mac"), pick("ip")) {
        (Some(Value::String(m)), None) => match Mac::parse(m) {
            Ok(mac) if mac.is_ethernet() => Ok(mac.to_string()),
            _ => Err(usage(format!(
                "'mac' must be like 14:18:77:0a:0b:0c, got {m:?}"
            ))),
        },
        // Canonical text (RFC 5952 for IPv6), as the lease put it in the
        // state file, whichever way the operator spelled it.
        (None, Some(Value::String(ip))) => match ip.trim().parse::<std::net::IpAddr>() {
            Ok(a) => Ok(a.to_string()),
            Err(_) => Err(usage(format!(
                "'ip' must be an IPv4 or IPv6 address, got {ip:?}"
            ))),
        },
        (None, None) => Err(usage("needs 'mac' or 'ip'".into())),
        (Some(_), Some(_)) => Err(usage("takes 'mac' or 'ip', not both".into())),
        (Some(v), None) | (None, Some(v)) => Err(usage(format!("expects a string, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(arguments: Value) -> Result<String, String> {
        key_argument("bmc-get", Some(&arguments)).map_err(|a| a.text)
    }

    #[test]
    fn an_address_of_either_family_is_keyed_in_its_canonical_text() {
        assert_eq!(key(json!({"ip": "10.0.5.17"})).unwrap(), "10.0.5.17");
        assert_eq!(
            key(json!({"ip": "2001:DB8:0005:0000:0000:0000:0000:0017"})).unwrap(),
            "2001:db8:5::17"
        );
        assert_eq!(key(json!({"ip": " fd00::1 "})).unwrap(), "fd00::1");
        assert_eq!(
            key(json!({"mac": "14:18:77:0A:0B:0C"})).unwrap(),
            "14:18:77:0a:0b:0c"
        );
    }

    #[test]
    fn a_bad_key_is_refused_naming_what_it_must_be() {
        for (arguments, expected) in [
            (
                json!({"ip": "10.0.0.300"}),
                "'ip' must be an IPv4 or IPv6 address",
            ),
            (
                json!({"ip": "fe80::1%eth0"}),
                "'ip' must be an IPv4 or IPv6 address",
            ),
            (json!({"ip": 17}), "expects a string, got 17"),
            (json!({"mac": "14:18:77"}), "'mac' must be like"),
            (json!({}), "needs 'mac' or 'ip'"),
            (
                json!({"mac": "14:18:77:0a:0b:0c", "ip": "fd00::1"}),
                "not both",
            ),
        ] {
            let e = key(arguments.clone()).unwrap_err();
            assert!(e.contains(expected), "{arguments}: {e}");
            assert!(
                e.contains("2001:db8:5::17"),
                "the usage shows an IPv6 key: {e}"
            );
        }
    }
}
