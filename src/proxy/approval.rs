//! Asking a person: a held call is decided through MCP elicitation when the client can ask its user, and
//! otherwise through the approval queue in the catalogue database (`toolwarden approvals ...` from any
//! terminal on the machine).
//!
//! Waiting happens on its own task, so the session's other messages keep flowing. The queue is polled rather
//! than watched: a person deciding from another process writes SQLite, and polling one row by its primary key
//! every [`POLL`] is cheap, portable and needs no side channel. With `--state redis://…` the call is also
//! put in the shared queue of [`super::redis_approvals`], so it can be decided from any host; a published
//! decision wakes the wait at once, and the outcome is recorded on both sides. Every way a wait can end without a yes
//! (denied, declined, cancelled, timed out, the row expired) is a refusal the agent can read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::audit;
use super::redis_approvals::SharedQueue;
use super::relay::Held;
use crate::journal::Journal;
use crate::store::{Approval, Decision, NewApproval};

/// Why a queued call is closed as `expired` when nobody waits for it any more.
const GONE: &str = "the call no longer waits: the client cancelled it or its session ended";

/// How often a queued call's row is read while waiting.
const POLL: Duration = Duration::from_millis(150);

/// How a wait for a person ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Approved {
        by: String,
    },
    /// `decision` is what the audit records: denied, declined, cancelled, timed_out, expired, error.
    Refused {
        decision: &'static str,
        reason: String,
        by: Option<String>,
    },
}

/// The approval settings of one proxy.
#[derive(Debug)]
pub struct Approvals {
    journal: Arc<Journal>,
    timeout: Duration,
    approve_for: Option<Duration>,
    /// `--state redis://…`: the queue is also shared through Redis, decided from any host.
    shared: Option<Arc<SharedQueue>>,
}

/// A wait's two rows: the local one and, with Redis, the shared one.
struct Queued {
    local: i64,
    shared: Option<(Arc<SharedQueue>, i64)>,
}

impl Approvals {
    /// Also marks `expired` the pending calls of proxies that are no longer running.
    pub fn new(journal: Arc<Journal>, timeout: Duration, approve_for: Option<Duration>) -> Approvals {
        match journal.expire_orphaned_approvals() {
            Ok(0) => {}
            Ok(n) => tracing::warn!("{n} pending approval(s) left by a stopped proxy are now expired"),
            Err(e) => tracing::error!("expiring old approvals: {e}"),
        }
        Approvals { journal, timeout, approve_for, shared: None }
    }

