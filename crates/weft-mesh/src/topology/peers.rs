//! The peer table (reference §1, §3.4, §3.5, §3.7, §3.8).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::PeerName;

use super::short_id::ShortIdIndex;
use super::summary::{name_from_bytes, ConnectionSummary, PeerSummary, PeerUpdate, PeerUpdateView};
use super::{RandomSource, TopologyError, SHORT_ID_SPACE};

/// One connection of a peer, as that peer advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    /// The remote's TCP address as seen by the owning peer (`ip:port`).
    pub remote_tcp_addr: String,
    /// The owning peer dialled it.
    pub outbound: bool,
    /// The overlay data path is proven (only established links carry data, §3.6).
    pub established: bool,
}

/// One entry of the peer table.
///
/// A *placeholder* (UID 0, Version 0, no short ID, no connections) stands for a name that some
/// peer's connection list mentions but whose own record we have not seen yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    name: PeerName,
    nick_name: String,
    uid: u64,
    version: u64,
    short_id: u16,
    has_short_id: bool,
    connections: BTreeMap<PeerName, Connection>,
    local_ref_count: u64,
}

impl Peer {
    fn placeholder(name: PeerName) -> Self {
        Peer {
            name,
            nick_name: String::new(),
            uid: 0,
            version: 0,
            short_id: 0,
            has_short_id: false,
            connections: BTreeMap::new(),
            local_ref_count: 0,
        }
    }

    /// The peer's 48-bit name.
    pub fn name(&self) -> PeerName {
        self.name
    }
    /// The peer's nickname.
    pub fn nick_name(&self) -> &str {
        &self.nick_name
    }
    /// The incarnation UID (0 for a placeholder).
    pub fn uid(&self) -> u64 {
        self.uid
    }
    /// The record version.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The short ID, if the peer has one.
    pub fn short_id(&self) -> Option<u16> {
        self.has_short_id.then_some(self.short_id)
    }
    /// The raw `(ShortID, HasShortID)` pair exactly as last received.
    pub fn raw_short_id(&self) -> (u16, bool) {
        (self.short_id, self.has_short_id)
    }
    /// The peer's advertised connections, keyed by remote name.
    pub fn connections(&self) -> &BTreeMap<PeerName, Connection> {
        &self.connections
    }
    /// Local references (live connections, handshakes in flight) that protect it from GC.
    pub fn local_ref_count(&self) -> u64 {
        self.local_ref_count
    }
    /// Whether this is a placeholder (UID 0).
    pub fn is_placeholder(&self) -> bool {
        self.uid == 0
    }

    /// The peer's record in gossip form (connections in name order).
    pub fn to_update(&self) -> PeerUpdate {
        PeerUpdate {
            summary: PeerSummary {
                name_byte: self.name.to_bytes().to_vec(),
                nick_name: self.nick_name.clone(),
                uid: self.uid,
                version: self.version,
                short_id: u64::from(self.short_id),
                has_short_id: self.has_short_id,
            },
            connections: self
                .connections
                .iter()
                .map(|(name, c)| ConnectionSummary {
                    name_byte: name.to_bytes().to_vec(),
                    remote_tcp_addr: c.remote_tcp_addr.clone(),
                    outbound: c.outbound,
                    established: c.established,
                })
                .collect(),
        }
    }
}

/// Result of [`Peers::apply_update`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Every peer name the update carried a record for, in update order, without repeats
    /// (what a tag-6 broadcast relays unchanged).
    pub received: Vec<PeerName>,
    /// Peers whose entry was created or replaced: the incremental update to relay (tag 4), to
    /// neighbours other than the sender. Empty means the update brought nothing new.
    pub improved: BTreeSet<PeerName>,
    /// Our own record changed (Version raised past an old incarnation of us, or our short ID
    /// re-drawn after a collision): the caller must gossip `{local}`.
    pub local_changed: bool,
    /// The short ID → peer mapping changed: fastdp flows must be flushed.
    pub short_ids_invalidated: bool,
}

/// Result of [`Peers::garbage_collect`] (also returned by [`Peers::delete_connection`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOutcome {
    /// Peers removed as unreachable, in name order ("Removed unreachable peer").
    pub removed: Vec<PeerName>,
    /// Our short ID was re-drawn (GC freed one we could take): gossip `{local}`.
    pub local_changed: bool,
    /// The short ID → peer mapping changed.
    pub short_ids_invalidated: bool,
}

