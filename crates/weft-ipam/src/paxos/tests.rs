use super::*;

use proptest::prelude::*;

fn node(n: u64, uid: u64) -> NodeId {
    NodeId {
        name: PeerName::from_u64(n).unwrap(),
        uid,
    }
}

fn pid(round: u64, proposer: NodeId) -> ProposalId {
    ProposalId { round, proposer }
}

/// One gossip hop: `to` merges `from`'s claims and thinks. Returns whether `to`'s claims changed.
fn deliver(from: &Participant, to: &mut Participant) -> bool {
    let claims = from.claims().cloned().unwrap_or_default();
    to.update(&claims);
    to.think()
}

#[test]
fn proposals_order_by_round_then_name_then_uid() {
    let a = node(1, 9);
    let b = node(2, 1);
    assert!(pid(1, b) < pid(2, a), "round first");
    assert!(pid(1, a) < pid(1, b), "then proposer name");
    assert!(pid(1, node(1, 1)) < pid(1, node(1, 2)), "then UID");
    assert!(
        None < Some(pid(1, a)),
        "no proposal is below every proposal"
    );
}

// The UIDs of capture (d).
const H1: (u64, u64) = (1, 10_592_305_110_482_475_759);
const H2: (u64, u64) = (2, 8_404_587_565_918_536_700);
const H3: (u64, u64) = (3, 17_280_251_514_861_279_455);

/// Capture (d) (`consensus=3`, so quorum 2): h1 proposes round 1, h3's promise arrives first
/// and completes the quorum, so h1 accepts `[h1, h3]` (frames 260-275 of h1's pcap).
#[test]
fn capture_d_proposer_and_first_promiser_make_the_value() {
    let (h1, h2, h3) = (node(H1.0, H1.1), node(H2.0, H2.1), node(H3.0, H3.1));
    let mut p1 = Participant::elector(h1, 2);
    let mut p2 = Participant::elector(h2, 2);
    let mut p3 = Participant::elector(h3, 2);
    let round1 = pid(1, h1);

    p1.propose();
    assert!(!p1.think(), "one promise is not a quorum");
    assert_eq!(p1.claims().unwrap()[&h1].promise, Some(round1));
    assert_eq!(p1.claims().unwrap()[&h1].accepted, None);

    // 263: h3 promises.
    assert!(deliver(&p1, &mut p3));
    assert_eq!(p3.claims().unwrap()[&h3].promise, Some(round1));
    assert_eq!(p3.claims().unwrap()[&h3].accepted, None);
    assert!(p3.consensus().is_none());

    // 265/267: h1 has its quorum and accepts [h1, h3].
    assert!(deliver(&p3, &mut p1));
    let want = AcceptedValue {
        value: vec![h1.name, h3.name],
        origin: Some(round1),
    };
    let c1 = &p1.claims().unwrap()[&h1];
    assert_eq!(c1.accepted, Some(round1));
    assert_eq!(c1.accepted_val, want);
    assert!(p1.consensus().is_none(), "one acceptance is not a quorum");

    // 268: h2 promises late (it saw h1's first broadcast only).
    let mut early = Participant::elector(h1, 2);
    early.propose();
    assert!(deliver(&early, &mut p2));
    assert_eq!(p2.claims().unwrap()[&h2].promise, Some(round1));

    // 270/271: h3 and h2 accept h1's proposal; consensus everywhere.
    assert!(deliver(&p1, &mut p3));
    assert!(deliver(&p1, &mut p2));
    deliver(&p3, &mut p1);
    deliver(&p2, &mut p1);
    for p in [&p1, &p2, &p3] {
        assert_eq!(p.consensus(), Some(want.clone()));
    }
    // Quiet now: nobody changes.
    assert!(!deliver(&p2, &mut p3));
    assert!(!p1.think());
}

#[test]
fn update_keeps_the_higher_promise_and_accepted() {
    let (a, b) = (node(1, 1), node(2, 2));
    let mut p = Participant::elector(a, 2);
    let high = NodeClaims {
        promise: Some(pid(3, b)),
        accepted: Some(pid(2, b)),
        accepted_val: AcceptedValue {
            value: vec![b.name],
            origin: Some(pid(2, b)),
        },
    };
    assert!(p.update(&BTreeMap::from([(b, high.clone())])));
    assert!(
        !p.update(&BTreeMap::from([(b, high.clone())])),
        "a duplicate"
    );
    let low = NodeClaims {
        promise: Some(pid(1, b)),
        accepted: Some(pid(1, a)),
        accepted_val: AcceptedValue {
            value: vec![a.name],
            origin: Some(pid(1, a)),
        },
    };
    assert!(!p.update(&BTreeMap::from([(b, low)])), "older claims lose");
    assert_eq!(p.claims().unwrap()[&b], high);
    // A new proposal goes above every round seen.
    p.propose();
    assert_eq!(p.claims().unwrap()[&a].promise, Some(pid(4, a)));
}

