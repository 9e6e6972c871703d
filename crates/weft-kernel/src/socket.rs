//! A small synchronous rtnetlink socket: one request at a time, sequence-checked replies,
//! acknowledged requests and complete dumps.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

/// `NLM_F_DUMP_INTR`: the dump was interrupted by a concurrent change and may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// How often an interrupted dump is retried before giving up.
const DUMP_RETRIES: usize = 5;

/// Serializes one request with the given flags and sequence number.
pub(crate) fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// What one received datagram told us.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Inner messages belonging to our sequence number.
    pub messages: Vec<RouteNetlinkMessage>,
    /// The exchange is over (ACK received, or `NLMSG_DONE` for a dump).
    pub finished: bool,
    /// Some part of a dump carried `NLM_F_DUMP_INTR`.
    pub interrupted: bool,
}

/// Splits a datagram into netlink messages and keeps those answering `seq`. Messages for
/// other sequence numbers (late parts of an abandoned exchange) are skipped. A negative
/// errno is returned as `Err(errno)` wrapped in our error type.
pub(crate) fn parse_datagram(
    data: &[u8],
    seq: u32,
    op: &'static str,
    target: &str,
) -> Result<Chunk> {
    let mut chunk = Chunk::default();
    let mut offset = 0usize;
    while offset < data.len() {
        let rest = &data[offset..];
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
            .map_err(|e| Error::protocol(op, target, format!("decode: {e}")))?;
        let len = msg.header.length as usize;
        if len < 16 || len > rest.len() {
            return Err(Error::protocol(
                op,
                target,
                format!("message length {len} with {} bytes left", rest.len()),
            ));
        }
        offset += (len + 3) & !3;
        if msg.header.sequence_number != seq {
            continue;
        }
        if msg.header.flags & NLM_F_DUMP_INTR != 0 {
            chunk.interrupted = true;
        }
        match msg.payload {
            NetlinkPayload::Error(e) => {
                let code = e.raw_code();
                if code != 0 {
                    return Err(Error::kernel(op, target, code.abs()));
                }
                chunk.finished = true;
            }
            NetlinkPayload::Done(d) => {
                if d.code != 0 {
                    return Err(Error::kernel(op, target, d.code.abs()));
                }
                chunk.finished = true;
            }
            NetlinkPayload::InnerMessage(m) => chunk.messages.push(m),
            NetlinkPayload::Noop => {}
            NetlinkPayload::Overrun(_) => {
                return Err(Error::protocol(op, target, "overrun"));
            }
            other => {
                return Err(Error::protocol(
                    op,
                    target,
                    format!("unexpected message type {}", other.message_type()),
                ));
            }
        }
    }
    Ok(chunk)
}

/// A connected `NETLINK_ROUTE` socket in the namespace it was created in.
pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// `recv` into `buf`, retried on `EINTR`.
fn recv_raw(fd: std::os::fd::RawFd, buf: &mut [u8], flags: libc::c_int) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl NlSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let op = "open netlink socket";
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(op, "", e))?;
        sock.bind_auto().map_err(|e| Error::io(op, "bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io(op, "connect", e))?;
        // Extended acks only improve messages; strict checking makes the kernel filter
        // address dumps by interface. Neither is essential, so failures are ignored.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        Ok(NlSocket {
            sock,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    fn send(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let buf = encode(msg, flags, self.seq);
        let n = self
            .sock
            .send(&buf, 0)
            .map_err(|e| Error::io(op, target, e))?;
        if n != buf.len() {
            return Err(Error::protocol(
                op,
                target,
                format!("short send {n}/{}", buf.len()),
            ));
        }
        Ok(self.seq)
    }

    fn receive(
        &mut self,
        seq: u32,
        op: &'static str,
        target: &str,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let data = self.recv_datagram().map_err(|e| Error::io(op, target, e))?;
            if data.is_empty() {
                return Err(Error::protocol(op, target, "empty datagram"));
            }
            let chunk = parse_datagram(data, seq, op, target)?;
            out.extend(chunk.messages);
            interrupted |= chunk.interrupted;
            if chunk.finished {
                return Ok((out, interrupted));
            }
        }
    }

    /// Receives one whole datagram, growing the buffer when the kernel's is larger.
    fn recv_datagram(&mut self) -> std::io::Result<&[u8]> {
        use std::os::fd::AsRawFd;
        let fd = self.sock.as_raw_fd();
        let wanted = recv_raw(fd, &mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)?;
        if wanted > self.buf.len() {
            self.buf.resize(wanted, 0);
        }
        let n = recv_raw(fd, &mut self.buf, 0)?;
        Ok(&self.buf[..n.min(self.buf.len())])
    }

    /// Sends a request that must be acknowledged; returns any messages the kernel sent
    /// before the ACK (e.g. the link for `RTM_GETLINK` by name).
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags, op, target)?;
        Ok(self.receive(seq, op, target)?.0)
    }

    /// Runs a dump to completion, retrying when the kernel reports it was interrupted.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.send(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, op, target)?;
            let (out, interrupted) = self.receive(seq, op, target)?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::protocol(op, target, "dump kept being interrupted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage};
    use netlink_packet_route::link::LinkMessage;
    use std::num::NonZeroI32;

    fn reply(payload: NetlinkPayload<RouteNetlinkMessage>, seq: u32) -> Vec<u8> {
        let mut h = NetlinkHeader::default();
        h.sequence_number = seq;
        let mut m = NetlinkMessage::new(h, payload);
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    #[test]
    fn encode_sets_header() {
        let b = encode(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_ACK,
            7,
        );
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 18); // RTM_GETLINK
        assert_eq!(
            u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
    }

    #[test]
    fn ack_error_and_stale_sequence() {
        let mut data = reply(
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(LinkMessage::default())),
            3,
        );
        data.extend(reply(
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(LinkMessage::default())),
            4,
        ));
        data.extend(reply(NetlinkPayload::Error(ErrorMessage::default()), 4));
        let c = parse_datagram(&data, 4, "t", "x").unwrap();
        assert_eq!(c.messages.len(), 1, "the seq-3 message is skipped");
        assert!(c.finished);

        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-libc::EEXIST);
        let data = reply(NetlinkPayload::Error(e), 9);
        let err = parse_datagram(&data, 9, "create", "weave").unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(err.to_string().contains("create weave"), "{err}");

        let data = reply(NetlinkPayload::Done(DoneMessage::default()), 2);
        assert!(parse_datagram(&data, 2, "t", "x").unwrap().finished);
        assert!(parse_datagram(&[1, 2, 3], 2, "t", "x").is_err());
    }
}
