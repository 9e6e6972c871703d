//! Weave's ring (`ipam/ring`): a CRDT of address ranges owned by peers.
//!
//! Entries are sorted by token; the range of an entry runs from its token to the next token,
//! the last one wrapping to the first through the end and start of the universe. Every entry
//! has a version, bumped by its owner on every change (free count, donation) and by 100 on a
//! transfer (rmpeer, hand-over), so that merges pick the newest word on each token.
//!
//! Incoming rings are validated ([`Ring::check_wire`]) and merged into a copy
//! ([`Ring::merge`]); the copy replaces ours only when the whole merge succeeds, so hostile or
//! corrupt gossip is refused without changing anything.

use std::collections::{BTreeMap, BTreeSet};

use weft_mesh::PeerName;

use crate::addr::{fmt_addr, Range};
use crate::wire::{EntryWire, RingWire};

/// The most entries a ring may have (matches the codec's limit): a ring is refused above it.
pub const MAX_ENTRIES: usize = 65536;

/// One ring entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub token: u32,
    pub peer: PeerName,
    pub version: u32,
    pub free: u32,
}

impl Entry {
    fn update(&mut self, peer: PeerName, free: u64) {
        self.peer = peer;
        self.version = self.version.wrapping_add(1);
        self.free = clamp32(free);
    }
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Why a ring was refused or a merge failed. Texts as Weave's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("Ring not sorted")]
    NotSorted,
    #[error("Token appears twice in ring")]
    TokenRepeated,
    #[error("Token is out of range")]
    TokenOutOfRange,
    #[error("Entry {from}-{to} reporting too much free space: {free} > {size}")]
    TooMuchFree {
        from: String,
        to: String,
        free: u32,
        size: u64,
    },
    #[error("Ring has {0} entries, more than the {MAX_ENTRIES} allowed")]
    TooManyEntries(usize),
    #[error("Ring entry at {0} has no owner (peer name 0)")]
    NoOwner(String),
    #[error("Received ring was seeded differently from ours")]
    DifferentSeeds {
        received: Vec<PeerName>,
        ours: Vec<PeerName>,
    },
    #[error("Received range differs from ours")]
    DifferentRange { received: Range, ours: Range },
    #[error(
        "Inconsistent entries for {token}: owned by {mine} but incoming message says {theirs}"
    )]
    Inconsistent {
        token: String,
        mine: PeerName,
        theirs: PeerName,
    },
    #[error("Peer {peer} says it owns the IP range from {token}, which I think I own")]
    EntryInMyRange { peer: PeerName, token: String },
    #[error(
        "Received update for IP range I own at {token} v{mine_version}: incoming message says owner {theirs} v{theirs_version}"
    )]
    NewerVersion {
        token: String,
        mine_version: u32,
        theirs: PeerName,
        theirs_version: u32,
    },
    #[error("Merge of incoming data causes: {0}")]
    MergeCauses(Box<RingError>),
}

/// The ring of one peer (`me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    start: u64,
    end: u64,
    me: PeerName,
    entries: Vec<Entry>,
    seeds: Vec<PeerName>,
}

impl Ring {
    /// An empty ring over `universe` (non-empty range).
    pub fn new(universe: Range, me: PeerName) -> Self {
        Ring {
            start: universe.start,
            end: universe.end,
            me,
            entries: Vec::new(),
            seeds: Vec::new(),
        }
    }

    pub fn me(&self) -> PeerName {
        self.me
    }

