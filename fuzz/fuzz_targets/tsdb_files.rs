//! The storage reader on arbitrary files: every on-disk structure (series log, `.live` segment,
//! sealed `.seg` segment, and the records inside them) is written from the fuzz input into a
//! fresh data directory beside the other files of a real store, which is then opened, queried in
//! full, closed (sealing a recovered `.live` file) and opened again. No file content may panic.
//!
//! The first input byte picks the mode (`mode % 8`):
//! - 0, 1, 2: the rest is the series log / live segment / sealed segment, verbatim;
//! - 3, 4, 5: the same, with every CRC the format has recomputed (so mutations get past them);
//! - 6, 7: a live / sealed segment and a series log built from decoded records, which the harness
//!   frames, zstd-compresses and checksums as the writer does (see `src/tsdb/FORMAT.md`):
//!   `u8 n`, n x (`u16 len`, series-log record), `i64 base_t`, `i64 partition`, then records
//!   (`i64 min_t`, `i64 max_t`, `u32 n_samples`, `u16 len`, encoded samples) to the end.
//!
//! The other files come from a store built once from real data (`seeds/data/gen_small_om.txt`).
//! With `EDGEPROM_FUZZ_WRITE_SEEDS=DIR` the first run writes one seed per mode from that store
//! into DIR and exits (that is how `seeds/tsdb_files/` was made).
#![no_main]

use edgeprom::model::{stale_nan, Labels, MatchType, Matcher};
use edgeprom::scrape::textparse::{Entry, Format, Parser};
use edgeprom::storage::{Appendable, Queryable, SelectHints, SeriesRef};
use edgeprom::tsdb::{Options, Tsdb};
use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

const SERIES_LOG: &str = "series.log";
const SEG_HEADER: usize = 36;
const SEG_REC_HEADER: usize = 32;
const LOG_HEADER: usize = 12;
const LOG_REC_HEADER: usize = 12;
const PARTITION_MS: i64 = 2 * 3600 * 1000;

/// The files of a real store.
struct Template {
    series_log: Vec<u8>,
    /// A `.live` segment as a flush leaves it (records, no seal).
    live: Vec<u8>,
    /// Sealed segments: (min_t, max_t, bytes).
    sealed: Vec<(i64, i64, Vec<u8>)>,
}

fn opts(dir: &Path) -> Options {
    Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        retention_size: 0,
        flush_interval: Duration::from_secs(3600),
        max_series: 0,
        read_cache_size: edgeprom::tsdb::DEFAULT_READ_CACHE_BYTES,
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn fresh_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "edgeprom-fuzz-tsdb-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Builds a store from the committed OpenMetrics sample data: one flush (a `.live` file), then
/// samples of the next partition and stale markers, then close (sealed files).
fn build_template() -> Template {
    let om = include_bytes!("../seeds/data/gen_small_om.txt");
    let dir = fresh_dir();
    let db = Tsdb::open(opts(&dir)).expect("open template store");
    let mut app = db.appender();
    let mut last: Vec<(Labels, i64, f64)> = Vec::new();
    for e in Parser::new(om, Format::OpenMetrics) {
        let Ok(Entry::Series(s)) = e else { continue };
        let mut pairs: Vec<(String, String)> = vec![("__name__".into(), s.name.into())];
        pairs.extend(s.labels().map(|(n, v)| (n.to_string(), v.to_string())));
        let l = Labels::from_pairs(pairs);
        let t = s.timestamp_ms.unwrap_or(0);
        app.append(SeriesRef(0), &l, t, s.value).expect("append");
        last.push((l, t, s.value));
    }
    app.commit().expect("commit");
    db.flush().expect("flush");
    let live = read_matching(&dir, ".live");
    // The next partition, and stale markers for a few series.
    let mut app = db.appender();
    for (i, (l, t, v)) in last.iter().enumerate().step_by(7) {
        let later = t + PARTITION_MS + 15_000;
        let val = if i % 3 == 0 { stale_nan() } else { v * 1.5 };
        let _ = app.append(SeriesRef(0), l, later, val);
    }
    app.commit().expect("commit");
    db.close().expect("close");
    drop(db);
    let series_log = std::fs::read(dir.join(SERIES_LOG)).expect("series log");
    let mut sealed = Vec::new();
    for ent in std::fs::read_dir(&dir).expect("read dir").flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".seg") {
            let parts: Vec<&str> = stem.split('_').collect();
            if parts.len() == 3 {
                let min_t = parts[1].parse().expect("min_t in name");
                let max_t = parts[2].parse().expect("max_t in name");
                sealed.push((min_t, max_t, std::fs::read(ent.path()).expect("segment")));
            }
        }
    }
    sealed.sort_by_key(|s| s.0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !live.is_empty() && !sealed.is_empty(),
        "template store has no segments"
    );
    Template {
        series_log,
        live,
        sealed,
    }
}

