//! Conformance against capture (d) of `shared/conformance/` (Weave Net 2.8.1, three peers,
//! `--ipalloc-init consensus=3`): every `IPallocation` message of the three pcaps is decoded,
//! checked against the documented ring layouts, re-encoded and compared with Weave's bytes.

use std::collections::BTreeSet;

use weft_gob::Decoder;
use weft_ipam::codec::{self, TypeIds};
use weft_ipam::wire::{GossipState, RingWire, Unicast};
use weft_mesh::PeerName;
use weft_pcap::{conformance, Capture};

/// One IPallocation message as Weave sent it.
#[derive(Debug, Clone)]
struct Msg {
    tag: u8,
    src: PeerName,
    payload: Vec<u8>,
}

fn ipam_messages(base: &str) -> Vec<Msg> {
    let cap = Capture::open(conformance::dir().join(format!("{base}.pcap"))).unwrap();
    let mut out = Vec::new();
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
                if channel == "IPallocation" {
                    out.push(Msg { tag, src, payload });
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    Gossip(GossipState),
    Unicast(Unicast),
}

fn decode(m: &Msg) -> Decoded {
    if m.tag == 5 {
        Decoded::Unicast(codec::decode_unicast(&m.payload).unwrap())
    } else {
        Decoded::Gossip(codec::decode_gossip(&m.payload).unwrap())
    }
}

fn encode(d: &Decoded, ids: TypeIds) -> Vec<u8> {
    match d {
        Decoded::Gossip(g) => codec::encode_gossip_with_ids(g, ids),
        Decoded::Unicast(u) => codec::encode_unicast_with_ids(u, ids),
    }
}

fn gossip_of(d: &Decoded) -> Option<&GossipState> {
    match d {
        Decoded::Gossip(g) | Decoded::Unicast(Unicast::RingUpdate(g)) => Some(g),
        _ => None,
    }
}

/// Go writes maps in random order: only maps of at most one entry have one encoding.
fn deterministic(d: &Decoded) -> bool {
    gossip_of(d)
        .is_none_or(|g| g.nicknames.len() <= 1 && g.paxos.as_ref().is_none_or(|p| p.len() <= 1))
}

/// (token, owner, size, version) of every entry.
type Layout = Vec<(String, String, u64, u32)>;

fn layout(r: &RingWire) -> Layout {
    let n = r.entries.len();
    (0..n)
        .map(|i| {
            let e = r.entries[i];
            let next = r.entries[(i + 1) % n].token;
            let size = if next > e.token {
                u64::from(next - e.token)
            } else {
                u64::from(r.end - e.token) + u64::from(next - r.start)
            };
            let ip = std::net::Ipv4Addr::from(e.token).to_string();
            let h = format!("h{}", e.peer.as_u64());
            (ip, h, size, e.version)
        })
        .collect()
}

/// README "Ring layout" (from `/report` at each step).
fn documented_layouts() -> Vec<(&'static str, Layout)> {
    let row = |cells: &[(&str, &str, u64, u32)]| {
        cells
            .iter()
            .map(|&(t, h, s, v)| (t.to_string(), h.to_string(), s, v))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "1 consensus",
            row(&[
                ("10.32.0.0", "h1", 524288, 0),
                ("10.40.0.0", "h3", 524288, 0),
            ]),
        ),
        (
            "2 allocate",
            row(&[
                ("10.32.0.0", "h1", 524288, 2),
                ("10.40.0.0", "h3", 262144, 1),
                ("10.44.0.0", "h2", 262144, 0),
            ]),
        ),
        (
            "3 claim",
            row(&[
                ("10.32.0.0", "h1", 100, 4),
                ("10.32.0.100", "h2", 1, 0),
                ("10.32.0.101", "h1", 524187, 0),
                ("10.40.0.0", "h3", 262144, 1),
                ("10.44.0.0", "h2", 262144, 0),
            ]),
        ),
        (
            "5b rmpeer",
            row(&[
                ("10.32.0.0", "h1", 100, 6),
                ("10.32.0.100", "h2", 1, 0),
                ("10.32.0.101", "h1", 524187, 0),
                ("10.40.0.0", "h1", 262144, 101),
                ("10.44.0.0", "h2", 262144, 0),
            ]),
        ),
        (
            "7 end",
            row(&[
                ("10.32.0.0", "h1", 100, 7),
                ("10.32.0.100", "h2", 1, 1),
                ("10.32.0.101", "h1", 524187, 0),
                ("10.40.0.0", "h1", 262144, 102),
                ("10.44.0.0", "h2", 262144, 2),
            ]),
        ),
    ]
}

