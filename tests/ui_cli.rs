//! `edgeprom query` against real servers over loopback: Debian's Prometheus 2.42 (the reference
//! API) and the edgeprom binary, both scraping themselves every second.

use std::process::ExitCode;
use std::time::Duration;

mod common;

use clap::Parser;
use edgeprom::cli::query;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    q: query::QueryCmd,
}

/// The server under test scraping itself as job `self`; a few more scrapes for the range
/// query and its chart.
fn start(program: &str) -> common::SelfScraping {
    common::start_self_scraping(program, "self", Duration::from_millis(3100))
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

fn check_against(server: &common::SelfScraping) {
    let base = server.base.trim_end_matches('/');
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
    let port = common::free_port();
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
