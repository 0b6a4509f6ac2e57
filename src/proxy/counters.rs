//! Windowed counters for rate limits and spend caps, behind [`CounterStore`] so a store shared by several
//! proxy replicas (Redis) or proxy processes of one host (an SQLite file) can replace the in-memory one
//! without the gate noticing.
//!
//! Semantics, chosen once: a window is a fixed bucket aligned to UTC (`minute` starts at second 0, `hour` at
//! minute 0, `day` at midnight UTC, `N` seconds at multiples of N since the Unix epoch), not a sliding log. A
//! fixed bucket is one number per key, so it is exact under concurrency (all limits of a call are reserved
//! together under one lock: under 32 concurrent callers a limit of N admits exactly N) and cheap to share.
//! A reservation remembers its bucket, so rolling it back after the bucket rolled over is a no-op instead of
//! a refund from the wrong window.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use futures_util::future::BoxFuture;

/// The length of a counting window: the policy's own type, so a limit means the same window in the document and
/// in every counter store.
pub use crate::policy::Window;

/// One amount to add to one counter, if it stays within `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The counter's full key: its name and the scope it is counted in (`all_calls`, `refunds|grant:alice`).
    pub key: String,
    pub window: Window,
    pub max: f64,
    pub amount: f64,
    /// Spend counters are refunded when the call fails; call counts are not (an agent retrying a failing call
    /// must still reach its limit).
    pub refundable: bool,
}

/// A charge that was admitted: enough to undo it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub key: String,
    pub bucket: u64,
    pub amount: f64,
    pub refundable: bool,
}

/// A charge that would take its counter over its maximum.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("limit `{key}` reached: {used} of {max} per {window} used")]
pub struct Exceeded {
    pub key: String,
    pub used: f64,
    pub max: f64,
    pub window: Window,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Exceeded(#[from] Exceeded),
    /// A shared store could not be asked and its failure mode is `closed`: the text is the whole reason
    /// given to the client.
    #[error("{0}")]
    Unavailable(String),
}

/// Where counters live. Implementations must make [`CounterStore::reserve`] all-or-nothing.
pub trait CounterStore: Send + Sync {
    /// Admit every charge or none: on `Err` nothing was counted.
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError>;
    /// The call went through; keep the charges (a shared store may batch or expire them here).
    fn commit(&self, reservations: &[Reservation]) {
        let _ = reservations;
    }
    /// Undo the refundable reservations (the call failed).
    fn rollback(&self, reservations: &[Reservation]);
    /// Whether a reservation may wait on something outside this process (a round trip to Redis, another
    /// process's lock on a file). Inside the runtime the relay then reserves through
    /// [`CounterStore::reserve_async`] on a task of the call's own, so the wait never holds up the session's
    /// other messages or a runtime thread.
    fn may_block(&self) -> bool {
        false
    }
    /// [`CounterStore::reserve`] without blocking; the default runs it in place.
    fn reserve_async(&self, charges: Vec<Charge>, now: u64) -> BoxFuture<'_, Result<Vec<Reservation>, ReserveError>> {
        Box::pin(std::future::ready(self.reserve(&charges, now)))
    }
}

/// Counters in this process: one bucket per key.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    buckets: Mutex<HashMap<String, (u64, f64)>>,
}

impl MemoryCounters {
    pub fn new() -> MemoryCounters {
        MemoryCounters::default()
    }

    /// The amount counted for `key` in the bucket of `window` holding `now` (for tests and diagnostics).
    pub fn used(&self, key: &str, window: Window, now: u64) -> f64 {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            Some(&(bucket, used)) if bucket == window.bucket(now) => used,
            _ => 0.0,
        }
    }
}

impl CounterStore for MemoryCounters {
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Check everything first, then apply: all-or-nothing without undo bookkeeping. Two charges on the
        // same key in one call add up.
        let mut pending: HashMap<&str, f64> = HashMap::new();
        for charge in charges {
            let bucket = charge.window.bucket(now);
            let used = match buckets.get(&charge.key) {
                Some(&(b, used)) if b == bucket => used,
                _ => 0.0,
            };
            let extra = pending.entry(&charge.key).or_insert(0.0);
            if used + *extra + charge.amount > charge.max {
                return Err(ReserveError::Exceeded(Exceeded {
                    key: charge.key.clone(),
                    used: used + *extra,
                    max: charge.max,
                    window: charge.window,
                }));
            }
            *extra += charge.amount;
        }
        let mut out = Vec::with_capacity(charges.len());
        for charge in charges {
            let bucket = charge.window.bucket(now);
            let entry = buckets.entry(charge.key.clone()).or_insert((bucket, 0.0));
            if entry.0 != bucket {
                *entry = (bucket, 0.0);
            }
            entry.1 += charge.amount;
            out.push(Reservation {
                key: charge.key.clone(),
                bucket,
                amount: charge.amount,
                refundable: charge.refundable,
            });
        }
        Ok(out)
    }

    fn rollback(&self, reservations: &[Reservation]) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for r in reservations.iter().filter(|r| r.refundable) {
            if let Some(entry) = buckets.get_mut(&r.key)
                && entry.0 == r.bucket
            {
                entry.1 = (entry.1 - r.amount).max(0.0);
            }
        }
    }
}

