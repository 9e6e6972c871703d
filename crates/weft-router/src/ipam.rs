//! The IPAM service: the edge around `weft_ipam::Allocator`.
//!
//! One tokio task owns the allocator. It gets the `IPallocation` gossip channel from the mesh
//! (by name, like Weave's channels), the HTTP API's requests through [`IpamHandle`], and a
//! timer; it carries out the allocator's outputs in order: `Persist` is committed to the
//! redb store (see `store`) before any later output (a reply, a broadcast) leaves, so an
//! address a client was given, or a range another peer was granted, survives `kill -9`.
//!
//! Containers weft knows about are checked every few seconds: an ident `netns:NAME` whose
//! namespace is gone, or `pid:PID` whose process is gone, is released (Docker containers are
//! released on their die/destroy events once the Docker integration lands).

pub mod http;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use weft_ipam::addr::Cidr;
use weft_ipam::allocator::{
    Allocator, Config, InitMode, IpamError, IpamStatus, Now, Output, Persisted, Reply, ReqId,
};
use weft_mesh::mesh::ChannelEvent;
use weft_mesh::PeerName;

use crate::mesh_edge::MeshHandle;

/// Weave's gossip channel name for IPAM.
pub const CHANNEL: &str = "IPallocation";
/// How often idents of containers weft attached are checked for liveness.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(5);
/// Requests the API may queue before it waits.
const QUEUE: usize = 1024;

/// `--ipalloc-*` settings.
#[derive(Debug, Clone)]
pub struct IpamSettings {
    pub universe: Cidr,
    pub default_subnet: Cidr,
    pub init: InitMode,
    /// Reclaim the space of peers unreachable this long (weft's opt-in; Weave has none).
    pub dead_after: Option<Duration>,
}

/// Where the clock is now, for the core.
fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    }
}

type Answer<T> = oneshot::Sender<T>;

enum Cmd {
    Allocate {
        req: ReqId,
        ident: String,
        subnet: Cidr,
        is_container: bool,
        reply: Answer<Result<Reply, IpamError>>,
    },
    Claim {
        req: ReqId,
        ident: String,
        cidr: Cidr,
        is_container: bool,
        no_error_on_unknown: bool,
        reply: Answer<Result<Reply, IpamError>>,
    },
    Prime {
        req: ReqId,
        reply: Answer<Result<Reply, IpamError>>,
    },
    Cancel(ReqId),
    Lookup {
        ident: String,
        subnet: Option<Cidr>,
        reply: Answer<Vec<Cidr>>,
    },
    Owned(Answer<Vec<(String, Vec<Cidr>)>>),
    Free {
        ident: String,
        addr: u32,
        reply: Answer<Result<(), IpamError>>,
    },
    Delete {
        ident: String,
        reply: Answer<Result<(), IpamError>>,
    },
    Takeover {
        peer: String,
        reply: Answer<Result<u64, IpamError>>,
    },
    Shutdown(Answer<()>),
    Status(Answer<IpamStatus>),
}

/// The API's way to the IPAM task. Cheap to clone.
#[derive(Clone)]
pub struct IpamHandle {
    tx: mpsc::Sender<Cmd>,
    next: Arc<AtomicU64>,
    pub default_subnet: Cidr,
    pub universe: Cidr,
}

/// The IPAM task is gone (the router is stopping).
#[derive(Debug)]
pub struct Stopped;

/// Cancels a waiting request when the HTTP client goes away (the handler's future is
/// dropped before the answer came).
struct CancelOnDrop {
    tx: mpsc::Sender<Cmd>,
    req: ReqId,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let tx = self.tx.clone();
            let req = self.req;
            if let Err(mpsc::error::TrySendError::Full(cmd)) = tx.try_send(Cmd::Cancel(req)) {
                tokio::spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
        }
    }
}

impl IpamHandle {
    async fn ask<T>(&self, make: impl FnOnce(Answer<T>) -> Cmd) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// A request that may wait (allocate, claim, prime): cancelled if the caller drops it.
    async fn wait(
        &self,
        make: impl FnOnce(ReqId, Answer<Result<Reply, IpamError>>) -> Cmd,
    ) -> Result<Result<Reply, IpamError>, Stopped> {
        let req = ReqId(self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(req, tx)).await.map_err(|_| Stopped)?;
        let mut guard = CancelOnDrop {
            tx: self.tx.clone(),
            req,
            armed: true,
        };
        let answer = rx.await.map_err(|_| Stopped);
        guard.armed = false;
        answer
    }

    pub async fn allocate(
        &self,
        ident: String,
        subnet: Cidr,
        is_container: bool,
    ) -> Result<Result<Reply, IpamError>, Stopped> {
        self.wait(|req, reply| Cmd::Allocate {
            req,
            ident,
            subnet,
            is_container,
            reply,
        })
        .await
    }

    pub async fn claim(
        &self,
        ident: String,
        cidr: Cidr,
        is_container: bool,
        no_error_on_unknown: bool,
    ) -> Result<Result<Reply, IpamError>, Stopped> {
        self.wait(|req, reply| Cmd::Claim {
            req,
            ident,
            cidr,
            is_container,
            no_error_on_unknown,
            reply,
        })
        .await
    }

