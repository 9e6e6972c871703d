//! Conformance of the DNS responder against capture (e) of `shared/conformance/` (Weave Net
//! 2.8.1, two peers): every query h1's and h2's weaveDNS received
//! (`e-dns-2peer-h{1,2}-lo.decoded.txt`, UDP and TCP) is fed to [`weft_dns::answer`] with
//! that peer's record store as it was at that moment (the capture's registrations, deletions
//! and h2's departure replayed in time order, each peer's changes gossiped to the other),
//! and the decision is compared with Weave's answer: byte-equal when the answer order is
//! fixed (at most one record), the same header, question, size and set of records when
//! Weave shuffled, the same header and size and distinct addresses of the name when Weave
//! truncated; Weave's SERVFAILs (upstream failures) must be forwards.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use weft_dns::answer::{answer, AnswerConfig, Decision, Transport};
use weft_dns::records::Records;
use weft_dns::wire::{Entry, GossipData};
use weft_mesh::PeerName;
use weft_pcap::conformance;

/// One DNS message of the decoded capture.
#[derive(Debug, Clone)]
struct Msg {
    /// Seconds since midnight (the capture's UTC time of day).
    time: f64,
    tcp: bool,
    response: bool,
    id: u16,
    bytes: Vec<u8>,
}

fn time_of_day(s: &str) -> f64 {
    let parts: Vec<f64> = s.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The messages of a `weavegossip.py` DNS decode, in capture order.
fn messages(name: &str) -> Vec<Msg> {
    let text = String::from_utf8(conformance::read(name)).unwrap();
    let mut out = Vec::new();
    let (mut time, mut tcp, mut response, mut id) = (0.0, false, false, 0u16);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 4
            && words[0].parse::<u32>().is_ok()
            && (words[3] == "UDP" || words[3] == "TCP")
        {
            time = time_of_day(words[2]);
            tcp = words[3] == "TCP";
        } else if let Some(kind @ ("QUERY" | "RESPONSE")) = words.first().copied() {
            response = kind == "RESPONSE";
            id = u16::from_str_radix(words[1].trim_start_matches("id=0x"), 16).unwrap();
        } else if words.first() == Some(&"hex") {
            let bytes: Vec<u8> = words[3..]
                .iter()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            assert_eq!(words[1], format!("({}", bytes.len()));
            out.push(Msg {
                time,
                tcp,
                response,
                id,
                bytes,
            });
        }
    }
    out
}

/// Unix time of 07:52:00 on the capture's day (any base works: the store only compares).
const BASE: i64 = 1_796_284_320 - 7 * 3600 - 52 * 60;

const H1: u64 = 1;
const H2: u64 = 2;

/// h1's store and h2's; what one peer changes is gossiped to the other, as in the capture.
struct World {
    h1: Records,
    h2: Records,
}

#[derive(Clone, Copy)]
enum Peer {
    H1,
    H2,
}

impl World {
    fn store(&mut self, p: Peer) -> &mut Records {
        match p {
            Peer::H1 => &mut self.h1,
            Peer::H2 => &mut self.h2,
        }
    }

    /// `entries` changed at `from`: the other peer receives them.
    fn gossip(&mut self, from: Peer, now: i64, entries: Vec<Entry>) {
        let to = match from {
            Peer::H1 => Peer::H2,
            Peer::H2 => Peer::H1,
        };
        self.store(to)
            .receive(
                GossipData {
                    timestamp: now,
                    entries,
                },
                now,
                |_| true,
            )
            .unwrap();
    }

    fn add(&mut self, at: Peer, now: i64, name: &str, cid: &str, addr: Ipv4Addr) {
        let e = self.store(at).add(name, cid, addr).unwrap();
        self.gossip(at, now, vec![e]);
    }

    fn tombstone(
        &mut self,
        at: Peer,
        now: i64,
        cid: &str,
        addr: Option<Ipv4Addr>,
        name: Option<&str>,
    ) -> usize {
        let t = self.store(at).tombstone(now, Some(cid), addr, name);
        let n = t.len();
        if n > 0 {
            self.gossip(at, now, t);
        }
        n
    }
}

/// A change of the tables at a unix time.
type Event = dyn Fn(&mut World, i64);

