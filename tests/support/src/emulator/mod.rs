//! A Redfish emulator for tests and benchmarks: one HTTPS listener on
//! 0.0.0.0 that answers as many BMCs, each picked by the local address it
//! was reached on (any 127.x.y.z reaches `lo` on Linux). Each BMC serves the
//! real payloads of one model folder of the shared Redfish mockups
//! ([`crate::shared::find_mockups_dir`]), with its own serials and MACs, its own certificate (signed by the emulator's CA),
//! real session and basic-auth checks, and faults that can be switched on
//! per BMC.
//!
//! Payloads are served as captured. What the emulator adds is protocol, not
//! vendor data: sessions, `$expand`, error statuses, and the per-instance
//! identity rewrite (instance 0 of a model serves the files unchanged).

pub mod hostile;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::shared::mockups_dir;

/// Every model folder in the mockups.
pub fn all_models() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(mockups_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("redfish").is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Misbehaviour to inject into one BMC.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Read requests, never answer (until the emulator stops, at most 120 s).
    pub hang: bool,
    /// The next N GETs answer 503 (u32::MAX: all of them).
    pub server_errors: u32,
    /// Sent with those 503s.
    pub retry_after_s: Option<u64>,
    /// Every login and every authenticated request answers 401.
    pub unauthorized: bool,
    /// Authenticated GETs answer with broken JSON.
    pub malformed: bool,
    /// Authenticated GETs send half their body, then close.
    pub truncated: bool,
    /// Authenticated GETs announce and stream a 256 MiB body.
    pub huge: bool,
    /// Paths starting with one of these answer 404.
    pub missing: Vec<String>,
    /// Every GET redirects to itself, endlessly.
    pub redirect_loop: bool,
    /// Every authenticated GET is first redirected (302) to the same path
    /// on the same origin, with `moved=1` in its query.
    pub redirect_once: bool,
    /// POST to the sessions collection answers 405 (basic auth only).
    pub no_sessions: bool,
    /// Made-up hostile answers instead of (or on top of) the mockup's; see
    /// `hostile.rs`.
    pub hostile: Option<hostile::Hostile>,
}

/// One BMC of a fleet ([`Emulator::add_fleet_with`]): what sets it apart.
#[derive(Clone, Debug, Default)]
pub struct FleetBmc {
    /// Its model folder; None: every model in turn.
    pub model: Option<String>,
    /// The password of its user root.
    pub password: String,
    pub faults: Faults,
    /// Its host name ([`Emulator::set_hostname`]); None: the model's.
    pub hostname: Option<String>,
}

/// Counters per BMC.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BmcStats {
    pub requests: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    pub sessions_open: u64,
    pub sessions_created: u64,
}

struct Model {
    files: HashMap<String, String>,
    sessions_path: String,
    session_template: Option<Value>,
    expand: bool,
    serials: Vec<String>,
}

struct Bmc {
    model: Arc<Model>,
    instance: u32,
    username: String,
    password: String,
    faults: Mutex<Faults>,
    sessions: Mutex<HashMap<String, String>>,
    stats: Mutex<BmcStats>,
    tls: Mutex<Arc<rustls::ServerConfig>>,
    fingerprint: Mutex<String>,
    /// Served instead of the model's host names (`set_hostname`).
    hostname: Mutex<Option<String>>,
    /// Every session token handed out (for tests that look for leaks).
    tokens: Mutex<Vec<String>>,
}

struct Shared {
    models: Mutex<HashMap<String, Arc<Model>>>,
    bmcs: RwLock<HashMap<IpAddr, Arc<Bmc>>>,
    ca_key: rcgen::KeyPair,
    ca_cert: rcgen::Certificate,
    stop: AtomicBool,
    counter: AtomicU64,
}

pub struct Emulator {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    /// A listener in another network namespace ([`Emulator::start_in_netns`]):
    /// a connection from here cannot reach it, so Drop shuts it down instead.
    listener_in_netns: Option<TcpListener>,
    /// Listeners added by [`Emulator::also_in_netns`], shut down likewise.
    extra: Vec<(TcpListener, JoinHandle<()>)>,
}

impl Emulator {
    /// Listens on 0.0.0.0:`port` (0 = any free port).
    pub fn start(port: u16) -> Emulator {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("emulator: bind");
        Emulator::serve(listener, None)
    }

