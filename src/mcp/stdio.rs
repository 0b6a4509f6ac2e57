//! Stdio servers: a child process in its own process group, a JSON-RPC transport over its pipes that reads
//! defensively, and a bounded buffer of what it printed on stderr.
//!
//! We read stdout ourselves instead of using rmcp's child-process transport for three reasons real servers
//! force on us: a log line printed to stdout before the first message must be skipped with a warning, not
//! fail the session; a server that prints megabytes must not make us hold megabytes per line; and the raw
//! JSON of each `tools/list` result must survive, so keys rmcp's types do not know (`cacheScope`, vendor
//! keys on a tool) reach the catalogue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many warnings one session keeps (a server that prints a million log lines gets one summary).
const MAX_WARNINGS: usize = 20;

/// What the transport saw that the MCP layer does not: raw list results, and warnings.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    state: Mutex<TapState>,
}

#[derive(Debug, Default)]
struct TapState {
    /// Ids (as JSON text) of `tools/list` requests in flight.
    list_ids: HashSet<String>,
    /// Raw `result` objects of answered `tools/list` requests, by id.
    raw_lists: HashMap<String, Value>,
    warnings: Vec<String>,
    skipped_lines: usize,
    /// `notifications/tools/list_changed` seen, counted here because the reader sees it before the response
    /// that follows it (rmcp's handler callback runs later, on its own task).
    list_changed: usize,
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn warn(&self, text: String) {
        let mut state = self.lock();
        if state.warnings.len() < MAX_WARNINGS {
            state.warnings.push(text);
        }
    }

    /// Take the raw result of the most recent `tools/list` answer, if one was seen.
    pub(crate) fn take_raw_list(&self) -> Option<Value> {
        let mut state = self.lock();
        let key = state.raw_lists.keys().next().cloned()?;
        state.raw_lists.remove(&key)
    }

    pub(crate) fn list_changed(&self) -> usize {
        self.lock().list_changed
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        let state = self.lock();
        let mut out = state.warnings.clone();
        if state.skipped_lines > 0 {
            out.push(format!("skipped {} line(s) on stdout that were not JSON-RPC messages", state.skipped_lines));
        }
        out
    }
}

/// The last bytes a child wrote on stderr, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct StderrTail {
    buf: Arc<Mutex<VecDeque<u8>>>,
    cap: usize,
}

impl StderrTail {
    pub(crate) fn new(cap: usize) -> StderrTail {
        StderrTail { buf: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(64 * 1024)))), cap }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for &b in bytes.iter().rev().take(self.cap).rev() {
            if buf.len() == self.cap {
                buf.pop_front();
            }
            buf.push_back(b);
        }
    }

    /// The last `lines` lines, lossily decoded.
    pub(crate) fn last_lines(&self, lines: usize) -> String {
        let buf = self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bytes: Vec<u8> = buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Drain a child's stderr into the buffer until it closes.
    pub(crate) fn spawn_reader(&self, mut stderr: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
        let tail = self.clone();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                tail.push(&chunk[..n]);
            }
        })
    }
}

/// A client-side JSON-RPC transport over a child's stdin and stdout.
pub(crate) struct StdioTransport {
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    incoming: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    tap: Arc<Tap>,
}

impl StdioTransport {
    pub(crate) fn new(
        stdin: ChildStdin,
        stdout: impl AsyncRead + Unpin + Send + 'static,
        tap: Arc<Tap>,
        max_line: usize,
    ) -> StdioTransport {
        let (tx, incoming) = mpsc::channel(64);
        tokio::spawn(read_messages(BufReader::new(stdout), tx, Arc::clone(&tap), max_line));
        StdioTransport { stdin: Arc::new(tokio::sync::Mutex::new(Some(stdin))), incoming, tap }
    }
}

impl Transport<RoleClient> for StdioTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let stdin = Arc::clone(&self.stdin);
        let tap = Arc::clone(&self.tap);
        async move {
            let value = serde_json::to_value(&item).map_err(std::io::Error::other)?;
            if value.get("method").and_then(Value::as_str) == Some("tools/list")
                && let Some(id) = value.get("id")
            {
                tap.lock().list_ids.insert(id.to_string());
            }
            let mut line = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
            line.push(b'\n');
            let mut guard = stdin.lock().await;
            let Some(stdin) = guard.as_mut() else {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdin closed"));
            };
            stdin.write_all(&line).await?;
            stdin.flush().await
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Closing stdin is the polite way to ask a stdio server to exit; the process group is killed anyway
        // when the child handle drops.
        self.stdin.lock().await.take();
        self.incoming.close();
        Ok(())
    }
}

/// Read newline-delimited JSON-RPC from stdout until it closes, skipping what is not a message.
async fn read_messages(
    mut reader: BufReader<impl AsyncRead + Unpin>,
    tx: mpsc::Sender<RxJsonRpcMessage<RoleClient>>,
    tap: Arc<Tap>,
    max_line: usize,
) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line, max_line).await {
            Ok(LineRead::Eof) => return,
            Ok(LineRead::TooLong(len)) => {
                tap.warn(format!("skipped a line of {len} bytes on stdout (limit {max_line} bytes)"));
                continue;
            }
            Ok(LineRead::Line) => {}
            Err(e) => {
                tap.warn(format!("reading stdout: {e}"));
                return;
            }
        }
        let text = trim_line(&line);
        if text.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_slice(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let mut state = tap.lock();
                if state.skipped_lines == 0 {
                    let shown = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
                    drop(state);
                    tap.warn(format!("skipped non-JSON-RPC output on stdout: {}", shown.escape_debug()));
                    state = tap.lock();
                }
                state.skipped_lines += 1;
                continue;
            }
        };
        if value.get("method").and_then(Value::as_str) == Some("notifications/tools/list_changed") {
            tap.lock().list_changed += 1;
        }
        if let (Some(id), Some(result)) = (value.get("id"), value.get("result")) {
            let mut state = tap.lock();
            let key = id.to_string();
            if state.list_ids.remove(&key) {
                state.raw_lists.insert(key, result.clone());
            }
        }
        match serde_json::from_value::<RxJsonRpcMessage<RoleClient>>(value) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    return;
                }
            }
            Err(e) => tap.warn(format!("skipped a JSON message that is not valid JSON-RPC: {e}")),
        }
    }
}

