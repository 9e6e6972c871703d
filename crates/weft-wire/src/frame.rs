//! Framing after the handshake (§2.6): `u32 BE length ‖ body`, and the
//! message tags.

use crate::error::ConnectionError;

/// Largest message body accepted or sent (`maxTCPMsgSize`, 10 MiB). On an
/// encrypted connection it bounds the sealed body.
pub const MAX_MESSAGE_LEN: usize = weft_crypto::MAX_TCP_MSG_LEN;

/// Largest message accepted before the handshake is complete: the features
/// message. Weave's are a few hundred bytes (173 in the captures, 189 sealed);
/// 32 KiB leaves room for many more features while an unauthenticated client
/// can no longer make the router buffer 10 MiB.
pub const MAX_HANDSHAKE_MESSAGE_LEN: usize = 32 * 1024;

/// Length of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Largest initial allocation for a message body; the buffer grows as bytes
/// arrive, so a hostile length prefix alone does not allocate 10 MiB.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// The first byte of every message after the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// Keep-alive; empty payload.
    Heartbeat = 0,
    /// Compat-mode sleeve ConnectionEstablished (heartbeat ack).
    Reserved1 = 1,
    /// Compat-mode sleeve FragmentationReceived.
    Reserved2 = 2,
    /// Compat-mode sleeve PMTUVerified (u16 BE MTU).
    Reserved3 = 3,
    /// Gossip to neighbours (envelope: channel, src, payload).
    Gossip = 4,
    /// Unicast gossip (envelope: channel, src, dst, payload).
    GossipUnicast = 5,
    /// Broadcast gossip (envelope: channel, src, payload).
    GossipBroadcast = 6,
    /// Overlay switch control message (index, inner tag, data).
    OverlayControl = 7,
}

impl Tag {
    /// The tag for a byte, if it is one of the eight known tags.
    pub fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            0 => Tag::Heartbeat,
            1 => Tag::Reserved1,
            2 => Tag::Reserved2,
            3 => Tag::Reserved3,
            4 => Tag::Gossip,
            5 => Tag::GossipUnicast,
            6 => Tag::GossipBroadcast,
            7 => Tag::OverlayControl,
            _ => return None,
        })
    }

    /// The tag byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Weave's name for the tag.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Heartbeat => "Heartbeat",
            Tag::Reserved1 => "Reserved1",
            Tag::Reserved2 => "Reserved2",
            Tag::Reserved3 => "Reserved3",
            Tag::Gossip => "Gossip",
            Tag::GossipUnicast => "GossipUnicast",
            Tag::GossipBroadcast => "GossipBroadcast",
            Tag::OverlayControl => "OverlayControlMsg",
        }
    }
}

/// Splits a byte stream into message bodies, incrementally.
///
/// It holds at most one message: the 4-byte prefix, then a body buffer that
/// grows as bytes arrive up to the announced length. A length above the limit
/// is refused as soon as the prefix is complete, before anything is buffered.
#[derive(Debug, Clone)]
pub struct FrameReader {
    max_len: usize,
    prefix: [u8; LENGTH_PREFIX_LEN],
    prefix_have: usize,
    /// Body being filled, and its announced length.
    body: Option<(Vec<u8>, usize)>,
}

impl FrameReader {
    /// A reader refusing bodies longer than `max_len`.
    pub fn new(max_len: usize) -> FrameReader {
        FrameReader {
            max_len,
            prefix: [0; LENGTH_PREFIX_LEN],
            prefix_have: 0,
            body: None,
        }
    }

    /// The largest body accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Changes the largest body accepted from the next length prefix on (the
    /// limit is raised once the handshake is done).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Bytes buffered for the message in progress (prefix included).
    pub fn buffered(&self) -> usize {
        self.prefix_have + self.body.as_ref().map_or(0, |(b, _)| b.len())
    }

    /// Consumes bytes from the front of `input` until one message body is
    /// complete (`Ok(Some(body))`) or `input` is empty (`Ok(None)`).
    pub fn read(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, ConnectionError> {
        loop {
            if let Some((body, want)) = &mut self.body {
                let take = (*want - body.len()).min(input.len());
                let (now, rest) = input.split_at(take);
                body.reserve_exact(take);
                body.extend_from_slice(now);
                *input = rest;
                if body.len() == *want {
                    return Ok(self.body.take().map(|(b, _)| b));
                }
                return Ok(None);
            }
            let take = (LENGTH_PREFIX_LEN - self.prefix_have).min(input.len());
            let (now, rest) = input.split_at(take);
            if let Some(dst) = self
                .prefix
                .get_mut(self.prefix_have..self.prefix_have + take)
            {
                dst.copy_from_slice(now);
            }
            self.prefix_have += take;
            *input = rest;
            if self.prefix_have < LENGTH_PREFIX_LEN {
                return Ok(None);
            }
            self.prefix_have = 0;
            let len = u32::from_be_bytes(self.prefix);
            let want = usize::try_from(len).unwrap_or(usize::MAX);
            if want > self.max_len {
                return Err(ConnectionError::MessageTooLarge {
                    len,
                    max: self.max_len,
                });
            }
            if want == 0 {
                return Ok(Some(Vec::new()));
            }
            self.body = Some((Vec::with_capacity(want.min(INITIAL_BODY_CAPACITY)), want));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_waits() {
        let stream = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 7, 0, 1];
        let mut r = FrameReader::new(100);
        let mut out = Vec::new();
        for b in stream.chunks(1) {
            let mut input = b;
            while let Some(body) = r.read(&mut input).unwrap() {
                out.push(body);
            }
            assert!(input.is_empty());
        }
        assert_eq!(out, vec![vec![0], vec![], vec![7, 0, 1]]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn oversized_is_refused_before_buffering() {
        let mut r = FrameReader::new(MAX_MESSAGE_LEN);
        let mut input: &[u8] = &[0x00, 0xa0, 0x00, 0x01, 1, 2, 3];
        assert_eq!(
            r.read(&mut input),
            Err(ConnectionError::MessageTooLarge {
                len: 0x00a0_0001,
                max: MAX_MESSAGE_LEN
            })
        );
        assert_eq!(input.len(), 3, "nothing after the prefix was consumed");
        // Exactly the maximum is fine, and is buffered only as it arrives.
        let mut r = FrameReader::new(MAX_MESSAGE_LEN);
        let mut input: &[u8] = &[0x00, 0xa0, 0x00, 0x00, 1];
        assert_eq!(r.read(&mut input), Ok(None));
        assert_eq!(r.buffered(), 1);
    }

    #[test]
    fn tags() {
        for b in 0..=255u8 {
            match Tag::from_u8(b) {
                Some(t) => assert_eq!(t.as_u8(), b),
                None => assert!(b > 7),
            }
        }
        assert_eq!(Tag::OverlayControl.name(), "OverlayControlMsg");
    }
}
