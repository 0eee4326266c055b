//! One loop per target: fetch, parse, label, append, report; and stale markers when the target
//! goes away.
//!
//! Timing and staleness follow Prometheus's `scrapeLoop`:
//! - the first scrape waits for a per-target offset (hash of the target modulo the interval,
//!   aligned to the wall clock), so targets spread out and keep their phase across restarts;
//! - every scrape appends its samples and the five report series (`up`, ...) in one batch;
//! - a failed scrape (HTTP error, timeout, bad body, limit exceeded) appends no samples but a
//!   stale marker for every series of the previous scrape, and `up` 0;
//! - a target removed from the config writes stale markers for all its series (and its report
//!   series) at the time its next scrape would have been, after waiting a little over two
//!   intervals in case it comes back; a shutdown writes none.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use http::{HeaderMap, Uri};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cache::{mutate_sample_labels, verify_label_limits, ScrapeCache};
use super::metrics::Metrics;
use super::target::{public_labels, Health, Meta, Target};
use super::textparse::{Entry, Format, Parser};
use crate::config::ScrapeConfig;
use crate::http_client::{self, HttpClient};
use crate::model::{stale_nan, Labels, LabelsBuilder, METRIC_NAME};
use crate::storage::{Appendable, Appender, SeriesRef, StorageError};

/// What Prometheus 2.42 sends (OpenMetrics preferred, then the text format).
const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The report series, in the order they are appended.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// How a loop is told to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Keep scraping.
    Run,
    /// Stop; with `stale`, write end-of-run stale markers (target removed), without (shutdown,
    /// or a restart that hands the cache to a new loop) write none.
    Stop { stale: bool },
}

/// Everything a loop needs; built by the pool.
pub(crate) struct LoopCtx {
    pub target: Arc<Target>,
    pub cfg: Arc<ScrapeConfig>,
    pub client: Arc<HttpClient>,
    pub appendable: Arc<dyn Appendable>,
    /// Set when the pool is over its target_limit: every scrape fails with it.
    pub forced_error: Arc<std::sync::Mutex<Option<String>>>,
}

/// Counts of one append round.
#[derive(Default, Clone, Copy, Debug)]
struct Counts {
    total: u64,
    added: u64,
    series_added: u64,
}

struct Scraper {
    ctx: LoopCtx,
    uri: Uri,
    headers: HeaderMap,
    /// Raw body as received (reused across scrapes).
    raw: Vec<u8>,
    /// Decompressed body (reused across scrapes).
    decoded: Vec<u8>,
    cache: ScrapeCache,
    /// Labels attached to every sample (target labels without `__` ones).
    target_labels: Labels,
    report_labels: Vec<Labels>,
    report_refs: [SeriesRef; 5],
    /// Whether any scrape was attempted (no end-of-run staleness otherwise).
    scraped_once: bool,
}

/// Spawns the loop; it waits for `prev` (a loop being replaced) first and takes over its cache.
pub(crate) fn spawn(
    ctx: LoopCtx,
    control: watch::Receiver<Control>,
    prev: Option<JoinHandle<ScrapeCache>>,
) -> JoinHandle<ScrapeCache> {
    tokio::spawn(async move {
        let cache = match prev {
            Some(h) => h.await.unwrap_or_default(),
            None => ScrapeCache::default(),
        };
        run(ctx, control, cache).await
    })
}

fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Time until the target's first scrape: Prometheus's `offset`, from a hash of the target.
fn first_delay(key_hash: u64, interval: Duration) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let base = iv - now % iv;
    let offset = key_hash % iv;
    let mut next = base + offset;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(next)
}

