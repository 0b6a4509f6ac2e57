//! The proxy's only dependency on policy: a [`Gate`] that says which tools a client may see and whether one
//! call may go through.
//!
//! The relay knows nothing about policy documents. It asks the gate twice per call (before forwarding:
//! [`Gate::check`]; after the upstream answered: [`Gate::settle`]) and once per listed tool
//! ([`Gate::visible`]). A call held for a person is counted only once a person said yes
//! ([`Gate::reserve`] with the charges its [`Verdict::Approve`] named), so a refused approval uses no limit. Keeping that interface this small lets the policy engine, the approval queue and a
//! shared counter store change without touching the relay, and lets tests drive the relay with a gate whose
//! behaviour they can read at a glance.

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::counters::{Charge, Reservation};

/// One `tools/call` as the gate sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The tool name exactly as the client sent it: no case or Unicode folding, so a rule for `delete_file`
    /// is not dodged by `Delete_File`, and a rule never catches a tool it does not name.
    pub tool: String,
    /// `params.arguments`, or `null` when the client sent none.
    pub arguments: Value,
    /// Who is calling: the identity behind the HTTP bearer token, `None` over stdio.
    pub identity: Option<String>,
    /// The MCP session this call belongs to (one per stdio proxy run, one per HTTP session).
    pub session: String,
}

/// What the gate decided for one call.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the call. `charges` are the counter reservations made for it; they are handed back through
    /// [`Gate::settle`] once the upstream answered, so spend can be rolled back when the call failed.
    Allow { charges: Vec<Reservation>, rule: Option<String> },
    /// Refuse: the client gets a tool result with `isError: true` saying `reason`.
    Deny { reason: String, rule: Option<String> },
    /// The policy allows the call, and its `charges` are to be reserved in a store in another process
    /// ([`super::counters::CounterStore::may_block`]): the relay reserves them with [`Gate::reserve_async`] on a
    /// task of the call's own and then forwards or refuses it, so the round trip holds up nothing else.
    Reserve { charges: Vec<Charge>, rule: Option<String> },
    /// A person must approve the call. `charges` are the limits it would use, not reserved yet: the relay
    /// hands them to [`Gate::reserve`] once a person approved.
    Approve { reason: String, rule: Option<String>, charges: Vec<Charge> },
}

/// Why an approved call's charges could not be reserved: the client gets `reason` as a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub reason: String,
    pub rule: Option<String>,
}

/// How a forwarded call ended, as far as counters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A result without `isError`.
    Success,
    /// A JSON-RPC error, a result with `isError: true`, a timeout, or the upstream going away.
    Failure,
}

/// The policy as the relay sees it. Implementations must be cheap (they run on every call) and must not block
/// for long: the relay calls them on its I/O tasks.
pub trait Gate: Send + Sync {
    /// Whether `tool` appears in `tools/list` results.
    fn visible(&self, tool: &str) -> bool;
    /// Decide one call before it is forwarded.
    fn check(&self, call: &Call) -> Verdict;
    /// Reserve the charges of a call a person approved, all or none, exactly as [`Gate::check`] does for an
    /// allowed call (a limit reached, or shared state unavailable under `--state-failure closed`, refuses it).
    fn reserve(&self, charges: &[Charge]) -> Result<Vec<Reservation>, Refused>;
    /// [`Gate::reserve`] without blocking, for [`Verdict::Reserve`]; the default runs it in place.
    fn reserve_async(&self, charges: Vec<Charge>) -> BoxFuture<'_, Result<Vec<Reservation>, Refused>> {
        Box::pin(std::future::ready(self.reserve(&charges)))
    }
    /// Report how an allowed call ended: commit or roll back its reservations.
    fn settle(&self, charges: Vec<Reservation>, outcome: CallOutcome);
}
