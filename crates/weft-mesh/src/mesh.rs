//! The mesh router core: connections, topology gossip, routes, relaying of other channels'
//! gossip, and the connection maker, behind one sans-IO interface.
//!
//! The caller (the router edge) runs one `weft-wire` connection per TCP socket. When a
//! handshake completes it hands the remote's identity to [`Mesh::connection_ready`], which
//! accepts or refuses it; after that it feeds every gossip message in with
//! [`Mesh::handle_gossip`], reports overlay establishment and closures, and calls
//! [`Mesh::handle_timeout`] when [`Mesh::poll_timeout`] comes due. Everything the core wants
//! done comes out of [`Mesh::poll_output`]: messages to send, connections to close, addresses to
//! dial, targets to persist. Time is passed in; randomness comes from a seeded generator.
//!
//! # Channels implemented locally
//!
//! Gossip channels other than topology are relayed as Weave's surrogate channel relays them
//! (reference §3.1), unless a local service implements them ([`MeshConfig::channels`], e.g.
//! IPAM's `IPallocation`). For those the mesh hands the service what Weave's `Gossiper`
//! callbacks get, as [`Output::Channel`] ([`ChannelEvent`]): tag 4 and tag 6 are delivered
//! and not relayed (the service relays a broadcast with [`Mesh::relay_broadcast`] if it wants
//! to, as Weave relays what `OnGossipBroadcast` returns); tag 5 to us is delivered, tag 5 to
//! others is forwarded hop by hop as for any channel. The service's own sends are
//! [`Mesh::broadcast`], [`Mesh::unicast`], [`Mesh::gossip_to`] (its full state down a new
//! connection, [`ChannelEvent::NewConnection`]), [`Mesh::gossip_neighbours`] (every gossip
//! interval, [`ChannelEvent::PeriodicGossip`]) and [`Mesh::relay_gossip`] (news from received
//! gossip). Reachability changes come as one
//! [`ChannelEvent::PeersChanged`] when the edge next drains the outputs after routes were
//! recalculated, peers removed by garbage collection as [`ChannelEvent::PeerGone`].
//!
//! # Batching
//!
//! Tag-4 topology fan-outs decided while handling events are drawn (random neighbours) and
//! encoded when the edge next polls with an empty output queue: one route recalculation per
//! batch of events, one encoding per distinct set of names, and per-connection merging of
//! queued names as Weave does (reference §3.2).
//!
//! # Memory bounds against misbehaving peers ([`MeshLimits`])
//!
//! Weave bounds neither of these; weft does, refusing only traffic no correct peer produces:
//!
//! * **Peer table**: at most `max_peers` entries (placeholders included; default 10,000). A
//!   topology update that would add more is refused whole with
//!   [`GossipError::TooManyPeers`] before anything is applied (the check is in
//!   [`Peers::apply_update_view`], which every received update goes through), and the edge
//!   closes the sending connection; the invented peers, unreachable, are then collected. Each
//!   entry's connection map is keyed by peer name, so it holds at most `max_peers` entries
//!   too; its strings are bounded by the 10 MiB message limit of the wire layer.
//! * **Duplicate suppression of relayed gossip** (channels we do not implement): remembered
//!   payloads cost their length plus [`SEEN_ENTRY_OVERHEAD`] bytes each and are capped at
//!   `gossip_memory_bytes` (default 4 MiB), oldest evicted first, besides expiring after
//!   30 s; the newest payload is always kept, so the cache holds at most
//!   `max(gossip_memory_bytes, one message)`. A peer flooding distinct payloads therefore
//!   costs us at most that much, and a payload evicted early and seen again is relayed again
//!   rather than remembered longer.
//! * Per-connection queues are sets of names (bounded by the table) and outputs are drained
//!   by the edge after each call.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::gossip::{
    decode_topology_generic, decode_topology_view, encode_peers, GossipKind, GossipMsg,
    TOPOLOGY_CHANNEL,
};
use crate::maker::{ConnectionMaker, Dial, TargetError, TargetStatus};
use crate::rng::SplitMix;
use crate::topology::{LinkFilter, PeerUpdate, Peers, Routes, TopologyError};
use crate::PeerName;

/// Identifies one TCP connection for the lifetime of the process (assigned by the caller).
pub type ConnId = u64;

/// Timings, as Weave's defaults (reference §8).
#[derive(Debug, Clone)]
pub struct MeshTimings {
    /// Full topology gossip to a random subset of neighbours.
    pub gossip_interval: Duration,
    /// Coalescing of local topology changes before they are gossiped.
    pub update_delay: Duration,
    /// Delay of garbage collection after applied updates.
    pub gc_delay: Duration,
    /// How long an exact duplicate of relayed gossip is remembered.
    pub duplicate_memory: Duration,
    /// Which neighbours tag-4 topology gossip goes to. Weave (and the default) is
    /// [`Fanout::Random`]; [`Fanout::All`] exists as a baseline for benchmarks.
    pub fanout: Fanout,
}

/// How tag-4 topology gossip chooses its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fanout {
    /// Weave 2.6+: a weighted random subset of `min(⌊2·log2 N⌋, #next hops)` (reference §3.6).
    #[default]
    Random,
    /// Naive flooding: every connected neighbour except the sender. Not Weave's behaviour;
    /// only a benchmark baseline.
    All,
}

impl Default for MeshTimings {
    fn default() -> Self {
        MeshTimings {
            gossip_interval: Duration::from_secs(30),
            update_delay: Duration::from_secs(1),
            gc_delay: Duration::from_secs(1),
            duplicate_memory: Duration::from_secs(30),
            fanout: Fanout::Random,
        }
    }
}

/// Bounds on what other peers can make this router hold (see the module docs). Weave has none
/// of these; they only refuse traffic no correct peer sends at these sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshLimits {
    /// Most peers (placeholders included) in the peer table. A topology update that would grow
    /// the table past it is refused as a whole ([`GossipError::TooManyPeers`]; the caller
    /// closes the sending connection). Default [`DEFAULT_MAX_PEERS`].
    pub max_peers: usize,
    /// Most bytes the duplicate-suppression cache of relayed gossip (channels we do not
    /// implement) holds, payloads plus [`SEEN_ENTRY_OVERHEAD`] each; the oldest entries are
    /// evicted first (an evicted payload seen again is relayed again). Default
    /// [`DEFAULT_GOSSIP_MEMORY_BYTES`].
    pub gossip_memory_bytes: usize,
}

