//! Feeds arbitrary text to the `--web.config.file` loader: no input may panic, and a config that
//! loads must answer an unauthenticated request and set headers without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/nonexistent-edgeprom-fuzz");
    if let Ok(cfg) = edgeprom::web::webconfig::parse_str(text, Path::new("web.yml"), dir) {
        // No Authorization header: never reaches bcrypt (whose cost the input controls).
        let _ = cfg.check_auth(&http::HeaderMap::new());
        let mut h = http::HeaderMap::new();
        cfg.apply_headers(&mut h);
        let _ = cfg.tls_acceptor();
    }
});
