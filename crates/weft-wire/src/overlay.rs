//! Tag-7 overlay control messages (`index ‖ inner tag ‖ data`, §2.7).

/// A control message between two overlay sub-forwarders (the overlay switch).
///
/// Sleeve inner tags: 1 ConnectionEstablished, 2 FragmentationReceived,
/// 3 PMTUVerified (u16 BE). Fastdp: 0 HeartbeatAck, 1 CryptoInitSARemote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayControlMsg {
    /// Index of the overlay in the connection's negotiated overlay list.
    pub index: u8,
    /// The overlay's own message tag.
    pub tag: u8,
    /// The overlay's data.
    pub data: Vec<u8>,
}

/// Sleeve inner tag: heartbeat acknowledged, connection established.
pub const SLEEVE_CONNECTION_ESTABLISHED: u8 = 1;
/// Sleeve inner tag: fragmentation test received.
pub const SLEEVE_FRAGMENTATION_RECEIVED: u8 = 2;
/// Sleeve inner tag: PMTU verified (data: u16 BE MTU).
pub const SLEEVE_PMTU_VERIFIED: u8 = 3;

impl OverlayControlMsg {
    /// Parses a tag-7 payload. `None` if it is shorter than 2 bytes (a Weave
    /// receiver would crash on such a message).
    pub fn decode(payload: &[u8]) -> Option<OverlayControlMsg> {
        match payload {
            [index, tag, data @ ..] => Some(OverlayControlMsg {
                index: *index,
                tag: *tag,
                data: data.to_vec(),
            }),
            _ => None,
        }
    }

    /// The tag-7 payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.data.len());
        out.push(self.index);
        out.push(self.tag);
        out.extend_from_slice(&self.data);
        out
    }

    /// The MTU of a sleeve PMTUVerified message.
    pub fn pmtu(&self) -> Option<u16> {
        match (self.tag, self.data.as_slice()) {
            (SLEEVE_PMTU_VERIFIED, [hi, lo]) => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short() {
        let m = OverlayControlMsg::decode(&[0, 3, 0x05, 0x9e]).unwrap();
        assert_eq!(m.pmtu(), Some(1438));
        assert_eq!(m.encode(), [0, 3, 0x05, 0x9e]);
        assert_eq!(OverlayControlMsg::decode(&[0]), None);
        assert_eq!(OverlayControlMsg::decode(&[]), None);
        let e = OverlayControlMsg::decode(&[0, 1]).unwrap();
        assert!(e.data.is_empty() && e.pmtu().is_none());
    }
}
