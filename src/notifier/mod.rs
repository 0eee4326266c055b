//! The Alertmanager notifier: a bounded queue between rule evaluation and every configured
//! Alertmanager, drained in batches by one task that POSTs to `/api/v2/alerts`.
//!
//! Behaviour follows Prometheus's `notifier/notifier.go`: `send` adds external labels (without
//! overriding an alert's own) and applies `alert_relabel_configs`, then queues; a full queue drops
//! the oldest alerts and counts them (`prometheus_notifications_dropped_total`), so memory is
//! bounded and rule evaluation never waits for the network. Each batch goes to all Alertmanagers
//! concurrently; a failed Alertmanager is retried with exponential backoff a few times (not on a
//! 4xx answer), and a
//! batch no Alertmanager accepted is counted as dropped. Firing alerts are re-sent by the rules
//! every resend delay, so an Alertmanager that comes back catches up on its own.
//!
//! Alertmanagers come from `static_configs` and `file_sd_configs` (watched through
//! [`crate::discovery`], a broken file keeping its last good list), each relabeled with its
//! config's `relabel_configs`, given a default port for its scheme and deduplicated by URL, as
//! Prometheus's `alertmanagerFromGroup` and `sync` do. [`Notifier::apply_config`] replaces all of
//! it, and the external labels and `alert_relabel_configs`, on every config reload.

mod client;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::discovery::{FileSd, Group};
use crate::model::relabel::RelabelConfig;
use crate::model::Labels;
use crate::rules::template::gofmt::format_rfc3339_ms;
use crate::selfmetrics::{Counter, Gauge, Registry, Summary, DEFAULT_OBJECTIVES};
use crate::shutdown::Shutdown;

pub use client::{HttpPoster, PostError};

/// An alert as sent to the Alertmanager. Times are ms since the epoch; 0 means "unset".
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels (with `alertname`).
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// When it started firing.
    pub starts_at_ms: i64,
    /// When it resolved, or until when it is valid while firing.
    pub ends_at_ms: i64,
    /// Link back to the expression.
    pub generator_url: String,
}

/// The Alertmanager API v2 endpoint for a target: `{scheme}://{addr}{path_prefix}/api/v2/alerts`.
pub fn alertmanager_url(scheme: &str, addr: &str, path_prefix: &str) -> String {
    format!(
        "{scheme}://{addr}{}/api/v2/alerts",
        path_prefix.trim_end_matches('/')
    )
}

/// One Alertmanager to send to.
#[derive(Clone, Debug)]
pub struct AlertmanagerEndpoint {
    /// Full endpoint URL (see [`alertmanager_url`]).
    pub url: String,
    /// Per-request timeout (`timeout`, default 10s).
    pub timeout: Duration,
    /// The shared client built from the Alertmanager config's HTTP settings (TLS, basic_auth,
    /// authorization); `None` uses the notifier's plain `http://` client.
    pub client: Option<Arc<crate::http_client::HttpClient>>,
}

impl PartialEq for AlertmanagerEndpoint {
    fn eq(&self, o: &Self) -> bool {
        self.url == o.url && self.timeout == o.timeout
    }
}