    pub async fn prime(&self) -> Result<Result<Reply, IpamError>, Stopped> {
        self.wait(|req, reply| Cmd::Prime { req, reply }).await
    }

    pub async fn lookup(&self, ident: String, subnet: Option<Cidr>) -> Result<Vec<Cidr>, Stopped> {
        self.ask(|reply| Cmd::Lookup {
            ident,
            subnet,
            reply,
        })
        .await
    }

    pub async fn owned(&self) -> Result<Vec<(String, Vec<Cidr>)>, Stopped> {
        self.ask(Cmd::Owned).await
    }

    pub async fn free(&self, ident: String, addr: u32) -> Result<Result<(), IpamError>, Stopped> {
        self.ask(|reply| Cmd::Free { ident, addr, reply }).await
    }

    pub async fn delete(&self, ident: String) -> Result<Result<(), IpamError>, Stopped> {
        self.ask(|reply| Cmd::Delete { ident, reply }).await
    }

    pub async fn takeover(&self, peer: String) -> Result<Result<u64, IpamError>, Stopped> {
        self.ask(|reply| Cmd::Takeover { peer, reply }).await
    }

    pub async fn shutdown(&self) -> Result<(), Stopped> {
        self.ask(Cmd::Shutdown).await
    }

    pub async fn status(&self) -> Result<IpamStatus, Stopped> {
        self.ask(Cmd::Status).await
    }
}

