use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use proptest::prelude::*;
use weft_mesh::PeerName;

use super::*;

const QTYPE_A: u16 = 1;
const QTYPE_PTR: u16 = 12;
const QTYPE_MX: u16 = 15;
const QTYPE_AAAA: u16 = 28;

fn store() -> Records {
    let mut r = Records::new(PeerName::from_u64(1).unwrap());
    r.add("web.weave.local.", "c1", Ipv4Addr::new(10, 32, 0, 1))
        .unwrap();
    r.add("web.weave.local.", "c2", Ipv4Addr::new(10, 32, 0, 2))
        .unwrap();
    r.add("MixedCase.weave.local.", "c4", Ipv4Addr::new(10, 32, 0, 4))
        .unwrap();
    r.add("zeta.weave.local.", "c5", Ipv4Addr::new(10, 32, 0, 5))
        .unwrap();
    r.add("alpha.weave.local.", "c5", Ipv4Addr::new(10, 32, 0, 5))
        .unwrap();
    for i in 1..=20 {
        r.add("many.weave.local.", "c6", Ipv4Addr::new(10, 32, 1, i))
            .unwrap();
    }
    r
}

/// A query as dig sends it: RD and AD set, optionally an OPT record with `edns` as UDP size.
fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

fn counter() -> impl FnMut() -> u64 {
    let mut n = 0u64;
    move || {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        n >> 11
    }
}

fn ask(q: &[u8], t: Transport, r: &Records) -> Decision {
    answer(q, t, r, &AnswerConfig::default(), &mut counter())
}

fn reply(q: &[u8], t: Transport, r: &Records) -> Vec<u8> {
    match ask(q, t, r) {
        Decision::Reply(b) => b,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn addrs(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not an A: {other:?}"),
        })
        .collect()
}

/// The byte offsets of each answer's owner name would hold a pointer (0xC0..) if compressed:
/// check that every name in the message is written in full, by walking it.
fn has_compression(b: &[u8]) -> bool {
    let mut i = 12;
    let an = u16::from_be_bytes([b[6], b[7]]);
    let skip_name = |i: &mut usize| -> bool {
        loop {
            let l = b[*i];
            if l & 0xc0 == 0xc0 {
                return true;
            }
            *i += 1 + l as usize;
            if l == 0 {
                return false;
            }
        }
    };
    if skip_name(&mut i) {
        return true;
    }
    i += 4;
    for _ in 0..an {
        if skip_name(&mut i) {
            return true;
        }
        let rtype = u16::from_be_bytes([b[i], b[i + 1]]);
        let rdlen = u16::from_be_bytes([b[i + 8], b[i + 9]]) as usize;
        i += 10;
        if rtype == 12 {
            let mut j = i;
            if skip_name(&mut j) {
                return true;
            }
        }
        i += rdlen;
    }
    assert_eq!(i, b.len());
    false
}

#[test]
fn a_local_answer_has_every_address_with_aa_ra_and_config_ttl() {
    let r = store();
    let b = reply(
        &query(0x23a0, "web.weave.local.", QTYPE_A, Some(1232)),
        Transport::Udp,
        &r,
    );
    assert_eq!(&b[..4], &[0x23, 0xa0, 0x85, 0x80], "id, qr aa rd ra, no ad");
    assert_eq!(&b[4..12], &[0, 1, 0, 2, 0, 0, 0, 0], "no OPT: arcount 0");
    let m = Message::from_vec(&b).unwrap();
    let got: BTreeSet<_> = addrs(&m).into_iter().collect();
    let want: BTreeSet<_> = [Ipv4Addr::new(10, 32, 0, 1), Ipv4Addr::new(10, 32, 0, 2)].into();
    assert_eq!(got, want);
    assert!(m.answers.iter().all(|a| a.ttl == 1));
    assert!(!has_compression(&b));
    assert_eq!(b.len(), 95, "as Weave's reply");

    let cfg = AnswerConfig::new("weave.local", 30);
    let Decision::Reply(b) = answer(
        &query(1, "web.weave.local.", QTYPE_A, None),
        Transport::Udp,
        &r,
        &cfg,
        &mut counter(),
    ) else {
        panic!("no reply")
    };
    let m = Message::from_vec(&b).unwrap();
    assert!(m.answers.iter().all(|a| a.ttl == 30));
}

