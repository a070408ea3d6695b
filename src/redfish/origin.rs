//! Where requests may go: only to the BMC's own origin (scheme https, the
//! host and port we connected to, no userinfo). Every link a BMC hands us
//! (`@odata.id`s, `Links`, the Sessions link, a session's `Location`, a
//! redirect) is parsed as a URL against the BMC's base and refused unless
//! it stays there, so that no token or password is ever sent elsewhere.
//! Links are never joined as strings: `https://bmc:443` + `@evil:8443/x`
//! is a URL whose host is `evil`.

use url::Url;

use super::values::is_unsafe;

/// The BMC's origin, and the resolution of links against it.
#[derive(Clone, Debug)]
pub struct Origin {
    base: Url,
}

/// A link refused, and why (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub link: String,
    pub why: &'static str,
}

impl Origin {
    /// `host` may be an IPv4/IPv6 address or a name; `port` the HTTPS port.
    pub fn new(host: &str, port: u16) -> Result<Origin, String> {
        let h = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let base = Url::parse(&format!("https://{h}:{port}/"))
            .map_err(|e| format!("BMC address {host:?} port {port} is not a valid host: {e}"))?;
        if base.host_str().is_none() || !base.username().is_empty() || base.password().is_some() {
            return Err(format!("BMC address {host:?} is not a plain host"));
        }
        Ok(Origin { base })
    }

    /// A link found in a BMC's JSON (`@odata.id`, an Action target):
    /// Redfish makes these absolute paths (`/redfish/v1/...`); an absolute
    /// `https://` URL is accepted when it names the BMC itself. Anything
    /// else (relative paths, `//host/...`, `@host/...`, other schemes) is
    /// refused.
    pub fn link(&self, link: &str) -> Result<Url, Refused> {
        let l = link.trim();
        let refuse = |why| {
            Err(Refused {
                link: l.to_string(),
                why,
            })
        };
        if l.contains('\\') || l.chars().any(is_unsafe) {
            return refuse("contains a backslash, control or invisible format character");
        }
        let is_path = l.starts_with('/') && !l.starts_with("//");
        let is_https = l
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        if !is_path && !is_https {
            return refuse("is neither an absolute path nor an https URL of the BMC");
        }
        self.resolve_from(&self.base, l)
    }

    /// A `Location` header (a redirect's or a new session's), resolved
    /// against the URL it answered, as HTTP defines.
    pub fn location(&self, from: &Url, location: &str) -> Result<Url, Refused> {
        let l = location.trim();
        if l.contains('\\') || l.chars().any(is_unsafe) {
            return Err(Refused {
                link: l.to_string(),
                why: "contains a backslash, control or invisible format character",
            });
        }
        self.resolve_from(from, l)
    }

    fn resolve_from(&self, from: &Url, l: &str) -> Result<Url, Refused> {
        let refused = |why| Refused {
            link: l.to_string(),
            why,
        };
        let mut u = from
            .join(l)
            .map_err(|_| refused("is not a valid URL reference"))?;
        u.set_fragment(None);
        if u.scheme() != "https" {
            return Err(refused("leaves https"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(refused("carries userinfo"));
        }
        if u.host() != self.base.host()
            || u.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(refused("points to another host or port"));
        }
        Ok(u)
    }

    /// `path?query` of a resolved URL: what cache keys and messages use.
    pub fn path_of(u: &Url) -> String {
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_on_the_bmc() {
        let o = Origin::new("10.0.0.5", 443).unwrap();
        let ok = |l: &str| o.link(l).map(|u| Origin::path_of(&u));
        assert_eq!(
            ok("/redfish/v1/Systems/1").unwrap(),
            "/redfish/v1/Systems/1"
        );
        assert_eq!(
            ok("/redfish/v1/Systems?$expand=.($levels=1)").unwrap(),
            "/redfish/v1/Systems?$expand=.($levels=1)"
        );
        assert_eq!(
            ok("https://10.0.0.5/redfish/v1/x").unwrap(),
            "/redfish/v1/x"
        );
        assert_eq!(
            ok("https://10.0.0.5:443/redfish/v1/x#frag").unwrap(),
            "/redfish/v1/x"
        );
        for bad in [
            "@127.3.0.1:8443/redfish/v1/Systems/1",
            "//127.3.0.1/redfish/v1",
            "/\\127.3.0.1/redfish/v1",
            "https://127.3.0.1/redfish/v1",
            "https://10.0.0.5:8443/redfish/v1",
            "http://10.0.0.5/redfish/v1",
            "https://user@10.0.0.5/redfish/v1",
            "https://10.0.0.5@127.3.0.1/redfish/v1",
            "redfish/v1/Systems",
            "ftp://10.0.0.5/x",
            "/redfish/v1/\nInjected: x",
            "/redfish/v1/Systems/\u{202e}1",
        ] {
            assert!(ok(bad).is_err(), "{bad:?} accepted as {:?}", ok(bad));
        }
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let o = Origin::new("10.0.0.5", 8443).unwrap();
        let from = o.link("/redfish/v1/Systems/1").unwrap();
        let at = |l: &str| o.location(&from, l).map(|u| Origin::path_of(&u));
        assert_eq!(at("2").unwrap(), "/redfish/v1/Systems/2");
        assert_eq!(at("/redfish/v1/x").unwrap(), "/redfish/v1/x");
        assert_eq!(at("https://10.0.0.5:8443/y").unwrap(), "/y");
        assert!(at("https://10.0.0.5/y").is_err(), "another port");
        assert!(at("http://10.0.0.5:8443/y").is_err(), "downgrade to http");
        assert!(at("//127.3.0.1:8443/y").is_err());
        assert!(at("https://127.3.0.1:8443/y").is_err());
    }

    #[test]
    fn ipv6_bmcs_have_an_origin() {
        let o = Origin::new("fd00::5", 443).unwrap();
        assert!(o.link("/redfish/v1").is_ok());
        assert!(o.link("https://[fd00::5]/redfish/v1").is_ok());
        assert!(o.link("https://[fd00::6]/redfish/v1").is_err());
    }
}
