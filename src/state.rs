//! What the hook knows about every BMC it has seen, in one SQLite file that
//! survives reloads, restarts and crashes: where each BMC is in the
//! pipeline, how often it failed and why, when to try again, and what
//! NetBox device it became. Workers write it; control commands and the
//! retry scheduler read it. Never touched on a packet thread.
//!
//! States: `queued` (found by reconciliation in Kea's lease database,
//! waiting for room in the queue) → `discovering` (a worker has it) →
//! `registered` (in NetBox) or `discovered` (no NetBox configured); or
//! `failed` (waiting for its next attempt) → `dead` after the last attempt.
//! A BMC whose work was cut short (Kea stopped or crashed) is `failed`
//! again at the next start, due at once. The store is the durable queue:
//! the scheduler hands `queued` and due `failed` BMCs to the workers, oldest
//! lease first, only as fast as the in-memory queue has room.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::unix_s;
use crate::config::defaults;

mod login_guard;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// Bumped when a table changes or is added; older files are migrated at
/// open. 2: `replace_bmc`. 3: the login guard's tables (`login_guard.rs`).
/// 4: `lldp_unmatched`. 5: `ipv4` and `ipv6`, each family's last address.
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bmc (
    mac             TEXT PRIMARY KEY,
    ip              TEXT NOT NULL,
    subnet_id       INTEGER NOT NULL,
    hostname        TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    error_class     TEXT,
    device_id       INTEGER,
    name            TEXT,
    site            TEXT,
    rack            TEXT,
    unit            INTEGER,
    manufacturer    TEXT,
    model           TEXT,
    serial          TEXT,
    first_seen      INTEGER NOT NULL,
    leased_at_ms    INTEGER NOT NULL,
    discovered_at   INTEGER,
    registered_at   INTEGER,
    discovery_ms    INTEGER,
    register_ms     INTEGER,
    updated_at      INTEGER NOT NULL,
    replace_bmc     INTEGER NOT NULL DEFAULT 0,
    lldp_unmatched  TEXT,
    ipv4            TEXT,
    ipv6            TEXT
);
CREATE INDEX IF NOT EXISTS bmc_due ON bmc(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS bmc_ip ON bmc(ip);
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Discovering,
    Discovered,
    Registered,
    Failed,
    Dead,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Discovering,
        State::Discovered,
        State::Registered,
        State::Failed,
        State::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Discovering => "discovering",
            State::Discovered => "discovered",
            State::Registered => "registered",
            State::Failed => "failed",
            State::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One BMC, as `bmc-get` and `bmc-list` show it. Times are Unix seconds.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Bmc {
    pub mac: String,
    /// The address of the lease behind the current or last attempt, of
    /// either family: where the BMC is discovered.
    pub ip: String,
    /// The last IPv4 address (kea-dhcp4) and IPv6 address (kea-dhcp6)
    /// seen for this BMC: a dual-stack BMC keeps both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    pub subnet_id: u32,
    pub hostname: String,
    pub state: State,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub error_class: Option<String>,
    #[serde(flatten)]
    pub found: Found,
    pub first_seen: i64,
    /// When the lease that started the current or last attempt was seen
    /// (Unix milliseconds).
    pub leased_at_ms: i64,
    pub discovered_at: Option<i64>,
    pub registered_at: Option<i64>,
    pub discovery_ms: Option<u64>,
    pub register_ms: Option<u64>,
}

impl Bmc {
    /// The lease to queue again for this BMC (a retry or a command).
    pub fn lease_event(&self) -> Option<crate::kea::lease::LeaseEvent> {
        let ip = self.ip.parse().ok()?;
        crate::kea::lease::LeaseEvent::replay(&self.mac, ip, self.subnet_id, &self.hostname)
    }

    /// The lease to queue for `bmc-discover`: done whatever the state.
    pub fn forced_event(&self) -> Option<crate::kea::lease::LeaseEvent> {
        let ip = self.ip.parse().ok()?;
        crate::kea::lease::LeaseEvent::forced(&self.mac, ip, self.subnet_id, &self.hostname)
    }
}

const COLUMNS: &str = "mac, ip, subnet_id, hostname, state, attempts, next_attempt_at, \
    last_error, error_class, device_id, name, site, rack, unit, manufacturer, model, serial, \
    first_seen, leased_at_ms, discovered_at, registered_at, discovery_ms, register_ms, \
    lldp_unmatched, ipv4, ipv6";

fn from_row(r: &Row) -> rusqlite::Result<Bmc> {
    let state: String = r.get(4)?;
    Ok(Bmc {
        mac: r.get(0)?,
        ip: r.get(1)?,
        ipv4: r.get(24)?,
        ipv6: r.get(25)?,
        subnet_id: r.get(2)?,
        hostname: r.get(3)?,
        // A state this version does not know (a newer file) reads as
        // failed: it will be tried again, never lost.
        state: State::parse(&state).unwrap_or(State::Failed),
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
        error_class: r.get(8)?,
        found: Found {
            device_id: r.get(9)?,
            name: r.get(10)?,
            site: r.get(11)?,
            rack: r.get(12)?,
            unit: r.get(13)?,
            manufacturer: r.get(14)?,
            model: r.get(15)?,
            serial: r.get(16)?,
            lldp_unmatched: unmatched_list(r.get(23)?),
        },
        first_seen: r.get(17)?,
        leased_at_ms: r.get(18)?,
        discovered_at: r.get(19)?,
        registered_at: r.get(20)?,
        discovery_ms: r.get(21)?,
        register_ms: r.get(22)?,
    })
}

/// How failures are retried: `attempts` in all, the n-th retry `backoff`
/// × 2^(n-1) later, at most `max_backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: defaults::RETRY_ATTEMPTS.default as u32,
            backoff: Duration::from_secs(defaults::RETRY_BACKOFF_S.default),
            max_backoff: Duration::from_secs(defaults::RETRY_BACKOFF_MAX_S.default),
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `failed` failed attempts.
    pub fn delay(&self, failed: u32) -> Duration {
        let factor = 1u32 << failed.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A lease a worker starts on.
pub struct Lease<'a> {
    pub mac: &'a str,
    pub ip: &'a str,
    pub subnet_id: u32,
    pub hostname: &'a str,
}

/// What the last successful attempt found: the NetBox device it became,
/// its name and place, and the server.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Found {
    #[serde(rename = "netbox-device-id")]
    pub device_id: Option<u64>,
    pub name: Option<String>,
    pub site: Option<String>,
    pub rack: Option<String>,
    pub unit: Option<u32>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// Host ports whose LLDP neighbour the last registration could not
    /// cable, each `{port, reason, neighbour, detail}`
    /// (`netbox::Unmatched`); shown only when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lldp_unmatched: Vec<serde_json::Value>,
}

