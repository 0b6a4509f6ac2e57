//! `toolwarden search`: the catalogue by words, category, risk and server.

use anyhow::Context;

use super::output::{self, Format, clean};
use super::{Globals, Outcome};
use crate::catalogue::{Catalogue, EMPTY_HINT, SearchHit, SearchQuery};
use crate::model::{Category, Risk};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to look for in names, titles and descriptions
    pub query: Option<String>,
    /// Only these categories (repeatable)
    #[arg(long, value_name = "CAT")]
    pub category: Vec<Category>,
    /// Only these risk levels (repeatable)
    #[arg(long, value_name = "LEVEL")]
    pub risk: Vec<Risk>,
    /// Only this risk level and above
    #[arg(long, value_name = "LEVEL")]
    pub min_risk: Option<Risk>,
    /// Only this server
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// At most N results
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// Open the catalogue of the data directory, saying which directory when it fails.
pub(super) fn open_catalogue(g: &Globals) -> anyhow::Result<Catalogue> {
    let dir = g.data_dir();
    Catalogue::open(&dir).with_context(|| format!("opening the catalogue in {}", dir.display()))
}

/// For reading commands: `Some(catalogue)`, or `None` after giving the empty-catalogue hint. With
/// `data: None` the hint is the answer, on stdout (tables for people); with `data: Some(text)` stdout carries
/// data, so the hint goes to stderr and `text` (an empty JSON array, or nothing) to stdout.
pub(super) fn open_nonempty(g: &Globals, data: Option<&str>) -> anyhow::Result<Option<Catalogue>> {
    let catalogue = open_catalogue(g)?;
    let (servers, _) = catalogue.counts()?;
    if servers > 0 {
        return Ok(Some(catalogue));
    }
    match data {
        None => output::print(EMPTY_HINT)?,
        Some(text) => {
            eprintln!("{EMPTY_HINT}");
            if !text.is_empty() {
                output::print(text)?;
            }
        }
    }
    Ok(None)
}

/// What [`open_nonempty`] prints on stdout for an empty catalogue in this format.
pub(super) fn empty_data(g: &Globals, json: &'static str) -> Option<&'static str> {
    (g.format != Format::Table).then_some(if g.format == Format::Json { json } else { "" })
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("search", g.format, &[Format::Table, Format::Json])?;
    let Some(mut catalogue) = open_nonempty(g, empty_data(g, "[]"))? else { return Ok(Outcome::Ok) };
    let query = SearchQuery {
        text: args.query,
        categories: args.category,
        risks: args.risk,
        min_risk: args.min_risk,
        server: args.server,
        limit: args.limit,
    };
    let hits = catalogue.search(&query)?;
    let mut security = Vec::with_capacity(hits.len());
    for hit in &hits {
        security.push(Security {
            findings: catalogue.findings_of(&hit.fingerprint)?,
            also_offered_by: catalogue.other_servers_with(&hit.name, &hit.server)?,
        });
    }
    match g.format {
        Format::Json => {
            let rows: Vec<HitJson<'_>> =
                hits.iter().zip(&security).map(|(hit, security)| HitJson { hit, security }).collect();
            output::print_json(&rows)?
        }
        _ => print_table(&hits, &security)?,
    }
    Ok(Outcome::Ok)
}

/// What the catalogue knows about a hit's safety beyond its risk: its findings, and the other servers that
/// offer a tool of the same name (one can shadow the other).
#[derive(Debug, serde::Serialize)]
struct Security {
    findings: Vec<crate::model::Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also_offered_by: Vec<String>,
}

/// One row of `search --format json`: the hit and its [`Security`].
#[derive(Debug, serde::Serialize)]
struct HitJson<'a> {
    #[serde(flatten)]
    hit: &'a SearchHit,
    #[serde(flatten)]
    security: &'a Security,
}

/// The evidence of a hit in a few words: `name "delete", description "permanently"`.
pub(super) fn why(evidence: &[crate::model::Evidence], max: usize) -> String {
    let mut parts: Vec<String> =
        evidence.iter().take(max).map(|e| format!("{} \"{}\"", clean(&e.field, 30), clean(&e.text, 40))).collect();
    if evidence.len() > max {
        parts.push(format!("+{}", evidence.len() - max));
    }
    parts.join(", ")
}

fn print_table(hits: &[SearchHit], security: &[Security]) -> anyhow::Result<()> {
    if hits.is_empty() {
        return output::print("no tools match");
    }
    let mut table = output::table(["RISK", "CATEGORY", "TOOL", "WHY", "DESCRIPTION"]);
    for hit in hits {
        table.add_row([
            hit.risk.to_string(),
            hit.category.to_string(),
            format!("{}/{}", clean(&hit.server, 40), clean(&hit.name, 60)),
            why(&hit.evidence, 3),
            clean(&hit.snippet, 90),
        ]);
    }
    output::print(table)?;
    // Findings under the table, so a risky-looking result is not mistaken for a clean one.
    for (hit, s) in hits.iter().zip(security) {
        let mut notes: Vec<String> =
            s.findings.iter().map(|f| format!("{} ({})", clean(&f.id, 40), f.severity)).collect();
        if !s.also_offered_by.is_empty() {
            let others: Vec<String> = s.also_offered_by.iter().take(5).map(|o| clean(o, 40)).collect();
            notes.push(format!("duplicate-tool-name (also on {})", others.join(", ")));
        }
        if !notes.is_empty() {
            output::print(format_args!("! {}/{}: {}", clean(&hit.server, 40), clean(&hit.name, 60), notes.join(", ")))?;
        }
    }
    Ok(())
}
