//! A bounded walk over a tool's input schema, collecting what the rules look at: property names, enum values,
//! property descriptions.
//!
//! Schemas are written by strangers: they may be deeply nested, huge, or have `$ref` cycles. The walk follows
//! local `$ref`s (`#/$defs/x`, `#/definitions/x`, any JSON pointer into the same document) and stops at fixed
//! bounds on depth, visited nodes, reference hops and collected text, so its cost does not depend on how
//! hostile the schema is.

use serde_json::Value;

use super::words::{joined_words, truncate};

/// Deepest nesting of schema objects we descend into.
pub(crate) const MAX_DEPTH: usize = 12;
/// Most schema nodes visited per tool.
pub(crate) const MAX_NODES: usize = 400;
/// Most `$ref` hops along one path.
pub(crate) const MAX_REF_HOPS: usize = 8;
/// Most properties collected per tool.
pub(crate) const MAX_PROPERTIES: usize = 128;
/// Most enum values kept per property.
pub(crate) const MAX_ENUM: usize = 48;
/// Longest property description kept (bytes).
pub(crate) const MAX_PROPERTY_DESCRIPTION: usize = 600;

/// One property found in the schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Property {
    /// Where it is, for evidence: `schema.properties.options.properties.mode`.
    pub(crate) path: String,
    /// Its name as words joined by spaces (`dryRun` → `dry run`).
    pub(crate) words: String,
    /// `enum` and `const` strings, following `$ref`s and `anyOf`/`oneOf` branches.
    pub(crate) enum_values: Vec<String>,
    pub(crate) description: Option<String>,
}

/// Everything collected from one schema.
#[derive(Debug, Default)]
pub(crate) struct SchemaFacts {
    pub(crate) properties: Vec<Property>,
}

/// The schema keywords the walk descends through.
const KEYWORDS: &[&str] = &[
    "$ref",
    "properties",
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "allOf",
    "anyOf",
    "oneOf",
    "prefixItems",
];

struct Walk<'a> {
    root: &'a Value,
    nodes: usize,
    facts: SchemaFacts,
}

/// Walk `schema` within the bounds above.
pub(crate) fn collect(schema: &Value) -> SchemaFacts {
    let mut walk = Walk { root: schema, nodes: 0, facts: SchemaFacts::default() };
    walk.node(schema, "schema", 0, 0);
    walk.facts
}

impl<'a> Walk<'a> {
    fn full(&self) -> bool {
        self.nodes >= MAX_NODES || self.facts.properties.len() >= MAX_PROPERTIES
    }

    fn node(&mut self, node: &'a Value, path: &str, depth: usize, hops: usize) {
        if depth > MAX_DEPTH || self.full() {
            return;
        }
        self.nodes += 1;
        let Value::Object(map) = node else { return };
        // One pass over a small object's keys is cheaper than a dozen lookups; a huge object (hostile or a
        // schema with thousands of unrelated keys) is probed by key instead, so a visit never costs O(keys).
        if map.len() <= 32 {
            for (key, value) in map {
                self.keyword(key, value, path, depth, hops);
            }
        } else {
            for key in KEYWORDS {
                if let Some(value) = map.get(*key) {
                    self.keyword(key, value, path, depth, hops);
                }
            }
        }
    }

    fn keyword(&mut self, key: &str, value: &'a Value, path: &str, depth: usize, hops: usize) {
        match (key, value) {
            ("$ref", Value::String(reference)) if hops < MAX_REF_HOPS => {
                if let Some(target) = self.resolve(reference) {
                    self.node(target, path, depth + 1, hops + 1);
                }
            }
            ("properties", Value::Object(props)) => {
                for (name, sub) in props {
                    if self.full() {
                        return;
                    }
                    let sub_path = format!("{}.properties.{}", path, truncate(name, 64));
                    self.property(name, sub, &sub_path, hops);
                    self.node(sub, &sub_path, depth + 1, hops);
                }
            }
            ("items" | "additionalProperties" | "not" | "if" | "then" | "else", Value::Object(_)) => {
                self.node(value, path, depth + 1, hops);
            }
            ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(subs)) => {
                for sub in subs {
                    self.node(sub, path, depth + 1, hops);
                }
            }
            _ => {}
        }
    }

    /// Record a property: its name, its enum or const values (following a `$ref` for them), its description.
    fn property(&mut self, name: &str, schema: &'a Value, path: &str, hops: usize) {
        let mut enum_values = Vec::new();
        let mut description = None;
        let mut current = schema;
        let mut hops = hops;
        loop {
            self.nodes += 1;
            let Value::Object(map) = current else { break };
            let mut next = None;
            // One pass over the keywords that matter here (a property schema is small; a huge one is cut).
            for (key, value) in map.iter().take(64) {
                match (key.as_str(), value) {
                    ("enum", Value::Array(values)) => push_strings(values, &mut enum_values),
                    ("const", value) => push_strings(std::slice::from_ref(value), &mut enum_values),
                    ("anyOf" | "oneOf", Value::Array(branches)) => {
                        for b in branches.iter().take(MAX_ENUM) {
                            if let Some(Value::Array(values)) = b.get("enum") {
                                push_strings(values, &mut enum_values);
                            }
                            if let Some(c) = b.get("const") {
                                push_strings(std::slice::from_ref(c), &mut enum_values);
                            }
                        }
                    }
                    ("items", items) => {
                        if let Some(Value::Array(values)) = items.get("enum") {
                            push_strings(values, &mut enum_values);
                        }
                    }
                    ("description", Value::String(d)) if description.is_none() => {
                        description = Some(truncate(d, MAX_PROPERTY_DESCRIPTION).to_ascii_lowercase());
                    }
                    ("$ref", Value::String(r)) => next = self.resolve(r),
                    _ => {}
                }
            }
            match next {
                Some(target) if hops < MAX_REF_HOPS && !self.full() => {
                    current = target;
                    hops += 1;
                }
                _ => break,
            }
        }
        self.facts.properties.push(Property {
            path: path.to_string(),
            words: joined_words(name),
            enum_values,
            description,
        });
    }

    /// A local JSON pointer (`#/$defs/Mode`); remote references are never fetched.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }
}

/// Keep the strings of `values`, up to [`MAX_ENUM`] in all, each cut to 64 bytes.
fn push_strings(values: &[Value], out: &mut Vec<String>) {
    for v in values {
        if out.len() >= MAX_ENUM {
            return;
        }
        if let Some(s) = v.as_str() {
            out.push(truncate(s, 64).to_string());
        }
    }
}
