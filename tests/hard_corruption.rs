//! Whole-binary corruption test (issue 11, "Faults"; issue 4, "Tests"): a store built by the real
//! binary (three clean runs, then one killed with SIGKILL) gets one kind of damage per case in
//! each kind of on-disk file of `src/tsdb/FORMAT.md` (sealed segment, unfinished `.live`
//! segment, series log: truncated, flipped payload byte, flipped header byte). Each case must
//! start cleanly, report the damaged file in the log and in `edgeprom_storage_corruptions_total`,
//! answer every undamaged sample exactly as the undamaged store does, and never show a sample
//! under another series' labels, also after it has ingested again on top of the damage.
//!
//! The target's values encode their series (`corrupt_val{k="K"}` is `K * 1e6 + scrape number`),
//! so a sample shown under the wrong labels is caught.

mod common;

use common::{metric_value, write_file, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Series per run: run `g` exposes `k` in `0..SERIES_PER_RUN * (g + 1)`, so every run logs new
/// series in its own series-log record.
const SERIES_PER_RUN: usize = 4;
const RUNS: usize = 4;

/// Serves `corrupt_val{k}` for `k < n` (n set by the test).
fn start_target(n: Arc<AtomicUsize>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seq = AtomicU64::new(0);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            if c.read(&mut buf).unwrap_or(0) == 0 {
                continue;
            }
            let s = seq.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = String::from("# TYPE corrupt_val gauge\n");
            for k in 0..n.load(Ordering::SeqCst) {
                body.push_str(&format!(
                    "corrupt_val{{k=\"{k}\"}} {}\n",
                    k as u64 * 1_000_000 + s
                ));
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes());
        }
    });
    addr
}

/// k -> every stored (t_ms, value).
type Stored = BTreeMap<u64, BTreeSet<(i64, u64)>>;

