//! Gossip messages as the mesh core sees them, and the topology payload codec.
//!
//! On the wire a gossip message is a TCP message with tag 4 (gossip to neighbours), 5 (unicast)
//! or 6 (broadcast) whose body is a gob envelope; the connection layer (`weft-wire`) encodes
//! and decodes envelopes, the core works with [`GossipMsg`]. The topology channel's payload is
//! a gob stream of `peerSummary`, `[]connectionSummary` pairs (reference §3.3), encoded and
//! decoded here.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use weft_gob::wire::{put_int, put_uint, StructFields};
use weft_gob::{Decoder, Encoder, GobType, Limits, StructValue, Value};

use crate::topology::{
    ConnectionSummary, ConnectionView, PeerSummary, PeerUpdate, PeerUpdateView, Peers,
};
use crate::PeerName;

/// The channel the mesh itself gossips on.
pub const TOPOLOGY_CHANNEL: &str = "topology";

/// How a gossip message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipKind {
    /// Tag 4: to neighbours; `src` is the immediate sender.
    Gossip,
    /// Tag 5: to one peer, relayed hop by hop unchanged.
    Unicast { dst: PeerName },
    /// Tag 6: along the originator's broadcast tree; `src` is the originator.
    Broadcast,
}

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipMsg {
    pub kind: GossipKind,
    pub channel: String,
    pub src: PeerName,
    pub payload: Vec<u8>,
}

/// A topology payload that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad topology payload: {0}")]
pub struct PayloadError(pub String);

fn peer_summary_type() -> GobType {
    GobType::structure(
        "peerSummary",
        [
            ("NameByte", GobType::Bytes),
            ("NickName", GobType::String),
            ("UID", GobType::Uint),
            ("Version", GobType::Uint),
            ("ShortID", GobType::Uint),
            ("HasShortID", GobType::Bool),
        ],
    )
}

fn connection_summary_type() -> GobType {
    GobType::structure(
        "connectionSummary",
        [
            ("NameByte", GobType::Bytes),
            ("RemoteTCPAddr", GobType::String),
            ("Outbound", GobType::Bool),
            ("Established", GobType::Bool),
        ],
    )
}

/// Encode a topology update as Weave does: one gob stream, a summary and a connection list
/// per peer, definitions before first use.
///
/// This is the fast encoder: it writes the gob bytes directly with [`weft_gob::wire`]
/// primitives and a cached copy of the three type definitions, without building dynamic
/// [`Value`] trees. Its output is byte for byte that of [`encode_topology_generic`] (tested).
pub fn encode_topology(update: &[PeerUpdate]) -> Vec<u8> {
    let mut w = TopologyWriter::new();
    for u in update {
        let s = &u.summary;
        w.peer(
            &s.name_byte,
            &s.nick_name,
            s.uid,
            s.version,
            s.short_id,
            s.has_short_id,
        );
        w.connections(
            u.connections.len(),
            u.connections.iter().map(|c| {
                (
                    c.name_byte.as_slice(),
                    c.remote_tcp_addr.as_str(),
                    c.outbound,
                    c.established,
                )
            }),
        );
    }
    w.finish()
}

/// Encode the current records of `names` straight from the peer table (names not in the table
/// are skipped), in the iterator's order. Equal to
/// `encode_topology(&peers.incremental_update(names))` for a name-ordered, repeat-free
/// iterator, without building the intermediate [`PeerUpdate`]s.
pub fn encode_peers<'a>(peers: &Peers, names: impl IntoIterator<Item = &'a PeerName>) -> Vec<u8> {
    let names = names.into_iter();
    let mut w = TopologyWriter::new();
    // Roughly a record and ten connections per name: saves most regrowth copies.
    w.out
        .reserve(names.size_hint().0.saturating_mul(400).min(1 << 20) + 256);
    for name in names {
        let Some(p) = peers.get(*name) else {
            continue;
        };
        let (short_id, has_short_id) = p.raw_short_id();
        w.peer(
            &p.name().to_bytes(),
            p.nick_name(),
            p.uid(),
            p.version(),
            u64::from(short_id),
            has_short_id,
        );
        let conns = p.connections();
        w.connections(
            conns.len(),
            conns.iter().map(|(n, c)| {
                (
                    NameBytes::Name(n.to_bytes()),
                    c.remote_tcp_addr.as_str(),
                    c.outbound,
                    c.established,
                )
            }),
        );
    }
    w.finish()
}

