//! Feeds arbitrary bytes to both exposition-format parsers: no input may panic, and every
//! series entry's labels must be iterable.
#![no_main]

use edgeprom::scrape::textparse::{Entry, Format, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Text, Format::OpenMetrics] {
        for entry in Parser::new(data, format) {
            if let Ok(Entry::Series(s)) = entry {
                for (name, value) in s.labels() {
                    std::hint::black_box((name, value));
                }
            }
        }
    }
});
