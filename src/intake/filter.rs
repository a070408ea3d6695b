//! Decides on a packet thread whether a lease belongs to a BMC: no
//! allocation, no lock, no I/O. Patterns are compiled once in `load()` into
//! DFAs, which search without a mutable cache (the `regex` crate's cache pool
//! would put a lock on the packet path).

use regex_automata::dfa::{dense, Automaton};
use regex_automata::nfa::thompson;
use regex_automata::Input;

use crate::config::{Config, ConfigError};
use crate::kea::lease::LeaseEvent;
use crate::subnets::SubnetTable;

/// Why a lease was or was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A BMC in an opted-in subnet: hand it to the workers.
    Accept,
    /// The lease's subnet is not opted in.
    NotOptedIn,
    /// Opted-in subnet, but none of the configured patterns matched.
    NoMatch,
    /// A DHCPv6 lease of an opted-in subnet without a MAC address: Kea's
    /// mac-sources found none (a DUID-EN or DUID-UUID client, no relay
    /// option 79). BMCs are known by MAC (the state file, NetBox), so such
    /// a lease is left out rather than filed under an empty one.
    NoMac,
}

/// The compiled filter. Immutable after `load()`.
#[derive(Debug)]
pub struct Filter {
    /// From the `subnet-ids` parameter, used until Kea reports its subnets.
    listed_subnets: Vec<u32>,
    hostname: Option<dense::DFA<Vec<u32>>>,
    vendor_class: Option<dense::DFA<Vec<u32>>>,
    ouis: Vec<[u8; 3]>,
}

/// Big enough for any sane hostname pattern (the examples' DFAs are a few
/// KiB); stops a pathological one from eating memory and time at load. The
/// NFA is bounded too: a short pattern of nested counted Unicode classes
/// (`(\w{100}){100}`, 15 bytes) otherwise takes Kea's configuration load a
/// minute before the DFA limit is reached, and determinization runs until
/// it has built this much, so the limit is also what bounds the load time
/// (fuzzing found `(\s{050}){100}`: 17 s under ASan at 8 MiB).
const DFA_SIZE_LIMIT: usize = 1 << 20;

