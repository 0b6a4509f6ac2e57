//! Rendering for people and programs: tables on stdout, JSON for `--format json`.
//!
//! Everything printed from a tool definition is text written by strangers. [`clean`] strips control and
//! escape characters (a description must not be able to move the cursor or recolour a terminal) and bounds
//! the length, so one hostile tool cannot break the table of all the others.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, TableComponent, presets};
use serde::Serialize;

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

/// Make untrusted text safe for one table cell or log line: control characters (including ESC, so no terminal
/// escape sequences), bidi controls and zero-width characters are replaced, whitespace runs collapse to one
/// space, and the result is cut at `max` characters with an ellipsis.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut count = 0;
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_control() || is_invisible(c) {
            '\u{FFFD}'
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if count == max {
            out.push('…');
            return out.trim_end().to_string();
        }
        out.push(c);
        count += 1;
    }
    out.trim().to_string()
}

/// Characters that render as nothing or reorder text: zero-width, bidi controls, tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}' | '\u{00AD}' | '\u{180E}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_escapes_and_bounds_length() {
        assert_eq!(clean("a\u{1b}[31mred\n\nb", 100), "a\u{FFFD}[31mred b");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("x\u{202E}y\u{E0041}", 10), "x\u{FFFD}y\u{FFFD}");
    }
}
