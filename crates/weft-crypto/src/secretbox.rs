//! NaCl secretbox (XSalsa20-Poly1305) in place, with a detached tag.
//!
//! Byte for byte what NaCl's `crypto_secretbox` and Go's
//! `golang.org/x/crypto/nacl/secretbox` compute:
//!
//! ```text
//! subkey     = HSalsa20(key, nonce[0..16])
//! stream     = Salsa20(subkey, nonce[16..24]), block counter from 0
//! mac key    = stream[0..32]
//! ciphertext = plaintext XOR stream[32..]
//! tag        = Poly1305(mac key, ciphertext)
//! ```
//!
//! The keystream comes from the crate's `xsalsa` module (SIMD where the
//! CPU allows), Poly1305 from its `poly` module (AVX-512 IFMA where the
//! CPU has it, else the `poly1305` crate). Where the tag goes is
//! up to the caller (Weave puts it in front of the ciphertext).

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::tcp::{NONCE_LEN, TAG_LEN};
use crate::xsalsa::{xor_into, Backend, Salsa20, BATCH_LEN, BLOCK_LEN};
use crate::CryptoError;

/// Length of a secretbox key.
pub const SECRETBOX_KEY_LEN: usize = 32;

/// Offset of the message in the XSalsa20 stream: the first 32 bytes key
/// Poly1305.
const MAC_KEY_LEN: usize = 32;

/// A secretbox key. Seals and opens buffers in place; the key is zeroized
/// on drop.
///
/// ```
/// use weft_crypto::secretbox::SecretBox;
///
/// let sb = SecretBox::new(&[7u8; 32]);
/// let nonce = [1u8; 24];
/// let mut buf = *b"attack at dawn";
/// let tag = sb.seal_in_place_detached(&nonce, &mut buf);
/// assert_ne!(&buf, b"attack at dawn");
/// sb.open_in_place_detached(&nonce, &mut buf, &tag)?;
/// assert_eq!(&buf, b"attack at dawn");
/// # Ok::<(), weft_crypto::CryptoError>(())
/// ```
pub struct SecretBox {
    key: [u8; SECRETBOX_KEY_LEN],
    backend: Backend,
}

impl SecretBox {
    /// A secretbox for `key`, using the fastest keystream code this CPU runs.
    pub fn new(key: &[u8; SECRETBOX_KEY_LEN]) -> SecretBox {
        SecretBox::with_backend(key, Backend::detect())
    }

    /// A secretbox whose keystream uses a named implementation: `"scalar"`
    /// (portable), `"avx2"` or `"avx512"` (x86_64). `None` if the name is
    /// unknown or this CPU lacks the features. For benchmarks and tests;
    /// [`SecretBox::new`] picks the fastest one.
    pub fn with_implementation(key: &[u8; SECRETBOX_KEY_LEN], name: &str) -> Option<SecretBox> {
        Backend::by_name(name).map(|b| SecretBox::with_backend(key, b))
    }