/// Default [`MeshLimits::max_peers`]: 10,000 (Weave was run to a few hundred; 10x headroom
/// over the largest meshes reported).
pub const DEFAULT_MAX_PEERS: usize = 10_000;
/// Default [`MeshLimits::gossip_memory_bytes`]: 4 MiB.
pub const DEFAULT_GOSSIP_MEMORY_BYTES: usize = 4 << 20;
/// Bytes charged per remembered payload on top of its length (hash, expiry, queue and index
/// slots), so that many tiny payloads are bounded too.
pub const SEEN_ENTRY_OVERHEAD: usize = 64;

impl Default for MeshLimits {
    fn default() -> Self {
        MeshLimits {
            max_peers: DEFAULT_MAX_PEERS,
            gossip_memory_bytes: DEFAULT_GOSSIP_MEMORY_BYTES,
        }
    }
}

/// Duplicate suppression for relayed tag-4 gossip (reference §3.1: an exact payload is
/// remembered for one gossip interval), bounded in bytes: entries live in arrival order (which
/// is also expiry order), indexed by hash; the oldest go first when the budget is exceeded.
#[derive(Debug, Default)]
struct SeenCache {
    by_hash: HashMap<u64, Vec<u64>>,
    entries: VecDeque<SeenEntry>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    bytes: usize,
}

#[derive(Debug)]
struct SeenEntry {
    hash: u64,
    expires: Instant,
    payload: Vec<u8>,
}

impl SeenCache {
    fn cost(len: usize) -> usize {
        len.saturating_add(SEEN_ENTRY_OVERHEAD)
    }

    /// False if `payload` is an exact duplicate of one remembered; otherwise remember it.
    fn remember(&mut self, now: Instant, expires: Instant, payload: &[u8], budget: usize) -> bool {
        self.expire(now);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        payload.hash(&mut h);
        let hash = h.finish();
        if let Some(seqs) = self.by_hash.get(&hash) {
            let first = self.first_seq;
            let dup = seqs.iter().any(|&q| {
                usize::try_from(q - first)
                    .ok()
                    .and_then(|i| self.entries.get(i))
                    .is_some_and(|e| e.payload == payload)
            });
            if dup {
                return false;
            }
        }
        let cost = Self::cost(payload.len());
        // Make room; the newest payload is always kept, so the cache holds at most
        // max(budget, one payload + overhead).
        while self.bytes.saturating_add(cost) > budget && self.pop_oldest() {}
        let seq = self.first_seq + self.entries.len() as u64;
        self.entries.push_back(SeenEntry {
            hash,
            expires,
            payload: payload.to_vec(),
        });
        self.by_hash.entry(hash).or_default().push(seq);
        self.bytes += cost;
        true
    }

    /// Drop entries whose time is up.
    fn expire(&mut self, now: Instant) {
        while self.entries.front().is_some_and(|e| e.expires <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some(e) = self.entries.pop_front() else {
            return false;
        };
        let seq = self.first_seq;
        self.first_seq += 1;
        self.bytes -= Self::cost(e.payload.len());
        if let Some(seqs) = self.by_hash.get_mut(&e.hash) {
            seqs.retain(|&q| q != seq);
            if seqs.is_empty() {
                self.by_hash.remove(&e.hash);
            }
        }
        true
    }
}

/// How this router takes part in the mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub name: PeerName,
    pub nickname: String,
    pub uid: u64,
    /// The mesh port (targets without a port use it; discovered inbound peers are dialled on it).
    pub port: u16,
    pub discovery: bool,
    /// Maximum connections; 0 is unlimited.
    pub conn_limit: usize,
    pub timings: MeshTimings,
    /// Seed for every random choice (short ID, fan-out, retry jitter).
    pub seed: u64,
    /// Memory bounds against misbehaving peers; `MeshLimits::default()` normally.
    pub limits: MeshLimits,
    /// Gossip channels implemented by local services (e.g. `IPallocation`, `nameserver`).
    /// Their messages come out as [`Output::Channel`] instead of being relayed (see the
    /// module docs, "Channels implemented locally"). Empty: every channel other than topology
    /// is relayed, and no [`ChannelEvent`] is ever produced.
    pub channels: Vec<String>,
}

impl MeshConfig {
    /// A router named `name`: mesh port 6783, no discovery, no connection limit, Weave's
    /// timings, default limits, seed 0, no local channels. Callers change what they need
    /// with struct update syntax.
    pub fn new(name: PeerName, nickname: impl Into<String>, uid: u64) -> Self {
        MeshConfig {
            name,
            nickname: nickname.into(),
            uid,
            port: 6783,
            discovery: false,
            conn_limit: 0,
            timings: MeshTimings::default(),
            seed: 0,
            limits: MeshLimits::default(),
            channels: Vec::new(),
        }
    }
}

/// What the remote said about itself in the handshake, plus how we reached it.
#[derive(Debug, Clone)]
pub struct Hello {
    pub name: PeerName,
    pub nickname: String,
    pub uid: u64,
    pub short_id: Option<u16>,
    /// The connection UID both ends share (myConnID ^ theirConnID).
    pub conn_uid: u64,
    pub outbound: bool,
    pub remote_addr: SocketAddr,
    /// For outbound connections: the target address we dialled.
    pub target: Option<String>,
    /// Refuse unless the remote is already in our topology (discovered targets).
    pub must_be_known: bool,
    /// The overlay carrying this connection's data (e.g. `sleeve`), once chosen.
    pub overlay: Option<String>,
    /// `Some(encrypted)` when this router has a password (status then says which).
    pub encrypted: Option<bool>,
}

/// Why a handshaked connection is not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("cannot connect to ourself")]
    SelfConnection,
    #[error("peer name collision: {0} is our name, with another UID")]
    NameCollision(PeerName),
    #[error("found unknown remote name: {0}")]
    UnknownRemote(PeerName),
    #[error("already have a connection to {0}")]
    Duplicate(PeerName),
    #[error("connection limit of {0} reached")]
    ConnLimit(usize),
}

impl Refusal {
    /// Weave never retries a target that gave one of these.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Refusal::SelfConnection | Refusal::NameCollision(_))
    }
}

/// A gossip message a connection may not send; the caller closes that connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("gossip on an unknown connection")]
    UnknownConnection,
    #[error("the topology channel does not take unicast messages")]
    TopologyUnicast,
    #[error("{0}")]
    BadTopology(String),
    /// A topology update would grow the peer table past [`MeshLimits::max_peers`]; nothing of
    /// it was applied.
    #[error("topology update would add {new} peers to {known}, over the limit of {limit}")]
    TooManyPeers {
        limit: usize,
        known: usize,
        new: usize,
    },
}

