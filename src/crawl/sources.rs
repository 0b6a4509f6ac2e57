//! Where servers come from: command-line flags, our catalogue file, MCP client configurations and MCP
//! registry `server.json` listings. Every source becomes a list of [`Source`]s: a [`ServerSpec`] plus
//! where it was found, so the crawler can say which ones start programs and why they are being crawled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{ServerSpec, Transport};

/// Problems reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> SourceError {
    SourceError::File { path: path.display().to_string(), message: message.to_string() }
}

/// A server to crawl and where we learned about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub spec: ServerSpec,
    /// `command line`, or the file it came from.
    pub origin: String,
    /// True when the user typed it on the command line (no confirmation needed to start it).
    pub explicit: bool,
    /// Crawl it inside the sandbox (registry listings by default: strangers' packages).
    pub sandbox: bool,
}

/// Split a command line like a POSIX shell would split words: whitespace separates, single quotes are
/// literal, double quotes allow `\"` and `\\`, a backslash outside quotes escapes the next character.
/// Nothing is expanded: no variables, globs or substitutions.
pub fn split_command(line: &str) -> Result<Vec<String>, SourceError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SourceError::Invalid(format!("unclosed ' in {line:?}"))),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(SourceError::Invalid(format!("unclosed \" in {line:?}"))),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SourceError::Invalid(format!("unclosed \" in {line:?}"))),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(SourceError::Invalid(format!("trailing backslash in {line:?}"))),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Parse `"Name: value"`.
pub fn parse_header(text: &str) -> Result<(String, String), SourceError> {
    match text.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(SourceError::Invalid(format!("header {text:?} is not \"Name: value\""))),
    }
}

/// Programs that run a package named by their first argument, so that argument names the server.
const LAUNCHERS: &[&str] =
    &["npx", "uvx", "uv", "node", "python", "python3", "bunx", "bun", "deno", "pipx", "pnpm", "dlx", "run", "tool"];

/// A catalogue name for a command line: `npx -y @scope/server-x@1.2` → `server-x`.
pub fn name_for_command(command: &str, args: &[String]) -> String {
    let base = |s: &str| {
        let s = s.trim_end_matches('/');
        let s = s.rsplit(['/', '\\']).next().unwrap_or(s);
        // `pkg@1.2.3` and `pkg==1.2.3` name the package, not the version.
        let s = if let Some(i) = s.find("==") { &s[..i] } else { s };
        let s = match s.rfind('@') {
            Some(i) if i > 0 => &s[..i],
            _ => s,
        };
        s.trim_end_matches(".js").trim_end_matches(".mjs").trim_end_matches(".py").to_string()
    };
    let program = base(command);
    if LAUNCHERS.contains(&program.as_str())
        && let Some(first) = args.iter().find(|a| !a.starts_with('-') && !LAUNCHERS.contains(&a.as_str()))
    {
        return base(first);
    }
    program
}

/// A catalogue name for a URL: its host and port.
pub fn name_for_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// `--stdio "CMD ARGS"`.
pub fn from_stdio_flag(line: &str) -> Result<Source, SourceError> {
    let mut words = split_command(line)?;
    if words.is_empty() {
        return Err(SourceError::Invalid("--stdio needs a command".into()));
    }
    let command = words.remove(0);
    let name = name_for_command(&command, &words);
    let transport = Transport::Stdio { command, args: words, env: BTreeMap::new(), cwd: None };
    Ok(Source { spec: ServerSpec { name, transport }, origin: "command line".into(), explicit: true, sandbox: false })
}

/// `--http URL` with the `--header`s.
pub fn from_http_flag(url: &str, headers: &BTreeMap<String, String>) -> Result<Source, SourceError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SourceError::Invalid(format!("--http {url:?}: expected an http:// or https:// URL")));
    }
    let transport = Transport::Http { url: url.to_string(), headers: headers.clone() };
    Ok(Source {
        spec: ServerSpec { name: name_for_url(url), transport },
        origin: "command line".into(),
        explicit: true,
        sandbox: false,
    })
}

/// The catalogue file (`--config FILE`, TOML or JSON): named servers.
///
/// ```toml
/// [servers.memory]
/// command = "npx"
/// args = ["-y", "@modelcontextprotocol/server-memory@2025.4.25"]
/// env = { MEMORY_FILE_PATH = "/tmp/memory.json" }
///
/// [servers.shop]
/// url = "http://127.0.0.1:8931/mcp"
/// headers = { Authorization = "Bearer ..." }
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "toolwarden servers file")]
pub struct ServersFile {
    /// Optional pointer to this schema, ignored.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Servers by catalogue name.
    pub servers: BTreeMap<String, ServerEntry>,
}

