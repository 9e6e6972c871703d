//! The allocator state machine (Weave's `ipam.Allocator`, weave-services.md §3.1–3.8): events in
//! (HTTP requests, gossip, peer changes, timer), [`Output`]s out, in order. Pure: no clock of
//! its own (every call takes a [`Now`]), no randomness of its own (a seeded generator), no I/O.
//!
//! Every public call is one *step*: it changes the state, then [`report_free`]s our entries'
//! free counts (Weave's `ReportFree` after every actor step), then queues its outputs:
//! `Persist` first when the ring or the owned addresses changed (the edge makes it durable
//! before anything later, so no reply or message ever gets ahead of the state it depends on),
//! then replies and unicasts in the order they were made, then one `Broadcast` of the state
//! as it is at the end of the step (Weave encodes broadcasts lazily too, which is why its
//! broadcast after a donation already carries the donor's new free count).
//!
//! [`report_free`]: crate::ring::Ring::report_free
//!
//! # Reclaiming dead peers (`dead_after`, opt-in)
//!
//! Weave only reclaims a peer's ranges on `rmpeer`, and running it on two hosts at once gives
//! both the same entries at the same version: a conflict the merge can only refuse. weft's
//! automatic reclaim is arranged so that only one peer ever does it:
//!
//! * a ring owner is *dead* to us once it has been unreachable for `dead_after` without a
//!   break (reachability comes from the mesh through [`Allocator::set_peers`]);
//! * the *heir* of the dead is the lowest-named ring owner that is not dead to us;
//! * a peer reclaims only if it is the heir **and** the ring owners that are not dead to it are
//!   a strict majority of all ring owners.
//!
//! Two peers that can talk agree on who is dead unless one of them has been cut from the other
//! for `dead_after` (a short flap resets nobody's clock the wrong way: the flapping peer is
//! not dead, so it stays the heir for everyone), hence on one heir. Two sides of a partition
//! cannot both hold a strict majority of the same owner set, so at most one side reclaims; the
//! other waits. The transfer is Weave's (`version += 100`), so Weave peers accept it, and once
//! done the dead peer owns nothing, so it cannot be reclaimed twice. What this cannot make
//! safe is a peer that is alive but cut off for longer than `dead_after`: its ranges are
//! reclaimed while it still uses them, so `dead_after` must be longer than any partition that
//! is expected to heal (the merge then refuses the returning peer's ring instead of accepting
//! a double owner). Membership that changes during a partition (new peers given space on one
//! side) can in principle give both sides a majority of their own views; the simulation
//! exercises partitions and deaths and checks for duplicates after every step.
//!
//! `admin_takeover` (rmpeer) keeps Weave's transfer (`version += 100`, which the capture's
//! versions show) but not its recipient: each range of the dead peer goes to the owner of the
//! range before it (`Ring::transfer_to_predecessors`), not to whoever runs rmpeer. The heir
//! depends on the ring alone, so rmpeer of the same peer on two hosts at once (Weave's
//! documented hazard: both take everything and hand out the same addresses) makes identical
//! changes that merge without conflict. In capture (d) the heir is the caller, as in Weave.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use weft_mesh::PeerName;

use crate::addr::{check_subnet, fmt_addr, Cidr, Range};
use crate::codec;
use crate::paxos::{Participant, PaxosStatus};
use crate::ring::{Ring, RingError};
use crate::space::Space;
use crate::wire::{GossipState, NodeClaims, NodeId, RingWire, Unicast};

/// Weave's actor tick.
pub const TICK: Duration = Duration::from_secs(5);
/// How long a dead container keeps its addresses (a restart keeps them).
pub const CONTAINER_DIED_TIMEOUT: Duration = Duration::from_secs(30);
/// Weave gives up a claim after this many failed sends to the owner.
const CLAIM_SEND_ATTEMPTS: u32 = 5;
/// Weave's `api.NoContainerID`.
pub const NO_CONTAINER_ID: &str = "_";
/// Nicknames kept at most (gossip can name many peers over time).
const MAX_NICKNAMES: usize = 8192;

/// The time of an event: monotonic for timers, Unix seconds for the gossip's `Now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix: i64,
}

/// `--ipalloc-init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitMode {
    /// `consensus[=N]`: deferred Paxos; quorum N/2+1, or from the direct targets.
    Consensus { quorum: Option<u32> },
    /// `seed=a,b,...`: the ring is made at once for these peers.
    Seed(Vec<PeerName>),
    /// `observer`: never votes; asks electors for a ring.
    Observer,
}

/// What the allocator is started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: PeerName,
    pub uid: u64,
    pub nickname: String,
    pub universe: Cidr,
    pub default_subnet: Cidr,
    pub init: InitMode,
    /// Seeds the random choices (the order in which peers are asked for space).
    pub seed: u64,
    /// Opt-in: reclaim ring owners unreachable this long (see the module doc).
    pub dead_after: Option<Duration>,
}

/// The addresses of one ID (`ownedData`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owned {
    pub is_container: bool,
    pub cidrs: Vec<Cidr>,
}

/// What the edge stores (Weave's `peername`, `ring`, `ownedAddresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub peer_name: PeerName,
    pub ring: Option<RingWire>,
    pub owned: BTreeMap<String, Owned>,
}

