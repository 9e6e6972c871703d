//! The sleeve datagram format (reference §4.2, §4.3). All integers are big-endian.
//!
//! ```text
//! sender name (6) then, repeated: src name (6) ‖ dst name (6) ‖ length (2) ‖ frame (length)
//! ```

use weft_mesh::PeerName;

/// Bytes of the per-frame header.
pub const FRAME_HEADER_LEN: usize = 14;
/// Length of a heartbeat special frame: 14 zero bytes and the connection UID.
pub const HEARTBEAT_LEN: usize = 22;
/// Length of the fragmentation-test special frame.
pub const FRAG_TEST_LEN: usize = 60001;

/// A datagram that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("datagram of {0} bytes is shorter than a sender name")]
    NoSender(usize),
    #[error("trailing {0} bytes are shorter than a frame header")]
    ShortHeader(usize),
    #[error("frame of {len} bytes runs past the end of the datagram ({left} left)")]
    FrameOverrun { len: usize, left: usize },
}

/// One frame of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The peer that captured the frame.
    pub src: PeerName,
    /// The destination peer (unicast) or next hop (broadcast).
    pub dst: PeerName,
    /// The Ethernet frame (or special frame).
    pub data: &'a [u8],
}

/// What a special (all-zero Ethernet header) frame means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A heartbeat carrying this connection UID.
    Heartbeat(u64),
    /// The 60001-byte fragmentation test (all zero).
    FragTest,
    /// An MTU test of this total frame length (all zero).
    MtuTest(usize),
}

fn name_at(b: &[u8]) -> PeerName {
    let mut six = [0u8; 6];
    six.copy_from_slice(&b[..6]);
    PeerName::from_bytes(six)
}

/// The sender name of a datagram.
pub fn sender(datagram: &[u8]) -> Result<PeerName, PacketError> {
    if datagram.len() < 6 {
        return Err(PacketError::NoSender(datagram.len()));
    }
    Ok(name_at(datagram))
}

/// Iterator over the frames of a frame list (a datagram without its sender name, or the
/// plaintext of an encrypted one). Yields an error once and then stops.
#[derive(Debug, Clone)]
pub struct FrameIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// The frames of a frame list.
pub fn frames(list: &[u8]) -> FrameIter<'_> {
    FrameIter {
        rest: list,
        failed: false,
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        if self.rest.len() < FRAME_HEADER_LEN {
            self.failed = true;
            return Some(Err(PacketError::ShortHeader(self.rest.len())));
        }
        let len = usize::from(u16::from_be_bytes([self.rest[12], self.rest[13]]));
        let left = self.rest.len() - FRAME_HEADER_LEN;
        if len > left {
            self.failed = true;
            return Some(Err(PacketError::FrameOverrun { len, left }));
        }
        let frame = Frame {
            src: name_at(&self.rest[0..6]),
            dst: name_at(&self.rest[6..12]),
            data: &self.rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len],
        };
        self.rest = &self.rest[FRAME_HEADER_LEN + len..];
        Some(Ok(frame))
    }
}

/// Append one frame to a frame list. Frames longer than 65535 bytes cannot be carried.
pub fn push_frame(out: &mut Vec<u8>, src: PeerName, dst: PeerName, data: &[u8]) -> bool {
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    out.extend_from_slice(&src.to_bytes());
    out.extend_from_slice(&dst.to_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    true
}

/// Weave's limit on frames per datagram (`aggregateAndSend`).
pub const MAX_FRAMES_PER_DATAGRAM: usize = 100;
/// IPv4 (20) + UDP (8) header bytes in front of every sleeve datagram.
pub const UDP_IP_OVERHEAD: usize = 28;
/// The inner Ethernet header Weave counts in the DF overhead.
pub const ETHERNET_OVERHEAD: usize = 14;
/// The largest UDP payload over IPv4 (`65535 − 28`): the non-DF datagram limit.
pub const MAX_UDP_PAYLOAD: usize = 65_535 - UDP_IP_OVERHEAD;
/// Length of the special frame that kicks off PMTU discovery (expected to fail with
/// `EMSGSIZE` locally).
pub const PMTU_DISCOVERY_LEN: usize = 60_000;
/// Bytes in front of the frame list of a clear datagram (the sender name).
pub const CLEAR_HEADER_LEN: usize = 6;

/// One frame to pack: src (capturing) peer, dst peer, Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutFrame<'a> {
    pub src: PeerName,
    pub dst: PeerName,
    pub data: &'a [u8],
}

/// What [`pack_frames`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Frames of the input slice used up (packed or dropped); resume at this index.
    pub consumed: usize,
    /// Frames written into the datagram (0: nothing to send).
    pub packed: usize,
    /// Frames dropped because alone they exceed `limit` (Weave: "Dropping too big frame
    /// during forwarding").
    pub dropped: usize,
}

