//! Grafana as a client: replays the requests Grafana's Prometheus data source sends (written down
//! from Grafana's source in `tests/fixtures/grafana/requests.json`) against the real binary and
//! checks each answer has the shape Grafana parses; then checks that `dashboards/edgeprom.json` is
//! an importable dashboard whose every query runs on edgeprom.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

use edgeprom::cli::http;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);
/// Grafana's usual step for a one-hour panel.
const STEP: i64 = 15;

/// Which server answers: edgeprom, or Debian's Prometheus 2.42 to prove the fixtures' expectations
/// are what Prometheus itself answers.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Edgeprom,
    Prometheus,
}

/// The server, scraping itself every second, with `up` stored and two more scrapes (so rates
/// over the data have something to work with) before we return.
fn start_server(peer: Peer) -> common::SelfScraping {
    let program = match peer {
        Peer::Edgeprom => env!("CARGO_BIN_EXE_edgeprom"),
        Peer::Prometheus => "prometheus",
    };
    common::start_self_scraping(program, "edgeprom", Duration::from_millis(2100))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn fill(s: &str, start: i64, end: i64, now: i64) -> String {
    s.replace("{start}", &start.to_string())
        .replace("{end}", &end.to_string())
        .replace("{step}", &STEP.to_string())
        .replace("{now}", &now.to_string())
}

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// Sends one request as Grafana does; returns (HTTP status, parsed body).
fn send(base: &str, method: &str, path: &str, params: &[(String, String)]) -> (u16, Value) {
    let body = encode(params);
    let r = if method == "POST" {
        http::post_form(&format!("{base}{path}"), &body, TIMEOUT)
    } else {
        let sep = if body.is_empty() { "" } else { "?" };
        http::get(&format!("{base}{path}{sep}{body}"), TIMEOUT)
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.text()));
    (r.status, v)
}

fn check(name: &str, status: u16, v: &Value, expect: &Value, start: i64, end: i64) {
    let kind = expect["kind"].as_str().unwrap_or("");
    if kind == "error" {
        assert_eq!(
            u64::from(status),
            expect["status"].as_u64().unwrap_or(400),
            "{name}: {v}"
        );
        assert_eq!(v["status"], "error", "{name}: {v}");
        assert_eq!(v["errorType"], expect["errorType"], "{name}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {v}"
        );
        return;
    }
    assert_eq!(status, 200, "{name}: {v}");
    assert_eq!(v["status"], "success", "{name}: {v}");
    let data = &v["data"];
    match kind {
        "buildinfo" => {
            let version = data["version"].as_str().unwrap_or("");
            let major: u32 = version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            assert!(
                major >= 2 && version.split('.').count() >= 3,
                "{name}: Grafana needs a Prometheus-style version, got {version:?}"
            );
            for k in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
                assert!(data[k].is_string(), "{name}: {k} missing in {data}");
            }
            // A non-empty `features` map makes Grafana treat the server as Mimir.
            assert!(
                data.get("features")
                    .map_or(true, |f| f.as_object().is_some_and(|o| o.is_empty())),
                "{name}: features present: {data}"
            );
        }
        "scalar" => {
            assert_eq!(data["resultType"], "scalar", "{name}: {data}");
            let r = &data["result"];
            assert_eq!(r[0].as_f64(), expect["time"].as_f64(), "{name}: {data}");
            assert_eq!(r[1], expect["value"], "{name}: {data}");
        }
        "strings" => {
            let list: Vec<&str> = data
                .as_array()
                .unwrap_or_else(|| panic!("{name}: not an array: {data}"))
                .iter()
                .map(|s| {
                    s.as_str()
                        .unwrap_or_else(|| panic!("{name}: non-string {s}"))
                })
                .collect();
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(list, sorted, "{name}: must be sorted and unique");
            for want in expect["contains"].as_array().into_iter().flatten() {
                let want = want.as_str().unwrap_or("");
                assert!(list.contains(&want), "{name}: {want} missing in {list:?}");
            }
            let min = expect["min"].as_u64().unwrap_or(0) as usize;
            assert!(list.len() >= min, "{name}: {list:?}");
        }
        "series" => {
            let list = data.as_array().unwrap_or_else(|| panic!("{name}: {data}"));
            assert!(!list.is_empty(), "{name}: no series");
            let mut names = HashSet::new();
            for s in list {
                let o = s.as_object().unwrap_or_else(|| panic!("{name}: {s}"));
                assert!(o.values().all(Value::is_string), "{name}: {s}");
                for (k, want) in expect["labels"].as_object().into_iter().flatten() {
                    assert_eq!(&s[k], want, "{name}: {s}");
                }
                names.insert(s["__name__"].as_str().unwrap_or("").to_string());
            }
            for want in expect["names"].as_array().into_iter().flatten() {
                assert!(
                    names.contains(want.as_str().unwrap_or("")),
                    "{name}: {names:?}"
                );
            }
        }
        "metadata" => {
            let o = data
                .as_object()
                .unwrap_or_else(|| panic!("{name}: not an object: {data}"));
            assert!(!o.is_empty(), "{name}: no metadata for the self-scrape");
            for (metric, entries) in o {
                let entries = entries
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: {metric}: {entries}"));
                assert!(!entries.is_empty(), "{name}: {metric}");
                for e in entries {
                    for k in ["type", "help", "unit"] {
                        assert!(e[k].is_string(), "{name}: {metric}: {k} in {e}");
                    }
                }
            }
        }
        "matrix" => {
            assert_eq!(data["resultType"], "matrix", "{name}: {data}");
            let list = data["result"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {data}"));
            assert!(!list.is_empty(), "{name}: empty matrix");
            for s in list {
                assert!(s["metric"].is_object(), "{name}: {s}");
                let values = s["values"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: {s}"));
                assert!(!values.is_empty(), "{name}: {s}");
                let mut prev = f64::NEG_INFINITY;
                for p in values {
                    let t = p[0].as_f64().unwrap_or_else(|| panic!("{name}: {p}"));
                    assert!(t > prev, "{name}: timestamps must increase: {p}");
                    prev = t;
                    assert!(
                        (start as f64..=end as f64).contains(&t),
                        "{name}: {t} outside {start}..{end}"
                    );
                    assert_eq!(
                        (t as i64 - start) % STEP,
                        0,
                        "{name}: {t} off the step grid"
                    );
                    let val = p[1]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: value not a string: {p}"));
                    assert!(
                        val.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&val),
                        "{name}: {val}"
                    );
                }
            }
        }
        "vector" => {
            assert_eq!(data["resultType"], "vector", "{name}: {data}");
            let list = data["result"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {data}"));
            assert!(!list.is_empty(), "{name}: empty vector");
            for s in list {
                assert!(s["metric"].is_object(), "{name}: {s}");
                assert!(s["value"][0].is_number(), "{name}: {s}");
                assert!(s["value"][1].is_string(), "{name}: {s}");
            }
        }
        other => panic!("{name}: unknown expectation kind {other:?}"),
    }
}

fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/grafana/requests.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures")).expect("fixture JSON")
}