/// What the core asks the edge to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        conn: ConnId,
        msg: GossipMsg,
    },
    Close {
        conn: ConnId,
        reason: String,
    },
    Dial(Dial),
    /// The direct targets changed: persist them (for `--resume`).
    PersistTargets(Vec<String>),
    /// Something for the services of [`MeshConfig::channels`] (never produced when that is
    /// empty).
    Channel(ChannelEvent),
}

/// What the mesh tells the services that implement gossip channels locally. Events naming a
/// `channel` are for that channel's service; the others are for every service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// Tag 4 received. `src` is the immediate sender. The mesh does not relay it: Weave relays
    /// what `OnGossip` returns (IPAM: nothing), which a service does with
    /// [`Mesh::relay_gossip`].
    Gossip {
        channel: String,
        src: PeerName,
        payload: Vec<u8>,
    },
    /// Tag 6 received. `src` is the originator. The mesh does not relay it: the service calls
    /// [`Mesh::relay_broadcast`] with what should go on along `src`'s tree, if anything.
    Broadcast {
        channel: String,
        src: PeerName,
        payload: Vec<u8>,
    },
    /// Tag 5 addressed to us (unicasts for other peers are forwarded by the mesh).
    Unicast {
        channel: String,
        src: PeerName,
        payload: Vec<u8>,
    },
    /// A connection to a new or restarted peer, or to one we had no route to, was added
    /// (Weave's `sendAllGossipDown`): each service sends it its full state with
    /// [`Mesh::gossip_to`].
    NewConnection { peer: PeerName },
    /// The gossip interval (30 s) passed: each service sends its full state with
    /// [`Mesh::gossip_neighbours`].
    PeriodicGossip,
    /// The set of reachable peers (or the UID of one) changed; [`Mesh::peer_infos`] has the
    /// new view. Coalesced: at most one per call into the mesh.
    PeersChanged,
    /// Garbage collection removed an unreachable peer (Weave's `OnGC` → `PeerGone`).
    PeerGone { peer: PeerName },
}

/// One peer of the table as the services see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub name: PeerName,
    pub uid: u64,
    pub nickname: String,
    /// We have a gossip route to it (over all gossiped links, as gossip travels), or it is us.
    pub reachable: bool,
}

#[derive(Debug, Clone)]
struct Conn {
    remote: PeerName,
    remote_nickname: String,
    remote_addr: SocketAddr,
    outbound: bool,
    established: bool,
    conn_uid: u64,
    overlay: Option<String>,
    encrypted: Option<bool>,
    attrs: Vec<(String, String)>,
}

/// One connection (or a target not connected) as `weft status connections` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub address: String,
    pub outbound: bool,
    /// established, pending, or a target's state (connecting, retrying, failed).
    pub state: String,
    /// Weave's info text: `[encrypted |unencrypted ]<overlay> <name>(<nick>)` for a live
    /// connection, the last error (and retry time) for a target.
    pub info: String,
    /// Overlay attributes other than its name, e.g. `("mtu", "1438")`.
    pub attrs: Vec<(String, String)>,
    /// The overlay name (Weave's `Attrs.name`), for live connections that have one.
    pub overlay: Option<String>,
    /// When a failed target is retried next (targets only).
    pub retry_at: Option<Instant>,
}

/// A snapshot for `/status` and `/report`.
#[derive(Debug, Clone)]
pub struct MeshStatus {
    pub name: PeerName,
    pub nickname: String,
    pub port: u16,
    pub discovery: bool,
    pub targets: Vec<String>,
    pub connections: Vec<ConnectionStatus>,
    pub targets_status: Vec<TargetStatus>,
    pub peers: Vec<PeerStatus>,
    pub unicast_routes: Vec<(PeerName, PeerName)>,
    pub broadcast_routes: Vec<(PeerName, Vec<PeerName>)>,
    pub termination_count: u64,
}

/// One peer as this router knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub name: PeerName,
    pub nickname: String,
    pub uid: u64,
    pub short_id: u16,
    pub version: u64,
    pub connections: Vec<PeerConnectionStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConnectionStatus {
    pub name: PeerName,
    pub nickname: String,
    pub address: String,
    pub outbound: bool,
    pub established: bool,
}

/// Counters for benchmarks and the simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshStats {
    pub messages_sent: u64,
    pub bytes_sent: u64,
}

/// The mesh router core. See the module docs.
#[derive(Debug)]
pub struct Mesh {
    cfg: MeshConfig,
    peers: Peers,
    routes: Routes,
    routes_dirty: bool,
    conns: BTreeMap<ConnId, Conn>,
    by_peer: BTreeMap<PeerName, ConnId>,
    maker: ConnectionMaker,
    pending_update: BTreeSet<PeerName>,
    update_due: Option<Instant>,
    gc_due: Option<Instant>,
    next_gossip: Instant,
    /// Relayed gossip of channels we do not implement, for duplicate suppression.
    seen: SeenCache,
    next_seen_sweep: Instant,
    out: VecDeque<Output>,
    /// Topology to send per connection, merged until the edge next polls (Weave merges queued
    /// gossip per connection and encodes it at send time, so bursts coalesce).
    topo_pending: BTreeMap<ConnId, BTreeSet<PeerName>>,
    /// Tag-4 topology fan-outs decided since the last flush: `(except, names)`. The random
    /// neighbours are drawn when the edge next polls, so a batch of events recomputes the
    /// routes once instead of once per event.
    topo_fanout: Vec<(Option<PeerName>, BTreeSet<PeerName>)>,
    rng: SplitMix,
    termination_count: u64,
    stats: MeshStats,
    discovery_dirty: bool,
    /// Channels implemented by local services (from [`MeshConfig::channels`]).
    channels: BTreeSet<String>,
    /// Reachable peers and their UIDs when the services were last told
    /// ([`ChannelEvent::PeersChanged`]); compared after each route recalculation.
    reach_seen: Vec<(PeerName, u64)>,
    /// Routes were recalculated since `reach_seen` was compared.
    reach_dirty: bool,
}

