//! SARIF 2.1.0 for `scan --format sarif`: what code-scanning dashboards ingest.
//!
//! One rule per finding id (with its default level and a `security-severity` score, which dashboards use to
//! rank security results), one result per finding with the level, a message, the config file that named the
//! server as the physical location (what a dashboard can link to) and `server/tool` as the logical location,
//! and a partial fingerprint so a dashboard tracks one finding across runs rather than opening a new one.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::scan_report::{ScanFinding, ScanReport};
use crate::classify::FindingInfo;
use crate::model::Risk;

/// The finding ids only `scan` reports (across servers, pins, failures), with their default severity.
const SCAN_RULES: &[(&str, Risk, &str)] = &[
    ("duplicate-tool-name", Risk::Medium, "two servers offer a tool of the same name: one can shadow the other"),
    ("cross-server-reference", Risk::Medium, "a description names a tool of another server"),
    ("pin-violation", Risk::High, "a tool differs from the definition approved with `toolwarden pin`"),
    ("server-unlisted", Risk::Medium, "the server could not be listed, so its tools were not checked"),
];

fn level(severity: Risk) -> &'static str {
    match severity {
        Risk::Critical | Risk::High => "error",
        Risk::Medium => "warning",
        Risk::Low => "note",
    }
}

/// The score code-scanning dashboards read from `properties.security-severity` (0–10).
fn security_severity(severity: Risk) -> &'static str {
    match severity {
        Risk::Critical => "9.5",
        Risk::High => "8.0",
        Risk::Medium => "5.5",
        Risk::Low => "2.0",
    }
}

/// A file path as a SARIF artifact URI: relative paths stay relative (resolved against the checkout), with
/// forward slashes and spaces escaped.
fn artifact_uri(origin: &str) -> Option<String> {
    if origin == "command line" || origin.is_empty() {
        return None;
    }
    let path = origin.replace('\\', "/");
    let escaped: String = path
        .chars()
        .flat_map(|c| match c {
            ' ' => "%20".chars().collect::<Vec<_>>(),
            '%' => "%25".chars().collect(),
            '#' => "%23".chars().collect(),
            '?' => "%3F".chars().collect(),
            c => vec![c],
        })
        .collect();
    Some(if escaped.starts_with('/') { format!("file://{escaped}") } else { escaped })
}

fn fingerprint(f: &ScanFinding) -> String {
    let mut h = Sha256::new();
    for part in [f.server.as_str(), f.tool.as_deref().unwrap_or(""), f.id.as_str()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The SARIF log of a scan.
pub(super) fn sarif(report: &ScanReport, known: &[FindingInfo]) -> Value {
    let mut rules: Vec<FindingInfo> = known.to_vec();
    for (id, severity, text) in SCAN_RULES {
        if !rules.iter().any(|r| r.id == *id) {
            rules.push(FindingInfo { id: id.to_string(), severity: *severity, text: text.to_string() });
        }
    }
    // Findings from `--rules` files the built-in list does not know still get a rule.
    for f in &report.findings {
        if !rules.iter().any(|r| r.id == f.id) {
            rules.push(FindingInfo {
                id: f.id.clone(),
                severity: f.severity,
                text: format!("toolwarden finding {}", f.id),
            });
        }
    }
    let rule_json: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.text},
                "fullDescription": {"text": r.text},
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {"security-severity": security_severity(r.severity), "tags": ["security", "mcp"]}
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.id).unwrap_or(0);
            let qualified = match &f.tool {
                Some(t) => format!("{}/{}", f.server, t),
                None => f.server.clone(),
            };
            let mut location = json!({
                "logicalLocations": [{
                    "name": f.tool.clone().unwrap_or_else(|| f.server.clone()),
                    "fullyQualifiedName": qualified,
                    "kind": if f.tool.is_some() { "function" } else { "module" }
                }]
            });
            if let Some(uri) = artifact_uri(&f.origin) {
                location["physicalLocation"] = json!({"artifactLocation": {"uri": uri}});
            }
            json!({
                "ruleId": f.id,
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": format!("{qualified}: {}", f.text)},
                "locations": [location],
                "partialFingerprints": {"toolwarden/v1": fingerprint(f)},
                "properties": {"severity": f.severity, "server": f.server, "tool": f.tool}
            })
        })
        .collect();
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "toolwarden",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rule_json
            }},
            "results": results,
            "columnKind": "unicodeCodePoints"
        }]
    })
}
