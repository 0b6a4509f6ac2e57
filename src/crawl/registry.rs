//! The MCP registry as a crawl source (`crawl --registry-url URL`): its API read page by page, and what was
//! already catalogued remembered between runs.
//!
//! The registry API (`GET {URL}/v0/servers?limit=N&cursor=C`) answers `{"servers": [{"server": {…server.json…},
//! "_meta": {…}}], "metadata": {"nextCursor": "…"}}`; pages are followed until there is no `nextCursor`. A whole
//! registry is tens of thousands of servers, so a crawl of it is long and gets interrupted: every server listed
//! successfully is written to a state file in the data directory (`registry/<hash of the URL>.json`, replaced
//! atomically) with the registry version it had, and the next run skips every entry already catalogued at the
//! same version. Failed entries are tried again next time; a new version is crawled again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sources::{RegistryEntry, registry_entries};

/// Why a registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("registry state {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// Servers asked for per page.
const PAGE_LIMIT: usize = 100;
/// Pages read at most (a registry that pages forever is not believed).
const MAX_PAGES: usize = 10_000;
/// Largest page accepted.
const MAX_PAGE_BYTES: usize = 32 << 20;

/// Every entry of the registry at `base` (the API root, with or without `/v0/servers`), and notes.
pub fn fetch_all(base: &str, timeout: Duration) -> Result<(Vec<RegistryEntry>, Vec<String>, usize), RegistryError> {
    let endpoint = endpoint(base);
    let fail = |message: String| RegistryError::Fetch { url: endpoint.clone(), message };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("toolwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        if pages >= MAX_PAGES {
            notes.push(format!("{endpoint}: stopped after {MAX_PAGES} pages"));
            break;
        }
        let mut url = reqwest::Url::parse(&endpoint).map_err(|e| fail(format!("not a URL: {e}")))?;
        url.query_pairs_mut().append_pair("limit", &PAGE_LIMIT.to_string());
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let request = client.get(url);
        let page: Value = runtime.block_on(async {
            let response = request.send().await.map_err(|e| fail(format!("page {}: {e}", pages + 1)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("page {} answered HTTP {status}", pages + 1)));
            }
            let body =
                read_limited(response, MAX_PAGE_BYTES).await.map_err(|e| fail(format!("page {}: {e}", pages + 1)))?;
            serde_json::from_slice(&body).map_err(|e| fail(format!("page {} is not JSON: {e}", pages + 1)))
        })?;
        pages += 1;
        let next = page
            .pointer("/metadata/nextCursor")
            .or_else(|| page.pointer("/metadata/next_cursor"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let origin = format!("{endpoint} (page {pages})");
        let (found, skipped) = registry_entries(page, &origin).map_err(|e| fail(format!("page {pages}: {e}")))?;
        entries.extend(found);
        notes.extend(skipped);
        match next {
            Some(next) if Some(&next) == cursor.as_ref() => {
                notes.push(format!("{endpoint}: the registry returned the same cursor twice; stopped"));
                break;
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok((entries, notes, pages))
}

/// `{base}/v0/servers`, unless `base` already names the endpoint.
fn endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/servers") { base.to_string() } else { format!("{base}/v0/servers") }
}

async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("the page is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a registry crawl already catalogued: entry key → the version it was catalogued at.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub url: String,
    pub done: BTreeMap<String, String>,
    #[serde(skip)]
    path: PathBuf,
}

impl State {
    /// The state of the registry at `url`, kept under `data_dir` (empty when there is none yet).
    pub fn load(data_dir: &Path, url: &str) -> Result<State, RegistryError> {
        let hash = hex::encode(Sha256::digest(endpoint(url).as_bytes()));
        let path = data_dir.join("registry").join(format!("{}.json", &hash[..16]));
        let fail = |message: String| RegistryError::State { path: path.clone(), message };
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| fail(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State { url: endpoint(url), ..State::default() },
            Err(e) => return Err(fail(e.to_string())),
        };
        state.path = path;
        Ok(state)
    }

    /// Whether `entry` was catalogued at its current version.
    pub fn is_done(&self, entry: &RegistryEntry) -> bool {
        self.done.get(&entry.key) == Some(&entry.version)
    }

    /// Remember a catalogued entry and write the state at once (a crash after this keeps it).
    pub fn mark(&mut self, key: &str, version: &str) -> Result<(), RegistryError> {
        self.done.insert(key.to_string(), version.to_string());
        self.save()
    }

    fn save(&self) -> Result<(), RegistryError> {
        let fail = |message: String| RegistryError::State { path: self.path.clone(), message };
        let dir = self.path.parent().ok_or_else(|| fail("no directory".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_found_from_the_api_root_or_given_whole() {
        assert_eq!(endpoint("https://r.example"), "https://r.example/v0/servers");
        assert_eq!(endpoint("https://r.example/"), "https://r.example/v0/servers");
        assert_eq!(endpoint("http://127.0.0.1:9/v0/servers"), "http://127.0.0.1:9/v0/servers");
    }

    #[test]
    fn state_survives_a_reload_and_a_new_version_is_not_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::load(dir.path(), "http://r.example").unwrap();
        assert!(state.done.is_empty());
        state.mark("io.x/a#0", "1.0.0").unwrap();
        let state = State::load(dir.path(), "http://r.example/v0/servers").unwrap();
        let entry = |version: &str| RegistryEntry {
            source: crate::crawl::sources::from_stdio_flag("true").unwrap(),
            key: "io.x/a#0".into(),
            version: version.into(),
        };
        assert!(state.is_done(&entry("1.0.0")));
        assert!(!state.is_done(&entry("1.0.1")));
        std::fs::write(&state.path, "{not json").unwrap();
        assert!(matches!(State::load(dir.path(), "http://r.example"), Err(RegistryError::State { .. })));
    }
}
