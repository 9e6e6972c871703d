//! `WEFT_CRYPTO_BACKEND` forces a backend the CPU runs and is refused
//! (ignored, with an error from `backend_override`) otherwise. The variable
//! is read once per process, so each value is tried in a child process
//! running this same test binary.

use std::process::Command;

use weft_crypto::secretbox::SecretBox;
use weft_crypto::{backend_override, default_backend, detected_backend, Backend, BackendError};

const CHILD: &str = "WEFT_CRYPTO_TEST_ENV_CHILD";

#[test]
fn env_variable_forces_a_backend_or_is_refused() {
    if let Ok(value) = std::env::var(CHILD) {
        return child(&value);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("own test binary: {e}"));
    for value in ["scalar", "avx2", "avx512", "ifma", "AVX2", "neon", ""] {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "env_variable_forces_a_backend_or_is_refused",
                "--nocapture",
            ])
            .env("WEFT_CRYPTO_BACKEND", value)
            .env(CHILD, value)
            .output()
            .unwrap_or_else(|e| panic!("running {exe:?}: {e}"));
        // The child must have run this test (not zero tests) and passed.
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "WEFT_CRYPTO_BACKEND={value:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn child(value: &str) {
    let sb = SecretBox::new(&[9; 32]);
    match value.parse::<Backend>() {
        _ if value.is_empty() => {
            assert_eq!(backend_override(), Ok(None));
            assert_eq!(default_backend(), detected_backend());
        }
        Ok(b) if b.is_available() => {
            assert_eq!(backend_override(), Ok(Some(b)));
            assert_eq!(default_backend(), b);
            assert_eq!(sb.implementation(), b.keystream_name());
            assert_eq!(sb.mac_implementation(), b.mac_name());
        }
        Ok(b) => {
            // Not on this CPU: refused, and the detected backend runs.
            assert!(matches!(
                backend_override(),
                Err(BackendError::Unsupported { backend, .. }) if backend == b
            ));
            assert_eq!(default_backend(), detected_backend());
            assert_eq!(sb.implementation(), detected_backend().keystream_name());
        }
        Err(_) => {
            assert!(matches!(backend_override(), Err(BackendError::Unknown(_))));
            assert_eq!(default_backend(), detected_backend());
        }
    }
}
