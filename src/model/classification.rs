//! What the classifier concludes about one tool, with the evidence for it.

use serde::{Deserialize, Serialize};

use super::{Category, Risk, Severity};

/// One piece of evidence: which rule matched which words of which field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Rule id, e.g. `name.delete`.
    pub rule: String,
    /// `name`, `title`, `description`, `schema` (with a path such as `schema.properties.action`) or
    /// `annotations`.
    pub field: String,
    /// The matched text, quoted from the tool (bounded in length).
    pub text: String,
}

/// A security finding about a tool definition (an annotation that contradicts the text, hidden
/// instructions, invisible characters, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub text: String,
    /// Where the quoted text sits: a field path (`description`, `inputSchema.properties.note.default`,
    /// `server.instructions`; `a + b` for text split across fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Character offset of the quoted text in that field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl Finding {
    pub fn new(id: impl Into<String>, severity: Severity, text: impl Into<String>) -> Finding {
        Finding { id: id.into(), severity, text: text.into(), location: None, offset: None }
    }

    /// The finding at a field path and character offset.
    pub fn at(mut self, location: impl Into<String>, offset: usize) -> Finding {
        self.location = Some(location.into());
        self.offset = Some(offset);
        self
    }
}

/// The classifier's verdict on one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub category: Category,
    pub risk: Risk,
    /// 0..=1: how sure the rules are (strong name verbs score high, a lone weak hint low).
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    /// Blast-radius factors that raised the risk: `bulk`, `open_world`, `credentials`, `production`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Version of the ruleset that produced this, so a rules update can reclassify the catalogue.
    pub ruleset: String,
    /// The blast radius in one sentence, built from the category, risk, evidence and factors
    /// ([`rationale`]); derived, so the store recomputes it rather than keeping it.
    #[serde(default)]
    pub rationale: String,
}

/// One sentence a catalogue page can show: the category and risk, what the deciding evidence says, what
/// misuse costs, and the factors that widen it. Example: `Destructive, critical blast radius: the name says
/// "delete"; one call can delete or overwrite data the agent cannot restore.`
pub fn rationale(category: Category, risk: Risk, evidence: &[Evidence], factors: &[String]) -> String {
    let what = evidence
        .iter()
        .find(|e| !e.rule.starts_with("factor.") && !e.rule.starts_with("annotation.openWorld"))
        .map(|e| {
            let place = match e.field.split('.').next().unwrap_or("") {
                "name" => "the name",
                "title" => "the title",
                "description" => "the description",
                "annotations" => "the annotations",
                _ => "the input schema",
            };
            let text: String = e.text.chars().filter(|c| !c.is_control()).take(60).collect();
            format!("{place} says \"{text}\"; ")
        })
        .unwrap_or_else(|| "no rule matched, so it is taken to read; ".to_string());
    let harm = match category {
        Category::Read => "it retrieves or computes without changing anything, though what it reads can be exposed",
        Category::Write => "misuse creates or changes data that can be put right; nothing is deleted or charged",
        Category::Execute => {
            "it runs code or acts on the world (commands, jobs, messages to people), with effects that depend on its arguments"
        }
        Category::Destructive => "one call can delete, overwrite or stop something the agent cannot restore",
        Category::Financial => "one call can move money or create a monetary obligation",
    };
    let reach: Vec<&str> = factors
        .iter()
        .filter_map(|f| match f.as_str() {
            "bulk" => Some("many items at once"),
            "production" => Some("production systems"),
            "open_world" => Some("systems outside the server"),
            "credentials" => Some("secrets or credentials"),
            _ => None,
        })
        .collect();
    let reach = if reach.is_empty() { String::new() } else { format!(", and it reaches {}", reach.join(" and ")) };
    let mut title = category.as_str().to_string();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{title}, {} blast radius: {what}{harm}{reach}.", risk.as_str())
}

/// One tool as the catalogue holds it: where it comes from, its current definition and its classification.
/// The store returns these; search, show, export and policy generation consume them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRecord {
    pub server: String,
    pub tool: super::Tool,
    pub fingerprint: String,
    pub classification: Classification,
}
