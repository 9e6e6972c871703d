//! Hostile ring gossip into an allocator that has allocations: the input edits a valid ring
//! (owners, versions, free counts, extra tokens, seeds, range) and the result arrives as
//! periodic gossip, a broadcast and a ring-update unicast. Whatever is accepted or refused,
//! the allocator never panics, its ring stays valid (it round-trips through validation), and
//! every address it had allocated is still its own.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weft_ipam::codec::{encode_gossip, encode_unicast};
use weft_ipam::ring::Ring;
use weft_ipam::wire::{EntryWire, GossipState, Unicast};
use weft_ipam::{Allocator, Cidr, Config, InitMode, Now, ReqId};
use weft_mesh::PeerName;

fn p(n: u64) -> PeerName {
    PeerName::from_u64(n).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let now = Now { at: Instant::now(), unix: 0 };
    let universe = Cidr::new(0x0a20_0000, 12);
    let cfg = Config {
        name: p(1),
        uid: 1,
        nickname: "a".into(),
        universe,
        default_subnet: universe,
        init: InitMode::Seed(vec![p(1), p(2), p(3), p(4)]),
        seed: 1,
        dead_after: None,
    };
    let mut a = Allocator::new(cfg, None, now);
    for i in 0..3 {
        a.allocate(now, ReqId(i), &format!("c{i}"), universe, true);
    }
    let mine: Vec<u32> = a.owned().iter().flat_map(|(_, c)| c.iter().map(|c| c.addr)).collect();
    let mut w = a.ring().to_wire();
    w.peer = p(2);
    for chunk in data.chunks(8) {
        let b = |i: usize| chunk.get(i).copied().unwrap_or(0);
        let v = u32::from_le_bytes([b(4), b(5), b(6), b(7)]);
        let n = w.entries.len();
        let i = usize::from(b(1)) % n.max(1);
        match (b(0) % 9, w.entries.get_mut(i)) {
            (0, Some(e)) => e.peer = p(1 + u64::from(b(2) % 6)),
            (1, Some(e)) => e.version = v,
            (2, Some(e)) => e.free = v,
            (3, _) => {
                let t = 0x0a20_0000 + (v & 0xf_ffff);
                if !w.entries.iter().any(|e| e.token == t) {
                    w.entries.push(EntryWire { token: t, peer: p(1 + u64::from(b(2) % 6)), version: v >> 24, free: 0 });
                    if b(3) & 1 == 0 {
                        w.entries.sort_by_key(|e| e.token);
                    }
                }
            }
            (4, _) if n > 0 => {
                w.entries.remove(i);
            }
            (5, _) => w.seeds = vec![p(1), p(1 + u64::from(b(2) % 6))],
            (6, _) => w.end = w.end.wrapping_add(v & 0xffff),
            (7, Some(e)) => e.token = e.token.wrapping_add(v & 0xff),
            _ => {}
        }
    }
    let state = GossipState { now: 0, nicknames: Default::default(), paxos: None, ring: Some(w) };
    let g = encode_gossip(&state);
    let _ = a.on_gossip(now, p(2), &g);
    let _ = a.on_broadcast(now, p(2), &g);
    let _ = a.on_unicast(now, p(2), &encode_unicast(&Unicast::RingUpdate(state)));
    while a.poll_output().is_some() {}
    let ring = a.ring();
    Ring::from_wire(&ring.to_wire(), p(1)).expect("our ring stays valid");
    for addr in mine {
        assert_eq!(ring.owner(u64::from(addr)), Some(p(1)), "allocated address taken away");
        assert!(a.space().is_allocated(addr));
    }
});