/// Notifier settings; [`NotifierOptions::from_config`] maps the `alerting:` config onto them.
#[derive(Clone, Debug)]
pub struct NotifierOptions {
    /// Alertmanagers to send to.
    pub alertmanagers: Vec<AlertmanagerEndpoint>,
    /// Alertmanagers dropped by their `relabel_configs` (URLs), shown by the API.
    pub dropped_alertmanagers: Vec<String>,
    /// Added to every alert unless the alert has the label already.
    pub external_labels: Labels,
    /// `alert_relabel_configs`, applied after external labels.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Queue capacity (`--alertmanager.notification-queue-capacity`, default 10000).
    pub queue_capacity: usize,
    /// Alerts per POST (Prometheus sends at most 64 per request).
    pub max_batch_size: usize,
    /// Retries per Alertmanager and batch after the first attempt.
    pub max_retries: u32,
    /// First retry delay; doubled each retry.
    pub retry_backoff: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            alertmanagers: Vec::new(),
            dropped_alertmanagers: Vec::new(),
            external_labels: Labels::empty(),
            relabel_configs: Vec::new(),
            queue_capacity: 10_000,
            max_batch_size: 64,
            max_retries: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

impl NotifierOptions {
    /// Options from the `alerting:` section and `global.external_labels`: every static target
    /// of every Alertmanager config becomes an endpoint after that config's `relabel_configs`
    /// (which see `__address__`, `__scheme__`, `__alerts_path__` and the static labels, as in
    /// Prometheus). `file_sd_configs` targets are fed later through
    /// [`Notifier::set_alertmanagers`] by whoever watches the files.
    pub fn from_config(
        cfg: &crate::config::AlertingConfig,
        external_labels: &Labels,
    ) -> Result<Self, String> {
        let setup = AlertingSetup::new(cfg, external_labels)?;
        let (alertmanagers, dropped_alertmanagers) = endpoints(&setup.sets);
        Ok(NotifierOptions {
            external_labels: setup.prep.external_labels,
            relabel_configs: setup.prep.relabel_configs,
            alertmanagers,
            dropped_alertmanagers,
            ..Default::default()
        })
    }
}

/// What [`Notifier::send`] applies to every alert; replaced as a whole on reload.
#[derive(Clone, Debug, Default)]
struct Prep {
    external_labels: Labels,
    relabel_configs: Vec<RelabelConfig>,
}

/// One `alerting.alertmanagers[]` entry and the target groups discovered for it.
struct AmSet {
    cfg: crate::config::AlertmanagerConfig,
    client: Arc<crate::http_client::HttpClient>,
    /// Target groups by source (`static/N`, `file_sd/N`); file groups are filled by `apply`.
    groups: BTreeMap<String, Vec<Group>>,
}

/// A validated `alerting:` section (HTTP clients built, nothing started): build it before
/// touching anything on reload, then hand it to [`Notifier::apply`], which cannot fail.
pub struct AlertingSetup {
    prep: Prep,
    sets: Vec<AmSet>,
}

impl AlertingSetup {
    /// Checks the section and builds each Alertmanager config's HTTP client.
    pub fn new(
        cfg: &crate::config::AlertingConfig,
        external_labels: &Labels,
    ) -> Result<Self, String> {
        let mut sets = Vec::with_capacity(cfg.alertmanagers.len());
        for (i, am) in cfg.alertmanagers.iter().enumerate() {
            let client = crate::http_client::HttpClient::new(&am.http)
                .map_err(|e| format!("alertmanagers[{i}]: {e}"))?;
            let mut groups = BTreeMap::new();
            for (j, sc) in am.static_configs.iter().enumerate() {
                groups.insert(
                    format!("static/{j}"),
                    vec![Group {
                        targets: sc.targets.clone(),
                        labels: sc.labels.clone(),
                    }],
                );
            }
            sets.push(AmSet {
                cfg: am.clone(),
                client: Arc::new(client),
                groups,
            });
        }
        Ok(AlertingSetup {
            prep: Prep {
                external_labels: external_labels.clone(),
                relabel_configs: cfg.alert_relabel_configs.clone(),
            },
            sets,
        })
    }
}

/// Active and dropped endpoints of every set; within a set, one endpoint per URL.
fn endpoints(sets: &[AmSet]) -> (Vec<AlertmanagerEndpoint>, Vec<String>) {
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for set in sets {
        let mut seen = HashSet::new();
        for g in set.groups.values().flatten() {
            for t in &g.targets {
                let (ep, kept) = endpoint_for(&set.cfg, t, &g.labels, Some(set.client.clone()));
                if !kept {
                    dropped.push(ep.url);
                } else if seen.insert(ep.url.clone()) {
                    active.push(ep);
                }
            }
        }
    }
    (active, dropped)
}

/// Whether `addr` already names a port (`host:port`, `[v6]:port`). A bare IPv6 address is
/// left alone, as Go's `SplitHostPort` check leaves it.
fn has_port(addr: &str) -> bool {
    match addr.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .is_some_and(|(_, p)| p.starts_with(':')),
        None => addr.contains(':'),
    }
}

