//! `bmc-credential-lift`: an operator, having looked into why a
//! credentials entry spent its failure budget across BMCs, ends its
//! suspension; BMCs that waited for it are tried again at once.

use serde_json::{json, Value};

use super::args::{arguments_map, optional_string};
use super::{state_error, Answer, Reply};
use crate::hook::Hook;
use crate::kea::log::kea_log;

/// The failure class of a BMC held back by a suspension.
const HELD_BACK: &str = "credential-suspended";

pub fn lift(hook: &Hook, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-credential-lift";
    let map = arguments_map(NAME, arguments, &["credential"])?;
    let name = optional_string(NAME, map, "credential")?.ok_or_else(|| {
        Answer::error(format!(
            "{NAME}: needs 'credential', the entry's name as bmc-status shows it under \
             'credentials'; e.g. {{\"credential\": \"root\"}}"
        ))
    })?;
    let guard = hook.services().guard.as_ref().ok_or_else(|| {
        Answer::error(format!(
            "{NAME}: no credentials: discovery is off (configure the hook's 'redfish' parameters)"
        ))
    })?;
    let lifted = guard
        .lift(name)
        .map_err(|e| Answer::error(format!("{NAME}: {e}")))?;
    let queued = match &hook.services().store {
        Some(store) => store.due_now(HELD_BACK).map_err(state_error(NAME))?,
        None => 0,
    };
    let what = if lifted.was_suspended {
        "suspension lifted"
    } else {
        "it was not suspended; its failure count reset"
    };
    kea_log!(
        BMC_DISCOVERY_CREDENTIAL_LIFTED,
        name,
        what,
        lifted.failures_forgotten,
        queued
    );
    Ok(Answer::success(
        format!(
            "credentials entry {name:?}: {what}; {} failed logins forgotten, {queued} BMCs \
             waiting for it queued",
            lifted.failures_forgotten
        ),
        json!({
            "credential": name,
            "was-suspended": lifted.was_suspended,
            "failures-forgotten": lifted.failures_forgotten,
            "bmcs-queued": queued,
        }),
    ))
}
