//! Route computation (reference §3.6, §7).
//!
//! Routes are computed over a [`Graph`]: a snapshot of the peer table with peers numbered in
//! ascending name order and two compressed adjacency lists, one per [`LinkFilter`]. Because index
//! order *is* name order, Weave's "sort each BFS level by name" is a sort of small integers.
//!
//! Cost (V peers, E connections): building the snapshot is O(V + E log V) (a binary search of
//! the name list per connection, and of the remote's short sorted list for the symmetry
//! check); one BFS is O(V log V + E) time and O(V) memory, with no allocation per hop; each
//! broadcast table is one BFS, computed on first use and cached.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::PeerName;

use super::{draw, Peers, RandomSource};

/// Which gossiped connections a route may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkFilter {
    /// X→Y counts only if X lists Y as established **and** Y lists X as established. Used for
    /// the data plane (`unicast`, `broadcast`).
    EstablishedSymmetric,
    /// X→Y counts whenever X lists Y, established or not, whether or not Y lists X. Used for
    /// gossip relaying (`unicastAll`, `broadcastAll`), random neighbours and GC.
    All,
}

const UNREACHED: u32 = u32::MAX;

/// A compact, immutable snapshot of the topology for BFS.
#[derive(Debug, Clone)]
struct Graph {
    /// Peer names in ascending order; a peer's index is its position here.
    names: Vec<PeerName>,
    sym: Adjacency,
    all: Adjacency,
}

