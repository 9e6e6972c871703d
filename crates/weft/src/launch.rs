//! `weft launch` (start the router as a background daemon) and `weft stop`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weft_router::state::{Liveness, StateDirs, EXIT_WAIT};

use crate::cli::{GlobalArgs, LaunchArgs};
use crate::client::{Api, CallError};
use crate::{api_failure, router_config, Failure, Outcome};

/// How long `launch` waits for the new router to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits after SIGTERM before SIGKILL (Weave's `docker stop` waits 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

pub fn launch(g: &GlobalArgs, args: &LaunchArgs) -> Outcome {
    // Validate everything the daemon would reject, so mistakes are reported here.
    let config = router_config(g, &args.router)?;
    if let Some(ipam) = &config.ipam {
        check_range_routes(ipam.universe)?;
    }
    let dirs = &config.dirs;
    dirs.prepare().map_err(|e| Failure::new(1, e.to_string()))?;
    // A router killed a moment ago (`kill -9` then `weft launch`) still holds the pid file
    // while the kernel closes its TAP and sockets: wait for it, saying so if it takes a while.
    let live = dirs
        .wait_for_exiting(EXIT_WAIT, |pid| {
            eprintln!("waiting for the previous weft router (pid {pid}) to finish exiting...")
        })
        .map_err(|e| Failure::new(1, e.to_string()))?;
    match live {
        Liveness::Exiting { pid } => {
            return Err(Failure::new(
                1,
                format!(
                    "the previous weft router (pid {pid}) is still exiting after {}s; check 'ps -p {pid}' and try again",
                    EXIT_WAIT.as_secs()
                ),
            ))
        }
        Liveness::Running { pid } => {
            return Err(Failure::new(
                3,
                format!(
                    "weft is already running (pid {pid}) for run directory {}; you can stop it with 'weft stop'",
                    dirs.run.display()
                ),
            ))
        }
        Liveness::Stale | Liveness::NotRunning => {}
    }
    let probe = Api::with_timeout(config.http_addr, Duration::from_secs(3));
    match probe.get("/status", None) {
        Err(CallError::NotRunning) => {}
        Ok(_) | Err(CallError::Status { .. }) => {
            return Err(Failure::new(
                1,
                format!(
                    "a router (Weave Net, or weft with other state directories) already answers on {}; stop it or pass --http-addr",
                    config.http_addr
                ),
            ))
        }
        Err(CallError::Transport(_)) => {
            return Err(Failure::new(
                1,
                format!(
                    "{} is already in use by something that is not a weft router; stop it or pass --http-addr",
                    config.http_addr
                ),
            ))
        }
    }
    let api = Api::new(config.http_addr);

    let log_path = dirs.log_file();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Failure::new(1, format!("cannot open {}: {e}", log_path.display())))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("cannot find the weft executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("router")
        .arg("--data-dir")
        .arg(&dirs.data)
        .arg("--run-dir")
        .arg(&dirs.run)
        .arg("--http-addr")
        .arg(config.http_addr.to_string())
        .arg("--log-level")
        .arg(&args.router.log_level);
    if let Some(name) = &config.name {
        cmd.arg("--name").arg(name.to_string());
    }
    if let Some(nick) = &config.nickname {
        cmd.arg("--nickname").arg(nick);
    }
    let r = &args.router;
    cmd.arg("--port").arg(r.port.to_string());
    if let Some(host) = r.host {
        cmd.arg("--host").arg(host.to_string());
    }
    cmd.arg("--conn-limit").arg(r.conn_limit.to_string());
    if !r.trusted_subnets.is_empty() {
        cmd.arg("--trusted-subnets").arg(&r.trusted_subnets);
    }
    if r.no_discovery {
        cmd.arg("--no-discovery");
    }
    if r.resume {
        cmd.arg("--resume");
    }
    if r.no_weft_extensions {
        cmd.arg("--no-weft-extensions");
    }
    cmd.arg("--ipalloc-range").arg(&r.ipalloc_range);
    if let Some(subnet) = &r.ipalloc_default_subnet {
        cmd.arg("--ipalloc-default-subnet").arg(subnet);
    }
    cmd.arg("--ipalloc-init").arg(&r.ipalloc_init);
    if let Some(after) = &r.ipalloc_reclaim_after {
        cmd.arg("--ipalloc-reclaim-after").arg(after);
    }
    // The password travels in the environment, never on a command line others can read.
    match &r.password {
        Some(p) => cmd.env("WEAVE_PASSWORD", p),
        None => cmd.env_remove("WEAVE_PASSWORD"),
    };
    if !r.peers.is_empty() {
        cmd.arg("--").args(&r.peers);
    }
    let log_err = log
        .try_clone()
        .map_err(|e| Failure::new(1, format!("cannot open {}: {e}", log_path.display())))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // SAFETY: setsid is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(1, format!("cannot start the router: {e}")))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            let why = last_error_line(&log_path, log_start)
                .unwrap_or_else(|| format!("see {}", log_path.display()));
            let code = if exit.code() == Some(3) { 3 } else { 1 };
            return Err(Failure::new(
                code,
                format!("the weft router exited during start-up ({exit}): {why}"),
            ));
        }
        match api.get("/report", Some("application/json")) {
            Ok(body) => {
                let name = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|r| r["Router"]["Name"].as_str().map(str::to_owned))
                    .ok_or_else(|| Failure::new(1, "the router's /report has no Router.Name"))?;
                println!("{name}");
                return Ok(());
            }
            Err(CallError::NotRunning) => {}
            Err(e) => return Err(api_failure(&api, e)),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::new(
                1,
                format!(
                    "the weft router did not answer on {} within {}s; see {}",
                    config.http_addr,
                    START_TIMEOUT.as_secs(),
                    log_path.display()
                ),
            ));
        }
        sleep(POLL);
    }
}

