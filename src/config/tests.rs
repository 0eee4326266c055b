use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(text, "test.yml", Path::new("/etc/edgeprom"))
}

fn err(text: &str) -> String {
    load(text)
        .expect_err("config should be rejected")
        .to_string()
}

/// The config of the popular "Prometheus on a Raspberry Pi" tutorials: valid.
const TUTORIAL_OK: &str = "\
global:
  scrape_interval: 15s
  external_labels:
    monitor: 'codelab-monitor'
scrape_configs:
  - job_name: 'prometheus'
    scrape_interval: 5s
    static_configs:
      - targets: ['localhost:9090']
  - job_name: 'node'
    static_configs:
      - targets: ['localhost:9100']
";

/// The same with the typo users copy from the seed config.
const TUTORIAL_TYPO: &str = "\
scrape_configs:
  - job_name: 'node'
    scarpe_interval: 3s
    static_configs:
      - targets: ['localhost:9100']
";

#[test]
fn tutorial_config_loads_with_inheritance() {
    let c = load(TUTORIAL_OK).unwrap();
    assert_eq!(c.global.scrape_interval, Duration::from_secs(15));
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
    assert_eq!(c.global.evaluation_interval, Duration::from_secs(60));
    assert_eq!(c.global.rule_query_offset, Duration::ZERO);
    assert_eq!(
        c.global.external_labels.get("monitor"),
        Some("codelab-monitor")
    );
    let p = &c.scrape_configs[0];
    assert_eq!(
        (p.scrape_interval, p.scrape_timeout),
        (Duration::from_secs(5), Duration::from_secs(5))
    );
    let n = &c.scrape_configs[1];
    assert_eq!(
        (n.scrape_interval, n.scrape_timeout),
        (Duration::from_secs(15), Duration::from_secs(10))
    );
    assert_eq!(n.metrics_path, "/metrics");
    assert_eq!(n.scheme, "http");
    assert!(n.honor_timestamps && !n.honor_labels && n.http.follow_redirects);
}

#[test]
fn typo_names_key_line_place_and_suggestion() {
    let e = err(TUTORIAL_TYPO);
    assert!(
        e.contains("line 3: unknown field \"scarpe_interval\" in scrape_configs[0], did you mean \"scrape_interval\"?"),
        "{e}"
    );
}

#[test]
fn rejections_table() {
    let cases: &[(&str, &str)] = &[
        ("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n", "global scrape timeout greater than scrape interval"),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
            "scrape timeout greater than scrape interval for scrape config with job name \"a\"",
        ),
        ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "found multiple scrape configs with job name \"a\""),
        ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n", "not a valid duration string: \"5x\""),
        ("scrape_configs:\n  - scrape_interval: 5s\n", "job_name is empty"),
        ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "invalid scheme"),
        ("globl:\n  scrape_interval: 5s\n", "unknown field \"globl\" in the top level, did you mean \"global\"?"),
        ("global:\n  scrape_intervl: 5s\n", "line 2: unknown field \"scrape_intervl\" in global, did you mean \"scrape_interval\"?"),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n",
            "requires non-zero modulus",
        ),
        ("scrape_configs:\n  - job_name: a\n    body_size_limit: 10QB\n", "body_size_limit"),
        ("scrape_configs:\n  - job_name: a\n    tls_config:\n      cert_file: a.pem\n", "needs both cert_file and key_file"),
        ("scrape_configs: [\n", "line"),
        ("remote_write:\n  - url: ftp://x\n", "must be an http(s) URL"),
        ("alerting:\n  alertmanagers:\n    - api_version: v1\n", "api version"),
        (
            "scrape_configs:\n  - job_name: a\n    bearer_token: x\n    basic_auth:\n      username: u\n",
            "at most one of basic_auth",
        ),
    ];
    for (text, want) in cases {
        let e = err(text);
        assert!(e.contains(want), "for {text:?}\n got {e:?}\nwant {want:?}");
    }
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let c = load(
        "rule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: a\n    tls_config:\n      ca_file: ca.pem\n    file_sd_configs:\n      - files: ['targets/*.json']\n",
    )
    .unwrap();
    assert_eq!(c.rule_files, vec!["/etc/edgeprom/rules/*.yml".to_string()]);
    assert_eq!(
        c.scrape_configs[0].http.tls.ca_file.as_deref(),
        Some(Path::new("/etc/edgeprom/ca.pem"))
    );
    assert_eq!(
        c.scrape_configs[0].file_sd_configs[0].files,
        vec!["/etc/edgeprom/targets/*.json".to_string()]
    );
    assert_eq!(
        c.scrape_configs[0].file_sd_configs[0].refresh_interval,
        Duration::from_secs(300)
    );
}

