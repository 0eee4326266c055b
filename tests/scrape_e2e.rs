//! End-to-end scrape tests against real HTTP(S) servers on 127.0.0.1 and a real
//! `prometheus-node-exporter`, with a Vec-backed appendable recording every committed sample.
//!
//! Waits poll the recorded samples with a generous deadline; no test asserts on timing.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgeprom::config::{load_str, ScrapeConfig};
use edgeprom::model::{is_stale_nan, Labels};
use edgeprom::scrape::ScrapeManager;
use edgeprom::storage::{Appendable, Appender, Result as SResult, SeriesRef};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

// ---------------------------------------------------------------- recording store

#[derive(Clone, Debug)]
struct Sample {
    labels: Labels,
    t: i64,
    v: f64,
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<Sample>>>);

struct App {
    store: Store,
    buf: Vec<Sample>,
}

impl Appendable for Store {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(App {
            store: self.clone(),
            buf: Vec::new(),
        })
    }
}

impl Appender for App {
    fn append(&mut self, _r: SeriesRef, labels: &Labels, t: i64, v: f64) -> SResult<SeriesRef> {
        self.buf.push(Sample {
            labels: labels.clone(),
            t,
            v,
        });
        Ok(SeriesRef(labels.hash64() | 1))
    }
    fn commit(self: Box<Self>) -> SResult<()> {
        let me = *self;
        me.store.0.lock().unwrap().extend(me.buf);
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

impl Store {
    fn all(&self) -> Vec<Sample> {
        self.0.lock().unwrap().clone()
    }
    /// Values of the series with metric `name` and, if given, `label=value`.
    fn values(&self, name: &str, label: Option<(&str, &str)>) -> Vec<(i64, f64)> {
        self.all()
            .into_iter()
            .filter(|s| s.labels.metric_name() == Some(name))
            .filter(|s| match label {
                None => true,
                Some((k, v)) => s.labels.get(k) == Some(v),
            })
            .map(|s| (s.t, s.v))
            .collect()
    }
    async fn wait_for(&self, what: &str, f: impl Fn(&Store) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !f(self) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; have {} samples",
                    self.all().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

// ---------------------------------------------------------------- test target server

#[derive(Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

fn text(body: &str) -> Resp {
    Resp {
        status: 200,
        headers: vec![("content-type".into(), "text/plain; version=0.0.4".into())],
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
    }
}

#[derive(Clone, Default)]
struct Server {
    routes: Arc<Mutex<HashMap<String, Vec<Resp>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    accepts: Arc<AtomicUsize>,
    last_headers: Arc<Mutex<Option<http::HeaderMap>>>,
}

impl Server {
    /// Sets the responses for `path`; requests cycle through them (a flapping target).
    fn route(&self, path: &str, resps: Vec<Resp>) {
        self.routes.lock().unwrap().insert(path.into(), resps);
    }
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn start(&self, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                me.accepts.fetch_add(1, Ordering::SeqCst);
                let me = me.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.respond(req).await) }
                    });
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            let acc = tokio_rustls::TlsAcceptor::from(cfg);
                            if let Ok(s) = acc.accept(tcp).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn respond(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> http::Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        *self.last_headers.lock().unwrap() = Some(req.headers().clone());
        let n = {
            let mut h = self.hits.lock().unwrap();
            let e = h.entry(path.clone()).or_default();
            *e += 1;
            *e - 1
        };
        let r = {
            let routes = self.routes.lock().unwrap();
            routes.get(&path).map(|v| v[n % v.len()].clone())
        };
        let Some(r) = r else {
            return http::Response::builder()
                .status(404)
                .body(Full::new(Bytes::from_static(b"not found")))
                .unwrap();
        };
        if !r.delay.is_zero() {
            tokio::time::sleep(r.delay).await;
        }
        let mut b = http::Response::builder().status(r.status);
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(r.body))).unwrap()
    }
}

// ---------------------------------------------------------------- helpers

fn configs(yaml: &str, dir: &Path) -> Vec<ScrapeConfig> {
    load_str(yaml, "test.yml", dir)
        .unwrap_or_else(|e| panic!("config: {e}\n{yaml}"))
        .scrape_configs
}

fn job(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scrape_interval: 200ms\n    scrape_timeout: 150ms\n{extra}    static_configs:\n      - targets: ['{addr}']\n"
    )
}

fn cfg_text(jobs: &[String]) -> String {
    format!("scrape_configs:\n{}", jobs.concat())
}

