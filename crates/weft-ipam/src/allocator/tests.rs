//! The allocator against the facts of capture (d) (real Weave 2.8.1, 3 peers): ring layouts,
//! versions, donation sizes and error texts after each step. Consensus is replaced by the
//! seed the capture's Paxos reached (`[h1, h3]`), so these tests do not depend on Paxos.

use std::collections::VecDeque;

use super::*;
use crate::codec;
use crate::wire::Unicast;

fn p(n: u64) -> PeerName {
    PeerName::from_u64(n).unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// Three allocators on a lossless network delivering in order.
struct Net {
    nodes: Vec<Option<Allocator>>,
    up: Vec<bool>,
    queue: VecDeque<(usize, usize, u8, Vec<u8>)>,
    replies: BTreeMap<u64, Result<Reply, IpamError>>,
    persisted: Vec<Option<Persisted>>,
    unicasts: Vec<(usize, usize, Unicast)>,
    broadcasts: Vec<(usize, GossipState)>,
    /// For every Reply::Allocated: was a Persist holding it emitted before?
    persisted_before_reply: Vec<bool>,
    base: Instant,
    secs: u64,
    next_req: u64,
}

fn config(i: usize, seed: u64) -> Config {
    Config {
        name: p(i as u64 + 1),
        uid: 77 + i as u64,
        nickname: format!("rw-h{}", i + 1),
        universe: cidr("10.32.0.0/12"),
        default_subnet: cidr("10.32.0.0/12"),
        init: InitMode::Seed(vec![p(1), p(3)]),
        seed,
        dead_after: None,
    }
}

impl Net {
    fn new(seed: u64) -> Net {
        let base = Instant::now();
        let now = Now {
            at: base,
            unix: 1_796_284_260,
        };
        let mut net = Net {
            nodes: (0..3)
                .map(|i| Some(Allocator::new(config(i, seed + i as u64), None, now)))
                .collect(),
            up: vec![true; 3],
            queue: VecDeque::new(),
            replies: BTreeMap::new(),
            persisted: vec![None; 3],
            unicasts: Vec::new(),
            broadcasts: Vec::new(),
            persisted_before_reply: Vec::new(),
            base,
            secs: 0,
            next_req: 1,
        };
        net.peers_changed();
        net
    }

    fn now(&self) -> Now {
        Now {
            at: self.base + Duration::from_secs(self.secs),
            unix: 1_796_284_260 + self.secs as i64,
        }
    }

    fn a(&mut self, i: usize) -> &mut Allocator {
        self.nodes[i].as_mut().unwrap()
    }

    fn peers_changed(&mut self) {
        let now = self.now();
        for i in 0..3 {
            if !self.up[i] {
                continue;
            }
            let infos: Vec<PeerInfo> = (0..3)
                .filter(|j| *j != i)
                .map(|j| PeerInfo {
                    name: p(j as u64 + 1),
                    uid: 77 + j as u64,
                    nickname: format!("rw-h{}", j + 1),
                    reachable: self.up[j],
                })
                .collect();
            self.a(i).set_peers(now, &infos, 2);
        }
        self.run();
    }

    fn drain(&mut self, i: usize) {
        let mut owned_persisted: Option<BTreeMap<String, Owned>> = None;
        while let Some(out) = self.nodes[i].as_mut().and_then(|a| a.poll_output()) {
            match out {
                Output::Persist(ps) => {
                    owned_persisted = Some(ps.owned.clone());
                    self.persisted[i] = Some(ps);
                }
                Output::Reply { req, result } => {
                    if let Ok(Reply::Allocated(c)) = &result {
                        let ok = owned_persisted
                            .as_ref()
                            .is_some_and(|o| o.values().any(|v| v.cidrs.contains(c)));
                        self.persisted_before_reply.push(ok);
                    }
                    self.replies.insert(req.0, result);
                }
                Output::Broadcast(b) => {
                    self.broadcasts.push((i, codec::decode_gossip(&b).unwrap()));
                    for j in 0..3 {
                        if j != i && self.up[j] && self.up[i] {
                            self.queue.push_back((i, j, 6, b.clone()));
                        }
                    }
                }
                Output::Unicast { dst, payload } => {
                    let j = dst.as_u64() as usize - 1;
                    self.unicasts
                        .push((i, j, codec::decode_unicast(&payload).unwrap()));
                    if self.up[j] && self.up[i] {
                        self.queue.push_back((i, j, 5, payload));
                    }
                }
            }
        }
    }

    fn run(&mut self) {
        for i in 0..3 {
            self.drain(i);
        }
        let mut n = 0;
        while let Some((from, to, tag, payload)) = self.queue.pop_front() {
            n += 1;
            assert!(n < 10_000, "message storm");
            if !self.up[to] {
                continue;
            }
            let now = self.now();
            let src = p(from as u64 + 1);
            let r = match tag {
                6 => self.a(to).on_broadcast(now, src, &payload).map(|_| ()),
                5 => self.a(to).on_unicast(now, src, &payload),
                _ => self.a(to).on_gossip(now, src, &payload),
            };
            r.unwrap();
            self.drain(to);
        }
    }

    fn allocate(&mut self, i: usize, ident: &str, subnet: &str) -> Result<Reply, IpamError> {
        let req = self.next_req;
        self.next_req += 1;
        let now = self.now();
        self.a(i)
            .allocate(now, ReqId(req), ident, cidr(subnet), true);
        self.run();
        self.replies.remove(&req).expect("answered")
    }

    fn claim(&mut self, i: usize, ident: &str, c: &str) -> Result<Reply, IpamError> {
        let req = self.next_req;
        self.next_req += 1;
        let now = self.now();
        self.a(i)
            .claim(now, ReqId(req), ident, cidr(c), true, false);
        self.run();
        self.replies.remove(&req).expect("answered")
    }

    /// (token, owner, size, version) as the capture's table shows them.
    fn layout(&self, i: usize) -> Vec<(String, u64, u64, u32)> {
        let st = self.nodes[i].as_ref().unwrap().status();
        st.entries
            .iter()
            .map(|e| (fmt_addr(e.token), e.peer.as_u64(), e.size, e.version))
            .collect()
    }
}

fn row(t: &str, peer: u64, size: u64, v: u32) -> (String, u64, u64, u32) {
    (t.to_owned(), peer, size, v)
}

fn allocated(s: &str) -> Result<Reply, IpamError> {
    Ok(Reply::Allocated(cidr(s)))
}

/// The capture's h2 asked h3 (of h1 and h3, both with all free) for space: the choice is
/// free × random, so pick a seed for which this run makes the same choice.
const SEED: u64 = 2;

#[test]
fn capture_d_three_peers_step_by_step() {
    let mut net = Net::new(SEED);
    // 1: the ring seeded with [h1, h3]: each a /13.
    let one = vec![
        row("10.32.0.0", 1, 524288, 0),
        row("10.40.0.0", 3, 524288, 0),
    ];
    for i in 0..3 {
        assert_eq!(net.layout(i), one, "peer {i}");
        assert_eq!(net.a(i).status().state, "ready");
    }

    // 2: allocations; h2 owns nothing and is given the upper half of h3's /13.
    assert_eq!(
        net.allocate(0, "cid-a1", "10.32.0.0/12"),
        allocated("10.32.0.1/12")
    );
    assert_eq!(
        net.allocate(0, "cid-a2", "10.32.0.0/12"),
        allocated("10.32.0.2/12")
    );
    assert_eq!(
        net.allocate(1, "cid-b1", "10.32.0.0/12"),
        allocated("10.44.0.0/12")
    );
    let req = net
        .unicasts
        .iter()
        .find(|(f, _, u)| *f == 1 && matches!(u, Unicast::SpaceRequest(_)))
        .cloned()
        .unwrap();
    assert_eq!(req.1, 2, "h2 asked h3 (as in the capture)");
    assert_eq!(
        req.2,
        Unicast::SpaceRequest(crate::wire::Range {
            start: 0x0a20_0000,
            end: 0x0a30_0000
        })
    );
    assert_eq!(
        net.allocate(2, "cid-c1", "10.40.0.0/24"),
        allocated("10.40.0.1/24")
    );
    assert_eq!(
        net.allocate(2, "cid-x1", "10.40.0.1/24")
            .unwrap_err()
            .to_string(),
        "invalid subnet - bits after network prefix are not all zero: 10.40.0.1/24"
    );
    assert_eq!(
        net.allocate(2, "cid-x2", "192.168.0.0/24")
            .unwrap_err()
            .to_string(),
        "range 192.168.0.0/24 out of bounds: 10.32.0.0/12"
    );
    assert_eq!(
        net.layout(0),
        vec![
            row("10.32.0.0", 1, 524288, 2),
            row("10.40.0.0", 3, 262144, 1),
            row("10.44.0.0", 2, 262144, 0)
        ]
    );

    // 3: claims on h2.
    net.unicasts.clear();
    assert_eq!(net.claim(1, "cid-b2", "10.32.0.100/12"), Ok(Reply::Claimed));
    assert_eq!(
        net.unicasts[0],
        (
            1,
            0,
            Unicast::SpaceRequest(crate::wire::Range {
                start: 0x0a20_0064,
                end: 0x0a20_0065
            })
        ),
        "a claim asks the owner for exactly one address"
    );
    // As in the capture (messages 283, 284): the ring update unicast to h2 is encoded at the
    // grant (h1's entry v3, free = its new size 100), the broadcast at the end of the step,
    // after the free count was reported (v4, free 98).
    let update = net
        .unicasts
        .iter()
        .find_map(|(f, t, u)| match u {
            Unicast::RingUpdate(g) if (*f, *t) == (0, 1) => g.ring.clone(),
            _ => None,
        })
        .unwrap();
    let e = update.entries[0];
    assert_eq!((e.version, e.free), (3, 100));
    assert_eq!(update.entries.len(), 5);
    let bcast = net
        .broadcasts
        .iter()
        .rev()
        .find_map(|(f, g)| (*f == 0).then(|| g.ring.clone()).flatten())
        .unwrap();
    assert_eq!((bcast.entries[0].version, bcast.entries[0].free), (4, 98));
    assert_eq!(
        net.layout(0),
        vec![
            row("10.32.0.0", 1, 100, 4),
            row("10.32.0.100", 2, 1, 0),
            row("10.32.0.101", 1, 524187, 0),
            row("10.40.0.0", 3, 262144, 1),
            row("10.44.0.0", 2, 262144, 0)
        ]
    );
    net.unicasts.clear();
    assert_eq!(
        net.claim(1, "cid-b3", "10.32.0.2/12")
            .unwrap_err()
            .to_string(),
        "Unable to claim: address 10.32.0.2/12 is owned by other peer 00:00:00:00:00:01 (rw-h1)"
    );
    let kinds: Vec<&str> = net
        .unicasts
        .iter()
        .map(|(_, _, u)| match u {
            Unicast::SpaceRequest(_) => "request",
            Unicast::SpaceRequestDenied(_) => "denied",
            Unicast::RingUpdate(_) => "ring",
        })
        .collect();
    assert_eq!(kinds, vec!["request", "denied", "ring"]);
    assert_eq!(net.claim(1, "cid-b4", "10.44.1.44/12"), Ok(Reply::Claimed));
    assert_eq!(net.claim(1, "cid-b4", "10.44.1.44/12"), Ok(Reply::Claimed));

    // 4: release and immediate reuse of the lowest address.
    let now = net.now();
    net.a(0).delete(now, "cid-a1").unwrap();
    assert_eq!(
        net.a(0).delete(now, "cid-nosuch").unwrap_err().to_string(),
        "Delete: no addresses for cid-nosuch"
    );
    assert_eq!(
        net.allocate(0, "cid-a3", "10.32.0.0/12"),
        allocated("10.32.0.1/12")
    );

    // 5: h3 dies; its range stays in the ring, shown unreachable; rmpeer on h1 takes it.
    net.up[2] = false;
    net.nodes[2] = None;
    net.peers_changed();
    let st = net.a(0).status();
    let h3 = st.peers.iter().find(|s| s.name == p(3)).unwrap();
    assert_eq!((h3.ips, h3.reachable), (262144, false));
    let now = net.now();
    assert_eq!(
        net.a(0).admin_takeover(now, "00:00:00:00:00:03"),
        Ok(262144)
    );
    net.run();
    assert_eq!(
        net.layout(0),
        vec![
            row("10.32.0.0", 1, 100, 6),
            row("10.32.0.100", 2, 1, 0),
            row("10.32.0.101", 1, 524187, 0),
            row("10.40.0.0", 1, 262144, 101),
            row("10.44.0.0", 2, 262144, 0)
        ]
    );
    let now = net.now();
    assert_eq!(net.a(1).admin_takeover(now, "rw-h3"), Ok(0));
    assert_eq!(
        net.a(0).admin_takeover(now, "rw-h1"),
        Err(IpamError::TakeoverSelf(p(1)))
    );
    assert_eq!(
        net.allocate(0, "cid-a4", "10.40.0.0/24"),
        allocated("10.40.0.1/24")
    );

    // 6: h1 restarts from what it persisted; 7: a new allocation.
    let persisted = net.persisted[0].clone();
    let now = net.now();
    net.nodes[0] = Some(Allocator::new(config(0, 9), persisted, now));
    net.peers_changed();
    let a = net.a(0);
    assert_eq!(a.lookup("cid-a2", None), vec![cidr("10.32.0.2/12")]);
    assert_eq!(a.lookup("cid-a3", None), vec![cidr("10.32.0.1/12")]);
    assert_eq!(
        a.lookup("cid-a4", Some(cidr("10.40.0.0/24"))),
        vec![cidr("10.40.0.1/24")]
    );
    assert_eq!(
        net.allocate(0, "cid-a5", "10.32.0.0/12"),
        allocated("10.32.0.3/12")
    );
    let end = net.layout(0);
    assert_eq!(end[0], row("10.32.0.0", 1, 100, 7));
    assert_eq!(end[3], row("10.40.0.0", 1, 262144, 102));
    let h2 = net.layout(1);
    assert_eq!(h2[1], row("10.32.0.100", 2, 1, 1));
    assert_eq!(h2[4], row("10.44.0.0", 2, 262144, 2));

    assert!(
        net.persisted_before_reply.iter().all(|ok| *ok),
        "every allocation was persisted before it was answered"
    );
}

#[test]
fn status_lines() {
    let now = Now {
        at: Instant::now(),
        unix: 0,
    };
    let mut cfg = config(1, 1);
    cfg.init = InitMode::Observer;
    let mut a = Allocator::new(cfg, None, now);
    assert_eq!(a.status().state, "idle");
    a.prime(now, ReqId(1));
    assert_eq!(a.status().state, "priming");
    // the observer asks for a ring by broadcast
    let mut saw_broadcast = false;
    while let Some(o) = a.poll_output() {
        if let Output::Broadcast(b) = o {
            let g = codec::decode_gossip(&b).unwrap();
            assert!(g.paxos.is_none() && g.ring.is_none());
            saw_broadcast = true;
        }
    }
    assert!(saw_broadcast);
    // a ring arrives: ready, and the prime is answered
    let mut seeded = Allocator::new(config(0, 2), None, now);
    let ring = seeded.gossip(now);
    a.on_gossip(now, p(1), &ring).unwrap();
    let replies: Vec<Output> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(replies.contains(&Output::Reply {
        req: ReqId(1),
        result: Ok(Reply::Primed)
    }));
    // every range owned by unreachable peers
    assert_eq!(
        a.status().state,
        "all IP ranges owned by unreachable peers - use 'rmpeer' if they are dead"
    );
    a.set_peers(
        now,
        &[PeerInfo {
            name: p(1),
            uid: 1,
            nickname: "rw-h1".into(),
            reachable: true,
        }],
        1,
    );
    assert_eq!(a.status().state, "ready");
}

#[test]
fn hostile_gossip_is_refused_and_changes_nothing() {
    let now = Now {
        at: Instant::now(),
        unix: 0,
    };
    let mut a = Allocator::new(config(0, 1), None, now);
    a.allocate(now, ReqId(1), "c1", cidr("10.32.0.0/12"), true);
    let before = a.ring().clone();
    // someone claims our 10.32.0.0 at a higher version
    let mut w = a.ring().to_wire();
    w.entries[0].peer = p(9);
    w.entries[0].version = 50;
    w.peer = p(9);
    let g = codec::encode_gossip(&GossipState {
        now: 0,
        nicknames: BTreeMap::new(),
        paxos: None,
        ring: Some(w),
    });
    let e = a.on_gossip(now, p(9), &g).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("Received update for IP range I own at 10.32.0.0"));
    assert_eq!(a.ring(), &before);
    // garbage
    assert!(a.on_gossip(now, p(9), b"\x01\x02garbage").is_err());
    assert!(a.on_unicast(now, p(9), b"").is_err());
    assert_eq!(a.ring(), &before);
    assert_eq!(a.lookup("c1", None), vec![cidr("10.32.0.1/12")]);
}

