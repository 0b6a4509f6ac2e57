//! Classifier throughput on one core, against the baseline of only parsing the same tools with serde_json.
//!
//! `cargo bench --bench classify` generates a realistic set of tools (snake, camel, kebab and dotted names;
//! short and long descriptions; flat, nested and `$ref` schemas with action enums; annotated and not), then
//! times, on the current thread: parsing the JSON text into `Tool`s, classifying the parsed tools, and both.
//! Each figure is the median of several rounds after a warm-up. Printed as tools per second and as ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolwarden::classify::Classifier;
use toolwarden::model::Tool;

const TOOLS_BENCH: usize = 20_000;
const ROUNDS_BENCH: usize = 7;

/// `cargo test --all-targets` runs this file once as a smoke test (unoptimised, without `--bench`): a few tools
/// and one round are enough to show it works; `cargo bench` measures with the full set.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn tools_n() -> usize {
    if smoke() { 200 } else { TOOLS_BENCH }
}

fn rounds() -> usize {
    if smoke() { 1 } else { ROUNDS_BENCH }
}

const VERBS: &[&str] = &[
    "get", "list", "search", "create", "update", "delete", "run", "send", "refund", "archive", "query", "fetch", "set",
    "remove", "execute", "deploy", "cancel", "merge", "add", "describe",
];
const OBJECTS: &[&str] = &[
    "issue",
    "pull_request",
    "file",
    "customer",
    "payment",
    "invoice",
    "message",
    "channel",
    "table",
    "instance",
    "bucket",
    "subscription",
    "page",
    "block",
    "record",
    "workflow",
    "tab",
    "user",
    "branch",
    "secret",
];
const PREFIXES: &[&str] = &["", "github", "gitlab", "slack", "stripe", "aws", "notion", "browser", "db", "k8s"];

/// A deterministic pseudo-random sequence (no dependency, same set on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn name(rng: &mut Lcg, verb: &str, object: &str) -> String {
    let prefix = PREFIXES[rng.next(PREFIXES.len())];
    let base = match rng.next(4) {
        0 => format!("{verb}_{object}"),
        1 => {
            let mut s = verb.to_string();
            for part in object.split('_') {
                let mut c = part.chars();
                if let Some(f) = c.next() {
                    s.push(f.to_ascii_uppercase());
                    s.extend(c);
                }
            }
            s
        }
        2 => format!("{verb}-{}", object.replace('_', "-")),
        _ => format!("{object}_{verb}"),
    };
    match (prefix, rng.next(3)) {
        ("", _) => base,
        (p, 0) => format!("{p}.{base}"),
        (p, _) => format!("{p}_{base}"),
    }
}

fn description(rng: &mut Lcg, verb: &str, object: &str) -> Value {
    let object = object.replace('_', " ");
    let lead = format!("{}{} a {object} in the workspace.", verb[..1].to_uppercase(), &verb[1..]);
    let text = match rng.next(5) {
        0 => lead,
        1 => format!("{lead} Returns the {object} as JSON, including its id, title, owner and timestamps."),
        2 => format!(
            "{lead} Use this when the user asks about a {object}. Supports pagination with `cursor` and `limit`. \
             Requires the `{object}:write` scope. Errors: 404 when the {object} does not exist, 403 when the token \
             lacks access, 429 when rate limited. This operation is idempotent and safe to retry."
        ),
        3 => format!("Notion | {lead} Error Responses: 400: Bad request"),
        _ => return Value::Null,
    };
    Value::String(text)
}

