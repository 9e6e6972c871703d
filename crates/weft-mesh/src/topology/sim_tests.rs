//! Deterministic whole-mesh simulation: N routers, each a `Peers` table, gossiping decoded
//! topology updates in synchronous rounds (see `test_util::Mesh`).

use std::collections::BTreeSet;

use super::test_util::{flood_counts, naive_broadcast, naive_routes, Mesh, SplitMix};
use super::{LinkFilter, Routes};
use crate::topology::RandomSource;
use crate::PeerName;

/// Full scale in release builds; scaled down in debug builds so `cargo test` stays quick.
const N: usize = if cfg!(debug_assertions) { 100 } else { 1000 };
/// Connections each router dials, on top of a ring (mean degree ≈ 2 + 2·DIALS).
const DIALS: usize = 4;

fn build(seed: u64) -> Mesh {
    let mut mesh = Mesh::new(N, seed);
    let mut pick = SplitMix(seed ^ 0x5eed);
    let mut edges = BTreeSet::new();
    for i in 0..N {
        edges.insert((i.min((i + 1) % N), i.max((i + 1) % N)));
        let mut dialled = 0;
        while dialled < DIALS {
            let j = pick.below(N as u64) as usize;
            if j != i && edges.insert((i.min(j), i.max(j))) {
                dialled += 1;
            }
        }
    }
    for &(a, b) in &edges {
        mesh.connect(a, b);
    }
    mesh
}

/// Every member has the same table; routes agree with the naive model; broadcasts from a
/// sample of sources reach every member exactly once on both filters.
fn assert_consistent(mesh: &Mesh, members: &[usize], sample: usize) {
    let reference = mesh.peers[members[0]].full_update();
    for &i in members {
        assert_eq!(
            mesh.peers[i].full_update(),
            reference,
            "router {i} has a different view"
        );
    }
    let member_names: BTreeSet<PeerName> = members.iter().map(|&i| mesh.name(i)).collect();
    let table_names: BTreeSet<PeerName> = mesh.peers[members[0]].names().collect();
    assert_eq!(
        member_names, table_names,
        "tables hold exactly the live members"
    );

    let routes = mesh.all_routes();
    let step = (members.len() / sample).max(1);
    for &i in members.iter().step_by(step) {
        let me = mesh.name(i);
        let r = &routes[&me];
        for filter in [LinkFilter::EstablishedSymmetric, LinkFilter::All] {
            let (_, naive) = naive_routes(&mesh.peers[i], me, None, filter);
            let mut naive = naive;
            naive.remove(&me);
            assert_eq!(r.table(filter), naive, "router {i} {filter:?}");
            // Every other member reachable, through a direct neighbour.
            assert_eq!(naive.len(), members.len() - 1);
            let nbs: BTreeSet<PeerName> = r.neighbours(filter).into_iter().collect();
            assert!(naive.values().all(|h| nbs.contains(h)));
        }
    }
    for &s in members.iter().step_by(step * 4) {
        let src = mesh.name(s);
        for filter in [LinkFilter::EstablishedSymmetric, LinkFilter::All] {
            let counts = flood_counts(&routes, src, filter);
            assert_eq!(
                counts.len(),
                members.len(),
                "broadcast from {src} misses peers"
            );
            assert!(
                counts.values().all(|&c| c == 1),
                "broadcast from {src} duplicated"
            );
        }
        // Spot-check the broadcast hops against the naive model.
        for &i in members.iter().step_by(step * 8) {
            let me = mesh.name(i);
            let filter = LinkFilter::EstablishedSymmetric;
            assert_eq!(
                routes[&me].broadcast(src),
                naive_broadcast(&mesh.peers[i], me, src, filter).as_slice()
            );
        }
    }
}

#[test]
fn mesh_converges_and_routes_agree() {
    let started = std::time::Instant::now();
    let mut mesh = build(0x00c0_ffee);
    let edges: usize = mesh
        .peers
        .iter()
        .map(|p| p.local().connections().len())
        .sum::<usize>()
        / 2;
    mesh.converge(200);
    let initial = mesh.stats;
    let all: Vec<usize> = (0..N).collect();
    assert_consistent(&mesh, &all, 40);
    eprintln!(
        "sim: N={N} edges={edges} rounds={} (full-gossip rounds {}) messages={} summaries={} \
         improvements={} elapsed={:?}",
        initial.rounds,
        initial.full_gossip_rounds,
        initial.messages,
        initial.summaries,
        initial.improved,
        started.elapsed()
    );

    // Churn: drop a few links, isolate one router, restart another.
    let mut rng = SplitMix(7);
    for _ in 0..N / 20 {
        let i = rng.below(N as u64) as usize;
        let nbs: Vec<PeerName> = mesh.peers[i]
            .local()
            .connections()
            .keys()
            .copied()
            .collect();
        // Keep the ring links so the mesh stays connected.
        let ring: BTreeSet<PeerName> = [(i + 1) % N, (i + N - 1) % N]
            .iter()
            .map(|&k| mesh.name(k))
            .collect();
        if let Some(victim) = nbs.iter().find(|n| !ring.contains(n)) {
            let j = mesh.pos[victim];
            mesh.disconnect(i, j);
        }
    }
    let isolated = N / 2;
    let nbs: Vec<usize> = mesh.peers[isolated]
        .local()
        .connections()
        .keys()
        .map(|n| mesh.pos[n])
        .collect();
    for j in nbs {
        mesh.disconnect(isolated, j);
    }
    // Bridge the gap the isolated router leaves in the ring.
    let (left, right) = (isolated - 1, isolated + 1);
    if !mesh.peers[left]
        .local()
        .connections()
        .contains_key(&mesh.name(right))
    {
        mesh.connect(left, right);
    }
    let restarted = N / 4;
    let old_uid = mesh.peers[restarted].local().uid();
    let old_version = mesh.peers[(restarted + 1) % N]
        .get(mesh.name(restarted))
        .map(|p| p.version())
        .unwrap();
    for j in mesh.restart(restarted) {
        mesh.connect(restarted, j);
    }
    let before = mesh.stats;
    mesh.converge(400);
    let members: Vec<usize> = (0..N).filter(|&i| i != isolated).collect();
    assert_consistent(&mesh, &members, 20);
    // The isolated router forgot everyone, and everyone forgot it.
    assert_eq!(mesh.peers[isolated].len(), 1);
    // The new incarnation won everywhere, with a Version beyond the old one.
    let rec = mesh.peers[0].get(mesh.name(restarted)).unwrap();
    assert_ne!(rec.uid(), old_uid);
    assert!(rec.version() > old_version);
    eprintln!(
        "sim churn: rounds={} messages={} summaries={} elapsed total={:?}",
        mesh.stats.rounds - before.rounds,
        mesh.stats.messages - before.messages,
        mesh.stats.summaries - before.summaries,
        started.elapsed()
    );
}

#[test]
fn routes_for_every_router_are_cheap() {
    let mut mesh = build(42);
    mesh.converge(200);
    let t = std::time::Instant::now();
    let table = &mesh.peers[0];
    for i in 0..N {
        let r = Routes::calculate_from(table, mesh.name(i)).unwrap();
        assert!(r.unicast(mesh.name((i + 1) % N)).is_some());
    }
    eprintln!("routes: {N} full recalculations in {:?}", t.elapsed());
}
