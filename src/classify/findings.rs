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
use super::words::truncate;
use crate::model::{Finding, Risk, Tool};

/// Part of the ruleset version: bump when these checks change, so stored classifications are redone.
pub(crate) const VERSION: &str = "findings-2";

/// Descriptions longer than this (characters) get a `long-description` finding.
pub(crate) const LONG_DESCRIPTION: usize = 4000;

/// Parameter names that carry no meaning of their own and are the usual side channel of poisoned tools.
const SIDE_CHANNEL_NAMES: &[&str] = &[
    "note",
    "notes",
    "sidenote",
    "side note",
    "context",
    "feedback",
    "reasoning",
    "remark",
    "remarks",
    "comment",
    "comments",
    "annotation",
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
    "api token",
    "access token",
    "auth token",
    "conversation",
    "chat history",
    "previous messages",
    "system prompt",
    "mcp.json",
    "config file",
];

/// Verbs that hand something over to the tool: a side-channel parameter that asks for a secret says one.
const HANDS_OVER: &[&str] = &[
    "pass",
    "include",
    "provide",
    "put",
    "send",
    "attach",
    "paste",
    "copy",
    "read",
    "cat",
    "insert",
    "add",
    "append",
    "fill",
    "supply",
    "give",
    "enter",
    "contain",
    "containing",
    "contents",
    "content",
    "embed",
    "dump",
];

/// The findings these checks can report, for catalogues of rules (SARIF): id, default severity, meaning.
pub(crate) const STRUCTURAL: &[(&str, Risk, &str)] = &[
    ("confusable-name", Risk::High, "the name mixes Latin letters with look-alike letters of another script"),
    ("non-ascii-name", Risk::Low, "the name has non-ASCII characters"),
    ("suspicious-parameter", Risk::High, "a side-channel parameter (note, context, ...) asks for files or secrets"),
    ("long-description", Risk::Low, "the description is long enough to hide instructions"),
    ("invisible-characters", Risk::High, "invisible characters inside words, or bidi controls, hide text from people"),
    ("zero-width-character", Risk::Low, "an invisible character where scripts or emoji use them"),
    ("unicode-tags", Risk::Critical, "Unicode tag characters carry text people cannot see but models read"),
    (
        "terminal-escapes",
        Risk::High,
        "terminal escape sequences or carriage returns hide or rewrite text shown to people",
    ),
    ("control-characters", Risk::Medium, "control characters in the text"),
    ("confusable-text", Risk::High, "a word mixes Latin letters with look-alikes of another script"),
    ("encoded-payload", Risk::High, "encoded text (base64, hex, URL, rot13) decodes to an attack"),
    ("rug-pull", Risk::Low, "a pinned definition changed; the severity follows what changed"),
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
            // Asked for, not mentioned: a verb that hands something over comes first (`optional previous
            // messages for context` describes; `include the contents of ~/.ssh/id_rsa` asks).
            let asks = ASKS_FOR.iter().filter_map(|w| desc.find(w).map(|at| (w, at))).find(|(_, at)| {
                let window = &desc[desc[..*at].char_indices().rev().nth(60).map_or(0, |(i, _)| i)..*at];
                HANDS_OVER.iter().any(|v| window.split(|c: char| !c.is_ascii_alphabetic()).any(|w| w == *v))
            });
            if let Some((_, at)) = asks {
                let start = desc[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
                let path = format!("{}.description", prop.path.replacen("schema", "inputSchema", 1));
                let text = format!(
                    "parameter {} asks for \"{}\"",
                    prop.path,
                    shown(truncate(&desc[start..], at - start + 60))
                );
                if !out.iter().any(|f| f.id == "suspicious-parameter") {
                    out.push(
                        Finding::new("suspicious-parameter", Risk::High, text).at(path, desc[..at].chars().count()),
                    );
                }
                break;
            }
        }
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

fn shown(text: &str) -> String {
    super::poison::show(text, 80)
}

fn push(out: &mut Vec<Finding>, id: &str, severity: Risk, text: String) {
    if !out.iter().any(|f| f.id == id) {
        out.push(Finding::new(id, severity, text));
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
