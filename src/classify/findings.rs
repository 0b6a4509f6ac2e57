//! Structural security findings: what the regex rules of `data/rules/findings.toml` cannot express.
//!
//! - `confusable-name`: a name that mixes Latin letters with look-alike letters of another script
//!   (`send_emаil` with a Cyrillic `а`) so it passes for another tool; `non-ascii-name` for any other
//!   non-ASCII name.
//! - `suspicious-parameter`: a parameter with an innocuous side-channel name (`note`, `context`, `sidenote`,
//!   ...) whose description asks for files, secrets or the conversation: the classic poisoned-tool shape.
//! - `long-description`: a description far longer than documentation needs, where instructions hide.
//!
//! These run after the rule engine on the same bounded inputs (the schema walk of `schema`), add at most one
//! finding per id, and quote their evidence with invisible characters replaced, like the rule findings.

use super::schema;
use super::words::{quote, truncate};
use crate::model::{Finding, Risk, Tool};

/// Part of the ruleset version: bump when these checks change, so stored classifications are redone.
pub(crate) const VERSION: &str = "findings-1";

/// Descriptions longer than this (characters) get a `long-description` finding.
pub(crate) const LONG_DESCRIPTION: usize = 4000;

/// Parameter names that carry no meaning of their own and are the usual side channel of poisoned tools.
const SIDE_CHANNEL_NAMES: &[&str] = &[
    "note",
    "notes",
    "sidenote",
    "side note",
    "context",
    "extra",
    "metadata",
    "meta",
    "debug",
    "feedback",
    "reasoning",
    "remark",
    "remarks",
    "comment",
    "comments",
    "annotation",
    "info",
    "details",
    "data",
    "payload",
];

/// What a side-channel parameter's description asks for that a legitimate one does not.
const ASKS_FOR: &[&str] = &[
    "contents of",
    "content of",
    "~/",
    "/etc/",
    ".ssh",
    "id_rsa",
    ".env",
    "private key",
    "api key",
    "password",
    "credential",
    "secret",
    "token",
    "conversation",
    "chat history",
    "previous messages",
    "system prompt",
    "mcp.json",
    "config file",
];

/// The findings these checks can report, for catalogues of rules (SARIF): id, default severity, meaning.
pub(crate) const STRUCTURAL: &[(&str, Risk, &str)] = &[
    ("confusable-name", Risk::High, "the name mixes Latin letters with look-alike letters of another script"),
    ("non-ascii-name", Risk::Low, "the name has non-ASCII characters"),
    ("suspicious-parameter", Risk::High, "a side-channel parameter (note, context, ...) asks for files or secrets"),
    ("long-description", Risk::Low, "the description is long enough to hide instructions"),
];

/// A finding the classifier can report, described for rule catalogues.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FindingInfo {
    pub id: String,
    pub severity: Risk,
    pub text: String,
}

impl super::Classifier {
    /// Every finding id the rules and the structural checks can report (the engine's own
    /// `annotation-contradiction` included), each once.
    pub fn finding_rules(&self) -> Vec<FindingInfo> {
        let mut out: Vec<FindingInfo> = Vec::new();
        let mut add = |id: &str, severity: Risk, text: &str| {
            if !out.iter().any(|f| f.id == id) {
                out.push(FindingInfo { id: id.to_string(), severity, text: text.to_string() });
            }
        };
        for f in &self.rules.findings {
            add(&f.id, f.severity, &f.text);
        }
        for (id, severity, text) in STRUCTURAL {
            add(id, *severity, text);
        }
        add("annotation-contradiction", Risk::High, "the tool's annotations contradict what its text says it does");
        out
    }
}

/// Add the structural findings of `tool` to `out`.
pub(crate) fn check(tool: &Tool, out: &mut Vec<Finding>) {
    name_findings(&tool.name, out);
    reveal_tags(tool, out);
    if let Some(desc) = tool.description.as_deref() {
        let chars = desc.chars().count();
        if chars > LONG_DESCRIPTION {
            push(
                out,
                "long-description",
                Risk::Low,
                format!("the description is {chars} characters long, where instructions can hide"),
            );
        }
    }
    if let Some(s) = tool.input_schema.as_ref().filter(|s| s.is_object()) {
        for prop in schema::collect(s).properties {
            let last = prop.words.rsplit(' ').next().unwrap_or_default();
            if !(SIDE_CHANNEL_NAMES.contains(&prop.words.as_str()) || SIDE_CHANNEL_NAMES.contains(&last)) {
                continue;
            }
            let Some(desc) = prop.description.as_deref() else { continue };
            if let Some(what) = ASKS_FOR.iter().find(|w| desc.contains(*w)) {
                let at = desc.find(what).unwrap_or(0);
                let start = desc[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
                push(
                    out,
                    "suspicious-parameter",
                    Risk::High,
                    format!(
                        "parameter {} asks for \"{}\"",
                        prop.path,
                        shown(truncate(&desc[start..], at - start + 60))
                    ),
                );
                break;
            }
        }
    }
}

/// Tag characters (U+E0020..U+E007E) mirror ASCII: show a reviewer the text they hide, which the rule's
/// quote can only show as replacement characters.
fn reveal_tags(tool: &Tool, out: &mut [Finding]) {
    let Some(f) = out.iter_mut().find(|f| f.id == "unicode-tags") else { return };
    let mut hidden = String::new();
    let texts = std::iter::once(tool.name.as_str()).chain(tool.description.as_deref());
    for c in texts.flat_map(|t| truncate(t, 64 * 1024).chars()) {
        if let Some(ascii) = (c as u32).checked_sub(0xE0000).filter(|v| (0x20..0x7F).contains(v)) {
            hidden.push(char::from(ascii as u8));
        }
    }
    if !hidden.is_empty() {
        f.text =
            format!("Unicode tag characters hide this text from people (models read it): \"{}\"", quote(&hidden, 120));
    }
}

fn name_findings(name: &str, out: &mut Vec<Finding>) {
    if name.is_ascii() {
        return;
    }
    let latin = name.chars().any(|c| c.is_ascii_alphabetic());
    let confusable = name.chars().any(is_confusable_script);
    if latin && confusable {
        push(
            out,
            "confusable-name",
            Risk::High,
            format!("the name mixes Latin letters with look-alike letters of another script: \"{}\"", shown(name)),
        );
    } else {
        push(out, "non-ascii-name", Risk::Low, format!("the name has non-ASCII characters: \"{}\"", shown(name)));
    }
}

/// Letters of scripts with Latin look-alikes: Greek, Cyrillic, Armenian, Cherokee, fullwidth forms, and the
/// mathematical alphanumerics.
fn is_confusable_script(c: char) -> bool {
    matches!(c,
        '\u{0370}'..='\u{03FF}' | '\u{0400}'..='\u{052F}' | '\u{0530}'..='\u{058F}' | '\u{13A0}'..='\u{13FF}'
        | '\u{FF01}'..='\u{FF5E}' | '\u{1D400}'..='\u{1D7FF}')
}

/// Untrusted text as evidence: bounded, control and invisible characters shown as U+FFFD.
fn shown(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}') { '\u{FFFD}' } else { c })
        .collect();
    quote(&cleaned, 80)
}

fn push(out: &mut Vec<Finding>, id: &str, severity: Risk, text: String) {
    if !out.iter().any(|f| f.id == id) {
        out.push(Finding { id: id.to_string(), severity, text });
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
