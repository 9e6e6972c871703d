//! The dynamic value model and the [`ToGob`] / [`FromGob`] conversion traits.
//!
//! A [`Value`] carries no type id and no struct name: the [`GobType`] it is
//! encoded with (or was decoded from) supplies those. Struct values hold only
//! the fields that are present, by name, in wire order: a decoded struct lists
//! exactly the fields the sender did not omit, and [`StructValue::get`]
//! supplies Go's zero value for the others.

use std::sync::Arc;

use crate::error::DecodeError;
use crate::types::GobType;

/// A dynamically typed gob value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    Uint(u64),
    /// `string`.
    String(String),
    /// `[]byte`.
    Bytes(Vec<u8>),
    /// Slice elements.
    Slice(Vec<Value>),
    /// Array elements.
    Array(Vec<Value>),
    /// Map entries, in wire order (Go writes them in random order; nothing is
    /// sorted or deduplicated here).
    Map(Vec<(Value, Value)>),
    /// Struct fields that are present.
    Struct(StructValue),
}

impl Value {
    /// A short name for the kind of value, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::String(_) => "string",
            Value::Bytes(_) => "[]byte",
            Value::Slice(_) => "slice",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
        }
    }

    /// Whether Go considers this value zero for the purpose of omitting a
    /// struct field: `false`, `0`, `""`, and empty byte slices, slices, arrays
    /// and maps. Struct values are never omitted by Go, so they are never
    /// zero here.
    pub fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::String(s) => s.is_empty(),
            Value::Bytes(b) => b.is_empty(),
            Value::Slice(v) | Value::Array(v) => v.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Struct(_) => false,
        }
    }

    /// The unsigned integer, if this is one.
    pub fn as_uint(&self) -> Option<u64> {
        match self {
            Value::Uint(u) => Some(*u),
            _ => None,
        }
    }

    /// The signed integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The byte slice, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is a slice or an array.
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Slice(v) | Value::Array(v) => Some(v),
            _ => None,
        }
    }

    /// The entries in wire order, if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The struct, if this is one.
    pub fn as_struct(&self) -> Option<&StructValue> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// Go's zero value of a type (structs are empty, i.e. all fields zero).
    pub fn zero(ty: &GobType) -> Value {
        match ty {
            GobType::Bool => Value::Bool(false),
            GobType::Int => Value::Int(0),
            GobType::Uint => Value::Uint(0),
            GobType::String => Value::String(String::new()),
            GobType::Bytes => Value::Bytes(Vec::new()),
            GobType::Slice(_) => Value::Slice(Vec::new()),
            GobType::Array { .. } => Value::Array(Vec::new()),
            GobType::Map(..) => Value::Map(Vec::new()),
            GobType::Struct(_) => Value::Struct(StructValue::new()),
        }
    }

    fn wrong(&self, expected: &'static str) -> DecodeError {
        DecodeError::WrongType {
            expected,
            found: self.kind_name(),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Uint(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<StructValue> for Value {
    fn from(v: StructValue) -> Self {
        Value::Struct(v)
    }
}

/// The present fields of a struct value, by name, in order.
///
/// Field names are `Arc<str>` so that decoding many values of one struct type
/// shares the names of the type definition instead of copying them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StructValue {
    fields: Vec<(Arc<str>, Value)>,
}

impl StructValue {
    /// An empty struct value (every field zero).
    pub fn new() -> Self {
        StructValue::default()
    }

    /// Adds a field, builder style.
    pub fn with(mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) -> Self {
        self.push(name, value);
        self
    }

    /// Adds a field.
    pub fn push(&mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) {
        self.fields.push((name.into(), value.into()));
    }

    /// The value of the field called `name`, if present.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// All present fields in order.
    pub fn fields(&self) -> &[(Arc<str>, Value)] {
        &self.fields
    }

    /// Number of present fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when no field is present.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Converts the field called `name`, or returns `T::default()` (Go's zero
    /// value) when the sender omitted it. This is how Go matches fields by
    /// name: unknown wire fields are ignored, missing ones stay zero.
    pub fn get<T: FromGob + Default>(&self, name: &str) -> Result<T, DecodeError> {
        match self.field(name) {
            None => Ok(T::default()),
            Some(v) => T::from_gob(v).map_err(|e| DecodeError::InField {
                field: name.to_owned(),
                source: Box::new(e),
            }),
        }
    }
}

impl<N: Into<Arc<str>>, V: Into<Value>> FromIterator<(N, V)> for StructValue {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        StructValue {
            fields: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// A Rust type with a fixed gob shape that can be turned into a [`Value`].
///
/// Implement it by hand for mesh structs:
///
/// ```
/// use weft_gob::{GobType, StructValue, ToGob, Value};
/// struct Conn { name: Vec<u8>, addr: String, outbound: bool, established: bool }
/// impl ToGob for Conn {
///     fn gob_type() -> GobType {
///         GobType::structure("connectionSummary", [
///             ("NameByte", GobType::Bytes), ("RemoteTCPAddr", GobType::String),
///             ("Outbound", GobType::Bool), ("Established", GobType::Bool),
///         ])
///     }
///     fn to_gob(&self) -> Value {
///         StructValue::new()
///             .with("NameByte", self.name.clone())
///             .with("RemoteTCPAddr", self.addr.as_str())
///             .with("Outbound", self.outbound)
///             .with("Established", self.established)
///             .into()
///     }
/// }
/// ```
pub trait ToGob {
    /// The gob type every value of `Self` is encoded with.
    fn gob_type() -> GobType
    where
        Self: Sized;
    /// The value.
    fn to_gob(&self) -> Value;
}

/// A Rust type that can be read back from a decoded [`Value`].
pub trait FromGob: Sized {
    /// Converts, failing with [`DecodeError::WrongType`] (or
    /// [`DecodeError::IntegerOutOfRange`]) when the value does not fit.
    fn from_gob(value: &Value) -> Result<Self, DecodeError>;
}

impl ToGob for bool {
    fn gob_type() -> GobType {
        GobType::Bool
    }
    fn to_gob(&self) -> Value {
        Value::Bool(*self)
    }
}
impl FromGob for bool {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        value.as_bool().ok_or_else(|| value.wrong("bool"))
    }
}

impl ToGob for String {
    fn gob_type() -> GobType {
        GobType::String
    }
    fn to_gob(&self) -> Value {
        Value::String(self.clone())
    }
}
impl FromGob for String {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| value.wrong("string"))
    }
}

/// `Vec<u8>` is gob's `[]byte`, not a slice of integers.
impl ToGob for Vec<u8> {
    fn gob_type() -> GobType {
        GobType::Bytes
    }
    fn to_gob(&self) -> Value {
        Value::Bytes(self.clone())
    }
}
impl FromGob for Vec<u8> {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        value
            .as_bytes()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| value.wrong("[]byte"))
    }
}

