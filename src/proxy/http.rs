//! The Streamable HTTP frontend: `POST/GET/DELETE /mcp`, one proxy session (and one upstream connection or
//! child) per MCP session.
//!
//! Written on axum at the message level rather than with rmcp's `StreamableHttpService`, for the same reason
//! the relay is: rmcp's service terminates MCP into typed requests, and a relay must pass through what it does
//! not understand. The transport rules it implements: an `initialize` without `Mcp-Session-Id` opens a
//! session (the id is a random UUID, bound to the caller's identity). A POST carrying one request whose answer
//! is the first thing the server says gets that answer as JSON; otherwise the answer is an SSE stream that
//! ends once all the POST's requests are answered. A POST carrying only notifications or responses gets
//! `202`. Messages the server sends unprompted (sampling, elicitation, roots, logs) go to the newest open POST
//! stream (in order with that request's answer), else the session's GET stream, else wait in a bounded backlog.
//!
//! Every request is checked before anything else: `Host` and `Origin` must name loopback or an allowed host
//! (DNS rebinding), the bearer token must be known when `--auth-tokens` is set, and the body is bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::counters;
use super::probe::Heads;
use super::relay::{Relay, ToClient};
use super::session::{Outbox, Session};
use super::upstream::Events;
use super::{Config, ProxyError};

/// Unprompted messages kept for a session with no open stream; older ones are dropped beyond this.
const BACKLOG: usize = 1024;

/// What stands behind one HTTP session: a proxy [`Session`], or a gateway of many servers.
pub trait Endpoint: Send + Sync {
    /// A message (or batch) from the client.
    fn client_said(&self, raw: &[u8]);
    /// The client is gone (DELETE, or idle): close what stands behind.
    fn close(&self);
    /// Whether a request is still in flight (an idle session is reaped only when not).
    fn busy(&self) -> bool;
}

/// The HTTP frontend's own settings, whatever stands behind it.
#[derive(Debug, Clone)]
pub struct Front {
    /// HTTP bearer token → identity; when set, every request needs a known token.
    pub auth_tokens: Option<HashMap<String, String>>,
    /// Host names accepted in `Host` and `Origin` besides loopback names.
    pub allowed_hosts: Vec<String>,
    pub max_sessions: usize,
    pub session_idle: Duration,
    pub max_message: usize,
    /// For the "listening on" line: `proxy` or `gateway`.
    pub what: &'static str,
}

/// Opens what stands behind a new session: its id, the caller's identity, where its messages for the client
/// go, and what to call when it ends on its own (its upstream went away).
pub type Opener = Box<
    dyn Fn(&str, Option<String>, Arc<dyn Outbox>, Box<dyn Fn() + Send + Sync>) -> Result<Arc<dyn Endpoint>, String>
        + Send
        + Sync,
>;

struct App {
    front: Front,
    open: Opener,
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
    hosts: HashSet<String>,
}

struct HttpSession {
    session: Arc<dyn Endpoint>,
    streams: Arc<Streams>,
    identity: Option<String>,
    /// Unix seconds of the last request naming this session.
    last_seen: AtomicU64,
}

/// The client side of one session: where each message for the client goes.
#[derive(Default)]
struct Streams {
    inner: Mutex<StreamsInner>,
}

#[derive(Default)]
struct StreamsInner {
    /// Request id key → the POST stream waiting for its answer.
    by_id: HashMap<String, mpsc::UnboundedSender<ToClient>>,
    /// Open POST streams, newest last.
    posts: Vec<(u64, mpsc::UnboundedSender<ToClient>)>,
    general: Option<mpsc::UnboundedSender<ToClient>>,
    backlog: VecDeque<ToClient>,
    serial: u64,
}

impl Outbox for Streams {
    fn send(&self, message: ToClient) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = message.answers.iter().find_map(|k| s.by_id.get(k).cloned()) {
            for key in &message.answers {
                s.by_id.remove(key);
            }
            let _ = tx.send(message);
            return;
        }
        // An open POST stream first: what a server says while a request is open is most likely about it (a
        // log line, progress, a sampling request), and one stream keeps it in order with the answer.
        let target = s
            .posts
            .iter()
            .rev()
            .map(|(_, tx)| tx)
            .find(|tx| !tx.is_closed())
            .cloned()
            .or_else(|| s.general.clone().filter(|tx| !tx.is_closed()));
        match target {
            Some(tx) => {
                let _ = tx.send(message);
            }
            None => {
                if s.backlog.len() == BACKLOG {
                    s.backlog.pop_front();
                    tracing::warn!("a session's backlog of unprompted messages is full; dropping the oldest");
                }
                s.backlog.push_back(message);
            }
        }
    }

    fn close(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.by_id.clear();
        s.posts.clear();
        s.general = None;
    }
}

