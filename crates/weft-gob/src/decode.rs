//! The stream decoder.
//!
//! A [`Decoder`] reads one gob stream from a byte slice. Each message is a
//! byte count, a signed type id and a body. A negative id introduces a
//! definition of type `-id`, which is recorded but not resolved; a positive
//! id introduces a value, whose type is resolved from the definitions seen so
//! far at that moment (Go may define a slice before its element type). Values
//! are decoded by walking the resolved [`GobType`].
//!
//! Totality: every length and count read from the wire is checked against the
//! bytes left before anything is allocated, nesting is bounded, and the sizes
//! of messages, type descriptions and decoded values are capped by
//! [`Limits`]. Recursive types are rejected.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::DecodeError;
use crate::types::{ids, FieldType, GobType, StructType};
use crate::value::{FromGob, StructValue, Value};
use crate::wire::Reader;

/// What to do with a gob string that is not UTF-8 (Go strings are arbitrary
/// bytes; Rust strings are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Utf8Policy {
    /// Fail with [`DecodeError::InvalidUtf8`].
    #[default]
    Strict,
    /// Replace invalid sequences with U+FFFD.
    Lossy,
}

/// Resource limits for one [`Decoder`]. The defaults suit Weave's control
/// plane, whose TCP messages are at most 10 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message (type definition or value), in bytes.
    pub max_message_len: usize,
    /// Most type definitions in one stream.
    pub max_types: usize,
    /// Deepest nesting of types (and so of values).
    pub max_depth: usize,
    /// Most nodes in one resolved type description.
    pub max_type_nodes: usize,
    /// Most elements (slice/array elements, map entries, struct fields) in
    /// one value message.
    pub max_elements: usize,
    /// Handling of non-UTF-8 strings.
    pub utf8: Utf8Policy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: 10 << 20,
            max_types: 1024,
            max_depth: 32,
            max_type_nodes: 4096,
            max_elements: 1 << 20,
            utf8: Utf8Policy::Strict,
        }
    }
}

/// One decoded top-level value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The stream's id for the value's type.
    pub type_id: i32,
    /// The resolved type.
    pub ty: Arc<GobType>,
    /// The value.
    pub value: Value,
}

/// A type definition as received: references are still ids.
#[derive(Debug, Clone)]
enum WireDef {
    Struct {
        name: String,
        fields: Vec<(Arc<str>, i32)>,
    },
    Slice(i32),
    Array(i32, u64),
    Map(i32, i32),
}

