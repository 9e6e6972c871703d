//! Running `ip` and `nft`. The lab is test tooling, so it drives the system through the same
//! commands a person would type, which keeps every step visible and debuggable.

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("cannot run {program}: {source}; is it installed (Debian package {package})?")]
    Spawn {
        program: String,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        "unshare" => "util-linux",
        _ => "iproute2",
    }
}

/// Run a command, feeding `input` on stdin; its stdout on success.
pub fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, SysError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |source| SysError::Spawn {
        program: program.to_owned(),
        package: package_of(program),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SysError::Failed {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

pub fn ip(args: &[&str]) -> Result<String, SysError> {
    run("ip", args, None)
}

/// Apply an nftables script inside a namespace.
pub fn nft(ns: &str, script: &str) -> Result<(), SysError> {
    run("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(script)).map(drop)
}

/// Names of all named network namespaces.
pub fn netns_list() -> Result<Vec<String>, SysError> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Processes whose network namespace is `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
