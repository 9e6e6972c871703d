//! Unit tests of the peer table: apply rules, placeholders, GC and short IDs
//! (test ideas from reference §10 `peers_test.go` and Appendix A vectors D and I).

use std::collections::BTreeSet;

use super::test_util::{connect, disconnect, n, no_rng, table, Mesh, SplitMix};
use super::*;
use crate::PeerName;

fn name(s: &str) -> PeerName {
    s.parse().unwrap()
}

fn record(v: u64, uid: u64, version: u64, short: Option<u16>, conns: &[(u64, bool)]) -> PeerUpdate {
    PeerUpdate {
        summary: PeerSummary {
            name_byte: n(v).to_bytes().to_vec(),
            nick_name: format!("host{v}"),
            uid,
            version,
            short_id: u64::from(short.unwrap_or(0)),
            has_short_id: short.is_some(),
        },
        connections: conns
            .iter()
            .map(|&(r, est)| ConnectionSummary {
                name_byte: n(r).to_bytes().to_vec(),
                remote_tcp_addr: format!("10.0.0.{r}:6783"),
                outbound: true,
                established: est,
            })
            .collect(),
    }
}

/// Appendix A vector D, decoded.
fn vector_d() -> Vec<PeerUpdate> {
    vec![
        PeerUpdate {
            summary: PeerSummary {
                name_byte: vec![0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc],
                nick_name: "host1".into(),
                uid: 0x0102_0304_0506_0708,
                version: 3,
                short_id: 0x123,
                has_short_id: true,
            },
            connections: vec![ConnectionSummary {
                name_byte: vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01],
                remote_tcp_addr: "10.0.0.2:6783".into(),
                outbound: true,
                established: true,
            }],
        },
        PeerUpdate {
            summary: PeerSummary {
                name_byte: vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01],
                nick_name: "host2".into(),
                uid: 42,
                version: 1,
                short_id: 0x456,
                has_short_id: true,
            },
            connections: vec![ConnectionSummary {
                name_byte: vec![0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc],
                remote_tcp_addr: "10.0.0.1:43210".into(),
                outbound: false,
                established: true,
            }],
        },
    ]
}

#[test]
fn vector_d_round_trips_and_routes() {
    let mut obs = table(0x99);
    let out = obs.apply_update(&vector_d(), &mut no_rng()).unwrap();
    let (p1, p2) = (name("12:34:56:78:9a:bc"), name("de:ad:be:ef:00:01"));
    assert_eq!(out.received, vec![p1, p2]);
    assert_eq!(out.improved, BTreeSet::from([p1, p2]));
    assert!(!out.local_changed);
    // Re-encoding gives back exactly the decoded vector.
    assert_eq!(obs.incremental_update(&[p1, p2]), vector_d());
    assert_eq!(obs.fetch_by_short_id(0x123), Some(p1));
    assert_eq!(obs.fetch_by_short_id(0x456), Some(p2));
    // The link is established on both sides: p1 routes to p2 directly, on both filters.
    let r = Routes::calculate_from(&obs, p1).unwrap();
    assert_eq!(r.unicast(p2), Some(p2));
    assert_eq!(r.unicast_all(p2), Some(p2));
    assert_eq!(r.broadcast(p1), &[p2]);
    // The observer is connected to neither: unreachable, and GC drops both.
    assert_eq!(Routes::calculate(&obs).unicast_all(p1), None);
    let gc = obs.garbage_collect(&mut no_rng());
    assert_eq!(gc.removed, vec![p1, p2]);
    assert!(!gc.short_ids_invalidated && obs.len() == 1);
}

#[test]
fn vector_i_name_only_peer() {
    let only = PeerUpdate {
        summary: PeerSummary {
            name_byte: vec![0, 0, 0, 0, 0, 1],
            ..Default::default()
        },
        connections: vec![],
    };
    let mut obs = table(0x99);
    let out = obs
        .apply_update(std::slice::from_ref(&only), &mut no_rng())
        .unwrap();
    assert_eq!(out.improved, BTreeSet::from([n(1)]));
    let p = obs.get(n(1)).unwrap();
    assert!(p.is_placeholder() && p.short_id().is_none() && p.connections().is_empty());
    assert_eq!(obs.incremental_update(&[n(1)]), vec![only.clone()]);
    // The same name-only record again changes nothing.
    let again = obs.apply_update(&[only], &mut no_rng()).unwrap();
    assert!(again.improved.is_empty());
}

