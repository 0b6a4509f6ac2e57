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
    match g.format {
        Format::Json => output::print_json(&hits)?,
        _ => print_table(&hits)?,
    }
    Ok(Outcome::Ok)
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

fn print_table(hits: &[SearchHit]) -> anyhow::Result<()> {
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
    output::print(table)
}