    pub fn range(&self) -> Range {
        Range::new(self.start, self.end)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn seeds(&self) -> &[PeerName] {
        &self.seeds
    }

    pub fn contains(&self, a: u64) -> bool {
        self.start <= a && a < self.end
    }

    /// The wire form (`peer` = us).
    pub fn to_wire(&self) -> RingWire {
        RingWire {
            start: self.start as u32,
            end: self.end as u32,
            peer: self.me,
            entries: self
                .entries
                .iter()
                .map(|e| EntryWire {
                    token: e.token,
                    peer: e.peer,
                    version: e.version,
                    free: e.free,
                })
                .collect(),
            seeds: self.seeds.clone(),
        }
    }

    /// A ring restored from its wire form (persisted data), validated.
    pub fn from_wire(w: &RingWire, me: PeerName) -> Result<Ring, RingError> {
        let range = wire_range(w);
        let mut r = Ring::new(range, me);
        let entries = Self::check_wire(range, w)?;
        r.entries = entries;
        r.seeds = w.seeds.clone();
        Ok(r)
    }

    /// The token of entry `i` (wrapping), or the universe start on an empty list.
    fn token_at(&self, entries: &[Entry], i: usize) -> u64 {
        wrap(entries, i).map_or(self.start, |e| u64::from(e.token))
    }

    /// Distance from `a` to `b` going up the ring (Weave's `distance`): wraps through the end.
    fn distance(&self, a: u64, b: u64) -> u64 {
        if b > a {
            b - a
        } else {
            (self.end - a) + (b - self.start)
        }
    }

    /// Validate an incoming ring's entries against `range`: sorted, unique, within range, free
    /// no more than the size, a bounded count, owners named. Returns them as entries.
    pub fn check_wire(range: Range, w: &RingWire) -> Result<Vec<Entry>, RingError> {
        if w.entries.len() > MAX_ENTRIES {
            return Err(RingError::TooManyEntries(w.entries.len()));
        }
        let entries: Vec<Entry> = w
            .entries
            .iter()
            .map(|e| Entry {
                token: e.token,
                peer: e.peer,
                version: e.version,
                free: e.free,
            })
            .collect();
        let probe = Ring::new(range, PeerName::default());
        probe.check_entries(&entries)?;
        Ok(entries)
    }

    fn check_entries(&self, entries: &[Entry]) -> Result<(), RingError> {
        for w in entries.windows(2) {
            if let [a, b] = w {
                if a.token > b.token {
                    return Err(RingError::NotSorted);
                }
                if a.token == b.token {
                    return Err(RingError::TokenRepeated);
                }
            }
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if u64::from(first.token) < self.start || u64::from(last.token) >= self.end {
            return Err(RingError::TokenOutOfRange);
        }
        for (i, e) in entries.iter().enumerate() {
            if e.peer == PeerName::default() {
                return Err(RingError::NoOwner(fmt_addr(e.token)));
            }
            let next = self.token_at(entries, i + 1);
            let size = self.distance(u64::from(e.token), next);
            if u64::from(e.free) > size {
                return Err(RingError::TooMuchFree {
                    from: fmt_addr(e.token),
                    to: fmt_addr(next as u32),
                    free: e.free,
                    size,
                });
            }
        }
        Ok(())
    }

    /// Size of entry `i`'s range.
    pub fn entry_size(&self, i: usize) -> u64 {
        if self.entries.is_empty() {
            return 0;
        }
        let e = self.token_at(&self.entries, i);
        let next = self.token_at(&self.entries, i + 1);
        self.distance(e, next)
    }

    /// The ranges `[a, b)` of the ring split at the universe's origin (Weave's `makeRanges`).
    fn make_ranges(&self, a: u64, b: u64) -> Vec<Range> {
        if b > a {
            vec![Range::new(a, b)]
        } else if b == self.start {
            vec![Range::new(a, self.end)]
        } else {
            vec![Range::new(self.start, b), Range::new(a, self.end)]
        }
    }

    /// The ranges of entry `i`, split over the origin.
    pub fn entry_ranges(&self, i: usize) -> Vec<Range> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let e = self.token_at(&self.entries, i);
        let next = self.token_at(&self.entries, i + 1);
        self.make_ranges(e, next)
    }

    /// Ranges owned by `peer`, sorted, adjacent ones not coalesced.
    pub fn owned_ranges_of(&self, peer: PeerName) -> Vec<Range> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.peer == peer {
                out.extend(self.entry_ranges(i));
            }
        }
        out.sort();
        out
    }

    /// Ranges we own.
    pub fn owned_ranges(&self) -> Vec<Range> {
        self.owned_ranges_of(self.me)
    }

    /// Owner of the range containing `a`, `None` on an empty ring or outside the universe.
    pub fn owner(&self, a: u64) -> Option<PeerName> {
        if self.entries.is_empty() || !self.contains(a) {
            return None;
        }
        let i = self.entries.partition_point(|e| u64::from(e.token) <= a);
        let idx = if i == 0 {
            self.entries.len() - 1
        } else {
            i - 1
        };
        self.entries.get(idx).map(|e| e.peer)
    }

    /// Names owning at least one entry.
    pub fn peer_names(&self) -> BTreeSet<PeerName> {
        self.entries.iter().map(|e| e.peer).collect()
    }

    /// Addresses per owner.
    pub fn sizes_by_peer(&self) -> BTreeMap<PeerName, u64> {
        let mut m = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            *m.entry(e.peer).or_insert(0) += self.entry_size(i);
        }
        m
    }

    /// Weave's `ClaimForPeers` on an empty ring: sort and de-duplicate `peers`, then split the
    /// universe in CIDR-aligned halves (left half to the first `len/2` peers). Seeds = peers.
    pub fn claim_for_peers(&mut self, peers: &[PeerName]) {
        let mut peers: Vec<PeerName> = peers.to_vec();
        peers.sort();
        peers.dedup();
        if !self.entries.is_empty() || peers.is_empty() {
            return;
        }
        let mut out = Vec::new();
        subdivide(self.start, self.end, &peers, &mut out);
        self.entries = out;
        self.seeds = peers;
    }

    /// Weave's `GrantRangeToHost`: give `[start, end)`, which we own, to `peer`; inserts up to
    /// two tokens and bumps the versions of the entries it changes. Returns false (and changes
    /// nothing) if the preconditions do not hold.
    pub fn grant_range_to_host(&mut self, start: u64, end: u64, peer: PeerName) -> bool {
        let n = self.entries.len();
        if !(start < end && self.start <= start && end <= self.end) || n == 0 {
            return false;
        }
        let me = self.me;
        let pp = self
            .entries
            .partition_point(|e| u64::from(e.token) <= start);
        let preceding = (pp + n - 1) % n;
        let Some(prev) = self.entries.get(preceding).copied() else {
            return false;
        };
        // Every entry from the preceding one up to `end` must be ours.
        if prev.peer != me
            || self
                .entries
                .iter()
                .skip(preceding + 1)
                .take_while(|e| u64::from(e.token) < end)
                .any(|e| e.peer != me)
        {
            return false;
        }
        let next_tok = self.token_at(&self.entries, preceding + 1);
        let start_free = self.distance(start, next_tok).min(end - start);
        let mut pos;
        if u64::from(prev.token) == start {
            if let Some(e) = self.entries.get_mut(preceding) {
                e.update(peer, start_free);
            }
            pos = preceding + 1;
        } else {
            let prev_free = self.distance(u64::from(prev.token), start);
            let ins = self.entries.partition_point(|e| u64::from(e.token) < start);
            self.entries.insert(
                ins,
                Entry {
                    token: start as u32,
                    peer,
                    version: 0,
                    free: clamp32(start_free),
                },
            );
            let prev_idx = if ins <= preceding {
                preceding + 1
            } else {
                preceding
            };
            if let Some(e) = self.entries.get_mut(prev_idx) {
                e.update(me, prev_free);
            }
            pos = ins + 1;
        }
        // Intervening tokens go to the other peer.
        while let Some(tok) = self.entries.get(pos).map(|e| u64::from(e.token)) {
            if tok >= end {
                break;
            }
            let d = self.distance(tok, end);
            if let Some(e) = self.entries.get_mut(pos) {
                let free = u64::from(e.free).min(d);
                e.update(peer, free);
            }
            pos += 1;
        }
        let end_tok = if end == self.end { self.start } else { end };
        if self
            .entries
            .binary_search_by_key(&end_tok, |e| u64::from(e.token))
            .is_ok()
        {
            return true;
        }
        let next = self.token_at(&self.entries, pos);
        let end_free = self.distance(end_tok, next);
        let ins = self
            .entries
            .partition_point(|e| u64::from(e.token) < end_tok);
        self.entries.insert(
            ins,
            Entry {
                token: end_tok as u32,
                peer: me,
                version: 0,
                free: clamp32(end_free),
            },
        );
        true
    }

    /// Weave's `Transfer`: every entry of `from` now belongs to `to`, version += 100. Returns
    /// the ranges moved.
    pub fn transfer(&mut self, from: PeerName, to: PeerName) -> Vec<Range> {
        let mut moved = Vec::new();
        for i in 0..self.entries.len() {
            let Some(e) = self.entries.get_mut(i) else {
                break;
            };
            if e.peer != from {
                continue;
            }
            e.peer = to;
            e.version = e.version.wrapping_add(100);
            tracing::debug!(
                "[ring {}]: Transfer token={} from={} to={} version={}",
                self.me,
                fmt_addr(e.token),
                from,
                to,
                e.version
            );
            moved.extend(self.entry_ranges(i));
        }
        moved.sort();
        moved
    }

    /// `rmpeer`: each entry of `dead` goes to the owner of the nearest entry before it (in
    /// token order, wrapping) that `dead` does not own, version + 100; `fallback` when `dead`
    /// owns every entry. The heir depends on the ring only, not on who runs it, so two peers
    /// that take the same dead peer over at the same time make identical changes (Weave gives
    /// everything to the caller, and two callers then hand out the same addresses). Returns
    /// the moved ranges.
    pub fn transfer_to_predecessors(&mut self, dead: PeerName, fallback: PeerName) -> Vec<Range> {
        let owners: Vec<PeerName> = self.entries.iter().map(|e| e.peer).collect();
        let n = owners.len();
        let mut moved = Vec::new();
        for i in 0..n {
            if owners.get(i) != Some(&dead) {
                continue;
            }
            let heir = (1..n)
                .map(|back| owners.get((i + n - back) % n).copied())
                .find(|o| o.is_some_and(|o| o != dead))
                .flatten()
                .unwrap_or(fallback);
            if let Some(e) = self.entries.get_mut(i) {
                e.peer = heir;
                e.version = e.version.wrapping_add(100);
                tracing::debug!(
                    "[ring {}]: Transfer token={} from={} to={} version={}",
                    self.me,
                    fmt_addr(e.token),
                    dead,
                    heir,
                    e.version
                );
            }
            moved.extend(self.entry_ranges(i));
        }
        moved.sort();
        moved
    }

    /// Weave's `ReportFree`: write the free count of each of our entries (computed by `free_in`
    /// over the entry's ranges), bumping the version where it changed. True if anything changed.
    pub fn report_free(&mut self, free_in: impl Fn(&[Range]) -> u64) -> bool {
        let mut updated = false;
        for i in 0..self.entries.len() {
            if self.entries.get(i).map(|e| e.peer) != Some(self.me) {
                continue;
            }
            let free = clamp32(free_in(&self.entry_ranges(i)));
            if let Some(e) = self.entries.get_mut(i) {
                if e.free != free {
                    e.free = free;
                    e.version = e.version.wrapping_add(1);
                    updated = true;
                }
            }
        }
        updated
    }

    /// Weave's `ChoosePeersToAskForSpace`: peers other than us with free space in entries that
    /// overlap `[start, end)`, ordered by `free × random` descending. `rand01` yields [0, 1).
    pub fn choose_peers_to_ask(
        &self,
        want: Range,
        mut rand01: impl FnMut() -> f64,
    ) -> Vec<PeerName> {
        let mut space: BTreeMap<PeerName, u64> = BTreeMap::new();
        let n = self.entries.len();
        for (i, e) in self.entries.iter().enumerate() {
            if e.free == 0 || e.peer == self.me {
                continue;
            }
            let a = u64::from(e.token);
            let b = self.token_at(&self.entries, i + 1);
            let overlaps = if b > a && (i + 1 < n || b == self.end) {
                Range::new(a, b).overlaps(&want)
            } else {
                Range::new(a, self.end).overlaps(&want) || Range::new(self.start, b).overlaps(&want)
            };
            if overlaps {
                *space.entry(e.peer).or_insert(0) += u64::from(e.free);
            }
        }
        let mut weighted: Vec<(f64, PeerName)> = space
            .into_iter()
            .map(|(p, s)| (s as f64 * rand01(), p))
            .collect();
        weighted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        weighted.into_iter().map(|(_, p)| p).collect()
    }

    /// Weave's `PickPeerForTransfer`: the first entry owner (in token order) other than us that
    /// `valid` accepts.
    pub fn pick_peer_for_transfer(&self, valid: impl Fn(PeerName) -> bool) -> Option<PeerName> {
        self.entries
            .iter()
            .map(|e| e.peer)
            .find(|&p| p != self.me && valid(p))
    }

    /// Weave's `Ring.Merge` (every rule of weave-services.md §3.5) into a copy; ours is
    /// replaced only on success. `has_allocations` says whether we have addresses allocated in
    /// any of the given ranges. Returns whether our ring changed.
    pub fn merge(
        &mut self,
        gossip: &RingWire,
        has_allocations: impl Fn(&[Range]) -> bool,
    ) -> Result<bool, RingError> {
        let received = wire_range(gossip);
        // Weave validates the entries against the sender's own Start/End first.
        let theirs = Self::check_wire(received, gossip)?;
        if !gossip.seeds.is_empty() && !self.seeds.is_empty() && gossip.seeds != self.seeds {
            return Err(RingError::DifferentSeeds {
                received: gossip.seeds.clone(),
                ours: self.seeds.clone(),
            });
        }
        if received != self.range() {
            return Err(RingError::DifferentRange {
                received,
                ours: self.range(),
            });
        }
        let (mut result, updated) = self.merge_entries(&theirs, &has_allocations)?;
        // Reset free space of our entries that exceeds their (possibly split) range.
        let sizes: Vec<u64> = (0..result.len())
            .map(|i| {
                let t = self.token_at(&result, i);
                self.distance(t, self.token_at(&result, i + 1))
            })
            .collect();
        for (e, size) in result.iter_mut().zip(sizes) {
            if e.peer == self.me && u64::from(e.free) > size {
                e.free = clamp32(size);
            }
        }
        self.check_entries(&result)
            .map_err(|e| RingError::MergeCauses(Box::new(e)))?;
        if self.seeds.is_empty() {
            self.seeds = gossip.seeds.clone();
        }
        self.entries = result;
        Ok(updated)
    }

    fn merge_entries(
        &self,
        other: &[Entry],
        has_allocations: &impl Fn(&[Range]) -> bool,
    ) -> Result<(Vec<Entry>, bool), RingError> {
        let es = &self.entries;
        let me = self.me;
        let mut result: Vec<Entry> = Vec::with_capacity(es.len() + other.len());
        let mut updated = false;
        // Stricter than Weave: a token of theirs before our first token splits the range our
        // last entry wraps into, so it starts as "previous owner".
        let mut previous_owner: Option<PeerName> = match (es.first(), es.last()) {
            (Some(f), Some(l)) if u64::from(f.token) != self.start => Some(l.peer),
            _ => None,
        };
        let next_mine = |i: usize| -> u64 { self.token_at(es, i + 1) };
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&mine), Some(&theirs)) = (es.get(i), other.get(j)) {
            if mine.token < theirs.token {
                result.push(mine);
                previous_owner = Some(mine.peer);
                i += 1;
            } else if mine.token > theirs.token {
                if previous_owner == Some(me)
                    && theirs.peer != me
                    && has_allocations(
                        &self.make_ranges(u64::from(theirs.token), u64::from(mine.token)),
                    )
                {
                    return Err(RingError::EntryInMyRange {
                        peer: theirs.peer,
                        token: fmt_addr(theirs.token),
                    });
                }
                result.push(theirs);
                updated = true;
                previous_owner = None;
                j += 1;
            } else {
                if mine.version >= theirs.version {
                    // Weave's `Equal` compares token, owner and version, not the free count.
                    if mine.version == theirs.version && mine.peer != theirs.peer {
                        if mine.peer == me
                            && has_allocations(
                                &self.make_ranges(u64::from(theirs.token), next_mine(i)),
                            )
                        {
                            return Err(RingError::Inconsistent {
                                token: fmt_addr(mine.token),
                                mine: mine.peer,
                                theirs: theirs.peer,
                            });
                        }
                        if mine.free >= theirs.free {
                            result.push(mine);
                            previous_owner = Some(mine.peer);
                        } else {
                            result.push(theirs);
                            updated = true;
                            previous_owner = None;
                        }
                    } else {
                        result.push(mine);
                        previous_owner = Some(mine.peer);
                    }
                } else if mine.peer == me {
                    if theirs.peer != me
                        && !has_allocations(&self.make_ranges(u64::from(mine.token), next_mine(i)))
                    {
                        tracing::info!(
                            "ring: repair inconsistent data by accepting token {} from {} - no allocations up to {}",
                            fmt_addr(theirs.token),
                            theirs.peer,
                            fmt_addr(next_mine(i) as u32)
                        );
                        result.push(theirs);
                        updated = true;
                        previous_owner = None;
                    } else if theirs.peer == me {
                        let mut m = mine;
                        m.version = theirs.version.wrapping_add(1);
                        result.push(m);
                        updated = true;
                        // Stricter than Weave (which leaves it unchanged): the range is ours.
                        previous_owner = Some(me);
                    } else {
                        return Err(RingError::NewerVersion {
                            token: fmt_addr(mine.token),
                            mine_version: mine.version,
                            theirs: theirs.peer,
                            theirs_version: theirs.version,
                        });
                    }
                } else {
                    result.push(theirs);
                    updated = true;
                    previous_owner = None;
                }
                i += 1;
                j += 1;
            }
        }
        result.extend_from_slice(es.get(i..).unwrap_or(&[]));
        for theirs in other.get(j..).unwrap_or(&[]) {
            if previous_owner == Some(me) && theirs.peer != me {
                return Err(RingError::EntryInMyRange {
                    peer: theirs.peer,
                    token: fmt_addr(theirs.token),
                });
            }
            result.push(*theirs);
            updated = true;
            previous_owner = None;
        }
        Ok((result, updated))
    }
}

/// Entry `i` of a list, wrapping around; `None` for an empty list.
fn wrap(entries: &[Entry], i: usize) -> Option<Entry> {
    match entries.len() {
        0 => None,
        n => entries.get(i % n).copied(),
    }
}

fn wire_range(w: &RingWire) -> Range {
    let end = if w.end == 0 {
        1u64 << 32
    } else {
        u64::from(w.end)
    };
    Range::new(u64::from(w.start), end)
}

fn subdivide(from: u64, to: u64, peers: &[PeerName], out: &mut Vec<Entry>) {
    let share = to.saturating_sub(from);
    if share == 0 || peers.is_empty() {
        return;
    }
    if share == 1 || peers.len() == 1 {
        let Some(&peer) = peers.first() else { return };
        out.push(Entry {
            token: from as u32,
            peer,
            version: 0,
            free: clamp32(share),
        });
        return;
    }
    let mid = from + share / 2;
    let (left, right) = peers.split_at(peers.len() / 2);
    subdivide(from, mid, left, out);
    subdivide(mid + share % 2, to, right, out);
}

#[cfg(test)]
mod tests;