/// The endpoint for one discovered Alertmanager address, and whether relabeling kept it.
pub fn endpoint_for(
    am: &crate::config::AlertmanagerConfig,
    address: &str,
    labels: &Labels,
    client: Option<Arc<crate::http_client::HttpClient>>,
) -> (AlertmanagerEndpoint, bool) {
    let path = format!("{}/api/v2/alerts", am.path_prefix.trim_end_matches('/'));
    let mut b = labels.builder();
    b.set("__address__", address);
    b.set("__scheme__", am.scheme.clone());
    b.set("__alerts_path__", path.clone());
    let before = b.into_labels();
    let url_of = |l: &Labels| {
        format!(
            "{}://{}{}",
            l.get("__scheme__").unwrap_or("http"),
            l.get("__address__").unwrap_or(""),
            l.get("__alerts_path__").unwrap_or("")
        )
    };
    match crate::model::relabel::process(&before, &am.relabel_configs) {
        Some(l) if l.get("__address__").is_some() => {
            // No port: the scheme's default, as Prometheus adds it.
            let addr = l.get("__address__").unwrap_or("");
            let l = if has_port(addr) {
                l
            } else {
                let port = if l.get("__scheme__") == Some("https") {
                    443
                } else {
                    80
                };
                let mut b = l.builder();
                b.set("__address__", format!("{addr}:{port}"));
                b.into_labels()
            };
            (
                AlertmanagerEndpoint {
                    url: url_of(&l),
                    timeout: am.timeout,
                    client,
                },
                true,
            )
        }
        _ => (
            AlertmanagerEndpoint {
                url: url_of(&before),
                timeout: am.timeout,
                client,
            },
            false,
        ),
    }
}

/// Counters of one notifier (also exported with Prometheus's names).
#[derive(Debug, Default)]
pub struct NotifierStats {
    /// Alerts handed to Alertmanagers (per attempt, summed over Alertmanagers).
    pub sent: AtomicU64,
    /// Failed requests.
    pub errors: AtomicU64,
    /// Alerts dropped: queue overflow or no Alertmanager accepted them.
    pub dropped: AtomicU64,
    /// Batches at least one Alertmanager accepted.
    pub delivered_batches: AtomicU64,
}

struct AmMetrics {
    ep: AlertmanagerEndpoint,
    sent: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Summary>,
}

/// The Alertmanager sets of the current config and their file watchers.
#[derive(Default)]
struct Discovery {
    sets: Vec<AmSet>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    /// Bumped by every `apply`, so a watcher of an older config changes nothing.
    generation: u64,
}

/// Sends alerts to Alertmanagers; cheap to call from rule evaluation.
pub struct Notifier {
    opts: NotifierOptions,
    /// External labels and alert relabeling; the `opts` copies are only the initial values.
    prep: Mutex<Arc<Prep>>,
    discovery: Mutex<Discovery>,
    queue: Mutex<VecDeque<Alert>>,
    wake: Notify,
    poster: HttpPoster,
    /// The current Alertmanagers; replaced as a whole by `set_alertmanagers`, snapshotted per batch.
    ams: Mutex<Arc<Vec<AmMetrics>>>,
    dropped_ams: Mutex<Vec<String>>,
    dropped: Arc<Counter>,
    queue_length: Arc<Gauge>,
    stats: NotifierStats,
}

