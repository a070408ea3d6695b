//! Compiles the C++ shim against Kea's headers, links Kea's libraries and
//! generates the Rust side of `include/bmc_discovery.h` with bindgen.
//!
//! `KEA_INCLUDE_DIR` (default `/usr/include/kea`) and `KEA_LIB_DIR` (default:
//! the linker's search path) point at another Kea build.
//!
//! The Kea version comes from the headers the shim compiles against, never
//! from the running system: `KEA_HOOKS_VERSION` in hooks/hooks.h (a C++
//! `const int`, invisible to the preprocessor, so it is parsed here and handed
//! to the shim as `BMC_KEA_HOOKS_VERSION`) and `VERSION "x.y.z"` in config.h.
//! It picks the library names and the extra libraries. A Kea outside
//! [`SUPPORTED`] fails the build with one line.

use std::env;
use std::path::{Path, PathBuf};

const HEADER: &str = "include/bmc_discovery.h";
/// The hook's log messages; see the file's header.
const MESSAGES: &str = "src/kea/bmc_discovery_messages.mes";
const SHIM_SOURCES: &[&str] = &["src/shim/callouts.cc", "src/shim/ha.cc", "src/shim/log.cc"];
/// The Kea series this tree builds and is tested against, as (major, minor):
/// every patch release of a series has its own hooks version (2.6.3 is
/// 20603) but the same API. 3.2 is not in the list: no Debian package exists
/// to test it on; tests/kea-headers-check.sh compiles the shim against its
/// headers from ISC's source, but nothing links or runs it (README.md, the
/// support table). `BMC_KEA_UNTESTED=1` builds against an unlisted Kea
/// anyway, for someone trying it out.
const SUPPORTED: &[(u32, u32)] = &[(2, 2), (2, 6), (3, 0)];
const SUPPORTED_TEXT: &str = "2.2.x, 2.6.x, 3.0.x";

/// The Kea libraries whose symbols the shim uses directly; Kea 3.0 renamed
/// libkea-dhcp++ to libkea-dhcp.
fn kea_libs(kea: &KeaVersion) -> Vec<&'static str> {
    let dhcp = if kea.hooks >= 30000 {
        "kea-dhcp"
    } else {
        "kea-dhcp++"
    };
    let mut libs = vec![
        "kea-dhcpsrv",
        dhcp,
        "kea-hooks",
        "kea-stats",
        "kea-cc",
        "kea-log",
        "kea-asiolink",
        "kea-exceptions",
    ];
    // From 3.0 Kea's headers pull in Boost.Asio's SSL error category, whose
    // inline code calls libcrypto. Linked here so the library names what it
    // needs instead of relying on kea-dhcp4 having loaded libcrypto first.
    if kea.hooks >= 30000 {
        libs.push("crypto");
    }
    libs
}

/// What the headers say about the Kea they belong to.
struct KeaVersion {
    /// KEA_HOOKS_VERSION, e.g. 20603 for Kea 2.6.3.
    hooks: u32,
    /// config.h's VERSION, e.g. "2.6.3".
    text: String,
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEA_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=KEA_LIB_DIR");
    println!("cargo:rerun-if-env-changed=BMC_KEA_UNTESTED");
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-changed={MESSAGES}");
    for src in SHIM_SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }

    let kea_include =
        PathBuf::from(env::var("KEA_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/kea".into()));
    if !kea_include.join("hooks/hooks.h").is_file() {
        panic!(
            "Kea headers not found: {} has no hooks/hooks.h; install Debian's kea-dev \
             (see README.md) or set KEA_INCLUDE_DIR to the directory holding hooks/hooks.h",
            kea_include.display()
        );
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let messages = std::fs::read_to_string(MESSAGES)
        .map_err(|e| format!("cannot read {MESSAGES}: {e}"))
        .and_then(|text| parse_messages(&text))
        .unwrap_or_else(|message| fail(&message));
    write_messages(&messages, &out);

    let kea = detect_kea(&kea_include).unwrap_or_else(|message| fail(&message));
    println!("cargo:rustc-env=BMC_KEA_VERSION={}", kea.text);
    compile_shim(&kea_include, &kea, &out);
    link_kea(&kea);
    generate_bindings();
}

