//! Classifying one tool: collect hits from every field, then decide.
//!
//! A *hit* is one rule matching one field, with a category and a strength (0..1). Hits of strength 0.5 or more
//! are *decisive*: the category is the most severe decisive hit, because a tool is as dangerous as the worst
//! thing one call can do. Weaker hits only decide when nothing decisive was found. Annotations are the
//! author's claim, not evidence of behaviour: they decide only when the text says nothing, and a claim that
//! contradicts the text becomes a finding.

use super::compiled::{Kind, Patterns, Ruleset};
use super::rules::Factor;
use super::schema::{self, SchemaFacts};
use super::score::{self, Feature};
use super::words::{first_sentence, prose_words, quote, split_name, truncate};
use crate::model::{Annotations, Category, Classification, Evidence, Finding, Risk, Tool};

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
/// Properties nested deeper than this (`.properties.` steps) count half.
const DEEP_PROPERTY: usize = 2;
/// Whether a schema path lies deeper than [`DEEP_PROPERTY`] `.properties.` steps.
fn nested(path: &str) -> bool {
    path.matches(".properties.").count() > DEEP_PROPERTY
}
/// Titles are second names, slightly weaker.
const TITLE_FACTOR: f32 = 0.9;

/// Where a hit came from; negations act differently on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Name,
    /// The lead verbs of the description's first sentence.
    Lead,
    Description,
    Schema,
    SchemaEnum,
    Negation,
    Annotation,
}

/// A hit borrows its rule id from the ruleset: most hits never become evidence, so they should not allocate it.
#[derive(Debug, Clone)]
struct Hit<'r> {
    rule: &'r str,
    category: Category,
    strength: f32,
    field: String,
    text: String,
    source: Source,
    /// Property hits that only count when the tool otherwise changes something.
    needs_action: bool,
    /// A phrase naming exactly which statements the tool runs.
    restricts: bool,
    /// Rule ids whose hits this one cancels.
    supersedes: &'r [String],
}

/// Everything the rules saw in one tool, before deciding.
#[derive(Default)]
struct Seen<'r> {
    hits: Vec<Hit<'r>>,
    /// Property-name hits, kept apart until we know which partners (`with`) matched.
    property_hits: Vec<(usize, Hit<'r>)>,
    factors: Vec<(Factor, Evidence)>,
    findings: Vec<Finding>,
    /// A negation ("read-only", "does not modify") was found in the description.
    negated: bool,
}

pub(crate) fn classify(rs: &Ruleset, tool: &Tool, version: &str) -> Classification {
    let seen = collect(rs, tool);
    decide(rs, &tool.annotations(), seen, version)
}

/// The features the scores are summed over for one tool (what `corpus fit` learns from).
pub(crate) fn features(rs: &Ruleset, tool: &Tool) -> Vec<Feature> {
    let mut seen = collect(rs, tool);
    let mut hits = std::mem::take(&mut seen.hits);
    filter(&mut hits, seen.negated);
    let per_hit: Vec<Option<Feature>> = hits.iter().map(feature).collect();
    all_features(&per_hit)
}

/// The features of a tool: those of its hits, then the pooled ones.
fn all_features(per_hit: &[Option<Feature>]) -> Vec<Feature> {
    let mut out: Vec<Feature> = per_hit.iter().flatten().cloned().collect();
    out.extend(pooled(&out));
    out
}

