//! Key derivation for fastdp IPsec (ESP, `rfc4106(gcm(aes))`).
//!
//! The receiver of a flow picks a random 32-byte nonce and derives
//! `key36 = HKDF-SHA256(ikm = K, salt = nonce, info = BE64(peer name))`,
//! where the peer name is the receiver's own name; the sender derives the
//! same key from the nonce it receives in `CryptoInitSARemote`. The first 32
//! bytes are the AES-256 key, the last 4 the GCM salt.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

use crate::SessionKey;

/// Length of the random nonce carried in `CryptoInitSARemote`.
pub const IPSEC_NONCE_LEN: usize = 32;

/// Length of the derived key material (AES-256 key + 4-byte GCM salt).
pub const IPSEC_KEY_LEN: usize = 36;

/// Key material for one ESP security association. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct IpsecKey([u8; IPSEC_KEY_LEN]);

impl IpsecKey {
    /// All 36 bytes, in the order the kernel's `rfc4106(gcm(aes))` expects.
    pub fn as_bytes(&self) -> &[u8; IPSEC_KEY_LEN] {
        &self.0
    }

    /// The AES-256 key (first 32 bytes).
    pub fn aes_key(&self) -> &[u8] {
        &self.0[..32]
    }

    /// The GCM salt (last 4 bytes).
    pub fn salt(&self) -> &[u8] {
        &self.0[32..]
    }
}

impl Drop for IpsecKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for IpsecKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpsecKey(<redacted>)")
    }
}

/// Derives the ESP key for the SA of the flow received by `peer_name`
/// (the 48-bit peer name as an integer, e.g. `0x1234_5678_9abc` for
/// `12:34:56:78:9a:bc`).
pub fn derive_ipsec_key(
    session_key: &SessionKey,
    nonce: &[u8; IPSEC_NONCE_LEN],
    peer_name: u64,
) -> IpsecKey {
    let hk = Hkdf::<Sha256>::new(Some(nonce), session_key.as_bytes());
    let mut out = [0u8; IPSEC_KEY_LEN];
    // 36 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
    if hk.expand(&peer_name.to_be_bytes(), &mut out).is_err() {
        unreachable!("36 bytes is a valid HKDF-SHA256 output length");
    }
    IpsecKey(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_every_input() {
        let k = SessionKey::from_bytes([1; 32]);
        let base = derive_ipsec_key(&k, &[2; 32], 3);
        assert_ne!(
            base,
            derive_ipsec_key(&SessionKey::from_bytes([9; 32]), &[2; 32], 3)
        );
        assert_ne!(base, derive_ipsec_key(&k, &[9; 32], 3));
        assert_ne!(base, derive_ipsec_key(&k, &[2; 32], 9));
        assert_eq!(base, derive_ipsec_key(&k, &[2; 32], 3));
        assert_eq!(base.aes_key().len() + base.salt().len(), IPSEC_KEY_LEN);
        assert!(format!("{base:?}").contains("redacted"));
    }
}
