//! Conformance against a real Weave Net 2.8.1 encrypted session.
//!
//! `shared/conformance/bk-2peer-encrypted-keylog.pcap` was captured between
//! two stock-protocol weavers with `--password weft-test-password`, and
//! `.keylog` holds each end's ephemeral keys and session key. This test
//!
//! 1. re-derives both session keys from the logged private/public keys and
//!    password, and checks the logged public keys;
//! 2. reassembles both TCP directions from the pcap, checks the handshake
//!    (header, crypto flag, public key) and opens *every* length-prefixed
//!    message with [`TcpOpener`];
//! 3. reassembles UDP (including IP fragments) and opens every sleeve packet
//!    with [`SleeveDecryptor`], then checks that replaying each is dropped
//!    silently;
//! 4. compares the message/packet lists with `…decoded.txt`, written by the
//!    independent Python decoder `weavepcap.py`.
//!
//! The pcap reader below handles exactly what this capture contains: classic
//! little-endian pcap, Ethernet, IPv4, TCP and UDP, no loss.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use weft_crypto::{
    EphemeralKeyPair, SessionKey, Side, SleeveDecryptor, SleeveHeader, SleeveStream, TcpOpener,
    SLEEVE_OVERHEAD,
};

use weft_pcap::conformance::{self, KeylogEntry};

const CAPTURE: &str = "bk-2peer-encrypted-keylog";

fn read(name: &str) -> Vec<u8> {
    conformance::read(name)
}

fn keylog() -> Vec<KeylogEntry> {
    conformance::keylog(CAPTURE)
}

// ---------------------------------------------------------------- pcap

type Flow = (SocketAddrV4, SocketAddrV4);

/// One IP fragment: byte offset, bytes, more-fragments flag.
type Fragment = (usize, Vec<u8>, bool);

#[derive(Default)]
struct Capture {
    /// In-order TCP payload of each direction.
    tcp: HashMap<Flow, Vec<u8>>,
    /// UDP datagrams (reassembled), in capture order.
    udp: Vec<(Flow, Vec<u8>)>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_pcap(data: &[u8]) -> Capture {
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "classic LE pcap expected"
    );
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet link type expected"
    );
    let mut cap = Capture::default();
    let mut next_seq: HashMap<Flow, u32> = HashMap::new();
    // (src, dst, IP id) -> fragments seen so far
    let mut frags: HashMap<(Ipv4Addr, Ipv4Addr, u16), Vec<Fragment>> = HashMap::new();
    let mut pos = 24;
    while pos < data.len() {
        let incl = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let frame = &data[pos + 16..pos + 16 + incl];
        pos += 16 + incl;
        if frame.len() < 14 || be16(&frame[12..14]) != 0x0800 {
            continue; // underlay ARP
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(be16(&ip[2..4]));
        let ip = &ip[..total]; // drop Ethernet padding
        let flags_off = be16(&ip[6..8]);
        let more = flags_off & 0x2000 != 0;
        let offset = usize::from(flags_off & 0x1fff) * 8;
        let proto = ip[9];
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let mut payload = ip[ihl..].to_vec();
        if more || offset != 0 {
            let key = (src, dst, be16(&ip[4..6]));
            let list = frags.entry(key).or_default();
            list.push((offset, payload, more));
            let Some(done) = reassemble(list) else {
                continue;
            };
            frags.remove(&key);
            payload = done;
        }
        let sport = be16(&payload[0..2]);
        let dport = be16(&payload[2..4]);
        let flow = (SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport));
        match proto {
            6 => {
                let seq = be32(&payload[4..8]);
                let data_off = usize::from(payload[12] >> 4) * 4;
                let tcp_flags = payload[13];
                let body = &payload[data_off..];
                if tcp_flags & 0x02 != 0 {
                    next_seq.insert(flow, seq.wrapping_add(1)); // SYN
                    continue;
                }
                if body.is_empty() {
                    continue;
                }
                let expected = next_seq[&flow];
                assert_eq!(seq, expected, "TCP gap or retransmission in {flow:?}");
                next_seq.insert(flow, seq.wrapping_add(body.len() as u32));
                cap.tcp.entry(flow).or_default().extend_from_slice(body);
            }
            17 => {
                let udp_len = usize::from(be16(&payload[4..6]));
                cap.udp.push((flow, payload[8..udp_len].to_vec()));
            }
            _ => {}
        }
    }
    assert!(frags.is_empty(), "incomplete IP fragment sets");
    cap
}

