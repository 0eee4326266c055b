//! Backfill: streams an OpenMetrics file with timestamps (what `promtool tsdb
//! create-blocks-from openmetrics` takes) into the store with bounded memory.
//!
//! # Why this shape
//! A backfill is a bulk load into a store nobody else writes to, so it skips the per-sample
//! appender and the per-flush fsync of live ingestion:
//!
//! * The file is read in pieces of about [`PIECE`] bytes cut at line ends. Worker threads parse
//!   pieces in parallel with the scrape parser ([`crate::scrape::textparse`] in streaming mode,
//!   which reuses the previous line's validated labels when a series repeats, as it does line
//!   after line in a backfill file) and resolve series: a per-worker map from the series text
//!   to its id, so labels are built only the first time a worker meets a series.
//! * The calling thread takes the parsed pieces back in file order, applies the
//!   out-of-order / duplicate checks per series, and buffers accepted samples per 2-hour
//!   partition. Every [`FLUSH_EVERY`] samples it logs new series, then appends one record per
//!   partition to that partition's segment (one zstd stream per segment, as live segments
//!   are), without an fsync per record.
//! * At the end every segment is fsynced once and sealed; the directory is fsynced once.
//!   A crash during an import leaves `.live` segments that the next open checks, cuts and seals
//!   like any other: what was imported before the torn tail stays.
//!
//! Memory is bounded by the pieces in flight (workers + queue, each [`PIECE`] of text), the
//! sample buffer ([`FLUSH_EVERY`] samples of 24 bytes) and at most [`MAX_OPEN_SEGMENTS`] open
//! segment writers; none of it grows with the file.
//!
//! Semantics follow promtool's backfill: the file must be OpenMetrics with a timestamp on every
//! sample and must end with `# EOF`. A parse error stops the import with the line number;
//! samples of earlier lines stay imported. Samples older than their series' newest stored
//! sample are skipped and counted; an identical sample (re-import) is skipped silently.

