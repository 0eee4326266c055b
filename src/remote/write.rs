//! Remote write queues that read what to send from edgeprom's own storage.
//!
//! Prometheus keeps a second copy of every sample on its way out (the WAL the queue tails). On an
//! SD card that doubles the writes, and a long outage fills the disk. Here the TSDB *is* the
//! buffer: each `remote_write[]` queue keeps one number, the timestamp up to which everything has
//! been acknowledged (`sent_until`), and reads `(sent_until, now - settle]` back from storage in
//! time slices, oldest first. A sample reaches flash once whether the uplink is up or not.
//!
//! ```text
//!   scrape ──append──▶ TSDB (flash) ──select slice (t0, t1]──▶ relabel + external labels
//!                                                               │ shard by series hash
//!                                          ┌────────────────────┼─────────────────────┐
//!                                       shard 0              shard 1      ...      shard n
//!                                   POST snappy(proto)   (each: requests in order, retry 5xx/429)
//!                                          └──── all acked ─────┴──▶ sent_until = t1
//!                                                                   └▶ checkpoint (rarely, atomic)
//! ```
//!
//! Durability and duplicates: the checkpoint (`<data dir>/remote_write/<key>.json`, ~100 bytes)
//! is written at most every [`WriterOptions::checkpoint_interval`] and at shutdown, by write to a
//! temp file, fsync, rename and fsync of the directory, so a power cut leaves the old or the new
//! one. Within a process nothing acknowledged is sent twice; only the batch in flight when an
//! answer is lost is repeated. After SIGKILL or a power cut, up to one checkpoint interval is sent
//! again (receivers accept identical duplicates); after SIGTERM, nothing.
//!
//! Latency: a scrape commits its samples after the scrape finishes, stamped with its start time,
//! so the queue only reads data older than `now - settle` ([`WriterOptions::settle`]). Data older
//! than the storage retention is skipped, and what of it is still readable is counted as dropped.
//!
//! Retry policy, as Prometheus: network errors, 5xx, and 429 when `retry_on_http_429` are retried
//! with backoff doubling from `min_backoff` to `max_backoff` for as long as it takes (the backlog
//! lives on flash anyway); other 4xx drop the request and count its samples as failed.
//! Sharding: the number of parallel senders doubles (up to `max_shards`) while a backlog remains
//! after a slice and halves back towards `min_shards` once caught up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::proto::{encode_series, snappy_compress, MetricMetadata, WriteRequest};
use crate::config::RemoteWriteConfig;
use crate::model::{relabel, Labels, MatchType, Matcher};
use crate::selfmetrics::{Counter, Gauge, Registry};
use crate::shutdown::Shutdown;
use crate::storage::{Queryable, SelectHints};

/// Tuning of the storage-backed queues; the defaults suit a Pi with a 1-15 s scrape interval.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Only data older than `now - settle` is read: a scrape's samples are stamped with its start
    /// and committed when it ends, up to the scrape timeout later (10 s by default), so 15 s
    /// leaves none behind. The server raises it to the longest scrape timeout + 5 s
    /// ([`RemoteWriter::set_settle`]).
    pub settle: Duration,
    /// How often, at most, the sent position is written to flash (60 s: one ~100-byte file a
    /// minute, and a SIGKILL re-sends at most a minute of data).
    pub checkpoint_interval: Duration,
    /// Storage retention: older data no longer exists to be sent (15 d, Prometheus's default).
    pub retention: Duration,
    /// Upper bound on the backlog send rate in samples per second (20 000: about a tenth of a
    /// Pi 4 core), so catching up after an outage leaves CPU for scraping and queries.
    pub max_backlog_samples_per_second: f64,
    /// Where a queue without a checkpoint starts, back from now. Prometheus sends only what
    /// arrives after the queue starts; so does the default (zero).
    pub new_queue_lookback: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            settle: Duration::from_secs(15),
            checkpoint_interval: Duration::from_secs(60),
            retention: Duration::from_secs(15 * 24 * 3600),
            max_backlog_samples_per_second: 20_000.0,
            new_queue_lookback: Duration::ZERO,
        }
    }
}

/// A cheap snapshot of one queue for `/status` and the API.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueueStatus {
    /// `remote_name` label value.
    pub name: String,
    /// Receiver URL.
    pub url: String,
    /// Everything at or before this timestamp (ms) has been acknowledged.
    pub sent_until_ms: i64,
    /// Current number of parallel senders.
    pub shards: usize,
    /// The last send error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Where the queues get the metric metadata they send (`metadata_config`): in the server, the
