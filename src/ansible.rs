//! The Ansible inventory of discovered BMCs: one YAML file per site and
//! cabinet in `ansible-inventory-dir`, and the same inventory as JSON in
//! Ansible's `--list` shape for `bmc-inventory`.
//!
//! Each file holds its cabinet's hosts in the group `bmc_targets` (the only
//! place addresses appear, as `ansible_host`), the same hosts in
//! `site_<site>` → `cabinet_<site>_<cabinet>`, and that group's
//! `metadata.leases`: `mac`, `hostname` and `manufacturer` per lease.
//! Hosts go in ascending rack-unit order (a multi-unit server by its lowest
//! unit), hosts without a unit last. Files are written to a temporary name
//! and renamed, so Ansible never reads half a file; only files whose content
//! changed are written; files of cabinets that no longer have BMCs are
//! removed (only files this hook wrote: they start with `HEADER`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::state::{Bmc, State};

/// First line of every file this hook writes.
pub const HEADER: &str =
    "# Written by kea-hook-bmc-discovery from its state file; edits are overwritten.";

/// Site and cabinet names for BMCs whose hostname gave no placement.
pub const UNPLACED: &str = "unplaced";

/// One host of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub ip: String,
    pub mac: String,
    pub hostname: String,
    pub manufacturer: String,
    pub unit: Option<u32>,
}

/// Hosts by (site, cabinet), each list in rack-unit order.
pub type Cabinets = BTreeMap<(String, String), Vec<Host>>;

/// The BMCs that belong in the inventory: discovered at least once and not
/// dead, grouped and sorted.
pub fn cabinets(bmcs: &[Bmc]) -> Cabinets {
    let mut out = Cabinets::new();
    for b in bmcs {
        if b.discovered_at.is_none() || b.state == State::Dead {
            continue;
        }
        let name = b
            .found
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| (!b.hostname.is_empty()).then(|| b.hostname.clone()))
            .unwrap_or_else(|| format!("bmc-{}", b.mac.replace(':', "")));
        let site = b.found.site.clone().unwrap_or_else(|| UNPLACED.into());
        let rack = b.found.rack.clone().unwrap_or_else(|| UNPLACED.into());
        out.entry((site, rack)).or_default().push(Host {
            name,
            ip: b.ip.clone(),
            mac: b.mac.clone(),
            hostname: b.hostname.clone(),
            manufacturer: b.found.manufacturer.clone().unwrap_or_default(),
            unit: b.found.unit,
        });
    }
    // Host names must be unique in an inventory: BMCs sharing one (the
    // same DHCP hostname on several, no NetBox name) get their MAC added.
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for h in out.values().flatten() {
        *uses.entry(h.name.clone()).or_insert(0) += 1;
    }
    for h in out.values_mut().flatten() {
        if uses[&h.name] > 1 {
            h.name = format!("{}-{}", h.name, h.mac.replace(':', ""));
        }
    }
    for hosts in out.values_mut() {
        hosts.sort_by(|a, b| {
            (a.unit.is_none(), a.unit, &a.name).cmp(&(b.unit.is_none(), b.unit, &b.name))
        });
    }
    out
}

/// An Ansible group name: letters, digits and underscores only.
pub fn group_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// A YAML double-quoted scalar. Names, hostnames and manufacturers are what
/// a DHCP client or a BMC said; JSON's escaping is not enough, because YAML
/// 1.2 refuses DEL, C1 controls and a few other characters even inside
/// quotes (Ansible then cannot read the whole file). Everything outside
/// YAML's printable set, and every line or paragraph separator, is written
/// as an escape.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if yaml_printable(c) => out.push(c),
            // Everything not printable is in the BMP, so \u covers it.
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// YAML 1.2's printable set (c-printable), less the line breaks and NEL
/// (a quoted scalar would fold them), the Unicode line and paragraph
/// separators, the byte-order mark and the bidi controls (which make an
/// editor show the file other than it is).
fn yaml_printable(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E | 0xA0..=0x200D | 0x2010..=0x2027 | 0x202F..=0x2065
        | 0x206A..=0xD7FF | 0xE000..=0xFEFE | 0xFF00..=0xFFFD | 0x10000..=0x10FFFF)
}

