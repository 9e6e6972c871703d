//! Unit tests of route computation: BFS order and tie-breaks, link filters, broadcast `stopAt`
//! hops, random neighbours (reference §3.6; §10 `TestRandomNeighbours`).

use std::collections::BTreeMap;

use super::test_util::{n, naive_broadcast, SplitMix};
use super::*;
use crate::PeerName;

/// A table seen from `local`, built from directed links `(from, to, established)`: the local
/// peer's own links via local operations, everyone else's via one update.
pub(crate) fn world(local: u64, links: &[(u64, u64, bool)]) -> Peers {
    let mut rng = SplitMix(1);
    let mut t = Peers::new(n(local), "local", 1, 0);
    let mut by_peer: BTreeMap<u64, Vec<(u64, bool)>> = BTreeMap::new();
    for &(a, b, est) in links {
        by_peer.entry(a).or_default().push((b, est));
        by_peer.entry(b).or_default();
    }
    let mut update = Vec::new();
    for (&p, conns) in &by_peer {
        if p == local {
            continue;
        }
        update.push(PeerUpdate {
            summary: PeerSummary {
                name_byte: n(p).to_bytes().to_vec(),
                nick_name: String::new(),
                uid: 100 + p,
                version: 1,
                short_id: 0,
                has_short_id: false,
            },
            connections: conns
                .iter()
                .map(|&(r, est)| ConnectionSummary {
                    name_byte: n(r).to_bytes().to_vec(),
                    remote_tcp_addr: String::new(),
                    outbound: true,
                    established: est,
                })
                .collect(),
        });
    }
    t.apply_update(&update, &mut rng).unwrap();
    for &(r, est) in by_peer.get(&local).map(Vec::as_slice).unwrap_or(&[]) {
        t.add_connection(n(r), "", true, est).unwrap();
    }
    t
}

/// Both directions of each pair, established.
pub(crate) fn sym(pairs: &[(u64, u64)]) -> Vec<(u64, u64, bool)> {
    pairs
        .iter()
        .flat_map(|&(a, b)| [(a, b, true), (b, a, true)])
        .collect()
}

fn names(v: &[u64]) -> Vec<PeerName> {
    v.iter().map(|&x| n(x)).collect()
}

#[test]
fn lowest_named_predecessor_claims_a_peer() {
    // 1 reaches 4 through both 3 and 2 (equal length): 2 wins because it sorts first.
    let t = world(1, &sym(&[(1, 3), (1, 2), (3, 4), (2, 4), (4, 5)]));
    let r = Routes::calculate(&t);
    assert_eq!(r.unicast(n(4)), Some(n(2)));
    assert_eq!(r.unicast(n(5)), Some(n(2)));
    assert_eq!(r.unicast(n(3)), Some(n(3)));
    assert_eq!(r.unicast(n(1)), None, "no route to ourselves");
    // Seen from 5: the level [4] fans out to 2 and 3; 1 is claimed via 4 either way.
    let r5 = Routes::calculate_from(&t, n(5)).unwrap();
    assert_eq!(r5.table(LinkFilter::EstablishedSymmetric).len(), 4);
    assert!(r5
        .table(LinkFilter::EstablishedSymmetric)
        .values()
        .all(|h| *h == n(4)));
}

#[test]
fn shortest_path_beats_name_order() {
    // 1–9 direct, 1–2–3–9 longer: 9 is reached directly even though 2 < 9.
    let t = world(1, &sym(&[(1, 9), (1, 2), (2, 3), (3, 9)]));
    let r = Routes::calculate(&t);
    assert_eq!(r.unicast(n(9)), Some(n(9)));
    assert_eq!(r.unicast(n(3)), Some(n(2)));
}

#[test]
fn filters_need_established_and_symmetric() {
    let links = [
        (1, 2, true),
        (2, 1, false), // 1–2: not established on 2's side
        (1, 3, true),  // 1→3 listed only by 1
        (4, 1, true),  // 4→1 listed only by 4
        (1, 5, false),
        (5, 1, true), // 1–5: not established on our side
        (1, 6, true),
        (6, 1, true), // 1–6: the only data-plane link
        (6, 7, true),
        (7, 6, true),
    ];
    let t = world(1, &links);
    let r = Routes::calculate(&t);
    assert_eq!(r.neighbours(LinkFilter::EstablishedSymmetric), names(&[6]));
    assert_eq!(r.neighbours(LinkFilter::All), names(&[2, 3, 5, 6]));
    for x in [2, 3, 4, 5] {
        assert_eq!(r.unicast(n(x)), None, "peer {x}");
    }
    assert_eq!(r.unicast(n(7)), Some(n(6)));
    // All links as gossiped, one-sided ones included; 4 only lists us, we do not list it.
    assert_eq!(r.unicast_all(n(3)), Some(n(3)));
    assert_eq!(r.unicast_all(n(5)), Some(n(5)));
    assert_eq!(r.unicast_all(n(4)), None);
    assert!(!r.is_reachable(LinkFilter::All, n(4)));
    // From 4, the one-sided link to us counts for gossip.
    let r4 = Routes::calculate_from(&t, n(4)).unwrap();
    assert_eq!(r4.unicast_all(n(7)), Some(n(1)));
    assert_eq!(r4.unicast(n(1)), None);
}

