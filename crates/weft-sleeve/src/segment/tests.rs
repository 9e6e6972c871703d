use super::*;
use proptest::prelude::*;

const FIRST: u64 = 0xffff_ffff_ffff_fff0; // wraps within the tests

fn t0() -> Instant {
    Instant::now()
}

fn msg(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn session() -> SessionKey {
    SessionKey::from_bytes([42u8; 32])
}

fn segments(m: &[u8], id: u64, size: usize, key: Option<&SegmentKey>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let plan = segment_into(m, id, size, key, &mut out).unwrap();
    out.chunks(plan.segment_len()).map(<[u8]>::to_vec).collect()
}

/// A reassembler with sender 1 registered (clear, or encrypted with the dialler's key).
fn reassembler(encrypted: bool, now: Instant) -> Reassembler<u8> {
    let mut r = Reassembler::new();
    let key = encrypted.then(|| SegmentKey::new(&session(), Side::Outbound));
    r.add_sender(1, FIRST, key, now);
    r
}

/// Push all `segs` in order; the completed message if the last one completed it.
fn push_all(r: &mut Reassembler<u8>, segs: &[Vec<u8>], now: Instant) -> Option<Vec<u8>> {
    let mut done = None;
    for s in segs {
        if let Ok(Pushed::Complete(m)) = r.push(1, s, now) {
            done = Some(m.to_vec());
        }
    }
    done
}

#[test]
fn a_full_datagram_fits_the_limits() {
    let plan = Plan::new(MAX_UDP_PAYLOAD, 1472, false).unwrap();
    assert_eq!(plan.chunk_len, 1452);
    assert_eq!(plan.count, 46);
    assert_eq!(plan.per_send, 44);
    assert!(plan.per_send * plan.segment_len() <= MAX_UDP_PAYLOAD);
    let tagged = Plan::new(MAX_UDP_PAYLOAD, 1472, true).unwrap();
    assert_eq!(tagged.chunk_len, 1436);
    assert_eq!(tagged.segment_len(), 1472);
    assert!(Plan::new(MAX_UDP_PAYLOAD, MIN_SEGMENT, true).is_some());
    assert!(Plan::new(MAX_UDP_PAYLOAD, MIN_SEGMENT - 1, false).is_none());
    assert!(Plan::new(0, 1472, false).is_none());
    assert!(Plan::new(MAX_UDP_PAYLOAD + 1, 1472, false).is_none());
}

#[test]
fn header_layout_and_feature() {
    let h = header(0x0102_0304_0506_0708, 45, 3, 1456, b"", None);
    assert_eq!(
        h.as_bytes(),
        [0, 0, 0, 0, 0, 0, 2, 45, 3, 0, 0x05, 0xb0, 1, 2, 3, 4, 5, 6, 7, 8],
        "zero marker, version, count, index, flags, chunk, id"
    );
    assert!(is_segment(h.as_bytes()));
    assert!(!is_segment(&[0, 0, 0, 0, 0, 1, 0]));
    let key = SegmentKey::new(&session(), Side::Inbound);
    let mut keys = MessageKeys::default();
    key.message_keys(7, 45, 1456, &mut keys);
    let t = header(7, 45, 3, 1456, b"abc", Some(&keys));
    assert_eq!(t.as_bytes().len(), TAGGED_HEADER_LEN);
    assert_eq!(t.as_bytes()[9], 1);
    assert_eq!(&t.as_bytes()[20..], &keys.tag(3, b"abc").unwrap()[..]);
    assert_eq!(feature_value(0xab), "2/00000000000000ab");
    assert_eq!(parse_feature(&feature_value(FIRST)), Some(FIRST));
    assert_eq!(parse_feature("1"), None);
    assert_eq!(parse_feature("2/12"), None);
    assert_eq!(parse_feature("3/00000000000000ab"), None);
}

#[test]
fn keys_differ_by_direction_message_and_shape() {
    let (a, b) = (
        SegmentKey::new(&session(), Side::Outbound),
        SegmentKey::new(&session(), Side::Inbound),
    );
    let mut k = [
        MessageKeys::default(),
        MessageKeys::default(),
        MessageKeys::default(),
        MessageKeys::default(),
    ];
    a.message_keys(1, 4, 1000, &mut k[0]);
    b.message_keys(1, 4, 1000, &mut k[1]);
    a.message_keys(2, 4, 1000, &mut k[2]);
    a.message_keys(1, 4, 999, &mut k[3]);
    let tags: Vec<_> = k.iter().map(|k| k.tag(0, b"x").unwrap()).collect();
    for i in 0..4 {
        for j in i + 1..4 {
            assert_ne!(tags[i], tags[j]);
        }
    }
    assert_ne!(k[0].tag(0, b"x"), k[0].tag(1, b"x"), "per index");
    assert_eq!(k[0].tag(4, b"x"), None);
}

#[test]
fn in_order_and_reversed_reassemble() {
    for enc in [false, true] {
        let now = t0();
        let key = enc.then(|| SegmentKey::new(&session(), Side::Outbound));
        let m = msg(10_000);
        let mut r = reassembler(enc, now);
        let segs = segments(&m, FIRST, 1472, key.as_ref());
        assert_eq!(segs.len(), 7);
        for (i, s) in segs.iter().enumerate() {
            match r.push(1, s, now).unwrap() {
                Pushed::Complete(got) => {
                    assert_eq!(i, 6);
                    assert_eq!(got, &m[..]);
                }
                Pushed::Pending => assert!(i < 6),
                Pushed::Duplicate => panic!("duplicate"),
            }
        }
        // Repeats of a completed message are duplicates, not a new message.
        assert_eq!(r.push(1, &segs[2], now), Ok(Pushed::Duplicate));
        let segs = segments(&m, FIRST + 1, 1472, key.as_ref());
        let got = push_all(&mut r, &segs.iter().rev().cloned().collect::<Vec<_>>(), now);
        assert_eq!(got.as_deref(), Some(&m[..]));
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.stats.abandoned, 0);
    }
}

