//! weft's IPAM core (reference weave-services.md §3, weave-protocol.md §3.1).
//!
//! Weave's model, kept so that Weave 2.8.1 peers and weft peers share one ring:
//!
//! * [`wire`]: the data that travels on the `IPallocation` gossip channel and is persisted
//!   (`GossipState`, `RingWire`, the Paxos claims, `Range`), as plain Rust data; [`codec`]
//!   turns it into Go gob bytes and back (total decoder, never panics).
//! * [`addr`]: CIDRs and ranges, Weave's subnet checks.
//! * [`ring`]: the CRDT of address ranges owned by peers, with Weave's merge rules, tokens and
//!   versions; [`space`]: the addresses this peer owns and which of them are allocated.
//! * [`paxos`]: the single-decree Paxos that agrees on the peers the first ring is made for.
//! * [`allocator`]: the state machine on top (allocate, claim, free, donate, rmpeer, hand
//!   over, dead-peer reclaim), events in and actions out, like the mesh core.
//! * [`sim`]: many allocators on a simulated network, checking that no address is ever held
//!   by two peers (tests, `examples/sim.rs`).
//!
//! Addresses are IPv4 held as `u32`; a range is `[start, end)`.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod addr;
pub mod allocator;
pub mod codec;
pub mod paxos;
pub mod ring;
pub mod sim;
pub mod space;
pub mod wire;

pub use addr::{Cidr, Range};
pub use allocator::{
    Allocator, Config, EntryStatus, InitMode, IpamError, IpamStatus, Now, Output, Owned, PeerInfo,
    PeerShare, Persisted, Reply, ReqId,
};
