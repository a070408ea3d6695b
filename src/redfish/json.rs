//! Reading a BMC's JSON without letting it choose our memory use: a cheap
//! pass over the raw bytes first tells how deep the document nests, how
//! long its arrays and objects are, and how much memory its parsed
//! `serde_json::Value` will take, so that a body can be refused before it
//! is parsed. A parsed Value costs far more than its text (a one-key object
//! is a B-tree node of ~640 bytes for 8 bytes of input), so bounding the
//! bytes read alone does not bound memory.

/// How deep a document may nest. Real Redfish payloads nest under 12
/// levels; serde_json's own limit (128) is about the stack, not memory.
pub const MAX_DEPTH: usize = 32;

/// What the pass over the bytes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Upper bound, in bytes, of the heap the parsed Value will hold.
    pub parsed_bytes: u64,
    /// Deepest nesting seen.
    pub depth: usize,
    /// Most elements in one array or members in one object.
    pub widest: usize,
}

/// Why a body is refused before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooBig {
    /// Nested deeper than `MAX_DEPTH`.
    Depth,
    /// An array or object with more than the allowed elements; `array`
    /// tells which.
    Wide { array: bool },
}

// Per-allocation costs of serde_json's Value (no `preserve_order`): a
// Value is 32 bytes; an array is a Vec that may have grown to twice its
// length (and holds at least 4); an object is a BTreeMap whose nodes (11 slots of String + Value,
// ~640 bytes, ~740 with child edges) are at least 5/11 full; every string
// and key is its own allocation. The malloc overhead of one allocation is
// taken as 32 bytes. tests::estimate_bounds_what_serde_allocates checks
// these against what serde_json really allocates.
const ALLOC: u64 = 32;
const VALUE: u64 = 32;
const NODE: u64 = 740;
const PER_ENTRY: u64 = NODE / 5 + NODE / 25;

