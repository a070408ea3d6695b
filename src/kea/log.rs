//! Bridges the `log` crate to the Kea logger `kea-dhcp4.bmc-discovery`, so
//! the operator's Kea `loggers` configuration (severity, debuglevel, output)
//! governs the hook's lines too.
//!
//! `log::set_logger` succeeds once per process, and Kea may load the library
//! many times; the logger is a stateless forwarder installed on the first
//! `load()` and simply kept. Whether a line is wanted is asked of Kea, so a
//! disabled level costs one call and no formatting.

use std::fmt::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::kea::bindings::{
    shim_log, shim_log_enabled, BMC_LOG_DEBUG, BMC_LOG_ERROR, BMC_LOG_INFO, BMC_LOG_TRACE,
    BMC_LOG_WARN,
};

struct KeaLogger;

static LOGGER: KeaLogger = KeaLogger;

/// This crate's lines follow Kea's level; dependencies only speak up for
/// warnings and errors, so a debug level does not drown in HTTP internals.
const OWN_TARGET: &str = "dhcp_bmc_discovery";

fn severity(level: Level) -> i32 {
    (match level {
        Level::Error => BMC_LOG_ERROR,
        Level::Warn => BMC_LOG_WARN,
        Level::Info => BMC_LOG_INFO,
        Level::Debug => BMC_LOG_DEBUG,
        Level::Trace => BMC_LOG_TRACE,
    }) as i32
}

impl Log for KeaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        if !metadata.target().starts_with(OWN_TARGET) && metadata.level() > Level::Warn {
            return false;
        }
        // SAFETY: shim_log_enabled takes a plain int and catches all exceptions.
        unsafe { shim_log_enabled(severity(metadata.level())) != 0 }
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = String::with_capacity(128);
        if !record.target().starts_with(OWN_TARGET) {
            let _ = write!(line, "{}: ", record.target());
        }
        let _ = write!(line, "{}", record.args());
        // SAFETY: the pointer and length describe `line`, alive for the call.
        unsafe { shim_log(severity(record.level()), line.as_ptr().cast(), line.len()) };
    }

    fn flush(&self) {}
}

/// Installs the forwarder if no logger is installed yet (idempotent).
pub fn install() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Trace);
}
