//! Meaning checks and compilation: a parsed [`Policy`] becomes a [`CompiledPolicy`] (regexes compiled,
//! paths split, values typed) or a list of located diagnostics.
//!
//! One pass does both, so a policy that `policy check` accepts is exactly one the proxy can load. Errors are
//! mistakes that would make the policy mean something other than what it says (a regex that does not
//! compile, one counter name with two meanings, a `max` of 0, a rule on a hidden tool). Warnings are rules
//! that can never match, found by comparing with the catalogue's tool definitions when they are available.

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;
use serde_json::Value;

use super::document::{Action, DefaultAction, Limit, Op, Policy, Scope, ToolRule, Window};
use super::parse::Diagnostic;
use crate::model::Tool;

/// Regexes in policies are written by people, but a compiled program still gets a ceiling.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A policy ready for [`super::decide`]: everything that can be wrong with it has been found already.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) default: DefaultAction,
    pub(crate) hidden: HashSet<String>,
    pub(crate) tools: HashMap<String, CompiledRule>,
    pub(crate) star: Option<CompiledRule>,
    document: Policy,
}

impl CompiledPolicy {
    /// The document this was compiled from.
    pub fn document(&self) -> &Policy {
        &self.document
    }

    /// Whether `tools/list` may show this tool: not hidden, and not refused whatever its arguments (an explicit
    /// `deny` on the tool or on `"*"`, or no entry under `default: deny`). A tool that only some calls may use
    /// (conditions, limits, approval) stays listed, so the agent can read its refusal reasons.
    pub fn lists(&self, tool: &str) -> bool {
        if self.hidden.contains(tool) || self.star.as_ref().is_some_and(|r| r.action == Some(Action::Deny)) {
            return false;
        }
        match self.tools.get(tool) {
            Some(rule) => rule.action != Some(Action::Deny),
            None => self.default == DefaultAction::Allow,
        }
    }