/// Result of [`Peers::fetch_with_default`] (registering the remote of a handshake).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The peer was not in the table before.
    pub is_new: bool,
    /// The peer was known under a different UID (restarted, or a placeholder).
    pub is_restarted: bool,
    /// Our own record changed (short ID re-drawn because the newcomer took ours).
    pub local_changed: bool,
    /// The short ID → peer mapping changed.
    pub short_ids_invalidated: bool,
}

/// Result of a local short-ID change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShortIdOutcome {
    /// Our record changed (Version bumped): gossip `{local}`.
    pub local_changed: bool,
    /// The short ID → peer mapping changed.
    pub short_ids_invalidated: bool,
}

/// Notifications gathered while the table is being changed, acted on at the end.
#[derive(Debug, Default)]
struct Pending {
    invalidated: bool,
    reassign_local: bool,
    local_changed: bool,
}

/// A peer record from an update, validated (every name and the short ID) but not yet copied:
/// most records a busy router receives are stale, so their connection maps are never built.
struct Decoded<'u, 'v> {
    name: PeerName,
    short_id: u16,
    update: &'u PeerUpdateView<'v>,
}

impl<'u, 'v> Decoded<'u, 'v> {
    fn validate(update: &'u PeerUpdateView<'v>) -> Result<Self, TopologyError> {
        let name = name_from_bytes(update.name_byte)?;
        let short_id = u16::try_from(update.short_id)
            .map_err(|_| TopologyError::ShortIdOverflow(update.short_id, name))?;
        for c in &update.connections {
            name_from_bytes(c.name_byte)?;
        }
        Ok(Decoded {
            name,
            short_id,
            update,
        })
    }

    fn uid(&self) -> u64 {
        self.update.uid
    }

    fn version(&self) -> u64 {
        self.update.version
    }

    fn has_short_id(&self) -> bool {
        self.update.has_short_id
    }

    /// Remote names of the connection list (all valid: checked by `validate`).
    fn remotes(&self) -> impl Iterator<Item = PeerName> + 'u {
        self.update
            .connections
            .iter()
            .filter_map(|c| name_from_bytes(c.name_byte).ok())
    }

    /// The connection map; a repeated remote name keeps the later entry, as a map insert would.
    fn connections(&self) -> BTreeMap<PeerName, Connection> {
        self.update
            .connections
            .iter()
            .filter_map(|c| {
                let name = name_from_bytes(c.name_byte).ok()?;
                Some((
                    name,
                    Connection {
                        remote_tcp_addr: c.remote_tcp_addr.to_owned(),
                        outbound: c.outbound,
                        established: c.established,
                    },
                ))
            })
            .collect()
    }

    /// Weave's "newer wins" rule (§3.5): is this record to be skipped against `old`?
    fn is_stale_against(&self, old: &Peer) -> bool {
        let (version, uid) = (self.version(), self.uid());
        version < old.version
            || (version == old.version
                && (uid < old.uid
                    || (uid == old.uid && (!self.has_short_id() || old.has_short_id))))
    }
}

/// The peer table of one router: every known peer including the local one, and the short-ID
/// index. Iteration is in name order, so everything derived from it is deterministic.
#[derive(Debug, Clone)]
pub struct Peers {
    local: PeerName,
    by_name: BTreeMap<PeerName, Peer>,
    /// The keys of `by_name` again, hashed: membership tests for every name in every received
    /// connection list are the hot path of applying updates.
    known: HashSet<PeerName>,
    short_ids: ShortIdIndex,
    /// Most peers (placeholders included) that received updates may grow the table to.
    max_peers: usize,
}

impl Peers {
    /// A table holding only the local peer: Version 0, the given UID (should be non-zero and
    /// random per process start) and short ID (masked to 12 bits; should be random).
    pub fn new(local: PeerName, nick_name: impl Into<String>, uid: u64, short_id: u16) -> Self {
        let short_id = short_id & (SHORT_ID_SPACE - 1);
        let me = Peer {
            name: local,
            nick_name: nick_name.into(),
            uid,
            version: 0,
            short_id,
            has_short_id: true,
            connections: BTreeMap::new(),
            local_ref_count: 1,
        };
        let mut short_ids = ShortIdIndex::default();
        short_ids.add(local, short_id);
        Peers {
            local,
            by_name: BTreeMap::from([(local, me)]),
            known: HashSet::from([local]),
            short_ids,
            max_peers: usize::MAX,
        }
    }

