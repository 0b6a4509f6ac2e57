//! Reading client messages so that no server can read them differently than the proxy did.
//!
//! The proxy decides on what it parsed; the server acts on what *it* parses. Every place where two JSON-RPC
//! readers may disagree is a way past the policy: `{"name":"echo","name":"nuke"}` is `nuke` to serde_json (last
//! key wins) and `echo` to a parser that keeps the first; `TOOLS/CALL` is no method to the proxy and `tools/call`
//! to a server that matches methods loosely; `DELETE_CUSTOMER` or `delete_customer\u0000` are unknown tools to
//! the policy and `delete_customer` to a server that folds case or trims control characters. This module names
//! those ambiguities so the relay can refuse them instead of guessing: a message with a duplicate key anywhere
//! ([`parse`]), a method that is a known MCP method only after folding case or dropping invisible characters
//! ([`near_method`]), and a tool name with control or invisible characters ([`unclear_name`]). The last class,
//! a name that is no tool of the server's at all, is checked by the relay against what the server listed.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::text::{clean, is_invisible};

/// Why a client message could not be read unambiguously.
#[derive(Debug)]
pub enum Unreadable {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON in which some object has the same key twice; the text says which key and where.
    Duplicate(String),
}

/// Parse a client message, refusing duplicate keys at any depth (`serde_json` alone keeps the last one).
pub fn parse(raw: &[u8]) -> Result<Value, Unreadable> {
    match serde_json::from_slice::<Strict>(raw) {
        Ok(Strict(value)) => Ok(value),
        Err(e) if e.classify() == serde_json::error::Category::Data && e.to_string().starts_with(DUPLICATE) => {
            Err(Unreadable::Duplicate(e.to_string()))
        }
        Err(e) => Err(Unreadable::Syntax(e)),
    }
}

const DUPLICATE: &str = "duplicate key";

/// A `serde_json::Value` that fails to deserialize when an object repeats a key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE} `{}`", clean(&key, 80))));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The methods a client sends a server (requests and notifications), as the MCP specification spells them.
const CLIENT_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// The MCP method that `method` becomes once case is folded and everything but ASCII letters, digits, `/` and
/// `_` is dropped (whitespace, control and invisible characters, punctuation), when that is not `method` itself:
/// `TOOLS/CALL`, `tools/call\u200b`, ` tools/call`, `#tools/call` (found by fuzzing).
pub fn near_method(method: &str) -> Option<&'static str> {
    if CLIENT_METHODS.contains(&method) {
        return None;
    }
    let folded: String = method
        .chars()
        .filter(|&c| c.is_ascii_alphanumeric() || c == '/' || c == '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CLIENT_METHODS.iter().copied().find(|known| known.to_lowercase() == folded)
}

/// Why a tool name cannot be matched exactly by every server, if it cannot: control characters (NUL, newlines,
/// escapes) and invisible ones (zero-width, bidi, tags) are trimmed or ignored by some readers.
pub fn unclear_name(name: &str) -> Option<&'static str> {
    if name.chars().any(char::is_control) {
        Some("the tool name contains control characters")
    } else if name.chars().any(is_invisible) {
        Some("the tool name contains invisible characters")
    } else if name.trim() != name {
        Some("the tool name starts or ends with whitespace")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_named() {
        for raw in [
            r#"{"id":1,"id":2}"#,
            r#"{"params":{"name":"a","name":"b"}}"#,
            r#"[{"ok":1},{"params":{"arguments":{"x":{"deep":1,"deep":2}}}}]"#,
        ] {
            match parse(raw.as_bytes()) {
                Err(Unreadable::Duplicate(why)) => assert!(why.starts_with("duplicate key `"), "{why}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
        let Err(Unreadable::Duplicate(why)) = parse(br#"{"a":{"name":1,"name":2}}"#) else { panic!() };
        assert!(why.contains("`name`") && why.contains("column"), "{why}");
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine_and_values_are_kept_exactly() {
        let raw = r#"{"a":{"k":1},"b":{"k":[1.5,-2,18446744073709551615,"s",null,true,{}]},"k":"\u0000"}"#;
        let strict = parse(raw.as_bytes()).unwrap();
        assert_eq!(strict, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn malformed_json_is_a_syntax_error_not_a_duplicate() {
        assert!(matches!(parse(b"{\"a\":"), Err(Unreadable::Syntax(_))));
        assert!(matches!(parse(b"{\"a\":1}}"), Err(Unreadable::Syntax(_))));
        // A string that merely says "duplicate key" is data, not a finding.
        assert!(parse(br#"{"m":"duplicate key `x`"}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_bounded_by_the_parser() {
        let raw = "[".repeat(100_000);
        assert!(matches!(parse(raw.as_bytes()), Err(Unreadable::Syntax(_))));
    }

    #[test]
    fn methods_that_differ_from_mcp_methods_only_by_case_or_invisible_characters_are_named() {
        assert_eq!(near_method("TOOLS/CALL"), Some("tools/call"));
        assert_eq!(near_method("Tools/Call"), Some("tools/call"));
        assert_eq!(near_method("tools/call\u{200b}"), Some("tools/call"));
        assert_eq!(near_method(" tools/call\n"), Some("tools/call"));
        assert_eq!(near_method("#TOOLS/CALL"), Some("tools/call"), "found by the jsonrpc_client fuzz target");
        assert_eq!(near_method("tools/call."), Some("tools/call"));
        assert_eq!(near_method("logging/setlevel"), Some("logging/setLevel"));
        assert_eq!(near_method("tools/call"), None);
        assert_eq!(near_method("logging/setLevel"), None);
        assert_eq!(near_method("vendor/custom"), None);
        assert_eq!(near_method("tools/calls"), None);
    }

    #[test]
    fn tool_names_with_control_or_invisible_characters_are_unclear() {
        assert!(unclear_name("delete_customer\u{0}").is_some());
        assert!(unclear_name("delete\u{200b}_customer").is_some());
        assert!(unclear_name("delete_customer\n").is_some());
        assert!(unclear_name(" delete_customer").is_some());
        assert!(unclear_name("delete_customer").is_none());
        assert!(unclear_name("créer un client").is_none());
    }
}