/// Why IPAM could not start.
#[derive(Debug, thiserror::Error)]
pub enum IpamStartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Open the store, load what was persisted, and start the task (which builds the allocator
/// once the mesh has told it this run's peer UID).
pub fn start(
    settings: IpamSettings,
    data_dir: &std::path::Path,
    name: PeerName,
    nickname: String,
    mesh: MeshHandle,
    events: mpsc::Receiver<ChannelEvent>,
) -> Result<IpamHandle, IpamStartError> {
    let path: PathBuf = store::path(data_dir);
    let store = store::Store::open(path.clone())?;
    let persisted = match store.load() {
        Ok(p) => p,
        Err(e) => {
            warn!("{e}; starting IPAM without persisted data");
            None
        }
    };
    if persisted.is_some() {
        info!("IPAM: loaded persisted state from {}", path.display());
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = IpamHandle {
        tx,
        next: Arc::new(AtomicU64::new(1)),
        default_subnet: settings.default_subnet,
        universe: settings.universe,
    };
    tokio::spawn(async move {
        // This run's UID (Paxos names nodes by name and UID) comes from the mesh.
        let uid = match mesh.peer_infos().await {
            Ok(p) => p.peers.iter().find(|p| p.name == name).map_or(0, |p| p.uid),
            Err(_) => return,
        };
        let cfg = Config {
            name,
            uid,
            nickname,
            universe: settings.universe,
            default_subnet: settings.default_subnet,
            init: settings.init.clone(),
            seed: rand::random(),
            dead_after: settings.dead_after,
        };
        let task = Task {
            alloc: Allocator::new(cfg, persisted, now()),
            store,
            mesh,
            waiting: HashMap::new(),
        };
        task.run(rx, events).await
    });
    Ok(handle)
}

struct Task {
    alloc: Allocator,
    store: store::Store,
    mesh: MeshHandle,
    waiting: HashMap<ReqId, Answer<Result<Reply, IpamError>>>,
}

impl Task {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut events: mpsc::Receiver<ChannelEvent>,
    ) {
        self.refresh_peers().await;
        self.flush().await;
        let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            let deadline = self
                .alloc
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => self.event(ev).await,
                    None => events_open = false,
                },
                _ = tokio::time::sleep_until(deadline) => self.alloc.handle_timeout(now()),
                _ = liveness.tick() => self.check_liveness(),
            }
            self.flush().await;
        }
    }

    fn command(&mut self, cmd: Cmd) {
        let n = now();
        match cmd {
            Cmd::Allocate {
                req,
                ident,
                subnet,
                is_container,
                reply,
            } => {
                if is_container && !container_alive(&ident) {
                    let _ = reply.send(Ok(Reply::Cancelled));
                    return;
                }
                self.waiting.insert(req, reply);
                self.alloc.allocate(n, req, &ident, subnet, is_container);
            }
            Cmd::Claim {
                req,
                ident,
                cidr,
                is_container,
                no_error_on_unknown,
                reply,
            } => {
                if is_container && !container_alive(&ident) {
                    let _ = reply.send(Ok(Reply::Cancelled));
                    return;
                }
                self.waiting.insert(req, reply);
                self.alloc
                    .claim(n, req, &ident, cidr, is_container, no_error_on_unknown);
            }
            Cmd::Prime { req, reply } => {
                self.waiting.insert(req, reply);
                self.alloc.prime(n, req);
            }
            Cmd::Cancel(req) => {
                if self.waiting.remove(&req).is_some() {
                    self.alloc.cancel(n, req);
                }
            }
            Cmd::Lookup {
                ident,
                subnet,
                reply,
            } => {
                let _ = reply.send(self.alloc.lookup(&ident, subnet));
            }
            Cmd::Owned(reply) => {
                let _ = reply.send(self.alloc.owned());
            }
            Cmd::Free { ident, addr, reply } => {
                let _ = reply.send(self.alloc.free(n, &ident, addr));
            }
            Cmd::Delete { ident, reply } => {
                let _ = reply.send(self.alloc.delete(n, &ident));
            }
            Cmd::Takeover { peer, reply } => {
                let _ = reply.send(self.alloc.admin_takeover(n, &peer));
            }
            Cmd::Shutdown(reply) => {
                self.alloc.shutdown(n);
                let _ = reply.send(());
            }
            Cmd::Status(reply) => {
                let _ = reply.send(self.alloc.status());
            }
        }
    }

    async fn event(&mut self, ev: ChannelEvent) {
        let n = now();
        match ev {
            ChannelEvent::Gossip { src, payload, .. } => {
                if let Err(e) = self.alloc.on_gossip(n, src, &payload) {
                    warn!("IPAM gossip from {src} refused: {e}");
                }
            }
            ChannelEvent::Broadcast { src, payload, .. } => {
                match self.alloc.on_broadcast(n, src, &payload) {
                    Ok(Some(relay)) => {
                        let _ = self.mesh.relay_broadcast(CHANNEL, src, relay).await;
                    }
                    Ok(None) => {}
                    Err(e) => warn!("IPAM broadcast from {src} refused: {e}"),
                }
            }
            ChannelEvent::Unicast { src, payload, .. } => {
                if let Err(e) = self.alloc.on_unicast(n, src, &payload) {
                    warn!("IPAM message from {src} refused: {e}");
                }
            }
            ChannelEvent::NewConnection { peer } => {
                let payload = self.alloc.gossip(n);
                let _ = self.mesh.gossip_to(peer, CHANNEL, payload).await;
            }
            ChannelEvent::PeriodicGossip => {
                let payload = self.alloc.gossip(n);
                let _ = self.mesh.gossip_neighbours(CHANNEL, payload).await;
            }
            ChannelEvent::PeersChanged => self.refresh_peers().await,
            ChannelEvent::PeerGone { peer } => self.alloc.peer_gone(n, peer),
        }
    }

    async fn refresh_peers(&mut self) {
        if let Ok(m) = self.mesh.peer_infos().await {
            let targets = m.direct_targets;
            let peers: Vec<weft_ipam::allocator::PeerInfo> = m
                .peers
                .into_iter()
                .map(|p| weft_ipam::allocator::PeerInfo {
                    name: p.name,
                    uid: p.uid,
                    nickname: p.nickname,
                    reachable: p.reachable,
                })
                .collect();
            self.alloc.set_peers(now(), &peers, targets);
        }
    }

    fn check_liveness(&mut self) {
        let n = now();
        for ident in self.alloc.container_idents() {
            if !container_alive(&ident) {
                info!("IPAM: container {ident} is gone; releasing its addresses");
                self.alloc.container_destroyed(n, &ident);
            }
        }
    }

    /// Carry out the allocator's outputs in order.
    async fn flush(&mut self) {
        while let Some(out) = self.alloc.poll_output() {
            match out {
                Output::Persist(p) => self.persist(&p),
                Output::Reply { req, result } => {
                    if let Some(tx) = self.waiting.remove(&req) {
                        let _ = tx.send(result);
                    }
                }
                Output::Broadcast(payload) => {
                    let _ = self.mesh.broadcast(CHANNEL, payload).await;
                }
                Output::Unicast { dst, payload } => {
                    if let Ok(false) = self.mesh.unicast(CHANNEL, dst, payload).await {
                        warn!("IPAM: no route to {dst}; message dropped (it is retried on the next tick)");
                    }
                }
            }
        }
    }

    fn persist(&mut self, p: &Persisted) {
        // A commit is a few milliseconds with fsync; keep the runtime's other tasks going.
        let result = tokio::task::block_in_place(|| self.store.save(p));
        if let Err(e) = result {
            // Nothing later may go out as if it were durable: this is fatal for the router,
            // like a full disk is for a database.
            tracing::error!(
                "{e}; stopping: IPAM cannot guarantee unique addresses without its store"
            );
            std::process::exit(1);
        }
    }
}

/// Whether the container behind an ident still exists, for idents weft can check itself.
/// Others (Docker ids before the Docker integration, `_`, plain names) count as alive.
pub fn container_alive(ident: &str) -> bool {
    if let Some(name) = ident.strip_prefix("netns:") {
        let path = if name.starts_with('/') {
            PathBuf::from(name)
        } else {
            PathBuf::from("/run/netns").join(name)
        };
        return path.exists();
    }
    if let Some(pid) = ident.strip_prefix("pid:") {
        return match pid.parse::<u32>() {
            Ok(pid) => PathBuf::from(format!("/proc/{pid}")).exists(),
            Err(_) => true,
        };
    }
    true
}
