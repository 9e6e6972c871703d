//! End-to-end: containers on different simulated hosts on one virtual Ethernet switch.

mod common;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    counter, in_container, lab, metrics, on_host, ping_ok, ready, router_pid, send_mib, wait_ping,
    weft, SINK,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weft_lab::{wait_until, LabGuard, Topology};

/// Containers c<i> on every host, routers (h1 first, each later host given its left
/// neighbour), c<i> attached with 10.32.0.<i>/12; waits until every link is established.
fn mesh_with_containers(lab: &LabGuard, extra: &[&str]) {
    for i in 1..=lab.spec.hosts {
        lab.add_container(i, &format!("c{i}")).unwrap();
        let mut args = vec!["launch"];
        args.extend_from_slice(extra);
        let prev = format!("198.18.0.{}", i - 1);
        if i > 1 {
            args.push(&prev);
        }
        weft(lab, i, &args).ok();
        let addr = format!("10.32.0.{i}/12");
        let ns = format!("netns:{}-h{i}-c{i}", lab.spec.prefix);
        weft(lab, i, &["attach", &addr, &ns]).ok();
    }
    for i in 2..=lab.spec.hosts {
        wait_until("links established", Duration::from_secs(20), || {
            let r = weft(lab, i, &["status", "connections"]);
            if r.stdout.contains(&format!("198.18.0.{}", i - 1)) && r.stdout.contains("established")
            {
                Ok(())
            } else {
                Err(r.stdout)
            }
        })
        .unwrap();
    }
}

