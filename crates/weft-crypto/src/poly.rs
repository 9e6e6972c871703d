//! One-shot Poly1305 (NaCl / RFC 8439 semantics, no zero padding of the
//! last block), with an AVX-512 IFMA path for long messages.
//!
//! The `poly1305` crate handles one message at a time through a backend
//! whose per-message setup is not inlined; for a 64 KiB datagram it ran at
//! about half the speed of the SIMD keystream. This module evaluates the
//! polynomial itself:
//!
//! * Numbers mod p = 2^130 − 5 are kept in three limbs of 44, 44 and 42
//!   bits, so that a limb times a key limb (times 20 for the wrapped-around
//!   terms) fits the 52-bit multipliers of AVX-512 IFMA (`vpmadd52luq` /
//!   `vpmadd52huq`).
//! * The vector kernel runs eight independent Horner chains, lane j taking
//!   blocks j, j+8, j+16, ... and multiplying by r^8 per step; the last step
//!   multiplies lane j by r^(8−j) instead, so that the sum of the lanes is
//!   the ordinary Horner value of those blocks. A block count that is not a
//!   multiple of eight is padded at the *front* with zero-valued blocks
//!   (which do not change a Horner sum that starts at zero), so the whole
//!   message, short last block included, goes through the vector code.
//! * Messages too short to be worth the key powers r^2..r^8 go through the
//!   same limb arithmetic in scalar code (u64 × u64 → u128 products).
//! * Without IFMA the `poly1305` crate is used (the choice is the
//!   [`Backend`](crate::Backend)'s).
//!
//! Nothing branches on or indexes by the key or message bytes; the final
//! reduction mod p selects with masks.

// Elsewhere only the tests run the limb code (through its scalar path).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use poly1305::universal_hash::{KeyInit, UniversalHash};
use zeroize::Zeroize;

/// Bytes in one Poly1305 block.
const BLOCK: usize = 16;

/// Bytes the vector kernel consumes per step (eight blocks).
const GROUP: usize = 8 * BLOCK;

/// Shorter messages stay in scalar code: computing r^2..r^8 and folding the
/// lanes costs about as much as eight scalar blocks (measured on Zen 4).
const MIN_VECTOR_LEN: usize = 2 * GROUP;

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;

/// Which Poly1305 code runs; the vector variant can only exist after the
/// CPU was checked for its features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// The `poly1305` crate.
    Crate,
    /// This module's limb code with the IFMA kernel for long messages.
    #[cfg(target_arch = "x86_64")]
    Ifma(x86::Ifma),
}

impl Engine {
    /// The IFMA engine, if this CPU has AVX-512F and AVX-512 IFMA.
    pub(crate) fn ifma() -> Option<Engine> {
        #[cfg(target_arch = "x86_64")]
        {
            x86::Ifma::detect().map(Engine::Ifma)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// A short name: "avx512ifma" or "poly1305-crate".
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Crate => "poly1305-crate",
            #[cfg(target_arch = "x86_64")]
            Engine::Ifma(_) => "avx512ifma",
        }
    }

    /// Poly1305 of `msg` under the one-time `key` (r ‖ s), as NaCl's
    /// `crypto_onetimeauth` computes it.
    pub(crate) fn mac(self, key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Ifma(t) => limbs_poly1305(key, msg, Some(t)),
            Engine::Crate if msg.len() < CRATE_MIN_LEN => limbs_poly1305(key, msg, None),
            Engine::Crate => crate_poly1305(key, msg),
        }
    }
}

/// Shortest message the `poly1305` crate gets on CPUs without IFMA: below it our scalar limb
/// code is faster, since the crate's AVX2 path pays a fixed cost per message (setting up its
/// powers of r and its final reduction) that dominates for the path-MTU-sized pieces weft's
/// segment tags cover (see `weft-sleeve`'s `segment_mac` example).
pub(crate) const CRATE_MIN_LEN: usize = 4096;

/// The fallback: the `poly1305` crate, whole blocks through its multi-block
/// path, then the unpadded tail.
pub(crate) fn crate_poly1305(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let mut mac = poly1305::Poly1305::new(key.into());
    let whole = msg.len() - msg.len() % BLOCK;
    // On a multiple of the block size, "padded" adds no padding.
    mac.update_padded(&msg[..whole]);
    mac.compute_unpadded(&msg[whole..]).into()
}

