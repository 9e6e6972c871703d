//! Helpers shared by the topology tests: a seeded RNG and tiny constructors.

use crate::PeerName;

use super::Peers;

pub use crate::rng::SplitMix;

/// A name from a small number.
pub fn n(v: u64) -> PeerName {
    PeerName::from_u64(v).expect("test names fit in 48 bits")
}

/// A table for local peer `v` with UID `v * 1000 + 1` and short ID `v % 4096`.
pub fn table(v: u64) -> Peers {
    Peers::new(n(v), format!("host{v}"), v * 1000 + 1, (v % 4096) as u16)
}

/// A random source that must not be used.
pub fn no_rng() -> impl FnMut(u64) -> u64 {
    |_| panic!("unexpected random draw")
}

/// Connect `a` and `b` as two routers would: each registers the other (handshake), adds the
/// connection (a dialled b), and marks it established if asked. Returns nothing; the caller
/// gossips.
pub fn connect(a: &mut Peers, b: &mut Peers, established: bool, rng: &mut SplitMix) {
    let (an, bn) = (a.local_name(), b.local_name());
    let (a_uid, b_uid) = (a.local().uid(), b.local().uid());
    let (a_sid, b_sid) = (a.local().short_id(), b.local().short_id());
    let (a_nick, b_nick) = (
        a.local().nick_name().to_owned(),
        b.local().nick_name().to_owned(),
    );
    a.fetch_with_default(bn, &b_nick, b_uid, b_sid, rng);
    b.fetch_with_default(an, &a_nick, a_uid, a_sid, rng);
    a.add_connection(bn, format!("{bn}:6783"), true, false)
        .expect("peer registered");
    b.add_connection(an, format!("{an}:40000"), false, false)
        .expect("peer registered");
    if established {
        a.connection_established(bn).expect("connection exists");
        b.connection_established(an).expect("connection exists");
    }
}

/// Tear down the connection between `a` and `b` on both sides (dereference, delete, GC).
pub fn disconnect(a: &mut Peers, b: &mut Peers, rng: &mut SplitMix) {
    let (an, bn) = (a.local_name(), b.local_name());
    a.dereference(bn).expect("referenced");
    a.delete_connection(bn, rng).expect("connected");
    b.dereference(an).expect("referenced");
    b.delete_connection(an, rng).expect("connected");
}

// ------------------------------------------------------------------------------------------
// An independent, deliberately naive model of Weave's route BFS, to check `Routes` against.

use std::collections::{BTreeMap, BTreeSet};

use super::{LinkFilter, PeerUpdate, Routes};

/// Naive BFS over the table: returns dst → first hop (start maps to itself), and whether
/// `stop_at` was hit. Written from the reference text, sharing no code with `routes.rs`.
pub fn naive_routes(
    peers: &Peers,
    start: PeerName,
    stop_at: Option<PeerName>,
    filter: LinkFilter,
) -> (bool, BTreeMap<PeerName, PeerName>) {
    let link = |x: PeerName, y: PeerName| -> bool {
        let (Some(px), Some(py)) = (peers.get(x), peers.get(y)) else {
            return false;
        };
        match (filter, px.connections().get(&y)) {
            (_, None) => false,
            (LinkFilter::All, Some(_)) => true,
            (LinkFilter::EstablishedSymmetric, Some(c)) => {
                c.established && py.connections().get(&x).is_some_and(|b| b.established)
            }
        }
    };
    let mut routes = BTreeMap::from([(start, start)]);
    let mut level = vec![start];
    while !level.is_empty() {
        level.sort();
        let mut next = Vec::new();
        for &cur in &level {
            if Some(cur) == stop_at {
                return (true, routes);
            }
            let remotes: Vec<PeerName> = peers
                .get(cur)
                .map(|p| p.connections().keys().copied().collect())
                .unwrap_or_default();
            for r in remotes {
                if !routes.contains_key(&r) && link(cur, r) {
                    let hop = if cur == start { r } else { routes[&cur] };
                    routes.insert(r, hop);
                    next.push(r);
                }
            }
        }
        level = next;
    }
    (false, routes)
}

/// Naive broadcast hops of `me` for a broadcast from `src`.
pub fn naive_broadcast(
    peers: &Peers,
    me: PeerName,
    src: PeerName,
    filter: LinkFilter,
) -> Vec<PeerName> {
    let (found, reached) = naive_routes(peers, src, Some(me), filter);
    if !found {
        return Vec::new();
    }
    let (_, mine) = naive_routes(peers, me, None, filter);
    let mut hops: Vec<PeerName> = mine
        .iter()
        .filter(|(dst, hop)| dst == hop && **dst != me && !reached.contains_key(dst))
        .map(|(d, _)| *d)
        .collect();
    hops.sort();
    hops
}

