//! weft's segmented sleeve datagrams: a weft-only extension used between two weft peers that
//! both announce it (feature `WeftSegments`).
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
//! 6   1  version = 1
//! 7   1  segment count N (1..=MAX_SEGMENTS)
//! 8   1  this segment's index (0..N)
//! 9   1  reserved, 0
//! 10  2  chunk length C (u16): every segment but the last carries exactly C bytes
//! 12  4  message id (u32), chosen by the sender, new for every datagram
//! 16  .. the chunk: bytes [index·C, index·C + len) of the datagram
//! ```
//!
//! Pure: no sockets, no clock. [`Reassembler`] keeps one datagram in progress per sender
//! address and a bounded number of senders; a new message id from a sender abandons the
//! previous one (a lost segment costs the datagram, as a lost IP fragment would).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::packet::MAX_UDP_PAYLOAD;

/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// The only version this code speaks.
pub const SEGMENT_VERSION: u8 = 1;
/// Most segments one datagram is cut into.
pub const MAX_SEGMENTS: usize = 128;
/// The feature weft peers announce in the handshake when they accept segmented datagrams.
pub const SEGMENTS_FEATURE: &str = "WeftSegments";
/// Smallest segment (UDP payload) the sender uses: below this the header costs too much and
/// a 64 KiB datagram would need more than [`MAX_SEGMENTS`].
pub const MIN_SEGMENT: usize = 552;
/// Most segments in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// Whether a UDP payload is a weft segment rather than a Weave sleeve datagram.
pub fn is_segment(payload: &[u8]) -> bool {
    payload.len() >= 6 && payload[..6] == [0u8; 6]
}

/// A segment that does not parse or does not fit the message it claims to belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown segment version {0}")]
    Version(u8),
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
}

/// A parsed segment header and its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub count: u8,
    pub index: u8,
    pub chunk_len: u16,
    pub msg_id: u32,
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
        let (count, index) = (payload[7], payload[8]);
        if count == 0 || index >= count || usize::from(count) > MAX_SEGMENTS {
            return Err(SegmentError::Index { index, count });
        }
        let chunk_len = u16::from_be_bytes([payload[10], payload[11]]);
        if chunk_len == 0 {
            return Err(SegmentError::ZeroChunk);
        }
        let msg_id = u32::from_be_bytes([payload[12], payload[13], payload[14], payload[15]]);
        let chunk = &payload[SEGMENT_HEADER_LEN..];
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
            chunk,
        })
    }
}

/// The header of segment `index` of `count`, for a message cut into chunks of `chunk_len`.
pub fn header(msg_id: u32, count: u8, index: u8, chunk_len: u16) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[6] = SEGMENT_VERSION;
    h[7] = count;
    h[8] = index;
    h[10..12].copy_from_slice(&chunk_len.to_be_bytes());
    h[12..16].copy_from_slice(&msg_id.to_be_bytes());
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
}

impl Plan {
    /// Cut a message of `msg_len` bytes into segments of at most `segment_size` bytes of UDP
    /// payload. `None` when the message is empty or too long, or the segment size is below
    /// [`MIN_SEGMENT`] or too big to need segmenting at all.
    pub fn new(msg_len: usize, segment_size: usize) -> Option<Plan> {
        if msg_len == 0 || msg_len > MAX_UDP_PAYLOAD || segment_size < MIN_SEGMENT {
            return None;
        }
        let chunk_len = (segment_size - SEGMENT_HEADER_LEN).min(usize::from(u16::MAX));
        let count = msg_len.div_ceil(chunk_len);
        if count > MAX_SEGMENTS {
            return None;
        }
        let seg = chunk_len + SEGMENT_HEADER_LEN;
        let per_send = (MAX_UDP_PAYLOAD / seg).clamp(1, MAX_GSO_SEGMENTS);
        Some(Plan {
            chunk_len,
            count,
            per_send,
        })
    }

    /// The message bytes of segment `index`.
    pub fn chunk(&self, index: usize, msg_len: usize) -> std::ops::Range<usize> {
        let start = index * self.chunk_len;
        start..(start + self.chunk_len).min(msg_len)
    }