/// A number mod p in limbs of 44, 44 and 42 bits (value
/// `l[0] + l[1]·2^44 + l[2]·2^88`). Limbs may exceed their width by a few
/// bits between reductions.
type Limbs = [u64; 3];

/// Splits a 16-byte block into limbs, adding `top` (the 2^128 marker bit,
/// 1 for whole blocks and 0 for the padded last block) at bit 128.
#[inline(always)]
fn block_limbs(b: &[u8; BLOCK], top: u64) -> Limbs {
    let lo = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let hi = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    [
        lo & MASK44,
        ((lo >> 44) | (hi << 20)) & MASK44,
        (hi >> 24) | (top << 40),
    ]
}

/// `a · b mod p`, partly reduced (limbs below 2^44, 2^45, 2^42). Inputs
/// need limbs below 2^48 (`b`: 2^46).
#[inline(always)]
fn mul(a: &Limbs, b: &Limbs) -> Limbs {
    // 2^132 ≡ 4·5 = 20 (mod p): the parts that spill over 2^130 come back
    // in at the bottom times 20.
    let (b1x, b2x) = (b[1] * 20, b[2] * 20);
    let m = |x: u64, y: u64| u128::from(x) * u128::from(y);
    let d0 = m(a[0], b[0]) + m(a[1], b2x) + m(a[2], b1x);
    let d1 = m(a[0], b[1]) + m(a[1], b[0]) + m(a[2], b2x);
    let d2 = m(a[0], b[2]) + m(a[1], b[1]) + m(a[2], b[0]);
    let d1 = d1 + (d0 >> 44);
    let d2 = d2 + (d1 >> 44);
    let mut r0 = (d0 as u64 & MASK44) + (d2 >> 42) as u64 * 5;
    let mut r1 = d1 as u64 & MASK44;
    let r2 = d2 as u64 & MASK42;
    r1 += r0 >> 44;
    r0 &= MASK44;
    [r0, r1, r2]
}

/// Horner steps `h = (h + m) · r` over whole blocks.
fn scalar_blocks(h: &mut Limbs, r: &Limbs, blocks: &[u8]) {
    for b in blocks.chunks_exact(BLOCK) {
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(b);
        let m = block_limbs(&block, 1);
        let sum = [h[0] + m[0], h[1] + m[1], h[2] + m[2]];
        *h = mul(&sum, r);
    }
}

/// The key powers r^1..r^8 (index k − 1 holds r^k) for the vector kernel.
type Powers = [Limbs; 8];

fn powers(r: &Limbs) -> Powers {
    let r2 = mul(r, r);
    let r3 = mul(&r2, r);
    let r4 = mul(&r2, &r2);
    [
        *r,
        r2,
        r3,
        r4,
        mul(&r4, r),
        mul(&r4, &r2),
        mul(&r4, &r3),
        mul(&r4, &r4),
    ]
}

/// The token for the vector kernel: `x86::Ifma` on x86_64, a type without
/// values elsewhere.
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Ifma as Vector;

/// The token for the vector kernel: `x86::Ifma` on x86_64, a type without
/// values elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Vector {}

#[cfg(not(target_arch = "x86_64"))]
impl Vector {
    fn message(self, _: &Powers, _: &[u8]) -> Limbs {
        match self {}
    }
}

