//! `toolwarden stats`: counts by server, category and risk.

use super::output::{self, Format, clean};
use super::{Globals, Outcome};
use crate::model::{Category, Risk};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let Args {} = args;
    output::require_format("stats", g.format, &[Format::Table, Format::Json])?;
    // For programs an empty catalogue is all zeros (and the hint on stderr); for people it is the hint.
    let catalogue = if g.format == Format::Json {
        let catalogue = super::search::open_catalogue(g)?;
        if catalogue.counts()?.0 == 0 {
            eprintln!("{}", crate::catalogue::EMPTY_HINT);
        }
        catalogue
    } else {
        let Some(catalogue) = super::search::open_nonempty(g, None)? else { return Ok(Outcome::Ok) };
        catalogue
    };
    let stats = catalogue.stats()?;
    if g.format == Format::Json {
        output::print_json(&stats)?;
        return Ok(Outcome::Ok);
    }
    output::print(format_args!(
        "{} servers, {} tools ({} distinct definitions kept, with history)",
        stats.servers, stats.tools, stats.definitions
    ))?;
    let mut by_risk = output::table(["RISK", "TOOLS"]);
    for risk in Risk::ALL.iter().rev() {
        by_risk.add_row([risk.to_string(), stats.by_risk.get(risk.as_str()).copied().unwrap_or(0).to_string()]);
    }
    output::print(format_args!("\n{by_risk}"))?;
    let mut by_category = output::table(["CATEGORY", "TOOLS"]);
    for category in Category::ALL.iter().rev() {
        let count = stats.by_category.get(category.as_str()).copied().unwrap_or(0);
        by_category.add_row([category.to_string(), count.to_string()]);
    }
    output::print(format_args!("\n{by_category}"))?;
    let mut by_server = output::table(["SERVER", "TOOLS", "CRITICAL", "HIGH", "MEDIUM", "LOW", "LAST RUN"]);
    for s in &stats.by_server {
        let n = |r: Risk| s.by_risk.get(r.as_str()).copied().unwrap_or(0).to_string();
        by_server.add_row([
            clean(&s.server, 60),
            s.tools.to_string(),
            n(Risk::Critical),
            n(Risk::High),
            n(Risk::Medium),
            n(Risk::Low),
            s.last_outcome.clone().unwrap_or_default(),
        ]);
    }
    output::print(format_args!("\n{by_server}"))?;
    Ok(Outcome::Ok)
}
