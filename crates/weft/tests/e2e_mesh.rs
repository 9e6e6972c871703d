//! End-to-end: real routers forming a mesh in simulated hosts.

mod common;

use std::time::Duration;

use common::{lab, weft};
use weft_lab::{wait_until, LabGuard, Topology};

fn name_of(lab: &LabGuard, i: usize) -> String {
    weft(lab, i, &["report", "-f", "{{.Router.Name}}"])
        .ok()
        .trim()
        .to_owned()
}

/// Wait until `weft status <view>` on host `i` satisfies `check`.
fn wait_status(
    lab: &LabGuard,
    i: usize,
    view: &str,
    what: &str,
    secs: u64,
    check: impl Fn(&str) -> bool,
) -> String {
    wait_until(what, Duration::from_secs(secs), || {
        let r = weft(lab, i, &["status", view]);
        if r.code == 0 && check(&r.stdout) {
            Ok(r.stdout)
        } else {
            Err(format!("{r:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn established_to(out: &str, addr_part: &str) -> bool {
    out.lines()
        .any(|l| l.contains(addr_part) && l.contains("established"))
}

#[test]
fn line_of_three_learns_by_gossip_and_follows_cuts() {
    let lab = lab("e2eline", 3, Topology::Line);
    weft(&lab, 1, &["launch", "--no-discovery"]).ok();
    weft(&lab, 2, &["launch", "--no-discovery", "198.18.0.1"]).ok();
    weft(&lab, 3, &["launch", "--no-discovery", "198.18.0.2"]).ok();
    let h3 = name_of(&lab, 3);
    // h1 never talks to h3, yet learns it (and its link to h2) through h2's gossip.
    let peers = wait_status(&lab, 1, "peers", "h1 to learn h3 by gossip", 20, |o| {
        o.contains(&format!("{h3}(h3)")) && o.matches("established").count() >= 4
    });
    assert_eq!(
        peers.lines().filter(|l| !l.starts_with(' ')).count(),
        3,
        "{peers}"
    );
    let conns = wait_status(&lab, 2, "connections", "h2's two connections", 20, |o| {
        established_to(o, "198.18.0.1:6783") && established_to(o, "198.18.0.3:")
    });
    assert!(conns.lines().all(|l| l.contains("sleeve")), "{conns}");
    let status = weft(&lab, 2, &["status"]).ok();
    assert!(
        status.contains("Connections: 2 (2 established)"),
        "{status}"
    );
    assert!(
        status.contains("Peers: 3 (with 4 established connections)"),
        "{status}"
    );
    assert!(status.contains("Protocol: weave 1..2"), "{status}");
    assert_eq!(
        weft(&lab, 1, &["report", "-f", "{{len .Router.Peers}}"]).ok(),
        "3"
    );
    let bad = weft(&lab, 1, &["report", "-f", "{{.Router.Name"]);
    assert_eq!(bad.code, 1, "a template that does not parse: {bad:?}");
    let metrics = common::on_host(&lab, 2, &["python3", "-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:6784/metrics').read().decode())"]).ok();
    assert!(
        metrics.contains(r#"weave_connections{encryption="",state="established",type="sleeve"} 2"#),
        "{metrics}"
    );
    let json = weft(&lab, 1, &["report"]).ok();
    let report: serde_json::Value = serde_json::from_str(&json).expect("report is JSON");
    assert_eq!(report["Router"]["Peers"].as_array().map(Vec::len), Some(3));

    // Cut h2-h3: within seconds h2 drops the connection and h1 forgets h3.
    lab.cut(2, 3).unwrap();
    wait_status(&lab, 2, "connections", "h2 to notice the cut", 20, |o| {
        !established_to(o, "198.18.0.3:")
    });
    wait_status(&lab, 1, "peers", "h1 to drop unreachable h3", 20, |o| {
        !o.contains(&h3)
    });
    // Restore: h3 redials h2 and everything comes back.
    lab.restore(2, 3).unwrap();
    wait_status(&lab, 1, "peers", "h1 to see h3 again", 40, |o| {
        o.contains(&h3) && o.matches("established").count() >= 4
    });
    for i in 1..=3 {
        weft(&lab, i, &["stop"]).ok();
    }
}

#[test]
fn password_encrypts_and_a_wrong_one_is_refused() {
    let lab = lab("e2epass", 3, Topology::Full);
    weft(&lab, 1, &["launch", "--password", "s3cret"]).ok();
    weft(&lab, 2, &["launch", "--password", "s3cret", "198.18.0.1"]).ok();
    weft(&lab, 3, &["launch", "--password", "wrong", "198.18.0.1"]).ok();
    let conns = wait_status(&lab, 2, "connections", "an encrypted connection", 20, |o| {
        established_to(o, "198.18.0.1:6783")
    });
    assert!(conns.contains("encrypted"), "{conns}");
    assert!(weft(&lab, 1, &["status"])
        .ok()
        .contains("Encryption: enabled"));
    let refused = wait_status(
        &lab,
        3,
        "connections",
        "the wrong password to be refused",
        20,
        |o| o.contains("failed") && o.contains("passwords differ"),
    );
    assert!(!refused.contains("established"), "{refused}");
    let log = std::fs::read_to_string(lab.spec.host_run_dir(1).join("weft.log")).unwrap();
    assert!(
        log.contains("passwords differ"),
        "h1 logs the refusal: {log}"
    );
    // A peer without any password is refused too.
    weft(&lab, 3, &["stop"]).ok();
    weft(&lab, 3, &["launch", "198.18.0.1"]).ok();
    wait_status(
        &lab,
        3,
        "connections",
        "an unencrypted peer to be refused",
        20,
        |o| o.contains("failed"),
    );
    for i in 1..=3 {
        weft(&lab, i, &["stop"]).ok();
    }
}

#[test]
fn connect_forget_targets_and_resume() {
    let lab = lab("e2econn", 2, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    weft(&lab, 2, &["launch"]).ok();
    let bad = weft(&lab, 2, &["connect", "not a host"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("invalid peer"), "{bad:?}");
    assert_eq!(weft(&lab, 2, &["connect"]).code, 1, "connect needs a peer");
    weft(&lab, 2, &["connect", "198.18.0.1"]).ok();
    assert_eq!(weft(&lab, 2, &["status", "targets"]).ok(), "198.18.0.1\n");
    wait_status(&lab, 2, "connections", "the connection", 20, |o| {
        established_to(o, "198.18.0.1:6783")
    });
    weft(&lab, 2, &["forget", "198.18.0.1"]).ok();
    assert_eq!(weft(&lab, 2, &["status", "targets"]).ok(), "");
    // Targets survive a restart with --resume.
    weft(&lab, 2, &["connect", "--replace", "198.18.0.1:6783"]).ok();
    weft(&lab, 2, &["stop"]).ok();
    let both = weft(&lab, 2, &["launch", "--resume", "198.18.0.1"]);
    assert_eq!(both.code, 1, "{both:?}");
    assert!(both.stderr.contains("--resume"), "{both:?}");
    weft(&lab, 2, &["launch", "--resume"]).ok();
    assert_eq!(
        weft(&lab, 2, &["status", "targets"]).ok(),
        "198.18.0.1:6783\n"
    );
    wait_status(&lab, 2, "connections", "the resumed connection", 20, |o| {
        established_to(o, "198.18.0.1:6783")
    });
    let bad_view = weft(&lab, 2, &["status", "bogus"]);
    assert_eq!(bad_view.code, 1);
    assert!(
        bad_view
            .stderr
            .contains("Invalid 'weft status' sub-command"),
        "{bad_view:?}"
    );
    for i in 1..=2 {
        weft(&lab, i, &["stop"]).ok();
    }
}

#[test]
fn conn_limit_is_honoured() {
    let lab = lab("e2elimit", 3, Topology::Full);
    weft(&lab, 1, &["launch", "--conn-limit", "1"]).ok();
    weft(&lab, 2, &["launch", "198.18.0.1"]).ok();
    wait_status(&lab, 1, "connections", "the first connection", 20, |o| {
        o.contains("established")
    });
    weft(&lab, 3, &["launch", "--no-discovery", "198.18.0.1"]).ok();
    std::thread::sleep(Duration::from_secs(3));
    let st = weft(&lab, 1, &["status"]).ok();
    assert!(
        st.contains("Connections: 1 "),
        "h1 keeps one connection: {st}"
    );
    for i in 1..=3 {
        weft(&lab, i, &["stop"]).ok();
    }
}