impl Streams {
    /// Open a POST stream waiting for `keys`; `None` when one of them is already awaited.
    fn open_post(&self, keys: &[String]) -> Option<(u64, mpsc::UnboundedReceiver<ToClient>)> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if keys.iter().any(|k| s.by_id.get(k).is_some_and(|tx| !tx.is_closed())) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for key in keys {
            s.by_id.insert(key.clone(), tx.clone());
        }
        s.serial += 1;
        let serial = s.serial;
        // Backlogged unprompted messages go out on the first stream that opens.
        while let Some(m) = s.backlog.pop_front() {
            let _ = tx.send(m);
        }
        s.posts.push((serial, tx));
        Some((serial, rx))
    }

    fn close_post(&self, serial: u64) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.posts.retain(|(n, _)| *n != serial);
    }

    fn open_general(&self) -> mpsc::UnboundedReceiver<ToClient> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = mpsc::unbounded_channel();
        while let Some(m) = s.backlog.pop_front() {
            let _ = tx.send(m);
        }
        s.general = Some(tx);
        rx
    }
}

struct HttpEvents {
    session: Arc<Session>,
    id: String,
    gone: Box<dyn Fn() + Send + Sync>,
}

impl Events for HttpEvents {
    fn message(&self, raw: &[u8]) -> Vec<String> {
        self.session.from_upstream(raw)
    }

    fn closed(&self, why: &str) {
        tracing::warn!(session = %self.id, "the upstream server exited ({why}); the session is closed");
        self.session.upstream_closed(why);
        (self.gone)();
    }
}

/// A proxy session behind HTTP.
struct Proxied(Arc<Session>);

impl Endpoint for Proxied {
    fn client_said(&self, raw: &[u8]) {
        self.0.from_client(raw);
    }

    fn close(&self) {
        self.0.close_upstream();
    }

    fn busy(&self) -> bool {
        self.0.relay.in_flight() > 0
    }
}

pub(super) async fn serve(config: Config, addr: SocketAddr) -> Result<(), ProxyError> {
    let front = Front {
        auth_tokens: config.auth_tokens.clone(),
        allowed_hosts: config.allowed_hosts.clone(),
        max_sessions: config.max_sessions,
        session_idle: config.session_idle,
        max_message: config.max_message,
        what: "proxy",
    };
    let runtime = tokio::runtime::Handle::current();
    let config = Arc::new(config);
    let open: Opener = Box::new(move |id, identity, streams, gone| {
        let connected = super::connect(&config, &runtime).map_err(|e| e.to_string())?;
        let relay = Relay::new(Arc::clone(&config.gate), Arc::clone(&config.audit), id.to_string(), identity)
            .with_pinned(config.pinned.clone());
        let session = Session::connected(
            relay,
            streams,
            &connected,
            config.call_timeout,
            runtime.clone(),
            config.approvals.clone(),
        );
        connected.start(Arc::new(HttpEvents { session: Arc::clone(&session), id: id.to_string(), gone }));
        Ok(Arc::new(Proxied(session)) as Arc<dyn Endpoint>)
    });
    serve_with(front, open, addr).await
}

/// Serve `POST/GET/DELETE /mcp` on `addr`, each session opened by `open`.
pub async fn serve_with(front: Front, open: Opener, addr: SocketAddr) -> Result<(), ProxyError> {
    let mut hosts: HashSet<String> = ["localhost", "127.0.0.1", "[::1]"]
        .into_iter()
        .map(String::from)
        .chain(front.allowed_hosts.iter().cloned())
        .collect();
    if !addr.ip().is_unspecified() {
        hosts.insert(match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
    }
    let limit = front.max_message;
    let idle = front.session_idle;
    let what = front.what;
    let app = Arc::new(App { front, open, sessions: Mutex::default(), hosts });
    tokio::spawn(reap(Arc::downgrade(&app), idle));
    let router = Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::clone(&app));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ProxyError::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ProxyError::Listen { addr, source })?;
    // The one line a supervisor (or a test) needs; on stderr like all our logs.
    eprintln!("toolwarden {what} listening on http://{bound}/mcp");
    // SSE answers are small writes; without TCP_NODELAY, Nagle and delayed ACKs hold each for ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await.map_err(|source| ProxyError::Listen { addr: bound, source })
}

/// A request turned away before it reached the relay: an HTTP status with a JSON-RPC error body.
struct Reject {
    status: StatusCode,
    code: i64,
    message: String,
}