/// The stored list of uncabled neighbours (JSON text; anything else is
/// none).
fn unmatched_list(text: Option<String>) -> Vec<serde_json::Value> {
    text.and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
        .unwrap_or_default()
}

/// What a successful attempt found and did.
#[derive(Default)]
pub struct Success {
    pub registered: bool,
    pub found: Found,
    pub discovery_ms: u64,
    pub register_ms: u64,
}

/// One active lease of a BMC in Kea's lease database.
pub struct ActiveLease {
    pub mac: String,
    pub ip: String,
    pub subnet_id: u32,
    pub hostname: String,
    /// The lease's last transaction (Unix ms): lease-to-done latency and
    /// the oldest-first order count from it.
    pub leased_at_ms: i64,
    /// Whether the filter's patterns matched. Kea's lease keeps no vendor
    /// class, so a BMC matched by option 60 alone does not match here;
    /// such a lease counts only if its MAC is known already.
    pub matched: bool,
}

/// What one reconciliation found. Queued: no row, a new address, a
/// registration older than the rediscovery interval, or discovered only
/// while NetBox is configured. Left alone: in progress (queued or
/// discovering), up to date, failed (waits for its next attempt) and
/// dead (only `bmc-retry` or a new lease revives it).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Reconciled {
    pub leases: u64,
    pub queued: u64,
    pub up_to_date: u64,
    pub in_progress: u64,
    pub failed: u64,
    pub dead: u64,
}

/// Why an attempt failed.
pub struct Failure<'a> {
    /// A short class: auth, timeout, tls, netbox-unavailable, ...
    pub class: &'a str,
    pub message: &'a str,
    /// Whether this attempt counts towards `dead`. An outage of NetBox is
    /// not the BMC's fault: it is retried until NetBox is back.
    pub counts: bool,
    /// When to try again (Unix s) instead of after the backoff: when what
    /// held the attempt back ends (a credential's suspension).
    pub retry_at: Option<i64>,
}

pub struct Store {
    conn: Mutex<Connection>,
}

/// Why the state file could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// SQLite failed: the disk is full or read-only, the file is locked
    /// longer than the busy timeout, or it is damaged.
    Sqlite(rusqlite::Error),
    /// The file was written by a newer version of the hook.
    NewerSchema { found: i64, known: i64 },
    /// The file at `path` cannot be opened or prepared.
    Open {
        path: std::path::PathBuf,
        source: Box<StoreError>,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "{e}"),
            StoreError::NewerSchema { found, known } => write!(
                f,
                "written by a newer version of the hook (schema {found}, this one knows \
                 {known}); upgrade the hook or move the file away"
            ),
            StoreError::Open { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite(e)
    }
}

/// For callers that report the state file's failure as text.
impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.to_string()
    }
}

