//! kea-hook-bmc-discovery: a Kea DHCPv4 hook library that notices BMCs taking
//! a lease and hands each one to a worker pool that discovers and registers
//! the server. See docs/ARCHITECTURE.md for the event path.
//!
//! Kea loads the `cdylib` (`libdhcp_bmc_discovery.so`); the `rlib` lets tests,
//! benchmarks and the standalone tools in `examples/` use the same code.

pub mod bindings;
pub mod check_process;
pub mod clock;
pub mod commands;
pub mod config;
pub mod event;
pub mod ffi;
pub mod filter;
pub mod gate;
pub mod hostname;
pub mod inflight;
pub mod inventory;
pub mod kea_stats;
pub mod logging;
pub mod metrics;
pub mod netbox;
pub mod pipeline;
pub mod pool_report;
pub mod prometheus;
pub mod reconcile;
pub mod redfish;
pub mod runtime;
pub mod scheduler;
pub mod state;
pub mod stats;
pub mod subnets;
pub mod worker;

/// Name used in log lines, error messages and command texts.
pub const HOOK_NAME: &str = "bmc-discovery";
/// This library's version, reported by `bmc-status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