fn read_matching(dir: &Path, suffix: &str) -> Vec<u8> {
    for ent in std::fs::read_dir(dir).expect("read dir").flatten() {
        if ent.file_name().to_string_lossy().ends_with(suffix) {
            return std::fs::read(ent.path()).expect("read");
        }
    }
    Vec::new()
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let t = build_template();
        if let Ok(out) = std::env::var("EDGEPROM_FUZZ_WRITE_SEEDS") {
            write_seeds(&t, Path::new(&out));
            std::process::exit(0);
        }
        t
    })
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Recomputes the header and record CRCs of a segment, as far as its record lengths go.
fn fix_segment_crcs(b: &mut [u8]) {
    if b.len() < SEG_HEADER {
        return;
    }
    let c = crc32fast::hash(&b[0..32]);
    b[32..36].copy_from_slice(&c.to_le_bytes());
    let mut pos = SEG_HEADER;
    while pos + SEG_REC_HEADER <= b.len() {
        let comp = le_u32(b, pos) as usize;
        let end = pos + SEG_REC_HEADER + comp;
        if end > b.len() {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&b[pos..pos + 28]);
        h.update(&b[pos + SEG_REC_HEADER..end]);
        let c = h.finalize();
        b[pos + 28..pos + 32].copy_from_slice(&c.to_le_bytes());
        pos = end;
    }
}

/// Recomputes the header and record CRCs of a series log.
fn fix_log_crcs(b: &mut [u8]) {
    if b.len() < LOG_HEADER {
        return;
    }
    let c = crc32fast::hash(&b[0..8]);
    b[8..12].copy_from_slice(&c.to_le_bytes());
    let mut pos = LOG_HEADER;
    while pos + LOG_REC_HEADER <= b.len() {
        let comp = le_u32(b, pos) as usize;
        let end = pos + LOG_REC_HEADER + comp;
        if end > b.len() {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&b[pos..pos + 8]);
        h.update(&b[pos + LOG_REC_HEADER..end]);
        let c = h.finalize();
        b[pos + 8..pos + 12].copy_from_slice(&c.to_le_bytes());
        pos = end;
    }
}

/// A little reader over the fuzz input; short reads give zeros / empty slices.
struct Take<'a>(&'a [u8]);
impl<'a> Take<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn arr<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }
    fn u8(&mut self) -> u8 {
        self.arr::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.arr())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.arr())
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.arr())
    }
}

