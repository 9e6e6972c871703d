//! Encryption of sleeve (userspace UDP overlay) packets.
//!
//! An encrypted sleeve packet is
//!
//! ```text
//! offset 0   6 bytes  sender peer name (clear; picks the connection)
//! offset 6   8 bytes  u64 BE: bit 63 = DF stream, bits 0..63 = sequence number (clear)
//! offset 14  16 bytes Poly1305 tag              \ secretbox over the frame list
//! offset 30  ...      XSalsa20 ciphertext       /
//! ```
//!
//! keyed by the connection's TCP session key, with the nonce
//! `byte0 = 0x80 if the sender dialled the connection (bit 6 clear: UDP),
//! bytes 1..16 = 0, bytes 16..24 = the 8-byte seq/DF field as sent`.
//!
//! The DF and non-DF streams have separate counters at the sender (one
//! [`SleeveEncryptor`] each) and separate replay windows at the receiver
//! (both inside one [`SleeveDecryptor`]). Replays and packets older than
//! the previous 2^20-wide window are dropped silently; authentication
//! failures are errors, but neither closes the connection.
//!
//! Everything works in place on a caller buffer; nothing allocates per
//! packet. Each decryptor allocates its four 128 KiB bitmaps once.

use crate::secretbox::SecretBox;
use crate::tcp::{NONCE_LEN, NONCE_OUTBOUND_BIT, TAG_LEN};
use crate::{CryptoError, SessionKey, Side};

/// Length of a peer name on the wire.
pub const PEER_NAME_LEN: usize = 6;

/// Clear header: sender name plus seq/DF field.
pub const SLEEVE_CLEAR_HEADER_LEN: usize = PEER_NAME_LEN + 8;

/// Bytes an encrypted packet adds in front of the frame list (6 + 8 + 16).
pub const SLEEVE_OVERHEAD: usize = SLEEVE_CLEAR_HEADER_LEN + TAG_LEN;

/// Largest sleeve packet accepted (the largest UDP payload length field).
pub const MAX_SLEEVE_PACKET_LEN: usize = 65_535;

/// Bit 63 of the seq/DF field: the packet belongs to the DF stream.
const DF_FLAG: u64 = 1 << 63;

/// log2 of the replay window width (Weave's `WindowSize = 20`).
pub const REPLAY_WINDOW_BITS: u32 = 20;

/// Which of the two sequence-number streams a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SleeveStream {
    /// Packets sent without the IP DF bit (shared UDP socket).
    NonDf,
    /// Packets sent with DF (heartbeats, PMTU probes, DF frames).
    Df,
}

impl SleeveStream {
    fn index(self) -> usize {
        match self {
            SleeveStream::NonDf => 0,
            SleeveStream::Df => 1,
        }
    }
}

/// The clear part of an encrypted sleeve packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleeveHeader {
    /// Name of the peer that sent this UDP packet (this hop).
    pub sender: [u8; PEER_NAME_LEN],
    /// Stream the packet belongs to.
    pub stream: SleeveStream,
    /// Sequence number within that stream (63 bits).
    pub seq: u64,
}

impl SleeveHeader {
    /// Reads the clear header of an encrypted packet, e.g. to find the
    /// connection (by `sender`) whose [`SleeveDecryptor`] should open it.
    /// Fails if the packet cannot even hold the header and a tag.
    pub fn parse(packet: &[u8]) -> Result<SleeveHeader, CryptoError> {
        check_packet_len(packet.len())?;
        let mut sender = [0u8; PEER_NAME_LEN];
        sender.copy_from_slice(&packet[..PEER_NAME_LEN]);
        let mut field = [0u8; 8];
        field.copy_from_slice(&packet[PEER_NAME_LEN..SLEEVE_CLEAR_HEADER_LEN]);
        let field = u64::from_be_bytes(field);
        let stream = if field & DF_FLAG != 0 {
            SleeveStream::Df
        } else {
            SleeveStream::NonDf
        };
        Ok(SleeveHeader {
            sender,
            stream,
            seq: field & !DF_FLAG,
        })
    }

    /// The 8-byte seq/DF field as transmitted.
    pub fn seq_field(&self) -> u64 {
        seq_field(self.stream, self.seq)
    }
}

