//! The command line: clap definitions, global options, and the one place where errors become exit codes.
//!
//! Each subcommand lives in a file named after it with an `Args` struct and a `run` function. `run` returns
//! an [`Outcome`]; errors travel as `anyhow::Error` and are rendered here: exit 0 for success (and for a
//! broken pipe: `toolwarden search x | head` is not a failure), 1 when a command reports findings or
//! denials, 2 for usage and input errors.

mod approvals;
mod audit;
mod classify;
mod corpus;
mod crawl;
mod demo_server;
mod export;
mod farm;
mod gateway;
mod import;
mod index;
pub mod output;
mod pin;
mod policy;
mod proxy;
mod quickstart;
mod sarif;
mod scan;
mod scan_report;
mod search;
mod serve;
mod show;
mod stats;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::Format;

/// Crawl MCP servers, classify their tools by risk, search the catalogue, and enforce policies.
#[derive(Debug, Parser)]
#[command(name = "toolwarden", version, about, propagate_version = true, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// Where the catalogue (SQLite) and its search index live [default: the platform data dir]
    #[arg(long, global = true, env = "TOOLWARDEN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format: a table for people, JSON for programs (some commands accept jsonl, csv or sarif)
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Classification rules directory replacing the built-in rules (*.toml)
    #[arg(long, global = true, env = "TOOLWARDEN_RULES", value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More logging on stderr (-vv for debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Globals {
    /// The data directory: `--data-dir`, `TOOLWARDEN_DATA_DIR`, or the platform's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("toolwarden"))
    }

    /// The classifier: built-in rules, or those of `--rules DIR`.
    pub fn classifier(&self) -> anyhow::Result<crate::classify::Classifier> {
        use anyhow::Context;
        match &self.rules {
            Some(dir) => crate::classify::Classifier::from_dir(dir)
                .with_context(|| format!("loading rules from {}", dir.display())),
            None => Ok(crate::classify::Classifier::builtin()),
        }
    }

    /// Whether progress bars may be drawn.
    pub fn progress(&self) -> bool {
        use std::io::IsTerminal;
        !self.quiet && self.format == Format::Table && std::io::stderr().is_terminal()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl the built-in demo server, classify, store, index and print the risk table
    Quickstart(quickstart::Args),
    /// Run the built-in demo MCP server (a small shop/CRM with tools of every category)
    DemoServer(demo_server::Args),
    /// Crawl MCP servers (stdio, HTTP, config files, client configs, registry listings) into the catalogue
    Crawl(crawl::Args),
    /// Take crawl jobs from a Redis queue (`crawl --enqueue`), crawl them sandboxed, publish the listings
    CrawlWorker(farm::WorkerArgs),
    /// Store the listings crawl workers published on a Redis queue in this catalogue, then acknowledge them
    Ingest(farm::IngestArgs),
    /// Add captured tools/list results (JSON files) to the catalogue
    Import(import::Args),
    /// Classify captured tools/list results without storing them
    Classify(classify::Args),
    /// Search the catalogue by text, category and risk
    Search(search::Args),
    /// Show one server or tool, with evidence and history
    Show(show::Args),
    /// Counts by server, category and risk
    Stats(stats::Args),
    /// Export the whole catalogue, one tool per line (jsonl or csv)
    Export(export::Args),
    /// Manage the full-text index
    Index(index::Args),
    /// Generate, check, explain and import policies
    Policy(policy::Args),
    /// Enforce a policy between an MCP client and a server (stdio or Streamable HTTP)
    Proxy(proxy::Args),
    /// Many servers behind one MCP endpoint (stdio), each with its own policy: tools listed as SERVER__TOOL
    Gateway(gateway::Args),
    /// Approve a server's current tool definitions; later changes are reported against the pin
    Pin(pin::Args),
    /// Decide calls a running proxy holds for a person: list, approve ID, deny ID
    Approvals(approvals::Args),
    /// Read the proxy's audit trail from the catalogue (filter by tool, decision, time)
    Audit(audit::Args),
    /// Crawl the servers of MCP client configs (or scan captured files) and report findings; exit 1 at --fail-on
    Scan(scan::Args),
    /// The web console: browse the catalogue by risk, decide approvals, read the audit (loopback by default)
    Serve(serve::Args),
    /// Write the catalogue as static pages (search included) for any static host
    Site(serve::SiteArgs),
    /// Measure the classifier on the labelled corpus of real servers (server-disjoint) and refit its rule scores
    Corpus(corpus::Args),
}

/// What a successful command reports to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found something the user asked to be told about.
    Findings,
}

/// An error in how the command was invoked or in its input (exit 2, like every error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parse the process arguments, run, and map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.globals);
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(2)
        }
    }
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let g = &cli.globals;
    match cli.command {
        Command::Quickstart(args) => quickstart::run(args, g),
        Command::DemoServer(args) => demo_server::run(args, g),
        Command::Crawl(args) => crawl::run(args, g),
        Command::CrawlWorker(args) => farm::run_worker(args, g),
        Command::Ingest(args) => farm::run_ingest(args, g),
        Command::Import(args) => import::run(args, g),
        Command::Classify(args) => classify::run(args, g),
        Command::Search(args) => search::run(args, g),
        Command::Show(args) => show::run(args, g),
        Command::Stats(args) => stats::run(args, g),
        Command::Export(args) => export::run(args, g),
        Command::Index(args) => index::run(args, g),
        Command::Policy(args) => policy::run(args, g),
        Command::Proxy(args) => proxy::run(args, g),
        Command::Gateway(args) => gateway::run(args, g),
        Command::Pin(args) => pin::run(args, g),
        Command::Scan(args) => scan::run(args, g),
        Command::Approvals(args) => approvals::run(args, g),
        Command::Audit(args) => audit::run(args, g),
        Command::Corpus(args) => corpus::run(args, g),
        Command::Serve(args) => serve::run(args, g),
        Command::Site(args) => serve::run_site(args, g),
    }
}

/// The error and its causes on one line: `opening catalogue: database is locked`.
fn render_error(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(g: &Globals) {
    use tracing_subscriber::EnvFilter;
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    // rmcp logs a peer's failures at error level; we report them ourselves, so its own logs show only with -vv.
    let rmcp = if g.verbose >= 2 { "" } else { ",rmcp=off" };
    let filter = EnvFilter::try_from_env("TOOLWARDEN_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{level}{rmcp}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
