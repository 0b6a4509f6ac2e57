//! Security findings, pins and `scan`: the poisoned demo server over stdio, captured files, SARIF.

use serde_json::{Value, json};

use crate::util::{Env, fixture};

fn bin() -> String {
    assert_cmd::cargo::cargo_bin("toolwarden").display().to_string()
}

/// A client config naming the demo server, plain or poisoned, as `shop`.
fn client_config(env: &Env, file: &str, poisoned: bool) -> String {
    let mut args = vec!["demo-server"];
    if poisoned {
        args.push("--poisoned");
    }
    env.write(file, json!({"mcpServers": {"shop": {"command": bin(), "args": args}}}).to_string());
    file.to_string()
}

fn ids_of(findings: &Value, tool: &str) -> Vec<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["tool"] == tool)
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scan_of_the_poisoned_demo_fails_and_names_the_findings() {
    let env = Env::new();
    let config = client_config(&env, "mcp.json", true);
    let out = env.run(["scan", "--client-config", &config, "--yes", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], true);
    assert_eq!(report["servers"][0]["ok"], true);
    assert_eq!(report["servers"][0]["origin"], "mcp.json");
    let findings = &report["findings"];
    assert!(ids_of(findings, "daily_fact").contains(&"secret-exfiltration".to_string()), "{findings:#}");
    assert!(ids_of(findings, "daily_fact").contains(&"suspicious-parameter".to_string()));
    assert!(ids_of(findings, "weather_outlook").contains(&"tool-shadowing".to_string()));
    assert!(ids_of(findings, "word_of_the_day").contains(&"unicode-tags".to_string()));
    assert!(ids_of(findings, "s\u{0435}nd_email").contains(&"confusable-name".to_string()));
    assert!(ids_of(findings, "get_customer").contains(&"hidden-instructions".to_string()));

    // The table names them too, and never passes the tag characters or escapes through.
    let out = env.run(["scan", "--client-config", &config, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("tool-shadowing") && table.contains("FAILED"), "{table}");
    assert!(!table.chars().any(|c| ('\u{E0000}'..='\u{E007F}').contains(&c) || c == '\u{1b}'));

    // Only critical: still failing (the SSH key), and `never` passes.
    assert_eq!(env.run(["scan", "--client-config", &config, "--yes", "--fail-on", "critical"]).status.code(), Some(1));
    assert_eq!(env.run(["scan", "--client-config", &config, "--yes", "--fail-on", "never"]).status.code(), Some(0));
}

#[test]
fn scan_refuses_to_start_programs_from_configs_without_yes() {
    let env = Env::new();
    let config = client_config(&env, "mcp.json", true);
    let out = env.run(["scan", "--client-config", &config]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

#[test]
fn sarif_is_structurally_valid() {
    let env = Env::new();
    let config = client_config(&env, "mcp.json", true);
    let out = env.run(["scan", "--client-config", &config, "--yes", "--format", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-schema-2.1.0"));
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "toolwarden");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = rule_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rule_ids.len(), "one rule per finding id");
    for rule in rules {
        assert!(!rule["shortDescription"]["text"].as_str().unwrap().is_empty());
        let level = rule["defaultConfiguration"]["level"].as_str().unwrap();
        assert!(["error", "warning", "note"].contains(&level));
        let score: f64 = rule["properties"]["security-severity"].as_str().unwrap().parse().unwrap();
        assert!((0.0..=10.0).contains(&score));
    }
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 8);
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"], "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        assert_eq!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "mcp.json");
        assert!(r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].as_str().unwrap().starts_with("shop"));
        assert_eq!(r["partialFingerprints"]["toolwarden/v1"].as_str().unwrap().len(), 32);
    }
    assert!(results.iter().any(|r| r["ruleId"] == "secret-exfiltration" && r["level"] == "error"));
}

