//! Property tests of the topology core.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::routes_tests::world;
use super::test_util::{flood_counts, n, naive_broadcast, naive_routes, SplitMix};
use super::*;
use crate::PeerName;

const MAX_PEERS: u64 = 10;

/// Random directed links among peers 1..=k: each ordered pair absent, listed, or listed and
/// established.
fn links() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    (2..=MAX_PEERS).prop_flat_map(|k| {
        proptest::collection::vec(0u8..3, (k * (k - 1)) as usize).prop_map(move |choice| {
            let mut out = Vec::new();
            let mut c = choice.into_iter();
            for a in 1..=k {
                for b in 1..=k {
                    if a == b {
                        continue;
                    }
                    match c.next() {
                        Some(1) => out.push((a, b, false)),
                        Some(2) => out.push((a, b, true)),
                        _ => {}
                    }
                }
            }
            out
        })
    })
}

/// Random undirected established links (a symmetric view).
fn sym_links() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    (2..=MAX_PEERS).prop_flat_map(|k| {
        proptest::collection::vec(any::<bool>(), (k * (k - 1) / 2) as usize).prop_map(move |bits| {
            let mut out = Vec::new();
            let mut b = bits.into_iter();
            for x in 1..=k {
                for y in x + 1..=k {
                    if b.next() == Some(true) {
                        out.push((x, y, true));
                        out.push((y, x, true));
                    }
                }
            }
            out
        })
    })
}

fn is_sym_established(t: &Peers, x: PeerName, y: PeerName) -> bool {
    let est = |a: PeerName, b: PeerName| {
        t.get(a)
            .and_then(|p| p.connections().get(&b))
            .is_some_and(|c| c.established)
    };
    est(x, y) && est(y, x)
}

/// A record whose content is a pure function of (name, uid, version), as in a real mesh.
fn versioned_record(name: u64, uid: u64, version: u64) -> PeerUpdate {
    let h = name
        .wrapping_mul(31)
        .wrapping_add(uid * 7)
        .wrapping_add(version * 13);
    let conns = (1..=6u64)
        .filter(|r| *r != name && (h >> r) & 1 == 1)
        .map(|r| ConnectionSummary {
            name_byte: n(r).to_bytes().to_vec(),
            remote_tcp_addr: format!("10.0.{version}.{r}:6783"),
            outbound: (h >> (r + 8)) & 1 == 1,
            established: (h >> (r + 16)) & 1 == 1,
        })
        .collect();
    PeerUpdate {
        summary: PeerSummary {
            name_byte: n(name).to_bytes().to_vec(),
            nick_name: format!("h{name}"),
            uid,
            version,
            short_id: h % 8,
            has_short_id: !h.is_multiple_of(3),
        },
        connections: conns,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Routes match the naive model from every origin; unicast hops are direct
    /// established-symmetric neighbours; every peer reachable over such links has a route.
    #[test]
    fn routes_match_model_and_use_symmetric_established_links(links in links()) {
        let t = world(1, &links);
        for origin in t.names().collect::<Vec<_>>() {
            let r = Routes::calculate_from(&t, origin).unwrap();
            for filter in [LinkFilter::EstablishedSymmetric, LinkFilter::All] {
                let (_, mut model) = naive_routes(&t, origin, None, filter);
                model.remove(&origin);
                prop_assert_eq!(r.table(filter), model);
            }
            for (dst, hop) in r.table(LinkFilter::EstablishedSymmetric) {
                prop_assert!(is_sym_established(&t, origin, hop), "{} -> {} via {}", origin, dst, hop);
            }
            for nb in r.neighbours(LinkFilter::EstablishedSymmetric) {
                prop_assert_eq!(r.unicast(nb), Some(nb));
            }
            for src in t.names() {
                for filter in [LinkFilter::EstablishedSymmetric, LinkFilter::All] {
                    let model = naive_broadcast(&t, origin, src, filter);
                    prop_assert_eq!(r.broadcast_hops(filter, src), model.as_slice());
                }
            }
        }
    }

    /// With identical, symmetric views a broadcast reaches each reachable peer exactly once.
    #[test]
    fn broadcast_reaches_everyone_once(links in sym_links()) {
        let t = world(1, &links);
        let routes: BTreeMap<PeerName, Routes> = t
            .names()
            .map(|p| (p, Routes::calculate_from(&t, p).unwrap()))
            .collect();
        for src in t.names() {
            let counts = flood_counts(&routes, src, LinkFilter::EstablishedSymmetric);
            let reachable = routes[&src].table(LinkFilter::EstablishedSymmetric).len() + 1;
            prop_assert_eq!(counts.len(), reachable);
            prop_assert!(counts.values().all(|&c| c == 1));
        }
    }

    /// Applying the same update twice changes nothing the second time.
    #[test]
    fn apply_is_idempotent(records in proptest::collection::vec((1u64..8, 1u64..4, 0u64..4), 1..12)) {
        let update: Vec<PeerUpdate> =
            records.iter().map(|&(p, u, v)| versioned_record(p, u, v)).collect();
        let mut t = Peers::new(n(0x1_0000), "me", 1, 4095);
        let mut rng = SplitMix(1);
        t.apply_update(&update, &mut rng).unwrap();
        let before = t.full_update();
        let again = t.apply_update(&update, &mut rng).unwrap();
        prop_assert!(again.improved.is_empty());
        prop_assert!(!again.local_changed);
        prop_assert_eq!(t.full_update(), before);
    }

    /// Records delivered one by one in any order converge to the same table and short-ID map.
    #[test]
    fn apply_order_does_not_matter(
        records in proptest::collection::vec((2u64..8, 1u64..4, 0u64..4), 1..16),
        seed in any::<u64>(),
    ) {
        let updates: Vec<PeerUpdate> =
            records.iter().map(|&(p, u, v)| versioned_record(p, u, v)).collect();
        let mut shuffled = updates.clone();
        let mut rng = SplitMix(seed);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        // The local peer has the lowest name, so it is never displaced from its short ID.
        let mut a = Peers::new(n(1), "me", 1, 0);
        let mut b = a.clone();
        for u in &updates {
            a.apply_update(std::slice::from_ref(u), &mut rng).unwrap();
        }
        for u in &shuffled {
            b.apply_update(std::slice::from_ref(u), &mut rng).unwrap();
        }
        prop_assert_eq!(a.full_update(), b.full_update());
        for id in 0..8 {
            prop_assert_eq!(a.fetch_by_short_id(id), b.fetch_by_short_id(id));
        }
    }

    /// A full update applied to a fresh table reproduces every record, and GC afterwards keeps
    /// exactly the peers reachable from the observer.
    #[test]
    fn full_update_round_trips(links in links()) {
        let t = world(1, &links);
        let mut obs = Peers::new(n(0x1_0000), "obs", 9, 1);
        let mut rng = SplitMix(2);
        obs.apply_update(&t.full_update(), &mut rng).unwrap();
        for p in t.iter() {
            prop_assert_eq!(obs.get(p.name()).map(Peer::to_update), Some(p.to_update()));
        }
        let gc = obs.garbage_collect(&mut rng);
        prop_assert_eq!(gc.removed.len(), t.len());
        let mut t2 = t.clone();
        let reach = t2.reachable_from_local();
        t2.garbage_collect(&mut rng);
        prop_assert_eq!(t2.names().collect::<std::collections::BTreeSet<_>>(), reach);
    }
}
