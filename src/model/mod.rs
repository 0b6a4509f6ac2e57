//! The domain model: plain data that every other module speaks.
//!
//! These types carry no behaviour beyond parsing, ordering and fingerprinting. They are what a server sends
//! (`Tool`), where a server lives (`ServerSpec`), and what we conclude about a tool (`Classification`). Keeping
//! them free of I/O lets the classifier, the store, the index and the policy engine agree on one vocabulary
//! without depending on each other.

mod capture;
mod category;
mod classification;
mod fingerprint;
mod server;
pub mod text;
mod tool;

pub use capture::{BadTool, CaptureError, ToolCapture};
pub use category::{Category, ParseEnumError, Risk, Severity};
pub use classification::{Classification, Evidence, Finding, ToolRecord, rationale};
pub use fingerprint::{canonical_json, fingerprint};
pub use server::{ChangeReport, ServerInfo, ServerSnapshot, ServerSpec, Transport, redact_secret};
pub use tool::{Annotations, Tool};
