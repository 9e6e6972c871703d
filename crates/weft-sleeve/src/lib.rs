//! The sleeve overlay core: Weave's user-space UDP data path (reference §4).
//!
//! * [`packet`]: the datagram format — sender name, then frames of
//!   `src name ‖ dst name ‖ u16 length ‖ Ethernet frame` — and the "special" all-zero frames
//!   the sleeve uses for signalling (heartbeat, fragmentation test, MTU test).
//! * [`link`]: one connection's sleeve state machine. Today it does what a connection needs to
//!   become *established*: UDP heartbeats carrying the connection UID (encrypted with the
//!   session key when there is one), learning the peer's UDP address, the
//!   ConnectionEstablished exchange over TCP, answering a Weave peer's fragmentation and MTU
//!   tests, and the 60 s heartbeat timeout; then Weave's fragmentation test and PMTU
//!   discovery/verification (the link's `mtu`, `stack_frag`), and the data path: batched
//!   frames encoded into caller buffers, received frames handed out without copying.
//!
//! * [`segment`]: weft's own extension between weft peers: a sleeve datagram cut into
//!   path-MTU-sized segments (sent with UDP GSO) and put back together by the receiver, in
//!   place of kernel IP fragmentation.
//!
//! Pure: the caller owns the UDP socket and the clock.

pub mod link;
pub mod packet;
pub mod segment;

pub use link::{EncodeError, HeartbeatLink, LinkConfig, LinkEvent, Transmit};
pub use packet::{pack_frames, Frame, FrameIter, OutFrame, Packed, PacketError, Special};
