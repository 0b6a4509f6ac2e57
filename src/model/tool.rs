//! A tool exactly as a server sends it.
//!
//! Every key the server sent survives a round trip: the known ones are typed, the rest land in `extra`.
//! The fingerprint is computed over this round-tripped form, so an unknown key that changes is a change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "inputSchema", default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(rename = "outputSchema", default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Kept raw: servers put non-standard keys here too. Read it through [`Tool::annotations`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Every other key the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The MCP tool annotations, read leniently (a wrong type counts as absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub title: Option<String>,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl Tool {
    /// A tool with only a name, for tests and builders.
    pub fn named(name: impl Into<String>) -> Tool {
        Tool {
            name: name.into(),
            title: None,
            description: None,
            input_schema: None,
            output_schema: None,
            annotations: None,
            meta: None,
            extra: Map::new(),
        }
    }

    pub fn with_description(mut self, description: impl Into<String>) -> Tool {
        self.description = Some(description.into());
        self
    }

    pub fn with_input_schema(mut self, schema: Value) -> Tool {
        self.input_schema = Some(schema);
        self
    }

    pub fn with_annotations(mut self, annotations: Value) -> Tool {
        self.annotations = Some(annotations);
        self
    }

    pub fn annotations(&self) -> Annotations {
        let Some(Value::Object(map)) = &self.annotations else {
            return Annotations::default();
        };
        let flag = |key: &str| map.get(key).and_then(Value::as_bool);
        Annotations {
            title: map.get("title").and_then(Value::as_str).map(str::to_string),
            read_only: flag("readOnlyHint"),
            destructive: flag("destructiveHint"),
            idempotent: flag("idempotentHint"),
            open_world: flag("openWorldHint"),
        }
    }

    /// The title a person should see: `title`, else `annotations.title`.
    pub fn display_title(&self) -> Option<String> {
        self.title.clone().or_else(|| self.annotations().title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let raw = json!({"name": "t", "inputSchema": {"type": "object"}, "cacheScope": "global",
                         "_meta": {"x": 1}, "annotations": {"readOnlyHint": true, "vendorHint": 3}});
        let tool: Tool = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(tool.extra.get("cacheScope"), Some(&json!("global")));
        assert_eq!(serde_json::to_value(&tool).unwrap(), raw);
        assert_eq!(tool.annotations().read_only, Some(true));
        assert_eq!(tool.annotations().destructive, None);
    }

    #[test]
    fn annotations_of_the_wrong_type_are_absent() {
        let tool = Tool::named("t").with_annotations(json!({"readOnlyHint": "yes"}));
        assert_eq!(tool.annotations().read_only, None);
        let tool = Tool::named("t").with_annotations(json!([1, 2]));
        assert_eq!(tool.annotations(), Annotations::default());
    }
}
