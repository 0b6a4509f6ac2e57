//! Rule files compiled once into lookup tables and one `RegexSet` per field.
//!
//! Words (verbs, objects) become hash maps; patterns become a `RegexSet` per field, so one pass over a field
//! tells which rules match, and only those rules' own regexes run again to quote the matched text. Everything
//! is validated here (unique ids, a word claimed by one verb only, regexes that compile, strengths in 0..=1),
//! so a bad rules directory fails at start-up with the file and rule named, never in the middle of a crawl.

use std::collections::{HashMap, HashSet};

use regex::{Regex, RegexSet, RegexSetBuilder};

use super::ClassifyError;
use super::rules::{Factor, Field, RuleFile};
use crate::model::{Category, Severity};

/// Which kind of rule a pattern belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Phrase,
    Property,
    Negation,
    Factor,
    Finding,
}

/// A pattern waiting to be compiled: its rule kind and index, the rule id (for errors), the regex.
type Item = (Kind, usize, String, String);

/// Every pattern that looks at one kind of text, of every rule kind, in one `RegexSet`: one scan of a
/// description answers phrases, negations, factors and findings at once.
#[derive(Debug)]
pub(crate) struct Patterns {
    set: RegexSet,
    regexes: Vec<Regex>,
    owner: Vec<(Kind, usize)>,
}

impl Patterns {
    fn build(file_of: &str, items: Vec<Item>) -> Result<Patterns, ClassifyError> {
        let mut regexes = Vec::with_capacity(items.len());
        let mut owner = Vec::with_capacity(items.len());
        // `\b` is ASCII here: a Unicode word boundary makes the lazy DFA give up on the first non-ASCII byte
        // (curly quotes, dashes) and fall back to a slower engine; English rules lose nothing by it.
        let items: Vec<Item> = items
            .into_iter()
            .map(|(kind, rule, id, pattern)| (kind, rule, id, pattern.replace("\\b", "(?-u:\\b)")))
            .collect();
        for (kind, rule, id, pattern) in &items {
            let regex = Regex::new(pattern).map_err(|e| ClassifyError::Rules {
                path: file_of.to_string(),
                message: format!("rule {id}: invalid pattern {pattern:?}: {}", first_line(&e.to_string())),
            })?;
            regexes.push(regex);
            owner.push((*kind, *rule));
        }
        let set = RegexSetBuilder::new(items.iter().map(|(_, _, _, p)| p))
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()
            .map_err(|e| ClassifyError::Rules { path: file_of.to_string(), message: first_line(&e.to_string()) })?;
        Ok(Patterns { set, regexes, owner })
    }

    /// Every rule with a pattern matching `text`, with the first match that `accept` takes.
    pub(crate) fn find<'t>(
        &self,
        text: &'t str,
        mut accept: impl FnMut(Kind, &regex::Match<'t>) -> bool,
    ) -> Vec<(Kind, usize, regex::Match<'t>)> {
        // Most texts match nothing: the plain search stops early and is cheaper than the overlapping one.
        if self.regexes.is_empty() || !self.set.is_match(text) {
            return Vec::new();
        }
        let mut out: Vec<(Kind, usize, regex::Match<'t>)> = Vec::new();
        for i in self.set.matches(text).iter() {
            let (kind, rule) = self.owner[i];
            if out.iter().any(|(k, r, _)| *k == kind && *r == rule) {
                continue;
            }
            if let Some(m) = self.regexes[i].find_iter(text).take(16).find(|m| accept(kind, m)) {
                out.push((kind, rule, m));
            }
        }
        out
    }
}

#[derive(Debug)]
pub(crate) struct Verb {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) keep: bool,
    pub(crate) noun: bool,
    pub(crate) in_names: bool,
}

