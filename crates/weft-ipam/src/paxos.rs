//! Single-decree Paxos over gossip that agrees on the peers the first ring is made for
//! (reference weave-services.md §3.2). Pure: the allocator feeds it the claims it receives
//! and gossips [`Participant::claims`].
//!
//! CONTRACT (the allocator codes against this; bodies are being written):
//! * `Participant::elector(id, quorum)`: a voting node; `Participant::observer()`: never
//!   votes or proposes, its gossip carries no claims (`claims()` is `None`).
//! * `propose()`: start (or restart) a round: round = highest round known + 1, promise it
//!   ourselves.
//! * `update(&claims)`: merge claims received by gossip (per node, keep the higher promise
//!   and the higher accepted). Returns true if anything changed.
//! * `think()`: Weave's `Think`: adopt the highest promise seen; if our promise is our own
//!   proposal and at least `quorum` nodes hold it, accept it with the value of the highest
//!   previously accepted proposal among them, or else the names of all nodes we know; if any
//!   node accepted the proposal we promised, accept it too. Returns true if our claims
//!   changed (then gossip them).
//! * `consensus()`: `Some(value)` once at least `quorum` nodes have accepted values with the
//!   same origin.
//! * `claims()`: our whole view, to gossip (`Some(map)` for an elector, `None` for an
//!   observer). `status()`: for `/report` (`Elector`, `KnownNodes`, `Quorum`).

use std::collections::BTreeMap;

use crate::wire::{AcceptedValue, NodeClaims, NodeId};

/// `/report`'s `IPAM.Paxos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxosStatus {
    pub elector: bool,
    pub known_nodes: usize,
    pub quorum: u32,
}

/// A Paxos node (elector) or observer.
#[derive(Debug, Clone)]
pub struct Participant {
    id: Option<NodeId>,
    quorum: u32,
    known: BTreeMap<NodeId, NodeClaims>,
}

impl Participant {
    pub fn elector(id: NodeId, quorum: u32) -> Self {
        let mut known = BTreeMap::new();
        known.insert(id, NodeClaims::default());
        Participant {
            id: Some(id),
            quorum,
            known,
        }
    }

    pub fn observer() -> Self {
        Participant {
            id: None,
            quorum: 0,
            known: BTreeMap::new(),
        }
    }

    pub fn is_elector(&self) -> bool {
        self.id.is_some()
    }

    pub fn set_quorum(&mut self, quorum: u32) {
        self.quorum = quorum;
    }

    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    pub fn propose(&mut self) {
        unimplemented!("paxos::propose is being written")
    }

    pub fn update(&mut self, _claims: &BTreeMap<NodeId, NodeClaims>) -> bool {
        unimplemented!("paxos::update is being written")
    }

    pub fn think(&mut self) -> bool {
        unimplemented!("paxos::think is being written")
    }

    pub fn consensus(&self) -> Option<AcceptedValue> {
        unimplemented!("paxos::consensus is being written")
    }

    pub fn claims(&self) -> Option<&BTreeMap<NodeId, NodeClaims>> {
        self.id.map(|_| &self.known)
    }

    pub fn status(&self) -> PaxosStatus {
        PaxosStatus {
            elector: self.is_elector(),
            known_nodes: self.known.len(),
            quorum: self.quorum,
        }
    }
}
