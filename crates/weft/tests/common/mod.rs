//! Helpers for end-to-end tests: real `weft` processes in weft-lab hosts. Tests need root.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use weft_lab::{LabGuard, LabSpec, Topology, DEFAULT_STATE_ROOT};

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
