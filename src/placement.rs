//! Where a server sits, read from its BMC's hostname, and hostnames made
//! fit for NetBox.
//!
//! The convention our users follow: `<site>-<rack>-ru<unit>[-<last unit>]-<anything>`,
//! e.g. `us3-cab10-ru17-idrac` (site us3, rack cab10, unit 17) or
//! `us3-cab10-ru17-18-idrac` (units 17-18: position 17, height 2). Without a
//! rack unit the device goes into the site and rack without a position. The
//! pattern is a parameter: any regex with the named groups `site`, `rack`,
//! `ru` and `ru_last` (each optional).

use regex_automata::meta::Regex;

/// The default placement pattern (`netbox.placement-pattern` in the
/// parameters' table, which says why it reads as it does).
pub const DEFAULT_PATTERN: &str = crate::config::defaults::NETBOX_PLACEMENT_PATTERN.default;

/// The groups a placement pattern may name.
const GROUPS: &[&str] = &["site", "rack", "ru", "ru_last"];

/// NetBox's limits: device names are at most 64 characters, slugs 100 of
/// `[-a-zA-Z0-9_]`, and racks at most 100 units high.
pub const MAX_DEVICE_NAME: usize = 64;
const MAX_SLUG: usize = 100;
const MAX_RACK_UNIT: u32 = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub site: Option<String>,
    pub rack: Option<String>,
    /// The lowest rack unit the device occupies.
    pub position: Option<u32>,
    /// Units occupied, when the hostname names a range.
    pub height: Option<u32>,
}

/// A placement pattern, compiled once when the configuration is parsed.
#[derive(Clone, Debug)]
pub struct PlacementPattern {
    re: Regex,
    /// As the configuration wrote it.
    source: String,
}

/// Two patterns are the same when they are written the same.
impl PartialEq for PlacementPattern {
    fn eq(&self, other: &PlacementPattern) -> bool {
        self.source == other.source
    }
}

impl Eq for PlacementPattern {}

impl PlacementPattern {
    /// Compiles `pattern`; it must name at least one of the groups `site`,
    /// `rack`, `ru` and no others.
    pub fn new(pattern: &str) -> Result<PlacementPattern, String> {
        let re =
            Regex::new(pattern).map_err(|e| format!("is not a usable regular expression: {e}"))?;
        let names: Vec<String> = re
            .group_info()
            .pattern_names(regex_automata::PatternID::ZERO)
            .flatten()
            .map(str::to_string)
            .collect();
        if let Some(bad) = names.iter().find(|n| !GROUPS.contains(&n.as_str())) {
            return Err(format!(
                "names a group '{bad}'; the groups are {}",
                GROUPS.join(", ")
            ));
        }
        if !names
            .iter()
            .any(|n| n == "site" || n == "rack" || n == "ru")
        {
            return Err("names none of the groups site, rack, ru: it would place nothing".into());
        }
        Ok(PlacementPattern {
            re,
            source: pattern.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The default pattern, compiled once per process (a clone shares it).
    pub fn default_pattern() -> PlacementPattern {
        static DEFAULT: std::sync::OnceLock<PlacementPattern> = std::sync::OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                PlacementPattern::new(DEFAULT_PATTERN).expect("the default pattern compiles")
            })
            .clone()
    }

    /// The placement `hostname` names; None when the pattern does not match.
    /// A rack unit out of 1..=100, or a range that runs backwards, is
    /// dropped (the device still goes into its site and rack).
    pub fn place(&self, hostname: &str) -> Option<Placement> {
        let mut caps = self.re.create_captures();
        self.re.captures(hostname, &mut caps);
        if !caps.is_match() {
            return None;
        }
        let group = |name: &str| {
            caps.get_group_by_name(name)
                .map(|span| hostname[span.start..span.end].to_string())
                .filter(|s| !s.is_empty())
        };
        let unit = |name: &str| {
            group(name)
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|u| (1..=MAX_RACK_UNIT).contains(u))
        };
        let mut p = Placement {
            site: group("site").map(|s| s.to_ascii_lowercase()),
            rack: group("rack"),
            position: unit("ru"),
            height: None,
        };
        if let (Some(first), Some(last)) = (p.position, unit("ru_last")) {
            if last >= first {
                p.height = Some(last - first + 1);
            } else {
                p.position = None;
            }
        }
        Some(p)
    }
}

