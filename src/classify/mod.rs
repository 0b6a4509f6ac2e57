//! The risk classifier: deterministic rules from `data/rules/*.toml` turned into a category, a risk level, a
//! confidence, blast-radius factors, findings and quoted evidence for every tool.
//!
//! The rules are data, not code, so a reviewer can read why a tool got its category and a user can replace
//! them (`--rules DIR`). They are compiled once ([`Classifier::builtin`], [`Classifier::from_dir`]) into word
//! tables and one `RegexSet` per field; classifying is then a pure function of the tool, bounded in time
//! whatever the tool contains (see the limits in `words`, `schema` and `engine`). The ruleset version is a
//! hash of the rule files' content, so the catalogue knows when stored classifications are stale.
//!
//! Layout: `rules` is the file format, `compiled` the compiled form, `words` name and prose splitting,
//! `schema` the bounded input-schema walk, `engine` the hits and the decision, `findings` the structural security
//! checks that regexes cannot express.

mod compiled;
mod engine;
mod findings;
mod poison;
mod rules;
mod schema;
pub mod score;
mod words;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::model::{Classification, Finding, Tool};

pub use findings::FindingInfo;

/// Errors loading a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("{path}: {message}")]
    Rules { path: String, message: String },
}

/// A compiled ruleset. Build it once and classify many tools with it; cloning is cheap.
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Arc<compiled::Ruleset>,
    version: String,
}

impl Classifier {
    /// The rules embedded in the binary (compiled once per process).
    pub fn builtin() -> Classifier {
        static BUILTIN: OnceLock<Classifier> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let files = rules::BUILTIN.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect();
                Classifier::from_texts(files).unwrap_or_else(|e| panic!("the built-in rules are invalid: {e}"))
            })
            .clone()
    }

    /// Rules from a directory of `*.toml` files, replacing the built-in ones.
    pub fn from_dir(dir: &Path) -> Result<Classifier, ClassifyError> {
        Classifier::from_texts(rules::read_dir(dir)?)
    }

    /// Rules from `(file name, TOML text)` pairs, in the order given.
    pub fn from_texts(files: Vec<(String, String)>) -> Result<Classifier, ClassifyError> {
        let mut hasher = Sha256::new();
        let mut parsed = Vec::with_capacity(files.len());
        for (name, text) in &files {
            hasher.update(text.as_bytes());
            hasher.update([0u8]);
            parsed.push((name.clone(), rules::parse(name, text)?));
        }
        hasher.update(findings::VERSION.as_bytes());
        let rules = compiled::Ruleset::compile(parsed)?;
        let version = format!("rules-{}", &hex::encode(hasher.finalize())[..12]);
        Ok(Classifier { rules: Arc::new(rules), version })
    }

    /// A version string identifying this ruleset's content (stored with every classification).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The scored features of one tool: what the fitted rule scores are summed over.
    pub fn features(&self, tool: &Tool) -> Vec<score::Feature> {
        engine::features(&self.rules, tool)
    }

    /// The fitted scores this ruleset decides with.
    pub fn weights(&self) -> &score::Weights {
        &self.rules.weights
    }

    /// Classify one tool.
    pub fn classify(&self, tool: &Tool) -> Classification {
        let mut c = engine::classify(&self.rules, tool, &self.version);
        poison::scan_tool(&self.rules, tool, &mut c.findings);
        findings::check(tool, &mut c.findings);
        c
    }

    /// What changed in a definition since it was pinned, as findings whose severity follows what changed: a
    /// finding the pinned definition did not have (a new instruction to the model, a new side channel) keeps
    /// its severity; a tool that now destroys or moves money where it did not is high; a new parameter is
    /// medium; any other change (wording, a typo fix) is low.
    pub fn drift(&self, pinned: &Tool, current: &Tool) -> Vec<Finding> {
        let old = self.classify(pinned);
        let new = self.classify(current);
        let mut out: Vec<Finding> = Vec::new();
        for f in &new.findings {
            let was = old.findings.iter().find(|o| o.id == f.id).map(|o| o.severity);
            if was.is_none_or(|w| w < f.severity) {
                let mut f = f.clone();
                f.text = format!("new since the pin: {}", f.text);
                out.push(f);
            }
        }
        if pinned == current {
            return out;
        }
        let (severity, what) = if new.category.severity() == 3 && old.category.severity() < 3 {
            (crate::model::Risk::High, format!("it was {} and is now {}", old.category, new.category))
        } else if new.category.severity() > old.category.severity() {
            (crate::model::Risk::Medium, format!("it was {} and is now {}", old.category, new.category))
        } else {
            let props = |t: &Tool| -> Vec<String> {
                t.input_schema
                    .as_ref()
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.as_object())
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default()
            };
            let before = props(pinned);
            let added: Vec<String> = props(current).into_iter().filter(|p| !before.contains(p)).collect();
            if added.is_empty() {
                (crate::model::Risk::Low, "its wording or schema changed".to_string())
            } else {
                (crate::model::Risk::Medium, format!("it takes new parameters: {}", added.join(", ")))
            }
        };
        out.push(Finding::new("rug-pull", severity, format!("the definition changed since the pin: {what}")));
        out
    }

    /// Findings of what a server carries beside its tools: `{"instructions": ..., "prompts": [...],
    /// "resources": [...]}` as the server returned them.
    pub fn scan_server(&self, server: &serde_json::Value) -> Vec<Finding> {
        let mut out = Vec::new();
        poison::scan_server(&self.rules, server, &mut out);
        out
    }
}

#[cfg(test)]
#[path = "cases_tests.rs"]
mod cases_tests;

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
