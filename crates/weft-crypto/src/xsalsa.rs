//! XSalsa20 keystream, several blocks at a time.
//!
//! The `salsa20` crate produces one 64-byte block per call through its SSE2
//! backend (about 0.7 GB/s), which made it the hot spot of the encrypted
//! sleeve. Here the Salsa20/20 core runs "word sliced": one vector holds the
//! same state word of eight consecutive blocks, so the 20 rounds of eight
//! blocks cost about what one block costs in scalar code.
//!
//! * [`hsalsa20`] derives the XSalsa20 subkey from the key and the first 16
//!   nonce bytes (NaCl's `crypto_core_hsalsa20`).
//! * [`Salsa20`] is a keyed Salsa20/20 instance (subkey plus the last 8
//!   nonce bytes) that XORs its keystream into caller buffers, starting at
//!   any block counter and any byte offset inside that block.
//! * [`Keystream`] names the implementation: AVX-512 (VL) or AVX2 on
//!   x86_64 when the CPU has them, otherwise a portable scalar core. The
//!   crate's [`Backend`](crate::Backend) decides which one runs.
//!
//! All the `unsafe` code (the intrinsics) lives in the private `x86` module;
//! its functions are reachable only through tokens that exist after a
//! successful run-time feature check.

use salsa20::cipher::consts::U10;
use salsa20::cipher::generic_array::GenericArray;
use zeroize::{Zeroize, Zeroizing};

/// Bytes in one Salsa20 block.
pub(crate) const BLOCK_LEN: usize = 64;

/// Blocks the SIMD kernels produce per call.
const BATCH_BLOCKS: usize = 8;

/// Bytes the SIMD kernels produce per call.
pub(crate) const BATCH_LEN: usize = BLOCK_LEN * BATCH_BLOCKS;

/// Below this many keystream bytes a scalar block is cheaper than a full
/// SIMD batch of eight.
const SCALAR_MAX: usize = BLOCK_LEN;

/// "expand 32-byte k", the Salsa20 constant words (positions 0, 5, 10, 15).
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// NaCl's HSalsa20: the subkey for the XSalsa20 instance keyed by `key` with
/// a nonce whose first 16 bytes are `input` (also `crypto_box_beforenm`'s
/// last step, with a zero input).
pub(crate) fn hsalsa20(key: &[u8; 32], input: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut out = salsa20::hsalsa::<U10>(key.into(), GenericArray::from_slice(input));
    let mut subkey = Zeroizing::new([0u8; 32]);
    subkey.copy_from_slice(&out);
    out.as_mut_slice().zeroize();
    subkey
}

/// One Salsa20 quarter round on four words of a scalar state.
#[inline(always)]
fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
    x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
    x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
    x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
}

/// Writes keystream block `counter` of the instance whose input words
/// (counter words left at zero) are `input` into `out`. The plain
/// one-block-at-a-time core; its working state is zeroized before it
/// returns.
fn scalar_block(input: &[u32; 16], counter: u64, out: &mut [u8; BLOCK_LEN]) {
    let mut start = *input;
    start[8] = counter as u32;
    start[9] = (counter >> 32) as u32;
    let mut x = start;
    for _ in 0..10 {
        // Columns.
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 5, 9, 13, 1);
        quarter(&mut x, 10, 14, 2, 6);
        quarter(&mut x, 15, 3, 7, 11);
        // Rows.
        quarter(&mut x, 0, 1, 2, 3);
        quarter(&mut x, 5, 6, 7, 4);
        quarter(&mut x, 10, 11, 8, 9);
        quarter(&mut x, 15, 12, 13, 14);
    }
    for (i, bytes) in out.chunks_exact_mut(4).enumerate() {
        bytes.copy_from_slice(&x[i].wrapping_add(start[i]).to_le_bytes());
    }
    x.zeroize();
    start.zeroize();
}

/// XORs `data` (at most one block) with keystream block `counter`.
fn scalar_xor_block(input: &[u32; 16], counter: u64, data: &mut [u8]) {
    let mut ks = [0u8; BLOCK_LEN];
    scalar_block(input, counter, &mut ks);
    for (d, k) in data.iter_mut().zip(ks.iter()) {
        *d ^= k;
    }
    ks.zeroize();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
}