use super::encoding::RawSample;
use super::segment::{self, SegmentInfo, SegmentWriter};
use super::{inc, io_err, lock, partition_of, read, Error, Inner, Options, Tsdb};
use crate::model::{LabelsBuilder, METRIC_NAME};
use crate::scrape::textparse::{Entry, Format, Parser};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of text per piece a worker parses at once.
const PIECE: usize = 4 << 20;
/// Samples buffered before they are written (24 MiB); with the usual one-series-after-another
/// layout of a backfill file this gives records of tens of thousands of samples per partition.
const FLUSH_EVERY: usize = 1 << 20;
/// Segment writers kept open at once (each holds a zstd encoder of a few MiB); beyond this the
/// least recently used one is sealed and its partition continues in a new segment.
const MAX_OPEN_SEGMENTS: usize = 24;
/// Series-text -> id entries a worker keeps before it starts over.
const MAX_CACHED_SERIES: usize = 1 << 16;

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportStats {
    /// Input lines read.
    pub lines: u64,
    /// Samples stored (identical re-imports of stored samples are not counted).
    pub samples: u64,
    /// Samples refused (out of order, duplicate).
    pub skipped: u64,
    /// Series texts resolved to a series (each distinct series once per worker and cache).
    pub series_runs: u64,
    /// Bytes of input.
    pub bytes_read: u64,
    /// Bytes written to disk.
    pub bytes_written: u64,
    /// Bytes of the store on disk afterwards.
    pub disk_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Imports `file` into the store at `opts.path` (created if needed), then flushes and closes it.
pub fn import_openmetrics(file: &Path, opts: Options) -> Result<ImportStats, Error> {
    let started = Instant::now();
    let f = std::fs::File::open(file).map_err(io_err("opening", file))?;
    let db = Tsdb::open(Options {
        // The data is old by nature: time retention would refuse it as out of bounds.
        retention_time: Duration::ZERO,
        ..opts
    })?;
    let written_before = db.bytes_written();
    let mut st = ImportStats::default();
    let res = run(&db.inner, f, file, &mut st);
    let closed = db.close();
    res?;
    closed?;
    st.bytes_written = db.bytes_written() - written_before;
    st.disk_bytes = db.disk_bytes();
    st.elapsed = started.elapsed();
    Ok(st)
}

/// The input side shared by the workers: whoever holds the lock reads the next piece.
struct Reader {
    file: std::fs::File,
    /// Bytes after the last line end of the previous piece.
    carry: Vec<u8>,
    next_idx: u64,
    at_end: bool,
    bytes: u64,
}

impl Reader {
    /// Fills `buf` with the next piece (whole lines, except maybe the file's last line);
    /// returns its index, or `None` at the end.
    fn next_piece(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
        buf.clear();
        if self.at_end && self.carry.is_empty() {
            return Ok(None);
        }
        buf.append(&mut self.carry);
        while buf.len() < PIECE && !self.at_end {
            let have = buf.len();
            buf.resize(PIECE.max(have + (64 << 10)), 0);
            let n = loop {
                match self.file.read(&mut buf[have..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(have);
                    return Err(e);
                }
            };
            buf.truncate(have + n);
            self.bytes += n as u64;
            if n == 0 {
                self.at_end = true;
            }
        }
        if !self.at_end {
            // Cut after the last line end; the rest starts the next piece. A piece without any
            // line end (a line longer than PIECE) grows until it has one.
            match memchr::memrchr(b'\n', buf) {
                Some(i) => self.carry.extend_from_slice(&buf[i + 1..]),
                None => {
                    self.carry.append(buf);
                    return self.next_piece(buf);
                }
            }
            let keep = buf.len() - self.carry.len();
            buf.truncate(keep);
        }
        let idx = self.next_idx;
        self.next_idx += 1;
        Ok(Some(idx))
    }
}

/// One parsed piece, sent to the sink.
struct Parsed {
    idx: u64,
    samples: Vec<RawSample>,
    lines: u64,
    series_runs: u64,
    saw_eof: bool,
    /// Whether the piece held any bytes (data after `# EOF` is an error).
    nonempty: bool,
    /// (1-based line within the piece, message)
    err: Option<(u64, String)>,
}

fn run(db: &Arc<Inner>, f: std::fs::File, file: &Path, st: &mut ImportStats) -> Result<(), Error> {
    let reader = Mutex::new(Reader {
        file: f,
        carry: Vec::new(),
        next_idx: 0,
        at_end: false,
        bytes: 0,
    });
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let stop = AtomicBool::new(false);
    let pool: Mutex<Vec<Vec<RawSample>>> = Mutex::new(Vec::new());
    let (tx, rx) = mpsc::sync_channel::<Result<Parsed, Error>>(workers);
    let mut sink = Sink::new(db, file);
    let result = std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (reader, stop, pool) = (&reader, &stop, &pool);
            scope.spawn(move || worker(db, file, reader, stop, pool, tx));
        }
        drop(tx);
        let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0u64;
        let mut outcome = Ok(());
        for msg in rx.iter() {
            let p = match msg {
                Ok(p) => p,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            waiting.insert(p.idx, p);
            while let Some(p) = waiting.remove(&next) {
                next += 1;
                let r = sink.take(p, &pool);
                if let Err(e) = r {
                    outcome = Err(e);
                    break;
                }
            }
            if outcome.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Drain so that blocked workers see `stop` and end.
        for _ in rx.iter() {}
        outcome
    });
    let finished = result.and_then(|()| sink.finish_input());
    let sealed = sink.write_and_seal();
    st.bytes_read = lock(&reader).bytes;
    st.lines = sink.lines;
    st.samples = sink.accepted;
    st.skipped = sink.skipped;
    st.series_runs = sink.series_runs;
    finished?;
    sealed
}

fn worker(
    db: &Inner,
    file: &Path,
    reader: &Mutex<Reader>,
    stop: &AtomicBool,
    pool: &Mutex<Vec<Vec<RawSample>>>,
    tx: mpsc::SyncSender<Result<Parsed, Error>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(PIECE + (64 << 10));
    let mut cache: HashMap<Box<[u8]>, u32, xxhash_rust::xxh3::Xxh3Builder> = HashMap::default();
    while !stop.load(Ordering::Relaxed) {
        let idx = match lock(reader).next_piece(&mut buf) {
            Ok(Some(i)) => i,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(Error::Io {
                    op: "reading",
                    path: file.to_path_buf(),
                    source: e,
                }));
                return;
            }
        };
        let samples = lock(pool).pop().unwrap_or_default();
        let p = parse_piece(db, idx, &buf, samples, &mut cache);
        if tx.send(Ok(p)).is_err() {
            return;
        }
    }
}

