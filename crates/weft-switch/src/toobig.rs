//! What to do with a frame for one link given its MTU (reference §4.5, Weave's
//! `curriedForward.Process`), and the two frames Weave makes when a frame is too big: the
//! ICMP "fragmentation needed" reply (`makeICMPFragNeeded`) and router-side IPv4 fragments
//! (`fragment`). "Too big" means `frame.len() > mtu + 14`.

use crate::frame::{
    internet_checksum, EthFrame, FrameError, Ipv4Header, ETH_HEADER_LEN, IPV4_MF, IPV4_MIN_HEADER,
};

/// ICMP header length.
pub const ICMP_HEADER_LEN: usize = 8;
/// The largest frag-needed frame: Ethernet + IP + ICMP + a 60-byte quoted header + 8 bytes.
pub const ICMP_FRAG_NEEDED_MAX: usize = ETH_HEADER_LEN + IPV4_MIN_HEADER + ICMP_HEADER_LEN + 68;
/// TTL of the frag-needed reply.
pub const ICMP_TTL: u8 = 64;
const IPPROTO_ICMP: u8 = 1;

/// How to send a frame on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPlan {
    /// Queue it on the DF path.
    Df,
    /// Queue it on the non-DF path (the host stack fragments the datagram if needed).
    NonDf,
    /// Cut it into IPv4 fragments ([`fragment`]) and queue each on the DF path.
    Fragment,
    /// Do not send it: answer with [`icmp_frag_needed`], fed back into the switch as a frame
    /// from the original destination peer to the original source peer
    /// (`Switch::handle_overlay(src = D, dst = S)`), which injects it when S is us.
    FragNeeded,
    /// A too-big DF frame being flooded: drop it (no ICMP for broadcasts).
    DropTooBigBroadcast,
}

/// Why a too-big frame could not be answered or fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooBigError {
    #[error("not an IPv4 frame")]
    NotIpv4,
    #[error("malformed frame: {0}")]
    Malformed(#[from] FrameError),
    #[error("IPv4 packet truncated")]
    Truncated,
    #[error("MTU {0} leaves no room for a fragment")]
    MtuTooSmall(u16),
    #[error("buffer of {have} bytes, need {need}")]
    BufferTooSmall { have: usize, need: usize },
    #[error("fragment offset overflows 13 bits")]
    OffsetOverflow,
}

fn ipv4_of(frame: &[u8]) -> Result<(EthFrame<'_>, Ipv4Header), TooBigError> {
    let eth = EthFrame::parse(frame)?;
    let ip = eth.ipv4().ok_or(TooBigError::NotIpv4)??;
    Ok((eth, ip))
}

/// Weave's decision for a frame going out on a link with this `mtu` (the overlay IP MTU) and
/// `stack_frag` state; `broadcast` when this copy is part of a flood.
pub fn plan_send(frame: &[u8], mtu: u16, stack_frag: bool, broadcast: bool) -> SendPlan {
    let too_big = frame.len() > usize::from(mtu) + ETH_HEADER_LEN;
    let ip = EthFrame::parse(frame)
        .ok()
        .and_then(|e| e.ipv4())
        .and_then(Result::ok);
    match ip {
        Some(ip) if ip.df() => {
            if !too_big {
                SendPlan::Df
            } else if broadcast {
                SendPlan::DropTooBigBroadcast
            } else {
                SendPlan::FragNeeded
            }
        }
        None => SendPlan::NonDf,
        Some(_) if stack_frag => SendPlan::NonDf,
        Some(_) if !too_big => SendPlan::Df,
        Some(_) => SendPlan::Fragment,
    }
}

