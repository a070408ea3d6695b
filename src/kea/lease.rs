//! One lease as copied out of Kea, with accessors that respect the lengths.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::mac::Mac;

use crate::kea::bindings::{
    bmc_lease_event, BMC_FAMILY_V6, BMC_LEASE_ACTIVE, BMC_LEASE_FORCED, BMC_LEASE_RENEW,
    BMC_LEASE_REPLAY, BMC_LEASE_SELECT,
};

/// A lease event by value: plain bytes, no pointers, no heap. It moves into a
/// preallocated channel slot with one copy.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct LeaseEvent(pub bmc_lease_event);

/// Which Kea callout saw the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// A new allocation (DHCPREQUEST after DHCPDISCOVER; DHCPv6 REQUEST
    /// after SOLICIT, or SOLICIT with rapid commit).
    Select,
    /// A client that already held the lease asked for it again (v6: RENEW,
    /// REBIND, or a REQUEST for an address it holds).
    Renew,
    /// Not from a callout: scheduled from the state store (a retry, or a
    /// lease found by reconciliation); done only if still wanted.
    Replay,
    /// An active lease read from Kea's lease database (reconciliation).
    Active,
    /// Not from a callout: `bmc-discover`, done whatever the BMC's state.
    Forced,
    /// A value the shim should never send; kept rather than trusted.
    Unknown(u8),
}

fn bounded<const N: usize>(buf: &[u8; N], len: u8) -> &[u8] {
    &buf[..(len as usize).min(N)]
}

impl LeaseEvent {
    /// An event with every field empty (tests and tools build on it).
    pub fn empty() -> LeaseEvent {
        // SAFETY: bmc_lease_event is plain integers and byte arrays; all-zero is valid.
        LeaseEvent(unsafe { std::mem::zeroed() })
    }

    /// The hardware address bytes (6 for Ethernet).
    pub fn hwaddr(&self) -> &[u8] {
        bounded(&self.0.hwaddr, self.0.hwaddr_len)
    }

    /// The hardware address; None if the lease has none.
    pub fn mac(&self) -> Option<Mac> {
        Mac::from_octets(self.hwaddr())
    }

    /// Hostname bytes from the lease, option 12 or option 81 (may be empty).
    pub fn hostname(&self) -> &[u8] {
        bounded(&self.0.hostname, self.0.hostname_len)
    }

    /// The hostname as text safe to show and store: what a client sent,
    /// cleaned (`untrusted::clean_bytes`). Allocates, so never on the
    /// packet thread.
    pub fn hostname_text(&self) -> String {
        crate::untrusted::clean_bytes(self.hostname())
    }

    /// Option 60 bytes (may be empty).
    pub fn vendor_class(&self) -> &[u8] {
        bounded(&self.0.vendor_class, self.0.vendor_class_len)
    }

    /// Client identifier bytes (v4: option 61; v6: the DUID; may be empty).
    pub fn client_id(&self) -> &[u8] {
        bounded(&self.0.client_id, self.0.client_id_len)
    }

    /// Whether the lease is a DHCPv6 one (kea-dhcp6).
    pub fn is_v6(&self) -> bool {
        u32::from(self.0.family) == BMC_FAMILY_V6
    }

