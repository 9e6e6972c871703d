use super::*;
use proptest::prelude::*;
use weft_mesh::PeerName;

fn ident(n: u64, uid: u64, conn_id: u64) -> LocalIdentity {
    LocalIdentity {
        name: PeerName::from_u64(n).unwrap(),
        uid,
        conn_id,
    }
}

fn config(id: LocalIdentity, password: Option<&str>) -> Config {
    let features = Features::standard(
        &id,
        &format!("host{}", id.name.as_u64()),
        7,
        false,
        Some("sleeve"),
    );
    let mut c = Config::new(id, features);
    c.password = password.map(Password::from);
    c
}

fn keys(seed: u8) -> EphemeralKeyPair {
    EphemeralKeyPair::from_private_bytes([seed; 32])
}

fn pair(pa: Option<&str>, pb: Option<&str>, now: Instant) -> (Connection, Connection) {
    let a = Connection::with_key_pair(config(ident(1, 11, 100), pa), Side::Outbound, keys(1), now);
    let b = Connection::with_key_pair(config(ident(2, 22, 200), pb), Side::Inbound, keys(2), now);
    (a, b)
}

/// Moves bytes both ways, feeding each chunk split by `chunks` (cycled),
/// until neither side has output. Returns the first error of each side.
fn pump(
    a: &mut Connection,
    b: &mut Connection,
    chunks: &[usize],
    now: Instant,
) -> (Option<ConnectionError>, Option<ConnectionError>) {
    let (mut ea, mut eb) = (None, None);
    let mut i = 0;
    let mut feed =
        |from: &mut Connection, to: &mut Connection, err: &mut Option<ConnectionError>| {
            let mut moved = false;
            if let Some(bytes) = from.poll_transmit() {
                moved = true;
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = chunks[i % chunks.len()].clamp(1, rest.len());
                    i += 1;
                    let (now_part, later) = rest.split_at(n);
                    rest = later;
                    if let Err(e) = to.handle_input(now_part, now) {
                        err.get_or_insert(e);
                        break;
                    }
                }
            }
            moved
        };
    loop {
        let m1 = feed(a, b, &mut eb);
        let m2 = feed(b, a, &mut ea);
        if !m1 && !m2 {
            break;
        }
    }
    (ea, eb)
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn handshake_done(c: &mut Connection) -> RemotePeer {
    match events(c).as_slice() {
        [Event::HandshakeDone(r)] => (**r).clone(),
        other => panic!("expected HandshakeDone, got {other:?}"),
    }
}

#[test]
fn plain_and_encrypted_handshakes() {
    for pw in [None, Some("s3cret")] {
        let now = Instant::now();
        let (mut a, mut b) = pair(pw, pw, now);
        assert_eq!(pump(&mut a, &mut b, &[1000], now), (None, None));
        assert!(a.is_established() && b.is_established());
        let ra = handshake_done(&mut a);
        let rb = handshake_done(&mut b);
        assert_eq!(ra.name.as_u64(), 2);
        assert_eq!(rb.name.as_u64(), 1);
        assert_eq!(ra.nick_name, "host2");
        assert_eq!(ra.conn_uid, 100 ^ 200);
        assert_eq!(ra.conn_uid, rb.conn_uid);
        assert_eq!(ra.session_key.is_some(), pw.is_some());
        assert_eq!(ra.session_key, rb.session_key);
        assert_eq!(ra.version, 2);
        assert_eq!(a.session_key(), b.session_key());
    }
}

