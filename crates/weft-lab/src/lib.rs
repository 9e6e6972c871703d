//! weft-lab: many simulated hosts on one machine, for weft's tests and demos.
//!
//! A lab with prefix `p` is made of network namespaces only (the root namespace is never
//! touched): `p-ul` holds the underlay bridge `br0`; each host `p-h<i>` has an interface `eth0`
//! with 198.18.0.<i>/24 whose veth peer is a port of `br0`; "containers" are plain namespaces
//! `p-h<i>-<name>`. An nftables bridge table in `p-ul` enforces the topology (full, line,
//! star) and injects faults (cut links, isolated hosts, random loss). Each host gets its own
//! weft state directories, machine-id and host name, so `weft launch` in each is an
//! independent peer. [`Lab::down`] removes everything a lab made, found by prefix, so it also
//! works after a crash; labs with different prefixes coexist.

pub mod spec;
pub mod sys;
pub mod wait;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use spec::{LabSpec, SpecError, Topology, DEFAULT_STATE_ROOT};
pub use sys::SysError;
pub use wait::wait_until;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("lab {0:?} already exists; remove it with 'weft-lab down --prefix {0}' first")]
    Exists(String),
    #[error("no lab {prefix:?} under {root}; create it with 'weft-lab up --prefix {prefix}'")]
    Missing { prefix: String, root: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where `ip netns exec` looks for per-namespace files that replace those in /etc.
const NETNS_ETC: &str = "/etc/netns";

/// A lab that exists on this machine.
#[derive(Debug, Clone)]
pub struct Lab {
    pub spec: LabSpec,
}

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownReport {
    pub namespaces: Vec<String>,
    pub processes: usize,
}

impl Lab {
    /// Build a lab. If any step fails, whatever was made is removed again.
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        spec.validate()?;
        let prefix_dash = format!("{}-", spec.prefix);
        if sys::netns_list()?
            .iter()
            .any(|n| n.starts_with(&prefix_dash))
        {
            return Err(LabError::Exists(spec.prefix.clone()));
        }
        let lab = Lab { spec };
        if let Err(e) = lab.build() {
            let _ = Lab::down(&lab.spec.prefix, &lab.spec.state_root);
            return Err(e);
        }
        Ok(lab)
    }

    /// Open a lab made earlier (by this or another process).
    pub fn open(prefix: &str, state_root: &Path) -> Result<Lab, LabError> {
        spec::validate_prefix(prefix)?;
        let path = state_root.join(prefix).join("lab.json");
        let text = fs::read_to_string(&path).map_err(|_| LabError::Missing {
            prefix: prefix.to_owned(),
            root: state_root.to_owned(),
        })?;
        let spec: LabSpec = serde_json::from_str(&text)
            .map_err(|e| LabError::Other(format!("{}: {e}", path.display())))?;
        Ok(Lab { spec })
    }

    fn build(&self) -> Result<(), LabError> {
        let s = &self.spec;
        let mtu = s.mtu.to_string();
        let ul = s.underlay_ns();
        let dir = s.state_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let spec_path = dir.join("lab.json");
        let json = serde_json::to_string_pretty(s).map_err(|e| LabError::Other(e.to_string()))?;
        fs::write(&spec_path, json).map_err(io_err(&spec_path))?;

        add_netns(&ul)?;
        sys::ip(&[
            "-n", &ul, "link", "add", "br0", "mtu", &mtu, "type", "bridge",
        ])?;
        sys::ip(&["-n", &ul, "link", "set", "br0", "up"])?;
        for i in 1..=s.hosts {
            let ns = s.host_ns(i);
            add_netns(&ns)?;
            let port = format!("h{i}");
            sys::ip(&[
                "-n", &ul, "link", "add", &port, "mtu", &mtu, "type", "veth", "peer", "name",
                "eth0", "mtu", &mtu, "netns", &ns,
            ])?;
            sys::ip(&["-n", &ul, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", s.host_addr(i));
            sys::ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            sys::ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            self.write_host_files(i)?;
        }
        sys::nft(&ul, &s.ruleset())?;
        Ok(())
    }

    /// Per-host files: state directories, and a machine-id of its own (bind-mounted over
    /// /etc/machine-id by `ip netns exec`) so each host derives its own peer name.
    fn write_host_files(&self, i: usize) -> Result<(), LabError> {
        for d in [self.spec.host_data_dir(i), self.spec.host_run_dir(i)] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let etc = Path::new(NETNS_ETC).join(self.spec.host_ns(i));
        fs::create_dir_all(&etc).map_err(io_err(&etc))?;
        let id: u128 = rand::random();
        let path = etc.join("machine-id");
        fs::write(&path, format!("{id:032x}\n")).map_err(io_err(&path))?;
        Ok(())
    }

    /// Remove every namespace, process, state directory and file of lab `prefix`. Idempotent;
    /// needs no saved state, so it also cleans up after a crash.
    pub fn down(prefix: &str, state_root: &Path) -> Result<DownReport, LabError> {
        spec::validate_prefix(prefix)?;
        let prefix_dash = format!("{prefix}-");
        let mut namespaces: Vec<String> = sys::netns_list()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix_dash))
            .collect();
        // Containers (p-hN-c) first, the underlay last.
        namespaces.sort_by_key(|n| std::cmp::Reverse(n.matches('-').count()));
        let mut pids: Vec<i32> = namespaces.iter().flat_map(|n| sys::netns_pids(n)).collect();
        pids.sort_unstable();
        pids.dedup();
        stop_processes(&pids);
        for ns in &namespaces {
            sys::ip(&["netns", "del", ns])?;
        }
        if let Ok(entries) = fs::read_dir(NETNS_ETC) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix_dash) {
                    let p = e.path();
                    fs::remove_dir_all(&p).map_err(io_err(&p))?;
                }
            }
        }
        let dir = state_root.join(prefix);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&dir)(e)),
            _ => {}
        }
        Ok(DownReport {
            namespaces,
            processes: pids.len(),
        })
    }

    /// Prefixes of the labs that exist (found by their underlay namespace).
    pub fn list() -> Result<Vec<String>, LabError> {
        Ok(sys::netns_list()?
            .into_iter()
            .filter_map(|n| n.strip_suffix("-ul").map(str::to_owned))
            .collect())
    }

    /// A command that runs `argv` on host `i` as that host's weft would see it: in the
    /// host's namespace, with its own host name, machine-id and `WEFT_*` directories.
    pub fn host_command(&self, i: usize, argv: &[impl AsRef<std::ffi::OsStr>]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.spec.host_ns(i)])
            .args([
                "unshare",
                "--uts",
                "--",
                "sh",
                "-c",
                r#"hostname "$0" && exec "$@""#,
            ])
            .arg(format!("h{i}"))
            .args(argv)
            .env("WEFT_DATA_DIR", self.spec.host_data_dir(i))
            .env("WEFT_RUN_DIR", self.spec.host_run_dir(i));
        cmd
    }

    /// Create container `name` on host `i`: a network namespace with only `lo`, up.
    pub fn add_container(&self, i: usize, name: &str) -> Result<String, LabError> {
        let ns = self.spec.container_ns(i, name)?;
        add_netns(&ns)?;
        Ok(ns)
    }

    pub fn remove_container(&self, i: usize, name: &str) -> Result<(), LabError> {
        let ns = self.spec.container_ns(i, name)?;
        stop_processes(&sys::netns_pids(&ns));
        sys::ip(&["netns", "del", &ns])?;
        Ok(())
    }

    /// A command that runs `argv` inside container `name` of host `i`.
    pub fn container_command(
        &self,
        i: usize,
        name: &str,
        argv: &[impl AsRef<std::ffi::OsStr>],
    ) -> Result<Command, LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.spec.container_ns(i, name)?])
            .args(argv);
        Ok(cmd)
    }

    fn pair_elements(&self, a: usize, b: usize) -> String {
        let (x, y) = (self.spec.host_addr(a), self.spec.host_addr(b));
        format!("{{ {x} . {y}, {y} . {x} }}")
    }

    /// Cut the underlay between hosts `a` and `b` (both directions).
    pub fn cut(&self, a: usize, b: usize) -> Result<(), LabError> {
        let elems = self.pair_elements(a, b);
        self.nft(&format!("add element bridge weftlab cut {elems}\n"))
    }

    /// Undo [`Lab::cut`]. Restoring a link that is not cut is not an error.
    pub fn restore(&self, a: usize, b: usize) -> Result<(), LabError> {
        let elems = self.pair_elements(a, b);
        // Adding first makes the delete succeed whether or not the pair was cut.
        self.nft(&format!(
            "add element bridge weftlab cut {elems}\ndelete element bridge weftlab cut {elems}\n"
        ))
    }

    /// Cut host `i` off from every other host.
    pub fn isolate(&self, i: usize) -> Result<(), LabError> {
        let a = self.spec.host_addr(i);
        self.nft(&format!("add element bridge weftlab isolated {{ {a} }}\n"))
    }

    /// Undo [`Lab::isolate`].
    pub fn rejoin(&self, i: usize) -> Result<(), LabError> {
        let a = self.spec.host_addr(i);
        self.nft(&format!(
            "add element bridge weftlab isolated {{ {a} }}\ndelete element bridge weftlab isolated {{ {a} }}\n"
        ))
    }

    /// Drop `percent`% of underlay frames: of all of them, or of those to and from one host.
    /// 0 clears the setting.
    pub fn loss(&self, percent: u8, host: Option<usize>) -> Result<(), LabError> {
        if percent > 100 {
            return Err(LabError::Other(format!(
                "loss of {percent}% is not a percentage"
            )));
        }
        let chain = match host {
            None => "loss_all".to_owned(),
            Some(i) => format!("loss_h{i}"),
        };
        self.nft(&spec::loss_script(&chain, percent))
    }

    fn nft(&self, script: &str) -> Result<(), LabError> {
        sys::nft(&self.spec.underlay_ns(), script).map_err(LabError::from)
    }
}

fn add_netns(ns: &str) -> Result<(), LabError> {
    sys::ip(&["netns", "add", ns])?;
    sys::ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// SIGTERM, a grace period, then SIGKILL for what is left.
fn stop_processes(pids: &[i32]) {
    let alive = |p: i32| kill(Pid::from_raw(p), None).is_ok();
    for &p in pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &p in pids.iter().filter(|&&p| alive(p)) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// A lab that is torn down when dropped, also when a test panics.
#[derive(Debug)]
pub struct LabGuard {
    lab: Lab,
}

impl LabGuard {
    /// Build a lab for a test, first removing any leftover of the same prefix.
    pub fn new(spec: LabSpec) -> Result<Self, LabError> {
        Lab::down(&spec.prefix, &spec.state_root)?;
        Ok(LabGuard {
            lab: Lab::up(spec)?,
        })
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.lab.spec.prefix, &self.lab.spec.state_root) {
            eprintln!("weft-lab: cleaning up lab {}: {e}", self.lab.spec.prefix);
        }
    }
}
