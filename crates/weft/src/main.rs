//! `weft`: the command line and, as `weft router`, the router daemon itself.

mod attach;
mod cli;
mod client;
mod compat;
mod expose;
mod ipam_cli;
mod launch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use weft_router::state::StateDirs;

use crate::cli::{Cli, Command, GlobalArgs, RouterArgs};
use crate::client::{Api, CallError};

/// A failure with the exit status it maps to. The message is one line for the user.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(refusal) = compat::refusal(&args) {
        eprintln!("{refusal}");
        return ExitCode::from(1);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, as `weave`'s do; --help and --version are successes.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(cli: Cli) -> Outcome {
    let g = &cli.global;
    match cli.command {
        Command::Launch(args) => {
            require_root("launch")?;
            launch::launch(g, &args)
        }
        Command::Router(args) => {
            require_root("router")?;
            router(g, &args)
        }
        Command::Stop => {
            require_root("stop")?;
            launch::stop(&state_dirs(g)?)
        }
        Command::Status { view } => status(g, view.as_deref()),
        Command::Version => version(g),
        Command::Connect { replace, peers } => {
            let mut form: Vec<(&str, &str)> = peers.iter().map(|p| ("peer", p.as_str())).collect();
            if replace {
                form.push(("replace", "true"));
            }
            post(g, "/connect", &form)
        }
        Command::Forget { peers } => {
            let form: Vec<(&str, &str)> = peers.iter().map(|p| ("peer", p.as_str())).collect();
            post(g, "/forget", &form)
        }
        Command::Report { format } => report(g, format.as_deref()),
        Command::Rmpeer { peers } => rmpeer(g, &peers),
        Command::Prime => prime(g),
        Command::Attach {
            no_multicast_route,
            without_dns: _,
            args,
        } => {
            require_root("attach")?;
            let (container, addrs) = args
                .split_last()
                .ok_or_else(|| Failure::new(1, "weft attach needs a container"))?;
            attach::attach(g, addrs, container, !no_multicast_route)
        }
        Command::Detach { args } => {
            require_root("detach")?;
            let (container, addrs) = args
                .split_last()
                .ok_or_else(|| Failure::new(1, "weft detach needs a container"))?;
            attach::detach(g, addrs, container)
        }
        Command::Expose {
            fqdn,
            without_masquerade,
            help: _,
            addrs,
        } => expose::expose(g, &addrs, fqdn.as_deref(), without_masquerade),
        Command::Hide { addrs } => expose::hide(g, &addrs),
        Command::Reset { force } => {
            require_root("reset")?;
            expose::reset(g, force)
        }
        Command::Ps { containers } => {
            require_root("ps")?;
            attach::ps(&containers)
        }
    }
}

fn require_root(command: &str) -> Outcome {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Failure::new(
            1,
            format!("weft {command} must be run as root (it manages the host's network); try: sudo weft {command}"),
        ))
    }
}

/// The state directories, made absolute so a daemon started elsewhere finds the same ones.
pub fn state_dirs(g: &GlobalArgs) -> Result<StateDirs, Failure> {
    let abs = |p: &Path| -> Result<PathBuf, Failure> {
        std::path::absolute(p)
            .map_err(|e| Failure::new(1, format!("bad directory {}: {e}", p.display())))
    };
    Ok(StateDirs {
        data: abs(&g.data_dir)?,
        run: abs(&g.run_dir)?,
    })
}

/// The API address: --http-addr, else $WEFT_HTTP_ADDR, else $WEAVE_HTTP_ADDR, else the default.
/// Like Weave's, `:port` means 127.0.0.1:port and a bare host means port 6784.
pub fn http_addr(g: &GlobalArgs) -> Result<SocketAddr, Failure> {
    let text = g
        .http_addr
        .clone()
        .or_else(|| std::env::var("WEFT_HTTP_ADDR").ok())
        .or_else(|| std::env::var("WEAVE_HTTP_ADDR").ok())
        .unwrap_or_else(|| weft_router::DEFAULT_HTTP_ADDR.to_owned());
    parse_http_addr(&text).ok_or_else(|| {
        Failure::new(
            1,
            format!("invalid HTTP API address {text:?}: expected <ip>:<port>, <ip> or :<port>"),
        )
    })
}

fn parse_http_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse() {
        return Some(a);
    }
    if let Some(port) = text.strip_prefix(':') {
        return Some(SocketAddr::from((
            [127, 0, 0, 1],
            port.parse::<u16>().ok()?,
        )));
    }
    let ip: std::net::IpAddr = text.parse().ok()?;
    Some(SocketAddr::new(ip, 6784))
}

