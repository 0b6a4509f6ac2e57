//! The labelled corpus of real servers (`data/corpus/`): loading it, fitting the rule scores on it, and
//! measuring the classifier on it without flattering it.
//!
//! The corpus is what toolwarden's own crawler captured from real MCP servers (`captures/<server>.json`), a
//! manifest of where each came from (`manifest.jsonl`: package, version, launch command, domain) and one
//! hand label per tool (`labels.jsonl`). Figures worth reporting are *server-disjoint*: the scores are fitted
//! without a server's tools, then measured on them ([`cross_validate`]), because tools of one server share
//! an author's naming habits, and a classifier fitted on some of them is flattered by the rest.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::classify::Classifier;
use crate::classify::score::{self, Example, Feature, FitOptions, Weights};
use crate::model::{Category, Tool};

/// Errors reading the corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// One hand label (`labels.jsonl`).
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub server: String,
    pub tool: String,
    pub category: Category,
    #[serde(default)]
    pub also_ok: Vec<Category>,
    #[serde(default)]
    pub why: String,
}

/// One labelled tool with the features the classifier sees in it.
#[derive(Debug, Clone)]
pub struct Item {
    pub server: String,
    pub domain: String,
    pub tool: Tool,
    pub label: Label,
    pub features: Vec<Feature>,
}

/// The labelled tools of a corpus directory, in a stable order (server, then capture order).
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub items: Vec<Item>,
    /// Labels whose tool is in no capture (reported, not used).
    pub unmatched_labels: usize,
    /// Captured tools without a label (reported, not used).
    pub unlabelled_tools: usize,
}

#[derive(Debug, Deserialize)]
struct ManifestLine {
    server: String,
    #[serde(default)]
    domain: Option<String>,
}

