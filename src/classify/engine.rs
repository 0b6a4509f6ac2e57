//! Classifying one tool: collect hits from every field, then decide.
//!
//! A *hit* is one rule matching one field, with a category and a strength (0..1). Hits of strength 0.5 or more
//! are *decisive*: the category is the most severe decisive hit, because a tool is as dangerous as the worst
//! thing one call can do. Weaker hits only decide when nothing decisive was found. Annotations are the
//! author's claim, not evidence of behaviour: they decide only when the text says nothing, and a claim that
//! contradicts the text becomes a finding.

use super::compiled::{Patterns, Ruleset};
use super::rules::{Factor, Field};
use super::schema::{self, SchemaFacts};
use super::words::{first_sentence, prose_words, quote, split_name, truncate};
use crate::model::{Category, Classification, Evidence, Finding, Risk, Tool};

/// How much of a description is read (bytes); the rest of a 1 MB description is not looked at.
pub(crate) const MAX_DESCRIPTION: usize = 8 * 1024;
/// How much of the first sentence is parsed for its lead verb.
const MAX_LEAD: usize = 400;
/// Longest quoted evidence text (characters).
pub(crate) const MAX_QUOTE: usize = 80;
/// Most evidence items kept per tool.
const MAX_EVIDENCE: usize = 8;
/// Strength from which a hit decides the category on its own.
const DECISIVE: f32 = 0.5;
/// Description lead verbs count slightly less than the name: the name is the identifier the author chose.
const LEAD_FACTOR: f32 = 0.9;
/// Titles are second names, slightly weaker.
const TITLE_FACTOR: f32 = 0.9;

/// Where a hit came from; negations act differently on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Name,
    Description,
    Schema,
    SchemaEnum,
    Negation,
    Annotation,
}

#[derive(Debug, Clone)]
struct Hit {
    rule: String,
    category: Category,
    strength: f32,
    field: String,
    text: String,
    source: Source,
    /// Property hits that only count when the tool otherwise changes something.
    needs_action: bool,
    /// A phrase naming exactly which statements the tool runs.
    restricts: bool,
}

/// Everything the rules saw in one tool, before deciding.
struct Seen {
    hits: Vec<Hit>,
    factors: Vec<(Factor, Evidence)>,
    findings: Vec<Finding>,
}

pub(crate) fn classify(rs: &Ruleset, tool: &Tool, version: &str) -> Classification {
    let mut seen = Seen { hits: Vec::new(), factors: Vec::new(), findings: Vec::new() };

    let name_words = split_name(&tool.name);
    let name_objects = objects_of_name(rs, &name_words);
    name_hits(rs, &name_words, &name_objects, "name", 1.0, &mut seen.hits);
    let name_joined = name_words.join(" ");
    phrase_hits(rs, &rs.phrase_patterns.name, &name_joined, "name", Source::Name, 1.0, &mut seen.hits);
    if let Some(title) = tool.display_title() {
        let title_words = split_name(truncate(&title, 256));
        if title_words != name_words {
            let title_objects = objects_of_name(rs, &title_words);
            name_hits(rs, &title_words, &title_objects, "title", TITLE_FACTOR, &mut seen.hits);
        }
    }
    factor_hits(rs, Field::Name, &name_joined, "name", &mut seen.factors);
    finding_hits(rs, Field::Name, &tool.name.to_ascii_lowercase(), &mut seen.findings);

    let description = tool.description.as_deref().map(|d| truncate(d, MAX_DESCRIPTION).to_ascii_lowercase());
    let mut negated = false;
    if let Some(desc) = description.as_deref() {
        lead_hits(rs, desc, &name_objects, &mut seen.hits);
        phrase_hits(rs, &rs.phrase_patterns.description, desc, "description", Source::Description, 1.0, &mut seen.hits);
        for (rule, m) in rs.negation_patterns.find(desc, |m| !negated_before(desc, m.start())) {
            negated = true;
            seen.hits.push(Hit {
                rule: rs.negations[rule].clone(),
                category: Category::Read,
                strength: 0.75,
                field: "description".into(),
                text: quote(m.as_str(), MAX_QUOTE),
                source: Source::Negation,
                needs_action: false,
                restricts: false,
            });
        }
        factor_hits(rs, Field::Description, desc, "description", &mut seen.factors);
        finding_hits(rs, Field::Description, desc, &mut seen.findings);
    }

    if let Some(schema) = tool.input_schema.as_ref().filter(|s| s.is_object()) {
        let facts = schema::collect(schema);
        schema_hits(rs, &facts, &name_objects, &mut seen);
    }

    decide(tool, seen, negated, version)
}

