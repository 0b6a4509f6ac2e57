//! The [`Gate`] that enforces a real policy document: `policy::decide` for every call, and the proxy's
//! [`CounterStore`] for limits.
//!
//! `decide` is pure and reads counters from a snapshot; the proxy must not read-then-write counters in two
//! steps, or 32 concurrent callers could all see room for one more call. So the gate asks `decide` with an
//! empty snapshot (it still refuses a single charge larger than its maximum) and hands the charges it returns
//! to [`CounterStore::reserve`], which admits all of them or none atomically. Whatever `decide` refuses
//! (hidden, denied, conditions) never touches a counter.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::counters::{self, Charge, CounterStore, Reservation, ReserveError, Window};
use super::gate::{Call, CallOutcome, Gate, Refused, Verdict};

use crate::policy::{self, CompiledPolicy, Counters, Decision, ScopeKey};

/// A compiled policy plus the counters it charges.
pub struct PolicyGate {
    policy: CompiledPolicy,
    counters: Arc<dyn CounterStore>,
}

impl std::fmt::Debug for PolicyGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyGate").finish_non_exhaustive()
    }
}

impl PolicyGate {
    pub fn new(policy: CompiledPolicy, counters: Arc<dyn CounterStore>) -> PolicyGate {
        PolicyGate { policy, counters }
    }

    /// Load and compile a policy file (JSON or YAML); the error lists every diagnostic with its location.
    pub fn load(path: &std::path::Path, counters: Arc<dyn CounterStore>) -> Result<PolicyGate, String> {
        let policy = policy::load_file(path).map_err(|e| e.to_string())?;
        Ok(PolicyGate::new(policy, counters))
    }
}

/// The counter store's key: the counter and whose count it is. The window is the store's business.
fn store_charge(charge: &policy::Charge) -> Charge {
    let scope = match &charge.key.scope {
        ScopeKey::Global => "global".to_string(),
        ScopeKey::Grant(id) => format!("grant:{id}"),
        ScopeKey::Session(id) => format!("session:{id}"),
    };
    let window = match charge.window_seconds {
        60 => Window::Minute,
        3600 => Window::Hour,
        86_400 => Window::Day,
        n => Window::Seconds(n),
    };
    Charge {
        key: format!("{}|{scope}", charge.key.counter),
        window,
        max: charge.max,
        amount: charge.amount,
        refundable: charge.refundable,
    }
}

impl PolicyGate {
    /// Reserve all of a call's charges or none; a refusal names the limit (rule `limits`) or the state failure
    /// (rule `state`).
    fn reserve_at(&self, charges: &[Charge], now: u64) -> Result<Vec<Reservation>, Refused> {
        refused(self.counters.reserve(charges, now))
    }
}

/// A store's answer as the relay needs it: the reservations, or the refusal the client reads.
fn refused(result: Result<Vec<Reservation>, ReserveError>) -> Result<Vec<Reservation>, Refused> {
    match result {
        Ok(reserved) => Ok(reserved),
        // The store's failure mode was `closed`; its text already says so.
        Err(ReserveError::Unavailable(reason)) => Err(Refused { reason, rule: Some("state".into()) }),
        Err(ReserveError::Exceeded(exceeded)) => {
            let counter = exceeded.key.split_once('|').map_or(exceeded.key.as_str(), |(c, _)| c);
            let reason = format!(
                "limit `{counter}` reached: {} of {} per {} used",
                exceeded.used, exceeded.max, exceeded.window
            );
            Err(Refused { reason, rule: Some("limits".into()) })
        }
    }
}

impl Gate for PolicyGate {
    fn visible(&self, tool: &str) -> bool {
        self.policy.lists(tool)
    }

    fn check(&self, call: &Call) -> Verdict {
        let now = counters::now();
        let identity = call.identity.as_deref().unwrap_or("anonymous");
        let pcall = policy::Call {
            tool: &call.tool,
            arguments: &call.arguments,
            identity,
            session: &call.session,
            at: i64::try_from(now).unwrap_or(i64::MAX),
        };
        let decision = policy::decide(&self.policy, &pcall, &Counters::new());
        let rule = decision.rule().map(str::to_string);
        match decision {
            Decision::Deny { reason, .. } => Verdict::Deny { reason, rule },
            // Approval is asked before anything is counted: a refused approval must not use up a limit. The
            // charges travel with the held call and are reserved by `reserve` once a person said yes.
            Decision::NeedsApproval { reason, charges, .. } => {
                Verdict::Approve { reason, rule, charges: charges.iter().map(store_charge).collect() }
            }
            Decision::Allow { charges } => {
                let charges: Vec<Charge> = charges.iter().map(store_charge).collect();
                // Off the runtime (the stdio frontend's reader thread) waiting in place is the fastest path
                // and holds up nothing else; inside it, the call waits on a task of its own.
                if !charges.is_empty() && self.counters.may_block() && tokio::runtime::Handle::try_current().is_ok() {
                    return Verdict::Reserve { charges, rule };
                }
                match self.reserve_at(&charges, now) {
                    Ok(reserved) => Verdict::Allow { charges: reserved, rule },
                    Err(Refused { reason, rule }) => Verdict::Deny { reason, rule },
                }
            }
        }
    }

