//! edgeprom's time-series database: a flash-friendly, append-only store that writes each sample
//! to the SD card about once.
//!
//! # Why this shape
//! Prometheus writes every sample several times (WAL, head chunks, blocks, compactions). Here a
//! committed sample waits in memory until the next flush (every `flush_interval`), then goes to
//! disk once, zstd-compressed, in the segment of its time partition; nothing is rewritten later,
//! and retention deletes whole files. A crash loses at most the samples of one flush interval.
//!
//! * `index`: symbols, series and postings; selects and label queries never touch samples.
//! * `encoding`: the scrape-aware sample columns inside a record (before zstd).
//! * `segment`: write-once segment files, one zstd stream per file, CRC per record.
//! * `serieslog`: series id -> labels, written once per series.
//! * `query`: the `Querier`; `import`: OpenMetrics backfill; `status`: `/api/v1/status/tsdb`.
//!
//! The byte layouts are documented in `segment`, `encoding` and `serieslog`; `FORMAT.md` sums
//! them up.
//!
//! # Locks (always taken in this order)
//! `flush` (one flusher at a time, owns the writers) -> a series-map shard -> `index`
//! (RwLock) -> `shared` (Mutex: unflushed samples and the published segment list). Readers take
//! `index` for reading and `shared` briefly to snapshot.

mod admin;
mod cache;
mod encoding;
mod import;
mod index;
mod query;
mod rangecoder;
mod segment;
mod serieslog;
mod status;

pub use admin::{CleanStats, SNAPSHOTS_DIR, TOMBSTONES_FILE};
pub use import::{import_openmetrics, ImportStats};
pub use status::{HeadStats, Stat, TsdbStatus};

use crate::model::Labels;
use crate::selfmetrics::Registry;
use crate::storage::{Appendable, Appender, Querier, Queryable, SeriesRef, StorageError};
use encoding::RawSample;
use index::Index;
use segment::{SegmentInfo, SegmentWriter};
use serieslog::SeriesLog;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

/// Default `--storage.tsdb.flush-interval`: 60 s, the longest a committed sample waits for
/// `fdatasync` (what a crash or power cut can lose).
///
/// The trade-off: every flush is one `fdatasync`, which writes the file's last partial 4 KiB
/// page again, so a flush costs about one page more than its data. With 2,009 series scraped
/// every 15 s, flushing every scrape (any interval under 15 s) writes 3.1 bytes per sample for
/// 0.9 stored; at 60 s it is about 1.35 (`examples/tsdb_bench.rs`). Busier stores flush sooner
/// without paying more (see [`EARLY_FLUSH_BYTES`]), so the 60 s window only applies where a
/// flush would carry less than two pages of data. Set a shorter interval to lose less on a
/// crash at the price of more writes (at 10 s: at most one 15 s scrape lost, 3.1 B/sample).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// A flush happens before the flush interval is up once the samples waiting for it would
/// fill this much compressed data and they have waited [`EARLY_FLUSH_AFTER`]: then the
/// rewritten partial page is at most a third of what the flush writes.
pub const EARLY_FLUSH_BYTES: u64 = 8 << 10;
/// The shortest wait before an early flush.
pub const EARLY_FLUSH_AFTER: Duration = Duration::from_secs(10);

/// Length of a time partition: a segment holds at most one partition's samples. Two hours
/// bound what a query on recent data must decode, and keep retention's granularity at 2 h,
/// while a 2 h zstd stream of 2,000 series is long enough for its window to pay off.
pub const PARTITION_MS: i64 = 2 * 3600 * 1000;

/// Committed-but-unflushed samples beyond which commits fail (24 bytes each: 48 MiB). Reached only
/// when flushes keep failing (full disk) or during a backfill that does not flush.
const MAX_UNFLUSHED: usize = 2_000_000;

/// How often retention runs in `run` (as well as at open).
const RETENTION_EVERY: Duration = Duration::from_secs(60);

const SHARDS: usize = 16;

/// Storage options (flags `--storage.tsdb.*`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Data directory (`--storage.tsdb.path`).
    pub path: PathBuf,
    /// Drop data older than this behind the newest sample; zero disables
    /// (`--storage.tsdb.retention.time`).
    pub retention_time: Duration,
    /// Keep the directory under this many bytes; zero disables (`--storage.tsdb.retention.size`).
    pub retention_size: u64,
    /// How often accepted samples are made durable (`--storage.tsdb.flush-interval`).
    pub flush_interval: Duration,
    /// Refuse new series beyond this many; zero means unlimited.
    pub max_series: usize,
    /// Memory for decoded samples kept for repeated reads; zero disables
    /// (`--storage.tsdb.read-cache-size`, see `cache`).
    pub read_cache_size: usize,
}

/// Default `--storage.tsdb.read-cache-size`: 64 MiB, about 15 million cached samples, which
/// holds every segment of a few-thousand-series Pi store for a day and the dashboard series of
/// a larger one.
pub const DEFAULT_READ_CACHE_BYTES: usize = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            path: PathBuf::from("data/"),
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_size: 0,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_series: 0,
            read_cache_size: DEFAULT_READ_CACHE_BYTES,
        }
    }
}

/// Errors of opening, flushing and importing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The store is closed.
    #[error("storage is closed")]
    Closed,
    /// A file's content is damaged in a way that cannot be cut off safely (tombstones).
    #[error("{path}: {msg}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An import input line could not be parsed.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// Input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        msg: String,
    },
    /// An append failed during an import.
    #[error("{path}:{line}: {source}")]
    Append {
        /// Input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The storage error.
        #[source]
        source: StorageError,
    },
}

