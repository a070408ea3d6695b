//! A BMC's body -> the pre-parse check (`json::shape`) and serde_json, as
//! the client runs them on every answer, with the engine's member limit.
//! The property checked is the one the memory budget rests on: a body the
//! shape lets through never takes more heap once parsed than the shape
//! said (counted by this process's allocator).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dhcp_bmc_discovery::redfish::fuzzing::{shape, MAX_DEPTH};
use dhcp_bmc_discovery::redfish::DEFAULT_MAX_MEMBERS;
use libfuzzer_sys::fuzz_target;

struct Counting;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    let _ = HELD.try_with(|h| h.set(h.get() + n));
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size() as i64);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(l.size() as i64));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add(new as i64 - l.size() as i64);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = shape(data, DEFAULT_MAX_MEMBERS) else {
        return;
    };
    assert!(s.depth <= MAX_DEPTH && s.widest <= DEFAULT_MAX_MEMBERS);
    let before = HELD.with(Cell::get);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let held = HELD.with(Cell::get) - before;
    drop(v);
    assert!(
        held <= s.parsed_bytes as i64,
        "shape estimated {} bytes, the parsed value holds {held}",
        s.parsed_bytes
    );
});
