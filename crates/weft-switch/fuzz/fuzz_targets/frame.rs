//! Arbitrary bytes as an Ethernet frame: the parser, the forwarding decisions (captured and
//! from the overlay, with a fixed 3-peer view), the send plan, the ICMP reply and
//! fragmentation never panic, and what they build is well formed.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weft_mesh::PeerName;
use weft_switch::frame::internet_checksum;
use weft_switch::toobig::ICMP_FRAG_NEEDED_MAX;
use weft_switch::{
    fragment, icmp_frag_needed, plan_send, Action, EthFrame, MacCache, RouteView, Switch,
};

struct Line([PeerName; 3]);

impl RouteView for Line {
    fn unicast(&self, dst: PeerName) -> Option<PeerName> {
        (dst != self.0[0] && self.0.contains(&dst)).then_some(self.0[1])
    }
    fn broadcast(&self, src: PeerName) -> &[PeerName] {
        if src == self.0[0] {
            &self.0[1..2]
        } else {
            &[]
        }
    }
    fn is_known(&self, peer: PeerName) -> bool {
        self.0.contains(&peer)
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let names = [1u8, 2, 3].map(|i| PeerName::from_bytes([0, 0, 0, 0, 0, i]));
    let view = Line(names);
    let (sel, frame) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    if let Ok(e) = EthFrame::parse(frame) {
        let _ = e.payload();
        if let Some(Ok(ip)) = e.ipv4() {
            assert!(e.payload_offset + ip.header_len() <= frame.len());
        }
    }
    let mut sw = Switch::new(names[0], MacCache::new(16));
    let mut out = Vec::new();
    sw.handle_captured(now, &view, frame, &mut out);
    assert!(!out.is_empty());
    let (s, d) = (names[usize::from(sel % 3)], names[usize::from(sel / 3 % 3)]);
    sw.handle_overlay(now, &view, s, d, frame, &mut out);
    assert!(!out.is_empty());
    assert!(out
        .iter()
        .all(|a| !matches!(a, Action::Send { next_hop, .. } if *next_hop == names[0])));
    let mtu = 68 + u16::from(sel) * 8;
    let _ = plan_send(frame, mtu, sel & 1 == 1, sel & 2 == 2);
    let mut icmp = [0u8; ICMP_FRAG_NEEDED_MAX];
    if let Ok(n) = icmp_frag_needed(frame, mtu, &mut icmp) {
        assert_eq!(internet_checksum(&icmp[14..34]), 0);
        assert_eq!(internet_checksum(&icmp[34..n]), 0);
    }
    let mut scratch = vec![0u8; usize::from(mtu) + 80];
    let _ = fragment(frame, mtu, &mut scratch, |f| {
        assert!(f.len() <= usize::from(mtu) + 14 + 64);
    });
});