/// TYPE/HELP/UNIT the scrape loops last saw per metric family, as Prometheus's metadata watcher
/// reads them from its scrape targets.
pub type MetadataSource = Arc<dyn Fn() -> Vec<MetricMetadata> + Send + Sync>;

/// Owns one queue per `remote_write[]` entry; reconfigured by [`RemoteWriter::apply_config`].
pub struct RemoteWriter {
    queryable: Arc<dyn Queryable>,
    data_dir: PathBuf,
    opts: WriterOptions,
    /// Current configs and external labels; `run` restarts the queues whose entry changed.
    wanted: watch::Sender<(Vec<RemoteWriteConfig>, Labels)>,
    /// Live queues' shared state, for [`RemoteWriter::status`].
    states: Mutex<Vec<Arc<QueueShared>>>,
    /// Metadata to send; queues started after [`RemoteWriter::set_metadata_source`] use it.
    metadata: Mutex<Option<MetadataSource>>,
    /// The settle delay in ms, shared with the queues (see [`RemoteWriter::set_settle`]).
    settle_ms: Arc<AtomicI64>,
}

impl RemoteWriter {
    /// A writer reading from `queryable`, keeping checkpoints under `data_dir/remote_write/`.
    pub fn new(
        queryable: Arc<dyn Queryable>,
        data_dir: PathBuf,
        external_labels: Labels,
    ) -> Arc<Self> {
        Self::with_options(
            queryable,
            data_dir,
            external_labels,
            WriterOptions::default(),
        )
    }

    /// As [`RemoteWriter::new`], with explicit tuning.
    pub fn with_options(
        queryable: Arc<dyn Queryable>,
        data_dir: PathBuf,
        external_labels: Labels,
        opts: WriterOptions,
    ) -> Arc<Self> {
        let (wanted, _) = watch::channel((Vec::new(), external_labels));
        let settle_ms = Arc::new(AtomicI64::new(opts.settle.as_millis() as i64));
        Registry::global().gauge_fn(
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch. In edgeprom: the newest timestamp the queues may read (now minus the settle delay).",
            &[],
            {
                let settle = settle_ms.clone();
                move || (now_ms() - settle.load(Ordering::Relaxed)) as f64 / 1000.0
            },
        );
        Arc::new(RemoteWriter {
            queryable,
            data_dir,
            opts,
            settle_ms,
            wanted,
            states: Mutex::new(Vec::new()),
            metadata: Mutex::new(None),
        })
    }

    /// Where queues read the metadata they send when `metadata_config.send` is true (the
    /// default). Call before [`RemoteWriter::run`]; without a source no metadata is sent.
    pub fn set_metadata_source(&self, src: MetadataSource) {
        *self.metadata.lock().unwrap_or_else(|e| e.into_inner()) = Some(src);
    }

    /// Sets how old data must be before the queues read it (at least
    /// [`WriterOptions::settle`]). Samples are stamped before they are committed: a scrape with
    /// its start time, up to `scrape_timeout` earlier; a rule with its evaluation time minus
    /// `query_offset`. A queue that read past a timestamp would never send what is committed
    /// there later, so the server raises the delay to cover the longest of these.
    pub fn set_settle(&self, settle: Duration) {
        let ms = settle.max(self.opts.settle).as_millis() as i64;
        self.settle_ms.store(ms, Ordering::Relaxed);
    }

    /// Replaces the set of queues (on start and on each reload). Unchanged entries keep running.
    pub fn apply_config(&self, cfgs: &[RemoteWriteConfig]) {
        self.wanted.send_modify(|w| w.0 = cfgs.to_vec());
    }

    /// Replaces the external labels (global.external_labels) added to every series sent.
    pub fn set_external_labels(&self, labels: Labels) {
        self.wanted.send_modify(|w| w.1 = labels);
    }