/// Identifies a waiting request (allocate, claim, prime) so its answer can find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqId(pub u64);

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The address, with the requested subnet's prefix length.
    Allocated(Cidr),
    Claimed,
    Primed,
    /// The request was cancelled (container died, shutdown): HTTP 200 `cancelled`.
    Cancelled,
}

/// A mesh peer as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub name: PeerName,
    pub uid: u64,
    pub nickname: String,
    pub reachable: bool,
}

/// What the edge must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Reply {
        req: ReqId,
        result: Result<Reply, IpamError>,
    },
    /// Gossip broadcast (tag 6, src = us) on `IPallocation`.
    Broadcast(Vec<u8>),
    /// Gossip unicast (tag 5).
    Unicast { dst: PeerName, payload: Vec<u8> },
    /// Make this durable before carrying out any later output.
    Persist(Persisted),
}

/// One ring entry for `/report` and `weft status ipam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryStatus {
    pub token: u32,
    pub size: u64,
    pub peer: PeerName,
    pub nickname: String,
    pub is_known_peer: bool,
    pub version: u32,
    pub free: u32,
}

/// One peer's share of the ring (`weft status ipam` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerShare {
    pub name: PeerName,
    pub nickname: String,
    pub ips: u64,
    pub reachable: bool,
    /// Our own allocated count (`(N active)`); `None` for other peers.
    pub active: Option<u64>,
}

/// Everything `/status`, `/status/ipam`, `/report` and `/metrics` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamStatus {
    pub state: String,
    pub waiting_line: Option<String>,
    pub paxos: Option<PaxosStatus>,
    pub range: Cidr,
    pub range_num_ips: u64,
    pub active_ips: u64,
    pub default_subnet: Cidr,
    pub entries: Vec<EntryStatus>,
    pub pending_claims: Vec<(String, Cidr)>,
    pub pending_allocates: Vec<String>,
    pub peers: Vec<PeerShare>,
}

/// IPAM errors; `Display` is Weave's HTTP 400 text (or its gossip error text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    InvalidCidr(String),
    #[error("invalid subnet - bits after network prefix are not all zero: {0}")]
    SubnetHostBits(String),
    #[error("invalid subnet - smaller than minimum size 4: {0}")]
    SubnetTooSmall(String),
    #[error("range {subnet} out of bounds: {universe}")]
    OutOfBounds { subnet: Cidr, universe: Cidr },
    #[error("Unable to claim: address {cidr} is owned by other peer {peer}{}{}", nick(.nickname), reason.as_ref().map(|r| format!(" - {r}")).unwrap_or_default())]
    ClaimOwnedByOther {
        cidr: Cidr,
        peer: PeerName,
        nickname: Option<String>,
        reason: Option<String>,
    },
    #[error("Unable to claim: address {cidr} already in use by {ident}")]
    ClaimInUseBy { cidr: Cidr, ident: String },
    #[error("Unable to claim: address {0} already in use")]
    ClaimInUse(Cidr),
    #[error("Unable to claim: address {cidr} is already owned by {ident}")]
    ClaimOwnedBy { cidr: Cidr, ident: String },
    #[error("Unable to claim: Address {} is not free to claim", fmt_addr(*.0))]
    ClaimNotFree(u32),
    #[error("Unable to free: Free: address {} not found for {ident}", fmt_addr(*.addr))]
    FreeNotFound { addr: u32, ident: String },
    #[error("Delete: no addresses for {0}")]
    DeleteNone(String),
    #[error("cannot take over the ranges of this peer ({0}) itself: run 'weft reset' on it to hand them to another peer")]
    TakeoverSelf(PeerName),
    #[error("IP allocation was seeded by different peers (received: [{}], ours: [{}])", .received.join(" "), .ours.join(" "))]
    SeededDifferently {
        received: Vec<String>,
        ours: Vec<String>,
    },
    #[error("Incompatible IP allocation ranges (received: {received}, ours: {ours})")]
    IncompatibleRange { received: String, ours: String },
    #[error("{0}")]
    Ring(RingError),
    #[error("refused IPAM update from {src}: it would take allocated address {} away from us", fmt_addr(*.addr))]
    WouldTakeAllocated { src: String, addr: u32 },
    #[error("{0}")]
    Decode(String),
}

fn nick(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
}

#[derive(Debug, Clone)]
struct AllocOp {
    req: ReqId,
    ident: String,
    subnet: Cidr,
    is_container: bool,
    /// The peer we last asked for space, and when: not asked again before it answers or a
    /// tick passes (Weave asks again on every ring change, which storms at scale).
    asked: Option<(PeerName, Instant)>,
}

#[derive(Debug, Clone)]
struct ClaimOp {
    req: ReqId,
    ident: String,
    cidr: Cidr,
    is_container: bool,
    no_error_on_unknown: bool,
    replied: bool,
    failures: u32,
}

#[derive(Debug, Clone)]
struct PeerState {
    reachable: bool,
    nickname: String,
}

