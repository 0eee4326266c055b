//! Remote write from the real edgeprom binary: metric metadata reaches the receiver
//! (`metadata_config`), and an uplink outage during which edgeprom is stopped with SIGTERM and
//! then killed with SIGKILL leaves no gap and no foreign samples in VictoriaMetrics (Debian's
//! package), only re-sent duplicates from before the kill.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeprom::remote::proto::{snappy_decompress, MetricMetadata, WriteRequest, MAX_DECOMPRESSED};

use common::{free_port, request, start_vm, write_file, Server};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads one HTTP/1.1 request (head + Content-Length body) from `s`; None at end of stream.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Some(body);
            }
        }
        let mut chunk = [0u8; 64 << 10];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A remote write receiver that decodes every request and keeps the metadata it carried.
fn start_metadata_receiver() -> (u16, Arc<Mutex<Vec<MetricMetadata>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<MetricMetadata>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                while let Some(body) = read_request(&mut s, &mut buf) {
                    let status = match snappy_decompress(&body, MAX_DECOMPRESSED)
                        .ok()
                        .and_then(|raw| WriteRequest::decode(&raw).ok())
                    {
                        Some(req) => {
                            g.lock().unwrap().extend(req.metadata);
                            "204 No Content"
                        }
                        None => "400 Bad Request",
                    };
                    let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                    if s.write_all(resp.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, got)
}

#[test]
fn metadata_of_scraped_families_reaches_the_receiver() {
    let (rport, got) = start_metadata_receiver();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_file(
        dir.path(),
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: self\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\nremote_write:\n- url: http://127.0.0.1:{rport}/api/v1/write\n  metadata_config:\n    send_interval: 1s\n    max_samples_per_send: 20\n"
        ),
    );
    let s = Server::start_in_at(dir, port, &[&format!("--config.file={}", cfg.display())]);
    s.wait_for("metadata at the receiver", Duration::from_secs(20), |_| {
        got.lock()
            .unwrap()
            .iter()
            .any(|m| m.metric_family_name == "process_cpu_seconds_total")
    });
    // What was sent is what the scrape saw: compare with /api/v1/metadata.
    let (code, body) = s.get("/api/v1/metadata?metric=process_cpu_seconds_total");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let help = v["data"]["process_cpu_seconds_total"][0]["help"]
        .as_str()
        .unwrap()
        .to_string();
    let sent: Vec<MetricMetadata> = got.lock().unwrap().clone();
    let m = sent
        .iter()
        .find(|m| m.metric_family_name == "process_cpu_seconds_total")
        .unwrap();
    assert_eq!(m.kind, 1, "counter");
    assert_eq!(m.help, help);
    let gauge = sent
        .iter()
        .find(|m| m.metric_family_name == "process_resident_memory_bytes")
        .expect("gauge family sent");
    assert_eq!(gauge.kind, 2);
    // max_samples_per_send caps each request; the counter counts entries.
    let (_, metrics) = s.get("/metrics");
    let sent_total = metrics
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_metadata_total{"))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(sent_total >= 20.0, "metadata_total {sent_total}");
}

type Samples = BTreeMap<String, Vec<i64>>;

/// Raw sample timestamps (ms) of `metric{job="self"}` per series, from edgeprom's API.
fn edge_samples(addr: &str, metric: &str) -> Samples {
    let q = enc(&format!("{metric}{{job=\"self\"}}[10m]"));
    let (code, body) = request(addr, "GET", &format!("/api/v1/query?query={q}"), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Samples::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let ts = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64);
        out.entry(r["metric"]["__name__"].to_string())
            .or_default()
            .extend(ts);
    }
    out
}

