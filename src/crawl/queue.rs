//! A crawl spread over many machines, on Redis streams: `crawl --enqueue` puts server specs on a jobs stream,
//! any number of `crawl-worker`s take them through a consumer group and publish each listing on a results
//! stream, and one `ingest` on the catalogue's host stores them.
//!
//! Keys, under a prefix (`toolwarden` by default): `{prefix}:crawl:jobs` (field `job`: a JSON [`Job`]), consumer
//! group `workers`; `{prefix}:crawl:results` (fields `job`: the job's stream id, `result`: a JSON [`Outcome`]),
//! consumer group `ingest`; `{prefix}:crawl:published`, a hash of job id → result id.
//!
//! Delivery: a job is acknowledged (`XACK` in `workers`) only by the ingester, after the result is stored in
//! SQLite, in the same `MULTI` as the result's own acknowledgement. A worker that dies mid-job leaves the job
//! pending; after `--claim-after` seconds of idleness another worker takes it over (`XAUTOCLAIM`). A worker
//! publishes a result and records it in the `published` hash in one `MULTI`, so a job whose result is out but
//! not yet stored (the ingester is down) is not crawled again when it is reclaimed. An ingester that dies
//! mid-batch reads its own pending results first when it starts again (and takes over another ingester's after
//! the same idle time). Storing is idempotent (definitions are kept by fingerprint), so a result delivered twice
//! changes nothing in the catalogue.
//!
//! Specs travel with their environment values (the worker needs them to start the server): the Redis that
//! carries jobs must be as private as the config files they came from.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::model::{ServerInfo, ServerSpec, Tool};

/// A job: one server to crawl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub spec: ServerSpec,
    /// The source asked for the sandbox (workers sandbox every stdio job unless started with `--no-sandbox`).
    #[serde(default)]
    pub sandboxed: bool,
    #[serde(default)]
    pub origin: String,
}

/// What a worker found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub server: String,
    /// The spec as stored (secrets redacted).
    pub spec: ServerSpec,
    pub worker: String,
    pub attempts: usize,
    pub elapsed_ms: u64,
    /// Why the server could not be listed; `None` when it was.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub info: Option<ServerInfo>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub list_extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A delivered message: its stream id and what it carries.
#[derive(Debug)]
pub struct Delivered<T> {
    pub id: String,
    /// The job's id (for results) or the same as `id` (for jobs).
    pub job: String,
    pub body: Result<T, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{url}: {source}")]
    Url { url: String, source: redis::RedisError },
    #[error("crawl queue in Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("crawl queue in Redis: {0}")]
    Reply(String),
}

/// A stream entry: its id and fields.
type Entry = (String, HashMap<String, String>);

/// Largest result published; a bigger listing is published as an error.
pub const MAX_RESULT_BYTES: usize = 64 << 20;

/// How the queue is reached.
pub struct Queue {
    client: redis::Client,
    con: redis::Connection,
    prefix: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

const WORKERS: &str = "workers";
const INGEST: &str = "ingest";

impl Queue {
    /// Connect and make sure both streams and their consumer groups exist.
    pub fn open(url: &str, prefix: &str) -> Result<Queue, QueueError> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|source| QueueError::Url { url: shown.clone(), source })?;
        let con = connect(&client).map_err(|source| QueueError::Url { url: shown, source })?;
        let mut queue = Queue { client, con, prefix: prefix.to_string() };
        for (stream, group) in [(queue.jobs(), WORKERS), (queue.results(), INGEST)] {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM")
                .query(&mut queue.con);
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(queue)
    }

    fn jobs(&self) -> String {
        format!("{}:crawl:jobs", self.prefix)
    }

    fn results(&self) -> String {
        format!("{}:crawl:results", self.prefix)
    }

    fn published(&self) -> String {
        format!("{}:crawl:published", self.prefix)
    }

