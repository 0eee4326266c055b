//! `edgeprom query` against real servers over loopback: Debian's Prometheus 2.42 (the reference
//! API) and the edgeprom binary, both scraping themselves every second.

use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use edgeprom::cli::{http, query};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    q: query::QueryCmd,
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(program: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let cfg = dir.path().join("cfg.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      \
             - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("config");
    let child = Command::new(program)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--config.file={}", cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let mut s = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("{program} exited: {st}");
        }
        let r = http::get(
            &format!("{}/api/v1/query?query=up", s.base),
            Duration::from_secs(2),
        );
        if r.is_ok_and(|r| r.text().contains("\"job\":\"self\"")) {
            // A few more scrapes for the range query and its chart.
            std::thread::sleep(Duration::from_millis(3100));
            return s;
        }
        assert!(Instant::now() < deadline, "{program} never stored up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(args: &[&str]) -> (ExitCode, String, String) {
    let mut argv = vec!["query"];
    argv.extend_from_slice(args);
    let w = Wrapper::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = query::run_with(w.q, &mut out, &mut err, false);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn check_against(server: &Server) {
    let base = server.base.as_str();
    // (args, whether it succeeds, text stdout or stderr must contain)
    let cases: &[(&[&str], bool, &[&str])] = &[
        (
            &["instant", "--server", base, "up"],
            true,
            &["NAME", "instance", "job", "VALUE", "up ", "self", " 1\n"],
        ),
        (
            &["instant", "--server", base, "1+1"],
            true,
            &["scalar", "2"],
        ),
        (
            &["instant", "--server", base, "--time", "now-1h", "up"],
            true,
            &["Empty query result."],
        ),
        (
            &["instant", "--server", base, "-o", "json", "up"],
            true,
            &["\"resultType\":\"vector\""],
        ),
        (
            &[
                "range", "--server", base, "--start", "now-1m", "--step", "1s", "up",
            ],
            true,
            &["┤", "└", "SERIES", "MIN", "up{instance="],
        ),
        (
            &[
                "range",
                "--server",
                base,
                "--start",
                "now-1m",
                "--no-chart",
                "--values",
                "up",
            ],
            true,
            &["POINTS", "  1\n"],
        ),
        (
            &["series", "--server", base, "up"],
            true,
            &["up{instance=\"127.0.0.1:", "job=\"self\"}"],
        ),
        (
            &["labels", "--server", base],
            true,
            &["__name__\n", "instance\n", "job\n"],
        ),
        (
            &["labels", "--server", base, "--match", "up", "job"],
            true,
            &["self\n"],
        ),
        (
            &["instant", "--server", base, "sum(up"],
            false,
            &["400", "bad_data"],
        ),
        (
            &["range", "--server", base, "--step", "0", "up"],
            false,
            &["invalid step"],
        ),
        (
            &["instant", "--server", base, "--time", "yesterday", "up"],
            false,
            &["invalid time"],
        ),
    ];
    for (args, ok, wants) in cases {
        let (code, out, err) = run(args);
        assert_eq!(
            code == ExitCode::SUCCESS,
            *ok,
            "{args:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        let text = if *ok { &out } else { &err };
        for w in *wants {
            assert!(text.contains(w), "{args:?}: {w:?} missing in\n{text}");
        }
    }
}

#[test]
fn query_client_works_against_prometheus() {
    check_against(&start("prometheus"));
}

#[test]
fn query_client_works_against_edgeprom() {
    check_against(&start(env!("CARGO_BIN_EXE_edgeprom")));
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = run(&["instant", "--server", &url, "--timeout", "2", "up"]);
    assert_eq!(code, ExitCode::FAILURE);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    // https to a port that does not answer: a connection error naming the address.
    let (code, _, err) = run(&[
        "instant",
        "--server",
        &format!("https://127.0.0.1:{port}"),
        "--insecure-skip-verify",
        "up",
    ]);
    assert_eq!(code, ExitCode::FAILURE);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
