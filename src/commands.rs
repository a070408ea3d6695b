//! Kea control commands, answered in Kea's shape:
//! `{"result": 0|1|2|3, "text": "...", "arguments": {...}}`
//! (success / error / unsupported / empty, as Kea's `createAnswer`).

use serde_json::{json, Map, Value};

use crate::runtime::Runtime;

/// Every command the hook registers with Kea.
pub const COMMANDS: &[&str] = &["bmc-status"];

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
/// it). `runtime` is `None` if the hook is not loaded.
pub fn handle(request: &[u8], runtime: Option<&Runtime>) -> Value {
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
    let Some(runtime) = runtime else {
        return answer(
            result::ERROR,
            format!("{name}: {} is not loaded", crate::HOOK_NAME),
            None,
        );
    };
    match name {
        "bmc-status" => status(runtime, arguments),
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

fn status(runtime: &Runtime, arguments: Option<&Value>) -> Value {
    if let Err(e) = no_arguments("bmc-status", arguments) {
        return e;
    }
    let status = runtime.status();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::filter::Filter;
    use crate::worker::LogPipeline;
    use std::sync::Arc;

    fn runtime() -> Runtime {
        let config = Config::from_json(r#"{"workers": 2, "queue-capacity": 8}"#).unwrap();
        let filter = Filter::new(&config).unwrap();
        Runtime::start(config, filter, Arc::new(LogPipeline)).unwrap()
    }

    #[test]
    fn status_answers_in_kea_shape() {
        let rt = runtime();
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
        let rt = runtime();
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
