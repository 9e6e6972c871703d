//! Seals and opens fixed-size buffers with the `crypto_secretbox` crate (the
//! baseline weft used before), libsodium and `weft_crypto::secretbox`, and
//! prints the throughput of each and their ratio. See README.md.

#[path = "../../../crates/weft-crypto/tests/sodium/mod.rs"]
mod sodium;

use std::hint::black_box;
use std::time::{Duration, Instant};

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use poly1305::universal_hash::UniversalHash;
use poly1305::Poly1305;
use weft_crypto::secretbox::{onetimeauth, onetimeauth_implementation, SecretBox};
use weft_crypto::Backend;

/// libsodium's version, as the library reports it.
fn sodium_version() -> String {
    // SAFETY: `sodium_version_string` takes no arguments and returns a
    // pointer to a static NUL-terminated string.
    #[allow(unsafe_code)]
    let p = unsafe { libsodium_sys::sodium_version_string() };
    if p.is_null() {
        return "?".into();
    }
    // SAFETY: `p` is non-null and points to libsodium's static C string.
    #[allow(unsafe_code)]
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    s.to_string_lossy().into_owned()
}

/// libsodium's `crypto_onetimeauth_poly1305`.
fn sodium_mac(key: &[u8; 32], buf: &[u8]) -> [u8; 16] {
    sodium::onetimeauth_poly1305(key, buf)
}

const KEY: [u8; 32] = [0x5c; 32];