#[test]
fn broadcast_hops_use_stop_at() {
    // Square 1–2–4–3–1.
    let t = world(1, &sym(&[(1, 2), (2, 4), (1, 3), (3, 4)]));
    let at = |me: u64, src: u64| {
        Routes::calculate_from(&t, n(me))
            .unwrap()
            .broadcast(n(src))
            .to_vec()
    };
    assert_eq!(at(1, 1), names(&[2, 3]));
    assert_eq!(at(2, 1), names(&[4]));
    assert_eq!(at(3, 1), names(&[]), "4 was already reached through 2");
    assert_eq!(at(4, 1), names(&[]));
    // Triangle: the source sends to both, nobody relays.
    let t = world(1, &sym(&[(1, 2), (2, 3), (1, 3)]));
    let r2 = Routes::calculate_from(&t, n(2)).unwrap();
    assert!(r2.broadcast(n(1)).is_empty());
    assert_eq!(r2.broadcast(n(2)), names(&[1, 3]).as_slice());
    // Unknown or unreachable sources: no hops.
    assert!(r2.broadcast(n(77)).is_empty());
    for me in [2, 3] {
        for src in [1, 2, 3] {
            let r = Routes::calculate_from(&t, n(me)).unwrap();
            assert_eq!(
                r.broadcast(n(src)),
                naive_broadcast(&t, n(me), n(src), LinkFilter::EstablishedSymmetric).as_slice()
            );
        }
    }
}

#[test]
fn broadcast_is_empty_when_source_cannot_reach_us() {
    let t = world(1, &sym(&[(1, 2), (3, 4)]));
    let r = Routes::calculate(&t);
    assert!(r.broadcast(n(3)).is_empty());
    assert!(r.broadcast_all(n(3)).is_empty());
}

#[test]
fn random_neighbours_fan_out_and_fairness() {
    // 1 with 8 leaf neighbours: 9 entries in unicastAll → ⌊2·log2 9⌋ = 6 of them.
    let pairs: Vec<(u64, u64)> = (2..=9).map(|x| (1, x)).collect();
    let t = world(1, &sym(&pairs));
    let r = Routes::calculate(&t);
    let mut rng = SplitMix(99);
    let mut counts: BTreeMap<PeerName, usize> = BTreeMap::new();
    let rounds = 4000;
    for _ in 0..rounds {
        let pick = r.random_neighbours(Some(n(5)), &mut rng);
        assert_eq!(pick.len(), 6);
        let mut dedup = pick.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 6, "distinct");
        assert!(!pick.contains(&n(5)), "never the excluded neighbour");
        for p in pick {
            *counts.entry(p).or_default() += 1;
        }
    }
    // 7 candidates share 6 slots equally.
    let expected = rounds as f64 * 6.0 / 7.0;
    for (p, c) in counts {
        let dev = (c as f64 - expected).abs() / expected;
        assert!(dev < 0.2, "{p}: {c} vs {expected}");
    }
    // Fewer neighbours than the fan-out: all of them.
    let t = world(1, &sym(&[(1, 2), (1, 3), (3, 4), (4, 5), (5, 6)]));
    let r = Routes::calculate(&t);
    let mut all = r.random_neighbours(None, &mut rng);
    all.sort();
    assert_eq!(all, names(&[2, 3]));
}

#[test]
fn random_neighbours_favour_bottlenecks() {
    // Behind 2 lies a chain of 10 destinations, behind 3 only 3 itself: the first (weighted)
    // pick of each draw is 2 with probability 10/11.
    let mut pairs = vec![(1, 2), (1, 3), (2, 4)];
    pairs.extend((4..12).map(|x| (x, x + 1)));
    let t = world(1, &sym(&pairs));
    let r = Routes::calculate(&t);
    let mut rng = SplitMix(5);
    let mut first_is_2 = 0;
    for _ in 0..1000 {
        if r.random_neighbours(None, &mut rng).first() == Some(&n(2)) {
            first_is_2 += 1;
        }
    }
    assert!(first_is_2 > 800, "{first_is_2}");
}
