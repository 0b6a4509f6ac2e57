//! Decisions: the documented precedence and operators, and proptest properties over generated policies.

use serde_json::{Value, json};

use super::*;
use crate::policy::{Source, Syntax, load};

fn policy(v: Value) -> CompiledPolicy {
    load(&Source::new(Syntax::Json, v.to_string())).unwrap()
}

fn call<'a>(tool: &'a str, args: &'a Value) -> Call<'a> {
    Call { tool, arguments: args, identity: "alice", session: "s1", at: 1_700_000_000 }
}

fn example() -> CompiledPolicy {
    policy(json!({
        "version": "1", "default": "deny", "hide": ["drop_database"],
        "tools": {
            "get_profiles": {"limits": [{"counter": "get_profiles_per_minute", "window": "minute", "max": 2, "scope": "grant"}]},
            "delete_profile": {"action": "approve", "reason": "Destructive"},
            "create_refund": {"deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 5000}],
                                           "on_deny": "Refunds above 50.00 need a person"}]},
            "nuke": {"action": "deny"},
            "*": {"limits": [{"counter": "all_calls", "window": "minute", "max": 120, "scope": "global"}]}
        }
    }))
}

#[test]
fn hidden_unknown_and_denied_tools_are_refused() {
    let p = example();
    let args = json!({});
    let d = decide(&p, &call("drop_database", &args), &Counters::new());
    assert_eq!(d, Decision::Deny { reason: "tool \"drop_database\" is not available".into(), rule: "hide".into() });
    let d = decide(&p, &call("who_knows", &args), &Counters::new());
    assert!(matches!(d, Decision::Deny { ref rule, .. } if rule == "default"));
    let d = decide(&p, &call("nuke", &args), &Counters::new());
    assert!(matches!(d, Decision::Deny { ref rule, .. } if rule == "tools.nuke.action"));
    // Names match exactly: no case folding.
    let d = decide(&p, &call("Get_Profiles", &args), &Counters::new());
    assert!(d.is_deny());
}

#[test]
fn deny_if_refuses_with_on_deny_and_missing_arguments_do_not_match() {
    let p = example();
    let big = json!({"amount": 6000});
    let d = decide(&p, &call("create_refund", &big), &Counters::new());
    assert_eq!(
        d,
        Decision::Deny {
            reason: "Refunds above 50.00 need a person".into(),
            rule: "tools.create_refund.deny_if[0]".into()
        }
    );
    // A number written as a string cannot slip past the cap.
    let sneaky = json!({"amount": "6000"});
    assert!(decide(&p, &call("create_refund", &sneaky), &Counters::new()).is_deny());
    let small = json!({"amount": 10});
    assert!(decide(&p, &call("create_refund", &small), &Counters::new()).is_allow());
    let none = json!({});
    assert!(decide(&p, &call("create_refund", &none), &Counters::new()).is_allow());
}

#[test]
fn limits_charge_the_tool_and_the_wildcard_counters() {
    let p = example();
    let args = json!({});
    let c = call("get_profiles", &args);
    let Decision::Allow { charges } = decide(&p, &c, &Counters::new()) else { panic!() };
    let names: Vec<&str> = charges.iter().map(|c| c.key.counter.as_str()).collect();
    assert_eq!(names, ["get_profiles_per_minute", "all_calls"]);
    assert_eq!(charges[0].key.scope, ScopeKey::Grant("alice".into()));
    assert_eq!(charges[1].key.scope, ScopeKey::Global);
    assert_eq!(charges[0].key.window_start, 1_700_000_000 / 60 * 60);
    assert_eq!(counter_keys(&p, &c).len(), 2);
    let mut counters = Counters::new();
    counters.insert(charges[0].key.clone(), 2.0);
    let d = decide(&p, &c, &counters);
    assert!(matches!(d, Decision::Deny { ref rule, .. } if rule == "tools.get_profiles.limits[0]"), "{d:?}");
    // Another identity has its own count.
    let bob = Call { identity: "bob", ..c };
    assert!(decide(&p, &bob, &counters).is_allow());
    // The next minute starts afresh.
    let later = Call { at: c.at + 60, ..c };
    assert!(decide(&p, &later, &counters).is_allow());
}

