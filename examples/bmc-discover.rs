//! bmc-discover: discover one BMC over Redfish with the hook's own engine
//! and print the server's inventory as JSON.
//!
//!   bmc-discover [--port N] [--credentials-file F] [--ca-file F | --pin-file F | --insecure]
//!                [--mac MAC] [--timeout S] [--deadline S]
//!                [--register --netbox-url URL --netbox-token-file F
//!                 [--hostname H] [--site S] [--prefix-len N] [--create-missing]
//!                 [--custom-fields off|use|create] [--dry-run]] HOST
//!
//! With --register, the server is also registered in NetBox exactly as the
//! hook would (HOST must then be the BMC's IPv4 address), and what changed
//! is printed on stderr; with --dry-run, what would change, and nothing is
//! written.
//!
//! Credentials come from --credentials-file (the hook's format) or from the
//! environment variables BMC_USERNAME and BMC_PASSWORD; never from the
//! command line, where `ps` would show them. The certificate is verified
//! against the system trust store unless --ca-file, --pin-file (trust on
//! first use, pins kept in that file) or --insecure says otherwise.
//!
//! stdout: the inventory (pretty JSON). stderr: diagnostics (RUST_LOG).
//! Exit status: 0 discovered, 1 discovery failed (one line says why),
//! 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dhcp_bmc_discovery::netbox::CustomFields;
use dhcp_bmc_discovery::redfish::{Credentials, Discoverer, Limits, PinStore, Target, TlsPolicy};

const USAGE: &str = "usage: bmc-discover [--port N] [--credentials-file F] \
[--ca-file F | --pin-file F | --insecure] [--mac MAC] [--timeout S] [--deadline S] \
[--register --netbox-url URL --netbox-token-file F [--hostname H] [--site S] \
[--prefix-len N] [--create-missing] [--custom-fields off|use|create] [--dry-run]] HOST
credentials: --credentials-file F, or BMC_USERNAME and BMC_PASSWORD in the environment";

struct Args {
    host: String,
    port: u16,
    credentials_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pin_file: Option<PathBuf>,
    insecure: bool,
    mac: Option<String>,
    limits: Limits,
    register: bool,
    netbox_url: Option<String>,
    netbox_token_file: Option<PathBuf>,
    dry_run: bool,
    custom_fields: CustomFields,
    hostname: Option<String>,
    site: Option<String>,
    prefix_len: u8,
    create_missing: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        host: String::new(),
        port: 443,
        credentials_file: None,
        ca_file: None,
        pin_file: None,
        insecure: false,
        mac: None,
        limits: Limits::default(),
        register: false,
        netbox_url: None,
        netbox_token_file: None,
        dry_run: false,
        custom_fields: CustomFields::Use,
        hostname: None,
        site: None,
        prefix_len: 32,
        create_missing: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                a.port = v
                    .parse()
                    .map_err(|_| format!("--port must be 1..=65535, got {v:?}"))?;
            }
            "--credentials-file" => a.credentials_file = Some(value(&arg)?.into()),
            "--ca-file" => a.ca_file = Some(value(&arg)?.into()),
            "--pin-file" => a.pin_file = Some(value(&arg)?.into()),
            "--insecure" => a.insecure = true,
            "--mac" => {
                let v = value("--mac")?;
                a.mac = Some(dhcp_bmc_discovery::redfish::values::mac(&v).ok_or_else(|| {
                    format!("--mac must be a MAC like 14:18:77:aa:bb:cc, got {v:?}")
                })?);
            }
            "--timeout" | "--deadline" => {
                let v = value(&arg)?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| format!("{arg} must be 1..=3600 seconds, got {v:?}"))?;
                if arg == "--timeout" {
                    a.limits.request_timeout = Duration::from_secs(secs);
                } else {
                    a.limits.deadline = Duration::from_secs(secs);
                }
            }
            "--register" => a.register = true,
            "--netbox-url" => a.netbox_url = Some(value(&arg)?),
            "--netbox-token-file" => a.netbox_token_file = Some(value(&arg)?.into()),
            "--hostname" => a.hostname = Some(value(&arg)?),
            "--site" => a.site = Some(value(&arg)?),
            "--prefix-len" => {
                let v = value("--prefix-len")?;
                a.prefix_len = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=32).contains(p))
                    .ok_or_else(|| format!("--prefix-len must be 1..=32, got {v:?}"))?;
            }
            "--create-missing" => a.create_missing = true,
            "--dry-run" => a.dry_run = true,
            "--custom-fields" => {
                let v = value("--custom-fields")?;
                a.custom_fields = match v.as_str() {
                    "off" => CustomFields::Off,
                    "use" => CustomFields::Use,
                    "create" => CustomFields::Create,
                    _ => {
                        return Err(format!(
                            "--custom-fields must be off, use or create, got {v:?}"
                        ))
                    }
                };
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if a.host.is_empty() => a.host = s.to_string(),
            s => return Err(format!("one HOST only, got a second: {s}")),
        }
    }
    if a.host.is_empty() {
        return Err("HOST is missing".into());
    }
    if a.register {
        if a.netbox_url.is_none() || a.netbox_token_file.is_none() {
            return Err("--register needs --netbox-url and --netbox-token-file".into());
        }
        if a.host.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(format!(
                "--register needs HOST to be the BMC's IPv4 address, got {:?}",
                a.host
            ));
        }
    }
    let modes = [a.ca_file.is_some(), a.pin_file.is_some(), a.insecure];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err("give one of --ca-file, --pin-file, --insecure".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .format_target(false)
            .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(NoHeaders(logger))).is_ok() {
        log::set_max_level(max);
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bmc-discover: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bmc-discover: {e}");
            ExitCode::from(1)
        }
    }
}

