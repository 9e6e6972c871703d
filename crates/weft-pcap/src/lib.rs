//! A small reader for classic pcap captures, for tests.
//!
//! It understands what weft's conformance captures contain: the classic pcap
//! file format (either byte order, micro- or nanosecond timestamps) with the
//! Ethernet link type, IPv4 (fragments are reassembled), TCP and UDP.
//!
//! * [`Capture::tcp_streams`] reassembles every TCP connection into one ordered
//!   byte stream per direction, by sequence number. Retransmitted or overlapping
//!   bytes are accepted once; a hole in the stream is an error (the captures are
//!   loss-free, so a hole means a bug in the capture or in this reader).
//! * [`Capture::udp_datagrams`] lists the UDP datagrams, reassembled from IP
//!   fragments, with their addresses and timestamps.
//!
//! Every parser here returns [`PcapError`] on malformed input instead of
//! panicking.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

/// What can go wrong while reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be read.
    #[error("cannot read capture: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with a classic pcap magic number.
    #[error("not a classic pcap file (magic {0:#010x})")]
    BadMagic(u32),
    /// The link type is not Ethernet (1).
    #[error("unsupported link type {0} (only Ethernet is supported)")]
    UnsupportedLinkType(u32),
    /// A record or header ends before its announced length.
    #[error("truncated {what} at byte offset {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset in the file, or in the packet, where it was read.
        offset: usize,
    },
    /// An IPv4 or transport header is malformed.
    #[error("malformed packet #{packet}: {reason}")]
    Malformed {
        /// Packet number, from 1 as in Wireshark.
        packet: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A TCP direction has a hole that no segment fills.
    #[error("TCP stream {src} -> {dst} has a hole at relative offset {offset}")]
    TcpGap {
        /// Sender.
        src: SocketAddrV4,
        /// Receiver.
        dst: SocketAddrV4,
        /// First missing byte, relative to the initial sequence number + 1.
        offset: u64,
    },
}

/// One captured link-layer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Capture time since the Unix epoch.
    pub timestamp: Duration,
    /// Original length on the wire.
    pub orig_len: u32,
    /// Captured bytes (the Ethernet frame).
    pub data: Vec<u8>,
}

/// A whole capture held in memory.
#[derive(Debug, Clone)]
pub struct Capture {
    packets: Vec<Packet>,
}

/// One TCP connection, both directions reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpStream {
    /// The side that sent the SYN (or, if the capture starts mid-connection,
    /// the sender of the first segment seen).
    pub client: SocketAddrV4,
    /// The other side.
    pub server: SocketAddrV4,
    /// Every byte the client sent, in order.
    pub client_bytes: Vec<u8>,
    /// Every byte the server sent, in order.
    pub server_bytes: Vec<u8>,
}

/// One UDP datagram (reassembled if it came in IP fragments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Time of the packet that completed the datagram.
    pub timestamp: Duration,
    /// Sender.
    pub src: SocketAddrV4,
    /// Receiver.
    pub dst: SocketAddrV4,
    /// Whether the IPv4 "don't fragment" bit was set (on the last fragment).
    pub dont_fragment: bool,
    /// Number of IP packets the datagram arrived in.
    pub fragments: usize,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// A reassembled IPv4 datagram.
#[derive(Debug, Clone)]
struct IpDatagram {
    packet: usize,
    timestamp: Duration,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    dont_fragment: bool,
    fragments: usize,
    payload: Vec<u8>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

impl Capture {
    /// Reads and parses the capture file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Capture, PcapError> {
        let data = std::fs::read(path)?;
        Capture::parse(&data)
    }

    /// Parses a capture held in memory.
    pub fn parse(data: &[u8]) -> Result<Capture, PcapError> {
        let header = data.get(..24).ok_or(PcapError::Truncated {
            what: "file header",
            offset: 0,
        })?;
        let magic: [u8; 4] = header
            .get(..4)
            .and_then(|m| m.try_into().ok())
            .unwrap_or_default();
        let (little, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
            _ => return Err(PcapError::BadMagic(u32::from_be_bytes(magic))),
        };
        let u32_at = |b: &[u8], at: usize| -> Option<u32> {
            let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(if little {
                u32::from_le_bytes(s)
            } else {
                u32::from_be_bytes(s)
            })
        };
        let link = u32_at(header, 20).unwrap_or_default();
        if link != 1 {
            return Err(PcapError::UnsupportedLinkType(link));
        }
        let mut packets = Vec::new();
        let mut pos = 24usize;
        while pos < data.len() {
            let rec = data.get(pos..pos + 16).ok_or(PcapError::Truncated {
                what: "record header",
                offset: pos,
            })?;
            let secs = u32_at(rec, 0).unwrap_or_default();
            let frac = u32_at(rec, 4).unwrap_or_default();
            let incl = u32_at(rec, 8).unwrap_or_default() as usize;
            let orig_len = u32_at(rec, 12).unwrap_or_default();
            let start = pos + 16;
            let body = data
                .get(start..start.saturating_add(incl))
                .ok_or(PcapError::Truncated {
                    what: "packet data",
                    offset: start,
                })?;
            let sub = if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
            packets.push(Packet {
                timestamp: Duration::from_secs(u64::from(secs)) + sub,
                orig_len,
                data: body.to_vec(),
            });
            pos = start + incl;
        }
        Ok(Capture { packets })
    }

