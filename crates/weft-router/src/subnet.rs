//! IPv4 CIDR subnets, for `--trusted-subnets`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected a.b.c.d/n with n from 0 to 32")]
pub struct SubnetError(pub String);

impl Subnet {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => u32::from(v4) & self.mask() == u32::from(self.addr) & self.mask(),
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
        }
    }

    /// Parse Weave's comma-separated list (empty string: none).
    pub fn parse_list(text: &str) -> Result<Vec<Subnet>, SubnetError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, SubnetError> {
        let bad = || SubnetError(s.to_owned());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Subnet { addr, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Weave prints the network (host bits cleared), as Go's IPNet does.
        let net = Ipv4Addr::from(u32::from(self.addr) & self.mask());
        write!(f, "{net}/{}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let l = Subnet::parse_list("198.18.0.0/24, 10.0.0.1/8").unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].contains("198.18.0.9".parse().unwrap()));
        assert!(!l[0].contains("198.18.1.9".parse().unwrap()));
        assert_eq!(l[1].to_string(), "10.0.0.0/8");
        assert!(Subnet::parse_list("").unwrap().is_empty());
        for bad in ["1.2.3.4", "1.2.3.4/33", "x/8", "1.2.3/8"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        assert!("0.0.0.0/0"
            .parse::<Subnet>()
            .unwrap()
            .contains("9.9.9.9".parse().unwrap()));
    }
}
