//! Sleeve batching (reference §4.6): frames queued for one next hop go out in as few
//! datagrams as possible — at most [`MAX_FRAMES_PER_DATAGRAM`] frames, and the datagram
//! within the link's payload limit (DF: the path MTU − 28; non-DF: 65 507). A frame too big
//! even alone is dropped.
//!
//! The packing itself lives with the datagram format in `weft-sleeve`
//! ([`pack_frames`]; [`weft_sleeve::HeartbeatLink::encode_frames`] adds the sender name or
//! the encryption). [`Batcher`] drives it over a caller's queue without allocating per frame.

pub use weft_sleeve::packet::{
    pack_frames, OutFrame, Packed, CLEAR_HEADER_LEN, MAX_FRAMES_PER_DATAGRAM, MAX_UDP_PAYLOAD,
    UDP_IP_OVERHEAD,
};

/// The largest DF datagram for an overlay `mtu` given a per-datagram header of `header_len`
/// bytes (6 clear, 30 encrypted): `mtu + 14 (Ethernet) + 14 (frame header) + header_len`,
/// i.e. the path MTU − 28.
pub fn df_limit(mtu: u16, header_len: usize) -> usize {
    (usize::from(mtu) + 28 + header_len).min(MAX_UDP_PAYLOAD)
}

/// Packs a slice of frames for one next hop into successive datagrams in one reusable buffer.
#[derive(Debug)]
pub struct Batcher<'f, 'a> {
    frames: &'f [OutFrame<'a>],
    header_len: usize,
    limit: usize,
    /// Frames dropped as too big so far.
    pub dropped: usize,
}

impl<'f, 'a> Batcher<'f, 'a> {
    pub fn new(frames: &'f [OutFrame<'a>], header_len: usize, limit: usize) -> Self {
        Batcher {
            frames,
            header_len,
            limit,
            dropped: 0,
        }
    }

    /// The next datagram's frame list into `out` (behind `header_len` bytes of room for the
    /// sender name or encryption header); returns the number of frames in it, or `None` when
    /// every frame is used up.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        while !self.frames.is_empty() {
            let p = pack_frames(out, self.header_len, self.limit, self.frames);
            self.frames = &self.frames[p.consumed..];
            self.dropped += p.dropped;
            if p.packed > 0 {
                return Some(p.packed);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_mesh::PeerName;
    use weft_sleeve::packet::frames;

    proptest! {
        #[test]
        fn batches_keep_every_fitting_frame_in_order(
            lens in proptest::collection::vec(0usize..2000, 0..300),
            mtu in 552u16..1500,
        ) {
            let a = PeerName::from_bytes([0, 0, 0, 0, 0, 1]);
            let b = PeerName::from_bytes([0, 0, 0, 0, 0, 2]);
            let bufs: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| vec![i as u8; l]).collect();
            let input: Vec<OutFrame> = bufs.iter().map(|d| OutFrame { src: a, dst: b, data: d }).collect();
            let limit = df_limit(mtu, CLEAR_HEADER_LEN);
            let mut batcher = Batcher::new(&input, CLEAR_HEADER_LEN, limit);
            let mut out = Vec::new();
            let mut got = Vec::new();
            while let Some(n) = batcher.next_into(&mut out) {
                prop_assert!(n <= MAX_FRAMES_PER_DATAGRAM);
                prop_assert!(out.len() <= limit);
                let fs: Vec<_> = frames(&out[CLEAR_HEADER_LEN..]).map(|f| f.unwrap().data.to_vec()).collect();
                prop_assert_eq!(fs.len(), n);
                got.extend(fs);
            }
            let fitting: Vec<Vec<u8>> = bufs.iter().filter(|d| d.len() <= usize::from(mtu) + 14).cloned().collect();
            prop_assert_eq!(batcher.dropped, bufs.len() - fitting.len());
            prop_assert_eq!(got, fitting);
        }
    }
}
