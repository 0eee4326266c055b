//! Rule-manager unit tests with a fake query function, a `Vec`-backed storage and a collecting
//! notify function: alert state transitions, `ALERTS`/`ALERTS_FOR_STATE`, recording rules,
//! staleness, limits, reload hand-over and `for`-state restoration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::model::{is_stale_nan, Matcher};
use crate::rules::Alert;
use crate::storage::{
    Appender, Querier, Result as SResult, SelectHints, Series, SeriesRef, SeriesSet, VecSampleIter,
    VecSeriesSet,
};

type Samples = Arc<Mutex<Vec<(Labels, i64, f64)>>>;

/// Committed samples in append order; a querier sees them all.
#[derive(Clone, Default)]
struct MemStorage(Samples);

struct MemAppender(Samples, Vec<(Labels, i64, f64)>);

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender(self.0.clone(), Vec::new()))
    }
}

impl Appender for MemAppender {
    fn append(&mut self, _r: SeriesRef, l: &Labels, t: i64, v: f64) -> SResult<SeriesRef> {
        self.1.push((l.clone(), t, v));
        Ok(SeriesRef(1))
    }
    fn commit(self: Box<Self>) -> SResult<()> {
        self.0.lock().unwrap().extend(self.1);
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

struct MemQuerier(Vec<(Labels, i64, f64)>, i64, i64);

impl Queryable for MemStorage {
    fn querier(&self, mint: i64, maxt: i64) -> SResult<Box<dyn Querier>> {
        Ok(Box::new(MemQuerier(
            self.0.lock().unwrap().clone(),
            mint,
            maxt,
        )))
    }
}

impl Querier for MemQuerier {
    fn select(&self, _h: &SelectHints, ms: &[Matcher]) -> Box<dyn SeriesSet> {
        let mut by: std::collections::BTreeMap<Labels, Vec<(i64, f64)>> = Default::default();
        for (l, t, v) in &self.0 {
            if *t >= self.1 && *t <= self.2 && ms.iter().all(|m| m.matches_labels(l)) {
                by.entry(l.clone()).or_default().push((*t, *v));
            }
        }
        Box::new(VecSeriesSet::new(
            by.into_iter()
                .map(|(labels, s)| Series {
                    labels,
                    samples: Box::new(VecSampleIter::new(s)),
                })
                .collect(),
        ))
    }
    fn label_names(&self, _: &[Matcher]) -> SResult<Vec<String>> {
        Ok(vec![])
    }
    fn label_values(&self, _: &str, _: &[Matcher]) -> SResult<Vec<String>> {
        Ok(vec![])
    }
}

impl MemStorage {
    /// Samples of the series with exactly these labels.
    fn series(&self, l: &Labels) -> Vec<(i64, f64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(x, _, _)| x == l)
            .map(|(_, t, v)| (*t, *v))
            .collect()
    }
}

/// The fake engine's data: expression -> result vector; unknown expressions return nothing.
type Data = Arc<Mutex<HashMap<String, Vec<(Labels, f64)>>>>;

struct Fixture {
    mgr: Arc<RuleManager>,
    data: Data,
    store: MemStorage,
    sent: Arc<Mutex<Vec<Alert>>>,
    dir: tempfile::TempDir,
    queried_at: Arc<Mutex<Vec<i64>>>,
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn fixture_with(store: MemStorage) -> Fixture {
    let data: Data = Arc::default();
    let queried_at: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (d, qa) = (data.clone(), queried_at.clone());
    let query: QueryFn = Arc::new(move |q: &str, t: i64| {
        qa.lock().unwrap().push(t);
        if q == "error_expr" {
            return Err("query failed".to_string());
        }
        Ok(d.lock().unwrap().get(q).cloned().unwrap_or_default())
    });
    let parse: ParseFn = Arc::new(|_: &str| Ok(()));
    let sent: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let s2 = sent.clone();
    let notify: NotifyFn = Arc::new(move |a: Vec<Alert>| s2.lock().unwrap().extend(a));
    let mut opts = RuleManagerOptions::new(
        query,
        parse,
        notify,
        Arc::new(store.clone()),
        Some(Arc::new(store.clone())),
    );
    opts.external_labels = lbl(&[("site", "greenhouse")]);
    opts.external_url = "http://pi:9090".to_string();
    Fixture {
        mgr: RuleManager::new(opts),
        data,
        store,
        sent,
        dir: tempfile::tempdir().unwrap(),
        queried_at,
    }
}

fn fixture() -> Fixture {
    fixture_with(MemStorage::default())
}

impl Fixture {
    fn load(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        self.mgr.load(std::slice::from_ref(&p)).unwrap();
        p
    }
    fn set(&self, expr: &str, v: Vec<(Labels, f64)>) {
        self.data.lock().unwrap().insert(expr.to_string(), v);
    }
    fn api(&self, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (code, body) = self.mgr.handle_api(path, &params).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(code == 200 || v["status"] == "error", "{v}");
        v
    }
    fn take_sent(&self) -> Vec<Alert> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

const ALERT_FILE: &str = r#"groups:
  - name: g
    interval: 1m
    rules:
      - alert: PumpDown
        expr: pump_up == 0
        for: 2m
        keep_firing_for: KEEP
        labels:
          severity: page
          instance_copy: "{{ $labels.instance }}"
        annotations:
          summary: "{{ $labels.instance }} is down ({{ $value }}) at {{ $externalLabels.site }}"
"#;

#[test]
fn alert_state_transitions() {
    // Each step: seconds, whether the condition holds, rule state after evaluation, what the
    // notifier got at that step ("firing"/"resolved" with startsAt/endsAt in seconds).
    type Step = (i64, bool, &'static str, Option<(&'static str, i64, i64)>);
    #[rustfmt::skip]
    let scenarios: &[(&str, &str, &[Step])] = &[
        ("pending, firing after for, resent each minute, resolved", "0s", &[
            (0, true, "pending", None),
            (60, true, "pending", None),
            (120, true, "firing", Some(("firing", 120, 120 + 240))),
            (180, true, "firing", None),
            (240, true, "firing", Some(("firing", 120, 240 + 240))),
            (300, false, "inactive", Some(("resolved", 120, 300))),
            (360, false, "inactive", None),
            (420, false, "inactive", Some(("resolved", 120, 300))),
        ]),
        ("pending alert that clears is forgotten, never sent", "0s", &[
            (0, true, "pending", None),
            (60, false, "inactive", None),
            (120, true, "pending", None),
            (180, true, "pending", None),
            (240, true, "firing", Some(("firing", 240, 240 + 240))),
        ]),
        ("keep_firing_for holds a firing alert after its condition clears", "2m", &[
            (0, true, "pending", None),
            (120, true, "firing", Some(("firing", 120, 360))),
            (180, false, "firing", None),
            (240, false, "firing", Some(("firing", 120, 480))),
            (300, false, "inactive", Some(("resolved", 120, 300))),
        ]),
        ("condition returning during keep_firing_for resets it", "2m", &[
            (0, true, "pending", None),
            (120, true, "firing", Some(("firing", 120, 360))),
            (180, false, "firing", None),
            (240, true, "firing", Some(("firing", 120, 480))),
            (300, false, "firing", None),
            (360, false, "firing", Some(("firing", 120, 600))),
            (420, false, "inactive", Some(("resolved", 120, 420))),
        ]),
    ];
    for (name, keep, steps) in scenarios {
        let f = fixture();
        f.load("a.yml", &ALERT_FILE.replace("KEEP", keep));
        f.mgr.restore_all_at(0);
        let series = vec![(lbl(&[("__name__", "pump_up"), ("instance", "pump-1")]), 0.0)];
        for &(t, active, want_state, want_sent) in *steps {
            f.set("pump_up == 0", if active { series.clone() } else { vec![] });
            f.mgr.eval_all_at(t * 1000);
            let rules = f.api("/api/v1/rules", &[]);
            let rule = &rules["data"]["groups"][0]["rules"][0];
            assert_eq!(rule["state"], want_state, "{name} at {t}s: {rule}");
            assert_eq!(rule["health"], "ok", "{name} at {t}s");
            let sent = f.take_sent();
            match want_sent {
                None => assert!(sent.is_empty(), "{name} at {t}s: sent {sent:?}"),
                Some((_, starts, ends)) => {
                    assert_eq!(sent.len(), 1, "{name} at {t}s");
                    let a = &sent[0];
                    assert_eq!(
                        (a.starts_at_ms, a.ends_at_ms),
                        (starts * 1000, ends * 1000),
                        "{name} at {t}s"
                    );
                    assert_eq!(a.labels.get("severity"), Some("page"));
                    assert_eq!(a.labels.get("instance_copy"), Some("pump-1"));
                    assert_eq!(a.labels.get("alertname"), Some("PumpDown"));
                    assert_eq!(
                        a.annotations.get("summary"),
                        Some("pump-1 is down (0) at greenhouse")
                    );
                    assert!(
                        a.generator_url
                            .starts_with("http://pi:9090/graph?g0.expr=pump_up"),
                        "{}",
                        a.generator_url
                    );
                }
            }
        }
    }
}

#[test]
fn alerts_series_written_as_prometheus_writes_them() {
    let f = fixture();
    f.load("a.yml", &ALERT_FILE.replace("KEEP", "0s"));
    f.mgr.restore_all_at(0);
    f.set(
        "pump_up == 0",
        vec![(lbl(&[("__name__", "pump_up"), ("instance", "pump-1")]), 0.0)],
    );
    for t in [0, 60, 120] {
        f.mgr.eval_all_at(t * 1000 + 5);
    }
    f.set("pump_up == 0", vec![]);
    f.mgr.eval_all_at(180_005);
    let base = [
        ("alertname", "PumpDown"),
        ("instance", "pump-1"),
        ("instance_copy", "pump-1"),
        ("severity", "page"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        lbl(&base.iter().chain(extra).copied().collect::<Vec<_>>())
    };
    let pending = f
        .store
        .series(&with(&[("__name__", "ALERTS"), ("alertstate", "pending")]));
    let firing = f
        .store
        .series(&with(&[("__name__", "ALERTS"), ("alertstate", "firing")]));
    let for_state = f.store.series(&with(&[("__name__", "ALERTS_FOR_STATE")]));
    let show = |s: &[(i64, f64)]| {
        s.iter()
            .map(|&(t, v)| {
                (
                    t,
                    if is_stale_nan(v) {
                        "stale".to_string()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    let st = |t: i64| (t, "stale".to_string());
    let one = |t: i64| (t, "1".to_string());
    assert_eq!(show(&pending), vec![one(5), one(60_005), st(120_005)]);
    assert_eq!(show(&firing), vec![one(120_005), st(180_005)]);
    // ALERTS_FOR_STATE holds activeAt in whole seconds.
    assert_eq!(
        show(&for_state),
        vec![
            (5, "0".to_string()),
            (60_005, "0".to_string()),
            (120_005, "0".to_string()),
            st(180_005)
        ]
    );
}

#[test]
fn recording_rules_offset_staleness_and_errors() {
    let f = fixture();
    f.load(
        "r.yml",
        r#"groups:
  - name: rec
    query_offset: 10s
    limit: 2
    rules:
      - record: job:temp:avg
        expr: avg by (job) (temp)
        labels:
          source: rule
      - record: broken
        expr: error_expr
"#,
    );
    let a = lbl(&[("job", "a")]);
    let b = lbl(&[("job", "b")]);
    f.set(
        "avg by (job) (temp)",
        vec![(a.clone(), 20.5), (b.clone(), 18.0)],
    );
    f.mgr.eval_all_at(100_000);
    // The query ran at ts - query_offset, and the samples carry that timestamp.
    assert!(f.queried_at.lock().unwrap().iter().all(|&t| t == 90_000));
    let ra = lbl(&[
        ("__name__", "job:temp:avg"),
        ("job", "a"),
        ("source", "rule"),
    ]);
    let rb = lbl(&[
        ("__name__", "job:temp:avg"),
        ("job", "b"),
        ("source", "rule"),
    ]);
    assert_eq!(f.store.series(&ra), vec![(90_000, 20.5)]);
    f.set("avg by (job) (temp)", vec![(a.clone(), 21.0)]);
    f.mgr.eval_all_at(160_000);
    assert_eq!(f.store.series(&ra), vec![(90_000, 20.5), (150_000, 21.0)]);
    let sb = f.store.series(&rb);
    assert_eq!(sb.len(), 2);
    assert!(is_stale_nan(sb[1].1) && sb[1].0 == 150_000, "{sb:?}");

    let rules = f.api("/api/v1/rules", &[("type", "record")]);
    let rs = &rules["data"]["groups"][0]["rules"];
    assert_eq!(rs[0]["health"], "ok");
    assert_eq!(rs[0]["type"], "recording");
    assert_eq!(rs[0]["labels"]["source"], "rule");
    assert_eq!(rs[1]["health"], "err");
    assert_eq!(rs[1]["lastError"], "query failed");

    // Over the limit, and duplicate label sets after applying labels, are evaluation errors.
    let cases: &[(Vec<(Labels, f64)>, &str)] = &[
        (
            vec![
                (lbl(&[("job", "a")]), 1.0),
                (lbl(&[("job", "b")]), 1.0),
                (lbl(&[("job", "c")]), 1.0),
            ],
            "exceeded limit of 2 with 3 series",
        ),
        (
            vec![
                (lbl(&[("__name__", "x"), ("job", "a")]), 1.0),
                (lbl(&[("__name__", "y"), ("job", "a")]), 1.0),
            ],
            "vector contains metrics with the same labelset after applying rule labels",
        ),
    ];
    for (i, (v, want)) in cases.iter().enumerate() {
        f.set("avg by (job) (temp)", v.clone());
        f.mgr.eval_all_at(220_000 + i as i64 * 60_000);
        let rules = f.api("/api/v1/rules", &[]);
        assert_eq!(rules["data"]["groups"][0]["rules"][0]["lastError"], *want);
    }
}

#[test]
fn alert_limit_and_api_filters() {
    let f = fixture();
    f.load(
        "a.yml",
        r#"groups:
  - name: lim
    limit: 1
    rules:
      - alert: Many
        expr: many
  - name: other
    rules:
      - record: x
        expr: y
"#,
    );
    f.mgr.restore_all_at(0);
    f.set(
        "many",
        vec![(lbl(&[("i", "1")]), 1.0), (lbl(&[("i", "2")]), 1.0)],
    );
    f.mgr.eval_all_at(0);
    let rules = f.api("/api/v1/rules", &[("type", "alert")]);
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "type filter keeps groups: {rules}");
    assert_eq!(groups[1]["rules"].as_array().unwrap().len(), 0);
    assert_eq!(
        groups[0]["rules"][0]["lastError"],
        "exceeded limit of 1 with 2 alerts"
    );
    assert_eq!(groups[0]["rules"][0]["state"], "inactive");
    let filtered = f.api("/api/v1/rules", &[("rule_group[]", "other")]);
    assert_eq!(filtered["data"]["groups"].as_array().unwrap().len(), 1);
    let bad = f.api("/api/v1/rules", &[("type", "bogus")]);
    assert_eq!(bad["errorType"], "bad_data");
    f.set("many", vec![(lbl(&[("i", "1")]), 1.5)]);
    f.mgr.eval_all_at(60_000);
    let alerts = f.api("/api/v1/alerts", &[]);
    let a = &alerts["data"]["alerts"][0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["value"], "1.5e+00");
    assert_eq!(a["activeAt"], "1970-01-01T00:01:00Z");
    assert_eq!(a["labels"]["alertname"], "Many");
}

#[test]
fn reload_keeps_state_of_unchanged_rules_and_stales_removed_ones() {
    let f = fixture();
    let v1 = r#"groups:
  - name: g
    rules:
      - alert: Hot
        expr: temp > 30
        for: 1m
      - record: gone
        expr: temp
"#;
    let p = f.load("a.yml", v1);
    f.mgr.restore_all_at(0);
    f.set("temp > 30", vec![(lbl(&[("room", "a")]), 35.0)]);
    f.set("temp", vec![(lbl(&[("room", "a")]), 35.0)]);
    f.mgr.eval_all_at(0);
    f.mgr.eval_all_at(60_000);
    let state = |f: &Fixture| f.api("/api/v1/alerts", &[])["data"]["alerts"][0].clone();
    assert_eq!(state(&f)["state"], "firing");
    let before = f.mgr.groups()[0].clone();
    // Reloading identical files keeps the very same group.
    f.mgr.load(std::slice::from_ref(&p)).unwrap();
    assert!(Arc::ptr_eq(&before, &f.mgr.groups()[0]));
    // A changed group takes over the alert; the removed rule's series is marked stale.
    let v2 = v1.replace(
        "      - record: gone\n        expr: temp\n",
        "      - record: new\n        expr: temp\n",
    );
    f.load("a.yml", &v2);
    assert!(!Arc::ptr_eq(&before, &f.mgr.groups()[0]));
    assert_eq!(state(&f)["state"], "firing");
    assert_eq!(state(&f)["activeAt"], "1970-01-01T00:00:00Z");
    f.mgr.eval_all_at(120_000);
    let gone = f.store.series(&lbl(&[("__name__", "gone"), ("room", "a")]));
    assert_eq!(gone.len(), 3, "{gone:?}");
    assert!(is_stale_nan(gone[2].1) && gone[2].0 == 120_000);
    assert_eq!(state(&f)["state"], "firing");
    // A bad file leaves everything as it was.
    std::fs::write(&p, "groups: [{name: g, rules: [{alert: X}]}]").unwrap();
    let errs = f.mgr.load(std::slice::from_ref(&p)).unwrap_err();
    assert!(errs[0].contains("field 'expr' must be set"), "{errs:?}");
    assert_eq!(state(&f)["state"], "firing");
    // Removing the group marks its series stale.
    std::fs::write(&p, "groups: []").unwrap();
    f.mgr.load(std::slice::from_ref(&p)).unwrap();
    let new = f.store.series(&lbl(&[("__name__", "new"), ("room", "a")]));
    assert!(is_stale_nan(new.last().unwrap().1), "{new:?}");
}

#[test]
fn for_state_restored_after_restart() {
    const MIN: i64 = 60_000;
    // activeAt (s) stored before the restart, last sample time (downAt), restart time, and the
    // expected activeAt after restoring (for: 30m, grace period 10m).
    #[rustfmt::skip]
    let cases: &[(&str, i64, i64, i64, i64)] = &[
        ("pending 10m, down 5m: the down time does not count", 1000, 1_000_000 + 10 * MIN, 1_000_000 + 15 * MIN, 1_000_000 + 5 * MIN),
        ("pending 25m: fires no earlier than the grace period", 1000, 1_000_000 + 25 * MIN, 1_000_000 + 27 * MIN, 1_000_000 + 27 * MIN + 10 * MIN - 30 * MIN),
        ("was firing: keeps its activeAt and fires at once", 1000, 1_000_000 + 40 * MIN, 1_000_000 + 45 * MIN, 1_000_000),
    ];
    for &(name, active_s, down_at, restart, want) in cases {
        let store = MemStorage::default();
        let labels = lbl(&[
            ("__name__", "ALERTS_FOR_STATE"),
            ("alertname", "Slow"),
            ("dev", "a"),
        ]);
        let mut t = active_s * 1000;
        while t <= down_at {
            store
                .0
                .lock()
                .unwrap()
                .push((labels.clone(), t, active_s as f64));
            t += MIN;
        }
        store
            .0
            .lock()
            .unwrap()
            .push((labels.clone(), down_at, active_s as f64));
        let f = fixture_with(store);
        f.load("a.yml", "groups:\n  - name: g\n    rules:\n      - alert: Slow\n        expr: slow\n        for: 30m\n");
        f.set("slow", vec![(lbl(&[("dev", "a")]), 1.0)]);
        f.mgr.eval_all_at(restart);
        f.mgr.restore_all_at(restart);
        let a = f.api("/api/v1/alerts", &[])["data"]["alerts"][0].clone();
        assert_eq!(
            a["activeAt"],
            crate::rules::template::gofmt::format_rfc3339_ms(want),
            "{name}"
        );
        f.mgr.eval_all_at(restart + MIN);
        let firing = f.api("/api/v1/alerts", &[])["data"]["alerts"][0]["state"].clone();
        let want_firing = restart + MIN - want >= 30 * MIN;
        assert_eq!(firing == "firing", want_firing, "{name}: {firing}");
    }
}

#[test]
fn evaluation_is_aligned_and_missed_iterations_counted() {
    let f = fixture();
    f.load("a.yml", "groups:\n  - name: aligned\n    interval: 10s\n    rules:\n      - record: a\n        expr: b\n");
    let g = f.mgr.groups()[0].clone();
    let phase = g.eval_timestamp(0).rem_euclid(10_000);
    for now in [1_700_000_000_123i64, 1_700_000_004_999, 1_700_000_019_000] {
        let ts = g.eval_timestamp(now);
        assert!(ts <= now && now - ts < 10_000, "{now} -> {ts}");
        assert_eq!(ts.rem_euclid(10_000), phase, "same phase for every time");
    }
    let missed = |g: &Group| {
        let mut s = String::new();
        crate::selfmetrics::Registry::global().expose(&mut s);
        let key = format!(
            "prometheus_rule_group_iterations_missed_total{{rule_group=\"{}\"}} ",
            g.key
        );
        s.lines()
            .find_map(|l| {
                l.strip_prefix(key.as_str())
                    .map(|v| v.parse::<f64>().unwrap())
            })
            .unwrap_or(0.0)
    };
    let cases: &[(i64, i64, i64, f64)] = &[
        // ts, now after the evaluation, next ts, missed so far
        (0, 3_000, 10_000, 0.0),
        // The evaluation overran by one interval: one missed, the next one starts at once.
        (10_000, 35_000, 30_000, 1.0),
        (30_000, 39_999, 40_000, 1.0),
    ];
    for &(ts, now, next, want_missed) in cases {
        assert_eq!(g.advance(ts, now), next);
        assert_eq!(missed(&g), want_missed);
    }
}

#[tokio::test]
async fn run_evaluates_on_schedule_and_stops_on_shutdown() {
    let f = fixture();
    f.load("a.yml", "groups:\n  - name: fast\n    interval: 100ms\n    rules:\n      - record: a\n        expr: b\n");
    f.set("b", vec![(lbl(&[("x", "1")]), 1.0)]);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(f.mgr.clone().run(shutdown));
    let series = lbl(&[("__name__", "a"), ("x", "1")]);
    for _ in 0..100 {
        if f.store.series(&series).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = f.store.series(&series);
    assert!(s.len() >= 3, "{s:?}");
    // Timestamps are on the group's 100ms grid.
    let phase = s[0].0.rem_euclid(100);
    assert!(s.iter().all(|(t, _)| t.rem_euclid(100) == phase), "{s:?}");
    trigger.trigger();
    task.await.unwrap();
    let n = f.store.series(&series).len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.store.series(&series).len(),
        n,
        "no evaluation after shutdown"
    );
}

#[test]
fn only_the_first_load_waits_for_restoration() {
    // Rows: loaded by the first load?, whether ALERTS is written before any restore.
    for (first_load, want_written) in [(true, false), (false, true)] {
        let f = fixture();
        if !first_load {
            f.load("empty.yml", "groups: []\n");
        }
        f.load(
            "a.yml",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: a\n",
        );
        f.set("a", vec![(lbl(&[("x", "1")]), 1.0)]);
        f.mgr.eval_all_at(1_000);
        let alerts = lbl(&[
            ("__name__", "ALERTS"),
            ("alertname", "A"),
            ("alertstate", "firing"),
            ("x", "1"),
        ]);
        assert_eq!(
            !f.store.series(&alerts).is_empty(),
            want_written,
            "first load: {first_load}"
        );
    }
}

#[test]
fn reload_applies_new_external_labels_url_and_default_interval() {
    let f = fixture();
    let text = "groups:\n  - name: own\n    interval: 5s\n    rules:\n      - alert: A\n        expr: a\n        annotations:\n          where: '{{ $externalLabels.site }} {{ $externalURL }}'\n  - name: default\n    rules:\n      - record: r\n        expr: a\n";
    let p = f.load("a.yml", text);
    f.mgr.restore_all_at(0);
    f.set("a", vec![(lbl(&[("x", "1")]), 1.0)]);
    let interval = |f: &Fixture, i: usize| {
        f.api("/api/v1/rules", &[])["data"]["groups"][i]["interval"].clone()
    };
    assert_eq!(interval(&f, 1), 60.0, "evaluation_interval default");
    // (Past the first resend delay: an alert is sent when last_sent + resend_delay < ts.)
    f.mgr.eval_all_at(100_000);
    let sent = f.take_sent();
    assert_eq!(
        sent[0].annotations.get("where"),
        Some("greenhouse http://pi:9090")
    );
    let own = f.mgr.groups()[0].clone();

    // Rows: settings changed by the reload, then the annotation and the default group's
    // interval after it.
    let base = f.mgr.settings();
    let cases: Vec<(&str, RuleSettings, &str, f64)> = vec![
        (
            "external labels and URL",
            RuleSettings {
                external_labels: lbl(&[("site", "shed")]),
                external_url: "http://pi2:9090/prom".to_string(),
                ..base.clone()
            },
            "shed http://pi2:9090/prom",
            60.0,
        ),
        (
            "evaluation_interval",
            RuleSettings {
                external_labels: lbl(&[("site", "shed")]),
                external_url: "http://pi2:9090/prom".to_string(),
                default_interval: Duration::from_secs(15),
                ..base.clone()
            },
            "shed http://pi2:9090/prom",
            15.0,
        ),
    ];
    for (i, (name, settings, want_annotation, want_interval)) in cases.into_iter().enumerate() {
        f.mgr
            .apply(std::slice::from_ref(&p), settings.clone())
            .unwrap();
        assert_eq!(f.mgr.settings(), settings, "{name}");
        assert_eq!(interval(&f, 1), want_interval, "{name}");
        // The group with its own interval is untouched, yet evaluates with the new settings.
        assert!(Arc::ptr_eq(&own, &f.mgr.groups()[0]), "{name}");
        let t = 100_000 * (i as i64 + 2);
        f.mgr.eval_all_at(t);
        let a = f.api("/api/v1/alerts", &[])["data"]["alerts"][0].clone();
        assert_eq!(a["annotations"]["where"], want_annotation, "{name}");
    }
    // A failing reload changes no setting.
    let before = f.mgr.settings();
    std::fs::write(&p, "groups: [{name: g, rules: [{alert: X}]}]").unwrap();
    let mut s = before.clone();
    s.external_labels = lbl(&[("site", "never")]);
    s.default_interval = Duration::from_secs(1);
    assert!(f.mgr.apply(std::slice::from_ref(&p), s).is_err());
    assert_eq!(f.mgr.settings(), before);
}

#[test]
fn duration_summaries_are_observed() {
    let f = fixture();
    f.load("a.yml", "groups:\n  - name: sum\n    rules:\n      - record: r\n        expr: a\n      - record: r2\n        expr: a\n");
    let count = |name: &str| {
        let mut s = String::new();
        crate::selfmetrics::Registry::global().expose(&mut s);
        assert!(
            s.contains(&format!("# TYPE {name} summary")),
            "{name} not a summary"
        );
        crate::selfmetrics::Registry::global()
            .summary(name, "", &[], &[])
            .count()
    };
    f.mgr.eval_all_at(1_000);
    let (rules0, groups0) = (
        count("prometheus_rule_evaluation_duration_seconds"),
        count("prometheus_rule_group_duration_seconds"),
    );
    f.mgr.eval_all_at(2_000);
    // Other tests evaluate concurrently: at least this evaluation's observations arrived.
    assert!(count("prometheus_rule_evaluation_duration_seconds") >= rules0 + 2);
    assert!(count("prometheus_rule_group_duration_seconds") > groups0);
}

#[test]
fn default_query_offset_applies_to_groups_without_their_own() {
    let f = fixture();
    let p = f.load("a.yml", "groups:\n  - name: own\n    query_offset: 10s\n    rules:\n      - record: r\n        expr: a\n  - name: default\n    rules:\n      - record: r2\n        expr: b\n");
    // Rows: global rule_query_offset, then the query times of both groups at t=100s.
    for (offset, want) in [(0, [90_000, 100_000]), (30, [90_000, 70_000])] {
        let mut s = f.mgr.settings();
        s.default_query_offset = Duration::from_secs(offset);
        f.mgr.apply(std::slice::from_ref(&p), s).unwrap();
        f.queried_at.lock().unwrap().clear();
        f.mgr.eval_all_at(100_000);
        assert_eq!(*f.queried_at.lock().unwrap(), want, "offset {offset}s");
    }
}
