//! Restarting a crashed stdio upstream (`--restart N`): the child is respawned with back-off and the client's
//! handshake replayed to it, so the session the client holds stays usable.
//!
//! A [`Supervisor`] stands where a child's stdin would: the session sends to it, and it forwards to the live
//! child. When the child exits, the session's [`Link`] goes down first (under its write lock, so no request is
//! half-forwarded), every request in flight is answered with an error, and the restart runs on the dead child's
//! reader thread: wait the back-off ([`Schedule`]: doubling, capped, reset by a child that stayed up), spawn the
//! same command, send it the client's original `initialize` under an id of our own, swallow the answer (its
//! protocol version must be the one the session negotiated, else we give up: the client would be talking a
//! protocol it never agreed to), send `notifications/initialized`, and only then bring the link up again. The
//! client never sees the second handshake; if the server advertised `tools.listChanged` it is told to list the
//! tools again, because the new process may offer other tools.
//!
//! While the link is down the session answers the client's requests with an error that says to retry, rather
//! than queueing them: a tool call that ran minutes later, against a fresh server, is not what the agent
//! asked for. Nothing reaches a child before its handshake is replayed. Messages are only looked at while the
//! handshake is being learned or replayed; afterwards a message costs one atomic load and one uncontended lock
//! more than without `--restart`, and without `--restart` there is no supervisor at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ProxyError;
use super::audit::Audit;
use super::link::{Link, Outbox};
use super::probe::Heads;
use super::relay::ToClient;
use super::upstream::{self, ChildOutbox, Connected, Events};

/// Longest wait between restarts, however many there were in a row.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A child that stayed up this long was healthy: the next crash starts the back-off (and the count) afresh.
pub const RESET_AFTER: Duration = Duration::from_secs(60);

/// `--restart`: how often and how patiently a crashed child is restarted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Restarts in a row before giving up (a child that stayed up for `reset_after` resets the count).
    pub max_restarts: u32,
    /// Wait before the first restart; doubled for each further one in a row.
    pub backoff: Duration,
    pub cap: Duration,
    pub reset_after: Duration,
}

impl Policy {
    pub fn new(max_restarts: u32, backoff: Duration) -> Policy {
        Policy { max_restarts, backoff, cap: BACKOFF_CAP.max(backoff), reset_after: RESET_AFTER }
    }
}

/// The back-off schedule: pure, so it is tested without processes or clocks.
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: Policy,
    restarts: u32,
}

impl Schedule {
    pub fn new(policy: Policy) -> Schedule {
        Schedule { policy, restarts: 0 }
    }

    /// A child that ran for `uptime` exited: how long to wait before starting the next one, or `None` when
    /// the restarts allowed in a row are used up.
    pub fn next(&mut self, uptime: Duration) -> Option<Duration> {
        if uptime >= self.policy.reset_after {
            self.restarts = 0;
        }
        if self.restarts >= self.policy.max_restarts {
            return None;
        }
        let factor = 1u32 << self.restarts.min(16);
        let delay = self.policy.backoff.saturating_mul(factor).min(self.policy.cap);
        self.restarts += 1;
        Some(delay)
    }

