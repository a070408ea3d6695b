//! A kea-dhcp4 process under test.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{hook_library, wait_for, TempDir};

/// Kea reads lo's addresses again when it opens its DHCP sockets (at
/// start-up, after the hooks have loaded, and at a config-reload) and binds
/// every address added since it read `lo/<address>` from its configuration:
/// another test's server or relay address, whose own Kea or perfdhcp then
/// cannot bind port 67 (seen on 2.2 and 3.0, one run in a few with the
/// tests in parallel). So addresses are added, and Kea opens its sockets,
/// one at a time, under this lock.
static LO_ADDRESSES: Mutex<()> = Mutex::new(());

fn lo_addresses() -> MutexGuard<'static, ()> {
    LO_ADDRESSES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loopback addresses of one test's Kea: server, relay of the opted-in
/// subnet, relay of the other subnet.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    pub block: u8,
}

impl Net {
    /// Claims 127.0.`block`.0/24 and puts its addresses on `lo`.
    pub fn new(block: u8) -> Net {
        let net = Net { block };
        let _lo = lo_addresses();
        for host in [1, 2, 3] {
            let addr = format!("{}/32", net.addr(host));
            let out = Command::new("ip")
                .args(["addr", "replace", &addr, "dev", "lo"])
                .output()
                .expect("run `ip` (iproute2)");
            assert!(
                out.status.success(),
                "cannot add {addr} to lo (tests need root for this): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        net
    }
    pub fn addr(&self, host: u8) -> String {
        format!("127.0.{}.{host}", self.block)
    }
    pub fn server(&self) -> String {
        self.addr(1)
    }
    pub fn relay_bmc(&self) -> String {
        self.addr(2)
    }
    pub fn relay_other(&self) -> String {
        self.addr(3)
    }
}

/// Where Debian's Kea (amd64) keeps its stock hook libraries.
pub const STOCK_HOOKS_DIR: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks";

/// Kea 2.6.3 and later (CVE-2025-32801/2/3) take hook libraries, memfile
/// lease files, log files, unix control sockets and hook scripts only from
/// fixed directories, each of which an environment variable overrides for
/// one process. Every Kea process a test starts gets all of them pointing
/// into its test directory `dir` (hooks in `dir/hooks`, see [`config`]), so
/// tests run side by side and never touch the system's directories. Kea 2.2
/// ignores the variables; the same configuration works on every version.
pub fn path_env(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("KEA_PIDFILE_DIR", dir.to_path_buf()),
        ("KEA_LOCKFILE_DIR", dir.to_path_buf()),
        ("KEA_HOOKS_PATH", hooks_dir(dir)),
        ("KEA_DHCP_DATA_DIR", dir.to_path_buf()),
        ("KEA_LOG_FILE_DIR", dir.to_path_buf()),
        ("KEA_CONTROL_SOCKET_DIR", dir.to_path_buf()),
        ("KEA_HOOK_SCRIPTS_PATH", dir.to_path_buf()),
    ]
}

/// Makes `dir` acceptable as Kea's control-socket directory: Kea 2.6.3
/// wants it 0750 and 3.0 refuses one more open than 0750, and a fresh temp
/// directory is 0755 under the usual umask.
pub fn prepare_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .unwrap_or_else(|e| panic!("chmod 0750 {}: {e}", dir.display()));
}

/// The per-test hooks directory (`KEA_HOOKS_PATH`).
pub fn hooks_dir(dir: &Path) -> PathBuf {
    dir.join("hooks")
}

/// Puts `library` into the per-test hooks directory as a symlink and
/// returns the path Kea must be given: Kea ≥ 2.6.3 compares the library's
/// directory, as written, with its hooks path, and one process has only one
/// hooks path, so our build and the stock hooks it runs beside must sit in
/// the same directory.
pub fn stage_hook(dir: &Path, library: &Path) -> PathBuf {
    let hooks = hooks_dir(dir);
    std::fs::create_dir_all(&hooks).expect("create the test's hooks dir");
    let name = library
        .file_name()
        .unwrap_or_else(|| panic!("hook library {} has no file name", library.display()));
    let link = hooks.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(library, &link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), library.display()));
    link
}

/// A stock Kea hook library by name, e.g. "libdhcp_lease_cmds.so".
pub fn stock_hook(name: &str) -> PathBuf {
    Path::new(STOCK_HOOKS_DIR).join(name)
}

/// Which library to load, with which parameters.
#[derive(Clone)]
pub enum Hook {
    None,
    Library { path: PathBuf, parameters: Value },
}

/// The hook cargo built ([`hook_library`]) with `parameters`.
pub fn hook(parameters: Value) -> Hook {
    Hook::Library {
        path: hook_library(),
        parameters,
    }
}

