//! One BMC's HTTP conversation: a ureq agent with the TLS policy's
//! configuration, the auth header of the current session, per-request
//! timeouts under an overall deadline, retries with exponential backoff
//! that honour `Retry-After`, requests only to the BMC's own origin, and
//! the discovery's budget charged for every request and every body byte.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::budget::Budget;
use super::error::{Error, FailureKind};
use super::json::{self, TooBig};
use super::origin::{Origin, Refused};
use super::tls::PinCheck;
use super::Limits;
use crate::kea::log::kea_log;

/// The credential a request carries.
#[derive(Clone)]
pub enum Auth {
    None,
    /// A Redfish session token (`X-Auth-Token`).
    Token(String),
    /// A prebuilt `Authorization: Basic ...` value.
    Basic(String),
}

/// What a GET can end in short of a JSON body.
#[derive(Debug)]
pub enum Fetch {
    /// A non-2xx status after retries (404 for a missing resource).
    Status(u16),
    Failed(Error),
}

pub struct Client {
    agent: ureq::Agent,
    origin: Origin,
    /// `host:port`, for messages.
    pub bmc: String,
    auth: Mutex<Auth>,
    limits: Limits,
    started: Instant,
    budget: Budget,
    pin: Option<Arc<PinCheck>>,
    cancel: Arc<AtomicBool>,
    canned: Option<Canned>,
}

/// Answers by path and query instead of the network, for the fuzz targets
/// (`redfish::fuzzing`): None is a 404. A canned body goes through the same
/// request and byte budgets, size limit and parser as one read from a BMC.
#[doc(hidden)]
pub type Canned = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

