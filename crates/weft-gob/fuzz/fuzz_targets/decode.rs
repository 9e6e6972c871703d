//! Runs the decoder over arbitrary input: it must never panic, and must
//! stop (it is fused after an error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_gob::{decode_string_map, Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    for r in Decoder::new(data) {
        if r.is_err() {
            break;
        }
    }
    let _ = decode_string_map(data);
    let tight = Limits {
        max_message_len: 256,
        max_types: 4,
        max_depth: 3,
        max_type_nodes: 16,
        max_elements: 8,
        ..Limits::default()
    };
    for r in Decoder::with_limits(data, tight) {
        if r.is_err() {
            break;
        }
    }
});
