use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize, usize),
    Release(usize),
    Kill(usize),
    Crash(usize),
    AddPeer,
    Partition(u64),
    Heal,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..1000, 1usize..4).prop_map(|(i, n)| Op::Allocate(i, n)),
        2 => (0usize..1000).prop_map(Op::Release),
        1 => (0usize..1000).prop_map(Op::Kill),
        1 => (0usize..1000).prop_map(Op::Crash),
        1 => Just(Op::AddPeer),
        1 => any::<u64>().prop_map(Op::Partition),
        1 => Just(Op::Heal),
        2 => (1u64..20).prop_map(Op::Wait),
    ]
}

/// Runs a scenario; returns the simulation for further checks.
fn run(peers: usize, seed: u64, consensus: bool, ops: &[Op]) -> (Sim, Vec<(usize, u64)>) {
    let mut cfg = SimConfig::new(peers, seed);
    cfg.consensus = consensus;
    cfg.universe = Cidr::new(0x0a20_0000, 16);
    cfg.dead_after = Some(Duration::from_secs(60));
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(1));
    let mut reqs: Vec<(usize, u64)> = Vec::new();
    let mut killed = 0;
    let mut crashed: Vec<usize> = Vec::new();
    let mut partition_since: Option<Duration> = None;
    for op in ops {
        let n = sim.nodes.len();
        match op {
            Op::Allocate(i, k) => {
                let i = i % n;
                if sim.alive(i) {
                    for _ in 0..*k {
                        let r = sim.allocate(i);
                        reqs.push((i, r));
                    }
                }
            }
            Op::Release(i) => {
                sim.release_one(i % n);
            }
            // Kill for good at most a quarter of the peers (reclaim needs a majority).
            Op::Kill(i) if killed * 4 < peers && sim.alive(i % n) => {
                killed += 1;
                sim.kill(i % n);
            }
            Op::Crash(i) if sim.alive(i % n) => {
                // A request in flight dies with the router (its HTTP connection breaks).
                sim.crash(i % n);
                reqs.retain(|(j, r)| *j != i % n || sim.replies.contains_key(&(*j, *r)));
                crashed.push(i % n);
            }
            Op::AddPeer if n < peers + 5 => {
                sim.add_peer();
            }
            Op::Partition(bits) if partition_since.is_none() => {
                sim.partition(|i| ((bits >> (i % 64)) & 1) as u32);
                partition_since = Some(sim.elapsed());
            }
            Op::Heal => {
                sim.heal();
                partition_since = None;
            }
            Op::Wait(s) => sim.run_for(Duration::from_secs(*s)),
            _ => {}
        }
        // Partitions stay shorter than dead_after (see the allocator's module doc).
        if partition_since.is_some_and(|t| sim.elapsed() - t > Duration::from_secs(30)) {
            sim.heal();
            partition_since = None;
        }
        // Crashed routers come back within 20 s.
        if !crashed.is_empty() && sim.pick(4) == 0 {
            for c in crashed.drain(..) {
                sim.restart(c);
            }
        }
        assert_eq!(sim.stats.duplicates, 0, "duplicate after {op:?}");
    }
    for c in crashed.drain(..) {
        sim.restart(c);
    }
    sim.heal();
    // Long enough for dead peers to be reclaimed and every retry to run.
    sim.run_for(Duration::from_secs(120));
    (sim, reqs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// No address is ever held by two peers, through allocation, release, peer death and
    /// reclaim, crashes and restarts, joins and healed partitions; and every allocation asked
    /// of a peer that is still alive is answered once the network is whole again.
    #[test]
    fn no_duplicates_with_churn_and_partitions(
        peers in 12usize..30,
        seed in any::<u64>(),
        consensus in any::<bool>(),
        ops in proptest::collection::vec(op(), 10..60),
    ) {
        let (mut sim, reqs) = run(peers, seed, consensus, &ops);
        prop_assert_eq!(sim.check(), 0);
        prop_assert_eq!(sim.stats.duplicates, 0);
        prop_assert_eq!(sim.stats.gossip_errors, 0, "{:?}", sim.stats.last_gossip_error);
        let unanswered: Vec<&(usize, u64)> = reqs
            .iter()
            .filter(|(i, r)| sim.alive(*i) && !sim.replies.contains_key(&(*i, *r)))
            .collect();
        prop_assert!(unanswered.is_empty(), "unanswered: {:?}", unanswered);
    }
}

