//! Recommended policies from classified tools: one rule per tool, with its reason written next to it.
//!
//! Pure: the caller fetches `ToolRecord`s from the catalogue; this maps them to a [`Policy`] through a table
//! per [`Profile`] (documented in `doc/policy.md`). Output is deterministic: tools are keyed in a `BTreeMap`,
//! counters are named after tools, and nothing depends on input order except which record wins when two
//! servers offer the same name (the more severe one wins, whatever the order).
//!
//! Server-supplied text never relaxes a rule. The classifier reads descriptions and annotations, which a
//! server controls; here a second, deliberately blunt reading of the tool's *name* and *input schema* sets a
//! floor: a tool whose name or schema shows deletion, payment or code execution is gated whatever its
//! description claims, and the rule's `reason` says so.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use super::document::{
    Action, Condition, DefaultAction, DenyIf, Limit, Op, Policy, Quantity, Scope, ToolRule, UnknownWord, Window,
};
use crate::model::{Category, Risk, Tool, ToolRecord};

/// How strict the recommendations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    Strict,
    Balanced,
    Permissive,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Strict, Profile::Balanced, Profile::Permissive];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Strict => "strict",
            Profile::Balanced => "balanced",
            Profile::Permissive => "permissive",
        }
    }

    /// Calls a minute for a read tool, a write tool, a gated tool, and for all tools together.
    fn per_minute(self) -> (u32, u32, u32, u32) {
        match self {
            Profile::Strict => (60, 10, 5, 60),
            Profile::Balanced => (120, 30, 10, 120),
            Profile::Permissive => (300, 60, 20, 300),
        }
    }

    /// Largest single amount, and the most per day, for financial tools (in the tool's own unit).
    fn amount_caps(self) -> (u32, u32) {
        match self {
            Profile::Strict => (100, 500),
            Profile::Balanced => (1000, 5000),
            Profile::Permissive => (10_000, 50_000),
        }
    }
}

impl FromStr for Profile {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownWord {
            kind: "profile",
            value: s.to_string(),
            expected: "strict, balanced, permissive",
        })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The recommended policy for these tools under `profile`.
pub fn generate(records: &[ToolRecord], profile: Profile) -> Policy {
    // One entry per tool name; when servers share a name, the strictest of their rules applies, with the
    // argument conditions of all of them.
    let mut by_name: BTreeMap<&str, Vec<&ToolRecord>> = BTreeMap::new();
    for r in records {
        by_name.entry(r.tool.name.as_str()).or_default().push(r);
    }
    let mut tools: BTreeMap<String, ToolRule> =
        by_name.into_iter().map(|(name, rs)| (name.to_string(), combined_rule(&rs, profile))).collect();
    unique_counters(&mut tools);
    let (_, _, _, all) = profile.per_minute();
    tools.insert(
        "*".to_string(),
        ToolRule {
            limits: vec![per_minute("all_calls_per_minute", all)],
            reason: Some(format!("Every tool together: at most {all} calls a minute per caller ({profile} profile).")),
            ..ToolRule::default()
        },
    );
    Policy { schema: None, version: "1".into(), default: DefaultAction::Deny, hide: Vec::new(), tools }
}

/// Counter names are built from tool and argument names, so two tools can arrive at the same one (`a` with
/// `b_amount`, `a_b` with `amount`); a generated policy must always compile, so later ones get a suffix.
fn unique_counters(tools: &mut BTreeMap<String, ToolRule>) {
    let mut used: std::collections::HashSet<String> = ["all_calls_per_minute".to_string()].into();
    for rule in tools.values_mut() {
        for limit in &mut rule.limits {
            let mut candidate = limit.counter.clone();
            let mut n = 2;
            while used.contains(&candidate) {
                candidate = format!("{}_{n}", limit.counter);
                n += 1;
            }
            limit.counter = candidate.clone();
            used.insert(candidate);
        }
    }
}

