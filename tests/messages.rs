//! The message file and the code agree: every message ID the code logs is
//! in src/kea/bmc_discovery_messages.mes (the compiler checks this too, for
//! Rust and the shim), every entry of the file is logged somewhere, and no
//! line of the hook bypasses the IDs through the `log` crate's macros.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MES: &str = "src/kea/bmc_discovery_messages.mes";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn defined() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(MES)).expect(MES);
    text.lines()
        .filter_map(|l| l.strip_prefix("% "))
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "cc" || e == "h")
        {
            out.push(path);
        }
    }
}

/// `BMC_DISCOVERY_...` words right after `prefix` (whitespace allowed).
fn ids_after(text: &str, prefix: &str, out: &mut BTreeSet<String>) {
    for (at, _) in text.match_indices(prefix) {
        let rest = text[at + prefix.len()..].trim_start();
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if id.starts_with("BMC_DISCOVERY_") {
            out.insert(id);
        }
    }
}

/// The IDs the code logs: `kea_log!(ID`, `messages::ID` (Rust), and the
/// shim's `log_what(ID` (C++).
fn used() -> (BTreeSet<String>, Vec<String>) {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let mut ids = BTreeSet::new();
    let mut bypasses = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source is UTF-8");
        for prefix in ["kea_log!(", "messages::", "log_what("] {
            ids_after(&text, prefix, &mut ids);
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let bypass = ["error!", "warn!", "info!", "debug!", "trace!"]
                .iter()
                .any(|m| code.contains(&format!("log::{m}")) || code.contains(&format!(" {m}(")));
            if bypass {
                bypasses.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    (ids, bypasses)
}

#[test]
fn every_logged_id_is_in_the_message_file_and_every_entry_is_logged() {
    let defined = defined();
    assert!(
        defined.len() > 40,
        "{MES} has only {} entries",
        defined.len()
    );
    let set: BTreeSet<String> = defined.iter().cloned().collect();
    assert_eq!(set.len(), defined.len(), "an ID is defined twice in {MES}");
    let (used, _) = used();
    let unknown: Vec<_> = used.difference(&set).collect();
    let unused: Vec<_> = set.difference(&used).collect();
    assert!(unknown.is_empty(), "logged but not in {MES}: {unknown:?}");
    assert!(
        unused.is_empty(),
        "in {MES} but logged nowhere (remove the entry or log it): {unused:?}"
    );
}

#[test]
fn the_message_file_is_sorted_by_id() {
    let defined = defined();
    let mut sorted = defined.clone();
    sorted.sort();
    assert_eq!(defined, sorted, "{MES}: keep the entries sorted by ID");
}

#[test]
fn no_line_bypasses_the_message_ids() {
    let (_, bypasses) = used();
    assert!(
        bypasses.is_empty(),
        "log through kea_log! with an ID of {MES}, not the log crate's macros:\n{}",
        bypasses.join("\n")
    );
}
