//! Kea control commands, answered in Kea's shape:
//! `{"result": 0|1|2|3, "text": "...", "arguments": {...}}`
//! (success / error / unsupported / empty, as Kea's `createAnswer`).

use serde_json::{json, Map, Value};

use crate::hook::Hook;
use crate::state::{State, Store};

/// Every command the hook registers with Kea.
pub const COMMANDS: &[&str] = &[
    "bmc-status",
    "bmc-list",
    "bmc-get",
    "bmc-retry",
    "bmc-discover",
    "bmc-reconcile",
    "bmc-inventory",
    "bmc-pool-report",
];

/// The most BMCs one `bmc-list` returns (its `limit` argument may ask for
/// fewer).
const LIST_MAX: u64 = 10_000;

/// Kea's result codes.
pub mod result {
    pub const SUCCESS: i64 = 0;
    pub const ERROR: i64 = 1;
    pub const UNSUPPORTED: i64 = 2;
    pub const EMPTY: i64 = 3;
}

/// An answer in Kea's shape.
pub fn answer(result: i64, text: impl Into<String>, arguments: Option<Value>) -> Value {
    let mut map = Map::new();
    map.insert("result".into(), json!(result));
    map.insert("text".into(), json!(text.into()));
    if let Some(arguments) = arguments {
        map.insert("arguments".into(), arguments);
    }
    Value::Object(map)
}

/// Handles one request (`{"command": ..., "arguments": ...}` as Kea passes
/// it). `hook` is `None` if the hook is not loaded.
pub fn handle(request: &[u8], hook: Option<&Hook>) -> Value {
    let request: Value = match serde_json::from_slice(request) {
        Ok(v) => v,
        Err(e) => {
            return answer(
                result::ERROR,
                format!("request is not valid JSON: {e}"),
                None,
            )
        }
    };
    let name = request.get("command").and_then(Value::as_str).unwrap_or("");
    let arguments = request.get("arguments");
    let Some(hook) = hook else {
        return answer(
            result::ERROR,
            format!("{name}: {} is not loaded", crate::HOOK_NAME),
            None,
        );
    };
    match name {
        "bmc-status" => status(hook, arguments),
        "bmc-list" => with_store(hook, name, |s| list(s, arguments)),
        "bmc-get" => with_store(hook, name, |s| get(s, arguments)),
        "bmc-retry" => with_store(hook, name, |s| retry(hook, s, arguments)),
        "bmc-discover" => with_store(hook, name, |s| discover(hook, s, arguments)),
        "bmc-reconcile" => with_store(hook, name, |_| reconcile(hook, arguments)),
        "bmc-inventory" => with_store(hook, name, |s| inventory(s, arguments)),
        "bmc-pool-report" => pool_report(hook, arguments),
        other => answer(
            result::UNSUPPORTED,
            format!(
                "'{other}' is not a command of {}; commands: {}",
                crate::HOOK_NAME,
                COMMANDS.join(", ")
            ),
            None,
        ),
    }
}

fn no_arguments(name: &str, arguments: Option<&Value>) -> Result<(), Value> {
    match arguments {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) if m.is_empty() => Ok(()),
        Some(other) => Err(answer(
            result::ERROR,
            format!("{name} takes no arguments, got {other}"),
            None,
        )),
    }
}

fn status(hook: &Hook, arguments: Option<&Value>) -> Value {
    if let Err(e) = no_arguments("bmc-status", arguments) {
        return e;
    }
    let mut status = hook.status();
    let services = hook.services();
    if let Some(store) = &services.store {
        status["bmcs"] = match store.counts() {
            Ok(c) => json!(c),
            Err(e) => json!({ "error": e }),
        };
    }
    {
        if let Some(m) = &services.metrics {
            status["latency"] = json!({
                "lease-to-done": m.lease_to_done.snapshot(),
                "discovery": m.discovery.snapshot(),
                "netbox": m.netbox.snapshot(),
            });
            status["failures"] = json!(m.failures());
            status["attempts-succeeded"] = json!(hook.stats().counters().succeeded);
            status["netbox"] = if let Some(nb) = &services.netbox {
                let (reads, writes) = nb.requests();
                json!({
                    "configured": true,
                    "reachable": m.netbox(),
                    "registrations": nb.load(),
                    "requests": { "reads": reads, "writes": writes },
                })
            } else {
                json!({ "configured": false })
            };
        }
    }
    let text = format!(
        "{} {}: {} workers, queue {}/{}, {} events accepted",
        crate::HOOK_NAME,
        crate::VERSION,
        status["workers"],
        status["queue"]["depth"],
        status["queue"]["capacity"],
        status["events"]["accepted"],
    );
    answer(result::SUCCESS, text, Some(status))
}