fn spawn_in_container(lab: &LabGuard, i: usize, argv: &[&str]) -> Child {
    lab.container_command(i, &format!("c{i}"), argv)
        .unwrap()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_hosts_ping_and_a_100mb_transfer() {
    let lab = lab("e2edp", 2, Topology::Full);
    mesh_with_containers(&lab, &[]);
    wait_ping(&lab, 1, "10.32.0.2");
    wait_ping(&lab, 2, "10.32.0.1");
    // Each host lists its own containers only.
    let ps = weft(&lab, 1, &["ps"]).ok();
    assert!(
        ps.contains("e2edp-h1-c1") && !ps.contains("e2edp-h2-c2"),
        "{ps}"
    );
    let mut sink = spawn_in_container(&lab, 2, &["python3", "-c", SINK, "10.32.0.2"]);
    let mut out = ready(&mut sink);
    let t0 = Instant::now();
    let sent = send_mib(&lab, 1, "10.32.0.2", 100);
    let secs = t0.elapsed().as_secs_f64();
    let mut got = String::new();
    out.read_line(&mut got).unwrap();
    let _ = sink.wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(
        got.trim(),
        sent.stdout.trim(),
        "the receiver's size and sha256 match the sender's"
    );
    eprintln!(
        "100 MiB in {secs:.1} s ({:.0} Mbit/s)",
        800.0 * 1.048576 / secs
    );
    let m = metrics(&lab, 1);
    assert!(
        counter(&m, "weft_data_frames_total{direction=\"sent\"}") > 0,
        "{m}"
    );
    // Between two weft routers big datagrams travel as path-MTU segments.
    assert!(
        counter(
            &m,
            "weft_sleeve_segmented_datagrams_total{direction=\"sent\"}"
        ) > 100,
        "{m}"
    );
    let m2 = metrics(&lab, 2);
    assert!(
        counter(
            &m2,
            "weft_sleeve_segmented_datagrams_total{direction=\"received\"}"
        ) > 100,
        "{m2}"
    );
    // The link's path MTU was discovered over the DF path: 1500 − 62.
    wait_mtu(&lab, 1, 1438, Duration::from_secs(10));
}

/// Wait until host `i`'s connection status shows an established link with `mtu=N`.
fn wait_mtu(lab: &LabGuard, i: usize, mtu: u16, within: Duration) {
    let want = format!("mtu={mtu}");
    wait_until(&format!("{want} verified"), within, || {
        let s = weft(lab, i, &["status", "connections"]).ok();
        if s.contains("established") && s.contains(&want) {
            Ok(())
        } else {
            Err(s)
        }
    })
    .unwrap();
}

/// Two pings of `size` payload bytes from c<from>, with `ping -M pmtu` ("do": DF set,
/// "dont": DF clear).
fn ping_sized(lab: &LabGuard, from: usize, to: &str, pmtu: &str, size: u32) -> common::Run {
    let size = size.to_string();
    in_container(
        lab,
        from,
        &["ping", "-c", "2", "-W", "2", "-M", pmtu, "-s", &size, to],
    )
}

/// h2 speaks only Weave's protocol (as a Weave 2.8.1 router would): the link is limited by
/// the discovered path MTU, a too-big DF packet is answered with ICMP "fragmentation
/// needed", and a big non-DF packet still arrives (fragmented).
#[test]
fn weave_only_peer_gets_pmtu_discovery_and_frag_needed() {
    let lab = lab("e2edpw", 2, Topology::Full);
    lab.add_container(1, "c1").unwrap();
    lab.add_container(2, "c2").unwrap();
    weft(&lab, 1, &["launch"]).ok();
    weft(&lab, 2, &["launch", "--no-weft-extensions", "198.18.0.1"]).ok();
    weft(&lab, 1, &["attach", "10.32.0.1/12", "netns:e2edpw-h1-c1"]).ok();
    weft(&lab, 2, &["attach", "10.32.0.2/12", "netns:e2edpw-h2-c2"]).ok();
    for i in [1, 2] {
        wait_mtu(&lab, i, 1438, Duration::from_secs(20));
    }
    wait_ping(&lab, 1, "10.32.0.2");
    // 1410 + 28 = 1438 bytes fit; one byte more with DF does not.
    let fits = ping_sized(&lab, 1, "10.32.0.2", "do", 1410);
    assert_eq!(fits.code, 0, "{fits:?}");
    let big = ping_sized(&lab, 1, "10.32.0.2", "do", 1411);
    assert_ne!(big.code, 0, "{big:?}");
    let route = in_container(&lab, 1, &["ip", "route", "get", "10.32.0.2"]).ok();
    assert!(
        route.contains("mtu 1438"),
        "the ICMP reply set the path MTU: {route}"
    );
    assert!(counter(&metrics(&lab, 1), "weft_data_frag_needed_total") >= 1);
    // Without DF, 30000 bytes still go through.
    let frag = ping_sized(&lab, 1, "10.32.0.2", "dont", 30000);
    assert_eq!(frag.code, 0, "{frag:?}");
    // No segmented datagrams on this link.
    assert_eq!(
        counter(
            &metrics(&lab, 1),
            "weft_sleeve_segmented_datagrams_total{direction=\"sent\"}"
        ),
        0
    );
}

#[test]
fn line_of_three_multi_hop_broadcast_and_multicast() {
    let lab = lab("e2edpl", 3, Topology::Line);
    mesh_with_containers(&lab, &["--no-discovery"]);
    // c1 and c3 are two hops apart: h1 has no link to h3.
    wait_ping(&lab, 1, "10.32.0.3");
    wait_ping(&lab, 3, "10.32.0.1");
    // Broadcast: a ping to the subnet's broadcast address is answered from every host.
    for i in 2..=3 {
        on_host(&lab, i, &["true"]);
        lab.container_command(
            i,
            &format!("c{i}"),
            &["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"],
        )
        .unwrap()
        .status()
        .unwrap();
    }
    let b = in_container(
        &lab,
        1,
        &["ping", "-b", "-c", "4", "-W", "2", "10.47.255.255"],
    );
    assert!(b.stdout.contains("from 10.32.0.2"), "{b:?}");
    assert!(b.stdout.contains("from 10.32.0.3"), "{b:?}");
    // Multicast: receivers on h2 and h3 in group 239.1.2.3 hear a sender on h1.
    let recv = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 5001))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("0.0.0.0")))
