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
//! ## Backends
//!
//! The secretbox runs on one of four [`Backend`]s (`scalar`, `avx2`,
//! `avx512`, `ifma`: keystream and Poly1305 code for a class of CPU).
//! [`SecretBox::new`] takes the best the CPU has, or the one the
//! `WEFT_CRYPTO_BACKEND` variable forces if the CPU has it;
//! [`SecretBox::with_backend`] refuses a backend the CPU lacks. The tests
//! hold every backend this CPU runs ([`available_backends`]) to libsodium
//! and the RustCrypto crates; `cargo run -q -p weft-crypto --example
//! backends` prints which ones those are.
//!
//! ## Secrets
//!
//! Tags are compared in constant time (`subtle::ConstantTimeEq` over all 16
//! bytes, see [`SecretBox::open_in_place_detached`]). Keys, subkeys, the
//! Poly1305 key and its r, s limbs and powers, keystream blocks staged in
//! buffers, and the SHA-256 state over `beforenm ‖ password` are zeroized
//! after use or on drop (the `poly1305` crate with its `zeroize` feature).
//! Not reachable from Rust: copies the compiler keeps in vector registers
//! or spills to the stack inside the SIMD kernels and inside `sha2`'s
//! compression function.
//!
//! ## `unsafe`
//!
//! The crate denies `unsafe_code` except in the two private `x86` modules
//! and requires a `// SAFETY:` comment on every block
//! (`clippy::undocumented_unsafe_blocks`, `unsafe_op_in_unsafe_fn`). The
//! kernels are safe `#[target_feature]` functions (the compiler lets only
//! code compiled with the same features call them without `unsafe`), so
//! the `unsafe` blocks are exactly these six:
//!
//! | where | what | invariant it relies on |
//! |---|---|---|
//! | `xsalsa::x86::Avx2::xor_batch` | calls the AVX2 keystream kernel | the `Avx2` token exists only after `is_x86_feature_detected!("avx2")`; the kernel touches memory only through `&[u32; 16]` and `&mut [u8; 512]` |
//! | `xsalsa::x86::Avx512::xor_batch` | calls the AVX-512VL kernel | the `Avx512` token exists only after AVX2, AVX-512F and AVX-512VL were detected; same borrowed arrays |
//! | `xsalsa::x86::xor_transposed` | 32-byte unaligned load and store | the pointer comes from a 32-byte subslice of the borrowed 512-byte chunk; `loadu`/`storeu` need no alignment |
//! | `poly::x86::Ifma::message` | calls the IFMA Poly1305 kernel | the `Ifma` token exists only after AVX-512F and AVX-512 IFMA were detected; the kernel reads the message only through slices |
//! | `poly::x86::lanes`, `poly::x86::load_group` | 64-byte unaligned loads | each reads exactly the 64 bytes of a borrowed `[u64; 8]` or half of a borrowed `[u8; 128]`; `loadu` needs no alignment |
//!
//! The differential tests (`tests/libsodium.rs`) and the fuzz target
//! (`fuzz/`) each hold libsodium's FFI calls in `tests/sodium/mod.rs`, with
//! the same comments.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
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
