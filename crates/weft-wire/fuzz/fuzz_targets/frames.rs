//! Arbitrary bytes after an established handshake. Plain mode feeds them
//! raw; encrypted mode cuts them into plaintexts that the peer seals
//! properly, so the decoders behind decryption are reached too.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weft_crypto::{EphemeralKeyPair, SessionKey, Side, TcpSealer, TAG_LEN};
use weft_mesh::PeerName;
use weft_wire::{Config, Connection, Event, Features, LocalIdentity, RemotePeer, Tag};

fn config(n: u64, encrypted: bool) -> Config {
    let id = LocalIdentity {
        name: PeerName::from_u64(n).unwrap_or_default(),
        uid: n,
        conn_id: n,
    };
    let c = Config::new(id, Features::standard(&id, "f", 1, false, Some("sleeve")));
    if encrypted {
        c.with_password("pw")
    } else {
        c
    }
}

fn established(encrypted: bool, now: Instant) -> Option<(Connection, Connection)> {
    let make = |n: u64, side, seed| {
        Connection::with_key_pair(
            config(n, encrypted),
            side,
            EphemeralKeyPair::from_private_bytes([seed; 32]),
            now,
        )
    };
    let mut a = make(1, Side::Outbound, 1);
    let mut b = make(2, Side::Inbound, 2);
    for _ in 0..4 {
        if let Some(x) = a.poll_transmit() {
            b.handle_input(&x, now).ok()?;
        }
        if let Some(x) = b.poll_transmit() {
            a.handle_input(&x, now).ok()?;
        }
    }
    (a.is_established() && b.is_established()).then_some((a, b))
}

/// What a real back-to-back handshake gives `a`, worked out once per mode: the remote peer
/// and the session key. Each input then starts from `Connection::established_for_fuzzing`,
/// so X25519 (most of the time per input when it ran every time) is not repeated.
struct Handshaken {
    config: Config,
    remote: RemotePeer,
    key: Option<[u8; 32]>,
}

/// `a` as the real handshake left it, without the handshake.
fn shortcut(h: &Handshaken, now: Instant) -> Connection {
    Connection::established_for_fuzzing(
        h.config.clone(),
        Side::Outbound,
        h.remote.clone(),
        h.key.map(SessionKey::from_bytes),
        now,
    )
}

fn handshaken(encrypted: bool) -> &'static Handshaken {
    static PLAIN: OnceLock<Handshaken> = OnceLock::new();
    static SEALED: OnceLock<Handshaken> = OnceLock::new();
    let cell = if encrypted { &SEALED } else { &PLAIN };
    cell.get_or_init(|| {
        let now = Instant::now();
        let Some((mut a, b)) = established(encrypted, now) else {
            panic!("back-to-back handshake failed");
        };
        let mut remote = None;
        while let Some(ev) = a.poll_event() {
            if let Event::HandshakeDone(r) = ev {
                remote = Some(*r);
            }
        }
        let Some(remote) = remote else {
            panic!("no HandshakeDone event");
        };
        let h = Handshaken {
            config: config(1, encrypted),
            remote,
            key: b.session_key().map(|k| *k.as_bytes()),
        };
        // The shortcut must leave `a` where the real handshake did: b's next message opens.
        let mut b = b;
        let mut a = shortcut(&h, now);
        let _ = b.send(Tag::Heartbeat.as_u8(), &[]);
        while let Some(x) = b.poll_transmit() {
            if let Err(e) = a.handle_input(&x, now) {
                panic!("the fuzzing shortcut does not match a real handshake: {e}");
            }
        }
        h
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let encrypted = mode & 1 == 1;
    let h = handshaken(encrypted);
    let mut a = shortcut(h, now);
    assert!(a.is_established());
    if let Some(key) = h.key.map(SessionKey::from_bytes) {
        let mut sealer = TcpSealer::new(&key, Side::Inbound);
        let _ = sealer.seal_into(&[], &mut [0u8; TAG_LEN]); // the features were #0
        let mut input = rest;
        while let Some((&n, tail)) = input.split_first() {
            let n = usize::from(n).min(tail.len());
            let (plain, tail) = tail.split_at(n);
            input = tail;
            let mut frame = ((n + TAG_LEN) as u32).to_be_bytes().to_vec();
            frame.resize(4 + n + TAG_LEN, 0);
            if sealer.seal_into(plain, &mut frame[4..]).is_err() {
                return;
            }
            if a.handle_input(&frame, now).is_err() {
                break;
            }
        }
    } else {
        let chunk = usize::from(mode >> 1).max(1);
        for part in rest.chunks(chunk) {
            if a.handle_input(part, now).is_err() {
                break;
            }
        }
    }
    while a.poll_event().is_some() {}
});
