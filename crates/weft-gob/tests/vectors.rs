//! Conformance with Appendix A of the weft protocol reference (vectors B, C,
//! D, E1-E3, H and I), which were produced by Weave's own Go code.

use weft_gob::{
    decode_string_map, encode_string_map, DecodeError, Decoder, Encoder, FromGob, GobType,
    StructValue, ToGob, Value,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => panic!("bad hex digit {b}"),
        })
        .collect();
    assert_eq!(digits.len() & 1, 0, "odd number of hex digits");
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

const B: &str = "0eff81040102ff8200010c010c00000bff820001044e616d650141";

const C: &str = "0eff81040102ff8200010c010c00007fff82000806436f6e6e4944013207547275737465640566616c7365084f7665726c6179730d66617374647020736c656576650f506565724e616d65466c61766f7572036d6163044e616d651131323a33343a35363a37383a39613a6263084e69636b4e616d6505686f7374310753686f727449440431323334035549440131";

const D: &str = "
62ff830301010b7065657253756d6d61727901ff8400010601084e616d6542797465010a0001084e69636b4e616d6501
0c000103554944010600010756657273696f6e010600010753686f72744944010600010a48617353686f727449440102
00000024ff840106123456789abc0105686f73743101f80102030405060708010301fe01230101000dff87020102ff88
0001ff8600005bff8503010111636f6e6e656374696f6e53756d6d61727901ff8600010401084e616d6542797465010a
00010d52656d6f746554435041646472010c0001084f7574626f756e64010200010b45737461626c6973686564010200
000020ff8800010106deadbeef0001010d31302e302e302e323a3637383301010101001cff840106deadbeef00010105
686f737432012a010101fe04560101001fff8800010106123456789abc010e31302e302e302e313a3433323130020100";

const E1: &str = "0b0c0008746f706f6c6f6779090600fa123456789abc0b0a000862ff830301010b70";
const E2: &str = "0b0c0008746f706f6c6f6779090600fa123456789abc040a0001aa";
const E3: &str =
    "0f0c000c4950616c6c6f636174696f6e090600fa123456789abc090600fadeadbeef0001040a0001bb";

/// Mesh's `peerSummary`, implemented by hand as a mesh crate would.
#[derive(Debug, Clone, Default, PartialEq)]
struct PeerSummary {
    name_byte: Vec<u8>,
    nick_name: String,
    uid: u64,
    version: u64,
    short_id: u16,
    has_short_id: bool,
}

impl ToGob for PeerSummary {
    fn gob_type() -> GobType {
        GobType::structure(
            "peerSummary",
            [
                ("NameByte", GobType::Bytes),
                ("NickName", GobType::String),
                ("UID", GobType::Uint),
                ("Version", GobType::Uint),
                ("ShortID", GobType::Uint),
                ("HasShortID", GobType::Bool),
            ],
        )
    }
    fn to_gob(&self) -> Value {
        StructValue::new()
            .with("NameByte", self.name_byte.clone())
            .with("NickName", self.nick_name.as_str())
            .with("UID", self.uid)
            .with("Version", self.version)
            .with("ShortID", u64::from(self.short_id))
            .with("HasShortID", self.has_short_id)
            .into()
    }
}

impl FromGob for PeerSummary {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        let s = value.as_struct().ok_or(DecodeError::WrongType {
            expected: "struct",
            found: value.kind_name(),
        })?;
        Ok(PeerSummary {
            name_byte: s.get("NameByte")?,
            nick_name: s.get("NickName")?,
            uid: s.get("UID")?,
            version: s.get("Version")?,
            short_id: s.get("ShortID")?,
            has_short_id: s.get("HasShortID")?,
        })
    }
}

/// Mesh's `connectionSummary`.
#[derive(Debug, Clone, Default, PartialEq)]
struct ConnectionSummary {
    name_byte: Vec<u8>,
    remote_tcp_addr: String,
    outbound: bool,
    established: bool,
}