#[test]
fn approval_carries_charges_and_deny_beats_approve() {
    let p = policy(json!({"version":"1","tools":{
        "delete_profile":{"action":"approve","reason":"Destructive",
            "deny_if":[{"conditions":[{"path":"args.id","op":"eq","value":"admin"}],"on_deny":"never the admin"}],
            "limits":[{"counter":"d","window":60,"max":1}]}}}));
    let args = json!({"id": "u1"});
    let d = decide(&p, &call("delete_profile", &args), &Counters::new());
    let Decision::NeedsApproval { reason, rule, charges } = d else { panic!("{d:?}") };
    assert_eq!((reason.as_str(), rule.as_str(), charges.len()), ("Destructive", "tools.delete_profile.action", 1));
    let admin = json!({"id": "admin"});
    assert!(decide(&p, &call("delete_profile", &admin), &Counters::new()).is_deny());
}

#[test]
fn spend_caps_count_the_argument_and_refuse_what_cannot_be_counted() {
    let p = policy(json!({"version":"1","tools":{"pay":{"limits":[
        {"counter":"spend","window":"day","max":100,"increment_from":"args.amount","scope":"global"}]}}}));
    let mut counters = Counters::new();
    let a = json!({"amount": 60});
    let Decision::Allow { charges } = decide(&p, &call("pay", &a), &counters) else { panic!() };
    assert_eq!(charges[0].amount, 60.0);
    counters.insert(charges[0].key.clone(), 60.0);
    assert!(decide(&p, &call("pay", &a), &counters).is_deny());
    let b = json!({"amount": 40});
    assert!(decide(&p, &call("pay", &b), &counters).is_allow());
    for bad in [json!({}), json!({"amount": -5}), json!({"amount": "lots"}), json!({"amount": [1]})] {
        assert!(decide(&p, &call("pay", &bad), &Counters::new()).is_deny(), "{bad}");
    }
}

#[test]
fn operators_behave_as_documented() {
    let cases: Vec<(Value, Value, bool)> = vec![
        (json!({"op":"eq","value":1}), json!(1.0), true),
        (json!({"op":"neq","value":"a"}), json!("b"), true),
        (json!({"op":"in","value":["a","b"]}), json!("b"), true),
        (json!({"op":"not_in","value":["a","b"]}), json!("c"), true),
        (json!({"op":"lt","value":5}), json!(4), true),
        (json!({"op":"lte","value":5}), json!(5), true),
        (json!({"op":"gte","value":5}), json!(4), false),
        (json!({"op":"regex","value":"^/etc/"}), json!("/etc/passwd"), true),
        (json!({"op":"regex","value":"^/etc/"}), json!(["/tmp/x", "/etc/x"]), true),
        (json!({"op":"contains","value":"rm -rf"}), json!("sudo rm -rf /"), true),
        (json!({"op":"contains","value":"x"}), json!(["y", "x"]), true),
        (json!({"op":"exists"}), json!(null), true),
        (json!({"op":"gt","value":5}), json!("not a number"), false),
    ];
    for (cond, arg, expected) in cases {
        let mut c = cond.clone();
        c["path"] = json!("args.v");
        let p = policy(json!({"version":"1","default":"allow","tools":{"*":{"deny_if":[{"conditions":[c]}]}}}));
        let args = json!({"v": arg});
        assert_eq!(decide(&p, &call("t", &args), &Counters::new()).is_deny(), expected, "{cond} on {arg}");
    }
}

#[test]
fn explain_names_the_condition_that_matched() {
    let p = example();
    let big = json!({"amount": 6000});
    let (d, steps) = explain(&p, &call("create_refund", &big), &Counters::new());
    assert!(d.is_deny());
    assert!(
        steps.iter().any(|s| s == "tools.create_refund.deny_if[0]: args.amount gt 5000 (value 6000) holds"),
        "{steps:#?}"
    );
}

