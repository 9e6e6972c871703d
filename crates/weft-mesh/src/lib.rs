//! The mesh control-plane core of weft.
//!
//! Everything here is plain Rust with no sockets, clocks or threads: callers feed events in and
//! take actions out. This crate grows with the mesh issue; today it holds peer identity.

pub mod gossip;
pub mod maker;
pub mod mesh;
pub mod peer_name;
pub mod rng;
pub mod sim;
pub mod topology;

pub use peer_name::{PeerName, PeerNameError};

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod relay_tests;
