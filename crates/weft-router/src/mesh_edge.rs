//! The async edge that drives the mesh: TCP listener and dials, one task per connection
//! running a `weft-wire` [`Connection`], the sleeve UDP socket, and one actor task that owns
//! the pure cores ([`Mesh`] and each connection's [`HeartbeatLink`]).
//!
//! Data flow: a connection task reads bytes, feeds its `Connection`, and forwards handshake
//! results and messages to the actor over one channel (so the actor sees them in order); the
//! actor feeds the mesh and the links, and sends back what to write or to close. The actor
//! also owns the UDP socket (heartbeats are few) and answers the HTTP API's requests.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tracing::{debug, info, warn};
use weft_mesh::gossip::{GossipKind, GossipMsg};
use weft_mesh::maker::TargetError;
use weft_mesh::mesh::{
    ConnId, Hello, Mesh, MeshConfig, MeshLimits, MeshStatus, MeshTimings, Output,
};
use weft_mesh::PeerName;
use weft_sleeve::packet::OutFrame;
use weft_sleeve::segment::{
    self, MessageKeys, Plan, Pushed, Reassembler, SegmentKey, SEGMENTS_FEATURE,
};
use weft_sleeve::{HeartbeatLink, LinkConfig, LinkEvent, Transmit};
use weft_switch::toobig::ICMP_FRAG_NEEDED_MAX;
use weft_switch::{
    fragment, icmp_frag_needed, plan_send, Action, MacCache, MeshRoutes, SendPlan, Switch,
};
use weft_wire::{
    Config as WireConfig, Connection, ConnectionError, Event, Features, GossipEnvelope,
    LocalIdentity, Message, OverlayControlMsg, Password, RemotePeer, UnicastEnvelope,
};

use crate::handshake_gate::{self, HandshakeGate, Permit};
use crate::sleeve_io::{self, DfError, DfSocket};
use crate::subnet::Subnet;

/// The overlay weft offers today.
const SLEEVE: &str = "sleeve";
/// How long a dial may take to connect.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// weft sends sleeve heartbeats this often once established (Weave: every 10 s), and says so
/// in this feature, which Weave routers ignore; a weft peer then fails a silent link after
/// [`WEFT_MISSED_HEARTBEATS`] of them instead of Weave's 60 s.
const HEARTBEAT_FEATURE: &str = "WeftHeartbeatMs";
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const WEFT_MISSED_HEARTBEATS: u32 = 6;

/// How this router joins the mesh.
#[derive(Clone)]
pub struct MeshSettings {
    pub name: PeerName,
    pub nickname: String,
    pub port: u16,
    /// Address to listen on (all addresses by default).
    pub host: IpAddr,
    pub password: Option<Password>,
    pub peers: Vec<String>,
    pub conn_limit: usize,
    pub discovery: bool,
    pub trusted_subnets: Vec<Subnet>,
    /// Where direct targets are persisted (for `--resume`).
    pub targets_file: PathBuf,
    /// Offer weft's wire extensions (fast heartbeats, segmented datagrams); without them the
    /// router behaves on the wire exactly as a Weave 2.8.1 router.
    pub extensions: bool,
}

impl std::fmt::Debug for MeshSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSettings")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("password", &self.password)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// What the HTTP API can ask the mesh.
pub enum ApiRequest {
    Status(oneshot::Sender<MeshSnapshot>),
    Connect {
        peers: Vec<String>,
        replace: bool,
        reply: oneshot::Sender<Result<(), Vec<TargetError>>>,
    },
    Forget {
        peers: Vec<String>,
        reply: oneshot::Sender<()>,
    },
}

/// The mesh status plus what the edge knows, taken at one instant.
#[derive(Debug, Clone)]
pub struct MeshSnapshot {
    pub mesh: MeshStatus,
    pub encryption: bool,
    pub trusted_subnets: Vec<String>,
    /// `Instant` and wall clock at the same moment, to show retry times.
    pub taken: (Instant, SystemTime),
    /// Sleeve datagrams dropped (malformed, failed authentication, replayed, unknown sender).
    pub data: DataStats,
    /// Mesh connections refused or closed to protect the router.
    pub conns: ConnStats,
    /// Per gossip channel implemented by a local service: events dropped because the
    /// service's queue was full.
    pub channel_events_dropped: Vec<(String, u64)>,
}

/// Mesh connections refused or closed to protect the router.
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    /// Inbound connections handshaking now.
    pub handshaking: usize,
    /// Inbound connections closed at accept, by cap (`handshake_cap`, `handshake_cap_per_source`).
    pub refused: Vec<(&'static str, u64)>,
    /// Connections closed because the peer did not read: its queue overflowed.
    pub not_reading: u64,
    /// Connections closed because a write made no progress for the write deadline.
    pub write_timeouts: u64,
}

/// A handle the API and the services use to reach the actor (the services' methods are in
/// [`services`]).
#[derive(Clone)]
pub struct MeshHandle {
    tx: mpsc::Sender<Input>,
}

impl std::fmt::Debug for MeshHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshHandle").finish_non_exhaustive()
    }
}

impl MeshHandle {
    pub async fn request(&self, req: ApiRequest) -> bool {
        self.tx.send(Input::Api(req)).await.is_ok()
    }
}

enum Input {
    Accepted(TcpStream, SocketAddr, Permit),
    Dialed {
        address: String,
        must_be_known: bool,
        result: io::Result<TcpStream>,
    },
    Handshake {
        conn: ConnId,
        remote: Box<RemotePeer>,
    },
    Message {
        conn: ConnId,
        msg: Message,
    },
    Closed {
        conn: ConnId,
        error: Option<ConnectionError>,
        io_error: Option<String>,
        /// A write made no progress for the write deadline.
        write_stalled: bool,
    },
    Api(ApiRequest),
    /// A service's command for the mesh (see [`services`]).
    Service(ServiceCommand),
}

/// Big frame buffers reused for captured frames, so capturing a 64 KiB frame neither
/// allocates nor faults in fresh pages.
#[derive(Default)]
struct BufferPool(Vec<Vec<u8>>);

/// Buffers kept in the pool.
const POOL_BUFFERS: usize = 64;
/// Frames up to this size are copied into a buffer of their own size; bigger ones keep the
/// 64 KiB buffer they were read into.
const SMALL_FRAME: usize = 2048;
const FRAME_BUFFER: usize = 65536;

impl BufferPool {
    fn take(&mut self) -> Vec<u8> {
        self.0
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FRAME_BUFFER))
    }

    fn give(&mut self, mut b: Vec<u8>) {
        if b.capacity() >= FRAME_BUFFER && self.0.len() < POOL_BUFFERS {
            b.clear();
            self.0.push(b);
        }
    }
}