fn seq_field(stream: SleeveStream, seq: u64) -> u64 {
    match stream {
        SleeveStream::NonDf => seq,
        SleeveStream::Df => seq | DF_FLAG,
    }
}

fn check_packet_len(len: usize) -> Result<(), CryptoError> {
    if len < SLEEVE_OVERHEAD {
        return Err(CryptoError::TooShort {
            len,
            min: SLEEVE_OVERHEAD,
        });
    }
    if len > MAX_SLEEVE_PACKET_LEN {
        return Err(CryptoError::TooLong {
            len,
            max: MAX_SLEEVE_PACKET_LEN,
        });
    }
    Ok(())
}

/// The nonce of a sleeve packet sent by `sender` with the given seq/DF
/// field (as transmitted, DF flag included).
pub fn sleeve_nonce(sender: Side, seq_field: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    if sender.is_outbound() {
        nonce[0] = NONCE_OUTBOUND_BIT;
    }
    nonce[16..].copy_from_slice(&seq_field.to_be_bytes());
    nonce
}

/// Encrypts the packets of one stream (DF or non-DF) that this peer sends
/// on one connection.
pub struct SleeveEncryptor {
    cipher: SecretBox,
    local: Side,
    sender: [u8; PEER_NAME_LEN],
    stream: SleeveStream,
    /// Next sequence number; `None` once all 2^63 are used.
    next: Option<u64>,
}

impl SleeveEncryptor {
    /// An encryptor for packets sent by `local` (this peer's end of the TCP
    /// connection), stamped with `sender`, this peer's own name.
    pub fn new(
        key: &SessionKey,
        local: Side,
        sender: [u8; PEER_NAME_LEN],
        stream: SleeveStream,
    ) -> SleeveEncryptor {
        SleeveEncryptor {
            cipher: SecretBox::new(key.as_bytes()),
            local,
            sender,
            stream,
            next: Some(0),
        }
    }

    /// The stream this encryptor numbers.
    pub fn stream(&self) -> SleeveStream {
        self.stream
    }

    /// Sequence number of the next packet (`None` when exhausted).
    pub fn next_seq(&self) -> Option<u64> {
        self.next
    }

    /// Encrypts in place. On entry `packet` is
    /// `[SLEEVE_OVERHEAD bytes of room][frame list]`; on success it is the
    /// complete UDP payload. The sequence number advances on success only.
    pub fn seal_in_place(&mut self, packet: &mut [u8]) -> Result<(), CryptoError> {
        check_packet_len(packet.len())?;
        let seq = self.next.ok_or(CryptoError::CounterExhausted)?;
        let field = seq_field(self.stream, seq);
        let nonce = sleeve_nonce(self.local, field);
        let (header, body) = packet.split_at_mut(SLEEVE_OVERHEAD);
        let tag = self.cipher.seal_in_place_detached(&nonce, body);
        header[..PEER_NAME_LEN].copy_from_slice(&self.sender);
        header[PEER_NAME_LEN..SLEEVE_CLEAR_HEADER_LEN].copy_from_slice(&field.to_be_bytes());
        header[SLEEVE_CLEAR_HEADER_LEN..].copy_from_slice(&tag);
        self.next = Some(seq + 1).filter(|n| n & DF_FLAG == 0);
        Ok(())
    }

    /// Copies `frames` into `out` behind room for the header and encrypts
    /// there. Returns the packet length (`frames.len() + SLEEVE_OVERHEAD`).
    pub fn seal_into(&mut self, frames: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let len = frames.len().saturating_add(SLEEVE_OVERHEAD);
        if out.len() < len {
            return Err(CryptoError::TooShort {
                len: out.len(),
                min: len,
            });
        }
        out[SLEEVE_OVERHEAD..len].copy_from_slice(frames);
        self.seal_in_place(&mut out[..len])?;
        Ok(len)
    }
}

impl std::fmt::Debug for SleeveEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SleeveEncryptor")
            .field("local", &self.local)
            .field("sender", &self.sender)
            .field("stream", &self.stream)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Number of u64 words in one window bitmap (2^20 bits = 128 KiB).
const BITMAP_WORDS: usize = (1 << REPLAY_WINDOW_BITS) / 64;