/// The numbering of the process that sent `m`, from the id of the first type it defines.
fn sender_ids(m: &Msg) -> TypeIds {
    let gob = if m.tag == 5 {
        &m.payload[1..]
    } else {
        &m.payload[..]
    };
    let mut r = weft_gob::wire::Reader::new(gob);
    r.uint("length").unwrap();
    match -r.int("type id").unwrap() {
        78 | 86 => TypeIds::WEAVE,
        67 => TypeIds::WEAVE_GOSSIP_FIRST,
        other => panic!("a numbering not seen before: first type id {other}"),
    }
}

const CAPTURES: [(&str, usize); 3] = [
    ("d-ipam-3peer-h1", 28),
    ("d-ipam-3peer-h2", 28),
    ("d-ipam-3peer-h3", 17),
];

#[test]
fn every_ipam_message_decodes_and_re_encodes_as_weave() {
    let mut total = 0;
    let mut byte_equal = 0;
    let mut same_length = 0;
    let mut canonical = 0;
    let mut layouts = BTreeSet::new();
    for (base, want) in CAPTURES {
        let msgs = ipam_messages(base);
        assert_eq!(msgs.len(), want, "{base}: IPallocation messages");
        for (i, m) in msgs.iter().enumerate() {
            let ctx = format!(
                "{base} IPallocation message {i} (tag {}, from {})",
                m.tag, m.src
            );
            let d = decode(m);
            total += 1;
            if let Some(r) = gossip_of(&d).and_then(|g| g.ring.as_ref()) {
                assert_eq!((r.start, r.end), (0x0a20_0000, 0x0a30_0000), "{ctx}");
                assert_eq!(r.peer, m.src, "{ctx}: Ring.Peer is the sender");
                layouts.insert(layout(r));
            }
            // Our bytes decode back to the same state, with either numbering.
            let ours = [TypeIds::WEAVE, TypeIds::WEAVE_GOSSIP_FIRST].map(|ids| encode(&d, ids));
            for b in &ours {
                let back = decode(&Msg {
                    payload: b.clone(),
                    ..m.clone()
                });
                assert_eq!(back, d, "{ctx}: re-encoded state");
            }
            // With the numbering of the sending process, the same length always (map order
            // moves bytes, never adds any), the same bytes when Go's encoding is canonical.
            let ids = sender_ids(m);
            let same = encode(&d, ids);
            assert_eq!(same.len(), m.payload.len(), "{ctx}: length");
            same_length += 1;
            if deterministic(&d) {
                canonical += 1;
                assert_eq!(same, m.payload, "{ctx}: bytes");
                byte_equal += 1;
            } else if same == m.payload {
                byte_equal += 1;
            }
        }
    }
    println!(
        "capture (d): {total} IPallocation messages decoded, {same_length} re-encoded to the \
         same length, {byte_equal} byte-equal ({canonical} with a canonical Go encoding, all \
         byte-equal)"
    );
    assert_eq!(total, 28 + 28 + 17);
    // Every documented layout was gossiped. `/report` shows the local peer's own entries with
    // the versions of its latest `ReportFree`, which travel with the next gossip: after step 2
    // h1's /report says v2 for its entry while its gossip still carried v0 (its next gossip
    // came with the claim of step 3, by then v3). So owners and sizes must match exactly and
    // versions may lag, never lead; all but step 2 match exactly.
    let mut exact = Vec::new();
    for (step, want) in documented_layouts() {
        let found = layouts.iter().find(|got| {
            got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| (&g.0, &g.1, g.2) == (&w.0, &w.1, w.2) && g.3 <= w.3)
        });
        assert!(
            found.is_some(),
            "layout after step {step} never gossiped; seen: {layouts:#?}"
        );
        if layouts.contains(&want) {
            exact.push(step);
        }
    }
    assert_eq!(exact, ["1 consensus", "3 claim", "5b rmpeer", "7 end"]);
}

/// weavegossip.py's decoder, on Weave's payload and on ours, with map entries sorted (Go writes
/// them in random order). One block per message on stdin line `tag hex hex`.
const PY_HARNESS: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import weavegossip as wg
def norm(tag, payload):
    out = []
    wg.decode_ipam(tag, bytes.fromhex(payload), out, '')
    res, nodes = [], []
    for line in out:
        s = line.strip()
        if s.startswith('node '):
            nodes.append(s); continue
        if nodes:
            res += sorted(nodes); nodes = []
        if s.startswith('Nicknames ('):
            head, _, items = s.partition(': ')
            s = head + ': ' + ', '.join(sorted(items.split(', ')))
        res.append(s)
    return res + sorted(nodes)