#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    /// Verb indexes it escalates; empty = any verb above read.
    pub(crate) verbs: Vec<usize>,
    pub(crate) unless: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Scored {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) restricts: bool,
    /// Rule ids whose hits this phrase cancels ("stop recording" is no `verb.stop`).
    pub(crate) supersedes: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct PropertyMeta {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) strength: f32,
    pub(crate) needs_action: bool,
    /// Index of the property rule that must match too.
    pub(crate) with: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct FactorMeta {
    pub(crate) id: String,
    pub(crate) factor: Factor,
}

#[derive(Debug)]
pub(crate) struct FindingMeta {
    pub(crate) id: String,
    pub(crate) severity: Severity,
    pub(crate) text: String,
}

/// The texts a tool is scanned in, each with one combined set of patterns.
#[derive(Debug)]
pub(crate) struct Scanners {
    /// The name's words joined by spaces: phrases and factors.
    pub(crate) name: Patterns,
    /// Every finding pattern, for any string of a definition (see `poison`).
    pub(crate) poison: Patterns,
    /// The description: phrases, negations, factors.
    pub(crate) description: Patterns,
    /// Property descriptions: phrases, factors.
    pub(crate) schema_text: Patterns,
    /// Property names as words: property rules and factors.
    pub(crate) property: Patterns,
    /// Enum values of a property, joined: factors.
    pub(crate) enum_values: Patterns,
}

/// A whole ruleset, ready to classify.
#[derive(Debug)]
pub(crate) struct Ruleset {
    pub(crate) verbs: Vec<Verb>,
    pub(crate) verb_words: HashMap<String, usize>,
    pub(crate) objects: Vec<Object>,
    pub(crate) object_words: HashMap<String, usize>,
    pub(crate) phrases: Vec<Scored>,
    pub(crate) properties: Vec<PropertyMeta>,
    pub(crate) negations: Vec<String>,
    pub(crate) factors: Vec<FactorMeta>,
    pub(crate) findings: Vec<FindingMeta>,
    pub(crate) scan: Scanners,
    pub(crate) action_properties: HashSet<String>,
    /// Fitted rule scores (priors where a feature has none).
    pub(crate) weights: super::score::Weights,
}

type FieldItems = [Vec<Item>; 3];

fn field_index(field: Field) -> usize {
    match field {
        Field::Name => 0,
        Field::Description => 1,
        Field::Schema => 2,
    }
}

