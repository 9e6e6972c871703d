//! Channels implemented by local services: the mesh hands their messages over as
//! [`ChannelEvent`]s instead of relaying them, and sends what the services ask it to.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::gossip::{encode_topology, GossipKind, GossipMsg};
use crate::mesh::{ChannelEvent, Hello, Mesh, MeshConfig, Output, PeerInfo};
use crate::topology::{ConnectionSummary, PeerSummary, PeerUpdate};
use crate::PeerName;

const IPAM: &str = "IPallocation";

fn name(i: u8) -> PeerName {
    PeerName::from_bytes([0, 0, 0, 0, 0, i])
}

fn mesh(channels: &[&str]) -> (Mesh, Instant) {
    let now = Instant::now();
    let m = Mesh::new(
        MeshConfig {
            seed: 5,
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            ..MeshConfig::new(name(1), "us", 1)
        },
        now,
    );
    (m, now)
}

fn hello(peer: u8, uid: u64, conn_uid: u64) -> Hello {
    let addr: SocketAddr = format!("198.18.0.{peer}:6783").parse().unwrap();
    Hello {
        name: name(peer),
        nickname: format!("p{peer}"),
        uid,
        short_id: None,
        conn_uid,
        outbound: true,
        remote_addr: addr,
        target: None,
        must_be_known: false,
        overlay: Some("sleeve".into()),
        encrypted: None,
    }
}

/// Everything the mesh wants done now.
fn drain(m: &mut Mesh) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn events(out: &[Output]) -> Vec<ChannelEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Channel(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Sends on channels other than topology.
fn sends(out: &[Output]) -> Vec<(u64, GossipMsg)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn, msg } if msg.channel != "topology" => Some((*conn, msg.clone())),
            _ => None,
        })
        .collect()
}

/// Us (1) connected to A (2) on conn 10 and B (3) on conn 20, both established; the outputs
/// of setting that up.
fn middle(channels: &[&str]) -> (Mesh, Instant, Vec<Output>) {
    let (mut m, now) = mesh(channels);
    for (conn, peer) in [(10, 2u8), (20, 3u8)] {
        m.connection_ready(
            now,
            conn,
            hello(peer, u64::from(peer) * 100, u64::from(peer)),
        )
        .unwrap();
        m.connection_established(now, conn);
    }
    let out = drain(&mut m);
    (m, now, out)
}

/// A peer's record: `peer` (with `uid`) has established connections to `to`.
fn record(peer: u8, uid: u64, version: u64, to: &[u8]) -> PeerUpdate {
    PeerUpdate {
        summary: PeerSummary {
            name_byte: name(peer).to_bytes().to_vec(),
            nick_name: format!("p{peer}"),
            uid,
            version,
            ..PeerSummary::default()
        },
        connections: to
            .iter()
            .map(|&t| ConnectionSummary {
                name_byte: name(t).to_bytes().to_vec(),
                remote_tcp_addr: format!("198.18.0.{t}:6783"),
                outbound: true,
                established: true,
            })
            .collect(),
    }
}

fn topology_from(src: u8, records: &[PeerUpdate]) -> GossipMsg {
    GossipMsg {
        kind: GossipKind::Gossip,
        channel: "topology".into(),
        src: name(src),
        payload: encode_topology(records),
    }
}

fn msg(kind: GossipKind, channel: &str, src: u8, payload: &[u8]) -> GossipMsg {
    GossipMsg {
        kind,
        channel: channel.into(),
        src: name(src),
        payload: payload.to_vec(),
    }
}

#[test]
fn gossip_on_our_channel_is_delivered_not_relayed_and_other_channels_still_relay() {
    let (mut m, now, _) = middle(&[IPAM]);
    let g = msg(GossipKind::Gossip, IPAM, 2, &[1, 2, 3]);
    m.handle_gossip(now, 10, g.clone()).unwrap();
    let out = drain(&mut m);
    assert!(sends(&out).is_empty(), "not relayed: {out:?}");
    assert_eq!(
        events(&out),
        vec![ChannelEvent::Gossip {
            channel: IPAM.into(),
            src: name(2),
            payload: vec![1, 2, 3]
        }]
    );
    // No duplicate suppression for a service's channel: the service decides.
    m.handle_gossip(now, 10, g).unwrap();
    assert_eq!(events(&drain(&mut m)).len(), 1);
    // DNS is not implemented here: relayed to B exactly as before, no event.
    let dns = msg(GossipKind::Gossip, "nameserver", 2, &[9]);
    m.handle_gossip(now, 10, dns).unwrap();
    let out = drain(&mut m);
    assert!(events(&out).is_empty());
    let relayed = sends(&out);
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].0, 20);
    assert_eq!(relayed[0].1.src, name(1));
    assert_eq!(relayed[0].1.payload, vec![9]);
}