    fn reserve(&self, charges: &[Charge]) -> Result<Vec<Reservation>, Refused> {
        self.reserve_at(charges, counters::now())
    }

    fn reserve_async(&self, charges: Vec<Charge>) -> BoxFuture<'_, Result<Vec<Reservation>, Refused>> {
        Box::pin(async move { refused(self.counters.reserve_async(charges, counters::now()).await) })
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
    use serde_json::{Value, json};

    use super::*;
    use crate::proxy::counters::MemoryCounters;

    fn gate(text: &str) -> PolicyGate {
        let source = policy::Source::new(policy::Syntax::Json, text);
        let compiled = policy::load(&source).unwrap_or_else(|d| panic!("{d:?}"));
        PolicyGate::new(compiled, Arc::new(MemoryCounters::new()))
    }

    fn call(tool: &str, arguments: Value) -> Call {
        Call { tool: tool.into(), arguments, identity: Some("alice".into()), session: "s1".into() }
    }

    #[test]
    fn the_seed_policy_admits_exactly_its_limit() {
        let g = gate(
            r#"{"version": "1", "default": "deny",
                "tools": {"create_profile": {"limits": [{"counter": "create_profile_rate", "window": "minute", "max": 3, "scope": "grant"}]}}}"#,
        );
        let admitted =
            (0..10).filter(|_| matches!(g.check(&call("create_profile", json!({}))), Verdict::Allow { .. })).count();
        // Three unless the minute rolled over between calls, which can only add a fresh window's three.
        assert!(admitted == 3 || admitted == 6, "admitted {admitted}");
        assert!(matches!(g.check(&call("other_tool", json!({}))), Verdict::Deny { .. }));
        assert!(g.visible("create_profile") && !g.visible("other_tool"));
    }

    #[test]
    fn conditions_approvals_and_hidden_tools() {
        let g = gate(
            r#"{"version": "1", "default": "allow", "hide": ["drop_database"],
                "tools": {"delete_profile": {"action": "approve", "reason": "a person decides"},
                          "create_refund": {"deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 5000}],
                                                         "on_deny": "Refunds above 50.00 need a person"}]}}}"#,
        );
        assert!(!g.visible("drop_database"));
        assert!(matches!(g.check(&call("drop_database", json!({}))), Verdict::Deny { .. }));
        match g.check(&call("create_refund", json!({"amount": 6000}))) {
            Verdict::Deny { reason, .. } => assert_eq!(reason, "Refunds above 50.00 need a person"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(g.check(&call("create_refund", json!({"amount": 10}))), Verdict::Allow { .. }));
        assert!(matches!(g.check(&call("delete_profile", json!({}))), Verdict::Approve { .. }));
        assert!(matches!(g.check(&call("Delete_Profile", json!({}))), Verdict::Allow { .. }));
    }

    #[test]
    fn spend_is_refunded_when_the_call_fails_and_counts_are_not() {
        let g = gate(
            r#"{"version": "1", "default": "allow",
                "tools": {"pay": {"limits": [{"counter": "spend", "window": "day", "max": 100, "scope": "global", "increment_from": "args.amount"},
                                              {"counter": "calls", "window": "day", "max": 3, "scope": "global"}]}}}"#,
        );
        let Verdict::Allow { charges, .. } = g.check(&call("pay", json!({"amount": 80}))) else { panic!() };
        g.settle(charges, CallOutcome::Failure);
        let Verdict::Allow { charges, .. } = g.check(&call("pay", json!({"amount": 80}))) else { panic!() };
        g.settle(charges, CallOutcome::Success);
        assert!(matches!(g.check(&call("pay", json!({"amount": 30}))), Verdict::Deny { .. }), "spend cap");
        let Verdict::Allow { charges, .. } = g.check(&call("pay", json!({"amount": 5}))) else { panic!() };
        g.settle(charges, CallOutcome::Success);
        // Three calls charged the count (the failed one too); the fourth is over it.
        assert!(matches!(g.check(&call("pay", json!({"amount": 1}))), Verdict::Deny { .. }), "call count");
    }
}
