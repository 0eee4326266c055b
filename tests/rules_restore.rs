//! `for` state survives a restart through the real storage engine: a rule manager writes
//! `ALERTS_FOR_STATE` into a tsdb directory, the process "stops" (tsdb closed), and a new manager
//! on the reopened tsdb restores the alert's `activeAt` as Prometheus does (time spent down does
//! not count towards `for`), then fires it once the remaining `for` has passed.

use std::sync::Arc;
use std::time::Duration;

use edgeprom::model::{is_stale_nan, Labels, Matcher};
use edgeprom::rules::{Alert, NotifyFn, ParseFn, QueryFn, RuleManager, RuleManagerOptions};
use edgeprom::storage::{Queryable, SelectHints};
use edgeprom::tsdb::{Options, Tsdb};

const MIN: i64 = 60_000;

fn manager(db: &Arc<Tsdb>, rules: &std::path::Path) -> Arc<RuleManager> {
    let query: QueryFn = Arc::new(|_q: &str, _t: i64| {
        Ok(vec![(
            Labels::from_pairs([("__name__", "soil_moisture"), ("bed", "3")]),
            0.12,
        )])
    });
    let parse: ParseFn = Arc::new(|_: &str| Ok(()));
    let notify: NotifyFn = Arc::new(|_: Vec<Alert>| {});
    let opts = RuleManagerOptions::new(query, parse, notify, db.clone(), Some(db.clone()));
    let mgr = RuleManager::new(opts);
    mgr.load(&[rules.to_path_buf()]).unwrap();
    mgr
}

fn alert_json(mgr: &RuleManager) -> serde_json::Value {
    let (_, body) = mgr.handle_api("/api/v1/alerts", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["data"]["alerts"][0].clone()
}

fn rfc3339(ms: i64) -> String {
    // Via the rules API's own formatting would be circular; compute the expected text here.
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (y, m, d) = {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    };
    let sod = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[test]
fn for_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: beds\n    rules:\n      - alert: DrySoil\n        expr: soil_moisture < 0.2\n        for: 30m\n",
    )
    .unwrap();
    let opts = Options {
        path: dir.path().join("data"),
        flush_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    // Whole minutes, so activeAt (stored in seconds) round-trips exactly.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now / MIN * MIN - 60 * MIN;

    // First life: pending for 10 minutes.
    {
        let db = Tsdb::open(opts.clone()).unwrap();
        let mgr = manager(&db, &rules);
        mgr.restore_all_at(t0);
        for i in 0..=10 {
            mgr.eval_all_at(t0 + i * MIN);
        }
        assert_eq!(alert_json(&mgr)["state"], "pending");
        db.close().unwrap();
    }

    // Second life, 5 minutes later: the stored series is read back from disk...
    let db = Tsdb::open(opts).unwrap();
    let q = db.querier(t0, t0 + 20 * MIN).unwrap();
    let mut set = q.select(
        &SelectHints {
            start: t0,
            end: t0 + 20 * MIN,
            ..Default::default()
        },
        &[Matcher::equal("__name__", "ALERTS_FOR_STATE")],
    );
    let s = set.next().expect("ALERTS_FOR_STATE stored");
    assert_eq!(
        s.labels,
        Labels::from_pairs([
            ("__name__", "ALERTS_FOR_STATE"),
            ("alertname", "DrySoil"),
            ("bed", "3")
        ])
    );
    let samples: Vec<(i64, f64)> = s.samples.collect();
    assert_eq!(samples.len(), 11);
    assert!(samples
        .iter()
        .all(|&(_, v)| !is_stale_nan(v) && v == (t0 / 1000) as f64));

    // ...and the restored activeAt leaves out the 5 minutes of downtime.
    let restart = t0 + 15 * MIN;
    let mgr = manager(&db, &rules);
    mgr.eval_all_at(restart);
    mgr.restore_all_at(restart);
    assert_eq!(alert_json(&mgr)["activeAt"], rfc3339(t0 + 5 * MIN));
    mgr.eval_all_at(t0 + 34 * MIN);
    assert_eq!(
        alert_json(&mgr)["state"],
        "pending",
        "29 minutes counted so far"
    );
    mgr.eval_all_at(t0 + 35 * MIN);
    assert_eq!(alert_json(&mgr)["state"], "firing", "30 minutes counted");
    db.close().unwrap();
}
