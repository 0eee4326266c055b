//! The TSDB admin API on the real binary: data backfilled with `edgeprom import openmetrics`,
//! then `delete_series` -> gone from query, series, labels and status -> restart -> still gone
//! -> `clean_tombstones` -> still gone, segment files smaller -> `snapshot` -> a second edgeprom
//! on the snapshot directory answers the same; and the error table (Prometheus 2.42's codes,
//! error types and messages).

mod common;

use common::{request, run, Server};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const STEP_S: i64 = 15;
const POINTS: i64 = 6 * 3600 / STEP_S;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get_data(addr: &str, path: &str) -> Value {
    let (code, body) = request(addr, "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    let v = json(&body);
    assert_eq!(v["status"], "success", "{body}");
    v["data"].clone()
}

/// A value with one decimal that does not repeat (splitmix64), so deleted samples take room.
fn noise(t: i64, salt: u64) -> f64 {
    let mut z = (t as u64) ^ (salt << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % 1000) as f64 / 10.0
}

/// Six hours of `keep_me{i}` and `drop_me{i}` (i = 0..3) every 15 s from `start` (Unix s).
fn openmetrics(start: i64) -> String {
    let mut s = String::new();
    for (salt, name) in [(0u64, "keep_me"), (100, "drop_me")] {
        s.push_str(&format!("# TYPE {name} gauge\n"));
        for i in 0..4u64 {
            for k in 0..POINTS {
                let t = start + k * STEP_S;
                s.push_str(&format!("{name}{{i=\"{i}\"}} {} {t}\n", noise(t, salt + i)));
            }
        }
    }
    s.push_str("# EOF\n");
    s
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("ls data")
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".seg") || n.ends_with(".live")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Everything a client can see of the store: raw samples of every series (a range selector at
/// `at`), the series list, label names and values, the status page's counts by metric name.
#[derive(Debug, PartialEq)]
struct View {
    raw: Value,
    series: Value,
    names: Value,
    name_values: Value,
    drop_i_values: Value,
    counts: Value,
}

fn view(addr: &str, at: i64) -> View {
    let q = enc(r#"{__name__=~"keep_me|drop_me"}[7h]"#);
    let mut raw = get_data(addr, &format!("/api/v1/query?query={q}&time={at}"));
    if let Some(r) = raw["result"].as_array_mut() {
        r.sort_by_key(|s| s["metric"].to_string());
    }
    let m = enc(r#"{__name__=~".+"}"#);
    let mut series = get_data(addr, &format!("/api/v1/series?match[]={m}"));
    if let Some(r) = series.as_array_mut() {
        r.sort_by_key(|s| s.to_string());
    }
    let mut counts = get_data(addr, "/api/v1/status/tsdb")["seriesCountByMetricName"].clone();
    if let Some(r) = counts.as_array_mut() {
        r.sort_by_key(|s| s.to_string());
    }
    View {
        raw,
        series,
        names: get_data(addr, "/api/v1/labels"),
        name_values: get_data(addr, "/api/v1/label/__name__/values"),
        drop_i_values: get_data(
            addr,
            &format!("/api/v1/label/i/values?match[]={}", enc("drop_me")),
        ),
        counts,
    }
}

/// Timestamps (ms) of one series in a `view`'s raw samples.
fn times(v: &View, name: &str, i: &str) -> Vec<i64> {
    v.raw["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["metric"]["__name__"] == name && s["metric"]["i"] == i)
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|p| (p[0].as_f64().unwrap_or(f64::NAN) * 1000.0).round() as i64)
        .collect()
}

/// Checks what the deletions must have done to `v`, against the view `before` them.
fn assert_deleted(v: &View, before: &View, lo_ms: i64, hi_ms: i64, when: &str) {
    for i in ["0", "1", "2", "3"] {
        assert!(
            times(v, "drop_me", i).is_empty(),
            "{when}: drop_me{{i={i}}} still has samples"
        );
    }
    let k1: Vec<i64> = times(before, "keep_me", "1")
        .into_iter()
        .filter(|&t| t < lo_ms || t > hi_ms)
        .collect();
    assert_eq!(
        times(v, "keep_me", "1"),
        k1,
        "{when}: keep_me{{i=1}} outside the deleted range"
    );
    assert!(
        k1.len() < POINTS as usize && !k1.is_empty(),
        "{when}: the range deletion cut a part"
    );
    for i in ["0", "2", "3"] {
        assert_eq!(
            times(v, "keep_me", i),
            times(before, "keep_me", i),
            "{when}: keep_me{{i={i}}}"
        );
    }
    let series = v.series.to_string();
    assert!(
        !series.contains("drop_me"),
        "{when}: series lists drop_me: {series}"
    );
    assert_eq!(
        v.series.as_array().map(Vec::len),
        Some(4),
        "{when}: {series}"
    );
    assert_eq!(v.name_values, serde_json::json!(["keep_me"]), "{when}");
    assert_eq!(v.drop_i_values, serde_json::json!([]), "{when}");
    assert_eq!(v.names, serde_json::json!(["__name__", "i"]), "{when}");
    assert_eq!(
        v.counts,
        serde_json::json!([{"name": "keep_me", "value": 4}]),
        "{when}"
    );
}

#[test]
fn delete_restart_clean_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let start = (now_s - 7 * 3600) / 60 * 60;
    let end = start + (POINTS - 1) * STEP_S;
    let om = common::write_file(dir.path(), "backfill.om", &openmetrics(start));
    let (code, out, err) = run(
        dir.path(),
        &[
            "import",
            "openmetrics",
            &om.display().to_string(),
            "--storage.tsdb.path",
            &data.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "import failed: {out}\n{err}");

    let s = Server::start_in(dir, &["--web.enable-admin-api"]);
    let at = end + 60;
    let before = view(&s.addr, at);
    assert_eq!(
        times(&before, "drop_me", "2").len(),
        POINTS as usize,
        "backfill visible"
    );
    assert_eq!(before.counts.as_array().map(Vec::len), Some(2));

    // Delete every drop_me series, and two hours of keep_me{i="1"} (RFC 3339 and Unix times).
    let (lo, hi) = (start + 3600, start + 3 * 3600);
    let cases = [
        ("POST", format!("match[]={}", enc("drop_me"))),
        (
            "PUT",
            format!(
                "match[]={}&start={}&end={hi}",
                enc(r#"keep_me{i="1"}"#),
                enc(&rfc3339(lo))
            ),
        ),
    ];
    for (method, q) in &cases {
        let (code, body) = request(
            &s.addr,
            method,
            &format!("/api/v1/admin/tsdb/delete_series?{q}"),
            None,
        );
        assert_eq!(
            (code, body.as_str()),
            (204, ""),
            "{method} delete_series?{q}"
        );
    }
    let (lo_ms, hi_ms) = (lo * 1000, hi * 1000);
    let deleted = view(&s.addr, at);
    assert_deleted(&deleted, &before, lo_ms, hi_ms, "after delete");
    assert!(s.path().join("data/tombstones").exists());

    // Restart: the deletion is durable.
    let (st, _, dir) = s.stop(Duration::from_secs(20));
    assert!(st.success(), "{st:?}");
    let s = Server::start_in(dir, &["--web.enable-admin-api"]);
    let restarted = view(&s.addr, at);
    assert_deleted(&restarted, &before, lo_ms, hi_ms, "after restart");
    assert_eq!(restarted, deleted);

    // Clean: the data leaves the disk, the answers stay.
    let seg_before = segment_bytes(&s.path().join("data"));
    let (code, body) = request(&s.addr, "POST", "/api/v1/admin/tsdb/clean_tombstones", None);
    assert_eq!((code, body.as_str()), (204, ""), "clean_tombstones");
    let seg_after = segment_bytes(&s.path().join("data"));
    assert!(
        seg_after * 10 < seg_before * 6,
        "segments should lose about half their bytes: {seg_before} -> {seg_after}"
    );
    eprintln!("segment bytes before clean_tombstones {seg_before}, after {seg_after}");
    let cleaned = view(&s.addr, at);
    assert_eq!(cleaned, deleted, "after clean_tombstones");
    let m = common::metric_value(
        &request(&s.addr, "GET", "/metrics", None).1,
        "prometheus_tsdb_tombstone_cleanup_seconds_count",
    );
    assert_eq!(m, Some(1.0));

    // Snapshot, then serve it with a second edgeprom.
    let (code, body) = request(&s.addr, "POST", "/api/v1/admin/tsdb/snapshot", None);
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["status"], "success");
    let name = v["data"]["name"].as_str().expect("name").to_string();
    let (stamp, hex) = name.split_once('-').expect("name has a dash");
    assert!(
        stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{name}"
    );
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let snap = s.path().join("data/snapshots").join(&name);
    assert!(snap.is_dir(), "{}", snap.display());
    let (code, body) = request(
        &s.addr,
        "PUT",
        "/api/v1/admin/tsdb/snapshot?skip_head=true",
        None,
    );
    assert_eq!(code, 200, "{body}");

    let peer_dir = tempfile::tempdir().expect("tempdir");
    let peer = Server::start_in(
        peer_dir,
        &[&format!("--storage.tsdb.path={}", snap.display())],
    );
    assert_eq!(
        view(&peer.addr, at),
        cleaned,
        "the snapshot answers the same"
    );
    // Snapshots do not count as storage.
    let disk = |addr: &str| {
        common::metric_value(
            &request(addr, "GET", "/metrics", None).1,
            "edgeprom_storage_disk_bytes",
        )
    };
    assert_eq!(disk(&s.addr), disk(&peer.addr), "snapshots are not counted");
}

/// `t` (Unix s) as RFC 3339 UTC.
fn rfc3339(t: i64) -> String {
    let stamp = {
        let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    };
    stamp
}

#[test]
fn errors_as_prometheus() {
    let on = Server::start(&["--web.enable-admin-api"]);
    let off = Server::start(&[]);
    const D: &str = "/api/v1/admin/tsdb/delete_series";
    // (server, method, path, status, errorType, message; "" = no JSON body expected)
    let cases: Vec<(&Server, &str, String, u16, &str, &str)> = vec![
        (
            &on,
            "POST",
            D.into(),
            400,
            "bad_data",
            "no match[] parameter provided",
        ),
        (
            &on,
            "PUT",
            format!("{D}?start=0"),
            400,
            "bad_data",
            "no match[] parameter provided",
        ),
        (
            &on,
            "POST",
            format!("{D}?match[]=up&start=yesterday"),
            400,
            "bad_data",
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
        ),
        (
            &on,
            "POST",
            format!("{D}?match[]=up&end=x"),
            400,
            "bad_data",
            r#"invalid parameter "end": Invalid time value for 'end': cannot parse "x" to a valid timestamp"#,
        ),
        (
            &on,
            "POST",
            format!("{D}?match[]={}", enc("up{")),
            400,
            "bad_data",
            r#"invalid parameter "match[]": "#,
        ),
        (
            &on,
            "POST",
            format!("{D}?match[]=up&start=10&end=20"),
            204,
            "",
            "",
        ),
        (
            &on,
            "POST",
            "/api/v1/admin/tsdb/snapshot?skip_head=maybe".into(),
            400,
            "bad_data",
            r#"invalid parameter "skip_head": unable to parse boolean: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (&on, "GET", format!("{D}?match[]=up"), 405, "", ""),
        (
            &on,
            "GET",
            "/api/v1/admin/tsdb/clean_tombstones".into(),
            405,
            "",
            "",
        ),
        (
            &on,
            "GET",
            "/api/v1/admin/tsdb/snapshot".into(),
            405,
            "",
            "",
        ),
        (
            &off,
            "POST",
            format!("{D}?match[]=up"),
            503,
            "unavailable",
            "admin APIs disabled",
        ),
        (
            &off,
            "PUT",
            "/api/v1/admin/tsdb/clean_tombstones".into(),
            503,
            "unavailable",
            "admin APIs disabled",
        ),
        (
            &off,
            "POST",
            "/api/v1/admin/tsdb/snapshot".into(),
            503,
            "unavailable",
            "admin APIs disabled",
        ),
    ];
    for (srv, method, path, code, kind, msg) in cases {
        let (got, body) = request(&srv.addr, method, &path, None);
        assert_eq!(got, code, "{method} {path}: {body}");
        if kind.is_empty() {
            continue;
        }
        let v = json(&body);
        assert_eq!(v["status"], "error", "{method} {path}");
        assert_eq!(v["errorType"], kind, "{method} {path}: {body}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(
            e.starts_with(msg),
            "{method} {path}: error {e:?} does not start with {msg:?}"
        );
    }
    // A form body works like the query string (Prometheus parses both).
    let (code, body) = request(&on.addr, "POST", D, Some("match[]=up&start=1&end=2"));
    assert_eq!(code, 204, "{body}");
}

/// The same requests to Debian's Prometheus 2.42 and to edgeprom get the same status, error
/// type and error message (the parse error's wording after `match[]` is the PromQL parser's).
#[test]
fn same_answers_as_prometheus() {
    let prom = std::path::PathBuf::from(
        std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into()),
    );
    if !prom.exists() {
        eprintln!("skipping: prometheus not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::write_file(dir.path(), "prometheus.yml", "global: {}\n");
    let port = common::free_port();
    let paddr = format!("127.0.0.1:{port}");
    let _peer = common::Peer(
        std::process::Command::new(&prom)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={paddr}"))
            .arg("--web.enable-admin-api")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    common::wait_ready(&paddr, "/-/ready");
    let ours = Server::start(&["--web.enable-admin-api"]);
    const D: &str = "/api/v1/admin/tsdb/delete_series";
    let cases: Vec<(&str, String)> = vec![
        ("POST", D.into()),
        ("POST", format!("{D}?match[]=up&start=yesterday")),
        ("PUT", format!("{D}?match[]=up&end=1e400x")),
        ("POST", format!("{D}?match[]={}", enc("up{"))),
        ("POST", format!("{D}?match[]=up")),
        (
            "PUT",
            format!("{D}?match[]={}&start=0&end=2", enc(r#"{job=~".+"}"#)),
        ),
        ("POST", "/api/v1/admin/tsdb/clean_tombstones".into()),
        ("POST", "/api/v1/admin/tsdb/snapshot?skip_head=maybe".into()),
        ("GET", "/api/v1/admin/tsdb/snapshot".into()),
        ("DELETE", "/api/v1/admin/tsdb/clean_tombstones".into()),
    ];
    for (method, path) in &cases {
        let (pc, pb) = request(&paddr, method, path, None);
        let (oc, ob) = request(&ours.addr, method, path, None);
        assert_eq!(
            oc, pc,
            "{method} {path}: status; prometheus said {pb}, edgeprom {ob}"
        );
        if pb.is_empty() || !pb.starts_with('{') {
            assert!(
                ob.is_empty() || !ob.starts_with('{'),
                "{method} {path}: {ob}"
            );
            continue;
        }
        let (p, o) = (json(&pb), json(&ob));
        assert_eq!(o["status"], p["status"], "{method} {path}");
        assert_eq!(o["errorType"], p["errorType"], "{method} {path}");
        let (pe, oe) = (
            p["error"].as_str().unwrap_or(""),
            o["error"].as_str().unwrap_or(""),
        );
        match pe.split_once("parse error: ") {
            Some((head, _)) => assert!(oe.starts_with(head), "{method} {path}: {oe:?} vs {pe:?}"),
            None => assert_eq!(oe, pe, "{method} {path}"),
        }
    }
    // A snapshot answers with the same shape.
    for addr in [&paddr, &ours.addr] {
        let (code, body) = request(
            addr,
            "POST",
            "/api/v1/admin/tsdb/snapshot?skip_head=true",
            None,
        );
        assert_eq!(code, 200, "{addr}: {body}");
        let v = json(&body);
        let name = v["data"]["name"].as_str().unwrap_or_default();
        assert_eq!(name.len(), 33, "{addr}: {body}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{addr}: {body}");
    }
}
