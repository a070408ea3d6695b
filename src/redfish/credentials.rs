//! BMC credentials: the credentials file and which entries apply to a BMC;
//! the guard that keeps a wrong password from ever locking an account, and
//! an entry from being sprayed over a network, is in `guard`.

pub mod guard;

use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A password. It has no Display, and its Debug prints `***`, so it cannot
/// end up in a log line or an error text by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The password itself; call sites are the request builders only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One username/password pair and which BMCs it is for.
#[derive(Clone, Debug)]
pub struct Credential {
    /// What the entry is called in logs, metrics, `bmc-status` and the
    /// state file: its `name`, else its username (`root#3` for the third
    /// entry when an earlier one has that username too). Never derived
    /// from the password.
    pub name: String,
    pub username: String,
    pub password: Secret,
    /// Only for BMCs of this vendor (`dell`, `hpe`, `lenovo`, `supermicro`,
    /// or any other vendor module name); None = any.
    pub vendor: Option<String>,
    /// Only for BMCs whose MAC starts with one of these OUIs (`aa:bb:cc`).
    pub ouis: Vec<String>,
}

impl Credential {
    /// Whether this entry may be tried on a BMC. An entry bound to a vendor
    /// is tried only when the vendor is known and matches, one bound to
    /// OUIs only when the lease's MAC is known and starts with one: a
    /// device that keeps quiet about itself gets only the unbound entries.
    /// (Before login the vendor is known only if the unauthenticated
    /// service root names it.)
    pub fn applies(&self, vendor: Option<&str>, mac: Option<&str>) -> bool {
        if let Some(want) = self.vendor.as_deref() {
            if !vendor.is_some_and(|got| want.eq_ignore_ascii_case(got)) {
                return false;
            }
        }
        if !self.ouis.is_empty() {
            let Some(mac) = mac.map(str::to_ascii_lowercase) else {
                return false;
            };
            if !self.ouis.iter().any(|o| mac.starts_with(o.as_str())) {
                return false;
            }
        }
        true
    }
}

/// The entries of a credentials file, in file order.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub entries: Vec<Credential>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    username: String,
    password: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    vendor: Option<String>,
    #[serde(default)]
    oui: Vec<String>,
}

impl Credentials {
    /// One credential, e.g. from the command line's environment variables.
    pub fn single(username: &str, password: &str) -> Credentials {
        Credentials {
            entries: vec![Credential {
                name: username.to_string(),
                username: username.to_string(),
                password: Secret::new(password.to_string()),
                vendor: None,
                ouis: Vec::new(),
            }],
        }
    }

    /// Reads a credentials file: a JSON list of
    /// `{"name"?, "username", "password" | "password_file" | "password_env", "vendor"?, "oui"?}`.
    /// Errors name the file and the entry, never a password.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("credentials file {shown}: {e}"))?;
        Credentials::parse(&text).map_err(|e| format!("credentials file {shown}: {e}"))
    }

    /// Parses the file's text (see `load`).
    pub fn parse(text: &str) -> Result<Credentials, String> {
        // serde_json's messages quote the offending token, which could be a
        // password: report only where the problem is.
        let raw: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JSON list of {{\"username\", \"password\"}} entries (line {}, column {}); \
                 allowed keys: name, username, password, password_file, password_env, vendor, oui",
                e.line(),
                e.column()
            )
        })?;
        if raw.is_empty() {
            return Err("has no entries; add at least one {\"username\", \"password\"}".into());
        }
        let mut entries = Vec::with_capacity(raw.len());
        for (i, e) in raw.into_iter().enumerate() {
            let n = i + 1;
            if e.username.trim().is_empty() {
                return Err(format!("entry {n}: 'username' is empty"));
            }
            let sources = [
                e.password.is_some(),
                e.password_file.is_some(),
                e.password_env.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(format!(
                    "entry {n} ({}): give exactly one of 'password', 'password_file', 'password_env'",
                    e.username
                ));
            }
            let password = if let Some(p) = e.password {
                p
            } else if let Some(f) = e.password_file {
                let p = std::fs::read_to_string(&f).map_err(|err| {
                    format!("entry {n} ({}): password_file {f}: {err}", e.username)
                })?;
                p.trim_end_matches(['\r', '\n']).to_string()
            } else {
                let var = e.password_env.unwrap_or_default();
                std::env::var(&var).map_err(|_| {
                    format!(
                        "entry {n} ({}): environment variable {var} is not set",
                        e.username
                    )
                })?
            };
            let mut ouis = Vec::new();
            for o in e.oui {
                ouis.push(normalize_oui(&o).ok_or_else(|| {
                    format!(
                        "entry {n} ({}): oui {o:?} is not three hex octets like \"14:18:77\"",
                        e.username
                    )
                })?);
            }
            let name = entry_name(n, e.name, &e.username, &entries)?;
            entries.push(Credential {
                name,
                username: e.username,
                password: Secret::new(password),
                vendor: e.vendor.map(|v| v.to_ascii_lowercase()),
                ouis,
            });
        }
        Ok(Credentials { entries })
    }
}

