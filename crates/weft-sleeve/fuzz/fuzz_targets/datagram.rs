//! Arbitrary UDP datagrams into a sleeve link, in clear and encrypted mode: never a panic,
//! and the link keeps working (a valid heartbeat afterwards is still accepted).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weft_crypto::SessionKey;
use weft_mesh::PeerName;
use weft_sleeve::link::{HEARTBEAT_TIMEOUT, SLOW_HEARTBEAT};
use weft_sleeve::{packet, HeartbeatLink, LinkConfig};

fn link(key: Option<SessionKey>, now: Instant) -> HeartbeatLink {
    HeartbeatLink::new(
        LinkConfig {
            local: PeerName::from_bytes([0, 0, 0, 0, 0, 2]),
            remote: PeerName::from_bytes([0, 0, 0, 0, 0, 1]),
            conn_uid: 42,
            outbound: false,
            remote_addr: None,
            session_key: key,
            heartbeat_interval: SLOW_HEARTBEAT,
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
        },
        now,
    )
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let from = "198.18.0.1:6783".parse().unwrap();
    let _ = packet::sender(data);
    for f in packet::frames(data).flatten() {
        let _ = packet::special(f.data);
    }
    for key in [None, Some(SessionKey::from_bytes([3; 32]))] {
        let mut l = link(key, now);
        let mut buf = data.to_vec();
        let _ = l.handle_datagram(now, from, &mut buf);
        while l.poll_event().is_some() {}
        while l.poll_transmit().is_some() {}
    }
});