#[test]
fn interleaved_messages_and_duplicates() {
    let now = t0();
    let (a, b) = (msg(5_000), msg(3_000));
    let sa = segments(&a, FIRST, 1000, None);
    let sb = segments(&b, FIRST + 1, 1000, None);
    let mut r = reassembler(false, now);
    r.add_sender(2, 77, None, now);
    assert_eq!(r.push(1, &sa[0], now).unwrap(), Pushed::Pending);
    assert_eq!(r.push(1, &sa[0], now).unwrap(), Pushed::Duplicate);
    // The next message of the same sender interleaved with the first.
    for (x, y) in sa[1..sa.len() - 1].iter().zip(&sb[..sb.len() - 1]) {
        assert_eq!(r.push(1, y, now).unwrap(), Pushed::Pending);
        assert_eq!(r.push(1, x, now).unwrap(), Pushed::Pending);
    }
    // Another sender's message in between, from its own id sequence.
    let sc = segments(&a, 77, 1000, None);
    assert_eq!(push_all(&mut r, &sc[..2], now), None);
    assert!(matches!(r.push(1, sb.last().unwrap(), now), Ok(Pushed::Complete(m)) if m == &b[..]));
    let rest: Vec<_> = sa[sb.len() - 1..].to_vec();
    assert_eq!(push_all(&mut r, &rest, now).as_deref(), Some(&a[..]));
    assert_eq!(push_all(&mut r, &sc[2..], now).as_deref(), Some(&a[..]));
    assert_eq!(r.stats.abandoned, 0);
}

