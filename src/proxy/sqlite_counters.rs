//! A [`CounterStore`] in an SQLite file, for a single host whose limits must survive a proxy restart
//! (`--state sqlite` = the catalogue database of `--data-dir`; `--state sqlite:PATH` = a file of its own).
//!
//! The SQL lives in the store (`store::counters`); this adapter only maps charges to rows and errors to the
//! operator's `--state-failure`. One connection per process, behind a mutex: a reservation is one short
//! `BEGIN IMMEDIATE` transaction (WAL, `synchronous=NORMAL`, cached statements: tens of microseconds), so
//! several proxy processes sharing the file are exact too. Because another process may hold the write lock for
//! a moment, a reservation inside the runtime runs on the blocking pool ([`CounterStore::reserve_async`]), and
//! elsewhere under `block_in_place`. A database locked for longer than
//! [`BUSY`], or broken, is "state unavailable": refused or allowed uncounted, audited, as with Redis.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::audit::Audit;
use super::counters::{
    Charge, CounterStore, Exceeded, Reservation, ReserveError, StateFailure, blocking, state_unavailable,
};
use super::redis_counters::ttl;
use crate::store::{CounterCharge, CounterRefund, Store, StoreError};

/// How long a reservation waits for another process's write lock before the state counts as unavailable.
pub const BUSY: Duration = Duration::from_secs(1);

/// Counters in an SQLite file.
pub struct SqliteCounters {
    /// This store itself, for reservations sent to the blocking pool.
    me: Weak<SqliteCounters>,
    store: Mutex<Store>,
    path: PathBuf,
    failure: StateFailure,
    audit: Arc<Audit>,
    /// Whether the last attempt failed, so recovery is reported once.
    down: AtomicBool,
}

impl std::fmt::Debug for SqliteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCounters").field("path", &self.path).field("failure", &self.failure).finish()
    }
}