fn arb_message() -> impl Strategy<Value = Message> {
    let name = (0..=PeerName::MAX).prop_map(|v| PeerName::from_u64(v).unwrap());
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        Just(Message::Heartbeat),
        (1..=3u8, bytes.clone()).prop_map(|(tag, payload)| Message::SleeveCompat { tag, payload }),
        ("[a-zA-Z]{0,12}", name.clone(), bytes.clone()).prop_map(|(channel, src, payload)| {
            Message::Gossip(GossipEnvelope {
                channel,
                src,
                payload,
            })
        }),
        ("[a-zA-Z]{0,12}", name.clone(), bytes.clone()).prop_map(|(channel, src, payload)| {
            Message::GossipBroadcast(GossipEnvelope {
                channel,
                src,
                payload,
            })
        }),
        ("[a-zA-Z]{0,12}", name.clone(), name, bytes.clone()).prop_map(
            |(channel, src, dst, payload)| {
                Message::GossipUnicast(UnicastEnvelope {
                    channel,
                    src,
                    dst,
                    payload,
                })
            }
        ),
        (any::<u8>(), any::<u8>(), bytes).prop_map(|(index, tag, data)| Message::OverlayControl(
            OverlayControlMsg { index, tag, data }
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_any_messages(
        encrypted in any::<bool>(),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        to_b in proptest::collection::vec(arb_message(), 0..8),
        to_a in proptest::collection::vec(arb_message(), 0..8),
    ) {
        let now = Instant::now();
        let pw = encrypted.then_some("pw");
        let (mut a, mut b) = pair(pw, pw, now);
        prop_assert_eq!(pump(&mut a, &mut b, &chunks, now), (None, None));
        handshake_done(&mut a);
        handshake_done(&mut b);
        for m in &to_b {
            a.send_message(m).unwrap();
        }
        for m in &to_a {
            b.send_message(m).unwrap();
        }
        prop_assert_eq!(pump(&mut a, &mut b, &chunks, now), (None, None));
        let got_b: Vec<Event> = events(&mut b);
        let got_a: Vec<Event> = events(&mut a);
        prop_assert_eq!(got_b, to_b.into_iter().map(Event::Message).collect::<Vec<_>>());
        prop_assert_eq!(got_a, to_a.into_iter().map(Event::Message).collect::<Vec<_>>());
        prop_assert_eq!(a.buffered_input(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        encrypted in any::<bool>(),
        prefix_ok in any::<bool>(),
        junk in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let now = Instant::now();
        let pw = encrypted.then_some("pw");
        let (mut a, _) = pair(pw, pw, now);
        let mut input = Vec::new();
        if prefix_ok {
            input.extend_from_slice(b"weave\x01\x02");
        }
        input.extend_from_slice(&junk);
        let _ = a.handle_input(&input, now);
        let _ = events(&mut a);
        prop_assert!(a.buffered_input() <= MAX_MESSAGE_LEN + 4);
    }
}

#[test]
fn different_passwords_fail_on_both_sides() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Some("one"), Some("two"), now);
    let (ea, eb) = pump(&mut a, &mut b, &[7], now);
    assert_eq!(ea, Some(ConnectionError::PasswordMismatch));
    assert_eq!(eb, Some(ConnectionError::PasswordMismatch));
    assert_eq!(
        ConnectionError::PasswordMismatch.to_string(),
        "decryption failed: the peers' passwords differ?"
    );
    assert!(a.is_closed() && b.is_closed());
    assert!(events(&mut a).is_empty());
}

#[test]
fn one_sided_password() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Some("pw"), None, now);
    let (ea, eb) = pump(&mut a, &mut b, &[100], now);
    assert_eq!(ea, Some(ConnectionError::PeerUnencrypted));
    assert_eq!(eb, Some(ConnectionError::PeerEncrypted));
    assert_eq!(
        ea.unwrap().to_string(),
        "password specified, but peer requested an unencrypted connection"
    );
}

#[test]
fn self_connection_and_name_collision() {
    let now = Instant::now();
    let me = ident(1, 11, 100);
    let mut a = Connection::with_key_pair(config(me, None), Side::Outbound, keys(1), now);
    let mut b = Connection::with_key_pair(
        config(LocalIdentity { conn_id: 5, ..me }, None),
        Side::Inbound,
        keys(2),
        now,
    );
    let (ea, eb) = pump(&mut a, &mut b, &[3], now);
    assert_eq!(ea, Some(ConnectionError::ConnectToSelf));
    assert_eq!(eb, Some(ConnectionError::ConnectToSelf));

    let mut a = Connection::with_key_pair(config(me, None), Side::Outbound, keys(1), now);
    let mut b = Connection::with_key_pair(
        config(LocalIdentity { uid: 12, ..me }, None),
        Side::Inbound,
        keys(2),
        now,
    );
    let (ea, _) = pump(&mut a, &mut b, &[3], now);
    assert_eq!(
        ea,
        Some(ConnectionError::PeerNameCollision { name: me.name })
    );
}

fn established(pw: Option<&str>, now: Instant) -> (Connection, Connection) {
    let (mut a, mut b) = pair(pw, pw, now);
    assert_eq!(pump(&mut a, &mut b, &[4096], now), (None, None));
    handshake_done(&mut a);
    handshake_done(&mut b);
    (a, b)
}

