//! Policies: the document format, validation, generation from the catalogue, import of rule-based YAML, and
//! the pure `decide()` the proxy calls for every tool call.
//!
//! The flow is one way: text → [`Source::parse`] (shape, located serde errors) → [`compile`] (meaning:
//! regexes, paths, counters) → [`CompiledPolicy`] → [`decide`]. `policy check` runs the same two steps the
//! proxy does, so a policy that checks clean is one the proxy loads. [`generate`] goes the other way, from
//! classified tools to a document, and is pure too: the CLI fetches the records from the catalogue.
//!
//! Only `model` is imported; no I/O happens here except in [`load_file`], the one convenience the proxy and
//! the CLI share for reading a file from disk.

mod check;
mod decide;
mod document;
mod generate;
mod import;
mod locate;
mod parse;

use std::path::Path;

pub use check::{ArgPath, CompiledPolicy, check, compile};
pub use decide::{Call, Charge, CounterKey, Counters, Decision, ScopeKey, counter_keys, decide, explain};
pub use document::{
    Action, Condition, DefaultAction, DenyIf, Limit, Op, Policy, Quantity, Scope, ToolRule, UnknownWord, Window, schema,
};
pub use generate::{Profile, generate};
pub use import::{Import, import_yaml};
pub use parse::{Diagnostic, Level, MAX_POLICY_BYTES, Source, Syntax};

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{}", render_all(file, diagnostics))]
    Invalid { file: String, diagnostics: Vec<Diagnostic> },
}

fn render_all(file: &str, diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| d.render(file)).collect();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    format!("{file} has {errors} error{}:\n{}", if errors == 1 { "" } else { "s" }, lines.join("\n"))
}

/// Read a policy text from disk, bounded by [`MAX_POLICY_BYTES`].
pub fn read_source(path: &Path) -> Result<Source, PolicyError> {
    use std::io::Read;
    let file = path.display().to_string();
    let read_err = |source| PolicyError::Read { file: file.clone(), source };
    let handle = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    handle.take(MAX_POLICY_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|e| PolicyError::Invalid {
        file: file.clone(),
        diagnostics: vec![Diagnostic::error("", format!("not UTF-8 text ({e})"))],
    })?;
    Ok(Source::new(Syntax::guess(&file, &text), text))
}

/// Parse and compile a source; errors are located in its text.
pub fn load(source: &Source) -> Result<CompiledPolicy, Vec<Diagnostic>> {
    let policy = source.parse().map_err(|d| vec![d])?;
    let duplicates = source.duplicate_keys(&policy);
    match compile(policy) {
        Ok(compiled) if duplicates.is_empty() => Ok(compiled),
        Ok(_) => Err(duplicates),
        Err(mut errors) => {
            source.locate(&mut errors);
            errors.extend(duplicates);
            Err(errors)
        }
    }
}

/// Read, parse and compile a policy file: what the proxy does at start and on every reload.
pub fn load_file(path: &Path) -> Result<CompiledPolicy, PolicyError> {
    let source = read_source(path)?;
    load(&source).map_err(|diagnostics| PolicyError::Invalid { file: path.display().to_string(), diagnostics })
}

#[cfg(test)]
#[path = "schema_tests.rs"]
pub(crate) mod schema_tests;
