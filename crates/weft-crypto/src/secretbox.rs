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
//! CPU has it, else the `poly1305` crate); which of them runs is the
//! [`Backend`]'s choice. Where the tag goes is up to the caller (Weave puts
//! it in front of the ciphertext).
//!
//! Opening compares the received tag with the computed one in constant
//! time (`subtle::ConstantTimeEq` over the 16 bytes: every byte is compared
//! and the result folded without an early exit or a data-dependent branch
//! before the single accept/reject decision), and decrypts nothing unless
//! they match. The key, the Poly1305 key and every keystream block this
//! module holds are zeroized after use or on drop.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::backend::{default_engines, Backend, BackendError, Engines};
use crate::tcp::{NONCE_LEN, TAG_LEN};
use crate::xsalsa::{xor_into, Salsa20, BATCH_LEN, BLOCK_LEN};
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
    engines: Engines,
}

impl SecretBox {
    /// A secretbox for `key` on [`crate::default_backend`]: the fastest
    /// code this CPU runs, unless `WEFT_CRYPTO_BACKEND` forces another.
    pub fn new(key: &[u8; SECRETBOX_KEY_LEN]) -> SecretBox {
        SecretBox {
            key: *key,
            engines: default_engines(),
        }
    }

    /// A secretbox on a chosen [`Backend`], for tests, fuzzing and
    /// benchmarks. Refused, and never run, if this CPU lacks a feature the
    /// backend uses.
    pub fn with_backend(
        key: &[u8; SECRETBOX_KEY_LEN],
        backend: Backend,
    ) -> Result<SecretBox, BackendError> {
        Ok(SecretBox {
            key: *key,
            engines: backend.engines()?,
        })
    }

    /// A secretbox whose keystream uses a named implementation: `"scalar"`
    /// (portable), `"avx2"` or `"avx512"` (x86_64), with the `poly1305`
    /// crate's MAC; or `"ifma"`. `None` if the name is unknown or this CPU
    /// lacks the features. Kept for older callers; see
    /// [`SecretBox::with_backend`].
    pub fn with_implementation(key: &[u8; SECRETBOX_KEY_LEN], name: &str) -> Option<SecretBox> {
        let backend = name.parse().ok()?;
        SecretBox::with_backend(key, backend).ok()
    }

    /// The name of the keystream implementation this secretbox uses
    /// (`scalar`, `avx2` or `avx512`).
    pub fn implementation(&self) -> &'static str {
        self.engines.keystream.name()
    }

    /// The name of the Poly1305 implementation this secretbox uses
    /// (`poly1305-crate` or `avx512ifma`).
    pub fn mac_implementation(&self) -> &'static str {
        self.engines.mac.name()
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
        stream.xor_blocks(self.engines.keystream, next_block(head_len), rest);
        self.engines.mac.mac(&mac_key, buf)
    }

    /// Checks `tag` against the ciphertext in `buf` and, if it matches,
    /// decrypts `buf` in place. On [`CryptoError::DecryptFailed`] `buf` is
    /// left unchanged.
    ///
    /// The tag check is constant-time: `subtle::ConstantTimeEq` compares
    /// all 16 bytes whatever they hold, so the time taken does not tell a
    /// forger how many leading bytes of a guessed tag were right.
    pub fn open_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let stream = Salsa20::xsalsa20(&self.key, nonce);
        let mut first = [0u8; BATCH_LEN];
        let (mac_key, head_len) = self.first_chunk(&stream, buf.len(), &mut first);
        let expected = Zeroizing::new(self.engines.mac.mac(&mac_key, buf));
        if !bool::from(expected.ct_eq(tag)) {
            first.zeroize();
            return Err(CryptoError::DecryptFailed);
        }
        let (head, rest) = buf.split_at_mut(head_len);
        xor_into(head, &first[MAC_KEY_LEN..]);
        first.zeroize();
        stream.xor_blocks(self.engines.keystream, next_block(head_len), rest);
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
        let made = stream.fill(
            self.engines.keystream,
            0,
            MAC_KEY_LEN.saturating_add(msg_len),
            first,
        );
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

/// The Poly1305 tag exactly as [`SecretBox::new`]'s secretbox computes it
/// (NaCl's `crypto_onetimeauth` of `data` under the one-time `key`).
/// Exposed so the benchmark and the tests can check and time the MAC alone;
/// not a supported API.
#[doc(hidden)]
pub fn onetimeauth(key: &[u8; MAC_KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    default_engines().mac.mac(key, data)
}

/// [`onetimeauth`] on the Poly1305 code of a chosen backend (refused if
/// this CPU cannot run it). Not a supported API.
#[doc(hidden)]
pub fn onetimeauth_with(
    backend: Backend,
    key: &[u8; MAC_KEY_LEN],
    data: &[u8],
) -> Result<[u8; TAG_LEN], BackendError> {
    Ok(backend.engines()?.mac.mac(key, data))
}

/// The name of the Poly1305 implementation [`onetimeauth`] and
/// [`SecretBox::new`] use: `"avx512ifma"` or `"poly1305-crate"`.
#[doc(hidden)]
pub fn onetimeauth_implementation() -> &'static str {
    default_engines().mac.name()
}

/// XORs `data` with the XSalsa20 keystream of `key` and `nonce` starting at
/// block `counter` (NaCl's `crypto_stream_xsalsa20_xor_ic`), on a chosen
/// backend's keystream code. The secretbox's keystream, exposed for the
/// differential tests and the fuzzer; not a supported API.
#[doc(hidden)]
pub fn xsalsa20_xor_ic(
    backend: Backend,
    key: &[u8; SECRETBOX_KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    counter: u64,
    data: &mut [u8],
) -> Result<(), BackendError> {
    let engines = backend.engines()?;
    Salsa20::xsalsa20(key, nonce).xor_blocks(engines.keystream, counter, data);
    Ok(())
}

impl Drop for SecretBox {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("keystream", &self.engines.keystream.name())
            .field("mac", &self.engines.mac.name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_secretbox::aead::{AeadInPlace, KeyInit};
    use crypto_secretbox::XSalsa20Poly1305;
    use proptest::prelude::*;

    fn boxes(key: &[u8; 32]) -> Vec<(Backend, SecretBox)> {
        crate::available_backends()
            .into_iter()
            .filter_map(|b| Some((b, SecretBox::with_backend(key, b).ok()?)))
            .collect()
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
        for (b, sb) in boxes(key) {
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
        #![proptest_config(ProptestConfig::with_cases(48))]

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
            for (_, sb) in boxes(&key) {
                let mut buf = ct.clone();
                prop_assert!(sb.open_in_place_detached(&nonce, &mut buf, &tag).is_ok());
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
