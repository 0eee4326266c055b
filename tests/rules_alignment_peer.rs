//! Rule groups evaluate at the same instants as in Prometheus: Debian's `prometheus` and the
//! edgeprom binary load the same rule file (same absolute path, so the same `{file, name}` hash)
//! and the timestamps of the recorded samples must fall on the same phase of each group's
//! interval. Skips (with a message) when `prometheus` is not installed; `PROMETHEUS_BIN`
//! overrides the path.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Groups: name, interval in seconds, recorded metric.
const GROUPS: &[(&str, u64, &str)] = &[
    ("phase_a", 3, "probe_a"),
    ("greenhouse pumps", 5, "probe_b"),
    ("phase_c", 2, "probe_c"),
];

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_bin() -> Option<PathBuf> {
    let p = PathBuf::from(
        std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into()),
    );
    p.exists().then_some(p)
}

/// Sample timestamps (ms) of `metric` over the last minute.
fn timestamps(addr: &str, metric: &str) -> Vec<i64> {
    let Ok((200, body)) = try_request(
        addr,
        "GET",
        &format!("/api/v1/query?query={metric}%5B1m%5D"),
        None,
    ) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"][0]["values"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p[0].as_f64())
                .map(|t| (t * 1000.0).round() as i64)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn groups_evaluate_on_the_same_phase_as_prometheus() {
    let Some(prom) = prometheus_bin() else {
        eprintln!("skipping: prometheus not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n");
    for (name, interval, metric) in GROUPS {
        rules.push_str(&format!(
            "  - name: {name}\n    interval: {interval}s\n    rules:\n      - record: {metric}\n        expr: vector(1)\n"
        ));
    }
    let rule_file = write_file(dir.path(), "rules.yml", &rules);
    let cfg = write_file(
        dir.path(),
        "prometheus.yml",
        &format!("rule_files: ['{}']\n", rule_file.display()),
    );
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let _peer = Peer(
        Command::new(prom)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let edge = Server::start(&[&format!("--config.file={}", cfg.display())]);

    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, interval, metric) in GROUPS {
        let ms = (*interval * 1000) as i64;
        let (p, e) = loop {
            let (p, e) = (
                timestamps(&prom_addr, metric),
                timestamps(&edge.addr, metric),
            );
            if !p.is_empty() && !e.is_empty() {
                break (p, e);
            }
            assert!(
                Instant::now() < deadline,
                "no samples of {metric}: prometheus {p:?}, edgeprom {e:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        let phase = |ts: &[i64]| ts.iter().map(|t| t.rem_euclid(ms)).collect::<Vec<_>>();
        let (pp, ep) = (phase(&p), phase(&e));
        assert!(
            pp.windows(2).all(|w| w[0] == w[1]),
            "{name}: prometheus phases {pp:?}"
        );
        assert_eq!(ep[0], pp[0], "{name}: edgeprom {e:?} vs prometheus {p:?}");
        assert!(
            ep.windows(2).all(|w| w[0] == w[1]),
            "{name}: edgeprom phases {ep:?}"
        );
    }
}