    /// The leased address, of the family of the daemon that leased it.
    pub fn ip(&self) -> IpAddr {
        if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(self.0.ipv6))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.0.ipv4))
        }
    }

    /// Kea's subnet id of the lease.
    pub fn subnet_id(&self) -> u32 {
        self.0.subnet_id
    }

    /// Which callout produced the event.
    pub fn kind(&self) -> LeaseKind {
        match u32::from(self.0.kind) {
            BMC_LEASE_SELECT => LeaseKind::Select,
            BMC_LEASE_RENEW => LeaseKind::Renew,
            BMC_LEASE_REPLAY => LeaseKind::Replay,
            BMC_LEASE_ACTIVE => LeaseKind::Active,
            BMC_LEASE_FORCED => LeaseKind::Forced,
            _ => LeaseKind::Unknown(self.0.kind),
        }
    }

    /// A replayed lease: `mac` (`aa:bb:..`), address, subnet and hostname
    /// as the state store keeps them. None if the MAC does not parse.
    pub fn replay(mac: &str, ip: IpAddr, subnet_id: u32, hostname: &str) -> Option<LeaseEvent> {
        LeaseEvent::from_store(LeaseKind::Replay, mac, ip, subnet_id, hostname)
    }

    /// Like `replay`, for `bmc-discover`: done whatever the BMC's state.
    pub fn forced(mac: &str, ip: IpAddr, subnet_id: u32, hostname: &str) -> Option<LeaseEvent> {
        LeaseEvent::from_store(LeaseKind::Forced, mac, ip, subnet_id, hostname)
    }

    fn from_store(
        kind: LeaseKind,
        mac: &str,
        ip: IpAddr,
        subnet_id: u32,
        hostname: &str,
    ) -> Option<LeaseEvent> {
        let mut ev = LeaseEvent::empty();
        let mac = Mac::parse(mac).ok()?;
        let bytes = mac.octets();
        if bytes.len() > ev.0.hwaddr.len() {
            return None;
        }
        ev.0.kind = match kind {
            LeaseKind::Forced => BMC_LEASE_FORCED,
            _ => BMC_LEASE_REPLAY,
        } as u8;
        ev.0.htype = 1;
        ev.0.hwaddr[..bytes.len()].copy_from_slice(bytes);
        ev.0.hwaddr_len = bytes.len() as u8;
        match ip {
            IpAddr::V4(v4) => ev.0.ipv4 = u32::from(v4),
            IpAddr::V6(v6) => {
                ev.0.family = BMC_FAMILY_V6 as u8;
                ev.0.ipv6 = v6.octets();
            }
        }
        ev.0.subnet_id = subnet_id;
        let mut end = hostname.len().min(ev.0.hostname.len());
        while !hostname.is_char_boundary(end) {
            end -= 1;
        }
        ev.0.hostname[..end].copy_from_slice(&hostname.as_bytes()[..end]);
        ev.0.hostname_len = end as u8;
        Some(ev)
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`, "" if none (allocates: workers
    /// only).
    pub fn mac_string(&self) -> String {
        self.mac().map_or_else(String::new, |m| m.to_string())
    }

    /// A non-zero key identifying the hardware address, for de-duplication.
    /// Exact for Ethernet; a hash for other lengths. 0 means "no address".
    pub fn hwaddr_key(&self) -> u64 {
        let hw = self.hwaddr();
        if hw.is_empty() {
            return 0;
        }
        if hw.len() <= 6 {
            let mut key = 0u64;
            for b in hw {
                key = (key << 8) | u64::from(*b);
            }
            // The length and a top bit keep 00:00:00:00:00:00 non-zero and
            // short addresses distinct from long ones.
            return key | ((hw.len() as u64) << 48) | (1u64 << 63);
        }
        // FNV-1a: small, allocation-free, good enough to spread keys.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in hw {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h | 1
    }
}

impl fmt::Debug for LeaseEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseEvent")
            .field("kind", &self.kind())
            .field("mac", &self.mac_string())
            .field("ip", &self.ip())
            .field("subnet_id", &self.subnet_id())
            .field("hostname", &String::from_utf8_lossy(self.hostname()))
            .field(
                "vendor_class",
                &String::from_utf8_lossy(self.vendor_class()),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an event the way the shim would.
    pub fn event(mac: &[u8], subnet_id: u32, hostname: &str, vendor: &str) -> LeaseEvent {
        let mut ev = LeaseEvent::empty();
        ev.0.kind = BMC_LEASE_SELECT as u8;
        ev.0.subnet_id = subnet_id;
        ev.0.ipv4 = u32::from(Ipv4Addr::new(127, 1, 0, 10));
        ev.0.hwaddr[..mac.len()].copy_from_slice(mac);
        ev.0.hwaddr_len = mac.len() as u8;
        ev.0.hostname[..hostname.len()].copy_from_slice(hostname.as_bytes());
        ev.0.hostname_len = hostname.len() as u8;
        ev.0.vendor_class[..vendor.len()].copy_from_slice(vendor.as_bytes());
        ev.0.vendor_class_len = vendor.len() as u8;
        ev
    }

    /// `ev` as kea-dhcp6 would send it, leased `addr`.
    pub fn as_v6(mut ev: LeaseEvent, addr: &str) -> LeaseEvent {
        ev.0.family = BMC_FAMILY_V6 as u8;
        ev.0.ipv6 = addr.parse::<Ipv6Addr>().unwrap().octets();
        ev
    }

    #[test]
    fn accessors_respect_lengths() {
        let ev = event(
            &[0x14, 0x18, 0x77, 1, 2, 3],
            7,
            "us3-cab10-ru17-idrac",
            "iDRAC",
        );
        assert_eq!(ev.mac_string(), "14:18:77:01:02:03");
        assert_eq!(ev.hostname(), b"us3-cab10-ru17-idrac");
        assert_eq!(ev.vendor_class(), b"iDRAC");
        assert_eq!(ev.subnet_id(), 7);
        assert_eq!(ev.kind(), LeaseKind::Select);
        assert_eq!(ev.ip(), IpAddr::V4(Ipv4Addr::new(127, 1, 0, 10)));
        assert!(!ev.is_v6());
    }

    #[test]
    fn v6_events_carry_their_address() {
        let ev = as_v6(
            event(&[0x14, 0x18, 0x77, 1, 2, 3], 7, "", ""),
            "2001:db8:1::10",
        );
        let addr: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        assert!(ev.is_v6());
        assert_eq!(ev.ip(), IpAddr::V6(addr));
        assert_eq!(ev.ip().to_string(), "2001:db8:1::10");
        let again = LeaseEvent::replay("14:18:77:01:02:03", ev.ip(), 7, "").unwrap();
        assert_eq!(again.ip(), ev.ip());
        assert!(again.is_v6());
    }

    #[test]
    fn replays_carry_what_the_store_keeps() {
        let ev = LeaseEvent::replay(
            "14:18:77:0a:0b:0c",
            Ipv4Addr::new(10, 0, 5, 17).into(),
            4,
            "us3-cab1-ru2-x",
        )
        .unwrap();
        assert_eq!(ev.kind(), LeaseKind::Replay);
        assert_eq!(ev.mac_string(), "14:18:77:0a:0b:0c");
        assert_eq!(ev.ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 5, 17)));
        assert_eq!((ev.subnet_id(), ev.hostname()), (4, &b"us3-cab1-ru2-x"[..]));
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(LeaseEvent::replay("zz:00", lo, 1, "").is_none());
        assert!(LeaseEvent::replay("", lo, 1, "").is_none());
    }

    #[test]
    fn lengths_beyond_the_buffer_are_clamped() {
        let mut ev = LeaseEvent::empty();
        ev.0.hwaddr_len = 200;
        assert_eq!(ev.hwaddr().len(), 20);
    }

    #[test]
    fn hwaddr_keys_are_distinct_and_non_zero() {
        let a = event(&[0, 0, 0, 0, 0, 0], 1, "", "").hwaddr_key();
        let b = event(&[0, 0, 0, 0, 0, 1], 1, "", "").hwaddr_key();
        let c = event(&[0, 0, 0, 0, 0], 1, "", "").hwaddr_key();
        let long = event(&[9; 20], 1, "", "").hwaddr_key();
        assert!(a != 0 && b != 0 && c != 0 && long != 0);
        assert!(a != b && a != c && b != c);
        assert_eq!(LeaseEvent::empty().hwaddr_key(), 0);
    }
}