// `e` and its sources joined with ": " (`appending to FILE: No space left on device`).
use crate::logging::error_chain;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Counters kept per store and exposed as self metrics.
#[derive(Default)]
struct Stats {
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicate: AtomicU64,
    out_of_bounds: AtomicU64,
    series_created: AtomicU64,
    series_limit_hits: AtomicU64,
    bytes_written: AtomicU64,
    corruptions: AtomicU64,
    write_failures: AtomicU64,
    rejected_appends: AtomicU64,
    flushes: AtomicU64,
    time_retentions: AtomicU64,
    size_retentions: AtomicU64,
    removed_bytes: AtomicU64,
    removed_segments: AtomicU64,
}

fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// State shared by appenders, the flusher and readers; guarded by `Inner::shared`.
struct Shared {
    /// Committed samples not yet on disk, in commit order (so in time order per series).
    unflushed: Vec<RawSample>,
    /// Series created since the last successful series-log write.
    new_series: Vec<u32>,
    /// Published segments (readers read each only up to `len`), in seq order.
    segments: Vec<SegmentInfo>,
    /// Time range over everything stored.
    min_t: i64,
    max_t: i64,
    /// Deleted intervals (admin API), replaced whole on change.
    tombstones: Arc<admin::Tombstones>,
}

/// Owned by the flusher.
struct FlushState {
    live: Option<SegmentWriter>,
    log: SeriesLog,
    next_seq: u64,
}

struct Inner {
    opts: Options,
    /// Decoded samples kept for repeated reads.
    cache: cache::ReadCache,
    index: RwLock<Index>,
    shards: [Mutex<HashMap<u64, Ids>>; SHARDS],
    shared: Mutex<Shared>,
    flush: Mutex<FlushState>,
    stats: Stats,
    closed: AtomicBool,
    /// Set while flushes fail (full disk): commits are refused until a flush succeeds.
    failing: AtomicBool,
    /// Why the last failed flush failed (with its cause), for the refusals' message.
    last_write_error: Mutex<String>,
    /// Newest committed timestamp (a copy of `Shared::max_t` for the lock-free bounds check).
    max_t: AtomicI64,
    /// Bytes of the series log (a copy readable without the flush lock).
    log_bytes: AtomicU64,
    /// Compressed bytes per sample of recent flushes (`f64` bits), to predict a flush's size.
    recent_bytes_per_sample: AtomicU64,
    opened_at: Instant,
}

