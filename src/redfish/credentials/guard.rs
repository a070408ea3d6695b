//! The login guard: whether a credentials entry may be tried on a BMC now.
//!
//! Two rules, both about failed logins:
//! - **Per BMC** (no lockouts): a username that failed on a BMC is not
//!   tried there again within `window`, and one BMC sees at most
//!   `max_failures_per_bmc` failed logins per window, whatever the
//!   usernames (iDRAC blocks the client's address after three).
//! - **Per entry, across all BMCs** (no spraying): an entry may fail
//!   `budget` times within `budget_window`, on any BMCs; the failure that
//!   spends the budget suspends it for `suspension`, on every BMC but those
//!   it logged in to before. A device that takes a new MAC at every lease
//!   passes the per-BMC rule each time; this one stops it after `budget`
//!   tries. A suspended entry still takes its place among the entries a
//!   BMC is offered, so a suspension never moves a device further down
//!   the credentials file.
//!
//! Logins in progress reserve their share of the budget, so parallel
//! workers cannot overspend it: an entry fails at most `budget` times
//! before it is suspended (plus failures on BMCs it logged in to before,
//! which are never held back).
//!
//! The guard keeps everything in memory under one mutex and writes each
//! change through to a [`GuardJournal`] (the state file) after releasing
//! it; [`LoginGuard::restore`] reads it back at load, so neither a reload
//! nor a restart of Kea forgets a failure or a suspension.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::Credential;
use crate::clock::unix_ms;
use crate::config::defaults;
use crate::kea::log::kea_log;

/// Failed logins an entry may have across all BMCs within the budget
/// window before it is suspended (`redfish.credential-failure-budget`).
pub const DEFAULT_BUDGET: u32 = defaults::REDFISH_CREDENTIAL_FAILURE_BUDGET.default as u32;
/// `redfish.credential-failure-window-s`.
pub const DEFAULT_BUDGET_WINDOW_S: u64 = defaults::REDFISH_CREDENTIAL_FAILURE_WINDOW_S.default;
/// `redfish.credential-suspension-s`.
pub const DEFAULT_SUSPENSION_S: u64 = defaults::REDFISH_CREDENTIAL_SUSPENSION_S.default;
/// The BMCs a suspension remembers as the ones that spent the budget.
const SPENT_BY_KEPT: usize = 16;

/// The guard's rules (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardPolicy {
    pub window: Duration,
    pub max_failures_per_bmc: usize,
    pub budget: u32,
    pub budget_window: Duration,
    pub suspension: Duration,
}

impl GuardPolicy {
    /// The per-BMC rule as given, the per-entry budget at its defaults.
    pub fn per_bmc(window: Duration, max_failures_per_bmc: usize) -> GuardPolicy {
        GuardPolicy {
            window,
            max_failures_per_bmc: max_failures_per_bmc.max(1),
            budget: DEFAULT_BUDGET,
            budget_window: Duration::from_secs(DEFAULT_BUDGET_WINDOW_S),
            suspension: Duration::from_secs(DEFAULT_SUSPENSION_S),
        }
    }

    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// How long a failed login is remembered: the longer of the windows.
    fn memory_ms(&self) -> i64 {
        self.window.max(self.budget_window).as_millis() as i64
    }
}

/// One login, failed or not, as the state file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The BMC's MAC (or host:port without one).
    pub bmc: String,
    pub username: String,
    /// The entry's name (`Credential::name`).
    pub credential: String,
    pub at_ms: i64,
}

/// An entry's budget as the state file keeps it: written when it is
/// suspended or lifted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetRecord {
    /// Failures before this are not counted: the end of the last
    /// suspension, or when it was lifted (Unix ms).
    pub counted_from_ms: i64,
    /// The current or last suspension (Unix ms).
    pub suspended_since_ms: Option<i64>,
    pub suspended_until_ms: Option<i64>,
    /// The failed logins that spent the budget.
    pub failures: u32,
    /// The BMCs whose failed logins spent it (their MACs), most recent
    /// last: where to start looking.
    pub spent_by: Vec<String>,
}

