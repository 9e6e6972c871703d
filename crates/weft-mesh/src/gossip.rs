//! Gossip messages as the mesh core sees them, and the topology payload codec.
//!
//! On the wire a gossip message is a TCP message with tag 4 (gossip to neighbours), 5 (unicast)
//! or 6 (broadcast) whose body is a gob envelope; the connection layer (`weft-wire`) encodes
//! and decodes envelopes, the core works with [`GossipMsg`]. The topology channel's payload is
//! a gob stream of `peerSummary`, `[]connectionSummary` pairs (reference §3.3), encoded and
//! decoded here.

use weft_gob::{Decoder, Encoder, GobType, Limits, StructValue, Value};

use crate::topology::{ConnectionSummary, PeerSummary, PeerUpdate};
use crate::PeerName;

/// The channel the mesh itself gossips on.
pub const TOPOLOGY_CHANNEL: &str = "topology";

/// How a gossip message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipKind {
    /// Tag 4: to neighbours; `src` is the immediate sender.
    Gossip,
    /// Tag 5: to one peer, relayed hop by hop unchanged.
    Unicast { dst: PeerName },
    /// Tag 6: along the originator's broadcast tree; `src` is the originator.
    Broadcast,
}

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipMsg {
    pub kind: GossipKind,
    pub channel: String,
    pub src: PeerName,
    pub payload: Vec<u8>,
}

/// A topology payload that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad topology payload: {0}")]
pub struct PayloadError(pub String);

fn peer_summary_type() -> GobType {
    GobType::structure(
        "peerSummary",
        [
            ("NameByte", GobType::Bytes),
            ("NickName", GobType::String),
            ("UID", GobType::Uint),
            ("Version", GobType::Uint),
            ("ShortID", GobType::Uint),
            ("HasShortID", GobType::Bool),
        ],
    )
}

fn connection_summary_type() -> GobType {
    GobType::structure(
        "connectionSummary",
        [
            ("NameByte", GobType::Bytes),
            ("RemoteTCPAddr", GobType::String),
            ("Outbound", GobType::Bool),
            ("Established", GobType::Bool),
        ],
    )
}

/// Encode a topology update as Weave does: one gob stream, a summary and a connection list
/// per peer, definitions before first use.
pub fn encode_topology(update: &[PeerUpdate]) -> Vec<u8> {
    let peer_ty = peer_summary_type();
    let conns_ty = GobType::slice(connection_summary_type());
    let mut enc = Encoder::new();
    for u in update {
        let s = &u.summary;
        let summary = StructValue::new()
            .with("NameByte", Value::Bytes(s.name_byte.clone()))
            .with("NickName", s.nick_name.as_str())
            .with("UID", Value::Uint(s.uid))
            .with("Version", Value::Uint(s.version))
            .with("ShortID", Value::Uint(s.short_id))
            .with("HasShortID", s.has_short_id);
        let conns = Value::Slice(
            u.connections
                .iter()
                .map(|c| {
                    Value::Struct(
                        StructValue::new()
                            .with("NameByte", Value::Bytes(c.name_byte.clone()))
                            .with("RemoteTCPAddr", c.remote_tcp_addr.as_str())
                            .with("Outbound", c.outbound)
                            .with("Established", c.established),
                    )
                })
                .collect(),
        );
        // The values match their types by construction, so encoding cannot fail.
        let _ = enc.encode(&peer_ty, &Value::Struct(summary));
        let _ = enc.encode(&conns_ty, &conns);
    }
    enc.into_bytes()
}

