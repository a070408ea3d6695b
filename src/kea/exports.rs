//! Every function Kea or the C++ shim calls into Rust. Each body runs inside
//! `ffi_boundary!`, so a panic is logged and counted and turned into an error
//! return; it never unwinds into Kea.

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::bindings::{bmc_lease_event, bmc_sink};
use super::instance::{self, with_current};
use super::lease::LeaseEvent;
use super::log::{self as logging, kea_log};
use super::shim;
use crate::commands;
use crate::config::Config;
use crate::hook::{self, Hook};
use crate::intake::filter::Filter;
use crate::subnets::SubnetTable;
use crate::telemetry::counters::Counter;
use crate::work::pipeline::{self, Pipeline};
use crate::work::Services;

/// Runs `$body`; on panic, logs it, counts it and evaluates to `$on_panic`.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                note_panic(&*payload);
                $on_panic
            }
        }
    };
}

fn note_panic(payload: &(dyn std::any::Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    with_current(|rt| rt.stats().bump(Counter::Panics));
    kea_log!(BMC_DISCOVERY_PANIC_CAUGHT, what);
}

/// Kea: the hooks API version this library was built for.
///
/// Kea validates hook libraries by calling only this function (for
/// `kea-dhcp4 -t`, `config-test` and before every load), with the new
/// configuration's parameters already parsed. So this is where bad
/// parameters are refused: a version Kea does not expect makes it reject the
/// configuration, right after the hook's line naming the parameter.
#[no_mangle]
pub extern "C" fn version() -> c_int {
    ffi_boundary!(0, {
        logging::install();
        match check_staged_parameters() {
            Ok(()) => shim::hooks_version(),
            Err(message) => {
                kea_log!(BMC_DISCOVERY_CONFIG_REFUSED, message);
                0
            }
        }
    })
}

/// The parts of the hook a configuration makes.
type Parts = (Config, Filter, Arc<dyn Pipeline>, Services);

/// Parses and compiles the hook parameters; the one path both version() and
/// load() take, so they cannot disagree.
fn parse_parameters(json: &str, mode: pipeline::Mode) -> Result<Parts, String> {
    let config = Config::from_json(json).map_err(|e| e.to_string())?;
    let filter = Filter::new(&config).map_err(|e| e.to_string())?;
    let (pipeline, services) = pipeline::build(&config, mode).map_err(|e| e.to_string())?;
    Ok((config, filter, pipeline, services))
}

/// Validates the parameters of every entry in the staged configuration that
/// names this library file.
fn check_staged_parameters() -> Result<(), String> {
    let out = match shim::staged_hooks_libraries() {
        Ok(out) => out,
        Err(e) => {
            // Not fatal here: load() validates the parameters again.
            kea_log!(BMC_DISCOVERY_STAGED_CONFIG_UNAVAILABLE, e);
            return Ok(());
        }
    };
    let libraries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    let me = own_library_path();
    for lib in libraries {
        let path = lib.get("library").and_then(|p| p.as_str()).unwrap_or("");
        if is_this_library(path, me.as_deref()) {
            let params = lib
                .get("parameters")
                .map_or_else(|| "null".to_string(), |p| p.to_string());
            parse_parameters(&params, pipeline::Mode::Check)?;
        }
    }
    Ok(())
}

/// The file this code was loaded from, as the dynamic loader knows it.
fn own_library_path() -> Option<std::path::PathBuf> {
    // SAFETY: dladdr only reads loader tables; `info` is plain output data.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let found = unsafe { libc::dladdr(version as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(std::path::PathBuf::from(
        name.to_string_lossy().into_owned(),
    ))
}

fn is_this_library(path: &str, me: Option<&std::path::Path>) -> bool {
    let Some(me) = me else {
        // Unknown own path: judge by Kea's naming of this library.
        return path.ends_with("libdhcp_bmc_discovery.so");
    };
    match (std::fs::canonicalize(path), std::fs::canonicalize(me)) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::Path::new(path) == me,
    }
}

