//! The distributed crawl's two long-running commands: `toolwarden crawl-worker redis://…` (take jobs, crawl
//! them sandboxed, publish the listings) and `toolwarden ingest redis://…` (store the listings in the
//! catalogue, then acknowledge them). `crawl --enqueue redis://…` puts the jobs on the queue. The protocol
//! lives in [`crate::crawl::queue`].

use std::time::{Duration, Instant};

use anyhow::Context;

use super::output;
use super::{Globals, Outcome, UsageError};
use crate::catalogue::Catalogue;
use crate::crawl::queue::{self, Delivered, Job, Outcome as Listed, Queue};
use crate::crawl::{self, CrawlOptions};
use crate::model::ServerSnapshot;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The Redis that carries the queue: redis://HOST:PORT/DB
    #[arg(value_name = "REDIS_URL")]
    pub url: String,
    /// Key prefix of the queue's streams
    #[arg(long, default_value = "toolwarden")]
    pub prefix: String,
    /// This worker's name in the consumer group [default: HOST-PID]
    #[arg(long)]
    pub name: Option<String>,
    /// Servers crawled at once by this worker [default: twice the core count]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Deadline per server, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Take over a job another worker has held this long without a result (it died) [default: 2 × timeout + 30]
    #[arg(long, value_name = "SECS")]
    pub claim_after: Option<f64>,
    /// Exit after this long without a job (default: run until stopped)
    #[arg(long, value_name = "SECS")]
    pub until_idle: Option<f64>,
    /// The sandbox flags of `crawl`; a worker sandboxes every stdio server unless given --no-sandbox
    #[command(flatten)]
    pub sandbox: super::crawl::SandboxArgs,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The Redis that carries the queue: redis://HOST:PORT/DB
    #[arg(value_name = "REDIS_URL")]
    pub url: String,
    /// Key prefix of the queue's streams
    #[arg(long, default_value = "toolwarden")]
    pub prefix: String,
    /// This ingester's name in the consumer group (a restarted ingester takes its own unstored results first)
    #[arg(long, default_value = "ingest")]
    pub name: String,
    /// Take over results another ingester has held this long without storing them
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub claim_after: f64,
    /// Exit once every enqueued job is crawled and stored and nothing arrived for this long (default: run
    /// until stopped)
    #[arg(long, value_name = "SECS")]
    pub until_idle: Option<f64>,
}

fn secs(value: f64, flag: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return Err(UsageError(format!("{flag} must be a positive number of seconds")).into());
    }
    Ok(Duration::from_secs_f64(value))
}

