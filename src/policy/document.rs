//! The policy document as a person writes it: serde types with `deny_unknown_fields`, and the JSON Schema
//! derived from them.
//!
//! The closed vocabularies (`Action`, `Window`, `Scope`, `Op`, `DefaultAction`) are enums parsed once at the
//! boundary. Their `Deserialize` impls are written by hand so that an unknown word is reported the same way
//! everywhere: `unknown operator "greater"; expected one of eq, neq, ...`. The document types only describe
//! shape; meaning (regexes that compile, paths that point into `args`, counters that agree) is checked in
//! `check.rs`, which turns a `Policy` into a `CompiledPolicy`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "toolwarden policy", description = "What an MCP client may call through the toolwarden proxy.")]
pub struct Policy {
    /// Editors' schema hint; ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version: `"1"` (the number `1` is accepted too, as YAML writes it).
    #[serde(deserialize_with = "version_text")]
    #[schemars(schema_with = "version_schema")]
    pub version: String,
    /// What happens to a tool with no entry in `tools` (the `"*"` entry does not count as an entry).
    #[serde(default)]
    pub default: DefaultAction,
    /// Tools removed from `tools/list` and refused when called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide: Vec<String>,
    /// One entry per tool name (exact match). `"*"` applies to every tool in addition to its own entry.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolRule>,
}

/// What the policy says about one tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// `allow` (the default for a listed tool), `deny`, or `approve` (a person approves each call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Counters that cap how often (or how much) the tool is called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    /// A call is refused when all conditions of any entry hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_if: Vec<DenyIf>,
    /// Why the rule is what it is; the text the agent sees when the call is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ToolRule {
    /// What the rule does to calls, in one or two sentences for people (the web console's tool page):
    /// `Each call waits for a person's approval. At most 10 calls a minute per caller.`
    pub fn describe(&self) -> String {
        let mut out = vec![match self.action {
            Some(Action::Deny) => "The tool is hidden from the agent and every call is refused.".to_string(),
            Some(Action::Approve) => "Each call waits until a person approves or denies it.".to_string(),
            _ => "Calls are allowed.".to_string(),
        }];
        for limit in &self.limits {
            let who = match limit.scope {
                Scope::Global => "for all callers together",
                Scope::Grant => "per caller",
                Scope::Session => "per session",
            };
            let window = match limit.window {
                Window::Minute => "a minute".to_string(),
                Window::Hour => "an hour".to_string(),
                Window::Day => "a day".to_string(),
                Window::Seconds(n) => format!("every {n} seconds"),
            };
            out.push(match &limit.increment_from {
                Some(path) => format!("At most {} in total of {path} {window} {who}.", limit.max),
                None => format!("At most {} calls {window} {who}.", limit.max),
            });
        }
        for entry in &self.deny_if {
            let tests: Vec<String> = entry
                .conditions
                .iter()
                .map(|c| match (&c.op, &c.value) {
                    (Op::Exists, Some(Value::Bool(false))) => format!("{} is absent", c.path),
                    (Op::Exists, _) => format!("{} is given", c.path),
                    (op, Some(v)) => format!("{} {} {v}", c.path, op_words(*op)),
                    (op, None) => format!("{} {}", c.path, op_words(*op)),
                })
                .collect();
            out.push(if tests.is_empty() {
                "Every call is refused.".to_string()
            } else {
                format!("A call is refused when {}.", tests.join(" and "))
            });
        }
        out.join(" ")
    }
}

fn op_words(op: Op) -> &'static str {
    match op {
        Op::Eq => "is",
        Op::Neq => "is not",
        Op::In => "is one of",
        Op::NotIn => "is none of",
        Op::Lt => "is below",
        Op::Lte => "is at most",
        Op::Gt => "is above",
        Op::Gte => "is at least",
        Op::Regex => "matches",
        Op::Contains => "contains",
        Op::Exists => "exists",
    }
}

/// A counter with a window and a maximum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Counter name; limits with the same name and scope share one count.
    pub counter: String,
    /// `minute`, `hour`, `day` (UTC calendar windows) or a number of seconds (fixed buckets from the epoch).
    pub window: Window,
    /// The most the counter may reach within one window.
    pub max: Quantity,
    /// Who shares the count: `global`, `grant` (per caller identity; the default) or `session`.
    #[serde(default)]
    pub scope: Scope,
    /// Count this argument's value (e.g. `args.amount`) instead of 1 per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment_from: Option<String>,
}

/// Refuse a call when all its conditions hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyIf {
    /// All must hold; an empty list always holds.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The text the agent sees when this refuses a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_deny: Option<String>,
}

