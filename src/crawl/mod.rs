//! Crawling many servers: bounded concurrency, a deadline per server, one retry for transient failures, and
//! a result for every server, delivered as each one finishes.
//!
//! The runner knows nothing about storage or output: results go out through a channel so the command can
//! store each success in the catalogue the moment it arrives (a crash half-way keeps what was listed) and
//! draw progress. Sources (`sources`) only produce [`crate::model::ServerSpec`]s; the MCP session lives in
//! [`crate::mcp`].

pub mod queue;
pub mod registry;
pub mod sources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::mcp::{self, ListOptions, Listing, McpError};
use crate::model::ServerSpec;
use crate::sandbox::Sandbox;

/// How a crawl runs.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Servers crawled at once.
    pub concurrency: usize,
    /// Deadline per server and attempt.
    pub timeout: Duration,
    /// Attempts after a transient failure (a timeout, a dropped connection, HTTP 429/5xx).
    pub retries: usize,
    /// The sandbox for the stdio servers of [`Job`]s marked `sandboxed`.
    pub sandbox: Option<Arc<Sandbox>>,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        CrawlOptions { concurrency: default_concurrency(), timeout: Duration::from_secs(30), retries: 1, sandbox: None }
    }
}

/// One server to crawl.
#[derive(Debug, Clone)]
pub struct Job {
    pub spec: ServerSpec,
    /// Start it inside [`CrawlOptions::sandbox`]. A sandboxed job without a sandbox is never started.
    pub sandboxed: bool,
}

impl From<ServerSpec> for Job {
    fn from(spec: ServerSpec) -> Job {
        Job { spec, sandboxed: false }
    }
}

/// Twice the core count: a crawl mostly waits on servers starting, so more than one per core pays off, but
/// each server is a process (often a node runtime) competing for the same cores.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2).clamp(2, 16)
}

/// The outcome for one server.
#[derive(Debug, Clone)]
pub struct CrawlResult {
    /// Position in the input, so results can be reported in input order.
    pub index: usize,
    pub spec: ServerSpec,
    pub outcome: Result<Listing, McpError>,
    pub attempts: usize,
    pub elapsed: Duration,
}

/// Crawl every spec; results arrive on the returned channel as they finish (one per spec).
pub fn crawl_all(jobs: Vec<Job>, options: CrawlOptions) -> mpsc::UnboundedReceiver<CrawlResult> {
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    for (index, job) in jobs.into_iter().enumerate() {
        let tx = tx.clone();
        let permits = Arc::clone(&permits);
        let options = options.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let result = crawl_one(index, job, &options).await;
            let _ = tx.send(result);
        });
    }
    rx
}

/// One server, with the retry.
pub async fn crawl_one(index: usize, job: Job, options: &CrawlOptions) -> CrawlResult {
    let started = Instant::now();
    let Job { spec, sandboxed } = job;
    let sandbox = if sandboxed { options.sandbox.clone() } else { None };
    if sandboxed && sandbox.is_none() && matches!(spec.transport, crate::model::Transport::Stdio { .. }) {
        let outcome = Err(McpError::Sandbox(crate::sandbox::SandboxError::Setup(
            "this server is to be sandboxed, but no sandbox was set up".into(),
        )));
        return CrawlResult { index, spec, outcome, attempts: 0, elapsed: started.elapsed() };
    }
    let list_options = ListOptions { timeout: options.timeout, sandbox, ..ListOptions::default() };
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        // A panic inside one session (a bug in us or in rmcp) must become this server's error, not end the crawl.
        let run = tokio::spawn({
            let spec = spec.clone();
            let list_options = list_options.clone();
            async move { mcp::list_tools(&spec, &list_options).await }
        });
        let outcome = match run.await {
            Ok(outcome) => outcome,
            Err(e) => Err(McpError::Protocol {
                phase: mcp::Phase::Start,
                message: format!("the crawl of this server failed internally: {e}"),
                stderr: String::new(),
            }),
        };
        match outcome {
            Err(e) if e.is_transient() && attempts <= options.retries => {
                tracing::info!("{}: {e}; retrying", spec.name);
            }
            other => break other,
        }
    };
    CrawlResult { index, spec, outcome, attempts, elapsed: started.elapsed() }
}
