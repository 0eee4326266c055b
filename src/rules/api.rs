//! `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus's JSON shapes
//! (`web/api/v1/api.go`: `RuleDiscovery`, `RuleGroup`, `AlertingRule`, `RecordingRule`, `Alert`).

use serde_json::{json, Map, Value};

use crate::model::Labels;

use super::alerting::AlertState;
use super::group::{Group, RuleState};
use super::manager::RuleManager;
use super::template::gofmt::{format_e_shortest, format_rfc3339_ms};

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

fn map_json(m: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A "last evaluation" time: 0 (never) prints Go's zero time, as Prometheus does.
fn last_eval(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        format_rfc3339_ms(ms)
    }
}

fn success(data: Value) -> (u16, Vec<u8>) {
    let body = json!({"status": "success", "data": data});
    (200, serde_json::to_vec(&body).unwrap_or_default())
}

fn bad_data(msg: String) -> (u16, Vec<u8>) {
    let body = json!({"status": "error", "errorType": "bad_data", "error": msg});
    (400, serde_json::to_vec(&body).unwrap_or_default())
}

/// Active (unresolved, not inactive) alerts of a rule, as API objects.
fn alerts_of(rule: &RuleState) -> Vec<Value> {
    let Some((_, st)) = &rule.alerting else {
        return Vec::new();
    };
    let mut alerts: Vec<_> = st
        .active
        .values()
        .filter(|a| a.state != AlertState::Inactive && a.resolved_at == 0)
        .collect();
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    alerts
        .into_iter()
        .map(|a| {
            let mut o = json!({
                "labels": labels_json(&a.labels),
                "annotations": labels_json(&a.annotations),
                "state": a.state.as_str(),
                "activeAt": format_rfc3339_ms(a.active_at),
                "value": format_e_shortest(a.value),
            });
            if a.keep_firing_since != 0 {
                o["keepFiringSince"] = Value::String(format_rfc3339_ms(a.keep_firing_since));
            }
            o
        })
        .collect()
}

fn rule_json(rule: &RuleState, with_alerts: bool) -> Value {
    let common = |o: &mut Value| {
        o["health"] = json!(rule.health.as_str());
        if !rule.last_error.is_empty() {
            o["lastError"] = json!(rule.last_error);
        }
        o["evaluationTime"] = json!(rule.eval_secs);
        o["lastEvaluation"] = json!(last_eval(rule.last_eval_ms));
    };
    match &rule.alerting {
        Some((_, st)) => {
            let mut o = json!({
                "state": st.state().as_str(),
                "name": rule.spec.name,
                "query": rule.spec.expr,
                "duration": rule.spec.for_.as_secs_f64(),
                "keepFiringFor": rule.spec.keep_firing_for.as_secs_f64(),
                "labels": map_json(&rule.spec.labels),
                "annotations": map_json(&rule.spec.annotations),
                "alerts": if with_alerts { alerts_of(rule) } else { Vec::new() },
            });
            common(&mut o);
            o["type"] = json!("alerting");
            o
        }
        None => {
            let mut o = json!({"name": rule.spec.name, "query": rule.spec.expr});
            if !rule.spec.labels.is_empty() {
                o["labels"] = map_json(&rule.spec.labels);
            }
            common(&mut o);
            o["type"] = json!("recording");
            o
        }
    }
}

fn params_named<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `GET /api/v1/rules`: `type=alert|record`, `rule_name[]`, `rule_group[]`, `file[]`,
/// `exclude_alerts`.
pub(crate) fn rules(
    groups: &[std::sync::Arc<Group>],
    params: &[(String, String)],
) -> (u16, Vec<u8>) {
    let typ = params_named(params, "type")
        .first()
        .map(|s| s.to_ascii_lowercase());
    let (want_alert, want_record) = match typ.as_deref() {
        None | Some("") => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => return bad_data(format!("invalid query parameter type='{other}'")),
    };
    let exclude_alerts = match params_named(params, "exclude_alerts").first() {
        None | Some(&"") | Some(&"false") => false,
        Some(&"true") => true,
        Some(other) => return bad_data(format!("parse exclude_alerts: invalid boolean {other:?}")),
    };
    let names = params_named(params, "rule_name");
    let gnames = params_named(params, "rule_group");
    let files = params_named(params, "file");
    let filtered = !names.is_empty() || !gnames.is_empty() || !files.is_empty();
    let mut out = Vec::new();
    for g in groups {
        if (!gnames.is_empty() && !gnames.contains(&g.spec.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.spec.file.as_str()))
        {
            continue;
        }
        let st = g.lock();
        let rules: Vec<Value> = st
            .rules
            .iter()
            .filter(|r| {
                if r.alerting.is_some() {
                    want_alert
                } else {
                    want_record
                }
            })
            .filter(|r| names.is_empty() || names.contains(&r.spec.name.as_str()))
            .map(|r| rule_json(r, !exclude_alerts))
            .collect();
        if filtered && rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.spec.name,
            "file": g.spec.file,
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.spec.limit,
            "evaluationTime": st.eval_secs,
            "lastEvaluation": last_eval(st.last_eval_ms),
        }));
    }
    success(json!({"groups": out}))
}

/// `GET /api/v1/alerts`: every active alert of every alerting rule.
pub(crate) fn alerts(groups: &[std::sync::Arc<Group>]) -> (u16, Vec<u8>) {
    let mut all = Vec::new();
    for g in groups {
        let st = g.lock();
        for r in &st.rules {
            all.extend(alerts_of(r));
        }
    }
    success(json!({"alerts": all}))
}

impl RuleManager {
    /// Serves `/api/v1/rules` and `/api/v1/alerts`; `None` for other paths.
    /// Returns the HTTP status and the JSON body.
    pub fn handle_api(&self, path: &str, params: &[(String, String)]) -> Option<(u16, Vec<u8>)> {
        match path.trim_end_matches('/') {
            "/api/v1/rules" => Some(rules(&self.groups(), params)),
            "/api/v1/alerts" => Some(alerts(&self.groups())),
            _ => None,
        }
    }
}
