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
//! The relay reserves through [`CounterStore::reserve_async`] (the store says it is [`CounterStore::may_block`]):
//! each call waits for its script on a task of its own, and every concurrent call's script shares one
//! multiplexed connection, pipelined, so a round trip to Redis holds up neither the session's other messages
//! nor a runtime thread. Refunds are sent the same way, after the client has its answer. The synchronous
//! client remains for callers outside the runtime (a small pool, used under `block_in_place` inside it).
//! Timeouts are short: a dead Redis costs a call at most one connect or response timeout; a connection that
//! failed is dropped and the next call connects afresh, which is how the store recovers when Redis returns.
//! What an unreachable Redis means is the operator's choice ([`StateFailure`]), and each such call is written
//! to the audit log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;

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
    /// This store itself, for the refunds it sends from tasks of their own.
    me: Weak<RedisCounters>,
    client: redis::Client,
    prefix: String,
    failure: StateFailure,
    audit: Arc<Audit>,
    pool: Mutex<Vec<redis::Connection>>,
    /// The connection of the async path: one multiplexed connection carries every concurrent call's script,
    /// pipelined. `None` until first use and after an error (the next call connects afresh).
    shared: Mutex<Option<MultiplexedConnection>>,
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
    ) -> Result<Arc<RedisCounters>, RedisStateError> {
        let client = redis::Client::open(url).map_err(|source| RedisStateError::Url { url: url.into(), source })?;
        Ok(Arc::new_cyclic(|me| RedisCounters {
            me: me.clone(),
            client,
            prefix: prefix.to_string(),
            failure,
            audit,
            pool: Mutex::new(Vec::new()),
            shared: Mutex::new(None),
            down: AtomicBool::new(false),
            reserve: redis::Script::new(RESERVE),
            rollback: redis::Script::new(ROLLBACK),
        }))
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

impl RedisCounters {
    /// The reserve script's invocation for `charges` in the buckets holding `now`.
    fn reserve_invocation(&self, charges: &[Charge], now: u64) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.reserve.prepare_invoke();
        for charge in charges {
            invocation.key(key(&self.prefix, &charge.key, charge.window.bucket(now)));
            invocation.arg(number(charge.max)).arg(number(charge.amount)).arg(ttl(charge, now));
        }
        invocation
    }

    /// What the reserve script's answer means for the call.
    fn reserved(
        &self,
        charges: &[Charge],
        now: u64,
        answer: redis::RedisResult<(usize, String)>,
    ) -> Result<Vec<Reservation>, ReserveError> {
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

    /// The rollback script's invocation for the refundable part of `reservations`; `None` when nothing is.
    fn rollback_invocation(&self, reservations: &[Reservation]) -> Option<redis::ScriptInvocation<'_>> {
        let refunds: Vec<&Reservation> = reservations.iter().filter(|r| r.refundable && r.amount != 0.0).collect();
        if refunds.is_empty() {
            return None;
        }
        let mut invocation = self.rollback.prepare_invoke();
        for r in &refunds {
            invocation.key(key(&self.prefix, &r.key, r.bucket)).arg(number(-r.amount));
        }
        Some(invocation)
    }

    fn rolled_back(&self, result: redis::RedisResult<i64>) {
        match result {
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

    /// Run a script on the shared multiplexed connection (connecting first if there is none). As on the sync
    /// path, a cached connection found dropped (Redis restarted since) is replaced and the script retried once:
    /// the dropped socket belonged to the old server, so the script did not run there.
    async fn run_async<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        let cached = self.shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let fresh = cached.is_none();
        let mut con = match cached {
            Some(con) => con,
            None => self.connect_async().await?,
        };
        match invocation.invoke_async(&mut con).await {
            Err(e) if !fresh && e.is_connection_dropped() && !e.is_timeout() => {
                self.shared.lock().unwrap_or_else(|e| e.into_inner()).take();
                let mut con = self.connect_async().await?;
                let result = invocation.invoke_async(&mut con).await;
                self.keep(result.as_ref().err());
                result
            }
            result => {
                self.keep(result.as_ref().err());
                result
            }
        }
    }

    async fn connect_async(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let con = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(con.clone());
        Ok(con)
    }

    /// After an error other than a script's own answer, forget the connection: the next call connects afresh,
    /// which is how the async path recovers when Redis returns.
    fn keep(&self, error: Option<&redis::RedisError>) {
        if error.is_some_and(|e| {
            e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
        }) {
            self.shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl CounterStore for RedisCounters {
    fn reserve(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, ReserveError> {
        // A call with no limits does not depend on Redis at all.
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let invocation = self.reserve_invocation(charges, now);
        let answer = self.with_connection(|con| invocation.invoke(con));
        self.reserved(charges, now, answer)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn reserve_async(&self, charges: Vec<Charge>, now: u64) -> BoxFuture<'_, Result<Vec<Reservation>, ReserveError>> {
        Box::pin(async move {
            if charges.is_empty() {
                return Ok(Vec::new());
            }
            let invocation = self.reserve_invocation(&charges, now);
            let answer = self.run_async(&invocation).await;
            self.reserved(&charges, now, answer)
        })
    }

    /// Inside the runtime the refund is sent from a task of its own: the call's answer does not wait for it.
    fn rollback(&self, reservations: &[Reservation]) {
        let Some(invocation) = self.rollback_invocation(reservations) else { return };
        match (self.me.upgrade(), tokio::runtime::Handle::try_current()) {
            (Some(me), Ok(runtime)) => {
                drop(invocation);
                let reservations = reservations.to_vec();
                runtime.spawn(async move {
                    let Some(invocation) = me.rollback_invocation(&reservations) else { return };
                    let result = me.run_async(&invocation).await;
                    me.rolled_back(result);
                });
            }
            _ => {
                let result = self.with_connection(|con| invocation.invoke::<i64>(con));
                self.rolled_back(result);
            }
        }
    }
}

#[cfg(test)]
#[path = "redis_counters_tests.rs"]
mod tests;