impl Notifier {
    /// A notifier; start its [`Notifier::run`] task to deliver.
    pub fn new(opts: NotifierOptions) -> Arc<Self> {
        let r = Registry::global();
        let ams = Self::am_metrics(&opts.alertmanagers);
        r.gauge(
            "prometheus_notifications_queue_capacity",
            "The capacity of the alert notifications queue.",
            &[],
        )
        .set(opts.queue_capacity as f64);
        Self::discovered_gauge().set(opts.alertmanagers.len() as f64);
        Arc::new(Notifier {
            dropped: r.counter(
                "prometheus_notifications_dropped_total",
                "Total number of alerts dropped due to errors when sending to Alertmanager.",
                &[],
            ),
            queue_length: r.gauge(
                "prometheus_notifications_queue_length",
                "The number of alert notifications in the queue.",
                &[],
            ),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            poster: HttpPoster::new(),
            ams: Mutex::new(Arc::new(ams)),
            dropped_ams: Mutex::new(opts.dropped_alertmanagers.clone()),
            prep: Mutex::new(Arc::new(Prep {
                external_labels: opts.external_labels.clone(),
                relabel_configs: opts.relabel_configs.clone(),
            })),
            discovery: Mutex::new(Discovery::default()),
            opts,
            stats: NotifierStats::default(),
        })
    }

    fn discovered_gauge() -> Arc<Gauge> {
        Registry::global().gauge(
            "prometheus_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active.",
            &[],
        )
    }

    fn am_metrics(eps: &[AlertmanagerEndpoint]) -> Vec<AmMetrics> {
        let r = Registry::global();
        eps.iter()
            .map(|ep| {
                let l: &[(&str, &str)] = &[("alertmanager", ep.url.as_str())];
                AmMetrics {
                    ep: ep.clone(),
                    sent: r.counter(
                        "prometheus_notifications_sent_total",
                        "Total number of alerts sent.",
                        l,
                    ),
                    errors: r.counter(
                        "prometheus_notifications_errors_total",
                        "Total number of errors sending alert notifications.",
                        l,
                    ),
                    latency: r.summary(
                        "prometheus_notifications_latency_seconds",
                        "Latency quantiles for sending alert notifications.",
                        l,
                        DEFAULT_OBJECTIVES,
                    ),
                }
            })
            .collect()
    }

    /// Replaces the Alertmanager set (reload, file discovery). Batches in flight finish with
    /// the old set.
    pub fn set_alertmanagers(&self, active: Vec<AlertmanagerEndpoint>, dropped: Vec<String>) {
        let ams = Self::am_metrics(&active);
        Self::discovered_gauge().set(ams.len() as f64);
        *self.ams.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(ams);
        *self.dropped_ams.lock().unwrap_or_else(|e| e.into_inner()) = dropped;
    }

    /// Applies an `alerting:` section and the external labels (start and every reload):
    /// [`AlertingSetup::new`] then [`Notifier::apply`].
    pub fn apply_config(
        self: &Arc<Self>,
        cfg: &crate::config::AlertingConfig,
        external_labels: &Labels,
    ) -> Result<(), String> {
        self.apply(AlertingSetup::new(cfg, external_labels)?);
        Ok(())
    }

    /// Switches to a validated setup: new external labels and alert relabeling for alerts sent
    /// from now on, `file_sd_configs` read at once and then watched (in tasks on the current
    /// tokio runtime, if any), and the Alertmanager set replaced. Watchers of the previous
    /// setup stop.
    pub fn apply(self: &Arc<Self>, mut setup: AlertingSetup) {
        *self.prep.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(setup.prep);
        let mut d = self.discovery.lock().unwrap_or_else(|e| e.into_inner());
        for t in d.watchers.drain(..) {
            t.abort();
        }
        d.generation += 1;
        let generation = d.generation;
        let rt = tokio::runtime::Handle::try_current().ok();
        let mut watchers = Vec::new();
        for (si, set) in setup.sets.iter_mut().enumerate() {
            for (i, fc) in set.cfg.file_sd_configs.iter().enumerate() {
                let mut sd = FileSd::new(fc.files.clone(), fc.refresh_interval);
                let key = format!("file_sd/{i}");
                set.groups
                    .insert(key.clone(), sd.poll().unwrap_or_default());
                let Some(rt) = &rt else { continue };
                let weak: Weak<Notifier> = Arc::downgrade(self);
                let _guard = rt.enter();
                watchers.push(sd.watch(move |groups| match weak.upgrade() {
                    Some(n) => n.set_discovered(generation, si, &key, groups),
                    None => false,
                }));
            }
        }
        d.sets = setup.sets;
        d.watchers = watchers;
        let (active, dropped) = endpoints(&d.sets);
        self.set_alertmanagers(active, dropped);
    }

