//! Safe wrappers over the few libsodium functions weft-crypto is held to
//! (through `libsodium-sys-stable`, linked against the system libsodium
//! found by pkg-config). Shared by the differential tests, the fuzz target
//! (`fuzz/`) and the benchmark (`bench/crypto`) with `#[path]`.
//!
//! Every `unsafe` block here is an FFI call whose pointer arguments come
//! from Rust slices and arrays of the lengths libsodium's documentation
//! requires; each says so next to it.

#![allow(unsafe_code, dead_code)]

use libsodium_sys as ffi;

/// Bytes of a secretbox / onetimeauth tag.
pub const MAC_LEN: usize = 16;

/// Initialises libsodium (idempotent, thread-safe in libsodium itself).
/// Panics if it cannot: every comparison would be meaningless.
pub fn init() {
    // SAFETY: `sodium_init` takes no arguments and may be called any number
    // of times from any thread.
    let rc = unsafe { ffi::sodium_init() };
    assert!(rc >= 0, "sodium_init failed ({rc}): libsodium unusable");
}

fn len(n: usize) -> libc_ulonglong {
    n as libc_ulonglong
}

#[allow(non_camel_case_types)]
type libc_ulonglong = u64;

/// `crypto_secretbox_easy`: `tag ‖ ciphertext` of `msg`.
pub fn secretbox_easy(key: &[u8; 32], nonce: &[u8; 24], msg: &[u8]) -> Vec<u8> {
    init();
    let mut out = vec![0u8; MAC_LEN + msg.len()];
    // SAFETY: `out` has room for MACBYTES + msg.len() bytes, `msg` is
    // msg.len() readable bytes, nonce and key are 24 and 32 bytes; the
    // buffers do not overlap.
    let rc = unsafe {
        ffi::crypto_secretbox_easy(
            out.as_mut_ptr(),
            msg.as_ptr(),
            len(msg.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_secretbox_easy failed");
    out
}

/// `crypto_secretbox_open_easy`: the plaintext of `boxed` (`tag ‖
/// ciphertext`), or `None` if it does not authenticate (or is shorter than
/// a tag).
pub fn secretbox_open_easy(key: &[u8; 32], nonce: &[u8; 24], boxed: &[u8]) -> Option<Vec<u8>> {
    init();
    let mut out = vec![0u8; boxed.len().checked_sub(MAC_LEN)?];
    // SAFETY: `boxed` is boxed.len() ≥ MACBYTES readable bytes, `out` has
    // room for boxed.len() − MACBYTES bytes, nonce and key are 24 and 32
    // bytes; the buffers do not overlap.
    let rc = unsafe {
        ffi::crypto_secretbox_open_easy(
            out.as_mut_ptr(),
            boxed.as_ptr(),
            len(boxed.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    (rc == 0).then_some(out)
}

/// `crypto_stream_xsalsa20_xor_ic`: `data` XORed with the XSalsa20
/// keystream from block `ic`.
pub fn stream_xsalsa20_xor_ic(key: &[u8; 32], nonce: &[u8; 24], ic: u64, data: &[u8]) -> Vec<u8> {
    init();
    let mut out = vec![0u8; data.len()];
    // SAFETY: `out` and `data` are both data.len() bytes (writable and
    // readable), nonce and key 24 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_stream_xsalsa20_xor_ic(
            out.as_mut_ptr(),
            data.as_ptr(),
            len(data.len()),
            nonce.as_ptr(),
            ic,
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_stream_xsalsa20_xor_ic failed");
    out
}

/// `crypto_stream_xsalsa20`: `n` bytes of keystream from block 0.
pub fn stream_xsalsa20(key: &[u8; 32], nonce: &[u8; 24], n: usize) -> Vec<u8> {
    init();
    let mut out = vec![0u8; n];
    // SAFETY: `out` is n writable bytes, nonce and key 24 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_stream_xsalsa20(out.as_mut_ptr(), len(n), nonce.as_ptr(), key.as_ptr())
    };
    assert_eq!(rc, 0, "crypto_stream_xsalsa20 failed");
    out
}

/// `crypto_onetimeauth_poly1305`: the tag of `msg` under the one-time `key`.
pub fn onetimeauth_poly1305(key: &[u8; 32], msg: &[u8]) -> [u8; MAC_LEN] {
    init();
    let mut tag = [0u8; MAC_LEN];
    // SAFETY: `tag` is 16 writable bytes, `msg` msg.len() readable bytes,
    // `key` 32 bytes.
    let rc = unsafe {
        ffi::crypto_onetimeauth_poly1305(
            tag.as_mut_ptr(),
            msg.as_ptr(),
            len(msg.len()),
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_onetimeauth_poly1305 failed");
    tag
}

/// `crypto_onetimeauth_poly1305_verify`: true if `tag` authenticates `msg`.
pub fn onetimeauth_poly1305_verify(key: &[u8; 32], msg: &[u8], tag: &[u8; MAC_LEN]) -> bool {
    init();
    // SAFETY: `tag` is 16 readable bytes, `msg` msg.len(), `key` 32.
    let rc = unsafe {
        ffi::crypto_onetimeauth_poly1305_verify(
            tag.as_ptr(),
            msg.as_ptr(),
            len(msg.len()),
            key.as_ptr(),
        )
    };
    rc == 0
}

/// `crypto_secretbox_detached` in place (libsodium allows the message and
/// ciphertext to be the same buffer): encrypts `buf`, returns the tag.
/// Does not call [`init`] (for benchmarks: call it once first, or libsodium
/// runs its portable code).
pub fn secretbox_seal_in_place(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; MAC_LEN] {
    let mut tag = [0u8; MAC_LEN];
    let p = buf.as_mut_ptr();
    // SAFETY: `p` is buf.len() bytes, read as the message and written as
    // the ciphertext (libsodium documents in-place operation as supported),
    // `tag` 16 writable bytes, nonce and key 24 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_secretbox_detached(
            p,
            tag.as_mut_ptr(),
            p,
            len(buf.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_secretbox_detached failed");
    tag
}

/// `crypto_secretbox_open_detached` in place: true (and `buf` decrypted)
/// if `tag` authenticates `buf`.
pub fn secretbox_open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
    tag: &[u8; MAC_LEN],
) -> bool {
    let p = buf.as_mut_ptr();
    // SAFETY: `p` is buf.len() bytes, read as the ciphertext and written as
    // the plaintext (in place is supported), `tag` 16 readable bytes, nonce
    // and key 24 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_secretbox_open_detached(
            p,
            p,
            tag.as_ptr(),
            len(buf.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    rc == 0
}
