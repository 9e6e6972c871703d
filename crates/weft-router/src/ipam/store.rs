//! IPAM persistence: one redb database, `<data-dir>/ipam.redb`.
//!
//! redb is an embedded, transactional, copy-on-write store in pure Rust (the closest thing
//! to the BoltDB Weave used): a commit is atomic and durable, and a process killed at any
//! moment leaves the last committed state, never a torn one. Everything IPAM persists is
//! written in one transaction per change, so the peer name, the ring and the owned
//! addresses always belong together.
//!
//! Keys of the table `ipam` (values are bytes):
//! * `version`: `1`;
//! * `peername`: the peer name as text;
//! * `ring`: the ring as gob, as Weave's BoltDB holds it (`*ring.Ring`; the gossip's codec,
//!   fuzzed with it);
//! * `owned`: JSON `{ident: {"container": bool, "cidrs": ["a.b.c.d/n", ...]}}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use weft_ipam::addr::Cidr;
use weft_ipam::allocator::{Owned, Persisted};
use weft_ipam::codec;
use weft_mesh::PeerName;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("ipam");
const FORMAT: &[u8] = b"1";

/// The database file in a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("ipam.redb")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the IPAM database {path}: {source}; if it is damaged, move it away (the router then starts with no persisted addresses)")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("IPAM database {path}: {what}: {detail}")]
    Io {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("IPAM database {path} has format {found:?}, this weft reads format 1; move it away or use the weft that wrote it")]
    Format { path: PathBuf, found: String },
}

#[derive(Serialize, Deserialize)]
struct OwnedJson {
    container: bool,
    cidrs: Vec<String>,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    pub fn open(path: PathBuf) -> Result<Store, StoreError> {
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Store { db, path })
    }

    fn io(&self, what: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            what,
            detail: e.to_string(),
        }
    }

    /// What was persisted, if anything. Parts that do not decode are reported as errors: the
    /// caller decides (the router logs and starts without them).
    pub fn load(&self) -> Result<Option<Persisted>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.io("reading", e))?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.io("opening the table", e)),
        };
        let get = |key: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(table
                .get(key)
                .map_err(|e| self.io("reading", e))?
                .map(|v| v.value().to_vec()))
        };
        if let Some(v) = get("version")? {
            if v != FORMAT {
                return Err(StoreError::Format {
                    path: self.path.clone(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        let Some(name) = get("peername")? else {
            return Ok(None);
        };
        let peer_name: PeerName = std::str::from_utf8(&name)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.io("peername", "not a peer name"))?;
        let ring = match get("ring")? {
            Some(bytes) => {
                Some(codec::decode_persisted_ring(&bytes).map_err(|e| self.io("ring", e))?)
            }
            None => None,
        };
        let mut owned = BTreeMap::new();
        if let Some(bytes) = get("owned")? {
            let json: BTreeMap<String, OwnedJson> =
                serde_json::from_slice(&bytes).map_err(|e| self.io("owned addresses", e))?;
            for (ident, o) in json {
                let cidrs = o
                    .cidrs
                    .iter()
                    .map(|c| c.parse::<Cidr>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.io("owned addresses", e))?;
                owned.insert(
                    ident,
                    Owned {
                        is_container: o.container,
                        cidrs,
                    },
                );
            }
        }
        Ok(Some(Persisted {
            peer_name,
            ring,
            owned,
        }))
    }

    /// Replace what is persisted, in one durable transaction.
    pub fn save(&self, p: &Persisted) -> Result<(), StoreError> {
        let ring = p.ring.as_ref().map(codec::encode_persisted_ring);
        let owned: BTreeMap<&str, OwnedJson> = p
            .owned
            .iter()
            .map(|(ident, o)| {
                (
                    ident.as_str(),
                    OwnedJson {
                        container: o.is_container,
                        cidrs: o.cidrs.iter().map(|c| c.to_string()).collect(),
                    },
                )
            })
            .collect();
        let owned = serde_json::to_vec(&owned).map_err(|e| self.io("encoding", e))?;
        let tx = self.db.begin_write().map_err(|e| self.io("writing", e))?;
        {
            let mut t = tx
                .open_table(TABLE)
                .map_err(|e| self.io("opening the table", e))?;
            let name = p.peer_name.to_string();
            let put = |t: &mut redb::Table<&str, &[u8]>, k: &str, v: &[u8]| {
                t.insert(k, v).map(drop).map_err(|e| self.io("writing", e))
            };
            put(&mut t, "version", FORMAT)?;
            put(&mut t, "peername", name.as_bytes())?;
            match &ring {
                Some(r) => put(&mut t, "ring", r)?,
                None => {
                    t.remove("ring").map_err(|e| self.io("writing", e))?;
                }
            }
            put(&mut t, "owned", &owned)?;
        }
        tx.commit().map_err(|e| self.io("committing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ipam::wire::{EntryWire, RingWire};

    fn sample() -> Persisted {
        let me: PeerName = "00:00:00:00:00:01".parse().unwrap();
        let mut owned = BTreeMap::new();
        owned.insert(
            "netns:c1".to_owned(),
            Owned {
                is_container: true,
                cidrs: vec!["10.32.0.1/12".parse().unwrap()],
            },
        );
        Persisted {
            peer_name: me,
            ring: Some(RingWire {
                start: 0x0a20_0000,
                end: 0x0a30_0000,
                peer: me,
                entries: vec![EntryWire {
                    token: 0x0a20_0000,
                    peer: me,
                    version: 3,
                    free: 1_048_575,
                }],
                seeds: vec![me],
            }),
            owned,
        }
    }

    #[test]
    fn what_is_saved_loads_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        {
            let s = Store::open(p.clone()).unwrap();
            assert_eq!(s.load().unwrap(), None, "a new store holds nothing");
            s.save(&sample()).unwrap();
        }
        let s = Store::open(p.clone()).unwrap();
        assert_eq!(s.load().unwrap(), Some(sample()));
        let mut changed = sample();
        changed.owned.clear();
        changed.ring = None;
        s.save(&changed).unwrap();
        drop(s);
        assert_eq!(Store::open(p).unwrap().load().unwrap(), Some(changed));
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(path(dir.path())).unwrap();
        s.save(&sample()).unwrap();
        let tx = s.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(TABLE).unwrap();
            t.insert("ring", &b"\xff\x00garbage"[..]).unwrap();
        }
        tx.commit().unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("ring"), "{e}");
    }
}
