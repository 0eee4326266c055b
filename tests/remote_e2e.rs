//! Remote write, federation and remote read against real peers on loopback: Prometheus 2.42
//! (remote write receiver, federation scraper, remote_read client), VictoriaMetrics, and a
//! scripted hyper receiver for the retry/drop rules. The writer runs over the real TSDB in a temp
//! dir; each writer "process" gets its own tokio runtime so a crash can be simulated by dropping
//! the runtime without any shutdown code running.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgeprom::config::RemoteWriteConfig;
use edgeprom::model::Labels;
use edgeprom::remote::proto::{snappy_decompress, WriteRequest, MAX_DECOMPRESSED};
use edgeprom::remote::{RemoteWriter, WriterOptions};
use edgeprom::storage::{Appendable, SeriesRef};
use edgeprom::tsdb::{Options, Tsdb};
use http_body_util::{BodyExt, Full};

use common::{free_port, request, start_vm, wait_ready, Peer};

type Series = BTreeMap<String, String>;
type Data = BTreeMap<Series, Vec<(i64, f64)>>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn start_prometheus(dir: &Path, port: u16, config: &str) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new("prometheus")
        .arg("--web.enable-remote-write-receiver")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus 2.42 (Debian package `prometheus`) must be installed");
    let p = Peer(child);
    wait_ready(&format!("127.0.0.1:{port}"), "/-/ready");
    p
}

fn remote_cfgs(yaml: &str) -> (Vec<RemoteWriteConfig>, Labels) {
    let c = edgeprom::config::load_str(yaml, "test.yml", Path::new(".")).expect("config");
    (c.remote_write, c.global.external_labels)
}

fn test_opts() -> WriterOptions {
    WriterOptions {
        settle: Duration::from_millis(300),
        checkpoint_interval: Duration::from_secs(1),
        new_queue_lookback: Duration::from_secs(3600),
        ..WriterOptions::default()
    }
}

/// A writer "process": its own runtime, so `crash` can drop everything mid-flight.
struct WriterProc {
    rt: Option<tokio::runtime::Runtime>,
    trigger: edgeprom::shutdown::ShutdownTrigger,
    task: Option<tokio::task::JoinHandle<()>>,
    writer: Arc<RemoteWriter>,
}

impl WriterProc {
    fn start(db: &Arc<Tsdb>, dir: &Path, yaml: &str, opts: WriterOptions) -> WriterProc {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (cfgs, ext) = remote_cfgs(yaml);
        let writer = RemoteWriter::with_options(db.clone(), dir.to_path_buf(), ext, opts);
        writer.apply_config(&cfgs);
        let (trigger, shutdown) = edgeprom::shutdown::channel();
        let task = rt.spawn(writer.clone().run(shutdown));
        WriterProc {
            rt: Some(rt),
            trigger,
            task: Some(task),
            writer,
        }
    }

