//! Reading values out of Redfish JSON the way the BMCs actually fill them:
//! blanks, padding and factory placeholders mean "unknown", and MAC addresses
//! come in three spellings.

use serde_json::Value;

use crate::untrusted;

/// Strings BMCs put where they have no value. Compared case-insensitively
/// after trimming. Most were seen in the shared mockups
/// (../shared/redfish-mockups/README.md, "Placeholders / blanks"); the
/// SMBIOS defaults ("To Be Filled By O.E.M.", "System Serial Number", ...)
/// are what boards ship with when the vendor never wrote the FRU.
const PLACEHOLDERS: &[&str] = &[
    "",
    "n/a",
    "na",
    "none",
    "null",
    "unknown",
    "---",
    "default string",
    "to be filled by o.e.m.",
    "not specified",
    "not available",
    "free form asset tag",
    "0123456789",
    "01234567890123456789ab",
    "cpldserialnumber",
    "system serial number",
    "system product name",
];

/// True when `s` carries no information: blank, a known placeholder, or one
/// character repeated (`0000000000`, `FFFFFFFF`, `..........`).
pub fn is_placeholder(s: &str) -> bool {
    let t = s.trim();
    if PLACEHOLDERS.iter().any(|p| t.eq_ignore_ascii_case(p)) {
        return true;
    }
    let mut chars = t.chars();
    match chars.next() {
        Some(first) => t.len() > 1 && chars.all(|c| c == first),
        None => true,
    }
}

/// A string property, trimmed, or None when absent, not a string, or a
/// placeholder.
pub fn text(v: &Value, key: &str) -> Option<String> {
    clean(v.get(key)?.as_str()?)
}

/// `s` made safe to show and store (`untrusted::clean`), or None when it
/// is a placeholder. Every string read from a BMC comes through here.
pub fn clean(s: &str) -> Option<String> {
    let safe = untrusted::clean(s);
    if is_placeholder(&safe) {
        None
    } else {
        Some(safe)
    }
}

pub use crate::untrusted::is_unsafe;

/// A string at a JSON pointer (`/Oem/Dell/DellSystem/ChassisServiceTag`).
pub fn text_at(v: &Value, pointer: &str) -> Option<String> {
    clean(v.pointer(pointer)?.as_str()?)
}

