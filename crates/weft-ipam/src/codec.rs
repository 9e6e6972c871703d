//! Go gob bytes of the `IPallocation` channel (reference weave-protocol.md §3.1, §2.4).
//!
//! **Encoding** writes exactly what a Weave 2.8.1 process writes: the same type definitions
//! (names, field names, field order), in the same order, with the same ids, then the value with
//! gob's zero-field omission. Go numbers types from a per-process registry; a running weaver has
//! `Ring` (65–68) registered before `gossipState` (78–85) and `Range` (86): that is
//! [`TypeIds::WEAVE`], which [`encode_gossip`] and [`encode_unicast`] use. A gob receiver
//! follows the definitions in the stream, so the ids only matter for byte equality.
//!
//! Go's shape, details that matter on the wire:
//! * `Paxos` is a map: a nil map is omitted, an empty (non-nil) map is sent with 0 entries
//!   (`GossipState::paxos`: `None` vs `Some(empty)`). `Ring` is a pointer: omitted when nil.
//! * Struct-typed fields (`Promise`, `Accepted`, `AcceptedVal`, `Origin`, `Proposer`) are always
//!   sent, even when zero; integer fields and empty slices/maps inside them are omitted.
//! * Map keys and elements, and slice elements, of unnamed types travel with an empty type name
//!   (`NodeID`, `NodeClaims`, `entry`); field types that are unnamed carry their Go spelling
//!   (`map[mesh.PeerName]string`, `[]mesh.PeerName`). `weft_gob::GobType` has no names for
//!   slices and maps, so the definitions are written here, with `weft_gob::wire`'s primitives,
//!   like `weft-mesh` does for the topology payload.
//! * Go writes map entries in random order; we write them in key order.
//!
//! **Decoding** uses `weft_gob::Decoder` (total, bounded) and then checks the shape: fields are
//! matched by name as Go does (unknown fields ignored, missing ones zero), a known field of the
//! wrong kind is an error, 32-bit fields must fit, peer names must fit in 48 bits, and the sizes
//! are capped ([`MAX_ENTRIES`], [`MAX_PAXOS_NODES`], [`MAX_NICKNAMES`], [`MAX_NICKNAME_LEN`],
//! [`MAX_PEER_LIST`]). Meaning (sorted tokens, ranges, free counts) is the ring's to check.
//! Like Go's single `Decode` call, bytes after the first value are not examined.

use std::collections::BTreeMap;

use weft_gob::wire::{
    put_bytes, put_int, put_map_type, put_slice_type, put_struct_type, put_type_definition,
    put_uint, StructFields,
};
use weft_gob::{DecodeError, Decoder, Limits, StructValue, Utf8Policy, Value};
use weft_mesh::PeerName;

use crate::wire::{
    AcceptedValue, EntryWire, GossipState, NodeClaims, NodeId, ProposalId, Range, RingWire, Unicast,
};

/// Most ring entries accepted in one message.
pub const MAX_ENTRIES: usize = 65_536;
/// Most Paxos nodes accepted in one message.
pub const MAX_PAXOS_NODES: usize = 4096;
/// Most nicknames accepted in one message.
pub const MAX_NICKNAMES: usize = 4096;
/// Longest nickname accepted, in bytes.
pub const MAX_NICKNAME_LEN: usize = 255;
/// Most peer names in `Ring.Seeds` or a Paxos `AcceptedVal.Value`.
pub const MAX_PEER_LIST: usize = 4096;

/// Unicast type bytes (Weave's `msgSpaceRequest`, `msgRingUpdate`, `msgSpaceRequestDenied`).
const MSG_SPACE_REQUEST: u8 = 0;
const MSG_RING_UPDATE: u8 = 1;
const MSG_SPACE_REQUEST_DENIED: u8 = 2;

/// gob's predefined ids.
const INT: i64 = 2;
const UINT: i64 = 3;
const STRING: i64 = 6;

