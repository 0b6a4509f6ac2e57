//! The proxy's share of the catalogue database: the approval queue and the audit table, behind a lock so the
//! proxy's tasks and threads can share one connection.
//!
//! A proxy must not open the whole [`crate::catalogue::Catalogue`] (its search index takes a write lock and may
//! rebuild itself); it only needs these few tables, so it opens the store alone. Commands that decide
//! approvals or read the audit use the same type from other processes: SQLite's locking (WAL, busy timeout)
//! is what lets a person approve from a second terminal while the proxy polls.

use std::path::Path;
use std::sync::Mutex;

use crate::store::{Approval, AuditQuery, AuditRow, Decision, NewApproval, Store, StoreError};

/// The approval queue and audit table of one data directory.
#[derive(Debug)]
pub struct Journal {
    store: Mutex<Store>,
}

impl Journal {
    /// Open (creating and migrating if needed) the catalogue database of `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Journal, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io { path: data_dir.to_path_buf(), source })?;
        Ok(Journal { store: Mutex::new(Store::open(&data_dir.join(crate::store::DB_FILE))?) })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request_approval(&self, new: &NewApproval<'_>) -> Result<i64, StoreError> {
        self.store().request_approval(new)
    }

    pub fn approval(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        self.store().approval(id)
    }

    pub fn approvals(&self, all: bool) -> Result<Vec<Approval>, StoreError> {
        self.store().approvals(all)
    }

    /// `Ok(None)`: no such id; `Some((changed, row))`: `changed` is false when the call was no longer pending.
    pub fn decide_approval(&self, id: i64, decision: &Decision<'_>) -> Result<Option<(bool, Approval)>, StoreError> {
        self.store().decide_approval(id, decision)
    }

    pub fn close_approval(&self, id: i64, status: &str, why: &str) -> Result<bool, StoreError> {
        self.store().close_approval(id, status, why)
    }

    /// Pending calls whose proxy process is gone become `expired`.
    pub fn expire_orphaned_approvals(&self) -> Result<usize, StoreError> {
        self.store().expire_orphaned_approvals(process_alive)
    }

    pub fn standing_approval(
        &self,
        tool: &str,
        args_sha256: &str,
        identity: Option<&str>,
    ) -> Result<Option<Approval>, StoreError> {
        self.store().standing_approval(tool, args_sha256, identity)
    }

    pub fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.store().append_audit(rows)
    }

    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.store().audit(query)
    }

    /// The approved fingerprint of each tool of `server`, `None` when it was never pinned.
    pub fn pinned_fingerprints(
        &self,
        server: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, StoreError> {
        Ok(self.store().pin_set(server)?.map(|p| p.tools))
    }
}

/// Whether a process with this id runs. Where that cannot be asked (no `/proc`), every owner counts as gone
/// except this process: an approval is only ever lost to `expired`, never granted by mistake.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}