/// Runs a command that needs the state store (`redfish` configured).
fn with_store(hook: &Hook, name: &str, f: impl FnOnce(&Store) -> Value) -> Value {
    match &hook.services().store {
        Some(store) => f(store),
        None => answer(
            result::ERROR,
            format!(
                "{name}: no BMC state: discovery is off (configure the hook's 'redfish' parameters)"
            ),
            None,
        ),
    }
}

/// The arguments as a map whose keys are all in `known`.
fn arguments_map<'a>(
    name: &str,
    arguments: Option<&'a Value>,
    known: &[&str],
) -> Result<Option<&'a Map<String, Value>>, Value> {
    let map = match arguments {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(answer(
                result::ERROR,
                format!("{name}: arguments must be a map, got {other}"),
                None,
            ))
        }
    };
    if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(answer(
            result::ERROR,
            format!(
                "{name}: unknown argument '{k}'; arguments: {}",
                known.join(", ")
            ),
            None,
        ));
    }
    Ok(Some(map))
}

/// The optional string argument `key` of command `name`.
fn optional_string<'a>(
    name: &str,
    map: Option<&'a Map<String, Value>>,
    key: &str,
) -> Result<Option<&'a str>, Value> {
    match map.and_then(|m| m.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(answer(
            result::ERROR,
            format!("{name}: '{key}' must be a string, got {v}"),
            None,
        )),
    }
}

fn list(store: &Store, arguments: Option<&Value>) -> Value {
    let map = match arguments_map("bmc-list", arguments, &["state", "site", "limit"]) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let arg = |k: &str| map.and_then(|m| m.get(k));
    let state = match arg("state") {
        None => None,
        Some(v) => match v.as_str().and_then(State::parse) {
            Some(s) => Some(s),
            None => {
                let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
                return answer(
                    result::ERROR,
                    format!(
                        "bmc-list: 'state' must be one of {}, got {v}",
                        names.join(", ")
                    ),
                    None,
                );
            }
        },
    };
    let site = match optional_string("bmc-list", map, "site") {
        Ok(s) => s,
        Err(e) => return e,
    };
    let limit = match arg("limit") {
        None => LIST_MAX,
        Some(v) => match v.as_u64().filter(|n| (1..=LIST_MAX).contains(n)) {
            Some(n) => n,
            None => {
                return answer(
                    result::ERROR,
                    format!("bmc-list: 'limit' must be 1..={LIST_MAX}, got {v}"),
                    None,
                )
            }
        },
    };
    match store.list(state, site, limit as usize) {
        Ok(bmcs) if bmcs.is_empty() => {
            answer(result::EMPTY, "no BMCs match", Some(json!({ "bmcs": [] })))
        }
        Ok(bmcs) => answer(
            result::SUCCESS,
            format!("{} BMCs", bmcs.len()),
            Some(json!({ "bmcs": bmcs })),
        ),
        Err(e) => state_error("bmc-list", &e),
    }
}

/// The boolean argument `key` of command `name`: false when absent.
fn flag(name: &str, arguments: Option<&Value>, key: &str) -> Result<bool, Value> {
    match arguments.and_then(|a| a.get(key)) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(answer(
            result::ERROR,
            format!("{name}: '{key}' must be true or false, got {other}"),
            None,
        )),
    }
}

/// The `mac` or `ip` argument (exactly one).
fn key_argument(name: &str, arguments: Option<&Value>) -> Result<String, Value> {
    key_argument_and(name, arguments, &[])
}