    /// Every captured frame, in file order.
    pub fn packets(&self) -> &[Packet] {
        &self.packets
    }

    /// Number of captured frames.
    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// IPv4 datagrams in capture order, fragments reassembled. A datagram is
    /// emitted when its last missing fragment arrives; incomplete fragment sets
    /// are dropped.
    fn ip_datagrams(&self) -> Result<Vec<IpDatagram>, PcapError> {
        type Key = (Ipv4Addr, Ipv4Addr, u16, u8);
        #[derive(Default)]
        struct Partial {
            parts: BTreeMap<usize, Vec<u8>>,
            total: Option<usize>,
            count: usize,
        }
        let mut partial: HashMap<Key, Partial> = HashMap::new();
        let mut out = Vec::new();
        for (i, p) in self.packets.iter().enumerate() {
            let number = i + 1;
            let bad = |reason| PcapError::Malformed {
                packet: number,
                reason,
            };
            let frame = &p.data;
            if be16(frame, 12) != Some(0x0800) {
                continue; // not IPv4 (ARP, ...)
            }
            let ip = frame.get(14..).ok_or(bad("short Ethernet frame"))?;
            let first = *ip.first().ok_or(bad("empty IPv4 packet"))?;
            if first >> 4 != 4 {
                return Err(bad("IP version is not 4"));
            }
            let ihl = usize::from(first & 0x0f) * 4;
            let total = usize::from(be16(ip, 2).ok_or(bad("short IPv4 header"))?);
            if ihl < 20 || total < ihl {
                return Err(bad("bad IPv4 header length"));
            }
            let ip = ip.get(..total).ok_or(bad("IPv4 packet truncated"))?;
            let id = be16(ip, 4).ok_or(bad("short IPv4 header"))?;
            let flags_off = be16(ip, 6).ok_or(bad("short IPv4 header"))?;
            let proto = *ip.get(9).ok_or(bad("short IPv4 header"))?;
            let addr = |at: usize| -> Result<Ipv4Addr, PcapError> {
                let s: [u8; 4] = ip
                    .get(at..at + 4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(bad("short IPv4 header"))?;
                Ok(Ipv4Addr::from(s))
            };
            let (src, dst) = (addr(12)?, addr(16)?);
            let dont_fragment = flags_off & 0x4000 != 0;
            let more = flags_off & 0x2000 != 0;
            let offset = usize::from(flags_off & 0x1fff) * 8;
            let payload = ip.get(ihl..).ok_or(bad("short IPv4 header"))?;
            if !more && offset == 0 {
                out.push(IpDatagram {
                    packet: number,
                    timestamp: p.timestamp,
                    src,
                    dst,
                    proto,
                    dont_fragment,
                    fragments: 1,
                    payload: payload.to_vec(),
                });
                continue;
            }
            let key = (src, dst, id, proto);
            let entry = partial.entry(key).or_default();
            entry.count += 1;
            if !more {
                entry.total = Some(offset + payload.len());
            }
            entry.parts.insert(offset, payload.to_vec());
            let Some(total_len) = entry.total else {
                continue;
            };
            // Complete when the parts cover [0, total_len) without holes.
            let mut covered = 0usize;
            for (off, bytes) in &entry.parts {
                if *off > covered {
                    break;
                }
                covered = covered.max(off + bytes.len());
            }
            if covered < total_len {
                continue;
            }
            let Some(done) = partial.remove(&key) else {
                continue;
            };
            let mut buf = vec![0u8; total_len];
            for (off, bytes) in &done.parts {
                let end = (off + bytes.len()).min(total_len);
                if let (Some(dst_slice), Some(src_slice)) = (
                    buf.get_mut(*off..end),
                    bytes.get(..end.saturating_sub(*off)),
                ) {
                    dst_slice.copy_from_slice(src_slice);
                }
            }
            out.push(IpDatagram {
                packet: number,
                timestamp: p.timestamp,
                src,
                dst,
                proto,
                dont_fragment,
                fragments: done.count,
                payload: buf,
            });
        }
        Ok(out)
    }

    /// Every UDP datagram in capture order.
    pub fn udp_datagrams(&self) -> Result<Vec<UdpDatagram>, PcapError> {
        let mut out = Vec::new();
        for d in self.ip_datagrams()?.into_iter().filter(|d| d.proto == 17) {
            let bad = |reason| PcapError::Malformed {
                packet: d.packet,
                reason,
            };
            let sport = be16(&d.payload, 0).ok_or(bad("short UDP header"))?;
            let dport = be16(&d.payload, 2).ok_or(bad("short UDP header"))?;
            let len = usize::from(be16(&d.payload, 4).ok_or(bad("short UDP header"))?);
            if len < 8 {
                return Err(bad("UDP length below 8"));
            }
            let payload = d.payload.get(8..len).ok_or(bad("UDP datagram truncated"))?;
            out.push(UdpDatagram {
                timestamp: d.timestamp,
                src: SocketAddrV4::new(d.src, sport),
                dst: SocketAddrV4::new(d.dst, dport),
                dont_fragment: d.dont_fragment,
                fragments: d.fragments,
                payload: payload.to_vec(),
            });
        }
        Ok(out)
    }

    /// Every TCP connection, in order of first appearance, with both
    /// directions reassembled.
    pub fn tcp_streams(&self) -> Result<Vec<TcpStream>, PcapError> {
        type Flow = (SocketAddrV4, SocketAddrV4);
        #[derive(Default)]
        struct Direction {
            /// Sequence number of the first payload byte (ISN + 1).
            base: Option<u32>,
            syn: bool,
            /// Relative offset -> bytes.
            segments: BTreeMap<u64, Vec<u8>>,
        }
        let mut order: Vec<Flow> = Vec::new(); // canonical (client, server)
        let mut dirs: HashMap<Flow, Direction> = HashMap::new();
        for d in self.ip_datagrams()?.into_iter().filter(|d| d.proto == 6) {
            let bad = |reason| PcapError::Malformed {
                packet: d.packet,
                reason,
            };
            let t = &d.payload;
            let sport = be16(t, 0).ok_or(bad("short TCP header"))?;
            let dport = be16(t, 2).ok_or(bad("short TCP header"))?;
            let seq = be32(t, 4).ok_or(bad("short TCP header"))?;
            let data_off = usize::from(*t.get(12).ok_or(bad("short TCP header"))? >> 4) * 4;
            let flags = *t.get(13).ok_or(bad("short TCP header"))?;
            if data_off < 20 {
                return Err(bad("TCP data offset below 20"));
            }
            let body = t.get(data_off..).ok_or(bad("TCP header truncated"))?;
            let src = SocketAddrV4::new(d.src, sport);
            let dst = SocketAddrV4::new(d.dst, dport);
            if !order.contains(&(src, dst)) && !order.contains(&(dst, src)) {
                // The SYN sender is the client; a SYN+ACK means the other way.
                let syn_ack = flags & 0x12 == 0x12;
                order.push(if syn_ack { (dst, src) } else { (src, dst) });
            }
            let dir = dirs.entry((src, dst)).or_default();
            let syn = flags & 0x02 != 0;
            if syn && !dir.syn {
                dir.syn = true;
                dir.base = Some(seq.wrapping_add(1));
                // Data carried on the SYN itself starts at the next number.
            }
            if body.is_empty() {
                continue;
            }
            let first = if syn { seq.wrapping_add(1) } else { seq };
            let base = *dir.base.get_or_insert(first);
            let rel = u64::from(first.wrapping_sub(base));
            let slot = dir.segments.entry(rel).or_default();
            if body.len() > slot.len() {
                *slot = body.to_vec();
            }
        }
        let mut out = Vec::new();
        for (client, server) in order {
            let mut assemble = |src: SocketAddrV4, dst: SocketAddrV4| {
                let mut bytes: Vec<u8> = Vec::new();
                if let Some(dir) = dirs.remove(&(src, dst)) {
                    for (off, seg) in dir.segments {
                        let have = bytes.len() as u64;
                        if off > have {
                            return Err(PcapError::TcpGap {
                                src,
                                dst,
                                offset: have,
                            });
                        }
                        let skip = usize::try_from(have - off).unwrap_or(usize::MAX);
                        if let Some(new) = seg.get(skip..) {
                            bytes.extend_from_slice(new);
                        }
                    }
                }
                Ok(bytes)
            };
            let client_bytes = assemble(client, server)?;
            let server_bytes = assemble(server, client)?;
            out.push(TcpStream {
                client,
                server,
                client_bytes,
                server_bytes,
            });
        }
        Ok(out)
    }
}

pub mod conformance;

#[cfg(test)]
mod tests;
