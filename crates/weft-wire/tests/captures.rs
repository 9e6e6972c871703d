//! Conformance against real Weave Net 2.8.1 sessions captured in
//! `shared/conformance/`.
//!
//! For each TCP direction of each capture, a [`Connection`] plays the
//! receiving peer: it is fed the bytes that peer received (in several
//! chunkings) and must decode every message. The result is compared with
//! `*.decoded.txt`, written by the independent Python decoder `weavepcap.py`:
//! the features map and connection UID, then every message in order (tag,
//! wire length, gossip channel/source/payload size, overlay index/inner
//! tag/data), and the per-tag and per-channel totals of its summary. Each
//! gossip envelope is also re-encoded and compared byte for byte with the
//! original (envelopes contain no gob maps, so Go's bytes are canonical).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::time::Instant;

use weft_crypto::{EphemeralKeyPair, SessionKey, Side, TcpOpener, TAG_LEN};
use weft_mesh::PeerName;
use weft_pcap::Capture;
use weft_wire::{
    Config, Connection, Event, Features, GossipEnvelope, LocalIdentity, Message, RemotePeer, Tag,
    UnicastEnvelope,
};

use weft_pcap::conformance::{self, hex, keylog, read_text};

// ------------------------------------------------------- decoded.txt model

#[derive(Debug, Clone, PartialEq, Eq)]
enum Detail {
    None,
    Envelope {
        channel: String,
        src: String,
        dst: Option<String>,
        payload_len: usize,
    },
    Overlay {
        index: u8,
        inner: u8,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct ExpectedMsg {
    index: usize,
    wire_len: usize,
    tag: u8,
    detail: Detail,
}

#[derive(Debug, Default)]
struct ExpectedDir {
    features: Vec<(String, String)>,
    features_len: usize,
    public_key: Option<Vec<u8>>,
    messages: Vec<ExpectedMsg>,
}

#[derive(Debug, Default)]
struct Expected {
    /// Keyed by sender address.
    dirs: HashMap<SocketAddrV4, ExpectedDir>,
    conn_uid: Option<u64>,
    summary: BTreeMap<String, usize>,
}

fn token_after<'a>(tokens: &[&'a str], key: &str) -> Option<&'a str> {
    tokens
        .iter()
        .position(|t| *t == key)
        .and_then(|i| tokens.get(i + 1).copied())
}

fn parse_decoded(text: &str) -> Expected {
    let mut exp = Expected::default();
    let mut current: Option<SocketAddrV4> = None;
    let mut pending_features = false;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("#   ") {
            let mut parts: Vec<&str> = rest.split_whitespace().collect();
            if let Some(n) = parts.pop().and_then(|n| n.parse().ok()) {
                exp.summary.insert(parts.join(" "), n);
            }
            continue;
        }
        if t.get(2) == Some(&"TCP") {
            current = Some(t[3].parse().unwrap());
            continue;
        }
        if t.get(2) == Some(&"UDP") || t.get(2) == Some(&"ARP") {
            current = None;
            continue;
        }
        let Some(src) = current else { continue };
        let dir = exp.dirs.entry(src).or_default();
        let trimmed = line.trim_start();
        if pending_features {
            pending_features = false;
            dir.features = trimmed
                .split(", ")
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            dir.features.sort();
            continue;
        }
        if trimmed.starts_with("crypto flag: 01") {
            dir.public_key = Some(hex(t.last().unwrap()));
        } else if trimmed.starts_with("msg #0 features:") {
            dir.features_len = token_after(&t, "length").unwrap().parse().unwrap();
            pending_features = true;
        } else if trimmed.starts_with("connUID") {
            exp.conn_uid = Some(t[6].parse().unwrap());
        } else if trimmed.starts_with("msg #") {
            let index = t[1]
                .trim_start_matches('#')
                .trim_end_matches(':')
                .parse()
                .unwrap();
            let wire_len = token_after(&t, "length").unwrap().parse().unwrap();
            let tag: u8 = token_after(&t, "tag").unwrap().parse().unwrap();
            let detail = if tag == 7 {
                let data = t
                    .iter()
                    .find_map(|x| x.strip_prefix("data="))
                    .map(hex)
                    .unwrap_or_default();
                Detail::Overlay {
                    index: token_after(&t, "index").unwrap().parse().unwrap(),
                    inner: token_after(&t, "inner").unwrap().parse().unwrap(),
                    data,
                }
            } else {
                Detail::None
            };
            dir.messages.push(ExpectedMsg {
                index,
                wire_len,
                tag,
                detail,
            });
        } else if trimmed.starts_with("envelope:") {
            let kv: HashMap<&str, &str> = t.iter().filter_map(|x| x.split_once('=')).collect();
            let last = dir
                .messages
                .last_mut()
                .expect("envelope before its message");
            last.detail = Detail::Envelope {
                channel: kv["channel"].trim_matches('\'').to_string(),
                src: kv["src"].to_string(),
                dst: kv.get("dst").map(|d| d.to_string()),
                payload_len: kv["payload"].parse().unwrap(),
            };
        }
    }
    exp
}

