//! Why a NetBox call failed: the client's answer, and what the batcher
//! (`batch.rs`) hands each request of a bulk one.

/// Why a NetBox call failed. Messages never carry the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBoxError {
    /// No answer, or 5xx/429 after the retries: try again later.
    Unavailable(String),
    /// 401/403: the token is wrong or lacks permission.
    Auth(String),
    /// 400/404/409...: NetBox refused the request; the body says why.
    Rejected { status: u16, message: String },
    /// Not what NetBox's API promises (not JSON, unsupported version).
    Protocol(String),
}

impl std::fmt::Display for NetBoxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetBoxError::Unavailable(m) => write!(f, "NetBox unavailable: {m}"),
            NetBoxError::Auth(m) => write!(f, "NetBox refused the token: {m}"),
            NetBoxError::Rejected { status, message } => {
                write!(f, "NetBox refused the request (HTTP {status}): {message}")
            }
            NetBoxError::Protocol(m) => write!(f, "NetBox: {m}"),
        }
    }
}

impl std::error::Error for NetBoxError {}