/// The capture's events after the registrations (events.txt), in time order:
/// (time of day, what happened).
fn events() -> Vec<(f64, Box<Event>)> {
    vec![
        (
            time_of_day("07:52:16.008379"),
            Box::new(|w: &mut World, now| {
                let n = w.tombstone(Peer::H2, now, "c-web2", Some(ip(10, 32, 0, 2)), None);
                assert_eq!(n, 1);
            }),
        ),
        (
            time_of_day("07:52:19.202020"),
            // Sent to h1, not the origin: nothing changes.
            Box::new(|w: &mut World, now| {
                let n = w.tombstone(Peer::H1, now, "c-mixed", Some(ip(10, 32, 0, 4)), None);
                assert_eq!(n, 0);
            }),
        ),
        (
            time_of_day("07:52:20.245602"),
            Box::new(|w: &mut World, now| {
                let n = w.tombstone(
                    Peer::H1,
                    now,
                    "c-za",
                    Some(ip(10, 32, 0, 5)),
                    Some("zeta.weave.local."),
                );
                assert_eq!(n, 1);
            }),
        ),
        (
            time_of_day("07:52:20.258841"),
            Box::new(|w: &mut World, now| {
                assert_eq!(w.tombstone(Peer::H1, now, "c-many", None, None), 20);
            }),
        ),
        (
            time_of_day("07:52:21.412747"),
            Box::new(|w: &mut World, now| {
                w.add(
                    Peer::H2,
                    now,
                    "web.weave.local.",
                    "c-web2",
                    ip(10, 32, 0, 2),
                );
            }),
        ),
        (
            time_of_day("07:52:57.750679"),
            Box::new(|w: &mut World, _| {
                w.h1.remove_origin(PeerName::from_u64(H2).unwrap());
            }),
        ),
    ]
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// The tables after steps 1 and 2 (registrations; the ignored ones never reach the store).
fn registered() -> World {
    let now = BASE + 4;
    let mut w = World {
        h1: Records::new(PeerName::from_u64(H1).unwrap()),
        h2: Records::new(PeerName::from_u64(H2).unwrap()),
    };
    w.add(
        Peer::H1,
        now,
        "early.weave.local.",
        "c-early",
        ip(10, 32, 0, 9),
    );
    w.add(
        Peer::H1,
        now,
        "web.weave.local.",
        "c-web1",
        ip(10, 32, 0, 1),
    );
    w.add(
        Peer::H2,
        now,
        "web.weave.local.",
        "c-web2",
        ip(10, 32, 0, 2),
    );
    w.add(Peer::H1, now, "db.weave.local.", "c-db", ip(10, 32, 0, 3));
    w.add(
        Peer::H2,
        now,
        "MixedCase.weave.local.",
        "c-mixed",
        ip(10, 32, 0, 4),
    );
    w.add(Peer::H1, now, "zeta.weave.local.", "c-za", ip(10, 32, 0, 5));
    w.add(
        Peer::H1,
        now,
        "alpha.weave.local.",
        "c-za",
        ip(10, 32, 0, 5),
    );
    for i in 1..=20 {
        w.add(
            Peer::H1,
            now,
            "many.weave.local.",
            "c-many",
            ip(10, 32, 1, i),
        );
    }
    w
}

/// Splits a reply into header, question and answer records (each as its bytes), for
/// uncompressed messages as Weave's and ours.
fn sections(b: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    fn name_end(b: &[u8], mut i: usize) -> usize {
        while b[i] != 0 {
            assert!(b[i] < 0xc0, "compression pointer at {i}");
            i += 1 + b[i] as usize;
        }
        i + 1
    }
    let q_end = name_end(b, 12) + 4;
    let an = u16::from_be_bytes([b[6], b[7]]);
    let mut rrs = Vec::new();
    let mut i = q_end;
    for _ in 0..an {
        let start = i;
        i = name_end(b, i);
        let rdlen = u16::from_be_bytes([b[i + 8], b[i + 9]]) as usize;
        i += 10 + rdlen;
        rrs.push(b[start..i].to_vec());
    }
    assert_eq!(i, b.len(), "nothing after the answers");
    (b[..12].to_vec(), b[12..q_end].to_vec(), rrs)
}

#[derive(Debug, Default)]
struct Tally {
    byte_equal: usize,
    as_sets: usize,
    truncated: usize,
    forwarded: usize,
}

/// Replays the queries of `file` against `peer`'s store; returns the number of exchanges and
/// how each was compared.
fn replay(file: &str, peer: Peer) -> (usize, Tally) {
    let msgs = messages(file);
    let mut world = registered();
    let mut pending = events().into_iter().peekable();
    let cfg = AnswerConfig::default();
    let mut rng = {
        let mut n = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            n
        }
    };
    let mut tally = Tally::default();
    let mut pairs = 0;
    for (qi, q) in msgs.iter().enumerate().filter(|(_, m)| !m.response) {
        let r = msgs[qi + 1..]
            .iter()
            .find(|m| m.response && m.id == q.id && m.tcp == q.tcp)
            .unwrap_or_else(|| panic!("no answer to {:#06x}", q.id));
        while let Some((t, _)) = pending.peek() {
            if *t > q.time {
                break;
            }
            let (t, apply) = pending.next().unwrap();
            apply(&mut world, BASE + t as i64);
        }
        pairs += 1;
        let transport = if q.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let got = answer(&q.bytes, transport, world.store(peer), &cfg, &mut rng);
        let want = &r.bytes;
        let rcode = want[3] & 0x0f;
        if rcode == 2 {
            assert_eq!(
                got,
                Decision::Forward,
                "query {:#06x}: Weave asked upstream",
                q.id
            );
            tally.forwarded += 1;
            continue;
        }
        let Decision::Reply(got) = got else {
            panic!("query {:#06x}: expected a reply, got {got:?}", q.id)
        };
        let (wh, wq, wrr) = sections(want);
        let (gh, gq, grr) = sections(&got);
        assert_eq!(gh, wh, "query {:#06x}: header", q.id);
        assert_eq!(gq, wq, "query {:#06x}: question", q.id);
        assert_eq!(got.len(), want.len(), "query {:#06x}: size", q.id);
        if want[2] & 0x02 != 0 {
            // Truncated: the same number of records, all distinct, all addresses of the name.
            let all: BTreeSet<[u8; 4]> = world
                .store(peer)
                .lookup("many.weave.local.")
                .iter()
                .map(|a| a.octets())
                .collect();
            let set: BTreeSet<&Vec<u8>> = grr.iter().collect();
            assert_eq!(set.len(), grr.len());
            for rr in &grr {
                let a: [u8; 4] = rr[rr.len() - 4..].try_into().unwrap();
                assert!(
                    all.contains(&a),
                    "query {:#06x}: {a:?} not of the name",
                    q.id
                );
            }
            tally.truncated += 1;
        } else if wrr.len() <= 1 {
            assert_eq!(&got, want, "query {:#06x}: bytes", q.id);
            tally.byte_equal += 1;
        } else {
            let g: BTreeSet<_> = grr.into_iter().collect();
            let w: BTreeSet<_> = wrr.into_iter().collect();
            assert_eq!(g, w, "query {:#06x}: records", q.id);
            tally.as_sets += 1;
        }
    }
    (pairs, tally)
}

#[test]
fn h1_answers_match_weave() {
    let (pairs, tally) = replay("e-dns-2peer-h1-lo.decoded.txt", Peer::H1);
    println!("h1: {pairs} exchanges: {tally:?}");
    // The capture's README: 33 UDP + 2 TCP exchanges on h1's lo.
    assert_eq!(pairs, 35);
    // 5 SERVFAILs (2 outside names, 3 PTRs of unknown addresses), the rest answered locally.
    assert_eq!(
        (
            tally.byte_equal,
            tally.as_sets,
            tally.truncated,
            tally.forwarded
        ),
        (18, 10, 2, 5)
    );
}

#[test]
fn h2_answers_match_weave() {
    let (pairs, tally) = replay("e-dns-2peer-h2-lo.decoded.txt", Peer::H2);
    println!("h2: {pairs} exchanges: {tally:?}");
    // The capture's README: 24 UDP + 1 TCP exchanges on h2's lo.
    assert_eq!(pairs, 25);
    assert_eq!(
        (
            tally.byte_equal,
            tally.as_sets,
            tally.truncated,
            tally.forwarded
        ),
        (13, 7, 1, 4)
    );
}
