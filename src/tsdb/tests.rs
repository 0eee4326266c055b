//! Unit tests of the store as a whole (real files in a temp dir).

use super::*;
use crate::model::{stale_nan, MatchType, Matcher};
use crate::storage::SelectHints;

fn opts(dir: &Path) -> Options {
    Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        retention_size: 0,
        flush_interval: Duration::from_millis(100),
        max_series: 0,
        read_cache_size: crate::tsdb::DEFAULT_READ_CACHE_BYTES,
    }
}

fn lbl(name: &str, inst: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("instance", inst), ("job", "node")])
}

fn all(db: &Tsdb, ms: &[Matcher]) -> Vec<(String, Vec<(i64, u64)>)> {
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    q.select(&SelectHints::default(), ms)
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.map(|(t, v)| (t, v.to_bits())).collect(),
            )
        })
        .collect()
}

fn eq(n: &str) -> Matcher {
    Matcher::equal("__name__", n)
}

#[test]
fn append_flush_query_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut want: Vec<(i64, u64)> = Vec::new();
    {
        let db = Tsdb::open(opts(dir.path())).expect("open");
        let mut r = SeriesRef(0);
        for k in 0..50i64 {
            let mut a = db.appender();
            let t = 1_700_000_000_000 + k * 15_000;
            let v = if k == 20 { stale_nan() } else { k as f64 * 0.5 };
            r = a.append(r, &lbl("up", "a"), t, v).expect("append");
            a.append(SeriesRef(0), &lbl("temp", "a"), t, 20.25)
                .expect("append");
            a.commit().expect("commit");
            want.push((t, v.to_bits()));
            if k % 7 == 0 {
                db.flush().expect("flush");
            }
        }
        // Unflushed and flushed samples are both visible.
        let got = all(&db, &[eq("up")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, want);
        db.close().expect("close");
        assert!(matches!(
            db.appender().append(SeriesRef(0), &lbl("up", "a"), 1, 1.0),
            Err(StorageError::Closed)
        ));
    }
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    let got = all(&db, &[eq("up")]);
    assert_eq!(got[0].1, want);
    assert_eq!(got[0].0, r#"up{instance="a", job="node"}"#);
    // The newest sample survives restarts: older or equal timestamps are refused.
    let mut a = db.appender();
    let last = want.last().expect("some").0;
    assert!(matches!(
        a.append(SeriesRef(0), &lbl("up", "a"), last - 1, 1.0),
        Err(StorageError::OutOfOrder)
    ));
    assert!(matches!(
        a.append(SeriesRef(0), &lbl("up", "a"), last, 1.0),
        Err(StorageError::DuplicateTimestamp)
    ));
    let q = db.querier(0, i64::MAX).expect("q");
    assert_eq!(
        q.label_values("__name__", &[]).expect("values"),
        ["temp", "up"]
    );
    assert_eq!(
        q.label_names(&[eq("temp")]).expect("names"),
        ["__name__", "instance", "job"]
    );
}

#[test]
fn rejections_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    let l = lbl("x", "a");
    let mut a = db.appender();
    a.append(SeriesRef(0), &l, 1000, 1.0).expect("first");
    a.commit().expect("commit");
    // (t, v, want)
    let cases: &[(i64, f64, Option<&str>)] = &[
        (999, 1.0, Some("out of order sample")),
        (1000, 2.0, Some("duplicate sample for timestamp")),
        (1000, 1.0, None), // identical sample: silently ignored, as Prometheus does
        (1001, 3.0, None),
    ];
    for &(t, v, want) in cases {
        let mut a = db.appender();
        let got = a
            .append(SeriesRef(0), &l, t, v)
            .err()
            .map(|e| e.to_string());
        assert_eq!(got.as_deref(), want, "t={t} v={v}");
        a.commit().expect("commit");
    }
    let got = all(&db, &[eq("x")]);
    assert_eq!(
        got[0].1,
        vec![(1000, 1f64.to_bits()), (1001, 3f64.to_bits())]
    );
    assert_eq!(db.inner.stats.out_of_order.load(Ordering::Relaxed), 1);
    assert_eq!(db.inner.stats.duplicate.load(Ordering::Relaxed), 1);
}

