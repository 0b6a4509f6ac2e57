//! A bounded walk over a tool's input schema, collecting what the rules look at: property names, enum values,
//! property descriptions.
//!
//! Schemas are written by strangers: they may be deeply nested, huge, or have `$ref` cycles. The walk follows
//! local `$ref`s (`#/$defs/x`, `#/definitions/x`, any JSON pointer into the same document) and stops at fixed
//! bounds on depth, visited nodes, reference hops and collected text, so its cost does not depend on how
//! hostile the schema is.

use serde_json::Value;

use super::words::{split_name, truncate};

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
        if let Some(Value::String(reference)) = map.get("$ref")
            && hops < MAX_REF_HOPS
            && let Some(target) = self.resolve(reference)
        {
            self.node(target, path, depth + 1, hops + 1);
        }
        if let Some(Value::Object(props)) = map.get("properties") {
            for (name, sub) in props {
                if self.full() {
                    return;
                }
                let sub_path = format!("{}.properties.{}", path, truncate(name, 64));
                self.property(name, sub, &sub_path, hops);
                self.node(sub, &sub_path, depth + 1, hops);
            }
        }
        for key in ["items", "additionalProperties", "not", "if", "then", "else"] {
            if let Some(sub) = map.get(key)
                && sub.is_object()
            {
                self.node(sub, path, depth + 1, hops);
            }
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems", "items"] {
            if let Some(Value::Array(subs)) = map.get(key) {
                for sub in subs {
                    self.node(sub, path, depth + 1, hops);
                }
            }
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
            gather_enum(current, &mut enum_values);
            if description.is_none() {
                description = current
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| truncate(d, MAX_PROPERTY_DESCRIPTION).to_ascii_lowercase());
            }
            match current.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
                Some(next) if hops < MAX_REF_HOPS && !self.full() => {
                    current = next;
                    hops += 1;
                }
                _ => break,
            }
        }
        self.facts.properties.push(Property {
            path: path.to_string(),
            words: split_name(name).join(" "),
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

/// Enum and const strings of a schema node, including those of `anyOf`/`oneOf` branches and array items.
fn gather_enum(node: &Value, out: &mut Vec<String>) {
    let mut push = |v: &Value| {
        if let Some(s) = v.as_str()
            && out.len() < MAX_ENUM
        {
            out.push(truncate(s, 64).to_string());
        }
    };
    if let Some(Value::Array(values)) = node.get("enum") {
        values.iter().for_each(&mut push);
    }
    if let Some(c) = node.get("const") {
        push(c);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = node.get(key) {
            for b in branches.iter().take(MAX_ENUM) {
                if let Some(Value::Array(values)) = b.get("enum") {
                    values.iter().for_each(&mut push);
                }
                if let Some(c) = b.get("const") {
                    push(c);
                }
            }
        }
    }
    if let Some(items) = node.get("items")
        && let Some(Value::Array(values)) = items.get("enum")
    {
        values.iter().for_each(&mut push);
    }
}