impl Corpus {
    /// Load `dir/captures/*.json`, `dir/labels.jsonl` and `dir/manifest.jsonl` (for domains), computing
    /// every tool's features with `classifier`.
    pub fn load(dir: &Path, classifier: &Classifier) -> Result<Corpus, CorpusError> {
        let err = |path: &Path, message: String| CorpusError::Read { path: path.display().to_string(), message };
        let labels_path = dir.join("labels.jsonl");
        let text = std::fs::read_to_string(&labels_path).map_err(|e| err(&labels_path, e.to_string()))?;
        let mut labels: HashMap<(String, String), Label> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let label: Label =
                serde_json::from_str(line).map_err(|e| err(&labels_path, format!("line {}: {e}", n + 1)))?;
            labels.insert((label.server.clone(), label.tool.clone()), label);
        }
        let mut domains: HashMap<String, String> = HashMap::new();
        let manifest_path = dir.join("manifest.jsonl");
        if let Ok(text) = std::fs::read_to_string(&manifest_path) {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let m: ManifestLine =
                    serde_json::from_str(line).map_err(|e| err(&manifest_path, format!("line {}: {e}", n + 1)))?;
                domains.insert(m.server, m.domain.unwrap_or_else(|| "other".into()));
            }
        }
        let captures = dir.join("captures");
        let mut files: Vec<_> = std::fs::read_dir(&captures)
            .map_err(|e| err(&captures, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut corpus = Corpus::default();
        let mut used = 0usize;
        for path in files {
            let server = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let server = server.strip_suffix(".tools").unwrap_or(&server).to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
            let tools = parse_tools(&text).map_err(|m| err(&path, m))?;
            for tool in tools {
                let Some(label) = labels.get(&(server.clone(), tool.name.clone())) else {
                    corpus.unlabelled_tools += 1;
                    continue;
                };
                used += 1;
                corpus.items.push(Item {
                    server: server.clone(),
                    domain: domains.get(&server).cloned().unwrap_or_else(|| "other".into()),
                    features: classifier.features(&tool),
                    label: label.clone(),
                    tool,
                });
            }
        }
        corpus.unmatched_labels = labels.len().saturating_sub(used);
        Ok(corpus)
    }

    /// The distinct servers, sorted.
    pub fn servers(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.items.iter().map(|i| i.server.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Examples for fitting. Each tool counts `1/sqrt(tools of its server)` (times a constant): a server with
    /// 600 generated tools teaches its one author's habits, and must not outweigh fifty servers of ten.
    fn examples<'a>(&self, items: impl Iterator<Item = &'a Item>) -> Vec<Example> {
        let mut per_server: HashMap<&str, usize> = HashMap::new();
        for i in &self.items {
            *per_server.entry(i.server.as_str()).or_default() += 1;
        }
        items
            .map(|i| {
                let mut ex = Example::new(i.features.clone(), i.label.category, &i.label.also_ok);
                ex.weight = 5.0 / (per_server[i.server.as_str()] as f32).sqrt();
                ex
            })
            .collect()
    }

    /// Fit the scores on every labelled tool.
    pub fn fit(&self, opts: FitOptions) -> Weights {
        score::fit(&self.examples(self.items.iter()), opts)
    }

    /// Server-disjoint k-fold cross-validation: each server's tools are predicted by scores fitted without
    /// any tool of that server. Returns the prediction for every item, in item order.
    pub fn cross_validate(&self, folds: usize, opts: FitOptions) -> Vec<Category> {
        let fold_of = |server: &str| -> usize {
            // A stable hash (FNV-1a) spreads servers over folds independently of their order.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in server.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            (h % folds.max(2) as u64) as usize
        };
        let mut predictions = vec![Category::Read; self.items.len()];
        for k in 0..folds.max(2) {
            let train = self.examples(self.items.iter().filter(|i| fold_of(&i.server) != k));
            let weights = score::fit(&train, opts);
            for (i, item) in self.items.iter().enumerate() {
                if fold_of(&item.server) == k {
                    predictions[i] = predict(&weights, &item.features);
                }
            }
        }
        predictions
    }
}

/// What the classifier decides from a tool's features under `weights` (no text hit: read, as the engine does
/// before annotations).
pub fn predict(weights: &Weights, features: &[Feature]) -> Category {
    if features.is_empty() { Category::Read } else { weights.decide(features).category }
}

/// The tools of a captured `tools/list` result (`{"tools": [...]}` or a bare array); entries that are not tools are skipped.
pub fn parse_tools(text: &str) -> Result<Vec<Tool>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &v {
        serde_json::Value::Array(_) => v.clone(),
        serde_json::Value::Object(o) => o.get("tools").cloned().ok_or("no `tools` array")?,
        _ => return Err("neither a tools/list result nor an array".into()),
    };
    let serde_json::Value::Array(items) = list else { return Err("`tools` is not an array".into()) };
    Ok(items.into_iter().filter_map(|t| serde_json::from_value::<Tool>(t).ok()).collect())
}

/// The figures of one set of predictions against the labels.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub n: usize,
    pub exact: f64,
    pub lenient: f64,
    /// Destructive or financial labels predicted as one of the two.
    pub critical_recall: f64,
    pub critical: usize,
    /// Predicted less severe than the label and not one of its `also_ok`.
    pub under: f64,
    /// truth × predicted, [`Category::ALL`] order.
    pub confusion: [[usize; 5]; 5],
}

/// Score predictions (`preds[i]` for `items[i]`).
pub fn metrics<'a>(pairs: impl Iterator<Item = (&'a Label, Category)>) -> Metrics {
    let mut m = Metrics::default();
    let (mut exact, mut lenient, mut crit_hit, mut under) = (0usize, 0usize, 0usize, 0usize);
    for (label, pred) in pairs {
        m.n += 1;
        let ok = pred == label.category || label.also_ok.contains(&pred);
        exact += usize::from(pred == label.category);
        lenient += usize::from(ok);
        if label.category.severity() == 3 {
            m.critical += 1;
            crit_hit += usize::from(pred.severity() == 3);
        }
        under += usize::from(!ok && pred.severity() < label.category.severity());
        m.confusion[score::index(label.category)][score::index(pred)] += 1;
    }
    let n = m.n.max(1) as f64;
    m.exact = exact as f64 / n;
    m.lenient = lenient as f64 / n;
    m.critical_recall = crit_hit as f64 / m.critical.max(1) as f64;
    m.under = under as f64 / n;
    m
}

