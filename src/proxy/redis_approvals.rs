//! The approval queue shared through Redis (`--state redis://…`), so a call held by any replica can be listed
//! and decided from any host: `toolwarden approvals list|approve|deny --state redis://…`.
//!
//! The catalogue's SQLite queue stays the local record (and still works from the same host); Redis carries
//! what other hosts need. Layout, under the deployment's `--state-prefix`:
//! - `{prefix}:approval:next`: the id counter (ids are global across replicas, unlike the local row ids);
//! - `{prefix}:approval:{id}`: a hash with the request (tool, arguments, reason, ...) and its status, expiring
//!   a little after the approval timeout, so a request whose proxy died disappears on its own;
//! - `{prefix}:approvals`: a sorted set of ids scored by their expiry, for listing without `SCAN`;
//! - `{prefix}:approval:standing:{sha256}`: a standing approval (`--for`, `--approve-for`) of one caller's
//!   tool and arguments, expiring with its window;
//! - channel `{prefix}:approvals`: the id of every decision is `PUBLISH`ed there.
//!
//! Every transition is one Lua script that changes a hash only while its status is `pending`, so a person
//! approving from one host while the proxy times the call out on another can only win or lose, never both.
//! The waiting proxy subscribes to the channel (one thread per process, reconnecting when Redis returns) to
//! act at once, and also reads the hash on every poll of its local row, so a lost message or a Redis restart
//! only costs one poll interval. The client is the synchronous one, as for counters: approvals are rare and
//! every call here runs off the runtime's reactor (`spawn_blocking`) or in a CLI process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::redis_counters::TIMEOUT;
use crate::store::{Approval, Decision, NewApproval};

/// Seconds a request's hash outlives its approval timeout: long enough for `list --all` to show how it ended.
pub const EXPIRY_SLACK: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum SharedQueueError {
    #[error("--state {url:?}: {source}")]
    Url { url: String, source: redis::RedisError },
    #[error("approval queue in Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("approval queue in Redis: {0}")]
    Data(String),
}

/// KEYS: the request's hash, the id set, the standing-approval key. ARGV: status, decided_at, decided_by,
/// decision_reason, window seconds (0: none), approved_until, channel, id. Returns `{0, ''}` when the request
/// is gone, `{1, status}` when it was no longer pending, `{2, status}` when this call decided it.
const DECIDE: &str = r"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {0, ''}
end
if status ~= 'pending' then
  return {1, status}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'decided_at', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'decided_by', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'decision_reason', ARGV[4])
end
local window = tonumber(ARGV[5])
if window > 0 then
  redis.call('HSET', KEYS[1], 'approve_for_secs', ARGV[5], 'approved_until', ARGV[6])
  redis.call('SET', KEYS[3], ARGV[3], 'EX', window)
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {2, ARGV[1]}
";

/// Waiters of this process, by request id: woken when the id is published.
type Waiters = Arc<Mutex<HashMap<i64, Arc<tokio::sync::Notify>>>>;

/// The shared approval queue of one deployment.
pub struct SharedQueue {
    client: redis::Client,
    prefix: String,
    con: Mutex<Option<redis::Connection>>,
    decide: redis::Script,
    waiters: Waiters,
    subscribed: std::sync::Once,
}

impl std::fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQueue").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// `prefix` + the rest of a key.
fn key(prefix: &str, rest: &str) -> String {
    format!("{prefix}:{rest}")
}

/// The key of a standing approval: one caller's tool with the same arguments. `None` and `Some("")` differ.
pub fn standing_key(prefix: &str, tool: &str, args_sha256: &str, identity: Option<&str>) -> String {
    let who = identity.map_or_else(|| "\u{1}".to_string(), |i| format!("={i}"));
    let digest = Sha256::digest(format!("{who}\0{tool}\0{args_sha256}").as_bytes());
    key(prefix, &format!("approval:standing:{}", hex::encode(digest)))
}

/// `now + secs` in the store's time format.
fn later(secs: i64) -> String {
    let at = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(secs)).unwrap_or(jiff::Timestamp::MAX);
    crate::store::format_time(at)
}

fn unix_now() -> u64 {
    super::counters::now()
}

/// A request's hash as an [`Approval`] (the same JSON as the local queue's rows).
fn approval(id: i64, h: &HashMap<String, String>) -> Option<Approval> {
    let text = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
    let number = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok());
    Some(Approval {
        id,
        tool: h.get("tool")?.clone(),
        arguments: h.get("arguments").and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null),
        args_sha256: h.get("args_sha256").cloned().unwrap_or_default(),
        reason: text("reason"),
        rule: text("rule"),
        session: h.get("session").cloned().unwrap_or_default(),
        identity: h.get("identity").and_then(|i| i.strip_prefix('=')).map(str::to_string),
        requested_at: h.get("requested_at").cloned().unwrap_or_default(),
        status: h.get("status")?.clone(),
        decided_at: text("decided_at"),
        decided_by: text("decided_by"),
        decision_reason: text("decision_reason"),
        approve_for_secs: number("approve_for_secs").filter(|&n| n > 0),
        approved_until: text("approved_until"),
    })
}

