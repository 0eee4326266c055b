//! Feeds arbitrary text to the Prometheus config loader (YAML mirror, then validation): no
//! input may panic, and a config that loads must render back to YAML that loads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: relative paths resolve to files that are never there.
    let dir = Path::new("/nonexistent-edgeprom-fuzz");
    if let Ok(cfg) = edgeprom::config::load_str(text, "fuzz.yml", dir) {
        let yaml = cfg.to_yaml();
        if let Err(e) = edgeprom::config::load_str(&yaml, "rendered.yml", dir) {
            panic!("a loaded config rendered to YAML that does not load: {e}\n{yaml}");
        }
    }
});