/// Compressed adjacency lists: the neighbours of `i` are `targets[offsets[i]..offsets[i+1]]`,
/// in ascending index (= name) order.
#[derive(Debug, Clone, Default)]
struct Adjacency {
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

impl Adjacency {
    fn of(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

impl Graph {
    fn build(peers: &Peers) -> Self {
        let names: Vec<PeerName> = peers.names().collect();
        let index = |n: &PeerName| names.binary_search(n).ok().map(|i| i as u32);
        // Pass 1: every gossiped link X→Y to a name in the table, with X's `established` flag.
        // `connections` is a BTreeMap and indices follow name order, so each list is sorted.
        let mut all = Adjacency {
            offsets: Vec::with_capacity(names.len() + 1),
            targets: Vec::new(),
        };
        let mut established: Vec<bool> = Vec::new();
        all.offsets.push(0);
        for peer in peers.iter() {
            for (remote_name, conn) in peer.connections() {
                // A connection to a name no longer in the table (its record was collected while
                // this peer was kept by a local reference) leads nowhere.
                let Some(j) = index(remote_name) else {
                    continue;
                };
                all.targets.push(j);
                established.push(conn.established);
            }
            all.offsets.push(all.targets.len() as u32);
        }
        // Pass 2: X→Y is symmetric-established if X says established and Y's (sorted) list
        // has an established link back to X.
        let mut sym = Adjacency {
            offsets: Vec::with_capacity(names.len() + 1),
            targets: Vec::new(),
        };
        sym.offsets.push(0);
        for i in 0..names.len() {
            let (lo, hi) = (all.offsets[i] as usize, all.offsets[i + 1] as usize);
            for k in lo..hi {
                let j = all.targets[k] as usize;
                if !established[k] {
                    continue;
                }
                let (jlo, jhi) = (all.offsets[j] as usize, all.offsets[j + 1] as usize);
                let back = all.targets[jlo..jhi]
                    .binary_search(&(i as u32))
                    .is_ok_and(|pos| established[jlo + pos]);
                if back {
                    sym.targets.push(j as u32);
                }
            }
            sym.offsets.push(sym.targets.len() as u32);
        }
        Graph { names, sym, all }
    }

    fn index(&self, name: PeerName) -> Option<u32> {
        self.names.binary_search(&name).ok().map(|i| i as u32)
    }

    fn adjacency(&self, filter: LinkFilter) -> &Adjacency {
        match filter {
            LinkFilter::EstablishedSymmetric => &self.sym,
            LinkFilter::All => &self.all,
        }
    }

    /// Weave's route BFS from `start`. Fills `hop` (len V): `hop[start] = start`, every reached
    /// peer gets the index of its first hop from `start`, the rest `UNREACHED`. Levels are
    /// processed in ascending name order, so a peer is claimed by the lowest-named peer of the
    /// previous level that links to it. With `stop_at`, returns `true` as soon as that peer comes
    /// up in its level's order (the peers reached so far stay marked).
    fn bfs(&self, filter: LinkFilter, start: u32, stop_at: Option<u32>, hop: &mut [u32]) -> bool {
        let adj = self.adjacency(filter);
        hop.fill(UNREACHED);
        hop[start as usize] = start;
        let mut level = vec![start];
        let mut next = Vec::new();
        while !level.is_empty() {
            level.sort_unstable();
            for &cur in &level {
                if Some(cur) == stop_at {
                    return true;
                }
                let via = if cur == start {
                    None
                } else {
                    Some(hop[cur as usize])
                };
                for &nb in adj.of(cur) {
                    if hop[nb as usize] == UNREACHED {
                        hop[nb as usize] = via.unwrap_or(nb);
                        next.push(nb);
                    }
                }
            }
            std::mem::swap(&mut level, &mut next);
            next.clear();
        }
        false
    }
}

/// The routing tables of one peer (the *origin*, normally the local peer), computed from one
/// snapshot of the peer table. Recompute after the table changes (Weave coalesces recalculation
/// to at most every 100 ms; that timing belongs to the caller).
#[derive(Debug)]
pub struct Routes {
    graph: Graph,
    origin: u32,
    unicast: Vec<u32>,
    unicast_all: Vec<u32>,
    broadcast: Vec<OnceLock<Vec<PeerName>>>,
    broadcast_all: Vec<OnceLock<Vec<PeerName>>>,
}

impl Routes {
    /// Routes of the table's local peer.
    pub fn calculate(peers: &Peers) -> Routes {
        let graph = Graph::build(peers);
        let origin = graph
            .index(peers.local_name())
            .expect("invariant: the local peer is always in the table");
        Self::with_origin(graph, origin)
    }

    /// Routes as `origin` would compute them from the same table (used for simulations and for
    /// checking that all peers agree). `None` if `origin` is not in the table.
    pub fn calculate_from(peers: &Peers, origin: PeerName) -> Option<Routes> {
        let graph = Graph::build(peers);
        let origin = graph.index(origin)?;
        Some(Self::with_origin(graph, origin))
    }

    fn with_origin(graph: Graph, origin: u32) -> Routes {
        let v = graph.names.len();
        let mut unicast = vec![UNREACHED; v];
        let mut unicast_all = vec![UNREACHED; v];
        graph.bfs(LinkFilter::EstablishedSymmetric, origin, None, &mut unicast);
        graph.bfs(LinkFilter::All, origin, None, &mut unicast_all);
        Routes {
            origin,
            unicast,
            unicast_all,
            broadcast: (0..v).map(|_| OnceLock::new()).collect(),
            broadcast_all: (0..v).map(|_| OnceLock::new()).collect(),
            graph,
        }
    }

    /// The peer these routes are for.
    pub fn origin(&self) -> PeerName {
        self.graph.names[self.origin as usize]
    }

    fn hops(&self, filter: LinkFilter) -> &[u32] {
        match filter {
            LinkFilter::EstablishedSymmetric => &self.unicast,
            LinkFilter::All => &self.unicast_all,
        }
    }

    /// Next hop towards `dst` under `filter`; `None` if `dst` is the origin or unreachable.
    pub fn next_hop(&self, filter: LinkFilter, dst: PeerName) -> Option<PeerName> {
        let i = self.graph.index(dst)?;
        if i == self.origin {
            return None;
        }
        let h = self.hops(filter)[i as usize];
        (h != UNREACHED).then(|| self.graph.names[h as usize])
    }

    /// Data-plane next hop (`unicast`): over established, symmetric links only.
    pub fn unicast(&self, dst: PeerName) -> Option<PeerName> {
        self.next_hop(LinkFilter::EstablishedSymmetric, dst)
    }

    /// Gossip next hop (`unicastAll`): over all gossiped links.
    pub fn unicast_all(&self, dst: PeerName) -> Option<PeerName> {
        self.next_hop(LinkFilter::All, dst)
    }

    /// Whether `dst` is reachable from the origin under `filter` (the origin itself is).
    pub fn is_reachable(&self, filter: LinkFilter, dst: PeerName) -> bool {
        self.graph
            .index(dst)
            .is_some_and(|i| self.hops(filter)[i as usize] != UNREACHED)
    }

    /// The whole next-hop table under `filter`: destination → next hop, origin excluded.
    pub fn table(&self, filter: LinkFilter) -> BTreeMap<PeerName, PeerName> {
        self.hops(filter)
            .iter()
            .enumerate()
            .filter(|&(i, &h)| h != UNREACHED && i as u32 != self.origin)
            .map(|(i, &h)| (self.graph.names[i], self.graph.names[h as usize]))
            .collect()
    }

    /// The origin's direct neighbours under `filter`, in name order.
    pub fn neighbours(&self, filter: LinkFilter) -> Vec<PeerName> {
        self.graph
            .adjacency(filter)
            .of(self.origin)
            .iter()
            .map(|&j| self.graph.names[j as usize])
            .collect()
    }

    /// Data-plane broadcast hops (`broadcast[src]`): the neighbours the origin forwards a
    /// broadcast from `src` to, over established, symmetric links. Name order.
    pub fn broadcast(&self, src: PeerName) -> &[PeerName] {
        self.broadcast_hops(LinkFilter::EstablishedSymmetric, src)
    }

    /// Gossip broadcast hops (`broadcastAll[src]`), over all gossiped links.
    pub fn broadcast_all(&self, src: PeerName) -> &[PeerName] {
        self.broadcast_hops(LinkFilter::All, src)
    }

    /// Broadcast hops for `src` under `filter`: run the BFS from `src`, stopping when the origin
    /// comes up; the hops are the origin's neighbours that BFS had not reached by then. Empty if
    /// `src` is unknown or the origin is unreachable from it. Computed once per source.
    pub fn broadcast_hops(&self, filter: LinkFilter, src: PeerName) -> &[PeerName] {
        let Some(s) = self.graph.index(src) else {
            return &[];
        };
        let cache = match filter {
            LinkFilter::EstablishedSymmetric => &self.broadcast,
            LinkFilter::All => &self.broadcast_all,
        };
        cache[s as usize].get_or_init(|| {
            let mut reached = vec![UNREACHED; self.graph.names.len()];
            if !self.graph.bfs(filter, s, Some(self.origin), &mut reached) {
                return Vec::new();
            }
            self.graph
                .adjacency(filter)
                .of(self.origin)
                .iter()
                .filter(|&&nb| reached[nb as usize] == UNREACHED)
                .map(|&nb| self.graph.names[nb as usize])
                .collect()
        })
    }

    /// Weave's `randomNeighbours(except)` for tag-4 gossip fan-out: weight each next hop of
    /// `unicastAll` (other than `except`) by how many destinations route through it, then draw
    /// `min(⌊2·log2 n⌋, #hops)` distinct hops, each draw weighted, where `n` counts the entries
    /// of `unicastAll` including the origin **(inferred: n = size of Weave's map)**. Candidates
    /// are scanned in name order so a seeded `rng` gives a reproducible choice.
    pub fn random_neighbours<R: RandomSource + ?Sized>(
        &self,
        except: Option<PeerName>,
        rng: &mut R,
    ) -> Vec<PeerName> {
        let except = except.and_then(|e| self.graph.index(e));
        let mut weights: BTreeMap<u32, u64> = BTreeMap::new();
        let mut entries = 0usize;
        for (i, &h) in self.unicast_all.iter().enumerate() {
            if h == UNREACHED {
                continue;
            }
            entries += 1;
            if i as u32 == self.origin || Some(h) == except {
                continue;
            }
            *weights.entry(h).or_insert(0) += 1;
        }
        let fan_out = (2.0 * (entries.max(1) as f64).log2()).floor() as usize;
        let count = fan_out.min(weights.len());
        let mut total: u64 = weights.values().sum();
        let mut chosen = Vec::with_capacity(count);
        while chosen.len() < count && total > 0 {
            let mut r = draw(rng, total);
            let mut pick = None;
            for (&hop, &w) in &weights {
                if r < w {
                    pick = Some((hop, w));
                    break;
                }
                r -= w;
            }
            let Some((hop, w)) = pick else { break };
            weights.remove(&hop);
            total -= w;
            chosen.push(self.graph.names[hop as usize]);
        }
        chosen
    }
}
