//! Talking MCP as a client: start or connect to one server, `initialize`, list every page of `tools/list`,
//! and hand back `model` types.
//!
//! Design notes:
//! - **Versions.** We offer the newest protocol version that still has the `initialize` handshake
//!   (rmcp's `LATEST_WITH_INITIALIZE`) and record whatever the server answers; servers answering older
//!   versions are normal, not errors.
//! - **Raw JSON.** Over stdio the transport keeps the raw `tools/list` result (see `stdio.rs`), so every key a
//!   server sends survives into the catalogue. Over HTTP rmcp owns the wire; we keep what its types keep
//!   (`_meta`, `ttlMs`, `cacheScope`, annotations).
//! - **Failing clearly.** Every failure becomes one [`McpError`] variant whose text says what happened and
//!   where: the command was not found, the child exited with code N (plus its last stderr lines), a phase
//!   timed out, the server broke the protocol, or HTTP answered 401/403/404.
//! - **Cleaning up.** Stdio children run in their own process group, killed when the session ends, on
//!   timeout and on drop, so a server's own children (`npx` → `node`) do not outlive the crawl.
//! - **Changing tool sets.** If the server sends `notifications/tools/list_changed` while we list, we list
//!   again (a few times at most) so the snapshot is the set after the change.

mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, ListToolsRequest, PaginatedRequestParams,
    ProtocolVersion, ServerResult,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value};

use crate::model::{ServerInfo, ServerSpec, Tool, Transport};

/// The largest line we accept from a stdio server (a `tools/list` page with big schemas is a few MB).
pub const DEFAULT_MAX_LINE: usize = 32 * 1024 * 1024;
/// How much of a child's stderr we keep.
const STDERR_TAIL: usize = 16 * 1024;
/// How many stderr lines an error message quotes.
const STDERR_LINES: usize = 8;
/// A server that keeps returning `nextCursor` is cut off here.
const MAX_PAGES: usize = 1000;
/// How often a `tools/list_changed` during listing makes us list again.
const MAX_RELISTS: usize = 3;

/// Which step of a session an error or timeout happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    Initialize,
    ToolsList,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Start => "start-up",
            Phase::Initialize => "initialize",
            Phase::ToolsList => "tools/list",
        })
    }
}

/// Why a server could not be listed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("command not found: {command}")]
    CommandNotFound { command: String },
    #[error("could not start {command}: {message}")]
    Spawn { command: String, message: String },
    #[error("exited with {}{}", exit_text(*.code), stderr_suffix(.stderr))]
    Exited { code: Option<i32>, stderr: String },
    #[error("timed out at {phase} after {secs:.1}s{}", stderr_suffix(.stderr))]
    Timeout { phase: Phase, secs: f64, stderr: String },
    #[error("HTTP {status} from {url}{}", http_hint(*.status))]
    Http { status: u16, url: String },
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("protocol error at {phase}: {message}{}", stderr_suffix(.stderr))]
    Protocol { phase: Phase, message: String, stderr: String },
    #[error("invalid server spec: {0}")]
    Spec(String),
    #[error("{0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

impl McpError {
    /// Worth one retry: a timeout or a lost connection may not happen twice; a missing command or a 401 will.
    pub fn is_transient(&self) -> bool {
        match self {
            McpError::Timeout { .. } | McpError::Connect { .. } => true,
            McpError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("code {code}"),
        None => "a signal".to_string(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!("; last stderr lines:\n{stderr}") }
}

fn http_hint(status: u16) -> &'static str {
    match status {
        401 => " (unauthorized: add credentials with --header \"Authorization: Bearer ...\")",
        403 => " (forbidden: check credentials, or the server may require a Host header such as localhost)",
        404 => " (not found: check the URL; Streamable HTTP endpoints usually end in /mcp)",
        _ => "",
    }
}

/// Knobs for one listing.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Deadline for the whole session (start, initialize and every page).
    pub timeout: Duration,
    /// Longest stdout line accepted from a stdio server.
    pub max_line: usize,
    /// Start stdio servers inside this sandbox.
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions { timeout: Duration::from_secs(30), max_line: DEFAULT_MAX_LINE, sandbox: None }
    }
}

/// What one successful session produced.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub info: ServerInfo,
    pub tools: Vec<Tool>,
    /// Extra keys of the (first page of the) `tools/list` result.
    pub list_extra: Map<String, Value>,
    /// Things the server did that we survived: log lines on stdout, bad tools, list changes.
    pub warnings: Vec<String>,
    /// Time from start to an initialized session (process start-up for stdio).
    pub startup: Duration,
    /// Time spent listing tools after initialization.
    pub listing: Duration,
}

