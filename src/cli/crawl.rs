//! `toolwarden crawl`: gather servers from every source, crawl them concurrently, classify and store each
//! listing as it arrives, and report one line per server.
//!
//! Exit codes: 0 when every server was listed, 1 when at least one could not be (each has its reason in the
//! output, like a finding), 2 for usage errors (bad flags, unreadable config files, refusing to start
//! programs without confirmation). If the catalogue cannot be opened, the crawl still runs and reports, and
//! says that nothing was stored.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::output::{self, Format};
use super::{Globals, Outcome, UsageError};
use crate::catalogue::Catalogue;
use crate::classify::Classifier;
use crate::crawl::sources::{self, Source};
use crate::crawl::{self, CrawlOptions, CrawlResult};
use crate::model::{Category, ChangeReport, Classification, ServerSnapshot, Tool, Transport};
use crate::sandbox::{Limits, Sandbox};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stdio server to start: "CMD ARGS" (repeatable)
    #[arg(long, value_name = "CMD ARGS")]
    pub stdio: Vec<String>,
    /// A Streamable HTTP endpoint (repeatable)
    #[arg(long, value_name = "URL")]
    pub http: Vec<String>,
    /// A header for the HTTP endpoints: "K: V" (repeatable)
    #[arg(long, value_name = "K: V")]
    pub header: Vec<String>,
    /// A catalogue file of named servers (TOML or JSON; see schemas/servers.schema.json)
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// An MCP client configuration file (repeatable); without FILE, the well-known locations
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub client_config: Vec<String>,
    /// An MCP registry listing (server.json entries)
    #[arg(long, value_name = "FILE")]
    pub registry: Vec<PathBuf>,
    /// An MCP registry API (`URL/v0/servers`, every page); entries already catalogued at the same version
    /// are skipped, so an interrupted crawl resumes where it stopped (repeatable)
    #[arg(long, value_name = "URL")]
    pub registry_url: Vec<String>,
    /// How many servers to crawl at once [default: twice the core count]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Deadline per server, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Start stdio servers found in config files without asking
    #[arg(long)]
    pub yes: bool,
    /// Also write each server's tools/list result to DIR/<server>.json (for `classify` and `import`)
    #[arg(long, value_name = "DIR")]
    pub capture_dir: Option<PathBuf>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Do not crawl here: put the servers on this Redis queue for `crawl-worker`s (redis://HOST:PORT/DB)
    #[arg(long, value_name = "REDIS_URL")]
    pub enqueue: Option<String>,
    /// Key prefix of the queue's streams (with --enqueue)
    #[arg(long, default_value = "toolwarden", requires = "enqueue")]
    pub queue_prefix: String,
}

/// How stdio servers are confined (see `crate::sandbox`).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Run every stdio server under bubblewrap: an empty home, no access to your files, environment or
    /// network (the default for --registry sources)
    #[arg(long, conflicts_with = "no_sandbox")]
    pub sandbox: bool,
    /// Run --registry servers outside the sandbox too
    #[arg(long)]
    pub no_sandbox: bool,
    /// Let sandboxed servers reach the network (to install packages, or to reach their service)
    #[arg(long)]
    pub sandbox_network: bool,
    /// Address space per sandboxed process, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub sandbox_memory: u64,
    /// CPU seconds per sandboxed process
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub sandbox_cpu: u64,
    /// Processes and threads per sandboxed server
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub sandbox_processes: u64,
}