#[test]
fn lookup_is_case_insensitive_and_owner_repeats_the_question() {
    let r = store();
    for name in [
        "WEB.Weave.LOCAL.",
        "mixedcase.weave.local.",
        "MIXEDCASE.WEAVE.LOCAL.",
    ] {
        let b = reply(&query(7, name, QTYPE_A, None), Transport::Udp, &r);
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!m.answers.is_empty());
        for a in &m.answers {
            assert_eq!(a.name.to_string(), name, "owner spelled as asked");
        }
        assert_eq!(m.queries[0].name().to_string(), name);
    }
}

#[test]
fn single_label_names_are_looked_up_in_the_domain() {
    let r = store();
    let b = reply(&query(8, "web.", QTYPE_A, None), Transport::Udp, &r);
    let m = Message::from_vec(&b).unwrap();
    assert_eq!(addrs(&m).len(), 2);
    assert!(m.metadata.authoritative);
    assert!(m.answers.iter().all(|a| a.name.to_string() == "web."));

    let b = reply(&query(9, "nosuch.", QTYPE_A, None), Transport::Udp, &r);
    assert_eq!(&b[2..4], &[0x81, 0x83], "qr rd ra NXDOMAIN, no aa");
}

#[test]
fn unknown_names_and_the_apex_are_nxdomain_without_aa() {
    let r = store();
    for (name, qtype) in [
        ("nosuch.weave.local.", QTYPE_A),
        ("nosuch.weave.local.", QTYPE_AAAA),
        ("weave.local.", QTYPE_A),
    ] {
        let b = reply(&query(10, name, qtype, Some(1232)), Transport::Udp, &r);
        assert_eq!(&b[2..12], &[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0], "{name}");
    }
}