#[test]
fn commit_is_atomic_and_rollback_discards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    let mut a = db.appender();
    for i in 0..10 {
        a.append(SeriesRef(0), &lbl("m", &i.to_string()), 5, 1.0)
            .expect("append");
    }
    assert!(
        all(&db, &[eq("m")]).is_empty(),
        "nothing visible before commit"
    );
    a.commit().expect("commit");
    assert_eq!(all(&db, &[eq("m")]).len(), 10);
    let mut b = db.appender();
    b.append(SeriesRef(0), &lbl("m", "0"), 6, 2.0)
        .expect("append");
    b.rollback();
    assert_eq!(all(&db, &[eq("m")])[0].1.len(), 1);
}

#[test]
fn series_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(Options {
        max_series: 2,
        read_cache_size: crate::tsdb::DEFAULT_READ_CACHE_BYTES,
        ..opts(dir.path())
    })
    .expect("open");
    let mut a = db.appender();
    a.append(SeriesRef(0), &lbl("m", "1"), 5, 1.0).expect("1");
    a.append(SeriesRef(0), &lbl("m", "2"), 5, 1.0).expect("2");
    a.append(SeriesRef(0), &lbl("m", "1"), 6, 1.0)
        .expect("known series still fine");
    assert!(matches!(
        a.append(SeriesRef(0), &lbl("m", "3"), 5, 1.0),
        Err(StorageError::SeriesLimit { limit: 2 })
    ));
}

#[test]
fn select_filters_time_and_matchers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    for k in 0..100i64 {
        let mut a = db.appender();
        for i in 0..5 {
            a.append(
                SeriesRef(0),
                &lbl("cpu", &format!("h{i}")),
                k * 1000,
                (k * i) as f64,
            )
            .expect("a");
        }
        a.commit().expect("c");
        if k % 10 == 9 {
            db.flush().expect("flush");
        }
    }
    let q = db.querier(10_000, 19_999).expect("q");
    let m = Matcher::new(MatchType::Regex, "instance", "h[13]").expect("re");
    let got: Vec<(Labels, Vec<(i64, f64)>)> = q
        .select(&SelectHints::default(), &[eq("cpu"), m])
        .map(|s| (s.labels, s.samples.collect()))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.get("instance"), Some("h1"));
    assert_eq!(got[1].1.len(), 10);
    assert_eq!(got[1].1[0], (10_000, 30.0));
    // seek
    let mut s = q
        .select(&SelectHints::default(), &[eq("cpu")])
        .next()
        .expect("one");
    assert_eq!(s.samples.seek(15_500), Some((16_000, 0.0)));
    assert_eq!(s.samples.seek(0), Some((16_000, 0.0)));
}

#[test]
fn status_has_prometheus_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    let mut a = db.appender();
    a.append(SeriesRef(0), &lbl("up", "a"), 1000, 1.0)
        .expect("a");
    a.append(SeriesRef(0), &lbl("up", "bb"), 1000, 1.0)
        .expect("a");
    a.append(SeriesRef(0), &lbl("temp", "a"), 2000, 1.0)
        .expect("a");
    a.commit().expect("c");
    let v = serde_json::to_value(db.status(10)).expect("json");
    let want = serde_json::json!({
        "headStats": {"numSeries": 3, "numLabelPairs": 5, "chunkCount": 3, "minTime": 1000, "maxTime": 2000},
        "seriesCountByMetricName": [{"name": "up", "value": 2}, {"name": "temp", "value": 1}],
        "labelValueCountByLabelName": [
            {"name": "__name__", "value": 2}, {"name": "instance", "value": 2}, {"name": "job", "value": 1}],
        "memoryInBytesByLabelName": [
            {"name": "job", "value": 12}, {"name": "__name__", "value": 8}, {"name": "instance", "value": 4}],
        "seriesCountByLabelValuePair": [
            {"name": "job=node", "value": 3}, {"name": "__name__=up", "value": 2},
            {"name": "instance=a", "value": 2}, {"name": "__name__=temp", "value": 1},
            {"name": "instance=bb", "value": 1}],
    });
    assert_eq!(v, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_flushes_periodically_and_closes_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(db.clone().run(shutdown));
    let mut a = db.appender();
    a.append(SeriesRef(0), &lbl("up", "a"), 1000, 1.0)
        .expect("append");
    a.commit().expect("commit");
    // The periodic flush empties the in-memory buffer without anyone calling flush().
    let mut flushed = false;
    for _ in 0..500 {
        if lock(&db.inner.shared).unflushed.is_empty() {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(flushed, "no periodic flush happened");
    let mut a = db.appender();
    a.append(SeriesRef(0), &lbl("up", "a"), 2000, 2.0)
        .expect("append");
    a.commit().expect("commit");
    trigger.trigger();
    task.await.expect("run ends");
    assert!(!db.is_ready());
    assert!(matches!(
        db.appender()
            .append(SeriesRef(0), &lbl("up", "a"), 3000, 1.0),
        Err(StorageError::Closed)
    ));
    let live = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "live"))
        .count();
    assert_eq!(live, 0, "segment sealed at shutdown");
    drop(db);
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    assert_eq!(
        all(&db, &[eq("up")])[0].1,
        vec![(1000, 1f64.to_bits()), (2000, 2f64.to_bits())]
    );
}

