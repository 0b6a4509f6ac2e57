//! The server side: a child process speaking newline-delimited JSON-RPC on stdin/stdout, or a Streamable
//! HTTP endpoint.
//!
//! Both are reduced to the same two halves: an [`Outbox`] the session writes to, and [`Events`] the upstream
//! reports to (a message, or that it is gone). The child is read on a dedicated thread with blocking I/O:
//! one wake-up per message and no task hand-off, which is what keeps the added latency of the stdio proxy in
//! microseconds. The child's stderr is inherited, so its logs land on our stderr and never on a data stream.
//!
//! The HTTP upstream is an MCP client at the message level: each message is POSTed (the `initialize` first and
//! alone, so its `Mcp-Session-Id` and protocol version accompany everything after it); answers come back as
//! JSON or as an SSE stream, and a GET stream carries what the server sends unprompted. A request whose POST
//! fails, or whose stream ends unanswered, is answered with a JSON-RPC error so no client waits forever.

use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use reqwest::header::HeaderValue;

use super::ProxyError;
use super::lines::{Frame, LineReader};
use super::link::{Link, Outbox};
use super::probe::Heads;
use super::relay::ToClient;

/// Where the upstream server is.
#[derive(Debug, Clone)]
pub enum UpstreamSpec {
    Command { program: String, args: Vec<String> },
    Http { url: String, headers: Vec<(String, String)> },
}

/// What the upstream reports.
pub trait Events: Send + Sync + 'static {
    /// A message from the upstream; returns the keys (id JSON text) of the client requests it answered.
    fn message(&self, raw: &[u8]) -> Vec<String>;
    fn closed(&self, why: &str);
}

/// A connected upstream whose reading starts once the session that handles its events exists.
pub struct Connected {
    pub outbox: Arc<dyn Outbox>,
    start: Box<dyn FnOnce(Arc<dyn Events>) + Send>,
    /// Set when the upstream is a child that is restarted when it crashes (`--restart`): the session checks it
    /// before forwarding, so nothing reaches a child that is down or not initialised yet.
    link: Option<Arc<Link>>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected").finish_non_exhaustive()
    }
}

impl Connected {
    pub(crate) fn supervised(
        outbox: Arc<dyn Outbox>,
        start: Box<dyn FnOnce(Arc<dyn Events>) + Send>,
        link: Arc<Link>,
    ) -> Connected {
        Connected { outbox, start, link: Some(link) }
    }

    pub fn link(&self) -> Option<Arc<Link>> {
        self.link.clone()
    }

    pub fn start(self, events: Arc<dyn Events>) {
        (self.start)(events)
    }
}

/// Start (or prepare to reach) the upstream.
pub fn connect(
    spec: &UpstreamSpec,
    max_message: usize,
    runtime: &tokio::runtime::Handle,
) -> Result<Connected, ProxyError> {
    match spec {
        UpstreamSpec::Command { program, args } => spawn_child(program, args, max_message),
        UpstreamSpec::Http { url, headers } => http(url, headers, runtime),
    }
}

/// The stdin of a child upstream, and the child itself (to kill it).
pub(crate) struct ChildOutbox {
    stdin: Mutex<Option<ChildStdin>>,
    child: Arc<Mutex<Child>>,
}

impl ChildOutbox {
    /// Kill the child now and reap it (its reader, if started, then reports the exit as usual: the status is
    /// kept by `Child`).
    pub(crate) fn kill(&self) {
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Outbox for ChildOutbox {
    fn send(&self, message: ToClient) {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pipe) = stdin.as_mut() else { return };
        let mut bytes = message.bytes;
        bytes.push(b'\n');
        // A write error means the child is gone; its reader thread reports that with the exit status.
        if let Err(e) = pipe.write_all(&bytes).and_then(|()| pipe.flush()) {
            tracing::debug!("writing to the upstream's stdin: {e}");
        }
    }

    fn close(&self) {
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        // Closing stdin asks the server to exit; one that ignores it is killed after a grace period.
        let child = Arc::clone(&self.child);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(child.try_wait(), Ok(None)) {
                tracing::warn!("the upstream server did not exit after its stdin closed; killing it");
                let _ = child.kill();
            }
        });
    }
}

fn spawn_child(program: &str, args: &[String], max_message: usize) -> Result<Connected, ProxyError> {
    let (outbox, start) = spawn(program, args, max_message)?;
    Ok(Connected { outbox, start, link: None })
}

/// What starts reading a child's stdout once its events have somewhere to go.
pub(crate) type Start = Box<dyn FnOnce(Arc<dyn Events>) + Send>;

