//! Errors of the topology core.

use crate::PeerName;

/// Why a topology update or a local topology operation was refused.
///
/// An update that fails validation is rejected as a whole, before anything is applied, just as
/// Weave drops an update whose gob stream fails to decode part-way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A `NameByte` field (peer or connection) was not exactly six bytes.
    ///
    /// Weave folds any byte string into an integer; weft insists on the six bytes every Weave
    /// peer actually sends, because a longer name cannot be a 48-bit [`PeerName`].
    #[error("topology update: NameByte has {len} bytes, expected 6")]
    BadNameLength {
        /// The length that was found.
        len: usize,
    },
    /// A `ShortID` did not fit the 16-bit field Weave decodes it into.
    #[error("topology update: ShortID {0} of peer {1} overflows 16 bits")]
    ShortIdOverflow(u64, PeerName),
    /// Applying the update would grow the peer table past its cap
    /// ([`Peers::set_max_peers`](super::Peers::set_max_peers)); nothing was applied.
    #[error("topology update would add {new} peers to {known}, over the limit of {limit}")]
    TooManyPeers {
        /// The cap.
        limit: usize,
        /// Peers in the table before the update.
        known: usize,
        /// Names the update would have added.
        new: usize,
    },
    /// A local operation named a peer that is not in the table.
    #[error("peer {0} is not in the peer table")]
    UnknownPeer(PeerName),
    /// A local operation named a connection the local peer does not have.
    #[error("the local peer has no connection to {0}")]
    NoSuchConnection(PeerName),
    /// A local operation tried to connect the local peer to itself.
    #[error("cannot connect the local peer {0} to itself")]
    SelfConnection(PeerName),
    /// [`dereference`](super::Peers::dereference) on a peer whose local reference count is 0.
    #[error("peer {0} has no local references to release")]
    NotReferenced(PeerName),
}
