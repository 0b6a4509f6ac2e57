//! Rule scores: how much each rule hit, in each place of a tool, says about each category.
//!
//! A rule hit becomes a *feature*: the rule and where it was seen (`verb.delete@name`, `verb.delete@lead`,
//! `phrase.irreversible@desc`). A tool's score for a category is the bias of that category plus the sum, over
//! its features, of each feature's score for that category; the scores become probabilities (softmax), and
//! the category chosen is the one with the least expected cost, where under-classifying a destructive or
//! financial tool costs far more than over-classifying a read. Every decision is therefore still the sum of
//! named rule hits, and the evidence can be listed by how much each hit added.
//!
//! The scores are fitted on a labelled corpus (`toolwarden corpus fit`, written to `data/rules/weights.toml`)
//! in the spirit of SpamAssassin's rule scores. A feature the corpus never saw keeps its *prior*, derived from
//! the strength written in the rule file, so a new rule works before it is fitted; the fit is regularised
//! towards that prior, so a rule seen twice moves little.

// Five-category score vectors are indexed by category throughout: index loops read as the formulas they are.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use crate::model::Category;

/// Number of categories, in [`Category::ALL`] order.
pub(crate) const N: usize = 5;

/// The cost of predicting column when the truth is row ([`Category::ALL`] order): missing a destructive or
/// financial tool is expensive, over-classifying a read is cheap, destructive for financial (or back) costs
/// little because both are critical.
pub const COST: [[f32; N]; N] = [
    // predicted: read write exec  destr  fin
    [0.0, 1.0, 1.2, 1.5, 1.5],  // truth read
    [2.0, 0.0, 1.0, 1.2, 1.2],  // truth write
    [3.0, 2.0, 0.0, 1.0, 1.0],  // truth execute
    [10.0, 8.0, 6.0, 0.0, 0.5], // truth destructive
    [10.0, 8.0, 6.0, 0.5, 0.0], // truth financial
];

/// Index of a category in [`Category::ALL`].
pub(crate) fn index(c: Category) -> usize {
    match c {
        Category::Read => 0,
        Category::Write => 1,
        Category::Execute => 2,
        Category::Destructive => 3,
        Category::Financial => 4,
    }
}

/// One rule hit as the scores see it: the feature id, and the category and strength the rule file gives it
/// (from which its prior comes).
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: String,
    pub category: Category,
    pub strength: f32,
}

impl Feature {
    /// The score a feature has before fitting: its strength towards its own category, more for more severe
    /// categories (a tool is as dangerous as the worst thing one call can do).
    pub fn prior(&self) -> [f32; N] {
        // The name is the identifier the author chose; a word somewhere in the description or in one property's
        // description says less about what the whole tool does.
        let place = match self.id.rsplit_once('@').map(|(_, p)| p) {
            Some("name" | "neg") => 1.0,
            Some("enum") => 0.9,
            Some("title" | "lead") => 0.8,
            Some("desc") => 0.6,
            Some("schema") => 0.5,
            Some("nested") => 0.3,
            _ => 1.0,
        };
        let mut w = [0.0; N];
        let s = self.strength.clamp(0.0, 1.0);
        w[index(self.category)] = 4.0 * place * s * (1.0 + 0.35 * f32::from(self.category.severity()));
        w
    }
}

/// Fitted scores: a bias per category and a score vector per feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub bias: [f32; N],
    pub features: HashMap<String, [f32; N]>,
}

/// What the scores conclude for one tool.
#[derive(Debug, Clone)]
pub struct Scored {
    pub category: Category,
    /// Probability of each category, [`Category::ALL`] order.
    pub probabilities: [f32; N],
}

impl Weights {
    /// The prior bias: with no evidence at all a tool reads.
    pub fn prior_bias() -> [f32; N] {
        [3.0, 0.0, 0.0, 0.0, 0.0]
    }

    /// The score vector of one feature: fitted, or its prior.
    pub fn of(&self, f: &Feature) -> [f32; N] {
        self.features.get(&f.id).copied().unwrap_or_else(|| f.prior())
    }

    /// The score vector of each feature, in order (looked up once; [`Weights::decide_from`] sums them).
    pub fn vectors(&self, features: &[Feature]) -> Vec<[f32; N]> {
        features.iter().map(|f| self.of(f)).collect()
    }

