//! The IPallocation decoders on arbitrary bytes (gossip state, unicast, persisted ring): they
//! never panic, and whatever decodes re-encodes to bytes that decode to the same value and
//! re-encode identically (our encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_ipam::codec::{
    decode_gossip, decode_persisted_ring, decode_unicast, encode_gossip, encode_persisted_ring,
    encode_unicast,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = decode_gossip(data) {
        let bytes = encode_gossip(&state);
        let again = decode_gossip(&bytes).expect("our gossip encoding must decode");
        assert_eq!(again, state);
        assert_eq!(encode_gossip(&again), bytes);
    }
    if let Ok(msg) = decode_unicast(data) {
        let bytes = encode_unicast(&msg);
        let again = decode_unicast(&bytes).expect("our unicast encoding must decode");
        assert_eq!(again, msg);
        assert_eq!(encode_unicast(&again), bytes);
    }
    if let Ok(ring) = decode_persisted_ring(data) {
        let bytes = encode_persisted_ring(&ring);
        let again = decode_persisted_ring(&bytes).expect("our ring encoding must decode");
        assert_eq!(again, ring);
        assert_eq!(encode_persisted_ring(&again), bytes);
    }
});
