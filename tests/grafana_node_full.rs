//! "Node Exporter Full"-style dashboards on edgeprom: a real edgeprom scrapes its own
//! `/node/metrics` every second, and every query of `tests/fixtures/grafana/node_full_queries.txt`
//! (our own expressions covering each node metric family and each function, aggregation and
//! operator shape such a dashboard uses) is sent the way Grafana sends it: template variables
//! resolved through the label-values API, Grafana's `$__interval` / `$__rate_interval` /
//! `$__range` substituted, POSTed as instant and range queries. Each must parse and run, and
//! return data when the metrics it names are exposed by this host.
//!
//! The same server also shows that the embedded UI is served the way the issue asks: compressed
//! when the client accepts gzip, with an ETag and Cache-Control, and `304` on revalidation.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

use edgeprom::cli::http;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);
/// The scrape interval of the test config (Grafana's data source setting would say the same).
const SCRAPE_SECS: i64 = 1;
/// The dashboard time range and step of the range queries.
const RANGE_SECS: i64 = 30;
const STEP_SECS: i64 = 2;

/// An edgeprom whose only job, `node`, scrapes its own `/node/metrics` every second.
fn start() -> common::Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let cfg = common::write_file(
        dir.path(),
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: {SCRAPE_SECS}s\nscrape_configs:\n  - job_name: node\n    \
             metrics_path: /node/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    );
    common::Server::start_in_at(dir, port, &[&format!("--config.file={}", cfg.display())])
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn post(s: &common::Server, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let (status, body) = s.post(path, Some(&form));
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}

fn get_json(s: &common::Server, path: &str, params: &[(&str, &str)]) -> Value {
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let (status, body) = s.get(&format!("{path}?{q}"));
    assert_eq!(status, 200, "{path}?{q}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

/// Resolves a Grafana `label_values(<selector>, <label>)` variable the way Grafana 9 does: the
/// label-values endpoint with `match[]` over the dashboard range.
fn label_values(s: &common::Server, selector: &str, label: &str) -> Vec<String> {
    let (end, start) = (now(), now() - RANGE_SECS);
    let v = get_json(
        s,
        &format!("/api/v1/label/{label}/values"),
        &[
            ("match[]", selector),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
        ],
    );
    assert_eq!(v["status"], "success", "{v}");
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("label values of {label}: {v}"))
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// What a fixture line expects beyond parsing and running.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Data on any Linux host.
    Data,
    /// Data when every metric the query names is exposed by this host.
    IfExposed,
}

fn fixture() -> Vec<(Expect, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/grafana/node_full_queries.txt"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (tag, expr) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let expect = match tag {
                "data" => Expect::Data,
                "any" => Expect::IfExposed,
                other => panic!("unknown expectation {other:?} in {l:?}"),
            };
            (expect, expr.trim().to_string())
        })
        .collect()
}

