//! Sealing of the mesh TCP stream (after the V2 handshake).
//!
//! Every length-prefixed message body is an NaCl secretbox
//! (XSalsa20-Poly1305) in Go's layout: the 16-byte Poly1305 tag, then the
//! ciphertext. The 24-byte nonce is
//!
//! ```text
//! byte 0      : bit 7 = sender dialled the connection, bit 6 = 1 (TCP)
//! bytes 1..16 : zero
//! bytes 16..24: big-endian message counter, from 0
//! ```
//!
//! Each direction of a connection has one [`TcpSealer`] at the sender and one
//! [`TcpOpener`] at the receiver; their counters move in step. Any loss,
//! reordering or replay makes [`TcpOpener::open_in_place`] fail, after which
//! the caller must close the connection.
//!
//! Both work in place on a caller-provided buffer and never allocate.

use crate::secretbox::SecretBox;
use crate::{CryptoError, SessionKey, Side};

/// Length of the Poly1305 tag that precedes every ciphertext.
pub const TAG_LEN: usize = 16;

/// Length of an XSalsa20 nonce.
pub const NONCE_LEN: usize = 24;

/// Largest accepted TCP message body (Weave's `maxTCPMsgSize`, 10 MiB). For
/// an encrypted connection this bounds the *sealed* length (tag included).
pub const MAX_TCP_MSG_LEN: usize = 10 * 1024 * 1024;

/// Nonce byte-0 bit meaning "the sender is the dialling side".
pub(crate) const NONCE_OUTBOUND_BIT: u8 = 0x80;
/// Nonce byte-0 bit meaning "TCP stream" (never set on sleeve packets).
const NONCE_TCP_BIT: u8 = 0x40;

/// The nonce of TCP message number `counter` sent by the `sender` side.
pub fn tcp_nonce(sender: Side, counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = NONCE_TCP_BIT
        | if sender.is_outbound() {
            NONCE_OUTBOUND_BIT
        } else {
            0
        };
    nonce[16..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// Seals the messages this peer sends on one connection.
pub struct TcpSealer {
    cipher: SecretBox,
    local: Side,
    /// Counter of the next message; `None` once all 2^64 are used.
    next: Option<u64>,
}

impl TcpSealer {
    /// A sealer for messages sent by `local`, this peer's end of the
    /// connection. The first message (the features) uses counter 0.
    pub fn new(key: &SessionKey, local: Side) -> TcpSealer {
        TcpSealer {
            cipher: SecretBox::new(key.as_bytes()),
            local,
            next: Some(0),
        }
    }

    /// Counter of the next message to be sealed (`None` when exhausted).
    pub fn counter(&self) -> Option<u64> {
        self.next
    }

    /// Seals in place. On entry `buf` is `[TAG_LEN bytes of room][plaintext]`;
    /// on success it holds the sealed message `[tag][ciphertext]`, ready to
    /// follow its u32 length prefix (`buf.len()`).
    pub fn seal_in_place(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::TooShort {
                len: buf.len(),
                min: TAG_LEN,
            });
        }
        if buf.len() > MAX_TCP_MSG_LEN {
            return Err(CryptoError::TooLong {
                len: buf.len(),
                max: MAX_TCP_MSG_LEN,
            });
        }
        let counter = self.next.ok_or(CryptoError::CounterExhausted)?;
        let nonce = tcp_nonce(self.local, counter);
        let (tag_room, body) = buf.split_at_mut(TAG_LEN);
        let tag = self.cipher.seal_in_place_detached(&nonce, body);
        tag_room.copy_from_slice(&tag);
        self.next = counter.checked_add(1);
        Ok(())
    }

    /// Copies `plaintext` into `out` and seals it there. Returns the sealed
    /// length (`plaintext.len() + TAG_LEN`); `out` may be longer.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let len = plaintext.len().saturating_add(TAG_LEN);
        if out.len() < len {
            return Err(CryptoError::TooShort {
                len: out.len(),
                min: len,
            });
        }
        out[TAG_LEN..len].copy_from_slice(plaintext);
        self.seal_in_place(&mut out[..len])?;
        Ok(len)
    }
}

impl std::fmt::Debug for TcpSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSealer")
            .field("local", &self.local)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Opens the messages this peer receives on one connection.
pub struct TcpOpener {
    cipher: SecretBox,
    /// The side that sends what we open: the peer's.
    remote: Side,
    /// Counter of the next message expected.
    next: Option<u64>,
}