s.settimeout(15); print("ready", flush=True)
print(s.recv(100).decode(), flush=True)
"#;
    let mut r2 = spawn_in_container(&lab, 2, &["python3", "-c", recv]);
    let mut r3 = spawn_in_container(&lab, 3, &["python3", "-c", recv]);
    let (mut o2, mut o3) = (ready(&mut r2), ready(&mut r3));
    let send = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(10):
    s.sendto(b"hello group", ("239.1.2.3", 5001)); time.sleep(0.2)
"#;
    in_container(&lab, 1, &["python3", "-c", send]);
    let (mut l2, mut l3) = (String::new(), String::new());
    o2.read_line(&mut l2).unwrap();
    o3.read_line(&mut l3).unwrap();
    let _ = (r2.wait(), r3.wait());
    assert_eq!(l2.trim(), "hello group");
    assert_eq!(l3.trim(), "hello group");
}

#[test]
fn password_hides_inner_frames_and_a_wrong_one_carries_nothing() {
    // The marker is in every ping; without encryption tcpdump sees it on the underlay.
    const MARK: &str = "5eedfacecafebeef";
    let seen = |password: bool| -> (bool, usize) {
        let prefix = if password { "e2edpe" } else { "e2edpc" };
        let lab = lab(prefix, 2, Topology::Full);
        mesh_with_containers(
            &lab,
            if password {
                &["--password", "s3cret"]
            } else {
                &[]
            },
        );
        wait_ping(&lab, 1, "10.32.0.2");
        let pcap = format!("/run/weft-lab/{prefix}/underlay.pcap");
        let mut dump = lab
            .host_command(
                1,
                &["tcpdump", "-i", "eth0", "-U", "-w", &pcap, "udp port 6783"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let p = in_container(
            &lab,
            1,
            &["ping", "-c", "5", "-i", "0.2", "-p", MARK, "10.32.0.2"],
        );
        assert_eq!(p.code, 0, "{p:?}");
        std::thread::sleep(Duration::from_millis(500));
        let _ = kill(Pid::from_raw(dump.id() as i32), Signal::SIGINT);
        let _ = dump.wait();
        let bytes = std::fs::read(&pcap).unwrap();
        let mark: Vec<u8> = (0..MARK.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&MARK[i..i + 2], 16).unwrap())
            .collect();
        (
            bytes.windows(mark.len()).any(|w| w == mark.as_slice()),
            bytes.len(),
        )
    };
    let (clear_seen, _) = seen(false);
    assert!(
        clear_seen,
        "control: without a password the inner frames are visible"
    );
    let (enc_seen, len) = seen(true);
    assert!(len > 1000, "the capture has the sleeve traffic");
    assert!(
        !enc_seen,
        "with a password no plaintext inner frame crosses the underlay"
    );

    // A host with the wrong password never connects, so its container reaches nobody.
    let lab = lab("e2edpw", 3, Topology::Full);
    mesh_with_containers(&lab, &["--password", "s3cret"]);
    lab.add_container(3, "cx").unwrap();
    weft(&lab, 3, &["stop"]).ok();
    weft(&lab, 3, &["launch", "--password", "wrong", "198.18.0.1"]).ok();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ping_ok(&lab, 3, "10.32.0.1"));
    assert!(ping_ok(&lab, 2, "10.32.0.1"));
}

#[test]
fn kill_9_and_relaunch_resumes_traffic_without_touching_containers() {
    let lab = lab("e2edpk", 2, Topology::Full);
    mesh_with_containers(&lab, &[]);
    wait_ping(&lab, 1, "10.32.0.2");
    let ping = lab
        .container_command(
            1,
            "c1",
            &["ping", "-i", "0.1", "-W", "1", "-w", "30", "10.32.0.2"],
        )
        .unwrap()
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let pid = router_pid(&lab, 1).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    weft(&lab, 1, &["launch", "198.18.0.2"]).ok();
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let seqs: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    let last = *seqs.last().expect("replies");
    assert!(last > 250, "ping runs to the end of its 30 s: {text}");
    let gap = seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1);
    eprintln!(
        "longest gap after kill -9 and relaunch: {:.1} s",
        f64::from(gap) * 0.1
    );
    assert!(gap < 150, "traffic resumed within 15 s (gap {gap} pings)");
    let ps = weft(
        &lab,
        1,
        &["ps", &format!("netns:{}-h1-c1", lab.spec.prefix)],
    )
    .ok();
    assert!(
        ps.contains("10.32.0.1/12"),
        "the container kept its interface: {ps}"
    );
}

