//! Captured `tools/list` results: `{"tools": [...]}` (extra keys allowed) or a bare array of tools.
//!
//! One bad tool must not sink the file: each tool is parsed on its own, and a tool that does not parse is
//! reported with its index and its line and column in the file, while the others are kept.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Tool;

/// The parsed content of one capture.
#[derive(Debug, Clone, Default)]
pub struct ToolCapture {
    pub tools: Vec<Tool>,
    /// Tools that could not be parsed, with where they are.
    pub bad: Vec<BadTool>,
    /// The other keys of the result object (`nextCursor`, `_meta`, `ttlMs`, ...).
    pub extra: Map<String, Value>,
}

/// A tool entry that is not a valid tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTool {
    pub index: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for BadTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tools[{}] at line {}, column {}: {}", self.index, self.line, self.column, self.message)
    }
}

/// The file as a whole is not a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("expected {{\"tools\": [...]}} or a JSON array of tools, found {found}")]
    Shape { found: &'static str },
}

impl ToolCapture {
    /// Parse the text of a capture.
    pub fn parse(text: &str) -> Result<ToolCapture, CaptureError> {
        // First a structural pass that keeps each tool as raw text, so errors inside one tool can be located.
        let top: Value = serde_json::from_str(text).map_err(|e| CaptureError::Json {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        let (raws, extra): (Vec<&RawValue>, Map<String, Value>) = match top {
            Value::Array(_) => (serde_json::from_str(text).map_err(json_error)?, Map::new()),
            Value::Object(mut map) => {
                if !matches!(map.get("tools"), Some(Value::Array(_))) {
                    return Err(CaptureError::Shape { found: "an object without a \"tools\" array" });
                }
                map.remove("tools");
                #[derive(Deserialize)]
                struct Wrapper<'a> {
                    #[serde(borrow)]
                    tools: Vec<&'a RawValue>,
                }
                let wrapper: Wrapper<'_> = serde_json::from_str(text).map_err(json_error)?;
                (wrapper.tools, map)
            }
            Value::Null => return Err(CaptureError::Shape { found: "null" }),
            Value::Bool(_) => return Err(CaptureError::Shape { found: "a boolean" }),
            Value::Number(_) => return Err(CaptureError::Shape { found: "a number" }),
            Value::String(_) => return Err(CaptureError::Shape { found: "a string" }),
        };
        let mut capture = ToolCapture { extra, ..ToolCapture::default() };
        for (index, raw) in raws.into_iter().enumerate() {
            match serde_json::from_str::<Tool>(raw.get()) {
                Ok(tool) => capture.tools.push(tool),
                Err(e) => {
                    let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                    let (line, column) = line_column(text, offset);
                    let message = strip_position(&e.to_string());
                    let message = if raw.get().trim_start().starts_with('{') {
                        message
                    } else {
                        "a tool must be a JSON object".to_string()
                    };
                    capture.bad.push(BadTool { index, line, column, message });
                }
            }
        }
        Ok(capture)
    }
}

fn json_error(e: serde_json::Error) -> CaptureError {
    CaptureError::Json { line: e.line(), column: e.column(), message: strip_position(&e.to_string()) }
}

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_object_and_bare_array() {
        let c = ToolCapture::parse(r#"{"tools":[{"name":"a"}],"nextCursor":"x"}"#).unwrap();
        assert_eq!(c.tools.len(), 1);
        assert_eq!(c.extra.get("nextCursor").and_then(Value::as_str), Some("x"));
        let c = ToolCapture::parse(r#"[{"name":"a"},{"name":"b"}]"#).unwrap();
        assert_eq!(c.tools.len(), 2);
    }

    #[test]
    fn a_tool_without_a_name_is_located_and_the_others_kept() {
        let text = "{\"tools\": [\n  {\"name\": \"ok\"},\n  {\"description\": \"no name\"},\n  {\"name\": \"ok2\"}\n]}";
        let c = ToolCapture::parse(text).unwrap();
        assert_eq!(c.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["ok", "ok2"]);
        assert_eq!(c.bad.len(), 1);
        assert_eq!((c.bad[0].index, c.bad[0].line, c.bad[0].column), (1, 3, 3));
        assert!(c.bad[0].message.contains("missing field `name`"), "{}", c.bad[0].message);
    }

    #[test]
    fn invalid_json_has_a_position() {
        let err = ToolCapture::parse("{\"tools\": [\n {\"name\": }]}").unwrap_err();
        match err {
            CaptureError::Json { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other}"),
        }
        assert!(matches!(ToolCapture::parse(r#"{"x":1}"#), Err(CaptureError::Shape { .. })));
        assert!(matches!(ToolCapture::parse("3"), Err(CaptureError::Shape { .. })));
    }
}