#[test]
fn newer_wins_rules() {
    let mut t = table(0x99);
    t.apply_update(&[record(1, 50, 5, None, &[])], &mut no_rng())
        .unwrap();
    let improved = |t: &mut Peers, u: PeerUpdate| {
        !t.apply_update(&[u], &mut no_rng())
            .unwrap()
            .improved
            .is_empty()
    };
    // Older version: skipped, even with a larger UID.
    assert!(!improved(&mut t, record(1, 99, 4, None, &[(2, true)])));
    // Same version, smaller UID: skipped.
    assert!(!improved(&mut t, record(1, 49, 5, None, &[(2, true)])));
    // Same version and UID, no short ID gained: skipped.
    assert!(!improved(&mut t, record(1, 50, 5, None, &[(2, true)])));
    assert!(t.get(n(1)).unwrap().connections().is_empty());
    // Same version and UID, gaining a short ID: adopted.
    assert!(improved(&mut t, record(1, 50, 5, Some(7), &[(2, true)])));
    assert_eq!(t.get(n(1)).unwrap().short_id(), Some(7));
    assert_eq!(t.fetch_by_short_id(7), Some(n(1)));
    // Same version and UID, already has one: skipped even if the ID differs.
    assert!(!improved(&mut t, record(1, 50, 5, Some(9), &[])));
    // Same version, larger UID (a restarted peer): adopted.
    assert!(improved(&mut t, record(1, 51, 5, Some(9), &[])));
    assert_eq!(t.fetch_by_short_id(9), Some(n(1)));
    assert_eq!(t.fetch_by_short_id(7), None);
    // Newer version: adopted, including a lower UID and dropping the short ID.
    assert!(improved(&mut t, record(1, 3, 6, None, &[])));
    let p = t.get(n(1)).unwrap();
    assert_eq!((p.uid(), p.version(), p.short_id()), (3, 6, None));
}

#[test]
fn placeholders_for_names_only_referenced() {
    let mut t = table(0x99);
    let out = t
        .apply_update(
            &[record(1, 10, 1, None, &[(2, true), (3, false)])],
            &mut no_rng(),
        )
        .unwrap();
    assert_eq!(out.improved, BTreeSet::from([n(1)]));
    for v in [2, 3] {
        let p = t.get(n(v)).unwrap();
        assert!(p.is_placeholder() && p.version() == 0);
    }
    // A real record, even at Version 0, replaces the placeholder (UID > 0).
    let out = t
        .apply_update(&[record(2, 20, 0, None, &[])], &mut no_rng())
        .unwrap();
    assert_eq!(out.improved, BTreeSet::from([n(2)]));
    assert_eq!(t.get(n(2)).unwrap().uid(), 20);
    // A connection to a name carried in the same update does not create a placeholder.
    let mut t = table(0x99);
    t.apply_update(
        &[
            record(5, 1, 1, None, &[(6, true)]),
            record(6, 2, 1, None, &[(5, true)]),
        ],
        &mut no_rng(),
    )
    .unwrap();
    assert_eq!(t.get(n(6)).unwrap().uid(), 2);
}

#[test]
fn malformed_updates_change_nothing() {
    let mut t = table(0x99);
    t.apply_update(&[record(1, 10, 1, None, &[])], &mut no_rng())
        .unwrap();
    let before = t.full_update();
    let mut bad = record(1, 10, 9, None, &[(2, true)]);
    bad.connections[0].name_byte.push(0);
    let good = record(3, 1, 1, None, &[]);
    assert_eq!(
        t.apply_update(&[good.clone(), bad], &mut no_rng()),
        Err(TopologyError::BadNameLength { len: 7 })
    );
    let mut overflow = record(4, 1, 1, Some(1), &[]);
    overflow.summary.short_id = 70_000;
    assert_eq!(
        t.apply_update(&[good, overflow], &mut no_rng()),
        Err(TopologyError::ShortIdOverflow(70_000, n(4)))
    );
    assert_eq!(t.full_update(), before);
}

