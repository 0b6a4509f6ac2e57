//! `toolwarden classify FILE...`: classify captured tools/list results without storing them.
//!
//! A bad file or a bad tool must not hide the good ones: every problem is printed on stderr with the file and
//! the position (`error: x.json: tools[3] at line 9, column 5: missing field `name``), every tool that parsed
//! is classified and printed, and the exit code is 2 when anything was bad.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::output::{self, Format, clean};
use super::{Globals, Outcome, UsageError};
use crate::model::{Classification, Evidence, Finding, Risk, ToolCapture};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Captured tools/list results (JSON: `{"tools": [...]}` or a bare array); `-` reads stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// One row of `classify --format json` (the pinned contract, plus `factors` and `findings`).
#[derive(Debug, Serialize)]
struct Row {
    server: Option<String>,
    name: String,
    category: crate::model::Category,
    risk: Risk,
    confidence: f64,
    evidence: Vec<Evidence>,
    factors: Vec<String>,
    findings: Vec<Finding>,
    /// The blast radius in one sentence.
    rationale: String,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("classify", g.format, &[Format::Table, Format::Json])?;
    let classifier = g.classifier()?;
    let mut rows = Vec::new();
    let mut bad = 0usize;
    for path in &args.files {
        let (label, server, text) = match read(path) {
            Ok(read) => read,
            Err(e) => {
                eprintln!("error: {}: {e:#}", path.display());
                bad += 1;
                continue;
            }
        };
        let capture = match ToolCapture::parse(&text) {
            Ok(capture) => capture,
            Err(e) => {
                eprintln!("error: {label}: {e}");
                bad += 1;
                continue;
            }
        };
        for b in &capture.bad {
            eprintln!("error: {label}: {b}");
            bad += 1;
        }
        for tool in &capture.tools {
            let Classification { category, risk, confidence, evidence, factors, findings, rationale, .. } =
                classifier.classify(tool);
            rows.push(Row {
                server: server.clone(),
                name: tool.name.clone(),
                category,
                risk,
                confidence,
                evidence,
                factors,
                findings,
                rationale,
            });
        }
    }
    match g.format {
        Format::Json => output::print_json(&rows)?,
        _ => print_table(&rows)?,
    }
    if bad > 0 {
        return Err(UsageError(format!("{bad} problem(s) in the input; the other tools were classified")).into());
    }
    Ok(Outcome::Ok)
}

/// The text of a file (or stdin for `-`), a label for messages, and the server name: the file stem without
/// `.tools` (`github.tools.json` → `github`), or none for stdin.
fn read(path: &Path) -> anyhow::Result<(String, Option<String>, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
        return Ok(("<stdin>".into(), None, text));
    }
    let text = std::fs::read_to_string(path).with_context(|| "cannot read the file".to_string())?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let server = stem.strip_suffix(".tools").map(str::to_string).unwrap_or(stem);
    Ok((path.display().to_string(), Some(server), text))
}

fn print_table(rows: &[Row]) -> anyhow::Result<()> {
    let mut table = output::table(["server", "tool", "category", "risk", "conf", "evidence"]);
    for r in rows {
        let mut why = r
            .evidence
            .iter()
            .take(2)
            .map(|e| format!("{} {}: \"{}\"", e.rule, e.field, clean(&e.text, 40)))
            .collect::<Vec<_>>()
            .join("; ");
        if why.is_empty() {
            why.push_str("(no rule matched: read by default)");
        }
        if !r.factors.is_empty() {
            why.push_str(&format!(" [{}]", r.factors.join(", ")));
        }
        for f in &r.findings {
            why.push_str(&format!(" ⚠ {}", f.id));
        }
        table.add_row(vec![
            clean(r.server.as_deref().unwrap_or("-"), 30),
            clean(&r.name, 48),
            r.category.to_string(),
            r.risk.to_string(),
            format!("{:.2}", r.confidence),
            why,
        ]);
    }
    output::print(table)
}