/// Flood a broadcast from `src` over everyone's broadcast hops (each peer using its own
/// `Routes`); returns how many times each peer received it (src counts as 1).
pub fn flood_counts(
    routes: &BTreeMap<PeerName, Routes>,
    src: PeerName,
    filter: LinkFilter,
) -> BTreeMap<PeerName, usize> {
    let mut counts = BTreeMap::from([(src, 1usize)]);
    let mut queue = std::collections::VecDeque::from([src]);
    while let Some(p) = queue.pop_front() {
        let Some(r) = routes.get(&p) else { continue };
        for &hop in r.broadcast_hops(filter, src) {
            let c = counts.entry(hop).or_insert(0);
            *c += 1;
            if *c == 1 {
                queue.push_back(hop);
            }
        }
    }
    counts
}

// ------------------------------------------------------------------------------------------
// A synchronous gossip simulator: every router is a `Peers` table; messages are decoded
// topology updates; one round = encode everything queued, deliver it all, apply, GC, relay.

/// Counters of a simulation run.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    pub rounds: usize,
    pub messages: usize,
    pub summaries: usize,
    pub improved: usize,
    pub full_gossip_rounds: usize,
}

/// The simulated mesh.
pub struct Mesh {
    pub peers: Vec<Peers>,
    pub pos: BTreeMap<PeerName, usize>,
    pub rng: SplitMix,
    outbox: Vec<BTreeMap<usize, BTreeSet<PeerName>>>,
    routes: Vec<Option<Routes>>,
    pub stats: SimStats,
}

impl Mesh {
    /// `count` routers with random names, UIDs and short IDs drawn from `seed`.
    pub fn new(count: usize, seed: u64) -> Mesh {
        let mut rng = SplitMix(seed);
        let mut peers = Vec::with_capacity(count);
        let mut pos = BTreeMap::new();
        while peers.len() < count {
            let name = PeerName::from_random(rng.next_u64().to_be_bytes()[..6].try_into().unwrap());
            if pos.contains_key(&name) {
                continue;
            }
            pos.insert(name, peers.len());
            let uid = rng.next_u64() | 1;
            let sid = (rng.next_u64() % 4096) as u16;
            peers.push(Peers::new(name, format!("h{}", peers.len()), uid, sid));
        }
        Mesh {
            outbox: vec![BTreeMap::new(); count],
            routes: (0..count).map(|_| None).collect(),
            peers,
            pos,
            rng,
            stats: SimStats::default(),
        }
    }

    pub fn name(&self, i: usize) -> PeerName {
        self.peers[i].local_name()
    }

    fn routes(&mut self, i: usize) -> &Routes {
        if self.routes[i].is_none() {
            self.routes[i] = Some(Routes::calculate(&self.peers[i]));
        }
        self.routes[i].as_ref().expect("just computed")
    }

    fn touch(&mut self, i: usize) {
        self.routes[i] = None;
    }

    /// Queue `names` from `i` to a random neighbour subset (GossipNeighbourSubset).
    fn queue_subset(&mut self, i: usize, except: Option<PeerName>, names: &BTreeSet<PeerName>) {
        let mut rng = self.rng.clone();
        let hops = self.routes(i).random_neighbours(except, &mut rng);
        self.rng = rng;
        for h in hops {
            if let Some(&j) = self.pos.get(&h) {
                self.outbox[i]
                    .entry(j)
                    .or_default()
                    .extend(names.iter().copied());
            }
        }
    }

    fn queue_full(&mut self, i: usize, j: usize) {
        let all: Vec<PeerName> = self.peers[i].names().collect();
        self.outbox[i].entry(j).or_default().extend(all);
    }

    /// Bring up a connection between routers `i` (dialler) and `j`, established, queuing what
    /// Weave would send: a full dump to a new or restarted peer and the local update.
    pub fn connect(&mut self, i: usize, j: usize) {
        let (ni, nj) = (self.name(i), self.name(j));
        let info = |p: &Peers| {
            let l = p.local();
            (l.nick_name().to_owned(), l.uid(), l.short_id())
        };
        let (inick, iuid, isid) = info(&self.peers[i]);
        let (jnick, juid, jsid) = info(&self.peers[j]);
        let fi = self.peers[i].fetch_with_default(nj, &jnick, juid, jsid, &mut self.rng);
        let fj = self.peers[j].fetch_with_default(ni, &inick, iuid, isid, &mut self.rng);
        self.peers[i]
            .add_connection(nj, format!("{nj}:6783"), true, false)
            .unwrap();
        self.peers[j]
            .add_connection(ni, format!("{ni}:51000"), false, false)
            .unwrap();
        self.peers[i].connection_established(nj).unwrap();
        self.peers[j].connection_established(ni).unwrap();
        self.touch(i);
        self.touch(j);
        if fi.is_new || fi.is_restarted {
            self.queue_full(i, j);
        }
        if fj.is_new || fj.is_restarted {
            self.queue_full(j, i);
        }
        self.queue_subset(i, None, &BTreeSet::from([ni, nj]));
        self.queue_subset(j, None, &BTreeSet::from([nj, ni]));
    }

