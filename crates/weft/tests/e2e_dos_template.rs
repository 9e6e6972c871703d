//! End-to-end: issue 13's report-template denial of service. Costly templates fired at a
//! router's API, several at once, must neither stall the router (its API, its mesh
//! heartbeats, its data plane) nor blow up its memory.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{lab, ping_ok, router_pid, wait_ping, weft};
use weft_lab::{wait_until, LabGuard, Topology};

/// The 167-character template of the issue: a 1 MB string re-bound inside five nested
/// ranges over `$.Router` (it kept the router busy for 54 s).
const REBIND: &str = "{{$s := printf \"%1000000d\" 0}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{$s := $s}}{{end}}{{end}}{{end}}{{end}}{{end}}";

/// The issue's second attack: a 1 MB variable referenced 3,000 times in one call (2.9 GB).
fn many_references(call: &str) -> String {
    format!(
        "{{{{$s := printf \"%1000000d\" 0}}}}{{{{{call}{}}}}}",
        " $s".repeat(3000)
    )
}

/// Fires each template (argv) `ROUNDS` times, all of a round at once, at the API inside
/// the host; prints one line per request: HTTP status, milliseconds, first body line.
const ATTACK: &str = r#"
import sys, threading, time, urllib.error, urllib.parse, urllib.request
ROUNDS = 3
def one(t):
    url = "http://127.0.0.1:6784/report?format=" + urllib.parse.quote(t, safe="")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            code, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    except Exception as e:
        code, body = 0, repr(e).encode()
    ms = int((time.monotonic() - start) * 1000)
    first = body.decode("utf-8", "replace").splitlines()[:1]
    print(code, ms, first[0][:200] if first else "", flush=True)
for _ in range(ROUNDS):
    ts = [threading.Thread(target=one, args=(t,)) for t in sys.argv[1:]]
    for t in ts: t.start()
    for t in ts: t.join()
"#;

const ROUNDS: usize = 3;

/// What identifies host `i`'s connections: terminations so far and each connection's
/// address (a reconnect from h2 would come from a new port) and state.
fn connection_identity(lab: &LabGuard, i: usize) -> String {
    weft(
        lab,
        i,
        &[
            "report",
            "-f",
            "{{.Router.TerminationCount}} {{range .Router.Connections}}{{.Address}}/{{.State}} {{end}}",
        ],
    )
    .ok()
}

fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn costly_templates_leave_the_router_healthy() {
    let lab = lab("tbdos", 2, Topology::Full);
    let name = weft(&lab, 1, &["launch"]).ok().trim().to_owned();
    weft(&lab, 2, &["launch", "198.18.0.1"]).ok();
    for (i, other) in [(1, "198.18.0.2:"), (2, "198.18.0.1:6783")] {
        wait_until(
            &format!("h{i}'s connection to be established"),
            Duration::from_secs(20),
            || {
                let r = weft(&lab, i, &["status", "connections"]);
                if r.stdout
                    .lines()
                    .any(|l| l.contains(other) && l.contains("established"))
                {
                    Ok(())
                } else {
                    Err(format!("{r:?}"))
                }
            },
        )
        .unwrap();
    }
    for (i, addr) in [(1, "10.32.0.1/12"), (2, "10.32.0.2/12")] {
        let ns = lab.add_container(i, &format!("c{i}")).unwrap();
        weft(&lab, i, &["attach", addr, &format!("netns:{ns}")]).ok();
    }
    wait_ping(&lab, 1, "10.32.0.2");
    wait_ping(&lab, 2, "10.32.0.1");
    let before = [connection_identity(&lab, 1), connection_identity(&lab, 2)];
    assert!(before[0].starts_with("0 198.18.0.2:"), "{}", before[0]);
    let pid = router_pid(&lab, 1).expect("h1's router pid");
    let rss_before = vm_rss_kib(pid);

    let templates = [
        REBIND.to_owned(),
        REBIND.to_owned(),
        many_references("eq $s"),
        many_references("print"),
        many_references("printf \"%s\""),
        many_references("eq $s"),
    ];
    let mut argv = vec!["python3", "-c", ATTACK];
    argv.extend(templates.iter().map(String::as_str));
    let mut attack = lab
        .host_command(1, &argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the attack");

    // While it runs: the API answers quickly, the connection stays up, memory stays small.
    let started = Instant::now();
    let (mut probes, mut slowest, mut rss_max) = (0, Duration::ZERO, rss_before);
    let finished = loop {
        if let Some(st) = attack.try_wait().expect("wait for the attack") {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90) && probes < 2000,
            "the attack did not finish"
        );
        let t = Instant::now();
        let status = weft(&lab, 1, &["status", "connections"]);
        let took = t.elapsed();
        probes += 1;
        slowest = slowest.max(took);
        assert_eq!(status.code, 0, "{status:?}");
        assert!(took < Duration::from_secs(2), "/status took {took:?}");
        assert!(
            status
                .stdout
                .lines()
                .any(|l| l.contains("198.18.0.2:") && l.contains("established")),
            "{status:?}"
        );
        rss_max = rss_max.max(vm_rss_kib(pid));
    };
    let out = attack.wait_with_output().expect("attack output");
    assert!(finished.success(), "{out:?}");
    rss_max = rss_max.max(vm_rss_kib(pid));
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "attack: {:.1?} for {} requests; {probes} /status probes, slowest {slowest:?}; \
         h1 VmRSS {rss_before} kB before, at most {rss_max} kB\n{lines}",
        started.elapsed(),
        templates.len() * ROUNDS
    );
    let replies: Vec<(u16, u64, &str)> = lines
        .lines()
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            let code = w.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let ms = w.next().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
            (code, ms, w.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(replies.len(), templates.len() * ROUNDS, "{lines}");
    for (code, ms, first) in &replies {
        match code {
            500 => assert!(
                first.contains("template exceeded its work budget")
                    || first.contains("template exceeded its time budget"),
                "{first}"
            ),
            503 => assert_eq!(
                *first,
                "too many report templates being rendered, try again"
            ),
            _ => panic!("unexpected reply {code} {first}"),
        }
        assert!(*ms < 10_000, "a reply took {ms} ms");
    }
    assert!(
        replies.iter().filter(|r| r.0 == 500).count() >= templates.len(),
        "most templates are evaluated (and refused by the budget): {lines}"
    );
    assert!(rss_max < 200 * 1024, "h1's router grew to {rss_max} kB");

    // Afterwards: same connections (no reconnect), a normal report, the data plane.
    assert_eq!(
        [connection_identity(&lab, 1), connection_identity(&lab, 2)],
        before
    );
    assert_eq!(
        weft(&lab, 1, &["report", "-f", "{{.Router.Name}}"])
            .ok()
            .trim(),
        name
    );
    assert!(ping_ok(&lab, 1, "10.32.0.2"), "c1 reaches c2 after");
    assert!(ping_ok(&lab, 2, "10.32.0.1"), "c2 reaches c1 after");
    for i in [1, 2] {
        weft(&lab, i, &["stop"]).ok();
    }
}