/// Why IPAM bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a gob stream we can read.
    #[error("IPAM message is not valid gob: {0}")]
    Gob(#[from] DecodeError),
    /// A value has another kind than Weave's type.
    #[error("IPAM message: {what} should be {expected}, but the sender sent {found}")]
    Shape {
        what: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A list or map is larger than we accept.
    #[error("IPAM message: {what} has {count} items, more than the {limit} accepted")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    /// A nickname is longer than [`MAX_NICKNAME_LEN`].
    #[error("IPAM message: the nickname of {peer} is {len} bytes long, more than the {MAX_NICKNAME_LEN} accepted")]
    NicknameTooLong { peer: PeerName, len: usize },
    /// A peer name does not fit in 48 bits.
    #[error("IPAM message: {what} {value:#x} is not a peer name (more than 48 bits)")]
    BadPeerName { what: &'static str, value: u64 },
    /// A 32-bit field holds a larger number.
    #[error("IPAM message: {what} = {value} does not fit in 32 bits")]
    OutOfRange { what: &'static str, value: u64 },
    /// A unicast payload without its type byte.
    #[error("IPAM unicast message is empty: it should start with a type byte (0, 1 or 2)")]
    EmptyUnicast,
    /// A unicast type byte Weave does not send.
    #[error("IPAM unicast message type {0} is unknown: Weave sends 0 (space request), 1 (ring update) or 2 (space request denied)")]
    UnknownUnicast(u8),
}

/// The gob type ids a Go process gave to the IPAM types. Each group is numbered consecutively
/// in Go's first-use order: `gossipState`, `map[mesh.PeerName]string`, `NodeID`, `NodeClaims`,
/// `ProposalID`, `AcceptedValue`, `Value`, `GossipState` (the Paxos map); `Ring`, `entry`,
/// `entries`, `[]mesh.PeerName`; `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeIds {
    gossip_state: i64,
    ring: i64,
    range: i64,
}

impl TypeIds {
    /// A running weaver (the ring type registered first): `Ring` 65, `gossipState` 78,
    /// `Range` 86. What most messages of capture (d) carry.
    pub const WEAVE: TypeIds = TypeIds {
        gossip_state: 78,
        ring: 65,
        range: 86,
    };
    /// A weaver whose first IPAM encoding was a `gossipState` (`gossipState` 67, `Ring` 75);
    /// seen after h1's restart in capture (d).
    pub const WEAVE_GOSSIP_FIRST: TypeIds = TypeIds {
        gossip_state: 67,
        ring: 75,
        range: 79,
    };
    /// What a fresh Go process writes for a persisted ring alone (`Ring` 65).
    const PERSISTED: TypeIds = TypeIds {
        gossip_state: 66,
        ring: 65,
        range: 74,
    };

    fn gs(self, k: i64) -> i64 {
        self.gossip_state + k
    }
    fn ring(self, k: i64) -> i64 {
        self.ring + k
    }
}

// Offsets inside the gossipState group.
const GS: i64 = 0;
const NICKS: i64 = 1;
const NODE_ID: i64 = 2;
const CLAIMS: i64 = 3;
const PROPOSAL: i64 = 4;
const ACCEPTED_VALUE: i64 = 5;
const VALUE: i64 = 6;
const PAXOS: i64 = 7;
// Offsets inside the Ring group.
const RING: i64 = 0;
const ENTRY: i64 = 1;
const ENTRIES: i64 = 2;
const SEEDS: i64 = 3;

// ---------------------------------------------------------------------------------- encoding

/// Encodes a gossip state as one gob stream, as Weave's `Allocator.Encode` does.
pub fn encode_gossip(state: &GossipState) -> Vec<u8> {
    encode_gossip_with_ids(state, TypeIds::WEAVE)
}

/// [`encode_gossip`] with the type numbering of another Go process.
pub fn encode_gossip_with_ids(state: &GossipState, ids: TypeIds) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        700 + state.ring.as_ref().map_or(0, |r| r.entries.len() * 24)
            + state.paxos.as_ref().map_or(0, |p| p.len() * 96),
    );
    gossip_state_defs(&mut out, ids);
    let mut body = Vec::new();
    put_int(&mut body, ids.gs(GS));
    let mut f = StructFields::new(&mut body);
    f.int(0, state.now);
    if !state.nicknames.is_empty() {
        f.field(1);
        put_uint(f.out(), state.nicknames.len() as u64);
        for (peer, nick) in &state.nicknames {
            put_uint(f.out(), peer.as_u64());
            put_bytes(f.out(), nick.as_bytes());
        }
    }
    if let Some(paxos) = &state.paxos {
        // A non-nil map is sent even when empty.
        f.field(2);
        put_uint(f.out(), paxos.len() as u64);
        for (node, claims) in paxos {
            put_node_id(f.out(), node);
            put_claims(f.out(), claims);
        }
    }
    if let Some(ring) = &state.ring {
        f.field(3);
        put_ring(f.out(), ring);
    }
    f.end();
    message(&mut out, &body);
    out
}