impl Mesh {
    pub fn new(cfg: MeshConfig, now: Instant) -> Self {
        let mut rng = SplitMix(cfg.seed);
        let short_id = (rng.next_u64() % 4096) as u16;
        let mut peers = Peers::new(cfg.name, cfg.nickname.clone(), cfg.uid, short_id);
        peers.set_max_peers(cfg.limits.max_peers);
        let routes = Routes::calculate(&peers);
        let maker = ConnectionMaker::new(cfg.port, cfg.discovery, cfg.conn_limit, rng.next_u64());
        let next_gossip = now + cfg.timings.gossip_interval;
        let channels: BTreeSet<String> = cfg
            .channels
            .iter()
            .filter(|c| {
                let topology = c.as_str() == TOPOLOGY_CHANNEL;
                if topology {
                    warn!("the topology channel is the mesh's own: not handed to a service");
                }
                !topology
            })
            .cloned()
            .collect();
        let reach_seen = vec![(cfg.name, cfg.uid)];
        Mesh {
            peers,
            routes,
            routes_dirty: false,
            conns: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            maker,
            pending_update: BTreeSet::new(),
            update_due: None,
            gc_due: None,
            next_gossip,
            seen: SeenCache::default(),
            next_seen_sweep: now + cfg.timings.duplicate_memory,
            out: VecDeque::new(),
            topo_pending: BTreeMap::new(),
            topo_fanout: Vec::new(),
            rng,
            termination_count: 0,
            stats: MeshStats::default(),
            discovery_dirty: false,
            channels,
            reach_seen,
            reach_dirty: false,
            cfg,
        }
    }