impl TcpOpener {
    /// An opener for messages received by `local`, this peer's end of the
    /// connection (the nonces used are those of the other end).
    pub fn new(key: &SessionKey, local: Side) -> TcpOpener {
        TcpOpener {
            cipher: SecretBox::new(key.as_bytes()),
            remote: local.peer(),
            next: Some(0),
        }
    }

    /// Counter of the next message expected (`None` when exhausted).
    pub fn counter(&self) -> Option<u64> {
        self.next
    }

    /// Opens a sealed message body (`[tag][ciphertext]`, without the length
    /// prefix) in place and returns the plaintext, which is `sealed[TAG_LEN..]`.
    ///
    /// The counter advances only on success. On
    /// [`CryptoError::DecryptFailed`] the buffer is left unchanged and the
    /// stream is unusable: the caller must close the connection.
    pub fn open_in_place<'a>(&mut self, sealed: &'a mut [u8]) -> Result<&'a mut [u8], CryptoError> {
        if sealed.len() < TAG_LEN {
            return Err(CryptoError::TooShort {
                len: sealed.len(),
                min: TAG_LEN,
            });
        }
        if sealed.len() > MAX_TCP_MSG_LEN {
            return Err(CryptoError::TooLong {
                len: sealed.len(),
                max: MAX_TCP_MSG_LEN,
            });
        }
        let counter = self.next.ok_or(CryptoError::CounterExhausted)?;
        let nonce = tcp_nonce(self.remote, counter);
        let (tag_bytes, body) = sealed.split_at_mut(TAG_LEN);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        self.cipher.open_in_place_detached(&nonce, body, &tag)?;
        self.next = counter.checked_add(1);
        Ok(body)
    }
}