fn schema(rng: &mut Lcg, object: &str) -> Value {
    let id = format!("{object}_id");
    match rng.next(4) {
        0 => json!({"type": "object", "properties": {id.clone(): {"type": "string"}}, "required": [id]}),
        1 => json!({
            "type": "object",
            "properties": {
                id: {"type": "string", "description": "The identifier."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "cursor": {"type": "string"},
                "filter": {"type": "object", "properties": {"status": {"type": "string", "enum": ["open", "closed"]}}},
            },
        }),
        2 => json!({
            "type": "object",
            "properties": {
                "action": {"$ref": "#/$defs/Action"},
                "options": {"$ref": "#/$defs/Options"},
                id: {"type": "string"},
            },
            "$defs": {
                "Action": {"type": "string", "enum": ["list", "get", "create", "update", "delete"]},
                "Options": {"type": "object", "properties": {"force": {"type": "boolean"}, "dryRun": {"type": "boolean"}}},
            },
        }),
        _ => json!({
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "description": "Amount in cents"},
                "currency": {"type": "string"},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}},
            },
        }),
    }
}

fn generate() -> String {
    let mut rng = Lcg(42);
    let mut tools = Vec::with_capacity(tools_n());
    for _ in 0..tools_n() {
        let verb = VERBS[rng.next(VERBS.len())];
        let object = OBJECTS[rng.next(OBJECTS.len())];
        let mut tool = json!({"name": name(&mut rng, verb, object), "inputSchema": schema(&mut rng, object)});
        let description = description(&mut rng, verb, object);
        if !description.is_null() {
            tool["description"] = description;
        }
        if rng.next(2) == 0 {
            tool["annotations"] =
                json!({"readOnlyHint": rng.next(2) == 0, "destructiveHint": rng.next(3) == 0, "openWorldHint": false});
        }
        tools.push(tool);
    }
    serde_json::to_string(&json!({"tools": tools})).unwrap()
}

#[derive(serde::Deserialize)]
struct Capture {
    tools: Vec<Tool>,
}

/// Time this thread has spent on a CPU (Linux: `/proc/thread-self/schedstat`, nanoseconds). On a shared,
/// loaded machine wall-clock time includes waiting for a core; on-CPU time is what one core needs.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// Median wall-clock and on-CPU time of `f` over [`rounds`] rounds, after one warm-up round.
fn median(mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    f();
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..rounds() {
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        f();
        walls.push(wall0.elapsed());
        if let (Some(a), Some(b)) = (cpu0, cpu_time()) {
            cpus.push(b - a);
        }
    }
    walls.sort();
    cpus.sort();
    (walls[rounds() / 2], cpus.get(cpus.len() / 2).copied())
}

fn rate(d: Duration) -> f64 {
    tools_n() as f64 / d.as_secs_f64()
}

fn main() {
    let text = generate();
    let classifier = Classifier::builtin();
    let parsed: Vec<Tool> = serde_json::from_str::<Capture>(&text).unwrap().tools;

    let parse = median(|| {
        let capture: Capture = serde_json::from_str(black_box(&text)).unwrap();
        black_box(capture.tools.len());
    });
    let classify = median(|| {
        for tool in &parsed {
            black_box(classifier.classify(black_box(tool)));
        }
    });
    let both = median(|| {
        let capture: Capture = serde_json::from_str(black_box(&text)).unwrap();
        for tool in &capture.tools {
            black_box(classifier.classify(tool));
        }
    });

    println!("classify benchmark: {} generated tools, {} bytes of JSON, one thread", tools_n(), text.len());
    for (label, time) in [("wall clock", 0), ("on-CPU time", 1)] {
        let pick = |m: (Duration, Option<Duration>)| if time == 0 { Some(m.0) } else { m.1 };
        let (Some(p), Some(c), Some(b)) = (pick(parse), pick(classify), pick(both)) else { continue };
        println!("  by {label}:");
        println!("    parse only (serde_json, baseline): {:>9.0} tools/s  ({p:.1?})", rate(p));
        println!("    classify only (parsed tools):      {:>9.0} tools/s  ({c:.1?})", rate(c));
        println!("    parse + classify:                  {:>9.0} tools/s  ({b:.1?})", rate(b));
        println!(
            "    classify takes {:.2}x the time of parsing; parse + classify takes {:.2}x parse alone",
            c.as_secs_f64() / p.as_secs_f64(),
            b.as_secs_f64() / p.as_secs_f64()
        );
    }
}
