//! Ephemeral X25519 key pairs and the per-connection session key.
//!
//! During the V2 handshake each side sends a fresh Curve25519 public key.
//! Both ends then derive the same 32-byte session key
//!
//! ```text
//! K = SHA-256( HSalsa20(key = X25519(myPriv, theirPub), input = 0^16) ‖ password )
//! ```
//!
//! The inner step is NaCl's `crypto_box_beforenm`. The result keys both the
//! TCP stream ([`crate::tcp`]) and the sleeve UDP packets ([`crate::sleeve`]),
//! and is the input keying material of the fastdp IPsec keys ([`crate::ipsec`]).

use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::xsalsa::hsalsa20;
use crate::CryptoError;

/// Length of an X25519 public or private key and of the session key.
pub const KEY_LEN: usize = 32;

/// Which end of the mesh TCP connection *this* peer is.
///
/// The nonces of both the TCP stream and the sleeve carry a bit saying
/// whether the sender dialled the connection, so that the two directions,
/// which share one key, never use the same nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This peer dialled the connection.
    Outbound,
    /// This peer accepted the connection.
    Inbound,
}

impl Side {
    /// `Side::Outbound` if `outbound` is true, else `Side::Inbound`.
    pub fn from_outbound(outbound: bool) -> Side {
        if outbound {
            Side::Outbound
        } else {
            Side::Inbound
        }
    }

    /// True for [`Side::Outbound`].
    pub fn is_outbound(self) -> bool {
        self == Side::Outbound
    }

    /// The side of the peer at the other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Outbound => Side::Inbound,
            Side::Inbound => Side::Outbound,
        }
    }
}

/// The 32-byte symmetric key shared by both ends of one mesh connection.
///
/// Zeroized on drop; its `Debug` output does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; KEY_LEN]);

impl SessionKey {
    /// Wraps raw key bytes (for tests, or a key obtained elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SessionKey {
        SessionKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// A Curve25519 key pair drawn for one connection (NaCl `box.GenerateKey`).
///
/// The private half is zeroized on drop.
pub struct EphemeralKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl EphemeralKeyPair {
    /// Draws a fresh key pair from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> EphemeralKeyPair {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        EphemeralKeyPair::from_private_bytes(*bytes)
    }

    /// Draws a fresh key pair from the operating system's random source.
    pub fn generate_os() -> EphemeralKeyPair {
        EphemeralKeyPair::generate(&mut rand_core::OsRng)
    }

    /// Builds the key pair for a known private key (tests, key logs).
    /// The scalar is clamped as X25519 requires, so any 32 bytes are valid.
    pub fn from_private_bytes(private: [u8; KEY_LEN]) -> EphemeralKeyPair {
        let secret = StaticSecret::from(private);
        let public = PublicKey::from(&secret);
        EphemeralKeyPair { secret, public }
    }

    /// The public key to send in the handshake (after the `01` crypto flag).
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public.to_bytes()
    }

    /// Derives the session key from the peer's public key, exactly as it
    /// arrived off the wire, and the shared password.
    ///
    /// Fails if `their_public` is not 32 bytes long or is a low-order point
    /// (which would make the key independent of our secret; Weave itself does
    /// not check this, but an honest Weave peer never sends such a key).
    pub fn session_key(
        &self,
        their_public: &[u8],
        password: &[u8],
    ) -> Result<SessionKey, CryptoError> {
        let their: [u8; KEY_LEN] = their_public
            .try_into()
            .map_err(|_| CryptoError::BadPublicKeyLength(their_public.len()))?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(their));
        if !shared.was_contributory() {
            return Err(CryptoError::WeakPublicKey);
        }
        // crypto_box_beforenm: HSalsa20 over a zero input, keyed by the DH output.
        let beforenm = hsalsa20(shared.as_bytes(), &[0u8; 16]);
        Ok(SessionKey(sha256_wiped(&[beforenm.as_slice(), password])))
    }
}

/// SHA-256 of the concatenation of `parts`, with every byte of state it
/// keeps wiped before returning.
///
/// `sha2` 0.10's `Sha256` has no `zeroize` support: dropping it leaves the
/// chaining value and the last partial block (here `beforenm` and the
/// password) in memory. So the message blocks are assembled in a buffer of
/// our own and fed to `sha2`'s compression function, and the buffer and the
/// chaining value are zeroized; only the digest, which the caller keeps as
/// the key, survives. (What `compress256` itself leaves in registers or its
/// own stack frame is beyond our reach, as with any library.)
fn sha256_wiped(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::digest::generic_array::GenericArray;

    /// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
    const H0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let mut state = Zeroizing::new(H0);
    let mut block = Zeroizing::new([0u8; 64]);
    // `compress256` takes blocks as `GenericArray`s; this views our buffer
    // as one, without a copy.
    let compress = |state: &mut [u32; 8], block: &[u8; 64]| {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    };
    let mut used = 0usize;
    let mut total: u64 = 0;
    for part in parts {
        for &byte in *part {
            block[used] = byte;
            used += 1;
            if used == block.len() {
                compress(&mut state, &block);
                used = 0;
            }
        }
        total = total.wrapping_add(part.len() as u64);
    }
    // Padding: 0x80, zeros, then the message length in bits (big-endian)
    // in the last 8 bytes, spilling into one more block if needed.
    block[used] = 0x80;
    block[used + 1..].fill(0);
    if used + 1 > block.len() - 8 {
        compress(&mut state, &block);
        block.fill(0);
    }
    block[56..].copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
    compress(&mut state, &block);
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state.iter()) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

