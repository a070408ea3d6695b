//! A throwaway PostgreSQL cluster for Kea's PostgreSQL lease backend: one
//! cluster per test on 127.0.0.1:`port`, one role and database per Kea
//! server, each initialised with `kea-admin db-init pgsql` as an operator
//! would, and what to merge into a `Dhcp4` configuration to use it.
//!
//! ```ignore
//! let pg = Postgres::start(15481, kea_version(env!("BMC_KEA_VERSION")));
//! let db = pg.database("server1");
//! let mut cfg = kea::config(net, dir.path(), &[hook(params)], "INFO");
//! db.use_in(&mut cfg, dir.path());
//! ```
//!
//! The server binaries are Debian's (`/usr/lib/postgresql/<newest>/bin`,
//! package postgresql). PostgreSQL refuses to run as root, so initdb and the
//! server run as the `postgres` system user (set by the Command itself, as
//! runuser would) with the data directory in a temp directory that user
//! owns. The server is a child of the test, stopped on drop.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::kea::{stage_hook, stock_hook};
use crate::{wait_for, TempDir};

/// Since Kea 2.7.3 (so 3.0 and later) the PostgreSQL lease backend is
/// this hook library (kea-common in Debian forky); before, it was built
/// into libkea-dhcpsrv and needed no library.
pub const PGSQL_HOOK: &str = "libdhcp_pgsql.so";

/// Whether Kea `version` needs [`PGSQL_HOOK`] loaded to use a PostgreSQL
/// lease database.
pub fn needs_backend_hook(version: (u32, u32, u32)) -> bool {
    version >= (2, 7, 3)
}

/// The newest Debian PostgreSQL's server binaries.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d).unwrap_or_else(|| {
        panic!(
            "no /usr/lib/postgresql/<version>/bin/initdb: install Debian's postgresql \
             (tests/setup.sh does)"
        )
    })
}

/// uid and gid of the `postgres` system user (made by postgresql-common).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .expect("no 'postgres' user in /etc/passwd: install Debian's postgresql")
}

/// A running PostgreSQL cluster of one test, stopped on drop.
pub struct Postgres {
    /// The server; None between [`Postgres::stop`] and [`Postgres::start_again`].
    child: Option<Child>,
    pub port: u16,
    bin: PathBuf,
    dir: TempDir,
    user: (u32, u32),
    kea: (u32, u32, u32),
}