/// Read one frame from the (non-blocking) capture device into `buf`'s spare capacity.
fn read_frame(tap: &std::fs::File, buf: &mut Vec<u8>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    buf.clear();
    // SAFETY: read(2) writes at most `capacity` bytes into the vector's spare capacity; the
    // length is set to what it wrote.
    let n = unsafe { libc::read(tap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.capacity()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the first `n` bytes were written by read(2).
    unsafe { buf.set_len(n as usize) };
    Ok(n as usize)
}

/// A connection the actor knows about.
struct Peer {
    cmd: mpsc::Sender<Message>,
    /// Taken when the close is sent.
    close: Option<oneshot::Sender<String>>,
    outbound: bool,
    remote_addr: SocketAddr,
    /// Our end of the TCP connection (the DF socket sends from this address, as Weave's does).
    local_addr: Option<SocketAddr>,
    target: Option<String>,
    must_be_known: bool,
    /// Accepted by the mesh.
    ready: bool,
    /// Index of the sleeve among the overlays both ends offered; `None`: compat mode.
    sleeve_index: Option<u8>,
    remote_name: Option<PeerName>,
    /// Id of our first segmented datagram on this connection (announced in the handshake).
    segment_first_id: u64,
}

impl Peer {
    /// Tell the connection task to close (once).
    fn shut(&mut self, why: String) {
        if let Some(c) = self.close.take() {
            let _ = c.send(why);
        }
    }
}

/// Bind the mesh sockets. Fails early with a clear error if the port is taken.
pub async fn bind(settings: &MeshSettings) -> io::Result<(TcpListener, UdpSocket)> {
    let addr = SocketAddr::new(settings.host, settings.port);
    let tcp = TcpListener::bind(addr).await?;
    let udp = UdpSocket::bind(addr).await?;
    if !sleeve_io::configure_shared(&udp) {
        debug!("UDP GRO is not available: segmented datagrams arrive one by one");
    }
    // Sleeve datagrams are up to 64 KiB: with the default buffers a burst overflows them and
    // the inner TCP sees losses. Weave's capture buffer is 8 MB; use that for the socket.
    use nix::sys::socket::{setsockopt, sockopt};
    if let Err(e) = setsockopt(&udp, sockopt::RcvBufForce, &SOCKET_BUFFER) {
        warn!("cannot enlarge the sleeve socket's receive buffer: {e}");
    }
    if let Err(e) = setsockopt(&udp, sockopt::SndBufForce, &SOCKET_BUFFER) {
        warn!("cannot enlarge the sleeve socket's send buffer: {e}");
    }
    Ok((tcp, udp))
}

/// Receive and send buffer of the sleeve socket.
const SOCKET_BUFFER: usize = 8 << 20;

/// Most MACs the switch learns (Weave's cache is unbounded).
const MAX_MACS: usize = 65_536;
/// How often learned MACs are swept for expiry (Weave: every minute).
const MAC_SWEEP: Duration = Duration::from_secs(60);
/// How often connection attributes are copied into the status.
const ATTRS_REFRESH: Duration = Duration::from_secs(1);
/// Inputs or datagrams handled per wake-up before timers and bookkeeping run.
const BATCH: usize = 63;

/// Start the mesh: the listener and the actor, with the TAP as the data plane's capture
/// device, and the gossip channels of the `services` registered so far. Returns the API
/// handle.
pub fn start(
    settings: MeshSettings,
    tcp: TcpListener,
    udp: UdpSocket,
    tap: weft_kernel::Tap,
    services: Services,
) -> io::Result<MeshHandle> {
    let Services { tx, rx, router } = services;
    let tap = std::fs::File::from(tap.into_fd());
    // Frames from the bridge are read by the actor itself when the TAP is readable: no
    // hand-off between threads per frame.
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&tap),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    // SAFETY: the `File` owns the descriptor and keeps it open for the `AsyncFd`'s lifetime.
    let tap = unsafe { AsyncFd::register_with_interest(tap, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let accept_tx = tx.clone();
    let gate = HandshakeGate::default();
    tokio::spawn(accept_loop(tcp, accept_tx, gate.clone()));
    let now = Instant::now();
    let uid = loop {
        let u: u64 = rand::random();
        if u != 0 {
            break u;
        }
    };
    let mesh = Mesh::new(
        MeshConfig {
            name: settings.name,
            nickname: settings.nickname.clone(),
            uid,
            port: settings.port,
            discovery: settings.discovery,
            conn_limit: settings.conn_limit,
            timings: MeshTimings::default(),
            limits: MeshLimits::default(),
            seed: rand::random(),
            channels: router.names(),
        },
        now,
    );
    let settings_name = settings.name;
    let actor = Actor {
        settings: Arc::new(settings),
        uid,
        mesh,
        udp,
        tx: tx.clone(),
        peers: BTreeMap::new(),
        links: BTreeMap::new(),
        link_by_name: BTreeMap::new(),
        next_conn: 1,
        switch: Switch::new(settings_name, MacCache::new(MAX_MACS)),
        tap,
        actions: Vec::new(),
        next_sweep: now + MAC_SWEEP,
        next_attrs: now + ATTRS_REFRESH,
        stats: DataStats::default(),
        out_buf: Vec::with_capacity(65536),
        pending_sends: BTreeMap::new(),
        link_io: BTreeMap::new(),
        pool: BufferPool::default(),
        captured: Vec::new(),
        reassembler: Reassembler::new(),
        segment_keys: Box::default(),
        gate,
        conn_stats: ConnStats::default(),
        channels: router,
    };
    tokio::spawn(actor.run(rx));
    Ok(MeshHandle { tx })
}

/// Data-plane counters.
#[derive(Debug, Clone, Default)]
pub struct DataStats {
    pub captured: u64,
    pub injected: u64,
    pub sent_frames: u64,
    pub received_frames: u64,
    /// Frames and sleeve packets dropped, by reason (a Prometheus label value).
    pub drops: BTreeMap<&'static str, u64>,
    /// ICMP "fragmentation needed" replies made for too-big DF frames to Weave peers.
    pub frag_needed: u64,
    /// Sleeve datagrams sent cut into segments (to weft peers), and received put back together.
    pub segmented_sent: u64,
    pub reassembled: u64,
    /// Per connected peer: frames and bytes sent to it and received from it over the sleeve.
    pub per_peer: BTreeMap<PeerName, PeerTraffic>,
}

impl DataStats {
    fn drop(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.drops.entry(reason).or_default() += n;
        }
    }

    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// The metrics label for a switch's drop reason.
fn switch_drop_label(r: &weft_switch::DropReason) -> &'static str {
    use weft_switch::DropReason as R;
    match r {
        R::Malformed(_) => "frame_malformed",
        R::MacOwnedElsewhere { .. } => "mac_owned_elsewhere",
        R::Stp => "stp",
        R::LocalDestination => "local_destination",
        R::NoRoute(_) => "no_route",
        R::NoBroadcastHops => "no_broadcast_hops",
        R::UnknownSrcPeer(_) | R::UnknownDstPeer(_) => "unknown_peer",
    }
}

/// The metrics label for a sleeve packet the link refused.
fn link_drop_label(r: &weft_sleeve::link::DropReason) -> &'static str {
    use weft_sleeve::link::DropReason as R;
    match r {
        R::Malformed(_) => "sleeve_malformed",
        R::Decrypt => "decrypt_failed",
        R::Replay => "replayed",
        R::WrongConnection => "wrong_connection",
    }
}

/// Sleeve traffic with one peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerTraffic {
    pub sent_frames: u64,
    pub sent_bytes: u64,
    pub received_frames: u64,
    pub received_bytes: u64,
}