fn compile(parameter: &str, patterns: &[String]) -> Result<dense::DFA<Vec<u32>>, ConfigError> {
    dense::Builder::new()
        .thompson(thompson::Config::new().nfa_size_limit(Some(DFA_SIZE_LIMIT)))
        .configure(
            dense::Config::new()
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build_many(patterns)
        .map_err(|e| ConfigError {
            parameter: parameter.to_string(),
            problem: format!("is not a usable regular expression: {e}"),
        })
}

fn dfa_matches(dfa: &dense::DFA<Vec<u32>>, haystack: &[u8]) -> bool {
    // A search only fails on "quit" bytes, which these DFAs do not have;
    // treat it as "no match" rather than trusting that.
    matches!(
        dfa.try_search_fwd(&Input::new(haystack).earliest(true)),
        Ok(Some(_))
    )
}

impl Filter {
    /// Compiles the patterns of a validated configuration.
    pub fn new(config: &Config) -> Result<Filter, ConfigError> {
        let hostname = match &config.hostname_pattern {
            Some(p) => Some(compile("hostname-pattern", std::slice::from_ref(p))?),
            None => None,
        };
        let vendor_class = if config.vendor_class_patterns.is_empty() {
            None
        } else {
            Some(compile(
                "vendor-class-patterns",
                &config.vendor_class_patterns,
            )?)
        };
        let mut ouis = config.mac_ouis.clone();
        ouis.sort_unstable();
        ouis.dedup();
        Ok(Filter {
            listed_subnets: config.subnet_ids.clone(),
            hostname,
            vendor_class,
            ouis,
        })
    }

    fn has_patterns(&self) -> bool {
        self.hostname.is_some() || self.vendor_class.is_some() || !self.ouis.is_empty()
    }

    /// The decision for one lease. `subnets` is Kea's live subnet table,
    /// absent until the server has reported its configuration.
    #[inline]
    pub fn check(&self, subnets: Option<&SubnetTable>, ev: &LeaseEvent) -> Verdict {
        let id = ev.subnet_id();
        let opted_in = match subnets {
            Some(table) => table.opted_in(id),
            None => self.listed_subnets.binary_search(&id).is_ok(),
        };
        if !opted_in {
            return Verdict::NotOptedIn;
        }
        if ev.is_v6() && ev.hwaddr().is_empty() {
            return Verdict::NoMac;
        }
        // No patterns: every lease of an opted-in subnet is a BMC. With
        // patterns, any one match is enough: a BMC may lack a hostname but
        // still have a known OUI, or the other way round.
        if !self.has_patterns() || self.matches(ev) {
            Verdict::Accept
        } else {
            Verdict::NoMatch
        }
    }

    fn matches(&self, ev: &LeaseEvent) -> bool {
        let hw = ev.hwaddr();
        if hw.len() >= 3 && self.ouis.binary_search(&[hw[0], hw[1], hw[2]]).is_ok() {
            return true;
        }
        if let Some(dfa) = &self.hostname {
            if !ev.hostname().is_empty() && dfa_matches(dfa, ev.hostname()) {
                return true;
            }
        }
        if let Some(dfa) = &self.vendor_class {
            if !ev.vendor_class().is_empty() && dfa_matches(dfa, ev.vendor_class()) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kea::lease::tests::{as_v6, event};

    fn filter(json: &str) -> Filter {
        Filter::new(&Config::from_json(json).unwrap()).unwrap()
    }

    fn table() -> SubnetTable {
        let json =
            r#"{"subnet4": [{"id": 1, "user-context": {"bmc-discovery": true}}, {"id": 2}]}"#;
        SubnetTable::from_json(json, &[]).unwrap().0
    }

    const DELL: [u8; 6] = [0x14, 0x18, 0x77, 1, 2, 3];
    const OTHER: [u8; 6] = [0x02, 0, 0, 1, 2, 3];

    #[test]
    fn opted_in_subnet_without_patterns_accepts_everything() {
        let f = filter("{}");
        let t = table();
        assert_eq!(
            f.check(Some(&t), &event(&OTHER, 1, "", "")),
            Verdict::Accept
        );
        assert_eq!(
            f.check(Some(&t), &event(&OTHER, 2, "", "")),
            Verdict::NotOptedIn
        );
        assert_eq!(
            f.check(Some(&t), &event(&OTHER, 3, "", "")),
            Verdict::NotOptedIn
        );
    }

    /// kea-dhcp6: a lease whose MAC Kea's mac-sources found is judged as
    /// a DHCPv4 one; one without is left out (and only in opted-in
    /// subnets counted as such).
    #[test]
    fn v6_leases_without_a_mac_are_left_out() {
        let f = filter("{}");
        let t = table();
        let v6 = |mac: &[u8], subnet: u32| as_v6(event(mac, subnet, "", ""), "2001:db8::10");
        assert_eq!(f.check(Some(&t), &v6(&DELL, 1)), Verdict::Accept);
        assert_eq!(f.check(Some(&t), &v6(&[], 1)), Verdict::NoMac);
        assert_eq!(f.check(Some(&t), &v6(&[], 2)), Verdict::NotOptedIn);
    }

    #[test]
    fn before_kea_reports_subnets_the_parameter_list_decides() {
        let f = filter(r#"{"subnet-ids": [2]}"#);
        assert_eq!(f.check(None, &event(&OTHER, 2, "", "")), Verdict::Accept);
        assert_eq!(
            f.check(None, &event(&OTHER, 1, "", "")),
            Verdict::NotOptedIn
        );
    }

    #[test]
    fn any_pattern_match_accepts() {
        let f = filter(
            r#"{"hostname-pattern": "-(idrac|ilo|xcc|bmc)$", "vendor-class-patterns": ["^CPQRIB", "^iDRAC"],
                "mac-ouis": ["14:18:77"]}"#,
        );
        let t = table();
        let check =
            |mac: &[u8], host: &str, vendor: &str| f.check(Some(&t), &event(mac, 1, host, vendor));
        assert_eq!(check(&DELL, "", ""), Verdict::Accept, "OUI");
        assert_eq!(
            check(&OTHER, "us3-cab10-ru17-idrac", ""),
            Verdict::Accept,
            "hostname"
        );
        assert_eq!(check(&OTHER, "", "CPQRIB3"), Verdict::Accept, "option 60");
        assert_eq!(check(&OTHER, "laptop", "MSFT 5.0"), Verdict::NoMatch);
        assert_eq!(
            check(&OTHER, "us3-cab10-ru17-idrac-old", ""),
            Verdict::NoMatch
        );
    }

    #[test]
    fn bad_patterns_name_the_parameter() {
        let e = Filter::new(&Config::from_json(r#"{"hostname-pattern": "(idrac"}"#).unwrap())
            .unwrap_err();
        assert_eq!(e.parameter, "hostname-pattern");
        assert!(
            e.to_string()
                .starts_with("parameter 'hostname-pattern' is not a usable regular expression"),
            "{e}"
        );
        let e = Filter::new(
            &Config::from_json(r#"{"vendor-class-patterns": ["ok", "[z-a]"]}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.parameter, "vendor-class-patterns");
    }

    #[test]
    fn patterns_that_blow_up_are_refused_at_once() {
        // Found running the hook_config fuzz target on worst-case inputs:
        // it took ~60 s to compile.
        let started = std::time::Instant::now();
        let e =
            Filter::new(&Config::from_json(r#"{"hostname-pattern": "(\\w{100}){100}"}"#).unwrap())
                .unwrap_err();
        assert_eq!(e.parameter, "hostname-pattern");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused after {:?}",
            started.elapsed()
        );
        // Real patterns still compile.
        filter(r#"{"hostname-pattern": "(?i)^(idrac|ilo|xcc|bmc)-[a-z0-9]{1,32}$"}"#);
    }

    #[test]
    fn non_utf8_hostnames_do_not_break_matching() {
        let f = filter(r#"{"hostname-pattern": "idrac"}"#);
        let mut ev = event(&OTHER, 1, "", "");
        ev.0.hostname[..4].copy_from_slice(&[0xff, 0xfe, b'i', b'd']);
        ev.0.hostname_len = 4;
        assert_eq!(f.check(Some(&table()), &ev), Verdict::NoMatch);
    }
}
