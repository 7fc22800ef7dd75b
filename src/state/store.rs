//! The embedded store of desired state: models, endpoint configs, endpoints, training and
//! tuning jobs, tags.
//!
//! One redb database under the data directory; each record is JSON under the key
//! `<kind>/<name>`. Who may use a data directory (one `sagedock up` at a time) is decided
//! by its lock, [`crate::runtime::owner::DataDirLock`], which the caller holds while the
//! store is open.
//!
//! A database that exists but is empty (0 bytes: cut short) or unreadable is an error that
//! says so, never a silent fresh start; a missing one is a fresh start.

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Endpoint, EndpointConfig, Model, TagSet, TrainingJob, TransformJob, TuningJob};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// The database file in the data directory.
pub const DATABASE: &str = "state.redb";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state database {0} is empty (0 bytes): it was cut short. Move it away to start afresh (the models, endpoint configs and endpoints it held are lost), or put back a copy")]
    Empty(PathBuf),
    #[error("the store at {path} failed: {detail}")]
    Database { path: PathBuf, detail: String },
}

/// A kind of record and its key prefix.
pub trait Record: Serialize + DeserializeOwned {
    const PREFIX: &'static str;
}

impl Record for Model {
    const PREFIX: &'static str = "model/";
}
impl Record for EndpointConfig {
    const PREFIX: &'static str = "endpoint-config/";
}
impl Record for Endpoint {
    const PREFIX: &'static str = "endpoint/";
}
impl Record for TrainingJob {
    const PREFIX: &'static str = "training-job/";
}
impl Record for TuningJob {
    const PREFIX: &'static str = "tuning-job/";
}
impl Record for TransformJob {
    const PREFIX: &'static str = "transform-job/";
}
/// Tags are kept by the ARN of their resource.
impl Record for TagSet {
    const PREFIX: &'static str = "tags/";
}

fn key<T: Record>(name: &str) -> String {
    format!("{}{name}", T::PREFIX)
}

/// The store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (creating) the store in `dir`. The caller holds the directory's lock.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATABASE);
        if fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Empty(path));
        }
        let db = Database::create(&path).map_err(|e| StoreError::Database {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let store = Store { db, path };
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

    pub fn get<T: Record>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let key = key::<T>(name);
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
            .map_err(|e| self.db_err(format!("record {key}: {e}")))
    }

    /// Writes a record, replacing any earlier one.
    pub fn put<T: Record>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let key = key::<T>(name);
        let bytes = serde_json::to_vec(value).map_err(|e| self.db_err(e))?;
        self.write(|t| t.insert(key.as_str(), bytes.as_slice()).map(drop))
    }

    /// Changes a record in one write transaction, so no other write comes between the read
    /// and the write; the record as written, or None when there is none.
    pub fn update<T: Record>(
        &self,
        name: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<Option<T>, StoreError> {
        let key = key::<T>(name);
        let outcome = self.write(|t| {
            let Some(bytes) = t.get(key.as_str())?.map(|v| v.value().to_vec()) else {
                return Ok(Ok(None));
            };
            let mut record: T = match serde_json::from_slice(&bytes) {
                Ok(record) => record,
                Err(e) => return Ok(Err(e.to_string())),
            };
            change(&mut record);
            let bytes = match serde_json::to_vec(&record) {
                Ok(bytes) => bytes,
                Err(e) => return Ok(Err(e.to_string())),
            };
            t.insert(key.as_str(), bytes.as_slice())?;
            Ok(Ok(Some(record)))
        })?;
        outcome.map_err(|e| self.db_err(format!("record {key}: {e}")))
    }

    /// Writes a record only if none exists; returns false when one did.
    pub fn insert_new<T: Record>(&self, name: &str, value: &T) -> Result<bool, StoreError> {
        let key = key::<T>(name);
        let bytes = serde_json::to_vec(value).map_err(|e| self.db_err(e))?;
        self.write(|t| {
            if t.get(key.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(key.as_str(), bytes.as_slice())?;
            Ok(true)
        })
    }

    /// Removes a record; returns whether it existed.
    pub fn delete<T: Record>(&self, name: &str) -> Result<bool, StoreError> {
        let key = key::<T>(name);
        self.write(|t| Ok(t.remove(key.as_str())?.is_some()))
    }

    /// Every record of a kind, in key order. A record that cannot be read (written by a
    /// newer sagedock, or damaged) is left out with a warning, so one bad record does not
    /// take the others with it.
    pub fn list<T: Record>(&self) -> Result<Vec<T>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = match tx.open_table(RECORDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.db_err(e)),
        };
        let mut out = Vec::new();
        for item in table.range(T::PREFIX..).map_err(|e| self.db_err(e))? {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            if !key.value().starts_with(T::PREFIX) {
                break;
            }
            match serde_json::from_slice(value.value()) {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(
                    record = key.value(),
                    error = %e,
                    store = %self.path.display(),
                    "a record cannot be read; it is left out"
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Tag;

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let tags = TagSet(vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }]);
            assert!(store.insert_new("arn:1", &tags).unwrap());
            assert!(!store.insert_new("arn:1", &TagSet::default()).unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get::<TagSet>("arn:1").unwrap().unwrap().len(), 1);
        assert_eq!(store.list::<TagSet>().unwrap().len(), 1);
        assert!(store.list::<Model>().unwrap().is_empty());
        let changed = store
            .update::<TagSet>("arn:1", |t| t.0[0].value = "w".into())
            .unwrap()
            .unwrap();
        assert_eq!(changed.0[0].value, "w");
        assert_eq!(
            store.get::<TagSet>("arn:1").unwrap().unwrap().0[0].value,
            "w"
        );
        assert!(store.update::<TagSet>("missing", |_| {}).unwrap().is_none());
        assert!(store.delete::<TagSet>("arn:1").unwrap());
        assert!(store.get::<TagSet>("arn:1").unwrap().is_none());
    }

    #[test]
    fn an_empty_database_file_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATABASE), b"").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Empty(_)));
        assert!(err.to_string().contains("0 bytes"), "{err}");
        fs::write(dir.path().join(DATABASE), b"not a database at all").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Database { .. }), "{err}");
    }

    #[test]
    fn an_unreadable_record_is_left_out_of_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|t| t.insert("tags/bad", b"{not json".as_slice()).map(drop))
            .unwrap();
        store.put("good", &TagSet::default()).unwrap();
        assert_eq!(store.list::<TagSet>().unwrap().len(), 1);
        assert!(store.get::<TagSet>("bad").is_err());
    }
}