impl Store {
    /// Opens (creating if needed) the state file. Work that a stop or crash
    /// cut short is made due again.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let opened = Connection::open(path).map_err(StoreError::from);
        opened.and_then(Store::init).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// A store that lives in memory only (tests, tools).
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory().map_err(StoreError::from)?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        // WAL: readers (commands) never wait for the workers' writes;
        // NORMAL sync: a power cut may lose the last transactions, which
        // reconciliation finds again, but never corrupts the file.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::from)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::from)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(StoreError::from)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(StoreError::from)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(SCHEMA).map_err(StoreError::from)?;
        // Schema 3's tables are created here for files of schema 1 and 2.
        conn.execute_batch(login_guard::SCHEMA)
            .map_err(StoreError::from)?;
        // Schema 2 added `replace_bmc`; a file of schema 1 gets it here.
        let has_replace: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('bmc') WHERE name = 'replace_bmc'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(StoreError::from)?;
        if !has_replace {
            conn.execute_batch("ALTER TABLE bmc ADD COLUMN replace_bmc INTEGER NOT NULL DEFAULT 0")
                .map_err(StoreError::from)?;
        }
        // Schema 4 added `lldp_unmatched`.
        let has_lldp: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('bmc') WHERE name = 'lldp_unmatched'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(StoreError::from)?;
        if !has_lldp {
            conn.execute_batch("ALTER TABLE bmc ADD COLUMN lldp_unmatched TEXT")
                .map_err(StoreError::from)?;
        }
        // Schema 5 added `ipv4` and `ipv6`; an older file's addresses are
        // all IPv4 (the hook ran only in kea-dhcp4 before).
        let has_families: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('bmc') WHERE name = 'ipv6'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(StoreError::from)?;
        if !has_families {
            conn.execute_batch(
                "ALTER TABLE bmc ADD COLUMN ipv4 TEXT; ALTER TABLE bmc ADD COLUMN ipv6 TEXT; \
                 UPDATE bmc SET ipv4 = ip WHERE instr(ip, ':') = 0;",
            )
            .map_err(StoreError::from)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(StoreError::from)?;
        conn.execute(
            "UPDATE bmc SET state = 'failed', next_attempt_at = ?1, error_class = 'interrupted', \
             last_error = 'interrupted: Kea stopped or the hook was unloaded during the attempt', \
             updated_at = ?1 WHERE state = 'discovering'",
            params![unix_s()],
        )
        .map_err(StoreError::from)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker starts on `lease`. `new_lease`: a fresh allocation (the
    /// BMC came back, maybe repaired or replaced): its failed attempts are
    /// forgotten.
    pub fn begin(
        &self,
        lease: &Lease,
        leased_at_ms: i64,
        new_lease: bool,
    ) -> Result<(), StoreError> {
        let now = unix_s();
        self.conn()
            .execute(
                "INSERT INTO bmc (mac, ip, subnet_id, hostname, state, first_seen, leased_at_ms, \
                 updated_at, ipv4, ipv6) VALUES (?1, ?2, ?3, ?4, 'discovering', ?5, ?6, ?5, \
                 CASE WHEN instr(?2, ':') = 0 THEN ?2 END, CASE WHEN instr(?2, ':') > 0 THEN ?2 END) \
                 ON CONFLICT(mac) DO UPDATE SET ip = ?2, subnet_id = ?3, \
                 ipv4 = CASE WHEN instr(?2, ':') = 0 THEN ?2 ELSE ipv4 END, \
                 ipv6 = CASE WHEN instr(?2, ':') > 0 THEN ?2 ELSE ipv6 END, \
                 hostname = CASE WHEN ?4 = '' THEN hostname ELSE ?4 END, \
                 attempts = CASE WHEN ?7 THEN 0 ELSE attempts END, \
                 state = 'discovering', next_attempt_at = NULL, leased_at_ms = ?6, updated_at = ?5",
                params![
                    lease.mac,
                    lease.ip,
                    lease.subnet_id,
                    lease.hostname,
                    now,
                    leased_at_ms,
                    new_lease
                ],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// A worker starts on a BMC the scheduler handed out (a retry or a
    /// lease found by reconciliation): its lease time (Unix ms), or None if
    /// it no longer needs it: a real lease event got there first and it is
    /// done or in progress.
    pub fn begin_scheduled(&self, mac: &str) -> Result<Option<i64>, StoreError> {
        let now = unix_s();
        self.conn()
            .query_row(
                "UPDATE bmc SET state = 'discovering', next_attempt_at = NULL, updated_at = ?2 \
                 WHERE mac = ?1 AND state IN ('queued', 'failed') RETURNING leased_at_ms",
                params![mac, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)
    }

    /// What reconciliation makes of the active leases of BMCs in Kea's
    /// lease database (see `Reconciled` for the rules). One transaction.
    pub fn reconcile(
        &self,
        leases: &[ActiveLease],
        rediscover_after: Duration,
        want_registered: bool,
    ) -> Result<Reconciled, StoreError> {
        let now = unix_s();
        let stale_before = now - rediscover_after.as_secs() as i64;
        let mut out = Reconciled {
            leases: leases.len() as u64,
            ..Reconciled::default()
        };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        for l in leases {
            let row: Option<(String, String, Option<i64>)> = tx
                .query_row(
                    "SELECT state, ip, discovered_at FROM bmc WHERE mac = ?1",
                    params![l.mac],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(StoreError::from)?;
            let queue = match &row {
                None if !l.matched => {
                    out.leases -= 1;
                    false
                }
                None => true,
                Some((state, ip, discovered_at)) => {
                    let moved = *ip != l.ip;
                    match State::parse(state) {
                        // Working on it, or waiting for it already.
                        Some(State::Queued | State::Discovering) => {
                            out.in_progress += 1;
                            false
                        }
                        Some(State::Registered) | Some(State::Discovered)
                            if !moved
                                && discovered_at.is_some_and(|t| t > stale_before)
                                && (state == "registered" || !want_registered) =>
                        {
                            out.up_to_date += 1;
                            false
                        }
                        Some(State::Failed) if !moved => {
                            out.failed += 1;
                            false
                        }
                        Some(State::Dead) if !moved => {
                            out.dead += 1;
                            false
                        }
                        // New address (a lease missed), stale, not yet in
                        // NetBox, or unreadable: do it again.
                        _ => true,
                    }
                }
            };
            if !queue {
                continue;
            }
            out.queued += 1;
            tx.execute(
                "INSERT INTO bmc (mac, ip, subnet_id, hostname, state, next_attempt_at, \
                 first_seen, leased_at_ms, updated_at, ipv4, ipv6) \
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?5, ?6, ?5, \
                 CASE WHEN instr(?2, ':') = 0 THEN ?2 END, CASE WHEN instr(?2, ':') > 0 THEN ?2 END) \
                 ON CONFLICT(mac) DO UPDATE SET ip = ?2, subnet_id = ?3, \
                 ipv4 = CASE WHEN instr(?2, ':') = 0 THEN ?2 ELSE ipv4 END, \
                 ipv6 = CASE WHEN instr(?2, ':') > 0 THEN ?2 ELSE ipv6 END, \
                 hostname = CASE WHEN ?4 = '' THEN hostname ELSE ?4 END, state = 'queued', \
                 attempts = 0, next_attempt_at = ?5, leased_at_ms = ?6, updated_at = ?5",
                params![l.mac, l.ip, l.subnet_id, l.hostname, now, l.leased_at_ms],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// The attempt succeeded. Returns when the lease behind it was seen
    /// (Unix ms), for the lease-to-done latency.
    pub fn succeeded(&self, mac: &str, s: &Success) -> Result<i64, StoreError> {
        let now = unix_s();
        let state = if s.registered {
            State::Registered
        } else {
            State::Discovered
        };
        let f = &s.found;
        self.conn()
            .query_row(
                "UPDATE bmc SET state = ?2, attempts = 0, next_attempt_at = NULL, \
                 last_error = NULL, error_class = NULL, \
                 device_id = COALESCE(?3, device_id), name = COALESCE(?4, name), \
                 site = ?5, rack = ?6, unit = ?7, manufacturer = ?8, model = ?9, serial = ?10, \
                 discovered_at = ?11, registered_at = CASE WHEN ?12 THEN ?11 ELSE registered_at END, \
                 discovery_ms = ?13, register_ms = ?14, updated_at = ?11, \
                 replace_bmc = CASE WHEN ?12 THEN 0 ELSE replace_bmc END, \
                 lldp_unmatched = ?15 WHERE mac = ?1 \
                 RETURNING leased_at_ms",
                params![
                    mac,
                    state.as_str(),
                    f.device_id,
                    f.name,
                    f.site,
                    f.rack,
                    f.unit,
                    f.manufacturer,
                    f.model,
                    f.serial,
                    now,
                    s.registered,
                    s.discovery_ms,
                    s.register_ms,
                    (!f.lldp_unmatched.is_empty())
                        .then(|| serde_json::Value::from(f.lldp_unmatched.clone()).to_string())
                ],
                |r| r.get(0),
            )
            .map_err(StoreError::from)
    }

    /// The uncabled LLDP neighbours the BMC's last registration reported.
    pub fn lldp_unmatched(&self, mac: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let text: Option<Option<String>> = self
            .conn()
            .query_row(
                "SELECT lldp_unmatched FROM bmc WHERE mac = ?1",
                params![mac],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)?;
        Ok(unmatched_list(text.flatten()))
    }

    /// The attempt failed: `failed` with its next attempt, or `dead` after
    /// the last one. Returns the new state and, when failed, the next
    /// attempt's time.
    pub fn failed(
        &self,
        mac: &str,
        f: &Failure,
        policy: &RetryPolicy,
    ) -> Result<(State, Option<i64>), StoreError> {
        let conn = self.conn();
        let attempts: u32 = conn
            .query_row(
                "SELECT attempts FROM bmc WHERE mac = ?1",
                params![mac],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)?
            .unwrap_or(0);
        let attempts = if f.counts { attempts + 1 } else { attempts };
        let now = unix_s();
        let (state, next) = if attempts >= policy.attempts {
            (State::Dead, None)
        } else if let Some(at) = f.retry_at {
            (State::Failed, Some(at.max(now)))
        } else {
            let wait = policy.delay(attempts.max(1)).as_secs() as i64;
            (State::Failed, Some(now + wait))
        };
        conn.execute(
            "UPDATE bmc SET state = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5, \
             error_class = ?6, updated_at = ?7 WHERE mac = ?1",
            params![mac, state.as_str(), attempts, next, f.message, f.class, now],
        )
        .map_err(StoreError::from)?;
        Ok((state, next))
    }

    /// Why a renewal of `mac` at `ip` needs no attempt: the BMC was
    /// discovered less than `within` ago (its state is returned), or it is
    /// dead at this address (only `bmc-retry`, or a new lease, tries it
    /// again). None: try it.
    pub fn renewal_needs_nothing(&self, mac: &str, ip: &str, within: Duration) -> Option<State> {
        let since = unix_s() - within.as_secs() as i64;
        let state: Option<String> = self
            .conn()
            .query_row(
                "SELECT state FROM bmc WHERE mac = ?1 AND ip = ?2 AND \
                 ((state IN ('registered', 'discovered') AND discovered_at > ?3) \
                  OR state = 'dead')",
                params![mac, ip, since],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        state.as_deref().and_then(State::parse)
    }

    /// Queued BMCs and failed ones whose next attempt is due, oldest lease
    /// first, at most
    /// `limit`. Each is held for `hold` (its next attempt moved that far
    /// ahead) so it is handed out once; the attempt itself then rewrites
    /// the row, and if it never runs (queue full, Kea stopped) it is due
    /// again after `hold`.
    pub fn take_due(&self, limit: usize, hold: Duration) -> Result<Vec<Bmc>, StoreError> {
        let now = unix_s();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let rows = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM bmc WHERE state IN ('queued', 'failed') \
                     AND next_attempt_at <= ?1 ORDER BY leased_at_ms LIMIT ?2"
                ))
                .map_err(StoreError::from)?;
            let rows = st
                .query_map(params![now, limit as i64], from_row)
                .map_err(StoreError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)?;
            rows
        };
        for b in &rows {
            tx.execute(
                "UPDATE bmc SET next_attempt_at = ?2 WHERE mac = ?1",
                params![b.mac, now + hold.as_secs() as i64],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(rows)
    }

    /// One BMC by MAC (any case) or address of either family (canonical
    /// text): the BMC whose current address it is first, else the one that
    /// last held it in that family (a dual-stack BMC found by its other
    /// address).
    pub fn get(&self, key: &str) -> Result<Option<Bmc>, StoreError> {
        let key = key.trim().to_ascii_lowercase();
        self.conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM bmc WHERE mac = ?1 OR ip = ?1 OR ipv4 = ?1 \
                     OR ipv6 = ?1 ORDER BY mac = ?1 DESC, ip = ?1 DESC, updated_at DESC \
                     LIMIT 1"
                ),
                params![key],
                from_row,
            )
            .optional()
            .map_err(StoreError::from)
    }

    /// BMCs in `state` and `site` (either optional), by MAC, at most `limit`.
    pub fn list(
        &self,
        state: Option<State>,
        site: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bmc>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM bmc WHERE (?1 IS NULL OR state = ?1) \
                 AND (?2 IS NULL OR site = ?2) ORDER BY mac LIMIT ?3"
            ))
            .map_err(StoreError::from)?;
        let rows = st
            .query_map(
                params![state.map(State::as_str), site, limit as i64],
                from_row,
            )
            .map_err(StoreError::from)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from);
        rows
    }

    /// How many BMCs are in each state (every state present, 0 or more).
    pub fn counts(&self) -> Result<BTreeMap<&'static str, u64>, StoreError> {
        let mut out: BTreeMap<&'static str, u64> =
            State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT state, COUNT(*) FROM bmc GROUP BY state")
            .map_err(StoreError::from)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .map_err(StoreError::from)?;
        for row in rows {
            let (state, n) = row.map_err(StoreError::from)?;
            let state = State::parse(&state).unwrap_or(State::Failed);
            *out.entry(state.as_str()).or_insert(0) += n;
        }
        Ok(out)
    }

    /// Every BMC's MAC and the subnet it was last seen in
    /// (`bmc-pool-report`).
    pub fn macs_by_subnet(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT mac, subnet_id FROM bmc")
            .map_err(StoreError::from)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .map_err(StoreError::from)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from);
        rows
    }

    /// A BMC the scheduler took but could not queue (the queue filled up
    /// meanwhile): due again now instead of after the hold.
    pub fn release(&self, mac: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE bmc SET next_attempt_at = ?2 WHERE mac = ?1 AND state IN ('queued', 'failed')",
                params![mac, unix_s()],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// When this hook last saw a lease of `mac` (Unix ms), whatever its
    /// state; None: never (or forgotten). For telling a replaced BMC from
    /// a live one whose serial or name another device claims.
    pub fn last_lease_ms(&self, mac: &str) -> Result<Option<i64>, StoreError> {
        self.conn()
            .query_row(
                "SELECT leased_at_ms FROM bmc WHERE mac = ?1",
                params![mac],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)
    }

    /// Whether the operator accepted `mac` as a replacement BMC
    /// (`bmc-retry` with `replace-bmc`); cleared by its next registration.
    pub fn replace_bmc(&self, mac: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT replace_bmc FROM bmc WHERE mac = ?1",
                params![mac],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0) != 0)
            .map_err(StoreError::from)
    }

    /// Makes a failed or dead BMC `queued` with its attempts reset
    /// (`bmc-retry`); the scheduler hands it out within a second. Returns
    /// the BMC, or None if `key` is unknown.
    pub fn retry(&self, key: &str) -> Result<Option<Bmc>, StoreError> {
        self.retry_with(key, false)
    }

    /// As `retry`; with `replace_bmc` the BMC's next registration may take
    /// over the device its serial or name finds although that device's
    /// old BMC still looks live (once: a registration clears it).
    pub fn retry_with(&self, key: &str, replace_bmc: bool) -> Result<Option<Bmc>, StoreError> {
        let Some(b) = self.get(key)? else {
            return Ok(None);
        };
        let now = unix_s();
        self.conn()
            .execute(
                "UPDATE bmc SET state = 'queued', attempts = 0, next_attempt_at = ?2, \
                 updated_at = ?2, replace_bmc = CASE WHEN ?3 THEN 1 ELSE replace_bmc END \
                 WHERE mac = ?1 AND state IN ('failed', 'dead')",
                params![b.mac, now, replace_bmc],
            )
            .map_err(StoreError::from)?;
        self.get(&b.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::unix_ms;

    fn lease<'a>(mac: &'a str, ip: &'a str) -> Lease<'a> {
        Lease {
            mac,
            ip,
            subnet_id: 1,
            hostname: "us3-cab1-ru1-idrac",
        }
    }

    fn fail(counts: bool) -> Failure<'static> {
        Failure {
            class: "timeout",
            message: "BMC did not answer",
            counts,
            retry_at: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(100),
        };
        assert_eq!(p.delay(1).as_secs(), 30);
        assert_eq!(p.delay(2).as_secs(), 60);
        assert_eq!(p.delay(3).as_secs(), 100);
        assert_eq!(p.delay(40).as_secs(), 100);
    }

    #[test]
    fn failures_end_dead_and_retry_brings_them_back() {
        let s = Store::in_memory().unwrap();
        let p = RetryPolicy {
            attempts: 3,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        s.begin(&lease("aa:bb:cc:00:00:01", "10.0.0.1"), unix_ms(), true)
            .unwrap();
        assert_eq!(
            s.failed("aa:bb:cc:00:00:01", &fail(true), &p).unwrap().0,
            State::Failed
        );
        // NetBox outages do not count.
        for _ in 0..5 {
            let (st, _) = s.failed("aa:bb:cc:00:00:01", &fail(false), &p).unwrap();
            assert_eq!(st, State::Failed);
        }
        assert_eq!(
            s.failed("aa:bb:cc:00:00:01", &fail(true), &p).unwrap().0,
            State::Failed
        );
        assert_eq!(
            s.failed("aa:bb:cc:00:00:01", &fail(true), &p).unwrap().0,
            State::Dead
        );
        let b = s.get("AA:BB:CC:00:00:01").unwrap().unwrap();
        assert_eq!((b.state, b.attempts), (State::Dead, 3));
        assert_eq!(
            s.renewal_needs_nothing("aa:bb:cc:00:00:01", "10.0.0.1", Duration::from_secs(60)),
            Some(State::Dead)
        );
        assert_eq!(b.last_error.as_deref(), Some("BMC did not answer"));
        assert!(s.take_due(10, Duration::from_secs(60)).unwrap().is_empty());
        let b = s.retry("10.0.0.1").unwrap().unwrap();
        assert_eq!((b.state, b.attempts), (State::Queued, 0));
        let due = s.take_due(10, Duration::from_secs(60)).unwrap();
        assert_eq!(due.len(), 1);
        // Held: not handed out twice.
        assert!(s.take_due(10, Duration::from_secs(60)).unwrap().is_empty());
    }

    #[test]
    fn success_is_remembered_and_makes_renewals_fresh() {
        let s = Store::in_memory().unwrap();
        let mac = "aa:bb:cc:00:00:02";
        s.begin(&lease(mac, "10.0.0.2"), unix_ms(), true).unwrap();
        let within = Duration::from_secs(60);
        assert_eq!(s.renewal_needs_nothing(mac, "10.0.0.2", within), None);
        s.succeeded(
            mac,
            &Success {
                registered: true,
                found: Found {
                    device_id: Some(42),
                    site: Some("us3".into()),
                    ..Found::default()
                },
                ..Success::default()
            },
        )
        .unwrap();
        assert_eq!(
            s.renewal_needs_nothing(mac, "10.0.0.2", within),
            Some(State::Registered)
        );
        assert_eq!(
            s.renewal_needs_nothing(mac, "10.0.0.9", within),
            None,
            "new IP"
        );
        assert_eq!(
            s.renewal_needs_nothing(mac, "10.0.0.2", Duration::ZERO),
            None
        );
        let c = s.counts().unwrap();
        assert_eq!((c["registered"], c["failed"], c["dead"]), (1, 0, 0));
        assert_eq!(
            s.list(Some(State::Registered), Some("us3"), 10)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.list(None, Some("fra1"), 10).unwrap().len(), 0);
        assert_eq!(s.get(mac).unwrap().unwrap().found.device_id, Some(42));
    }

    fn active(mac: &str, ip: &str, matched: bool) -> ActiveLease {
        ActiveLease {
            mac: mac.into(),
            ip: ip.into(),
            subnet_id: 1,
            hostname: String::new(),
            leased_at_ms: 1_000,
            matched,
        }
    }

    #[test]
    fn reconciliation_queues_only_what_needs_an_attempt() {
        let s = Store::in_memory().unwrap();
        let day = Duration::from_secs(86_400);
        let policy = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        // Registered, dead, failed and in-progress BMCs, then the leases.
        for (mac, ip) in [
            ("02:00:00:00:00:01", "10.0.0.1"),
            ("02:00:00:00:00:02", "10.0.0.2"),
        ] {
            s.begin(&lease(mac, ip), unix_ms(), true).unwrap();
            s.succeeded(
                mac,
                &Success {
                    registered: true,
                    ..Success::default()
                },
            )
            .unwrap();
        }
        s.begin(&lease("02:00:00:00:00:03", "10.0.0.3"), unix_ms(), true)
            .unwrap();
        s.failed("02:00:00:00:00:03", &fail(true), &policy).unwrap();
        s.begin(&lease("02:00:00:00:00:04", "10.0.0.4"), unix_ms(), true)
            .unwrap();
        let leases = [
            active("02:00:00:00:00:01", "10.0.0.1", true), // up to date
            active("02:00:00:00:00:02", "10.0.0.9", true), // moved: queued
            active("02:00:00:00:00:03", "10.0.0.3", true), // dead
            active("02:00:00:00:00:04", "10.0.0.4", true), // discovering
            active("02:00:00:00:00:05", "10.0.0.5", true), // new: queued
            active("02:00:00:00:00:06", "10.0.0.6", false), // not a BMC
        ];
        let r = s.reconcile(&leases, day, true).unwrap();
        assert_eq!(
            r,
            Reconciled {
                leases: 5,
                queued: 2,
                up_to_date: 1,
                in_progress: 1,
                failed: 0,
                dead: 1,
            }
        );
        // Oldest lease first; each handed out once.
        let due = s.take_due(10, Duration::from_secs(60)).unwrap();
        let macs: Vec<&str> = due.iter().map(|b| b.mac.as_str()).collect();
        assert_eq!(macs, ["02:00:00:00:00:02", "02:00:00:00:00:05"]);
        assert_eq!(due[0].ip, "10.0.0.9");
        // The attempt keeps the lease's time: it is ordered by it.
        assert_eq!(s.begin_scheduled("02:00:00:00:00:05").unwrap(), Some(1_000));
        assert_eq!(
            s.begin_scheduled("02:00:00:00:00:05").unwrap(),
            None,
            "taken once"
        );
        // Again: the queued one is in progress, nothing new is queued.
        let r = s.reconcile(&leases, day, true).unwrap();
        assert_eq!((r.queued, r.in_progress), (0, 3));
        // A stale registration is queued again.
        let r = s.reconcile(&leases[..1], Duration::ZERO, true).unwrap();
        assert_eq!(r.queued, 1);
    }

    #[test]
    fn work_cut_short_is_due_again_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("bmc-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let s = Store::open(&path).unwrap();
            s.begin(&lease("aa:bb:cc:00:00:03", "10.0.0.3"), unix_ms(), true)
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let b = s.get("aa:bb:cc:00:00:03").unwrap().unwrap();
        assert_eq!(b.state, State::Failed);
        assert_eq!(b.error_class.as_deref(), Some("interrupted"));
        assert_eq!(s.take_due(10, Duration::from_secs(60)).unwrap().len(), 1);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A dual-stack BMC leases from kea-dhcp4 and kea-dhcp6: its row keeps
    /// each family's last address, `ip` the one of the latest lease.
    #[test]
    fn each_family_keeps_its_address() {
        let dir = std::env::temp_dir().join(format!("bmc-state-v6-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        let s = Store::open(&path).unwrap();
        let mac = "aa:bb:cc:00:00:06";
        s.begin(&lease(mac, "2001:db8:61::10"), 1, true).unwrap();
        let b = s.get(mac).unwrap().unwrap();
        assert_eq!(
            (b.ip.as_str(), b.ipv4.as_deref(), b.ipv6.as_deref()),
            ("2001:db8:61::10", None, Some("2001:db8:61::10"))
        );
        s.begin(&lease(mac, "10.0.0.6"), 2, false).unwrap();
        s.succeeded(mac, &Success::default()).unwrap();
        // Reconciliation finds the BMC at a new IPv6 address: queued there.
        s.reconcile(
            &[active(mac, "2001:db8:61::11", true)],
            Duration::from_secs(60),
            false,
        )
        .unwrap();
        let b = s.get(mac).unwrap().unwrap();
        assert_eq!(
            (b.ip.as_str(), b.ipv4.as_deref(), b.ipv6.as_deref()),
            ("2001:db8:61::11", Some("10.0.0.6"), Some("2001:db8:61::11"))
        );
        let shown = serde_json::to_value(&b).unwrap();
        assert_eq!(shown["ipv4"], "10.0.0.6");
        assert_eq!(shown["ipv6"], "2001:db8:61::11");
        // Replays go to the latest address, of its family.
        let ev = b.lease_event().unwrap();
        assert!(ev.is_v6());
        assert_eq!(ev.ip().to_string(), "2001:db8:61::11");
        // Found by either family's address.
        for key in ["2001:db8:61::11", "10.0.0.6"] {
            assert_eq!(
                s.get(key).unwrap().map(|b| b.mac),
                Some(mac.into()),
                "{key}"
            );
        }
        // Another BMC leased 10.0.0.6 since: the address is its now.
        let other = "aa:bb:cc:00:00:07";
        s.begin(&lease(other, "10.0.0.6"), 3, true).unwrap();
        assert_eq!(
            s.get("10.0.0.6").unwrap().map(|b| b.mac),
            Some(other.into())
        );
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replace_bmc_is_kept_until_a_registration_and_old_files_get_it() {
        let dir = std::env::temp_dir().join(format!("bmc-state-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        // A file of schema 1: the table without replace_bmc.
        {
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace(",\n    replace_bmc     INTEGER NOT NULL DEFAULT 0", "")
                .replace(",\n    lldp_unmatched  TEXT", "")
                .replace(",\n    ipv4            TEXT", "")
                .replace(",\n    ipv6            TEXT", "");
            assert!(!v1.contains("replace_bmc") && !v1.contains("lldp_unmatched"));
            assert!(!v1.contains("ipv4") && !v1.contains("ipv6"));
            conn.execute_batch(&v1).unwrap();
            conn.execute_batch(
                "INSERT INTO bmc (mac, ip, subnet_id, state, first_seen, leased_at_ms, updated_at) \
                 VALUES ('aa:bb:cc:00:00:07', '10.0.0.7', 1, 'discovered', 1, 1, 1)",
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let s = Store::open(&path).unwrap();
        // Schema 5: an old row's address is its IPv4 one.
        let old = s.get("aa:bb:cc:00:00:07").unwrap().unwrap();
        assert_eq!(
            (old.ipv4.as_deref(), old.ipv6.as_deref()),
            (Some("10.0.0.7"), None)
        );
        let mac = "aa:bb:cc:00:00:04";
        assert_eq!(s.last_lease_ms(mac).unwrap(), None);
        assert!(!s.replace_bmc(mac).unwrap());
        s.begin(&lease(mac, "10.0.0.4"), 1_234, true).unwrap();
        assert_eq!(s.last_lease_ms(mac).unwrap(), Some(1_234));
        s.failed(mac, &fail(true), &RetryPolicy::default()).unwrap();
        s.retry_with(mac, true).unwrap();
        assert!(s.replace_bmc(mac).unwrap());
        // A failed attempt keeps it; a registration uses it up.
        s.begin_scheduled(mac).unwrap();
        s.failed(mac, &fail(true), &RetryPolicy::default()).unwrap();
        assert!(s.replace_bmc(mac).unwrap());
        let done = Success {
            registered: true,
            ..Success::default()
        };
        s.succeeded(mac, &done).unwrap();
        assert!(!s.replace_bmc(mac).unwrap());
        // Schema 4's uncabled LLDP neighbours: kept per registration,
        // shown by bmc-get, gone once a registration reports none.
        assert!(s.lldp_unmatched(mac).unwrap().is_empty());
        let u = serde_json::json!({"port": "NIC.Slot.1.1-1", "reason": "switch-unknown",
                                   "neighbour": "bc:d7:a5:72:f4:00 port 1/1/1:4", "detail": "x"});
        let mut with = Success {
            registered: true,
            ..Success::default()
        };
        with.found.lldp_unmatched = vec![u.clone()];
        s.begin_scheduled(mac).unwrap();
        s.succeeded(mac, &with).unwrap();
        assert_eq!(s.lldp_unmatched(mac).unwrap(), vec![u.clone()]);
        let shown = serde_json::to_value(s.get(mac).unwrap().unwrap()).unwrap();
        assert_eq!(shown["lldp-unmatched"], serde_json::json!([u]));
        s.succeeded(mac, &done).unwrap();
        assert!(s.lldp_unmatched(mac).unwrap().is_empty());
        let shown = serde_json::to_value(s.get(mac).unwrap().unwrap()).unwrap();
        assert!(shown.get("lldp-unmatched").is_none(), "{shown}");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
