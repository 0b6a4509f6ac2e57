//! The audit trail: one JSON line per decision, appended to `--audit FILE`.
//!
//! Arguments are recorded as a SHA-256 digest of their canonical JSON (keys sorted, no whitespace), so the
//! log can prove two calls had the same arguments without storing secrets or personal data; `--audit-args`
//! opts into the raw arguments. Each line is one `write` on a file opened for appending, so concurrent
//! sessions never interleave inside a line. With a data directory, the same records also go to the catalogue's
//! `audit` table (read by `toolwarden audit`) through a writer thread, so a decision never waits for SQLite:
//! rows are batched into one transaction per wake-up (at most one every 20 ms), and [`Audit::finish`] drains the
//! queue before exit.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::journal::Journal;
use crate::store::AuditRow;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("opening audit log {path}: {source}")]
    Open { path: String, source: std::io::Error },
}

/// One decision.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// Read once per record; written as RFC 3339 (nanoseconds) in the file and as the store's fixed-width
    /// millisecond form in the table.
    #[serde(serialize_with = "rfc3339")]
    pub time: jiff::Timestamp,
    pub session: &'a str,
    /// The server the call went to (behind a gateway; `None` for a proxy of one server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<&'a str>,
    pub identity: Option<&'a str>,
    pub tool: &'a str,
    pub args_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<&'a Value>,
    /// `allow`, `deny`, `approve` (refused pending approval), or `invalid` (params that do not parse).
    pub decision: &'a str,
    pub rule: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// For allowed calls: `ok`, `error` (JSON-RPC error or `isError`), `timeout`, `upstream_closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    /// For allowed calls: microseconds from forwarding to the upstream's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_latency_us: Option<u64>,
    /// For approval outcomes: who decided (a person's name, or `elicitation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<&'a str>,
}

impl Record<'_> {
    fn row(&self) -> AuditRow {
        AuditRow {
            time: crate::store::format_time(self.time),
            session: self.session.to_string(),
            server: self.server.map(str::to_string),
            identity: self.identity.map(str::to_string),
            tool: self.tool.to_string(),
            args_sha256: self.args_sha256.clone(),
            args: self.args.cloned(),
            decision: self.decision.to_string(),
            rule: self.rule.map(str::to_string),
            reason: self.reason.map(str::to_string),
            outcome: self.outcome.map(str::to_string),
            upstream_latency_us: self.upstream_latency_us.and_then(|n| i64::try_from(n).ok()),
            decided_by: self.decided_by.map(str::to_string),
        }
    }
}

/// Most rows written in one transaction.
const BATCH: usize = 4096;
/// How long the writer lets rows accumulate after a commit; also the most a row waits to be readable.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// The SQLite side: a queue to the writer thread.
#[derive(Debug, Default)]
struct Sink {
    tx: Mutex<Option<mpsc::Sender<AuditRow>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Where records go.
#[derive(Debug, Default)]
pub struct Audit {
    file: Option<Mutex<File>>,
    include_args: bool,
    sink: Option<Sink>,
}

impl Audit {
    /// No audit log.
    pub fn disabled() -> Audit {
        Audit::default()
    }

    /// Append to `path` (created if missing).
    pub fn open(path: &Path, include_args: bool) -> Result<Audit, AuditError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open { path: path.display().to_string(), source })?;
        Ok(Audit { file: Some(Mutex::new(file)), include_args, sink: None })
    }

    /// Also write every record to the `audit` table of `journal`.
    pub fn with_journal(mut self, journal: Arc<Journal>, include_args: bool) -> Audit {
        let (tx, rx) = mpsc::channel::<AuditRow>();
        let thread = std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut rows = vec![first];
                rows.extend(rx.try_iter().take(BATCH - 1));
                if let Err(e) = journal.append_audit(&rows) {
                    tracing::error!("writing {} audit rows to the catalogue: {e}", rows.len());
                }
                // Under load, a commit per wake-up costs more than the proxying itself (a WAL append and, now
                // and then, a checkpoint). Waiting a moment lets rows pile up into one transaction, and a
                // sender never wakes a writer that is asleep: at most 1/LINGER commits a second.
                if rows.len() < BATCH {
                    std::thread::sleep(LINGER);
                }
            }
        });
        self.include_args |= include_args;
        self.sink = Some(Sink { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) });
        self
    }

    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.sink.is_some()
    }

    /// Write out everything queued for SQLite and stop its writer (records after this go to the file only).
    pub fn finish(&self) {
        let Some(sink) = &self.sink else { return };
        drop(sink.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = sink.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }

    pub fn include_args(&self) -> bool {
        self.include_args
    }

    /// Append one record. A failing write is logged, not fatal: refusing all traffic because the disk is full
    /// would be a denial of service the attacker controls.
    pub fn write(&self, record: &Record<'_>) {
        if let Some(sink) = &self.sink
            && let Some(tx) = &*sink.tx.lock().unwrap_or_else(|e| e.into_inner())
        {
            let _ = tx.send(record.row());
        }
        let Some(file) = &self.file else { return };
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => return tracing::error!("audit record not serialisable: {e}"),
        };
        line.push(b'\n');
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!("writing audit log: {e}");
        }
    }
}

impl Audit {
    /// A line about the proxy itself (a policy reload), not about a call.
    pub fn event(&self, event: &str, ok: bool, message: &str) {
        let Some(file) = &self.file else { return };
        let record = serde_json::json!({"time": timestamp(), "event": event, "ok": ok, "message": message});
        let mut line = record.to_string().into_bytes();
        line.push(b'\n');
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!("writing audit log: {e}");
        }
    }
}

fn rfc3339<S: serde::Serializer>(time: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(time)
}

/// The current time as RFC 3339 UTC.
pub fn timestamp() -> String {
    jiff::Timestamp::now().to_string()
}

/// SHA-256 (hex) of the canonical JSON of `value` (the catalogue's canonical form: keys sorted, compact), so
/// equal arguments have equal digests whatever key order the client used.
pub fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(crate::model::canonical_json(value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"a": {"x": "s", "y": [2, 1]}, "b": 1})));
    }
}