    /// Sum of bias and feature scores (a feature id counts once, the first time it appears).
    fn scores(&self, features: &[Feature], vectors: &[[f32; N]]) -> [f32; N] {
        let mut s = self.bias;
        for (i, (f, w)) in features.iter().zip(vectors).enumerate() {
            if features[..i].iter().any(|g| g.id == f.id) {
                continue;
            }
            for c in 0..N {
                s[c] += w[c];
            }
        }
        s
    }

    /// The category with the least expected cost, and the probabilities it was chosen from; then the
    /// critical floor (see [`critical_floor`]).
    pub fn decide(&self, features: &[Feature]) -> Scored {
        self.decide_from(features, &self.vectors(features))
    }

    /// [`Weights::decide`] with the vectors already looked up.
    pub fn decide_from(&self, features: &[Feature], vectors: &[[f32; N]]) -> Scored {
        let p = softmax(self.scores(features, vectors));
        let mut category = Category::ALL[least_cost(&p)];
        if let Some(floor) = critical_floor(features)
            && category.severity() < 3
        {
            category = floor;
        }
        Scored { category, probabilities: p }
    }
}

/// A tool whose name does not say it only reads, and whose text has a decisive destructive or financial hit
/// (`worst=destructive`), is at least that: the scores may weigh how much a description's words say against the
/// name's verb, but a tool that changes something and says it can destroy or move money is critical. A read
/// verb in the name (`get_job_logs: logs are deleted after 7 days`) is exempt: the name outvotes.
pub(crate) fn critical_floor(features: &[Feature]) -> Option<Category> {
    let worst = features.iter().find(|f| f.id.starts_with("worst=") && f.category.severity() == 3)?;
    let name_reads = features.iter().any(|f| f.id == "place:name=read")
        && !features.iter().any(|f| f.id.starts_with("place:name=") && f.category != Category::Read);
    (!name_reads).then_some(worst.category)
}

/// The prediction that minimises the expected cost under probabilities `p`.
pub(crate) fn least_cost(p: &[f32; N]) -> usize {
    let mut best = (f32::INFINITY, 0);
    for pred in 0..N {
        let cost: f32 = (0..N).map(|t| p[t] * COST[t][pred]).sum();
        if cost < best.0 - 1e-6 {
            best = (cost, pred);
        }
    }
    best.1
}

pub(crate) fn softmax(s: [f32; N]) -> [f32; N] {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut e = [0.0; N];
    let mut sum = 0.0;
    for c in 0..N {
        e[c] = (s[c] - max).exp();
        sum += e[c];
    }
    for v in &mut e {
        *v /= sum;
    }
    e
}

/// One labelled example for fitting: its features and the target distribution over categories (the label,
/// with a share for the categories a reasonable reviewer could also pick).
#[derive(Debug, Clone)]
pub struct Example {
    pub features: Vec<Feature>,
    pub target: [f32; N],
    /// How much this example counts.
    pub weight: f32,
}

impl Example {
    pub fn new(features: Vec<Feature>, label: Category, also_ok: &[Category]) -> Example {
        let mut target = [0.0; N];
        let others: Vec<Category> = also_ok.iter().copied().filter(|c| *c != label).collect();
        let share = if others.is_empty() { 0.0 } else { 0.25 / others.len() as f32 };
        target[index(label)] = 1.0 - share * others.len() as f32;
        for o in others {
            target[index(o)] += share;
        }
        // Every example counts the same, so that the probabilities are calibrated; what a miss costs is the
        // decision's business (`COST`), not the fit's: weighting both would count the cost twice.
        Example { features, target, weight: 1.0 }
    }
}

/// The least share of its prior a rule keeps towards its own category after fitting.
const FLOOR: f32 = 0.5;

/// Fitting settings: regularisation towards the prior and the number of passes.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// L2 pull of each feature's scores towards its prior, per example that has it.
    pub lambda: f32,
    pub iterations: usize,
    pub learning_rate: f32,
}

impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions { lambda: 0.3, iterations: 600, learning_rate: 0.5 }
    }
}