    /// A snapshot of every queue.
    pub fn status(&self) -> Vec<QueueStatus> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.iter().map(|s| s.status()).collect()
    }

    /// Runs the queues until shutdown; each writes its checkpoint before this returns.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut rx = self.wanted.subscribe();
        // identity (hash of the entry + external labels) -> (stop signal, task)
        let mut running: HashMap<u64, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
            HashMap::new();
        loop {
            let (cfgs, ext) = rx.borrow_and_update().clone();
            let mut want: HashMap<u64, RemoteWriteConfig> = HashMap::new();
            for c in cfgs {
                let id = xxhash_rust::xxh3::xxh3_64(
                    format!("{:?}|{}|{}", c, secrets_fingerprint(&c), ext).as_bytes(),
                );
                want.insert(id, c);
            }
            let gone: Vec<u64> = running
                .keys()
                .filter(|k| !want.contains_key(k))
                .copied()
                .collect();
            for id in gone {
                if let Some((stop, task)) = running.remove(&id) {
                    let _ = stop.send(true);
                    let _ = task.await;
                }
            }
            let mut states = Vec::new();
            for (id, cfg) in want {
                if running.contains_key(&id) {
                    continue;
                }
                let q = Queue::new(&self, cfg, ext.clone());
                states.push(q.shared.clone());
                let (stop_tx, stop_rx) = watch::channel(false);
                let task = tokio::spawn(q.run(stop_rx));
                running.insert(id, (stop_tx, task));
            }
            {
                let mut s = self.states.lock().unwrap_or_else(|e| e.into_inner());
                s.retain(|st| !st.stopped.load(Ordering::Acquire));
                s.extend(states);
            }
            tokio::select! {
                _ = shutdown.started() => break,
                r = rx.changed() => if r.is_err() { break },
            }
        }
        for (stop, _) in running.values() {
            let _ = stop.send(true);
        }
        for (_, (_, task)) in running {
            let _ = task.await;
        }
    }
}