#[test]
fn a_lost_segment_costs_its_datagram_only_once_newer_ones_need_the_slot() {
    let now = t0();
    let m = msg(3_000);
    let mut r = reassembler(false, now);
    // Message FIRST loses its last segment.
    let lost = segments(&m, FIRST, 1000, None);
    push_all(&mut r, &lost[..2], now);
    // SLOTS − 1 more messages in progress: nobody is evicted yet.
    for k in 1..SLOTS as u64 {
        push_all(&mut r, &segments(&m, FIRST + k, 1000, None)[..1], now);
    }
    assert_eq!((r.in_progress(), r.stats.abandoned), (SLOTS, 0));
    // A newer message takes the lowest id's slot.
    let next = segments(&m, FIRST + SLOTS as u64, 1000, None);
    assert_eq!(push_all(&mut r, &next, now).as_deref(), Some(&m[..]));
    assert_eq!(r.stats.abandoned, 1);
    // The lost segment arriving late belongs to a message given up: not a new one.
    assert_eq!(r.push(1, &lost[2], now), Ok(Pushed::Duplicate));
    assert_eq!(r.in_progress(), SLOTS - 1);
    // Slots full again, with ids above a gap; an id from the gap is older than all of
    // them: refused, nothing evicted.
    let mut r = reassembler(false, now);
    for k in 10..10 + SLOTS as u64 {
        push_all(&mut r, &segments(&m, FIRST + k, 1000, None)[..1], now);
    }
    let older = segments(&m, FIRST + 6, 1000, None);
    assert_eq!(
        r.push(1, &older[0], now),
        Err(SegmentError::Stale(FIRST + 6))
    );
    assert_eq!((r.in_progress(), r.stats.abandoned), (SLOTS, 0));
}

#[test]
fn timeouts_free_slots() {
    let now = t0();
    let m = msg(3_000);
    let mut r = reassembler(false, now);
    push_all(&mut r, &segments(&m, FIRST, 1000, None)[..1], now);
    assert_eq!(r.poll_timeout(), Some(now + REASSEMBLY_TIMEOUT));
    assert_eq!(r.expire(now + REASSEMBLY_TIMEOUT / 2), 0);
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.expire(now + REASSEMBLY_TIMEOUT), 1);
    assert_eq!((r.in_progress(), r.stats.abandoned), (0, 1));
    assert_eq!(r.poll_timeout(), None);
    // A slot timed out but not yet expired is reused before a younger one is evicted.
    let later = now + REASSEMBLY_TIMEOUT * 3;
    for k in 1..=SLOTS as u64 {
        let at = if k == 2 {
            now + REASSEMBLY_TIMEOUT * 2
        } else {
            later
        };
        push_all(&mut r, &segments(&m, FIRST + k, 1000, None)[..1], at);
    }
    let at = now + REASSEMBLY_TIMEOUT * 3 + Duration::from_millis(1);
    let newer = segments(&m, FIRST + 10, 1000, None);
    assert_eq!(push_all(&mut r, &newer, at).as_deref(), Some(&m[..]));
    // Message FIRST + 1 (the lowest id) is still in progress: the timed-out one went.
    let one = segments(&m, FIRST + 1, 1000, None);
    assert_eq!(push_all(&mut r, &one[1..], at).as_deref(), Some(&m[..]));
    assert_eq!(r.stats.abandoned, 2);
}

