//! The one error type of this crate.

/// Everything that can go wrong in `weft-crypto`.
///
/// Errors that come from bytes received off the network (short input, bad
/// public key, authentication failure) are recoverable values: the caller
/// decides whether to drop a packet or close a connection. Nothing in this
/// crate panics on network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The input (or the caller's buffer) is shorter than the fixed overhead.
    #[error("input too short: {len} bytes, at least {min} needed")]
    TooShort {
        /// Length that was supplied.
        len: usize,
        /// Minimum length accepted.
        min: usize,
    },

    /// The input (or the caller's buffer) is longer than the protocol allows.
    #[error("input too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Length that was supplied.
        len: usize,
        /// Maximum length accepted.
        max: usize,
    },

    /// A peer's ephemeral public key was not exactly 32 bytes long.
    #[error("peer public key must be 32 bytes, got {0}")]
    BadPublicKeyLength(usize),

    /// The peer's public key is a low-order point: the X25519 shared secret
    /// would be all zeros, i.e. independent of our private key.
    #[error("peer public key is a low-order point (non-contributory key exchange)")]
    WeakPublicKey,

    /// Poly1305 verification failed: the message was forged, corrupted,
    /// sealed under another key, or (on TCP) arrived out of order or replayed.
    #[error("decryption failed: message not authentic for this key and nonce")]
    DecryptFailed,

    /// The sender's message counter or sequence number is used up. A nonce
    /// must never repeat under one key, so the connection must be replaced.
    #[error("nonce counter exhausted; the connection must be re-established")]
    CounterExhausted,
}
