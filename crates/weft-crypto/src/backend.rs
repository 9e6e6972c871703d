//! Which code the secretbox runs on: the CPU-specific keystream and
//! Poly1305 paths, named, listed and forced.
//!
//! A [`Backend`] is one combination a class of CPU ends up running:
//!
//! | backend  | XSalsa20 keystream            | Poly1305                           | picked on |
//! |----------|-------------------------------|------------------------------------|-----------|
//! | `scalar` | portable one-block core       | the `poly1305` crate               | CPUs without AVX2, non-x86 |
//! | `avx2`   | eight blocks in AVX2          | the `poly1305` crate               | AVX2 without AVX-512VL |
//! | `avx512` | eight blocks, AVX-512VL rotates | the `poly1305` crate             | AVX-512F+VL without IFMA |
//! | `ifma`   | as `avx512`                   | weft's limbs: IFMA ≥ 256 bytes, scalar limbs below | AVX-512F+VL+IFMA |
//!
//! (The `poly1305` crate chooses its own AVX2 or portable code inside.)
//!
//! [`default_backend`] is what [`SecretBox::new`](crate::SecretBox::new)
//! uses: the best one this CPU has, unless the environment variable
//! `WEFT_CRYPTO_BACKEND` names another, which is honoured only if the CPU
//! can run it (a diagnostic switch: it is read once per process, and a
//! name the CPU cannot run is refused, see [`backend_override`]). Tests
//! and benchmarks pick backends explicitly with
//! [`SecretBox::with_backend`](crate::SecretBox::with_backend) and loop
//! over [`available_backends`]; a backend is only ever run after the CPU
//! was checked for every feature it uses.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::poly::Engine;
use crate::xsalsa::Keystream;

/// The environment variable that forces a backend (`scalar`, `avx2`,
/// `avx512` or `ifma`).
pub const BACKEND_ENV: &str = "WEFT_CRYPTO_BACKEND";

/// A named combination of keystream and Poly1305 code (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// Portable keystream, `poly1305` crate MAC.
    Scalar,
    /// AVX2 keystream, `poly1305` crate MAC.
    Avx2,
    /// AVX-512VL keystream, `poly1305` crate MAC.
    Avx512,
    /// AVX-512VL keystream, AVX-512 IFMA MAC.
    Ifma,
}

impl Backend {
    /// Every backend, whether or not this CPU has it, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Ifma,
    ];

    /// The short name: `scalar`, `avx2`, `avx512` or `ifma`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Ifma => "ifma",
        }
    }

    /// The keystream code this backend runs: `scalar`, `avx2` or `avx512`.
    pub fn keystream_name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 | Backend::Ifma => "avx512",
        }
    }

    /// The Poly1305 code this backend runs: `poly1305-crate` or `avx512ifma`.
    pub fn mac_name(self) -> &'static str {
        match self {
            Backend::Scalar | Backend::Avx2 | Backend::Avx512 => "poly1305-crate",
            Backend::Ifma => "avx512ifma",
        }
    }

    /// The CPU features this backend needs (empty for `scalar`).
    pub fn required_features(self) -> &'static str {
        match self {
            Backend::Scalar => "",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx2, avx512f, avx512vl",
            Backend::Ifma => "avx2, avx512f, avx512vl, avx512ifma",
        }
    }

    /// True if this CPU has every feature the backend uses.
    pub fn is_available(self) -> bool {
        self.tokens().is_some()
    }

    /// The keystream and MAC tokens for this backend, which exist only if
    /// the CPU passed the feature checks; an error naming the backends the
    /// CPU does run otherwise.
    pub(crate) fn engines(self) -> Result<Engines, BackendError> {
        self.tokens().ok_or_else(|| BackendError::Unsupported {
            backend: self,
            available: available_names(),
        })
    }

    fn tokens(self) -> Option<Engines> {
        let (keystream, mac) = match self {
            Backend::Scalar => (Some(Keystream::scalar()), Some(Engine::Crate)),
            Backend::Avx2 => (Keystream::avx2(), Some(Engine::Crate)),
            Backend::Avx512 => (Keystream::avx512(), Some(Engine::Crate)),
            Backend::Ifma => (Keystream::avx512(), Engine::ifma()),
        };
        Some(Engines {
            keystream: keystream?,
            mac: mac?,
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;

    /// Parses a backend name (case-insensitive). Says nothing about whether
    /// this CPU has it: see [`Backend::is_available`].
    fn from_str(s: &str) -> Result<Backend, BackendError> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| BackendError::Unknown(s.to_string()))
    }
}

