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
    // The first range h3 owns, to allocate from once it is h1's.
    let h3_token = weft(
        &lab,
        1,
        &[
            "report",
            "-f",
            "{{range .IPAM.Entries}}{{.Peer}} {{.Token}};{{end}}",
        ],
    )
    .ok()
    .split(';')
    .find_map(|e| {
        e.strip_prefix(&format!("{} ", h3_name.trim()))
            .map(str::to_owned)
    })
    .expect("h3 owns a range");
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
    // h3's space is h1's now: h1 allocates in it at once, without asking anyone.
    let n6 = format!("netns:{}", lab.add_container(1, "c6").unwrap());
    let a6 = weft(&lab, 1, &["attach", &format!("net:{h3_token}/24"), &n6]).ok();
    let token: std::net::Ipv4Addr = h3_token.parse().unwrap();
    let a6: std::net::Ipv4Addr = a6.trim().parse().unwrap();
    assert_eq!(
        u32::from(a6) >> 8,
        u32::from(token) >> 8,
        "{a6} from h3's former {token}/24"
    );
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

/// Host `i`'s router log.
fn log(lab: &LabGuard, i: usize) -> String {
    std::fs::read_to_string(lab.spec.host_run_dir(i).join("weft.log")).unwrap_or_default()
}

#[test]
fn waiting_cancelling_releasing_handing_over_and_turning_ipam_off() {
    let lab = lab("e2eipam2", 2, Topology::Full);
    // consensus=2: h1 alone cannot make the ring, so an allocation waits.
    let init = "--ipalloc-init=consensus=2";
    weft(&lab, 1, &["launch", init, "--nickname", "h1"]).ok();
    let c1 = format!("netns:{}", lab.add_container(1, "c1").unwrap());
    // The API client gives up after 2 s: the waiting request is cancelled, not left behind.
    let (code, _) = {
        let script = "import urllib.request as u\n\
            try:\n    u.urlopen(u.Request('http://127.0.0.1:6784/ip/cid-x', method='POST'), timeout=2)\n    print(200)\n\
            except Exception as e:\n    print(type(e).__name__)\n";
        let out = on_host(&lab, 1, &["python3", "-c", script]).ok();
        (out.trim().to_owned(), ())
    };
    assert_ne!(
        code, "200",
        "nothing can be allocated before the ring exists"
    );
    let st = weft(&lab, 1, &["status"]).ok();
    println!("{st}");
    assert!(
        st.contains("awaiting consensus (quorum: 2, known: 1)"),
        "{st}"
    );
    assert!(
        st.contains("waiting for consensus: 1 of 2 peers known"),
        "{st}"
    );
    wait_until(
        "the cancelled request to go",
        Duration::from_secs(10),
        || {
            let p = weft(&lab, 1, &["report", "-f", "{{len .IPAM.PendingAllocates}}"]).ok();
            if p.trim() == "0" {
                Ok(())
            } else {
                Err(p)
            }
        },
    )
    .unwrap();

    // h2 arrives: consensus, and an attach that was waiting on h1 completes.
    let waiting = lab
        .host_command(1, &[common::WEFT, "attach", &c1])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    weft(&lab, 2, &["launch", init, "--nickname", "h2", "198.18.0.1"]).ok();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let a1 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(a1.starts_with("10."), "{a1}");

    // A container that is gone for good has its address released (netns removed).
    let c2 = format!("netns:{}", lab.add_container(2, "c2").unwrap());
    let a2 = weft(&lab, 2, &["attach", &c2]).ok().trim().to_owned();
    on_host(
        &lab,
        2,
        &["ip", "netns", "del", c2.trim_start_matches("netns:")],
    )
    .ok();
    wait_until(
        "c2's address to be released",
        Duration::from_secs(20),
        || {
            let (_, body) = http(&lab, 2, "GET", &format!("/ip/{c2}"));
            if body.is_empty() {
                Ok(())
            } else {
                Err(body)
            }
        },
    )
    .unwrap();
    let c3 = format!("netns:{}", lab.add_container(2, "c3").unwrap());
    assert_eq!(
        weft(&lab, 2, &["attach", &c3]).ok().trim(),
        a2,
        "c2's address is free again"
    );

    // weft reset on h1 hands its space to h2 first.
    weft(&lab, 1, &["reset"]).ok();
    wait_until("h2 to own the whole range", Duration::from_secs(20), || {
        let v = status_ipam(&lab, 2);
        if v.lines().count() == 1 && v.contains("1048576 IPs (100.0% of total)") {
            Ok(())
        } else {
            Err(v)
        }
    })
    .unwrap();

    // The same data directory with another range: the old ring is discarded, with a log line.
    weft(&lab, 2, &["stop"]).ok();
    weft(
        &lab,
        2,
        &[
            "launch",
            init,
            "--ipalloc-range",
            "10.40.0.0/16",
            "198.18.0.1",
        ],
    )
    .ok();
    wait_until("the discard to be logged", Duration::from_secs(10), || {
        let l = log(&lab, 2);
        if l.contains("Deleting persisted data for IPAM range 10.32.0.0")
            && l.contains("our range is 10.40.0.0/16")
        {
            Ok(())
        } else {
            Err(l)
        }
    })
    .unwrap();
    weft(&lab, 2, &["stop"]).ok();

    // IPAM off: its routes answer 404, status has no ipam section, net: is refused clearly.
    weft(&lab, 2, &["launch", "--ipalloc-range", ""]).ok();
    assert_eq!(http(&lab, 2, "POST", "/ip/x").0, 404);
    assert_eq!(http(&lab, 2, "GET", "/ipinfo/defaultsubnet").0, 404);
    let st = weft(&lab, 2, &["status"]).ok();
    assert!(!st.contains("Service: ipam"), "{st}");
    assert_eq!(weft(&lab, 2, &["status", "ipam"]).code, 1);
    let c4 = format!("netns:{}", lab.add_container(2, "c4").unwrap());
    let r = weft(&lab, 2, &["attach", "net:default", &c4]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("IP address allocation must be enabled"),
        "{r:?}"
    );
    // Explicit addresses still work without IPAM.
    assert_eq!(
        weft(&lab, 2, &["attach", "10.32.9.9/12", &c4]).ok().trim(),
        "10.32.9.9"
    );
}