/// Fit the scores by weighted multinomial logistic regression, pulled towards the priors (full-batch
/// gradient descent with AdaGrad steps; deterministic: the same examples give the same scores).
pub fn fit(examples: &[Example], opts: FitOptions) -> Weights {
    // Index the features.
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut priors: Vec<[f32; N]> = Vec::new();
    let mut own: Vec<usize> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::with_capacity(examples.len());
    for ex in examples {
        let mut row = Vec::new();
        for f in &ex.features {
            let next = ids.len();
            let i = *ids.entry(f.id.clone()).or_insert_with(|| {
                priors.push(f.prior());
                own.push(index(f.category));
                next
            });
            if !row.contains(&i) {
                row.push(i);
            }
        }
        rows.push(row);
    }
    let mut w = priors.clone();
    let mut bias = Weights::prior_bias();
    let total: f32 = examples.iter().map(|e| e.weight).sum::<f32>().max(1.0);
    let mut g2 = vec![[1e-6_f32; N]; w.len()];
    let mut g2_bias = [1e-6_f32; N];
    for _ in 0..opts.iterations {
        let mut grad = vec![[0.0_f32; N]; w.len()];
        let mut grad_bias = [0.0_f32; N];
        for (ex, row) in examples.iter().zip(&rows) {
            let mut s = bias;
            for &i in row {
                for c in 0..N {
                    s[c] += w[i][c];
                }
            }
            let p = softmax(s);
            for c in 0..N {
                let d = ex.weight * (p[c] - ex.target[c]) / total;
                grad_bias[c] += d;
                for &i in row {
                    grad[i][c] += d;
                }
            }
        }
        for (i, g) in grad.iter_mut().enumerate() {
            for c in 0..N {
                g[c] += opts.lambda * (w[i][c] - priors[i][c]) / total * 50.0;
                g2[i][c] += g[c] * g[c];
                w[i][c] -= opts.learning_rate * g[c] / g2[i][c].sqrt();
            }
            // A rule keeps at least half its prior towards its own category, above every other category: the
            // corpus can teach that a phrase in a description says less than the rule file thought, never that
            // "deletes" means reads.
            let own = own[i];
            let others = (0..N).filter(|&c| c != own).map(|c| w[i][c]).fold(f32::NEG_INFINITY, f32::max);
            w[i][own] = w[i][own].max(others + FLOOR * priors[i][own]);
        }
        for c in 0..N {
            g2_bias[c] += grad_bias[c] * grad_bias[c];
            bias[c] -= opts.learning_rate * grad_bias[c] / g2_bias[c].sqrt();
        }
    }
    let mut features = HashMap::new();
    for (id, i) in ids {
        let mut v = w[i];
        for x in &mut v {
            *x = (*x * 1000.0).round() / 1000.0;
        }
        features.insert(id, v);
    }
    for x in &mut bias {
        *x = (*x * 1000.0).round() / 1000.0;
    }
    Weights { bias, features }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, category: Category, strength: f32) -> Feature {
        Feature { id: id.into(), category, strength }
    }

    #[test]
    fn priors_pick_the_most_severe_strong_hit() {
        let w = Weights { bias: Weights::prior_bias(), features: HashMap::new() };
        let read = f("verb.read@name", Category::Read, 0.8);
        let delete = f("verb.delete@lead", Category::Destructive, 0.8);
        assert_eq!(w.decide(std::slice::from_ref(&read)).category, Category::Read);
        assert_eq!(w.decide(&[read, delete]).category, Category::Destructive);
        assert_eq!(w.decide(&[]).category, Category::Read);
    }

    #[test]
    fn fitting_learns_that_a_name_outvotes_a_description_word() {
        // Tools named with a read verb whose descriptions mention deleting are reads in this data; tools
        // named with a delete verb are destructive.
        let mut ex = Vec::new();
        for _ in 0..30 {
            let feats = vec![f("verb.read@lead", Category::Read, 0.8), f("phrase.x@desc", Category::Destructive, 0.9)];
            ex.push(Example::new(feats, Category::Read, &[]));
            ex.push(Example::new(vec![f("verb.delete@name", Category::Destructive, 0.9)], Category::Destructive, &[]));
        }
        let before = Weights { bias: Weights::prior_bias(), features: HashMap::new() };
        assert_eq!(before.decide(&ex[0].features).category, Category::Destructive);
        let w = fit(&ex, FitOptions::default());
        assert_eq!(w.decide(&ex[0].features).category, Category::Read);
        assert_eq!(w.decide(&ex[1].features).category, Category::Destructive);
        // An unseen feature keeps its prior.
        let unseen = f("verb.execute@name", Category::Execute, 0.8);
        assert_eq!(w.of(&unseen), unseen.prior());
    }

    #[test]
    fn the_least_cost_choice_leans_towards_the_severe_category() {
        // 60 % read, 40 % destructive: missing the destructive case costs more than over-classifying.
        assert_eq!(least_cost(&[0.6, 0.0, 0.0, 0.4, 0.0]), 3);
        assert_eq!(least_cost(&[0.95, 0.0, 0.0, 0.05, 0.0]), 0);
    }
}