/// Features about the hits as a whole. `place:name=read`: some read rule matched the name, whatever the rule;
/// their fitted scores (prior zero) are how much each place counts against the others, a read verb in the name
/// against a destructive word in the description. `worst=destructive`: the most severe decisive hit (how the
/// rules decided before they had scores). `place:name=none`: no rule matched the name.
fn pooled(features: &[Feature]) -> Vec<Feature> {
    let mut out: Vec<Feature> = Vec::new();
    let mut name_seen = false;
    for f in features {
        let Some((_, place)) = f.id.rsplit_once('@') else { continue };
        name_seen |= place == "name";
        let id = format!("place:{place}={}", f.category.as_str());
        if !out.iter().any(|g| g.id == id) {
            out.push(Feature { id, category: f.category, strength: 0.0 });
        }
    }
    // The most severe decisive hit (how the rules decided before they had scores): a tool is as dangerous as
    // the worst thing one call can do, so this keeps its own score.
    let worst = features
        .iter()
        .filter(|f| f.strength >= DECISIVE)
        .max_by_key(|f| (f.category.severity(), u8::from(f.category == Category::Financial)));
    if let Some(w) = worst {
        out.push(Feature { id: format!("worst={}", w.category.as_str()), category: w.category, strength: 0.5 });
    }
    if !name_seen && !features.is_empty() {
        out.push(Feature { id: "place:name=none".into(), category: Category::Read, strength: 0.0 });
    }
    out
}

/// Every rule hit of one tool, before deciding.
fn collect<'r>(rs: &'r Ruleset, tool: &Tool) -> Seen<'r> {
    let mut seen = Seen::default();

    let name_words = split_name(&tool.name);
    let name_objects = objects_of_name(rs, &name_words);
    name_hits(rs, &name_words, &name_objects, "name", 1.0, &mut seen.hits);
    let name_joined = name_words.join(" ");
    scan(rs, &rs.scan.name, &name_joined, "name", Source::Name, 1.0, &mut seen);
    let ann = tool.annotations();
    if let Some(title) = tool.title.as_deref().or(ann.title.as_deref()) {
        let title_words = split_name(truncate(title, 256));
        if title_words != name_words {
            let title_objects = objects_of_name(rs, &title_words);
            name_hits(rs, &title_words, &title_objects, "title", TITLE_FACTOR, &mut seen.hits);
        }
    }

    let description = tool.description.as_deref().map(|d| truncate(d, MAX_DESCRIPTION).to_ascii_lowercase());
    if let Some(desc) = description.as_deref() {
        lead_hits(rs, desc, &name_objects, &mut seen.hits);
        scan(rs, &rs.scan.description, desc, "description", Source::Description, 1.0, &mut seen);
    }

    if let Some(schema) = tool.input_schema.as_ref().filter(|s| s.is_object()) {
        let facts = schema::collect(schema);
        schema_hits(rs, &facts, &name_objects, &mut seen);
    }
    seen
}

/// A hit as a feature of the scores: its rule and the place it was seen.
fn feature(h: &Hit) -> Option<Feature> {
    let place = match h.source {
        Source::Name if h.field == "title" => "title",
        Source::Name => "name",
        Source::Lead => "lead",
        Source::Description => "desc",
        // A deeply nested property describes data the call carries: its own place, so the fit weighs it apart.
        Source::Schema | Source::SchemaEnum if nested(&h.field) => "nested",
        Source::Schema => "schema",
        Source::SchemaEnum => "enum",
        Source::Negation => "neg",
        Source::Annotation => return None,
    };
    Some(Feature { id: format!("{}@{place}", h.rule), category: h.category, strength: h.strength })
}