    /// Restarts in a row so far (the one just scheduled included).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// The client's handshake, as first seen: replayed to every restarted child.
#[derive(Debug, Default)]
struct Handshake {
    /// The client's `initialize` request as forwarded.
    request: Option<Value>,
    /// Its id (as a key) until its result passes.
    key: Option<String>,
    /// The protocol version the server answered with; a restarted server must answer the same.
    protocol: Option<String>,
    /// The server advertised `capabilities.tools.listChanged`.
    list_changed: bool,
    done: bool,
}

struct Inner {
    /// Counts spawned children; events of an older one are ignored.
    generation: u64,
    /// The live child (also while its handshake is replayed).
    child: Option<Arc<ChildOutbox>>,
    started: Instant,
    schedule: Schedule,
    handshake: Handshake,
    /// The id key of the replayed `initialize` whose answer is awaited.
    replay: Option<String>,
    /// Why the last child exited.
    last_exit: String,
    /// The client is gone: a child's exit is the end of the session, not a crash.
    shutdown: bool,
    /// The frontend was told the upstream is closed; nothing more happens.
    finished: bool,
    /// Where a child's messages and the final close go; dropped when finished, which breaks the cycle
    /// supervisor → frontend → session → supervisor.
    frontend: Option<Arc<dyn Events>>,
}

/// A child upstream that is restarted when it crashes. See the module docs.
pub struct Supervisor {
    program: String,
    args: Vec<String>,
    max_message: usize,
    policy: Policy,
    /// How long a restarted child may take to answer the replayed `initialize`.
    handshake_timeout: Duration,
    audit: Arc<Audit>,
    runtime: tokio::runtime::Handle,
    link: Arc<Link>,
    /// Where the session's messages go: the child, once it is up and initialised; `None` otherwise.
    current: Mutex<Option<Arc<ChildOutbox>>>,
    /// Messages must be looked at: the handshake is still being learned, or being replayed.
    watching: AtomicBool,
    inner: Mutex<Inner>,
    /// Wakes a back-off wait when the client goes away.
    wake: Condvar,
    /// Lets a child's events and timers reach the supervisor without keeping it alive.
    this: Weak<Supervisor>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("program", &self.program).field("policy", &self.policy).finish()
    }
}

/// Start `program` under a supervisor. A first spawn that fails is an error, as without `--restart`: a
/// command that cannot start at all is a configuration mistake, not a crash.
pub fn supervise(
    program: &str,
    args: &[String],
    max_message: usize,
    policy: Policy,
    handshake_timeout: Duration,
    audit: Arc<Audit>,
    runtime: &tokio::runtime::Handle,
) -> Result<Connected, ProxyError> {
    let (child, start) = upstream::spawn(program, args, max_message)?;
    let link = Arc::new(Link::new());
    let supervisor = Arc::new_cyclic(|this| Supervisor {
        program: program.to_string(),
        args: args.to_vec(),
        max_message,
        policy,
        handshake_timeout,
        audit,
        runtime: runtime.clone(),
        link: Arc::clone(&link),
        current: Mutex::new(Some(Arc::clone(&child))),
        watching: AtomicBool::new(true),
        inner: Mutex::new(Inner {
            generation: 0,
            child: Some(child),
            started: Instant::now(),
            schedule: Schedule::new(policy),
            handshake: Handshake::default(),
            replay: None,
            last_exit: String::new(),
            shutdown: false,
            finished: false,
            frontend: None,
        }),
        wake: Condvar::new(),
        this: this.clone(),
    });
    let sup = Arc::clone(&supervisor);
    let begin = move |events: Arc<dyn Events>| {
        sup.inner().frontend = Some(Arc::clone(&events));
        start(Arc::new(ChildEvents { supervisor: Arc::downgrade(&sup), generation: 0, frontend: events }));
    };
    Ok(Connected::supervised(supervisor, Box::new(begin), link))
}

impl Outbox for Supervisor {
    fn send(&self, message: ToClient) {
        if self.watching.load(Ordering::Relaxed) {
            self.note_client(&message.bytes);
        }
        match &*self.current() {
            Some(child) => child.send(message),
            None => tracing::debug!("dropped a message for the upstream server: it is restarting"),
        }
    }

    fn close(&self) {
        let child = {
            let mut inner = self.inner();
            inner.shutdown = true;
            self.wake.notify_all();
            inner.child.clone()
        };
        match child {
            Some(child) => child.close(),
            // Between children (a back-off wait): the restart thread wakes up, sees the shutdown and says so.
            None => tracing::debug!("the client left while the upstream server was down"),
        }
    }
}

/// Events of one child, passed on to the frontend's events unless they belong to the handshake replay.
struct ChildEvents {
    supervisor: Weak<Supervisor>,
    generation: u64,
    frontend: Arc<dyn Events>,
}

impl Events for ChildEvents {
    fn message(&self, raw: &[u8]) -> Vec<String> {
        if let Some(sup) = self.supervisor.upgrade()
            && sup.watching.load(Ordering::Relaxed)
            && sup.note_upstream(self.generation, raw)
        {
            return Vec::new();
        }
        self.frontend.message(raw)
    }

