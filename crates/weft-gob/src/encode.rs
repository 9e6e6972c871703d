//! The stream encoder.
//!
//! One [`Encoder`] is one gob stream. Before the first value of a composite
//! type it emits that type's definitions, each in its own message, and it
//! never defines a type twice. It reproduces Go's choices so that its bytes
//! match Go's for the same type order:
//!
//! * **Id assignment** (when a type is first used): a struct takes its id
//!   before its field types; a slice, array or map takes its id after its
//!   element (and key) types. So `[]connectionSummary`, first used on its own,
//!   gives the struct id N and the slice N+1.
//! * **Definition order**: a type's definition is sent before the definitions
//!   of the types it refers to (so Go sends "slice of 67" as 68 before 67).
//! * **Zero fields** of a struct are omitted (`false`, `0`, `""`, empty
//!   slices, maps and byte slices); nested struct fields are always sent.
//! * A top-level non-struct value starts with the singleton delta byte `00`;
//!   values inside slices, arrays and maps are always written in full.

use std::collections::{HashMap, HashSet};

use crate::error::EncodeError;
use crate::types::{ids, GobType, StructType};
use crate::value::{StructValue, ToGob, Value};
use crate::wire::{put_bytes, put_int, put_uint};

/// Field numbers of gob's own `wireType` and friends (see the crate docs).
mod wire_fields {
    pub const WIRE_ARRAY: u64 = 1; // delta from -1 to field 0
    pub const WIRE_SLICE: u64 = 2; // field 1
    pub const WIRE_STRUCT: u64 = 3; // field 2
    pub const WIRE_MAP: u64 = 4; // field 3
}