    /// Share the queue through Redis as well (`--state redis://…`).
    pub fn with_shared(mut self, shared: Option<Arc<SharedQueue>>) -> Approvals {
        self.shared = shared;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timed_out(&self) -> Answer {
        let secs = self.timeout.as_secs_f64();
        Answer::Refused { decision: "timed_out", reason: format!("no one approved within {secs} s"), by: None }
    }

    /// Queue the call and wait for a person (or the timeout). `waiting()` turning false (the session ended
    /// and the call was answered with an error) expires the request, so no one approves a call nobody runs.
    pub async fn queue(&self, held: &Held, waiting: impl Fn() -> bool) -> Answer {
        let queued = match self.enqueue(held).await {
            Ok(Ok(queued)) => queued,
            Ok(Err(by)) => return Answer::Approved { by: format!("{by} (standing approval)") },
            Err(answer) => return answer,
        };
        let tool = crate::model::text::clean(&held.call.tool, 80);
        let local = queued.local;
        match &queued.shared {
            Some((_, id)) => tracing::warn!(
                "tools/call `{tool}` waits for approval: toolwarden approvals approve {id} --state <this proxy's --state> \
                 from any host (or deny {id}); on this host also: toolwarden approvals approve {local}"
            ),
            None => tracing::warn!(
                "tools/call `{tool}` waits for approval: toolwarden approvals approve {local} (or deny {local})"
            ),
        }
        let notify = queued.shared.as_ref().map(|(q, id)| q.watch(*id));
        let answer = self.wait(&queued, notify, waiting).await;
        if let Some((q, id)) = &queued.shared {
            q.forget(*id);
        }
        answer
    }

    /// Put the call in the local queue (and Redis). `Ok(Err(by))`: a standing approval admits it already.
    async fn enqueue(&self, held: &Held) -> Result<Result<Queued, String>, Answer> {
        let journal = Arc::clone(&self.journal);
        let shared = self.shared.clone();
        let h = held.clone();
        let approve_for = self.approve_for.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let timeout = self.timeout;
        let queued = tokio::task::spawn_blocking(move || {
            let digest = audit::digest(&h.call.arguments);
            if let Some(standing) = journal.standing_approval(&h.call.tool, &digest, h.call.identity.as_deref())? {
                return Ok(Err(standing.decided_by.unwrap_or_default()));
            }
            if let Some(q) = &shared {
                match q.standing(&h.call.tool, &digest, h.call.identity.as_deref()) {
                    Ok(Some(by)) => return Ok(Err(by)),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("{e}; checking standing approvals of this host only"),
                }
            }
            let new = NewApproval {
                tool: &h.call.tool,
                arguments: &h.call.arguments,
                args_sha256: &digest,
                reason: Some(&h.reason),
                rule: h.rule.as_deref(),
                session: &h.call.session,
                identity: h.call.identity.as_deref(),
                approve_for_secs: approve_for,
                owner_pid: std::process::id(),
            };
            let local = journal.request_approval(&new)?;
            // Redis down: the call can still be decided on this host, so it waits rather than failing.
            let shared = shared.and_then(|q| match q.enqueue(&new, timeout) {
                Ok(id) => Some((q, id)),
                Err(e) => {
                    tracing::warn!("{e}; the call can only be approved on this host (local id {local})");
                    None
                }
            });
            Ok::<_, crate::store::StoreError>(Ok(Queued { local, shared }))
        })
        .await;
        match queued {
            Ok(Ok(q)) => Ok(q),
            Ok(Err(e)) => Err(store_failed(&e)),
            Err(e) => Err(store_failed(&e)),
        }
    }

    /// Poll the local row (and the shared one), woken early by a published decision.
    async fn wait(
        &self,
        queued: &Queued,
        notify: Option<Arc<tokio::sync::Notify>>,
        waiting: impl Fn() -> bool,
    ) -> Answer {
        let started = Instant::now();
        let mut shared_failing = false;
        loop {
            match &notify {
                Some(n) => {
                    let _ = tokio::time::timeout(POLL, n.notified()).await;
                }
                None => tokio::time::sleep(POLL).await,
            }
            let timed_out = started.elapsed() >= self.timeout;
            let gone = !waiting();
            let why = format!("no one approved within {} s", self.timeout.as_secs_f64());
            if let Some((q, id)) = &queued.shared {
                // Redis first: a decision from another host that won its race must not be timed out here.
                let (q, id, journal, local, why) =
                    (Arc::clone(q), *id, Arc::clone(&self.journal), queued.local, why.clone());
                let read = tokio::task::spawn_blocking(move || -> Result<Option<Approval>, String> {
                    if gone {
                        q.close(id, "expired", None, GONE).map_err(|e| e.to_string())?;
                    } else if timed_out {
                        q.close(id, "timed_out", None, &why).map_err(|e| e.to_string())?;
                    }
                    let Some(row) = q.get(id).map_err(|e| e.to_string())? else { return Ok(None) };
                    if !matches!(row.status.as_str(), "approved" | "denied") {
                        return Ok(None);
                    }
                    // Recorded on this host too; a person who decided the local row first wins.
                    let d = Decision {
                        approve: row.status == "approved",
                        by: row.decided_by.as_deref().unwrap_or("someone"),
                        reason: row.decision_reason.as_deref(),
                        approve_for_secs: row.approve_for_secs,
                    };
                    match journal.decide_approval(local, &d).map_err(|e| e.to_string())? {
                        Some((false, mine)) if mine.status != "pending" => Ok(Some(mine)),
                        _ => Ok(Some(row)),
                    }
                })
                .await;
                match read {
                    Ok(Ok(Some(row))) => {
                        if let Some(answer) = self.answer(&row) {
                            return answer;
                        }
                    }
                    Ok(Ok(None)) => shared_failing = false,
                    Ok(Err(e)) if !shared_failing => {
                        shared_failing = true;
                        tracing::warn!("approval queue in Redis: {e}; waiting for a decision on this host");
                    }
                    Ok(Err(_)) | Err(_) => {}
                }
            }
            let journal = Arc::clone(&self.journal);
            let id = queued.local;
            let read = tokio::task::spawn_blocking(move || {
                if gone {
                    journal.close_approval(id, "expired", GONE)?;
                } else if timed_out && journal.close_approval(id, "timed_out", &why)? {
                    return Ok(None);
                }
                journal.approval(id)
            })
            .await;
            let row = match read {
                Ok(Ok(Some(row))) => row,
                Ok(Ok(None)) => {
                    self.mirror(queued, "timed_out", None, "").await;
                    return self.timed_out();
                }
                Ok(Err(e)) => return store_failed(&e),
                Err(e) => return store_failed(&e),
            };
            if let Some(answer) = self.answer(&row) {
                let reason = row.decision_reason.clone().unwrap_or_default();
                self.mirror(queued, &row.status, row.decided_by.as_deref(), &reason).await;
                return answer;
            }
        }
    }

    /// Record in Redis how a call ended on this host (decided here, timed out, expired), so other hosts stop
    /// listing it as pending. Best effort: the hash expires anyway.
    async fn mirror(&self, queued: &Queued, status: &str, by: Option<&str>, why: &str) {
        let Some((q, id)) = &queued.shared else { return };
        let (q, id, status, by, why) =
            (Arc::clone(q), *id, status.to_string(), by.map(str::to_string), why.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = q.close(id, &status, by.as_deref(), &why) {
                tracing::warn!("{e}; request {id} stays listed in Redis until it expires");
            }
        })
        .await;
    }

