//! A borrowed view of an Ethernet frame (no FCS) and of the IPv4 header behind it. Parsing is
//! total: every input gives a view or a typed error, never a panic, and nothing is copied.

use std::fmt;
use std::net::Ipv4Addr;

/// Ethernet header length (dst MAC, src MAC, ethertype).
pub const ETH_HEADER_LEN: usize = 14;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad (QinQ) service tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Most VLAN tags skipped (QinQ).
pub const MAX_VLAN_TAGS: u8 = 2;
/// IPv4 flag bits in the flags/fragment-offset word.
pub const IPV4_DF: u16 = 0x4000;
pub const IPV4_MF: u16 = 0x2000;
/// Shortest IPv4 header.
pub const IPV4_MIN_HEADER: usize = 20;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// The Spanning Tree Protocol group address, which Weave drops.
    pub const STP: Mac = Mac([0x01, 0x80, 0xc2, 0, 0, 0]);

    /// Group (multicast or broadcast) address: I/G bit set.
    pub fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    fn at(b: &[u8]) -> Mac {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        Mac(m)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A frame or IPv4 header that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than an Ethernet header")]
    ShortEthernet(usize),
    #[error("VLAN tag cut short at byte {0}")]
    ShortVlan(usize),
    #[error("IPv4 header cut short: {have} bytes, need {need}")]
    ShortIpv4 { have: usize, need: usize },
    #[error("IPv4 version {0}")]
    Ipv4Version(u8),
    #[error("IPv4 header length {0} words (< 5)")]
    Ipv4Ihl(u8),
    #[error("IPv4 total length {total} is smaller than its header ({header})")]
    Ipv4TotalLength { total: u16, header: usize },
}

/// An Ethernet frame, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthFrame<'a> {
    bytes: &'a [u8],
    pub dst: Mac,
    pub src: Mac,
    /// The ethertype after any VLAN tags (or an 802.3 length when < 0x0600).
    pub ethertype: u16,
    /// VLAN tags skipped (0 to [`MAX_VLAN_TAGS`]).
    pub vlan_tags: u8,
    /// Offset of the payload behind the Ethernet header and tags.
    pub payload_offset: usize,
}

impl<'a> EthFrame<'a> {
    /// Parse the Ethernet header (and up to two VLAN tags).
    pub fn parse(bytes: &'a [u8]) -> Result<EthFrame<'a>, FrameError> {
        if bytes.len() < ETH_HEADER_LEN {
            return Err(FrameError::ShortEthernet(bytes.len()));
        }
        let mut ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        let mut off = ETH_HEADER_LEN;
        let mut tags = 0u8;
        while (ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ) && tags < MAX_VLAN_TAGS {
            let tag = bytes.get(off..off + 4).ok_or(FrameError::ShortVlan(off))?;
            ethertype = u16::from_be_bytes([tag[2], tag[3]]);
            off += 4;
            tags += 1;
        }
        Ok(EthFrame {
            bytes,
            dst: Mac::at(&bytes[0..6]),
            src: Mac::at(&bytes[6..12]),
            ethertype,
            vlan_tags: tags,
            payload_offset: off,
        })
    }

    /// The whole frame.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The payload behind the Ethernet header and VLAN tags.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.payload_offset..).unwrap_or(&[])
    }

    /// The IPv4 header, as Weave's decoder sees it: only for an untagged frame of ethertype
    /// 0x0800 (Weave decodes Ethernet then IPv4, nothing else — inferred from its
    /// `DecodingLayerParser`); `None` for anything else, which Weave treats as "not IP".
    pub fn ipv4(&self) -> Option<Result<Ipv4Header, FrameError>> {
        (self.vlan_tags == 0 && self.ethertype == ETHERTYPE_IPV4)
            .then(|| Ipv4Header::parse(self.payload_offset, self.payload()))
    }
}