/// The reference encoder, through [`weft_gob::Encoder`] and dynamic [`Value`]s. Slower; kept
/// to check the fast encoder against (tests, fuzzing).
pub fn encode_topology_generic(update: &[PeerUpdate]) -> Vec<u8> {
    let peer_ty = peer_summary_type();
    let conns_ty = GobType::slice(connection_summary_type());
    let mut enc = Encoder::new();
    for u in update {
        let s = &u.summary;
        let summary = StructValue::new()
            .with("NameByte", Value::Bytes(s.name_byte.clone()))
            .with("NickName", s.nick_name.as_str())
            .with("UID", Value::Uint(s.uid))
            .with("Version", Value::Uint(s.version))
            .with("ShortID", Value::Uint(s.short_id))
            .with("HasShortID", s.has_short_id);
        let conns = Value::Slice(
            u.connections
                .iter()
                .map(|c| {
                    Value::Struct(
                        StructValue::new()
                            .with("NameByte", Value::Bytes(c.name_byte.clone()))
                            .with("RemoteTCPAddr", c.remote_tcp_addr.as_str())
                            .with("Outbound", c.outbound)
                            .with("Established", c.established),
                    )
                })
                .collect(),
        );
        // The values match their types by construction, so encoding cannot fail.
        let _ = enc.encode(&peer_ty, &Value::Struct(summary));
        let _ = enc.encode(&conns_ty, &conns);
    }
    enc.into_bytes()
}

/// Decode a topology payload. Bounded by the gob decoder's limits; fields are matched by
/// name and missing ones take Go's zero values.
///
/// Payloads in the canonical shape (the three type definitions exactly as Go and weft write
/// them, for any first type id) take the fast path, [`decode_topology_fast`]; anything else,
/// including every malformed payload, goes through the generic [`weft_gob::Decoder`], so the
/// result (value or error) is always that of [`decode_topology_generic`].
pub fn decode_topology(payload: &[u8]) -> Result<Vec<PeerUpdate>, PayloadError> {
    match decode_topology_fast(payload) {
        Some(update) => Ok(update),
        None => decode_topology_generic(payload),
    }
}

