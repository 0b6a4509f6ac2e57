//! The decision: a pure function from a compiled policy, one call and a snapshot of counter values to
//! allow / deny / needs-approval, with the counters to charge.
//!
//! No clock, no I/O, no shared state: the call carries its own time, and counters are read from a map the
//! caller filled in. That keeps the proxy's counter store (in memory, Redis) out of this module and lets
//! tests and fuzzers drive it directly. The proxy asks [`counter_keys`] which counters a call touches, reads
//! them, calls [`decide`], and on `Allow` (or on approval) adds the returned charges; doing the read, the
//! check and the add atomically (a Redis script, a mutex) is the store's job.
//!
//! Order of precedence: hidden, then explicit `deny` actions, then `default: deny` for unlisted tools, then
//! `deny_if`, then limits; approval only after all of those pass. So deny beats approve beats allow.
//!
//! Windows: `minute`, `hour` and `day` are UTC calendar windows (a counter for `minute` resets at :00
//! seconds); a number of seconds N is a fixed bucket `[k*N, (k+1)*N)` counted from the Unix epoch.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::check::{CompiledLimit, CompiledPolicy, CompiledRule, Test};
use super::document::{Action, DefaultAction, Scope, Window};

/// One `tools/call` as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub tool: &'a str,
    /// The call's `arguments` (use `Value::Null` or an empty object when there are none).
    pub arguments: &'a Value,
    /// The caller's identity (a grant, a token subject); scopes `grant` counters.
    pub identity: &'a str,
    /// The MCP session; scopes `session` counters.
    pub session: &'a str,
    /// When the call happens, Unix seconds (selects the counter windows).
    pub at: i64,
}

/// Which count a limit reads and charges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CounterKey {
    pub counter: String,
    pub scope: ScopeKey,
    /// Unix seconds at which the window starts.
    pub window_start: i64,
}

/// Whose count: everyone's, one identity's or one session's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "scope", content = "key", rename_all = "lowercase")]
pub enum ScopeKey {
    Global,
    Grant(String),
    Session(String),
}

impl fmt::Display for CounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            ScopeKey::Global => write!(f, "{}@global/{}", self.counter, self.window_start),
            ScopeKey::Grant(id) => write!(f, "{}@grant:{id}/{}", self.counter, self.window_start),
            ScopeKey::Session(s) => write!(f, "{}@session:{s}/{}", self.counter, self.window_start),
        }
    }
}

/// Counter values at the time of the call; a key that is absent counts 0.
pub type Counters = HashMap<CounterKey, f64>;

/// Add `amount` to `key` once the call goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charge {
    pub key: CounterKey,
    pub amount: f64,
    pub max: f64,
    /// Seconds the window lasts; the count may be forgotten at `key.window_start + window_seconds`.
    pub window_seconds: u64,
    /// A spend counter (`increment_from`): given back when the upstream reports failure. Call counts are
    /// not, so an agent retrying a failing call still reaches its limit.
    pub refundable: bool,
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow { charges: Vec<Charge> },
    Deny { reason: String, rule: String },
    NeedsApproval { reason: String, rule: String, charges: Vec<Charge> },
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::NeedsApproval { .. } => "approve",
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    pub fn is_deny(&self) -> bool {
        matches!(self, Decision::Deny { .. })
    }

    /// The rule that decided (`hide`, `default`, `tools.x.deny_if[0]`, ...); none for a plain allow.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Decision::Allow { .. } => None,
            Decision::Deny { rule, .. } | Decision::NeedsApproval { rule, .. } => Some(rule),
        }
    }

    /// The text for the agent (a refusal) or the approver; none for a plain allow.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Allow { .. } => None,
            Decision::Deny { reason, .. } | Decision::NeedsApproval { reason, .. } => Some(reason),
        }
    }

    /// The counters to add to when the call goes ahead (none when denied).
    pub fn charges(&self) -> &[Charge] {
        match self {
            Decision::Allow { charges } | Decision::NeedsApproval { charges, .. } => charges,
            Decision::Deny { .. } => &[],
        }
    }
}

