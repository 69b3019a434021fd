//! The ledger: which consumers are registered and the highest id each has acknowledged.
//!
//! Stored as `ledger.json` in the relay directory:
//!
//! ```json
//! {"version":1,"consumers":{"orders":1042,"billing":998}}
//! ```
//!
//! Invariant: the file on disk is always a complete ledger. It is replaced atomically (write `ledger.json.tmp`,
//! fsync, rename over `ledger.json`, fsync the directory), so a crash leaves either the old or the new ledger.
//! Segments are deleted only after the ack that allows it is on disk, so a restart never finds an ack that
//! points before what retention already removed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) const LEDGER_FILE: &str = "ledger.json";
const LEDGER_TMP: &str = "ledger.json.tmp";
const LEDGER_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    version: u32,
    consumers: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub(crate) struct Ledger {
    dir: PathBuf,
    /// consumer name -> highest id it no longer needs.
    pub(crate) consumers: BTreeMap<String, u64>,
}

impl Ledger {
    /// Loads `dir/ledger.json`, or an empty ledger when there is none. Removes a leftover temp file.
    pub(crate) fn load(dir: &Path) -> Result<Ledger> {
        let tmp = dir.join(LEDGER_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", tmp, e)),
        }
        let path = dir.join(LEDGER_FILE);
        let consumers = match fs::read(&path) {
            Ok(bytes) => {
                let file: LedgerFile =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Ledger {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if file.version != LEDGER_VERSION {
                    return Err(Error::Ledger {
                        path,
                        reason: format!(
                            "unsupported version {}, this build reads version {LEDGER_VERSION}",
                            file.version
                        ),
                    });
                }
                file.consumers
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        Ok(Ledger {
            dir: dir.to_path_buf(),
            consumers,
        })
    }

    /// Smallest ack over all registered consumers; `None` when nobody is registered (then nothing is deleted).
    pub(crate) fn min_ack(&self) -> Option<u64> {
        self.consumers.values().copied().min()
    }

    /// Writes the ledger atomically (temp file, fsync, rename, fsync directory). On a full file system it gives
    /// up the space reserve (see [`ensure_reserve`]) and tries once more: acks are what free segments, so they
    /// must be recorded when nothing else can be written.
    pub(crate) fn save(&self) -> Result<()> {
        match self.save_once() {
            Err(Error::Io { source, .. })
                if crate::log::is_no_space(&source)
                    && fs::remove_file(self.dir.join(RESERVE_FILE)).is_ok() =>
            {
                tracing::warn!(dir = %self.dir.display(), "relay log: the file system is full; its space reserve was given up to record an ack");
                self.save_once()
            }
            r => r,
        }
    }

    fn save_once(&self) -> Result<()> {
        let file = LedgerFile {
            version: LEDGER_VERSION,
            consumers: self.consumers.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| Error::Ledger {
            path: self.dir.join(LEDGER_FILE),
            reason: format!("cannot serialize: {e}"),
        })?;
        let tmp = self.dir.join(LEDGER_TMP);
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        let path = self.dir.join(LEDGER_FILE);
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename ledger temp file over", &path, e))?;
        sync_dir(&self.dir)
    }
}

/// A file of zeros kept in the relay directory, given up when the file system is full so that the ledger can
/// still be written.
const RESERVE_FILE: &str = "space-reserve";
const RESERVE_BYTES: usize = 1 << 20;

/// Creates the reserve file if it is missing (best-effort: a partial one is removed). Returns whether it is there.
pub(crate) fn ensure_reserve(dir: &Path) -> bool {
    let path = dir.join(RESERVE_FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return true;
    }
    let made = File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; RESERVE_BYTES])
            .and_then(|()| f.sync_all())
    });
    if made.is_err() {
        let _ = fs::remove_file(&path);
    }
    made.is_ok()
}

/// fsync a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}
