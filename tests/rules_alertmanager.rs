//! Rules + notifier against a real Alertmanager (Debian's `prometheus-alertmanager`) on loopback:
//! an alert fires and arrives with its labels and annotations, then resolves; an Alertmanager
//! that is down while the rule fires receives the alert once it comes back, and rule evaluation
//! keeps its pace meanwhile. Skips (with a message) when the binary is not installed; set
//! `ALERTMANAGER_BIN` to use another path.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{alertmanager_alerts as am_alerts, alertmanager_bin, free_port, Alertmanager};
use edgeprom::model::Labels;
use edgeprom::notifier::{alertmanager_url, Notifier, NotifierOptions};
use edgeprom::rules::{Alert, NotifyFn, ParseFn, QueryFn, RuleManager, RuleManagerOptions};
use edgeprom::storage::{Appendable, Appender, Result as SResult, SeriesRef};

/// Keeps committed samples; the rule output is not what this test is about.
#[derive(Clone, Default)]
struct VecStorage(Arc<Mutex<Vec<(Labels, i64, f64)>>>);
struct VecAppender(Arc<Mutex<Vec<(Labels, i64, f64)>>>, Vec<(Labels, i64, f64)>);
impl Appendable for VecStorage {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(VecAppender(self.0.clone(), Vec::new()))
    }
}
impl Appender for VecAppender {
    fn append(&mut self, _: SeriesRef, l: &Labels, t: i64, v: f64) -> SResult<SeriesRef> {
        self.1.push((l.clone(), t, v));
        Ok(SeriesRef(1))
    }
    fn commit(self: Box<Self>) -> SResult<()> {
        self.0.lock().unwrap().extend(self.1);
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Setup {
    firing: Arc<AtomicBool>,
    evaluations: Arc<AtomicUsize>,
    trigger: edgeprom::shutdown::ShutdownTrigger,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// A rule manager (1s interval, 1s resend delay) and a notifier pointed at `port`.
fn setup(port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: greenhouse
    interval: 1s
    rules:
      - alert: PumpDown
        expr: pump_up == 0
        labels:
          severity: page
        annotations:
          summary: "Pump {{ $labels.instance }} is down"
          description: "value {{ $value }} at {{ $externalLabels.site }}"
"#,
    )
    .unwrap();
    let firing = Arc::new(AtomicBool::new(true));
    let evaluations = Arc::new(AtomicUsize::new(0));
    let (f, e) = (firing.clone(), evaluations.clone());
    let query: QueryFn = Arc::new(move |_q: &str, _t: i64| {
        e.fetch_add(1, Ordering::SeqCst);
        Ok(if f.load(Ordering::SeqCst) {
            vec![(
                Labels::from_pairs([("__name__", "pump_up"), ("instance", "pump-1")]),
                0.0,
            )]
        } else {
            vec![]
        })
    });
    let parse: ParseFn = Arc::new(|_: &str| Ok(()));
    let external = Labels::from_pairs([("site", "greenhouse")]);
    // The Alertmanager comes from an `alerting:` config, so batches go through the shared
    // HTTP client (the one that carries TLS and auth settings).
    let cfg = edgeprom::config::load_str(
        &format!(
            "global:\n  external_labels: {{site: greenhouse}}\nalerting:\n  alertmanagers:\n    - timeout: 2s\n      static_configs:\n        - targets: [\"127.0.0.1:{port}\"]\n"
        ),
        "edgeprom.yml",
        dir.path(),
    )
    .unwrap();
    let mut nopts =
        NotifierOptions::from_config(&cfg.alerting, &cfg.global.external_labels).unwrap();
    assert_eq!(
        nopts.alertmanagers[0].url,
        alertmanager_url("http", &format!("127.0.0.1:{port}"), "")
    );
    nopts.retry_backoff = Duration::from_millis(100);
    let notifier = Notifier::new(nopts);
    let n2 = notifier.clone();
    let notify: NotifyFn = Arc::new(move |alerts: Vec<Alert>| n2.send(alerts));
    let mut opts =
        RuleManagerOptions::new(query, parse, notify, Arc::new(VecStorage::default()), None);
    opts.external_labels = external;
    opts.external_url = "http://127.0.0.1:9090".to_string();
    opts.resend_delay = Duration::from_secs(1);
    let mgr = RuleManager::new(opts);
    mgr.load(&[rules]).unwrap();
    let (trigger, shutdown) = edgeprom::shutdown::channel();
    let tasks = vec![
        tokio::spawn(notifier.run(shutdown.clone())),
        tokio::spawn(mgr.run(shutdown)),
    ];
    Setup {
        firing,
        evaluations,
        trigger,
        tasks,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fires_and_resolves_in_alertmanager() {
    let Some(bin) = alertmanager_bin() else {
        eprintln!("skipping: prometheus-alertmanager not installed");
        return;
    };
    let port = free_port();
    let _am = Alertmanager::start(&bin, port);
    let s = setup(port);
    wait_until("the alert in Alertmanager", Duration::from_secs(20), || {
        !am_alerts(port, "PumpDown").is_empty()
    })
    .await;
    let a = am_alerts(port, "PumpDown").remove(0);
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["labels"]["instance"], "pump-1");
    assert_eq!(a["labels"]["site"], "greenhouse", "external label added");
    assert_eq!(a["annotations"]["summary"], "Pump pump-1 is down");
    assert_eq!(a["annotations"]["description"], "value 0 at greenhouse");
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap_or("")
            .starts_with("http://127.0.0.1:9090/graph?g0.expr="),
        "{a}"
    );
    s.firing.store(false, Ordering::SeqCst);
    wait_until("the alert to resolve", Duration::from_secs(20), || {
        am_alerts(port, "PumpDown").is_empty()
    })
    .await;
    s.trigger.trigger();
    for t in s.tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_down_then_back_gets_the_alert_without_stalling_rules() {
    let Some(bin) = alertmanager_bin() else {
        eprintln!("skipping: prometheus-alertmanager not installed");
        return;
    };
    let port = free_port();
    let s = setup(port);
    // Alertmanager is down: evaluation goes on at its 1s pace regardless.
    let start = s.evaluations.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let during = s.evaluations.load(Ordering::SeqCst) - start;
    assert!(
        during >= 3,
        "only {during} evaluations in 4.5s while Alertmanager was down"
    );
    let _am = Alertmanager::start(&bin, port);
    wait_until(
        "the alert after Alertmanager came back",
        Duration::from_secs(20),
        || !am_alerts(port, "PumpDown").is_empty(),
    )
    .await;
    let a = am_alerts(port, "PumpDown").remove(0);
    assert_eq!(a["labels"]["site"], "greenhouse");
    assert_eq!(a["annotations"]["summary"], "Pump pump-1 is down");
    s.trigger.trigger();
    for t in s.tasks {
        t.await.unwrap();
    }
}