/// Our side of the session: declares who we are and counts `tools/list_changed`.
#[derive(Debug, Clone, Default)]
struct CrawlClient {
    list_changed: Arc<AtomicUsize>,
}

impl ClientHandler for CrawlClient {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("toolwarden", env!("CARGO_PKG_VERSION")),
        );
        config.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        config
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Connect to (or start) the server, initialize, and list all its tools.
pub async fn list_tools(spec: &ServerSpec, options: &ListOptions) -> Result<Listing, McpError> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    match &spec.transport {
        Transport::Stdio { command, args, env, cwd } => {
            let sandbox = options.sandbox.as_deref();
            let mut child = stdio::spawn(command, args, env, cwd.as_deref(), options.max_line, sandbox)?;
            let tail = child.stderr.clone();
            let tap = Arc::clone(&child.tap);
            let result = session(child.transport, Some(&tap), started, deadline).await;
            if result.is_err() {
                // Give the stderr reader a moment to collect the child's last lines before quoting them.
                let _ = tokio::time::timeout(Duration::from_millis(300), &mut child.stderr_done).await;
            }
            let result = match result {
                Ok(listing) => Ok(listing),
                Err(SessionError::Closed { phase, message }) => {
                    // The server went away: say how it ended if it did, else report the protocol break.
                    match child.handle.exit_status(Duration::from_millis(500)).await {
                        Some(code) => Err(McpError::Exited { code, stderr: tail.last_lines(STDERR_LINES) }),
                        None => Err(McpError::Protocol { phase, message, stderr: tail.last_lines(STDERR_LINES) }),
                    }
                }
                // A child that exited early closes the transport (handled above), so a timeout is a timeout
                // even if the child exits afterwards because we closed its stdin.
                Err(SessionError::Timeout(phase)) => Err(McpError::Timeout {
                    phase,
                    secs: options.timeout.as_secs_f64(),
                    stderr: tail.last_lines(STDERR_LINES),
                }),
            };
            let refused_forks = child.handle.refused_forks();
            child.handle.kill();
            let sandbox_note = (refused_forks > 0).then(|| {
                format!(
                    "sandbox: the server tried to start more processes than its limit allows ({refused_forks} refused)"
                )
            });
            let result = match (result, sandbox) {
                (Err(McpError::Exited { code, stderr }), Some(sandbox)) => {
                    let hint = match code {
                        None => "(under --sandbox: killed by a signal; a memory or CPU limit may have been reached)",
                        Some(_) if !sandbox.limits().network => {
                            "(under --sandbox without network: --sandbox-network lets it install packages or reach its service)"
                        }
                        Some(_) => "(under --sandbox)",
                    };
                    Err(McpError::Exited { code, stderr: format!("{stderr}\n{hint}").trim_start().to_string() })
                }
                (other, _) => other,
            };
            result.map(|mut listing| {
                listing.warnings.splice(0..0, tap.warnings());
                listing.warnings.extend(sandbox_note);
                listing
            })
        }
        Transport::Http { url, headers } => {
            let result = http_session(url, headers, options, started, deadline).await;
            // Servers guarding against DNS rebinding often accept only `Host: localhost`; a loopback IP in the
            // URL makes them answer 403. Try once more the way a browser on localhost would.
            match (&result, localhost_host(url)) {
                (Err(McpError::Http { status: 403, .. }), Some(host))
                    if !headers.keys().any(|k| k.eq_ignore_ascii_case("host")) =>
                {
                    let mut with_host = headers.clone();
                    with_host.insert("Host".into(), host.clone());
                    let mut retry = http_session(url, &with_host, options, Instant::now(), deadline).await?;
                    retry.warnings.push(format!("HTTP 403 with the IP address; listed with \"Host: {host}\""));
                    Ok(retry)
                }
                _ => result,
            }
        }
    }
}

async fn http_session(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    options: &ListOptions,
    started: Instant,
    deadline: Instant,
) -> Result<Listing, McpError> {
    let transport = http_transport(url, headers, options.timeout)?;
    match session(transport, None, started, deadline).await {
        Ok(listing) => Ok(listing),
        Err(SessionError::Timeout(phase)) => {
            Err(McpError::Timeout { phase, secs: options.timeout.as_secs_f64(), stderr: String::new() })
        }
        Err(SessionError::Closed { phase, message }) => Err(http_error(url, phase, message)),
    }
}

