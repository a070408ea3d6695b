//! kea-hook-bmc-discovery: a Kea DHCPv4 hook library that notices BMCs taking
//! a lease and hands each one to a worker pool that discovers and registers
//! the server. See docs/ARCHITECTURE.md for the event path.
//!
//! Kea loads the `cdylib` (`libdhcp_bmc_discovery.so`); the `rlib` lets tests,
//! benchmarks and the standalone tools in `examples/` use the same code.

pub mod ansible;
pub mod check_process;
pub mod clock;
pub mod commands;
pub mod config;
pub mod hook;
pub mod intake;
pub mod kea;
pub mod mac;
pub mod netbox;
pub mod placement;
pub mod pool_report;
pub mod redfish;
pub mod state;
pub mod subnets;
pub mod telemetry;
pub mod untrusted;
pub mod work;

/// Name used in log lines, error messages and command texts.
pub const HOOK_NAME: &str = "bmc-discovery";
/// This library's version, reported by `bmc-status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
