//! Forwarding decisions (reference §4.8, §7), as Weave's `NetworkRouter` makes them.
//!
//! **Captured from the local bridge** ([`Switch::handle_captured`]):
//! 1. learn srcMAC → us without overriding; if another peer owns it, drop (probably our own
//!    injected frame coming back);
//! 2. drop STP (`01:80:c2:00:00:00`);
//! 3. dstMAC owned by us: drop (the bridge delivers it); unknown (every group MAC): flood,
//!    one `Send` per hop of `broadcast(us)` with dst peer = that hop; owned by remote R:
//!    `Send` to `unicast(R)` with (us, R); no route: drop.
//!
//! **Received from the overlay** with header (S, D) ([`Switch::handle_overlay`]):
//! * S or D not a known peer: drop;
//! * D ≠ us: relay to `unicast(D)` keeping (S, D) (multi-hop); no route: drop;
//! * D = us: force-learn srcMAC → S, `Inject`; then, unless dstMAC is ours, keep flooding S's
//!   tree: one `Send` per hop of `broadcast(S)` with dst peer = that hop.
//!
//! Actions go into a caller-owned `Vec<Action>` that is cleared first: reuse it and there is
//! no allocation per frame. `Send` does not copy the frame; the caller sends the frame it
//! passed in. Whether the next hop has a connection, and the per-link MTU handling
//! ([`crate::toobig::plan_send`]), are the caller's next step.

use std::time::Instant;

use weft_mesh::topology::{Peers, Routes};
use weft_mesh::PeerName;

use crate::frame::{EthFrame, FrameError, Mac};
use crate::mac::{Learned, MacCache};

/// What the routing tables say, as the switch needs it.
pub trait RouteView {
    /// Data-plane next hop towards `dst` (`None`: unreachable, or `dst` is us).
    fn unicast(&self, dst: PeerName) -> Option<PeerName>;
    /// Data-plane broadcast hops for a frame from `src` (`Routes::broadcast`).
    fn broadcast(&self, src: PeerName) -> &[PeerName];
    /// Whether `peer` is in the peer table.
    fn is_known(&self, peer: PeerName) -> bool;
}

/// The peer table and routes of the local peer.
#[derive(Clone, Copy)]
pub struct MeshRoutes<'a> {
    pub peers: &'a Peers,
    pub routes: &'a Routes,
}

impl RouteView for MeshRoutes<'_> {
    fn unicast(&self, dst: PeerName) -> Option<PeerName> {
        self.routes.unicast(dst)
    }
    fn broadcast(&self, src: PeerName) -> &[PeerName] {
        self.routes.broadcast(src)
    }
    fn is_known(&self, peer: PeerName) -> bool {
        self.peers.contains(peer)
    }
}

/// Why a frame (or one copy of it) is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed frame: {0}")]
    Malformed(#[from] FrameError),
    #[error("captured frame from MAC {mac} owned by peer {owner}")]
    MacOwnedElsewhere { mac: Mac, owner: PeerName },
    #[error("spanning tree frame")]
    Stp,
    #[error("destination MAC is local")]
    LocalDestination,
    #[error("no route to peer {0}")]
    NoRoute(PeerName),
    #[error("nowhere to flood")]
    NoBroadcastHops,
    #[error("unknown source peer {0}")]
    UnknownSrcPeer(PeerName),
    #[error("unknown destination peer {0}")]
    UnknownDstPeer(PeerName),
}

/// One thing to do with the frame just handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Inject the frame into the local bridge.
    Inject,
    /// Send the frame to `next_hop` with sleeve header (`src_peer`, `dst_peer`).
    /// `broadcast`: a flooded copy (a too-big DF frame is then dropped, not answered).
    Send {
        next_hop: PeerName,
        src_peer: PeerName,
        dst_peer: PeerName,
        broadcast: bool,
    },
    /// Drop the frame.
    Drop(DropReason),
}

/// The switch of one peer: its name and MAC cache.
#[derive(Debug, Clone)]
pub struct Switch {
    local: PeerName,
    macs: MacCache,
}

