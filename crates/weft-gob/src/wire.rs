//! Gob's primitive encodings: unsigned and signed integers, and a bounds-checked
//! reader over a byte slice.
//!
//! * An unsigned integer below 128 is one byte. Larger values are written as
//!   one byte holding the negated byte count (`0xff` = 1 byte follows, down to
//!   `0xf8` = 8 bytes), then the value big-endian in as few bytes as possible.
//! * A signed integer is zig-zag folded into an unsigned one: `i << 1` when
//!   `i >= 0`, `(!i << 1) | 1` otherwise, then written as above.
//! * Booleans are the unsigned integers 0 and 1; strings and byte slices are an
//!   unsigned length followed by the raw bytes.

use crate::error::DecodeError;

/// Appends the gob encoding of an unsigned integer.
pub fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let skip = (v.leading_zeros() / 8) as usize;
    let n = 8 - skip; // 1..=8 because v >= 0x80
    out.push((n as u8).wrapping_neg());
    out.extend(v.to_be_bytes().iter().skip(skip));
}

/// Appends the gob encoding of a signed integer (zig-zag, then uint).
pub fn put_int(out: &mut Vec<u8>, v: i64) {
    put_uint(out, zigzag(v));
}

/// Folds a signed integer into gob's unsigned representation.
pub fn zigzag(v: i64) -> u64 {
    if v < 0 {
        ((!v as u64) << 1) | 1
    } else {
        (v as u64) << 1
    }
}

/// Inverse of [`zigzag`].
pub fn unzigzag(u: u64) -> i64 {
    if u & 1 == 1 {
        !((u >> 1) as i64)
    } else {
        (u >> 1) as i64
    }
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `data` from its first byte.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// True when everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Reads one byte.
    pub fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let (&b, rest) = self
            .data
            .split_first()
            .ok_or(DecodeError::UnexpectedEof(what))?;
        self.data = rest;
        Ok(b)
    }

    /// Reads exactly `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .data
            .split_at_checked(n)
            .ok_or(DecodeError::UnexpectedEof(what))?;
        self.data = rest;
        Ok(head)
    }

    /// Reads a gob unsigned integer. Like Go, non-minimal encodings are
    /// accepted; a length prefix above 8 bytes is an error.
    pub fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.byte(what)?;
        if b < 0x80 {
            return Ok(u64::from(b));
        }
        let n = 0x100 - usize::from(b); // 1..=128
        if n > 8 {
            return Err(DecodeError::BadUint(b));
        }
        let bytes = self.take(n, what)?;
        Ok(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// Reads a gob signed integer.
    pub fn int(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.uint(what).map(unzigzag)
    }

    /// Reads a length-prefixed byte string, checking the length against the
    /// input left before touching it.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.uint(what)?;
        let remaining = self.remaining();
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= remaining)
            .ok_or(DecodeError::CountTooLarge {
                count: len,
                remaining,
            })?;
        self.take(n, what)
    }

    /// Reads a count of elements that each occupy at least one byte, checking
    /// it against the input left.
    pub fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let count = self.uint(what)?;
        let remaining = self.remaining();
        usize::try_from(count)
            .ok()
            .filter(|&n| n <= remaining)
            .ok_or(DecodeError::CountTooLarge { count, remaining })
    }
}

/// Writes a struct value's fields as gob does: `(field delta, value)` pairs for the fields
/// that are present, then `00`. Fields are numbered from 0 and must come in increasing order;
/// zero values are skipped by the typed helpers, as Go omits them. For composite fields, call
/// [`StructFields::field`] and write the value into [`StructFields::out`].
pub struct StructFields<'b> {
    out: &'b mut Vec<u8>,
    last: u64,
}

