//! Conformance against capture (e) of `shared/conformance/` (Weave Net 2.8.1, two peers,
//! weaveDNS): every `nameserver` message of `e-dns-2peer.pcap` is decoded, re-encoded and
//! compared with Weave's bytes, checked against the capture's documented table, and replayed
//! into record stores (h1's, h2's and a third observer's), whose periodic gossip must be the
//! bytes Weave sent.

use std::net::Ipv4Addr;

use weft_dns::codec::{decode_gossip_with_ids, encode_gossip_with_ids, TypeIds};
use weft_dns::records::Records;
use weft_dns::wire::GossipData;
use weft_gob::Decoder;
use weft_mesh::PeerName;
use weft_pcap::{conformance, Capture};

/// One `nameserver` message as Weave sent it, in the order of its direction of the stream.
#[derive(Debug, Clone)]
struct Msg {
    tag: u8,
    src: PeerName,
    payload: Vec<u8>,
    data: GossipData,
    ids: TypeIds,
}

/// Every nameserver message, with the count of decode errors.
fn nameserver_messages() -> (Vec<Msg>, usize) {
    let cap = Capture::open(conformance::dir().join("e-dns-2peer.pcap")).unwrap();
    let mut out = Vec::new();
    let mut errors = 0;
    for s in cap.tcp_streams().unwrap() {
        if s.server.port() != 6783 {
            continue;
        }
        for bytes in [&s.client_bytes, &s.server_bytes] {
            for (tag, body) in conformance::plain_mesh_messages(bytes) {
                if !matches!(tag, 4..=6) {
                    continue;
                }
                let mut dec = Decoder::new(&body);
                let channel = dec.expect_string().unwrap();
                let src = PeerName::from_u64(dec.expect_uint().unwrap()).unwrap();
                if tag == 5 {
                    dec.expect_uint().unwrap();
                }
                let payload = dec.expect_bytes().unwrap();
                if channel != "nameserver" {
                    continue;
                }
                match decode_gossip_with_ids(&payload) {
                    Ok((data, ids)) => out.push(Msg {
                        tag,
                        src,
                        payload,
                        data,
                        ids,
                    }),
                    Err(e) => {
                        eprintln!("decode error: {e}");
                        errors += 1;
                    }
                }
            }
        }
    }
    (out, errors)
}

fn peer(n: u64) -> PeerName {
    PeerName::from_u64(n).unwrap()
}

#[test]
fn every_nameserver_message_decodes_and_reencodes_to_weaves_bytes() {
    let (msgs, errors) = nameserver_messages();
    assert_eq!(errors, 0);
    assert_eq!(msgs.len(), 34);
    assert_eq!(msgs.iter().filter(|m| m.tag == 4).count(), 4);
    assert_eq!(msgs.iter().filter(|m| m.tag == 6).count(), 30);
    let mut same = 0;
    for m in &msgs {
        if encode_gossip_with_ids(&m.data, m.ids) == m.payload {
            same += 1;
        }
    }
    eprintln!("{same} of {} re-encoded byte for byte", msgs.len());
    // No maps in GossipData: Go's encoding is deterministic, every message must match.
    assert_eq!(same, msgs.len());
    // h1 numbered GossipData 78, h2 75 (h1 had encoded IPAM state before).
    for m in &msgs {
        let want = if m.src == peer(1) {
            TypeIds::WEAVE
        } else {
            TypeIds::WEAVE_DNS_FIRST
        };
        assert_eq!(m.ids, want, "type ids of a message from {}", m.src);
    }
}

#[test]
fn messages_match_the_documented_table() {
    let (msgs, _) = nameserver_messages();
    let bcasts: Vec<&Msg> = msgs.iter().filter(|m| m.tag == 6).collect();
    // 26 registrations, each one 1-entry broadcast, live, version 0.
    let adds: Vec<_> = bcasts
        .iter()
        .filter(|m| m.data.entries.len() == 1)
        .map(|m| &m.data.entries[0])
        .filter(|e| e.version == 0 && e.tombstone == 0)
        .collect();
    assert_eq!(adds.len(), 26);
    let names = |host: &str| adds.iter().filter(|e| e.hostname == host).count();
    assert_eq!(names("web.weave.local."), 2);
    assert_eq!(
        names("db.weave.local."),
        1,
        "db.weave.local stored with its dot"
    );
    assert_eq!(names("MixedCase.weave.local."), 1, "case kept");
    assert_eq!(names("many.weave.local."), 20);
    assert!(adds
        .iter()
        .all(|e| !e.hostname.contains("example.com") && e.hostname != "solo."));

    // DELETE of web 10.32.0.2 on h2: version 1, tombstone at the delete.
    let web2 = bcasts
        .iter()
        .flat_map(|m| &m.data.entries)
        .filter(|e| e.addr == Ipv4Addr::new(10, 32, 0, 2))
        .map(|e| (e.version, e.tombstone))
        .collect::<Vec<_>>();
    assert_eq!(web2, [(0, 0), (1, 1_796_284_336), (2, 0)]);
    // zeta only, then all 20 of `many` in one message.
    let zeta: Vec<_> = bcasts
        .iter()
        .flat_map(|m| &m.data.entries)
        .filter(|e| e.addr == Ipv4Addr::new(10, 32, 0, 5) && e.tombstone != 0)
        .map(|e| (e.hostname.as_str(), e.version))
        .collect();
    assert_eq!(zeta, [("zeta.weave.local.", 1)]);
    let many = bcasts.iter().find(|m| m.data.entries.len() == 20).unwrap();
    assert!(many
        .data
        .entries
        .iter()
        .all(|e| e.hostname == "many.weave.local."
            && e.version == 1
            && e.tombstone == 1_796_284_340));

    // Periodic gossip: the first of each side (h2: 0 entries, h1: `early` only), then the
    // full table: 27 entries, 21 tombstones, case-sensitive order.
    let periodic: Vec<&Msg> = msgs.iter().filter(|m| m.tag == 4).collect();
    let first_h2 = periodic.iter().find(|m| m.src == peer(2)).unwrap();
    assert!(first_h2.data.entries.is_empty());
    let first_h1 = periodic.iter().find(|m| m.src == peer(1)).unwrap();
    assert_eq!(first_h1.data.entries.len(), 1);
    assert_eq!(first_h1.data.entries[0].hostname, "early.weave.local.");
    let full: Vec<&&Msg> = periodic
        .iter()
        .filter(|m| m.data.entries.len() == 27)
        .collect();
    assert_eq!(full.len(), 2);
    for m in full {
        let tombs = m.data.entries.iter().filter(|e| e.tombstone != 0).count();
        assert_eq!(tombs, 21);
        assert_eq!(m.data.entries[0].hostname, "MixedCase.weave.local.");
        assert_eq!(m.data.entries[1].hostname, "alpha.weave.local.");
    }
}