impl Switch {
    pub fn new(local: PeerName, macs: MacCache) -> Switch {
        Switch { local, macs }
    }

    pub fn local(&self) -> PeerName {
        self.local
    }

    pub fn macs(&self) -> &MacCache {
        &self.macs
    }

    /// Expire old MACs (call every [`crate::mac::MAC_SWEEP_INTERVAL`]).
    pub fn sweep(&mut self, now: Instant) -> usize {
        self.macs.sweep(now)
    }

    /// Forget the MACs of a garbage-collected peer.
    pub fn forget_peer(&mut self, peer: PeerName) -> usize {
        self.macs.delete_peer(peer)
    }

    /// A frame captured from the local bridge. Returns what learning its source did.
    pub fn handle_captured(
        &mut self,
        now: Instant,
        routes: &impl RouteView,
        frame: &[u8],
        out: &mut Vec<Action>,
    ) -> Learned {
        out.clear();
        let eth = match EthFrame::parse(frame) {
            Ok(e) => e,
            Err(e) => {
                out.push(Action::Drop(e.into()));
                return Learned::Known;
            }
        };
        let learned = self.macs.add(now, eth.src, self.local);
        if let Learned::Conflict { owner } = learned {
            out.push(Action::Drop(DropReason::MacOwnedElsewhere {
                mac: eth.src,
                owner,
            }));
            return learned;
        }
        if eth.dst == Mac::STP {
            out.push(Action::Drop(DropReason::Stp));
            return learned;
        }
        match self.macs.lookup(eth.dst) {
            Some(p) if p == self.local => out.push(Action::Drop(DropReason::LocalDestination)),
            None => self.flood(routes, self.local, out),
            Some(remote) => out.push(match routes.unicast(remote) {
                Some(next_hop) => Action::Send {
                    next_hop,
                    src_peer: self.local,
                    dst_peer: remote,
                    broadcast: false,
                },
                None => Action::Drop(DropReason::NoRoute(remote)),
            }),
        }
        learned
    }

    /// A frame received from the overlay with sleeve header (`src_peer`, `dst_peer`).
    /// Returns what learning its source did (`Known` when not learned at all).
    pub fn handle_overlay(
        &mut self,
        now: Instant,
        routes: &impl RouteView,
        src_peer: PeerName,
        dst_peer: PeerName,
        frame: &[u8],
        out: &mut Vec<Action>,
    ) -> Learned {
        out.clear();
        if !routes.is_known(src_peer) {
            out.push(Action::Drop(DropReason::UnknownSrcPeer(src_peer)));
            return Learned::Known;
        }
        if !routes.is_known(dst_peer) {
            out.push(Action::Drop(DropReason::UnknownDstPeer(dst_peer)));
            return Learned::Known;
        }
        let eth = match EthFrame::parse(frame) {
            Ok(e) => e,
            Err(e) => {
                out.push(Action::Drop(e.into()));
                return Learned::Known;
            }
        };
        if dst_peer != self.local {
            out.push(match routes.unicast(dst_peer) {
                Some(next_hop) => Action::Send {
                    next_hop,
                    src_peer,
                    dst_peer,
                    broadcast: false,
                },
                None => Action::Drop(DropReason::NoRoute(dst_peer)),
            });
            return Learned::Known;
        }
        let learned = self.macs.add_forced(now, eth.src, src_peer);
        out.push(Action::Inject);
        if self.macs.lookup(eth.dst) != Some(self.local) {
            for &hop in routes.broadcast(src_peer) {
                out.push(Action::Send {
                    next_hop: hop,
                    src_peer,
                    dst_peer: hop,
                    broadcast: true,
                });
            }
        }
        learned
    }

    fn flood(&self, routes: &impl RouteView, src: PeerName, out: &mut Vec<Action>) {
        let hops = routes.broadcast(src);
        if hops.is_empty() {
            out.push(Action::Drop(DropReason::NoBroadcastHops));
        }
        for &hop in hops {
            out.push(Action::Send {
                next_hop: hop,
                src_peer: src,
                dst_peer: hop,
                broadcast: true,
            });
        }
    }
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
