//! Appendix A vectors of `shared/reference/weave-protocol.md`, reproduced
//! through the public API (the connection where the vector is a stream).

use std::time::Instant;

use weft_crypto::{EphemeralKeyPair, SessionKey, Side, TcpOpener, TcpSealer};
use weft_mesh::PeerName;
use weft_wire::{
    Config, Connection, Event, Features, GossipEnvelope, LocalIdentity, Message, UnicastEnvelope,
    HEARTBEAT_INTERVAL,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn name(s: &str) -> PeerName {
    s.parse().unwrap()
}

const VECTOR_B: &str = "0eff81040102ff8200010c010c00000bff820001044e616d650141";
const VECTOR_C: &str = "0eff81040102ff8200010c010c00007fff82000806436f6e6e4944013207547275737465640566616c7365084f7665726c6179730d66617374647020736c656576650f506565724e616d65466c61766f7572036d6163044e616d651131323a33343a35363a37383a39613a6263084e69636b4e616d6505686f7374310753686f727449440431323334035549440131";

fn identity() -> LocalIdentity {
    LocalIdentity {
        name: name("de:ad:be:ef:00:01"),
        uid: 42,
        conn_id: 7,
    }
}

#[test]
fn vector_a_header() {
    let mut c = Connection::with_key_pair(
        Config::new(identity(), Features::new()),
        Side::Outbound,
        EphemeralKeyPair::from_private_bytes([1; 32]),
        Instant::now(),
    );
    assert_eq!(c.poll_transmit().unwrap(), hex("77656176650102"));
}

#[test]
fn vector_b_features_gob() {
    let f: Features = [("Name", "A")].into_iter().collect();
    assert_eq!(f.encode(), hex(VECTOR_B));
    assert_eq!(Features::decode(&hex(VECTOR_B)).unwrap(), f);
}

#[test]
fn vector_c_realistic_features() {
    let f = Features::decode(&hex(VECTOR_C)).unwrap();
    let expected = [
        ("ConnID", "2"),
        ("Trusted", "false"),
        ("Overlays", "fastdp sleeve"),
        ("PeerNameFlavour", "mac"),
        ("Name", "12:34:56:78:9a:bc"),
        ("NickName", "host1"),
        ("ShortID", "1234"),
        ("UID", "1"),
    ];
    assert_eq!(f.iter().collect::<Vec<_>>(), expected);
    // In the same entry order the encoding is byte-identical.
    assert_eq!(f.encode(), hex(VECTOR_C));
    assert_eq!(hex(VECTOR_C).len(), 143);
    // And it validates into the identity it describes.
    let r = weft_wire::features::validate(f, &identity(), 2, None).unwrap();
    assert_eq!(r.name, name("12:34:56:78:9a:bc"));
    assert_eq!((r.uid, r.conn_id, r.conn_uid), (1, 2, 2 ^ 7));
    assert_eq!(r.short_id, Some(1234));
    assert_eq!(
        r.overlays,
        Some(vec!["fastdp".to_string(), "sleeve".to_string()])
    );
}

/// Vector H: the complete V2 unencrypted stream of one side whose features
/// are `{"Name":"A"}`, ending with one heartbeat.
#[test]
fn vector_h_complete_stream() {
    let t0 = Instant::now();
    let features: Features = [("Name", "A")].into_iter().collect();
    let mut c = Connection::with_key_pair(
        Config::new(identity(), features),
        Side::Outbound,
        EphemeralKeyPair::from_private_bytes([1; 32]),
        t0,
    );
    // The peer: header, flag, and a valid features map.
    let peer = LocalIdentity {
        name: name("12:34:56:78:9a:bc"),
        uid: 1,
        conn_id: 2,
    };
    let peer_features = Features::standard(&peer, "host1", 1234, false, None).encode();
    let mut input = hex("7765617665010200");
    input.extend_from_slice(&(peer_features.len() as u32).to_be_bytes());
    input.extend_from_slice(&peer_features);
    let mut out = Vec::new();
    for b in &input {
        c.handle_input(std::slice::from_ref(b), t0).unwrap();
        if let Some(bytes) = c.poll_transmit() {
            out.extend(bytes);
        }
    }
    assert!(matches!(c.poll_event(), Some(Event::HandshakeDone(_))));
    c.handle_timeout(t0 + HEARTBEAT_INTERVAL);
    out.extend(c.poll_transmit().unwrap());
    let expected = hex(&format!("77656176650102 00 0000001b {VECTOR_B} 0000000100"));
    assert_eq!(out, expected);
}

#[test]
fn vectors_e_envelopes() {
    let d_prefix = hex("62ff830301010b70");
    let e1 = GossipEnvelope {
        channel: "topology".into(),
        src: name("12:34:56:78:9a:bc"),
        payload: d_prefix,
    };
    let e1_bytes = hex("0b0c0008746f706f6c6f6779090600fa123456789abc0b0a000862ff830301010b70");
    assert_eq!(e1.encode(), e1_bytes);
    assert_eq!(GossipEnvelope::decode(&e1_bytes).unwrap(), e1);

    let e2 = GossipEnvelope {
        channel: "topology".into(),
        src: name("12:34:56:78:9a:bc"),
        payload: vec![0xaa],
    };
    let e2_bytes = hex("0b0c0008746f706f6c6f6779090600fa123456789abc040a0001aa");
    assert_eq!(e2.encode(), e2_bytes);
    assert_eq!(
        Message::decode(6, &e2_bytes).unwrap(),
        Some(Message::GossipBroadcast(e2))
    );

    let e3 = UnicastEnvelope {
        channel: "IPallocation".into(),
        src: name("12:34:56:78:9a:bc"),
        dst: name("de:ad:be:ef:00:01"),
        payload: vec![0xbb],
    };
    let e3_bytes =
        hex("0f0c000c4950616c6c6f636174696f6e090600fa123456789abc090600fadeadbeef0001040a0001bb");
    assert_eq!(e3.encode(), e3_bytes);
    assert_eq!(
        Message::decode(5, &e3_bytes).unwrap(),
        Some(Message::GossipUnicast(e3))
    );
}

fn priv_a() -> [u8; 32] {
    std::array::from_fn(|i| i as u8 + 1)
}

fn priv_b() -> [u8; 32] {
    std::array::from_fn(|i| 0x80 + i as u8)
}

const PUB_A: &str = "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c";
const PUB_B: &str = "493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d";
const K: &str = "28db2f6c9b6a6b6d197e6a88ea60a996f47d38f8de7f5fbeb2311e182ede683e";
const G_HEARTBEAT: &str = "c959b16b73ea4c1736088a68ac3e8e5cee";

/// Vectors F and G through two connections with fixed private keys.
#[test]
fn vectors_f_and_g_through_the_connection() {
    let t0 = Instant::now();
    let ida = LocalIdentity {
        name: name("12:34:56:78:9a:bc"),
        uid: 1,
        conn_id: 10,
    };
    let idb = LocalIdentity {
        name: name("de:ad:be:ef:00:01"),
        uid: 2,
        conn_id: 20,
    };
    let cfg = |id: LocalIdentity| {
        Config::new(id, Features::standard(&id, "h", 1, false, Some("sleeve")))
            .with_password("s3cret")
    };
    let mut a = Connection::with_key_pair(
        cfg(ida),
        Side::Outbound,
        EphemeralKeyPair::from_private_bytes(priv_a()),
        t0,
    );
    let mut b = Connection::with_key_pair(
        cfg(idb),
        Side::Inbound,
        EphemeralKeyPair::from_private_bytes(priv_b()),
        t0,
    );
    // Header exchange, then each side's flag and public key.
    let ha = a.poll_transmit().unwrap();
    let hb = b.poll_transmit().unwrap();
    a.handle_input(&hb, t0).unwrap();
    b.handle_input(&ha, t0).unwrap();
    let fa = a.poll_transmit().unwrap();
    let fb = b.poll_transmit().unwrap();
    assert_eq!(fa, [vec![1], hex(PUB_A)].concat());
    assert_eq!(fb, [vec![1], hex(PUB_B)].concat());
    a.handle_input(&fb, t0).unwrap();
    b.handle_input(&fa, t0).unwrap();
    let k = SessionKey::from_bytes(hex(K).try_into().unwrap());
    assert_eq!(a.session_key(), Some(&k));
    assert_eq!(b.session_key(), Some(&k));

    // A's features are message #0, sealed with the outbound nonce c0 00..00.
    let features_a = a.poll_transmit().unwrap();
    let mut body = features_a[4..].to_vec();
    let plain = TcpOpener::new(&k, Side::Inbound)
        .open_in_place(&mut body)
        .unwrap()
        .to_vec();
    assert_eq!(plain, cfg(ida).features.encode());
    b.handle_input(&features_a, t0).unwrap();
    a.handle_input(&b.poll_transmit().unwrap(), t0).unwrap();
    assert!(a.is_established() && b.is_established());

    // Vector G with a bare sealer: heartbeat, outbound nonce #0.
    let mut sealer = TcpSealer::new(&k, Side::Outbound);
    let mut out = [0u8; 17];
    assert_eq!(sealer.seal_into(&[0], &mut out).unwrap(), 17);
    assert_eq!(out.to_vec(), hex(G_HEARTBEAT));
    // Through the connection, the first heartbeat is message #1 (the
    // features were #0): length 00000011 then the sealer's next output.
    let hb_msg = sealer.seal_into(&[0], &mut out).map(|_| out).unwrap();
    a.send(0, &[]).unwrap();
    assert_eq!(
        a.poll_transmit().unwrap(),
        [hex("00000011"), hb_msg.to_vec()].concat()
    );
}