    /// Run a command, reconnecting once if the connection broke (Redis restarted, idle timeout).
    fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, QueueError> {
        match cmd.query(&mut self.con) {
            Ok(v) => Ok(v),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                self.con = connect(&self.client)?;
                Ok(cmd.query(&mut self.con)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Put jobs on the stream; returns their ids.
    pub fn enqueue(&mut self, jobs: &[Job]) -> Result<Vec<String>, QueueError> {
        let mut pipe = redis::pipe();
        for job in jobs {
            let body = serde_json::to_string(job).map_err(|e| QueueError::Reply(e.to_string()))?;
            pipe.cmd("XADD").arg(self.jobs()).arg("*").arg("job").arg(body);
        }
        Ok(pipe.query(&mut self.con)?)
    }

    /// Up to `count` jobs for `worker`: first jobs another worker held for longer than `claim_after` (it died),
    /// then new ones, waiting up to `block` for them.
    pub fn take_jobs(
        &mut self,
        worker: &str,
        count: usize,
        claim_after: Duration,
        block: Duration,
    ) -> Result<Vec<Delivered<Job>>, QueueError> {
        let reclaimed = self.autoclaim(&self.jobs(), WORKERS, worker, count, claim_after)?;
        let mut out = Vec::new();
        for (id, fields) in reclaimed {
            // Its result is out already: the ingester will acknowledge it; nothing to crawl again.
            let published: Option<String> = self.run(redis::cmd("HGET").arg(self.published()).arg(&id))?;
            if published.is_none() {
                out.push(job_of(id, &fields));
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let reply: Value = self.run(
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(WORKERS)
                .arg(worker)
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(self.jobs())
                .arg(">"),
        )?;
        Ok(read_reply(&reply).into_iter().map(|(id, fields)| job_of(id, &fields)).collect())
    }

    /// Publish the outcome of job `job` (and record that it is published), atomically.
    pub fn publish(&mut self, job: &str, outcome: &Outcome) -> Result<(), QueueError> {
        let mut body = serde_json::to_string(outcome).map_err(|e| QueueError::Reply(e.to_string()))?;
        if body.len() > MAX_RESULT_BYTES {
            let mut small = outcome.clone();
            small.tools.clear();
            small.list_extra.clear();
            small.error = Some(format!("the listing is larger than {MAX_RESULT_BYTES} bytes; not published"));
            body = serde_json::to_string(&small).map_err(|e| QueueError::Reply(e.to_string()))?;
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(self.results())
            .arg("*")
            .arg("job")
            .arg(job)
            .arg("result")
            .arg(body)
            .cmd("HSET")
            .arg(self.published())
            .arg(job)
            .arg("1")
            .ignore();
        let _: Value = pipe.query(&mut self.con)?;
        Ok(())
    }

    /// Up to `count` results for ingester `name`: with `own`, its own unacknowledged ones first (it was
    /// restarted; leave it out while results it holds are being gathered), then another ingester's held longer
    /// than `claim_after`, then new ones (waiting up to `block`).
    pub fn take_results(
        &mut self,
        name: &str,
        count: usize,
        claim_after: Duration,
        block: Duration,
        own: bool,
    ) -> Result<Vec<Delivered<Outcome>>, QueueError> {
        let mut found = Vec::new();
        if own {
            let mine = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(INGEST)
                .arg(name)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(self.results())
                .arg("0")
                .clone();
            found = read_reply(&self.run(&mine)?);
        }
        if found.is_empty() {
            found = self.autoclaim(&self.results(), INGEST, name, count, claim_after)?;
        }
        if found.is_empty() {
            found = read_reply(
                &self.run(
                    redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(INGEST)
                        .arg(name)
                        .arg("COUNT")
                        .arg(count)
                        .arg("BLOCK")
                        .arg(block.as_millis() as u64)
                        .arg("STREAMS")
                        .arg(self.results())
                        .arg(">"),
                )?,
            );
        }
        Ok(found.into_iter().map(|(id, fields)| outcome_of(id, &fields)).collect())
    }

    /// The result `id` of job `job` is stored: acknowledge both, atomically.
    pub fn stored(&mut self, id: &str, job: &str) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XACK")
            .arg(self.jobs())
            .arg(WORKERS)
            .arg(job)
            .cmd("XACK")
            .arg(self.results())
            .arg(INGEST)
            .arg(id)
            .cmd("HDEL")
            .arg(self.published())
            .arg(job);
        let _: Value = pipe.query(&mut self.con)?;
        Ok(())
    }

    /// Whether every job ever enqueued was delivered, crawled, published and stored.
    pub fn all_stored(&mut self) -> Result<bool, QueueError> {
        for (stream, group) in [(self.jobs(), WORKERS), (self.results(), INGEST)] {
            let groups: Value = self.run(redis::cmd("XINFO").arg("GROUPS").arg(&stream))?;
            let Some(info) = group_info(&groups, group) else { return Ok(false) };
            let pending = info.get("pending").and_then(as_int).unwrap_or(1);
            let lag = info.get("lag").and_then(as_int).unwrap_or(1);
            if pending != 0 || lag != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn autoclaim(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        idle: Duration,
    ) -> Result<Vec<Entry>, QueueError> {
        let reply: Value = self.run(
            redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(group)
                .arg(consumer)
                .arg(idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(count),
        )?;
        let Value::Array(parts) = reply else { return Ok(Vec::new()) };
        Ok(parts.get(1).map(entries).unwrap_or_default())
    }
}

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    // Longer than any BLOCK we send.
    con.set_read_timeout(Some(Duration::from_secs(30)))?;
    con.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(con)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

fn job_of(id: String, fields: &HashMap<String, String>) -> Delivered<Job> {
    let body = match fields.get("job") {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("job {id} is not a toolwarden job: {e}")),
        None => Err(format!("job {id} has no `job` field")),
    };
    Delivered { job: id.clone(), id, body }
}

fn outcome_of(id: String, fields: &HashMap<String, String>) -> Delivered<Outcome> {
    let job = fields.get("job").cloned().unwrap_or_default();
    let body = match fields.get("result") {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("result {id} is not a toolwarden result: {e}")),
        None => Err(format!("result {id} has no `result` field")),
    };
    Delivered { id, job, body }
}

/// The entries of an `XREADGROUP` reply (one stream), or none (a timeout answers nil).
fn read_reply(reply: &Value) -> Vec<Entry> {
    match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entries),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, v)| entries(v)).collect(),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]`; deleted entries (nil) are skipped.
fn entries(list: &Value) -> Vec<Entry> {
    let Value::Array(items) = list else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else { return None };
            let id = text(pair.first()?)?;
            let Value::Array(kv) = pair.get(1)? else { return None };
            let fields = kv.chunks(2).filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?))).collect();
            Some((id, fields))
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// One group's fields from `XINFO GROUPS`.
fn group_info(groups: &Value, name: &str) -> Option<HashMap<String, Value>> {
    let Value::Array(list) = groups else { return None };
    list.iter().find_map(|g| {
        let fields: HashMap<String, Value> = match g {
            Value::Array(kv) => kv.chunks(2).filter_map(|c| Some((text(c.first()?)?, c.get(1)?.clone()))).collect(),
            Value::Map(kv) => kv.iter().filter_map(|(k, v)| Some((text(k)?, v.clone()))).collect(),
            _ => return None,
        };
        (fields.get("name").and_then(text).as_deref() == Some(name)).then_some(fields)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://:hunter2@10.0.0.5:6379/0"), "redis://…@10.0.0.5:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn stream_replies_are_read_and_nil_entries_skipped() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("job"), bulk("{}")])]);
        let reply = Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![entry, Value::Nil])])]);
        let found = read_reply(&reply);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "1-0");
        assert_eq!(found[0].1["job"], "{}");
        assert!(read_reply(&Value::Nil).is_empty());
    }
}