/// Allocations a client was told about survive `kill -9` at any moment: the router commits
/// each to its store before it answers. A client allocates without pause while the router is
/// killed and relaunched; every address it was given must still belong to its id afterwards,
/// and no address may have been given twice.
#[test]
fn kill_9_during_allocations_never_loses_or_repeats_an_address() {
    let lab = lab("e2eipam3", 1, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    weft(&lab, 1, &["prime"]).ok();
    // Allocates cid-<k> for k = argv[1].. and prints "cid addr" per answer, until a request
    // fails (the router was killed).
    let client = "import sys, urllib.request as u\n\
        k = int(sys.argv[1])\n\
        while True:\n    \
            try:\n        \
                a = u.urlopen(u.Request('http://127.0.0.1:6784/ip/cid-%d' % k, method='POST'), timeout=5).read().decode()\n    \
            except Exception:\n        \
                break\n    \
            print('cid-%d %s' % (k, a), flush=True); k += 1\n";
    let mut given: Vec<(String, String)> = Vec::new();
    let rounds = 15;
    for round in 0..rounds {
        use std::io::BufRead;
        let start = (round * 100_000).to_string();
        let mut child = lab
            .host_command(1, &["timeout", "30", "python3", "-c", client, &start])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Let it allocate a little, a different amount each round, then kill the router
        // while the client keeps asking.
        let want = 3 + round * 2;
        let mut told: Vec<(String, String)> = Vec::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while told.len() < want && out.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some((cid, addr)) = line.trim().split_once(' ') {
                told.push((cid.to_owned(), addr.to_owned()));
            }
            line.clear();
        }
        let pid = router_pid(&lab, 1).expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // Whatever answers were in flight come out before the client sees the router gone
        // and stops.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let _ = child.wait();
        for l in rest.lines() {
            if let Some((cid, addr)) = l.trim().split_once(' ') {
                told.push((cid.to_owned(), addr.to_owned()));
            }
        }
        weft(&lab, 1, &["launch"]).ok();
        // Every address the client was told still belongs to its id.
        for (cid, addr) in &told {
            let (code, body) = http(&lab, 1, "GET", &format!("/ip/{cid}"));
            assert_eq!(
                (code, body.trim()),
                (200, addr.as_str()),
                "{cid} was told {addr}"
            );
        }
        given.extend(told);
    }
    let mut addrs: Vec<&String> = given.iter().map(|(_, a)| a).collect();
    let n = addrs.len();
    addrs.sort();
    addrs.dedup();
    println!("{n} addresses kept over {rounds} kill -9s");
    assert_eq!(addrs.len(), n, "an address was given twice");
    assert!(n >= rounds * 3, "only {n} allocations");
}
