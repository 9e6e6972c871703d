//! The topology payload decoders on arbitrary bytes:
//! * the fast path never disagrees with the generic gob decoder (when it answers, the generic
//!   decoder gives the same update), and `decode_topology` is always the generic answer;
//! * decode → encode → decode is stable, and the fast encoder is byte-identical to the
//!   `weft_gob::Encoder`-based one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_mesh::gossip::{
    decode_topology, decode_topology_fast, decode_topology_generic, encode_topology,
    encode_topology_generic,
};

fuzz_target!(|data: &[u8]| {
    let generic = decode_topology_generic(data);
    if let Some(fast) = decode_topology_fast(data) {
        assert_eq!(
            Ok(fast),
            generic,
            "fast path disagrees with the generic decoder"
        );
    }
    assert_eq!(decode_topology(data), generic);
    if let Ok(update) = generic {
        let bytes = encode_topology(&update);
        assert_eq!(bytes, encode_topology_generic(&update));
        assert_eq!(decode_topology_generic(&bytes).as_ref(), Ok(&update));
        assert_eq!(decode_topology_fast(&bytes).as_ref(), Some(&update));
        assert_eq!(encode_topology(&decode_topology(&bytes).unwrap()), bytes);
    }
});
