//! Reads the active leases out of Kea's lease database, through the shim.
//! Kea's main thread only: Kea's lease managers are only safe there (or on
//! packet threads), never on a thread of ours.

use std::ffi::c_void;

use crate::kea::bindings::{bmc_lease_event, shim_active_leases4};
use crate::kea::lease::LeaseEvent;

/// Collects what the shim passes to a `bmc_lease_sink`.
unsafe extern "C" fn collect_lease(ctx: *mut c_void, ev: *const bmc_lease_event) {
    // SAFETY: ctx is the &mut Vec<LeaseEvent> passed with this sink; ev is
    // an initialised event on the shim's stack, valid for the call.
    let out = unsafe { &mut *(ctx as *mut Vec<LeaseEvent>) };
    if let Some(ev) = unsafe { ev.as_ref() } {
        out.push(LeaseEvent(*ev));
    }
}

/// Every active lease (not expired, not declined or reclaimed), as events
/// of kind `Active`.
pub fn active_leases() -> Result<Vec<LeaseEvent>, String> {
    let mut leases: Vec<LeaseEvent> = Vec::new();
    let mut error = Vec::<u8>::new();
    // SAFETY: each sink is paired with the context it expects; both
    // outlive the call.
    let rc = unsafe {
        shim_active_leases4(
            Some(collect_lease),
            (&mut leases as *mut Vec<LeaseEvent>).cast(),
            Some(crate::kea::exports::collect),
            (&mut error as *mut Vec<u8>).cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot read Kea's lease database: {}",
            String::from_utf8_lossy(&error)
        ));
    }
    Ok(leases)
}
