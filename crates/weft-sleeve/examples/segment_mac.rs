//! Micro-benchmark: the cost of the per-segment tags next to the sleeve's own encryption of
//! the same datagram. `cargo run --release -p weft-sleeve --example segment_mac`
//!
//! Prints, per 64 KiB datagram cut into 1472-byte segments: the secretbox seal (what the
//! encrypted sleeve already does), the segment one-time keys and tags (sender), and the
//! reassembly of the tagged segments (receiver: keys, tag checks, copies).

use std::hint::black_box;
use std::time::{Duration, Instant};

use weft_crypto::{SecretBox, SessionKey, Side};
use weft_sleeve::packet::MAX_UDP_PAYLOAD;
use weft_sleeve::segment::{MessageKeys, Plan, Pushed, Reassembler, SegmentKey};

fn time(label: &str, bytes: usize, mut f: impl FnMut(u64)) -> Duration {
    // Warm up, then as many rounds as fit in about a second.
    for i in 0..50 {
        f(i);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f(n + 100);
        n += 1;
    }
    let per = start.elapsed() / n as u32;
    let gbps = bytes as f64 * 8.0 / per.as_secs_f64() / 1e9;
    println!(
        "{label:<44} {:>8.1} µs  {gbps:>6.2} Gbit/s",
        per.as_secs_f64() * 1e6
    );
    per
}

fn main() {
    let len = MAX_UDP_PAYLOAD;
    let mut msg = vec![0x5au8; len];
    let session = SessionKey::from_bytes([3u8; 32]);
    let sb = SecretBox::new(session.as_bytes());
    let seal = time("secretbox seal of the datagram", len, |i| {
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&i.to_be_bytes());
        black_box(sb.seal_in_place_detached(&nonce, &mut msg));
    });
    let otk = [7u8; 32];
    time("one Poly1305 over the datagram", len, |_| {
        black_box(weft_crypto::secretbox::onetimeauth(&otk, black_box(&msg)));
    });
    time("46 Poly1305 over 1436-byte pieces", len, |_| {
        for c in msg.chunks(1436) {
            black_box(weft_crypto::secretbox::onetimeauth(&otk, black_box(c)));
        }
    });
    let key = SegmentKey::new(&session, Side::Outbound);
    let plan = Plan::new(len, 1472, true).expect("a plan");
    let mut keys = Box::<MessageKeys>::default();
    let tags = time("segment keys + tags (sender)", len, |i| {
        plan.message_keys(&key, i, &mut keys);
        for k in 0..plan.count {
            black_box(plan.header(i, k, &msg, Some(&keys)));
        }
    });
    let clear = Plan::new(len, 1472, false).expect("a plan");
    time("untagged headers (sender)", len, |i| {
        for k in 0..clear.count {
            black_box(clear.header(i, k, &msg, None));
        }
    });
    // Receiver: pre-cut the segments of many messages, then reassemble them.
    let now = Instant::now();
    let rx_key = || Some(SegmentKey::new(&session, Side::Outbound));
    for (label, tagged) in [
        ("reassembly of tagged segments", true),
        ("reassembly of untagged segments", false),
    ] {
        let mut r = Reassembler::new();
        r.add_sender(0u8, 100, if tagged { rx_key() } else { None }, now);
        let mut wire = Vec::new();
        let mut next = 100u64;
        let mut out = Vec::new();
        time(label, len, |_| {
            weft_sleeve::segment::segment_into(
                &msg,
                next,
                1472,
                if tagged { Some(&key) } else { None },
                &mut out,
            );
            wire.clear();
            wire.extend_from_slice(&out);
            let seg = if tagged {
                plan.segment_len()
            } else {
                clear.segment_len()
            };
            let mut done = false;
            for s in wire.chunks(seg) {
                if let Ok(Pushed::Complete(m)) = r.push(0u8, s, now) {
                    done = m.len() == len;
                }
            }
            assert!(done);
            next += 1;
        });
    }
    println!(
        "tags cost {:.0}% of the seal at the sender",
        tags.as_secs_f64() / seal.as_secs_f64() * 100.0
    );
}
