//! Why a discovery failed, in words an operator can act on. Messages name
//! the BMC, the resource and the fix; they never carry a password.

use std::fmt;

/// The class of a failure, for retry decisions and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// No TCP connection (refused, no route).
    Unreachable,
    /// A request or the whole discovery ran out of time.
    Timeout,
    /// The TLS handshake failed or the certificate was refused.
    Tls,
    /// No credential logged in, or all were held back by the login guard.
    Auth,
    /// The BMC answered, but not with what Redfish promises (bad status,
    /// malformed or oversized body, redirect loop, missing resources).
    Protocol,
    /// The hook is stopping (Kea unloads or reloads it).
    Cancelled,
}

impl FailureKind {
    /// Whether trying again later can help without anyone changing
    /// anything. Auth is not: the next attempt would cost a failed login.
    pub fn transient(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable
                | FailureKind::Timeout
                | FailureKind::Protocol
                | FailureKind::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unreachable => "unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::Tls => "tls",
            FailureKind::Auth => "auth",
            FailureKind::Protocol => "protocol",
            FailureKind::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: FailureKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
