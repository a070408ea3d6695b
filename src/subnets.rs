//! Which of Kea's subnets are opted in, resolved once per configuration.
//!
//! The shim hands over the live subnets after every (re)configuration
//! (`dhcp4_srv_configured`, `dhcp6_srv_configured`); this module turns their `user-context` and the
//! `subnet-ids` parameter into a sorted table that the packet path searches
//! without allocating.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;

/// How one subnet of Kea's configuration relates to the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    /// Kea's subnet id.
    pub id: u32,
    /// The prefix, e.g. `127.1.0.0/16` or `2001:db8:1::/64`.
    pub prefix: String,
    /// The shared network the subnet belongs to ("" for none).
    pub shared_network: String,
    /// Whether leases in this subnet are considered at all.
    pub opted_in: bool,
    /// `user-context.site`, which overrides the site parsed from hostnames.
    pub site: Option<String>,
    /// The address pools (IPv4 of a subnet4, IPv6 of a subnet6; not a
    /// subnet6's delegated-prefix pools), as Kea reports them (first,
    /// last), in configuration order: what `bmc-pool-report` measures.
    pub pools: Vec<(IpAddr, IpAddr)>,
}

/// The opted-in decision for every configured subnet, sorted by id.
#[derive(Debug, Default)]
pub struct SubnetTable {
    ids: Vec<u32>,
    infos: Vec<SubnetInfo>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    /// kea-dhcp4 hands over `subnet4`, kea-dhcp6 `subnet6`; the same
    /// user-context opts either in.
    #[serde(default)]
    subnet4: Vec<RawSubnet>,
    #[serde(default)]
    subnet6: Vec<RawSubnet>,
    #[serde(default, rename = "shared-networks")]
    shared_networks: Vec<RawSharedNetwork>,
}

#[derive(Deserialize)]
struct RawSharedNetwork {
    #[serde(default)]
    name: String,
    #[serde(default)]
    subnet4: Vec<RawSubnet>,
    #[serde(default)]
    subnet6: Vec<RawSubnet>,
    #[serde(default, rename = "user-context")]
    user_context: Option<Value>,
}

#[derive(Deserialize)]
struct RawSubnet {
    id: Option<u32>,
    #[serde(default)]
    subnet: String,
    #[serde(default, rename = "user-context")]
    user_context: Option<Value>,
    #[serde(default)]
    pools: Vec<RawPool>,
}

#[derive(Deserialize)]
struct RawPool {
    #[serde(default)]
    pool: String,
}

/// Parses a pool as Kea writes it, IPv4 or IPv6: `first - last`,
/// `first-last` or `prefix/length`. Both ends of a range are of one family.
pub fn parse_pool(text: &str) -> Option<(IpAddr, IpAddr)> {
    if let Some((addr, len)) = text.split_once('/') {
        let addr: IpAddr = addr.trim().parse().ok()?;
        let len: u32 = len.trim().parse().ok()?;
        return match addr {
            IpAddr::V4(a) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let first = u32::from(a) & mask;
                Some((
                    Ipv4Addr::from(first).into(),
                    Ipv4Addr::from(first | !mask).into(),
                ))
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                let first = u128::from(a) & mask;
                Some((
                    Ipv6Addr::from(first).into(),
                    Ipv6Addr::from(first | !mask).into(),
                ))
            }
            _ => None,
        };
    }
    // An IPv6 address has no '-', so the range splits at the only one.
    let (first, last) = text.split_once('-')?;
    let first: IpAddr = first.trim().parse().ok()?;
    let last: IpAddr = last.trim().parse().ok()?;
    (first.is_ipv4() == last.is_ipv4() && first <= last).then_some((first, last))
}