/// Start a child; its stdout is read (on a thread of its own) once `Start` is called.
pub(crate) fn spawn(
    program: &str,
    args: &[String],
    max_message: usize,
) -> Result<(Arc<ChildOutbox>, Start), ProxyError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProxyError::Spawn { program: program.to_string(), source })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let child = Arc::new(Mutex::new(child));
    let outbox = Arc::new(ChildOutbox { stdin: Mutex::new(stdin), child: Arc::clone(&child) });
    let start = move |events: Arc<dyn Events>| {
        std::thread::spawn(move || {
            if let Some(stdout) = stdout {
                let mut reader = LineReader::new(BufReader::with_capacity(64 * 1024, stdout), max_message);
                loop {
                    match reader.next_frame() {
                        Ok(Frame::Line(line)) => drop(events.message(&line)),
                        Ok(Frame::TooLong(n)) => {
                            tracing::warn!("dropped a {n}-byte message from the upstream (limit {max_message})");
                        }
                        Ok(Frame::Eof) => break,
                        Err(e) => {
                            tracing::warn!("reading the upstream's stdout: {e}");
                            break;
                        }
                    }
                }
            }
            let status = loop {
                let mut guard = child.lock().unwrap_or_else(|e| e.into_inner());
                match guard.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) => {}
                    Err(e) => break format!("cannot wait for it: {e}"),
                }
                drop(guard);
                std::thread::sleep(Duration::from_millis(10));
            };
            events.closed(&status);
        });
    };
    Ok((outbox, Box::new(start)))
}

struct HttpOutbox {
    http: Arc<HttpClient>,
    tx: mpsc::UnboundedSender<Option<Vec<u8>>>,
    runtime: tokio::runtime::Handle,
}

impl Outbox for HttpOutbox {
    fn send(&self, message: ToClient) {
        // Once `initialize` is answered, each message is POSTed from a task of its own straight away: the
        // queue exists only to hold messages until the session id is known.
        if let Some(events) = self.http.ready.get() {
            let (http, events) = (Arc::clone(&self.http), Arc::clone(events));
            // The session names the requests it forwarded: no need to read the message again for them.
            self.runtime.spawn(async move { http.post(message.bytes, Some(message.answers), &events).await });
            return;
        }
        let _ = self.tx.send(Some(message.bytes));
    }

    fn close(&self) {
        let _ = self.tx.send(None);
    }
}

#[derive(Default)]
struct HttpState {
    session_id: Option<reqwest::header::HeaderValue>,
    protocol_version: Option<reqwest::header::HeaderValue>,
}

struct HttpClient {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    state: Mutex<HttpState>,
    /// Set when the upstream answered `initialize` (before the answer is relayed, so that nothing the client
    /// says after reading it can overtake it in the queue).
    ready: OnceLock<Arc<dyn Events>>,
}

fn http(url: &str, headers: &[(String, String)], runtime: &tokio::runtime::Handle) -> Result<Connected, ProxyError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let bad = || ProxyError::Header(format!("{name}: {value}"));
        let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = reqwest::header::HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        map.append(name, value);
    }
    // Parsed once: parsing (and IDNA-normalising) the URL on every request was a visible cost per call.
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ProxyError::Http(format!("invalid upstream URL {url:?}: {e}")))?;
    let client = shared_client()?;
    let http =
        Arc::new(HttpClient { client, url: parsed, headers: map, state: Mutex::default(), ready: OnceLock::new() });
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let outbox = Arc::new(HttpOutbox { http: Arc::clone(&http), tx, runtime: runtime.clone() });
    let runtime = runtime.clone();
    let start = move |events: Arc<dyn Events>| {
        runtime.spawn(async move {
            while let Some(Some(bytes)) = rx.recv().await {
                let initialize = Heads::read(&bytes).is_ok_and(|h| h.is("initialize"));
                if initialize {
                    // Alone and awaited: everything after it needs the session id it returns.
                    http.post(bytes, None, &events).await;
                    let (http, events) = (Arc::clone(&http), Arc::clone(&events));
                    tokio::spawn(async move { http.listen(events.as_ref()).await });
                } else {
                    let (http, events) = (Arc::clone(&http), Arc::clone(&events));
                    tokio::spawn(async move { http.post(bytes, None, &events).await });
                }
            }
            http.delete().await;
        });
    };
    Ok(Connected { outbox, start: Box::new(start), link: None })
}

