//! `toolwarden quickstart`: the first command of the README. Starts the built-in demo server over real stdio
//! (this same executable, `demo-server`), crawls it into the data dir (classify, store, index) and prints the
//! risk table, with no setup.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;

use super::output::{self, Format};
use super::{Globals, Outcome};
use crate::crawl::CrawlOptions;
use crate::crawl::sources::Source;
use crate::model::{ServerSpec, Transport};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// The catalogue name the demo server gets.
const SERVER: &str = "demo";

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = args;
    output::require_format("quickstart", g.format, &[Format::Table, Format::Json])?;
    let exe = std::env::current_exe().context("finding the toolwarden executable")?;
    let spec = ServerSpec {
        name: SERVER.into(),
        transport: Transport::Stdio {
            command: exe.display().to_string(),
            args: vec!["demo-server".into()],
            env: BTreeMap::new(),
            cwd: None,
        },
    };
    let source = Source { spec, origin: "quickstart".into(), explicit: true, sandbox: false };
    let options = CrawlOptions { concurrency: 1, timeout: Duration::from_secs(30), retries: 1, sandbox: None };
    let reports = super::crawl::crawl_and_store(vec![source], options, g, None, &mut |_, _| {})?;
    let report = reports.into_iter().next().context("the crawl returned no result")?;
    if let Some(error) = &report.error {
        anyhow::bail!("crawling the demo server failed: {error}");
    }
    let mut rows = report.classified.clone();
    rows.sort_by(|a, b| {
        (b.1.risk, b.1.category.severity(), &a.0.name).cmp(&(a.1.risk, a.1.category.severity(), &b.0.name))
    });
    let policy_path = g.data_dir().join("policies").join(format!("{SERVER}.policy.json"));
    let policy_written = if report.stored {
        Some(super::policy::write_recommended(SERVER, &policy_path, g).context("writing the recommended policy")?)
    } else {
        None
    };
    if g.format == Format::Json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(t, c)| {
                serde_json::json!({"server": SERVER, "name": t.name, "category": c.category, "risk": c.risk,
                                   "confidence": c.confidence, "evidence": c.evidence})
            })
            .collect();
        return output::print_json(&json).map(|()| Outcome::Ok);
    }
    let mut table = output::table(["tool", "category", "risk", "confidence", "why"]);
    for (tool, c) in &rows {
        let why = c.evidence.first().map(|e| format!("{}: {}", e.rule, e.text)).unwrap_or_default();
        table.add_row([
            output::clean(&tool.name, 40),
            c.category.to_string(),
            c.risk.to_string(),
            format!("{:.2}", c.confidence),
            output::clean(&why, 60),
        ]);
    }
    output::print(table)?;
    let stored = if report.stored {
        format!("stored in {}", g.data_dir().display())
    } else {
        "not stored: the catalogue is unavailable".to_string()
    };
    output::print(format!(
        "{} tools from the demo server ({}, protocol {}); {stored}.{}\nNext: toolwarden search delete   |   toolwarden show {SERVER}",
        report.tool_count,
        report.server_info.as_ref().map(|i| format!("{} {}", i.name, i.version)).unwrap_or_default(),
        report.protocol_version.as_deref().unwrap_or("?"),
        policy_written
            .map(|n| format!("\nRecommended policy for its {n} tools: {}", policy_path.display()))
            .unwrap_or_default(),
    ))?;
    Ok(Outcome::Ok)
}
