//! This server's part in a Kea HA pair, as the HA hook (libdhcp_ha) says,
//! watched on Kea's main thread.
//!
//! Why: in a pair only the server that answers a client runs the lease
//! callouts; its partner learns the lease through an HA lease update,
//! which runs none. When a server takes over its partner's clients (the
//! standby going `partner-down`, a load-balancing peer taking the other's
//! scope), the BMCs the partner leased but had not registered before it
//! died are in this server's lease database and nowhere in its state
//! file. They renew with this server only after half a lease; a
//! reconciliation at the takeover finds them at once. A server that
//! serves nothing new (a standby staying standby) never reconciles for
//! HA, so a healthy pair does not discover the fleet twice.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

/// How often the HA hook is asked (an in-process call, no packet, no log).
pub(super) const HA_POLL_EVERY: Duration = Duration::from_secs(2);

/// The HA state and the scopes this server answers clients for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HaRole {
    /// The HA hook's state: `hot-standby`, `load-balancing`,
    /// `partner-down`, `waiting`, `syncing`, `ready`, ...
    pub state: String,
    /// The scopes (server names) whose clients this server answers now.
    pub scopes: Vec<String>,
    /// When this server last took over its partner's scopes (Unix
    /// seconds), and how often it has since the hook loaded: gaining
    /// scopes in a state that serves the partner's clients
    /// ([`TAKEOVER_STATES`]). Taking up its own scope (start-up, the
    /// partner back) is no takeover, though it reconciles too.
    #[serde(rename = "took-over-at", skip_serializing_if = "Option::is_none")]
    pub took_over_at: Option<u64>,
    pub takeovers: u64,
}

/// The HA hook's states in which a server answers its partner's clients
/// (Kea's `serveFailoverScopes`, the same in 2.2 to 3.x).
const TAKEOVER_STATES: [&str; 2] = ["partner-down", "partner-in-maintenance"];

/// What changed between two polls.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// First answer, or the same state and scopes.
    Nothing,
    /// The state changed without new scopes.
    State { from: String },
    /// Scopes served now that were not before: reconcile. A takeover of
    /// the partner's scope, or this server's own again (start-up,
    /// `waiting` → `load-balancing` or → `hot-standby` as the primary;
    /// the partner back): the lease database then holds the leases the
    /// partner made meanwhile, which no lease callout here saw.
    TookOver { from: String, gained: Vec<String> },
}

/// The watcher's memory between polls (main thread only).
#[derive(Default)]
pub(super) struct HaWatch {
    pub(super) role: Option<HaRole>,
    pub(super) polled_at: Option<Instant>,
    /// The last error, logged once until it changes.
    pub(super) error: Option<String>,
}

impl HaWatch {
    pub(super) fn due(&self) -> bool {
        self.polled_at
            .is_none_or(|at| at.elapsed() >= HA_POLL_EVERY)
    }

    /// Takes a new answer's state and scopes; what changed.
    pub(super) fn observe(&mut self, state: String, scopes: Vec<String>, now_s: u64) -> Change {
        let Some(role) = &mut self.role else {
            self.role = Some(HaRole {
                state,
                scopes,
                ..HaRole::default()
            });
            return Change::Nothing;
        };
        let gained: Vec<String> = scopes
            .iter()
            .filter(|s| !role.scopes.contains(s))
            .cloned()
            .collect();
        let from = std::mem::replace(&mut role.state, state);
        role.scopes = scopes;
        if !gained.is_empty() {
            if TAKEOVER_STATES.contains(&role.state.as_str()) {
                role.took_over_at = Some(now_s);
                role.takeovers += 1;
            }
            Change::TookOver { from, gained }
        } else if from != role.state {
            Change::State { from }
        } else {
            Change::Nothing
        }
    }
}

