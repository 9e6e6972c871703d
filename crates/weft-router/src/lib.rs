//! The weft router daemon.
//!
//! This crate is an *edge*: it owns the process-level resources (state directories, the pid
//! file, listening sockets, signals) and drives weft's pure cores with them. `run` is what
//! `weft router` executes in the foreground and what `weft launch` starts in the background.

pub mod api;
pub mod identity;
pub mod state;
pub mod status;
mod systemd;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;
use weft_mesh::PeerName;

use crate::identity::{Identity, IdentityError, SystemIds};
use crate::state::{PidLock, StateDirs, StateError};
use crate::status::{Report, RouterReport};

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
    config.dirs.prepare()?;
    let _pid_lock = PidLock::acquire(&config.dirs)?;
    let identity: Identity = identity::resolve(
        config.name,
        config.nickname.clone(),
        &config.dirs.data,
        &SystemIds::read(),
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
    info!(
        version = VERSION,
        name = %identity.name,
        name_source = ?identity.name_source,
        nickname = %identity.nickname,
        http_addr = %config.http_addr,
        data_dir = %config.dirs.data.display(),
        run_dir = %config.dirs.run.display(),
        "weft router started"
    );
    let state = Arc::new(api::ApiState {
        report: Report {
            ready: true,
            version: VERSION.to_owned(),
            router: RouterReport {
                name: identity.name.to_string(),
                nick_name: identity.nickname.clone(),
            },
        },
    });
    systemd::notify("READY=1");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(RouterError::Serve)?;
    systemd::notify("STOPPING=1");
    info!("weft router stopped");
    Ok(())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}