/// Poly1305 in 44-bit limbs, with the IFMA kernel for messages of at least
/// `MIN_VECTOR_LEN` bytes when `vector` is given (scalar limb code
/// otherwise).
pub(crate) fn limbs_poly1305(key: &[u8; 32], msg: &[u8], vector: Option<Vector>) -> [u8; 16] {
    let mut rb = [0u8; BLOCK];
    rb.copy_from_slice(&key[..BLOCK]);
    // Clamp r: clear the top 4 bits of bytes 3, 7, 11, 15 and the low 2
    // bits of bytes 4, 8, 12.
    let mut rv = u128::from_le_bytes(rb) & 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;
    let mut r: Limbs = [
        rv as u64 & MASK44,
        (rv >> 44) as u64 & MASK44,
        (rv >> 88) as u64,
    ];
    rv.zeroize();
    rb.zeroize();

    let mut h: Limbs = [0; 3];
    match vector {
        Some(t) if msg.len() >= MIN_VECTOR_LEN => {
            let mut pows = powers(&r);
            h = t.message(&pows, msg);
            pows.zeroize();
        }
        _ => scalar_message(&mut h, &r, msg),
    }
    r.zeroize();

    let mut sb = [0u8; BLOCK];
    sb.copy_from_slice(&key[BLOCK..]);
    let mut s = u128::from_le_bytes(sb);
    let tag = finish(&mut h).wrapping_add(s).to_le_bytes();
    s.zeroize();
    sb.zeroize();
    h.zeroize();
    tag
}

/// Horner's rule over the whole message in scalar code, continuing from `h`.
fn scalar_message(h: &mut Limbs, r: &Limbs, msg: &[u8]) {
    let whole = msg.len() - msg.len() % BLOCK;
    scalar_blocks(h, r, &msg[..whole]);
    let last = &msg[whole..];
    if !last.is_empty() {
        // The short last block: its bytes, then 0x01, then zeros; no 2^128 bit.
        let mut block = [0u8; BLOCK];
        block[..last.len()].copy_from_slice(last);
        block[last.len()] = 1;
        let m = block_limbs(&block, 0);
        let sum = [h[0] + m[0], h[1] + m[1], h[2] + m[2]];
        *h = mul(&sum, r);
        block.zeroize();
    }
}

/// Reduces `h` fully mod p and returns it mod 2^128. Branch-free.
fn finish(h: &mut Limbs) -> u128 {
    // Carry twice: afterwards h < 2^130 + 2^44 < 2p.
    for _ in 0..2 {
        h[1] += h[0] >> 44;
        h[0] &= MASK44;
        h[2] += h[1] >> 44;
        h[1] &= MASK44;
        h[0] += (h[2] >> 42) * 5;
        h[2] &= MASK42;
    }
    h[1] += h[0] >> 44;
    h[0] &= MASK44;
    h[2] += h[1] >> 44;
    h[1] &= MASK44;
    // g = h + 5 − 2^130; h ≥ p exactly when g's bit 130 is set.
    let g0 = h[0] + 5;
    let g1 = h[1] + (g0 >> 44);
    let g2 = h[2] + (g1 >> 44);
    let use_g = 0u64.wrapping_sub(g2 >> 42); // all ones if h ≥ p
    let pick = |a: u64, b: u64| (a & !use_g) | (b & use_g);
    let f0 = pick(h[0], g0 & MASK44);
    let f1 = pick(h[1], g1 & MASK44);
    let f2 = pick(h[2], g2 & MASK42);
    u128::from(f0) | (u128::from(f1) << 44) | (u128::from(f2) << 88)
}