#[test]
fn broadcast_is_delivered_and_relayed_only_when_the_service_says_so() {
    let (mut m, now, _) = middle(&[IPAM]);
    // A's record shows it reaches us, so A's broadcast tree goes on through us to B.
    m.handle_gossip(now, 10, topology_from(2, &[record(2, 200, 5, &[1])]))
        .unwrap();
    drain(&mut m);
    let b = msg(GossipKind::Broadcast, IPAM, 2, &[7; 10]);
    m.handle_gossip(now, 10, b.clone()).unwrap();
    let out = drain(&mut m);
    assert!(sends(&out).is_empty(), "the mesh does not relay: {out:?}");
    assert_eq!(
        events(&out),
        vec![ChannelEvent::Broadcast {
            channel: IPAM.into(),
            src: name(2),
            payload: vec![7; 10]
        }]
    );
    // The service relays (what Weave's OnGossipBroadcast returned): originator kept, to B.
    m.relay_broadcast(IPAM, name(2), vec![8; 3]);
    let out = drain(&mut m);
    assert_eq!(
        sends(&out),
        vec![(20, msg(GossipKind::Broadcast, IPAM, 2, &[8; 3]))]
    );
    // Our own broadcast goes to both neighbours, with us as the source.
    m.broadcast(IPAM, vec![5]);
    let mut out = sends(&drain(&mut m));
    out.sort_by_key(|(c, _)| *c);
    assert_eq!(
        out,
        vec![
            (10, msg(GossipKind::Broadcast, IPAM, 1, &[5])),
            (20, msg(GossipKind::Broadcast, IPAM, 1, &[5]))
        ]
    );
}

#[test]
fn unicast_for_us_is_delivered_and_for_others_forwarded_unchanged() {
    let (mut m, now, _) = middle(&[IPAM]);
    let to_us = msg(GossipKind::Unicast { dst: name(1) }, IPAM, 2, &[4, 4]);
    m.handle_gossip(now, 10, to_us).unwrap();
    let out = drain(&mut m);
    assert!(sends(&out).is_empty());
    assert_eq!(
        events(&out),
        vec![ChannelEvent::Unicast {
            channel: IPAM.into(),
            src: name(2),
            payload: vec![4, 4]
        }]
    );
    let to_b = msg(GossipKind::Unicast { dst: name(3) }, IPAM, 2, &[6; 40]);
    m.handle_gossip(now, 10, to_b.clone()).unwrap();
    let out = drain(&mut m);
    assert!(events(&out).is_empty());
    assert_eq!(sends(&out), vec![(20, to_b)]);
}

#[test]
fn services_unicast_by_the_gossip_route_and_learn_when_there_is_none() {
    let (mut m, now, _) = middle(&[IPAM]);
    assert!(m.unicast(IPAM, name(3), vec![1]));
    let out = sends(&drain(&mut m));
    assert_eq!(
        out,
        vec![(20, msg(GossipKind::Unicast { dst: name(3) }, IPAM, 1, &[1]))]
    );
    assert!(!m.unicast(IPAM, name(9), vec![1]), "unknown peer");
    assert!(!m.unicast(IPAM, name(1), vec![1]), "ourselves");
    // C (4) behind A: reached through A once A's record says so.
    m.handle_gossip(
        now,
        10,
        topology_from(2, &[record(2, 200, 5, &[1, 4]), record(4, 400, 1, &[2])]),
    )
    .unwrap();
    drain(&mut m);
    assert!(m.unicast(IPAM, name(4), vec![2]));
    assert_eq!(
        sends(&drain(&mut m)),
        vec![(10, msg(GossipKind::Unicast { dst: name(4) }, IPAM, 1, &[2]))]
    );
    assert!(drain(&mut m).is_empty());
}

