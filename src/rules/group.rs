//! One rule group: evaluation of its rules in order at one timestamp, storage of their output,
//! staleness markers for series that disappeared, `for`-state restoration, state hand-over on
//! reload, and the `prometheus_rule_*` metrics. Follows Prometheus's `rules/group.go`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::model::{stale_nan, Labels, LabelsBuilder, Matcher, METRIC_NAME};
use crate::selfmetrics::{Counter, Gauge, Registry, Summary, DEFAULT_OBJECTIVES};
use crate::storage::{Appendable, Queryable, SelectHints, SeriesRef};

use super::alerting::{AlertingState, EvalEnv, Templates};
use super::file::{RuleGroupSpec, RuleKind, RuleSpec};
use super::{NotifyFn, QueryFn};

/// Everything a group needs from outside; shared by all groups of a manager.
#[derive(Clone)]
pub(crate) struct Deps {
    pub query: QueryFn,
    pub notify: NotifyFn,
    pub appendable: Arc<dyn Appendable>,
    pub queryable: Option<Arc<dyn Queryable>>,
    pub external_labels: Labels,
    pub external_url: String,
    pub resend_delay: Duration,
    pub outage_tolerance: Duration,
    pub for_grace_period: Duration,
}

/// A rule's health, as `/api/v1/rules` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// One rule and its evaluation state.
#[derive(Debug)]
pub(crate) struct RuleState {
    pub spec: RuleSpec,
    /// Templates and alerts, for alerting rules.
    pub alerting: Option<(Templates, AlertingState)>,
    pub health: Health,
    pub last_error: String,
    /// Wall-clock start of the last evaluation, ms (0 = never).
    pub last_eval_ms: i64,
    pub eval_secs: f64,
    /// Series written by the last evaluation, with their storage refs.
    pub prev_series: HashMap<Labels, SeriesRef>,
}

/// Mutable state of a group; guarded by `Group::state` (held for a whole evaluation).
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    pub rules: Vec<RuleState>,
    /// Series of rules removed by a reload; marked stale at the next evaluation.
    pub stale_series: Vec<Labels>,
    pub last_eval_ms: i64,
    pub eval_secs: f64,
}

struct Metrics {
    evals: Arc<Counter>,
    failures: Arc<Counter>,
    missed: Arc<Counter>,
    scheduled: Arc<Counter>,
    last_duration: Arc<Gauge>,
    last_eval_ts: Arc<Gauge>,
    last_samples: Arc<Gauge>,
}

/// A loaded group.
pub(crate) struct Group {
    pub spec: RuleGroupSpec,
    pub interval: Duration,
    pub query_offset: Duration,
    /// `file;name`, Prometheus's group key and the `rule_group` label value.
    pub key: String,
    pub state: Mutex<GroupState>,
    metrics: Metrics,
}

/// The summaries Prometheus keeps across all groups (`rules/manager.go`, `NewGroupMetrics`).
struct Durations {
    /// `prometheus_rule_evaluation_duration_seconds`: one observation per rule evaluation.
    rule: Arc<Summary>,
    /// `prometheus_rule_group_duration_seconds`: one observation per group evaluation.
    group: Arc<Summary>,
}

fn durations() -> &'static Durations {
    static D: std::sync::OnceLock<Durations> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let r = Registry::global();
        Durations {
            rule: r.summary(
                "prometheus_rule_evaluation_duration_seconds",
                "The duration for a rule to execute.",
                &[],
                DEFAULT_OBJECTIVES,
            ),
            group: r.summary(
                "prometheus_rule_group_duration_seconds",
                "The duration of rule group evaluations.",
                &[],
                &[0.01, 0.05, 0.5, 0.9, 0.99],
            ),
        }
    })
}

