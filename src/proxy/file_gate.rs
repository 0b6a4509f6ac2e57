//! An interim [`Gate`] reading the simple part of the policy format (`default`, `hide`, per-tool `action`,
//! `reason` and `limits`, and `*` limits), so the proxy can run and be tested before the policy engine is
//! wired in.
//!
//! It fails closed: a policy using anything it does not understand (`deny_if`, unknown keys) is rejected at
//! load time rather than half-enforced. When `policy::decide` is plugged in through its own gate adapter, this
//! type remains useful as the smallest readable gate for tests.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::counters::{CounterStore, Reservation, Window};
use super::gate::{Call, CallOutcome, Gate, Verdict};
use super::limits::{self, Limit, Scope};

#[derive(Debug, thiserror::Error)]
pub enum FileGateError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    hide: Vec<String>,
    #[serde(default)]
    tools: BTreeMap<String, ToolDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolDoc {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    limits: Vec<LimitDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitDoc {
    counter: String,
    window: Value,
    max: f64,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    increment_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Deny,
    Approve,
}

#[derive(Debug)]
struct ToolRule {
    action: Action,
    reason: Option<String>,
    limits: Vec<Limit>,
}

/// The interim gate: a parsed policy and the counters its limits use.
pub struct FileGate {
    default_allow: bool,
    hidden: HashSet<String>,
    tools: BTreeMap<String, ToolRule>,
    every: Vec<Limit>,
    counters: Arc<dyn CounterStore>,
}

impl std::fmt::Debug for FileGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileGate").field("hidden", &self.hidden).field("tools", &self.tools).finish_non_exhaustive()
    }
}

impl FileGate {
    /// Load a policy file.
    pub fn load(path: &Path, counters: Arc<dyn CounterStore>) -> Result<FileGate, FileGateError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| FileGateError::Read { path: shown.clone(), source })?;
        FileGate::parse(&text, counters).map_err(|message| FileGateError::Invalid { path: shown, message })
    }

    /// Parse a policy document; the error names the offending field.
    pub fn parse(text: &str, counters: Arc<dyn CounterStore>) -> Result<FileGate, String> {
        let doc: Doc = serde_json::from_str(text).map_err(|e| {
            format!("{e} (this proxy build understands default, hide, and per-tool action, reason and limits)")
        })?;
        if let Some(v) = &doc.version
            && v != "1"
        {
            return Err(format!("version: unsupported version {v:?}; expected \"1\""));
        }
        let default_allow = match doc.default.as_deref() {
            None | Some("deny") => false,
            Some("allow") => true,
            Some(other) => return Err(format!("default: unknown value {other:?}; expected allow or deny")),
        };
        let mut tools = BTreeMap::new();
        let mut every = Vec::new();
        for (name, t) in doc.tools {
            let action = match t.action.as_deref() {
                None | Some("allow") => Action::Allow,
                Some("deny") => Action::Deny,
                Some("approve") => Action::Approve,
                Some(other) => {
                    return Err(format!(
                        "tools.{name}.action: unknown value {other:?}; expected allow, deny or approve"
                    ));
                }
            };
            let mut parsed = Vec::new();
            for (i, l) in t.limits.into_iter().enumerate() {
                parsed.push(parse_limit(l).map_err(|m| format!("tools.{name}.limits[{i}].{m}"))?);
            }
            if name == "*" {
                every = parsed;
            } else {
                tools.insert(name, ToolRule { action, reason: t.reason, limits: parsed });
            }
        }
        Ok(FileGate { default_allow, hidden: doc.hide.into_iter().collect(), tools, every, counters })
    }
}

fn parse_limit(l: LimitDoc) -> Result<Limit, String> {
    let window = match &l.window {
        Value::String(s) if s == "minute" => Window::Minute,
        Value::String(s) if s == "hour" => Window::Hour,
        Value::String(s) if s == "day" => Window::Day,
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Window::Seconds(n.as_u64().unwrap_or(1)),
        other => return Err(format!("window: {other} is not minute, hour, day or a positive number of seconds")),
    };
    let scope = match l.scope.as_deref() {
        None | Some("global") => Scope::Global,
        Some("grant") => Scope::Grant,
        Some("session") => Scope::Session,
        Some(other) => return Err(format!("scope: unknown value {other:?}; expected global, grant or session")),
    };
    if l.max.is_nan() || l.max < 0.0 {
        return Err("max: must be a non-negative number".into());
    }
    Ok(Limit { counter: l.counter, window, max: l.max, scope, increment_from: l.increment_from })
}

