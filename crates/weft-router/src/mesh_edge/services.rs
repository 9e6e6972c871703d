//! How a service (IPAM, DNS) gets its gossip channel.
//!
//! Before the mesh starts, the router makes a [`Services`] and each service registers the
//! channel it implements ([`Services::register`], e.g. `IPallocation`). It gets a
//! [`ServiceChannel`]: a bounded receiver of that channel's [`ChannelEvent`]s (plus the events
//! for every service: new connection, periodic gossip, peers changed, peer gone) and a
//! cloneable [`MeshHandle`] whose methods send [`ServiceCommand`]s to the mesh actor. The mesh
//! core is configured with the registered names ([`MeshConfig::channels`]), so it hands their
//! messages over instead of relaying them; channels nobody registered keep being relayed.
//!
//! The actor stays the data plane and the mesh: it only forwards. Events go out with
//! `try_send`: a service that does not keep up loses events (counted per channel, shown in
//! the status snapshot, logged at powers of two) and never stalls the actor. Commands come in
//! on the actor's input queue, so a service sending faster than the actor takes them waits in
//! `send`, not the actor.
//!
//! [`MeshConfig::channels`]: weft_mesh::mesh::MeshConfig::channels

use std::collections::BTreeMap;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use weft_mesh::gossip::TOPOLOGY_CHANNEL;
use weft_mesh::mesh::{ChannelEvent, Mesh, PeerInfo};
use weft_mesh::PeerName;

use super::{Input, MeshHandle};

/// Events queued per service before further ones are dropped. A service answers within
/// milliseconds; 1024 covers a full mesh's worth of new connections at once.
pub const EVENT_QUEUE: usize = 1024;

/// The actor's input queue (connections, dials, the API and the services share it).
pub(super) const INPUT_QUEUE: usize = 1024;

/// A channel cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "the {TOPOLOGY_CHANNEL:?} gossip channel belongs to the mesh; a service cannot take it"
    )]
    Topology,
    #[error(
        "gossip channel {0:?} is already registered by another service; register each channel once"
    )]
    Duplicate(String),
    #[error("a gossip channel needs a name")]
    Empty,
}

/// The mesh actor has stopped (the router is shutting down); nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the mesh has stopped: the router is shutting down")]
pub struct MeshGone;

/// What a service asks the mesh actor to do (see [`MeshHandle`]'s methods).
#[derive(Debug)]
pub enum ServiceCommand {
    /// Tag 6 from us along our broadcast tree.
    Broadcast { channel: String, payload: Vec<u8> },
    /// Tag 6 keeping `origin`, along `origin`'s broadcast tree.
    RelayBroadcast {
        channel: String,
        origin: PeerName,
        payload: Vec<u8>,
    },
    /// Tag 5 to `dst` by the gossip route; the reply says whether there was one.
    Unicast {
        channel: String,
        dst: PeerName,
        payload: Vec<u8>,
        reply: oneshot::Sender<bool>,
    },
    /// Tag 4 down the connection to `peer`, if there is one.
    GossipTo {
        peer: PeerName,
        channel: String,
        payload: Vec<u8>,
    },
    /// Tag 4 to Weave's random subset of neighbours.
    GossipNeighbours { channel: String, payload: Vec<u8> },
    /// Tag 4 to the random subset of neighbours other than `from` (passing on news received
    /// from `from`).
    RelayGossip {
        channel: String,
        from: PeerName,
        payload: Vec<u8>,
    },
    /// The peers as the mesh knows them now.
    PeerInfos(oneshot::Sender<MeshPeers>),
}

/// The answer to [`MeshHandle::peer_infos`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeers {
    /// Every peer of the table, us included, in name order.
    pub peers: Vec<PeerInfo>,
    /// Direct targets of the connection maker (IPAM's default quorum comes from it).
    pub direct_targets: usize,
}

/// A registered service's end: its events and the handle to answer with.
#[derive(Debug)]
pub struct ServiceChannel {
    /// The channel's name.
    pub channel: String,
    pub events: mpsc::Receiver<ChannelEvent>,
    pub mesh: MeshHandle,
}