    /// Cap the number of peers (placeholders included) that received updates may grow the
    /// table to: [`apply_update`](Self::apply_update) refuses, as a whole and before changing
    /// anything, an update that would create more ([`TopologyError::TooManyPeers`]). Peers
    /// registered by handshakes ([`fetch_with_default`](Self::fetch_with_default)) are bounded
    /// by the connection limit instead and always admitted. Unlimited by default.
    pub fn set_max_peers(&mut self, max: usize) {
        self.max_peers = max.max(1);
    }

    /// The cap set by [`set_max_peers`](Self::set_max_peers).
    pub fn max_peers(&self) -> usize {
        self.max_peers
    }

    /// The local peer's name.
    pub fn local_name(&self) -> PeerName {
        self.local
    }

    /// The local peer's entry.
    pub fn local(&self) -> &Peer {
        self.by_name
            .get(&self.local)
            .expect("invariant: the local peer is always in the table")
    }

    fn local_mut(&mut self) -> &mut Peer {
        self.by_name
            .get_mut(&self.local)
            .expect("invariant: the local peer is always in the table")
    }

    /// A peer by name.
    pub fn get(&self, name: PeerName) -> Option<&Peer> {
        self.by_name.get(&name)
    }

    /// Whether the name is in the table.
    pub fn contains(&self, name: PeerName) -> bool {
        self.known.contains(&name)
    }