#[test]
fn a_proposer_keeps_a_value_accepted_before() {
    // b accepted round 1 (value [b]) but a's round-2 proposal takes over: a must propose [b].
    let (a, b, c) = (node(1, 1), node(2, 2), node(3, 3));
    let earlier = AcceptedValue {
        value: vec![b.name],
        origin: Some(pid(1, b)),
    };
    let mut pa = Participant::elector(a, 2);
    let mut pb = Participant::elector(b, 2);
    pb.update(&BTreeMap::from([(
        b,
        NodeClaims {
            promise: Some(pid(1, b)),
            accepted: Some(pid(1, b)),
            accepted_val: earlier.clone(),
        },
    )]));
    pa.update(&BTreeMap::from([(c, NodeClaims::default())]));
    pa.propose();
    assert_eq!(
        pa.claims().unwrap()[&a].promise,
        Some(pid(1, a)),
        "a has not seen b"
    );
    // b keeps its own round 1 (above a's round 1: same round, b > a by name).
    deliver(&pa, &mut pb);
    assert_eq!(pb.claims().unwrap()[&b].promise, Some(pid(1, b)));
    pa.update(pb.claims().unwrap());
    pa.propose(); // round 2
    deliver(&pa, &mut pb);
    assert!(deliver(&pb, &mut pa));
    let got = &pa.claims().unwrap()[&a];
    assert_eq!(got.accepted, Some(pid(2, a)));
    assert_eq!(got.accepted_val, earlier, "the earlier value survives");
}

#[test]
fn observers_follow_but_never_vote() {
    let (a, b) = (node(1, 1), node(2, 2));
    let mut obs = Participant::observer();
    assert!(!obs.is_elector());
    assert!(obs.claims().is_none());
    obs.propose();
    assert!(!obs.think());
    assert_eq!(obs.status().known_nodes, 0);

    let mut pa = Participant::elector(a, 2);
    let mut pb = Participant::elector(b, 2);
    pa.propose();
    deliver(&pa, &mut pb);
    deliver(&pb, &mut pa);
    deliver(&pa, &mut pb);
    obs.set_quorum(2);
    assert!(obs.update(pa.claims().unwrap()));
    assert!(obs.consensus().is_none(), "only a has accepted so far");
    assert!(obs.update(pb.claims().unwrap()));
    deliver(&pb, &mut pa);
    assert!(!obs.think());
    assert!(obs.claims().is_none(), "an observer gossips no claims");
    assert_eq!(obs.consensus(), pa.consensus());
    assert!(obs.consensus().is_some());
    assert_eq!(
        obs.status(),
        PaxosStatus {
            elector: false,
            known_nodes: 2,
            quorum: 2
        }
    );
    // An elector delivering an observer's (absent) claims learns nothing.
    assert!(!deliver(&obs, &mut pa));
}

#[test]
fn without_a_quorum_no_value_is_consensus() {
    // A proposer accepts its own proposal with a quorum of 1 ...
    let a = node(1, 1);
    let mut p = Participant::elector(a, 1);
    p.propose();
    p.think();
    assert!(p.consensus().is_some());
    // ... which a node that never set its quorum must not take for consensus.
    let mut idle = Participant::elector(node(2, 2), 0);
    deliver(&p, &mut idle);
    assert_eq!(idle.consensus(), None, "quorum 0 is not 'any value'");
    // It followed the proposer (promised, then accepted): two acceptors, not three.
    idle.set_quorum(3);
    assert_eq!(
        idle.consensus(),
        None,
        "two acceptors are not a quorum of 3"
    );
    idle.set_quorum(2);
    assert!(idle.consensus().is_some());
}

