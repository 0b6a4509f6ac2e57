//! Reading a policy file (JSON or YAML) into a [`Policy`], with every problem located.
//!
//! serde stops at the first error, which for a hand-written file is usually the one the user is looking at:
//! `serde_path_to_error` gives its JSON path and the parser its line and column. What serde cannot see
//! (semantics) is checked afterwards in `check.rs`; [`Source`] keeps the text so those diagnostics get a
//! line and column too.

use std::fmt;

use serde::Serialize;

use super::document::Policy;
use super::locate::Locations;

/// The largest policy file we read; policies are hand-sized, and this bounds a hostile one.
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    Json,
    Yaml,
}

impl Syntax {
    /// From the file name (`.yaml`/`.yml` → YAML, `.json` → JSON), else from the first character.
    pub fn guess(name: &str, text: &str) -> Syntax {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Syntax::Yaml
        } else if lower.ends_with(".json") || text.trim_start().starts_with('{') {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// One problem in a policy, located by JSON path and (when known) line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub level: Level,
    /// `tools.create_refund.deny_if[0].conditions[0].op`; empty for the document as a whole.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { level: Level::Error, path: path.into(), line: None, column: None, message: message.into() }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { level: Level::Warning, ..Diagnostic::error(path, message) }
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `file:line:column: path: message` (the parts that are known), with `warning: ` before warnings.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::from(file);
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        out.push_str(": ");
        if self.level == Level::Warning {
            out.push_str("warning: ");
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("policy"))
    }
}

/// The text of a policy and how to read it.
#[derive(Debug, Clone)]
pub struct Source {
    pub syntax: Syntax,
    pub text: String,
}

impl Source {
    pub fn new(syntax: Syntax, text: impl Into<String>) -> Source {
        Source { syntax, text: text.into() }
    }

    /// Parse into the document types; the error is the first problem serde met, located.
    pub fn parse(&self) -> Result<Policy, Diagnostic> {
        if self.text.len() > MAX_POLICY_BYTES {
            return Err(Diagnostic::error(
                "",
                format!("the file is {} bytes; policies are limited to {MAX_POLICY_BYTES}", self.text.len()),
            ));
        }
        match self.syntax {
            Syntax::Json => parse_json(&self.text),
            Syntax::Yaml => parse_yaml(&self.text),
        }
    }

    /// Keys written twice in one object: serde keeps the last silently, so a pasted second entry for a tool
    /// would quietly replace the first. An error, at the second one.
    pub fn duplicate_keys(&self, parsed: &Policy) -> Vec<Diagnostic> {
        let locations = match self.syntax {
            Syntax::Json => Locations::of_json(&self.text),
            Syntax::Yaml => Locations::of_yaml(&self.text),
        };
        // The YAML reader is a heuristic: only keys that really are in the parsed document count.
        let document = serde_json::to_value(parsed).unwrap_or_default();
        locations
            .duplicates
            .into_iter()
            .filter(|(path, _, _)| value_at(&document, path).is_some())
            .map(|(path, (line, column), (first_line, _))| {
                let key = path.rsplit('.').next().unwrap_or(&path).to_string();
                Diagnostic {
                    line: Some(line),
                    column: Some(column),
                    ..Diagnostic::error(
                        path,
                        format!("{key:?} is written twice (first at line {first_line}); only one of them would count"),
                    )
                }
            })
            .collect()
    }

    /// Give diagnostics that only have a path a line and column from this text.
    pub fn locate(&self, diagnostics: &mut [Diagnostic]) {
        let locations = match self.syntax {
            Syntax::Json => Locations::of_json(&self.text),
            Syntax::Yaml => Locations::of_yaml(&self.text),
        };
        for d in diagnostics.iter_mut().filter(|d| d.line.is_none()) {
            if let Some((line, column)) = locations.find(&d.path) {
                d.line = Some(line);
                d.column = Some(column);
            }
        }
    }
}

/// The value at a diagnostic path (`tools.a.limits[0].max`) in a JSON value.
fn value_at<'a>(mut v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            v = v.get(key)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

fn parse_json(text: &str) -> Result<Policy, Diagnostic> {
    let mut de = serde_json::Deserializer::from_str(text);
    let policy: Policy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = path_string(e.path());
        let inner = e.into_inner();
        let (line, column) = (inner.line(), inner.column());
        let message = tidy_message(&strip_position(&inner.to_string()), &path);
        Diagnostic {
            line: (line > 0).then_some(line),
            column: (line > 0).then_some(column),
            ..Diagnostic::error(path, message)
        }
    })?;
    de.end().map_err(|e| Diagnostic {
        line: Some(e.line()),
        column: Some(e.column()),
        ..Diagnostic::error("", strip_position(&e.to_string()))
    })?;
    Ok(policy)
}

fn parse_yaml(text: &str) -> Result<Policy, Diagnostic> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = path_string(e.path());
        let inner = e.into_inner();
        let location = inner.location();
        let message = tidy_message(&strip_position(&inner.to_string()), &path);
        Diagnostic {
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            ..Diagnostic::error(path, message)
        }
    })
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

