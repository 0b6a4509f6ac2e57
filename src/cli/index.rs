//! `toolwarden index rebuild`: the search index from the store, from scratch (after reclassifying what the
//! current rules would classify differently).

use serde::Serialize;

use super::output::{self, Format};
use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: IndexCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum IndexCommand {
    /// Rebuild the search index from the catalogue
    Rebuild,
}

#[derive(Debug, Serialize)]
struct Rebuilt {
    tools: usize,
    /// Definitions classified again because the rules changed since they were stored.
    reclassified: usize,
    millis: u128,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("index", g.format, &[Format::Table, Format::Json])?;
    match args.command {
        IndexCommand::Rebuild => {
            let classifier = g.classifier()?;
            let mut catalogue = super::search::open_catalogue(g)?;
            let started = std::time::Instant::now();
            // The index is derived from the classifications too: bring those up to the current rules first.
            let reclassified = catalogue.reclassify(&classifier)?;
            let tools = catalogue.rebuild_index()?;
            catalogue.close()?;
            let done = Rebuilt { tools, reclassified, millis: started.elapsed().as_millis() };
            match g.format {
                Format::Json => output::print_json(&done)?,
                _ => {
                    if reclassified > 0 {
                        output::print(format_args!("reclassified {reclassified} definitions with the current rules"))?;
                    }
                    output::print(format_args!("indexed {} tools in {} ms", done.tools, done.millis))?
                }
            }
        }
    }
    Ok(Outcome::Ok)
}