#[test]
fn a_restarted_peer_votes_once() {
    // Quorum 2 of {a, b}: b restarts (new UID) and its old claims are still gossiped.
    let a = node(1, 1);
    let (b_old, b_new) = (node(2, 1), node(2, 2));
    let mut pa = Participant::elector(a, 2);
    let mut pb_old = Participant::elector(b_old, 2);
    let mut pb_new = Participant::elector(b_new, 2);
    pb_old.propose();
    pb_old.think();
    pb_new.update(pb_old.claims().unwrap());
    pb_new.propose();
    pb_new.think();
    // b's two incarnations promised b's own proposals; a has not voted. Counted by node id
    // that would be a quorum of promises for b_new; by peer name it is one voter.
    deliver(&pb_new, &mut pb_new.clone());
    assert_eq!(pb_new.consensus(), None);
    assert_eq!(
        pb_new.claims().unwrap()[&b_new].accepted,
        None,
        "b alone (twice) is not a quorum of promises"
    );
    // With a's promise it is.
    deliver(&pb_new, &mut pa);
    deliver(&pa, &mut pb_new);
    assert!(pb_new.claims().unwrap()[&b_new].accepted.is_some());
}

#[test]
fn quorum_one_is_immediate() {
    let a = node(1, 1);
    let mut p = Participant::elector(a, 1);
    p.propose();
    assert!(p.think());
    assert_eq!(
        p.consensus(),
        Some(AcceptedValue {
            value: vec![a.name],
            origin: Some(pid(1, a)),
        })
    );
}

#[derive(Debug, Clone)]
enum Op {
    /// Node proposes (restarts a round), then gossips.
    Propose(usize),
    /// Node `from` puts a snapshot of its claims on the wire to `to`.
    Send(usize, usize),
    /// Deliver an in-flight message (index modulo the pool); `keep` leaves it in flight, so it
    /// can arrive again (duplication) after later ones (reordering).
    Deliver(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize).prop_map(Op::Propose),
        4 => (0..3usize, 0..3usize).prop_map(|(a, b)| Op::Send(a, b)),
        6 => (any::<usize>(), any::<bool>()).prop_map(|(i, k)| Op::Deliver(i, k)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// 3 electors, quorum 2, messages delayed, reordered, duplicated and lost, proposals
    /// competing: every consensus any node ever sees is the same value, and once the
    /// network is fair again (everybody gossips to everybody until quiet) all agree.
    #[test]
    fn three_nodes_agree_on_one_value(first in 0..3usize, ops in proptest::collection::vec(op(), 0..80)) {
        let ids = [node(1, 11), node(2, 22), node(3, 33)];
        let mut ps: Vec<Participant> = ids.iter().map(|&id| Participant::elector(id, 2)).collect();
        let mut pool: Vec<(usize, BTreeMap<NodeId, NodeClaims>)> = Vec::new();
        let mut seen: Option<AcceptedValue> = None;
        let check = |ps: &[Participant], seen: &mut Option<AcceptedValue>| -> Result<(), TestCaseError> {
            for p in ps {
                if let Some(v) = p.consensus() {
                    match seen {
                        None => *seen = Some(v),
                        Some(s) => prop_assert_eq!(&*s, &v, "two different consensus values"),
                    }
                }
            }
            Ok(())
        };
        ps[first].propose();
        ps[first].think();
        for op in ops {
            match op {
                Op::Propose(i) => {
                    ps[i].propose();
                    ps[i].think();
                }
                Op::Send(from, to) => pool.push((to, ps[from].claims().cloned().unwrap())),
                Op::Deliver(i, keep) => {
                    if pool.is_empty() {
                        continue;
                    }
                    let i = i % pool.len();
                    let (to, claims) = if keep { pool[i].clone() } else { pool.remove(i) };
                    ps[to].update(&claims);
                    ps[to].think();
                }
            }
            check(&ps, &mut seen)?;
        }
        // Fair, quiet network: gossip all to all until nothing changes (bounded).
        let mut rounds = 0;
        loop {
            let mut changed = false;
            for from in 0..3 {
                for to in 0..3 {
                    if from != to {
                        let claims = ps[from].claims().cloned().unwrap();
                        changed |= ps[to].update(&claims);
                        changed |= ps[to].think();
                    }
                }
            }
            check(&ps, &mut seen)?;
            if !changed {
                break;
            }
            rounds += 1;
            prop_assert!(rounds < 20, "no quiescence after 20 all-to-all rounds");
        }
        let v = ps[0].consensus();
        prop_assert!(v.is_some(), "no consensus on a fair network");
        for p in &ps {
            prop_assert_eq!(&p.consensus(), &v);
        }
        prop_assert_eq!(v, seen);
    }
}