/// As `key_argument`, with other arguments of the command (`extra`)
/// allowed beside the key.
fn key_argument_and(
    name: &str,
    arguments: Option<&Value>,
    extra: &[&str],
) -> Result<String, Value> {
    let known: Vec<&str> = ["mac", "ip"].iter().chain(extra).copied().collect();
    let map = arguments_map(name, arguments, &known)?;
    let pick = |k: &str| map.and_then(|m| m.get(k));
    let usage = |why: String| {
        answer(
            result::ERROR,
            format!("{name}: {why}; e.g. {{\"mac\": \"14:18:77:0a:0b:0c\"}} or {{\"ip\": \"10.0.5.17\"}}"),
            None,
        )
    };
    match (pick("mac"), pick("ip")) {
        (Some(Value::String(m)), None) => {
            let ok = m.split(':').count() == 6
                && m.split(':')
                    .all(|h| h.len() == 2 && u8::from_str_radix(h, 16).is_ok());
            if ok {
                Ok(m.to_ascii_lowercase())
            } else {
                Err(usage(format!(
                    "'mac' must be like 14:18:77:0a:0b:0c, got {m:?}"
                )))
            }
        }
        (None, Some(Value::String(ip))) => match ip.parse::<std::net::Ipv4Addr>() {
            Ok(a) => Ok(a.to_string()),
            Err(_) => Err(usage(format!("'ip' must be an IPv4 address, got {ip:?}"))),
        },
        (None, None) => Err(usage("needs 'mac' or 'ip'".into())),
        (Some(_), Some(_)) => Err(usage("takes 'mac' or 'ip', not both".into())),
        (Some(v), None) | (None, Some(v)) => Err(usage(format!("expects a string, got {v}"))),
    }
}

fn get(store: &Store, arguments: Option<&Value>) -> Value {
    let key = match key_argument("bmc-get", arguments) {
        Ok(k) => k,
        Err(e) => return e,
    };
    match store.get(&key) {
        Ok(Some(b)) => answer(
            result::SUCCESS,
            format!("BMC {} at {}: {}", b.mac, b.ip, b.state.as_str()),
            Some(json!(b)),
        ),
        Ok(None) => answer(result::EMPTY, format!("no BMC {key} is known"), None),
        Err(e) => state_error("bmc-get", &e),
    }
}

/// `bmc-retry`: a failed or dead BMC tried again now, attempts reset;
/// with `"forget-tls-pin": true` its pinned certificate is forgotten first
/// (the BMC or its certificate was replaced on purpose).
fn retry(hook: &Hook, store: &Store, arguments: Option<&Value>) -> Value {
    let key = match key_argument_and("bmc-retry", arguments, &["forget-tls-pin"]) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let forget = match flag("bmc-retry", arguments, "forget-tls-pin") {
        Ok(f) => f,
        Err(e) => return e,
    };
    let bmc = match store.get(&key) {
        Ok(Some(b)) => b,
        Ok(None) => return answer(result::EMPTY, format!("no BMC {key} is known"), None),
        Err(e) => return state_error("bmc-retry", &e),
    };
    if !matches!(bmc.state, State::Failed | State::Dead) {
        return answer(
            result::ERROR,
            format!(
                "bmc-retry: BMC {} is {}, not failed or dead; bmc-discover runs it again anyway",
                bmc.mac,
                bmc.state.as_str()
            ),
            None,
        );
    }
    let pin_note = if forget {
        match forget_tls_pin(hook, &bmc.mac) {
            Ok(note) => note,
            Err(e) => return e,
        }
    } else {
        ""
    };
    match store.retry(&bmc.mac) {
        Ok(_) => answer(
            result::SUCCESS,
            format!(
                "BMC {} at {} queued; attempts reset to 0 (it starts within a second when the \
                 queue has room){pin_note}",
                bmc.mac, bmc.ip
            ),
            Some(json!({ "mac": bmc.mac, "ip": bmc.ip, "tls-pin-forgotten": forget })),
        ),
        Err(e) => state_error("bmc-retry", &e),
    }
}

/// Forgets the TLS pin of the BMC with `mac`, for `bmc-retry`: what to
/// add to its answer, or the error answer.
fn forget_tls_pin(hook: &Hook, mac: &str) -> Result<&'static str, Value> {
    let forgotten = hook
        .services()
        .pins
        .as_ref()
        .map_or(Ok(None), |pins| pins.forget(mac).map(Some));
    match forgotten {
        Ok(Some(true)) => Ok("; its pinned TLS certificate forgotten: the next one is pinned"),
        Ok(Some(false)) => Ok("; it had no pinned TLS certificate"),
        Ok(None) => Err(answer(
            result::ERROR,
            "bmc-retry: 'forget-tls-pin' needs redfish.tls-mode \"pin\"; nothing changed"
                .to_string(),
            None,
        )),
        Err(e) => Err(answer(
            result::ERROR,
            format!(
                "bmc-retry: the pin is forgotten but the pin file could not be written: {e}; \
                 not queued"
            ),
            None,
        )),
    }
}