#[test]
fn updates_about_ourselves() {
    let mut t = table(1); // UID 1001, Version 0
    t.add_connection(n(1), "x", true, true).unwrap_err();
    let me = t.local().clone();
    // Same UID, higher version: never adopted, no bump.
    let out = t
        .apply_update(&[record(1, 1001, 50, None, &[(7, true)])], &mut no_rng())
        .unwrap();
    assert!(out.improved.is_empty() && !out.local_changed);
    assert_eq!(t.local(), &me);
    // An old incarnation (other UID) at Version 50: we go to 51 and must gossip ourselves.
    let out = t
        .apply_update(&[record(1, 77, 50, None, &[])], &mut no_rng())
        .unwrap();
    assert!(out.improved.is_empty() && out.local_changed);
    assert_eq!(t.local().version(), 51);
    assert!(t.local().connections().is_empty());
    // An old incarnation behind us: nothing to do.
    let out = t
        .apply_update(&[record(1, 77, 10, None, &[])], &mut no_rng())
        .unwrap();
    assert!(!out.local_changed);
    assert_eq!(t.local().version(), 51);
}

#[test]
fn local_changes_bump_version() {
    let mut rng = SplitMix(1);
    let mut t = table(1);
    assert_eq!(
        t.add_connection(n(2), "10.0.0.2:6783", true, false),
        Err(TopologyError::UnknownPeer(n(2)))
    );
    let f = t.fetch_with_default(n(2), "h2", 5, Some(2), &mut rng);
    assert!(f.is_new && !f.is_restarted);
    assert_eq!(t.add_connection(n(2), "10.0.0.2:6783", true, false), Ok(1));
    assert_eq!(t.connection_established(n(2)), Ok(2));
    assert_eq!(t.connection_established(n(2)), Ok(2));
    assert_eq!(
        t.connection_established(n(3)),
        Err(TopologyError::NoSuchConnection(n(3)))
    );
    // A handshake with a restarted n(2) (other UID).
    let f = t.fetch_with_default(n(2), "h2", 6, Some(2), &mut rng);
    assert!(!f.is_new && f.is_restarted);
    assert_eq!(t.get(n(2)).unwrap().local_ref_count(), 2);
    t.dereference(n(2)).unwrap();
    t.dereference(n(2)).unwrap();
    assert_eq!(t.dereference(n(2)), Err(TopologyError::NotReferenced(n(2))));
    // Deleting the connection bumps the version and collects the now-unreferenced peer.
    let gc = t.delete_connection(n(2), &mut rng).unwrap();
    assert_eq!(gc.removed, vec![n(2)]);
    assert_eq!(t.local().version(), 3);
}

/// TestPeersGarbageCollection: a peer goes only when no gossiped link reaches it.
#[test]
fn garbage_collection_three_peers() {
    let mut rng = SplitMix(3);
    let (mut a, mut b, mut c) = (table(1), table(2), table(3));
    connect(&mut a, &mut b, true, &mut rng);
    connect(&mut b, &mut c, false, &mut rng);
    // a learns b's and c's records through b.
    a.apply_update(&b.full_update(), &mut rng).unwrap();
    a.apply_update(&c.incremental_update(&[n(3)]), &mut rng)
        .unwrap();
    assert!(a.garbage_collect(&mut rng).removed.is_empty());
    // Not established is still a link for GC purposes: c stays.
    assert!(a.contains(n(3)));
    // b drops c; c only lists b, which no longer lists c: c is unreachable from a.
    disconnect(&mut b, &mut c, &mut rng);
    a.apply_update(&b.incremental_update(&[n(2)]), &mut rng)
        .unwrap();
    assert_eq!(a.garbage_collect(&mut rng).removed, vec![n(3)]);
    // A local reference protects an unreachable peer.
    a.fetch_with_default(n(9), "h9", 9, None, &mut rng);
    assert!(a.garbage_collect(&mut rng).removed.is_empty());
    a.dereference(n(9)).unwrap();
    assert_eq!(a.garbage_collect(&mut rng).removed, vec![n(9)]);
}