/// A site or cabinet in the file's comment line: printable ASCII only, so
/// that nothing a device said can end the comment.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The file of one cabinet.
pub fn yaml(site: &str, cabinet: &str, hosts: &[Host]) -> String {
    let site_group = group_name(&["site", site]);
    let cabinet_group = group_name(&["cabinet", site, cabinet]);
    let mut y = format!(
        "{HEADER}\n---\n# site {}, cabinet {}: {} BMCs, lowest rack unit first\nall:\n  children:\n",
        comment_safe(site),
        comment_safe(cabinet),
        hosts.len()
    );
    y.push_str("    bmc_targets:\n      hosts:\n");
    for h in hosts {
        y.push_str(&format!(
            "        {}:\n          ansible_host: {}\n",
            q(&h.name),
            q(&h.ip)
        ));
    }
    y.push_str(&format!(
        "    {site_group}:\n      children:\n        {cabinet_group}:\n          hosts:\n"
    ));
    for h in hosts {
        y.push_str(&format!("            {}: {{}}\n", q(&h.name)));
    }
    y.push_str("          vars:\n            metadata:\n              leases:\n");
    for h in hosts {
        y.push_str(&format!(
            "                - mac: {}\n                  hostname: {}\n                  manufacturer: {}\n",
            q(&h.mac),
            q(&h.hostname),
            q(&h.manufacturer)
        ));
    }
    y
}

/// The file name of one cabinet.
pub fn file_name(site: &str, cabinet: &str) -> String {
    format!("{}.yml", group_name(&[site, cabinet]))
}

/// The inventory in the shape of `ansible-inventory --list`, which a
/// dynamic-inventory script prints.
pub fn json(cabinets: &Cabinets) -> Value {
    let mut groups = Map::new();
    let mut hostvars = Map::new();
    let mut targets = Vec::new();
    let mut sites: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((site, cabinet), hosts) in cabinets {
        let cabinet_group = group_name(&["cabinet", site, cabinet]);
        sites
            .entry(group_name(&["site", site]))
            .or_default()
            .push(cabinet_group.clone());
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        let leases: Vec<Value> = hosts
            .iter()
            .map(|h| json!({"mac": h.mac, "hostname": h.hostname, "manufacturer": h.manufacturer}))
            .collect();
        groups.insert(
            cabinet_group,
            json!({"hosts": names, "vars": {"metadata": {"leases": leases}}}),
        );
        for h in hosts {
            targets.push(h.name.clone());
            hostvars.insert(h.name.clone(), json!({"ansible_host": h.ip}));
        }
    }
    let mut children: Vec<String> = vec!["bmc_targets".into()];
    for (site, cabinets) in sites {
        groups.insert(site.clone(), json!({ "children": cabinets }));
        children.push(site);
    }
    groups.insert("bmc_targets".into(), json!({ "hosts": targets }));
    groups.insert("all".into(), json!({ "children": children }));
    groups.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Value::Object(groups)
}

/// What one write of the directory did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub changed: usize,
    pub removed: usize,
}