/// The reference decoder, through [`weft_gob::Decoder`] and dynamic [`Value`]s.
pub fn decode_topology_generic(payload: &[u8]) -> Result<Vec<PeerUpdate>, PayloadError> {
    let err = |e: &dyn std::fmt::Display| PayloadError(e.to_string());
    let mut dec = Decoder::with_limits(payload, Limits::default());
    let mut out = Vec::new();
    while let Some(first) = dec.next_value().map_err(|e| err(&e))? {
        let Value::Struct(s) = &first.value else {
            return Err(PayloadError(format!(
                "expected a peerSummary struct, found {}",
                first.value.kind_name()
            )));
        };
        let summary = PeerSummary {
            name_byte: s.get::<Vec<u8>>("NameByte").map_err(|e| err(&e))?,
            nick_name: s.get::<String>("NickName").map_err(|e| err(&e))?,
            uid: s.get::<u64>("UID").map_err(|e| err(&e))?,
            version: s.get::<u64>("Version").map_err(|e| err(&e))?,
            short_id: s.get::<u64>("ShortID").map_err(|e| err(&e))?,
            has_short_id: s.get::<bool>("HasShortID").map_err(|e| err(&e))?,
        };
        let conns = dec
            .next_value()
            .map_err(|e| err(&e))?
            .ok_or_else(|| PayloadError("peerSummary without its connection list".into()))?;
        let Value::Slice(items) = &conns.value else {
            return Err(PayloadError(format!(
                "expected []connectionSummary, found {}",
                conns.value.kind_name()
            )));
        };
        let mut connections = Vec::with_capacity(items.len());
        for item in items {
            let Value::Struct(c) = item else {
                return Err(PayloadError(
                    "connection list element is not a struct".into(),
                ));
            };
            connections.push(ConnectionSummary {
                name_byte: c.get::<Vec<u8>>("NameByte").map_err(|e| err(&e))?,
                remote_tcp_addr: c.get::<String>("RemoteTCPAddr").map_err(|e| err(&e))?,
                outbound: c.get::<bool>("Outbound").map_err(|e| err(&e))?,
                established: c.get::<bool>("Established").map_err(|e| err(&e))?,
            });
        }
        out.push(PeerUpdate {
            summary,
            connections,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------- fast codec

/// The three type-definition messages of a topology stream whose first type id is `base`
/// (`peerSummary` = base, `connectionSummary` = base + 1, `[]connectionSummary` = base + 2,
/// Go's first-use order), produced once by [`weft_gob::Encoder`] and then compared or copied.
#[derive(Debug)]
struct Canon {
    peer_id: i64,
    conn_id: i64,
    slice_id: i64,
    peer_def: Vec<u8>,
    slice_def: Vec<u8>,
    conn_def: Vec<u8>,
}

impl Canon {
    fn new(base: i32) -> Option<Canon> {
        if base < weft_gob::ids::FIRST_DEFINABLE {
            return None;
        }
        let mut enc = Encoder::with_first_type_id(base);
        enc.encode(&peer_summary_type(), &Value::Struct(StructValue::new()))
            .ok()?;
        enc.encode(
            &GobType::slice(connection_summary_type()),
            &Value::Slice(Vec::new()),
        )
        .ok()?;
        let bytes = enc.into_bytes();
        // Split the stream into messages: def(peer), value, def(slice), def(conn), value.
        let mut r = weft_gob::wire::Reader::new(&bytes);
        let mut defs = Vec::new();
        while !r.is_empty() {
            let start = bytes.len() - r.remaining();
            let len = usize::try_from(r.uint("len").ok()?).ok()?;
            let body = r.take(len, "body").ok()?;
            let id = weft_gob::wire::Reader::new(body).int("id").ok()?;
            let end = bytes.len() - r.remaining();
            if id < 0 {
                defs.push((-id, bytes.get(start..end)?.to_vec()));
            }
        }
        let [(p, peer_def), (s, slice_def), (c, conn_def)]: [(i64, Vec<u8>); 3] =
            defs.try_into().ok()?;
        let b = i64::from(base);
        (p == b && c == b + 1 && s == b + 2).then_some(Canon {
            peer_id: p,
            conn_id: c,
            slice_id: s,
            peer_def,
            slice_def,
            conn_def,
        })
    }

    /// The definitions weft itself sends (a fresh stream: first id 65, like a fresh Go process).
    fn ours() -> &'static Canon {
        static OURS: OnceLock<Canon> = OnceLock::new();
        OURS.get_or_init(|| {
            Canon::new(weft_gob::ids::FIRST_USER)
                .expect("invariant: the topology types encode with a fresh encoder")
        })
    }

    /// The definitions for first id `base`, cached (a few bases per thread: one per Go peer
    /// process numbering, in practice 65 for weft and one or two values for Weave).
    fn for_base(base: i64) -> Option<Rc<Canon>> {
        const CACHE: usize = 8;
        thread_local! {
            static CACHED: RefCell<Vec<Rc<Canon>>> = const { RefCell::new(Vec::new()) };
        }
        let base = i32::try_from(base).ok()?;
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(hit) = c.iter().find(|k| k.peer_id == i64::from(base)) {
                return Some(Rc::clone(hit));
            }
            let canon = Rc::new(Canon::new(base)?);
            if c.len() >= CACHE {
                c.remove(0);
            }
            c.push(Rc::clone(&canon));
            Some(canon)
        })
    }
}

/// A connection's remote name: borrowed bytes from a decoded update, or a name's six bytes.
enum NameBytes<'a> {
    Slice(&'a [u8]),
    Name([u8; 6]),
}

impl NameBytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            NameBytes::Slice(s) => s,
            NameBytes::Name(b) => b,
        }
    }
}