    pub fn name(&self) -> PeerName {
        self.cfg.name
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    pub fn stats(&self) -> MeshStats {
        self.stats
    }

    /// The current routes (recomputed lazily after changes).
    pub fn routes(&mut self) -> &Routes {
        self.refresh_routes();
        &self.routes
    }

    /// The peer table and current routes together, as the data plane reads them.
    pub fn route_view(&mut self) -> (&Peers, &Routes) {
        self.refresh_routes();
        (&self.peers, &self.routes)
    }

    // ------------------------------------------------------------------ targets

    /// `weft connect`: add (or replace) direct targets.
    pub fn connect(
        &mut self,
        now: Instant,
        peers: &[String],
        replace: bool,
    ) -> Result<(), Vec<TargetError>> {
        self.maker.connect(now, peers, replace)?;
        self.out
            .push_back(Output::PersistTargets(self.maker.direct_targets().to_vec()));
        self.drain_maker();
        Ok(())
    }

    /// `weft forget`: remove direct targets.
    pub fn forget(&mut self, now: Instant, peers: &[String]) {
        self.maker.forget(now, peers);
        self.out
            .push_back(Output::PersistTargets(self.maker.direct_targets().to_vec()));
        self.drain_maker();
    }

    /// A dial failed before its connection was added (TCP error, handshake error, refusal).
    pub fn dial_failed(&mut self, now: Instant, address: &str, error: String, permanent: bool) {
        self.maker.dial_failed(now, address, error, permanent);
        self.drain_maker();
    }

    fn drain_maker(&mut self) {
        while let Some(d) = self.maker.poll_dial() {
            self.out.push_back(Output::Dial(d));
        }
    }

    // ------------------------------------------------------------------ connections

    /// A connection finished its handshake: add it to the mesh, or say why not (the caller
    /// then closes it and, for a dial, reports [`Mesh::dial_failed`]).
    pub fn connection_ready(
        &mut self,
        now: Instant,
        id: ConnId,
        hello: Hello,
    ) -> Result<(), Refusal> {
        if hello.name == self.cfg.name {
            return Err(if hello.uid == self.cfg.uid {
                Refusal::SelfConnection
            } else {
                Refusal::NameCollision(hello.name)
            });
        }
        if hello.must_be_known && !self.peers.contains(hello.name) {
            return Err(Refusal::UnknownRemote(hello.name));
        }
        if let Some(&existing) = self.by_peer.get(&hello.name) {
            // Both ends share connUIDs, so both keep the same one: the lower.
            let theirs = self.conns.get(&existing).map_or(u64::MAX, |c| c.conn_uid);
            if hello.conn_uid >= theirs {
                if hello.conn_uid == theirs {
                    self.close(
                        now,
                        existing,
                        "duplicate connection with equal connection UID",
                    );
                }
                return Err(Refusal::Duplicate(hello.name));
            }
            self.close(
                now,
                existing,
                "replaced by a duplicate connection with a lower UID",
            );
        }
        if self.cfg.conn_limit > 0 && self.conns.len() >= self.cfg.conn_limit {
            return Err(Refusal::ConnLimit(self.cfg.conn_limit));
        }
        // Weave sends every channel's full state down a connection to a restarted peer or one
        // it had no (data-plane) route to (`handleAddConnection` → `sendAllGossipDown`).
        let had_route = !self.channels.is_empty() && {
            self.refresh_routes();
            self.routes.unicast(hello.name).is_some()
        };
        let fetched = self.peers.fetch_with_default(
            hello.name,
            &hello.nickname,
            hello.uid,
            hello.short_id,
            &mut self.rng,
        );
        if let Err(e) = self.peers.add_connection(
            hello.name,
            hello.remote_addr.to_string(),
            hello.outbound,
            false,
        ) {
            // Cannot happen for a name we just fetched; undo the reference and refuse.
            let _ = self.peers.dereference(hello.name);
            warn!("adding connection to {}: {e}", hello.name);
            return Err(Refusal::UnknownRemote(hello.name));
        }
        info!(
            "connection added: {} {}({}) at {}",
            if hello.outbound { "->" } else { "<-" },
            hello.name,
            hello.nickname,
            hello.remote_addr
        );
        self.conns.insert(
            id,
            Conn {
                remote: hello.name,
                remote_nickname: hello.nickname.clone(),
                remote_addr: hello.remote_addr,
                outbound: hello.outbound,
                established: false,
                conn_uid: hello.conn_uid,
                overlay: hello.overlay,
                encrypted: hello.encrypted,
                attrs: Vec::new(),
            },
        );
        self.by_peer.insert(hello.name, id);
        self.maker
            .connection_up(now, id, hello.target.as_deref(), hello.remote_addr.ip());
        self.drain_maker();
        if fetched.is_new || fetched.is_restarted {
            // A new or restarted peer gets our whole view at once.
            let all: Vec<PeerName> = self.peers.names().collect();
            self.queue_topology(id, all);
        }
        if !self.channels.is_empty() && (fetched.is_restarted || !had_route) {
            self.out
                .push_back(Output::Channel(ChannelEvent::NewConnection {
                    peer: hello.name,
                }));
        }
        self.schedule_update(now, [self.cfg.name, hello.name]);
        self.routes_dirty = true;
        self.discovery_dirty = true;
        Ok(())
    }

    /// The connection's overlay proved the data path: the connection is established.
    pub fn connection_established(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.established {
            return;
        }
        c.established = true;
        let remote = c.remote;
        if self.peers.connection_established(remote).is_ok() {
            info!("connection fully established: {remote}");
            self.schedule_update(now, [self.cfg.name]);
            self.routes_dirty = true;
        }
    }

    /// The overlay of a connection reports attributes (e.g. `mtu`), shown in status.
    pub fn set_connection_attrs(&mut self, id: ConnId, attrs: Vec<(String, String)>) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.attrs = attrs;
        }
    }

    /// A connection ended (after [`Mesh::connection_ready`] accepted it).
    pub fn connection_closed(&mut self, now: Instant, id: ConnId, error: Option<String>) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if self.by_peer.get(&c.remote) == Some(&id) {
            self.by_peer.remove(&c.remote);
        }
        self.termination_count += 1;
        info!(
            "connection deleted: {}({}) at {}: {}",
            c.remote,
            c.remote_nickname,
            c.remote_addr,
            error.as_deref().unwrap_or("closed")
        );
        let _ = self.peers.dereference(c.remote);
        match self.peers.delete_connection(c.remote, &mut self.rng) {
            Ok(gc) => {
                for p in &gc.removed {
                    info!("removed unreachable peer {p}");
                }
                self.peers_gone(&gc.removed);
            }
            Err(e) => debug!("deleting connection to {}: {e}", c.remote),
        }
        self.maker.connection_down(now, id, error);
        self.drain_maker();
        self.schedule_update(now, [self.cfg.name]);
        self.routes_dirty = true;
        self.discovery_dirty = true;
    }

    fn close(&mut self, now: Instant, id: ConnId, reason: &str) {
        self.out.push_back(Output::Close {
            conn: id,
            reason: reason.to_owned(),
        });
        self.connection_closed(now, id, Some(reason.to_owned()));
    }

    // ------------------------------------------------------------------ gossip

    /// A gossip message arrived on connection `from`.
    pub fn handle_gossip(
        &mut self,
        now: Instant,
        from: ConnId,
        msg: GossipMsg,
    ) -> Result<(), GossipError> {
        let sender = self
            .conns
            .get(&from)
            .map(|c| c.remote)
            .ok_or(GossipError::UnknownConnection)?;
        if msg.channel == TOPOLOGY_CHANNEL {
            return self.handle_topology(now, sender, msg);
        }
        if self.channels.contains(&msg.channel) {
            self.deliver(msg);
            return Ok(());
        }
        // A channel we do not implement (IPAM, DNS of a Weave peer): relay it faithfully.
        match msg.kind {
            GossipKind::Gossip => {
                if self.remember(now, &msg.payload) {
                    let mut relay = msg;
                    relay.src = self.cfg.name;
                    self.send_to_neighbours(Some(sender), &relay);
                }
            }
            GossipKind::Broadcast => self.send_along_tree(&msg),
            GossipKind::Unicast { dst } if dst == self.cfg.name => {
                debug!(
                    "dropping {} unicast for us: channel not implemented",
                    msg.channel
                );
            }
            GossipKind::Unicast { dst } => self.relay_unicast(dst, msg),
        }
        Ok(())
    }

    fn handle_topology(
        &mut self,
        now: Instant,
        sender: PeerName,
        msg: GossipMsg,
    ) -> Result<(), GossipError> {
        if matches!(msg.kind, GossipKind::Unicast { .. }) {
            return Err(GossipError::TopologyUnicast);
        }
        // The fast path borrows from the payload; anything else goes through the generic
        // decoder (same result, see `gossip::decode_topology`).
        let owned;
        let view = match decode_topology_view(&msg.payload) {
            Some(view) => view,
            None => {
                owned = decode_topology_generic(&msg.payload)
                    .map_err(|e| GossipError::BadTopology(e.to_string()))?;
                owned.iter().map(PeerUpdate::view).collect()
            }
        };
        let outcome = self
            .peers
            .apply_update_view(&view, &mut self.rng)
            .map_err(|e| match e {
                TopologyError::TooManyPeers { limit, known, new } => {
                    GossipError::TooManyPeers { limit, known, new }
                }
                e => GossipError::BadTopology(e.to_string()),
            })?;
        drop(view);
        if outcome.local_changed {
            self.schedule_update(now, [self.cfg.name]);
        }
        match msg.kind {
            GossipKind::Broadcast => {
                // Relay the names it carried, from our (now updated) table, along the tree.
                let received: BTreeSet<PeerName> = outcome.received.iter().copied().collect();
                let relay = GossipMsg {
                    payload: encode_peers(&self.peers, &received),
                    ..msg
                };
                self.routes_dirty = true;
                self.send_along_tree(&relay);
            }
            _ => {
                if !outcome.improved.is_empty() {
                    self.routes_dirty = true;
                    self.topology_to_neighbours(Some(sender), outcome.improved.clone());
                }
            }
        }
        if !outcome.improved.is_empty() || !outcome.received.is_empty() {
            self.discovery_dirty = true;
            self.gc_due.get_or_insert(now + self.cfg.timings.gc_delay);
        }
        Ok(())
    }

    /// Remember a relayed payload; false if it was an exact duplicate seen recently.
    fn remember(&mut self, now: Instant, payload: &[u8]) -> bool {
        self.seen.remember(
            now,
            now + self.cfg.timings.duplicate_memory,
            payload,
            self.cfg.limits.gossip_memory_bytes,
        )
    }

    /// Bytes the duplicate-suppression cache holds now (payloads plus per-entry overhead).
    pub fn gossip_memory_bytes(&self) -> usize {
        self.seen.bytes
    }

    /// Send `msg` to our hops of its originator's broadcast tree (over all gossiped links).
    fn send_along_tree(&mut self, msg: &GossipMsg) {
        self.refresh_routes();
        let hops = self.routes.broadcast_all(msg.src).to_vec();
        for hop in hops {
            self.send_to_peer(hop, msg.clone());
        }
    }

    fn relay_unicast(&mut self, dst: PeerName, msg: GossipMsg) {
        self.refresh_routes();
        match self.routes.unicast_all(dst) {
            Some(hop) => self.send_to_peer(hop, msg),
            None => debug!("no route to {dst} for {} unicast; dropped", msg.channel),
        }
    }

    fn send_to_neighbours(&mut self, except: Option<PeerName>, msg: &GossipMsg) {
        self.refresh_routes();
        let hops = self.routes.random_neighbours(except, &mut self.rng);
        for hop in hops {
            self.send_to_peer(hop, msg.clone());
        }
    }

    fn send_to_peer(&mut self, peer: PeerName, msg: GossipMsg) {
        if let Some(&conn) = self.by_peer.get(&peer) {
            self.push_send(conn, msg);
        }
    }

    fn push_send(&mut self, conn: ConnId, msg: GossipMsg) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += msg.payload.len() as u64;
        self.out.push_back(Output::Send { conn, msg });
    }

    fn queue_topology(&mut self, conn: ConnId, names: impl IntoIterator<Item = PeerName>) {
        self.topo_pending.entry(conn).or_default().extend(names);
    }

    /// Tag-4 topology for `names` to a random subset of neighbours (not `except`). The subset
    /// is drawn at the next flush (see `topo_fanout`).
    fn topology_to_neighbours(
        &mut self,
        except: Option<PeerName>,
        names: impl IntoIterator<Item = PeerName>,
    ) {
        let names: BTreeSet<PeerName> = names.into_iter().collect();
        if !names.is_empty() {
            self.topo_fanout.push((except, names));
        }
    }

    /// Turn the merged per-connection topology into messages, encoded from the current table.
    fn flush_topology(&mut self) {
        if !self.topo_fanout.is_empty() {
            self.refresh_routes();
            for (except, names) in std::mem::take(&mut self.topo_fanout) {
                let hops = match self.cfg.timings.fanout {
                    Fanout::Random => self.routes.random_neighbours(except, &mut self.rng),
                    Fanout::All => self
                        .by_peer
                        .keys()
                        .copied()
                        .filter(|&p| Some(p) != except)
                        .collect(),
                };
                for hop in hops {
                    if let Some(&conn) = self.by_peer.get(&hop) {
                        self.queue_topology(conn, names.iter().copied());
                    }
                }
            }
        }
        // Connections queued the same names (a fan-out reaches several): encode each distinct
        // set once.
        let mut encoded: Vec<(BTreeSet<PeerName>, Vec<u8>)> = Vec::new();
        for (conn, names) in std::mem::take(&mut self.topo_pending) {
            if !self.conns.contains_key(&conn) {
                continue;
            }
            let payload = match encoded.iter().find(|(set, _)| *set == names) {
                Some((_, payload)) => payload.clone(),
                None => {
                    let payload = encode_peers(&self.peers, &names);
                    encoded.push((names, payload.clone()));
                    payload
                }
            };
            if payload.is_empty() {
                continue;
            }
            let msg = GossipMsg {
                kind: GossipKind::Gossip,
                channel: TOPOLOGY_CHANNEL.to_owned(),
                src: self.cfg.name,
                payload,
            };
            self.push_send(conn, msg);
        }
    }

    fn schedule_update(&mut self, now: Instant, names: impl IntoIterator<Item = PeerName>) {
        self.pending_update.extend(names);
        self.update_due
            .get_or_insert(now + self.cfg.timings.update_delay);
    }

    fn refresh_routes(&mut self) {
        if self.routes_dirty {
            self.routes = Routes::calculate(&self.peers);
            self.routes_dirty = false;
            self.reach_dirty = true;
        }
    }

    /// Addresses of peers our peers are connected to and we are not (reference §7).
    fn refresh_discovery(&mut self, now: Instant) {
        if !self.discovery_dirty {
            return;
        }
        self.discovery_dirty = false;
        if !self.cfg.discovery {
            return;
        }
        let me = self.cfg.name;
        let mut found = BTreeSet::new();
        for p in self.peers.iter() {
            if p.name() == me {
                continue;
            }
            for (q, c) in p.connections() {
                if *q == me || self.by_peer.contains_key(q) {
                    continue;
                }
                if c.outbound {
                    found.insert(c.remote_tcp_addr.clone());
                } else if let Ok(addr) = c.remote_tcp_addr.parse::<SocketAddr>() {
                    found.insert(SocketAddr::new(addr.ip(), self.cfg.port).to_string());
                }
            }
        }
        self.maker.set_discovered(now, found);
        self.drain_maker();
    }

    // ------------------------------------------------------------------ channels

    /// The gossip channels local services implement.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(String::as_str)
    }

    /// A message on a channel a local service implements: hand it over (tag 5 for another
    /// peer is forwarded, as for any channel).
    fn deliver(&mut self, msg: GossipMsg) {
        let GossipMsg {
            kind,
            channel,
            src,
            payload,
        } = msg;
        let event = match kind {
            GossipKind::Gossip => ChannelEvent::Gossip {
                channel,
                src,
                payload,
            },
            GossipKind::Broadcast => ChannelEvent::Broadcast {
                channel,
                src,
                payload,
            },
            GossipKind::Unicast { dst } if dst == self.cfg.name => ChannelEvent::Unicast {
                channel,
                src,
                payload,
            },
            GossipKind::Unicast { dst } => {
                let msg = GossipMsg {
                    kind,
                    channel,
                    src,
                    payload,
                };
                self.relay_unicast(dst, msg);
                return;
            }
        };
        self.out.push_back(Output::Channel(event));
    }

    fn peers_gone(&mut self, removed: &[PeerName]) {
        if self.channels.is_empty() {
            return;
        }
        for &peer in removed {
            self.out
                .push_back(Output::Channel(ChannelEvent::PeerGone { peer }));
        }
    }

    /// Reachable peers and their UIDs, in name order (us included).
    fn reachable(&self) -> Vec<(PeerName, u64)> {
        let me = self.cfg.name;
        self.peers
            .iter()
            .filter(|p| p.name() == me || self.routes.unicast_all(p.name()).is_some())
            .map(|p| (p.name(), p.uid()))
            .collect()
    }

    /// Tell the services once if the routes changed who is reachable.
    fn check_reachability(&mut self) {
        if self.channels.is_empty() || !(self.reach_dirty || self.routes_dirty) {
            return;
        }
        self.refresh_routes();
        self.reach_dirty = false;
        let now = self.reachable();
        if now != self.reach_seen {
            self.reach_seen = now;
            self.out
                .push_back(Output::Channel(ChannelEvent::PeersChanged));
        }
    }

    /// Tag 6 from us on `channel`, along our broadcast tree (Weave's `GossipBroadcast`).
    pub fn broadcast(&mut self, channel: &str, payload: Vec<u8>) {
        let origin = self.cfg.name;
        self.relay_broadcast(channel, origin, payload);
    }

    /// Tag 6 on `channel` keeping `origin` as its source, to our hops of `origin`'s broadcast
    /// tree: what a service passes on of a [`ChannelEvent::Broadcast`] it received.
    pub fn relay_broadcast(&mut self, channel: &str, origin: PeerName, payload: Vec<u8>) {
        let msg = GossipMsg {
            kind: GossipKind::Broadcast,
            channel: channel.to_owned(),
            src: origin,
            payload,
        };
        self.send_along_tree(&msg);
    }

    /// Tag 5 from us to `dst` on `channel`, via the next hop of the gossip routes. False if
    /// there is no route (or no connection to the next hop), or `dst` is us.
    pub fn unicast(&mut self, channel: &str, dst: PeerName, payload: Vec<u8>) -> bool {
        self.refresh_routes();
        let Some(hop) = self.routes.unicast_all(dst) else {
            return false;
        };
        let Some(&conn) = self.by_peer.get(&hop) else {
            return false;
        };
        let msg = GossipMsg {
            kind: GossipKind::Unicast { dst },
            channel: channel.to_owned(),
            src: self.cfg.name,
            payload,
        };
        self.push_send(conn, msg);
        true
    }

    /// Tag 4 from us on `channel` down the connection to `peer` (the answer to
    /// [`ChannelEvent::NewConnection`]). False if we have no connection to it.
    pub fn gossip_to(&mut self, peer: PeerName, channel: &str, payload: Vec<u8>) -> bool {
        let Some(&conn) = self.by_peer.get(&peer) else {
            return false;
        };
        let msg = GossipMsg {
            kind: GossipKind::Gossip,
            channel: channel.to_owned(),
            src: self.cfg.name,
            payload,
        };
        self.push_send(conn, msg);
        true
    }

    /// Tag 4 from us on `channel` to Weave's random subset of neighbours (the answer to
    /// [`ChannelEvent::PeriodicGossip`]; Weave's `GossipChannel.Send`).
    pub fn gossip_neighbours(&mut self, channel: &str, payload: Vec<u8>) {
        let msg = GossipMsg {
            kind: GossipKind::Gossip,
            channel: channel.to_owned(),
            src: self.cfg.name,
            payload,
        };
        self.send_to_neighbours(None, &msg);
    }

    /// Tag 4 from us on `channel` to the random subset of neighbours other than `from`: how
    /// Weave passes on what a channel's `OnGossip` returned for gossip received from `from`
    /// (DNS returns its news; IPAM nothing).
    pub fn relay_gossip(&mut self, channel: &str, from: PeerName, payload: Vec<u8>) {
        let msg = GossipMsg {
            kind: GossipKind::Gossip,
            channel: channel.to_owned(),
            src: self.cfg.name,
            payload,
        };
        self.send_to_neighbours(Some(from), &msg);
    }

    /// Every peer of the table, us included, in name order, with whether we reach it.
    pub fn peer_infos(&mut self) -> Vec<PeerInfo> {
        self.refresh_routes();
        let me = self.cfg.name;
        self.peers
            .iter()
            .map(|p| PeerInfo {
                name: p.name(),
                uid: p.uid(),
                nickname: p.nick_name().to_owned(),
                reachable: p.name() == me || self.routes.unicast_all(p.name()).is_some(),
            })
            .collect()
    }

    /// How many direct targets (command line and `weft connect`) the connection maker has:
    /// what Weave's IPAM derives its default quorum from.
    pub fn direct_target_count(&self) -> usize {
        self.maker.direct_targets().len()
    }

    // ------------------------------------------------------------------ time

    /// Run whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.gc_due.is_some_and(|t| t <= now) {
            self.gc_due = None;
            let gc = self.peers.garbage_collect(&mut self.rng);
            for p in &gc.removed {
                info!("removed unreachable peer {p}");
            }
            self.peers_gone(&gc.removed);
            if !gc.removed.is_empty() {
                self.routes_dirty = true;
                self.discovery_dirty = true;
            }
            if gc.local_changed {
                self.schedule_update(now, [self.cfg.name]);
            }
        }
        if self.update_due.is_some_and(|t| t <= now) {
            self.update_due = None;
            let names = std::mem::take(&mut self.pending_update);
            self.topology_to_neighbours(None, names);
        }
        if self.next_gossip <= now {
            self.next_gossip = now + self.cfg.timings.gossip_interval;
            let all: Vec<PeerName> = self.peers.names().collect();
            self.topology_to_neighbours(None, all);
            if !self.channels.is_empty() {
                self.out
                    .push_back(Output::Channel(ChannelEvent::PeriodicGossip));
            }
        }
        if self.next_seen_sweep <= now {
            self.next_seen_sweep = now + self.cfg.timings.duplicate_memory;
            self.seen.expire(now);
        }
        self.refresh_routes();
        self.refresh_discovery(now);
        self.maker.handle_timeout(now);
        self.drain_maker();
    }

    /// When [`Mesh::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.gc_due,
            self.update_due,
            Some(self.next_gossip),
            Some(self.next_seen_sweep),
            self.maker.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing for the edge to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() && !(self.topo_pending.is_empty() && self.topo_fanout.is_empty()) {
            self.flush_topology();
        }
        if self.out.is_empty() {
            self.check_reachability();
        }
        self.out.pop_front()
    }

    // ------------------------------------------------------------------ status

    pub fn status(&mut self) -> MeshStatus {
        self.refresh_routes();
        let nick = |peers: &Peers, n: PeerName| {
            peers
                .get(n)
                .map(|p| p.nick_name().to_owned())
                .unwrap_or_default()
        };
        let mut connections: Vec<ConnectionStatus> = self
            .conns
            .values()
            .map(|c| ConnectionStatus {
                address: c.remote_addr.to_string(),
                outbound: c.outbound,
                state: if c.established {
                    "established"
                } else {
                    "pending"
                }
                .to_owned(),
                info: {
                    let crypto = match c.encrypted {
                        Some(true) => "encrypted ",
                        Some(false) => "unencrypted ",
                        None => "",
                    };
                    let overlay = c.overlay.as_deref().unwrap_or("");
                    format!("{crypto}{overlay:<6} {}({})", c.remote, c.remote_nickname)
                },
                attrs: c.attrs.clone(),
                overlay: c.overlay.clone(),
                retry_at: None,
            })
            .collect();
        let targets_status = self.maker.status();
        for t in &targets_status {
            use crate::maker::TargetState;
            let (state, retry_at) = match &t.state {
                TargetState::Attempting => ("connecting", None),
                TargetState::Waiting { retry_at } if t.last_error.is_some() => {
                    ("failed", Some(*retry_at))
                }
                TargetState::Waiting { retry_at } => ("retrying", Some(*retry_at)),
                TargetState::Connected | TargetState::Suspended => continue,
            };
            connections.push(ConnectionStatus {
                address: t.address.clone(),
                outbound: true,
                state: state.to_owned(),
                info: t.last_error.clone().unwrap_or_default(),
                attrs: Vec::new(),
                overlay: None,
                retry_at,
            });
        }
        let peers: Vec<PeerStatus> = self
            .peers
            .iter()
            .map(|p| PeerStatus {
                name: p.name(),
                nickname: p.nick_name().to_owned(),
                uid: p.uid(),
                short_id: p.raw_short_id().0,
                version: p.version(),
                connections: p
                    .connections()
                    .iter()
                    .map(|(n, c)| PeerConnectionStatus {
                        name: *n,
                        nickname: nick(&self.peers, *n),
                        address: c.remote_tcp_addr.clone(),
                        outbound: c.outbound,
                        established: c.established,
                    })
                    .collect(),
            })
            .collect();
        let unicast_routes = self
            .routes
            .table(LinkFilter::EstablishedSymmetric)
            .into_iter()
            .collect();
        let names: Vec<PeerName> = self.peers.names().collect();
        let broadcast_routes = names
            .into_iter()
            .map(|n| (n, self.routes.broadcast(n).to_vec()))
            .collect();
        MeshStatus {
            name: self.cfg.name,
            nickname: self.cfg.nickname.clone(),
            port: self.cfg.port,
            discovery: self.cfg.discovery,
            targets: self.maker.direct_targets().to_vec(),
            connections,
            targets_status,
            peers,
            unicast_routes,
            broadcast_routes,
            termination_count: self.termination_count,
        }
    }
}

