//! Text a device or a DHCP client made up, made safe to show and store.
//!
//! A BMC's strings and a lease's hostname end in log lines, the state file,
//! command answers, the Ansible inventory and NetBox. A newline there forges
//! a log line, an escape sequence reaches an operator's terminal, a DEL or C1
//! character breaks the inventory's YAML, a bidi control makes a NetBox name
//! read other than it is. Everything such a source says goes through
//! [`clean`] where it enters; the log bridge escapes again as a second layer.

/// Characters no device-supplied string keeps: C0 controls, DEL, C1 controls,
/// the line and paragraph separators, bidi controls (U+061C, U+200E/F,
/// U+202A-E, U+2066-9), and the invisible format characters (soft hyphen,
/// zero-width space/joiners, word joiner and invisible operators, BOM,
/// interlinear annotation, tags).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{AD}'
                | '\u{61C}'
                | '\u{6DD}'
                | '\u{70F}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// `s` without unsafe characters, trimmed: line breaks and tabs become
/// spaces, other control and invisible format characters are dropped.
pub fn clean(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.trim().to_string();
    }
    let safe: String = s
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some(' '),
            c if is_unsafe(c) => None,
            c => Some(c),
        })
        .collect();
    safe.trim().to_string()
}

/// Bytes a DHCP client sent as text (a hostname, option 60): UTF-8 where
/// they are, U+FFFD where not, then [`clean`].
pub fn clean_bytes(b: &[u8]) -> String {
    clean(&String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_lines_escapes_and_bidi_are_gone() {
        assert_eq!(clean("  us3-cab10-ru17-idrac "), "us3-cab10-ru17-idrac");
        assert_eq!(
            clean("x\nINFO forged\r\u{1b}[2J\u{7f}\u{85}\u{202e}lin\u{200b}e"),
            "x INFO forged [2Jline"
        );
        assert_eq!(clean("sérveur-Ω"), "sérveur-Ω");
        assert_eq!(clean_bytes(b"ab\xffc\n"), "ab\u{FFFD}c");
    }
}