/// What the state file holds for the guard.
#[derive(Clone, Debug, Default)]
pub struct GuardRecords {
    pub failures: Vec<Login>,
    /// The last successful login on each BMC.
    pub successes: Vec<Login>,
    pub budgets: Vec<(String, BudgetRecord)>,
}

/// Where the guard writes what it must not forget (the state file).
/// Implementations report their own errors: a full disk must not stop
/// logins.
pub trait GuardJournal: Send + Sync {
    /// A failed login; failures before `forget_before_ms` are no longer
    /// needed.
    fn login_failed(&self, failure: &Login, forget_before_ms: i64);
    /// The BMC's last successful login.
    fn login_succeeded(&self, login: &Login);
    fn budget_changed(&self, credential: &str, budget: &BudgetRecord);
}

/// Why an entry is not tried on a BMC now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeldBack {
    /// Its username failed on this BMC within the window.
    FailedHere,
    /// It spent its failure budget; suspended until then (Unix ms).
    Suspended { until_ms: i64 },
    /// What is left of its budget is reserved by logins in progress.
    BudgetInUse,
}

/// A suspension that just began, or was restored at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    pub credential: String,
    pub until_ms: i64,
    pub failures: u32,
    pub spent_by: Vec<String>,
}

/// One entry's budget, as `bmc-status` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CredentialStatus {
    pub name: String,
    /// Failed logins counted against the budget now.
    pub failures: u32,
    pub budget: u32,
    pub window_s: u64,
    pub suspended: bool,
    /// When the current or last suspension ends or ended (Unix s).
    pub suspended_until: Option<i64>,
    pub suspended_since: Option<i64>,
    /// The BMCs (MACs) whose failed logins spent it.
    pub spent_by: Vec<String>,
}

/// What lifting a suspension did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifted {
    pub was_suspended: bool,
    /// Failed logins no longer counted against the budget.
    pub failures_forgotten: u32,
}

#[derive(Default)]
struct Budget {
    /// Failures counted: (when, BMC), oldest first.
    spent: VecDeque<(i64, String)>,
    /// Logins in progress that may still fail.
    pending: u32,
    record: BudgetRecord,
}

impl Budget {
    fn prune(&mut self, now: i64, policy: &GuardPolicy) {
        let since =
            (now - policy.budget_window.as_millis() as i64).max(self.record.counted_from_ms);
        while self.spent.front().is_some_and(|(at, _)| *at < since) {
            self.spent.pop_front();
        }
    }

    fn suspended_until(&self, now: i64) -> Option<i64> {
        self.record.suspended_until_ms.filter(|u| *u > now)
    }
}

/// Everything the guard knows; the pure part, with the time passed in.
#[derive(Default)]
struct Book {
    /// (BMC, username) → its last failed login there.
    failed: HashMap<(String, String), i64>,
    /// BMC → the entry that last logged in there.
    good: HashMap<String, String>,
    budgets: HashMap<String, Budget>,
    /// Suspensions begun since the guard was made.
    suspensions: u64,
}

impl Book {
    fn failures_on(&self, bmc: &str, now: i64, p: &GuardPolicy) -> usize {
        let since = now - p.window_ms();
        self.failed
            .iter()
            .filter(|((b, _), at)| b == bmc && **at > since)
            .count()
    }

