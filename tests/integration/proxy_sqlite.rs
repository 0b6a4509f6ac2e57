//! Counters in an SQLite file (`--state sqlite`, `--state sqlite:PATH`): real proxy processes in front of the
//! python fixture server, sharing one real database file.

use serde_json::json;

use super::{
    ECHO_10_A_DAY, HttpProxy, StdioProxy, allowed, calls_received, server_args, strs, text,
    thirty_two_concurrent_callers_get_exactly_ten,
};
use crate::util::Env;

#[test]
fn counters_in_the_catalogue_database_survive_a_proxy_restart() {
    let env = Env::new();
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":3,"scope":"global"}]}}}"#;
    let mut first = StdioProxy::start(&env, policy, &["--state", "sqlite"]);
    assert!(allowed(&first.call("echo", json!({"i": 1}))));
    assert!(allowed(&first.call("echo", json!({"i": 2}))));
    let (ok, stderr) = first.finish();
    assert!(ok, "{stderr}");
    let mut second = StdioProxy::start(&env, policy, &["--state", "sqlite"]);
    assert!(allowed(&second.call("echo", json!({"i": 3}))));
    let refused = second.call("echo", json!({"i": 4}));
    assert_eq!(text(&refused), "Refused by toolwarden: limit `echo_total` reached: 3 of 3 per day used");
    drop(second);
    // The in-memory default starts from zero, which is what --state sqlite is for.
    let mut memory = StdioProxy::start(&env, policy, &[]);
    assert!(allowed(&memory.call("echo", json!({"i": 5}))));
    assert_eq!(calls_received(&env).len(), 4);
}

#[test]
fn two_proxies_sharing_a_file_admit_exactly_the_limit_under_32_concurrent_callers() {
    let env = Env::new();
    let state = format!("sqlite:{}", env.path("state/counters.db").display());
    let mut args = vec!["--state", state.as_str()];
    let server = server_args();
    args.extend(strs(&server));
    let a = HttpProxy::start(&env, "a", ECHO_10_A_DAY, &args);
    let b = HttpProxy::start(&env, "b", ECHO_10_A_DAY, &args);
    thirty_two_concurrent_callers_get_exactly_ten(&env, &[&a.url, &b.url]);
    assert!(env.path("state/counters.db").is_file());
}

#[test]
fn spend_of_a_failed_call_is_given_back_and_kept_across_a_restart() {
    let env = Env::new();
    let state = format!("sqlite:{}", env.path("counters.db").display());
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"fail":{"limits":[{"counter":"spend","window":"day","max":100,"scope":"global","increment_from":"args.amount"}]},
               "echo":{"limits":[{"counter":"spend","window":"day","max":100,"scope":"global","increment_from":"args.amount"}]}}}"#;
    let mut proxy = StdioProxy::start(&env, policy, &["--state", &state]);
    // Two failing calls of 80: each is refunded, so the second fits too.
    assert_eq!(text(&proxy.call("fail", json!({"amount": 80}))), "failed on purpose");
    assert_eq!(text(&proxy.call("fail", json!({"amount": 80}))), "failed on purpose");
    // A successful one keeps its spend.
    assert!(allowed(&proxy.call("echo", json!({"amount": 80}))));
    drop(proxy);
    let mut proxy = StdioProxy::start(&env, policy, &["--state", &state]);
    let refused = proxy.call("echo", json!({"amount": 30}));
    assert_eq!(text(&refused), "Refused by toolwarden: limit `spend` reached: 80 of 100 per day used");
    assert!(allowed(&proxy.call("echo", json!({"amount": 20}))));
    assert_eq!(calls_received(&env), ["fail", "fail", "echo", "echo"]);
}

#[test]
fn a_bad_sqlite_state_is_refused_at_start() {
    let env = Env::new();
    env.write("p.json", r#"{"version":"1","default":"allow"}"#);
    env.write("not-a-db", "hello");
    let out = env.run(["proxy", "--policy", "p.json", "--state", "sqlite:not-a-db", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a toolwarden catalogue"));
    let out = env.run(["proxy", "--policy", "p.json", "--state", "sqlite:", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:PATH"));
}
