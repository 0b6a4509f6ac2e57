//! The stdio frontend: the client talks newline-delimited JSON-RPC on our stdin and stdout.
//!
//! Stdin is read on a dedicated thread with blocking reads and every message is decided and forwarded on that
//! same thread; stdout is one locked writer shared by the two directions. Logs never go to stdout: it carries
//! the MCP stream. When stdin ends the upstream's stdin is closed; when the upstream exits, requests in flight
//! are answered with errors and the proxy exits with an error naming the exit status: restarting a server
//! whose state is unknown behind an agent's back could hide the failure, so it is restarted only when the user
//! asked for it (`--restart N`, see [`super::supervisor`]), and then the exit is still logged and audited.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::lines::{Frame, LineReader};
use super::relay::{Relay, ToClient, error_message};
use super::session::{Outbox, Session};
use super::upstream::Events;
use super::{Config, ProxyError};

struct Stdout {
    out: Mutex<std::io::Stdout>,
}

impl Outbox for Stdout {
    fn send(&self, message: ToClient) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(&message.bytes).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
            tracing::debug!("writing to stdout: {e}");
        }
    }
}

enum End {
    ClientClosed,
    UpstreamClosed(String),
}

struct StdioEvents {
    session: Arc<Session>,
    end: mpsc::UnboundedSender<End>,
}

impl Events for StdioEvents {
    fn message(&self, raw: &[u8]) -> Vec<String> {
        self.session.from_upstream(raw)
    }

    fn closed(&self, why: &str) {
        self.session.upstream_closed(why);
        let _ = self.end.send(End::UpstreamClosed(why.to_string()));
    }
}

pub(super) async fn serve(config: Config) -> Result<(), ProxyError> {
    let runtime = tokio::runtime::Handle::current();
    let connected = super::connect(&config, &runtime)?;
    let session_id = format!("stdio-{}", uuid::Uuid::new_v4());
    let relay = Relay::new(config.gate, config.audit, session_id, None).with_pinned(config.pinned);
    let stdout: Arc<dyn Outbox> = Arc::new(Stdout { out: Mutex::new(std::io::stdout()) });
    let session =
        Session::connected(relay, Arc::clone(&stdout), &connected, config.call_timeout, runtime, config.approvals);
    let (end_tx, mut end_rx) = mpsc::unbounded_channel();
    connected.start(Arc::new(StdioEvents { session: Arc::clone(&session), end: end_tx.clone() }));

    let max = config.max_message;
    let reader_session = Arc::clone(&session);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = LineReader::new(stdin.lock(), max);
        loop {
            match reader.next_frame() {
                Ok(Frame::Line(line)) => {
                    reader_session.from_client(&line);
                }
                Ok(Frame::TooLong(n)) => {
                    tracing::warn!("refused a {n}-byte message from the client (limit {max} bytes)");
                    let message = format!("Invalid Request: message larger than {max} bytes");
                    stdout.send(error_message(Value::Null, -32600, &message));
                }
                Ok(Frame::Eof) => break,
                Err(e) => {
                    tracing::warn!("reading stdin: {e}");
                    break;
                }
            }
        }
        let _ = end_tx.send(End::ClientClosed);
    });

    match end_rx.recv().await {
        Some(End::UpstreamClosed(why)) => Err(ProxyError::UpstreamExited(why)),
        Some(End::ClientClosed) | None => {
            session.close_upstream();
            // Give the server a moment to exit cleanly; its exit is no longer an error.
            let _ = tokio::time::timeout(Duration::from_secs(3), end_rx.recv()).await;
            Ok(())
        }
    }
}