/// Write into `out` the ICMP type 3 code 4 reply to a too-big DF IPv4 `frame`: Ethernet
/// addresses swapped, same ethertype; IPv4 from the original destination to the original
/// source, TOS copied, id 0, no flags, TTL 64; ICMP with next-hop MTU = `mtu` (in the
/// "sequence" field, id 0); payload = the original IP header and 8 bytes (fewer if the
/// frame has fewer). Checksums computed. Returns the length written
/// (≤ [`ICMP_FRAG_NEEDED_MAX`]).
pub fn icmp_frag_needed(frame: &[u8], mtu: u16, out: &mut [u8]) -> Result<usize, TooBigError> {
    let (eth, ip) = ipv4_of(frame)?;
    let quote_end = (ip.offset + ip.header_len() + 8).min(frame.len());
    let quote = &frame[ip.offset..quote_end];
    let ip_len = IPV4_MIN_HEADER + ICMP_HEADER_LEN + quote.len();
    let need = ETH_HEADER_LEN + ip_len;
    if out.len() < need {
        return Err(TooBigError::BufferTooSmall {
            have: out.len(),
            need,
        });
    }
    let out = &mut out[..need];
    out[0..6].copy_from_slice(&eth.src.0);
    out[6..12].copy_from_slice(&eth.dst.0);
    out[12..14].copy_from_slice(&eth.ethertype.to_be_bytes());
    let (ipb, icmp) = out[ETH_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER);
    ipb[0] = 0x45;
    ipb[1] = ip.tos;
    ipb[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ipb[4..8].fill(0);
    ipb[8] = ICMP_TTL;
    ipb[9] = IPPROTO_ICMP;
    ipb[10..12].fill(0);
    ipb[12..16].copy_from_slice(&ip.dst.octets());
    ipb[16..20].copy_from_slice(&ip.src.octets());
    let c = internet_checksum(ipb);
    ipb[10..12].copy_from_slice(&c.to_be_bytes());
    icmp[0] = 3;
    icmp[1] = 4;
    icmp[2..6].fill(0);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[ICMP_HEADER_LEN..].copy_from_slice(quote);
    let c = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(need)
}

/// Cut a non-DF IPv4 `frame` into fragments that fit `mtu`, as Weave's router does when the
/// peer's stack cannot be trusted to (`stack_frag` false): payload chunks of
/// `(mtu − IHL·4) & !7` bytes; every fragment carries the Ethernet header and the whole
/// original IP header (options included), its own total length, MF on all but the last (the
/// last keeps the original flags), offsets continuing the original offset, checksum
/// recomputed. Bytes past the IP total length (Ethernet padding) are dropped. Each fragment
/// is built in `scratch` (≥ Ethernet + IP header + chunk) and passed to `emit`. Returns the
/// number of fragments.
pub fn fragment(
    frame: &[u8],
    mtu: u16,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, TooBigError> {
    let (_, ip) = ipv4_of(frame)?;
    if ip.truncated {
        return Err(TooBigError::Truncated);
    }
    let hl = ip.header_len();
    let chunk = usize::from(mtu).saturating_sub(hl) & !7;
    if chunk == 0 {
        return Err(TooBigError::MtuTooSmall(mtu));
    }
    let head_len = ip.offset + hl;
    let need = head_len + chunk;
    if scratch.len() < need {
        return Err(TooBigError::BufferTooSmall {
            have: scratch.len(),
            need,
        });
    }
    let payload = &frame[head_len..ip.offset + usize::from(ip.total_len)];
    let base = usize::from(ip.frag_offset()) * 8;
    let last_start = payload.len().saturating_sub(1) / chunk * chunk;
    if !payload.is_empty() && (base + last_start) >> 3 > 0x1fff {
        return Err(TooBigError::OffsetOverflow);
    }
    let orig_flags = ip.flags_frag & 0xe000;
    scratch[..head_len].copy_from_slice(&frame[..head_len]);
    let mut count = 0;
    for (i, part) in payload.chunks(chunk).enumerate() {
        let last = (i + 1) * chunk >= payload.len();
        let flags = if last {
            orig_flags
        } else {
            orig_flags | IPV4_MF
        };
        let off = ((base + i * chunk) >> 3) as u16;
        let total = (hl + part.len()) as u16;
        let h = &mut scratch[ip.offset..head_len];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6..8].copy_from_slice(&(flags | off).to_be_bytes());
        h[10..12].fill(0);
        let c = internet_checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        scratch[head_len..head_len + part.len()].copy_from_slice(part);
        emit(&scratch[..head_len + part.len()]);
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ETHERTYPE_IPV4, IPV4_DF};
    use proptest::prelude::*;

    /// An Ethernet + IPv4 frame with `payload_len` bytes of patterned payload.
    pub(crate) fn ip_frame(payload_len: usize, df: bool, options: usize) -> Vec<u8> {
        let hl = 20 + options;
        let mut f = vec![0u8; 14 + hl + payload_len];
        f[0..6].copy_from_slice(&[0x36, 0xe4, 0x4d, 0xba, 0x33, 0x9b]);
        f[6..12].copy_from_slice(&[0x56, 0x36, 0x02, 0xf0, 0xb4, 0x4f]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x40 | (hl / 4) as u8;
        ip[1] = 0x10;
        ip[2..4].copy_from_slice(&((hl + payload_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        if df {
            ip[6..8].copy_from_slice(&IPV4_DF.to_be_bytes());
        }
        ip[8] = 63;
        ip[9] = 1;
        ip[12..16].copy_from_slice(&[10, 32, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 32, 0, 2]);
        for (i, b) in ip[20..hl].iter_mut().enumerate() {
            *b = if i == 0 { 1 } else { 0 }; // NOP options
        }
        let c = internet_checksum(&ip[..hl]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        for (i, b) in ip[hl..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        f
    }

    #[test]
    fn plans_as_weave() {
        let small_df = ip_frame(84 - 20, true, 0);
        let big_df = ip_frame(3028 - 20, true, 0);
        let big = ip_frame(3028 - 20, false, 0);
        assert_eq!(plan_send(&small_df, 1438, true, false), SendPlan::Df);
        assert_eq!(plan_send(&big_df, 1438, true, false), SendPlan::FragNeeded);
        assert_eq!(
            plan_send(&big_df, 1438, true, true),
            SendPlan::DropTooBigBroadcast
        );
        // The capture's 3028-byte non-DF ping: stack_frag was true, so non-DF path.
        assert_eq!(plan_send(&big, 1438, true, false), SendPlan::NonDf);
        assert_eq!(plan_send(&big, 1438, false, false), SendPlan::Fragment);
        assert_eq!(
            plan_send(&ip_frame(100, false, 0), 1438, false, false),
            SendPlan::Df
        );
        // ARP (not IPv4) always non-DF.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(plan_send(&arp, 1438, false, true), SendPlan::NonDf);
        // Exactly mtu + 14 fits.
        let edge = ip_frame(1438 - 20, true, 0);
        assert_eq!(edge.len(), 1452);
        assert_eq!(plan_send(&edge, 1438, false, false), SendPlan::Df);
        assert_eq!(plan_send(&edge, 1437, false, false), SendPlan::FragNeeded);
    }

    #[test]
    fn frag_needed_field_by_field() {
        let orig = ip_frame(3008, true, 4);
        let mut out = [0u8; ICMP_FRAG_NEEDED_MAX];
        let n = icmp_frag_needed(&orig, 1438, &mut out).unwrap();
        let r = &out[..n];
        assert_eq!(n, 14 + 20 + 8 + 24 + 8);
        assert_eq!(&r[0..6], &orig[6..12], "to the original source MAC");
        assert_eq!(&r[6..12], &orig[0..6], "from the original destination MAC");
        assert_eq!(&r[12..14], &[0x08, 0x00]);
        let ip = &r[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[1], 0x10, "TOS copied");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, n - 14);
        assert_eq!(&ip[4..8], &[0, 0, 0, 0], "id 0, no flags");
        assert_eq!(ip[8], 64);
        assert_eq!(ip[9], 1);
        assert_eq!(&ip[12..16], &[10, 32, 0, 2]);
        assert_eq!(&ip[16..20], &[10, 32, 0, 1]);
        assert_eq!(internet_checksum(ip), 0, "IP checksum valid");
        let icmp = &r[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(&icmp[4..6], &[0, 0]);
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1438);
        assert_eq!(&icmp[8..], &orig[14..14 + 24 + 8], "IP header + 8 bytes");
        assert_eq!(internet_checksum(icmp), 0, "ICMP checksum valid");
        // And it parses as a non-DF IPv4 frame (so it never loops back into FragNeeded).
        let e = EthFrame::parse(r).unwrap().ipv4().unwrap().unwrap();
        assert!(!e.df());
        let mut tiny = [0u8; 10];
        assert!(matches!(
            icmp_frag_needed(&orig, 1438, &mut tiny),
            Err(TooBigError::BufferTooSmall { .. })
        ));
    }

    fn reassemble(frags: &[Vec<u8>]) -> (Vec<u8>, bool) {
        let mut payload = Vec::new();
        let mut last_mf = true;
        for f in frags {
            let ip = EthFrame::parse(f).unwrap().ipv4().unwrap().unwrap();
            assert_eq!(internet_checksum(&f[14..14 + ip.header_len()]), 0);
            let off = usize::from(ip.frag_offset()) * 8;
            let data = &f[14 + ip.header_len()..14 + usize::from(ip.total_len)];
            if payload.len() < off + data.len() {
                payload.resize(off + data.len(), 0);
            }
            payload[off..off + data.len()].copy_from_slice(data);
            last_mf = ip.mf();
        }
        (payload, last_mf)
    }

    proptest! {
        #[test]
        fn fragments_reassemble(len in 1usize..9000, mtu in 576u16..2000, opts in 0usize..3) {
            let orig = ip_frame(len, false, opts * 4);
            let hl = 20 + opts * 4;
            let mut scratch = vec![0u8; 14 + usize::from(mtu)];
            let mut frags = Vec::new();
            let n = fragment(&orig, mtu, &mut scratch, |f| frags.push(f.to_vec())).unwrap();
            prop_assert_eq!(n, frags.len());
            prop_assert_eq!(n, len.div_ceil((usize::from(mtu) - hl) & !7));
            for (i, f) in frags.iter().enumerate() {
                prop_assert!(f.len() <= usize::from(mtu) + 14);
                let ip = EthFrame::parse(f).unwrap().ipv4().unwrap().unwrap();
                prop_assert_eq!(ip.mf(), i + 1 < n);
                prop_assert_eq!(ip.id, 0x1234);
                prop_assert_eq!(&f[..14], &orig[..14]);
            }
            let (payload, last_mf) = reassemble(&frags);
            prop_assert!(!last_mf);
            prop_assert_eq!(&payload[..], &orig[14 + hl..]);
        }

        #[test]
        fn too_big_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120), mtu in 0u16..200) {
            let mut out = [0u8; ICMP_FRAG_NEEDED_MAX];
            let _ = icmp_frag_needed(&data, mtu, &mut out);
            let mut scratch = [0u8; 256];
            let _ = fragment(&data, mtu, &mut scratch, |_| {});
            let _ = plan_send(&data, mtu, false, false);
        }
    }

    #[test]
    fn fragment_of_a_fragment_keeps_offsets_and_mf() {
        let mut orig = ip_frame(2000, false, 0);
        // Original is itself a middle fragment at offset 800 bytes, MF set.
        orig[20..22].copy_from_slice(&(IPV4_MF | 100).to_be_bytes());
        let mut scratch = vec![0u8; 1500];
        let mut frags = Vec::new();
        fragment(&orig, 1000, &mut scratch, |f| frags.push(f.to_vec())).unwrap();
        let first = EthFrame::parse(&frags[0]).unwrap().ipv4().unwrap().unwrap();
        assert_eq!(first.frag_offset(), 100);
        let last = EthFrame::parse(frags.last().unwrap())
            .unwrap()
            .ipv4()
            .unwrap()
            .unwrap();
        assert!(last.mf(), "the last piece keeps the original MF");
        assert_eq!(last.frag_offset(), 100 + 2 * 976 / 8);
        assert!(matches!(
            fragment(&orig, 20, &mut scratch, |_| {}),
            Err(TooBigError::MtuTooSmall(20))
        ));
    }
}
