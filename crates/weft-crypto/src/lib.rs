//! Cryptographic core of the weft mesh, wire-compatible with Weave Net 2.8.1.
//!
//! Pure computation: no sockets, clocks or threads. The connection code
//! feeds it bytes and gets bytes back.
//!
//! * [`session`]: ephemeral X25519 key pairs for the V2 handshake and the
//!   per-connection [`SessionKey`]
//!   `K = SHA-256(HSalsa20(X25519(priv, peerPub), 0^16) ‖ password)`.
//! * [`tcp`]: [`TcpSealer`] / [`TcpOpener`], NaCl secretbox over each
//!   length-prefixed TCP message with counter nonces (strict order).
//! * [`sleeve`]: [`SleeveEncryptor`] / [`SleeveDecryptor`] for UDP overlay
//!   packets, with Weave's two-window replay protection.
//! * [`ipsec`]: HKDF derivation of fastdp ESP keys.
//! * [`secretbox`]: the NaCl secretbox under both of the above, on a
//!   multi-block (AVX2 / AVX-512 when available) XSalsa20 keystream and an
//!   eight-lane AVX-512 IFMA Poly1305 (the `poly1305` crate without IFMA).
//!
//! Which end dialled the TCP connection ([`Side`]) goes into every nonce,
//! so the two directions never reuse a nonce under the shared key. All
//! constructors take the *local* side; openers and decryptors work out the
//! sender's side themselves.
//!
//! ```
//! use weft_crypto::*;
//!
//! // Handshake: each end draws a key pair and sends `01 ‖ public key`.
//! let dialer = EphemeralKeyPair::generate_os();
//! let acceptor = EphemeralKeyPair::generate_os();
//! let k_d = dialer.session_key(&acceptor.public_key(), b"password")?;
//! let k_a = acceptor.session_key(&dialer.public_key(), b"password")?;
//!
//! // TCP: the dialer seals, the acceptor opens (one pair per direction).
//! let mut sealer = TcpSealer::new(&k_d, Side::Outbound);
//! let mut opener = TcpOpener::new(&k_a, Side::Inbound);
//! let mut msg = [0u8; TAG_LEN + 1]; // room for the tag, then tag byte 0 (heartbeat)
//! sealer.seal_in_place(&mut msg)?; // send u32 BE msg.len() ‖ msg
//! assert_eq!(opener.open_in_place(&mut msg)?, &[0u8]);
//!
//! // Sleeve: one encryptor per stream at the sender, one decryptor per connection.
//! let mut enc = SleeveEncryptor::new(&k_a, Side::Inbound, [0, 0, 0, 0, 0, 1], SleeveStream::Df);
//! let mut dec = SleeveDecryptor::new(&k_d, Side::Outbound);
//! let mut packet = vec![0u8; SLEEVE_OVERHEAD + 3];
//! packet[SLEEVE_OVERHEAD..].copy_from_slice(b"abc"); // the frame list
//! enc.seal_in_place(&mut packet)?;
//! assert_eq!(SleeveHeader::parse(&packet)?.sender, [0, 0, 0, 0, 0, 1]);
//! let replay = packet.clone();
//! assert_eq!(dec.open_in_place(&mut packet)?.as_deref(), Some(&b"abc"[..]));
//! assert_eq!(dec.open_in_place(&mut replay.clone())?, None); // silent drop
//! # Ok::<(), CryptoError>(())
//! ```
//!
//! Every function that reads bytes from the network checks their length
//! and returns a [`CryptoError`] instead of panicking. The seal/open calls
//! work in place on caller buffers and do not allocate.
//!
//! The only `unsafe` code is the SIMD keystream and Poly1305 kernels (x86
//! intrinsics), run only after the CPU was checked for the features they
//! need.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod error;
pub mod ipsec;
mod poly;
pub mod secretbox;
pub mod session;
pub mod sleeve;
pub mod tcp;
mod xsalsa;

pub use backend::{
    available_backends, backend_override, default_backend, detected_backend, Backend, BackendError,
    BACKEND_ENV,
};
pub use error::CryptoError;
pub use ipsec::{derive_ipsec_key, IpsecKey, IPSEC_KEY_LEN, IPSEC_NONCE_LEN};
pub use secretbox::SecretBox;
pub use session::{EphemeralKeyPair, SessionKey, Side, KEY_LEN};
pub use sleeve::{
    sleeve_nonce, SleeveDecryptor, SleeveEncryptor, SleeveHeader, SleeveStream,
    MAX_SLEEVE_PACKET_LEN, PEER_NAME_LEN, SLEEVE_OVERHEAD,
};
pub use tcp::{tcp_nonce, TcpOpener, TcpSealer, MAX_TCP_MSG_LEN, NONCE_LEN, TAG_LEN};
