//! Hardware addresses as the hook reads and prints them: `14:18:77:0a:0b:0c`
//! (lower case, two hex digits per octet, colons). Parsed and printed here
//! only, for the lease events, the state file, the commands and the
//! `mac-ouis` parameter.

use std::fmt;

/// The longest hardware address Kea hands over (`BMC_HWADDR_MAX`).
pub const MAX_LEN: usize = 20;

/// A hardware address of 1 to [`MAX_LEN`] octets (6 for Ethernet). Copy,
/// no heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac {
    len: u8,
    octets: [u8; MAX_LEN],
}

/// Why a text is not a MAC (or an OUI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacError;

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a hardware address like 14:18:77:0a:0b:0c")
    }
}

impl std::error::Error for MacError {}

impl Mac {
    /// The address made of `octets`; None if empty or longer than [`MAX_LEN`].
    pub fn from_octets(octets: &[u8]) -> Option<Mac> {
        if octets.is_empty() || octets.len() > MAX_LEN {
            return None;
        }
        let mut mac = Mac {
            len: octets.len() as u8,
            octets: [0; MAX_LEN],
        };
        mac.octets[..octets.len()].copy_from_slice(octets);
        Some(mac)
    }

    /// Parses `aa:bb:..`: two hex digits per octet (either case), 1 to
    /// [`MAX_LEN`] octets.
    pub fn parse(text: &str) -> Result<Mac, MacError> {
        let mut octets = [0u8; MAX_LEN];
        let mut len = 0;
        for part in text.split(':') {
            if len == MAX_LEN {
                return Err(MacError);
            }
            octets[len] = octet(part).ok_or(MacError)?;
            len += 1;
        }
        Mac::from_octets(&octets[..len]).ok_or(MacError)
    }

    /// The octets.
    pub fn octets(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }

    /// Whether this is an Ethernet address (six octets).
    pub fn is_ethernet(&self) -> bool {
        self.len == 6
    }
}

/// Two hex digits.
fn octet(text: &str) -> Option<u8> {
    let b = text.as_bytes();
    if b.len() != 2 || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.octets().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// Parses an OUI, the first three octets of a MAC: `14:18:77`, `14-18-77`
/// or `141877`.
pub fn parse_oui(text: &str) -> Result<[u8; 3], MacError> {
    let hex: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    if hex.len() != 6 || !hex.is_ascii() {
        return Err(MacError);
    }
    let mut out = [0u8; 3];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = octet(&hex[2 * i..2 * i + 2]).ok_or(MacError)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lower_case() {
        let m = Mac::parse("14:18:77:0A:0b:0c").unwrap();
        assert_eq!(m.to_string(), "14:18:77:0a:0b:0c");
        assert!(m.is_ethernet());
        assert_eq!(m.octets(), [0x14, 0x18, 0x77, 0x0a, 0x0b, 0x0c]);
        let long = Mac::parse(&["09"; 20].join(":")).unwrap();
        assert_eq!(long.octets().len(), 20);
        assert!(!long.is_ethernet());
        for bad in [
            "",
            "zz:00",
            "1:2:3:4:5:6",
            "+1:02:03:04:05:06",
            "14:18:77:0a:0b:",
            &["09"; 21].join(":"),
        ] {
            assert_eq!(Mac::parse(bad), Err(MacError), "{bad:?}");
        }
        assert_eq!(Mac::from_octets(&[]), None);
    }

    #[test]
    fn ouis_take_colons_dashes_or_nothing() {
        for s in ["14:18:77", "14-18-77", "141877", "14:18-77"] {
            assert_eq!(parse_oui(s), Ok([0x14, 0x18, 0x77]), "{s}");
        }
        for s in ["14:18", "14:18:77:00", "zz:18:77", "+4:18:77", "é4:18:7"] {
            assert_eq!(parse_oui(s), Err(MacError), "{s}");
        }
    }
}
