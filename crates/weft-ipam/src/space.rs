//! The addresses this peer owns and which of them are allocated (Weave's `ipam/space`).
//!
//! Two sets of addresses as sorted boundary lists (even positions start an interval, odd
//! positions end it, neighbours coalesced): `ours` (allocated) and `free`. Memory grows with
//! the number of runs, not addresses: a whole /12 free is two numbers.

use crate::addr::{fmt_addr, Range};

/// Why an address operation on the space failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    #[error("Address {} is not free to claim", fmt_addr(*.0))]
    NotFreeToClaim(u32),
    #[error("Address {} is not ours", fmt_addr(*.0))]
    NotOurs(u32),
}

/// A set of addresses as sorted, coalesced `[start, end)` boundaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Set(Vec<u64>);

impl Set {
    fn first_greater(&self, x: u64) -> usize {
        self.0.partition_point(|&b| b <= x)
    }

    fn first_greater_or_eq(&self, x: u64) -> usize {
        self.0.partition_point(|&b| b < x)
    }

    fn contains(&self, a: u64) -> bool {
        self.first_greater(a) & 1 != 0
    }

    fn add_sub(&mut self, start: u64, end: u64, sense: usize) {
        if start >= end {
            return;
        }
        let sp = self.first_greater_or_eq(start);
        let ep = self.first_greater(end);
        let mut res: Vec<u64> = Vec::with_capacity(self.0.len() + 2);
        res.extend_from_slice(self.0.get(..sp).unwrap_or(&[]));
        if sp & 1 == sense {
            res.push(start);
        }
        if ep & 1 == sense {
            res.push(end);
        }
        res.extend_from_slice(self.0.get(ep..).unwrap_or(&[]));
        self.0 = res;
    }

    fn add(&mut self, start: u64, end: u64) {
        self.add_sub(start, end, 0);
    }

    fn subtract(&mut self, start: u64, end: u64) {
        self.add_sub(start, end, 1);
    }

    fn intervals(&self) -> impl Iterator<Item = Range> + '_ {
        self.0.chunks_exact(2).filter_map(pair)
    }

    /// The parts of the set inside `r`, in order.
    fn within(&self, r: Range) -> impl Iterator<Item = Range> + '_ {
        let from = self.first_greater(r.start) & !1;
        self.0
            .get(from..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .filter_map(pair)
            .take_while(move |c| c.start < r.end)
            .filter_map(move |c| c.intersect(&r))
    }

    fn count(&self) -> u64 {
        self.intervals().map(|r| r.size()).sum()
    }

    fn count_in(&self, r: Range) -> u64 {
        self.within(r).map(|c| c.size()).sum()
    }

    fn runs(&self) -> usize {
        self.0.len() / 2
    }
}

fn pair(c: &[u64]) -> Option<Range> {
    match c {
        [a, b] => Some(Range::new(*a, *b)),
        _ => None,
    }
}

/// Our owned ranges: allocated and free addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    ours: Set,
    free: Set,
}

impl Space {
    pub fn new() -> Self {
        Space::default()
    }

    /// Forget everything (hand-over at shutdown).
    pub fn clear(&mut self) {
        self.ours.0.clear();
        self.free.0.clear();
    }

    /// Make the owned ranges exactly `ranges`: new parts become free, parts no longer owned are
    /// dropped. Returns the allocated addresses that were in dropped parts (the allocator makes
    /// sure there are none).
    pub fn update_ranges(&mut self, ranges: &[Range]) -> Vec<Range> {
        let mut want = Set::default();
        for r in ranges {
            want.add(r.start, r.end);
        }
        let mut lost = Vec::new();
        // drop what we no longer own
        let everything = self.everything();
        for r in everything.intervals() {
            let mut gone = Set::default();
            gone.add(r.start, r.end);
            for w in want.intervals() {
                gone.subtract(w.start, w.end);
            }
            for g in gone.intervals().collect::<Vec<_>>() {
                lost.extend(self.ours.within(g).collect::<Vec<_>>());
                self.ours.subtract(g.start, g.end);
                self.free.subtract(g.start, g.end);
            }
        }
        // add what is new as free
        let everything = self.everything();
        for w in want.intervals() {
            let mut new = Set::default();
            new.add(w.start, w.end);
            for e in everything.within(w).collect::<Vec<_>>() {
                new.subtract(e.start, e.end);
            }
            for n in new.intervals() {
                self.free.add(n.start, n.end);
            }
        }
        lost
    }

