//! The catalogue's source of truth: SQLite (the only module that imports rusqlite).
//!
//! `catalogue.db` holds servers (their specs redacted), every crawl run, tool definitions by fingerprint, the
//! current tool set of each server, the history of every change, classifications (with the ruleset version
//! that produced them) and findings. The search index is derived from it and can always be rebuilt.
//!
//! Why it is shaped so:
//! - One connection, used for reads and writes, in WAL mode: a CLI process does one thing at a time, and WAL
//!   lets a `search` read while a `crawl` in another process writes. `busy_timeout` makes a second writer wait
//!   instead of failing at once.
//! - Every write of crawl results is one `BEGIN IMMEDIATE` transaction covering all the servers of the batch,
//!   so a crash or a SIGKILL at any point leaves the previous state, never half a server.
//! - Definitions are keyed by content (sha256 of canonical JSON), so an unchanged tool costs no write and a
//!   changed one keeps its old definition for `show` to compare.
//! - A `generation` counter in `meta` goes up with every change the index must see; the index records the
//!   generation it reflects, which is how a stale or half-updated index is detected.
//! - Opening never alters a file it does not recognise: a non-SQLite file, a foreign SQLite database or one
//!   written by a newer toolwarden is refused before the first write.
//! - All SQL uses bound parameters: names and descriptions come from strangers.

mod counters;
mod journal;
mod pins;
mod read;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::model::{ServerInfo, ServerSpec, ToolRecord};

#[cfg(test)]
pub(crate) use counters::hold_write_lock;
pub use counters::{CounterCharge, CounterOver, CounterRefund};
pub use journal::{Approval, AuditQuery, AuditRow, Decision, NewApproval};
pub use pins::PinSet;
pub use write::{Ingested, Prepared, prepare};

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "catalogue.db";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Errors of the store. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: not a toolwarden catalogue (the file is not an SQLite database); it was left untouched: move it away or use another --data-dir"
    )]
    NotADatabase { path: PathBuf },
    #[error(
        "{path}: an SQLite database that is not a toolwarden catalogue; it was left untouched: move it away or use another --data-dir"
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path}: written by a newer toolwarden (catalogue schema version {found}, this binary knows up to {known}); it was left untouched: upgrade toolwarden"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("the catalogue database is corrupt ({0}); restore a backup or move catalogue.db away and crawl again")]
    Corrupt(String),
    #[error("the catalogue is busy: another toolwarden process is writing it ({0}); try again when it has finished")]
    Busy(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("catalogue database: {0}")]
    Sqlite(rusqlite::Error),
    #[error("catalogue data: {0}")]
    Data(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(e.to_string()),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(e.to_string()),
            _ => StoreError::Sqlite(e),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::Data(e.to_string())
    }
}

/// One listing attempt of a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrawlRun {
    pub at: String,
    /// `ok` or `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<ServerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<i64>,
}

/// A server with its tool count and latest run, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSummary {
    pub name: String,
    pub tools: usize,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CrawlRun>,
}

/// Everything the catalogue knows about one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerDetail {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServerSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ServerInfo>,
    pub first_seen: String,
    pub last_seen: String,
    /// Newest first.
    pub runs: Vec<CrawlRun>,
    pub tools: Vec<ToolRecord>,
}

/// One entry of a tool's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolEvent {
    pub at: String,
    /// `added`, `changed` or `removed`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// For `changed`: the top-level keys of the definition that differ (`description`, `inputSchema`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// For a changed description: what it said before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_description: Option<String>,
}

/// One tool with its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDetail {
    #[serde(flatten)]
    pub record: ToolRecord,
    /// When the current definition became current (for a removed tool: when it was removed).
    pub since: String,
    /// False when the tool is no longer listed by its server.
    pub current: bool,
    /// Oldest first.
    pub history: Vec<ToolEvent>,
}

