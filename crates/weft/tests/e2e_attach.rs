//! End-to-end: attaching lab "containers" (network namespaces) to the weave bridge.

mod common;

use common::{lab, weft};
use weft_lab::Topology;

#[test]
fn attach_detach_ps_on_one_host() {
    let lab = lab("e2eatt", 1, Topology::Full);
    let c1 = lab.add_container(1, "c1").unwrap();
    let c2 = lab.add_container(1, "c2").unwrap();
    let (n1, n2) = (format!("netns:{c1}"), format!("netns:{c2}"));
    let before = weft(&lab, 1, &["attach", "10.32.0.1/12", &n1]);
    assert_eq!(before.code, 1, "no bridge before launch: {before:?}");
    assert!(before.stderr.contains("weft launch"), "{before:?}");
    weft(&lab, 1, &["launch"]).ok();
    assert_eq!(
        weft(&lab, 1, &["attach", "10.32.0.1/12", &n1]).ok().trim(),
        "10.32.0.1"
    );
    assert_eq!(
        weft(&lab, 1, &["attach", "ip:10.32.0.2/12", "10.32.1.2/12", &n2])
            .ok()
            .trim(),
        "10.32.0.2 10.32.1.2"
    );
    // Both containers on one bridge: they reach each other.
    let ping = lab
        .container_command(1, "c1", &["ping", "-c", "2", "-W", "2", "10.32.0.2"])
        .unwrap()
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let ps = weft(&lab, 1, &["ps"]).ok();
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&n1) && l.ends_with(" 10.32.0.1/12")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&n2) && l.ends_with("10.32.0.2/12 10.32.1.2/12")),
        "{ps}"
    );
    assert!(ps.starts_with("weave:expose "), "{ps}");
    // ethwe has the bridge's MTU and the multicast route.
    let inside = lab
        .container_command(
            1,
            "c2",
            &[
                "sh",
                "-c",
                "cat /sys/class/net/ethwe/mtu; ip route show 224.0.0.0/4",
            ],
        )
        .unwrap()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inside.stdout);
    assert!(
        text.starts_with("65449\n"),
        "ethwe has the bridge MTU: {text}"
    );
    assert!(text.contains("224.0.0.0/4 dev ethwe"), "{text}");
    // Attaching again is idempotent.
    weft(&lab, 1, &["attach", "10.32.0.1/12", &n1]).ok();
    // Detach one address, then the rest: ethwe and its host veth go.
    assert_eq!(
        weft(&lab, 1, &["detach", "10.32.1.2/12", &n2]).ok().trim(),
        "10.32.1.2"
    );
    assert_eq!(weft(&lab, 1, &["detach", &n2]).ok().trim(), "10.32.0.2");
    assert_eq!(weft(&lab, 1, &["ps", &n2]).ok(), "");
    let again = weft(&lab, 1, &["detach", &n2]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not attached"), "{again:?}");
    // The router can be restarted without touching the attached container.
    weft(&lab, 1, &["stop"]).ok();
    weft(&lab, 1, &["launch"]).ok();
    let ps = weft(&lab, 1, &["ps", &n1]).ok();
    assert!(ps.contains("10.32.0.1/12"), "{ps}");
    weft(&lab, 1, &["stop"]).ok();
}

/// A container known only by a process (`pid:PID`, e.g. podman or containerd): attach by pid,
/// and `weft ps` without arguments lists it by a process in its namespace.
#[test]
fn attach_by_pid_and_ps_finds_it() {
    let lab = lab("e2eattp", 1, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    let mut child = lab
        .host_command(1, &["unshare", "--net", "sleep", "60"])
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _guard = Kill(&mut child);
    let spec = format!("pid:{pid}");
    // The namespace exists once unshare has made it and run sleep (the pid is first the lab's
    // namespace-entering helper, then unshare, then sleep).
    weft_lab::wait_until(
        "sleep in its own namespace",
        std::time::Duration::from_secs(5),
        || {
            let comm =
                std::fs::read_to_string(format!("/proc/{pid}/comm")).map_err(|e| e.to_string())?;
            if comm.trim() == "sleep" {
                Ok(())
            } else {
                Err(comm)
            }
        },
    )
    .unwrap();
    assert_eq!(
        weft(&lab, 1, &["attach", "10.32.0.5/12", &spec])
            .ok()
            .trim(),
        "10.32.0.5"
    );
    let all = weft(&lab, 1, &["ps"]).ok();
    assert!(
        all.lines()
            .any(|l| l.starts_with(&format!("{spec} ")) && l.ends_with(" 10.32.0.5/12")),
        "{all}"
    );
    assert_eq!(weft(&lab, 1, &["detach", &spec]).ok().trim(), "10.32.0.5");
    assert!(!weft(&lab, 1, &["ps"]).ok().contains(&spec));
    weft(&lab, 1, &["stop"]).ok();
}