/// The services registered before the mesh starts (see the module docs). Also creates the
/// actor's input queue, so handles exist before the actor does.
pub struct Services {
    pub(super) tx: mpsc::Sender<Input>,
    pub(super) rx: mpsc::Receiver<Input>,
    pub(super) router: ChannelRouter,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        Services {
            tx,
            rx,
            router: ChannelRouter::default(),
        }
    }

    /// Register the service implementing `channel`: the mesh hands that channel's messages to
    /// the returned receiver instead of relaying them.
    pub fn register(&mut self, channel: &str) -> Result<ServiceChannel, RegisterError> {
        if channel.is_empty() {
            return Err(RegisterError::Empty);
        }
        if channel == TOPOLOGY_CHANNEL {
            return Err(RegisterError::Topology);
        }
        if self.router.sinks.contains_key(channel) {
            return Err(RegisterError::Duplicate(channel.to_owned()));
        }
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        self.router
            .sinks
            .insert(channel.to_owned(), Sink { tx, dropped: 0 });
        Ok(ServiceChannel {
            channel: channel.to_owned(),
            events,
            mesh: self.handle(),
        })
    }

    /// A handle to the actor-to-be (the API's).
    pub fn handle(&self) -> MeshHandle {
        MeshHandle {
            tx: self.tx.clone(),
        }
    }
}

/// The actor's side: one queue per registered channel.
#[derive(Debug, Default)]
pub(super) struct ChannelRouter {
    sinks: BTreeMap<String, Sink>,
}

#[derive(Debug)]
struct Sink {
    tx: mpsc::Sender<ChannelEvent>,
    dropped: u64,
}

impl Sink {
    fn offer(&mut self, channel: &str, event: ChannelEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    warn!(
                        "the {channel} service is not keeping up: {} events dropped (latest {})",
                        self.dropped,
                        kind(&event)
                    );
                }
            }
            Err(TrySendError::Closed(event)) => {
                debug!(
                    "the {channel} service has stopped: {} dropped",
                    kind(&event)
                );
            }
        }
    }
}

fn kind(e: &ChannelEvent) -> &'static str {
    match e {
        ChannelEvent::Gossip { .. } => "gossip",
        ChannelEvent::Broadcast { .. } => "broadcast",
        ChannelEvent::Unicast { .. } => "unicast",
        ChannelEvent::NewConnection { .. } => "new connection",
        ChannelEvent::PeriodicGossip => "periodic gossip",
        ChannelEvent::PeersChanged => "peers changed",
        ChannelEvent::PeerGone { .. } => "peer gone",
    }
}

impl ChannelRouter {
    /// The registered channels, for the mesh's configuration.
    pub(super) fn names(&self) -> Vec<String> {
        self.sinks.keys().cloned().collect()
    }

    /// Pass an event to its channel's service, or to every service; never waits.
    pub(super) fn dispatch(&mut self, event: ChannelEvent) {
        let channel = match &event {
            ChannelEvent::Gossip { channel, .. }
            | ChannelEvent::Broadcast { channel, .. }
            | ChannelEvent::Unicast { channel, .. } => Some(channel.clone()),
            ChannelEvent::NewConnection { .. }
            | ChannelEvent::PeriodicGossip
            | ChannelEvent::PeersChanged
            | ChannelEvent::PeerGone { .. } => None,
        };
        match channel {
            Some(channel) => match self.sinks.get_mut(&channel) {
                Some(sink) => sink.offer(&channel, event),
                None => debug!("event for unregistered channel {channel} dropped"),
            },
            None => {
                for (channel, sink) in &mut self.sinks {
                    sink.offer(channel, event.clone());
                }
            }
        }
    }

    /// Events dropped per channel because its service's queue was full.
    pub(super) fn dropped(&self) -> Vec<(String, u64)> {
        self.sinks
            .iter()
            .map(|(c, s)| (c.clone(), s.dropped))
            .collect()
    }
}

