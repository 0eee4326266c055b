//! Whole-binary tests of issue 3: lifecycle endpoints, reloads, shutdown, check config, flags.

mod common;
use common::*;
use std::time::Duration;

const GOOD: &str = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: 'prometheus'\n    scrape_interval: 5s\n    static_configs:\n      - targets: ['localhost:9090']\n";
const TYPO: &str = "scrape_configs:\n  - job_name: 'node'\n    scarpe_interval: 3s\n    static_configs:\n      - targets: ['localhost:9100']\n";

#[test]
fn lifecycle_endpoints_without_flag_are_forbidden() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/-/healthy").0, 200);
    // Healthy once listening; ready once the first config is applied (503 until then).
    s.wait_for("ready", Duration::from_secs(20), |s| {
        s.get("/-/ready").0 == 200
    });
    for p in ["/-/reload", "/-/quit"] {
        let (code, body) = s.post(p, None);
        assert_eq!(code, 403, "{p}");
        assert!(body.contains("Lifecycle API is not enabled"), "{body}");
    }
    assert_eq!(s.get("/-/reload").0, 405);
    // The server is still up after the refused quit.
    assert_eq!(s.get("/-/healthy").0, 200);
}

#[test]
fn reload_success_and_failure_keep_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "edgeprom.yml", GOOD);
    let s = Server::start_in(
        dir,
        &[
            &format!("--config.file={}", cfg.display()),
            "--web.enable-lifecycle",
        ],
    );
    let (_, c) = s.get("/api/v1/status/config");
    assert!(c.contains("scrape_interval: 5s"), "{c}");

    // A good change is applied.
    std::fs::write(&cfg, GOOD.replace("5s", "7s")).unwrap();
    assert_eq!(s.post("/-/reload", None).0, 200);
    assert!(s
        .get("/api/v1/status/config")
        .1
        .contains("scrape_interval: 7s"));
    assert_eq!(
        metric_value(
            &s.get("/metrics").1,
            "prometheus_config_last_reload_successful"
        ),
        Some(1.0)
    );

    // A broken file is refused with 500 and the error; the old config stays.
    std::fs::write(&cfg, TYPO).unwrap();
    let (code, body) = s.post("/-/reload", None);
    assert_eq!(code, 500);
    assert!(
        body.contains("scarpe_interval") && body.contains("did you mean \"scrape_interval\""),
        "{body}"
    );
    assert!(s
        .get("/api/v1/status/config")
        .1
        .contains("scrape_interval: 7s"));
    assert_eq!(
        metric_value(
            &s.get("/metrics").1,
            "prometheus_config_last_reload_successful"
        ),
        Some(0.0)
    );
    assert!(s
        .get("/api/v1/status/runtimeinfo")
        .1
        .contains("\"reloadConfigSuccess\":false"));

    // SIGHUP reloads too.
    std::fs::write(&cfg, GOOD.replace("5s", "9s")).unwrap();
    s.signal(1);
    s.wait_for("SIGHUP reload", Duration::from_secs(10), |s| {
        s.get("/api/v1/status/config")
            .1
            .contains("scrape_interval: 9s")
    });
    assert_eq!(
        metric_value(
            &s.get("/metrics").1,
            "prometheus_config_last_reload_successful"
        ),
        Some(1.0)
    );
}

