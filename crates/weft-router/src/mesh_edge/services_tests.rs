//! The service plumbing with a fake service: registration, events out of a real `Mesh` through
//! the channel router, commands back through the `MeshHandle`, and the bounded queues.

use super::services::{
    apply, ChannelRouter, MeshGone, MeshPeers, RegisterError, ServiceChannel, Services, EVENT_QUEUE,
};
use super::*;
use weft_mesh::mesh::{ChannelEvent, PeerInfo};

const IPAM: &str = "IPallocation";
/// Every wait in these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(5);

fn name(i: u8) -> PeerName {
    PeerName::from_bytes([0, 0, 0, 0, 0, i])
}

/// A mesh implementing `channels`: us (1) connected to A (2) on conn 10 and B (3) on conn 20.
fn mesh(channels: Vec<String>) -> Mesh {
    let now = Instant::now();
    let mut m = Mesh::new(
        MeshConfig {
            seed: 9,
            channels,
            ..MeshConfig::new(name(1), "us", 1)
        },
        now,
    );
    for (conn, peer) in [(10u64, 2u8), (20, 3)] {
        let hello = Hello {
            name: name(peer),
            nickname: format!("p{peer}"),
            uid: u64::from(peer) * 100,
            short_id: None,
            conn_uid: u64::from(peer),
            outbound: true,
            remote_addr: SocketAddr::from(([198, 18, 0, peer], 6783)),
            target: None,
            must_be_known: false,
            overlay: Some(SLEEVE.into()),
            encrypted: None,
        };
        m.connection_ready(now, conn, hello).unwrap();
        m.connection_established(now, conn);
    }
    m
}

/// What the actor does for services, and nothing else: service commands applied to a real
/// `Mesh`, its channel events dispatched, its sends (other than topology) collected.
struct Pump {
    mesh: Mesh,
    rx: mpsc::Receiver<Input>,
    router: ChannelRouter,
    sent: Vec<(ConnId, GossipMsg)>,
}

impl Pump {
    fn new(services: Services, mesh_for: impl FnOnce(Vec<String>) -> Mesh) -> (Pump, MeshHandle) {
        let handle = services.handle();
        let mesh = mesh_for(services.router.names());
        let Services { rx, router, .. } = services;
        let mut pump = Pump {
            mesh,
            rx,
            router,
            sent: Vec::new(),
        };
        pump.drain();
        (pump, handle)
    }

    fn drain(&mut self) {
        while let Some(out) = self.mesh.poll_output() {
            match out {
                Output::Channel(event) => self.router.dispatch(event),
                Output::Send { conn, msg } if msg.channel != "topology" => {
                    self.sent.push((conn, msg))
                }
                _ => {}
            }
        }
    }

    /// Carry out the next service command (waiting for it at most `DEADLINE`).
    async fn step(&mut self) {
        let input = tokio::time::timeout(DEADLINE, self.rx.recv())
            .await
            .expect("a service command within the deadline")
            .expect("handles are alive");
        match input {
            Input::Service(cmd) => apply(&mut self.mesh, cmd),
            _ => panic!("only service commands in this test"),
        }
        self.drain();
    }

    fn take_sent(&mut self) -> Vec<(ConnId, GossipMsg)> {
        let mut sent = std::mem::take(&mut self.sent);
        sent.sort_by_key(|(c, _)| *c);
        sent
    }
}

/// What the fake service did, reported to the test.
#[derive(Debug, PartialEq, Eq)]
enum Did {
    SentFullState(PeerName),
    Unicast(PeerName, bool),
    Relayed(PeerName),
    Peers(MeshPeers),
}

/// A fake service: full state down new connections, a unicast answer to every gossip (which
/// it also passes on as news), relays broadcasts, asks for the peers when they change.
fn spawn_fake_service(svc: ServiceChannel) -> mpsc::Receiver<Did> {
    let (did, log) = mpsc::channel(64);
    let ServiceChannel {
        channel,
        mut events,
        mesh,
    } = svc;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let report = match event {
                ChannelEvent::NewConnection { peer } => {
                    mesh.gossip_to(peer, &channel, b"full".to_vec()).await?;
                    Did::SentFullState(peer)
                }
                ChannelEvent::Gossip { src, payload, .. } => {
                    mesh.relay_gossip(&channel, src, payload).await?;
                    let ok = mesh.unicast(&channel, src, b"reply".to_vec()).await?;
                    Did::Unicast(src, ok)
                }
                ChannelEvent::Broadcast { src, payload, .. } => {
                    mesh.relay_broadcast(&channel, src, payload).await?;
                    Did::Relayed(src)
                }
                ChannelEvent::PeersChanged => Did::Peers(mesh.peer_infos().await?),
                _ => continue,
            };
            if did.send(report).await.is_err() {
                break;
            }
        }
        Ok::<(), MeshGone>(())
    });
    log
}

