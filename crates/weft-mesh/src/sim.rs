//! A deterministic in-process simulation of a mesh: many [`Mesh`] cores, simulated links with a
//! fixed latency and a simulated clock. No sockets, no threads, no wall clock: the same seed
//! gives the same run. Used by tests (convergence, partitions) and by `bench/`.
//!
//! Links are made "after the handshake": both ends get [`Mesh::connection_ready`] and, one
//! latency later, [`Mesh::connection_established`], which is what the wire and overlay layers
//! report in a real router. Gossip messages travel as [`GossipMsg`] values and are delivered
//! in time order.
//!
//! A node may host a [`SimService`]: the simulated counterpart of a router's service task
//! (IPAM, DNS) for a channel listed in its [`MeshConfig::channels`]. It receives the node's
//! [`ChannelEvent`]s as the node produces them, answers through the node's [`Mesh`] methods
//! (`gossip_to`, `broadcast`, `unicast`…) and may have a timer of its own, so a service's
//! state machine runs over the real mesh core.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::gossip::GossipMsg;
use crate::mesh::{ChannelEvent, ConnId, Hello, Mesh, MeshConfig, MeshLimits, MeshTimings, Output};
use crate::PeerName;

/// Totals of one simulated run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Simulated time from the start of the phase until every table agreed.
    pub converged_after: Option<Duration>,
    pub messages: u64,
    pub bytes: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: Instant,
    seq: u64,
    to: usize,
    conn: ConnId,
    kind: EventKind,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    Established,
    Gossip(GossipMsgOrd),
}

/// `GossipMsg` ordered by nothing (events are ordered by time and sequence first).
#[derive(Debug, PartialEq, Eq)]
struct GossipMsgOrd(GossipMsg);

impl PartialOrd for GossipMsgOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GossipMsgOrd {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// A service hosted by a simulated node (see the module docs). `Any` lets a test get its
/// concrete type back ([`Sim::service`], [`Sim::with_service`]).
pub trait SimService: Any {
    /// One event of the node's mesh; answer through `mesh`.
    fn on_event(&mut self, now: Instant, event: ChannelEvent, mesh: &mut Mesh);
    /// When [`SimService::handle_timeout`] should next run.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The service's timer came due.
    fn handle_timeout(&mut self, _now: Instant, _mesh: &mut Mesh) {}
}

/// The simulated mesh.
pub struct Sim {
    pub now: Instant,
    /// The routers. Read freely; change one through [`Sim::with_node`] so that its outputs
    /// and timer are picked up.
    pub nodes: Vec<Mesh>,
    /// The service each node hosts, if any.
    services: Vec<Option<Box<dyn SimService>>>,
    latency: Duration,
    /// conn id → (owner node, peer node, the peer's conn id)
    conns: BTreeMap<ConnId, (usize, usize, ConnId)>,
    links: BTreeMap<(usize, usize), (ConnId, ConnId)>,
    next_conn: ConnId,
    queue: BinaryHeap<Reverse<Event>>,
    /// `(due, node)` for every node's `poll_timeout`, pushed again whenever the node is
    /// touched; an entry that no longer matches the node's `poll_timeout` is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Nodes called since their outputs were last collected (and their timer registered).
    touched: Vec<usize>,
    is_touched: Vec<bool>,
    seq: u64,
    messages: u64,
    bytes: u64,
}

/// The configuration of simulated node `i` (a function of the run's seed).
pub fn node_config(i: usize, seed: u64) -> MeshConfig {
    MeshConfig {
        name: node_name(i),
        nickname: format!("n{i}"),
        uid: seed.wrapping_mul(1_000_003).wrapping_add(i as u64 + 1),
        port: 6783,
        discovery: false,
        conn_limit: 0,
        timings: MeshTimings::default(),
        seed: seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        limits: MeshLimits::default(),
        channels: Vec::new(),
    }
}

/// The simulated name of node `i`.
pub fn node_name(i: usize) -> PeerName {
    PeerName::from_bytes([0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(198, 18, (i >> 8) as u8, i as u8),
        6783,
    ))
}

impl Sim {
    /// `n` routers with no connections.
    pub fn new(n: usize, seed: u64, latency: Duration) -> Self {
        Self::with_configs(n, latency, |i| node_config(i, seed))
    }