#[test]
fn secrets_never_shown() {
    let c = load(
        "scrape_configs:\n  - job_name: a\n    basic_auth:\n      username: u\n      password: hunter2\nremote_write:\n  - url: http://x/api/v1/write\n    headers:\n      X-Key: topsecret\n    authorization:\n      credentials: tok3n\n",
    )
    .unwrap();
    let y = c.to_yaml();
    for s in ["hunter2", "topsecret", "tok3n"] {
        assert!(!y.contains(s), "secret {s} leaked:\n{y}");
        assert!(!format!("{c:?}").contains(s), "secret {s} leaked in Debug");
    }
    assert!(y.contains("<secret>"));
    assert!(y.contains("scrape_interval: 1m"), "{y}");
}

#[test]
fn bearer_token_folds_into_authorization() {
    let c = load("scrape_configs:\n  - job_name: a\n    bearer_token_file: /t\n").unwrap();
    let a = c.scrape_configs[0].http.authorization.as_ref().unwrap();
    assert_eq!(a.kind, "Bearer");
    assert_eq!(a.credentials_file.as_deref(), Some(Path::new("/t")));
}

#[test]
fn embedded_default_scrapes_self_and_node() {
    let c = load_default("127.0.0.1:9090");
    let jobs: Vec<_> = c
        .scrape_configs
        .iter()
        .map(|s| {
            (
                s.job_name.as_str(),
                s.metrics_path.as_str(),
                s.scrape_interval,
            )
        })
        .collect();
    assert_eq!(
        jobs,
        vec![
            ("edgeprom", "/metrics", Duration::from_secs(15)),
            ("node", "/node/metrics", Duration::from_secs(15))
        ]
    );
    assert_eq!(
        c.scrape_configs[0].static_configs[0].targets,
        vec!["127.0.0.1:9090".to_string()]
    );
}

#[test]
fn empty_file_is_all_defaults() {
    let c = load("").unwrap();
    assert_eq!(c.global.scrape_interval, Duration::from_secs(60));
    assert!(c.scrape_configs.is_empty());
}

#[test]
fn remote_write_defaults() {
    let c = load("remote_write:\n  - url: http://127.0.0.1:8428/api/v1/write\n").unwrap();
    let q = &c.remote_write[0].queue_config;
    assert_eq!(
        (
            q.capacity,
            q.max_shards,
            q.min_shards,
            q.max_samples_per_send
        ),
        (10_000, 50, 1, 2_000)
    );
    assert_eq!(c.remote_write[0].remote_timeout, Duration::from_secs(30));
}

#[test]
fn global_rule_query_offset() {
    let c = load("global:\n  rule_query_offset: 30s\n").unwrap();
    assert_eq!(c.global.rule_query_offset, Duration::from_secs(30));
    let e = load("global:\n  rule_query_offset: soon\n").unwrap_err();
    assert!(e.to_string().contains("global.rule_query_offset"), "{e}");
}

/// Found by the `config_load` fuzz target: `body_size_limit` rendered as a bare byte count.
#[test]
fn rendered_config_loads_again() {
    for limit in ["10MB", "1KB", "1000B", "3GB"] {
        let c = load(&format!(
            "scrape_configs:\n  - job_name: a\n    body_size_limit: {limit}\n"
        ))
        .unwrap();
        let again = load(&c.to_yaml()).unwrap();
        assert_eq!(
            again.scrape_configs[0].body_size_limit, c.scrape_configs[0].body_size_limit,
            "{limit}"
        );
    }
}
