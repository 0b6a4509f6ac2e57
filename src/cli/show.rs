//! `toolwarden show SERVER[/TOOL]`: one server (runs and tools) or one tool (definition, evidence, history).
//!
//! Server and tool names may themselves contain `/`, so the target is resolved against the catalogue: the
//! whole text as a server first, then each `/` as the split between a server and a tool.

use super::output::{self, Format, clean};
use super::{Globals, Outcome, UsageError};
use crate::catalogue::{Catalogue, ServerDetail, ToolDetail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SERVER or SERVER/TOOL
    pub target: String,
}

enum Found {
    Server(Box<ServerDetail>),
    Tool(Box<ToolDetail>),
}

fn resolve(catalogue: &Catalogue, target: &str) -> anyhow::Result<Option<Found>> {
    if let Some(server) = catalogue.server(target)? {
        return Ok(Some(Found::Server(Box::new(server))));
    }
    for (i, _) in target.match_indices('/') {
        if let Some(tool) = catalogue.tool(&target[..i], &target[i + 1..])? {
            return Ok(Some(Found::Tool(Box::new(tool))));
        }
    }
    Ok(None)
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("show", g.format, &[Format::Table, Format::Json])?;
    let Some(catalogue) = super::search::open_nonempty(g, super::search::empty_data(g, ""))? else {
        return Ok(Outcome::Ok);
    };
    let Some(found) = resolve(&catalogue, &args.target)? else {
        return Err(UsageError(format!(
            "no server or tool named {:?} in the catalogue; `toolwarden stats` lists the servers",
            clean(&args.target, 200)
        ))
        .into());
    };
    match (found, g.format) {
        (Found::Server(s), Format::Json) => {
            let pin = catalogue.pin_drift(&s.name)?;
            let shared_names = catalogue.shared_tool_names(&s.name)?;
            output::print_json(&ServerJson { detail: &s, pin, shared_names })?
        }
        (Found::Tool(t), Format::Json) => output::print_json(&t)?,
        (Found::Server(s), _) => {
            print_server(&s)?;
            print_security(&catalogue, &s)?;
        }
        (Found::Tool(t), _) => print_tool(&t)?,
    }
    Ok(Outcome::Ok)
}

/// `show SERVER --format json`: the server, its pin status and the tool names other servers offer too.
#[derive(serde::Serialize)]
struct ServerJson<'a> {
    #[serde(flatten)]
    detail: &'a ServerDetail,
    /// How the current tools differ from the pin; `null` when the server is not pinned.
    pin: Option<crate::pin::PinDrift>,
    /// Tool name → the other servers that offer a tool of the same name.
    shared_names: std::collections::BTreeMap<String, Vec<String>>,
}