/// One server: either `command` (stdio) or `url` (Streamable HTTP).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The program to start (stdio).
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables for the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory for the program.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The Streamable HTTP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP headers (e.g. Authorization).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Skip this server.
    #[serde(default)]
    pub disabled: bool,
}

/// The JSON Schema of [`ServersFile`], as committed in `schemas/servers.schema.json`.
pub fn servers_schema() -> String {
    let schema = schemars::schema_for!(ServersFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

fn entry_to_spec(name: &str, entry: ServerEntry, path: &Path) -> Result<ServerSpec, SourceError> {
    let transport = match (entry.command, entry.url) {
        (Some(command), None) => Transport::Stdio { command, args: entry.args, env: entry.env, cwd: entry.cwd },
        (None, Some(url)) => Transport::Http { url, headers: entry.headers },
        (Some(_), Some(_)) => return Err(file_error(path, format!("servers.{name}: has both `command` and `url`"))),
        (None, None) => return Err(file_error(path, format!("servers.{name}: needs `command` or `url`"))),
    };
    Ok(ServerSpec { name: name.to_string(), transport })
}

/// Read a catalogue file (`.toml`, else JSON).
pub fn from_servers_file(path: &Path) -> Result<Vec<Source>, SourceError> {
    let text = read_bounded(path)?;
    let file: ServersFile = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        toml::from_str(&text).map_err(|e| file_error(path, e))?
    } else {
        serde_json::from_str(&text).map_err(|e| file_error(path, e))?
    };
    let mut out = Vec::new();
    for (name, entry) in file.servers {
        if entry.disabled {
            continue;
        }
        let spec = entry_to_spec(&name, entry, path)?;
        out.push(Source { spec, origin: path.display().to_string(), explicit: false, sandbox: false });
    }
    Ok(out)
}

/// Config files are small; refuse to read something huge by mistake.
fn read_bounded(path: &Path) -> Result<String, SourceError> {
    const MAX: u64 = 16 * 1024 * 1024;
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    if meta.len() > MAX {
        return Err(file_error(path, format!("file is larger than {MAX} bytes")));
    }
    std::fs::read_to_string(path).map_err(|e| file_error(path, e))
}

/// An MCP client configuration: `{"mcpServers": {...}}` (Claude Desktop, Claude Code, Cursor, Windsurf,
/// Gemini CLI, ...) or VS Code's `{"servers": {...}}` with `type: stdio|http|sse`. Comments and trailing
/// commas (VS Code writes JSONC) are tolerated.
pub fn from_client_config(path: &Path) -> Result<Vec<Source>, SourceError> {
    let text = read_bounded(path)?;
    let value: Value = serde_json::from_str(&strip_jsonc(&text)).map_err(|e| file_error(path, e))?;
    let servers = value
        .get("mcpServers")
        .or_else(|| value.get("servers"))
        .or_else(|| value.get("mcp").and_then(|m| m.get("servers")))
        .and_then(Value::as_object)
        .ok_or_else(|| file_error(path, "no \"mcpServers\" or \"servers\" object"))?;
    let mut out = Vec::new();
    for (name, entry) in servers {
        if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let strings = |key: &str| -> BTreeMap<String, String> {
            entry
                .get(key)
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default()
        };
        let kind = entry.get("type").or_else(|| entry.get("transport")).and_then(Value::as_str).unwrap_or("");
        let url = entry.get("url").or_else(|| entry.get("serverUrl")).or_else(|| entry.get("httpUrl"));
        let transport = if let Some(command) = entry.get("command").and_then(Value::as_str) {
            let args = entry
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let cwd = entry.get("cwd").and_then(Value::as_str).map(str::to_string);
            Transport::Stdio { command: command.to_string(), args, env: strings("env"), cwd }
        } else if let Some(url) = url.and_then(Value::as_str) {
            if kind == "sse" {
                tracing::warn!(
                    "{}: server {name:?} uses the old SSE transport; trying it as Streamable HTTP",
                    path.display()
                );
            }
            Transport::Http { url: url.to_string(), headers: strings("headers") }
        } else {
            return Err(file_error(path, format!("server {name:?} has neither \"command\" nor \"url\"")));
        };
        out.push(Source {
            spec: ServerSpec { name: name.clone(), transport },
            origin: path.display().to_string(),
            explicit: false,
            sandbox: false,
        });
    }
    Ok(out)
}

/// Remove `//` and `/* */` comments and trailing commas outside strings.
pub fn strip_jsonc(text: &str) -> String {
    // Twice: a trailing comma followed by a comment (`}, // last`) is only seen as trailing once the comment
    // is gone. The second pass finds no comment left and changes nothing else.
    strip_jsonc_once(&strip_jsonc_once(text))
}

fn strip_jsonc_once(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            ',' => {
                let rest: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
                let next = chars.clone().nth(rest.chars().count());
                if !matches!(next, Some('}' | ']')) {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A well-known client configuration location.
#[derive(Debug, Clone)]
pub struct KnownConfig {
    pub client: &'static str,
    pub path: PathBuf,
}

/// The places desktop, editor and CLI agents keep MCP server lists on this OS, user-level (from the home and
/// config directories) and project-level (under `project`, usually the current directory).
pub fn well_known_configs(home: &Path, config_dir: &Path, project: &Path) -> Vec<KnownConfig> {
    let user = |client, path: PathBuf| KnownConfig { client, path };
    let mut out = vec![
        user("Claude Desktop", config_dir.join("Claude/claude_desktop_config.json")),
        user("Claude Code", home.join(".claude.json")),
        user("Cursor", home.join(".cursor/mcp.json")),
        user("Windsurf", home.join(".codeium/windsurf/mcp_config.json")),
        user("VS Code", config_dir.join("Code/User/mcp.json")),
        user("Gemini CLI", home.join(".gemini/settings.json")),
        user("Amazon Q", home.join(".aws/amazonq/mcp.json")),
        user("Claude Code (project)", project.join(".mcp.json")),
        user("Cursor (project)", project.join(".cursor/mcp.json")),
        user("VS Code (project)", project.join(".vscode/mcp.json")),
        user("Gemini CLI (project)", project.join(".gemini/settings.json")),
        user("Amazon Q (project)", project.join(".amazonq/mcp.json")),
    ];
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// One entry of an MCP registry listing (`server.json`). Only what we need to start or reach it.
#[derive(Debug, Clone, Deserialize)]
struct RegistryServer {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    packages: Vec<RegistryPackage>,
    #[serde(default)]
    remotes: Vec<RegistryRemote>,
}

#[derive(Debug, Clone, Deserialize)]
struct RegistryPackage {
    #[serde(default, rename = "registryType", alias = "registry_type", alias = "registry_name")]
    registry_type: Option<String>,
    #[serde(default, alias = "name")]
    identifier: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    transport: Option<Value>,
    #[serde(default, rename = "packageArguments", alias = "package_arguments")]
    package_arguments: Vec<Value>,
    #[serde(default, rename = "environmentVariables", alias = "environment_variables")]
    environment_variables: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct RegistryRemote {
    #[serde(default, rename = "type", alias = "transport_type")]
    kind: Option<String>,
    url: String,
}

/// Read a registry listing: one `server.json` object, an array of them, or `{"servers": [...]}` (entries may
/// be wrapped as `{"server": {...}}`, as the registry API returns them). Returns the sources and notes about
/// entries that were skipped.
pub fn from_registry(path: &Path) -> Result<(Vec<Source>, Vec<String>), SourceError> {
    let text = read_bounded(path)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| file_error(path, e))?;
    let origin = path.display().to_string();
    let (entries, notes) = registry_entries(value, &origin).map_err(|e| file_error(path, e))?;
    Ok((entries.into_iter().map(|e| e.source).collect(), notes))
}

/// One crawl target from a registry entry, with what identifies it across runs.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    pub source: Source,
    /// The registry's server name and which of its packages or remotes this is: `io.github.x/y#0`.
    pub key: String,
    /// The entry's version (`""` when it has none).
    pub version: String,
}

/// The entries of one registry listing or API page (see [`from_registry`] for the shapes), and notes about
/// entries that were skipped. `Err` when the document has none of the shapes.
pub fn registry_entries(value: Value, origin: &str) -> Result<(Vec<RegistryEntry>, Vec<String>), String> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("servers") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err("\"servers\" is not an array".into()),
            None => vec![Value::Object(map)],
        },
        _ => return Err("expected a server.json object, an array, or {\"servers\": [...]}".into()),
    };
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let item = match item {
            Value::Object(mut map) if map.contains_key("server") => map.remove("server").unwrap_or_default(),
            other => other,
        };
        let server: RegistryServer = match serde_json::from_value(item) {
            Ok(s) => s,
            Err(e) => {
                notes.push(format!("{origin}: entry {i} skipped: {e}"));
                continue;
            }
        };
        let (specs, skipped) = registry_specs(&server);
        notes.extend(skipped.into_iter().map(|n| format!("{origin}: {}: {n}", server.name)));
        let version = server.version.clone().unwrap_or_default();
        entries.extend(specs.into_iter().enumerate().map(|(n, spec)| RegistryEntry {
            source: Source { spec, origin: origin.to_string(), explicit: false, sandbox: true },
            key: format!("{}#{n}", server.name),
            version: version.clone(),
        }));
    }
    Ok((entries, notes))
}

