//! Prints which weft-crypto backends this CPU runs (the ones the tests
//! cover) and which one `SecretBox::new` uses:
//!
//! ```sh
//! cargo run -q -p weft-crypto --example backends
//! ```
//!
//! Each available backend also seals and opens one message and must agree
//! with the portable one. Exits with status 2 if `WEFT_CRYPTO_BACKEND` is
//! set to a backend that is refused (unknown, or not on this CPU), 1 if a
//! backend disagrees.

use weft_crypto::secretbox::SecretBox;
use weft_crypto::{
    available_backends, backend_override, default_backend, detected_backend, Backend, BACKEND_ENV,
};

fn main() {
    let mut status = 0;
    let key = [0x42u8; 32];
    let nonce = [0x24u8; 24];
    let msg: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let reference = seal(&key, &nonce, &msg, Backend::Scalar);

    println!("weft-crypto backends on this CPU:");
    for b in Backend::ALL {
        if !b.is_available() {
            println!(
                "  {:<7} not available (needs {})",
                b.name(),
                b.required_features()
            );
            continue;
        }
        let agrees = seal(&key, &nonce, &msg, b) == reference;
        if !agrees {
            status = 1;
        }
        println!(
            "  {:<7} available: keystream {}, poly1305 {}, self-check {}",
            b.name(),
            b.keystream_name(),
            b.mac_name(),
            if agrees { "ok" } else { "FAILED" }
        );
    }
    let names: Vec<_> = available_backends().iter().map(|b| b.name()).collect();
    println!("tests cover: {}", names.join(", "));
    match backend_override() {
        Ok(None) => println!("{BACKEND_ENV}: not set"),
        Ok(Some(b)) => println!("{BACKEND_ENV}: forces {b}"),
        Err(e) => {
            println!("{BACKEND_ENV}: refused: {e}");
            status = status.max(2);
        }
    }
    println!(
        "SecretBox::new uses: {} (best on this CPU: {})",
        default_backend(),
        detected_backend()
    );
    std::process::exit(status);
}

/// Seals `msg`, opens it again, and returns `tag ‖ ciphertext`.
fn seal(key: &[u8; 32], nonce: &[u8; 24], msg: &[u8], b: Backend) -> Option<Vec<u8>> {
    let sb = SecretBox::with_backend(key, b).ok()?;
    let mut buf = msg.to_vec();
    let tag = sb.seal_in_place_detached(nonce, &mut buf);
    let sealed = [&tag[..], &buf].concat();
    sb.open_in_place_detached(nonce, &mut buf, &tag).ok()?;
    (buf == msg).then_some(sealed)
}