/// Built mode: a series log and a segment from decoded records. Returns
/// (series log, segment, min_t, max_t).
fn build_files(data: &[u8]) -> (Vec<u8>, Vec<u8>, i64, i64) {
    let mut r = Take(data);
    let mut log = Vec::new();
    log.extend_from_slice(b"EPSER\0");
    log.extend_from_slice(&1u16.to_le_bytes());
    log.extend_from_slice(&crc32fast::hash(&log[0..8]).to_le_bytes());
    for _ in 0..r.u8() {
        let len = r.u16() as usize;
        let raw = r.bytes(len);
        let comp = zstd::bulk::compress(raw, 1).expect("zstd compress");
        let mut h = Vec::new();
        h.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        h.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        let mut c = crc32fast::Hasher::new();
        c.update(&h);
        c.update(&comp);
        h.extend_from_slice(&c.finalize().to_le_bytes());
        log.extend_from_slice(&h);
        log.extend_from_slice(&comp);
    }
    let base_t = r.i64();
    let partition = r.i64();
    let mut seg = Vec::new();
    seg.extend_from_slice(b"EPSEG\0");
    seg.extend_from_slice(&1u16.to_le_bytes());
    seg.extend_from_slice(&base_t.to_le_bytes());
    seg.extend_from_slice(&2u64.to_le_bytes());
    seg.extend_from_slice(&partition.to_le_bytes());
    seg.extend_from_slice(&crc32fast::hash(&seg[0..32]).to_le_bytes());
    // One zstd stream for the whole segment, flushed (not ended) after each record.
    let mut enc = zstd::stream::raw::Encoder::new(1).expect("zstd encoder");
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    while !r.0.is_empty() {
        let min_t = r.i64();
        let max_t = r.i64();
        let n = r.u32();
        let len = r.u16() as usize;
        let raw = r.bytes(len);
        let comp = stream_piece(&mut enc, raw);
        lo = lo.min(min_t);
        hi = hi.max(max_t);
        let mut h = Vec::new();
        h.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        h.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        h.extend_from_slice(&min_t.to_le_bytes());
        h.extend_from_slice(&max_t.to_le_bytes());
        h.extend_from_slice(&n.to_le_bytes());
        let mut c = crc32fast::Hasher::new();
        c.update(&h);
        c.update(&comp);
        h.extend_from_slice(&c.finalize().to_le_bytes());
        seg.extend_from_slice(&h);
        seg.extend_from_slice(&comp);
    }
    if lo > hi {
        (lo, hi) = (0, 0);
    }
    (log, seg, lo, hi)
}

/// Compresses `raw` into the running stream and flushes it.
fn stream_piece(enc: &mut zstd::stream::raw::Encoder<'static>, raw: &[u8]) -> Vec<u8> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut input = InBuffer::around(raw);
    while input.pos() < raw.len() {
        let mut o = OutBuffer::around(&mut buf[..]);
        enc.run(&mut input, &mut o).expect("zstd run");
        let n = o.pos();
        out.extend_from_slice(&buf[..n]);
    }
    loop {
        let mut o = OutBuffer::around(&mut buf[..]);
        let left = enc.flush(&mut o).expect("zstd flush");
        let n = o.pos();
        out.extend_from_slice(&buf[..n]);
        if left == 0 {
            break;
        }
    }
    out
}

/// Splits a real segment into its decoded records (for the built-mode seeds).
fn decode_segment(seg: &[u8]) -> Vec<(i64, i64, u32, Vec<u8>)> {
    let mut recs = Vec::new();
    let mut payloads = Vec::new();
    let mut hdrs = Vec::new();
    let mut pos = SEG_HEADER;
    while pos + SEG_REC_HEADER <= seg.len() {
        let comp = le_u32(seg, pos) as usize;
        let raw = le_u32(seg, pos + 4) as usize;
        let min_t = i64::from_le_bytes(seg[pos + 8..pos + 16].try_into().expect("8"));
        let max_t = i64::from_le_bytes(seg[pos + 16..pos + 24].try_into().expect("8"));
        let n = le_u32(seg, pos + 24);
        payloads.extend_from_slice(&seg[pos + SEG_REC_HEADER..pos + SEG_REC_HEADER + comp]);
        hdrs.push((min_t, max_t, n, raw));
        pos += SEG_REC_HEADER + comp;
    }
    let mut dec = zstd::stream::read::Decoder::new(&payloads[..]).expect("decoder");
    for (min_t, max_t, n, raw) in hdrs {
        let mut b = vec![0u8; raw];
        dec.read_exact(&mut b).expect("decode record");
        recs.push((min_t, max_t, n, b));
    }
    recs
}