/// What a call whose limits cannot be checked gets, when the counters live in a shared store (Redis, an
/// SQLite file) that cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFailure {
    /// Refuse it: no limit is ever exceeded because the store was down.
    #[default]
    Closed,
    /// Allow it uncounted: availability before limits.
    Open,
}

/// A shared store could not be asked: say so (audit, log) and decide by the failure mode.
pub(crate) fn state_unavailable(
    failure: StateFailure,
    audit: &super::audit::Audit,
    error: &dyn fmt::Display,
) -> Result<Vec<Reservation>, ReserveError> {
    match failure {
        StateFailure::Closed => {
            let reason = format!("rate-limit state unavailable: {error}; refusing (state-failure closed)");
            tracing::warn!("{reason}");
            audit.event("state_unavailable", false, &reason);
            Err(ReserveError::Unavailable(reason))
        }
        StateFailure::Open => {
            let reason = format!("rate-limit state unavailable: {error}; allowing uncounted (state-failure open)");
            tracing::warn!("{reason}");
            audit.event("state_unavailable", false, &reason);
            Ok(Vec::new())
        }
    }
}

/// Run blocking I/O (a shared store's round trip) from inside the multi-threaded runtime without stalling it;
/// elsewhere (tests, a current-thread runtime, where `block_in_place` is not allowed) just run it.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Seconds since the Unix epoch: the clock every window is counted in.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(key: &str, max: f64, amount: f64, refundable: bool) -> Charge {
        Charge { key: key.into(), window: Window::Minute, max, amount, refundable }
    }

    #[test]
    fn windows_are_aligned_to_utc() {
        assert_eq!(Window::Minute.bucket(125), 120);
        assert_eq!(Window::Hour.bucket(7201), 7200);
        assert_eq!(Window::Day.bucket(86_400 * 3 + 5), 86_400 * 3);
        assert_eq!(Window::Seconds(10).bucket(25), 20);
        assert_eq!(Window::Seconds(0).bucket(25), 25);
    }

    #[test]
    fn limit_of_n_admits_n_then_refuses_until_the_window_rolls() {
        let store = MemoryCounters::new();
        for _ in 0..3 {
            store.reserve(&[charge("c", 3.0, 1.0, false)], 60).unwrap();
        }
        let Err(ReserveError::Exceeded(err)) = store.reserve(&[charge("c", 3.0, 1.0, false)], 61) else {
            panic!("the fourth call was admitted")
        };
        assert_eq!(err.used, 3.0);
        store.reserve(&[charge("c", 3.0, 1.0, false)], 120).unwrap();
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let store = MemoryCounters::new();
        store.reserve(&[charge("b", 1.0, 1.0, false)], 0).unwrap();
        store.reserve(&[charge("a", 5.0, 1.0, false), charge("b", 1.0, 1.0, false)], 0).unwrap_err();
        assert_eq!(store.used("a", Window::Minute, 0), 0.0);
    }

    #[test]
    fn rollback_refunds_spend_but_not_counts_and_not_across_windows() {
        let store = MemoryCounters::new();
        let r = store.reserve(&[charge("spend", 100.0, 40.0, true), charge("count", 9.0, 1.0, false)], 0).unwrap();
        store.rollback(&r);
        assert_eq!(store.used("spend", Window::Minute, 0), 0.0);
        assert_eq!(store.used("count", Window::Minute, 0), 1.0);
        let r = store.reserve(&[charge("spend", 100.0, 40.0, true)], 0).unwrap();
        store.reserve(&[charge("spend", 100.0, 10.0, true)], 60).unwrap();
        store.rollback(&r);
        assert_eq!(store.used("spend", Window::Minute, 60), 10.0);
    }

    #[test]
    fn concurrent_callers_get_exactly_the_limit() {
        let store = std::sync::Arc::new(MemoryCounters::new());
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    for _ in 0..10 {
                        if store.reserve(&[charge("c", 50.0, 1.0, false)], 0).is_ok() {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 50);
    }
}
