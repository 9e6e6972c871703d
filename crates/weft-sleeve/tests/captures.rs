//! Conformance against the real Weave Net 2.8.1 sleeve traffic captured in
//! `shared/conformance/`.
//!
//! Every UDP datagram on port 6783 of the captures `a` (2 peers, clear), `c-ua` and `c-ub`
//! (3 peers in a line, both links of h2, clear) and `bk` (2 peers, encrypted, with the
//! session key logged) is decoded with weft-sleeve's code and compared, packet by packet and
//! frame by frame, with `*.decoded.txt`, written by the independent Python decoder
//! `weavepcap.py`:
//!
//! * the UDP addresses, payload length and DF bit of the datagram;
//! * the sender name ([`packet::sender`], or the clear header of an encrypted packet, whose
//!   stream, sequence number and box length are checked too);
//! * every frame from [`packet::frames`] (no error, the same count per packet): src and dst
//!   peer names and length, then its meaning, rendered in the decoder's words from the bytes:
//!   [`packet::special`] heartbeats (with the connection UID, which must also be the XOR of
//!   the two ConnIDs in the features), MTU tests (length), the 60001-byte fragmentation test,
//!   and ordinary Ethernet frames (MACs, ARP op and addresses, IPv4 addresses, ICMP echo type
//!   and sequence, IP length, DF);
//! * each datagram is also fed to a [`HeartbeatLink`] playing the receiving peer (with the
//!   logged session key and the right `outbound` flag in `bk`): it must accept it (so a
//!   heartbeat's UID matches the link's), hand out exactly the ordinary frames, answer the
//!   specials with the right control messages (ConnectionEstablished once, then
//!   FragmentationReceived, PMTUVerified(len − 14)), and in `bk` drop a replay of the packet;
//! * clear datagrams are rebuilt with [`packet::push_frame`] and must equal the original bytes;
//! * the per-capture totals equal the decoder's summary counters.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use weft_crypto::{SessionKey, Side, SleeveDecryptor, SleeveHeader, SleeveStream, SLEEVE_OVERHEAD};
use weft_mesh::PeerName;
use weft_pcap::{Capture, UdpDatagram};
use weft_sleeve::link::{
    DropReason, CONNECTION_ESTABLISHED, FRAGMENTATION_RECEIVED, HEARTBEAT_TIMEOUT, PMTU_VERIFIED,
    SLOW_HEARTBEAT,
};
use weft_sleeve::packet::{self, Special};
use weft_sleeve::{HeartbeatLink, LinkConfig, LinkEvent};

const SLEEVE_PORT: u16 = 6783;

use weft_pcap::conformance::{self, read_text};

// ---------------------------------------------------------------- the Python decode

#[derive(Debug)]
struct DecodedFrame {
    src: String,
    dst: String,
    len: usize,
    desc: String,
}

#[derive(Debug)]
struct DecodedEncryption {
    df_stream: bool,
    seq: u64,
    box_len: usize,
    nonce_byte0: u8,
}

#[derive(Debug)]
struct DecodedPacket {
    /// pcap frame number (of the packet completing the datagram).
    number: usize,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    len: usize,
    df: bool,
    sender: String,
    encryption: Option<DecodedEncryption>,
    frames: Vec<DecodedFrame>,
}

#[derive(Debug, Default)]
struct Decoded {
    packets: Vec<DecodedPacket>,
    /// (Name, ConnID) of every features message.
    features: Vec<(String, u64)>,
    summary: HashMap<String, u64>,
}

impl Decoded {
    fn count(&self, key: &str) -> u64 {
        self.summary.get(key).copied().unwrap_or(0)
    }

    /// connUID of the one connection in the capture: XOR of the two ConnIDs.
    fn conn_uid(&self) -> u64 {
        assert_eq!(
            self.features.len(),
            2,
            "expected one features message per direction: {:?}",
            self.features
        );
        self.features[0].1 ^ self.features[1].1
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        + key.len();
    let rest = &line[start..];
    let end = rest.find([',', ' ', ':']).unwrap_or(rest.len());
    &rest[..end]
}

/// Whether a line is a top-level packet line: `<frame number> <time> …`.
fn packet_line(line: &str) -> Option<(usize, Vec<&str>)> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let number = tokens.first()?.parse().ok()?;
    let time = tokens.get(1)?;
    if !time.contains('.') || time.parse::<f64>().is_err() {
        return None;
    }
    Some((number, tokens))
}

