//! weft's segmented sleeve datagrams: a weft-only extension used between two weft peers that
//! both announce it (feature `WeftSegments`, value `2/<first message id in hex>`).
//!
//! Weave sends a sleeve datagram of up to 64 KiB as one UDP datagram and lets the host stack
//! cut it into IP fragments (reference §4.5, `stackFrag`). Fragmenting and reassembling in
//! the kernel is most of the cost of a fast sleeve: every fragment is its own packet through
//! the underlay. Instead, a weft sender cuts the (already sealed) sleeve datagram into
//! *segments* that each fit the path MTU, and sends runs of equal-sized segments with one
//! UDP GSO `sendmsg`; the receiver gets them back, often still in one piece (UDP GRO), and
//! reassembles the datagram in user space. The datagram inside is byte for byte what Weave
//! would have sent, so encryption, replay windows and frame parsing are unchanged.
//!
//! ```text
//! 0   6  zero (no peer is named 00:00:00:00:00:00, so no Weave datagram starts so)
//! 6   1  version = 2
//! 7   1  segment count N (1..=MAX_SEGMENTS)
//! 8   1  this segment's index (0..N)
//! 9   1  flags: bit 0 = a 16-byte tag follows the header (encrypted links); others 0
//! 10  2  chunk length C (u16): every segment but the last carries exactly C bytes
//! 12  8  message id (u64): per link, sequential from the first id the sender announced
//! 20 16  tag (when flagged): Poly1305 of the chunk under a one-time key for (id, N, C, index)
//! ..  .. the chunk: bytes [index·C, index·C + len) of the datagram
//! ```
//!
//! # Reassembly and what a spoofer can do
//!
//! Segment headers travel in the clear and a UDP source address is easy to forge, so the
//! [`Reassembler`] is built so that segments from someone who is not the peer cannot cost the
//! peer's datagrams:
//!
//! * **Registered senders only.** The edge registers a sender per link (with the first id the
//!   peer announced over the TCP handshake and, on encrypted links, the segment MAC key);
//!   anything else is refused before it touches memory. Memory is bounded by
//!   senders × [`SLOTS`] × (64 KiB + 4 KiB of one-time keys), buffers are reused.
//! * **Id window.** Ids start at a random 64-bit value and go up by one per datagram. A new
//!   id is taken only if it lies at most [`WINDOW_AHEAD`] ahead of the highest id taken so far
//!   or at most [`WINDOW_BEHIND`] behind it; ids already completed (a bitmap of the last 64)
//!   are duplicates. A spoofer who does not see the traffic hits the window with probability
//!   2^24 / 2^64 per guess.
//! * **Slots, not newest-wins.** Up to [`SLOTS`] datagrams per sender are in progress at
//!   once. A new id takes a free slot, else a slot older than the timeout, else the slot with
//!   the *lowest* id if the new id is higher (the sender sends in id order, so the oldest
//!   unfinished datagram is the one that lost a segment); an id older than every slot is
//!   dropped. Only segments that passed the window (and the MAC) get this far.
//! * **MAC per segment on encrypted links.** Subkey per direction
//!   `SHA-256("weft segment MAC v2" ‖ sender side ‖ session key)`, an XSalsa20 stream per
//!   message under nonce `"wseg" ‖ id ‖ N ‖ C ‖ 0…` (a different key from the sleeve's and the
//!   TCP stream's, so no nonce is shared), and segment *i*'s Poly1305 key is the stream's
//!   bytes `[32 + 32i, 64 + 32i)`. The tag is checked before anything is stored, so a
//!   forged copy of a real segment (right id and index, seen on the path) is refused and the
//!   real one still counts ("first copy wins" is then safe).
//! * **Residual risk on clear links:** without a secret there is no MAC (Weave's kernel
//!   fragments have none either). Someone who sees the traffic can predict the ids and
//!   forge segments that spoil datagrams in progress — but that attacker can also forge
//!   whole sleeve datagrams. Blind spoofers only hit the window by chance (above).
//!
//! Pure: no sockets, no clock (`now` is passed in; [`Reassembler::expire`] frees slots older
//! than the timeout).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use weft_crypto::{SecretBox, SessionKey, Side, NONCE_LEN, TAG_LEN};