/// `bmc-discover`: discover (and register) a known BMC now, whatever its
/// state.
fn discover(hook: &Hook, store: &Store, arguments: Option<&Value>) -> Value {
    let key = match key_argument("bmc-discover", arguments) {
        Ok(k) => k,
        Err(e) => return e,
    };
    match store.get(&key) {
        Ok(Some(b)) => queue_now(hook, "bmc-discover", &b),
        Ok(None) => answer(
            result::EMPTY,
            format!("no BMC {key} is known; it is discovered when it takes a lease"),
            None,
        ),
        Err(e) => state_error("bmc-discover", &e),
    }
}

/// The state file failed under command `name`.
fn state_error(name: &str, e: &str) -> Value {
    answer(result::ERROR, format!("{name}: state file: {e}"), None)
}

/// `bmc-inventory`: the Ansible inventory (discovered BMCs that are not
/// dead), as `ansible-inventory --list` prints it; `site` narrows it.
fn inventory(store: &Store, arguments: Option<&Value>) -> Value {
    let map = match arguments_map("bmc-inventory", arguments, &["site"]) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let site = match optional_string("bmc-inventory", map, "site") {
        Ok(s) => s,
        Err(e) => return e,
    };
    let bmcs = match store.list(None, site, usize::MAX >> 1) {
        Ok(b) => b,
        Err(e) => return state_error("bmc-inventory", &e),
    };
    let cabinets = crate::ansible::cabinets(&bmcs);
    let hosts: usize = cabinets.values().map(Vec::len).sum();
    let text = format!("{hosts} BMCs in {} cabinets", cabinets.len());
    let result = if hosts == 0 {
        result::EMPTY
    } else {
        result::SUCCESS
    };
    answer(result, text, Some(crate::ansible::json(&cabinets)))
}

/// `bmc-reconcile`: walk Kea's lease database now and queue every BMC
/// with an active lease that is not registered or is due; answers with
/// what was found (waits up to 10 s for the state file).
fn reconcile(hook: &Hook, arguments: Option<&Value>) -> Value {
    if let Err(e) = no_arguments("bmc-reconcile", arguments) {
        return e;
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let walked = match hook.reconcile(Some(tx)) {
        Ok(n) => n,
        Err(e) => return answer(result::ERROR, format!("bmc-reconcile: {e}"), None),
    };
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(Ok(r)) => {
            let mut args = json!(r);
            args["active-leases"] = json!(walked);
            answer(
                result::SUCCESS,
                format!(
                    "{walked} active leases in Kea's lease database, {} of BMCs: {} queued, {} up \
                     to date, {} in progress, {} failed (waiting), {} dead",
                    r.leases, r.queued, r.up_to_date, r.in_progress, r.failed, r.dead
                ),
                Some(args),
            )
        }
        Ok(Err(e)) => state_error("bmc-reconcile", &e),
        Err(_) => answer(
            result::SUCCESS,
            format!(
                "{walked} active leases handed to reconciliation; the state file is busy, see \
                 bmc-status in a moment"
            ),
            Some(json!({ "active-leases": walked })),
        ),
    }
}