    /// Tear down the connection between `i` and `j` on both sides.
    pub fn disconnect(&mut self, i: usize, j: usize) {
        for (a, b) in [(i, j), (j, i)] {
            let nb = self.name(b);
            self.peers[a].dereference(nb).unwrap();
            let gc = self.peers[a].delete_connection(nb, &mut self.rng).unwrap();
            self.touch(a);
            for o in self.outbox[a].values_mut() {
                for r in &gc.removed {
                    o.remove(r);
                }
            }
            self.outbox[a].remove(&b);
            let me = self.name(a);
            self.queue_subset(a, None, &BTreeSet::from([me]));
        }
    }

    /// Replace router `i` by a fresh incarnation (same name, new UID and short ID), after
    /// tearing down all its connections. Returns its old neighbours.
    pub fn restart(&mut self, i: usize) -> Vec<usize> {
        let me = self.name(i);
        let nbs: Vec<usize> = self.peers[i]
            .local()
            .connections()
            .keys()
            .filter_map(|n| self.pos.get(n).copied())
            .collect();
        for &j in &nbs {
            self.disconnect(i, j);
        }
        let uid = self.rng.next_u64() | 1;
        let sid = (self.rng.next_u64() % 4096) as u16;
        self.peers[i] = Peers::new(me, format!("h{i}-restarted"), uid, sid);
        self.outbox[i].clear();
        self.touch(i);
        nbs
    }

    fn pending(&self) -> bool {
        self.outbox
            .iter()
            .any(|o| o.values().any(|s| !s.is_empty()))
    }

    /// One synchronous round. Returns the number of improvements it caused.
    pub fn round(&mut self) -> usize {
        // Encode at send time from the current tables.
        let mut msgs: Vec<(usize, usize, Vec<PeerUpdate>)> = Vec::new();
        for i in 0..self.peers.len() {
            for (j, names) in std::mem::take(&mut self.outbox[i]) {
                let upd = self.peers[i].incremental_update(&names);
                if !upd.is_empty() {
                    msgs.push((i, j, upd));
                }
            }
        }
        self.stats.rounds += 1;
        self.stats.messages += msgs.len();
        let mut relays = Vec::new();
        let mut changed = BTreeSet::new();
        let mut improved_total = 0;
        for (from, to, upd) in msgs {
            self.stats.summaries += upd.len();
            let out = self.peers[to]
                .apply_update(&upd, &mut self.rng)
                .expect("simulated updates are well formed");
            if !out.improved.is_empty() || out.local_changed {
                changed.insert(to);
            }
            improved_total += out.improved.len();
            if out.local_changed {
                relays.push((to, None, BTreeSet::from([self.name(to)])));
            }
            if !out.improved.is_empty() {
                relays.push((to, Some(self.name(from)), out.improved));
            }
        }
        // The deferred GC, then relaying (minus what GC removed).
        let mut removed: BTreeMap<usize, BTreeSet<PeerName>> = BTreeMap::new();
        for &i in &changed {
            let gc = self.peers[i].garbage_collect(&mut self.rng);
            if gc.local_changed {
                relays.push((i, None, BTreeSet::from([self.name(i)])));
            }
            removed.insert(i, gc.removed.into_iter().collect());
            self.touch(i);
        }
        for (i, except, mut names) in relays {
            if let Some(r) = removed.get(&i) {
                names.retain(|n| !r.contains(n));
            }
            if !names.is_empty() {
                self.queue_subset(i, except, &names);
            }
        }
        self.stats.improved += improved_total;
        improved_total
    }

    /// Run rounds until nothing is queued, then periodic full-gossip rounds (each router sends
    /// its full state to a random neighbour subset) until one brings no improvement.
    pub fn converge(&mut self, max_rounds: usize) {
        loop {
            while self.pending() {
                assert!(self.stats.rounds < max_rounds, "no convergence");
                self.round();
            }
            self.stats.full_gossip_rounds += 1;
            for i in 0..self.peers.len() {
                let all: BTreeSet<PeerName> = self.peers[i].names().collect();
                self.queue_subset(i, None, &all);
            }
            if self.round() == 0 && !self.pending() {
                return;
            }
        }
    }

    /// Everyone's routes, computed by each router from its own table.
    pub fn all_routes(&self) -> BTreeMap<PeerName, Routes> {
        self.peers
            .iter()
            .map(|p| (p.local_name(), Routes::calculate(p)))
            .collect()
    }
}
