//! A [`CounterStore`] in Redis, so several proxy replicas enforce one limit as if they were one.
//!
//! Every call's charges are reserved by one Lua script, which Redis runs atomically: it checks every key's
//! value plus its amount against its maximum and only then adds all of them (`INCRBYFLOAT`), so a call is
//! counted whole or not at all, across replicas, with one round trip. Keys are
//! `{prefix}:{counter|scope}:{bucket start}`: the bucket is part of the key, so a new window is a new key,
//! old keys expire on their own (`EXPIRE` to the end of the window plus slack), and a rollback that arrives
//! after the window rolled over touches the old key only, never the new window's count. Keys of one call may
//! live on different hash slots, so this is for a single Redis (or a replicated primary), not Redis Cluster.
//!
//! The client is the synchronous one: [`CounterStore`] is called from the relay inside the runtime, so the
//! round trip runs under `block_in_place` (the runtime moves its other tasks to another worker meanwhile), on a
//! small pool of connections with short timeouts. A dead Redis costs a call at most one connect timeout; a
//! connection that failed is dropped and the next call connects afresh, which is how the store recovers when
//! Redis returns. What an unreachable Redis means is the operator's choice ([`StateFailure`]), and each such
//! call is written to the audit log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::audit::Audit;
pub use super::counters::StateFailure;
use super::counters::{Charge, CounterStore, Exceeded, Reservation, ReserveError, blocking, state_unavailable};

/// How long connecting, sending or waiting for Redis may take before the call is decided without it.
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Seconds a key outlives its window, so a late rollback still finds it and clocks that differ a little
/// between replicas agree on the bucket.
pub const EXPIRY_SLACK: u64 = 60;

/// Connections kept open for reuse; more concurrent calls open (and then drop) extra ones.
const POOL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RedisStateError {
    #[error("--state {url:?}: {source}")]
    Url { url: String, source: redis::RedisError },
}

/// Counters in Redis.
pub struct RedisCounters {
    client: redis::Client,
    prefix: String,
    failure: StateFailure,
    audit: Arc<Audit>,
    pool: Mutex<Vec<redis::Connection>>,
    /// Whether the last attempt failed, so recovery is reported once.
    down: AtomicBool,
    reserve: redis::Script,
    rollback: redis::Script,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").field("prefix", &self.prefix).field("failure", &self.failure).finish()
    }
}

/// KEYS: the bucket keys. ARGV: per key, `max`, `amount`, `ttl` (seconds). Returns `{0, ""}` when everything
/// was added, or `{i, used}` for the first key (1-based) that would go over, with nothing added. Amounts of
/// the same key in one call add up, as in the in-memory store.
const RESERVE: &str = r"
local pending = {}
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[3 * i - 2])
  local amount = tonumber(ARGV[3 * i - 1])
  local used = tonumber(redis.call('GET', key) or '0') + (pending[key] or 0)
  if used + amount > max then
    return {i, tostring(used)}
  end
  pending[key] = (pending[key] or 0) + amount
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', key, ARGV[3 * i - 1])
  redis.call('EXPIRE', key, ARGV[3 * i])
end
return {0, ''}
";

/// KEYS: bucket keys; ARGV: the (negative) amount to add to each. A key that expired stays gone (giving back to a
/// missing key would create a negative count without expiry), and a count never goes below zero.
const ROLLBACK: &str = r"
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local left = tonumber(redis.call('INCRBYFLOAT', key, ARGV[i]))
    if left < 0 then
      redis.call('SET', key, '0', 'KEEPTTL')
    end
  end
end
return 0
";

/// The Redis key of `counter` (`name|scope`) in the bucket starting at `bucket`.
pub fn key(prefix: &str, counter: &str, bucket: u64) -> String {
    format!("{prefix}:{counter}:{bucket}")
}

/// Seconds from `now` until the key of the bucket holding `now` may go: the rest of the window plus slack.
pub fn ttl(charge: &Charge, now: u64) -> u64 {
    let end = charge.window.bucket(now) + charge.window.seconds();
    end.saturating_sub(now) + EXPIRY_SLACK
}

/// A float as Redis and Lua read it back exactly (`f64`'s `Display` is the shortest round-trip form).
fn number(x: f64) -> String {
    format!("{x}")
}

impl RedisCounters {
    /// Check the URL (`redis://HOST:PORT/DB`, `rediss://…`, `unix://…`); no connection is made yet, so a
    /// replica can start before its Redis.
    pub fn new(
        url: &str,
        prefix: &str,
        failure: StateFailure,
        audit: Arc<Audit>,
    ) -> Result<RedisCounters, RedisStateError> {
        let client = redis::Client::open(url).map_err(|source| RedisStateError::Url { url: url.into(), source })?;
        Ok(RedisCounters {
            client,
            prefix: prefix.to_string(),
            failure,
            audit,
            pool: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            reserve: redis::Script::new(RESERVE),
            rollback: redis::Script::new(ROLLBACK),
        })
    }