#[test]
fn gossip_to_one_peer_and_to_the_neighbours() {
    let (mut m, _now, _) = middle(&[IPAM]);
    assert!(m.gossip_to(name(3), IPAM, vec![3, 3]));
    assert_eq!(
        sends(&drain(&mut m)),
        vec![(20, msg(GossipKind::Gossip, IPAM, 1, &[3, 3]))]
    );
    assert!(!m.gossip_to(name(9), IPAM, vec![3]), "not connected");
    assert!(drain(&mut m).is_empty());
    // What the service makes of gossip from A goes to the neighbours other than A.
    m.relay_gossip(IPAM, name(2), vec![4]);
    assert_eq!(
        sends(&drain(&mut m)),
        vec![(20, msg(GossipKind::Gossip, IPAM, 1, &[4]))]
    );
    assert!(drain(&mut m).is_empty());
    // Two neighbours, three peers: Weave's subset is min(⌊2·log2 3⌋, 2) = both.
    m.gossip_neighbours(IPAM, vec![8]);
    let mut out = sends(&drain(&mut m));
    out.sort_by_key(|(c, _)| *c);
    assert_eq!(
        out,
        vec![
            (10, msg(GossipKind::Gossip, IPAM, 1, &[8])),
            (20, msg(GossipKind::Gossip, IPAM, 1, &[8]))
        ]
    );
}

#[test]
fn new_connections_are_announced_as_weave_sends_all_gossip_down() {
    let (_, _, out) = middle(&[IPAM]);
    let news: Vec<ChannelEvent> = events(&out)
        .into_iter()
        .filter(|e| matches!(e, ChannelEvent::NewConnection { .. }))
        .collect();
    assert_eq!(
        news,
        vec![
            ChannelEvent::NewConnection { peer: name(2) },
            ChannelEvent::NewConnection { peer: name(3) }
        ]
    );

    // C (4) is already reachable through A over established links: a direct connection to
    // it is not "new" (Weave: isConnectedPeer), unless C restarted (another UID).
    for (uid, announced) in [(400, false), (401, true)] {
        let (mut m, now, _) = middle(&[IPAM]);
        m.handle_gossip(
            now,
            10,
            topology_from(2, &[record(2, 200, 5, &[1, 4]), record(4, 400, 1, &[2])]),
        )
        .unwrap();
        drain(&mut m);
        assert_eq!(m.routes().unicast(name(4)), Some(name(2)));
        m.connection_ready(now, 30, hello(4, uid, 4)).unwrap();
        let got = events(&drain(&mut m)).contains(&ChannelEvent::NewConnection { peer: name(4) });
        assert_eq!(got, announced, "uid {uid}");
    }
}

#[test]
fn periodic_gossip_every_interval() {
    let (mut m, now, _) = middle(&[IPAM]);
    m.handle_timeout(now + Duration::from_secs(29));
    assert!(!events(&drain(&mut m)).contains(&ChannelEvent::PeriodicGossip));
    m.handle_timeout(now + Duration::from_secs(30));
    let ev = events(&drain(&mut m));
    assert_eq!(
        ev.iter()
            .filter(|e| **e == ChannelEvent::PeriodicGossip)
            .count(),
        1,
        "{ev:?}"
    );
    m.handle_timeout(now + Duration::from_secs(45));
    assert!(!events(&drain(&mut m)).contains(&ChannelEvent::PeriodicGossip));
    m.handle_timeout(now + Duration::from_secs(60));
    assert!(events(&drain(&mut m)).contains(&ChannelEvent::PeriodicGossip));
}