impl<'a> From<&'a [u8]> for NameBytes<'a> {
    fn from(s: &'a [u8]) -> Self {
        NameBytes::Slice(s)
    }
}

/// Writes one topology stream with the cached definitions (see [`Canon`]).
struct TopologyWriter {
    out: Vec<u8>,
    body: Vec<u8>,
    peer_defined: bool,
    conns_defined: bool,
}

impl TopologyWriter {
    fn new() -> Self {
        TopologyWriter {
            out: Vec::new(),
            body: Vec::new(),
            peer_defined: false,
            conns_defined: false,
        }
    }

    /// Frame `self.body` (type id included) as one message.
    fn flush_message(&mut self) {
        put_uint(&mut self.out, self.body.len() as u64);
        self.out.extend_from_slice(&self.body);
        self.body.clear();
    }

    fn peer(
        &mut self,
        name: &[u8],
        nick: &str,
        uid: u64,
        version: u64,
        short_id: u64,
        has_short_id: bool,
    ) {
        let canon = Canon::ours();
        if !self.peer_defined {
            self.out.extend_from_slice(&canon.peer_def);
            self.peer_defined = true;
        }
        put_int(&mut self.body, canon.peer_id);
        let mut f = StructFields::new(&mut self.body);
        f.bytes(0, name);
        f.bytes(1, nick.as_bytes());
        f.uint(2, uid);
        f.uint(3, version);
        f.uint(4, short_id);
        f.bool(5, has_short_id);
        f.end();
        self.flush_message();
    }

    fn connections<'c, N: Into<NameBytes<'c>>>(
        &mut self,
        count: usize,
        conns: impl Iterator<Item = (N, &'c str, bool, bool)>,
    ) {
        let canon = Canon::ours();
        if !self.conns_defined {
            self.out.extend_from_slice(&canon.slice_def);
            self.out.extend_from_slice(&canon.conn_def);
            self.conns_defined = true;
        }
        put_int(&mut self.body, canon.slice_id);
        self.body.push(0); // singleton delta of a top-level non-struct value
        put_uint(&mut self.body, count as u64);
        for (name, addr, outbound, established) in conns {
            let name = name.into();
            let mut f = StructFields::new(&mut self.body);
            f.bytes(0, name.as_slice());
            f.bytes(1, addr.as_bytes());
            f.bool(2, outbound);
            f.bool(3, established);
            f.end();
        }
        self.flush_message();
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Mirrors the generic decoder's limits (`weft_gob::Limits::default()`), so the fast path
/// never accepts what the generic decoder would refuse.
const MAX_MESSAGE_LEN: usize = 10 << 20;
const MAX_ELEMENTS: usize = 1 << 20;

/// A minimal bounds-checked cursor for the fast path, mirroring [`weft_gob::wire::Reader`]
/// (same acceptance, including non-minimal integers) but with `Option` results, so the hot
/// loop carries no error values.
struct Cur<'a> {
    data: &'a [u8],
}

impl<'a> Cur<'a> {
    #[inline]
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    #[inline]
    fn remaining(&self) -> usize {
        self.data.len()
    }
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.data.split_at_checked(n)?;
        self.data = rest;
        Some(head)
    }
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        if b < 0x80 {
            return Some(u64::from(b));
        }
        let n = 0x100 - usize::from(b);
        if n > 8 {
            return None;
        }
        let bytes = self.take(n)?;
        Some(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }
    #[inline]
    fn int(&mut self) -> Option<i64> {
        self.uint().map(weft_gob::wire::unzigzag)
    }
    /// A length-prefixed byte string; the length is checked against the input left.
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.uint()?).ok()?;
        self.take(n)
    }
    /// An element count, checked against the input left (each element takes a byte).
    #[inline]
    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.uint()?)
            .ok()
            .filter(|&n| n <= self.remaining())
    }
}