#[test]
fn ids_outside_the_window_and_strangers_are_refused() {
    let now = t0();
    let m = msg(3_000);
    let mut r = reassembler(false, now);
    let far = segments(&m, FIRST.wrapping_add(WINDOW_AHEAD + 1), 1000, None);
    assert!(matches!(
        r.push(1, &far[0], now),
        Err(SegmentError::OutOfWindow { .. })
    ));
    let edge = segments(&m, FIRST.wrapping_add(WINDOW_AHEAD - 1), 1000, None);
    assert_eq!(push_all(&mut r, &edge, now).as_deref(), Some(&m[..]));
    // Before the first id: done already (duplicates) or behind the window.
    let before = segments(&m, FIRST.wrapping_sub(1), 1000, None);
    assert!(r.push(1, &before[0], now).is_err());
    assert_eq!(r.push(9, &far[0], now), Err(SegmentError::UnknownSender));
    assert_eq!(r.senders(), 1);
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn tags_are_required_and_checked_on_encrypted_links() {
    let now = t0();
    let key = SegmentKey::new(&session(), Side::Outbound);
    let m = msg(3_000);
    let mut r = reassembler(true, now);
    let real = segments(&m, FIRST, 1000, Some(&key));
    // Untagged, tagged with the wrong direction's key, or a changed chunk: refused.
    let clear = segments(&m, FIRST, 1000, None);
    assert_eq!(r.push(1, &clear[0], now), Err(SegmentError::Untagged));
    let other = SegmentKey::new(&session(), Side::Inbound);
    let wrong = segments(&m, FIRST, 1000, Some(&other));
    assert_eq!(r.push(1, &wrong[0], now), Err(SegmentError::BadTag));
    let mut forged = real[1].clone();
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(r.push(1, &forged, now), Err(SegmentError::BadTag));
    // A forged copy arriving before the real one does not take its place.
    assert_eq!(r.push(1, &real[0], now), Ok(Pushed::Pending));
    assert_eq!(r.push(1, &forged, now), Err(SegmentError::BadTag));
    assert_eq!(push_all(&mut r, &real[1..], now).as_deref(), Some(&m[..]));
    // Tagged segments on a clear link are refused.
    let mut c = reassembler(false, now);
    assert_eq!(c.push(1, &real[0], now), Err(SegmentError::UnexpectedTag));
    assert_eq!(r.stats.abandoned, 0);
}

#[test]
fn memory_is_bounded_and_buffers_reused() {
    let now = t0();
    let m = msg(MAX_UDP_PAYLOAD);
    let mut r = Reassembler::new();
    for s in 0..3u8 {
        r.add_sender(s, 1000, None, now);
    }
    for round in 0..20u64 {
        for s in 0..3u8 {
            for k in 0..SLOTS as u64 {
                let segs = segments(&m, 1000 + round * SLOTS as u64 + k, 1472, None);
                for seg in &segs[..segs.len() - 1] {
                    let _ = r.push(s, seg, now);
                }
            }
        }
    }
    assert!(r.buffer_bytes() <= 3 * SLOTS * MAX_UDP_PAYLOAD);
    let before = r.buffer_bytes();
    assert_eq!(r.in_progress(), 3 * SLOTS);
    r.remove(0);
    assert!(r.buffer_bytes() < before);
    assert_eq!(r.senders(), 2);
}

#[test]
fn bad_segments_are_refused() {
    let now = t0();
    let m = msg(3_000);
    let s = segments(&m, FIRST, 1000, None);
    assert_eq!(Segment::parse(&s[0][..10]), Err(SegmentError::Short(10)));
    let mut v = s[0].clone();
    v[6] = 1;
    assert_eq!(Segment::parse(&v), Err(SegmentError::Version(1)));
    let mut v = s[0].clone();
    v[9] = 2;
    assert_eq!(Segment::parse(&v), Err(SegmentError::Flags(2)));
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
    let mut v = s[0][..SEGMENT_HEADER_LEN + 4].to_vec();
    v[9] = 1;
    assert!(matches!(Segment::parse(&v), Err(SegmentError::Short(_))));
    // A segment that claims a different shape than its message's first one.
    let mut r = reassembler(false, now);
    r.push(1, &s[0], now).unwrap();
    let other = segments(&msg(3_000), FIRST, 1500, None);
    assert_eq!(r.push(1, &other[1], now), Err(SegmentError::Inconsistent));
    // Claims a message longer than a datagram.
    let mut v = header(5, 128, 0, 1000, b"", None).as_bytes().to_vec();
    v.extend_from_slice(&[0u8; 1000]);
    assert!(matches!(Segment::parse(&v), Err(SegmentError::TooLong(_))));
    assert_eq!(SegmentError::BadTag.reason(), "segment_forged");
    assert_eq!(SegmentError::Stale(1).reason(), "segment_stale");
}

/// Deterministic xorshift for the property tests.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

proptest! {
    #[test]
    fn any_message_round_trips_in_any_order(
        len in 1usize..=MAX_UDP_PAYLOAD,
        size in MIN_SEGMENT..9000usize,
        seed in any::<u64>(),
        enc in any::<bool>(),
    ) {
        let now = t0();
        let key = enc.then(|| SegmentKey::new(&session(), Side::Outbound));
        let m = msg(len);
        let mut segs = segments(&m, FIRST, size, key.as_ref());
        let mut next = rng(seed);
        for i in (1..segs.len()).rev() {
            segs.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let mut r = reassembler(enc, now);
        let n = segs.len();
        for (i, s) in segs.iter().enumerate() {
            match r.push(1, s, now).unwrap() {
                Pushed::Complete(got) => { prop_assert_eq!(i, n - 1); prop_assert_eq!(&got[..], &m[..]); }
                Pushed::Pending => prop_assert!(i < n - 1),
                Pushed::Duplicate => prop_assert!(false, "duplicate"),
            }
        }
    }

    /// A stream of datagrams, each of its segments followed by spoofed segments with
    /// random ids and indices (a spoofer that does not know the ids) and by duplicates,
    /// and neighbouring datagrams reordered: every real datagram comes out, once.
    #[test]
    fn blind_spoofing_costs_no_datagram(
        seed in any::<u64>(),
        enc in any::<bool>(),
        msgs in 1usize..12,
    ) {
        let now = t0();
        let key = enc.then(|| SegmentKey::new(&session(), Side::Outbound));
        let mut next = rng(seed);
        let mut r = reassembler(enc, now);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for k in 0..msgs as u64 {
            let m: Vec<u8> = (0..2000 + (next() % 30_000) as usize).map(|_| next() as u8).collect();
            let segs = segments(&m, FIRST.wrapping_add(k), 1472, key.as_ref());
            want.push(m);
            for s in segs {
                // Spoofed: random id, index, count and payload, tagged as the link is.
                let count = 1 + (next() % 40) as u8;
                let id = next();
                let fake_key = SegmentKey::new(&SessionKey::from_bytes([7; 32]), Side::Outbound);
                let mut fk = MessageKeys::default();
                fake_key.message_keys(id, count, 1000, &mut fk);
                let index = (next() % u64::from(count)) as u8;
                let chunk = vec![next() as u8; if index + 1 == count { 10 } else { 1000 }];
                let mut f = header(id, count, index, 1000, &chunk, enc.then_some(&fk)).as_bytes().to_vec();
                f.extend_from_slice(&chunk);
                wire.push(f);
                if next().is_multiple_of(5) {
                    wire.push(s.clone());
                }
                wire.push(s);
            }
        }
        // Swap some neighbours (reordering).
        for i in 1..wire.len() {
            if next().is_multiple_of(7) {
                wire.swap(i - 1, i);
            }
        }
        let mut got = Vec::new();
        for w in &wire {
            if let Ok(Pushed::Complete(m)) = r.push(1, w, now) {
                got.push(m.to_vec());
            }
        }
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
        prop_assert_eq!(r.stats.abandoned, 0);
        prop_assert_eq!(r.in_progress(), 0);
    }

    /// An on-path forger who knows the ids but not the key: forged copies of real
    /// segments (same id, index and shape) sent first cost nothing on encrypted links.
    #[test]
    fn forged_segments_with_the_right_id_are_rejected(seed in any::<u64>()) {
        let now = t0();
        let key = SegmentKey::new(&session(), Side::Outbound);
        let mut next = rng(seed);
        let mut r = reassembler(true, now);
        for k in 0..4u64 {
            let m: Vec<u8> = (0..20_000).map(|_| next() as u8).collect();
            let segs = segments(&m, FIRST.wrapping_add(k), 1472, Some(&key));
            let mut done = None;
            for s in &segs {
                let mut f = s.clone();
                let at = TAGGED_HEADER_LEN + (next() as usize % (f.len() - TAGGED_HEADER_LEN));
                f[at] ^= 1 + (next() % 255) as u8;
                prop_assert_eq!(r.push(1, &f, now), Err(SegmentError::BadTag));
                if let Ok(Pushed::Complete(got)) = r.push(1, s, now) {
                    done = Some(got.to_vec());
                }
            }
            prop_assert_eq!(done.as_deref(), Some(&m[..]));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let now = t0();
        for enc in [false, true] {
            let mut r = reassembler(enc, now);
            let mut d = data.clone();
            if d.len() >= 7 { d[..6].fill(0); d[6] = SEGMENT_VERSION; }
            let _ = r.push(1, &d, now);
            let _ = r.push(1, &data, now);
        }
    }
}
