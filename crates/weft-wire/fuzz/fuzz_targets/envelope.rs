//! Envelope and message decoders on arbitrary bytes; whatever decodes must
//! re-encode to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_wire::{GossipEnvelope, Message, UnicastEnvelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = GossipEnvelope::decode(data) {
        assert_eq!(GossipEnvelope::decode(&e.encode()).ok(), Some(e));
    }
    if let Ok(e) = UnicastEnvelope::decode(data) {
        assert_eq!(UnicastEnvelope::decode(&e.encode()).ok(), Some(e));
    }
    if let Some((&tag, payload)) = data.split_first() {
        if let Ok(Some(m)) = Message::decode(tag, payload) {
            assert_eq!(Message::decode(m.tag(), &m.encode_payload()).ok(), Some(Some(m)));
        }
    }
});