    fn begin(
        &mut self,
        credential: &Credential,
        bmc: &str,
        now: i64,
        p: &GuardPolicy,
    ) -> Result<bool, HeldBack> {
        let key = (bmc.to_string(), credential.username.clone());
        if self
            .failed
            .get(&key)
            .is_some_and(|at| *at > now - p.window_ms())
        {
            return Err(HeldBack::FailedHere);
        }
        // A BMC the entry logged in to already has its password: the
        // budget guards the entry from new devices, not from its own BMCs.
        let known = self.good.get(bmc) == Some(&credential.name);
        let b = self.budgets.entry(credential.name.clone()).or_default();
        b.prune(now, p);
        if known {
            return Ok(false);
        }
        if let Some(until_ms) = b.suspended_until(now) {
            return Err(HeldBack::Suspended { until_ms });
        }
        if b.spent.len() as u64 + u64::from(b.pending) >= u64::from(p.budget) {
            return Err(HeldBack::BudgetInUse);
        }
        b.pending += 1;
        Ok(true)
    }

    /// A failed login; the suspension it began, if it spent the budget.
    fn failed(
        &mut self,
        f: &Login,
        reserved: bool,
        p: &GuardPolicy,
    ) -> Option<(Suspension, BudgetRecord)> {
        let now = f.at_ms;
        self.failed.retain(|_, at| *at > now - p.window_ms());
        self.failed.insert((f.bmc.clone(), f.username.clone()), now);
        if self.good.get(&f.bmc) == Some(&f.credential) {
            self.good.remove(&f.bmc);
        }
        let b = self.budgets.entry(f.credential.clone()).or_default();
        if reserved {
            b.pending = b.pending.saturating_sub(1);
        }
        if now >= b.record.counted_from_ms {
            b.spent.push_back((now, f.bmc.clone()));
        }
        b.prune(now, p);
        if b.suspended_until(now).is_some() || (b.spent.len() as u64) < u64::from(p.budget) {
            return None;
        }
        let until = now + p.suspension.as_millis() as i64;
        let mut spent_by: Vec<String> = Vec::new();
        for (_, bmc) in b.spent.iter().rev() {
            if !spent_by.contains(bmc) && spent_by.len() < SPENT_BY_KEPT {
                spent_by.push(bmc.clone());
            }
        }
        spent_by.reverse();
        b.record = BudgetRecord {
            // After the cool-down the entry has its whole budget again.
            counted_from_ms: until,
            suspended_since_ms: Some(now),
            suspended_until_ms: Some(until),
            failures: b.spent.len() as u32,
            spent_by: spent_by.clone(),
        };
        b.spent.clear();
        self.suspensions += 1;
        let s = Suspension {
            credential: f.credential.clone(),
            until_ms: until,
            failures: b.record.failures,
            spent_by,
        };
        Some((s, b.record.clone()))
    }

    fn succeeded(&mut self, name: &str, username: &str, bmc: &str, reserved: bool) {
        self.failed.remove(&(bmc.to_string(), username.to_string()));
        self.good.insert(bmc.to_string(), name.to_string());
        if reserved {
            self.release(name);
        }
    }

    fn release(&mut self, credential: &str) {
        if let Some(b) = self.budgets.get_mut(credential) {
            b.pending = b.pending.saturating_sub(1);
        }
    }

    fn lift(&mut self, credential: &str, now: i64, p: &GuardPolicy) -> (Lifted, BudgetRecord) {
        let b = self.budgets.entry(credential.to_string()).or_default();
        b.prune(now, p);
        let was_suspended = b.suspended_until(now).is_some();
        let lifted = Lifted {
            was_suspended,
            failures_forgotten: b.spent.len() as u32,
        };
        b.spent.clear();
        b.record.counted_from_ms = now;
        if was_suspended {
            b.record.suspended_until_ms = Some(now);
        }
        (lifted, b.record.clone())
    }

    fn status(&mut self, name: &str, now: i64, p: &GuardPolicy) -> CredentialStatus {
        let b = self.budgets.entry(name.to_string()).or_default();
        b.prune(now, p);
        let suspended = b.suspended_until(now).is_some();
        CredentialStatus {
            name: name.to_string(),
            failures: if suspended {
                b.record.failures
            } else {
                b.spent.len() as u32
            },
            budget: p.budget,
            window_s: p.budget_window.as_secs(),
            suspended,
            suspended_until: b.record.suspended_until_ms.map(|t| t / 1000),
            suspended_since: b.record.suspended_since_ms.map(|t| t / 1000),
            spent_by: if suspended {
                b.record.spent_by.clone()
            } else {
                let mut by: Vec<String> = Vec::new();
                for (_, bmc) in &b.spent {
                    if !by.contains(bmc) {
                        by.push(bmc.clone());
                    }
                }
                by
            },
        }
    }