fn reject(status: StatusCode, code: i64, message: &str) -> Reject {
    Reject { status, code, message: message.to_string() }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": self.code, "message": self.message}});
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Host/Origin and bearer checks; the caller's identity on success.
fn admit(app: &App, headers: &HeaderMap) -> Result<Option<String>, Reject> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(host_name);
    if !host.is_some_and(|h| app.hosts.contains(&h)) {
        return Err(reject(StatusCode::FORBIDDEN, -32600, "Forbidden: Host header not allowed"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = origin
            .split_once("://")
            .map(|(_, rest)| host_name(rest.split('/').next().unwrap_or("")))
            .is_some_and(|h| app.hosts.contains(&h));
        if !allowed {
            return Err(reject(StatusCode::FORBIDDEN, -32600, "Forbidden: Origin not allowed"));
        }
    }
    let Some(tokens) = &app.front.auth_tokens else { return Ok(None) };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match token.and_then(|t| tokens.get(t)) {
        Some(identity) => Ok(Some(identity.clone())),
        None => Err(reject(StatusCode::UNAUTHORIZED, -32600, "Unauthorized: a valid bearer token is required")),
    }
}

/// `localhost:8080` → `localhost`, `[::1]:80` → `[::1]`, lower-cased.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or("").to_string();
    }
    host.split(':').next().unwrap_or("").to_string()
}

fn session_header(headers: &HeaderMap) -> Option<String> {
    headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(String::from)
}

/// The session a request names, checked against the caller.
fn find_session(
    app: &App,
    headers: &HeaderMap,
    identity: &Option<String>,
) -> Result<(String, Arc<HttpSession>), Reject> {
    let Some(id) = session_header(headers) else {
        return Err(reject(StatusCode::BAD_REQUEST, -32600, "Bad Request: Mcp-Session-Id header is required"));
    };
    let found = app.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned();
    match found {
        None => Err(reject(StatusCode::NOT_FOUND, -32001, "Session not found")),
        Some(s) if s.identity != *identity => {
            Err(reject(StatusCode::FORBIDDEN, -32600, "Forbidden: the session belongs to another identity"))
        }
        Some(s) => {
            s.last_seen.store(counters::now(), Ordering::Relaxed);
            Ok((id, s))
        }
    }
}

/// Close sessions nobody has used for `idle` and that have nothing in flight (clients that vanish without a
/// DELETE would otherwise keep their upstream child alive forever).
async fn reap(app: Weak<App>, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        let Some(app) = app.upgrade() else { return };
        let now = counters::now();
        let stale: Vec<(String, Arc<HttpSession>)> = {
            let mut sessions = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| {
                    now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) >= idle.as_secs() && !s.session.busy()
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| sessions.remove(&id).map(|s| (id, s))).collect()
        };
        for (id, s) in stale {
            tracing::info!(session = %id, "closed an idle session");
            s.session.close();
            s.streams.close();
        }
    }
}

fn open_session(app: &Arc<App>, identity: Option<String>) -> Result<(String, Arc<HttpSession>), Reject> {
    // Each session may start a child process: an unbounded number would let anyone who can reach the port
    // exhaust the machine.
    if app.sessions.lock().unwrap_or_else(|e| e.into_inner()).len() >= app.front.max_sessions {
        return Err(reject(StatusCode::SERVICE_UNAVAILABLE, -32000, "toolwarden: too many open sessions; try later"));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let streams = Arc::new(Streams::default());
    let gone: Box<dyn Fn() + Send + Sync> = {
        let (app, id, streams) = (Arc::downgrade(app), id.clone(), Arc::clone(&streams));
        Box::new(move || {
            if let Some(app) = app.upgrade() {
                app.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            }
            streams.close();
        })
    };
    let session = (app.open)(&id, identity.clone(), Arc::clone(&streams) as Arc<dyn Outbox>, gone).map_err(|e| {
        tracing::error!("{e}");
        reject(StatusCode::BAD_GATEWAY, -32000, &format!("toolwarden: {e}"))
    })?;
    let http_session = Arc::new(HttpSession { session, streams, identity, last_seen: AtomicU64::new(counters::now()) });
    app.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), Arc::clone(&http_session));
    tracing::info!(session = %id, "opened a session");
    Ok((id, http_session))
}