    /// Listens on [::]:`port` (IPv6, and IPv4 through mapped addresses)
    /// inside the network namespace `netns` (a name of `ip netns`), for BMCs
    /// on addresses of that namespace: a thread enters it only to create
    /// the socket, which stays there.
    pub fn start_in_netns(port: u16, netns: &str) -> Emulator {
        let listener = bind_in_netns(port, netns);
        let keep = listener.try_clone().expect("emulator: clone listener");
        Emulator::serve(listener, Some(keep))
    }

    /// Serves the same BMCs on [::]:`self.port` inside the network
    /// namespace `netns` too, besides where it already listens: a
    /// dual-stack BMC reached by kea-dhcp4's hook on an IPv4 address here
    /// and by kea-dhcp6's on an IPv6 address there ([`Emulator::alias`]).
    pub fn also_in_netns(&mut self, netns: &str) {
        let listener = bind_in_netns(self.port, netns);
        let keep = listener.try_clone().expect("emulator: clone listener");
        let sh = self.shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, sh));
        self.extra.push((keep, accept));
    }

    /// Makes the BMC at `addr` answer on `also` too (one BMC, its
    /// sessions, counters and serials shared), with a certificate naming
    /// both addresses.
    pub fn alias(&self, addr: impl Into<IpAddr>, also: impl Into<IpAddr>) {
        let (addr, also) = (addr.into(), also.into());
        let (tls, fp) = self.server_config_for(&[addr, also]);
        let b = self.bmc(addr);
        *b.tls.lock().unwrap() = tls;
        *b.fingerprint.lock().unwrap() = fp;
        self.shared.bmcs.write().unwrap().insert(also, b);
    }

    fn serve(listener: TcpListener, listener_in_netns: Option<TcpListener>) -> Emulator {
        let port = listener.local_addr().expect("emulator: addr").port();
        let ca_key = rcgen::KeyPair::generate().expect("emulator: CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Redfish emulator test CA");
        let ca_cert = params.self_signed(&ca_key).expect("emulator: CA cert");
        let shared = Arc::new(Shared {
            models: Mutex::new(HashMap::new()),
            bmcs: RwLock::new(HashMap::new()),
            ca_key,
            ca_cert,
            stop: AtomicBool::new(false),
            counter: AtomicU64::new(1),
        });
        let sh = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, sh));
        Emulator {
            port,
            shared,
            accept: Some(accept),
            listener_in_netns,
            extra: Vec::new(),
        }
    }

    /// The CA that signs every BMC's certificate, as PEM.
    pub fn ca_pem(&self) -> String {
        self.shared.ca_cert.pem()
    }

    /// Adds a BMC answering on `addr`, serving `model`, instance number
    /// `instance` (0 = the files unchanged; others get their own serials
    /// and MACs), accepting `username`/`password`.
    pub fn add(
        &self,
        addr: impl Into<IpAddr>,
        model: &str,
        instance: u32,
        username: &str,
        password: &str,
    ) {
        let addr = addr.into();
        let model = self.model(model);
        let (tls, fp) = self.server_config(addr);
        let bmc = Arc::new(Bmc {
            model,
            instance,
            username: username.into(),
            password: password.into(),
            faults: Mutex::new(Faults::default()),
            sessions: Mutex::new(HashMap::new()),
            stats: Mutex::new(BmcStats::default()),
            tls: Mutex::new(tls),
            fingerprint: Mutex::new(fp),
            hostname: Mutex::new(None),
            tokens: Mutex::new(Vec::new()),
        });
        self.shared.bmcs.write().unwrap().insert(addr, bmc);
    }

    /// A fleet: BMC `i` of `n` on `first + i`, serving every model in turn
    /// (instance `i + 1`, so serials and MACs differ), user root with
    /// `password(i)`, with `faults`.
    pub fn add_fleet<'a>(
        &self,
        first: impl Into<IpAddr>,
        n: u32,
        faults: &Faults,
        password: impl Fn(u32) -> &'a str,
    ) {
        self.add_fleet_with(first, n, |i| FleetBmc {
            password: password(i).to_string(),
            faults: faults.clone(),
            ..FleetBmc::default()
        });
    }

    /// A fleet as [`add_fleet`](Self::add_fleet) makes it, BMC `i` set up
    /// as `bmc(i)` says (model, password, faults, host name).
    pub fn add_fleet_with(
        &self,
        first: impl Into<IpAddr>,
        n: u32,
        mut bmc: impl FnMut(u32) -> FleetBmc,
    ) {
        let models = all_models();
        let first = first.into();
        for i in 0..n {
            let addr = nth_addr(first, i);
            let b = bmc(i);
            let model = b
                .model
                .unwrap_or_else(|| models[i as usize % models.len()].clone());
            self.add(addr, &model, i + 1, "root", &b.password);
            self.set_faults(addr, b.faults);
            if let Some(name) = b.hostname {
                self.set_hostname(addr, &name);
            }
        }
    }

    /// Makes the BMC at `addr` report `name` as its host name (every
    /// `HostName` and `FQDN`), as a fleet with a naming scheme does; the
    /// mockups' own names repeat across instances of a model.
    pub fn set_hostname(&self, addr: impl Into<IpAddr>, name: &str) {
        *self.bmc(addr).hostname.lock().unwrap() = Some(name.to_string());
    }

    pub fn set_faults(&self, addr: impl Into<IpAddr>, faults: Faults) {
        *self.bmc(addr).faults.lock().unwrap() = faults;
    }

    pub fn stats(&self, addr: impl Into<IpAddr>) -> BmcStats {
        let b = self.bmc(addr);
        let mut s = b.stats.lock().unwrap().clone();
        s.sessions_open = b.sessions.lock().unwrap().len() as u64;
        s
    }

    /// Every session token the BMC at `addr` has handed out.
    pub fn tokens(&self, addr: impl Into<IpAddr>) -> Vec<String> {
        self.bmc(addr).tokens.lock().unwrap().clone()
    }

    /// Open sessions over all BMCs.
    pub fn open_sessions(&self) -> usize {
        self.shared
            .bmcs
            .read()
            .unwrap()
            .values()
            .map(|b| b.sessions.lock().unwrap().len())
            .sum()
    }

    /// Gives the BMC a new certificate (as after a BMC replacement).
    pub fn rotate_cert(&self, addr: impl Into<IpAddr>) {
        let addr = addr.into();
        let (tls, fp) = self.server_config(addr);
        let b = self.bmc(addr);
        *b.tls.lock().unwrap() = tls;
        *b.fingerprint.lock().unwrap() = fp;
    }

    /// SHA-256 fingerprint of the BMC's certificate, `AB:CD:..`.
    pub fn fingerprint(&self, addr: impl Into<IpAddr>) -> String {
        self.bmc(addr).fingerprint.lock().unwrap().clone()
    }

    /// The JSON a model serves at `path` for `instance` (what a client
    /// should see), or None.
    pub fn served(&self, addr: impl Into<IpAddr>, path: &str) -> Option<Value> {
        let b = self.bmc(addr);
        let text = b
            .model
            .files
            .get(&unrewrite_path(&b.model, b.instance, &norm(path)))?;
        serde_json::from_str(&rewrite(&b.model, b.instance, text)).ok()
    }

    fn bmc(&self, addr: impl Into<IpAddr>) -> Arc<Bmc> {
        self.shared.bmcs.read().unwrap()[&addr.into()].clone()
    }

    fn model(&self, name: &str) -> Arc<Model> {
        let mut models = self.shared.models.lock().unwrap();
        models
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(load_model(name)))
            .clone()
    }

    fn server_config(&self, addr: IpAddr) -> (Arc<rustls::ServerConfig>, String) {
        self.server_config_for(&[addr])
    }

    /// A certificate naming `addrs`, the first in its common name.
    fn server_config_for(&self, addrs: &[IpAddr]) -> (Arc<rustls::ServerConfig>, String) {
        let addr = addrs[0];
        let key = rcgen::KeyPair::generate().expect("BMC key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = addrs
            .iter()
            .map(|a| rcgen::SanType::IpAddress(*a))
            .collect();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("bmc {addr}"));
        let cert = params
            .signed_by(&key, &self.shared.ca_cert, &self.shared.ca_key)
            .expect("BMC cert");
        let fp = dhcp_bmc_discovery::redfish::tls::fingerprint(cert.der());
        let chain = vec![cert.der().clone(), self.shared.ca_cert.der().clone()];
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .expect("server config");
        (Arc::new(cfg), fp)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that it sees the flag.
        if let Some(listener) = &self.listener_in_netns {
            // SAFETY: shutdown(2) on a socket this struct owns; the blocked
            // accept then returns an error and the loop sees the flag.
            unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(listener), libc::SHUT_RDWR) };
        } else {
            let _ = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_secs(1),
            );
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for (listener, accept) in self.extra.drain(..) {
            // SAFETY: as above, on a socket this struct owns.
            unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&listener), libc::SHUT_RDWR) };
            let _ = accept.join();
        }
    }
}

