//! Arbitrary bytes fed to a connection in handshake state. The first byte
//! picks the password setting and the chunk size.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weft_crypto::{EphemeralKeyPair, Side};
use weft_mesh::PeerName;
use weft_wire::{
    Config, Connection, Features, LocalIdentity, MAX_HANDSHAKE_MESSAGE_LEN, MAX_MESSAGE_LEN,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let id = LocalIdentity {
        name: PeerName::from_u64(1).unwrap_or_default(),
        uid: 1,
        conn_id: 1,
    };
    let mut config = Config::new(id, Features::standard(&id, "fuzz", 1, false, Some("sleeve")));
    if mode & 1 == 1 {
        config = config.with_password("pw");
    }
    let side = if mode & 2 == 2 { Side::Outbound } else { Side::Inbound };
    let now = Instant::now();
    let mut conn =
        Connection::with_key_pair(config, side, EphemeralKeyPair::from_private_bytes([7; 32]), now);
    let chunk = usize::from(mode >> 2).max(1);
    for part in rest.chunks(chunk) {
        if conn.handle_input(part, now).is_err() {
            break;
        }
        let _ = conn.poll_transmit();
        assert!(conn.buffered_input() <= MAX_MESSAGE_LEN + 4);
        // Before authentication only a small features message is buffered.
        if !conn.is_established() {
            assert!(conn.buffered_input() <= MAX_HANDSHAKE_MESSAGE_LEN + 4);
        }
        // The ephemeral secret never outlives the key exchange.
        if conn.is_established() || conn.is_closed() {
            assert!(!conn.holds_key_pair());
        }
    }
    while conn.poll_event().is_some() {}
});
