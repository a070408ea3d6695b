//! `bmc-pool-report`: utilisation of the BMC subnets' pools from Kea's
//! configuration and lease database, with alert levels and
//! recommendations.

use serde_json::{json, Value};

use super::args::{arguments_map, flag};
use super::{Answer, Reply};
use crate::hook::Hook;
use crate::pool_report::Level;

/// Arguments: `subnet-id` (one subnet, opted in or not), `all` (every
/// subnet, not only the opted-in ones).
pub fn pool_report(hook: &Hook, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-pool-report";
    let map = arguments_map(NAME, arguments, &["subnet-id", "all"])?;
    let subnet_id = match map.and_then(|m| m.get("subnet-id")) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    Answer::error(format!(
                        "{NAME}: 'subnet-id' must be a subnet id (1..=4294967294), got {v}"
                    ))
                })?,
        ),
    };
    let all = flag(NAME, arguments, "all")?;
    let report = hook
        .pool_report(subnet_id, all, true)
        .map_err(|e| Answer::error(format!("{NAME}: {e}")))?;
    if report.subnets.is_empty() {
        return Ok(Answer::empty(
            "no subnet is opted in; 'all': true reports every subnet",
            Some(json!(report)),
        ));
    }
    let alerts: Vec<String> = report
        .alerts
        .iter()
        .filter(|(level, n)| **level != Level::Ok && **n > 0)
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
    Ok(Answer::success(text, json!(report)))
}
