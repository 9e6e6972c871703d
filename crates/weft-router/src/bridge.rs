//! The `weave` bridge every container on this host attaches to (reference §6.1, §9.6), and
//! the router's capture device on it.
//!
//! The bridge is ensured at start, idempotently, so a restarted router finds and keeps it;
//! its MAC is the peer name, as Weave sets it. The router never removes it: containers stay
//! attached across restarts. Frames to and from other hosts leave and enter the bridge through
//! a TAP device (`vethwe-tap`) that lives only as long as the router holds it.
//!
//! MTU: Weave's sleeve-only bridge uses 65535 and relies on path MTU discovery and ICMP
//! "fragmentation needed" to fit frames into the sleeve. Until weft's edge does PMTU
//! discovery (it needs a DF socket), the bridge (and so every container's `ethwe`) uses the
//! largest MTU whose frames fit one sleeve datagram, encrypted or not: 65507 (UDP payload)
//! − 30 (encrypted sleeve header) − 14 (frame header) − 14 (Ethernet) = 65449. The host
//! stack fragments such datagrams on the underlay.

use weft_kernel::{Handle, MacAddr, Offload, Tap, TapConfig};
use weft_mesh::PeerName;

/// The bridge's name.
pub const BRIDGE: &str = "weave";
/// The capture device's name.
pub const TAP: &str = "vethwe-tap";
/// The MTU of the bridge and its ports (see the module docs).
pub const BRIDGE_MTU: u32 = 65449;

/// The MAC of an existing `weave` bridge: the name of the router that made it.
pub fn existing_mac() -> Option<PeerName> {
    let link = Handle::new().ok()?.link_by_name(BRIDGE).ok()??;
    if link.kind != weft_kernel::LinkKind::Bridge {
        return None;
    }
    link.mac.map(|m| PeerName::from_bytes(m.0))
}

/// Create the bridge or bring an existing one to the wanted state, and (re)create the TAP.
pub fn ensure(name: PeerName) -> Result<Tap, weft_kernel::Error> {
    let mut h = Handle::new()?;
    h.ensure_bridge(BRIDGE, Some(MacAddr(name.to_bytes())), Some(BRIDGE_MTU))?;
    h.set_weave_sysctls(BRIDGE)?;
    let (tap, _) = h.create_tap(&TapConfig {
        name: TAP.to_owned(),
        vnet_hdr: false,
        multi_queue: false,
        offload: Offload::default(),
        master: Some(BRIDGE.to_owned()),
        mtu: Some(BRIDGE_MTU),
        up: true,
    })?;
    Ok(tap)
}