/// Replays the capture as peer `ours` saw it: our own broadcasts become local adds and
/// deletes (whose results must be the entries Weave broadcast), our periodic gossip must be
/// the bytes Weave sent, the other side's messages are merged. Messages are taken in
/// timestamp order, ours first on a tie (each side sends its first gossip before it receives
/// the other's). Returns the store and how many periodic messages matched byte for byte.
fn replay(ours: PeerName, msgs: &[Msg]) -> (Records, usize) {
    let mut order: Vec<&Msg> = msgs.iter().collect();
    order.sort_by_key(|m| (m.data.timestamp, m.src != ours));
    let mut r = Records::new(ours);
    if ours == peer(1) {
        // Registered on h1 before h2 existed: never broadcast on this connection.
        r.add(
            "early.weave.local.",
            "5852e0a407a761079e4004cbf96eb6edfd1396e6a4dc0048095e82d535789ca5",
            Ipv4Addr::new(10, 32, 0, 9),
        )
        .unwrap();
    }
    let mut periodic_same = 0;
    for m in order {
        let now = m.data.timestamp;
        if m.src != ours {
            let known = |p: PeerName| p == peer(1) || p == peer(2);
            let got = r.receive(m.data.clone(), now, known).unwrap();
            // Nothing in the capture contradicts a peer about its own entries.
            assert!(got.corrections.is_empty(), "{ours} corrected {got:?}");
            continue;
        }
        if m.tag == 4 {
            let mine = encode_gossip_with_ids(&r.gossip(now), m.ids);
            assert_eq!(mine, m.payload, "periodic gossip of {ours} at {now}");
            periodic_same += 1;
            continue;
        }
        let done = match m.data.entries.as_slice() {
            [e] if e.tombstone == 0 => vec![r.add(&e.hostname, &e.container_id, e.addr).unwrap()],
            // `DELETE /name/<cid>/<ip>[?fqdn=]`: one entry.
            [e] => r.tombstone(
                e.tombstone,
                Some(&e.container_id),
                Some(e.addr),
                Some(&e.hostname),
            ),
            // `DELETE /name/<cid>`: every entry of the container, in one message.
            [e, ..] => r.container_died(e.tombstone, &e.container_id),
            [] => panic!("an empty broadcast from {ours}"),
        };
        assert_eq!(done, m.data.entries, "our broadcast at {now}");
    }
    (r, periodic_same)
}

#[test]
fn replaying_the_capture_gives_weaves_tables_and_gossip_bytes() {
    let (msgs, _) = nameserver_messages();
    for (ours, want_periodic) in [(peer(1), 2), (peer(2), 2)] {
        let (r, same) = replay(ours, &msgs);
        assert_eq!(same, want_periodic, "periodic messages of {ours}");
        assert_eq!(r.len(), 27);
        assert_eq!(r.live_len(), 6);
        assert_eq!(r.lookup("WEB.Weave.LOCAL.").len(), 2);
        assert_eq!(
            r.reverse(Ipv4Addr::new(10, 32, 0, 5)),
            Some("alpha.weave.local.")
        );
    }

    // A third peer merging every message ends with the same table; its gossip is h1's last
    // periodic message byte for byte.
    let mut observer = Records::new(peer(3));
    for m in &msgs {
        observer
            .receive(m.data.clone(), m.data.timestamp, |_| true)
            .unwrap();
    }
    let last_h1 = msgs
        .iter()
        .rfind(|m| m.tag == 4 && m.src == peer(1))
        .unwrap();
    assert_eq!(
        encode_gossip_with_ids(&observer.gossip(last_h1.data.timestamp), last_h1.ids),
        last_h1.payload
    );

    // `weave stop` of h2 on h1: peer GC drops h2's entries (/status Entries: 4).
    let (mut h1, _) = replay(peer(1), &msgs);
    assert_eq!(h1.remove_origin(peer(2)), 2);
    assert_eq!(h1.live_len(), 4);
    assert!(h1.lookup("mixedcase.weave.local.").is_empty());
    assert_eq!(
        h1.lookup("web.weave.local."),
        vec![Ipv4Addr::new(10, 32, 0, 1)]
    );
}