impl Ruleset {
    /// Compile parsed files (`(file name, parsed)`, already in order).
    pub(crate) fn compile(files: Vec<(String, RuleFile)>) -> Result<Ruleset, ClassifyError> {
        let label = files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ");
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut verbs = Vec::new();
        let mut verb_words = HashMap::new();
        let mut objects = Vec::new();
        let mut object_words = HashMap::new();
        let mut object_verbs: Vec<(String, Vec<String>)> = Vec::new();
        let mut property_with: Vec<(String, Option<String>)> = Vec::new();
        let mut phrases = Vec::new();
        let mut phrase_items: FieldItems = Default::default();
        let mut properties = Vec::new();
        let mut property_items: Vec<Item> = Vec::new();
        let mut negations = Vec::new();
        let mut negation_items: Vec<Item> = Vec::new();
        let mut factors = Vec::new();
        let mut factor_items: FieldItems = Default::default();
        let mut findings = Vec::new();
        let mut finding_items: FieldItems = Default::default();
        let mut action_properties = HashSet::new();
        let mut weights = super::score::Weights { bias: super::score::Weights::prior_bias(), ..Default::default() };

        for (file, rf) in files {
            let err = |message: String| ClassifyError::Rules { path: file.clone(), message };
            let mut claim = |id: &str| -> Result<(), ClassifyError> {
                if id.trim().is_empty() {
                    return Err(err("a rule has an empty id".into()));
                }
                if let Some(other) = ids.insert(id.to_string(), file.clone()) {
                    return Err(err(format!("rule id {id:?} is defined twice (also in {other})")));
                }
                Ok(())
            };
            let check_strength = |id: &str, s: f32| {
                if (0.0..=1.0).contains(&s) {
                    Ok(())
                } else {
                    Err(err(format!("rule {id}: strength {s} is outside 0..=1")))
                }
            };
            if let Some(fit) = rf.fit {
                weights.bias = fit.bias;
            }
            for w in rf.weight {
                if w.scores.iter().any(|x| !x.is_finite()) {
                    return Err(err(format!("weight {}: scores must be finite numbers", w.feature)));
                }
                weights.features.insert(w.feature, w.scores);
            }
            for word in rf.settings.action_properties {
                action_properties.insert(normalize_words(&word));
            }
            for v in rf.verb {
                claim(&v.id)?;
                check_strength(&v.id, v.strength)?;
                for w in &v.words {
                    let w = single_word(&v.id, w).map_err(err)?;
                    if let Some(&other) = verb_words.get(&w) {
                        let other: &Verb = &verbs[other];
                        return Err(err(format!(
                            "rule {}: word {w:?} already belongs to verb rule {}",
                            v.id, other.id
                        )));
                    }
                    verb_words.insert(w, verbs.len());
                }
                verbs.push(Verb {
                    id: v.id,
                    category: v.category,
                    strength: v.strength,
                    keep: v.keep,
                    noun: v.noun,
                    in_names: v.in_names,
                });
            }
            for o in rf.object {
                claim(&o.id)?;
                check_strength(&o.id, o.strength)?;
                for w in &o.words {
                    let w = single_word(&o.id, w).map_err(err)?;
                    if object_words.contains_key(&w) {
                        return Err(err(format!("rule {}: object word {w:?} is claimed twice", o.id)));
                    }
                    object_words.insert(w, objects.len());
                }
                object_verbs.push((file.clone(), o.verbs));
                let unless =
                    o.unless.iter().map(|w| single_word(&o.id, w)).collect::<Result<Vec<_>, _>>().map_err(err)?;
                objects.push(Object {
                    id: o.id,
                    category: o.category,
                    strength: o.strength,
                    verbs: Vec::new(),
                    unless,
                });
            }
            for p in rf.phrase {
                claim(&p.id)?;
                check_strength(&p.id, p.strength)?;
                nonempty(&p.id, &p.fields, &p.patterns).map_err(err)?;
                for field in &p.fields {
                    for pat in &p.patterns {
                        phrase_items[field_index(*field)].push((
                            Kind::Phrase,
                            phrases.len(),
                            p.id.clone(),
                            pat.clone(),
                        ));
                    }
                }
                phrases.push(Scored {
                    id: p.id,
                    category: p.category,
                    strength: p.strength,
                    restricts: p.restricts,
                    supersedes: p.supersedes,
                });
            }
            for p in rf.property {
                claim(&p.id)?;
                check_strength(&p.id, p.strength)?;
                for pat in &p.patterns {
                    property_items.push((Kind::Property, properties.len(), p.id.clone(), pat.clone()));
                }
                property_with.push((file.clone(), p.with));
                properties.push(PropertyMeta {
                    id: p.id,
                    category: p.category,
                    strength: p.strength,
                    needs_action: p.needs_action,
                    with: None,
                });
            }
            for n in rf.negation {
                claim(&n.id)?;
                for pat in &n.patterns {
                    negation_items.push((Kind::Negation, negations.len(), n.id.clone(), pat.clone()));
                }
                negations.push(n.id);
            }
            for f in rf.factor {
                claim(&f.id)?;
                nonempty(&f.id, &f.fields, &f.patterns).map_err(err)?;
                for field in &f.fields {
                    for pat in &f.patterns {
                        factor_items[field_index(*field)].push((
                            Kind::Factor,
                            factors.len(),
                            f.id.clone(),
                            pat.clone(),
                        ));
                    }
                }
                factors.push(FactorMeta { id: f.id, factor: f.factor });
            }
            for f in rf.finding {
                claim(&f.id)?;
                nonempty(&f.id, &f.fields, &f.patterns).map_err(err)?;
                for field in &f.fields {
                    for pat in &f.patterns {
                        finding_items[field_index(*field)].push((
                            Kind::Finding,
                            findings.len(),
                            f.id.clone(),
                            pat.clone(),
                        ));
                    }
                }
                findings.push(FindingMeta { id: f.id, severity: f.severity, text: f.text });
            }
        }

        for (object, (file, names)) in objects.iter_mut().zip(object_verbs) {
            for name in names {
                let index = verbs.iter().position(|v| v.id == name).ok_or_else(|| ClassifyError::Rules {
                    path: file.clone(),
                    message: format!("rule {}: unknown verb rule {name:?} in `verbs`", object.id),
                })?;
                object.verbs.push(index);
            }
        }

        let ids_of_properties: Vec<String> = properties.iter().map(|p| p.id.clone()).collect();
        for (property, (file, with)) in properties.iter_mut().zip(property_with) {
            if let Some(with) = with {
                let index =
                    ids_of_properties.iter().position(|id| *id == with).ok_or_else(|| ClassifyError::Rules {
                        path: file.clone(),
                        message: format!("rule {}: unknown property rule {with:?} in `with`", property.id),
                    })?;
                property.with = Some(index);
            }
        }

        let [phrase_name, phrase_description, phrase_schema] = phrase_items;
        let [factor_name, factor_description, factor_schema] = factor_items;
        // A finding's patterns apply to every string of a definition, whatever fields its rule names: attackers
        // put text where reviewers do not look.
        let mut finding_all: Vec<Item> = Vec::new();
        for item in finding_items.into_iter().flatten() {
            if !finding_all.iter().any(|x| x.1 == item.1 && x.3 == item.3) {
                finding_all.push(item);
            }
        }
        let scan = Scanners {
            name: Patterns::build(&label, [phrase_name, factor_name].concat())?,
            poison: Patterns::build(&label, finding_all)?,
            description: Patterns::build(&label, [phrase_description, negation_items, factor_description].concat())?,
            schema_text: Patterns::build(&label, [phrase_schema, factor_schema.clone()].concat())?,
            property: Patterns::build(&label, [property_items, factor_schema.clone()].concat())?,
            enum_values: Patterns::build(&label, factor_schema)?,
        };
        Ok(Ruleset {
            verbs,
            verb_words,
            objects,
            object_words,
            phrases,
            properties,
            negations,
            factors,
            findings,
            scan,
            action_properties,
            weights,
        })
    }

    /// The verb rule a word (in any inflection) belongs to.
    pub(crate) fn verb(&self, word: &str) -> Option<usize> {
        super::words::find_lemma(word, |w| self.verb_words.get(w).copied())
    }

    /// The object rule a word (singular or plural) belongs to.
    pub(crate) fn object(&self, word: &str) -> Option<usize> {
        super::words::find_lemma(word, |w| self.object_words.get(w).copied())
    }
}

/// Words are looked up as the single lowercase words names and prose are split into.
fn single_word(id: &str, word: &str) -> Result<String, String> {
    let w = word.trim().to_lowercase();
    if w.is_empty() || !w.chars().all(char::is_alphanumeric) {
        return Err(format!("rule {id}: {word:?} is not a single word (names are matched word by word)"));
    }
    Ok(w)
}

fn nonempty(id: &str, fields: &[Field], patterns: &[String]) -> Result<(), String> {
    if fields.is_empty() || patterns.is_empty() {
        return Err(format!("rule {id}: needs at least one field and one pattern"));
    }
    Ok(())
}

/// `shell_command`, `shellCommand` → `shell command`.
pub(crate) fn normalize_words(name: &str) -> String {
    super::words::joined_words(name)
}

fn first_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