/// Which Salsa20 implementation to run. The SIMD variants can only be
/// obtained after the CPU was checked for the features they use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Keystream(Kind);

impl Keystream {
    /// The fastest implementation this CPU supports.
    #[cfg(test)]
    pub(crate) fn detect() -> Keystream {
        Keystream::avx512()
            .or_else(Keystream::avx2)
            .unwrap_or_else(Keystream::scalar)
    }

    /// Every implementation this machine can run (for tests that cover them all).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Keystream> {
        let mut all = vec![Keystream::scalar()];
        all.extend(Keystream::avx2());
        all.extend(Keystream::avx512());
        all
    }

    /// The portable implementation, available everywhere.
    pub(crate) fn scalar() -> Keystream {
        Keystream(Kind::Scalar)
    }

    /// Eight blocks per step in 256-bit AVX2 registers, if the CPU has AVX2.
    pub(crate) fn avx2() -> Option<Keystream> {
        #[cfg(target_arch = "x86_64")]
        {
            x86::Avx2::detect().map(|t| Keystream(Kind::Avx2(t)))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The AVX2 kernel with AVX-512VL's one-instruction rotations and its 32
    /// vector registers, if the CPU has AVX-512F and AVX-512VL.
    pub(crate) fn avx512() -> Option<Keystream> {
        #[cfg(target_arch = "x86_64")]
        {
            x86::Avx512::detect().map(|t| Keystream(Kind::Avx512(t)))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// A short name: "scalar", "avx2" or "avx512".
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Kind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2(_) => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512(_) => "avx512",
        }
    }

    fn is_scalar(self) -> bool {
        self.0 == Kind::Scalar
    }

    /// XORs `chunk` with keystream blocks `counter..counter + 8`.
    fn xor_batch(self, input: &[u32; 16], counter: u64, chunk: &mut [u8; BATCH_LEN]) {
        match self.0 {
            Kind::Scalar => {
                let mut c = counter;
                for block in chunk.chunks_exact_mut(BLOCK_LEN) {
                    scalar_xor_block(input, c, block);
                    c = c.wrapping_add(1);
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2(t) => t.xor_batch(input, counter, chunk),
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512(t) => t.xor_batch(input, counter, chunk),
        }
    }
}

/// A Salsa20/20 instance: key and 8-byte nonce fixed, block counter chosen
/// per call. Its key words are zeroized on drop.
pub(crate) struct Salsa20 {
    /// The input block with the counter words (8 and 9) at zero.
    input: [u32; 16],
}

impl Salsa20 {
    /// The instance for `key` and `nonce`.
    pub(crate) fn new(key: &[u8; 32], nonce: &[u8; 8]) -> Salsa20 {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut input = [0u32; 16];
        input[0] = SIGMA[0];
        input[5] = SIGMA[1];
        input[10] = SIGMA[2];
        input[15] = SIGMA[3];
        for i in 0..4 {
            input[1 + i] = word(&key[4 * i..]);
            input[11 + i] = word(&key[16 + 4 * i..]);
        }
        input[6] = word(&nonce[..4]);
        input[7] = word(&nonce[4..]);
        Salsa20 { input }
    }

    /// The XSalsa20 instance for `key` and a 24-byte `nonce`: Salsa20 keyed
    /// by HSalsa20(key, nonce[..16]) with nonce[16..] as its nonce.
    pub(crate) fn xsalsa20(key: &[u8; 32], nonce: &[u8; 24]) -> Salsa20 {
        let mut head = [0u8; 16];
        head.copy_from_slice(&nonce[..16]);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&nonce[16..]);
        let subkey = hsalsa20(key, &head);
        Salsa20::new(&subkey, &tail)
    }

    /// Writes keystream from the start of block `counter` into `buf`: at
    /// least `min(need, BATCH_LEN)` bytes, a whole number of blocks. Returns
    /// how many bytes were written (at least one block).
    pub(crate) fn fill(
        &self,
        backend: Keystream,
        counter: u64,
        need: usize,
        buf: &mut [u8; BATCH_LEN],
    ) -> usize {
        if backend.is_scalar() || need <= SCALAR_MAX {
            let blocks = need.div_ceil(BLOCK_LEN).clamp(1, BATCH_BLOCKS);
            let mut c = counter;
            for block in buf[..blocks * BLOCK_LEN].chunks_exact_mut(BLOCK_LEN) {
                if let Ok(block) = <&mut [u8; BLOCK_LEN]>::try_from(block) {
                    scalar_block(&self.input, c, block);
                }
                c = c.wrapping_add(1);
            }
            blocks * BLOCK_LEN
        } else {
            buf.fill(0);
            backend.xor_batch(&self.input, counter, buf);
            BATCH_LEN
        }
    }

    /// XORs `data` with the keystream that starts at the beginning of block
    /// `counter`.
    pub(crate) fn xor_blocks(&self, backend: Keystream, counter: u64, data: &mut [u8]) {
        let mut counter = counter;
        let mut chunks = data.chunks_exact_mut(BATCH_LEN);
        for chunk in &mut chunks {
            // Always `Ok`: `chunks_exact_mut` yields exactly BATCH_LEN bytes.
            if let Ok(chunk) = <&mut [u8; BATCH_LEN]>::try_from(chunk) {
                backend.xor_batch(&self.input, counter, chunk);
            }
            counter = counter.wrapping_add(BATCH_BLOCKS as u64);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; BATCH_LEN];
            self.fill(backend, counter, rest.len(), &mut buf);
            xor_into(rest, &buf);
            buf.zeroize();
        }
    }

    /// XORs `data` with the keystream that starts at byte `offset` of block
    /// `counter` (an offset of a block or more moves to later blocks).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn xor_at(&self, backend: Keystream, counter: u64, offset: usize, data: &mut [u8]) {
        let counter = counter.wrapping_add((offset / BLOCK_LEN) as u64);
        let offset = offset % BLOCK_LEN;
        if offset == 0 {
            return self.xor_blocks(backend, counter, data);
        }
        let mut buf = [0u8; BATCH_LEN];
        let made = self.fill(backend, counter, offset + data.len(), &mut buf);
        let (head, rest) = data.split_at_mut(data.len().min(made - offset));
        xor_into(head, &buf[offset..]);
        buf.zeroize();
        self.xor_blocks(
            backend,
            counter.wrapping_add((made / BLOCK_LEN) as u64),
            rest,
        );
    }
}