n = 0
for line in sys.stdin:
    tag, theirs, ours = line.split()
    a, b = norm(int(tag), theirs), norm(int(tag), ours)
    if a != b:
        print('MISMATCH message %d' % n); print('\n'.join(a)); print('--- ours'); print('\n'.join(b))
        sys.exit(1)
    n += 1
print('weavegossip.py: %d messages, ours decode the same' % n)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn weavegossip_py_reads_our_bytes_as_it_reads_weaves() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut input = String::new();
    let mut count = 0;
    for (base, _) in CAPTURES {
        for m in ipam_messages(base) {
            let ours = encode(&decode(&m), sender_ids(&m));
            input += &format!("{} {} {}\n", m.tag, hex(&m.payload), hex(&ours));
            count += 1;
        }
    }
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PY_HARNESS)
        .arg(conformance::dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run the shared weavegossip.py decoder");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "weavegossip.py disagrees:\n{text}");
    assert_eq!(
        text.trim(),
        format!("weavegossip.py: {count} messages, ours decode the same")
    );
}

/// The Paxos claims of the first gossip from `src` with `nodes` nodes whose own entry has
/// (`accepted`) or has not accepted.
fn paxos_msg(
    msgs: &[Msg],
    src: u64,
    nodes: usize,
    accepted: bool,
) -> std::collections::BTreeMap<weft_ipam::wire::NodeId, weft_ipam::wire::NodeClaims> {
    msgs.iter()
        .filter(|m| m.src.as_u64() == src && m.tag != 5)
        .filter_map(|m| codec::decode_gossip(&m.payload).unwrap().paxos)
        .find(|p| {
            p.len() == nodes
                && p.iter()
                    .any(|(id, c)| id.name.as_u64() == src && c.accepted.is_some() == accepted)
        })
        .unwrap_or_else(|| panic!("no Paxos gossip from h{src} with {nodes} nodes"))
}

/// Replays capture (d)'s Paxos exchange (h1's pcap, frames 260-275) through our participants:
/// fed the claims Weave's peers sent, ours send exactly the claims Weave's peers sent next.
#[test]
fn paxos_replays_capture_d() {
    use weft_ipam::paxos::Participant;
    let msgs = ipam_messages("d-ipam-3peer-h1");
    let m260 = paxos_msg(&msgs, 1, 1, false); // h1 promises round 1
    let m263 = paxos_msg(&msgs, 3, 2, false); // h3 promises
    let m265 = paxos_msg(&msgs, 1, 2, true); // h1 accepts [h1, h3]
    let m268 = paxos_msg(&msgs, 2, 3, false); // h2 promises late
    let m270 = paxos_msg(&msgs, 3, 2, true); // h3 accepts
    let id = |m: &std::collections::BTreeMap<_, _>, n: u64| {
        *m.keys()
            .find(|k: &&weft_ipam::wire::NodeId| k.name.as_u64() == n)
            .unwrap()
    };
    let (h1, h3) = (id(&m260, 1), id(&m263, 3));
    // consensus=3: quorum 3/2+1 = 2.
    let mut p1 = Participant::elector(h1, 2);
    let mut p3 = Participant::elector(h3, 2);

    p1.propose();
    assert_eq!(p1.claims(), Some(&m260), "h1's proposal");
    assert!(p3.update(&m260));
    assert!(p3.think());
    assert_eq!(p3.claims(), Some(&m263), "h3's promise");
    assert!(p1.update(&m263));
    assert!(p1.think());
    assert_eq!(p1.claims(), Some(&m265), "h1's acceptance");
    assert!(p3.update(&m265));
    assert!(p3.think());
    assert_eq!(p3.claims(), Some(&m270), "h3's acceptance");
    // h2's late promise changes nothing of h1's own claims; h3's acceptance makes consensus.
    assert!(p1.update(&m268));
    assert!(!p1.think());
    assert!(p1.consensus().is_none());
    assert!(p1.update(&m270));
    let value = p1.consensus().expect("consensus at h1");
    assert_eq!(p3.consensus().as_ref(), Some(&value));
    // The ring h1 then sends is seeded with that value.
    let ring = msgs
        .iter()
        .filter(|m| m.src.as_u64() == 1 && m.tag == 6)
        .find_map(|m| codec::decode_gossip(&m.payload).unwrap().ring)
        .expect("h1's first ring broadcast");
    assert_eq!(ring.seeds, value.value);
    assert_eq!(
        value.value.iter().map(|p| p.as_u64()).collect::<Vec<_>>(),
        [1, 3]
    );
}