impl SubnetTable {
    /// Builds the table from the `subnet4` and `shared-networks` parts of
    /// Kea's configuration. `listed` are the ids from the `subnet-ids`
    /// parameter. A subnet's `user-context` wins over its shared network's.
    /// Returns the table and warnings for the log: a malformed `user-context`
    /// must not stop DHCP, so it only warns.
    pub fn from_json(json: &str, listed: &[u32]) -> Result<(SubnetTable, Vec<String>), String> {
        let raw: RawConfig = serde_json::from_str(json)
            .map_err(|e| format!("subnet configuration from Kea is not understood: {e}"))?;
        let mut warnings = Vec::new();
        let mut infos = Vec::new();
        let plain = raw
            .subnet4
            .iter()
            .chain(&raw.subnet6)
            .map(|s| (s, "", None));
        let shared = raw.shared_networks.iter().flat_map(|n| {
            n.subnet4
                .iter()
                .chain(&n.subnet6)
                .map(move |s| (s, n.name.as_str(), n.user_context.as_ref()))
        });
        for (subnet, network, network_ctx) in plain.chain(shared) {
            let context_value = |key: &str| {
                subnet
                    .user_context
                    .as_ref()
                    .and_then(|c| c.get(key))
                    .or_else(|| network_ctx.and_then(|c| c.get(key)))
            };
            let label = match subnet.id {
                Some(id) => format!("subnet {id} ({})", subnet.subnet),
                None => format!("subnet {}", subnet.subnet),
            };
            let flag = match context_value(crate::HOOK_NAME) {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(other) => {
                    warnings.push(format!(
                        "{label}: user-context '{}' must be true or false, got {other}; \
                         treating the subnet as not opted in",
                        crate::HOOK_NAME
                    ));
                    Some(false)
                }
            };
            let Some(id) = subnet.id else {
                if flag == Some(true) {
                    warnings.push(format!(
                        "{label} opts in but has no 'id': give it an explicit id so that \
                         the hook can recognise its leases"
                    ));
                }
                continue;
            };
            let opted_in = flag.unwrap_or_else(|| listed.binary_search(&id).is_ok());
            let site = match context_value("site") {
                None => None,
                Some(Value::String(site)) if !site.is_empty() => Some(site.clone()),
                Some(other) => {
                    warnings.push(format!(
                        "{label}: user-context 'site' must be a non-empty string, got {other}; \
                         ignoring it"
                    ));
                    None
                }
            };
            let mut pools = Vec::with_capacity(subnet.pools.len());
            for raw in &subnet.pools {
                match parse_pool(&raw.pool) {
                    Some(range) => pools.push(range),
                    None => warnings.push(format!(
                        "{label}: pool '{}' is not understood; bmc-pool-report leaves it out",
                        raw.pool
                    )),
                }
            }
            infos.push(SubnetInfo {
                id,
                prefix: subnet.subnet.clone(),
                shared_network: network.to_string(),
                opted_in,
                site,
                pools,
            });
        }
        infos.sort_by_key(|s| s.id);
        for id in listed {
            if infos.binary_search_by_key(id, |s| s.id).is_err() {
                warnings.push(format!(
                    "parameter 'subnet-ids' lists subnet {id}, which Kea's configuration does not have"
                ));
            }
        }
        let ids = infos.iter().map(|s| s.id).collect();
        Ok((SubnetTable { ids, infos }, warnings))
    }

    /// Whether leases of `subnet_id` are considered. Allocation-free.
    #[inline]
    pub fn opted_in(&self, subnet_id: u32) -> bool {
        match self.ids.binary_search(&subnet_id) {
            Ok(i) => self.infos[i].opted_in,
            Err(_) => false,
        }
    }

    /// The subnet's details, if Kea has it.
    pub fn get(&self, subnet_id: u32) -> Option<&SubnetInfo> {
        self.ids
            .binary_search(&subnet_id)
            .ok()
            .map(|i| &self.infos[i])
    }

    /// All subnets, sorted by id.
    pub fn all(&self) -> &[SubnetInfo] {
        &self.infos
    }
}

