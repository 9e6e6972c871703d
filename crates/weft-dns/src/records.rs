//! The weaveDNS record store, as Weave 2.8.1's `nameserver.Entries` (reference
//! weave-services.md §4.1, §4.3).
//!
//! * Key: (hostname as registered, origin, container id, address). Stored in Weave's order:
//!   lowercased hostname, origin, container id, address (then the hostname as registered, so
//!   that two spellings of one name are two entries, as Weave's `equal` compares the hostname
//!   case-sensitively).
//! * [`Records::add`] inserts with version 0, or un-tombstones an identical entry (version+1).
//! * [`Records::tombstone`] marks our own live entries deleted (`Tombstone = now`, version+1);
//!   entries of other origins are never touched.
//! * [`Records::receive`] merges received gossip: clock skew over [`GOSSIP_WINDOW`] rejects the
//!   message, unknown origins are dropped, entries claiming our origin are corrected, then for
//!   equal keys the higher version wins and at the same version the larger tombstone wins.
//! * [`Records::remove_origin`] (peer GC) and [`Records::purge_tombstones`] (after
//!   [`TOMBSTONE_TTL`]).
//! * [`merge_gossip`] combines two pending messages (Weave's `GossipData.Merge`).
//! * Beyond Weave: entries of one key in one message are merged in turn (Weave's sort check
//!   would panic on them), and names differing only in case order by their spelling last.
//!
//! Memory is bounded: at most `max_entries` entries; a change that would go beyond refuses
//! with [`RecordsError::Full`] and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use weft_mesh::PeerName;

use crate::codec::{MAX_CONTAINER_ID_LEN, MAX_HOSTNAME_LEN};
use crate::wire::{Entry, GossipData};

/// Largest accepted difference between a message's timestamp and our clock, in seconds
/// (Weave's `gossipWindow`).
pub const GOSSIP_WINDOW: i64 = 900;
/// Tombstones older than this (seconds) are purged (Weave's `tombstoneTimeout`).
pub const TOMBSTONE_TTL: i64 = 30 * 60;
/// Default cap on the number of stored entries.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Why the store refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The sender's clock is too far from ours: the whole message is rejected.
    #[error("host clock skew of {skew}s exceeds {GOSSIP_WINDOW}s limit: check the clocks of the peers (NTP)")]
    ClockSkew { skew: i64 },
    /// The change would make the store larger than its cap.
    #[error("DNS record store is full: {have} entries held, {adding} more would exceed the limit of {limit}; remove names or raise the limit")]
    Full {
        have: usize,
        adding: usize,
        limit: usize,
    },
    /// A hostname longer than a DNS name can be.
    #[error("hostname is {0} bytes long, more than the {MAX_HOSTNAME_LEN} a DNS name may have")]
    HostnameTooLong(usize),
    /// A container id longer than we keep.
    #[error("container id is {0} bytes long, more than the {MAX_CONTAINER_ID_LEN} accepted")]
    ContainerIdTooLong(usize),
}

/// Storage order key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    lhostname: String,
    origin: PeerName,
    container_id: String,
    addr: Ipv4Addr,
    hostname: String,
}

impl Key {
    fn of(e: &Entry) -> Key {
        Key {
            lhostname: e.hostname.to_lowercase(),
            origin: e.origin,
            container_id: e.container_id.clone(),
            addr: e.addr,
            hostname: e.hostname.clone(),
        }
    }
}

/// The weaveDNS table of one peer.
#[derive(Debug, Clone)]
pub struct Records {
    ours: PeerName,
    max_entries: usize,
    entries: BTreeMap<Key, Entry>,
}

/// Whether `incoming` replaces `held` (same key): higher version, or same version and larger
/// tombstone.
fn wins(incoming: &Entry, held: &Entry) -> bool {
    incoming.version > held.version
        || (incoming.version == held.version && incoming.tombstone > held.tombstone)
}

/// The outcome of [`Records::receive`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Entries claiming our origin that we corrected (re-asserted with a higher version, or
    /// tombstoned because we do not hold them): broadcast them at once. They are also in
    /// `new`.
    pub corrections: Vec<Entry>,
    /// Entries new or changed here, in storage order: the delta a periodic-gossip receiver
    /// passes on (Weave's `OnGossip` result, sent with our timestamp).
    pub new: Vec<Entry>,
    /// The received message after filtering and corrections, in storage order: what a
    /// broadcast receiver relays (Weave's `OnGossipBroadcast` result).
    pub received: GossipData,
}