/// Decodes one gob stream.
///
/// ```
/// use weft_gob::{Decoder, Value};
/// // Appendix A, vector E2: "topology", src, payload `aa`.
/// let e2 = b"\x0b\x0c\x00\x08topology\x09\x06\x00\xfa\x12\x34\x56\x78\x9a\xbc\x04\x0a\x00\x01\xaa";
/// let mut dec = Decoder::new(e2);
/// assert_eq!(dec.expect_string().unwrap(), "topology");
/// assert_eq!(dec.expect_uint().unwrap(), 0x1234_5678_9abc);
/// assert_eq!(dec.expect_bytes().unwrap(), [0xaa]);
/// assert!(dec.next_value().unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    defs: HashMap<i32, WireDef>,
    resolved: HashMap<i32, Arc<GobType>>,
    done: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder with default [`Limits`].
    pub fn new(input: &'a [u8]) -> Self {
        Decoder::with_limits(input, Limits::default())
    }

    /// A decoder with the given limits.
    pub fn with_limits(input: &'a [u8], limits: Limits) -> Self {
        Decoder {
            input,
            pos: 0,
            limits,
            defs: HashMap::new(),
            resolved: HashMap::new(),
            done: false,
        }
    }

    /// Offset of the next unread message.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// True when the input is exhausted.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// The next top-level value, reading any type definitions before it.
    /// `Ok(None)` at the end of the input (a stream may end with definitions
    /// that no value uses). After an error the decoder returns `Ok(None)`.
    pub fn next_value(&mut self) -> Result<Option<Decoded>, DecodeError> {
        while !self.done {
            if self.is_at_end() {
                self.done = true;
                break;
            }
            match self.read_message() {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// The next value; [`DecodeError::EndOfStream`] if there is none.
    pub fn expect_value(&mut self) -> Result<Decoded, DecodeError> {
        self.next_value()?.ok_or(DecodeError::EndOfStream)
    }

    /// The next value, which must be a `uint`.
    pub fn expect_uint(&mut self) -> Result<u64, DecodeError> {
        self.decode_item()
    }

    /// The next value, which must be an `int`.
    pub fn expect_int(&mut self) -> Result<i64, DecodeError> {
        self.decode_item()
    }

    /// The next value, which must be a `bool`.
    pub fn expect_bool(&mut self) -> Result<bool, DecodeError> {
        self.decode_item()
    }

    /// The next value, which must be a `string`.
    pub fn expect_string(&mut self) -> Result<String, DecodeError> {
        match self.expect_value()?.value {
            Value::String(s) => Ok(s),
            other => Err(DecodeError::WrongType {
                expected: "string",
                found: other.kind_name(),
            }),
        }
    }

    /// The next value, which must be a `[]byte`.
    pub fn expect_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        match self.expect_value()?.value {
            Value::Bytes(b) => Ok(b),
            other => Err(DecodeError::WrongType {
                expected: "[]byte",
                found: other.kind_name(),
            }),
        }
    }

    /// The next value, converted with [`FromGob`].
    pub fn decode_item<T: FromGob>(&mut self) -> Result<T, DecodeError> {
        T::from_gob(&self.expect_value()?.value)
    }

    /// Succeeds only if no value is left (trailing definitions are allowed).
    pub fn expect_end(&mut self) -> Result<(), DecodeError> {
        match self.next_value()? {
            None => Ok(()),
            Some(d) => Err(DecodeError::UnexpectedValue(d.type_id)),
        }
    }

    /// Reads one message: `Ok(None)` for a definition, `Ok(Some)` for a value.
    fn read_message(&mut self) -> Result<Option<Decoded>, DecodeError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let mut r = Reader::new(rest);
        let len = r.uint("message length")?;
        if len == 0 {
            return Err(DecodeError::EmptyMessage);
        }
        let available = r.remaining();
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if n > self.limits.max_message_len {
            return Err(DecodeError::MessageTooLarge {
                len,
                limit: self.limits.max_message_len,
            });
        }
        if n > available {
            return Err(DecodeError::TruncatedMessage {
                declared: len,
                available,
            });
        }
        let body = r.take(n, "message body")?;
        self.pos = self.input.len().saturating_sub(r.remaining());

        let mut b = Reader::new(body);
        let raw_id = b.int("type id")?;
        let id = i32::try_from(raw_id)
            .ok()
            .filter(|&id| id != 0 && id != i32::MIN)
            .ok_or(DecodeError::TypeIdOutOfRange(raw_id))?;
        if id < 0 {
            self.receive_definition(-id, &mut b)?;
            if !b.is_empty() {
                return Err(DecodeError::TrailingBytes(b.remaining()));
            }
            return Ok(None);
        }
        let ty = self.resolve(id)?;
        let mut budget = self.limits.max_elements;
        let mut ctx = ValueCtx {
            limits: &self.limits,
            budget: &mut budget,
        };
        let value = match &*ty {
            GobType::Struct(st) => Value::Struct(ctx.decode_struct(st, &mut b, 0)?),
            other => {
                let delta = b.uint("singleton delta")?;
                if delta != 0 {
                    return Err(DecodeError::BadSingletonDelta(delta));
                }
                ctx.decode_value(other, &mut b, 0)?
            }
        };
        if !b.is_empty() {
            return Err(DecodeError::TrailingBytes(b.remaining()));
        }
        Ok(Some(Decoded {
            type_id: id,
            ty,
            value,
        }))
    }

    /// Parses a `wireType` body defining type `id`.
    fn receive_definition(&mut self, id: i32, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        if id < ids::FIRST_DEFINABLE {
            return Err(DecodeError::ReservedTypeId(i64::from(id)));
        }
        if self.defs.contains_key(&id) {
            return Err(DecodeError::DuplicateType(id));
        }
        if self.defs.len() >= self.limits.max_types {
            return Err(DecodeError::TooManyTypes {
                limit: self.limits.max_types,
            });
        }
        let utf8 = self.limits.utf8;
        let mut def = None;
        let mut fields = FieldCursor::new(7);
        while let Some(f) = fields.next(r)? {
            if def.is_some() {
                return Err(DecodeError::MalformedTypeDefinition(
                    "wireType has more than one kind set",
                ));
            }
            def = Some(match f {
                0 => parse_array(r, utf8)?,
                1 => parse_slice(r, utf8)?,
                2 => parse_struct(r, utf8)?,
                3 => parse_map(r, utf8)?,
                4 => return Err(DecodeError::UnsupportedWireType("GobEncoder")),
                5 => return Err(DecodeError::UnsupportedWireType("BinaryMarshaler")),
                _ => return Err(DecodeError::UnsupportedWireType("TextMarshaler")),
            });
        }
        let def = def.ok_or(DecodeError::MalformedTypeDefinition(
            "wireType has no kind set",
        ))?;
        self.defs.insert(id, def);
        Ok(())
    }

    /// Resolves a type id into a type description, caching the result.
    fn resolve(&mut self, id: i32) -> Result<Arc<GobType>, DecodeError> {
        if let Some(t) = self.resolved.get(&id) {
            return Ok(Arc::clone(t));
        }
        let mut budget = self.limits.max_type_nodes;
        let mut stack = Vec::new();
        let ty = Arc::new(self.build(id, &mut budget, &mut stack)?);
        self.resolved.insert(id, Arc::clone(&ty));
        Ok(ty)
    }

    fn build(
        &self,
        id: i32,
        budget: &mut usize,
        stack: &mut Vec<i32>,
    ) -> Result<GobType, DecodeError> {
        *budget = budget.checked_sub(1).ok_or(DecodeError::TypeTooLarge {
            limit: self.limits.max_type_nodes,
        })?;
        match id {
            ids::BOOL => return Ok(GobType::Bool),
            ids::INT => return Ok(GobType::Int),
            ids::UINT => return Ok(GobType::Uint),
            ids::BYTES => return Ok(GobType::Bytes),
            ids::STRING => return Ok(GobType::String),
            _ => {}
        }
        let Some(def) = self.defs.get(&id) else {
            return Err(if (0..ids::FIRST_DEFINABLE).contains(&id) {
                DecodeError::UnsupportedTypeId(id)
            } else {
                DecodeError::UnknownTypeId(id)
            });
        };
        if stack.contains(&id) {
            return Err(DecodeError::RecursiveType(id));
        }
        if stack.len() >= self.limits.max_depth {
            return Err(DecodeError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        stack.push(id);
        let ty = match def {
            WireDef::Struct { name, fields } => {
                let mut out = Vec::with_capacity(fields.len());
                for (fname, fid) in fields {
                    out.push(FieldType {
                        name: Arc::clone(fname),
                        ty: self.build(*fid, budget, stack)?,
                    });
                }
                GobType::Struct(StructType {
                    name: name.clone(),
                    fields: out,
                })
            }
            WireDef::Slice(e) => GobType::slice(self.build(*e, budget, stack)?),
            WireDef::Array(e, len) => GobType::array(self.build(*e, budget, stack)?, *len),
            WireDef::Map(k, e) => {
                let k = self.build(*k, budget, stack)?;
                GobType::map(k, self.build(*e, budget, stack)?)
            }
        };
        stack.pop();
        Ok(ty)
    }
}

impl Iterator for Decoder<'_> {
    type Item = Result<Decoded, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_value().transpose()
    }
}