/// A test on one argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// `args.a.b` (array elements by index: `args.items.0`).
    pub path: String,
    pub op: Op,
    /// What to compare with (a list for `in`/`not_in`, a pattern for `regex`, a boolean for `exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// `version: 1` in YAML is an integer; people write it that way, so accept a number and keep its text.
fn version_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a version (\"1\")")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "description": "Format version.", "enum": ["1", 1] })
}

/// A non-negative amount written as a JSON number; integral values are written back without a fraction, so
/// `"max": 30` round-trips as `30`, not `30.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Quantity(pub f64);

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 9.0e15 { s.serialize_i64(v as i64) } else { s.serialize_f64(v) }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Declares a closed string vocabulary: `as_str`, `ALL`, `FromStr`, `Display`, and a `Deserialize` whose
/// error names the kind and lists what was expected.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The words accepted, comma-separated, for error messages.
            pub const EXPECTED: &'static str = word_enum!(@join $($word),+);

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { kind: $kind, value: s.to_string(), expected: $name::EXPECTED }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} (one of {})", $kind, $name::EXPECTED)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
    (@join $first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

/// A word that is not in a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of {expected}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

word_enum!(
    /// What happens to a call of a listed tool.
    Action, "action", {
        Allow = "allow",
        Deny = "deny",
        /// A person must approve each call.
        Approve = "approve",
    }
);

word_enum!(
    /// What happens to a tool that has no entry.
    DefaultAction, "default", { Allow = "allow", Deny = "deny" }
);

word_enum!(
    /// Who shares a counter.
    #[derive(Default)]
    Scope, "scope", {
        /// All callers, all proxy replicas.
        Global = "global",
        /// Per caller identity.
        #[default]
        Grant = "grant",
        /// Per MCP session.
        Session = "session",
    }
);

word_enum!(
    /// Condition operators.
    Op, "operator", {
        Eq = "eq", Neq = "neq", In = "in", NotIn = "not_in", Lt = "lt", Lte = "lte", Gt = "gt", Gte = "gte",
        Regex = "regex", Contains = "contains", Exists = "exists",
    }
);

impl Default for DefaultAction {
    /// A policy that forgets to say is closed.
    fn default() -> Self {
        DefaultAction::Deny
    }
}

/// A counter window: UTC calendar minute/hour/day, or fixed buckets of N seconds counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Minute,
    Hour,
    Day,
    Seconds(u64),
}

impl Window {
    pub const EXPECTED: &'static str = "minute, hour, day, or a positive number of seconds";

    /// Length in seconds (a UTC day has 86400 Unix seconds; leap seconds do not exist in Unix time).
    pub fn seconds(self) -> u64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
            Window::Seconds(n) => n,
        }
    }

    /// The start (Unix seconds) of the window that contains `now`: the bucket a counter store counts in.
    pub fn bucket(self, now: u64) -> u64 {
        now - now % self.seconds().max(1)
    }

    /// The start (Unix seconds) of the window that contains `t`.
    pub fn start(self, t: i64) -> i64 {
        let len = self.seconds().max(1) as i64;
        t.div_euclid(len) * len
    }
}

impl FromStr for Window {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minute" => Ok(Window::Minute),
            "hour" => Ok(Window::Hour),
            "day" => Ok(Window::Day),
            _ => match s.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Window::Seconds(n)),
                _ => Err(UnknownWord { kind: "window", value: s.to_string(), expected: Window::EXPECTED }),
            },
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Minute => f.pad("minute"),
            Window::Hour => f.pad("hour"),
            Window::Day => f.pad("day"),
            Window::Seconds(n) => f.pad(&format!("{n}s")),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Window::Seconds(n) => s.serialize_u64(*n),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a window ({})", Window::EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Window, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Window, E> {
                if v == 0 {
                    return Err(E::custom(format!("window of 0 seconds; expected {}", Window::EXPECTED)));
                }
                Ok(Window::Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Window, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("window of {v} seconds; expected {}", Window::EXPECTED))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Window, E> {
                if v.fract() == 0.0 && (1.0..1.0e15).contains(&v) {
                    return Ok(Window::Seconds(v as u64));
                }
                Err(E::custom(format!("window of {v} seconds; expected {}", Window::EXPECTED)))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Window {
    fn schema_name() -> Cow<'static, str> {
        "Window".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A UTC calendar window (minute, hour, day) or fixed buckets of this many seconds.",
            "oneOf": [
                { "type": "string", "enum": ["minute", "hour", "day"] },
                { "type": "integer", "minimum": 1 }
            ]
        })
    }
}

/// The JSON Schema of the policy format, as committed in `schemas/policy.schema.json`.
pub fn schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<Policy>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}
