//! `toolwarden export`: the whole catalogue, one tool per line (`--format jsonl`, the default, or `csv`;
//! `--format json` gives one JSON array).
//!
//! Tools are streamed from the store, never all held in memory. With an empty catalogue nothing is written to
//! stdout (the hint goes to stderr), so the output stays a valid (empty) file. CSV cells that a spreadsheet would take for
//! a formula (`=`, `+`, `-`, `@`, tab, carriage return first) are prefixed with `'`: descriptions are written
//! by strangers.

use std::io::Write;

use super::output::{self, Format};
use super::{Globals, Outcome};
use crate::model::ToolRecord;

#[derive(Debug, clap::Args)]
pub struct Args {}

const CSV_HEADER: [&str; 11] = [
    "server",
    "name",
    "title",
    "category",
    "risk",
    "confidence",
    "factors",
    "evidence",
    "findings",
    "fingerprint",
    "description",
];

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let Args {} = args;
    output::require_format("export", g.format, &[Format::Table, Format::Jsonl, Format::Csv, Format::Json])?;
    let Some(catalogue) = super::search::open_nonempty(g, Some(if g.format == Format::Json { "[]" } else { "" }))?
    else {
        return Ok(Outcome::Ok);
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match g.format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(CSV_HEADER).map_err(csv_error)?;
            catalogue
                .for_each_tool(&[], |r| -> anyhow::Result<()> { csv.write_record(csv_row(&r)).map_err(csv_error) })?;
            csv.flush()?;
        }
        Format::Json => {
            let mut first = true;
            out.write_all(b"[")?;
            catalogue.for_each_tool(&[], |r| -> anyhow::Result<()> {
                out.write_all(if first { b"\n" } else { b",\n" })?;
                first = false;
                serde_json::to_writer(&mut out, &r)?;
                Ok(())
            })?;
            out.write_all(b"\n]\n")?;
        }
        _ => catalogue.for_each_tool(&[], |r| -> anyhow::Result<()> {
            serde_json::to_writer(&mut out, &r)?;
            out.write_all(b"\n")?;
            Ok(())
        })?,
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

/// A CSV error as an I/O error when it is one, so a closed pipe stays a quiet success.
fn csv_error(e: csv::Error) -> anyhow::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io.into(),
        other => anyhow::anyhow!("writing CSV: {other:?}"),
    }
}

/// A cell a spreadsheet will not evaluate.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() }
}

fn csv_row(r: &ToolRecord) -> Vec<String> {
    let c = &r.classification;
    let evidence: Vec<String> = c.evidence.iter().map(|e| format!("{}:{}", e.rule, e.text)).collect();
    let findings: Vec<&str> = c.findings.iter().map(|f| f.id.as_str()).collect();
    vec![
        cell(&r.server),
        cell(&r.tool.name),
        cell(&r.tool.display_title().unwrap_or_default()),
        c.category.to_string(),
        c.risk.to_string(),
        format!("{:.3}", c.confidence),
        cell(&c.factors.join(";")),
        cell(&evidence.join(";")),
        cell(&findings.join(";")),
        r.fingerprint.clone(),
        cell(r.tool.description.as_deref().unwrap_or("")),
    ]
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("plain"), "plain");
    }
}
