//! The hook's log messages, each under its own Kea message ID, written to
//! the Kea logger `kea-dhcp4.bmc-discovery`, so the operator's Kea `loggers`
//! configuration (severity, debuglevel, output) governs them and a line can
//! be filtered or looked up by its ID.
//!
//! The IDs, texts and severities come from one file,
//! `src/kea/bmc_discovery_messages.mes` (Kea's message-file format):
//! build.rs turns it into the dictionary the shim registers with Kea and
//! into the constants of [`messages`]. `kea_log!` takes one of those
//! constants and exactly as many arguments as its text has placeholders, or
//! the crate does not compile.
//!
//! Outside Kea (the standalone tools in `examples/`, tests using the rlib)
//! no Kea logger exists; the same messages then go, formatted, to whatever
//! `log` logger the program installed. Inside Kea the `log` crate only
//! carries the libraries' warnings and errors (ureq, rustls, ...).
//!
//! `log::set_logger` succeeds once per process, and Kea may load the library
//! many times; the logger is a stateless forwarder installed on the first
//! `load()` and simply kept. Whether a line is wanted is asked of Kea first,
//! so a disabled level costs one call and no formatting.

use std::ffi::CStr;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::kea::bindings::{
    bmc_str, shim_log, shim_log_enabled, BMC_LOG_DEBUG, BMC_LOG_ERROR, BMC_LOG_INFO, BMC_LOG_TRACE,
    BMC_LOG_WARN,
};

/// One entry of the message file.
#[derive(Debug)]
pub struct Message {
    /// The Kea message ID, as registered by the shim.
    pub id: &'static CStr,
    /// The text with its %1..%N placeholders.
    pub text: &'static str,
    /// From the first words of the entry's explanation.
    pub level: Level,
    /// N, the number of placeholders.
    pub args: usize,
}

/// Every message ID of the hook, generated from the message file.
pub mod messages {
    use super::Message;
    include!(concat!(env!("OUT_DIR"), "/messages.rs"));
}

/// Logs one message: `kea_log!(BMC_DISCOVERY_LEASE_FAILED, mac, reason)`.
/// The ID must be in the message file and the arguments (anything
/// `Display`) must match its placeholders in number; both are checked when
/// the crate compiles. Arguments are only formatted if the line is wanted.
macro_rules! kea_log {
    ($id:ident $(, $arg:expr)* $(,)?) => {{
        const MESSAGE: &$crate::kea::log::Message = &$crate::kea::log::messages::$id;
        const _: () = assert!(
            MESSAGE.args == <[&str]>::len(&[$(stringify!($arg)),*]),
            concat!(
                stringify!($id),
                ": the number of arguments differs from the placeholders \
                 in src/kea/bmc_discovery_messages.mes"
            )
        );
        if $crate::kea::log::enabled(MESSAGE) {
            $crate::kea::log::emit(MESSAGE, &[$(&$arg as &dyn ::std::fmt::Display),*]);
        }
    }};
}
pub(crate) use kea_log;

/// Set by [`install`], i.e. once Kea has loaded the library.
static IN_KEA: AtomicBool = AtomicBool::new(false);

/// The `log` target of this crate's own lines when outside Kea.
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

/// Whether a line of `message` would be written (`kea_log!` asks first).
pub fn enabled(message: &Message) -> bool {
    if IN_KEA.load(Ordering::Relaxed) {
        // SAFETY: shim_log_enabled takes a plain int and catches all exceptions.
        unsafe { shim_log_enabled(severity(message.level)) != 0 }
    } else {
        log::log_enabled!(target: OWN_TARGET, message.level)
    }
}

/// Writes `message` with `args` (use `kea_log!`, which checks them).
pub fn emit(message: &Message, args: &[&dyn Display]) {
    let values: Vec<String> = args.iter().map(|a| log_safe(a.to_string())).collect();
    if IN_KEA.load(Ordering::Relaxed) {
        to_kea(message, &values);
    } else {
        log::log!(target: OWN_TARGET, message.level, "{}", render(message.text, &values));
    }
}

