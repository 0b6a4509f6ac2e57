//! `toolwarden policy`: check, explain, import and schema through the real binary, on real files.

use serde_json::{Value, json};

use crate::util::{Env, fixture, repo};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_accepts_every_shipped_example() {
    let env = Env::new();
    for name in ["seed.json", "shop.json", "spend-caps.json", "filesystem.yaml"] {
        let path = repo().join("data/policies").join(name);
        let stdout = env.ok(["policy", "check", path.to_str().unwrap()]);
        assert!(stdout.ends_with(": ok\n"), "{name}: {stdout}");
    }
}

#[test]
fn check_locates_an_unknown_operator_by_path_line_and_column() {
    let env = Env::new();
    let out = env.run(["policy", "check", fixture("policy/bad-operator.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(
            "bad-operator.json:7:65: tools.create_refund.deny_if[0].conditions[0].op: unknown operator \"greater\"; \
             expected one of eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists"
        ),
        "{err}"
    );
}

#[test]
fn check_reports_every_semantic_error_in_yaml_with_lines() {
    let env = Env::new();
    let file = fixture("policy/bad-semantics.yaml");
    let out = env.run(["--format", "json", "policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], json!(false));
    let found: Vec<(String, u64)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap()))
        .collect();
    let expected = [
        ("tools.drop_database", 5),
        ("tools.create_refund.deny_if[0].conditions[0].value", 12),
        ("tools.create_refund.limits[0].max", 16),
        ("tools.create_refund.limits[0].increment_from", 17),
        ("tools.get_orders.limits[0].counter", 20),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(found, expected);
}

#[test]
fn check_prints_warnings_and_still_succeeds() {
    let env = Env::new();
    let out = env.run(["policy", "check", fixture("policy/warnings.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning: ").count(), 3, "{err}");
    assert!(err.contains("hide[1]: \"x\" is listed twice"), "{err}");
}

#[test]
fn check_refuses_malformed_files_without_crashing() {
    let env = Env::new();
    let deep = "[".repeat(100_000);
    let cases: [(&str, &[u8]); 4] = [
        ("empty.json", b""),
        ("binary.json", b"\xff\xfe\x00garbage"),
        ("list.yaml", b"- a\n- b\n"),
        ("deep.json", deep.as_bytes()),
    ];
    for (name, bytes) in cases {
        let path = env.write(name, bytes);
        let out = env.run(["policy", "check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
    }
}

#[test]
fn explain_shows_the_decision_and_the_condition_that_matched() {
    let env = Env::new();
    let shop = repo().join("data/policies/shop.json");
    let shop = shop.to_str().unwrap();
    let out = env.ok(["policy", "explain", shop, "--tool", "create_refund", "--args", r#"{"amount": 6000}"#]);
    assert!(out.starts_with("deny (tools.create_refund.deny_if[0]): Refunds above 50.00 need a person\n"), "{out}");
    assert!(out.contains("args.amount gt 5000 (value 6000) holds"), "{out}");

    let v = env.json(["--format", "json", "policy", "explain", shop, "--tool", "delete_profile"]);
    assert_eq!(v["decision"]["decision"], "needs_approval");
    assert_eq!(v["decision"]["rule"], "tools.delete_profile.action");

    let v = env.json(["--format", "json", "policy", "explain", shop, "--tool", "get_profiles"]);
    assert_eq!(v["decision"]["decision"], "allow");
    let counters: Vec<&str> =
        v["decision"]["charges"].as_array().unwrap().iter().map(|c| c["key"]["counter"].as_str().unwrap()).collect();
    assert_eq!(counters, ["get_profiles_per_minute", "all_calls"]);

    let v = env.json(["--format", "json", "policy", "explain", shop, "--tool", "drop_database"]);
    assert_eq!(v["decision"]["rule"], "hide");
}

#[test]
fn explain_refuses_an_invalid_policy_and_bad_args() {
    let env = Env::new();
    let out = env.run(["policy", "explain", fixture("policy/bad-semantics.yaml").to_str().unwrap(), "--tool", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("tools.create_refund.limits[0].max"), "{}", stderr(&out));
    let shop = repo().join("data/policies/shop.json");
    let out = env.run(["policy", "explain", shop.to_str().unwrap(), "--tool", "x", "--args", "{nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--args is not JSON"));
}

#[test]
fn import_converts_the_rule_based_yaml_and_the_result_checks_clean() {
    let env = Env::new();
    let src = fixture("policy/import-shop.yaml");
    let converted = env.json(["policy", "import", src.to_str().unwrap()]);
    assert_eq!(converted["default"], "deny");
    assert_eq!(converted["hide"], json!(["drop_database", "admin_shell"]));
    let tools = &converted["tools"];
    assert_eq!(
        tools["get_profiles"]["limits"][0],
        json!({"counter": "get_profiles_rate_limit", "window": "minute", "max": 60, "scope": "grant"})
    );
    assert_eq!(tools["*"]["limits"][0]["max"], 120);
    assert_eq!(
        tools["delete_profile"]["deny_if"][0]["conditions"][0],
        json!({"path": "args.id", "op": "eq", "value": "admin"})
    );
    assert_eq!(tools["delete_profile"]["deny_if"][1]["conditions"][0]["path"], "args.tenant");
    assert_eq!(tools["create_refund"]["deny_if"][0]["conditions"][1]["path"], "args.currency");
    assert_eq!(
        tools["create_refund"]["limits"][0],
        json!({"counter": "refund_total", "window": "day", "max": 20000, "scope": "global", "increment_from": "args.amount"})
    );
    // gte 21 with increment 2: at most 10 calls an hour.
    assert_eq!(tools["create_refund"]["limits"][1]["max"], 10);
    assert_eq!(tools["send_email"]["deny_if"][0]["conditions"][0]["op"], "gte");
    assert_eq!(tools["send_email"]["deny_if"][1]["conditions"][0]["op"], "regex");
    assert_eq!(tools["shutdown"], json!({"action": "deny", "reason": "Nobody shuts the shop down"}));

    // Written with --out, it passes check and decides as the source meant.
    let out = env.path("converted.json");
    let o = env.run(["policy", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("rules[2].state.increment"), "the lossy increment is reported");
    env.ok(["policy", "check", out.to_str().unwrap()]);
    let v = env.json([
        "--format",
        "json",
        "policy",
        "explain",
        out.to_str().unwrap(),
        "--tool",
        "send_email",
        "--args",
        r#"{"attachment": "x.EXE"}"#,
    ]);
    assert_eq!(v["decision"]["decision"], "deny");
}

#[test]
fn import_reports_everything_it_could_not_carry_over() {
    let env = Env::new();
    let out = env.run(["policy", "import", fixture("policy/import-lossy.yaml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "default: \"maybe\" is not allow or deny",
        "owner: unknown key",
        "tools.search.timeout: unknown key",
        "operator \"sounds_like\" has no equivalent",
        "tools.search.rules[1].state.window: window not understood",
        "tools.search.rules[2]: counts only when argument conditions hold",
        "tools.search.rules[3].action",
        "tools.fetch.rate_limit: \"lots\" is not N/window",
        "version: source version 2",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tools"]["search"], json!({}));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let env = Env::new();
    let printed = env.json(["policy", "schema"]);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("schemas/policy.schema.json")).unwrap()).unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn generate_rejects_an_unknown_profile() {
    let env = Env::new();
    let out = env.run(["policy", "generate", "--profile", "lax"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown profile \"lax\"; expected one of strict, balanced, permissive"));
}

#[test]
fn the_import_example_in_the_docs_converts_without_loss() {
    let env = Env::new();
    let doc = std::fs::read_to_string(repo().join("doc/policy.md")).unwrap();
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("rules:"))
        .expect("doc/policy.md has an import example");
    let src = env.write("theirs.yaml", block);
    let out = env.run(["policy", "import", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing should be lost");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tools"]["create_refund"]["limits"][0]["counter"], "refund_total");
}

#[test]
fn a_tool_written_twice_is_an_error_not_a_silent_replacement() {
    let env = Env::new();
    let file = fixture("policy/duplicate-tool.json");
    let out = env.run(["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "duplicate-tool.json:6:5: tools.create_refund: \"create_refund\" is written twice (first at line 4); \
             only one of them would count"
        ),
        "{}",
        stderr(&out)
    );
    // The proxy's loader refuses it too.
    let out = env.run(["policy", "explain", file.to_str().unwrap(), "--tool", "create_refund"]);
    assert_eq!(out.status.code(), Some(2));
}
