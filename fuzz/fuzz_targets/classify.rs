//! Any text as a tool's name, description and schema (split at the first two NUL bytes): classification and
//! findings must never panic, however long, odd or hostile the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwarden::classify::Classifier;
use toolwarden::model::Tool;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let name = parts.next().unwrap_or("");
    let description = parts.next().unwrap_or("");
    let mut tool = Tool::named(name).with_description(description);
    if let Some(schema) = parts.next().and_then(|s| serde_json::from_str(s).ok()) {
        tool.input_schema = Some(schema);
    }
    let classifier = Classifier::builtin();
    let _ = classifier.classify(&tool);
    let _ = classifier.scan_server(&serde_json::json!({"instructions": description}));
});
