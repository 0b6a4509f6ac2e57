//! `quickstart` writes the recommended policy of the demo server, and that policy is the one `policy generate`
//! gives and passes `policy check`.

use crate::util::Env;

#[test]
fn quickstart_writes_a_policy_that_checks_and_matches_generate() {
    let env = Env::new();
    let out = env.ok(["quickstart"]);
    let path = env.data_dir().join("policies/demo.policy.json");
    assert!(out.contains(&path.display().to_string()), "quickstart does not say where the policy is:\n{out}");
    let written = std::fs::read_to_string(&path).expect("policy file");
    let written: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(written["default"], "deny");

    let generated = env.json(["policy", "generate", "--server", "demo", "--profile", "balanced"]);
    assert_eq!(written, generated);
    env.ok(["policy", "check", path.to_str().unwrap()]);

    // Every tool the demo server listed has a rule, and the destructive ones are not simply allowed.
    let tools = env.json(["search", "--server", "demo", "--limit", "100", "--format", "json"]);
    let tools = tools.as_array().unwrap();
    assert!(!tools.is_empty());
    for t in tools {
        let name = t["name"].as_str().unwrap();
        let rule = &written["tools"][name];
        assert!(rule.is_object(), "no rule for {name}");
        if t["category"] == "destructive" {
            let gated = rule["action"] == "approve" || rule["action"] == "deny";
            assert!(gated, "destructive {name} is not gated: {rule}");
        }
    }
}