impl Metrics {
    /// One line of figures.
    pub fn line(&self, title: &str) -> String {
        format!(
            "{title}: n={} exact={:.3} lenient={:.3} critical_recall={:.3} (of {}) under={:.3}",
            self.n, self.exact, self.lenient, self.critical_recall, self.critical, self.under
        )
    }

    /// The confusion matrix as a text table.
    pub fn confusion_table(&self) -> String {
        let mut out = String::from("truth \\ predicted   read  write  execu  destr  finan\n");
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(out, "{:>17}", Category::ALL[t].as_str());
            for v in row {
                let _ = write!(out, " {v:>6}");
            }
            out.push('\n');
        }
        out
    }
}

/// The whole evaluation report: overall, per domain, and the misses.
pub fn report(corpus: &Corpus, preds: &[Category], title: &str, show_misses: usize) -> String {
    let mut out = String::new();
    let all = metrics(corpus.items.iter().zip(preds).map(|(i, p)| (&i.label, *p)));
    let _ = writeln!(out, "{}", all.line(title));
    out.push_str(&all.confusion_table());
    let mut domains: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in corpus.items.iter().enumerate() {
        domains.entry(item.domain.as_str()).or_default().push(i);
    }
    let _ = writeln!(out, "\nper domain:");
    for (domain, idx) in &domains {
        let m = metrics(idx.iter().map(|&i| (&corpus.items[i].label, preds[i])));
        let servers = {
            let mut s: Vec<&str> = idx.iter().map(|&i| corpus.items[i].server.as_str()).collect();
            s.sort_unstable();
            s.dedup();
            s.len()
        };
        let _ = writeln!(
            out,
            "  {domain:<18} servers={servers:<3} n={:<4} exact={:.3} lenient={:.3} critical_recall={:.3} (of {}) under={:.3}",
            m.n, m.exact, m.lenient, m.critical_recall, m.critical, m.under
        );
    }
    if show_misses > 0 {
        let _ = writeln!(out, "\nmisses (not lenient-correct, or a critical tool not found critical), worst first:");
        let mut misses: Vec<usize> = (0..corpus.items.len())
            .filter(|&i| {
                let l = &corpus.items[i].label;
                let critical_missed = l.category.severity() == 3 && preds[i].severity() < 3;
                preds[i] != l.category && (!l.also_ok.contains(&preds[i]) || critical_missed)
            })
            .collect();
        misses.sort_by_key(|&i| {
            std::cmp::Reverse(
                (score::COST[score::index(corpus.items[i].label.category)][score::index(preds[i])] * 10.0) as i32,
            )
        });
        for &i in misses.iter().take(show_misses) {
            let it = &corpus.items[i];
            let _ = writeln!(
                out,
                "  {}/{}: label {} predicted {} — {}",
                it.server,
                it.tool.name,
                it.label.category.as_str(),
                preds[i].as_str(),
                it.label.why
            );
        }
    }
    out
}

/// The fitted scores as a rule file (`data/rules/weights.toml`), features sorted by id.
pub fn weights_toml(weights: &Weights, fitted_on: &str) -> String {
    let mut out = String::from(
        "# Fitted rule scores: `toolwarden corpus fit` writes this file from the labelled corpus in data/corpus/.\n\
         # Do not edit by hand; refit instead (scripts/fit-rules). Each feature is a rule and the place it was seen\n\
         # (name, title, lead = the description's lead verb, desc, schema, enum, nested = a deeply nested property,\n\
         # neg); `scores` are added to the read, write, execute, destructive and financial scores of a tool that has\n\
         # it. See doc/classifier.md.\n\n",
    );
    let num = |v: &[f32; 5]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "[fit]\nfitted_on = {:?}\nbias = [{}]\n", fitted_on, num(&weights.bias));
    let mut ids: Vec<&String> = weights.features.keys().collect();
    ids.sort();
    for id in ids {
        let _ = writeln!(out, "[[weight]]\nfeature = {:?}\nscores = [{}]\n", id, num(&weights.features[id]));
    }
    out
}
