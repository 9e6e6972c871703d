//! The `weave` bridge every container on this host attaches to (reference §6.1, §9.6):
//! ensured at start, idempotently, so a restarted router finds and keeps it. Its MAC is the
//! peer name, as Weave sets it; the sleeve-only bridge has MTU 65535. The router never
//! removes it: containers stay attached across restarts.

use weft_kernel::{Handle, MacAddr};
use weft_mesh::PeerName;

/// The bridge's name.
pub const BRIDGE: &str = "weave";
/// The MTU of a sleeve-only bridge (Weave's `bridge` mode).
pub const BRIDGE_MTU: u32 = 65535;

/// Create the bridge or bring an existing one to the wanted state.
pub fn ensure(name: PeerName) -> Result<(), weft_kernel::Error> {
    let mut h = Handle::new()?;
    h.ensure_bridge(BRIDGE, Some(MacAddr(name.to_bytes())), Some(BRIDGE_MTU))?;
    h.set_weave_sysctls(BRIDGE)?;
    Ok(())
}
