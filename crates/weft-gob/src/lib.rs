//! A Go `encoding/gob` codec for the subset Weave Net's mesh protocol puts on
//! the wire.
//!
//! # What is covered
//!
//! Basic types `bool` (id 1), `int` (2), `uint` (3), `[]byte` (5) and
//! `string` (6); composite types defined in the stream: slices, arrays, maps
//! and structs, through gob's `wireType` / `CommonType` / `sliceType` /
//! `arrayType` / `mapType` / `structType` / `fieldType` definitions. Floats,
//! complex numbers, interfaces and GobEncoder-style types are rejected with a
//! typed error. Weave uses gob in three places, each a self-contained stream
//! decoded by a fresh Go decoder: the handshake features (`map[string]string`),
//! the gossip envelope (top-level `string`, `uint`, optional `uint`, `[]byte`)
//! and the topology payload (`peerSummary` / `[]connectionSummary` pairs).
//!
//! # The model
//!
//! * [`GobType`] describes a type structurally (no ids); [`Value`] is a
//!   dynamically typed value; [`StructValue`] holds the *present* fields of a
//!   struct by name. Maps keep their entries in wire order (Go writes them in
//!   random order) as a `Vec` of pairs.
//! * [`Encoder`] is one stream. The first time a composite type is used it
//!   assigns ids (from 65 by default, in Go's first-use order), sends the
//!   definitions (a type before the types it refers to, each exactly once),
//!   then the value. Zero-valued struct fields are omitted and top-level
//!   non-struct values carry the singleton `00` byte, as Go does.
//! * [`Decoder`] is one stream over a `&[u8]`. It records definitions as they
//!   come, resolves a value's type only when the value arrives (Go may define
//!   a slice before its element), rejects definitions of ids below 64 and
//!   duplicate definitions, and returns each top-level value with its
//!   resolved type. Struct fields are matched by name: [`StructValue::get`]
//!   returns Go's zero value for omitted fields.
//! * [`ToGob`] / [`FromGob`] let hand-written Rust structs map themselves to
//!   and from [`Value`]s.
//!
//! # Wire format in brief
//!
//! A stream is a sequence of messages `uint length, int typeId, body`. A
//! negative id defines type `-typeId` (the body is a `wireType` struct); a
//! positive id carries a value. Unsigned integers below 128 are one byte,
//! larger ones a negated byte count then big-endian bytes; signed integers
//! are zig-zag folded first. Structs are `(field delta, value)` pairs ended by
//! `00`; slices, arrays and maps are a count then their elements.
//!
//! # Totality
//!
//! Decoding never panics and never allocates more than the input justifies:
//! lengths and counts are checked against the bytes left, nesting is bounded
//! and [`Limits`] caps message size, number of types, type size and element
//! count. The crate has no `unsafe`.
//!
//! ```
//! // Appendix A, vector B: the features map {"Name": "A"}.
//! let bytes = weft_gob::encode_string_map([("Name", "A")]);
//! assert_eq!(bytes.len(), 27);
//! let map = weft_gob::decode_string_map(&bytes).unwrap();
//! assert_eq!(map, vec![("Name".to_string(), "A".to_string())]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Totality: library code may not panic on input.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod decode;
mod encode;
mod error;
mod types;
mod value;
pub mod wire;

pub use decode::{Decoded, Decoder, Limits, Utf8Policy};
pub use encode::Encoder;
pub use error::{DecodeError, EncodeError};
pub use types::{ids, FieldType, GobType, StructType};
pub use value::{FromGob, StructValue, ToGob, Value};

/// Encodes a `map[string]string` as a complete stream (definition, then
/// value), entries in the given order. This is Weave's features message.
pub fn encode_string_map<K, V, I>(entries: I) -> Vec<u8>
where
    K: AsRef<str>,
    V: AsRef<str>,
    I: IntoIterator<Item = (K, V)>,
{
    let value = Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k.as_ref()), Value::from(v.as_ref())))
            .collect(),
    );
    let mut enc = Encoder::new();
    // A map of strings always matches its type, so this cannot fail.
    match enc.encode(&GobType::string_map(), &value) {
        Ok(()) => enc.into_bytes(),
        Err(_) => Vec::new(),
    }
}

/// Decodes the first value of a stream as a `map[string]string`, entries in
/// wire order. Like Go's single `Decode` call, anything after the first value
/// is not examined.
pub fn decode_string_map(bytes: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    decode_string_map_with_limits(bytes, Limits::default())
}

/// [`decode_string_map`] with explicit limits.
pub fn decode_string_map_with_limits(
    bytes: &[u8],
    limits: Limits,
) -> Result<Vec<(String, String)>, DecodeError> {
    let decoded = Decoder::with_limits(bytes, limits).expect_value()?;
    let Value::Map(entries) = decoded.value else {
        return Err(DecodeError::WrongType {
            expected: "map[string]string",
            found: decoded.value.kind_name(),
        });
    };
    entries
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Value::String(k), Value::String(v)) => Ok((k, v)),
            (Value::String(_), other) | (other, _) => Err(DecodeError::WrongType {
                expected: "string",
                found: other.kind_name(),
            }),
        })
        .collect()
}