/// Encodes values into one gob stream.
///
/// ```
/// use weft_gob::{Encoder, GobType, Value};
/// let mut enc = Encoder::new();
/// enc.encode(
///     &GobType::string_map(),
///     &Value::Map(vec![("Name".into(), "A".into())]),
/// )
/// .unwrap();
/// // Appendix A, vector B.
/// assert_eq!(
///     enc.into_bytes(),
///     b"\x0e\xff\x81\x04\x01\x02\xff\x82\x00\x01\x0c\x01\x0c\x00\x00\
///       \x0b\xff\x82\x00\x01\x04Name\x01A"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Encoder {
    out: Vec<u8>,
    next_id: i32,
    ids: HashMap<GobType, i32>,
    sent: HashSet<i32>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// A fresh stream whose first user type gets id 65, like a fresh Go process.
    pub fn new() -> Self {
        Encoder::with_first_type_id(ids::FIRST_USER)
    }

    /// A fresh stream whose first user type gets `first` (clamped to at
    /// least 64). Go's ids are per process, so a long-running Go peer may
    /// number its types from anywhere; this reproduces such a stream.
    pub fn with_first_type_id(first: i32) -> Self {
        Encoder {
            out: Vec::new(),
            next_id: first.max(ids::FIRST_DEFINABLE),
            ids: HashMap::new(),
            sent: HashSet::new(),
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Consumes the encoder, returning the stream.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Takes the bytes written so far, keeping the stream's type state: the
    /// next bytes continue the same stream (types already sent are not sent
    /// again).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The id this stream gave to `ty`, if it has used it (basic types
    /// always have their predefined id).
    pub fn type_id(&self, ty: &GobType) -> Option<i32> {
        ty.predefined_id().or_else(|| self.ids.get(ty).copied())
    }

    /// Encodes one top-level value of type `ty`, preceded by any definitions
    /// it needs. On error nothing is written and no id is assigned.
    pub fn encode(&mut self, ty: &GobType, value: &Value) -> Result<(), EncodeError> {
        validate_type(ty)?;
        let mut body = Vec::new();
        if let (GobType::Struct(st), Value::Struct(sv)) = (ty, value) {
            encode_struct(st, sv, &mut body)?;
        } else {
            body.push(0); // singleton delta
            encode_value(ty, value, &mut body)?;
        }
        let id = self.assign_ids(ty)?;
        self.send_definitions(ty)?;
        self.write_message(id, &body);
        Ok(())
    }

    /// Encodes a [`ToGob`] value with its own type.
    pub fn encode_item<T: ToGob>(&mut self, item: &T) -> Result<(), EncodeError> {
        self.encode(&T::gob_type(), &item.to_gob())
    }

    /// Encodes a top-level `uint` (e.g. a `PeerName`).
    pub fn encode_uint(&mut self, v: u64) {
        let mut body = vec![0];
        put_uint(&mut body, v);
        self.write_message(ids::UINT, &body);
    }

    /// Encodes a top-level `int`.
    pub fn encode_int(&mut self, v: i64) {
        let mut body = vec![0];
        put_int(&mut body, v);
        self.write_message(ids::INT, &body);
    }

    /// Encodes a top-level `bool`.
    pub fn encode_bool(&mut self, v: bool) {
        self.write_message(ids::BOOL, &[0, u8::from(v)]);
    }

    /// Encodes a top-level `string`.
    pub fn encode_string(&mut self, v: &str) {
        let mut body = vec![0];
        put_bytes(&mut body, v.as_bytes());
        self.write_message(ids::STRING, &body);
    }

    /// Encodes a top-level `[]byte`.
    pub fn encode_bytes(&mut self, v: &[u8]) {
        let mut body = vec![0];
        put_bytes(&mut body, v);
        self.write_message(ids::BYTES, &body);
    }

    fn write_message(&mut self, id: i32, body: &[u8]) {
        let mut head = Vec::with_capacity(5);
        put_int(&mut head, i64::from(id));
        put_uint(&mut self.out, (head.len() + body.len()) as u64);
        self.out.extend_from_slice(&head);
        self.out.extend_from_slice(body);
    }

    fn alloc_id(&mut self, ty: &GobType) -> Result<i32, EncodeError> {
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or(EncodeError::TypeIdsExhausted)?;
        self.ids.insert(ty.clone(), id);
        Ok(id)
    }

    /// Gives ids to `ty` and everything inside it, in Go's order.
    fn assign_ids(&mut self, ty: &GobType) -> Result<i32, EncodeError> {
        if let Some(id) = self.type_id(ty) {
            return Ok(id);
        }
        match ty {
            GobType::Struct(st) => {
                let id = self.alloc_id(ty)?;
                for f in &st.fields {
                    self.assign_ids(&f.ty)?;
                }
                Ok(id)
            }
            GobType::Slice(elem) | GobType::Array { elem, .. } => {
                self.assign_ids(elem)?;
                self.alloc_id(ty)
            }
            GobType::Map(key, elem) => {
                self.assign_ids(key)?;
                self.assign_ids(elem)?;
                self.alloc_id(ty)
            }
            // Basic types have predefined ids (handled above).
            _ => Ok(0),
        }
    }

    fn id_of(&self, ty: &GobType) -> Result<i64, EncodeError> {
        self.type_id(ty)
            .map(i64::from)
            .ok_or_else(|| EncodeError::InvalidType(format!("no id assigned to {ty}")))
    }

    /// Sends the definition of `ty` (if not yet sent), then those of the
    /// types it refers to.
    fn send_definitions(&mut self, ty: &GobType) -> Result<(), EncodeError> {
        if ty.predefined_id().is_some() {
            return Ok(());
        }
        let id = self.id_of(ty)?;
        let id32 = i32::try_from(id).map_err(|_| EncodeError::TypeIdsExhausted)?;
        if !self.sent.insert(id32) {
            return Ok(());
        }
        let mut body = Vec::new();
        match ty {
            GobType::Struct(st) => {
                put_uint(&mut body, wire_fields::WIRE_STRUCT);
                put_uint(&mut body, 1); // structType.CommonType
                put_common(&mut body, &st.name, id);
                if !st.fields.is_empty() {
                    put_uint(&mut body, 1); // structType.Field
                    put_uint(&mut body, st.fields.len() as u64);
                    for f in &st.fields {
                        put_named_id(&mut body, &f.name, self.id_of(&f.ty)?);
                    }
                }
                body.push(0); // end structType
            }
            GobType::Slice(elem) => {
                put_uint(&mut body, wire_fields::WIRE_SLICE);
                put_uint(&mut body, 1); // sliceType.CommonType
                put_common(&mut body, "", id);
                put_uint(&mut body, 1); // sliceType.Elem
                put_int(&mut body, self.id_of(elem)?);
                body.push(0);
            }
            GobType::Array { elem, len } => {
                put_uint(&mut body, wire_fields::WIRE_ARRAY);
                put_uint(&mut body, 1); // arrayType.CommonType
                put_common(&mut body, "", id);
                put_uint(&mut body, 1); // arrayType.Elem
                put_int(&mut body, self.id_of(elem)?);
                if *len != 0 {
                    put_uint(&mut body, 1); // arrayType.Len
                    put_int(&mut body, i64::try_from(*len).unwrap_or(i64::MAX));
                }
                body.push(0);
            }
            GobType::Map(key, elem) => {
                put_uint(&mut body, wire_fields::WIRE_MAP);
                put_uint(&mut body, 1); // mapType.CommonType
                put_common(&mut body, "", id);
                put_uint(&mut body, 1); // mapType.Key
                put_int(&mut body, self.id_of(key)?);
                put_uint(&mut body, 1); // mapType.Elem
                put_int(&mut body, self.id_of(elem)?);
                body.push(0);
            }
            _ => return Ok(()),
        }
        body.push(0); // end wireType
        self.write_message(-id32, &body);
        match ty {
            GobType::Struct(st) => {
                for f in &st.fields {
                    self.send_definitions(&f.ty)?;
                }
            }
            GobType::Slice(elem) | GobType::Array { elem, .. } => self.send_definitions(elem)?,
            GobType::Map(key, elem) => {
                self.send_definitions(key)?;
                self.send_definitions(elem)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `CommonType{Name, Id}` with zero fields omitted, and its terminator.
fn put_common(out: &mut Vec<u8>, name: &str, id: i64) {
    put_named_id(out, name, id);
}

/// A struct `{Name string; Id int}` (CommonType and fieldType share this
/// shape), zero fields omitted.
fn put_named_id(out: &mut Vec<u8>, name: &str, id: i64) {
    let mut delta = 1;
    if !name.is_empty() {
        put_uint(out, 1);
        put_bytes(out, name.as_bytes());
    } else {
        delta = 2;
    }
    if id != 0 {
        put_uint(out, delta);
        put_int(out, id);
    }
    out.push(0);
}

/// Rejects struct types with empty or duplicate field names (Go's decoder
/// matches fields by name, so either would be ambiguous).
fn validate_type(ty: &GobType) -> Result<(), EncodeError> {
    match ty {
        GobType::Struct(st) => {
            for (i, f) in st.fields.iter().enumerate() {
                if f.name.is_empty() {
                    return Err(EncodeError::InvalidType(format!(
                        "struct {} has a field with an empty name",
                        st.name
                    )));
                }
                if st.fields.iter().take(i).any(|g| g.name == f.name) {
                    return Err(EncodeError::InvalidType(format!(
                        "struct {} has two fields named {}",
                        st.name, f.name
                    )));
                }
                validate_type(&f.ty)?;
            }
            Ok(())
        }
        GobType::Slice(e) | GobType::Array { elem: e, .. } => validate_type(e),
        GobType::Map(k, e) => {
            validate_type(k)?;
            validate_type(e)
        }
        _ => Ok(()),
    }
}

fn mismatch(ty: &GobType, value: &Value) -> EncodeError {
    EncodeError::TypeMismatch {
        expected: ty.to_string(),
        found: value.kind_name(),
    }
}

/// Whether `value` has the right kind for `ty` (shallow).
fn same_kind(ty: &GobType, value: &Value) -> bool {
    matches!(
        (ty, value),
        (GobType::Bool, Value::Bool(_))
            | (GobType::Int, Value::Int(_))
            | (GobType::Uint, Value::Uint(_))
            | (GobType::String, Value::String(_))
            | (GobType::Bytes, Value::Bytes(_))
            | (GobType::Slice(_), Value::Slice(_))
            | (GobType::Array { .. }, Value::Array(_) | Value::Slice(_))
            | (GobType::Map(..), Value::Map(_))
            | (GobType::Struct(_), Value::Struct(_))
    )
}

/// Writes a value in full (no omission at this level).
fn encode_value(ty: &GobType, value: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match (ty, value) {
        (GobType::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
        (GobType::Int, Value::Int(i)) => put_int(out, *i),
        (GobType::Uint, Value::Uint(u)) => put_uint(out, *u),
        (GobType::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
        (GobType::Bytes, Value::Bytes(b)) => put_bytes(out, b),
        (GobType::Slice(elem), Value::Slice(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                encode_value(elem, item, out)?;
            }
        }
        (GobType::Array { elem, len }, Value::Array(items) | Value::Slice(items)) => {
            if items.len() as u64 != *len {
                return Err(EncodeError::ArrayLength {
                    expected: *len,
                    found: items.len(),
                });
            }
            put_uint(out, items.len() as u64);
            for item in items {
                encode_value(elem, item, out)?;
            }
        }
        (GobType::Map(kt, vt), Value::Map(entries)) => {
            put_uint(out, entries.len() as u64);
            for (k, v) in entries {
                encode_value(kt, k, out)?;
                encode_value(vt, v, out)?;
            }
        }
        (GobType::Struct(st), Value::Struct(sv)) => encode_struct(st, sv, out)?,
        _ => return Err(mismatch(ty, value)),
    }
    Ok(())
}

/// Writes a struct: `(delta, value)` pairs for present non-zero fields in
/// type order, then `00`.
fn encode_struct(st: &StructType, sv: &StructValue, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (i, (name, _)) in sv.fields().iter().enumerate() {
        if st.field(name).is_none() {
            return Err(EncodeError::UnknownField {
                strukt: st.name.clone(),
                field: name.to_string(),
            });
        }
        if sv.fields().iter().take(i).any(|(n, _)| n == name) {
            return Err(EncodeError::DuplicateField(name.to_string()));
        }
    }
    let mut last: i64 = -1;
    for (i, f) in st.fields.iter().enumerate() {
        let Some(v) = sv.field(&f.name) else { continue };
        if !same_kind(&f.ty, v) {
            return Err(mismatch(&f.ty, v));
        }
        if v.is_zero() {
            continue;
        }
        let i = i as i64;
        put_uint(out, (i - last) as u64);
        encode_value(&f.ty, v, out)?;
        last = i;
    }
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_basics() {
        let mut e = Encoder::new();
        e.encode_string("topology");
        e.encode_uint(0x1234_5678_9abc);
        e.encode_bytes(&[0xaa]);
        let mut want = vec![0x0b, 0x0c, 0x00, 0x08];
        want.extend_from_slice(b"topology");
        want.extend_from_slice(&[0x09, 0x06, 0x00, 0xfa, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]);
        want.extend_from_slice(&[0x04, 0x0a, 0x00, 0x01, 0xaa]);
        assert_eq!(e.bytes(), &want[..]);
    }

    #[test]
    fn top_level_zero_values_are_written() {
        let mut e = Encoder::new();
        e.encode_uint(0);
        e.encode_bool(false);
        e.encode_int(-1);
        e.encode(&GobType::Uint, &Value::Uint(1)).unwrap();
        assert_eq!(
            e.bytes(),
            &[3, 6, 0, 0, 3, 2, 0, 0, 3, 4, 0, 1, 3, 6, 0, 1][..]
        );
    }

    #[test]
    fn empty_slice_of_struct() {
        let conn = GobType::structure("c", [("A", GobType::Bool)]);
        let mut e = Encoder::new();
        e.encode(&GobType::slice(conn.clone()), &Value::Slice(vec![]))
            .unwrap();
        // Struct gets 65, slice 66; slice defined first.
        assert_eq!(e.type_id(&conn), Some(65));
        assert_eq!(e.type_id(&GobType::slice(conn)), Some(66));
        let b = e.take_bytes();
        assert_eq!(&b[b.len() - 5..], &[0x04, 0xff, 0x84, 0x00, 0x00]);
        // Second use: no definitions.
        let conn = GobType::structure("c", [("A", GobType::Bool)]);
        e.encode(&GobType::slice(conn), &Value::Slice(vec![]))
            .unwrap();
        assert_eq!(e.bytes(), &[0x04, 0xff, 0x84, 0x00, 0x00][..]);
    }

    #[test]
    fn struct_zero_fields_are_omitted_and_nested_structs_sent() {
        let inner = GobType::structure("in", [("X", GobType::Uint)]);
        let outer = GobType::structure(
            "out",
            [("A", GobType::Uint), ("B", inner), ("C", GobType::String)],
        );
        let v = StructValue::new()
            .with("A", 0u64)
            .with("B", StructValue::new())
            .with("C", "x");
        let mut body = Vec::new();
        encode_struct(outer.as_struct().unwrap(), &v, &mut body).unwrap();
        // B is field 1 (delta 2), empty struct 00; C field 2 (delta 1).
        assert_eq!(body, [0x02, 0x00, 0x01, 0x01, b'x', 0x00]);
    }

    #[test]
    fn errors_leave_stream_untouched() {
        let t = GobType::structure("t", [("A", GobType::Uint)]);
        let mut e = Encoder::new();
        let bad = Value::Struct(StructValue::new().with("A", "str"));
        assert!(matches!(
            e.encode(&t, &bad),
            Err(EncodeError::TypeMismatch { .. })
        ));
        let unknown = Value::Struct(StructValue::new().with("Z", 1u64));
        assert!(matches!(
            e.encode(&t, &unknown),
            Err(EncodeError::UnknownField { .. })
        ));
        let dup = Value::Struct(StructValue::new().with("A", 1u64).with("A", 2u64));
        assert!(matches!(
            e.encode(&t, &dup),
            Err(EncodeError::DuplicateField(_))
        ));
        assert!(matches!(
            e.encode(&GobType::Uint, &Value::Int(1)),
            Err(EncodeError::TypeMismatch { .. })
        ));
        let twice = GobType::structure("t", [("A", GobType::Uint), ("A", GobType::Int)]);
        assert!(matches!(
            e.encode(&twice, &Value::Struct(StructValue::new())),
            Err(EncodeError::InvalidType(_))
        ));
        assert!(matches!(
            e.encode(
                &GobType::array(GobType::Uint, 2),
                &Value::Array(vec![Value::Uint(1)])
            ),
            Err(EncodeError::ArrayLength { .. })
        ));
        assert!(e.bytes().is_empty());
        assert_eq!(e.type_id(&t), None);
    }

    #[test]
    fn map_ids_follow_key_and_elem() {
        let k = GobType::structure("k", [("A", GobType::Uint)]);
        let v = GobType::slice(GobType::Uint);
        let m = GobType::map(k.clone(), v.clone());
        let mut e = Encoder::new();
        e.encode(&m, &Value::Map(vec![])).unwrap();
        assert_eq!(e.type_id(&k), Some(65));
        assert_eq!(e.type_id(&v), Some(66));
        assert_eq!(e.type_id(&m), Some(67));
    }
}