impl std::iter::FusedIterator for Decoder<'_> {}

/// Walks struct field numbers: each step reads a delta; a zero delta (or the
/// end of the message, which Go also accepts) ends the struct.
struct FieldCursor {
    last: i64,
    count: usize,
}

impl FieldCursor {
    fn new(count: usize) -> Self {
        FieldCursor { last: -1, count }
    }

    fn next(&mut self, r: &mut Reader<'_>) -> Result<Option<usize>, DecodeError> {
        if r.is_empty() {
            return Ok(None);
        }
        let delta = r.uint("field delta")?;
        if delta == 0 {
            return Ok(None);
        }
        let field = i64::try_from(delta)
            .ok()
            .and_then(|d| self.last.checked_add(d))
            .and_then(|f| usize::try_from(f).ok())
            .filter(|&f| f < self.count)
            .ok_or(DecodeError::FieldOutOfRange {
                field: (self.last as u64).wrapping_add(delta),
                count: self.count,
            })?;
        self.last = field as i64;
        Ok(Some(field))
    }
}

fn read_string(
    r: &mut Reader<'_>,
    utf8: Utf8Policy,
    what: &'static str,
) -> Result<String, DecodeError> {
    let b = r.bytes(what)?;
    match utf8 {
        Utf8Policy::Strict => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8),
        Utf8Policy::Lossy => Ok(String::from_utf8_lossy(b).into_owned()),
    }
}

