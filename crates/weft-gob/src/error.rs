//! Typed errors for decoding and encoding.

/// Everything that can go wrong while decoding a gob stream.
///
/// The decoder never panics: any byte string either yields values or one of
/// these errors. After an error the [`Decoder`](crate::Decoder) stops (the
/// stream position is unreliable, as it is in Go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of an item (`what` names the item).
    #[error("unexpected end of input while reading {0}")]
    UnexpectedEof(&'static str),
    /// A uint whose length prefix announces more than 8 bytes.
    #[error("invalid uint encoding: length prefix byte {0:#04x}")]
    BadUint(u8),
    /// A message whose byte count is zero.
    #[error("empty gob message")]
    EmptyMessage,
    /// A message whose byte count exceeds [`Limits::max_message_len`](crate::Limits).
    #[error("gob message of {len} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Declared length.
        len: u64,
        /// Configured limit.
        limit: usize,
    },
    /// A message whose byte count exceeds the input that is left.
    #[error("message declares {declared} bytes but only {available} remain")]
    TruncatedMessage {
        /// Declared length.
        declared: u64,
        /// Bytes left in the input.
        available: usize,
    },
    /// A type id that is zero or does not fit Go's 32-bit type ids.
    #[error("type id {0} is out of range")]
    TypeIdOutOfRange(i64),
    /// A type definition for an id below 64 (reserved for predefined types).
    #[error("type definition for reserved id {0} (user ids start at 64)")]
    ReservedTypeId(i64),
    /// The same id defined twice in one stream.
    #[error("type {0} defined twice in one stream")]
    DuplicateType(i32),
    /// More type definitions than [`Limits::max_types`](crate::Limits).
    #[error("more than {limit} type definitions in one stream")]
    TooManyTypes {
        /// Configured limit.
        limit: usize,
    },
    /// A `wireType` that does not have the expected shape.
    #[error("malformed type definition: {0}")]
    MalformedTypeDefinition(&'static str),
    /// A predefined type id outside the supported subset (float, complex,
    /// interface, the reserved ids and gob's own meta types).
    #[error("unsupported predefined gob type id {0}")]
    UnsupportedTypeId(i32),
    /// A `wireType` kind outside the supported subset (GobEncoder,
    /// BinaryMarshaler, TextMarshaler).
    #[error("unsupported gob wire type kind: {0}")]
    UnsupportedWireType(&'static str),
    /// A reference to a type id never defined in this stream.
    #[error("reference to undefined type id {0}")]
    UnknownTypeId(i32),
    /// A type that (directly or indirectly) contains itself.
    #[error("recursive type {0} is not supported")]
    RecursiveType(i32),
    /// Type or value nesting deeper than [`Limits::max_depth`](crate::Limits).
    #[error("nesting deeper than {limit} levels")]
    TooDeep {
        /// Configured limit.
        limit: usize,
    },
    /// A resolved type with more nodes than [`Limits::max_type_nodes`](crate::Limits).
    #[error("type description has more than {limit} nodes")]
    TypeTooLarge {
        /// Configured limit.
        limit: usize,
    },
    /// A struct field delta that points past the last field.
    #[error("struct field number {field} out of range for a struct with {count} fields")]
    FieldOutOfRange {
        /// The field number reached (saturating).
        field: u64,
        /// Number of fields in the struct type.
        count: usize,
    },
    /// A top-level non-struct value whose singleton delta is not zero.
    #[error("non-zero singleton delta {0} before a top-level value")]
    BadSingletonDelta(u64),
    /// A slice, array, map or string/bytes count larger than the input left.
    #[error("count {count} exceeds the {remaining} bytes left in the message")]
    CountTooLarge {
        /// Declared count.
        count: u64,
        /// Bytes left in the message.
        remaining: usize,
    },
    /// More elements in one message than [`Limits::max_elements`](crate::Limits).
    #[error("more than {limit} elements in one message")]
    TooManyElements {
        /// Configured limit.
        limit: usize,
    },
    /// An array value whose count differs from its type's length.
    #[error("array of {found} elements where the type says {expected}")]
    ArrayLengthMismatch {
        /// Length in the type definition.
        expected: u64,
        /// Count on the wire.
        found: u64,
    },
    /// A string that is not UTF-8 (with [`Utf8Policy::Strict`](crate::Utf8Policy)).
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// Bytes left over inside a message after its definition or value.
    #[error("{0} bytes left over inside a message")]
    TrailingBytes(usize),
    /// A value was expected but the stream has ended.
    #[error("end of stream where a value was expected")]
    EndOfStream,
    /// A value was found where none was expected.
    #[error("unexpected extra value of type id {0}")]
    UnexpectedValue(i32),
    /// A value of another kind than the caller asked for.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the caller wanted.
        expected: &'static str,
        /// What the stream holds.
        found: &'static str,
    },
    /// An integer that does not fit the caller's Rust type.
    #[error("integer {value} does not fit in {target}")]
    IntegerOutOfRange {
        /// The decoded value.
        value: i128,
        /// The target Rust type.
        target: &'static str,
    },
    /// An error while converting one struct field (see [`StructValue::get`](crate::StructValue::get)).
    #[error("field {field}: {source}")]
    InField {
        /// Field name.
        field: String,
        /// The underlying error.
        source: Box<DecodeError>,
    },
}

/// Everything that can go wrong while encoding (all caller mistakes: a value
/// that does not fit its type, or an invalid type description).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value's kind differs from the type's kind.
    #[error("value of kind {found} does not match type {expected}")]
    TypeMismatch {
        /// The type (Go-like notation).
        expected: String,
        /// The value's kind.
        found: &'static str,
    },
    /// A struct value names a field its type does not have.
    #[error("struct {strukt} has no field {field}")]
    UnknownField {
        /// Struct type name.
        strukt: String,
        /// Offending field.
        field: String,
    },
    /// A struct value names the same field twice.
    #[error("field {0} given twice in one struct value")]
    DuplicateField(String),
    /// An array value whose length differs from its type.
    #[error("array value of {found} elements where the type says {expected}")]
    ArrayLength {
        /// Length in the type.
        expected: u64,
        /// Elements in the value.
        found: usize,
    },
    /// An invalid type description (empty or duplicate field names).
    #[error("invalid type description: {0}")]
    InvalidType(String),
    /// The encoder ran out of 32-bit type ids.
    #[error("type ids exhausted")]
    TypeIdsExhausted,
}
