//! Arbitrary UDP payloads into the segment reassembler, split into several "datagrams" from
//! a few senders (clear and encrypted) at advancing times: never a panic, every completed
//! message stays within a UDP datagram, nothing completes on the encrypted sender (the
//! fuzzer cannot forge tags), memory stays bounded, and afterwards valid segmented messages
//! from the registered senders still reassemble exactly.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use weft_crypto::{SessionKey, Side};
use weft_sleeve::packet::MAX_UDP_PAYLOAD;
use weft_sleeve::segment::{segment_into, Pushed, Reassembler, SegmentKey, SLOTS};

const FIRST: u64 = 0x7fff_ffff_ffff_fffe;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let session = SessionKey::from_bytes([9u8; 32]);
    let mut r = Reassembler::new();
    r.add_sender(0u8, FIRST, None, start);
    r.add_sender(1u8, FIRST, Some(SegmentKey::new(&session, Side::Outbound)), start);
    // First byte picks the piece size, each piece's first byte its sender and time step.
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1) * 8;
    let mut now = start;
    for piece in rest.chunks(size) {
        let from = piece[0] % 3; // sender 2 is not registered
        now += Duration::from_millis(u64::from(piece[0] >> 2));
        r.expire(now);
        let mut p = piece.to_vec();
        // Make most pieces look like segments so the deeper checks run.
        if p.len() >= 7 && p[0] & 1 == 0 {
            p[..6].fill(0);
            p[6] = 2;
        }
        if let Ok(Pushed::Complete(m)) = r.push(from, &p, now) {
            assert!(m.len() <= MAX_UDP_PAYLOAD);
            assert_ne!(from, 1, "a message completed without valid tags");
        }
        assert!(r.in_progress() <= 2 * SLOTS);
        assert!(r.buffer_bytes() <= 2 * SLOTS * MAX_UDP_PAYLOAD);
    }
    let msg: Vec<u8> = rest.iter().copied().cycle().take(5000).collect();
    if msg.is_empty() {
        return;
    }
    // A valid message a little ahead of the first id (the fuzzer may have used some).
    let id = FIRST + 100;
    let key = SegmentKey::new(&session, Side::Outbound);
    // The clear sender's state is whatever the fuzzer made it (it can forge anything there):
    // register it afresh. The encrypted one must have been left untouched.
    r.add_sender(0u8, id, None, now);
    for (from, key) in [(0u8, None), (1u8, Some(&key))] {
        let mut out = Vec::new();
        let plan = segment_into(&msg, id, 1000, key, &mut out).expect("a valid plan");
        let mut done = false;
        for s in out.chunks(plan.segment_len()) {
            if let Ok(Pushed::Complete(m)) = r.push(from, s, now) {
                assert_eq!(m, &msg[..]);
                done = true;
            }
        }
        assert!(done);
    }
});