#[test]
fn a_killed_peer_is_reclaimed_once_by_one_heir() {
    let mut cfg = SimConfig::new(8, 7);
    cfg.seeds = 8;
    cfg.dead_after = Some(Duration::from_secs(30));
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(1));
    for i in 0..8 {
        sim.allocate(i);
    }
    sim.run_for(Duration::from_secs(1));
    let dead = 5;
    let dead_name = sim_name(dead);
    sim.kill(dead);
    sim.run_for(Duration::from_secs(20));
    let owns = |sim: &Sim, i: usize| {
        sim.nodes[i]
            .alloc
            .as_ref()
            .unwrap()
            .ring()
            .peer_names()
            .contains(&dead_name)
    };
    assert!(owns(&sim, 0), "not reclaimed before dead_after");
    sim.run_for(Duration::from_secs(30));
    for i in (0..8).filter(|i| *i != dead) {
        assert!(!owns(&sim, i), "peer {i} still sees the dead peer's ranges");
        let ring = sim.nodes[i].alloc.as_ref().unwrap().ring();
        // the heir is the lowest-named live owner: peer 0; versions bumped by 100 once
        for e in ring.entries().iter().filter(|e| e.version >= 100) {
            assert_eq!(e.peer, sim_name(0));
            assert!(e.version < 200, "taken over twice");
        }
    }
    assert_eq!(sim.stats.gossip_errors, 0);
    assert_eq!(sim.check(), 0);
}

#[test]
fn new_peer_gets_space_by_request() {
    let mut sim = Sim::new(SimConfig::new(5, 3));
    sim.run_for(Duration::from_secs(1));
    let i = sim.add_peer();
    let t0 = sim.elapsed();
    let r = sim.allocate(i);
    sim.run_for(Duration::from_millis(500));
    assert!(matches!(
        sim.replies.get(&(i, r)),
        Some(Ok(Reply::Allocated(_)))
    ));
    assert!(sim.elapsed() - t0 <= Duration::from_millis(500));
    let owned = sim.nodes[i].alloc.as_ref().unwrap().ring().owned_ranges();
    assert!(!owned.is_empty());
}

/// Weave's documented hazard, fixed: rmpeer of the same peer on two hosts that cannot talk
/// makes the same change on both (each range goes to its predecessor's owner), so no address
/// is handed out twice and the rings merge without conflict once the partition heals.
#[test]
fn concurrent_rmpeer_on_two_hosts_agrees() {
    let mut cfg = SimConfig::new(4, 1);
    cfg.seeds = 4;
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(1));
    sim.partition(|i| match i {
        0 => 0,
        1 => 1,
        _ => 2,
    });
    assert_eq!(sim.rmpeer(0, 2), Ok(1 << 18));
    assert_eq!(sim.rmpeer(1, 2), Ok(1 << 18));
    let ring = |sim: &Sim, i: usize| {
        sim.nodes[i]
            .alloc
            .as_ref()
            .unwrap()
            .ring()
            .to_wire()
            .entries
    };
    assert_eq!(ring(&sim, 0), ring(&sim, 1), "both made the same change");
    let subnet = Cidr::new(0x0a28_0000, 24);
    sim.allocate_in(0, subnet);
    sim.allocate_in(1, subnet);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.check(), 0);
    sim.heal();
    sim.run_for(Duration::from_secs(40));
    assert_eq!(sim.check(), 0);
    assert_eq!(sim.stats.duplicates, 0);
    assert_eq!(
        sim.stats.gossip_errors, 0,
        "{:?}",
        sim.stats.last_gossip_error
    );
}

/// In a partition longer than `dead_after`, only the side holding a majority of the ring's
/// owners reclaims; the minority side takes nothing over.
#[test]
fn only_the_majority_side_reclaims() {
    let mut cfg = SimConfig::new(8, 11);
    cfg.seeds = 8;
    cfg.dead_after = Some(Duration::from_secs(30));
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(1));
    sim.partition(|i| u32::from(i < 3));
    sim.run_for(Duration::from_secs(60));
    let took_over = |sim: &Sim, i: usize| {
        sim.nodes[i]
            .alloc
            .as_ref()
            .unwrap()
            .ring()
            .entries()
            .iter()
            .filter(|e| e.version >= 100)
            .map(|e| e.peer)
            .collect::<Vec<_>>()
    };
    for i in 0..3 {
        assert!(took_over(&sim, i).is_empty(), "minority peer {i} reclaimed");
    }
    for i in 3..8 {
        let t = took_over(&sim, i);
        assert_eq!(t.len(), 3, "majority peer {i} sees peers 0-2 reclaimed");
        assert!(
            t.iter().all(|p| *p == sim_name(3)),
            "by one heir, the lowest: peer 3"
        );
    }
}
