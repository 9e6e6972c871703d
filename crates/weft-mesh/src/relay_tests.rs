//! A weft peer in the middle of a Weave mesh must pass on the gossip of channels it does not
//! implement (IPAM's `IPallocation`, DNS's `nameserver`) unharmed: tag 4 to its neighbours
//! (exact duplicates suppressed), tag 5 hop by hop towards its destination, tag 6 along the
//! originator's broadcast tree.

use std::net::SocketAddr;
use std::time::Instant;

use crate::gossip::{encode_topology, GossipKind, GossipMsg};
use crate::mesh::{Hello, Mesh, MeshConfig, Output};
use crate::topology::{ConnectionSummary, PeerSummary, PeerUpdate};
use crate::PeerName;

fn name(i: u8) -> PeerName {
    PeerName::from_bytes([0, 0, 0, 0, 0, i])
}

/// Us (1) connected to A (2) on conn 10 and B (3) on conn 20, both established.
fn middle() -> (Mesh, Instant) {
    let now = Instant::now();
    let mut m = Mesh::new(
        MeshConfig {
            seed: 5,
            channels: Vec::new(),
            ..MeshConfig::new(name(1), "us", 1)
        },
        now,
    );
    for (conn, peer, outbound) in [(10, 2u8, true), (20, 3u8, false)] {
        let addr: SocketAddr = format!("198.18.0.{peer}:6783").parse().unwrap();
        m.connection_ready(
            now,
            conn,
            Hello {
                name: name(peer),
                nickname: format!("p{peer}"),
                uid: u64::from(peer) * 100,
                short_id: None,
                conn_uid: u64::from(peer),
                outbound,
                remote_addr: addr,
                target: None,
                must_be_known: false,
                overlay: Some("sleeve".into()),
                encrypted: None,
            },
        )
        .unwrap();
        m.connection_established(now, conn);
    }
    while m.poll_output().is_some() {}
    (m, now)
}

fn sends(m: &mut Mesh) -> Vec<(u64, GossipMsg)> {
    std::iter::from_fn(|| m.poll_output())
        .filter_map(|o| match o {
            Output::Send { conn, msg } if msg.channel != "topology" => Some((conn, msg)),
            _ => None,
        })
        .collect()
}

#[test]
fn gossip_of_unknown_channels_is_relayed_once() {
    let (mut m, now) = middle();
    let msg = GossipMsg {
        kind: GossipKind::Gossip,
        channel: "IPallocation".into(),
        src: name(2),
        payload: vec![1, 2, 3, 4],
    };
    m.handle_gossip(now, 10, msg.clone()).unwrap();
    let out = sends(&mut m);
    assert_eq!(out.len(), 1, "{out:?}");
    let (conn, relayed) = &out[0];
    assert_eq!(*conn, 20, "to the other neighbour, not back");
    assert_eq!(relayed.payload, msg.payload, "payload unharmed");
    assert_eq!(relayed.channel, "IPallocation");
    assert_eq!(relayed.src, name(1), "tag 4 carries the immediate sender");
    // The same payload again: suppressed.
    m.handle_gossip(now, 10, msg).unwrap();
    assert!(sends(&mut m).is_empty());
}

#[test]
fn unicast_is_forwarded_unchanged_and_dropped_when_for_us() {
    let (mut m, now) = middle();
    let to_b = GossipMsg {
        kind: GossipKind::Unicast { dst: name(3) },
        channel: "IPallocation".into(),
        src: name(2),
        payload: vec![9; 40],
    };
    m.handle_gossip(now, 10, to_b.clone()).unwrap();
    assert_eq!(sends(&mut m), vec![(20, to_b)]);
    let to_us = GossipMsg {
        kind: GossipKind::Unicast { dst: name(1) },
        channel: "nameserver".into(),
        src: name(2),
        payload: vec![1],
    };
    m.handle_gossip(now, 10, to_us).unwrap();
    assert!(sends(&mut m).is_empty(), "no IPAM/DNS here to take it");
}

#[test]
fn broadcast_follows_the_originators_tree() {
    let (mut m, now) = middle();
    // Weave relays a broadcast only once the originator's record shows it reaches us.
    let a = PeerUpdate {
        summary: PeerSummary {
            name_byte: name(2).to_bytes().to_vec(),
            nick_name: "p2".into(),
            uid: 200,
            version: 5,
            ..PeerSummary::default()
        },
        connections: vec![ConnectionSummary {
            name_byte: name(1).to_bytes().to_vec(),
            remote_tcp_addr: "198.18.0.1:6783".into(),
            outbound: false,
            established: true,
        }],
    };
    let topo = GossipMsg {
        kind: GossipKind::Gossip,
        channel: "topology".into(),
        src: name(2),
        payload: encode_topology(&[a]),
    };
    m.handle_gossip(now, 10, topo).unwrap();
    while m.poll_output().is_some() {}
    let b = GossipMsg {
        kind: GossipKind::Broadcast,
        channel: "nameserver".into(),
        src: name(2),
        payload: vec![7; 10],
    };
    m.handle_gossip(now, 10, b.clone()).unwrap();
    assert_eq!(
        sends(&mut m),
        vec![(20, b)],
        "originator kept, sent on to B only"
    );
}

#[test]
fn topology_rejects_unicast_and_garbage() {
    let (mut m, now) = middle();
    let bad = GossipMsg {
        kind: GossipKind::Unicast { dst: name(1) },
        channel: "topology".into(),
        src: name(2),
        payload: vec![],
    };
    assert!(m.handle_gossip(now, 10, bad).is_err());
    let garbage = GossipMsg {
        kind: GossipKind::Gossip,
        channel: "topology".into(),
        src: name(2),
        payload: vec![0xff; 7],
    };
    assert!(m.handle_gossip(now, 10, garbage).is_err());
}