/// Series ids sharing one label hash (almost always one).
enum Ids {
    One(u32),
    Many(Vec<u32>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

fn partition_of(t: i64) -> i64 {
    t.div_euclid(PARTITION_MS) * PARTITION_MS
}

/// The storage engine. Cheap to share (`Arc<Tsdb>`); every method takes `&self`.
pub struct Tsdb {
    inner: Arc<Inner>,
}

impl Tsdb {
    /// Opens (or creates) the store in `opts.path`: loads the series log, seals segments left
    /// unfinished by a crash (cutting torn or corrupt tails, which are logged and counted),
    /// recovers each series' newest sample, applies retention.
    pub fn open(opts: Options) -> Result<Arc<Tsdb>, Error> {
        let dir = opts.path.clone();
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let stats = Stats::default();
        let log_path = dir.join(serieslog::FILE_NAME);
        let (log, loaded) = SeriesLog::open(&dir).map_err(io_err("opening", &log_path))?;
        if let Some(d) = &loaded.damage {
            tracing::warn!(damage = %d, "series log damaged; cut");
            inc(&stats.corruptions, 1);
        }
        let tombstones = admin::load(&dir)?;
        admin::remove_leftovers(&dir);
        let mut ix = Index::default();
        let mut shards: [HashMap<u64, Ids>; SHARDS] = Default::default();
        for (sid, pairs) in loaded.entries {
            let labels = Labels::from_pairs(pairs);
            if (sid as usize) < ix.id_bound() as usize && ix.labels_eq(sid, &labels) {
                continue;
            }
            ix.insert(sid, &labels);
            add_id(&mut shards[shard_of(labels.hash64())], labels.hash64(), sid);
        }
        // Segments.
        let mut segments = Vec::new();
        let mut next_seq = 0u64;
        let rd = std::fs::read_dir(&dir).map_err(io_err("listing", &dir))?;
        let mut lives = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((seq, mn, mx)) = segment::parse_sealed_name(name) {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                next_seq = next_seq.max(seq + 1);
                segments.push(SegmentInfo {
                    seq,
                    path: e.path(),
                    min_t: mn,
                    max_t: mx,
                    len,
                    live: false,
                });
            } else if let Some(seq) = segment::parse_live_name(name) {
                next_seq = next_seq.max(seq + 1);
                lives.push((seq, e.path()));
            }
        }
        for (seq, path) in lives {
            match recover_live(&dir, seq, &path, &stats) {
                Ok(Some(info)) => segments.push(info),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        admin::drop_superseded(&mut segments);
        segments.sort_by_key(|s| s.seq);
        if loaded.damage.is_some() {
            reserve_ids_in_segments(&mut ix, &segments, &stats);
        }
        let log_len = log.len();
        let (min_t, max_t) = segments.iter().fold((i64::MAX, i64::MIN), |(a, b), s| {
            (a.min(s.min_t), b.max(s.max_t))
        });
        let inner = Arc::new(Inner {
            cache: cache::ReadCache::new(opts.read_cache_size),
            opts,
            index: RwLock::new(ix),
            shards: shards.map(Mutex::new),
            shared: Mutex::new(Shared {
                unflushed: Vec::new(),
                new_series: Vec::new(),
                segments,
                min_t,
                max_t,
                tombstones: Arc::new(tombstones),
            }),
            flush: Mutex::new(FlushState {
                live: None,
                log,
                next_seq,
            }),
            stats,
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            last_write_error: Mutex::new(String::new()),
            max_t: AtomicI64::new(max_t),
            log_bytes: AtomicU64::new(log_len),
            recent_bytes_per_sample: AtomicU64::new(1.0f64.to_bits()),
            opened_at: Instant::now(),
        });
        inner.recover_lasts();
        inner.apply_retention();
        register_metrics(&inner);
        tracing::info!(
            path = %inner.opts.path.display(),
            series = read(&inner.index).num_series(),
            segments = lock(&inner.shared).segments.len(),
            took_ms = inner.opened_at.elapsed().as_millis() as u64,
            "storage opened"
        );
        Ok(Arc::new(Tsdb { inner }))
    }

    /// Periodic flush and retention until shutdown starts; then a final flush and close.
    pub async fn run(self: Arc<Self>, mut shutdown: crate::shutdown::Shutdown) {
        let v = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || v.verify_sealed()).await;
        let mut tick = tokio::time::interval(
            self.inner
                .opts
                .flush_interval
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(10)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_retention = Instant::now();
        let mut last_flush = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.started() => break,
            }
            let ret = last_retention.elapsed() >= RETENTION_EVERY;
            let flush = self.flush_due(last_flush.elapsed());
            if !(ret || flush) {
                continue;
            }
            if ret {
                last_retention = Instant::now();
            }
            if flush {
                last_flush = Instant::now();
            }
            let db = self.inner.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if flush {
                    // A failure is logged (with its cause) and counted inside; the samples
                    // stay in memory and the next tick retries.
                    let _ = db.flush();
                }
                if ret {
                    db.apply_retention();
                }
            })
            .await;
        }
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = me.close() {
                tracing::error!(error = %error_chain(&e), "final flush failed");
            }
        })
        .await;
    }

    /// Whether a flush is due `since_last_flush` after the previous one: when the flush
    /// interval is up, or early when the waiting samples would make at least
    /// [`EARLY_FLUSH_BYTES`] of compressed data and [`EARLY_FLUSH_AFTER`] has passed. `run`
    /// asks every second; a bulk writer may ask too.
    pub fn flush_due(&self, since_last_flush: Duration) -> bool {
        let i = &self.inner;
        if since_last_flush >= i.opts.flush_interval {
            return true;
        }
        if since_last_flush < EARLY_FLUSH_AFTER {
            return false;
        }
        let pending = lock(&i.shared).unflushed.len() as f64;
        let per_sample = f64::from_bits(i.recent_bytes_per_sample.load(Ordering::Relaxed));
        pending * per_sample >= EARLY_FLUSH_BYTES as f64
    }

    /// Makes every committed sample durable now.
    pub fn flush(&self) -> Result<(), Error> {
        self.inner.flush()
    }

    /// Applies time and size retention now (also done at open and every minute by `run`).
    pub fn apply_retention(&self) {
        self.inner.apply_retention()
    }

    /// Final flush, then seals the open segment; later appends fail with `StorageError::Closed`.
    pub fn close(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let r = self.inner.flush();
        let mut fs = lock(&self.inner.flush);
        if let Some(w) = fs.live.take() {
            let seq = w.info().seq;
            match w.seal() {
                Ok(sealed) => {
                    let mut sh = lock(&self.inner.shared);
                    sh.segments.retain(|s| s.seq != seq);
                    if let Some(i) = sealed {
                        sh.segments.push(i);
                        sh.segments.sort_by_key(|s| s.seq);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sealing segment at close failed"),
            }
        }
        r
    }

    /// The status page's numbers, each list cut to `limit` entries.
    pub fn status(&self, limit: usize) -> TsdbStatus {
        status::build(self, limit)
    }

    /// Whether the store accepts appends and answers queries.
    pub fn is_ready(&self) -> bool {
        !self.inner.closed.load(Ordering::SeqCst)
    }

    /// Bytes this store has written to disk since open (all files).
    pub fn bytes_written(&self) -> u64 {
        self.inner.stats.bytes_written.load(Ordering::Relaxed)
    }

    /// Bytes of every file the store holds (segments, live segment, series log, tombstones).
    pub fn disk_bytes(&self) -> u64 {
        self.inner.disk_bytes()
    }

    /// Corruptions found (damaged tails cut at open, damaged records met when reading).
    pub fn corruptions(&self) -> u64 {
        self.inner.stats.corruptions.load(Ordering::Relaxed)
    }

    /// Samples accepted since open.
    pub fn samples_appended(&self) -> u64 {
        self.inner.stats.appended.load(Ordering::Relaxed)
    }

    /// Approximate heap bytes of the series index.
    pub fn index_bytes(&self) -> usize {
        read(&self.inner.index).approx_bytes()
    }

    /// Memory the read cache holds now (see `cache`).
    pub fn read_cache_bytes(&self) -> usize {
        self.inner.cache.stats().0
    }
}

fn shard_of(h: u64) -> usize {
    (h >> 60) as usize % SHARDS
}

fn add_id(m: &mut HashMap<u64, Ids>, h: u64, sid: u32) {
    match m.get_mut(&h) {
        None => {
            m.insert(h, Ids::One(sid));
        }
        Some(Ids::One(o)) => {
            let o = *o;
            m.insert(h, Ids::Many(vec![o, sid]));
        }
        Some(Ids::Many(v)) => v.push(sid),
    }
}

/// Bound on the series ids [`reserve_ids_in_segments`] accepts from a segment (a corrupt but
/// CRC-valid id must not make it allocate gigabytes): 64 M series, far beyond a board.
const MAX_SCANNED_SID: u32 = 1 << 26;

/// After series-log damage: finds the highest series id any segment uses and reserves the ids
/// up to it, so that a series whose labels were lost never gets its id reused by a new series
/// (which would show the lost samples under the new series' labels) and so that segment
/// records naming lost ids still decode. Reads every segment once; runs only when the log was
/// damaged.
fn reserve_ids_in_segments(ix: &mut Index, segments: &[SegmentInfo], stats: &Stats) {
    let before = ix.id_bound();
    let mut top = before;
    for s in segments {
        let Ok(bytes) = std::fs::read(&s.path) else {
            continue;
        };
        let r = segment::decode(&bytes, MAX_SCANNED_SID, i64::MIN, i64::MAX, |sid, _, _| {
            top = top.max(sid.saturating_add(1));
        });
        if let Err(d) = r {
            tracing::warn!(file = %s.path.display(), damage = %d, "damaged segment; samples after the damage are unreadable");
            inc(&stats.corruptions, 1);
        }
    }
    if top > before {
        ix.reserve(top);
        tracing::warn!(
            lost_series = top - before,
            "series ids used by segments but missing from the damaged series log; their samples are unreadable"
        );
    }
}

/// Checks a segment left `.live` by a crash, cuts a damaged tail and seals it.
fn recover_live(
    dir: &Path,
    seq: u64,
    path: &Path,
    stats: &Stats,
) -> Result<Option<SegmentInfo>, Error> {
    let bytes = std::fs::read(path).map_err(io_err("reading", path))?;
    if let Err(e) = segment::parse_header(&bytes) {
        tracing::warn!(file = %path.display(), damage = %e, "unfinished segment without a valid header removed");
        inc(&stats.corruptions, 1);
        std::fs::remove_file(path).map_err(io_err("removing", path))?;
        return Ok(None);
    }
    let sc = segment::scan(&bytes);
    if let Some(d) = &sc.damage {
        tracing::warn!(
            file = %path.display(), damage = %d, kept_bytes = sc.valid_len, cut_bytes = bytes.len() - sc.valid_len,
            "torn or corrupt tail of unfinished segment cut"
        );
        inc(&stats.corruptions, 1);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err("opening", path))?;
        f.set_len(sc.valid_len as u64)
            .map_err(io_err("truncating", path))?;
        f.sync_all().map_err(io_err("syncing", path))?;
    }
    let (mn, mx) = sc.time_range().unwrap_or((i64::MAX, i64::MIN));
    segment::seal_file(dir, path, seq, mn, mx, sc.valid_len as u64, true)
        .map_err(io_err("sealing", path))
}