/// `localhost:PORT` when the URL's host is a loopback IP (`127.x.x.x`, `[::1]`).
fn localhost_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']')?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let loopback = host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| match port {
        Some(p) if !p.is_empty() => format!("localhost:{p}"),
        _ => "localhost".to_string(),
    })
}

enum SessionError {
    Timeout(Phase),
    Closed { phase: Phase, message: String },
}

async fn session<T, E, A>(
    transport: T,
    tap: Option<&Arc<stdio::Tap>>,
    started: Instant,
    deadline: Instant,
) -> Result<Listing, SessionError>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = CrawlClient::default();
    let handler_changes = Arc::clone(&client.list_changed);
    let changes = || handler_changes.load(Ordering::SeqCst) + tap.map_or(0, |t| t.list_changed());
    let running = tokio::time::timeout_at(deadline.into(), client.serve(transport))
        .await
        .map_err(|_| SessionError::Timeout(Phase::Initialize))?
        .map_err(|e| SessionError::Closed { phase: Phase::Initialize, message: error_chain(&e) })?;
    let startup = started.elapsed();
    let info = server_info(&running);
    let list_started = Instant::now();
    let mut warnings = Vec::new();
    let mut relists = 0;
    let (tools, list_extra) = loop {
        let before = changes();
        let listed = tokio::time::timeout_at(deadline.into(), list_all(&running, tap, &mut warnings))
            .await
            .map_err(|_| SessionError::Timeout(Phase::ToolsList))??;
        if changes() == before || relists == MAX_RELISTS {
            break listed;
        }
        relists += 1;
        warnings.push("the server sent tools/list_changed while we listed; listed again".to_string());
    };
    let listing = list_started.elapsed();
    // Close in the background: the listing is complete, and the process group is killed right after anyway,
    // so waiting for a polite shutdown would only add to every server's time.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), running.cancel()).await;
    });
    Ok(Listing { info, tools, list_extra, warnings, startup, listing })
}

fn server_info(running: &RunningService<RoleClient, CrawlClient>) -> ServerInfo {
    let Some(peer) = running.peer_info() else {
        return ServerInfo::default();
    };
    let implementation = peer.server_info.clone().unwrap_or_else(|| Implementation::new("", ""));
    ServerInfo {
        name: implementation.name,
        version: implementation.version,
        title: implementation.title,
        protocol_version: Some(peer.protocol_version.to_string()),
        instructions: peer.instructions.clone(),
    }
}

/// Every page of `tools/list`, following `nextCursor`.
async fn list_all(
    running: &RunningService<RoleClient, CrawlClient>,
    tap: Option<&Arc<stdio::Tap>>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Tool>, Map<String, Value>), SessionError> {
    let mut tools = Vec::new();
    let mut extra = Map::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = std::collections::HashSet::new();
    for page in 0..MAX_PAGES {
        let mut params = PaginatedRequestParams::default();
        params.cursor = cursor.clone();
        let request = ClientRequest::ListToolsRequest(ListToolsRequest {
            method: Default::default(),
            params: Some(params),
            extensions: Default::default(),
        });
        let response = running
            .peer()
            .send_request(request)
            .await
            .map_err(|e| SessionError::Closed { phase: Phase::ToolsList, message: error_chain(&e) })?;
        // Prefer the raw JSON the transport saw; fall back to what rmcp parsed.
        let raw = match tap.and_then(|t| t.take_raw_list()) {
            Some(raw) => raw,
            None => match response {
                ServerResult::ListToolsResult(result) => serde_json::to_value(&result).unwrap_or(Value::Null),
                ServerResult::CustomResult(custom) => custom.0,
                other => {
                    return Err(SessionError::Closed {
                        phase: Phase::ToolsList,
                        message: format!("unexpected answer to tools/list: {other:?}"),
                    });
                }
            },
        };
        let Value::Object(mut map) = raw else {
            return Err(SessionError::Closed {
                phase: Phase::ToolsList,
                message: "tools/list result is not an object".into(),
            });
        };
        let next = map.remove("nextCursor").and_then(|c| c.as_str().map(str::to_string));
        match map.remove("tools") {
            Some(Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    match serde_json::from_value::<Tool>(item) {
                        Ok(tool) => tools.push(tool),
                        Err(e) => warnings.push(format!("page {page}, tools[{i}] skipped: {e}")),
                    }
                }
            }
            _ => {
                return Err(SessionError::Closed {
                    phase: Phase::ToolsList,
                    message: "tools/list result has no \"tools\" array".into(),
                });
            }
        }
        if page == 0 {
            map.remove("resultType");
            extra = map;
        }
        match next {
            Some(next) if !next.is_empty() => {
                if !seen_cursors.insert(next.clone()) {
                    warnings.push(format!("the server repeated cursor {next:?}; stopped paging"));
                    return Ok((tools, extra));
                }
                cursor = Some(next);
            }
            _ => return Ok((tools, extra)),
        }
    }
    warnings.push(format!("stopped after {MAX_PAGES} pages of tools/list"));
    Ok((tools, extra))
}

