//! Helpers for end-to-end tests: real `weft` processes in weft-lab hosts. Tests need root.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Output};
use std::time::Duration;

use weft_lab::{wait_until, LabGuard, LabSpec, Topology, DEFAULT_STATE_ROOT};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A fresh lab for one test, removed when the guard drops (also on panic).
pub fn lab(prefix: &str, hosts: usize, topology: Topology) -> LabGuard {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests create network namespaces and must run as root"
    );
    LabGuard::new(LabSpec {
        prefix: prefix.to_owned(),
        hosts,
        topology,
        mtu: 1500,
        state_root: PathBuf::from(DEFAULT_STATE_ROOT),
    })
    .unwrap_or_else(|e| panic!("cannot build lab {prefix}: {e}"))
}

/// The result of one command, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Assert success and return stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self.stdout
    }
}

/// Run `weft <args>` on host `i` of `lab`.
pub fn weft(lab: &LabGuard, i: usize, args: &[&str]) -> Run {
    let mut argv = vec![WEFT];
    argv.extend_from_slice(args);
    lab.host_command(i, &argv)
        .output()
        .expect("run ip netns exec")
        .into()
}

/// Run any command on host `i` of `lab`.
pub fn on_host(lab: &LabGuard, i: usize, argv: &[&str]) -> Run {
    lab.host_command(i, argv)
        .output()
        .expect("run ip netns exec")
        .into()
}

/// The pid in host `i`'s pid file, if any.
pub fn router_pid(lab: &LabGuard, i: usize) -> Option<i32> {
    std::fs::read_to_string(lab.spec.host_run_dir(i).join("weft.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Run `argv` in container `c<i>` of host `i` (the tests' naming).
pub fn in_container(lab: &LabGuard, i: usize, argv: &[&str]) -> Run {
    lab.container_command(i, &format!("c{i}"), argv)
        .expect("container name")
        .output()
        .expect("run ip netns exec")
        .into()
}

/// Does one ping from container `c<i>` reach `to`?
pub fn ping_ok(lab: &LabGuard, i: usize, to: &str) -> bool {
    in_container(lab, i, &["ping", "-c", "1", "-W", "1", to]).code == 0
}

/// Wait (20 s at most) until container `c<i>` reaches `to`.
pub fn wait_ping(lab: &LabGuard, i: usize, to: &str) {
    wait_until(
        &format!("c{i} to reach {to}"),
        Duration::from_secs(20),
        || {
            if ping_ok(lab, i, to) {
                Ok(())
            } else {
                Err("no reply".into())
            }
        },
    )
    .unwrap();
}

/// Host `i`'s `/metrics`, fetched inside its namespace.
pub fn metrics(lab: &LabGuard, i: usize) -> String {
    on_host(
        lab,
        i,
        &[
            "python3",
            "-c",
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:6784/metrics', timeout=5).read().decode())",
        ],
    )
    .ok()
}

/// The value of the metric line starting with `series` (0 when absent).
pub fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait for a line "ready" from a spawned helper; the rest of its output follows.
pub fn ready(child: &mut Child) -> BufReader<ChildStdout> {
    let mut r = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    r.read_line(&mut line).expect("read the helper's output");
    assert_eq!(line.trim(), "ready");
    r
}

/// TCP sink on port 5000 of argv[1]: prints "ready", then the bytes and sha256 it received.
pub const SINK: &str = r#"
import hashlib, socket, sys
s = socket.socket(); s.bind((sys.argv[1], 5000)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"#;

/// Send `mib` MiB with [`SOURCE`] from container `c<from>` to `to` (a [`SINK`] there),
/// bounded to 120 s; prints what was sent as SOURCE does.
pub fn send_mib(lab: &LabGuard, from: usize, to: &str, mib: u64) -> Run {
    let mib = mib.to_string();
    in_container(
        lab,
        from,
        &["timeout", "120", "python3", "-c", SOURCE, to, &mib],
    )
}

/// TCP source to port 5000 of argv[1]: argv[2] MiB of seeded random bytes; prints the
/// bytes and sha256 it sent.
pub const SOURCE: &str = r#"
import hashlib, random, socket, sys
r = random.Random(7); h = hashlib.sha256(); s = socket.create_connection((sys.argv[1], 5000), timeout=30)
total = int(sys.argv[2]) * 1024 * 1024; left = total
while left:
    b = r.randbytes(min(left, 1 << 20)); h.update(b); s.sendall(b); left -= len(b)
s.close(); print(total, h.hexdigest())
"#;