/// Struct field walking exactly as the generic decoder does it: a zero delta or the end of
/// the message ends the struct; a field number out of range is an error (`None`).
struct FieldWalk {
    last: i64,
    count: i64,
}

impl FieldWalk {
    #[inline]
    fn next(&mut self, r: &mut Cur<'_>) -> Option<Option<i64>> {
        if r.is_empty() {
            return Some(None);
        }
        let delta = r.uint()?;
        if delta == 0 {
            return Some(None);
        }
        let field = i64::try_from(delta).ok()?.checked_add(self.last)?;
        if field >= self.count {
            return None;
        }
        self.last = field;
        Some(Some(field))
    }
}

#[inline]
fn charge(budget: &mut usize, n: usize) -> Option<()> {
    *budget = budget.checked_sub(n)?;
    Some(())
}

#[inline]
fn read_str<'a>(r: &mut Cur<'a>) -> Option<&'a str> {
    std::str::from_utf8(r.bytes()?).ok()
}

/// Reads a `peerSummary` value's fields (connections left empty).
fn read_peer_summary<'a>(r: &mut Cur<'a>, budget: &mut usize) -> Option<PeerUpdateView<'a>> {
    let mut s = PeerUpdateView::default();
    let mut walk = FieldWalk { last: -1, count: 6 };
    while let Some(i) = walk.next(r)? {
        charge(budget, 1)?;
        match i {
            0 => s.name_byte = r.bytes()?,
            1 => s.nick_name = read_str(r)?,
            2 => s.uid = r.uint()?,
            3 => s.version = r.uint()?,
            4 => s.short_id = r.uint()?,
            _ => s.has_short_id = r.uint()? != 0,
        }
    }
    Some(s)
}

#[inline]
fn read_connection<'a>(r: &mut Cur<'a>, budget: &mut usize) -> Option<ConnectionView<'a>> {
    let mut c = ConnectionView::default();
    let mut walk = FieldWalk { last: -1, count: 4 };
    while let Some(i) = walk.next(r)? {
        charge(budget, 1)?;
        match i {
            0 => c.name_byte = r.bytes()?,
            1 => c.remote_tcp_addr = read_str(r)?,
            2 => c.outbound = r.uint()? != 0,
            _ => c.established = r.uint()? != 0,
        }
    }
    Some(c)
}

/// The fast topology decoder: reads a payload in the canonical shape (definitions byte-equal
/// to those Go and weft write, for any first type id; values of those types alternating
/// `peerSummary`, `[]connectionSummary`) directly into owned [`PeerUpdate`]s. `None` means
/// "not in that shape, or malformed": the caller falls back to [`decode_topology_generic`],
/// which gives the authoritative answer. Whenever this returns `Some`, the generic decoder
/// returns the same update (checked by tests and by the `topology_payload` fuzz target).
pub fn decode_topology_fast(payload: &[u8]) -> Option<Vec<PeerUpdate>> {
    decode_topology_view(payload).map(|v| v.iter().map(PeerUpdateView::to_owned_update).collect())
}