/// The secret values of an entry (hidden from `Debug`), so a changed password restarts its queue.
fn secrets_fingerprint(c: &RemoteWriteConfig) -> u64 {
    let mut s = String::new();
    for v in c.headers.values() {
        s.push_str(&v.0);
        s.push('\0');
    }
    if let Some(p) = c.http.basic_auth.as_ref().and_then(|b| b.password.as_ref()) {
        s.push_str(&p.0);
    }
    s.push('\0');
    if let Some(p) = c
        .http
        .authorization
        .as_ref()
        .and_then(|a| a.credentials.as_ref())
    {
        s.push_str(&p.0);
    }
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// State a queue shares with status views and its shard tasks.
struct QueueShared {
    name: String,
    url: String,
    sent_until: AtomicI64,
    shards: std::sync::atomic::AtomicUsize,
    last_error: Mutex<Option<String>>,
    stopped: std::sync::atomic::AtomicBool,
}

impl QueueShared {
    fn status(&self) -> QueueStatus {
        QueueStatus {
            name: self.name.clone(),
            url: self.url.clone(),
            sent_until_ms: self.sent_until.load(Ordering::Acquire),
            shards: self.shards.load(Ordering::Acquire),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

struct Metrics {
    metadata: Arc<Counter>,
    metadata_failed: Arc<Counter>,
    metadata_retried: Arc<Counter>,
    metadata_bytes: Arc<Counter>,
    samples: Arc<Counter>,
    failed: Arc<Counter>,
    retried: Arc<Counter>,
    dropped: Arc<Counter>,
    bytes: Arc<Counter>,
    highest_sent: Arc<Gauge>,
    shards: Arc<Gauge>,
}

impl Metrics {
    fn new(name: &str, url: &str) -> Metrics {
        let r = Registry::global();
        let l = [("remote_name", name), ("url", url)];
        Metrics {
            metadata: r.counter("prometheus_remote_storage_metadata_total", "Total number of metadata entries sent to remote storage.", &l),
            metadata_failed: r.counter("prometheus_remote_storage_metadata_failed_total", "Total number of metadata entries which failed on send to remote storage, non-recoverable errors.", &l),
            metadata_retried: r.counter("prometheus_remote_storage_metadata_retried_total", "Total number of metadata entries which failed on send to remote storage but were retried because the send error was recoverable.", &l),
            metadata_bytes: r.counter("prometheus_remote_storage_metadata_bytes_total", "The total number of bytes of metadata sent by the queue after compression.", &l),
            samples: r.counter("prometheus_remote_storage_samples_total", "Total number of samples sent to remote storage.", &l),
            failed: r.counter("prometheus_remote_storage_samples_failed_total", "Total number of samples which failed on send to remote storage, non-recoverable errors.", &l),
            retried: r.counter("prometheus_remote_storage_samples_retried_total", "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.", &l),
            dropped: r.counter("prometheus_remote_storage_samples_dropped_total", "Total number of samples which were dropped after being read from storage but before being sent to remote storage, either via relabelling or because they were older than the retention.", &l),
            bytes: r.counter("prometheus_remote_storage_bytes_total", "The total number of bytes of data (not metadata) sent by the queue after compression.", &l),
            highest_sent: r.gauge("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.", &l),
            shards: r.gauge("prometheus_remote_storage_shards", "The number of shards used for parallel sending to the remote storage.", &l),
        }
    }
}

/// What a send attempt came to.
enum Outcome {
    Sent,
    /// Network error, 5xx, or 429 with retry: try again after backoff.
    Retry(String),
    /// Other 4xx (or 429 without retry): the request is dropped.
    Drop(String),
}

/// One queue's HTTP side: the shared client (TLS, basic_auth, authorization, proxy, redirects
/// from the entry's HTTP settings) plus the entry's headers and timeout.
struct Sender {
    client: Option<crate::http_client::HttpClient>,
    /// Why the client could not be built (bad tls_config files); reported on each attempt.
    client_err: Option<String>,
    uri: Option<http::Uri>,
    headers: http::HeaderMap,
    cfg: RemoteWriteConfig,
}

impl Sender {
    fn new(cfg: RemoteWriteConfig) -> Sender {
        let (client, client_err) = match crate::http_client::HttpClient::new(&cfg.http) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut headers = http::HeaderMap::new();
        let fixed = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            (
                "user-agent",
                concat!("edgeprom/", env!("CARGO_PKG_VERSION")),
            ),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ];
        for (k, v) in fixed {
            headers.insert(k, http::HeaderValue::from_static(v));
        }
        for (k, v) in &cfg.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(&v.0),
            ) {
                headers.insert(k, v);
            }
        }
        Sender {
            client,
            client_err,
            uri: cfg.url.parse().ok(),
            headers,
            cfg,
        }
    }

    async fn send(&self, body: Bytes) -> Outcome {
        let (Some(client), Some(uri)) = (&self.client, &self.uri) else {
            let e = self
                .client_err
                .clone()
                .unwrap_or_else(|| format!("invalid URL {:?}", self.cfg.url));
            // A broken tls_config file may be fixed in place: retry, as Prometheus keeps trying.
            return Outcome::Retry(e);
        };
        let mut resp = Vec::new();
        let fut = client.request_into(
            http::Method::POST,
            uri,
            &self.headers,
            body,
            &mut resp,
            64 << 10,
        );
        match tokio::time::timeout(self.cfg.remote_timeout, fut).await {
            Err(_) => Outcome::Retry(format!("timeout after {:?}", self.cfg.remote_timeout)),
            Ok(Err(e)) => Outcome::Retry(e.to_string()),
            Ok(Ok(head)) => {
                let status = head.status;
                let msg = || {
                    let n = resp.len().min(512);
                    format!(
                        "server returned HTTP status {status}: {}",
                        String::from_utf8_lossy(&resp[..n]).trim()
                    )
                };
                if status.is_success() {
                    Outcome::Sent
                } else if status.is_server_error()
                    || (status.as_u16() == 429 && self.cfg.queue_config.retry_on_http_429)
                {
                    Outcome::Retry(msg())
                } else {
                    Outcome::Drop(msg())
                }
            }
        }
    }
}

/// One encoded request waiting to be compressed and sent.
struct Request {
    proto: Vec<u8>,
    samples: usize,
    max_t: i64,
}

struct Queue {
    queryable: Arc<dyn Queryable>,
    cfg: RemoteWriteConfig,
    ext: Labels,
    opts: WriterOptions,
    ckpt_path: PathBuf,
    shared: Arc<QueueShared>,
    metrics: Arc<Metrics>,
    sender: Arc<Sender>,
    metadata: Option<MetadataSource>,
    settle_ms: Arc<AtomicI64>,
}

/// Short hex name of a URL, as Prometheus names unnamed queues by a hash.
fn url_key(url: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(url.as_bytes()))
}