#[test]
fn label_queries_keep_to_the_time_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series = [
        (
            Labels::from_pairs([("__name__", "a"), ("job", "j1"), ("x", "1")]),
            1_000i64,
        ),
        (
            Labels::from_pairs([("__name__", "b"), ("job", "j2"), ("y", "2")]),
            100_000,
        ),
    ];
    let load = |db: &Tsdb| {
        let mut app = db.appender();
        for (l, t0) in &series {
            for k in 0..10 {
                app.append(SeriesRef(0), l, t0 + k * 1_000, k as f64)
                    .expect("append");
            }
        }
        app.commit().expect("commit");
    };
    // (range, label names, values of `job`) -- a ends at 10 s, b starts at 100 s.
    type Case = ((i64, i64), &'static [&'static str], &'static [&'static str]);
    let cases: &[Case] = &[
        ((0, 500), &[], &[]),
        ((5_000, 6_000), &["__name__", "job", "x"], &["j1"]),
        ((50_000, 99_999), &[], &[]),
        ((105_000, 200_000), &["__name__", "job", "y"], &["j2"]),
        (
            (i64::MIN, i64::MAX),
            &["__name__", "job", "x", "y"],
            &["j1", "j2"],
        ),
    ];
    let check = |db: &Tsdb, after_reopen: bool| {
        for ((mint, maxt), names, jobs) in cases {
            let q = db.querier(*mint, *maxt).expect("q");
            let got_names = q.label_names(&[]).expect("names");
            let got_jobs = q.label_values("job", &[]).expect("values");
            // After a restart the first-sample times of old series are unknown: a range before
            // a series' start may list it. A range after a series' end never does.
            if after_reopen && *maxt < 100_000 {
                continue;
            }
            assert_eq!(
                got_names, *names,
                "names {mint}..{maxt} reopen={after_reopen}"
            );
            assert_eq!(got_jobs, *jobs, "jobs {mint}..{maxt} reopen={after_reopen}");
            // With a matcher, only that series and only inside the range.
            let m = [Matcher::equal("job", "j2")];
            let want: &[&str] = if jobs.contains(&"j2") { &["j2"] } else { &[] };
            assert_eq!(
                q.label_values("job", &m).expect("v"),
                want,
                "{mint}..{maxt}"
            );
        }
    };
    {
        let db = Tsdb::open(opts(dir.path())).expect("open");
        load(&db);
        check(&db, false);
        db.flush().expect("flush");
        check(&db, false);
        db.close().expect("close");
    }
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    check(&db, true);
}