/// Raw sample timestamps (ms) of `metric{job="self"}` per series, from VictoriaMetrics, with
/// duplicates kept.
fn vm_samples(addr: &str, metric: &str) -> Samples {
    let _ = request(addr, "GET", "/internal/force_flush", None);
    let sel = enc(&format!("{metric}{{job=\"self\"}}"));
    let (code, body) = request(addr, "GET", &format!("/api/v1/export?match[]={sel}"), None);
    assert_eq!(code, 200, "{body}");
    let mut out = Samples::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["timestamps"].as_array().unwrap().iter();
        out.entry(v["metric"]["__name__"].to_string())
            .or_default()
            .extend(ts.map(|t| t.as_i64().unwrap()));
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

fn highest_sent_ms(s: &Server) -> i64 {
    let (_, m) = s.get("/metrics");
    m.lines()
        .find(|l| l.starts_with("prometheus_remote_storage_queue_highest_sent_timestamp_seconds{"))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .map(|v| (v * 1000.0) as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn outage_with_sigterm_and_sigkill_leaves_no_gap_in_victoriametrics() {
    let tmp = tempfile::tempdir().unwrap();
    let vp = free_port();
    let vm_dir = tmp.path().join("vm");
    let vm_addr = format!("127.0.0.1:{vp}");
    let vm = start_vm(&vm_dir, vp);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_file(
        dir.path(),
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: self\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\nremote_write:\n- url: http://{vm_addr}/api/v1/write\n  queue_config:\n    batch_send_deadline: 200ms\n    min_backoff: 100ms\n    max_backoff: 500ms\n"
        ),
    );
    let args = [format!("--config.file={}", cfg.display())];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t_start = now_ms();

    let a = Server::start_in_at(dir, port, &args);
    std::thread::sleep(Duration::from_secs(6));
    vm.stop(); // the uplink goes away
    std::thread::sleep(Duration::from_secs(3));
    let (st, _, dir) = a.stop(Duration::from_secs(20)); // SIGTERM during the outage
    assert!(st.success(), "{st}");
    let mut b = Server::start_in_at(dir, port, &args);
    std::thread::sleep(Duration::from_secs(4));
    // SIGKILL during the outage: the unflushed tail is lost locally, and the checkpoint may
    // be older than what was acknowledged.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let t_kill = now_ms();
    let dir = std::mem::replace(&mut b.dir, tempfile::tempdir().unwrap());
    drop(b);
    let c = Server::start_in_at(dir, port, &args);
    std::thread::sleep(Duration::from_secs(2));
    let _vm = start_vm(&vm_dir, vp); // back

    // Everything scraped before `until` must arrive: wait until the queue has passed it
    // (samples are sent once older than the 15 s settle delay).
    let until = now_ms();
    c.wait_for(
        "the queue to send the backlog",
        Duration::from_secs(60),
        |s| highest_sent_ms(s) >= until,
    );
    let sent_until = highest_sent_ms(&c);
    for metric in ["up", "scrape_samples_scraped"] {
        let edge = edge_samples(&c.addr, metric);
        let vm = vm_samples(&vm_addr, metric);
        let edge: Vec<i64> = edge
            .values()
            .flatten()
            .copied()
            .filter(|&t| t >= t_start && t <= sent_until)
            .collect();
        let vm_all: Vec<i64> = vm
            .values()
            .flatten()
            .copied()
            .filter(|&t| t <= sent_until)
            .collect();
        assert!(edge.len() >= 8, "{metric}: too few samples: {edge:?}");
        let edge_set: BTreeSet<i64> = edge.iter().copied().collect();
        let vm_set: BTreeSet<i64> = vm_all.iter().copied().collect();
        let missing: Vec<_> = edge_set.difference(&vm_set).collect();
        let foreign: Vec<_> = vm_set.difference(&edge_set).collect();
        assert!(missing.is_empty(), "{metric}: not sent: {missing:?}");
        assert!(
            foreign.is_empty(),
            "{metric}: in VM, not in edgeprom: {foreign:?}"
        );
        // Duplicates only from re-sending after the kill (the checkpoint lagged behind).
        let mut dups = Vec::new();
        for w in vm_all.windows(2) {
            if w[0] == w[1] {
                dups.push(w[0]);
            }
        }
        eprintln!(
            "{metric}: {} samples, {} re-sent after SIGKILL",
            edge.len(),
            dups.len()
        );
        assert!(
            dups.iter().all(|&t| t <= t_kill),
            "{metric}: duplicates after the kill: {dups:?}"
        );
    }
    // The outage was retried, never dropped.
    let (_, m) = c.get("/metrics");
    let failed: f64 = m
        .lines()
        .filter(|l| l.starts_with("prometheus_remote_storage_samples_failed_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(failed, 0.0, "failed samples after an outage");
}