/// Parses one piece into samples, resolving (and creating) series on the way.
fn parse_piece(
    db: &Inner,
    idx: u64,
    text: &[u8],
    mut samples: Vec<RawSample>,
    cache: &mut HashMap<Box<[u8]>, u32, xxhash_rust::xxh3::Xxh3Builder>,
) -> Parsed {
    samples.clear();
    let mut p = Parser::new_partial(text, Format::OpenMetrics);
    let mut out = Parsed {
        idx,
        samples: Vec::new(),
        lines: 0,
        series_runs: 0,
        saw_eof: false,
        nonempty: !text.is_empty(),
        err: None,
    };
    // The previous line's series: consecutive lines of one series skip the map.
    let mut prev: (&[u8], u32) = (&[], u32::MAX);
    while let Some(e) = p.next_entry() {
        let e = match e {
            Ok(Entry::Series(e)) => e,
            Ok(_) => continue,
            Err(e) => {
                out.err = Some((e.line as u64, e.msg));
                break;
            }
        };
        let Some(t) = e.timestamp_ms else {
            out.err = Some((p.line() as u64, "sample without timestamp".into()));
            break;
        };
        let sid = if prev.1 != u32::MAX && prev.0 == e.series {
            prev.1
        } else {
            let sid = match cache.get(e.series) {
                Some(&s) => s,
                None => {
                    let mut b = LabelsBuilder::new();
                    b.set(METRIC_NAME, e.name);
                    for (n, v) in e.labels() {
                        b.set(n, v.into_owned());
                    }
                    match db.get_or_create(&b.into_labels()) {
                        Ok(s) => {
                            if cache.len() >= MAX_CACHED_SERIES {
                                cache.clear();
                            }
                            cache.insert(e.series.into(), s);
                            out.series_runs += 1;
                            s
                        }
                        Err(err) => {
                            out.err = Some((p.line() as u64, err.to_string()));
                            break;
                        }
                    }
                }
            };
            prev = (e.series, sid);
            sid
        };
        samples.push(RawSample { sid, t, v: e.value });
    }
    out.lines = p.lines_read() as u64;
    out.saw_eof = p.saw_eof();
    out.samples = samples;
    out
}

/// The ordered consumer: checks, buffers and writes samples.
struct Sink<'a> {
    db: &'a Arc<Inner>,
    file: &'a Path,
    /// Newest accepted (t, value bits) per series id.
    lasts: Vec<(i64, u64)>,
    /// First accepted timestamp per series id (`i64::MIN`: none).
    firsts: Vec<i64>,
    /// Accepted samples waiting to be written, per partition (few: a linear search).
    parts: Vec<(i64, Vec<RawSample>)>,
    buffered: usize,
    /// Open writers per partition, with the flush number that last used them.
    writers: HashMap<i64, (SegmentWriter, u64)>,
    sealed: Vec<SegmentInfo>,
    flushes: u64,
    lines: u64,
    accepted: u64,
    skipped: u64,
    series_runs: u64,
    saw_eof: bool,
    min_t: i64,
    max_t: i64,
}

impl<'a> Sink<'a> {
    fn new(db: &'a Arc<Inner>, file: &'a Path) -> Self {
        let lasts = read(&db.index).lasts.iter().map(|l| l.get()).collect();
        Sink {
            db,
            file,
            lasts,
            firsts: Vec::new(),
            parts: Vec::new(),
            buffered: 0,
            writers: HashMap::new(),
            sealed: Vec::new(),
            flushes: 0,
            lines: 0,
            accepted: 0,
            skipped: 0,
            series_runs: 0,
            saw_eof: false,
            min_t: i64::MAX,
            max_t: i64::MIN,
        }
    }

    fn parse_err(&self, line: u64, msg: String) -> Error {
        Error::Parse {
            path: self.file.to_path_buf(),
            line,
            msg,
        }
    }

