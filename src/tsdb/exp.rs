//! Encoding experiment: bytes per sample of segment records (headers included, series log
//! excluded) for zstd levels, window logs and scrapes per record, on a gen.py file replayed
//! scrape by scrape. Run:
//! `EXP_FILE=/tmp/full.om EXP_CFGS=5:0:1,9:0:1,9:0:4 cargo test --lib -- --ignored tsdb::exp --nocapture`
//! (each config is `level:window_log(0 = default):scrapes_per_record`).
#![allow(missing_docs, clippy::print_stdout)]
use super::encoding::{encode_record, RawSample, SeriesState};
use super::PARTITION_MS;
use crate::scrape::textparse::{Entry, Format, Parser};
use std::collections::HashMap;
use std::io::Write;

#[test]
#[ignore]
fn exp() {
    let Ok(path) = std::env::var("EXP_FILE") else {
        return;
    };
    let text = std::fs::read(&path).expect("read");
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut by_t: std::collections::BTreeMap<i64, Vec<RawSample>> = Default::default();
    for e in Parser::new(&text, Format::OpenMetrics) {
        let Ok(Entry::Series(e)) = e else { continue };
        let n = ids.len() as u32;
        let sid = *ids.entry(e.series.to_vec()).or_insert(n);
        by_t.entry(e.timestamp_ms.unwrap_or(0))
            .or_default()
            .push(RawSample {
                sid,
                t: e.timestamp_ms.unwrap_or(0),
                v: e.value,
            });
    }
    drop(text);
    let total: usize = by_t.values().map(|v| v.len()).sum();
    let scrapes: Vec<Vec<RawSample>> = by_t
        .into_values()
        .map(|mut v| {
            v.sort_by_key(|s| s.sid);
            v
        })
        .collect();
    let cfgs: Vec<(i32, u32, usize)> = std::env::var("EXP_CFGS")
        .unwrap_or("5:0:1".into())
        .split(',')
        .map(|c| {
            let p: Vec<&str> = c.split(':').collect();
            (
                p[0].parse().expect("config"),
                p[1].parse().expect("config"),
                p[2].parse().expect("config"),
            )
        })
        .collect();
    for (lvl, wlog, per) in cfgs {
        let t0 = std::time::Instant::now();
        let mut bytes = 0usize;
        let mut raw_bytes = 0usize;
        let mut part = i64::MIN;
        let mut states: Vec<SeriesState> = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), lvl).expect("config");
        let (mut out, mut ts) = (Vec::new(), Vec::new());
        for group in scrapes.chunks(per) {
            let p = group[0][0].t.div_euclid(PARTITION_MS) * PARTITION_MS;
            if p != part {
                part = p;
                states.clear();
                enc = zstd::stream::write::Encoder::new(Vec::new(), lvl).expect("config");
                if wlog > 0 {
                    enc.window_log(wlog).expect("config");
                }
                bytes += 36;
            }
            let mut batch: Vec<RawSample> = group.concat();
            batch.sort_by_key(|s| (s.sid, s.t));
            out.clear();
            encode_record(&batch, &mut states, p, &mut out, &mut ts);
            raw_bytes += out.len();
            enc.write_all(&out).expect("config");
            enc.flush().expect("config");
            bytes += enc.get_ref().len() + 32;
            enc.get_mut().clear();
        }
        println!("EXP level={lvl} wlog={wlog} scrapes_per_record={per} B/sample={:.4} raw B/sample={:.3} took={:?}", bytes as f64 / total as f64, raw_bytes as f64 / total as f64, t0.elapsed());
    }
}