/// Joins the fragments if the set is complete.
fn reassemble(list: &mut [Fragment]) -> Option<Vec<u8>> {
    list.sort_by_key(|f| f.0);
    let mut out = Vec::new();
    for (offset, bytes, _) in list.iter() {
        if *offset != out.len() {
            return None;
        }
        out.extend_from_slice(bytes);
    }
    (!list.last()?.2).then_some(out)
}

// ---------------------------------------------------------------- decoded.txt

/// What `weavepcap.py` reports: TCP messages `(sender ip:port, counter,
/// sealed length, plaintext length)` and sleeve packets `(sender ip, DF,
/// seq)`, in capture order.
#[derive(Default)]
struct Decoded {
    tcp: Vec<(String, u64, usize, usize)>,
    udp: Vec<(String, bool, u64)>,
}

fn decoded() -> Decoded {
    let text = String::from_utf8(read(&format!("{CAPTURE}.decoded.txt"))).unwrap();
    let mut out = Decoded::default();
    let mut current_src = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() > 5 && (words[2] == "TCP" || words[2] == "UDP") && words[4] == "->" {
            current_src = words[3].to_string();
        } else if line.trim_start().starts_with("msg #") {
            // msg #1: length 356 [decrypted: nonce c0..0000000000000001, plaintext 340 bytes] ...
            let t = line.trim_start().trim_start_matches("msg #");
            let counter: u64 = t[..t.find(|c: char| !c.is_ascii_digit()).unwrap()]
                .parse()
                .unwrap();
            let after = |key: &str| -> usize {
                let i = t.find(key).unwrap() + key.len();
                let rest = &t[i..];
                rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
                    .parse()
                    .unwrap()
            };
            out.tcp.push((
                current_src.clone(),
                counter,
                after("length "),
                after("plaintext "),
            ));
        } else if let Some(rest) = line.trim_start().strip_prefix("sleeve ENCRYPTED: ") {
            // sender 00:00:00:00:00:02, DF stream seq 0, box 52 bytes ...
            let df = rest.contains(", DF stream");
            let i = rest.find("seq ").unwrap() + 4;
            let seq = rest[i..rest[i..].find(',').unwrap() + i].parse().unwrap();
            let ip = current_src.split(':').next().unwrap().to_string();
            out.udp.push((ip, df, seq));
        }
    }
    out
}

// ---------------------------------------------------------------- tests

#[test]
fn keylog_session_keys_rederive() {
    let entries = keylog();
    for e in &entries {
        let pair = EphemeralKeyPair::from_private_bytes(e.local_priv);
        assert_eq!(pair.public_key(), e.local_pub, "public key of {}", e.local);
        let k = pair
            .session_key(&e.remote_pub, e.password.as_bytes())
            .unwrap();
        assert_eq!(k.as_bytes(), &e.session_key, "session key of {}", e.local);
        assert_eq!(e.password, "weft-test-password");
    }
    assert_eq!(entries[0].session_key, entries[1].session_key);
    assert_ne!(entries[0].outbound, entries[1].outbound);
    assert_eq!(entries[0].local_pub, entries[1].remote_pub);
}

struct Setup {
    key: SessionKey,
    /// Address of the dialling end's TCP socket.
    dialer: SocketAddrV4,
    /// Public key each end sent, by its TCP address.
    pubs: HashMap<SocketAddrV4, [u8; 32]>,
    cap: Capture,
}

fn setup() -> Setup {
    let entries = keylog();
    let dialer = entries.iter().find(|e| e.outbound).unwrap().local;
    let pubs = entries.iter().map(|e| (e.local, e.local_pub)).collect();
    let key = SessionKey::from_bytes(entries[0].session_key);
    let cap = parse_pcap(&read(&format!("{CAPTURE}.pcap")));
    Setup {
        key,
        dialer,
        pubs,
        cap,
    }
}