/// TestPeersEncoding: random connection changes on 20 routers; after each step, applying
/// each router's own record to an outside observer reproduces it exactly.
#[test]
fn encoding_reproduces_peers() {
    let mut rng = SplitMix(20);
    let mut routers: Vec<Peers> = (1..=20).map(table).collect();
    let mut obs = table(0x999);
    for _ in 0..300 {
        let i = rng.below(20) as usize;
        let j = rng.below(20) as usize;
        if i == j {
            continue;
        }
        let (lo, hi) = (i.min(j), i.max(j));
        let (left, right) = routers.split_at_mut(hi);
        let (a, b) = (&mut left[lo], &mut right[0]);
        if a.local().connections().contains_key(&b.local_name()) {
            disconnect(a, b, &mut rng);
        } else {
            connect(a, b, rng.below(2) == 0, &mut rng);
        }
        for r in &routers {
            obs.apply_update(&r.incremental_update(&[r.local_name()]), &mut rng)
                .unwrap();
        }
        for r in &routers {
            assert_eq!(
                obs.incremental_update(&[r.local_name()]),
                r.incremental_update(&[r.local_name()])
            );
        }
    }
}

/// TestShortIDCollisions: many peers on random IDs; the principal is always the lowest name.
#[test]
fn short_id_principal_is_lowest_name() {
    let mut rng = SplitMix(4096);
    let mut t = table(0xffff_ffff); // high name: never displaces anyone
    let mut versions = std::collections::BTreeMap::new();
    for step in 0..6000u64 {
        let v = 1 + rng.below(4096);
        let version = versions.entry(v).or_insert(0u64);
        *version += 1;
        let short = if step % 7 == 0 {
            None
        } else {
            Some(rng.below(4096) as u16)
        };
        t.apply_update(&[record(v, v, *version, short, &[])], &mut rng)
            .unwrap();
    }
    for id in 0..4096u16 {
        let claimants: Vec<PeerName> = t
            .iter()
            .filter(|p| p.short_id() == Some(id))
            .map(|p| p.name())
            .collect();
        assert_eq!(t.fetch_by_short_id(id), claimants.iter().min().copied());
        let mut others = t.short_id_others(id);
        others.sort();
        assert_eq!(
            others,
            claimants.iter().skip(1).copied().collect::<Vec<_>>()
        );
    }
}

/// TestShortIDReassignmentEasy / TestShortIDInvalidation: a lower name takes our ID; we
/// re-draw a free one at once, Version++, and the mapping change is reported.
#[test]
fn short_id_reassignment_easy() {
    let mut t = Peers::new(n(100), "me", 1, 5);
    let mut rng = SplitMix(5);
    // A higher name on our ID: secondary, nothing happens.
    let out = t
        .apply_update(&[record(200, 2, 1, Some(5), &[])], &mut rng)
        .unwrap();
    assert!(!out.local_changed && !out.short_ids_invalidated);
    assert!(t.local_owns_short_id());
    // A lower name on our ID: it becomes principal, we move.
    let out = t
        .apply_update(&[record(50, 3, 1, Some(5), &[])], &mut rng)
        .unwrap();
    assert!(out.local_changed && out.short_ids_invalidated);
    let mine = t.local().short_id().unwrap();
    assert_ne!(mine, 5);
    assert_eq!(t.local().version(), 1);
    assert_eq!(t.fetch_by_short_id(5), Some(n(50)));
    assert_eq!(t.fetch_by_short_id(mine), Some(n(100)));
    assert!(t.local_owns_short_id());
    // TestShortIDPropagation: the new ID reaches another table through apply_update.
    let mut other = table(300);
    other
        .apply_update(&t.incremental_update(&[n(100)]), &mut rng)
        .unwrap();
    assert_eq!(other.fetch_by_short_id(mine), Some(n(100)));
}

