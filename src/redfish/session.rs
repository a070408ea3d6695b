//! Logging in to a BMC: a Redfish session where the BMC has one (BMCs have a
//! handful of session slots, so the session is always deleted), basic auth
//! where it has not. Credentials are tried in order, each at most once per
//! BMC per guard window, and not at all while its failure budget across
//! all BMCs is spent (`credentials::guard`).

use serde_json::{json, Value};

use super::credentials::guard::{HeldBack, LoginGuard};
use super::credentials::{Credential, Credentials};
use super::error::{Error, FailureKind};
use super::fetch::Fetcher;
use super::http::{basic_auth, Auth, Client};
use crate::kea::log::kea_log;

/// A logged-in conversation. Dropping it logs out, so a session is deleted
/// on every path out of a discovery, an unwinding panic included.
pub struct Session<'a> {
    client: &'a Client,
    /// The session resource to DELETE; None under basic auth.
    location: Option<String>,
    pub username: String,
    pub basic: bool,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(loc) = self.location.take() {
            match self.client.delete(&loc) {
                Ok(s) if (200..300).contains(&s) || s == 404 => {}
                Ok(s) => kea_log!(
                    BMC_DISCOVERY_REDFISH_SESSION_NOT_DELETED,
                    self.client.bmc,
                    loc,
                    s
                ),
                Err(e) => kea_log!(BMC_DISCOVERY_REDFISH_SESSION_LEFT_OPEN, e),
            }
        }
    }
}

