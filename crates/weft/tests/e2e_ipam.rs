//! End-to-end: IPAM on three lab hosts, one of them speaking only Weave 2.8.1's protocol
//! (`--no-weft-extensions`), with real routers: unique addresses from the range without
//! giving any, reuse of the lowest after detach, allocations kept over `kill -9`, and a host
//! gone for good taken over with `rmpeer`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{lab, on_host, router_pid, wait_ping, weft};
use weft_lab::{wait_until, LabGuard, Topology};

/// `GET path` on host `i`'s API: (status, body).
fn http(lab: &LabGuard, i: usize, method: &str, path: &str) -> (u16, String) {
    let script = "import sys, urllib.request as u, urllib.error as e\n\
        r = u.Request('http://127.0.0.1:6784' + sys.argv[2], method=sys.argv[1])\n\
        try:\n    x = u.urlopen(r, timeout=30); print(x.status); print(x.read().decode(), end='')\n\
        except e.HTTPError as h:\n    print(h.code); print(h.read().decode(), end='')\n";
    let out = on_host(lab, i, &["python3", "-c", script, method, path]).ok();
    let (code, body) = out.split_once('\n').unwrap_or((&out, ""));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn addr_of(attach_output: &str) -> String {
    attach_output.trim().to_owned()
}

fn status_ipam(lab: &LabGuard, i: usize) -> String {
    weft(lab, i, &["status", "ipam"]).ok()
}

#[test]
fn three_hosts_allocate_unique_addresses_and_survive_restarts_and_rmpeer() {
    let lab = lab("e2eipam", 3, Topology::Full);
    let init = "--ipalloc-init=consensus=3";
    weft(&lab, 1, &["launch", init, "--nickname", "h1"]).ok();
    weft(
        &lab,
        2,
        &[
            "launch",
            init,
            "--nickname",
            "h2",
            "--no-weft-extensions",
            "198.18.0.1",
        ],
    )
    .ok();
    weft(
        &lab,
        3,
        &[
            "launch",
            init,
            "--nickname",
            "h3",
            "198.18.0.1",
            "198.18.0.2",
        ],
    )
    .ok();
    let ns: Vec<String> = (1..=3)
        .map(|i| format!("netns:{}", lab.add_container(i, &format!("c{i}")).unwrap()))
        .collect();
    // Idle until something asks: Weave's deferred consensus.
    let st = weft(&lab, 1, &["status"]).ok();
    assert!(st.contains("Service: ipam"), "{st}");

    // Attach with no address on every host: unique addresses in the range.
    let mut addrs = Vec::new();
    for i in 1..=3 {
        let out = weft(&lab, i, &["attach", &ns[i - 1]]).ok();
        addrs.push(addr_of(&out));
    }
    let unique: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(unique.len(), 3, "addresses must differ: {addrs:?}");
    for a in &addrs {
        let ip: std::net::Ipv4Addr = a.parse().unwrap_or_else(|_| panic!("not an address: {a}"));
        assert_eq!(
            u32::from(ip) >> 20,
            u32::from(std::net::Ipv4Addr::new(10, 32, 0, 0)) >> 20,
            "{a} outside 10.32.0.0/12"
        );
    }
    wait_ping(&lab, 1, &addrs[1]);
    wait_ping(&lab, 2, &addrs[2]);
    wait_ping(&lab, 3, &addrs[0]);

    // The three rings agree on who owns what (the free counts and versions of each peer's
    // own entries travel with its next broadcast or periodic gossip, as in Weave).
    let entries = |i| {
        weft(
            &lab,
            i,
            &[
                "report",
                "-f",
                "{{range .IPAM.Entries}}{{.Token}} {{.Size}} {{.Peer}};{{end}}",
            ],
        )
        .ok()
    };
    wait_until("rings to agree", Duration::from_secs(20), || {
        let (a, b, c) = (entries(1), entries(2), entries(3));
        if a == b && b == c && !a.is_empty() {
            Ok(())
        } else {
            Err(format!("h1 {a}\nh2 {b}\nh3 {c}"))
        }
    })
    .unwrap();
    let view = status_ipam(&lab, 1);
    println!("weft status ipam on h1:\n{view}");
    assert!(view.lines().next().unwrap_or("").contains("(h1)"), "{view}");

    // Detach frees; the next attach on that host reuses the lowest.
    assert_eq!(weft(&lab, 1, &["detach", &ns[0]]).ok().trim(), addrs[0]);
    let n4 = format!("netns:{}", lab.add_container(1, "c4").unwrap());
    assert_eq!(
        addr_of(&weft(&lab, 1, &["attach", &n4]).ok()),
        addrs[0],
        "the freed address is reused"
    );

    // kill -9 and relaunch of h2: its allocation stays, a new container gets another one.
    let n2 = &ns[1];
    let pid = router_pid(&lab, 2).expect("h2 pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    weft(
        &lab,
        2,
        &[
            "launch",
            init,
            "--nickname",
            "h2",
            "--no-weft-extensions",
            "198.18.0.1",
        ],
    )
    .ok();
    let (code, kept) = http(&lab, 2, "GET", &format!("/ip/{n2}"));
    assert_eq!(code, 200);
    assert_eq!(
        kept.split('/').next().unwrap_or(""),
        addrs[1],
        "h2 kept c2's address over kill -9"
    );
    let n5 = format!("netns:{}", lab.add_container(2, "c5").unwrap());
    let a5 = addr_of(&weft(&lab, 2, &["attach", &n5]).ok());
    assert!(!addrs.contains(&a5), "{a5} was given before: {addrs:?}");

    // h3 dies for good: h1 takes its space over, once.
    let h3_name = weft(&lab, 3, &["report", "-f", "{{.Router.Name}}"]).ok();
    let pid = router_pid(&lab, 3).expect("h3 pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("h3 unreachable on h1", Duration::from_secs(30), || {
        let v = status_ipam(&lab, 1);
        if v.contains("(h3)") && v.contains("unreachable!") {
            Ok(())
        } else {
            Err(v)
        }
    })
    .unwrap();
    let taken = weft(&lab, 1, &["rmpeer", h3_name.trim()]).ok();
    println!("rmpeer: {taken}");
    let n: u64 = taken
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "{taken}");
    assert!(taken.contains("IPs taken over from"), "{taken}");
    wait_until("h2 to see the takeover", Duration::from_secs(20), || {
        let v = status_ipam(&lab, 2);
        if v.contains("(h3)") {
            Err(v)
        } else {
            Ok(())
        }
    })
    .unwrap();
    // The same rmpeer on h2 afterwards finds nothing left to take (as Weave answers).
    let again = weft(&lab, 2, &["rmpeer", h3_name.trim()]).ok();
    assert!(again.starts_with("0 IPs taken over"), "{again}");
}
