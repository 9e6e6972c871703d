//! TAP devices: the router's capture/injection port on the bridge for sleeve frames.
//!
//! A tiny `ioctl` wrapper over `/dev/net/tun` (no persistence: the device lives as long as
//! its queue file descriptors, so a router that dies leaves nothing behind and a restarted
//! router simply creates it again).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};
use crate::handle::{validate_ifname, Handle};
use crate::types::{Link, LinkKind};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_VNET_HDR: libc::c_short = 0x4000;
// _IOW('T', 202, int), _IOW('T', 208, unsigned int)
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

/// Offloads the kernel may hand to a `vnet_hdr` TAP reader (`TUNSETOFFLOAD`). With none
/// set, the kernel finishes checksums and segments before frames reach the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// `TUN_F_CSUM`: frames may carry partial checksums (described by the vnet header).
    pub csum: bool,
    /// `TUN_F_TSO4` (needs `csum`).
    pub tso4: bool,
    /// `TUN_F_TSO6` (needs `csum`).
    pub tso6: bool,
}

impl Offload {
    /// The `TUN_F_*` bits.
    pub fn bits(&self) -> libc::c_uint {
        let mut b = 0;
        if self.csum {
            b |= 0x01;
        }
        if self.tso4 {
            b |= 0x02;
        }
        if self.tso6 {
            b |= 0x04;
        }
        b
    }
    fn check(&self) -> Result<()> {
        if (self.tso4 || self.tso6) && !self.csum {
            return Err(Error::Invalid("TSO offload needs checksum offload".into()));
        }
        Ok(())
    }
}

/// What [`Handle::create_tap`] should produce.
#[derive(Clone, Debug, Default)]
pub struct TapConfig {
    /// Interface name.
    pub name: String,
    /// Frames are prefixed with a `virtio_net_hdr` (10 bytes), enabling offloads.
    pub vnet_hdr: bool,
    /// Multi-queue device: more queues can be opened with [`Tap::open_queue`].
    pub multi_queue: bool,
    /// Offloads to enable (requires `vnet_hdr`).
    pub offload: Offload,
    /// Bridge to enslave the device to.
    pub master: Option<String>,
    /// MTU to set.
    pub mtu: Option<u32>,
    /// Bring the device up.
    pub up: bool,
}

impl TapConfig {
    /// A plain TAP called `name`.
    pub fn new(name: &str) -> Self {
        TapConfig {
            name: name.to_string(),
            ..Default::default()
        }
    }
    fn flags(&self) -> libc::c_short {
        let mut f = IFF_TAP | IFF_NO_PI;
        if self.vnet_hdr {
            f |= IFF_VNET_HDR;
        }
        if self.multi_queue {
            f |= IFF_MULTI_QUEUE;
        }
        f
    }
}

#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn open_queue(name: &str, flags: libc::c_short) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| Error::io("open /dev/net/tun", name, e))?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads (and writes back) a `struct ifreq`; `req` is one of the
    // right size and layout and outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if rc < 0 {
        return Err(Error::io(
            "TUNSETIFF",
            name,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

fn set_offload(fd: RawFd, name: &str, offload: Offload) -> Result<()> {
    offload.check()?;
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    let rc = unsafe { libc::ioctl(fd, TUNSETOFFLOAD as _, offload.bits() as libc::c_ulong) };
    if rc < 0 {
        return Err(Error::io(
            "TUNSETOFFLOAD",
            name,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// An open TAP device (its first queue). Dropping every queue removes the device.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    flags: libc::c_short,
}

impl Tap {
    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The queue's file: read one frame per `read`, write one frame per `write`.
    pub fn file(&self) -> &File {
        &self.file
    }
    /// Gives up the queue's descriptor (e.g. to hand it to an async runtime).
    pub fn into_fd(self) -> OwnedFd {
        self.file.into()
    }
    /// Whether frames carry a `virtio_net_hdr`.
    pub fn vnet_hdr(&self) -> bool {
        self.flags & IFF_VNET_HDR != 0
    }
    /// Changes the offloads (requires `vnet_hdr`).
    pub fn set_offload(&self, offload: Offload) -> Result<()> {
        if !self.vnet_hdr() && offload != Offload::default() {
            return Err(Error::Invalid("offloads need a vnet_hdr TAP".into()));
        }
        set_offload(self.file.as_raw_fd(), &self.name, offload)
    }
    /// Opens one more queue of a multi-queue device. `handle` must be in the device's
    /// namespace.
    pub fn open_queue(&self, handle: &Handle) -> Result<Tap> {
        if self.flags & IFF_MULTI_QUEUE == 0 {
            return Err(Error::Invalid(format!("{} is not multi-queue", self.name)));
        }
        let (name, flags) = (self.name.clone(), self.flags);
        let file = handle.run_in(move || open_queue(&name, flags))??;
        Ok(Tap {
            file,
            name: self.name.clone(),
            flags: self.flags,
        })
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Handle {
    /// Creates (or, for a multi-queue device that already exists, joins) the TAP device
    /// `cfg.name` in this handle's namespace, sets offloads, MTU, master and state. A name
    /// held by a non-TUN link gives [`Error::Conflict`]. On any error the descriptor is
    /// closed, which removes a device created here.
    pub fn create_tap(&mut self, cfg: &TapConfig) -> Result<(Tap, Link)> {
        validate_ifname(&cfg.name)?;
        cfg.offload.check()?;
        if !cfg.vnet_hdr && cfg.offload != Offload::default() {
            return Err(Error::Invalid("offloads need vnet_hdr".into()));
        }
        if let Some(l) = self.link_by_name(&cfg.name)? {
            if l.kind != LinkKind::Tun {
                return Err(Error::Conflict {
                    name: cfg.name.clone(),
                    wanted: "tap".into(),
                    found: l.kind.to_string(),
                });
            }
        }
        if let Some(b) = &cfg.master {
            // Checked before creating anything.
            self.require_link(b)?;
        }
        let (name, flags) = (cfg.name.clone(), cfg.flags());
        let file = self.run_in(move || open_queue(&name, flags))??;
        let tap = Tap {
            file,
            name: cfg.name.clone(),
            flags: cfg.flags(),
        };
        if cfg.vnet_hdr {
            tap.set_offload(cfg.offload)?;
        }
        if let Some(mtu) = cfg.mtu {
            self.set_mtu(&cfg.name, mtu)?;
        }
        if let Some(b) = &cfg.master {
            self.set_master(&cfg.name, b)?;
        }
        if cfg.up {
            self.set_up(&cfg.name)?;
        }
        let link = self.require_link(&cfg.name)?;
        Ok((tap, link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_offload_bits() {
        let mut c = TapConfig::new("weft-tap");
        assert_eq!(c.flags(), IFF_TAP | IFF_NO_PI);
        c.vnet_hdr = true;
        c.multi_queue = true;
        assert_eq!(
            c.flags(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let o = Offload {
            csum: true,
            tso4: true,
            tso6: true,
        };
        assert_eq!(o.bits(), 0x07);
        assert!(Offload {
            csum: false,
            tso4: true,
            tso6: false
        }
        .check()
        .is_err());
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }
}
