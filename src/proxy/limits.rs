//! Turning a call's limits into counter charges: which counter key (scope), how much (1, or an argument's
//! value for spend caps), and the verdict when a counter is full.
//!
//! This is policy-format-agnostic on purpose: the gate adapter for `policy::decide` maps the policy's limit
//! type to [`Limit`] and calls [`charge`], so counting semantics live in one place whichever gate runs.

use serde_json::Value;

use super::counters::{Charge, CounterStore, Exceeded, Reservation, Window};
use super::gate::Call;

/// Who shares a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every caller of every replica.
    Global,
    /// One counter per caller identity (the HTTP bearer token's identity; `anonymous` without one).
    Grant,
    /// One counter per MCP session.
    Session,
}

/// One limit on one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub counter: String,
    pub window: Window,
    pub max: f64,
    pub scope: Scope,
    /// `args.amount`: count this argument's value instead of 1 (a spend cap). Refunded when the call fails.
    pub increment_from: Option<String>,
}

/// Why a call was not admitted by its limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Exceeded(#[from] Exceeded),
    #[error("limit `{counter}` counts `{path}`, but the call has no non-negative number there")]
    NoAmount { counter: String, path: String },
}

/// Reserve the charges of `limits` for `call` in `store`, all or none.
pub fn charge(
    store: &dyn CounterStore,
    limits: &[Limit],
    call: &Call,
    now: u64,
) -> Result<Vec<Reservation>, LimitError> {
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    let mut charges = Vec::with_capacity(limits.len());
    for limit in limits {
        let key = match limit.scope {
            Scope::Global => limit.counter.clone(),
            Scope::Grant => format!("{}|grant:{}", limit.counter, call.identity.as_deref().unwrap_or("anonymous")),
            Scope::Session => format!("{}|session:{}", limit.counter, call.session),
        };
        let (amount, refundable) = match &limit.increment_from {
            None => (1.0, false),
            Some(path) => {
                // A missing or negative amount would let a spend cap be dodged (or refilled): refuse instead.
                let amount = lookup(&call.arguments, path).and_then(Value::as_f64).filter(|a| *a >= 0.0);
                match amount {
                    Some(a) => (a, true),
                    None => return Err(LimitError::NoAmount { counter: limit.counter.clone(), path: path.clone() }),
                }
            }
        };
        charges.push(Charge { key, window: limit.window, max: limit.max, amount, refundable });
    }
    Ok(store.reserve(&charges, now)?)
}

/// Resolve `args.a.b` against a call's arguments.
pub fn lookup<'a>(arguments: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix("args.").or_else(|| path.strip_prefix("arguments."))?;
    rest.split('.').try_fold(arguments, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::counters::MemoryCounters;
    use serde_json::json;

    fn call(identity: Option<&str>, args: Value) -> Call {
        Call { tool: "t".into(), arguments: args, identity: identity.map(String::from), session: "s1".into() }
    }

    #[test]
    fn grant_scope_counts_each_identity_apart() {
        let store = MemoryCounters::new();
        let limits = [Limit {
            counter: "c".into(),
            window: Window::Minute,
            max: 1.0,
            scope: Scope::Grant,
            increment_from: None,
        }];
        charge(&store, &limits, &call(Some("alice"), Value::Null), 0).unwrap();
        charge(&store, &limits, &call(Some("bob"), Value::Null), 0).unwrap();
        assert!(charge(&store, &limits, &call(Some("alice"), Value::Null), 0).is_err());
    }

    #[test]
    fn spend_caps_count_the_argument_and_refuse_without_it() {
        let store = MemoryCounters::new();
        let limits = [Limit {
            counter: "spend".into(),
            window: Window::Day,
            max: 100.0,
            scope: Scope::Global,
            increment_from: Some("args.order.amount".into()),
        }];
        let r = charge(&store, &limits, &call(None, json!({"order": {"amount": 60}})), 0).unwrap();
        assert!(r[0].refundable);
        assert!(matches!(
            charge(&store, &limits, &call(None, json!({"order": {"amount": 50}})), 0),
            Err(LimitError::Exceeded(_))
        ));
        assert!(matches!(charge(&store, &limits, &call(None, json!({})), 0), Err(LimitError::NoAmount { .. })));
        assert!(matches!(
            charge(&store, &limits, &call(None, json!({"order": {"amount": -5}})), 0),
            Err(LimitError::NoAmount { .. })
        ));
    }
}