impl SandboxArgs {
    /// Decide which sources run sandboxed and set the sandbox up if any does. Refuses (a usage error) where
    /// bubblewrap is missing or cannot work: a sandboxed server is never started without it.
    pub(super) fn apply(&self, sources: &mut [Source], quiet: bool) -> anyhow::Result<Option<Arc<Sandbox>>> {
        for source in sources.iter_mut() {
            if self.sandbox {
                source.sandbox = true;
            } else if self.no_sandbox {
                source.sandbox = false;
            }
        }
        let is_stdio = |s: &Source| matches!(s.spec.transport, Transport::Stdio { .. });
        if !sources.iter().any(|s| s.sandbox && is_stdio(s)) {
            if !quiet && !self.no_sandbox && sources.iter().any(|s| !s.explicit && is_stdio(s)) {
                eprintln!(
                    "hint: --sandbox runs these servers under bubblewrap, without access to your files, environment or network"
                );
            }
            return Ok(None);
        }
        self.make().map(Some)
    }

    /// The sandbox these flags describe; a usage error where a limit is zero or bubblewrap cannot work.
    pub(super) fn make(&self) -> anyhow::Result<Arc<Sandbox>> {
        if self.sandbox_memory == 0 || self.sandbox_cpu == 0 || self.sandbox_processes == 0 {
            return Err(
                UsageError("--sandbox-memory, --sandbox-cpu and --sandbox-processes must be positive".into()).into()
            );
        }
        let limits = Limits {
            network: self.sandbox_network,
            memory: self.sandbox_memory.saturating_mul(1 << 20),
            cpu_secs: self.sandbox_cpu,
            processes: self.sandbox_processes,
            ..Limits::default()
        };
        Ok(Arc::new(Sandbox::new(limits).map_err(|e| UsageError(e.to_string()))?))
    }
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("crawl", g.format, &[Format::Table, Format::Json])?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(UsageError("--timeout must be a positive number of seconds".into()).into());
    }
    if args.concurrency == Some(0) {
        return Err(UsageError("--concurrency must be at least 1".into()).into());
    }
    let mut sources = gather(&args, g)?;
    let mut registries = Registries::gather(&args, g, &mut sources)?;
    if sources.is_empty() {
        if registries.listed > 0 {
            return Ok(Outcome::Ok);
        }
        return Err(UsageError(
            "nothing to crawl: give --stdio, --http, --config, --client-config, --registry or --registry-url".into(),
        )
        .into());
    }
    sources::dedup_names(&mut sources);
    if let Some(url) = &args.enqueue {
        if args.sandbox.sandbox {
            sources.iter_mut().for_each(|s| s.sandbox = true);
        }
        return super::farm::enqueue(url, &args.queue_prefix, sources, g);
    }
    let sandbox = args.sandbox.apply(&mut sources, g.quiet)?;
    confirm_programs(&sources, args.yes)?;
    let options = CrawlOptions {
        concurrency: args.concurrency.unwrap_or_else(crawl::default_concurrency),
        timeout: Duration::from_secs_f64(args.timeout),
        retries: 1,
        sandbox,
    };
    let reports = crawl_and_store(sources, options, g, args.capture_dir.as_deref(), &mut |i, r| registries.done(i, r))?;
    print_reports(&reports, g)?;
    Ok(if reports.iter().all(|r| r.ok) { Outcome::Ok } else { Outcome::Findings })
}

/// The `--registry-url` sources of one crawl and their states: which source index is which registry entry.
struct Registries {
    states: Vec<crawl::registry::State>,
    /// Source index → (state, entry key, version).
    entries: BTreeMap<usize, (usize, String, String)>,
    /// Entries listed by all registries, skipped or not.
    listed: usize,
}

impl Registries {
    /// Read every `--registry-url`, append the entries not yet catalogued at their version to `sources`, and
    /// say on stderr what was listed and skipped.
    fn gather(args: &Args, g: &Globals, sources: &mut Vec<Source>) -> anyhow::Result<Registries> {
        let mut out = Registries { states: Vec::new(), entries: BTreeMap::new(), listed: 0 };
        let timeout = Duration::from_secs_f64(args.timeout);
        for url in &args.registry_url {
            let (entries, notes, pages) = crawl::registry::fetch_all(url, timeout)?;
            for note in notes {
                tracing::warn!("{note}");
            }
            let state = crawl::registry::State::load(&g.data_dir(), url)?;
            let (mut new, mut skipped) = (0, 0);
            for entry in &entries {
                if state.is_done(entry) {
                    skipped += 1;
                    continue;
                }
                out.entries.insert(sources.len(), (out.states.len(), entry.key.clone(), entry.version.clone()));
                sources.push(entry.source.clone());
                new += 1;
            }
            out.listed += entries.len();
            if !g.quiet {
                eprintln!(
                    "registry {}: {} entries on {pages} page(s); {skipped} already catalogued at the same version, {new} to crawl",
                    output::clean(url, 200),
                    entries.len()
                );
            }
            out.states.push(state);
        }
        Ok(out)
    }

