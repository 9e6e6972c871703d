//! # weft-kernel
//!
//! The one typed layer through which weft changes kernel network state: links (bridge,
//! veth, TAP), addresses, routes and per-interface sysctls, in the current network
//! namespace or any other, over a small synchronous rtnetlink socket.
//!
//! ## Idempotency contract
//!
//! A restarted router must *reconcile* what it finds, never rebuild it. Therefore:
//!
//! * **`ensure_*`** operations succeed when the object already exists as asked, change only
//!   the attributes that differ, and fail with [`Error::Conflict`] when the name is held by
//!   an object of another kind (weft never deletes something it did not ask for).
//!   `ensure_addr` returns whether it added the address.
//! * **Removals** (`delete_link`, `remove_addr`, `remove_route`) succeed when the object is
//!   already absent and return whether they removed something.
//! * **No half-configured state**: operations check their prerequisites (bridge exists and is
//!   a bridge, names and MACs valid, namespace opened) before creating anything; an object
//!   created by a call is deleted again if a later step of that call fails. A veth pair is
//!   created in one `RTM_NEWLINK` with its peer already inside the target namespace, so
//!   there is no moment when the peer sits in the wrong namespace.
//! * **Namespaces**: work in another namespace happens on a short-lived helper thread that
//!   calls `setns`; the caller's threads never change namespace. A [`Handle`] opened with
//!   [`Handle::in_netns`] keeps a socket created inside that namespace.
//!
//! Firewall rules are nftables only, in weft's own tables ([`nft`]): a typed [`nft::Ruleset`]
//! applied in one `nft -f` transaction.
//!
//! Errors carry the operation, the object and the errno ([`Error::errno`]). Kernel replies
//! are checked against the request's sequence number, and no reply is trusted with an
//! `unwrap`.

mod arp;
mod error;
mod handle;
mod msg;
mod netns;
pub mod nft;
mod socket;
mod tap;
mod types;

pub use arp::send_gratuitous_arp;
pub use error::{Error, Result};
pub use handle::{
    link_sysctl_path, validate_ifname, Handle, IpFamily, SysctlSection, VethPair,
    WEAVE_NEIGH_SYSCTLS,
};
pub use netns::Netns;
pub use tap::{Offload, Tap, TapConfig};
pub use types::{Cidr, IfAddr, Link, LinkKind, MacAddr, Route, Scope};