    pub fn is_hidden(&self, tool: &str) -> bool {
        self.hidden.contains(tool)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// `tools.<name>`, for naming the rule in decisions.
    pub(crate) path: String,
    pub(crate) action: Option<Action>,
    pub(crate) reason: Option<String>,
    pub(crate) limits: Vec<CompiledLimit>,
    pub(crate) deny_if: Vec<CompiledDenyIf>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledLimit {
    pub(crate) path: String,
    pub(crate) counter: String,
    pub(crate) window: Window,
    pub(crate) max: f64,
    pub(crate) scope: Scope,
    pub(crate) increment_from: Option<ArgPath>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledDenyIf {
    pub(crate) path: String,
    pub(crate) conditions: Vec<CompiledCondition>,
    pub(crate) on_deny: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledCondition {
    pub(crate) arg: ArgPath,
    pub(crate) test: Test,
}

/// A condition's operator with its value already in the type it needs.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    Regex(Regex),
    Contains(Value),
    Exists(bool),
}

/// `args.a.b` split into its segments after `args`; the text is kept for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPath {
    pub text: String,
    pub segments: Vec<String>,
}

impl ArgPath {
    /// Parse `args` or `args.a.b...`; the message says what is wrong otherwise.
    pub fn parse(text: &str) -> Result<ArgPath, String> {
        let mut parts = text.split('.');
        if parts.next() != Some("args") {
            return Err(format!("path {text:?} must start with \"args\" (e.g. \"args.amount\")"));
        }
        let segments: Vec<String> = parts.map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        Ok(ArgPath { text: text.to_string(), segments })
    }

    /// The value at this path in a call's arguments (array elements by decimal index).
    pub fn resolve<'a>(&self, args: &'a Value) -> Option<&'a Value> {
        let mut v = args;
        for seg in &self.segments {
            v = match v {
                Value::Object(map) => map.get(seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }
}

/// Errors and warnings for a parsed policy; `tools` are the catalogue's definitions when available.
pub fn check(policy: &Policy, tools: Option<&[Tool]>) -> Vec<Diagnostic> {
    let (_, mut diagnostics) = analyse(policy);
    if let Some(tools) = tools {
        diagnostics.extend(catalogue_warnings(policy, tools));
    }
    diagnostics
}

/// Compile a parsed policy, or return its errors (warnings are dropped: they do not change the meaning).
pub fn compile(policy: Policy) -> Result<CompiledPolicy, Vec<Diagnostic>> {
    let (compiled, diagnostics) = analyse(&policy);
    let errors: Vec<Diagnostic> = diagnostics.into_iter().filter(Diagnostic::is_error).collect();
    match compiled {
        Some((tools, star)) if errors.is_empty() => Ok(CompiledPolicy {
            default: policy.default,
            hidden: policy.hide.iter().cloned().collect(),
            tools,
            star,
            document: policy,
        }),
        _ => Err(errors),
    }
}

type Compiled = (HashMap<String, CompiledRule>, Option<CompiledRule>);

fn analyse(policy: &Policy) -> (Option<Compiled>, Vec<Diagnostic>) {
    let mut out = Vec::new();
    if policy.version != "1" {
        out.push(Diagnostic::error("version", format!("unsupported version {:?}; expected \"1\"", policy.version)));
    }
    let mut seen_hidden = HashSet::new();
    for (i, name) in policy.hide.iter().enumerate() {
        if name == "*" {
            out.push(Diagnostic::error(
                format!("hide[{i}]"),
                "\"*\" is not a wildcard in hide; to refuse every unlisted tool use \"default\": \"deny\"",
            ));
        } else if !seen_hidden.insert(name.as_str()) {
            out.push(Diagnostic::warning(format!("hide[{i}]"), format!("{name:?} is listed twice")));
        }
    }
    // Counter name → (where first defined, its settings).
    let mut counters: BTreeMap<(String, Scope), (String, CounterSettings)> = BTreeMap::new();
    let mut tools = HashMap::new();
    let mut star = None;
    for (name, rule) in &policy.tools {
        let path = format!("tools.{name}");
        if name.is_empty() {
            out.push(Diagnostic::error(&path, "a tool name cannot be empty"));
        }
        if seen_hidden.contains(name.as_str()) && applies_anything(rule) {
            out.push(Diagnostic::error(
                &path,
                format!("{name:?} is in hide, so this rule never applies; remove the rule or unhide the tool"),
            ));
        }
        if name == "*" && rule.action == Some(Action::Allow) {
            out.push(Diagnostic::warning(
                format!("{path}.action"),
                "\"allow\" on \"*\" has no effect (\"*\" only tightens); unlisted tools follow \"default\"",
            ));
        }
        let compiled = compile_rule(&path, rule, &mut counters, &mut out);
        if name == "*" {
            star = Some(compiled);
        } else {
            tools.insert(name.clone(), compiled);
        }
    }
    let ok = !out.iter().any(Diagnostic::is_error);
    (ok.then_some((tools, star)), out)
}

/// Whether a rule on a hidden tool would be dead weight (a `deny` with a reason is harmless documentation).
fn applies_anything(rule: &ToolRule) -> bool {
    !rule.limits.is_empty() || !rule.deny_if.is_empty() || matches!(rule.action, Some(Action::Allow | Action::Approve))
}

#[derive(Debug, Clone, PartialEq)]
struct CounterSettings {
    window: Window,
    max: f64,
    increment_from: Option<String>,
}

fn compile_rule(
    path: &str,
    rule: &ToolRule,
    counters: &mut BTreeMap<(String, Scope), (String, CounterSettings)>,
    out: &mut Vec<Diagnostic>,
) -> CompiledRule {
    let mut limits = Vec::new();
    for (i, limit) in rule.limits.iter().enumerate() {
        let lpath = format!("{path}.limits[{i}]");
        if let Some(compiled) = compile_limit(&lpath, limit, counters, out) {
            limits.push(compiled);
        }
    }
    let mut deny_if = Vec::new();
    for (i, entry) in rule.deny_if.iter().enumerate() {
        let dpath = format!("{path}.deny_if[{i}]");
        if entry.conditions.is_empty() {
            out.push(Diagnostic::warning(
                format!("{dpath}.conditions"),
                "no conditions: this always refuses the call; \"action\": \"deny\" says so more plainly",
            ));
        }
        let mut conditions = Vec::new();
        for (j, c) in entry.conditions.iter().enumerate() {
            let cpath = format!("{dpath}.conditions[{j}]");
            let arg = match ArgPath::parse(&c.path) {
                Ok(arg) => Some(arg),
                Err(message) => {
                    out.push(Diagnostic::error(format!("{cpath}.path"), message));
                    None
                }
            };
            let test = compile_test(&cpath, c.op, c.value.as_ref(), out);
            if let (Some(arg), Some(test)) = (arg, test) {
                conditions.push(CompiledCondition { arg, test });
            }
        }
        deny_if.push(CompiledDenyIf { path: dpath, conditions, on_deny: entry.on_deny.clone() });
    }
    CompiledRule { path: path.to_string(), action: rule.action, reason: rule.reason.clone(), limits, deny_if }
}

fn compile_limit(
    lpath: &str,
    limit: &Limit,
    counters: &mut BTreeMap<(String, Scope), (String, CounterSettings)>,
    out: &mut Vec<Diagnostic>,
) -> Option<CompiledLimit> {
    let mut ok = true;
    if limit.counter.trim().is_empty() {
        out.push(Diagnostic::error(format!("{lpath}.counter"), "a counter needs a name"));
        ok = false;
    }
    let max = limit.max.0;
    if !max.is_finite() || max <= 0.0 {
        out.push(Diagnostic::error(
            format!("{lpath}.max"),
            format!("max of {} admits no call; to refuse a tool use \"action\": \"deny\"", limit.max),
        ));
        ok = false;
    }
    let increment_from = match limit.increment_from.as_deref().map(ArgPath::parse) {
        None => None,
        Some(Ok(p)) if !p.segments.is_empty() => Some(p),
        Some(Ok(_)) => {
            out.push(Diagnostic::error(
                format!("{lpath}.increment_from"),
                "increment_from must name one argument, e.g. \"args.amount\"",
            ));
            ok = false;
            None
        }
        Some(Err(message)) => {
            out.push(Diagnostic::error(format!("{lpath}.increment_from"), message));
            ok = false;
            None
        }
    };
    let settings = CounterSettings { window: limit.window, max, increment_from: limit.increment_from.clone() };
    match counters.get(&(limit.counter.clone(), limit.scope)) {
        Some((first, earlier)) if *earlier != settings => {
            out.push(Diagnostic::error(
                format!("{lpath}.counter"),
                format!(
                    "counter {:?} (scope {}) is also defined at {first} with different settings \
                     (window {}, max {}); one counter must mean one thing: rename one of them",
                    limit.counter,
                    limit.scope,
                    earlier.window,
                    super::document::Quantity(earlier.max)
                ),
            ));
            ok = false;
        }
        Some(_) => {}
        None => {
            counters.insert((limit.counter.clone(), limit.scope), (lpath.to_string(), settings));
        }
    }
    ok.then(|| CompiledLimit {
        path: lpath.to_string(),
        counter: limit.counter.clone(),
        window: limit.window,
        max,
        scope: limit.scope,
        increment_from,
    })
}

fn compile_test(cpath: &str, op: Op, value: Option<&Value>, out: &mut Vec<Diagnostic>) -> Option<Test> {
    let vpath = format!("{cpath}.value");
    let mut fail = |message: String| {
        out.push(Diagnostic::error(&vpath, message));
        None
    };
    let number = |v: &Value| v.as_f64().filter(|f| f.is_finite());
    match (op, value) {
        (Op::Exists, None) => Some(Test::Exists(true)),
        (Op::Exists, Some(Value::Bool(b))) => Some(Test::Exists(*b)),
        (Op::Exists, Some(other)) => fail(format!("exists takes true or false, not {}", kind(other))),
        (op, None) => fail(format!("operator {op} needs a value")),
        (Op::Eq, Some(v)) => Some(Test::Eq(v.clone())),
        (Op::Neq, Some(v)) => Some(Test::Neq(v.clone())),
        (Op::Contains, Some(v)) => Some(Test::Contains(v.clone())),
        (Op::In | Op::NotIn, Some(Value::Array(items))) if items.is_empty() => {
            let always = if op == Op::In { "never holds" } else { "always holds" };
            out.push(Diagnostic::warning(&vpath, format!("{op} an empty list {always}")));
            Some(if op == Op::In { Test::In(Vec::new()) } else { Test::NotIn(Vec::new()) })
        }
        (Op::In, Some(Value::Array(items))) => Some(Test::In(items.clone())),
        (Op::NotIn, Some(Value::Array(items))) => Some(Test::NotIn(items.clone())),
        (Op::In | Op::NotIn, Some(other)) => fail(format!("operator {op} needs a list, not {}", kind(other))),
        (Op::Lt | Op::Lte | Op::Gt | Op::Gte, Some(v)) => match number(v) {
            Some(n) => Some(match op {
                Op::Lt => Test::Lt(n),
                Op::Lte => Test::Lte(n),
                Op::Gt => Test::Gt(n),
                _ => Test::Gte(n),
            }),
            None => fail(format!("operator {op} needs a number, not {}", kind(v))),
        },
        (Op::Regex, Some(Value::String(pattern))) => {
            match regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(re) => Some(Test::Regex(re)),
                Err(e) => fail(format!("regex does not compile: {}", one_line(&e.to_string()))),
            }
        }
        (Op::Regex, Some(other)) => fail(format!("operator regex needs a string pattern, not {}", kind(other))),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Warnings for rules that can never match the tools the catalogue knows.
fn catalogue_warnings(policy: &Policy, tools: &[Tool]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let by_name: HashMap<&str, &Tool> = tools.iter().map(|t| (t.name.as_str(), t)).collect();
    for (i, name) in policy.hide.iter().enumerate() {
        if !by_name.contains_key(name.as_str()) {
            out.push(Diagnostic::warning(
                format!("hide[{i}]"),
                format!("no server in the catalogue offers a tool named {name:?}"),
            ));
        }
    }
    for (name, rule) in &policy.tools {
        if name == "*" {
            continue;
        }
        let path = format!("tools.{name}");
        let Some(tool) = by_name.get(name.as_str()) else {
            let hint =
                closest(name, by_name.keys().copied()).map_or_else(String::new, |c| format!("; did you mean {c:?}?"));
            out.push(Diagnostic::warning(
                &path,
                format!("no server in the catalogue offers a tool named {name:?} (names match exactly){hint}"),
            ));
            continue;
        };
        for (i, limit) in rule.limits.iter().enumerate() {
            if let Some(Ok(arg)) = limit.increment_from.as_deref().map(ArgPath::parse) {
                let p = format!("{path}.limits[{i}].increment_from");
                match schema_at(tool, &arg) {
                    SchemaLookup::Missing => out.push(Diagnostic::warning(
                        p,
                        format!("{name:?} has no argument {}; the counter cannot count it", arg.text),
                    )),
                    SchemaLookup::Found(types)
                        if !types.is_empty() && !types.iter().any(|t| t == "number" || t == "integer") =>
                    {
                        out.push(Diagnostic::warning(
                            p,
                            format!("{} is declared {}, not a number", arg.text, types.join(" or ")),
                        ))
                    }
                    _ => {}
                }
            }
        }
        for (i, entry) in rule.deny_if.iter().enumerate() {
            for (j, c) in entry.conditions.iter().enumerate() {
                let Ok(arg) = ArgPath::parse(&c.path) else { continue };
                let cpath = format!("{path}.deny_if[{i}].conditions[{j}]");
                match schema_at(tool, &arg) {
                    SchemaLookup::Missing if c.op != Op::Exists => out.push(Diagnostic::warning(
                        format!("{cpath}.path"),
                        format!("{name:?} has no argument {}, so this condition never holds", arg.text),
                    )),
                    SchemaLookup::Found(types)
                        if c.op == Op::Regex && !types.is_empty() && !types.iter().any(|t| t == "string") =>
                    {
                        out.push(Diagnostic::warning(
                            format!("{cpath}.op"),
                            format!(
                                "regex is matched against text, but {} is declared {}",
                                arg.text,
                                types.join(" or ")
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// The known name nearest to a misspelt one: same letters ignoring case, or at most two edits away.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = if k.to_lowercase() == lower { 0 } else { edit_distance(&lower, &k.to_lowercase()) };
        if d <= 2 && best.is_none_or(|(bd, bk)| (d, k) < (bd, bk)) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Levenshtein distance over chars; tool names are short, and longer ones are not compared.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || a.len() > 128 || b.len() > 128 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

enum SchemaLookup {
    /// The schema declares properties and this is not one of them.
    Missing,
    /// Declared, with these JSON types (empty when not stated).
    Found(Vec<String>),
    /// The schema does not say (no schema, no properties, `$ref` we do not follow, open objects).
    Unknown,
}

/// Walk an input schema along an argument path, through `properties` only.
fn schema_at(tool: &Tool, arg: &ArgPath) -> SchemaLookup {
    let Some(mut schema) = tool.input_schema.as_ref() else { return SchemaLookup::Unknown };
    for seg in &arg.segments {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return SchemaLookup::Unknown;
        };
        match props.get(seg) {
            Some(s) => schema = s,
            None => {
                let open = schema.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false))
                    || schema.get("patternProperties").is_some();
                return if open { SchemaLookup::Unknown } else { SchemaLookup::Missing };
            }
        }
    }
    let types = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    SchemaLookup::Found(types)
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
