//! The MAC cache (reference §4.8, Weave's `MacCache`): which peer owns a MAC address.
//!
//! * An entry expires [`MAC_MAX_AGE`] (10 min) after it was last seen; `last_seen` is only
//!   refreshed when it is more than [`MAC_REFRESH`] (1 min) old, and the caller runs
//!   [`MacCache::sweep`] every [`MAC_SWEEP_INTERVAL`] (1 min). An entry can therefore live up
//!   to ~11 min past its last frame, as in Weave.
//! * [`MacCache::add`] (captured frames) never overrides another peer's entry: it reports
//!   the conflict and the frame is dropped. [`MacCache::add_forced`] (frames from the
//!   overlay) moves the MAC to the new peer and reports where it was.
//! * Group (multicast/broadcast) MACs are never learned.
//! * Bounded: at most `max_entries` (default [`DEFAULT_MAX_MACS`] = 65 536, ≈ 2.5 MiB). When
//!   full, a new MAC is not learned (frames to it flood, as to any unknown MAC) until a sweep
//!   frees room (inferred: Weave's cache is unbounded).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weft_mesh::PeerName;

use crate::frame::Mac;

/// Weave's `macMaxAge`.
pub const MAC_MAX_AGE: Duration = Duration::from_secs(600);
/// `last_seen` is refreshed at most this often (`macMaxAge / 10`).
pub const MAC_REFRESH: Duration = Duration::from_secs(60);
/// How often the caller should sweep.
pub const MAC_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound on the number of entries.
pub const DEFAULT_MAX_MACS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    peer: PeerName,
    last_seen: Instant,
}

/// What learning a source MAC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Already mapped to this peer (maybe refreshed).
    Known,
    /// A new entry.
    New,
    /// Forced: the MAC moved from `from` to the new peer (Weave invalidates fastdp flows).
    Moved { from: PeerName },
    /// Not forced and owned by another peer: nothing changed.
    Conflict { owner: PeerName },
    /// A group MAC: never learned.
    Group,
    /// The cache is full: not learned.
    Full,
}

/// MAC → owning peer.
#[derive(Debug, Clone)]
pub struct MacCache {
    table: HashMap<Mac, Entry>,
    max_entries: usize,
}

impl Default for MacCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MACS)
    }
}

impl MacCache {
    pub fn new(max_entries: usize) -> MacCache {
        MacCache {
            table: HashMap::with_capacity(max_entries.min(1024)),
            max_entries,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The owner of `mac` (expired entries stay until the next sweep, as in Weave).
    pub fn lookup(&self, mac: Mac) -> Option<PeerName> {
        self.table.get(&mac).map(|e| e.peer)
    }

    /// Learn `mac` → `peer` without overriding another peer's entry.
    pub fn add(&mut self, now: Instant, mac: Mac, peer: PeerName) -> Learned {
        self.learn(now, mac, peer, false)
    }

    /// Learn `mac` → `peer`, moving it from whichever peer had it.
    pub fn add_forced(&mut self, now: Instant, mac: Mac, peer: PeerName) -> Learned {
        self.learn(now, mac, peer, true)
    }

    fn learn(&mut self, now: Instant, mac: Mac, peer: PeerName, force: bool) -> Learned {
        if mac.is_group() {
            return Learned::Group;
        }
        let full = self.table.len() >= self.max_entries;
        match self.table.get_mut(&mac) {
            None if full => Learned::Full,
            None => {
                self.table.insert(
                    mac,
                    Entry {
                        peer,
                        last_seen: now,
                    },
                );
                Learned::New
            }
            Some(e) if e.peer != peer => {
                if !force {
                    return Learned::Conflict { owner: e.peer };
                }
                let from = e.peer;
                e.peer = peer;
                e.last_seen = now;
                Learned::Moved { from }
            }
            Some(e) => {
                if now.saturating_duration_since(e.last_seen) > MAC_REFRESH {
                    e.last_seen = now;
                }
                Learned::Known
            }
        }
    }

    /// Remove entries not seen for [`MAC_MAX_AGE`]; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.table.len();
        self.table
            .retain(|_, e| now.saturating_duration_since(e.last_seen) < MAC_MAX_AGE);
        before - self.table.len()
    }

    /// Remove every entry of `peer` (the peer was garbage-collected); returns how many.
    pub fn delete_peer(&mut self, peer: PeerName) -> usize {
        let before = self.table.len();
        self.table.retain(|_, e| e.peer != peer);
        before - self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    const M: Mac = Mac([2, 0, 0, 0, 0, 1]);

    #[test]
    fn learns_refreshes_and_expires() {
        let t0 = Instant::now();
        let mut c = MacCache::default();
        assert_eq!(c.add(t0, M, p(1)), Learned::New);
        assert_eq!(c.lookup(M), Some(p(1)));
        // Seen again 30 s later: not refreshed (< 1 min), so it expires 10 min after t0.
        assert_eq!(c.add(t0 + Duration::from_secs(30), M, p(1)), Learned::Known);
        assert_eq!(c.sweep(t0 + Duration::from_secs(599)), 0);
        assert_eq!(c.sweep(t0 + MAC_MAX_AGE), 1);
        assert_eq!(c.lookup(M), None);
        // Refreshed after 2 min: lives until 12 min.
        assert_eq!(c.add(t0, M, p(1)), Learned::New);
        c.add(t0 + Duration::from_secs(120), M, p(1));
        assert_eq!(c.sweep(t0 + Duration::from_secs(700)), 0);
        assert_eq!(c.sweep(t0 + Duration::from_secs(720)), 1);
    }

    #[test]
    fn moves_only_when_forced_and_never_learns_groups() {
        let t = Instant::now();
        let mut c = MacCache::default();
        c.add(t, M, p(1));
        assert_eq!(c.add(t, M, p(2)), Learned::Conflict { owner: p(1) });
        assert_eq!(c.lookup(M), Some(p(1)));
        assert_eq!(c.add_forced(t, M, p(2)), Learned::Moved { from: p(1) });
        assert_eq!(c.lookup(M), Some(p(2)));
        assert_eq!(c.add(t, Mac::BROADCAST, p(1)), Learned::Group);
        assert_eq!(
            c.add_forced(t, Mac([1, 0, 0x5e, 0, 0, 1]), p(1)),
            Learned::Group
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c.delete_peer(p(2)), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded() {
        let t = Instant::now();
        let mut c = MacCache::new(2);
        assert_eq!(c.add(t, Mac([2, 0, 0, 0, 0, 1]), p(1)), Learned::New);
        assert_eq!(c.add(t, Mac([2, 0, 0, 0, 0, 2]), p(1)), Learned::New);
        assert_eq!(c.add(t, Mac([2, 0, 0, 0, 0, 3]), p(1)), Learned::Full);
        // Existing entries still move when full.
        assert_eq!(
            c.add_forced(t, Mac([2, 0, 0, 0, 0, 2]), p(2)),
            Learned::Moved { from: p(1) }
        );
        assert_eq!(c.len(), 2);
    }
}
