//! `toolwarden scan`: crawl the servers of the user's MCP client configs (or `--config`, or captured
//! `tools/list` files given as arguments), classify and store them, and report findings for CI.
//!
//! A scan's findings are the classifier's findings of every tool, plus what only a view across servers shows:
//! two servers offering the same tool name, a description naming another server's tool, tools that differ
//! from the server's pin (rug pulls), and servers that could not be listed. The exit code is 1 when a finding
//! is at or above `--fail-on` (default `high`), so a CI job fails; `--format sarif` writes SARIF 2.1.0 for
//! code-scanning dashboards, with the config file that named the server as the location.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::output::{self, Format, clean};
use super::{Globals, Outcome, UsageError};
use crate::catalogue::Catalogue;
use crate::crawl::{self, CrawlOptions, sources};
use crate::model::{Classification, Risk, ServerSnapshot, Tool};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Captured tools/list results (JSON) to scan offline, instead of crawling
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Same as a FILE argument (repeatable)
    #[arg(long = "import", value_name = "FILE")]
    pub import: Vec<PathBuf>,
    /// An MCP client configuration file (repeatable); without FILE, the well-known locations. The default when
    /// no other source is given
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub client_config: Vec<String>,
    /// A catalogue file of named servers (TOML or JSON; see schemas/servers.schema.json)
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Exit 1 when a finding is at or above this severity
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = FailOn::High)]
    pub fail_on: FailOn,
    /// Start stdio servers found in config files without asking
    #[arg(long)]
    pub yes: bool,
    /// Deadline per server, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// How many servers to crawl at once [default: twice the core count]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub sandbox: super::crawl::SandboxArgs,
}

/// The `--fail-on` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Critical,
    /// Always exit 0 when the scan ran.
    Never,
}

impl FailOn {
    fn threshold(self) -> Option<Risk> {
        match self {
            FailOn::Low => Some(Risk::Low),
            FailOn::Medium => Some(Risk::Medium),
            FailOn::High => Some(Risk::High),
            FailOn::Critical => Some(Risk::Critical),
            FailOn::Never => None,
        }
    }
}

pub(super) use super::scan_report::{RiskyTool, ScanFinding, ScanReport, ScannedServer};

/// The tools of one listed server, as the scan saw them.
struct Listed {
    server: String,
    origin: String,
    tools: Vec<(Tool, Classification)>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("scan", g.format, &[Format::Table, Format::Json, Format::Sarif])?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(UsageError("--timeout must be a positive number of seconds".into()).into());
    }
    if args.concurrency == Some(0) {
        return Err(UsageError("--concurrency must be at least 1".into()).into());
    }
    let classifier = g.classifier()?;
    let mut servers: Vec<ScannedServer> = Vec::new();
    let mut listed: Vec<Listed> = Vec::new();

    let files: Vec<PathBuf> = args.files.iter().chain(&args.import).cloned().collect();
    let crawl_wanted = !args.client_config.is_empty() || !args.config.is_empty() || files.is_empty();
    if !files.is_empty() {
        scan_files(&files, g, &classifier, &mut servers, &mut listed)?;
    }
    if crawl_wanted {
        scan_crawl(&args, g, &mut servers, &mut listed)?;
    }

    let mut findings = Vec::new();
    let mut risky_tools = Vec::new();
    for l in &listed {
        for (tool, c) in &l.tools {
            for f in &c.findings {
                findings.push(ScanFinding {
                    server: l.server.clone(),
                    tool: Some(tool.name.clone()),
                    id: f.id.clone(),
                    severity: f.severity,
                    text: f.text.clone(),
                    origin: l.origin.clone(),
                });
            }
            if c.risk >= Risk::High {
                risky_tools.push(RiskyTool {
                    server: l.server.clone(),
                    tool: tool.name.clone(),
                    category: c.category,
                    risk: c.risk,
                });
            }
        }
    }
    findings.extend(across_servers(&listed));
    for s in &servers {
        if let Some(error) = &s.error {
            findings.push(ScanFinding {
                server: s.server.clone(),
                tool: None,
                id: "server-unlisted".into(),
                severity: Risk::Medium,
                text: format!("the server could not be listed, so its tools were not checked: {error}"),
                origin: s.origin.clone(),
            });
        }
        if let Some(drift) = &s.pin {
            findings.extend(pin_findings(drift, &s.origin));
        }
    }
    findings.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| (&a.server, &a.tool, &a.id).cmp(&(&b.server, &b.tool, &b.id)))
    });
    risky_tools.sort_by(|a, b| b.risk.cmp(&a.risk).then_with(|| (&a.server, &a.tool).cmp(&(&b.server, &b.tool))));
    let fail_on = args.fail_on.threshold();
    let failed = fail_on.is_some_and(|level| findings.iter().any(|f| f.severity >= level));
    let report = ScanReport { servers, findings, risky_tools, fail_on, failed };
    match g.format {
        Format::Json => output::print_json(&report)?,
        Format::Sarif => output::print_json(&super::sarif::sarif(&report, &classifier.finding_rules()))?,
        _ => print_table(&report, g)?,
    }
    Ok(if failed { Outcome::Findings } else { Outcome::Ok })
}

