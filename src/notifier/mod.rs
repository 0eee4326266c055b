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

/// Notifier settings (the lead maps `alerting:` config onto these).
#[derive(Clone, Debug)]
pub struct NotifierOptions {
    /// Full endpoint URLs (see [`alertmanager_url`]).
    pub alertmanager_urls: Vec<String>,
    /// Per-request timeout (`timeout`, default 10s).
    pub timeout: Duration,
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
            alertmanager_urls: Vec::new(),
            timeout: Duration::from_secs(10),
            external_labels: Labels::empty(),
            relabel_configs: Vec::new(),
            queue_capacity: 10_000,
            max_batch_size: 64,
            max_retries: 3,
            retry_backoff: Duration::from_millis(500),
        }
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
    url: String,
    sent: Arc<Counter>,
    errors: Arc<Counter>,
}

/// Sends alerts to Alertmanagers; cheap to call from rule evaluation.
pub struct Notifier {
    opts: NotifierOptions,
    queue: Mutex<VecDeque<Alert>>,
    wake: Notify,
    poster: HttpPoster,
    ams: Vec<AmMetrics>,
    dropped: Arc<Counter>,
    queue_length: Arc<Gauge>,
    stats: NotifierStats,
}

impl Notifier {
    /// A notifier; start its [`Notifier::run`] task to deliver.
    pub fn new(opts: NotifierOptions) -> Arc<Self> {
        let r = Registry::global();
        let ams = opts
            .alertmanager_urls
            .iter()
            .map(|u| {
                let l: &[(&str, &str)] = &[("alertmanager", u.as_str())];
                AmMetrics {
                    url: u.clone(),
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
            .collect();
        r.gauge(
            "prometheus_notifications_queue_capacity",
            "The capacity of the alert notifications queue.",
            &[],
        )
        .set(opts.queue_capacity as f64);
        r.gauge(
            "prometheus_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active.",
            &[],
        )
        .set(opts.alertmanager_urls.len() as f64);
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
            ams,
            opts,
            stats: NotifierStats::default(),
        })
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
        // Drain on shutdown: one attempt per remaining batch, no retries.
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                break;
            }
            self.send_all(&batch, false).await;
        }
    }

    /// Sends one batch to every Alertmanager concurrently; true if at least one accepted it.
    async fn send_all(self: &Arc<Self>, batch: &[Alert], retry: bool) -> bool {
        if self.ams.is_empty() {
            return true;
        }
        let body = Bytes::from(encode_alerts(batch));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..self.ams.len() {
            let me = self.clone();
            let body = body.clone();
            let n = batch.len();
            set.spawn(async move { me.send_one(i, body, n, retry).await });
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

    async fn send_one(&self, i: usize, body: Bytes, n: usize, retry: bool) -> bool {
        let am = &self.ams[i];
        let attempts = if retry { self.opts.max_retries + 1 } else { 1 };
        let mut backoff = self.opts.retry_backoff;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            let r = self
                .poster
                .post_json(&am.url, body.clone(), self.opts.timeout)
                .await;
            am.sent.add(n as f64);
            self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
            match r {
                Ok(()) => return true,
                Err(e) => {
                    am.errors.inc();
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(alertmanager = %am.url, count = n, attempt, error = %e, "error sending alerts");
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
        let active: Vec<Value> = self.ams.iter().map(|a| json!({"url": a.url})).collect();
        let body = json!({
            "status": "success",
            "data": {"activeAlertmanagers": active, "droppedAlertmanagers": []},
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