    /// The answer a decided row gives; `None` while it is pending.
    fn answer(&self, row: &Approval) -> Option<Answer> {
        let by = row.decided_by.clone();
        match row.status.as_str() {
            "approved" => Some(Answer::Approved { by: by.unwrap_or_default() }),
            "denied" => {
                let who = by.as_deref().unwrap_or("someone");
                let reason = match row.decision_reason.as_deref() {
                    Some(r) if !r.is_empty() => format!("denied by {who}: {r}"),
                    _ => format!("denied by {who}"),
                };
                Some(Answer::Refused { decision: "denied", reason, by })
            }
            "expired" => {
                let reason = "the approval request expired before anyone approved it".to_string();
                Some(Answer::Refused { decision: "expired", reason, by: None })
            }
            "timed_out" => Some(self.timed_out()),
            _ => None,
        }
    }
}

fn store_failed(e: &dyn std::fmt::Display) -> Answer {
    tracing::error!("approval queue: {e}");
    Answer::Refused { decision: "error", reason: format!("the approval queue is unavailable ({e})"), by: None }
}

/// The `elicitation/create` params that ask the client's user about a held call.
pub fn elicitation_params(held: &Held) -> Value {
    let args = serde_json::to_string(&held.call.arguments).unwrap_or_default();
    let args = crate::model::text::clean(&args, 2000);
    let tool = crate::model::text::clean(&held.call.tool, 200);
    let message = format!(
        "toolwarden: the agent wants to call `{tool}` with arguments {args}. The policy asks a person first: {}. \
         Approve this call?",
        crate::model::text::clean(&held.reason, 500)
    );
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {"approve": {"type": "boolean", "title": "Approve", "description": format!("Run `{tool}` once")}},
            "required": ["approve"]
        }
    })
}

/// Read the client's answer to an `elicitation/create` request.
pub fn elicitation_answer(response: &Value) -> Answer {
    if let Some(error) = response.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("an error");
        let reason = format!("the client could not ask its user ({})", crate::model::text::clean(message, 200));
        return Answer::Refused { decision: "error", reason, by: None };
    }
    let result = response.get("result").unwrap_or(&Value::Null);
    let by = Some("elicitation".to_string());
    match result.get("action").and_then(Value::as_str) {
        Some("accept") if result.pointer("/content/approve") == Some(&Value::Bool(true)) => {
            Answer::Approved { by: "elicitation".into() }
        }
        Some("accept") => {
            Answer::Refused { decision: "denied", reason: "the user did not approve the call".into(), by }
        }
        Some("decline") => Answer::Refused { decision: "declined", reason: "the user declined the call".into(), by },
        Some("cancel") => {
            Answer::Refused { decision: "cancelled", reason: "the user cancelled the approval request".into(), by }
        }
        _ => Answer::Refused {
            decision: "error",
            reason: "the client's answer to the approval request had no action".into(),
            by,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elicitation_answers() {
        let accept = json!({"result": {"action": "accept", "content": {"approve": true}}});
        assert_eq!(elicitation_answer(&accept), Answer::Approved { by: "elicitation".into() });
        let no = json!({"result": {"action": "accept", "content": {"approve": false}}});
        assert!(matches!(elicitation_answer(&no), Answer::Refused { decision: "denied", .. }));
        let decline = json!({"result": {"action": "decline"}});
        assert!(matches!(elicitation_answer(&decline), Answer::Refused { decision: "declined", .. }));
        let cancel = json!({"result": {"action": "cancel"}});
        assert!(matches!(elicitation_answer(&cancel), Answer::Refused { decision: "cancelled", .. }));
        let error = json!({"error": {"code": -1, "message": "no"}});
        assert!(matches!(elicitation_answer(&error), Answer::Refused { decision: "error", .. }));
    }
}
