//! The packet-thread intake.

pub mod filter;
pub mod inflight;