#[cfg(test)]
mod flood_tests {
    //! A misbehaving peer cannot grow our memory without bound (see the module docs).

    use super::*;
    use crate::gossip::encode_topology;
    use crate::topology::{ConnectionSummary, PeerSummary, PeerUpdate};

    fn name(i: u64) -> PeerName {
        PeerName::from_u64(0x0200_0000_0000 | i).unwrap()
    }

    fn mesh(limits: MeshLimits) -> (Mesh, Instant) {
        let now = Instant::now();
        let cfg = MeshConfig {
            name: name(1),
            nickname: "me".into(),
            uid: 11,
            port: 6783,
            discovery: false,
            conn_limit: 0,
            timings: MeshTimings::default(),
            seed: 1,
            limits,
            channels: Vec::new(),
        };
        let mut m = Mesh::new(cfg, now);
        // Two neighbours: the flooder (conn 1) and a bystander (conn 2) to relay to.
        for (id, peer) in [(1u64, 2u64), (2, 3)] {
            let hello = Hello {
                name: name(peer),
                nickname: format!("p{peer}"),
                uid: peer * 10,
                short_id: None,
                conn_uid: id,
                outbound: true,
                remote_addr: format!("10.0.0.{peer}:6783").parse().unwrap(),
                target: None,
                must_be_known: false,
                overlay: None,
                encrypted: None,
            };
            m.connection_ready(now, id, hello).unwrap();
            m.connection_established(now, id);
        }
        while m.poll_output().is_some() {}
        (m, now)
    }

