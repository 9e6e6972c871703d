//! weft-crypto's secretbox, XSalsa20 keystream and Poly1305 against
//! libsodium, on a backend the input picks among those the CPU runs.
//!
//! The input's first 72 bytes choose the backend, key, nonce, block
//! counter, length (up to 70,000 bytes for one input in 64, past what the input holds: the rest
//! of the message then repeats the input's tail, or zeros), the buffer's
//! alignment and which bit of the box to flip; the remaining bytes are the
//! message. Every disagreement with libsodium, and any tampered box that
//! opens, is a crash.
#![no_main]

#[path = "../../tests/sodium/mod.rs"]
mod sodium;

use libfuzzer_sys::fuzz_target;
use weft_crypto::secretbox::{onetimeauth_with, xsalsa20_xor_ic, SecretBox};
use weft_crypto::{available_backends, CryptoError};

const HEADER: usize = 1 + 32 + 24 + 8 + 4 + 1 + 2;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, body) = data.split_at(HEADER);
    let backends = available_backends();
    let backend = backends[usize::from(head[0]) % backends.len()];
    let key: [u8; 32] = head[1..33].try_into().unwrap_or([0; 32]);
    let nonce: [u8; 24] = head[33..57].try_into().unwrap_or([0; 24]);
    let ic = u64::from_le_bytes(head[57..65].try_into().unwrap_or([0; 8]));
    let len_word = u32::from_le_bytes(head[65..69].try_into().unwrap_or([0; 4]));
    let align = usize::from(head[69] % 64);
    let flip = usize::from(u16::from_le_bytes([head[70], head[71]]));

    // Mostly the input's own length; when the top six bits of the length word are set (one
    // random input in 64, so executions stay fast enough for tens of millions of them) a
    // long one built from it, up to past 64 KiB.
    let len = if len_word & 0xfc00_0000 != 0xfc00_0000 {
        body.len()
    } else {
        (len_word & 0x03ff_ffff) as usize % 70_001
    };
    let msg: Vec<u8> = if body.is_empty() {
        vec![0; len]
    } else {
        body.iter().copied().cycle().take(len).collect()
    };

    // Seal in place at the chosen alignment.
    let sb = match SecretBox::with_backend(&key, backend) {
        Ok(sb) => sb,
        Err(e) => panic!("available backend refused: {e}"),
    };
    let boxed = sodium::secretbox_easy(&key, &nonce, &msg);
    let mut space = vec![0u8; align + len];
    let buf = &mut space[align..];
    buf.copy_from_slice(&msg);
    let tag = sb.seal_in_place_detached(&nonce, buf);
    assert_eq!(&tag[..], &boxed[..16], "{backend} tag, len {len}");
    assert!(*buf == boxed[16..], "{backend} ciphertext, len {len}");

    // Open libsodium's box.
    let mut sodium_tag = [0u8; 16];
    sodium_tag.copy_from_slice(&boxed[..16]);
    assert_eq!(sb.open_in_place_detached(&nonce, buf, &sodium_tag), Ok(()));
    assert!(*buf == msg, "{backend} open, len {len}");

    // Flip one bit of tag ‖ ciphertext: both must refuse it.
    let bit = flip % (boxed.len() * 8);
    let mut forged = boxed.clone();
    forged[bit / 8] ^= 1 << (bit % 8);
    assert!(sodium::secretbox_open_easy(&key, &nonce, &forged).is_none());
    let mut forged_tag = [0u8; 16];
    forged_tag.copy_from_slice(&forged[..16]);
    buf.copy_from_slice(&forged[16..]);
    assert_eq!(
        sb.open_in_place_detached(&nonce, buf, &forged_tag),
        Err(CryptoError::DecryptFailed),
        "{backend} opened a box with bit {bit} flipped, len {len}"
    );
    assert!(*buf == forged[16..], "{backend} changed a refused buffer");

    // The keystream from block `ic` (kept clear of the 2^64 wrap, where
    // libsodium's counter arithmetic is not specified).
    let ic = ic >> 1;
    let want = sodium::stream_xsalsa20_xor_ic(&key, &nonce, ic, &msg);
    buf.copy_from_slice(&msg);
    if let Err(e) = xsalsa20_xor_ic(backend, &key, &nonce, ic, buf) {
        panic!("{e}");
    }
    assert!(*buf == want, "{backend} stream ic {ic}, len {len}");

    // Poly1305 alone, keyed by the input's key.
    let got = onetimeauth_with(backend, &key, &msg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got,
        sodium::onetimeauth_poly1305(&key, &msg),
        "{backend} onetimeauth, len {len}"
    );
});
