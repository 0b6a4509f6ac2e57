//! Converting the rule-based YAML policies of the popular open-source MCP proxy into ours.
//!
//! That format lists, per tool, `rules[]` that either `deny` when their `conditions` hold or `evaluate` a
//! stateful counter (`state: {counter, window, increment, increment_from}`) against a condition on
//! `state.<counter>`, plus a `rate_limit: N/window` shorthand. Everything maps onto `action`, `deny_if` and
//! `limits`; what does not (an operator we lack, a condition mixing state and arguments, unknown keys) is
//! dropped with a note, never guessed, so the caller can print exactly what was lost. The source is read as
//! an untyped value on purpose: one odd rule must cost a note, not the whole import.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::document::{Action, Condition, DefaultAction, DenyIf, Limit, Op, Policy, Quantity, Scope, ToolRule, Window};
use super::parse::Diagnostic;

/// The converted policy and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Import {
    pub policy: Policy,
    /// One line per thing dropped or changed in meaning, with the source path.
    pub notes: Vec<String>,
}

/// Convert the text of a rule-based YAML policy.
pub fn import_yaml(text: &str) -> Result<Import, Diagnostic> {
    if text.len() > super::parse::MAX_POLICY_BYTES {
        return Err(Diagnostic::error("", "the file is larger than policies may be"));
    }
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location();
        let message = e.to_string();
        let message = message.rfind(" at line ").map_or(message.clone(), |i| message[..i].to_string());
        Diagnostic {
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            ..Diagnostic::error("", message)
        }
    })?;
    let Value::Object(top) = value else {
        return Err(Diagnostic::error("", "expected a mapping with version, default, hide and tools"));
    };
    let mut cx = Importer { notes: Vec::new() };
    let policy = cx.policy(&top);
    Ok(Import { policy, notes: cx.notes })
}

struct Importer {
    notes: Vec<String>,
}

impl Importer {
    fn note(&mut self, path: &str, message: impl AsRef<str>) {
        self.notes.push(format!("{path}: {}", message.as_ref()));
    }