/// Offline: read captures, store them like `import`, and scan what they list.
fn scan_files(
    files: &[PathBuf],
    g: &Globals,
    classifier: &crate::classify::Classifier,
    servers: &mut Vec<ScannedServer>,
    listed: &mut Vec<Listed>,
) -> anyhow::Result<()> {
    let mut snapshots = Vec::new();
    for file in files {
        let capture = super::import::read_capture(file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
        for bad in &capture.bad {
            tracing::warn!("{}: skipped a tool that is not valid: {}", file.display(), clean(&bad.to_string(), 200));
        }
        let server = super::import::server_name_for(file);
        let origin = file.display().to_string();
        let tools: Vec<(Tool, Classification)> =
            capture.tools.iter().map(|t| (t.clone(), classifier.classify(t))).collect();
        servers.push(ScannedServer {
            server: server.clone(),
            origin: origin.clone(),
            ok: true,
            error: None,
            tools: tools.len(),
            stored: false,
            pin: None,
        });
        listed.push(Listed { server: server.clone(), origin, tools });
        snapshots.push(ServerSnapshot {
            server,
            tools: capture.tools,
            list_extra: capture.extra,
            ..ServerSnapshot::default()
        });
    }
    let mut catalogue = Catalogue::open(&g.data_dir()).context("opening the catalogue")?;
    catalogue.ingest_many(&snapshots, classifier).context("storing the scanned tools")?;
    for s in servers.iter_mut() {
        s.stored = true;
        s.pin = catalogue.pin_drift(&s.server)?;
        if let Some(drift) = s.pin.as_mut() {
            catalogue.judge_drift(drift, classifier)?;
        }
    }
    catalogue.close()?;
    Ok(())
}

/// Online: gather the servers of the configs, confirm starting programs, crawl, classify and store.
fn scan_crawl(
    args: &Args,
    g: &Globals,
    servers: &mut Vec<ScannedServer>,
    listed: &mut Vec<Listed>,
) -> anyhow::Result<()> {
    let client_config = if args.client_config.is_empty() && args.config.is_empty() {
        vec![String::new()]
    } else {
        args.client_config.clone()
    };
    let crawl_args = super::crawl::Args {
        stdio: Vec::new(),
        http: Vec::new(),
        header: Vec::new(),
        config: args.config.clone(),
        client_config,
        registry: Vec::new(),
        registry_url: Vec::new(),
        concurrency: args.concurrency,
        timeout: args.timeout,
        yes: args.yes,
        capture_dir: None,
        sandbox: args.sandbox.clone(),
        enqueue: None,
        queue_prefix: String::new(),
    };
    let mut found = super::crawl::gather(&crawl_args, g)?;
    if found.is_empty() {
        if !g.quiet {
            eprintln!("no servers to scan");
        }
        return Ok(());
    }
    sources::dedup_names(&mut found);
    let sandbox = args.sandbox.apply(&mut found, g.quiet)?;
    super::crawl::confirm_programs(&found, args.yes)?;
    let origins: BTreeMap<String, String> = found.iter().map(|s| (s.spec.name.clone(), s.origin.clone())).collect();
    let options = CrawlOptions {
        concurrency: args.concurrency.unwrap_or_else(crawl::default_concurrency),
        timeout: Duration::from_secs_f64(args.timeout),
        retries: 1,
        sandbox,
    };
    let reports = super::crawl::crawl_and_store(found, options, g, None, &mut |_, _| {})?;
    for r in reports {
        let origin = origins.get(&r.server).cloned().unwrap_or_else(|| "command line".into());
        servers.push(ScannedServer {
            server: r.server.clone(),
            origin: origin.clone(),
            ok: r.ok,
            error: r.error.clone(),
            tools: r.tool_count,
            stored: r.stored,
            pin: r.pin.clone(),
        });
        if r.ok {
            listed.push(Listed { server: r.server, origin, tools: r.classified });
        }
    }
    Ok(())
}

/// Findings only a view across servers shows: one tool name on two servers, and a description that names a
/// tool of another server (the shape of shadowing: "when send_email is called, ...").
fn across_servers(listed: &[Listed]) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    let mut owners: BTreeMap<&str, Vec<&Listed>> = BTreeMap::new();
    for l in listed {
        for (tool, _) in &l.tools {
            let entry = owners.entry(tool.name.as_str()).or_default();
            if !entry.iter().any(|o| o.server == l.server) {
                entry.push(l);
            }
        }
    }
    for (name, servers) in &owners {
        if servers.len() < 2 {
            continue;
        }
        for l in servers {
            let others: Vec<&str> =
                servers.iter().filter(|o| o.server != l.server).map(|o| o.server.as_str()).collect();
            out.push(ScanFinding {
                server: l.server.clone(),
                tool: Some(name.to_string()),
                id: "duplicate-tool-name".into(),
                severity: Risk::Medium,
                text: format!("a tool of the same name is offered by {}: one can shadow the other", others.join(", ")),
                origin: l.origin.clone(),
            });
        }
    }
    // Only distinctive names (with a separator, at least 6 characters) count as references; "search" or
    // "list" in prose says nothing.
    let distinctive: Vec<(&str, &str)> = owners
        .iter()
        .filter(|(n, _)| n.len() >= 6 && n.contains(['_', '-']))
        .flat_map(|(n, ls)| ls.iter().map(move |l| (*n, l.server.as_str())))
        .collect();
    for l in listed {
        for (tool, _) in &l.tools {
            let Some(desc) = tool.description.as_deref() else { continue };
            let desc = crate::model::text::truncate_bytes(desc, 16 * 1024);
            let hit = distinctive.iter().find(|(name, server)| {
                *server != l.server && !l.tools.iter().any(|(t, _)| t.name == *name) && mentions(desc, name)
            });
            if let Some((name, server)) = hit {
                out.push(ScanFinding {
                    server: l.server.clone(),
                    tool: Some(tool.name.clone()),
                    id: "cross-server-reference".into(),
                    severity: Risk::Medium,
                    text: format!("the description names {name}, a tool of server {server}"),
                    origin: l.origin.clone(),
                });
            }
        }
    }
    out
}

