//! A deterministic simulation of many [`Allocator`]s exchanging their outputs over a simulated
//! network (no mesh): broadcasts reach every peer reachable from the sender, unicasts their
//! destination, periodic gossip goes to a few random reachable peers every 30 s; every message
//! takes `latency`. Peers can be partitioned, healed, killed and restarted from what they
//! persisted.
//!
//! The simulation checks, not assumes, that no address is ever held by two peers at once:
//! every `Allocated` reply is recorded against the peer and ID that got it (a second live
//! holder is a duplicate), and [`Sim::check`] scans the allocated addresses of every live
//! peer's space for overlaps (run after every delivery when `check_every` is 1).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use weft_mesh::PeerName;

use crate::addr::{Cidr, Range};
use crate::allocator::{
    Allocator, Config, InitMode, IpamError, Now, Output, PeerInfo, Persisted, Reply, ReqId,
};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub peers: usize,
    /// The first `seeds` peers seed the ring (`--ipalloc-init seed=`); every peer, joiners
    /// included, is started with that seed list.
    pub seeds: usize,
    /// Start the first `peers` peers with `--ipalloc-init consensus=<peers>` instead of
    /// `seed=` (the ring is made by Paxos on the first allocation; quorum is a majority of
    /// them); peers added later are observers.
    pub consensus: bool,
    pub universe: Cidr,
    pub seed: u64,
    pub dead_after: Option<Duration>,
    pub latency: Duration,
    pub gossip_fanout: usize,
    /// Run the full overlap scan after every this many deliveries (1 = every step).
    pub check_every: u64,
}

