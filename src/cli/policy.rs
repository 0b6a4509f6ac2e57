//! `toolwarden policy`: generate, check, explain and import policies.
//!
//! The work is in `crate::policy`; this file reads files, asks the catalogue for tools, and renders. `check`
//! exits 2 when the policy has errors and 0 otherwise; warnings go to stderr either way (they describe rules
//! that can never match, which is worth knowing but does not make the policy wrong). `generate` and `import`
//! always write policy JSON, so `--format` may only be `table` (the default) or `json` for them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::output::{self, Format, require_format};
use super::{Globals, Outcome, UsageError};
use crate::catalogue::Catalogue;
use crate::policy::{self, Counters, Decision, Diagnostic, Profile};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Generate a recommended policy from the catalogue
    Generate {
        /// Only these servers (repeatable)
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// How strict the recommendations are
        #[arg(long, default_value = "balanced", value_name = "strict|balanced|permissive")]
        profile: String,
        /// Write to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Validate a policy file (JSON or YAML): errors exit 2, warnings are printed and exit 0
    Check {
        /// The policy file (or, with --gateway, none: every server's file in --policy-dir)
        #[arg(required_unless_present = "gateway")]
        file: Option<PathBuf>,
        /// Compare with the tools of these catalogue servers only (default: all, when a catalogue exists)
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// Check the policies of a gateway: one per server of this servers file, in --policy-dir
        #[arg(long, value_name = "SERVERS_FILE", requires = "policy_dir", conflicts_with = "file")]
        gateway: Option<PathBuf>,
        /// Where the gateway's policies are (SERVER.policy.json)
        #[arg(long, value_name = "DIR", requires = "gateway")]
        policy_dir: Option<PathBuf>,
    },
    /// Show the decision a policy makes for one call, and why
    Explain {
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        tool: String,
        /// The call's arguments as JSON
        #[arg(long, value_name = "JSON")]
        args: Option<String>,
        /// The caller identity (scopes `grant` counters)
        #[arg(long, default_value = "anonymous", value_name = "ID")]
        identity: String,
    },
    /// Convert a rule-based YAML policy into ours
    Import {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the JSON Schema of the policy format
    #[command(hide = true)]
    Schema,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    match args.command {
        PolicyCommand::Generate { server, profile, out } => generate(&server, &profile, out.as_deref(), g),
        PolicyCommand::Check { file, server, gateway, policy_dir } => match (file, gateway, policy_dir) {
            (_, Some(servers), Some(dir)) => check_gateway(&servers, &dir, g),
            (Some(file), _, _) => check(&file, &server, g),
            _ => Err(UsageError("give a policy FILE, or --gateway SERVERS_FILE --policy-dir DIR".into()).into()),
        },
        PolicyCommand::Explain { file, tool, args, identity } => explain(&file, &tool, args.as_deref(), &identity, g),
        PolicyCommand::Import { file, out } => import(&file, out.as_deref(), g),
        PolicyCommand::Schema => {
            output::print(serde_json::to_string_pretty(&policy::schema())?)?;
            Ok(Outcome::Ok)
        }
    }
}

fn generate(servers: &[String], profile: &str, out: Option<&Path>, g: &Globals) -> anyhow::Result<Outcome> {
    require_format("policy generate", g.format, &[Format::Table, Format::Json])?;
    let profile: Profile = profile.parse().map_err(|e: policy::UnknownWord| UsageError(e.to_string()))?;
    let data_dir = g.data_dir();
    let catalogue =
        Catalogue::open(&data_dir).with_context(|| format!("opening the catalogue in {}", data_dir.display()))?;
    let records = catalogue.tools(servers).context("reading tools from the catalogue")?;
    if records.is_empty() {
        let which =
            if servers.is_empty() { "the catalogue".to_string() } else { format!("server(s) {}", servers.join(", ")) };
        return Err(UsageError(format!("no tools found for {which}; crawl or import some first")).into());
    }
    let generated = policy::generate(&records, profile);
    write_policy(&generated, out)?;
    if let Some(path) = out
        && !g.quiet
    {
        eprintln!("wrote a {profile} policy for {} tools to {}", generated.tools.len() - 1, path.display());
    }
    Ok(Outcome::Ok)
}

/// Generate the balanced policy for one stored server and write it to `path` (for `quickstart`).
/// Returns how many tools it has a rule for.
pub(super) fn write_recommended(server: &str, path: &Path, g: &Globals) -> anyhow::Result<usize> {
    let catalogue = Catalogue::open(&g.data_dir())?;
    let records = catalogue.tools(&[server.to_string()]).context("reading tools from the catalogue")?;
    let generated = policy::generate(&records, Profile::Balanced);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_policy(&generated, Some(path))?;
    Ok(records.len())
}

fn write_policy(p: &policy::Policy, out: Option<&Path>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(p)? + "\n";
    match out {
        // Write beside the target and rename, so an existing policy is never left half-written.
        Some(path) => {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
        }
        None => output::print(text.trim_end()),
    }
}

fn check(file: &Path, servers: &[String], g: &Globals) -> anyhow::Result<Outcome> {
    require_format("policy check", g.format, &[Format::Table, Format::Json])?;
    let name = file.display().to_string();
    let (diagnostics, errors, warnings) = check_file(file, servers, g)?;
    if g.format == Format::Json {
        output::print_json(&serde_json::json!({
            "file": name, "valid": errors == 0, "errors": errors, "warnings": warnings, "diagnostics": diagnostics,
        }))?;
    } else {
        print_diagnostics(&name, &diagnostics, errors, warnings, g)?;
    }
    if errors > 0 {
        return Err(UsageError(format!("{name}: {errors} error(s)")).into());
    }
    Ok(Outcome::Ok)
}

fn print_diagnostics(
    name: &str,
    diagnostics: &[policy::Diagnostic],
    errors: usize,
    warnings: usize,
    g: &Globals,
) -> anyhow::Result<()> {
    for d in diagnostics {
        eprintln!("{}", output::clean(&d.render(name), 400));
    }
    if !g.quiet && errors == 0 {
        let w = if warnings == 0 { String::new() } else { format!(" ({warnings} warning(s))") };
        output::print(format!("{name}: ok{w}"))?;
    }
    Ok(())
}

/// `policy check --gateway servers.toml --policy-dir DIR`: every server's policy, checked against that server's
/// catalogued tools; a server without a policy is an error (the gateway would not start), a policy file that
/// names no server of the config a warning.
fn check_gateway(servers_file: &Path, dir: &Path, g: &Globals) -> anyhow::Result<Outcome> {
    require_format("policy check", g.format, &[Format::Table, Format::Json])?;
    let servers = crate::crawl::sources::from_servers_file(servers_file).map_err(|e| UsageError(e.to_string()))?;
    let names: Vec<String> = servers.iter().map(|s| s.spec.name.clone()).collect();
    let mut files = Vec::new();
    let mut total_errors = 0;
    for server in &names {
        let path = dir.join(format!("{server}.policy.json"));
        let shown = path.display().to_string();
        if !path.is_file() {
            total_errors += 1;
            let message = format!("server {server:?} has no policy: the gateway would not start");
            if g.format == Format::Json {
                files.push(serde_json::json!({"server": server, "file": shown, "valid": false, "errors": 1,
                    "warnings": 0, "diagnostics": [{"level": "error", "message": message}]}));
            } else {
                eprintln!("error: {shown}: {message}");
            }
            continue;
        }
        let (diagnostics, errors, warnings) = check_file(&path, std::slice::from_ref(server), g)?;
        total_errors += errors;
        if g.format == Format::Json {
            files.push(serde_json::json!({"server": server, "file": shown, "valid": errors == 0, "errors": errors,
                "warnings": warnings, "diagnostics": diagnostics}));
        } else {
            print_diagnostics(&shown, &diagnostics, errors, warnings, g)?;
        }
    }
    let mut unknown = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".policy.json")
                && !names.iter().any(|n| n == stem)
            {
                unknown.push(stem.to_string());
                if g.format != Format::Json {
                    eprintln!(
                        "warning: {}: no server {:?} in {}; the gateway ignores this file",
                        entry.path().display(),
                        output::clean(stem, 80),
                        servers_file.display()
                    );
                }
            }
        }
    }
    unknown.sort();
    if g.format == Format::Json {
        output::print_json(&serde_json::json!({"gateway": servers_file.display().to_string(),
            "valid": total_errors == 0, "files": files, "unknown_servers": unknown}))?;
    }
    if total_errors > 0 {
        return Err(UsageError(format!("{}: {total_errors} error(s)", servers_file.display())).into());
    }
    Ok(Outcome::Ok)
}