    /// The header of segment `index`.
    pub fn header(&self, msg_id: u32, index: usize) -> [u8; SEGMENT_HEADER_LEN] {
        // `count ≤ MAX_SEGMENTS` and `chunk_len ≤ u16::MAX` by construction.
        header(msg_id, self.count as u8, index as u8, self.chunk_len as u16)
    }
}

/// Cut `msg` into segments written one after another into `out` (cleared first): the
/// layout a UDP GSO send of `segment_size` takes, or a list of datagrams for a sender
/// without GSO. Returns the plan, or `None` as [`Plan::new`].
pub fn segment_into(
    msg: &[u8],
    msg_id: u32,
    segment_size: usize,
    out: &mut Vec<u8>,
) -> Option<Plan> {
    let plan = Plan::new(msg.len(), segment_size)?;
    out.clear();
    for i in 0..plan.count {
        out.extend_from_slice(&plan.header(msg_id, i));
        out.extend_from_slice(&msg[plan.chunk(i, msg.len())]);
    }
    Some(plan)
}

/// One message being put back together.
#[derive(Debug)]
struct Slot {
    msg_id: u32,
    count: u8,
    chunk_len: u16,
    have: u128,
    received: u8,
    /// Length of the message once the last segment is in.
    len: Option<usize>,
    buf: Vec<u8>,
    /// Last use, in calls to [`Reassembler::push`]: the least recently used slot is evicted.
    used: u64,
}

/// What [`Reassembler::push`] made of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<'a> {
    /// The message is complete: the sleeve datagram.
    Complete(&'a mut [u8]),
    /// Stored; more segments are needed.
    Pending,
    /// A segment already received (dropped).
    Duplicate,
}

/// Counters for dropped segments and abandoned messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages abandoned incomplete (a newer message id came, or the slot was evicted).
    pub abandoned: u64,
}