    fn restore(&mut self, records: GuardRecords, now: i64, p: &GuardPolicy) {
        for (name, record) in records.budgets {
            self.budgets.entry(name).or_default().record = record;
        }
        let mut failures = records.failures;
        failures.sort_by_key(|f| f.at_ms);
        for f in failures
            .into_iter()
            .filter(|f| f.at_ms > now - p.memory_ms())
        {
            let at = self
                .failed
                .entry((f.bmc.clone(), f.username.clone()))
                .or_default();
            *at = (*at).max(f.at_ms);
            let b = self.budgets.entry(f.credential).or_default();
            if f.at_ms >= b.record.counted_from_ms {
                b.spent.push_back((f.at_ms, f.bmc));
            }
        }
        for b in self.budgets.values_mut() {
            b.prune(now, p);
        }
        for ok in records.successes {
            let key = (ok.bmc.clone(), ok.username);
            if self.failed.get(&key).is_some_and(|at| *at <= ok.at_ms) {
                self.failed.remove(&key);
            }
            self.good.insert(ok.bmc, ok.credential);
        }
    }
}

/// The guard of all workers' logins (see the module's text).
pub struct LoginGuard {
    policy: GuardPolicy,
    /// The entries of the credentials file, in file order (for the
    /// status); empty when the guard was made without them.
    names: Vec<String>,
    book: Mutex<Book>,
    journal: RwLock<Option<Arc<dyn GuardJournal>>>,
}

impl LoginGuard {
    /// A guard allowing two failed logins per BMC per `window`.
    pub fn new(window: Duration) -> LoginGuard {
        LoginGuard::with_limit(window, defaults::REDFISH_MAX_FAILED_LOGINS.default as usize)
    }

    /// A guard that also stops after `max_failures_per_bmc` failed logins
    /// on one BMC within the window.
    pub fn with_limit(window: Duration, max_failures_per_bmc: usize) -> LoginGuard {
        LoginGuard::with_policy(GuardPolicy::per_bmc(window, max_failures_per_bmc), &[])
    }

    /// A guard with `policy` for the entries named `names`.
    pub fn with_policy(policy: GuardPolicy, names: &[&str]) -> LoginGuard {
        LoginGuard {
            policy: GuardPolicy {
                max_failures_per_bmc: policy.max_failures_per_bmc.max(1),
                budget: policy.budget.max(1),
                ..policy
            },
            names: names.iter().map(|n| n.to_string()).collect(),
            book: Mutex::new(Book::default()),
            journal: RwLock::new(None),
        }
    }

    /// Takes back what `journal` recorded and writes to it from now on.
    /// Returns the suspensions still running, to be reported.
    pub fn restore(
        &self,
        records: GuardRecords,
        journal: Arc<dyn GuardJournal>,
    ) -> Vec<Suspension> {
        let now = unix_ms();
        let mut book = self.lock();
        book.restore(records, now, &self.policy);
        let running = book
            .budgets
            .iter()
            .filter(|(name, b)| self.names.contains(name) && b.suspended_until(now).is_some())
            .map(|(name, b)| Suspension {
                credential: name.clone(),
                until_ms: b.record.suspended_until_ms.unwrap_or(now),
                failures: b.record.failures,
                spent_by: b.record.spent_by.clone(),
            })
            .collect();
        drop(book);
        *self.journal.write().unwrap_or_else(|p| p.into_inner()) = Some(journal);
        running
    }

    pub fn policy(&self) -> &GuardPolicy {
        &self.policy
    }