/// Kea: callouts may run on several packet threads at once.
#[no_mangle]
pub extern "C" fn multi_threading_compatible() -> c_int {
    1
}

/// Kea: validate parameters, start the workers, register callouts/commands.
/// Non-zero makes Kea refuse the configuration.
#[no_mangle]
pub extern "C" fn load(handle: *mut c_void) -> c_int {
    ffi_boundary!(1, {
        logging::install();
        match start(handle) {
            Ok(()) => 0,
            Err(message) => {
                kea_log!(BMC_DISCOVERY_LOAD_FAILED, message);
                1
            }
        }
    })
}

/// The daemon that loaded the library, as operators know it.
fn daemon_name() -> &'static str {
    match shim::family() {
        6 => "kea-dhcp6",
        _ => "kea-dhcp4",
    }
}

fn start(handle: *mut c_void) -> Result<(), String> {
    // SAFETY: handle is Kea's LibraryHandle for this load().
    let params = unsafe { shim::library_parameters(handle) }
        .map_err(|e| format!("cannot read the hook parameters: {e}"))?;
    // `kea-dhcp4 -T` (Kea ≥ 2.4) loads the hook in a check process beside
    // the running server: validate, then start and register nothing.
    if crate::check_process::is_config_check() {
        parse_parameters(&params, pipeline::Mode::Check)?;
        kea_log!(BMC_DISCOVERY_CHECK_VALID, daemon_name());
        return Ok(());
    }
    let (config, filter, pipeline, services) = parse_parameters(&params, pipeline::Mode::Load)?;
    let workers = config.workers;
    let capacity = config.queue_capacity;
    let discovery = match &config.redfish {
        Some(r) => format!(
            "Redfish discovery on port {} (tls-mode {}, credentials {})",
            r.port,
            r.tls_mode.as_str(),
            r.credentials_file
        ),
        None => "Redfish discovery off (no 'redfish' parameters): leases are only logged".into(),
    };
    let discovery = match &config.netbox {
        Some(n) => format!("{discovery}; NetBox registration at {}", n.url),
        None if config.redfish.is_some() => format!("{discovery}; NetBox registration off"),
        None => discovery,
    };
    // The same library serves both daemons; shim::register picks the
    // family's callouts.
    let discovery = match shim::family() {
        6 => format!("{discovery}; DHCPv6 leases (kea-dhcp6)"),
        _ => discovery,
    };
    if let Some(w) = config.redfish.as_ref().and_then(|r| {
        crate::redfish::credentials::permissions_warning(std::path::Path::new(&r.credentials_file))
    }) {
        kea_log!(BMC_DISCOVERY_CONFIG_WARNING, w);
    }
    let runtime = Hook::start(config, filter, pipeline, services)?;

    // SAFETY: handle as above.
    if let Err(error) = unsafe { shim::register(handle, commands::COMMANDS) } {
        runtime.shutdown();
        return Err(format!(
            "cannot register callouts and commands with Kea: {error}"
        ));
    }
    if let Some(stale) = instance::install(runtime) {
        kea_log!(BMC_DISCOVERY_STALE_INSTANCE);
        stale.shutdown();
    }
    kea_log!(
        BMC_DISCOVERY_LOADED,
        crate::VERSION,
        workers,
        capacity,
        discovery
    );
    Ok(())
}

/// Kea: stop and join every thread before the library can be unmapped.
#[no_mangle]
pub extern "C" fn unload() -> c_int {
    ffi_boundary!(1, {
        // Main thread: Kea calls unload there.
        shim::timer_stop();
        if let Some(runtime) = instance::uninstall() {
            runtime.kea_stats().withdraw();
            let counters = runtime.stats().counters();
            runtime.shutdown();
            kea_log!(
                BMC_DISCOVERY_UNLOADED,
                counters.seen,
                counters.accepted,
                counters.abandoned_at_unload
            );
        }
        0
    })
}

