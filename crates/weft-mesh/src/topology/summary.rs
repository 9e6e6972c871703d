//! The decoded form of a topology gossip payload (reference §3.3).
//!
//! A payload is a gob stream of pairs: one `peerSummary` value followed by one
//! `[]connectionSummary` value, per peer. These structs mirror the two gob types field for field
//! (same names in snake case, same gob kinds: `[]byte` → `Vec<u8>`, `string` → `String`,
//! `uint` → `u64`, `bool` → `bool`), so the codec glue is a plain field copy. Gob omits zero
//! fields; a missing field decodes as the zero value, which is what `Default` gives.

use crate::PeerName;

use super::TopologyError;

/// Mirror of Weave's `peerSummary` gob struct: one peer's record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerSummary {
    /// `NameByte`: the 6 raw bytes of the peer name.
    pub name_byte: Vec<u8>,
    /// `NickName`: free text (usually the host name).
    pub nick_name: String,
    /// `UID`: the peer's incarnation; 0 only for placeholders.
    pub uid: u64,
    /// `Version`: bumped by the peer on every change to its own record.
    pub version: u64,
    /// `ShortID`: 12-bit fastdp identifier (gob `uint`; Weave decodes it into a `uint16`).
    pub short_id: u64,
    /// `HasShortID`: whether `short_id` is meaningful.
    pub has_short_id: bool,
}

/// Mirror of Weave's `connectionSummary` gob struct: one connection of a peer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionSummary {
    /// `NameByte`: the 6 raw bytes of the remote peer's name.
    pub name_byte: Vec<u8>,
    /// `RemoteTCPAddr`: the remote's TCP address as this peer sees it (`ip:port`).
    pub remote_tcp_addr: String,
    /// `Outbound`: this peer dialled the connection.
    pub outbound: bool,
    /// `Established`: the overlay has proved the data path works.
    pub established: bool,
}

/// One peer's entry in a topology update: its summary and its connection list (in the gob
/// stream, the two consecutive top-level values). A topology update is a `Vec<PeerUpdate>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerUpdate {
    /// The `peerSummary` value.
    pub summary: PeerSummary,
    /// The `[]connectionSummary` value that follows it (may be empty, never absent).
    pub connections: Vec<ConnectionSummary>,
}

/// A borrowed view of a [`PeerUpdate`]: what the fast topology decoder produces straight from
/// the payload bytes, without copying names and addresses. [`Peers::apply_update_view`]
/// takes these; [`PeerUpdate::view`] and [`PeerUpdateView::to_owned_update`] convert.
///
/// [`Peers::apply_update_view`]: super::Peers::apply_update_view
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerUpdateView<'a> {
    /// `NameByte`.
    pub name_byte: &'a [u8],
    /// `NickName`.
    pub nick_name: &'a str,
    /// `UID`.
    pub uid: u64,
    /// `Version`.
    pub version: u64,
    /// `ShortID`.
    pub short_id: u64,
    /// `HasShortID`.
    pub has_short_id: bool,
    /// The connection list.
    pub connections: Vec<ConnectionView<'a>>,
}

/// A borrowed view of a [`ConnectionSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionView<'a> {
    /// `NameByte`.
    pub name_byte: &'a [u8],
    /// `RemoteTCPAddr`.
    pub remote_tcp_addr: &'a str,
    /// `Outbound`.
    pub outbound: bool,
    /// `Established`.
    pub established: bool,
}

impl PeerUpdate {
    /// Borrow this update as a view.
    pub fn view(&self) -> PeerUpdateView<'_> {
        let s = &self.summary;
        PeerUpdateView {
            name_byte: &s.name_byte,
            nick_name: &s.nick_name,
            uid: s.uid,
            version: s.version,
            short_id: s.short_id,
            has_short_id: s.has_short_id,
            connections: self
                .connections
                .iter()
                .map(|c| ConnectionView {
                    name_byte: &c.name_byte,
                    remote_tcp_addr: &c.remote_tcp_addr,
                    outbound: c.outbound,
                    established: c.established,
                })
                .collect(),
        }
    }
}

impl PeerUpdateView<'_> {
    /// Copy into an owned [`PeerUpdate`].
    pub fn to_owned_update(&self) -> PeerUpdate {
        PeerUpdate {
            summary: PeerSummary {
                name_byte: self.name_byte.to_vec(),
                nick_name: self.nick_name.to_owned(),
                uid: self.uid,
                version: self.version,
                short_id: self.short_id,
                has_short_id: self.has_short_id,
            },
            connections: self
                .connections
                .iter()
                .map(|c| ConnectionSummary {
                    name_byte: c.name_byte.to_vec(),
                    remote_tcp_addr: c.remote_tcp_addr.to_owned(),
                    outbound: c.outbound,
                    established: c.established,
                })
                .collect(),
        }
    }
}

/// A peer name from a `NameByte` field.
pub(crate) fn name_from_bytes(bytes: &[u8]) -> Result<PeerName, TopologyError> {
    let six: [u8; 6] = bytes
        .try_into()
        .map_err(|_| TopologyError::BadNameLength { len: bytes.len() })?;
    Ok(PeerName::from_bytes(six))
}

impl PeerSummary {
    /// The peer name carried in `name_byte`, if it is well formed.
    pub fn name(&self) -> Result<PeerName, TopologyError> {
        name_from_bytes(&self.name_byte)
    }
}

impl ConnectionSummary {
    /// The remote peer name carried in `name_byte`, if it is well formed.
    pub fn name(&self) -> Result<PeerName, TopologyError> {
        name_from_bytes(&self.name_byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_six_bytes() {
        let ok = PeerSummary {
            name_byte: vec![0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc],
            ..Default::default()
        };
        assert_eq!(ok.name().unwrap().to_string(), "12:34:56:78:9a:bc");
        for len in [0usize, 5, 7, 8] {
            let bad = ConnectionSummary {
                name_byte: vec![1; len],
                ..Default::default()
            };
            assert_eq!(bad.name(), Err(TopologyError::BadNameLength { len }));
        }
    }
}