    fn everything(&self) -> Set {
        let mut all = self.ours.clone();
        for r in self.free.intervals() {
            all.add(r.start, r.end);
        }
        all
    }

    /// Owned ranges (allocated and free glued together).
    pub fn owned_ranges(&self) -> Vec<Range> {
        self.everything().intervals().collect()
    }

    /// Take the lowest free address in `r`.
    pub fn allocate(&mut self, r: Range) -> Option<u32> {
        let a = self.free.within(r).next()?.start;
        self.ours.add(a, a + 1);
        self.free.subtract(a, a + 1);
        Some(a as u32)
    }

    /// Mark a specific free address allocated.
    pub fn claim(&mut self, a: u32) -> Result<(), SpaceError> {
        let x = u64::from(a);
        if !self.free.contains(x) {
            return Err(SpaceError::NotFreeToClaim(a));
        }
        self.ours.add(x, x + 1);
        self.free.subtract(x, x + 1);
        Ok(())
    }

    /// Release an allocated address.
    pub fn free(&mut self, a: u32) -> Result<(), SpaceError> {
        let x = u64::from(a);
        if !self.ours.contains(x) {
            return Err(SpaceError::NotOurs(a));
        }
        self.ours.subtract(x, x + 1);
        self.free.add(x, x + 1);
        Ok(())
    }

    pub fn is_allocated(&self, a: u32) -> bool {
        self.ours.contains(u64::from(a))
    }

    pub fn is_free(&self, a: u32) -> bool {
        self.free.contains(u64::from(a))
    }

    /// True if any address in the ranges is allocated.
    pub fn has_allocations(&self, ranges: &[Range]) -> bool {
        ranges.iter().any(|r| self.ours.within(*r).next().is_some())
    }

    pub fn num_allocated(&self) -> u64 {
        self.ours.count()
    }

    pub fn num_free(&self) -> u64 {
        self.free.count()
    }

    pub fn num_free_in(&self, r: Range) -> u64 {
        self.free.count_in(r)
    }

