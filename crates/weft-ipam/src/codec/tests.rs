use super::*;

use proptest::prelude::*;
use weft_gob::{Encoder, GobType};

fn name(n: u64) -> PeerName {
    PeerName::from_u64(n).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Capture (d), h1 frame 17: h1's first IPallocation gossip to h2 (545-byte payload).
const FIRST_GOSSIP_H1: &str = "
45ff9b0301010b676f73736970537461746501ff9c00010401034e6f7701040001094e69636b6e616d657301ff9e0001
055061786f7301ffaa00010452696e6701ff8200000028ff9d040101186d61705b6d6573682e506565724e616d655d73
7472696e6701ff9e000106010c00001dffa90401010b476f73736970537461746501ffaa0001ffa001ffa200001dff9f
030102ffa000010201044e616d650106000103554944010600000038ffa1030102ffa2000103010750726f6d69736501
ffa4000108416363657074656401ffa400010b416363657074656456616c01ffa600000030ffa30301010a50726f706f
73616c494401ffa40001020105526f756e64010600010850726f706f73657201ffa000000032ffa50301010d41636365
7074656456616c756501ffa6000102010556616c756501ffa80001064f726967696e01ffa400000013ffa70201010556
616c756501ffa8000106000045ff810301010452696e6701ff82000105010553746172740106000103456e6401060001
04506565720106000107456e747269657301ff86000105536565647301ff8800000016ff8502010107656e7472696573
01ff860001ff84000034ff83030102ff840001040105546f6b656e010600010450656572010600010756657273696f6e
01060001044672656501060000001dff870201010f5b5d6d6573682e506565724e616d6501ff88000106000014ff9c01
fcd6223eba0101010572772d6831010000
";

#[test]
fn weave_first_gossip_decodes_and_re_encodes_byte_for_byte() {
    let bytes = unhex(FIRST_GOSSIP_H1);
    assert_eq!(bytes.len(), 545);
    let state = decode_gossip(&bytes).unwrap();
    assert_eq!(state.now, 1_796_284_253);
    assert_eq!(
        state.nicknames,
        BTreeMap::from([(name(1), "rw-h1".to_string())])
    );
    assert_eq!(state.paxos, Some(BTreeMap::new()), "an empty map, not nil");
    assert_eq!(state.ring, None);
    assert_eq!(encode_gossip(&state), bytes);
}

#[test]
fn nil_and_empty_paxos_maps_differ_on_the_wire() {
    let mut s = GossipState {
        now: 5,
        ..GossipState::default()
    };
    let absent = encode_gossip(&s);
    s.paxos = Some(BTreeMap::new());
    let empty = encode_gossip(&s);
    assert_eq!(empty.len(), absent.len() + 2, "delta 01 and count 00");
    assert_eq!(decode_gossip(&absent).unwrap().paxos, None);
    assert_eq!(decode_gossip(&empty).unwrap().paxos, Some(BTreeMap::new()));
}

#[test]
fn zero_proposal_is_sent_as_an_empty_proposer() {
    let node = NodeId {
        name: name(1),
        uid: 7,
    };
    let s = GossipState {
        paxos: Some(BTreeMap::from([(node, NodeClaims::default())])),
        ..GossipState::default()
    };
    let bytes = encode_gossip(&s);
    // The value message: id 78, delta 3 (Paxos), 1 entry, NodeID{1, 7}, then the claims:
    // Promise {Proposer {}} Accepted {Proposer {}} AcceptedVal {Origin {Proposer {}}}.
    let tail = [
        0x03, 0x01, 0x01, 0x01, 0x01, 0x07, 0x00, // field, count, NodeID
        0x01, 0x02, 0x00, 0x00, // Promise
        0x01, 0x02, 0x00, 0x00, // Accepted
        0x01, 0x02, 0x02, 0x00, 0x00, 0x00, // AcceptedVal{Origin}
        0x00, // end NodeClaims
        0x00, // end gossipState
    ];
    assert!(
        bytes.ends_with(&tail),
        "{:02x?}",
        &bytes[bytes.len() - 30..]
    );
    assert_eq!(decode_gossip(&bytes).unwrap(), s);
}

fn sample_state() -> GossipState {
    let h1 = NodeId {
        name: name(1),
        uid: 10_592_305_110_482_475_759,
    };
    let pid = ProposalId {
        round: 1,
        proposer: h1,
    };
    GossipState {
        now: 1_796_284_260,
        nicknames: BTreeMap::from([(name(1), "rw-h1".into()), (name(3), "rw-h3".into())]),
        paxos: Some(BTreeMap::from([(
            h1,
            NodeClaims {
                promise: Some(pid),
                accepted: Some(pid),
                accepted_val: AcceptedValue {
                    value: vec![name(1), name(3)],
                    origin: Some(pid),
                },
            },
        )])),
        ring: Some(RingWire {
            start: 0x0a20_0000,
            end: 0x0a30_0000,
            peer: name(1),
            entries: vec![
                EntryWire {
                    token: 0x0a20_0000,
                    peer: name(1),
                    version: 0,
                    free: 524_288,
                },
                EntryWire {
                    token: 0x0a28_0000,
                    peer: name(3),
                    version: 101,
                    free: 0,
                },
            ],
            seeds: vec![name(1), name(3)],
        }),
    }
}

#[test]
fn full_state_round_trips() {
    let s = sample_state();
    assert_eq!(decode_gossip(&encode_gossip(&s)).unwrap(), s);
    for ids in [TypeIds::WEAVE, TypeIds::WEAVE_GOSSIP_FIRST] {
        assert_eq!(decode_gossip(&encode_gossip_with_ids(&s, ids)).unwrap(), s);
    }
}

#[test]
fn unicasts_round_trip() {
    let r = Range {
        start: 0x0a20_0064,
        end: 0x0a20_0065,
    };
    for msg in [
        Unicast::SpaceRequest(r),
        Unicast::SpaceRequestDenied(r),
        Unicast::RingUpdate(sample_state()),
    ] {
        let bytes = encode_unicast(&msg);
        assert_eq!(decode_unicast(&bytes).unwrap(), msg);
    }
    // Capture (d): a space request payload is 55 bytes (type byte + 54-byte gob Range).
    assert_eq!(encode_unicast(&Unicast::SpaceRequest(r)).len(), 55);
}

#[test]
fn persisted_ring_round_trips() {
    let ring = sample_state().ring.unwrap();
    assert_eq!(
        decode_persisted_ring(&encode_persisted_ring(&ring)).unwrap(),
        ring
    );
}

#[test]
fn bad_unicast_type_bytes() {
    assert!(matches!(decode_unicast(&[]), Err(CodecError::EmptyUnicast)));
    let mut bytes = encode_unicast(&Unicast::SpaceRequest(Range { start: 1, end: 2 }));
    bytes[0] = 3;
    assert!(matches!(
        decode_unicast(&bytes),
        Err(CodecError::UnknownUnicast(3))
    ));
}

/// A generic gob stream of a struct called `name` with the given fields.
fn craft(name: &str, fields: Vec<(&str, GobType, Value)>) -> Vec<u8> {
    let ty = GobType::structure(name, fields.iter().map(|(n, t, _)| (*n, t.clone())));
    let v: StructValue = fields.into_iter().map(|(n, _, v)| (n, v)).collect();
    let mut enc = Encoder::new();
    enc.encode(&ty, &Value::Struct(v)).unwrap();
    enc.into_bytes()
}

#[test]
fn shape_errors_are_reported() {
    // Now sent as a string.
    let b = craft("gossipState", vec![("Now", GobType::String, "x".into())]);
    let e = decode_gossip(&b).unwrap_err();
    assert!(
        matches!(
            e,
            CodecError::Shape {
                what: "gossipState.Now",
                ..
            }
        ),
        "{e}"
    );
    // A peer name wider than 48 bits.
    let nicks = GobType::map(GobType::Uint, GobType::String);
    let b = craft(
        "gossipState",
        vec![(
            "Nicknames",
            nicks.clone(),
            Value::Map(vec![(Value::Uint(1 << 50), "x".into())]),
        )],
    );
    assert!(matches!(
        decode_gossip(&b),
        Err(CodecError::BadPeerName { .. })
    ));
    // A nickname of 256 bytes.
    let b = craft(
        "gossipState",
        vec![(
            "Nicknames",
            nicks,
            Value::Map(vec![(Value::Uint(1), "n".repeat(256).into())]),
        )],
    );
    assert!(matches!(
        decode_gossip(&b),
        Err(CodecError::NicknameTooLong { len: 256, .. })
    ));
    // A 33-bit Range.End.
    let mut b = vec![0];
    b.extend(craft(
        "Range",
        vec![
            ("Start", GobType::Uint, Value::Uint(1)),
            ("End", GobType::Uint, Value::Uint(1 << 33)),
        ],
    ));
    assert!(matches!(
        decode_unicast(&b),
        Err(CodecError::OutOfRange {
            what: "Range.End",
            ..
        })
    ));
    // Not a struct at all.
    let b = weft_gob::encode_string_map([("a", "b")]);
    assert!(matches!(decode_gossip(&b), Err(CodecError::Shape { .. })));
}

#[test]
fn unknown_fields_are_ignored_like_go() {
    let b = craft(
        "gossipState",
        vec![
            ("Now", GobType::Int, Value::Int(9)),
            ("Extra", GobType::String, "hello".into()),
        ],
    );
    let s = decode_gossip(&b).unwrap();
    assert_eq!(s.now, 9);
    assert_eq!(s.paxos, None);
}

#[test]
fn too_many_entries_are_rejected() {
    let mut ring = sample_state().ring.unwrap();
    let e = ring.entries[0];
    ring.entries = vec![e; MAX_ENTRIES + 1];
    let s = GossipState {
        ring: Some(ring),
        ..GossipState::default()
    };
    assert!(matches!(
        decode_gossip(&encode_gossip(&s)),
        Err(CodecError::TooMany {
            what: "Ring.Entries",
            ..
        })
    ));
}

fn arb_name() -> impl Strategy<Value = PeerName> {
    (0..=PeerName::MAX).prop_map(name)
}

fn arb_node() -> impl Strategy<Value = NodeId> {
    (arb_name(), any::<u64>()).prop_map(|(name, uid)| NodeId { name, uid })
}

fn arb_proposal() -> impl Strategy<Value = Option<ProposalId>> {
    proptest::option::of(
        (1..u64::MAX, arb_node()).prop_map(|(round, proposer)| ProposalId { round, proposer }),
    )
}

fn arb_claims() -> impl Strategy<Value = NodeClaims> {
    (
        arb_proposal(),
        arb_proposal(),
        proptest::collection::vec(arb_name(), 0..4),
        arb_proposal(),
    )
        .prop_map(|(promise, accepted, value, origin)| NodeClaims {
            promise,
            accepted,
            accepted_val: AcceptedValue { value, origin },
        })
}

fn arb_ring() -> impl Strategy<Value = RingWire> {
    (
        any::<u32>(),
        any::<u32>(),
        arb_name(),
        proptest::collection::vec(
            (any::<u32>(), arb_name(), any::<u32>(), any::<u32>()).prop_map(
                |(token, peer, version, free)| EntryWire {
                    token,
                    peer,
                    version,
                    free,
                },
            ),
            0..8,
        ),
        proptest::collection::vec(arb_name(), 0..4),
    )
        .prop_map(|(start, end, peer, entries, seeds)| RingWire {
            start,
            end,
            peer,
            entries,
            seeds,
        })
}

fn arb_state() -> impl Strategy<Value = GossipState> {
    (
        any::<i64>(),
        proptest::collection::btree_map(arb_name(), "\\PC{0,20}", 0..4),
        proptest::option::of(proptest::collection::btree_map(
            arb_node(),
            arb_claims(),
            0..4,
        )),
        proptest::option::of(arb_ring()),
    )
        .prop_map(|(now, nicknames, paxos, ring)| GossipState {
            now,
            nicknames,
            paxos,
            ring,
        })
}

proptest! {
    #[test]
    fn any_state_round_trips(s in arb_state()) {
        prop_assert_eq!(decode_gossip(&encode_gossip(&s)).unwrap(), s.clone());
        let u = Unicast::RingUpdate(s);
        prop_assert_eq!(decode_unicast(&encode_unicast(&u)).unwrap(), u);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_gossip(&b);
        let _ = decode_unicast(&b);
    }

    #[test]
    fn mutated_weave_bytes_never_panic(pos in 0usize..545, byte in any::<u8>()) {
        let mut b = unhex(FIRST_GOSSIP_H1);
        b[pos] = byte;
        if let Ok(s) = decode_gossip(&b) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(decode_gossip(&encode_gossip(&s)).unwrap(), s);
        }
    }
}