use crate::packet::MAX_UDP_PAYLOAD;

/// Bytes of the segment header without a tag.
pub const SEGMENT_HEADER_LEN: usize = 20;
/// Bytes of the segment header with its tag (encrypted links).
pub const TAGGED_HEADER_LEN: usize = SEGMENT_HEADER_LEN + TAG_LEN;
/// The only version this code speaks.
pub const SEGMENT_VERSION: u8 = 2;
/// Flag: a tag follows the header.
const FLAG_TAGGED: u8 = 1;
/// Most segments one datagram is cut into.
pub const MAX_SEGMENTS: usize = 128;
/// The feature weft peers announce in the handshake when they accept segmented datagrams.
pub const SEGMENTS_FEATURE: &str = "WeftSegments";
/// Smallest segment (UDP payload) the sender uses: below this the header costs too much and
/// a 64 KiB datagram would need more than [`MAX_SEGMENTS`].
pub const MIN_SEGMENT: usize = 552;
/// Most segments in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Datagrams in progress per sender.
pub const SLOTS: usize = 4;
/// How far ahead of the highest id taken a new id may be: datagrams lost whole in a row
/// before the receiver would stop following (far more than a link survives: its heartbeat
/// timeout ends it first).
pub const WINDOW_AHEAD: u64 = 1 << 24;
/// How far behind the highest id taken a new id may be (reordering); also the depth of the
/// record of completed ids.
pub const WINDOW_BEHIND: u64 = 63;
/// A datagram in progress longer than this is given up.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_millis(200);
/// Length of a one-time Poly1305 key.
const ONE_TIME_KEY_LEN: usize = 32;

/// The value of [`SEGMENTS_FEATURE`] announcing that our segmented datagrams on this
/// connection start at `first_id`.
pub fn feature_value(first_id: u64) -> String {
    format!("{SEGMENT_VERSION}/{first_id:016x}")
}

/// The first message id a peer announced in its [`SEGMENTS_FEATURE`] value; `None` when the
/// value is not this version's (the link then carries no segments).
pub fn parse_feature(value: &str) -> Option<u64> {
    let (version, id) = value.split_once('/')?;
    if version != SEGMENT_VERSION.to_string() || id.len() != 16 {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

/// Whether a UDP payload is a weft segment rather than a Weave sleeve datagram.
pub fn is_segment(payload: &[u8]) -> bool {
    payload.len() >= 6 && payload[..6] == [0u8; 6]
}

/// Header length with or without a tag.
pub fn header_len(tagged: bool) -> usize {
    if tagged {
        TAGGED_HEADER_LEN
    } else {
        SEGMENT_HEADER_LEN
    }
}

/// A segment that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown segment version {0} (this weft speaks {SEGMENT_VERSION})")]
    Version(u8),
    #[error("unknown segment flags {0:#04x}")]
    Flags(u8),
    #[error("segment index {index} of {count}")]
    Index { index: u8, count: u8 },
    #[error("chunk length 0")]
    ZeroChunk,
    #[error("segment carries {got} bytes where {want} are expected")]
    Length { got: usize, want: usize },
    #[error("message of {0} bytes is longer than a UDP datagram")]
    TooLong(usize),
    #[error("segment disagrees with the other segments of its message")]
    Inconsistent,
    #[error("segment from a sender that has no segmented link")]
    UnknownSender,
    #[error("untagged segment on an encrypted link")]
    Untagged,
    #[error("tagged segment on a link without encryption")]
    UnexpectedTag,
    #[error("segment tag does not match (forged or corrupted)")]
    BadTag,
    #[error("message id {id:#x} is outside the window around {highest:#x}")]
    OutOfWindow { id: u64, highest: u64 },
    #[error("message id {0:#x} is older than every datagram in progress")]
    Stale(u64),
}

impl SegmentError {
    /// A short name for counting drops by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SegmentError::UnknownSender => "unknown_sender",
            SegmentError::Untagged | SegmentError::BadTag => "segment_forged",
            SegmentError::OutOfWindow { .. } => "segment_out_of_window",
            SegmentError::Stale(_) => "segment_stale",
            _ => "segment_malformed",
        }
    }
}

