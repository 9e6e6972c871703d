//! The sleeve's sockets (reference §4.1): the shared UDP socket on the mesh port, with UDP
//! GSO sends and GRO receives for weft's segmented datagrams, and Weave's per-peer DF path —
//! a raw UDP socket with `IP_PMTUDISC_DO`, so a too-big datagram fails locally with
//! `EMSGSIZE` and the kernel's path MTU can be read back for PMTU discovery.
//!
//! Thin: decisions (what to send on which path, how to cut a datagram) are in `weft-sleeve`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use weft_sleeve::segment::{Header, MessageKeys, Plan, MAX_GSO_SEGMENTS};

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn set_int(fd: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: &impl AsRawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a valid fd, and pointers to an int and its length.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Environment variable that turns UDP GRO off on the sleeve socket when `0` (a diagnostic
/// knob: segments then arrive one by one, as on paths and NICs without GRO).
pub const GRO_ENV: &str = "WEFT_UDP_GRO";

/// Whether [`GRO_ENV`] allows UDP GRO (anything but `0`, or unset).
fn gro_wanted(value: Option<&str>) -> bool {
    value.map(str::trim) != Some("0")
}

/// Set up the shared sleeve socket: datagrams never carry DF (Weave's main socket; the host
/// stack fragments big non-DF datagrams), and received runs of equal-sized datagrams may
/// arrive coalesced (UDP GRO, unless [`GRO_ENV`] is `0`). Returns whether GRO is on.
pub fn configure_shared(udp: &UdpSocket) -> bool {
    if let Err(e) = set_int(
        udp,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    ) {
        tracing::warn!("sleeve socket: cannot turn off DF: {e}");
    }
    if !gro_wanted(std::env::var(GRO_ENV).ok().as_deref()) {
        tracing::info!("{GRO_ENV}=0: UDP GRO is off on the sleeve socket");
        return false;
    }
    setsockopt(udp, sockopt::UdpGroSegment, &true).is_ok()
}

/// One receive: bytes, sender, and the size of each datagram in the buffer (several
/// equal-sized datagrams when GRO coalesced them; the last may be shorter). A receive that
/// did not fit the buffer is an error of kind `InvalidData` (drop it whole: its last datagram
/// was cut).
pub fn try_recv(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
    udp.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(i32);
        let msg = recvmsg::<SockaddrIn>(
            udp.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(errno)?;
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "receive larger than the buffer",
            ));
        }
        let mut seg = msg.bytes;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(n) = c {
                    if n > 0 {
                        seg = n as usize;
                    }
                }
            }
        }
        let from = msg
            .address
            .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
            .ok_or_else(|| io::Error::other("datagram without a source address"))?;
        Ok((msg.bytes, from, seg.max(1)))
    })
}

fn v4(to: SocketAddr) -> io::Result<SockaddrIn> {
    match to {
        SocketAddr::V4(a) => Ok(SockaddrIn::from(a)),
        SocketAddr::V6(_) => Err(io::Error::other("the sleeve is IPv4 only")),
    }
}

/// Send one datagram on the shared socket, waiting for room if the buffer is full.
pub async fn send_to(udp: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<()> {
    match udp.try_send_to(data, to) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => udp.send_to(data, to).await.map(drop),
        r => r.map(drop),
    }
}

/// A segmented send that failed after `sent` segments had gone out.
#[derive(Debug)]
pub struct SegmentsError {
    pub sent: usize,
    pub error: io::Error,
}

/// One datagram to send segmented.
pub struct Message<'a> {
    /// The sleeve datagram.
    pub data: &'a [u8],
    /// Its message id on the link.
    pub id: u64,
    /// Its segments' one-time MAC keys on an encrypted link (the plan is then tagged).
    pub keys: Option<&'a MessageKeys>,
}