#[test]
fn reachability_changes_are_coalesced_and_gc_reports_gone_peers() {
    let (mut m, now, out) = middle(&[IPAM]);
    let changed = |ev: &[ChannelEvent]| {
        ev.iter()
            .filter(|e| **e == ChannelEvent::PeersChanged)
            .count()
    };
    assert_eq!(changed(&events(&out)), 1, "A and B came: one event");
    // A topology update bringing C (through A) and D (through B): one event.
    m.handle_gossip(
        now,
        10,
        topology_from(
            2,
            &[
                record(2, 200, 5, &[1, 4]),
                record(4, 400, 1, &[2]),
                record(3, 300, 5, &[1, 5]),
                record(5, 500, 1, &[3]),
            ],
        ),
    )
    .unwrap();
    let out = drain(&mut m);
    assert_eq!(changed(&events(&out)), 1, "{out:?}");
    let infos = m.peer_infos();
    assert_eq!(infos.len(), 5);
    assert!(infos.iter().all(|p| p.reachable), "{infos:?}");
    // A newer record of A with the same links: routes are recalculated, but the same peers
    // are reachable: no event.
    m.handle_gossip(now, 10, topology_from(2, &[record(2, 200, 6, &[1, 4])]))
        .unwrap();
    let out = drain(&mut m);
    assert!(
        sends(&out).is_empty() && !out.is_empty(),
        "the update was news (relayed as topology): {out:?}"
    );
    assert_eq!(changed(&events(&out)), 0);
    // C restarted (new UID, same reachability): an event.
    m.handle_gossip(now, 10, topology_from(2, &[record(4, 401, 1, &[2])]))
        .unwrap();
    assert_eq!(changed(&events(&drain(&mut m))), 1);
    // Losing A makes A and C unreachable; GC removes both.
    m.connection_closed(now, 10, Some("test".into()));
    let ev = events(&drain(&mut m));
    assert_eq!(changed(&ev), 1, "{ev:?}");
    let mut gone: Vec<PeerName> = ev
        .iter()
        .filter_map(|e| match e {
            ChannelEvent::PeerGone { peer } => Some(*peer),
            _ => None,
        })
        .collect();
    gone.sort();
    assert_eq!(gone, vec![name(2), name(4)]);
    assert_eq!(
        m.peer_infos(),
        vec![
            PeerInfo {
                name: name(1),
                uid: 1,
                nickname: "us".into(),
                reachable: true
            },
            PeerInfo {
                name: name(3),
                uid: 300,
                nickname: "p3".into(),
                reachable: true
            },
            PeerInfo {
                name: name(5),
                uid: 500,
                nickname: "p5".into(),
                reachable: true
            },
        ]
    );
}

#[test]
fn peer_infos_show_unreachable_peers_until_collected() {
    let (mut m, now, _) = middle(&[IPAM]);
    // B's record says nothing of us: a record naming a peer nobody links to stays known
    // (placeholder of B's list) but unreachable until GC runs.
    m.handle_gossip(
        now,
        10,
        topology_from(2, &[record(2, 200, 5, &[1]), record(6, 600, 1, &[])]),
    )
    .unwrap();
    drain(&mut m);
    let six = m
        .peer_infos()
        .into_iter()
        .find(|p| p.name == name(6))
        .expect("6 known");
    assert!(!six.reachable);
    m.handle_timeout(now + Duration::from_secs(2));
    let ev = events(&drain(&mut m));
    assert!(
        ev.contains(&ChannelEvent::PeerGone { peer: name(6) }),
        "{ev:?}"
    );
    assert!(m.peer_infos().iter().all(|p| p.name != name(6)));
}

#[test]
fn direct_target_count_follows_connect_and_forget() {
    let (mut m, now) = mesh(&[IPAM]);
    assert_eq!(m.direct_target_count(), 0);
    m.connect(now, &["198.18.0.2".into(), "198.18.0.3:7000".into()], false)
        .unwrap();
    assert_eq!(m.direct_target_count(), 2);
    m.forget(now, &["198.18.0.2".into()]);
    assert_eq!(m.direct_target_count(), 1);
}

#[test]
fn without_channels_nothing_is_handed_over() {
    let (mut m, now, out) = middle(&[]);
    assert!(events(&out).is_empty());
    m.handle_gossip(now, 10, msg(GossipKind::Gossip, IPAM, 2, &[1]))
        .unwrap();
    m.handle_gossip(
        now,
        10,
        msg(GossipKind::Unicast { dst: name(1) }, IPAM, 2, &[1]),
    )
    .unwrap();
    m.connection_closed(now, 10, None);
    m.handle_timeout(now + Duration::from_secs(31));
    let out = drain(&mut m);
    assert!(events(&out).is_empty(), "{out:?}");
    assert_eq!(m.channels().count(), 0);
}

#[test]
fn the_topology_channel_cannot_be_taken_by_a_service() {
    let (mut m, now, _) = middle(&["topology", IPAM]);
    assert_eq!(m.channels().collect::<Vec<_>>(), vec![IPAM]);
    m.handle_gossip(now, 10, topology_from(2, &[record(2, 200, 5, &[1, 4])]))
        .unwrap();
    let out = drain(&mut m);
    assert!(
        events(&out)
            .iter()
            .all(|e| !matches!(e, ChannelEvent::Gossip { .. })),
        "{out:?}"
    );
    assert!(m.peers().contains(name(4)), "applied by the mesh itself");
}