struct Actor {
    settings: Arc<MeshSettings>,
    uid: u64,
    mesh: Mesh,
    udp: UdpSocket,
    tx: mpsc::Sender<Input>,
    peers: BTreeMap<ConnId, Peer>,
    links: BTreeMap<ConnId, HeartbeatLink>,
    link_by_name: BTreeMap<PeerName, ConnId>,
    next_conn: ConnId,
    switch: Switch,
    tap: AsyncFd<std::fs::File>,
    actions: Vec<Action>,
    next_sweep: Instant,
    next_attrs: Instant,
    stats: DataStats,
    /// Reused for every datagram the data plane sends.
    out_buf: Vec<u8>,
    /// Frames waiting to be packed into datagrams, per next hop.
    pending_sends: BTreeMap<PeerName, Vec<Pending>>,
    /// Per link: its DF socket and how to send its datagrams.
    link_io: BTreeMap<ConnId, LinkIo>,
    /// Buffers for captured frames.
    pool: BufferPool,
    /// Frames read from the capture device in one wake-up.
    captured: Vec<Vec<u8>>,
    /// Segmented datagrams from weft peers being put back together, per link.
    reassembler: Reassembler<ConnId>,
    /// One-time MAC keys of the segmented datagram being sent (reused).
    segment_keys: Box<MessageKeys>,
    /// Caps on inbound connections in the handshake (shared with the accept loop).
    gate: HandshakeGate,
    conn_stats: ConnStats,
    /// The queues of the services implementing gossip channels.
    channels: ChannelRouter,
}

/// A frame queued for a next hop.
struct Pending {
    src: PeerName,
    dst: PeerName,
    frame: Vec<u8>,
    broadcast: bool,
}

/// The edge's side of one link.
struct LinkIo {
    /// Both ends speak weft's segmented datagrams: frames go in big datagrams cut to the path
    /// MTU (no Weave MTU logic, no DF path for data).
    segments: bool,
    /// Weave's DF path to the peer (opened at the first DF send).
    df: Option<DfSocket>,
    /// The DF socket to this address could not be opened (logged); DF datagrams use the
    /// shared socket until the peer's address changes.
    df_failed_for: Option<SocketAddrV4>,
    /// The kernel's path MTU to the peer (refreshed every second; 1500 until known).
    kernel_pmtu: usize,
    /// UDP GSO works on this path.
    gso: bool,
    /// The kernel refused GSO sends of this segment size (larger than the route takes).
    gso_refused_at: Option<usize>,
    /// Id of the next segmented datagram (sequential from the one announced).
    next_msg_id: u64,
    /// Tags our segments on an encrypted link.
    segment_key: Option<SegmentKey>,
}

impl LinkIo {
    fn new() -> LinkIo {
        LinkIo {
            segments: false,
            df: None,
            df_failed_for: None,
            kernel_pmtu: DEFAULT_PMTU,
            gso: true,
            gso_refused_at: None,
            next_msg_id: 0,
            segment_key: None,
        }
    }
}

/// The path MTU assumed until the kernel tells the DF socket's: a 1500-byte underlay.
const DEFAULT_PMTU: usize = 1500;