/// One client for every session: one connection pool, and TLS roots loaded once rather than per session.
fn shared_client() -> Result<reqwest::Client, ProxyError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ProxyError::Http(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

impl HttpClient {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, self.url.clone());
        if !self.headers.is_empty() {
            req = req.headers(self.headers.clone());
        }
        req = req.header(reqwest::header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = &state.session_id {
            req = req.header("mcp-session-id", id.clone());
        }
        if let Some(v) = &state.protocol_version {
            req = req.header("mcp-protocol-version", v.clone());
        }
        req
    }

    /// POST one message; `requests` are the keys of the requests in it when the caller knows them.
    async fn post(&self, bytes: Vec<u8>, requests: Option<Vec<String>>, events: &Arc<dyn Events>) {
        let (initialize, mut waiting) = match requests {
            Some(keys) => (false, keys),
            None => {
                let heads = Heads::read(&bytes).ok();
                let keys = heads.iter().flat_map(|h| h.request_ids()).filter_map(valid_key).collect();
                (heads.is_some_and(|h| h.is("initialize")), keys)
            }
        };
        let req = self
            .request(reqwest::Method::POST)
            .header(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let outcome = match req.body(bytes).send().await {
            Err(e) => Err(format!("cannot reach the upstream: {e}")),
            Ok(resp) if !resp.status().is_success() => Err(format!("the upstream answered HTTP {}", resp.status())),
            Ok(resp) => {
                if let Some(id) = resp.headers().get("mcp-session-id") {
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).session_id = Some(id.clone());
                }
                if initialize {
                    let _ = self.ready.set(Arc::clone(events));
                }
                self.read_body(resp, &mut waiting, initialize, events.as_ref()).await
            }
        };
        let why = match outcome {
            Ok(()) if waiting.is_empty() => return,
            Ok(()) => "the upstream ended its answer without answering".to_string(),
            Err(why) => why,
        };
        tracing::warn!("{why}");
        for key in waiting {
            let id: Value = serde_json::from_str(&key).unwrap_or(Value::Null);
            let error =
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": format!("toolwarden: {why}")}});
            events.message(&serde_json::to_vec(&error).unwrap_or_default());
        }
    }

    /// Deliver a JSON or SSE body, ticking off answered request ids. The answer to `initialize` is also read
    /// for the negotiated protocol version, which every later request must carry.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        waiting: &mut Vec<String>,
        initialize: bool,
        events: &dyn Events,
    ) -> Result<(), String> {
        let sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let deliver = |data: &[u8], waiting: &mut Vec<String>| {
            if initialize && let Ok(value) = serde_json::from_slice::<Value>(data) {
                self.note(&value);
            }
            let answered = events.message(data);
            waiting.retain(|key| !answered.contains(key));
        };
        if !sse {
            let body = resp.bytes().await.map_err(|e| format!("reading the upstream's answer: {e}"))?;
            if !body.iter().all(u8::is_ascii_whitespace) {
                deliver(&body, waiting);
            }
            return Ok(());
        }
        let mut parser = SseParser::default();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    for data in parser.push(&chunk) {
                        deliver(data.as_bytes(), waiting);
                    }
                    if waiting.is_empty() && !parser.pending() {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("reading the upstream's stream: {e}")),
            }
        }
    }

    /// Remember the negotiated protocol version from an initialize result.
    fn note(&self, value: &Value) {
        if let Some(v) = value.pointer("/result/protocolVersion").and_then(Value::as_str)
            && let Ok(v) = HeaderValue::from_str(v)
        {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).protocol_version = Some(v);
        }
    }

    /// The GET stream for messages the server sends unprompted; optional in the protocol (405 is fine).
    async fn listen(&self, events: &dyn Events) {
        let Ok(resp) = self.request(reqwest::Method::GET).send().await else { return };
        if !resp.status().is_success() {
            return;
        }
        let mut waiting = Vec::new();
        if let Err(e) = self.read_body(resp, &mut waiting, false, events).await {
            tracing::debug!("the upstream's GET stream ended: {e}");
        }
    }

    async fn delete(&self) {
        if self.state.lock().unwrap_or_else(|e| e.into_inner()).session_id.is_some() {
            let _ = self.request(reqwest::Method::DELETE).send().await;
        }
    }
}

/// The relay's key of a request id (its JSON text); ids of other types are refused by the relay, never forwarded.
fn valid_key(id: &Value) -> Option<String> {
    matches!(id, Value::String(_) | Value::Number(_)).then(|| id.to_string())
}

/// Server-sent events: `data:` lines joined per event, everything else ignored.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: String,
}

impl SseParser {
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.push_str(&String::from_utf8_lossy(chunk).replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let event: String = self.buf.drain(..end + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }

    fn pending(&self) -> bool {
        !self.buf.trim().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: message\r\ndata: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\r\n\r\n: keepalive\n\ndata: x\ndata: y\n\n"), vec!["{\"a\":1}", "x\ny"]);
        assert!(!p.pending());
    }
}