/// Stops the build with one line (cargo prints a build script's panic with a
/// backtrace hint; an explicit error line and exit code read better).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn detect_kea(kea_include: &Path) -> Result<KeaVersion, String> {
    let hooks_h = kea_include.join("hooks/hooks.h");
    let config_h = kea_include.join("config.h");
    println!("cargo:rerun-if-changed={}", hooks_h.display());
    println!("cargo:rerun-if-changed={}", config_h.display());
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}; reinstall kea-dev", path.display()))
    };
    let hooks = parse_hooks_version(&read(&hooks_h)?).ok_or_else(|| {
        format!(
            "no `KEA_HOOKS_VERSION = N` in {}; is this Kea's hooks.h? (supported Kea: {SUPPORTED_TEXT})",
            hooks_h.display()
        )
    })?;
    let text = parse_config_version(&read(&config_h)?).ok_or_else(|| {
        format!(
            "no `#define VERSION \"x.y.z\"` in {}; is this Kea's config.h? (supported Kea: {SUPPORTED_TEXT})",
            config_h.display()
        )
    })?;
    let (major, minor) = (hooks / 10000, hooks / 100 % 100);
    let expected = format!("{major}.{minor}.{}", hooks % 100);
    // Headers from two Kea builds mixed up (config.h from one, hooks.h from
    // another) would compile and then fail to load.
    if !text.starts_with(&expected) {
        return Err(format!(
            "Kea headers disagree: {} says VERSION \"{text}\" but {} says KEA_HOOKS_VERSION {hooks} (Kea {expected}); \
             point KEA_INCLUDE_DIR at one Kea's headers",
            config_h.display(),
            hooks_h.display()
        ));
    }
    let known = SUPPORTED.contains(&(major, minor));
    if !known {
        if hooks >= 20200 && env::var("BMC_KEA_UNTESTED").as_deref() == Ok("1") {
            println!(
                "cargo:warning=building against Kea {text} (hooks version {hooks}), which this tree does not support (supported: {SUPPORTED_TEXT}); BMC_KEA_UNTESTED=1 was set"
            );
        } else {
            // A newer Kea may just work: say how to try, and what is known.
            let newer = if hooks >= 30100 {
                "; BMC_KEA_UNTESTED=1 builds anyway, untested (the shim compiles against Kea 3.2.0's headers: tests/kea-headers-check.sh)"
            } else {
                ""
            };
            return Err(format!(
                "unsupported Kea {text} (KEA_HOOKS_VERSION {hooks} in {}): this tree supports Kea {SUPPORTED_TEXT}{newer}",
                hooks_h.display()
            ));
        }
    }
    Ok(KeaVersion { hooks, text })
}

/// `const int KEA_HOOKS_VERSION = 20200;` -> 20200.
fn parse_hooks_version(header: &str) -> Option<u32> {
    header.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with("//") {
            return None;
        }
        let rest = line.split("KEA_HOOKS_VERSION").nth(1)?;
        let value = rest.trim_start().strip_prefix('=')?.trim_start();
        let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// `#define VERSION "2.2.0"` -> "2.2.0". (Not PACKAGE_VERSION: Kea 3.0's
/// meson build writes it unquoted.)
fn parse_config_version(header: &str) -> Option<String> {
    header.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") || words.next() != Some("VERSION") {
            return None;
        }
        let value = words.next()?.strip_prefix('"')?.strip_suffix('"')?;
        Some(value.to_string())
    })
}

fn compile_shim(kea_include: &Path, kea: &KeaVersion, out: &Path) {
    let mut build = cc::Build::new();
    // Debian 12's kea-dev 2.2.0 lacks dhcpsrv/cfg_globals.h; use our stand-in
    // only when the system has none (see the header's comment).
    if !kea_include.join("dhcpsrv/cfg_globals.h").is_file() {
        println!("cargo:rerun-if-changed=include/kea-compat/dhcpsrv/cfg_globals.h");
        build.include("include/kea-compat");
    }
    build
        .cpp(true)
        .std("c++14")
        .include("include")
        // bmc_discovery_messages.inc, written by write_messages.
        .include(out)
        // Kea's and Boost's headers are not ours to keep warning-free.
        .flag("-isystem")
        .flag(
            kea_include
                .to_str()
                .expect("KEA_INCLUDE_DIR must be valid UTF-8"),
        )
        .define("BMC_KEA_HOOKS_VERSION", kea.hooks.to_string().as_str())
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .flag("-fvisibility=hidden");
    for src in SHIM_SOURCES {
        build.file(src);
    }
    build.compile("bmc_discovery_shim");
}