/// Send `msg` to `to` cut into segments per `plan`, from segment `first` on, `plan.per_send`
/// segments per UDP GSO send (one per send without `gso`). Headers and chunks go out as an
/// I/O vector: the message is not copied. `src`: the source address to send from (the local
/// address of the peer's TCP connection, so that segments come from the address the peer
/// knows us by, as heartbeats on the DF socket do); the route's choice when `None`.
pub async fn send_segments(
    udp: &UdpSocket,
    to: SocketAddr,
    src: Option<Ipv4Addr>,
    msg: &Message<'_>,
    plan: &Plan,
    gso: bool,
    mut first: usize,
) -> Result<(), SegmentsError> {
    let addr = v4(to).map_err(|error| SegmentsError { sent: first, error })?;
    let seg_size = plan.segment_len();
    let per_send = if gso { plan.per_send } else { 1 };
    let mut headers = [Header::default(); MAX_GSO_SEGMENTS];
    let pktinfo = src.map(|ip| libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    });
    while first < plan.count {
        let n = per_send.min(plan.count - first);
        for (k, h) in headers[..n].iter_mut().enumerate() {
            *h = plan.header(msg.id, first + k, msg.data, msg.keys);
        }
        let mut iov = [IoSlice::new(&[]); 2 * MAX_GSO_SEGMENTS];
        for k in 0..n {
            iov[2 * k] = IoSlice::new(headers[k].as_bytes());
            iov[2 * k + 1] = IoSlice::new(&msg.data[plan.chunk(first + k, msg.data.len())]);
        }
        let iov = &iov[..2 * n];
        let gso_size = seg_size as u16;
        let mut cmsg_buf = [ControlMessage::UdpGsoSegments(&gso_size); 2];
        let mut cmsgs = 0;
        if n > 1 {
            cmsgs += 1;
        }
        if let Some(info) = &pktinfo {
            cmsg_buf[cmsgs] = ControlMessage::Ipv4PacketInfo(info);
            cmsgs += 1;
        }
        let cmsgs = &cmsg_buf[..cmsgs];
        let send = || {
            sendmsg(
                udp.as_raw_fd(),
                iov,
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
                Some(&addr),
            )
            .map_err(errno)
        };
        let r = match udp.try_io(Interest::WRITABLE, send) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                udp.async_io(Interest::WRITABLE, send).await
            }
            r => r,
        };
        if let Err(error) = r {
            return Err(SegmentsError { sent: first, error });
        }
        first += n;
    }
    Ok(())
}

/// Weave's DF path to one peer: a raw UDP socket connected to the peer's IP with
/// `IP_PMTUDISC_DO`. The UDP header is ours: source port = the mesh port, checksum 0 (as
/// Weave sends it). Everything the raw socket would receive is dropped by a filter.
/// Send buffer of each DF socket.
const DF_SEND_BUFFER: i32 = 4 << 20;

pub struct DfSocket {
    fd: OwnedFd,
    remote: SocketAddrV4,
    src_port: u16,
}

/// Why a DF send failed.
#[derive(Debug)]
pub enum DfError {
    /// Larger than the path MTU (`EMSGSIZE`); the kernel's path MTU for the peer.
    TooBig(u16),
    Io(io::Error),
}

impl DfSocket {
    pub fn open(local: Option<Ipv4Addr>, remote: SocketAddrV4, src_port: u16) -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_UDP,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_int(
            &fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        // A raw UDP socket gets a copy of every UDP packet the host receives: keep none.
        let mut drop_all = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: drop_all.as_mut_ptr(),
        };
        // SAFETY: a valid fd and a filter program that outlives the call.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // Whatever arrived before the filter was attached.
        let mut scratch = [0u8; 2048];
        // SAFETY: a valid fd and a buffer of the length given.
        while unsafe {
            libc::recv(
                fd.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        } >= 0
        {}
        // DF data to a Weave peer goes out here in bursts: room as on the shared socket.
        if let Err(e) = set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, DF_SEND_BUFFER) {
            tracing::debug!("DF socket: cannot enlarge the send buffer: {e}");
        }
        if let Some(ip) = local {
            nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)))
                .map_err(errno)?;
        }
        nix::sys::socket::connect(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(*remote.ip(), 0)),
        )
        .map_err(errno)?;
        Ok(DfSocket {
            fd,
            remote,
            src_port,
        })
    }

    /// The peer address this socket sends to.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// The kernel's path MTU to the peer (IP packet size).
    pub fn path_mtu(&self) -> io::Result<u16> {
        let m = get_int(&self.fd, libc::IPPROTO_IP, libc::IP_MTU)?;
        Ok(u16::try_from(m).unwrap_or(u16::MAX))
    }

    /// Send one DF datagram. A full socket buffer drops it (`WouldBlock`), as a congested
    /// link would.
    pub fn send(&self, payload: &[u8]) -> Result<(), DfError> {
        let len =
            u16::try_from(payload.len() + 8).map_err(|_| DfError::TooBig(self.mtu_or_max()))?;
        let mut udp = [0u8; 8];
        udp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.remote.port().to_be_bytes());
        udp[4..6].copy_from_slice(&len.to_be_bytes());
        let iov = [IoSlice::new(&udp), IoSlice::new(payload)];
        match nix::sys::uio::writev(self.fd.as_fd(), &iov) {
            Ok(_) => Ok(()),
            Err(nix::Error::EMSGSIZE) => Err(DfError::TooBig(self.mtu_or_max())),
            Err(e) => Err(DfError::Io(errno(e))),
        }
    }

    fn mtu_or_max(&self) -> u16 {
        self.path_mtu().unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gro_is_off_only_when_asked() {
        assert!(gro_wanted(None));
        assert!(gro_wanted(Some("1")));
        assert!(gro_wanted(Some("")));
        assert!(!gro_wanted(Some("0")));
        assert!(!gro_wanted(Some(" 0\n")));
    }
}