    /// Takes the next piece in file order.
    fn take(&mut self, p: Parsed, pool: &Mutex<Vec<Vec<RawSample>>>) -> Result<(), Error> {
        if self.saw_eof && p.nonempty {
            return Err(self.parse_err(self.lines, "unexpected data after # EOF".into()));
        }
        // Index in `parts` of the partition the previous sample went to.
        let mut cur = usize::MAX;
        for s in &p.samples {
            let sid = s.sid as usize;
            if sid >= self.lasts.len() {
                self.lasts.resize(sid + 1, (i64::MIN, 0));
            }
            if sid >= self.firsts.len() {
                self.firsts.resize(sid + 1, i64::MIN);
            }
            let (lt, lv) = self.lasts[sid];
            if s.t <= lt {
                if s.t < lt || s.v.to_bits() != lv {
                    self.skipped += 1;
                }
                continue;
            }
            self.lasts[sid] = (s.t, s.v.to_bits());
            if self.firsts[sid] == i64::MIN {
                self.firsts[sid] = s.t;
            }
            self.min_t = self.min_t.min(s.t);
            self.max_t = self.max_t.max(s.t);
            let part = partition_of(s.t);
            if self.parts.get(cur).map(|x| x.0) != Some(part) {
                cur = match self.parts.iter().position(|x| x.0 == part) {
                    Some(i) => i,
                    None => {
                        self.parts.push((part, Vec::new()));
                        self.parts.len() - 1
                    }
                };
            }
            if let Some((_, v)) = self.parts.get_mut(cur) {
                v.push(*s);
            }
            self.buffered += 1;
            self.accepted += 1;
        }
        self.series_runs += p.series_runs;
        if let Some((line, msg)) = p.err {
            return Err(self.parse_err(self.lines + line, msg));
        }
        self.lines += p.lines;
        self.saw_eof |= p.saw_eof;
        let mut v = p.samples;
        v.clear();
        lock(pool).push(v);
        if self.buffered >= FLUSH_EVERY {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Checks the end of the input.
    fn finish_input(&self) -> Result<(), Error> {
        if !self.saw_eof {
            return Err(self.parse_err(self.lines, "data does not end with # EOF".into()));
        }
        Ok(())
    }

    /// Writes the buffered samples: new series to the series log first, then one record per
    /// partition.
    fn write_buffered(&mut self) -> Result<(), Error> {
        if self.buffered == 0 {
            return Ok(());
        }
        let db = self.db;
        let dir = db.opts.path.clone();
        let mut fs = lock(&db.flush);
        db.log_new_series(&mut fs)?;
        self.flushes += 1;
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_unstable_by_key(|x| x.0);
        for (p, mut group) in parts {
            // Within a series the samples are in time order already; sort by series, then time.
            group.sort_unstable_by_key(|s| (s.sid, s.t));
            if !self.writers.contains_key(&p) {
                if self.writers.len() >= MAX_OPEN_SEGMENTS {
                    let lru = self
                        .writers
                        .iter()
                        .min_by_key(|(k, (_, used))| (*used, **k))
                        .map(|(k, _)| *k);
                    if let Some(k) = lru.and_then(|k| self.writers.remove(&k)) {
                        self.seal(k.0)?;
                    }
                }
                let seq = fs.next_seq;
                fs.next_seq += 1;
                let (w, b) = SegmentWriter::create_bulk(&dir, seq, p)
                    .map_err(io_err("creating segment in", &dir))?;
                inc(&db.stats.bytes_written, b);
                self.writers.insert(p, (w, self.flushes));
            }
            let Some((w, used)) = self.writers.get_mut(&p) else {
                continue;
            };
            *used = self.flushes;
            let b = w.append(&group).map_err(|e| Error::Io {
                op: "appending to",
                path: w.info().path,
                source: e,
            })?;
            inc(&db.stats.bytes_written, b);
            inc(&db.stats.appended, group.len() as u64);
        }
        self.buffered = 0;
        Ok(())
    }

    fn seal(&mut self, w: SegmentWriter) -> Result<(), Error> {
        let path = w.info().path;
        match w.seal() {
            Ok(Some(info)) => {
                self.sealed.push(info);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(Error::Io {
                op: "sealing",
                path,
                source: e,
            }),
        }
    }

    /// Writes what is buffered, seals every segment (one fsync each), fsyncs the directory and
    /// publishes the segments and the series' newest samples to the store.
    fn write_and_seal(&mut self) -> Result<(), Error> {
        let written = self.write_buffered();
        let mut res = written;
        let writers: Vec<SegmentWriter> = self.writers.drain().map(|(_, (w, _))| w).collect();
        for w in writers {
            if let Err(e) = self.seal(w) {
                res = res.and(Err(e));
            }
        }
        let db = self.db;
        if !self.sealed.is_empty() {
            let dir = &db.opts.path;
            if let Err(e) = segment::sync_dir(dir) {
                res = res.and(Err(Error::Io {
                    op: "syncing",
                    path: dir.clone(),
                    source: e,
                }));
            }
        }
        {
            let ix = read(&db.index);
            for (sid, (l, &(t, v))) in ix.lasts.iter().zip(&self.lasts).enumerate() {
                let lt = l.get().0;
                if t > lt {
                    let first = self.firsts.get(sid).copied().unwrap_or(i64::MIN);
                    if lt == i64::MIN && sid as u32 >= ix.loaded_bound {
                        l.first.store(first, Ordering::Release);
                    }
                    l.set(t, v);
                }
            }
        }
        let mut sh = lock(&db.shared);
        sh.segments.append(&mut self.sealed);
        sh.segments.sort_by_key(|s| s.seq);
        if self.min_t <= self.max_t {
            sh.min_t = sh.min_t.min(self.min_t);
            sh.max_t = sh.max_t.max(self.max_t);
            db.max_t.store(sh.max_t, Ordering::Relaxed);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Queryable, SelectHints};

    fn import_text(text: &str) -> (tempfile::TempDir, Result<ImportStats, Error>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("in.om");
        std::fs::write(&f, text).expect("write");
        let r = import_openmetrics(
            &f,
            Options {
                path: dir.path().join("data"),
                ..Options::default()
            },
        );
        (dir, r)
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, u64, &str)] = &[
            ("a 1 1\na x 2\n# EOF\n", 2, "ParseFloat"),
            ("a 1 1\nb 2\n# EOF\n", 2, "without timestamp"),
            ("a 1 1\na 2 2\n", 2, "does not end with # EOF"),
            ("a 1 1\n# EOF\na 2 3\n", 2, "after # EOF"),
            ("# TYPE a gauge\na{b=\"1} 1 1\n# EOF\n", 2, "label value"),
        ];
        for (text, line, msg) in cases {
            let (_d, r) = import_text(text);
            match r {
                Err(Error::Parse {
                    line: l, msg: m, ..
                }) => {
                    assert_eq!(l, *line, "{text:?}: {m}");
                    assert!(m.contains(msg), "{text:?}: {m}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn samples_checks_and_escapes() {
        let text = "# TYPE a gauge\n\
            a{x=\"q\\\"\\n\"} 1 1\n\
            a{x=\"q\\\"\\n\"} 2 2.5\n\
            a{x=\"q\\\"\\n\"} 9 2\n\
            a{x=\"q\\\"\\n\"} 2 2.5\n\
            a{x=\"q\\\"\\n\"} 3 2.5\n\
            b 1 1 # {t=\"1\"} 1\n\
            b -Inf 2\n\
            # EOF\n";
        let (d, r) = import_text(text);
        let st = r.expect("import");
        assert_eq!((st.samples, st.skipped, st.lines), (4, 2, 9));
        let db = Tsdb::open(Options {
            path: d.path().join("data"),
            retention_time: Duration::ZERO,
            ..Options::default()
        })
        .expect("open");
        let q = db.querier(i64::MIN, i64::MAX).expect("q");
        let got: Vec<(String, Vec<(i64, f64)>)> = q
            .select(
                &SelectHints::default(),
                &[
                    crate::model::Matcher::new(crate::model::MatchType::Regex, "__name__", ".+")
                        .expect("m"),
                ],
            )
            .map(|s| (s.labels.to_string(), s.samples.collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "a{x=\"q\\\"\\n\"}".to_string(),
                    vec![(1000, 1.0), (2500, 2.0)]
                ),
                (
                    "b".to_string(),
                    vec![(1000, 1.0), (2000, f64::NEG_INFINITY)]
                ),
            ]
        );
    }
}
