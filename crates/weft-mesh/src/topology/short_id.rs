//! The short-ID index (reference §3.8): which peer owns each 12-bit fastdp short ID.
//!
//! Several peers may claim one short ID. The *principal* is the claimant with the lowest name;
//! the rest wait in `others`. An entry whose last claimant left is kept with no principal, so
//! that re-using that ID later counts as a change of the mapping (a fastdp flow programmed for the
//! old owner might still be around).

use std::collections::BTreeMap;

use crate::PeerName;

use super::{draw, RandomSource};

/// Width of a short ID in bits.
pub const SHORT_ID_BITS: u32 = 12;
/// Number of distinct short IDs (4096).
pub const SHORT_ID_SPACE: u16 = 1 << SHORT_ID_BITS;

/// How many random probes to make before counting free IDs (Weave makes 10).
const RANDOM_PROBES: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    principal: Option<PeerName>,
    others: Vec<PeerName>,
}

/// What adding a claimant did to the mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AddEffect {
    /// The short ID → principal mapping changed in a way that can invalidate fastdp flows.
    pub invalidated: bool,
    /// The previous principal, if the new claimant displaced it.
    pub displaced: Option<PeerName>,
}

/// Short ID → claimants.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShortIdIndex {
    entries: BTreeMap<u16, Entry>,
}

impl ShortIdIndex {
    /// Record that `name` claims `id`.
    pub fn add(&mut self, name: PeerName, id: u16) -> AddEffect {
        let fresh = !self.entries.contains_key(&id);
        let entry = self.entries.entry(id).or_default();
        match entry.principal {
            Some(p) if p == name => AddEffect::default(),
            _ if entry.others.contains(&name) => AddEffect::default(),
            None => {
                entry.principal = Some(name);
                // A brand-new ID cannot be referenced by any flow; a re-used one can.
                AddEffect {
                    invalidated: !fresh,
                    displaced: None,
                }
            }
            Some(p) if name < p => {
                entry.others.push(p);
                entry.principal = Some(name);
                AddEffect {
                    invalidated: true,
                    displaced: Some(p),
                }
            }
            Some(_) => {
                entry.others.push(name);
                AddEffect::default()
            }
        }
    }

    /// Record that `name` no longer claims `id`. Returns whether the mapping changed in a way
    /// that invalidates flows (a new principal took over).
    pub fn remove(&mut self, name: PeerName, id: u16) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        if entry.principal != Some(name) {
            entry.others.retain(|o| *o != name);
            return false;
        }
        match entry.others.iter().enumerate().min_by_key(|(_, n)| **n) {
            Some((i, _)) => {
                entry.principal = Some(entry.others.swap_remove(i));
                true
            }
            None => {
                // Keep the emptied entry so that re-use is noticed.
                entry.principal = None;
                false
            }
        }
    }

    /// The principal claimant of `id`.
    pub fn principal(&self, id: u16) -> Option<PeerName> {
        self.entries.get(&id).and_then(|e| e.principal)
    }

    /// All claimants of `id` other than the principal.
    #[cfg(test)]
    pub fn others(&self, id: u16) -> Vec<PeerName> {
        self.entries
            .get(&id)
            .map(|e| e.others.clone())
            .unwrap_or_default()
    }

    /// Number of IDs in `0..4096` without a principal.
    pub fn free_count(&self) -> usize {
        let owned = self
            .entries
            .iter()
            .filter(|(id, e)| **id < SHORT_ID_SPACE && e.principal.is_some())
            .count();
        usize::from(SHORT_ID_SPACE) - owned
    }

    /// Choose a free ID: a few uniform random probes, then a uniform choice among the free IDs;
    /// `None` when all 4096 are owned.
    pub fn choose<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Option<u16> {
        for _ in 0..RANDOM_PROBES {
            let id = draw(rng, u64::from(SHORT_ID_SPACE)) as u16;
            if self.principal(id).is_none() {
                return Some(id);
            }
        }
        let free = self.free_count();
        if free == 0 {
            return None;
        }
        let mut n = draw(rng, free as u64);
        for id in 0..SHORT_ID_SPACE {
            if self.principal(id).is_none() {
                if n == 0 {
                    return Some(id);
                }
                n -= 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    #[test]
    fn principal_is_lowest_name_and_invalidation_rules() {
        let mut ix = ShortIdIndex::default();
        // First claim of a fresh ID: no invalidation.
        assert_eq!(ix.add(n(5), 7), AddEffect::default());
        // Higher name: secondary, no invalidation.
        assert_eq!(ix.add(n(9), 7), AddEffect::default());
        // Lower name displaces the principal.
        assert_eq!(
            ix.add(n(3), 7),
            AddEffect {
                invalidated: true,
                displaced: Some(n(5))
            }
        );
        assert_eq!(ix.principal(7), Some(n(3)));
        // Removing a secondary: no invalidation.
        assert!(!ix.remove(n(9), 7));
        // Removing the principal promotes the lowest other.
        assert!(ix.remove(n(3), 7));
        assert_eq!(ix.principal(7), Some(n(5)));
        // Removing the last claimant: no invalidation, but the entry remembers it was used.
        assert!(!ix.remove(n(5), 7));
        assert_eq!(ix.principal(7), None);
        // Re-use invalidates.
        assert!(ix.add(n(8), 7).invalidated);
    }

    #[test]
    fn choose_falls_back_to_counting_and_fails_when_full() {
        let mut ix = ShortIdIndex::default();
        for id in 0..SHORT_ID_SPACE {
            if id != 4000 {
                ix.add(n(u64::from(id) + 1), id);
            }
        }
        // A source that always probes owned ID 0 forces the counting path.
        let mut zero = |_b: u64| 0u64;
        assert_eq!(ix.choose(&mut zero), Some(4000));
        ix.add(n(99999), 4000);
        assert_eq!(ix.free_count(), 0);
        assert_eq!(ix.choose(&mut zero), None);
    }
}