/// A parsed segment header and its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub count: u8,
    pub index: u8,
    pub chunk_len: u16,
    pub msg_id: u64,
    pub tag: Option<[u8; TAG_LEN]>,
    pub chunk: &'a [u8],
}

impl<'a> Segment<'a> {
    /// Parse and check one segment on its own.
    pub fn parse(payload: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        if payload.len() < SEGMENT_HEADER_LEN || !is_segment(payload) {
            return Err(SegmentError::Short(payload.len()));
        }
        if payload[6] != SEGMENT_VERSION {
            return Err(SegmentError::Version(payload[6]));
        }
        let (count, index, flags) = (payload[7], payload[8], payload[9]);
        if flags & !FLAG_TAGGED != 0 {
            return Err(SegmentError::Flags(flags));
        }
        if count == 0 || index >= count || usize::from(count) > MAX_SEGMENTS {
            return Err(SegmentError::Index { index, count });
        }
        let chunk_len = u16::from_be_bytes([payload[10], payload[11]]);
        if chunk_len == 0 {
            return Err(SegmentError::ZeroChunk);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&payload[12..20]);
        let msg_id = u64::from_be_bytes(id);
        let tagged = flags & FLAG_TAGGED != 0;
        let hlen = header_len(tagged);
        if payload.len() < hlen {
            return Err(SegmentError::Short(payload.len()));
        }
        let tag = tagged.then(|| {
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(&payload[SEGMENT_HEADER_LEN..TAGGED_HEADER_LEN]);
            t
        });
        let chunk = &payload[hlen..];
        let c = usize::from(chunk_len);
        let last = index + 1 == count;
        if (!last && chunk.len() != c) || (last && (chunk.is_empty() || chunk.len() > c)) {
            return Err(SegmentError::Length {
                got: chunk.len(),
                want: c,
            });
        }
        let total = usize::from(count - 1) * c + if last { chunk.len() } else { 1 };
        if total > MAX_UDP_PAYLOAD {
            return Err(SegmentError::TooLong(total));
        }
        Ok(Segment {
            count,
            index,
            chunk_len,
            msg_id,
            tag,
            chunk,
        })
    }
}

/// The segment MAC key of one direction of an encrypted link: the sender holds the one for
/// its own side, the receiver the one for the sender's side. Derived from the connection's
/// session key, and separate from the keys the sleeve and the TCP stream use.
pub struct SegmentKey {
    sb: SecretBox,
}

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentKey(..)")
    }
}

impl SegmentKey {
    /// The key for segments sent by the `sender` end of the connection keyed `session`.
    pub fn new(session: &SessionKey, sender: Side) -> SegmentKey {
        let mut h = Sha256::new();
        h.update(b"weft segment MAC v2");
        h.update([u8::from(sender.is_outbound())]);
        h.update(session.as_bytes());
        let mut k: [u8; 32] = h.finalize().into();
        let sb = SecretBox::new(&k);
        k.fill(0);
        SegmentKey { sb }
    }

    /// The one-time keys of every segment of message `msg_id` cut into `count` chunks of
    /// `chunk_len`, into `out`.
    pub fn message_keys(&self, msg_id: u64, count: u8, chunk_len: u16, out: &mut MessageKeys) {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(b"wseg");
        nonce[4..12].copy_from_slice(&msg_id.to_be_bytes());
        nonce[12] = count;
        nonce[13..15].copy_from_slice(&chunk_len.to_be_bytes());
        let n = usize::from(count).min(MAX_SEGMENTS) * ONE_TIME_KEY_LEN;
        let keys = &mut out.keys[..n];
        keys.fill(0);
        // Sealing zeros yields the XSalsa20 stream after its first 32 bytes (which key the
        // tag over these zeros, ignored).
        let _ = self.sb.seal_in_place_detached(&nonce, keys);
        out.count = count;
    }
}

/// The one-time Poly1305 keys of one message's segments (4 KiB; reused).
pub struct MessageKeys {
    keys: [u8; MAX_SEGMENTS * ONE_TIME_KEY_LEN],
    count: u8,
}

