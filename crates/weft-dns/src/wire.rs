//! The data of the `nameserver` gossip channel, as Weave 2.8.1 defines it
//! (`nameserver/entry.go`):
//!
//! ```go
//! type Entry struct {
//!     ContainerID string
//!     Origin      mesh.PeerName
//!     Addr        address.Address // uint32
//!     Hostname    string
//!     lHostname   string          // not sent
//!     Version     int
//!     Tombstone   int64           // unix seconds when deleted, 0 = live
//! }
//! type Entries []Entry
//! type GossipData struct {
//!     Timestamp int64
//!     Entries                      // embedded: the field is named "Entries"
//! }
//! ```

use std::net::Ipv4Addr;

use weft_mesh::PeerName;

/// One weaveDNS record. The key is (hostname as registered, origin, container id, address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The container the name belongs to (a 64-hex docker id, or whatever the caller gave).
    pub container_id: String,
    /// The peer that registered the name: only it may tombstone the entry.
    pub origin: PeerName,
    /// The container's address.
    pub addr: Ipv4Addr,
    /// The name as registered (fully qualified, with its trailing dot and its case).
    pub hostname: String,
    /// Bumped by the origin on every change (tombstone, un-tombstone, correction).
    pub version: i64,
    /// Unix seconds of the deletion; 0 while the entry is live.
    pub tombstone: i64,
}

impl Entry {
    /// Whether the entry is live (not tombstoned).
    pub fn is_live(&self) -> bool {
        self.tombstone == 0
    }
}

/// The payload of every `nameserver` gossip message (periodic gossip, broadcast, update).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GossipData {
    /// The sender's clock (unix seconds) when it built the message.
    pub timestamp: i64,
    /// The entries, in the order they travel.
    pub entries: Vec<Entry>,
}
