//! The risk classifier: deterministic rules from `data/rules/*.toml` turned into a category, a risk level, a
//! confidence and quoted evidence for every tool.
//!
//! (Skeleton: the rule engine lands with the foundation issue.)

use std::path::Path;

use crate::model::{Category, Classification, Tool};

/// Errors loading a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("{path}: {message}")]
    Rules { path: String, message: String },
}

/// A compiled ruleset. Build it once and classify many tools with it.
#[derive(Debug, Clone)]
pub struct Classifier {
    version: String,
}

impl Classifier {
    /// The rules embedded in the binary.
    pub fn builtin() -> Classifier {
        Classifier { version: "0".into() }
    }

    /// Rules from a directory of `*.toml` files, replacing the built-in ones.
    pub fn from_dir(dir: &Path) -> Result<Classifier, ClassifyError> {
        let _ = dir;
        Ok(Classifier::builtin())
    }

    /// A version string identifying this ruleset (stored with every classification).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Classify one tool.
    pub fn classify(&self, tool: &Tool) -> Classification {
        let _ = tool;
        Classification {
            category: Category::Read,
            risk: Category::Read.base_risk(),
            confidence: 0.0,
            evidence: Vec::new(),
            factors: Vec::new(),
            findings: Vec::new(),
            ruleset: self.version.clone(),
        }
    }
}