    fn closed(&self, why: &str) {
        if let Some(sup) = self.supervisor.upgrade() {
            sup.child_exited(self.generation, why);
        }
    }
}

/// The id key of a JSON-RPC id, as the relay spells it.
fn id_key(id: &Value) -> Option<String> {
    matches!(id, Value::String(_) | Value::Number(_)).then(|| id.to_string())
}

/// Whether `raw` answers the request whose id key is `key`.
fn answers(raw: &[u8], key: &str) -> bool {
    Heads::read(raw).is_ok_and(|h| h.answered_ids().any(|id| id_key(id).as_deref() == Some(key)))
}

impl Supervisor {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> MutexGuard<'_, Option<Arc<ChildOutbox>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session_name(&self) -> String {
        self.link.session().map(|s| s.name()).unwrap_or_default()
    }

    /// A message from the client on its way upstream, while the handshake is unknown: remember `initialize`.
    fn note_client(&self, bytes: &[u8]) {
        if !Heads::read(bytes).is_ok_and(|h| h.is("initialize")) {
            return;
        }
        let Ok(request) = serde_json::from_slice::<Value>(bytes) else { return };
        let mut inner = self.inner();
        if inner.handshake.done {
            return;
        }
        inner.handshake.key = request.get("id").and_then(id_key);
        inner.handshake.request = Some(request);
    }

    /// A message from child `generation` while watching. `true`: it was the answer to the replayed
    /// `initialize`, which the client must not see.
    fn note_upstream(&self, generation: u64, raw: &[u8]) -> bool {
        let mut inner = self.inner();
        if generation != inner.generation {
            return true;
        }
        if let Some(key) = inner.replay.clone() {
            if !answers(raw, &key) {
                return false;
            }
            inner.replay = None;
            drop(inner);
            self.replayed(generation, raw);
            return true;
        }
        let Some(key) = inner.handshake.key.clone() else { return false };
        if inner.handshake.done || !answers(raw, &key) {
            return false;
        }
        let answer: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let protocol = answer.pointer("/result/protocolVersion").and_then(Value::as_str);
        match protocol {
            Some(protocol) => {
                inner.handshake.protocol = Some(protocol.to_string());
                inner.handshake.list_changed =
                    answer.pointer("/result/capabilities/tools/listChanged").and_then(Value::as_bool) == Some(true);
                inner.handshake.done = true;
                self.watching.store(false, Ordering::Relaxed);
            }
            // A refused initialize: the client may try again, and that one is the handshake to replay.
            None => {
                inner.handshake.request = None;
                inner.handshake.key = None;
            }
        }
        false
    }

    /// Child `generation` exited: answer what is in flight, then restart it (after the back-off) or give up.
    fn child_exited(&self, generation: u64, why: &str) {
        {
            let mut inner = self.inner();
            if generation != inner.generation || inner.finished {
                return;
            }
            inner.child = None;
            inner.replay = None;
            inner.last_exit = why.to_string();
            *self.current() = None;
            if inner.shutdown {
                // The client left first: the child's exit is the normal end.
                drop(inner);
                return self.end(why, false);
            }
        }
        // Down before the drain: a request the session routes from now on is refused as "restarting", and one
        // it routed before is in the in-flight map the drain answers.
        self.link.set(false);
        if let Some(session) = self.link.session() {
            session.upstream_closed(why);
        }
        let mut why = why.to_string();
        loop {
            let planned = {
                let mut inner = self.inner();
                let uptime = inner.started.elapsed();
                inner.schedule.next(uptime).map(|delay| (delay, inner.schedule.restarts()))
            };
            let Some((delay, n)) = planned else {
                let max = self.policy.max_restarts;
                let plural = if max == 1 { "" } else { "s" };
                let message = format!("{why}; gave up after {max} restart{plural} in a row (--restart {max})");
                return self.end(&message, true);
            };
            let message = format!(
                "the upstream server exited ({why}); restarting it in {:.3} s (restart {n} of {} in a row)",
                delay.as_secs_f64(),
                self.policy.max_restarts
            );
            tracing::warn!(session = %self.session_name(), "{message}");
            self.audit.event("upstream_exited", false, &message);
            if !self.wait(delay) {
                return self.end(&format!("{why}; the client left while it was restarting"), false);
            }
            match upstream::spawn(&self.program, &self.args, self.max_message) {
                Ok((child, start)) => return self.started(child, start, n),
                Err(e) => {
                    why = e.to_string();
                    self.inner().started = Instant::now();
                }
            }
        }
    }

    /// Wait out a back-off; `false` when the client left meanwhile.
    fn wait(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut inner = self.inner();
        while !inner.shutdown {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            inner = self.wake.wait_timeout(inner, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        false
    }

    /// A new child runs: replay the handshake to it, or (when the client had not finished one) let it be.
    fn started(&self, child: Arc<ChildOutbox>, start: upstream::Start, n: u32) {
        let (generation, replay, frontend) = {
            let mut inner = self.inner();
            let frontend = inner.frontend.clone().filter(|_| !inner.shutdown);
            let Some(frontend) = frontend else {
                // The client left while it was being started: this child has no one to serve.
                drop(inner);
                child.kill();
                return self.end("the client left while the upstream server was restarting", false);
            };
            inner.generation += 1;
            inner.child = Some(Arc::clone(&child));
            inner.started = Instant::now();
            let replay = match (&inner.handshake.request, inner.handshake.done) {
                (Some(request), true) => {
                    let key = json!(format!("toolwarden-reinitialize-{}", inner.generation));
                    let mut request = request.clone();
                    request["id"] = key.clone();
                    inner.replay = id_key(&key);
                    Some(serde_json::to_vec(&request).unwrap_or_default())
                }
                _ => {
                    // The handshake never completed: the client will (re)do it with this child.
                    inner.handshake = Handshake::default();
                    None
                }
            };
            self.watching.store(true, Ordering::Relaxed);
            (inner.generation, replay, frontend)
        };
        start(Arc::new(ChildEvents { supervisor: self.this.clone(), generation, frontend }));
        let Some(initialize) = replay else {
            return self.up(generation, n, false);
        };
        child.send(ToClient { bytes: initialize, answers: Vec::new() });
        let (this, timeout) = (self.this.clone(), self.handshake_timeout);
        self.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(sup) = this.upgrade() else { return };
            let inner = sup.inner();
            if inner.generation == generation && inner.replay.is_some() {
                tracing::warn!(
                    "the restarted upstream server did not answer the replayed initialize within {timeout:?}; killing it"
                );
                if let Some(child) = inner.child.clone() {
                    drop(inner);
                    child.kill();
                }
            }
        });
    }

    /// The restarted child's answer to the replayed `initialize`.
    fn replayed(&self, generation: u64, raw: &[u8]) {
        let answer: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let (expected, n, exit) = {
            let inner = self.inner();
            (inner.handshake.protocol.clone(), inner.schedule.restarts(), inner.last_exit.clone())
        };
        let got = answer.pointer("/result/protocolVersion").and_then(Value::as_str);
        let problem = match (got, expected.as_deref()) {
            _ if answer.get("error").is_some() => Some(format!(
                "the restarted server refused the replayed initialize: {}",
                crate::model::text::clean(&answer["error"].to_string(), 300)
            )),
            (Some(got), Some(expected)) if got == expected => None,
            (got, expected) => Some(format!(
                "the restarted server answered initialize with protocol version {}, but this session uses {}",
                got.unwrap_or("(none)"),
                expected.unwrap_or("(none)")
            )),
        };
        if let Some(problem) = problem {
            return self.end(&format!("{exit}; {problem}; giving up"), true);
        }
        let child = self.inner().child.clone();
        if let Some(child) = child {
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            child.send(ToClient { bytes: serde_json::to_vec(&initialized).unwrap_or_default(), answers: Vec::new() });
        }
        self.up(generation, n, true);
    }

    /// Child `generation` takes the session's messages from now on.
    fn up(&self, generation: u64, n: u32, replayed: bool) {
        let list_changed = {
            let inner = self.inner();
            if inner.generation != generation || inner.finished {
                return;
            }
            *self.current() = inner.child.clone();
            // Still watching when the client has not completed a handshake yet (it will, with this child).
            self.watching.store(!inner.handshake.done, Ordering::Relaxed);
            inner.handshake.list_changed
        };
        self.link.set(true);
        let how = if replayed { "; the client's initialize was replayed to it" } else { "" };
        let message =
            format!("the upstream server was restarted (restart {n} of {} in a row){how}", self.policy.max_restarts);
        tracing::warn!(session = %self.session_name(), "{message}");
        self.audit.event("upstream_restarted", true, &message);
        if list_changed && let Some(session) = self.link.session() {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
            session.tell_client(serde_json::to_vec(&note).unwrap_or_default());
        }
    }

    /// Stop: kill a child still running, and tell the frontend the upstream is gone for good (`gave_up`: because
    /// restarting failed, which is audited; otherwise the client left).
    fn end(&self, why: &str, gave_up: bool) {
        let (child, frontend) = {
            let mut inner = self.inner();
            if inner.finished {
                return;
            }
            inner.finished = true;
            inner.shutdown = true;
            (inner.child.take(), inner.frontend.take())
        };
        *self.current() = None;
        if let Some(child) = child {
            child.kill();
        }
        if gave_up {
            self.audit.event("upstream_given_up", false, &format!("the upstream server exited ({why})"));
        }
        if let Some(frontend) = frontend {
            frontend.closed(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_back_off_doubles_up_to_the_cap_and_gives_up_after_n_in_a_row() {
        let policy = Policy { max_restarts: 6, backoff: Duration::from_secs(4), ..Policy::new(6, ms(1)) };
        let mut s = Schedule::new(policy);
        let delays: Vec<Option<Duration>> = (0..7).map(|_| s.next(ms(10))).collect();
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(delays, [secs(4), secs(8), secs(16), secs(30), secs(30), secs(30), None]);
        assert_eq!(s.restarts(), 6);
        assert_eq!(s.next(ms(10)), None, "stays given up while children keep crashing early");
    }

    #[test]
    fn a_child_that_stayed_up_resets_the_count_and_the_delay() {
        let mut s = Schedule::new(Policy::new(2, ms(100)));
        assert_eq!(s.next(ms(5)), Some(ms(100)));
        assert_eq!(s.next(ms(5)), Some(ms(200)));
        assert_eq!(s.next(RESET_AFTER - ms(1)), None, "just short of a minute is not healthy");
        let mut s = Schedule::new(Policy::new(2, ms(100)));
        s.next(ms(5));
        s.next(ms(5));
        assert_eq!(s.next(RESET_AFTER), Some(ms(100)), "a minute up starts afresh");
        assert_eq!(s.restarts(), 1);
    }

    #[test]
    fn no_restarts_allowed_means_the_first_exit_is_final() {
        assert_eq!(Schedule::new(Policy::new(0, ms(100))).next(Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_back_off_longer_than_the_cap_is_kept_and_huge_counts_do_not_overflow() {
        let mut s = Schedule::new(Policy::new(u32::MAX, Duration::from_secs(45)));
        assert_eq!(s.next(ms(1)), Some(Duration::from_secs(45)));
        let mut s = Schedule::new(Policy::new(u32::MAX, ms(1)));
        let last = (0..100).filter_map(|_| s.next(ms(1))).last();
        assert_eq!(last, Some(BACKOFF_CAP));
    }

    #[test]
    fn answers_match_ids_as_the_relay_keys_them() {
        assert!(answers(
            br#"{"jsonrpc":"2.0","id":"toolwarden-reinitialize-1","result":{}}"#,
            r#""toolwarden-reinitialize-1""#
        ));
        assert!(!answers(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, r#""1""#), "1 and \"1\" differ");
        assert!(!answers(br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#, "1"), "a request answers nothing");
    }
}