/// The IFMA kernel. Everything `unsafe` in this module is in here.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod x86 {
    use super::{Limbs, Powers, BLOCK, GROUP, MASK42, MASK44};
    use std::arch::x86_64::*;
    use zeroize::Zeroize;

    /// Proof that the CPU has AVX-512F and AVX-512 IFMA (only
    /// [`Ifma::detect`] makes one).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Ifma(());

    impl Ifma {
        pub(crate) fn detect() -> Option<Ifma> {
            let ok = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma");
            ok.then_some(Ifma(()))
        }

        /// The polynomial of the whole message `msg` (the sum of its
        /// blocks times powers of r, before adding s), partly reduced.
        pub(super) fn message(self, pows: &Powers, msg: &[u8]) -> Limbs {
            // SAFETY: `message_ifma` and everything it calls are compiled
            // for AVX-512F and AVX-512 IFMA; this token exists only if
            // `detect` saw both on this CPU at run time
            // (`is_x86_feature_detected!`), so no instruction the CPU lacks
            // is executed. It has no other precondition.
            unsafe { message_ifma(pows, msg) }
        }
    }

    /// A multiplier in vector form: the three limbs and 20× limbs 1 and 2.
    #[derive(Clone, Copy)]
    struct VecKey {
        r0: __m512i,
        r1: __m512i,
        r2: __m512i,
        r1x: __m512i,
        r2x: __m512i,
    }

    /// Loads eight u64 values, one per lane.
    ///
    /// Safe to call only from code compiled with AVX-512F (the compiler
    /// enforces it; elsewhere a call needs `unsafe` and the CPU check).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lanes(v: &[u64; 8]) -> __m512i {
        // SAFETY: `v` is a reference to 64 initialized bytes, exactly what
        // the 512-bit load reads; `loadu` has no alignment requirement.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// The vector key whose lane j multiplies by `r^(pick(j))`. The key
    /// limbs staged on the stack are wiped once loaded.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn vec_key(pows: &Powers, pick: impl Fn(usize) -> usize) -> VecKey {
        let mut staged = [0u64; 8];
        let mut load = |i: usize, x: u64| {
            for (j, lane) in staged.iter_mut().enumerate() {
                *lane = pows[pick(j)][i] * x;
            }
            lanes(&staged)
        };
        let key = VecKey {
            r0: load(0, 1),
            r1: load(1, 1),
            r2: load(2, 1),
            r1x: load(1, 20),
            r2x: load(2, 20),
        };
        staged.zeroize();
        key
    }

    /// `h · k mod p` lane by lane, partly reduced (limbs below 2^44, 2^45,
    /// 2^42). Limbs of `h` must stay below 2^52, those of `k` below 2^46.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul(h: [__m512i; 3], k: &VecKey) -> [__m512i; 3] {
        let z = _mm512_setzero_si512();
        let [h0, h1, h2] = h;
        // Column c collects the low 52 bits of its products in `lo_c`
        // (weight 2^(44c)) and the bits from 52 up in `hi_c` (weight
        // 2^(44c + 52) = 2^(44(c+1)) · 2^8).
        let lo0 = _mm512_madd52lo_epu64(z, h0, k.r0);
        let hi0 = _mm512_madd52hi_epu64(z, h0, k.r0);
        let lo1 = _mm512_madd52lo_epu64(z, h0, k.r1);
        let hi1 = _mm512_madd52hi_epu64(z, h0, k.r1);
        let lo2 = _mm512_madd52lo_epu64(z, h0, k.r2);
        let hi2 = _mm512_madd52hi_epu64(z, h0, k.r2);

        let lo0 = _mm512_madd52lo_epu64(lo0, h1, k.r2x);
        let hi0 = _mm512_madd52hi_epu64(hi0, h1, k.r2x);
        let lo1 = _mm512_madd52lo_epu64(lo1, h1, k.r0);
        let hi1 = _mm512_madd52hi_epu64(hi1, h1, k.r0);
        let lo2 = _mm512_madd52lo_epu64(lo2, h1, k.r1);
        let hi2 = _mm512_madd52hi_epu64(hi2, h1, k.r1);

        let lo0 = _mm512_madd52lo_epu64(lo0, h2, k.r1x);
        let hi0 = _mm512_madd52hi_epu64(hi0, h2, k.r1x);
        let lo1 = _mm512_madd52lo_epu64(lo1, h2, k.r2x);
        let hi1 = _mm512_madd52hi_epu64(hi1, h2, k.r2x);
        let lo2 = _mm512_madd52lo_epu64(lo2, h2, k.r0);
        let hi2 = _mm512_madd52hi_epu64(hi2, h2, k.r0);

        // hi_0 and hi_1 move up one column (times 2^8); hi_2 sits at
        // 2^140 = 2^130 · 2^10 ≡ 5 · 2^10, so it comes back into column 0
        // as (hi_2 << 12) + (hi_2 << 10).
        let d0 = _mm512_add_epi64(
            lo0,
            _mm512_add_epi64(_mm512_slli_epi64::<12>(hi2), _mm512_slli_epi64::<10>(hi2)),
        );
        let d1 = _mm512_add_epi64(lo1, _mm512_slli_epi64::<8>(hi0));
        let d2 = _mm512_add_epi64(lo2, _mm512_slli_epi64::<8>(hi1));
        carry(d0, d1, d2)
    }

    /// Carries limbs below 2^57 into widths 44, 45, 42 (mod p).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn carry(d0: __m512i, d1: __m512i, d2: __m512i) -> [__m512i; 3] {
        let m44 = _mm512_set1_epi64(MASK44 as i64);
        let m42 = _mm512_set1_epi64(MASK42 as i64);
        let d1 = _mm512_add_epi64(d1, _mm512_srli_epi64::<44>(d0));
        let d0 = _mm512_and_si512(d0, m44);
        let d2 = _mm512_add_epi64(d2, _mm512_srli_epi64::<44>(d1));
        let d1 = _mm512_and_si512(d1, m44);
        let c = _mm512_srli_epi64::<42>(d2);
        let d2 = _mm512_and_si512(d2, m42);
        // c · 5 = (c << 2) + c
        let d0 = _mm512_add_epi64(d0, _mm512_add_epi64(_mm512_slli_epi64::<2>(c), c));
        let d1 = _mm512_add_epi64(d1, _mm512_srli_epi64::<44>(d0));
        let d0 = _mm512_and_si512(d0, m44);
        [d0, d1, d2]
    }

    /// Loads the eight blocks in `group` as limbs, lane j holding block j,
    /// and ORs `top` (the 2^128 bits, at bit 40 of limb 2) into limb 2.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_group(group: &[u8; GROUP], top: __m512i) -> [__m512i; 3] {
        let (first, second) = group.split_at(64);
        // SAFETY: `first` and `second` are the two 64-byte halves of a
        // borrowed 128-byte array, and each load reads exactly 64 bytes
        // from the start of one; `loadu` has no alignment requirement.
        let (a, b) = unsafe {
            (
                _mm512_loadu_si512(first.as_ptr().cast()),
                _mm512_loadu_si512(second.as_ptr().cast()),
            )
        };
        // Even 64-bit words are the low halves of the blocks, odd ones the
        // high halves.
        let lo = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
        let hi = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), b);
        let m44 = _mm512_set1_epi64(MASK44 as i64);
        let m0 = _mm512_and_si512(lo, m44);
        let m1 = _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)),
            m44,
        );
        let m2 = _mm512_or_si512(_mm512_srli_epi64::<24>(hi), top);
        [m0, m1, m2]
    }

    /// Eight-lane Horner evaluation of the whole message.
    ///
    /// The message's n blocks (the last one possibly short) are preceded by
    /// `lead` = (−n mod 8) blocks of value zero, which leave a Horner sum
    /// started at zero unchanged, so that they fill whole groups of eight.
    /// Lane j takes block j of every group. Groups that hold those zero
    /// blocks or the short last block are assembled in a stack buffer
    /// with per-lane 2^128 bits; the others are loaded straight from `msg`.
    ///
    /// Safe to call only from code compiled with these features; the one
    /// caller, [`Ifma::message`], holds the token of the run-time check.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn message_ifma(pows: &Powers, msg: &[u8]) -> Limbs {
        let len = msg.len();
        let blocks = len.div_ceil(BLOCK);
        let full = len / BLOCK; // blocks that carry the 2^128 bit
        let groups = blocks.div_ceil(8);
        let lead = groups * 8 - blocks;
        // Every step but the last multiplies all lanes by r^8; the last
        // multiplies lane j by r^(8 − j).
        let step = vec_key(pows, |_| 7);
        let last = vec_key(pows, |j| 7 - j);
        let all_top = _mm512_set1_epi64(1 << 40);
        let z = _mm512_setzero_si512();
        let mut acc = [z, z, z];
        for g in 0..groups {
            // Block b of the padded sequence is message block b − lead.
            let first_block = (g * 8) as isize - lead as isize;
            let direct = first_block >= 0 && first_block as usize + 8 <= full;
            let whole = if direct {
                let at = first_block as usize * BLOCK;
                msg.get(at..at + GROUP)
                    .and_then(|g| <&[u8; GROUP]>::try_from(g).ok())
            } else {
                None
            };
            let m = if let Some(group) = whole {
                // Blocks first_block..first_block + 8 are whole message
                // blocks: load them where they are.
                load_group(group, all_top)
            } else {
                let mut buf = [0u8; GROUP];
                let mut top = [0u64; 8];
                for (j, t) in top.iter_mut().enumerate() {
                    let b = first_block + j as isize;
                    if b >= 0 && (b as usize) < full {
                        *t = 1 << 40;
                    }
                }
                // The part of the message this group covers.
                let start = first_block * BLOCK as isize;
                let from = start.max(0) as usize;
                let to = ((start + GROUP as isize) as usize).min(len);
                let at = (from as isize - start) as usize;
                buf[at..at + (to - from)].copy_from_slice(&msg[from..to]);
                if to == len && !len.is_multiple_of(BLOCK) {
                    // The short last block ends with a 0x01 byte.
                    buf[at + (to - from)] = 1;
                }
                let m = load_group(&buf, lanes(&top));
                buf.zeroize();
                m
            };
            let sum = [
                _mm512_add_epi64(acc[0], m[0]),
                _mm512_add_epi64(acc[1], m[1]),
                _mm512_add_epi64(acc[2], m[2]),
            ];
            acc = mul(sum, if g + 1 < groups { &step } else { &last });
        }
        // Each lane's limbs are below 2^45, so eight of them add up without
        // overflow; `finish` carries them.
        [
            _mm512_reduce_add_epi64(acc[0]) as u64,
            _mm512_reduce_add_epi64(acc[1]) as u64,
            _mm512_reduce_add_epi64(acc[2]) as u64,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: the `poly1305` crate's one-shot unpadded MAC.
    fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(key.into())
            .compute_unpadded(msg)
            .into()
    }

    type Mac = Box<dyn Fn(&[u8; 32], &[u8]) -> [u8; 16]>;

    /// Every implementation this machine runs, by name.
    fn implementations() -> Vec<(&'static str, Mac)> {
        let mut all: Vec<(&'static str, Mac)> = vec![
            ("crate", Box::new(crate_poly1305)),
            ("limbs-scalar", Box::new(|k, m| limbs_poly1305(k, m, None))),
        ];
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = x86::Ifma::detect() {
            all.push((
                "limbs-ifma",
                Box::new(move |k, m| limbs_poly1305(k, m, Some(t))),
            ));
        }
        all
    }

    fn check(key: &[u8; 32], msg: &[u8]) -> Result<(), TestCaseError> {
        let want = reference(key, msg);
        for (name, f) in implementations() {
            prop_assert_eq!(f(key, msg), want, "{} len {}", name, msg.len());
        }
        Ok(())
    }

    fn run(key: &[u8; 32], msg: &[u8]) {
        if let Err(e) = check(key, msg) {
            panic!("{e}");
        }
    }

    /// r with every bit the clamp allows, s all ones.
    const MAX_KEY: [u8; 32] = [0xff; 32];

    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(167).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn rfc8439_vector() {
        let key: [u8; 32] =
            hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
                .unwrap()
                .try_into()
                .unwrap();
        let want = hex::decode("a8061dc1305136c6c22b8baf0c0127a9").unwrap();
        for (name, f) in implementations() {
            assert_eq!(
                &f(&key, b"Cryptographic Forum Research Group")[..],
                &want[..],
                "{name}"
            );
        }
    }

    #[test]
    fn every_length_up_to_600() {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0x5a);
        let msg = message(600, 3);
        for len in 0..=600 {
            run(&key, &msg[..len]);
            run(&MAX_KEY, &msg[..len]);
        }
    }

    #[test]
    fn all_ones_messages_with_the_largest_key() {
        // With r and the message limbs at their maxima the accumulator and
        // the products run at the top of their ranges.
        let ones = vec![0xffu8; 70_000];
        let mut lens: Vec<usize> = (0..=300).collect();
        // Every remainder mod the 128-byte group around small bases; near
        // the long ones a few, which is where the accumulator runs longest.
        for base in [512usize, 1024, 1400, 4096] {
            lens.extend((base - 130)..=(base + 130));
        }
        for base in [65_536usize, 70_000 - 17] {
            lens.extend((base - 17)..=(base + 17));
        }
        for len in lens {
            run(&MAX_KEY, &ones[..len]);
            let mut key = MAX_KEY;
            key[16..].fill(0);
            run(&key, &ones[..len]);
        }
    }

    #[test]
    fn final_reduction_at_the_modulus() {
        let p: [u64; 3] = [MASK44 - 4, MASK44, MASK42]; // 2^130 − 5
        let cases: [(Limbs, u128); 8] = [
            ([0, 0, 0], 0),
            (p, 0),
            ([p[0] + 1, p[1], p[2]], 1),
            ([p[0] + 4, p[1], p[2]], 4),
            ([p[0] - 1, p[1], p[2]], u128::MAX - 5), // p − 1 ≡ −6 mod 2^128
            ([MASK44 + 1, MASK44, MASK42], 5),       // 2^130 = p + 5
            // Not carried: limb 0 holds 2^44 + 7 → p + 12 + ... = 12 + 2^44 − 2^44
            ([MASK44 + 8, MASK44, MASK42], 12),
            ([1 << 50, 1 << 46, 1 << 43], {
                // 2^50 + 2^90 + 2^131 ≡ 2^50 + 2^90 + 10
                (1u128 << 50) + (1u128 << 90) + 10
            }),
        ];
        for (limbs, want) in cases {
            let mut h = limbs;
            assert_eq!(finish(&mut h), want, "{limbs:?}");
        }
    }

    #[test]
    fn vector_path_direct() {
        // The kernel on every block count mod 8 (how many zero blocks go in
        // front), with and without a short last block, from the smallest
        // length that takes the vector path, and on a few long messages.
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = x86::Ifma::detect() {
            let msg = message(70_000, 77);
            let mut lens: Vec<usize> = (MIN_VECTOR_LEN..=MIN_VECTOR_LEN + 2 * GROUP).collect();
            lens.extend([1400, 65_535, 65_536, 65_537, 70_000]);
            for len in lens {
                for key in [MAX_KEY, [0x31; 32], [0; 32]] {
                    assert_eq!(
                        limbs_poly1305(&key, &msg[..len], Some(t)),
                        reference(&key, &msg[..len]),
                        "len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn fallbacks_direct() {
        // The crate wrapper (used without IFMA) and the scalar limb code
        // (used for short messages), on their own.
        let msg = message(5000, 1);
        for len in [0, 1, 15, 16, 17, 255, 256, 1400, 5000] {
            for key in [MAX_KEY, [0x77; 32]] {
                let want = reference(&key, &msg[..len]);
                assert_eq!(crate_poly1305(&key, &msg[..len]), want, "crate, len {len}");
                assert_eq!(
                    limbs_poly1305(&key, &msg[..len], None),
                    want,
                    "scalar limbs, len {len}"
                );
            }
        }
    }

    fn key_strategy() -> impl Strategy<Value = [u8; 32]> {
        prop_oneof![
            any::<[u8; 32]>(),
            Just(MAX_KEY),
            // Largest r with a random s, and a random r with s all ones.
            any::<[u8; 16]>().prop_map(|s| {
                let mut k = MAX_KEY;
                k[16..].copy_from_slice(&s);
                k
            }),
            any::<[u8; 16]>().prop_map(|r| {
                let mut k = MAX_KEY;
                k[..16].copy_from_slice(&r);
                k
            }),
        ]
    }

    /// Any length up to 70000, weighted towards multiples of 16 and 128
    /// and their neighbours.
    fn length_strategy() -> impl Strategy<Value = usize> {
        let near = |unit: usize| {
            (0usize..=(70_000 / unit), -1i64..=1)
                .prop_map(move |(k, d)| ((k * unit) as i64 + d).clamp(0, 70_000) as usize)
        };
        prop_oneof![0usize..=70_000, 0usize..=2048, near(16), near(128)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_the_poly1305_crate(key in key_strategy(), len in length_strategy(),
                                      seed in any::<u64>(), ones in any::<bool>()) {
            let msg: Vec<u8> = if ones {
                vec![0xff; len]
            } else {
                let mut x = seed | 1;
                (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect()
            };
            check(&key, &msg)?;
        }
    }
}