/// The allocator of one peer.
pub struct Allocator {
    cfg: Config,
    ring: Ring,
    space: Space,
    owned: BTreeMap<String, Owned>,
    nicknames: BTreeMap<PeerName, String>,
    paxos: Option<Participant>,
    awaiting_consensus: bool,
    pending_primes: Vec<ReqId>,
    pending_claims: Vec<ClaimOp>,
    pending_allocates: Vec<AllocOp>,
    dead: BTreeMap<String, Instant>,
    peers: BTreeMap<PeerName, PeerState>,
    /// Ring owners we cannot reach, since when (for `dead_after`).
    unreachable_since: BTreeMap<PeerName, Instant>,
    direct_targets: usize,
    shutting_down: bool,
    rng: u64,
    next_tick: Instant,
    // per step
    step: Vec<Output>,
    need_persist: bool,
    need_broadcast: bool,
    retry: bool,
    out: VecDeque<Output>,
}

impl Allocator {
    /// A new allocator; `persisted` is used under Weave's load rules (same peer name, a
    /// non-empty ring over the same universe), else discarded with a log line and overwritten.
    pub fn new(cfg: Config, persisted: Option<Persisted>, now: Now) -> Self {
        let universe = cfg.universe.range();
        let paxos = match cfg.init {
            InitMode::Observer => Participant::observer(),
            _ => Participant::elector(
                NodeId {
                    name: cfg.name,
                    uid: cfg.uid,
                },
                0,
            ),
        };
        let mut nicknames = BTreeMap::new();
        nicknames.insert(cfg.name, cfg.nickname.clone());
        let mut a = Allocator {
            ring: Ring::new(universe, cfg.name),
            space: Space::new(),
            owned: BTreeMap::new(),
            nicknames,
            paxos: Some(paxos),
            awaiting_consensus: false,
            pending_primes: Vec::new(),
            pending_claims: Vec::new(),
            pending_allocates: Vec::new(),
            dead: BTreeMap::new(),
            peers: BTreeMap::new(),
            unreachable_since: BTreeMap::new(),
            direct_targets: 0,
            shutting_down: false,
            rng: cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
            next_tick: now.at + TICK,
            step: Vec::new(),
            need_persist: false,
            need_broadcast: false,
            retry: false,
            out: VecDeque::new(),
            cfg,
        };
        let loaded = a.load(persisted);
        match (&a.cfg.init, loaded) {
            (InitMode::Seed(_), true) => {
                tracing::info!(
                    "[allocator {}] Found persisted IPAM data, ignoring supplied IPAM seed",
                    a.cfg.name
                )
            }
            (_, true) => tracing::info!(
                "[allocator {}] Initialising with persisted data",
                a.cfg.name
            ),
            (InitMode::Seed(seeds), false) => {
                tracing::info!(
                    "[allocator {}] Initialising with supplied IPAM seed",
                    a.cfg.name
                );
                let seeds = seeds.clone();
                a.create_ring(&seeds);
            }
            (InitMode::Consensus { .. }, false) => {
                tracing::info!(
                    "[allocator {}] Initialising via deferred consensus",
                    a.cfg.name
                )
            }
            (InitMode::Observer, false) => tracing::info!(
                "[allocator {}] Initialising as observer - awaiting IPAM data from another peer",
                a.cfg.name
            ),
        }
        a.finish(now);
        a
    }

    fn load(&mut self, persisted: Option<Persisted>) -> bool {
        let me = self.cfg.name;
        let discard = |a: &mut Self, why: String| {
            tracing::info!("[allocator {me}] {why}");
            a.need_persist = true;
            false
        };
        let Some(p) = persisted else {
            return discard(self, "No valid persisted data".into());
        };
        let Some(ring) = p.ring.filter(|r| !r.entries.is_empty()) else {
            return discard(self, "No valid persisted data".into());
        };
        if p.peer_name != me {
            return discard(
                self,
                format!("Deleting persisted data for peername {}", p.peer_name),
            );
        }
        let restored = match Ring::from_wire(&ring, me) {
            Ok(r) => r,
            Err(e) => {
                return discard(self, format!("Deleting persisted ring, it is invalid: {e}"));
            }
        };
        if restored.range() != self.cfg.universe.range() {
            return discard(
                self,
                format!(
                    "Deleting persisted data for IPAM range {}; our range is {}",
                    restored.range(),
                    self.cfg.universe
                ),
            );
        }
        self.ring = restored;
        self.paxos = None;
        self.space.update_ranges(&self.ring.owned_ranges());
        for (ident, o) in &p.owned {
            for c in &o.cidrs {
                if self.ring.contains(u64::from(c.addr)) {
                    if let Err(e) = self.space.claim(c.addr) {
                        tracing::warn!("[allocator {me}] persisted address {c} of {ident}: {e}");
                    }
                }
            }
        }
        self.owned = p.owned;
        true
    }

    // ---------------------------------------------------------------- step plumbing

    fn finish(&mut self, now: Now) {
        // Retry pending operations after ring changes (bounded: each pass only repeats if
        // the ring changed again).
        let mut passes = 0;
        while self.retry && passes < 8 {
            self.retry = false;
            passes += 1;
            self.try_pending_ops(now);
        }
        self.retry = false;
        if !self.ring.is_empty() {
            let space = &self.space;
            if self
                .ring
                .report_free(|rs| rs.iter().map(|r| space.num_free_in(*r)).sum())
            {
                self.need_persist = true;
            }
        }
        debug_assert_eq!(
            coalesce(self.ring.owned_ranges()),
            self.space.owned_ranges(),
            "ring and space disagree on what we own"
        );
        if std::mem::take(&mut self.need_persist) {
            self.out.push_back(Output::Persist(self.persisted()));
        }
        self.out.extend(self.step.drain(..));
        if std::mem::take(&mut self.need_broadcast) {
            let payload = self.encode(now);
            self.out.push_back(Output::Broadcast(payload));
        }
    }