struct Args {
    /// Bytes processed per measurement.
    work: usize,
    /// Measurements per case; the fastest is reported.
    repeats: usize,
    sizes: Vec<usize>,
    /// Implementations to time (`baseline`, `avx512`, `avx2`, `scalar`).
    impls: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        work: 256 << 20,
        repeats: 3,
        sizes: vec![65_536, 1_400],
        impls: ["baseline", "libsodium", "ifma", "avx512", "avx2", "scalar"]
            .map(String::from)
            .to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--mib" => {
                let v = value("--mib")?;
                let mib: usize = v.parse().map_err(|_| format!("bad --mib {v}"))?;
                args.work = mib.max(1) << 20;
            }
            "--repeats" => {
                let v = value("--repeats")?;
                args.repeats = v.parse().map_err(|_| format!("bad --repeats {v}"))?;
                args.repeats = args.repeats.max(1);
            }
            "--sizes" => {
                let v = value("--sizes")?;
                args.sizes = v
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|_| format!("bad size {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--impls" => args.impls = value("--impls")?.split(',').map(String::from).collect(),
            "-h" | "--help" => return Err(
                "usage: weft-bench-crypto [--mib N] [--repeats N] [--sizes A,B,...] [--impls LIST]"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// One secretbox implementation under test.
enum Imp {
    Baseline(XSalsa20Poly1305),
    Sodium(libsodium::Version),
    Weft(SecretBox, String),
}

mod libsodium {
    /// libsodium's version string (`sodium_version_string`).
    pub struct Version(pub String);
}

impl Imp {
    fn name(&self) -> String {
        match self {
            Imp::Baseline(_) => "crypto_secretbox 0.1.1".to_string(),
            Imp::Sodium(v) => format!("libsodium {}", v.0),
            Imp::Weft(_, name) => format!("weft-crypto ({name})"),
        }
    }

    fn seal(&self, nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
        match self {
            Imp::Baseline(c) => match c.encrypt_in_place_detached(nonce.into(), &[], buf) {
                Ok(tag) => tag.into(),
                Err(e) => panic!("crypto_secretbox seal: {e}"),
            },
            Imp::Sodium(_) => sodium::secretbox_seal_in_place(&KEY, nonce, buf),
            Imp::Weft(sb, _) => sb.seal_in_place_detached(nonce, buf),
        }
    }

    fn open(&self, nonce: &[u8; 24], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        match self {
            Imp::Baseline(c) => c
                .decrypt_in_place_detached(nonce.into(), &[], buf, tag.into())
                .is_ok(),
            Imp::Sodium(_) => sodium::secretbox_open_in_place(&KEY, nonce, buf, tag),
            Imp::Weft(sb, _) => sb.open_in_place_detached(nonce, buf, tag).is_ok(),
        }
    }
}

fn nonce(i: u64) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[0] = 0x80;
    n[16..].copy_from_slice(&i.to_be_bytes());
    n
}

/// Time of `iters` seals of a `size`-byte buffer, each with a new nonce.
fn time_seal(imp: &Imp, size: usize, iters: u64) -> Duration {
    let mut buf = vec![0xabu8; size];
    let start = Instant::now();
    for i in 0..iters {
        black_box(imp.seal(&nonce(i), black_box(&mut buf)));
    }
    start.elapsed()
}

/// Time of `iters` opens of a `size`-byte box. Opening decrypts in place,
/// so each round first restores the ciphertext with a copy; that copy is
/// timed on its own and subtracted.
fn time_open(imp: &Imp, size: usize, iters: u64) -> Duration {
    let n = nonce(7);
    let mut sealed = vec![0xabu8; size];
    let tag = imp.seal(&n, &mut sealed);
    let mut buf = sealed.clone();
    let start = Instant::now();
    for _ in 0..iters {
        buf.copy_from_slice(&sealed);
        assert!(imp.open(&n, black_box(&mut buf), &tag), "open failed");
    }
    let total = start.elapsed();
    let start = Instant::now();
    for _ in 0..iters {
        buf.copy_from_slice(black_box(&sealed));
        black_box(&mut buf);
    }
    total.saturating_sub(start.elapsed())
}

/// A one-shot Poly1305: one-time key, message, tag.
type MacFn = fn(&[u8; 32], &[u8]) -> [u8; 16];

/// The Poly1305 tag through the `poly1305` crate, the way weft-crypto used
/// to compute it (whole blocks, then the unpadded tail).
fn crate_mac(key: &[u8; 32], buf: &[u8]) -> [u8; 16] {
    let whole = buf.len() - buf.len() % 16;
    let mut mac = Poly1305::new(key.into());
    mac.update_padded(&buf[..whole]);
    mac.compute_unpadded(&buf[whole..]).into()
}

/// Time of `iters` Poly1305 tags over a `size`-byte buffer with `mac`,
/// each with a fresh one-time key: the MAC's share of a seal or open.
fn time_mac(mac: MacFn, size: usize, iters: u64) -> Duration {
    let buf = vec![0xabu8; size];
    let start = Instant::now();
    for i in 0..iters {
        let key = [i as u8; 32];
        black_box(mac(&key, black_box(&buf)));
    }
    start.elapsed()
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };

    // The baseline always runs (the ratios need it); then every requested
    // weft implementation this CPU has.
    sodium::init();
    let baseline = Imp::Baseline(XSalsa20Poly1305::new((&KEY).into()));
    let mut all = vec![baseline];
    for name in args.impls.iter().filter(|n| *n != "baseline") {
        if name == "libsodium" {
            all.push(Imp::Sodium(libsodium::Version(sodium_version())));
            continue;
        }
        match name.parse::<Backend>().map(|b| (b, SecretBox::with_backend(&KEY, b))) {
            Ok((b, Ok(sb))) => all.push(Imp::Weft(sb, b.name().to_string())),
            Ok((_, Err(e))) => println!("(skipping {name}: {e})"),
            Err(e) => println!("(skipping {name}: {e})"),
        }
    }
    // Cross-check before timing: every weft implementation produces the
    // baseline's bytes.
    for &size in &args.sizes {
        let mut want = vec![0x11u8; size];
        let want_tag = all[0].seal(&nonce(1), &mut want);
        for imp in &all[1..] {
            let mut got = vec![0x11u8; size];
            let tag = imp.seal(&nonce(1), &mut got);
            assert!(
                got == want && tag == want_tag,
                "{} differs at {size} bytes",
                imp.name()
            );
        }
        let key = [0x3du8; 32];
        assert_eq!(
            onetimeauth(&key, &want),
            crate_mac(&key, &want),
            "weft-crypto's Poly1305 differs at {size} bytes"
        );
        assert_eq!(
            sodium_mac(&key, &want),
            crate_mac(&key, &want),
            "libsodium's Poly1305 differs at {size} bytes"
        );
    }

    println!(
        "secretbox throughput, {} MiB per measurement, best of {}; weft-crypto picks {} on this CPU",
        args.work >> 20,
        args.repeats,
        SecretBox::new(&KEY).implementation()
    );
    println!(
        "{:>7}  {:<5} {:<28} {:>8} {:>8}",
        "bytes", "op", "implementation", "GB/s", "x base"
    );
    for &size in &args.sizes {
        let iters = (args.work / size.max(1)).max(1) as u64;
        let bytes = iters * size as u64;
        for op in ["seal", "open"] {
            // Rounds interleave the implementations so that noise from other
            // load on the machine hits them alike.
            let mut best = vec![Duration::MAX; all.len()];
            for _ in 0..args.repeats {
                for (imp, best) in all.iter().zip(best.iter_mut()) {
                    let d = if op == "seal" {
                        time_seal(imp, size, iters)
                    } else {
                        time_open(imp, size, iters)
                    };
                    *best = (*best).min(d);
                }
            }
            let base = gbps(bytes, best[0]);
            for (imp, d) in all.iter().zip(&best) {
                let rate = gbps(bytes, *d);
                println!(
                    "{:>7}  {:<5} {:<28} {:>8.3} {:>7.2}x",
                    size,
                    op,
                    imp.name(),
                    rate,
                    rate / base
                );
            }
        }
        // The MAC alone: the crate (the base of this row) and weft-crypto's.
        let macs: [(String, MacFn); 3] = [
            ("poly1305 0.8 alone".to_string(), crate_mac),
            ("libsodium".to_string(), sodium_mac),
            (
                format!("weft-crypto ({})", onetimeauth_implementation()),
                onetimeauth,
            ),
        ];
        let mut best = [Duration::MAX; 3];
        for _ in 0..args.repeats {
            for ((_, mac), best) in macs.iter().zip(best.iter_mut()) {
                *best = (*best).min(time_mac(*mac, size, iters));
            }
        }
        let base = gbps(bytes, best[0]);
        for ((name, _), d) in macs.iter().zip(&best) {
            let rate = gbps(bytes, *d);
            println!(
                "{:>7}  {:<5} {:<28} {:>8.3} {:>7.2}x",
                size,
                "mac",
                name,
                rate,
                rate / base
            );
        }
    }
}
