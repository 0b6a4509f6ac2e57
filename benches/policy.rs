//! How long `policy::decide` takes per call, against a baseline every proxy pays anyway: parsing the call's
//! arguments from JSON text. Run: `cargo bench --bench policy`.

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use toolwarden::policy::{Call, CompiledPolicy, Counters, Source, Syntax, decide, load};

fn main() {
    divan::main();
}

const SHOP: &str = include_str!("../data/policies/shop.json");
const FS: &str = include_str!("../data/policies/filesystem.yaml");

const ARGS: &str = r#"{"amount": 1200, "charge_id": "ch_3PqK8x2eZvKYlo2C0", "reason": "duplicate order", "path": "reports/2026/q3.csv"}"#;

fn shop() -> CompiledPolicy {
    load(&Source::new(Syntax::Json, SHOP)).unwrap()
}

/// Baseline: parse the arguments of one call (the proxy does this for every call before any policy runs).
#[divan::bench]
fn baseline_parse_args(b: Bencher) {
    b.bench(|| serde_json::from_str::<Value>(black_box(ARGS)).unwrap());
}

/// A call with a `deny_if` on a numeric argument and the `"*"` limit.
#[divan::bench]
fn decide_refund_with_cap(b: Bencher) {
    let p = shop();
    let args: Value = serde_json::from_str(ARGS).unwrap();
    let counters = Counters::new();
    b.bench(|| {
        let call =
            Call { tool: "create_refund", arguments: &args, identity: "alice", session: "s1", at: 1_700_000_000 };
        decide(black_box(&p), black_box(&call), &counters)
    });
}

/// A call with two limits (own and `"*"`) and counters already filled in.
#[divan::bench]
fn decide_rate_limited_read(b: Bencher) {
    let p = shop();
    let args = json!({});
    let mut counters = Counters::new();
    let call = Call { tool: "get_profiles", arguments: &args, identity: "alice", session: "s1", at: 1_700_000_000 };
    for key in toolwarden::policy::counter_keys(&p, &call) {
        counters.insert(key, 10.0);
    }
    b.bench(|| decide(black_box(&p), black_box(&call), &counters));
}

/// Two regex conditions on a path argument (the filesystem example).
#[divan::bench]
fn decide_path_regexes(b: Bencher) {
    let p = load(&Source::new(Syntax::Yaml, FS)).unwrap();
    let args = json!({"path": "/home/me/projects/toolwarden/src/policy/decide.rs"});
    let counters = Counters::new();
    b.bench(|| {
        let call =
            Call { tool: "read_text_file", arguments: &args, identity: "alice", session: "s1", at: 1_700_000_000 };
        decide(black_box(&p), black_box(&call), &counters)
    });
}

/// Loading (parse + compile) the shop policy: what a hot reload costs.
#[divan::bench]
fn load_shop_policy() -> CompiledPolicy {
    shop()
}
