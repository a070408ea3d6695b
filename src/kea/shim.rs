//! Safe calls into the C++ shim (`include/bmc_discovery.h`, `shim_*`): the
//! only code outside `exports` that names the bindings. Every shim
//! function catches C++ exceptions and reports through a return code and a
//! `bmc_sink`; these wrappers turn that into a `Result` with Kea's text.
//!
//! Kea's objects behind these calls (LibraryHandle, TimerMgr, StatsMgr, the
//! lease manager) are used on Kea's own threads only: the parameters and
//! registration at `load()`, the timer at `dhcp4_srv_configured` (or
//! `dhcp6_srv_configured`) and
//! `unload()`, statistics and the lease walk on the main thread's tick.

use std::ffi::{c_char, c_int, c_void, CString};

use super::bindings::{
    bmc_lease_event, bmc_sink, shim_active_leases, shim_family, shim_ha_heartbeat,
    shim_hooks_version, shim_library_parameters, shim_register, shim_staged_hooks_libraries,
    shim_stat_del, shim_stat_set, shim_timer_start, shim_timer_stop,
};
use super::lease::LeaseEvent;

/// Collects what the shim passes to a `bmc_sink`.
unsafe extern "C" fn collect(ctx: *mut c_void, data: *const c_char, len: usize) {
    // SAFETY: ctx is the &mut Vec<u8> passed alongside this sink; data/len
    // describe bytes the shim owns for the duration of the call.
    let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
    if !data.is_null() {
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
    }
}

/// Calls a shim function that reports through a `bmc_sink`: Ok with what
/// it reported when it returns 0, Err with it otherwise.
fn with_sink(f: impl FnOnce(bmc_sink, *mut c_void) -> c_int) -> Result<String, String> {
    let mut out = Vec::<u8>::new();
    let rc = f(Some(collect), (&mut out as *mut Vec<u8>).cast());
    let text = String::from_utf8_lossy(&out).into_owned();
    if rc == 0 {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The hooks API version this library was built for.
pub fn hooks_version() -> c_int {
    // SAFETY: returns a compile-time constant.
    unsafe { shim_hooks_version() }
}

/// The family of the daemon that loaded the library: 4 (kea-dhcp4) or 6
/// (kea-dhcp6).
pub fn family() -> u8 {
    // SAFETY: reads Kea's CfgMgr singleton, which the daemon set up first.
    if unsafe { shim_family() } == 6 {
        6
    } else {
        4
    }
}

/// The `parameters` of this library's entry, as JSON (`load()` only).
///
/// # Safety
/// `handle` is the LibraryHandle Kea passed to the `load()` running now.
pub unsafe fn library_parameters(handle: *mut c_void) -> Result<String, String> {
    // SAFETY: handle as the caller promises; the sink pair matches.
    with_sink(|sink, ctx| unsafe { shim_library_parameters(handle, sink, ctx) })
}

/// The `hooks-libraries` of the configuration being checked or staged, as
/// Kea's JSON list (`version()`, which Kea calls to validate).
pub fn staged_hooks_libraries() -> Result<String, String> {
    // SAFETY: the sink pair matches.
    with_sink(|sink, ctx| unsafe { shim_staged_hooks_libraries(sink, ctx) })
}

/// Registers the lease callouts and `dhcpN_srv_configured` of the loading
/// daemon's family, and `commands`.
///
/// # Safety
/// `handle` is the LibraryHandle Kea passed to the `load()` running now.
pub unsafe fn register(handle: *mut c_void, commands: &[&str]) -> Result<(), String> {
    let names: Vec<CString> = commands
        .iter()
        .map(|c| CString::new(*c).map_err(|_| format!("command name {c:?} holds a NUL")))
        .collect::<Result<_, _>>()?;
    let ptrs: Vec<*const c_char> = names.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: handle as the caller promises; ptrs point into `names`, alive
    // for the call.
    with_sink(|sink, ctx| unsafe { shim_register(handle, ptrs.as_ptr(), ptrs.len(), sink, ctx) })
        .map(drop)
}

/// Starts Kea's timer calling `bmc_on_tick` every `interval_ms` (main
/// thread).
pub fn timer_start(interval_ms: u32) -> Result<(), String> {
    // SAFETY: the sink pair matches; Kea's main thread.
    with_sink(|sink, ctx| unsafe { shim_timer_start(interval_ms, sink, ctx) }).map(drop)
}

/// Stops the timer (unload, main thread); a tick already queued finds it
/// gone and calls nothing.
pub fn timer_stop() {
    // SAFETY: no arguments; main thread.
    unsafe { shim_timer_stop() }
}

/// Sets Kea's statistic `name`. False if Kea refused.
pub fn stat_set(name: &str, value: i64) -> bool {
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: `name` is a NUL-terminated string alive for the call.
    unsafe { shim_stat_set(name.as_ptr(), value) == 0 }
}

/// Removes Kea's statistic `name`.
pub fn stat_del(name: &str) {
    if let Ok(name) = CString::new(name) {
        // SAFETY: as in stat_set.
        unsafe { shim_stat_del(name.as_ptr()) };
    }
}

/// The HA hook's `ha-heartbeat` answer for this server, as JSON (Kea's
/// main thread): None when no HA hook is loaded.
pub fn ha_heartbeat() -> Option<Result<String, String>> {
    let mut out = Vec::<u8>::new();
    // SAFETY: the sink pair matches; Kea's main thread.
    let rc = unsafe { shim_ha_heartbeat(Some(collect), (&mut out as *mut Vec<u8>).cast()) };
    let text = String::from_utf8_lossy(&out).into_owned();
    match rc {
        0 => Some(Ok(text)),
        2 => None,
        _ => Some(Err(text)),
    }
}

/// Collects what the shim passes to a `bmc_lease_sink`.
unsafe extern "C" fn collect_lease(ctx: *mut c_void, ev: *const bmc_lease_event) {
    // SAFETY: ctx is the &mut Vec<LeaseEvent> passed with this sink; ev is
    // an initialised event on the shim's stack, valid for the call.
    let out = unsafe { &mut *(ctx as *mut Vec<LeaseEvent>) };
    if let Some(ev) = unsafe { ev.as_ref() } {
        out.push(LeaseEvent(*ev));
    }
}

/// Every active lease in Kea's lease database (not expired, not declined or
/// reclaimed), as events of kind `Active`. Kea's main thread only: Kea's
/// lease managers are only safe there (or on packet threads), never on a
/// thread of ours.
pub fn active_leases() -> Result<Vec<LeaseEvent>, String> {
    let mut leases: Vec<LeaseEvent> = Vec::new();
    // SAFETY: each sink is paired with the context it expects; both
    // outlive the call.
    with_sink(|sink, ctx| unsafe {
        shim_active_leases(
            Some(collect_lease),
            (&mut leases as *mut Vec<LeaseEvent>).cast(),
            sink,
            ctx,
        )
    })
    .map_err(|e| format!("cannot read Kea's lease database: {e}"))?;
    Ok(leases)
}