#[test]
fn other_types_of_an_existing_name_are_noerror_empty_with_aa() {
    let r = store();
    for qtype in [QTYPE_AAAA, QTYPE_MX] {
        let b = reply(
            &query(11, "web.weave.local.", qtype, None),
            Transport::Udp,
            &r,
        );
        assert_eq!(&b[2..12], &[0x85, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn ptr_answers_the_first_name_in_storage_order() {
    let r = store();
    let b = reply(
        &query(12, "5.0.32.10.in-addr.arpa.", QTYPE_PTR, None),
        Transport::Udp,
        &r,
    );
    let m = Message::from_vec(&b).unwrap();
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::PTR);
    match &m.answers[0].data {
        RData::PTR(p) => assert_eq!(p.0.to_string(), "alpha.weave.local."),
        other => panic!("{other:?}"),
    }
    assert!(!has_compression(&b));
    // Case of the arpa suffix does not matter.
    let b = reply(
        &query(13, "2.0.32.10.IN-ADDR.ARPA.", QTYPE_PTR, None),
        Transport::Udp,
        &r,
    );
    assert_eq!(Message::from_vec(&b).unwrap().answers.len(), 1);
}

#[test]
fn unknown_ptr_is_forwarded_and_bad_reverse_queries_are_nxdomain() {
    let r = store();
    let fwd = ask(
        &query(14, "99.0.32.10.in-addr.arpa.", QTYPE_PTR, None),
        Transport::Udp,
        &r,
    );
    assert_eq!(fwd, Decision::Forward);
    for (name, qtype) in [
        ("5.0.32.10.in-addr.arpa.", QTYPE_A),
        ("0.32.10.in-addr.arpa.", QTYPE_PTR),
        ("x.0.32.10.in-addr.arpa.", QTYPE_PTR),
        ("300.0.32.10.in-addr.arpa.", QTYPE_PTR),
    ] {
        let b = reply(&query(15, name, qtype, None), Transport::Udp, &r);
        assert_eq!(&b[2..4], &[0x81, 0x83], "{name}");
    }
}

#[test]
fn names_outside_the_domain_are_forwarded() {
    let r = store();
    for name in [
        "example.com.",
        "outside.example.com.",
        "web.weave.localx.",
        "xweave.local.",
    ] {
        assert_eq!(
            ask(&query(16, name, QTYPE_A, None), Transport::Udp, &r),
            Decision::Forward,
            "{name}"
        );
    }
}

#[test]
fn cd_is_echoed_ad_is_not() {
    let r = store();
    let mut q = query(17, "web.weave.local.", QTYPE_A, None);
    q[3] |= 0x10; // CD
    let b = reply(&q, Transport::Udp, &r);
    assert_eq!(b[3], 0x90);
}

#[test]
fn udp_without_edns_is_cut_at_512_with_tc() {
    let r = store();
    let b = reply(
        &query(18, "many.weave.local.", QTYPE_A, None),
        Transport::Udp,
        &r,
    );
    assert_eq!(b.len(), 482);
    assert_eq!(&b[2..4], &[0x87, 0x80], "qr aa tc rd ra");
    assert_eq!(u16::from_be_bytes([b[6], b[7]]), 14);
    assert!(!has_compression(&b));
}

#[test]
fn edns_size_and_tcp_lift_the_limit() {
    let r = store();
    let b = reply(
        &query(19, "many.weave.local.", QTYPE_A, Some(4096)),
        Transport::Udp,
        &r,
    );
    assert_eq!(
        (b.len(), b[2], u16::from_be_bytes([b[6], b[7]])),
        (674, 0x85, 20)
    );
    let b = reply(
        &query(20, "many.weave.local.", QTYPE_A, None),
        Transport::Tcp,
        &r,
    );
    assert_eq!(
        (b.len(), b[2], u16::from_be_bytes([b[6], b[7]])),
        (674, 0x85, 20)
    );
    // 700 bytes: all 20 fit (674); 600: 17 fit (34 + 17*32 = 578).
    let b = reply(
        &query(21, "many.weave.local.", QTYPE_A, Some(600)),
        Transport::Udp,
        &r,
    );
    assert_eq!(
        (b.len(), b[2], u16::from_be_bytes([b[6], b[7]])),
        (578, 0x87, 17)
    );
    // An EDNS size under 512 counts as 512.
    let b = reply(
        &query(22, "many.weave.local.", QTYPE_A, Some(100)),
        Transport::Udp,
        &r,
    );
    assert_eq!(b.len(), 482);
}

#[test]
fn answers_are_shuffled_with_the_injected_randomness() {
    let r = store();
    let q = query(23, "many.weave.local.", QTYPE_A, None);
    let mut orders = BTreeSet::new();
    let mut rng = counter();
    for _ in 0..20 {
        let Decision::Reply(b) = answer(&q, Transport::Tcp, &r, &AnswerConfig::default(), &mut rng)
        else {
            panic!()
        };
        let got = addrs(&Message::from_vec(&b).unwrap());
        let set: BTreeSet<_> = got.iter().copied().collect();
        assert_eq!(set.len(), 20, "a permutation");
        orders.insert(got);
    }
    assert!(
        orders.len() > 1,
        "shuffled: more than one order in 20 answers"
    );
    // The same randomness gives the same order.
    let once = |q: &[u8]| {
        answer(
            q,
            Transport::Tcp,
            &r,
            &AnswerConfig::default(),
            &mut counter(),
        )
    };
    assert_eq!(once(&q), once(&q));
}

#[test]
fn garbage_is_dropped_and_malformed_queries_get_formerr() {
    let r = store();
    assert_eq!(ask(&[], Transport::Udp, &r), Decision::Drop);
    assert_eq!(ask(&[1, 2, 3], Transport::Udp, &r), Decision::Drop);
    // A response is never answered.
    let mut resp = query(24, "web.weave.local.", QTYPE_A, None);
    resp[2] |= 0x80;
    assert_eq!(ask(&resp, Transport::Udp, &r), Decision::Drop);
    // A header, then a cut question.
    let q = query(0xbeef, "web.weave.local.", QTYPE_A, None);
    let b = reply(&q[..20], Transport::Udp, &r);
    assert_eq!(b, vec![0xbe, 0xef, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    // A compression-pointer loop in the question.
    let mut lp = q[..12].to_vec();
    lp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(reply(&lp, Transport::Udp, &r)[3], 0x81);
    // Two questions, or none.
    let mut two = q.clone();
    two[5] = 2;
    two.extend_from_slice(&q[12..]);
    assert_eq!(reply(&two, Transport::Udp, &r)[3], 0x81);
    let none = q[..12]
        .iter()
        .enumerate()
        .map(|(i, b)| if i == 5 { 0 } else { *b })
        .collect::<Vec<_>>();
    assert_eq!(reply(&none, Transport::Udp, &r)[3], 0x81);
    // Opcode STATUS (2) with RD and CD: not implemented, RD and CD not copied (as miekg's
    // SetReply, which copies them for QUERY only).
    let mut st = q.clone();
    st[2] = 0x11;
    st[3] |= 0x10;
    assert_eq!(reply(&st, Transport::Udp, &r)[2..4], [0x90, 0x84]);
}

proptest! {
    /// Random bytes never panic; a reply always starts with the query's ID and parses.
    #[test]
    fn prop_random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        tcp in any::<bool>(),
    ) {
        let r = store();
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        if let Decision::Reply(b) = ask(&bytes, t, &r) {
            prop_assert_eq!(&b[..2], &bytes[..2]);
            prop_assert!(Message::from_vec(&b).is_ok());
        }
    }

    /// A query header (QUERY, one question, maybe an additional record) and random bytes
    /// after it: a reply (FORMERR or an answer) with the query's ID, never a panic.
    #[test]
    fn prop_header_and_random_body_never_panic(
        id in any::<u16>(),
        ar in 0u8..3,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let r = store();
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, ar]);
        q.extend_from_slice(&body);
        match ask(&q, Transport::Udp, &r) {
            Decision::Reply(b) => {
                prop_assert_eq!(&b[..2], &q[..2]);
                prop_assert!(Message::from_vec(&b).is_ok());
            }
            Decision::Forward => {}
            Decision::Drop => prop_assert!(false, "a query header is never dropped"),
        }
    }

    /// A valid query with a few bytes changed never panics; a reply parses, and without
    /// changes it respects the UDP limit.
    #[test]
    fn prop_mutated_queries_never_panic(
        name in "[a-zA-Z0-9]{1,10}(\\.[a-z]{1,5}){0,3}",
        suffix in prop::sample::select(vec!["", ".weave.local", ".in-addr.arpa"]),
        qtype in prop::sample::select(vec![QTYPE_A, QTYPE_PTR, QTYPE_AAAA]),
        edns in prop::option::of(any::<u16>()),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let r = store();
        let mut q = query(1, &format!("{name}{suffix}."), qtype, edns);
        let unchanged = flips.is_empty();
        for (i, v) in flips {
            let i = i.index(q.len());
            q[i] = v;
        }
        if let Decision::Reply(b) = ask(&q, Transport::Udp, &r) {
            prop_assert!(Message::from_vec(&b).is_ok());
            if unchanged {
                let limit = edns.map_or(512, |s| usize::from(s).max(512));
                prop_assert!(b.len() <= limit);
            }
        }
    }
}
