//! `bmc-status`, assembled here only: from the same snapshot Kea's
//! statistics and the Prometheus page are made of (`Hook::snapshot`),
//! plus the BMCs per state read from the state file itself, so the answer
//! is exact at the moment it is asked.

use serde_json::{json, Value};

use super::args::no_arguments;
use super::{Answer, Reply};
use crate::hook::Hook;

pub fn status(hook: &Hook, arguments: Option<&Value>) -> Reply {
    no_arguments("bmc-status", arguments)?;
    let s = hook.snapshot();
    let q = &s.queue;
    let mut status = json!({
        "version": crate::VERSION,
        "loaded-at": hook.loaded_at(),
        "workers": q.workers,
        "queue": {
            "depth": q.depth,
            "capacity": q.capacity,
            "in-flight": q.in_flight,
        },
        "subnets": {
            "configured": hook.subnets().map_or(0, |t| t.all().len()),
            "opted-in": hook.opted_in(),
        },
        "events": s.counters,
        "callout-cost": s.cost,
    });
    if let Some(store) = &hook.services().store {
        status["bmcs"] = match store.counts() {
            Ok(c) => json!(c),
            Err(e) => json!({ "error": e.to_string() }),
        };
    }
    if let Some(g) = &hook.services().guard {
        status["credentials"] = json!(g.status());
    }
    if let Some(ha) = hook.ha_role() {
        status["ha"] = json!(ha);
    }
    if let Some(l) = &s.latency {
        status["latency"] = json!({
            "lease-to-done": l.lease_to_done,
            "discovery": l.discovery,
            "netbox": l.netbox,
        });
        status["failures"] = json!(s.failures);
        status["attempts-succeeded"] = json!(s.counters.succeeded);
        status["netbox"] = match &s.netbox {
            Some(nb) => {
                let (reads, writes) = nb.requests;
                // Bulk requests counted once: the cost NetBox sees.
                let per_registration = match l.netbox.count {
                    0 => serde_json::Value::Null,
                    n => json!(((reads + writes) as f64 / n as f64 * 100.0).round() / 100.0),
                };
                json!({
                    "configured": true,
                    "reachable": nb.reachable,
                    "registrations": nb.registrations,
                    "requests": { "reads": reads, "writes": writes },
                    "requests-per-registration": per_registration,
                    "batches": nb.batches,
                })
            }
            None => json!({ "configured": false }),
        };
    }
    let text = format!(
        "{} {}: {} workers, queue {}/{}, {} events accepted",
        crate::HOOK_NAME,
        crate::VERSION,
        q.workers,
        q.depth,
        q.capacity,
        s.counters.accepted,
    );
    Ok(Answer::success(text, status))
}
