//! The login guard's part of the state file (schema 3): failed and last
//! successful logins per BMC and the failure budget of each credentials
//! entry, so that a restart of Kea neither lets a username fail on a BMC
//! again early nor ends a suspension. Entries are named by their name in
//! the credentials file, never by anything derived from a password.

use rusqlite::params;

use super::{Store, StoreError};
use crate::clock::unix_s;
use crate::kea::log::kea_log;
use crate::redfish::credentials::guard::{BudgetRecord, GuardJournal, GuardRecords, Login};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS login_failure (
    bmc        TEXT NOT NULL,
    username   TEXT NOT NULL,
    credential TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failure_at ON login_failure(at_ms);
CREATE TABLE IF NOT EXISTS login_success (
    bmc        TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    credential TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credential_budget (
    credential         TEXT PRIMARY KEY,
    counted_from_ms    INTEGER NOT NULL,
    suspended_since_ms INTEGER,
    suspended_until_ms INTEGER,
    failures           INTEGER NOT NULL DEFAULT 0,
    spent_by           TEXT NOT NULL DEFAULT ''
);
";

impl Store {
    /// Everything the login guard recorded, for `LoginGuard::restore`.
    pub fn login_records(&self) -> Result<GuardRecords, StoreError> {
        let conn = self.conn();
        let login = |r: &rusqlite::Row| {
            Ok(Login {
                bmc: r.get(0)?,
                username: r.get(1)?,
                credential: r.get(2)?,
                at_ms: r.get(3)?,
            })
        };
        let failures = conn
            .prepare("SELECT bmc, username, credential, at_ms FROM login_failure ORDER BY at_ms")?
            .query_map([], login)?
            .collect::<Result<Vec<_>, _>>()?;
        let successes = conn
            .prepare("SELECT bmc, username, credential, at_ms FROM login_success")?
            .query_map([], login)?
            .collect::<Result<Vec<_>, _>>()?;
        let budgets = conn
            .prepare(
                "SELECT credential, counted_from_ms, suspended_since_ms, suspended_until_ms, \
                 failures, spent_by FROM credential_budget",
            )?
            .query_map([], |r| {
                let spent_by: String = r.get(5)?;
                Ok((
                    r.get(0)?,
                    BudgetRecord {
                        counted_from_ms: r.get(1)?,
                        suspended_since_ms: r.get(2)?,
                        suspended_until_ms: r.get(3)?,
                        failures: r.get(4)?,
                        spent_by: spent_by.split_whitespace().map(str::to_string).collect(),
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GuardRecords {
            failures,
            successes,
            budgets,
        })
    }

    /// BMCs that failed with `class` and wait for their next attempt: due
    /// now (what held them back was lifted). Returns how many.
    pub fn due_now(&self, class: &str) -> Result<u64, StoreError> {
        self.conn()
            .execute(
                "UPDATE bmc SET next_attempt_at = ?2 WHERE state = 'failed' AND error_class = ?1",
                params![class, unix_s()],
            )
            .map(|n| n as u64)
            .map_err(StoreError::from)
    }

    fn write_login_failure(&self, f: &Login, forget_before_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO login_failure (bmc, username, credential, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![f.bmc, f.username, f.credential, f.at_ms],
        )?;
        tx.execute(
            "DELETE FROM login_failure WHERE at_ms < ?1",
            params![forget_before_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn write_login_success(&self, ok: &Login) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO login_success (bmc, username, credential, at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(bmc) DO UPDATE SET username = ?2, credential = ?3, at_ms = ?4",
            params![ok.bmc, ok.username, ok.credential, ok.at_ms],
        )?;
        Ok(())
    }

    fn write_budget(&self, credential: &str, b: &BudgetRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO credential_budget (credential, counted_from_ms, suspended_since_ms, \
             suspended_until_ms, failures, spent_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(credential) DO UPDATE SET counted_from_ms = ?2, \
             suspended_since_ms = ?3, suspended_until_ms = ?4, failures = ?5, spent_by = ?6",
            params![
                credential,
                b.counted_from_ms,
                b.suspended_since_ms,
                b.suspended_until_ms,
                b.failures,
                b.spent_by.join(" ")
            ],
        )?;
        Ok(())
    }
}

/// A full disk must not stop logins: the error is logged, the guard goes
/// on from memory.
fn logged(r: Result<(), StoreError>) {
    if let Err(e) = r {
        kea_log!(BMC_DISCOVERY_STATE_FAILED, e);
    }
}

impl GuardJournal for Store {
    fn login_failed(&self, failure: &Login, forget_before_ms: i64) {
        logged(self.write_login_failure(failure, forget_before_ms));
    }

    fn login_succeeded(&self, login: &Login) {
        logged(self.write_login_success(login));
    }

    fn budget_changed(&self, credential: &str, budget: &BudgetRecord) {
        logged(self.write_budget(credential, budget));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Failure, Lease, RetryPolicy, State};
    use super::*;
    use crate::redfish::credentials::guard::{GuardPolicy, HeldBack, LoginGuard};
    use crate::redfish::credentials::Credentials;
    use rusqlite::Connection;
    use std::sync::Arc;
    use std::time::Duration;

    fn policy() -> GuardPolicy {
        GuardPolicy {
            window: Duration::from_secs(600),
            max_failures_per_bmc: 2,
            budget: 2,
            budget_window: Duration::from_secs(3600),
            suspension: Duration::from_secs(1800),
        }
    }

    #[test]
    fn a_suspension_and_the_login_guard_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("bmc-state-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        let creds = Credentials::parse(
            r#"[{"username": "root", "password": "y"},
                {"username": "admin", "password": "x"}]"#,
        )
        .unwrap();
        let [root, admin] = &creds.entries[..] else {
            panic!()
        };
        {
            let store = Arc::new(Store::open(&path).unwrap());
            let g = LoginGuard::with_policy(policy(), &["root", "admin"]);
            assert!(g
                .restore(store.login_records().unwrap(), store.clone())
                .is_empty());
            g.begin(root, "bmc0").unwrap().succeeded();
            g.begin(admin, "mac1").unwrap().failed();
            g.begin(root, "mac1").unwrap().failed();
            g.begin(root, "mac2").unwrap().failed();
            assert!(g.status()[0].suspended);
        }
        let store = Arc::new(Store::open(&path).unwrap());
        let g = LoginGuard::with_policy(policy(), &["root", "admin"]);
        let running = g.restore(store.login_records().unwrap(), store.clone());
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].credential, "root");
        assert_eq!(running[0].spent_by, ["mac1", "mac2"]);
        assert!(matches!(
            g.begin(root, "mac3").err(),
            Some(HeldBack::Suspended { .. })
        ));
        // The BMC it logged in to keeps it; mac1 may see no more failures.
        assert!(g.begin(root, "bmc0").is_ok());
        assert_eq!(g.failures_on("mac1"), 2);
        assert_eq!(g.begin(admin, "mac1").err(), Some(HeldBack::FailedHere));
        let s = &g.status()[1];
        assert_eq!(
            (s.name.as_str(), s.failures, s.suspended),
            ("admin", 1, false)
        );

        // A BMC held back by it waits for its end; a lift makes it due now.
        let mac = "aa:bb:cc:00:00:09";
        let lease = Lease {
            mac,
            ip: "10.0.0.9",
            subnet_id: 1,
            hostname: "",
        };
        store.begin(&lease, 0, true).unwrap();
        let until = g.next_lift_ms().unwrap() / 1000;
        let held = Failure {
            class: "credential-suspended",
            message: "held back",
            counts: false,
            retry_at: Some(until),
        };
        let (st, next) = store.failed(mac, &held, &RetryPolicy::default()).unwrap();
        assert_eq!((st, next), (State::Failed, Some(until)));
        assert!(g.lift("root").unwrap().was_suspended);
        assert_eq!(store.due_now("credential-suspended").unwrap(), 1);
        assert_eq!(
            store.take_due(10, Duration::from_secs(60)).unwrap().len(),
            1
        );
        drop((g, store));
        let store = Arc::new(Store::open(&path).unwrap());
        let g = LoginGuard::with_policy(policy(), &["root", "admin"]);
        assert!(g
            .restore(store.login_records().unwrap(), store.clone())
            .is_empty());
        assert!(g.begin(root, "mac3").is_ok(), "lifted for good");
        drop((g, store));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_schema_2_gets_the_guard_tables() {
        let dir = std::env::temp_dir().join(format!("bmc-state-v2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(super::super::SCHEMA).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let version: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 5);
        assert!(store.login_records().unwrap().failures.is_empty());
        drop(store);
        // A newer file is refused, naming both schemas.
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 6).unwrap();
        }
        let e = Store::open(&path).err().unwrap().to_string();
        assert!(e.contains("schema 6, this one knows 5"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