impl SharedQueue {
    /// Check the URL; no connection is made yet.
    pub fn new(url: &str, prefix: &str) -> Result<SharedQueue, SharedQueueError> {
        let client = redis::Client::open(url).map_err(|source| SharedQueueError::Url { url: url.into(), source })?;
        Ok(SharedQueue {
            client,
            prefix: prefix.to_string(),
            con: Mutex::new(None),
            decide: redis::Script::new(DECIDE),
            waiters: Arc::default(),
            subscribed: std::sync::Once::new(),
        })
    }

    fn hash_key(&self, id: i64) -> String {
        key(&self.prefix, &format!("approval:{id}"))
    }

    fn set_key(&self) -> String {
        key(&self.prefix, "approvals")
    }

    /// The channel decisions are published on.
    pub fn channel(&self) -> String {
        key(&self.prefix, "approvals")
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        Ok(con)
    }

    /// Run `f` on the connection (made on first use, dropped after an error so the next call reconnects).
    fn with<T>(&self, f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> redis::RedisResult<T> {
        let mut slot = self.con.lock().unwrap_or_else(|e| e.into_inner());
        let con = match slot.as_mut() {
            Some(con) => con,
            None => slot.insert(self.connect()?),
        };
        let result = f(con);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Put a call in the shared queue (the same request as the local queue's; `owner_pid` is not shared)
    /// for a proxy that waits `timeout`: the hash expires that long (plus slack) from now. Returns its id.
    pub fn enqueue(&self, r: &NewApproval<'_>, timeout: Duration) -> Result<i64, SharedQueueError> {
        let ttl = timeout.as_secs().saturating_add(EXPIRY_SLACK);
        let expires = unix_now().saturating_add(ttl);
        let arguments = serde_json::to_string(r.arguments).map_err(|e| SharedQueueError::Data(e.to_string()))?;
        let identity = r.identity.map(|i| format!("={i}")).unwrap_or_default();
        let approve_for = r.approve_for_secs.map(|s| s.to_string()).unwrap_or_default();
        let requested_at = crate::store::format_time(jiff::Timestamp::now());
        let next = key(&self.prefix, "approval:next");
        Ok(self.with(|con| {
            let id: i64 = redis::cmd("INCR").arg(&next).query(con)?;
            let hash = self.hash_key(id);
            let fields: [(&str, &str); 10] = [
                ("tool", r.tool),
                ("arguments", &arguments),
                ("args_sha256", r.args_sha256),
                ("reason", r.reason.unwrap_or("")),
                ("rule", r.rule.unwrap_or("")),
                ("session", r.session),
                ("identity", &identity),
                ("requested_at", &requested_at),
                ("status", "pending"),
                ("approve_for_secs", &approve_for),
            ];
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&hash)
                .arg(&fields[..])
                .ignore()
                .cmd("EXPIRE")
                .arg(&hash)
                .arg(ttl)
                .ignore()
                .cmd("ZADD")
                .arg(self.set_key())
                .arg(expires)
                .arg(id)
                .ignore()
                .query::<()>(con)?;
            Ok(id)
        })?)
    }

    /// One request, `None` when it is unknown (never queued, or expired).
    pub fn get(&self, id: i64) -> Result<Option<Approval>, SharedQueueError> {
        let hash = self.hash_key(id);
        let fields: HashMap<String, String> = self.with(|con| redis::cmd("HGETALL").arg(&hash).query(con))?;
        Ok(if fields.is_empty() { None } else { approval(id, &fields) })
    }

    /// Requests still held in Redis, oldest first: only the pending ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<Approval>, SharedQueueError> {
        let set = self.set_key();
        let now = unix_now();
        let ids: Vec<i64> = self.with(|con| {
            redis::cmd("ZREMRANGEBYSCORE").arg(&set).arg("-inf").arg(format!("({now}")).query::<()>(con)?;
            redis::cmd("ZRANGE").arg(&set).arg(0).arg(-1).query(con)
        })?;
        let mut rows = Vec::new();
        for id in ids {
            if let Some(row) = self.get(id)?
                && (all || row.status == "pending")
            {
                rows.push(row);
            }
        }
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// A person's decision. `Ok(None)`: no such request; otherwise whether this call decided it, and the row
    /// after the attempt (check its status when it did not).
    pub fn decide(&self, id: i64, d: &Decision<'_>) -> Result<Option<(bool, Approval)>, SharedQueueError> {
        let Some(row) = self.get(id)? else { return Ok(None) };
        let window = if d.approve { d.approve_for_secs.or(row.approve_for_secs) } else { None };
        let status = if d.approve { "approved" } else { "denied" };
        let changed = self.transition(&row, status, Some(d.by), d.reason.unwrap_or(""), window)?;
        Ok(self.get(id)?.map(|after| (changed == Some(true), after)))
    }

    /// Close a pending request without a person (`timed_out`, `expired`), or mirror a decision made in the
    /// local queue. False when it was no longer pending (or gone).
    pub fn close(&self, id: i64, status: &str, by: Option<&str>, why: &str) -> Result<bool, SharedQueueError> {
        let Some(row) = self.get(id)? else { return Ok(false) };
        Ok(self.transition(&row, status, by, why, None)? == Some(true))
    }

    /// `None`: the request is gone; `Some(changed)`.
    fn transition(
        &self,
        row: &Approval,
        status: &str,
        by: Option<&str>,
        why: &str,
        window: Option<i64>,
    ) -> Result<Option<bool>, SharedQueueError> {
        let window = window.filter(|&w| w > 0).unwrap_or(0);
        let until = if window > 0 { later(window) } else { String::new() };
        let mut invocation = self.decide.prepare_invoke();
        invocation
            .key(self.hash_key(row.id))
            .key(self.set_key())
            .key(standing_key(&self.prefix, &row.tool, &row.args_sha256, row.identity.as_deref()))
            .arg(status)
            .arg(crate::store::format_time(jiff::Timestamp::now()))
            .arg(by.unwrap_or(""))
            .arg(why)
            .arg(window)
            .arg(until)
            .arg(self.channel())
            .arg(row.id);
        let (code, _status): (i64, String) = self.with(|con| invocation.invoke(con))?;
        Ok(match code {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        })
    }

    /// Who approved the same tool and arguments for this caller within a standing window, if anyone did.
    pub fn standing(
        &self,
        tool: &str,
        args_sha256: &str,
        identity: Option<&str>,
    ) -> Result<Option<String>, SharedQueueError> {
        let key = standing_key(&self.prefix, tool, args_sha256, identity);
        Ok(self.with(|con| redis::cmd("GET").arg(&key).query(con))?)
    }

    /// Be woken when a decision about `id` is published (also subscribes this process, on first use). Call
    /// [`SharedQueue::forget`] when done waiting.
    pub fn watch(self: &Arc<Self>, id: i64) -> Arc<tokio::sync::Notify> {
        self.subscribed.call_once(|| {
            let client = self.client.clone();
            let channel = self.channel();
            let waiters = Arc::downgrade(&self.waiters);
            let spawned = std::thread::Builder::new()
                .name("approvals-subscriber".into())
                .spawn(move || subscribe(&client, &channel, &waiters));
            if let Err(e) = spawned {
                tracing::warn!("approval decisions will be polled only: {e}");
            }
        });
        let notify = Arc::new(tokio::sync::Notify::new());
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::clone(&notify));
        notify
    }

    pub fn forget(&self, id: i64) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// The subscriber thread: wake the waiter of every published id, until the queue is dropped. A lost
/// connection is retried every second; waiters poll meanwhile.
fn subscribe(
    client: &redis::Client,
    channel: &str,
    waiters: &std::sync::Weak<Mutex<HashMap<i64, Arc<tokio::sync::Notify>>>>,
) {
    let mut failing = false;
    while waiters.strong_count() > 0 {
        let run = |failing: &mut bool| -> redis::RedisResult<()> {
            let mut con = client.get_connection_with_timeout(TIMEOUT)?;
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(channel)?;
            if std::mem::take(failing) {
                tracing::info!("approval decisions: subscribed to Redis again");
            }
            // Wakes up now and then to notice the queue is gone; a quiet channel is not an error.
            pubsub.set_read_timeout(Some(Duration::from_secs(5)))?;
            loop {
                let msg = match pubsub.get_message() {
                    Ok(msg) => msg,
                    Err(e) if e.is_timeout() => {
                        if waiters.strong_count() == 0 {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let Ok(id) = msg.get_payload::<i64>() else { continue };
                let Some(waiters) = waiters.upgrade() else { return Ok(()) };
                if let Some(notify) = waiters.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    notify.notify_one();
                }
            }
        };
        match run(&mut failing) {
            Ok(()) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!("approval decisions: subscribing to Redis failed ({e}); polling until it returns");
                }
                failing = true;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
#[path = "redis_approvals_tests.rs"]
mod tests;