impl Inner {
    fn get_or_create(&self, labels: &Labels) -> Result<u32, StorageError> {
        let h = labels.hash64();
        let mut shard = lock(&self.shards[shard_of(h)]);
        if let Some(ids) = shard.get(&h) {
            let ix = read(&self.index);
            let found = match ids {
                Ids::One(s) => ix.labels_eq(*s, labels).then_some(*s),
                Ids::Many(v) => v.iter().copied().find(|&s| ix.labels_eq(s, labels)),
            };
            if let Some(s) = found {
                return Ok(s);
            }
        }
        let limit = self.opts.max_series;
        // At the limit, refuse under the read lock: a flood of new series (every scrape of a
        // target exposing a million) must not serialise readers on the write lock.
        if limit > 0 && read(&self.index).num_series() >= limit {
            inc(&self.stats.series_limit_hits, 1);
            return Err(StorageError::SeriesLimit { limit });
        }
        let mut ix = write(&self.index);
        if limit > 0 && ix.num_series() >= limit {
            inc(&self.stats.series_limit_hits, 1);
            return Err(StorageError::SeriesLimit { limit });
        }
        let sid = ix.id_bound();
        ix.insert(sid, labels);
        drop(ix);
        add_id(&mut shard, h, sid);
        lock(&self.shared).new_series.push(sid);
        inc(&self.stats.series_created, 1);
        Ok(sid)
    }