/// Kea's live subnet table, swapped after each reconfiguration and read
/// by packet threads without a lock. Replaced tables are kept until this
/// is dropped, so a reader holding a reference can never see one freed.
#[derive(Default)]
pub struct LiveSubnets {
    current: AtomicPtr<SubnetTable>,
    // Boxed on purpose: readers hold `&SubnetTable` into the box, so the
    // table must not move when the vector grows.
    #[allow(clippy::vec_box)]
    retired: Mutex<Vec<Box<SubnetTable>>>,
}

impl LiveSubnets {
    /// The table, once Kea has reported its subnets. Allocation- and
    /// lock-free.
    #[inline]
    pub fn current(&self) -> Option<&SubnetTable> {
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `set` and
        // is freed only in Drop, which needs `&mut self`.
        unsafe { p.as_ref() }
    }

    /// Publishes a new table (Kea's main thread, after reconfiguring).
    pub fn set(&self, table: SubnetTable) {
        let new = Box::into_raw(Box::new(table));
        let old = self.current.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` came from Box::into_raw and is no longer published.
            let old = unsafe { Box::from_raw(old) };
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(old);
        }
    }
}

impl Drop for LiveSubnets {
    fn drop(&mut self) {
        let p = self.current.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw; `&mut self` means no reader.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEA: &str = r#"{
        "subnet4": [
            {"id": 1, "subnet": "127.1.0.0/16", "user-context": {"bmc-discovery": true, "site": "us3"}},
            {"id": 2, "subnet": "127.2.0.0/16"},
            {"id": 3, "subnet": "127.3.0.0/16", "user-context": {"bmc-discovery": false}},
            {"id": 4, "subnet": "127.4.0.0/16", "user-context": {"bmc-discovery": "yes", "site": 7}},
            {"subnet": "127.9.0.0/16", "user-context": {"bmc-discovery": true}}
        ],
        "shared-networks": [{"name": "oob", "user-context": {"bmc-discovery": true, "site": "eu1"},
            "subnet4": [{"id": 5, "subnet": "127.5.0.0/16"},
                        {"id": 6, "subnet": "127.6.0.0/16", "user-context": {"site": "eu2"}}]}]
    }"#;

    #[test]
    fn user_context_opts_in_and_out() {
        let (t, warnings) = SubnetTable::from_json(KEA, &[]).unwrap();
        assert!(t.opted_in(1));
        assert!(!t.opted_in(2));
        assert!(!t.opted_in(3));
        assert!(!t.opted_in(4));
        assert!(!t.opted_in(99));
        assert_eq!(t.get(1).unwrap().site.as_deref(), Some("us3"));
        assert_eq!(t.get(1).unwrap().prefix, "127.1.0.0/16");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("subnet 4 (127.4.0.0/16)"),
            "{warnings:?}"
        );
        assert!(
            warnings[2].starts_with("subnet 127.9.0.0/16 opts in but has no 'id'"),
            "{warnings:?}"
        );
    }

    #[test]
    fn shared_networks_pass_their_context_down() {
        let (t, _) = SubnetTable::from_json(KEA, &[]).unwrap();
        let five = t.get(5).unwrap();
        assert!(five.opted_in);
        assert_eq!(five.shared_network, "oob");
        assert_eq!(five.site.as_deref(), Some("eu1"));
        assert_eq!(
            t.get(6).unwrap().site.as_deref(),
            Some("eu2"),
            "the subnet's own site wins"
        );
        assert!(t.opted_in(6));
    }

    #[test]
    fn listed_ids_opt_in_unless_context_says_false() {
        let (t, warnings) = SubnetTable::from_json(KEA, &[2, 3, 42]).unwrap();
        assert!(t.opted_in(2));
        assert!(!t.opted_in(3), "an explicit false in user-context wins");
        assert_eq!(
            warnings.last().unwrap(),
            "parameter 'subnet-ids' lists subnet 42, which Kea's configuration does not have"
        );
    }

    #[test]
    fn pools_in_every_form_kea_writes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_pool("127.1.0.10 - 127.1.0.29"),
            Some((ip("127.1.0.10"), ip("127.1.0.29")))
        );
        assert_eq!(
            parse_pool("127.1.0.10-127.1.0.10"),
            Some((ip("127.1.0.10"), ip("127.1.0.10")))
        );
        assert_eq!(
            parse_pool("10.0.0.77/24"),
            Some((ip("10.0.0.0"), ip("10.0.0.255")))
        );
        assert_eq!(
            parse_pool("10.0.0.1/32"),
            Some((ip("10.0.0.1"), ip("10.0.0.1")))
        );
        assert_eq!(
            parse_pool("0.0.0.0/0"),
            Some((ip("0.0.0.0"), ip("255.255.255.255")))
        );
        assert_eq!(
            parse_pool("2001:db8:61::10 - 2001:db8:61::ff"),
            Some((ip("2001:db8:61::10"), ip("2001:db8:61::ff")))
        );
        assert_eq!(
            parse_pool("2001:db8:62::/120"),
            Some((ip("2001:db8:62::"), ip("2001:db8:62::ff")))
        );
        assert_eq!(
            parse_pool("::/0"),
            Some((ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
        );
        for bad in [
            "",
            "10.0.0.9-10.0.0.1",
            "10.0.0.0/33",
            "x-y",
            "10.0.0.1",
            "2001:db8::/129",
            "10.0.0.1-2001:db8::1",
            "2001:db8::ff-2001:db8::1",
        ] {
            assert_eq!(parse_pool(bad), None, "{bad}");
        }
        let (t, warnings) = SubnetTable::from_json(
            r#"{"subnet4": [{"id": 1, "subnet": "10.0.0.0/24",
                "pools": [{"pool": "10.0.0.10-10.0.0.19"}, {"pool": "10.0.0.128/25"}, {"pool": "nope"}]}]}"#,
            &[],
        )
        .unwrap();
        assert_eq!(t.get(1).unwrap().pools.len(), 2);
        assert_eq!(
            warnings,
            ["subnet 1 (10.0.0.0/24): pool 'nope' is not understood; bmc-pool-report leaves it out"]
        );
    }

    /// What kea-dhcp6's dhcp6_srv_configured hands over: `subnet6`, and
    /// shared networks whose subnets are `subnet6` too.
    #[test]
    fn subnet6_opts_in_as_subnet4_does() {
        let (t, warnings) = SubnetTable::from_json(
            r#"{"subnet6": [
                {"id": 61, "subnet": "2001:db8:61::/64", "pools": [{"pool": "2001:db8:61::10 - 2001:db8:61::ff"}],
                 "pd-pools": [{"prefix": "2001:db8:f00::", "prefix-len": 48, "delegated-len": 64}],
                 "user-context": {"bmc-discovery": true, "site": "us3"}},
                {"id": 62, "subnet": "2001:db8:62::/64", "pools": [{"pool": "2001:db8:62::/120"}]}],
              "shared-networks": [{"name": "oob6", "user-context": {"bmc-discovery": true},
                "subnet6": [{"id": 63, "subnet": "2001:db8:63::/64"}]}]}"#,
            &[],
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(t.opted_in(61) && !t.opted_in(62) && t.opted_in(63));
        let s = t.get(61).unwrap();
        assert_eq!(
            (s.prefix.as_str(), s.site.as_deref()),
            ("2001:db8:61::/64", Some("us3"))
        );
        assert_eq!(s.pools.len(), 1, "address pools only, not pd-pools");
        assert_eq!(t.get(62).unwrap().pools.len(), 1);
        assert_eq!(t.get(63).unwrap().shared_network, "oob6");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(SubnetTable::from_json("{", &[]).is_err());
        assert!(SubnetTable::from_json(r#"{"subnet4": [{"id": "x"}]}"#, &[]).is_err());
        assert_eq!(SubnetTable::from_json("{}", &[]).unwrap().0.all().len(), 0);
    }
}