/// The objects of a name, leaving out the words that are its verbs (`git_checkout` checks out, it is no sale).
fn objects_of_name(rs: &Ruleset, words: &[String]) -> Vec<(usize, String)> {
    let verbs: Vec<usize> = name_verbs(rs, words, true).into_iter().map(|(_, at)| at).collect();
    let rest: Vec<String> =
        words.iter().enumerate().filter(|(i, _)| !verbs.contains(i)).map(|(_, w)| w.clone()).collect();
    let mut objects = objects_in(rs, &rest);
    objects.retain(|(o, _)| !rs.objects[*o].unless.iter().any(|u| words.contains(u)));
    objects
}

/// The words of a name that are objects (`refund` in `create_refund`).
fn objects_in(rs: &Ruleset, words: &[String]) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for w in words {
        if let Some(o) = rs.object(w)
            && !out.iter().any(|(i, _)| *i == o)
            && !rs.objects[o].unless.iter().any(|u| words.contains(u))
        {
            out.push((o, w.clone()));
        }
    }
    out
}

/// The action verbs of a name: the first plain verb, or when there is none the last noun-like verb
/// (`email_user`, `post_message`), plus verbs joined to it by `or`/`and` (`create_or_update`).
fn name_verbs(rs: &Ruleset, words: &[String], is_name: bool) -> Vec<(usize, usize)> {
    // A noun-like verb counts only in its base form: `email_user` emails, `console_messages` are nouns.
    let found: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            rs.verb(w)
                .filter(|v| {
                    !is_name || (rs.verbs[*v].in_names && (!rs.verbs[*v].noun || rs.verb_words.contains_key(w)))
                })
                .map(|v| (v, i))
        })
        .collect();
    let Some(&(verb, i)) = found.iter().find(|(v, _)| !rs.verbs[*v].noun).or_else(|| found.last()) else {
        return Vec::new();
    };
    let mut out = vec![(verb, i)];
    let mut j = i + 1;
    while j + 1 < words.len() && matches!(words[j].as_str(), "or" | "and" | "then") {
        match rs.verb(&words[j + 1]) {
            Some(v) => out.push((v, j + 1)),
            None => break,
        }
        j += 2;
    }
    out
}

fn name_hits(
    rs: &Ruleset,
    words: &[String],
    objects: &[(usize, String)],
    field: &str,
    factor: f32,
    hits: &mut Vec<Hit>,
) {
    for (verb, at) in name_verbs(rs, words, true) {
        verb_hit(rs, verb, &words[at], objects, field, Source::Name, factor, hits);
    }
}

