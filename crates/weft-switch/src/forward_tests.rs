//! Forwarding on small topologies, each peer with its own table built from the same links.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use weft_mesh::topology::{ConnectionSummary, PeerSummary, PeerUpdate};

use super::*;

fn n(v: u64) -> PeerName {
    PeerName::from_u64(v).unwrap()
}

/// The table as `local` sees it, from symmetric established links.
fn world(local: u64, pairs: &[(u64, u64)]) -> Peers {
    let mut by_peer: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &(a, b) in pairs {
        by_peer.entry(a).or_default().push(b);
        by_peer.entry(b).or_default().push(a);
    }
    let mut t = Peers::new(n(local), "local", 1, 0);
    let update: Vec<PeerUpdate> = by_peer
        .iter()
        .filter(|(&p, _)| p != local)
        .map(|(&p, conns)| PeerUpdate {
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
                .map(|&r| ConnectionSummary {
                    name_byte: n(r).to_bytes().to_vec(),
                    remote_tcp_addr: String::new(),
                    outbound: true,
                    established: true,
                })
                .collect(),
        })
        .collect();
    let mut rng = |_: u64| 0u64;
    t.apply_update(&update, &mut rng).unwrap();
    for &r in by_peer.get(&local).map(Vec::as_slice).unwrap_or(&[]) {
        t.add_connection(n(r), "", true, true).unwrap();
    }
    t
}

struct Net {
    peers: BTreeMap<PeerName, (Peers, Routes, Switch)>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Trace {
    /// Injections per peer.
    injected: BTreeMap<PeerName, usize>,
    /// Sleeve hops taken: (from, to, src_peer, dst_peer).
    hops: Vec<(PeerName, PeerName, PeerName, PeerName)>,
    drops: Vec<(PeerName, DropReason)>,
}

impl Net {
    fn new(ids: &[u64], pairs: &[(u64, u64)]) -> Net {
        let peers = ids
            .iter()
            .map(|&i| {
                let t = world(i, pairs);
                let r = Routes::calculate(&t);
                (n(i), (t, r, Switch::new(n(i), MacCache::default())))
            })
            .collect();
        Net { peers }
    }

