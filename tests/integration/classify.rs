//! `toolwarden classify`: captured tool lists in, classifications with evidence out.

use serde_json::Value;

use crate::util::{Env, fixture};

fn rows(value: &Value) -> &Vec<Value> {
    value.as_array().expect("a JSON array")
}

fn row<'a>(value: &'a Value, name: &str) -> &'a Value {
    rows(value).iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no row for {name}"))
}

#[test]
fn json_output_of_the_shop_fixture() {
    let env = Env::new();
    let out = env.json(["classify", "--format", "json", fixture("classify/shop.tools.json").to_str().unwrap()]);
    insta::with_settings!({snapshot_path => "../fixtures/classify/snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("shop_classify_json", out);
    });
}

#[test]
fn every_row_has_the_pinned_fields_and_evidence() {
    let env = Env::new();
    let out = env.json(["classify", "--format", "json", fixture("classify/shop.tools.json").to_str().unwrap()]);
    assert_eq!(rows(&out).len(), 11);
    for r in rows(&out) {
        assert_eq!(r["server"], "shop", "{r}");
        for key in ["name", "category", "risk"] {
            assert!(r[key].is_string(), "{key} in {r}");
        }
        let confidence = r["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence));
        for e in r["evidence"].as_array().unwrap() {
            for key in ["rule", "field", "text"] {
                assert!(e[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {e}");
            }
        }
    }
    let expect = [
        ("list_orders", "read"),
        ("update_customer", "write"),
        ("delete_customer", "destructive"),
        ("create_refund", "financial"),
        ("manage_products", "destructive"),
        ("sendNewsletter", "execute"),
        ("run_report_sql", "read"),
        ("shop.admin-shell", "execute"),
    ];
    for (name, category) in expect {
        assert_eq!(row(&out, name)["category"], category, "{name}");
    }
    // The misleading annotation is shown as a finding, the hidden instructions too.
    let findings = &row(&out, "delete_customer")["findings"];
    assert_eq!(findings[0]["id"], "annotation-contradiction");
    // The name says delete while `readOnlyHint` says read: the one contradiction that is high.
    assert_eq!(findings[0]["severity"], "high");
    assert_eq!(findings[0]["location"], "annotations");
    assert_eq!(row(&out, "add_note")["findings"][0]["id"], "hidden-instructions");
    // `$ref`s into `definitions` are followed to the action enum.
    let evidence = row(&out, "manage_products")["evidence"].as_array().unwrap();
    assert!(evidence.iter().any(|e| e["field"] == "schema.properties.action.enum" && e["text"] == "purge_all"));
    assert_eq!(row(&out, "shop.admin-shell")["risk"], "critical");
    assert_eq!(row(&out, "shop.admin-shell")["factors"][0], "production");
}

#[test]
fn the_server_is_the_file_stem_without_tools_and_null_for_stdin() {
    let env = Env::new();
    let a = env.write("github.tools.json", r#"{"tools":[{"name":"get_issue"}]}"#);
    let b = env.write("plain.json", r#"[{"name":"get_issue"}]"#);
    let out = env.json(["classify", "--format", "json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(rows(&out)[0]["server"], "github");
    assert_eq!(rows(&out)[1]["server"], "plain");
    let out =
        env.cmd().args(["classify", "--format", "json", "-"]).write_stdin(r#"[{"name":"delete_x"}]"#).output().unwrap();
    assert!(out.status.success());
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows(&out)[0]["server"], Value::Null);
    assert_eq!(rows(&out)[0]["category"], "destructive");
}

#[test]
fn bad_tools_are_located_and_the_others_still_classified() {
    let env = Env::new();
    let out = env.run(["classify", "--format", "json", fixture("classify/broken.tools.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("broken.tools.json: tools[1] at line 3, column 3: missing field `name`"), "{stderr}");
    assert!(stderr.contains("tools[2] at line 4, column 3: a tool must be a JSON object"), "{stderr}");
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = rows(&out).iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["delete_order", "get_order"]);
}

#[test]
fn an_invalid_file_is_reported_and_the_other_files_still_classified() {
    let env = Env::new();
    let out = env.run([
        "classify",
        "--format",
        "json",
        fixture("classify/invalid.json").to_str().unwrap(),
        "missing.json",
        fixture("classify/shop.tools.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("invalid.json: not valid JSON at line 4, column 3"), "{stderr}");
    assert!(stderr.contains("missing.json: cannot read the file"), "{stderr}");
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows(&out).len(), 11);
}

#[test]
fn the_table_names_tools_and_evidence_and_cleans_hostile_text() {
    let env = Env::new();
    let file = env.write(
        "evil.tools.json",
        r#"[{"name":"delete\u001b[31m_all","description":"Deletes everything\u001b]0;pwned\u0007"},{"name":"get_x"}]"#,
    );
    let out = env.ok(["classify", file.to_str().unwrap()]);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("destructive") && out.contains("critical") && out.contains("verb.delete"), "{out}");
    assert!(out.contains("get_x") && out.contains("read"), "{out}");
}

#[test]
fn a_rules_directory_replaces_the_builtin_rules() {
    let env = Env::new();
    env.write(
        "rules/mine.toml",
        "[[verb]]\nid = \"verb.zap\"\ncategory = \"destructive\"\nstrength = 0.9\nwords = [\"zap\"]\n",
    );
    let file = env.write("t.tools.json", r#"[{"name":"zap_user"},{"name":"delete_user"}]"#);
    let rules = env.path("rules");
    let out = env.json(["classify", "--format", "json", "--rules", rules.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(row(&out, "zap_user")["category"], "destructive");
    assert_eq!(row(&out, "zap_user")["evidence"][0]["rule"], "verb.zap");
    assert_eq!(row(&out, "delete_user")["category"], "read");

    env.write("bad/x.toml", "[[verb]]\nid = 3\n");
    let out = env.run(["classify", "--rules", env.path("bad").to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("loading rules from") && stderr.contains("x.toml"), "{stderr}");
}

#[test]
fn formats_other_than_table_and_json_are_refused() {
    let env = Env::new();
    let out = env.run(["classify", "--format", "csv", fixture("classify/shop.tools.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("does not support --format csv"));
}
