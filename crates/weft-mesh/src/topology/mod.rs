//! Topology and routes: the peer table every router keeps, the gossip updates that keep it in
//! step with the rest of the mesh, and the next-hop tables derived from it.
//!
//! This is the pure core of Weave's `mesh` topology handling (reference §3.3–§3.8, §7):
//!
//! * [`Peers`] — the peer table: one [`Peer`] per known name (the local peer is one of them),
//!   each with its connection map, plus the short-ID index. Local changes
//!   ([`Peers::add_connection`], [`Peers::connection_established`],
//!   [`Peers::delete_connection`]) bump the local Version; remote changes arrive as decoded
//!   topology updates through [`Peers::apply_update`], which reports which peers *improved* so
//!   the caller can relay just those (incremental gossip).
//! * [`PeerUpdate`] / [`PeerSummary`] / [`ConnectionSummary`] — the decoded form of the topology
//!   gossip payload. Field for field the structs mirror Weave's gob types `peerSummary` and
//!   `connectionSummary`; the gob codec itself lives elsewhere.
//! * [`Routes`] — unicast and broadcast next hops computed by Weave's deterministic, level-sorted
//!   BFS over a compact snapshot of the table, for both link filters ([`LinkFilter`]).
//!
//! Nothing in here touches sockets, clocks, threads or an RNG: every random draw (short-ID
//! choice, gossip fan-out) comes from a caller-supplied [`RandomSource`], so a whole mesh can be
//! simulated deterministically in one process.
//!
//! Complexity (V peers, E gossiped connections): applying an update of k peer records with c
//! connections in total is O((k + c) log V); [`Routes::calculate`] is O(V + E log V) (building the
//! adjacency snapshot dominates) and each BFS is O(V log V + E) with the per-level sort; a broadcast
//! table for one source is one BFS, computed lazily and cached; garbage collection is one BFS plus
//! O(V log V) removal.

mod error;
mod peers;
mod routes;
mod short_id;
mod summary;

#[cfg(test)]
mod peers_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod routes_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod test_util;

pub use error::TopologyError;
pub use peers::{ApplyOutcome, Connection, FetchOutcome, GcOutcome, Peer, Peers, ShortIdOutcome};
pub use routes::{LinkFilter, Routes};
pub use short_id::{SHORT_ID_BITS, SHORT_ID_SPACE};
pub use summary::{ConnectionSummary, ConnectionView, PeerSummary, PeerUpdate, PeerUpdateView};

/// A source of uniformly distributed random numbers, injected by the caller.
///
/// `below(bound)` must return a value in `0..bound` (`bound` is never 0). A value out of range is
/// reduced modulo `bound` rather than trusted. Any `FnMut(u64) -> u64` closure is a
/// `RandomSource`, so tests can pass a seeded generator and production code a real RNG.
pub trait RandomSource {
    /// A uniformly random value in `0..bound`.
    fn below(&mut self, bound: u64) -> u64;
}

impl<F: FnMut(u64) -> u64> RandomSource for F {
    fn below(&mut self, bound: u64) -> u64 {
        self(bound)
    }
}

/// Draw from `rng` in `0..bound`, never trusting the source to stay in range.
pub(crate) fn draw<R: RandomSource + ?Sized>(rng: &mut R, bound: u64) -> u64 {
    debug_assert!(bound > 0);
    rng.below(bound) % bound.max(1)
}