fn parse_decoded(text: &str) -> Decoded {
    let mut d = Decoded::default();
    // Whether the latest packet line was a sleeve UDP packet (frame lines belong to it).
    let mut in_sleeve = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("#   ") {
            let (key, value) = rest.trim().rsplit_once(' ').unwrap();
            d.summary
                .insert(key.trim().to_string(), value.parse().unwrap());
            continue;
        }
        if trimmed.starts_with("ConnID=") && trimmed.contains("Name=") {
            let conn_id = field(trimmed, "ConnID=").parse().unwrap();
            let name = trimmed
                .split(", ")
                .find_map(|kv| kv.strip_prefix("Name="))
                .unwrap();
            d.features.push((name.to_string(), conn_id));
            continue;
        }
        if let Some((number, tokens)) = packet_line(line) {
            in_sleeve = false;
            if tokens[2] != "UDP" {
                continue;
            }
            // <n> <t> UDP <src> -> <dst> len=<n> [DF] csum=<x> [...]
            let src: SocketAddrV4 = tokens[3].parse().unwrap();
            let dst: SocketAddrV4 = tokens[5].parse().unwrap();
            if dst.port() != SLEEVE_PORT {
                continue;
            }
            let len = tokens[6].strip_prefix("len=").unwrap().parse().unwrap();
            let df = tokens[7] == "DF";
            d.packets.push(DecodedPacket {
                number,
                src,
                dst,
                len,
                df,
                sender: String::new(),
                encryption: None,
                frames: Vec::new(),
            });
            in_sleeve = true;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            in_sleeve = false;
            continue;
        }
        if !in_sleeve {
            continue;
        }
        let p = d.packets.last_mut().unwrap();
        if let Some(sender) = trimmed.strip_prefix("sleeve: sender ") {
            p.sender = sender.to_string();
        } else if let Some(rest) = trimmed.strip_prefix("sleeve ENCRYPTED: sender ") {
            // <name>, <DF|non-DF> stream seq <n>, box <n> bytes [decrypted, nonce byte0 <xx>]
            let parts: Vec<&str> = rest.split(", ").collect();
            p.sender = parts[0].to_string();
            let stream: Vec<&str> = parts[1].split(' ').collect();
            assert_eq!(&stream[1..3], ["stream", "seq"], "{line}");
            let box_len = parts[2]
                .strip_prefix("box ")
                .and_then(|s| s.strip_suffix(" bytes [decrypted"))
                .unwrap_or_else(|| {
                    panic!("packet {number} not decrypted: {line}", number = p.number)
                });
            let nonce = parts[3]
                .strip_prefix("nonce byte0 ")
                .and_then(|s| s.strip_suffix(']'))
                .unwrap();
            p.encryption = Some(DecodedEncryption {
                df_stream: stream[0] == "DF",
                seq: stream[3].parse().unwrap(),
                box_len: box_len.parse().unwrap(),
                nonce_byte0: u8::from_str_radix(nonce, 16).unwrap(),
            });
        } else if let Some(rest) = trimmed.strip_prefix("frame ") {
            // src=<name> dst=<name> len=<n>: <description>
            let (head, desc) = rest.split_once(": ").unwrap();
            let head: Vec<&str> = head.split(' ').collect();
            p.frames.push(DecodedFrame {
                src: head[0].strip_prefix("src=").unwrap().to_string(),
                dst: head[1].strip_prefix("dst=").unwrap().to_string(),
                len: head[2].strip_prefix("len=").unwrap().parse().unwrap(),
                desc: desc.to_string(),
            });
        } else {
            panic!("unexpected line in a sleeve packet: {line:?}");
        }
    }
    d
}

