//! The crate's imports go only downward, through the layers written below
//! (and drawn in docs/ARCHITECTURE.md), and no modules import each other in
//! a cycle.
//!
//! It reads every file under `src/` (not `src/bin/`, a separate crate),
//! maps each to its module (`src/work/pool.rs` is `work::pool`), and
//! collects every `crate::…`, `super::…` and `self::…` path in its code
//! (comments and string literals left out), `use` lines and paths written
//! inline alike. A path names the deepest module it reaches. Then:
//! - a module may use its ancestors and descendants freely (a `mod.rs`
//!   re-exporting its children, children using their parent's items);
//! - any other reference must go to a module of the same layer or a lower
//!   one;
//! - among the children of each module (the top-level modules are the
//!   crate's children), the references must not form a cycle;
//! - only modules under `kea` name the bindings (`kea::bindings`).
//!
//! Every module must be in a layer: a new one is placed on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom: each may use the ones below it. A module is
/// in the layer of the longest prefix that names it (`kea::exports` is at
/// the top, the rest of `kea` near the bottom: Kea calls in at the top and
/// is called at the bottom, and only `kea` names the bindings).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "entry points Kea and the shim call, and the instance they reach",
        &["kea::exports", "kea::instance"],
    ),
    ("control commands", &["commands"]),
    ("composition root", &["hook"]),
    ("work behind the queue", &["work"]),
    ("packet-thread intake", &["intake"]),
    ("telemetry", &["telemetry"]),
    ("configuration", &["config"]),
    ("Ansible inventory", &["ansible"]),
    ("state file", &["state"]),
    ("NetBox", &["netbox"]),
    ("Redfish", &["redfish"]),
    (
        "placement, pool report, Kea's subnets",
        &["placement", "pool_report", "subnets"],
    ),
    ("calls into Kea, lease event, log bridge", &["kea"]),
    // check_process (is this `kea-dhcp4 -T`?) comes with the Kea-versions
    // work; it reads only the process's own command line. config::defaults,
    // the parameters' table, imports nothing: every part reads its
    // defaults there.
    (
        "shared small types, facts about the process",
        &[
            "clock",
            "mac",
            "check_process",
            "untrusted",
            "config::defaults",
        ],
    ),
];

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// One reference found in a file.
#[derive(Debug, Clone)]
struct Reference {
    from: Module,
    to: Module,
    file: String,
    line: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

/// Tokens of Rust source with their line numbers, without comments,
/// string, byte-string, raw-string and char literals.
fn tokens(src: &str) -> Vec<(Token, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
            }
        } else if c == b'r' && (next == Some(b'#') || next == Some(b'"')) && raw_start(b, i) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            j += 1; // the quote
            loop {
                match b.get(j) {
                    None => break,
                    Some(b'"')
                        if b[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|h| **h == b'#')
                            .count()
                            == hashes =>
                    {
                        j += 1 + hashes;
                        break;
                    }
                    Some(ch) => {
                        line += usize::from(*ch == b'\n');
                        j += 1;
                    }
                }
            }
            i = j;
            out.push((Token::Other, line));
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                line += usize::from(b.get(j) == Some(&b'\n'));
                j += 1;
            }
            i = j + 1;
            out.push((Token::Other, line));
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some(b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += 2 + ch_len;
                } else {
                    i += 1; // a lifetime: its name follows as an identifier
                }
            }
            out.push((Token::Other, line));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Token::Ident(src[start..i].to_string()), line));
        } else if c == b':' && next == Some(b':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    b'{' => Token::Open,
                    b'}' => Token::Close,
                    b',' => Token::Comma,
                    b'*' => Token::Star,
                    _ => Token::Other,
                },
                line,
            ));
            i += if c.is_ascii() {
                1
            } else {
                src[i..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string (not the end of an identifier
/// such as `for`).
fn raw_start(b: &[u8], i: usize) -> bool {
    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The paths of a path tree starting at `toks[i]` (after the first
/// segment): `a::b`, `a::{b, c::d, self}`, `a::*`. Returns the paths (as
/// segments after `prefix`) and the index after the tree.
fn path_tree(
    toks: &[(Token, usize)],
    mut i: usize,
    prefix: Vec<String>,
) -> (Vec<Vec<String>>, usize) {
    let mut path = prefix;
    loop {
        if toks.get(i).map(|t| &t.0) != Some(&Token::PathSep) {
            return (vec![path], i);
        }
        match toks.get(i + 1).map(|t| &t.0) {
            Some(Token::Ident(s)) => {
                path.push(s.clone());
                i += 2;
            }
            Some(Token::Star) => return (vec![path], i + 2),
            Some(Token::Open) => {
                let mut all = Vec::new();
                i += 2;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Token::Close) | None => return (all, i + 1),
                        Some(Token::Comma) => i += 1,
                        Some(Token::Ident(s)) if s == "self" => {
                            all.push(path.clone());
                            i += 1;
                        }
                        Some(Token::Ident(s)) => {
                            let mut p = path.clone();
                            p.push(s.clone());
                            let (more, j) = path_tree(toks, i + 1, p);
                            all.extend(more);
                            i = j;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => return (vec![path], i),
        }
    }
}

/// The references of one file of module `module`, as absolute paths.
fn references(
    src: &str,
    module: &Module,
    file: &str,
    modules: &BTreeSet<Module>,
) -> Vec<Reference> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules (`mod tests { .. }`): `super` inside one means the file's module.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(k) if k == "mod" => {
                if let (Some((Token::Ident(m), _)), Some((Token::Open, _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((m.clone(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(k)
                if (k == "crate" || k == "super" || k == "self")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Token::PathSep) =>
            {
                // `a::crate` cannot happen; `x::super` neither: a path starts here
                // unless it continues a longer one (`super::super` is handled below).
                if i > 0 && toks[i - 1].0 == Token::PathSep {
                    i += 1;
                    continue;
                }
                let line = toks[i].1;
                let mut base: Vec<String> = module.clone();
                base.extend(inline.iter().map(|(m, _)| m.clone()));
                let mut j = i;
                let start: Vec<String> = match k.as_str() {
                    "crate" => {
                        j += 1;
                        Vec::new()
                    }
                    _ => {
                        // self / super (repeated)
                        let mut b = base.clone();
                        while let Some((Token::Ident(s), _)) = toks.get(j) {
                            if s == "super" {
                                b.pop();
                            } else if s != "self" {
                                break;
                            }
                            if toks.get(j + 1).map(|t| &t.0) != Some(&Token::PathSep) {
                                break;
                            }
                            j += 2;
                        }
                        j -= 1; // back onto the last `::`
                        b
                    }
                };
                let (paths, next) = path_tree(&toks, j, start);
                for p in paths {
                    let to = deepest_module(&p, modules);
                    out.push(Reference {
                        from: module.clone(),
                        to,
                        file: file.to_string(),
                        line,
                    });
                }
                i = next.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The deepest module a path reaches (`hook::Hook::start` → `hook`).
fn deepest_module(path: &[String], modules: &BTreeSet<Module>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

fn is_ancestor(a: &[String], b: &[String]) -> bool {
    a.len() <= b.len() && b[..a.len()] == *a
}

/// The layer of a module (0 = top) and the prefix that puts it there:
/// the longest one that names it.
fn placed(m: &[String]) -> Option<(usize, Module)> {
    let mut best: Option<(usize, Module)> = None;
    for (i, (_, prefixes)) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            let p: Module = p.split("::").map(String::from).collect();
            if is_ancestor(&p, m) && best.as_ref().is_none_or(|(_, b)| p.len() > b.len()) {
                best = Some((i, p));
            }
        }
    }
    best
}

fn layer(m: &[String]) -> Option<usize> {
    placed(m).map(|(i, _)| i)
}

/// The unit a module belongs to for the cycle check: the prefix that
/// places it (`kea::exports` and the rest of `kea` are two units).
fn unit(m: &[String]) -> Module {
    placed(m).map_or_else(|| m.iter().take(1).cloned().collect(), |(_, p)| p)
}

/// Everything wrong with the crate made of `files` (module → (file, source)).
fn problems(files: &BTreeMap<Module, (String, String)>) -> Vec<String> {
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut found = Vec::new();
    for m in modules.iter().filter(|m| !m.is_empty()) {
        if layer(m).is_none() {
            found.push(format!("module {} is in no layer: add it to LAYERS (tests/layering.rs) and docs/ARCHITECTURE.md", name(m)));
        }
    }
    let refs: Vec<Reference> = files
        .iter()
        .flat_map(|(m, (file, src))| references(src, m, file, &modules))
        .filter(|r| !is_ancestor(&r.from, &r.to) && !is_ancestor(&r.to, &r.from))
        .collect();
    // Only `kea` names the bindings: everything else reaches Kea through
    // `kea::shim`, `kea::log` and `kea::lease`.
    for r in &refs {
        if r.to
            .starts_with(&["kea".to_string(), "bindings".to_string()])
            && r.from.first().map(String::as_str) != Some("kea")
        {
            found.push(format!(
                "{}:{}: {} names the bindings; only kea/ may (use kea::shim or add a safe call there)",
                r.file,
                r.line,
                name(&r.from)
            ));
        }
    }
    // Upward references.
    for r in &refs {
        if let (Some(from), Some(to)) = (layer(&r.from), layer(&r.to)) {
            if to < from {
                found.push(format!(
                    "{}:{}: {} ({}) uses {} ({}), a higher layer",
                    r.file,
                    r.line,
                    name(&r.from),
                    LAYERS[from].0,
                    name(&r.to),
                    LAYERS[to].0
                ));
            }
        }
    }
    // Cycles among the units, and among the children of each module
    // inside a unit.
    let mut edges: BTreeMap<Module, BTreeMap<Module, Vec<&Reference>>> = BTreeMap::new();
    for r in &refs {
        let (a, b) = if unit(&r.from) != unit(&r.to) {
            (unit(&r.from), unit(&r.to))
        } else {
            let common = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
            (r.from[..=common].to_vec(), r.to[..=common].to_vec())
        };
        edges.entry(a).or_default().entry(b).or_default().push(r);
    }
    for cycle in cycles(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let r = edges[&w[0]][&w[1]][0];
                format!("{} → {} ({}:{})", name(&w[0]), name(&w[1]), r.file, r.line)
            })
            .collect();
        found.push(format!("import cycle: {}", steps.join(", ")));
    }
    found.dedup();
    found
}

/// One cycle (first module repeated at the end) per strongly connected
/// group of modules.
fn cycles(edges: &BTreeMap<Module, BTreeMap<Module, Vec<&Reference>>>) -> Vec<Vec<Module>> {
    let mut out = Vec::new();
    let mut done: BTreeSet<Module> = BTreeSet::new();
    for start in edges.keys() {
        if done.contains(start) {
            continue;
        }
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flat_map(|e| e.keys()) {
                if next == start {
                    let mut c = path.clone();
                    c.push(start.clone());
                    done.extend(c.iter().cloned());
                    out.push(c);
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
        done.insert(start.clone());
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
    {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/work/pool.rs` → `work::pool`; `src/kea/mod.rs` → `kea`; `src/lib.rs` → the crate.
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn crate_files() -> BTreeMap<Module, (String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .filter(|p| !p.starts_with(src.join("bin")))
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").to_path_buf();
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (module_of(&rel), (format!("src/{}", rel.display()), text))
        })
        .collect()
}

#[test]
fn imports_go_only_downward_and_never_in_a_cycle() {
    let files = crate_files();
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let found = problems(&files);
    assert!(
        found.is_empty(),
        "{} layering problems:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The checker itself finds an upward import, a cycle, a module in no
/// layer, and ignores what only looks like a path.
#[test]
fn the_checker_finds_upward_imports_and_cycles() {
    let file = |m: &str, src: &str| {
        let module: Module = if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(String::from).collect()
        };
        (module, (format!("{m}.rs"), src.to_string()))
    };
    let ok: BTreeMap<_, _> = [
        file("", "pub mod hook; pub mod state; pub mod kea;"),
        file("hook", "use crate::state::Store; use crate::kea::{self, lease::LeaseEvent};"),
        file("state", "// use crate::hook; in a comment\nconst S: &str = \"crate::hook::x\"; use super::kea::lease;"),
        file("kea", "pub mod lease; pub mod exports;"),
        file("kea::lease", "use super::super::clock; fn f<'a>(c: char) -> bool { c == '{' }"),
        file("kea::exports", "use crate::hook::Hook;"),
        file("clock", ""),
    ]
    .into_iter()
    .collect();
    assert_eq!(problems(&ok), Vec::<String>::new());

    let mut bad = ok.clone();
    bad.insert(
        file("state", "use crate::{kea, hook::Hook};").0,
        file("state", "use crate::{kea, hook::Hook};").1,
    );
    let found = problems(&bad);
    assert!(
        found
            .iter()
            .any(|p| p.contains("state.rs:1: state (state file) uses hook (composition root)")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("import cycle: hook → state")
                || p.starts_with("import cycle: state → hook")),
        "{found:?}"
    );

    let mut raw = ok.clone();
    let (m, f) = file("state", "use crate::kea::bindings::shim_log;");
    raw.insert(m, f);
    raw.insert(file("kea::bindings", "").0, file("kea::bindings", "").1);
    assert_eq!(
        problems(&raw),
        ["state.rs:1: state names the bindings; only kea/ may (use kea::shim or add a safe call there)"]
    );

    let mut unplaced = ok;
    let (m, f) = file("elsewhere", "");
    unplaced.insert(m, f);
    assert_eq!(
        problems(&unplaced),
        ["module elsewhere is in no layer: add it to LAYERS (tests/layering.rs) and docs/ARCHITECTURE.md"]
    );
}
