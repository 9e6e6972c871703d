//! End-to-end: the mesh port under attack. (a) A flood of connections that send the protocol
//! header and stall, against a router at a 1024-descriptor limit. (b) A peer that completes
//! the handshake and then never reads while it makes the router send to it. In both, the
//! router stays healthy: a real peer connects and stays established, the API answers, pings
//! between containers flow.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{counter, lab, metrics, on_host, router_pid, weft};
use weft_kernel::Netns;
use weft_lab::{wait_until, LabGuard, Topology};

const H1: &str = "198.18.0.1:6783";

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn established_to(lab: &LabGuard, i: usize, addr: &str) -> Result<String, String> {
    let r = weft(lab, i, &["status", "connections"]);
    if r.code == 0
        && r.stdout
            .lines()
            .any(|l| l.contains(addr) && l.contains("established"))
    {
        Ok(r.stdout)
    } else {
        Err(format!("{r:?}"))
    }
}

/// h1's router under `prlimit --nofile=1024:1024`, checked in /proc.
fn launch_limited(lab: &LabGuard) -> i32 {
    let mut argv = vec!["prlimit", "--nofile=1024:1024", common::WEFT, "launch"];
    argv.push("--no-discovery");
    on_host(lab, 1, &argv).ok();
    let pid = router_pid(lab, 1).expect("h1's router pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    assert!(
        line.split_whitespace().filter(|w| *w == "1024").count() == 2,
        "{line}"
    );
    pid
}

#[derive(Default)]
struct FloodStats {
    opened: AtomicU64,
    failed: AtomicU64,
}

/// From h3: `total` connections at an even pace over `over`, each sending `weave\x01\x02` and
/// then nothing; connections the router closes are dropped, the others are held.
fn flood(lab: &LabGuard, total: u64, over: Duration, stop: &AtomicBool, stats: &FloodStats) {
    let ns = Netns::named(&lab.spec.host_ns(3)).expect("h3's namespace");
    ns.run(|| {
        let to: SocketAddr = H1.parse().unwrap();
        let t0 = Instant::now();
        let mut held: Vec<TcpStream> = Vec::new();
        for i in 0..total {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let due = t0 + over.mul_f64(i as f64 / total as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait); // pacing of the load, not a wait for a condition
            }
            match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                Ok(mut s) => {
                    stats.opened.fetch_add(1, Ordering::Relaxed);
                    let _ = s.write_all(b"weave\x01\x02");
                    let _ = s.set_nonblocking(true);
                    held.push(s);
                }
                Err(_) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Let go of what the router closed (EOF or reset).
            if i % 20 == 0 {
                let mut b = [0u8; 64];
                held.retain_mut(|s| match s.read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                });
            }
        }
    })
    .expect("run in h3");
}

