//! weft's weaveDNS core (reference weave-services.md §4.1–4.3).
//!
//! * [`wire`]: the data of the `nameserver` gossip channel (`GossipData`, `Entry`) as plain
//!   Rust data; [`codec`] turns it into Go gob bytes and back (total, bounded decoder).
//! * [`records`]: the record store as Weave's `Entries`: add, tombstone (our origin only),
//!   merge of received gossip (clock-skew check, unknown origins dropped, corrections of
//!   entries claiming our origin, version/tombstone rules), peer GC, tombstone expiry and the
//!   lookups the DNS server needs.
//! * [`answer`]: the DNS responder (A, PTR, NXDOMAIN/NOERROR-empty, truncation, what to
//!   forward upstream) as a pure function of the query bytes and the store.
//!
//! Pure: no sockets, clocks or threads. Times (unix seconds) are passed in by the caller.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod answer;
pub mod codec;
pub mod records;
pub mod wire;

pub use answer::{answer, AnswerConfig, Decision, Transport};
pub use codec::{decode_gossip, encode_gossip, CodecError, TypeIds};
pub use records::{Received, Records, RecordsError};
pub use wire::{Entry, GossipData};
