//! Step 1 of the handshake: the 7-byte protocol header and version
//! negotiation.

use crate::error::ConnectionError;

/// The protocol name that starts every mesh connection.
pub const PROTOCOL_NAME: &[u8; 5] = b"weave";
/// Length of the header: name, min version, max version.
pub const HEADER_LEN: usize = 7;
/// Highest protocol version Weave (and weft) speaks.
pub const PROTOCOL_MAX_VERSION: u8 = 2;
/// Lowest protocol version Weave offers by default (`--min-protocol-version`).
pub const PROTOCOL_MIN_VERSION: u8 = 1;

/// The protocol header: `weave` then the range of versions a peer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolHeader {
    /// Lowest version accepted.
    pub min_version: u8,
    /// Highest version accepted.
    pub max_version: u8,
}

impl ProtocolHeader {
    /// The header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [w, e, a, v, e2] = *PROTOCOL_NAME;
        [w, e, a, v, e2, self.min_version, self.max_version]
    }

    /// Parses a complete header.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<ProtocolHeader, ConnectionError> {
        let [n0, n1, n2, n3, n4, min_version, max_version] = *bytes;
        let name = [n0, n1, n2, n3, n4];
        if &name != PROTOCOL_NAME {
            return Err(ConnectionError::BadProtocolName(name));
        }
        Ok(ProtocolHeader {
            min_version,
            max_version,
        })
    }
}

/// Weave's negotiation: the highest version both ranges contain, or `None`
/// when they do not overlap.
pub fn negotiate_version(ours: ProtocolHeader, theirs: ProtocolHeader) -> Option<u8> {
    let lo = ours.min_version.max(theirs.min_version);
    let hi = ours.max_version.min(theirs.max_version);
    (lo <= hi).then_some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(min_version: u8, max_version: u8) -> ProtocolHeader {
        ProtocolHeader {
            min_version,
            max_version,
        }
    }

    #[test]
    fn vector_a() {
        assert_eq!(h(1, 2).encode(), [0x77, 0x65, 0x61, 0x76, 0x65, 0x01, 0x02]);
        assert_eq!(ProtocolHeader::decode(b"weave\x01\x02").unwrap(), h(1, 2));
    }

    #[test]
    fn negotiation_matrix() {
        // TestProtocolIntro's matrix: 2/2 -> 2, 1/2 -> 1, 2/1 -> 1.
        assert_eq!(negotiate_version(h(1, 2), h(1, 2)), Some(2));
        assert_eq!(negotiate_version(h(1, 2), h(1, 1)), Some(1));
        assert_eq!(negotiate_version(h(1, 1), h(1, 2)), Some(1));
        assert_eq!(negotiate_version(h(2, 2), h(1, 1)), None);
        assert_eq!(negotiate_version(h(1, 2), h(3, 5)), None);
        assert_eq!(negotiate_version(h(1, 2), h(0, 9)), Some(2));
    }

    #[test]
    fn wrong_name() {
        assert_eq!(
            ProtocolHeader::decode(b"GET / \x02"),
            Err(ConnectionError::BadProtocolName(*b"GET /"))
        );
    }
}