    /// Source `index` was crawled: remember it if it was catalogued.
    fn done(&mut self, index: usize, report: &ServerReport) {
        let Some((state, key, version)) = self.entries.get(&index) else { return };
        if !(report.ok && report.stored) {
            return;
        }
        if let Err(e) = self.states[*state].mark(key, version) {
            tracing::warn!("{e}; the next run will crawl {key} again");
        }
    }
}

/// Every source the flags name, in flag order.
pub(super) fn gather(args: &Args, g: &Globals) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for line in &args.stdio {
        out.push(sources::from_stdio_flag(line).map_err(|e| UsageError(e.to_string()))?);
    }
    let mut headers = BTreeMap::new();
    for h in &args.header {
        let (k, v) = sources::parse_header(h).map_err(|e| UsageError(e.to_string()))?;
        headers.insert(k, v);
    }
    if !headers.is_empty() && args.http.is_empty() {
        return Err(UsageError("--header applies to --http endpoints; none given".into()).into());
    }
    for url in &args.http {
        out.push(sources::from_http_flag(url, &headers).map_err(|e| UsageError(e.to_string()))?);
    }
    for path in &args.config {
        out.extend(sources::from_servers_file(path).map_err(|e| UsageError(e.to_string()))?);
    }
    for path in &args.client_config {
        if path.is_empty() {
            out.extend(discover(g)?);
        } else {
            out.extend(sources::from_client_config(Path::new(path)).map_err(|e| UsageError(e.to_string()))?);
        }
    }
    for path in &args.registry {
        let (found, notes) = sources::from_registry(path).map_err(|e| UsageError(e.to_string()))?;
        for note in notes {
            tracing::warn!("{note}");
        }
        out.extend(found);
    }
    Ok(out)
}

/// Look in the well-known client config locations and say on stderr which were found.
fn discover(g: &Globals) -> anyhow::Result<Vec<Source>> {
    let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("."));
    let config = dirs::config_dir().unwrap_or_else(|| home.join(".config"));
    let project = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut out = Vec::new();
    let mut found = 0;
    for known in sources::well_known_configs(&home, &config, &project) {
        if !known.path.is_file() {
            continue;
        }
        match sources::from_client_config(&known.path) {
            Ok(list) => {
                found += 1;
                if !g.quiet {
                    eprintln!("found {} config {} ({} servers)", known.client, known.path.display(), list.len());
                }
                out.extend(list);
            }
            // A client's file without an MCP section (e.g. a settings file) is not an error.
            Err(e) => tracing::info!("{e}"),
        }
    }
    if found == 0 && !g.quiet {
        eprintln!("no MCP client configurations found in the well-known locations");
    }
    Ok(out)
}

/// Starting programs named in files needs the user's consent.
pub(super) fn confirm_programs(sources: &[Source], yes: bool) -> anyhow::Result<()> {
    let programs: Vec<&Source> =
        sources.iter().filter(|s| !s.explicit && matches!(s.spec.transport, Transport::Stdio { .. })).collect();
    if programs.is_empty() || yes {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "Crawling will start these {} programs on this machine:", programs.len())?;
    for s in &programs {
        writeln!(
            err,
            "  {:<24} {}   (from {})",
            output::clean(&s.spec.name, 24),
            output::clean(&s.spec.target(), 200),
            s.origin
        )?;
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(UsageError(
            "refusing to start programs from config files without confirmation: run on a terminal, or pass --yes"
                .into(),
        )
        .into());
    }
    write!(err, "Start them? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(UsageError("not confirmed; nothing was started".into()).into())
    }
}

