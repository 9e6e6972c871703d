use super::*;
use proptest::prelude::*;

fn p(n: u64) -> PeerName {
    PeerName::from_u64(n).unwrap()
}

const START: u64 = 0x0a20_0000;
const END: u64 = 0x0a30_0000;

fn ring(me: u64) -> Ring {
    Ring::new(Range::new(START, END), p(me))
}

fn layout(r: &Ring) -> Vec<(String, u64, u64, u32, u32)> {
    (0..r.entries().len())
        .map(|i| {
            let e = r.entries()[i];
            (
                fmt_addr(e.token),
                e.peer.as_u64(),
                r.entry_size(i),
                e.version,
                e.free,
            )
        })
        .collect()
}

fn no_allocs(_: &[Range]) -> bool {
    false
}

#[test]
fn claim_for_peers_splits_cidr_aligned() {
    let mut r = ring(1);
    r.claim_for_peers(&[p(3), p(1), p(3)]);
    assert_eq!(
        layout(&r),
        vec![
            ("10.32.0.0".into(), 1, 524288, 0, 524288),
            ("10.40.0.0".into(), 3, 524288, 0, 524288)
        ]
    );
    assert_eq!(r.seeds(), &[p(1), p(3)]);
    let mut r = ring(1);
    r.claim_for_peers(&[p(1), p(2), p(3)]);
    let sizes: Vec<u64> = layout(&r).iter().map(|l| l.2).collect();
    assert_eq!(sizes, vec![1 << 19, 1 << 18, 1 << 18]);
}

#[test]
fn grant_reproduces_the_capture() {
    // h3's view: donation of 10.44.0.0-10.47.255.255 to h2.
    let mut h3 = ring(3);
    h3.claim_for_peers(&[p(1), p(3)]);
    assert!(h3.grant_range_to_host(0x0a2c_0000, END, p(2)));
    assert_eq!(
        layout(&h3),
        vec![
            ("10.32.0.0".into(), 1, 524288, 0, 524288),
            ("10.40.0.0".into(), 3, 262144, 1, 262144),
            ("10.44.0.0".into(), 2, 262144, 0, 262144)
        ]
    );
    // h1's view: it allocated two addresses (free reported twice), then gives 10.32.0.100.
    let mut h1 = ring(1);
    assert!(h1.merge(&h3.to_wire(), no_allocs).unwrap());
    h1.report_free(|_| 524287);
    h1.report_free(|_| 524286);
    assert!(h1.grant_range_to_host(0x0a20_0064, 0x0a20_0065, p(2)));
    assert_eq!(
        layout(&h1),
        vec![
            ("10.32.0.0".into(), 1, 100, 3, 100),
            ("10.32.0.100".into(), 2, 1, 0, 1),
            ("10.32.0.101".into(), 1, 524187, 0, 524187),
            ("10.40.0.0".into(), 3, 262144, 1, 262144),
            ("10.44.0.0".into(), 2, 262144, 0, 262144)
        ]
    );
    // rmpeer h3: version += 100
    let moved = h1.transfer(p(3), p(1));
    assert_eq!(moved, vec![Range::new(0x0a28_0000, 0x0a2c_0000)]);
    assert_eq!(h1.entries()[3].version, 101);
    assert_eq!(h1.owner(0x0a28_0001), Some(p(1)));
    assert_eq!(h1.owner(0x0a2c_0001), Some(p(2)));
    assert_eq!(h1.owner(0x0a30_0000), None);
}

#[test]
fn grant_refuses_what_we_do_not_own() {
    let mut r = ring(1);
    r.claim_for_peers(&[p(1), p(3)]);
    let before = r.clone();
    assert!(!r.grant_range_to_host(0x0a28_0000, 0x0a28_0010, p(2)));
    assert!(!r.grant_range_to_host(0x0a27_0000, 0x0a29_0000, p(2)));
    assert_eq!(r, before);
}