/// Metric names used as selectors (`name{...}`) in `expr`.
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            // Skip label values: an identifier right after a quote is inside a string.
            let quoted = start > 0 && matches!(b[start - 1], b'"' | b'\'');
            if !quoted && i < b.len() && b[i] == b'{' {
                out.insert(expr[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Grafana's substitutions for a panel with `step` over `range` seconds, scraped every
/// `SCRAPE_SECS`: `$__rate_interval` is max(step + scrape interval, 4 x scrape interval).
fn substitute(expr: &str, job: &str, node: &str, step: i64, range: i64) -> String {
    let rate = (step + SCRAPE_SECS).max(4 * SCRAPE_SECS);
    expr.replace("$__rate_interval", &format!("{rate}s"))
        .replace("$__interval", &format!("{step}s"))
        .replace("$__range", &format!("{range}s"))
        .replace("$job", job)
        .replace("$node", node)
}

fn result_len(v: &Value) -> usize {
    match v["data"]["resultType"].as_str() {
        Some("scalar") => 1,
        _ => v["data"]["result"].as_array().map_or(0, Vec::len),
    }
}

#[test]
fn node_full_dashboard_queries_run_on_edgeprom() {
    let s = start();
    // Enough scrapes for rates over $__rate_interval (4 s) to have two points.
    s.wait_for("five scrapes of the node job", TIMEOUT, |s| {
        let (_, v) = post(
            s,
            "/api/v1/query",
            &[("query", "count_over_time(up{job=\"node\"}[10s]) >= 5")],
        );
        result_len(&v) == 1
    });

    // Template variables, resolved as Grafana does.
    let jobs = label_values(&s, "node_uname_info", "job");
    assert_eq!(jobs, vec!["node".to_string()], "job variable");
    let nodes = label_values(&s, "node_uname_info{job=\"node\"}", "instance");
    assert_eq!(nodes, vec![s.addr.clone()], "node variable");
    let (job, node) = (jobs[0].as_str(), nodes[0].as_str());

    // What this host's exporter exposes, to know which queries must return data.
    let (status, metrics) = s.get("/node/metrics");
    assert_eq!(status, 200);
    let exposed: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let queries = fixture();
    assert!(queries.len() > 100, "fixture has {} queries", queries.len());
    let mut failures = Vec::new();
    let mut with_data = 0;
    for (expect, raw) in &queries {
        let names = selected_metrics(raw);
        assert!(!names.is_empty(), "no metric selector found in {raw}");
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !exposed.contains(n.as_str()))
            .collect();
        if *expect == Expect::Data && !missing.is_empty() {
            failures.push(format!("/node/metrics lacks {missing:?}, used by: {raw}"));
            continue;
        }
        let want_data = missing.is_empty();
        let end = now();
        let start = end - RANGE_SECS;
        let cases = [
            (
                "instant",
                "/api/v1/query",
                substitute(raw, job, node, STEP_SECS, RANGE_SECS),
                vec![("time", end.to_string())],
            ),
            (
                "range",
                "/api/v1/query_range",
                substitute(raw, job, node, STEP_SECS, RANGE_SECS),
                vec![
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", STEP_SECS.to_string()),
                ],
            ),
        ];
        for (kind, path, q, extra) in cases {
            let mut params: Vec<(&str, &str)> = vec![("query", q.as_str())];
            params.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            let (status, v) = post(&s, path, &params);
            if status != 200 || v["status"] != "success" {
                failures.push(format!("{kind} {q}: HTTP {status}: {v}"));
                continue;
            }
            let n = result_len(&v);
            if want_data && n == 0 {
                failures.push(format!(
                    "{kind} {q}: no data although {names:?} are exposed"
                ));
            }
            if n > 0 {
                with_data += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
    // The families a Linux host always has make most of the fixture return data.
    assert!(
        with_data > queries.len(),
        "only {with_data} answers had data"
    );
}

fn fetch(s: &common::Server, path: &str, headers: &[(&str, &str)]) -> http::Response {
    http::request(
        "GET",
        &format!("http://{}{path}", s.addr),
        headers,
        None,
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip body");
    out
}

#[test]
fn ui_assets_are_compressed_cached_and_revalidated_over_http() {
    let s = start();
    let page = fetch(&s, "/graph", &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    // The page's own script and style URLs, as a browser would request them.
    let mut paths = vec!["/graph".to_string()];
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap_or("");
            if url.starts_with("static/") {
                paths.push(format!("/{url}"));
            }
        }
    }
    assert!(
        paths.iter().any(|p| p.contains(".js?v=")) && paths.iter().any(|p| p.contains(".css?v=")),
        "page references no versioned assets: {paths:?}"
    );
    // (Accept-Encoding, served gzip?)
    let negotiation: &[(Option<&str>, bool)] = &[
        (Some("gzip, deflate, br"), true),
        (Some("gzip;q=0.5, identity"), true),
        (Some("*"), true),
        (Some("gzip;q=0"), false),
        (Some("br"), false),
        (None, false),
    ];
    for path in &paths {
        let plain = fetch(&s, path, &[]);
        assert_eq!(plain.status, 200, "{path}");
        assert!(plain.header("content-encoding").is_none(), "{path}");
        let cache = plain.header("cache-control").unwrap_or("").to_string();
        if path.contains("?v=") {
            assert!(
                cache.contains("max-age="),
                "{path}: Cache-Control {cache:?}"
            );
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
        for (ae, want_gzip) in negotiation {
            let headers: Vec<(&str, &str)> = ae.iter().map(|v| ("Accept-Encoding", *v)).collect();
            let r = fetch(&s, path, &headers);
            assert_eq!(r.status, 200, "{path} {ae:?}");
            let gz = r.header("content-encoding") == Some("gzip");
            // The favicon is tiny and may not shrink; every text asset must.
            if path.contains("favicon") {
                continue;
            }
            assert_eq!(gz, *want_gzip, "{path} with Accept-Encoding {ae:?}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{path}");
            let body = if gz { gunzip(&r.body) } else { r.body.clone() };
            assert_eq!(body, plain.body, "{path} {ae:?}: decoded body differs");
            if gz {
                assert!(
                    r.body.len() < plain.body.len(),
                    "{path}: gzip is not smaller"
                );
            }
            // Revalidation with the representation's own tag answers 304 without a body.
            let etag = r
                .header("etag")
                .unwrap_or_else(|| panic!("{path}: no ETag"));
            let mut h = headers.clone();
            h.push(("If-None-Match", etag));
            let again = fetch(&s, path, &h);
            assert_eq!(again.status, 304, "{path} {ae:?}");
            assert!(again.body.is_empty(), "{path}: 304 with a body");
            assert_eq!(again.header("etag"), Some(etag), "{path}");
        }
    }
}