impl SimConfig {
    pub fn new(peers: usize, seed: u64) -> Self {
        SimConfig {
            peers,
            seeds: peers.min(3),
            consensus: false,
            universe: Cidr::new(0x0a20_0000, 12),
            seed,
            dead_after: None,
            latency: Duration::from_millis(2),
            gossip_fanout: 3,
            check_every: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Gossip,
    Broadcast,
    Unicast,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Msg {
    at: Duration,
    seq: u64,
    from: usize,
    to: usize,
    kind: Kind,
    payload: Rc<[u8]>,
}

/// One simulated peer.
pub struct Node {
    pub name: PeerName,
    /// `None` while the peer is dead.
    pub alloc: Option<Allocator>,
    pub group: u32,
    pub persisted: Option<Persisted>,
    pub bytes_sent: u64,
}

/// Counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub allocations: u64,
    pub duplicates: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub gossip_errors: u64,
    pub last_gossip_error: Option<String>,
    pub checks: u64,
}

/// The simulation.
pub struct Sim {
    pub cfg: SimConfig,
    base: Instant,
    now: Duration,
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<Msg>>,
    seq: u64,
    rng: u64,
    next_req: u64,
    /// Answers by (peer, request).
    pub replies: BTreeMap<(usize, u64), Result<Reply, IpamError>>,
    /// Live allocations from replies: address → (peer, ID).
    pub holders: BTreeMap<u32, (usize, String)>,
    pub stats: Stats,
    seeds: Vec<PeerName>,
}

/// The name of simulated peer `i`.
pub fn sim_name(i: usize) -> PeerName {
    PeerName::from_u64(0x0200_0000_0000 + i as u64 + 1).unwrap_or_default()
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let seeds: Vec<PeerName> = (0..cfg.seeds).map(sim_name).collect();
        let mut sim = Sim {
            base: Instant::now(),
            now: Duration::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: cfg.seed ^ 0x5151_5151,
            next_req: 1,
            replies: BTreeMap::new(),
            holders: BTreeMap::new(),
            stats: Stats::default(),
            seeds,
            cfg,
        };
        for _ in 0..sim.cfg.peers {
            sim.spawn(None);
        }
        sim.refresh_peers();
        sim
    }

    fn rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random index below `n` (`n > 0`).
    pub fn pick(&mut self, n: usize) -> usize {
        (self.rand() % n.max(1) as u64) as usize
    }

    pub fn now(&self) -> Now {
        Now {
            at: self.base + self.now,
            unix: 1_800_000_000 + self.now.as_secs() as i64,
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    fn config(&self, i: usize) -> Config {
        Config {
            name: sim_name(i),
            uid: 1000 + i as u64,
            nickname: format!("sim-{i}"),
            universe: self.cfg.universe,
            default_subnet: self.cfg.universe,
            // consensus=N is only safe for the N peers it counts (two sides of a partition
            // could each hold a majority of more), so later peers join as observers, as
            // Weave's documentation has them do.
            init: if self.cfg.consensus && i < self.cfg.peers {
                InitMode::Consensus {
                    quorum: Some(self.cfg.peers as u32),
                }
            } else if self.cfg.consensus {
                InitMode::Observer
            } else {
                InitMode::Seed(self.seeds.clone())
            },
            seed: self.cfg.seed.wrapping_add(i as u64 * 7919),
            dead_after: self.cfg.dead_after,
        }
    }

    fn spawn(&mut self, persisted: Option<Persisted>) -> usize {
        let i = self.nodes.len();
        let alloc = Allocator::new(self.config(i), persisted, self.now());
        self.nodes.push(Node {
            name: sim_name(i),
            alloc: Some(alloc),
            group: 0,
            persisted: None,
            bytes_sent: 0,
        });
        self.drain(i);
        i
    }

    /// Add a new peer (joins with the same seed list) and tell everyone.
    pub fn add_peer(&mut self) -> usize {
        let i = self.spawn(None);
        self.refresh_peers();
        i
    }

    pub fn alive(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.alloc.is_some())
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        match (self.nodes.get(a), self.nodes.get(b)) {
            (Some(x), Some(y)) => x.alloc.is_some() && y.alloc.is_some() && x.group == y.group,
            _ => false,
        }
    }

    /// Tell every live peer who it can reach.
    pub fn refresh_peers(&mut self) {
        let now = self.now();
        for i in 0..self.nodes.len() {
            if !self.alive(i) {
                continue;
            }
            let infos: Vec<PeerInfo> = (0..self.nodes.len())
                .filter(|&j| j != i)
                .map(|j| PeerInfo {
                    name: sim_name(j),
                    uid: 1000 + j as u64,
                    nickname: format!("sim-{j}"),
                    reachable: self.reachable(i, j),
                })
                .collect();
            if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.alloc.as_mut()) {
                a.set_peers(now, &infos, 0);
            }
            self.drain(i);
        }
    }

    fn send(&mut self, from: usize, to: usize, kind: Kind, payload: Rc<[u8]>) {
        if let Some(n) = self.nodes.get_mut(from) {
            n.bytes_sent += payload.len() as u64;
        }
        self.seq += 1;
        self.queue.push(Reverse(Msg {
            at: self.now + self.cfg.latency,
            seq: self.seq,
            from,
            to,
            kind,
            payload,
        }));
    }

    fn index_of(&self, name: PeerName) -> Option<usize> {
        let v = name.as_u64().checked_sub(0x0200_0000_0001)?;
        let i = usize::try_from(v).ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// Carry out everything peer `i` wants.
    fn drain(&mut self, i: usize) {
        while let Some(out) = self
            .nodes
            .get_mut(i)
            .and_then(|n| n.alloc.as_mut())
            .and_then(|a| a.poll_output())
        {
            match out {
                Output::Persist(p) => {
                    if let Some(n) = self.nodes.get_mut(i) {
                        n.persisted = Some(p);
                    }
                }
                Output::Reply { req, result } => self.record_reply(i, req, result),
                Output::Broadcast(p) => {
                    let p: Rc<[u8]> = p.into();
                    for j in 0..self.nodes.len() {
                        if j != i && self.reachable(i, j) {
                            self.send(i, j, Kind::Broadcast, p.clone());
                        }
                    }
                }
                Output::Unicast { dst, payload } => {
                    if let Some(j) = self.index_of(dst) {
                        self.send(i, j, Kind::Unicast, payload.into());
                    }
                }
            }
        }
    }

    fn record_reply(&mut self, i: usize, req: ReqId, result: Result<Reply, IpamError>) {
        if let Ok(Reply::Allocated(c)) = &result {
            self.stats.allocations += 1;
            let ident = self.ident_of(i, req);
            match self.holders.get(&c.addr) {
                Some((h, id)) if (*h, id.as_str()) != (i, ident.as_str()) => {
                    self.stats.duplicates += 1;
                    tracing::error!(
                        "duplicate: {c} to peer {i} ({ident}), held by peer {h} ({id})"
                    );
                }
                _ => {
                    self.holders.insert(c.addr, (i, ident));
                }
            }
        }
        self.replies.insert((i, req.0), result);
    }

    fn ident_of(&self, i: usize, req: ReqId) -> String {
        format!("c-{i}-{}", req.0)
    }

    /// Ask peer `i` for an address for a new container; returns the request number.
    pub fn allocate(&mut self, i: usize) -> u64 {
        self.allocate_in(i, self.cfg.universe)
    }

    /// Ask peer `i` for an address in `subnet`; returns the request number.
    pub fn allocate_in(&mut self, i: usize, subnet: Cidr) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        let ident = self.ident_of(i, ReqId(req));
        let now = self.now();
        if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.alloc.as_mut()) {
            a.allocate(now, ReqId(req), &ident, subnet, true);
        }
        self.drain(i);
        req
    }