/// Segment size (UDP payload) for a segmented datagram on a link: the path MTU − 28, where the
/// path MTU is the kernel's, lowered to what the link's PMTU search has verified so far (a
/// path that drops big packets silently is then still used while the search runs).
fn segment_size(link: &HeartbeatLink, io: &LinkIo) -> usize {
    let searched = link
        .known_good_mtu()
        .map_or(usize::MAX, |m| usize::from(m) + link.overhead_df());
    io.kernel_pmtu
        .min(searched)
        .saturating_sub(weft_sleeve::packet::UDP_IP_OVERHEAD)
        .max(segment::MIN_SEGMENT)
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let now = Instant::now();
        if !self.settings.peers.is_empty() {
            let peers = self.settings.peers.clone();
            if let Err(errs) = self.mesh.connect(now, &peers, false) {
                for e in errs {
                    warn!("{e}");
                }
            }
        }
        self.mesh.handle_timeout(now);
        let mut buf = vec![0u8; 65536];
        loop {
            self.drain().await;
            let wake = self
                .links
                .values()
                .filter_map(HeartbeatLink::poll_timeout)
                .chain(self.mesh.poll_timeout())
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            // Under load, handle a bounded batch of whatever is ready before the bookkeeping.
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => {
                        self.handle(input).await;
                        for _ in 0..BATCH {
                            match rx.try_recv() {
                                Ok(input) => self.handle(input).await,
                                Err(_) => break,
                            }
                        }
                    }
                    None => return,
                },
                r = self.tap.readable() => match r {
                    Ok(mut guard) => {
                        let mut tap_error = None;
                        let mut batch = std::mem::take(&mut self.captured);
                        for _ in 0..=BATCH {
                            let mut frame = self.pool.take();
                            match guard.try_io(|tap| read_frame(tap.get_ref(), &mut frame)) {
                                Err(_would_block) => {
                                    // Nothing more to read now (readiness cleared).
                                    self.pool.give(frame);
                                    break;
                                }
                                Ok(Ok(0)) => {
                                    self.pool.give(frame);
                                    guard.clear_ready();
                                    break;
                                }
                                Ok(Ok(n)) if n <= SMALL_FRAME => {
                                    batch.push(frame.clone());
                                    self.pool.give(frame);
                                }
                                Ok(Ok(_)) => batch.push(frame),
                                Ok(Err(e)) => {
                                    self.pool.give(frame);
                                    if e.kind() != io::ErrorKind::Interrupted {
                                        // Wait for the next readiness, and not at once: a
                                        // broken device must not spin the actor.
                                        guard.clear_ready();
                                        tap_error = Some(e);
                                        break;
                                    }
                                }
                            }
                        }
                        drop(guard);
                        if let Some(e) = tap_error.take() {
                            warn!("capture device: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        for frame in batch.drain(..) {
                            self.handle_captured(frame).await;
                        }
                        self.captured = batch;
                    }
                    Err(e) => warn!("capture device: {e}"),
                },
                r = self.udp.readable() => match r {
                    Ok(()) => {
                        for _ in 0..=BATCH {
                            match sleeve_io::try_recv(&self.udp, &mut buf) {
                                Ok((n, from, seg)) => {
                                    self.handle_received(from, &mut buf[..n], seg).await
                                }
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                                    self.stats.drop("truncated", 1);
                                }
                                Err(e) => {
                                    debug!("sleeve socket: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => debug!("sleeve socket: {e}"),
                },
                _ = sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
            self.flush_sends().await;
            let now = Instant::now();
            for link in self.links.values_mut() {
                if link.poll_timeout().is_some_and(|t| t <= now) {
                    link.handle_timeout(now);
                }
            }
            if self.mesh.poll_timeout().is_some_and(|t| t <= now) {
                self.mesh.handle_timeout(now);
            }
            if now >= self.next_sweep {
                self.next_sweep = now + MAC_SWEEP;
                self.switch.sweep(now);
            }
            if now >= self.next_attrs {
                self.next_attrs = now + ATTRS_REFRESH;
                self.refresh_attrs();
            }
        }
    }

    /// Copy the links' attributes (e.g. the verified MTU) into the mesh's status.
    fn refresh_attrs(&mut self) {
        for io in self.link_io.values_mut() {
            if let Some(k) = io.df.as_ref().and_then(|d| d.path_mtu().ok()) {
                io.kernel_pmtu = usize::from(k);
            }
        }
        for (conn, link) in &self.links {
            if link.is_established() {
                let attrs = link
                    .attrs()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                self.mesh.set_connection_attrs(*conn, attrs);
            }
        }
    }

    /// A frame from the local bridge: where does it go?
    async fn handle_captured(&mut self, frame: Vec<u8>) {
        let now = Instant::now();
        self.stats.captured += 1;
        let (peers, routes) = self.mesh.route_view();
        let view = MeshRoutes { peers, routes };
        let mut actions = std::mem::take(&mut self.actions);
        self.switch
            .handle_captured(now, &view, &frame, &mut actions);
        self.carry_out(&actions, frame);
        self.actions = actions;
    }

    /// Do what the switch decided for `frame`. The frame moves into the last send that needs
    /// it; only floods copy it.
    fn carry_out(&mut self, actions: &[Action], frame: Vec<u8>) {
        let sends = actions
            .iter()
            .filter(|a| matches!(a, Action::Send { .. }))
            .count();
        // Injections first: the frame may move into a send afterwards.
        if actions.iter().any(|a| matches!(a, Action::Inject)) {
            self.inject(&frame);
        }
        let mut frame = Some(frame);
        let mut seen = 0;
        for action in actions {
            match *action {
                Action::Inject => {}
                Action::Send {
                    next_hop,
                    src_peer,
                    dst_peer,
                    broadcast,
                } => {
                    seen += 1;
                    let data = if seen == sends {
                        frame.take()
                    } else {
                        frame.clone()
                    };
                    if let Some(frame) = data {
                        self.pending_sends
                            .entry(next_hop)
                            .or_default()
                            .push(Pending {
                                src: src_peer,
                                dst: dst_peer,
                                frame,
                                broadcast,
                            });
                    }
                }
                Action::Drop(reason) => {
                    self.stats.drop(switch_drop_label(&reason), 1);
                    debug!("frame dropped: {reason}");
                }
            }
        }
    }

    /// [`carry_out`](Self::carry_out) for actions without sends.
    fn carry_out_local(&mut self, actions: &[Action], frame: &[u8]) {
        for action in actions {
            match action {
                Action::Inject => self.inject(frame),
                Action::Send { .. } => {}
                Action::Drop(reason) => {
                    self.stats.drop(switch_drop_label(reason), 1);
                    debug!("frame dropped: {reason}");
                }
            }
        }
    }

    fn inject(&mut self, frame: &[u8]) {
        use std::io::Write;
        // A TAP takes a whole frame per write or none of it.
        match self.tap.get_ref().write(frame) {
            Ok(n) if n == frame.len() => self.stats.injected += 1,
            Ok(_) => self.stats.drop("inject_failed", 1),
            Err(e) => {
                self.stats.drop("inject_failed", 1);
                debug!("injecting a frame: {e}");
            }
        }
    }

    /// Send the queued frames: per next hop, as many frames per datagram as fit (at most 100,
    /// as Weave packs them), each datagram sealed by that link. To a weft peer every frame
    /// goes in the non-DF stream and big datagrams are segmented; to a Weave peer each frame
    /// follows Weave's plan for the link's MTU (DF path, non-DF path, router fragments, or an
    /// ICMP "fragmentation needed" fed back into the switch).
    async fn flush_sends(&mut self) {
        // ICMP replies may queue more sends; one more round carries them.
        for _ in 0..2 {
            let pending = std::mem::take(&mut self.pending_sends);
            if pending.is_empty() {
                return;
            }
            let mut replies = Vec::new();
            for (next_hop, frames) in pending {
                self.flush_hop(next_hop, frames, &mut replies).await;
            }
            let now = Instant::now();
            for (src, dst, icmp) in replies {
                let (peers, routes) = self.mesh.route_view();
                let view = MeshRoutes { peers, routes };
                let mut actions = std::mem::take(&mut self.actions);
                self.switch
                    .handle_overlay(now, &view, src, dst, &icmp, &mut actions);
                self.carry_out(&actions, icmp);
                self.actions = actions;
            }
        }
    }

    async fn flush_hop(
        &mut self,
        next_hop: PeerName,
        frames: Vec<Pending>,
        replies: &mut Vec<(PeerName, PeerName, Vec<u8>)>,
    ) {
        let Some((conn, link)) = self
            .link_by_name
            .get(&next_hop)
            .and_then(|c| self.links.get(c).map(|l| (*c, l)))
        else {
            self.stats.drop("no_connection", frames.len() as u64);
            return;
        };
        if link.remote_addr().is_none() {
            self.stats.drop("awaiting_contact", frames.len() as u64);
            return;
        }
        fn out_frame(p: &Pending) -> OutFrame<'_> {
            OutFrame {
                src: p.src,
                dst: p.dst,
                data: &p.frame,
            }
        }
        if self.link_io.get(&conn).is_some_and(|io| io.segments) {
            let all: Vec<OutFrame<'_>> = frames.iter().map(out_frame).collect();
            self.send_batch(conn, next_hop, false, &all).await;
            drop(all);
            self.recycle(frames);
            return;
        }
        let (mtu, stack_frag) = (link.current_mtu(), link.stack_frag());
        let mut df = Vec::new();
        let mut non_df = Vec::new();
        let mut pieces: Vec<(PeerName, PeerName, Vec<u8>)> = Vec::new();
        let mut scratch = Vec::new();
        for p in &frames {
            match plan_send(&p.frame, mtu, stack_frag, p.broadcast) {
                SendPlan::Df => df.push(out_frame(p)),
                SendPlan::NonDf => non_df.push(out_frame(p)),
                SendPlan::Fragment => {
                    scratch.resize(usize::from(mtu) + 80, 0);
                    let r = fragment(&p.frame, mtu, &mut scratch, |piece| {
                        pieces.push((p.src, p.dst, piece.to_vec()))
                    });
                    if let Err(e) = r {
                        self.stats.drop("fragment_failed", 1);
                        debug!("cannot fragment a frame for {next_hop}: {e}");
                    }
                }
                SendPlan::FragNeeded => {
                    self.stats.frag_needed += 1;
                    let mut icmp = vec![0u8; ICMP_FRAG_NEEDED_MAX];
                    match icmp_frag_needed(&p.frame, mtu, &mut icmp) {
                        Ok(n) => {
                            icmp.truncate(n);
                            // As if the destination peer had answered the source peer.
                            replies.push((p.dst, p.src, icmp));
                        }
                        Err(e) => {
                            self.stats.drop("too_big_unanswered", 1);
                            debug!("cannot answer a too-big frame: {e}");
                        }
                    }
                }
                SendPlan::DropTooBigBroadcast => self.stats.drop("too_big_broadcast", 1),
            }
        }
        df.extend(pieces.iter().map(|(src, dst, data)| OutFrame {
            src: *src,
            dst: *dst,
            data,
        }));
        self.send_batch(conn, next_hop, true, &df).await;
        self.send_batch(conn, next_hop, false, &non_df).await;
        drop((df, non_df));
        self.recycle(frames);
    }

    fn recycle(&mut self, frames: Vec<Pending>) {
        for p in frames {
            self.pool.give(p.frame);
        }
    }

    /// Pack `frames` into datagrams for link `conn` and send them (DF path if `df`).
    async fn send_batch(
        &mut self,
        conn: ConnId,
        next_hop: PeerName,
        df: bool,
        frames: &[OutFrame<'_>],
    ) {
        let mut out = std::mem::take(&mut self.out_buf);
        let mut rest = frames;
        while !rest.is_empty() {
            let Some(link) = self.links.get_mut(&conn) else {
                self.stats.drop("no_connection", rest.len() as u64);
                break;
            };
            let Some(to) = link.remote_addr() else {
                self.stats.drop("awaiting_contact", rest.len() as u64);
                break;
            };
            let packed = match link.encode_frames(df, rest, &mut out) {
                Ok(p) if p.consumed > 0 => p,
                Ok(_) | Err(_) => {
                    self.stats.drop("encode_failed", rest.len() as u64);
                    break;
                }
            };
            self.stats.drop("too_big", packed.dropped as u64);
            if packed.packed > 0 {
                let bytes: usize = rest[..packed.consumed].iter().map(|f| f.data.len()).sum();
                let sent = if df {
                    self.send_df(conn, &out)
                } else {
                    self.send_shared(conn, to, &out).await
                };
                if sent {
                    self.stats.sent_frames += packed.packed as u64;
                    let t = self.stats.per_peer.entry(next_hop).or_default();
                    t.sent_frames += packed.packed as u64;
                    t.sent_bytes += bytes as u64;
                } else {
                    self.stats.drop("send_failed", packed.packed as u64);
                }
            }
            rest = &rest[packed.consumed..];
        }
        self.out_buf = out;
    }

    /// Send a datagram on the shared socket; segmented when the link takes segments and it
    /// is bigger than a segment.
    async fn send_shared(&mut self, conn: ConnId, to: SocketAddr, data: &[u8]) -> bool {
        let plan = self
            .link_io
            .get(&conn)
            .zip(self.links.get(&conn))
            .map(|(io, link)| (io, segment_size(link, io)))
            .filter(|(io, seg)| io.segments && data.len() > *seg)
            .and_then(|(io, seg)| {
                let gso = io.gso && io.gso_refused_at != Some(seg);
                Plan::new(data.len(), seg, io.segment_key.is_some()).map(|p| (p, seg, gso))
            });
        let Some((plan, seg, gso)) = plan else {
            return match sleeve_io::send_to(&self.udp, data, to).await {
                Ok(()) => true,
                Err(e) => {
                    debug!("sleeve send to {to}: {e}");
                    false
                }
            };
        };
        let src = self.local_ipv4(conn);
        let Some(io) = self.link_io.get_mut(&conn) else {
            return false;
        };
        let id = io.next_msg_id;
        io.next_msg_id = id.wrapping_add(1);
        let keys = match &io.segment_key {
            Some(k) => {
                plan.message_keys(k, id, &mut self.segment_keys);
                Some(&*self.segment_keys)
            }
            None => None,
        };
        let msg = sleeve_io::Message { data, id, keys };
        let mut r = sleeve_io::send_segments(&self.udp, to, src, &msg, &plan, gso, 0).await;
        if let Err(e) = &r {
            let retry = match e.error.raw_os_error() {
                Some(libc::EIO | libc::ENOPROTOOPT) if gso => {
                    // No UDP GSO here: one datagram per segment from now on.
                    warn!(
                        "UDP GSO to {to} failed ({}); sending segments one by one",
                        e.error
                    );
                    if let Some(io) = self.link_io.get_mut(&conn) {
                        io.gso = false;
                    }
                    true
                }
                // Segments larger than the route takes (its MTU shrank): no GSO at this
                // segment size; the size follows the kernel's path MTU within a second.
                Some(libc::EINVAL) if gso => {
                    warn!(
                        "UDP GSO of {seg}-byte segments to {to} refused; sending them one by one"
                    );
                    if let Some(io) = self.link_io.get_mut(&conn) {
                        io.gso_refused_at = Some(seg);
                    }
                    true
                }
                _ => false,
            };
            if retry {
                // Resume where the failed send stopped: no segment goes twice.
                let sent = e.sent;
                r = sleeve_io::send_segments(&self.udp, to, src, &msg, &plan, false, sent).await;
            }
        }
        match r {
            Ok(()) => {
                self.stats.segmented_sent += 1;
                true
            }
            Err(e) => {
                debug!("sleeve send to {to}: {}", e.error);
                false
            }
        }
    }

    /// Our address on the TCP connection `conn`, when it is a specific IPv4 address.
    fn local_ipv4(&self, conn: ConnId) -> Option<Ipv4Addr> {
        self.peers
            .get(&conn)
            .and_then(|p| p.local_addr)
            .and_then(|a| match a.ip() {
                IpAddr::V4(v) if !v.is_unspecified() => Some(v),
                _ => None,
            })
    }

    /// Send a datagram on link `conn`'s DF path. `EMSGSIZE` tells the link the path MTU
    /// (Weave's PMTU discovery). Without a DF socket, the shared socket carries it.
    fn send_df(&mut self, conn: ConnId, data: &[u8]) -> bool {
        let now = Instant::now();
        let Some(link) = self.links.get_mut(&conn) else {
            return false;
        };
        let Some(SocketAddr::V4(to)) = link.remote_addr() else {
            return false;
        };
        let local = self
            .peers
            .get(&conn)
            .and_then(|p| p.local_addr)
            .and_then(|a| match a.ip() {
                IpAddr::V4(v) if !v.is_unspecified() => Some(v),
                _ => None,
            });
        let io = self.link_io.entry(conn).or_insert_with(LinkIo::new);
        if io.df.as_ref().map(DfSocket::remote) != Some(to) && io.df_failed_for != Some(to) {
            io.df = None;
            match DfSocket::open(local, to, self.settings.port) {
                Ok(d) => {
                    io.df = Some(d);
                    io.df_failed_for = None;
                }
                Err(e) => {
                    warn!("cannot open the DF socket to {to} ({e}); PMTU discovery is off for it");
                    io.df_failed_for = Some(to);
                }
            }
        }
        match &io.df {
            None => match self.udp.try_send_to(data, SocketAddr::V4(to)) {
                Ok(_) => true,
                Err(e) => {
                    debug!("sleeve send to {to}: {e}");
                    false
                }
            },
            Some(d) => match d.send(data) {
                Ok(()) => true,
                Err(DfError::TooBig(pmtu)) => {
                    debug!(
                        "DF datagram of {} bytes to {to} too big: path MTU {pmtu}",
                        data.len()
                    );
                    link.handle_emsgsize(now, pmtu);
                    false
                }
                Err(DfError::Io(e)) => {
                    debug!("DF send to {to}: {e}");
                    false
                }
            },
        }
    }

    /// What one receive brought: one datagram, or several of `seg` bytes each (GRO), each a
    /// Weave sleeve datagram or one segment of a weft segmented datagram.
    async fn handle_received(&mut self, from: SocketAddr, data: &mut [u8], seg: usize) {
        // Segments are taken only for a link with segments, from its peer's address: memory
        // is bounded by the links, not by whoever sends (see `weft_sleeve::segment`).
        let mut sender = None;
        // Out of `self` for this receive, as completed datagrams borrow from it while the
        // actor handles them (nothing handling a datagram touches the reassembler).
        let mut reassembler = std::mem::take(&mut self.reassembler);
        let abandoned = reassembler.stats.abandoned;
        let now = Instant::now();
        reassembler.expire(now);
        for d in data.chunks_mut(seg) {
            if !segment::is_segment(d) {
                self.handle_datagram(from, d).await;
                continue;
            }
            let Some(conn) = *sender.get_or_insert_with(|| {
                self.links
                    .iter()
                    .find(|(_, l)| l.remote_addr() == Some(from))
                    .map(|(c, _)| *c)
            }) else {
                self.stats.drop("unknown_sender", 1);
                continue;
            };
            match reassembler.push(conn, d, now) {
                Ok(Pushed::Complete(msg)) => {
                    self.stats.reassembled += 1;
                    self.handle_datagram(from, msg).await
                }
                Ok(Pushed::Pending) => {}
                Ok(Pushed::Duplicate) => self.stats.drop("segment_duplicate", 1),
                Err(e) => {
                    self.stats.drop(e.reason(), 1);
                    debug!("segment from {from} dropped: {e}");
                }
            }
        }
        // Datagrams one of whose segments never came.
        self.stats
            .drop("segments_lost", reassembler.stats.abandoned - abandoned);
        self.reassembler = reassembler;
    }

    async fn handle(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Accepted(stream, addr, permit) => {
                debug!("accepted mesh connection from {addr}");
                self.spawn_conn(stream, addr, false, None, false, Some(permit));
            }
            Input::Dialed {
                address,
                must_be_known,
                result,
            } => match result.and_then(|s| s.peer_addr().map(|a| (s, a))) {
                Ok((stream, addr)) => {
                    self.spawn_conn(stream, addr, true, Some(address), must_be_known, None)
                }
                Err(e) => {
                    debug!("dial {address}: {e}");
                    self.mesh.dial_failed(
                        now,
                        &address,
                        format!("dial tcp4 {address}: {e}"),
                        false,
                    );
                }
            },
            Input::Handshake { conn, remote } => self.handshake(now, conn, *remote),
            Input::Message { conn, msg } => self.message(now, conn, msg),
            Input::Closed {
                conn,
                error,
                io_error,
                write_stalled,
            } => self.closed(now, conn, error, io_error, write_stalled),
            Input::Api(req) => self.api(now, req),
            Input::Service(cmd) => services::apply(&mut self.mesh, cmd),
        }
    }

    fn spawn_conn(
        &mut self,
        stream: TcpStream,
        remote_addr: SocketAddr,
        outbound: bool,
        target: Option<String>,
        must_be_known: bool,
        permit: Option<Permit>,
    ) {
        let id = self.next_conn;
        self.next_conn += 1;
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().ok();
        let local = LocalIdentity {
            name: self.settings.name,
            uid: self.uid,
            conn_id: rand::random(),
        };
        let trusted = self
            .settings
            .trusted_subnets
            .iter()
            .any(|s| s.contains(remote_addr.ip()));
        let short_id = self.mesh.peers().local().raw_short_id().0;
        let features = Features::standard(
            &local,
            &self.settings.nickname,
            short_id,
            trusted,
            Some(SLEEVE),
        );
        let mut features = features;
        // Random: a spoofer who cannot see the traffic cannot guess our segment ids.
        let segment_first_id: u64 = rand::random();
        if self.settings.extensions {
            features.insert(
                HEARTBEAT_FEATURE,
                HEARTBEAT_INTERVAL.as_millis().to_string(),
            );
            features.insert(SEGMENTS_FEATURE, segment::feature_value(segment_first_id));
        }
        let mut cfg = WireConfig::new(local, features);
        // A reference to the one copy, not a copy.
        cfg.password = self.settings.password.clone();
        let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE);
        let (close_tx, close_rx) = oneshot::channel();
        self.peers.insert(
            id,
            Peer {
                cmd: cmd_tx,
                close: Some(close_tx),
                outbound,
                remote_addr,
                local_addr,
                target,
                must_be_known,
                ready: false,
                sleeve_index: None,
                remote_name: None,
                segment_first_id,
            },
        );
        let (rd, wr) = stream.into_split();
        tokio::spawn(conn_task(
            id,
            (rd, wr),
            outbound,
            cfg,
            self.tx.clone(),
            ConnCtl {
                cmds: cmd_rx,
                close: close_rx,
                permit,
                write_timeout: WRITE_TIMEOUT,
            },
        ));
    }

    fn handshake(&mut self, now: Instant, conn: ConnId, remote: RemotePeer) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.remote_name = Some(remote.name);
        // The overlay: the sleeve, at its index among the overlays both ends offer.
        let sleeve_index = match &remote.overlays {
            None => None,
            Some(theirs) => {
                let common: Vec<&str> = [SLEEVE]
                    .into_iter()
                    .filter(|o| theirs.iter().any(|t| t == o))
                    .collect();
                match common.iter().position(|o| *o == SLEEVE) {
                    Some(i) => Some(i as u8),
                    None => {
                        let why = format!(
                            "no overlay in common with {} (it offers {})",
                            remote.name,
                            theirs.join(" ")
                        );
                        peer.shut(why);
                        return;
                    }
                }
            }
        };
        peer.sleeve_index = sleeve_index;
        let trust_remote = self
            .settings
            .trusted_subnets
            .iter()
            .any(|s| s.contains(peer.remote_addr.ip()));
        // The data path is encrypted unless both ends trust each other.
        let overlay_key = remote
            .session_key
            .clone()
            .filter(|_| !trust_remote || !remote.trusted_by_remote);
        let hello = Hello {
            name: remote.name,
            nickname: remote.nick_name.clone(),
            uid: remote.uid,
            short_id: remote.short_id,
            conn_uid: remote.conn_uid,
            outbound: peer.outbound,
            remote_addr: peer.remote_addr,
            target: peer.target.clone(),
            must_be_known: peer.must_be_known,
            overlay: Some(SLEEVE.to_owned()),
            encrypted: self
                .settings
                .password
                .as_ref()
                .map(|_| overlay_key.is_some()),
        };
        match self.mesh.connection_ready(now, conn, hello) {
            Ok(()) => {
                peer.ready = true;
                let remote_udp = peer
                    .outbound
                    .then(|| SocketAddr::new(peer.remote_addr.ip(), peer.remote_addr.port()));
                // Segments: both ends offer this version; the peer's first id starts the
                // window its segments are taken in, tagged under the session key if any.
                let peer_first_id = remote
                    .features
                    .get(SEGMENTS_FEATURE)
                    .and_then(segment::parse_feature)
                    .filter(|_| self.settings.extensions);
                let side = weft_crypto::Side::from_outbound(peer.outbound);
                let segment_key = overlay_key
                    .as_ref()
                    .filter(|_| peer_first_id.is_some())
                    .map(|k| SegmentKey::new(k, side));
                let segment_first_id = peer.segment_first_id;
                if let Some(first) = peer_first_id {
                    let key = overlay_key
                        .as_ref()
                        .map(|k| SegmentKey::new(k, side.peer()));
                    self.reassembler.add_sender(conn, first, key, now);
                }
                let link = HeartbeatLink::new(
                    LinkConfig {
                        local: self.settings.name,
                        remote: remote.name,
                        conn_uid: remote.conn_uid,
                        outbound: peer.outbound,
                        remote_addr: remote_udp,
                        session_key: overlay_key,
                        heartbeat_interval: if self.settings.extensions {
                            HEARTBEAT_INTERVAL
                        } else {
                            weft_sleeve::link::SLOW_HEARTBEAT
                        },
                        heartbeat_timeout: if self.settings.extensions {
                            heartbeat_timeout(&remote)
                        } else {
                            weft_sleeve::link::HEARTBEAT_TIMEOUT
                        },
                    },
                    now,
                );
                self.links.insert(conn, link);
                self.link_by_name.insert(remote.name, conn);
                self.link_io.insert(
                    conn,
                    LinkIo {
                        segments: peer_first_id.is_some(),
                        next_msg_id: segment_first_id,
                        segment_key,
                        ..LinkIo::new()
                    },
                );
            }
            Err(refusal) => {
                info!(
                    "refusing connection {} {}: {refusal}",
                    if peer.outbound { "to" } else { "from" },
                    peer.remote_addr
                );
                peer.shut(refusal.to_string());
                if let Some(t) = peer.target.clone() {
                    self.mesh
                        .dial_failed(now, &t, refusal.to_string(), refusal.is_permanent());
                }
                // The conn task reports Closed; the peer entry goes then.
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.target = None;
                }
            }
        }
    }

    fn message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let gossip = match msg {
            Message::Heartbeat => return,
            Message::SleeveCompat { tag, payload } => {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.handle_control(now, tag, &payload);
                }
                return;
            }
            Message::OverlayControl(OverlayControlMsg { index, tag, data }) => {
                let ours = self.peers.get(&conn).and_then(|p| p.sleeve_index);
                if ours == Some(index) {
                    if let Some(link) = self.links.get_mut(&conn) {
                        link.handle_control(now, tag, &data);
                    }
                }
                return;
            }
            Message::Gossip(e) => GossipMsg {
                kind: GossipKind::Gossip,
                channel: e.channel,
                src: e.src,
                payload: e.payload,
            },
            Message::GossipBroadcast(e) => GossipMsg {
                kind: GossipKind::Broadcast,
                channel: e.channel,
                src: e.src,
                payload: e.payload,
            },
            Message::GossipUnicast(e) => GossipMsg {
                kind: GossipKind::Unicast { dst: e.dst },
                channel: e.channel,
                src: e.src,
                payload: e.payload,
            },
        };
        if !self.peers.get(&conn).is_some_and(|p| p.ready) {
            return;
        }
        if let Err(e) = self.mesh.handle_gossip(now, conn, gossip) {
            warn!("closing connection {conn}: {e}");
            self.close(now, conn, e.to_string());
        }
    }

    fn close(&mut self, now: Instant, conn: ConnId, why: String) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.shut(why.clone());
        }
        self.forget_conn(now, conn, Some(why));
    }

    /// Queue `msg` for connection `conn`. A full queue means the peer has not been reading
    /// for a while: close the connection rather than hold more for it.
    fn send_to_conn(&mut self, now: Instant, conn: ConnId, msg: Message) {
        // Nothing more for a connection being closed (it stays known until its task ends).
        let Some(p) = self.peers.get(&conn).filter(|p| p.close.is_some()) else {
            return;
        };
        match p.cmd.try_send(msg) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.conn_stats.not_reading += 1;
                let why = format!("peer is not reading: {CMD_QUEUE} messages queued");
                warn!("closing connection {conn} to {}: {why}", p.remote_addr);
                self.close(now, conn, why);
            }
        }
    }

    /// Forget a connection's link: its edge state and any datagram half put back together.
    fn drop_link(&mut self, conn: ConnId) -> Option<HeartbeatLink> {
        self.link_io.remove(&conn);
        let link = self.links.remove(&conn)?;
        if self.link_by_name.get(&link.remote()) == Some(&conn) {
            self.link_by_name.remove(&link.remote());
        }
        let before = self.reassembler.stats.abandoned;
        self.reassembler.remove(conn);
        self.stats
            .drop("segments_lost", self.reassembler.stats.abandoned - before);
        Some(link)
    }

    /// Drop what the actor holds for a connection and tell the mesh.
    fn forget_conn(&mut self, now: Instant, conn: ConnId, why: Option<String>) {
        self.drop_link(conn);
        if let Some(p) = self.peers.get_mut(&conn) {
            if p.ready {
                p.ready = false;
                self.mesh.connection_closed(now, conn, why);
            }
        }
    }

    fn closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        error: Option<ConnectionError>,
        io_error: Option<String>,
        write_stalled: bool,
    ) {
        if write_stalled {
            self.conn_stats.write_timeouts += 1;
        }
        let text = error
            .as_ref()
            .map(ToString::to_string)
            .or(io_error)
            .unwrap_or_else(|| "connection closed".into());
        let was_ready = self.peers.get(&conn).is_some_and(|p| p.ready);
        let target = self.peers.get(&conn).and_then(|p| p.target.clone());
        if was_ready {
            info!("connection {conn} closed: {text}");
            self.forget_conn(now, conn, Some(text));
        } else if let Some(t) = target {
            let permanent = matches!(
                error,
                Some(ConnectionError::ConnectToSelf | ConnectionError::PeerNameCollision { .. })
            );
            info!("connection to {t} failed: {text}");
            self.mesh.dial_failed(now, &t, text, permanent);
        } else if let Some(p) = self.peers.get(&conn) {
            info!("connection from {} failed: {text}", p.remote_addr);
        }
        self.peers.remove(&conn);
    }

    async fn handle_datagram(&mut self, from: SocketAddr, datagram: &mut [u8]) {
        let now = Instant::now();
        let Ok(sender) = weft_sleeve::packet::sender(datagram) else {
            self.stats.drop("sleeve_malformed", 1);
            return;
        };
        let Some(&conn) = self.link_by_name.get(&sender) else {
            self.stats.drop("unknown_sender", 1);
            return;
        };
        // Where each frame lies in the (decrypted) datagram.
        let mut frames: Vec<(PeerName, PeerName, usize, usize)> = Vec::new();
        let base = datagram.as_ptr() as usize;
        if let Some(link) = self.links.get_mut(&conn) {
            let r = link.handle_datagram_frames(now, from, datagram, |f| {
                let start = f.data.as_ptr() as usize - base;
                frames.push((f.src, f.dst, start, f.data.len()));
            });
            if let Err(e) = r {
                self.stats.drop(link_drop_label(&e), 1);
                debug!("sleeve packet from {from} dropped: {e}");
                return;
            }
        }
        for (src, dst, start, len) in frames {
            let frame = &datagram[start..start + len];
            self.stats.received_frames += 1;
            let t = self.stats.per_peer.entry(sender).or_default();
            t.received_frames += 1;
            t.received_bytes += frame.len() as u64;
            let (peers, routes) = self.mesh.route_view();
            let view = MeshRoutes { peers, routes };
            let mut actions = std::mem::take(&mut self.actions);
            self.switch
                .handle_overlay(now, &view, src, dst, frame, &mut actions);
            // Usually only an injection: straight from the datagram, no copy.
            if actions.iter().any(|a| matches!(a, Action::Send { .. })) {
                self.carry_out(&actions, frame.to_vec());
            } else {
                self.carry_out_local(&actions, frame);
            }
            self.actions = actions;
        }
    }

    fn api(&mut self, now: Instant, req: ApiRequest) {
        match req {
            ApiRequest::Status(reply) => {
                let snap = MeshSnapshot {
                    mesh: self.mesh.status(),
                    encryption: self.settings.password.is_some(),
                    trusted_subnets: self
                        .settings
                        .trusted_subnets
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    taken: (now, SystemTime::now()),
                    data: self.stats.clone(),
                    conns: ConnStats {
                        handshaking: self.gate.handshaking(),
                        refused: self.gate.refused().to_vec(),
                        ..self.conn_stats.clone()
                    },
                    channel_events_dropped: self.channels.dropped(),
                };
                let _ = reply.send(snap);
            }
            ApiRequest::Connect {
                peers,
                replace,
                reply,
            } => {
                let _ = reply.send(self.mesh.connect(now, &peers, replace));
            }
            ApiRequest::Forget { peers, reply } => {
                self.mesh.forget(now, &peers);
                let _ = reply.send(());
            }
        }
    }

    /// Carry out everything the cores asked for.
    async fn drain(&mut self) {
        let now = Instant::now();
        // Link events may feed the mesh, and mesh outputs may close links: loop until quiet.
        loop {
            let mut busy = false;
            // Only links with something queued (usually none, so nothing is allocated).
            let conns: Vec<ConnId> = self
                .links
                .iter()
                .filter(|(_, l)| l.has_pending())
                .map(|(c, _)| *c)
                .collect();
            for conn in conns {
                let mut events = Vec::new();
                let mut sends = Vec::new();
                if let Some(link) = self.links.get_mut(&conn) {
                    while let Some(ev) = link.poll_event() {
                        events.push(ev);
                    }
                    while let Some(t) = link.poll_transmit() {
                        sends.push(t);
                    }
                }
                for Transmit { addr, data, df } in sends {
                    if df {
                        // EMSGSIZE feeds the link's PMTU discovery.
                        self.send_df(conn, &data);
                    } else if let Err(e) = sleeve_io::send_to(&self.udp, &data, addr).await {
                        debug!("sleeve send to {addr}: {e}");
                    }
                }
                for ev in events {
                    busy = true;
                    match ev {
                        LinkEvent::SendControl(tag, data) => {
                            let Some(p) = self.peers.get(&conn) else {
                                continue;
                            };
                            let msg = match p.sleeve_index {
                                Some(index) => {
                                    Message::OverlayControl(OverlayControlMsg { index, tag, data })
                                }
                                None => Message::SleeveCompat { tag, payload: data },
                            };
                            self.send_to_conn(now, conn, msg);
                        }
                        LinkEvent::Established => self.mesh.connection_established(now, conn),
                        LinkEvent::Failed(why) => {
                            warn!("connection {conn}: {why}");
                            self.close(now, conn, why);
                        }
                    }
                }
            }
            while let Some(out) = self.mesh.poll_output() {
                busy = true;
                match out {
                    Output::Send { conn, msg } => self.send_to_conn(now, conn, to_wire(msg)),
                    Output::Close { conn, reason } => {
                        if let Some(p) = self.peers.get_mut(&conn) {
                            p.shut(reason);
                        }
                        self.drop_link(conn);
                        if let Some(p) = self.peers.get_mut(&conn) {
                            p.ready = false;
                        }
                    }
                    Output::Dial(d) => {
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            let result = dial(&d.address).await;
                            let _ = tx
                                .send(Input::Dialed {
                                    address: d.address,
                                    must_be_known: d.must_be_known,
                                    result,
                                })
                                .await;
                        });
                    }
                    Output::PersistTargets(targets) => {
                        persist_targets(&self.settings.targets_file, &targets)
                    }
                    Output::Channel(event) => self.channels.dispatch(event),
                }
            }
            if !busy {
                break;
            }
        }
    }
}