    /// The name of the keystream implementation this secretbox uses.
    pub fn implementation(&self) -> &'static str {
        self.backend.name()
    }

    pub(crate) fn with_backend(key: &[u8; SECRETBOX_KEY_LEN], backend: Backend) -> SecretBox {
        SecretBox { key: *key, backend }
    }

    /// Encrypts `buf` in place and returns the tag over the ciphertext.
    /// `nonce` must never repeat under this key.
    pub fn seal_in_place_detached(&self, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let stream = Salsa20::xsalsa20(&self.key, nonce);
        let mut first = [0u8; BATCH_LEN];
        let (mac_key, head_len) = self.first_chunk(&stream, buf.len(), &mut first);
        let (head, rest) = buf.split_at_mut(head_len);
        xor_into(head, &first[MAC_KEY_LEN..]);
        first.zeroize();
        stream.xor_blocks(self.backend, next_block(head_len), rest);
        poly1305_tag(&mac_key, buf)
    }

    /// Checks `tag` against the ciphertext in `buf` and, if it matches,
    /// decrypts `buf` in place. On [`CryptoError::DecryptFailed`] `buf` is
    /// left unchanged.
    pub fn open_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let stream = Salsa20::xsalsa20(&self.key, nonce);
        let mut first = [0u8; BATCH_LEN];
        let (mac_key, head_len) = self.first_chunk(&stream, buf.len(), &mut first);
        let expected = poly1305_tag(&mac_key, buf);
        if !bool::from(expected.ct_eq(tag)) {
            first.zeroize();
            return Err(CryptoError::DecryptFailed);
        }
        let (head, rest) = buf.split_at_mut(head_len);
        xor_into(head, &first[MAC_KEY_LEN..]);
        first.zeroize();
        stream.xor_blocks(self.backend, next_block(head_len), rest);
        Ok(())
    }

    /// Computes the first keystream chunk (at least block 0) into `first`.
    /// Returns the Poly1305 key and how many message bytes the rest of the
    /// chunk covers.
    fn first_chunk(
        &self,
        stream: &Salsa20,
        msg_len: usize,
        first: &mut [u8; BATCH_LEN],
    ) -> (Zeroizing<[u8; MAC_KEY_LEN]>, usize) {
        let made = stream.fill(self.backend, 0, MAC_KEY_LEN.saturating_add(msg_len), first);
        let mut mac_key = Zeroizing::new([0u8; MAC_KEY_LEN]);
        mac_key.copy_from_slice(&first[..MAC_KEY_LEN]);
        (mac_key, msg_len.min(made - MAC_KEY_LEN))
    }
}

/// The block counter at which the message continues after its first
/// `head_len` bytes, when those ended the first chunk (a whole number of
/// blocks, since the chunk did).
fn next_block(head_len: usize) -> u64 {
    ((MAC_KEY_LEN + head_len) / BLOCK_LEN) as u64
}

