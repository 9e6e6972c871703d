//! Differential tests of weft-crypto's own XSalsa20 and Poly1305 against
//! libsodium (the system library, through `libsodium-sys-stable`), on every
//! backend this CPU runs.
//!
//! Cases are drawn from a seeded generator; the seed is printed and can be
//! replayed with `WEFT_CRYPTO_TEST_SEED=<n>`. Each check compares through
//! [`Impl`], so `the_comparison_notices_faults` can run the very same
//! checks on deliberately broken implementations and see them fail.

mod sodium;

use weft_crypto::secretbox::{onetimeauth_with, xsalsa20_xor_ic, SecretBox};
use weft_crypto::{available_backends, Backend, CryptoError};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("WEFT_CRYPTO_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
                u64::from_le_bytes(b)
            });
        eprintln!("WEFT_CRYPTO_TEST_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }

    fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A one-time Poly1305 key, now and then with r and s at their maxima.
    fn mac_key(&mut self) -> [u8; 32] {
        let mut k = self.bytes::<32>();
        match self.below(4) {
            0 => k = [0xff; 32],
            1 => k[..16].fill(0xff),
            _ => {}
        }
        k
    }
}

/// The operations under test, so that the same checks can be pointed at a
/// faulty implementation.
trait Impl {
    fn name(&self) -> String;
    fn seal(&self, key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16];
    fn open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 24],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoError>;
    fn stream_xor(&self, key: &[u8; 32], nonce: &[u8; 24], ic: u64, data: &mut [u8]);
    fn mac(&self, key: &[u8; 32], msg: &[u8]) -> [u8; 16];
}

/// weft-crypto on one backend.
struct Weft(Backend);