impl Postgres {
    /// initdb and start a cluster listening on 127.0.0.1:`port` only (and
    /// a unix socket in its own directory), for Kea `kea` (the version
    /// decides whether [`LeaseDb::use_in`] loads [`PGSQL_HOOK`]).
    pub fn start(port: u16, kea: (u32, u32, u32)) -> Postgres {
        let (uid, gid) = postgres_user();
        let dir = TempDir::new(&format!("pg-{port}"));
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.path().display()));
        let mut pg = Postgres {
            child: None,
            port,
            bin: bin_dir(),
            dir,
            user: (uid, gid),
            kea,
        };
        // Local (socket) connections trusted: the test's own setup as
        // superuser. TCP, which Kea and kea-admin use, needs the password.
        let out = pg
            .as_postgres("initdb")
            .arg("-D")
            .arg(pg.data())
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--username=postgres",
                "--locale=C",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb -D {} failed: {}{}",
            pg.data().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` of the server's binaries, to run as the postgres user.
    fn as_postgres(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        // cwd: the test's own may be closed to the postgres user.
        c.uid(self.user.0)
            .gid(self.user.1)
            .current_dir("/")
            .env_remove("PGDATA");
        c
    }

    /// Starts the server (again, after [`Postgres::stop`]) on the same
    /// data and port, and waits until it takes connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is running already");
        let log_file = self.dir.path().join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .unwrap();
        std::os::unix::fs::chown(&log_file, Some(self.user.0), Some(self.user.1)).unwrap();
        // Durability settings off: a throwaway cluster need not wait on
        // the disk, and it is only ever stopped cleanly or thrown away.
        let child = self
            .as_postgres("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let port = self.port;
        wait_for(
            "PostgreSQL to accept connections",
            Duration::from_secs(30),
            || {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                    panic!(
                        "postgres on port {port} exited with {status} (port taken?):\n{}",
                        self.log()
                    );
                }
                self.try_sql("postgres", "SELECT 1")
                    .ok()
                    .filter(|o| o.status.success())
            },
        );
    }

    /// Stops the server (fast shutdown: clients are cut off) and waits for
    /// it: the database is unreachable until [`Postgres::start_again`].
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGINT);
    }

    fn signal_and_wait(&mut self, signal: i32) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let stopped = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn superuser(&self) -> Superuser {
        Superuser {
            psql: self.bin.join("psql"),
            socket_dir: self.dir.path().to_path_buf(),
            port: self.port,
        }
    }

    fn try_sql(&self, database: &str, sql: &str) -> std::io::Result<Output> {
        self.superuser().try_sql(database, sql)
    }

    /// Runs `sql` as superuser in `database`; its rows, fields separated
    /// by commas.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.superuser().sql(database, sql)
    }

    /// A role and a database named `kea_<server>` (owned by that role,
    /// password = name), initialised with `kea-admin db-init pgsql` over
    /// TCP as an operator would: one per Kea server.
    pub fn database(&self, server: &str) -> LeaseDb {
        assert!(
            server
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "server name {server:?}: letters, digits and _ only (it names a role)"
        );
        let name = format!("kea_{server}");
        self.sql(
            "postgres",
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{name}'"),
        );
        self.sql("postgres", &format!("CREATE DATABASE {name} OWNER {name}"));
        // kea-admin calls `psql`: this cluster's own, not Debian's wrapper.
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let port = self.port.to_string();
        let out = Command::new("kea-admin")
            .args(["db-init", "pgsql", "-h", "127.0.0.1", "-P", &port])
            .args(["-u", &name, "-p", &name, "-n", &name])
            .env("PATH", path)
            .output()
            .expect("run kea-admin (install Debian's kea-admin)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kea-admin db-init pgsql -n {name} failed:\n{text}"
        );
        LeaseDb {
            name,
            port: self.port,
            kea: self.kea,
            superuser: self.superuser(),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the cluster is thrown away.
        self.signal_and_wait(libc::SIGQUIT);
    }
}

/// psql as the cluster's superuser, over its unix socket.
#[derive(Clone)]
struct Superuser {
    psql: PathBuf,
    socket_dir: PathBuf,
    port: u16,
}

impl Superuser {
    fn try_sql(&self, database: &str, sql: &str) -> std::io::Result<Output> {
        Command::new(&self.psql)
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database])
            .args(["-X", "-q", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1"])
            .arg("-c")
            .arg(sql)
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .output()
    }

    fn sql(&self, database: &str, sql: &str) -> String {
        let out = self.try_sql(database, sql).expect("run psql");
        assert!(
            out.status.success(),
            "psql -d {database} -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One Kea server's lease database in a [`Postgres`] cluster (valid while
/// the cluster runs).
#[derive(Clone)]
pub struct LeaseDb {
    pub name: String,
    pub port: u16,
    kea: (u32, u32, u32),
    superuser: Superuser,
}

impl LeaseDb {
    /// Kea's `lease-database` for this database. Kea reconnects when it
    /// loses the database (every 0.5 s, for a minute) instead of its
    /// default of none, which makes it exit at the first lost connection.
    pub fn lease_database(&self) -> Value {
        json!({
            "type": "postgresql",
            "name": self.name,
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.name,
            "password": self.name,
            "max-reconnect-tries": 120,
            "reconnect-wait-time": 500,
        })
    }

    /// What to merge into `Dhcp4` (or `Dhcp6`): `lease-database`, and on
    /// Kea ≥ 2.7.3 `hooks-libraries` with the PostgreSQL backend's library
    /// staged into `dir/hooks` ([`stage_hook`]: one hooks path a process),
    /// to go before the others.
    pub fn dhcp4(&self, dir: &Path) -> Value {
        let mut libraries = Vec::new();
        if needs_backend_hook(self.kea) {
            let lib = stock_hook(PGSQL_HOOK);
            assert!(
                lib.is_file(),
                "Kea {:?} needs {} for a PostgreSQL lease database (Debian: kea-common)",
                self.kea,
                lib.display()
            );
            libraries.push(json!({"library": stage_hook(dir, &lib)}));
        }
        json!({"lease-database": self.lease_database(), "hooks-libraries": libraries})
    }

    /// Puts this database into `config` (`{"Dhcp4": …}` or `{"Dhcp6": …}`
    /// as [`crate::kea::config`] makes it): its lease-database replaced,
    /// the backend's library (if this Kea needs one) loaded first.
    pub fn use_in(&self, config: &mut Value, dir: &Path) {
        let fragment = self.dhcp4(dir);
        let server = config
            .as_object_mut()
            .and_then(|m| m.values_mut().next())
            .and_then(Value::as_object_mut)
            .expect("a Kea config is {\"Dhcp4\": {...}}");
        server.insert("lease-database".into(), fragment["lease-database"].clone());
        let mut libraries = fragment["hooks-libraries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(others)) = server.get("hooks-libraries") {
            libraries.extend(others.iter().cloned());
        }
        server.insert("hooks-libraries".into(), Value::Array(libraries));
    }

    /// Leased address -> MAC (`aa:bb:…`) of every IPv4 lease in the
    /// database, read from its `lease4` table (not through Kea).
    pub fn leases4(&self) -> BTreeMap<String, String> {
        let rows = self.superuser.sql(
            &self.name,
            "SELECT host('0.0.0.0'::inet + address), encode(hwaddr, 'hex') FROM lease4",
        );
        rows.lines()
            .filter_map(|l| {
                let (ip, hex) = l.split_once(',')?;
                let mac: Vec<String> = hex
                    .as_bytes()
                    .chunks(2)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                Some((ip.to_string(), mac.join(":")))
            })
            .collect()
    }
}
