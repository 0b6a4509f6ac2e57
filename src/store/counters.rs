//! Windowed counters for the proxy's rate and spend limits on a single host (`--state sqlite`): the SQL
//! behind `proxy::sqlite_counters`.
//!
//! A reservation is one `BEGIN IMMEDIATE` transaction that reads every charged bucket, and adds all amounts
//! or none: the write lock is taken before the first read, so several proxy processes sharing the file see
//! each other's counts exactly, with no read-then-write race. Rows are keyed by (counter, bucket start) like
//! the Redis keys: a new window is a new row, and a refund after the window rolled over reaches the old row
//! only. Expired rows are deleted now and then by a reservation ([`PURGE_EVERY`]), never by a reader.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError};

/// Seconds between two purges of expired rows (done inside a reservation's transaction).
const PURGE_EVERY: i64 = 60;

/// One amount to add to one counter's bucket, if the bucket stays within `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterCharge<'a> {
    /// The counter and its scope (`refunds|grant:alice`).
    pub key: &'a str,
    /// The window bucket's start, Unix seconds.
    pub bucket: i64,
    pub max: f64,
    pub amount: f64,
    /// When the row may be deleted, Unix seconds.
    pub expires: i64,
}

/// The first charge that would go over its maximum: its index in the request and what was counted already.
/// Nothing was added.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterOver {
    pub index: usize,
    pub used: f64,
}

/// A refund of an earlier charge (a failed call's spend).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRefund<'a> {
    pub key: &'a str,
    pub bucket: i64,
    pub amount: f64,
}

impl Store {
    /// How long a statement waits for another process's write lock before failing as [`StoreError::Busy`].
    pub fn set_busy_timeout(&self, wait: Duration) -> Result<(), StoreError> {
        Ok(self.conn.busy_timeout(wait)?)
    }