/// What the text says overrules part of the hits: negations, restricting phrases, properties that need an
/// action.
fn filter(hits: &mut Vec<Hit>, negated: bool) {
    // "Stop recording" ends the tool's own activity: the phrase cancels the verb it supersedes.
    let superseded: Vec<String> = hits.iter().flat_map(|h| h.supersedes.iter().cloned()).collect();
    if !superseded.is_empty() {
        hits.retain(|h| !superseded.iter().any(|s| s == h.rule));
    }
    // A statement that the tool changes nothing outweighs what its description's verbs and its schema
    // suggest, and what a query-running name suggests ("execute_query: runs a read-only query"), but not a
    // name that says it creates or deletes.
    if negated {
        hits.retain(|h| match h.source {
            Source::Description | Source::Lead | Source::Schema => h.category == Category::Read,
            Source::Name => h.category != Category::Execute,
            _ => true,
        });
    }
    // "Runs INSERT or UPDATE statements": the statements named say what the tool does, not "runs queries".
    if hits.iter().any(|h| h.restricts) {
        hits.retain(|h| {
            h.category != Category::Execute
                || !matches!(h.source, Source::Name | Source::Lead | Source::Description | Source::Schema)
        });
    }
    let mutating = hits.iter().any(|h| !h.needs_action && h.strength >= DECISIVE && h.category != Category::Read);
    hits.retain(|h| !h.needs_action || mutating);
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

/// The action verbs of a name: the first plain verb, or when there is none the last noun-like verb that is not
/// an object word (`email_user`, `post_message`, `pin_message`), plus verbs joined to it by `or`/`and`
/// (`create_or_update`).
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
    // Among noun-like verbs, one that is not also an object is the action: `pin_message` pins,
    // `payment_status` reads a status.
    // A verb in its base form comes before an inflected one: names are imperatives, and an inflected word in a
    // name is most often a plural noun (`tax_rates_list` lists, it does not rate).
    let base = |i: usize| !is_name || rs.verb_words.contains_key(&words[i]);
    let Some(&(verb, i)) = found
        .iter()
        .find(|(v, i)| !rs.verbs[*v].noun && base(*i))
        .or_else(|| found.iter().find(|(v, _)| !rs.verbs[*v].noun))
        .or_else(|| found.iter().rev().find(|(_, i)| rs.object(&words[*i]).is_none()))
        .or_else(|| found.last())
    else {
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

fn name_hits<'r>(
    rs: &'r Ruleset,
    words: &[String],
    objects: &[(usize, String)],
    field: &str,
    factor: f32,
    hits: &mut Vec<Hit<'r>>,
) {
    for (verb, at) in name_verbs(rs, words, true) {
        verb_hit(rs, verb, &words[at], objects, field, Source::Name, factor, hits);
    }
}

/// A verb hit, escalated by the most severe object it applies to.
#[allow(clippy::too_many_arguments)]
fn verb_hit<'r>(
    rs: &'r Ruleset,
    verb: usize,
    word: &str,
    objects: &[(usize, String)],
    field: &str,
    source: Source,
    factor: f32,
    hits: &mut Vec<Hit<'r>>,
) {
    let v = &rs.verbs[verb];
    let strength = v.strength * factor;
    hits.push(Hit {
        rule: &v.id,
        category: v.category,
        strength,
        field: field.to_string(),
        text: quote(word, MAX_QUOTE),
        source,
        needs_action: false,
        restricts: false,
        supersedes: &[],
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
            rule: &o.id,
            category: o.category,
            strength: o.strength * factor,
            field: field.to_string(),
            text: quote(&format!("{word} … {object_word}"), MAX_QUOTE),
            source,
            needs_action: false,
            restricts: false,
            supersedes: &[],
        });
    }
}

/// Filler words that may precede the lead verb of a description ("This tool lets you delete ...").
#[rustfmt::skip]
const FILLER: &[&str] = &[
    "this", "tool", "tools", "to", "that", "will", "can", "be", "used", "use", "you", "allows", "lets", "let",
    "helps", "help", "the", "a", "an", "it", "is", "which", "for", "please", "simply", "perform", "performs",
    "quickly", "safely", "easily", "directly", "mcp", "api", "endpoint", "function", "method", "operation",
];

/// The lead verbs of the first sentence, and the objects near them.
fn lead_hits<'r>(rs: &'r Ruleset, desc: &str, name_objects: &[(usize, String)], hits: &mut Vec<Hit<'r>>) {
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
        verb_hit(rs, v, w, &objects, "description", Source::Lead, LEAD_FACTOR, hits);
    }
}

