//! What `scan` reports, in its own module so that the two writers of it (`scan` for tables and JSON, `sarif`
//! for SARIF) both read it from below and neither imports the other.

use serde::Serialize;

use crate::model::{Category, Risk};

/// One finding of a scan.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ScanFinding {
    pub server: String,
    /// `None` for a finding about the server as a whole (it could not be listed).
    pub tool: Option<String>,
    pub id: String,
    pub severity: Risk,
    pub text: String,
    /// The file that named the server (config, client config or capture), or `command line`.
    pub origin: String,
}

/// One scanned server.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ScannedServer {
    pub server: String,
    pub origin: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tools: usize,
    pub stored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<crate::pin::PinDrift>,
}

/// A tool whose risk is high or critical (listed for people to review; not a finding by itself).
#[derive(Debug, Clone, Serialize)]
pub(super) struct RiskyTool {
    pub server: String,
    pub tool: String,
    pub category: Category,
    pub risk: Risk,
}

/// What `scan --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ScanReport {
    pub servers: Vec<ScannedServer>,
    pub findings: Vec<ScanFinding>,
    pub risky_tools: Vec<RiskyTool>,
    /// `--fail-on` as a level, `null` for `never`.
    pub fail_on: Option<Risk>,
    /// Whether a finding reached `fail_on` (the exit code is 1).
    pub failed: bool,
}