#[test]
fn quit_endpoint_and_sigterm_exit_zero() {
    let s = Server::start(&["--web.enable-lifecycle"]);
    let (code, body) = s.post("/-/quit", None);
    assert_eq!(code, 200, "{body}");
    let (st, took, _) = s.stop(Duration::from_secs(10));
    assert!(st.success() || st.code().is_none(), "{st:?}");
    assert!(took < Duration::from_secs(10));

    let s = Server::start(&[]);
    let (st, _, _) = s.stop(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "SIGTERM must exit 0");

    // A SIGTERM during start-up (systemd stopping a unit that is still starting: storage
    // replay, first config) is a graceful stop too, not death by the signal's default action.
    // The first log line comes from inside start-up, before the listener and the first config.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("edgeprom.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgeprom"))
        .current_dir(dir.path())
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--storage.tsdb.path=data")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(20), "no log line");
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().unwrap();
    assert_eq!(
        st.code(),
        Some(0),
        "SIGTERM during start-up: {st:?}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn embedded_default_is_logged_and_shown() {
    let s = Server::start(&[]);
    assert!(s.log().contains("embedded default config"), "{}", s.log());
    let (_, c) = s.get("/api/v1/status/config");
    assert!(
        c.contains("job_name: node") && c.contains("/node/metrics"),
        "{c}"
    );
    let (_, flags) = s.get("/api/v1/status/flags");
    assert!(
        flags.contains("\"storage.tsdb.retention.time\":\"2w1d\"")
            || flags.contains("\"storage.tsdb.retention.time\":\"15d\""),
        "{flags}"
    );
    let (_, b) = s.get("/api/v1/status/buildinfo");
    assert!(
        b.contains("\"version\":\"2.42.0\"") && !b.contains("features"),
        "{b}"
    );
}

#[test]
fn metrics_has_process_build_and_http_metrics() {
    let s = Server::start(&[]);
    s.get("/-/healthy");
    let (code, m) = s.get("/metrics");
    assert_eq!(code, 200);
    for want in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "edgeprom_build_info{",
        "prometheus_http_requests_total{code=\"200\",handler=\"/-/healthy\"}",
        "prometheus_http_request_duration_seconds_bucket{handler=\"/-/healthy\",le=\"0.005\"}",
    ] {
        assert!(m.contains(want), "missing {want}");
    }
}

#[test]
fn route_prefix_moves_every_endpoint() {
    let s = Server::start(&["--web.external-url=http://pi.local:9090/edge/"]);
    assert_eq!(s.get("/edge/-/healthy").0, 200);
    assert_eq!(s.get("/-/healthy").0, 404);
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "good.yml",
        &format!("{GOOD}rule_files: ['rules/*.yml']\n"),
    );
    write_file(dir.path(), "rules/a.yml", "groups: []\n");
    write_file(dir.path(), "typo.yml", TYPO);
    let (code, out, _) = run(dir.path(), &["check", "config", "good.yml"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("SUCCESS: 1 rule files found")
            && out.contains("SUCCESS: good.yml is valid prometheus config file syntax"),
        "{out}"
    );
    let (code, _, err) = run(dir.path(), &["check", "config", "typo.yml"]);
    assert_eq!(code, 1);
    assert!(err.contains("line 3: unknown field \"scarpe_interval\" in scrape_configs[0], did you mean \"scrape_interval\"?"), "{err}");
    let (code, _, _) = run(dir.path(), &["check", "config", "good.yml", "typo.yml"]);
    assert_eq!(code, 1);
    let (code, _, err) = run(dir.path(), &["check", "config", "missing.yml"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.yml"), "{err}");
}

#[test]
fn bad_flags_and_bad_config_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(dir.path(), &["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(dir.path(), &["--storage.tsdb.retention.time=10x"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a valid duration string"), "{err}");
    write_file(dir.path(), "typo.yml", TYPO);
    let (code, _, err) = run(
        dir.path(),
        &["--config.file=typo.yml", "--web.listen-address=127.0.0.1:0"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("scarpe_interval"), "{err}");
    let (code, out, _) = run(dir.path(), &["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn node_metrics_are_served_and_collectors_switch() {
    let s = Server::start(&["--no-collector.hwmon"]);
    let (code, body) = s.get("/node/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE node_cpu_seconds_total counter"),
        "{body}"
    );
    assert!(body.contains("node_memory_MemTotal_bytes "));
    assert!(!body.contains("node_scrape_collector_success{collector=\"hwmon\"}"));
    // As node_exporter, the exporter's own process_* families (Node Exporter Full reads them
    // from the node job), and nothing else of edgeprom's.
    assert!(
        body.contains("# TYPE process_cpu_seconds_total counter"),
        "{body}"
    );
    assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");
    assert!(!body.contains("prometheus_"), "{body}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        &["--collector.nosuch", "--web.listen-address=127.0.0.1:0"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown collector \"nosuch\""), "{err}");
}
