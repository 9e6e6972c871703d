//! End-to-end: `weft launch`, `status`, `stop`, `router` in simulated hosts.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use common::{lab, on_host, router_pid, weft, WEFT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weft_lab::{wait_until, Topology};

#[test]
fn three_hosts_launch_status_stop() {
    let lab = lab("e2ethree", 3, Topology::Full);
    let mut names = HashSet::new();
    for i in 1..=3 {
        let out = weft(&lab, i, &["launch"]).ok();
        let name = out.trim().to_owned();
        assert!(
            name.parse::<weft_mesh::PeerName>().is_ok(),
            "launch printed {out:?}"
        );
        assert!(names.insert(name), "peer names must differ between hosts");
    }
    for i in 1..=3 {
        let status = weft(&lab, i, &["status"]).ok();
        assert!(status.contains("Service: router"), "{status}");
        assert!(
            status.contains(&format!("({})", format_args!("h{i}"))),
            "nickname is the host name: {status}"
        );
        assert!(
            status.starts_with('\n') && status.ends_with("\n\n"),
            "blank lines around, as weave: {status:?}"
        );
    }
    // A second launch on a running host: exit 3.
    let again = weft(&lab, 2, &["launch"]);
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stderr.contains("already running"), "{again:?}");
    for i in 1..=3 {
        weft(&lab, i, &["stop"]).ok();
        let st = weft(&lab, i, &["status"]);
        assert_eq!(st.code, 1, "{st:?}");
        assert_eq!(st.stderr.trim(), "weft is not running");
        assert!(
            !lab.spec.host_run_dir(i).join("weft.pid").exists(),
            "stop removes the pid file"
        );
    }
    // Stopping what is not running says so and succeeds, as `weave stop`.
    let st = weft(&lab, 1, &["stop"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(st.stderr.contains("not running"));
}

#[test]
fn kill_9_then_launch_keeps_identity() {
    let lab = lab("e2ekill", 1, Topology::Full);
    let name = weft(&lab, 1, &["launch"]).ok();
    let pid = router_pid(&lab, 1).expect("pid file");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    wait_until(
        "the killed router to be gone",
        Duration::from_secs(5),
        || match weft(&lab, 1, &["status"]).code {
            1 => Ok(()),
            c => Err(format!("status exit {c}")),
        },
    )
    .unwrap();
    assert!(
        lab.spec.host_run_dir(1).join("weft.pid").exists(),
        "a stale pid file is left behind"
    );
    let again = weft(&lab, 1, &["launch"]).ok();
    assert_eq!(
        again, name,
        "the peer name is persisted in the data directory"
    );
    assert_ne!(router_pid(&lab, 1), Some(pid));
    weft(&lab, 1, &["stop"]).ok();
}

#[test]
fn stale_pid_file_of_unrelated_process_is_replaced() {
    let lab = lab("e2estale", 1, Topology::Full);
    let run = lab.spec.host_run_dir(1);
    std::fs::create_dir_all(&run).unwrap();
    // pid 1 exists, but holds no lock on the file: the file is stale.
    std::fs::write(run.join("weft.pid"), "1\n").unwrap();
    weft(&lab, 1, &["launch"]).ok();
    let pid = router_pid(&lab, 1).unwrap();
    assert_ne!(pid, 1);
    weft(&lab, 1, &["stop"]).ok();
}

#[test]
fn router_in_foreground_stops_cleanly_on_sigterm() {
    let lab = lab("e2efg", 1, Topology::Full);
    let child = lab
        .host_command(1, &[WEFT, "router", "--nickname", "fg"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the foreground router to answer",
        Duration::from_secs(20),
        || {
            let r = weft(&lab, 1, &["status"]);
            if r.code == 0 {
                Ok(r.stdout)
            } else {
                Err(r.stderr)
            }
        },
    )
    .unwrap();
    let pid = router_pid(&lab, 1).expect("pid file");
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "router exit {:?}: {log}", out.status);
    assert!(
        log.contains("weft router started") && log.contains("SIGTERM"),
        "{log}"
    );
    assert!(!lab.spec.host_run_dir(1).join("weft.pid").exists());
}

#[test]
fn bad_input_is_refused_clearly() {
    let lab = lab("e2ebad", 1, Topology::Full);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["frobnicate"], 1, "unrecognized subcommand"),
        (&["launch", "--frobnicate"], 1, "unexpected argument"),
        (&["launch", "--no-dns"], 1, "does not implement yet"),
        (&["launch", "not/a host"], 1, "invalid peer"),
        (
            &["launch", "--trusted-subnets", "10.0.0.0/33"],
            1,
            "--trusted-subnets",
        ),
        (&["launch", "--resume", "198.18.0.2"], 1, "--resume"),
        (&["launch", "--name", "zz:zz"], 1, "--name"),
        (
            &["expose", "10.32.0.1/12", "-h", "h.weave.local"],
            1,
            "not implemented",
        ),
        (&["expose", "net:default"], 1, "router is not running"),
        (
            &["attach", "net:default", "netns:x"],
            1,
            "no such network namespace",
        ),
        (
            &["attach", "net:10.32.1.1/24", "netns:x"],
            1,
            "bits after network prefix are not all zero",
        ),
        (&["attach", "net:10.32.1.0/31", "netns:x"], 1, "at least 4"),
        (
            &["launch", "--ipalloc-range", "10.32.0.1/12"],
            1,
            "bits after network prefix are not all zero",
        ),
        (
            &["launch", "--ipalloc-range", "10.32.0.0/31"],
            1,
            "too small",
        ),
        (&["launch", "--ipalloc-range", "10.32.0.0"], 1, "not a CIDR"),
        (
            &["launch", "--ipalloc-default-subnet", "10.0.0.0/16"],
            1,
            "not inside --ipalloc-range",
        ),
        (
            &["launch", "--ipalloc-init", "consensus=x"],
            1,
            "--ipalloc-init",
        ),
        (
            &["launch", "--ipalloc-init", "seed=zz"],
            1,
            "not a peer name",
        ),
        (
            &["launch", "--ipalloc-init", "elect"],
            1,
            "expected consensus",
        ),
        (
            &["launch", "--ipalloc-range", "198.18.0.0/16"],
            1,
            "overlaps with the existing route 198.18.0.0/24",
        ),
        (&["attach", "10.32.0.1", "netns:x"], 1, "invalid address"),
        (
            &["attach", "10.32.0.1/12", "netns:nonexistent"],
            1,
            "no such network namespace",
        ),
        (
            &["attach", "10.32.0.1/12", "pid:999999999"],
            1,
            "no such process",
        ),
        (&["launch-router"], 1, "removed"),
        (
            &["launch", "--data-dir", "/proc/weft"],
            1,
            "cannot use data directory",
        ),
        (
            &["--http-addr", "nonsense", "status"],
            1,
            "invalid HTTP API address",
        ),
    ];
    for (args, code, needle) in cases {
        let r = weft(&lab, 1, args);
        assert_eq!(r.code, *code, "weft {args:?}: {r:?}");
        assert!(
            r.stderr.contains(needle),
            "weft {args:?}: stderr {:?} lacks {needle:?}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count().min(1), 1);
    }
    assert_eq!(
        router_pid(&lab, 1),
        None,
        "no refused launch may leave a router behind"
    );

    // Not root.
    let r = on_host(
        &lab,
        1,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            WEFT,
            "launch",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("must be run as root"), "{r:?}");

    // The API port is taken by something that is not a weft router.
    let mut holder = lab
        .host_command(1, &["python3", "-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',6784)); s.listen(1); print('ready', flush=True); time.sleep(60)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let r = weft(&lab, 1, &["launch"]);
    let fg = weft(&lab, 1, &["router"]);
    holder.kill().ok();
    holder.wait().ok();
    assert_eq!(fg.code, 1, "{fg:?}");
    assert!(fg.stderr.contains("address already in use"), "{fg:?}");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("already in use by something that is not a weft router"),
        "{r:?}"
    );
    assert_eq!(router_pid(&lab, 1), None);

    // Another router (other state directories) already answers on the API address.
    weft(&lab, 1, &["launch"]).ok();
    let r = weft(
        &lab,
        1,
        &[
            "--run-dir",
            "/run/weft-lab/e2ebad/other-run",
            "--data-dir",
            "/run/weft-lab/e2ebad/other-data",
            "launch",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("already answers"), "{r:?}");
    // Its own API address is not enough: the mesh port is taken too.
    let other = [
        "--run-dir",
        "/run/weft-lab/e2ebad/other-run",
        "--data-dir",
        "/run/weft-lab/e2ebad/other-data",
        "--http-addr",
        "127.0.0.1:6790",
    ];
    let r = weft(&lab, 1, &[&other[..], &["launch"]].concat());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("for the mesh (TCP and UDP): address already in use"),
        "{r:?}"
    );
    // With its own mesh port too it still cannot run: one bridge, one router per host.
    let r = weft(
        &lab,
        1,
        &[&other[..], &["launch", "--port", "6791"]].concat(),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("another weft router running in this network namespace"),
        "{r:?}"
    );
    weft(&lab, 1, &["stop"]).ok();
}

#[test]
fn version_and_help() {
    let lab = lab("e2ever", 1, Topology::Full);
    let v = weft(&lab, 1, &["version"]).ok();
    assert_eq!(v.trim(), format!("weft {}", env!("CARGO_PKG_VERSION")));
    weft(&lab, 1, &["launch"]).ok();
    let v = weft(&lab, 1, &["version"]).ok();
    assert!(v.contains("weft router"), "{v}");
    weft(&lab, 1, &["stop"]).ok();
    let help = weft(&lab, 1, &["--help"]).ok();
    for cmd in ["launch", "router", "stop", "status", "version"] {
        assert!(help.contains(cmd), "help lacks {cmd}: {help}");
    }
}

#[test]
fn router_notifies_systemd_when_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let lab = lab("e2esd", 1, Topology::Full);
    let sock_path = lab.spec.state_dir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = lab
        .host_command(1, &[WEFT, "router"])
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 from the router");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means the API answers.
    weft(&lab, 1, &["status"]).ok();
    kill(Pid::from_raw(router_pid(&lab, 1).unwrap()), Signal::SIGTERM).unwrap();
    let n = sock.recv(&mut buf).expect("STOPPING=1 from the router");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(child.wait().unwrap().success());
}
