//! A [`CounterStore`] in an SQLite file, for a single host whose limits must survive a proxy restart
//! (`--state sqlite` = the catalogue database of `--data-dir`; `--state sqlite:PATH` = a file of its own).
//!
//! The SQL lives in the store (`store::counters`); this adapter only maps charges to rows and errors to the
//! operator's `--state-failure`. One connection per process, behind a mutex: a reservation is one short
//! `BEGIN IMMEDIATE` transaction (WAL, `synchronous=NORMAL`, cached statements: tens of microseconds), so
//! several proxy processes sharing the file are exact too. Because another process may hold the write lock for
//! a moment, a reservation inside the runtime ([`CounterStore::reserve_async`]) goes to a group-commit thread that
//! decides every reservation waiting at that moment in one transaction, in order (a transaction per call was the
//! cost of this store under concurrent calls); elsewhere it runs in place. A database locked for longer than
//! [`BUSY`], or broken, is "state unavailable": refused or allowed uncounted, audited, as with Redis.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::audit::Audit;
use super::counters::{
    Charge, CounterStore, Exceeded, Reservation, ReserveError, StateFailure, blocking, state_unavailable,
};
use super::redis_counters::ttl;
use crate::store::{CounterCharge, CounterOver, CounterRefund, Store, StoreError};

/// How long a reservation waits for another process's write lock before the state counts as unavailable.
pub const BUSY: Duration = Duration::from_secs(1);

/// Counters in an SQLite file.
pub struct SqliteCounters {
    /// This store itself, for the group-commit thread.
    me: Weak<SqliteCounters>,
    /// Reservations waiting for the group-commit thread (started on first use).
    jobs: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>>,
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
            jobs: OnceLock::new(),
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

/// One reservation for the group-commit thread, and where its answer goes.
struct Job {
    charges: Vec<Charge>,
    now: u64,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Reservation>, ReserveError>>,
}

/// Most reservations decided in one transaction.
const GROUP: usize = 256;

fn rows(charges: &[Charge], now: u64) -> Vec<CounterCharge<'_>> {
    charges
        .iter()
        .map(|c| CounterCharge {
            key: &c.key,
            bucket: signed(c.window.bucket(now)),
            max: c.max,
            amount: c.amount,
            expires: signed(now.saturating_add(ttl(c, now))),
        })
        .collect()
}

impl SqliteCounters {
    /// What the store's answer means for the call.
    fn answer(
        &self,
        charges: &[Charge],
        now: u64,
        answer: Result<Result<(), CounterOver>, &StoreError>,
    ) -> Result<Vec<Reservation>, ReserveError> {
        match answer {
            Err(e) => {
                self.down.store(true, Ordering::Relaxed);
                state_unavailable(self.failure, &self.audit, e)
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

    /// The queue of the group-commit thread, started on first use. The thread holds only a weak reference, so
    /// it ends when the store is dropped (its queue closes).
    fn jobs(&self) -> std::sync::mpsc::Sender<Job> {
        let jobs = self.jobs.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let me = self.me.clone();
            std::thread::spawn(move || group_commit(&me, &rx));
            Mutex::new(tx)
        });
        jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Decide every reservation waiting in the queue in one transaction: under concurrent calls one write lock and
/// one commit serve many of them, which is what a transaction per call cannot offer.
fn group_commit(me: &Weak<SqliteCounters>, rx: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter().take(GROUP - 1));
        let Some(store) = me.upgrade() else { return };
        // One clock for the batch: the calls arrived within the same moment.
        let now = jobs.iter().map(|j| j.now).max().unwrap_or(0);
        let rows: Vec<Vec<CounterCharge<'_>>> = jobs.iter().map(|j| rows(&j.charges, now)).collect();
        let requests: Vec<&[CounterCharge<'_>]> = rows.iter().map(Vec::as_slice).collect();
        let answers = store.store().reserve_counters_batch(&requests, signed(now));
        let answers: Vec<Result<Vec<Reservation>, ReserveError>> = match &answers {
            Ok(answers) => {
                jobs.iter().zip(answers).map(|(j, a)| store.answer(&j.charges, now, Ok(a.clone()))).collect()
            }
            Err(e) => jobs.iter().map(|j| store.answer(&j.charges, now, Err(e))).collect(),
        };
        drop(rows);
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

impl CounterStore for SqliteCounters {
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError> {
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let rows = rows(charges, now);
        let answer = blocking(|| self.store().reserve_counters(&rows, signed(now)));
        self.answer(charges, now, answer.as_ref().map(Clone::clone))
    }

    fn may_block(&self) -> bool {
        true
    }

    /// Through the group-commit thread: the call waits on its own task, and concurrent calls share transactions.
    fn reserve_async(&self, charges: Vec<Charge>, now: u64) -> BoxFuture<'_, Result<Vec<Reservation>, ReserveError>> {
        if charges.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Err(std::sync::mpsc::SendError(job)) = self.jobs().send(Job { charges, now, reply }) {
            return Box::pin(std::future::ready(self.reserve(&job.charges, job.now)));
        }
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| state_unavailable(self.failure, &self.audit, &"the counter thread stopped"))
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
    fn concurrent_async_reservations_share_transactions_and_admit_exactly_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("state.db"), StateFailure::Closed);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let admitted = rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        let charges = vec![charge("a|global", 40.0, 1.0, false), charge("b|global", 99.0, 1.0, false)];
                        store.reserve_async(charges, 86_400).await.is_ok()
                    })
                })
                .collect();
            let mut admitted = 0;
            for t in tasks {
                admitted += usize::from(t.await.unwrap());
            }
            admitted
        });
        assert_eq!(admitted, 40);
        // All or nothing: the refused calls did not count on the second counter either.
        assert_eq!(store.used("b|global", 86_400).unwrap(), 40.0);
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