/// The first usable hostname among the lease's (hostname, option 12,
/// option 81, as the shim picked it), the BMC's own (Redfish), and reverse
/// DNS; sanitised. The domain is dropped: NetBox names are short names.
pub fn pick(candidates: &[Option<&str>]) -> Option<String> {
    candidates.iter().flatten().find_map(|h| device_name(h))
}

/// `raw` as a NetBox device name: the first DNS label of a name, control
/// characters and whitespace replaced by `-`, at most 64 characters (cut on
/// a character boundary). None when nothing is left.
pub fn device_name(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('.');
    let short = trimmed.split('.').next().unwrap_or("");
    let cleaned: String = short
        .chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() {
                '-'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        return None;
    }
    Some(cleaned.chars().take(MAX_DEVICE_NAME).collect())
}

/// A NetBox slug: lower-case `[-a-z0-9_]`, anything else `-`, runs of `-`
/// collapsed, at most 100 characters.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out = out.trim_matches('-');
    out.chars().take(MAX_SLUG).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(h: &str) -> Option<Placement> {
        PlacementPattern::default_pattern().place(h)
    }

    #[test]
    fn the_house_convention() {
        assert_eq!(
            place("us3-cab10-ru17-idrac"),
            Some(Placement {
                site: Some("us3".into()),
                rack: Some("cab10".into()),
                position: Some(17),
                height: None
            })
        );
        let multi = place("us3-cab10-ru17-18-idrac").unwrap();
        assert_eq!((multi.position, multi.height), (Some(17), Some(2)));
        let no_unit = place("us3-cab10-idrac").unwrap();
        assert_eq!(no_unit.rack.as_deref(), Some("cab10"));
        assert_eq!(no_unit.position, None);
        assert_eq!(place("US3-Cab10-RU4").unwrap().site.as_deref(), Some("us3"));
        // Out of range and backwards ranges keep site and rack only.
        assert_eq!(place("us3-cab10-ru0-x").unwrap().position, None);
        assert_eq!(place("us3-cab10-ru101-x").unwrap().position, None);
        assert_eq!(place("us3-cab10-ru18-17-x").unwrap().position, None);
        assert_eq!(place("idrac"), None);
        assert_eq!(
            place("idrac-F54P1G3"),
            None,
            "a vendor default name places nothing"
        );
    }

    #[test]
    fn custom_patterns_are_checked() {
        let p = PlacementPattern::new(r"^(?P<rack>r\d+)u(?P<ru>\d+)\.").unwrap();
        let got = p.place("r12u07.bmc.example.net").unwrap();
        assert_eq!(
            (got.site, got.rack.as_deref(), got.position),
            (None, Some("r12"), Some(7))
        );
        assert!(PlacementPattern::new(r"^(?P<room>\w+)")
            .unwrap_err()
            .contains("'room'"));
        assert!(PlacementPattern::new(r"^\w+$")
            .unwrap_err()
            .contains("none of the groups"));
        assert!(PlacementPattern::new(r"(").is_err());
    }

    #[test]
    fn names_fit_netbox() {
        assert_eq!(
            device_name("us3-cab10-ru17-idrac.example.com.").as_deref(),
            Some("us3-cab10-ru17-idrac")
        );
        assert_eq!(device_name("  \n "), None);
        assert_eq!(
            device_name("bad\u{7}name here").as_deref(),
            Some("bad-name-here")
        );
        let long = "a".repeat(80);
        assert_eq!(device_name(&long).unwrap().len(), 64);
        let wide = "ü".repeat(70);
        assert_eq!(device_name(&wide).unwrap().chars().count(), 64);
        assert_eq!(
            pick(&[None, Some(" "), Some("idrac-F54P1G3")]).as_deref(),
            Some("idrac-F54P1G3")
        );
        assert_eq!(slug("US 3 / Müller--Hall"), "us-3-m-ller-hall");
        assert_eq!(slug(&"x".repeat(150)).len(), 100);
    }
}
