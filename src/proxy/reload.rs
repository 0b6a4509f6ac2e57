//! Hot reload: the policy file is watched, and a valid new version replaces the gate for the next call.
//!
//! The file is polled (size, modification time and content hash, every quarter second) rather than watched
//! with inotify: polling sees editors that replace the file, files on network mounts and symlink swaps alike,
//! and costs nothing measurable. A version that fails to load is reported on stderr and in the audit log, and
//! the last good gate stays in force: a typo must never open (or close) the gate. Calls already forwarded
//! keep the decision they got; counters live outside the gate, so a reload does not reset limits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::audit::Audit;
use super::counters::{Charge, Reservation};
use super::gate::{Call, CallOutcome, Gate, Refused, Verdict};

/// Builds a gate from a policy file; the error names what is wrong.
pub type Loader = dyn Fn(&Path) -> Result<Arc<dyn Gate>, String> + Send + Sync;

/// A gate that follows its policy file.
pub struct ReloadingGate {
    current: RwLock<Arc<dyn Gate>>,
}

impl std::fmt::Debug for ReloadingGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingGate").finish_non_exhaustive()
    }
}

impl ReloadingGate {
    /// Load `path` now (an error here stops the start) and keep watching it on a background thread.
    pub fn watch(path: PathBuf, loader: Box<Loader>, audit: Arc<Audit>) -> Result<Arc<ReloadingGate>, String> {
        let first = loader(&path)?;
        let gate = Arc::new(ReloadingGate { current: RwLock::new(first) });
        let weak = Arc::downgrade(&gate);
        let mut seen = fingerprint(&path);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let Some(gate) = weak.upgrade() else { return };
                let now = fingerprint(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match loader(&path) {
                    Ok(new) => {
                        *gate.current.write().unwrap_or_else(|e| e.into_inner()) = new;
                        tracing::warn!("policy reloaded from {}", path.display());
                        audit.event("policy_reload", true, &format!("loaded {}", path.display()));
                    }
                    Err(e) => {
                        tracing::error!("policy not reloaded, the previous version stays in force: {e}");
                        audit.event("policy_reload", false, &e);
                    }
                }
            }
        });
        Ok(gate)
    }

    fn gate(&self) -> Arc<dyn Gate> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What identifies a version of the file: its content hash (size and mtime alone miss same-second edits).
fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into())
}

impl Gate for ReloadingGate {
    fn visible(&self, tool: &str) -> bool {
        self.gate().visible(tool)
    }

    fn check(&self, call: &Call) -> Verdict {
        self.gate().check(call)
    }

    fn reserve(&self, charges: &[Charge]) -> Result<Vec<Reservation>, Refused> {
        // Counters outlive policy versions, so whichever gate is current reserves in the same store.
        self.gate().reserve(charges)
    }

    fn reserve_async(&self, charges: Vec<Charge>) -> BoxFuture<'_, Result<Vec<Reservation>, Refused>> {
        let gate = self.gate();
        Box::pin(async move { gate.reserve_async(charges).await })
    }

    fn settle(&self, charges: Vec<Reservation>, outcome: CallOutcome) {
        self.gate().settle(charges, outcome)
    }
}
