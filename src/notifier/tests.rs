//! Notifier tests against a real HTTP server on loopback that records what it receives and
//! answers with a scripted status sequence.

use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::model::relabel::RelabelSpec;

/// A loopback server: records (path, body) of each request and answers with `statuses[i]`
/// (the last status repeats).
struct FakeAm {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// The `Authorization` header of each request ("" when absent).
    auth: Arc<Mutex<Vec<String>>>,
}

async fn fake_am(statuses: Vec<u16>) -> FakeAm {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let auth: Arc<Mutex<Vec<String>>> = Arc::default();
    let n = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(statuses);
    let (g, au) = (got.clone(), auth.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (g, au, n, statuses) = (g.clone(), au.clone(), n.clone(), statuses.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (g, au, n, statuses) = (g.clone(), au.clone(), n.clone(), statuses.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        au.lock().unwrap().push(
                            req.headers()
                                .get(http::header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string(),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        g.lock().unwrap().push((path, v));
                        let i = n.fetch_add(1, Ordering::SeqCst);
                        let status = *statuses.get(i).or(statuses.last()).unwrap_or(&200);
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    FakeAm { addr, got, auth }
}

fn alert(name: &str, extra: &[(&str, &str)]) -> Alert {
    let mut pairs = vec![("alertname", name)];
    pairs.extend_from_slice(extra);
    Alert {
        labels: Labels::from_pairs(pairs),
        annotations: Labels::from_pairs([("summary", "s")]),
        starts_at_ms: 1_000,
        ends_at_ms: 241_000,
        generator_url: "http://pi:9090/graph?g0.expr=up&g0.tab=1".to_string(),
    }
}

fn opts(urls: Vec<String>) -> NotifierOptions {
    NotifierOptions {
        alertmanagers: urls
            .into_iter()
            .map(|url| AlertmanagerEndpoint {
                url,
                timeout: Duration::from_secs(2),
                client: None,
            })
            .collect(),
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached");
}

#[test]
fn queue_is_bounded_and_drops_oldest() {
    // Each row: capacity, batches sent (sizes), alerts left (names), dropped.
    let cases: &[(usize, &[usize], &[&str], u64)] = &[
        (3, &[2, 2], &["a1", "b0", "b1"], 1),
        (3, &[5], &["a2", "a3", "a4"], 2),
        (10, &[2, 3], &["a0", "a1", "b0", "b1", "b2"], 0),
    ];
    for &(cap, batches, want, dropped) in cases {
        let n = Notifier::new(NotifierOptions {
            queue_capacity: cap,
            ..opts(vec![])
        });
        for (bi, &size) in batches.iter().enumerate() {
            let prefix = ["a", "b"][bi];
            n.send(
                (0..size)
                    .map(|i| alert(&format!("{prefix}{i}"), &[]))
                    .collect(),
            );
        }
        let names: Vec<String> = n
            .lock()
            .iter()
            .map(|a| a.labels.get("alertname").unwrap_or("").to_string())
            .collect();
        assert_eq!(names, want, "cap {cap} batches {batches:?}");
        assert_eq!(n.stats().dropped.load(Ordering::Relaxed), dropped);
    }
}

#[test]
fn external_labels_and_alert_relabeling() {
    let drop_test = crate::model::relabel::RelabelConfig::new(RelabelSpec {
        source_labels: vec!["env".to_string()],
        regex: Some("test".to_string()),
        action: Some("drop".to_string()),
        ..Default::default()
    })
    .unwrap();
    let n = Notifier::new(NotifierOptions {
        external_labels: Labels::from_pairs([("site", "greenhouse"), ("env", "prod")]),
        relabel_configs: vec![drop_test],
        ..opts(vec![])
    });
    n.send(vec![
        alert("Kept", &[]),
        alert("OwnSite", &[("site", "shed")]),
        alert("Dropped", &[("env", "test")]),
    ]);
    let q: Vec<Labels> = n.lock().iter().map(|a| a.labels.clone()).collect();
    assert_eq!(
        q,
        vec![
            Labels::from_pairs([
                ("alertname", "Kept"),
                ("env", "prod"),
                ("site", "greenhouse")
            ]),
            Labels::from_pairs([("alertname", "OwnSite"), ("env", "prod"), ("site", "shed")]),
        ]
    );
}

#[tokio::test]
async fn batches_posted_as_api_v2_to_every_alertmanager() {
    let (am1, am2) = (fake_am(vec![200]).await, fake_am(vec![200]).await);
    let n = Notifier::new(NotifierOptions {
        max_batch_size: 2,
        ..opts(vec![
            alertmanager_url("http", &am1.addr.to_string(), "/"),
            alertmanager_url("http", &am2.addr.to_string(), "/prefix/"),
        ])
    });
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(n.clone().run(shutdown));
    n.send((0..5).map(|i| alert(&format!("A{i}"), &[])).collect());
    wait_for(|| am1.got.lock().unwrap().len() == 3 && am2.got.lock().unwrap().len() == 3).await;
    let got = am1.got.lock().unwrap().clone();
    assert!(got.iter().all(|(p, _)| p == "/api/v2/alerts"), "{got:?}");
    assert!(am2
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|(p, _)| p == "/prefix/api/v2/alerts"));
    let sizes: Vec<usize> = got
        .iter()
        .map(|(_, v)| v.as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let first = &got[0].1[0];
    assert_eq!(first["labels"]["alertname"], "A0");
    assert_eq!(first["annotations"]["summary"], "s");
    assert_eq!(first["startsAt"], "1970-01-01T00:00:01Z");
    assert_eq!(first["endsAt"], "1970-01-01T00:04:01Z");
    assert_eq!(
        first["generatorURL"],
        "http://pi:9090/graph?g0.expr=up&g0.tab=1"
    );
    assert_eq!(n.stats().sent.load(Ordering::Relaxed), 10);
    assert_eq!(n.stats().errors.load(Ordering::Relaxed), 0);
    let (code, body) = n.handle_api("/api/v1/alertmanagers", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        v["data"]["activeAlertmanagers"][1]["url"],
        format!("http://{}/prefix/api/v2/alerts", am2.addr)
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_dropped() {
    // Rows: scripted statuses, whether the batch is delivered, errors counted, dropped.
    let cases: &[(&[u16], bool, u64, u64)] =
        &[(&[500, 503, 200], true, 2, 0), (&[400], false, 1, 1)];
    for &(statuses, delivered, errors, dropped) in cases {
        let am = fake_am(statuses.to_vec()).await;
        let n = Notifier::new(opts(vec![alertmanager_url(
            "http",
            &am.addr.to_string(),
            "",
        )]));
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(n.clone().run(shutdown));
        n.send(vec![alert("Retry", &[])]);
        wait_for(|| {
            n.stats().delivered_batches.load(Ordering::Relaxed)
                + n.stats().dropped.load(Ordering::Relaxed)
                > 0
        })
        .await;
        assert_eq!(
            n.stats().delivered_batches.load(Ordering::Relaxed) == 1,
            delivered,
            "{statuses:?}"
        );
        assert_eq!(
            n.stats().errors.load(Ordering::Relaxed),
            errors,
            "{statuses:?}"
        );
        assert_eq!(
            n.stats().dropped.load(Ordering::Relaxed),
            dropped,
            "{statuses:?}"
        );
        trigger.trigger();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn unreachable_alertmanager_never_blocks_send() {
    // A port that was just free: connections are refused.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let n = Notifier::new(NotifierOptions {
        queue_capacity: 100,
        ..opts(vec![alertmanager_url("http", &addr.to_string(), "")])
    });
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(n.clone().run(shutdown));
    // Sending is a queue push, whatever the network does; the queue never exceeds its capacity.
    for i in 0..50 {
        n.send((0..10).map(|j| alert(&format!("A{i}-{j}"), &[])).collect());
        assert!(n.queue_len() <= 100);
    }
    wait_for(|| n.stats().errors.load(Ordering::Relaxed) >= 4).await;
    assert!(n.stats().dropped.load(Ordering::Relaxed) >= 64);
    trigger.trigger();
    task.await.unwrap();
}

#[test]
fn options_from_alerting_config() {
    let cfg = crate::config::load_str(
        r#"
global:
  external_labels: {site: greenhouse}
alerting:
  alert_relabel_configs:
    - source_labels: [severity]
      regex: debug
      action: drop
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:9093", "127.0.0.1:9094"]
      path_prefix: /am/
      timeout: 3s
      relabel_configs:
        - source_labels: [__address__]
          regex: ".*:9094"
          action: drop
    - scheme: http
      static_configs:
        - targets: ["localhost:19093"]
"#,
        "edgeprom.yml",
        std::path::Path::new("."),
    )
    .unwrap();
    let o = NotifierOptions::from_config(&cfg.alerting, &cfg.global.external_labels).unwrap();
    assert!(o.alertmanagers.iter().all(|a| a.client.is_some()));
    assert_eq!(
        o.alertmanagers,
        vec![
            AlertmanagerEndpoint {
                url: "http://127.0.0.1:9093/am/api/v2/alerts".to_string(),
                timeout: Duration::from_secs(3),
                client: None,
            },
            AlertmanagerEndpoint {
                url: "http://localhost:19093/api/v2/alerts".to_string(),
                timeout: Duration::from_secs(10),
                client: None,
            },
        ]
    );
    assert_eq!(
        o.dropped_alertmanagers,
        vec!["http://127.0.0.1:9094/am/api/v2/alerts".to_string()]
    );
    let n = Notifier::new(o);
    n.send(vec![
        alert("Dbg", &[("severity", "debug")]),
        alert("Page", &[("severity", "page")]),
    ]);
    let q: Vec<Labels> = n.lock().iter().map(|a| a.labels.clone()).collect();
    assert_eq!(
        q,
        vec![Labels::from_pairs([
            ("alertname", "Page"),
            ("severity", "page"),
            ("site", "greenhouse")
        ])]
    );
    let (_, body) = n.handle_api("/api/v1/alertmanagers", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["data"]["droppedAlertmanagers"][0]["url"],
        "http://127.0.0.1:9094/am/api/v2/alerts"
    );
    n.set_alertmanagers(vec![], vec![]);
    let (_, body) = n.handle_api("/api/v1/alertmanagers", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["data"]["activeAlertmanagers"].as_array().unwrap().len(),
        0
    );
}

/// Active and dropped URLs from `/api/v1/alertmanagers`.
fn listed(n: &Notifier) -> (Vec<String>, Vec<String>) {
    let (_, body) = n.handle_api("/api/v1/alertmanagers", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let urls = |k: &str| {
        v["data"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["url"].as_str().unwrap().to_string())
            .collect()
    };
    (urls("activeAlertmanagers"), urls("droppedAlertmanagers"))
}

async fn wait_long(what: &str, mut f: impl FnMut() -> bool) {
    // File discovery polls every second (refresh_interval 1s below); allow for a busy machine.
    for _ in 0..150 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_discovered_alertmanagers_follow_their_files() {
    let am = fake_am(vec![200]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("am.yml");
    let url = |addr: &str| format!("http://{addr}/api/v2/alerts");
    std::fs::write(&file, format!("- targets: ['{}']\n", am.addr)).unwrap();
    let cfg_text = "alerting:\n  alertmanagers:\n    - file_sd_configs:\n        - files: ['*.yml']\n          refresh_interval: 1s\n      relabel_configs:\n        - source_labels: [dc]\n          regex: b\n          action: drop\n";
    let cfg = crate::config::load_str(cfg_text, "edgeprom.yml", dir.path()).unwrap();
    let n = Notifier::new(opts(vec![]));
    n.apply_config(&cfg.alerting, &Labels::from_pairs([("site", "a")]))
        .unwrap();
    // Read at once, before any watcher tick.
    assert_eq!(listed(&n), (vec![url(&am.addr.to_string())], vec![]));
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(n.clone().run(shutdown));
    n.send(vec![alert("Disc", &[])]);
    wait_for(|| !am.got.lock().unwrap().is_empty()).await;
    assert_eq!(am.got.lock().unwrap()[0].1[0]["labels"]["site"], "a");

    // Rows: new file content, then the active and dropped URLs it must lead to.
    let a = am.addr.to_string();
    let cases: Vec<(&str, String, Vec<String>, Vec<String>)> = vec![
        (
            "a duplicate is listed once; no port gets the scheme's default; relabeling drops",
            format!("- targets: ['{a}', '{a}', 'localhost']\n- targets: ['127.0.0.2:9093']\n  labels: {{dc: b}}\n"),
            vec![url(&a), url("localhost:80")],
            vec![url("127.0.0.2:9093")],
        ),
        (
            "a broken file keeps the last good list",
            "- targets: [unterminated\n".to_string(),
            vec![url(&a), url("localhost:80")],
            vec![url("127.0.0.2:9093")],
        ),
        ("an emptied file empties the list", "[]\n".to_string(), vec![], vec![]),
    ];
    for (name, text, active, dropped) in cases {
        let errors_before = Registry::global()
            .counter("prometheus_sd_file_read_errors_total", "", &[])
            .get();
        std::fs::write(&file, &text).unwrap();
        if name.contains("broken") {
            wait_long(name, || {
                Registry::global()
                    .counter("prometheus_sd_file_read_errors_total", "", &[])
                    .get()
                    > errors_before
            })
            .await;
        } else {
            wait_long(name, || listed(&n) == (active.clone(), dropped.clone())).await;
        }
        assert_eq!(listed(&n), (active, dropped), "{name}");
    }

    // A reload without file discovery stops the watcher and takes the new external labels.
    let cfg = crate::config::load_str(
        &format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{a}']\n"
        ),
        "edgeprom.yml",
        dir.path(),
    )
    .unwrap();
    n.apply_config(&cfg.alerting, &Labels::from_pairs([("site", "b")]))
        .unwrap();
    std::fs::write(&file, "- targets: ['127.0.0.3:1']\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(listed(&n), (vec![url(&a)], vec![]));
    am.got.lock().unwrap().clear();
    n.send(vec![alert("Reloaded", &[])]);
    wait_for(|| !am.got.lock().unwrap().is_empty()).await;
    assert_eq!(am.got.lock().unwrap()[0].1[0]["labels"]["site"], "b");
    let mut m = String::new();
    Registry::global().expose(&mut m);
    assert!(
        m.contains(&format!(
            "prometheus_notifications_latency_seconds_count{{alertmanager=\"{}\"}}",
            url(&a)
        )),
        "{m}"
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn alertmanager_http_settings_are_used() {
    // Rows: the HTTP settings of an `alertmanagers[]` entry, the Authorization header sent.
    let cases = [
        (
            "      basic_auth:\n        username: prom\n        password: s3cret\n",
            "Basic cHJvbTpzM2NyZXQ=",
        ),
        (
            "      authorization:\n        credentials: tok\n",
            "Bearer tok",
        ),
        (
            "      authorization:\n        type: Token\n        credentials: abc\n",
            "Token abc",
        ),
        ("", ""),
    ];
    for (http, want) in cases {
        let am = fake_am(vec![200]).await;
        let cfg = crate::config::load_str(
            &format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n{http}",
                am.addr
            ),
            "edgeprom.yml",
            std::path::Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{http}: {e}"));
        let n = Notifier::new(opts(vec![]));
        n.apply_config(&cfg.alerting, &Labels::empty()).unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(n.clone().run(shutdown));
        n.send(vec![alert("Auth", &[])]);
        wait_for(|| !am.auth.lock().unwrap().is_empty()).await;
        assert_eq!(am.auth.lock().unwrap()[0], want, "{http}");
        trigger.trigger();
        task.await.unwrap();
    }
}