fn link_kea(kea: &KeaVersion) {
    if let Ok(dir) = env::var("KEA_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    for lib in kea_libs(kea) {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
}

fn generate_bindings() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindgen::Builder::default()
        .header(HEADER)
        .allowlist_function("shim_.*|bmc_.*")
        .allowlist_type("bmc_.*")
        .allowlist_var("BMC_.*")
        .use_core()
        .derive_default(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {HEADER}: {e}"))
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}

/// One `% ID text` entry of the message file.
struct Message {
    id: String,
    text: String,
    /// The Rust severity name: "Error", "Warn", "Info", "Debug", "Trace".
    severity: &'static str,
    /// The highest placeholder, %1..%N all present.
    args: usize,
}

/// The explanation's first words name the severity (the file's header).
const SEVERITIES: &[(&str, &str)] = &[
    ("This error message", "Error"),
    ("This warning message", "Warn"),
    ("This informational message", "Info"),
    ("This debug message", "Debug"),
    ("This detailed debug message", "Trace"),
];

/// Reads Kea's message-file format: `#` comments, `% ID text` entries, each
/// followed by its explanation. Fails on anything the shim or the Rust
/// constants could get wrong: a bad ID, a duplicate, a gap in the
/// placeholders, more than nine of them (Kea's "%1" would also match
/// "%10"), a missing severity.
fn parse_messages(text: &str) -> Result<Vec<Message>, String> {
    let mut messages: Vec<Message> = Vec::new();
    let mut explanation: Option<String> = None;
    let finish = |messages: &mut Vec<Message>, explanation: Option<String>| {
        let (Some(m), Some(e)) = (messages.last_mut(), explanation) else {
            return Ok(());
        };
        let e = e.trim_start();
        m.severity = SEVERITIES
            .iter()
            .find(|(words, _)| e.starts_with(words))
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                format!(
                    "{MESSAGES}: {}'s explanation must begin with one of {:?}",
                    m.id,
                    SEVERITIES.iter().map(|(w, _)| *w).collect::<Vec<_>>()
                )
            })?;
        Ok::<(), String>(())
    };
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.starts_with('$') {
            continue;
        }
        let Some(entry) = line.strip_prefix("% ") else {
            if let Some(e) = explanation.as_mut() {
                e.push_str(line);
                e.push('\n');
            } else if !line.trim().is_empty() {
                return Err(format!(
                    "{MESSAGES}:{}: text before the first `% ID`",
                    n + 1
                ));
            }
            continue;
        };
        finish(&mut messages, explanation.take())?;
        let (id, text) = entry.split_once(' ').unwrap_or((entry, ""));
        let valid = id.starts_with("BMC_DISCOVERY_")
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "{MESSAGES}:{}: message ID {id:?} must be BMC_DISCOVERY_ followed by A-Z, 0-9, _",
                n + 1
            ));
        }
        if messages.iter().any(|m| m.id == id) {
            return Err(format!("{MESSAGES}:{}: {id} is defined twice", n + 1));
        }
        let args = (1..=10)
            .take_while(|i| text.contains(&format!("%{i}")))
            .count();
        if args > 9 || (args + 1..=10).any(|i| text.contains(&format!("%{i}"))) {
            return Err(format!(
                "{MESSAGES}:{}: {id}'s placeholders must be %1..%N with N at most 9",
                n + 1
            ));
        }
        messages.push(Message {
            id: id.to_string(),
            text: text.trim_end().to_string(),
            severity: "",
            args,
        });
        explanation = Some(String::new());
    }
    finish(&mut messages, explanation)?;
    if let Some(m) = messages.iter().find(|m| m.severity.is_empty()) {
        return Err(format!("{MESSAGES}: {} has no explanation", m.id));
    }
    Ok(messages)
}

/// The dictionary entries for the shim's MessageInitializer, and the Rust
/// constants `kea_log!` names.
fn write_messages(messages: &[Message], out: &Path) {
    let c_string = |s: &str| {
        let mut q = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => {
                    q.push('\\');
                    q.push(c);
                }
                _ => q.push(c),
            }
        }
        q.push('"');
        q
    };
    let mut cc = String::from("// Generated by build.rs from the message file; do not edit.\n");
    let mut ids = String::from(
        "// Generated by build.rs from the message file; do not edit.\n\
         // Each macro is a message ID and its severity, the first two arguments\n\
         // of shim_log, so C++ cannot name an ID the file lacks or log it at\n\
         // another severity.\n\
         #pragma once\n",
    );
    let mut rs = String::from("// Generated by build.rs from the message file; do not edit.\n");
    for m in messages {
        cc.push_str(&format!("{}, {},\n", c_string(&m.id), c_string(&m.text)));
        let c_severity = match m.severity {
            "Error" => "BMC_LOG_ERROR",
            "Warn" => "BMC_LOG_WARN",
            "Info" => "BMC_LOG_INFO",
            "Debug" => "BMC_LOG_DEBUG",
            _ => "BMC_LOG_TRACE",
        };
        ids.push_str(&format!(
            "#define {} {}, {c_severity}\n",
            m.id,
            c_string(&m.id)
        ));
        rs.push_str(&format!(
            "pub const {id}: Message = Message {{ id: c{id:?}, text: {text:?}, level: log::Level::{sev}, args: {args} }};\n",
            id = m.id,
            text = m.text,
            sev = m.severity,
            args = m.args,
        ));
    }
    rs.push_str("/// Every message of the file, in its order.\npub const ALL: &[&Message] = &[\n");
    for m in messages {
        rs.push_str(&format!("    &{},\n", m.id));
    }
    rs.push_str("];\n");
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .unwrap_or_else(|e| fail(&format!("cannot write {name} to OUT_DIR: {e}")))
    };
    write("bmc_discovery_messages.inc", &cc);
    write("bmc_discovery_message_ids.h", &ids);
    write("messages.rs", &rs);
}