/// The counters a call would read: fetch these, then call [`decide`].
pub fn counter_keys(policy: &CompiledPolicy, call: &Call<'_>) -> Vec<CounterKey> {
    let mut keys: Vec<CounterKey> =
        rules_for(policy, call.tool).flat_map(|r| r.limits.iter()).map(|l| key_for(l, call)).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Decide one call.
pub fn decide(policy: &CompiledPolicy, call: &Call<'_>, counters: &Counters) -> Decision {
    evaluate(policy, call, counters, &mut NoTrace)
}

/// Decide one call and say how: the steps the evaluation took, for `policy explain`.
pub fn explain(policy: &CompiledPolicy, call: &Call<'_>, counters: &Counters) -> (Decision, Vec<String>) {
    let mut trace = Vec::new();
    let decision = evaluate(policy, call, counters, &mut trace);
    (decision, trace)
}

/// Where explanation lines go; the fast path formats nothing.
trait Trace {
    fn note(&mut self, line: impl FnOnce() -> String);
}

struct NoTrace;

impl Trace for NoTrace {
    fn note(&mut self, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<String> {
    fn note(&mut self, line: impl FnOnce() -> String) {
        self.push(line());
    }
}

/// The tool's own entry, then `"*"`.
fn rules_for<'p>(policy: &'p CompiledPolicy, tool: &str) -> impl Iterator<Item = &'p CompiledRule> {
    policy.tools.get(tool).into_iter().chain(policy.star.as_ref())
}

fn key_for(limit: &CompiledLimit, call: &Call<'_>) -> CounterKey {
    let scope = match limit.scope {
        Scope::Global => ScopeKey::Global,
        Scope::Grant => ScopeKey::Grant(call.identity.to_string()),
        Scope::Session => ScopeKey::Session(call.session.to_string()),
    };
    CounterKey { counter: limit.counter.clone(), scope, window_start: limit.window.start(call.at) }
}

fn evaluate(policy: &CompiledPolicy, call: &Call<'_>, counters: &Counters, trace: &mut impl Trace) -> Decision {
    let tool = call.tool;
    if policy.hidden.contains(tool) {
        trace.note(|| format!("{tool:?} is in hide"));
        return Decision::Deny { reason: format!("tool {tool:?} is not available"), rule: "hide".into() };
    }
    let own = policy.tools.get(tool);
    match own {
        Some(rule) => trace.note(|| format!("{tool:?} has its own entry {}", rule.path)),
        None => trace.note(|| format!("{tool:?} has no entry of its own; default is {}", policy.default)),
    }
    if policy.star.is_some() {
        trace.note(|| "the \"*\" entry applies too".to_string());
    }
    for rule in rules_for(policy, tool) {
        if rule.action == Some(Action::Deny) {
            trace.note(|| format!("{}.action is deny", rule.path));
            return Decision::Deny {
                reason: rule.reason.clone().unwrap_or_else(|| format!("tool {tool:?} is denied by policy")),
                rule: format!("{}.action", rule.path),
            };
        }
    }
    if own.is_none() && policy.default == DefaultAction::Deny {
        return Decision::Deny {
            reason: format!("tool {tool:?} is not allowed by policy (default: deny)"),
            rule: "default".into(),
        };
    }
    for rule in rules_for(policy, tool) {
        for entry in &rule.deny_if {
            let holds = entry.conditions.iter().all(|c| {
                let arg = c.arg.resolve(call.arguments);
                let holds = test_holds(&c.test, arg);
                trace.note(|| {
                    let shown = arg.map_or_else(|| "missing".to_string(), short_json);
                    format!(
                        "{}: {} {} {} (value {shown}) {}",
                        entry.path,
                        c.arg.text,
                        test_op(&c.test),
                        test_value(&c.test),
                        if holds { "holds" } else { "does not hold" }
                    )
                });
                holds
            });
            if holds {
                return Decision::Deny {
                    reason: entry.on_deny.clone().unwrap_or_else(|| format!("refused by {}", entry.path)),
                    rule: entry.path.clone(),
                };
            }
        }
    }
    // Limits: charges to one key are summed first, so two limits naming the same counter cannot each admit.
    let mut charges: Vec<Charge> = Vec::new();
    for rule in rules_for(policy, tool) {
        for limit in &rule.limits {
            let amount = match &limit.increment_from {
                None => 1.0,
                Some(arg) => match arg.resolve(call.arguments).and_then(as_number) {
                    Some(n) if n >= 0.0 => n,
                    _ => {
                        trace.note(|| format!("{}: {} is missing or not a non-negative number", limit.path, arg.text));
                        return Decision::Deny {
                            reason: format!(
                                "limit {:?} counts {}, which is missing or not a non-negative number",
                                limit.counter, arg.text
                            ),
                            rule: limit.path.clone(),
                        };
                    }
                },
            };
            let key = key_for(limit, call);
            let already: f64 = charges.iter().filter(|c| c.key == key).map(|c| c.amount).sum();
            let current = counters.get(&key).copied().unwrap_or(0.0);
            let after = current + already + amount;
            trace.note(|| {
                format!("{}: counter {key} is at {current}; this call adds {amount} (max {})", limit.path, limit.max)
            });
            if after > limit.max {
                return Decision::Deny {
                    reason: format!(
                        "rate limit: {:?} allows {} per {} ({} scope); try again in the next window",
                        limit.counter,
                        super::document::Quantity(limit.max),
                        window_words(limit.window),
                        limit.scope
                    ),
                    rule: limit.path.clone(),
                };
            }
            charges.push(Charge {
                key,
                amount,
                max: limit.max,
                window_seconds: limit.window.seconds(),
                refundable: limit.increment_from.is_some(),
            });
        }
    }
    for rule in rules_for(policy, tool) {
        if rule.action == Some(Action::Approve) {
            trace.note(|| format!("{}.action is approve", rule.path));
            return Decision::NeedsApproval {
                reason: rule.reason.clone().unwrap_or_else(|| format!("tool {tool:?} needs a person's approval")),
                rule: format!("{}.action", rule.path),
                charges,
            };
        }
    }
    trace.note(|| "nothing refuses the call".to_string());
    Decision::Allow { charges }
}

fn window_words(w: Window) -> String {
    match w {
        Window::Seconds(n) => format!("{n} seconds"),
        other => other.to_string(),
    }
}

/// A number, or a string that is one (so `"amount": "9999"` cannot slip past a cap on `amount`).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// JSON equality, except that numbers compare by value (1 == 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A missing argument is "not equal" to anything, so `neq` and `not_in` hold and every other test fails.
fn test_holds(test: &Test, arg: Option<&Value>) -> bool {
    let Some(v) = arg else {
        return matches!(test, Test::Neq(_) | Test::NotIn(_) | Test::Exists(false));
    };
    match test {
        Test::Exists(want) => *want,
        Test::Eq(x) => same(v, x),
        Test::Neq(x) => !same(v, x),
        Test::In(xs) => xs.iter().any(|x| same(v, x)),
        Test::NotIn(xs) => !xs.iter().any(|x| same(v, x)),
        Test::Lt(n) => as_number(v).is_some_and(|a| a < *n),
        Test::Lte(n) => as_number(v).is_some_and(|a| a <= *n),
        Test::Gt(n) => as_number(v).is_some_and(|a| a > *n),
        Test::Gte(n) => as_number(v).is_some_and(|a| a >= *n),
        Test::Regex(re) => match v {
            Value::String(s) => re.is_match(s),
            Value::Array(items) => items.iter().any(|i| i.as_str().is_some_and(|s| re.is_match(s))),
            other => re.is_match(&other.to_string()),
        },
        Test::Contains(x) => match (v, x) {
            (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
            (Value::Array(items), x) => items.iter().any(|i| same(i, x)),
            (Value::Object(map), Value::String(key)) => map.contains_key(key),
            _ => false,
        },
    }
}

fn test_op(t: &Test) -> &'static str {
    match t {
        Test::Eq(_) => "eq",
        Test::Neq(_) => "neq",
        Test::In(_) => "in",
        Test::NotIn(_) => "not_in",
        Test::Lt(_) => "lt",
        Test::Lte(_) => "lte",
        Test::Gt(_) => "gt",
        Test::Gte(_) => "gte",
        Test::Regex(_) => "regex",
        Test::Contains(_) => "contains",
        Test::Exists(_) => "exists",
    }
}

fn test_value(t: &Test) -> String {
    match t {
        Test::Eq(v) | Test::Neq(v) | Test::Contains(v) => short_json(v),
        Test::In(vs) | Test::NotIn(vs) => short_json(&Value::Array(vs.clone())),
        Test::Lt(n) | Test::Lte(n) | Test::Gt(n) | Test::Gte(n) => super::document::Quantity(*n).to_string(),
        Test::Regex(re) => format!("{:?}", re.as_str()),
        Test::Exists(b) => b.to_string(),
    }
}

/// Argument values are untrusted and unbounded: explanations show a bounded, escaped form.
fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