impl Default for MessageKeys {
    fn default() -> Self {
        MessageKeys {
            keys: [0u8; MAX_SEGMENTS * ONE_TIME_KEY_LEN],
            count: 0,
        }
    }
}

impl std::fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageKeys({} segments)", self.count)
    }
}

impl MessageKeys {
    /// The tag of segment `index`'s `chunk`; `None` past the message's segments.
    pub fn tag(&self, index: u8, chunk: &[u8]) -> Option<[u8; TAG_LEN]> {
        if index >= self.count {
            return None;
        }
        let at = usize::from(index) * ONE_TIME_KEY_LEN;
        let mut k = [0u8; ONE_TIME_KEY_LEN];
        k.copy_from_slice(&self.keys[at..at + ONE_TIME_KEY_LEN]);
        Some(weft_crypto::secretbox::onetimeauth(&k, chunk))
    }

    /// Whether `tag` is segment `index`'s tag of `chunk` (constant time).
    pub fn verify(&self, index: u8, chunk: &[u8], tag: &[u8; TAG_LEN]) -> bool {
        self.tag(index, chunk)
            .is_some_and(|t| bool::from(t.ct_eq(tag)))
    }
}

/// One segment header, tagged or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; TAGGED_HEADER_LEN],
    len: u8,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for Header {
    fn default() -> Self {
        Header {
            bytes: [0u8; TAGGED_HEADER_LEN],
            len: SEGMENT_HEADER_LEN as u8,
        }
    }
}

/// The header of segment `index` of `count` of message `msg_id`, cut into chunks of
/// `chunk_len`; tagged over `chunk` when `keys` are given.
pub fn header(
    msg_id: u64,
    count: u8,
    index: u8,
    chunk_len: u16,
    chunk: &[u8],
    keys: Option<&MessageKeys>,
) -> Header {
    let mut h = Header::default();
    h.bytes[6] = SEGMENT_VERSION;
    h.bytes[7] = count;
    h.bytes[8] = index;
    h.bytes[10..12].copy_from_slice(&chunk_len.to_be_bytes());
    h.bytes[12..20].copy_from_slice(&msg_id.to_be_bytes());
    if let Some(keys) = keys {
        h.bytes[9] = FLAG_TAGGED;
        // A key for every index below `count` (the caller derived them for this message).
        let tag = keys.tag(index, chunk).unwrap_or([0u8; TAG_LEN]);
        h.bytes[SEGMENT_HEADER_LEN..TAGGED_HEADER_LEN].copy_from_slice(&tag);
        h.len = TAGGED_HEADER_LEN as u8;
    }
    h
}

/// How to cut one message into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of the message in every segment but the last.
    pub chunk_len: usize,
    /// Number of segments.
    pub count: usize,
    /// Segments per UDP GSO send (all full-sized but possibly the last of the message), so
    /// that one send stays within a UDP datagram's 65 507 bytes and the kernel's limit.
    pub per_send: usize,
    /// Segments carry a tag (encrypted link).
    pub tagged: bool,
}

impl Plan {
    /// Cut a message of `msg_len` bytes into segments of at most `segment_size` bytes of UDP
    /// payload, with tags when `tagged`. `None` when the message is empty or too long, or
    /// the segment size is below [`MIN_SEGMENT`].
    pub fn new(msg_len: usize, segment_size: usize, tagged: bool) -> Option<Plan> {
        if msg_len == 0 || msg_len > MAX_UDP_PAYLOAD || segment_size < MIN_SEGMENT {
            return None;
        }
        let hlen = header_len(tagged);
        let chunk_len = (segment_size - hlen).min(usize::from(u16::MAX));
        let count = msg_len.div_ceil(chunk_len);
        if count > MAX_SEGMENTS {
            return None;
        }
        let seg = chunk_len + hlen;
        let per_send = (MAX_UDP_PAYLOAD / seg).clamp(1, MAX_GSO_SEGMENTS);
        Some(Plan {
            chunk_len,
            count,
            per_send,
            tagged,
        })
    }

    /// Bytes of a full segment (header and chunk): the GSO segment size.
    pub fn segment_len(&self) -> usize {
        self.chunk_len + header_len(self.tagged)
    }