/// Reads agree with a model of what was appended whatever the read cache holds: off, so small
/// that it keeps only selected series and evicts, and large enough to keep whole segments;
/// across flushes that extend the live segment's cached series, partitions that seal, reads
/// of sub-ranges, deletions and the segment rewrites that clean them.
#[test]
fn reads_match_a_model_with_any_read_cache_size() {
    use std::collections::BTreeMap;
    const T0: i64 = PARTITION_MS * 240_000;
    for budget in [0usize, 6 << 10, DEFAULT_READ_CACHE_BYTES] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Tsdb::open(Options {
            read_cache_size: budget,
            ..opts(dir.path())
        })
        .expect("open");
        let mut model: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
        let check = |db: &Tsdb, model: &BTreeMap<Labels, Vec<(i64, u64)>>, step: i64| {
            let ranges = [
                (i64::MIN, i64::MAX),
                (T0 + step * 3 / 4, i64::MAX),
                (T0 + 600_000, T0 + 600_000 + 3 * 60_000),
                (T0 - 1, T0 - 1),
            ];
            for ms in [vec![eq("temp")], vec![eq("up")], vec![]] {
                let ms: Vec<Matcher> = if ms.is_empty() {
                    vec![Matcher::new(MatchType::Regex, "instance", "a|c").expect("re")]
                } else {
                    ms
                };
                for &(mn, mx) in &ranges {
                    let q = db.querier(mn, mx).expect("querier");
                    let got: Vec<(Labels, Vec<(i64, u64)>)> = q
                        .select(&SelectHints::default(), &ms)
                        .map(|s| (s.labels, s.samples.map(|(t, v)| (t, v.to_bits())).collect()))
                        .collect();
                    let want: Vec<(Labels, Vec<(i64, u64)>)> = model
                        .iter()
                        .filter(|(k, _)| ms.iter().all(|m| m.matches_labels(k)))
                        .map(|(k, v)| {
                            let v: Vec<(i64, u64)> = v
                                .iter()
                                .copied()
                                .filter(|&(t, _)| t >= mn && t <= mx)
                                .collect();
                            (k.clone(), v)
                        })
                        .filter(|(_, v)| !v.is_empty())
                        .collect();
                    assert_eq!(
                        got, want,
                        "budget {budget}, step {step}, {ms:?} [{mn}, {mx}]"
                    );
                }
            }
        };
        // Three hours at 15 s: two partitions, so the first segment seals midway.
        for k in 0..720i64 {
            let t = T0 + k * 15_000;
            let mut a = db.appender();
            for inst in ["a", "b", "c"] {
                for (name, v) in [("up", 1.0), ("temp", 20.0 + ((k * 7) % 13) as f64 * 0.25)] {
                    let v = if k == 100 && inst == "b" {
                        stale_nan()
                    } else {
                        v
                    };
                    let l = lbl(name, inst);
                    a.append(SeriesRef(0), &l, t, v).expect("append");
                    model.entry(l.clone()).or_default().push((t, v.to_bits()));
                }
            }
            // A series that starts late, after the live segment's series are cached.
            if k >= 400 {
                let l = lbl("temp", "late");
                a.append(SeriesRef(0), &l, t, k as f64).expect("append");
                model
                    .entry(l.clone())
                    .or_default()
                    .push((t, (k as f64).to_bits()));
            }
            a.commit().expect("commit");
            if k % 4 == 3 {
                db.flush().expect("flush");
            }
            if k % 37 == 0 || k == 719 {
                check(&db, &model, k);
            }
        }
        // Deleting and cleaning rewrites sealed segments that may be cached.
        let del = (T0 + 30 * 60_000, T0 + 150 * 60_000);
        db.delete_series(&[vec![eq("temp")]], del.0, del.1)
            .expect("delete");
        for (k, v) in model.iter_mut() {
            if k.get("__name__") == Some("temp") {
                v.retain(|&(t, _)| t < del.0 || t > del.1);
            }
        }
        check(&db, &model, 1000);
        db.clean_tombstones().expect("clean");
        check(&db, &model, 1001);
        let (bytes, hits, misses, _) = db.inner.cache.stats();
        if budget == 0 {
            assert_eq!((bytes, hits), (0, 0));
        } else {
            assert!(
                hits > 0 && misses > 0,
                "budget {budget}: {hits} hits, {misses} misses"
            );
            assert!(bytes <= budget, "{bytes} > {budget}");
        }
        db.close().expect("close");
    }
}

