//! `bmc-pool-report`: how full the address pools of the BMC subnets are,
//! from Kea's own configuration and lease database, with alert levels and
//! what to change before BMCs stop getting addresses.
//!
//! Pure: the command gathers the subnets, the active leases and the BMCs the
//! state file knows; this module counts and judges. Pools of a subnet4 and
//! of a subnet6 alike: pool sizes are counted in u128 (a subnet6 pool can
//! hold up to 2^128 addresses) and levels judged on the exact size; the
//! report carries sizes as Kea's JSON can (a signed 64-bit integer: Kea
//! refuses the whole answer with "Number overflow" beyond that), and a
//! larger one is shown as 9223372036854775807 with
//! `total-addresses-saturated` (the text and CSV add a `+`). The CLI
//! (`src/bin/bmc-pool-report.rs`) reads the same [`Report`] back and prints
//! it as text or CSV.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::subnets::SubnetInfo;

/// Utilisation at or above which a subnet is at each alert level, in
/// percent (`pool-alert-levels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Levels {
    pub warning: u8,
    pub high: u8,
    pub critical: u8,
}

impl Default for Levels {
    fn default() -> Self {
        let [warning, high, critical] = crate::config::defaults::POOL_ALERT_LEVELS.default;
        Levels {
            warning,
            high,
            critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        [Level::Ok, Level::Warning, Level::High, Level::Critical]
            .into_iter()
            .find(|l| l.as_str() == text)
    }
}

impl Levels {
    /// The level of `used` addresses out of `total`. Exact (no rounding):
    /// 80 % of 20 addresses is 16, and 16 is the warning level. A total
    /// whose share overflows u128 (an IPv6 pool near 2^128) is beyond any
    /// count of leases.
    pub fn level(&self, used: u128, total: u128) -> Level {
        let at = |pct: u8| {
            total > 0
                && used.checked_mul(100).is_some_and(|u| {
                    u128::from(pct)
                        .checked_mul(total)
                        .is_some_and(|share| u >= share)
                })
        };
        if at(self.critical) {
            Level::Critical
        } else if at(self.high) {
            Level::High
        } else if at(self.warning) {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

/// BMC leases shorter than this get a recommendation: a BMC that is off
/// for longer than its lease (a PSU swap, a rack move) comes back on
/// another address, and its NetBox record and inventory line change.
pub const SHORT_LIFETIME_S: u32 = 3600;
/// The lifetime recommended instead: BMC addresses are infrastructure.
pub const SUGGESTED_LIFETIME_S: u32 = 86_400;

/// One active lease, as the report needs it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSeen {
    pub ip: IpAddr,
    pub subnet_id: u32,
    /// A BMC: the hook's filter accepts it or the state file knows its MAC.
    pub bmc: bool,
    pub valid_lifetime_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PoolUsage {
    /// As Kea writes it: `first-last`.
    pub pool: String,
    /// At most `MAX_REPORTED`: see `total_addresses_saturated`.
    pub total_addresses: u64,
    /// The pool holds more than `MAX_REPORTED` addresses (IPv6); the level and
    /// percentage were judged on its exact size.
    #[serde(default)]
    pub total_addresses_saturated: bool,
    pub assigned_addresses: u64,
    pub utilisation_percent: f64,
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubnetUsage {
    pub subnet_id: u32,
    pub subnet: String,
    #[serde(default)]
    pub shared_network: String,
    #[serde(default)]
    pub site: Option<String>,
    pub opted_in: bool,
    /// Addresses in all pools (at most `MAX_REPORTED`, see
    /// `total_addresses_saturated`), and how many of them are leased.
    pub total_addresses: u64,
    #[serde(default)]
    pub total_addresses_saturated: bool,
    pub assigned_addresses: u64,
    pub utilisation_percent: f64,
    pub level: Level,
    /// Active leases of BMCs and of anything else (in or out of pools).
    pub bmc_leases: u64,
    pub other_leases: u64,
    /// Active leases outside every pool (reservations).
    pub out_of_pool_leases: u64,
    /// BMCs the state file has seen in this subnet, leased now or not.
    pub bmcs_seen: u64,
    /// The lease lifetime most BMC leases here have (all leases if there is
    /// no BMC lease); None without leases.
    pub lease_lifetime_s: Option<u32>,
    /// Renewals an hour the BMC leases cause at that lifetime (clients
    /// renew at half the lifetime).
    pub bmc_renewals_per_hour: Option<f64>,
    pub pools: Vec<PoolUsage>,
    pub recommendations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub levels: Levels,
    pub subnets: Vec<SubnetUsage>,
    /// Subnets at each level (every level present).
    pub alerts: BTreeMap<Level, u64>,
}

impl Report {
    /// The worst level of any subnet.
    pub fn worst(&self) -> Level {
        self.subnets
            .iter()
            .map(|s| s.level)
            .max()
            .unwrap_or(Level::Ok)
    }
}

/// Percent with one decimal, rounded half up, without float noise.
fn percent(used: u64, total: u128) -> f64 {
    if total == 0 {
        return 0.0;
    }
    // used * 1000 < 2^74 and total / 2 < 2^127: no overflow.
    ((u128::from(used) * 1000 + total / 2) / total) as f64 / 10.0
}

/// Addresses in a pool; ::/0 (2^128) saturates at u128::MAX.
fn size((first, last): (IpAddr, IpAddr)) -> u128 {
    let n = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    (n(last) - n(first)).saturating_add(1)
}

/// The largest size the report carries: Kea parses a command's answer into
/// its own JSON, whose integers are i64.
pub const MAX_REPORTED: u64 = i64::MAX as u64;

/// A size as the report carries it, and whether it was cut to fit.
fn reported(total: u128) -> (u64, bool) {
    match u64::try_from(total) {
        Ok(t) if t <= MAX_REPORTED => (t, false),
        _ => (MAX_REPORTED, true),
    }
}

fn contains((first, last): (IpAddr, IpAddr), ip: IpAddr) -> bool {
    // Addresses of different families compare as unequal in Ord, but a
    // v4 lease must never count into a v6 pool.
    first.is_ipv4() == ip.is_ipv4() && first <= ip && ip <= last
}

/// A total for text and CSV: `+` after a saturated one.
fn shown_total(total: u64, saturated: bool) -> String {
    if saturated {
        format!("{total}+")
    } else {
        total.to_string()
    }
}

/// The value most of `values` have (the larger one on a tie).
fn most_common(values: impl Iterator<Item = u32>) -> Option<u32> {
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(v, n)| (n, v))
        .map(|(v, _)| v)
}

/// Builds the report for `subnets` (already chosen by the caller).
/// `bmcs_seen` counts, per subnet id, the BMCs the state file knows there.
pub fn build(
    subnets: &[&SubnetInfo],
    leases: &[LeaseSeen],
    bmcs_seen: &HashMap<u32, u64>,
    levels: Levels,
) -> Report {
    let mut by_subnet: HashMap<u32, Vec<&LeaseSeen>> = HashMap::new();
    for l in leases {
        by_subnet.entry(l.subnet_id).or_default().push(l);
    }
    let mut out = Vec::with_capacity(subnets.len());
    for info in subnets {
        let here = by_subnet.get(&info.id).map(Vec::as_slice).unwrap_or(&[]);
        let pools: Vec<PoolUsage> = info
            .pools
            .iter()
            .map(|&range| {
                let total = size(range);
                let assigned = here.iter().filter(|l| contains(range, l.ip)).count() as u64;
                let (shown, saturated) = reported(total);
                PoolUsage {
                    pool: format!("{}-{}", range.0, range.1),
                    total_addresses: shown,
                    total_addresses_saturated: saturated,
                    assigned_addresses: assigned,
                    utilisation_percent: percent(assigned, total),
                    level: levels.level(u128::from(assigned), total),
                }
            })
            .collect();
        // Pools of one subnet never overlap (Kea refuses that), so the
        // subnet's figures are the sums.
        let total: u128 = info
            .pools
            .iter()
            .fold(0u128, |sum, &r| sum.saturating_add(size(r)));
        let (shown_total, saturated) = reported(total);
        let assigned: u64 = pools.iter().map(|p| p.assigned_addresses).sum();
        let bmc_leases = here.iter().filter(|l| l.bmc).count() as u64;
        let lifetime = most_common(here.iter().filter(|l| l.bmc).map(|l| l.valid_lifetime_s))
            .or_else(|| most_common(here.iter().map(|l| l.valid_lifetime_s)));
        let renewals = lifetime
            .filter(|&t| t > 0)
            .map(|t| (bmc_leases as f64 * 3600.0 / (f64::from(t) / 2.0) * 10.0).round() / 10.0);
        let mut usage = SubnetUsage {
            subnet_id: info.id,
            subnet: info.prefix.clone(),
            shared_network: info.shared_network.clone(),
            site: info.site.clone(),
            opted_in: info.opted_in,
            total_addresses: shown_total,
            total_addresses_saturated: saturated,
            assigned_addresses: assigned,
            utilisation_percent: percent(assigned, total),
            level: levels.level(u128::from(assigned), total),
            bmc_leases,
            other_leases: here.len() as u64 - bmc_leases,
            out_of_pool_leases: here.len() as u64 - assigned,
            bmcs_seen: bmcs_seen.get(&info.id).copied().unwrap_or(0),
            lease_lifetime_s: lifetime,
            bmc_renewals_per_hour: renewals,
            pools,
            recommendations: Vec::new(),
        };
        usage.recommendations = recommend(&usage, levels);
        out.push(usage);
    }
    let mut alerts: BTreeMap<Level, u64> =
        [Level::Ok, Level::Warning, Level::High, Level::Critical]
            .into_iter()
            .map(|l| (l, 0))
            .collect();
    for s in &out {
        *alerts.entry(s.level).or_insert(0) += 1;
    }
    Report {
        levels,
        subnets: out,
        alerts,
    }
}

fn recommend(s: &SubnetUsage, levels: Levels) -> Vec<String> {
    let mut out = Vec::new();
    let name = format!("subnet {} ({})", s.subnet_id, s.subnet);
    if s.total_addresses == 0 {
        if s.opted_in {
            out.push(format!(
                "{name} has no pool: Kea leases only reserved addresses here, so a new BMC \
                 gets none; add a pool"
            ));
        }
        return out;
    }
    // Size the pools for every BMC this subnet has seen, not only those
    // leased now: powered-off servers come back.
    let needed = s.assigned_addresses.max(s.bmcs_seen);
    if levels.level(u128::from(needed), u128::from(s.total_addresses)) > Level::Ok {
        let target = (needed * 100).div_ceil(u64::from(levels.warning));
        let grow = target.saturating_sub(s.total_addresses).max(1);
        out.push(format!(
            "{name}: {} of {} pool addresses leased, {} BMCs seen here; grow its pools by at \
             least {grow} addresses (to {target}) to stay below the warning level of {} %",
            s.assigned_addresses, s.total_addresses, s.bmcs_seen, levels.warning
        ));
    }
    if let (Some(lifetime), Some(renewals)) = (s.lease_lifetime_s, s.bmc_renewals_per_hour) {
        if s.bmc_leases > 0 && lifetime < SHORT_LIFETIME_S {
            out.push(format!(
                "{name}: BMC leases last {lifetime} s, so its {} BMCs renew every ~{} s \
                 ({renewals} renewals an hour) and one that is off for longer gets another \
                 address; set valid-lifetime to {SUGGESTED_LIFETIME_S} s or more",
                s.bmc_leases,
                lifetime / 2
            ));
        }
    }
    out
}

/// The report as a table for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let l = report.levels;
    let _ = writeln!(
        out,
        "alert levels: warning {} %, high {} %, critical {} %",
        l.warning, l.high, l.critical
    );
    if report.subnets.is_empty() {
        out.push_str("no subnet to report (none opted in?)\n");
    }
    for s in &report.subnets {
        let _ = writeln!(out);
        let site = s
            .site
            .as_deref()
            .map(|x| format!(", site {x}"))
            .unwrap_or_default();
        let net = if s.shared_network.is_empty() {
            String::new()
        } else {
            format!(", shared network {}", s.shared_network)
        };
        let _ = writeln!(
            out,
            "subnet {} {}{site}{net}: {}/{} addresses leased ({:.1} %) {}",
            s.subnet_id,
            s.subnet,
            s.assigned_addresses,
            shown_total(s.total_addresses, s.total_addresses_saturated),
            s.utilisation_percent,
            s.level.as_str().to_uppercase()
        );
        for p in &s.pools {
            let _ = writeln!(
                out,
                "  pool {:<33} {:>7}/{:<7} {:>5.1} %  {}",
                p.pool,
                p.assigned_addresses,
                shown_total(p.total_addresses, p.total_addresses_saturated),
                p.utilisation_percent,
                p.level.as_str()
            );
        }
        let lifetime = match (s.lease_lifetime_s, s.bmc_renewals_per_hour) {
            (Some(t), Some(r)) if s.bmc_leases > 0 => {
                format!(", lease lifetime {t} s ({r} BMC renewals/h)")
            }
            (Some(t), None) => format!(", lease lifetime {t} s"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  leases: {} BMC, {} other, {} outside the pools; {} BMCs seen here{lifetime}",
            s.bmc_leases, s.other_leases, s.out_of_pool_leases, s.bmcs_seen
        );
        for r in &s.recommendations {
            let _ = writeln!(out, "  recommendation: {r}");
        }
    }
    out
}

fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The report as CSV: one row per pool, then one row per subnet with
/// `pool` = `all` carrying its lease counts and recommendations.
pub fn csv(report: &Report) -> String {
    const HEADER: &str = "subnet-id,subnet,site,pool,total-addresses,assigned-addresses,\
                          utilisation-percent,level,bmc-leases,other-leases,bmcs-seen,\
                          lease-lifetime-s,recommendations";
    let mut out = String::from(HEADER);
    out.push_str("\r\n");
    let mut row = |fields: &[String]| {
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    };
    for s in &report.subnets {
        let site = s.site.clone().unwrap_or_default();
        for p in &s.pools {
            row(&[
                s.subnet_id.to_string(),
                s.subnet.clone(),
                site.clone(),
                p.pool.clone(),
                shown_total(p.total_addresses, p.total_addresses_saturated),
                p.assigned_addresses.to_string(),
                format!("{:.1}", p.utilisation_percent),
                p.level.as_str().into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        row(&[
            s.subnet_id.to_string(),
            s.subnet.clone(),
            site,
            "all".into(),
            shown_total(s.total_addresses, s.total_addresses_saturated),
            s.assigned_addresses.to_string(),
            format!("{:.1}", s.utilisation_percent),
            s.level.as_str().into(),
            s.bmc_leases.to_string(),
            s.other_leases.to_string(),
            s.bmcs_seen.to_string(),
            s.lease_lifetime_s
                .map(|t| t.to_string())
                .unwrap_or_default(),
            s.recommendations.join(" | "),
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn subnet(id: u32, pools: &[(&str, &str)]) -> SubnetInfo {
        SubnetInfo {
            id,
            prefix: format!("10.{id}.0.0/24"),
            shared_network: String::new(),
            opted_in: true,
            site: Some("ams1".into()),
            pools: pools.iter().map(|(a, b)| (ip(a), ip(b))).collect(),
        }
    }

    fn lease(addr: &str, subnet_id: u32, bmc: bool, lifetime: u32) -> LeaseSeen {
        LeaseSeen {
            ip: ip(addr),
            subnet_id,
            bmc,
            valid_lifetime_s: lifetime,
        }
    }

    #[test]
    fn levels_are_exact_at_their_bounds() {
        let l = Levels::default();
        assert_eq!(l.level(15, 20), Level::Ok);
        assert_eq!(l.level(16, 20), Level::Warning, "80 % of 20 is 16");
        assert_eq!(l.level(17, 20), Level::Warning);
        assert_eq!(l.level(18, 20), Level::High);
        assert_eq!(l.level(19, 20), Level::Critical);
        assert_eq!(l.level(20, 20), Level::Critical);
        assert_eq!(l.level(799, 1000), Level::Ok);
        assert_eq!(l.level(0, 0), Level::Ok, "no pool is not full");
        let strict = Levels {
            warning: 50,
            high: 60,
            critical: 70,
        };
        assert_eq!(strict.level(5, 10), Level::Warning);
    }

    #[test]
    fn counts_pools_leases_and_alerts() {
        let s1 = subnet(
            1,
            &[("10.1.0.10", "10.1.0.19"), ("10.1.0.100", "10.1.0.109")],
        );
        let s2 = subnet(2, &[("10.2.0.10", "10.2.0.109")]);
        let mut leases: Vec<LeaseSeen> = (10..19)
            .map(|i| lease(&format!("10.1.0.{i}"), 1, true, 86_400))
            .collect();
        leases.push(lease("10.1.0.100", 1, false, 7200));
        leases.push(lease("10.1.0.200", 1, true, 86_400)); // a reservation
        leases.push(lease("10.2.0.10", 2, true, 86_400));
        leases.push(lease("10.3.0.10", 3, true, 86_400)); // not asked for
        let seen = HashMap::from([(1, 10), (2, 1)]);
        let r = build(&[&s1, &s2], &leases, &seen, Levels::default());
        let a = &r.subnets[0];
        assert_eq!(a.total_addresses, 20);
        assert_eq!(a.assigned_addresses, 10);
        assert_eq!(a.utilisation_percent, 50.0);
        assert_eq!(a.level, Level::Ok);
        assert_eq!(a.pools[0].assigned_addresses, 9);
        assert_eq!(a.pools[0].level, Level::High, "9 of 10 is 90 %");
        assert_eq!(a.pools[0].pool, "10.1.0.10-10.1.0.19");
        assert_eq!(a.pools[1].assigned_addresses, 1);
        assert_eq!(
            (a.bmc_leases, a.other_leases, a.out_of_pool_leases),
            (10, 1, 1)
        );
        assert_eq!(a.bmcs_seen, 10);
        assert_eq!(a.lease_lifetime_s, Some(86_400));
        assert_eq!(
            a.bmc_renewals_per_hour,
            Some(0.8),
            "10 BMCs renewing every 12 h"
        );
        assert!(a.recommendations.is_empty(), "{:?}", a.recommendations);
        assert_eq!(r.subnets[1].assigned_addresses, 1);
        assert_eq!(r.subnets[1].utilisation_percent, 1.0);
        assert_eq!(r.alerts[&Level::Ok], 2);
        assert_eq!(r.worst(), Level::Ok);
    }

    #[test]
    fn a_pool_too_small_for_the_bmcs_seen_gets_a_size() {
        let s = subnet(1, &[("10.1.0.10", "10.1.0.29")]);
        let leases: Vec<LeaseSeen> = (10..28)
            .map(|i| lease(&format!("10.1.0.{i}"), 1, i != 27, 86_400))
            .collect();
        // 18 of 20 leased (90 %), 17 BMCs leased now, 30 seen over time.
        let r = build(&[&s], &leases, &HashMap::from([(1, 30)]), Levels::default());
        let a = &r.subnets[0];
        assert_eq!(a.level, Level::High);
        assert_eq!(a.utilisation_percent, 90.0);
        assert_eq!(r.alerts[&Level::High], 1);
        assert_eq!(
            a.recommendations,
            [
                "subnet 1 (10.1.0.0/24): 18 of 20 pool addresses leased, 30 BMCs seen here; grow \
              its pools by at least 18 addresses (to 38) to stay below the warning level of 80 %"
            ]
        );
        // Fewer BMCs seen than leases: sized for the leases.
        let r = build(&[&s], &leases, &HashMap::new(), Levels::default());
        assert!(
            r.subnets[0].recommendations[0].contains("by at least 3 addresses (to 23)"),
            "{:?}",
            r.subnets[0].recommendations
        );
    }

    #[test]
    fn short_bmc_leases_get_a_longer_lifetime() {
        let s = subnet(1, &[("10.1.0.10", "10.1.0.249")]);
        let mut leases: Vec<LeaseSeen> = (10..20)
            .map(|i| lease(&format!("10.1.0.{i}"), 1, true, 120))
            .collect();
        leases.push(lease("10.1.0.50", 1, false, 86_400));
        let r = build(&[&s], &leases, &HashMap::new(), Levels::default());
        let a = &r.subnets[0];
        assert_eq!(a.lease_lifetime_s, Some(120), "the BMC leases' lifetime");
        assert_eq!(a.bmc_renewals_per_hour, Some(600.0));
        assert_eq!(
            a.recommendations,
            [
                "subnet 1 (10.1.0.0/24): BMC leases last 120 s, so its 10 BMCs renew every ~60 s \
              (600 renewals an hour) and one that is off for longer gets another address; set \
              valid-lifetime to 86400 s or more"
            ]
        );
        // Short leases of other clients are not ours to judge.
        let others: Vec<LeaseSeen> = (10..20)
            .map(|i| lease(&format!("10.1.0.{i}"), 1, false, 120))
            .collect();
        let r = build(&[&s], &others, &HashMap::new(), Levels::default());
        assert!(r.subnets[0].recommendations.is_empty());
        assert_eq!(r.subnets[0].lease_lifetime_s, Some(120));
    }

    #[test]
    fn an_opted_in_subnet_without_pools_says_so() {
        let s = subnet(1, &[]);
        let r = build(&[&s], &[], &HashMap::new(), Levels::default());
        assert_eq!(r.subnets[0].level, Level::Ok);
        assert!(r.subnets[0].recommendations[0].contains("has no pool"));
    }

    #[test]
    fn text_and_csv_show_every_pool_and_round_trip_through_json() {
        let s = subnet(1, &[("10.1.0.10", "10.1.0.29")]);
        let leases: Vec<LeaseSeen> = (10..27)
            .map(|i| lease(&format!("10.1.0.{i}"), 1, true, 86_400))
            .collect();
        let r = build(&[&s], &leases, &HashMap::new(), Levels::default());
        let back: Report = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let t = text(&r);
        assert!(
            t.contains("subnet 1 10.1.0.0/24, site ams1: 17/20 addresses leased (85.0 %) WARNING"),
            "{t}"
        );
        assert!(t.contains("pool 10.1.0.10-10.1.0.29"), "{t}");
        assert!(t.contains("  recommendation: subnet 1"), "{t}");
        let c = csv(&r);
        let rows: Vec<&str> = c.split("\r\n").collect();
        assert_eq!(rows.len(), 4, "header, pool, subnet, final newline: {c}");
        assert_eq!(
            rows[1],
            "1,10.1.0.0/24,ams1,10.1.0.10-10.1.0.29,20,17,85.0,warning,,,,,"
        );
        assert!(rows[2].starts_with("1,10.1.0.0/24,ams1,all,20,17,85.0,warning,17,0,0,86400,"));
        let mut quoted = String::new();
        csv_field(&mut quoted, "a, \"b\"");
        assert_eq!(quoted, "\"a, \"\"b\"\"\"");
    }

    fn subnet6(id: u32, pools: &[&str]) -> SubnetInfo {
        SubnetInfo {
            id,
            prefix: format!("2001:db8:{id}::/48"),
            shared_network: String::new(),
            opted_in: true,
            site: None,
            pools: pools
                .iter()
                .map(|p| crate::subnets::parse_pool(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn ipv6_pools_count_in_u128_and_saturate_in_the_report() {
        // 2001:db8:1::10 - ::29 is 26 addresses; 20 leased is 76.9 %.
        let small = subnet6(1, &["2001:db8:1::10 - 2001:db8:1::29"]);
        let mut leases: Vec<LeaseSeen> = (0x10..0x24)
            .map(|i| lease(&format!("2001:db8:1::{i:x}"), 1, true, 3600))
            .collect();
        // Same subnet id, other family, and out of the pool: not assigned.
        leases.push(lease("10.1.0.16", 1, true, 3600));
        leases.push(lease("2001:db8:1::1:0", 1, true, 3600));
        let r = build(&[&small], &leases, &HashMap::new(), Levels::default());
        let a = &r.subnets[0];
        assert_eq!((a.total_addresses, a.assigned_addresses), (26, 20));
        assert!(!a.total_addresses_saturated);
        assert_eq!(a.utilisation_percent, 76.9);
        assert_eq!(a.level, Level::Ok);
        assert_eq!(a.out_of_pool_leases, 2);
        // 21 of 26 is 80.8 %: warning, as for IPv4.
        leases.push(lease("2001:db8:1::24", 1, true, 3600));
        let r = build(&[&small], &leases, &HashMap::new(), Levels::default());
        assert_eq!(r.subnets[0].level, Level::Warning);

        // A /64 pool is 2^64 addresses, more than Kea's i64 holds; two of
        // them, 2^65; a ::/0, 2^128 (saturated at u128::MAX inside).
        let big = subnet6(
            2,
            &["2001:db8:2::/64", "2001:db8:2:1::/64", "2001:db8:2:2::/112"],
        );
        let leases = [lease("2001:db8:2::10", 2, true, 3600)];
        let r = build(&[&big], &leases, &HashMap::new(), Levels::default());
        let b = &r.subnets[0];
        assert_eq!(b.pools[0].total_addresses, MAX_REPORTED);
        assert!(b.pools[0].total_addresses_saturated);
        assert_eq!(b.pools[2].total_addresses, 65536);
        assert!(!b.pools[2].total_addresses_saturated);
        assert_eq!(
            (b.total_addresses, b.total_addresses_saturated),
            (MAX_REPORTED, true)
        );
        assert_eq!(b.assigned_addresses, 1);
        assert_eq!(b.utilisation_percent, 0.0);
        assert_eq!(b.level, Level::Ok);
        assert!(b.recommendations.is_empty(), "{:?}", b.recommendations);
        let t = text(&r);
        assert!(
            t.contains("1/9223372036854775807+ addresses leased (0.0 %) OK"),
            "{t}"
        );
        assert!(csv(&r).contains(",all,9223372036854775807+,1,0.0,ok,"));
        // 2^63 - 1 is carried as it is; one more saturates.
        let edge = subnet6(4, &["::1 - 7fff:ffff:ffff:ffff::"]);
        let r = build(&[&edge], &[], &HashMap::new(), Levels::default());
        assert!(r.subnets[0].total_addresses_saturated);
        assert_eq!(reported(u128::from(MAX_REPORTED)), (MAX_REPORTED, false));
        assert_eq!(reported(u128::from(MAX_REPORTED) + 1), (MAX_REPORTED, true));
        let all = subnet6(3, &["::/0"]);
        let r = build(&[&all], &[], &HashMap::new(), Levels::default());
        assert!(r.subnets[0].total_addresses_saturated);
        assert_eq!(r.subnets[0].level, Level::Ok);
        let back: Report = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn levels_take_u128_sizes_without_overflow() {
        let l = Levels::default();
        let max = u128::from(u64::MAX);
        assert_eq!(l.level(max, u128::MAX), Level::Ok);
        assert_eq!(l.level(max, max), Level::Critical);
        assert_eq!(l.level(max / 2, max), Level::Ok);
        assert_eq!(l.level(u128::MAX, u128::MAX), Level::Ok, "beyond any count");
        assert_eq!(percent(u64::MAX, u128::MAX), 0.0);
        assert_eq!(percent(1, 3), 33.3);
    }
}