impl Queue {
    fn new(w: &RemoteWriter, cfg: RemoteWriteConfig, ext: Labels) -> Queue {
        let name = if cfg.name.is_empty() {
            url_key(&cfg.url)[..6].to_string()
        } else {
            cfg.name.clone()
        };
        let key = if cfg.name.is_empty() {
            url_key(&cfg.url)
        } else {
            cfg.name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let ckpt_path = w.data_dir.join("remote_write").join(format!("{key}.json"));
        let metrics = Arc::new(Metrics::new(&name, &cfg.url));
        let shared = Arc::new(QueueShared {
            name,
            url: cfg.url.clone(),
            sent_until: AtomicI64::new(0),
            shards: std::sync::atomic::AtomicUsize::new(cfg.queue_config.min_shards.max(1)),
            last_error: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        Queue {
            queryable: w.queryable.clone(),
            sender: Arc::new(Sender::new(cfg.clone())),
            metadata: w.metadata.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            settle_ms: w.settle_ms.clone(),
            cfg,
            ext,
            opts: w.opts.clone(),
            ckpt_path,
            shared,
            metrics,
        }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let q = Arc::new(self);
        let start = match read_checkpoint(&q.ckpt_path) {
            Some(t) => t,
            None => {
                let t = now_ms()
                    - q.settle_ms.load(Ordering::Relaxed)
                    - q.opts.new_queue_lookback.as_millis() as i64;
                // Persist at once, so a restart before the first interval resumes from here.
                if let Err(e) = write_checkpoint(&q.ckpt_path, &q.cfg.url, t) {
                    tracing::warn!(remote_name = %q.shared.name, err = %e, "cannot write remote write checkpoint");
                }
                t
            }
        };
        q.shared.sent_until.store(start, Ordering::Release);
        q.metrics.highest_sent.set(start as f64 / 1000.0);
        q.metrics
            .shards
            .set(q.cfg.queue_config.min_shards.max(1) as f64);
        tracing::info!(remote_name = %q.shared.name, url = %q.cfg.url, resume_from_ms = start, "remote write queue started");
        let metadata_task = match (&q.metadata, q.cfg.metadata_config.send) {
            (Some(src), true) => Some(tokio::spawn(
                q.clone().metadata_loop(src.clone(), stop.clone()),
            )),
            _ => None,
        };
        let mut cursor = start;
        let mut persisted = start;
        let mut last_persist = Instant::now();
        let mut slice_ms: i64 = 60_000;
        let mut shards = q.cfg.queue_config.min_shards.max(1);
        let poll = q
            .cfg
            .queue_config
            .batch_send_deadline
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let max_slice_ms: i64 = 3_600_000;
        let mps = q.cfg.queue_config.max_samples_per_send.max(1);
        let mut relabel_cache: HashMap<u64, (Labels, Option<Labels>)> = HashMap::new();
        loop {
            // A dropped sender (the writer's task was aborted) counts as a stop.
            if *stop.borrow() || stop.has_changed().is_err() {
                break;
            }
            let now = now_ms();
            let head = now - q.settle_ms.load(Ordering::Relaxed);
            let floor = now - q.opts.retention.as_millis() as i64;
            if cursor < floor {
                let n = q.count_samples(cursor + 1, floor);
                q.metrics.dropped.add(n as f64);
                tracing::warn!(remote_name = %q.shared.name, skipped_from_ms = cursor, skipped_to_ms = floor, samples = n, "remote write backlog older than retention skipped");
                cursor = floor;
            }
            if head <= cursor {
                if cursor != persisted && last_persist.elapsed() >= q.opts.checkpoint_interval {
                    q.persist(cursor, &mut persisted, &mut last_persist);
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let end = head.min(cursor.saturating_add(slice_ms));
            let backlog = end < head;
            let t0 = Instant::now();
            let (per_shard, n_samples, dropped) =
                match q.build(cursor + 1, end, shards, mps, &mut relabel_cache) {
                    Ok(x) => x,
                    Err(e) => {
                        q.set_error(Some(format!("reading storage: {e}")));
                        tokio::select! {
                            _ = tokio::time::sleep(poll) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                };
            if relabel_cache.len() > 200_000 {
                relabel_cache.clear();
            }
            q.metrics.dropped.add(dropped as f64);
            if !q.clone().send_all(per_shard, &mut stop).await {
                break; // stopped mid-slice: the slice is not acknowledged
            }
            cursor = end;
            q.shared.sent_until.store(cursor, Ordering::Release);
            // Adapt the slice so one holds about 4 requests per shard.
            let target = (mps * shards * 4) as i64;
            let n = n_samples as i64;
            if n > target * 2 && slice_ms > 1_000 {
                slice_ms /= 2;
            } else if n < target / 2 && slice_ms < max_slice_ms {
                slice_ms = (slice_ms * 2).min(max_slice_ms);
            }
            let new_shards = if backlog {
                (shards * 2).min(q.cfg.queue_config.max_shards.max(1))
            } else {
                (shards / 2).max(q.cfg.queue_config.min_shards.max(1))
            };
            if new_shards != shards {
                shards = new_shards;
                q.shared.shards.store(shards, Ordering::Release);
                q.metrics.shards.set(shards as f64);
            }
            if last_persist.elapsed() >= q.opts.checkpoint_interval {
                q.persist(cursor, &mut persisted, &mut last_persist);
            }
            if backlog && q.opts.max_backlog_samples_per_second > 0.0 {
                let min_time = Duration::from_secs_f64(
                    n_samples as f64 / q.opts.max_backlog_samples_per_second,
                );
                if let Some(rest) = min_time.checked_sub(t0.elapsed()) {
                    tokio::select! {
                        _ = tokio::time::sleep(rest) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        if cursor != persisted {
            q.persist(cursor, &mut persisted, &mut last_persist);
        }
        if let Some(t) = metadata_task {
            t.abort();
            let _ = t.await;
        }
        q.shared.stopped.store(true, Ordering::Release);
        tracing::info!(remote_name = %q.shared.name, sent_until_ms = cursor, "remote write queue stopped");
    }

    /// Sends every metric family's metadata each `send_interval`, in requests of at most
    /// `max_samples_per_send` entries, as Prometheus's metadata watcher does. Recoverable errors
    /// are retried with backoff until the next interval is due, then the rest of this round is
    /// counted as failed: the next round sends everything again anyway.
    async fn metadata_loop(self: Arc<Self>, src: MetadataSource, mut stop: watch::Receiver<bool>) {
        let mc = self.cfg.metadata_config.clone();
        let every = mc.send_interval.max(Duration::from_secs(1));
        let per = mc.max_samples_per_send.max(1);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut proto = Vec::new();
        let mut z = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let round = Instant::now();
            let all = src();
            let mut chunks = all.chunks(per);
            while let Some(chunk) = chunks.next() {
                proto.clear();
                WriteRequest {
                    timeseries: Vec::new(),
                    metadata: chunk.to_vec(),
                }
                .encode(&mut proto);
                snappy_compress(&proto, &mut z);
                let body = Bytes::copy_from_slice(&z);
                let mut backoff = self.cfg.queue_config.min_backoff;
                let sent = loop {
                    match self.sender.send(body.clone()).await {
                        Outcome::Sent => {
                            self.metrics.metadata.add(chunk.len() as f64);
                            self.metrics.metadata_bytes.add(body.len() as f64);
                            break true;
                        }
                        Outcome::Drop(e) => {
                            tracing::error!(remote_name = %self.shared.name, url = %self.cfg.url, err = %e, "non-recoverable error while sending metadata");
                            break false;
                        }
                        Outcome::Retry(e) => {
                            if round.elapsed() + backoff >= every {
                                tracing::warn!(remote_name = %self.shared.name, url = %self.cfg.url, err = %e, "failed to send metadata; giving up until the next interval");
                                break false;
                            }
                            self.metrics.metadata_retried.add(chunk.len() as f64);
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = stop.wait_for(|s| *s) => return,
                            }
                            backoff = (backoff * 2).min(
                                self.cfg
                                    .queue_config
                                    .max_backoff
                                    .max(self.cfg.queue_config.min_backoff),
                            );
                        }
                    }
                };
                if !sent {
                    let rest: usize = chunk.len() + chunks.by_ref().map(|c| c.len()).sum::<usize>();
                    self.metrics.metadata_failed.add(rest as f64);
                }
            }
        }
    }

    fn persist(&self, cursor: i64, persisted: &mut i64, last: &mut Instant) {
        match write_checkpoint(&self.ckpt_path, &self.cfg.url, cursor) {
            Ok(()) => *persisted = cursor,
            Err(e) => {
                tracing::warn!(remote_name = %self.shared.name, err = %e, "cannot write remote write checkpoint")
            }
        }
        *last = Instant::now();
    }

    fn set_error(&self, e: Option<String>) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e;
    }

    fn all_series() -> Matcher {
        // `.+` compiles for certain; a failure would be a bug in the regex crate.
        Matcher::new(MatchType::Regex, "__name__", ".+")
            .unwrap_or_else(|_| Matcher::equal("__name__", ""))
    }

    fn count_samples(&self, mint: i64, maxt: i64) -> u64 {
        let Ok(qr) = self.queryable.querier(mint, maxt) else {
            return 0;
        };
        let hints = SelectHints {
            start: mint,
            end: maxt,
            ..Default::default()
        };
        let mut n = 0;
        let mut set = qr.select(&hints, &[Self::all_series()]);
        for mut s in set.by_ref() {
            n += s
                .samples
                .by_ref()
                .filter(|&(t, _)| t >= mint && t <= maxt)
                .count() as u64;
            let _ = s.samples.take_err();
        }
        let _ = set.take_err();
        n
    }

    /// Reads `[mint, maxt]` and encodes it into requests per shard; returns them, the number of
    /// samples to send and the number dropped by relabeling.
    #[allow(clippy::type_complexity)]
    fn build(
        &self,
        mint: i64,
        maxt: i64,
        shards: usize,
        mps: usize,
        cache: &mut HashMap<u64, (Labels, Option<Labels>)>,
    ) -> Result<(Vec<Vec<Request>>, usize, usize), crate::storage::StorageError> {
        let qr = self.queryable.querier(mint, maxt)?;
        let hints = SelectHints {
            start: mint,
            end: maxt,
            ..Default::default()
        };
        let mut set = qr.select(&hints, &[Self::all_series()]);
        let mut out: Vec<Vec<Request>> = (0..shards).map(|_| Vec::new()).collect();
        let mut open: Vec<Request> = (0..shards)
            .map(|_| Request {
                proto: Vec::new(),
                samples: 0,
                max_t: i64::MIN,
            })
            .collect();
        let mut buf: Vec<(i64, f64)> = Vec::new();
        let (mut total, mut dropped) = (0usize, 0usize);
        for mut s in set.by_ref() {
            buf.clear();
            buf.extend(s.samples.by_ref().filter(|&(t, _)| t >= mint && t <= maxt));
            s.samples.take_err()?;
            if buf.is_empty() {
                continue;
            }
            let h = s.labels.hash64();
            let lbls = match cache.get(&h) {
                Some((orig, res)) if *orig == s.labels => res.clone(),
                _ => {
                    let res = self.process_labels(&s.labels);
                    cache.insert(h, (s.labels.clone(), res.clone()));
                    res
                }
            };
            let Some(lbls) = lbls else {
                dropped += buf.len();
                continue;
            };
            let shard = (h % shards as u64) as usize;
            for chunk in buf.chunks(mps) {
                let r = &mut open[shard];
                if r.samples > 0 && r.samples + chunk.len() > mps {
                    let full = std::mem::replace(
                        r,
                        Request {
                            proto: Vec::new(),
                            samples: 0,
                            max_t: i64::MIN,
                        },
                    );
                    out[shard].push(full);
                }
                let r = &mut open[shard];
                encode_series(&mut r.proto, 1, lbls.as_slice(), chunk);
                r.samples += chunk.len();
                r.max_t = r.max_t.max(chunk.last().map(|x| x.0).unwrap_or(i64::MIN));
                total += chunk.len();
            }
        }
        set.take_err()?;
        for (i, r) in open.into_iter().enumerate() {
            if r.samples > 0 {
                out[i].push(r);
            }
        }
        Ok((out, total, dropped))
    }

    /// External labels (where the series lacks them), then write relabeling, as Prometheus.
    fn process_labels(&self, l: &Labels) -> Option<Labels> {
        let l = if self.ext.is_empty() {
            l.clone()
        } else {
            let mut b = l.builder();
            for e in self.ext.iter() {
                if l.get(&e.name).is_none() {
                    b.set(e.name.clone(), e.value.clone());
                }
            }
            b.into_labels()
        };
        if self.cfg.write_relabel_configs.is_empty() {
            Some(l)
        } else {
            relabel::process(&l, &self.cfg.write_relabel_configs).filter(|l| !l.is_empty())
        }
    }

    /// Sends every shard's requests (shards in parallel, each in order). Returns false when
    /// stopped before all were acknowledged or dropped.
    async fn send_all(
        self: Arc<Self>,
        per_shard: Vec<Vec<Request>>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut set = tokio::task::JoinSet::new();
        for reqs in per_shard.into_iter().filter(|r| !r.is_empty()) {
            let q = self.clone();
            let st = stop.clone();
            set.spawn(async move { q.send_shard(reqs, st).await });
        }
        let mut ok = true;
        while let Some(r) = set.join_next().await {
            ok &= r.unwrap_or(false);
        }
        ok
    }

    async fn send_shard(&self, reqs: Vec<Request>, mut stop: watch::Receiver<bool>) -> bool {
        let mut z = Vec::new();
        for r in reqs {
            snappy_compress(&r.proto, &mut z);
            let body = Bytes::copy_from_slice(&z);
            let mut backoff = self.cfg.queue_config.min_backoff;
            loop {
                match self.sender.send(body.clone()).await {
                    Outcome::Sent => {
                        self.metrics.samples.add(r.samples as f64);
                        self.metrics.bytes.add(body.len() as f64);
                        let t = r.max_t as f64 / 1000.0;
                        if t > self.metrics.highest_sent.get() {
                            self.metrics.highest_sent.set(t);
                        }
                        self.set_error(None);
                        break;
                    }
                    Outcome::Drop(e) => {
                        self.metrics.failed.add(r.samples as f64);
                        tracing::error!(remote_name = %self.shared.name, url = %self.cfg.url, err = %e, samples = r.samples, "non-recoverable error, dropping request");
                        self.set_error(Some(e));
                        break;
                    }
                    Outcome::Retry(e) => {
                        self.metrics.retried.add(r.samples as f64);
                        tracing::warn!(remote_name = %self.shared.name, url = %self.cfg.url, err = %e, retry_in = ?backoff, "failed to send batch, retrying");
                        self.set_error(Some(e));
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.wait_for(|s| *s) => return false,
                        }
                        backoff = (backoff * 2).min(
                            self.cfg
                                .queue_config
                                .max_backoff
                                .max(self.cfg.queue_config.min_backoff),
                        );
                    }
                }
            }
            if *stop.borrow() || stop.has_changed().is_err() {
                return false;
            }
        }
        true
    }
}

/// Reads a checkpoint; a missing or unreadable one means "start fresh" (logged when corrupt).
fn read_checkpoint(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(path = %path.display(), err = %e, "corrupt remote write checkpoint ignored");
            return None;
        }
    };
    v.get("sent_until_ms").and_then(|t| t.as_i64())
}

/// Writes the checkpoint atomically: temp file, fsync, rename, fsync of the directory.
fn write_checkpoint(path: &Path, url: &str, sent_until_ms: i64) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::json!({"version": 1, "url": url, "sent_until_ms": sent_until_ms});
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Renders the queues for a plain-text status page.
pub fn render_status(st: &[QueueStatus]) -> String {
    let mut s = String::new();
    for q in st {
        let _ = writeln!(
            s,
            "{} {} sent_until_ms={} shards={} last_error={}",
            q.name,
            q.url,
            q.sent_until_ms,
            q.shards,
            q.last_error.as_deref().unwrap_or("-")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_survives_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("remote_write").join("x.json");
        assert_eq!(read_checkpoint(&p), None);
        write_checkpoint(&p, "http://a", 1234).unwrap();
        assert_eq!(read_checkpoint(&p), Some(1234));
        write_checkpoint(&p, "http://a", 5678).unwrap();
        assert_eq!(read_checkpoint(&p), Some(5678));
        assert!(!p.with_extension("json.tmp").exists());
        std::fs::write(&p, b"\0\0garbage").unwrap();
        assert_eq!(read_checkpoint(&p), None);
    }

    #[tokio::test]
    async fn raised_settle_holds_a_new_queue_back() {
        let d = tempfile::tempdir().unwrap();
        let db = crate::tsdb::Tsdb::open(crate::tsdb::Options {
            path: d.path().join("db"),
            ..Default::default()
        })
        .unwrap();
        let w = RemoteWriter::with_options(
            db,
            d.path().to_path_buf(),
            Labels::empty(),
            WriterOptions {
                settle: Duration::from_millis(100),
                ..Default::default()
            },
        );
        // Never below the configured floor.
        w.set_settle(Duration::from_millis(1));
        assert_eq!(w.settle_ms.load(Ordering::Relaxed), 100);
        w.set_settle(Duration::from_secs(30));
        let cfg = crate::config::load_str(
            "remote_write:\n- url: http://127.0.0.1:1/api/v1/write\n  name: q\n",
            "t.yml",
            Path::new("."),
        )
        .unwrap();
        w.apply_config(&cfg.remote_write);
        let (trigger, sd) = crate::shutdown::channel();
        let task = tokio::spawn(w.clone().run(sd));
        let ckpt = d.path().join("remote_write").join("q.json");
        let mut start = None;
        for _ in 0..200 {
            start = read_checkpoint(&ckpt);
            if start.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A new queue starts at now - settle: the raised delay, not the 100 ms floor.
        let lag = now_ms() - start.expect("checkpoint written at start");
        assert!((30_000..40_000).contains(&lag), "lag {lag} ms");
        trigger.trigger();
        let _ = task.await;
    }
}
