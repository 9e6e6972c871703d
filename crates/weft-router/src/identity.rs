//! Choosing this router's peer name and nickname.
//!
//! The name, in order of precedence: `--name`; the MAC of an existing `weave` bridge (which a
//! router sets to its name, so the bridge carries the identity across restarts, as Weave's
//! does); the name persisted in the data directory; a name derived from the machine's identity
//! as Weave derives it (machine-id ‖ system UUID); a random name. Whatever is chosen is persisted, so the router keeps its identity across restarts.
//! The nickname is `--nickname`, else the host name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use weft_mesh::PeerName;

/// This router's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: PeerName,
    pub nickname: String,
    pub name_source: NameSource,
}

/// Where the peer name came from (logged at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    Flag,
    Bridge,
    Persisted,
    SystemId,
    Random,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "persisted peer name in {path} is unreadable ({reason}); pass --name or remove the file"
    )]
    BadPersisted { path: PathBuf, reason: String },
    #[error("cannot persist the peer name to {path}: {source}")]
    Persist { path: PathBuf, source: io::Error },
}

/// Identifiers of the machine, read by the caller (the edge) from the files Weave uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemIds {
    /// The MAC of an existing `weave` bridge.
    pub bridge_mac: Option<PeerName>,
    /// Contents of `/etc/machine-id` (or `/var/lib/dbus/machine-id`), trimmed.
    pub machine_id: Option<String>,
    /// Contents of `/sys/class/dmi/id/product_uuid` (or `/sys/hypervisor/uuid`), trimmed.
    pub system_uuid: Option<String>,
}

impl SystemIds {
    /// Read the machine's identifiers from the usual places.
    pub fn read() -> Self {
        let first = |paths: &[&str]| {
            paths.iter().find_map(|p| {
                fs::read_to_string(p)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
        };
        SystemIds {
            bridge_mac: None,
            machine_id: first(&["/etc/machine-id", "/var/lib/dbus/machine-id"]),
            system_uuid: first(&["/sys/class/dmi/id/product_uuid", "/sys/hypervisor/uuid"]),
        }
    }

    /// The name Weave derives from these identifiers, if there are any.
    pub fn derived_name(&self) -> Option<PeerName> {
        if self.machine_id.is_none() && self.system_uuid.is_none() {
            return None;
        }
        let mut id = self.machine_id.clone().unwrap_or_default();
        id.push_str(self.system_uuid.as_deref().unwrap_or(""));
        Some(PeerName::from_system_id(id.as_bytes()))
    }
}

/// The file in the data directory that holds the peer name.
pub fn persisted_name_path(data_dir: &Path) -> PathBuf {
    data_dir.join("peer-name")
}

/// Decide the identity and persist the name. `random` supplies bytes for a random name.
pub fn resolve(
    flag_name: Option<PeerName>,
    flag_nickname: Option<String>,
    data_dir: &Path,
    system: &SystemIds,
    hostname: impl FnOnce() -> String,
    random: impl FnOnce() -> [u8; 6],
) -> Result<Identity, IdentityError> {
    let path = persisted_name_path(data_dir);
    let persisted = match fs::read_to_string(&path) {
        Ok(text) => {
            Some(
                text.trim()
                    .parse::<PeerName>()
                    .map_err(|e| IdentityError::BadPersisted {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?,
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(IdentityError::BadPersisted {
                path,
                reason: e.to_string(),
            })
        }
    };
    let (name, name_source) = if let Some(n) = flag_name {
        (n, NameSource::Flag)
    } else if let Some(n) = system.bridge_mac {
        (n, NameSource::Bridge)
    } else if let Some(n) = persisted {
        (n, NameSource::Persisted)
    } else if let Some(n) = system.derived_name() {
        (n, NameSource::SystemId)
    } else {
        (PeerName::from_random(random()), NameSource::Random)
    };
    if persisted != Some(name) {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, format!("{name}\n"))
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| IdentityError::Persist {
                path: path.clone(),
                source,
            })?;
    }
    let nickname = flag_nickname.unwrap_or_else(hostname);
    Ok(Identity {
        name,
        nickname,
        name_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(m: Option<&str>) -> SystemIds {
        SystemIds {
            bridge_mac: None,
            machine_id: m.map(str::to_owned),
            system_uuid: None,
        }
    }

    fn host() -> String {
        "h1".into()
    }

    #[test]
    fn precedence_and_persistence() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let rnd = || [0xff; 6];
        // Derived from machine-id, then persisted.
        let a = resolve(None, None, d, &ids(Some("abc")), host, rnd).unwrap();
        assert_eq!(a.name_source, NameSource::SystemId);
        assert_eq!(a.name, PeerName::from_system_id(b"abc"));
        assert_eq!(a.nickname, "h1");
        // A different machine-id later does not change a persisted name.
        let b = resolve(None, None, d, &ids(Some("xyz")), host, rnd).unwrap();
        assert_eq!((b.name, b.name_source), (a.name, NameSource::Persisted));
        // --name wins and is persisted.
        let n: PeerName = "::7".parse().unwrap();
        let c = resolve(Some(n), Some("nick".into()), d, &ids(None), host, rnd).unwrap();
        assert_eq!((c.name, c.nickname.as_str()), (n, "nick"));
        let e = resolve(None, None, d, &ids(None), host, rnd).unwrap();
        assert_eq!((e.name, e.name_source), (n, NameSource::Persisted));
    }

    #[test]
    fn an_existing_bridge_keeps_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let b: PeerName = "::42".parse().unwrap();
        let sys = SystemIds {
            bridge_mac: Some(b),
            ..ids(Some("abc"))
        };
        let a = resolve(None, None, tmp.path(), &sys, host, || [0; 6]).unwrap();
        assert_eq!((a.name, a.name_source), (b, NameSource::Bridge));
    }

    #[test]
    fn random_when_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let a = resolve(None, None, tmp.path(), &ids(None), host, || [0x01; 6]).unwrap();
        assert_eq!(a.name_source, NameSource::Random);
        assert_eq!(a.name.to_string(), "02:01:01:01:01:01");
    }

    #[test]
    fn corrupt_persisted_name_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(persisted_name_path(tmp.path()), "garbage").unwrap();
        let err = resolve(None, None, tmp.path(), &ids(None), host, || [0; 6]).unwrap_err();
        assert!(err.to_string().contains("pass --name"), "{err}");
    }
}
