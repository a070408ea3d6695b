//! Kea control commands, answered in Kea's shape:
//! `{"result": 0|1|2|3, "text": "...", "arguments": {...}}`
//! (success / error / unsupported / empty, as Kea's `createAnswer`).
//!
//! A handler returns [`Reply`]: `Ok` with its answer, or `Err` with the
//! answer that stopped it (a bad argument, the state file failing), so that
//! every step can use `?`. Argument readers are in `args.rs`; `bmc-status`
//! in `status.rs`; the commands on the state file in `bmcs.rs`; the pool
//! report in `pools.rs`; `bmc-credential-lift` in `credentials.rs`.

mod args;
mod bmcs;
mod credentials;
mod pools;
mod status;

use serde_json::{json, Map, Value};

use crate::hook::Hook;
use crate::state::Store;

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
    "bmc-credential-lift",
];

/// Kea's result codes.
pub mod result {
    pub const SUCCESS: i64 = 0;
    pub const ERROR: i64 = 1;
    pub const UNSUPPORTED: i64 = 2;
    pub const EMPTY: i64 = 3;
}

/// An answer in Kea's shape, with its result code.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub result: i64,
    pub text: String,
    pub arguments: Option<Value>,
}

/// What a handler returns: its answer, or the one that stopped it.
pub type Reply = Result<Answer, Answer>;

impl Answer {
    pub fn new(result: i64, text: impl Into<String>, arguments: Option<Value>) -> Answer {
        Answer {
            result,
            text: text.into(),
            arguments,
        }
    }

    pub fn success(text: impl Into<String>, arguments: Value) -> Answer {
        Answer::new(result::SUCCESS, text, Some(arguments))
    }

    /// Nothing matched (Kea's "empty"), with what there is to show.
    pub fn empty(text: impl Into<String>, arguments: Option<Value>) -> Answer {
        Answer::new(result::EMPTY, text, arguments)
    }

    pub fn error(text: impl Into<String>) -> Answer {
        Answer::new(result::ERROR, text, None)
    }

    /// The answer as Kea's JSON.
    pub fn to_json(&self) -> Value {
        answer(self.result, self.text.clone(), self.arguments.clone())
    }
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

/// The state file failed under command `name`.
fn state_error<E: std::fmt::Display>(name: &str) -> impl Fn(E) -> Answer + '_ {
    move |e| Answer::error(format!("{name}: state file: {e}"))
}

/// Handles one request (`{"command": ..., "arguments": ...}` as Kea passes
/// it). `hook` is `None` if the hook is not loaded.
pub fn handle(request: &[u8], hook: Option<&Hook>) -> Value {
    dispatch(request, hook).unwrap_or_else(|a| a).to_json()
}

fn dispatch(request: &[u8], hook: Option<&Hook>) -> Reply {
    let request: Value = serde_json::from_slice(request)
        .map_err(|e| Answer::error(format!("request is not valid JSON: {e}")))?;
    let name = request.get("command").and_then(Value::as_str).unwrap_or("");
    let arguments = request.get("arguments");
    let hook =
        hook.ok_or_else(|| Answer::error(format!("{name}: {} is not loaded", crate::HOOK_NAME)))?;
    match name {
        "bmc-status" => status::status(hook, arguments),
        "bmc-list" => bmcs::list(store(hook, name)?, arguments),
        "bmc-get" => bmcs::get(store(hook, name)?, arguments),
        "bmc-retry" => bmcs::retry(hook, store(hook, name)?, arguments),
        "bmc-discover" => bmcs::discover(hook, store(hook, name)?, arguments),
        "bmc-reconcile" => {
            store(hook, name)?;
            bmcs::reconcile(hook, arguments)
        }
        "bmc-inventory" => bmcs::inventory(store(hook, name)?, arguments),
        "bmc-pool-report" => pools::pool_report(hook, arguments),
        "bmc-credential-lift" => credentials::lift(hook, arguments),
        other => Err(Answer::new(
            result::UNSUPPORTED,
            format!(
                "'{other}' is not a command of {}; commands: {}",
                crate::HOOK_NAME,
                COMMANDS.join(", ")
            ),
            None,
        )),
    }
}

/// The state store, for a command that needs it (`redfish` configured).
fn store<'a>(hook: &'a Hook, name: &str) -> Result<&'a Store, Answer> {
    hook.services().store.as_deref().ok_or_else(|| {
        Answer::error(format!(
            "{name}: no BMC state: discovery is off (configure the hook's 'redfish' parameters)"
        ))
    })
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
        let a = handle(br#"{"command": "bmc-list"}"#, Some(&rt));
        assert_eq!(a["result"], 1);
        assert!(
            a["text"]
                .as_str()
                .unwrap()
                .starts_with("bmc-list: no BMC state: discovery is off"),
            "{a}"
        );
        rt.shutdown();
        assert_eq!(handle(br#"{"command": "bmc-status"}"#, None)["result"], 1);
    }
}
