//! The embedded store of desired state: models, endpoint configs, endpoints, tags.
//!
//! One redb database under the data directory; each record is JSON under the key
//! `<kind>/<name>`. A lock file held for the life of the process makes a second sagedock
//! on the same data directory refuse to start, and tells `gc` that containers labelled
//! with this data directory still have an owner.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
pub const LOCK_FILE: &str = "sagedock.lock";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another sagedock is already running on the data directory {0} (it holds {LOCK_FILE}); stop it, or pass another --data-dir")]
    AlreadyRunning(PathBuf),
    #[error("cannot use the data directory {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("the store at {path} failed: {detail}")]
    Database { path: PathBuf, detail: String },
}

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    EndpointConfig,
    Endpoint,
    Tags,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Model => "model/",
            Kind::EndpointConfig => "endpoint-config/",
            Kind::Endpoint => "endpoint/",
            Kind::Tags => "tags/",
        }
    }
}

/// The store.
pub struct Store {
    db: Database,
    path: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating) the store in `dir`, taking the data directory's lock.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        };
        fs::create_dir_all(dir).map_err(io)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(StoreError::AlreadyRunning(dir.to_path_buf()));
        }
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Database {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let store = Store {
            db,
            path,
            _lock: lock,
        };
        store.write(|t| t.insert("meta/version", b"1".as_slice()).map(drop))?;
        Ok(store)
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, redb::StorageError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.db_err(e))?;
        let out = {
            let mut table = tx.open_table(RECORDS).map_err(|e| self.db_err(e))?;
            f(&mut table).map_err(|e| self.db_err(e))?
        };
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(out)
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = format!("{}{name}", kind.prefix());
        let tx = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = match tx.open_table(RECORDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.db_err(e)),
        };
        let Some(value) = table.get(key.as_str()).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(|e| self.db_err(e))
    }

    /// Writes a record, replacing any earlier one.
    pub fn put<T: Serialize>(&self, kind: Kind, name: &str, value: &T) -> Result<(), StoreError> {
        let key = format!("{}{name}", kind.prefix());
        let bytes = serde_json::to_vec(value).expect("serialisable");
        self.write(|t| t.insert(key.as_str(), bytes.as_slice()).map(drop))
    }

    /// Writes a record only if none exists; returns false when one did.
    pub fn insert_new<T: Serialize>(
        &self,
        kind: Kind,
        name: &str,
        value: &T,
    ) -> Result<bool, StoreError> {
        let key = format!("{}{name}", kind.prefix());
        let bytes = serde_json::to_vec(value).expect("serialisable");
        self.write(|t| {
            if t.get(key.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(key.as_str(), bytes.as_slice())?;
            Ok(true)
        })
    }

    /// Removes a record; returns whether it existed.
    pub fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        let key = format!("{}{name}", kind.prefix());
        self.write(|t| Ok(t.remove(key.as_str())?.is_some()))
    }

    /// Every record of a kind, in key order.
    pub fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = match tx.open_table(RECORDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.db_err(e)),
        };
        let prefix = kind.prefix();
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.db_err(e))? {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push(serde_json::from_slice(value.value()).map_err(|e| self.db_err(e))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.insert_new(Kind::Model, "m1", &"one").unwrap());
            assert!(!store.insert_new(Kind::Model, "m1", &"again").unwrap());
            store.put(Kind::Endpoint, "e1", &"ep").unwrap();
            assert!(matches!(
                Store::open(dir.path()),
                Err(StoreError::AlreadyRunning(_))
            ));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get::<String>(Kind::Model, "m1").unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(store.list::<String>(Kind::Model).unwrap(), vec!["one"]);
        assert_eq!(store.list::<String>(Kind::Endpoint).unwrap(), vec!["ep"]);
        assert!(store.delete(Kind::Model, "m1").unwrap());
        assert!(store.get::<String>(Kind::Model, "m1").unwrap().is_none());
    }
}
