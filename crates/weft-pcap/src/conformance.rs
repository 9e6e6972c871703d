//! The shared conformance data (`../shared/conformance/` beside the repository): paths, files
//! and the keylog of the encrypted capture, for every crate's capture tests. Panics with a clear
//! message when the data is missing: tests must fail loudly, not skip (CI provides it).

// Test support: failing loudly on missing or malformed fixture files is the point.
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;

/// The conformance directory.
pub fn dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance"
    ));
    assert!(
        dir.is_dir(),
        "shared conformance data not found at {}: this test needs shared/ beside the repo \
         (CI provides it)",
        dir.display()
    );
    dir
}

/// A file of the conformance directory.
pub fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A text file of the conformance directory.
pub fn read_text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"))
}

/// Hex digits to bytes.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex string {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s:?}")))
        .collect()
}

fn key32(s: &str) -> [u8; 32] {
    hex(s)
        .try_into()
        .unwrap_or_else(|_| panic!("bad 32-byte key {s:?}"))
}

/// One end of the logged connection (one line of `<capture>.keylog`).
#[derive(Debug, Clone)]
pub struct KeylogEntry {
    /// This end's TCP address.
    pub local: SocketAddrV4,
    /// This end dialled the connection.
    pub outbound: bool,
    /// This end's ephemeral X25519 private key.
    pub local_priv: [u8; 32],
    /// Its public key.
    pub local_pub: [u8; 32],
    /// The other end's public key.
    pub remote_pub: [u8; 32],
    /// The mesh password.
    pub password: String,
    /// The session key both ends derived.
    pub session_key: [u8; 32],
}

/// The keylog of `capture` (e.g. `bk-2peer-encrypted-keylog`): one entry per connection end.
pub fn keylog(capture: &str) -> Vec<KeylogEntry> {
    let entries: Vec<KeylogEntry> = read_text(&format!("{capture}.keylog"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: HashMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let field = |k: &str| {
                *f.get(k)
                    .unwrap_or_else(|| panic!("keylog line lacks {k}: {line}"))
            };
            KeylogEntry {
                local: field("local")
                    .parse()
                    .unwrap_or_else(|e| panic!("{line}: {e}")),
                outbound: field("outbound") == "true",
                local_priv: key32(field("local_priv")),
                local_pub: key32(field("local_pub")),
                remote_pub: key32(field("remote_pub")),
                password: field("password").trim_matches('"').to_string(),
                session_key: key32(field("session_key")),
            }
        })
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "expected one keylog line per connection end"
    );
    entries
}

/// The messages of one direction of an unencrypted mesh TCP stream, as `(tag, body)`: skips
/// the 7-byte protocol header, the crypto flag and the features, then splits
/// `u32 length | tag | body` (as `weavegossip.py` does). A message cut off at the end of the
/// capture (a router killed mid-stream) is left out.
pub fn plain_mesh_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    if bytes.len() < 8 {
        return out;
    }
    assert_eq!(
        bytes[7], 0,
        "an encrypted stream: use the keylog to decrypt it"
    );
    let mut rest = &bytes[8..];
    let mut first = true;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            break;
        }
        let body = &rest[4..4 + len];
        rest = &rest[4 + len..];
        if std::mem::take(&mut first) || body.is_empty() {
            continue; // the features
        }
        out.push((body[0], body[1..].to_vec()));
    }
    out
}