// ---------------------------------------------------------------- describing frames

/// What a frame is, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Heartbeat,
    MtuTest,
    FragTest,
    Arp,
    Icmp,
    OtherIpv4,
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The frame in the words of `weavepcap.py`, from weft's classification and the bytes.
fn describe(data: &[u8], conn_uid: u64) -> (Kind, String) {
    if let Some(special) = packet::special(data) {
        return match special {
            Special::Heartbeat(uid) => {
                let tail = if uid == conn_uid {
                    " == connUID from features".to_string()
                } else {
                    format!(" != features connUID {conn_uid}")
                };
                (
                    Kind::Heartbeat,
                    format!("special HEARTBEAT connUID={uid} ({uid:#018x}){tail}"),
                )
            }
            Special::FragTest => {
                assert_eq!(data.len(), packet::FRAG_TEST_LEN);
                (
                    Kind::FragTest,
                    "special FRAGMENTATION TEST (60001 zero bytes)".to_string(),
                )
            }
            Special::MtuTest(len) => {
                assert_eq!(len, data.len());
                (
                    Kind::MtuTest,
                    format!("special MTU TEST {len} bytes (candidate MTU {})", len - 14),
                )
            }
        };
    }
    assert!(data.len() >= 14, "frame of {} bytes", data.len());
    let head = format!("{} -> {} ", mac(&data[6..12]), mac(&data[0..6]));
    match be16(&data[12..14]) {
        0x0806 => {
            let arp = &data[14..];
            assert_eq!(arp.len(), 28, "ARP payload length");
            assert_eq!(&arp[0..6], [0, 1, 8, 0, 6, 4], "Ethernet/IPv4 ARP");
            let op = match be16(&arp[6..8]) {
                1 => "request",
                2 => "reply",
                op => panic!("ARP op {op}"),
            };
            assert_eq!(&arp[8..14], &data[6..12], "ARP sender MAC = Ethernet src");
            (
                Kind::Arp,
                format!(
                    "{head}ARP {op} who-has {} tell {}",
                    ipv4(&arp[24..28]),
                    ipv4(&arp[14..18])
                ),
            )
        }
        0x0800 => {
            let ip = &data[14..];
            assert_eq!(ip[0] >> 4, 4, "IPv4 version");
            let ihl = usize::from(ip[0] & 15) * 4;
            let total = usize::from(be16(&ip[2..4]));
            assert_eq!(total, ip.len(), "IPv4 total length = frame length − 14");
            let flags = be16(&ip[6..8]);
            assert_eq!(flags & 0x3fff, 0, "inner IPv4 packets are not fragments");
            let df = if flags & 0x4000 != 0 { " DF" } else { "" };
            let (sa, da) = (ipv4(&ip[12..16]), ipv4(&ip[16..20]));
            if ip[9] == 1 {
                let icmp = &ip[ihl..];
                let name = match icmp[0] {
                    0 => "echo-reply",
                    8 => "echo-request",
                    t => panic!("ICMP type {t}"),
                };
                let seq = be16(&icmp[6..8]);
                (
                    Kind::Icmp,
                    format!("{head}IPv4 {sa} -> {da} ICMP {name} seq={seq} iplen={total}{df}"),
                )
            } else {
                (
                    Kind::OtherIpv4,
                    format!("{head}IPv4 {sa} -> {da} proto {} iplen={total}{df}", ip[9]),
                )
            }
        }
        et => panic!("unexpected ethertype {et:04x}"),
    }
}

// ---------------------------------------------------------------- replay

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    packets: u64,
    frames: u64,
    heartbeats: u64,
    mtu_tests: u64,
    frag_tests: u64,
    arp: u64,
    icmp: u64,
    other_ipv4: u64,
    /// Ordinary (non-special) frames: ARP + ICMP + other IPv4.
    data_frames: u64,
    /// Packets rebuilt byte for byte with `push_frame` (clear captures).
    rebuilt: u64,
    /// Replays dropped (encrypted capture).
    replays_dropped: u64,
}