// ------------------------------------------------------------------ keylog

// ------------------------------------------------- independent raw splitter

/// Splits one direction's stream into message plaintexts (the features
/// first), without the connection, opening them with `key` if given.
fn raw_plaintexts(stream: &[u8], key: Option<(&SessionKey, Side)>) -> Vec<Vec<u8>> {
    let mut pos = 7 + if key.is_some() { 33 } else { 1 };
    let mut opener = key.map(|(k, receiver)| TcpOpener::new(k, receiver));
    let mut out = Vec::new();
    while pos < stream.len() {
        let len = u32::from_be_bytes(stream[pos..pos + 4].try_into().unwrap()) as usize;
        let mut body = stream[pos + 4..pos + 4 + len].to_vec();
        pos += 4 + len;
        out.push(match &mut opener {
            Some(o) => o.open_in_place(&mut body).unwrap().to_vec(),
            None => body,
        });
    }
    out
}

// ------------------------------------------------------------------ checks

struct Receiver {
    identity: LocalIdentity,
    side: Side,
    /// Private key and password, on an encrypted connection.
    key: Option<([u8; 32], String)>,
}

fn feature<'a>(f: &'a [(String, String)], key: &str) -> &'a str {
    &f.iter().find(|(k, _)| k == key).unwrap().1
}