/// Sends bad UDP payloads from h1's underlay address to h2's sleeve port: argv[1] = h1's peer
/// name (hex with colons), argv[2] = "clear" or "encrypted". Prints "sent N".
const FORGER: &str = r#"
import os, socket, struct, sys, time
name = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 0))
to = ("198.18.0.2", 6783)
def send(b):
    s.sendto(b, to)
n = 0
send(b"abc"); n += 1                                          # shorter than a sender name
send(bytes.fromhex("aabbccddeeff") + name + name + struct.pack(">H", 10) + b"x" * 10); n += 1  # unknown sender
if sys.argv[2] == "clear":
    send(name + name + name + struct.pack(">H", 500) + b"y" * 20); n += 1   # frame runs past the end
    send(name + b"\x01\x02\x03"); n += 1                                     # truncated frame header
else:
    send(name + os.urandom(8) + os.urandom(16) + os.urandom(64)); n += 1   # fails authentication
# Segments count only from a connected peer's address (h1's port 6783, which h1's router
# holds): forge that source port with a raw socket.
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
def send_as_peer(b):
    raw.sendto(struct.pack(">HHHH", 6783, 6783, 8 + len(b), 0) + b, ("198.18.0.2", 0))
send_as_peer(bytes(6) + bytes([9, 2, 0, 0, 5, 0, 0, 0, 0, 1]) + b"z" * 100); n += 1  # unknown version
send_as_peer(bytes(6) + bytes([1, 2, 5, 0, 5, 0, 0, 0, 0, 1]) + b"z" * 100); n += 1  # index past count
send(bytes(6) + bytes([1, 2, 0, 0, 5, 0, 0, 0, 0, 1]) + b"z" * 100); n += 1  # from a stranger
# A bounded flood of random datagrams, half of them claiming to be h1.
end = time.time() + 1.0
while time.time() < end and n < 20000:
    b = os.urandom(1 + n % 1400)
    if n % 2:
        b = name + b
    send(b); n += 1
print("sent", n)
"#;

/// Malformed, truncated, forged and unauthenticated datagrams are dropped and counted by
/// reason; the forwarder keeps forwarding (clear and encrypted links).
#[test]
fn bad_datagrams_are_dropped_and_counted() {
    for (prefix, extra, mode) in [
        ("e2edpb", &[][..], "clear"),
        ("e2edpe", &["--password", "forged"][..], "encrypted"),
    ] {
        let lab = lab(prefix, 2, Topology::Full);
        mesh_with_containers(&lab, extra);
        wait_ping(&lab, 1, "10.32.0.2");
        let name = weft(&lab, 1, &["report", "-f", "{{.Router.Name}}"]).ok();
        let sent = on_host(&lab, 1, &["python3", "-c", FORGER, name.trim(), mode]).ok();
        assert!(sent.starts_with("sent "), "{sent}");
        // Still forwarding, both ways.
        assert!(ping_ok(&lab, 1, "10.32.0.2") || ping_ok(&lab, 1, "10.32.0.2"));
        assert!(ping_ok(&lab, 2, "10.32.0.1") || ping_ok(&lab, 2, "10.32.0.1"));
        let m = metrics(&lab, 2);
        let drops = |reason: &str| {
            counter(
                &m,
                &format!("weft_data_dropped_total{{reason=\"{reason}\"}}"),
            )
        };
        assert!(drops("sleeve_malformed") >= 1, "{m}");
        assert!(drops("unknown_sender") >= 3, "{m}");
        assert!(drops("segment_malformed") >= 2, "{m}");
        if mode == "encrypted" {
            assert!(drops("decrypt_failed") >= 2, "{m}");
        } else {
            assert!(drops("sleeve_malformed") >= 3, "{m}");
        }
        // The connection survived.
        let st = weft(&lab, 2, &["status", "connections"]).ok();
        assert!(st.contains("established"), "{st}");
    }
}