/// Parse and check one policy file: its diagnostics (located), error and warning counts.
fn check_file(file: &Path, servers: &[String], g: &Globals) -> anyhow::Result<(Vec<policy::Diagnostic>, usize, usize)> {
    let source = policy::read_source(file)?;
    let mut diagnostics = match source.parse() {
        Err(d) => vec![d],
        Ok(document) => {
            let tools = catalogue_tools(servers, g);
            let mut found = policy::check(&document, tools.as_deref());
            found.extend(source.duplicate_keys(&document));
            found
        }
    };
    source.locate(&mut diagnostics);
    diagnostics.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(0)));
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    Ok((diagnostics, errors, warnings))
}

/// The catalogue's tool definitions, when there is a catalogue; checks skip catalogue warnings otherwise.
fn catalogue_tools(servers: &[String], g: &Globals) -> Option<Vec<crate::model::Tool>> {
    let data_dir = g.data_dir();
    if !data_dir.exists() {
        return None;
    }
    let records = Catalogue::open(&data_dir).ok()?.tools(servers).ok()?;
    (!records.is_empty()).then(|| records.into_iter().map(|r| r.tool).collect())
}

fn load(file: &Path) -> anyhow::Result<policy::CompiledPolicy> {
    Ok(policy::load_file(file)?)
}

