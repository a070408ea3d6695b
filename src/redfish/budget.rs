//! What one discovery may cost: requests, bytes read, memory of the parsed
//! answers it keeps. Counted where the cost is incurred (the HTTP client
//! charges every request before sending it and every chunk of a body as it
//! is read), atomically, because up to `parallel-requests` threads fetch
//! for one discovery at once. The first charge over a limit fails the
//! discovery with that budget's own failure class.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::error::{Error, FailureKind};
use super::Limits;

pub struct Budget {
    max_requests: u32,
    max_bytes: u64,
    max_parsed: u64,
    requests: AtomicU32,
    bytes: AtomicU64,
    parsed: AtomicU64,
}

impl Budget {
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            max_requests: limits.max_requests,
            max_bytes: limits.max_discovery_bytes,
            max_parsed: limits.max_parsed_bytes,
            requests: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
            parsed: AtomicU64::new(0),
        }
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn parsed(&self) -> u64 {
        self.parsed.load(Ordering::Relaxed)
    }

    /// One more request, about to be sent (`doing` names it).
    pub fn request(&self, bmc: &str, doing: &str) -> Result<(), Error> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.max_requests {
            return Err(Error::new(
                FailureKind::BudgetRequests,
                format!(
                    "BMC {bmc}: more than {} requests in one discovery (redfish.max-requests), \
                     refused {doing}; a BMC that links without end is broken or hostile",
                    self.max_requests
                ),
            ));
        }
        Ok(())
    }

    /// A request that must go out whatever the budget says (the logout:
    /// an open session holds one of the BMC's few slots); counted only.
    pub fn request_anyway(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more body bytes read for `doing`.
    pub fn read(&self, bmc: &str, doing: &str, n: u64) -> Result<(), Error> {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_bytes {
            return Err(Error::new(
                FailureKind::BudgetBytes,
                format!(
                    "BMC {bmc}: more than {} bytes read in one discovery \
                     (redfish.max-discovery-bytes), while reading {doing}; \
                     the largest real BMC sends under 1 MB in all",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// A parsed answer of (at most) `n` bytes about to be kept.
    pub fn keep(&self, bmc: &str, doing: &str, n: u64) -> Result<(), Error> {
        let total = self.parsed.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_parsed {
            return Err(Error::new(
                FailureKind::BudgetMemory,
                format!(
                    "BMC {bmc}: the answers of one discovery would take more than {} bytes \
                     of memory once parsed (redfish.max-parsed-bytes), at {doing} \
                     ({n} bytes for that answer alone)",
                    self.max_parsed
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_budget_fails_with_its_own_class_when_exceeded() {
        let limits = Limits {
            max_requests: 2,
            max_discovery_bytes: 100,
            max_parsed_bytes: 1000,
            ..Limits::default()
        };
        let b = Budget::new(&limits);
        assert!(b.request("bmc", "GET /a").is_ok());
        assert!(b.request("bmc", "GET /b").is_ok());
        let e = b.request("bmc", "GET /c").unwrap_err();
        assert_eq!(e.kind, FailureKind::BudgetRequests);
        assert!(e.message.contains("GET /c") && e.message.contains("max-requests"));
        b.request_anyway();
        assert_eq!(b.requests(), 4);

        assert!(b.read("bmc", "/a", 60).is_ok());
        assert_eq!(
            b.read("bmc", "/a", 41).unwrap_err().kind,
            FailureKind::BudgetBytes
        );
        assert!(b.keep("bmc", "/a", 1000).is_ok());
        assert_eq!(
            b.keep("bmc", "/b", 1).unwrap_err().kind,
            FailureKind::BudgetMemory
        );
    }

    #[test]
    fn parallel_charges_are_never_lost() {
        let limits = Limits {
            max_requests: 10_000,
            ..Limits::default()
        };
        let b = Budget::new(&limits);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        let _ = b.request("bmc", "GET /x");
                    }
                });
            }
        });
        assert_eq!(b.requests(), 8000);
        assert!(b.request("bmc", "x").is_ok());
        let over = (0..2000).filter(|_| b.request("bmc", "x").is_err()).count();
        assert_eq!(over, 2000 - 1999);
    }
}