/// `bmc-pool-report`: utilisation of the BMC subnets' pools from Kea's
/// configuration and lease database, with alert levels and
/// recommendations. Arguments: `subnet-id` (one subnet, opted in or not),
/// `all` (every subnet, not only the opted-in ones).
fn pool_report(hook: &Hook, arguments: Option<&Value>) -> Value {
    const NAME: &str = "bmc-pool-report";
    let map = match arguments_map(NAME, arguments, &["subnet-id", "all"]) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let subnet_id = match map.and_then(|m| m.get("subnet-id")) {
        None => None,
        Some(v) => match v.as_u64().and_then(|id| u32::try_from(id).ok()) {
            Some(id) if id > 0 => Some(id),
            _ => {
                return answer(
                    result::ERROR,
                    format!("{NAME}: 'subnet-id' must be a subnet id (1..=4294967294), got {v}"),
                    None,
                )
            }
        },
    };
    let all = match flag(NAME, arguments, "all") {
        Ok(f) => f,
        Err(e) => return e,
    };
    let report = match hook.pool_report(subnet_id, all, true) {
        Ok(r) => r,
        Err(e) => return answer(result::ERROR, format!("{NAME}: {e}"), None),
    };
    if report.subnets.is_empty() {
        return answer(
            result::EMPTY,
            "no subnet is opted in; 'all': true reports every subnet",
            Some(json!(report)),
        );
    }
    let alerts: Vec<String> = report
        .alerts
        .iter()
        .filter(|(level, n)| **level != crate::pool_report::Level::Ok && **n > 0)
        .map(|(level, n)| format!("{n} {}", level.as_str()))
        .collect();
    let fullest = report
        .subnets
        .iter()
        .max_by(|a, b| a.utilisation_percent.total_cmp(&b.utilisation_percent));
    let n = report.subnets.len();
    let mut text = format!("{n} {}", if n == 1 { "subnet" } else { "subnets" });
    if let Some(f) = fullest {
        text.push_str(&format!(
            ", fullest: subnet {} ({}) at {:.1} %",
            f.subnet_id, f.subnet, f.utilisation_percent
        ));
    }
    text.push_str(&if alerts.is_empty() {
        "; no pool alert".to_string()
    } else {
        format!("; alerts: {}", alerts.join(", "))
    });
    let recommendations: usize = report.subnets.iter().map(|s| s.recommendations.len()).sum();
    if recommendations > 0 {
        text.push_str(&format!("; {recommendations} recommendations"));
    }
    answer(result::SUCCESS, text, Some(json!(report)))
}

fn queue_now(hook: &Hook, name: &str, bmc: &crate::state::Bmc) -> Value {
    let Some(ev) = bmc.forced_event() else {
        return answer(
            result::ERROR,
            format!("{name}: the state of {} is unreadable", bmc.mac),
            None,
        );
    };
    match hook.submit(&ev) {
        Ok(()) => answer(
            result::SUCCESS,
            format!("BMC {} at {} queued", bmc.mac, bmc.ip),
            Some(json!({ "mac": bmc.mac, "ip": bmc.ip })),
        ),
        Err(why) => answer(
            result::ERROR,
            format!("{name}: BMC {} not queued: {why}", bmc.mac),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::intake::filter::Filter;
    use crate::work::pipeline::LogPipeline;
    use crate::work::Services;
    use std::sync::Arc;

    fn hook() -> Hook {
        let config = Config::from_json(r#"{"workers": 2, "queue-capacity": 8}"#).unwrap();
        let filter = Filter::new(&config).unwrap();
        Hook::start(config, filter, Arc::new(LogPipeline), Services::default()).unwrap()
    }

    #[test]
    fn status_answers_in_kea_shape() {
        let rt = hook();
        let a = handle(br#"{"command": "bmc-status"}"#, Some(&rt));
        assert_eq!(a["result"], 0);
        assert_eq!(a["arguments"]["workers"], 2);
        assert_eq!(a["arguments"]["queue"]["capacity"], 8);
        assert_eq!(a["arguments"]["events"]["seen"], 0);
        assert!(
            a["text"].as_str().unwrap().contains("2 workers, queue 0/8"),
            "{a}"
        );
        rt.shutdown();
    }

    #[test]
    fn bad_requests_get_useful_errors() {
        let rt = hook();
        let a = handle(
            br#"{"command": "bmc-status", "arguments": {"x": 1}}"#,
            Some(&rt),
        );
        assert_eq!(a["result"], 1);
        assert_eq!(a["text"], "bmc-status takes no arguments, got {\"x\":1}");
        let a = handle(br#"{"command": "bmc-nope"}"#, Some(&rt));
        assert_eq!(a["result"], 2);
        assert!(handle(b"{", Some(&rt))["text"]
            .as_str()
            .unwrap()
            .starts_with("request is not valid JSON"));
        rt.shutdown();
        assert_eq!(handle(br#"{"command": "bmc-status"}"#, None)["result"], 1);
    }
}