#[test]
fn oversized_length_rejected() {
    let now = Instant::now();
    let (mut a, _) = established(None, now);
    let too_big = (MAX_MESSAGE_LEN as u32 + 1).to_be_bytes();
    assert_eq!(
        a.handle_input(&too_big, now),
        Err(ConnectionError::MessageTooLarge {
            len: MAX_MESSAGE_LEN as u32 + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    assert!(a.is_closed());
    assert_eq!(a.buffered_input(), 0);
    // Also during the handshake (the features message).
    let (mut a, _) = pair(None, None, now);
    a.handle_input(b"weave\x01\x02\x00", now).unwrap();
    assert!(matches!(
        a.handle_input(&[0xff, 0xff, 0xff, 0xff], now),
        Err(ConnectionError::HandshakeMessageTooLarge { .. })
    ));
}

#[test]
fn truncated_input_waits() {
    let now = Instant::now();
    let (mut a, mut b) = pair(None, None, now);
    a.handle_input(b"weav", now).unwrap();
    assert_eq!(a.pending_transmit(), 7, "only our header so far");
    a.handle_input(b"e\x01\x02", now).unwrap();
    assert_eq!(a.version(), Some(2));
    // Let b produce everything up to its features, and cut them short.
    b.handle_input(&a.poll_transmit().unwrap(), now).unwrap();
    let from_b = b.poll_transmit().unwrap();
    let (head, tail) = from_b.split_at(from_b.len() - 3);
    a.handle_input(&head[7..], now).unwrap();
    assert!(!a.is_established() && a.poll_event().is_none());
    a.handle_input(tail, now).unwrap();
    assert!(a.is_established());
    // Half a message after the handshake produces nothing yet.
    let _ = events(&mut a);
    a.handle_input(&[0, 0, 0], now).unwrap();
    assert_eq!(a.buffered_input(), 3);
    a.handle_input(&[1], now).unwrap();
    assert!(a.poll_event().is_none());
    a.handle_input(&[0], now).unwrap();
    assert_eq!(a.poll_event(), Some(Event::Message(Message::Heartbeat)));
    a.handle_input(&[0, 0, 0, 3, 7], now).unwrap();
    assert!(a.poll_event().is_none());
    a.handle_input(&[0, 1], now).unwrap();
    assert_eq!(
        a.poll_event(),
        Some(Event::Message(Message::OverlayControl(OverlayControlMsg {
            index: 0,
            tag: 1,
            data: vec![]
        })))
    );
}

#[test]
fn empty_unknown_and_malformed_messages() {
    let now = Instant::now();
    let (mut a, mut b) = established(None, now);
    // Empty message: ignored. Unknown tag: event.
    a.handle_input(&[0, 0, 0, 0, 0, 0, 0, 3, 42, 1, 2], now)
        .unwrap();
    assert_eq!(events(&mut a), vec![Event::UnknownTag { tag: 42, len: 2 }]);
    // A one-byte overlay control message is refused both ways.
    assert_eq!(b.send(7, &[0]), Err(SendError::MalformedOverlayControl));
    assert_eq!(
        a.handle_input(&[0, 0, 0, 2, 7, 0], now),
        Err(ConnectionError::OverlayControlTooShort(1))
    );
    // A gossip message whose envelope is garbage is fatal.
    let (mut a, _) = established(None, now);
    assert!(matches!(
        a.handle_input(&[0, 0, 0, 3, 4, 1, 2], now),
        Err(ConnectionError::Envelope { tag: 4, .. })
    ));
}

#[test]
fn send_before_handshake_and_after_close() {
    let now = Instant::now();
    let (mut a, _) = pair(None, None, now);
    assert_eq!(a.send(0, &[]), Err(SendError::NotEstablished));
    a.close();
    assert_eq!(a.send(0, &[]), Err(SendError::Closed));
    assert_eq!(a.handle_input(b"x", now), Err(ConnectionError::Closed));
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.poll_transmit(), None);
}

#[test]
fn version_negotiation_failures() {
    let now = Instant::now();
    let (mut a, _) = pair(None, None, now);
    assert_eq!(
        a.handle_input(b"weave\x01\x01", now),
        Err(ConnectionError::Version1Unsupported)
    );
    let mut cfg = config(ident(1, 1, 1), None);
    cfg.min_version = 2;
    let mut a = Connection::with_key_pair(cfg, Side::Outbound, keys(1), now);
    assert_eq!(a.poll_transmit().unwrap(), b"weave\x02\x02");
    assert!(matches!(
        a.handle_input(b"weave\x01\x01", now),
        Err(ConnectionError::VersionMismatch {
            our_min: 2,
            their_max: 1,
            ..
        })
    ));
    let (mut a, _) = pair(None, None, now);
    assert!(matches!(
        a.handle_input(b"HTTP/1.1", now),
        Err(ConnectionError::BadProtocolName(_))
    ));
    let (mut a, _) = pair(None, None, now);
    assert_eq!(
        a.handle_input(b"weave\x01\x02\x05", now),
        Err(ConnectionError::InvalidCryptoFlag(5))
    );
}

#[test]
fn handshake_timeouts() {
    let t0 = Instant::now();
    let (mut a, _) = pair(None, None, t0);
    assert_eq!(a.poll_timeout(), Some(t0 + HEADER_TIMEOUT));
    a.handle_timeout(t0 + Duration::from_secs(9));
    assert!(!a.is_closed());
    a.handle_timeout(t0 + HEADER_TIMEOUT);
    assert_eq!(a.error(), Some(&ConnectionError::HeaderTimeout));

    // The rest of the handshake shares the same budget, counted from the
    // start: a client that sends the header and stalls is gone at 10 s, not
    // 10 s after its header (Weave: 60 s more).
    let (mut a, _) = pair(None, None, t0);
    let t1 = t0 + Duration::from_secs(5);
    a.handle_input(b"weave\x01\x02", t1).unwrap();
    assert_eq!(a.poll_timeout(), Some(t0 + HANDSHAKE_TIMEOUT));
    a.handle_timeout(t0 + HANDSHAKE_TIMEOUT - Duration::from_millis(1));
    assert!(!a.is_closed());
    a.handle_timeout(t0 + HANDSHAKE_TIMEOUT);
    assert_eq!(a.error(), Some(&ConnectionError::HandshakeTimeout));
    assert!(HANDSHAKE_TIMEOUT <= Duration::from_secs(10));
}

#[test]
fn features_message_is_capped_before_authentication() {
    let now = Instant::now();
    for pw in [None, Some("pw")] {
        let (mut a, b) = pair(pw, pw, now);
        // Header and crypto flag (and key) as b sends them, then a length
        // prefix just over the pre-authentication limit: refused at the
        // prefix, nothing of the body is buffered.
        let mut hello = b"weave\x01\x02".to_vec();
        match b.public_key() {
            Some(k) => {
                hello.push(1);
                hello.extend_from_slice(&k);
            }
            None => hello.push(0),
        }
        a.handle_input(&hello, now).unwrap();
        let len = u32::try_from(MAX_HANDSHAKE_MESSAGE_LEN + 1).unwrap();
        let mut msg = len.to_be_bytes().to_vec();
        msg.extend_from_slice(&[0; 100]);
        assert_eq!(
            a.handle_input(&msg, now),
            Err(ConnectionError::HandshakeMessageTooLarge {
                len,
                max: MAX_HANDSHAKE_MESSAGE_LEN
            })
        );
        assert!(a.is_closed());
        assert_eq!(a.buffered_input(), 0);
        assert!(
            !a.holds_key_pair() && !a.holds_password(),
            "wiped on failure"
        );
    }
    // Exactly at the limit is read (and here fails only as a malformed map).
    let (mut a, _) = pair(None, None, now);
    a.handle_input(b"weave\x01\x02\x00", now).unwrap();
    let len = u32::try_from(MAX_HANDSHAKE_MESSAGE_LEN).unwrap();
    a.handle_input(&len.to_be_bytes(), now).unwrap();
    a.handle_input(&vec![0xff; MAX_HANDSHAKE_MESSAGE_LEN - 1], now)
        .unwrap();
    assert_eq!(a.buffered_input(), MAX_HANDSHAKE_MESSAGE_LEN - 1);
    assert!(matches!(
        a.handle_input(&[0xff], now),
        Err(ConnectionError::FeaturesDecode(_))
    ));
}

#[test]
fn big_messages_are_accepted_after_the_handshake() {
    let now = Instant::now();
    let (mut a, mut b) = established(Some("pw"), now);
    let payload = vec![0u8; 4 * MAX_HANDSHAKE_MESSAGE_LEN];
    a.send(Tag::Reserved1.as_u8(), &payload).unwrap();
    b.handle_input(&a.poll_transmit().unwrap(), now).unwrap();
    assert_eq!(
        events(&mut b),
        vec![Event::Message(Message::SleeveCompat { tag: 1, payload })]
    );
}

#[test]
fn key_pair_and_password_are_dropped_once_the_session_key_exists() {
    let now = Instant::now();
    let password = Password::from("pw");
    let mut cfg_a = config(ident(1, 11, 100), None);
    cfg_a.password = Some(password.clone());
    let mut cfg_b = config(ident(2, 22, 200), None);
    cfg_b.password = Some(password.clone());
    let mut a = Connection::with_key_pair(cfg_a, Side::Outbound, keys(1), now);
    let mut b = Connection::with_key_pair(cfg_b, Side::Inbound, keys(2), now);
    assert!(a.holds_key_pair() && a.holds_password());
    assert_eq!(password.holders(), 3, "shared, not copied");
    let public = a.public_key();
    assert!(public.is_some());
    let (ea, eb) = pump(&mut a, &mut b, &[1000], now);
    assert_eq!((ea, eb), (None, None));
    assert!(a.is_established() && b.is_established());
    assert!(a.session_key().is_some());
    for c in [&a, &b] {
        assert!(!c.holds_key_pair(), "ephemeral key pair dropped");
        assert!(!c.holds_password(), "password let go");
    }
    assert_eq!(password.holders(), 1);
    assert_eq!(a.public_key(), public, "the public key stays known");
    // Without a password no key pair is kept at all.
    let (a, _) = pair(None, None, now);
    assert!(!a.holds_key_pair() && a.public_key().is_none());
}

#[test]
fn heartbeats_and_read_timeout() {
    let t0 = Instant::now();
    let (mut a, mut b) = established(Some("pw"), t0);
    assert_eq!(a.poll_timeout(), Some(t0 + HEARTBEAT_INTERVAL));
    a.handle_timeout(t0 + HEARTBEAT_INTERVAL);
    let hb = a.poll_transmit().unwrap();
    assert_eq!(hb.len(), 4 + 1 + TAG_LEN, "one sealed heartbeat");
    assert_eq!(&hb[..4], &[0, 0, 0, 17]);
    let t1 = t0 + HEARTBEAT_INTERVAL;
    b.handle_input(&hb, t1).unwrap();
    assert_eq!(events(&mut b), vec![Event::Message(Message::Heartbeat)]);
    // b heard something at t1, so its read deadline moved to t1 + 60 s.
    b.handle_timeout(t0 + READ_TIMEOUT);
    assert!(!b.is_closed());
    assert_eq!(
        b.poll_transmit().map(|v| v.len()),
        Some(21),
        "b's own heartbeat at 30 s"
    );
    // a heard nothing since t0: at t0 + 60 s it fails (its 60 s heartbeat is
    // not sent because the deadline fires first).
    assert_eq!(a.poll_timeout(), Some(t0 + READ_TIMEOUT));
    a.handle_timeout(t0 + READ_TIMEOUT);
    assert_eq!(a.error(), Some(&ConnectionError::ReadTimeout));
    // b's next heartbeat and its read deadline coincide at t0 + 90 s.
    assert_eq!(b.poll_timeout(), Some(t1 + READ_TIMEOUT));
    b.handle_timeout(t1 + Duration::from_secs(59));
    assert_eq!(b.poll_transmit(), None);
}

#[test]
fn output_is_batched() {
    let now = Instant::now();
    let (mut a, mut b) = established(None, now);
    a.send(0, &[]).unwrap();
    a.send(7, &[0, 1]).unwrap();
    a.send(7, &[0, 3, 5, 0x9e]).unwrap();
    let out = a.poll_transmit().unwrap();
    assert_eq!(
        out,
        [0, 0, 0, 1, 0, 0, 0, 0, 3, 7, 0, 1, 0, 0, 0, 5, 7, 0, 3, 5, 0x9e]
    );
    b.handle_input(&out, now).unwrap();
    assert_eq!(events(&mut b).len(), 3);
    assert!(matches!(
        a.send(4, &vec![0; MAX_MESSAGE_LEN]),
        Err(SendError::TooLarge { .. })
    ));
}

#[test]
fn new_draws_keys_from_rng_only_with_password() {
    use rand::SeedableRng;
    let now = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let a = Connection::new(
        config(ident(1, 1, 1), Some("x")),
        Side::Outbound,
        &mut rng,
        now,
    );
    assert!(a.public_key().is_some());
    let b = Connection::new(config(ident(1, 1, 1), None), Side::Outbound, &mut rng, now);
    assert!(b.public_key().is_none());
}