#[test]
fn grafana_data_source_requests_get_the_answers_grafana_parses() {
    replay(Peer::Edgeprom);
}

/// The same fixtures against Prometheus: if this fails, the fixtures are wrong, not edgeprom.
#[test]
fn fixtures_match_what_prometheus_answers() {
    replay(Peer::Prometheus);
}

fn replay(peer: Peer) {
    let server = start_server(peer);
    let now = now();
    // Aligned to the step as Grafana aligns; the end is the next grid point so that a server started
    // seconds ago has samples inside the range.
    let (start, end) = (((now - 3600) / STEP) * STEP, (now / STEP + 1) * STEP);
    let fx = fixtures();
    let requests = fx["requests"].as_array().expect("requests");
    assert!(requests.len() >= 10);
    for r in requests {
        let name = r["name"].as_str().unwrap_or("?");
        let params: Vec<(String, String)> = r["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p[0].as_str().unwrap_or("").to_string(),
                    fill(p[1].as_str().unwrap_or(""), start, end, now),
                )
            })
            .collect();
        let method = r["method"].as_str().unwrap_or("GET");
        let path = r["path"].as_str().unwrap_or("");
        let (status, v) = send(&server.base, method, path, &params);
        check(name, status, &v, &r["expect"], start, end);
    }
}

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/edgeprom.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard"))
        .expect("dashboard JSON")
}

/// Every panel of the dashboard, rows included, in order.
fn all_panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

#[test]
fn dashboard_is_an_importable_grafana_dashboard() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "a ${{DS_PROMETHEUS}} data source input"
    );
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    for k in ["title", "uid"] {
        assert!(d[k].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let mut ids = HashSet::new();
    let mut queries = 0;
    for p in all_panels(&d) {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id: {title}"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().expect("x"), g["w"].as_u64().expect("w"));
        assert!(
            x + w <= 24 && w > 0 && g["h"].as_u64().is_some_and(|h| h > 0),
            "{title}: {g}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}");
        let mut refs = HashSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
    // The four areas the issue asks for.
    let text = d.to_string();
    for needle in [
        "node_cpu_seconds_total",
        "process_resident_memory_bytes",
        "edgeprom_storage_bytes_written_total",
        "scrape_duration_seconds",
        "up",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
}

/// Grafana's macros and this dashboard's variables, replaced as Grafana would before sending.
fn interpolate(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$node", ".*")
        .replace("$edgeprom", ".*")
}

#[test]
fn every_dashboard_query_runs_on_edgeprom() {
    let server = start_server(Peer::Edgeprom);
    let now = now();
    let (start, end) = (((now - 600) / STEP) * STEP, (now / STEP) * STEP);
    let d = dashboard();
    for p in all_panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = interpolate(t["expr"].as_str().unwrap_or(""));
            let params = vec![
                ("query".to_string(), expr.clone()),
                ("start".to_string(), start.to_string()),
                ("end".to_string(), end.to_string()),
                ("step".to_string(), STEP.to_string()),
            ];
            let (status, v) = send(&server.base, "POST", "api/v1/query_range", &params);
            assert_eq!(status, 200, "{}: {expr}: {v}", p["title"]);
            assert_eq!(v["data"]["resultType"], "matrix", "{expr}: {v}");
        }
    }
    // The template variables: label_values(metric, label) is a label-values request with match[].
    for var in d["templating"]["list"].as_array().into_iter().flatten() {
        let def = var["definition"].as_str().unwrap_or("");
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable {def}"));
        let (metric, label) = inner.split_once(',').expect("metric, label");
        let params = vec![
            ("match[]".to_string(), metric.trim().to_string()),
            ("start".to_string(), start.to_string()),
            ("end".to_string(), end.to_string()),
        ];
        let (status, v) = send(
            &server.base,
            "GET",
            &format!("api/v1/label/{}/values", label.trim()),
            &params,
        );
        assert_eq!(status, 200, "{def}: {v}");
        assert!(v["data"].is_array(), "{def}: {v}");
    }
    // Edgeprom's own series are there to fill the edgeprom rows.
    let params = vec![(
        "query".to_string(),
        "process_start_time_seconds".to_string(),
    )];
    let (_, v) = send(&server.base, "GET", "api/v1/query", &params);
    assert!(
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "self-scrape lacks process_start_time_seconds: {v}"
    );
}
