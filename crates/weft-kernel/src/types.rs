//! Plain value types: MAC addresses, CIDRs, and snapshots of links, addresses and routes.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::Error;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for a group (multicast/broadcast) address, which no interface may use.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid(format!("MAC address {s:?}"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl TryFrom<&[u8]> for MacAddr {
    type Error = Error;
    fn try_from(b: &[u8]) -> Result<Self, Error> {
        <[u8; 6]>::try_from(b)
            .map(MacAddr)
            .map_err(|_| Error::Invalid(format!("MAC address of {} bytes", b.len())))
    }
}

/// An IP address with a prefix length, e.g. `10.32.0.1/12` (the host bits are kept: this is
/// an interface address as much as a network).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Builds a CIDR, checking the prefix length against the address family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, Error> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::Invalid(format!("prefix /{prefix} for {addr}")));
        }
        Ok(Cidr { addr, prefix })
    }
    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
    /// The IPv4 broadcast address for prefixes shorter than /31, as `ip addr add … brd +`.
    pub fn broadcast_v4(&self) -> Option<std::net::Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) if self.prefix < 31 => {
                let host = u32::MAX >> u32::from(self.prefix);
                Some((u32::from(a) | host).into())
            }
            _ => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid(format!("CIDR {s:?}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix)
    }
}

/// What kind of device a link is (from `IFLA_INFO_KIND`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// A TUN or TAP device.
    Tun,
    /// A dummy device.
    Dummy,
    /// Any other kind, by its kernel name.
    Other(String),
    /// No kind reported (physical devices, loopback).
    None,
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKind::Bridge => f.write_str("bridge"),
            LinkKind::Veth => f.write_str("veth"),
            LinkKind::Tun => f.write_str("tun"),
            LinkKind::Dummy => f.write_str("dummy"),
            LinkKind::Other(s) => f.write_str(s),
            LinkKind::None => f.write_str("device without kind"),
        }
    }
}

/// A snapshot of one link as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Device kind.
    pub kind: LinkKind,
    /// Hardware address, if it has one of 6 bytes.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Index of the bridge (or other controller) it is enslaved to.
    pub master: Option<u32>,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

/// One address on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface index.
    pub index: u32,
    /// Address and prefix length.
    pub cidr: Cidr,
}

/// Route scope, as `ip route … scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `global` (the default for gateway routes).
    Universe,
    /// `link`: directly reachable on the device.
    Link,
    /// `host`.
    Host,
}

/// A route in the main table, as weft asks for or reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` for a default route.
    pub dst: Cidr,
    /// Output device name (resolved to an index when sent).
    pub dev: Option<String>,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Scope; when `None`, `Link` without a gateway and `Universe` with one.
    pub scope: Option<Scope>,
    /// Metric (`RTA_PRIORITY`); part of the route's identity.
    pub metric: Option<u32>,
}

impl Route {
    /// A device route: `dst dev DEV scope link`.
    pub fn dev(dst: Cidr, dev: &str) -> Route {
        Route {
            dst,
            dev: Some(dev.to_string()),
            gateway: None,
            src: None,
            scope: Some(Scope::Link),
            metric: None,
        }
    }
    /// Weave's multicast route `224.0.0.0/4 dev DEV scope link`.
    pub fn multicast(dev: &str) -> Route {
        let dst = Cidr {
            addr: IpAddr::V4([224, 0, 0, 0].into()),
            prefix: 4,
        };
        Route::dev(dst, dev)
    }
    /// A gateway route, e.g. a default route: `dst via GW [dev DEV]`.
    pub fn via(dst: Cidr, gateway: IpAddr, dev: Option<&str>) -> Route {
        Route {
            dst,
            dev: dev.map(str::to_string),
            gateway: Some(gateway),
            src: None,
            scope: None,
            metric: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrip() {
        let m: MacAddr = "7a:0b:CD:01:02:ff".parse().unwrap();
        assert_eq!(m.0, [0x7a, 0x0b, 0xcd, 1, 2, 0xff]);
        assert_eq!(m.to_string(), "7a:0b:cd:01:02:ff");
        assert!(!m.is_multicast());
        assert!("01:00:5e:00:00:01"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
        for bad in [
            "",
            "7a:0b:cd:01:02",
            "7a:0b:cd:01:02:03:04",
            "7a:0b:cd:01:02:xyz",
            "7a::cd:01:02:03",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_parse_and_math() {
        let c: Cidr = "10.32.1.7/12".parse().unwrap();
        assert_eq!(c.prefix(), 12);
        assert_eq!(c.network().to_string(), "10.32.0.0");
        assert_eq!(c.broadcast_v4().unwrap().to_string(), "10.47.255.255");
        assert_eq!("10.0.0.1/31".parse::<Cidr>().unwrap().broadcast_v4(), None);
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().network().to_string(),
            "0.0.0.0"
        );
        let v6: Cidr = "fd00::1:2/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "fd00::");
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert_eq!(Route::multicast("ethwe").dst.to_string(), "224.0.0.0/4");
    }
}
