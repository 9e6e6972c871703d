//! The weft router daemon.
//!
//! This crate is an *edge*: it owns the process-level resources (state directories, the pid
//! file, listening sockets, signals) and drives weft's pure cores with them. `run` is what
//! `weft router` executes in the foreground and what `weft launch` starts in the background.

pub mod api;
pub mod bridge;
pub mod firewall;
pub mod handshake_gate;
pub mod identity;
pub mod ipam;
pub mod mesh_edge;
pub mod metrics;
pub mod sleeve_io;
pub mod state;
pub mod status;
pub mod subnet;
mod systemd;
pub mod template;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};
use weft_mesh::PeerName;
pub use weft_wire::Password;

use crate::identity::{Identity, IdentityError, SystemIds};
use crate::mesh_edge::MeshSettings;
use crate::state::{PidLock, StateDirs, StateError};
use crate::subnet::Subnet;

/// The router's version, as reported by `/status`, `/report` and `weft version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The default control API address, as Weave's.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:6784";

/// Everything `weft router` needs to start.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub dirs: StateDirs,
    pub http_addr: SocketAddr,
    pub name: Option<PeerName>,
    pub nickname: Option<String>,
    pub mesh: MeshOptions,
    /// IPAM (`--ipalloc-*`); `None` when `--ipalloc-range` is empty.
    pub ipam: Option<ipam::IpamSettings>,
}

/// How the router takes part in the mesh (Weave's launch flags).
#[derive(Clone)]
pub struct MeshOptions {
    /// Mesh TCP and sleeve UDP port (6783).
    pub port: u16,
    /// Listen address for the mesh (all addresses by default).
    pub host: IpAddr,
    /// Shared by every connection, wiped when the router lets go of it.
    pub password: Option<Password>,
    /// Initial targets.
    pub peers: Vec<String>,
    /// Use the persisted targets instead of `peers`.
    pub resume: bool,
    pub conn_limit: usize,
    pub discovery: bool,
    pub trusted_subnets: Vec<Subnet>,
    /// Offer weft's wire extensions to peers that also offer them.
    pub extensions: bool,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            port: 6783,
            host: mesh_edge::ALL_ADDRESSES,
            password: None,
            peers: Vec::new(),
            resume: false,
            conn_limit: 200,
            discovery: true,
            trusted_subnets: Vec::new(),
            extensions: true,
        }
    }
}

impl std::fmt::Debug for MeshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshOptions")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("password", &self.password)
            .field("peers", &self.peers)
            .field("resume", &self.resume)
            .field("conn_limit", &self.conn_limit)
            .field("discovery", &self.discovery)
            .field("trusted_subnets", &self.trusted_subnets)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// Why the router could not start or run. `exit_code` maps it to the CLI's exit status.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot listen on {addr} for the HTTP API: address already in use; stop whatever holds it (another weft or Weave Net router?) or pass --http-addr")]
    HttpAddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr} for the HTTP API: {source}")]
    HttpListen { addr: SocketAddr, source: io::Error },
    #[error("HTTP API failed: {0}")]
    Serve(io::Error),
    #[error("cannot listen on {addr} for the mesh (TCP and UDP): address already in use; stop whatever holds it (another weft or Weave Net router?) or pass --port")]
    MeshAddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr} for the mesh: {source}")]
    MeshListen { addr: SocketAddr, source: io::Error },
    #[error("cannot set up the weave bridge and its capture device: {0}; is another weft router running in this network namespace? (a device of another kind named 'weave' must be removed: ip link del weave)")]
    Bridge(String),
    #[error(transparent)]
    Ipam(#[from] ipam::IpamStartError),
    #[error("you must not specify an initial peer list in conjunction with --resume")]
    ResumeWithPeers,
    #[error("cannot read the persisted targets in {path}: {source}; remove the file or launch without --resume")]
    Targets { path: PathBuf, source: io::Error },
}

impl RouterError {
    /// 3 when a router already runs for these state directories (as `weave launch`), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            RouterError::State(StateError::AlreadyRunning { .. }) => 3,
            _ => 1,
        }
    }
}