    /// Number of peers in the table (at least 1: the local peer).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Always false: the local peer is always present. (For API symmetry with `len`.)
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// All peers in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.by_name.values()
    }

    /// All peer names in order (what a full gossip covers).
    pub fn names(&self) -> impl Iterator<Item = PeerName> + '_ {
        self.by_name.keys().copied()
    }

    /// The principal peer for a short ID (the lowest-named claimant), as fastdp needs it.
    pub fn fetch_by_short_id(&self, id: u16) -> Option<PeerName> {
        self.short_ids.principal(id)
    }

    // ---------------------------------------------------------------- producing updates

    /// Full state: every peer's record, in name order (the 30 s gossip and the dump sent down a
    /// connection to a new or restarted peer).
    pub fn full_update(&self) -> Vec<PeerUpdate> {
        self.by_name.values().map(Peer::to_update).collect()
    }

    /// Incremental update: the current records of the named peers, in name order; names no
    /// longer in the table (garbage-collected since) are skipped. Encoding at send time from the
    /// current table is what lets queued updates coalesce (§3.2).
    pub fn incremental_update<'a>(
        &self,
        names: impl IntoIterator<Item = &'a PeerName>,
    ) -> Vec<PeerUpdate> {
        let set: BTreeSet<PeerName> = names.into_iter().copied().collect();
        set.into_iter()
            .filter_map(|n| self.by_name.get(&n).map(Peer::to_update))
            .collect()
    }

    // ---------------------------------------------------------------- applying updates

    /// Merge a received topology update into the table (§3.5).
    ///
    /// The update is validated as a whole first; on error nothing changes. Then:
    /// * records of names we do not know become new peers, and names only mentioned in a
    ///   connection list become placeholders;
    /// * a record about ourselves is never adopted; if it carries another UID (an old
    ///   incarnation of us) and a Version at least ours, our Version becomes `received + 1`
    ///   and `local_changed` asks the caller to gossip us;
    /// * a record for a new peer installs its connections;
    /// * a record for a known peer is adopted unless it is older by the "newer wins" rule
    ///   (Version, then UID, then gaining a short ID);
    /// * if a newcomer with a lower name took our short ID, we re-draw ours from `rng`.
    ///
    /// Garbage collection is *not* run here (Weave schedules it 1 s later): call
    /// [`garbage_collect`](Self::garbage_collect) and drop removed names from `improved` before
    /// relaying if they are still queued.
    pub fn apply_update<R: RandomSource + ?Sized>(
        &mut self,
        update: &[PeerUpdate],
        rng: &mut R,
    ) -> Result<ApplyOutcome, TopologyError> {
        let views: Vec<PeerUpdateView<'_>> = update.iter().map(PeerUpdate::view).collect();
        self.apply_update_view(&views, rng)
    }

    /// [`apply_update`](Self::apply_update) on borrowed records (what the fast topology
    /// decoder produces), so that the names and addresses of the many stale records a busy
    /// router receives are never copied.
    pub fn apply_update_view<R: RandomSource + ?Sized>(
        &mut self,
        update: &[PeerUpdateView<'_>],
        rng: &mut R,
    ) -> Result<ApplyOutcome, TopologyError> {
        let decoded = update
            .iter()
            .map(Decoded::validate)
            .collect::<Result<Vec<_>, _>>()?;
        self.check_growth(&decoded)?;

        let mut pending = Pending::default();
        let mut outcome = ApplyOutcome::default();
        let mut seen = BTreeSet::new();
        for d in &decoded {
            if seen.insert(d.name) {
                outcome.received.push(d.name);
            }
        }

        // New peers first (their connections are installed below), then placeholders for
        // names referenced only inside connection lists.
        let mut created = BTreeSet::new();
        for d in &decoded {
            if !self.known.contains(&d.name) {
                let mut peer = Peer::placeholder(d.name);
                peer.nick_name = d.update.nick_name.to_owned();
                peer.uid = d.uid();
                peer.version = d.version();
                peer.short_id = d.short_id;
                peer.has_short_id = d.has_short_id();
                self.insert_peer(peer, &mut pending);
                created.insert(d.name);
            }
        }
        for d in &decoded {
            for remote in d.remotes() {
                if !self.known.contains(&remote) {
                    self.insert_peer(Peer::placeholder(remote), &mut pending);
                }
            }
        }

        for d in &decoded {
            let name = d.name;
            if name == self.local {
                let me = self.local_mut();
                if d.uid() != me.uid && d.version() >= me.version {
                    me.version = d.version().saturating_add(1);
                    pending.local_changed = true;
                }
                continue;
            }
            let Some(peer) = self.by_name.get_mut(&name) else {
                continue; // unreachable: every decoded name was inserted above
            };
            if created.remove(&name) {
                peer.connections = d.connections();
                outcome.improved.insert(name);
                continue;
            }
            if d.is_stale_against(peer) {
                continue;
            }
            let old_short = (peer.short_id, peer.has_short_id);
            let new_short = (d.short_id, d.has_short_id());
            peer.version = d.version();
            peer.uid = d.uid();
            if peer.nick_name != d.update.nick_name {
                d.update.nick_name.clone_into(&mut peer.nick_name);
            }
            peer.connections = d.connections();
            if old_short != new_short {
                self.reindex_short_id(name, new_short, &mut pending);
            }
            outcome.improved.insert(name);
        }

        let effects = self.finish(pending, rng);
        outcome.local_changed = effects.local_changed;
        outcome.short_ids_invalidated = effects.short_ids_invalidated;
        Ok(outcome)
    }

    /// Refuse an update that would grow the table past `max_peers` (counting every name it
    /// would add: records and connection-list placeholders).
    fn check_growth(&self, decoded: &[Decoded<'_, '_>]) -> Result<(), TopologyError> {
        // Cheap bound first: every name in the update new.
        let bound: usize = decoded.iter().map(|d| 1 + d.update.connections.len()).sum();
        if self.by_name.len().saturating_add(bound) <= self.max_peers {
            return Ok(());
        }
        let mut new = BTreeSet::new();
        for d in decoded {
            for name in std::iter::once(d.name).chain(d.remotes()) {
                if !self.known.contains(&name) {
                    new.insert(name);
                }
            }
        }
        if self.by_name.len() + new.len() > self.max_peers {
            return Err(TopologyError::TooManyPeers {
                limit: self.max_peers,
                known: self.by_name.len(),
                new: new.len(),
            });
        }
        Ok(())
    }

    fn insert_peer(&mut self, peer: Peer, pending: &mut Pending) {
        let (name, short) = (peer.name, peer.short_id());
        self.by_name.insert(name, peer);
        self.known.insert(name);
        if let Some(id) = short {
            self.index_short_id(name, id, pending);
        }
    }

    fn index_short_id(&mut self, name: PeerName, id: u16, pending: &mut Pending) {
        let effect = self.short_ids.add(name, id);
        pending.invalidated |= effect.invalidated;
        if effect.displaced == Some(self.local) {
            pending.reassign_local = true;
        }
    }

    /// Move `name` in the short-ID index from its current claim to `new`.
    fn reindex_short_id(&mut self, name: PeerName, new: (u16, bool), pending: &mut Pending) {
        let Some(peer) = self.by_name.get_mut(&name) else {
            return;
        };
        if let Some(old) = peer.short_id() {
            pending.invalidated |= self.short_ids.remove(name, old);
        }
        (peer.short_id, peer.has_short_id) = new;
        if new.1 {
            self.index_short_id(name, new.0, pending);
        }
    }

    /// Act on gathered notifications: re-draw our short ID if we lost it.
    fn finish<R: RandomSource + ?Sized>(
        &mut self,
        pending: Pending,
        rng: &mut R,
    ) -> ShortIdOutcome {
        let mut out = ShortIdOutcome {
            local_changed: pending.local_changed,
            short_ids_invalidated: pending.invalidated,
        };
        if pending.reassign_local {
            if let Some(id) = self.short_ids.choose(rng) {
                let changed = self.set_local_short_id(id);
                out.local_changed = true;
                out.short_ids_invalidated |= changed.short_ids_invalidated;
            }
            // Otherwise all 4096 are owned: retried after a GC frees one.
        }
        out
    }

    // ---------------------------------------------------------------- short IDs

    /// Choose a free short ID with `rng` (10 uniform probes, then a uniform pick among the free
    /// IDs); `None` if all 4096 are owned.
    pub fn choose_short_id<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Option<u16> {
        self.short_ids.choose(rng)
    }

    /// Whether the local peer is the principal of its own short ID.
    pub fn local_owns_short_id(&self) -> bool {
        let me = self.local();
        me.short_id()
            .is_some_and(|id| self.short_ids.principal(id) == Some(self.local))
    }

    /// Give the local peer a new short ID (masked to 12 bits) and bump its Version.
    pub fn set_local_short_id(&mut self, id: u16) -> ShortIdOutcome {
        let id = id & (SHORT_ID_SPACE - 1);
        let mut pending = Pending::default();
        let local = self.local;
        self.reindex_short_id(local, (id, true), &mut pending);
        let me = self.local_mut();
        me.version += 1;
        ShortIdOutcome {
            local_changed: true,
            short_ids_invalidated: pending.invalidated,
        }
        // A lower-named peer cannot displace us through our own re-claim; if the new ID is
        // contested by a lower name we are merely secondary and the next GC retries.
    }

    // ---------------------------------------------------------------- local changes

    /// Register the remote of a handshake (Weave's `fetchWithDefault`): if the name is known,
    /// raise its local reference count (the stored record is kept; `is_restarted` tells whether
    /// its UID differs); otherwise insert it with Version 0 and reference count 1.
    pub fn fetch_with_default<R: RandomSource + ?Sized>(
        &mut self,
        name: PeerName,
        nick_name: &str,
        uid: u64,
        short_id: Option<u16>,
        rng: &mut R,
    ) -> FetchOutcome {
        if let Some(peer) = self.by_name.get_mut(&name) {
            peer.local_ref_count += 1;
            return FetchOutcome {
                is_restarted: peer.uid != uid,
                ..FetchOutcome::default()
            };
        }
        let mut pending = Pending::default();
        let mut peer = Peer::placeholder(name);
        peer.nick_name = nick_name.to_owned();
        peer.uid = uid;
        peer.short_id = short_id.unwrap_or(0);
        peer.has_short_id = short_id.is_some();
        peer.local_ref_count = 1;
        self.insert_peer(peer, &mut pending);
        let fx = self.finish(pending, rng);
        FetchOutcome {
            is_new: true,
            is_restarted: false,
            local_changed: fx.local_changed,
            short_ids_invalidated: fx.short_ids_invalidated,
        }
    }

    /// Release one local reference (connection torn down, handshake abandoned).
    pub fn dereference(&mut self, name: PeerName) -> Result<(), TopologyError> {
        let peer = self
            .by_name
            .get_mut(&name)
            .ok_or(TopologyError::UnknownPeer(name))?;
        peer.local_ref_count = peer
            .local_ref_count
            .checked_sub(1)
            .ok_or(TopologyError::NotReferenced(name))?;
        Ok(())
    }

    /// Add (or replace) a local connection to a peer already in the table; Version++.
    /// Returns the new local Version.
    pub fn add_connection(
        &mut self,
        remote: PeerName,
        remote_tcp_addr: impl Into<String>,
        outbound: bool,
        established: bool,
    ) -> Result<u64, TopologyError> {
        if remote == self.local {
            return Err(TopologyError::SelfConnection(remote));
        }
        if !self.by_name.contains_key(&remote) {
            return Err(TopologyError::UnknownPeer(remote));
        }
        let me = self.local_mut();
        me.connections.insert(
            remote,
            Connection {
                remote_tcp_addr: remote_tcp_addr.into(),
                outbound,
                established,
            },
        );
        me.version += 1;
        Ok(me.version)
    }

    /// Mark a local connection established; Version++ on the transition (a repeat is a no-op).
    /// Returns the local Version.
    pub fn connection_established(&mut self, remote: PeerName) -> Result<u64, TopologyError> {
        let me = self.local_mut();
        let conn = me
            .connections
            .get_mut(&remote)
            .ok_or(TopologyError::NoSuchConnection(remote))?;
        if !conn.established {
            conn.established = true;
            me.version += 1;
        }
        Ok(me.version)
    }

    /// Delete a local connection (Version++), then garbage-collect synchronously so the update
    /// that follows does not advertise peers that just became unreachable (§3.7).
    pub fn delete_connection<R: RandomSource + ?Sized>(
        &mut self,
        remote: PeerName,
        rng: &mut R,
    ) -> Result<GcOutcome, TopologyError> {
        let me = self.local_mut();
        if me.connections.remove(&remote).is_none() {
            return Err(TopologyError::NoSuchConnection(remote));
        }
        me.version += 1;
        Ok(self.garbage_collect(rng))
    }

    // ---------------------------------------------------------------- garbage collection

    /// Names reachable from the local peer over all gossiped links, established or not
    /// (Weave's `routes(nil, false)`: a link X→Y counts if X lists Y).
    pub fn reachable_from_local(&self) -> BTreeSet<PeerName> {
        let mut reached = BTreeSet::from([self.local]);
        let mut stack = vec![self.local];
        while let Some(cur) = stack.pop() {
            let Some(peer) = self.by_name.get(&cur) else {
                continue;
            };
            for remote in peer.connections.keys() {
                if self.known.contains(remote) && reached.insert(*remote) {
                    stack.push(*remote);
                }
            }
        }
        reached
    }

    /// Remove every peer that is unreachable over all gossiped links and has no local
    /// references (§3.7). If anything was removed and we do not own our short ID, try to
    /// re-draw it (a removed peer may have freed one).
    pub fn garbage_collect<R: RandomSource + ?Sized>(&mut self, rng: &mut R) -> GcOutcome {
        let reached = self.reachable_from_local();
        let doomed: Vec<PeerName> = self
            .by_name
            .values()
            .filter(|p| p.local_ref_count == 0 && !reached.contains(&p.name))
            .map(|p| p.name)
            .collect();
        let mut pending = Pending::default();
        for name in &doomed {
            self.known.remove(name);
            if let Some(peer) = self.by_name.remove(name) {
                if let Some(id) = peer.short_id() {
                    pending.invalidated |= self.short_ids.remove(*name, id);
                }
            }
        }
        if !doomed.is_empty() && !self.local_owns_short_id() {
            pending.reassign_local = true;
        }
        let fx = self.finish(pending, rng);
        GcOutcome {
            removed: doomed,
            local_changed: fx.local_changed,
            short_ids_invalidated: fx.short_ids_invalidated,
        }
    }

    #[cfg(test)]
    pub(crate) fn short_id_others(&self, id: u16) -> Vec<PeerName> {
        self.short_ids.others(id)
    }
}
