//! The poisoning corpora (`data/attacks/`): poisoned definitions, honest look-alikes, and how the findings do
//! on them and on the real corpus.
//!
//! Every `*.jsonl` file holds cases: a tool definition (and, for text a server carries, its `instructions`,
//! prompts and resources; for rug pulls, the pinned definition `before`), the attack family it belongs to, the
//! field that carries it, its source, and `expect`: `high`/`critical` for attacks, `none` (or `info`/`low`)
//! for honest look-alikes. `split` keeps half of every family out of the rules' tuning (`holdout`).
//!
//! A case is *flagged* when any finding is high or critical: that is what `scan --fail-on high` fails on.
//! Recall is the flagged share of attacks; the false-alarm rate the flagged share of look-alikes and of the
//! real corpus' tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::classify::Classifier;
use crate::model::{Finding, Risk, Tool};

/// Errors reading a corpus file.
#[derive(Debug, thiserror::Error)]
pub enum AttacksError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// One case of a corpus file.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub id: String,
    pub family: String,
    #[serde(default)]
    pub r#where: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub split: String,
    pub expect: String,
    pub tool: Tool,
    #[serde(default)]
    pub server: Option<Value>,
    #[serde(default)]
    pub before: Option<Tool>,
}

impl Case {
    /// An attack (expected high or critical), not a look-alike.
    pub fn is_attack(&self) -> bool {
        matches!(self.expect.as_str(), "high" | "critical")
    }
}

/// Read every `*.jsonl` of a directory (sorted by name); a bad line is an error naming file and line.
pub fn load(dir: &Path) -> Result<Vec<Case>, AttacksError> {
    let err = |path: &Path, message: String| AttacksError::Read { path: path.display().to_string(), message };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let case: Case = serde_json::from_str(line).map_err(|e| err(&path, format!("line {}: {e}", n + 1)))?;
            cases.push(case);
        }
    }
    Ok(cases)
}

/// The findings of a case: the tool's, the server's text's, and for a rug pull what changed since `before`.
pub fn findings(classifier: &Classifier, case: &Case) -> Vec<Finding> {
    let mut out = match &case.before {
        Some(before) => classifier.drift(before, &case.tool),
        None => classifier.classify(&case.tool).findings,
    };
    if let Some(server) = &case.server {
        out.extend(classifier.scan_server(server));
    }
    out
}

/// Whether findings would fail `scan --fail-on high`.
pub fn flagged(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity >= Risk::High)
}

#[derive(Default)]
struct Tally {
    n: usize,
    flagged: usize,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.flagged as f64 / self.n.max(1) as f64
    }
}

/// The figures on the attack and look-alike cases, overall, by split and by family, and the misses.
pub fn report(classifier: &Classifier, cases: &[Case], split: Option<&str>, misses: usize) -> String {
    let mut out = String::new();
    let mut attacks: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut looks: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut wrong: Vec<String> = Vec::new();
    for case in cases.iter().filter(|c| split.is_none_or(|s| c.split == s)) {
        let found = findings(classifier, case);
        let hit = flagged(&found);
        let map = if case.is_attack() { &mut attacks } else { &mut looks };
        for key in [("all".to_string(), case.split.clone()), (case.family.clone(), case.split.clone())] {
            let t = map.entry(key).or_default();
            t.n += 1;
            t.flagged += usize::from(hit);
        }
        if hit != case.is_attack() {
            let ids: Vec<String> = found.iter().map(|f| format!("{}:{}", f.id, f.severity.as_str())).collect();
            let why = found.iter().find(|f| f.severity >= Risk::High).map(|f| f.text.clone()).unwrap_or_default();
            wrong.push(format!(
                "  {} [{} {} at {}] {}: {} {}",
                case.id,
                case.family,
                case.split,
                case.r#where,
                if hit { "FALSE ALARM" } else { "MISSED" },
                ids.join(","),
                crate::model::text::collapse(&why, 160, |c| if c.is_control() { ' ' } else { c })
            ));
        }
    }
    let table = |out: &mut String, title: &str, map: &BTreeMap<(String, String), Tally>, what: &str| {
        let _ = writeln!(out, "{title}");
        let families: Vec<&String> = {
            let mut f: Vec<&String> = map.keys().map(|(f, _)| f).collect();
            f.dedup();
            f
        };
        for family in families {
            let mut line = format!("  {family:<22}");
            let mut total = Tally::default();
            for (split, t) in map.range((family.clone(), String::new())..).take_while(|((f, _), _)| f == family) {
                let _ = write!(line, " {}: {}/{} = {:.3}", split.1, t.flagged, t.n, t.rate());
                total.n += t.n;
                total.flagged += t.flagged;
            }
            let _ = writeln!(out, "{line}   ({what} {:.3})", total.rate());
        }
    };
    table(&mut out, "attacks flagged high or critical (recall), by family and split:", &attacks, "recall");
    table(
        &mut out,
        "look-alikes flagged high or critical (false alarms), by family and split:",
        &looks,
        "false alarms",
    );
    if misses > 0 && !wrong.is_empty() {
        let _ = writeln!(out, "\nmisses and false alarms:");
        for w in wrong.iter().take(misses) {
            let _ = writeln!(out, "{w}");
        }
    }
    out
}

/// The real corpus' tools flagged high or critical, with the finding that flagged them.
pub fn real_corpus(classifier: &Classifier, captures: &Path, show: usize) -> Result<String, AttacksError> {
    let err = |message: String| AttacksError::Read { path: captures.display().to_string(), message };
    let mut files: Vec<_> = std::fs::read_dir(captures)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut n, mut flagged_n) = (0usize, 0usize);
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let Ok(tools) = crate::corpus::parse_tools(&text) else { continue };
        let server = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for tool in tools {
            n += 1;
            let found = classifier.classify(&tool).findings;
            if let Some(f) = found.iter().filter(|f| f.severity >= Risk::High).max_by_key(|f| f.severity) {
                flagged_n += 1;
                *by_id.entry(f.id.clone()).or_default() += 1;
                lines.push(format!(
                    "  {server}/{}: {} {} at {}: {}",
                    tool.name,
                    f.id,
                    f.severity.as_str(),
                    f.location.as_deref().unwrap_or("?"),
                    crate::model::text::collapse(&f.text, 160, |c| if c.is_control() { ' ' } else { c })
                ));
            }
        }
    }
    let mut out = format!(
        "real corpus: {flagged_n} of {n} tools flagged high or critical = {:.4} ({} servers)\n",
        flagged_n as f64 / n.max(1) as f64,
        files.len()
    );
    for (id, count) in &by_id {
        let _ = writeln!(out, "  {id}: {count}");
    }
    for l in lines.iter().take(show) {
        let _ = writeln!(out, "{l}");
    }
    Ok(out)
}