    /// Whether Redis answers now (for the start-up message).
    pub fn ping(&self) -> Result<(), String> {
        self.with_connection(|con| redis::cmd("PING").query::<String>(con).map(drop)).map_err(|e| e.to_string())
    }

    /// The amount counted under `counter` (`name|scope`) in the bucket starting at `bucket` (diagnostics, tests).
    pub fn used(&self, counter: &str, bucket: u64) -> Result<f64, String> {
        let key = key(&self.prefix, counter, bucket);
        let value: Option<String> =
            self.with_connection(|con| redis::cmd("GET").arg(&key).query(con)).map_err(|e| e.to_string())?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0.0))
    }

    /// Run `f` on a pooled connection (or a new one), off the runtime's reactor. After an error the pool is
    /// emptied: its other connections most likely went down with the same server, and connecting afresh on
    /// the next call is how the store recovers when Redis returns. A pooled connection that turns out to be
    /// dropped (Redis restarted since it was last used) is retried once on a new one; the dropped socket
    /// belonged to the old server, so `f` did not run on the new one.
    fn with_connection<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        blocking(|| {
            let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let result = match pooled {
                Some(mut con) => match f(&mut con) {
                    Err(e) if e.is_connection_dropped() && !e.is_timeout() => {
                        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        self.connect().and_then(|mut con| f(&mut con).map(|v| (v, con)))
                    }
                    other => other.map(|v| (v, con)),
                },
                None => self.connect().and_then(|mut con| f(&mut con).map(|v| (v, con))),
            };
            match result {
                Ok((value, con)) => {
                    let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                    if pool.len() < POOL {
                        pool.push(con);
                    }
                    Ok(value)
                }
                Err(e) => {
                    self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    Err(e)
                }
            }
        })
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        Ok(con)
    }

    /// Redis could not be asked: say so (audit, log) and decide by the failure mode.
    fn unavailable(&self, error: &redis::RedisError) -> Result<Vec<Reservation>, ReserveError> {
        self.down.store(true, Ordering::Relaxed);
        state_unavailable(self.failure, &self.audit, error)
    }

    fn reachable(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("rate-limit state reachable again; calls are counted");
            self.audit.event("state_recovered", true, "rate-limit state reachable again; calls are counted");
        }
    }
}

impl CounterStore for RedisCounters {
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError> {
        // A call with no limits does not depend on Redis at all.
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.reserve.prepare_invoke();
        for charge in charges {
            invocation.key(key(&self.prefix, &charge.key, charge.window.bucket(now)));
            invocation.arg(number(charge.max)).arg(number(charge.amount)).arg(ttl(charge, now));
        }
        let answer: redis::RedisResult<(usize, String)> = self.with_connection(|con| invocation.invoke(con));
        let (over, used) = match answer {
            Ok(answer) => answer,
            Err(e) => return self.unavailable(&e),
        };
        self.reachable();
        if over == 0 {
            let reserved = charges.iter().map(|c| Reservation {
                key: c.key.clone(),
                bucket: c.window.bucket(now),
                amount: c.amount,
                refundable: c.refundable,
            });
            return Ok(reserved.collect());
        }
        let Some(charge) = charges.get(over - 1) else {
            let error = redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "reserve script answer"));
            return self.unavailable(&error);
        };
        Err(ReserveError::Exceeded(Exceeded {
            key: charge.key.clone(),
            used: used.parse().unwrap_or(charge.max),
            max: charge.max,
            window: charge.window,
        }))
    }

    fn rollback(&self, reservations: &[Reservation]) {
        let refunds: Vec<&Reservation> = reservations.iter().filter(|r| r.refundable && r.amount != 0.0).collect();
        if refunds.is_empty() {
            return;
        }
        let mut invocation = self.rollback.prepare_invoke();
        for r in &refunds {
            invocation.key(key(&self.prefix, &r.key, r.bucket)).arg(number(-r.amount));
        }
        match self.with_connection(|con| invocation.invoke::<i64>(con)) {
            Ok(_) => self.reachable(),
            Err(e) => {
                // The spend stays counted: the safe side of a lost refund.
                let message = format!("rate-limit state unavailable: {e}; a refund was not given back");
                tracing::warn!("{message}");
                self.audit.event("state_unavailable", false, &message);
                self.down.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
#[path = "redis_counters_tests.rs"]
mod tests;