/// [`decode_topology_fast`] without copying: the records borrow names, nicknames and
/// addresses from `payload`. This is what [`crate::mesh::Mesh`] applies.
pub fn decode_topology_view(payload: &[u8]) -> Option<Vec<PeerUpdateView<'_>>> {
    let mut r = Cur { data: payload };
    let mut canon: Option<Rc<Canon>> = None;
    let (mut have_peer, mut have_slice, mut have_conn) = (false, false, false);
    let mut pending: Option<PeerUpdateView<'_>> = None;
    let mut out = Vec::new();
    while !r.is_empty() {
        let start = payload.len() - r.remaining();
        let len = usize::try_from(r.uint()?).ok()?;
        if len == 0 || len > MAX_MESSAGE_LEN {
            return None;
        }
        let body = r.take(len)?;
        let whole = payload.get(start..payload.len() - r.remaining())?;
        let mut b = Cur { data: body };
        let id = b.int()?;
        if id < 0 {
            let def = id.checked_neg()?;
            if canon.is_none() {
                canon = Some(Canon::for_base(def)?);
            }
            let c = canon.as_deref()?;
            if def == c.peer_id && !have_peer && whole == c.peer_def {
                have_peer = true;
            } else if def == c.slice_id && !have_slice && whole == c.slice_def {
                have_slice = true;
            } else if def == c.conn_id && !have_conn && whole == c.conn_def {
                have_conn = true;
            } else {
                return None;
            }
            continue;
        }
        let c = canon.as_deref()?;
        let mut budget = MAX_ELEMENTS;
        if id == c.peer_id && have_peer && pending.is_none() {
            pending = Some(read_peer_summary(&mut b, &mut budget)?);
        } else if id == c.slice_id && have_slice && have_conn {
            let mut record = pending.take()?;
            if b.uint()? != 0 {
                return None;
            }
            let n = b.count()?;
            charge(&mut budget, n)?;
            record.connections.reserve_exact(n);
            for _ in 0..n {
                record
                    .connections
                    .push(read_connection(&mut b, &mut budget)?);
            }
            out.push(record);
        } else {
            return None;
        }
        if !b.is_empty() {
            return None;
        }
    }
    if pending.is_some() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Appendix A, vector D.
    const VECTOR_D: &str = "62ff830301010b7065657253756d6d61727901ff8400010601084e616d6542797465010a0001084e69636b4e616d6501
