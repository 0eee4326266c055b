//! Whole binary against a real Alertmanager (Debian's `prometheus-alertmanager`) on loopback.
//! edgeprom scrapes itself, finds the Alertmanager through `file_sd_configs`, and an alerting
//! rule on the scraped `up` fires: the alert arrives in Alertmanager's API v2 with its series
//! labels, rule labels, the external labels and templated annotations. A reload (`POST
//! /-/reload`) with a rule that no longer matches resolves it, and Alertmanager drops it. A
//! second reload with new external labels and a new `evaluation_interval` fires it again: the
//! new labels reach Alertmanager and the annotation templates, and the group takes the new
//! interval. Emptying the target file removes the Alertmanager from `/api/v1/alertmanagers`.
//! Skips (with a message) when Alertmanager is not installed; `ALERTMANAGER_BIN` overrides the
//! path.

mod common;

use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn rules(threshold: u32) -> String {
    format!(
        r#"groups:
  - name: board
    rules:
      - alert: SelfUp
        expr: up{{job="self"}} > {threshold}
        labels:
          severity: page
        annotations:
          summary: '{{{{ $labels.instance }}}} up={{{{ $value }}}} on {{{{ $externalLabels.board }}}}'
          link: '{{{{ $externalURL }}}}'
"#
    )
}

fn config(addr: &str, board: &str, eval: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: {eval}\n  external_labels:\n    board: {board}\n\
         rule_files: ['rules.yml']\n\
         alerting:\n  alertmanagers:\n    - file_sd_configs:\n        - files: ['am/*.json']\n          refresh_interval: 1s\n\
         scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{addr}']\n"
    )
}

fn json(s: &Server, path: &str) -> serde_json::Value {
    let (code, body) = s.get(path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The alert in Alertmanager with `board=<board>`, if listed.
fn am_alert(am: &Alertmanager, board: &str) -> Option<serde_json::Value> {
    am.alerts("SelfUp")
        .into_iter()
        .find(|a| a["labels"]["board"] == board)
}

#[test]
fn alert_reaches_alertmanager_resolves_and_follows_reloads() {
    let Some(bin) = alertmanager_bin() else {
        eprintln!("skipping: prometheus-alertmanager not installed");
        return;
    };
    let am = Alertmanager::start(&bin, free_port());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let external = format!("http://{addr}/");
    write_file(
        dir.path(),
        "am/am.json",
        &format!(r#"[{{"targets": ["{}"]}}]"#, am.addr()),
    );
    write_file(dir.path(), "rules.yml", &rules(0));
    let cfg = write_file(dir.path(), "edgeprom.yml", &config(&addr, "pi1", "1s"));
    let s = Server::start_in_at(
        dir,
        port,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--web.external-url={external}"),
            "--web.enable-lifecycle",
        ],
    );

    let v = json(&s, "/api/v1/alertmanagers");
    assert_eq!(
        v["data"]["activeAlertmanagers"][0]["url"],
        format!("http://{}/api/v2/alerts", am.addr()),
        "{v}"
    );

    // 1. It fires and arrives with every label and annotation.
    s.wait_for("the alert in Alertmanager", WAIT, |_| {
        am_alert(&am, "pi1").is_some()
    });
    let a = am_alert(&am, "pi1").unwrap();
    let want_labels = serde_json::json!({
        "alertname": "SelfUp", "board": "pi1", "instance": addr, "job": "self", "severity": "page",
    });
    assert_eq!(a["labels"], want_labels, "{a}");
    assert_eq!(
        a["annotations"],
        serde_json::json!({"summary": format!("{addr} up=1 on pi1"), "link": external}),
        "{a}"
    );
    assert_eq!(a["status"]["state"], "active", "{a}");
    let gen = a["generatorURL"].as_str().unwrap_or_default();
    assert!(gen.starts_with(&format!("{external}graph?g0.expr=")), "{a}");
    let v = json(&s, "/api/v1/alerts");
    assert_eq!(v["data"]["alerts"][0]["state"], "firing", "{v}");

    // 2. A reload with a rule that no longer matches resolves it. A firing alert is sent valid
    // for four resend delays (4m by default), so its disappearance is the resolved notification.
    write_file(s.path(), "rules.yml", &rules(1));
    let (code, body) = s.post("/-/reload", None);
    assert_eq!(code, 200, "{body}");
    s.wait_for("the alert to resolve in Alertmanager", WAIT, |_| {
        am_alert(&am, "pi1").is_none()
    });
    assert_eq!(
        json(&s, "/api/v1/alerts")["data"]["alerts"],
        serde_json::json!([])
    );

    // 3. New external labels and evaluation interval: the re-fired alert carries the new label
    // (notifier) and the new value in its annotation (rule templates); the group (which has no
    // interval of its own) runs at the new interval.
    write_file(s.path(), "edgeprom.yml", &config(&addr, "pi2", "2s"));
    write_file(s.path(), "rules.yml", &rules(0));
    let (code, body) = s.post("/-/reload", None);
    assert_eq!(code, 200, "{body}");
    let v = json(&s, "/api/v1/rules");
    assert_eq!(v["data"]["groups"][0]["interval"], 2.0, "{v}");
    s.wait_for("the re-fired alert with the new labels", WAIT, |_| {
        am_alert(&am, "pi2").is_some()
    });
    let a = am_alert(&am, "pi2").unwrap();
    assert_eq!(
        a["annotations"]["summary"],
        format!("{addr} up=1 on pi2"),
        "{a}"
    );

    // 4. The Alertmanager list follows the target file.
    write_file(s.path(), "am/am.json", "[]");
    s.wait_for("the Alertmanager to leave the list", WAIT, |s| {
        json(s, "/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    let (_, metrics) = s.get("/metrics");
    for want in [
        "prometheus_notifications_latency_seconds{alertmanager=",
        "prometheus_rule_group_duration_seconds{quantile=\"0.99\"}",
        "prometheus_rule_evaluation_duration_seconds_count",
    ] {
        assert!(metrics.contains(want), "missing {want} in /metrics");
    }
}