impl Totals {
    fn add(&mut self, kind: Kind) {
        self.frames += 1;
        match kind {
            Kind::Heartbeat => self.heartbeats += 1,
            Kind::MtuTest => self.mtu_tests += 1,
            Kind::FragTest => self.frag_tests += 1,
            Kind::Arp => self.arp += 1,
            Kind::Icmp => self.icmp += 1,
            Kind::OtherIpv4 => self.other_ipv4 += 1,
        }
        if matches!(kind, Kind::Arp | Kind::Icmp | Kind::OtherIpv4) {
            self.data_frames += 1;
        }
    }
}

/// The receiving peer of one direction.
struct Receiver {
    link: HeartbeatLink,
    /// An independent decryptor for the same direction (encrypted capture).
    open: Option<SleeveDecryptor>,
    saw_heartbeat: bool,
}

fn name_of(s: &str) -> PeerName {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    PeerName::from_bytes(bytes.try_into().unwrap())
}

fn replay(capture: &str, encrypted: bool) -> (Totals, Decoded) {
    let dir = conformance::dir();
    let pcap = Capture::open(dir.join(format!("{capture}.pcap")))
        .unwrap_or_else(|e| panic!("cannot read {capture}.pcap: {e}"));
    let decoded = parse_decoded(&read_text(&format!("{capture}.decoded.txt")));
    let conn_uid = decoded.conn_uid();
    let keys = if encrypted {
        conformance::keylog(capture)
    } else {
        Vec::new()
    };

    let datagrams: Vec<UdpDatagram> = pcap
        .udp_datagrams()
        .unwrap()
        .into_iter()
        .filter(|d| d.dst.port() == SLEEVE_PORT)
        .collect();
    assert_eq!(
        datagrams.len(),
        decoded.packets.len(),
        "{capture}: sleeve datagrams in the pcap vs the decode"
    );
    assert!(!datagrams.is_empty());

    // Peer name of each underlay address, from the clear sender names.
    let mut names: HashMap<Ipv4Addr, PeerName> = HashMap::new();
    for d in &datagrams {
        let name = packet::sender(&d.payload).unwrap();
        let prev = names.insert(*d.src.ip(), name);
        assert!(
            prev.is_none_or(|p| p == name),
            "{capture}: one name per address"
        );
    }

    let start = Instant::now();
    let t0 = datagrams[0].timestamp;
    let mut receivers: HashMap<(Ipv4Addr, Ipv4Addr), Receiver> = HashMap::new();
    let mut totals = Totals::default();

    for (d, p) in datagrams.iter().zip(&decoded.packets) {
        let what = format!("{capture} frame #{}", p.number);
        assert_eq!((d.src, d.dst), (p.src, p.dst), "{what}: addresses");
        assert_eq!(d.payload.len(), p.len, "{what}: UDP payload length");
        assert_eq!(d.dont_fragment, p.df, "{what}: DF bit");
        let now = start + (d.timestamp - t0);
        totals.packets += 1;

        // Sender name, clear in both formats.
        let sender = packet::sender(&d.payload).unwrap();
        assert_eq!(sender.to_string(), p.sender, "{what}: sender");

        let receiver = receivers
            .entry((*d.src.ip(), *d.dst.ip()))
            .or_insert_with(|| {
                let key = keys.iter().find(|k| k.local.ip() == d.dst.ip());
                assert_eq!(
                    key.is_some(),
                    encrypted,
                    "{what}: keylog line of the receiver"
                );
                let outbound = key.is_some_and(|k| k.outbound);
                let session_key = key.map(|k| SessionKey::from_bytes(k.session_key));
                let cfg = LinkConfig {
                    local: names.get(d.dst.ip()).copied().unwrap_or(sender),
                    remote: sender,
                    conn_uid,
                    outbound,
                    remote_addr: None,
                    session_key: session_key.clone(),
                    heartbeat_interval: SLOW_HEARTBEAT,
                    heartbeat_timeout: HEARTBEAT_TIMEOUT,
                };
                Receiver {
                    link: HeartbeatLink::new(cfg, now),
                    open: session_key
                        .map(|k| SleeveDecryptor::new(&k, Side::from_outbound(outbound))),
                    saw_heartbeat: false,
                }
            });

        // The frame list, decrypted with weft-crypto in the encrypted capture.
        let mut plain = d.payload.clone();
        let list: &[u8] = match &mut receiver.open {
            None => {
                assert!(p.encryption.is_none(), "{what}: decoded as encrypted");
                &plain[packet::CLEAR_HEADER_LEN..]
            }
            Some(open) => {
                let e = p.encryption.as_ref().expect("decoded as clear");
                let header = SleeveHeader::parse(&d.payload).unwrap();
                assert_eq!(header.sender, sender.to_bytes(), "{what}");
                let stream = if e.df_stream {
                    SleeveStream::Df
                } else {
                    SleeveStream::NonDf
                };
                assert_eq!((header.stream, header.seq), (stream, e.seq), "{what}: seq");
                assert_eq!(d.payload.len() - 14, e.box_len, "{what}: box length");
                // The nonce's first byte says the sender is the dialler.
                let receiver_outbound = keys
                    .iter()
                    .find(|k| k.local.ip() == d.dst.ip())
                    .unwrap()
                    .outbound;
                let expect_byte0 = if receiver_outbound { 0x00 } else { 0x80 };
                assert_eq!(e.nonce_byte0, expect_byte0, "{what}: sender side");
                open.open_in_place(&mut plain)
                    .unwrap_or_else(|err| panic!("{what}: does not decrypt: {err}"))
                    .unwrap_or_else(|| panic!("{what}: dropped as a replay"));
                assert_eq!(plain.len() - SLEEVE_OVERHEAD, e.box_len - 16);
                &plain[SLEEVE_OVERHEAD..]
            }
        };

        // Every frame parses and means what the decoder says.
        let frames: Vec<packet::Frame<'_>> = packet::frames(list)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(frames.len(), p.frames.len(), "{what}: frames in the packet");
        let mut expect_events = Vec::new();
        let mut expect_data = Vec::new();
        let mut heartbeat = false;
        for (i, (f, df)) in frames.iter().zip(&p.frames).enumerate() {
            let what = format!("{what} frame {i}");
            assert_eq!(f.src.to_string(), df.src, "{what}: src name");
            assert_eq!(f.dst.to_string(), df.dst, "{what}: dst name");
            assert_eq!(f.data.len(), df.len, "{what}: length");
            assert_eq!(f.src, name_of(&df.src));
            let (kind, desc) = describe(f.data, conn_uid);
            assert_eq!(desc, df.desc, "{what}: description");
            totals.add(kind);
            match kind {
                Kind::Heartbeat => heartbeat = true,
                Kind::FragTest => {
                    expect_events.push(LinkEvent::SendControl(FRAGMENTATION_RECEIVED, Vec::new()))
                }
                Kind::MtuTest => expect_events.push(LinkEvent::SendControl(
                    PMTU_VERIFIED,
                    u16::try_from(f.data.len() - 14)
                        .unwrap()
                        .to_be_bytes()
                        .to_vec(),
                )),
                _ => expect_data.push((f.src, f.dst, f.data.to_vec())),
            }
        }
        if heartbeat && !receiver.saw_heartbeat {
            receiver.saw_heartbeat = true;
            expect_events.push(LinkEvent::SendControl(CONNECTION_ESTABLISHED, Vec::new()));
        }

        // Clear packets: rebuild the bytes from the frames.
        if !encrypted {
            let mut out = sender.to_bytes().to_vec();
            for f in &frames {
                assert!(packet::push_frame(&mut out, f.src, f.dst, f.data));
            }
            assert!(
                out == d.payload,
                "{what}: push_frame does not rebuild the datagram"
            );
            totals.rebuilt += 1;
        }

        // The receiving link accepts it, hands out the ordinary frames and answers specials.
        let from = SocketAddr::V4(d.src);
        let mut bytes = d.payload.clone();
        let mut delivered = Vec::new();
        receiver
            .link
            .handle_datagram_frames(now, from, &mut bytes, |f| {
                delivered.push((f.src, f.dst, f.data.to_vec()))
            })
            .unwrap_or_else(|err| panic!("{what}: link drops it: {err}"));
        assert!(delivered == expect_data, "{what}: frames handed out");
        let events: Vec<LinkEvent> = std::iter::from_fn(|| receiver.link.poll_event()).collect();
        assert_eq!(events, expect_events, "{what}: link events");
        if heartbeat {
            assert_eq!(
                receiver.link.remote_addr(),
                Some(from),
                "{what}: UDP address"
            );
        }

        // Replaying an encrypted packet yields nothing.
        if encrypted {
            let mut again = d.payload.clone();
            let mut leaked = 0;
            let r = receiver.link.handle_datagram_frames(
                now + Duration::from_millis(1),
                from,
                &mut again,
                |_| leaked += 1,
            );
            assert_eq!(r, Err(DropReason::Replay), "{what}: replay");
            assert_eq!(leaked, 0, "{what}: replay delivered frames");
            assert_eq!(receiver.link.poll_event(), None, "{what}: replay events");
            totals.replays_dropped += 1;
        }
    }

    // Each direction heard heartbeats.
    assert_eq!(receivers.len(), 2, "{capture}: two directions");
    assert!(receivers.values().all(|r| r.saw_heartbeat));
    (totals, decoded)
}

