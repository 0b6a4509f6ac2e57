//! The proxy's records in the catalogue database: the approval queue (calls waiting for a person) and the
//! audit table (one row per decision).
//!
//! Both are written by a running proxy and read or decided by other processes (`toolwarden approvals`,
//! `toolwarden audit`), so every state change is one statement whose `WHERE` clause states the transition it
//! expects (`status = 'pending'`): a person approving at the instant the proxy times the call out can only win
//! or lose, never both.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, StoreError};

/// One call in the approval queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub id: i64,
    pub tool: String,
    pub arguments: Value,
    pub args_sha256: String,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub session: String,
    pub identity: Option<String>,
    pub requested_at: String,
    /// `pending`, `approved`, `denied`, `expired` (its proxy went away) or `timed_out`.
    pub status: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    /// For an approval: the same tool with the same arguments is approved for this many seconds.
    pub approve_for_secs: Option<i64>,
    pub approved_until: Option<String>,
}

/// A call to put in the queue.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub args_sha256: &'a str,
    pub reason: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub session: &'a str,
    pub identity: Option<&'a str>,
    /// The proxy's `--approve-for`, used when the person approving does not say otherwise.
    pub approve_for_secs: Option<i64>,
    pub owner_pid: u32,
}

/// A person's decision about one queued call.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub approve: bool,
    pub by: &'a str,
    pub reason: Option<&'a str>,
    /// Overrides the proxy's `--approve-for` for this approval.
    pub approve_for_secs: Option<i64>,
}

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub time: String,
    pub session: String,
    /// The server the call went to, behind a gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub identity: Option<String>,
    pub tool: String,
    pub args_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    pub decision: String,
    pub rule: Option<String>,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_latency_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tool: Option<String>,
    pub server: Option<String>,
    pub decision: Option<String>,
    /// Store time format (see [`super::now`]); rows at or after it.
    pub since: Option<String>,
    /// The newest this many rows (all when `None`).
    pub limit: Option<usize>,
}

const APPROVAL_COLUMNS: &str = "id, tool, arguments, args_sha256, reason, rule, session, identity, requested_at, status, \
     decided_at, decided_by, decision_reason, approve_for_secs, approved_until";

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let arguments: String = r.get(2)?;
    Ok(Approval {
        id: r.get(0)?,
        tool: r.get(1)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(Value::Null),
        args_sha256: r.get(3)?,
        reason: r.get(4)?,
        rule: r.get(5)?,
        session: r.get(6)?,
        identity: r.get(7)?,
        requested_at: r.get(8)?,
        status: r.get(9)?,
        decided_at: r.get(10)?,
        decided_by: r.get(11)?,
        decision_reason: r.get(12)?,
        approve_for_secs: r.get(13)?,
        approved_until: r.get(14)?,
    })
}

/// `t + secs` in the store's time format.
fn later(secs: i64) -> String {
    let at = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(secs)).unwrap_or(jiff::Timestamp::MAX);
    super::format_time(at)
}