/// The name of entry `n` (see `Credential::name`), unique in the file.
fn entry_name(
    n: usize,
    given: Option<String>,
    username: &str,
    earlier: &[Credential],
) -> Result<String, String> {
    let taken = |name: &str| earlier.iter().position(|c| c.name == name);
    let name = match given {
        Some(g) => {
            let g = g.trim().to_string();
            if g.is_empty() || g.chars().count() > 64 || g.chars().any(char::is_control) {
                return Err(format!(
                    "entry {n} ({username}): 'name' must be 1 to 64 printable characters, got {g:?}"
                ));
            }
            g
        }
        None if taken(username).is_none() => username.to_string(),
        None => format!("{username}#{n}"),
    };
    match taken(&name) {
        Some(i) => Err(format!(
            "entry {n} ({username}): name {name:?} is already entry {}'s; give each entry \
             its own 'name'",
            i + 1
        )),
        None => Ok(name),
    }
}

fn normalize_oui(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!("{}:{}:{}", &h[0..2], &h[2..4], &h[4..6]))
}

/// A warning when others than the owner may read the credentials file.
/// Separate from `load`, which Kea runs several times per configuration
/// (validation, then load), so that the warning is logged once.
pub fn permissions_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "credentials file {} has mode {:o}; it holds passwords, make it 0600 (chmod 600 {})",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_never_echoes_a_password() {
        // The secret comes from a file, as in a real deployment.
        let dir = std::env::temp_dir().join(format!("creds-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("root-password");
        std::fs::write(&secret, "calvin\n").unwrap();
        let c = Credentials::parse(&format!(
            r#"[{{"username": "root", "password_file": {:?}, "vendor": "Dell"}},
                {{"username": "ADMIN", "password_env": "PATH", "oui": ["3C-EC-EF"]}}]"#,
            secret.to_str().unwrap()
        ))
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(
            c.entries[0].password.expose(),
            "calvin",
            "first line, newline cut"
        );
        assert_eq!(c.entries[0].vendor.as_deref(), Some("dell"));
        assert_eq!(c.entries[1].ouis, vec!["3c:ec:ef"]);
        assert!(!format!("{c:?}").contains("calvin"));

        let err = Credentials::parse(r#"[{"username": "root", "password": calvin}]"#).unwrap_err();
        assert!(!err.contains("calvin"), "{err}");
        let err = Credentials::parse(r#"[{"username": "root"}]"#).unwrap_err();
        assert!(err.contains("exactly one of"), "{err}");
        let err = Credentials::parse(r#"[{"username": "r", "password": "p", "oui": ["zz"]}]"#)
            .unwrap_err();
        assert!(err.contains("oui \"zz\""), "{err}");
        assert!(Credentials::parse("[]").is_err());
    }

    #[test]
    fn every_entry_has_a_unique_name_that_is_not_its_password() {
        let c = Credentials::parse(
            r#"[{"username": "root", "password": "x"},
                {"username": "root", "password": "y"},
                {"name": "smc-factory", "username": "ADMIN", "password": "x"}]"#,
        )
        .unwrap();
        let names: Vec<&str> = c.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "root#2", "smc-factory"]);
        let err = Credentials::parse(
            r#"[{"username": "root", "password": "a"},
                {"name": "root", "username": "admin", "password": "b"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "entry 2 (admin): name \"root\" is already entry 1's; give each entry its own 'name'"
        );
        let err = Credentials::parse(r#"[{"name": "a\nb", "username": "r", "password": "p"}]"#)
            .unwrap_err();
        assert!(err.contains("'name' must be 1 to 64 printable"), "{err}");
    }

    #[test]
    fn bound_entries_need_the_fact_known_and_matching() {
        let c = Credentials::parse(
            r#"[{"username": "a", "password": "p", "vendor": "dell", "oui": ["14:18:77"]},
                {"username": "b", "password": "p", "vendor": "dell"},
                {"username": "c", "password": "p", "oui": ["14:18:77"]},
                {"username": "d", "password": "p"}]"#,
        )
        .unwrap();
        let [both, vendor, oui, any] = &c.entries[..] else {
            panic!()
        };
        let dell_mac = Some("14:18:77:00:00:01");
        assert!(both.applies(Some("dell"), dell_mac));
        assert!(both.applies(Some("Dell"), Some("14:18:77:AA:00:01")));
        for (v, m) in [(None, None), (None, dell_mac), (Some("dell"), None)] {
            assert!(!both.applies(v, m), "{v:?} {m:?}");
        }
        assert!(!both.applies(Some("hpe"), dell_mac));
        assert!(vendor.applies(Some("dell"), None));
        assert!(!vendor.applies(None, dell_mac), "vendor unknown");
        assert!(oui.applies(None, dell_mac));
        assert!(!oui.applies(Some("dell"), None), "MAC unknown");
        assert!(!oui.applies(None, Some("94:40:c9:00:00:01")));
        assert!(any.applies(None, None));
    }
}