const METRIC_NAMES: &[&str] = &[
    "prometheus_rule_evaluations_total",
    "prometheus_rule_evaluation_failures_total",
    "prometheus_rule_group_iterations_missed_total",
    "prometheus_rule_group_iterations_total",
    "prometheus_rule_group_last_duration_seconds",
    "prometheus_rule_group_last_evaluation_timestamp_seconds",
    "prometheus_rule_group_last_evaluation_samples",
    "prometheus_rule_group_interval_seconds",
    "prometheus_rule_group_rules",
];

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Group {
    /// Builds a group from a validated spec (templates were checked when the file was parsed).
    pub(crate) fn new(
        spec: RuleGroupSpec,
        default_interval: Duration,
        default_offset: Duration,
    ) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(spec.rules.len());
        for r in &spec.rules {
            let alerting = match r.kind {
                RuleKind::Alerting => Some((Templates::compile(r)?, AlertingState::new())),
                RuleKind::Recording => None,
            };
            rules.push(RuleState {
                spec: r.clone(),
                alerting,
                health: Health::Unknown,
                last_error: String::new(),
                last_eval_ms: 0,
                eval_secs: 0.0,
                prev_series: HashMap::new(),
            });
        }
        let interval = spec
            .interval
            .unwrap_or(default_interval)
            .max(Duration::from_millis(1));
        let key = format!("{};{}", spec.file, spec.name);
        let r = Registry::global();
        let l: &[(&str, &str)] = &[("rule_group", key.as_str())];
        let metrics = Metrics {
            evals: r.counter(METRIC_NAMES[0], "The total number of rule evaluations.", l),
            failures: r.counter(METRIC_NAMES[1], "The total number of rule evaluation failures.", l),
            missed: r.counter(METRIC_NAMES[2], "The total number of rule group evaluations missed due to slow rule group evaluation.", l),
            scheduled: r.counter(METRIC_NAMES[3], "The total number of scheduled rule group evaluations, whether executed or missed.", l),
            last_duration: r.gauge(METRIC_NAMES[4], "The duration of the last rule group evaluation.", l),
            last_eval_ts: r.gauge(METRIC_NAMES[5], "The timestamp of the last rule group evaluation in seconds.", l),
            last_samples: r.gauge(METRIC_NAMES[6], "The number of samples returned during the last rule group evaluation.", l),
        };
        r.gauge(METRIC_NAMES[7], "The interval of a rule group.", l)
            .set(interval.as_secs_f64());
        r.gauge(METRIC_NAMES[8], "The number of rules.", l)
            .set(rules.len() as f64);
        Ok(Group {
            query_offset: spec.query_offset.unwrap_or(default_offset),
            interval,
            key,
            spec,
            state: Mutex::new(GroupState {
                rules,
                ..Default::default()
            }),
            metrics,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupState> {
        // A panic inside an evaluation leaves consistent-enough state: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks every alerting rule as restored (nothing to restore: loaded by a reload).
    pub(crate) fn mark_restored(&self) {
        for r in self.lock().rules.iter_mut() {
            if let Some((_, a)) = &mut r.alerting {
                a.restored = true;
            }
        }
    }

    /// Drops this group's metrics (the group was removed by a reload).
    pub(crate) fn unregister_metrics(&self) {
        for name in METRIC_NAMES {
            Registry::global().remove(name, &[("rule_group", self.key.as_str())]);
        }
    }

    /// The evaluation timestamp at or before `now_ms`, offset within the interval by a hash of
    /// the group so that groups spread out but keep a fixed phase. Computed exactly as
    /// Prometheus's `EvalTimestamp` (nanoseconds; the offset is the xxhash64 of the label set
    /// `{file, name}` modulo the interval), so a group evaluates at the same instants in
    /// edgeprom as in Prometheus.
    pub(crate) fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let interval = (self.interval.as_nanos().max(1)).min(i64::MAX as u128) as i64;
        let offset = (self.phase_hash() % interval as u64) as i64;
        let now_ns = now_ms.saturating_mul(1_000_000);
        let adj = now_ns - offset;
        (adj - adj.rem_euclid(interval) + offset).div_euclid(1_000_000)
    }

    /// Prometheus's `Group.hash`: `labels.Labels{file, name}.Hash()`, the xxhash64 of
    /// `name 0xff value 0xff` for each label in order.
    fn phase_hash(&self) -> u64 {
        let mut b = Vec::with_capacity(self.spec.file.len() + self.spec.name.len() + 12);
        for (k, v) in [("file", &self.spec.file), ("name", &self.spec.name)] {
            b.extend_from_slice(k.as_bytes());
            b.push(0xff);
            b.extend_from_slice(v.as_bytes());
            b.push(0xff);
        }
        xxhash_rust::xxh64::xxh64(&b, 0)
    }

    /// Counts iterations missed because the previous one overran; returns the next timestamp.
    pub(crate) fn advance(&self, ts: i64, now_ms: i64) -> i64 {
        let interval = self.interval.as_millis().max(1) as i64;
        let missed = ((now_ms - ts) / interval - 1).max(0);
        if missed > 0 {
            self.metrics.missed.add(missed as f64);
            self.metrics.scheduled.add(missed as f64);
        }
        ts + (missed + 1) * interval
    }

    /// Evaluates every rule at `ts` (ms), in order, and stores their output.
    pub(crate) fn eval(&self, deps: &Deps, ts: i64) {
        let start = Instant::now();
        let wall = now_ms();
        self.metrics.scheduled.inc();
        let offset = self.query_offset.as_millis() as i64;
        let sample_ts = ts - offset;
        let mut st = self.lock();
        let mut samples_total = 0usize;
        if !st.stale_series.is_empty() {
            let mut app = deps.appendable.appender();
            for l in std::mem::take(&mut st.stale_series) {
                let _ = app.append(SeriesRef(0), &l, sample_ts, stale_nan());
            }
            if let Err(e) = app.commit() {
                tracing::warn!(group = %self.key, error = %e, "writing stale markers failed");
            }
        }
        let env = EvalEnv {
            query: &deps.query,
            external_labels: &deps.external_labels,
            external_url: &deps.external_url,
        };
        for rule in st.rules.iter_mut() {
            let rstart = Instant::now();
            rule.last_eval_ms = now_ms();
            self.metrics.evals.inc();
            let result = match &mut rule.alerting {
                None => eval_recording(&rule.spec, &deps.query, sample_ts, self.spec.limit),
                Some((tmpl, alerts)) => {
                    alerts.eval(&rule.spec, tmpl, &env, ts, offset, self.spec.limit)
                }
            };
            let vector = match result {
                Ok(v) => v,
                Err(e) => {
                    rule.health = Health::Err;
                    rule.last_error = e;
                    rule.eval_secs = rstart.elapsed().as_secs_f64();
                    durations().rule.observe(rule.eval_secs);
                    self.metrics.failures.inc();
                    continue;
                }
            };
            rule.health = Health::Ok;
            rule.last_error.clear();
            samples_total += vector.len();
            if let Some((_, alerts)) = &mut rule.alerting {
                let url = format!(
                    "{}{}",
                    deps.external_url.trim_end_matches('/'),
                    table_link(&rule.spec.expr)
                );
                let to_send = alerts.alerts_to_send(ts, deps.resend_delay, self.interval, &url);
                if !to_send.is_empty() {
                    (deps.notify)(to_send);
                }
            }
            self.store(deps, rule, vector, sample_ts);
            rule.eval_secs = rstart.elapsed().as_secs_f64();
            durations().rule.observe(rule.eval_secs);
        }
        let secs = start.elapsed().as_secs_f64();
        durations().group.observe(secs);
        st.eval_secs = secs;
        st.last_eval_ms = wall;
        self.metrics.last_duration.set(secs);
        self.metrics.last_eval_ts.set(ts as f64 / 1000.0);
        self.metrics.last_samples.set(samples_total as f64);
    }

    /// Appends a rule's output and stale markers for its series that disappeared.
    fn store(&self, deps: &Deps, rule: &mut RuleState, vector: Vec<(Labels, f64)>, t: i64) {
        let mut app = deps.appendable.appender();
        let mut returned: HashMap<Labels, SeriesRef> = HashMap::with_capacity(vector.len());
        let mut sample_errors = 0usize;
        let mut first_err = None;
        for (l, v) in vector {
            let r = rule.prev_series.get(&l).copied().unwrap_or_default();
            match app.append(r, &l, t, v) {
                Ok(r) => {
                    returned.insert(l, r);
                }
                Err(e) => {
                    sample_errors += 1;
                    first_err.get_or_insert(e.to_string());
                }
            }
        }
        for (l, r) in rule.prev_series.iter() {
            if !returned.contains_key(l) {
                // Out-of-order is expected when the series was already marked; ignore it.
                let _ = app.append(*r, l, t, stale_nan());
            }
        }
        if let Some(e) = first_err {
            rule.health = Health::Err;
            rule.last_error = e;
            tracing::warn!(group = %self.key, rule = %rule.spec.name, errors = sample_errors, "appending rule output failed");
        }
        match app.commit() {
            Ok(()) => rule.prev_series = returned,
            Err(e) => {
                rule.health = Health::Err;
                rule.last_error = e.to_string();
                self.metrics.failures.inc();
            }
        }
    }

    /// Writes stale markers for every series of the last evaluation (group removed by a reload).
    pub(crate) fn mark_all_stale(&self, deps: &Deps, ts: i64) {
        let st = self.lock();
        let mut app = deps.appendable.appender();
        for rule in &st.rules {
            for (l, r) in &rule.prev_series {
                let _ = app.append(*r, l, ts, stale_nan());
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!(group = %self.key, error = %e, "writing stale markers failed");
        }
    }

    /// Takes over the state of the group this one replaces (Prometheus's `CopyState`): rules are
    /// matched by name and labels, in order; series of unmatched old rules are marked stale later.
    pub(crate) fn copy_state_from(&self, old: &Group) {
        let mut old_st = old.lock();
        let mut new_st = self.lock();
        let mut by_key: HashMap<RuleKey, Vec<usize>> = HashMap::new();
        for (i, r) in old_st.rules.iter().enumerate() {
            by_key.entry(rule_key(&r.spec)).or_default().push(i);
        }
        for k in by_key.values_mut() {
            k.reverse();
        }
        let mut taken = HashSet::new();
        for r in new_st.rules.iter_mut() {
            let Some(i) = by_key.get_mut(&rule_key(&r.spec)).and_then(|v| v.pop()) else {
                continue;
            };
            taken.insert(i);
            let o = &mut old_st.rules[i];
            r.prev_series = std::mem::take(&mut o.prev_series);
            r.health = o.health;
            r.last_error = o.last_error.clone();
            r.last_eval_ms = o.last_eval_ms;
            r.eval_secs = o.eval_secs;
            if let (Some((_, na)), Some((_, oa))) = (&mut r.alerting, &mut o.alerting) {
                na.active = std::mem::take(&mut oa.active);
                na.restored = oa.restored;
            }
        }
        let mut stale = std::mem::take(&mut old_st.stale_series);
        for (i, r) in old_st.rules.iter_mut().enumerate() {
            if !taken.contains(&i) {
                stale.extend(std::mem::take(&mut r.prev_series).into_keys());
            }
        }
        new_st.stale_series = stale;
        new_st.last_eval_ms = old_st.last_eval_ms;
        new_st.eval_secs = old_st.eval_secs;
    }

    /// Restores `for` state of active alerts from `ALERTS_FOR_STATE` (Prometheus's
    /// `RestoreForState`), after the first evaluation following a start.
    pub(crate) fn restore_for_state(&self, deps: &Deps, ts: i64) {
        let mut st = self.lock();
        let grace = deps.for_grace_period.as_millis() as i64;
        let mint = ts - deps.outage_tolerance.as_millis() as i64;
        let querier = match &deps.queryable {
            Some(q) => match q.querier(mint, ts) {
                Ok(q) => Some(q),
                Err(e) => {
                    tracing::error!(group = %self.key, error = %e, "failed to get querier to restore alert state");
                    None
                }
            },
            None => None,
        };
        for rule in st.rules.iter_mut() {
            let hold = rule.spec.for_.as_millis() as i64;
            let Some((_, alerts)) = &mut rule.alerting else {
                continue;
            };
            let Some(q) = querier.as_ref().filter(|_| hold >= grace) else {
                // A `for` shorter than the grace period is simply waited out again.
                alerts.restored = true;
                continue;
            };
            for a in alerts.active.values_mut() {
                let mut matchers = vec![Matcher::equal(METRIC_NAME, "ALERTS_FOR_STATE")];
                matchers.extend(a.labels.iter().map(|l| Matcher::equal(&l.name, &l.value)));
                let hints = SelectHints {
                    start: mint,
                    end: ts,
                    ..Default::default()
                };
                let mut set = q.select(&hints, &matchers);
                // The series must carry exactly the alert's labels (not a superset).
                let want = super::alerting::for_state_series(&a.labels);
                let Some(mut series) = set.by_ref().find(|s| s.labels == want) else {
                    continue;
                };
                let last = series.samples.by_ref().last();
                if series.samples.take_err().is_err() {
                    continue;
                }
                let Some((t, v)) = last else { continue };
                if crate::model::is_stale_nan(v) {
                    continue;
                }
                let down_at = t.div_euclid(1000) * 1000;
                let mut restored = (v as i64) * 1000;
                let remaining = hold - (down_at - restored);
                if remaining <= 0 {
                    // It was firing when we went down; the next evaluation fires it again.
                } else if remaining < grace {
                    restored = ts + grace - hold;
                } else {
                    restored += ts - down_at;
                }
                a.active_at = restored;
            }
            alerts.restored = true;
        }
    }
}

/// A rule's identity across reloads: its name and labels.
type RuleKey = (String, Vec<(String, String)>);

fn rule_key(s: &RuleSpec) -> RuleKey {
    (
        s.name.clone(),
        s.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// `/graph?g0.expr=...&g0.tab=1`, the generator URL path of an alert.
pub(crate) fn table_link(expr: &str) -> String {
    let e: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("/graph?g0.expr={e}&g0.tab=1")
}

/// A recording rule (Prometheus's `RecordingRule.Eval`).
fn eval_recording(
    spec: &RuleSpec,
    query: &QueryFn,
    t: i64,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let res = query(&spec.expr, t)?;
    let mut seen = HashSet::with_capacity(res.len());
    let mut out = Vec::with_capacity(res.len());
    for (l, v) in res {
        let mut b: LabelsBuilder = l.builder();
        b.set(METRIC_NAME, spec.name.clone());
        for (k, val) in &spec.labels {
            b.set(k.clone(), val.clone());
        }
        let l = b.into_labels();
        if !seen.insert(l.hash64()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        out.push((l, v));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}