/// TestShortIDReassignmentHard / TestDeferredShortIDReassignment: with all IDs owned, we keep
/// our contested ID until a GC frees one, then claim it.
#[test]
fn short_id_reassignment_when_full_is_deferred_to_gc() {
    let me = n(0x10_0000);
    let mut t = Peers::new(me, "me", 1, 0);
    let mut rng = SplitMix(6);
    // Peers 1..=4096 (all lower than us) take every ID; peer 1 is connected to us so stays.
    t.fetch_with_default(n(1), "p1", 1, Some(1), &mut rng);
    t.add_connection(n(1), "a", true, true).unwrap();
    // Peer 1 links to peers 2..=4000, keeping them reachable; 4001..=4096 are unreachable.
    let links: Vec<(u64, bool)> = (2..=4000).map(|v| (v, true)).collect();
    let all: Vec<PeerUpdate> = (0..4096u64)
        .map(|id| {
            let conns: &[(u64, bool)] = if id == 0 { &links } else { &[] };
            record(id + 1, 7, 1, Some(id as u16), conns)
        })
        .collect();
    let out = t.apply_update(&all, &mut rng).unwrap();
    assert!(!out.local_changed, "no free ID to move to");
    assert!(!t.local_owns_short_id());
    assert_eq!(t.local().short_id(), Some(0));
    assert_eq!(t.choose_short_id(&mut rng), None);
    let gc = t.garbage_collect(&mut rng);
    assert_eq!(gc.removed.len(), 96);
    assert!(gc.local_changed);
    let mine = t.local().short_id().unwrap();
    assert!(mine >= 4000, "took an ID freed by GC, got {mine}");
    assert!(t.local_owns_short_id());
}

/// TestShortIDCollision: a 3-router chain where the ends share an ID; the lower name keeps it,
/// the other re-draws, and after gossip everyone agrees.
#[test]
fn short_id_collision_in_chain() {
    let mut mesh = Mesh::new(3, 11);
    // Force a collision between routers 0 and 2.
    let (n0, n2) = (mesh.name(0), mesh.name(2));
    let (lo, hi) = if n0 < n2 { (0, 2) } else { (2, 0) };
    let shared = mesh.peers[lo].local().short_id().unwrap();
    mesh.peers[hi].set_local_short_id(shared);
    let hi_version = mesh.peers[hi].local().version();
    mesh.connect(0, 1);
    mesh.connect(1, 2);
    mesh.converge(50);
    assert_eq!(mesh.peers[lo].local().short_id(), Some(shared));
    let moved = mesh.peers[hi].local().short_id().unwrap();
    assert_ne!(moved, shared);
    assert!(mesh.peers[hi].local().version() > hi_version);
    for t in &mesh.peers {
        assert_eq!(t.fetch_by_short_id(shared), Some(mesh.name(lo)));
        assert_eq!(t.fetch_by_short_id(moved), Some(mesh.name(hi)));
        assert_eq!(t.full_update(), mesh.peers[0].full_update());
    }
}

/// TestGossipTopology: incremental propagation across 3 routers, then a partition.
#[test]
fn gossip_topology_three_routers() {
    let mut mesh = Mesh::new(3, 12);
    mesh.connect(0, 1);
    mesh.converge(50);
    assert_eq!(mesh.peers[0].len(), 2);
    assert!(!mesh.peers[2].contains(mesh.name(0)));
    mesh.connect(1, 2);
    mesh.converge(50);
    for t in &mesh.peers {
        assert_eq!(t.len(), 3);
        assert_eq!(t.full_update(), mesh.peers[0].full_update());
    }
    let r0 = Routes::calculate(&mesh.peers[0]);
    assert_eq!(r0.unicast(mesh.name(2)), Some(mesh.name(1)));
    // Partition 1–2: each side keeps only what it can still reach.
    mesh.disconnect(1, 2);
    mesh.converge(50);
    assert_eq!(mesh.peers[0].len(), 2);
    assert_eq!(mesh.peers[2].len(), 1);
    assert_eq!(
        Routes::calculate(&mesh.peers[0]).unicast(mesh.name(2)),
        None
    );
}