/// Encodes a unicast message: the type byte, then one gob stream.
pub fn encode_unicast(msg: &Unicast) -> Vec<u8> {
    encode_unicast_with_ids(msg, TypeIds::WEAVE)
}

/// [`encode_unicast`] with the type numbering of another Go process.
pub fn encode_unicast_with_ids(msg: &Unicast, ids: TypeIds) -> Vec<u8> {
    match msg {
        Unicast::SpaceRequest(r) => range_message(MSG_SPACE_REQUEST, r, ids),
        Unicast::SpaceRequestDenied(r) => range_message(MSG_SPACE_REQUEST_DENIED, r, ids),
        Unicast::RingUpdate(state) => {
            let mut out = vec![MSG_RING_UPDATE];
            out.extend_from_slice(&encode_gossip_with_ids(state, ids));
            out
        }
    }
}

/// Encodes a ring as Weave persists it (a gob stream of one `Ring`).
pub fn encode_persisted_ring(ring: &RingWire) -> Vec<u8> {
    let ids = TypeIds::PERSISTED;
    let mut out = Vec::new();
    ring_defs(&mut out, ids);
    let mut body = Vec::new();
    put_int(&mut body, ids.ring(RING));
    put_ring(&mut body, ring);
    message(&mut out, &body);
    out
}

fn range_message(kind: u8, r: &Range, ids: TypeIds) -> Vec<u8> {
    let mut out = vec![kind];
    put_type_definition(&mut out, ids.range, |d| {
        put_struct_type(d, "Range", ids.range, &[("Start", UINT), ("End", UINT)])
    });
    let mut body = Vec::new();
    put_int(&mut body, ids.range);
    let mut f = StructFields::new(&mut body);
    f.uint(0, u64::from(r.start));
    f.uint(1, u64::from(r.end));
    f.end();
    message(&mut out, &body);
    out
}

/// The twelve definitions of `gossipState`, in the order Go sends them (a type, then the types
/// its fields refer to, depth first, each once).
fn gossip_state_defs(out: &mut Vec<u8>, ids: TypeIds) {
    let g = |k| ids.gs(k);
    let fields = [
        ("Now", INT),
        ("Nicknames", g(NICKS)),
        ("Paxos", g(PAXOS)),
        ("Ring", ids.ring(RING)),
    ];
    put_type_definition(out, g(GS), |d| {
        put_struct_type(d, "gossipState", g(GS), &fields)
    });
    put_type_definition(out, g(NICKS), |d| {
        put_map_type(d, "map[mesh.PeerName]string", g(NICKS), UINT, STRING)
    });
    put_type_definition(out, g(PAXOS), |d| {
        put_map_type(d, "GossipState", g(PAXOS), g(NODE_ID), g(CLAIMS))
    });
    put_type_definition(out, g(NODE_ID), |d| {
        put_struct_type(d, "", g(NODE_ID), &[("Name", UINT), ("UID", UINT)])
    });
    let claims = [
        ("Promise", g(PROPOSAL)),
        ("Accepted", g(PROPOSAL)),
        ("AcceptedVal", g(ACCEPTED_VALUE)),
    ];
    put_type_definition(out, g(CLAIMS), |d| {
        put_struct_type(d, "", g(CLAIMS), &claims)
    });
    let proposal = [("Round", UINT), ("Proposer", g(NODE_ID))];
    put_type_definition(out, g(PROPOSAL), |d| {
        put_struct_type(d, "ProposalID", g(PROPOSAL), &proposal)
    });
    let value = [("Value", g(VALUE)), ("Origin", g(PROPOSAL))];
    put_type_definition(out, g(ACCEPTED_VALUE), |d| {
        put_struct_type(d, "AcceptedValue", g(ACCEPTED_VALUE), &value)
    });
    put_type_definition(out, g(VALUE), |d| {
        put_slice_type(d, "Value", g(VALUE), UINT)
    });
    ring_defs(out, ids);
}