pub fn router_config(
    g: &GlobalArgs,
    args: &RouterArgs,
) -> Result<weft_router::RouterConfig, Failure> {
    let name = args
        .name
        .as_deref()
        .map(|n| {
            n.parse()
                .map_err(|e| Failure::new(1, format!("--name: {e}")))
        })
        .transpose()?;
    let trusted_subnets = weft_router::subnet::Subnet::parse_list(&args.trusted_subnets)
        .map_err(|e| Failure::new(1, format!("--trusted-subnets: {e}")))?;
    if args.resume && !args.peers.is_empty() {
        return Err(Failure::new(
            1,
            "you must not specify an initial peer list in conjunction with --resume",
        ));
    }
    if args.port == 0 {
        return Err(Failure::new(1, "--port: the mesh port must be 1-65535"));
    }
    let mut bad_peers = Vec::new();
    for p in &args.peers {
        if let Err(e) = weft_mesh::maker::normalise_target(p, args.port) {
            bad_peers.push(e.to_string());
        }
    }
    if !bad_peers.is_empty() {
        return Err(Failure::new(1, bad_peers.join("; ")));
    }
    let ipam = ipam_settings(args)?;
    let password = match args.password.as_deref() {
        Some("") | None => None,
        Some(p) => Some(weft_router::Password::from(p)),
    };
    Ok(weft_router::RouterConfig {
        dirs: state_dirs(g)?,
        http_addr: http_addr(g)?,
        name,
        nickname: args.nickname.clone(),
        mesh: weft_router::MeshOptions {
            port: args.port,
            host: args.host.unwrap_or(weft_router::mesh_edge::ALL_ADDRESSES),
            password,
            peers: args.peers.clone(),
            resume: args.resume,
            conn_limit: args.conn_limit,
            discovery: !args.no_discovery,
            trusted_subnets,
            extensions: !args.no_weft_extensions,
        },
        ipam,
    })
}

/// `--ipalloc-range`, `--ipalloc-default-subnet`, `--ipalloc-init`, `--ipalloc-reclaim-after`.
fn ipam_settings(args: &RouterArgs) -> Result<Option<weft_router::ipam::IpamSettings>, Failure> {
    use weft_ipam::addr::Cidr;
    let bad = |flag: &str, msg: String| Failure::new(1, format!("{flag}: {msg}"));
    if args.ipalloc_range.is_empty() {
        if args.ipalloc_default_subnet.is_some() {
            return Err(bad(
                "--ipalloc-default-subnet",
                "IPAM is disabled (--ipalloc-range is empty); give a range or drop this flag"
                    .into(),
            ));
        }
        return Ok(None);
    }
    let cidr = |flag: &str, text: &str| -> Result<Cidr, Failure> {
        let c: Cidr = text.parse().map_err(|e| {
            bad(
                flag,
                format!("{text:?} is not a CIDR like 10.32.0.0/12 ({e})"),
            )
        })?;
        if !c.is_canonical() {
            return Err(bad(
                flag,
                format!("invalid subnet - bits after network prefix are not all zero: {text}"),
            ));
        }
        if c.size() < 4 {
            return Err(bad(
                flag,
                format!("{text} is too small: IPAM needs a range of at least 4 addresses (/30)"),
            ));
        }
        Ok(c)
    };
    let universe = cidr("--ipalloc-range", &args.ipalloc_range)?;
    let default_subnet = match &args.ipalloc_default_subnet {
        Some(text) => {
            let c = cidr("--ipalloc-default-subnet", text)?;
            let (u, r) = (universe.range(), c.range());
            if r.start < u.start || r.end > u.end {
                return Err(bad(
                    "--ipalloc-default-subnet",
                    format!("{c} is not inside --ipalloc-range {universe}"),
                ));
            }
            c
        }
        None => universe,
    };
    let init = parse_ipalloc_init(&args.ipalloc_init).map_err(|msg| bad("--ipalloc-init", msg))?;
    let dead_after = args
        .ipalloc_reclaim_after
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|msg| bad("--ipalloc-reclaim-after", msg))?;
    Ok(Some(weft_router::ipam::IpamSettings {
        universe,
        default_subnet,
        init,
        dead_after,
    }))
}

/// Weave's `--ipalloc-init`: `consensus`, `consensus=N`, `seed=<peer>,...`, `observer`.
fn parse_ipalloc_init(text: &str) -> Result<weft_ipam::allocator::InitMode, String> {
    use weft_ipam::allocator::InitMode;
    let (mode, arg) = match text.split_once('=') {
        Some((m, a)) => (m, Some(a)),
        None => (text, None),
    };
    match (mode, arg) {
        ("consensus", None) => Ok(InitMode::Consensus { quorum: None }),
        ("consensus", Some(n)) => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(InitMode::Consensus { quorum: Some(n) }),
            _ => Err(format!(
                "consensus={n}: the peer count must be a number of at least 1"
            )),
        },
        ("seed", Some(list)) => {
            let mut peers = Vec::new();
            for p in list.split(',') {
                let name: weft_mesh::PeerName = p
                    .parse()
                    .map_err(|e| format!("seed: {p:?} is not a peer name ({e})"))?;
                peers.push(name);
            }
            if peers.is_empty() {
                return Err("seed= needs at least one peer name".into());
            }
            Ok(InitMode::Seed(peers))
        }
        ("observer", None) => Ok(InitMode::Observer),
        _ => Err(format!(
            "{text:?}: expected consensus, consensus=<count>, seed=<peer>,<peer>... or observer"
        )),
    }
}