/// Counts over the current tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub servers: usize,
    pub tools: usize,
    pub definitions: usize,
    pub by_server: Vec<ServerStats>,
    /// Category name → count, every category present (0 when none).
    pub by_category: std::collections::BTreeMap<String, usize>,
    /// Risk name → count, every level present (0 when none).
    pub by_risk: std::collections::BTreeMap<String, usize>,
}

/// Counts for one server.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerStats {
    pub server: String,
    pub tools: usize,
    pub by_risk: std::collections::BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<String>,
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Unix seconds after which a counter reservation also deletes expired counter rows.
    next_counter_purge: i64,
}

impl Store {
    /// Open `path`, creating and migrating it as needed. A file that is not ours is refused, untouched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(StoreError::from)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mut store = Store { conn, path: path.to_path_buf(), next_counter_purge: 0 };
        store.check_identity()?;
        store.conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode survives a process crash or kill; only a power loss may drop the last commits.
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        store.conn.pragma_update(None, "foreign_keys", true)?;
        // Definitions are keyed by random hashes, so bulk writes touch pages all over the file: a 64 MiB page
        // cache (the default is 2 MiB) keeps them from being read and spilled again and again.
        store.conn.pragma_update(None, "cache_size", -65536)?;
        store.conn.pragma_update(None, "temp_store", "MEMORY")?;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuse foreign and newer databases before anything is written.
    fn check_identity(&self) -> Result<(), StoreError> {
        let app_id: i32 = self.conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let objects: i64 = self.conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if app_id != schema::APPLICATION_ID && (app_id != 0 || objects > 0) {
            return Err(StoreError::Foreign { path: self.path.clone() });
        }
        let known = schema::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found: version, known });
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version as usize >= schema::MIGRATIONS.len() {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        if version == 0 {
            tx.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
            tx.execute("INSERT INTO meta(key, value) VALUES ('catalogue_id', ?1)", [new_catalogue_id(&self.path)])?;
            tx.execute("INSERT INTO meta(key, value) VALUES ('generation', '0')", [])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A random id for this catalogue and the generation of its content: what the index must match.
    pub fn generation(&self) -> Result<(String, u64), StoreError> {
        let id: String = self.conn.query_row("SELECT value FROM meta WHERE key = 'catalogue_id'", [], |r| r.get(0))?;
        Ok((id, read_generation(&self.conn)?))
    }
}

fn read_generation(conn: &Connection) -> Result<u64, StoreError> {
    let value: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| r.get(0)).optional()?;
    value.unwrap_or_else(|| "0".into()).parse().map_err(|_| StoreError::Data("meta.generation is not a number".into()))
}

/// A non-empty file at the path must start with SQLite's magic; anything else is not ours to open.
fn check_header(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(StoreError::NotADatabase { path: path.to_path_buf() });
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let n = file.read(&mut head).map_err(io)?;
    if n < head.len() || &head != SQLITE_MAGIC {
        return Err(StoreError::NotADatabase { path: path.to_path_buf() });
    }
    Ok(())
}

fn new_catalogue_id(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}:{}:{}", std::process::id(), path.display());
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

/// The current time as RFC 3339 in UTC with milliseconds, the format of every timestamp in the store.
pub(crate) fn now() -> String {
    // Fixed width (always three fractional digits), so stored times sort and line up as text.
    format_time(jiff::Timestamp::now())
}

/// A time in the store's format (RFC 3339 UTC, milliseconds): how callers turn `--since` into a bound.
pub fn format_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Test hook: with `TOOLWARDEN_DEBUG_PAUSE=<stage>:<marker file>`, reaching `stage` creates the marker file and
/// sleeps, so a test can SIGKILL the process at exactly that point (`store`: inside the write transaction;
/// `index`: after the store committed, before the index did).
pub(crate) fn debug_pause(stage: &str) {
    let Ok(spec) = std::env::var("TOOLWARDEN_DEBUG_PAUSE") else { return };
    let Some((want, marker)) = spec.split_once(':') else { return };
    if want != stage {
        return;
    }
    let _ = std::fs::write(marker, stage);
    std::thread::sleep(Duration::from_secs(120));
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