    #[test]
    fn unknown_channel_flood_is_bounded_by_the_dedup_budget() {
        let budget = 64 << 10;
        let (mut m, now) = mesh(MeshLimits {
            gossip_memory_bytes: budget,
            ..MeshLimits::default()
        });
        let mut relayed = 0;
        for i in 0..20_000u32 {
            let mut payload = vec![0u8; 200];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let msg = GossipMsg {
                kind: GossipKind::Gossip,
                channel: "IPallocation".into(),
                src: name(2),
                payload,
            };
            m.handle_gossip(now, 1, msg).unwrap();
            assert!(m.gossip_memory_bytes() <= budget);
            while let Some(o) = m.poll_output() {
                relayed += usize::from(matches!(o, Output::Send { .. }));
            }
        }
        // Every distinct payload was relayed (to the bystander), none kept beyond the budget.
        assert_eq!(relayed, 20_000);
        assert!(m.gossip_memory_bytes() > budget - 300);
        // Recent payloads are still recognised as duplicates.
        let mut dup = vec![0u8; 200];
        dup[..4].copy_from_slice(&19_999u32.to_be_bytes());
        let msg = GossipMsg {
            kind: GossipKind::Gossip,
            channel: "IPallocation".into(),
            src: name(2),
            payload: dup,
        };
        m.handle_gossip(now, 1, msg).unwrap();
        assert!(
            m.poll_output().is_none(),
            "a recent duplicate is not relayed"
        );
        // And everything expires after the duplicate memory (30 s).
        m.handle_timeout(now + Duration::from_secs(31));
        assert_eq!(m.gossip_memory_bytes(), 0);
    }

