//! A session wired to its two peers: the [`Relay`]'s decisions turned into sends, plus call deadlines.
//!
//! Peers are [`Outbox`]es so the same session logic serves every frontend/upstream combination: a stdio
//! client is a locked stdout, an HTTP client is a router of SSE streams, a child upstream is its stdin, an
//! HTTP upstream is a queue of POSTs. Sends are synchronous and cheap (a pipe write or a channel push), which
//! keeps the stdio path free of task hand-offs: the added latency of the proxy is one parse and one write.
//! A call held for approval is the exception: it gets a task of its own that asks a person (see
//! [`super::approval`]) while the session's other messages keep flowing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use serde_json::Value;

use super::approval::{self, Answer, Approvals};
use super::link::{Link, Linked};
use super::relay::{Approved, Held, Relay, ToClient, error_message};
use super::upstream::Connected;

pub use super::link::Outbox;

/// Deadlines of forwarded calls, in one queue per session served by one timer task. Every call gets the same
/// timeout, so a new deadline is never earlier than any the timer already sleeps towards: the task only needs
/// waking when it sleeps without one. An answered call leaves its deadline to pass unnoticed (the timer finds
/// nothing due and sleeps on towards the next), so a session of sequential calls costs no wake-up, no timer
/// registration and no abort per call.
#[derive(Default)]
struct Deadlines {
    queue: BTreeMap<(Instant, u64), String>,
    by_key: HashMap<String, (Instant, u64)>,
    /// When the timer task wakes next; `None` while it waits for a notification.
    timer: Option<Instant>,
}

/// One MCP session between a client and an upstream.
pub struct Session {
    pub relay: Relay,
    to_client: Arc<dyn Outbox>,
    to_upstream: Arc<dyn Outbox>,
    call_timeout: Duration,
    deadlines: Mutex<Deadlines>,
    wake: Arc<Notify>,
    approvals: Option<Arc<Approvals>>,
    runtime: tokio::runtime::Handle,
    /// A supervised upstream (`--restart`): client messages are routed only while it is up.
    link: Option<Arc<Link>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("relay", &self.relay).finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Lets the timer task notice the session is gone.
        self.wake.notify_one();
    }
}

impl Session {
    /// A session with the upstream `connected` (restarted when it crashes, if it is supervised).
    pub fn connected(
        relay: Relay,
        to_client: Arc<dyn Outbox>,
        connected: &Connected,
        call_timeout: Duration,
        runtime: tokio::runtime::Handle,
        approvals: Option<Arc<Approvals>>,
    ) -> Arc<Session> {
        let (to_upstream, link) = (Arc::clone(&connected.outbox), connected.link());
        let session = Session::build(relay, to_client, to_upstream, call_timeout, runtime, approvals, link.clone());
        if let Some(link) = link {
            let linked: Arc<dyn Linked> = session.clone();
            link.attach(Arc::downgrade(&linked));
        }
        session
    }

    fn build(
        relay: Relay,
        to_client: Arc<dyn Outbox>,
        to_upstream: Arc<dyn Outbox>,
        call_timeout: Duration,
        runtime: tokio::runtime::Handle,
        approvals: Option<Arc<Approvals>>,
        link: Option<Arc<Link>>,
    ) -> Arc<Session> {
        let relay = relay.with_approvals(approvals.is_some());
        let wake = Arc::new(Notify::new());
        let session = Arc::new(Session {
            relay,
            to_client,
            to_upstream,
            call_timeout,
            deadlines: Mutex::default(),
            wake: Arc::clone(&wake),
            approvals,
            runtime: runtime.clone(),
            link,
        });
        runtime.spawn(expire_calls(Arc::downgrade(&session), wake));
        session
    }