/// The totals against the decoder's summary counters.
fn check_summary(capture: &str, t: &Totals, d: &Decoded, encrypted: bool) {
    let packets = if encrypted {
        "sleeve encrypted packets"
    } else {
        "sleeve plain packets"
    };
    let got = [
        (packets, t.packets),
        ("sleeve heartbeat frames", t.heartbeats),
        ("sleeve MTU-test frames", t.mtu_tests),
        ("sleeve frag-test frames", t.frag_tests),
        ("sleeve ARP frames", t.arp),
        ("sleeve ICMP frames", t.icmp),
        ("sleeve other IPv4 frames", t.other_ipv4),
        ("sleeve other frames", 0),
        ("sleeve decrypt failures", 0),
    ];
    for (key, value) in got {
        assert_eq!(d.count(key), value, "{capture}: summary {key:?}");
    }
    let decoded_frames: usize = d.packets.iter().map(|p| p.frames.len()).sum();
    assert_eq!(t.frames, decoded_frames as u64, "{capture}: frames");
    assert_eq!(
        t.frames,
        t.heartbeats + t.mtu_tests + t.frag_tests + t.data_frames
    );
}

#[allow(clippy::too_many_arguments)]
fn run(
    capture: &str,
    encrypted: bool,
    packets: u64,
    heartbeats: u64,
    mtu_tests: u64,
    frag_tests: u64,
    arp: u64,
    icmp: u64,
    other_ipv4: u64,
) {
    let (t, d) = replay(capture, encrypted);
    check_summary(capture, &t, &d, encrypted);
    let data_frames = arp + icmp + other_ipv4;
    let expect = Totals {
        packets,
        frames: heartbeats + mtu_tests + frag_tests + data_frames,
        heartbeats,
        mtu_tests,
        frag_tests,
        arp,
        icmp,
        other_ipv4,
        data_frames,
        rebuilt: if encrypted { 0 } else { packets },
        replays_dropped: if encrypted { packets } else { 0 },
    };
    assert_eq!(t, expect, "{capture}: totals");
    eprintln!("{capture}: {t:?}");
}

#[test]
fn a_2peer_plain() {
    run("a-2peer-plain", false, 38, 10, 2, 2, 4, 20, 0);
}

#[test]
fn c_3peer_line_h1_h2() {
    run("c-3peer-line-h2-ua", false, 44, 10, 2, 2, 8, 22, 0);
}

#[test]
fn c_3peer_line_h2_h3() {
    run("c-3peer-line-h2-ub", false, 37, 10, 3, 2, 5, 16, 1);
}

#[test]
fn bk_2peer_encrypted_keylog() {
    run("bk-2peer-encrypted-keylog", true, 38, 10, 2, 2, 4, 20, 0);
}
