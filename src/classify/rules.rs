//! The rule file format (`data/rules/*.toml`) and loading it, with errors that name the file and the rule.
//!
//! A ruleset is a set of TOML files whose tables are merged in file-name order. Each kind of rule answers one
//! question the classifier asks:
//!
//! - `[[verb]]`: which action does this word name? Looked up in the name's words, in enum values of action-like
//!   schema properties, and in the first sentence of the description.
//! - `[[object]]`: does acting on this thing make the action more severe? (`create` + `refund` is financial.)
//! - `[[phrase]]`: regexes over whole fields for what single words cannot say (`drop table`, `cannot be undone`).
//! - `[[property]]`: regexes over input-schema property names (`command`, `sql`, `amount`).
//! - `[[negation]]`: text that says a tool does not change anything (`read-only`, `does not modify`).
//! - `[[factor]]`: blast-radius factors that raise the risk (bulk, open world, credentials, production).
//! - `[[finding]]`: text in a definition that is a security finding by itself (hidden instructions).
//! - `[fit]` and `[[weight]]`: the fitted score of each rule hit in each place for each category (see `score`).
//!
//! Patterns are matched against lowercased text; names are matched as their words joined by single spaces
//! (`deleteAllRows` → `delete all rows`).

use std::path::Path;

use serde::Deserialize;

use super::ClassifyError;
use crate::model::{Category, Severity};

/// The built-in rule files, embedded at compile time.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("actions.toml", include_str!("../../data/rules/actions.toml")),
    ("objects.toml", include_str!("../../data/rules/objects.toml")),
    ("phrases.toml", include_str!("../../data/rules/phrases.toml")),
    ("schema.toml", include_str!("../../data/rules/schema.toml")),
    ("factors.toml", include_str!("../../data/rules/factors.toml")),
    ("findings.toml", include_str!("../../data/rules/findings.toml")),
    ("weights.toml", include_str!("../../data/rules/weights.toml")),
];

/// One rule file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    #[serde(default)]
    pub(crate) settings: Settings,
    #[serde(default)]
    pub(crate) verb: Vec<VerbRule>,
    #[serde(default)]
    pub(crate) object: Vec<ObjectRule>,
    #[serde(default)]
    pub(crate) phrase: Vec<PhraseRule>,
    #[serde(default)]
    pub(crate) property: Vec<PropertyRule>,
    #[serde(default)]
    pub(crate) negation: Vec<NegationRule>,
    #[serde(default)]
    pub(crate) factor: Vec<FactorRule>,
    #[serde(default)]
    pub(crate) finding: Vec<FindingRule>,
    /// Fitted scores (`data/rules/weights.toml`, written by `toolwarden corpus fit`).
    #[serde(default)]
    pub(crate) fit: Option<FitTable>,
    #[serde(default)]
    pub(crate) weight: Vec<WeightRule>,
}

/// How the scores were fitted, and the bias of each category (read, write, execute, destructive, financial).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FitTable {
    pub(crate) bias: [f32; 5],
    /// Free text: the corpus and settings the scores were fitted on.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) fitted_on: String,
}

/// The fitted scores of one feature (`rule@place`) for each category.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WeightRule {
    pub(crate) feature: String,
    pub(crate) scores: [f32; 5],
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Schema property names whose enum values (or description) list what one call does.
    #[serde(default)]
    pub(crate) action_properties: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerbRule {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) words: Vec<String>,
    /// Objects never change this verb's category (deleting a payment is destructive, not financial).
    #[serde(default)]
    pub(crate) keep: bool,
    /// Words that are often nouns or prefixes (`post`, `email`, `block`): in a name they speak only when the
    /// name has no plain verb.
    #[serde(default)]
    pub(crate) noun: bool,
    /// Whether the words count in names (`drop` in a name is often a drag-and-drop).
    #[serde(default = "yes")]
    pub(crate) in_names: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectRule {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) words: Vec<String>,
    /// Verb rule ids this object escalates; empty means every verb that changes something.
    #[serde(default)]
    pub(crate) verbs: Vec<String>,
    /// Words that cancel this object when they appear in the name or the description's first sentence.
    #[serde(default)]
    pub(crate) unless: Vec<String>,
}

/// Where a phrase, factor or finding pattern is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Field {
    Name,
    Description,
    /// Property names, enum values and property descriptions of the input schema.
    Schema,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhraseRule {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) fields: Vec<Field>,
    pub(crate) patterns: Vec<String>,
    /// The phrase says exactly which statements a query tool runs ("INSERT or UPDATE"), so the generic
    /// "runs queries" reading (execute) no longer applies.
    #[serde(default)]
    pub(crate) restricts: bool,
    /// Rule ids whose hits this phrase cancels: `stop (recording|watching)` ends the tool's own read-only
    /// activity, so it supersedes `verb.stop`.
    #[serde(default)]
    pub(crate) supersedes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PropertyRule {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) patterns: Vec<String>,
    /// Only counts when the tool otherwise changes something (an `amount` on a read tool is a filter, on a
    /// write tool it is money moving); it then raises the category like an object does.
    #[serde(default)]
    pub(crate) needs_action: bool,
    /// Another property rule id that must match a property of the same tool too, or this one counts half.
    #[serde(default)]
    pub(crate) with: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NegationRule {
    pub(crate) id: String,
    pub(crate) patterns: Vec<String>,
}

/// The blast-radius factors the risk level knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Factor {
    Bulk,
    OpenWorld,
    Credentials,
    Production,
}

impl Factor {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Factor::Bulk => "bulk",
            Factor::OpenWorld => "open_world",
            Factor::Credentials => "credentials",
            Factor::Production => "production",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactorRule {
    pub(crate) id: String,
    pub(crate) factor: Factor,
    pub(crate) fields: Vec<Field>,
    pub(crate) patterns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingRule {
    pub(crate) id: String,
    pub(crate) severity: Severity,
    pub(crate) text: String,
    pub(crate) fields: Vec<Field>,
    pub(crate) patterns: Vec<String>,
}

/// Parse one file's text.
pub(crate) fn parse(file: &str, text: &str) -> Result<RuleFile, ClassifyError> {
    toml::from_str(text).map_err(|e| ClassifyError::Rules { path: file.to_string(), message: one_line(&e.to_string()) })
}

/// Read every `*.toml` of a directory, sorted by file name.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, ClassifyError> {
    let io = |e: std::io::Error| ClassifyError::Rules { path: dir.display().to_string(), message: e.to_string() };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ClassifyError::Rules { path: path.display().to_string(), message: e.to_string() })?;
            files.push((path.display().to_string(), text));
        }
    }
    if files.is_empty() {
        return Err(ClassifyError::Rules {
            path: dir.display().to_string(),
            message: "no *.toml rule files in this directory".into(),
        });
    }
    files.sort();
    Ok(files)
}

/// toml errors span several lines (a source excerpt); our errors are one line each.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|')).collect::<Vec<_>>().join(" ")
}