/// A non-negative integer property (some BMCs send numbers as floats).
pub fn uint(v: &Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// A number property as f64.
pub fn float(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// The `@odata.id` of a link object at `key` (`{"Systems": {"@odata.id": ...}}`).
pub fn link(v: &Value, key: &str) -> Option<String> {
    odata_id(v.get(key)?)
}

/// The `@odata.id` of a reference object.
pub fn odata_id(v: &Value) -> Option<String> {
    let id = v.get("@odata.id")?.as_str()?.trim();
    if id.is_empty() {
        None
    } else {
        Some(id.to_string())
    }
}

/// The `@odata.id`s of a link array (`Members`, `Links.Chassis`, ...).
pub fn links(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(odata_id).collect())
        .unwrap_or_default()
}

/// A MAC address in canonical form (`aa:bb:cc:dd:ee:ff`), from any of the
/// spellings BMCs use (`AA:BB:..`, `aa-bb-..`, `aabbccddeeff`). None for
/// anything else and for the all-zero and broadcast addresses, which BMCs
/// report for ports they know nothing about.
pub fn mac(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    if hex.chars().all(|c| c == '0') || hex.chars().all(|c| c == 'f') {
        return None;
    }
    let pairs: Vec<&str> = (0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

/// A MAC property (`MACAddress`, `PermanentMACAddress`), canonical.
pub fn mac_of(v: &Value, key: &str) -> Option<String> {
    mac(v.get(key)?.as_str()?)
}

/// An EthernetInterface's MAC: the burned-in one when the BMC reports it,
/// else the current one.
pub fn iface_mac(iface: &Value) -> Option<String> {
    mac_of(iface, "PermanentMACAddress").or_else(|| mac_of(iface, "MACAddress"))
}

/// The IPv4 addresses of an EthernetInterface that mean something: not
/// 0.0.0.0, not link-local.
pub fn routable_ipv4(iface: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["IPv4Addresses", "IPv4StaticAddresses"] {
        if let Some(list) = iface.get(key).and_then(Value::as_array) {
            for a in list {
                if let Some(ip) = a.get("Address").and_then(Value::as_str) {
                    if let Ok(addr) = ip.trim().parse::<std::net::Ipv4Addr>() {
                        if !addr.is_unspecified()
                            && !addr.is_link_local()
                            && !out.contains(&addr.to_string())
                        {
                            out.push(addr.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_from_real_payloads_are_unknown() {
        for p in [
            " ",
            "",
            "N/A",
            "Default string",
            "0000000000000000000000000",
            "01234567890123456789AB",
            "CPLDSerialNumber",
            "---",
            "                                ",
            "0123456789",
        ] {
            assert!(is_placeholder(p), "{p:?}");
        }
        for real in ["F54P1G3", "MXQ302099S", "J105958B", "0x1D1415D9", "A"] {
            assert!(!is_placeholder(real), "{real:?}");
        }
    }

    #[test]
    fn macs_in_every_spelling_become_canonical() {
        assert_eq!(
            mac("B0:7B:25:D6:51:82").as_deref(),
            Some("b0:7b:25:d6:51:82")
        );
        assert_eq!(
            mac("a4-bf-01-2c-f7-d0").as_deref(),
            Some("a4:bf:01:2c:f7:d0")
        );
        assert_eq!(mac("088fc3a58a6f").as_deref(), Some("08:8f:c3:a5:8a:6f"));
        assert_eq!(mac("00:00:00:00:00:00"), None);
        assert_eq!(mac("FF:FF:FF:FF:FF:FF"), None);
        assert_eq!(mac("not a mac"), None);
        assert_eq!(mac("b0:7b:25:d6:51"), None);
    }

    #[test]
    fn only_routable_ipv4_counts() {
        let iface = json!({"IPv4Addresses": [
            {"Address": "169.254.155.21"}, {"Address": "10.114.231.136"},
            {"Address": "0.0.0.0"}, {"Address": "garbage"}]});
        assert_eq!(routable_ipv4(&iface), vec!["10.114.231.136"]);
    }

    #[test]
    fn bmc_strings_lose_control_bidi_and_format_characters() {
        let cases = [
            (
                "PowerEdge R750\n2026-12-01 ERROR forged",
                "PowerEdge R750 2026-12-01 ERROR forged",
            ),
            ("Dell\u{1b}]0;owned\u{7}Inc.", "Dell]0;ownedInc."),
            ("\u{1b}[31mred\u{1b}[0m", "[31mred[0m"),
            ("HPE\u{7f}\u{85}\u{9b}", "HPE"),
            ("srv\u{202e}gpj.exe", "srvgpj.exe"),
            ("a\u{200b}b\u{2066}c\u{feff}d\u{ad}e\u{e0041}f", "abcdef"),
            ("line\u{2028}break", "line break"),
            (
                "Gr\u{fc}\u{df}e \u{65e5}\u{672c}",
                "Gr\u{fc}\u{df}e \u{65e5}\u{672c}",
            ),
        ];
        for (dirty, want) in cases {
            assert_eq!(clean(dirty).as_deref(), Some(want), "{dirty:?}");
        }
        // What is left after cleaning may be a placeholder.
        assert_eq!(clean("\u{200b}N/A\u{200b}"), None);
        assert_eq!(clean("\u{1b}\u{7}"), None);
    }

    #[test]
    fn text_trims_and_drops_placeholders() {
        let v = json!({"A": "  x ", "B": " ", "C": 5});
        assert_eq!(text(&v, "A").as_deref(), Some("x"));
        assert_eq!(text(&v, "B"), None);
        assert_eq!(text(&v, "C"), None);
        assert_eq!(text(&v, "D"), None);
    }
}