/// The rule for a name that one or more servers offer. Ordered by strictness, then by content, so the result
/// does not depend on the order of the records.
fn combined_rule(records: &[&ToolRecord], profile: Profile) -> ToolRule {
    let strictness = |rule: &ToolRule| match rule.action {
        Some(Action::Deny) => 0,
        Some(Action::Approve) => 1,
        _ => 2,
    };
    let mut rules: Vec<(ToolRule, String)> = records
        .iter()
        .map(|r| {
            let rule = rule_for(r, profile);
            let key = serde_json::to_string(&rule).unwrap_or_default();
            (rule, key)
        })
        .collect();
    rules.sort_by(|(a, ka), (b, kb)| strictness(a).cmp(&strictness(b)).then_with(|| ka.cmp(kb)));
    rules.dedup_by(|(_, a), (_, b)| a == b);
    let mut iter = rules.into_iter().map(|(rule, _)| rule);
    let Some(mut base) = iter.next() else { return ToolRule::default() };
    let others: Vec<ToolRule> = iter.collect();
    if others.is_empty() {
        return base;
    }
    for other in &others {
        for entry in &other.deny_if {
            if !base.deny_if.contains(entry) {
                base.deny_if.push(entry.clone());
            }
        }
        if base.action != Some(Action::Deny) {
            for limit in &other.limits {
                if !base.limits.iter().any(|l| l.counter == limit.counter) {
                    base.limits.push(limit.clone());
                }
            }
        }
    }
    let note = format!(
        " {} servers offer a tool of this name with different definitions: the strictest rule applies, with the \
         argument conditions of all.",
        others.len() + 1
    );
    base.reason = Some(base.reason.unwrap_or_default() + &note);
    base
}

/// What the tool's own name and schema show, independent of anything the server says about it.
#[derive(Debug, Default, Clone)]
struct Floor {
    category: Option<Category>,
    /// `name word "delete"`, `schema property "command"`.
    because: Vec<String>,
}

const DESTRUCTIVE_WORDS: &[&str] =
    &["delete", "remove", "drop", "destroy", "purge", "wipe", "erase", "truncate", "rm", "rmdir", "unlink"];
const FINANCIAL_WORDS: &[&str] =
    &["pay", "payment", "refund", "charge", "transfer", "withdraw", "payout", "purchase", "buy", "checkout"];
const EXECUTE_WORDS: &[&str] = &["exec", "execute", "eval", "shell", "bash", "command", "cmd", "script", "spawn"];
const EXECUTE_PROPS: &[&str] = &["command", "cmd", "script", "code", "sql", "shell", "query_sql", "expression"];
const AMOUNT_PROPS: &[&str] = &["amount", "amount_cents", "price", "total", "cost", "fee", "value_cents", "sum"];
const PATH_PROPS: &[&str] = &[
    "path",
    "file",
    "filename",
    "filepath",
    "file_path",
    "dir",
    "directory",
    "folder",
    "source",
    "destination",
    "src",
    "dst",
    "target",
    "paths",
];
const OWNER_PROPS: &[&str] = &["owner", "org", "organization", "namespace", "repo", "repository", "project"];
const ACTION_PROPS: &[&str] = &["action", "operation", "op", "mode", "method", "command"];

fn floor(tool: &Tool) -> Floor {
    let mut f = Floor::default();
    let mut raise = |c: Category, why: String| {
        if f.category.is_none_or(|old| c.severity() > old.severity() || (c == Category::Financial && old != c)) {
            f.category = Some(c);
        }
        if f.because.len() < 3 && !f.because.contains(&why) {
            f.because.push(why);
        }
    };
    let words = name_words(&tool.name);
    for (i, w) in words.iter().enumerate() {
        if DESTRUCTIVE_WORDS.contains(&w.as_str()) {
            raise(Category::Destructive, format!("name word {w:?}"));
        }
        if FINANCIAL_WORDS.contains(&w.as_str()) {
            raise(Category::Financial, format!("name word {w:?}"));
        }
        // "run" is a verb only near the front (`run_query`, `gitlab_run_pipeline`), not in `get_run_status`.
        if EXECUTE_WORDS.contains(&w.as_str()) || (w == "run" && i < 2) {
            raise(Category::Execute, format!("name word {w:?}"));
        }
    }
    for (name, prop) in properties(tool) {
        let lower = name.to_ascii_lowercase();
        if EXECUTE_PROPS.contains(&lower.as_str()) && is_type(prop, "string") {
            raise(Category::Execute, format!("schema property {name:?}"));
        }
        if (lower == "amount" || lower == "currency") && properties(tool).iter().any(|(n, _)| is_amount(n)) {
            raise(Category::Financial, format!("schema property {name:?}"));
        }
        if ACTION_PROPS.contains(&lower.as_str())
            && let Some(values) = prop.get("enum").and_then(Value::as_array)
        {
            for v in values.iter().filter_map(Value::as_str) {
                if name_words(v).iter().any(|w| DESTRUCTIVE_WORDS.contains(&w.as_str())) {
                    raise(Category::Destructive, format!("schema {name:?} value {v:?}"));
                }
            }
        }
    }
    f
}