#[test]
fn tcp_stream_decrypts_with_logged_key() {
    let s = setup();
    assert_eq!(s.cap.tcp.len(), 2, "one TCP flow per direction");
    let mut ours = Vec::new();
    // The two directions have independent counters; order does not matter.
    let mut flows: Vec<&Flow> = s.cap.tcp.keys().collect();
    flows.sort();
    for flow in flows {
        let stream = &s.cap.tcp[flow];
        let (src, _dst) = *flow;
        let sender = Side::from_outbound(src == s.dialer);
        // Header, crypto flag 01, the sender's ephemeral public key.
        assert_eq!(&stream[..7], b"weave\x01\x02");
        assert_eq!(stream[7], 0x01, "crypto flag of {src}");
        assert_eq!(&stream[8..40], &s.pubs[&src], "public key sent by {src}");
        let mut opener = TcpOpener::new(&s.key, sender.peer());
        let mut rest = &stream[40..];
        let mut counter = 0u64;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let mut body = rest[4..4 + len].to_vec();
            rest = &rest[4 + len..];
            let plain = opener
                .open_in_place(&mut body)
                .unwrap_or_else(|e| panic!("{src} message #{counter}: {e}"));
            if counter == 0 {
                // Features: a gob stream of map[string]string naming the peer.
                assert_eq!(plain[0], 0x0e);
                let text = String::from_utf8_lossy(plain);
                assert!(text.contains("PeerNameFlavour") && text.contains("Overlays"));
            } else {
                assert!(plain[0] <= 7, "unknown tag {} in #{counter}", plain[0]);
            }
            ours.push((src.to_string(), counter, len, plain.len()));
            counter += 1;
        }
        assert_eq!(opener.counter(), Some(counter));
        assert!(counter >= 10, "expected at least 10 messages from {src}");
    }
    // Same messages as the independent decoder found (compare per direction).
    let mut theirs = decoded().tcp;
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn tcp_stream_rejects_wrong_polarity_and_skips() {
    let s = setup();
    let flow = *s.cap.tcp.keys().find(|f| f.0 == s.dialer).unwrap();
    let stream = &s.cap.tcp[&flow];
    let first_len = u32::from_be_bytes(stream[40..44].try_into().unwrap()) as usize;
    let first = stream[44..44 + first_len].to_vec();
    // Opening the dialer's message #0 as if the acceptor had sent it fails.
    let mut wrong = TcpOpener::new(&s.key, Side::Outbound);
    assert!(wrong.open_in_place(&mut first.clone()).is_err());
    // Skipping message #0 makes #1 fail: the stream is strictly ordered.
    let second_off = 44 + first_len;
    let second_len =
        u32::from_be_bytes(stream[second_off..second_off + 4].try_into().unwrap()) as usize;
    let mut second = stream[second_off + 4..second_off + 4 + second_len].to_vec();
    let mut right = TcpOpener::new(&s.key, Side::Inbound);
    assert!(right.open_in_place(&mut second).is_err());
    assert!(right.open_in_place(&mut first.clone()).is_ok());
}

#[test]
fn sleeve_packets_decrypt_with_logged_key() {
    let s = setup();
    let dialer_ip = *s.dialer.ip();
    // One decryptor per receiving end; both streams inside.
    let mut at_acceptor = SleeveDecryptor::new(&s.key, Side::Inbound);
    let mut at_dialer = SleeveDecryptor::new(&s.key, Side::Outbound);
    let mut ours = Vec::new();
    let mut heartbeats = 0;
    for ((src, dst), payload) in &s.cap.udp {
        assert_eq!((src.port(), dst.port()), (6783, 6783));
        let from_dialer = *src.ip() == dialer_ip;
        let decryptor = if from_dialer {
            &mut at_acceptor
        } else {
            &mut at_dialer
        };
        let header = SleeveHeader::parse(payload).unwrap();
        let sender_name = [0, 0, 0, 0, 0, src.ip().octets()[3]];
        assert_eq!(header.sender, sender_name);
        assert!(decryptor.is_fresh(&header));
        let mut buf = payload.clone();
        let frames = decryptor
            .open_in_place(&mut buf)
            .unwrap_or_else(|e| panic!("sleeve packet {header:?}: {e}"))
            .expect("no packet in the capture is a replay");
        assert_eq!(frames.len(), payload.len() - SLEEVE_OVERHEAD);
        // The plaintext is a well-formed frame list: src, dst, len, frame.
        let mut rest: &[u8] = frames;
        while !rest.is_empty() {
            assert!(rest.len() >= 14);
            let len = usize::from(be16(&rest[12..14]));
            assert!(rest.len() >= 14 + len, "frame overruns the packet");
            if len == 22 && rest[14..28].iter().all(|&b| b == 0) {
                // Sleeve heartbeat: 14 zero bytes then the connection UID.
                assert_eq!(&rest[28..36], &0xef5b_381f_acfa_b8d3u64.to_be_bytes());
                heartbeats += 1;
            }
            rest = &rest[14 + len..];
        }
        // Delivered again: silently dropped.
        let mut again = payload.clone();
        assert!(!decryptor.is_fresh(&header));
        assert_eq!(decryptor.open_in_place(&mut again), Ok(None));
        ours.push((
            src.ip().to_string(),
            header.stream == SleeveStream::Df,
            header.seq,
        ));
    }
    assert_eq!(heartbeats, 10);
    assert_eq!(ours, decoded().udp);
    assert_eq!(ours.len(), 38);
}
