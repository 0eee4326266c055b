//! Whole binary: a recording rule and an alerting rule evaluated by the server on scraped data,
//! visible through the query, rules and alerts APIs; `/federate` serves the latest values with
//! the external labels of the config in force (a reload changes them).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn rules_evaluate_on_scraped_data_and_federate_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    write_file(
        dir.path(),
        "rules/r.yml",
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: EdgepromUp\n        expr: up{job=\"edgeprom\"} == 1\n        labels:\n          severity: info\n        annotations:\n          summary: '{{ $labels.instance }} is up with value {{ $value }}'\n",
    );
    let cfg = write_file(
        dir.path(),
        "edgeprom.yml",
        &format!("global:\n  scrape_interval: 1s\n  external_labels:\n    board: pi1\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: edgeprom\n    static_configs:\n      - targets: ['{addr}']\n"),
    );
    let s = Server::start_in_at(dir, port, &[&format!("--config.file={}", cfg.display())]);
    s.wait_for("recorded series", Duration::from_secs(30), |s| {
        s.get("/api/v1/query?query=job:up:sum")
            .1
            .contains("\"job\":\"edgeprom\"")
    });
    let (_, rules) = s.get("/api/v1/rules");
    assert!(
        rules.contains("\"name\":\"job:up:sum\"") && rules.contains("\"health\":\"ok\""),
        "{rules}"
    );
    s.wait_for("firing alert", Duration::from_secs(30), |s| {
        s.get("/api/v1/alerts").1.contains("\"state\":\"firing\"")
    });
    let (_, alerts) = s.get("/api/v1/alerts");
    assert!(
        alerts.contains(&format!("{addr} is up with value 1")),
        "{alerts}"
    );
    // ALERTS is appended by the evaluation that found the alert firing.
    s.wait_for("ALERTS series", Duration::from_secs(10), |s| {
        s.get("/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D")
            .1
            .contains("\"alertname\":\"EdgepromUp\"")
    });

    let (code, fed) = s.get("/federate?match%5B%5D=up");
    assert_eq!(code, 200, "{fed}");
    assert!(
        fed.contains("# TYPE up untyped")
            && fed.contains("board=\"pi1\"")
            && fed.contains("job=\"edgeprom\""),
        "{fed}"
    );

    // A reload with other external labels: /federate follows it, as Prometheus does.
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\n  external_labels:\n    board: pi2\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: edgeprom\n    static_configs:\n      - targets: ['{addr}']\n"),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    s.wait_for(
        "federation with the reloaded external labels",
        Duration::from_secs(20),
        |s| {
            let (code, fed) = s.get("/federate?match%5B%5D=up");
            code == 200 && fed.contains("board=\"pi2\"") && !fed.contains("board=\"pi1\"")
        },
    );
}