impl std::fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("public", &self.public.as_bytes())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq_bytes(start: u8) -> [u8; 32] {
        std::array::from_fn(|i| start + i as u8)
    }

    #[test]
    fn both_ends_agree() {
        let a = EphemeralKeyPair::from_private_bytes(seq_bytes(1));
        let b = EphemeralKeyPair::from_private_bytes(seq_bytes(0x80));
        let ka = a.session_key(&b.public_key(), b"pw").unwrap();
        let kb = b.session_key(&a.public_key(), b"pw").unwrap();
        assert_eq!(ka, kb);
        let other = a.session_key(&b.public_key(), b"other").unwrap();
        assert_ne!(ka, other);
    }

    #[test]
    fn bad_public_keys_are_errors() {
        let a = EphemeralKeyPair::from_private_bytes(seq_bytes(1));
        assert_eq!(
            a.session_key(&[9u8; 31], b"").unwrap_err(),
            CryptoError::BadPublicKeyLength(31)
        );
        assert_eq!(
            a.session_key(&[9u8; 33], b"").unwrap_err(),
            CryptoError::BadPublicKeyLength(33)
        );
        assert_eq!(
            a.session_key(&[], b"").unwrap_err(),
            CryptoError::BadPublicKeyLength(0)
        );
        // The identity (u = 0) and u = 1 are low-order points.
        assert_eq!(
            a.session_key(&[0u8; 32], b"").unwrap_err(),
            CryptoError::WeakPublicKey
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(
            a.session_key(&one, b"").unwrap_err(),
            CryptoError::WeakPublicKey
        );
    }

    #[test]
    fn generated_pairs_differ_and_agree() {
        let a = EphemeralKeyPair::generate_os();
        let b = EphemeralKeyPair::generate_os();
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(
            a.session_key(&b.public_key(), b"x").unwrap(),
            b.session_key(&a.public_key(), b"x").unwrap()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_peer_keys_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70)) {
            let a = EphemeralKeyPair::from_private_bytes(seq_bytes(1));
            let r = a.session_key(&bytes, b"pw");
            proptest::prop_assert!(bytes.len() == 32 || r == Err(CryptoError::BadPublicKeyLength(bytes.len())));
        }
    }

    #[test]
    fn wiped_sha256_is_sha256() {
        use sha2::{Digest, Sha256};
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        // Every split of every length up to 300 bytes crosses the 55/56/64
        // byte padding boundaries and block edges inside and between parts.
        for len in 0..=data.len() {
            let want: [u8; 32] = Sha256::digest(&data[..len]).into();
            for cut in [0, 1, 32, len / 2, len.saturating_sub(1), len] {
                let cut = cut.min(len);
                let got = sha256_wiped(&[&data[..cut], &data[cut..len]]);
                assert_eq!(got, want, "len {len} cut {cut}");
            }
        }
        assert_eq!(sha256_wiped(&[]), <[u8; 32]>::from(Sha256::digest(b"")));
    }

    #[test]
    fn session_key_is_sha256_of_beforenm_and_password() {
        use sha2::{Digest, Sha256};
        let a = EphemeralKeyPair::from_private_bytes(seq_bytes(1));
        let b = EphemeralKeyPair::from_private_bytes(seq_bytes(0x80));
        let shared = a.secret.diffie_hellman(&PublicKey::from(b.public_key()));
        let beforenm = hsalsa20(shared.as_bytes(), &[0u8; 16]);
        for password in [&b""[..], b"pw", &[0x55; 100][..]] {
            let mut h = Sha256::new();
            h.update(beforenm.as_slice());
            h.update(password);
            let want: [u8; 32] = h.finalize().into();
            let got = a.session_key(&b.public_key(), password).unwrap();
            assert_eq!(got.as_bytes(), &want);
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let k = SessionKey::from_bytes([0xab; 32]);
        let shown = format!("{k:?}");
        assert!(shown.contains("redacted") && !shown.contains("171"));
    }

    #[test]
    fn side_helpers() {
        assert_eq!(Side::from_outbound(true), Side::Outbound);
        assert_eq!(Side::from_outbound(false), Side::Inbound);
        assert_eq!(Side::Outbound.peer(), Side::Inbound);
        assert!(Side::Outbound.is_outbound());
        assert!(!Side::Inbound.is_outbound());
    }
}
