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
