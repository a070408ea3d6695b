//! The instance Kea's callouts and commands reach: one pointer, set by
//! `load()` and taken away by `unload()`.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::hook::Hook;

static CURRENT: AtomicPtr<Hook> = AtomicPtr::new(ptr::null_mut());

/// Makes `hook` current. Returns any instance that was still installed
/// (a load without unload), which the caller shuts down.
pub fn install(hook: Hook) -> Option<Box<Hook>> {
    let old = CURRENT.swap(Box::into_raw(Box::new(hook)), Ordering::AcqRel);
    // SAFETY: non-null pointers in CURRENT come from Box::into_raw above.
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

/// Takes the current instance away (unload).
///
/// Kea calls `unload()` only with packet processing stopped (reconfiguration
/// and shutdown run in a multi-threading critical section), so no callout
/// can still be using the instance when it is freed.
pub fn uninstall() -> Option<Box<Hook>> {
    let old = CURRENT.swap(ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: as in install.
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

/// Runs `f` on the current instance, if the hook is loaded.
#[inline]
pub fn with_current<R>(f: impl FnOnce(&Hook) -> R) -> Option<R> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: see uninstall: the instance outlives every callout and command.
    unsafe { p.as_ref() }.map(f)
}