/// Kea's configuration for a test: subnet 1 (127.1.0.0/16) is opted in via
/// user-context and relayed by .2; subnet 2 (127.2.0.0/16) is not, relayed by .3.
/// Every file Kea itself opens lives in `dir`; the hook libraries are
/// staged into `dir/hooks` ([`stage_hook`]), which [`path_env`] names.
pub fn config(net: Net, dir: &Path, hooks: &[Hook], log_severity: &str) -> Value {
    let libraries: Vec<Value> = hooks
        .iter()
        .filter_map(|h| match h {
            Hook::None => None,
            Hook::Library { path, parameters } => {
                // Each test keeps its BMC state in its own directory.
                let mut parameters = parameters.clone();
                if let Some(p) = parameters.as_object_mut() {
                    if p.contains_key("redfish") && !p.contains_key("state-file") {
                        p.insert(
                            "state-file".into(),
                            json!(dir.join("bmc-state.sqlite").to_str().unwrap()),
                        );
                    }
                }
                Some(json!({
                    "library": stage_hook(dir, path).to_str().unwrap(),
                    "parameters": parameters,
                }))
            }
        })
        .collect();
    json!({"Dhcp4": {
        // No service-sockets retries: on a retry Kea detects the
        // interfaces again and binds every address on lo that appeared
        // meanwhile, other tests' included (seen on 2.2 and 3.0), which
        // makes their Kea or perfdhcp fail to bind port 67.
        "interfaces-config": {"interfaces": [format!("lo/{}", net.server())], "dhcp-socket-type": "udp"},
        "control-socket": {"socket-type": "unix", "socket-name": dir.join("kea.sock").to_str().unwrap()},
        "lease-database": {"type": "memfile", "persist": true,
                           "name": dir.join("leases4.csv").to_str().unwrap(), "lfc-interval": 0},
        "multi-threading": {"enable-multi-threading": true, "thread-pool-size": 4, "packet-queue-size": 64},
        "valid-lifetime": 3600,
        "hooks-libraries": libraries,
        "subnet4": [
            {"id": 1, "subnet": "127.1.0.0/16", "pools": [{"pool": "127.1.0.10 - 127.1.255.250"}],
             "relay": {"ip-addresses": [net.relay_bmc()]},
             "user-context": {"bmc-discovery": true, "site": "us3"}},
            {"id": 2, "subnet": "127.2.0.0/16", "pools": [{"pool": "127.2.0.10 - 127.2.255.250"}],
             "relay": {"ip-addresses": [net.relay_other()]}}
        ],
        "loggers": [{"name": "kea-dhcp4", "severity": log_severity,
                     "output_options": [{"output": dir.join("kea.log").to_str().unwrap()}]}]
    }})
}

/// Writes `config` and runs `kea-dhcp4 -t` on it.
pub fn check_config(dir: &Path, config: &Value) -> Output {
    check_config_with(dir, config, "-t")
}

/// Writes `config` and runs `kea-dhcp4 <flag>` on it: `-t` (Kea calls only
/// the hook's version()) or `-T` (Kea ≥ 2.4 also runs load(),
/// dhcp4_srv_configured and unload() in the check process).
pub fn check_config_with(dir: &Path, config: &Value, flag: &str) -> Output {
    let file = dir.join("kea-dhcp4.conf");
    std::fs::write(&file, serde_json::to_string_pretty(config).unwrap()).unwrap();
    prepare_dir(dir);
    Command::new("kea-dhcp4")
        .arg(flag)
        .arg(&file)
        .envs(path_env(dir))
        .output()
        .expect("run kea-dhcp4 (install Debian's kea-dhcp4-server)")
}

