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

/// Compiled patterns of one field, each owned by a rule.
#[derive(Debug)]
pub(crate) struct Patterns {
    set: RegexSet,
    regexes: Vec<Regex>,
    owner: Vec<usize>,
}

impl Patterns {
    fn build(file_of: &str, items: Vec<(usize, String, String)>) -> Result<Patterns, ClassifyError> {
        let mut regexes = Vec::with_capacity(items.len());
        let mut owner = Vec::with_capacity(items.len());
        // `\b` is ASCII here: a Unicode word boundary makes the lazy DFA give up on the first non-ASCII byte
        // (curly quotes, dashes) and fall back to a slower engine; English rules lose nothing by it.
        let items: Vec<(usize, String, String)> =
            items.into_iter().map(|(rule, id, pattern)| (rule, id, pattern.replace("\\b", "(?-u:\\b)"))).collect();
        for (rule, id, pattern) in &items {
            let regex = Regex::new(pattern).map_err(|e| ClassifyError::Rules {
                path: file_of.to_string(),
                message: format!("rule {id}: invalid pattern {pattern:?}: {}", first_line(&e.to_string())),
            })?;
            regexes.push(regex);
            owner.push(*rule);
        }
        let set = RegexSetBuilder::new(items.iter().map(|(_, _, p)| p))
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| ClassifyError::Rules { path: file_of.to_string(), message: first_line(&e.to_string()) })?;
        Ok(Patterns { set, regexes, owner })
    }

    /// Every rule with a pattern matching `text`, with the first match that `accept` takes.
    pub(crate) fn find<'t>(
        &self,
        text: &'t str,
        mut accept: impl FnMut(&regex::Match<'t>) -> bool,
    ) -> Vec<(usize, regex::Match<'t>)> {
        if self.regexes.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<(usize, regex::Match<'t>)> = Vec::new();
        for i in self.set.matches(text).iter() {
            let rule = self.owner[i];
            if out.iter().any(|(r, _)| *r == rule) {
                continue;
            }
            if let Some(m) = self.regexes[i].find_iter(text).take(16).find(|m| accept(m)) {
                out.push((rule, m));
            }
        }
        out
    }

    /// Whether any pattern matches (no positions needed).
    pub(crate) fn any(&self, text: &str) -> bool {
        !self.regexes.is_empty() && self.set.is_match(text)
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

/// Patterns of one rule kind, one set per field.
#[derive(Debug)]
pub(crate) struct ByField {
    pub(crate) name: Patterns,
    pub(crate) description: Patterns,
    pub(crate) schema: Patterns,
}

impl ByField {
    pub(crate) fn get(&self, field: Field) -> &Patterns {
        match field {
            Field::Name => &self.name,
            Field::Description => &self.description,
            Field::Schema => &self.schema,
        }
    }
}

/// A whole ruleset, ready to classify.
#[derive(Debug)]
pub(crate) struct Ruleset {
    pub(crate) verbs: Vec<Verb>,
    pub(crate) verb_words: HashMap<String, usize>,
    pub(crate) objects: Vec<Object>,
    pub(crate) object_words: HashMap<String, usize>,
    pub(crate) phrases: Vec<Scored>,
    pub(crate) phrase_patterns: ByField,
    pub(crate) properties: Vec<PropertyMeta>,
    pub(crate) property_patterns: Patterns,
    pub(crate) negations: Vec<String>,
    pub(crate) negation_patterns: Patterns,
    pub(crate) factors: Vec<FactorMeta>,
    pub(crate) factor_patterns: ByField,
    pub(crate) findings: Vec<FindingMeta>,
    pub(crate) finding_patterns: ByField,
    pub(crate) action_properties: HashSet<String>,
}

type FieldItems = [Vec<(usize, String, String)>; 3];

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
        let mut property_items = Vec::new();
        let mut negations = Vec::new();
        let mut negation_items = Vec::new();
        let mut factors = Vec::new();
        let mut factor_items: FieldItems = Default::default();
        let mut findings = Vec::new();
        let mut finding_items: FieldItems = Default::default();
        let mut action_properties = HashSet::new();

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
                        phrase_items[field_index(*field)].push((phrases.len(), p.id.clone(), pat.clone()));
                    }
                }
                phrases.push(Scored { id: p.id, category: p.category, strength: p.strength, restricts: p.restricts });
            }
            for p in rf.property {
                claim(&p.id)?;
                check_strength(&p.id, p.strength)?;
                for pat in &p.patterns {
                    property_items.push((properties.len(), p.id.clone(), pat.clone()));
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
                    negation_items.push((negations.len(), n.id.clone(), pat.clone()));
                }
                negations.push(n.id);
            }
            for f in rf.factor {
                claim(&f.id)?;
                nonempty(&f.id, &f.fields, &f.patterns).map_err(err)?;
                for field in &f.fields {
                    for pat in &f.patterns {
                        factor_items[field_index(*field)].push((factors.len(), f.id.clone(), pat.clone()));
                    }
                }
                factors.push(FactorMeta { id: f.id, factor: f.factor });
            }
            for f in rf.finding {
                claim(&f.id)?;
                nonempty(&f.id, &f.fields, &f.patterns).map_err(err)?;
                for field in &f.fields {
                    for pat in &f.patterns {
                        finding_items[field_index(*field)].push((findings.len(), f.id.clone(), pat.clone()));
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

        let by_field = |items: FieldItems| -> Result<ByField, ClassifyError> {
            let [name, description, schema] = items;
            Ok(ByField {
                name: Patterns::build(&label, name)?,
                description: Patterns::build(&label, description)?,
                schema: Patterns::build(&label, schema)?,
            })
        };
        Ok(Ruleset {
            verbs,
            verb_words,
            objects,
            object_words,
            phrases,
            phrase_patterns: by_field(phrase_items)?,
            properties,
            property_patterns: Patterns::build(&label, property_items)?,
            negations,
            negation_patterns: Patterns::build(&label, negation_items)?,
            factors,
            factor_patterns: by_field(factor_items)?,
            findings,
            finding_patterns: by_field(finding_items)?,
            action_properties,
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
    super::words::split_name(name).join(" ")
}

fn first_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
