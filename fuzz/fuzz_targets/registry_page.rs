//! Any bytes as a registry API page or listing: reading its entries must never panic, and every entry must
//! become a target with a non-empty name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwarden::crawl::sources::registry_entries;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice(data) else { return };
    if let Ok((entries, _)) = registry_entries(value, "fuzz") {
        for entry in entries {
            assert!(!entry.source.spec.name.is_empty(), "{entry:?}");
        }
    }
});