/// The logger, minus ureq's messages below warn: ureq logs every request's
/// headers at debug, X-Auth-Token included (it hides only Authorization and
/// Cookie), and no RUST_LOG (`ureq=trace`, `ureq::unit=trace`) may turn
/// them on. The engine's own debug lines say what was asked for, without
/// headers.
struct NoHeaders(env_logger::Logger);

impl log::Log for NoHeaders {
    fn enabled(&self, m: &log::Metadata) -> bool {
        !(m.target().starts_with("ureq") && m.level() > log::Level::Warn) && self.0.enabled(m)
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.0.log(r);
        }
    }
    fn flush(&self) {
        self.0.flush();
    }
}

fn run(a: Args) -> Result<(), String> {
    let credentials = match &a.credentials_file {
        Some(f) => {
            if let Some(w) = dhcp_bmc_discovery::redfish::credentials::permissions_warning(f) {
                log::warn!("{w}");
            }
            Credentials::load(f)?
        }
        None => {
            let user = std::env::var("BMC_USERNAME").map_err(|_| {
                "no credentials: give --credentials-file F, or set BMC_USERNAME and BMC_PASSWORD"
                    .to_string()
            })?;
            let pass = std::env::var("BMC_PASSWORD")
                .map_err(|_| "BMC_USERNAME is set but BMC_PASSWORD is not".to_string())?;
            Credentials::single(&user, &pass)
        }
    };
    let tls = if let Some(ca) = &a.ca_file {
        TlsPolicy::ca_file(ca)?
    } else if let Some(p) = &a.pin_file {
        TlsPolicy::Pin(Arc::new(PinStore::open(p)?))
    } else if a.insecure {
        log::warn!("--insecure: the BMC's certificate is not checked");
        TlsPolicy::Insecure
    } else {
        TlsPolicy::system_roots()?
    };
    let d = Discoverer::new(tls, credentials, a.limits, Duration::from_secs(1800));
    let mut target = Target::new(&a.host, a.port);
    target.mac = a.mac.clone();
    let got = d.discover(&target).map_err(|e| e.message)?;
    for w in &got.warnings {
        log::warn!("{w}");
    }
    log::info!(
        "discovered {} {} serial {} as {} ({} auth, vendor module {}): {} requests in {} ms",
        got.inventory.manufacturer.as_deref().unwrap_or("?"),
        got.inventory.model.as_deref().unwrap_or("?"),
        got.inventory.serial_number.as_deref().unwrap_or("?"),
        got.username,
        got.auth,
        got.inventory.vendor,
        got.round_trips,
        got.elapsed_ms
    );
    let json = serde_json::to_string_pretty(&got.inventory).map_err(|e| e.to_string())?;
    println!("{json}");
    if a.register {
        register(&a, &got.inventory)?;
    }
    Ok(())
}

fn register(a: &Args, inv: &dhcp_bmc_discovery::redfish::Inventory) -> Result<(), String> {
    use dhcp_bmc_discovery::netbox::{self, NetBox, Options, Registration};
    use dhcp_bmc_discovery::placement::PlacementPattern;
    let (Some(url), Some(token_file)) = (&a.netbox_url, &a.netbox_token_file) else {
        return Err("--register needs --netbox-url and --netbox-token-file".into());
    };
    let mut nb = NetBox::connect_with_token_file(url, token_file)?;
    nb.set_dry_run(a.dry_run);
    let mac = a
        .mac
        .clone()
        .or_else(|| inv.bmc.mac.clone())
        .ok_or("the BMC reported no MAC; give --mac")?;
    let ip: std::net::Ipv4Addr = a.host.parse().map_err(|_| "HOST is not an IPv4 address")?;
    let reg = Registration::for_lease(
        inv,
        &mac,
        ip,
        a.prefix_len,
        a.hostname.as_deref(),
        a.site.as_deref(),
        &PlacementPattern::default_pattern(),
    );
    let opts = Options {
        create_missing: a.create_missing,
        custom_fields: a.custom_fields,
        ..Options::default()
    };
    let out = netbox::register(&nb, &reg, &opts).map_err(|e| e.to_string())?;
    for n in &out.notes {
        log::warn!("{n}");
    }
    if out.changes.is_empty() {
        log::info!(
            "NetBox device {} ({}) is up to date: 0 writes",
            out.device_id,
            reg.name
        );
    } else if out.dry_run {
        log::info!(
            "dry run: registering {} would make {} writes:",
            reg.name,
            nb.writes()
        );
    } else {
        log::info!(
            "registered as NetBox device {} ({}), {} writes:",
            out.device_id,
            reg.name,
            nb.writes()
        );
        for c in &out.changes {
            log::info!("  {c}");
        }
    }
    Ok(())
}