/// Replay state of one stream: the current window of 2^20 sequence numbers
/// and the one before it, each with a bitmap of numbers already accepted.
pub(crate) struct ReplayWindow {
    /// Index (`seq >> 20`) of the current window.
    current: u64,
    /// Bitmap of the current window.
    used: Box<[u64]>,
    /// Bitmap of window `current - 1` (empty when there is none).
    previous: Box<[u64]>,
}

/// What the replay state says about a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Already seen, or older than the previous window: drop silently.
    Stale,
    /// In the previous window, not seen yet.
    Previous,
    /// In the current window, not seen yet.
    Current,
    /// One window ahead: slide by one.
    NextWindow,
    /// Two or more windows ahead: clear everything.
    FarAhead,
}

impl ReplayWindow {
    pub(crate) fn new() -> ReplayWindow {
        ReplayWindow {
            current: 0,
            used: vec![0u64; BITMAP_WORDS].into_boxed_slice(),
            previous: vec![0u64; BITMAP_WORDS].into_boxed_slice(),
        }
    }

    fn split(seq: u64) -> (u64, usize, u64) {
        let window = seq >> REPLAY_WINDOW_BITS;
        let offset = (seq & ((1 << REPLAY_WINDOW_BITS) - 1)) as usize;
        (window, offset / 64, 1u64 << (offset % 64))
    }

    fn classify(&self, seq: u64) -> Slot {
        let (window, word, bit) = Self::split(seq);
        if window == self.current {
            if self.used[word] & bit != 0 {
                Slot::Stale
            } else {
                Slot::Current
            }
        } else if window > self.current {
            if window == self.current + 1 {
                Slot::NextWindow
            } else {
                Slot::FarAhead
            }
        } else if window + 1 == self.current && self.previous[word] & bit == 0 {
            Slot::Previous
        } else {
            Slot::Stale
        }
    }

    /// True if `seq` would be accepted (not a duplicate, not too old).
    pub(crate) fn is_fresh(&self, seq: u64) -> bool {
        self.classify(seq) != Slot::Stale
    }

    /// Records `seq` as accepted, sliding the windows if needed. Returns
    /// false (and changes nothing) if `seq` is a duplicate or too old.
    pub(crate) fn accept(&mut self, seq: u64) -> bool {
        let (window, word, bit) = Self::split(seq);
        match self.classify(seq) {
            Slot::Stale => return false,
            Slot::Previous => self.previous[word] |= bit,
            Slot::Current => self.used[word] |= bit,
            Slot::NextWindow => {
                std::mem::swap(&mut self.used, &mut self.previous);
                self.used.fill(0);
                self.current = window;
                self.used[word] |= bit;
            }
            Slot::FarAhead => {
                self.previous.fill(0);
                self.used.fill(0);
                self.current = window;
                self.used[word] |= bit;
            }
        }
        true
    }
}

/// Decrypts the sleeve packets this peer receives on one connection, for
/// both streams, with replay protection.
pub struct SleeveDecryptor {
    cipher: SecretBox,
    /// The side that sends what we decrypt: the peer's.
    remote: Side,
    windows: [ReplayWindow; 2],
}

impl SleeveDecryptor {
    /// A decryptor for packets received by `local`, this peer's end of the
    /// TCP connection. Allocates the replay bitmaps (4 × 128 KiB).
    pub fn new(key: &SessionKey, local: Side) -> SleeveDecryptor {
        SleeveDecryptor {
            cipher: SecretBox::new(key.as_bytes()),
            remote: local.peer(),
            windows: [ReplayWindow::new(), ReplayWindow::new()],
        }
    }