async fn post_mcp(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let identity = match admit(&app, &headers) {
        Ok(identity) => identity,
        Err(rejected) => return rejected.into_response(),
    };
    let heads = match Heads::read(&body) {
        Ok(heads) => heads,
        Err(e) => return reject(StatusCode::BAD_REQUEST, -32700, &format!("Parse error: {e}")).into_response(),
    };
    // Refused before any session routing: with the id itself possibly ambiguous, no answer could be routed.
    if let Err(super::strict::Unreadable::Duplicate(why)) = super::strict::parse(&body) {
        tracing::warn!("refused a client message with a duplicate key: {why}");
        let message =
            format!("Invalid Request: refused by toolwarden: {why} (a server may read duplicate keys differently)");
        return reject(StatusCode::BAD_REQUEST, -32600, &message).into_response();
    }
    let requests = request_keys(&heads);
    let is_initialize = heads.is("initialize");
    let (id, session, new) = if session_header(&headers).is_none() && is_initialize {
        match open_session(&app, identity) {
            Ok((id, s)) => (id, s, true),
            Err(rejected) => return rejected.into_response(),
        }
    } else {
        match find_session(&app, &headers, &identity) {
            Ok((id, s)) => (id, s, false),
            Err(rejected) => return rejected.into_response(),
        }
    };
    if requests.is_empty() {
        session.session.client_said(&body);
        return StatusCode::ACCEPTED.into_response();
    }
    let Some((serial, rx)) = session.streams.open_post(&requests) else {
        return reject(StatusCode::CONFLICT, -32600, "Invalid Request: a request with this id is still in flight")
            .into_response();
    };
    session.session.client_said(&body);
    let guard = PostGuard { streams: Arc::clone(&session.streams), serial };
    let mut rx = rx;
    let mut remaining: HashSet<String> = requests.iter().cloned().collect();
    // One request whose answer comes first (the common case) is answered as plain JSON: no stream to keep
    // open, no event framing. Anything else the server says first turns the answer into an SSE stream.
    let first = if requests.len() == 1 { rx.recv().await } else { None };
    let mut response = match first {
        Some(message) if message.answers.iter().any(|k| remaining.contains(k)) => {
            drop(guard);
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], message.bytes).into_response()
        }
        first => {
            let first = first.map(|message| {
                for key in &message.answers {
                    remaining.remove(key);
                }
                Ok::<Event, Infallible>(event(&message))
            });
            let rest =
                futures_util::stream::unfold((rx, remaining, guard), |(mut rx, mut remaining, guard)| async move {
                    if remaining.is_empty() {
                        return None;
                    }
                    let message = rx.recv().await?;
                    for key in &message.answers {
                        remaining.remove(key);
                    }
                    Some((Ok::<Event, Infallible>(event(&message)), (rx, remaining, guard)))
                });
            Sse::new(futures_util::StreamExt::chain(futures_util::stream::iter(first), rest)).into_response()
        }
    };
    if new && let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("mcp-session-id", value);
    }
    response
}

fn event(message: &ToClient) -> Event {
    Event::default().event("message").data(String::from_utf8_lossy(&message.bytes))
}

/// Unregisters a POST stream however it ends (answered, or the client hung up).
struct PostGuard {
    streams: Arc<Streams>,
    serial: u64,
}

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.streams.close_post(self.serial);
    }
}

async fn get_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let identity = match admit(&app, &headers) {
        Ok(identity) => identity,
        Err(rejected) => return rejected.into_response(),
    };
    let (_, session) = match find_session(&app, &headers, &identity) {
        Ok(found) => found,
        Err(rejected) => return rejected.into_response(),
    };
    let rx = session.streams.open_general();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        Some((Ok::<Event, Infallible>(event(&message)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn delete_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let identity = match admit(&app, &headers) {
        Ok(identity) => identity,
        Err(rejected) => return rejected.into_response(),
    };
    let (id, session) = match find_session(&app, &headers, &identity) {
        Ok(found) => found,
        Err(rejected) => return rejected.into_response(),
    };
    app.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    session.session.close();
    session.streams.close();
    tracing::info!(session = %id, "closed a session");
    StatusCode::NO_CONTENT.into_response()
}

/// Keys (as the relay spells them) of the requests in a message or batch.
fn request_keys(heads: &Heads) -> Vec<String> {
    heads.request_ids().filter(|id| matches!(id, Value::String(_) | Value::Number(_))).map(Value::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str, answers: &[&str]) -> ToClient {
        ToClient { bytes: text.as_bytes().to_vec(), answers: answers.iter().map(|a| a.to_string()).collect() }
    }

    #[test]
    fn answers_go_to_their_post_and_unprompted_messages_to_the_newest_stream() {
        let streams = Streams::default();
        streams.send(msg("early log", &[]));
        let (first, mut rx1) = streams.open_post(&["1".into()]).unwrap();
        assert_eq!(rx1.try_recv().unwrap().bytes, b"early log", "the backlog goes to the first stream");
        let (_, mut rx2) = streams.open_post(&["2".into()]).unwrap();
        assert!(streams.open_post(&["2".into()]).is_none(), "an id already awaited is refused");
        streams.send(msg("answer 1", &["1"]));
        streams.send(msg("sampling", &[]));
        assert_eq!(rx1.try_recv().unwrap().bytes, b"answer 1");
        assert_eq!(rx2.try_recv().unwrap().bytes, b"sampling");
        streams.close_post(first);
        drop(rx2);
        let mut general = streams.open_general();
        streams.send(msg("list changed", &[]));
        assert_eq!(general.try_recv().unwrap().bytes, b"list changed");
    }

    #[test]
    fn host_names_drop_ports_and_case() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("evil.example:80"), "evil.example");
    }
}
