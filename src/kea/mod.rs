//! The boundary to Kea.

pub mod bindings;
pub mod exports;
pub mod lease;
pub mod log;
pub mod shim;
