//! One BMC's HTTP conversation: a ureq agent with the TLS policy's
//! configuration, the auth header of the current session, per-request
//! timeouts under an overall deadline, bounded bodies, retries with
//! exponential backoff that honour `Retry-After`, and a round-trip count.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{Error, FailureKind};
use super::tls::PinCheck;
use super::Limits;

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
    base: String,
    /// `host:port`, for messages.
    pub bmc: String,
    auth: Mutex<Auth>,
    limits: Limits,
    started: Instant,
    round_trips: AtomicU32,
    pin: Option<Arc<PinCheck>>,
    cancel: Arc<AtomicBool>,
}

impl Client {
    pub fn new(
        host: &str,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        pin: Option<Arc<PinCheck>>,
        limits: Limits,
        cancel: Arc<AtomicBool>,
    ) -> Client {
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(limits.request_timeout)
            .redirects(limits.max_redirects)
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
        Client {
            agent,
            base: format!("https://{bmc}"),
            bmc,
            auth: Mutex::new(Auth::None),
            limits,
            started: Instant::now(),
            round_trips: AtomicU32::new(0),
            pin,
            cancel,
        }
    }

    pub fn set_auth(&self, auth: Auth) {
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
    }

    fn auth(&self) -> Auth {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn round_trips(&self) -> u32 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn remaining(&self) -> Option<Duration> {
        self.limits.deadline.checked_sub(self.started.elapsed())
    }

    fn deadline_error(&self, doing: &str) -> Error {
        Error::new(
            FailureKind::Timeout,
            format!(
                "BMC {}: discovery deadline of {} s passed while {doing}",
                self.bmc,
                self.limits.deadline.as_secs()
            ),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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

    fn request(&self, method: &str, path: &str) -> Result<ureq::Request, Error> {
        if let Some(e) = self.cancelled() {
            return Err(e);
        }
        let remaining = self
            .remaining()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.deadline_error(&format!("about to {method} {path}")))?;
        let req = self
            .agent
            .request(method, &self.url(path))
            .set("Accept", "application/json")
            .set("OData-Version", "4.0")
            .timeout(self.limits.request_timeout.min(remaining));
        Ok(self.authorized(req))
    }

    /// `req` with the current session's credential.
    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match self.auth() {
            Auth::None => req,
            Auth::Token(t) => req.set("X-Auth-Token", &t),
            Auth::Basic(b) => req.set("Authorization", &b),
        }
    }

    /// GET a JSON resource, retrying what can pass.
    pub fn get(&self, path: &str) -> Result<Value, Fetch> {
        let mut attempt = 0u32;
        loop {
            let req = self.request("GET", path).map_err(Fetch::Failed)?;
            log::trace!(
                "BMC {}: GET {path} at {} ms",
                self.bmc,
                self.started.elapsed().as_millis()
            );
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let (err, retry_after) = match req.call() {
                Ok(resp) => match self.read_json(path, resp) {
                    Ok(v) => return Ok(v),
                    // Too large or not JSON: asking again gets the same.
                    Err(Unread::Final(e)) => return Err(Fetch::Failed(e)),
                    Err(Unread::Transient(e)) => (e, None),
                },
                Err(ureq::Error::Status(code, resp)) => {
                    let retry_after = retry_after(&resp);
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
                Err(ureq::Error::Transport(t)) => {
                    let e = self.transport_error("GET", path, &t);
                    if e.kind == FailureKind::Tls || t.kind() == ureq::ErrorKind::TooManyRedirects {
                        return Err(Fetch::Failed(e));
                    }
                    (e, None)
                }
            };
            if attempt >= self.limits.retries {
                return Err(Fetch::Failed(err));
            }
            let backoff = retry_after.unwrap_or_else(|| self.limits.backoff * 2u32.pow(attempt));
            let backoff = backoff.min(self.limits.max_backoff);
            match self.remaining() {
                Some(r) if r > backoff => self.sleep(backoff),
                _ => return Err(Fetch::Failed(err)),
            }
            attempt += 1;
            log::debug!("BMC {}: retry {attempt} of GET {path}: {err}", self.bmc);
        }
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

    /// POST a JSON body; returns status, selected headers and the body text
    /// (bounded). No retries: POSTs here create sessions, and a retried
    /// login is a second login.
    pub fn post(&self, path: &str, body: &Value) -> Result<Posted, Error> {
        let req = self
            .request("POST", path)?
            .set("Content-Type", "application/json");
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let resp = match req.send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(self.transport_error("POST", path, &t)),
        };
        let status = resp.status();
        let token = resp.header("X-Auth-Token").map(str::to_string);
        let location = resp.header("Location").map(str::to_string);
        let text = self.read_body(path, resp).ok().unwrap_or_default();
        Ok(Posted {
            status,
            token,
            location,
            body: serde_json::from_slice(&text).unwrap_or(Value::Null),
        })
    }

    /// DELETE, best effort, one try; returns the status.
    pub fn delete(&self, path: &str) -> Result<u16, Error> {
        // Logging out must work even when the deadline has just passed:
        // give it a short grace period of its own.
        let req = self.authorized(
            self.agent
                .delete(&self.url(path))
                .timeout(self.limits.request_timeout.min(Duration::from_secs(5))),
        );
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match req.call() {
            Ok(r) => Ok(r.status()),
            Err(ureq::Error::Status(code, _)) => Ok(code),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error("DELETE", path, &t)),
        }
    }

    fn read_body(&self, path: &str, resp: ureq::Response) -> Result<Vec<u8>, Unread> {
        let max = self.limits.max_body_bytes;
        let too_big = || {
            Unread::Final(Error::new(
                FailureKind::Protocol,
                format!(
                    "BMC {}: response to {path} is larger than the {max}-byte limit",
                    self.bmc
                ),
            ))
        };
        if let Some(len) = resp
            .header("Content-Length")
            .and_then(|l| l.parse::<u64>().ok())
        {
            if len > max {
                return Err(too_big());
            }
        }
        let mut buf = Vec::new();
        resp.into_reader()
            .take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| {
                let kind = if is_timeout(&e) {
                    FailureKind::Timeout
                } else {
                    FailureKind::Protocol
                };
                Unread::Transient(Error::new(
                    kind,
                    format!("BMC {}: reading the response to {path}: {e}", self.bmc),
                ))
            })?;
        if buf.len() as u64 > max {
            return Err(too_big());
        }
        Ok(buf)
    }

    fn read_json(&self, path: &str, resp: ureq::Response) -> Result<Value, Unread> {
        let body = self.read_body(path, resp)?;
        serde_json::from_slice(&body).map_err(|e| {
            Unread::Final(Error::new(
                FailureKind::Protocol,
                format!(
                    "BMC {}: {path} is not valid JSON ({e}; {} bytes)",
                    self.bmc,
                    body.len()
                ),
            ))
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
            ureq::ErrorKind::TooManyRedirects => {
                return Error::new(
                    FailureKind::Protocol,
                    format!(
                        "BMC {}: {method} {path}: more than {} redirects (a redirect loop?)",
                        self.bmc, self.limits.max_redirects
                    ),
                )
            }
            _ if lower.contains("certificate") || lower.contains("tls") => FailureKind::Tls,
            _ if lower.contains("timed out") || lower.contains("timeout") => FailureKind::Timeout,
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
