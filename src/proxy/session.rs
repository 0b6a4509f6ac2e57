//! A session wired to its two peers: the [`Relay`]'s decisions turned into sends, plus call deadlines.
//!
//! Peers are [`Outbox`]es so the same session logic serves every frontend/upstream combination: a stdio
//! client is a locked stdout, an HTTP client is a router of SSE streams, a child upstream is its stdin, an
//! HTTP upstream is a queue of POSTs. Sends are synchronous and cheap (a pipe write or a channel push), which
//! keeps the stdio path free of task hand-offs: the added latency of the proxy is one parse and one write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::relay::{Relay, ToClient};

/// Where a session's messages go. Implementations must not block for long.
pub trait Outbox: Send + Sync {
    fn send(&self, message: ToClient);
    /// No more messages will be sent (a child's stdin is closed, an HTTP session deleted).
    fn close(&self) {}
}

/// One MCP session between a client and an upstream.
pub struct Session {
    pub relay: Relay,
    to_client: Arc<dyn Outbox>,
    to_upstream: Arc<dyn Outbox>,
    call_timeout: Duration,
    runtime: tokio::runtime::Handle,
    /// The deadline task of each forwarded call, aborted when the answer comes: otherwise every call would
    /// leave a sleeping task behind for the whole timeout (millions at a high call rate).
    deadlines: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("relay", &self.relay).finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(
        relay: Relay,
        to_client: Arc<dyn Outbox>,
        to_upstream: Arc<dyn Outbox>,
        call_timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Session> {
        Arc::new(Session { relay, to_client, to_upstream, call_timeout, runtime, deadlines: Mutex::default() })
    }

    /// A message (or batch) from the client. Returns the ids of the requests forwarded upstream.
    pub fn from_client(self: &Arc<Session>, raw: &[u8]) -> Vec<String> {
        let out = self.relay.from_client(raw);
        for answer in out.client {
            self.to_client.send(answer);
        }
        if let Some(bytes) = out.upstream {
            self.to_upstream.send(ToClient { bytes, answers: Vec::new() });
        }
        for (key, serial) in out.deadlines {
            let session = Arc::downgrade(self);
            let timeout = self.call_timeout;
            let task_key = key.clone();
            let task = self.runtime.spawn(async move {
                tokio::time::sleep(timeout).await;
                let Some(session) = session.upgrade() else { return };
                session.timers().remove(&task_key);
                if let Some((answer, cancel)) = session.relay.expire(&task_key, serial, timeout.as_secs_f64()) {
                    tracing::warn!(session = %session.relay.session(), "a tools/call timed out after {timeout:?}");
                    session.to_client.send(answer);
                    session.to_upstream.send(ToClient { bytes: cancel, answers: Vec::new() });
                }
            });
            // A very fast answer may already have come: then the task just finds nothing to expire.
            if let Some(old) = self.timers().insert(key, task.abort_handle()) {
                old.abort();
            }
        }
        out.forwarded
    }

    /// A message (or batch) from the upstream.
    pub fn from_upstream(&self, raw: &[u8]) {
        if let Some(message) = self.relay.from_upstream(raw) {
            self.disarm(&message.answers);
            self.to_client.send(message);
        }
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disarm(&self, answered: &[String]) {
        if answered.is_empty() {
            return;
        }
        let mut timers = self.timers();
        for key in answered {
            if let Some(task) = timers.remove(key) {
                task.abort();
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

    /// The client is gone: let the upstream know.
    pub fn close_upstream(&self) {
        self.to_upstream.close();
    }
}