/// Whether the text right after `at` makes the words before it a section label (`(read-only):`, `Read-only
/// operations:`), not a statement about the whole tool.
fn section_label(text: &str, at: usize) -> bool {
    let rest = text[at..].trim_start_matches([')', ' ']);
    let rest = rest.strip_prefix("operations").or_else(|| rest.strip_prefix("actions")).unwrap_or(rest);
    rest.trim_start_matches([')', ' ']).starts_with(':')
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

/// Scan one text with one combined pattern set and file every match where it belongs.
#[allow(clippy::too_many_arguments)]
fn scan<'r>(
    rs: &'r Ruleset,
    patterns: &Patterns,
    text: &str,
    field: &str,
    source: Source,
    factor: f32,
    seen: &mut Seen<'r>,
) {
    let accept = |kind: Kind, m: &regex::Match<'_>| match kind {
        Kind::Finding | Kind::Property => true,
        _ => !negated_before(text, m.start()),
    };
    for (kind, rule, m) in patterns.find(text, accept) {
        let hit = |rule: &'r str, category: Category, strength: f32, source: Source| Hit {
            rule,
            category,
            strength,
            field: field.to_string(),
            text: quote(m.as_str(), MAX_QUOTE),
            source,
            needs_action: false,
            restricts: false,
            supersedes: &[],
        };
        match kind {
            Kind::Phrase => {
                let p = &rs.phrases[rule];
                seen.hits.push(Hit {
                    restricts: p.restricts,
                    supersedes: &p.supersedes,
                    ..hit(&p.id, p.category, p.strength * factor, source)
                });
            }
            Kind::Negation => {
                // "QUERY (read-only):" heads a section of a tool that also does other things: it says which of
                // its operations read, not that the tool changes nothing.
                if section_label(text, m.end()) {
                    continue;
                }
                seen.negated = true;
                seen.hits.push(hit(&rs.negations[rule], Category::Read, 0.75, Source::Negation));
            }
            Kind::Property => {
                let p = &rs.properties[rule];
                let h =
                    Hit { needs_action: p.needs_action, ..hit(&p.id, p.category, p.strength * factor, Source::Schema) };
                seen.property_hits.push((rule, h));
            }
            Kind::Factor => {
                let f = &rs.factors[rule];
                let evidence =
                    Evidence { rule: f.id.clone(), field: field.to_string(), text: quote(m.as_str(), MAX_QUOTE) };
                seen.factors.push((f.factor, evidence));
            }
            // Findings are scanned by `poison`, over every string of the definition.
            Kind::Finding => {}
        }
    }
}

fn schema_hits<'r>(rs: &'r Ruleset, facts: &SchemaFacts, name_objects: &[(usize, String)], seen: &mut Seen<'r>) {
    for prop in &facts.properties {
        // A property nested inside another describes data the call carries (a request body's `method`, a
        // record's `status`), not what the call does: its hits count half, so they never decide alone.
        let deep = if nested(&prop.path) { 0.5 } else { 1.0 };
        scan(rs, &rs.scan.property, &prop.words, &prop.path, Source::Schema, deep, seen);
        let last = prop.words.rsplit(' ').next().unwrap_or_default();
        let action_like = rs.action_properties.contains(&prop.words) || rs.action_properties.contains(last);
        if action_like {
            let field = format!("{}.enum", prop.path);
            for value in &prop.enum_values {
                let words = split_name(value);
                let mut objects = name_objects.to_vec();
                objects.extend(objects_in(rs, &words));
                for (verb, at) in name_verbs(rs, &words, false) {
                    let first = seen.hits.len();
                    verb_hit(rs, verb, &words[at], &objects, &field, Source::SchemaEnum, deep, &mut seen.hits);
                    // Quote the whole value (`purge_all`), which is what the schema says.
                    seen.hits[first].text = quote(value, MAX_QUOTE);
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
                        verb_hit(rs, v, w.text, name_objects, &field, Source::SchemaEnum, 0.8 * deep, &mut seen.hits);
                    }
                }
            }
        }
        if let Some(desc) = &prop.description {
            let field = format!("{}.description", prop.path);
            scan(rs, &rs.scan.schema_text, desc, &field, Source::Schema, 0.8 * deep, seen);
        }
        if !prop.enum_values.is_empty() {
            let values: Vec<String> = prop.enum_values.iter().take(8).map(|v| v.to_ascii_lowercase()).collect();
            scan(
                rs,
                &rs.scan.enum_values,
                &values.join(" | "),
                &format!("{}.enum", prop.path),
                Source::Schema,
                deep,
                seen,
            );
        }
    }
    // A property that needs a partner (amount needs currency) counts half without it.
    let property_hits = std::mem::take(&mut seen.property_hits);
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