/// The underlay silently drops frames over 1300 bytes between the hosts (their own
/// interfaces say 1500, so the kernel never learns better). Traffic between two weft routers
/// keeps flowing while the PMTU search runs (segments sized to what it has verified so far),
/// and the search settles on 1300 − 62 = 1238.
#[test]
fn silent_mtu_black_hole_on_the_underlay() {
    let lab = lab("e2edpm", 2, Topology::Full);
    for dev in ["br0", "h1", "h2"] {
        let st = std::process::Command::new("ip")
            .args(["-n", "e2edpm-ul", "link", "set", dev, "mtu", "1300"])
            .status()
            .unwrap();
        assert!(st.success(), "setting the MTU of {dev} in the underlay");
    }
    mesh_with_containers(&lab, &[]);
    let established = Instant::now();
    // A large ping crosses at once, long before the search can have finished (~13 s here).
    wait_until("an 8000-byte ping", Duration::from_secs(5), || {
        let r = in_container(
            &lab,
            1,
            &["ping", "-c", "1", "-W", "1", "-s", "8000", "10.32.0.2"],
        );
        if r.code == 0 {
            Ok(())
        } else {
            Err(r.stdout)
        }
    })
    .unwrap();
    eprintln!(
        "8000-byte ping through after {:.1} s",
        established.elapsed().as_secs_f64()
    );
    wait_mtu(&lab, 1, 1238, Duration::from_secs(40));
    eprintln!(
        "mtu=1238 verified after {:.1} s",
        established.elapsed().as_secs_f64()
    );
    assert!(ping_ok(&lab, 2, "10.32.0.1"));
}

/// h2 has a second underlay address and h1 dials that one, while h2's route back to h1 picks
/// its first address: segments from h2 must still come from the address h1 knows it by.
#[test]
fn segments_come_from_the_address_the_peer_dialled() {
    let lab = lab("e2edpa", 2, Topology::Full);
    let st = std::process::Command::new("ip")
        .args([
            "-n",
            "e2edpa-h2",
            "addr",
            "add",
            "198.18.0.102/24",
            "dev",
            "eth0",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    lab.add_container(1, "c1").unwrap();
    lab.add_container(2, "c2").unwrap();
    weft(&lab, 2, &["launch"]).ok();
    weft(&lab, 1, &["launch", "198.18.0.102"]).ok();
    weft(&lab, 1, &["attach", "10.32.0.1/12", "netns:e2edpa-h1-c1"]).ok();
    weft(&lab, 2, &["attach", "10.32.0.2/12", "netns:e2edpa-h2-c2"]).ok();
    wait_mtu(&lab, 1, 1438, Duration::from_secs(20));
    let st = weft(&lab, 1, &["status", "connections"]).ok();
    assert!(st.contains("198.18.0.102:6783"), "{st}");
    // Big pings both ways: each is one segmented datagram.
    for (from, to) in [(2, "10.32.0.1"), (1, "10.32.0.2")] {
        let r = in_container(
            &lab,
            from,
            &["ping", "-c", "3", "-W", "2", "-s", "20000", to],
        );
        assert_eq!(r.code, 0, "c{from} → {to}: {r:?}");
    }
    let m = metrics(&lab, 1);
    assert!(
        counter(
            &m,
            "weft_sleeve_segmented_datagrams_total{direction=\"received\"}"
        ) >= 3,
        "{m}"
    );
    assert_eq!(
        counter(&m, "weft_data_dropped_total{reason=\"unknown_sender\"}"),
        0,
        "{m}"
    );
}
