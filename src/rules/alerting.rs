//! One alerting rule's state machine: inactive -> pending -> firing, `for` and `keep_firing_for`,
//! resolved alerts kept for 15 minutes so the Alertmanager hears they ended, and the `ALERTS` /
//! `ALERTS_FOR_STATE` samples. Follows Prometheus's `rules/alerting.go` step by step.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::{Labels, LabelsBuilder, METRIC_NAME};

use super::file::RuleSpec;
use super::template::{ExecContext, Template, TemplateData};
use super::{Alert, QueryFn};

/// Resolved alerts are kept (and re-sent as resolved) this long, as Prometheus's `resolvedRetention`.
pub(crate) const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// The state of one alert (and, as the maximum over its alerts, of a rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Not active (or resolved).
    Inactive,
    /// Active, waiting out `for`.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// The name used in `alertstate` and the APIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (one label set). Times are ms since the epoch; 0 means "not set".
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    /// Current state.
    pub state: AlertState,
    /// Labels after templating, with `alertname`.
    pub labels: Labels,
    /// Annotations after templating.
    pub annotations: Labels,
    /// The latest sample value.
    pub value: f64,
    /// When it became pending.
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: i64,
    /// When it resolved.
    pub resolved_at: i64,
    /// When it was last handed to the notifier.
    pub last_sent_at: i64,
    /// `endsAt` sent while firing: a few resend periods ahead, so a stalled Prometheus lets alerts expire.
    pub valid_until: i64,
    /// When its condition cleared while `keep_firing_for` keeps it firing.
    pub keep_firing_since: i64,
}

impl ActiveAlert {
    /// Prometheus's `needsSending`.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at {
            return true;
        }
        self.last_sent_at + resend_delay_ms < ts
    }
}

/// Compiled templates of one rule.
#[derive(Clone, Debug)]
pub(crate) struct Templates {
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
}

impl Templates {
    pub(crate) fn compile(spec: &RuleSpec) -> Result<Self, String> {
        let name = format!("__alert_{}", spec.name);
        let c = |m: &std::collections::BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| {
                    Template::parse(&name, v)
                        .map(|t| (k.clone(), t))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Templates {
            labels: c(&spec.labels)?,
            annotations: c(&spec.annotations)?,
        })
    }
}

/// What templates need besides the sample: the server's identity and the query function.
pub(crate) struct EvalEnv<'a> {
    pub query: &'a QueryFn,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

/// The alert-specific state of an alerting rule.
#[derive(Debug)]
pub(crate) struct AlertingState {
    /// Alerts by label-set hash.
    pub active: HashMap<u64, ActiveAlert>,
    /// Whether `for` state was restored (or needs none); `ALERTS*` samples are written only then.
    pub restored: bool,
}

impl AlertingState {
    pub(crate) fn new() -> Self {
        AlertingState {
            active: HashMap::new(),
            restored: false,
        }
    }

    /// The rule's state: the highest state of its alerts.
    pub(crate) fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Evaluates the rule at `ts` (queries at `ts - offset`) and returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write (at `ts - offset`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval(
        &mut self,
        spec: &RuleSpec,
        tmpl: &Templates,
        env: &EvalEnv,
        ts: i64,
        offset_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let qts = ts - offset_ms;
        let res = (env.query)(&spec.expr, qts)?;
        let ctx = ExecContext {
            query: Some(env.query.clone()),
            t_ms: ts,
            external_url: env.external_url.to_string(),
        };
        let mut fresh: HashMap<u64, ActiveAlert> = HashMap::with_capacity(res.len());
        for (metric, value) in res {
            let data = TemplateData {
                labels: metric.clone(),
                external_labels: env.external_labels.clone(),
                external_url: env.external_url.to_string(),
                value,
            };
            let expand = |t: &Template| match t.expand(&data, &ctx) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(alert = %spec.name, error = %e, "expanding alert template failed");
                    format!("<error expanding template: {e}>")
                }
            };
            let mut lb = metric.builder();
            lb.del(METRIC_NAME);
            for (k, t) in &tmpl.labels {
                lb.set(k.clone(), expand(t));
            }
            lb.set("alertname", spec.name.clone());
            let labels = lb.into_labels();
            let mut ab = LabelsBuilder::new();
            for (k, t) in &tmpl.annotations {
                ab.set(k.clone(), expand(t));
            }
            let h = labels.hash64();
            if fresh.contains_key(&h) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            fresh.insert(
                h,
                ActiveAlert {
                    state: AlertState::Pending,
                    labels,
                    annotations: ab.into_labels(),
                    value,
                    active_at: ts,
                    fired_at: 0,
                    resolved_at: 0,
                    last_sent_at: 0,
                    valid_until: 0,
                    keep_firing_since: 0,
                },
            );
        }
        let in_result: std::collections::HashSet<u64> = fresh.keys().copied().collect();
        for (h, a) in fresh {
            match self.active.get_mut(&h) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(h, a);
                }
            }
        }
        let hold = spec.for_.as_millis() as i64;
        let keep_for = spec.keep_firing_for.as_millis() as i64;
        let mut out = Vec::new();
        let mut num_active = 0usize;
        let mut delete = Vec::new();
        for (h, a) in self.active.iter_mut() {
            if !in_result.contains(h) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_for > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    keep_firing = ts - a.keep_firing_since < keep_for;
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_MS)
                {
                    delete.push(*h);
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts;
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = 0;
            }
            num_active += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
            if self.restored {
                out.push((alerts_series(&a.labels, a.state), 1.0));
                out.push((
                    for_state_series(&a.labels),
                    a.active_at.div_euclid(1000) as f64,
                ));
            }
        }
        for h in delete {
            self.active.remove(&h);
        }
        if limit > 0 && num_active > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {num_active} alerts"
            ));
        }
        Ok(out)
    }

    /// The alerts to hand to the notifier now (Prometheus's `sendAlerts`).
    pub(crate) fn alerts_to_send(
        &mut self,
        ts: i64,
        resend_delay: Duration,
        interval: Duration,
        generator_url: &str,
    ) -> Vec<Alert> {
        let resend = resend_delay.as_millis() as i64;
        // Allow for two evaluation or Alertmanager send failures before the alert expires.
        let delta = resend.max(interval.as_millis() as i64);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !a.needs_sending(ts, resend) {
                continue;
            }
            a.last_sent_at = ts;
            a.valid_until = ts + 4 * delta;
            out.push(Alert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at,
                ends_at_ms: if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    a.valid_until
                },
                generator_url: generator_url.to_string(),
            });
        }
        out
    }
}

/// `ALERTS{alertname=..., alertstate=..., <labels>}`.
pub(crate) fn alerts_series(labels: &Labels, state: AlertState) -> Labels {
    let mut b = labels.builder();
    b.set(METRIC_NAME, "ALERTS");
    b.set("alertstate", state.as_str());
    b.into_labels()
}

/// `ALERTS_FOR_STATE{alertname=..., <labels>}`; its value is the `activeAt` in seconds.
pub(crate) fn for_state_series(labels: &Labels) -> Labels {
    let mut b = labels.builder();
    b.set(METRIC_NAME, "ALERTS_FOR_STATE");
    b.into_labels()
}
