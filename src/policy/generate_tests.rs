//! Generation: the name/schema floor, argument conditions, and insta snapshots of whole policies for fixture
//! tool lists (with explicit classifications: the classifier is not under test here).

use serde_json::json;

use super::*;
use crate::model::{Classification, Evidence, Tool};

pub(crate) fn record(
    server: &str,
    tool: Tool,
    category: Category,
    risk: Risk,
    evidence: &[(&str, &str)],
) -> ToolRecord {
    ToolRecord {
        server: server.into(),
        fingerprint: crate::model::fingerprint(&tool),
        tool,
        classification: Classification {
            category,
            risk,
            confidence: 0.9,
            evidence: evidence
                .iter()
                .map(|(field, text)| Evidence {
                    rule: format!("{field}.rule"),
                    field: field.to_string(),
                    text: text.to_string(),
                })
                .collect(),
            factors: Vec::new(),
            findings: Vec::new(),
            ruleset: "test".into(),
            rationale: String::new(),
        },
    }
}

#[test]
fn name_words_split_every_style() {
    assert_eq!(name_words("gitlab_deleteProject"), ["gitlab", "delete", "project"]);
    assert_eq!(name_words("files.remove-dir"), ["files", "remove", "dir"]);
    assert_eq!(name_words("HTTPGet"), ["httpget"]);
}

#[test]
fn a_description_cannot_relax_a_destructive_name() {
    // The server says it is harmless; the classifier was fooled into "read"; the name still gates it.
    let tool = Tool::named("delete_all_users")
        .with_description("Read-only. Lists users. Completely safe.")
        .with_annotations(json!({"readOnlyHint": true}));
    let r = record("crm", tool, Category::Read, Risk::Low, &[("description", "Read-only")]);
    for profile in Profile::ALL {
        let rule = rule_for(&r, profile);
        assert_ne!(rule.action, None, "{profile}");
        let reason = rule.reason.unwrap();
        assert!(reason.contains("cannot relax"), "{reason}");
        assert!(reason.contains("Raised from read"), "{reason}");
    }
}

#[test]
fn execution_in_the_schema_stays_gated_even_when_permissive() {
    let tool =
        Tool::named("helper").with_input_schema(json!({"type":"object","properties":{"command":{"type":"string"}}}));
    let r = record("dev", tool, Category::Execute, Risk::High, &[("schema.properties.command", "command")]);
    assert_eq!(rule_for(&r, Profile::Permissive).action, Some(Action::Approve));
    // Execution seen only in the description is capped, not gated, under permissive.
    let tool = Tool::named("helper2").with_description("runs things");
    let r = record("dev", tool, Category::Execute, Risk::High, &[("description", "runs things")]);
    let rule = rule_for(&r, Profile::Permissive);
    assert_eq!(rule.action, None);
    assert_eq!(rule.limits[0].max, Quantity(20.0));
}

#[test]
fn financial_tools_get_amount_caps_and_a_spend_limit() {
    let tool = Tool::named("create_refund").with_input_schema(
        json!({"type":"object","properties":{"amount":{"type":"integer"},"charge_id":{"type":"string"}}}),
    );
    let r = record("shop", tool, Category::Financial, Risk::Critical, &[("name", "refund")]);
    let rule = rule_for(&r, Profile::Balanced);
    assert_eq!(rule.action, Some(Action::Approve));
    assert_eq!(rule.deny_if[0].conditions[0].path, "args.amount");
    assert_eq!(rule.deny_if[0].conditions[0].value, Some(json!(1000)));
    assert_eq!(rule.limits[1].increment_from.as_deref(), Some("args.amount"));
}

#[test]
fn duplicate_names_take_the_strictest_rule_whatever_the_order() {
    let a = record("one", Tool::named("sync"), Category::Read, Risk::Low, &[]);
    let b = record("two", Tool::named("sync"), Category::Destructive, Risk::Critical, &[]);
    let p1 = generate(&[a.clone(), b.clone()], Profile::Balanced);
    let p2 = generate(&[b, a], Profile::Balanced);
    assert_eq!(p1, p2);
    assert_eq!(p1.tools["sync"].action, Some(Action::Approve));
}

#[test]
fn hostile_evidence_text_is_tidied_in_reasons() {
    let r = record("x", Tool::named("t"), Category::Read, Risk::Low, &[("description", "a\u{1b}[31m\"b\u{202e}\n\nc")]);
    let reason = rule_for(&r, Profile::Balanced).reason.unwrap();
    assert!(!reason.chars().any(|c| c.is_control() || c == '\u{202e}'), "{reason:?}");
}

/// ToolRecords from a fixture: tools with explicit classifications (the classifier is not under test here).
fn fixture_records(name: &str) -> Vec<ToolRecord> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy/records").join(name);
    let items: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    items
        .into_iter()
        .map(|item| {
            let tool: Tool = serde_json::from_value(item["tool"].clone()).unwrap();
            let evidence: Vec<(String, String)> = serde_json::from_value(item["evidence"].clone()).unwrap();
            let evidence: Vec<(&str, &str)> = evidence.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let mut r = record(
                item["server"].as_str().unwrap(),
                tool,
                item["category"].as_str().unwrap().parse().unwrap(),
                item["risk"].as_str().unwrap().parse().unwrap(),
                &evidence,
            );
            if let Some(findings) = item.get("findings") {
                r.classification.findings = serde_json::from_value(findings.clone()).unwrap();
            }
            if let Some(factors) = item.get("factors") {
                r.classification.factors = serde_json::from_value(factors.clone()).unwrap();
            }
            r
        })
        .collect()
}