impl Drop for Salsa20 {
    fn drop(&mut self) {
        self.input.zeroize();
    }
}

/// `data[i] ^= keystream[i]` over `data` (`keystream` may be longer).
pub(crate) fn xor_into(data: &mut [u8], keystream: &[u8]) {
    for (d, k) in data.iter_mut().zip(keystream) {
        *d ^= k;
    }
}

/// The SIMD kernels. Everything `unsafe` in this crate is in here.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::BATCH_LEN;
    use std::arch::x86_64::*;

    /// Proof that the CPU has AVX2 (only [`Avx2::detect`] makes one).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Avx2(());

    impl Avx2 {
        pub(super) fn detect() -> Option<Avx2> {
            is_x86_feature_detected!("avx2").then_some(Avx2(()))
        }

        pub(super) fn xor_batch(
            self,
            input: &[u32; 16],
            counter: u64,
            chunk: &mut [u8; BATCH_LEN],
        ) {
            // SAFETY: `xor8_avx2` (and `xor_transposed`, which it calls) is
            // compiled for AVX2 only; this token exists only if `detect`
            // saw AVX2 on this CPU at run time (`is_x86_feature_detected!`).
            // It has no other precondition: all its memory accesses are
            // through the borrowed, fixed-size `input` and `chunk`.
            unsafe { xor8_avx2(input, counter, chunk) }
        }
    }

    /// Proof that the CPU has AVX2, AVX-512F and AVX-512VL.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Avx512(());

    impl Avx512 {
        pub(super) fn detect() -> Option<Avx512> {
            let ok = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl");
            ok.then_some(Avx512(()))
        }

        pub(super) fn xor_batch(
            self,
            input: &[u32; 16],
            counter: u64,
            chunk: &mut [u8; BATCH_LEN],
        ) {
            // SAFETY: `xor8_avx512` is compiled for AVX2, AVX-512F and
            // AVX-512VL; this token exists only if `detect` saw all three on
            // this CPU at run time. It has no other precondition: all its
            // memory accesses are through the borrowed `input` and `chunk`.
            unsafe { xor8_avx512(input, counter, chunk) }
        }
    }

    /// Rotate every 32-bit lane left by `$n` with two shifts and an OR (AVX2
    /// has no vector rotate).
    macro_rules! rotl_shifts {
        ($v:expr, $n:literal) => {{
            let v = $v;
            _mm256_or_si256(
                _mm256_slli_epi32::<$n>(v),
                _mm256_srli_epi32::<{ 32 - $n }>(v),
            )
        }};
    }

    /// Rotate every 32-bit lane left by `$n` with AVX-512VL's `vprold`.
    macro_rules! rotl_vprold {
        ($v:expr, $n:literal) => {
            _mm256_rol_epi32::<$n>($v)
        };
    }

    /// A vector with every lane set to the word `$w` (a macro rather than a
    /// closure, which would not share the kernel's target features).
    macro_rules! splat {
        ($w:expr) => {
            _mm256_set1_epi32($w as i32)
        };
    }

    /// One quarter round on four word vectors (eight blocks at once).
    macro_rules! quarter {
        ($rotl:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {
            $b = _mm256_xor_si256($b, $rotl!(_mm256_add_epi32($a, $d), 7));
            $c = _mm256_xor_si256($c, $rotl!(_mm256_add_epi32($b, $a), 9));
            $d = _mm256_xor_si256($d, $rotl!(_mm256_add_epi32($c, $b), 13));
            $a = _mm256_xor_si256($a, $rotl!(_mm256_add_epi32($d, $c), 18));
        };
    }

    /// Defines an eight-block kernel compiled for `$features`, rotating with
    /// `$rotl`. Both variants share every other instruction.
    macro_rules! kernel {
        ($(#[$doc:meta])* $name:ident, $features:literal, $rotl:ident) => {
            $(#[$doc])*
            ///
            /// Safe to call only from code compiled with the same features;
            /// its caller, the token's `xor_batch`, holds proof of the
            /// run-time CPU check.
            #[target_feature(enable = $features)]
            fn $name(input: &[u32; 16], counter: u64, chunk: &mut [u8; BATCH_LEN]) {
                // Lane j of every vector belongs to block `counter + j`.
                let mut lo = [0i32; 8];
                let mut hi = [0i32; 8];
                for (j, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                    let c = counter.wrapping_add(j as u64);
                    *l = c as u32 as i32;
                    *h = (c >> 32) as u32 as i32;
                }
                let ctr_lo = _mm256_setr_epi32(lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7]);
                let ctr_hi = _mm256_setr_epi32(hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7]);

                let (s0, s1, s2, s3) = (splat!(input[0]), splat!(input[1]), splat!(input[2]), splat!(input[3]));
                let (s4, s5, s6, s7) = (splat!(input[4]), splat!(input[5]), splat!(input[6]), splat!(input[7]));
                let (s10, s11) = (splat!(input[10]), splat!(input[11]));
                let (s12, s13, s14, s15) = (splat!(input[12]), splat!(input[13]), splat!(input[14]), splat!(input[15]));

                let (mut x0, mut x1, mut x2, mut x3) = (s0, s1, s2, s3);
                let (mut x4, mut x5, mut x6, mut x7) = (s4, s5, s6, s7);
                let (mut x8, mut x9, mut x10, mut x11) = (ctr_lo, ctr_hi, s10, s11);
                let (mut x12, mut x13, mut x14, mut x15) = (s12, s13, s14, s15);

                for _ in 0..10 {
                    quarter!($rotl, x0, x4, x8, x12);
                    quarter!($rotl, x5, x9, x13, x1);
                    quarter!($rotl, x10, x14, x2, x6);
                    quarter!($rotl, x15, x3, x7, x11);
                    quarter!($rotl, x0, x1, x2, x3);
                    quarter!($rotl, x5, x6, x7, x4);
                    quarter!($rotl, x10, x11, x8, x9);
                    quarter!($rotl, x15, x12, x13, x14);
                }

                let first = [
                    _mm256_add_epi32(x0, s0),
                    _mm256_add_epi32(x1, s1),
                    _mm256_add_epi32(x2, s2),
                    _mm256_add_epi32(x3, s3),
                    _mm256_add_epi32(x4, s4),
                    _mm256_add_epi32(x5, s5),
                    _mm256_add_epi32(x6, s6),
                    _mm256_add_epi32(x7, s7),
                ];
                let second = [
                    _mm256_add_epi32(x8, ctr_lo),
                    _mm256_add_epi32(x9, ctr_hi),
                    _mm256_add_epi32(x10, s10),
                    _mm256_add_epi32(x11, s11),
                    _mm256_add_epi32(x12, s12),
                    _mm256_add_epi32(x13, s13),
                    _mm256_add_epi32(x14, s14),
                    _mm256_add_epi32(x15, s15),
                ];
                // Words 0..8 of block j go to bytes 64j..64j+32, words 8..16
                // to the 32 bytes after them.
                xor_transposed(first, chunk, 0);
                xor_transposed(second, chunk, 32);
            }
        };
    }

    kernel!(
        /// Eight Salsa20/20 blocks with AVX2, XORed into `chunk`.
        xor8_avx2,
        "avx2",
        rotl_shifts
    );

    kernel!(
        /// Eight Salsa20/20 blocks with AVX2 plus AVX-512VL rotations,
        /// XORed into `chunk`.
        xor8_avx512,
        "avx2,avx512f,avx512vl",
        rotl_vprold
    );

    /// Takes `rows[w]` = state word `w` (of some group of eight words) of
    /// blocks 0..8, turns it into per-block vectors (an 8×8 transpose of
    /// 32-bit lanes) and XORs block j's vector into `chunk` at
    /// `64 * j + at`.
    ///
    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor_transposed(rows: [__m256i; 8], chunk: &mut [u8; BATCH_LEN], at: usize) {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
        // Pairs of words, per 128-bit half: (r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5]) ...
        let t0 = _mm256_unpacklo_epi32(r0, r1);
        let t1 = _mm256_unpackhi_epi32(r0, r1);
        let t2 = _mm256_unpacklo_epi32(r2, r3);
        let t3 = _mm256_unpackhi_epi32(r2, r3);
        let t4 = _mm256_unpacklo_epi32(r4, r5);
        let t5 = _mm256_unpackhi_epi32(r4, r5);
        let t6 = _mm256_unpacklo_epi32(r6, r7);
        let t7 = _mm256_unpackhi_epi32(r6, r7);
        // Four words of one block per half: u0 = words 0..4 of blocks 0 | 4, ...
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        // Join the halves: low halves give blocks 0..4, high halves 4..8.
        let blocks = [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ];
        for (block, ks) in chunk.chunks_exact_mut(64).zip(blocks) {
            // `at` is 0 or 32: the 32 bytes to XOR, or an empty slice (and
            // no access) if a caller ever passed anything else.
            let Some(bytes) = block.get_mut(at..at + 32) else {
                continue;
            };
            let p = bytes.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `p` points to the 32 bytes of `bytes`, a slice of
            // exactly 32 bytes inside `chunk`, which we borrow mutably; the
            // load reads and the store writes exactly those 32 bytes, and
            // loadu/storeu have no alignment requirement.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), ks)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    fn backends() -> Vec<Keystream> {
        Keystream::all()
    }

    /// The `salsa20` crate's keystream XOR from byte `pos` of the stream.
    fn reference(key: &[u8; 32], nonce: &[u8; 8], pos: u64, data: &mut [u8]) {
        let mut c = salsa20::Salsa20::new(key.into(), nonce.into());
        c.seek(pos);
        c.apply_keystream(data);
    }

    #[test]
    fn detection_is_stable_and_simd_is_present_here() {
        let b = Keystream::detect();
        assert_eq!(b, Keystream::detect());
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(!b.is_scalar(), "AVX2 machine fell back to {}", b.name());
        }
    }

    #[test]
    fn known_block_zero_key() {
        // Salsa20/20 with an all-zero key and nonce, block 0 (first bytes of
        // the published keystream for this key).
        let s = Salsa20::new(&[0; 32], &[0; 8]);
        for b in backends() {
            let mut data = [0u8; 16];
            s.xor_at(b, 0, 0, &mut data);
            let mut want = [0u8; 16];
            reference(&[0; 32], &[0; 8], 0, &mut want);
            assert_eq!(data, want, "{}", b.name());
        }
    }

    #[test]
    fn every_length_and_offset_against_reference() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 1) as u8);
        let nonce = [9, 8, 7, 6, 5, 4, 3, 2];
        let s = Salsa20::new(&key, &nonce);
        for b in backends() {
            for offset in [0usize, 1, 32, 63, 100, 513] {
                for len in 0..1100usize {
                    let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let mut got = src.clone();
                    s.xor_at(b, 3, offset, &mut got);
                    let mut want = src;
                    reference(&key, &nonce, 3 * 64 + offset as u64, &mut want);
                    assert_eq!(got, want, "{} offset {offset} len {len}", b.name());
                }
            }
        }
    }

    #[test]
    fn counter_carries_into_the_high_word() {
        let key = [0x42u8; 32];
        let nonce = [1u8; 8];
        let s = Salsa20::new(&key, &nonce);
        let start = (1u64 << 32) - 5;
        for b in backends() {
            let mut got = vec![0u8; 2000];
            s.xor_at(b, start, 17, &mut got);
            let mut want = vec![0u8; 2000];
            reference(&key, &nonce, start * 64 + 17, &mut want);
            assert_eq!(got, want, "{}", b.name());
        }
    }

    #[test]
    fn counter_wraps_the_same_way_everywhere() {
        let s = Salsa20::new(&[5; 32], &[6; 8]);
        let mut want = vec![0u8; 1500];
        s.xor_at(Keystream::scalar(), u64::MAX - 3, 5, &mut want);
        for b in backends() {
            let mut got = vec![0u8; 1500];
            s.xor_at(b, u64::MAX - 3, 5, &mut got);
            assert_eq!(got, want, "{}", b.name());
        }
    }

    #[test]
    fn fill_reports_whole_blocks() {
        let s = Salsa20::new(&[1; 32], &[2; 8]);
        for b in backends() {
            for need in [0usize, 1, 64, 65, 200, 512, 5000] {
                let mut buf = [0u8; BATCH_LEN];
                let made = s.fill(b, 7, need, &mut buf);
                assert!(made >= need.clamp(1, BATCH_LEN) && made.is_multiple_of(BLOCK_LEN));
                let mut want = vec![0u8; made];
                s.xor_blocks(Keystream::scalar(), 7, &mut want);
                assert_eq!(&buf[..made], &want[..], "{} need {need}", b.name());
            }
        }
    }

    #[test]
    fn xsalsa20_matches_the_reference_construction() {
        let key = [0x11u8; 32];
        let nonce: [u8; 24] = std::array::from_fn(|i| i as u8);
        let mut got = vec![0u8; 777];
        Salsa20::xsalsa20(&key, &nonce).xor_at(Keystream::detect(), 0, 0, &mut got);
        let mut want = vec![0u8; 777];
        let mut c = salsa20::XSalsa20::new(&key.into(), &nonce.into());
        c.apply_keystream(&mut want);
        assert_eq!(got, want);
    }

    fn counter_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..100,
            ((1u64 << 32) - 20)..((1u64 << 32) + 20),
            any::<u64>(),
        ]
    }

    proptest! {
        #[test]
        fn simd_matches_scalar(key in any::<[u8; 32]>(), nonce in any::<[u8; 8]>(),
                               counter in counter_strategy(), offset in 0usize..200,
                               data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let s = Salsa20::new(&key, &nonce);
            let mut want = data.clone();
            s.xor_at(Keystream::scalar(), counter, offset, &mut want);
            for b in backends() {
                let mut got = data.clone();
                s.xor_at(b, counter, offset, &mut got);
                prop_assert_eq!(&got, &want, "{}", b.name());
            }
        }

        #[test]
        fn scalar_matches_salsa20_crate(key in any::<[u8; 32]>(), nonce in any::<[u8; 8]>(),
                                        counter in 0u64..(1 << 40), offset in 0usize..64,
                                        len in 0usize..3000) {
            let s = Salsa20::new(&key, &nonce);
            let mut got = vec![0xa5u8; len];
            s.xor_at(Keystream::scalar(), counter, offset, &mut got);
            let mut want = vec![0xa5u8; len];
            reference(&key, &nonce, counter * 64 + offset as u64, &mut want);
            prop_assert_eq!(got, want);
        }
    }
}
