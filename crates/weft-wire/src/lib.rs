//! Weave Net 2.8's mesh TCP connection protocol, as a sans-IO state machine.
//!
//! A [`Connection`] is one end of one mesh TCP connection. It owns no socket,
//! clock, thread or random source: the caller
//!
//! * feeds the bytes it read with [`Connection::handle_input`],
//! * drains the bytes to write with [`Connection::poll_transmit`] (several
//!   messages are batched into one buffer),
//! * drains [`Event`]s with [`Connection::poll_event`] (handshake done, each
//!   received message, ignorable oddities),
//! * and calls [`Connection::handle_timeout`] at [`Connection::poll_timeout`].
//!
//! The handshake is Weave's protocol version 2 (§2.2 of the reference):
//! header `weave` + min/max version, then a crypto flag (and an X25519 public
//! key when a password is set), then the features map as the first
//! length-prefixed message, encrypted when a password is used. Version 1 is
//! never spoken: a peer that can only speak it is refused with
//! [`ConnectionError::Version1Unsupported`].
//!
//! After the handshake every message is `u32 BE length ‖ body`, where the body
//! is `tag ‖ payload`, sealed with [`weft_crypto::TcpSealer`] on encrypted
//! connections. The payloads of the gossip tags are gob
//! [envelopes](envelope) and tag 7 carries an [`OverlayControlMsg`].
//!
//! The decisions that need the mesh (is this a known peer? a duplicate
//! connection? over the connection limit?) are the caller's: the
//! [`Event::HandshakeDone`] event carries the remote identity and the caller
//! keeps or [closes](Connection::close) the connection.
//!
//! Before the peer is authenticated (the features message, which on an
//! encrypted connection is also the first proof that the peer knows the
//! password) messages are capped at [`MAX_HANDSHAKE_MESSAGE_LEN`], not the
//! 10 MiB allowed afterwards, and the whole handshake must finish within
//! [`HANDSHAKE_TIMEOUT`]. The ephemeral key pair is dropped (its secret
//! zeroized) as soon as the session key exists, and the password is shared
//! as one wiped-on-drop [`Password`].
//!
//! Totality: every decoder returns a typed error on malformed, truncated,
//! oversized or hostile input; nothing panics on network input and the
//! receive buffer never holds more than one maximum-size message.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod connection;
pub mod envelope;
pub mod error;
pub mod features;
pub mod frame;
pub mod header;
pub mod overlay;
pub mod password;

pub use connection::{Config, Connection, Event, Message};
pub use envelope::{BroadcastEnvelope, GossipEnvelope, UnicastEnvelope};
pub use error::{ConnectionError, EnvelopeError, FeatureError, SendError};
pub use features::{Features, LocalIdentity, RemotePeer};
pub use frame::{FrameReader, Tag, MAX_HANDSHAKE_MESSAGE_LEN, MAX_MESSAGE_LEN};
pub use header::{negotiate_version, ProtocolHeader, HEADER_LEN, PROTOCOL_MAX_VERSION};
pub use overlay::OverlayControlMsg;
pub use password::Password;

use std::time::Duration;

/// Default mesh TCP port (`mesh.Port`).
pub const DEFAULT_PORT: u16 = 6783;
/// Deadline for the protocol header exchange (`headerTimeout`).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between TCP heartbeats (`tcpHeartbeat`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after which the connection fails (2 × the heartbeat).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for the whole handshake (header, crypto flag and key, features),
/// from the moment the connection is created.
///
/// Weave gives the header 10 s and the rest of the handshake another 60 s,
/// so a client that sends `weave\x01\x02` and stalls holds a descriptor for
/// 70 s. Both ends send their whole handshake at once without waiting for the
/// other (§2.1), so an honest handshake takes one round trip plus a key
/// exchange; 10 s — Weave's own budget for the header alone — is generous
/// for that on any working underlay and bounds what a stalled client holds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