    fn policy(&mut self, top: &Map<String, Value>) -> Policy {
        let mut policy = Policy {
            schema: None,
            version: "1".into(),
            default: DefaultAction::Deny,
            hide: Vec::new(),
            tools: BTreeMap::new(),
        };
        for (key, v) in top {
            match key.as_str() {
                "version" => {
                    let text = scalar_text(v);
                    if text.as_deref() != Some("1") {
                        self.note("version", format!("source version {} converted as version 1", show(v)));
                    }
                }
                "default" => match v.as_str() {
                    Some("allow") => policy.default = DefaultAction::Allow,
                    Some("deny") => policy.default = DefaultAction::Deny,
                    _ => self.note("default", format!("{} is not allow or deny; using deny", show(v))),
                },
                "hide" => match v {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            match item.as_str() {
                                Some(name) => policy.hide.push(name.to_string()),
                                None => self.note(&format!("hide[{i}]"), "not a tool name; dropped"),
                            }
                        }
                    }
                    _ => self.note("hide", "not a list; dropped"),
                },
                "tools" => match v {
                    Value::Object(tools) => {
                        for (name, spec) in tools {
                            let path = format!("tools.{name}");
                            let rule = self.tool(&path, name, spec);
                            policy.tools.insert(name.clone(), rule);
                        }
                    }
                    _ => self.note("tools", "not a mapping; dropped"),
                },
                other => self.note(other, "unknown key; dropped"),
            }
        }
        policy
    }

    fn tool(&mut self, path: &str, name: &str, spec: &Value) -> ToolRule {
        let mut rule = ToolRule::default();
        let Value::Object(map) = spec else {
            if !spec.is_null() {
                self.note(path, "not a mapping; converted as an empty entry (allowed)");
            }
            return rule;
        };
        for (key, v) in map {
            let kpath = format!("{path}.{key}");
            match key.as_str() {
                "rules" => match v {
                    Value::Array(rules) => {
                        for (i, r) in rules.iter().enumerate() {
                            self.rule(&format!("{kpath}[{i}]"), name, r, &mut rule);
                        }
                    }
                    _ => self.note(&kpath, "not a list; dropped"),
                },
                "rate_limit" => {
                    if let Some(limit) = self.rate_limit(&kpath, &counter_base(name), v) {
                        rule.limits.push(limit);
                    }
                }
                "action" => self.action(&kpath, v, &mut rule),
                "reason" | "description" | "on_deny" => {
                    if let Some(s) = v.as_str() {
                        rule.reason = Some(s.to_string());
                    }
                }
                _ => self.note(&kpath, "unknown key; dropped"),
            }
        }
        rule
    }

    fn action(&mut self, path: &str, v: &Value, rule: &mut ToolRule) {
        match v.as_str() {
            Some("deny") => rule.action = Some(Action::Deny),
            Some("allow") => rule.action = Some(Action::Allow),
            Some("approve") => rule.action = Some(Action::Approve),
            _ => self.note(path, format!("action {} dropped", show(v))),
        }
    }

    /// One entry of `rules[]`.
    fn rule(&mut self, path: &str, tool: &str, r: &Value, out: &mut ToolRule) {
        let Value::Object(map) = r else {
            self.note(path, "not a mapping; dropped");
            return;
        };
        let label = map.get("name").and_then(Value::as_str).unwrap_or("");
        let on_deny = map.get("on_deny").and_then(Value::as_str).map(str::to_string);
        for key in map.keys() {
            if !matches!(
                key.as_str(),
                "name" | "action" | "conditions" | "on_deny" | "state" | "rate_limit" | "description"
            ) {
                self.note(&format!("{path}.{key}"), "unknown key; dropped");
            }
        }
        let action = map.get("action").and_then(Value::as_str).unwrap_or("deny");
        if !matches!(action, "deny" | "evaluate") {
            self.note(&format!("{path}.action"), format!("action {action:?} is not deny or evaluate; rule dropped"));
            return;
        }
        if let Some(rl) = map.get("rate_limit") {
            let base = if label.is_empty() {
                format!("{}_rule{}", counter_base(tool), rule_index(path))
            } else {
                format!("{}_{}", counter_base(tool), counter_base(label))
            };
            if let Some(limit) = self.rate_limit(&format!("{path}.rate_limit"), &base, rl) {
                out.limits.push(limit);
            }
        }
        // Split conditions into those on arguments and those on the rule's counter.
        let mut arg_conditions = Vec::new();
        let mut state_conditions = Vec::new();
        let mut ok = true;
        if let Some(conds) = map.get("conditions") {
            let Value::Array(conds) = conds else {
                self.note(&format!("{path}.conditions"), "not a list; rule dropped");
                return;
            };
            for (i, c) in conds.iter().enumerate() {
                let cpath = format!("{path}.conditions[{i}]");
                match self.condition(&cpath, c) {
                    Some(Converted::Arg(c)) => arg_conditions.push(c),
                    Some(Converted::State(counter, op, n)) => state_conditions.push((cpath, counter, op, n)),
                    None => ok = false,
                }
            }
        }
        if !ok {
            // A rule that refuses when all conditions hold would refuse more if we dropped one; a partial
            // rule is a different rule, so it goes whole.
            self.note(path, "rule dropped because one of its conditions could not be converted");
            return;
        }
        if let Some(state) = map.get("state") {
            let spath = format!("{path}.state");
            if !arg_conditions.is_empty() {
                self.note(
                    path,
                    "counts only when argument conditions hold, which our limits cannot express; rule dropped",
                );
                return;
            }
            if let Some(limit) = self.state_limit(&spath, state, &state_conditions) {
                out.limits.push(limit);
            }
            return;
        }
        if !state_conditions.is_empty() {
            self.note(path, "conditions on state without a state block; rule dropped");
            return;
        }
        if action == "evaluate" && arg_conditions.is_empty() {
            if map.get("rate_limit").is_none() {
                self.note(path, "evaluate rule with nothing to evaluate; dropped");
            }
            return;
        }
        if arg_conditions.is_empty() {
            out.action = Some(Action::Deny);
            if out.reason.is_none() {
                out.reason = on_deny;
            }
            return;
        }
        let on_deny = on_deny.or_else(|| (!label.is_empty()).then(|| format!("refused by rule {label:?}")));
        out.deny_if.push(DenyIf { conditions: arg_conditions, on_deny });
    }

    fn condition(&mut self, path: &str, c: &Value) -> Option<Converted> {
        let Value::Object(map) = c else {
            self.note(path, "not a mapping");
            return None;
        };
        let Some(raw_path) = map.get("path").and_then(Value::as_str) else {
            self.note(path, "has no path");
            return None;
        };
        let Some(raw_op) = map.get("op").or_else(|| map.get("operator")).and_then(Value::as_str) else {
            self.note(path, "has no op");
            return None;
        };
        let Some(op) = map_op(raw_op) else {
            self.note(&format!("{path}.op"), format!("operator {raw_op:?} has no equivalent"));
            return None;
        };
        let value = map.get("value").cloned();
        if let Some(counter) = raw_path.strip_prefix("state.") {
            let n = value.as_ref().and_then(Value::as_f64);
            return match (op, n) {
                (Op::Gt | Op::Gte, Some(n)) => Some(Converted::State(counter.to_string(), op, n)),
                _ => {
                    self.note(path, "only \"state.X gt N\" or \"gte N\" converts to a limit");
                    None
                }
            };
        }
        let arg_path = if raw_path == "args" || raw_path.starts_with("args.") {
            raw_path.to_string()
        } else if let Some(rest) =
            raw_path.strip_prefix("arguments.").or_else(|| raw_path.strip_prefix("params.arguments."))
        {
            format!("args.{rest}")
        } else if !raw_path.contains('.') && !raw_path.is_empty() {
            format!("args.{raw_path}")
        } else {
            self.note(&format!("{path}.path"), format!("path {raw_path:?} is not an argument path"));
            return None;
        };
        if op == Op::Regex
            && let Some(Value::String(p)) = &value
            && regex::Regex::new(p).is_err()
        {
            self.note(&format!("{path}.value"), "regex does not compile");
            return None;
        }
        Some(Converted::Arg(Condition { path: arg_path, op, value }))
    }

    fn state_limit(&mut self, path: &str, state: &Value, conds: &[(String, String, Op, f64)]) -> Option<Limit> {
        let Value::Object(map) = state else {
            self.note(path, "not a mapping; rule dropped");
            return None;
        };
        for key in map.keys() {
            if !matches!(key.as_str(), "counter" | "window" | "increment" | "increment_from" | "scope") {
                self.note(&format!("{path}.{key}"), "unknown key; dropped");
            }
        }
        let Some(counter) = map.get("counter").and_then(Value::as_str) else {
            self.note(path, "no counter name; rule dropped");
            return None;
        };
        let window = match map.get("window").map(parse_window) {
            Some(Some(w)) => w,
            Some(None) => {
                self.note(&format!("{path}.window"), "window not understood; rule dropped");
                return None;
            }
            None => {
                self.note(path, "no window; counted per day");
                Window::Day
            }
        };
        let scope = match map.get("scope").and_then(Value::as_str) {
            None => Scope::Grant,
            Some(s) => match s.parse::<Scope>() {
                Ok(s) => s,
                Err(_) => {
                    self.note(&format!("{path}.scope"), format!("scope {s:?} unknown; using grant"));
                    Scope::Grant
                }
            },
        };
        let increment_from = match map.get("increment_from").and_then(Value::as_str) {
            None => None,
            Some(p) if p.starts_with("args.") => Some(p.to_string()),
            Some(p) => Some(format!("args.{}", p.trim_start_matches("arguments."))),
        };
        let increment = map.get("increment").and_then(Value::as_f64).unwrap_or(1.0);
        let Some((_, _, op, n)) = conds.iter().find(|(_, c, _, _)| c == counter) else {
            self.note(path, format!("no condition on state.{counter} says when to refuse; rule dropped"));
            return None;
        };
        for (cpath, c, _, _) in conds.iter().filter(|(_, c, _, _)| c != counter) {
            self.note(cpath, format!("condition on another counter (state.{c}) dropped"));
        }
        // Their rule refuses once the counter, including this call, passes the threshold.
        let mut max = if *op == Op::Gt { *n } else { n - 1.0 };
        if increment_from.is_none() && increment != 1.0 {
            if increment <= 0.0 {
                self.note(&format!("{path}.increment"), "increment of 0 or less never counts; rule dropped");
                return None;
            }
            max = (max / increment).floor();
            self.note(
                &format!("{path}.increment"),
                format!("increment {increment} converted by dividing the threshold: at most {max} calls"),
            );
        }
        if max <= 0.0 {
            self.note(path, "threshold admits no call; converted as a deny");
            return None;
        }
        Some(Limit { counter: counter.to_string(), window, max: Quantity(max), scope, increment_from })
    }

    fn rate_limit(&mut self, path: &str, base: &str, v: &Value) -> Option<Limit> {
        let text = scalar_text(v).unwrap_or_default();
        let parsed = text.split_once('/').and_then(|(n, w)| {
            let n: f64 = n.trim().parse().ok()?;
            let w = parse_window(&Value::String(w.trim().to_string()))?;
            (n > 0.0).then_some((n, w))
        });
        match parsed {
            Some((n, window)) => Some(Limit {
                counter: format!("{base}_rate_limit"),
                window,
                max: Quantity(n.floor()),
                scope: Scope::Grant,
                increment_from: None,
            }),
            None => {
                self.note(path, format!("{} is not N/window (e.g. 10/minute); dropped", show(v)));
                None
            }
        }
    }
}

