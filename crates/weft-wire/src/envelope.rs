//! Gossip envelopes (§3.1): the gob streams carried by tags 4, 5 and 6.
//!
//! * Tag 4 (Gossip) and tag 6 (GossipBroadcast): `channel: string`,
//!   `src: uint` (a peer name), `payload: []byte` ([`GossipEnvelope`]).
//! * Tag 5 (GossipUnicast): `channel`, `src`, `dst: uint`, `payload`
//!   ([`UnicastEnvelope`]).
//!
//! Each envelope is a self-contained gob stream of basic-typed top-level
//! values, so its encoding is canonical: Go and weft produce the same bytes.
//! Like Go's decoder, decoding reads exactly the values it needs and does not
//! look at anything after them.

use weft_gob::{Decoder, Encoder};
use weft_mesh::PeerName;

use crate::error::EnvelopeError;

/// Envelope of a tag-4 Gossip or tag-6 GossipBroadcast message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipEnvelope {
    /// Gossip channel (`topology`, `IPallocation`, `nameserver`, ...).
    pub channel: String,
    /// Tag 4: the immediate sender. Tag 6: the originator.
    pub src: PeerName,
    /// The channel's payload (opaque here).
    pub payload: Vec<u8>,
}

/// Envelope of a tag-6 GossipBroadcast message (same shape as tag 4).
pub type BroadcastEnvelope = GossipEnvelope;

/// Envelope of a tag-5 GossipUnicast message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicastEnvelope {
    /// Gossip channel.
    pub channel: String,
    /// Originator.
    pub src: PeerName,
    /// Final destination.
    pub dst: PeerName,
    /// The channel's payload (opaque here).
    pub payload: Vec<u8>,
}

fn name(v: u64) -> Result<PeerName, EnvelopeError> {
    PeerName::from_u64(v).ok_or(EnvelopeError::NameOutOfRange(v))
}

impl GossipEnvelope {
    /// The gob stream (the message payload after the tag byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        enc.encode_string(&self.channel);
        enc.encode_uint(self.src.as_u64());
        enc.encode_bytes(&self.payload);
        enc.into_bytes()
    }

    /// Decodes a tag-4 or tag-6 payload.
    pub fn decode(bytes: &[u8]) -> Result<GossipEnvelope, EnvelopeError> {
        let mut dec = Decoder::new(bytes);
        let channel = dec.expect_string()?;
        let src = name(dec.expect_uint()?)?;
        let payload = dec.expect_bytes()?;
        Ok(GossipEnvelope {
            channel,
            src,
            payload,
        })
    }
}

impl UnicastEnvelope {
    /// The gob stream (the message payload after the tag byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        enc.encode_string(&self.channel);
        enc.encode_uint(self.src.as_u64());
        enc.encode_uint(self.dst.as_u64());
        enc.encode_bytes(&self.payload);
        enc.into_bytes()
    }

    /// Decodes a tag-5 payload.
    pub fn decode(bytes: &[u8]) -> Result<UnicastEnvelope, EnvelopeError> {
        let mut dec = Decoder::new(bytes);
        let channel = dec.expect_string()?;
        let src = name(dec.expect_uint()?)?;
        let dst = name(dec.expect_uint()?)?;
        let payload = dec.expect_bytes()?;
        Ok(UnicastEnvelope {
            channel,
            src,
            dst,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_name() -> impl Strategy<Value = PeerName> {
        (0..=PeerName::MAX).prop_map(|v| PeerName::from_u64(v).unwrap())
    }

    proptest! {
        #[test]
        fn gossip_round_trip(channel in ".{0,40}", src in arb_name(),
                             payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let e = GossipEnvelope { channel, src, payload };
            prop_assert_eq!(GossipEnvelope::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn unicast_round_trip(channel in "[a-zA-Z]{0,20}", src in arb_name(), dst in arb_name(),
                              payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let e = UnicastEnvelope { channel, src, dst, payload };
            prop_assert_eq!(UnicastEnvelope::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = GossipEnvelope::decode(&bytes);
            let _ = UnicastEnvelope::decode(&bytes);
        }
    }

    #[test]
    fn truncations_are_errors() {
        let e = UnicastEnvelope {
            channel: "IPallocation".into(),
            src: PeerName::from_u64(1).unwrap(),
            dst: PeerName::from_u64(2).unwrap(),
            payload: vec![0xbb; 10],
        }
        .encode();
        for n in 0..e.len() {
            assert!(UnicastEnvelope::decode(&e[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn name_out_of_range() {
        let mut enc = Encoder::new();
        enc.encode_string("topology");
        enc.encode_uint(1 << 48);
        enc.encode_bytes(b"");
        assert_eq!(
            GossipEnvelope::decode(&enc.into_bytes()),
            Err(EnvelopeError::NameOutOfRange(1 << 48))
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        let mut enc = Encoder::new();
        enc.encode_uint(5);
        assert!(matches!(
            GossipEnvelope::decode(&enc.into_bytes()),
            Err(EnvelopeError::Gob(_))
        ));
    }
}
