//! The features map (§2.3): what each side says about itself in the
//! handshake, and its validation.

use weft_crypto::SessionKey;
use weft_gob::DecodeError;
use weft_mesh::PeerName;

use crate::error::{ConnectionError, FeatureError};

/// The only peer-name flavour Weave builds use.
pub const PEER_NAME_FLAVOUR: &str = "mac";

/// Bit size of a short id (`peerShortIDBits`).
pub const SHORT_ID_BITS: u32 = 12;

/// A features map: `map[string]string` in gob, kept here as an ordered list
/// of entries (Go sends them in random order; the order is not meaningful).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(Vec<(String, String)>);

impl Features {
    /// An empty map.
    pub fn new() -> Features {
        Features(Vec::new())
    }

    /// The value of `key`. If the key appears more than once (possible only
    /// in a hostile stream) the last one wins, as in Go's map decoding.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing an existing entry in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The gob stream of the map, entries in this order.
    pub fn encode(&self) -> Vec<u8> {
        weft_gob::encode_string_map(self.iter())
    }

    /// Decodes a gob `map[string]string` stream.
    pub fn decode(bytes: &[u8]) -> Result<Features, DecodeError> {
        weft_gob::decode_string_map(bytes).map(Features)
    }

    /// The map Weave's routers send: `ConnID`, `Name`, `NickName`,
    /// `PeerNameFlavour`, `ShortID`, `Trusted`, `UID`, and `Overlays` when
    /// given (space-separated, in preference order, e.g. `"sleeve"` or
    /// `"fastdp sleeve"`; omit it for compat-mode sleeve).
    pub fn standard(
        local: &LocalIdentity,
        nick_name: &str,
        short_id: u16,
        trusted: bool,
        overlays: Option<&str>,
    ) -> Features {
        let mut f = Features::new();
        f.insert("ConnID", local.conn_id.to_string());
        f.insert("Name", local.name.to_string());
        f.insert("NickName", nick_name);
        if let Some(overlays) = overlays {
            f.insert("Overlays", overlays);
        }
        f.insert("PeerNameFlavour", PEER_NAME_FLAVOUR);
        f.insert("ShortID", short_id.to_string());
        f.insert("Trusted", if trusted { "true" } else { "false" });
        f.insert("UID", local.uid.to_string());
        f
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Features {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Features(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// What the connection needs to know about the local peer: its identity
/// (to detect self-connections and name collisions) and this connection's
/// random id (to compute the connection UID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalIdentity {
    /// The local peer name.
    pub name: PeerName,
    /// The local peer UID (this process incarnation).
    pub uid: u64,
    /// This connection's random id (`ConnID` feature).
    pub conn_id: u64,
}

/// The remote end of an established handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePeer {
    /// The remote peer's name.
    pub name: PeerName,
    /// Its nickname (may be empty).
    pub nick_name: String,
    /// Its UID.
    pub uid: u64,
    /// Its short id, if it sent one.
    pub short_id: Option<u16>,
    /// The remote's `ConnID`.
    pub conn_id: u64,
    /// Our `ConnID` XOR theirs: the same at both ends.
    pub conn_uid: u64,
    /// Whether the remote trusts us (its `Trusted` feature; absent = false).
    pub trusted_by_remote: bool,
    /// Its overlay names in preference order; `None` if it sent no
    /// `Overlays` key (compat-mode sleeve).
    pub overlays: Option<Vec<String>>,
    /// The negotiated protocol version (always 2).
    pub version: u8,
    /// The session key, on an encrypted connection.
    pub session_key: Option<SessionKey>,
    /// The whole map as received.
    pub features: Features,
}

/// Go's `strconv.ParseUint(s, 10, bits)`: decimal digits only, no sign.
pub(crate) fn parse_uint(key: &'static str, value: &str, bits: u32) -> Result<u64, FeatureError> {
    let bad = || FeatureError::BadNumber {
        key,
        value: value.to_owned(),
        bits,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(bad)?;
    }
    if bits < 64 && n >> bits != 0 {
        return Err(bad());
    }
    Ok(n)
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(value: &str) -> Result<bool, FeatureError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(FeatureError::BadBool(value.to_owned())),
    }
}

fn required<'a>(f: &'a Features, key: &'static str) -> Result<&'a str, FeatureError> {
    f.get(key).ok_or(FeatureError::Missing(key))
}

/// Validates a received features map against the local identity, as Weave
/// does after the handshake, and returns the remote identity.
pub fn validate(
    features: Features,
    local: &LocalIdentity,
    version: u8,
    session_key: Option<SessionKey>,
) -> Result<RemotePeer, ConnectionError> {
    let flavour = required(&features, "PeerNameFlavour")?;
    if flavour != PEER_NAME_FLAVOUR {
        return Err(FeatureError::FlavourMismatch(flavour.to_owned()).into());
    }
    let name_str = required(&features, "Name")?;
    let name: PeerName = name_str
        .parse()
        .map_err(|_| FeatureError::BadName(name_str.to_owned()))?;
    let nick_name = required(&features, "NickName")?.to_owned();
    let uid = parse_uint("UID", required(&features, "UID")?, 64)?;
    let conn_id = parse_uint("ConnID", required(&features, "ConnID")?, 64)?;
    let short_id = match features.get("ShortID") {
        None => None,
        Some(s) => Some(
            u16::try_from(parse_uint("ShortID", s, SHORT_ID_BITS)?).map_err(|_| {
                FeatureError::BadNumber {
                    key: "ShortID",
                    value: s.to_owned(),
                    bits: SHORT_ID_BITS,
                }
            })?,
        ),
    };
    let trusted_by_remote = match features.get("Trusted") {
        None => false,
        Some(s) => parse_bool(s)?,
    };
    let overlays = features
        .get("Overlays")
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    if name == local.name {
        return Err(if uid == local.uid {
            ConnectionError::ConnectToSelf
        } else {
            ConnectionError::PeerNameCollision { name }
        });
    }
    Ok(RemotePeer {
        name,
        nick_name,
        uid,
        short_id,
        conn_id,
        conn_uid: local.conn_id ^ conn_id,
        trusted_by_remote,
        overlays,
        version,
        session_key,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalIdentity {
        LocalIdentity {
            name: "00:00:00:00:00:01".parse().unwrap(),
            uid: 10999398883340606070,
            conn_id: 3631893233378024825,
        }
    }

    fn remote() -> Features {
        [
            ("ConnID", "6669263473688632797"),
            ("Name", "00:00:00:00:00:02"),
            ("NickName", "rw-h2"),
            ("Overlays", "sleeve"),
            ("PeerNameFlavour", "mac"),
            ("ShortID", "2173"),
            ("Trusted", "false"),
            ("UID", "5180873440476909787"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn capture_a_conn_uid() {
        let r = validate(remote(), &local(), 2, None).unwrap();
        assert_eq!(r.conn_uid, 0x6eeae86c731680a4);
        assert_eq!(r.short_id, Some(2173));
        assert_eq!(r.overlays, Some(vec!["sleeve".to_string()]));
        assert_eq!(r.nick_name, "rw-h2");
        assert!(!r.trusted_by_remote);
    }

    #[test]
    fn rejections() {
        let cases: Vec<(&str, Option<&str>, ConnectionError)> = vec![
            (
                "PeerNameFlavour",
                Some("hash"),
                FeatureError::FlavourMismatch("hash".into()).into(),
            ),
            (
                "PeerNameFlavour",
                None,
                FeatureError::Missing("PeerNameFlavour").into(),
            ),
            (
                "Name",
                Some("00:00:00:00:00"),
                FeatureError::BadName("00:00:00:00:00".into()).into(),
            ),
            ("NickName", None, FeatureError::Missing("NickName").into()),
            (
                "UID",
                Some("+5"),
                FeatureError::BadNumber {
                    key: "UID",
                    value: "+5".into(),
                    bits: 64,
                }
                .into(),
            ),
            (
                "UID",
                Some("18446744073709551616"),
                FeatureError::BadNumber {
                    key: "UID",
                    value: "18446744073709551616".into(),
                    bits: 64,
                }
                .into(),
            ),
            ("ConnID", None, FeatureError::Missing("ConnID").into()),
            (
                "ShortID",
                Some("4096"),
                FeatureError::BadNumber {
                    key: "ShortID",
                    value: "4096".into(),
                    bits: 12,
                }
                .into(),
            ),
            (
                "Trusted",
                Some("yes"),
                FeatureError::BadBool("yes".into()).into(),
            ),
        ];
        for (key, value, err) in cases {
            let mut f = remote();
            match value {
                Some(v) => f.insert(key, v),
                None => f.remove(key),
            }
            assert_eq!(validate(f, &local(), 2, None).unwrap_err(), err, "{key}");
        }
        let mut f = remote();
        f.insert("ShortID", "4095");
        f.remove("Overlays");
        f.remove("Trusted");
        let r = validate(f, &local(), 2, None).unwrap();
        assert_eq!(
            (r.short_id, r.overlays, r.trusted_by_remote),
            (Some(4095), None, false)
        );
    }

    #[test]
    fn self_and_collision() {
        let mut f = remote();
        f.insert("Name", "00:00:00:00:00:01");
        f.insert("UID", local().uid.to_string());
        assert_eq!(
            validate(f.clone(), &local(), 2, None).unwrap_err(),
            ConnectionError::ConnectToSelf
        );
        f.insert("UID", "7");
        assert_eq!(
            validate(f, &local(), 2, None).unwrap_err(),
            ConnectionError::PeerNameCollision { name: local().name }
        );
    }

    #[test]
    fn standard_map_round_trips() {
        let f = Features::standard(&local(), "rw-h1", 445, false, Some("sleeve"));
        let decoded = Features::decode(&f.encode()).unwrap();
        assert_eq!(decoded, f);
        assert_eq!(decoded.get("UID"), Some("10999398883340606070"));
        assert_eq!(decoded.len(), 8);
        // A peer validating our map sees our identity.
        let other = LocalIdentity {
            name: PeerName::from_u64(2).unwrap(),
            uid: 1,
            conn_id: 5,
        };
        let r = validate(decoded, &other, 2, None).unwrap();
        assert_eq!(
            (r.name, r.uid, r.conn_uid),
            (local().name, local().uid, local().conn_id ^ 5)
        );
    }

    #[test]
    fn go_parse_bool_table() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("tRUE").is_err());
    }
}