impl Records {
    /// An empty table of peer `ours`, holding at most [`DEFAULT_MAX_ENTRIES`].
    pub fn new(ours: PeerName) -> Records {
        Records::with_max_entries(ours, DEFAULT_MAX_ENTRIES)
    }

    /// An empty table holding at most `max_entries`.
    pub fn with_max_entries(ours: PeerName, max_entries: usize) -> Records {
        Records {
            ours,
            max_entries,
            entries: BTreeMap::new(),
        }
    }

    /// This peer's name (the origin of the entries it registers).
    pub fn ours(&self) -> PeerName {
        self.ours
    }

    /// Number of entries, tombstones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of live entries (what `/status` shows as `Entries`).
    pub fn live_len(&self) -> usize {
        self.entries.values().filter(|e| e.is_live()).count()
    }

    /// All entries, tombstones included, in storage order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    fn room_for(&self, adding: usize) -> Result<(), RecordsError> {
        if self.entries.len().saturating_add(adding) > self.max_entries {
            return Err(RecordsError::Full {
                have: self.entries.len(),
                adding,
                limit: self.max_entries,
            });
        }
        Ok(())
    }

    /// Registers `hostname` → `addr` for `container_id`, with our origin. A new entry gets
    /// version 0; an identical tombstoned entry is revived with version+1; an identical live
    /// entry is left as it is. Returns the entry to broadcast.
    pub fn add(
        &mut self,
        hostname: &str,
        container_id: &str,
        addr: Ipv4Addr,
    ) -> Result<Entry, RecordsError> {
        if hostname.len() > MAX_HOSTNAME_LEN {
            return Err(RecordsError::HostnameTooLong(hostname.len()));
        }
        if container_id.len() > MAX_CONTAINER_ID_LEN {
            return Err(RecordsError::ContainerIdTooLong(container_id.len()));
        }
        let entry = Entry {
            container_id: container_id.to_owned(),
            origin: self.ours,
            addr,
            hostname: hostname.to_owned(),
            version: 0,
            tombstone: 0,
        };
        let key = Key::of(&entry);
        if let Some(held) = self.entries.get_mut(&key) {
            if !held.is_live() {
                held.tombstone = 0;
                held.version = held.version.saturating_add(1);
            }
            return Ok(held.clone());
        }
        self.room_for(1)?;
        tracing::debug!(%hostname, %addr, container_id, "adding DNS entry");
        self.entries.insert(key, entry.clone());
        Ok(entry)
    }

    /// Tombstones our live entries at `now` that match every given filter: container id,
    /// address, hostname (exactly as registered); `None` matches anything (Weave's `"*"`).
    /// Entries of other origins are not touched (Weave logs the request and changes nothing).
    /// Returns the changed entries in storage order, to broadcast.
    pub fn tombstone(
        &mut self,
        now: i64,
        container_id: Option<&str>,
        addr: Option<Ipv4Addr>,
        hostname: Option<&str>,
    ) -> Vec<Entry> {
        let ours = self.ours;
        let mut changed = Vec::new();
        for e in self.entries.values_mut() {
            if e.origin != ours
                || !e.is_live()
                || container_id.is_some_and(|c| c != e.container_id)
                || addr.is_some_and(|a| a != e.addr)
                || hostname.is_some_and(|h| h != e.hostname)
            {
                continue;
            }
            e.tombstone = now;
            e.version = e.version.saturating_add(1);
            tracing::debug!(hostname = %e.hostname, addr = %e.addr, "tombstoning DNS entry");
            changed.push(e.clone());
        }
        changed
    }

    /// A container of ours died: tombstones all our live entries for it (Weave's
    /// `ContainerDied`). Returns the changed entries, to broadcast.
    pub fn container_died(&mut self, now: i64, container_id: &str) -> Vec<Entry> {
        self.tombstone(now, Some(container_id), None, None)
    }

    /// Merges received gossip at our time `now`, as Weave's `receiveGossip`; `is_known` says
    /// whether an origin is a peer of the mesh (our own name always is). On an error nothing
    /// changed. See [`Received`] for what to do with the result.
    pub fn receive(
        &mut self,
        gossip: GossipData,
        now: i64,
        is_known: impl Fn(PeerName) -> bool,
    ) -> Result<Received, RecordsError> {
        let skew = gossip.timestamp.saturating_sub(now);
        if !(-GOSSIP_WINDOW..=GOSSIP_WINDOW).contains(&skew) {
            return Err(RecordsError::ClockSkew { skew });
        }
        let ours = self.ours;
        let mut incoming: Vec<(Key, Entry)> = gossip
            .entries
            .into_iter()
            .filter(|e| e.origin == ours || is_known(e.origin))
            .map(|e| (Key::of(&e), e))
            .collect();
        // Weave sorts what it decoded into storage order; the delta keeps that order.
        incoming.sort_by(|a, b| a.0.cmp(&b.0));

        let new_keys: BTreeSet<&Key> = incoming
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !self.entries.contains_key(*k))
            .collect();
        self.room_for(new_keys.len())?;

        // Entries claiming to be ours: what we hold is the truth.
        let mut corrections = Vec::new();
        for (key, e) in incoming.iter_mut().filter(|(_, e)| e.origin == ours) {
            match self.entries.get(key) {
                Some(held) => {
                    if held.version < e.version
                        || (held.version == e.version && held.tombstone != e.tombstone)
                    {
                        let version = e.version.saturating_add(1);
                        *e = held.clone();
                        e.version = version;
                        tracing::debug!(hostname = %e.hostname, addr = %e.addr, version, "re-asserting our DNS entry");
                        corrections.push(e.clone());
                    }
                }
                None => {
                    if e.is_live() {
                        // We do not hold it (the container went away while we were apart).
                        e.tombstone = now;
                        e.version = e.version.saturating_add(1);
                        tracing::debug!(hostname = %e.hostname, addr = %e.addr, "tombstoning a stale DNS entry claiming our origin");
                        corrections.push(e.clone());
                    }
                }
            }
        }

        let mut new = Vec::new();
        for (key, e) in &incoming {
            match self.entries.get_mut(key) {
                Some(held) => {
                    if wins(e, held) {
                        *held = e.clone();
                        new.push(e.clone());
                    }
                }
                None => {
                    self.entries.insert(key.clone(), e.clone());
                    new.push(e.clone());
                }
            }
        }
        Ok(Received {
            corrections,
            new,
            received: GossipData {
                timestamp: gossip.timestamp,
                entries: incoming.into_iter().map(|(_, e)| e).collect(),
            },
        })
    }

    /// Peer GC: removes every entry whose origin is `peer` (no tombstones). Returns how many.
    pub fn remove_origin(&mut self, peer: PeerName) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.origin != peer);
        before - self.entries.len()
    }

    /// Removes tombstones older than [`TOMBSTONE_TTL`] at `now`. Returns how many.
    pub fn purge_tombstones(&mut self, now: i64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.is_live() || now.saturating_sub(e.tombstone) <= TOMBSTONE_TTL);
        before - self.entries.len()
    }

    /// The live addresses of `name` (case-insensitive), in storage order.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        let lname = name.to_lowercase();
        let start = Key {
            lhostname: lname.clone(),
            origin: PeerName::default(),
            container_id: String::new(),
            addr: Ipv4Addr::UNSPECIFIED,
            hostname: String::new(),
        };
        self.entries
            .range(start..)
            .take_while(|(k, _)| k.lhostname == lname)
            .filter(|(_, e)| e.is_live())
            .map(|(_, e)| e.addr)
            .collect()
    }

    /// The hostname (as registered) of the first live entry with `addr`, in storage order.
    pub fn reverse(&self, addr: Ipv4Addr) -> Option<&str> {
        self.entries
            .values()
            .find(|e| e.is_live() && e.addr == addr)
            .map(|e| e.hostname.as_str())
    }

    /// The full table as periodic gossip at `now`: sorted by hostname case-sensitively (then
    /// origin, container id, address), as Weave sends it.
    pub fn gossip(&self, now: i64) -> GossipData {
        let mut entries: Vec<Entry> = self.entries.values().cloned().collect();
        entries.sort_by(|a, b| {
            (&a.hostname, a.origin, &a.container_id, a.addr).cmp(&(
                &b.hostname,
                b.origin,
                &b.container_id,
                b.addr,
            ))
        });
        GossipData {
            timestamp: now,
            entries,
        }
    }
}