    /// The message bytes of segment `index`.
    pub fn chunk(&self, index: usize, msg_len: usize) -> std::ops::Range<usize> {
        let start = index * self.chunk_len;
        start..(start + self.chunk_len).min(msg_len)
    }

    /// The one-time keys of message `msg_id` cut per this plan.
    pub fn message_keys(&self, key: &SegmentKey, msg_id: u64, out: &mut MessageKeys) {
        // `count ≤ MAX_SEGMENTS` and `chunk_len ≤ u16::MAX` by construction.
        key.message_keys(msg_id, self.count as u8, self.chunk_len as u16, out);
    }

    /// The header of segment `index` of `msg`, tagged with `keys` (from
    /// [`Plan::message_keys`]) when the plan is tagged.
    pub fn header(
        &self,
        msg_id: u64,
        index: usize,
        msg: &[u8],
        keys: Option<&MessageKeys>,
    ) -> Header {
        let chunk = &msg[self.chunk(index, msg.len())];
        header(
            msg_id,
            self.count as u8,
            index as u8,
            self.chunk_len as u16,
            chunk,
            keys.filter(|_| self.tagged),
        )
    }
}

/// Cut `msg` into segments written one after another into `out` (cleared first): the
/// layout a UDP GSO send of `segment_size` takes, or a list of datagrams for a sender
/// without GSO. Tagged with `key` when given. Returns the plan, or `None` as [`Plan::new`].
pub fn segment_into(
    msg: &[u8],
    msg_id: u64,
    segment_size: usize,
    key: Option<&SegmentKey>,
    out: &mut Vec<u8>,
) -> Option<Plan> {
    let plan = Plan::new(msg.len(), segment_size, key.is_some())?;
    let mut keys = key.map(|k| {
        let mut mk = Box::<MessageKeys>::default();
        plan.message_keys(k, msg_id, &mut mk);
        mk
    });
    out.clear();
    for i in 0..plan.count {
        out.extend_from_slice(plan.header(msg_id, i, msg, keys.as_deref()).as_bytes());
        out.extend_from_slice(&msg[plan.chunk(i, msg.len())]);
    }
    keys.take();
    Some(plan)
}

/// One datagram being put back together.
#[derive(Debug)]
struct Slot {
    active: bool,
    msg_id: u64,
    count: u8,
    chunk_len: u16,
    have: u128,
    received: u8,
    /// Length of the message once the last segment is in.
    len: Option<usize>,
    started: Instant,
    /// Reused: grows to at most a UDP datagram. Every byte of a completed message was
    /// written by one of its segments, so old contents never show.
    buf: Vec<u8>,
    /// The message's one-time keys (encrypted links), derived once for its first segment.
    keys: Option<Box<MessageKeys>>,
}

/// One registered sender's state.
#[derive(Debug)]
struct Sender {
    key: Option<SegmentKey>,
    /// The highest id taken so far.
    highest: u64,
    /// Bit k: message `highest − k` is done (completed, given up, or before the first id).
    done: u64,
    slots: Vec<Slot>,
    /// Keys of a segment being checked before it gets a slot (swapped into the slot).
    scratch: Option<Box<MessageKeys>>,
}

impl Sender {
    /// How far `id` is ahead of the highest id taken (negative: behind).
    fn ahead(&self, id: u64) -> i64 {
        id.wrapping_sub(self.highest) as i64
    }

    fn is_done(&self, id: u64) -> bool {
        let behind = self.highest.wrapping_sub(id);
        behind <= WINDOW_BEHIND && self.done & (1 << behind) != 0
    }

    fn take(&mut self, id: u64) {
        let d = self.ahead(id);
        if d > 0 {
            self.done = if d >= 64 { 0 } else { self.done << d };
            self.highest = id;
        }
    }

    fn mark_done(&mut self, id: u64) {
        let behind = self.highest.wrapping_sub(id);
        if behind <= WINDOW_BEHIND {
            self.done |= 1 << behind;
        }
    }
}

/// What [`Reassembler::push`] made of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<'a> {
    /// The message is complete: the sleeve datagram.
    Complete(&'a mut [u8]),
    /// Stored; more segments are needed.
    Pending,
    /// A segment already received, or of a message already complete (dropped).
    Duplicate,
}

