//! The type description model.
//!
//! A [`GobType`] describes the shape of a value structurally: a tree whose
//! leaves are gob's basic types and whose inner nodes are slices, arrays,
//! maps and named structs. Type *ids* are not part of the model: they are a
//! property of one stream, assigned by the [`Encoder`](crate::Encoder) and
//! read back by the [`Decoder`](crate::Decoder).

use std::fmt;
use std::sync::Arc;

/// Predefined gob type ids (the subset with a meaning for this crate).
pub mod ids {
    /// `bool`.
    pub const BOOL: i32 = 1;
    /// `int` (any signed integer).
    pub const INT: i32 = 2;
    /// `uint` (any unsigned integer, including Weave's `PeerName`).
    pub const UINT: i32 = 3;
    /// `float` (not supported).
    pub const FLOAT: i32 = 4;
    /// `[]byte`.
    pub const BYTES: i32 = 5;
    /// `string`.
    pub const STRING: i32 = 6;
    /// `complex` (not supported).
    pub const COMPLEX: i32 = 7;
    /// `interface` (not supported).
    pub const INTERFACE: i32 = 8;
    /// Definitions with an id below this are rejected.
    pub const FIRST_DEFINABLE: i32 = 64;
    /// The first id a fresh Go process gives to a user type.
    pub const FIRST_USER: i32 = 65;
}

/// The shape of a gob value.
///
/// Named Go types whose underlying type is basic travel as that basic type
/// (`PeerName` is [`GobType::Uint`]), and `[]byte` is its own basic type, not
/// a slice of `uint`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GobType {
    /// `bool` (id 1).
    Bool,
    /// Signed integer (id 2).
    Int,
    /// Unsigned integer (id 3).
    Uint,
    /// `string` (id 6).
    String,
    /// `[]byte` (id 5).
    Bytes,
    /// `[]elem`.
    Slice(Box<GobType>),
    /// `[len]elem`.
    Array {
        /// Element type.
        elem: Box<GobType>,
        /// Fixed length.
        len: u64,
    },
    /// `map[key]elem`.
    Map(Box<GobType>, Box<GobType>),
    /// A named struct.
    Struct(StructType),
}

/// A struct type: a name (sent on the wire but not checked by Go) and an
/// ordered list of fields (matched by name on the receiving side).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructType {
    /// Go type name, e.g. `peerSummary`.
    pub name: String,
    /// Fields in declaration order; the order fixes the field numbers.
    pub fields: Vec<FieldType>,
}

/// One struct field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldType {
    /// Field name, e.g. `NameByte`. Shared with decoded values.
    pub name: Arc<str>,
    /// Field type.
    pub ty: GobType,
}

impl GobType {
    /// `[]elem`.
    pub fn slice(elem: GobType) -> GobType {
        GobType::Slice(Box::new(elem))
    }

    /// `[len]elem`.
    pub fn array(elem: GobType, len: u64) -> GobType {
        GobType::Array {
            elem: Box::new(elem),
            len,
        }
    }

    /// `map[key]elem`.
    pub fn map(key: GobType, elem: GobType) -> GobType {
        GobType::Map(Box::new(key), Box::new(elem))
    }

    /// A struct type from a name and `(field name, field type)` pairs in
    /// declaration order.
    ///
    /// ```
    /// use weft_gob::GobType;
    /// let conn = GobType::structure(
    ///     "connectionSummary",
    ///     [
    ///         ("NameByte", GobType::Bytes),
    ///         ("RemoteTCPAddr", GobType::String),
    ///         ("Outbound", GobType::Bool),
    ///         ("Established", GobType::Bool),
    ///     ],
    /// );
    /// assert_eq!(conn.to_string(), "connectionSummary");
    /// ```
    pub fn structure<N, F, I>(name: N, fields: I) -> GobType
    where
        N: Into<String>,
        F: Into<Arc<str>>,
        I: IntoIterator<Item = (F, GobType)>,
    {
        GobType::Struct(StructType {
            name: name.into(),
            fields: fields
                .into_iter()
                .map(|(name, ty)| FieldType {
                    name: name.into(),
                    ty,
                })
                .collect(),
        })
    }

    /// `map[string]string`, the type of Weave's handshake features.
    pub fn string_map() -> GobType {
        GobType::map(GobType::String, GobType::String)
    }

    /// The predefined id of a basic type, `None` for composite types.
    pub fn predefined_id(&self) -> Option<i32> {
        match self {
            GobType::Bool => Some(ids::BOOL),
            GobType::Int => Some(ids::INT),
            GobType::Uint => Some(ids::UINT),
            GobType::String => Some(ids::STRING),
            GobType::Bytes => Some(ids::BYTES),
            _ => None,
        }
    }

    /// The struct description, if this is a struct.
    pub fn as_struct(&self) -> Option<&StructType> {
        match self {
            GobType::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// A short name for the kind of type, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            GobType::Bool => "bool",
            GobType::Int => "int",
            GobType::Uint => "uint",
            GobType::String => "string",
            GobType::Bytes => "[]byte",
            GobType::Slice(_) => "slice",
            GobType::Array { .. } => "array",
            GobType::Map(..) => "map",
            GobType::Struct(_) => "struct",
        }
    }
}

impl StructType {
    /// The field called `name` with its index.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldType)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| &*f.name == name)
    }
}

/// Go-like notation: `map[string]string`, `[]connectionSummary`, `[4]uint`;
/// a struct prints as its name (or `struct{...}` when unnamed).
impl fmt::Display for GobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GobType::Slice(e) => write!(f, "[]{e}"),
            GobType::Array { elem, len } => write!(f, "[{len}]{elem}"),
            GobType::Map(k, v) => write!(f, "map[{k}]{v}"),
            GobType::Struct(s) if s.name.is_empty() => f.write_str("struct{...}"),
            GobType::Struct(s) => f.write_str(&s.name),
            basic => f.write_str(basic.kind_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_go_like() {
        assert_eq!(GobType::string_map().to_string(), "map[string]string");
        let s = GobType::structure("peerSummary", [("UID", GobType::Uint)]);
        assert_eq!(GobType::slice(s).to_string(), "[]peerSummary");
        assert_eq!(GobType::array(GobType::Uint, 4).to_string(), "[4]uint");
        assert_eq!(GobType::slice(GobType::Bytes).to_string(), "[][]byte");
    }

    #[test]
    fn predefined_ids() {
        assert_eq!(GobType::Bool.predefined_id(), Some(1));
        assert_eq!(GobType::Int.predefined_id(), Some(2));
        assert_eq!(GobType::Uint.predefined_id(), Some(3));
        assert_eq!(GobType::Bytes.predefined_id(), Some(5));
        assert_eq!(GobType::String.predefined_id(), Some(6));
        assert_eq!(GobType::string_map().predefined_id(), None);
    }

    #[test]
    fn struct_field_lookup() {
        let s = GobType::structure("t", [("A", GobType::Bool), ("B", GobType::Int)]);
        let st = s.as_struct().unwrap();
        assert_eq!(
            st.field("B").map(|(i, f)| (i, f.ty.clone())),
            Some((1, GobType::Int))
        );
        assert!(st.field("C").is_none());
    }
}