/// Words of a tool name: snake_case, kebab-case, dotted, camelCase; lower-cased.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Top-level properties of the input schema, sorted by name.
fn properties(tool: &Tool) -> Vec<(&str, &Value)> {
    let mut props: Vec<(&str, &Value)> = tool
        .input_schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    props.sort_by(|a, b| a.0.cmp(b.0));
    props
}

fn is_type(prop: &Value, ty: &str) -> bool {
    match prop.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        // No declared type: assume it could be, so the rule errs on the side of applying.
        _ => true,
    }
}

/// A string, or a list of strings (regex conditions test every string element of a list).
fn is_text(prop: &Value) -> bool {
    let list_of_strings = prop.get("type").is_some_and(|t| t == "array")
        && prop.get("items").is_none_or(|items| is_type(items, "string"));
    list_of_strings || is_type(prop, "string")
}

fn is_amount(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    AMOUNT_PROPS.contains(&lower.as_str()) || lower.ends_with("_amount")
}

fn is_path(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    PATH_PROPS.contains(&lower.as_str()) || lower.ends_with("_path") || lower.ends_with("_file")
}

/// The category the rule is built for: the classifier's, raised (never lowered) by the name/schema floor.
fn effective(r: &ToolRecord) -> (Category, Floor) {
    let f = floor(&r.tool);
    let mut category = r.classification.category;
    if let Some(c) = f.category
        && c.severity() > category.severity()
    {
        category = c;
    }
    (category, f)
}

fn per_minute(counter: &str, max: u32) -> Limit {
    Limit {
        counter: counter.to_string(),
        window: Window::Minute,
        max: Quantity(f64::from(max)),
        scope: Scope::Grant,
        increment_from: None,
    }
}

fn rule_for(r: &ToolRecord, profile: Profile) -> ToolRule {
    let tool = &r.tool;
    let name = tool.name.as_str();
    let c = &r.classification;
    let (category, floor) = effective(r);
    let gated_by_floor = floor.category.is_some_and(|f| f.severity() >= Category::Execute.severity());
    let serious_finding = c.findings.iter().any(|f| f.severity >= Risk::High);
    let (read_max, write_max, gated_max, _) = profile.per_minute();

    let mut action = match (category, profile) {
        (Category::Read, _) | (Category::Write, _) => Action::Allow,
        (Category::Execute, Profile::Permissive) if !gated_by_floor => Action::Allow,
        (Category::Execute, _) => Action::Approve,
        (Category::Destructive, Profile::Strict) => Action::Deny,
        (Category::Destructive, _) | (Category::Financial, _) => Action::Approve,
    };
    let mut also = Vec::new();
    if action == Action::Allow && profile == Profile::Strict && c.risk >= Risk::High {
        action = Action::Approve;
        also.push(format!("{} risk needs approval under the strict profile", c.risk));
    }
    if serious_finding {
        let ids: Vec<&str> = c.findings.iter().filter(|f| f.severity >= Risk::High).map(|f| f.id.as_str()).collect();
        if action == Action::Allow && profile != Profile::Permissive {
            action = Action::Approve;
            also.push(format!("findings ({}) need approval", tidy(&ids.join(", "), 80)));
        } else {
            also.push(format!("findings: {}", tidy(&ids.join(", "), 80)));
        }
    }

    let mut rule = ToolRule { action: (action != Action::Allow).then_some(action), ..ToolRule::default() };
    let max = match (action, category) {
        (Action::Allow, Category::Read) => read_max,
        (Action::Allow, Category::Write) => write_max,
        _ => gated_max,
    };
    if action != Action::Deny {
        rule.limits.push(per_minute(&format!("{name}_per_minute"), max));
    }

    // Argument conditions where the schema shows them.
    let props = properties(tool);
    if action != Action::Deny {
        if category == Category::Financial
            && let Some((amount, _)) =
                props.iter().find(|(n, p)| is_amount(n) && (is_type(p, "number") || is_type(p, "integer")))
        {
            let (single, daily) = profile.amount_caps();
            let arg = format!("args.{amount}");
            rule.deny_if.push(DenyIf {
                conditions: vec![Condition { path: arg.clone(), op: Op::Gt, value: Some(json!(single)) }],
                on_deny: Some(format!("{amount} above {single} needs a person to make the call directly")),
            });
            also.push(format!("amounts ({amount}) above {single} are refused; at most {daily} a day in total"));
            rule.limits.push(Limit {
                counter: format!("{name}_{amount}_per_day"),
                window: Window::Day,
                max: Quantity(f64::from(daily)),
                scope: Scope::Global,
                increment_from: Some(arg),
            });
        }
        let path_props: Vec<&str> = props.iter().filter(|(n, p)| is_path(n) && is_text(p)).map(|(n, _)| *n).collect();
        if !path_props.is_empty() {
            also.push(format!(
                "paths ({}) with \"..\" or into credential or system directories are refused",
                path_props.join(", ")
            ));
        }
        for prop in path_props {
            let arg = format!("args.{prop}");
            rule.deny_if.push(DenyIf {
                conditions: vec![Condition {
                    path: arg.clone(),
                    op: Op::Regex,
                    // Also percent-encoded, for servers that decode what they are given.
                    value: Some(json!(r"(?i)(^|[/\\]|%2f|%5c)(\.|%2e){2}([/\\]|%2f|%5c|$)")),
                }],
                on_deny: Some(format!("{prop} must not climb out of its directory (\"..\")")),
            });
            rule.deny_if.push(DenyIf {
                conditions: vec![Condition {
                    path: arg,
                    op: Op::Regex,
                    value: Some(json!(
                        r"(^|[/\\])(\.ssh|\.aws|\.gnupg|\.kube|\.docker|\.netrc|\.env|\.git-credentials|id_rsa|id_ed25519)([/\\]|$)|^/(etc|root|proc|sys)([/\\]|$)"
                    )),
                }],
                on_deny: Some(format!("{prop} points at credentials or system files")),
            });
        }
        if category != Category::Read
            && profile != Profile::Permissive
            && let Some((owner, _)) = props
                .iter()
                .find(|(n, p)| OWNER_PROPS.contains(&n.to_ascii_lowercase().as_str()) && is_type(p, "string"))
        {
            also.push(format!("only allow-listed {owner} values (replace EDIT-ME in deny_if)"));
            rule.deny_if.push(DenyIf {
                conditions: vec![Condition {
                    path: format!("args.{owner}"),
                    op: Op::NotIn,
                    value: Some(json!(["EDIT-ME"])),
                }],
                on_deny: Some(format!(
                    "{owner} is not on the allow-list (edit the list in the policy to name the ones agents may change)"
                )),
            });
        }
    }

    rule.reason = Some(reason(r, category, &floor, gated_by_floor, action, max, profile, &also));
    rule
}