/// The fields of an IPv4 header the switch needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Offset of the IP header in the frame.
    pub offset: usize,
    /// Header length in 32-bit words.
    pub ihl: u8,
    pub tos: u8,
    /// Total length; when the header says 0 (TSO) it is taken as the bytes present.
    pub total_len: u16,
    pub id: u16,
    /// The flags/fragment-offset word as sent.
    pub flags_frag: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Fewer bytes present than `total_len` says.
    pub truncated: bool,
}

impl Ipv4Header {
    /// Parse an IPv4 header at the start of `ip` (which sits at `offset` in its frame).
    /// Accepts what gopacket accepts (inferred): IHL ≥ 5 and present, total length covering
    /// the header; a packet shorter than its total length is marked truncated.
    pub fn parse(offset: usize, ip: &[u8]) -> Result<Ipv4Header, FrameError> {
        if ip.len() < IPV4_MIN_HEADER {
            return Err(FrameError::ShortIpv4 {
                have: ip.len(),
                need: IPV4_MIN_HEADER,
            });
        }
        let version = ip[0] >> 4;
        if version != 4 {
            return Err(FrameError::Ipv4Version(version));
        }
        let ihl = ip[0] & 0x0f;
        if ihl < 5 {
            return Err(FrameError::Ipv4Ihl(ihl));
        }
        let header = usize::from(ihl) * 4;
        if ip.len() < header {
            return Err(FrameError::ShortIpv4 {
                have: ip.len(),
                need: header,
            });
        }
        let mut total_len = u16::from_be_bytes([ip[2], ip[3]]);
        if total_len == 0 {
            total_len = u16::try_from(ip.len()).unwrap_or(u16::MAX);
        }
        if usize::from(total_len) < header {
            return Err(FrameError::Ipv4TotalLength {
                total: total_len,
                header,
            });
        }
        Ok(Ipv4Header {
            offset,
            ihl,
            tos: ip[1],
            total_len,
            id: u16::from_be_bytes([ip[4], ip[5]]),
            flags_frag: u16::from_be_bytes([ip[6], ip[7]]),
            ttl: ip[8],
            protocol: ip[9],
            checksum: u16::from_be_bytes([ip[10], ip[11]]),
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            truncated: ip.len() < usize::from(total_len),
        })
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.ihl) * 4
    }

    /// Don't Fragment.
    pub fn df(&self) -> bool {
        self.flags_frag & IPV4_DF != 0
    }

    /// More Fragments.
    pub fn mf(&self) -> bool {
        self.flags_frag & IPV4_MF != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        self.flags_frag & 0x1fff
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_vlan_and_ipv4() {
        let mut f = vec![0u8; 14 + 4 + 20];
        f[0] = 0xff;
        f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let e = EthFrame::parse(&f).unwrap();
        assert_eq!(
            (e.vlan_tags, e.ethertype, e.payload_offset),
            (1, 0x0800, 18)
        );
        assert!(
            e.ipv4().is_none(),
            "tagged IPv4 is not IP to Weave's decoder"
        );
        assert!(e.dst.is_group());
        assert_eq!(EthFrame::parse(&f[..15]), Err(FrameError::ShortVlan(14)));
        // Untagged, checksum of a valid header is 0 when recomputed over itself.
        let mut g = vec![0u8; 14 + 20];
        g[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        g[14] = 0x45;
        g[16..18].copy_from_slice(&20u16.to_be_bytes());
        g[20] = 0x40;
        let c = internet_checksum(&g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(internet_checksum(&g[14..34]), 0);
        let ip = EthFrame::parse(&g).unwrap().ipv4().unwrap().unwrap();
        assert!(ip.df() && !ip.mf() && !ip.truncated);
        g[14] = 0x44;
        assert_eq!(
            EthFrame::parse(&g).unwrap().ipv4(),
            Some(Err(FrameError::Ipv4Ihl(4)))
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(e) = EthFrame::parse(&data) {
                let _ = e.payload();
                if let Some(Ok(ip)) = e.ipv4() {
                    prop_assert!(ip.header_len() >= 20);
                    prop_assert!(e.payload_offset + ip.header_len() <= data.len());
                }
            }
        }
    }
}