#[test]
fn dead_container_grace_and_cancel() {
    let t0 = Instant::now();
    let at = |s: u64| Now {
        at: t0 + Duration::from_secs(s),
        unix: s as i64,
    };
    let mut a = Allocator::new(config(0, 1), None, at(0));
    a.allocate(at(0), ReqId(1), "c1", cidr("10.32.0.0/12"), true);
    a.container_died(at(1), "c1");
    a.handle_timeout(at(10));
    assert_eq!(a.lookup("c1", None).len(), 1, "kept during the grace");
    a.handle_timeout(at(40));
    assert!(a.lookup("c1", None).is_empty(), "freed after 30 s");
    // a pending allocation in a subnet we cannot serve is cancelled when its container dies
    a.allocate(at(41), ReqId(2), "c2", cidr("10.40.0.0/24"), true);
    a.container_died(at(42), "c2");
    let outs: Vec<Output> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(outs.contains(&Output::Reply {
        req: ReqId(2),
        result: Ok(Reply::Cancelled)
    }));
}

#[test]
fn consensus_of_three_gives_a_two_peer_ring_on_first_use() {
    let mut net = Net::new(SEED);
    let now = net.now();
    for i in 0..3 {
        let mut cfg = config(i, 5 + i as u64);
        cfg.init = InitMode::Consensus { quorum: Some(3) };
        net.nodes[i] = Some(Allocator::new(cfg, None, now));
    }
    net.peers_changed();
    for i in 0..3 {
        assert_eq!(net.a(i).status().state, "idle", "deferred until first use");
        let g = codec::decode_gossip(&net.a(i).gossip(now)).unwrap();
        assert!(g.ring.is_none() && g.paxos.is_some());
    }
    let now = net.now();
    net.a(0).prime(now, ReqId(100));
    net.run();
    assert_eq!(net.replies.remove(&100), Some(Ok(Reply::Primed)));
    let ring0 = net.a(0).ring().clone();
    assert_eq!(
        ring0.seeds().len(),
        2,
        "quorum 2: the proposer and the first promiser"
    );
    assert!(ring0.seeds().contains(&p(1)));
    for i in 1..3 {
        assert_eq!(net.a(i).ring().entries(), ring0.entries(), "peer {i}");
        assert_eq!(net.a(i).status().state, "ready");
    }
    assert_eq!(net.allocate(1, "x", "10.32.0.0/12").map(|_| ()), Ok(()));
}