enum LineRead {
    Line,
    Eof,
    /// The line was longer than the limit and was discarded (its length so far).
    TooLong(usize),
}

/// Read one line into `out`, holding at most `max` bytes; a longer line is consumed and dropped.
async fn read_bounded_line(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    let mut total = 0usize;
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if too_long {
                LineRead::TooLong(total)
            } else if total == 0 {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        total += n;
        if !too_long {
            if out.len() + n > max {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        reader.consume(n);
        if done {
            return Ok(if too_long { LineRead::TooLong(total) } else { LineRead::Line });
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    // A UTF-8 byte-order mark before the first message is noise some Windows-built servers emit.
    let slice = &line[start..end.max(start)];
    slice.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(slice)
}

/// A started stdio server: the transport to it, its stderr, and the handle that ends it.
pub(crate) struct Child {
    pub(crate) transport: StdioTransport,
    pub(crate) stderr: StderrTail,
    /// Ends when the child closes stderr; waiting on it makes sure its last words are in the tail.
    pub(crate) stderr_done: JoinHandle<()>,
    pub(crate) tap: Arc<Tap>,
    pub(crate) handle: ChildHandle,
}

/// Owns the process (group); kills it when dropped.
pub(crate) struct ChildHandle {
    child: Option<Box<dyn process_wrap::tokio::ChildWrapper>>,
    /// A sandboxed child's cgroup: dropped after the child is killed, it kills what is left.
    cgroup: Option<crate::sandbox::Cgroup>,
}

impl ChildHandle {
    /// How often a sandboxed child could not start a process because of its limit.
    pub(crate) fn refused_forks(&self) -> u64 {
        self.cgroup.as_ref().map_or(0, crate::sandbox::Cgroup::refused_forks)
    }

    /// The exit code if the child has exited or exits within `wait` (`Some(None)`: killed by a signal).
    pub(crate) async fn exit_status(&mut self, wait: Duration) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        let until = tokio::time::Instant::now() + wait;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Ok(None) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return None,
            }
        }
    }

    /// Kill the whole process group now (the child may have started children of its own).
    pub(crate) fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            // Reap it so it does not linger as a zombie.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
    }
}

impl Drop for ChildHandle {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Start `command` with piped stdio in a new process group (inside `sandbox`, when given).
#[allow(unsafe_code)] // the sandbox's limits are set between fork and exec
pub(crate) fn spawn(
    command: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&str>,
    max_line: usize,
    sandbox: Option<&crate::sandbox::Sandbox>,
) -> Result<Child, super::McpError> {
    use process_wrap::tokio::CommandWrap;
    let mut wrapped = sandbox.map(|s| s.wrap(command, args, env, cwd)).transpose()?;
    let program = wrapped.as_ref().map_or_else(|| std::ffi::OsString::from(command), |w| w.program.clone().into());
    let mut wrap = CommandWrap::with_new(program, |cmd| {
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        match &wrapped {
            Some(w) => {
                // Nothing of the crawler's environment: only what the sandbox passes (the spec's variables).
                cmd.args(&w.args).env_clear().envs(&w.env);
                let setup = w.in_child();
                // SAFETY: the hook only calls setrlimit, open, write and close (async-signal-safe).
                unsafe {
                    cmd.pre_exec(setup);
                }
            }
            None => {
                cmd.args(args).envs(env);
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
            }
        }
    });
    #[cfg(unix)]
    wrap.wrap(process_wrap::tokio::ProcessGroup::leader());
    wrap.wrap(process_wrap::tokio::KillOnDrop);
    let mut child = wrap.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => super::McpError::CommandNotFound { command: command.to_string() },
        _ => super::McpError::Spawn { command: command.to_string(), message: e.to_string() },
    })?;
    let missing = |what: &str| super::McpError::Spawn { command: command.to_string(), message: format!("no {what}") };
    let stdin = child.stdin().take().ok_or_else(|| missing("stdin"))?;
    let stdout = child.stdout().take().ok_or_else(|| missing("stdout"))?;
    let stderr_pipe = child.stderr().take().ok_or_else(|| missing("stderr"))?;
    let stderr = StderrTail::new(super::STDERR_TAIL);
    let stderr_done = stderr.spawn_reader(stderr_pipe);
    let tap = Arc::new(Tap::default());
    let transport = StdioTransport::new(stdin, stdout, Arc::clone(&tap), max_line);
    let cgroup = wrapped.as_mut().and_then(|w| w.cgroup.take());
    Ok(Child { transport, stderr, stderr_done, tap, handle: ChildHandle { child: Some(child), cgroup } })
}

#[cfg(test)]
#[path = "stdio_tests.rs"]
mod tests;
