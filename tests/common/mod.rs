//! Shared helpers for whole-binary tests: start edgeprom on a free loopback port, speak plain
//! HTTP/1.1 to it, and stop it. Each test gets its own temp dir.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running edgeprom process.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts edgeprom with `args` plus a listen address and a data dir inside a fresh temp dir
    /// (unless given), and waits until /-/healthy answers.
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args)
    }

    /// Like `start`, in a given directory (the process's working directory).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Server {
        Self::start_in_at(dir, free_port(), args)
    }

    /// Like `start_in`, on a given port (to restart a server where its config points).
    pub fn start_in_at(dir: tempfile::TempDir, port: u16, args: &[&str]) -> Server {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeprom"));
        cmd.current_dir(dir.path())
            .arg(format!("--web.listen-address={addr}"));
        if !args.iter().any(|a| a.starts_with("--storage.tsdb.path")) {
            cmd.arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ));
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("edgeprom.log")).unwrap())
            .spawn()
            .expect("start edgeprom");
        let s = Server { child, addr, dir };
        // Under a route prefix, health lives below it too.
        let prefix = args
            .iter()
            .find_map(|a| a.strip_prefix("--web.route-prefix="))
            .map(|p| p.trim_end_matches('/').to_string())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--web.external-url="))
                    .and_then(|u| u.split_once("://"))
                    .and_then(|(_, rest)| {
                        rest.find('/')
                            .map(|i| rest[i..].trim_end_matches('/').to_string())
                    })
            })
            .unwrap_or_default();
        s.wait_healthy(&format!("{prefix}/-/healthy"), Duration::from_secs(20));
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edgeprom.log")).unwrap_or_default()
    }

    fn wait_healthy(&self, path: &str, max: Duration) {
        let t = Instant::now();
        while t.elapsed() < max {
            if let Ok((200, _)) = try_request(&self.addr, "GET", path, None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("edgeprom did not become healthy; log:\n{}", self.log());
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, None)
    }

    pub fn post(&self, path: &str, form: Option<&str>) -> (u16, String) {
        request(&self.addr, "POST", path, form)
    }

    /// Waits until `f` holds or panics after `max`.
    pub fn wait_for(&self, what: &str, max: Duration, mut f: impl FnMut(&Server) -> bool) {
        let t = Instant::now();
        while t.elapsed() < max {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; log:\n{}", self.log());
    }

    pub fn signal(&self, sig: i32) {
        unsafe_kill(self.child.id(), sig);
    }

    /// Sends SIGTERM and waits for the exit status (panics after `max`).
    pub fn stop(
        mut self,
        max: Duration,
    ) -> (std::process::ExitStatus, Duration, tempfile::TempDir) {
        self.signal(15);
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let elapsed = t.elapsed();
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
                return (st, elapsed, dir);
            }
            if t.elapsed() > max {
                let _ = self.child.kill();
                panic!("edgeprom did not exit within {max:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    // Sending a signal through the kill(1) utility keeps the tests free of unsafe code.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn request(addr: &str, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
    try_request(addr, method, path, form).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = form.unwrap_or("");
    let ct = if form.is_some() {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    } else {
        ""
    };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}", body.len())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Value of an unlabeled (or exactly labeled) series in exposition text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let v = rest.strip_prefix(' ')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Runs the binary to completion with `args` in `dir`; returns (exit code, stdout, stderr).
pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeprom"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A Prometheus-compatible server (edgeprom or a peer such as Debian's `prometheus`) that
/// scrapes itself every second under job `job`; stopped on drop.
pub struct SelfScraping {
    pub child: Child,
    /// `http://127.0.0.1:PORT/`, with the trailing slash.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for SelfScraping {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` with Prometheus's flags and a self-scrape config, waits until `up{job}` is
/// stored, then waits `settle` more so range queries and rates have a few points.
pub fn start_self_scraping(program: &str, job: &str, settle: Duration) -> SelfScraping {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = write_file(
        dir.path(),
        "cfg.yml",
        &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"),
    );
    let child = Command::new(program)
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--config.file={}", cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} (Debian peers come from .ci/run): {e}"));
    let mut s = SelfScraping {
        child,
        base: format!("http://{addr}/"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = format!("\"job\":\"{job}\"");
    loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("{program} exited early: {st}");
        }
        if let Ok((200, body)) = try_request(&addr, "GET", "/api/v1/query?query=up", None) {
            if body.contains(&want) {
                std::thread::sleep(settle);
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{program} never stored up{{job={job:?}}}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A peer process (Prometheus, VictoriaMetrics, ...) killed on drop.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Peer {
    /// SIGTERM and wait, so the peer flushes what it acknowledged.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Waits until `GET http://addr/path` answers 200 (panics after 60 s).
pub fn wait_ready(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok((200, _)) = try_request(addr, "GET", path, None) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr}{path} did not become ready");
}

/// Starts Debian's VictoriaMetrics single-node on `127.0.0.1:port`, storing under `dir`.
pub fn start_vm(dir: &Path, port: u16) -> Peer {
    let child = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("victoria-metrics (Debian package) must be installed");
    let p = Peer(child);
    wait_ready(&format!("127.0.0.1:{port}"), "/health");
    p
}

/// Debian's `prometheus-alertmanager` (or `ALERTMANAGER_BIN`), if installed.
pub fn alertmanager_bin() -> Option<PathBuf> {
    let p = PathBuf::from(
        std::env::var("ALERTMANAGER_BIN")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into()),
    );
    p.exists().then_some(p)
}

/// A real Alertmanager on loopback (clustering off, one receiver that does nothing); killed
/// on drop.
pub struct Alertmanager {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts `bin` on 127.0.0.1:`port` and waits until /-/ready answers 200.
    pub fn start(bin: &Path, port: u16) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_file(
            dir.path(),
            "am.yml",
            "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n",
        );
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: a single instance is ready at once instead of waiting to settle.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = try_request(&addr, "GET", "/-/ready", None) {
                return am;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("alertmanager did not become ready on port {port}");
    }

    /// `host:port` for configs.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Alerts Alertmanager's API v2 lists (active, not resolved), with alertname `name`.
    pub fn alerts(&self, name: &str) -> Vec<serde_json::Value> {
        alertmanager_alerts(self.port, name)
    }
}

/// Alerts the Alertmanager on `port` lists with alertname `name` (empty if it is down).
pub fn alertmanager_alerts(port: u16, name: &str) -> Vec<serde_json::Value> {
    let Ok((200, body)) = try_request(&format!("127.0.0.1:{port}"), "GET", "/api/v2/alerts", None)
    else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}
