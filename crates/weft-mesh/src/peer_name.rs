//! Peer names: the 48-bit identity of a weft or Weave Net router.
//!
//! On the wire and in every user-facing place a name looks like a MAC address
//! (`12:34:56:78:9a:bc`, lower-case hex). Input is accepted in the forms Weave accepts: any case,
//! one- or two-digit octets, and at most one `::` that stands for one or more zero octets, at the
//! start, the end or between octets (`::1` is `00:00:00:00:00:01`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A 48-bit peer name, held in the low 48 bits of a `u64` (as Weave's "mac" flavour does).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerName(u64);

/// Why a string is not a peer name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerNameError {
    #[error("peer name {0:?}: expected six hex octets like 12:34:56:78:9a:bc")]
    Malformed(String),
}

/// The prefix Weave hashes in front of a system identifier to derive a peer name.
const SYSTEM_NAME_SALT: &[u8] = b"9oBJ0Jmip-";

impl PeerName {
    /// The largest value a 48-bit name can hold.
    pub const MAX: u64 = (1 << 48) - 1;

    /// A name from its 48-bit value; `None` if the value has bits above bit 47.
    pub fn from_u64(value: u64) -> Option<Self> {
        (value <= Self::MAX).then_some(PeerName(value))
    }

    /// The name as a number (what gob carries as `uint`).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The name from its six raw bytes (topology `NameByte`, sleeve headers).
    pub fn from_bytes(bytes: [u8; 6]) -> Self {
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(&bytes);
        PeerName(u64::from_be_bytes(wide))
    }

    /// The six raw bytes of the name, most significant first.
    pub fn to_bytes(self) -> [u8; 6] {
        let wide = self.0.to_be_bytes();
        let mut out = [0u8; 6];
        out.copy_from_slice(&wide[2..]);
        out
    }

    /// The name Weave derives from a system identifier (machine-id and friends): the first six
    /// bytes of SHA-256(salt ‖ id), made a unicast, locally administered MAC.
    pub fn from_system_id(id: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(SYSTEM_NAME_SALT)
            .chain_update(id)
            .finalize();
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(&digest[..6]);
        Self::from_bytes(Self::as_local_unicast(bytes))
    }

    /// A name from six random bytes, made a unicast, locally administered MAC.
    pub fn from_random(bytes: [u8; 6]) -> Self {
        Self::from_bytes(Self::as_local_unicast(bytes))
    }

    fn as_local_unicast(mut bytes: [u8; 6]) -> [u8; 6] {
        bytes[0] = (bytes[0] & !0x01) | 0x02;
        bytes
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerName({self})")
    }
}

impl FromStr for PeerName {
    type Err = PeerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PeerNameError::Malformed(s.to_owned());
        let octets = |part: &str| -> Result<Vec<u8>, PeerNameError> {
            if part.is_empty() {
                return Ok(Vec::new());
            }
            part.split(':')
                .map(|o| {
                    if o.is_empty() || o.len() > 2 || !o.bytes().all(|c| c.is_ascii_hexdigit()) {
                        Err(bad())
                    } else {
                        u8::from_str_radix(o, 16).map_err(|_| bad())
                    }
                })
                .collect()
        };
        let bytes: Vec<u8> = match s.split_once("::") {
            None => octets(s)?,
            Some((left, right)) => {
                if right.contains("::") || (left.is_empty() && right.is_empty()) {
                    return Err(bad());
                }
                let (l, r) = (octets(left)?, octets(right)?);
                if l.len() + r.len() >= 6 {
                    return Err(bad());
                }
                let mut all = l;
                all.resize(6 - r.len(), 0);
                all.extend(r);
                all
            }
        };
        let bytes: [u8; 6] = bytes.try_into().map_err(|_| bad())?;
        Ok(PeerName::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<String, PeerNameError> {
        s.parse::<PeerName>().map(|n| n.to_string())
    }

    #[test]
    fn accepts_weave_forms() {
        assert_eq!(p("12:34:56:78:9a:bc").unwrap(), "12:34:56:78:9a:bc");
        assert_eq!(p("12:34:56:78:9A:BC").unwrap(), "12:34:56:78:9a:bc");
        assert_eq!(p("1:2:3:4:5:6").unwrap(), "01:02:03:04:05:06");
        assert_eq!(p("::1").unwrap(), "00:00:00:00:00:01");
        assert_eq!(p("1::").unwrap(), "01:00:00:00:00:00");
        assert_eq!(p("1::2").unwrap(), "01:00:00:00:00:02");
        assert_eq!(p("1:2:3:4::6").unwrap(), "01:02:03:04:00:06");
        assert_eq!(p("::2:3:4:5:6").unwrap(), "00:02:03:04:05:06");
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "::",
            "1:2:3:4:5",
            "1:2:3:4:5:6:7",
            "1:2:3::4:5:6",
            "1::2::3",
            "123:4:5:6:7:8",
            "1:2:3:4:5:6 ",
            "1:2:3:4:5:g",
            ":1:2:3:4:5:6",
            "1:2:3:4:5:6:",
            ":::1",
            "+1:2:3:4:5:6",
        ] {
            assert!(p(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn system_id_names_are_local_unicast() {
        let n = PeerName::from_system_id(b"3d1219c7c4c5404aaa1f6d2a48adfda4");
        let b = n.to_bytes();
        assert_eq!(b[0] & 0x01, 0);
        assert_eq!(b[0] & 0x02, 0x02);
        assert_eq!(
            n,
            PeerName::from_system_id(b"3d1219c7c4c5404aaa1f6d2a48adfda4")
        );
        assert_ne!(n, PeerName::from_system_id(b"another id"));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(v in 0u64..=PeerName::MAX) {
            let n = PeerName::from_u64(v).unwrap();
            prop_assert_eq!(n.to_string().parse::<PeerName>().unwrap(), n);
            prop_assert_eq!(PeerName::from_bytes(n.to_bytes()), n);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<PeerName>();
        }
    }
}