#[test]
fn handshake_flood_leaves_the_router_healthy() {
    let lab = lab("cnflood", 3, Topology::Full);
    let pid = launch_limited(&lab);
    let stop = AtomicBool::new(false);
    let stats = FloodStats::default();
    let t_flood = Instant::now();
    std::thread::scope(|s| {
        let flood_thread = s.spawn(|| flood(&lab, 1500, Duration::from_secs(20), &stop, &stats));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // The flood is on: the router refuses over-cap connections.
            wait_until(
                "h1 to refuse flood connections",
                Duration::from_secs(10),
                || {
                    let m = metrics(&lab, 1);
                    let n = counter(
                        &m,
                        "weft_connections_refused_total{reason=\"handshake_cap_per_source\"}",
                    );
                    if n > 0 {
                        Ok(n)
                    } else {
                        Err(m)
                    }
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            // A real peer joins during the flood and is established within seconds.
            let t0 = Instant::now();
            weft(&lab, 2, &["launch", "--no-discovery", "198.18.0.1"]).ok();
            wait_until(
                "h2 established to h1 during the flood",
                Duration::from_secs(8),
                || established_to(&lab, 2, "198.18.0.1:6783"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let joined = t0.elapsed();
            // It reconnects as quickly: h1 forgets nothing, h2 is restarted.
            weft(&lab, 2, &["stop"]).ok();
            let t1 = Instant::now();
            weft(&lab, 2, &["launch", "--no-discovery", "198.18.0.1"]).ok();
            wait_until(
                "h2 re-established during the flood",
                Duration::from_secs(8),
                || established_to(&lab, 2, "198.18.0.1:6783"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let rejoined = t1.elapsed();
            // Through the rest of the flood: the API answers, descriptors stay low.
            let mut max_fds = 0;
            while t_flood.elapsed() < Duration::from_secs(20) {
                max_fds = max_fds.max(open_fds(pid));
                let st = weft(&lab, 1, &["status"]);
                assert_eq!(st.code, 0, "h1's API answers during the flood: {st:?}");
                assert!(st.stdout.contains("(1 established)"), "{}", st.stdout);
            }
            let m = metrics(&lab, 1);
            (joined, rejoined, max_fds, m)
        }));
        stop.store(true, Ordering::Relaxed);
        flood_thread.join().unwrap();
        let (joined, rejoined, max_fds, m) =
            result.unwrap_or_else(|p| std::panic::resume_unwind(p));
        let refused = counter(
            &m,
            "weft_connections_refused_total{reason=\"handshake_cap_per_source\"}",
        );
        let handshaking = counter(&m, "weft_connections_handshaking");
        eprintln!(
            "flood: {} connections opened, {} failed; h1 refused {refused} at accept, \
             {handshaking} handshaking at the end; h2 joined in {joined:?}, rejoined in \
             {rejoined:?}; h1's open descriptors at most {max_fds}",
            stats.opened.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
        );
        // The flood reached the router: on a busy machine many of the client's connects
        // time out while their SYNs wait in h1's backlog, and h1 still accepts and refuses
        // them, so count at the router rather than at the client.
        assert!(
            refused >= 1000,
            "the flood ran: h1 refused {refused} connections at accept\n{m}"
        );
        assert!(max_fds < 200, "h1 held {max_fds} descriptors");
    });
    // Stalled handshakes end within the deadline: nothing left handshaking.
    wait_until(
        "the stalled handshakes to time out",
        Duration::from_secs(15),
        || {
            let m = metrics(&lab, 1);
            if counter(&m, "weft_connections_handshaking") == 0 {
                Ok(())
            } else {
                Err(m)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for i in 1..=2 {
        weft(&lab, i, &["stop"]).ok();
    }
}

/// A client in h3 with a 4 KiB receive buffer that completes a plain handshake with h1, then
/// sends gossip unicasts addressed to itself (which h1 relays back to it) and never reads.
/// Returns how long after the first such message h1's reset reached it.
fn deaf_client(lab: &LabGuard, sent: &AtomicU64) -> Option<Duration> {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use weft_wire::{Connection, Event, Features, LocalIdentity, Message};
    let ns = Netns::named(&lab.spec.host_ns(3)).expect("h3's namespace");
    let mut stream: TcpStream = ns
        .run(|| {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::empty(),
                None,
            )
            .unwrap();
            setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
            let to: std::net::SocketAddrV4 = H1.parse().unwrap();
            connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).unwrap();
            TcpStream::from(fd)
        })
        .expect("run in h3");
    let name = weft_mesh::PeerName::from_u64(0x0a00_0000_0042).unwrap();
    let id = LocalIdentity {
        name,
        uid: 4242,
        conn_id: rand::random::<u64>() | 1,
    };
    let features = Features::standard(&id, "deaf", 42, false, Some("sleeve"));
    let mut conn = Connection::new(
        weft_wire::Config::new(id, features),
        weft_crypto::Side::Outbound,
        &mut rand::rngs::OsRng,
        Instant::now(),
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !conn.is_established() {
        if let Some(b) = conn.poll_transmit() {
            stream.write_all(&b).unwrap();
        }
        let n = stream.read(&mut buf).expect("h1's handshake");
        assert!(n > 0, "h1 closed during the handshake");
        conn.handle_input(&buf[..n], Instant::now()).unwrap();
    }
    while let Some(ev) = conn.poll_event() {
        assert!(matches!(ev, Event::HandshakeDone(_) | Event::Message(_)));
    }
    if let Some(b) = conn.poll_transmit() {
        stream.write_all(&b).unwrap();
    }
    // From now on: never read. Unicasts to ourselves on a channel h1 only relays.
    let msg = Message::GossipUnicast(weft_wire::UnicastEnvelope {
        channel: "IPallocation".into(),
        src: name,
        dst: name,
        payload: vec![0x5a; 16 * 1024],
    });
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let t0 = Instant::now();
    // Bounded: at most 4,000 messages (64 MiB) and 45 s.
    for i in 0..4000u32 {
        if t0.elapsed() > Duration::from_secs(45) {
            return None;
        }
        // After the messages, heartbeats only (so h1's read timeout is not what closes it).
        let out = if i < 3000 {
            conn.send_message(&msg).unwrap();
            conn.poll_transmit().unwrap()
        } else {
            conn.send_message(&Message::Heartbeat).unwrap();
            std::thread::sleep(Duration::from_millis(20)); // pacing of heartbeats
            conn.poll_transmit().unwrap()
        };
        match stream.write_all(&out) {
            Ok(()) => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

#[test]
fn peer_that_never_reads_is_closed_and_the_mesh_keeps_working() {
    let lab = lab("cndeaf", 3, Topology::Full);
    let pid = launch_limited(&lab);
    weft(&lab, 2, &["launch", "--no-discovery", "198.18.0.1"]).ok();
    let c1 = lab.add_container(1, "c1").unwrap();
    let c2 = lab.add_container(2, "c2").unwrap();
    weft(&lab, 1, &["attach", "10.32.0.1/12", &format!("netns:{c1}")]).ok();
    weft(&lab, 2, &["attach", "10.32.0.2/12", &format!("netns:{c2}")]).ok();
    wait_until("h2 established to h1", Duration::from_secs(20), || {
        established_to(&lab, 2, "198.18.0.1:6783")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let ping = |count: &str| {
        lab.container_command(
            1,
            "c1",
            &["ping", "-c", count, "-i", "0.2", "-W", "2", "10.32.0.2"],
        )
        .unwrap()
        .output()
        .unwrap()
    };
    wait_until("c1 to reach c2", Duration::from_secs(20), || {
        let p = ping("1");
        if p.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&p.stdout).into_owned())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let sent = AtomicU64::new(0);
    let closed_after = std::thread::scope(|s| {
        let client = s.spawn(|| deaf_client(&lab, &sent));
        // Meanwhile the mesh keeps working: pings flow, h2 stays established, the API answers.
        let p = ping("25");
        let out = String::from_utf8_lossy(&p.stdout).into_owned();
        assert!(p.status.success(), "pings during the attack: {out}");
        assert!(
            out.contains("25 received") || out.contains(" 0% packet loss"),
            "{out}"
        );
        established_to(&lab, 2, "198.18.0.1:6783").unwrap_or_else(|e| panic!("{e}"));
        assert!(open_fds(pid) < 200);
        client.join().unwrap()
    });
    let m = metrics(&lab, 1);
    let queue_full = counter(&m, "weft_connections_closed_total{reason=\"queue_full\"}");
    let write_timeout = counter(
        &m,
        "weft_connections_closed_total{reason=\"write_timeout\"}",
    );
    eprintln!(
        "deaf client: sent {} messages, reset by h1 after {closed_after:?}; \
         closed for queue_full {queue_full}, write_timeout {write_timeout}",
        sent.load(Ordering::Relaxed)
    );
    let after = closed_after.expect("h1 closed the connection of the peer that does not read");
    assert!(after < Duration::from_secs(35), "closed after {after:?}");
    assert_eq!(
        queue_full + write_timeout,
        1,
        "one connection closed, counted once: {m}"
    );
    let log = std::fs::read_to_string(lab.spec.host_run_dir(1).join("weft.log")).unwrap();
    assert!(log.contains("peer is not reading"), "h1 logs why");
    // And afterwards: still established, pings still flow.
    established_to(&lab, 2, "198.18.0.1:6783").unwrap_or_else(|e| panic!("{e}"));
    let p = ping("5");
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stdout));
    for i in 1..=2 {
        weft(&lab, i, &["stop"]).ok();
    }
}