/// Appends `n` scrapes of `up{instance=inst}` every 15 s from `from`, then flushes.
fn scrape_up(db: &Tsdb, inst: &str, from: i64, n: i64) {
    for k in 0..n {
        let mut a = db.appender();
        a.append(SeriesRef(0), &lbl("up", inst), from + k * 15_000, 1.0)
            .expect("append");
        a.commit().expect("commit");
    }
    db.flush().expect("flush");
}

/// `/api/v1/series` selects (hint `series`) list series from the index by their time bounds,
/// sorted, without samples.
#[test]
fn series_hint_lists_series_in_range_from_the_index() {
    const T0: i64 = PARTITION_MS * 240_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    for (inst, from) in [("old", T0), ("new", T0 + 7_200_000)] {
        scrape_up(&db, inst, from, 240);
    }
    let hints = SelectHints {
        func: Some("series".into()),
        ..Default::default()
    };
    let cases: &[(i64, i64, Vec<Matcher>, &[&str])] = &[
        (T0, T0 + 3 * 3_600_000, vec![eq("up")], &["new", "old"]),
        (T0 + 2 * 3_600_000, i64::MAX, vec![eq("up")], &["new"]),
        (T0 - 10, T0 + 60_000, vec![], &["old"]),
        (T0 + 5_000_000, T0 + 6_000_000, vec![eq("up")], &[]),
        (
            i64::MIN,
            i64::MAX,
            vec![Matcher::equal("instance", "old")],
            &["old"],
        ),
    ];
    let list = |mn: i64, mx: i64, ms: &[Matcher]| -> Vec<String> {
        let q = db.querier(mn, mx).expect("querier");
        q.select(&hints, ms)
            .map(|mut s| {
                assert!(s.samples.next().is_none(), "no samples read");
                s.labels.get("instance").unwrap_or_default().to_string()
            })
            .collect()
    };
    for (mn, mx, ms, want) in cases {
        assert_eq!(list(*mn, *mx, ms), *want, "[{mn}, {mx}] {ms:?}");
    }
    // A series whose only append was rolled back was never stored: not listed.
    let mut a = db.appender();
    a.append(SeriesRef(0), &lbl("up", "ghost"), T0 + 100, 1.0)
        .expect("append");
    a.rollback();
    assert_eq!(list(i64::MIN, i64::MAX, &[eq("up")]), ["new", "old"]);
    // An empty range lists nothing.
    assert!(list(T0 + 10, T0, &[eq("up")]).is_empty());
    // A series whose data in the range is wholly deleted is not listed there, but still is
    // where it has data left.
    db.delete_series(
        &[vec![Matcher::equal("instance", "old")]],
        T0,
        T0 + 1_800_000,
    )
    .expect("delete");
    assert_eq!(list(T0, T0 + 1_800_000, &[eq("up")]), Vec::<String>::new());
    assert_eq!(list(T0, T0 + 3_600_000, &[eq("up")]), ["old"]);
    db.close().expect("close");
}

/// Series whose data retention removed leave label and series queries, as their blocks do in
/// Prometheus.
#[test]
fn retention_removes_series_from_label_queries() {
    const T0: i64 = PARTITION_MS * 240_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(Options {
        retention_time: Duration::from_secs(4 * 3600),
        ..opts(dir.path())
    })
    .expect("open");
    for (inst, from) in [("old", T0), ("new", T0 + 10 * 3_600_000)] {
        scrape_up(&db, inst, from, 40);
    }
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    assert_eq!(
        q.label_values("instance", &[]).expect("values"),
        ["new", "old"]
    );
    db.apply_retention();
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    assert_eq!(q.label_values("instance", &[]).expect("values"), ["new"]);
    assert_eq!(
        q.label_values("instance", &[eq("up")]).expect("values"),
        ["new"]
    );
    let hints = SelectHints {
        func: Some("series".into()),
        ..Default::default()
    };
    let listed: Vec<String> = q
        .select(&hints, &[eq("up")])
        .map(|s| s.labels.to_string())
        .collect();
    assert_eq!(listed, [r#"up{instance="new", job="node"}"#]);
    db.close().expect("close");
}