/// One pass over `bytes`: refuses nesting deeper than `MAX_DEPTH` and any
/// array or object with more than `max_width` elements, and otherwise
/// bounds the memory of the parsed document. Malformed input is not
/// diagnosed here (serde_json does that); it is only never under-counted.
pub fn shape(bytes: &[u8], max_width: usize) -> Result<Shape, TooBig> {
    // Per open container: is it an array, elements (commas + 1 once it
    // holds anything) or members (colons), and whether it holds anything.
    let mut stack: Vec<(bool, usize, bool)> = Vec::with_capacity(MAX_DEPTH);
    let mut s = Shape {
        parsed_bytes: VALUE + ALLOC + 16,
        depth: 0,
        widest: 0,
    };
    let width = |(array, n, any): (bool, usize, bool)| if array && any { n + 1 } else { n };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(top) = stack.last_mut() {
            if top.0 && !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']') {
                top.2 = true;
            }
        }
        match b {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                // The raw length bounds the unescaped one.
                s.parsed_bytes += (i.min(bytes.len()) - start) as u64 + ALLOC;
            }
            b'{' | b'[' => {
                if stack.len() == MAX_DEPTH {
                    return Err(TooBig::Depth);
                }
                stack.push((b == b'[', 0, false));
                s.depth = s.depth.max(stack.len());
            }
            b'}' | b']' => {
                if let Some(top) = stack.pop() {
                    let n = width(top) as u64;
                    s.parsed_bytes += match (top.0, n) {
                        (_, 0) => 0,
                        // A Vec's first allocation holds 4.
                        (true, n) => (2 * n).max(4) * VALUE + ALLOC,
                        (false, n) => NODE + n * PER_ENTRY + ALLOC,
                    };
                }
            }
            b',' | b':' => {
                if let Some(top) = stack.last_mut() {
                    if top.0 == (b == b',') {
                        top.1 += 1;
                        let w = width(*top);
                        if w > max_width {
                            return Err(TooBig::Wide { array: top.0 });
                        }
                        s.widest = s.widest.max(w);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Counts the bytes this thread holds, so that the estimate can be
    /// checked against what serde_json allocates (other test threads do
    /// not disturb a thread-local count).
    struct Counting;

    thread_local! {
        static HELD: Cell<i64> = const { Cell::new(0) };
    }

    fn add(n: i64) {
        let _ = HELD.try_with(|h| h.set(h.get() + n));
    }

    // SAFETY: forwards to the system allocator unchanged; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as i64);
            System.alloc(l)
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as i64));
            System.dealloc(p, l)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as i64 - l.size() as i64);
            System.realloc(p, l, new)
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    /// Bytes held by the parsed Value of `text` (plus malloc's overhead
    /// per allocation is not visible here; the estimate adds it).
    fn held_after_parse(text: &[u8]) -> u64 {
        let before = HELD.with(Cell::get);
        let v: serde_json::Value = serde_json::from_slice(text).unwrap();
        let after = HELD.with(Cell::get);
        drop(v);
        (after - before).max(0) as u64
    }

    fn hostile() -> Vec<(&'static str, String)> {
        let rep = |unit: &str, n: usize| {
            let mut s = String::from("[");
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(unit);
            }
            s.push(']');
            s
        };
        vec![
            ("one-key objects", rep(r#"{"a":0}"#, 900)),
            ("empty keys", rep(r#"{"":0}"#, 900)),
            ("empty objects", rep("{}", 900)),
            ("empty arrays", rep("[]", 900)),
            ("one-element arrays", rep("[0]", 900)),
            ("zeros", rep("0", 900)),
            ("short strings", rep(r#""x""#, 900)),
            ("escaped strings", rep(r#""\u0041\n""#, 900)),
            (
                "twelve-key objects",
                rep(
                    r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":0,"k":1,"l":2}"#,
                    300,
                ),
            ),
            (
                "nested",
                rep(&rep(&rep(r#"{"@odata.id":"/redfish/v1/x"}"#, 9), 9), 9),
            ),
        ]
    }

    #[test]
    fn estimate_bounds_what_serde_allocates() {
        let mut cases = hostile();
        // Real payloads too, when the shared mockups are beside the repo.
        let mockups =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/redfish-mockups");
        for f in [
            "nvidia-dgxh100-ami/redfish/v1/Systems/DGX/index.json",
            "nvidia-dgxh100-ami/redfish/v1/UpdateService/FirmwareInventory/index.json",
            "dell-idrac9-r750/redfish/v1/Systems/System.Embedded.1/index.json",
            "hpe-ilo5-dl385gen10plusv2/redfish/v1/index.json",
        ] {
            if let Ok(t) = std::fs::read_to_string(mockups.join(f)) {
                cases.push(("mockup", t));
            }
        }
        for (name, text) in cases {
            let est = shape(text.as_bytes(), 10_000).unwrap().parsed_bytes;
            let held = held_after_parse(text.as_bytes());
            assert!(held > 0, "{name}: the counting allocator saw nothing");
            assert!(est >= held, "{name}: estimated {est} < held {held}");
            // Not so loose that the budget means nothing.
            assert!(
                est <= 4 * held + 256,
                "{name}: estimated {est}, held {held}"
            );
        }
    }

    #[test]
    fn depth_and_width_are_refused_before_parsing() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(shape(deep.as_bytes(), 10), Err(TooBig::Depth));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(shape(ok.as_bytes(), 10).unwrap().depth, MAX_DEPTH);
        assert_eq!(shape(b"[1,2,3,4]", 3), Err(TooBig::Wide { array: true }));
        assert_eq!(shape(b"[1,2,3]", 3).unwrap().widest, 3);
        assert_eq!(
            shape(br#"{"a":1,"b":2}"#, 1),
            Err(TooBig::Wide { array: false })
        );
        // Brackets and colons inside strings are text.
        let s = shape(br#"{"a":"[[[,,,:::\"]]]"}"#, 1).unwrap();
        assert_eq!((s.depth, s.widest), (1, 1));
        assert_eq!(shape(b"[]", 0).unwrap().widest, 0);
    }
}
