//! `toolwarden pin SERVER`: approve the current tool definitions of a server, so later crawls, imports, `show`
//! and `scan` report every change against them (rug pulls), and a proxy can refuse unpinned definitions.

use super::output::{self, Format, clean};
use super::{Globals, Outcome, UsageError};
use crate::catalogue::Catalogue;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server to pin (as `toolwarden stats` names it); repeatable
    #[arg(required = true, value_name = "SERVER")]
    pub servers: Vec<String>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("pin", g.format, &[Format::Table, Format::Json])?;
    let mut catalogue = Catalogue::open(&g.data_dir())?;
    let mut pins = Vec::new();
    for server in &args.servers {
        match catalogue.pin(server)? {
            Some(pin) => pins.push(pin),
            None => {
                return Err(UsageError(format!(
                    "no server named {:?} in the catalogue; crawl or import it first (`toolwarden stats` lists the servers)",
                    clean(server, 200)
                ))
                .into());
            }
        }
    }
    if g.format == Format::Json {
        output::print_json(&pins)?;
    } else if !g.quiet {
        for pin in &pins {
            output::print(format_args!(
                "pinned {} tools of {} at {}",
                pin.tools.len(),
                clean(&pin.server, 80),
                pin.pinned_at
            ))?;
        }
    }
    Ok(Outcome::Ok)
}

/// Lines describing a drift for a terminal (untrusted names and diff lines cleaned).
pub(super) fn drift_lines(drift: &crate::pin::PinDrift, with_diff: bool) -> Vec<String> {
    let mut out = Vec::new();
    if drift.is_clean() {
        out.push(format!("pinned at {}: all {} tools as approved", drift.pinned_at, drift.unchanged));
        return out;
    }
    out.push(format!(
        "pinned at {}: {} tools differ from the pin ({} added, {} removed, {} changed)",
        drift.pinned_at,
        drift.violations(),
        drift.added.len(),
        drift.removed.len(),
        drift.changed.len()
    ));
    for name in &drift.added {
        out.push(format!("  + {} (not pinned)", clean(name, 80)));
    }
    for name in &drift.removed {
        out.push(format!("  - {} (pinned, gone)", clean(name, 80)));
    }
    for c in &drift.changed {
        out.push(format!("  ~ {} changed: {}", clean(&c.name, 80), c.fields.join(", ")));
        if with_diff {
            for line in c.diff.lines().take(40) {
                out.push(format!("      {}", clean(line, 160)));
            }
        }
    }
    out
}