/// Pack frames for one next hop into one datagram (reference §4.6): `out` is cleared and gets
/// `header_len` zero bytes of room (the sender name, or the encryption header), then as many
/// frames from the front of `frames` as fit while the whole datagram stays within `limit`
/// bytes, at most [`MAX_FRAMES_PER_DATAGRAM`]. A frame that cannot fit even alone is dropped.
/// Reuses `out`'s capacity: no allocation once it has grown to `limit`.
pub fn pack_frames(
    out: &mut Vec<u8>,
    header_len: usize,
    limit: usize,
    frames: &[OutFrame<'_>],
) -> Packed {
    out.clear();
    out.resize(header_len, 0);
    let mut done = Packed::default();
    for f in frames {
        if done.packed == MAX_FRAMES_PER_DATAGRAM {
            break;
        }
        let need = FRAME_HEADER_LEN.saturating_add(f.data.len());
        let alone_too_big =
            f.data.len() > usize::from(u16::MAX) || header_len.saturating_add(need) > limit;
        if alone_too_big {
            done.consumed += 1;
            done.dropped += 1;
            continue;
        }
        if out.len() + need > limit {
            break;
        }
        push_frame(out, f.src, f.dst, f.data);
        done.consumed += 1;
        done.packed += 1;
    }
    done
}

/// The heartbeat special frame for a connection.
pub fn heartbeat_frame(conn_uid: u64) -> [u8; HEARTBEAT_LEN] {
    let mut f = [0u8; HEARTBEAT_LEN];
    f[14..].copy_from_slice(&conn_uid.to_be_bytes());
    f
}

/// Classify a frame whose Ethernet header is all zero. `None` for an ordinary frame.
pub fn special(data: &[u8]) -> Option<Special> {
    if data.len() < 14 || data[..14].iter().any(|&b| b != 0) {
        return None;
    }
    if data.len() == HEARTBEAT_LEN {
        let mut uid = [0u8; 8];
        uid.copy_from_slice(&data[14..]);
        return Some(Special::Heartbeat(u64::from_be_bytes(uid)));
    }
    if data.iter().any(|&b| b != 0) {
        return None;
    }
    Some(if data.len() == FRAG_TEST_LEN {
        Special::FragTest
    } else {
        Special::MtuTest(data.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Appendix A, vector S1: two frames in a clear datagram.
    #[test]
    fn vector_s1() {
        let d = hex("123456789abc 123456789abc deadbeef0001 0016 0000000000000000000000000000 000000000000002a 123456789abc deadbeef0001 0003 010203");
        assert_eq!(sender(&d).unwrap().to_string(), "12:34:56:78:9a:bc");
        let fs: Vec<Frame> = frames(&d[6..]).map(Result::unwrap).collect();
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].dst.to_string(), "de:ad:be:ef:00:01");
        assert_eq!(special(fs[0].data), Some(Special::Heartbeat(42)));
        assert_eq!(fs[1].data, &[1, 2, 3]);
        assert_eq!(special(fs[1].data), None);
        // And we build the same bytes.
        let mut out = d[..6].to_vec();
        let (a, b) = (fs[0].src, fs[0].dst);
        assert!(push_frame(&mut out, a, b, &heartbeat_frame(42)));
        assert!(push_frame(&mut out, a, b, &[1, 2, 3]));
        assert_eq!(out, d);
    }

    #[test]
    fn malformed() {
        assert_eq!(sender(&[1, 2]), Err(PacketError::NoSender(2)));
        let mut it = frames(&[0; 10]);
        assert_eq!(it.next(), Some(Err(PacketError::ShortHeader(10))));
        assert_eq!(it.next(), None);
        let mut bad = vec![0u8; 14];
        bad[13] = 5;
        assert!(matches!(
            frames(&bad).next(),
            Some(Err(PacketError::FrameOverrun { .. }))
        ));
        assert_eq!(special(&[0u8; FRAG_TEST_LEN]), Some(Special::FragTest));
        assert_eq!(special(&[0u8; 1452]), Some(Special::MtuTest(1452)));
        let mut not = vec![0u8; 100];
        not[50] = 1;
        assert_eq!(special(&not), None);
    }

    #[test]
    fn packs_within_limits() {
        let a = PeerName::from_bytes([0, 0, 0, 0, 0, 1]);
        let b = PeerName::from_bytes([0, 0, 0, 0, 0, 2]);
        let big = [7u8; 1452];
        let small = [1u8; 10];
        let mut out = Vec::new();
        // A 1438-MTU link: 6 + 14 + 1452 = 1472 = 1500 − 28 fits exactly.
        let one = [OutFrame {
            src: a,
            dst: b,
            data: &big,
        }];
        let p = pack_frames(&mut out, CLEAR_HEADER_LEN, 1472, &one);
        assert_eq!((p.consumed, p.packed, p.dropped), (1, 1, 0));
        assert_eq!(out.len(), 1472);
        let p = pack_frames(&mut out, CLEAR_HEADER_LEN, 1471, &one);
        assert_eq!((p.consumed, p.packed, p.dropped), (1, 0, 1));
        // 150 small frames: 100 in the first datagram, the rest in the next.
        let many = vec![
            OutFrame {
                src: a,
                dst: b,
                data: &small
            };
            150
        ];
        let p = pack_frames(&mut out, CLEAR_HEADER_LEN, MAX_UDP_PAYLOAD, &many);
        assert_eq!((p.consumed, p.packed), (100, 100));
        assert_eq!(frames(&out[6..]).count(), 100);
        let p = pack_frames(&mut out, CLEAR_HEADER_LEN, MAX_UDP_PAYLOAD, &many[100..]);
        assert_eq!((p.consumed, p.packed), (50, 50));
        // Stops before a frame that does not fit with the others.
        let two = [
            OutFrame {
                src: a,
                dst: b,
                data: &big,
            },
            OutFrame {
                src: a,
                dst: b,
                data: &big,
            },
        ];
        let p = pack_frames(&mut out, CLEAR_HEADER_LEN, 1472, &two);
        assert_eq!((p.consumed, p.packed), (1, 1));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = sender(&data);
            for f in frames(&data).flatten() {
                let _ = special(f.data);
            }
        }
    }
}
