//! End-to-end: `kill -9` of the router and `weft launch` at once, in one shell line, many times.
//!
//! The killed router holds its pid file's lock until the kernel has closed its files (TAP,
//! sockets), so a launch right after the kill sees a router that is still exiting. `weft
//! launch` must wait for it and start, never answer "already running"; a router that really
//! runs still gets exit 3 at once.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{lab, router_pid, wait_ping, weft, Run};
use weft_lab::{wait_until, LabGuard, Topology};

/// Iterations of each phase (without, then with attached containers and traffic).
fn iterations() -> usize {
    std::env::var("WEFT_RELAUNCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Kill h1's router with SIGKILL and launch a new one in the same shell, no pause between.
fn kill_and_launch(lab: &LabGuard) -> Run {
    lab.host_command(
        1,
        &[
            "sh",
            "-c",
            r#"kill -9 "$(cat "$WEFT_RUN_DIR/weft.pid")" && exec "$0" launch"#,
            common::WEFT,
        ],
    )
    .output()
    .expect("run ip netns exec")
    .into()
}

fn relaunch_loop(lab: &LabGuard, name: &str, phase: &str) -> Duration {
    let n = iterations();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let old = router_pid(lab, 1).expect("a running router has a pid file");
        let start = Instant::now();
        let run = kill_and_launch(lab);
        slowest = slowest.max(start.elapsed());
        assert_eq!(
            run.code,
            0,
            "{phase}: iteration {} of {n}: kill -9 then launch failed: {run:?}",
            i + 1
        );
        assert_eq!(run.stdout.trim(), name, "{phase}: the peer name is kept");
        let new = router_pid(lab, 1).expect("the new router writes its pid file");
        assert_ne!(new, old, "{phase}: a new router runs");
    }
    eprintln!("{phase}: {n} of {n} relaunches passed; slowest kill+launch {slowest:?}");
    slowest
}

fn established_with_h2(lab: &LabGuard) -> Result<(), String> {
    let out = weft(lab, 1, &["status", "connections"]).stdout;
    if out
        .lines()
        .any(|l| l.contains("198.18.0.2") && l.contains("established"))
    {
        Ok(())
    } else {
        Err(out)
    }
}

/// Kills the traffic generator even if the test panics.
struct Traffic(Child);

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_then_launch_at_once_never_reports_already_running() {
    let lab = lab("e2erelnch", 2, Topology::Full);
    let name = weft(&lab, 1, &["launch", "198.18.0.2"])
        .ok()
        .trim()
        .to_owned();
    weft(&lab, 2, &["launch", "198.18.0.1"]).ok();
    wait_until("h1 and h2 established", Duration::from_secs(20), || {
        established_with_h2(&lab)
    })
    .unwrap();

    // Phase 1: a router with no containers and no traffic.
    relaunch_loop(&lab, &name, "without containers");

    // Phase 2: containers on both hosts and a ping stream across while the router dies.
    lab.add_container(1, "c1").unwrap();
    lab.add_container(2, "c2").unwrap();
    let c1 = format!("netns:{}", lab.spec.container_ns(1, "c1").unwrap());
    let c2 = format!("netns:{}", lab.spec.container_ns(2, "c2").unwrap());
    weft(&lab, 1, &["attach", "10.32.0.1/12", &c1]).ok();
    weft(&lab, 2, &["attach", "10.32.0.2/12", &c2]).ok();
    wait_ping(&lab, 1, "10.32.0.2");
    // Bounded: at most 600 s of pings at 50 per second, killed when the test ends.
    let traffic = Traffic(
        lab.container_command(
            1,
            "c1",
            &[
                "ping",
                "-q",
                "-i",
                "0.02",
                "-w",
                "600",
                "-s",
                "1200",
                "10.32.0.2",
            ],
        )
        .unwrap()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    relaunch_loop(&lab, &name, "with containers and traffic");
    drop(traffic);

    // A router that really runs: exit 3 at once.
    let start = Instant::now();
    let again = weft(&lab, 1, &["launch"]);
    let took = start.elapsed();
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stderr.contains("already running"), "{again:?}");
    assert!(
        took < Duration::from_secs(5),
        "a running router is reported at once, took {took:?}"
    );

    // And the last router is a working one: mesh and data plane are back.
    wait_until(
        "h1 and h2 established again",
        Duration::from_secs(30),
        || established_with_h2(&lab),
    )
    .unwrap();
    wait_ping(&lab, 1, "10.32.0.2");
}
