//! `toolwarden corpus eval|fit`: measure the classifier on the labelled corpus of real servers, server-disjoint,
//! and refit the rule scores (`data/rules/weights.toml`) from it.
//!
//! `eval` reports cross-validated figures: every server's tools are predicted by scores fitted without that
//! server, which is what a user pointing toolwarden at a new server gets. `--as-shipped` adds the figures of the
//! scores in use (fitted on the whole corpus, so flattering) for comparison, never as the headline.

use std::path::PathBuf;

use anyhow::Context;

use super::{Globals, Outcome};
use crate::classify::score::{FitOptions, Weights};
use crate::corpus::{self, Corpus};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Server-disjoint k-fold cross-validation: exact and lenient accuracy, critical recall, under-classification,
    /// confusion matrix, per domain
    Eval(EvalArgs),
    /// Fit the rule scores on the whole corpus and write them as a rule file
    Fit(FitArgs),
    /// The poisoning findings on the attack corpus (recall), the look-alikes and the real corpus (false alarms)
    Attacks(AttacksArgs),
}

#[derive(Debug, clap::Args)]
pub struct AttacksArgs {
    /// The attack and look-alike corpus directory (*.jsonl)
    #[arg(long, default_value = "data/attacks", value_name = "DIR")]
    pub dir: PathBuf,
    /// The real corpus directory, whose captured tools are the false-alarm set
    #[arg(long, default_value = "data/corpus", value_name = "DIR")]
    pub corpus: PathBuf,
    /// Only cases of this split (dev, holdout)
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<String>,
    /// Print this many misses and false alarms
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub misses: usize,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The corpus directory (captures/, labels.jsonl, manifest.jsonl)
    #[arg(long, default_value = "data/corpus", value_name = "DIR")]
    pub dir: PathBuf,
    /// Number of folds (servers are split among them)
    #[arg(long, default_value_t = 10)]
    pub folds: usize,
    /// Print this many misses, worst first
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub misses: usize,
    /// Also print the figures of the scores in use (fitted on the whole corpus: flattering) and of the
    /// unfitted priors
    #[arg(long)]
    pub as_shipped: bool,
    /// Regularisation towards the rule files' priors
    #[arg(long, default_value_t = FitOptions::default().lambda)]
    pub lambda: f32,
    /// Gradient passes over the corpus
    #[arg(long, default_value_t = FitOptions::default().iterations)]
    pub iterations: usize,
}

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// The corpus directory (captures/, labels.jsonl, manifest.jsonl)
    #[arg(long, default_value = "data/corpus", value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write the fitted scores
    #[arg(long, default_value = "data/rules/weights.toml", value_name = "FILE")]
    pub out: PathBuf,
    /// Regularisation towards the rule files' priors
    #[arg(long, default_value_t = FitOptions::default().lambda)]
    pub lambda: f32,
    /// Gradient passes over the corpus
    #[arg(long, default_value_t = FitOptions::default().iterations)]
    pub iterations: usize,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let classifier = g.classifier()?;
    match args.command {
        Sub::Eval(a) => {
            let corpus = load(&a.dir, &classifier)?;
            let opts = FitOptions { lambda: a.lambda, iterations: a.iterations, ..FitOptions::default() };
            let preds = corpus.cross_validate(a.folds, opts);
            let title = format!("cross-validated ({} folds by server)", a.folds);
            print!("{}", corpus::report(&corpus, &preds, &title, a.misses));
            if a.as_shipped {
                let prior = Weights { bias: Weights::prior_bias(), ..Weights::default() };
                let refit = corpus.fit(opts);
                let runs = [
                    ("unfitted priors", &prior),
                    ("scores in use", classifier.weights()),
                    ("fitted on all, measured on all (flattering)", &refit),
                ];
                for (title, w) in runs {
                    let preds: Vec<_> = corpus.items.iter().map(|i| corpus::predict(w, &i.features)).collect();
                    let m = corpus::metrics(corpus.items.iter().zip(&preds).map(|(i, p)| (&i.label, *p)));
                    println!("{}", m.line(title));
                }
            }
            Ok(Outcome::Ok)
        }
        Sub::Attacks(a) => {
            let cases = crate::attacks::load(&a.dir).with_context(|| format!("loading {}", a.dir.display()))?;
            if cases.is_empty() {
                anyhow::bail!("{}: no cases (*.jsonl)", a.dir.display());
            }
            print!("{}", crate::attacks::report(&classifier, &cases, a.split.as_deref(), a.misses));
            let captures = a.corpus.join("captures");
            if captures.is_dir() {
                print!("{}", crate::attacks::real_corpus(&classifier, &captures, a.misses)?);
            }
            Ok(Outcome::Ok)
        }
        Sub::Fit(a) => {
            let corpus = load(&a.dir, &classifier)?;
            let opts = FitOptions { lambda: a.lambda, iterations: a.iterations, ..FitOptions::default() };
            let weights = corpus.fit(opts);
            let fitted_on = format!(
                "{} labelled tools of {} servers in {}, lambda {}",
                corpus.items.len(),
                corpus.servers().len(),
                a.dir.display(),
                opts.lambda
            );
            std::fs::write(&a.out, corpus::weights_toml(&weights, &fitted_on))
                .with_context(|| format!("writing {}", a.out.display()))?;
            eprintln!("fitted {} features on {fitted_on}; wrote {}", weights.features.len(), a.out.display());
            Ok(Outcome::Ok)
        }
    }
}

fn load(dir: &std::path::Path, classifier: &crate::classify::Classifier) -> anyhow::Result<Corpus> {
    let corpus = Corpus::load(dir, classifier).with_context(|| format!("loading the corpus in {}", dir.display()))?;
    if corpus.items.is_empty() {
        anyhow::bail!("{}: no labelled tools (captures/*.json with labels.jsonl)", dir.display());
    }
    eprintln!(
        "corpus: {} labelled tools of {} servers ({} captured tools unlabelled, {} labels without a tool)",
        corpus.items.len(),
        corpus.servers().len(),
        corpus.unlabelled_tools,
        corpus.unmatched_labels
    );
    Ok(corpus)
}