/// `90s`, `30m`, `2h`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m or 2h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the period must be longer than 0".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn router(g: &GlobalArgs, args: &RouterArgs) -> Outcome {
    let config = router_config(g, args)?;
    let level = match args.log_level.as_str() {
        "warning" => "warn",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()
            .map_err(|e| Failure::new(1, format!("cannot install signal handlers: {e}")))?;
        weft_router::run(config, shutdown).await.map_err(|e| {
            tracing::error!("{e}");
            Failure::new(e.exit_code() as u8, e.to_string())
        })
    })
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = int.recv() => tracing::info!("SIGINT received, stopping"),
        }
    })
}

fn status(g: &GlobalArgs, view: Option<&str>) -> Outcome {
    let api = Api::new(http_addr(g)?);
    let path = match view {
        None => "/status".to_owned(),
        Some(v) => format!("/status/{v}"),
    };
    match api.get(&path, None) {
        Ok(body) if view.is_none() => {
            print!("\n{body}\n");
            Ok(())
        }
        Ok(body) => {
            print!("{body}");
            Ok(())
        }
        Err(CallError::Status { code: 404, .. }) if view.is_some() => Err(Failure::new(
            1,
            format!(
                "Invalid 'weft status' sub-command: {}",
                view.unwrap_or_default()
            ),
        )),
        Err(e) => Err(api_failure(&api, e)),
    }
}

/// The user-facing message for a failed API call.
pub fn api_failure(api: &Api, e: CallError) -> Failure {
    match e {
        CallError::NotRunning => Failure::new(1, "weft is not running"),
        CallError::Status { code, body } => Failure::new(
            1,
            format!(
                "router at {} answered {code}: {}",
                api.addr(),
                body.trim_end()
            ),
        ),
        CallError::Transport(t) => {
            Failure::new(1, format!("cannot reach the router at {}: {t}", api.addr()))
        }
    }
}

fn post(g: &GlobalArgs, path: &str, form: &[(&str, &str)]) -> Outcome {
    let api = Api::new(http_addr(g)?);
    match api.post_form(path, form) {
        Ok(body) => {
            print!("{body}");
            Ok(())
        }
        // The router's message lists what was wrong, one line each.
        Err(CallError::Status { code: 400, body }) => Err(Failure::new(1, body.trim_end())),
        Err(e) => Err(api_failure(&api, e)),
    }
}

/// `weft rmpeer <peer>...`: the router takes over each peer's address space and prints how
/// much, as Weave's (`524288 IPs taken over from host3`); exit 1 if any call failed.
fn rmpeer(g: &GlobalArgs, peers: &[String]) -> Outcome {
    let api = Api::new(http_addr(g)?);
    let mut failed = None;
    for p in peers {
        let path = format!("/peer/{}", ipam_cli::path_segment(p));
        match api.call("DELETE", &path, &[]) {
            Ok(body) => print!("{body}"),
            Err(CallError::Status { code: 400, body }) => {
                eprintln!("{}", body.trim_end());
                failed = Some(Failure::new(1, format!("rmpeer {p} failed")));
            }
            Err(e) => return Err(api_failure(&api, e)),
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// `weft prime`: wait until the IPAM ring exists (starting consensus if needed).
fn prime(g: &GlobalArgs) -> Outcome {
    let api = Api::without_timeout(http_addr(g)?);
    match api.call("GET", "/ring", &[]) {
        Ok(_) => Ok(()),
        Err(CallError::Status { code: 404, .. }) => Err(Failure::new(
            1,
            "IPAM is disabled on this router (--ipalloc-range \"\"); there is no ring to prime",
        )),
        Err(e) => Err(api_failure(&api, e)),
    }
}

fn report(g: &GlobalArgs, format: Option<&str>) -> Outcome {
    let api = Api::new(http_addr(g)?);
    let result = match format {
        None => api.get("/report", Some("application/json")),
        Some(f) => api.get_query("/report", &[("format", f)]),
    };
    match result {
        Ok(body) => {
            print!("{body}");
            Ok(())
        }
        Err(CallError::Status {
            code: 400 | 500,
            body,
        }) => Err(Failure::new(1, body.trim_end())),
        Err(e) => Err(api_failure(&api, e)),
    }
}

fn version(g: &GlobalArgs) -> Outcome {
    println!("weft {}", weft_router::VERSION);
    let api = Api::new(http_addr(g)?);
    if let Ok(body) = api.get("/report", Some("application/json")) {
        if let Some(v) = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|r| r["Version"].as_str().map(str::to_owned))
        {
            println!("weft router {v}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_addr_forms() {
        assert_eq!(
            parse_http_addr("127.0.0.1:6784"),
            Some("127.0.0.1:6784".parse().unwrap())
        );
        assert_eq!(
            parse_http_addr(":7000"),
            Some("127.0.0.1:7000".parse().unwrap())
        );
        assert_eq!(
            parse_http_addr("10.0.0.1"),
            Some("10.0.0.1:6784".parse().unwrap())
        );
        assert_eq!(parse_http_addr("nonsense"), None);
        assert_eq!(parse_http_addr(":99999"), None);
    }
}