/// Carry out a service's command on the mesh core (the sends come out of its outputs).
pub(super) fn apply(mesh: &mut Mesh, cmd: ServiceCommand) {
    match cmd {
        ServiceCommand::Broadcast { channel, payload } => mesh.broadcast(&channel, payload),
        ServiceCommand::RelayBroadcast {
            channel,
            origin,
            payload,
        } => mesh.relay_broadcast(&channel, origin, payload),
        ServiceCommand::Unicast {
            channel,
            dst,
            payload,
            reply,
        } => {
            let sent = mesh.unicast(&channel, dst, payload);
            if !sent {
                debug!("{channel} unicast to {dst}: no route");
            }
            let _ = reply.send(sent);
        }
        ServiceCommand::GossipTo {
            peer,
            channel,
            payload,
        } => {
            if !mesh.gossip_to(peer, &channel, payload) {
                debug!("{channel} gossip to {peer}: not connected any more");
            }
        }
        ServiceCommand::GossipNeighbours { channel, payload } => {
            mesh.gossip_neighbours(&channel, payload)
        }
        ServiceCommand::RelayGossip {
            channel,
            from,
            payload,
        } => mesh.relay_gossip(&channel, from, payload),
        ServiceCommand::PeerInfos(reply) => {
            let _ = reply.send(MeshPeers {
                peers: mesh.peer_infos(),
                direct_targets: mesh.direct_target_count(),
            });
        }
    }
}

/// What a service can ask of the mesh. Each waits only for room in the actor's queue (and, for
/// [`MeshHandle::unicast`] and [`MeshHandle::peer_infos`], the actor's answer).
impl MeshHandle {
    async fn command(&self, cmd: ServiceCommand) -> Result<(), MeshGone> {
        self.tx
            .send(Input::Service(cmd))
            .await
            .map_err(|_| MeshGone)
    }

    /// Tag 6 on `channel` from us, along our broadcast tree.
    pub async fn broadcast(&self, channel: &str, payload: Vec<u8>) -> Result<(), MeshGone> {
        self.command(ServiceCommand::Broadcast {
            channel: channel.to_owned(),
            payload,
        })
        .await
    }

    /// Pass on a broadcast from `origin` along its tree (what the service makes of a
    /// [`ChannelEvent::Broadcast`] it received, if anything).
    pub async fn relay_broadcast(
        &self,
        channel: &str,
        origin: PeerName,
        payload: Vec<u8>,
    ) -> Result<(), MeshGone> {
        self.command(ServiceCommand::RelayBroadcast {
            channel: channel.to_owned(),
            origin,
            payload,
        })
        .await
    }

    /// Tag 5 to `dst`; `Ok(false)` when the mesh has no route to it.
    pub async fn unicast(
        &self,
        channel: &str,
        dst: PeerName,
        payload: Vec<u8>,
    ) -> Result<bool, MeshGone> {
        let (reply, answer) = oneshot::channel();
        self.command(ServiceCommand::Unicast {
            channel: channel.to_owned(),
            dst,
            payload,
            reply,
        })
        .await?;
        answer.await.map_err(|_| MeshGone)
    }

    /// Tag 4 down the connection to `peer` (the answer to [`ChannelEvent::NewConnection`]).
    pub async fn gossip_to(
        &self,
        peer: PeerName,
        channel: &str,
        payload: Vec<u8>,
    ) -> Result<(), MeshGone> {
        self.command(ServiceCommand::GossipTo {
            peer,
            channel: channel.to_owned(),
            payload,
        })
        .await
    }

    /// Tag 4 to a random subset of neighbours (the answer to [`ChannelEvent::PeriodicGossip`]).
    pub async fn gossip_neighbours(&self, channel: &str, payload: Vec<u8>) -> Result<(), MeshGone> {
        self.command(ServiceCommand::GossipNeighbours {
            channel: channel.to_owned(),
            payload,
        })
        .await
    }

    /// Tag 4 to the random neighbours other than `from`: what the service passes on of a
    /// [`ChannelEvent::Gossip`] from `from` (Weave relays what `OnGossip` returns).
    pub async fn relay_gossip(
        &self,
        channel: &str,
        from: PeerName,
        payload: Vec<u8>,
    ) -> Result<(), MeshGone> {
        self.command(ServiceCommand::RelayGossip {
            channel: channel.to_owned(),
            from,
            payload,
        })
        .await
    }

    /// The peers as the mesh knows them now, and the number of direct targets.
    pub async fn peer_infos(&self) -> Result<MeshPeers, MeshGone> {
        let (reply, answer) = oneshot::channel();
        self.command(ServiceCommand::PeerInfos(reply)).await?;
        answer.await.map_err(|_| MeshGone)
    }
}