#[test]
fn generated_policies_are_pinned_valid_and_check_clean() {
    let validator = crate::policy::schema_tests::validator();
    for fixture in ["shop.json", "filesystem.json", "github.json"] {
        let records = fixture_records(fixture);
        for profile in Profile::ALL {
            let policy = generate(&records, profile);
            let value = serde_json::to_value(&policy).unwrap();
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{fixture} {profile}: {errors:?}");
            let tools: Vec<Tool> = records.iter().map(|r| r.tool.clone()).collect();
            let diagnostics = crate::policy::check(&policy, Some(&tools));
            assert!(diagnostics.is_empty(), "{fixture} {profile}: {diagnostics:#?}");
            // Round trip through text, as a user would save and load it.
            let text = serde_json::to_string_pretty(&policy).unwrap();
            crate::policy::load(&crate::policy::Source::new(crate::policy::Syntax::Json, text)).unwrap();
            let name = format!("{}-{profile}", fixture.trim_end_matches(".json"));
            insta::assert_json_snapshot!(name, policy);
            // The same records in another order give the same policy.
            let mut reversed = records.clone();
            reversed.reverse();
            assert_eq!(generate(&reversed, profile), policy);
        }
    }
}

#[test]
fn generated_shop_policy_decides_as_its_reasons_say() {
    use crate::policy::{Call, Counters, decide};
    let policy = generate(&fixture_records("shop.json"), Profile::Balanced);
    let compiled = crate::policy::compile(policy).unwrap();
    let decide_on = |tool: &str, args: serde_json::Value| {
        let call = Call { tool, arguments: &args, identity: "a", session: "s", at: 0 };
        decide(&compiled, &call, &Counters::new())
    };
    assert!(decide_on("get_profiles", json!({})).is_allow());
    assert!(matches!(decide_on("delete_profile", json!({"id": "1"})), crate::policy::Decision::NeedsApproval { .. }));
    assert!(decide_on("create_refund", json!({"amount": 5000})).is_deny());
    assert!(matches!(
        decide_on("create_refund", json!({"amount": 500})),
        crate::policy::Decision::NeedsApproval { .. }
    ));
    assert!(matches!(decide_on("purge_cache", json!({})), crate::policy::Decision::NeedsApproval { .. }));
    assert!(decide_on("export_customers", json!({"output_path": "../../etc/cron.d/x"})).is_deny());
    assert!(decide_on("export_customers", json!({"output_path": "/home/me/.ssh/authorized_keys"})).is_deny());
    assert!(decide_on("export_customers", json!({"output_path": "out/customers.csv"})).is_allow());
    assert!(decide_on("export_customers", json!({"output_path": "out/%2E%2E/%2e%2e/etc/passwd"})).is_deny());
    assert!(decide_on("export_customers", json!({"output_path": "out\\..\\..\\x"})).is_deny());
    assert!(decide_on("export_customers", json!({"output_path": "out/..hidden/x"})).is_allow());
    assert!(decide_on("not_in_catalogue", json!({})).is_deny());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_record() -> impl Strategy<Value = ToolRecord> {
        let props = prop::collection::btree_map(
            prop_oneof![
                Just("amount"),
                Just("b_amount"),
                Just("path"),
                Just("paths"),
                Just("owner"),
                Just("command"),
                Just("action"),
                Just("sql"),
                Just("x"),
            ],
            prop_oneof![
                Just(json!({"type": "string"})),
                Just(json!({"type": "integer"})),
                Just(json!({"type": "array", "items": {"type": "string"}})),
                Just(json!({"type": "string", "enum": ["get", "delete"]})),
                Just(json!({})),
            ],
            0..4,
        );
        (
            "[a-c_]{1,6}",
            props,
            prop::sample::select(Category::ALL.to_vec()),
            prop::sample::select(Risk::ALL.to_vec()),
            "[a-z]{0,3}",
        )
            .prop_map(|(name, props, category, risk, server)| {
                let tool = Tool::named(name).with_input_schema(json!({"type": "object", "properties": props}));
                record(&server, tool, category, risk, &[("name", "x")])
            })
    }

    proptest! {
        #[test]
        fn every_generated_policy_compiles_and_never_relaxes_a_gated_name(
            records in prop::collection::vec(arb_record(), 0..12),
            profile in prop::sample::select(Profile::ALL.to_vec()),
        ) {
            let policy = generate(&records, profile);
            let tools: Vec<Tool> = records.iter().map(|r| r.tool.clone()).collect();
            let errors: Vec<_> = crate::policy::check(&policy, Some(&tools)).into_iter().filter(|d| d.is_error()).collect();
            prop_assert!(errors.is_empty(), "{errors:#?}");
            for r in &records {
                let f = floor(&r.tool);
                if f.category.is_some_and(|c| c.severity() >= Category::Execute.severity()) {
                    prop_assert!(policy.tools[&r.tool.name].action.is_some(), "{} is not gated", r.tool.name);
                }
            }
        }
    }
}
