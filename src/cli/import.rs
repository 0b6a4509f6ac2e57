//! `toolwarden import`: captured tools/list results into the catalogue, offline.
//!
//! Files go in as batches of whole servers, each one store transaction and one index commit: big enough that
//! a folder of a thousand captures costs a handful of commits, bounded (by tools and by bytes read) so that
//! importing forty thousand captures holds one batch in memory, not the whole folder. A file that is not a
//! capture at all is reported and skipped; a bad tool inside a file is reported with its position and the other
//! tools are imported. With `--server`, all files are pages of one listing: they go in as one snapshot.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::output::{self, Format, clean};
use super::{Globals, Outcome, UsageError};
use crate::model::{ChangeReport, ServerSnapshot, ToolCapture};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Captured tools/list results (JSON); a directory means every *.json file in it
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Server name for the tools (default: each file's stem, without a trailing `.tools`); with several files,
    /// their tools are joined into this one server (pages of one listing)
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

#[derive(Debug, Serialize)]
struct BadToolReport {
    file: String,
    index: usize,
    line: usize,
    column: usize,
    message: String,
}

#[derive(Debug, Serialize)]
struct FailedFile {
    file: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct ImportReport {
    servers: Vec<ChangeReport>,
    bad_tools: Vec<BadToolReport>,
    failed_files: Vec<FailedFile>,
    /// Pinned servers whose tools differ from their pin after this import.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pin_violations: Vec<crate::pin::PinDrift>,
}

/// The catalogue name for a capture file: its stem, without a trailing `.tools` (`github.tools.json` →
/// `github`).
pub(crate) fn server_name_for(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.strip_suffix(".tools") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => stem,
    }
}

/// Files as given, with directories replaced by their `*.json` files in name order.
fn expand(files: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for file in files {
        if file.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&file)
                .with_context(|| format!("reading directory {}", file.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")))
                .collect();
            found.sort();
            if found.is_empty() {
                tracing::warn!("{}: no *.json files in this directory", clean(&file.display().to_string(), 300));
            }
            out.extend(found);
        } else {
            out.push(file);
        }
    }
    Ok(out)
}

/// A batch is stored once it holds this many tools...
const BATCH_TOOLS: usize = 5_000;
/// ...or once this many bytes of capture files have been read into it.
const BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Largest capture file read (a real `tools/list` result is kilobytes; this bounds a hostile one).
const MAX_CAPTURE_BYTES: u64 = 256 * 1024 * 1024;

pub(super) fn read_capture(file: &Path) -> Result<ToolCapture, String> {
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if size > MAX_CAPTURE_BYTES {
        return Err(format!("{size} bytes is more than the {MAX_CAPTURE_BYTES} bytes a capture may have"));
    }
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    ToolCapture::parse(&text).map_err(|e| e.to_string())
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("import", g.format, &[Format::Table, Format::Json])?;
    if let Some(name) = &args.server
        && name.trim().is_empty()
    {
        return Err(UsageError("--server needs a non-empty name".into()).into());
    }
    let classifier = g.classifier()?;
    let files = expand(args.files)?;
    let mut report = ImportReport {
        servers: Vec::new(),
        bad_tools: Vec::new(),
        failed_files: Vec::new(),
        pin_violations: Vec::new(),
    };
    let mut batch = Batch::default();
    let mut catalogue = None;
    for file in &files {
        let shown = file.display().to_string();
        let capture = match read_capture(file) {
            Ok(capture) => capture,
            Err(error) => {
                // Parser messages may quote the file's text: cleaned for the terminal, kept as they are in JSON.
                tracing::warn!("{}: not imported: {}", clean(&shown, 300), clean(&error, 300));
                report.failed_files.push(FailedFile { file: shown, error });
                continue;
            }
        };
        for bad in &capture.bad {
            tracing::warn!("{}: skipped {}", clean(&shown, 300), clean(&bad.to_string(), 300));
            report.bad_tools.push(BadToolReport {
                file: shown.clone(),
                index: bad.index,
                line: bad.line,
                column: bad.column,
                message: bad.message.clone(),
            });
        }
        batch.bytes += std::fs::metadata(file).map_or(0, |m| m.len());
        batch.tools += capture.tools.len();
        match (&args.server, batch.snapshots.last_mut()) {
            // Pages of one listing: one snapshot, never split across batches (a later batch would remove the
            // tools of the earlier ones).
            (Some(_), Some(joined)) => joined.tools.extend(capture.tools),
            _ => batch.snapshots.push(ServerSnapshot {
                server: args.server.clone().unwrap_or_else(|| server_name_for(file)),
                tools: capture.tools,
                list_extra: capture.extra,
                ..ServerSnapshot::default()
            }),
        }
        if args.server.is_none() && batch.is_full() {
            store_batch(&mut catalogue, &mut batch, &classifier, &mut report, g)?;
        }
    }
    store_batch(&mut catalogue, &mut batch, &classifier, &mut report, g)?;
    if let Some(catalogue) = catalogue {
        catalogue.close()?;
    }
    match g.format {
        Format::Json => output::print_json(&report)?,
        _ => print_table(&report)?,
    }
    if !report.failed_files.is_empty() {
        return Err(UsageError(format!(
            "{} of {} files could not be imported (see above)",
            report.failed_files.len(),
            files.len()
        ))
        .into());
    }
    Ok(Outcome::Ok)
}

/// Snapshots read but not stored yet, and what they cost.
#[derive(Default)]
struct Batch {
    snapshots: Vec<ServerSnapshot>,
    tools: usize,
    bytes: u64,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.tools >= BATCH_TOOLS || self.bytes >= BATCH_BYTES
    }
}

