//! The forwarding core of weft's virtual Ethernet switch: what Weave's `NetworkRouter` and
//! sleeve forwarder decide for each frame (reference §4.5, §4.6, §4.8, §7).
//!
//! * [`frame`]: a total, allocation-free view of an Ethernet frame and its IPv4 header.
//! * [`mac`]: the MAC cache (MAC → owning peer, 10 min expiry, bounded).
//! * [`forward`]: the decisions for frames captured from the local bridge and frames received
//!   from the overlay, written as [`Action`]s into a caller-owned vector.
//! * [`toobig`]: per-link send plan (DF / non-DF / fragment / ICMP frag-needed / drop), the
//!   ICMP "fragmentation needed" reply and router-side IPv4 fragmentation.
//! * [`batch`]: packing frames for one next hop into sleeve datagrams.
//!
//! Pure: the caller owns the clock (passes `Instant`s), the bridge and the links.

pub mod batch;
pub mod forward;
pub mod frame;
pub mod mac;
pub mod toobig;

pub use forward::{Action, DropReason, MeshRoutes, RouteView, Switch};
pub use frame::{EthFrame, FrameError, Ipv4Header, Mac};
pub use mac::{Learned, MacCache};
pub use toobig::{fragment, icmp_frag_needed, plan_send, SendPlan, TooBigError};