async fn run(
    ctx: LoopCtx,
    mut control: watch::Receiver<Control>,
    cache: ScrapeCache,
) -> ScrapeCache {
    let interval = ctx.target.interval;
    let key_hash = xxhash_rust::xxh3::xxh3_64(ctx.target.key().as_bytes());
    let mut s = match Scraper::new(ctx, cache) {
        Ok(s) => s,
        Err((ctx, cache, e)) => {
            // An unusable URL: report the target down forever, like a failing scrape.
            {
                let mut st = ctx.target.status.lock().unwrap_or_else(|p| p.into_inner());
                st.health = Health::Down;
                st.last_error = e;
            }
            let _ = control.wait_for(|c| *c != Control::Run).await;
            return cache;
        }
    };
    let interval_hist = Metrics::interval_length(&crate::config::format_duration(interval));
    let start = tokio::time::Instant::now() + first_delay(key_hash, interval);
    let mut ticker = tokio::time::interval_at(start, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_tick: Option<Instant> = None;
    let stop = loop {
        tokio::select! {
            biased;
            r = control.changed() => {
                let c = if r.is_err() { Control::Stop { stale: false } } else { *control.borrow() };
                if let Control::Stop { stale } = c { break stale; }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        if let Some(l) = last_tick {
            interval_hist.observe(now.duration_since(l).as_secs_f64());
        }
        last_tick = Some(now);
        // A stop during the fetch aborts it (the batch is never committed).
        let mut ctl = control.clone();
        tokio::select! {
            biased;
            _ = ctl.wait_for(|c| *c != Control::Run) => {
                let stale = matches!(*control.borrow(), Control::Stop { stale: true });
                break stale;
            }
            _ = s.scrape_and_report() => {}
        }
    };
    if stop && s.scraped_once {
        s.end_of_run_staleness(&mut ticker, &mut control).await;
    }
    s.cache
}

impl Scraper {
    #[allow(clippy::result_large_err)]
    fn new(ctx: LoopCtx, cache: ScrapeCache) -> Result<Self, (LoopCtx, ScrapeCache, String)> {
        let uri: Uri = match ctx.target.url.parse() {
            Ok(u) => u,
            Err(e) => {
                let msg = format!("parse {:?}: {e}", ctx.target.url);
                return Err((ctx, cache, msg));
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        if let Ok(v) = HeaderValue::from_str(&format!("edgeprom/{}", crate::build_info::VERSION)) {
            headers.insert(USER_AGENT, v);
        }
        let secs = ctx.target.timeout.as_secs_f64();
        if let Ok(v) = HeaderValue::from_str(&format_seconds(secs)) {
            headers.insert(
                HeaderName::from_static("x-prometheus-scrape-timeout-seconds"),
                v,
            );
        }
        let target_labels = public_labels(&ctx.target.labels);
        let report_labels = REPORT_NAMES
            .iter()
            .map(|n| {
                let mut b = LabelsBuilder::new();
                for l in &target_labels {
                    b.set(l.name.clone(), l.value.clone());
                }
                b.set(METRIC_NAME, *n);
                b.into_labels()
            })
            .collect();
        Ok(Scraper {
            ctx,
            uri,
            headers,
            raw: Vec::new(),
            decoded: Vec::new(),
            cache,
            target_labels,
            report_labels,
            report_refs: [SeriesRef(0); 5],
            scraped_once: false,
        })
    }

    /// Fetches the body into `raw` (or `decoded` when gzipped); returns the format and whether
    /// the body is in `decoded`.
    async fn fetch(&mut self) -> Result<(Format, bool), String> {
        let forced = self
            .ctx
            .forced_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(e) = forced {
            return Err(e);
        }
        self.raw.clear();
        let limit = self.ctx.cfg.body_size_limit;
        let url = &self.ctx.target.url;
        let fut = self
            .ctx
            .client
            .get_into(&self.uri, &self.headers, &mut self.raw, limit);
        let head = match tokio::time::timeout(self.ctx.target.timeout, fut).await {
            Err(_) => return Err(format!("Get {url:?}: context deadline exceeded")),
            Ok(Err(http_client::Error::BodyTooLarge { .. })) => {
                Metrics::get().exceeded_body_size_limit.inc();
                return Err("body size limit exceeded".into());
            }
            Ok(Err(e)) => return Err(format!("Get {url:?}: {}", error_chain(&e))),
            Ok(Ok(h)) => h,
        };
        if head.status != http::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {} {}",
                head.status.as_u16(),
                head.status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string());
        }
        let format = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(Format::from_content_type)
            .unwrap_or(Format::Text);
        let gz = head
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if !gz {
            return Ok((format, false));
        }
        use std::io::Read;
        self.decoded.clear();
        let mut dec = flate2::read::GzDecoder::new(&self.raw[..]);
        let res = if limit > 0 {
            (&mut dec).take(limit + 1).read_to_end(&mut self.decoded)
        } else {
            dec.read_to_end(&mut self.decoded)
        };
        if let Err(e) = res {
            return Err(format!("decompressing gzip body: {e}"));
        }
        if limit > 0 && self.decoded.len() as u64 > limit {
            Metrics::get().exceeded_body_size_limit.inc();
            return Err("body size limit exceeded".into());
        }
        Ok((format, true))
    }

    async fn scrape_and_report(&mut self) {
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let t = now_ms(start_wall);
        self.scraped_once = true;
        let fetched = self.fetch().await;
        let mut app = self.ctx.appendable.appender();
        let mut counts = Counts::default();
        let mut scrape_err: Option<String> = None;
        match fetched {
            Ok((format, in_decoded)) => {
                let body = std::mem::take(if in_decoded {
                    &mut self.decoded
                } else {
                    &mut self.raw
                });
                let r = self.append(app.as_mut(), &body, format, t);
                if in_decoded {
                    self.decoded = body;
                } else {
                    self.raw = body;
                }
                match r {
                    Ok(c) => counts = c,
                    Err((c, e)) => {
                        counts = c;
                        app.rollback();
                        app = self.ctx.appendable.appender();
                        let _ = self.append(app.as_mut(), b"", Format::Text, t);
                        scrape_err = Some(e);
                    }
                }
            }
            Err(e) => {
                let _ = self.append(app.as_mut(), b"", Format::Text, t);
                scrape_err = Some(e);
            }
        }
        let dur = start.elapsed();
        let up = scrape_err.is_none();
        self.report(app.as_mut(), t, dur, counts, up);
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.ctx.target.url, err = %e, "scrape commit failed");
        }
        let mut st = self
            .ctx
            .target
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        st.health = if up { Health::Up } else { Health::Down };
        st.last_error = scrape_err.unwrap_or_default();
        st.last_scrape = Some(start_wall);
        st.last_duration = dur;
    }

    /// One append round over `body`. On error the caller rolls back and appends an empty round.
    fn append(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        t: i64,
    ) -> Result<Counts, (Counts, String)> {
        let cfg = &*self.ctx.cfg;
        let m = Metrics::get();
        let mut c = Counts::default();
        self.cache.begin_round();
        let mut meta = self
            .ctx
            .target
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let parser = Parser::new(body, format);
        let res: Result<(), String> = (|| {
            for entry in parser {
                let entry = entry.map_err(|e| e.to_string())?;
                let s = match entry {
                    Entry::Series(s) => s,
                    Entry::Help { metric, text } => {
                        meta_entry(&mut meta, metric, |x| {
                            if x.help != text {
                                x.help = text.into_owned();
                            }
                        });
                        continue;
                    }
                    Entry::Type { metric, kind } => {
                        meta_entry(&mut meta, metric, |x| x.kind = kind.as_str());
                        continue;
                    }
                    Entry::Unit { metric, unit } => {
                        meta_entry(&mut meta, metric, |x| {
                            if x.unit != unit {
                                x.unit = unit.to_string();
                            }
                        });
                        continue;
                    }
                    Entry::Comment(_) => continue,
                };
                c.total += 1;
                let ts = if cfg.honor_timestamps {
                    s.timestamp_ms
                } else {
                    None
                };
                let st = ts.unwrap_or(t);
                let mut is_new = false;
                let e = match self.cache.get_mut(s.series) {
                    Some(e) => e,
                    None => {
                        is_new = true;
                        let lset = mutate_sample_labels(
                            s.name,
                            s.labels(),
                            &self.target_labels,
                            cfg.honor_labels,
                            &cfg.metric_relabel_configs,
                        )?;
                        if let Some(l) = &lset {
                            if l.metric_name().is_none() {
                                return Err("missing metric name (__name__ label)".into());
                            }
                            if let Err(e) = verify_label_limits(
                                l,
                                cfg.label_limit,
                                cfg.label_name_length_limit,
                                cfg.label_value_length_limit,
                            ) {
                                m.exceeded_label_limits.inc();
                                return Err(e);
                            }
                        }
                        self.cache.insert(s.series, lset)
                    }
                };
                if e.dropped {
                    continue;
                }
                e.track_stale = ts.is_none();
                match app.append(e.r, &e.labels, st, s.value) {
                    Ok(r) => {
                        e.r = r;
                        c.added += 1;
                        if is_new {
                            c.series_added += 1;
                        }
                    }
                    Err(err) => match err {
                        StorageError::OutOfOrder => m.out_of_order.inc(),
                        StorageError::DuplicateTimestamp => m.duplicate.inc(),
                        StorageError::OutOfBounds => m.out_of_bounds.inc(),
                        // Refused by the global series limit (counted by the storage): not
                        // cached, so a flood of new series costs CPU per scrape, not memory.
                        StorageError::SeriesLimit { .. } => self.cache.remove(s.series),
                        other => return Err(other.to_string()),
                    },
                }
                if cfg.sample_limit > 0 && c.added > cfg.sample_limit as u64 {
                    m.exceeded_sample_limit.inc();
                    return Err("sample limit exceeded".into());
                }
            }
            Ok(())
        })();
        drop(meta);
        if let Err(e) = res {
            self.cache.abort_round();
            return Err((c, e));
        }
        let stale = stale_nan();
        self.cache.for_each_stale(|e| {
            // Out-of-order here means the series was written again meanwhile: ignore.
            if let Ok(r) = app.append(e.r, &e.labels, t, stale) {
                e.r = r;
            }
        });
        self.cache.end_round();
        Ok(c)
    }

    fn report(&mut self, app: &mut dyn Appender, t: i64, dur: Duration, c: Counts, up: bool) {
        let vals = [
            if up { 1.0 } else { 0.0 },
            dur.as_secs_f64(),
            c.total as f64,
            c.added as f64,
            c.series_added as f64,
        ];
        for (i, v) in vals.into_iter().enumerate() {
            if let Ok(r) = app.append(self.report_refs[i], &self.report_labels[i], t, v) {
                self.report_refs[i] = r;
            }
        }
    }

    /// Prometheus's `endOfRunStaleness`: wait for the next scrape time (recorded as the marker
    /// time), one more interval and 10% more, then write markers unless shutting down.
    async fn end_of_run_staleness(
        &mut self,
        ticker: &mut tokio::time::Interval,
        control: &mut watch::Receiver<Control>,
    ) {
        let interval = self.ctx.target.interval;
        let shutdown = |c: &Control| *c == Control::Stop { stale: false };
        let mut ctl = control.clone();
        let stale_time = tokio::select! {
            _ = ctl.wait_for(shutdown) => return,
            _ = ticker.tick() => SystemTime::now(),
        };
        tokio::select! {
            _ = ctl.wait_for(shutdown) => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = ctl.wait_for(shutdown) => return,
            _ = tokio::time::sleep(interval / 10) => {}
        }
        let t = now_ms(stale_time);
        let mut app = self.ctx.appendable.appender();
        let _ = self.append(app.as_mut(), b"", Format::Text, t);
        let stale = stale_nan();
        for i in 0..self.report_labels.len() {
            let _ = app.append(self.report_refs[i], &self.report_labels[i], t, stale);
        }
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.ctx.target.url, err = %e, "stale marker commit failed");
        }
    }
}

fn meta_entry(
    meta: &mut std::collections::BTreeMap<String, Meta>,
    metric: &str,
    f: impl FnOnce(&mut Meta),
) {
    if let Some(x) = meta.get_mut(metric) {
        f(x);
        return;
    }
    let mut x = Meta {
        kind: "unknown",
        ..Default::default()
    };
    f(&mut x);
    meta.insert(metric.to_string(), x);
}

/// Seconds as Go's `strconv.FormatFloat(s, 'f', -1, 64)` prints them (`10`, `0.5`).
fn format_seconds(s: f64) -> String {
    let mut out = format!("{s}");
    if out.ends_with(".0") {
        out.truncate(out.len() - 2);
    }
    out
}

/// An error and its sources joined with ": ", skipping repeats.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_format() {
        for (s, want) in [(10.0, "10"), (0.5, "0.5"), (9.75, "9.75")] {
            assert_eq!(format_seconds(s), want);
        }
    }

    #[test]
    fn first_delay_is_within_one_interval_and_stable_in_phase() {
        let iv = Duration::from_secs(15);
        for h in [0u64, 1, 7_000_000_000, u64::MAX] {
            let d = first_delay(h, iv);
            assert!(d <= iv, "{d:?}");
        }
    }
}