impl<'b> StructFields<'b> {
    /// Start a struct value at the end of `out`.
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        // Field numbers start at -1, so the first delta is `field + 1`.
        StructFields { out, last: 0 }
    }

    /// The buffer, to write a field's value after [`StructFields::field`].
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Announce field `index` (its delta from the previous one).
    pub fn field(&mut self, index: u64) {
        put_uint(self.out, index + 1 - self.last);
        self.last = index + 1;
    }

    /// An unsigned field (omitted when 0).
    pub fn uint(&mut self, index: u64, v: u64) {
        if v != 0 {
            self.field(index);
            put_uint(self.out, v);
        }
    }

    /// A signed field (omitted when 0).
    pub fn int(&mut self, index: u64, v: i64) {
        if v != 0 {
            self.field(index);
            put_int(self.out, v);
        }
    }

    /// A bool field (omitted when false).
    pub fn bool(&mut self, index: u64, v: bool) {
        if v {
            self.field(index);
            self.out.push(1);
        }
    }

    /// A `[]byte` or string field (omitted when empty).
    pub fn bytes(&mut self, index: u64, v: &[u8]) {
        if !v.is_empty() {
            self.field(index);
            put_bytes(self.out, v);
        }
    }

    /// A `[]uint`-shaped field (omitted when empty).
    pub fn uints(&mut self, index: u64, v: impl ExactSizeIterator<Item = u64>) {
        if v.len() > 0 {
            self.field(index);
            put_uint(self.out, v.len() as u64);
            for x in v {
                put_uint(self.out, x);
            }
        }
    }

    /// End the struct.
    pub fn end(self) {
        self.out.push(0);
    }
}

/// Writes the definition message of type `id` (length, `-id`, the `wireType`), whose
/// `wireType` `build` writes: a hand-written encoder can so define types exactly as Go names
/// them (slices and maps with names, structs without), which [`crate::GobType`] cannot express.
pub fn put_type_definition(out: &mut Vec<u8>, id: i64, build: impl FnOnce(&mut Vec<u8>)) {
    let mut wire_type = Vec::with_capacity(128);
    build(&mut wire_type);
    let mut head = Vec::with_capacity(4);
    put_int(&mut head, -id);
    put_uint(out, (head.len() + wire_type.len()) as u64);
    out.extend_from_slice(&head);
    out.extend_from_slice(&wire_type);
}

/// `CommonType{Name, Id}` (also the shape of `fieldType{Name, Id}`), zero fields omitted.
fn put_named_id(out: &mut Vec<u8>, name: &str, id: i64) {
    let mut delta = 1;
    if name.is_empty() {
        delta = 2;
    } else {
        put_uint(out, 1);
        put_bytes(out, name.as_bytes());
    }
    put_uint(out, delta);
    put_int(out, id);
    out.push(0);
}

/// `wireType{StructT: &structType{CommonType{name, id}, Field: fields}}` (field name, type id).
pub fn put_struct_type(out: &mut Vec<u8>, name: &str, id: i64, fields: &[(&str, i64)]) {
    put_uint(out, 3); // wireType.StructT
    put_uint(out, 1); // structType.CommonType
    put_named_id(out, name, id);
    put_uint(out, 1); // structType.Field
    put_uint(out, fields.len() as u64);
    for (fname, fid) in fields {
        put_named_id(out, fname, *fid);
    }
    out.push(0); // end structType
    out.push(0); // end wireType
}

/// `wireType{SliceT: &sliceType{CommonType{name, id}, Elem: elem}}`.
pub fn put_slice_type(out: &mut Vec<u8>, name: &str, id: i64, elem: i64) {
    put_uint(out, 2); // wireType.SliceT
    put_uint(out, 1); // sliceType.CommonType
    put_named_id(out, name, id);
    put_uint(out, 1); // sliceType.Elem
    put_int(out, elem);
    out.push(0);
    out.push(0);
}

