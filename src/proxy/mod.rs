//! The enforcement proxy: sits between one MCP client and one upstream server, relays everything, filters
//! `tools/list`, and decides every `tools/call` before it is forwarded.
//!
//! Layers, from pure to effectful: [`gate`] (the policy as the proxy sees it), [`counters`] and [`limits`]
//! (windowed rate and spend limits), [`relay`] (one session's routing and rewriting, no I/O), [`audit`] (one
//! JSON line per decision), then the transports.

pub mod audit;
pub mod counters;
pub mod file_gate;
pub mod gate;
pub mod limits;
pub mod relay;