#[test]
fn waiting_for_consensus_says_so() {
    let now = Now {
        at: Instant::now(),
        unix: 0,
    };
    let mut cfg = config(0, 1);
    cfg.init = InitMode::Consensus { quorum: Some(3) };
    let mut a = Allocator::new(cfg, None, now);
    a.allocate(now, ReqId(1), "c1", cidr("10.32.0.0/12"), true);
    let st = a.status();
    assert_eq!(st.state, "awaiting consensus (quorum: 2, known: 1)");
    assert_eq!(
        st.waiting_line.as_deref(),
        Some("waiting for consensus: 1 of 2 peers known")
    );
    assert_eq!(st.pending_allocates, vec!["c1 10.32.0.0/12".to_owned()]);
    // a single launch with no targets: quorum 1, consensus with itself at once
    let mut cfg = config(0, 1);
    cfg.init = InitMode::Consensus { quorum: None };
    let mut a = Allocator::new(cfg, None, now);
    a.allocate(now, ReqId(1), "c1", cidr("10.32.0.0/12"), true);
    let outs: Vec<Output> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(outs.contains(&Output::Reply {
        req: ReqId(1),
        result: Ok(Reply::Allocated(cidr("10.32.0.1/12")))
    }));
    assert_eq!(a.ring().seeds(), &[p(1)]);
}