/// Decode a topology payload. Bounded by the gob decoder's limits; fields are matched by
/// name and missing ones take Go's zero values.
pub fn decode_topology(payload: &[u8]) -> Result<Vec<PeerUpdate>, PayloadError> {
    let err = |e: &dyn std::fmt::Display| PayloadError(e.to_string());
    let mut dec = Decoder::with_limits(payload, Limits::default());
    let mut out = Vec::new();
    while let Some(first) = dec.next_value().map_err(|e| err(&e))? {
        let Value::Struct(s) = &first.value else {
            return Err(PayloadError(format!(
                "expected a peerSummary struct, found {}",
                first.value.kind_name()
            )));
        };
        let summary = PeerSummary {
            name_byte: s.get::<Vec<u8>>("NameByte").map_err(|e| err(&e))?,
            nick_name: s.get::<String>("NickName").map_err(|e| err(&e))?,
            uid: s.get::<u64>("UID").map_err(|e| err(&e))?,
            version: s.get::<u64>("Version").map_err(|e| err(&e))?,
            short_id: s.get::<u64>("ShortID").map_err(|e| err(&e))?,
            has_short_id: s.get::<bool>("HasShortID").map_err(|e| err(&e))?,
        };
        let conns = dec
            .next_value()
            .map_err(|e| err(&e))?
            .ok_or_else(|| PayloadError("peerSummary without its connection list".into()))?;
        let Value::Slice(items) = &conns.value else {
            return Err(PayloadError(format!(
                "expected []connectionSummary, found {}",
                conns.value.kind_name()
            )));
        };
        let mut connections = Vec::with_capacity(items.len());
        for item in items {
            let Value::Struct(c) = item else {
                return Err(PayloadError(
                    "connection list element is not a struct".into(),
                ));
            };
            connections.push(ConnectionSummary {
                name_byte: c.get::<Vec<u8>>("NameByte").map_err(|e| err(&e))?,
                remote_tcp_addr: c.get::<String>("RemoteTCPAddr").map_err(|e| err(&e))?,
                outbound: c.get::<bool>("Outbound").map_err(|e| err(&e))?,
                established: c.get::<bool>("Established").map_err(|e| err(&e))?,
            });
        }
        out.push(PeerUpdate {
            summary,
            connections,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Appendix A, vector D.
    const VECTOR_D: &str = "62ff830301010b7065657253756d6d61727901ff8400010601084e616d6542797465010a0001084e69636b4e616d6501
0c000103554944010600010756657273696f6e010600010753686f72744944010600010a48617353686f727449440102
00000024ff840106123456789abc0105686f73743101f80102030405060708010301fe01230101000dff87020102ff88
0001ff8600005bff8503010111636f6e6e656374696f6e53756d6d61727901ff8600010401084e616d6542797465010a
00010d52656d6f746554435041646472010c0001084f7574626f756e64010200010b45737461626c6973686564010200
000020ff8800010106deadbeef0001010d31302e302e302e323a3637383301010101001cff840106deadbeef00010105
686f737432012a010101fe04560101001fff8800010106123456789abc010e31302e302e302e313a3433323130020100";

    #[test]
    fn decodes_vector_d() {
        let updates = decode_topology(&hex(VECTOR_D)).unwrap();
        assert_eq!(updates.len(), 2);
        let p1 = &updates[0];
        assert_eq!(p1.summary.name().unwrap().to_string(), "12:34:56:78:9a:bc");
        assert_eq!(p1.summary.nick_name, "host1");
        assert_eq!(p1.summary.uid, 0x0102030405060708);
        assert_eq!((p1.summary.version, p1.summary.short_id), (3, 0x123));
        assert!(p1.summary.has_short_id);
        assert_eq!(p1.connections.len(), 1);
        assert_eq!(p1.connections[0].remote_tcp_addr, "10.0.0.2:6783");
        assert!(p1.connections[0].outbound && p1.connections[0].established);
        let p2 = &updates[1];
        assert_eq!((p2.summary.uid, p2.summary.short_id), (42, 0x456));
        assert_eq!(p2.connections[0].remote_tcp_addr, "10.0.0.1:43210");
        assert!(!p2.connections[0].outbound && p2.connections[0].established);
        // Our encoding decodes to the same update.
        assert_eq!(
            decode_topology(&encode_topology(&updates)).unwrap(),
            updates
        );
    }

    #[test]
    fn hostile_payloads_are_errors() {
        for bad in [&b"\x03\x06\x00\x01"[..], b"\xff\xff\xff", b""] {
            let r = decode_topology(bad);
            assert!(r.is_err() || r.unwrap().is_empty());
        }
    }
}