fn decide(rs: &Ruleset, ann: &Annotations, seen: Seen, version: &str) -> Classification {
    let Seen { mut hits, factors, mut findings, negated, .. } = seen;
    filter(&mut hits, negated);

    // The sum of the rule scores of every hit decides (see `score`); each hit keeps what it added to the
    // category chosen, so the evidence is listed from the hit that weighed most.
    let per_hit: Vec<Option<Feature>> = hits.iter().map(feature).collect();
    let usable = all_features(&per_hit);
    let vectors = rs.weights.vectors(&usable);
    let scored = (!usable.is_empty()).then(|| rs.weights.decide_from(&usable, &vectors));

    let mut evidence_hits: Vec<Hit>;
    let category;
    let mut confidence;
    let mut weight_of: Vec<f32> = Vec::new();
    match scored {
        Some(scored) => {
            category = scored.category;
            confidence = scored.probabilities[score::index(category)];
            // The hits' features come first in `usable`, in hit order: each hit's score is read, not looked up again.
            let at = score::index(category);
            let mut next = vectors.iter();
            weight_of = per_hit.iter().map(|f| f.as_ref().and_then(|_| next.next()).map_or(0.0, |v| v[at])).collect();
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
                    rule: "annotation.fallback",
                    category: cat,
                    strength: 0.35,
                    field: "annotations".into(),
                    text: text.into(),
                    source: Source::Annotation,
                    needs_action: false,
                    restricts: false,
                    supersedes: &[],
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
        // A contradiction is more often the classifier's misreading, or a sloppy annotation, than an attack: it
        // stays at medium unless the name itself says the tool destroys or moves money.
        let name_says_critical = evidence_hits.iter().any(|h| {
            h.source == Source::Name && h.field == "name" && h.category.severity() == 3 && h.strength >= DECISIVE
        });
        let mut contradiction = |claim: &str, severity: Risk| {
            findings.push(
                Finding::new(
                    "annotation-contradiction",
                    severity,
                    format!("annotations claim {claim}, but the text says {category}: {basis}"),
                )
                .at("annotations", 0),
            );
        };
        // `destructiveHint: false` on a tool that cancels or removes is usually a careless annotation (the hint
        // is about irreversible loss, and authors read it narrowly): medium. `readOnlyHint: true` on a tool whose
        // own name says it deletes or pays is the lie an attacker tells to skip an approval: high.
        let overwhelming = if name_says_critical { Risk::High } else { Risk::Medium };
        if ann.read_only == Some(true) && category != Category::Read && confidence >= DECISIVE {
            contradiction("readOnlyHint: true", category.base_risk().min(overwhelming));
            confidence -= 0.1;
        } else if ann.destructive == Some(false) && category.severity() == 3 && confidence >= DECISIVE {
            contradiction("destructiveHint: false", Risk::Medium);
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

    let mut ordered: Vec<(f32, Hit)> = evidence_hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| (weight_of.get(i).copied().unwrap_or(h.strength), h))
        .collect();
    ordered.sort_by(|(wa, a), (wb, b)| {
        let key = |w: f32, h: &Hit| (h.category == category, w, h.strength);
        key(*wb, b).partial_cmp(&key(*wa, a)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut evidence: Vec<Evidence> = Vec::new();
    for (_, h) in ordered {
        if evidence.len() >= MAX_EVIDENCE {
            break;
        }
        if evidence.iter().any(|e| e.rule == h.rule && e.field == h.field) {
            continue;
        }
        evidence.push(Evidence { rule: h.rule.to_string(), field: h.field, text: h.text });
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

    let factors: Vec<String> = factor_list.iter().map(|f| f.as_str().to_string()).collect();
    Classification {
        category,
        risk,
        confidence: (f64::from(confidence.clamp(0.05, 0.99)) * 100.0).round() / 100.0,
        rationale: crate::model::rationale(category, risk, &evidence, &factors),
        evidence,
        factors,
        findings,
        ruleset: version.to_string(),
    }
}