/// How long a link to `remote` may stay silent: a weft peer says how often it sends
/// heartbeats; a Weave peer sends one every 10 s and gets Weave's 60 s.
fn heartbeat_timeout(remote: &RemotePeer) -> Duration {
    remote
        .features
        .get(HEARTBEAT_FEATURE)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| {
            (Duration::from_millis(ms) * WEFT_MISSED_HEARTBEATS)
                .clamp(Duration::from_secs(3), weft_sleeve::link::HEARTBEAT_TIMEOUT)
        })
        .unwrap_or(weft_sleeve::link::HEARTBEAT_TIMEOUT)
}

fn to_wire(msg: GossipMsg) -> Message {
    match msg.kind {
        GossipKind::Gossip => Message::Gossip(GossipEnvelope {
            channel: msg.channel,
            src: msg.src,
            payload: msg.payload,
        }),
        GossipKind::Broadcast => Message::GossipBroadcast(GossipEnvelope {
            channel: msg.channel,
            src: msg.src,
            payload: msg.payload,
        }),
        GossipKind::Unicast { dst } => Message::GossipUnicast(UnicastEnvelope {
            channel: msg.channel,
            src: msg.src,
            dst,
            payload: msg.payload,
        }),
    }
}

async fn dial(address: &str) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await?
        .filter(SocketAddr::is_ipv4)
        .collect();
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no IPv4 address for this name"))?;
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")),
    }
}

/// The persisted direct targets (JSON list of strings), if any.
pub fn load_targets(path: &std::path::Path) -> io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn persist_targets(path: &std::path::Path, targets: &[String]) {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(targets).unwrap_or_else(|_| "[]".into());
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        warn!("cannot persist targets to {}: {e}", path.display());
    }
}

/// The default listen address.
pub const ALL_ADDRESSES: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

mod conn;
use conn::{accept_loop, conn_task, ConnCtl, CMD_QUEUE, WRITE_TIMEOUT};
pub mod services;
use services::{ChannelRouter, ServiceCommand, Services};

#[cfg(test)]
mod conn_tests;
#[cfg(test)]
mod services_tests;