/// A verb hit, escalated by the most severe object it applies to.
#[allow(clippy::too_many_arguments)]
fn verb_hit(
    rs: &Ruleset,
    verb: usize,
    word: &str,
    objects: &[(usize, String)],
    field: &str,
    source: Source,
    factor: f32,
    hits: &mut Vec<Hit>,
) {
    let v = &rs.verbs[verb];
    let strength = v.strength * factor;
    hits.push(Hit {
        rule: v.id.clone(),
        category: v.category,
        strength,
        field: field.to_string(),
        text: quote(word, MAX_QUOTE),
        source,
        needs_action: false,
        restricts: false,
    });
    if v.keep || v.category == Category::Read {
        return;
    }
    let best = objects
        .iter()
        .filter(|(o, _)| {
            let o = &rs.objects[*o];
            (o.verbs.is_empty() || o.verbs.contains(&verb)) && o.category.severity() >= v.category.severity()
        })
        .filter(|(_, object_word)| object_word != word)
        .max_by(|a, b| rs.objects[a.0].category.severity().cmp(&rs.objects[b.0].category.severity()));
    if let Some((o, object_word)) = best {
        let o = &rs.objects[*o];
        hits.push(Hit {
            rule: o.id.clone(),
            category: o.category,
            strength: o.strength.min(strength.max(o.strength * factor)),
            field: field.to_string(),
            text: quote(&format!("{word} … {object_word}"), MAX_QUOTE),
            source,
            needs_action: false,
            restricts: false,
        });
    }
}

/// Filler words that may precede the lead verb of a description ("This tool lets you delete ...").
const FILLER: &[&str] = &[
    "this",
    "tool",
    "tools",
    "to",
    "that",
    "will",
    "can",
    "be",
    "used",
    "use",
    "you",
    "allows",
    "lets",
    "let",
    "helps",
    "help",
    "the",
    "a",
    "an",
    "it",
    "is",
    "which",
    "for",
    "please",
    "simply",
    "perform",
    "performs",
    "quickly",
    "safely",
    "easily",
    "directly",
    "mcp",
    "api",
    "endpoint",
    "function",
    "method",
    "operation",
];

/// The lead verbs of the first sentence, and the objects near them.
fn lead_hits(rs: &Ruleset, desc: &str, name_objects: &[(usize, String)], hits: &mut Vec<Hit>) {
    let sentence = first_sentence(desc, MAX_LEAD);
    let words = prose_words(sentence);
    let mut verbs: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < words.len().min(8) {
        let w = words[i].text;
        if let Some(v) = rs.verb(w).filter(|v| rs.verbs[*v].in_names) {
            verbs.push((v, w));
            break;
        }
        if !FILLER.contains(&w) {
            return;
        }
        i += 1;
    }
    if verbs.is_empty() {
        return;
    }
    // Verbs listed after the lead: "List, create, close, or select a tab".
    let mut j = i + 1;
    while j < words.len() {
        let w = words[j].text;
        if matches!(w, "," | "/" | "or" | "and" | "then") {
            j += 1;
            continue;
        }
        match rs.verb(w).filter(|v| rs.verbs[*v].in_names) {
            Some(v) if j > i + 1 && matches!(words[j - 1].text, "," | "/" | "or" | "and" | "then") => {
                verbs.push((v, w));
                j += 1;
            }
            _ => break,
        }
    }
    // The object is the noun right after the verbs: "Create a (new) refund", not any noun of the sentence.
    let cancelled = |o: usize| rs.objects[o].unless.iter().any(|u| words.iter().any(|w| w.text == u));
    let mut objects: Vec<(usize, String)> = name_objects.iter().filter(|(o, _)| !cancelled(*o)).cloned().collect();
    let skip = ["a", "an", "the", "new", "one", "or", "more", "multiple", "single", "your", "their", "this"];
    for w in words.iter().skip(j).skip_while(|w| skip.contains(&w.text)).take(2) {
        if let Some(o) = rs.object(w.text)
            && !objects.iter().any(|(x, _)| *x == o)
            && !cancelled(o)
        {
            objects.push((o, w.text.to_string()));
        }
    }
    for (v, w) in verbs {
        verb_hit(rs, v, w, &objects, "description", Source::Description, LEAD_FACTOR, hits);
    }
}