    pub fn max_failures_per_bmc(&self) -> usize {
        self.policy.max_failures_per_bmc
    }

    /// The per-BMC window, for messages.
    pub fn window(&self) -> Duration {
        self.policy.window
    }

    /// Failed logins on `bmc` within the window.
    pub fn failures_on(&self, bmc: &str) -> usize {
        self.lock().failures_on(bmc, unix_ms(), &self.policy)
    }

    /// The entry (its name) that last logged in to `bmc`.
    pub fn last_good(&self, bmc: &str) -> Option<String> {
        self.lock().good.get(bmc).cloned()
    }

    /// Asks to try `credential` on `bmc`. The attempt must be told how the
    /// login went; dropped untold (the BMC failed otherwise), it gives its
    /// share of the budget back.
    pub fn begin<'a>(
        &'a self,
        credential: &Credential,
        bmc: &str,
    ) -> Result<Attempt<'a>, HeldBack> {
        let reserved = self
            .lock()
            .begin(credential, bmc, unix_ms(), &self.policy)?;
        Ok(Attempt {
            guard: self,
            name: credential.name.clone(),
            username: credential.username.clone(),
            bmc: bmc.to_string(),
            reserved,
            done: false,
        })
    }

    /// Ends `name`'s suspension now (an operator looked into it) and
    /// forgets the failures counted against its budget. The per-BMC rule
    /// is not touched: no BMC sees more failed logins for it. Err: no
    /// entry of that name.
    pub fn lift(&self, name: &str) -> Result<Lifted, String> {
        if !self.names.iter().any(|n| n == name) {
            return Err(format!(
                "no credentials entry is named {name:?}; entries: {}",
                self.names.join(", ")
            ));
        }
        let (lifted, record) = self.lock().lift(name, unix_ms(), &self.policy);
        self.journal(|j| j.budget_changed(name, &record));
        Ok(lifted)
    }

    /// Every entry's budget, in file order.
    pub fn status(&self) -> Vec<CredentialStatus> {
        let now = unix_ms();
        let mut book = self.lock();
        self.names
            .iter()
            .map(|n| book.status(n, now, &self.policy))
            .collect()
    }

    /// Suspensions begun since this guard was made (a load).
    pub fn suspensions(&self) -> u64 {
        self.lock().suspensions
    }

    /// When the first running suspension ends (Unix ms): when a BMC held
    /// back by one is worth trying again.
    pub fn next_lift_ms(&self) -> Option<i64> {
        let now = unix_ms();
        self.lock()
            .budgets
            .values()
            .filter_map(|b| b.suspended_until(now))
            .min()
    }

    fn journal(&self, f: impl FnOnce(&dyn GuardJournal)) {
        let j = self
            .journal
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(j) = j {
            f(j.as_ref());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding this lock leaves plain maps behind; keep going.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One login being tried (`LoginGuard::begin`).
pub struct Attempt<'a> {
    guard: &'a LoginGuard,
    name: String,
    username: String,
    bmc: String,
    reserved: bool,
    done: bool,
}

impl Attempt<'_> {
    /// The BMC refused the login.
    pub fn failed(mut self) {
        self.done = true;
        let g = self.guard;
        let f = Login {
            bmc: self.bmc.clone(),
            username: self.username.clone(),
            credential: self.name.clone(),
            at_ms: unix_ms(),
        };
        let suspended = g.lock().failed(&f, self.reserved, &g.policy);
        g.journal(|j| j.login_failed(&f, f.at_ms - g.policy.memory_ms()));
        if let Some((s, record)) = suspended {
            g.journal(|j| j.budget_changed(&s.credential, &record));
            kea_log!(
                BMC_DISCOVERY_CREDENTIAL_SUSPENDED,
                s.credential,
                g.policy.suspension.as_secs(),
                s.failures,
                s.spent_by.len(),
                g.policy.budget_window.as_secs(),
                s.spent_by.join(" ")
            );
        }
    }

    /// The login worked.
    pub fn succeeded(mut self) {
        self.done = true;
        let g = self.guard;
        g.lock()
            .succeeded(&self.name, &self.username, &self.bmc, self.reserved);
        let ok = Login {
            bmc: self.bmc.clone(),
            username: self.username.clone(),
            credential: self.name.clone(),
            at_ms: unix_ms(),
        };
        g.journal(|j| j.login_succeeded(&ok));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done && self.reserved {
            self.guard.lock().release(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redfish::credentials::Secret;

    fn cred(name: &str, username: &str) -> Credential {
        Credential {
            name: name.into(),
            username: username.into(),
            password: Secret::new("p".into()),
            vendor: None,
            ouis: Vec::new(),
        }
    }

    fn policy(budget: u32) -> GuardPolicy {
        GuardPolicy {
            window: Duration::from_secs(60),
            max_failures_per_bmc: 2,
            budget,
            budget_window: Duration::from_secs(600),
            suspension: Duration::from_secs(300),
        }
    }

    fn fail(book: &mut Book, c: &Credential, bmc: &str, at: i64, p: &GuardPolicy) -> bool {
        let reserved = book.begin(c, bmc, at, p).expect("may be tried");
        let f = Login {
            bmc: bmc.into(),
            username: c.username.clone(),
            credential: c.name.clone(),
            at_ms: at,
        };
        book.failed(&f, reserved, p).is_some()
    }

    #[test]
    fn a_username_fails_once_per_bmc_per_window() {
        let p = policy(100);
        let mut b = Book::default();
        let root = cred("root", "root");
        let root2 = cred("root#2", "root");
        assert!(!fail(&mut b, &root, "bmc1", 0, &p));
        // Another entry with the same username: the account is the same.
        assert_eq!(b.begin(&root2, "bmc1", 1, &p), Err(HeldBack::FailedHere));
        assert_eq!(b.begin(&root, "bmc2", 1, &p), Ok(true));
        assert_eq!(b.failures_on("bmc1", 1, &p), 1);
        // After the window it may fail there once more.
        assert_eq!(b.failures_on("bmc1", 60_001, &p), 0);
        assert_eq!(b.begin(&root, "bmc1", 60_001, &p), Ok(true));
    }

    #[test]
    fn a_mac_cycling_device_spends_the_budget_then_the_entry_is_suspended() {
        let p = policy(3);
        let mut b = Book::default();
        let root = cred("root", "root");
        let good = cred("root", "root");
        // bmc0 is the entry's own BMC: it logged in there before.
        let r = b.begin(&good, "bmc0", 0, &p).unwrap();
        b.succeeded("root", "root", "bmc0", r);
        assert!(!fail(&mut b, &root, "mac1", 10, &p));
        assert!(!fail(&mut b, &root, "mac2", 20, &p));
        assert!(fail(&mut b, &root, "mac3", 30, &p), "the third spends it");
        let until = 30 + 300_000;
        assert_eq!(
            b.begin(&root, "mac4", 40, &p),
            Err(HeldBack::Suspended { until_ms: until })
        );
        // Its own BMC still logs in with it.
        assert_eq!(b.begin(&good, "bmc0", 40, &p), Ok(false));
        let s = b.status("root", 40, &p);
        assert!(s.suspended);
        assert_eq!((s.failures, s.budget), (3, 3));
        assert_eq!(s.spent_by, ["mac1", "mac2", "mac3"]);
        assert_eq!(b.suspensions, 1);
        // After the cool-down the whole budget is back.
        assert_eq!(b.begin(&root, "mac4", until, &p), Ok(true));
        b.release("root");
        let s = b.status("root", until, &p);
        assert!(!s.suspended);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn logins_in_progress_cannot_overspend_the_budget() {
        let p = policy(2);
        let mut b = Book::default();
        let root = cred("root", "root");
        assert_eq!(b.begin(&root, "mac1", 0, &p), Ok(true));
        assert_eq!(b.begin(&root, "mac2", 0, &p), Ok(true));
        assert_eq!(b.begin(&root, "mac3", 0, &p), Err(HeldBack::BudgetInUse));
        // One of them ended otherwise (the BMC timed out): its share is back.
        b.release("root");
        assert_eq!(b.begin(&root, "mac3", 0, &p), Ok(true));
        // A success gives its share back and spends nothing.
        b.succeeded("root", "root", "mac3", true);
        assert_eq!(b.status("root", 0, &p).failures, 0);
        assert_eq!(b.begin(&root, "mac4", 0, &p), Ok(true));
    }

    #[test]
    fn failures_older_than_the_budget_window_no_longer_count() {
        let p = policy(2);
        let mut b = Book::default();
        let root = cred("root", "root");
        assert!(!fail(&mut b, &root, "mac1", 0, &p));
        assert!(
            !fail(&mut b, &root, "mac2", 600_001, &p),
            "the first fell out of the window"
        );
        assert!(fail(&mut b, &root, "mac3", 600_002, &p));
    }

    #[test]
    fn lifting_ends_the_suspension_and_starts_the_budget_again() {
        let p = policy(1);
        let mut b = Book::default();
        let root = cred("root", "root");
        assert!(fail(&mut b, &root, "mac1", 0, &p));
        let (lifted, record) = b.lift("root", 1_000, &p);
        assert!(lifted.was_suspended);
        assert_eq!(record.suspended_until_ms, Some(1_000));
        assert_eq!(record.counted_from_ms, 1_000);
        // The per-BMC rule still holds; other BMCs get it again.
        assert_eq!(b.begin(&root, "mac1", 1_001, &p), Err(HeldBack::FailedHere));
        assert_eq!(b.begin(&root, "mac2", 1_001, &p), Ok(true));
        let (again, _) = b.lift("root", 1_002, &p);
        assert!(!again.was_suspended);
    }

    #[test]
    fn what_the_journal_kept_is_restored() {
        let p = policy(2);
        let mut b = Book::default();
        let root = cred("root", "root");
        fail(&mut b, &root, "mac1", 0, &p);
        fail(&mut b, &root, "mac2", 1, &p);
        let record = b.budgets["root"].record.clone();
        let records = GuardRecords {
            failures: vec![
                Login {
                    bmc: "mac1".into(),
                    username: "root".into(),
                    credential: "root".into(),
                    at_ms: 0,
                },
                Login {
                    bmc: "mac2".into(),
                    username: "root".into(),
                    credential: "root".into(),
                    at_ms: 1,
                },
            ],
            successes: vec![Login {
                bmc: "bmc0".into(),
                username: "root".into(),
                credential: "root".into(),
                at_ms: 0,
            }],
            budgets: vec![("root".into(), record)],
        };
        let mut restored = Book::default();
        restored.restore(records, 10, &p);
        assert_eq!(
            restored.begin(&root, "mac3", 10, &p),
            Err(HeldBack::Suspended { until_ms: 300_001 })
        );
        assert_eq!(
            restored.begin(&root, "mac1", 10, &p),
            Err(HeldBack::FailedHere)
        );
        assert_eq!(restored.begin(&root, "bmc0", 10, &p), Ok(false));
        // The failures before the suspension's end are not counted again.
        assert_eq!(restored.status("root", 300_001, &p).failures, 0);
    }

    #[test]
    fn the_guard_lifts_only_entries_it_knows() {
        let g = LoginGuard::with_policy(policy(5), &["root", "admin"]);
        let e = g.lift("nobody").unwrap_err();
        assert_eq!(
            e,
            "no credentials entry is named \"nobody\"; entries: root, admin"
        );
        assert!(!g.lift("root").unwrap().was_suspended);
        let names: Vec<String> = g.status().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["root", "admin"]);
    }
}