/// Findings, tool names shared with other servers, and the pin status, after the server's tool table.
fn print_security(catalogue: &Catalogue, s: &ServerDetail) -> anyhow::Result<()> {
    let mut findings = output::table(["SEVERITY", "TOOL", "FINDING", "TEXT"]);
    let mut rows: Vec<(crate::model::Risk, String, String, String)> = Vec::new();
    for t in &s.tools {
        for f in &t.classification.findings {
            rows.push((f.severity, t.tool.name.clone(), f.id.clone(), f.text.clone()));
        }
    }
    for (name, others) in catalogue.shared_tool_names(&s.name)? {
        let text = format!("also offered by {}", others.join(", "));
        rows.push((crate::model::Risk::Medium, name, "duplicate-tool-name".into(), text));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    if !rows.is_empty() {
        for (severity, tool, id, text) in &rows {
            findings.add_row([severity.to_string(), clean(tool, 50), clean(id, 40), clean(text, 100)]);
        }
        output::print(format_args!("\nfindings ({})\n{findings}", rows.len()))?;
    }
    match catalogue.pin_drift(&s.name)? {
        None => output::print("\npin        none (`toolwarden pin SERVER` approves the current definitions)")?,
        Some(drift) => {
            output::print("")?;
            for line in super::pin::drift_lines(&drift, true) {
                output::print(format_args!("pin        {line}"))?;
            }
        }
    }
    Ok(())
}

fn print_server(s: &ServerDetail) -> anyhow::Result<()> {
    output::print(format_args!("server     {}", clean(&s.name, 200)))?;
    if let Some(spec) = &s.spec {
        output::print(format_args!("target     {}", clean(&spec.target(), 200)))?;
    }
    if let Some(info) = &s.info {
        let protocol = info.protocol_version.as_deref().map(|p| format!(" (protocol {p})")).unwrap_or_default();
        output::print(format_args!(
            "reports    {} {}{}",
            clean(&info.name, 80),
            clean(&info.version, 40),
            clean(&protocol, 60)
        ))?;
    }
    output::print(format_args!("first seen {}\nlast seen  {}", s.first_seen, s.last_seen))?;
    output::print("\nruns (newest first)")?;
    let mut runs = output::table(["AT", "OUTCOME", "TOOLS", "ADDED", "CHANGED", "REMOVED", "ERROR"]);
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    for run in &s.runs {
        runs.add_row([
            run.at.clone(),
            run.outcome.clone(),
            number(run.tools),
            number(run.added),
            number(run.changed),
            number(run.removed),
            clean(run.error.as_deref().unwrap_or(""), 80),
        ]);
    }
    output::print(runs)?;
    output::print(format_args!("\ntools ({})", s.tools.len()))?;
    if s.tools.is_empty() {
        return Ok(());
    }
    let mut tools = output::table(["RISK", "CATEGORY", "CONFIDENCE", "TOOL", "DESCRIPTION"]);
    let mut sorted: Vec<_> = s.tools.iter().collect();
    sorted.sort_by(|a, b| b.classification.risk.cmp(&a.classification.risk).then(a.tool.name.cmp(&b.tool.name)));
    for t in sorted {
        tools.add_row([
            t.classification.risk.to_string(),
            t.classification.category.to_string(),
            format!("{:.2}", t.classification.confidence),
            clean(&t.tool.name, 60),
            clean(t.tool.description.as_deref().unwrap_or(""), 80),
        ]);
    }
    output::print(tools)
}

/// Untrusted multi-line text for a terminal: each line cleaned, at most `max_lines` lines.
fn block(text: &str, max_lines: usize) -> String {
    let line = |l: &str| {
        let body = l.trim_start();
        let indent = (l.len() - body.len()).min(40);
        format!("  {}{}", " ".repeat(indent), clean(body, 160))
    };
    let mut lines: Vec<String> = text.lines().take(max_lines).map(line).collect();
    let total = text.lines().count();
    if total > max_lines {
        lines.push(format!("  … {} more lines", total - max_lines));
    }
    lines.join("\n")
}

fn print_tool(t: &ToolDetail) -> anyhow::Result<()> {
    let r = &t.record;
    let c = &r.classification;
    output::print(format_args!("tool        {}/{}", clean(&r.server, 100), clean(&r.tool.name, 100)))?;
    if let Some(title) = r.tool.display_title() {
        output::print(format_args!("title       {}", clean(&title, 200)))?;
    }
    let state = if t.current { format!("current since {}", t.since) } else { format!("REMOVED at {}", t.since) };
    output::print(format_args!("status      {state}"))?;
    output::print(format_args!(
        "risk        {} ({}, confidence {:.2}, ruleset {})",
        c.risk,
        c.category,
        c.confidence,
        clean(&c.ruleset, 40)
    ))?;
    if !c.factors.is_empty() {
        output::print(format_args!("factors     {}", clean(&c.factors.join(", "), 200)))?;
    }
    output::print(format_args!("why         {}", clean(&c.rationale, 300)))?;
    output::print(format_args!("fingerprint {}", r.fingerprint))?;
    output::print(format_args!("description\n{}", block(r.tool.description.as_deref().unwrap_or("(none)"), 40)))?;
    if let Some(schema) = &r.tool.input_schema {
        output::print(format_args!("input schema\n{}", block(&serde_json::to_string_pretty(schema)?, 60)))?;
    }
    if !c.evidence.is_empty() {
        let mut evidence = output::table(["RULE", "FIELD", "TEXT"]);
        for e in &c.evidence {
            evidence.add_row([clean(&e.rule, 50), clean(&e.field, 50), clean(&e.text, 80)]);
        }
        output::print(format_args!("\nevidence\n{evidence}"))?;
    }
    if !c.findings.is_empty() {
        let mut findings = output::table(["SEVERITY", "FINDING", "TEXT"]);
        for f in &c.findings {
            findings.add_row([f.severity.to_string(), clean(&f.id, 50), clean(&f.text, 100)]);
        }
        output::print(format_args!("\nfindings\n{findings}"))?;
    }
    let mut history = output::table(["AT", "CHANGE", "DETAIL"]);
    for e in &t.history {
        let mut detail = String::new();
        if !e.changed_fields.is_empty() {
            detail = format!("changed: {}", e.changed_fields.join(", "));
        }
        if let Some(before) = &e.previous_description {
            detail.push_str(&format!("; description was: {}", clean(before, 100)));
        }
        history.add_row([e.at.clone(), e.kind.clone(), clean(&detail, 160)]);
    }
    output::print(format_args!("\nhistory\n{history}"))
}