#[test]
fn pin_then_crawl_the_changed_server_reports_the_rug_pull() {
    let env = Env::new();
    let plain = client_config(&env, "plain.json", false);
    let poisoned = client_config(&env, "poisoned.json", true);
    env.ok(["crawl", "--client-config", &plain, "--yes"]);
    // Not pinned yet.
    let shown = env.json(["show", "shop", "--format", "json"]);
    assert_eq!(shown["pin"], Value::Null);
    let pins = env.json(["pin", "shop", "--format", "json"]);
    assert_eq!(pins[0]["tools"].as_object().unwrap().len(), 15);
    let shown = env.json(["show", "shop", "--format", "json"]);
    assert_eq!(shown["pin"]["changed"], json!([]));
    assert_eq!(shown["pin"]["unchanged"], 15);

    // The same server with a changed tool (and new ones).
    let out = env.run(["crawl", "--client-config", &poisoned, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("differ from the pin") && text.contains("~ get_customer changed: description"), "{text}");
    assert!(text.contains("+Look up one customer by id") && text.contains("~/.ssh/id_rsa"), "{text}");

    let shown = env.json(["show", "shop", "--format", "json"]);
    let changed = shown["pin"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["name"], "get_customer");
    assert!(changed[0]["diff"].as_str().unwrap().contains("-Look up one customer by id and return their name"));
    assert_eq!(shown["pin"]["added"].as_array().unwrap().len(), 4);
    let table = env.ok(["show", "shop"]);
    assert!(table.contains("5 tools differ from the pin"), "{table}");

    // scan reports each difference as a high finding, even with --fail-on high and no other findings counted.
    let out = env.run(["scan", "--client-config", &poisoned, "--yes", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pin: Vec<&Value> =
        report["findings"].as_array().unwrap().iter().filter(|f| f["id"] == "pin-violation").collect();
    assert_eq!(pin.len(), 5);
    assert!(pin.iter().all(|f| f["severity"] == "high"));
    assert!(pin.iter().any(|f| f["tool"] == "get_customer"));

    // Pinning again approves the new state.
    env.ok(["pin", "shop"]);
    let shown = env.json(["show", "shop", "--format", "json"]);
    assert_eq!(shown["pin"]["unchanged"], 19);
}

#[test]
fn offline_scan_of_captures_finds_poisoning_and_shared_names() {
    let env = Env::new();
    let poisoned = fixture("findings/poisoned.tools.json");
    let mail = fixture("findings/mail.tools.json");
    let out = env.run([
        "scan".as_ref(),
        poisoned.as_os_str(),
        "--import".as_ref(),
        mail.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let has = |server: &str, tool: &str, id: &str| {
        findings.iter().any(|f| f["server"] == server && f["tool"] == tool && f["id"] == id)
    };
    assert!(has("poisoned", "add", "secret-exfiltration"), "{findings:#?}");
    assert!(has("poisoned", "add", "hidden-instructions"));
    assert!(has("poisoned", "send_email", "terminal-escapes"));
    assert!(has("poisoned", "send_email", "exfiltration-hint"));
    assert!(has("poisoned", "send_email", "duplicate-tool-name"));
    assert!(has("mail", "send_email", "duplicate-tool-name"));
    assert!(has("poisoned", "get_weather", "cross-server-reference"));
    // Nothing in the clean server but the shared name.
    assert!(findings.iter().filter(|f| f["server"] == "mail").all(|f| f["id"] == "duplicate-tool-name"));
    // The scan stored them: the catalogue shows the findings and the shared name.
    let shown = env.json(["show", "mail", "--format", "json"]);
    assert_eq!(shown["shared_names"]["send_email"], json!(["poisoned"]));
    let table = env.ok(["show", "poisoned"]);
    assert!(table.contains("secret-exfiltration") && table.contains("duplicate-tool-name"), "{table}");
    assert!(!table.contains('\u{1b}'));

    // search carries the findings and the shared name, in JSON and under the table.
    let hits = env.json(["search", "email", "--format", "json"]);
    let hit = hits.as_array().unwrap().iter().find(|h| h["server"] == "poisoned" && h["name"] == "send_email").unwrap();
    assert!(hit["findings"].as_array().unwrap().iter().any(|f| f["id"] == "exfiltration-hint"), "{hit:#}");
    assert_eq!(hit["also_offered_by"], json!(["mail"]));
    let table = env.ok(["search", "email"]);
    let line = table.lines().find(|l| l.starts_with("! poisoned/send_email:")).unwrap_or_default();
    assert!(line.contains("exfiltration-hint (high)"), "{table}");

    // A clean capture alone passes.
    let out = env.run(["scan".as_ref(), mail.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn classify_json_carries_findings() {
    let env = Env::new();
    let rows = env.json([
        "classify".as_ref(),
        fixture("findings/poisoned.tools.json").as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let add = rows.as_array().unwrap().iter().find(|r| r["name"] == "add").unwrap();
    let findings = add["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["id"] == "secret-exfiltration" && f["severity"] == "critical"));
    for f in findings {
        assert!(f["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[test]
fn scan_rejects_csv_and_a_bad_level() {
    let env = Env::new();
    let mail = fixture("findings/mail.tools.json");
    assert_eq!(
        env.run(["scan".as_ref(), mail.as_os_str(), "--format".as_ref(), "csv".as_ref()]).status.code(),
        Some(2)
    );
    assert_eq!(
        env.run(["scan".as_ref(), mail.as_os_str(), "--fail-on".as_ref(), "severe".as_ref()]).status.code(),
        Some(2)
    );
}