fn registry_specs(server: &RegistryServer) -> (Vec<ServerSpec>, Vec<String>) {
    // The last non-empty segment of `io.github.owner/name` (a name ending in `/`, or all slashes, must still
    // give a non-empty catalogue name: found by fuzzing).
    let short = match server.name.rsplit('/').find(|s| !s.trim().is_empty()) {
        Some(segment) => segment.trim().to_string(),
        None if !server.name.trim().is_empty() => server.name.trim().to_string(),
        None => "registry-server".to_string(),
    };
    let mut specs = Vec::new();
    let mut notes = Vec::new();
    if let Some(version) = &server.version {
        tracing::debug!("registry server {} version {version}", server.name);
    }
    for package in &server.packages {
        let kind = package.registry_type.as_deref().unwrap_or("").to_ascii_lowercase();
        let Some(id) = package.identifier.as_deref() else {
            notes.push("a package without an identifier was skipped".into());
            continue;
        };
        let stdio = package.transport.as_ref().and_then(|t| t.get("type")).and_then(Value::as_str).unwrap_or("stdio");
        if stdio != "stdio" {
            notes.push(format!("package {id}: transport {stdio:?} needs a running server; skipped"));
            continue;
        }
        let (command, mut args) = match kind.as_str() {
            "npm" => ("npx", vec!["-y".to_string(), versioned(id, "@", package.version.as_deref())]),
            "pypi" => ("uvx", vec![versioned(id, "==", package.version.as_deref())]),
            other => {
                notes.push(format!("package {id}: registry type {other:?} is not supported (npm and pypi are)"));
                continue;
            }
        };
        for arg in &package.package_arguments {
            // Positional arguments with a fixed value; named ones as `--name value`.
            let value = arg.get("value").or_else(|| arg.get("default")).and_then(Value::as_str);
            match (arg.get("type").and_then(Value::as_str), arg.get("name").and_then(Value::as_str), value) {
                (Some("named"), Some(name), Some(v)) => args.extend([name.to_string(), v.to_string()]),
                (Some("named"), Some(name), None) => args.push(name.to_string()),
                (_, _, Some(v)) => args.push(v.to_string()),
                _ => {}
            }
        }
        let required: Vec<&str> = package
            .environment_variables
            .iter()
            .filter(|v| v.get("isRequired").or_else(|| v.get("is_required")).and_then(Value::as_bool) == Some(true))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        if !required.is_empty() {
            notes.push(format!("package {id} needs environment variables {}; it may not start", required.join(", ")));
        }
        let name =
            if server.packages.len() + server.remotes.len() > 1 { format!("{short}-{kind}") } else { short.clone() };
        specs.push(ServerSpec {
            name,
            transport: Transport::Stdio { command: command.into(), args, env: BTreeMap::new(), cwd: None },
        });
    }
    for (i, remote) in server.remotes.iter().enumerate() {
        let kind = remote.kind.as_deref().unwrap_or("streamable-http");
        if kind == "sse" {
            notes.push(format!("remote {}: the old SSE transport is not supported; skipped", remote.url));
            continue;
        }
        let name = if server.packages.is_empty() && server.remotes.len() == 1 {
            short.clone()
        } else {
            format!("{short}-remote{}", if i == 0 { String::new() } else { (i + 1).to_string() })
        };
        specs.push(ServerSpec {
            name,
            transport: Transport::Http { url: remote.url.clone(), headers: BTreeMap::new() },
        });
    }
    (specs, notes)
}

fn versioned(id: &str, sep: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !v.is_empty() && v != "latest" => format!("{id}{sep}{v}"),
        _ => id.to_string(),
    }
}

/// Give every source a distinct name (`x`, `x-2`, ...), keeping the first as it is.
pub fn dedup_names(sources: &mut [Source]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for source in sources.iter_mut() {
        let count = seen.entry(source.spec.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            source.spec.name = format!("{}-{}", source.spec.name, count);
        }
    }
}

#[cfg(test)]
#[path = "sources_tests.rs"]
mod tests;