enum Converted {
    Arg(Condition),
    State(String, Op, f64),
}

fn map_op(op: &str) -> Option<Op> {
    Some(match op {
        "eq" | "equals" | "==" => Op::Eq,
        "neq" | "ne" | "not_equals" | "!=" => Op::Neq,
        "in" => Op::In,
        "not_in" | "nin" => Op::NotIn,
        "lt" | "<" => Op::Lt,
        "lte" | "le" | "<=" => Op::Lte,
        "gt" | ">" => Op::Gt,
        "gte" | "ge" | ">=" => Op::Gte,
        "regex" | "matches" => Op::Regex,
        "contains" => Op::Contains,
        "exists" => Op::Exists,
        _ => return None,
    })
}

/// `minute`, `1m`, `hour`, `h`, `day`, `30s`, `second`, or a number of seconds.
fn parse_window(v: &Value) -> Option<Window> {
    if let Some(n) = v.as_u64() {
        return (n > 0).then_some(Window::Seconds(n));
    }
    let s = v.as_str()?.trim().to_ascii_lowercase();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = if num.is_empty() { 1 } else { num.parse().ok()? };
    let unit_seconds = match unit.trim() {
        "" | "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    Some(match (n, unit_seconds) {
        (1, 60) => Window::Minute,
        (1, 3600) => Window::Hour,
        (1, 86_400) => Window::Day,
        _ => Window::Seconds(n.checked_mul(unit_seconds)?),
    })
}

/// The index in `...rules[N]`.
fn rule_index(path: &str) -> &str {
    path.rsplit('[').next().unwrap_or("").trim_end_matches(']')
}

/// A counter name from a tool name or rule label: spaces and punctuation become `_`.
fn counter_base(name: &str) -> String {
    if name == "*" {
        return "all_tools".into();
    }
    name.chars()
        .map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_in_all_spellings() {
        assert_eq!(parse_window(&Value::from("minute")), Some(Window::Minute));
        assert_eq!(parse_window(&Value::from("1h")), Some(Window::Hour));
        assert_eq!(parse_window(&Value::from("30s")), Some(Window::Seconds(30)));
        assert_eq!(parse_window(&Value::from("5m")), Some(Window::Seconds(300)));
        assert_eq!(parse_window(&Value::from(86400)), Some(Window::Seconds(86400)));
        assert_eq!(parse_window(&Value::from("fortnight")), None);
        assert_eq!(parse_window(&Value::from("0s")), None);
    }
}
