//! Rendering for people and programs: tables on stdout, JSON for `--format json`.
//!
//! Everything printed from a tool definition is text written by strangers. [`clean`] strips control and
//! escape characters (a description must not be able to move the cursor or recolour a terminal) and bounds
//! the length, so one hostile tool cannot break the table of all the others.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, TableComponent, presets};
use serde::Serialize;

pub use crate::model::text::{clean, is_invisible};

/// Output formats. Not every command accepts every format; each says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Jsonl,
    Csv,
    Sarif,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Sarif => "sarif",
        }
    }
}

/// Fail with a usage error when `format` is not one of `allowed`.
pub fn require_format(command: &str, format: Format, allowed: &[Format]) -> anyhow::Result<()> {
    if allowed.contains(&format) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
    Err(crate::cli::UsageError(format!(
        "`{command}` does not support --format {}; use one of: {}",
        format.as_str(),
        names.join(", ")
    ))
    .into())
}

/// Print a value as pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Print text to stdout (propagating a broken pipe as an error that `main` treats as success).
pub fn print(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// A table with our house style.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    // Columns separated by space, one rule under the header: compact, and still readable when piped.
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_style(TableComponent::HeaderLines, '─');
    table.set_style(TableComponent::MiddleHeaderIntersections, ' ');
    table.set_header(header);
    table
}