/// Store a batch (opening the catalogue at the first one), add its pin drifts to the report, and empty it.
fn store_batch(
    catalogue: &mut Option<crate::catalogue::Catalogue>,
    batch: &mut Batch,
    classifier: &crate::classify::Classifier,
    report: &mut ImportReport,
    g: &Globals,
) -> anyhow::Result<()> {
    let snapshots = std::mem::take(batch).snapshots;
    if snapshots.is_empty() {
        return Ok(());
    }
    let catalogue = match catalogue {
        Some(catalogue) => catalogue,
        None => catalogue.insert(super::search::open_catalogue(g)?),
    };
    let reports = catalogue.ingest_many(&snapshots, classifier).context("storing the imported tools")?;
    for r in &reports {
        if let Some(drift) = catalogue.pin_drift(&r.server)?.filter(|d| !d.is_clean()) {
            report.pin_violations.push(drift);
        }
    }
    report.servers.extend(reports);
    Ok(())
}

fn names(list: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut shown: Vec<String> = list.iter().take(SHOWN).map(|n| clean(n, 60)).collect();
    if list.len() > SHOWN {
        shown.push(format!("… {} more", list.len() - SHOWN));
    }
    shown.join(", ")
}

fn print_table(report: &ImportReport) -> anyhow::Result<()> {
    if report.servers.is_empty() {
        return Ok(());
    }
    let mut table = output::table(["SERVER", "TOOLS", "ADDED", "CHANGED", "REMOVED", "UNCHANGED"]);
    for r in &report.servers {
        let tools = r.added.len() + r.changed.len() + r.unchanged;
        table.add_row([
            clean(&r.server, 60),
            tools.to_string(),
            r.added.len().to_string(),
            r.changed.len().to_string(),
            r.removed.len().to_string(),
            r.unchanged.to_string(),
        ]);
    }
    output::print(table)?;
    for r in &report.servers {
        let server = clean(&r.server, 60);
        if r.is_empty() {
            output::print(format_args!("{server}: no changes"))?;
            continue;
        }
        if !r.added.is_empty() {
            output::print(format_args!("{server}: added {}", names(&r.added)))?;
        }
        if !r.changed.is_empty() {
            output::print(format_args!(
                "{server}: CHANGED {} (the definition differs from the one in the catalogue: `toolwarden show {server}/{}` lists the history)",
                names(&r.changed),
                clean(&r.changed[0], 60)
            ))?;
        }
        if !r.removed.is_empty() {
            output::print(format_args!("{server}: removed {}", names(&r.removed)))?;
        }
    }
    for drift in &report.pin_violations {
        for line in super::pin::drift_lines(drift, true) {
            output::print(format_args!("{}: {line}", clean(&drift.server, 60)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_file_stem() {
        assert_eq!(server_name_for(Path::new("dir/github.tools.json")), "github");
        assert_eq!(server_name_for(Path::new("github.json")), "github");
        assert_eq!(server_name_for(Path::new(".tools.json")), ".tools");
        assert_eq!(server_name_for(Path::new("a.b.json")), "a.b");
    }
}
