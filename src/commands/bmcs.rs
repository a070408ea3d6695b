//! The commands on the state file: `bmc-list`, `bmc-get`, `bmc-retry`,
//! `bmc-discover`, `bmc-reconcile`, `bmc-inventory`.

use serde_json::{json, Value};

use super::args::{
    arguments_map, flag, key_argument, key_argument_and, no_arguments, optional_string,
};
use super::{state_error, Answer, Reply};
use crate::hook::Hook;
use crate::state::{Bmc, State, Store};

/// The most BMCs one `bmc-list` returns (its `limit` argument may ask for
/// fewer).
const LIST_MAX: u64 = 10_000;

pub fn list(store: &Store, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-list";
    let map = arguments_map(NAME, arguments, &["state", "site", "limit"])?;
    let arg = |k: &str| map.and_then(|m| m.get(k));
    let state = match arg("state") {
        None => None,
        Some(v) => Some(v.as_str().and_then(State::parse).ok_or_else(|| {
            let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
            Answer::error(format!(
                "{NAME}: 'state' must be one of {}, got {v}",
                names.join(", ")
            ))
        })?),
    };
    let site = optional_string(NAME, map, "site")?;
    let limit = match arg("limit") {
        None => LIST_MAX,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=LIST_MAX).contains(n))
            .ok_or_else(|| {
                Answer::error(format!("{NAME}: 'limit' must be 1..={LIST_MAX}, got {v}"))
            })?,
    };
    let bmcs = store
        .list(state, site, limit as usize)
        .map_err(state_error(NAME))?;
    Ok(if bmcs.is_empty() {
        Answer::empty("no BMCs match", Some(json!({ "bmcs": [] })))
    } else {
        Answer::success(format!("{} BMCs", bmcs.len()), json!({ "bmcs": bmcs }))
    })
}

/// The BMC `key` names, or the "not known" answer.
fn known(store: &Store, name: &str, key: &str, unknown: &str) -> Result<Bmc, Answer> {
    store
        .get(key)
        .map_err(state_error(name))?
        .ok_or_else(|| Answer::empty(format!("no BMC {key} is known{unknown}"), None))
}

pub fn get(store: &Store, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-get";
    let key = key_argument(NAME, arguments)?;
    let b = known(store, NAME, &key, "")?;
    Ok(Answer::success(
        format!("BMC {} at {}: {}", b.mac, b.ip, b.state.as_str()),
        json!(b),
    ))
}

/// `bmc-retry`: a failed or dead BMC tried again now, attempts reset;
/// with `"forget-tls-pin": true` its pinned certificate is forgotten first
/// (the BMC or its certificate was replaced on purpose); with
/// `"replace-bmc": true` its next registration may take over the NetBox
/// device its serial or name finds although that device's old BMC still
/// looks live (a `netbox-conflict`), once.
pub fn retry(hook: &Hook, store: &Store, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-retry";
    let key = key_argument_and(NAME, arguments, &["forget-tls-pin", "replace-bmc"])?;
    let forget = flag(NAME, arguments, "forget-tls-pin")?;
    let replace = flag(NAME, arguments, "replace-bmc")?;
    let bmc = known(store, NAME, &key, "")?;
    if !matches!(bmc.state, State::Failed | State::Dead) {
        return Err(Answer::error(format!(
            "{NAME}: BMC {} is {}, not failed or dead; bmc-discover runs it again anyway",
            bmc.mac,
            bmc.state.as_str()
        )));
    }
    let pin_note = if forget {
        forget_tls_pin(hook, &bmc.mac)?
    } else {
        ""
    };
    store
        .retry_with(&bmc.mac, replace)
        .map_err(state_error(NAME))?;
    let replace_note = if replace {
        "; its next registration may take over the NetBox device its serial or name finds"
    } else {
        ""
    };
    Ok(Answer::success(
        format!(
            "BMC {} at {} queued; attempts reset to 0 (it starts within a second when the \
             queue has room){pin_note}{replace_note}",
            bmc.mac, bmc.ip
        ),
        json!({ "mac": bmc.mac, "ip": bmc.ip, "tls-pin-forgotten": forget,
                "replace-bmc": replace }),
    ))
}

