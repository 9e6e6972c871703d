//! The lab itself, for real: namespaces, topologies, faults and clean-up. Needs root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use weft_lab::{sys, wait_until, Lab, LabError, LabGuard, LabSpec, Topology, DEFAULT_STATE_ROOT};

fn spec(prefix: &str, hosts: usize, topology: Topology) -> LabSpec {
    assert!(
        nix::unistd::geteuid().is_root(),
        "lab tests must run as root"
    );
    LabSpec {
        prefix: prefix.into(),
        hosts,
        topology,
        mtu: 1500,
        state_root: PathBuf::from(DEFAULT_STATE_ROOT),
    }
}

/// Does one ping from host a reach host b?
fn reaches(lab: &Lab, a: usize, b: usize) -> bool {
    let dst = lab.spec.host_addr(b).to_string();
    lab.host_command(a, &["ping", "-c", "1", "-W", "1", "-q", &dst])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn namespaces_of(prefix: &str) -> Vec<String> {
    sys::netns_list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

#[test]
fn down_leaves_nothing_behind() {
    let s = spec("labdown", 3, Topology::Line);
    Lab::down(&s.prefix, &s.state_root).unwrap();
    let lab = Lab::up(s.clone()).unwrap();
    lab.add_container(2, "c1").unwrap();
    assert_eq!(
        namespaces_of("labdown").len(),
        5,
        "ul, 3 hosts, 1 container"
    );
    // Processes inside a host and a container, as routers and workloads would be.
    let mut h = lab.host_command(1, &["sleep", "300"]).spawn().unwrap();
    let mut c = lab
        .container_command(2, "c1", &["sleep", "300"])
        .unwrap()
        .spawn()
        .unwrap();
    assert!(Path::new("/etc/netns/labdown-h1/machine-id").exists());
    // `spawn` returns before `ip netns exec` has entered the namespace and exec'd `sleep`
    // (the host command's shell also forks `hostname` on the way): wait until each
    // namespace holds exactly its `sleep`, or `down` may find nothing, or one process more.
    for (ns, pid) in [("labdown-h1", h.id()), ("labdown-h2-c1", c.id())] {
        wait_until(
            &format!("{ns} to hold only its sleep"),
            Duration::from_secs(10),
            || {
                let pids = sys::netns_pids(ns);
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if pids == [pid as i32] && comm.trim() == "sleep" {
                    Ok(())
                } else {
                    Err(format!("pids {pids:?}, {pid} is {comm:?}"))
                }
            },
        )
        .unwrap();
    }

    let report = Lab::down("labdown", &s.state_root).unwrap();
    assert_eq!(report.namespaces.len(), 5);
    assert_eq!(report.processes, 2);
    assert!(h.wait().unwrap().code().is_none(), "killed by a signal");
    assert!(c.wait().unwrap().code().is_none());
    assert!(namespaces_of("labdown").is_empty());
    assert!(!Path::new("/etc/netns/labdown-h1").exists());
    assert!(!s.state_dir().exists());
    // Idempotent.
    assert_eq!(
        Lab::down("labdown", &s.state_root)
            .unwrap()
            .namespaces
            .len(),
        0
    );
}

#[test]
fn line_and_star_topologies() {
    let line = LabGuard::new(spec("labline", 3, Topology::Line)).unwrap();
    assert!(reaches(&line, 1, 2));
    assert!(reaches(&line, 2, 3));
    assert!(!reaches(&line, 1, 3), "line: h1 must not reach h3 directly");
    let star = LabGuard::new(spec("labstar", 3, Topology::Star)).unwrap();
    assert!(reaches(&star, 2, 1));
    assert!(reaches(&star, 3, 1));
    assert!(!reaches(&star, 2, 3), "star: spokes reach only the hub");
}

#[test]
fn faults_cut_isolate_loss() {
    let lab = LabGuard::new(spec("labfault", 3, Topology::Full)).unwrap();
    assert!(reaches(&lab, 1, 2) && reaches(&lab, 1, 3));
    lab.cut(1, 2).unwrap();
    assert!(!reaches(&lab, 1, 2) && !reaches(&lab, 2, 1));
    assert!(reaches(&lab, 1, 3));
    lab.restore(1, 2).unwrap();
    lab.restore(1, 2).unwrap(); // restoring twice is fine
    assert!(reaches(&lab, 1, 2));

    lab.isolate(3).unwrap();
    assert!(!reaches(&lab, 1, 3) && !reaches(&lab, 2, 3));
    assert!(reaches(&lab, 1, 2));
    lab.rejoin(3).unwrap();
    assert!(reaches(&lab, 1, 3));

    lab.loss(100, None).unwrap();
    assert!(!reaches(&lab, 1, 2));
    lab.loss(0, None).unwrap();
    assert!(reaches(&lab, 1, 2));
    lab.loss(100, Some(2)).unwrap();
    assert!(!reaches(&lab, 1, 2) && reaches(&lab, 1, 3));
    lab.loss(0, Some(2)).unwrap();
    assert!(reaches(&lab, 1, 2));

    // Partial loss: 50% of frames dropped each way; 40 pings all passing is ~1e-24 likely.
    lab.loss(50, None).unwrap();
    let out = lab
        .host_command(
            1,
            &[
                "ping",
                "-c",
                "40",
                "-i",
                "0.01",
                "-W",
                "1",
                "-q",
                "198.18.0.2",
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(" 0% packet loss"), "{text}");
    assert!(!text.contains(" 100% packet loss"), "{text}");
    assert!(lab.loss(101, None).is_err());
}

#[test]
fn host_environment_and_mtu() {
    let mut s = spec("labenv", 2, Topology::Full);
    s.mtu = 1400;
    let lab = LabGuard::new(s).unwrap();
    let out = lab
        .host_command(
            2,
            &[
                "sh",
                "-c",
                "hostname; cat /etc/machine-id; echo $WEFT_DATA_DIR; cat /sys/class/net/eth0/mtu",
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "h2");
    let mid2 = lines[1].to_owned();
    assert_eq!(mid2.len(), 32);
    assert_eq!(lines[2], lab.spec.host_data_dir(2).to_str().unwrap());
    assert_eq!(lines[3], "1400");
    let out1 = lab
        .host_command(1, &["cat", "/etc/machine-id"])
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&out1.stdout).trim(),
        mid2,
        "each host has its own machine-id"
    );
}

#[test]
fn labs_coexist_and_refuse_duplicates() {
    let a = LabGuard::new(spec("labcoa", 2, Topology::Full)).unwrap();
    let b = LabGuard::new(spec("labcob", 2, Topology::Full)).unwrap();
    assert!(reaches(&a, 1, 2) && reaches(&b, 1, 2));
    match Lab::up(spec("labcoa", 2, Topology::Full)) {
        Err(LabError::Exists(p)) => assert_eq!(p, "labcoa"),
        other => panic!("expected Exists, got {other:?}"),
    }
    drop(a);
    assert!(namespaces_of("labcoa").is_empty());
    assert_eq!(
        namespaces_of("labcob").len(),
        3,
        "the other lab is untouched"
    );
    drop(b);
}

#[test]
fn bad_specs_are_refused_without_side_effects() {
    for s in [
        spec("Bad-Prefix", 2, Topology::Full),
        spec("labbad", 0, Topology::Full),
    ] {
        assert!(matches!(Lab::up(s), Err(LabError::Spec(_))));
    }
    assert!(namespaces_of("labbad").is_empty());
}

#[test]
fn cli_up_exec_down() {
    let bin = env!("CARGO_BIN_EXE_weft-lab");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(["--prefix", "labcli"])
            .args(args)
            .output()
            .unwrap()
    };
    run(&["down"]);
    let up = run(&["up", "--hosts", "2", "--topology", "line"]);
    assert!(up.status.success(), "{up:?}");
    assert!(String::from_utf8_lossy(&up.stdout).contains("198.18.0.2"));
    let ex = run(&["exec", "h1", "--", "ping", "-c1", "-W1", "198.18.0.2"]);
    assert!(ex.status.success(), "{ex:?}");
    let bad = run(&["exec", "h9", "--", "true"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown host"));
    let c = run(&["container", "add", "h2", "c1"]);
    assert_eq!(String::from_utf8_lossy(&c.stdout).trim(), "labcli-h2-c1");
    let down = run(&["down"]);
    assert!(
        String::from_utf8_lossy(&down.stdout).contains("removed 4 namespaces"),
        "{down:?}"
    );
    assert!(namespaces_of("labcli").is_empty());
}