#[test]
fn an_idle_elector_gossips_an_empty_paxos_map_as_weave_does() {
    let now = t0();
    let mut cfg = config(0, 1);
    cfg.init = InitMode::Consensus { quorum: Some(3) };
    let mut a = Allocator::new(cfg, None, now);
    let idle = crate::codec::decode_gossip(&a.gossip(now)).unwrap();
    assert_eq!(
        idle.paxos,
        Some(Default::default()),
        "capture d: 'Paxos: 0 node(s) (empty map)'"
    );
    assert!(idle.ring.is_none());
    // Once it has proposed, its own claims travel.
    a.prime(now, ReqId(1));
    let proposing = crate::codec::decode_gossip(&a.gossip(now)).unwrap();
    let claims = proposing.paxos.unwrap();
    assert_eq!(claims.len(), 1);
    assert!(claims.values().all(|c| c.promise.is_some()));
    // An observer sends no Paxos field at all.
    let mut cfg = config(1, 1);
    cfg.init = InitMode::Observer;
    let mut o = Allocator::new(cfg, None, now);
    assert_eq!(
        crate::codec::decode_gossip(&o.gossip(now)).unwrap().paxos,
        None
    );
}

fn t0() -> Now {
    Now {
        at: Instant::now(),
        unix: 0,
    }
}