fn api(m: &ScrapeManager, path: &str, params: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let p: Vec<(String, String)> = params
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let (code, body) = m.handle_api(path, &p).expect("handled");
    (code, serde_json::from_slice(&body).expect("json"))
}

fn active_targets(m: &ScrapeManager) -> Vec<serde_json::Value> {
    api(m, "/api/v1/targets", &[]).1["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_target(
    m: &ScrapeManager,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = active_targets(m).into_iter().find(|t| f(t)) {
            return t;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for target {what}: {:?}",
                active_targets(m)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_scrape_samples_report_series_headers_and_connection_reuse() {
    let srv = Server::default();
    srv.route(
        "/metrics",
        vec![text(
            "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{code=\"200\"} 7\nreq_total{code=\"500\"} 1\ntemp_celsius 21.5\n",
        )],
    );
    let addr = srv.start(None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    m.apply_config(&configs(&cfg_text(&[job("app", &addr, "")]), dir.path()))
        .unwrap();
    store
        .wait_for("three scrapes", |s| s.values("up", None).len() >= 3)
        .await;

    let first_t = store.values("up", None)[0].0;
    let at_first: Vec<Sample> = store.all().into_iter().filter(|s| s.t == first_t).collect();
    let want = |name: &str, extra: &[(&str, &str)], v: f64| {
        let mut pairs = vec![
            ("__name__", name),
            ("job", "app"),
            ("instance", addr.as_str()),
        ];
        pairs.extend_from_slice(extra);
        let l = Labels::from_pairs(pairs);
        assert!(
            at_first.iter().any(|s| s.labels == l && s.v == v),
            "missing {l} = {v} in {at_first:?}"
        );
    };
    want("req_total", &[("code", "200")], 7.0);
    want("req_total", &[("code", "500")], 1.0);
    want("temp_celsius", &[], 21.5);
    want("up", &[], 1.0);
    want("scrape_samples_scraped", &[], 3.0);
    want("scrape_samples_post_metric_relabeling", &[], 3.0);
    want("scrape_series_added", &[], 3.0);
    assert_eq!(
        at_first.len(),
        3 + 5,
        "samples and report series in one batch"
    );
    // Steady state: nothing new after the first scrape.
    let added = store.values("scrape_series_added", None);
    assert_eq!(added.last().unwrap().1, 0.0);

    let h = srv.last_headers.lock().unwrap().clone().unwrap();
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(get("user-agent").starts_with("edgeprom/"), "{h:?}");
    assert!(
        get("accept").starts_with("application/openmetrics-text;version=1.0.0"),
        "{h:?}"
    );
    assert!(
        get("accept").contains("text/plain;version=0.0.4;q=0.5"),
        "{h:?}"
    );
    assert_eq!(get("accept-encoding"), "gzip");
    assert_eq!(get("x-prometheus-scrape-timeout-seconds"), "0.15");
    assert_eq!(
        srv.accepts.load(Ordering::SeqCst),
        1,
        "one keep-alive connection for all scrapes"
    );

    // The targets API.
    let t = wait_target(&m, "up", |t| t["health"] == "up").await;
    assert_eq!(t["scrapePool"], "app");
    assert_eq!(t["scrapeUrl"], format!("http://{addr}/metrics"));
    assert_eq!(
        t["labels"],
        serde_json::json!({"instance": addr, "job": "app"})
    );
    assert_eq!(t["discoveredLabels"]["__address__"], addr);
    assert_eq!(t["discoveredLabels"]["__scheme__"], "http");
    assert_eq!(t["discoveredLabels"]["__scrape_interval__"], "200ms");
    assert_eq!(t["scrapeInterval"], "200ms");
    assert_eq!(t["scrapeTimeout"], "150ms");
    assert_eq!(t["lastError"], "");
    assert!(t["lastScrape"].as_str().unwrap().ends_with('Z'));
    // Metadata APIs.
    let (code, md) = api(&m, "/api/v1/metadata", &[]);
    assert_eq!(code, 200);
    assert_eq!(
        md["data"]["req_total"],
        serde_json::json!([{"type": "counter", "help": "Requests.", "unit": ""}])
    );
    let (code, tm) = api(
        &m,
        "/api/v1/targets/metadata",
        &[("match_target", "{job=\"app\"}"), ("metric", "req_total")],
    );
    assert_eq!(code, 200);
    assert_eq!(tm["data"][0]["type"], "counter");
    assert!(tm["data"][0].get("metric").is_none());
    let (code, _) = api(
        &m,
        "/api/v1/targets/metadata",
        &[("match_target", "{job=\"nope\"}")],
    );
    assert_eq!(code, 404);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_gzip_redirects_timeouts_and_limits() {
    use std::io::Write;
    let srv = Server::default();
    let body = "a 1\nb 2\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let mut gzr = text("");
    gzr.body = gz.finish().unwrap();
    gzr.headers.push(("content-encoding".into(), "gzip".into()));
    srv.route("/gzip", vec![gzr]);
    srv.route("/plain", vec![text(body)]);
    let redirect = |to: &str| Resp {
        status: 302,
        headers: vec![("location".into(), to.into())],
        body: vec![],
        delay: Duration::ZERO,
    };
    srv.route("/moved", vec![redirect("/plain")]);
    let mut slow = text(body);
    slow.delay = Duration::from_secs(2);
    srv.route("/slow", vec![slow]);
    srv.route("/big", vec![text(&"x 1\n".repeat(100))]);
    srv.route("/bad", vec![text("a 1\nb{ 2\n")]);
    srv.route("/dup", vec![text("a{x=\"1\",x=\"2\"} 1\n")]);
    let addr = srv.start(None).await.to_string();
    let path = |p: &str| format!("    metrics_path: {p}\n");
    let jobs = vec![
        job("gzip", &addr, &path("/gzip")),
        job("redirect", &addr, &path("/moved")),
        job(
            "noredirect",
            &addr,
            &format!("{}    follow_redirects: false\n", path("/moved")),
        ),
        job("slow", &addr, &path("/slow")),
        job(
            "big",
            &addr,
            &format!("{}    body_size_limit: 100B\n", path("/big")),
        ),
        job(
            "gzipbig",
            &addr,
            &format!("{}    body_size_limit: 5B\n", path("/gzip")),
        ),
        job(
            "samplelimit",
            &addr,
            &format!("{}    sample_limit: 1\n", path("/plain")),
        ),
        job(
            "labellimit",
            &addr,
            &format!("{}    label_limit: 2\n", path("/plain")),
        ),
        job(
            "namelen",
            &addr,
            &format!("{}    label_name_length_limit: 3\n", path("/plain")),
        ),
        job("bad", &addr, &path("/bad")),
        job("dup", &addr, &path("/dup")),
        job("missing", &addr, &path("/nothing")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    m.apply_config(&configs(&cfg_text(&jobs), dir.path()))
        .unwrap();

    // (job, expected health, expected lastError fragment)
    let cases = [
        ("gzip", "up", ""),
        ("redirect", "up", ""),
        (
            "noredirect",
            "down",
            "server returned HTTP status 302 Found",
        ),
        ("slow", "down", "context deadline exceeded"),
        ("big", "down", "body size limit exceeded"),
        ("gzipbig", "down", "body size limit exceeded"),
        ("samplelimit", "down", "sample limit exceeded"),
        (
            "labellimit",
            "down",
            "label_limit exceeded (metric: a, number of labels: 3, limit: 2)",
        ),
        ("namelen", "down", "label_name_length_limit exceeded"),
        ("bad", "down", "expected label name"),
        ("dup", "down", "label name \"x\" is not unique"),
        (
            "missing",
            "down",
            "server returned HTTP status 404 Not Found",
        ),
    ];
    for (j, health, err) in cases {
        let t = wait_target(&m, j, |t| t["scrapePool"] == j && t["health"] != "unknown").await;
        assert_eq!(t["health"], health, "{j}: {t}");
        assert!(t["lastError"].as_str().unwrap().contains(err), "{j}: {t}");
        let up = store.values("up", Some(("job", j)));
        let want_up = if health == "up" { 1.0 } else { 0.0 };
        assert!(up.iter().all(|&(_, v)| v == want_up), "{j}: {up:?}");
    }
    assert!(!store.values("a", Some(("job", "gzip"))).is_empty());
    assert!(!store.values("b", Some(("job", "redirect"))).is_empty());
    assert!(srv.hits("/moved") >= 1 && srv.hits("/plain") >= 1);
    // A failed scrape stores none of its samples, only the report series.
    for j in ["samplelimit", "labellimit", "bad"] {
        assert!(store.values("a", Some(("job", j))).is_empty(), "{j}");
        let scraped = store.values("scrape_samples_scraped", Some(("job", j)));
        assert!(!scraped.is_empty(), "{j}");
    }
    // The parse error names its line.
    let t = wait_target(&m, "bad", |t| t["scrapePool"] == "bad").await;
    assert!(t["lastError"].as_str().unwrap().contains("line 2"), "{t}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_target_and_vanishing_series_get_stale_markers() {
    let srv = Server::default();
    let err = Resp {
        status: 500,
        ..text("oops")
    };
    srv.route(
        "/metrics",
        vec![
            text("a 1\nb 1\n"),
            text("a 2\n"), // b vanishes
            err,           // target down: a goes stale
            text("a 3\nb 3\nts_series 5 1000\n"),
        ],
    );
    let addr = srv.start(None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    m.apply_config(&configs(&cfg_text(&[job("flap", &addr, "")]), dir.path()))
        .unwrap();
    store
        .wait_for("five scrapes", |s| s.values("up", None).len() >= 5)
        .await;
    m.stop().await;
    let ups: Vec<f64> = store.values("up", None).iter().map(|x| x.1).collect();
    assert_eq!(&ups[..5], &[1.0, 1.0, 0.0, 1.0, 1.0], "{ups:?}");
    let times: Vec<i64> = store.values("up", None).iter().map(|x| x.0).collect();
    let shape = |name: &str| -> Vec<(usize, String)> {
        store
            .values(name, None)
            .iter()
            .filter_map(|&(t, v)| {
                let i = times.iter().position(|&x| x == t)?;
                let v = if is_stale_nan(v) {
                    "stale".to_string()
                } else {
                    v.to_string()
                };
                Some((i, v))
            })
            .filter(|(i, _)| *i < 5)
            .collect()
    };
    assert_eq!(
        shape("a"),
        vec![
            (0, "1".into()),
            (1, "2".into()),
            (2, "stale".into()),
            (3, "3".into()),
            (4, "1".into())
        ]
    );
    assert_eq!(
        shape("b"),
        vec![
            (0, "1".into()),
            (1, "stale".into()),
            (3, "3".into()),
            (4, "1".into())
        ]
    );
    // A series with its own timestamp keeps it and is never marked stale.
    let ts = store.values("ts_series", None);
    assert!(ts.iter().all(|&(t, v)| t == 1000 && v == 5.0), "{ts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_targets_restarts_changed_and_stales_removed() {
    let srv = Server::default();
    srv.route("/metrics", vec![text("a 1\n")]);
    let addr = srv.start(None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    let keep = job("keep", &addr, "");
    let gone = job("gone", &addr, "");
    m.apply_config(&configs(
        &cfg_text(&[keep.clone(), gone.clone()]),
        dir.path(),
    ))
    .unwrap();
    store
        .wait_for("both scraped", |s| {
            s.values("up", Some(("job", "gone"))).len() >= 2
                && s.values("up", Some(("job", "keep"))).len() >= 2
        })
        .await;
    // Same config again: nothing restarts (the same target object keeps its last scrape).
    let before = wait_target(&m, "keep", |t| t["scrapePool"] == "keep").await;
    m.apply_config(&configs(
        &cfg_text(&[keep.clone(), gone.clone()]),
        dir.path(),
    ))
    .unwrap();
    let after = wait_target(&m, "keep", |t| t["scrapePool"] == "keep").await;
    assert_ne!(
        after["lastScrape"], "0001-01-01T00:00:00Z",
        "{before} -> {after}"
    );

    // Change "keep" (new label) and remove "gone".
    let changed = job("keep", &addr, "    honor_labels: true\n");
    m.apply_config(&configs(&cfg_text(&[changed]), dir.path()))
        .unwrap();
    store
        .wait_for("stale markers for the removed job", |s| {
            s.values("a", Some(("job", "gone")))
                .iter()
                .any(|x| is_stale_nan(x.1))
                && s.values("up", Some(("job", "gone")))
                    .iter()
                    .any(|x| is_stale_nan(x.1))
        })
        .await;
    // Its stale marker is stamped at the time its next scrape would have been: after its last.
    let gone_a = store.values("a", Some(("job", "gone")));
    let last_real = gone_a
        .iter()
        .filter(|x| !is_stale_nan(x.1))
        .map(|x| x.0)
        .max()
        .unwrap();
    let stale_t = gone_a.iter().find(|x| is_stale_nan(x.1)).unwrap().0;
    assert!(stale_t > last_real);
    // The restarted job wrote no stale markers and kept scraping.
    let n = store.values("up", Some(("job", "keep"))).len();
    store
        .wait_for("restarted job scraping", |s| {
            s.values("up", Some(("job", "keep"))).len() > n + 1
        })
        .await;
    assert!(store
        .values("a", Some(("job", "keep")))
        .iter()
        .all(|x| !is_stale_nan(x.1)));
    assert_eq!(active_targets(&m).len(), 1);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_labels_honor_labels_timestamps_relabeling_and_dropped_targets() {
    let srv = Server::default();
    srv.route(
        "/metrics",
        vec![text(
            "m{job=\"inner\",instance=\"x\",keep=\"1\"} 1 1234\nm{drop=\"me\"} 2\n",
        )],
    );
    let addr = srv.start(None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    let yaml = format!(
        "scrape_configs:
  - job_name: plain
    scrape_interval: 200ms
    scrape_timeout: 150ms
    params: {{module: [a, b]}}
    static_configs:
      - targets: ['{addr}']
        labels: {{env: test}}
    metric_relabel_configs:
      - source_labels: [drop]
        regex: me
        action: drop
  - job_name: honored
    honor_labels: true
    honor_timestamps: false
    scrape_interval: 200ms
    scrape_timeout: 150ms
    static_configs:
      - targets: ['{addr}', 'dropped.example:1']
    relabel_configs:
      - source_labels: [__address__]
        regex: 'dropped.*'
        action: drop
      - source_labels: [__param_module]
        target_label: module
"
    );
    m.apply_config(&configs(&yaml, dir.path())).unwrap();
    store
        .wait_for("both jobs", |s| {
            !s.values("m", Some(("job", "plain"))).is_empty()
                && !s.values("m", Some(("job", "inner"))).is_empty()
        })
        .await;
    let plain: Vec<Sample> = store
        .all()
        .into_iter()
        .filter(|s| s.labels.metric_name() == Some("m") && s.labels.get("job") == Some("plain"))
        .collect();
    assert!(
        plain.iter().all(|s| s.labels.get("drop").is_none()),
        "metric_relabel drop"
    );
    let l = &plain[0].labels;
    assert_eq!(l.get("exported_job"), Some("inner"));
    assert_eq!(l.get("exported_instance"), Some("x"));
    assert_eq!(l.get("instance"), Some(addr.as_str()));
    assert_eq!(l.get("env"), Some("test"));
    assert_eq!(plain[0].t, 1234, "honor_timestamps defaults to true");
    let post = store.values(
        "scrape_samples_post_metric_relabeling",
        Some(("job", "plain")),
    );
    assert_eq!(post[0].1, 1.0);
    let scraped = store.values("scrape_samples_scraped", Some(("job", "plain")));
    assert_eq!(scraped[0].1, 2.0);

    let honored: Vec<Sample> = store
        .all()
        .into_iter()
        .filter(|s| s.labels.metric_name() == Some("m") && s.labels.get("job") == Some("inner"))
        .collect();
    assert_eq!(honored[0].labels.get("instance"), Some("x"));
    assert!(honored[0].labels.get("exported_job").is_none());
    assert_ne!(
        honored[0].t, 1234,
        "honor_timestamps: false uses the scrape time"
    );
    // No __param_ in the honored job's config: the relabel rule copies nothing.
    let t = wait_target(&m, "plain", |t| t["scrapePool"] == "plain").await;
    assert_eq!(
        t["scrapeUrl"],
        format!("http://{addr}/metrics?module=a&module=b")
    );
    assert_eq!(t["discoveredLabels"]["__param_module"], "a");
    let (_, dropped) = api(&m, "/api/v1/targets", &[("state", "dropped")]);
    let d = dropped["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["discoveredLabels"]["__address__"], "dropped.example:1");
    assert_eq!(dropped["data"]["activeTargets"], serde_json::json!([]));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_json_and_yaml_with_changes_and_broken_files() {
    let srv = Server::default();
    srv.route("/metrics", vec![text("a 1\n")]);
    let addr = srv.start(None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        format!(r#"[{{"targets": ["{addr}"], "labels": {{"src": "json"}}}}]"#),
    )
    .unwrap();
    std::fs::write(dir.path().join("t.yml"), "").unwrap();
    let yaml = "scrape_configs:
  - job_name: fsd
    scrape_interval: 200ms
    scrape_timeout: 150ms
    file_sd_configs:
      - files: ['*.json', '*.yml']
        refresh_interval: 1s
";
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    m.apply_config(&configs(yaml, dir.path())).unwrap();
    store
        .wait_for("json target", |s| {
            !s.values("a", Some(("src", "json"))).is_empty()
        })
        .await;
    let t = wait_target(&m, "json", |t| t["labels"]["src"] == "json").await;
    assert!(t["discoveredLabels"]["__meta_filepath"]
        .as_str()
        .unwrap()
        .ends_with("t.json"));
    assert!(t["labels"].get("__meta_filepath").is_none());

    // Broken JSON keeps the last good target; YAML adds one (same address, other labels).
    std::fs::write(dir.path().join("t.json"), "[{oops").unwrap();
    std::fs::write(
        dir.path().join("t.yml"),
        format!("- targets: ['{addr}']\n  labels:\n    src: yaml\n"),
    )
    .unwrap();
    store
        .wait_for("yaml target", |s| {
            !s.values("a", Some(("src", "yaml"))).is_empty()
        })
        .await;
    let srcs: BTreeSet<String> = active_targets(&m)
        .iter()
        .map(|t| t["labels"]["src"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        srcs,
        BTreeSet::from(["json".to_string(), "yaml".to_string()])
    );
    let mut self_metrics = String::new();
    edgeprom::selfmetrics::Registry::global().expose(&mut self_metrics);
    assert!(
        self_metrics.contains("prometheus_sd_file_read_errors_total"),
        "{self_metrics}"
    );

    // Removing the JSON file removes its target, which then goes stale.
    std::fs::remove_file(dir.path().join("t.json")).unwrap();
    store
        .wait_for("json target stale", |s| {
            s.values("a", Some(("src", "json")))
                .iter()
                .any(|x| is_stale_nan(x.1))
        })
        .await;
    assert_eq!(active_targets(&m).len(), 1);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_limit_fails_every_target_of_the_pool() {
    let srv = Server::default();
    srv.route("/metrics", vec![text("a 1\n")]);
    let addr = srv.start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "scrape_configs:
  - job_name: lim
    scrape_interval: 200ms
    scrape_timeout: 150ms
    target_limit: 1
    static_configs:
      - targets: ['{addr}', 'localhost:{}']
",
        addr.port()
    );
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    m.apply_config(&configs(&yaml, dir.path())).unwrap();
    let t = wait_target(&m, "down", |t| t["health"] == "down").await;
    assert_eq!(
        t["lastError"],
        "target_limit exceeded (number of targets: 2, limit: 1)"
    );
    assert!(store.values("a", None).is_empty());
    m.stop().await;
}

/// Every sample node_exporter exposes is stored, with its value, under the target's labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_exporter_every_sample_stored() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bin =
        std::env::var("NODE_EXPORTER_BIN").unwrap_or_else(|_| "prometheus-node-exporter".into());
    let child = match std::process::Command::new(&bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start {bin} (install Debian's prometheus-node-exporter): {e}"),
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::default();
    let m = ScrapeManager::new(Arc::new(store.clone()));
    let yaml = format!(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: ['{addr}']\n"
    );
    m.apply_config(&configs(&yaml, dir.path())).unwrap();
    store
        .wait_for("a successful node_exporter scrape", |s| {
            s.values("up", None).iter().any(|x| x.1 == 1.0)
        })
        .await;
    m.stop().await;
    let (t, _) = *store
        .values("up", None)
        .iter()
        .find(|x| x.1 == 1.0)
        .unwrap();
    let batch: Vec<Sample> = store.all().into_iter().filter(|s| s.t == t).collect();
    let scraped = store
        .values("scrape_samples_scraped", None)
        .iter()
        .find(|x| x.0 == t)
        .unwrap()
        .1;
    assert!(
        scraped > 100.0,
        "node_exporter exposes hundreds of samples, got {scraped}"
    );
    // Every scraped sample plus the five report series, all in one batch.
    assert_eq!(batch.len() as f64, scraped + 5.0);
    let names: BTreeSet<&str> = batch
        .iter()
        .filter_map(|s| s.labels.metric_name())
        .collect();
    for n in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "go_goroutines",
        "up",
    ] {
        assert!(names.contains(n), "{n} missing");
    }
    assert!(batch
        .iter()
        .all(|s| s.labels.get("job") == Some("node")
            && s.labels.get("instance") == Some(addr.as_str())));
}