/// What `crawl --format json` prints per server.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ServerReport {
    pub server: String,
    pub transport: &'static str,
    pub target: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: usize,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<crate::model::ServerInfo>,
    pub tool_count: usize,
    pub tools: Vec<String>,
    pub categories: BTreeMap<Category, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangeReport>,
    pub stored: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How the tools differ from the server's pin, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<crate::pin::PinDrift>,
    /// Tools with their classification, for `quickstart`'s risk table (not printed by `crawl`).
    #[serde(skip)]
    pub classified: Vec<(Tool, Classification)>,
}

/// Crawl the sources, classify and store each success as it arrives, and return the reports in input order.
pub(super) fn crawl_and_store(
    sources: Vec<Source>,
    options: CrawlOptions,
    g: &Globals,
    capture_dir: Option<&Path>,
    on_report: &mut dyn FnMut(usize, &ServerReport),
) -> anyhow::Result<Vec<ServerReport>> {
    let classifier = g.classifier()?;
    let data_dir = g.data_dir();
    let mut catalogue = match Catalogue::open(&data_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(
                "catalogue in {} unavailable ({e}); crawl results are reported but not stored",
                data_dir.display()
            );
            None
        }
    };
    if let Some(dir) = capture_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let total = sources.len();
    let jobs = sources.into_iter().map(|s| crawl::Job { spec: s.spec, sandboxed: s.sandbox }).collect();
    let progress = g.progress().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} crawling [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut reports: Vec<Option<ServerReport>> = vec![None; total];
    runtime.block_on(async {
        let mut rx = crawl::crawl_all(jobs, options);
        while let Some(result) = rx.recv().await {
            let index = result.index;
            let report = finish(result, &classifier, catalogue.as_mut(), capture_dir);
            on_report(index, &report);
            if let Some(bar) = &progress {
                bar.inc(1);
                bar.set_message(output::clean(&report.server, 40));
            }
            reports[index] = Some(report);
        }
    });
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(reports.into_iter().flatten().collect())
}

/// Classify, store and summarise one result.
fn finish(
    result: CrawlResult,
    classifier: &Classifier,
    catalogue: Option<&mut Catalogue>,
    capture_dir: Option<&Path>,
) -> ServerReport {
    let CrawlResult { spec, outcome, attempts, elapsed, .. } = result;
    let transport = match spec.transport {
        Transport::Stdio { .. } => "stdio",
        Transport::Http { .. } => "http",
    };
    let mut report = ServerReport {
        server: spec.name.clone(),
        transport,
        target: spec.redacted().target(),
        ok: false,
        error: None,
        attempts,
        elapsed_ms: elapsed.as_millis() as u64,
        protocol_version: None,
        server_info: None,
        tool_count: 0,
        tools: Vec::new(),
        categories: BTreeMap::new(),
        changes: None,
        stored: false,
        warnings: Vec::new(),
        pin: None,
        classified: Vec::new(),
    };
    match outcome {
        Ok(listing) => {
            report.ok = true;
            report.protocol_version = listing.info.protocol_version.clone();
            report.server_info = Some(listing.info.clone());
            report.tool_count = listing.tools.len();
            report.tools = listing.tools.iter().map(|t| t.name.clone()).collect();
            report.warnings = listing.warnings.clone();
            for tool in &listing.tools {
                let c = classifier.classify(tool);
                *report.categories.entry(c.category).or_default() += 1;
                report.classified.push((tool.clone(), c));
            }
            if let Some(dir) = capture_dir
                && let Err(e) = write_capture(dir, &spec.name, &listing)
            {
                report.warnings.push(format!("writing the capture: {e}"));
            }
            if let Some(catalogue) = catalogue {
                let snapshot = ServerSnapshot {
                    server: spec.name.clone(),
                    spec: Some(spec.redacted()),
                    info: Some(listing.info),
                    tools: listing.tools,
                    list_extra: listing.list_extra,
                };
                match catalogue.ingest(&snapshot, classifier) {
                    Ok(changes) => {
                        report.changes = Some(changes);
                        report.stored = true;
                        match catalogue.pin_drift(&spec.name) {
                            Ok(pin) => report.pin = pin,
                            Err(e) => report.warnings.push(format!("pin not checked: {e}")),
                        }
                    }
                    Err(e) => report.warnings.push(format!("not stored: {e}")),
                }
            }
        }
        Err(e) => {
            let reason = e.to_string();
            if let Some(catalogue) = catalogue
                && let Err(store_err) = catalogue.record_failure(&spec.name, Some(&spec.redacted()), &reason)
            {
                report.warnings.push(format!("failure not recorded: {store_err}"));
            }
            report.error = Some(reason);
        }
    }
    report
}