/// The definitions of `Ring`, `entries`, `entry` and `[]mesh.PeerName`, in Go's order.
fn ring_defs(out: &mut Vec<u8>, ids: TypeIds) {
    let r = |k| ids.ring(k);
    let ring = [
        ("Start", UINT),
        ("End", UINT),
        ("Peer", UINT),
        ("Entries", r(ENTRIES)),
        ("Seeds", r(SEEDS)),
    ];
    put_type_definition(out, r(RING), |d| put_struct_type(d, "Ring", r(RING), &ring));
    put_type_definition(out, r(ENTRIES), |d| {
        put_slice_type(d, "entries", r(ENTRIES), r(ENTRY))
    });
    let entry = [
        ("Token", UINT),
        ("Peer", UINT),
        ("Version", UINT),
        ("Free", UINT),
    ];
    put_type_definition(out, r(ENTRY), |d| put_struct_type(d, "", r(ENTRY), &entry));
    put_type_definition(out, r(SEEDS), |d| {
        put_slice_type(d, "[]mesh.PeerName", r(SEEDS), UINT)
    });
}

/// One gob message: length, then `body` (which starts with the type id).
fn message(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn put_node_id(out: &mut Vec<u8>, n: &NodeId) {
    let mut f = StructFields::new(out);
    f.uint(0, n.name.as_u64());
    f.uint(1, n.uid);
    f.end();
}

fn put_proposal(out: &mut Vec<u8>, p: &Option<ProposalId>) {
    let mut f = StructFields::new(out);
    if let Some(p) = p {
        f.uint(0, p.round);
        f.field(1);
        put_node_id(f.out(), &p.proposer);
    } else {
        f.field(1);
        f.out().push(0); // a zero NodeID
    }
    f.end();
}

fn put_claims(out: &mut Vec<u8>, c: &NodeClaims) {
    let mut f = StructFields::new(out);
    f.field(0);
    put_proposal(f.out(), &c.promise);
    f.field(1);
    put_proposal(f.out(), &c.accepted);
    f.field(2);
    let mut v = StructFields::new(f.out());
    v.uints(0, c.accepted_val.value.iter().map(|p| p.as_u64()));
    v.field(1);
    put_proposal(v.out(), &c.accepted_val.origin);
    v.end();
    f.end();
}

fn put_ring(out: &mut Vec<u8>, r: &RingWire) {
    let mut f = StructFields::new(out);
    f.uint(0, u64::from(r.start));
    f.uint(1, u64::from(r.end));
    f.uint(2, r.peer.as_u64());
    if !r.entries.is_empty() {
        f.field(3);
        put_uint(f.out(), r.entries.len() as u64);
        for e in &r.entries {
            let mut ef = StructFields::new(f.out());
            ef.uint(0, u64::from(e.token));
            ef.uint(1, e.peer.as_u64());
            ef.uint(2, u64::from(e.version));
            ef.uint(3, u64::from(e.free));
            ef.end();
        }
    }
    f.uints(4, r.seeds.iter().map(|p| p.as_u64()));
    f.end();
}

// ---------------------------------------------------------------------------------- decoding

fn limits() -> Limits {
    Limits {
        // Weave's TCP messages are at most 10 MiB.
        max_message_len: 10 << 20,
        // One gossipState stream defines 12 types.
        max_types: 64,
        max_depth: 16,
        max_type_nodes: 256,
        // Ring entries (4 fields each) dominate: MAX_ENTRIES * 5 plus the rest.
        max_elements: 1 << 20,
        // Nicknames come from host names; a stray byte must not lose the whole ring.
        utf8: Utf8Policy::Lossy,
    }
}

/// Decodes a gossip state (tag 4 and 6 payloads, and the body of a ring update).
pub fn decode_gossip(bytes: &[u8]) -> Result<GossipState, CodecError> {
    let top = Decoder::with_limits(bytes, limits()).expect_value()?;
    let sv = as_struct(&top.value, "gossipState")?;
    let now = match sv.field("Now") {
        None => 0,
        Some(v) => v.as_int().ok_or(CodecError::Shape {
            what: "gossipState.Now",
            expected: "int",
            found: v.kind_name(),
        })?,
    };
    let mut nicknames = BTreeMap::new();
    if let Some(v) = sv.field("Nicknames") {
        let m = as_map(v, "gossipState.Nicknames")?;
        check_len("gossipState.Nicknames", m.len(), MAX_NICKNAMES)?;
        for (k, v) in m {
            let peer = peer_name(k, "a Nicknames key")?;
            let nick = v.as_str().ok_or(CodecError::Shape {
                what: "a nickname",
                expected: "string",
                found: v.kind_name(),
            })?;
            if nick.len() > MAX_NICKNAME_LEN {
                return Err(CodecError::NicknameTooLong {
                    peer,
                    len: nick.len(),
                });
            }
            // A repeated key overwrites, as in Go.
            nicknames.insert(peer, nick.to_owned());
        }
    }
    let paxos = match sv.field("Paxos") {
        None => None,
        Some(v) => {
            let m = as_map(v, "gossipState.Paxos")?;
            check_len("gossipState.Paxos", m.len(), MAX_PAXOS_NODES)?;
            let mut out = BTreeMap::new();
            for (k, v) in m {
                out.insert(node_id(k)?, node_claims(v)?);
            }
            Some(out)
        }
    };
    let ring = sv.field("Ring").map(ring_wire).transpose()?;
    Ok(GossipState {
        now,
        nicknames,
        paxos,
        ring,
    })
}

/// Decodes a unicast payload (type byte, then gob).
pub fn decode_unicast(bytes: &[u8]) -> Result<Unicast, CodecError> {
    let (&kind, rest) = bytes.split_first().ok_or(CodecError::EmptyUnicast)?;
    match kind {
        MSG_SPACE_REQUEST => Ok(Unicast::SpaceRequest(decode_range(rest)?)),
        MSG_RING_UPDATE => Ok(Unicast::RingUpdate(decode_gossip(rest)?)),
        MSG_SPACE_REQUEST_DENIED => Ok(Unicast::SpaceRequestDenied(decode_range(rest)?)),
        other => Err(CodecError::UnknownUnicast(other)),
    }
}

/// Decodes a persisted ring (a gob stream of one `Ring`).
pub fn decode_persisted_ring(bytes: &[u8]) -> Result<RingWire, CodecError> {
    let top = Decoder::with_limits(bytes, limits()).expect_value()?;
    ring_wire(&top.value)
}

fn decode_range(bytes: &[u8]) -> Result<Range, CodecError> {
    let top = Decoder::with_limits(bytes, limits()).expect_value()?;
    let sv = as_struct(&top.value, "Range")?;
    Ok(Range {
        start: u32_field(sv, "Start", "Range.Start")?,
        end: u32_field(sv, "End", "Range.End")?,
    })
}

fn as_struct<'v>(v: &'v Value, what: &'static str) -> Result<&'v StructValue, CodecError> {
    v.as_struct().ok_or(CodecError::Shape {
        what,
        expected: "a struct",
        found: v.kind_name(),
    })
}

fn as_map<'v>(v: &'v Value, what: &'static str) -> Result<&'v [(Value, Value)], CodecError> {
    v.as_map().ok_or(CodecError::Shape {
        what,
        expected: "a map",
        found: v.kind_name(),
    })
}

fn as_slice<'v>(v: &'v Value, what: &'static str) -> Result<&'v [Value], CodecError> {
    v.as_slice().ok_or(CodecError::Shape {
        what,
        expected: "a slice",
        found: v.kind_name(),
    })
}

fn check_len(what: &'static str, count: usize, limit: usize) -> Result<(), CodecError> {
    if count > limit {
        return Err(CodecError::TooMany { what, count, limit });
    }
    Ok(())
}

fn uint(v: &Value, what: &'static str) -> Result<u64, CodecError> {
    v.as_uint().ok_or(CodecError::Shape {
        what,
        expected: "uint",
        found: v.kind_name(),
    })
}

fn peer_name(v: &Value, what: &'static str) -> Result<PeerName, CodecError> {
    let value = uint(v, what)?;
    PeerName::from_u64(value).ok_or(CodecError::BadPeerName { what, value })
}

fn uint_field(sv: &StructValue, name: &str, what: &'static str) -> Result<u64, CodecError> {
    sv.field(name).map_or(Ok(0), |v| uint(v, what))
}

fn u32_field(sv: &StructValue, name: &str, what: &'static str) -> Result<u32, CodecError> {
    let value = uint_field(sv, name, what)?;
    u32::try_from(value).map_err(|_| CodecError::OutOfRange { what, value })
}

fn peer_field(sv: &StructValue, name: &str, what: &'static str) -> Result<PeerName, CodecError> {
    let value = uint_field(sv, name, what)?;
    PeerName::from_u64(value).ok_or(CodecError::BadPeerName { what, value })
}

fn peer_list(
    sv: &StructValue,
    name: &str,
    what: &'static str,
) -> Result<Vec<PeerName>, CodecError> {
    let Some(v) = sv.field(name) else {
        return Ok(Vec::new());
    };
    let items = as_slice(v, what)?;
    check_len(what, items.len(), MAX_PEER_LIST)?;
    items.iter().map(|p| peer_name(p, what)).collect()
}

fn node_id(v: &Value) -> Result<NodeId, CodecError> {
    let sv = as_struct(v, "a Paxos NodeID")?;
    Ok(NodeId {
        name: peer_field(sv, "Name", "NodeID.Name")?,
        uid: uint_field(sv, "UID", "NodeID.UID")?,
    })
}

/// A `ProposalID`; round 0 is Weave's "no proposal" (`ProposalID.valid()` is `Round > 0`).
fn proposal(sv: &StructValue, name: &str) -> Result<Option<ProposalId>, CodecError> {
    let Some(v) = sv.field(name) else {
        return Ok(None);
    };
    let p = as_struct(v, "a Paxos ProposalID")?;
    let round = uint_field(p, "Round", "ProposalID.Round")?;
    let proposer = match p.field("Proposer") {
        Some(n) => node_id(n)?,
        None => NodeId {
            name: PeerName::from_bytes([0; 6]),
            uid: 0,
        },
    };
    Ok((round != 0).then_some(ProposalId { round, proposer }))
}

fn node_claims(v: &Value) -> Result<NodeClaims, CodecError> {
    let sv = as_struct(v, "Paxos NodeClaims")?;
    let accepted_val = match sv.field("AcceptedVal") {
        None => AcceptedValue::default(),
        Some(v) => {
            let av = as_struct(v, "NodeClaims.AcceptedVal")?;
            AcceptedValue {
                value: peer_list(av, "Value", "AcceptedValue.Value")?,
                origin: proposal(av, "Origin")?,
            }
        }
    };
    Ok(NodeClaims {
        promise: proposal(sv, "Promise")?,
        accepted: proposal(sv, "Accepted")?,
        accepted_val,
    })
}

fn ring_wire(v: &Value) -> Result<RingWire, CodecError> {
    let sv = as_struct(v, "Ring")?;
    let entries = match sv.field("Entries") {
        None => Vec::new(),
        Some(v) => {
            let items = as_slice(v, "Ring.Entries")?;
            check_len("Ring.Entries", items.len(), MAX_ENTRIES)?;
            items
                .iter()
                .map(|e| {
                    let es = as_struct(e, "a ring entry")?;
                    Ok(EntryWire {
                        token: u32_field(es, "Token", "entry.Token")?,
                        peer: peer_field(es, "Peer", "entry.Peer")?,
                        version: u32_field(es, "Version", "entry.Version")?,
                        free: u32_field(es, "Free", "entry.Free")?,
                    })
                })
                .collect::<Result<_, CodecError>>()?
        }
    };
    Ok(RingWire {
        start: u32_field(sv, "Start", "Ring.Start")?,
        end: u32_field(sv, "End", "Ring.End")?,
        peer: peer_field(sv, "Peer", "Ring.Peer")?,
        entries,
        seeds: peer_list(sv, "Seeds", "Ring.Seeds")?,
    })
}

#[cfg(test)]
mod tests;
