//! Any bytes as a message from the client to the proxy's relay (after the tools were listed): routing must never
//! panic, and nothing the relay forwards may be a `tools/call` of the denied tool under any spelling a server
//! could read it as (duplicate keys, case, invisible characters are refused, never forwarded). Then the same
//! bytes as the upstream's message, and through the line framing.
#![no_main]

use std::io::Cursor;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use toolwarden::policy::{Source, Syntax, load};
use toolwarden::proxy::audit::Audit;
use toolwarden::proxy::counters::MemoryCounters;
use toolwarden::proxy::lines::{Frame, LineReader};
use toolwarden::proxy::policy_gate::PolicyGate;
use toolwarden::proxy::relay::Relay;

const POLICY: &str = r#"{"version":"1","default":"allow","tools":{"nuke":{"action":"deny","reason":"no"},
    "echo":{"limits":[{"counter":"e","window":"hour","max":1000}]}}}"#;

fn relay() -> Relay {
    let policy = load(&Source::new(Syntax::Json, POLICY)).expect("the fixed policy compiles");
    let gate = PolicyGate::new(policy, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "fuzz".into(), None);
    r.from_client(br#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#);
    r.from_upstream(br#"{"jsonrpc":"2.0","id":"l","result":{"tools":[{"name":"nuke"},{"name":"echo"},{"name":"Nuke"}]}}"#);
    r
}

/// Whether a forwarded message (or batch) calls `nuke` in any way a lenient server might read it.
fn calls_nuke(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    if !text.contains("nuke") {
        return false;
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else { return true };
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    items.iter().any(|m| {
        // A method a lenient server could take for tools/call: the same letters and slash, any case, any
        // punctuation or invisible characters around them.
        let method: String = m
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let name = m.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
        method == "tools/call" && name.to_lowercase().contains("nuke") && name != "Nuke"
    })
}

fuzz_target!(|data: &[u8]| {
    let r = relay();
    let out = r.from_client(data);
    if let Some(up) = &out.upstream {
        assert!(!calls_nuke(up), "forwarded a call to the denied tool: {}", String::from_utf8_lossy(up));
    }
    let _ = r.take_queued();
    let _ = r.from_upstream(data);
    let _ = r.upstream_closed("fuzz");
    let mut lines = LineReader::new(Cursor::new(data), 64);
    for _ in 0..1000 {
        match lines.next_frame() {
            Ok(Frame::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
});