0c000103554944010600010756657273696f6e010600010753686f72744944010600010a48617353686f727449440102
00000024ff840106123456789abc0105686f73743101f80102030405060708010301fe01230101000dff87020102ff88
0001ff8600005bff8503010111636f6e6e656374696f6e53756d6d61727901ff8600010401084e616d6542797465010a
00010d52656d6f746554435041646472010c0001084f7574626f756e64010200010b45737461626c6973686564010200
000020ff8800010106deadbeef0001010d31302e302e302e323a3637383301010101001cff840106deadbeef00010105
686f737432012a010101fe04560101001fff8800010106123456789abc010e31302e302e302e313a3433323130020100";

    #[test]
    fn decodes_vector_d() {
        let updates = decode_topology(&hex(VECTOR_D)).unwrap();
        assert_eq!(updates.len(), 2);
        let p1 = &updates[0];
        assert_eq!(p1.summary.name().unwrap().to_string(), "12:34:56:78:9a:bc");
        assert_eq!(p1.summary.nick_name, "host1");
        assert_eq!(p1.summary.uid, 0x0102030405060708);
        assert_eq!((p1.summary.version, p1.summary.short_id), (3, 0x123));
        assert!(p1.summary.has_short_id);
        assert_eq!(p1.connections.len(), 1);
        assert_eq!(p1.connections[0].remote_tcp_addr, "10.0.0.2:6783");
        assert!(p1.connections[0].outbound && p1.connections[0].established);
        let p2 = &updates[1];
        assert_eq!((p2.summary.uid, p2.summary.short_id), (42, 0x456));
        assert_eq!(p2.connections[0].remote_tcp_addr, "10.0.0.1:43210");
        assert!(!p2.connections[0].outbound && p2.connections[0].established);
        // Our encoding decodes to the same update.
        assert_eq!(
            decode_topology(&encode_topology(&updates)).unwrap(),
            updates
        );
    }

    #[test]
    fn vector_d_takes_the_fast_path_and_round_trips_byte_exact() {
        let d = hex(VECTOR_D);
        // Weave numbered its types from 66; the fast path recognises any first id.
        let fast = decode_topology_fast(&d).expect("vector D is in the canonical shape");
        assert_eq!(fast, decode_topology_generic(&d).unwrap());
        // Re-encoded from a Go peer whose first type id is 66, the bytes are Weave's own.
        let peer_ty = peer_summary_type();
        let conns_ty = GobType::slice(connection_summary_type());
        let mut enc = Encoder::with_first_type_id(66);
        let generic66 = {
            for u in &fast {
                let ours = decode_generic_values(&encode_topology_generic(std::slice::from_ref(u)));
                enc.encode(&peer_ty, &ours[0]).unwrap();
                enc.encode(&conns_ty, &ours[1]).unwrap();
            }
            enc.into_bytes()
        };
        assert_eq!(generic66, d);
    }

    fn decode_generic_values(bytes: &[u8]) -> Vec<Value> {
        Decoder::new(bytes).map(|d| d.unwrap().value).collect()
    }

    fn sample_updates() -> Vec<Vec<PeerUpdate>> {
        let mut big = Vec::new();
        for i in 0..40u64 {
            big.push(PeerUpdate {
                summary: PeerSummary {
                    name_byte: (i * 7919).to_be_bytes()[2..].to_vec(),
                    nick_name: format!("host-{i}-\u{e9}"),
                    uid: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    version: i * 300,
                    short_id: i * 97 % 4096,
                    has_short_id: i % 3 != 0,
                },
                connections: (0..(i % 12))
                    .map(|j| ConnectionSummary {
                        name_byte: (j * 31 + i).to_be_bytes()[2..].to_vec(),
                        remote_tcp_addr: if j % 5 == 0 {
                            String::new()
                        } else {
                            format!("10.{i}.{j}.1:{}", 6783 + j)
                        },
                        outbound: j % 2 == 0,
                        established: j % 3 != 0,
                    })
                    .collect(),
            });
        }
        vec![
            Vec::new(),
            vec![PeerUpdate::default()],
            decode_topology_generic(&hex(VECTOR_D)).unwrap(),
            big,
        ]
    }

    #[test]
    fn fast_encoder_is_byte_identical_to_the_gob_encoder() {
        for update in sample_updates() {
            let fast = encode_topology(&update);
            assert_eq!(fast, encode_topology_generic(&update));
            // And it decodes with weft_gob's generic Decoder, as well as with the fast path.
            assert_eq!(decode_topology_generic(&fast).unwrap(), update);
            assert_eq!(decode_topology_fast(&fast).unwrap(), update);
            assert!(Decoder::new(&fast).all(|d| d.is_ok()));
        }
    }

    #[test]
    fn encode_peers_matches_the_incremental_update() {
        use crate::topology::Peers;
        let mut t = Peers::new(PeerName::from_bytes([2, 0, 0, 0, 0, 1]), "me", 77, 12);
        let mut rng = |b: u64| 7 % b;
        for update in sample_updates().into_iter().skip(2) {
            let good: Vec<PeerUpdate> = update
                .into_iter()
                .filter(|u| u.summary.name().is_ok())
                .collect();
            let _ = t.apply_update(&good, &mut rng);
        }
        let names: Vec<PeerName> = t.names().collect();
        assert!(names.len() > 10);
        let picked: Vec<PeerName> = names.iter().copied().step_by(3).collect();
        assert_eq!(
            encode_peers(&t, &picked),
            encode_topology(&t.incremental_update(&picked))
        );
        assert_eq!(encode_peers(&t, &names), encode_topology(&t.full_update()));
    }

    #[test]
    fn odd_but_valid_payloads_fall_back_and_agree() {
        let d = hex(VECTOR_D);
        // A stream with an extra, unused definition is not canonical: generic path, same answer.
        let extra = [
            &[
                0x0c, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0x06, 0x00, 0x00,
            ][..],
            &d[..],
        ]
        .concat();
        assert!(decode_topology_fast(&extra).is_none());
        assert_eq!(decode_topology(&extra), decode_topology_generic(&d));
        // Truncations: the fast path never answers differently from the generic one.
        for cut in 0..d.len() {
            let part = &d[..cut];
            if let Some(fast) = decode_topology_fast(part) {
                assert_eq!(Ok(fast), decode_topology_generic(part), "cut at {cut}");
            }
            assert_eq!(decode_topology(part), decode_topology_generic(part));
        }
    }

    #[test]
    fn hostile_payloads_are_errors() {
        for bad in [&b"\x03\x06\x00\x01"[..], b"\xff\xff\xff", b""] {
            let r = decode_topology(bad);
            assert!(r.is_err() || r.unwrap().is_empty());
        }
    }
}
