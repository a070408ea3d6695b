//! The boundary to Kea: the only code that names the bindings
//! (`include/bmc_discovery.h`). Kea calls in at the top of the crate
//! (`exports`: every `extern "C"` function, each inside a panic boundary,
//! reaching the loaded instance through `instance`); the crate calls Kea at
//! the bottom (`shim`: safe wrappers of the shim's functions; `log`: the
//! log bridge; `lease`: the lease event as the shim copies it).

pub mod bindings;
pub mod exports;
pub mod instance;
pub mod lease;
pub mod log;
pub mod shim;