impl Impl for Weft {
    fn name(&self) -> String {
        self.0.name().to_string()
    }
    fn seal(&self, key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
        match SecretBox::with_backend(key, self.0) {
            Ok(sb) => sb.seal_in_place_detached(nonce, buf),
            Err(e) => panic!("{e}"),
        }
    }
    fn open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 24],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoError> {
        match SecretBox::with_backend(key, self.0) {
            Ok(sb) => sb.open_in_place_detached(nonce, buf, tag),
            Err(e) => panic!("{e}"),
        }
    }
    fn stream_xor(&self, key: &[u8; 32], nonce: &[u8; 24], ic: u64, data: &mut [u8]) {
        if let Err(e) = xsalsa20_xor_ic(self.0, key, nonce, ic, data) {
            panic!("{e}");
        }
    }
    fn mac(&self, key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        onetimeauth_with(self.0, key, msg).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn backends() -> Vec<Weft> {
    available_backends().into_iter().map(Weft).collect()
}

/// Says which backends a test covered (and which this CPU lacks), on
/// stderr: visible with `--nocapture` and in nextest's failure output.
fn report(test: &str) {
    let ran: Vec<_> = available_backends().iter().map(|b| b.name()).collect();
    let missing: Vec<_> = Backend::ALL
        .iter()
        .filter(|b| !b.is_available())
        .map(|b| b.name())
        .collect();
    eprintln!(
        "{test}: backends covered: {}; not on this CPU: {}",
        ran.join(", "),
        if missing.is_empty() {
            "none".to_string()
        } else {
            missing.join(", ")
        }
    );
}

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Seals `msg` at byte offset `align` of a larger buffer (so its address
/// has any alignment) and compares with `crypto_secretbox_easy`; opens
/// libsodium's box in place at that offset; and checks that a flipped tag
/// bit, a flipped ciphertext bit and a truncated ciphertext are refused
/// (by libsodium too) without touching the buffer.
fn check_secretbox(
    imp: &dyn Impl,
    rng: &mut Rng,
    key: &[u8; 32],
    nonce: &[u8; 24],
    msg: &[u8],
    align: usize,
) -> Check {
    let ctx = || format!("{} len {} align {align}", imp.name(), msg.len());
    let boxed = sodium::secretbox_easy(key, nonce, msg);
    let (want_tag, want_ct) = boxed.split_at(sodium::MAC_LEN);

    let mut space = vec![0u8; align + msg.len() + 7];
    let buf = &mut space[align..align + msg.len()];
    buf.copy_from_slice(msg);
    let tag = imp.seal(key, nonce, buf);
    ensure(tag[..] == *want_tag, || {
        format!("{}: tag differs from libsodium", ctx())
    })?;
    ensure(*buf == *want_ct, || {
        format!("{}: ciphertext differs from libsodium", ctx())
    })?;

    // Open libsodium's box in place.
    buf.copy_from_slice(want_ct);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(want_tag);
    ensure(imp.open(key, nonce, buf, &tag).is_ok(), || {
        format!("{}: refused libsodium's box", ctx())
    })?;
    ensure(*buf == *msg, || format!("{}: opened to other bytes", ctx()))?;

    // A flipped tag bit.
    let mut bad_tag = tag;
    let bit = rng.below(128);
    bad_tag[bit / 8] ^= 1 << (bit % 8);
    buf.copy_from_slice(want_ct);
    ensure(
        imp.open(key, nonce, buf, &bad_tag) == Err(CryptoError::DecryptFailed),
        || format!("{}: accepted tag with bit {bit} flipped", ctx()),
    )?;
    ensure(*buf == *want_ct, || {
        format!("{}: buffer changed on refusal", ctx())
    })?;
    let mut forged = boxed.clone();
    forged[bit / 8] ^= 1 << (bit % 8);
    ensure(
        sodium::secretbox_open_easy(key, nonce, &forged).is_none(),
        || format!("{}: libsodium accepted a flipped tag", ctx()),
    )?;

    if !msg.is_empty() {
        // A flipped ciphertext bit.
        let bit = rng.below(msg.len() * 8);
        buf[bit / 8] ^= 1 << (bit % 8);
        let tampered = buf.to_vec();
        ensure(
            imp.open(key, nonce, buf, &tag) == Err(CryptoError::DecryptFailed),
            || format!("{}: accepted ciphertext with bit {bit} flipped", ctx()),
        )?;
        ensure(*buf == *tampered, || {
            format!("{}: buffer changed on refusal", ctx())
        })?;
        let mut forged = boxed.clone();
        forged[sodium::MAC_LEN + bit / 8] ^= 1 << (bit % 8);
        ensure(
            sodium::secretbox_open_easy(key, nonce, &forged).is_none(),
            || format!("{}: libsodium accepted a flipped ciphertext", ctx()),
        )?;

        // The ciphertext cut short under the original tag.
        let cut = rng.below(msg.len());
        let mut short = want_ct[..cut].to_vec();
        ensure(
            imp.open(key, nonce, &mut short, &tag) == Err(CryptoError::DecryptFailed),
            || format!("{}: accepted the ciphertext cut to {cut} bytes", ctx()),
        )?;
    }
    Ok(())
}

/// The keystream from block `ic`, XORed into `data` at any alignment,
/// against `crypto_stream_xsalsa20_xor_ic`.
fn check_stream(
    imp: &dyn Impl,
    key: &[u8; 32],
    nonce: &[u8; 24],
    ic: u64,
    data: &[u8],
    align: usize,
) -> Check {
    let want = sodium::stream_xsalsa20_xor_ic(key, nonce, ic, data);
    let mut space = vec![0u8; align + data.len()];
    let buf = &mut space[align..];
    buf.copy_from_slice(data);
    imp.stream_xor(key, nonce, ic, buf);
    ensure(*buf == *want, || {
        let at = buf.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
        format!(
            "{} stream ic {ic} len {} align {align}: differs from libsodium at byte {at}",
            imp.name(),
            data.len()
        )
    })
}

/// The Poly1305 tag against `crypto_onetimeauth_poly1305`, and libsodium's
/// verify on ours and on ours with a bit flipped.
fn check_mac(imp: &dyn Impl, rng: &mut Rng, key: &[u8; 32], msg: &[u8]) -> Check {
    let ctx = || format!("{} onetimeauth len {}", imp.name(), msg.len());
    let want = sodium::onetimeauth_poly1305(key, msg);
    let got = imp.mac(key, msg);
    ensure(got == want, || {
        format!("{}: tag differs from libsodium", ctx())
    })?;
    ensure(sodium::onetimeauth_poly1305_verify(key, msg, &got), || {
        format!("{}: libsodium does not verify our tag", ctx())
    })?;
    let mut bad = got;
    let bit = rng.below(128);
    bad[bit / 8] ^= 1 << (bit % 8);
    ensure(!sodium::onetimeauth_poly1305_verify(key, msg, &bad), || {
        format!("{}: libsodium verified a flipped tag", ctx())
    })
}

/// Every length from 0 to `max_small` (so every remainder modulo the
/// 64-byte Salsa20 block, the 512-byte batch, the 16-byte Poly1305 block and
/// the 128-byte IFMA group, with the 32-byte MAC-key offset), random lengths
/// up to 70,000, and lengths around and above 64 KiB.
fn lengths(rng: &mut Rng, max_small: usize, random: usize) -> Vec<usize> {
    let mut lens: Vec<usize> = (0..=max_small).collect();
    lens.extend((0..random).map(|_| rng.below(70_001)));
    lens.extend([
        // Around the switch from weft's scalar Poly1305 to the poly1305 crate on CPUs
        // without IFMA (4096 bytes), and a path-MTU segment's chunk.
        1436,
        4095,
        4096,
        4097,
        65_535 - 32,
        65_535,
        65_536,
        65_537,
        65_536 + 16 * 8 + 1,
        65_536 + 512 - 31,
        70_000,
    ]);
    lens
}

fn run_secretbox(imp: &dyn Impl, rng: &mut Rng, max_small: usize, random: usize) -> Check {
    for len in lengths(rng, max_small, random) {
        let (key, nonce) = (rng.bytes::<32>(), rng.bytes::<24>());
        let msg = rng.vec(len);
        let align = rng.below(64);
        check_secretbox(imp, rng, &key, &nonce, &msg, align)?;
    }
    Ok(())
}

fn run_stream(imp: &dyn Impl, rng: &mut Rng, max_small: usize, random: usize) -> Check {
    for len in lengths(rng, max_small, random) {
        let (key, nonce) = (rng.bytes::<32>(), rng.bytes::<24>());
        let ic = match rng.below(4) {
            0 => 0,
            1 => rng.below(100) as u64,
            // Across the carry into the counter's high word.
            2 => (1u64 << 32) - 1 - rng.below(8) as u64,
            _ => rng.next() >> 2,
        };
        let data = rng.vec(len);
        check_stream(imp, &key, &nonce, ic, &data, rng.below(64))?;
    }
    Ok(())
}

fn run_mac(imp: &dyn Impl, rng: &mut Rng, max_small: usize, random: usize) -> Check {
    for len in lengths(rng, max_small, random) {
        let key = rng.mac_key();
        let msg = if rng.below(8) == 0 {
            vec![0xff; len]
        } else {
            rng.vec(len)
        };
        check_mac(imp, rng, &key, &msg)?;
    }
    Ok(())
}

fn must(r: Check) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn secretbox_matches_libsodium_on_every_backend() {
    let mut rng = Rng::from_env();
    for imp in backends() {
        must(run_secretbox(&imp, &mut rng, 1100, 12));
    }
    report("secretbox");
}

#[test]
fn xsalsa20_matches_libsodium_on_every_backend() {
    let mut rng = Rng::from_env();
    for imp in backends() {
        must(run_stream(&imp, &mut rng, 1100, 12));
        // The plain keystream (crypto_stream_xsalsa20) too.
        let (key, nonce) = (rng.bytes::<32>(), rng.bytes::<24>());
        let mut zeros = vec![0u8; 4099];
        imp.stream_xor(&key, &nonce, 0, &mut zeros);
        assert_eq!(
            zeros,
            sodium::stream_xsalsa20(&key, &nonce, 4099),
            "{}",
            imp.name()
        );
    }
    report("xsalsa20");
}

#[test]
fn poly1305_matches_libsodium_on_every_backend() {
    let mut rng = Rng::from_env();
    for imp in backends() {
        must(run_mac(&imp, &mut rng, 700, 24));
    }
    report("poly1305");
}

#[test]
fn unavailable_backends_are_refused() {
    for b in Backend::ALL {
        let sb = SecretBox::with_backend(&[1; 32], b);
        assert_eq!(sb.is_ok(), b.is_available(), "{b}");
        assert_eq!(
            xsalsa20_xor_ic(b, &[1; 32], &[2; 24], 0, &mut [0u8; 64]).is_ok(),
            b.is_available(),
            "{b}"
        );
        assert_eq!(
            onetimeauth_with(b, &[1; 32], b"x").is_ok(),
            b.is_available(),
            "{b}"
        );
    }
}

/// An implementation that gets one operation slightly wrong.
struct Faulty {
    inner: Weft,
    fault: Fault,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The tag's last bit, only for messages longer than 1000 bytes.
    SealTagOnLong,
    /// One ciphertext bit at byte 700 (the second keystream batch).
    SealCiphertext,
    /// Compares only the first 15 bytes of the tag.
    OpenSkipsLastTagByte,
    /// Keystream bit flipped in the last byte of long inputs.
    StreamTail,
    /// The MAC of messages of exactly 17 bytes.
    MacAt17,
}

impl Impl for Faulty {
    fn name(&self) -> String {
        format!("faulty {:?} on {}", self.fault, self.inner.name())
    }
    fn seal(&self, key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
        let mut tag = self.inner.seal(key, nonce, buf);
        match self.fault {
            Fault::SealTagOnLong if buf.len() > 1000 => tag[15] ^= 0x80,
            Fault::SealCiphertext if buf.len() > 700 => buf[700] ^= 4,
            _ => {}
        }
        tag
    }
    fn open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 24],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoError> {
        if let Fault::OpenSkipsLastTagByte = self.fault {
            // Works out the true tag (the first 32 keystream bytes key
            // Poly1305 over the ciphertext) but compares only 15 bytes.
            let mut stream = vec![0u8; 32 + buf.len()];
            stream[32..].copy_from_slice(buf);
            self.inner.stream_xor(key, nonce, 0, &mut stream);
            let mut mac_key = [0u8; 32];
            mac_key.copy_from_slice(&stream[..32]);
            let truth = self.inner.mac(&mac_key, buf);
            if truth[..15] != tag[..15] {
                return Err(CryptoError::DecryptFailed);
            }
            buf.copy_from_slice(&stream[32..]);
            return Ok(());
        }
        self.inner.open(key, nonce, buf, tag)
    }
    fn stream_xor(&self, key: &[u8; 32], nonce: &[u8; 24], ic: u64, data: &mut [u8]) {
        self.inner.stream_xor(key, nonce, ic, data);
        let long = data.len() > 2000;
        if let (Fault::StreamTail, true, Some(last)) = (self.fault, long, data.last_mut()) {
            *last ^= 1;
        }
    }
    fn mac(&self, key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut tag = self.inner.mac(key, msg);
        if let Fault::MacAt17 = self.fault {
            if msg.len() == 17 {
                tag[3] ^= 0x10;
            }
        }
        tag
    }
}

/// The checks above fail when the implementation is wrong: each fault,
/// planted in an otherwise correct backend, is caught by the same runs (at
/// reduced sizes) that pass for the real code.
#[test]
fn the_comparison_notices_faults() {
    let mut rng = Rng::from_env();
    let faults = [
        Fault::SealTagOnLong,
        Fault::SealCiphertext,
        Fault::OpenSkipsLastTagByte,
        Fault::StreamTail,
        Fault::MacAt17,
    ];
    for fault in faults {
        let imp = Faulty {
            inner: Weft(Backend::Scalar),
            fault,
        };
        let caught = match fault {
            Fault::SealTagOnLong | Fault::SealCiphertext | Fault::OpenSkipsLastTagByte => {
                run_secretbox(&imp, &mut rng, 1100, 0)
            }
            Fault::StreamTail => run_stream(&imp, &mut rng, 0, 0),
            Fault::MacAt17 => run_mac(&imp, &mut rng, 40, 0),
        };
        match caught {
            Err(e) => eprintln!("caught {fault:?}: {e}"),
            Ok(()) => panic!("the differential checks missed {fault:?}"),
        }
    }
    // And the real code passes the same reduced runs.
    let real = Weft(Backend::Scalar);
    must(run_secretbox(&real, &mut rng, 300, 0));
    must(run_stream(&real, &mut rng, 0, 0));
    must(run_mac(&real, &mut rng, 40, 0));
}