fn outputs(a: &mut Allocator) -> Vec<Output> {
    std::iter::from_fn(|| a.poll_output()).collect()
}

fn reply_of(outs: &[Output], req: u64) -> Option<Result<Reply, IpamError>> {
    outs.iter().find_map(|o| match o {
        Output::Reply { req: r, result } if r.0 == req => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn claims_free_and_their_texts() {
    let now = t0();
    let mut a = Allocator::new(config(0, 1), None, now);
    // outside the universe: recorded without the ring; a second ID is refused
    a.claim(now, ReqId(1), "x", cidr("192.168.1.5/24"), true, false);
    a.claim(now, ReqId(2), "y", cidr("192.168.1.5/24"), true, false);
    let outs = outputs(&mut a);
    assert_eq!(reply_of(&outs, 1), Some(Ok(Reply::Claimed)));
    assert_eq!(
        reply_of(&outs, 2).unwrap().unwrap_err().to_string(),
        "Unable to claim: address 192.168.1.5/24 already in use by x"
    );
    // in our range: "_" records under the address; a real ID then cannot take it
    a.claim(now, ReqId(3), "_", cidr("10.32.0.9/12"), false, false);
    a.claim(now, ReqId(4), "c1", cidr("10.32.0.9/12"), true, false);
    a.claim(now, ReqId(5), "_", cidr("10.32.0.9/12"), true, false);
    a.allocate(now, ReqId(6), "c2", cidr("10.32.0.0/12"), true);
    a.claim(now, ReqId(7), "c3", cidr("10.32.0.1/12"), true, false);
    let outs = outputs(&mut a);
    assert_eq!(reply_of(&outs, 3), Some(Ok(Reply::Claimed)));
    assert_eq!(
        reply_of(&outs, 4).unwrap().unwrap_err().to_string(),
        "Unable to claim: address 10.32.0.9/12 already in use"
    );
    assert_eq!(reply_of(&outs, 5), Some(Ok(Reply::Claimed)));
    assert_eq!(reply_of(&outs, 6), Some(allocated("10.32.0.1/12")));
    assert_eq!(
        reply_of(&outs, 7).unwrap().unwrap_err().to_string(),
        "Unable to claim: address 10.32.0.1/12 is already owned by c2"
    );
    assert_eq!(a.lookup("10.32.0.9", None), vec![cidr("10.32.0.9/12")]);
    assert_eq!(
        a.free(now, "c2", 0x0a20_0002).unwrap_err().to_string(),
        "Unable to free: Free: address 10.32.0.2 not found for c2"
    );
    a.free(now, "c2", 0x0a20_0001).unwrap();
    assert!(a.space().is_free(0x0a20_0001));
    assert_eq!(
        a.owned()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        vec!["10.32.0.9", "x"]
    );
    // a claim in a peer's range whose owner is unreachable fails after 5 tries
    a.claim(now, ReqId(8), "c4", cidr("10.40.0.7/12"), true, false);
    for s in 1..=6 {
        a.handle_timeout(Now {
            at: now.at + Duration::from_secs(5 * s),
            unix: 0,
        });
    }
    let outs = outputs(&mut a);
    assert_eq!(
        reply_of(&outs, 8).unwrap().unwrap_err().to_string(),
        "Unable to claim: address 10.40.0.7/12 is owned by other peer 00:00:00:00:00:03 - peer is unreachable"
    );
}

#[test]
fn prune_and_container_idents() {
    let now = t0();
    let mut a = Allocator::new(config(0, 1), None, now);
    a.allocate(now, ReqId(1), "live", cidr("10.32.0.0/12"), true);
    a.allocate(now, ReqId(2), "gone", cidr("10.32.0.0/12"), true);
    a.allocate(now, ReqId(3), "cni", cidr("10.32.0.0/12"), false);
    assert_eq!(
        a.container_idents(),
        vec!["gone".to_owned(), "live".to_owned()]
    );
    a.prune_owned(now, &|id: &str| id == "live");
    assert!(a.lookup("gone", None).is_empty());
    assert_eq!(
        a.lookup("cni", None).len(),
        1,
        "not container-owned: never pruned"
    );
    a.container_destroyed(now, "live");
    assert!(a.lookup("live", None).is_empty());
    assert_eq!(a.status().active_ips, 1);
}

#[test]
fn shutdown_hands_everything_to_a_live_heir() {
    let mut net = Net::new(SEED);
    assert_eq!(
        net.allocate(0, "a", "10.32.0.0/12"),
        allocated("10.32.0.1/12")
    );
    let now = net.now();
    net.a(0).shutdown(now);
    net.run();
    for i in 1..3 {
        let ring = net.a(i).ring();
        assert!(!ring.peer_names().contains(&p(1)), "peer {i}");
        assert!(ring.entries().iter().any(|e| e.version >= 100));
    }
    assert!(net.a(0).space().owned_ranges().is_empty());
    // later requests are cancelled
    assert_eq!(net.allocate(0, "b", "10.32.0.0/12"), Ok(Reply::Cancelled));
}

#[test]
fn persisted_data_load_rules() {
    let now = t0();
    let mut a = Allocator::new(config(0, 1), None, now);
    a.allocate(now, ReqId(1), "c", cidr("10.32.0.0/12"), true);
    let saved = a.persisted();
    // same name and range: used (seed ignored)
    let b = Allocator::new(config(0, 1), Some(saved.clone()), now);
    assert_eq!(b.lookup("c", None), vec![cidr("10.32.0.1/12")]);
    assert!(b.space().is_allocated(0x0a20_0001));
    // another peer name: discarded, and the discard is persisted at once
    let mut c = Allocator::new(config(1, 1), Some(saved.clone()), now);
    assert!(c.lookup("c", None).is_empty());
    assert!(matches!(c.poll_output(), Some(Output::Persist(p)) if p.owned.is_empty()));
    // another range: discarded
    let mut cfg = config(0, 1);
    cfg.universe = cidr("10.0.0.0/16");
    cfg.default_subnet = cfg.universe;
    let d = Allocator::new(cfg, Some(saved.clone()), now);
    assert!(d.lookup("c", None).is_empty());
    assert_eq!(d.ring().range(), cidr("10.0.0.0/16").range());
    // a corrupt ring: discarded
    let mut bad = saved;
    if let Some(r) = bad.ring.as_mut() {
        r.entries.reverse();
    }
    let e = Allocator::new(config(0, 1), Some(bad), now);
    assert!(e.lookup("c", None).is_empty());
}