impl Store {
    /// Queue a call; returns its id.
    pub fn request_approval(&mut self, new: &NewApproval<'_>) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO approvals(tool, arguments, args_sha256, reason, rule, session, identity, requested_at,
                                   owner_pid, status, approve_for_secs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10)",
            params![
                new.tool,
                serde_json::to_string(new.arguments)?,
                new.args_sha256,
                new.reason,
                new.rule,
                new.session,
                new.identity,
                super::now(),
                new.owner_pid,
                new.approve_for_secs,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn approval(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1");
        Ok(self.conn.prepare_cached(&sql)?.query_row([id], approval_row).optional()?)
    }

    /// Queued calls, oldest first: only the pending ones unless `all`.
    pub fn approvals(&self, all: bool) -> Result<Vec<Approval>, StoreError> {
        let filter = if all { "" } else { "WHERE status = 'pending'" };
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals {filter} ORDER BY id");
        let rows = self.conn.prepare(&sql)?.query_map([], approval_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Decide a pending call. `Ok(None)`: no such id; otherwise the row after the attempt (a row that was no
    /// longer pending is returned unchanged: check its status).
    pub fn decide_approval(&mut self, id: i64, d: &Decision<'_>) -> Result<Option<(bool, Approval)>, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let window: Option<Option<i64>> = tx
            .query_row("SELECT approve_for_secs FROM approvals WHERE id = ?1 AND status = 'pending'", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let changed = match window {
            None => false,
            Some(window) => {
                let window = d.approve_for_secs.or(window).filter(|_| d.approve);
                let until = window.map(later);
                tx.execute(
                    "UPDATE approvals SET status = ?2, decided_at = ?3, decided_by = ?4, decision_reason = ?5,
                            approve_for_secs = ?6, approved_until = ?7
                     WHERE id = ?1 AND status = 'pending'",
                    params![
                        id,
                        if d.approve { "approved" } else { "denied" },
                        super::now(),
                        d.by,
                        d.reason,
                        window,
                        until
                    ],
                )? == 1
            }
        };
        tx.commit()?;
        Ok(self.approval(id)?.map(|a| (changed, a)))
    }

    /// Close a pending call without a person's decision (`timed_out`, `expired`). False when it was no longer
    /// pending (someone decided first).
    pub fn close_approval(&mut self, id: i64, status: &str, why: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE approvals SET status = ?2, decided_at = ?3, decision_reason = ?4 WHERE id = ?1 AND status = 'pending'",
            params![id, status, super::now(), why],
        )?;
        Ok(n == 1)
    }

    /// Mark `expired` every pending call whose proxy process is gone (`alive(pid)` false); returns how many.
    pub fn expire_orphaned_approvals(&mut self, alive: impl Fn(u32) -> bool) -> Result<usize, StoreError> {
        let pending: Vec<(i64, u32)> = self
            .conn
            .prepare("SELECT id, owner_pid FROM approvals WHERE status = 'pending'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut n = 0;
        for (id, pid) in pending {
            if !alive(pid) && self.close_approval(id, "expired", "the proxy that queued it stopped")? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// An approval of the same tool and arguments for the same caller identity whose `--for` window is still
    /// open (one caller's approval does not admit another's call).
    pub fn standing_approval(
        &self,
        tool: &str,
        args_sha256: &str,
        identity: Option<&str>,
    ) -> Result<Option<Approval>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tool = ?1 AND args_sha256 = ?2 AND identity IS ?3
             AND status = 'approved' AND approved_until > ?4 ORDER BY approved_until DESC LIMIT 1"
        );
        let args = params![tool, args_sha256, identity, super::now()];
        Ok(self.conn.prepare_cached(&sql)?.query_row(args, approval_row).optional()?)
    }

    /// Append audit rows in one transaction.
    pub fn append_audit(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audit(time, session, identity, tool, args_sha256, args, decision, rule, reason, outcome,
                                   upstream_latency_us, decided_by, server)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for row in rows {
                let args = row.args.as_ref().map(serde_json::to_string).transpose()?;
                stmt.execute(params![
                    row.time,
                    row.session,
                    row.identity,
                    row.tool,
                    row.args_sha256,
                    args,
                    row.decision,
                    row.rule,
                    row.reason,
                    row.outcome,
                    row.upstream_latency_us,
                    row.decided_by,
                    row.server,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Audit rows matching `q`, oldest first (the newest `limit` of them).
    pub fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let limit = q.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare_cached(
            "SELECT time, session, identity, tool, args_sha256, args, decision, rule, reason, outcome,
                    upstream_latency_us, decided_by, server
             FROM audit WHERE (?1 IS NULL OR tool = ?1) AND (?2 IS NULL OR decision = ?2) AND (?3 IS NULL OR time >= ?3)
               AND (?5 IS NULL OR server = ?5)
             ORDER BY id DESC LIMIT ?4",
        )?;
        let mut rows: Vec<AuditRow> = stmt
            .query_map(params![q.tool, q.decision, q.since, limit, q.server], |r| {
                let args: Option<String> = r.get(5)?;
                Ok(AuditRow {
                    time: r.get(0)?,
                    session: r.get(1)?,
                    server: r.get(12)?,
                    identity: r.get(2)?,
                    tool: r.get(3)?,
                    args_sha256: r.get(4)?,
                    args: args.and_then(|a| serde_json::from_str(&a).ok()),
                    decision: r.get(6)?,
                    rule: r.get(7)?,
                    reason: r.get(8)?,
                    outcome: r.get(9)?,
                    upstream_latency_us: r.get(10)?,
                    decided_by: r.get(11)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