/// Combines two pending gossip messages into one, as Weave's `GossipData.Merge` does when
/// the mesh coalesces updates for a connection: entries by key with the merge rule (higher
/// version, then larger tombstone), in storage order, and the later timestamp.
pub fn merge_gossip(into: &mut GossipData, other: GossipData) {
    let mut table: BTreeMap<Key, Entry> = BTreeMap::new();
    for e in std::mem::take(&mut into.entries)
        .into_iter()
        .chain(other.entries)
    {
        let key = Key::of(&e);
        match table.get_mut(&key) {
            Some(held) => {
                if wins(&e, held) {
                    *held = e;
                }
            }
            None => {
                table.insert(key, e);
            }
        }
    }
    into.entries = table.into_values().collect();
    into.timestamp = into.timestamp.max(other.timestamp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_796_284_340;

    fn peer(n: u64) -> PeerName {
        PeerName::from_u64(n).unwrap()
    }

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 32, 0, d)
    }

    fn entry(host: &str, origin: u64, cid: &str, d: u8, version: i64, tombstone: i64) -> Entry {
        Entry {
            container_id: cid.into(),
            origin: peer(origin),
            addr: ip(d),
            hostname: host.into(),
            version,
            tombstone,
        }
    }

    fn gossip(entries: Vec<Entry>) -> GossipData {
        GossipData {
            timestamp: NOW,
            entries,
        }
    }

    fn all_known(_: PeerName) -> bool {
        true
    }

    #[test]
    fn add_inserts_version_0_and_is_idempotent() {
        let mut r = Records::new(peer(1));
        let e = r.add("web.weave.local.", "c1", ip(1)).unwrap();
        assert_eq!((e.version, e.tombstone, e.origin), (0, 0, peer(1)));
        let again = r.add("web.weave.local.", "c1", ip(1)).unwrap();
        assert_eq!(again.version, 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn add_revives_a_tombstone_with_version_plus_one() {
        let mut r = Records::new(peer(2));
        r.add("web.weave.local.", "c", ip(2)).unwrap();
        let t = r.tombstone(NOW, Some("c"), Some(ip(2)), None);
        assert_eq!((t[0].version, t[0].tombstone), (1, NOW));
        let e = r.add("web.weave.local.", "c", ip(2)).unwrap();
        assert_eq!((e.version, e.tombstone), (2, 0));
        assert_eq!(r.lookup("web.weave.local."), vec![ip(2)]);
    }

    #[test]
    fn add_refuses_oversized_fields() {
        let mut r = Records::new(peer(1));
        let long = "a".repeat(256);
        assert_eq!(
            r.add(&long, "c", ip(1)),
            Err(RecordsError::HostnameTooLong(256))
        );
        assert_eq!(
            r.add("x.", &long, ip(1)),
            Err(RecordsError::ContainerIdTooLong(256))
        );
        assert!(r.is_empty());
    }

    #[test]
    fn tombstone_only_touches_our_origin() {
        let mut r = Records::new(peer(1));
        r.receive(
            gossip(vec![entry("MixedCase.weave.local.", 2, "c4", 4, 0, 0)]),
            NOW,
            all_known,
        )
        .unwrap();
        assert!(r.tombstone(NOW, Some("c4"), Some(ip(4)), None).is_empty());
        assert_eq!(r.lookup("mixedcase.weave.local."), vec![ip(4)]);
    }

    #[test]
    fn tombstone_filters_by_address_and_exact_hostname() {
        let mut r = Records::new(peer(1));
        r.add("zeta.weave.local.", "c5", ip(5)).unwrap();
        r.add("alpha.weave.local.", "c5", ip(5)).unwrap();
        let t = r.tombstone(NOW, Some("c5"), Some(ip(5)), Some("zeta.weave.local."));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].hostname, "zeta.weave.local.");
        assert!(r.lookup("zeta.weave.local.").is_empty());
        assert_eq!(r.lookup("alpha.weave.local."), vec![ip(5)]);
        // Already tombstoned entries are not tombstoned again.
        assert!(r
            .tombstone(NOW + 5, Some("c5"), None, Some("zeta.weave.local."))
            .is_empty());
        // A whole container.
        let mut r = Records::new(peer(1));
        for d in 1..=20 {
            r.add("many.weave.local.", "cm", Ipv4Addr::new(10, 32, 1, d))
                .unwrap();
        }
        assert_eq!(r.container_died(NOW, "cm").len(), 20);
        assert_eq!(r.live_len(), 0);
        assert_eq!(r.len(), 20);
    }

    #[test]
    fn clock_skew_beyond_900s_rejects_the_whole_message() {
        let mut r = Records::new(peer(1));
        let mut g = gossip(vec![entry("web.", 2, "c", 1, 0, 0)]);
        g.timestamp = NOW + 901;
        assert_eq!(
            r.receive(g.clone(), NOW, all_known),
            Err(RecordsError::ClockSkew { skew: 901 })
        );
        g.timestamp = NOW - 901;
        assert_eq!(
            r.receive(g.clone(), NOW, all_known),
            Err(RecordsError::ClockSkew { skew: -901 })
        );
        assert!(r.is_empty());
        g.timestamp = NOW - 900;
        assert_eq!(r.receive(g, NOW, all_known).unwrap().new.len(), 1);
    }

    #[test]
    fn unknown_origins_are_dropped() {
        let mut r = Records::new(peer(1));
        let out = r
            .receive(
                gossip(vec![
                    entry("a.", 2, "c", 1, 0, 0),
                    entry("b.", 3, "c", 2, 0, 0),
                ]),
                NOW,
                |p| p == peer(2),
            )
            .unwrap();
        assert_eq!(out.new, vec![entry("a.", 2, "c", 1, 0, 0)]);
        // Not relayed either.
        assert_eq!(out.received.entries, out.new);
        assert_eq!(r.len(), 1);
        assert!(r.lookup("b.").is_empty());
    }

    #[test]
    fn higher_version_wins_then_larger_tombstone() {
        let mut r = Records::new(peer(1));
        r.receive(gossip(vec![entry("w.", 2, "c", 2, 1, 100)]), NOW, all_known)
            .unwrap();
        // Older version: ignored, nothing to propagate.
        let out = r
            .receive(gossip(vec![entry("w.", 2, "c", 2, 0, 0)]), NOW, all_known)
            .unwrap();
        assert!(out.new.is_empty() && out.corrections.is_empty());
        assert!(r.lookup("w.").is_empty());
        // Same version, smaller tombstone: ignored.
        assert!(r
            .receive(gossip(vec![entry("w.", 2, "c", 2, 1, 50)]), NOW, all_known)
            .unwrap()
            .new
            .is_empty());
        // Same version, larger tombstone: wins.
        let out = r
            .receive(gossip(vec![entry("w.", 2, "c", 2, 1, 200)]), NOW, all_known)
            .unwrap();
        assert_eq!(out.new, vec![entry("w.", 2, "c", 2, 1, 200)]);
        // Higher version: wins (revived).
        let out = r
            .receive(gossip(vec![entry("w.", 2, "c", 2, 2, 0)]), NOW, all_known)
            .unwrap();
        assert_eq!(out.new.len(), 1);
        assert_eq!(r.lookup("W."), vec![ip(2)]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn entries_claiming_our_origin_are_corrected() {
        let mut r = Records::new(peer(1));
        r.add("web.", "c", ip(1)).unwrap();
        // A peer thinks our entry is deleted at the same version: we re-assert it, live.
        let out = r
            .receive(
                gossip(vec![entry("web.", 1, "c", 1, 0, 77)]),
                NOW,
                all_known,
            )
            .unwrap();
        let fixed = vec![entry("web.", 1, "c", 1, 1, 0)];
        assert_eq!(out.corrections, fixed);
        assert_eq!(out.new, fixed);
        assert_eq!(
            out.received.entries, fixed,
            "the relayed message carries ours"
        );
        assert_eq!(r.lookup("web."), vec![ip(1)]);
        assert_eq!(r.entries().next(), Some(&fixed[0]));
        // A newer version from elsewhere: ours goes above it.
        let out = r
            .receive(gossip(vec![entry("web.", 1, "c", 1, 5, 9)]), NOW, all_known)
            .unwrap();
        assert_eq!(out.corrections, vec![entry("web.", 1, "c", 1, 6, 0)]);
        assert_eq!(out.new, out.corrections);
        // Our own current state echoed back: nothing to do.
        let out = r
            .receive(gossip(vec![entry("web.", 1, "c", 1, 6, 0)]), NOW, all_known)
            .unwrap();
        assert!(out.new.is_empty() && out.corrections.is_empty());
        // An entry of ours we do not hold (a container gone while apart): tombstoned now.
        let out = r
            .receive(
                gossip(vec![entry("old.", 1, "gone", 3, 4, 0)]),
                NOW,
                all_known,
            )
            .unwrap();
        assert_eq!(out.corrections, vec![entry("old.", 1, "gone", 3, 5, NOW)]);
        assert_eq!(out.new, out.corrections);
        assert!(r.lookup("old.").is_empty());
        // One we do not hold that is already a tombstone: kept as it is, no correction.
        let out = r
            .receive(
                gossip(vec![entry("older.", 1, "gone", 4, 2, 5)]),
                NOW,
                all_known,
            )
            .unwrap();
        assert!(out.corrections.is_empty());
        assert_eq!(out.new, vec![entry("older.", 1, "gone", 4, 2, 5)]);
    }

    #[test]
    fn the_delta_is_in_storage_order() {
        let mut r = Records::new(peer(1));
        let out = r
            .receive(
                gossip(vec![
                    entry("Zed.", 2, "c", 1, 0, 0),
                    entry("MixedCase.", 2, "c", 2, 0, 0),
                    entry("alpha.", 2, "c", 3, 0, 0),
                ]),
                NOW,
                all_known,
            )
            .unwrap();
        let names: Vec<_> = out.new.iter().map(|e| e.hostname.as_str()).collect();
        assert_eq!(names, ["alpha.", "MixedCase.", "Zed."]);
        assert_eq!(out.received.timestamp, NOW);
    }

    #[test]
    fn merge_gossip_keeps_the_winner_of_each_key_and_the_later_time() {
        let mut a = GossipData {
            timestamp: 10,
            entries: vec![entry("b.", 2, "c", 1, 1, 0), entry("a.", 2, "c", 2, 0, 0)],
        };
        let b = GossipData {
            timestamp: 5,
            entries: vec![entry("b.", 2, "c", 1, 1, 7), entry("A.", 2, "c", 3, 0, 0)],
        };
        merge_gossip(&mut a, b);
        assert_eq!(a.timestamp, 10);
        assert_eq!(
            a.entries,
            vec![
                // Storage order: "a." and "A." are one name, then the address decides.
                entry("a.", 2, "c", 2, 0, 0),
                entry("A.", 2, "c", 3, 0, 0),
                entry("b.", 2, "c", 1, 1, 7),
            ]
        );
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            prop::sample::select(vec!["a.", "A.", "b.", "web."]),
            2u64..5,
            prop::sample::select(vec!["c1", "c2"]),
            1u8..4,
            0i64..4,
            prop::sample::select(vec![0i64, 0, 100, 200]),
        )
            .prop_map(|(h, o, c, d, v, t)| entry(h, o, c, d, v, t))
    }

    proptest! {
        /// The table is a CRDT for entries of other origins: any order of any split of the
        /// same messages gives the same table.
        #[test]
        fn prop_receive_order_does_not_matter(
            msgs in prop::collection::vec(prop::collection::vec(arb_entry(), 0..6), 1..6),
            seed in any::<u64>(),
        ) {
            let mut a = Records::new(peer(1));
            for m in &msgs {
                a.receive(gossip(m.clone()), NOW, all_known).unwrap();
            }
            let mut flat: Vec<Entry> = msgs.concat();
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..flat.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                flat.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut b = Records::new(peer(1));
            for e in flat {
                b.receive(gossip(vec![e]), NOW, all_known).unwrap();
            }
            let ta: Vec<_> = a.entries().cloned().collect();
            let tb: Vec<_> = b.entries().cloned().collect();
            prop_assert_eq!(ta, tb);
            // Merging the messages first gives the same table too.
            let mut merged = GossipData::default();
            for m in &msgs {
                merge_gossip(&mut merged, gossip(m.clone()));
            }
            let mut c = Records::new(peer(1));
            c.receive(merged, NOW, all_known).unwrap();
            prop_assert_eq!(c.entries().cloned().collect::<Vec<_>>(), a.entries().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn remove_origin_drops_entries_outright() {
        let mut r = Records::new(peer(1));
        r.add("web.", "c1", ip(1)).unwrap();
        r.receive(
            gossip(vec![
                entry("web.", 2, "c2", 2, 0, 0),
                entry("x.", 2, "c3", 3, 1, NOW),
            ]),
            NOW,
            all_known,
        )
        .unwrap();
        assert_eq!(r.remove_origin(peer(2)), 2);
        assert_eq!(r.len(), 1);
        assert_eq!(r.lookup("web."), vec![ip(1)]);
    }

    #[test]
    fn purge_removes_only_old_tombstones() {
        let mut r = Records::new(peer(1));
        r.add("a.", "c", ip(1)).unwrap();
        r.add("b.", "c", ip(2)).unwrap();
        r.add("live.", "c", ip(3)).unwrap();
        r.tombstone(NOW, Some("c"), Some(ip(1)), None);
        r.tombstone(NOW + 100, Some("c"), Some(ip(2)), None);
        assert_eq!(r.purge_tombstones(NOW + TOMBSTONE_TTL), 0);
        assert_eq!(r.purge_tombstones(NOW + TOMBSTONE_TTL + 1), 1);
        assert_eq!(r.len(), 2);
        assert_eq!(r.purge_tombstones(NOW + 100 + TOMBSTONE_TTL + 1), 1);
        assert_eq!(
            r.entries().map(|e| e.hostname.as_str()).collect::<Vec<_>>(),
            ["live."]
        );
    }

    #[test]
    fn lookups_are_case_insensitive_and_reverse_takes_the_first_in_storage_order() {
        let mut r = Records::new(peer(1));
        r.add("zeta.weave.local.", "c5", ip(5)).unwrap();
        r.add("alpha.weave.local.", "c5", ip(5)).unwrap();
        r.add("MixedCase.weave.local.", "c4", ip(4)).unwrap();
        r.add("web.weave.local.", "c1", ip(1)).unwrap();
        r.add("webber.weave.local.", "c9", ip(9)).unwrap();
        assert_eq!(r.lookup("MIXEDCASE.WEAVE.LOCAL."), vec![ip(4)]);
        assert_eq!(r.lookup("WEB.Weave.LOCAL."), vec![ip(1)]);
        assert!(r.lookup("nosuch.weave.local.").is_empty());
        assert_eq!(r.reverse(ip(5)), Some("alpha.weave.local."));
        assert_eq!(r.reverse(ip(4)), Some("MixedCase.weave.local."));
        assert_eq!(r.reverse(ip(99)), None);
        r.tombstone(NOW, Some("c5"), None, Some("alpha.weave.local."));
        assert_eq!(r.reverse(ip(5)), Some("zeta.weave.local."));
    }

    #[test]
    fn storage_order_is_case_insensitive_gossip_order_case_sensitive() {
        let mut r = Records::new(peer(1));
        r.add("alpha.weave.local.", "c5", ip(5)).unwrap();
        r.add("MixedCase.weave.local.", "c4", ip(4)).unwrap();
        let stored: Vec<_> = r.entries().map(|e| e.hostname.clone()).collect();
        assert_eq!(stored, ["alpha.weave.local.", "MixedCase.weave.local."]);
        let g = r.gossip(NOW);
        let sent: Vec<_> = g.entries.iter().map(|e| e.hostname.clone()).collect();
        assert_eq!(sent, ["MixedCase.weave.local.", "alpha.weave.local."]);
        assert_eq!(g.timestamp, NOW);
    }

    #[test]
    fn the_cap_refuses_without_changing_anything() {
        let mut r = Records::with_max_entries(peer(1), 2);
        r.add("a.", "c", ip(1)).unwrap();
        let err = r
            .receive(
                gossip(vec![
                    entry("b.", 2, "c", 2, 0, 0),
                    entry("c.", 2, "c", 3, 0, 0),
                ]),
                NOW,
                all_known,
            )
            .unwrap_err();
        assert_eq!(
            err,
            RecordsError::Full {
                have: 1,
                adding: 2,
                limit: 2
            }
        );
        assert_eq!(r.len(), 1);
        r.add("b.", "c", ip(2)).unwrap();
        assert!(matches!(
            r.add("c.", "c", ip(3)),
            Err(RecordsError::Full { .. })
        ));
        // Updates of held entries still work when full.
        assert_eq!(r.tombstone(NOW, Some("c"), Some(ip(2)), None).len(), 1);
        assert_eq!(r.add("b.", "c", ip(2)).unwrap().version, 2);
    }
}
