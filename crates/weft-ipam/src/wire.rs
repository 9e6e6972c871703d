//! What travels on the `IPallocation` gossip channel (and is persisted), as plain data.
//!
//! Go's types (weave `ipam/allocator.go`, `ipam/ring`, `ipam/paxos`), field names as on the
//! wire:
//!
//! ```text
//! gossipState { Now int64; Nicknames map[PeerName]string;
//!               Paxos map[NodeID]NodeClaims   // nil (absent) once the sender has a ring
//!               Ring *Ring }                  // nil (absent) while the sender has none
//! NodeID      { Name PeerName; UID PeerUID }
//! ProposalID  { Round uint; Proposer NodeID }
//! NodeClaims  { Promise ProposalID; Accepted ProposalID; AcceptedVal AcceptedValue }
//! AcceptedValue { Value []PeerName; Origin ProposalID }
//! Ring        { Start, End uint32; Peer PeerName; Entries []*entry; Seeds []PeerName }
//! entry       { Token uint32; Peer PeerName; Version uint32; Free uint32 }
//! Range       { Start, End uint32 }
//! ```
//!
//! Unicast messages are one type byte then gob: 0 space request (`Range`), 1 ring update
//! (`gossipState`), 2 space request denied (`Range`).

use std::collections::BTreeMap;

use weft_mesh::PeerName;

/// An IPv4 address as Weave holds it.
pub type Addr = u32;

/// One peer process taking part in Paxos: its name and the UID of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub name: PeerName,
    pub uid: u64,
}

/// A proposal number. Ordered by round, then proposer name, then proposer UID (Weave's
/// `ProposalID.precedes`; the derived order, since `NodeId` orders by name then UID). Round 0
/// means "none" (`Option<ProposalId>::None`, which orders below every proposal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    pub round: u64,
    pub proposer: NodeId,
}

/// The value a node has accepted: the peers to seed the ring with, and the proposal it
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcceptedValue {
    pub value: Vec<PeerName>,
    pub origin: Option<ProposalId>,
}

/// What one node has promised and accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeClaims {
    pub promise: Option<ProposalId>,
    pub accepted: Option<ProposalId>,
    pub accepted_val: AcceptedValue,
}

/// A ring entry: the range from `token` to the next entry's token belongs to `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryWire {
    pub token: Addr,
    pub peer: PeerName,
    pub version: u32,
    pub free: u32,
}

/// A ring as gossiped and persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingWire {
    pub start: Addr,
    pub end: Addr,
    /// The sender (in gossip) or the owner of the file (persisted); not an owner of entries.
    pub peer: PeerName,
    pub entries: Vec<EntryWire>,
    pub seeds: Vec<PeerName>,
}

/// The whole `IPallocation` gossip payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GossipState {
    /// Unix seconds of the sender (kept by Weave for compatibility, not used).
    pub now: i64,
    pub nicknames: BTreeMap<PeerName, String>,
    /// `None` = absent on the wire (nil map); `Some(empty)` = an empty map was sent.
    pub paxos: Option<BTreeMap<NodeId, NodeClaims>>,
    pub ring: Option<RingWire>,
}

/// `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    pub start: Addr,
    pub end: Addr,
}

/// A unicast message on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unicast {
    SpaceRequest(Range),
    RingUpdate(GossipState),
    SpaceRequestDenied(Range),
}