fn http_transport(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<impl rmcp::transport::Transport<RoleClient> + 'static, McpError> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|e| McpError::Spec(format!("header name {k:?}: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(v.trim())
            .map_err(|e| McpError::Spec(format!("header {k:?}: {e}")))?;
        map.insert(name, value);
    }
    // Headers go on the reqwest client (not rmcp's custom headers) so `Host` and `Authorization` work too.
    let client = reqwest::Client::builder()
        .default_headers(map)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| McpError::Connect { url: url.to_string(), message: e.to_string() })?;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    Ok(StreamableHttpClientTransport::with_client(client, config))
}

/// Turn what rmcp said about a failed HTTP session into our error.
fn http_error(url: &str, phase: Phase, message: String) -> McpError {
    let lower = message.to_ascii_lowercase();
    for status in [401u16, 403, 404, 405, 429, 500, 502, 503] {
        if lower.contains(&format!("http {status}"))
            || lower.contains(&format!("status: {status}"))
            || lower.contains(&format!("{status} "))
        {
            return McpError::Http { status, url: url.to_string() };
        }
    }
    if lower.contains("auth required") || lower.contains("unauthorized") {
        return McpError::Http { status: 401, url: url.to_string() };
    }
    if lower.contains("forbidden") || lower.contains("insufficient scope") {
        return McpError::Http { status: 403, url: url.to_string() };
    }
    if lower.contains("session expired") || lower.contains("not found") {
        return McpError::Http { status: 404, url: url.to_string() };
    }
    if lower.contains("connect")
        || lower.contains("dns")
        || lower.contains("refused")
        || lower.contains("error sending request")
    {
        return McpError::Connect { url: url.to_string(), message };
    }
    McpError::Protocol { phase, message, stderr: String::new() }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_failures_become_statuses_or_connection_errors() {
        let url = "http://h/mcp";
        let status = |m: &str| match http_error(url, Phase::Initialize, m.to_string()) {
            McpError::Http { status, .. } => Some(status),
            _ => None,
        };
        assert_eq!(status("Send message error: UnexpectedServerResponse(\"HTTP 401 Unauthorized\")"), Some(401));
        assert_eq!(status("Auth required"), Some(401));
        assert_eq!(status("HTTP 403 Forbidden: Invalid Host"), Some(403));
        assert_eq!(status("Session expired (HTTP 404)"), Some(404));
        assert!(matches!(
            http_error(url, Phase::Initialize, "error sending request for url".into()),
            McpError::Connect { .. }
        ));
        assert!(matches!(http_error(url, Phase::ToolsList, "bad frame".into()), McpError::Protocol { .. }));
    }

    #[test]
    fn loopback_urls_get_a_localhost_host() {
        assert_eq!(localhost_host("http://127.0.0.1:8931/mcp").as_deref(), Some("localhost:8931"));
        assert_eq!(localhost_host("http://[::1]:80/mcp").as_deref(), Some("localhost:80"));
        assert_eq!(localhost_host("http://127.0.0.1/mcp").as_deref(), Some("localhost"));
        assert_eq!(localhost_host("http://example.com:80/mcp"), None);
        assert_eq!(localhost_host("http://10.0.0.1/mcp"), None);
    }

    #[test]
    fn only_timeouts_connections_and_server_errors_are_retried() {
        let timeout = McpError::Timeout { phase: Phase::Initialize, secs: 1.0, stderr: String::new() };
        assert!(timeout.is_transient());
        assert!(McpError::Http { status: 503, url: String::new() }.is_transient());
        assert!(!McpError::Http { status: 401, url: String::new() }.is_transient());
        assert!(!McpError::Exited { code: Some(1), stderr: String::new() }.is_transient());
        assert!(!McpError::CommandNotFound { command: "x".into() }.is_transient());
    }

    #[test]
    fn errors_quote_stderr_on_their_own_lines() {
        let e = McpError::Exited { code: Some(3), stderr: "boom\nbang".into() };
        assert_eq!(e.to_string(), "exited with code 3; last stderr lines:\nboom\nbang");
        assert_eq!(McpError::Exited { code: None, stderr: String::new() }.to_string(), "exited with a signal");
    }
}