/// Puts segmented datagrams back together: at most one message in progress per sender
/// address, at most `max_senders` senders (least recently used evicted). Memory is bounded by
/// `max_senders × 64 KiB`.
#[derive(Debug)]
pub struct Reassembler {
    slots: HashMap<SocketAddr, Slot>,
    max_senders: usize,
    clock: u64,
    pub stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new(max_senders: usize) -> Reassembler {
        Reassembler {
            slots: HashMap::new(),
            max_senders: max_senders.max(1),
            clock: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Senders with a slot.
    pub fn senders(&self) -> usize {
        self.slots.len()
    }

    /// Forget `from`'s message in progress (its connection went away), counting it as
    /// abandoned if it was incomplete.
    pub fn remove(&mut self, from: SocketAddr) {
        if let Some(s) = self.slots.remove(&from) {
            if s.received > 0 && s.received < s.count {
                self.stats.abandoned += 1;
            }
        }
    }

    /// Feed one segment received from `from`.
    pub fn push(&mut self, from: SocketAddr, payload: &[u8]) -> Result<Pushed<'_>, SegmentError> {
        let seg = Segment::parse(payload)?;
        self.clock += 1;
        if !self.slots.contains_key(&from) && self.slots.len() >= self.max_senders {
            let oldest = self
                .slots
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.slots.remove(&a);
                self.stats.abandoned += 1;
            }
        }
        let slot = self.slots.entry(from).or_insert_with(|| Slot {
            msg_id: seg.msg_id.wrapping_add(1),
            count: 0,
            chunk_len: 0,
            have: 0,
            received: 0,
            len: None,
            buf: Vec::new(),
            used: 0,
        });
        slot.used = self.clock;
        if slot.msg_id != seg.msg_id || slot.count == 0 {
            if slot.received > 0 && slot.received < slot.count {
                self.stats.abandoned += 1;
            }
            slot.msg_id = seg.msg_id;
            slot.count = seg.count;
            slot.chunk_len = seg.chunk_len;
            slot.have = 0;
            slot.received = 0;
            slot.len = None;
            // Only grows (to at most a UDP datagram): every byte of a completed message was
            // written by one of its segments, so old contents never show.
            let cap = (usize::from(seg.count) * usize::from(seg.chunk_len)).min(MAX_UDP_PAYLOAD);
            if slot.buf.len() < cap {
                slot.buf.resize(cap, 0);
            }
        } else if slot.count != seg.count || slot.chunk_len != seg.chunk_len {
            return Err(SegmentError::Inconsistent);
        }
        let bit = 1u128 << seg.index;
        if slot.have & bit != 0 {
            return Ok(Pushed::Duplicate);
        }
        let start = usize::from(seg.index) * usize::from(seg.chunk_len);
        let end = start + seg.chunk.len();
        if end > slot.buf.len() {
            return Err(SegmentError::TooLong(end));
        }
        slot.buf[start..end].copy_from_slice(seg.chunk);
        slot.have |= bit;
        slot.received += 1;
        if seg.index + 1 == seg.count {
            slot.len = Some(end);
        }
        if slot.received == slot.count {
            let len = slot.len.unwrap_or(slot.buf.len());
            // Done: a repeat of any of its segments now starts (and never finishes) a new one.
            slot.count = 0;
            slot.received = 0;
            return Ok(Pushed::Complete(&mut slot.buf[..len]));
        }
        Ok(Pushed::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, 1], port))
    }

    fn msg(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn segments(m: &[u8], id: u32, size: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let plan = segment_into(m, id, size, &mut out).unwrap();
        let seg = plan.chunk_len + SEGMENT_HEADER_LEN;
        out.chunks(seg).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn a_full_datagram_fits_the_limits() {
        let plan = Plan::new(MAX_UDP_PAYLOAD, 1472).unwrap();
        assert_eq!(plan.chunk_len, 1456);
        assert_eq!(plan.count, 45);
        assert_eq!(plan.per_send, 44);
        assert!(plan.per_send * 1472 <= MAX_UDP_PAYLOAD);
        assert_eq!(plan.chunk(44, MAX_UDP_PAYLOAD), 64064..65507);
        assert!(Plan::new(MAX_UDP_PAYLOAD, MIN_SEGMENT).is_some());
        assert!(Plan::new(MAX_UDP_PAYLOAD, MIN_SEGMENT - 1).is_none());
        assert!(Plan::new(0, 1472).is_none());
        assert!(Plan::new(MAX_UDP_PAYLOAD + 1, 1472).is_none());
    }

    #[test]
    fn header_layout() {
        let h = header(0x0102_0304, 45, 3, 1456);
        assert_eq!(
            h,
            [0, 0, 0, 0, 0, 0, 1, 45, 3, 0, 0x05, 0xb0, 1, 2, 3, 4],
            "zero marker, version, count, index, reserved, chunk, id"
        );
        assert!(is_segment(&h));
        assert!(!is_segment(&[0, 0, 0, 0, 0, 1, 0]));
    }

    #[test]
    fn in_order_and_reversed_reassemble() {
        let m = msg(10_000);
        let segs = segments(&m, 9, 1472);
        assert_eq!(segs.len(), 7);
        let mut r = Reassembler::new(4);
        for (i, s) in segs.iter().enumerate() {
            match r.push(addr(1), s).unwrap() {
                Pushed::Complete(got) => {
                    assert_eq!(i, 6);
                    assert_eq!(got, &m[..]);
                }
                Pushed::Pending => assert!(i < 6),
                Pushed::Duplicate => panic!("duplicate"),
            }
        }
        for (i, s) in segs.iter().rev().enumerate() {
            let p = r.push(addr(1), s).unwrap();
            if i == 6 {
                assert_eq!(p, Pushed::Complete(&mut m.clone()[..]));
            }
        }
    }

    #[test]
    fn duplicates_loss_and_interleaving() {
        let (a, b) = (msg(5_000), msg(3_000));
        let sa = segments(&a, 1, 1000);
        let sb = segments(&b, 2, 1000);
        let mut r = Reassembler::new(4);
        assert_eq!(r.push(addr(1), &sa[0]).unwrap(), Pushed::Pending);
        assert_eq!(r.push(addr(1), &sa[0]).unwrap(), Pushed::Duplicate);
        // Another sender's message in between does not disturb the first.
        for s in &sb[..sb.len() - 1] {
            r.push(addr(2), s).unwrap();
        }
        for s in &sa[1..sa.len() - 1] {
            r.push(addr(1), s).unwrap();
        }
        assert!(
            matches!(r.push(addr(1), sa.last().unwrap()), Ok(Pushed::Complete(m)) if m == &a[..])
        );
        assert!(
            matches!(r.push(addr(2), sb.last().unwrap()), Ok(Pushed::Complete(m)) if m == &b[..])
        );
        // A lost segment: the next message abandons the incomplete one.
        let sc = segments(&a, 3, 1000);
        r.push(addr(1), &sc[0]).unwrap();
        let sd = segments(&b, 4, 1000);
        for s in &sd[..sd.len() - 1] {
            assert_eq!(r.push(addr(1), s).unwrap(), Pushed::Pending);
        }
        assert!(
            matches!(r.push(addr(1), sd.last().unwrap()), Ok(Pushed::Complete(m)) if m == &b[..])
        );
        assert_eq!(r.stats.abandoned, 1);
    }

    #[test]
    fn senders_are_bounded() {
        let m = msg(3_000);
        let s = segments(&m, 1, 1000);
        let mut r = Reassembler::new(2);
        for port in 1..=5 {
            r.push(addr(port), &s[0]).unwrap();
        }
        assert_eq!(r.senders(), 2);
        assert_eq!(r.stats.abandoned, 3);
        r.remove(addr(5));
        r.remove(addr(1));
        assert_eq!(r.senders(), 1);
        assert_eq!(r.stats.abandoned, 4);
    }

    #[test]
    fn bad_segments_are_refused() {
        let m = msg(3_000);
        let s = segments(&m, 1, 1000);
        assert_eq!(Segment::parse(&s[0][..10]), Err(SegmentError::Short(10)));
        let mut v = s[0].clone();
        v[6] = 2;
        assert_eq!(Segment::parse(&v), Err(SegmentError::Version(2)));
        let mut v = s[0].clone();
        v[8] = v[7];
        assert!(matches!(
            Segment::parse(&v),
            Err(SegmentError::Index { .. })
        ));
        let mut v = s[0].clone();
        v.pop();
        assert!(matches!(
            Segment::parse(&v),
            Err(SegmentError::Length { .. })
        ));
        let mut v = s[0].clone();
        v[10] = 0;
        v[11] = 0;
        assert_eq!(Segment::parse(&v), Err(SegmentError::ZeroChunk));
        // A segment that claims a different shape than its message's first one.
        let mut r = Reassembler::new(2);
        r.push(addr(1), &s[0]).unwrap();
        let other = segments(&msg(3_000), 1, 1500);
        assert_eq!(r.push(addr(1), &other[1]), Err(SegmentError::Inconsistent));
        // Claims a message longer than a datagram.
        let mut v = header(5, 128, 0, 1000).to_vec();
        v.extend_from_slice(&[0u8; 1000]);
        assert!(matches!(Segment::parse(&v), Err(SegmentError::TooLong(_))));
    }

    proptest! {
        #[test]
        fn any_message_round_trips_in_any_order(
            len in 1usize..=MAX_UDP_PAYLOAD,
            size in MIN_SEGMENT..9000usize,
            seed in any::<u64>(),
        ) {
            let m = msg(len);
            let mut segs = segments(&m, seed as u32, size);
            // Deterministic shuffle.
            let mut x = seed | 1;
            for i in (1..segs.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                segs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut r = Reassembler::new(1);
            let n = segs.len();
            for (i, s) in segs.iter().enumerate() {
                match r.push(addr(9), s).unwrap() {
                    Pushed::Complete(got) => { prop_assert_eq!(i, n - 1); prop_assert_eq!(&got[..], &m[..]); }
                    Pushed::Pending => prop_assert!(i < n - 1),
                    Pushed::Duplicate => prop_assert!(false, "duplicate"),
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut r = Reassembler::new(2);
            let mut d = data.clone();
            if d.len() >= 6 { d[..6].fill(0); }
            let _ = r.push(addr(1), &d);
            let _ = r.push(addr(1), &data);
        }
    }
}