#[test]
fn merge_error_texts_and_no_corruption() {
    let mut h1 = ring(1);
    h1.claim_for_peers(&[p(1), p(3)]);
    let before = h1.clone();
    let allocs = |_: &[Range]| true;

    // Someone says they own our 10.32.0.0 at the same version.
    let mut w = h1.to_wire();
    w.entries[0].peer = p(2);
    assert_eq!(
        h1.merge(&w, allocs).unwrap_err().to_string(),
        "Inconsistent entries for 10.32.0.0: owned by 00:00:00:00:00:01 but incoming message says 00:00:00:00:00:02"
    );
    // ... at a newer version.
    w.entries[0].version = 5;
    assert_eq!(
        h1.merge(&w, allocs).unwrap_err().to_string(),
        "Received update for IP range I own at 10.32.0.0 v0: incoming message says owner 00:00:00:00:00:02 v5"
    );
    // A token inside our range given to someone else.
    let mut w = h1.to_wire();
    w.entries.insert(
        1,
        EntryWire {
            token: 0x0a21_0000,
            peer: p(2),
            version: 0,
            free: 0,
        },
    );
    w.entries[0].free = 0x1_0000;
    assert_eq!(
        h1.merge(&w, allocs).unwrap_err().to_string(),
        "Peer 00:00:00:00:00:02 says it owns the IP range from 10.33.0.0, which I think I own"
    );
    // Absurd free count, unsorted, repeated, out of range, too many.
    let mut w = h1.to_wire();
    w.entries[0].free = u32::MAX;
    assert!(matches!(
        h1.merge(&w, no_allocs),
        Err(RingError::TooMuchFree { .. })
    ));
    let mut w = h1.to_wire();
    w.entries.swap(0, 1);
    assert_eq!(h1.merge(&w, no_allocs), Err(RingError::NotSorted));
    let mut w = h1.to_wire();
    w.entries[1].token = w.entries[0].token;
    assert_eq!(h1.merge(&w, no_allocs), Err(RingError::TokenRepeated));
    let mut w = h1.to_wire();
    w.entries[1].token = 0x0b00_0000;
    assert_eq!(h1.merge(&w, no_allocs), Err(RingError::TokenOutOfRange));
    let mut w = h1.to_wire();
    w.entries = (0..70000u32)
        .map(|i| EntryWire {
            token: START as u32 + i,
            peer: p(2),
            version: 0,
            free: 0,
        })
        .collect();
    assert_eq!(
        h1.merge(&w, no_allocs),
        Err(RingError::TooManyEntries(70000))
    );
    // Different seeds / range.
    let mut w = h1.to_wire();
    w.seeds = vec![p(1), p(2)];
    assert!(matches!(
        h1.merge(&w, no_allocs),
        Err(RingError::DifferentSeeds { .. })
    ));
    let mut w = h1.to_wire();
    w.end = 0x0a40_0000;
    assert!(matches!(
        h1.merge(&w, no_allocs),
        Err(RingError::DifferentRange { .. })
    ));
    assert_eq!(h1, before, "a refused merge changed nothing");
}

#[test]
fn merge_rules_accept_newer_and_repair() {
    let mut h1 = ring(1);
    h1.claim_for_peers(&[p(1), p(3)]);
    let mut h3 = ring(3);
    assert!(h3.merge(&h1.to_wire(), no_allocs).unwrap());
    assert_eq!(h3.seeds(), &[p(1), p(3)]);
    // h3 reports free: newer version travels to h1.
    h3.report_free(|_| 10);
    assert!(h1.merge(&h3.to_wire(), no_allocs).unwrap());
    assert_eq!(h1.entries()[1].free, 10);
    // an older copy changes nothing
    let mut old = h3.to_wire();
    old.entries[1].version = 0;
    old.entries[1].free = 99;
    assert!(!h1.merge(&old, no_allocs).unwrap());
    assert_eq!(h1.entries()[1].free, 10);
    // they say our entry is ours at a newer version: we impose ours with theirs+1
    let mut w = h1.to_wire();
    w.entries[0].version = 7;
    w.entries[0].free = 3;
    assert!(h1.merge(&w, no_allocs).unwrap());
    assert_eq!(h1.entries()[0].version, 8);
    // repair: newer entry gives our range away and we have nothing there
    let mut w = h1.to_wire();
    w.entries[0].version = 20;
    w.entries[0].peer = p(3);
    assert!(h1.merge(&w, no_allocs).unwrap());
    assert_eq!(h1.owner(START), Some(p(3)));
}

proptest! {
    /// Random edits of a valid ring merged into a peer with allocations everywhere never take
    /// an owned address away and never leave an invalid ring.
    #[test]
    fn merge_never_takes_allocated_space(
        edits in proptest::collection::vec((0usize..8, 0u32..(1 << 20), 1u64..5, 0u32..300, 0u32..1_000_000), 1..12)
    ) {
        let mut mine = ring(1);
        mine.claim_for_peers(&[p(1), p(2), p(3), p(4)]);
        let mut w = mine.to_wire();
        for (kind, tok, peer, ver, free) in edits {
            let n = w.entries.len();
            let i = (tok as usize) % n;
            match kind {
                0 => w.entries[i].peer = p(peer),
                1 => w.entries[i].version = ver,
                2 => w.entries[i].free = free,
                3 => {
                    let t = START as u32 + tok;
                    if !w.entries.iter().any(|e| e.token == t) {
                        w.entries.push(EntryWire { token: t, peer: p(peer), version: ver, free: 0 });
                        w.entries.sort_by_key(|e| e.token);
                    }
                }
                _ => w.entries[i].version = w.entries[i].version.wrapping_add(ver),
            }
        }
        let before = mine.owned_ranges();
        let had = mine.clone();
        match mine.merge(&w, |_| true) {
            Ok(_) => {
                // everything we owned (all allocated) is still ours
                for r in &before {
                    prop_assert_eq!(mine.owner(r.start), Some(p(1)));
                    for e in mine.entries() {
                        if r.contains(u64::from(e.token)) {
                            prop_assert_eq!(e.peer, p(1));
                        }
                    }
                }
                prop_assert!(mine.check_entries(mine.entries()).is_ok());
            }
            Err(_) => prop_assert_eq!(mine, had),
        }
    }
}
