//! Meaning checks: each error and warning `policy check` promises, on small policies built inline.

use serde_json::json;

use super::*;
use crate::policy::{Level, Source, Syntax};

fn diagnostics(value: serde_json::Value) -> Vec<Diagnostic> {
    let policy: Policy = serde_json::from_value(value).unwrap();
    check(&policy, None)
}

fn errors(value: serde_json::Value) -> Vec<(String, String)> {
    diagnostics(value).into_iter().filter(|d| d.level == Level::Error).map(|d| (d.path, d.message)).collect()
}

#[test]
fn the_seed_policy_compiles_and_means_what_it_says() {
    let seed = r#"{"version":"1","default":"deny","tools":{"create_profile":{"limits":[{"counter":"create_profile_rate","window":"minute","max":30,"scope":"grant"}]}}}"#;
    let policy = crate::policy::load(&Source::new(Syntax::Json, seed)).unwrap();
    let rule = &policy.tools["create_profile"];
    assert_eq!(rule.limits[0].max, 30.0);
    assert_eq!(rule.limits[0].window, Window::Minute);
    assert_eq!(rule.limits[0].scope, Scope::Grant);
    assert_eq!(policy.default, DefaultAction::Deny);
    // And it is written back as it was read.
    let back = serde_json::to_value(policy.document()).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(seed).unwrap());
}

#[test]
fn a_regex_that_does_not_compile_is_an_error_at_its_value() {
    let e = errors(json!({"version":"1","tools":{"a":{"deny_if":[{"conditions":[
        {"path":"args.p","op":"regex","value":"(unclosed"}]}]}}}));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "tools.a.deny_if[0].conditions[0].value");
    assert!(e[0].1.starts_with("regex does not compile"), "{}", e[0].1);
}

#[test]
fn one_counter_name_with_two_meanings_is_an_error() {
    let e = errors(json!({"version":"1","tools":{
        "a":{"limits":[{"counter":"c","window":"minute","max":10,"scope":"global"}]},
        "b":{"limits":[{"counter":"c","window":"hour","max":10,"scope":"global"}]}}}));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "tools.b.limits[0].counter");
    assert!(e[0].1.contains("also defined at tools.a.limits[0]"), "{}", e[0].1);
    // The same counter shared with the same settings is how two tools share a budget: fine.
    assert!(
        errors(json!({"version":"1","tools":{
        "a":{"limits":[{"counter":"c","window":"minute","max":10,"scope":"global"}]},
        "b":{"limits":[{"counter":"c","window":"minute","max":10,"scope":"global"}]}}}))
        .is_empty()
    );
}

#[test]
fn max_of_zero_and_rules_on_hidden_tools_are_errors() {
    let e = errors(json!({"version":"1","hide":["drop_db"],"tools":{
        "a":{"limits":[{"counter":"c","window":"minute","max":0}]},
        "drop_db":{"action":"approve"}}}));
    let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["tools.a.limits[0].max", "tools.drop_db"]);
    // A deny with a reason on a hidden tool documents it and is harmless.
    assert!(errors(json!({"version":"1","hide":["x"],"tools":{"x":{"action":"deny","reason":"gone"}}})).is_empty());
}

#[test]
fn paths_must_point_into_args() {
    let e = errors(json!({"version":"1","tools":{"a":{
        "limits":[{"counter":"spend","window":"day","max":100,"increment_from":"amount"}],
        "deny_if":[{"conditions":[{"path":"args..x","op":"exists"}]}]}}}));
    assert_eq!(e[0].0, "tools.a.limits[0].increment_from");
    assert!(e[0].1.contains("must start with \"args\""));
    assert_eq!(e[1].0, "tools.a.deny_if[0].conditions[0].path");
}

#[test]
fn operator_values_must_have_the_right_type() {
    let e = errors(json!({"version":"1","tools":{"a":{"deny_if":[{"conditions":[
        {"path":"args.n","op":"gt","value":"5"},
        {"path":"args.n","op":"in","value":3},
        {"path":"args.n","op":"eq"},
        {"path":"args.n","op":"exists","value":"yes"}]}]}}}));
    let messages: Vec<&str> = e.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "operator gt needs a number, not a string",
            "operator in needs a list, not a number",
            "operator eq needs a value",
            "exists takes true or false, not a string"
        ]
    );
}

#[test]
fn version_must_be_one() {
    let e = errors(json!({"version":"2"}));
    assert_eq!(e, [("version".to_string(), "unsupported version \"2\"; expected \"1\"".to_string())]);
}

#[test]
fn catalogue_warnings_for_rules_that_never_match() {
    let policy: Policy = serde_json::from_value(json!({"version":"1","tools":{
        "create_refund":{"deny_if":[{"conditions":[
            {"path":"args.amount","op":"regex","value":"^9"},
            {"path":"args.currency_code","op":"eq","value":"EUR"}]}],
            "limits":[{"counter":"spend","window":"day","max":100,"increment_from":"args.note"}]},
        "Create_Refund":{},
        "*":{"limits":[{"counter":"all","window":"minute","max":100}]}}}))
    .unwrap();
    let tools = vec![crate::model::Tool::named("create_refund").with_input_schema(json!({
        "type":"object","properties":{"amount":{"type":"integer"},"note":{"type":"string"}}}))];
    let d = check(&policy, Some(&tools));
    assert!(d.iter().all(|d| d.level == Level::Warning), "{d:?}");
    let got: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        got,
        [
            "tools.Create_Refund",
            "tools.create_refund.limits[0].increment_from",
            "tools.create_refund.deny_if[0].conditions[0].op",
            "tools.create_refund.deny_if[0].conditions[1].path"
        ]
    );
    assert!(d[0].message.contains("names match exactly"));
    assert!(d[0].message.ends_with("did you mean \"create_refund\"?"), "{}", d[0].message);
}

#[test]
fn errors_found_after_parsing_get_a_line_and_column() {
    let text = "{\n  \"version\": \"1\",\n  \"tools\": {\n    \"a\": {\"limits\": [\n      {\"counter\": \"c\", \"window\": \"minute\", \"max\": 0}\n    ]}\n  }\n}\n";
    let errs = crate::policy::load(&Source::new(Syntax::Json, text)).unwrap_err();
    assert_eq!(errs[0].path, "tools.a.limits[0].max");
    assert_eq!((errs[0].line, errs[0].column), (Some(5), Some(44)));
    let yaml =
        "version: \"1\"\ntools:\n  a:\n    limits:\n      - counter: c\n        window: minute\n        max: 0\n";
    let errs = crate::policy::load(&Source::new(Syntax::Yaml, yaml)).unwrap_err();
    assert_eq!((errs[0].line, errs[0].column), (Some(7), Some(9)));
}

#[test]
fn empty_membership_lists_are_warned_about() {
    let d = diagnostics(json!({"version":"1","tools":{"a":{"deny_if":[{"conditions":[
        {"path":"args.x","op":"in","value":[]}]}]}}}));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].level, Level::Warning);
    assert_eq!(d[0].message, "in an empty list never holds");
}

#[test]
fn edit_distance_counts_single_edits() {
    assert_eq!(edit_distance("create_refund", "create_refnd"), 1);
    assert_eq!(edit_distance("abc", "abc"), 0);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("a", "abcdef"), usize::MAX);
    assert_eq!(closest("get_profile", ["get_profiles", "delete_profile"].into_iter()), Some("get_profiles"));
    assert_eq!(closest("zzz", ["get_profiles"].into_iter()), None);
}
