//! End-to-end: a real Docker container, named by its Docker name or id, attached with
//! `weft attach` and talking across the mesh to a lab container on another host.
//!
//! A private `dockerd` runs inside lab host h1's network namespace with everything under a
//! temporary directory (data, exec root, socket, pid file, config) and no networking of its
//! own (`--bridge=none`, no iptables, no ip_forward), so the root namespace and any system
//! Docker are left alone. The image is imported from a tarball holding a static busybox; no
//! image is pulled. The test is skipped only when `dockerd` or `busybox` is not installed
//! (Debian packages `docker.io busybox-static`).

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{lab, on_host, weft, Run, WEFT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weft_lab::{wait_until, LabGuard, Topology};

const IMAGE: &str = "weft-e2e-busybox:latest";
/// The Docker container attached on h1.
const DOCKER_C: &str = "weftdkr-c1";

/// `name` in `PATH` or the usual system directories (dockerd lives in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether an ELF64 little-endian executable asks for a dynamic loader (has PT_INTERP).
/// Other formats are reported as static and left to fail in the container if they are not.
fn is_dynamic_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|k| {
        let at = phoff + k * phentsize;
        bytes.get(at..at + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

/// Run `cmd`, killed after `secs` seconds (coreutils `timeout`), so no step can hang the test.
fn bounded(secs: u32, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &secs.to_string()])
        .arg(program)
        .args(args);
    cmd
}

/// A private dockerd inside a lab host's network namespace, stopped with everything it
/// started (containers, containerd, shims) and its directory removed on drop.
struct Dockerd {
    daemon: Child,
    cli: PathBuf,
    dir: Option<tempfile::TempDir>,
    /// Where the daemon keeps its files, also used to recognise its helper processes.
    root: PathBuf,
    /// The cgroup parent of this daemon's containers, unique to this run.
    cgroup_parent: String,
}

impl Dockerd {
    /// Start dockerd in `netns` and wait (at most 60 s) until its API answers.
    fn start(dockerd: &Path, netns: &str) -> Dockerd {
        let cli = dockerd
            .parent()
            .map(|d| d.join("docker"))
            .filter(|p| p.is_file())
            .or_else(|| find_program("docker"))
            .expect(
                "dockerd is installed but the docker command is not (Debian package docker.io)",
            );
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-docker.")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path().to_owned();
        let cgroup_parent = format!("weft-e2e-docker-{}", std::process::id());
        // dockerd reads /etc/docker/daemon.json unless told otherwise; give it an empty
        // configuration of its own. Docker 20.10 also writes a trust key to /etc/docker
        // unless its path is set, and newer versions reject that setting.
        let mut config = serde_json::Map::new();
        if docker_major(dockerd).is_some_and(|m| m < 23) {
            config.insert(
                "deprecated-key-path".into(),
                root.join("key.json").display().to_string().into(),
            );
        }
        fs::write(
            root.join("daemon.json"),
            serde_json::Value::Object(config).to_string(),
        )
        .unwrap();
        let log = File::create(root.join("dockerd.log")).unwrap();
        // `ip netns exec` would remount /sys and hide the cgroup hierarchy dockerd needs, so
        // only the network namespace is entered; a private mount namespace keeps Docker's
        // overlay mounts out of the host's and lets them vanish with the daemon.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{netns}"))
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .arg(dockerd)
            .arg(format!(
                "--config-file={}",
                root.join("daemon.json").display()
            ))
            .arg(format!("--data-root={}", root.join("data").display()))
            .arg(format!("--exec-root={}", root.join("exec").display()))
            .arg(format!("--pidfile={}", root.join("docker.pid").display()))
            .arg(format!(
                "--host=unix://{}",
                root.join("docker.sock").display()
            ))
            .arg(format!("--cgroup-parent={cgroup_parent}"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let daemon = cmd.spawn().expect("run nsenter");
        let mut d = Dockerd {
            daemon,
            cli,
            dir: Some(dir),
            root,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = d.daemon.try_wait() {
                panic!("dockerd exited ({status}) before answering:\n{}", d.log());
            }
            let v = d.cli(10, &["version", "--format", "{{.Server.Version}}"]);
            if v.code == 0 && !v.stdout.trim().is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer within 60 s (last: {v:?}); its log:\n{}",
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.root.join("docker.sock").display())
    }

    /// Run the docker command against this daemon, killed after `secs` seconds.
    fn cli(&self, secs: u32, args: &[&str]) -> Run {
        let host = self.host();
        let mut argv = vec!["-H", &host];
        argv.extend_from_slice(args);
        bounded(secs, &self.cli, &argv)
            .env("DOCKER_CONFIG", self.root.join("cli"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
            .into()
    }

    fn log(&self) -> String {
        let text = fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Processes this daemon left: helpers naming its directory, and containers in its
    /// cgroup parent.
    fn leftovers(&self) -> Vec<i32> {
        let root = self.root.display().to_string();
        let cgroup = format!("/{}/", self.cgroup_parent);
        let me = std::process::id() as i32;
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&root) || cgroups.contains(&cgroup)
            })
            .collect()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first, through the daemon, so they are unmounted properly.
        let ids = self.cli(30, &["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.cli(60, &args);
        }
        // dockerd stops its containerd when it gets SIGTERM.
        let pid = Pid::from_raw(self.daemon.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if matches!(self.daemon.try_wait(), Ok(None)) {
            eprintln!("dockerd did not stop within 20 s; killing it");
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        // Whatever survived (after a kill, or a crash of the daemon) is killed outright.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("processes of the test's dockerd survive: {left:?}");
                break;
            }
            for p in left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The (now empty) cgroups made for the containers, in every hierarchy.
        if let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") {
            let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(&self.cgroup_parent)];
            dirs.extend(
                hierarchies
                    .flatten()
                    .map(|h| h.path().join(&self.cgroup_parent)),
            );
            for d in dirs.iter().filter(|d| d.is_dir()) {
                if let Ok(children) = fs::read_dir(d) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = fs::remove_dir(c.path());
                    }
                }
                let _ = fs::remove_dir(d);
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                eprintln!("removing {}: {e}", self.root.display());
            }
        }
    }
}

/// The major version `dockerd --version` reports ("Docker version 20.10.24+dfsg1, ...").
fn docker_major(dockerd: &Path) -> Option<u32> {
    let out = Command::new(dockerd).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.split_whitespace().nth(2)?;
    version.split('.').next()?.parse().ok()
}

/// `weft <args>` on host `i`, with `DOCKER_HOST` pointing at the test's daemon.
fn weft_docker(lab: &LabGuard, i: usize, docker: &Dockerd, args: &[&str]) -> Run {
    let mut argv = vec![WEFT];
    argv.extend_from_slice(args);
    lab.host_command(i, &argv)
        .env("DOCKER_HOST", docker.host())
        .output()
        .expect("run ip netns exec")
        .into()
}

/// Names of the network interfaces in a namespace (`ip -o link` output of host `i`, or of
/// the root namespace when `i` is `None`).
fn link_names(lab: &LabGuard, i: Option<usize>) -> Vec<String> {
    let out = match i {
        Some(i) => on_host(lab, i, &["ip", "-o", "link", "show"]).ok(),
        None => root_ns(&["-o", "link", "show"]),
    };
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

fn host_veths(lab: &LabGuard) -> Vec<String> {
    link_names(lab, Some(1))
        .into_iter()
        .filter(|n| n.starts_with("vethwepl"))
        .collect()
}

fn root_ns(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Addresses, routes and interface names of the root namespace, to check nothing changed.
fn root_ns_state(lab: &LabGuard) -> String {
    format!(
        "{}{}{}{:?}",
        root_ns(&["-4", "addr", "show"]),
        root_ns(&["-4", "route", "show"]),
        root_ns(&["-6", "route", "show"]),
        link_names(lab, None)
    )
}

/// A rootfs tarball with a static busybox and the applets the test uses.
fn busybox_rootfs(busybox: &Path, dir: &Path) -> PathBuf {
    let bytes = fs::read(busybox).unwrap();
    assert!(
        !is_dynamic_elf(&bytes),
        "{} is dynamically linked and cannot run alone in an image; install busybox-static",
        busybox.display()
    );
    let bin = dir.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("busybox"), &bytes).unwrap();
    fs::set_permissions(
        bin.join("busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for applet in ["sh", "sleep", "ping", "ip", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    let rootfs = dir.join("rootfs");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {out:?}");
    tar
}

fn wait_ping(what: &str, mut ping: impl FnMut() -> Run) {
    wait_until(what, Duration::from_secs(20), || {
        let r = ping();
        if r.code == 0 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    })
    .unwrap();
}

#[test]
fn docker_container_attached_by_name_talks_across_the_mesh() {
    let (Some(dockerd), Some(busybox)) = (find_program("dockerd"), find_program("busybox")) else {
        eprintln!(
            "skipped: this test needs dockerd and a static busybox (Debian packages docker.io busybox-static)"
        );
        return;
    };
    let lab = lab("e2edkr", 2, Topology::Full);
    let root_before = root_ns_state(&lab);

    // The mesh: h1 and h2, a lab container on h2 with 10.32.0.2.
    weft(&lab, 1, &["launch"]).ok();
    weft(&lab, 2, &["launch", "198.18.0.1"]).ok();
    let c2 = lab.add_container(2, "c2").unwrap();
    weft(&lab, 2, &["attach", "10.32.0.2/12", &format!("netns:{c2}")]).ok();

    // Declared after the lab, so it is dropped (and cleaned up) before the lab goes.
    let docker = Dockerd::start(&dockerd, &lab.spec.host_ns(1));
    let scratch = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs(&busybox, scratch.path());
    docker
        .cli(120, &["import", tar.to_str().unwrap(), IMAGE])
        .ok();
    let id = docker
        .cli(
            60,
            &[
                "run",
                "-d",
                "--name",
                DOCKER_C,
                "--network",
                "none",
                IMAGE,
                "/bin/sleep",
                "600",
            ],
        )
        .ok()
        .trim()
        .to_owned();
    assert!(id.len() >= 12, "docker run printed no id: {id:?}");
    let short_id = &id[..12];
    // dockerd made no bridge and touched no address in its namespace or the root one.
    let h1_links = link_names(&lab, Some(1));
    assert!(!h1_links.iter().any(|n| n == "docker0"), "{h1_links:?}");

    // Failures first, while no container is attached: nothing may be left behind.
    let missing = weft_docker(
        &lab,
        1,
        &docker,
        &["attach", "10.32.0.9/12", "weftdkr-nosuch"],
    );
    assert_ne!(missing.code, 0, "{missing:?}");
    assert!(
        missing.stderr.contains("No such container: weftdkr-nosuch"),
        "{missing:?}"
    );
    docker
        .cli(
            60,
            &[
                "create",
                "--name",
                "weftdkr-idle",
                "--network",
                "none",
                IMAGE,
                "/bin/sleep",
                "600",
            ],
        )
        .ok();
    let idle = weft_docker(
        &lab,
        1,
        &docker,
        &["attach", "10.32.0.9/12", "weftdkr-idle"],
    );
    assert_ne!(idle.code, 0, "{idle:?}");
    assert!(
        idle.stderr.contains("weftdkr-idle is not running"),
        "{idle:?}"
    );
    assert_eq!(host_veths(&lab), Vec::<String>::new());

    // Attach the running container by its Docker name.
    let attached = weft_docker(&lab, 1, &docker, &["attach", "10.32.0.1/12", DOCKER_C]).ok();
    assert_eq!(attached.trim(), "10.32.0.1");
    assert_eq!(host_veths(&lab).len(), 1, "one host veth for the container");
    let inside = docker
        .cli(
            30,
            &[
                "exec",
                DOCKER_C,
                "sh",
                "-c",
                "cat /sys/class/net/ethwe/address /sys/class/net/ethwe/mtu; ip -o -4 addr show dev ethwe",
            ],
        )
        .ok();
    let mut lines = inside.lines();
    let mac = lines.next().unwrap_or_default().trim().to_owned();
    assert_eq!(
        lines.next(),
        Some("65449"),
        "ethwe has the bridge MTU: {inside}"
    );
    assert!(inside.contains("inet 10.32.0.1/12"), "{inside}");

    // Across the mesh, both ways.
    wait_until("h2 to reach h1", Duration::from_secs(20), || {
        let r = weft(&lab, 2, &["status", "connections"]);
        if r.stdout.contains("198.18.0.1") && r.stdout.contains("established") {
            Ok(())
        } else {
            Err(r.stdout)
        }
    })
    .unwrap();
    let docker_ping = |count: &str| {
        docker.cli(
            30,
            &[
                "exec",
                DOCKER_C,
                "ping",
                "-c",
                count,
                "-W",
                "2",
                "10.32.0.2",
            ],
        )
    };
    let lab_ping = |count: &str| -> Run {
        lab.container_command(2, "c2", &["ping", "-c", count, "-W", "2", "10.32.0.1"])
            .unwrap()
            .output()
            .unwrap()
            .into()
    };
    wait_ping("the Docker container to reach 10.32.0.2", || {
        docker_ping("1")
    });
    wait_ping("c2 to reach the Docker container", || lab_ping("1"));
    let d = docker_ping("3");
    assert!(
        d.code == 0 && d.stdout.contains("3 packets received"),
        "{d:?}"
    );
    let l = lab_ping("3");
    assert!(l.code == 0 && l.stdout.contains(" 0% packet loss"), "{l:?}");

    // ps names the container as given, by name or by id, with ethwe's MAC and address.
    for label in [DOCKER_C, short_id] {
        let ps = weft_docker(&lab, 1, &docker, &["ps", label]).ok();
        assert_eq!(ps, format!("{label} {mac} 10.32.0.1/12\n"));
    }
    // With no arguments, as Weave: the bridge, then the running Docker containers by id.
    let all = weft_docker(&lab, 1, &docker, &["ps"]).ok();
    assert!(all.starts_with("weave:expose "), "{all}");
    assert!(
        all.lines()
            .any(|l| l == format!("{short_id} {mac} 10.32.0.1/12")),
        "{all}"
    );

    // Detach by name: the address, ethwe and the host veth go, and traffic stops.
    let detached = weft_docker(&lab, 1, &docker, &["detach", DOCKER_C]).ok();
    assert_eq!(detached.trim(), "10.32.0.1");
    let gone = docker.cli(30, &["exec", DOCKER_C, "ip", "link", "show", "ethwe"]);
    assert_ne!(gone.code, 0, "ethwe still exists: {gone:?}");
    assert_eq!(host_veths(&lab), Vec::<String>::new());
    assert_eq!(weft_docker(&lab, 1, &docker, &["ps", DOCKER_C]).ok(), "");
    let after = lab_ping("1");
    assert_ne!(after.code, 0, "detached container still answers: {after:?}");

    weft(&lab, 1, &["stop"]).ok();
    weft(&lab, 2, &["stop"]).ok();
    drop(docker);
    assert_eq!(
        root_ns_state(&lab),
        root_before,
        "the root network namespace changed"
    );
}
