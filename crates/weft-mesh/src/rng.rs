//! The one seeded generator the pure cores use (splitmix64): small, fast and deterministic,
//! so simulations and tests replay exactly. Callers seed it from real randomness.

use std::time::Duration;

use crate::topology::RandomSource;

/// splitmix64.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration uniformly in `[0, max)`.
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.below(nanos))
        }
    }
}

impl RandomSource for SplitMix {
    fn below(&mut self, bound: u64) -> u64 {
        // Multiply-shift reduction: no modulo bias worth speaking of for our bounds.
        ((u128::from(self.next_u64()) * u128::from(bound.max(1))) >> 64) as u64
    }
}