/// Why a backend cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not one of the backends.
    #[error("unknown weft-crypto backend {0:?}: use one of scalar, avx2, avx512, ifma")]
    Unknown(String),
    /// This CPU lacks a feature the backend needs; it is never run.
    #[error(
        "weft-crypto backend {backend} needs CPU features {} that this CPU lacks: use one of {available}",
        .backend.required_features()
    )]
    Unsupported {
        /// The backend asked for.
        backend: Backend,
        /// The backends this CPU can run, comma-separated.
        available: String,
    },
}

/// The code paths one [`SecretBox`](crate::SecretBox) runs: tokens that
/// only exist after a successful CPU feature check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Engines {
    pub(crate) keystream: Keystream,
    pub(crate) mac: Engine,
}

/// Every backend this CPU can run, slowest first (`scalar` is always there).
pub fn available_backends() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

fn available_names() -> String {
    available_backends()
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fastest backend this CPU runs, ignoring `WEFT_CRYPTO_BACKEND`.
pub fn detected_backend() -> Backend {
    static BEST: OnceLock<Backend> = OnceLock::new();
    *BEST.get_or_init(|| {
        available_backends()
            .last()
            .copied()
            .unwrap_or(Backend::Scalar)
    })
}

/// What `WEFT_CRYPTO_BACKEND` asks for, read once per process: `Ok(None)`
/// if it is unset or empty, `Ok(Some(b))` if it names a backend this CPU
/// runs, and an error (the variable is then ignored) if the name is
/// unknown or the CPU lacks the backend's features.
pub fn backend_override() -> Result<Option<Backend>, BackendError> {
    static FORCED: OnceLock<Result<Option<Backend>, BackendError>> = OnceLock::new();
    FORCED
        .get_or_init(|| {
            let value = std::env::var(BACKEND_ENV).unwrap_or_default();
            parse_override(&value)
        })
        .clone()
}

/// The rule behind [`backend_override`], on a given value.
fn parse_override(value: &str) -> Result<Option<Backend>, BackendError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let backend: Backend = value.parse()?;
    backend.engines()?;
    Ok(Some(backend))
}

/// The backend [`SecretBox::new`](crate::SecretBox::new) uses: the one
/// `WEFT_CRYPTO_BACKEND` forces if the CPU can run it, else
/// [`detected_backend`].
pub fn default_backend() -> Backend {
    match backend_override() {
        Ok(Some(b)) => b,
        Ok(None) | Err(_) => detected_backend(),
    }
}

/// The engines of [`default_backend`], resolved once.
pub(crate) fn default_engines() -> Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    *ENGINES.get_or_init(|| match default_backend().engines() {
        Ok(e) => e,
        // Unreachable (the default is always available), but never run
        // unchecked code: fall back to the portable one.
        Err(_) => Engines {
            keystream: Keystream::scalar(),
            mac: Engine::Crate,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.name().to_uppercase().parse::<Backend>(), Ok(b));
        }
        assert!(matches!(
            "sse2".parse::<Backend>(),
            Err(BackendError::Unknown(_))
        ));
    }

    #[test]
    fn scalar_is_always_available_and_detection_is_the_best() {
        let all = available_backends();
        assert_eq!(all.first(), Some(&Backend::Scalar));
        assert_eq!(all.last(), Some(&detected_backend()));
        for b in Backend::ALL {
            assert_eq!(all.contains(&b), b.engines().is_ok(), "{b}");
        }
    }

    #[test]
    fn zen4_class_cpus_have_every_backend() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            assert_eq!(available_backends(), Backend::ALL.to_vec());
            assert_eq!(detected_backend(), Backend::Ifma);
        }
    }

    #[test]
    fn override_rules() {
        assert_eq!(parse_override(""), Ok(None));
        assert_eq!(parse_override("  "), Ok(None));
        assert_eq!(parse_override("scalar"), Ok(Some(Backend::Scalar)));
        assert!(matches!(
            parse_override("fast"),
            Err(BackendError::Unknown(_))
        ));
        for b in Backend::ALL {
            match parse_override(b.name()) {
                Ok(Some(got)) => assert!(got == b && b.is_available()),
                Err(BackendError::Unsupported { backend, .. }) => {
                    assert!(backend == b && !b.is_available())
                }
                other => panic!("{b}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusal_says_what_to_do() {
        let e = BackendError::Unsupported {
            backend: Backend::Ifma,
            available: "scalar, avx2".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("avx512ifma") && msg.contains("use one of scalar, avx2"));
    }
}