fn signed(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

impl SqliteCounters {
    /// Open (creating and migrating) the database at `path`. Unlike Redis, a file that cannot be opened stops
    /// the start: it is local, so the problem is the operator's to fix now, not a network blip.
    pub fn open(path: &Path, failure: StateFailure, audit: Arc<Audit>) -> Result<Arc<SqliteCounters>, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io { path: parent.to_path_buf(), source })?;
        }
        let store = Store::open(path)?;
        store.set_busy_timeout(BUSY)?;
        Ok(Arc::new_cyclic(|me| SqliteCounters {
            me: me.clone(),
            store: Mutex::new(store),
            path: path.to_path_buf(),
            failure,
            audit,
            down: false.into(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The amount counted under `counter` (`name|scope`) in the bucket starting at `bucket` (diagnostics, tests).
    pub fn used(&self, counter: &str, bucket: u64) -> Result<f64, StoreError> {
        self.store().counter_value(counter, signed(bucket))
    }

    fn reachable(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("rate-limit state reachable again; calls are counted");
            self.audit.event("state_recovered", true, "rate-limit state reachable again; calls are counted");
        }
    }
}

impl CounterStore for SqliteCounters {
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError> {
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<CounterCharge<'_>> = charges
            .iter()
            .map(|c| CounterCharge {
                key: &c.key,
                bucket: signed(c.window.bucket(now)),
                max: c.max,
                amount: c.amount,
                expires: signed(now.saturating_add(ttl(c, now))),
            })
            .collect();
        let answer = blocking(|| self.store().reserve_counters(&rows, signed(now)));
        match answer {
            Err(e) => {
                self.down.store(true, Ordering::Relaxed);
                state_unavailable(self.failure, &self.audit, &e)
            }
            Ok(Ok(())) => {
                self.reachable();
                let reserved = charges.iter().map(|c| Reservation {
                    key: c.key.clone(),
                    bucket: c.window.bucket(now),
                    amount: c.amount,
                    refundable: c.refundable,
                });
                Ok(reserved.collect())
            }
            Ok(Err(over)) => {
                self.reachable();
                let charge = &charges[over.index.min(charges.len() - 1)];
                Err(ReserveError::Exceeded(Exceeded {
                    key: charge.key.clone(),
                    used: over.used,
                    max: charge.max,
                    window: charge.window,
                }))
            }
        }
    }

    fn may_block(&self) -> bool {
        true
    }

    fn reserve_async(&self, charges: Vec<Charge>, now: u64) -> BoxFuture<'_, Result<Vec<Reservation>, ReserveError>> {
        let Some(me) = self.me.upgrade() else { return Box::pin(std::future::ready(self.reserve(&charges, now))) };
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || me.reserve(&charges, now)).await {
                Ok(result) => result,
                Err(e) => state_unavailable(self.failure, &self.audit, &e),
            }
        })
    }

    fn rollback(&self, reservations: &[Reservation]) {
        let refunds: Vec<CounterRefund<'_>> = reservations
            .iter()
            .filter(|r| r.refundable && r.amount != 0.0)
            .map(|r| CounterRefund { key: &r.key, bucket: signed(r.bucket), amount: r.amount })
            .collect();
        if refunds.is_empty() {
            return;
        }
        if let Err(e) = blocking(|| self.store().refund_counters(&refunds)) {
            // The spend stays counted: the safe side of a lost refund.
            let message = format!("rate-limit state unavailable: {e}; a refund was not given back");
            tracing::warn!("{message}");
            self.audit.event("state_unavailable", false, &message);
            self.down.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::counters::Window;

    fn charge(key: &str, max: f64, amount: f64, refundable: bool) -> Charge {
        Charge { key: key.into(), window: Window::Day, max, amount, refundable }
    }

    fn open(path: &Path, failure: StateFailure) -> Arc<SqliteCounters> {
        SqliteCounters::open(path, failure, Arc::new(Audit::disabled())).unwrap()
    }

    #[test]
    fn counts_survive_reopening_and_spend_is_refunded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        let now = 86_400 * 10 + 5;
        {
            let s = open(&path, StateFailure::Closed);
            s.reserve(&[charge("calls", 3.0, 1.0, false)], now).unwrap();
            s.reserve(&[charge("calls", 3.0, 1.0, false)], now).unwrap();
        }
        let s = open(&path, StateFailure::Closed);
        s.reserve(&[charge("calls", 3.0, 1.0, false)], now).unwrap();
        let Err(ReserveError::Exceeded(over)) = s.reserve(&[charge("calls", 3.0, 1.0, false)], now) else {
            panic!("the fourth call was admitted")
        };
        assert_eq!((over.used, over.max), (3.0, 3.0));
        let r = s.reserve(&[charge("spend", 100.0, 70.0, true), charge("calls2", 9.0, 1.0, false)], now).unwrap();
        s.rollback(&r);
        assert_eq!(s.used("spend", Window::Day.bucket(now)).unwrap(), 0.0);
        assert_eq!(s.used("calls2", Window::Day.bucket(now)).unwrap(), 1.0, "counts are not refunded");
    }

    #[test]
    fn a_locked_database_follows_the_failure_mode_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let closed = open(&path, StateFailure::Closed);
        let open_mode = open(&path, StateFailure::Open);
        for s in [&closed, &open_mode] {
            s.store().set_busy_timeout(Duration::from_millis(20)).unwrap();
        }
        let c = [charge("x", 5.0, 1.0, false)];
        let lock = crate::store::hold_write_lock(&path);
        let Err(ReserveError::Unavailable(reason)) = closed.reserve(&c, 0) else { panic!("admitted while locked") };
        assert!(reason.starts_with("rate-limit state unavailable: ") && reason.ends_with("(state-failure closed)"));
        assert_eq!(open_mode.reserve(&c, 0), Ok(Vec::new()), "open: allowed, uncounted");
        drop(lock);
        assert_eq!(closed.reserve(&c, 0).unwrap().len(), 1);
        assert_eq!(closed.used("x", 0).unwrap(), 1.0, "only the call made after the lock went was counted");
        assert!(!closed.down.load(Ordering::Relaxed));
    }
}
