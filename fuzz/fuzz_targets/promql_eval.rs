//! The PromQL evaluator on arbitrary expressions over a small in-memory store of real data
//! (`seeds/data/gen_small_om.txt`: node, sensor, counter and histogram series over 3 minutes), as
//! an instant query and as a range query. Errors are fine; panics are not. A tight sample limit
//! and timeout keep each run short.
#![no_main]

use edgeprom::model::{stale_nan, Labels};
use edgeprom::promql::{Engine, EngineOptions, MemStore};
use edgeprom::scrape::textparse::{Entry, Format, Parser};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;

/// Last timestamp of the data, ms.
const END: i64 = 1_699_999_275_000;

fn store() -> &'static (MemStore, Engine) {
    static S: OnceLock<(MemStore, Engine)> = OnceLock::new();
    S.get_or_init(|| {
        let om = include_bytes!("../seeds/data/gen_small_om.txt");
        let m = MemStore::new();
        let mut n = 0usize;
        for e in Parser::new(om, Format::OpenMetrics) {
            let Ok(Entry::Series(s)) = e else { continue };
            let mut pairs: Vec<(String, String)> = vec![("__name__".into(), s.name.into())];
            pairs.extend(s.labels().map(|(k, v)| (k.to_string(), v.to_string())));
            let l = Labels::from_pairs(pairs);
            let t = s.timestamp_ms.unwrap_or(0);
            m.add(&l, t, s.value);
            // Every 11th series ends with a staleness marker, every 13th with a NaN.
            n += 1;
            if t == END && n % 11 == 0 {
                m.add(&l, t + 15_000, stale_nan());
            } else if t == END && n % 13 == 0 {
                m.add(&l, t + 15_000, f64::NAN);
            }
        }
        let engine = Engine::new(EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
            max_samples: 200_000,
            max_concurrency: 1,
        });
        (m, engine)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (m, engine) = store();
    let _ = engine.instant(m, text, END);
    let _ = engine.instant(m, text, END + 60_000);
    let _ = engine.range(m, text, END - 180_000, END + 30_000, 15_000);
});