/// The last line the router logged since `from`, without the log's timestamp and level.
fn last_error_line(log: &Path, from: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let line = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .last()?;
    // tracing's format is "<time> <LEVEL> <target>: <message>"; keep the message.
    Some(match line.split_once(": ") {
        Some((head, msg)) if head.contains("ERROR") || head.contains("WARN") => msg.to_owned(),
        _ => line,
    })
}

pub fn stop(dirs: &StateDirs) -> Outcome {
    stop_router(dirs, true)
}

/// Stops the router; `say_not_running` prints "weft is not running." when there is none
/// (`weft stop` does, `weft reset` is silent as Weave's).
pub fn stop_router(dirs: &StateDirs, say_not_running: bool) -> Outcome {
    let pid = match dirs
        .liveness()
        .map_err(|e| Failure::new(1, e.to_string()))?
    {
        Liveness::Running { pid } if pid > 0 => pid,
        Liveness::Running { .. } => {
            return Err(Failure::new(
                1,
                "a weft router is starting up; try 'weft stop' again in a moment",
            ))
        }
        Liveness::Exiting { pid } => {
            // Killed already and on its way out: wait for it, then it is stopped.
            return match dirs.wait_for_exiting(STOP_TIMEOUT, |_| {}) {
                Ok(Liveness::Exiting { .. }) => Err(Failure::new(
                    1,
                    format!("weft router (pid {pid}) is still exiting"),
                )),
                _ => Ok(()),
            };
        }
        Liveness::NotRunning | Liveness::Stale => {
            // As `weave stop`: say so, but succeed, so scripts can always stop.
            if say_not_running {
                eprintln!("weft is not running.");
            }
            return Ok(());
        }
    };
    let target = Pid::from_raw(pid as i32);
    kill(target, Signal::SIGTERM)
        .map_err(|e| Failure::new(1, format!("cannot signal the router (pid {pid}): {e}")))?;
    if wait_stopped(dirs, STOP_TIMEOUT) {
        return Ok(());
    }
    eprintln!(
        "weft router (pid {pid}) did not stop within {}s; killing it",
        STOP_TIMEOUT.as_secs()
    );
    let _ = kill(target, Signal::SIGKILL);
    if wait_stopped(dirs, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(Failure::new(
            1,
            format!("weft router (pid {pid}) is still running"),
        ))
    }
}

fn wait_stopped(dirs: &StateDirs, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !matches!(
            dirs.liveness(),
            Ok(Liveness::Running { .. } | Liveness::Exiting { .. })
        ) {
            return true;
        }
        sleep(POLL);
    }
    false
}

/// Weave's `netcheck`: the IPAM range must not overlap a route of the host (other than
/// the default route and routes through the weave bridge), or containers' addresses would
/// shadow or be shadowed by the host's networks.
fn check_range_routes(range: weft_ipam::addr::Cidr) -> Outcome {
    let mut h = weft_kernel::Handle::new()
        .map_err(|e| Failure::new(1, format!("cannot read the host's routes: {e}")))?;
    let routes = h
        .list_routes(false)
        .map_err(|e| Failure::new(1, format!("cannot read the host's routes: {e}")))?;
    let (start, end) = (
        u64::from(range.network()),
        u64::from(range.network()) + range.size(),
    );
    for r in routes {
        if r.dst.prefix() == 0 || r.dev.as_deref() == Some(crate::attach::BRIDGE) {
            continue;
        }
        let std::net::IpAddr::V4(net) = r.dst.network() else {
            continue;
        };
        let rs = u32::from(net) as u64;
        let re = rs + (1u64 << (32 - u32::from(r.dst.prefix())));
        if rs < end && start < re {
            return Err(Failure::new(
                1,
                format!(
                    "--ipalloc-range {range} overlaps with the existing route {} on this host{}; pick another range (and set it on all hosts), or --ipalloc-range \"\" to run without IPAM",
                    r.dst,
                    r.dev.map(|d| format!(" (dev {d})")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}