/// Run the router until `shutdown` completes.
pub async fn run(
    config: RouterConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RouterError> {
    raise_nofile_limit();
    config.dirs.prepare()?;
    // A router killed a moment ago may still hold the pid file while the kernel tears down
    // its TAP and sockets: wait for it (bounded) rather than refusing to start.
    config.dirs.wait_for_exiting(state::EXIT_WAIT, |pid| {
        tracing::info!("waiting for the previous router (pid {pid}) to finish exiting")
    })?;
    let _pid_lock = PidLock::acquire(&config.dirs)?;
    let identity: Identity = identity::resolve(
        config.name,
        config.nickname.clone(),
        &config.dirs.data,
        &SystemIds {
            bridge_mac: bridge::existing_mac(),
            ..SystemIds::read()
        },
        hostname,
        rand::random,
    )?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => RouterError::HttpAddrInUse {
                addr: config.http_addr,
            },
            _ => RouterError::HttpListen {
                addr: config.http_addr,
                source,
            },
        })?;
    let o = &config.mesh;
    let targets_file = config.dirs.data.join("targets.json");
    let peers = if o.resume {
        if !o.peers.is_empty() {
            return Err(RouterError::ResumeWithPeers);
        }
        mesh_edge::load_targets(&targets_file).map_err(|source| RouterError::Targets {
            path: targets_file.clone(),
            source,
        })?
    } else {
        o.peers.clone()
    };
    let settings = MeshSettings {
        name: identity.name,
        nickname: identity.nickname.clone(),
        port: o.port,
        host: o.host,
        password: o.password.clone(),
        peers,
        conn_limit: o.conn_limit,
        discovery: o.discovery,
        trusted_subnets: o.trusted_subnets.clone(),
        targets_file,
        extensions: o.extensions,
    };
    let mesh_addr = SocketAddr::new(o.host, o.port);
    let (tcp, udp) = mesh_edge::bind(&settings)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => RouterError::MeshAddrInUse { addr: mesh_addr },
            _ => RouterError::MeshListen {
                addr: mesh_addr,
                source,
            },
        })?;
    info!(
        version = VERSION,
        name = %identity.name,
        name_source = ?identity.name_source,
        nickname = %identity.nickname,
        http_addr = %config.http_addr,
        mesh_addr = %mesh_addr,
        encryption = o.password.is_some(),
        peers = ?settings.peers,
        conn_limit = o.conn_limit,
        discovery = o.discovery,
        weft_extensions = o.extensions,
        data_dir = %config.dirs.data.display(),
        run_dir = %config.dirs.run.display(),
        "weft router started"
    );
    let tap = bridge::ensure(identity.name).map_err(|e| RouterError::Bridge(e.to_string()))?;
    // Services implementing gossip channels (IPAM, DNS) register here, before the mesh starts.
    let mut services = mesh_edge::services::Services::new();
    let ipam_channel = match &config.ipam {
        Some(_) => Some(
            services
                .register(ipam::CHANNEL)
                .map_err(|e| RouterError::Serve(io::Error::other(e.to_string())))?,
        ),
        None => None,
    };
    let mesh = mesh_edge::start(settings, tcp, udp, tap, services).map_err(RouterError::Serve)?;
    let ipam = match (config.ipam.clone(), ipam_channel) {
        (Some(settings), Some(ch)) => Some(ipam::start(
            settings,
            &config.dirs.data,
            identity.name,
            identity.nickname.clone(),
            ch.mesh,
            ch.events,
        )?),
        _ => None,
    };
    let firewall = start_firewall(config.dirs.data.clone()).await?;
    let state = Arc::new(api::ApiState::new(mesh, ipam, firewall));
    systemd::notify("READY=1");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(RouterError::Serve)?;
    systemd::notify("STOPPING=1");
    info!("weft router stopped");
    Ok(())
}

/// Loads and applies the firewall state (on a blocking thread: netlink and `nft`), then
/// checks it every [`firewall::CHECK_EVERY`] for the rest of the router's life.
async fn start_firewall(data: PathBuf) -> Result<Arc<firewall::Firewall>, RouterError> {
    let fw = tokio::task::spawn_blocking(move || {
        let backend = firewall::KernelBackend {
            bridge: bridge::BRIDGE.to_owned(),
        };
        firewall::Firewall::start(&data, bridge::BRIDGE, Box::new(backend))
    })
    .await
    .map_err(|e| RouterError::Serve(io::Error::other(format!("firewall start-up: {e}"))))?;
    let fw = Arc::new(fw);
    let checked = Arc::clone(&fw);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(firewall::CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; start() has just applied
        loop {
            tick.tick().await;
            let fw = Arc::clone(&checked);
            match tokio::task::spawn_blocking(move || fw.reconcile()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!("firewall check: {e}"),
                Err(e) => warn!("firewall check failed: {e}"),
            }
        }
    });
    Ok(fw)
}

/// Raise the soft limit on open descriptors to the hard limit. Every mesh connection, DF
/// socket and API client takes one; the common default soft limit of 1024 is small for a
/// router with hundreds of peers. (The handshake caps keep the router working even at 1024.)
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!("open file limit raised from {soft} to {hard}"),
            Err(e) => warn!("cannot raise the open file limit from {soft} to {hard}: {e}"),
        },
        Ok((soft, _)) => info!("open file limit: {soft}"),
        Err(e) => warn!("cannot read the open file limit: {e}"),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}
