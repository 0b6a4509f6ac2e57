//! `toolwarden proxy`: put the policy between an MCP client and a server.
//!
//! Flags are resolved here into a [`crate::proxy::Config`]; the proxy itself never sees clap. `--policy` is
//! compiled by the policy engine and enforced by [`crate::proxy::policy_gate::PolicyGate`]; a policy that does
//! not pass `policy check` stops the proxy from starting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::time::parse_duration;
use super::{Globals, Outcome, UsageError};
use crate::journal::Journal;
use crate::proxy::approval::Approvals;
use crate::proxy::audit::Audit;
use crate::proxy::counters::{CounterStore, MemoryCounters};
use crate::proxy::gate::Gate;
use crate::proxy::policy_gate::PolicyGate;
use crate::proxy::redis_approvals::SharedQueue;
use crate::proxy::redis_counters::{RedisCounters, StateFailure};
use crate::proxy::relay::Pinned;
use crate::proxy::reload::ReloadingGate;
use crate::proxy::sqlite_counters::SqliteCounters;
use crate::proxy::supervisor;
use crate::proxy::upstream::UpstreamSpec;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  toolwarden proxy --policy policy.json -- npx -y @modelcontextprotocol/server-everything\n  \
toolwarden proxy --policy policy.json --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3001/mcp"
)]
pub struct Args {
    /// The policy to enforce (JSON)
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Serve Streamable HTTP at http://ADDR/mcp instead of stdio (a bare port binds 127.0.0.1)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Append one JSON line per decision to this file
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Record the raw arguments in the audit log (default: only their SHA-256)
    #[arg(long, requires = "audit")]
    pub audit_args: bool,
    /// The upstream server's Streamable HTTP endpoint (instead of a command after `--`)
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub upstream: Option<String>,
    /// A header sent to the HTTP upstream, e.g. "Authorization: Bearer …" (repeatable)
    #[arg(long, value_name = "K: V", requires = "upstream")]
    pub header: Vec<String>,
    /// Seconds a tools/call may take upstream before the client gets an error
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub call_timeout: f64,
    /// HTTP bearer tokens: a JSON object mapping each token to the identity it stands for
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub auth_tokens: Option<PathBuf>,
    /// A host name accepted in Host and Origin headers besides loopback (repeatable)
    #[arg(long, value_name = "HOST", requires = "listen")]
    pub allowed_host: Vec<String>,
    /// HTTP: the most sessions open at once (each may run its own upstream child)
    #[arg(long, value_name = "N", default_value_t = 256, requires = "listen")]
    pub max_sessions: usize,
    /// HTTP: close a session unused for this many seconds (with nothing in flight)
    #[arg(long, value_name = "SECS", default_value_t = 1800, requires = "listen")]
    pub session_idle: u64,
    /// Largest message accepted from either side, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message: usize,
    /// Where rate-limit and spend counters live (default: in memory): redis://HOST:PORT/DB shares them with every
    /// proxy pointed at it (and the approval queue's decisions, across hosts); `sqlite` keeps them in the
    /// catalogue database of --data-dir, `sqlite:PATH` in a file of its own (one host, kept across restarts)
    #[arg(long, value_name = "redis://HOST:PORT/DB|sqlite[:PATH]")]
    pub state: Option<String>,
    /// Prefix of the keys in --state redis://…, one per deployment
    #[arg(long, value_name = "PREFIX", default_value = "toolwarden", requires = "state")]
    pub state_prefix: String,
    /// When --state cannot be reached: refuse calls that have limits (closed) or allow them uncounted (open)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = FailureArg::Closed, requires = "state")]
    pub state_failure: FailureArg,
    /// Don't record decisions in the catalogue's audit table (`toolwarden audit` reads it)
    #[arg(long)]
    pub no_audit_db: bool,
    /// Seconds a call that needs a person's approval waits before it is refused
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub approval_timeout: f64,
    /// An approval also admits the same tool with the same arguments for this long (e.g. 10m)
    #[arg(long, value_name = "DURATION")]
    pub approve_for: Option<String>,
    /// Only list and allow the tools of SERVER's pin (`toolwarden pin SERVER`) whose definition is unchanged
    #[arg(long, value_name = "SERVER")]
    pub require_pinned: Option<String>,
    /// Restart a crashed upstream child up to N times in a row (a child that stays up a minute resets the count);
    /// 0: the proxy exits when the child does
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "upstream")]
    pub restart: u32,
    /// Seconds to wait before the first restart; doubled for each further restart in a row, up to 30 s
    #[arg(long, value_name = "SECS", default_value_t = 1.0, requires = "restart")]
    pub restart_backoff: f64,
    /// The upstream server's command and arguments (stdio)
    #[arg(last = true, value_name = "CMD ARGS")]
    pub command: Vec<String>,
}