/// Parsers append " at line L column C"; we print positions ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Bring serde's wording into our style: `unknown field "x"; expected one of a, b`, without the YAML parser's
/// own copy of the path.
fn tidy_message(message: &str, path: &str) -> String {
    let mut m = message;
    // serde_yaml_ng prefixes its own idea of the path (which may stop one segment short of ours).
    if let Some((prefix, rest)) = m.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(' ')
        && path.starts_with(prefix)
    {
        m = rest;
    }
    if let Some(rest) = m.strip_prefix("unknown field `") {
        let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = tail.trim_start_matches(", ").trim_start_matches("expected ");
        let expected = expected.replace('`', "");
        return if expected.is_empty() || expected.starts_with("there are no fields") {
            format!("unknown field {name:?}")
        } else {
            format!("unknown field {name:?}; expected {expected}")
        };
    }
    if let Some(rest) = m.strip_prefix("missing field `") {
        return format!("missing field {:?}", rest.trim_end_matches('`'));
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_operator_is_located_with_what_was_expected() {
        let text = r#"{"version": "1", "tools": {"create_refund": {"deny_if": [
  {"conditions": [{"path": "args.amount", "op": "greater", "value": 5000}]}]}}}"#;
        let d = Source::new(Syntax::Json, text).parse().unwrap_err();
        assert_eq!(d.path, "tools.create_refund.deny_if[0].conditions[0].op");
        assert_eq!(
            d.message,
            "unknown operator \"greater\"; expected one of eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists"
        );
        assert_eq!(d.line, Some(2));
        assert_eq!(d.render("policy.json"), format!("policy.json:2:{}: {}: {}", d.column.unwrap(), d.path, d.message));
    }

    #[test]
    fn yaml_errors_are_located_the_same_way() {
        let text = "version: \"1\"\ntools:\n  a:\n    limits:\n      - counter: c\n        window: fortnight\n        max: 3\n";
        let d = Source::new(Syntax::Yaml, text).parse().unwrap_err();
        assert_eq!(d.path, "tools.a.limits[0].window");
        assert!(d.message.starts_with("unknown window \"fortnight\"; expected one of minute"), "{}", d.message);
        assert_eq!(d.line, Some(6));
    }

    #[test]
    fn unknown_fields_say_what_is_allowed() {
        let d = Source::new(Syntax::Json, r#"{"version":"1","tools":{"a":{"actoin":"deny"}}}"#).parse().unwrap_err();
        assert_eq!(d.path, "tools.a.actoin");
        assert_eq!(d.message, "unknown field \"actoin\"; expected one of action, limits, deny_if, reason");
        let d = Source::new(Syntax::Json, r#"{"tools":{}}"#).parse().unwrap_err();
        assert_eq!(d.message, "missing field \"version\"");
    }

    #[test]
    fn yaml_unknown_fields_and_numeric_versions() {
        let d = Source::new(Syntax::Yaml, "version: 1\ntools:\n  a:\n    actoin: deny\n").parse().unwrap_err();
        assert_eq!(d.path, "tools.a.actoin");
        assert_eq!(d.message, "unknown field \"actoin\"; expected one of action, limits, deny_if, reason");
        assert_eq!(d.line, Some(4));
        let p = Source::new(Syntax::Yaml, "version: 1\n").parse().unwrap();
        assert_eq!(p.version, "1");
    }

    // What the fuzz target does, on stable and in every test run: no input makes parsing, compiling,
    // locating or importing panic.
    proptest::proptest! {
        #[test]
        fn no_text_makes_the_parsers_panic(text in "(\\PC|[{}\\[\\]:,\"\\n -]){0,200}") {
            for syntax in [Syntax::Json, Syntax::Yaml] {
                let source = Source::new(syntax, text.clone());
                let _ = crate::policy::load(&source);
                let mut d = vec![Diagnostic::error("tools.a.limits[0].max", "x")];
                source.locate(&mut d);
            }
            let _ = crate::policy::import_yaml(&text);
        }

        #[test]
        fn policy_shaped_text_round_trips(max in 1u32..1000, window in 1u64..100_000, name in "[a-z_*]{1,12}") {
            let text = format!(
                "{{\"version\":\"1\",\"tools\":{{\"{name}\":{{\"limits\":[{{\"counter\":\"c\",\"window\":{window},\"max\":{max}}}]}}}}}}"
            );
            let p = crate::policy::load(&Source::new(Syntax::Json, text)).unwrap();
            let again = serde_json::to_string(p.document()).unwrap();
            let q = crate::policy::load(&Source::new(Syntax::Json, again)).unwrap();
            proptest::prop_assert_eq!(p.document(), q.document());
        }
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let d = Source::new(Syntax::Json, "{\"version\":\"1\"} x").parse().unwrap_err();
        assert_eq!(d.line, Some(1));
    }
}