/// A type id inside a definition (an `int`), checked to fit 32 bits.
fn read_type_ref(r: &mut Reader<'_>) -> Result<i32, DecodeError> {
    let raw = r.int("type reference")?;
    i32::try_from(raw).map_err(|_| DecodeError::TypeIdOutOfRange(raw))
}

/// `CommonType{Name string; Id int}`: returns the name (the id is ignored,
/// as the message header already says which id is being defined).
fn parse_common(r: &mut Reader<'_>, utf8: Utf8Policy) -> Result<String, DecodeError> {
    let mut name = String::new();
    let mut fields = FieldCursor::new(2);
    while let Some(f) = fields.next(r)? {
        match f {
            0 => name = read_string(r, utf8, "type name")?,
            _ => {
                r.int("common type id")?;
            }
        }
    }
    Ok(name)
}

/// `sliceType{CommonType; Elem int}`.
fn parse_slice(r: &mut Reader<'_>, utf8: Utf8Policy) -> Result<WireDef, DecodeError> {
    let mut elem = None;
    let mut fields = FieldCursor::new(2);
    while let Some(f) = fields.next(r)? {
        match f {
            0 => {
                parse_common(r, utf8)?;
            }
            _ => elem = Some(read_type_ref(r)?),
        }
    }
    let elem = elem.ok_or(DecodeError::MalformedTypeDefinition(
        "slice without element type",
    ))?;
    Ok(WireDef::Slice(elem))
}

/// `arrayType{CommonType; Elem int; Len int}`.
fn parse_array(r: &mut Reader<'_>, utf8: Utf8Policy) -> Result<WireDef, DecodeError> {
    let mut elem = None;
    let mut len = 0u64;
    let mut fields = FieldCursor::new(3);
    while let Some(f) = fields.next(r)? {
        match f {
            0 => {
                parse_common(r, utf8)?;
            }
            1 => elem = Some(read_type_ref(r)?),
            _ => {
                len = u64::try_from(r.int("array length")?)
                    .map_err(|_| DecodeError::MalformedTypeDefinition("negative array length"))?;
            }
        }
    }
    let elem = elem.ok_or(DecodeError::MalformedTypeDefinition(
        "array without element type",
    ))?;
    Ok(WireDef::Array(elem, len))
}

/// `mapType{CommonType; Key int; Elem int}`.
fn parse_map(r: &mut Reader<'_>, utf8: Utf8Policy) -> Result<WireDef, DecodeError> {
    let (mut key, mut elem) = (None, None);
    let mut fields = FieldCursor::new(3);
    while let Some(f) = fields.next(r)? {
        match f {
            0 => {
                parse_common(r, utf8)?;
            }
            1 => key = Some(read_type_ref(r)?),
            _ => elem = Some(read_type_ref(r)?),
        }
    }
    match (key, elem) {
        (Some(k), Some(e)) => Ok(WireDef::Map(k, e)),
        _ => Err(DecodeError::MalformedTypeDefinition(
            "map without key or element type",
        )),
    }
}

/// `structType{CommonType; Field []fieldType}`, `fieldType{Name string; Id int}`.
fn parse_struct(r: &mut Reader<'_>, utf8: Utf8Policy) -> Result<WireDef, DecodeError> {
    let mut name = String::new();
    let mut out = Vec::new();
    let mut fields = FieldCursor::new(2);
    while let Some(f) = fields.next(r)? {
        match f {
            0 => name = parse_common(r, utf8)?,
            _ => {
                let n = r.count("struct field count")?;
                out = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut fname = String::new();
                    let mut fid = None;
                    let mut ff = FieldCursor::new(2);
                    while let Some(g) = ff.next(r)? {
                        match g {
                            0 => fname = read_string(r, utf8, "field name")?,
                            _ => fid = Some(read_type_ref(r)?),
                        }
                    }
                    let fid = fid.ok_or(DecodeError::MalformedTypeDefinition(
                        "struct field without type",
                    ))?;
                    out.push((Arc::from(fname), fid));
                }
            }
        }
    }
    Ok(WireDef::Struct { name, fields: out })
}