#[test]
fn seconds_windows_are_fixed_buckets_from_the_epoch() {
    assert_eq!(Window::Seconds(30).start(95), 90);
    assert_eq!(Window::Day.start(86_400 * 3 + 5), 86_400 * 3);
    assert_eq!(Window::Minute.start(-1), -60);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("*".to_string()), "[a-c]{1,2}"]
    }

    fn arb_policy() -> impl Strategy<Value = Value> {
        let rule = (
            prop::option::of(prop_oneof![Just("allow"), Just("deny"), Just("approve")]),
            prop::option::of(1u32..5),
            prop::option::of((prop_oneof![Just("eq"), Just("gt"), Just("exists"), Just("regex")], 0i64..10)),
        )
            .prop_map(|(action, max, cond)| {
                let mut r = serde_json::Map::new();
                if let Some(a) = action {
                    r.insert("action".into(), json!(a));
                }
                if let Some(m) = max {
                    r.insert("limits".into(), json!([{"counter": format!("c{m}"), "window": "minute", "max": m}]));
                }
                if let Some((op, v)) = cond {
                    let value = match op {
                        "regex" => json!(format!("^{v}")),
                        "exists" => json!(true),
                        _ => json!(v),
                    };
                    r.insert("deny_if".into(), json!([{"conditions": [{"path": "args.x", "op": op, "value": value}]}]));
                }
                Value::Object(r)
            });
        (
            prop_oneof![Just("allow"), Just("deny")],
            prop::collection::vec("[a-c]{1,2}", 0..3),
            prop::collection::btree_map(names(), rule, 0..4),
        )
            .prop_map(|(default, hide, tools)| {
                let tools: serde_json::Map<String, Value> =
                    tools.into_iter().filter(|(k, _)| !hide.contains(k)).collect();
                json!({"version": "1", "default": default, "hide": hide, "tools": tools})
            })
    }

    /// Policies whose counter names collide with different settings are rejected by compile; skip those.
    fn compiled(v: &Value) -> Option<CompiledPolicy> {
        load(&Source::new(Syntax::Json, v.to_string())).ok()
    }

    proptest! {
        #[test]
        fn never_panics_on_any_arguments(p in arb_policy(), tool in names(), args in arb_json()) {
            if let Some(p) = compiled(&p) {
                let _ = explain(&p, &call(&tool, &args), &Counters::new());
            }
        }

        #[test]
        fn hidden_tools_are_always_refused(p in arb_policy(), args in arb_json()) {
            if let Some(c) = compiled(&p) {
                for name in p["hide"].as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    prop_assert!(decide(&c, &call(name, &args), &Counters::new()).is_deny());
                }
            }
        }

        #[test]
        fn default_deny_refuses_unknown_tools(p in arb_policy(), args in arb_json()) {
            if let Some(c) = compiled(&p).filter(|_| p["default"] == "deny") {
                prop_assert!(decide(&c, &call("zz_unlisted", &args), &Counters::new()).is_deny());
            }
        }

        #[test]
        fn deny_beats_allow(p in arb_policy(), tool in "[a-c]{1,2}", args in arb_json()) {
            // Add an explicit deny for the tool (or on "*"): whatever else the policy says, the call is refused.
            let mut p = p;
            p["hide"] = json!([]);
            let entry = p["tools"].as_object_mut().unwrap().entry(tool.clone()).or_insert(json!({}));
            entry["action"] = json!("deny");
            if let Some(c) = compiled(&p) {
                prop_assert!(decide(&c, &call(&tool, &args), &Counters::new()).is_deny());
            }
        }

        #[test]
        fn limits_never_admit_more_than_max_per_window(max in 1u32..6, calls in 1usize..20, step in 1i64..20) {
            let p = policy(json!({"version":"1","tools":{"t":{"limits":[
                {"counter":"c","window":"minute","max":max,"scope":"global"}]},
                "*":{"limits":[{"counter":"all","window":60,"max":1000,"scope":"session"}]}}}));
            let args = json!({});
            let mut counters = Counters::new();
            let mut admitted: std::collections::HashMap<i64, u32> = Default::default();
            for i in 0..calls {
                let c = Call { at: 1_700_000_000 + i as i64 * step, ..call("t", &args) };
                if let Decision::Allow { charges } = decide(&p, &c, &counters) {
                    *admitted.entry(Window::Minute.start(c.at)).or_default() += 1;
                    for ch in charges {
                        *counters.entry(ch.key).or_default() += ch.amount;
                    }
                }
            }
            prop_assert!(admitted.values().all(|n| *n <= max), "{admitted:?}");
        }

        #[test]
        fn spend_caps_never_admit_more_than_max_per_window(
            amounts in prop::collection::vec(0u32..400, 1..30), max in 1u32..1000,
        ) {
            let p = policy(json!({"version":"1","tools":{"pay":{"limits":[
                {"counter":"spend","window":"day","max":max,"scope":"global","increment_from":"args.amount"}]}}}));
            let mut counters = Counters::new();
            let mut spent = 0u64;
            for amount in amounts {
                let args = json!({"amount": amount});
                if let Decision::Allow { charges } = decide(&p, &call("pay", &args), &counters) {
                    spent += u64::from(amount);
                    for ch in charges {
                        *counters.entry(ch.key).or_default() += ch.amount;
                    }
                }
            }
            prop_assert!(spent <= u64::from(max), "spent {spent} of {max}");
        }
    }
}