    fn reply(&mut self, req: ReqId, result: Result<Reply, IpamError>) {
        self.step.push(Output::Reply { req, result });
    }

    fn is_known_peer(&self, p: PeerName) -> bool {
        p == self.cfg.name || self.peers.get(&p).is_some_and(|s| s.reachable)
    }

    fn nickname_of(&self, p: PeerName) -> Option<String> {
        self.nicknames
            .get(&p)
            .cloned()
            .or_else(|| self.peers.get(&p).map(|s| s.nickname.clone()))
            .filter(|n| !n.is_empty())
    }

    fn annotate(&self, names: &[PeerName]) -> Vec<String> {
        names
            .iter()
            .map(|n| match self.nicknames.get(n) {
                Some(nick) => format!("{n}({nick})"),
                None => n.to_string(),
            })
            .collect()
    }

    fn quorum(&self) -> u32 {
        match self.cfg.init {
            InitMode::Consensus { quorum: Some(n) } => n / 2 + 1,
            _ => {
                let t = u32::try_from(self.direct_targets).unwrap_or(u32::MAX / 2);
                t.div_ceil(2) + 1
            }
        }
    }

    fn encode(&self, now: Now) -> Vec<u8> {
        codec::encode_gossip(&self.state(now))
    }

    fn state(&self, now: Now) -> GossipState {
        GossipState {
            now: now.unix,
            nicknames: self.nicknames.clone(),
            // Only nodes that have promised or accepted something: an idle elector sends an
            // empty map, as Weave's does (capture d), so receivers do not count it as known.
            paxos: if self.ring.is_empty() {
                self.paxos.as_ref().and_then(|p| p.claims()).map(|claims| {
                    claims
                        .iter()
                        .filter(|(_, c)| **c != NodeClaims::default())
                        .map(|(id, c)| (*id, c.clone()))
                        .collect()
                })
            } else {
                None
            },
            ring: (!self.ring.is_empty()).then(|| self.ring.to_wire()),
        }
    }

    fn send_ring_update(&mut self, dst: PeerName, now: Now) {
        let payload = codec::encode_unicast(&Unicast::RingUpdate(self.state(now)));
        self.step.push(Output::Unicast { dst, payload });
    }

    // ---------------------------------------------------------------- ring life cycle

    fn establish_ring(&mut self) {
        if !self.ring.is_empty() || self.awaiting_consensus {
            return;
        }
        self.awaiting_consensus = true;
        let q = self.quorum();
        if let Some(p) = self.paxos.as_mut() {
            p.set_quorum(q);
        }
        self.propose();
        let cons = self
            .paxos
            .as_ref()
            .filter(|p| p.is_elector())
            .and_then(|p| p.consensus());
        if let Some(c) = cons {
            self.create_ring(&c.value);
        }
    }

    fn propose(&mut self) {
        tracing::debug!("[allocator {}] Paxos proposing", self.cfg.name);
        if let Some(p) = self.paxos.as_mut() {
            if p.is_elector() {
                p.propose();
                // Weave's Propose: "with a quorum of 1, we can immediately accept our
                // proposal" (idempotent if `propose` already did).
                if p.quorum() == 1 {
                    p.think();
                }
            }
        }
        self.need_broadcast = true;
    }

    fn create_ring(&mut self, peers: &[PeerName]) {
        tracing::debug!("[allocator {}] Paxos consensus: {:?}", self.cfg.name, peers);
        self.ring.claim_for_peers(peers);
        self.ring_updated();
        self.need_broadcast = true;
    }

    fn ring_updated(&mut self) {
        if !self.ring.is_empty() {
            // With a ring, Paxos is done.
            self.awaiting_consensus = false;
            self.paxos = None;
        }
        self.need_persist = true;
        let lost = self.space.update_ranges(&self.ring.owned_ranges());
        for r in lost {
            // Merges refuse this; reaching here is a bug, so say it loudly.
            tracing::error!(
                "[allocator {}] lost allocated addresses {r} with a ring change",
                self.cfg.name
            );
        }
        self.retry = true;
    }

    fn prune_nicknames(&mut self) {
        let ring_peers = self.ring.peer_names();
        let me = self.cfg.name;
        let peers = &self.peers;
        self.nicknames.retain(|n, _| {
            *n == me || ring_peers.contains(n) || peers.get(n).is_some_and(|s| s.reachable)
        });
    }

    // ---------------------------------------------------------------- operations

    fn try_pending_ops(&mut self, now: Now) {
        let primes = std::mem::take(&mut self.pending_primes);
        let mut keep = Vec::new();
        for p in primes {
            if !self.try_prime(p) {
                keep.push(p);
            }
        }
        keep.append(&mut self.pending_primes);
        self.pending_primes = keep;

        let claims = std::mem::take(&mut self.pending_claims);
        let mut keep = Vec::new();
        for mut c in claims {
            if !self.try_claim(&mut c, now) {
                keep.push(c);
            }
        }
        keep.append(&mut self.pending_claims);
        self.pending_claims = keep;

        let allocs = std::mem::take(&mut self.pending_allocates);
        let mut keep = Vec::new();
        for mut op in allocs {
            if !self.try_allocate(&mut op, now) {
                keep.push(op);
            }
        }
        keep.append(&mut self.pending_allocates);
        self.pending_allocates = keep;
    }