/// Forgets the TLS pin of the BMC with `mac`, for `bmc-retry`: what to
/// add to its answer, or the error answer.
fn forget_tls_pin(hook: &Hook, mac: &str) -> Result<&'static str, Answer> {
    let Some(pins) = &hook.services().pins else {
        return Err(Answer::error(
            "bmc-retry: 'forget-tls-pin' needs redfish.tls-mode \"pin\"; nothing changed",
        ));
    };
    match pins.forget(mac) {
        Ok(true) => Ok("; its pinned TLS certificate forgotten: the next one is pinned"),
        Ok(false) => Ok("; it had no pinned TLS certificate"),
        Err(e) => Err(Answer::error(format!(
            "bmc-retry: the pin is forgotten but the pin file could not be written: {e}; \
             not queued"
        ))),
    }
}

/// `bmc-discover`: discover (and register) a known BMC now, whatever its
/// state.
pub fn discover(hook: &Hook, store: &Store, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-discover";
    let key = key_argument(NAME, arguments)?;
    let bmc = known(
        store,
        NAME,
        &key,
        "; it is discovered when it takes a lease",
    )?;
    let ev = bmc
        .forced_event()
        .ok_or_else(|| Answer::error(format!("{NAME}: the state of {} is unreadable", bmc.mac)))?;
    hook.submit(&ev)
        .map_err(|why| Answer::error(format!("{NAME}: BMC {} not queued: {why}", bmc.mac)))?;
    Ok(Answer::success(
        format!("BMC {} at {} queued", bmc.mac, bmc.ip),
        json!({ "mac": bmc.mac, "ip": bmc.ip }),
    ))
}

/// `bmc-inventory`: the Ansible inventory (discovered BMCs that are not
/// dead), as `ansible-inventory --list` prints it; `site` narrows it.
pub fn inventory(store: &Store, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-inventory";
    let map = arguments_map(NAME, arguments, &["site"])?;
    let site = optional_string(NAME, map, "site")?;
    let bmcs = store
        .list(None, site, usize::MAX >> 1)
        .map_err(state_error(NAME))?;
    let cabinets = crate::ansible::cabinets(&bmcs);
    let hosts: usize = cabinets.values().map(Vec::len).sum();
    let text = format!("{hosts} BMCs in {} cabinets", cabinets.len());
    let inventory = crate::ansible::json(&cabinets);
    Ok(if hosts == 0 {
        Answer::empty(text, Some(inventory))
    } else {
        Answer::success(text, inventory)
    })
}

/// `bmc-reconcile`: walk Kea's lease database now and queue every BMC
/// with an active lease that is not registered or is due; answers with
/// what was found (waits up to 10 s for the state file).
pub fn reconcile(hook: &Hook, arguments: Option<&Value>) -> Reply {
    const NAME: &str = "bmc-reconcile";
    no_arguments(NAME, arguments)?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let walked = hook
        .reconcile(Some(tx))
        .map_err(|e| Answer::error(format!("{NAME}: {e}")))?;
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(outcome) => {
            let r = outcome.map_err(state_error(NAME))?;
            let mut args = json!(r);
            args["active-leases"] = json!(walked);
            Ok(Answer::success(
                format!(
                    "{walked} active leases in Kea's lease database, {} of BMCs: {} queued, {} up \
                     to date, {} in progress, {} failed (waiting), {} dead",
                    r.leases, r.queued, r.up_to_date, r.in_progress, r.failed, r.dead
                ),
                args,
            ))
        }
        Err(_) => Ok(Answer::success(
            format!(
                "{walked} active leases handed to reconciliation; the state file is busy, see \
                 bmc-status in a moment"
            ),
            json!({ "active-leases": walked }),
        )),
    }
}
