//! Any bytes, read as a JSON or YAML policy and as an import source: parsing, compiling, locating errors and
//! converting must never panic; whatever compiles must also decide without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwarden::policy::{Call, Counters, Source, Syntax, decide, import_yaml, load};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for syntax in [Syntax::Json, Syntax::Yaml] {
        let source = Source::new(syntax, text);
        if let Ok(policy) = load(&source) {
            let args = serde_json::json!({"amount": 5, "path": "../x", "items": [1, "a"]});
            for tool in policy.document().tools.keys().map(String::as_str).chain(["unlisted"]) {
                let call = Call { tool, arguments: &args, identity: "i", session: "s", at: 1_700_000_000 };
                let _ = decide(&policy, &call, &Counters::new());
            }
        }
    }
    let _ = import_yaml(text);
});