    /// Release one address held through peer `i` (if any): the container went away.
    pub fn release_one(&mut self, i: usize) -> bool {
        let Some((&addr, (_, ident))) = self.holders.iter().find(|(_, (h, _))| *h == i) else {
            return false;
        };
        let ident = ident.clone();
        let now = self.now();
        if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.alloc.as_mut()) {
            let _ = a.delete(now, &ident);
        }
        self.holders.remove(&addr);
        self.drain(i);
        true
    }

    /// Kill peer `i` for good (its containers are gone with it).
    pub fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.alloc = None;
        }
        self.holders.retain(|_, (h, _)| *h != i);
        self.refresh_peers();
    }

    /// Crash peer `i` (`kill -9` of the router): its containers keep their addresses.
    pub fn crash(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.alloc = None;
        }
        self.refresh_peers();
    }

    /// Restart a dead peer from what it persisted.
    pub fn restart(&mut self, i: usize) {
        let cfg = self.config(i);
        let now = self.now();
        if let Some(n) = self.nodes.get_mut(i) {
            let p = n.persisted.clone();
            n.alloc = Some(Allocator::new(cfg, p, now));
        }
        self.drain(i);
        self.refresh_peers();
    }

    /// Put each peer in a group; only peers of one group reach each other.
    pub fn partition(&mut self, group: impl Fn(usize) -> u32) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.group = group(i);
        }
        self.refresh_peers();
    }

    pub fn heal(&mut self) {
        self.partition(|_| 0);
    }

    /// `rmpeer` of `dead` run on peer `on`.
    pub fn rmpeer(&mut self, on: usize, dead: usize) -> Result<u64, IpamError> {
        let now = self.now();
        let r = match self.nodes.get_mut(on).and_then(|n| n.alloc.as_mut()) {
            Some(a) => a.admin_takeover(now, &sim_name(dead).to_string()),
            None => Ok(0),
        };
        self.drain(on);
        r
    }

    fn deliver(&mut self, m: Msg) {
        if !self.reachable(m.from, m.to) {
            self.stats.dropped += 1;
            return;
        }
        self.stats.deliveries += 1;
        let now = self.now();
        let src = sim_name(m.from);
        let Some(a) = self.nodes.get_mut(m.to).and_then(|n| n.alloc.as_mut()) else {
            return;
        };
        let r = match m.kind {
            Kind::Gossip => a.on_gossip(now, src, &m.payload),
            Kind::Broadcast => a.on_broadcast(now, src, &m.payload).map(|_| ()),
            Kind::Unicast => a.on_unicast(now, src, &m.payload),
        };
        if let Err(e) = r {
            self.stats.gossip_errors += 1;
            tracing::warn!("peer {} refused a message from {}: {e}", m.to, m.from);
            self.stats.last_gossip_error = Some(e.to_string());
        }
        self.drain(m.to);
        if self.cfg.check_every > 0 && self.stats.deliveries.is_multiple_of(self.cfg.check_every) {
            self.check();
        }
    }

    /// Scan every live peer's allocated addresses for one held by two peers; returns how many
    /// overlaps were found (also added to `stats.duplicates`).
    pub fn check(&mut self) -> u64 {
        self.stats.checks += 1;
        let mut runs: Vec<(Range, usize)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(a) = &n.alloc {
                runs.extend(a.space().allocated().map(|r| (r, i)));
            }
        }
        runs.sort();
        let mut found = 0;
        for w in runs.windows(2) {
            if let [(a, i), (b, j)] = w {
                if a.end > b.start && i != j {
                    found += 1;
                    tracing::error!("address range {b} allocated at peers {i} and {j}");
                }
            }
        }
        self.stats.duplicates += found;
        found
    }

    /// Run the network until `until` (simulated), with timers every 500 ms and periodic gossip.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let step = Duration::from_millis(500);
        while self.now < end {
            let tick_at = (self.now + step).min(end);
            while let Some(Reverse(m)) = self.queue.peek() {
                if m.at > tick_at {
                    break;
                }
                let Some(Reverse(m)) = self.queue.pop() else {
                    break;
                };
                self.now = self.now.max(m.at);
                self.deliver(m);
            }
            let before = self.now;
            self.now = tick_at;
            self.timers(before);
        }
    }

    /// Deliver messages (time moves with them) until none is left or `limit` passes.
    pub fn settle(&mut self, limit: Duration) {
        self.run_for(limit.min(Duration::from_secs(3600)));
    }

    fn timers(&mut self, before: Duration) {
        let now = self.now();
        let n = self.nodes.len();
        for i in 0..n {
            let due = self
                .nodes
                .get(i)
                .and_then(|n| n.alloc.as_ref())
                .and_then(|a| a.poll_timeout())
                .is_some_and(|t| t <= now.at);
            if due {
                if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.alloc.as_mut()) {
                    a.handle_timeout(now);
                }
                self.drain(i);
            }
            // periodic gossip every 30 s, spread by peer
            let period = 30_000u128;
            let offset = (i as u128 * 7919) % period;
            let crossed = (before.as_millis() + period - offset) / period
                != (self.now.as_millis() + period - offset) / period;
            if crossed && self.alive(i) {
                let targets: Vec<usize> = (0..self.cfg.gossip_fanout)
                    .filter_map(|_| {
                        let j = self.pick(n);
                        (j != i && self.reachable(i, j)).then_some(j)
                    })
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let payload: Option<Rc<[u8]>> = self
                    .nodes
                    .get_mut(i)
                    .and_then(|n| n.alloc.as_mut())
                    .map(|a| a.gossip(now).into());
                if let Some(p) = payload {
                    for j in targets {
                        self.send(i, j, Kind::Gossip, p.clone());
                    }
                }
            }
        }
    }

    /// Zero the byte and message counters (to leave start-up out of the figures).
    pub fn reset_counters(&mut self) {
        for n in &mut self.nodes {
            n.bytes_sent = 0;
        }
        self.stats.deliveries = 0;
        self.stats.dropped = 0;
    }

    /// Requests of peer `i` still unanswered among `reqs`.
    pub fn unanswered(&self, i: usize, reqs: &[u64]) -> usize {
        reqs.iter()
            .filter(|r| !self.replies.contains_key(&(i, **r)))
            .count()
    }

    /// Approximate memory a peer's IPAM state takes (see `Allocator::memory_estimate`).
    pub fn memory_of(&self, i: usize) -> usize {
        self.nodes
            .get(i)
            .and_then(|n| n.alloc.as_ref())
            .map_or(0, |a| a.memory_estimate())
    }
}

#[cfg(test)]
mod tests;