fn stored(s: &Server) -> Stored {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (code, body) = s.get(&format!(
        "/api/v1/query?query=corrupt_val%5B1d%5D&time={:.3}",
        now + 1.0
    ));
    assert_eq!(code, 200, "query: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Stored::new();
    for series in v["data"]["result"].as_array().unwrap() {
        let k: u64 = series["metric"]["k"].as_str().unwrap().parse().unwrap();
        let e = out.entry(k).or_default();
        for p in series["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let val: f64 = p[1].as_str().unwrap().parse().unwrap();
            e.insert((t, val as u64));
        }
    }
    out
}

fn metric(s: &Server, name: &str) -> f64 {
    metric_value(&s.get("/metrics").1, name).unwrap_or(-1.0)
}

fn args(data: &Path, cfg: &str) -> Vec<String> {
    vec![
        format!("--config.file={cfg}"),
        format!("--storage.tsdb.path={}", data.display()),
        "--storage.tsdb.flush-interval=100ms".into(),
        "--storage.tsdb.retention.time=1d".into(),
    ]
}

fn start(dir: tempfile::TempDir, data: &Path, cfg: &str) -> Server {
    let a = args(data, cfg);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    Server::start_in_at(dir, common::free_port(), &a)
}

/// Writes `scrape.yml` (the target every 100 ms) and `quiet.yml` (no scraping) into `dir`.
fn configs(dir: &Path, target: &str) {
    write_file(
        dir,
        "scrape.yml",
        &format!("global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: c\n    static_configs:\n      - targets: ['{target}']\n"),
    );
    write_file(dir, "quiet.yml", "scrape_configs: []\n");
}

/// Ingests until every one of the `n` series has a few flushed samples.
fn ingest(s: &Server, n: usize) {
    let f0 = metric(s, "edgeprom_storage_flushes_total");
    s.wait_for("ingestion", Duration::from_secs(30), |s| {
        metric(s, "edgeprom_storage_flushes_total") >= f0 + 5.0
            && stored(s).values().filter(|v| v.len() >= 3).count() == n
    });
}

/// Builds the store: RUNS - 1 clean runs, then one killed run (leaves a `.live` segment).
fn build_store(dir: tempfile::TempDir, data: &Path, n: &AtomicUsize) -> tempfile::TempDir {
    let mut dir = dir;
    for g in 0..RUNS {
        let k = SERIES_PER_RUN * (g + 1);
        n.store(k, Ordering::SeqCst);
        let mut s = start(dir, data, "scrape.yml");
        ingest(&s, k);
        if g + 1 < RUNS {
            let (st, _, d) = s.stop(Duration::from_secs(20));
            assert!(st.success());
            dir = d;
        } else {
            s.child.kill().unwrap();
            s.child.wait().unwrap();
            dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
        }
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Segment files by seq: (path, sealed time range if sealed).
fn segments(data: &Path) -> BTreeMap<u64, (PathBuf, Option<(i64, i64)>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(data).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".seg") {
            let f: Vec<&str> = stem.splitn(3, '_').collect();
            out.insert(
                f[0].parse().unwrap(),
                (
                    p.clone(),
                    Some((f[1].parse().unwrap(), f[2].parse().unwrap())),
                ),
            );
        } else if let Some(stem) = name.strip_suffix(".live") {
            out.insert(stem.parse().unwrap(), (p.clone(), None));
        }
    }
    out
}

fn uvarint(b: &[u8], at: &mut usize) -> u64 {
    let (mut x, mut s) = (0u64, 0);
    loop {
        let c = b[*at];
        *at += 1;
        x |= u64::from(c & 0x7f) << s;
        if c < 0x80 {
            return x;
        }
        s += 7;
    }
}

/// The series log's records: (offset, length, the `k` values of the series each one logs).
fn log_records(path: &Path) -> Vec<(usize, usize, BTreeSet<u64>)> {
    let b = std::fs::read(path).unwrap();
    let mut at = 12;
    let mut out = Vec::new();
    while at + 12 <= b.len() {
        let comp = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let raw = zstd::bulk::decompress(&b[at + 12..at + 12 + comp], 64 << 20).unwrap();
        let mut ks = BTreeSet::new();
        let mut i = 0;
        while i < raw.len() {
            let _sid = uvarint(&raw, &mut i);
            for _ in 0..uvarint(&raw, &mut i) {
                let nl = uvarint(&raw, &mut i) as usize;
                let name = raw[i..i + nl].to_vec();
                i += nl;
                let vl = uvarint(&raw, &mut i) as usize;
                let value = String::from_utf8(raw[i..i + vl].to_vec()).unwrap();
                i += vl;
                if name == b"k" {
                    ks.insert(value.parse().unwrap());
                }
            }
        }
        out.push((at, 12 + comp, ks));
        at += 12 + comp;
    }
    out
}

/// Which file a case damages.
#[derive(Clone, Copy, Debug)]
enum File {
    /// The sealed segment with this seq.
    Sealed(u64),
    /// The unfinished segment of the killed run.
    Live,
    SeriesLog,
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Keep this fraction of the file.
    Truncate(f64),
    /// Cut this many bytes off the end.
    CutTail(usize),
    /// XOR 0x5a into the byte at this fraction of the file.
    FlipAt(f64),
    /// XOR 0x5a into the byte at this offset.
    FlipByte(usize),
    /// XOR 0x5a into the middle byte of this series-log record's payload.
    FlipRecord(usize),
    /// Cut a segment exactly where its last record starts (every record left is intact).
    CutLastRecord,
}

/// Offsets of a segment's records (36-byte file header; 32-byte record headers starting with
/// the payload length).
fn segment_records(b: &[u8]) -> Vec<usize> {
    let mut at = 36;
    let mut out = Vec::new();
    while at + 32 <= b.len() {
        out.push(at);
        at += 32 + u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

fn damage(path: &Path, d: Damage) {
    let mut b = std::fs::read(path).unwrap();
    match d {
        Damage::Truncate(f) => b.truncate((b.len() as f64 * f) as usize),
        Damage::CutTail(n) => b.truncate(b.len() - n),
        Damage::FlipAt(f) => {
            let i = (b.len() as f64 * f) as usize;
            b[i] ^= 0x5a;
        }
        Damage::FlipByte(i) => b[i] ^= 0x5a,
        Damage::FlipRecord(r) => {
            let (at, len, _) = log_records(path)[r].clone();
            b[at + 12 + (len - 12) / 2] ^= 0x5a;
        }
        Damage::CutLastRecord => {
            let last = *segment_records(&b).last().unwrap();
            b.truncate(last);
        }
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn damaged_files_start_cleanly_and_keep_every_undamaged_sample() {
    let n = Arc::new(AtomicUsize::new(0));
    let target = start_target(n.clone());
    let pristine = tempfile::tempdir().unwrap();
    configs(pristine.path(), &target);
    let pdata = pristine.path().join("data");
    let _pristine = build_store(pristine, &pdata, &n);
    let psegs = segments(&pdata);
    let live_seq = psegs
        .iter()
        .find(|(_, (_, r))| r.is_none())
        .map(|(s, _)| *s)
        .expect("the killed run left a .live segment");
    let first_sealed = *psegs.keys().next().unwrap();
    let records = log_records(&pdata.join("series.log"));
    assert!(
        records.len() >= RUNS,
        "one series-log record per run: {records:?}"
    );

    // The undamaged store as the binary answers it, and each segment's time range once sealed.
    let base_dir = tempfile::tempdir().unwrap();
    configs(base_dir.path(), &target);
    let bdata = base_dir.path().join("data");
    copy_dir(&pdata, &bdata);
    let s = start(base_dir, &bdata, "quiet.yml");
    let baseline = stored(&s);
    assert_eq!(metric(&s, "edgeprom_storage_corruptions_total"), 0.0);
    assert_eq!(
        baseline.len(),
        SERIES_PER_RUN * RUNS,
        "baseline: {baseline:?}"
    );
    let (_, _, _base_dir) = s.stop(Duration::from_secs(20));
    let ranges: BTreeMap<u64, (i64, i64)> = segments(&bdata)
        .into_iter()
        .filter_map(|(seq, (_, r))| r.map(|r| (seq, r)))
        .collect();

    let second = first_sealed + 1;
    // (case, file, damage, series whose samples may be lost)
    let last_rec = records.len() - 1;
    let cases: Vec<(&str, File, Damage, BTreeSet<u64>)> = vec![
        (
            "sealed segment truncated",
            File::Sealed(second),
            Damage::Truncate(0.6),
            BTreeSet::new(),
        ),
        (
            "sealed segment cut at a record boundary",
            File::Sealed(second),
            Damage::CutLastRecord,
            BTreeSet::new(),
        ),
        (
            "sealed segment byte flipped",
            File::Sealed(second),
            Damage::FlipAt(0.6),
            BTreeSet::new(),
        ),
        (
            "sealed segment header flipped",
            File::Sealed(second),
            Damage::FlipByte(12),
            BTreeSet::new(),
        ),
        (
            "live segment torn",
            File::Live,
            Damage::CutTail(7),
            BTreeSet::new(),
        ),
        (
            "live segment byte flipped",
            File::Live,
            Damage::FlipAt(0.5),
            BTreeSet::new(),
        ),
        (
            "live segment header flipped",
            File::Live,
            Damage::FlipByte(20),
            BTreeSet::new(),
        ),
        (
            "series log torn",
            File::SeriesLog,
            Damage::CutTail(5),
            records[last_rec].2.clone(),
        ),
        (
            "series log record flipped",
            File::SeriesLog,
            Damage::FlipRecord(1),
            records[1].2.clone(),
        ),
        (
            "series log header flipped",
            File::SeriesLog,
            Damage::FlipByte(3),
            BTreeSet::new(),
        ),
    ];
    for (case, file, dmg, lost_series) in cases {
        let dir = tempfile::tempdir().unwrap();
        configs(dir.path(), &target);
        let data = dir.path().join("data");
        copy_dir(&pdata, &data);
        let (path, seq) = match file {
            File::Sealed(q) => (psegs[&q].0.clone(), Some(q)),
            File::Live => (psegs[&live_seq].0.clone(), Some(live_seq)),
            File::SeriesLog => (pdata.join("series.log"), None),
        };
        let path = data.join(path.file_name().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        damage(&path, dmg);
        // Samples in the damaged segment's time range may be gone.
        let lost_range = seq.and_then(|q| ranges.get(&q).copied());

        let s = start(dir, &data, "quiet.yml");
        s.wait_for(
            &format!("{case}: corruption counted"),
            Duration::from_secs(20),
            |s| metric(s, "edgeprom_storage_corruptions_total") >= 1.0,
        );
        let log = s.log();
        let stem = name.trim_end_matches(".live").trim_end_matches(".seg");
        assert!(
            log.contains(stem) && !log.contains("panicked"),
            "{case}: the log must name {name}; log:\n{log}"
        );
        assert_eq!(s.get("/-/ready").0, 200, "{case}: ready");
        let got = stored(&s);
        check(case, &baseline, &got, &lost_series, lost_range);

        // Ingest on top of the damage, restart, check again: nothing undamaged lost, no lost
        // series id reused for another series.
        let (st, _, dir) = s.stop(Duration::from_secs(20));
        assert!(st.success(), "{case}: exit {st}");
        n.store(SERIES_PER_RUN * (RUNS + 1), Ordering::SeqCst);
        let s = start(dir, &data, "scrape.yml");
        ingest(&s, SERIES_PER_RUN * (RUNS + 1));
        let (st, _, dir) = s.stop(Duration::from_secs(20));
        assert!(st.success(), "{case}: exit {st}");
        let s = start(dir, &data, "quiet.yml");
        let again = stored(&s);
        for (k, samples) in &again {
            for &(t, v) in samples {
                assert_eq!(
                    v / 1_000_000,
                    *k,
                    "{case}: after re-ingesting, k={k} shows a sample of k={} at {t}",
                    v / 1_000_000
                );
            }
        }
        for (k, samples) in &got {
            let now = again.get(k).cloned().unwrap_or_default();
            let gone: Vec<_> = samples.difference(&now).collect();
            assert!(
                gone.is_empty(),
                "{case}: k={k} lost {} samples after re-ingesting: {gone:?}",
                gone.len()
            );
        }
        eprintln!(
            "{case}: started; {} of {} samples readable",
            got.values().map(BTreeSet::len).sum::<usize>(),
            baseline.values().map(BTreeSet::len).sum::<usize>()
        );
    }
}

/// `got` holds nothing the undamaged store does not (no sample under the wrong series), and
/// every undamaged sample: those of series not in `lost_series`, outside `lost_range`.
fn check(
    case: &str,
    baseline: &Stored,
    got: &Stored,
    lost_series: &BTreeSet<u64>,
    lost_range: Option<(i64, i64)>,
) {
    for (k, samples) in got {
        let base = baseline.get(k).cloned().unwrap_or_default();
        let extra: Vec<_> = samples.difference(&base).collect();
        assert!(
            extra.is_empty(),
            "{case}: k={k} has samples the undamaged store does not: {extra:?}"
        );
    }
    for (k, samples) in baseline {
        if lost_series.contains(k) {
            continue;
        }
        let have = got.get(k).cloned().unwrap_or_default();
        let missing: Vec<_> = samples
            .iter()
            .filter(|(t, _)| !lost_range.is_some_and(|(a, b)| *t >= a && *t <= b))
            .filter(|s| !have.contains(s))
            .collect();
        assert!(
            missing.is_empty(),
            "{case}: k={k} lost {} undamaged samples, first {:?}",
            missing.len(),
            missing.first()
        );
    }
}