#[allow(clippy::too_many_arguments)]
fn reason(
    r: &ToolRecord,
    category: Category,
    floor: &Floor,
    gated_by_floor: bool,
    action: Action,
    max: u32,
    profile: Profile,
    also: &[String],
) -> String {
    let c = &r.classification;
    // A raised category brings at least its base risk.
    let risk = c.risk.max(category.base_risk());
    let mut out = format!("{}, {risk} risk", capitalise(category.as_str()));
    let evidence: Vec<String> =
        c.evidence.iter().take(3).map(|e| format!("{} \"{}\"", tidy(&e.field, 30), tidy(&e.text, 40))).collect();
    if !evidence.is_empty() {
        out.push_str(&format!(" ({})", evidence.join(", ")));
    }
    out.push_str(". ");
    out.push_str(&match action {
        Action::Allow => format!("Allowed, at most {max} calls a minute per caller."),
        Action::Approve => "Each call needs a person's approval.".to_string(),
        Action::Deny => format!("Refused under the {profile} profile; allow it by hand if you need it."),
    });
    if category != c.category {
        out.push_str(&format!(" Raised from {} by its {}.", c.category, floor.because.join(", ")));
    }
    if gated_by_floor && action != Action::Allow {
        out.push_str(&format!(
            " Its name or schema shows {} ({}): server-supplied descriptions and annotations cannot relax this.",
            match floor.category {
                Some(Category::Destructive) => "deletion",
                Some(Category::Financial) => "payment",
                _ => "code execution",
            },
            floor.because.join(", ")
        ));
    }
    for a in also {
        out.push_str(&format!(" {}.", capitalise(a)));
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |f| f.to_uppercase().chain(chars).collect())
}

/// Evidence quotes server text: keep it on one line, printable, and short.
fn tidy(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() || crate::model::text::is_invisible(c) || c == '"' { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.chars().count() > max {
        format!("{}…", cleaned.chars().take(max).collect::<String>())
    } else {
        cleaned
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