/// Feeds `stream` to a fresh receiving connection in chunks of `chunk`
/// bytes and returns the remote identity and all messages.
fn receive(stream: &[u8], rx: &Receiver, chunk: usize) -> (RemotePeer, Vec<Event>) {
    let now = Instant::now();
    let features = Features::standard(&rx.identity, "receiver", 1, false, Some("sleeve"));
    let mut config = Config::new(rx.identity, features);
    let mut conn = match &rx.key {
        Some((kp, pw)) => {
            config = config.with_password(pw.as_bytes());
            let kp = EphemeralKeyPair::from_private_bytes(*kp);
            Connection::with_key_pair(config, rx.side, kp, now)
        }
        None => Connection::with_key_pair(
            config,
            rx.side,
            EphemeralKeyPair::from_private_bytes([9; 32]),
            now,
        ),
    };
    for part in stream.chunks(chunk) {
        conn.handle_input(part, now)
            .unwrap_or_else(|e| panic!("receiving side failed: {e}"));
        let _ = conn.poll_transmit();
    }
    assert_eq!(
        conn.buffered_input(),
        0,
        "stream ends on a message boundary"
    );
    let mut events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    let Event::HandshakeDone(remote) = events.remove(0) else {
        panic!("first event must be HandshakeDone");
    };
    (*remote, events)
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Totals {
    by_tag: BTreeMap<String, usize>,
    by_channel: BTreeMap<String, usize>,
    features: usize,
}

fn check_capture(base: &str, keylog_name: Option<&str>) -> Totals {
    let cap = Capture::open(conformance::dir().join(format!("{base}.pcap"))).unwrap();
    let streams = cap.tcp_streams().unwrap();
    assert_eq!(streams.len(), 1, "{base}: one mesh TCP connection");
    let s = &streams[0];
    let exp = parse_decoded(&read_text(&format!("{base}.decoded.txt")));
    let keys = keylog_name.map(keylog);
    let mut totals = Totals::default();

    for (sender, receiver, stream, receiver_side) in [
        (s.client, s.server, &s.client_bytes, Side::Inbound),
        (s.server, s.client, &s.server_bytes, Side::Outbound),
    ] {
        let sent = &exp.dirs[&sender];
        let back = &exp.dirs[&receiver];
        // The receiver's identity, from its own features (other direction).
        let identity = LocalIdentity {
            name: feature(&back.features, "Name").parse().unwrap(),
            uid: feature(&back.features, "UID").parse().unwrap(),
            conn_id: feature(&back.features, "ConnID").parse().unwrap(),
        };
        let entry = keys.as_ref().map(|k| {
            k.iter()
                .find(|e| e.local == receiver)
                .expect("keylog entry")
        });
        let rx = Receiver {
            identity,
            side: receiver_side,
            key: entry.map(|e| (e.local_priv, e.password.clone())),
        };
        let session = entry.map(|e| SessionKey::from_bytes(e.session_key));
        assert_eq!(
            sent.public_key.is_some(),
            session.is_some(),
            "{base}: crypto flag"
        );

        let (remote, events) = receive(stream, &rx, stream.len());
        // Any chunking yields the same result.
        for chunk in [1, 7, 1448] {
            assert_eq!(
                receive(stream, &rx, chunk),
                (remote.clone(), events.clone())
            );
        }

        // Features and identity.
        let mut got: Vec<(String, String)> = remote
            .features
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        got.sort();
        assert_eq!(got, sent.features, "{base}: features from {sender}");
        totals.features += 1;
        assert_eq!(
            remote.name,
            feature(&sent.features, "Name").parse::<PeerName>().unwrap()
        );
        assert_eq!(remote.nick_name, feature(&sent.features, "NickName"));
        assert_eq!(remote.overlays, Some(vec!["sleeve".to_string()]));
        assert_eq!(Some(remote.conn_uid), exp.conn_uid, "{base}: connUID");
        assert_eq!(remote.session_key, session);
        let overhead = if session.is_some() { TAG_LEN } else { 0 };

        // Independent split of the same bytes, for the re-encoding check.
        let raw = raw_plaintexts(stream, session.as_ref().map(|k| (k, receiver_side)));
        assert_eq!(raw.len(), 1 + sent.messages.len());
        assert_eq!(raw[0].len() + overhead, sent.features_len);

        assert_eq!(
            events.len(),
            sent.messages.len(),
            "{base}: messages from {sender}"
        );
        for ((ev, want), plain) in events.iter().zip(&sent.messages).zip(&raw[1..]) {
            let Event::Message(msg) = ev else {
                panic!("unexpected event {ev:?}");
            };
            let ctx = format!("{base}: {sender} msg #{}", want.index);
            assert_eq!(msg.tag(), want.tag, "{ctx}");
            let tag = Tag::from_u8(msg.tag()).unwrap();
            *totals.by_tag.entry(tag.name().to_string()).or_default() += 1;
            // Re-encoding reproduces Go's bytes exactly.
            let payload = msg.encode_payload();
            assert_eq!(&plain[1..], &payload[..], "{ctx}: re-encoded payload");
            assert_eq!(1 + payload.len() + overhead, want.wire_len, "{ctx}: length");
            match (msg, &want.detail) {
                (Message::Heartbeat, Detail::None) => {}
                (Message::OverlayControl(m), Detail::Overlay { index, inner, data }) => {
                    assert_eq!((m.index, m.tag, &m.data), (*index, *inner, data), "{ctx}");
                }
                (
                    Message::Gossip(e) | Message::GossipBroadcast(e),
                    Detail::Envelope {
                        channel,
                        src,
                        dst: None,
                        payload_len,
                    },
                ) => {
                    assert_eq!(&e.channel, channel, "{ctx}");
                    assert_eq!(&e.src.to_string(), src, "{ctx}");
                    assert_eq!(e.payload.len(), *payload_len, "{ctx}");
                    assert_eq!(GossipEnvelope::decode(&e.encode()).unwrap(), *e);
                    if e.channel == "topology" {
                        // The mesh core decodes Weave's topology payload, and what it encodes
                        // from the result decodes to the same update.
                        let update = weft_mesh::gossip::decode_topology(&e.payload)
                            .unwrap_or_else(|err| panic!("{ctx}: topology payload: {err}"));
                        assert!(!update.is_empty(), "{ctx}: empty topology update");
                        let again = weft_mesh::gossip::encode_topology(&update);
                        assert_eq!(
                            weft_mesh::gossip::decode_topology(&again).unwrap(),
                            update,
                            "{ctx}: topology re-encoding"
                        );
                    }
                    *totals.by_channel.entry(e.channel.clone()).or_default() += 1;
                }
                (
                    Message::GossipUnicast(e),
                    Detail::Envelope {
                        channel,
                        src,
                        dst: Some(dst),
                        payload_len,
                    },
                ) => {
                    assert_eq!(&e.channel, channel, "{ctx}");
                    assert_eq!(&e.src.to_string(), src, "{ctx}");
                    assert_eq!(&e.dst.to_string(), dst, "{ctx}");
                    assert_eq!(e.payload.len(), *payload_len, "{ctx}");
                    assert_eq!(UnicastEnvelope::decode(&e.encode()).unwrap(), *e);
                    *totals.by_channel.entry(e.channel.clone()).or_default() += 1;
                }
                (m, d) => panic!("{ctx}: decoded {m:?}, weavepcap says {d:?}"),
            }
        }
    }

    // The decoder's summary totals.
    let summary = |k: &str| exp.summary.get(k).copied().unwrap_or(0);
    assert_eq!(totals.features, summary("features msgs"));
    for name in [
        "Gossip",
        "Heartbeat",
        "OverlayControlMsg",
        "GossipUnicast",
        "GossipBroadcast",
    ] {
        assert_eq!(
            totals.by_tag.get(name).copied().unwrap_or(0),
            summary(&format!("TCP msg {name}")),
            "{base}: total {name}"
        );
    }
    for (channel, n) in &totals.by_channel {
        assert_eq!(
            *n,
            summary(&format!("gossip channel {channel}")),
            "{base}: {channel}"
        );
    }
    totals
}

fn totals(gossip: usize, heartbeat: usize, overlay: usize, channels: &[(&str, usize)]) -> Totals {
    Totals {
        by_tag: [
            ("Gossip".to_string(), gossip),
            ("Heartbeat".to_string(), heartbeat),
            ("OverlayControlMsg".to_string(), overlay),
        ]
        .into_iter()
        .collect(),
        by_channel: channels.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        features: 2,
    }
}

#[test]
fn capture_a_2peer_plain() {
    assert_eq!(
        check_capture("a-2peer-plain", None),
        totals(10, 2, 6, &[("IPallocation", 4), ("topology", 6)])
    );
}

#[test]
fn capture_bk_2peer_encrypted_with_keylog() {
    assert_eq!(
        check_capture(
            "bk-2peer-encrypted-keylog",
            Some("bk-2peer-encrypted-keylog")
        ),
        totals(10, 2, 6, &[("IPallocation", 4), ("topology", 6)])
    );
}

#[test]
fn capture_c_3peer_line_h1_h2() {
    assert_eq!(
        check_capture("c-3peer-line-h2-ua", None),
        totals(12, 2, 6, &[("IPallocation", 4), ("topology", 8)])
    );
}

#[test]
fn capture_c_3peer_line_h2_h3() {
    assert_eq!(
        check_capture("c-3peer-line-h2-ub", None),
        totals(10, 2, 7, &[("IPallocation", 4), ("topology", 6)])
    );
}

/// The wrong password on the receiving side: the features fail to decrypt.
#[test]
fn capture_bk_with_wrong_password() {
    let cap = Capture::open(conformance::dir().join("bk-2peer-encrypted-keylog.pcap")).unwrap();
    let s = &cap.tcp_streams().unwrap()[0];
    let entry = keylog("bk-2peer-encrypted-keylog")
        .into_iter()
        .find(|e| e.local == s.server)
        .unwrap();
    let id = LocalIdentity {
        name: PeerName::from_u64(1).unwrap(),
        uid: 1,
        conn_id: 1,
    };
    let config = Config::new(id, Features::new()).with_password("not-the-password");
    let mut conn = Connection::with_key_pair(
        config,
        Side::Inbound,
        EphemeralKeyPair::from_private_bytes(entry.local_priv),
        Instant::now(),
    );
    assert_eq!(
        conn.handle_input(&s.client_bytes, Instant::now()),
        Err(weft_wire::ConnectionError::PasswordMismatch)
    );
}
