//! Go gob bytes of the `nameserver` channel (reference weave-services.md §4.3).
//!
//! **Encoding** writes what a Weave 2.8.1 process writes: three type definitions, in Go's
//! order — `GossipData` (fields `Timestamp int64`, `Entries`), the slice `Entries`, the struct
//! `Entry` (`ContainerID`, `Origin`, `Addr`, `Hostname`, `Version`, `Tombstone`) — then the
//! value with gob's zero-field omission (an empty `Entries` is left out). Go numbers the three
//! types consecutively (`GossipData` n, `Entry` n+1, `Entries` n+2), n depending on what the
//! process encoded before: [`TypeIds`]. Nothing in the value is a map, so the encoding is
//! deterministic: given the ids and the entries in their order, the bytes are Go's.
//!
//! **Decoding** uses `weft_gob::Decoder` (total, bounded), then checks the shape: fields are
//! matched by name as Go does (unknown ones ignored, missing ones zero), a known field of the
//! wrong kind is an error, `Addr` must fit in 32 bits, `Origin` in 48, and sizes are capped
//! ([`MAX_ENTRIES`], [`MAX_HOSTNAME_LEN`], [`MAX_CONTAINER_ID_LEN`]). Bytes after the first
//! value are not examined (like Go's single `Decode` call).

use std::net::Ipv4Addr;

use weft_gob::wire::{
    put_int, put_slice_type, put_struct_type, put_type_definition, put_uint, StructFields,
};
use weft_gob::{DecodeError, Decoder, Limits, StructValue, Utf8Policy, Value};
use weft_mesh::PeerName;

use crate::wire::{Entry, GossipData};

/// Most entries accepted in one message.
pub const MAX_ENTRIES: usize = 100_000;
/// Longest hostname accepted, in bytes (a DNS name is at most 255 bytes).
pub const MAX_HOSTNAME_LEN: usize = 255;
/// Longest container id accepted, in bytes.
pub const MAX_CONTAINER_ID_LEN: usize = 255;

/// gob's predefined ids.
const INT: i64 = 2;
const UINT: i64 = 3;
const STRING: i64 = 6;

/// Why `nameserver` bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a gob stream we can read.
    #[error("nameserver message is not valid gob: {0}")]
    Gob(#[from] DecodeError),
    /// A value has another kind than Weave's type.
    #[error("nameserver message: {what} should be {expected}, but the sender sent {found}")]
    Shape {
        what: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// More entries than we accept.
    #[error("nameserver message has {count} entries, more than the {limit} accepted")]
    TooManyEntries { count: usize, limit: usize },
    /// A string field is longer than we accept.
    #[error(
        "nameserver message: an entry's {what} is {len} bytes long, more than the {limit} accepted"
    )]
    TooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    /// `Origin` does not fit in 48 bits.
    #[error("nameserver message: Origin {0:#x} is not a peer name (more than 48 bits)")]
    BadPeerName(u64),
    /// `Addr` does not fit in 32 bits.
    #[error("nameserver message: Addr {0} is not an IPv4 address (more than 32 bits)")]
    BadAddr(u64),
}

/// The gob type ids a Go process gave to the `nameserver` types: `GossipData` is
/// `gossip_data`, `Entry` the next id, `Entries` the one after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeIds {
    /// The id of `GossipData`.
    pub gossip_data: i64,
}

impl TypeIds {
    /// A weaver that had encoded IPAM state (ring and gossip state) before its first
    /// `nameserver` message: `GossipData` 78 (h1 in capture (e)).
    pub const WEAVE: TypeIds = TypeIds { gossip_data: 78 };
    /// A weaver whose first gob encoding after the topology was `nameserver` gossip:
    /// `GossipData` 75 (h2 in capture (e)).
    pub const WEAVE_DNS_FIRST: TypeIds = TypeIds { gossip_data: 75 };

    fn entry(self) -> i64 {
        self.gossip_data + 1
    }
    fn entries(self) -> i64 {
        self.gossip_data + 2
    }
}

// ---------------------------------------------------------------------------------- encoding