/// Any other `Vec<T>` is a gob slice.
impl<T: ToGob> ToGob for Vec<T> {
    fn gob_type() -> GobType {
        GobType::slice(T::gob_type())
    }
    fn to_gob(&self) -> Value {
        Value::Slice(self.iter().map(ToGob::to_gob).collect())
    }
}
impl<T: FromGob> FromGob for Vec<T> {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        value
            .as_slice()
            .ok_or_else(|| value.wrong("slice"))?
            .iter()
            .map(T::from_gob)
            .collect()
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl ToGob for $t {
            fn gob_type() -> GobType {
                GobType::Uint
            }
            fn to_gob(&self) -> Value {
                Value::Uint(u64::from(*self))
            }
        }
        impl FromGob for $t {
            fn from_gob(value: &Value) -> Result<Self, DecodeError> {
                let u = value.as_uint().ok_or_else(|| value.wrong("uint"))?;
                <$t>::try_from(u).map_err(|_| DecodeError::IntegerOutOfRange {
                    value: i128::from(u),
                    target: stringify!($t),
                })
            }
        }
    )*};
}
unsigned!(u16, u32, u64);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl ToGob for $t {
            fn gob_type() -> GobType {
                GobType::Int
            }
            fn to_gob(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
        impl FromGob for $t {
            fn from_gob(value: &Value) -> Result<Self, DecodeError> {
                let i = value.as_int().ok_or_else(|| value.wrong("int"))?;
                <$t>::try_from(i).map_err(|_| DecodeError::IntegerOutOfRange {
                    value: i128::from(i),
                    target: stringify!($t),
                })
            }
        }
    )*};
}
signed!(i16, i32, i64);

impl FromGob for Value {
    fn from_gob(value: &Value) -> Result<Self, DecodeError> {
        Ok(value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_values_follow_go() {
        assert!(Value::Bool(false).is_zero());
        assert!(!Value::Bool(true).is_zero());
        assert!(Value::Uint(0).is_zero());
        assert!(Value::Int(0).is_zero());
        assert!(Value::String(String::new()).is_zero());
        assert!(Value::Bytes(vec![]).is_zero());
        assert!(Value::Slice(vec![]).is_zero());
        assert!(Value::Map(vec![]).is_zero());
        assert!(!Value::Struct(StructValue::new()).is_zero());
        assert!(!Value::Bytes(vec![0]).is_zero());
    }

    #[test]
    fn struct_get_defaults_missing_fields() {
        let s = StructValue::new()
            .with("UID", 42u64)
            .with("NickName", "host1");
        assert_eq!(s.get::<u64>("UID").unwrap(), 42);
        assert_eq!(s.get::<String>("NickName").unwrap(), "host1");
        assert_eq!(s.get::<u64>("Version").unwrap(), 0);
        assert!(!s.get::<bool>("HasShortID").unwrap());
        assert_eq!(s.get::<Vec<u8>>("NameByte").unwrap(), Vec::<u8>::new());
        let err = s.get::<bool>("UID").unwrap_err();
        assert!(matches!(err, DecodeError::InField { ref field, .. } if field == "UID"));
    }

    #[test]
    fn integer_range_checks() {
        assert_eq!(u16::from_gob(&Value::Uint(4095)).unwrap(), 4095);
        assert!(matches!(
            u16::from_gob(&Value::Uint(70000)),
            Err(DecodeError::IntegerOutOfRange { target: "u16", .. })
        ));
        assert!(matches!(
            i32::from_gob(&Value::Int(i64::MIN)),
            Err(DecodeError::IntegerOutOfRange { .. })
        ));
        assert!(matches!(
            u64::from_gob(&Value::Int(1)),
            Err(DecodeError::WrongType {
                expected: "uint",
                found: "int"
            })
        ));
    }

    #[test]
    fn vec_of_bytes_is_bytes_and_vec_of_t_is_slice() {
        assert_eq!(<Vec<u8>>::gob_type(), GobType::Bytes);
        assert_eq!(<Vec<u64>>::gob_type(), GobType::slice(GobType::Uint));
        assert_eq!(<Vec<Vec<u8>>>::gob_type(), GobType::slice(GobType::Bytes));
        let v = vec![1u64, 2];
        assert_eq!(<Vec<u64>>::from_gob(&v.to_gob()).unwrap(), v);
    }
}