    /// Allocated runs (for checks and the simulation).
    pub fn allocated(&self) -> impl Iterator<Item = Range> + '_ {
        self.ours.intervals()
    }

    /// Boundaries held, for memory accounting.
    pub fn runs(&self) -> usize {
        self.ours.runs() + self.free.runs()
    }

    /// The biggest free CIDR-aligned block inside `r` (the later one on ties, as Weave).
    fn biggest_free_block(&self, r: Range) -> Range {
        let mut best = Range::new(0, 0);
        for chunk in self.free.within(r) {
            if chunk.size() >= best.size() {
                let b = chunk.biggest_cidr();
                if b.size() >= best.size() {
                    best = b;
                }
            }
        }
        best
    }

    /// Weave's `Donate`: the biggest free CIDR block in `r`, or its upper half if it is more
    /// than half our free space there; removed from the space. `None` if nothing is free.
    pub fn donate(&mut self, r: Range) -> Option<Range> {
        let mut biggest = self.biggest_free_block(r);
        if biggest.is_empty() {
            return None;
        }
        if biggest.size() > self.num_free_in(r) / 2 {
            biggest.start += biggest.size() / 2;
        }
        self.ours.subtract(biggest.start, biggest.end);
        self.free.subtract(biggest.start, biggest.end);
        Some(biggest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: Range = Range {
        start: 0x0a20_0000,
        end: 0x0a30_0000,
    };

    #[test]
    fn lowest_free_and_reuse() {
        let mut s = Space::new();
        s.update_ranges(&[U]);
        let host = Range::new(U.start + 1, U.end - 1);
        assert_eq!(s.allocate(host), Some(0x0a20_0001));
        assert_eq!(s.allocate(host), Some(0x0a20_0002));
        s.free(0x0a20_0001).unwrap();
        assert_eq!(s.allocate(host), Some(0x0a20_0001));
        assert_eq!(
            s.claim(0x0a20_0002).unwrap_err().to_string(),
            "Address 10.32.0.2 is not free to claim"
        );
        assert_eq!(s.num_allocated(), 2);
        assert_eq!(s.num_free(), (1 << 20) - 2);
        assert!(s.runs() <= 3);
    }

    #[test]
    fn donation_is_weaves() {
        // h3 owns 10.40.0.0/13 and is asked for the whole universe: gives 10.44.0.0/14.
        let mut s = Space::new();
        s.update_ranges(&[Range::new(0x0a28_0000, 0x0a30_0000)]);
        assert_eq!(s.donate(U), Some(Range::new(0x0a2c_0000, 0x0a30_0000)));
        assert_eq!(s.owned_ranges(), vec![Range::new(0x0a28_0000, 0x0a2c_0000)]);
        // a single address asked for: given whole
        let mut s = Space::new();
        s.update_ranges(&[Range::new(0x0a20_0000, 0x0a28_0000)]);
        s.claim(0x0a20_0001).unwrap();
        s.claim(0x0a20_0002).unwrap();
        assert_eq!(
            s.donate(Range::new(0x0a20_0064, 0x0a20_0065)),
            Some(Range::new(0x0a20_0064, 0x0a20_0065))
        );
        assert_eq!(s.donate(Range::new(0x0a20_0002, 0x0a20_0003)), None);
    }

    #[test]
    fn update_ranges_drops_and_reports_lost() {
        let mut s = Space::new();
        s.update_ranges(&[Range::new(0, 100)]);
        s.claim(10).unwrap();
        s.claim(60).unwrap();
        let lost = s.update_ranges(&[Range::new(0, 50), Range::new(200, 210)]);
        assert_eq!(lost, vec![Range::new(60, 61)]);
        assert_eq!(
            s.owned_ranges(),
            vec![Range::new(0, 50), Range::new(200, 210)]
        );
        assert!(s.is_allocated(10));
        assert_eq!(s.num_free(), 49 + 10);
    }

    proptest! {
        /// The interval sets behave as a set of addresses.
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec((0u8..4, 0u32..64), 1..200)) {
            let mut s = Space::new();
            s.update_ranges(&[Range::new(0, 64)]);
            let mut used = [false; 64];
            for (op, a) in ops {
                match op {
                    0 => {
                        let got = s.allocate(Range::new(0, 64));
                        let want = used.iter().position(|u| !u);
                        prop_assert_eq!(got.map(|g| g as usize), want);
                        if let Some(w) = want { used[w] = true; }
                    }
                    1 => {
                        let ok = s.claim(a).is_ok();
                        prop_assert_eq!(ok, !used[a as usize]);
                        used[a as usize] = true;
                    }
                    2 => {
                        let ok = s.free(a).is_ok();
                        prop_assert_eq!(ok, used[a as usize]);
                        used[a as usize] = false;
                    }
                    _ => {
                        let r = Range::new(u64::from(a) / 2, u64::from(a));
                        let want = (r.start..r.end).filter(|&x| !used[x as usize]).count() as u64;
                        prop_assert_eq!(s.num_free_in(r), want);
                    }
                }
                prop_assert_eq!(s.num_allocated(), used.iter().filter(|u| **u).count() as u64);
            }
        }
    }
}
