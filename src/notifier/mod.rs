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

mod client;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::model::relabel::RelabelConfig;
use crate::model::Labels;
use crate::rules::template::gofmt::format_rfc3339_ms;
use crate::selfmetrics::{Counter, Gauge, Registry};
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
        let mut o = NotifierOptions {
            external_labels: external_labels.clone(),
            relabel_configs: cfg.alert_relabel_configs.clone(),
            ..Default::default()
        };
        for (i, am) in cfg.alertmanagers.iter().enumerate() {
            let client = crate::http_client::HttpClient::new(&am.http)
                .map_err(|e| format!("alertmanagers[{i}]: {e}"))?;
            let client = Arc::new(client);
            for sc in &am.static_configs {
                for t in &sc.targets {
                    let (ep, kept) = endpoint_for(am, t, &sc.labels, Some(client.clone()));
                    if kept {
                        o.alertmanagers.push(ep);
                    } else {
                        o.dropped_alertmanagers.push(ep.url);
                    }
                }
            }
        }
        Ok(o)
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
        Some(l) if l.get("__address__").is_some() => (
            AlertmanagerEndpoint {
                url: url_of(&l),
                timeout: am.timeout,
                client,
            },
            true,
        ),
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
}

/// Sends alerts to Alertmanagers; cheap to call from rule evaluation.
pub struct Notifier {
    opts: NotifierOptions,
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
        let mut prepared = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            if !self.opts.external_labels.is_empty() {
                let mut b = a.labels.builder();
                for l in &self.opts.external_labels {
                    if b.get(&l.name).is_none() {
                        b.set(l.name.clone(), l.value.clone());
                    }
                }
                a.labels = b.into_labels();
            }
            match crate::model::relabel::process(&a.labels, &self.opts.relabel_configs) {
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
            let r = match &am.ep.client {
                Some(c) => client::post_with(c, &am.ep.url, body.clone(), am.ep.timeout).await,
                None => {
                    self.poster
                        .post_json(&am.ep.url, body.clone(), am.ep.timeout)
                        .await
                }
            };
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
