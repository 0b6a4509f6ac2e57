//! A stable fingerprint of a tool definition: sha256 over canonical JSON.
//!
//! Canonical means object keys sorted by their UTF-8 bytes, no insignificant whitespace, and numbers and
//! strings as serde_json writes them. The same definition always gets the same fingerprint, whatever order the
//! server sent its keys in, so history in the catalogue is keyed by what a tool *is*.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Tool;

/// Hex sha256 of the tool's canonical JSON.
pub fn fingerprint(tool: &Tool) -> String {
    let value = serde_json::to_value(tool).unwrap_or(Value::Null);
    let digest = Sha256::digest(canonical_json(&value).as_bytes());
    hex::encode(digest)
}

/// The canonical JSON text of a value (sorted keys, compact).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_fingerprint() {
        let a: Tool = serde_json::from_str(r#"{"name":"x","description":"d","inputSchema":{"b":1,"a":2}}"#).unwrap();
        let b: Tool = serde_json::from_str(r#"{"inputSchema":{"a":2,"b":1},"description":"d","name":"x"}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn any_change_changes_the_fingerprint() {
        let a = Tool::named("x").with_description("reads a file");
        let b = Tool::named("x").with_description("reads a file.");
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let mut c = a.clone();
        c.extra.insert("cacheScope".into(), json!("user"));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        assert_eq!(
            canonical_json(&json!({"b": [{"d": 1, "c": 2}], "a": "\u{1}"})),
            r#"{"a":"\u0001","b":[{"c":2,"d":1}]}"#
        );
    }
}
