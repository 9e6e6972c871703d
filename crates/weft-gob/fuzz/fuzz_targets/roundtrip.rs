//! Whatever decodes must re-encode, the re-encoding must decode to the same
//! types, and re-encoding that gives identical bytes (the encoder's output is
//! canonical; the first pass may differ from the input, which can hold
//! explicit zero fields, non-minimal integers or bools other than 0/1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_gob::{Decoded, Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let values: Vec<Decoded> = Decoder::new(data).map_while(Result::ok).collect();
    let mut enc = Encoder::new();
    for d in &values {
        // Decoded struct types may have duplicate field names, which the
        // encoder refuses; skip those streams.
        if enc.encode(&d.ty, &d.value).is_err() {
            return;
        }
    }
    let first = enc.into_bytes();
    let again: Vec<Decoded> = Decoder::new(&first)
        .collect::<Result<_, _>>()
        .expect("re-encoded stream must decode");
    assert_eq!(again.len(), values.len());
    let mut enc = Encoder::new();
    for (a, b) in again.iter().zip(&values) {
        assert_eq!(a.ty, b.ty);
        enc.encode(&a.ty, &a.value).expect("re-encode");
    }
    assert_eq!(enc.into_bytes(), first);
});