impl ToGob for ConnectionSummary {
    fn gob_type() -> GobType {
        GobType::structure(
            "connectionSummary",
            [
                ("NameByte", GobType::Bytes),
                ("RemoteTCPAddr", GobType::String),
                ("Outbound", GobType::Bool),
                ("Established", GobType::Bool),
            ],
        )
    }
    fn to_gob(&self) -> Value {
        StructValue::new()
            .with("NameByte", self.name_byte.clone())
            .with("RemoteTCPAddr", self.remote_tcp_addr.as_str())
            .with("Outbound", self.outbound)
            .with("Established", self.established)
            .into()
    }
}

impl FromGob for ConnectionSummary {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        let s = value.as_struct().ok_or(DecodeError::WrongType {
            expected: "struct",
            found: value.kind_name(),
        })?;
        Ok(ConnectionSummary {
            name_byte: s.get("NameByte")?,
            remote_tcp_addr: s.get("RemoteTCPAddr")?,
            outbound: s.get("Outbound")?,
            established: s.get("Established")?,
        })
    }
}

fn p1() -> PeerSummary {
    PeerSummary {
        name_byte: hex("123456789abc"),
        nick_name: "host1".into(),
        uid: 0x0102_0304_0506_0708,
        version: 3,
        short_id: 0x123,
        has_short_id: true,
    }
}

fn p2() -> PeerSummary {
    PeerSummary {
        name_byte: hex("deadbeef0001"),
        nick_name: "host2".into(),
        uid: 42,
        version: 1,
        short_id: 0x456,
        has_short_id: true,
    }
}

fn p1_conns() -> Vec<ConnectionSummary> {
    vec![ConnectionSummary {
        name_byte: hex("deadbeef0001"),
        remote_tcp_addr: "10.0.0.2:6783".into(),
        outbound: true,
        established: true,
    }]
}

fn p2_conns() -> Vec<ConnectionSummary> {
    vec![ConnectionSummary {
        name_byte: hex("123456789abc"),
        remote_tcp_addr: "10.0.0.1:43210".into(),
        outbound: false,
        established: true,
    }]
}