/// Poly1305 over `data` without padding of the last block (secretbox's
/// variant, NaCl's `crypto_onetimeauth`): the crate's IFMA code where the
/// CPU has it, the `poly1305` crate otherwise.
fn poly1305_tag(key: &[u8; MAC_KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    crate::poly::poly1305(key, data)
}

/// The Poly1305 tag exactly as [`SecretBox`] computes it (NaCl's
/// `crypto_onetimeauth` of `data` under the one-time `key`). Exposed so the
/// benchmark can time the MAC alone; not a supported API.
#[doc(hidden)]
pub fn onetimeauth(key: &[u8; MAC_KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    poly1305_tag(key, data)
}

/// The name of the Poly1305 implementation [`onetimeauth`] and
/// [`SecretBox`] use on this CPU: `"avx512ifma"` or `"poly1305-crate"`.
#[doc(hidden)]
pub fn onetimeauth_implementation() -> &'static str {
    crate::poly::Engine::detect().name()
}

impl Drop for SecretBox {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_secretbox::aead::{AeadInPlace, KeyInit};
    use crypto_secretbox::XSalsa20Poly1305;
    use proptest::prelude::*;

    fn backends() -> Vec<Backend> {
        Backend::all()
    }

    fn reference_seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
        XSalsa20Poly1305::new(key.into())
            .encrypt_in_place_detached(nonce.into(), &[], buf)
            .map(Into::into)
            .unwrap_or_else(|e| panic!("reference seal: {e}"))
    }

    /// Seals with every backend and checks each against the reference, then
    /// opens the reference's box with every backend; and checks that a bad
    /// tag or ciphertext is refused without touching the buffer.
    fn check_all(key: &[u8; 32], nonce: &[u8; 24], msg: &[u8]) -> Result<(), TestCaseError> {
        let mut want = msg.to_vec();
        let want_tag = reference_seal(key, nonce, &mut want);
        for b in backends() {
            let sb = SecretBox::with_backend(key, b);
            let mut got = msg.to_vec();
            let tag = sb.seal_in_place_detached(nonce, &mut got);
            prop_assert_eq!(tag, want_tag, "{} len {}", b.name(), msg.len());
            prop_assert!(
                got == want,
                "{} len {}: ciphertext differs",
                b.name(),
                msg.len()
            );

            prop_assert!(sb.open_in_place_detached(nonce, &mut got, &tag).is_ok());
            prop_assert!(got == msg, "{} len {}: round trip", b.name(), msg.len());

            let mut bad_tag = want_tag;
            bad_tag[msg.len() % TAG_LEN] ^= 0x10;
            let mut ct = want.clone();
            prop_assert_eq!(
                sb.open_in_place_detached(nonce, &mut ct, &bad_tag),
                Err(CryptoError::DecryptFailed)
            );
            prop_assert!(ct == want, "{}: buffer changed on failure", b.name());
            if !ct.is_empty() {
                let at = (msg.len() * 7 + 3) % ct.len();
                ct[at] ^= 1;
                prop_assert_eq!(
                    sb.open_in_place_detached(nonce, &mut ct, &want_tag),
                    Err(CryptoError::DecryptFailed)
                );
                ct[at] ^= 1;
                prop_assert!(ct == want);
            }
        }
        Ok(())
    }

    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn every_small_length() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce: [u8; 24] = std::array::from_fn(|i| 0x80 | i as u8);
        for len in 0..=1100 {
            if let Err(e) = check_all(&key, &nonce, &message(len, 5)) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn lengths_at_chunk_boundaries_up_to_64k() {
        let key = [0xc3u8; 32];
        let nonce = [0x5au8; 24];
        let mut lens = vec![65_535 - 30, 65_535, 65_536, 70_000];
        for base in [4096usize, 8192, 32_768, 65_536 - 512] {
            for d in [-33i64, -32, -31, -1, 0, 1, 31, 32, 33, 480, 481] {
                lens.push((base as i64 + d) as usize);
            }
        }
        for len in lens {
            if let Err(e) = check_all(&key, &nonce, &message(len, 9)) {
                panic!("{e}");
            }
        }
    }

    /// Lengths anywhere up to 70000, and near multiples of 64 and 512 (the
    /// message starts 32 bytes into the stream, so both `k * unit` and
    /// `k * unit - 32` are boundaries).
    fn length_strategy() -> impl Strategy<Value = usize> {
        let near = |unit: usize| {
            (0usize..=(70_000 / unit), -40i64..=40)
                .prop_map(move |(k, d)| ((k * unit) as i64 + d).clamp(0, 70_000) as usize)
        };
        prop_oneof![0usize..=70_000, 0usize..2048, near(64), near(512)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn matches_crypto_secretbox(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
                                    len in length_strategy(), seed in any::<u8>()) {
            check_all(&key, &nonce, &message(len, seed))?;
        }

        #[test]
        fn opens_what_crypto_secretbox_seals(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
                                             msg in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut ct = msg.clone();
            let tag = reference_seal(&key, &nonce, &mut ct);
            for b in backends() {
                let mut buf = ct.clone();
                prop_assert!(SecretBox::with_backend(&key, b).open_in_place_detached(&nonce, &mut buf, &tag).is_ok());
                prop_assert_eq!(&buf, &msg);
            }
        }

        #[test]
        fn any_tag_flip_is_refused(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
                                   msg in proptest::collection::vec(any::<u8>(), 0..600),
                                   byte in 0usize..16, bit in 0u8..8) {
            let sb = SecretBox::new(&key);
            let mut ct = msg.clone();
            let mut tag = sb.seal_in_place_detached(&nonce, &mut ct);
            tag[byte] ^= 1 << bit;
            let before = ct.clone();
            prop_assert_eq!(sb.open_in_place_detached(&nonce, &mut ct, &tag), Err(CryptoError::DecryptFailed));
            prop_assert_eq!(ct, before);
        }
    }
}