    /// A watcher's update; false once its config has been replaced (the watcher then stops).
    fn set_discovered(&self, generation: u64, set: usize, key: &str, groups: Vec<Group>) -> bool {
        let mut d = self.discovery.lock().unwrap_or_else(|e| e.into_inner());
        if d.generation != generation {
            return false;
        }
        let Some(s) = d.sets.get_mut(set) else {
            return false;
        };
        s.groups.insert(key.to_string(), groups);
        let (active, dropped) = endpoints(&d.sets);
        self.set_alertmanagers(active, dropped);
        true
    }

    fn snapshot(&self) -> Arc<Vec<AmMetrics>> {
        self.ams.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// This notifier's counters.
    pub fn stats(&self) -> &NotifierStats {
        &self.stats
    }

    /// Alerts waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Alert>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_dropped(&self, n: usize) {
        if n > 0 {
            self.dropped.add(n as f64);
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Queues alerts (after external labels and relabeling). Never blocks on the network; when
    /// the queue is full the oldest alerts are dropped and counted.
    pub fn send(&self, alerts: Vec<Alert>) {
        let prep = self.prep.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut prepared = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            if !prep.external_labels.is_empty() {
                let mut b = a.labels.builder();
                for l in &prep.external_labels {
                    if b.get(&l.name).is_none() {
                        b.set(l.name.clone(), l.value.clone());
                    }
                }
                a.labels = b.into_labels();
            }
            match crate::model::relabel::process(&a.labels, &prep.relabel_configs) {
                Some(l) if !l.is_empty() => a.labels = l,
                _ => continue,
            }
            prepared.push(a);
        }
        if prepared.is_empty() {
            return;
        }
        let cap = self.opts.queue_capacity.max(1);
        let mut q = self.lock();
        // A batch larger than the whole queue keeps only its newest alerts.
        let skip = prepared.len().saturating_sub(cap);
        let mut dropped = skip;
        let overflow = (q.len() + prepared.len() - skip).saturating_sub(cap);
        q.drain(..overflow);
        dropped += overflow;
        q.extend(prepared.into_iter().skip(skip));
        self.queue_length.set(q.len() as f64);
        drop(q);
        self.count_dropped(dropped);
        self.wake.notify_one();
    }

    fn next_batch(&self) -> Vec<Alert> {
        let mut q = self.lock();
        let n = q.len().min(self.opts.max_batch_size.max(1));
        let b: Vec<Alert> = q.drain(..n).collect();
        self.queue_length.set(q.len() as f64);
        b
    }

    /// Delivers queued alerts until shutdown, then tries once to flush what is left.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.started() => break,
                    _ = self.wake.notified() => continue,
                }
            }
            tokio::select! {
                _ = shutdown.started() => {
                    self.count_dropped(batch.len());
                    break;
                }
                _ = self.send_all(&batch, true) => {}
            }
        }
        // Drain on shutdown: one attempt per remaining batch, no retries, and no longer than
        // one request timeout in total so a dead Alertmanager cannot hold up the shutdown.
        let limit = self
            .snapshot()
            .iter()
            .map(|a| a.ep.timeout)
            .max()
            .unwrap_or_default();
        let drain = async {
            loop {
                let batch = self.next_batch();
                if batch.is_empty() {
                    break;
                }
                self.send_all(&batch, false).await;
            }
        };
        if tokio::time::timeout(limit, drain).await.is_err() {
            let left = self.lock().len();
            self.count_dropped(left);
        }
    }

    /// Sends one batch to every Alertmanager concurrently; true if at least one accepted it.
    async fn send_all(self: &Arc<Self>, batch: &[Alert], retry: bool) -> bool {
        let ams = self.snapshot();
        if ams.is_empty() {
            return true;
        }
        let body = Bytes::from(encode_alerts(batch));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..ams.len() {
            let (me, ams) = (self.clone(), ams.clone());
            let body = body.clone();
            let n = batch.len();
            set.spawn(async move { me.send_one(&ams[i], body, n, retry).await });
        }
        let mut ok = false;
        while let Some(r) = set.join_next().await {
            ok |= r.unwrap_or(false);
        }
        if ok {
            self.stats.delivered_batches.fetch_add(1, Ordering::Relaxed);
        } else {
            self.count_dropped(batch.len());
        }
        ok
    }

    async fn send_one(&self, am: &AmMetrics, body: Bytes, n: usize, retry: bool) -> bool {
        let attempts = if retry { self.opts.max_retries + 1 } else { 1 };
        let mut backoff = self.opts.retry_backoff;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            let begin = Instant::now();
            let r = match &am.ep.client {
                Some(c) => client::post_with(c, &am.ep.url, body.clone(), am.ep.timeout).await,
                None => {
                    self.poster
                        .post_json(&am.ep.url, body.clone(), am.ep.timeout)
                        .await
                }
            };
            am.latency.observe(begin.elapsed().as_secs_f64());
            am.sent.add(n as f64);
            self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
            match r {
                Ok(()) => return true,
                Err(e) => {
                    am.errors.inc();
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(alertmanager = %am.ep.url, count = n, attempt, error = %e, "error sending alerts");
                    // A 4xx means the request itself is wrong: sending it again cannot help.
                    if matches!(
                        e,
                        PostError::Status {
                            status: 400..=499,
                            ..
                        } | PostError::Url { .. }
                    ) {
                        break;
                    }
                }
            }
        }
        false
    }

    /// Serves `/api/v1/alertmanagers`; `None` for other paths.
    pub fn handle_api(&self, path: &str, _params: &[(String, String)]) -> Option<(u16, Vec<u8>)> {
        if path.trim_end_matches('/') != "/api/v1/alertmanagers" {
            return None;
        }
        let active: Vec<Value> = self
            .snapshot()
            .iter()
            .map(|a| json!({"url": a.ep.url}))
            .collect();
        let dropped: Vec<Value> = self
            .dropped_ams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|u| json!({"url": u}))
            .collect();
        let body = json!({
            "status": "success",
            "data": {"activeAlertmanagers": active, "droppedAlertmanagers": dropped},
        });
        Some((200, serde_json::to_vec(&body).unwrap_or_default()))
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let d = self.discovery.get_mut().unwrap_or_else(|e| e.into_inner());
        for t in d.watchers.drain(..) {
            t.abort();
        }
    }
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// The API v2 body: a JSON array of postable alerts.
pub fn encode_alerts(alerts: &[Alert]) -> Vec<u8> {
    let arr: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut o = json!({
                "labels": labels_json(&a.labels),
                "annotations": labels_json(&a.annotations),
            });
            if a.starts_at_ms != 0 {
                o["startsAt"] = Value::String(format_rfc3339_ms(a.starts_at_ms));
            }
            if a.ends_at_ms != 0 {
                o["endsAt"] = Value::String(format_rfc3339_ms(a.ends_at_ms));
            }
            if !a.generator_url.is_empty() {
                o["generatorURL"] = Value::String(a.generator_url.clone());
            }
            o
        })
        .collect();
    serde_json::to_vec(&arr).unwrap_or_default()
}

#[cfg(test)]
mod tests;