    /// `n` routers with no connections, node `i` configured by `config(i)` (start from
    /// [`node_config`]; the name must be [`node_name`]`(i)`).
    pub fn with_configs(
        n: usize,
        latency: Duration,
        config: impl FnMut(usize) -> MeshConfig,
    ) -> Self {
        let now = Instant::now();
        let nodes = (0..n).map(config).map(|c| Mesh::new(c, now)).collect();
        Sim {
            now,
            nodes,
            services: (0..n).map(|_| None).collect(),
            latency,
            conns: BTreeMap::new(),
            links: BTreeMap::new(),
            next_conn: 1,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            touched: (0..n).collect(),
            is_touched: vec![true; n],
            seq: 0,
            messages: 0,
            bytes: 0,
        }
    }

    /// Note that node `i` was called: its outputs and timer are collected next.
    fn touch(&mut self, i: usize) {
        if !self.is_touched[i] {
            self.is_touched[i] = true;
            self.touched.push(i);
        }
    }

    /// Run `f` on node `i` (marking it touched), e.g. to call [`Mesh::connect`] in a test.
    pub fn with_node<T>(&mut self, i: usize, f: impl FnOnce(&mut Mesh, Instant) -> T) -> T {
        self.touch(i);
        let now = self.now;
        f(&mut self.nodes[i], now)
    }

    /// Let node `i` host `service` (replacing any it had): it gets the node's channel events
    /// from now on.
    pub fn set_service(&mut self, i: usize, service: Box<dyn SimService>) {
        self.services[i] = Some(service);
        self.touch(i);
    }

    /// The service node `i` hosts, if it is an `S`.
    pub fn service<S: SimService>(&self, i: usize) -> Option<&S> {
        let s: &dyn Any = self.services.get(i)?.as_deref()?;
        s.downcast_ref()
    }

