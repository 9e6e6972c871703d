//! The mesh password, held once and wiped when the last reference goes.

use std::sync::Arc;

use zeroize::Zeroizing;

/// The mesh password. Cloning shares the one copy (every connection's
/// [`Config`](crate::Config) holds a reference, not a copy); the bytes are
/// zeroized when the last reference is dropped. `Debug` never shows them.
#[derive(Clone)]
pub struct Password(Arc<Zeroizing<Vec<u8>>>);

impl Password {
    /// Takes ownership of the bytes (they are not copied).
    pub fn new(bytes: Vec<u8>) -> Password {
        Password(Arc::new(Zeroizing::new(bytes)))
    }

    /// The password bytes, for the key derivation.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// How many holders share this copy (for tests).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<Vec<u8>> for Password {
    fn from(bytes: Vec<u8>) -> Password {
        Password::new(bytes)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Password {
        Password::new(s.into_bytes())
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Password {
        Password::new(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Password {
    fn from(b: &[u8]) -> Password {
        Password::new(b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_not_copied_and_redacted() {
        let p = Password::from("s3cret");
        let q = p.clone();
        assert_eq!(p.holders(), 2);
        assert_eq!(q.as_bytes(), b"s3cret");
        assert_eq!(q.as_bytes().as_ptr(), p.as_bytes().as_ptr(), "one copy");
        assert!(!format!("{p:?}").contains("s3cret"));
        drop(q);
        assert_eq!(p.holders(), 1);
    }
}