    /// Each series' newest stored sample, from the newest partition's segments.
    fn recover_lasts(&self) {
        let (segs, older_max): (Vec<SegmentInfo>, i64) = {
            let sh = lock(&self.shared);
            let from = sh.max_t.saturating_sub(PARTITION_MS);
            let older = sh.segments.iter().filter(|s| s.max_t < from);
            (
                sh.segments
                    .iter()
                    .filter(|s| s.max_t >= from)
                    .cloned()
                    .collect(),
                older.map(|s| s.max_t).max().unwrap_or(i64::MIN),
            )
        };
        {
            // A series none of the decoded segments holds ended in an older one.
            let mut ix = write(&self.index);
            ix.loaded_bound = ix.id_bound();
            ix.unrecovered_last = older_max;
        }
        let ix = read(&self.index);
        let bound = ix.id_bound();
        for s in segs {
            let bytes = match std::fs::read(&s.path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %s.path.display(), error = %e, "reading segment failed");
                    continue;
                }
            };
            let r = segment::decode(&bytes, bound, i64::MIN, i64::MAX, |sid, t, v| {
                if let Some(l) = ix.lasts.get(sid as usize) {
                    if t > l.get().0 {
                        l.set(t, v.to_bits());
                    }
                }
            });
            if let Err(d) = r {
                tracing::warn!(file = %s.path.display(), damage = %d, "damaged segment; samples after the damage are unreadable");
                inc(&self.stats.corruptions, 1);
            }
        }
    }

    /// Reads every sealed segment once and reports damaged ones (reads do not wear flash).
    fn verify_sealed(&self) {
        let segs: Vec<SegmentInfo> = lock(&self.shared)
            .segments
            .iter()
            .filter(|s| !s.live)
            .cloned()
            .collect();
        for s in segs {
            let Ok(bytes) = std::fs::read(&s.path) else {
                continue;
            };
            let damage = match segment::parse_header(&bytes) {
                Err(e) => Some(e),
                Ok(_) => {
                    let sc = segment::scan(&bytes);
                    // A file cut exactly at a record boundary scans clean; its name still says
                    // what time range it held when sealed.
                    let short = sc.damage.is_none()
                        && !matches!(sc.time_range(), Some((mn, mx)) if mn <= s.min_t && mx >= s.max_t);
                    if short {
                        Some(format!(
                            "records end before the sealed time range {}..{} (file cut at offset {})",
                            s.min_t, s.max_t, sc.valid_len
                        ))
                    } else {
                        sc.damage
                    }
                }
            };
            if let Some(d) = damage {
                tracing::warn!(file = %s.path.display(), damage = %d, "damaged segment found");
                inc(&self.stats.corruptions, 1);
            }
        }
    }

    fn disk_bytes(&self) -> u64 {
        let log = self.log_bytes.load(Ordering::Relaxed);
        let sh = lock(&self.shared);
        log + sh.tombstones.file_len() + sh.segments.iter().map(|s| s.len).sum::<u64>()
    }

    fn commit(&self, batch: &[RawSample]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(StorageError::Closed);
        }
        if self.failing.load(Ordering::SeqCst) {
            inc(&self.stats.rejected_appends, batch.len() as u64);
            return Err(StorageError::Write(format!(
                "writing to disk is failing ({}); samples refused until a flush succeeds",
                lock(&self.last_write_error)
            )));
        }
        let ix = read(&self.index);
        let mut sh = lock(&self.shared);
        if sh.unflushed.len() + batch.len() > MAX_UNFLUSHED {
            drop(sh);
            inc(&self.stats.rejected_appends, batch.len() as u64);
            return Err(StorageError::Write(format!(
                "{MAX_UNFLUSHED} samples wait for a flush; refusing more"
            )));
        }
        let (mut n, mut mn, mut mx) = (0u64, sh.min_t, sh.max_t);
        for s in batch {
            let Some(l) = ix.lasts.get(s.sid as usize) else {
                continue;
            };
            let (lt, lv) = l.get();
            if s.t > lt {
                if lt == i64::MIN && s.sid >= ix.loaded_bound {
                    l.first.store(s.t, Ordering::Release);
                }
                l.set(s.t, s.v.to_bits());
                sh.unflushed.push(*s);
                n += 1;
                mn = mn.min(s.t);
                mx = mx.max(s.t);
            } else if s.t < lt {
                inc(&self.stats.out_of_order, 1);
            } else if s.v.to_bits() != lv {
                inc(&self.stats.duplicate, 1);
            }
        }
        sh.min_t = mn;
        sh.max_t = mx;
        self.max_t.store(mx, Ordering::Relaxed);
        inc(&self.stats.appended, n);
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        let mut fs = lock(&self.flush);
        let dir = self.opts.path.clone();
        let mut batch = lock(&self.shared).unflushed.clone();
        let n = batch.len();
        // 1. New series first, so every id a segment uses is logged before it.
        self.log_new_series(&mut fs)?;
        if n == 0 {
            self.write_ok();
            return Ok(());
        }
        // 2. Samples, by partition then series then time (the sort is stable: commit order
        //    within a series is time order).
        batch.sort_by_key(|s| (partition_of(s.t), s.sid));
        let mut written: Vec<i64> = Vec::new();
        let mut sealed: Vec<(u64, Option<SegmentInfo>)> = Vec::new();
        let mut failure = None;
        let mut partial = false;
        let mut i = 0;
        while i < n {
            let p = partition_of(batch[i].t);
            let mut j = i;
            while j < n && partition_of(batch[j].t) == p {
                j += 1;
            }
            let group = &batch[i..j];
            i = j;
            let res = self.write_group(&mut fs, &dir, p, group, &mut sealed);
            match res {
                Ok(b) => {
                    inc(&self.stats.bytes_written, b);
                    written.push(p);
                    if group.len() >= 100 {
                        let per = b as f64 / group.len() as f64;
                        self.recent_bytes_per_sample
                            .store(per.to_bits(), Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    partial = true;
                    break;
                }
            }
        }
        // One-shot segments deferred their directory fsync to here.
        if !sealed.is_empty() {
            if let Err(e) = segment::sync_dir(&dir) {
                failure.get_or_insert(Error::Io {
                    op: "syncing",
                    path: dir.clone(),
                    source: e,
                });
            }
        }
        // 3. Publish: segment list and unflushed samples change together under `shared`.
        let mut sh = lock(&self.shared);
        for (seq, info) in sealed {
            sh.segments.retain(|s| s.seq != seq);
            if let Some(info) = info {
                sh.segments.push(info);
            }
        }
        if let Some(w) = &fs.live {
            let info = w.info();
            sh.segments.retain(|s| s.seq != info.seq);
            if info.min_t <= info.max_t {
                sh.segments.push(info);
            }
        }
        sh.segments.sort_by_key(|s| s.seq);
        if !partial {
            sh.unflushed.drain(..n);
        } else {
            // Only some partitions made it: keep the others for the next flush.
            let mut k = 0;
            sh.unflushed.retain(|s| {
                k += 1;
                k > n || !written.contains(&partition_of(s.t))
            });
        }
        let pending = sh.unflushed.len();
        drop(sh);
        inc(&self.stats.flushes, 1);
        match failure {
            None => {
                self.write_ok();
                Ok(())
            }
            Some(e) => {
                self.write_failed(&e);
                tracing::warn!(error = %error_chain(&e), pending, "flush failed; samples kept in memory and retried");
                Err(e)
            }
        }
    }

    /// Appends the series created since the last call to the series log (durably), so that
    /// every id a segment record uses is logged before the record.
    fn log_new_series(&self, fs: &mut FlushState) -> Result<(), Error> {
        let new_sids = lock(&self.shared).new_series.clone();
        if new_sids.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(u32, Vec<(String, String)>)> = {
            let ix = read(&self.index);
            new_sids.iter().map(|&s| (s, ix.label_pairs(s))).collect()
        };
        match fs.log.append(pairs.iter().map(|(s, p)| (*s, &p[..]))) {
            Ok(b) => {
                inc(&self.stats.bytes_written, b);
                self.log_bytes.store(fs.log.len(), Ordering::Relaxed);
                lock(&self.shared).new_series.drain(..new_sids.len());
            }
            Err(e) => {
                let e = Error::Io {
                    op: "appending to",
                    path: fs.log.path().to_path_buf(),
                    source: e,
                };
                self.write_failed(&e);
                tracing::warn!(error = %error_chain(&e), "flush failed; samples kept in memory and retried");
                return Err(e);
            }
        }
        Ok(())
    }

    fn write_ok(&self) {
        if self.failing.swap(false, Ordering::SeqCst) {
            tracing::info!("writing to disk works again; accepting samples");
        }
    }

    fn write_failed(&self, e: &Error) {
        inc(&self.stats.write_failures, 1);
        *lock(&self.last_write_error) = error_chain(e);
        self.failing.store(true, Ordering::SeqCst);
    }

    /// Writes one partition's samples; returns bytes written.
    fn write_group(
        &self,
        fs: &mut FlushState,
        dir: &Path,
        p: i64,
        group: &[RawSample],
        sealed: &mut Vec<(u64, Option<SegmentInfo>)>,
    ) -> Result<u64, Error> {
        let live_p = fs.live.as_ref().map(|w| w.partition);
        if let Some(lp) = live_p {
            if p < lp {
                // Older partition than the live one (late data, backfill): its own segment.
                let seq = fs.next_seq;
                fs.next_seq += 1;
                let (info, b) = segment::write_oneshot(dir, seq, p, group)
                    .map_err(io_err("writing segment in", dir))?;
                sealed.push((seq, info));
                return Ok(b);
            }
            if p > lp {
                self.seal_live(fs, sealed);
            }
        }
        let mut b = 0;
        if fs.live.is_none() {
            let seq = fs.next_seq;
            fs.next_seq += 1;
            let (w, hb) =
                SegmentWriter::create(dir, seq, p).map_err(io_err("creating segment in", dir))?;
            b += hb;
            fs.live = Some(w);
        }
        let Some(w) = fs.live.as_mut() else {
            return Ok(b);
        };
        let (seq, old_len) = (w.seq(), w.len());
        match w.append(group) {
            Ok(k) => {
                self.cache.extend(seq, old_len, w.len(), group);
                Ok(b + k)
            }
            Err(e) => {
                let path = w.info().path;
                // The compressor is ahead of the file now: this segment is finished.
                self.seal_live(fs, sealed);
                Err(Error::Io {
                    op: "appending to",
                    path,
                    source: e,
                })
            }
        }
    }

    fn seal_live(&self, fs: &mut FlushState, sealed: &mut Vec<(u64, Option<SegmentInfo>)>) {
        if let Some(w) = fs.live.take() {
            let info = w.info();
            match w.seal() {
                Ok(s) => sealed.push((info.seq, s)),
                Err(e) => {
                    // Stays `.live`; the next open checks and seals it.
                    tracing::warn!(file = %info.path.display(), error = %e, "sealing segment failed");
                    sealed.push((
                        info.seq,
                        Some(SegmentInfo {
                            live: false,
                            ..info
                        }),
                    ));
                }
            }
        }
    }

    /// Removes whole sealed segments, oldest first, beyond the time or size limit.
    fn apply_retention(&self) {
        let fs = lock(&self.flush);
        let log_len = fs.log.len();
        let mut doomed: Vec<(SegmentInfo, bool)> = Vec::new();
        {
            let mut sh = lock(&self.shared);
            let mut order: Vec<usize> = (0..sh.segments.len())
                .filter(|&i| !sh.segments[i].live)
                .collect();
            order.sort_by_key(|&i| (sh.segments[i].max_t, sh.segments[i].seq));
            let rt = self.opts.retention_time.as_millis() as i64;
            let cutoff = if rt > 0 && sh.max_t != i64::MIN {
                sh.max_t.saturating_sub(rt)
            } else {
                i64::MIN
            };
            let mut total: u64 =
                log_len + sh.tombstones.file_len() + sh.segments.iter().map(|s| s.len).sum::<u64>();
            let limit = self.opts.retention_size;
            let mut remove = vec![false; sh.segments.len()];
            for &i in &order {
                let s = &sh.segments[i];
                if s.max_t < cutoff {
                    remove[i] = true;
                    total -= s.len;
                    doomed.push((s.clone(), false));
                } else if limit > 0 && total > limit {
                    remove[i] = true;
                    total -= s.len;
                    doomed.push((s.clone(), true));
                }
            }
            let mut k = 0;
            sh.segments.retain(|_| {
                k += 1;
                !remove[k - 1]
            });
            // Under `shared`, so readers of an older segment list cannot cache these again.
            for (s, _) in &doomed {
                self.cache.drop_segment(s.seq);
            }
            let mn = sh.segments.iter().map(|s| s.min_t).min();
            if let Some(mn) = mn {
                sh.min_t = mn;
            }
        }
        drop(fs);
        for (s, by_size) in doomed {
            match std::fs::remove_file(&s.path) {
                Ok(()) => {
                    inc(&self.stats.removed_bytes, s.len);
                    inc(&self.stats.removed_segments, 1);
                    inc(
                        if by_size {
                            &self.stats.size_retentions
                        } else {
                            &self.stats.time_retentions
                        },
                        1,
                    );
                    tracing::info!(file = %s.path.display(), by_size, "segment removed by retention");
                }
                Err(e) => {
                    tracing::warn!(file = %s.path.display(), error = %e, "removing segment failed")
                }
            }
        }
    }
}