/// A listener on [::]:`port` inside the network namespace `netns`: a
/// thread enters it only to create the socket, which stays there.
fn bind_in_netns(port: u16, netns: &str) -> TcpListener {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("emulator: open {path}: {e}"));
        // SAFETY: setns on a namespace file we hold open; it moves only
        // this short-lived thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "emulator: setns {path}: {}",
            std::io::Error::last_os_error()
        );
        TcpListener::bind(("::", port)).expect("emulator: bind [::]")
    })
    .join()
    .expect("emulator: listener thread")
}

fn norm(path: &str) -> String {
    let p = path.split('?').next().unwrap_or(path);
    if p.len() > 1 {
        p.trim_end_matches('/').to_string()
    } else {
        p.to_string()
    }
}

fn load_model(name: &str) -> Model {
    let dir = mockups_dir().join(name);
    let mut files = HashMap::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "index.json") {
                let rel = p.parent().unwrap().strip_prefix(&dir).unwrap();
                let uri = format!("/{}", rel.to_string_lossy());
                files.insert(norm(&uri), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let root: Value = files
        .get("/redfish/v1")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let sessions_path = root
        .pointer("/Links/Sessions/@odata.id")
        .and_then(Value::as_str)
        .map(norm)
        .unwrap_or_else(|| "/redfish/v1/SessionService/Sessions".into());
    // A captured session of this model, as the body of new sessions.
    let session_template = files
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{sessions_path}/")))
        .min_by_key(|(k, _)| k.to_string())
        .and_then(|(_, t)| serde_json::from_str(t).ok());
    let expand = root
        .pointer("/ProtocolFeaturesSupported/ExpandQuery/Levels")
        .and_then(Value::as_bool)
        == Some(true);
    // Identity strings rewritten per instance: system and chassis serials,
    // SKUs (Dell's service tag), the Dell root's service tag.
    let mut serials = Vec::new();
    for (k, t) in &files {
        let is_sys = k.starts_with("/redfish/v1/Systems/") && k.matches('/').count() == 4;
        let is_chassis = k.starts_with("/redfish/v1/Chassis/") && k.matches('/').count() == 4;
        if !(is_sys || is_chassis || k == "/redfish/v1") {
            continue;
        }
        let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
        for p in ["/SerialNumber", "/SKU", "/Oem/Dell/ServiceTag"] {
            if let Some(s) = v.pointer(p).and_then(Value::as_str) {
                let plausible = s.len() >= 6
                    && s.chars().all(|c| c.is_ascii_alphanumeric())
                    && !s.chars().all(|c| c == s.chars().next().unwrap_or('0'))
                    && !["0123456789", "01234567890123456789AB"].contains(&s);
                if plausible && !serials.contains(&s.to_string()) {
                    serials.push(s.to_string());
                }
            }
        }
    }
    // Longest first, so a serial containing another is replaced whole.
    serials.sort_by_key(|s| std::cmp::Reverse(s.len()));
    Model {
        files,
        sessions_path,
        session_template,
        expand,
        serials,
    }
}

/// Instance `k`'s view of a payload: serials end in k (base 36, same
/// length), MACs have their 4th and 5th octets XORed with k.
fn rewrite(model: &Model, k: u32, text: &str) -> String {
    if k == 0 {
        return text.to_string();
    }
    let mut out = text.to_string();
    for s in &model.serials {
        out = out.replace(s.as_str(), &instance_serial(s, k));
    }
    rewrite_macs(&out, k)
}

/// `text` with every `HostName` and `FQDN` value set to `name`.
fn with_hostname(text: &str, name: &str) -> String {
    fn walk(v: &mut Value, name: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if (k == "HostName" || k == "FQDN") && v.is_string() {
                        *v = Value::String(name.to_string());
                    } else {
                        walk(v, name);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, name)),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            walk(&mut v, name);
            v.to_string()
        }
        Err(_) => text.to_string(),
    }
}