/// Encodes gossip data as one gob stream with [`TypeIds::WEAVE`].
pub fn encode_gossip(data: &GossipData) -> Vec<u8> {
    encode_gossip_with_ids(data, TypeIds::WEAVE)
}

/// [`encode_gossip`] with the type numbering of another Go process.
pub fn encode_gossip_with_ids(data: &GossipData, ids: TypeIds) -> Vec<u8> {
    let mut out = Vec::with_capacity(200 + data.entries.len() * 110);
    let gd = [("Timestamp", INT), ("Entries", ids.entries())];
    put_type_definition(&mut out, ids.gossip_data, |d| {
        put_struct_type(d, "GossipData", ids.gossip_data, &gd)
    });
    put_type_definition(&mut out, ids.entries(), |d| {
        put_slice_type(d, "Entries", ids.entries(), ids.entry())
    });
    let entry = [
        ("ContainerID", STRING),
        ("Origin", UINT),
        ("Addr", UINT),
        ("Hostname", STRING),
        ("Version", INT),
        ("Tombstone", INT),
    ];
    put_type_definition(&mut out, ids.entry(), |d| {
        put_struct_type(d, "Entry", ids.entry(), &entry)
    });

    let mut body = Vec::with_capacity(16 + data.entries.len() * 110);
    put_int(&mut body, ids.gossip_data);
    let mut f = StructFields::new(&mut body);
    f.int(0, data.timestamp);
    if !data.entries.is_empty() {
        f.field(1);
        put_uint(f.out(), data.entries.len() as u64);
        for e in &data.entries {
            let mut ef = StructFields::new(f.out());
            ef.bytes(0, e.container_id.as_bytes());
            ef.uint(1, e.origin.as_u64());
            ef.uint(2, u64::from(u32::from(e.addr)));
            ef.bytes(3, e.hostname.as_bytes());
            ef.int(4, e.version);
            ef.int(5, e.tombstone);
            ef.end();
        }
    }
    f.end();
    put_uint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

// ---------------------------------------------------------------------------------- decoding

fn limits() -> Limits {
    Limits {
        // Weave's TCP messages are at most 10 MiB.
        max_message_len: 10 << 20,
        // One GossipData stream defines 3 types.
        max_types: 16,
        max_depth: 8,
        max_type_nodes: 64,
        // Entries (6 fields each) dominate.
        max_elements: MAX_ENTRIES * 7 + 16,
        // A stray byte in one name must not lose the whole table.
        utf8: Utf8Policy::Lossy,
    }
}

/// Decodes a `nameserver` payload (tag 4, 5 and 6 bodies).
pub fn decode_gossip(bytes: &[u8]) -> Result<GossipData, CodecError> {
    decode_gossip_with_ids(bytes).map(|(data, _)| data)
}

/// [`decode_gossip`], also returning the sender's type numbering (to re-encode the same bytes).
pub fn decode_gossip_with_ids(bytes: &[u8]) -> Result<(GossipData, TypeIds), CodecError> {
    let top = Decoder::with_limits(bytes, limits()).expect_value()?;
    let ids = TypeIds {
        gossip_data: i64::from(top.type_id),
    };
    let sv = as_struct(&top.value, "GossipData")?;
    let timestamp = int_field(sv, "Timestamp", "GossipData.Timestamp")?;
    let mut entries = Vec::new();
    if let Some(v) = sv.field("Entries") {
        let items = v.as_slice().ok_or(CodecError::Shape {
            what: "GossipData.Entries",
            expected: "a slice",
            found: v.kind_name(),
        })?;
        if items.len() > MAX_ENTRIES {
            return Err(CodecError::TooManyEntries {
                count: items.len(),
                limit: MAX_ENTRIES,
            });
        }
        entries.reserve(items.len());
        for item in items {
            entries.push(entry(item)?);
        }
    }
    Ok((GossipData { timestamp, entries }, ids))
}

fn entry(v: &Value) -> Result<Entry, CodecError> {
    let sv = as_struct(v, "an Entry")?;
    let container_id = str_field(sv, "ContainerID", MAX_CONTAINER_ID_LEN)?;
    let hostname = str_field(sv, "Hostname", MAX_HOSTNAME_LEN)?;
    let origin = uint_field(sv, "Origin", "Entry.Origin")?;
    let origin = PeerName::from_u64(origin).ok_or(CodecError::BadPeerName(origin))?;
    let addr = uint_field(sv, "Addr", "Entry.Addr")?;
    let addr = u32::try_from(addr).map_err(|_| CodecError::BadAddr(addr))?;
    Ok(Entry {
        container_id,
        origin,
        addr: Ipv4Addr::from(addr),
        hostname,
        version: int_field(sv, "Version", "Entry.Version")?,
        tombstone: int_field(sv, "Tombstone", "Entry.Tombstone")?,
    })
}

fn as_struct<'v>(v: &'v Value, what: &'static str) -> Result<&'v StructValue, CodecError> {
    v.as_struct().ok_or(CodecError::Shape {
        what,
        expected: "a struct",
        found: v.kind_name(),
    })
}

fn int_field(sv: &StructValue, name: &str, what: &'static str) -> Result<i64, CodecError> {
    match sv.field(name) {
        None => Ok(0),
        Some(v) => v.as_int().ok_or(CodecError::Shape {
            what,
            expected: "int",
            found: v.kind_name(),
        }),
    }
}

fn uint_field(sv: &StructValue, name: &str, what: &'static str) -> Result<u64, CodecError> {
    match sv.field(name) {
        None => Ok(0),
        Some(v) => v.as_uint().ok_or(CodecError::Shape {
            what,
            expected: "uint",
            found: v.kind_name(),
        }),
    }
}

fn str_field(sv: &StructValue, name: &'static str, limit: usize) -> Result<String, CodecError> {
    let Some(v) = sv.field(name) else {
        return Ok(String::new());
    };
    let s = v.as_str().ok_or(CodecError::Shape {
        what: name,
        expected: "string",
        found: v.kind_name(),
    })?;
    if s.len() > limit {
        return Err(CodecError::TooLong {
            what: name,
            len: s.len(),
            limit,
        });
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(n: u64) -> PeerName {
        PeerName::from_u64(n).unwrap()
    }

    fn sample() -> GossipData {
        GossipData {
            timestamp: 1_796_284_340,
            entries: vec![
                Entry {
                    container_id: "c1".into(),
                    origin: peer(1),
                    addr: Ipv4Addr::new(10, 32, 0, 1),
                    hostname: "web.weave.local.".into(),
                    version: 0,
                    tombstone: 0,
                },
                Entry {
                    container_id: "c2".into(),
                    origin: peer(2),
                    addr: Ipv4Addr::new(10, 32, 0, 2),
                    hostname: "db.weave.local.".into(),
                    version: 3,
                    tombstone: 1_796_284_300,
                },
            ],
        }
    }

    #[test]
    fn round_trip_keeps_everything_and_the_ids() {
        let data = sample();
        for ids in [TypeIds::WEAVE, TypeIds::WEAVE_DNS_FIRST] {
            let bytes = encode_gossip_with_ids(&data, ids);
            let (back, got) = decode_gossip_with_ids(&bytes).unwrap();
            assert_eq!(back, data);
            assert_eq!(got, ids);
        }
    }

    #[test]
    fn empty_entries_are_omitted_like_go() {
        // h2's first nameserver gossip in capture (e): 0 entries, value `09 ff 96 01 fc d6 22 3f 42 00`.
        let bytes = encode_gossip_with_ids(
            &GossipData {
                timestamp: 1_796_284_321,
                entries: vec![],
            },
            TypeIds::WEAVE_DNS_FIRST,
        );
        assert!(bytes.ends_with(&[0x09, 0xff, 0x96, 0x01, 0xfc, 0xd6, 0x22, 0x3f, 0x42, 0x00]));
        assert_eq!(decode_gossip(&bytes).unwrap().entries.len(), 0);
    }

    /// A hand-made stream with the given entry value (fields by name, like Go would send).
    fn with_entry_fields(build: impl FnOnce(&mut StructFields)) -> Vec<u8> {
        let ids = TypeIds::WEAVE;
        let mut out = encode_gossip_with_ids(&GossipData::default(), ids);
        // Replace the empty value message (length, type id, end of struct) with ours.
        let empty_value_len = {
            let mut v = Vec::new();
            put_int(&mut v, ids.gossip_data);
            v.push(0);
            v.len() + 1
        };
        out.truncate(out.len() - empty_value_len);
        let mut body = Vec::new();
        put_int(&mut body, ids.gossip_data);
        let mut f = StructFields::new(&mut body);
        f.field(1);
        put_uint(f.out(), 1);
        let mut ef = StructFields::new(f.out());
        build(&mut ef);
        ef.end();
        f.end();
        put_uint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn addr_beyond_32_bits_is_refused() {
        let bytes = with_entry_fields(|f| f.uint(2, 1 << 32));
        assert!(matches!(decode_gossip(&bytes), Err(CodecError::BadAddr(_))));
    }

    #[test]
    fn origin_beyond_48_bits_is_refused() {
        let bytes = with_entry_fields(|f| f.uint(1, 1 << 48));
        assert!(matches!(
            decode_gossip(&bytes),
            Err(CodecError::BadPeerName(_))
        ));
    }

    #[test]
    fn long_hostname_is_refused() {
        let name = "a".repeat(MAX_HOSTNAME_LEN + 1);
        let bytes = with_entry_fields(|f| f.bytes(3, name.as_bytes()));
        assert!(matches!(
            decode_gossip(&bytes),
            Err(CodecError::TooLong {
                what: "Hostname",
                ..
            })
        ));
        let ok = "a".repeat(MAX_HOSTNAME_LEN);
        let bytes = with_entry_fields(|f| f.bytes(3, ok.as_bytes()));
        assert_eq!(decode_gossip(&bytes).unwrap().entries[0].hostname, ok);
    }

    #[test]
    fn long_container_id_is_refused() {
        let id = "c".repeat(MAX_CONTAINER_ID_LEN + 1);
        let bytes = with_entry_fields(|f| f.bytes(0, id.as_bytes()));
        assert!(matches!(
            decode_gossip(&bytes),
            Err(CodecError::TooLong {
                what: "ContainerID",
                ..
            })
        ));
    }

    #[test]
    fn too_many_entries_are_refused() {
        let e = sample().entries.remove(0);
        let data = GossipData {
            timestamp: 1,
            entries: vec![e; MAX_ENTRIES + 1],
        };
        let bytes = encode_gossip(&data);
        assert!(decode_gossip(&bytes).is_err());
    }

    #[test]
    fn truncated_streams_are_errors_not_panics() {
        let bytes = encode_gossip(&sample());
        for n in 0..bytes.len() {
            assert!(decode_gossip(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            "[0-9a-f]{0,64}",
            0u64..(1 << 48),
            any::<u32>(),
            "[A-Za-z0-9.-]{0,60}",
            any::<i64>(),
            any::<i64>(),
        )
            .prop_map(|(c, o, a, h, v, t)| Entry {
                container_id: c,
                origin: PeerName::from_u64(o).unwrap(),
                addr: Ipv4Addr::from(a),
                hostname: h,
                version: v,
                tombstone: t,
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip(ts in any::<i64>(), entries in prop::collection::vec(arb_entry(), 0..20), base in 65i64..200) {
            let data = GossipData { timestamp: ts, entries };
            let ids = TypeIds { gossip_data: base };
            let (back, got) = decode_gossip_with_ids(&encode_gossip_with_ids(&data, ids)).unwrap();
            prop_assert_eq!(back, data);
            prop_assert_eq!(got, ids);
        }

        #[test]
        fn prop_decode_is_total(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_gossip(&bytes);
        }

        #[test]
        fn prop_decode_of_mutated_stream_is_total(pos in 0usize..300, byte in any::<u8>()) {
            let mut bytes = encode_gossip(&sample());
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = decode_gossip(&bytes);
        }
    }
}
