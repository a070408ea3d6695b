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
    /// Every entry this BMC could be offered was held back because it
    /// spent its failure budget across all BMCs (`credential-failure-budget`)
    /// and none was refused: the BMC is tried again when the suspension
    /// ends, without using up an attempt.
    CredentialSuspended,
    /// The BMC answered, but not with what Redfish promises (bad status,
    /// malformed or oversized body, redirect loop, missing resources).
    Protocol,
    /// The hook is stopping (Kea unloads or reloads it).
    Cancelled,
    /// A link, redirect or session `Location` pointing off the BMC's own
    /// origin (another host, port or scheme, or with userinfo): refused,
    /// nothing was sent there.
    ForeignLink,
    // Budgets per discovery (`Limits`): a BMC that exceeds one is broken
    // or hostile, and the discovery stops at once.
    /// More requests than `max-requests`.
    BudgetRequests,
    /// More bytes read than `max-discovery-bytes`.
    BudgetBytes,
    /// One answer larger than `max-response-bytes` or nested deeper than
    /// the JSON depth limit.
    BudgetResponse,
    /// An array or object with more elements than `max-collection-members`.
    BudgetMembers,
    /// Parsed answers would take more memory than `max-parsed-bytes`.
    BudgetMemory,
    /// The discovery's deadline (`deadline-ms`) passed.
    BudgetTime,
}

impl FailureKind {
    /// Every class, for the metrics' help text and its test.
    pub const ALL: [FailureKind; 14] = [
        FailureKind::Unreachable,
        FailureKind::Timeout,
        FailureKind::Tls,
        FailureKind::Auth,
        FailureKind::CredentialSuspended,
        FailureKind::Protocol,
        FailureKind::Cancelled,
        FailureKind::ForeignLink,
        FailureKind::BudgetRequests,
        FailureKind::BudgetBytes,
        FailureKind::BudgetResponse,
        FailureKind::BudgetMembers,
        FailureKind::BudgetMemory,
        FailureKind::BudgetTime,
    ];

    /// Whether trying again later can help without anyone changing
    /// anything. Auth is not: the next attempt would cost a failed login.
    /// A budget or a foreign link is not: the BMC answers the same way.
    pub fn transient(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable
                | FailureKind::Timeout
                | FailureKind::Protocol
                | FailureKind::Cancelled
                | FailureKind::CredentialSuspended
        )
    }

    /// Whether the failure is about the BMC as a whole rather than one
    /// resource: the discovery stops at once instead of trying the rest.
    pub fn ends_discovery(self) -> bool {
        !matches!(self, FailureKind::Protocol | FailureKind::Auth)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unreachable => "unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::Tls => "tls",
            FailureKind::Auth => "auth",
            FailureKind::CredentialSuspended => "credential-suspended",
            FailureKind::Protocol => "protocol",
            FailureKind::Cancelled => "cancelled",
            FailureKind::ForeignLink => "foreign-link",
            FailureKind::BudgetRequests => "budget-requests",
            FailureKind::BudgetBytes => "budget-bytes",
            FailureKind::BudgetResponse => "budget-response",
            FailureKind::BudgetMembers => "budget-members",
            FailureKind::BudgetMemory => "budget-memory",
            FailureKind::BudgetTime => "budget-time",
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