/// The state and served scopes of an `ha-heartbeat` answer
/// (`{"result": 0, "arguments": {"state": ..., "scopes": [...]}}`).
pub(super) fn parse_heartbeat(answer: &str) -> Result<(String, Vec<String>), String> {
    let v: Value = serde_json::from_str(answer).map_err(|e| format!("ha-heartbeat answer: {e}"))?;
    if v["result"] != 0 {
        return Err(format!(
            "ha-heartbeat answered result {}: {}",
            v["result"],
            v["text"].as_str().unwrap_or("")
        ));
    }
    let args = &v["arguments"];
    let state = args["state"]
        .as_str()
        .ok_or_else(|| format!("ha-heartbeat answer has no state: {answer}"))?;
    let scopes = args["scopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok((state.to_string(), scopes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn heartbeat_answers_are_read() {
        // The shape of Kea 2.2's HA hook answer (ha_service.cc).
        let a = r#"{"arguments": {"date-time": "Wed, 02 Dec 2026 08:00:00 GMT",
            "scopes": ["server1"], "state": "partner-down", "unsent-update-count": 0},
            "result": 0, "text": "HA peer status returned."}"#;
        assert_eq!(
            parse_heartbeat(a).unwrap(),
            ("partner-down".to_string(), scopes(&["server1"]))
        );
        let none = r#"{"arguments": {"scopes": [], "state": "hot-standby"}, "result": 0}"#;
        assert_eq!(parse_heartbeat(none).unwrap().1, Vec::<String>::new());
        assert!(parse_heartbeat(r#"{"result": 1, "text": "no"}"#)
            .unwrap_err()
            .contains("result 1: no"));
        assert!(parse_heartbeat("{").is_err());
        assert!(parse_heartbeat(r#"{"result": 0, "arguments": {}}"#).is_err());
    }

    #[test]
    fn only_new_scopes_are_a_takeover() {
        let mut w = HaWatch::default();
        // The standby: first answer only recorded.
        assert_eq!(w.observe("waiting".into(), vec![], 1), Change::Nothing);
        assert_eq!(
            w.observe("hot-standby".into(), vec![], 2),
            Change::State {
                from: "waiting".into()
            }
        );
        assert_eq!(w.observe("hot-standby".into(), vec![], 3), Change::Nothing);
        // The primary dies.
        assert_eq!(
            w.observe("partner-down".into(), scopes(&["server1"]), 4),
            Change::TookOver {
                from: "hot-standby".into(),
                gained: scopes(&["server1"])
            }
        );
        let role = w.role.clone().unwrap();
        assert_eq!((role.took_over_at, role.takeovers), (Some(4), 1));
        // It comes back: this server serves nothing again; no reconcile.
        assert_eq!(
            w.observe("hot-standby".into(), vec![], 5),
            Change::State {
                from: "partner-down".into()
            }
        );
        // Load-balancing: one more scope is a takeover, the same set is not.
        let mut lb = HaWatch::default();
        lb.observe("load-balancing".into(), scopes(&["server2"]), 1);
        assert_eq!(
            lb.observe("partner-down".into(), scopes(&["server1", "server2"]), 2),
            Change::TookOver {
                from: "load-balancing".into(),
                gained: scopes(&["server1"])
            }
        );
        assert_eq!(
            lb.observe("partner-down".into(), scopes(&["server2", "server1"]), 3),
            Change::Nothing
        );
        let role = lb.role.clone().unwrap();
        assert_eq!((role.took_over_at, role.takeovers), (Some(2), 1));
    }

    #[test]
    fn taking_up_its_own_scope_reconciles_but_is_no_takeover() {
        // A load-balancing server starting: waiting serves no scope, then
        // its own (seen on Kea 2.2: waiting, syncing, ready, load-balancing).
        let mut w = HaWatch::default();
        assert_eq!(w.observe("waiting".into(), vec![], 1), Change::Nothing);
        assert_eq!(
            w.observe("ready".into(), vec![], 2),
            Change::State {
                from: "waiting".into()
            }
        );
        // Leases synced from a partner that served alone are in the lease
        // database now: reconciled, but not counted as a takeover.
        assert_eq!(
            w.observe("load-balancing".into(), scopes(&["server1"]), 3),
            Change::TookOver {
                from: "ready".into(),
                gained: scopes(&["server1"])
            }
        );
        let role = w.role.clone().unwrap();
        assert_eq!((role.took_over_at, role.takeovers), (None, 0));
        // The partner goes into maintenance: its scope is taken over.
        assert_eq!(
            w.observe(
                "partner-in-maintenance".into(),
                scopes(&["server1", "server2"]),
                4
            ),
            Change::TookOver {
                from: "load-balancing".into(),
                gained: scopes(&["server2"])
            }
        );
        let role = w.role.clone().unwrap();
        assert_eq!((role.took_over_at, role.takeovers), (Some(4), 1));
        // Back to load-balancing, the partner's scope given back.
        assert_eq!(
            w.observe("load-balancing".into(), scopes(&["server1"]), 5),
            Change::State {
                from: "partner-in-maintenance".into()
            }
        );
        assert_eq!(w.role.clone().unwrap().takeovers, 1);
    }
}