    fn try_prime(&mut self, req: ReqId) -> bool {
        self.establish_ring();
        if self.ring.is_empty() {
            return false;
        }
        self.reply(req, Ok(Reply::Primed));
        true
    }

    fn owned_in_range(&self, ident: &str, r: Range) -> Vec<Cidr> {
        self.owned
            .get(ident)
            .map(|o| {
                o.cidrs
                    .iter()
                    .filter(|c| r.contains(u64::from(c.addr)))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find_owner(&self, addr: u32) -> Option<String> {
        self.owned
            .iter()
            .find(|(_, o)| o.cidrs.iter().any(|c| c.addr == addr))
            .map(|(k, _)| k.clone())
    }

    fn add_owned(&mut self, ident: &str, cidr: Cidr, is_container: bool) {
        let o = self.owned.entry(ident.to_owned()).or_default();
        o.is_container = is_container;
        o.cidrs.push(cidr);
        self.need_persist = true;
    }

    fn try_allocate(&mut self, op: &mut AllocOp, now: Now) -> bool {
        if let Some(c) = self.owned_in_range(&op.ident, op.subnet.range()).first() {
            self.dead.remove(&op.ident);
            let c = Cidr::new(c.addr, op.subnet.prefix);
            self.reply(op.req, Ok(Reply::Allocated(c)));
            return true;
        }
        if !self.cfg.universe.range().overlaps(&op.subnet.range()) {
            let e = IpamError::OutOfBounds {
                subnet: op.subnet,
                universe: self.cfg.universe,
            };
            self.reply(op.req, Err(e));
            return true;
        }
        self.establish_ring();
        if let Some(addr) = self.space.allocate(op.subnet.host_range()) {
            let ident = if op.ident == NO_CONTAINER_ID {
                fmt_addr(addr)
            } else {
                op.ident.clone()
            };
            tracing::debug!(
                "[allocator {}]: Allocated {} for {} in {}",
                self.cfg.name,
                fmt_addr(addr),
                ident,
                op.subnet
            );
            let cidr = Cidr::new(addr, op.subnet.prefix);
            self.add_owned(&ident, cidr, op.is_container);
            self.reply(op.req, Ok(Reply::Allocated(cidr)));
            return true;
        }
        // out of space: ask the peer with most free space (weighted random)
        if let Some((asked, at)) = op.asked {
            if self.is_known_peer(asked) && now.at.saturating_duration_since(at) < TICK {
                return false; // its answer is on the way
            }
        }
        let want = op.subnet.range();
        let mut rng = self.rng;
        let donors = self.ring.choose_peers_to_ask(want, || splitmix(&mut rng));
        self.rng = rng;
        if let Some(donor) = donors.into_iter().find(|d| self.is_known_peer(*d)) {
            tracing::debug!(
                "[allocator {}]: Decided to ask peer {donor} for space in range {}",
                self.cfg.name,
                op.subnet
            );
            let payload = codec::encode_unicast(&Unicast::SpaceRequest(want.to_wire()));
            self.step.push(Output::Unicast {
                dst: donor,
                payload,
            });
            op.asked = Some((donor, now.at));
        }
        false
    }

    fn claim_result(&mut self, c: &mut ClaimOp, result: Result<Reply, IpamError>) {
        if c.replied {
            if let Err(e) = result {
                tracing::error!("[allocator {}] {e}", self.cfg.name);
            }
            return;
        }
        c.replied = true;
        self.reply(c.req, result);
    }

    fn denied_by(&mut self, c: &mut ClaimOp, owner: PeerName, reason: Option<String>) {
        let e = IpamError::ClaimOwnedByOther {
            cidr: c.cidr,
            peer: owner,
            nickname: self.nickname_of(owner),
            reason,
        };
        self.claim_result(c, Err(e));
    }

    fn try_claim(&mut self, c: &mut ClaimOp, _now: Now) -> bool {
        let addr = c.cidr.addr;
        if !self.ring.contains(u64::from(addr)) {
            // Outside the universe: recorded without the ring.
            match self.find_owner(addr) {
                Some(other) if other != c.ident => {
                    if self.dead.contains_key(&other) {
                        self.remove_owned(&other, addr);
                    } else {
                        let e = IpamError::ClaimInUseBy {
                            cidr: c.cidr,
                            ident: other,
                        };
                        self.claim_result(c, Err(e));
                        return true;
                    }
                }
                Some(_) => {
                    self.claim_result(c, Ok(Reply::Claimed));
                    return true;
                }
                None => {}
            }
            tracing::info!(
                "[allocator {}] Address {} claimed by {} - not in our range",
                self.cfg.name,
                c.cidr,
                c.ident
            );
            let ident = c.ident.clone();
            self.add_owned(&ident, c.cidr, c.is_container);
            self.claim_result(c, Ok(Reply::Claimed));
            return true;
        }
        self.establish_ring();
        self.dead.remove(&c.ident);
        match self.ring.owner(u64::from(addr)) {
            Some(o) if o == self.cfg.name => {}
            None => {
                tracing::info!(
                    "[allocator {}] Claim {} for {}: is in the range {}, but the allocator is not initialized yet; will try later.",
                    self.cfg.name, c.cidr, c.ident, self.cfg.universe
                );
                if c.no_error_on_unknown {
                    self.claim_result(c, Ok(Reply::Claimed));
                }
                return false;
            }
            Some(owner) => {
                if self.is_known_peer(owner) {
                    tracing::debug!(
                        "[allocator {}] requesting address {} from other peer {owner}",
                        self.cfg.name,
                        c.cidr
                    );
                    let r = Range::new(u64::from(addr), u64::from(addr) + 1);
                    let payload = codec::encode_unicast(&Unicast::SpaceRequest(r.to_wire()));
                    self.step.push(Output::Unicast {
                        dst: owner,
                        payload,
                    });
                    return false;
                }
                c.failures += 1;
                if c.no_error_on_unknown {
                    self.claim_result(c, Ok(Reply::Claimed));
                    return false;
                }
                if c.failures > CLAIM_SEND_ATTEMPTS {
                    self.denied_by(c, owner, Some("peer is unreachable".into()));
                    return true;
                }
                return false;
            }
        }
        // We own it: check we have not given it to another ID.
        match self.find_owner(addr) {
            None => match self.space.claim(addr) {
                Ok(()) => {
                    let ident = if c.ident == NO_CONTAINER_ID {
                        fmt_addr(addr)
                    } else {
                        c.ident.clone()
                    };
                    self.add_owned(&ident, c.cidr, c.is_container);
                    self.claim_result(c, Ok(Reply::Claimed));
                }
                Err(_) => self.claim_result(c, Err(IpamError::ClaimNotFree(addr))),
            },
            Some(existing)
                if existing == c.ident
                    || (c.ident == NO_CONTAINER_ID && existing == fmt_addr(addr)) =>
            {
                self.claim_result(c, Ok(Reply::Claimed))
            }
            Some(existing) if existing == fmt_addr(addr) => {
                self.claim_result(c, Err(IpamError::ClaimInUse(c.cidr)))
            }
            Some(_) if c.ident == NO_CONTAINER_ID => self.claim_result(c, Ok(Reply::Claimed)),
            Some(existing) => self.claim_result(
                c,
                Err(IpamError::ClaimOwnedBy {
                    cidr: c.cidr,
                    ident: existing,
                }),
            ),
        }
        true
    }

    fn remove_owned(&mut self, ident: &str, addr: u32) -> bool {
        let Some(o) = self.owned.get_mut(ident) else {
            return false;
        };
        let Some(pos) = o.cidrs.iter().position(|c| c.addr == addr) else {
            return false;
        };
        o.cidrs.remove(pos);
        if o.cidrs.is_empty() {
            self.owned.remove(ident);
        }
        self.need_persist = true;
        true
    }

    fn delete_ident(&mut self, ident: &str) -> Result<(), IpamError> {
        let Some(o) = self.owned.remove(ident) else {
            return Err(IpamError::DeleteNone(ident.to_owned()));
        };
        self.need_persist = true;
        for c in o.cidrs {
            // Addresses outside our space (outside the universe) were never in it.
            let _ = self.space.free(c.addr);
        }
        Ok(())
    }

    fn cancel_ops_for(&mut self, ident: &str) {
        let (gone, keep): (Vec<AllocOp>, Vec<AllocOp>) =
            std::mem::take(&mut self.pending_allocates)
                .into_iter()
                .partition(|o| o.ident == ident);
        self.pending_allocates = keep;
        for o in gone {
            self.reply(o.req, Ok(Reply::Cancelled));
        }
        let (gone, keep): (Vec<ClaimOp>, Vec<ClaimOp>) = std::mem::take(&mut self.pending_claims)
            .into_iter()
            .partition(|o| o.ident == ident);
        self.pending_claims = keep;
        for mut c in gone {
            self.claim_result(&mut c, Ok(Reply::Cancelled));
        }
    }

    fn cancel_all(&mut self) {
        for p in std::mem::take(&mut self.pending_primes) {
            self.reply(p, Ok(Reply::Cancelled));
        }
        for o in std::mem::take(&mut self.pending_allocates) {
            self.reply(o.req, Ok(Reply::Cancelled));
        }
        for mut c in std::mem::take(&mut self.pending_claims) {
            self.claim_result(&mut c, Ok(Reply::Cancelled));
        }
    }

    // ---------------------------------------------------------------- public API: requests

    /// `POST /ip/{id}[/{net}/{len}]`: answered through `Output::Reply` (maybe much later).
    pub fn allocate(
        &mut self,
        now: Now,
        req: ReqId,
        ident: &str,
        subnet: Cidr,
        is_container: bool,
    ) {
        if let Err(e) = check_subnet(subnet) {
            self.reply(req, Err(e));
        } else if self.shutting_down {
            self.reply(req, Ok(Reply::Cancelled));
        } else {
            let mut op = AllocOp {
                req,
                ident: ident.to_owned(),
                subnet,
                is_container,
                asked: None,
            };
            if !self.try_allocate(&mut op, now) {
                self.pending_allocates.push(op);
            }
        }
        self.finish(now);
    }

    /// `PUT /ip/{id}/{ip}/{len}`.
    pub fn claim(
        &mut self,
        now: Now,
        req: ReqId,
        ident: &str,
        cidr: Cidr,
        is_container: bool,
        no_error_on_unknown: bool,
    ) {
        if self.shutting_down {
            self.reply(req, Ok(Reply::Cancelled));
        } else {
            let mut op = ClaimOp {
                req,
                ident: ident.to_owned(),
                cidr,
                is_container,
                no_error_on_unknown,
                replied: false,
                failures: 0,
            };
            if !self.try_claim(&mut op, now) {
                self.pending_claims.push(op);
            }
        }
        self.finish(now);
    }

    /// `GET /ring`: answered once the ring exists.
    pub fn prime(&mut self, now: Now, req: ReqId) {
        if self.shutting_down {
            self.reply(req, Ok(Reply::Cancelled));
        } else if !self.try_prime(req) {
            self.pending_primes.push(req);
        }
        self.finish(now);
    }

    /// The caller went away: drop the request, no reply.
    pub fn cancel(&mut self, now: Now, req: ReqId) {
        self.pending_primes.retain(|r| *r != req);
        self.pending_allocates.retain(|o| o.req != req);
        self.pending_claims.retain(|o| o.req != req);
        self.finish(now);
    }

    /// `GET /ip/{id}[/{net}/{len}]`: the ID's addresses in the subnet's (default: the default
    /// subnet's) host range.
    pub fn lookup(&self, ident: &str, subnet: Option<Cidr>) -> Vec<Cidr> {
        let s = subnet.unwrap_or(self.cfg.default_subnet);
        self.owned_in_range(ident, s.host_range())
    }

    /// `GET /ip`.
    pub fn owned(&self) -> Vec<(String, Vec<Cidr>)> {
        self.owned
            .iter()
            .map(|(k, v)| (k.clone(), v.cidrs.clone()))
            .collect()
    }

    /// `DELETE /ip/{id}/{ip}`.
    pub fn free(&mut self, now: Now, ident: &str, addr: u32) -> Result<(), IpamError> {
        let r = if self.remove_owned(ident, addr) {
            tracing::debug!(
                "[allocator {}]: Freed {} for {ident}",
                self.cfg.name,
                fmt_addr(addr)
            );
            let _ = self.space.free(addr);
            Ok(())
        } else {
            Err(IpamError::FreeNotFound {
                addr,
                ident: ident.to_owned(),
            })
        };
        self.finish(now);
        r
    }

    /// `DELETE /ip/{id}`.
    pub fn delete(&mut self, now: Now, ident: &str) -> Result<(), IpamError> {
        let r = self.delete_ident(ident);
        self.finish(now);
        r
    }

    /// Docker `die`: pending requests of the ID are cancelled; its container-owned addresses
    /// are freed 30 s later unless it starts again.
    pub fn container_died(&mut self, now: Now, ident: &str) {
        if self.owned.contains_key(ident) {
            self.dead.insert(ident.to_owned(), now.at);
        }
        self.cancel_ops_for(ident);
        self.finish(now);
    }

    /// Docker `start`: keep the addresses.
    pub fn container_started(&mut self, ident: &str) {
        self.dead.remove(ident);
    }

    /// Docker `destroy`: free now.
    pub fn container_destroyed(&mut self, now: Now, ident: &str) {
        if self.owned.contains_key(ident) {
            let _ = self.delete_ident(ident);
            self.dead.remove(ident);
        }
        self.finish(now);
    }

    /// Free the container-owned addresses of IDs that are not live.
    pub fn prune_owned(&mut self, now: Now, live: &dyn Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .owned
            .iter()
            .filter(|(k, o)| o.is_container && !live(k))
            .map(|(k, _)| k.clone())
            .collect();
        for ident in gone {
            tracing::debug!("[allocator {}] Deleting old entry {ident}", self.cfg.name);
            let _ = self.delete_ident(&ident);
        }
        self.finish(now);
    }

    /// IDs whose addresses are container-owned (for the edge's liveness checks).
    pub fn container_idents(&self) -> Vec<String> {
        self.owned
            .iter()
            .filter(|(_, o)| o.is_container)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `DELETE /peer/{peer}` (rmpeer): every range of that peer (by name or nickname) goes to
    /// the owner of the range before it. Returns the number of addresses taken over.
    pub fn admin_takeover(&mut self, now: Now, peer_or_nickname: &str) -> Result<u64, IpamError> {
        let found = self
            .nicknames
            .iter()
            .find(|(_, n)| n.as_str() == peer_or_nickname)
            .map(|(p, _)| *p)
            .or_else(|| peer_or_nickname.parse::<PeerName>().ok());
        let Some(peer) = found else {
            tracing::warn!(
                "[allocator {}] attempt to take over range from unknown peer '{peer_or_nickname}'",
                self.cfg.name
            );
            self.finish(now);
            return Ok(0);
        };
        if peer == self.cfg.name {
            self.finish(now);
            return Err(IpamError::TakeoverSelf(peer));
        }
        // Each range goes to its predecessor's owner (see `Ring::transfer_to_predecessors`):
        // the same change whichever peer runs rmpeer, so running it on two hosts at once
        // cannot hand an address out twice. The answer counts every address taken over.
        let moved = self.ring.transfer_to_predecessors(peer, self.cfg.name);
        let n: u64 = moved.iter().map(|r| r.size()).sum();
        if n > 0 {
            self.ring_updated();
            self.need_broadcast = true;
        }
        self.finish(now);
        Ok(n)
    }

    fn take_over(&mut self, peer: PeerName) -> u64 {
        let moved = self.ring.transfer(peer, self.cfg.name);
        if moved.is_empty() {
            return 0;
        }
        let before = self.space.num_free();
        self.ring_updated();
        let after = self.space.num_free();
        self.need_broadcast = true;
        after.saturating_sub(before)
    }

    /// `DELETE /peer` (`weft reset`): cancel everything and hand our ranges to an heir.
    pub fn shutdown(&mut self, now: Now) {
        tracing::info!("[allocator {}] Shutdown", self.cfg.name);
        self.shutting_down = true;
        self.cancel_all();
        let heir = self
            .ring
            .pick_peer_for_transfer(|p| self.is_known_peer(p))
            .or_else(|| {
                self.nicknames
                    .keys()
                    .copied()
                    .find(|n| *n != self.cfg.name && self.is_known_peer(*n))
            })
            .or_else(|| self.ring.pick_peer_for_transfer(|_| true))
            .or_else(|| self.nicknames.keys().copied().find(|n| *n != self.cfg.name));
        if let Some(heir) = heir {
            self.ring.transfer(self.cfg.name, heir);
            self.space.clear();
            self.need_persist = true;
            self.need_broadcast = true;
        }
        self.finish(now);
    }

    // ---------------------------------------------------------------- public API: mesh

    /// The 5 s tick: retry (or re-propose), free dead containers, reclaim dead peers.
    pub fn handle_timeout(&mut self, now: Now) {
        if now.at < self.next_tick {
            return;
        }
        self.next_tick = now.at + TICK;
        if self.awaiting_consensus {
            self.propose();
        } else {
            for op in &mut self.pending_allocates {
                op.asked = None; // ask again: messages may have been lost
            }
            self.try_pending_ops(now);
        }
        let expired: Vec<String> = self
            .dead
            .iter()
            .filter(|(_, t)| now.at.saturating_duration_since(**t) > CONTAINER_DIED_TIMEOUT)
            .map(|(k, _)| k.clone())
            .collect();
        for ident in expired {
            if self.delete_ident(&ident).is_ok() {
                tracing::debug!(
                    "[allocator {}]: Removed addresses for container {ident}",
                    self.cfg.name
                );
            }
            self.dead.remove(&ident);
        }
        self.track_unreachable(now);
        self.reclaim_dead(now);
        self.prune_nicknames();
        self.finish(now);
    }

    fn reclaim_dead(&mut self, now: Now) {
        let Some(after) = self.cfg.dead_after else {
            return;
        };
        if self.ring.is_empty() || self.shutting_down {
            return;
        }
        let owners = self.ring.peer_names();
        let dead: BTreeSet<PeerName> = self
            .unreachable_since
            .iter()
            .filter(|(p, t)| owners.contains(p) && now.at.saturating_duration_since(**t) >= after)
            .map(|(p, _)| *p)
            .collect();
        if dead.is_empty() {
            return;
        }
        let alive: Vec<PeerName> = owners
            .iter()
            .copied()
            .filter(|p| !dead.contains(p))
            .collect();
        if alive.len() * 2 <= owners.len() {
            return; // no majority of ring owners here: the other side may reclaim
        }
        if alive.first() != Some(&self.cfg.name) {
            return; // not the heir
        }
        for d in dead {
            let n = self.take_over(d);
            tracing::info!(
                "[allocator {}] peer {d} unreachable for {:?}: took over its ranges ({n} IPs)",
                self.cfg.name,
                after
            );
            self.unreachable_since.remove(&d);
        }
    }

    /// When the allocator next wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// What the edge persists.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            peer_name: self.cfg.name,
            ring: (!self.ring.is_empty()).then(|| self.ring.to_wire()),
            owned: self.owned.clone(),
        }
    }

    /// Approximate bytes of state this allocator holds (ring entries, space boundaries, owned
    /// addresses, nicknames, known peers), for the simulation's memory figures.
    pub fn memory_estimate(&self) -> usize {
        let ring = std::mem::size_of_val(self.ring.entries());
        let space = self.space.runs() * 16;
        let owned: usize = self
            .owned
            .iter()
            .map(|(k, o)| 48 + k.len() + o.cidrs.len() * std::mem::size_of::<Cidr>())
            .sum();
        let nicks: usize = self.nicknames.values().map(|n| 8 + 24 + n.len()).sum();
        let peers: usize = self.peers.values().map(|s| 8 + 32 + s.nickname.len()).sum();
        ring + space + owned + nicks + peers
    }

    /// The ring (read-only: tests, the simulation, reports).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Our space (read-only).
    pub fn space(&self) -> &Space {
        &self.space
    }
}

mod gossip;
mod status;

/// The first ring token above `a`, or the end of the universe.
fn next_boundary(ring: &Ring, a: u64) -> u64 {
    let es = ring.entries();
    let i = es.partition_point(|e| u64::from(e.token) <= a);
    es.get(i)
        .map(|e| u64::from(e.token))
        .unwrap_or(ring.range().end)
}

/// splitmix64 as a float in [0, 1).
fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn coalesce(mut rs: Vec<Range>) -> Vec<Range> {
    rs.sort();
    let mut out: Vec<Range> = Vec::new();
    for r in rs {
        match out.last_mut() {
            Some(l) if l.end == r.start => l.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests;