impl Drop for Tsdb {
    fn drop(&mut self) {
        // A dropped store must not lose committed samples silently when it was not closed.
        if !self.inner.closed.load(Ordering::SeqCst) && Arc::strong_count(&self.inner) == 1 {
            let _ = self.close();
        }
    }
}

/// One batch of appends.
struct HeadAppender {
    db: Arc<Inner>,
    batch: Vec<RawSample>,
}

impl Appendable for Tsdb {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(HeadAppender {
            db: self.inner.clone(),
            batch: Vec::new(),
        })
    }
}

impl Appender for HeadAppender {
    fn append(
        &mut self,
        r: SeriesRef,
        labels: &Labels,
        t_ms: i64,
        v: f64,
    ) -> Result<SeriesRef, StorageError> {
        let db = &*self.db;
        if db.closed.load(Ordering::Relaxed) {
            return Err(StorageError::Closed);
        }
        let sid = {
            let ix = read(&db.index);
            let known = r.0 != 0 && r.0 - 1 < u64::from(ix.id_bound());
            if known {
                Some((r.0 - 1) as u32)
            } else {
                None
            }
        };
        let sid = match sid {
            Some(s) => s,
            None => db.get_or_create(labels)?,
        };
        let rt = db.opts.retention_time.as_millis() as i64;
        if rt > 0 {
            let max_t = db.max_t.load(Ordering::Relaxed);
            if max_t != i64::MIN && t_ms < max_t.saturating_sub(rt) {
                inc(&db.stats.out_of_bounds, 1);
                return Err(StorageError::OutOfBounds);
            }
        }
        let (lt, lv) = {
            let ix = read(&db.index);
            ix.lasts
                .get(sid as usize)
                .map_or((i64::MIN, 0), |l| l.get())
        };
        if t_ms < lt {
            inc(&db.stats.out_of_order, 1);
            return Err(StorageError::OutOfOrder);
        }
        if t_ms == lt {
            if v.to_bits() == lv {
                return Ok(SeriesRef(u64::from(sid) + 1));
            }
            inc(&db.stats.duplicate, 1);
            return Err(StorageError::DuplicateTimestamp);
        }
        self.batch.push(RawSample { sid, t: t_ms, v });
        Ok(SeriesRef(u64::from(sid) + 1))
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.db.commit(&self.batch)
    }