/// Whether `name` appears in `text` as a whole word (not inside a longer identifier).
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Every difference from the pin is a finding: a tool that appeared is high (nobody approved it), one that went
/// medium, and a changed one as severe as what changed (a new instruction to the model high, a typo fix low).
fn pin_findings(drift: &crate::pin::PinDrift, origin: &str) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    let mut push = |tool: &str, text: String, severity: Risk| {
        out.push(ScanFinding {
            server: drift.server.clone(),
            tool: Some(tool.to_string()),
            id: "pin-violation".into(),
            severity,
            text,
            origin: origin.to_string(),
        });
    };
    for name in &drift.added {
        push(name, format!("a tool that is not in the pin of {} appeared", drift.pinned_at), Risk::High);
    }
    for name in &drift.removed {
        push(name, format!("a pinned tool (pin of {}) is gone", drift.pinned_at), Risk::Medium);
    }
    for c in &drift.changed {
        let first: Vec<&str> = c.diff.lines().filter(|l| l.starts_with('+')).take(2).collect();
        let why = c.why.as_deref().map(|w| format!("; {w}")).unwrap_or_default();
        push(
            &c.name,
            format!(
                "the definition changed since the pin of {} ({}): {}{why}",
                drift.pinned_at,
                c.fields.join(", "),
                first.join(" ")
            ),
            // Unjudged (the definitions could not be loaded): as bad as a rug pull can be.
            c.severity.unwrap_or(Risk::High),
        );
    }
    out
}

fn print_table(report: &ScanReport, g: &Globals) -> anyhow::Result<()> {
    if !g.quiet {
        let mut servers = output::table(["SERVER", "STATUS", "TOOLS", "PIN", "FROM"]);
        for s in &report.servers {
            let pin = match &s.pin {
                None => "-".to_string(),
                Some(d) if d.is_clean() => "as pinned".to_string(),
                Some(d) => format!("{} differ", d.violations()),
            };
            servers.add_row([
                clean(&s.server, 40),
                if s.ok { "ok".into() } else { "failed".into() },
                s.tools.to_string(),
                pin,
                clean(&s.origin, 60),
            ]);
        }
        output::print(servers)?;
        if !report.risky_tools.is_empty() {
            let mut risky = output::table(["RISK", "CATEGORY", "SERVER", "TOOL"]);
            for t in &report.risky_tools {
                risky.add_row([t.risk.to_string(), t.category.to_string(), clean(&t.server, 40), clean(&t.tool, 60)]);
            }
            output::print(format_args!("\nrisky tools ({})\n{risky}", report.risky_tools.len()))?;
        }
    }
    if report.findings.is_empty() {
        output::print("\nno findings")?;
    } else {
        let mut table = output::table(["SEVERITY", "FINDING", "SERVER", "TOOL", "TEXT"]);
        for f in &report.findings {
            table.add_row([
                f.severity.to_string(),
                clean(&f.id, 40),
                clean(&f.server, 30),
                clean(f.tool.as_deref().unwrap_or("-"), 40),
                clean(&f.text, 110),
            ]);
        }
        output::print(format_args!("\nfindings ({})\n{table}", report.findings.len()))?;
    }
    let summary = match report.fail_on {
        Some(level) if report.failed => format!("FAILED: findings at or above {level}"),
        Some(level) => format!("passed: no findings at or above {level}"),
        None => "passed (--fail-on never)".to_string(),
    };
    output::print(format_args!("{summary}"))
}
