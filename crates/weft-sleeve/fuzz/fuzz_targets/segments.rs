//! Arbitrary UDP payloads into the segment reassembler, split into several "datagrams" from
//! a few senders: never a panic, every completed message stays within a UDP datagram, and
//! afterwards a valid segmented message from a fresh sender still reassembles exactly.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use weft_sleeve::packet::MAX_UDP_PAYLOAD;
use weft_sleeve::segment::{segment_into, Pushed, Reassembler};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(4);
    // First byte picks the piece size, each piece's first byte its sender.
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1) * 8;
    for piece in rest.chunks(size) {
        let from = SocketAddr::from(([198, 18, 0, 1], u16::from(piece[0] % 6)));
        let mut p = piece.to_vec();
        // Make most pieces look like segments so the deeper checks run.
        if p.len() >= 7 && p[0] & 1 == 0 {
            p[..6].fill(0);
            p[6] = 1;
        }
        if let Ok(Pushed::Complete(m)) = r.push(from, &p) {
            assert!(m.len() <= MAX_UDP_PAYLOAD);
        }
    }
    let msg: Vec<u8> = rest.iter().copied().cycle().take(5000).collect();
    if msg.is_empty() {
        return;
    }
    let mut out = Vec::new();
    let plan = segment_into(&msg, 77, 1000, &mut out).expect("a valid plan");
    let seg = plan.chunk_len + weft_sleeve::segment::SEGMENT_HEADER_LEN;
    let from = SocketAddr::from(([198, 18, 0, 2], 6783));
    let mut done = false;
    for s in out.chunks(seg) {
        if let Ok(Pushed::Complete(m)) = r.push(from, s) {
            assert_eq!(m, &msg[..]);
            done = true;
        }
    }
    assert!(done);
});
