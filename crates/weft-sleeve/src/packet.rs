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
