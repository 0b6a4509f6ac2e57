//! Any bytes as a captured `tools/list` result: parsing must never panic, and every tool parsed must classify
//! and scan for findings without panicking, with a category that is one of the five.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwarden::classify::Classifier;
use toolwarden::model::ToolCapture;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(capture) = ToolCapture::parse(text) else { return };
    let classifier = Classifier::builtin();
    for tool in &capture.tools {
        let c = classifier.classify(tool);
        assert!(!c.category.as_str().is_empty());
    }
});