    /// Decrypts `packet` (the whole UDP payload) in place.
    ///
    /// * `Ok(Some(frames))`: authentic and new; `frames` is the decrypted
    ///   frame list, `packet[SLEEVE_OVERHEAD..]`.
    /// * `Ok(None)`: authentic but a replay or older than the previous
    ///   window; drop it silently. (Its bytes have been decrypted in place.)
    /// * `Err(_)`: too short/long or not authentic; the replay state is
    ///   untouched and the buffer unchanged. Drop the packet, keep the
    ///   connection.
    ///
    /// The clear sender name is not checked here: the caller chose this
    /// decryptor by it.
    pub fn open_in_place<'a>(
        &mut self,
        packet: &'a mut [u8],
    ) -> Result<Option<&'a mut [u8]>, CryptoError> {
        let header = SleeveHeader::parse(packet)?;
        let nonce = sleeve_nonce(self.remote, header.seq_field());
        let (head, body) = packet.split_at_mut(SLEEVE_OVERHEAD);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&head[SLEEVE_CLEAR_HEADER_LEN..]);
        self.cipher.open_in_place_detached(&nonce, body, &tag)?;
        if self.windows[header.stream.index()].accept(header.seq) {
            Ok(Some(body))
        } else {
            Ok(None)
        }
    }

    /// True if a packet with this header would pass the replay check now.
    /// Lets a caller skip decrypting obvious replays; `open_in_place` does
    /// the authoritative check.
    pub fn is_fresh(&self, header: &SleeveHeader) -> bool {
        self.windows[header.stream.index()].is_fresh(header.seq)
    }
}