fn instance_serial(s: &str, k: u32) -> String {
    let suffix = base36(k, 4);
    let keep = s.len().saturating_sub(4);
    format!(
        "{}{}",
        &s[..keep],
        &suffix[suffix.len() - (s.len() - keep)..]
    )
}

/// The file path behind a path instance `k` links to: ids can contain a
/// serial (Intel's System id is its serial number).
fn unrewrite_path(model: &Model, k: u32, path: &str) -> String {
    let mut out = path.to_string();
    if k != 0 {
        for s in &model.serials {
            out = out.replace(&instance_serial(s, k), s);
        }
    }
    out
}

fn base36(mut n: u32, width: usize) -> String {
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut s = Vec::new();
    while n > 0 {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    while s.len() < width {
        s.push(b'0');
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

fn rewrite_macs(text: &str, k: u32) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if i + 17 <= b.len()
            && is_mac(&b[i..i + 17])
            && (i + 17 == b.len() || !b[i + 17].is_ascii_hexdigit())
        {
            let m = &b[i..i + 17];
            let hex: Vec<u8> = (0..6)
                .map(|j| {
                    u8::from_str_radix(std::str::from_utf8(&m[j * 3..j * 3 + 2]).unwrap(), 16)
                        .unwrap()
                })
                .collect();
            if hex.iter().all(|x| *x == 0) {
                out.extend_from_slice(m);
            } else {
                let upper = m.iter().any(|c| c.is_ascii_uppercase());
                let sep = m[2] as char;
                let mut h = hex.clone();
                h[3] ^= ((k >> 8) & 0xff) as u8;
                h[4] ^= (k & 0xff) as u8;
                let s: Vec<String> = h
                    .iter()
                    .map(|x| {
                        if upper {
                            format!("{x:02X}")
                        } else {
                            format!("{x:02x}")
                        }
                    })
                    .collect();
                out.extend_from_slice(s.join(&sep.to_string()).as_bytes());
            }
            i += 17;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn is_mac(m: &[u8]) -> bool {
    let sep = m[2];
    if sep != b':' && sep != b'-' {
        return false;
    }
    (0..6).all(|j| m[j * 3].is_ascii_hexdigit() && m[j * 3 + 1].is_ascii_hexdigit())
        && (0..5).all(|j| m[j * 3 + 2] == sep)
}

/// The `i`-th address from `first`, counting up in its family.
pub fn nth_addr(first: IpAddr, i: u32) -> IpAddr {
    match first {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + i)),
        IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) + u128::from(i))),
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    for stream in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = stream {
            let sh = sh.clone();
            std::thread::spawn(move || serve_connection(stream, sh));
        }
    }
}

