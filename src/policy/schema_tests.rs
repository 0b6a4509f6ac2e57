//! The committed schema matches the types, and every shipped example loads and validates against it.

use std::path::Path;

use serde_json::Value;

use super::*;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn committed_schema() -> Value {
    let text = std::fs::read_to_string(repo("schemas/policy.schema.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub(crate) fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&committed_schema()).expect("the committed schema is a valid JSON Schema")
}

#[test]
fn committed_schema_is_up_to_date() {
    let fresh = schema();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let text = serde_json::to_string_pretty(&fresh).unwrap() + "\n";
        std::fs::create_dir_all(repo("schemas")).unwrap();
        std::fs::write(repo("schemas/policy.schema.json"), text).unwrap();
        return;
    }
    assert!(
        committed_schema() == fresh,
        "schemas/policy.schema.json is stale; regenerate it with `UPDATE_SCHEMAS=1 cargo test --lib committed_schema` \
         (or `toolwarden policy schema > schemas/policy.schema.json`) and commit it"
    );
}

/// Every file in data/policies/ and every ```json policy block in doc/policy.md loads and validates.
#[test]
fn every_example_policy_loads_and_validates() {
    let validator = validator();
    let mut seen = 0;
    let mut examples: Vec<(String, Source)> = Vec::new();
    for entry in std::fs::read_dir(repo("data/policies")).unwrap() {
        let path = entry.unwrap().path();
        let source = read_source(&path).unwrap();
        examples.push((path.display().to_string(), source));
    }
    let doc = std::fs::read_to_string(repo("doc/policy.md")).unwrap();
    for file in ["README.md", "doc/policy.md"] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        for (i, block) in text.split("```json\n").skip(1).enumerate() {
            let body = block.split("```").next().unwrap();
            if body.contains("\"version\"") {
                examples.push((format!("{file} json block {i}"), Source::new(Syntax::Json, body)));
            }
        }
    }
    for (i, block) in doc.split("```yaml\n").skip(1).enumerate() {
        let body = block.split("```").next().unwrap();
        // YAML blocks that are our own format (not the import source format, which has `rules:`).
        if body.contains("version") && !body.contains("rules:") && !body.contains("rate_limit") {
            examples.push((format!("doc/policy.md yaml block {i}"), Source::new(Syntax::Yaml, body)));
        }
    }
    for (name, source) in &examples {
        let compiled = load(source).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let value = serde_json::to_value(compiled.document()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        seen += 1;
    }
    assert!(seen >= 4, "expected the shipped examples, found {seen}");
}

#[test]
fn the_schema_rejects_what_serde_rejects() {
    let validator = validator();
    for bad in [
        serde_json::json!({"version": "1", "tools": {"a": {"actoin": "deny"}}}),
        serde_json::json!({"version": "1", "tools": {"a": {"limits": [{"counter": "c", "window": "fortnight", "max": 1}]}}}),
        serde_json::json!({"tools": {}}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
        assert!(serde_json::from_value::<Policy>(bad).is_err());
    }
}
