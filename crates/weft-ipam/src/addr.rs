//! IPv4 addresses, ranges and CIDRs as Weave's IPAM handles them (`net/address`).
//!
//! Addresses are `u32`. A [`Range`] is `[start, end)` held in `u64` so that a range may end at
//! 2^32 without wrapping; the ring and the space work on these.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::IpamError;

/// Weave's `MinSubnetSize`: the network and broadcast addresses are excluded, so 2 is too small.
pub const MIN_SUBNET_SIZE: u64 = 4;

/// Dotted-quad text of an address.
pub fn fmt_addr(a: u32) -> String {
    Ipv4Addr::from(a).to_string()
}

/// `[start, end)`, `start <= end <= 2^32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn new(start: u64, end: u64) -> Self {
        Range { start, end }
    }

    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn contains(&self, a: u64) -> bool {
        self.start <= a && a < self.end
    }

    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }

    /// The intersection, or `None` if empty.
    pub fn intersect(&self, o: &Range) -> Option<Range> {
        let r = Range::new(self.start.max(o.start), self.end.min(o.end));
        (!r.is_empty()).then_some(r)
    }

    /// The biggest CIDR-aligned block inside this range (Weave's `BiggestCIDRRange`); the
    /// lowest one when several have that size. Empty range → empty result.
    pub fn biggest_cidr(&self) -> Range {
        let mut best = Range::new(self.start, self.start);
        let mut a = self.start;
        while a < self.end {
            // Largest power of two aligned at `a` that fits before `end`.
            let align = if a == 0 {
                1u64 << 32
            } else {
                1u64 << a.trailing_zeros().min(32)
            };
            let mut size = align;
            while a + size > self.end {
                size >>= 1;
            }
            if size > best.size() {
                best = Range::new(a, a + size);
            }
            a += size;
        }
        best
    }

    /// Text as Weave's `AsCIDRString`: a CIDR when the range is one, else `first-last`.
    pub fn as_cidr_string(&self) -> String {
        let size = self.size();
        if size.is_power_of_two() && self.start.is_multiple_of(size) && size <= 1 << 32 {
            let prefix = 32 - size.trailing_zeros() as u8;
            return Cidr {
                addr: self.start as u32,
                prefix,
            }
            .to_string();
        }
        self.to_string()
    }

    /// The wire form (`end` of 2^32 wraps to 0, as a Go `uint32` would).
    pub fn to_wire(self) -> crate::wire::Range {
        crate::wire::Range {
            start: self.start as u32,
            end: self.end as u32,
        }
    }

    /// From the wire; an `end` of 0 means 2^32. `None` if empty.
    pub fn from_wire(r: crate::wire::Range) -> Option<Range> {
        let end = if r.end == 0 {
            1u64 << 32
        } else {
            u64::from(r.end)
        };
        let range = Range::new(u64::from(r.start), end);
        (!range.is_empty()).then_some(range)
    }
}

impl fmt::Display for Range {
    /// `first-last` (inclusive), as Weave logs ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.end.saturating_sub(1).max(self.start) as u32;
        write!(f, "{}-{}", fmt_addr(self.start as u32), fmt_addr(last))
    }
}

/// An address with a prefix length (`a.b.c.d/n`); not necessarily canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: u32,
    pub prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct CidrParseError(pub String);

impl Cidr {
    pub fn new(addr: u32, prefix: u8) -> Self {
        Cidr {
            addr,
            prefix: prefix.min(32),
        }
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix.min(32)))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> u32 {
        self.addr & self.mask()
    }

    /// Number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix.min(32)))
    }

    /// The whole network as a range.
    pub fn range(&self) -> Range {
        let n = u64::from(self.network());
        Range::new(n, n + self.size())
    }

    /// The addresses containers may get: network and broadcast excluded for networks of 4
    /// addresses or more (Weave's `HostRange`).
    pub fn host_range(&self) -> Range {
        let r = self.range();
        if self.size() >= MIN_SUBNET_SIZE {
            Range::new(r.start + 1, r.end - 1)
        } else {
            r
        }
    }

    /// True if no host bits are set.
    pub fn is_canonical(&self) -> bool {
        self.addr == self.network()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", fmt_addr(self.addr), self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrParseError(s.to_owned());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr {
            addr: u32::from(addr),
            prefix,
        })
    }
}

/// Weave's `ParseCIDRSubnet`: a CIDR with no host bits and at least 4 addresses, with Weave's
/// error texts.
pub fn parse_subnet(s: &str) -> Result<Cidr, IpamError> {
    let cidr: Cidr = s
        .parse()
        .map_err(|e: CidrParseError| IpamError::InvalidCidr(e.0))?;
    check_subnet(cidr)?;
    Ok(cidr)
}

/// The checks of [`parse_subnet`] on a parsed CIDR.
pub fn check_subnet(cidr: Cidr) -> Result<(), IpamError> {
    if cidr.size() < MIN_SUBNET_SIZE {
        return Err(IpamError::SubnetTooSmall(cidr.to_string()));
    }
    if !cidr.is_canonical() {
        return Err(IpamError::SubnetHostBits(cidr.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_ranges() {
        let c: Cidr = "10.32.0.0/12".parse().unwrap();
        assert_eq!(c.to_string(), "10.32.0.0/12");
        assert_eq!(c.size(), 1 << 20);
        assert!(c.is_canonical());
        assert_eq!(c.range(), Range::new(0x0a20_0000, 0x0a30_0000));
        assert_eq!(c.host_range(), Range::new(0x0a20_0001, 0x0a2f_ffff));
        let h: Cidr = "10.40.0.1/24".parse().unwrap();
        assert!(!h.is_canonical());
        assert_eq!(h.network(), 0x0a28_0000);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/+8",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.range(), Range::new(0, 1 << 32));
    }

    #[test]
    fn subnet_errors_are_weaves() {
        assert_eq!(
            parse_subnet("10.40.0.1/24").unwrap_err().to_string(),
            "invalid subnet - bits after network prefix are not all zero: 10.40.0.1/24"
        );
        assert_eq!(
            parse_subnet("10.40.0.0/31").unwrap_err().to_string(),
            "invalid subnet - smaller than minimum size 4: 10.40.0.0/31"
        );
        assert!(parse_subnet("10.40.0.0/30").is_ok());
    }

    #[test]
    fn biggest_cidr_block() {
        let r = Range::new(0x0a20_0000, 0x0a30_0000);
        assert_eq!(r.biggest_cidr(), r);
        // 10.32.0.3 .. 10.32.0.20: biggest aligned block is 10.32.0.8/29 (8)
        let r = Range::new(0x0a20_0003, 0x0a20_0014);
        assert_eq!(r.biggest_cidr(), Range::new(0x0a20_0008, 0x0a20_0010));
        assert_eq!(Range::new(5, 6).biggest_cidr(), Range::new(5, 6));
        assert_eq!(Range::new(0, 1 << 32).biggest_cidr().size(), 1 << 32);
    }

    #[test]
    fn range_text() {
        let r = Range::new(0x0a20_0064, 0x0a20_0065);
        assert_eq!(r.to_string(), "10.32.0.100-10.32.0.100");
        assert_eq!(
            Range::new(0x0a20_0000, 0x0a30_0000).as_cidr_string(),
            "10.32.0.0/12"
        );
    }
}