/// Whether a negating word closely precedes `at` ("does not delete", "without overwriting").
fn negated_before(text: &str, at: usize) -> bool {
    let mut start = at.saturating_sub(28);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let window = &text[start..at];
    let words = prose_words(window);
    words.iter().rev().take(3).any(|w| {
        matches!(
            w.text,
            "not" | "never" | "no" | "without" | "cannot" | "nor" | "won't" | "don't" | "doesn't" | "isn't"
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn phrase_hits(
    rs: &Ruleset,
    patterns: &Patterns,
    text: &str,
    field: &str,
    source: Source,
    factor: f32,
    hits: &mut Vec<Hit>,
) {
    for (rule, m) in patterns.find(text, |m| !negated_before(text, m.start())) {
        let p = &rs.phrases[rule];
        hits.push(Hit {
            rule: p.id.clone(),
            category: p.category,
            strength: p.strength * factor,
            field: field.to_string(),
            text: quote(m.as_str(), MAX_QUOTE),
            source,
            needs_action: false,
            restricts: p.restricts,
        });
    }
}

fn factor_hits(rs: &Ruleset, field: Field, text: &str, label: &str, out: &mut Vec<(Factor, Evidence)>) {
    for (rule, m) in rs.factor_patterns.get(field).find(text, |m| !negated_before(text, m.start())) {
        let f = &rs.factors[rule];
        out.push((
            f.factor,
            Evidence { rule: f.id.clone(), field: label.to_string(), text: quote(m.as_str(), MAX_QUOTE) },
        ));
    }
}

fn finding_hits(rs: &Ruleset, field: Field, text: &str, out: &mut Vec<Finding>) {
    let patterns = rs.finding_patterns.get(field);
    if !patterns.any(text) {
        return;
    }
    for (rule, m) in patterns.find(text, |_| true) {
        let f = &rs.findings[rule];
        if out.iter().any(|x| x.id == f.id) {
            continue;
        }
        let quoted: String =
            m.as_str().chars().map(|c| if c.is_control() || is_invisible(c) { '\u{FFFD}' } else { c }).collect();
        out.push(Finding {
            id: f.id.clone(),
            severity: f.severity,
            text: format!("{}: \"{}\"", f.text, quote(&quoted, 60)),
        });
    }
}

/// Characters that render as nothing or reorder text; quoted evidence shows them as U+FFFD.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}' | '\u{00AD}' | '\u{180E}')
}

fn schema_hits(rs: &Ruleset, facts: &SchemaFacts, name_objects: &[(usize, String)], seen: &mut Seen) {
    let mut property_hits: Vec<(usize, Hit)> = Vec::new();
    for prop in &facts.properties {
        for (rule, m) in rs.property_patterns.find(&prop.words, |_| true) {
            let p = &rs.properties[rule];
            property_hits.push((
                rule,
                Hit {
                    rule: p.id.clone(),
                    category: p.category,
                    strength: p.strength,
                    field: prop.path.clone(),
                    text: quote(m.as_str(), MAX_QUOTE),
                    source: Source::Schema,
                    needs_action: p.needs_action,
                    restricts: false,
                },
            ));
        }
        let last = prop.words.rsplit(' ').next().unwrap_or_default();
        let action_like = rs.action_properties.contains(&prop.words) || rs.action_properties.contains(last);
        if action_like {
            let field = format!("{}.enum", prop.path);
            for value in &prop.enum_values {
                let words = split_name(value);
                let mut objects = name_objects.to_vec();
                objects.extend(objects_in(rs, &words));
                for (verb, at) in name_verbs(rs, &words, false) {
                    verb_hit(rs, verb, &words[at], &objects, &field, Source::SchemaEnum, 1.0, &mut seen.hits);
                }
            }
            if prop.enum_values.is_empty()
                && let Some(desc) = &prop.description
            {
                // "The operation: 'get', 'set' or 'delete'": each verb named is something one call can do.
                let field = format!("{}.description", prop.path);
                let mut found: Vec<usize> = Vec::new();
                for w in prose_words(desc).iter().take(80) {
                    if let Some(v) = rs.verb(w.text)
                        && !found.contains(&v)
                    {
                        found.push(v);
                        verb_hit(rs, v, w.text, name_objects, &field, Source::SchemaEnum, 0.8, &mut seen.hits);
                    }
                }
            }
        }
        if let Some(desc) = &prop.description {
            let field = format!("{}.description", prop.path);
            phrase_hits(rs, &rs.phrase_patterns.schema, desc, &field, Source::Schema, 0.8, &mut seen.hits);
            factor_hits(rs, Field::Schema, desc, &field, &mut seen.factors);
            finding_hits(rs, Field::Schema, desc, &mut seen.findings);
        }
        factor_hits(rs, Field::Schema, &prop.words, &prop.path, &mut seen.factors);
        if !prop.enum_values.is_empty() {
            let values: Vec<String> = prop.enum_values.iter().take(8).map(|v| v.to_ascii_lowercase()).collect();
            factor_hits(rs, Field::Schema, &values.join(" | "), &format!("{}.enum", prop.path), &mut seen.factors);
        }
    }
    // A property that needs a partner (amount needs currency) counts half without it.
    let matched: Vec<usize> = property_hits.iter().map(|(r, _)| *r).collect();
    for (rule, mut hit) in property_hits {
        if let Some(with) = rs.properties[rule].with
            && !matched.contains(&with)
        {
            hit.strength *= 0.5;
        }
        if !seen.hits.iter().any(|h| h.rule == hit.rule) {
            seen.hits.push(hit);
        }
    }
}

fn decide(tool: &Tool, seen: Seen, negated: bool, version: &str) -> Classification {
    let Seen { mut hits, factors, mut findings } = seen;
    let ann = tool.annotations();

    // A statement that the tool changes nothing outweighs what its description's verbs and its schema
    // suggest, and what a query-running name suggests ("execute_query: runs a read-only query"), but not a
    // name that says it creates or deletes.
    if negated {
        hits.retain(|h| match h.source {
            Source::Description | Source::Schema => h.category == Category::Read,
            Source::Name => h.category != Category::Execute,
            _ => true,
        });
    }
    // "Runs INSERT or UPDATE statements": the statements named say what the tool does, not "runs queries".
    if hits.iter().any(|h| h.restricts) {
        hits.retain(|h| {
            h.category != Category::Execute || !matches!(h.source, Source::Name | Source::Description | Source::Schema)
        });
    }
    let mutating = hits.iter().any(|h| !h.needs_action && h.strength >= DECISIVE && h.category != Category::Read);
    hits.retain(|h| !h.needs_action || mutating);

    let decisive = hits.iter().filter(|h| h.strength >= DECISIVE);
    let chosen =
        decisive.max_by(|a, b| rank(a).partial_cmp(&rank(b)).unwrap_or(std::cmp::Ordering::Equal)).or_else(|| {
            hits.iter().max_by(|a, b| a.strength.partial_cmp(&b.strength).unwrap_or(std::cmp::Ordering::Equal))
        });

    let mut evidence_hits: Vec<Hit>;
    let category;
    let mut confidence;
    match chosen {
        Some(top) => {
            category = top.category;
            let top_strength =
                hits.iter().filter(|h| h.category == category).map(|h| h.strength).fold(0.0_f32, f32::max);
            let mut fields: Vec<&str> = hits
                .iter()
                .filter(|h| h.category.severity() == category.severity() && h.strength >= 0.4)
                .map(|h| field_family(&h.field))
                .collect();
            fields.sort_unstable();
            fields.dedup();
            confidence = top_strength + 0.05 * (fields.len().saturating_sub(1)) as f32;
            if top_strength < DECISIVE {
                confidence *= 0.8;
            }
            evidence_hits = hits;
        }
        None => {
            // Nothing in the text: the annotations are all there is.
            let (cat, text) = match (ann.read_only, ann.destructive) {
                (Some(true), _) => (Category::Read, "readOnlyHint: true"),
                (_, Some(true)) => (Category::Destructive, "destructiveHint: true"),
                (Some(false), _) => (Category::Write, "readOnlyHint: false"),
                _ => (Category::Read, ""),
            };
            category = cat;
            confidence = if text.is_empty() { 0.2 } else { 0.35 };
            evidence_hits = Vec::new();
            if !text.is_empty() {
                evidence_hits.push(Hit {
                    rule: "annotation.fallback".into(),
                    category: cat,
                    strength: 0.35,
                    field: "annotations".into(),
                    text: text.into(),
                    source: Source::Annotation,
                    needs_action: false,
                    restricts: false,
                });
            }
        }
    }

    // Annotations against the text.
    let has_text = evidence_hits.iter().any(|h| h.source != Source::Annotation);
    if has_text {
        let basis = evidence_hits
            .iter()
            .filter(|h| h.category == category)
            .max_by(|a, b| a.strength.partial_cmp(&b.strength).unwrap_or(std::cmp::Ordering::Equal))
            .map(|h| format!("{} \"{}\"", h.field, h.text))
            .unwrap_or_default();
        let mut contradiction = |claim: &str, severity: Risk| {
            findings.push(Finding {
                id: "annotation-contradiction".into(),
                severity,
                text: format!("annotations claim {claim}, but the text says {category}: {basis}"),
            });
        };
        if ann.read_only == Some(true) && category != Category::Read && confidence >= DECISIVE {
            contradiction("readOnlyHint: true", category.base_risk());
            confidence -= 0.1;
        } else if ann.destructive == Some(false) && category.severity() == 3 && confidence >= DECISIVE {
            contradiction("destructiveHint: false", Risk::High);
            confidence -= 0.1;
        } else if ann.destructive == Some(true)
            && ann.read_only != Some(true)
            && category == Category::Read
            && confidence >= 0.7
        {
            contradiction("destructiveHint: true", Risk::Low);
        } else if ann.read_only.is_some() || ann.destructive.is_some() {
            confidence += 0.05;
        }
    }

    // Blast radius.
    let mut factor_list: Vec<Factor> = factors.iter().map(|(f, _)| *f).collect();
    if ann.open_world == Some(true) {
        factor_list.push(Factor::OpenWorld);
    }
    factor_list.sort();
    factor_list.dedup();
    let mut risk = category.base_risk();
    let raises = factor_list.iter().any(|f| category != Category::Read || *f == Factor::Credentials);
    if raises {
        risk = risk.raise();
    }

    evidence_hits.sort_by(|a, b| {
        let key = |h: &Hit| (h.category == category, h.category.severity(), h.strength);
        key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut evidence: Vec<Evidence> = Vec::new();
    for h in evidence_hits {
        if evidence.len() >= MAX_EVIDENCE {
            break;
        }
        if evidence.iter().any(|e| e.rule == h.rule && e.field == h.field) {
            continue;
        }
        evidence.push(Evidence { rule: h.rule, field: h.field, text: h.text });
    }
    for (f, e) in factors {
        if evidence.len() >= MAX_EVIDENCE + 2 {
            break;
        }
        if factor_list.contains(&f) && !evidence.iter().any(|x| x.rule == e.rule) {
            evidence.push(e);
        }
    }
    if ann.open_world == Some(true) {
        evidence.push(Evidence {
            rule: "annotation.openWorldHint".into(),
            field: "annotations".into(),
            text: "openWorldHint: true".into(),
        });
    }

    Classification {
        category,
        risk,
        confidence: (f64::from(confidence.clamp(0.05, 0.99)) * 100.0).round() / 100.0,
        evidence,
        factors: factor_list.iter().map(|f| f.as_str().to_string()).collect(),
        findings,
        ruleset: version.to_string(),
    }
}

/// Order of decisive hits: severity first, then financial over destructive at equal severity, then strength.
fn rank(h: &Hit) -> (u8, u8, f32) {
    (h.category.severity(), u8::from(h.category == Category::Financial), h.strength)
}

/// `schema.properties.x.enum` → `schema`, for counting how many fields agree.
fn field_family(field: &str) -> &str {
    field.split('.').next().unwrap_or(field)
}
