//! The mesh side of the allocator: gossip, broadcasts and unicasts on `IPallocation`
//! (space requests, donations, denials, ring updates), the peers the mesh reports.

use super::*;

impl Allocator {
    /// Periodic gossip (tag 4). Weave never answers it with a unicast (sender unknown).
    pub fn on_gossip(&mut self, now: Now, src: PeerName, payload: &[u8]) -> Result<(), IpamError> {
        let r = codec::decode_gossip(payload)
            .map_err(|e| IpamError::Decode(e.to_string()))
            .and_then(|s| self.update(now, None, src, s));
        self.finish(now);
        r
    }

    /// A broadcast (tag 6) from `src`; returns what to relay along `src`'s tree (the payload
    /// itself).
    pub fn on_broadcast(
        &mut self,
        now: Now,
        src: PeerName,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, IpamError> {
        let r = codec::decode_gossip(payload)
            .map_err(|e| IpamError::Decode(e.to_string()))
            .and_then(|s| self.update(now, Some(src), src, s));
        self.finish(now);
        // Relay what src broadcast, unchanged (Weave relays its own state encoded afresh; the
        // original is as good for the receivers, who merge it, and costs no encoding).
        r.map(|()| Some(payload.to_vec()))
    }

    /// A unicast (tag 5) to us from `src`.
    pub fn on_unicast(&mut self, now: Now, src: PeerName, payload: &[u8]) -> Result<(), IpamError> {
        let r = match codec::decode_unicast(payload) {
            Err(e) => Err(IpamError::Decode(e.to_string())),
            Ok(Unicast::SpaceRequest(w)) => {
                tracing::debug!(
                    "[allocator {}]: Peer {src} asked me for space",
                    self.cfg.name
                );
                if !self.ring.is_empty() {
                    self.donate_space(now, w, src);
                }
                Ok(())
            }
            Ok(Unicast::SpaceRequestDenied(w)) => {
                self.answered(src);
                self.space_request_denied(src, w);
                Ok(())
            }
            Ok(Unicast::RingUpdate(s)) => {
                self.answered(src);
                self.retry = true;
                self.update(now, Some(src), src, s)
            }
        };
        self.finish(now);
        r
    }

    fn donate_space(&mut self, now: Now, w: crate::wire::Range, to: PeerName) {
        let asked = Range::from_wire(w).and_then(|r| r.intersect(&self.ring.range()));
        let chunk = asked.and_then(|r| self.space.donate(r));
        match chunk {
            None => {
                tracing::debug!(
                    "[allocator {}]: No space to give to peer {to}",
                    self.cfg.name
                );
                let payload = codec::encode_unicast(&Unicast::SpaceRequestDenied(w));
                self.step.push(Output::Unicast { dst: to, payload });
            }
            Some(chunk) => {
                tracing::debug!(
                    "[allocator {}]: Giving range {chunk} to {to}",
                    self.cfg.name
                );
                if self.ring.grant_range_to_host(chunk.start, chunk.end, to) {
                    self.need_persist = true;
                    self.need_broadcast = true;
                } else {
                    tracing::error!(
                        "[allocator {}] could not grant {chunk} to {to}: the ring says we do not own it",
                    self.cfg.name
                    );
                }
                // Either way the space must match the ring again.
                self.space.update_ranges(&self.ring.owned_ranges());
            }
        }
        self.send_ring_update(to, now);
    }

    /// `src` answered a space request: pending allocations may ask again.
    fn answered(&mut self, src: PeerName) {
        for op in &mut self.pending_allocates {
            if op.asked.is_some_and(|(p, _)| p == src) {
                op.asked = None;
            }
        }
    }

    fn space_request_denied(&mut self, sender: PeerName, w: crate::wire::Range) {
        let Some(r) = Range::from_wire(w) else { return };
        let (hit, keep): (Vec<ClaimOp>, Vec<ClaimOp>) = std::mem::take(&mut self.pending_claims)
            .into_iter()
            .partition(|c| r.contains(u64::from(c.cidr.addr)));
        self.pending_claims = keep;
        for mut c in hit {
            self.denied_by(&mut c, sender, None);
        }
    }

    fn update(
        &mut self,
        now: Now,
        reply_to: Option<PeerName>,
        src: PeerName,
        state: GossipState,
    ) -> Result<(), IpamError> {
        for (p, n) in state.nicknames {
            let room = self.nicknames.len() < MAX_NICKNAMES;
            match self.nicknames.get_mut(&p) {
                Some(have) if *have == n => {}
                Some(have) => *have = n,
                None if room => {
                    self.nicknames.insert(p, n);
                }
                None => {}
            }
        }
        if let Some(w) = state.ring {
            let was_empty = self.ring.is_empty();
            let updated = self.merge_ring(&w, src)?;
            if updated || (was_empty && !self.ring.is_empty()) {
                // (Weave prunes nicknames here; we do it on the tick, which is cheaper.)
                self.ring_updated();
            }
        } else if !self.ring.is_empty() {
            if let Some(dst) = reply_to {
                self.send_ring_update(dst, now);
            }
        } else if let Some(claims) = state.paxos {
            let mut cons = None;
            // Count with a real quorum even before we ever proposed: Weave's node starts with
            // quorum 0 and, on another proposer's claims, takes the first accepted value it
            // sees as consensus (a ring no quorum agreed on: split brain; found by the
            // simulation).
            let q = self.quorum();
            if let Some(p) = self.paxos.as_mut() {
                p.set_quorum(q);
                if p.is_elector() && p.update(&claims) {
                    if p.think() {
                        self.need_broadcast = true;
                    }
                    cons = p.consensus();
                }
            }
            if let Some(c) = cons {
                self.create_ring(&c.value);
            }
        } else if self.paxos.as_ref().is_some_and(|p| p.is_elector()) && reply_to.is_some() {
            self.establish_ring();
        }
        Ok(())
    }

    fn merge_ring(&mut self, w: &RingWire, src: PeerName) -> Result<bool, IpamError> {
        let mut copy = self.ring.clone();
        let space = &self.space;
        let updated = copy
            .merge(w, |rs| space.has_allocations(rs))
            .map_err(|e| match e {
                RingError::DifferentSeeds { received, ours } => IpamError::SeededDifferently {
                    received: self.annotate(&received),
                    ours: self.annotate(&ours),
                },
                RingError::DifferentRange { received, ours } => IpamError::IncompatibleRange {
                    received: received.as_cidr_string(),
                    ours: ours.as_cidr_string(),
                },
                other => IpamError::Ring(other),
            })?;
        // Safety net over the merge rules: nothing we have allocated may change owner.
        for run in self.space.allocated() {
            let mut a = run.start;
            while a < run.end {
                if copy.owner(a) != Some(self.cfg.name) {
                    return Err(IpamError::WouldTakeAllocated {
                        src: src.to_string(),
                        addr: a as u32,
                    });
                }
                // jump to the next entry boundary inside the run
                a = next_boundary(&copy, a).min(run.end);
            }
        }
        self.ring = copy;
        Ok(updated)
    }

    /// Full state for periodic gossip (tag 4).
    pub fn gossip(&mut self, now: Now) -> Vec<u8> {
        self.encode(now)
    }

    /// The mesh's peers (reachable or not) and the number of direct targets (for the
    /// consensus quorum).
    pub fn set_peers(&mut self, now: Now, peers: &[PeerInfo], direct_targets: usize) {
        self.direct_targets = direct_targets;
        let mut became_reachable = false;
        let listed: BTreeSet<PeerName> = peers.iter().map(|p| p.name).collect();
        for p in peers {
            if p.name == self.cfg.name {
                continue;
            }
            let was = self.is_known_peer(p.name);
            self.peers.insert(
                p.name,
                PeerState {
                    reachable: p.reachable,
                    nickname: p.nickname.clone(),
                },
            );
            became_reachable |= p.reachable && !was;
        }
        for (name, s) in self.peers.iter_mut() {
            if !listed.contains(name) {
                s.reachable = false;
            }
        }
        self.peers.retain(|n, s| s.reachable || listed.contains(n));
        self.track_unreachable(now);
        if became_reachable {
            self.retry = true;
        }
        self.finish(now);
    }

    /// The mesh forgot a peer: drop its nickname unless it owns ring entries.
    pub fn peer_gone(&mut self, now: Now, peer: PeerName) {
        if !self.ring.peer_names().contains(&peer) {
            self.nicknames.remove(&peer);
        }
        if let Some(s) = self.peers.get_mut(&peer) {
            s.reachable = false;
        }
        self.track_unreachable(now);
        self.finish(now);
    }

    pub(super) fn track_unreachable(&mut self, now: Now) {
        let owners = self.ring.peer_names();
        let unreachable: Vec<PeerName> = owners
            .iter()
            .copied()
            .filter(|p| !self.is_known_peer(*p))
            .collect();
        self.unreachable_since
            .retain(|p, _| unreachable.contains(p));
        for p in unreachable {
            self.unreachable_since.entry(p).or_insert(now.at);
        }
    }
}