impl Gate for FileGate {
    fn visible(&self, tool: &str) -> bool {
        if self.hidden.contains(tool) {
            return false;
        }
        match self.tools.get(tool) {
            Some(rule) => rule.action != Action::Deny,
            None => self.default_allow,
        }
    }

    fn check(&self, call: &Call) -> Verdict {
        if self.hidden.contains(&call.tool) {
            return Verdict::Deny {
                reason: format!("tool `{}` is hidden by policy", call.tool),
                rule: Some("hide".into()),
            };
        }
        let rule = self.tools.get(&call.tool);
        let (own_limits, rule_name) = match rule {
            None if !self.default_allow => {
                return Verdict::Deny {
                    reason: format!("tool `{}` is not allowed by policy (default: deny)", call.tool),
                    rule: Some("default".into()),
                };
            }
            None => (&[][..], None),
            Some(r) => {
                let name = Some(format!("tools.{}", call.tool));
                let reason = || r.reason.clone().unwrap_or_else(|| format!("tool `{}` is denied by policy", call.tool));
                match r.action {
                    Action::Deny => return Verdict::Deny { reason: reason(), rule: name },
                    Action::Approve => return Verdict::Approve { reason: reason(), rule: name },
                    Action::Allow => (&r.limits[..], name),
                }
            }
        };
        let all: Vec<Limit> = own_limits.iter().chain(&self.every).cloned().collect();
        match limits::charge(self.counters.as_ref(), &all, call, limits::now()) {
            Ok(charges) => Verdict::Allow { charges, rule: rule_name },
            Err(e) => Verdict::Deny { reason: e.to_string(), rule: Some("limits".into()) },
        }
    }

    fn settle(&self, charges: Vec<Reservation>, outcome: CallOutcome) {
        match outcome {
            CallOutcome::Success => self.counters.commit(&charges),
            CallOutcome::Failure => self.counters.rollback(&charges),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::counters::MemoryCounters;

    fn gate(text: &str) -> FileGate {
        FileGate::parse(text, Arc::new(MemoryCounters::new())).unwrap()
    }

    fn call(tool: &str) -> Call {
        Call { tool: tool.into(), arguments: Value::Null, identity: None, session: "s".into() }
    }

    #[test]
    fn names_match_exactly() {
        let g = gate(r#"{"default":"allow","tools":{"delete_file":{"action":"deny"}}}"#);
        assert!(matches!(g.check(&call("delete_file")), Verdict::Deny { .. }));
        assert!(matches!(g.check(&call("Delete_File")), Verdict::Allow { .. }));
        let g = gate(r#"{"default":"deny","tools":{"read":{}}}"#);
        assert!(matches!(g.check(&call("READ")), Verdict::Deny { .. }));
        assert!(!g.visible("read\u{200b}"));
    }

    #[test]
    fn unsupported_features_are_rejected_not_ignored() {
        let err = FileGate::parse(r#"{"tools":{"x":{"deny_if":[]}}}"#, Arc::new(MemoryCounters::new())).unwrap_err();
        assert!(err.contains("deny_if"), "{err}");
        let err = FileGate::parse(
            r#"{"tools":{"x":{"limits":[{"counter":"c","window":"week","max":1}]}}}"#,
            Arc::new(MemoryCounters::new()),
        )
        .unwrap_err();
        assert!(err.starts_with("tools.x.limits[0].window"), "{err}");
    }

    #[test]
    fn hidden_and_denied_tools_are_invisible() {
        let g = gate(r#"{"default":"allow","hide":["h"],"tools":{"d":{"action":"deny","reason":"no"}}}"#);
        assert!(!g.visible("h") && !g.visible("d") && g.visible("other"));
        match g.check(&call("d")) {
            Verdict::Deny { reason, rule } => assert_eq!((reason.as_str(), rule.as_deref()), ("no", Some("tools.d"))),
            other => panic!("{other:?}"),
        }
    }
}