fn serve_connection(stream: TcpStream, sh: Arc<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // A [::] listener sees IPv4 peers as mapped addresses.
    let local = match stream.local_addr() {
        Ok(SocketAddr::V4(a)) => IpAddr::V4(*a.ip()),
        Ok(SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(*a.ip()),
        },
        Err(_) => return,
    };
    let Some(bmc) = sh.bmcs.read().unwrap().get(&local).cloned() else {
        return;
    };
    let cfg = bmc.tls.lock().unwrap().clone();
    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
        return;
    };
    let tls = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(tls);
    loop {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let keep = handle(&bmc, &sh, &req, reader.get_mut());
        if !keep || req.close {
            let _ = reader.get_mut().flush();
            reader.get_mut().conn.send_close_notify();
            let _ = reader.get_mut().flush();
            return;
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    close: bool,
}

fn read_request<R: BufRead>(r: &mut R) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let close = headers
        .get("connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
        close,
    })
}

fn respond<W: Write>(w: &mut W, code: u16, extra: &[(&str, String)], body: &str) -> bool {
    let reason = match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).is_ok()
        && w.write_all(body.as_bytes()).is_ok()
        && w.flush().is_ok()
}

fn decode_base64(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn redfish_error(code: &str, msg: &str) -> String {
    json!({"error": {"code": format!("Base.1.8.{code}"), "message": msg}}).to_string()
}

/// Answers one request; false = close the connection.
fn handle<W: Write>(bmc: &Bmc, sh: &Shared, req: &Request, w: &mut W) -> bool {
    bmc.stats.lock().unwrap().requests += 1;
    let faults = bmc.faults.lock().unwrap().clone();
    if !faults.latency.is_zero() {
        std::thread::sleep(faults.latency);
    }
    if faults.hang {
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until && !sh.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return false;
    }
    let model = &bmc.model;
    let path = unrewrite_path(model, bmc.instance, &norm(&req.path));
    if faults.redirect_loop && req.method == "GET" {
        let next = if req.query.contains("loop=1") {
            "loop=2"
        } else {
            "loop=1"
        };
        return respond(w, 302, &[("Location", format!("{path}?{next}"))], "");
    }
    if faults.server_errors > 0 && req.method == "GET" {
        {
            let mut f = bmc.faults.lock().unwrap();
            if f.server_errors != u32::MAX {
                f.server_errors -= 1;
            }
        }
        let extra: Vec<(&str, String)> = faults
            .retry_after_s
            .map(|s| vec![("Retry-After", s.to_string())])
            .unwrap_or_default();
        return respond(
            w,
            503,
            &extra,
            &redfish_error("ServiceTemporarilyUnavailable", "busy"),
        );
    }
    // The service root and the version document need no auth.
    if req.method == "GET" && (path == "/redfish/v1" || path == "/redfish") {
        return serve_file(bmc, w, &path, &req.query, &faults, false);
    }
    if req.method == "POST" && path == model.sessions_path {
        if faults.no_sessions {
            return respond(
                w,
                405,
                &[],
                &redfish_error("ActionNotSupported", "sessions disabled"),
            );
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let ok = !faults.unauthorized
            && body.get("UserName").and_then(Value::as_str) == Some(bmc.username.as_str())
            && body.get("Password").and_then(Value::as_str) == Some(bmc.password.as_str());
        if !ok {
            bmc.stats.lock().unwrap().logins_failed += 1;
            return respond(
                w,
                401,
                &[],
                &redfish_error("NoValidSession", "invalid credentials"),
            );
        }
        let n = sh.counter.fetch_add(1, Ordering::Relaxed);
        let token = faults
            .hostile
            .as_ref()
            .and_then(hostile::session_token)
            .unwrap_or_else(|| {
                format!(
                    "{:016x}{:08x}",
                    n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    bmc.instance
                )
            });
        let id = format!("{n}");
        let own = format!("{}/{id}", model.sessions_path);
        // The Location header, and the session's @odata.id (where the
        // session is on this BMC unless a hostile behaviour moves both).
        let (location, odata_id) = match faults.hostile.as_ref().and_then(hostile::session_location)
        {
            Some((elsewhere, true)) => (elsewhere.clone(), elsewhere),
            Some((elsewhere, false)) => (elsewhere, own.clone()),
            None => (own.clone(), own.clone()),
        };
        bmc.sessions
            .lock()
            .unwrap()
            .insert(token.clone(), odata_id.clone());
        bmc.tokens.lock().unwrap().push(token.clone());
        {
            let mut s = bmc.stats.lock().unwrap();
            s.logins_ok += 1;
            s.sessions_created += 1;
        }
        let mut body = model.session_template.clone().unwrap_or_else(
            || json!({"@odata.type": "#Session.v1_0_0.Session", "Name": "User Session"}),
        );
        body["@odata.id"] = json!(odata_id);
        body["Id"] = json!(id);
        body["UserName"] = json!(bmc.username);
        return respond(
            w,
            201,
            &[("X-Auth-Token", token), ("Location", location)],
            &body.to_string(),
        );
    }
    // Everything else needs a valid session or basic auth.
    let token_ok = req
        .headers
        .get("x-auth-token")
        .is_some_and(|t| bmc.sessions.lock().unwrap().contains_key(t));
    let basic = req.headers.get("authorization");
    let basic_ok = basic
        .and_then(|b| b.strip_prefix("Basic "))
        .and_then(decode_base64)
        .is_some_and(|up| up == format!("{}:{}", bmc.username, bmc.password));
    if faults.unauthorized || !(token_ok || basic_ok) {
        if basic.is_some() {
            bmc.stats.lock().unwrap().logins_failed += 1;
        }
        return respond(
            w,
            401,
            &[("WWW-Authenticate", "Basic realm=\"redfish\"".into())],
            &redfish_error("NoValidSession", "authentication required"),
        );
    }
    if basic_ok && !token_ok {
        bmc.stats.lock().unwrap().logins_ok += 1;
    }
    if faults.redirect_once && req.method == "GET" && !req.query.contains("moved=1") {
        let sep = if req.query.is_empty() { "" } else { "&" };
        let to = format!("{}?{}{sep}moved=1", req.path, req.query);
        return respond(w, 302, &[("Location", to)], "");
    }
    if let Some(h) = &faults.hostile {
        if let Some(keep) = hostile::answer(h, req, &path, w) {
            return keep;
        }
    }
    match req.method.as_str() {
        "DELETE" => {
            let mut sessions = bmc.sessions.lock().unwrap();
            let before = sessions.len();
            sessions.retain(|_, loc| norm(loc) != path);
            if sessions.len() < before {
                respond(w, 204, &[], "")
            } else {
                respond(w, 404, &[], &redfish_error("ResourceMissingAtURI", &path))
            }
        }
        "GET" => serve_file(bmc, w, &path, &req.query, &faults, true),
        _ => respond(
            w,
            405,
            &[],
            &redfish_error("ActionNotSupported", &req.method),
        ),
    }
}

fn serve_file<W: Write>(
    bmc: &Bmc,
    w: &mut W,
    path: &str,
    query: &str,
    faults: &Faults,
    authed: bool,
) -> bool {
    let model = &bmc.model;
    if faults.missing.iter().any(|m| path.starts_with(m.as_str())) {
        return respond(w, 404, &[], &redfish_error("ResourceMissingAtURI", path));
    }
    let Some(text) = model.files.get(path) else {
        return respond(w, 404, &[], &redfish_error("ResourceMissingAtURI", path));
    };
    let mut body = if model.expand && query.contains("$expand") {
        expand(model, text)
    } else {
        text.clone()
    };
    body = rewrite(model, bmc.instance, &body);
    if let Some(name) = bmc.hostname.lock().unwrap().as_deref() {
        body = with_hostname(&body, name);
    }
    if let Some(h) = &faults.hostile {
        body = if authed {
            hostile::body(h, body)
        } else {
            hostile::root(h, body)
        };
    }
    if authed && faults.malformed {
        let cut = body.len() / 3;
        return respond(w, 200, &[], &format!("{}, \"broken\": [", &body[..cut]));
    }
    if authed && faults.truncated {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body.as_bytes()[..body.len() / 2]);
        let _ = w.flush();
        return false;
    }
    if authed && faults.huge {
        let total: usize = 256 << 20;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
        );
        if w.write_all(head.as_bytes()).is_err() {
            return false;
        }
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..total / chunk.len() {
            if w.write_all(&chunk).is_err() {
                return false;
            }
        }
        return false;
    }
    respond(w, 200, &[], &body)
}

/// `$expand=.($levels=1)` on a collection: members replaced by their bodies;
/// on a resource: navigation references (outside Links) replaced.
fn expand(model: &Model, text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let lookup = |r: &Value| -> Option<Value> {
        let id = r.get("@odata.id")?.as_str()?;
        if r.as_object()?.len() != 1 {
            return None;
        }
        serde_json::from_str(model.files.get(&norm(id))?).ok()
    };
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in obj.iter_mut() {
            if k == "Links" || k == "Oem" || k.starts_with('@') {
                continue;
            }
            if let Some(arr) = val.as_array_mut() {
                for m in arr.iter_mut() {
                    if let Some(full) = lookup(m) {
                        *m = full;
                    }
                }
            } else if k != "Members" {
                if let Some(full) = lookup(val) {
                    *val = full;
                }
            }
        }
    }
    v.to_string()
}