/// Where the BMC takes logins: the root's `Links.Sessions`, else the
/// SessionService's `Sessions`.
pub fn sessions_path(root: &Value, f: &Fetcher) -> Option<String> {
    if let Some(p) = root
        .pointer("/Links/Sessions/@odata.id")
        .and_then(Value::as_str)
    {
        return Some(p.to_string());
    }
    let svc = root.pointer("/SessionService/@odata.id")?.as_str()?;
    let svc = f.get(svc).ok()?;
    svc.pointer("/Sessions/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Logs in with the first credential that works. `probe` is a resource
/// that needs auth (the Systems collection): under basic auth it is the
/// check that the password is right, and its body is kept in the cache.
#[allow(clippy::too_many_arguments)]
pub fn login<'a>(
    f: &Fetcher<'a>,
    sessions: Option<&str>,
    probe: &str,
    creds: &Credentials,
    guard: &LoginGuard,
    bmc_key: &str,
    vendor: Option<&str>,
    mac: Option<&str>,
) -> Result<Session<'a>, Error> {
    let client = f.client;
    let mut order: Vec<&Credential> = creds
        .entries
        .iter()
        .filter(|c| c.applies(vendor, mac))
        .collect();
    // The credential that worked last time goes first: fewer failures.
    if let Some(good) = guard.last_good(bmc_key) {
        if let Some(i) = order.iter().position(|c| c.name == good) {
            let c = order.remove(i);
            order.insert(0, c);
        }
    }
    if order.is_empty() {
        return Err(Error::new(
            FailureKind::Auth,
            format!(
                "BMC {}: no credential in the credentials file applies (vendor {}, mac {}): \
                 an entry with 'vendor' is tried only on BMCs whose service root names that \
                 vendor, one with 'oui' only when the lease's MAC starts with one; add an \
                 entry without them, or with matching ones",
                client.bmc,
                vendor.unwrap_or("unknown"),
                mac.unwrap_or("unknown")
            ),
        ));
    }
    let mut tried = Vec::new();
    let mut use_basic = sessions.is_none();
    // The entries this BMC may still be offered: a suspended one takes
    // its place too, so a suspension never moves a device further down
    // the file.
    let mut slots = guard
        .max_failures_per_bmc()
        .saturating_sub(guard.failures_on(bmc_key));
    let (mut rejected, mut suspended) = (false, false);
    for cred in order {
        if slots == 0 {
            tried.push(format!(
                "{} (held back: {} failed logins or suspended entries on this BMC within the \
                 last {} s, the most it may see)",
                cred.username,
                guard.max_failures_per_bmc(),
                guard.window().as_secs()
            ));
            continue;
        }
        let attempt = match guard.begin(cred, bmc_key) {
            Ok(a) => a,
            Err(HeldBack::FailedHere) => {
                tried.push(format!(
                    "{} (held back: it failed here within the last {} s)",
                    cred.username,
                    guard.window().as_secs()
                ));
                continue;
            }
            Err(held) => {
                slots -= 1;
                suspended = true;
                tried.push(held_back_text(cred, &held, guard));
                continue;
            }
        };
        if !use_basic {
            let path = sessions.unwrap_or_default();
            let body = json!({"UserName": cred.username, "Password": cred.password.expose()});
            let posted = client.post(path, &body)?;
            match posted.status {
                200..=299 => {
                    let Some(token) = posted.token else {
                        return Err(Error::new(
                            FailureKind::Protocol,
                            format!(
                                "BMC {}: POST {path} created a session without an X-Auth-Token header",
                                client.bmc
                            ),
                        ));
                    };
                    // The token goes back in a header: printable ASCII
                    // only, so that it cannot smuggle in another header.
                    let plain = |c: char| c.is_ascii_graphic();
                    if token.is_empty() || token.len() > 4096 || !token.chars().all(plain) {
                        return Err(Error::new(
                            FailureKind::Protocol,
                            format!(
                                "BMC {}: POST {path} answered an X-Auth-Token of {} bytes \
                                 that is not a printable ASCII token",
                                client.bmc,
                                token.len()
                            ),
                        ));
                    }
                    // The session is deleted where the BMC says it lives,
                    // if that is the BMC itself. A Location elsewhere is
                    // never used (the token would go with the DELETE): the
                    // session's own @odata.id on the BMC stands in for it
                    // (some BMCs may name themselves differently in
                    // Location); with neither, the discovery fails.
                    let body_id = posted
                        .body
                        .get("@odata.id")
                        .and_then(Value::as_str)
                        .filter(|id| client.resolve(id).is_ok())
                        .map(str::to_string);
                    let (location, refused) = match posted.location.as_deref() {
                        Some(l) => match client.session_location(&posted.url, l) {
                            Ok(p) => (Some(p), None),
                            Err(e) if body_id.is_some() => {
                                kea_log!(BMC_DISCOVERY_REDFISH_SESSION_ID_IGNORED, e);
                                (body_id, None)
                            }
                            Err(e) => (None, Some(e)),
                        },
                        None => (body_id, None),
                    };
                    client.set_auth(Auth::Token(token));
                    attempt.succeeded();
                    let session = Session {
                        client,
                        location,
                        username: cred.username.clone(),
                        basic: false,
                    };
                    if let Some(e) = refused {
                        drop(session);
                        client.set_auth(Auth::None);
                        return Err(e);
                    }
                    return Ok(session);
                }
                401 | 403 => {
                    attempt.failed();
                    (slots, rejected) = (slots - 1, true);
                    tried.push(format!(
                        "{} (rejected: HTTP {})",
                        cred.username, posted.status
                    ));
                    continue;
                }
                404 | 405 | 501 => {
                    kea_log!(
                        BMC_DISCOVERY_REDFISH_BASIC_AUTH,
                        client.bmc,
                        path,
                        posted.status
                    );
                    use_basic = true;
                }
                s => {
                    return Err(Error::new(
                        FailureKind::Protocol,
                        format!("BMC {}: login at {path} answered HTTP {s}", client.bmc),
                    ))
                }
            }
        }
        client.set_auth(Auth::Basic(basic_auth(
            &cred.username,
            cred.password.expose(),
        )));
        match f.get(probe) {
            Ok(_) => {
                attempt.succeeded();
                return Ok(Session {
                    client,
                    location: None,
                    username: cred.username.clone(),
                    basic: true,
                });
            }
            Err(401) | Err(403) => {
                attempt.failed();
                (slots, rejected) = (slots - 1, true);
                tried.push(format!("{} (rejected by basic auth)", cred.username));
                // The 401 must not stay cached: the next credential asks again.
                f.forget(probe);
            }
            Err(_) => {
                return Err(f.fatal().unwrap_or_else(|| {
                    Error::new(
                        FailureKind::Protocol,
                        format!("BMC {}: GET {probe} failed after login", client.bmc),
                    )
                }))
            }
        }
    }
    client.set_auth(Auth::None);
    // Held back by a suspension and refused by nothing: nothing is wrong
    // with this BMC that the end of the suspension does not mend.
    let kind = if suspended && !rejected {
        FailureKind::CredentialSuspended
    } else {
        FailureKind::Auth
    };
    Err(Error::new(
        kind,
        format!(
            "BMC {}: no credential logged in: {}",
            client.bmc,
            tried.join(", ")
        ),
    ))
}

/// Why `cred` was held back by its budget, for the discovery's error.
fn held_back_text(cred: &Credential, held: &HeldBack, guard: &LoginGuard) -> String {
    let p = guard.policy();
    match held {
        HeldBack::Suspended { until_ms } => format!(
            "{} (held back: entry {:?} is suspended for {} s more: it failed {} logins across \
             BMCs within {} s; bmc-status shows which, bmc-credential-lift ends it)",
            cred.username,
            cred.name,
            ((until_ms - crate::clock::unix_ms()) / 1000).max(0),
            p.budget,
            p.budget_window.as_secs()
        ),
        HeldBack::BudgetInUse => format!(
            "{} (held back: what is left of entry {:?}'s failure budget is taken by logins in \
             progress)",
            cred.username, cred.name
        ),
        HeldBack::FailedHere => format!("{} (held back: it failed here)", cred.username),
    }
}