/// Shim, packet thread: one real lease.
///
/// # Safety
/// `event` is null or points to an initialised event, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn bmc_on_lease(event: *const bmc_lease_event) {
    ffi_boundary!((), {
        // SAFETY: the shim passes a pointer to a fully initialised event on
        // its stack, valid for this call; LeaseEvent is repr(transparent).
        if let Some(event) = unsafe { event.cast::<LeaseEvent>().as_ref() } {
            with_current(|rt| rt.on_lease(event));
        }
    })
}

/// Shim, main thread: Kea's subnets after a (re)configuration.
///
/// # Safety
/// `json` is null or points to `len` readable bytes, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn bmc_on_configured(json: *const c_char, len: usize) {
    ffi_boundary!((), {
        if json.is_null() {
            return;
        }
        // SAFETY: json/len describe a buffer the shim owns during the call.
        let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
        let text = String::from_utf8_lossy(bytes);
        with_current(
            |rt| match SubnetTable::from_json(&text, &rt.config().subnet_ids) {
                Ok((table, warnings)) => {
                    for w in warnings {
                        kea_log!(BMC_DISCOVERY_SUBNET_WARNING, w);
                    }
                    let opted: Vec<u32> = table
                        .all()
                        .iter()
                        .filter(|s| s.opted_in)
                        .map(|s| s.id)
                        .collect();
                    kea_log!(
                        BMC_DISCOVERY_SUBNETS_CONFIGURED,
                        table.all().len(),
                        format!("{opted:?}")
                    );
                    rt.set_subnets(table);
                }
                Err(e) => kea_log!(BMC_DISCOVERY_SUBNETS_FAILED, e),
            },
        );
        with_current(|rt| {
            rt.configured();
            if let Err(error) = shim::timer_start(hook::TICK_MS) {
                kea_log!(BMC_DISCOVERY_TIMER_FAILED, error);
            }
        });
    })
}

/// Shim, Kea's main thread: the timer tick (statistics, reconciliation).
#[no_mangle]
pub extern "C" fn bmc_on_tick() {
    ffi_boundary!((), {
        with_current(|rt| rt.on_tick());
    })
}

/// Shim, main thread: a control command.
///
/// # Safety
/// `json` is null or points to `len` readable bytes; `sink` is null or a
/// function that accepts `ctx`. All are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn bmc_command(
    json: *const c_char,
    len: usize,
    sink: bmc_sink,
    ctx: *mut c_void,
) {
    let answer = ffi_boundary!(
        commands::answer(
            commands::result::ERROR,
            "internal error; see the Kea log",
            None
        ),
        {
            let bytes: &[u8] = if json.is_null() {
                b""
            } else {
                // SAFETY: json/len describe a buffer the shim owns during the call.
                unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) }
            };
            with_current(|rt| commands::handle(bytes, Some(rt)))
                .unwrap_or_else(|| commands::handle(bytes, None))
        }
    );
    let text = answer.to_string();
    if let Some(sink) = sink {
        // SAFETY: sink/ctx come from the shim as a pair; text outlives the call.
        unsafe { sink(ctx, text.as_ptr().cast(), text.len()) };
    }
}

/// The definitions above must match the declarations bindgen generated from
/// the header; this fails to compile if they drift apart.
const _: () = {
    let _: [unsafe extern "C" fn(*const bmc_lease_event); 2] =
        [bmc_on_lease, crate::kea::bindings::bmc_on_lease];
    let _: [unsafe extern "C" fn(*const c_char, usize); 2] =
        [bmc_on_configured, crate::kea::bindings::bmc_on_configured];
    let _: [unsafe extern "C" fn(*const c_char, usize, bmc_sink, *mut c_void); 2] =
        [bmc_command, crate::kea::bindings::bmc_command];
    let _: [unsafe extern "C" fn(); 2] = [bmc_on_tick, crate::kea::bindings::bmc_on_tick];
};