fn to_kea(message: &Message, values: &[String]) {
    let strs: Vec<bmc_str> = values
        .iter()
        .map(|v| bmc_str {
            ptr: v.as_ptr().cast(),
            len: v.len(),
        })
        .collect();
    // SAFETY: the ID is a static C string of the dictionary; `strs` and the
    // strings it points into are alive for the call; the shim catches all.
    unsafe {
        shim_log(
            message.id.as_ptr(),
            severity(message.level),
            strs.as_ptr(),
            strs.len(),
        )
    };
}

/// The text with %1..%9 replaced, in one pass (an argument that itself
/// contains "%2" stays as it is).
/// A value made safe for one log line: the second layer behind the cleaning
/// of BMC and client strings where they enter (issue 15). Controls, bidi and
/// format characters become `\u{..}` escapes, so no value can start a
/// forged line or reorder what a terminal shows; a `%` before a digit
/// becomes a full-width `％`, because Kea substitutes `%N` again inside
/// values already put in, and a device's `%2` would pull in another value.
/// Allocates only when there is something to change.
fn log_safe(value: String) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c as u32, 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2069 | 0xFEFF)
    };
    let percent_digit = value
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'%' && w[1].is_ascii_digit());
    if !percent_digit && !value.chars().any(unsafe_char) {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('\u{FF05}');
        } else if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn render(text: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let slot = match (c, chars.peek().and_then(|d| d.to_digit(10))) {
            ('%', Some(n)) if n >= 1 && (n as usize) <= values.len() => n as usize,
            _ => {
                out.push(c);
                continue;
            }
        };
        chars.next();
        out.push_str(&values[slot - 1]);
    }
    out
}

/// Forwards the libraries' warnings and errors from the `log` crate.
struct LibraryLogger;

static LOGGER: LibraryLogger = LibraryLogger;

impl Log for LibraryLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // A debug level must not drown in HTTP internals.
        metadata.level() <= Level::Warn
            // SAFETY: shim_log_enabled takes a plain int and catches all exceptions.
            && unsafe { shim_log_enabled(severity(metadata.level())) != 0 }
    }

    fn log(&self, record: &Record) {
        if !Log::enabled(self, record.metadata()) {
            return;
        }
        let message = if record.level() == Level::Error {
            &messages::BMC_DISCOVERY_LIBRARY_ERROR
        } else {
            &messages::BMC_DISCOVERY_LIBRARY_WARN
        };
        to_kea(
            message,
            &[
                log_safe(record.target().to_string()),
                log_safe(record.args().to_string()),
            ],
        );
    }

    fn flush(&self) {}
}

/// Sends the messages to Kea from now on and forwards the libraries' `log`
/// lines (idempotent).
pub fn install() {
    IN_KEA.store(true, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Warn);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_forge_lines_or_pull_in_other_values() {
        assert_eq!(log_safe("iDRAC-7 100%".into()), "iDRAC-7 100%");
        assert_eq!(
            log_safe("x\nINFO BMC_DISCOVERY_DISCOVERED forged\r\u{1b}[2J\u{202e}".into()),
            "x\\u{a}INFO BMC_DISCOVERY_DISCOVERED forged\\u{d}\\u{1b}[2J\\u{202e}"
        );
        assert_eq!(log_safe("a%2b%%1".into()), "a\u{FF05}2b%\u{FF05}1");
        assert_eq!(log_safe("\u{85}\u{7f}".into()), "\\u{85}\\u{7f}");
    }

    #[test]
    fn render_fills_each_placeholder_once() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            render(
                "lease of %1 failed: %2",
                &v(&["aa:bb", "discovery failed (auth)"])
            ),
            "lease of aa:bb failed: discovery failed (auth)"
        );
        // An argument's own "%2" is not a placeholder.
        assert_eq!(render("%1 and %2", &v(&["50%2", "x"])), "50%2 and x");
        assert_eq!(render("100% of %1", &v(&["it"])), "100% of it");
    }

    #[test]
    fn every_message_renders_without_a_placeholder_left() {
        for m in messages::ALL {
            let values: Vec<String> = (1..=m.args).map(|i| format!("<{i}>")).collect();
            let line = render(m.text, &values);
            assert!(
                !(1..=9).any(|i| line.contains(&format!("%{i}"))),
                "{:?}: {line}",
                m.id
            );
            assert!(m
                .id
                .to_str()
                .is_ok_and(|id| id.starts_with("BMC_DISCOVERY_")));
        }
    }
}