    /// Add every charge, or none when one would go over its maximum (`Ok(Err(..))`). Amounts charged to the same
    /// bucket in one request add up.
    pub fn reserve_counters(
        &mut self,
        charges: &[CounterCharge<'_>],
        now: i64,
    ) -> Result<Result<(), CounterOver>, StoreError> {
        let mut answers = self.reserve_counters_batch(&[charges], now)?;
        Ok(answers.pop().unwrap_or(Ok(())))
    }

    /// Several reservations in one transaction (group commit: one write-lock round and one commit for all the
    /// calls that arrived together), decided in order, each all or nothing exactly as [`Store::reserve_counters`]:
    /// a later request sees what an earlier one added.
    pub fn reserve_counters_batch(
        &mut self,
        requests: &[&[CounterCharge<'_>]],
        now: i64,
    ) -> Result<Vec<Result<(), CounterOver>>, StoreError> {
        let purge = now >= self.next_counter_purge;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut answers = Vec::with_capacity(requests.len());
        {
            let mut read = tx.prepare_cached("SELECT value FROM counters WHERE key = ?1 AND bucket = ?2")?;
            let mut add = tx.prepare_cached(
                "INSERT INTO counters(key, bucket, value, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key, bucket) DO UPDATE SET value = value + excluded.value,
                                                        expires = max(expires, excluded.expires)",
            )?;
            'request: for charges in requests {
                let mut pending: HashMap<(&str, i64), f64> = HashMap::new();
                for (index, c) in charges.iter().enumerate() {
                    let stored: f64 = read.query_row(params![c.key, c.bucket], |r| r.get(0)).optional()?.unwrap_or(0.0);
                    let extra = pending.entry((c.key, c.bucket)).or_insert(0.0);
                    let used = stored + *extra;
                    if used + c.amount > c.max {
                        // Nothing of this request was written yet.
                        answers.push(Err(CounterOver { index, used }));
                        continue 'request;
                    }
                    *extra += c.amount;
                }
                for c in charges.iter() {
                    add.execute(params![c.key, c.bucket, c.amount, c.expires])?;
                }
                answers.push(Ok(()));
            }
            if purge {
                tx.prepare_cached("DELETE FROM counters WHERE expires < ?1")?.execute([now])?;
            }
        }
        tx.commit()?;
        if purge {
            self.next_counter_purge = now + PURGE_EVERY;
        }
        Ok(answers)
    }

    /// Give back refunds to their own buckets; a bucket that is gone stays gone, and no count goes below zero.
    pub fn refund_counters(&mut self, refunds: &[CounterRefund<'_>]) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut sub =
                tx.prepare_cached("UPDATE counters SET value = max(0.0, value - ?3) WHERE key = ?1 AND bucket = ?2")?;
            for r in refunds {
                sub.execute(params![r.key, r.bucket, r.amount])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The amount counted in one bucket (0 when it has no row).
    pub fn counter_value(&self, key: &str, bucket: i64) -> Result<f64, StoreError> {
        let mut read = self.conn.prepare_cached("SELECT value FROM counters WHERE key = ?1 AND bucket = ?2")?;
        Ok(read.query_row(params![key, bucket], |r| r.get(0)).optional()?.unwrap_or(0.0))
    }

    /// Rows in the counters table (expired ones included until purged).
    pub fn counter_rows(&self) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM counters", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// A write lock on the database at `path`, held by another connection until dropped: how tests make the file
/// busy for a second process without one.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct WriteLock {
    _conn: rusqlite::Connection,
}

#[cfg(test)]
pub(crate) fn hold_write_lock(path: &std::path::Path) -> WriteLock {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    WriteLock { _conn: conn }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(key: &str, bucket: i64, max: f64, amount: f64) -> CounterCharge<'_> {
        CounterCharge { key, bucket, max, amount, expires: bucket + 120 }
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("c.db")).unwrap()
    }

    #[test]
    fn all_or_nothing_same_bucket_amounts_add_up_and_windows_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        assert_eq!(s.reserve_counters(&[charge("a", 0, 3.0, 2.0)], 0).unwrap(), Ok(()));
        let over = s.reserve_counters(&[charge("b", 0, 9.0, 1.0), charge("a", 0, 3.0, 2.0)], 0).unwrap();
        assert_eq!(over, Err(CounterOver { index: 1, used: 2.0 }));
        assert_eq!(s.counter_value("b", 0).unwrap(), 0.0, "nothing was added");
        let twice = s.reserve_counters(&[charge("c", 0, 3.0, 2.0), charge("c", 0, 3.0, 2.0)], 0).unwrap();
        assert_eq!(twice, Err(CounterOver { index: 1, used: 2.0 }));
        assert_eq!(s.reserve_counters(&[charge("a", 60, 3.0, 3.0)], 60).unwrap(), Ok(()), "a new window");
        assert_eq!(s.counter_value("a", 0).unwrap(), 2.0);
    }

    #[test]
    fn a_batch_decides_in_order_each_request_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let one = [charge("x", 0, 3.0, 2.0)];
        let both = [charge("y", 0, 9.0, 1.0), charge("x", 0, 3.0, 2.0)];
        let last = [charge("x", 0, 3.0, 1.0)];
        let answers = s.reserve_counters_batch(&[&one, &both, &last], 0).unwrap();
        // The second sees what the first added and is refused whole (`y` untouched); the third still fits.
        assert_eq!(answers, [Ok(()), Err(CounterOver { index: 1, used: 2.0 }), Ok(())]);
        assert_eq!((s.counter_value("x", 0).unwrap(), s.counter_value("y", 0).unwrap()), (3.0, 0.0));
    }

    #[test]
    fn refunds_reach_their_own_bucket_and_never_go_below_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.reserve_counters(&[charge("spend", 0, 100.0, 40.0)], 0).unwrap().unwrap();
        s.reserve_counters(&[charge("spend", 60, 100.0, 10.0)], 60).unwrap().unwrap();
        s.refund_counters(&[CounterRefund { key: "spend", bucket: 0, amount: 50.0 }]).unwrap();
        assert_eq!(s.counter_value("spend", 0).unwrap(), 0.0);
        assert_eq!(s.counter_value("spend", 60).unwrap(), 10.0);
        s.refund_counters(&[CounterRefund { key: "gone", bucket: 0, amount: 5.0 }]).unwrap();
        assert_eq!(s.counter_value("gone", 0).unwrap(), 0.0);
    }

    #[test]
    fn expired_rows_are_purged_by_a_later_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.reserve_counters(&[charge("old", 0, 9.0, 1.0)], 0).unwrap().unwrap();
        assert_eq!(s.counter_rows().unwrap(), 1);
        s.reserve_counters(&[charge("new", 600, 9.0, 1.0)], 600).unwrap().unwrap();
        assert_eq!(s.counter_rows().unwrap(), 1, "the old row expired at 120");
        assert_eq!(s.counter_value("new", 600).unwrap(), 1.0);
    }

    #[test]
    fn two_connections_to_one_file_admit_exactly_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<std::sync::Mutex<Store>> = (0..2).map(|_| std::sync::Mutex::new(store(&dir))).collect();
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let (stores, admitted) = (&stores, &admitted);
                scope.spawn(move || {
                    for _ in 0..10 {
                        let mut s = stores[t % 2].lock().unwrap();
                        if s.reserve_counters(&[charge("c", 0, 25.0, 1.0)], 0).unwrap().is_ok() {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 25);
    }

    #[test]
    fn a_locked_database_is_busy_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.set_busy_timeout(Duration::from_millis(50)).unwrap();
        let mut other = store(&dir);
        let lock = other.conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        let err = s.reserve_counters(&[charge("c", 0, 9.0, 1.0)], 0).unwrap_err();
        assert!(matches!(err, StoreError::Busy(_)), "{err}");
        drop(lock);
        assert_eq!(s.reserve_counters(&[charge("c", 0, 9.0, 1.0)], 0).unwrap(), Ok(()));
    }
}