fn write_seeds(t: &Template, out: &Path) {
    std::fs::create_dir_all(out).expect("seed dir");
    let put = |name: &str, mode: u8, body: &[u8]| {
        let mut b = vec![mode];
        b.extend_from_slice(body);
        std::fs::write(out.join(name), b).expect("write seed");
    };
    put("raw_series_log", 0, &t.series_log);
    put("raw_live", 1, &t.live);
    put("raw_sealed", 2, &t.sealed[0].2);
    put("crc_series_log", 3, &t.series_log);
    put("crc_live", 4, &t.live);
    put("crc_sealed_2", 5, &t.sealed[t.sealed.len() - 1].2);
    // Built mode from the live segment's records and the series log's first records.
    let mut b = Vec::new();
    let mut log_recs = Vec::new();
    let mut pos = LOG_HEADER;
    while pos + LOG_REC_HEADER <= t.series_log.len() && log_recs.len() < 255 {
        let comp = le_u32(&t.series_log, pos) as usize;
        let payload = &t.series_log[pos + LOG_REC_HEADER..pos + LOG_REC_HEADER + comp];
        log_recs.push(zstd::bulk::decompress(payload, 1 << 24).expect("series log record"));
        pos += LOG_REC_HEADER + comp;
    }
    b.push(log_recs.len() as u8);
    for r in &log_recs {
        b.extend_from_slice(&(r.len().min(65535) as u16).to_le_bytes());
        b.extend_from_slice(&r[..r.len().min(65535)]);
    }
    let seg = &t.live;
    b.extend_from_slice(&seg[8..16]);
    b.extend_from_slice(&seg[24..32]);
    for (min_t, max_t, n, raw) in decode_segment(seg) {
        b.extend_from_slice(&min_t.to_le_bytes());
        b.extend_from_slice(&max_t.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&(raw.len().min(65535) as u16).to_le_bytes());
        b.extend_from_slice(&raw[..raw.len().min(65535)]);
    }
    put("built_live", 6, &b);
    put("built_sealed", 7, &b);
}

/// Opens the store, reads everything it has, closes it.
fn exercise(dir: &Path) {
    let Ok(db) = Tsdb::open(opts(dir)) else {
        return;
    };
    let all = [Matcher::new(MatchType::Regex, "__name__", ".+").expect("regex")];
    if let Ok(q) = db.querier(i64::MIN, i64::MAX) {
        let hints = SelectHints {
            start: i64::MIN,
            end: i64::MAX,
            ..SelectHints::default()
        };
        let mut set = q.select(&hints, &all);
        for mut s in set.by_ref() {
            for p in s.samples.by_ref() {
                std::hint::black_box(p);
            }
            let _ = s.samples.take_err();
        }
        let _ = set.take_err();
        let _ = q.label_names(&[]);
        let _ = q.label_values("__name__", &[]);
        let _ = q.label_values("instance", &all);
    }
    // A seek into the middle of each series.
    if let Ok(q) = db.querier(1_699_999_200_000, 1_700_009_000_000) {
        for mut s in q.select(&SelectHints::default(), &all) {
            let _ = s.samples.seek(1_699_999_300_000);
            let _ = s.samples.next();
        }
    }
    let _ = db.status(5);
    let _ = db.close();
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = fresh_dir();
    let mut body = rest.to_vec();
    let mode = mode % 8;
    let write = |name: &str, b: &[u8]| std::fs::write(dir.join(name), b).expect("write file");
    // Sealed template segments are seq 1; the input's segment is seq 2.
    let sealed_template = |dir: &Path| {
        let (min_t, max_t, b) = &t.sealed[0];
        std::fs::write(dir.join(format!("0000000001_{min_t}_{max_t}.seg")), b).expect("write");
    };
    match mode {
        0 | 3 => {
            if mode == 3 {
                fix_log_crcs(&mut body);
            }
            write(SERIES_LOG, &body);
            sealed_template(&dir);
            write("0000000002.live", &t.live);
        }
        1 | 4 => {
            if mode == 4 {
                fix_segment_crcs(&mut body);
            }
            write(SERIES_LOG, &t.series_log);
            sealed_template(&dir);
            write("0000000002.live", &body);
        }
        2 | 5 => {
            if mode == 5 {
                fix_segment_crcs(&mut body);
            }
            write(SERIES_LOG, &t.series_log);
            let (min_t, max_t, _) = t.sealed[t.sealed.len() - 1];
            write(&format!("0000000002_{min_t}_{max_t}.seg"), &body);
        }
        _ => {
            let (log, seg, min_t, max_t) = build_files(&body);
            write(SERIES_LOG, &log);
            if mode == 6 {
                write("0000000002.live", &seg);
            } else {
                write(&format!("0000000002_{min_t}_{max_t}.seg"), &seg);
            }
        }
    }
    exercise(&dir);
    // Open again: what recovery and sealing left behind must open too.
    exercise(&dir);
    let _ = std::fs::remove_dir_all(&dir);
});