/// `--state-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailureArg {
    Closed,
    Open,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let upstream = match (&args.upstream, args.command.split_first()) {
        (Some(url), _) => {
            let headers = args.header.iter().map(|h| parse_header(h)).collect::<anyhow::Result<Vec<_>>>()?;
            UpstreamSpec::Http { url: url.clone(), headers }
        }
        (None, Some((program, rest))) => UpstreamSpec::Command { program: program.clone(), args: rest.to_vec() },
        (None, None) => {
            return Err(UsageError("name the upstream server: --upstream URL, or -- CMD ARGS...".into()).into());
        }
    };
    let listen = args.listen.as_deref().map(parse_listen).transpose()?;
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
    {
        tracing::warn!("listening on {addr}, which is reachable from other machines; consider --auth-tokens");
    }
    if !(args.call_timeout > 0.0 && args.call_timeout.is_finite()) {
        return Err(UsageError("--call-timeout must be a positive number of seconds".into()).into());
    }
    if !(args.approval_timeout > 0.0 && args.approval_timeout.is_finite()) {
        return Err(UsageError("--approval-timeout must be a positive number of seconds".into()).into());
    }
    if !(args.restart_backoff >= 0.0 && args.restart_backoff.is_finite()) {
        return Err(UsageError("--restart-backoff must be a number of seconds (0 or more)".into()).into());
    }
    let restart = (args.restart > 0)
        .then(|| supervisor::Policy::new(args.restart, Duration::from_secs_f64(args.restart_backoff)));
    let approve_for = args.approve_for.as_deref().map(|t| parse_duration("--approve-for", t)).transpose()?;
    let data_dir = g.data_dir();
    let journal = Arc::new(
        Journal::open(&data_dir)
            .with_context(|| format!("opening the catalogue database in {}", data_dir.display()))?,
    );
    let pinned = match &args.require_pinned {
        None => None,
        Some(server) => match journal.pinned_fingerprints(server)? {
            Some(tools) => Some(Arc::new(Pinned::new(server.clone(), tools))),
            None => {
                return Err(UsageError(format!(
                    "--require-pinned {server:?}: the server was never pinned in {}; crawl it and run `toolwarden pin {server}` first",
                    data_dir.display()
                ))
                .into());
            }
        },
    };
    let audit = match &args.audit {
        Some(path) => Audit::open(path, args.audit_args)?,
        None => Audit::disabled(),
    };
    let audit =
        Arc::new(if args.no_audit_db { audit } else { audit.with_journal(Arc::clone(&journal), args.audit_args) });
    // Counters outlive policy versions: a reload must not reset anyone's limits.
    let counters: Arc<dyn CounterStore> = match &args.state {
        None => Arc::new(MemoryCounters::new()),
        Some(state) => match sqlite_state(state) {
            Some(path) => {
                let path = path.map_or_else(|| data_dir.join(crate::store::DB_FILE), PathBuf::from);
                let store = SqliteCounters::open(&path, failure(&args), Arc::clone(&audit))
                    .with_context(|| format!("--state {state}: opening {}", path.display()))?;
                tracing::info!("rate-limit counters in {}", store.path().display());
                store
            }
            None => redis_counters(state, &args, &audit)?,
        },
    };
    let shared_queue = match &args.state {
        Some(url) if sqlite_state(url).is_none() => {
            Some(Arc::new(SharedQueue::new(url, &args.state_prefix).map_err(|e| UsageError(e.to_string()))?))
        }
        _ => None,
    };
    let approvals =
        Approvals::new(journal, Duration::from_secs_f64(args.approval_timeout), approve_for).with_shared(shared_queue);
    let loader = move |path: &std::path::Path| -> Result<Arc<dyn Gate>, String> {
        let gate = PolicyGate::load(path, Arc::clone(&counters))?;
        Ok(Arc::new(gate))
    };
    let gate = ReloadingGate::watch(args.policy.clone(), Box::new(loader), Arc::clone(&audit))
        .map_err(anyhow::Error::msg)
        .context("loading the policy")?;
    let auth_tokens = args.auth_tokens.as_deref().map(load_tokens).transpose()?;
    let config = crate::proxy::Config {
        upstream,
        listen,
        gate,
        audit,
        call_timeout: Duration::from_secs_f64(args.call_timeout),
        max_message: args.max_message,
        auth_tokens,
        allowed_hosts: args.allowed_host,
        max_sessions: args.max_sessions,
        session_idle: Duration::from_secs(args.session_idle.max(1)),
        approvals: Some(Arc::new(approvals)),
        pinned,
        restart,
    };
    crate::proxy::run(config)?;
    Ok(Outcome::Ok)
}