/// The Kea version `kea-dhcp4 -v` reports, as (major, minor, patch),
/// checked to be `built`: the version of the headers the hook was compiled
/// against, which only the hook's build script knows (callers pass
/// `env!("BMC_KEA_VERSION")`; this crate is built without that script).
pub fn kea_version(built: &str) -> (u32, u32, u32) {
    let out = Command::new("kea-dhcp4")
        .arg("-v")
        .output()
        .expect("run kea-dhcp4 -v (install Debian's kea-dhcp4-server)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    assert!(version.0 >= 2, "cannot read kea-dhcp4 -v: {text:?}");
    assert!(
        text.trim() == built,
        "the hook was built against Kea {built}'s headers but kea-dhcp4 here is {}: \
         Kea would refuse it; build against this Kea's kea-dev",
        text.trim()
    );
    version
}

/// A running kea-dhcp4, killed on drop.
pub struct Kea {
    pub child: Child,
    pub dir: PathBuf,
    pub config_file: PathBuf,
}

impl Kea {
    /// Starts Kea on `config` (written into `dir`) and waits for its socket.
    pub fn start(dir: &TempDir, config: &Value) -> Kea {
        Kea::start_under(dir, config, &[], Duration::from_secs(20))
    }

    /// Starts Kea as the last argument of `wrapper` (e.g. valgrind and its
    /// options), waiting up to `patience` for its socket.
    pub fn start_under(
        dir: &TempDir,
        config: &Value,
        wrapper: &[String],
        patience: Duration,
    ) -> Kea {
        Kea::start_program(dir, config, wrapper, "kea-dhcp4", patience)
    }

    /// Starts `program` (kea-dhcp4 or kea-dhcp6) on `config` (written into
    /// `dir` as `<program>.conf`) as the last argument of `wrapper`, waiting
    /// up to `patience` for its socket.
    pub fn start_program(
        dir: &TempDir,
        config: &Value,
        wrapper: &[String],
        program: &str,
        patience: Duration,
    ) -> Kea {
        let dir = dir.path().to_path_buf();
        let config_file = dir.join(format!("{program}.conf"));
        std::fs::write(&config_file, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let _ = std::fs::remove_file(dir.join("kea.sock"));
        prepare_dir(&dir);
        let lo = lo_addresses();
        let mut command = match wrapper.split_first() {
            Some((first, args)) => {
                let mut c = Command::new(first);
                c.args(args).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = command
            .arg("-c")
            .arg(&config_file)
            .envs(path_env(&dir))
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("kea.stdout")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("kea.stderr")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut kea = Kea {
            child,
            dir,
            config_file,
        };
        wait_for("Kea's control socket", patience, || {
            if let Ok(Some(status)) = kea.child.try_wait() {
                panic!("{program} exited with {status}:\n{}", kea.log_tail(30));
            }
            kea.try_command("version-get", None).ok()
        });
        drop(lo);
        kea.report_socket_trouble();
        kea
    }

    /// When Kea could not bind its DHCP socket (seen once on forky, cause
    /// not found), fails at once naming which sockets held port 67 at that
    /// moment (also in `dir/kea.sockets`), instead of perfdhcp waiting its
    /// two minutes for answers that cannot come.
    fn report_socket_trouble(&self) {
        if !self.log().contains("DHCPSRV_OPEN_SOCKET_FAIL") {
            return;
        }
        let ss = Command::new("ss")
            .args(["-uanpe", "sport", "=", ":67"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("cannot run ss: {e}"));
        let _ = std::fs::write(self.dir.join("kea.sockets"), &ss);
        panic!(
            "kea-dhcp4 could not bind its DHCP socket; port 67 now:\n{ss}\n{}",
            self.log_tail(20)
        );
    }

    /// Whether the process is still running.
    pub fn child_alive(&self) -> bool {
        std::fs::metadata(format!("/proc/{}", self.pid())).is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
                .unwrap_or_default()
                .contains(") Z ")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a command over the control socket; the answer or an I/O error.
    pub fn try_command(&self, command: &str, arguments: Option<Value>) -> std::io::Result<Value> {
        let _lo = matches!(command, "config-reload" | "config-set").then(lo_addresses);
        let mut request = json!({"command": command});
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut stream = UnixStream::connect(self.dir.join("kea.sock"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(request.to_string().as_bytes())?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf)?;
        serde_json::from_slice(&buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Sends a command and returns the answer, panicking with Kea's log on failure.
    pub fn command(&self, command: &str, arguments: Option<Value>) -> Value {
        self.try_command(command, arguments)
            .unwrap_or_else(|e| panic!("command {command}: {e}\n{}", self.log_tail(30)))
    }

    /// `bmc-status` arguments (asserting success).
    pub fn bmc_status(&self) -> Value {
        let answer = self.command("bmc-status", None);
        assert_eq!(answer["result"], 0, "bmc-status failed: {answer}");
        answer["arguments"].clone()
    }

    /// Number of threads of the Kea process.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .count()
    }

    /// Number of open file descriptors of the Kea process.
    pub fn fds(&self) -> usize {
        self.fd_targets().len()
    }

    /// What each open descriptor of the Kea process points to
    /// (`socket:[inode]`, a path, ...), sorted: compare two to name a leak.
    pub fn fd_targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|t| t.display().to_string())
            .collect();
        targets.sort();
        targets
    }

    /// CPU time (user + system) the Kea process has used so far, all its
    /// threads together, exited ones included: the cost of what it did,
    /// which moves far less with the machine's other load than its rate.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The command name in field 2 may hold spaces: count from its ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of proc(5), 12 and 13 here.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ticks as f64 / per_second as f64
    }

    /// The current value of one of Kea's own statistics (`statistic-get`),
    /// e.g. `pkt4-ack-sent`; 0 when Kea has not recorded it yet.
    pub fn statistic(&self, name: &str) -> u64 {
        let answer = self.command("statistic-get", Some(json!({ "name": name })));
        answer["arguments"][name][0][0].as_u64().unwrap_or(0)
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kea.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Distinct leased addresses in the memfile, by subnet id.
    pub fn leases_by_subnet(&self) -> std::collections::BTreeMap<u32, usize> {
        let text = std::fs::read_to_string(self.dir.join("leases4.csv")).unwrap_or_default();
        let mut seen = std::collections::BTreeMap::<u32, std::collections::BTreeSet<String>>::new();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            // address,hwaddr,client_id,valid_lifetime,expire,subnet_id,...
            if let (Some(addr), Some(subnet)) = (fields.first(), fields.get(5)) {
                if let Ok(id) = subnet.parse() {
                    seen.entry(id).or_default().insert(addr.to_string());
                }
            }
        }
        seen.into_iter().map(|(k, v)| (k, v.len())).collect()
    }

    /// SIGTERM, then wait.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_for("kea-dhcp4 to exit", Duration::from_secs(20), || {
            self.child.try_wait().ok().flatten()
        });
        std::mem::forget(self);
        status
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