impl Client {
    pub fn new(
        host: &str,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        pin: Option<Arc<PinCheck>>,
        limits: Limits,
        cancel: Arc<AtomicBool>,
    ) -> Result<Client, Error> {
        // No automatic redirects: ureq would follow them to any host (with
        // X-Auth-Token, which it does not know to drop), to plain http, and
        // turn a redirected DELETE into a GET. `get` follows same-origin
        // redirects itself, within the request budget.
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(limits.request_timeout)
            .redirects(0)
            .max_idle_connections_per_host(limits.parallel_requests.max(1))
            .user_agent(concat!(
                "kea-hook-bmc-discovery/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let bmc = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let origin =
            Origin::new(host, port).map_err(|e| Error::new(FailureKind::Unreachable, e))?;
        Ok(Client {
            agent,
            origin,
            bmc,
            auth: Mutex::new(Auth::None),
            budget: Budget::new(&limits),
            limits,
            started: Instant::now(),
            pin,
            cancel,
            canned: None,
        })
    }

    /// This client with its GETs answered by `canned` (fuzzing only).
    #[doc(hidden)]
    pub fn with_canned(mut self, canned: Canned) -> Client {
        self.canned = Some(canned);
        self
    }

    pub fn set_auth(&self, auth: Auth) {
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
    }

    fn auth(&self) -> Auth {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn round_trips(&self) -> u32 {
        self.budget.requests()
    }

    /// Body bytes read so far, and the memory their parsed forms may take.
    pub fn bytes_read(&self) -> (u64, u64) {
        (self.budget.bytes(), self.budget.parsed())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn remaining(&self) -> Option<Duration> {
        self.limits.deadline.checked_sub(self.started.elapsed())
    }

    fn deadline_error(&self, doing: &str) -> Error {
        Error::new(
            FailureKind::BudgetTime,
            format!(
                "BMC {}: discovery deadline of {} s (redfish.deadline-ms) passed while {doing}",
                self.bmc,
                self.limits.deadline.as_secs()
            ),
        )
    }

    /// A request that timed out was cut short by the discovery's deadline
    /// (its timeout is the time left) or timed out on its own.
    fn timeout_kind(&self) -> FailureKind {
        if self
            .remaining()
            .is_none_or(|r| r < Duration::from_millis(50))
        {
            FailureKind::BudgetTime
        } else {
            FailureKind::Timeout
        }
    }

    fn foreign(&self, doing: &str, r: Refused) -> Error {
        Error::new(
            FailureKind::ForeignLink,
            format!(
                "BMC {}: {doing}: refused {:?}: it {}; requests go only to the BMC's own \
                 https origin, and nothing was sent there (a misconfigured or hostile BMC)",
                self.bmc, r.link, r.why
            ),
        )
    }

    /// A link from the BMC, as a URL of its own origin, or the refusal.
    pub fn resolve(&self, link: &str) -> Result<Url, Error> {
        self.origin
            .link(link)
            .map_err(|r| self.foreign("following a link", r))
    }

    /// The name a link's resource is cached under: its path and query on
    /// the BMC (the link itself when it is refused: never fetched).
    pub fn key(&self, link: &str) -> String {
        match self.origin.link(link) {
            Ok(u) => Origin::path_of(&u),
            Err(_) => link.to_string(),
        }
    }

    /// A session's `Location`, resolved against the URL that created it;
    /// the path to DELETE, or the refusal.
    pub fn session_location(&self, created_at: &Url, location: &str) -> Result<String, Error> {
        self.origin
            .location(created_at, location)
            .map(|u| Origin::path_of(&u))
            .map_err(|r| self.foreign("reading the new session's Location", r))
    }

    fn cancelled(&self) -> Option<Error> {
        self.cancel.load(Ordering::Relaxed).then(|| {
            Error::new(
                FailureKind::Cancelled,
                format!(
                    "BMC {}: discovery cancelled: the hook is stopping",
                    self.bmc
                ),
            )
        })
    }

    /// A request to `url`, charged to the budget; `path` names it.
    fn request(&self, method: &str, url: &Url, path: &str) -> Result<ureq::Request, Error> {
        if let Some(e) = self.cancelled() {
            return Err(e);
        }
        let remaining = self
            .remaining()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.deadline_error(&format!("about to {method} {path}")))?;
        self.budget
            .request(&self.bmc, &format!("{method} {path}"))?;
        let req = self
            .agent
            .request_url(method, url)
            .set("Accept", "application/json")
            .set("OData-Version", "4.0")
            .timeout(self.limits.request_timeout.min(remaining));
        Ok(self.authorized(req))
    }

    /// `req` with the current session's credential. Only ever called on a
    /// URL of the BMC's own origin.
    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match self.auth() {
            Auth::None => req,
            Auth::Token(t) => req.set("X-Auth-Token", &t),
            Auth::Basic(b) => req.set("Authorization", &b),
        }
    }

    /// GET a JSON resource, retrying what can pass, following redirects
    /// that stay on the BMC's origin.
    pub fn get(&self, path: &str) -> Result<Value, Fetch> {
        let mut url = self.resolve(path).map_err(Fetch::Failed)?;
        let mut attempt = 0u32;
        let mut hops = 0u32;
        loop {
            let req = self.request("GET", &url, path).map_err(Fetch::Failed)?;
            if let Some(canned) = &self.canned {
                return self.get_canned(canned, &url, path);
            }
            kea_log!(
                BMC_DISCOVERY_REDFISH_GET,
                self.bmc,
                path,
                self.started.elapsed().as_millis()
            );
            let resp = match req.call() {
                Ok(r) => Ok(r),
                Err(ureq::Error::Status(code, r)) => Err((code, r)),
                Err(ureq::Error::Transport(t)) => {
                    let e = self.transport_error("GET", path, &t);
                    if e.kind == FailureKind::Tls {
                        return Err(Fetch::Failed(e));
                    }
                    self.backoff(path, &mut attempt, e, None)?;
                    continue;
                }
            };
            let (err, retry_after) = match resp {
                Ok(r) if (300..400).contains(&r.status()) => {
                    let Some(loc) = r.header("Location") else {
                        return Err(Fetch::Status(r.status()));
                    };
                    hops += 1;
                    if hops > self.limits.max_redirects {
                        return Err(Fetch::Failed(Error::new(
                            FailureKind::Protocol,
                            format!(
                                "BMC {}: GET {path}: more than {} redirects (a redirect loop?)",
                                self.bmc, self.limits.max_redirects
                            ),
                        )));
                    }
                    url = self.origin.location(&url, loc).map_err(|r| {
                        Fetch::Failed(self.foreign(&format!("GET {path} redirected"), r))
                    })?;
                    continue;
                }
                Ok(r) => match self.read_json(path, r) {
                    Ok(v) => return Ok(v),
                    // Too large or not JSON: asking again gets the same.
                    Err(Unread::Final(e)) => return Err(Fetch::Failed(e)),
                    Err(Unread::Transient(e)) => (e, None),
                },
                Err((code, r)) => {
                    let retry_after = retry_after(&r);
                    if code == 429 || (500..=599).contains(&code) {
                        let e = Error::new(
                            FailureKind::Protocol,
                            format!("BMC {}: GET {path} answered {code}", self.bmc),
                        );
                        (e, retry_after)
                    } else {
                        return Err(Fetch::Status(code));
                    }
                }
            };
            self.backoff(path, &mut attempt, err, retry_after)?;
        }
    }

    /// Waits before retry `attempt + 1` of GET `path`, or gives up with
    /// `err` when retries or time are used up.
    fn backoff(
        &self,
        path: &str,
        attempt: &mut u32,
        err: Error,
        retry_after: Option<Duration>,
    ) -> Result<(), Fetch> {
        if *attempt >= self.limits.retries {
            return Err(Fetch::Failed(err));
        }
        let backoff = retry_after.unwrap_or_else(|| self.limits.backoff * 2u32.pow(*attempt));
        let backoff = backoff.min(self.limits.max_backoff);
        match self.remaining() {
            Some(r) if r > backoff => self.sleep(backoff),
            _ => return Err(Fetch::Failed(err)),
        }
        *attempt += 1;
        kea_log!(BMC_DISCOVERY_REDFISH_RETRY, self.bmc, attempt, path, err);
        Ok(())
    }

    /// Sleeps, waking early if the discovery is cancelled.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while self.cancelled().is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// POST a JSON body; returns status, selected headers and the body
    /// (bounded). No retries: POSTs here create sessions, and a retried
    /// login is a second login. No redirects either: a 3xx is a status.
    pub fn post(&self, path: &str, body: &Value) -> Result<Posted, Error> {
        let url = self.resolve(path)?;
        let req = self
            .request("POST", &url, path)?
            .set("Content-Type", "application/json");
        let resp = match req.send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(self.transport_error("POST", path, &t)),
        };
        let status = resp.status();
        let token = resp.header("X-Auth-Token").map(str::to_string);
        let location = resp.header("Location").map(str::to_string);
        let body = match self.read_body(path, resp) {
            Ok(b) => b,
            Err(Unread::Final(e)) if e.kind.ends_discovery() => return Err(e),
            Err(_) => Vec::new(),
        };
        let body = if body.is_empty() {
            Value::Null
        } else {
            match self.parse(path, &body) {
                Ok(v) => v,
                Err(e) if e.kind.ends_discovery() => return Err(e),
                Err(_) => Value::Null,
            }
        };
        Ok(Posted {
            status,
            token,
            location,
            url,
            body,
        })
    }

    /// DELETE, best effort, one try; returns the status. Never redirected.
    pub fn delete(&self, path: &str) -> Result<u16, Error> {
        let url = self
            .origin
            .link(path)
            .map_err(|r| self.foreign("DELETE", r))?;
        // Logging out must work even when the deadline or the request
        // budget has just run out: a short grace period of its own.
        let req = self.authorized(
            self.agent
                .request_url("DELETE", &url)
                .timeout(self.limits.request_timeout.min(Duration::from_secs(5))),
        );
        self.budget.request_anyway();
        match req.call() {
            Ok(r) => Ok(r.status()),
            Err(ureq::Error::Status(code, _)) => Ok(code),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error("DELETE", path, &t)),
        }
    }