    fn deadlines(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message (or batch) from the client. Returns the ids of the requests forwarded upstream.
    pub fn from_client(self: &Arc<Self>, raw: &[u8]) -> Vec<String> {
        // Held until the message is forwarded, so a supervised upstream cannot go down half-way through.
        let _up = match &self.link {
            None => None,
            Some(link) => {
                let up = link.read();
                if !*up {
                    drop(up);
                    self.while_restarting(raw);
                    return Vec::new();
                }
                Some(up)
            }
        };
        let out = self.relay.from_client(raw);
        self.send_own(out.own);
        for held in out.held {
            let session = Arc::clone(self);
            self.runtime.spawn(async move { session.decide_held(held).await });
        }
        for reserving in out.reserving {
            let session = Arc::clone(self);
            self.runtime.spawn(async move {
                let reserved = session.relay.reserve_async(reserving.charges).await;
                session.go_on(reserving.key.clone(), || session.relay.reserved(&reserving.key, reserved));
            });
        }
        for answer in out.client {
            self.to_client.send(answer);
        }
        if let Some(bytes) = out.upstream {
            // `answers` names the requests the message carries, for an HTTP upstream that waits for their answers.
            self.to_upstream.send(ToClient { bytes, answers: out.forwarded.clone() });
        }
        self.arm(out.deadlines);
        out.forwarded
    }

    fn arm(&self, deadlines: Vec<(String, u64)>) {
        if !deadlines.is_empty() {
            let at = Instant::now() + self.call_timeout;
            let mut d = self.deadlines();
            let idle = d.timer.is_none();
            for (key, serial) in deadlines {
                d.queue.insert((at, serial), key.clone());
                if let Some(old) = d.by_key.insert(key, (at, serial)) {
                    d.queue.remove(&old);
                }
            }
            drop(d);
            if idle {
                self.wake.notify_one();
            }
        }
    }

    /// Ask a person about a held call, then forward or refuse it.
    async fn decide_held(self: Arc<Self>, held: Held) {
        let Some(approvals) = self.approvals.clone() else { return };
        let answer = if self.relay.client_elicits() {
            let (request, key, rx) = self.relay.elicitation(approval::elicitation_params(&held));
            self.to_client.send(ToClient { bytes: request, answers: Vec::new() });
            match tokio::time::timeout(approvals.timeout(), rx).await {
                Ok(Ok(response)) => approval::elicitation_answer(&response),
                Ok(Err(_)) => return,
                Err(_) => {
                    self.relay.forget_elicitation(&key);
                    let reason = format!("no one approved within {} s", approvals.timeout().as_secs_f64());
                    Answer::Refused { decision: "timed_out", reason, by: None }
                }
            }
        } else {
            approvals.queue(&held, || self.relay.is_held(&held.key)).await
        };
        match answer {
            Answer::Approved { by } => {
                self.go_on(held.key.clone(), || self.relay.approved(&held.key, &by));
            }
            Answer::Refused { decision, reason, by } => {
                if let Some(answer) = self.relay.refuse_held(&held.key, decision, &reason, by.as_deref()) {
                    self.to_client.send(answer);
                }
            }
        }
    }

    /// Forward a call whose limits were reserved after the fact (approved, or reserved in a remote store), or
    /// send the client its refusal. As in `from_client`: while a supervised upstream is down the call is not
    /// sent; it is then in the in-flight map that the restart drains (or already drained, and `decide` says so).
    fn go_on(&self, key: String, decide: impl FnOnce() -> Option<Approved>) {
        let up = self.link.as_ref().map(|link| link.read());
        match decide() {
            Some(Approved::Forward(bytes, serial)) if up.as_ref().is_none_or(|up| **up) => {
                self.to_upstream.send(ToClient { bytes, answers: vec![key.clone()] });
                self.arm(vec![(key, serial)]);
            }
            Some(Approved::Refused(answer)) => self.to_client.send(answer),
            Some(Approved::Forward(..)) | None => {}
        }
    }

    /// A message (or batch) from the upstream; returns the keys of the client requests it answered.
    pub fn from_upstream(self: &Arc<Self>, raw: &[u8]) -> Vec<String> {
        let message = self.relay.from_upstream(raw);
        self.send_queued();
        let Some(message) = message else { return Vec::new() };
        self.disarm(&message.answers);
        let answered = message.answers.clone();
        self.to_client.send(message);
        answered
    }

    /// The proxy's own requests upstream, with their deadlines.
    fn send_own(&self, own: Vec<super::relay::OwnRequest>) {
        for request in own {
            self.to_upstream.send(request.message);
            self.arm(request.deadline.into_iter().collect());
        }
    }

    /// What the relay queued besides its answers: its own next requests, refusals, and calls that waited for the
    /// tool list and are decided now.
    fn send_queued(self: &Arc<Self>) {
        let queued = self.relay.take_queued();
        self.send_own(queued.upstream);
        for answer in queued.client {
            self.disarm(&answer.answers);
            self.to_client.send(answer);
        }
        for message in queued.again {
            self.from_client(&message);
        }
    }

    fn disarm(&self, answered: &[String]) {
        if answered.is_empty() {
            return;
        }
        let mut d = self.deadlines();
        for key in answered {
            if let Some(entry) = d.by_key.remove(key) {
                d.queue.remove(&entry);
            }
        }
    }

    /// The upstream is gone: every request in flight gets an error.
    pub fn upstream_closed(&self, why: &str) {
        for answer in self.relay.upstream_closed(why) {
            self.disarm(&answer.answers);
            self.to_client.send(answer);
        }
    }

    /// A message from the proxy itself to the client (a supervised upstream was restarted).
    pub(crate) fn tell_client(&self, bytes: Vec<u8>) {
        self.to_client.send(ToClient { bytes, answers: Vec::new() });
    }

    /// A client message while a supervised upstream is restarting. Requests get an error at once (queued, they
    /// would run later against a fresh server, which is not what the agent asked for); the rest goes through
    /// the relay, which answers what it answers itself (garbage, the client's replies to our elicitations),
    /// and what it would forward upstream is dropped.
    fn while_restarting(&self, raw: &[u8]) {
        const RESTARTING: &str = "toolwarden: the upstream server is restarting; retry";
        let is_request = |m: &Value| {
            m.get("method").is_some_and(Value::is_string)
                && matches!(m.get("id"), Some(Value::String(_) | Value::Number(_)))
        };
        let refuse = |m: &Value| error_message(m["id"].clone(), -32000, RESTARTING);
        let (refused, rest): (Vec<ToClient>, Option<Vec<u8>>) = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Array(items)) if !items.is_empty() => {
                let (requests, others): (Vec<Value>, Vec<Value>) = items.into_iter().partition(is_request);
                let answers: Vec<ToClient> = requests.iter().map(refuse).collect();
                let batch = (!answers.is_empty()).then(|| {
                    let values: Vec<Value> =
                        answers.iter().filter_map(|a| serde_json::from_slice(&a.bytes).ok()).collect();
                    ToClient {
                        bytes: serde_json::to_vec(&values).unwrap_or_default(),
                        answers: answers.into_iter().flat_map(|a| a.answers).collect(),
                    }
                });
                let rest = (!others.is_empty()).then(|| serde_json::to_vec(&others).unwrap_or_default());
                (batch.into_iter().collect(), rest)
            }
            Ok(m) if is_request(&m) => (vec![refuse(&m)], None),
            _ => (Vec::new(), Some(raw.to_vec())),
        };
        if !refused.is_empty() {
            tracing::debug!(session = %self.relay.session(), "refused a request: the upstream server is restarting");
        }
        for answer in refused {
            self.to_client.send(answer);
        }
        if let Some(rest) = rest {
            let out = self.relay.from_client(&rest);
            for answer in out.client {
                self.to_client.send(answer);
            }
            if out.upstream.is_some() {
                tracing::debug!(session = %self.relay.session(), "dropped a message for the upstream server: it is restarting");
            }
        }
    }

    /// The client is gone: let the upstream know.
    pub fn close_upstream(&self) {
        self.to_upstream.close();
    }
}