impl std::fmt::Debug for TcpOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpOpener")
            .field("remote", &self.remote)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SessionKey {
        SessionKey::from_bytes([7u8; 32])
    }

    fn pair(sender: Side) -> (TcpSealer, TcpOpener) {
        (
            TcpSealer::new(&key(), sender),
            TcpOpener::new(&key(), sender.peer()),
        )
    }

    fn seal(s: &mut TcpSealer, pt: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; pt.len() + TAG_LEN];
        assert_eq!(s.seal_into(pt, &mut out).unwrap(), out.len());
        out
    }

    #[test]
    fn nonce_layout() {
        let n = tcp_nonce(Side::Outbound, 0);
        assert_eq!(n[0], 0xc0);
        assert!(n[1..].iter().all(|&b| b == 0));
        let n = tcp_nonce(Side::Inbound, 0x0102_0304_0506_0708);
        assert_eq!(n[0], 0x40);
        assert!(n[1..16].iter().all(|&b| b == 0));
        assert_eq!(&n[16..], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn both_directions_are_independent() {
        for sender in [Side::Outbound, Side::Inbound] {
            let (mut s, mut o) = pair(sender);
            for i in 0..5u8 {
                let mut m = seal(&mut s, &[i; 3]);
                assert_eq!(o.open_in_place(&mut m).unwrap(), &[i; 3]);
            }
            // The same key with the wrong polarity cannot open.
            let mut wrong = TcpOpener::new(&key(), sender);
            let mut m = seal(&mut TcpSealer::new(&key(), sender), b"x");
            assert_eq!(
                wrong.open_in_place(&mut m).unwrap_err(),
                CryptoError::DecryptFailed
            );
        }
    }

    #[test]
    fn failure_does_not_advance_and_leaves_buffer() {
        let (mut s, mut o) = pair(Side::Outbound);
        let good = seal(&mut s, b"hello");
        let mut bad = good.clone();
        bad[TAG_LEN] ^= 1;
        let before = bad.clone();
        assert_eq!(
            o.open_in_place(&mut bad).unwrap_err(),
            CryptoError::DecryptFailed
        );
        assert_eq!(bad, before);
        assert_eq!(o.counter(), Some(0));
        let mut good = good;
        assert_eq!(o.open_in_place(&mut good).unwrap(), b"hello");
        assert_eq!(o.counter(), Some(1));
    }

    #[test]
    fn short_and_long_inputs_are_errors() {
        let (mut s, mut o) = pair(Side::Outbound);
        for len in 0..TAG_LEN {
            let mut b = vec![0u8; len];
            assert_eq!(
                o.open_in_place(&mut b).unwrap_err(),
                CryptoError::TooShort { len, min: TAG_LEN }
            );
            assert!(s.seal_in_place(&mut b).is_err());
        }
        let mut big = vec![0u8; MAX_TCP_MSG_LEN + 1];
        assert!(matches!(
            o.open_in_place(&mut big),
            Err(CryptoError::TooLong { .. })
        ));
        assert!(matches!(
            s.seal_in_place(&mut big),
            Err(CryptoError::TooLong { .. })
        ));
        let mut small_out = [0u8; 20];
        assert!(matches!(
            s.seal_into(&[0u8; 5], &mut small_out),
            Err(CryptoError::TooShort { len: 20, min: 21 })
        ));
        // None of these consumed a counter value.
        assert_eq!(s.counter(), Some(0));
        assert_eq!(o.counter(), Some(0));
        // An empty plaintext is fine (sealed = bare tag).
        let mut m = seal(&mut s, b"");
        assert_eq!(o.open_in_place(&mut m).unwrap(), b"");
    }

    #[test]
    fn counter_exhaustion() {
        let (mut s, mut o) = pair(Side::Inbound);
        s.next = Some(u64::MAX);
        o.next = Some(u64::MAX);
        let mut m = seal(&mut s, b"last");
        assert_eq!(s.counter(), None);
        assert_eq!(o.open_in_place(&mut m).unwrap(), b"last");
        assert_eq!(o.counter(), None);
        let mut b = [0u8; TAG_LEN + 1];
        assert_eq!(
            s.seal_in_place(&mut b).unwrap_err(),
            CryptoError::CounterExhausted
        );
        assert_eq!(
            o.open_in_place(&mut b).unwrap_err(),
            CryptoError::CounterExhausted
        );
    }

    proptest! {
        #[test]
        fn round_trip_many(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40),
                           outbound in any::<bool>()) {
            let (mut s, mut o) = pair(Side::from_outbound(outbound));
            for m in &msgs {
                let mut sealed = seal(&mut s, m);
                prop_assert_eq!(sealed.len(), m.len() + TAG_LEN);
                prop_assert_eq!(&*o.open_in_place(&mut sealed).unwrap(), &m[..]);
            }
            prop_assert_eq!(s.counter(), Some(msgs.len() as u64));
            prop_assert_eq!(o.counter(), Some(msgs.len() as u64));
        }

        #[test]
        fn reorder_or_replay_detected(n in 2usize..12, i in 0usize..12, j in 0usize..12) {
            let (i, j) = (i % n, j % n);
            prop_assume!(i != j);
            let (mut s, mut o) = pair(Side::Outbound);
            let sealed: Vec<Vec<u8>> = (0..n).map(|k| seal(&mut s, &[k as u8; 4])).collect();
            // Deliver messages 0..i in order, then j instead of i.
            for m in &sealed[..i] {
                o.open_in_place(&mut m.clone()).unwrap();
            }
            prop_assert_eq!(o.open_in_place(&mut sealed[j].clone()).unwrap_err(), CryptoError::DecryptFailed);
            // The stream is still positioned at i.
            let mut next = sealed[i].clone();
            prop_assert_eq!(&*o.open_in_place(&mut next).unwrap(), &[i as u8; 4]);
        }

        #[test]
        fn tampering_detected(pt in proptest::collection::vec(any::<u8>(), 0..200), pos in any::<usize>(), bit in 0u8..8) {
            let (mut s, mut o) = pair(Side::Inbound);
            let mut sealed = seal(&mut s, &pt);
            let pos = pos % sealed.len();
            sealed[pos] ^= 1 << bit;
            prop_assert_eq!(o.open_in_place(&mut sealed).unwrap_err(), CryptoError::DecryptFailed);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100), outbound in any::<bool>()) {
            let mut o = TcpOpener::new(&key(), Side::from_outbound(outbound));
            prop_assert!(o.open_in_place(&mut bytes.clone()).is_err());
            prop_assert_eq!(o.counter(), Some(0));
        }

        #[test]
        fn truncation_detected(pt in proptest::collection::vec(any::<u8>(), 1..200), cut in any::<usize>()) {
            let (mut s, mut o) = pair(Side::Outbound);
            let sealed = seal(&mut s, &pt);
            let cut = cut % sealed.len();
            let mut short = sealed[..cut].to_vec();
            prop_assert!(o.open_in_place(&mut short).is_err());
        }
    }
}