fn explain(file: &Path, tool: &str, args: Option<&str>, identity: &str, g: &Globals) -> anyhow::Result<Outcome> {
    require_format("policy explain", g.format, &[Format::Table, Format::Json])?;
    let compiled = load(file)?;
    let arguments: Value = match args {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| UsageError(format!("--args is not JSON: {e}")))?,
    };
    let at = jiff::Timestamp::now().as_second();
    let call = policy::Call { tool, arguments: &arguments, identity, session: "explain", at };
    let (decision, steps) = policy::explain(&compiled, &call, &Counters::new());
    if g.format == Format::Json {
        output::print_json(&serde_json::json!({ "tool": tool, "decision": decision, "steps": steps }))?;
    } else {
        let mut lines = vec![match &decision {
            Decision::Allow { .. } => format!("allow: {}", output::clean(tool, 120)),
            Decision::Deny { reason, rule } => format!("deny ({rule}): {}", output::clean(reason, 400)),
            Decision::NeedsApproval { reason, rule, .. } => {
                format!("approve ({rule}): {}", output::clean(reason, 400))
            }
        }];
        for charge in decision.charges() {
            lines.push(format!(
                "  charges {} +{} (max {})",
                output::clean(&charge.key.counter, 120),
                policy::Quantity(charge.amount),
                policy::Quantity(charge.max)
            ));
        }
        lines.push("why:".into());
        lines.extend(steps.iter().map(|s| format!("  {}", output::clean(s, 400))));
        output::print(lines.join("\n"))?;
    }
    Ok(Outcome::Ok)
}

fn import(file: &Path, out: Option<&Path>, g: &Globals) -> anyhow::Result<Outcome> {
    require_format("policy import", g.format, &[Format::Table, Format::Json])?;
    let name = file.display().to_string();
    let text = policy::read_source(file)?.text;
    let imported = policy::import_yaml(&text).map_err(|d| UsageError(d.render(&name)))?;
    // What we write must load: check it the way the proxy will.
    if let Err(errors) = policy::compile(imported.policy.clone()) {
        let lines: Vec<String> = errors.iter().map(|d: &Diagnostic| d.render(&name)).collect();
        return Err(UsageError(format!("the converted policy is not valid:\n{}", lines.join("\n"))).into());
    }
    if !g.quiet {
        for note in &imported.notes {
            eprintln!("{name}: not carried over: {}", output::clean(note, 400));
        }
    }
    write_policy(&imported.policy, out)?;
    if let Some(path) = out
        && !g.quiet
    {
        eprintln!("wrote {}", path.display());
    }
    Ok(Outcome::Ok)
}
