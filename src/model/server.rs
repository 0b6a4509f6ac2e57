//! Where a server lives and what it said about itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Tool;

/// How to reach a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum Transport {
    Stdio {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

/// A named server and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub name: String,
    #[serde(flatten)]
    pub transport: Transport,
}

impl ServerSpec {
    /// The spec with every env value and header value replaced by `<redacted>`, for storage and display.
    /// Keys stay (they tell which secrets a server needs); values never leave the user's config.
    pub fn redacted(&self) -> ServerSpec {
        let transport = match &self.transport {
            Transport::Stdio { command, args, env, cwd } => Transport::Stdio {
                command: command.clone(),
                args: args.clone(),
                env: env.keys().map(|k| (k.clone(), redact_secret())).collect(),
                cwd: cwd.clone(),
            },
            Transport::Http { url, headers } => Transport::Http {
                url: url.clone(),
                headers: headers.keys().map(|k| (k.clone(), redact_secret())).collect(),
            },
        };
        ServerSpec { name: self.name.clone(), transport }
    }

    /// A one-line description: the command line or the URL.
    pub fn target(&self) -> String {
        match &self.transport {
            Transport::Stdio { command, args, .. } => {
                std::iter::once(command.as_str()).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
            }
            Transport::Http { url, .. } => url.clone(),
        }
    }
}

/// The placeholder that replaces secret values.
pub fn redact_secret() -> String {
    "<redacted>".to_string()
}

/// What a server said about itself at `initialize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The protocol version negotiated with the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Everything one successful listing of a server produced: the input to the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSnapshot {
    /// The catalogue name of the server (file stem, config key, `--server NAME`).
    pub server: String,
    /// How it was reached; `None` for an offline import.
    pub spec: Option<ServerSpec>,
    pub info: Option<ServerInfo>,
    pub tools: Vec<Tool>,
    /// Extra keys of the `tools/list` result (`ttlMs`, `cacheScope`, `_meta`, ...).
    pub list_extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_keys_and_hides_values() {
        let spec = ServerSpec {
            name: "s".into(),
            transport: Transport::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "pkg".into()],
                env: BTreeMap::from([("API_KEY".to_string(), "sk_live_123".to_string())]),
                cwd: None,
            },
        };
        let json = serde_json::to_string(&spec.redacted()).unwrap();
        assert!(json.contains("API_KEY") && !json.contains("sk_live_123"), "{json}");
        assert_eq!(spec.target(), "npx -y pkg");
    }
}

/// What changed for one server between the catalogue's previous state and a new listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReport {
    pub server: String,
    /// Tool names that are new.
    pub added: Vec<String>,
    /// Tool names that disappeared.
    pub removed: Vec<String>,
    /// Tool names whose definition (fingerprint) changed.
    pub changed: Vec<String>,
    /// How many tools are exactly as before.
    pub unchanged: usize,
}

impl ChangeReport {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}