/// State for decoding one value message.
struct ValueCtx<'l, 'b> {
    limits: &'l Limits,
    budget: &'b mut usize,
}

impl ValueCtx<'_, '_> {
    fn charge(&mut self, n: usize) -> Result<(), DecodeError> {
        *self.budget = self
            .budget
            .checked_sub(n)
            .ok_or(DecodeError::TooManyElements {
                limit: self.limits.max_elements,
            })?;
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn decode_value(
        &mut self,
        ty: &GobType,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        self.check_depth(depth)?;
        Ok(match ty {
            GobType::Bool => Value::Bool(r.uint("bool")? != 0),
            GobType::Int => Value::Int(r.int("int")?),
            GobType::Uint => Value::Uint(r.uint("uint")?),
            GobType::String => Value::String(read_string(r, self.limits.utf8, "string")?),
            GobType::Bytes => Value::Bytes(r.bytes("[]byte")?.to_vec()),
            GobType::Slice(elem) => Value::Slice(self.decode_elems(elem, r, depth)?),
            GobType::Array { elem, len } => {
                let before = r.clone();
                let found = r.uint("array length")?;
                if found != *len {
                    return Err(DecodeError::ArrayLengthMismatch {
                        expected: *len,
                        found,
                    });
                }
                *r = before;
                Value::Array(self.decode_elems(elem, r, depth)?)
            }
            GobType::Map(kt, vt) => {
                let n = r.count("map entry count")?;
                self.charge(n)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.decode_value(kt, r, depth + 1)?;
                    let v = self.decode_value(vt, r, depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            GobType::Struct(st) => Value::Struct(self.decode_struct(st, r, depth)?),
        })
    }

    fn decode_elems(
        &mut self,
        elem: &GobType,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Vec<Value>, DecodeError> {
        let n = r.count("element count")?;
        self.charge(n)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.decode_value(elem, r, depth + 1)?);
        }
        Ok(items)
    }

    fn decode_struct(
        &mut self,
        st: &StructType,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<StructValue, DecodeError> {
        self.check_depth(depth)?;
        let mut out = StructValue::new();
        let mut fields = FieldCursor::new(st.fields.len());
        while let Some(i) = fields.next(r)? {
            let Some(f) = st.fields.get(i) else {
                break; // unreachable: the cursor bounds i
            };
            self.charge(1)?;
            let v = self.decode_value(&f.ty, r, depth + 1)?;
            out.push(Arc::clone(&f.name), v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<Decoded>, DecodeError> {
        Decoder::new(bytes).collect()
    }

    #[test]
    fn empty_input_is_an_empty_stream() {
        assert_eq!(all(&[]).unwrap(), vec![]);
    }

    #[test]
    fn standalone_peer_name() {
        // Vector I: gob of PeerName 00:00:00:00:00:01.
        let d = all(&[0x03, 0x06, 0x00, 0x01]).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].type_id, 3);
        assert_eq!(*d[0].ty, GobType::Uint);
        assert_eq!(d[0].value, Value::Uint(1));
    }

    #[test]
    fn rejects_reserved_and_duplicate_definitions() {
        // Definition of type 63: id -63 = zigzag 125 = 0x7d.
        let def63 = [
            0x0a, 0x7d, 0x02, 0x01, 0x02, 0x7e, 0x00, 0x01, 0x06, 0x00, 0x00,
        ];
        assert_eq!(all(&def63), Err(DecodeError::ReservedTypeId(63)));
        // Definition of 65 = []uint, twice.
        let def65 = [
            0x0c, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0x06, 0x00, 0x00,
        ];
        assert_eq!(all(&def65).unwrap(), vec![]);
        let twice = [def65, def65].concat();
        assert_eq!(all(&twice), Err(DecodeError::DuplicateType(65)));
    }

    #[test]
    fn rejects_bad_messages() {
        assert_eq!(all(&[0x00]), Err(DecodeError::EmptyMessage));
        assert!(matches!(
            all(&[0x05, 0x06, 0x00]),
            Err(DecodeError::TruncatedMessage {
                declared: 5,
                available: 2
            })
        ));
        assert_eq!(all(&[0x01, 0x00]), Err(DecodeError::TypeIdOutOfRange(0)));
        // Value of undefined type 65.
        assert_eq!(
            all(&[0x03, 0xff, 0x82, 0x00]),
            Err(DecodeError::UnknownTypeId(65))
        );
        // Float (id 4) is outside the subset.
        assert_eq!(
            all(&[0x03, 0x08, 0x00, 0x00]),
            Err(DecodeError::UnsupportedTypeId(4))
        );
        // Non-zero singleton delta.
        assert_eq!(
            all(&[0x03, 0x06, 0x01, 0x00]),
            Err(DecodeError::BadSingletonDelta(1))
        );
        // Trailing byte after a value.
        assert_eq!(
            all(&[0x04, 0x06, 0x00, 0x01, 0x00]),
            Err(DecodeError::TrailingBytes(1))
        );
        // Huge declared length.
        assert!(matches!(
            all(&[0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn recursive_types_are_rejected() {
        // 65 = []65.
        let def = [
            0x0d, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0xff, 0x82, 0x00, 0x00,
        ];
        let val = [0x04, 0xff, 0x82, 0x00, 0x00];
        assert_eq!(
            all(&[&def[..], &val[..]].concat()),
            Err(DecodeError::RecursiveType(65))
        );
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        // []uint value claiming 2^60 elements.
        let def = [
            0x0c, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0x06, 0x00, 0x00,
        ];
        let val = [0x0c, 0xff, 0x82, 0x00, 0xf8, 0x10, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            all(&[&def[..], &val[..]].concat()),
            Err(DecodeError::CountTooLarge { .. })
        ));
    }

    #[test]
    fn element_limit_applies() {
        let def = [
            0x0c, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0x06, 0x00, 0x00,
        ];
        let val = [0x07, 0xff, 0x82, 0x00, 0x03, 0x01, 0x02, 0x03];
        let bytes = [&def[..], &val[..]].concat();
        let limits = Limits {
            max_elements: 2,
            ..Limits::default()
        };
        let r: Result<Vec<_>, _> = Decoder::with_limits(&bytes, limits).collect();
        assert_eq!(r, Err(DecodeError::TooManyElements { limit: 2 }));
        let d = all(&bytes).unwrap();
        assert_eq!(
            d[0].value,
            Value::Slice(vec![Value::Uint(1), Value::Uint(2), Value::Uint(3)])
        );
    }

    #[test]
    fn decoder_stops_after_error() {
        let mut dec = Decoder::new(&[0x00, 0x03, 0x06, 0x00, 0x01]);
        assert!(dec.next_value().is_err());
        assert_eq!(dec.next_value(), Ok(None));
    }

    #[test]
    fn utf8_policy() {
        let bytes = [0x04, 0x0c, 0x00, 0x01, 0xff];
        assert_eq!(all(&bytes), Err(DecodeError::InvalidUtf8));
        let limits = Limits {
            utf8: Utf8Policy::Lossy,
            ..Limits::default()
        };
        let mut dec = Decoder::with_limits(&bytes, limits);
        assert_eq!(dec.expect_string().unwrap(), "\u{fffd}");
    }

    #[test]
    fn expect_helpers_report_wrong_types() {
        let mut dec = Decoder::new(&[0x03, 0x06, 0x00, 0x01]);
        assert_eq!(
            dec.expect_string(),
            Err(DecodeError::WrongType {
                expected: "string",
                found: "uint"
            })
        );
        let mut dec = Decoder::new(&[]);
        assert_eq!(dec.expect_uint(), Err(DecodeError::EndOfStream));
        let mut dec = Decoder::new(&[0x03, 0x06, 0x00, 0x01]);
        assert_eq!(dec.expect_end(), Err(DecodeError::UnexpectedValue(3)));
    }
}