fn pairs(m: &[(&str, &str)]) -> Vec<(String, String)> {
    m.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn vector_b_decodes_and_reencodes_bit_for_bit() {
    let bytes = hex(B);
    assert_eq!(bytes.len(), 27);
    let map = decode_string_map(&bytes).unwrap();
    assert_eq!(map, pairs(&[("Name", "A")]));
    assert_eq!(encode_string_map(map.iter().map(|(k, v)| (k, v))), bytes);
    // Through the generic decoder: type 65 = map[string]string.
    let mut dec = Decoder::new(&bytes);
    let d = dec.expect_value().unwrap();
    assert_eq!(d.type_id, 65);
    assert_eq!(*d.ty, GobType::string_map());
    dec.expect_end().unwrap();
}

#[test]
fn vector_h_features_inside_a_v2_stream() {
    // Header, flag, 4-byte length, features, heartbeat: only the gob part is
    // ours, the framing is checked for consistency.
    let h = hex(
        "77656176650102 00 0000001b 0eff81040102ff8200010c010c00000bff820001044e616d650141 0000000100",
    );
    assert_eq!(&h[..7], b"weave\x01\x02");
    let len = u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
    assert_eq!(len, 27);
    let features = &h[12..12 + len];
    assert_eq!(
        decode_string_map(features).unwrap(),
        pairs(&[("Name", "A")])
    );
    assert_eq!(&h[12 + len..], &[0, 0, 0, 1, 0]);
}

#[test]
fn vector_c_decodes_to_the_listed_map_and_round_trips() {
    let bytes = hex(C);
    assert_eq!(bytes.len(), 143);
    let map = decode_string_map(&bytes).unwrap();
    let want = pairs(&[
        ("ConnID", "2"),
        ("Trusted", "false"),
        ("Overlays", "fastdp sleeve"),
        ("PeerNameFlavour", "mac"),
        ("Name", "12:34:56:78:9a:bc"),
        ("NickName", "host1"),
        ("ShortID", "1234"),
        ("UID", "1"),
    ]);
    assert_eq!(map, want);
    // Map order is kept, so re-encoding reproduces Go's bytes exactly.
    let again = encode_string_map(map.iter().map(|(k, v)| (k, v)));
    assert_eq!(again, bytes);
    assert_eq!(decode_string_map(&again).unwrap(), want);
}

#[test]
fn vector_d_decodes_all_values_and_types() {
    let bytes = hex(D);
    assert_eq!(bytes.len(), 336);
    let mut dec = Decoder::new(&bytes);

    let v = dec.expect_value().unwrap();
    assert_eq!(v.type_id, 66);
    assert_eq!(*v.ty, PeerSummary::gob_type());
    assert_eq!(PeerSummary::from_gob(&v.value).unwrap(), p1());

    let v = dec.expect_value().unwrap();
    assert_eq!(v.type_id, 68);
    assert_eq!(*v.ty, GobType::slice(ConnectionSummary::gob_type()));
    assert_eq!(
        <Vec<ConnectionSummary>>::from_gob(&v.value).unwrap(),
        p1_conns()
    );

    let p = dec.decode_item::<PeerSummary>().unwrap();
    assert_eq!(p, p2());
    let c = dec.decode_item::<Vec<ConnectionSummary>>().unwrap();
    assert_eq!(c, p2_conns());
    // Outbound=false was omitted on the wire.
    let raw = Decoder::new(&bytes).nth(3).unwrap().unwrap();
    let first = &raw.value.as_slice().unwrap()[0];
    assert!(first.as_struct().unwrap().field("Outbound").is_none());
    dec.expect_end().unwrap();
}

#[test]
fn vector_d_reencodes_bit_for_bit_with_gos_type_order() {
    // Go's process had already used id 65, so its first type here is 66.
    let mut enc = Encoder::with_first_type_id(66);
    enc.encode_item(&p1()).unwrap();
    enc.encode_item(&p1_conns()).unwrap();
    enc.encode_item(&p2()).unwrap();
    enc.encode_item(&p2_conns()).unwrap();
    assert_eq!(enc.type_id(&PeerSummary::gob_type()), Some(66));
    assert_eq!(enc.type_id(&ConnectionSummary::gob_type()), Some(67));
    assert_eq!(enc.into_bytes(), hex(D));
}

#[test]
fn vector_d_generic_reencode_from_decoded_types() {
    // Decode with the generic model and re-encode each value with the type the
    // decoder resolved: identical bytes.
    let bytes = hex(D);
    let mut enc = Encoder::with_first_type_id(66);
    for d in Decoder::new(&bytes) {
        let d = d.unwrap();
        enc.encode(&d.ty, &d.value).unwrap();
    }
    assert_eq!(enc.into_bytes(), bytes);
}

#[test]
fn vector_i_peer_with_name_only() {
    let mut enc = Encoder::new();
    let p = PeerSummary {
        name_byte: hex("000000000001"),
        ..PeerSummary::default()
    };
    enc.encode_item(&p).unwrap();
    let mut defs_len = enc.bytes().len();
    enc.encode_item(&Vec::<ConnectionSummary>::new()).unwrap();
    let bytes = enc.into_bytes();
    // The peerSummary value (type 65 in a fresh stream) follows its definition.
    let value = hex("0bff82010600000000000100");
    assert_eq!(&bytes[defs_len - value.len()..defs_len], &value[..]);
    // The empty slice: in this stream connectionSummary is 66 and the slice 67.
    assert!(bytes.ends_with(&hex("04ff860000")));
    defs_len = bytes.len();
    let mut dec = Decoder::new(&bytes);
    assert_eq!(dec.decode_item::<PeerSummary>().unwrap(), p);
    let d = dec.expect_value().unwrap();
    assert_eq!(d.type_id, 67);
    assert_eq!(d.value, Value::Slice(vec![]));
    assert_eq!(dec.position(), defs_len);

    // Standalone gob of PeerName 00:00:00:00:00:01.
    let mut enc = Encoder::new();
    enc.encode_uint(1);
    assert_eq!(enc.bytes(), &hex("03060001")[..]);
    assert_eq!(Decoder::new(&hex("03060001")).expect_uint().unwrap(), 1);
}

/// A gossip envelope: channel, source, optional destination, payload.
#[derive(Debug, PartialEq)]
struct Envelope {
    channel: String,
    src: u64,
    dst: Option<u64>,
    payload: Vec<u8>,
}

fn decode_envelope(bytes: &[u8], unicast: bool) -> Envelope {
    let mut dec = Decoder::new(bytes);
    let channel = dec.expect_string().unwrap();
    let src = dec.expect_uint().unwrap();
    let dst = unicast.then(|| dec.expect_uint().unwrap());
    let payload = dec.expect_bytes().unwrap();
    dec.expect_end().unwrap();
    Envelope {
        channel,
        src,
        dst,
        payload,
    }
}

fn encode_envelope(e: &Envelope) -> Vec<u8> {
    let mut enc = Encoder::new();
    enc.encode_string(&e.channel);
    enc.encode_uint(e.src);
    if let Some(dst) = e.dst {
        enc.encode_uint(dst);
    }
    enc.encode_bytes(&e.payload);
    enc.into_bytes()
}

#[test]
fn vector_e1_gossip_envelope() {
    let bytes = hex(E1);
    let e = decode_envelope(&bytes, false);
    assert_eq!(
        e,
        Envelope {
            channel: "topology".into(),
            src: 0x1234_5678_9abc,
            dst: None,
            payload: hex(D)[..8].to_vec(),
        }
    );
    assert_eq!(encode_envelope(&e), bytes);
}

#[test]
fn vector_e2_broadcast_envelope() {
    let bytes = hex(E2);
    let e = decode_envelope(&bytes, false);
    assert_eq!(
        e,
        Envelope {
            channel: "topology".into(),
            src: 0x1234_5678_9abc,
            dst: None,
            payload: vec![0xaa],
        }
    );
    assert_eq!(encode_envelope(&e), bytes);
}

#[test]
fn vector_e3_unicast_envelope() {
    let bytes = hex(E3);
    let e = decode_envelope(&bytes, true);
    assert_eq!(
        e,
        Envelope {
            channel: "IPallocation".into(),
            src: 0x1234_5678_9abc,
            dst: Some(0xdead_beef_0001),
            payload: vec![0xbb],
        }
    );
    assert_eq!(encode_envelope(&e), bytes);
}

#[test]
fn topology_payload_inside_an_envelope() {
    // Build a topology payload, wrap it, unwrap it, decode it.
    let mut topo = Encoder::new();
    topo.encode_item(&p1()).unwrap();
    topo.encode_item(&p1_conns()).unwrap();
    let payload = topo.into_bytes();
    let env = Envelope {
        channel: "topology".into(),
        src: 0x1234_5678_9abc,
        dst: None,
        payload: payload.clone(),
    };
    let wire = encode_envelope(&env);
    let back = decode_envelope(&wire, false);
    assert_eq!(back.payload, payload);
    let mut dec = Decoder::new(&back.payload);
    assert_eq!(dec.decode_item::<PeerSummary>().unwrap(), p1());
    assert_eq!(
        dec.decode_item::<Vec<ConnectionSummary>>().unwrap(),
        p1_conns()
    );
}

#[test]
fn truncations_of_every_vector_are_errors_or_prefixes() {
    for v in [B, C, D, E1, E2, E3] {
        let bytes = hex(v);
        for cut in 0..bytes.len() {
            // Must not panic; a cut at a message boundary is a shorter stream.
            let _ = Decoder::new(&bytes[..cut]).collect::<Result<Vec<_>, _>>();
        }
    }
}

#[test]
fn field_order_on_the_wire_does_not_matter_to_readers() {
    // A sender that declares peerSummary's fields in another order (and with
    // an extra field) still decodes into the same PeerSummary, since fields
    // are matched by name.
    let other = GobType::structure(
        "peerSummary",
        [
            ("Extra", GobType::String),
            ("UID", GobType::Uint),
            ("NameByte", GobType::Bytes),
            ("NickName", GobType::String),
        ],
    );
    let v = StructValue::new()
        .with("Extra", "x")
        .with("UID", 7u64)
        .with("NameByte", hex("010203040506"))
        .with("NickName", "n");
    let mut enc = Encoder::new();
    enc.encode(&other, &v.into()).unwrap();
    let p = Decoder::new(enc.bytes())
        .decode_item::<PeerSummary>()
        .unwrap();
    assert_eq!(
        p,
        PeerSummary {
            name_byte: hex("010203040506"),
            nick_name: "n".into(),
            uid: 7,
            ..PeerSummary::default()
        }
    );
}