    fn rollback(self: Box<Self>) {}
}

impl Queryable for Tsdb {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>, StorageError> {
        if self.inner.closed.load(Ordering::SeqCst) && lock(&self.inner.shared).segments.is_empty()
        {
            return Err(StorageError::Closed);
        }
        Ok(Box::new(query::TsdbQuerier::new(
            self.inner.clone(),
            mint,
            maxt,
        )))
    }
}

fn register_metrics(inner: &Arc<Inner>) {
    let r = Registry::global();
    let w: Weak<Inner> = Arc::downgrade(inner);
    type Get = fn(&Inner) -> f64;
    type CounterDef<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Get);
    let counters: &[CounterDef] = &[
        ("prometheus_tsdb_head_samples_appended_total", "Total number of appended samples.", &[("type", "float")], |i| i.stats.appended.load(Ordering::Relaxed) as f64),
        ("prometheus_tsdb_out_of_order_samples_total", "Total number of out of order samples ingestion failed attempts.", &[("type", "float")], |i| i.stats.out_of_order.load(Ordering::Relaxed) as f64),
        ("prometheus_tsdb_out_of_bounds_samples_total", "Total number of out of bound samples ingestion failed attempts.", &[("type", "float")], |i| i.stats.out_of_bounds.load(Ordering::Relaxed) as f64),
        ("edgeprom_tsdb_duplicate_samples_total", "Samples refused because their series already has a different value at that timestamp.", &[], |i| i.stats.duplicate.load(Ordering::Relaxed) as f64),
        ("prometheus_tsdb_head_series_created_total", "Total number of series created in the head", &[], |i| i.stats.series_created.load(Ordering::Relaxed) as f64),
        ("edgeprom_tsdb_series_limit_refusals_total", "New series refused because the series limit was reached.", &[], |i| i.stats.series_limit_hits.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_bytes_written_total", "Bytes the storage engine wrote to disk (segments, series log, headers).", &[], |i| i.stats.bytes_written.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_corruptions_total", "Damaged file parts found (torn tails cut at start-up, damaged records met when reading).", &[], |i| i.stats.corruptions.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_write_failures_total", "Flushes that failed to write (e.g. disk full).", &[], |i| i.stats.write_failures.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_rejected_samples_total", "Samples refused at commit because writing is failing or too many wait for a flush.", &[], |i| i.stats.rejected_appends.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_flushes_total", "Flushes run.", &[], |i| i.stats.flushes.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_read_cache_hits_total", "Segment reads answered from the read cache.", &[], |i| i.cache.stats().1 as f64),
        ("edgeprom_storage_read_cache_misses_total", "Segment reads that decoded the segment.", &[], |i| i.cache.stats().2 as f64),
        ("edgeprom_storage_read_cache_evictions_total", "Cached series evicted from the read cache for its size limit.", &[], |i| i.cache.stats().3 as f64),
        ("prometheus_tsdb_time_retentions_total", "The number of times that blocks were deleted because the maximum time limit was exceeded.", &[], |i| i.stats.time_retentions.load(Ordering::Relaxed) as f64),
        ("prometheus_tsdb_size_retentions_total", "The number of times that blocks were deleted because the maximum number of bytes was exceeded.", &[], |i| i.stats.size_retentions.load(Ordering::Relaxed) as f64),
        ("edgeprom_storage_retention_removed_bytes_total", "Bytes of segments removed by retention.", &[], |i| i.stats.removed_bytes.load(Ordering::Relaxed) as f64),
    ];
    for (name, help, labels, f) in counters {
        let w = w.clone();
        let f = *f;
        r.counter_fn(name, help, labels, move || {
            w.upgrade().map_or(0.0, |i| f(&i))
        });
    }
    let gauges: &[(&str, &str, Get)] = &[
        (
            "prometheus_tsdb_head_series",
            "Total number of series in the head block.",
            |i| read(&i.index).num_series() as f64,
        ),
        (
            "prometheus_tsdb_storage_blocks_bytes",
            "The number of bytes that are currently used for local storage by all blocks.",
            |i| {
                lock(&i.shared)
                    .segments
                    .iter()
                    .filter(|s| !s.live)
                    .map(|s| s.len)
                    .sum::<u64>() as f64
            },
        ),
        (
            "prometheus_tsdb_blocks_loaded",
            "Number of currently loaded data blocks",
            |i| lock(&i.shared).segments.len() as f64,
        ),
        (
            "prometheus_tsdb_retention_limit_bytes",
            "Max number of bytes to be retained in the tsdb blocks, configured 0 means disabled",
            |i| i.opts.retention_size as f64,
        ),
        (
            "prometheus_tsdb_retention_limit_seconds",
            "How long to retain samples in storage.",
            |i| i.opts.retention_time.as_secs_f64(),
        ),
        (
            "prometheus_tsdb_lowest_timestamp",
            "Lowest timestamp value stored in the database.",
            |i| lock(&i.shared).min_t as f64,
        ),
        (
            "prometheus_tsdb_head_max_time",
            "Maximum timestamp of the head block.",
            |i| lock(&i.shared).max_t as f64,
        ),
        (
            "edgeprom_storage_read_cache_bytes",
            "Memory held by the read cache of decoded samples.",
            |i| i.cache.stats().0 as f64,
        ),
        (
            "edgeprom_storage_read_cache_limit_bytes",
            "Size limit of the read cache (--storage.tsdb.read-cache-size).",
            |i| i.opts.read_cache_size as f64,
        ),
        (
            "edgeprom_storage_unflushed_samples",
            "Committed samples waiting for the next flush.",
            |i| lock(&i.shared).unflushed.len() as f64,
        ),
        (
            "edgeprom_storage_disk_bytes",
            "Bytes of every file of the storage engine (segments, series log, tombstones).",
            |i| i.disk_bytes() as f64,
        ),
        (
            "edgeprom_storage_write_failing",
            "1 while writes to disk fail and samples are refused.",
            |i| {
                if i.failing.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                }
            },
        ),
    ];
    for (name, help, f) in gauges {
        let w = w.clone();
        let f = *f;
        r.gauge_fn(name, help, &[], move || w.upgrade().map_or(0.0, |i| f(&i)));
    }
}

#[cfg(test)]
mod exp;
#[cfg(test)]
mod tests;