/// `--state sqlite` → `Some(None)` (the catalogue database), `sqlite:PATH` → `Some(Some(PATH))`.
fn sqlite_state(state: &str) -> Option<Option<&str>> {
    match state.strip_prefix("sqlite") {
        Some("") => Some(None),
        Some(rest) => rest.strip_prefix(':').filter(|p| !p.is_empty()).map(Some),
        None => None,
    }
}

fn failure(args: &Args) -> StateFailure {
    match args.state_failure {
        FailureArg::Closed => StateFailure::Closed,
        FailureArg::Open => StateFailure::Open,
    }
}

fn redis_counters(url: &str, args: &Args, audit: &Arc<Audit>) -> anyhow::Result<Arc<RedisCounters>> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
        return Err(UsageError(format!("--state {url:?}: expected redis://HOST:PORT/DB, sqlite or sqlite:PATH")).into());
    }
    if args.state_prefix.is_empty() {
        return Err(UsageError("--state-prefix must not be empty".into()).into());
    }
    let store = RedisCounters::new(url, &args.state_prefix, failure(args), Arc::clone(audit))
        .map_err(|e| UsageError(e.to_string()))?;
    // A replica may start before its Redis: say so, and let each call decide by --state-failure.
    if let Err(e) = store.ping() {
        tracing::warn!("rate-limit state {url} not reachable yet ({e}); calls with limits follow --state-failure");
    }
    Ok(store)
}

fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(UsageError(format!("--header {text:?}: expected \"Name: value\"")).into()),
    }
}

pub(super) fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let text = text.strip_prefix("localhost:").map(|p| format!("127.0.0.1:{p}")).unwrap_or_else(|| text.to_string());
    text.parse().map_err(|_| UsageError(format!("--listen {text:?}: expected HOST:PORT or PORT")).into())
}

pub(super) fn load_tokens(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tokens: HashMap<String, String> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON object mapping tokens to identities", path.display()))?;
    if tokens.is_empty() || tokens.keys().any(|t| t.len() < 16) {
        return Err(UsageError(format!(
            "{}: tokens must be at least 16 characters (and at least one)",
            path.display()
        ))
        .into());
    }
    Ok(tokens)
}