    /// Run `f` on node `i`'s service (if it is an `S`) and mesh, e.g. to make a request of
    /// it in a test; the node's outputs and timers are picked up afterwards.
    pub fn with_service<S: SimService, T>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut S, &mut Mesh, Instant) -> T,
    ) -> Option<T> {
        self.touch(i);
        let now = self.now;
        let s: &mut dyn Any = self.services.get_mut(i)?.as_deref_mut()?;
        let s = s.downcast_mut::<S>()?;
        Some(f(s, &mut self.nodes[i], now))
    }

    /// When node `i` next has something due: its mesh's or its service's timer.
    fn due(&self, i: usize) -> Option<Instant> {
        let service = self.services[i].as_ref().and_then(|s| s.poll_timeout());
        [self.nodes[i].poll_timeout(), service]
            .into_iter()
            .flatten()
            .min()
    }

    /// Add a router that is not connected to anything yet; returns its index. `config` gets
    /// the new index (start from [`node_config`]).
    pub fn add_node(&mut self, config: impl FnOnce(usize) -> MeshConfig) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Mesh::new(config(i), self.now));
        self.services.push(None);
        self.is_touched.push(false);
        self.touch(i);
        i
    }

    fn push(&mut self, at: Instant, to: usize, conn: ConnId, kind: EventKind) {
        self.seq += 1;
        self.queue.push(Reverse(Event {
            at,
            seq: self.seq,
            to,
            conn,
            kind,
        }));
    }

    /// Connect `a` (dialling) and `b`, as a completed handshake would.
    pub fn connect(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if a == b || self.links.contains_key(&key) {
            return;
        }
        let (ca, cb) = (self.next_conn, self.next_conn + 1);
        self.next_conn += 2;
        let conn_uid = (ca << 20) ^ cb;
        let now = self.now;
        for (me, other, id, outbound) in [(a, b, ca, true), (b, a, cb, false)] {
            let hello = Hello {
                name: node_name(other),
                nickname: format!("n{other}"),
                uid: self.nodes[other].peers().local().uid(),
                short_id: None,
                conn_uid,
                outbound,
                remote_addr: node_addr(other),
                target: None,
                must_be_known: false,
                overlay: None,
                encrypted: None,
            };
            self.touch(me);
            if self.nodes[me].connection_ready(now, id, hello).is_err() {
                return;
            }
            self.conns
                .insert(id, (me, other, if id == ca { cb } else { ca }));
        }
        self.links.insert(key, (ca, cb));
        let at = now + self.latency;
        self.push(at, a, ca, EventKind::Established);
        self.push(at, b, cb, EventKind::Established);
    }

    /// Cut the link between `a` and `b`.
    pub fn disconnect(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if let Some((ca, cb)) = self.links.remove(&key) {
            let now = self.now;
            for id in [ca, cb] {
                if let Some((owner, _, _)) = self.conns.remove(&id) {
                    self.touch(owner);
                    self.nodes[owner].connection_closed(now, id, Some("link cut".into()));
                }
            }
        }
    }

    /// Collect the outputs of every touched node into the event queue, and register its timer.
    fn collect(&mut self) {
        while let Some(i) = self.touched.pop() {
            self.is_touched[i] = false;
            while let Some(out) = self.nodes[i].poll_output() {
                match out {
                    Output::Send { conn, msg } => {
                        if let Some(&(_, peer, peer_conn)) = self.conns.get(&conn) {
                            self.messages += 1;
                            self.bytes += msg.payload.len() as u64 + msg.channel.len() as u64 + 16;
                            let at = self.now + self.latency;
                            self.push(at, peer, peer_conn, EventKind::Gossip(GossipMsgOrd(msg)));
                        }
                    }
                    Output::Close { conn, .. } => {
                        if let Some(&(a, b, _)) = self.conns.get(&conn) {
                            self.disconnect(a, b);
                        }
                    }
                    Output::Channel(event) => {
                        if let Some(service) = self.services[i].as_mut() {
                            service.on_event(self.now, event, &mut self.nodes[i]);
                        }
                    }
                    Output::Dial(_) | Output::PersistTargets(_) => {}
                }
            }
            if let Some(t) = self.due(i) {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    /// The earliest registered timer that is still current.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.due(i) == Some(t) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Advance until every table agrees and nothing is in flight, or `limit` of simulated
    /// time passes. Periodic gossip keeps running, so "quiet" means no pending work other than
    /// timers further out than one gossip interval.
    ///
    /// Cost per step is proportional to the nodes that have something to do (a heap of
    /// timers, a list of touched nodes), not to the size of the mesh.
    pub fn run_until_converged(&mut self, limit: Duration) -> SimReport {
        self.run_until(limit, Sim::converged)
    }

    /// Advance until nothing is in flight and `done` holds, or `limit` of simulated time
    /// passes (`converged_after` is then `None`). `done` is asked whenever the queue of
    /// messages is empty, e.g. "every service agrees".
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> SimReport {
        let start = self.now;
        let (m0, b0) = (self.messages, self.bytes);
        let deadline = start + limit;
        let mut converged_after = None;
        loop {
            self.collect();
            let next_timer = self.next_timer();
            let next_event = self.queue.peek().map(|Reverse(e)| e.at);
            if next_event.is_none() && done(self) {
                converged_after = Some(self.now - start);
                break;
            }
            let Some(at) = [next_timer, next_event].into_iter().flatten().min() else {
                break;
            };
            if at > deadline {
                break;
            }
            self.now = self.now.max(at);
            let now = self.now;
            while self.queue.peek().is_some_and(|Reverse(e)| e.at <= now) {
                let Some(Reverse(e)) = self.queue.pop() else {
                    break;
                };
                match e.kind {
                    EventKind::Established => {
                        self.touch(e.to);
                        self.nodes[e.to].connection_established(now, e.conn);
                    }
                    EventKind::Gossip(GossipMsgOrd(msg)) => {
                        if self.conns.contains_key(&e.conn) {
                            self.touch(e.to);
                            // A protocol error would close the connection in a router.
                            if self.nodes[e.to].handle_gossip(now, e.conn, msg).is_err() {
                                if let Some(&(a, b, _)) = self.conns.get(&e.conn) {
                                    self.disconnect(a, b);
                                }
                            }
                        }
                    }
                }
            }
            while let Some(&Reverse((t, i))) = self.timers.peek() {
                if t > now {
                    break;
                }
                self.timers.pop();
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.touch(i);
                    self.nodes[i].handle_timeout(now);
                }
                let service_due = self.services[i]
                    .as_ref()
                    .and_then(|s| s.poll_timeout())
                    .is_some_and(|t| t <= now);
                if service_due {
                    self.touch(i);
                    if let Some(service) = self.services[i].as_mut() {
                        service.handle_timeout(now, &mut self.nodes[i]);
                    }
                }
            }
        }
        SimReport {
            converged_after,
            messages: self.messages - m0,
            bytes: self.bytes - b0,
        }
    }

    /// Every node's view of every node it can reach matches that node's own record, and
    /// every node knows exactly the nodes of its connected component.
    pub fn converged(&self) -> bool {
        let truth: Vec<(u64, u64)> = self
            .nodes
            .iter()
            .map(|n| (n.peers().local().uid(), n.peers().local().version()))
            .collect();
        let (comp_of, comps) = self.components();
        self.nodes.iter().enumerate().all(|(i, n)| {
            let comp = &comps[comp_of[i]];
            n.peers().len() == comp.len()
                && comp.iter().all(|&j| {
                    n.peers()
                        .get(node_name(j))
                        .is_some_and(|p| (p.uid(), p.version()) == truth[j])
                })
        })
    }

    /// The connected components (by live links): each node's component index, and the members
    /// of each component.
    fn components(&self) -> (Vec<usize>, Vec<Vec<usize>>) {
        let n = self.nodes.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in self.links.keys() {
            adj[a].push(b);
            adj[b].push(a);
        }
        let mut comp_of = vec![usize::MAX; n];
        let mut comps: Vec<Vec<usize>> = Vec::new();
        for s in 0..n {
            if comp_of[s] != usize::MAX {
                continue;
            }
            let id = comps.len();
            let mut members = vec![s];
            comp_of[s] = id;
            let mut i = 0;
            while i < members.len() {
                for &m in &adj[members[i]] {
                    if comp_of[m] == usize::MAX {
                        comp_of[m] = id;
                        members.push(m);
                    }
                }
                i += 1;
            }
            comps.push(members);
        }
        (comp_of, comps)
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn links(&self) -> Vec<(usize, usize)> {
        self.links.keys().copied().collect()
    }
}

/// A deterministic "each peer connects to ~k others" mesh: a ring (so it is connected) plus
/// random chords, from a seed.
pub fn random_mesh_links(n: usize, k: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = crate::rng::SplitMix(seed);
    let mut next = move || rng.next_u64();
    let mut links = std::collections::BTreeSet::new();
    if n < 2 {
        return Vec::new();
    }
    for i in 0..n {
        links.insert((i.min((i + 1) % n), i.max((i + 1) % n)));
    }
    let extra = n * k.saturating_sub(2) / 2;
    while links.len() < n + extra && links.len() < n * (n - 1) / 2 {
        let a = (next() % n as u64) as usize;
        let b = (next() % n as u64) as usize;
        if a != b {
            links.insert((a.min(b), a.max(b)));
        }
    }
    links.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy service on channel "max": every node learns the highest value any node holds.
    /// Broadcasts are relayed when they raise the value (as Weave relays what
    /// `OnGossipBroadcast` returns); tag-4 gossip is not relayed (as IPAM).
    #[derive(Default)]
    struct MaxService {
        value: u64,
        unicasts: Vec<(PeerName, Vec<u8>)>,
        /// Broadcast this value when the time comes.
        announce: Option<(Instant, u64)>,
        new_connections: usize,
    }

    const MAX: &str = "max";

    fn decode(payload: &[u8]) -> u64 {
        payload
            .try_into()
            .map(u64::from_be_bytes)
            .expect("8-byte values in this test")
    }

    impl SimService for MaxService {
        fn on_event(&mut self, _now: Instant, event: ChannelEvent, mesh: &mut Mesh) {
            match event {
                ChannelEvent::Gossip { payload, .. } => {
                    self.value = self.value.max(decode(&payload));
                }
                ChannelEvent::Broadcast { src, payload, .. } => {
                    let v = decode(&payload);
                    if v > self.value {
                        self.value = v;
                        mesh.relay_broadcast(MAX, src, payload);
                    }
                }
                ChannelEvent::Unicast { src, payload, .. } => self.unicasts.push((src, payload)),
                ChannelEvent::NewConnection { peer } => {
                    self.new_connections += 1;
                    mesh.gossip_to(peer, MAX, self.value.to_be_bytes().to_vec());
                }
                ChannelEvent::PeriodicGossip => {
                    mesh.gossip_neighbours(MAX, self.value.to_be_bytes().to_vec())
                }
                ChannelEvent::PeersChanged | ChannelEvent::PeerGone { .. } => {}
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.announce.map(|(at, _)| at)
        }

        fn handle_timeout(&mut self, now: Instant, mesh: &mut Mesh) {
            if let Some((at, v)) = self.announce {
                if at <= now {
                    self.announce = None;
                    self.value = self.value.max(v);
                    mesh.broadcast(MAX, v.to_be_bytes().to_vec());
                }
            }
        }
    }

    /// `n` nodes in a line, each hosting a `MaxService`, topology converged.
    fn line_with_services(n: usize) -> Sim {
        let mut sim = Sim::with_configs(n, Duration::from_millis(1), |i| MeshConfig {
            channels: vec![MAX.into()],
            ..node_config(i, 3)
        });
        for i in 0..n {
            sim.set_service(i, Box::new(MaxService::default()));
        }
        for i in 1..n {
            sim.connect(i - 1, i);
        }
        let r = sim.run_until_converged(Duration::from_secs(60));
        assert!(r.converged_after.is_some(), "{r:?}");
        sim
    }

    fn all_hold(v: u64) -> impl FnMut(&Sim) -> bool {
        move |sim: &Sim| {
            (0..sim.nodes.len()).all(|i| sim.service::<MaxService>(i).is_some_and(|s| s.value == v))
        }
    }

    #[test]
    fn a_service_broadcast_crosses_the_line_by_relays() {
        let mut sim = line_with_services(6);
        // Every link was new to both ends.
        let news: usize = (0..6)
            .map(|i| sim.service::<MaxService>(i).unwrap().new_connections)
            .sum();
        assert_eq!(news, 2 * 5);
        sim.with_service::<MaxService, _>(0, |s, mesh, _| {
            s.value = 42;
            mesh.broadcast(MAX, 42u64.to_be_bytes().to_vec());
        })
        .unwrap();
        let r = sim.run_until(Duration::from_secs(60), all_hold(42));
        let took = r.converged_after.expect("every node learned 42");
        // Five hops of 1 ms, not a gossip interval.
        assert!(took <= Duration::from_millis(10), "{took:?}");
    }

    #[test]
    fn a_newcomer_gets_the_state_down_its_new_connection() {
        let mut sim = line_with_services(4);
        sim.with_service::<MaxService, _>(2, |s, _, _| s.value = 7)
            .unwrap();
        let i = sim.add_node(|i| MeshConfig {
            channels: vec![MAX.into()],
            ..node_config(i, 3)
        });
        sim.set_service(i, Box::new(MaxService::default()));
        sim.connect(2, i);
        let r = sim.run_until(Duration::from_secs(60), |sim| {
            sim.service::<MaxService>(i).is_some_and(|s| s.value == 7)
        });
        let took = r.converged_after.expect("the newcomer learned 7");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn periodic_gossip_alone_spreads_state() {
        let mut sim = line_with_services(5);
        // Set without telling anyone: only the 30 s gossip (not relayed on) carries it.
        sim.with_service::<MaxService, _>(0, |s, _, _| s.value = 5)
            .unwrap();
        let r = sim.run_until(Duration::from_secs(600), all_hold(5));
        let took = r.converged_after.expect("periodic gossip spread 5");
        assert!(took >= Duration::from_secs(30), "{took:?}");
    }

    #[test]
    fn service_timers_and_unicast_across_hops() {
        let mut sim = line_with_services(5);
        let start = sim.now;
        sim.with_service::<MaxService, _>(3, |s, _, now| {
            s.announce = Some((now + Duration::from_secs(10), 99));
        })
        .unwrap();
        let r = sim.run_until(Duration::from_secs(60), all_hold(99));
        let took = r.converged_after.expect("the timed announcement spread");
        assert!(took >= Duration::from_secs(10), "{took:?}");
        assert!(sim.now - start < Duration::from_secs(11));
        let sent = sim
            .with_service::<MaxService, _>(0, |_, mesh, _| {
                mesh.unicast(MAX, node_name(4), b"hi".to_vec())
            })
            .unwrap();
        assert!(sent, "a route to node 4");
        let r = sim.run_until(Duration::from_secs(5), |sim| {
            !sim.service::<MaxService>(4).unwrap().unicasts.is_empty()
        });
        assert!(r.converged_after.is_some(), "{r:?}");
        let got = &sim.service::<MaxService>(4).unwrap().unicasts;
        assert_eq!(got, &vec![(node_name(0), b"hi".to_vec())]);
        for i in 1..4 {
            assert!(
                sim.service::<MaxService>(i).unwrap().unicasts.is_empty(),
                "relays do not deliver"
            );
        }
    }

    #[test]
    fn three_in_a_line_learn_each_other() {
        let mut sim = Sim::new(3, 1, Duration::from_millis(1));
        sim.connect(0, 1);
        sim.connect(1, 2);
        let r = sim.run_until_converged(Duration::from_secs(60));
        assert!(r.converged_after.is_some(), "{r:?}");
        let n0 = &mut sim.nodes[0];
        assert!(n0.peers().contains(node_name(2)), "0 learned 2 by gossip");
        // 0 reaches 2 through 1.
        assert_eq!(n0.routes().unicast(node_name(2)), Some(node_name(1)));
    }

    #[test]
    fn random_mesh_converges_after_join_and_partition() {
        let n = std::env::var("WEFT_SIM_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if cfg!(debug_assertions) { 60 } else { 300 });
        let mut sim = Sim::new(n, 7, Duration::from_millis(2));
        let links = random_mesh_links(n, 10, 7);
        for &(a, b) in &links {
            sim.connect(a, b);
        }
        let join = sim.run_until_converged(Duration::from_secs(600));
        assert!(join.converged_after.is_some(), "join: {join:?}");
        // Partition into two halves: cut every link across.
        let half = n / 2;
        let cut: Vec<(usize, usize)> = sim
            .links()
            .into_iter()
            .filter(|&(a, b)| (a < half) != (b < half))
            .collect();
        for &(a, b) in &cut {
            sim.disconnect(a, b);
        }
        let split = sim.run_until_converged(Duration::from_secs(600));
        assert!(split.converged_after.is_some(), "partition: {split:?}");
        assert!(sim.nodes[0].peers().len() <= half + 1);
        for &(a, b) in &cut {
            sim.connect(a, b);
        }
        let heal = sim.run_until_converged(Duration::from_secs(600));
        eprintln!("join {join:?}\nsplit {split:?}\nheal {heal:?}");
        assert!(heal.converged_after.is_some(), "heal: {heal:?}");
        assert_eq!(sim.nodes[n - 1].peers().len(), n);
    }
}
