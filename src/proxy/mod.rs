//! The enforcement proxy: sits between one MCP client and one upstream server, relays everything, filters
//! `tools/list`, and decides every `tools/call` before it is forwarded.
//!
//! Layers, from pure to effectful: [`gate`] (the policy as the proxy sees it), [`policy_gate`]
//! (`policy::decide` behind that gate), [`counters`] (windowed rate and spend limits; [`redis_counters`] shares them between replicas,
//! [`sqlite_counters`] keeps them in a file across restarts), [`relay`] (one
//! session's routing and rewriting, no I/O), [`audit`] (one JSON line per decision), [`session`] (a relay wired to its peers, with call deadlines), then the
//! transports: [`stdio`] and [`http`] frontends, [`upstream`] children and HTTP endpoints, and [`supervisor`]
//! (`--restart`: a crashed child restarted with back-off and the client's handshake replayed). The relay works on
//! raw JSON-RPC rather than re-terminating MCP with typed handlers, so whatever the two peers say to each
//! other, including protocol features newer than this build, passes unchanged; see `doc/proxy.md`.

pub mod approval;
pub mod audit;
pub mod counters;
pub mod gate;
pub mod http;
pub mod lines;
pub mod link;
pub mod policy_gate;
mod probe;
pub mod redis_approvals;
pub mod redis_counters;
pub mod relay;
pub mod reload;
pub mod session;
pub mod sqlite_counters;
mod stdio;
pub mod strict;
pub mod supervisor;
#[cfg(test)]
mod test_redis;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use audit::Audit;
use gate::Gate;
use upstream::UpstreamSpec;

/// Everything wrong that stops the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("starting the upstream server `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("the upstream server exited ({0})")]
    UpstreamExited(String),
    #[error("invalid header `{0}`; expected \"Name: value\"")]
    Header(String),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

/// A resolved proxy configuration.
pub struct Config {
    pub upstream: UpstreamSpec,
    /// Serve Streamable HTTP here; stdio when `None`.
    pub listen: Option<SocketAddr>,
    pub gate: Arc<dyn Gate>,
    pub audit: Arc<Audit>,
    /// How long a forwarded `tools/call` may take before the client gets an error.
    pub call_timeout: Duration,
    /// Largest JSON-RPC message (a stdio line or an HTTP body) accepted from either side.
    pub max_message: usize,
    /// HTTP bearer token → identity; when set, every HTTP request needs a known token.
    pub auth_tokens: Option<HashMap<String, String>>,
    /// Host names accepted in `Host` and `Origin` headers besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// HTTP: at most this many sessions at once (each may run a child process).
    pub max_sessions: usize,
    /// HTTP: a session unused this long, with nothing in flight, is closed.
    pub session_idle: Duration,
    /// Ask a person about calls the policy sends for approval; `None` refuses them.
    pub approvals: Option<Arc<approval::Approvals>>,
    /// `--require-pinned`: only the pinned definitions are listed and callable.
    pub pinned: Option<Arc<relay::Pinned>>,
    /// `--restart`: a child upstream that crashes is restarted (`None`, or 0 restarts: the proxy gives up).
    pub restart: Option<supervisor::Policy>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("upstream", &self.upstream)
            .field("listen", &self.listen)
            .field("call_timeout", &self.call_timeout)
            .field("max_message", &self.max_message)
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// Start (or prepare to reach) the upstream of one session: a child under a supervisor when `--restart`
/// allows restarts, else as it is.
fn connect(config: &Config, runtime: &tokio::runtime::Handle) -> Result<upstream::Connected, ProxyError> {
    match (&config.upstream, config.restart) {
        (UpstreamSpec::Command { program, args }, Some(policy)) if policy.max_restarts > 0 => {
            let audit = Arc::clone(&config.audit);
            supervisor::supervise(program, args, config.max_message, policy, config.call_timeout, audit, runtime)
        }
        (spec, _) => upstream::connect(spec, config.max_message, runtime),
    }
}

/// Run the proxy until the client goes away (stdio), the upstream exits (stdio), or forever (HTTP).
pub fn run(config: Config) -> Result<(), ProxyError> {
    // HTTP sessions run on the runtime: one worker per CPU this process may use (its affinity mask, so a proxy
    // pinned to one core does not juggle two workers on it). The stdio path reads and writes on threads of its
    // own and needs the runtime only for timers and held calls: two workers at most.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = if config.listen.is_some() { cpus } else { cpus.min(2) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(ProxyError::Runtime)?;
    let audit = Arc::clone(&config.audit);
    let result = runtime.block_on(async move {
        match config.listen {
            Some(addr) => http::serve(config, addr).await,
            None => stdio::serve(config).await,
        }
    });
    // The stdin thread may still be blocked in a read; don't wait for it.
    runtime.shutdown_background();
    audit.finish();
    result
}