/// Brings `dir` up to date with `cabinets`.
pub fn write_dir(dir: &Path, cabinets: &Cabinets) -> Result<Written, String> {
    let mut out = Written::default();
    let mut wanted = std::collections::BTreeSet::new();
    for ((site, cabinet), hosts) in cabinets {
        let name = file_name(site, cabinet);
        let path = dir.join(&name);
        let text = yaml(site, cabinet, hosts);
        wanted.insert(name);
        out.files += 1;
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        let tmp = dir.join(format!(".{}.tmp", file_name(site, cabinet)));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        out.changed += 1;
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yml") || wanted.contains(&name) {
            continue;
        }
        let ours = std::fs::read_to_string(entry.path())
            .map(|t| t.starts_with(HEADER))
            .unwrap_or(false);
        if ours && std::fs::remove_file(entry.path()).is_ok() {
            out.removed += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Found;

    fn bmc(mac: &str, name: &str, rack: Option<&str>, unit: Option<u32>) -> Bmc {
        Bmc {
            mac: mac.into(),
            ip: format!("10.0.0.{}", unit.unwrap_or(99)),
            ipv4: None,
            ipv6: None,
            subnet_id: 1,
            hostname: format!("{name}-lease"),
            state: State::Registered,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            error_class: None,
            found: Found {
                name: Some(name.into()),
                site: rack.map(|_| "us3".into()),
                rack: rack.map(str::to_string),
                unit,
                manufacturer: Some("Dell Inc.".into()),
                ..Found::default()
            },
            first_seen: 0,
            leased_at_ms: 0,
            discovered_at: Some(1),
            registered_at: None,
            discovery_ms: None,
            register_ms: None,
        }
    }

    #[test]
    fn ipv6_targets_are_quoted_addresses() {
        // A plain YAML scalar of digits and colons is a base-60 integer to
        // YAML 1.1 readers (Ansible's PyYAML): `1:2:3:4:5:6:7:8` would be
        // read as a number. Quoted, every IPv6 address stays a string.
        let mut b = bmc("02:00:00:00:00:01", "v6", Some("cab1"), Some(1));
        b.ip = "1:2:3:4:5:6:7:8".into();
        let c = cabinets(&[b]);
        let hosts = &c[&("us3".to_string(), "cab1".to_string())];
        let y = yaml("us3", "cab1", hosts);
        assert!(
            y.contains("          ansible_host: \"1:2:3:4:5:6:7:8\"\n"),
            "{y}"
        );
        assert_eq!(
            json(&c)["_meta"]["hostvars"]["v6"]["ansible_host"],
            "1:2:3:4:5:6:7:8"
        );
    }

    #[test]
    fn hosts_are_grouped_by_cabinet_in_rack_unit_order() {
        let mut dead = bmc("02:00:00:00:00:09", "gone", Some("cab1"), Some(1));
        dead.state = State::Dead;
        let c = cabinets(&[
            bmc("02:00:00:00:00:01", "b", Some("cab1"), Some(30)),
            bmc("02:00:00:00:00:02", "a", Some("cab1"), None),
            bmc("02:00:00:00:00:03", "c", Some("cab1"), Some(4)),
            bmc("02:00:00:00:00:04", "d", None, None),
            bmc("02:00:00:00:00:05", "e", None, None),
            bmc("02:00:00:00:00:06", "e", None, None),
            dead,
        ]);
        let cab1 = &c[&("us3".to_string(), "cab1".to_string())];
        let names: Vec<&str> = cab1.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        let unplaced = &c[&(UNPLACED.to_string(), UNPLACED.to_string())];
        let names: Vec<&str> = unplaced.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["d", "e-020000000005", "e-020000000006"]);
        let y = yaml("us3", "cab1", cab1);
        assert!(y.starts_with(HEADER));
        assert!(y.contains("    site_us3:\n      children:\n        cabinet_us3_cab1:\n"));
        assert_eq!(
            y.matches("10.0.0.").count(),
            3,
            "addresses only in bmc_targets"
        );
        let j = json(&c);
        assert_eq!(j["bmc_targets"]["hosts"].as_array().unwrap().len(), 6);
        assert_eq!(j["_meta"]["hostvars"]["c"]["ansible_host"], "10.0.0.4");
        assert_eq!(j["cabinet_us3_cab1"]["hosts"], json!(["c", "b", "a"]));
        assert_eq!(
            j["cabinet_us3_cab1"]["vars"]["metadata"]["leases"][0],
            json!({"mac": "02:00:00:00:00:03", "hostname": "c-lease", "manufacturer": "Dell Inc."})
        );
    }

    #[test]
    fn what_a_device_says_cannot_break_the_yaml() {
        // DEL, C1, NEL, a line separator, a BOM, a bidi override, a newline
        // that would start a new key, and quotes.
        let hostile = "a\u{7f}b\u{85}c\u{9b}d\u{2028}e\u{feff}f\u{202e}g\nh: x\"\\";
        let mut h = bmc("02:00:00:00:00:01", hostile, Some("cab1"), Some(1));
        h.found.manufacturer = Some(hostile.into());
        let c = cabinets(&[h]);
        let hosts = c.values().next().unwrap();
        let y = yaml("us3\n- evil", "cab1\u{85}", hosts);
        for line in y.lines() {
            assert!(
                line.chars().all(|c| c == '\t' || yaml_printable(c)),
                "not YAML-printable: {line:?}"
            );
        }
        assert!(y.contains("# site us3?- evil, cabinet cab1?:"), "{y}");
        let quoted = q(hostile);
        assert_eq!(
            quoted,
            r#""a\u007Fb\u0085c\u009Bd\u2028e\uFEFFf\u202Eg\u000Ah: x\"\\""#
        );
        // The escapes are also JSON's, so a JSON parser reads the original back.
        let back: String = serde_json::from_str(&quoted).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn the_directory_is_rewritten_only_where_it_changed() {
        let dir = std::env::temp_dir().join(format!("bmc-inventory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine.yml"), "all: {}\n").unwrap();
        let one = cabinets(&[bmc("02:00:00:00:00:01", "a", Some("cab1"), Some(1))]);
        let two = cabinets(&[
            bmc("02:00:00:00:00:01", "a", Some("cab1"), Some(1)),
            bmc("02:00:00:00:00:02", "b", Some("cab2"), Some(1)),
        ]);
        assert_eq!(
            write_dir(&dir, &two).unwrap(),
            Written {
                files: 2,
                changed: 2,
                removed: 0
            }
        );
        assert_eq!(
            write_dir(&dir, &two).unwrap(),
            Written {
                files: 2,
                changed: 0,
                removed: 0
            }
        );
        assert_eq!(
            write_dir(&dir, &one).unwrap(),
            Written {
                files: 1,
                changed: 0,
                removed: 1
            }
        );
        assert!(dir.join("us3_cab1.yml").exists());
        assert!(!dir.join("us3_cab2.yml").exists());
        assert!(
            dir.join("mine.yml").exists(),
            "a file of someone else's stays"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