    /// A frame captured at `at`; follow every action through the net.
    fn capture(&mut self, now: Instant, at: u64, frame: &[u8]) -> Trace {
        let mut trace = Trace::default();
        let mut out = Vec::new();
        let mut queue: VecDeque<(PeerName, PeerName, PeerName, PeerName)> = VecDeque::new();
        let handle = |me: PeerName, out: &Vec<Action>, trace: &mut Trace, q: &mut VecDeque<_>| {
            for a in out {
                match *a {
                    Action::Inject => *trace.injected.entry(me).or_default() += 1,
                    Action::Send {
                        next_hop,
                        src_peer,
                        dst_peer,
                        ..
                    } => {
                        trace.hops.push((me, next_hop, src_peer, dst_peer));
                        q.push_back((me, next_hop, src_peer, dst_peer));
                    }
                    Action::Drop(r) => trace.drops.push((me, r)),
                }
            }
        };
        {
            let (t, r, sw) = self.peers.get_mut(&n(at)).unwrap();
            sw.handle_captured(
                now,
                &MeshRoutes {
                    peers: t,
                    routes: r,
                },
                frame,
                &mut out,
            );
            handle(n(at), &out, &mut trace, &mut queue);
        }
        let mut guard = 0;
        while let Some((_, to, s, d)) = queue.pop_front() {
            guard += 1;
            assert!(guard < 10_000, "forwarding loop");
            let (t, r, sw) = self.peers.get_mut(&to).unwrap();
            sw.handle_overlay(
                now,
                &MeshRoutes {
                    peers: t,
                    routes: r,
                },
                s,
                d,
                frame,
                &mut out,
            );
            handle(to, &out, &mut trace, &mut queue);
        }
        trace
    }
}

fn eth(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f
}

const C1: [u8; 6] = [0x56, 0x36, 0x02, 0xf0, 0xb4, 0x4f];
const C3: [u8; 6] = [0x36, 0xe4, 0x4d, 0xba, 0x33, 0x9b];
const BCAST: [u8; 6] = [0xff; 6];

#[test]
fn line_of_three_multi_hop() {
    let now = Instant::now();
    let mut net = Net::new(&[1, 2, 3], &[(1, 2), (2, 3)]);
    // c1's ARP request: flooded h1 → h2 → h3, injected once at each, dst rewritten per hop.
    let t = net.capture(now, 1, &eth(BCAST, C1));
    assert_eq!(t.injected, BTreeMap::from([(n(2), 1), (n(3), 1)]));
    assert_eq!(
        t.hops,
        vec![(n(1), n(2), n(1), n(2)), (n(2), n(3), n(1), n(3))]
    );
    // c3's unicast reply: h3 learnt c1 → h1, sends via h2 with (h3, h1); h2 relays.
    let t = net.capture(now, 3, &eth(C1, C3));
    assert_eq!(
        t.hops,
        vec![(n(3), n(2), n(3), n(1)), (n(2), n(1), n(3), n(1))]
    );
    assert_eq!(t.injected, BTreeMap::from([(n(1), 1)]));
    assert!(t.drops.is_empty(), "{:?}", t.drops);
    // c1 → c3: known at h1 now.
    let t = net.capture(now, 1, &eth(C3, C1));
    assert_eq!(
        t.hops,
        vec![(n(1), n(2), n(1), n(3)), (n(2), n(3), n(1), n(3))]
    );
    assert_eq!(t.injected, BTreeMap::from([(n(3), 1)]));
    // The intermediate hop learnt c1 from the broadcast it received (D = h2).
    let h2 = &net.peers[&n(2)].2;
    assert_eq!(h2.macs().lookup(Mac(C1)), Some(n(1)));
}

#[test]
fn captured_edge_cases() {
    let now = Instant::now();
    let mut net = Net::new(&[1, 2], &[(1, 2)]);
    let (t, r, sw) = net.peers.get_mut(&n(1)).unwrap();
    let view = MeshRoutes {
        peers: t,
        routes: r,
    };
    let mut out = Vec::new();
    // Local destination: dropped.
    sw.handle_captured(now, &view, &eth(BCAST, C3), &mut out);
    sw.handle_captured(now, &view, &eth(C3, C1), &mut out);
    assert_eq!(out, vec![Action::Drop(DropReason::LocalDestination)]);
    // STP.
    sw.handle_captured(now, &view, &eth(Mac::STP.0, C1), &mut out);
    assert_eq!(out, vec![Action::Drop(DropReason::Stp)]);
    // A MAC owned by a remote peer captured locally: dropped, entry unchanged.
    sw.handle_overlay(
        now,
        &view,
        n(2),
        n(1),
        &eth(BCAST, [2, 0, 0, 0, 0, 9]),
        &mut out,
    );
    assert_eq!(out, vec![Action::Inject]);
    sw.handle_captured(now, &view, &eth(BCAST, [2, 0, 0, 0, 0, 9]), &mut out);
    assert!(matches!(
        out[..],
        [Action::Drop(DropReason::MacOwnedElsewhere { owner, .. })] if owner == n(2)
    ));
    // Unknown peers and short frames from the overlay.
    sw.handle_overlay(now, &view, n(7), n(1), &eth(BCAST, C3), &mut out);
    assert_eq!(out, vec![Action::Drop(DropReason::UnknownSrcPeer(n(7)))]);
    sw.handle_overlay(now, &view, n(2), n(7), &eth(BCAST, C3), &mut out);
    assert_eq!(out, vec![Action::Drop(DropReason::UnknownDstPeer(n(7)))]);
    sw.handle_overlay(now, &view, n(2), n(1), &[1, 2, 3], &mut out);
    assert_eq!(
        out,
        vec![Action::Drop(DropReason::Malformed(
            FrameError::ShortEthernet(3)
        ))]
    );
    // A lone peer floods nowhere.
    let mut alone = Net::new(&[5], &[]);
    let (t, r, sw) = alone.peers.get_mut(&n(5)).unwrap();
    sw.handle_captured(
        now,
        &MeshRoutes {
            peers: t,
            routes: r,
        },
        &eth(BCAST, C1),
        &mut out,
    );
    assert_eq!(out, vec![Action::Drop(DropReason::NoBroadcastHops)]);
}

#[test]
fn moved_mac_is_reported() {
    let now = Instant::now();
    let mut net = Net::new(&[1, 2, 3], &[(1, 2), (1, 3)]);
    let (t, r, sw) = net.peers.get_mut(&n(1)).unwrap();
    let view = MeshRoutes {
        peers: t,
        routes: r,
    };
    let mut out = Vec::new();
    let f = eth(BCAST, C3);
    assert_eq!(
        sw.handle_overlay(now, &view, n(2), n(1), &f, &mut out),
        Learned::New
    );
    assert_eq!(
        sw.handle_overlay(now, &view, n(3), n(1), &f, &mut out),
        Learned::Moved { from: n(2) }
    );
}

proptest! {
    /// On any connected graph with identical views, a broadcast captured anywhere reaches
    /// every other peer exactly once and never comes back to its origin.
    #[test]
    fn broadcast_reaches_every_peer_once(
        size in 2u64..9,
        extra in proptest::collection::vec((1u64..9, 1u64..9), 0..12),
        origin in 1u64..9,
    ) {
        let ids: Vec<u64> = (1..=size).collect();
        let mut pairs: Vec<(u64, u64)> = (1..size).map(|i| (i, i + 1)).collect();
        for (a, b) in extra {
            if a != b && a <= size && b <= size && !pairs.contains(&(a, b)) && !pairs.contains(&(b, a)) {
                pairs.push((a, b));
            }
        }
        let origin = (origin - 1) % size + 1;
        let mut net = Net::new(&ids, &pairs);
        let t = net.capture(Instant::now(), origin, &eth(BCAST, [2, 0, 0, 0, 0, origin as u8]));
        for &i in &ids {
            let want = usize::from(i != origin);
            prop_assert_eq!(t.injected.get(&n(i)).copied().unwrap_or(0), want, "peer {}", i);
        }
        prop_assert_eq!(t.hops.len(), ids.len() - 1, "one copy per tree edge");
    }
}