impl Linked for Session {
    fn name(&self) -> String {
        self.relay.session().to_string()
    }

    fn upstream_closed(&self, why: &str) {
        Session::upstream_closed(self, why);
    }

    fn tell_client(&self, bytes: Vec<u8>) {
        Session::tell_client(self, bytes);
    }
}

/// The session's timer: answers calls whose deadline passed, until the session is dropped.
async fn expire_calls(session: Weak<Session>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(s) = session.upgrade() else { return };
            let mut d = s.deadlines();
            // Read and published under one lock: a deadline armed after this sees `None` and notifies.
            d.timer = d.queue.first_key_value().map(|(k, _)| k.0);
            d.timer
        };
        match next {
            None => wake.notified().await,
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => continue,
                }
            }
        }
        let Some(s) = session.upgrade() else { return };
        let now = Instant::now();
        let due: Vec<(String, u64)> = {
            let mut d = s.deadlines();
            let mut due = Vec::new();
            while let Some(entry) = d.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let ((_, serial), key) = entry.remove_entry();
                d.by_key.remove(&key);
                due.push((key, serial));
            }
            due
        };
        let timeout = s.call_timeout;
        for (key, serial) in due {
            if let Some((answer, cancel)) = s.relay.expire(&key, serial, timeout.as_secs_f64()) {
                tracing::warn!(session = %s.relay.session(), "a tools/call timed out after {timeout:?}");
                s.to_client.send(answer);
                s.to_upstream.send(ToClient { bytes: cancel, answers: Vec::new() });
            }
        }
        s.send_queued();
    }
}