/// `wireType{MapT: &mapType{CommonType{name, id}, Key: key, Elem: elem}}`.
pub fn put_map_type(out: &mut Vec<u8>, name: &str, id: i64, key: i64, elem: i64) {
    put_uint(out, 4); // wireType.MapT
    put_uint(out, 1); // mapType.CommonType
    put_named_id(out, name, id);
    put_uint(out, 1); // mapType.Key
    put_int(out, key);
    put_uint(out, 1); // mapType.Elem
    put_int(out, elem);
    out.push(0);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, v);
        out
    }

    fn enc_int(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, v);
        out
    }

    #[test]
    fn uint_small_values_are_one_byte() {
        assert_eq!(enc_uint(0), [0x00]);
        assert_eq!(enc_uint(1), [0x01]);
        assert_eq!(enc_uint(127), [0x7f]);
    }

    #[test]
    fn uint_large_values_have_negated_length_prefix() {
        assert_eq!(enc_uint(128), [0xff, 0x80]);
        assert_eq!(enc_uint(255), [0xff, 0xff]);
        assert_eq!(enc_uint(256), [0xfe, 0x01, 0x00]);
        assert_eq!(enc_uint(0x123), [0xfe, 0x01, 0x23]);
        assert_eq!(
            enc_uint(0x1234_5678_9abc),
            [0xfa, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]
        );
        assert_eq!(
            enc_uint(0x0102_0304_0506_0708),
            [0xf8, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            enc_uint(u64::MAX),
            [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn int_is_zigzag() {
        // Type id -65 announces a definition of type 65 (spec §2.4).
        assert_eq!(enc_int(-65), [0xff, 0x81]);
        assert_eq!(enc_int(65), [0xff, 0x82]);
        assert_eq!(enc_int(0), [0x00]);
        assert_eq!(enc_int(-1), [0x01]);
        assert_eq!(enc_int(1), [0x02]);
        assert_eq!(enc_int(6), [0x0c]); // string type id
        assert_eq!(enc_int(5), [0x0a]); // []byte type id
        assert_eq!(enc_int(3), [0x06]); // uint type id
        assert_eq!(enc_int(-66), [0xff, 0x83]);
        assert_eq!(enc_int(-68), [0xff, 0x87]);
        assert_eq!(
            enc_int(i64::MIN),
            [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            enc_int(i64::MAX),
            [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
    }

    #[test]
    fn uint_and_int_round_trip_at_edges() {
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let b = enc_uint(v);
            let mut r = Reader::new(&b);
            assert_eq!(r.uint("t").unwrap(), v);
            assert!(r.is_empty());
        }
        for v in [0, 1, -1, 63, -64, 64, -65, i64::MIN, i64::MAX] {
            let b = enc_int(v);
            let mut r = Reader::new(&b);
            assert_eq!(r.int("t").unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn non_minimal_uint_is_accepted_like_go() {
        let mut r = Reader::new(&[0xfe, 0x00, 0x05]);
        assert_eq!(r.uint("t").unwrap(), 5);
    }

    #[test]
    fn bad_and_truncated_uints_are_errors() {
        assert_eq!(
            Reader::new(&[0xf7]).uint("t"),
            Err(DecodeError::BadUint(0xf7))
        );
        assert_eq!(
            Reader::new(&[0x80]).uint("t"),
            Err(DecodeError::BadUint(0x80))
        );
        assert_eq!(
            Reader::new(&[0xfe, 0x01]).uint("t"),
            Err(DecodeError::UnexpectedEof("t"))
        );
        assert_eq!(
            Reader::new(&[]).uint("t"),
            Err(DecodeError::UnexpectedEof("t"))
        );
    }

    #[test]
    fn byte_strings_check_length_before_reading() {
        let mut r = Reader::new(&[0x03, b'a', b'b']);
        assert_eq!(
            r.bytes("s"),
            Err(DecodeError::CountTooLarge {
                count: 3,
                remaining: 2
            })
        );
        let huge = [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Reader::new(&huge).bytes("s"),
            Err(DecodeError::CountTooLarge { .. })
        ));
        let mut out = Vec::new();
        put_bytes(&mut out, b"Name");
        assert_eq!(out, [0x04, b'N', b'a', b'm', b'e']);
        assert_eq!(Reader::new(&out).bytes("s").unwrap(), b"Name");
    }
}
