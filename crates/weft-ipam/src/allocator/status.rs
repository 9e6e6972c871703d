//! What `/status`, `/status/ipam`, `/report` and `/metrics` show of the allocator.

use super::*;

impl Allocator {
    pub fn status(&self) -> IpamStatus {
        let me = self.cfg.name;
        let n = self.ring.entries().len();
        let entries: Vec<EntryStatus> = (0..n)
            .filter_map(|i| {
                let e = self.ring.entries().get(i)?;
                Some(EntryStatus {
                    token: e.token,
                    size: self.ring.entry_size(i),
                    peer: e.peer,
                    nickname: self.nickname_of(e.peer).unwrap_or_default(),
                    is_known_peer: self.is_known_peer(e.peer),
                    version: e.version,
                    free: e.free,
                })
            })
            .collect();
        let paxos_st = self.paxos.as_ref().map(|p| p.status());
        let state = if !entries.is_empty() {
            if entries.iter().all(|e| e.size == 0 || !e.is_known_peer) {
                "all IP ranges owned by unreachable peers - use 'rmpeer' if they are dead"
                    .to_owned()
            } else if !self.pending_allocates.is_empty() {
                "waiting for IP(s) to become available".to_owned()
            } else {
                "ready".to_owned()
            }
        } else if self.awaiting_consensus {
            match &paxos_st {
                Some(p) if p.elector => {
                    format!(
                        "awaiting consensus (quorum: {}, known: {})",
                        p.quorum, p.known_nodes
                    )
                }
                _ => "priming".to_owned(),
            }
        } else {
            "idle".to_owned()
        };
        let waiting_line = match &paxos_st {
            Some(p) if self.awaiting_consensus && p.elector && self.ring.is_empty() => {
                Some(format!(
                    "waiting for consensus: {} of {} peers known",
                    p.known_nodes, p.quorum
                ))
            }
            _ => None,
        };
        let sizes = self.ring.sizes_by_peer();
        let mut peers = Vec::new();
        if !self.ring.is_empty() {
            peers.push(PeerShare {
                name: me,
                nickname: self.cfg.nickname.clone(),
                ips: sizes.get(&me).copied().unwrap_or(0),
                reachable: true,
                active: Some(self.space.num_allocated()),
            });
            for (p, ips) in sizes.iter().filter(|(p, _)| **p != me) {
                peers.push(PeerShare {
                    name: *p,
                    nickname: self.nickname_of(*p).unwrap_or_default(),
                    ips: *ips,
                    reachable: self.is_known_peer(*p),
                    active: None,
                });
            }
        }
        IpamStatus {
            state,
            waiting_line,
            paxos: paxos_st,
            range: self.cfg.universe,
            range_num_ips: self.cfg.universe.size(),
            active_ips: self.space.num_allocated(),
            default_subnet: self.cfg.default_subnet,
            entries,
            pending_claims: self
                .pending_claims
                .iter()
                .map(|c| (c.ident.clone(), c.cidr))
                .collect(),
            pending_allocates: self
                .pending_allocates
                .iter()
                .map(|o| format!("{} {}", o.ident, o.subnet))
                .collect(),
            peers,
        }
    }
}