/// Counters kept by the reassembler.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages given up incomplete (timed out, evicted by a newer message, or their sender
    /// went away).
    pub abandoned: u64,
}

/// Puts segmented datagrams back together for the senders registered with
/// [`Reassembler::add_sender`]: up to [`SLOTS`] messages in progress each, new ids only within
/// the window, tags checked on encrypted links (see the module documentation for the policy).
#[derive(Debug)]
pub struct Reassembler<K> {
    senders: HashMap<K, Sender>,
    timeout: Duration,
    /// The earliest time a slot in progress times out.
    next_expiry: Option<Instant>,
    pub stats: ReassemblyStats,
}

impl<K: Copy + Eq + Hash> Default for Reassembler<K> {
    fn default() -> Self {
        Reassembler::new()
    }
}

impl<K: Copy + Eq + Hash> Reassembler<K> {
    pub fn new() -> Reassembler<K> {
        Reassembler::with_timeout(REASSEMBLY_TIMEOUT)
    }

    /// A reassembler giving up on messages in progress after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Reassembler<K> {
        Reassembler {
            senders: HashMap::new(),
            timeout,
            next_expiry: None,
            stats: ReassemblyStats::default(),
        }
    }

    /// Registered senders.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Messages in progress, over all senders.
    pub fn in_progress(&self) -> usize {
        self.senders
            .values()
            .map(|s| s.slots.iter().filter(|x| x.active).count())
            .sum()
    }

    /// Bytes of reassembly buffers held (grows to at most senders × [`SLOTS`] × 64 KiB).
    pub fn buffer_bytes(&self) -> usize {
        self.senders
            .values()
            .flat_map(|s| &s.slots)
            .map(|x| x.buf.capacity())
            .sum()
    }

    /// Accept segments from `sender`, whose messages start at id `first_id` (announced by
    /// the peer over the TCP handshake) and carry tags under `key` when the link is
    /// encrypted. Replaces what was kept for `sender` before.
    pub fn add_sender(&mut self, sender: K, first_id: u64, key: Option<SegmentKey>, now: Instant) {
        self.remove(sender);
        let tagged = key.is_some();
        let slots = (0..SLOTS)
            .map(|_| Slot {
                active: false,
                msg_id: 0,
                count: 0,
                chunk_len: 0,
                have: 0,
                received: 0,
                len: None,
                started: now,
                buf: Vec::new(),
                keys: tagged.then(Box::<MessageKeys>::default),
            })
            .collect();
        self.senders.insert(
            sender,
            Sender {
                key,
                highest: first_id.wrapping_sub(1),
                done: u64::MAX,
                slots,
                scratch: tagged.then(Box::<MessageKeys>::default),
            },
        );
    }

    /// Forget `sender` (its link went away), counting its messages in progress as abandoned.
    pub fn remove(&mut self, sender: K) {
        if let Some(s) = self.senders.remove(&sender) {
            self.stats.abandoned += s.slots.iter().filter(|x| x.active).count() as u64;
        }
    }

    /// When [`Reassembler::expire`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Give up the messages in progress for longer than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        if self.next_expiry.is_none_or(|t| t > now) {
            return 0;
        }
        let mut n = 0;
        let mut next: Option<Instant> = None;
        for s in self.senders.values_mut() {
            for i in 0..s.slots.len() {
                let x = &mut s.slots[i];
                if !x.active {
                    continue;
                }
                let deadline = x.started + self.timeout;
                if deadline <= now {
                    x.active = false;
                    let id = x.msg_id;
                    s.mark_done(id);
                    n += 1;
                } else {
                    next = Some(next.map_or(deadline, |t| t.min(deadline)));
                }
            }
        }
        self.next_expiry = next;
        self.stats.abandoned += n;
        n
    }

    /// Feed one segment received from `sender` at `now`.
    pub fn push(
        &mut self,
        sender: K,
        payload: &[u8],
        now: Instant,
    ) -> Result<Pushed<'_>, SegmentError> {
        let seg = Segment::parse(payload)?;
        let s = self
            .senders
            .get_mut(&sender)
            .ok_or(SegmentError::UnknownSender)?;
        match (seg.tag.is_some(), s.key.is_some()) {
            (false, true) => return Err(SegmentError::Untagged),
            (true, false) => return Err(SegmentError::UnexpectedTag),
            _ => {}
        }
        let i = match s
            .slots
            .iter()
            .position(|x| x.active && x.msg_id == seg.msg_id)
        {
            Some(i) => {
                let x = &s.slots[i];
                if x.count != seg.count || x.chunk_len != seg.chunk_len {
                    return Err(SegmentError::Inconsistent);
                }
                if x.have & (1u128 << seg.index) != 0 {
                    return Ok(Pushed::Duplicate);
                }
                if let (Some(keys), Some(tag)) = (&x.keys, &seg.tag) {
                    if !keys.verify(seg.index, seg.chunk, tag) {
                        return Err(SegmentError::BadTag);
                    }
                }
                i
            }
            None => {
                let ahead = s.ahead(seg.msg_id);
                if ahead > WINDOW_AHEAD as i64 || ahead < -(WINDOW_BEHIND as i64) {
                    return Err(SegmentError::OutOfWindow {
                        id: seg.msg_id,
                        highest: s.highest,
                    });
                }
                if s.is_done(seg.msg_id) {
                    return Ok(Pushed::Duplicate);
                }
                if let (Some(key), Some(scratch), Some(tag)) = (&s.key, &mut s.scratch, &seg.tag) {
                    key.message_keys(seg.msg_id, seg.count, seg.chunk_len, scratch);
                    if !scratch.verify(seg.index, seg.chunk, tag) {
                        return Err(SegmentError::BadTag);
                    }
                }
                // A slot: free, else timed out, else the lowest id if this one is newer.
                let timeout = self.timeout;
                let free = s.slots.iter().position(|x| !x.active);
                let expired = || {
                    s.slots
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.started + timeout <= now)
                        .min_by_key(|(_, x)| x.started)
                        .map(|(i, _)| i)
                };
                let i = match free.or_else(expired) {
                    Some(i) => i,
                    None => {
                        let (i, oldest) = s
                            .slots
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (i, s.ahead(x.msg_id)))
                            .min_by_key(|&(_, a)| a)
                            .ok_or(SegmentError::Stale(seg.msg_id))?;
                        if oldest >= ahead {
                            return Err(SegmentError::Stale(seg.msg_id));
                        }
                        i
                    }
                };
                if s.slots[i].active {
                    // Given up for good: its late segments are duplicates, not a new message.
                    self.stats.abandoned += 1;
                    let old = s.slots[i].msg_id;
                    s.mark_done(old);
                }
                let x = &mut s.slots[i];
                x.active = true;
                x.msg_id = seg.msg_id;
                x.count = seg.count;
                x.chunk_len = seg.chunk_len;
                x.have = 0;
                x.received = 0;
                x.len = None;
                x.started = now;
                let cap =
                    (usize::from(seg.count) * usize::from(seg.chunk_len)).min(MAX_UDP_PAYLOAD);
                if x.buf.len() < cap {
                    x.buf.resize(cap, 0);
                }
                if s.key.is_some() {
                    std::mem::swap(&mut x.keys, &mut s.scratch);
                }
                let deadline = now + self.timeout;
                self.next_expiry = Some(self.next_expiry.map_or(deadline, |t| t.min(deadline)));
                s.take(seg.msg_id);
                i
            }
        };
        let x = &mut s.slots[i];
        let start = usize::from(seg.index) * usize::from(seg.chunk_len);
        let end = start + seg.chunk.len();
        if end > x.buf.len() {
            return Err(SegmentError::TooLong(end));
        }
        x.buf[start..end].copy_from_slice(seg.chunk);
        x.have |= 1u128 << seg.index;
        x.received += 1;
        if seg.index + 1 == seg.count {
            x.len = Some(end);
        }
        if x.received < x.count {
            return Ok(Pushed::Pending);
        }
        x.active = false;
        let len = x.len.unwrap_or(x.buf.len());
        let id = x.msg_id;
        s.mark_done(id);
        Ok(Pushed::Complete(&mut s.slots[i].buf[..len]))
    }
}

#[cfg(test)]
mod tests;
