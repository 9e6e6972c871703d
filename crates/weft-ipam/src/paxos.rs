//! Single-decree Paxos over gossip that agrees on the peers the first ring is made for
//! (reference weave-services.md §3.2). Pure: the allocator feeds it the claims it receives
//! and gossips [`Participant::claims`].
//!
//! CONTRACT (the allocator codes against this):
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

use std::collections::{BTreeMap, BTreeSet};

use weft_mesh::PeerName;

use crate::wire::{AcceptedValue, NodeClaims, NodeId, ProposalId};

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

    /// Starts (or restarts) a round: the highest round any node has promised or accepted,
    /// plus one, proposed by us and promised by us. An observer never proposes.
    pub fn propose(&mut self) {
        let Some(id) = self.id else { return };
        let round = self
            .known
            .values()
            .flat_map(|c| [c.promise, c.accepted])
            .flatten()
            .map(|p| p.round)
            .max()
            .unwrap_or(0);
        let ours = self.known.entry(id).or_default();
        ours.promise = Some(ProposalId {
            round: round.saturating_add(1),
            proposer: id,
        });
    }

    /// Merges claims received by gossip: a node we did not know is taken as is; for a known
    /// node the higher promise, and the higher accepted proposal with its value, win. Returns
    /// true if our knowledge changed. (Weave's `Node.Update`.)
    pub fn update(&mut self, claims: &BTreeMap<NodeId, NodeClaims>) -> bool {
        let mut changed = false;
        for (node, theirs) in claims {
            match self.known.get_mut(node) {
                None => {
                    self.known.insert(*node, theirs.clone());
                    changed = true;
                }
                Some(known) => {
                    if known.promise < theirs.promise {
                        known.promise = theirs.promise;
                        changed = true;
                    }
                    if known.accepted < theirs.accepted {
                        known.accepted = theirs.accepted;
                        known.accepted_val = theirs.accepted_val.clone();
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// Weave's `Node.Think`: the promise, accept-request and accepted steps of Paxos on what we
    /// know. Returns true if our own claims changed (then they should be gossiped). An observer
    /// never changes anything.
    pub fn think(&mut self) -> bool {
        let Some(id) = self.id else { return false };
        let before = self.known.get(&id).cloned().unwrap_or_default();
        let mut ours = before.clone();

        // Promise: adopt the highest promise seen.
        if let Some(highest) = self.known.values().filter_map(|c| c.promise).max() {
            if ours.promise < Some(highest) {
                ours.promise = Some(highest);
            }
        }

        // Accept request: acting as the proposer, do we hold a quorum of promises?
        if let Some(promise) = ours.promise.filter(|p| p.proposer == id) {
            // Counted by peer name: a peer that restarted (a new UID, its old claims still
            // in the gossip) is one voter, not two.
            let mut voters: BTreeSet<PeerName> = BTreeSet::new();
            let mut accepted: Option<ProposalId> = None;
            let mut accepted_val = AcceptedValue::default();
            for (node, claims) in &self.known {
                if claims.promise == Some(promise) {
                    voters.insert(node.name);
                    if accepted < claims.accepted {
                        accepted = claims.accepted;
                        accepted_val = claims.accepted_val.clone();
                    }
                }
            }
            if voters.len() as u64 >= u64::from(self.quorum) {
                if accepted.is_none() {
                    accepted_val = AcceptedValue {
                        value: self.pick_value(),
                        origin: Some(promise),
                    };
                }
                // Accepting our own proposal is how the accept request reaches the others.
                ours.accepted = Some(promise);
                ours.accepted_val = accepted_val;
            }
        }

        // Accepted: if the proposer we promised has accepted its proposal, accept it too.
        if ours.promise.is_some() && ours.accepted != ours.promise {
            if let Some(claims) = self
                .known
                .values()
                .find(|c| c.accepted.is_some() && c.accepted == ours.promise)
            {
                ours.accepted = claims.accepted;
                ours.accepted_val = claims.accepted_val.clone();
            }
        }

        let changed = ours != before;
        self.known.insert(id, ours);
        changed
    }

    /// The value once at least `quorum` nodes have accepted values of the same origin (Weave's
    /// `Node.Consensus`, with nodes taken in order rather than Go's random map order; values of
    /// one origin are equal, so the order does not change the result).
    pub fn consensus(&self) -> Option<AcceptedValue> {
        // No quorum set yet means no consensus (Weave's quorum 0 would take any value).
        if self.quorum == 0 {
            return None;
        }
        // By peer name, as in `think`.
        let mut counts: BTreeMap<Option<ProposalId>, BTreeSet<PeerName>> = BTreeMap::new();
        for (node, claims) in &self.known {
            if claims.accepted.is_none() {
                continue;
            }
            let voters = counts.entry(claims.accepted_val.origin).or_default();
            voters.insert(node.name);
            if voters.len() as u64 >= u64::from(self.quorum) {
                return Some(claims.accepted_val.clone());
            }
        }
        None
    }

    /// The value a proposer picks when no promiser has accepted anything: the names of all
    /// nodes we know, in order, each once (the ring de-duplicates them anyway).
    fn pick_value(&self) -> Vec<PeerName> {
        let mut names: Vec<PeerName> = self.known.keys().map(|n| n.name).collect();
        names.dedup();
        names
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

#[cfg(test)]
mod tests;