pub(super) fn run_worker(args: WorkerArgs, g: &Globals) -> anyhow::Result<Outcome> {
    let timeout = secs(args.timeout, "--timeout")?;
    let claim_after = match args.claim_after {
        Some(s) => secs(s, "--claim-after")?,
        None => timeout * 2 + Duration::from_secs(30),
    };
    let until_idle = args.until_idle.map(|s| secs(s, "--until-idle")).transpose()?;
    let concurrency = args.concurrency.unwrap_or_else(crawl::default_concurrency).max(1);
    let sandbox = if args.sandbox.no_sandbox { None } else { Some(args.sandbox.make()?) };
    let name = args.name.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let mut queue = Queue::open(&args.url, &args.prefix)?;
    if !g.quiet {
        eprintln!("worker {name}: taking jobs from {}", queue::redact(&args.url));
    }
    let options = CrawlOptions { concurrency, timeout, retries: 1, sandbox: sandbox.clone() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut idle_since = Instant::now();
    let mut done = 0usize;
    loop {
        let delivered = queue.take_jobs(&name, concurrency, claim_after, Duration::from_secs(1))?;
        if delivered.is_empty() {
            if until_idle.is_some_and(|idle| idle_since.elapsed() >= idle) {
                break;
            }
            continue;
        }
        let mut ids = Vec::new();
        let mut jobs = Vec::new();
        for Delivered { id, body, .. } in delivered {
            match body {
                Ok(Job { spec, sandboxed, .. }) => {
                    ids.push(id);
                    jobs.push(crawl::Job { spec, sandboxed: sandboxed || sandbox.is_some() });
                }
                Err(why) => {
                    tracing::warn!("{why}; it is published as failed");
                    let failed = Listed {
                        server: String::new(),
                        spec: crate::model::ServerSpec {
                            name: String::new(),
                            transport: crate::model::Transport::Http {
                                url: String::new(),
                                headers: Default::default(),
                            },
                        },
                        worker: name.clone(),
                        attempts: 0,
                        elapsed_ms: 0,
                        error: Some(why),
                        info: None,
                        tools: Vec::new(),
                        list_extra: Default::default(),
                        warnings: Vec::new(),
                    };
                    queue.publish(&id, &failed)?;
                }
            }
        }
        runtime.block_on(async {
            let mut rx = crawl::crawl_all(jobs, options.clone());
            while let Some(result) = rx.recv().await {
                let id = &ids[result.index];
                let listed = listed(result, &name);
                if !g.quiet {
                    match &listed.error {
                        None => eprintln!("{}: {} tools", output::clean(&listed.server, 60), listed.tools.len()),
                        Some(e) => {
                            eprintln!("{}: failed: {}", output::clean(&listed.server, 60), output::clean(e, 300))
                        }
                    }
                }
                queue.publish(id, &listed)?;
                done += 1;
            }
            anyhow::Ok(())
        })?;
        idle_since = Instant::now();
    }
    if !g.quiet {
        eprintln!("worker {name}: {done} jobs crawled; idle, exiting");
    }
    Ok(Outcome::Ok)
}

/// A crawl result as published.
fn listed(result: crawl::CrawlResult, worker: &str) -> Listed {
    let (error, listing) = match result.outcome {
        Ok(listing) => (None, Some(listing)),
        Err(e) => (Some(e.to_string()), None),
    };
    let ok = listing.is_some();
    let listing = listing.unwrap_or_default();
    Listed {
        server: result.spec.name.clone(),
        spec: result.spec.redacted(),
        worker: worker.to_string(),
        attempts: result.attempts,
        elapsed_ms: result.elapsed.as_millis() as u64,
        error,
        info: ok.then(|| listing.info.clone()),
        tools: listing.tools,
        list_extra: listing.list_extra,
        warnings: listing.warnings,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "worker".into(), |h| h.trim().to_string())
}

/// Results stored in one transaction (and one index commit) at most.
const BATCH: usize = 256;
/// How long the ingester waits for more results before storing what it has.
const GATHER: Duration = Duration::from_millis(300);

pub(super) fn run_ingest(args: IngestArgs, g: &Globals) -> anyhow::Result<Outcome> {
    let claim_after = secs(args.claim_after, "--claim-after")?;
    let until_idle = args.until_idle.map(|s| secs(s, "--until-idle")).transpose()?;
    let classifier = g.classifier()?;
    let data_dir = g.data_dir();
    let mut catalogue =
        Catalogue::open(&data_dir).with_context(|| format!("opening the catalogue in {}", data_dir.display()))?;
    let mut queue = Queue::open(&args.url, &args.prefix)?;
    if !g.quiet {
        eprintln!("ingest {}: storing results from {} in {}", args.name, queue::redact(&args.url), data_dir.display());
    }
    let (mut stored, mut failed) = (0usize, 0usize);
    let mut idle_since = Instant::now();
    loop {
        let mut batch = queue.take_results(&args.name, BATCH, claim_after, Duration::from_secs(1), true)?;
        if batch.is_empty() {
            if until_idle.is_some_and(|idle| idle_since.elapsed() >= idle) && queue.all_stored()? {
                break;
            }
            continue;
        }
        // Results trickle in one by one; each store ends with an index commit, so a short wait for more pays
        // for itself many times over.
        let gathering = Instant::now();
        while batch.len() < BATCH && gathering.elapsed() < GATHER {
            let more =
                queue.take_results(&args.name, BATCH - batch.len(), claim_after, Duration::from_millis(50), false)?;
            let seen: std::collections::HashSet<String> = batch.iter().map(|d| d.id.clone()).collect();
            batch.extend(more.into_iter().filter(|d| !seen.contains(&d.id)));
        }
        let jobs: Vec<String> = batch.iter().map(|d| d.job.clone()).collect();
        let already = catalogue.received(&jobs)?;
        let mut snapshots = Vec::new();
        let mut receipts = Vec::new();
        for delivered in &batch {
            if already.contains(&delivered.job) {
                // Stored before a crash and delivered again: acknowledged below, not stored twice.
                continue;
            }
            match &delivered.body {
                Ok(listed) if listed.error.is_none() => {
                    receipts.push(delivered.job.clone());
                    snapshots.push(ServerSnapshot {
                        server: listed.server.clone(),
                        spec: Some(listed.spec.clone()),
                        info: listed.info.clone(),
                        tools: listed.tools.clone(),
                        list_extra: listed.list_extra.clone(),
                    });
                }
                Ok(listed) => {
                    failed += 1;
                    if !g.quiet {
                        let why = listed.error.as_deref().unwrap_or("");
                        eprintln!(
                            "{}: not listed by {}: {}",
                            output::clean(&listed.server, 60),
                            output::clean(&listed.worker, 60),
                            output::clean(why, 300)
                        );
                    }
                }
                Err(why) => {
                    failed += 1;
                    tracing::warn!("{why}; acknowledged and dropped");
                }
            }
        }
        // Stored first, acknowledged after: a crash in between re-delivers the batch, and storing it again
        // changes nothing.
        let reports = catalogue.ingest_received(&snapshots, &receipts, &classifier)?;
        for (snapshot, report) in snapshots.iter().zip(&reports) {
            stored += 1;
            if !g.quiet {
                eprintln!(
                    "{}: stored {} tools ({} new, {} changed)",
                    output::clean(&snapshot.server, 60),
                    snapshot.tools.len(),
                    report.added.len(),
                    report.changed.len()
                );
            }
        }
        for delivered in &batch {
            queue.stored(&delivered.id, &delivered.job)?;
        }
        idle_since = Instant::now();
    }
    if !g.quiet {
        eprintln!("ingest {}: {stored} listings stored, {failed} failures; every job is done", args.name);
    }
    Ok(Outcome::Ok)
}

/// `crawl --enqueue URL`: the gathered sources as jobs.
pub(super) fn enqueue(
    url: &str,
    prefix: &str,
    sources: Vec<crate::crawl::sources::Source>,
    g: &Globals,
) -> anyhow::Result<Outcome> {
    let mut queue = Queue::open(url, prefix)?;
    let jobs: Vec<Job> =
        sources.into_iter().map(|s| Job { spec: s.spec, sandboxed: s.sandbox, origin: s.origin }).collect();
    let ids = queue.enqueue(&jobs)?;
    if !g.quiet {
        eprintln!("enqueued {} jobs on {} ({prefix}:crawl:jobs)", ids.len(), queue::redact(url));
    }
    Ok(Outcome::Ok)
}