    /// Waits until every queue has acknowledged everything up to `t_ms`.
    fn wait_sent(&self, queues: usize, t_ms: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = self.writer.status();
            if st.len() == queues && st.iter().all(|q| q.sent_until_ms >= t_ms) {
                return;
            }
            assert!(Instant::now() < deadline, "not sent up to {t_ms}: {st:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM: shutdown, queues write their checkpoints.
    fn stop(mut self) {
        self.trigger.trigger();
        if let (Some(rt), Some(t)) = (self.rt.take(), self.task.take()) {
            let _ = rt.block_on(t);
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// SIGKILL: every task is dropped where it stands; nothing runs on the way out.
    fn crash(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn open_db(dir: &Path) -> Arc<Tsdb> {
    Tsdb::open(Options {
        path: dir.to_path_buf(),
        ..Options::default()
    })
    .expect("open tsdb")
}

fn labels_of(s: &Series) -> Labels {
    Labels::from_pairs(s.iter().map(|(k, v)| (k.clone(), v.clone())))
}

fn append(db: &Tsdb, data: &Data) {
    let mut app = db.appender();
    for (s, samples) in data {
        let l = labels_of(s);
        for &(t, v) in samples {
            app.append(SeriesRef(0), &l, t, v).expect("append");
        }
    }
    app.commit().expect("commit");
}

fn series(pairs: &[(&str, &str)]) -> Series {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Prometheus: every raw sample of the matching series over the last `range`.
fn prometheus_raw(addr: &str, selector: &str, range: &str) -> Data {
    let q = format!("{selector}[{range}]");
    let t = now_ms() as f64 / 1000.0;
    let (code, body) = request(
        addr,
        "GET",
        &format!("/api/v1/query?query={}&time={t}", enc(&q)),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Data::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let s: Series = serde_json::from_value(r["metric"].clone()).unwrap();
        let vals = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                (t, v)
            })
            .collect();
        out.insert(s, vals);
    }
    out
}

/// VictoriaMetrics: /api/v1/export once it shows at least `want_samples` samples (ingested data
/// becomes searchable about a second after it is acknowledged), or after 15 s whatever it has.
fn vm_export_settled(addr: &str, selector: &str, want_samples: usize) -> Data {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = vm_export(addr, selector);
        let unique: usize = got
            .values()
            .map(|v| {
                let mut t: Vec<i64> = v.iter().map(|x| x.0).collect();
                t.dedup();
                t.len()
            })
            .sum();
        if unique >= want_samples || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// VictoriaMetrics: /api/v1/export of the matching series (after a forced flush).
fn vm_export(addr: &str, selector: &str) -> Data {
    let _ = request(addr, "GET", "/internal/force_flush", None);
    let (code, body) = request(
        addr,
        "GET",
        &format!("/api/v1/export?match[]={}", enc(selector)),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let mut out = Data::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s: Series = serde_json::from_value(v["metric"].clone()).unwrap();
        let ts = v["timestamps"].as_array().unwrap();
        let vs = v["values"].as_array().unwrap();
        let mut samples: Vec<(i64, f64)> = ts
            .iter()
            .zip(vs)
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap()))
            .collect();
        samples.sort_by_key(|x| x.0);
        out.entry(s).or_default().extend(samples);
    }
    out
}

fn metric(name: &str, remote_name: &str) -> f64 {
    let mut s = String::new();
    edgeprom::selfmetrics::Registry::global().expose(&mut s);
    let needle = format!("remote_name=\"{remote_name}\"");
    s.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&needle))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn writes_identical_series_to_prometheus_and_victoriametrics() {
    let tmp = tempfile::tempdir().unwrap();
    let (pp, vp) = (free_port(), free_port());
    let prom = start_prometheus(&tmp.path().join("prom"), pp, "scrape_configs: []\n");
    let vm = start_vm(&tmp.path().join("vm"), vp);
    let db = open_db(&tmp.path().join("edge"));

    // Values with at most 12 significant digits: VictoriaMetrics keeps that many exactly.
    let values = [0.0, 1.0, -1.5, 0.25, 1e9, 123456.789, 3.0e-5, 42.0];
    let base = (now_ms() - 10 * 60_000) / 1000 * 1000;
    let mut data = Data::new();
    let mut kinds = vec![
        series(&[
            ("__name__", "rw_up"),
            ("job", "node"),
            ("instance", "pi:9100"),
        ]),
        series(&[
            ("__name__", "rw_temp_celsius"),
            ("sensor", "greenhouse \"east\" ü"),
        ]),
        series(&[("__name__", "rw_dropped"), ("job", "x")]),
        series(&[("__name__", "rw_board"), ("board", "own-value")]),
    ];
    for i in 0..8 {
        kinds.push(series(&[
            ("__name__", "rw_requests_total"),
            ("idx", &i.to_string()),
        ]));
    }
    for (k, s) in kinds.into_iter().enumerate() {
        let samples = (0..60)
            .map(|j| {
                (
                    base + j * 5_000,
                    values[(j as usize + k) % values.len()] + k as f64,
                )
            })
            .collect();
        data.insert(s, samples);
    }
    append(&db, &data);
    let last_t = base + 59 * 5_000;

    let yaml = format!(
        "global:\n  external_labels:\n    board: pi-7\nremote_write:\n\
         - url: http://127.0.0.1:{pp}/api/v1/write\n  name: prom\n  write_relabel_configs:\n    - source_labels: [__name__]\n      regex: rw_dropped\n      action: drop\n  queue_config:\n    max_samples_per_send: 100\n    batch_send_deadline: 200ms\n    max_shards: 4\n\
         - url: http://127.0.0.1:{vp}/api/v1/write\n  name: vm\n  write_relabel_configs:\n    - source_labels: [__name__]\n      regex: rw_dropped\n      action: drop\n  queue_config:\n    max_samples_per_send: 100\n    batch_send_deadline: 200ms\n    max_shards: 4\n"
    );
    let w = WriterProc::start(&db, &tmp.path().join("edge"), &yaml, test_opts());
    w.wait_sent(2, last_t);

    // What a receiver must hold: every series but the dropped one, with board=pi-7 added
    // unless the series has its own board label.
    let mut want = Data::new();
    for (s, samples) in &data {
        if s["__name__"] == "rw_dropped" {
            continue;
        }
        let mut s = s.clone();
        s.entry("board".into()).or_insert_with(|| "pi-7".into());
        want.insert(s, samples.clone());
    }
    let sent: usize = want.values().map(Vec::len).sum();

    let got = prometheus_raw(&format!("127.0.0.1:{pp}"), "{__name__=~\"rw_.+\"}", "1h");
    assert_eq!(got, want, "Prometheus holds exactly what was written");
    let got = vm_export_settled(&format!("127.0.0.1:{vp}"), "{__name__=~\"rw_.+\"}", sent);
    assert_eq!(got, want, "VictoriaMetrics holds exactly what was written");

    for q in ["prom", "vm"] {
        assert_eq!(
            metric("prometheus_remote_storage_samples_total", q),
            sent as f64,
            "{q}"
        );
        assert_eq!(
            metric("prometheus_remote_storage_samples_dropped_total", q),
            60.0,
            "{q}"
        );
        assert_eq!(
            metric("prometheus_remote_storage_samples_failed_total", q),
            0.0,
            "{q}"
        );
        assert!(
            metric("prometheus_remote_storage_bytes_total", q) > 0.0,
            "{q}"
        );
        assert_eq!(
            metric(
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                q
            ),
            last_t as f64 / 1000.0,
            "{q}"
        );
    }
    w.stop();
    prom.stop();
    vm.stop();
}

/// Appends one sample per series every 50 ms, stamped with the wall clock, until told to stop;
/// returns everything appended.
fn live_appender(
    db: Arc<Tsdb>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Data> {
    std::thread::spawn(move || {
        let names: Vec<Series> = (0..4)
            .map(|i| series(&[("__name__", "rw_live"), ("idx", &i.to_string())]))
            .collect();
        let mut data = Data::new();
        let mut k = 0u64;
        let mut last = 0;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let t = now_ms().max(last + 1);
            last = t;
            let mut batch = Data::new();
            for s in &names {
                batch.insert(s.clone(), vec![(t, k as f64)]);
                data.entry(s.clone()).or_default().push((t, k as f64));
            }
            append(&db, &batch);
            k += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        data
    })
}

#[test]
fn outage_crash_and_restart_leave_no_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let vp = free_port();
    let vm_dir = tmp.path().join("vm");
    let edge = tmp.path().join("edge");
    let db = open_db(&edge);
    let vm = start_vm(&vm_dir, vp);
    let yaml = format!(
        "remote_write:\n- url: http://127.0.0.1:{vp}/api/v1/write\n  queue_config:\n    max_samples_per_send: 50\n    batch_send_deadline: 100ms\n    min_backoff: 50ms\n    max_backoff: 200ms\n    max_shards: 2\n"
    );
    let opts = WriterOptions {
        new_queue_lookback: Duration::ZERO,
        ..test_opts()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = WriterProc::start(&db, &edge, &yaml, opts.clone());
    std::thread::sleep(Duration::from_millis(500));
    let appender = live_appender(db.clone(), stop.clone());

    std::thread::sleep(Duration::from_secs(2));
    a.crash(); // SIGKILL while sending: the last checkpoint is up to a second old
    let b = WriterProc::start(&db, &edge, &yaml, opts.clone());
    std::thread::sleep(Duration::from_secs(2));
    vm.stop(); // the uplink goes away
    std::thread::sleep(Duration::from_secs(1));
    b.stop(); // SIGTERM during the outage
    let c = WriterProc::start(&db, &edge, &yaml, opts.clone());
    std::thread::sleep(Duration::from_secs(1));
    c.crash(); // SIGKILL during the outage
    let d = WriterProc::start(&db, &edge, &yaml, opts.clone());
    std::thread::sleep(Duration::from_secs(2));
    let vm = start_vm(&vm_dir, vp); // back
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Release);
    let written = appender.join().unwrap();
    let last_t = written
        .values()
        .flat_map(|v| v.iter().map(|x| x.0))
        .max()
        .unwrap();
    d.wait_sent(1, last_t);

    let total: usize = written.values().map(Vec::len).sum();
    let got = vm_export_settled(&format!("127.0.0.1:{vp}"), "{__name__=\"rw_live\"}", total);
    assert_eq!(got.len(), written.len());
    let mut dups = 0;
    for (s, want) in &written {
        let have = got.get(s).unwrap_or_else(|| panic!("series {s:?} missing"));
        let mut uniq = have.clone();
        uniq.dedup();
        dups += have.len() - uniq.len();
        assert_eq!(&uniq, want, "series {s:?}: no gap, same values");
    }
    // Re-sent after the crash: at most what was acknowledged since the last checkpoint (1 s of
    // checkpoint interval + one 100 ms poll + the slice in flight) at 4 series x 20 samples/s,
    // plus the batch in flight per shard when the receiver went down.
    let bound = 4 * 20 * 3 + 50 * 2;
    eprintln!("re-sent duplicates after crash and outage: {dups} (bound {bound})");
    assert!(dups <= bound, "{dups} duplicates exceed {bound}");
    d.stop();
    vm.stop();
}

/// A receiver that answers the scripted statuses first, then 200, and records what it accepted.
struct Fake {
    script: Mutex<VecDeque<u16>>,
    accepted: Mutex<Vec<(i64, f64)>>,
    answered: Mutex<Vec<u16>>,
}

fn start_fake(rt: &tokio::runtime::Runtime, script: &[u16]) -> (u16, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script: Mutex::new(script.iter().copied().collect()),
        accepted: Mutex::new(Vec::new()),
        answered: Mutex::new(Vec::new()),
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = fake.clone();
    rt.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let f = f.clone();
                        async move {
                            let ok_headers = req
                                .headers()
                                .get("content-encoding")
                                .map(|v| v == "snappy")
                                .unwrap_or(false)
                                && req
                                    .headers()
                                    .get("x-prometheus-remote-write-version")
                                    .is_some();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let code = f.script.lock().unwrap().pop_front().unwrap_or(200);
                            let code = if ok_headers { code } else { 415 };
                            if code == 200 {
                                let raw = snappy_decompress(&body, MAX_DECOMPRESSED).unwrap();
                                let wr = WriteRequest::decode(&raw).unwrap();
                                let mut acc = f.accepted.lock().unwrap();
                                for ts in wr.timeseries {
                                    acc.extend(ts.samples);
                                }
                            }
                            f.answered.lock().unwrap().push(code);
                            let mut r =
                                hyper::Response::new(Full::new(Bytes::from_static(b"scripted")));
                            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            Ok::<_, Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (port, fake)
}

#[test]
fn receiver_errors_are_retried_or_dropped_as_documented() {
    struct Case {
        name: &'static str,
        script: &'static [u16],
        retry_429: bool,
        /// Whether the first request's samples end up accepted.
        first_delivered: bool,
    }
    let cases = [
        Case {
            name: "fake500",
            script: &[500, 503],
            retry_429: false,
            first_delivered: true,
        },
        Case {
            name: "fake429retry",
            script: &[429, 429],
            retry_429: true,
            first_delivered: true,
        },
        Case {
            name: "fake429drop",
            script: &[429],
            retry_429: false,
            first_delivered: false,
        },
        Case {
            name: "fake400",
            script: &[400],
            retry_429: true,
            first_delivered: false,
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for c in cases {
        let tmp = tempfile::tempdir().unwrap();
        let db = open_db(tmp.path());
        let (port, fake) = start_fake(&rt, c.script);
        // Ten series at one timestamp and one shard: the first request holds all ten samples.
        let base = now_ms() - 60_000;
        let first: Data = (0..10)
            .map(|i| {
                (
                    series(&[
                        ("__name__", "rw_fake"),
                        ("case", c.name),
                        ("idx", &i.to_string()),
                    ]),
                    vec![(base, i as f64)],
                )
            })
            .collect();
        append(&db, &first);
        let yaml = format!(
            "remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n  name: {}\n  queue_config:\n    max_shards: 1\n    min_backoff: 10ms\n    max_backoff: 40ms\n    batch_send_deadline: 100ms\n    retry_on_http_429: {}\n",
            c.name, c.retry_429
        );
        let w = WriterProc::start(&db, tmp.path(), &yaml, test_opts());
        w.wait_sent(1, base);
        // The queue moves on: later data is delivered either way.
        let t = now_ms();
        let later_series = series(&[("__name__", "rw_fake"), ("case", c.name), ("idx", "0")]);
        let later: Vec<(i64, f64)> = (0..5).map(|i| (t + i, 100.0 + i as f64)).collect();
        append(&db, &BTreeMap::from([(later_series, later.clone())]));
        w.wait_sent(1, later.last().unwrap().0);
        w.stop();

        let mut want: Vec<(i64, f64)> = if c.first_delivered {
            first.values().flatten().copied().collect()
        } else {
            Vec::new()
        };
        want.extend(&later);
        let key = |x: &(i64, f64)| (x.0, x.1.to_bits());
        want.sort_by_key(key);
        let mut accepted = fake.accepted.lock().unwrap().clone();
        accepted.sort_by_key(key);
        assert_eq!(accepted, want, "{}: accepted samples", c.name);
        let answered = fake.answered.lock().unwrap().clone();
        assert_eq!(
            &answered[..c.script.len()],
            c.script,
            "{}: each scripted answer was hit once",
            c.name
        );
        let (retried, failed) = if c.first_delivered {
            (10.0 * c.script.len() as f64, 0.0)
        } else {
            (0.0, 10.0)
        };
        assert_eq!(
            metric("prometheus_remote_storage_samples_retried_total", c.name),
            retried,
            "{}",
            c.name
        );
        assert_eq!(
            metric("prometheus_remote_storage_samples_failed_total", c.name),
            failed,
            "{}",
            c.name
        );
        assert_eq!(
            metric("prometheus_remote_storage_samples_total", c.name),
            want.len() as f64,
            "{}",
            c.name
        );
    }
}

/// Serves `/federate` and `/api/v1/read` from the TSDB, as the web layer will.
fn start_edge_http(rt: &tokio::runtime::Runtime, db: Arc<Tsdb>, ext: Labels) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let (db, ext) = (db.clone(), ext.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (db, ext) = (db.clone(), ext.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let params: Vec<(String, String)> =
                                form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                                    .into_owned()
                                    .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (code, body, ct, snappy) = if path == "/federate" {
                                let (c, b) = edgeprom::remote::federate(
                                    &*db,
                                    &params,
                                    now_ms(),
                                    300_000,
                                    &ext,
                                );
                                (
                                    c,
                                    b.into_bytes(),
                                    edgeprom::remote::federate::CONTENT_TYPE,
                                    false,
                                )
                            } else if path == "/api/v1/read" {
                                let (c, b, ct) =
                                    edgeprom::remote::remote_read_with_labels(&*db, &body, &ext);
                                (c, b, ct, c == 200)
                            } else {
                                (404, b"not found".to_vec(), "text/plain", false)
                            };
                            let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            r.headers_mut().insert("content-type", ct.parse().unwrap());
                            if snappy {
                                r.headers_mut()
                                    .insert("content-encoding", "snappy".parse().unwrap());
                            }
                            Ok::<_, Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

#[test]
fn prometheus_federates_and_remote_reads_from_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(&tmp.path().join("edge"));
    let now = now_ms() / 1000 * 1000;
    let mut data = Data::new();
    // Latest values for federation (newest sample 2 s ago, inside the 5 m lookback).
    data.insert(
        series(&[
            ("__name__", "fed_temp"),
            ("job", "greenhouse"),
            ("sensor", "a"),
        ]),
        (0..30)
            .map(|i| (now - 2_000 - (29 - i) * 10_000, 20.0 + i as f64 / 4.0))
            .collect(),
    );
    data.insert(
        series(&[
            ("__name__", "fed_humidity"),
            ("job", "greenhouse"),
            ("instance", "pi-7:9100"),
        ]),
        vec![(now - 3_000, 0.61)],
    );
    // History only the edge holds, read back through remote_read.
    data.insert(
        series(&[
            ("__name__", "rr_hist"),
            ("job", "greenhouse"),
            ("zone", "b \"x\""),
        ]),
        (0..120)
            .map(|i| (now - 3_000_000 + i * 15_000, (i * 7 % 13) as f64 - 3.5))
            .collect(),
    );
    append(&db, &data);
    let ext = Labels::from_pairs([("board", "pi-7")]);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ep = start_edge_http(&rt, db.clone(), ext);
    let pp = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{__name__=~\"fed_.+\"}}']\n    static_configs:\n      - targets: ['127.0.0.1:{ep}']\nremote_read:\n  - url: http://127.0.0.1:{ep}/api/v1/read\n    read_recent: true\n"
    );
    let prom = start_prometheus(&tmp.path().join("prom"), pp, &config);
    let addr = format!("127.0.0.1:{pp}");

    // Federation: the central Prometheus stores the board's latest values with the board's
    // labels (honor_labels), the external label added and no instance of its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let (code, body) = request(
            &addr,
            "GET",
            &format!(
                "/api/v1/query?query={}",
                enc("{__name__=~\"fed_.+\",job=\"greenhouse\"}")
            ),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let r = v["data"]["result"].as_array().unwrap().clone();
        if r.len() == 2 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "federated series never arrived: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut fed: BTreeMap<Series, (i64, f64)> = BTreeMap::new();
    for r in got {
        let s: Series = serde_json::from_value(r["metric"].clone()).unwrap();
        let t = (r["value"][0].as_f64().unwrap() * 1000.0).round() as i64;
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        fed.insert(s, (t, v));
    }
    // The instant query's timestamp is the query time; compare values and labels.
    let want: BTreeMap<Series, f64> = BTreeMap::from([
        (
            series(&[
                ("__name__", "fed_temp"),
                ("board", "pi-7"),
                ("job", "greenhouse"),
                ("sensor", "a"),
            ]),
            20.0 + 29.0 / 4.0,
        ),
        (
            series(&[
                ("__name__", "fed_humidity"),
                ("board", "pi-7"),
                ("instance", "pi-7:9100"),
                ("job", "greenhouse"),
            ]),
            0.61,
        ),
    ]);
    let fed_vals: BTreeMap<Series, f64> = fed.iter().map(|(k, v)| (k.clone(), v.1)).collect();
    assert_eq!(fed_vals, want);

    // The raw federated samples carry the edge's timestamps (honor_timestamps).
    let raw = prometheus_raw(
        &addr,
        "{__name__=\"fed_humidity\",job=\"greenhouse\",board=\"pi-7\"}",
        "5m",
    );
    let samples: Vec<_> = raw.values().flatten().copied().collect();
    assert!(
        samples.iter().all(|&(t, v)| t == now - 3_000 && v == 0.61),
        "{samples:?}"
    );

    // Remote read: the history exists only on the edge.
    let got = prometheus_raw(&addr, "rr_hist", "1h");
    let mut want = Data::new();
    for (s, v) in &data {
        if s["__name__"] == "rr_hist" {
            let mut s = s.clone();
            s.insert("board".into(), "pi-7".into());
            want.insert(s, v.clone());
        }
    }
    assert_eq!(
        got, want,
        "remote read returns every sample with the board's labels"
    );

    // Bad input to the read endpoint: typed 400s, no panic.
    for body in [&b""[..], b"\xff\xff\xff", b"\x00"] {
        let (code, _, _) = edgeprom::remote::remote_read(&*db, body);
        assert!(code == 400 || code == 200, "garbage answered {code}");
    }
    prom.stop();
}

#[test]
fn backlog_older_than_retention_is_skipped_and_counted() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path());
    let (port, fake) = start_fake(&rt, &[]);
    let now = now_ms();
    let l = series(&[("__name__", "rw_retention")]);
    // Ten samples an hour old (beyond a 10-minute retention), five recent ones.
    let old: Vec<(i64, f64)> = (0..10)
        .map(|i| (now - 3_600_000 + i * 1000, i as f64))
        .collect();
    let recent: Vec<(i64, f64)> = (0..5)
        .map(|i| (now - 5_000 + i * 1000, 50.0 + i as f64))
        .collect();
    append(
        &db,
        &BTreeMap::from([(l.clone(), old.iter().chain(&recent).copied().collect())]),
    );
    // The queue was last acknowledged two hours ago (a board that was offline for long).
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let ckpt = tmp.path().join("remote_write").join("retention.json");
    std::fs::create_dir_all(ckpt.parent().unwrap()).unwrap();
    std::fs::write(
        &ckpt,
        format!(
            "{{\"version\":1,\"url\":\"{url}\",\"sent_until_ms\":{}}}",
            now - 7_200_000
        ),
    )
    .unwrap();
    let yaml = format!("remote_write:\n- url: {url}\n  name: retention\n  queue_config:\n    batch_send_deadline: 100ms\n");
    let opts = WriterOptions {
        retention: Duration::from_secs(600),
        ..test_opts()
    };
    let w = WriterProc::start(&db, tmp.path(), &yaml, opts);
    w.wait_sent(1, recent.last().unwrap().0);
    w.stop();
    assert_eq!(
        *fake.accepted.lock().unwrap(),
        recent,
        "only data inside the retention is sent"
    );
    assert_eq!(
        metric(
            "prometheus_remote_storage_samples_dropped_total",
            "retention"
        ),
        10.0
    );
    assert_eq!(
        metric("prometheus_remote_storage_samples_total", "retention"),
        5.0
    );
    // The checkpoint moved past everything sent.
    let text = std::fs::read_to_string(&ckpt).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["sent_until_ms"].as_i64().unwrap() >= recent.last().unwrap().0,
        "{text}"
    );
}