/// `DIR/<server>.json`: the tools/list result as the server sent it (one page, all tools).
fn write_capture(dir: &Path, server: &str, listing: &crate::mcp::Listing) -> std::io::Result<()> {
    let file: String =
        server.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let mut body = listing.list_extra.clone();
    body.insert("tools".into(), serde_json::to_value(&listing.tools).map_err(std::io::Error::other)?);
    let text = serde_json::to_string_pretty(&body).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(format!("{file}.json")), text + "\n")
}

fn print_reports(reports: &[ServerReport], g: &Globals) -> anyhow::Result<()> {
    if g.format == Format::Json {
        return output::print_json(reports);
    }
    let mut table = output::table(["server", "status", "tools", "new/changed/removed", "by category", "time"]);
    for r in reports {
        let changes = match &r.changes {
            Some(c) => format!("{}/{}/{}", c.added.len(), c.changed.len(), c.removed.len()),
            None if r.ok => "not stored".to_string(),
            None => "-".to_string(),
        };
        let categories = r.categories.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ");
        table.add_row([
            output::clean(&r.server, 40),
            if r.ok { "ok".to_string() } else { "failed".to_string() },
            if r.ok { r.tool_count.to_string() } else { "-".to_string() },
            changes,
            categories,
            format!("{:.1}s", r.elapsed_ms as f64 / 1000.0),
        ]);
    }
    if !g.quiet {
        output::print(table)?;
    }
    let failed: Vec<&ServerReport> = reports.iter().filter(|r| !r.ok).collect();
    for r in &failed {
        let reason = r.error.as_deref().unwrap_or("unknown error");
        // Reasons quote the server's stderr: untrusted, multi-line; clean each line.
        let lines: Vec<String> = reason.lines().take(12).map(|l| output::clean(l, 300)).collect();
        output::print(format!(
            "✗ {} ({}): {}",
            output::clean(&r.server, 40),
            output::clean(&r.target, 120),
            lines.join("\n    ")
        ))?;
    }
    for r in reports {
        if let Some(drift) = r.pin.as_ref().filter(|d| !d.is_clean()) {
            for line in super::pin::drift_lines(drift, true) {
                output::print(format!("{}: {line}", output::clean(&r.server, 40)))?;
            }
        }
    }
    for r in reports.iter().filter(|r| !r.warnings.is_empty()) {
        for w in &r.warnings {
            tracing::warn!("{}: {}", output::clean(&r.server, 40), output::clean(w, 300));
        }
    }
    let ok = reports.len() - failed.len();
    if g.quiet {
        return Ok(());
    }
    output::print(format!(
        "{ok} of {} servers listed, {} tools",
        reports.len(),
        reports.iter().map(|r| r.tool_count).sum::<usize>()
    ))?;
    Ok(())
}