    fn fake_peers(from: u64, count: u64) -> Vec<PeerUpdate> {
        (from..from + count)
            .map(|i| PeerUpdate {
                summary: PeerSummary {
                    name_byte: name(i).to_bytes().to_vec(),
                    nick_name: format!("fake{i}"),
                    uid: i,
                    version: 1,
                    ..PeerSummary::default()
                },
                // Each also names a placeholder.
                connections: vec![ConnectionSummary {
                    name_byte: name(i + 1_000_000).to_bytes().to_vec(),
                    remote_tcp_addr: "10.9.9.9:6783".into(),
                    outbound: true,
                    established: true,
                }],
            })
            .collect()
    }

    #[test]
    fn invented_peers_are_capped_and_the_update_refused_whole() {
        let (mut m, now) = mesh(MeshLimits {
            max_peers: 100,
            ..MeshLimits::default()
        });
        assert_eq!(m.peers().len(), 3);
        // 40 fake peers + 40 placeholders fit (3 + 80 <= 100).
        let ok = GossipMsg {
            kind: GossipKind::Gossip,
            channel: TOPOLOGY_CHANNEL.into(),
            src: name(2),
            payload: encode_topology(&fake_peers(100, 40)),
        };
        m.handle_gossip(now, 1, ok).unwrap();
        assert_eq!(m.peers().len(), 83);
        // 10 more + 10 placeholders would make 103: refused as a whole, nothing applied.
        let over = GossipMsg {
            kind: GossipKind::Gossip,
            channel: TOPOLOGY_CHANNEL.into(),
            src: name(2),
            payload: encode_topology(&fake_peers(200, 10)),
        };
        let err = m.handle_gossip(now, 1, over).unwrap_err();
        assert_eq!(
            err,
            GossipError::TooManyPeers {
                limit: 100,
                known: 83,
                new: 20
            }
        );
        assert_eq!(m.peers().len(), 83);
        // The edge closes the sending connection on any error; the table then shrinks back
        // when GC finds the invented peers unreachable.
        m.connection_closed(now, 1, Some(err.to_string()));
        m.handle_timeout(now + Duration::from_secs(2));
        assert_eq!(m.peers().len(), 2, "only us and the bystander remain");
    }
}