impl std::fmt::Debug for SleeveDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SleeveDecryptor")
            .field("remote", &self.remote)
            .field("non_df_window", &self.windows[0].current)
            .field("df_window", &self.windows[1].current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const NAME: [u8; 6] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];
    const W: u64 = 1 << REPLAY_WINDOW_BITS;

    fn key() -> SessionKey {
        SessionKey::from_bytes([3u8; 32])
    }

    fn seal(e: &mut SleeveEncryptor, frames: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; frames.len() + SLEEVE_OVERHEAD];
        e.seal_into(frames, &mut out).unwrap();
        out
    }

    fn seal_at(sender: Side, stream: SleeveStream, seq: u64, frames: &[u8]) -> Vec<u8> {
        let mut e = SleeveEncryptor::new(&key(), sender, NAME, stream);
        e.next = Some(seq);
        seal(&mut e, frames)
    }

    #[test]
    fn header_and_nonce_layout() {
        let p = seal_at(Side::Outbound, SleeveStream::Df, 5, b"abc");
        assert_eq!(&p[..6], &NAME);
        assert_eq!(&p[6..14], &[0x80, 0, 0, 0, 0, 0, 0, 5]);
        let h = SleeveHeader::parse(&p).unwrap();
        assert_eq!(
            h,
            SleeveHeader {
                sender: NAME,
                stream: SleeveStream::Df,
                seq: 5
            }
        );
        let n = sleeve_nonce(Side::Outbound, h.seq_field());
        assert_eq!(n[0], 0x80);
        assert_eq!(n[16], 0x80);
        assert_eq!(n[23], 5);
        assert_eq!(sleeve_nonce(Side::Inbound, 0), [0u8; 24]);
    }

    #[test]
    fn round_trip_both_streams_both_sides() {
        for sender in [Side::Outbound, Side::Inbound] {
            let mut d = SleeveDecryptor::new(&key(), sender.peer());
            let mut nondf = SleeveEncryptor::new(&key(), sender, NAME, SleeveStream::NonDf);
            let mut df = SleeveEncryptor::new(&key(), sender, NAME, SleeveStream::Df);
            for i in 0..4u8 {
                let mut a = seal(&mut nondf, &[i; 10]);
                let mut b = seal(&mut df, &[i + 100; 7]);
                assert_eq!(d.open_in_place(&mut a).unwrap().unwrap(), &[i; 10]);
                assert_eq!(d.open_in_place(&mut b).unwrap().unwrap(), &[i + 100; 7]);
            }
            // Wrong polarity: the sender's own side cannot open its packets.
            let mut wrong = SleeveDecryptor::new(&key(), sender);
            let mut p = seal_at(sender, SleeveStream::NonDf, 0, b"x");
            assert_eq!(
                wrong.open_in_place(&mut p).unwrap_err(),
                CryptoError::DecryptFailed
            );
        }
    }

    #[test]
    fn replay_is_silent_and_tamper_is_error() {
        let mut d = SleeveDecryptor::new(&key(), Side::Inbound);
        let p = seal_at(Side::Outbound, SleeveStream::NonDf, 9, b"frame");
        assert!(d.open_in_place(&mut p.clone()).unwrap().is_some());
        assert!(d.open_in_place(&mut p.clone()).unwrap().is_none());
        // Changing the clear seq field breaks authentication (it is in the nonce).
        let mut moved = p.clone();
        moved[13] = 10;
        assert_eq!(
            d.open_in_place(&mut moved).unwrap_err(),
            CryptoError::DecryptFailed
        );
        // Flipping the DF bit too.
        let mut flipped = p.clone();
        flipped[6] ^= 0x80;
        assert_eq!(
            d.open_in_place(&mut flipped).unwrap_err(),
            CryptoError::DecryptFailed
        );
        // A failed packet does not consume its sequence number.
        let good = seal_at(Side::Outbound, SleeveStream::NonDf, 11, b"y");
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        let before = bad.clone();
        assert!(d.open_in_place(&mut bad).is_err());
        assert_eq!(bad, before);
        assert!(d.open_in_place(&mut good.clone()).unwrap().is_some());
    }

    #[test]
    fn streams_have_separate_windows() {
        let mut d = SleeveDecryptor::new(&key(), Side::Outbound);
        let a = seal_at(Side::Inbound, SleeveStream::NonDf, 0, b"a");
        let b = seal_at(Side::Inbound, SleeveStream::Df, 0, b"b");
        assert!(d.open_in_place(&mut a.clone()).unwrap().is_some());
        assert!(d.open_in_place(&mut b.clone()).unwrap().is_some());
        let far = seal_at(Side::Inbound, SleeveStream::Df, 5 * W, b"c");
        assert!(d.open_in_place(&mut far.clone()).unwrap().is_some());
        // The DF window moved far ahead; the non-DF one did not.
        let a1 = seal_at(Side::Inbound, SleeveStream::NonDf, 1, b"a");
        assert!(d.open_in_place(&mut a1.clone()).unwrap().is_some());
        let b1 = seal_at(Side::Inbound, SleeveStream::Df, 1, b"b");
        assert!(d.open_in_place(&mut b1.clone()).unwrap().is_none());
    }

    #[test]
    fn short_and_long_packets_are_errors() {
        let mut d = SleeveDecryptor::new(&key(), Side::Inbound);
        let mut e = SleeveEncryptor::new(&key(), Side::Outbound, NAME, SleeveStream::NonDf);
        for len in 0..SLEEVE_OVERHEAD {
            let mut b = vec![0u8; len];
            let want = CryptoError::TooShort {
                len,
                min: SLEEVE_OVERHEAD,
            };
            assert_eq!(d.open_in_place(&mut b).unwrap_err(), want);
            assert_eq!(SleeveHeader::parse(&b).unwrap_err(), want);
            assert_eq!(e.seal_in_place(&mut b).unwrap_err(), want);
        }
        let mut big = vec![0u8; MAX_SLEEVE_PACKET_LEN + 1];
        assert!(matches!(
            d.open_in_place(&mut big),
            Err(CryptoError::TooLong { .. })
        ));
        assert!(matches!(
            e.seal_in_place(&mut big),
            Err(CryptoError::TooLong { .. })
        ));
        assert!(matches!(
            e.seal_into(b"abc", &mut [0u8; 32]),
            Err(CryptoError::TooShort { len: 32, min: 33 })
        ));
        assert_eq!(e.next_seq(), Some(0));
        // Exactly the overhead: an empty frame list, authentic.
        let mut empty = seal(&mut e, b"");
        assert_eq!(empty.len(), SLEEVE_OVERHEAD);
        assert_eq!(d.open_in_place(&mut empty).unwrap().unwrap(), b"");
    }

    #[test]
    fn sequence_exhaustion() {
        let mut e = SleeveEncryptor::new(&key(), Side::Outbound, NAME, SleeveStream::Df);
        e.next = Some(DF_FLAG - 1);
        let p = seal(&mut e, b"z");
        assert_eq!(&p[6..14], &[0xff; 8]);
        assert_eq!(e.next_seq(), None);
        let mut b = vec![0u8; SLEEVE_OVERHEAD];
        assert_eq!(
            e.seal_in_place(&mut b).unwrap_err(),
            CryptoError::CounterExhausted
        );
        let mut d = SleeveDecryptor::new(&key(), Side::Inbound);
        assert_eq!(d.open_in_place(&mut p.clone()).unwrap().unwrap(), b"z");
    }

    #[test]
    fn window_sliding_rules() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(W - 1));
        // One window up: window 0 becomes "previous".
        assert!(w.accept(W + 5));
        assert!(!w.accept(0));
        assert!(!w.accept(W - 1));
        assert!(w.accept(7));
        assert!(!w.accept(7));
        // Two windows up from 1: previous is window 2, window 1 is too old.
        assert!(w.accept(3 * W));
        assert!(!w.accept(W + 6));
        assert!(w.accept(2 * W + 6));
        // Far ahead: everything cleared, window n-1 accepted again.
        assert!(w.accept(10 * W + 1));
        assert!(w.accept(9 * W));
        assert!(!w.accept(8 * W + 3));
        assert!(!w.accept(3 * W));
        // Largest possible sequence number.
        assert!(w.accept(DF_FLAG - 1));
        assert!(!w.accept(DF_FLAG - 1));
    }

    /// A model of the replay rules: a set of accepted numbers plus the
    /// highest window seen; accept iff not seen and window >= highest - 1.
    struct Model {
        seen: HashSet<u64>,
        current: u64,
    }

    impl Model {
        fn accept(&mut self, seq: u64) -> bool {
            let window = seq / W;
            if window + 1 < self.current || self.seen.contains(&seq) {
                return false;
            }
            self.current = self.current.max(window);
            self.seen.insert(seq);
            true
        }
    }

    fn seq_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..64,
            (0u64..4).prop_flat_map(|w| (w * W)..(w * W + 64)),
            (0u64..4).prop_flat_map(|w| ((w + 1) * W - 64)..((w + 1) * W)),
            0u64..(6 * W),
        ]
    }

    proptest! {
        #[test]
        fn window_matches_model(seqs in proptest::collection::vec(seq_strategy(), 1..200)) {
            let mut w = ReplayWindow::new();
            let mut m = Model { seen: HashSet::new(), current: 0 };
            for s in seqs {
                let fresh = w.is_fresh(s);
                let got = w.accept(s);
                prop_assert_eq!(fresh, got);
                prop_assert_eq!(got, m.accept(s), "seq {}", s);
            }
        }

        #[test]
        fn decryptor_matches_model(ops in proptest::collection::vec((any::<bool>(), seq_strategy(), any::<bool>()), 1..60)) {
            let mut d = SleeveDecryptor::new(&key(), Side::Inbound);
            let mut models = [
                Model { seen: HashSet::new(), current: 0 },
                Model { seen: HashSet::new(), current: 0 },
            ];
            for (df, seq, tamper) in ops {
                let stream = if df { SleeveStream::Df } else { SleeveStream::NonDf };
                let frames = seq.to_le_bytes();
                let mut p = seal_at(Side::Outbound, stream, seq, &frames);
                if tamper {
                    p[SLEEVE_OVERHEAD] ^= 0x40;
                    prop_assert_eq!(d.open_in_place(&mut p), Err(CryptoError::DecryptFailed));
                    continue;
                }
                let expect = models[stream.index()].accept(seq);
                match d.open_in_place(&mut p).unwrap() {
                    Some(f) => { prop_assert!(expect); prop_assert_eq!(&*f, &frames[..]); }
                    None => prop_assert!(!expect),
                }
            }
        }

        #[test]
        fn in_order_stream_round_trips(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..30)) {
            let mut e = SleeveEncryptor::new(&key(), Side::Inbound, NAME, SleeveStream::NonDf);
            let mut d = SleeveDecryptor::new(&key(), Side::Outbound);
            for (i, f) in frames.iter().enumerate() {
                let mut p = seal(&mut e, f);
                let replay = p.clone();
                prop_assert_eq!(SleeveHeader::parse(&p).unwrap().seq, i as u64);
                prop_assert_eq!(&*d.open_in_place(&mut p).unwrap().unwrap(), &f[..]);
                let mut replay = replay;
                prop_assert_eq!(d.open_in_place(&mut replay), Ok(None));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut d = SleeveDecryptor::new(&key(), Side::Inbound);
            let mut b = bytes.clone();
            prop_assert!(d.open_in_place(&mut b).is_err());
            let _ = SleeveHeader::parse(&bytes);
        }
    }
}