async fn next(log: &mut mpsc::Receiver<Did>) -> Did {
    tokio::time::timeout(DEADLINE, log.recv())
        .await
        .expect("the fake service reported within the deadline")
        .expect("the fake service is running")
}

#[tokio::test]
async fn a_fake_service_gets_its_channel_and_answers_through_the_handle() {
    let mut services = Services::new();
    let svc = services.register(IPAM).unwrap();
    let (mut pump, _api) = Pump::new(services, mesh);
    let mut log = spawn_fake_service(svc);

    // Setting up A and B: both new (full state each), and one change of reachable peers.
    pump.step().await;
    pump.step().await;
    let mut dids = vec![next(&mut log).await, next(&mut log).await];
    dids.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        dids,
        vec![Did::SentFullState(name(2)), Did::SentFullState(name(3))]
    );
    pump.step().await; // the peer query
    match next(&mut log).await {
        Did::Peers(p) => {
            assert_eq!(p.direct_targets, 0);
            assert_eq!(
                p.peers.iter().map(|i| i.name).collect::<Vec<_>>(),
                vec![name(1), name(2), name(3)]
            );
            assert!(p.peers.iter().all(|i: &PeerInfo| i.reachable));
        }
        other => panic!("expected the peers, got {other:?}"),
    }
    let full = |conn| {
        (
            conn,
            GossipMsg {
                kind: GossipKind::Gossip,
                channel: IPAM.into(),
                src: name(1),
                payload: b"full".to_vec(),
            },
        )
    };
    assert_eq!(pump.take_sent(), vec![full(10), full(20)]);

    // Gossip from A on our channel: handed over (not relayed), answered with a unicast to A.
    let now = Instant::now();
    let g = GossipMsg {
        kind: GossipKind::Gossip,
        channel: IPAM.into(),
        src: name(2),
        payload: vec![1],
    };
    pump.mesh.handle_gossip(now, 10, g).unwrap();
    pump.drain();
    assert!(pump.take_sent().is_empty(), "the mesh relays nothing");
    pump.step().await;
    pump.step().await;
    assert_eq!(next(&mut log).await, Did::Unicast(name(2), true));
    assert_eq!(
        pump.take_sent(),
        vec![
            (
                10,
                GossipMsg {
                    kind: GossipKind::Unicast { dst: name(2) },
                    channel: IPAM.into(),
                    src: name(1),
                    payload: b"reply".to_vec(),
                }
            ),
            (
                20,
                GossipMsg {
                    kind: GossipKind::Gossip,
                    channel: IPAM.into(),
                    src: name(1),
                    payload: vec![1],
                }
            )
        ],
        "the news to B only, the answer to A"
    );

    // Gossip claiming to come from a peer we do not know: the unicast answer has no route.
    let stranger = GossipMsg {
        kind: GossipKind::Gossip,
        channel: IPAM.into(),
        src: name(9),
        payload: vec![2],
    };
    pump.mesh.handle_gossip(now, 10, stranger).unwrap();
    pump.drain();
    pump.step().await;
    pump.step().await;
    assert_eq!(next(&mut log).await, Did::Unicast(name(9), false));
    let sent = pump.take_sent();
    assert_eq!(
        sent.iter().map(|(c, m)| (*c, m.kind)).collect::<Vec<_>>(),
        vec![(10, GossipKind::Gossip), (20, GossipKind::Gossip)],
        "only the news went out"
    );

    // A channel nobody registered is still relayed by the mesh, and the service hears nothing.
    let dns = GossipMsg {
        kind: GossipKind::Gossip,
        channel: "nameserver".into(),
        src: name(2),
        payload: vec![3],
    };
    pump.mesh.handle_gossip(now, 10, dns).unwrap();
    pump.drain();
    let sent = pump.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0, sent[0].1.channel.as_str()), (20, "nameserver"));
    assert!(
        log.try_recv().is_err(),
        "no event for an unregistered channel"
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_general_events_reach_every_service() {
    let mut services = Services::new();
    let mut ipam = services.register(IPAM).unwrap();
    let mut dns = services.register("nameserver").unwrap();
    let mut router = services.router;
    let gossip = |i: u32| ChannelEvent::Gossip {
        channel: IPAM.into(),
        src: name(2),
        payload: i.to_be_bytes().to_vec(),
    };
    // Nobody reads: the first EVENT_QUEUE are kept, the rest dropped and counted; dispatch
    // never waits (this test would hang otherwise).
    for i in 0..(EVENT_QUEUE as u32 + 10) {
        router.dispatch(gossip(i));
    }
    assert_eq!(
        router.dropped(),
        vec![
            ("IPallocation".to_owned(), 10),
            ("nameserver".to_owned(), 0)
        ]
    );
    // The kept ones are the oldest, in order.
    assert_eq!(ipam.events.try_recv().unwrap(), gossip(0));
    // An event for every service reaches the other one; IPAM's queue has room for one now.
    router.dispatch(ChannelEvent::PeriodicGossip);
    assert_eq!(dns.events.try_recv().unwrap(), ChannelEvent::PeriodicGossip);
    assert!(dns.events.try_recv().is_err(), "DNS got no IPAM gossip");
    assert_eq!(router.dropped()[0].1, 10);
    for i in 1..EVENT_QUEUE as u32 {
        assert_eq!(ipam.events.try_recv().unwrap(), gossip(i));
    }
    assert_eq!(
        ipam.events.try_recv().unwrap(),
        ChannelEvent::PeriodicGossip
    );
    // A service that stopped loses its events quietly.
    drop(dns);
    router.dispatch(ChannelEvent::PeersChanged);
    assert_eq!(ipam.events.try_recv().unwrap(), ChannelEvent::PeersChanged);
}

#[test]
fn register_refuses_the_topology_channel_duplicates_and_no_name() {
    let mut services = Services::new();
    assert!(services.register(IPAM).is_ok());
    assert_eq!(
        services.register(IPAM).unwrap_err(),
        RegisterError::Duplicate(IPAM.into())
    );
    assert_eq!(
        services.register("topology").unwrap_err(),
        RegisterError::Topology
    );
    assert_eq!(services.register("").unwrap_err(), RegisterError::Empty);
    assert_eq!(services.router.names(), vec![IPAM.to_owned()]);
}

#[tokio::test]
async fn handles_say_when_the_mesh_has_stopped() {
    let mut services = Services::new();
    let svc = services.register(IPAM).unwrap();
    drop(services);
    assert_eq!(svc.mesh.broadcast(IPAM, vec![1]).await, Err(MeshGone));
    assert_eq!(
        svc.mesh.unicast(IPAM, name(2), vec![1]).await,
        Err(MeshGone)
    );
    assert_eq!(svc.mesh.peer_infos().await, Err(MeshGone));
}

#[tokio::test]
async fn broadcasts_are_relayed_only_through_the_service() {
    let mut services = Services::new();
    let svc = services.register(IPAM).unwrap();
    let (mut pump, _api) = Pump::new(services, mesh);
    let mut log = spawn_fake_service(svc);
    for _ in 0..3 {
        pump.step().await;
        next(&mut log).await;
    }
    pump.take_sent();
    let now = Instant::now();
    // A broadcast from B: B's tree from us goes on to A once B's record shows B reaches us.
    let b_record = weft_mesh::topology::PeerUpdate {
        summary: weft_mesh::topology::PeerSummary {
            name_byte: name(3).to_bytes().to_vec(),
            nick_name: "p3".into(),
            uid: 300,
            version: 5,
            ..Default::default()
        },
        connections: vec![weft_mesh::topology::ConnectionSummary {
            name_byte: name(1).to_bytes().to_vec(),
            remote_tcp_addr: "198.18.0.1:6783".into(),
            outbound: false,
            established: true,
        }],
    };
    let topo = GossipMsg {
        kind: GossipKind::Gossip,
        channel: "topology".into(),
        src: name(3),
        payload: weft_mesh::gossip::encode_topology(&[b_record]),
    };
    pump.mesh.handle_gossip(now, 20, topo).unwrap();
    pump.drain();
    let b = GossipMsg {
        kind: GossipKind::Broadcast,
        channel: IPAM.into(),
        src: name(3),
        payload: vec![7; 4],
    };
    pump.mesh.handle_gossip(now, 20, b.clone()).unwrap();
    pump.drain();
    assert!(pump.take_sent().is_empty(), "not by the mesh");
    pump.step().await;
    assert_eq!(next(&mut log).await, Did::Relayed(name(3)));
    assert_eq!(
        pump.take_sent(),
        vec![(10, b)],
        "on along B's tree, to A only"
    );
}