    /// The body, refused past `max-response-bytes` (announced or read)
    /// and charged chunk by chunk to the discovery's byte budget.
    fn read_body(&self, path: &str, resp: ureq::Response) -> Result<Vec<u8>, Unread> {
        let max = self.limits.max_body_bytes;
        let too_big = || {
            Unread::Final(Error::new(
                FailureKind::BudgetResponse,
                format!(
                    "BMC {}: response to {path} is larger than the {max}-byte limit \
                     (redfish.max-response-bytes); the largest real Redfish answer is ~40 KB",
                    self.bmc
                ),
            ))
        };
        let announced = resp
            .header("Content-Length")
            .and_then(|l| l.parse::<u64>().ok());
        if announced.is_some_and(|len| len > max) {
            return Err(too_big());
        }
        let mut buf = Vec::with_capacity(announced.unwrap_or(16 << 10).min(max) as usize);
        let mut reader = resp.into_reader().take(max + 1);
        let mut chunk = [0u8; 16 << 10];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let kind = if is_timeout(&e) {
                        self.timeout_kind()
                    } else {
                        FailureKind::Protocol
                    };
                    let hint = if kind == FailureKind::BudgetTime {
                        "; the discovery's deadline (redfish.deadline-ms) ran out"
                    } else {
                        ""
                    };
                    return Err(Unread::Transient(Error::new(
                        kind,
                        format!(
                            "BMC {}: reading the response to {path}: {e}{hint}",
                            self.bmc
                        ),
                    )));
                }
            };
            self.budget
                .read(&self.bmc, path, n as u64)
                .map_err(Unread::Final)?;
            if (buf.len() + n) as u64 > max {
                return Err(too_big());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(buf)
    }

    fn get_canned(&self, canned: &Canned, url: &Url, path: &str) -> Result<Value, Fetch> {
        let body = canned(&Origin::path_of(url)).ok_or(Fetch::Status(404))?;
        let max = self.limits.max_body_bytes;
        if body.len() as u64 > max {
            return Err(Fetch::Failed(Error::new(
                FailureKind::BudgetResponse,
                format!(
                    "BMC {}: response to {path} is larger than the {max}-byte limit",
                    self.bmc
                ),
            )));
        }
        self.budget
            .read(&self.bmc, path, body.len() as u64)
            .map_err(Fetch::Failed)?;
        self.parse(path, &body).map_err(Fetch::Failed)
    }

    fn read_json(&self, path: &str, resp: ureq::Response) -> Result<Value, Unread> {
        let body = self.read_body(path, resp)?;
        self.parse(path, &body).map_err(Unread::Final)
    }

    /// Parses an answer once its shape says it may be: not too deep, no
    /// array or object wider than `max-collection-members`, and its parsed
    /// size within what is left of the discovery's memory budget.
    fn parse(&self, path: &str, body: &[u8]) -> Result<Value, Error> {
        let max = self.limits.max_members;
        let shape = json::shape(body, max).map_err(|t| match t {
            TooBig::Depth => Error::new(
                FailureKind::BudgetResponse,
                format!(
                    "BMC {}: {path} nests deeper than {} levels; real Redfish answers nest \
                     under 12",
                    self.bmc,
                    json::MAX_DEPTH
                ),
            ),
            TooBig::Wide { array } => Error::new(
                FailureKind::BudgetMembers,
                format!(
                    "BMC {}: {path} has {} of more than {max} elements \
                     (redfish.max-collection-members)",
                    self.bmc,
                    if array { "an array" } else { "an object" }
                ),
            ),
        })?;
        self.budget.keep(&self.bmc, path, shape.parsed_bytes)?;
        serde_json::from_slice(body).map_err(|e| {
            Error::new(
                FailureKind::Protocol,
                format!(
                    "BMC {}: {path} is not valid JSON ({e}; {} bytes)",
                    self.bmc,
                    body.len()
                ),
            )
        })
    }

    fn transport_error(&self, method: &str, path: &str, t: &ureq::Transport) -> Error {
        if let Some((pinned, seen)) = self.pin.as_ref().and_then(|p| p.mismatch()) {
            return Error::new(
                FailureKind::Tls,
                format!(
                    "BMC {}: TLS certificate changed: pinned sha256 {pinned}, presented {seen}; \
                     refusing it. If the certificate was replaced on purpose, forget the pin \
                     (in Kea: bmc-retry with \"forget-tls-pin\": true)",
                    self.bmc
                ),
            );
        }
        // ureq's Display repeats the URL and the kind; say what happened.
        let cause = std::error::Error::source(t).map(|s| s.to_string());
        let detail = match (t.message(), cause) {
            (Some(m), Some(c)) => format!("{c} ({m})"),
            (None, Some(c)) => c,
            (Some(m), None) => m.to_string(),
            (None, None) => t.kind().to_string(),
        };
        let lower = detail.to_ascii_lowercase();
        let kind = match t.kind() {
            _ if lower.contains("certificate") || lower.contains("tls") => FailureKind::Tls,
            _ if lower.contains("timed out") || lower.contains("timeout") => self.timeout_kind(),
            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => FailureKind::Unreachable,
            _ => FailureKind::Protocol,
        };
        let hint = match kind {
            FailureKind::Tls
                if lower.contains("unknownissuer") || lower.contains("unknown issuer") =>
            {
                "; the BMC's certificate is not signed by a trusted CA: give its CA \
                 (--ca-file / tls-ca-file), pin it on first use (tls-mode pin), or use --insecure"
            }
            FailureKind::BudgetTime => {
                "; the discovery's deadline (redfish.deadline-ms) ran out during this request"
            }
            _ => "",
        };
        Error::new(
            kind,
            format!("BMC {}: {method} {path}: {detail}{hint}", self.bmc),
        )
    }
}

pub struct Posted {
    pub status: u16,
    pub token: Option<String>,
    pub location: Option<String>,
    /// Where the POST went (a relative `Location` resolves against it).
    pub url: Url,
    pub body: Value,
}

/// A body that could not be read: cut off in transit (worth asking again)
/// or unusable as sent (too large, not JSON).
enum Unread {
    Transient(Error),
    Final(Error),
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// `Retry-After` in seconds (the HTTP-date form is rare on BMCs and is
/// treated as absent).
fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    resp.header("Retry-After")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(6 + bytes.len().div_ceil(3) * 4);
    out.push_str("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_rfc7617() {
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }
}
