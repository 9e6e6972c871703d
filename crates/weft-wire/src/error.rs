//! Typed errors of this crate.

use weft_crypto::CryptoError;
use weft_gob::DecodeError;
use weft_mesh::PeerName;

/// Why a received features map was refused (`parseFeatures` in mesh).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// A required key is absent.
    #[error("field {0} is missing")]
    Missing(&'static str),
    /// The peer's name flavour differs from ours (`mac`).
    #[error("peer name flavour mismatch (ours: 'mac', theirs: '{0}')")]
    FlavourMismatch(String),
    /// `Name` is not a MAC-style peer name.
    #[error("invalid peer name {0:?}")]
    BadName(String),
    /// A numeric feature is not a decimal number of the right size.
    #[error("invalid {key} {value:?}: expected a decimal number of at most {bits} bits")]
    BadNumber {
        /// Key of the feature.
        key: &'static str,
        /// Value received.
        value: String,
        /// Bit size the value must fit.
        bits: u32,
    },
    /// `Trusted` is not a Go boolean.
    #[error("invalid Trusted value {0:?}")]
    BadBool(String),
}

/// Why a gossip envelope could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The gob stream is malformed or holds a value of the wrong type.
    #[error("malformed gossip envelope: {0}")]
    Gob(#[from] DecodeError),
    /// A peer name field does not fit 48 bits.
    #[error("peer name {0:#x} in a gossip envelope does not fit 48 bits")]
    NameOutOfRange(u64),
}

/// Why a connection failed. After any of these the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer's header does not start with `weave`.
    #[error("remote protocol header not recognised: {0:02x?}")]
    BadProtocolName([u8; 5]),
    /// The version ranges do not overlap.
    #[error(
        "could not agree on protocol version: we accept {our_min}..={our_max}, \
         the peer accepts {their_min}..={their_max}"
    )]
    VersionMismatch {
        /// Our lowest version.
        our_min: u8,
        /// Our highest version.
        our_max: u8,
        /// Their lowest version.
        their_min: u8,
        /// Their highest version.
        their_max: u8,
    },
    /// The peer speaks only protocol version 1, which weft does not implement.
    #[error("peer only speaks mesh protocol version 1, which weft does not implement")]
    Version1Unsupported,
    /// The crypto flag is neither 0 nor 1.
    #[error("invalid crypto flag {0:#04x} in the handshake")]
    InvalidCryptoFlag(u8),
    /// We have a password, the peer has none.
    #[error("password specified, but peer requested an unencrypted connection")]
    PeerUnencrypted,
    /// The peer has a password, we have none.
    #[error("no password specified, but peer requested an encrypted connection")]
    PeerEncrypted,
    /// The key exchange failed (a low-order public key).
    #[error("key exchange failed: {0}")]
    KeyExchange(CryptoError),
    /// The features message did not decrypt: the session keys differ, which
    /// with honest peers means the passwords differ.
    #[error("decryption failed: the peers' passwords differ?")]
    PasswordMismatch,
    /// A message after the features failed to decrypt (corruption, replay or
    /// reordering), or a sealed body is shorter than the tag.
    #[error("decryption of a received message failed: {0}")]
    Decrypt(CryptoError),
    /// The features message is not a gob `map[string]string`.
    #[error("malformed features message: {0}")]
    FeaturesDecode(DecodeError),
    /// The features map is invalid.
    #[error("invalid features: {0}")]
    Features(#[from] FeatureError),
    /// The remote peer is us (same name and UID). Weave never retries such a
    /// target.
    #[error("cannot connect to ourself")]
    ConnectToSelf,
    /// The remote peer has our name but another UID. Weave never retries such
    /// a target.
    #[error("peer name collision: the remote peer also calls itself {name}")]
    PeerNameCollision {
        /// The shared name.
        name: PeerName,
    },
    /// A length prefix above the maximum message size.
    #[error("received message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Length announced.
        len: u32,
        /// Configured maximum.
        max: usize,
    },
    /// A length prefix above the (small) limit for messages received before
    /// the handshake is complete.
    #[error(
        "handshake message of {len} bytes exceeds the limit of {max} bytes before \
         authentication (Weave's features message is a few hundred bytes)"
    )]
    HandshakeMessageTooLarge {
        /// Length announced.
        len: u32,
        /// The pre-authentication maximum.
        max: usize,
    },
    /// A gossip message (tag 4, 5 or 6) whose envelope does not decode.
    #[error("gossip message with tag {tag}: {error}")]
    Envelope {
        /// The message tag.
        tag: u8,
        /// What is wrong with the envelope.
        error: EnvelopeError,
    },
    /// A tag-7 overlay control message shorter than its 2-byte header.
    #[error("overlay control message of {0} bytes is shorter than its 2-byte header")]
    OverlayControlTooShort(usize),
    /// The header was not exchanged within the header timeout.
    #[error("timed out waiting for the protocol header")]
    HeaderTimeout,
    /// The rest of the handshake did not complete in time.
    #[error("timed out waiting for the peer's handshake")]
    HandshakeTimeout,
    /// Nothing was received for the read timeout.
    #[error("no message received for the read timeout (missed heartbeats)")]
    ReadTimeout,
    /// Sealing an outgoing message failed (nonce counter exhausted).
    #[error("cannot seal outgoing message: {0}")]
    Seal(CryptoError),
    /// The connection was closed locally.
    #[error("connection closed")]
    Closed,
}

/// Why [`Connection::send`](crate::Connection::send) refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The handshake is not complete yet.
    #[error("the handshake is not complete")]
    NotEstablished,
    /// The connection has failed or was closed.
    #[error("the connection is closed")]
    Closed,
    /// The message would exceed the maximum message size.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the framed body.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A tag-7 payload shorter than 2 bytes would crash a Weave peer.
    #[error("refusing to send an overlay control message shorter than 2 bytes")]
    MalformedOverlayControl,
    /// Sealing failed; the connection is closed.
    #[error("cannot seal message: {0}")]
    Seal(CryptoError),
}
