//! Table-driven cases for both formats.

use super::*;

/// A flattened entry for comparisons.
#[derive(Debug, PartialEq)]
enum E {
    S(String, Vec<(String, String)>, String, Option<i64>),
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
    Comment(String),
}

fn flat(body: &str, f: Format) -> Result<Vec<E>, ParseError> {
    let mut out = Vec::new();
    for e in Parser::new(body.as_bytes(), f) {
        out.push(match e? {
            Entry::Series(s) => E::S(
                s.name.to_string(),
                s.labels()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect(),
                // Format the value bits-insensitively so NaN compares equal.
                format!("{:?}", s.value),
                s.timestamp_ms,
            ),
            Entry::Help { metric, text } => E::Help(metric.into(), text.into_owned()),
            Entry::Type { metric, kind } => E::Type(metric.into(), kind),
            Entry::Unit { metric, unit } => E::Unit(metric.into(), unit.into()),
            Entry::Comment(c) => E::Comment(String::from_utf8_lossy(c).into_owned()),
        });
    }
    Ok(out)
}

fn s(name: &str, labels: &[(&str, &str)], v: &str, ts: Option<i64>) -> E {
    E::S(
        name.into(),
        labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        v.into(),
        ts,
    )
}

#[test]
fn text_format_valid_bodies() {
    let cases: Vec<(&str, &str, Vec<E>)> = vec![
        ("empty", "", vec![]),
        ("blank lines", "\n\n  \n", vec![]),
        ("plain", "foo 1\n", vec![s("foo", &[], "1.0", None)]),
        (
            "no final newline",
            "foo 1",
            vec![s("foo", &[], "1.0", None)],
        ),
        (
            "labels and timestamp",
            "foo{a=\"b\",c=\"d\"} 2.5 1700000000000\n",
            vec![s("foo", &[("a", "b"), ("c", "d")], "2.5", Some(1700000000000))],
        ),
        (
            "tabs, spaces, trailing comma",
            "\t foo { a = \"b\" , } \t -3e2 \t -5 \t\n",
            vec![s("foo", &[("a", "b")], "-300.0", Some(-5))],
        ),
        (
            "special values",
            "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\n",
            vec![
                s("a", &[], "NaN", None),
                s("b", &[], "inf", None),
                s("c", &[], "-inf", None),
                s("d", &[], "inf", None),
                s("e", &[], "NaN", None),
            ],
        ),
        (
            "escapes in label values",
            r#"m{a="x\"y",b="p\\q",c="l\nm",d="\t"} 1"#,
            vec![s(
                "m",
                &[("a", "x\"y"), ("b", "p\\q"), ("c", "l\nm"), ("d", "\\t")],
                "1.0",
                None,
            )],
        ),
        (
            "utf-8 label value",
            "m{a=\"héllo ✓\"} 1\n",
            vec![s("m", &[("a", "héllo ✓")], "1.0", None)],
        ),
        (
            "empty braces and colon names",
            "a:b:c{} 7\n",
            vec![s("a:b:c", &[], "7.0", None)],
        ),
        (
            "help, type, comments",
            "# HELP foo Some \\\\ help\\n text\n# TYPE foo counter\n# just a comment\n#HELP x\nfoo 1\n",
            vec![
                E::Help("foo".into(), "Some \\ help\n text".into()),
                E::Type("foo".into(), MetricType::Counter),
                E::Comment(" just a comment".into()),
                E::Comment("HELP x".into()),
                s("foo", &[], "1.0", None),
            ],
        ),
        (
            "empty help text",
            "# HELP foo \n",
            vec![E::Help("foo".into(), "".into())],
        ),
        (
            "untyped maps to unknown",
            "# TYPE foo untyped\n",
            vec![E::Type("foo".into(), MetricType::Unknown)],
        ),
        (
            "histogram as plain series",
            "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
            vec![
                E::Type("h".into(), MetricType::Histogram),
                s("h_bucket", &[("le", "0.5")], "1.0", None),
                s("h_bucket", &[("le", "+Inf")], "2.0", None),
                s("h_sum", &[], "3.0", None),
                s("h_count", &[], "2.0", None),
            ],
        ),
        (
            "# EOF is just a comment in the text format",
            "a 1\n# EOF\n",
            vec![s("a", &[], "1.0", None), E::Comment(" EOF".into())],
        ),
        (
            "big integer beyond fast path",
            "a 12345678901234567890\n",
            vec![s("a", &[], "1.2345678901234567e19", None)],
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(flat(body, Format::Text), Ok(want), "case {name}");
    }
}

#[test]
fn text_format_errors() {
    let cases: Vec<(&str, &str, usize, ParseErrorKind, &str)> = vec![
        (
            "no value",
            "foo\n",
            1,
            ParseErrorKind::Syntax,
            "expected value after metric",
        ),
        (
            "bad value",
            "a 1\nfoo bar\n",
            2,
            ParseErrorKind::InvalidNumber,
            "ParseFloat",
        ),
        (
            "hex float",
            "foo 0x1p3\n",
            1,
            ParseErrorKind::InvalidNumber,
            "ParseFloat",
        ),
        (
            "underscore",
            "foo 1_000\n",
            1,
            ParseErrorKind::InvalidNumber,
            "ParseFloat",
        ),
        (
            "bad timestamp",
            "foo 1 1.5\n",
            1,
            ParseErrorKind::InvalidNumber,
            "ParseInt",
        ),
        (
            "extra token",
            "foo 1 2 3\n",
            1,
            ParseErrorKind::Syntax,
            "expected next entry after timestamp",
        ),
        (
            "bad start",
            "{a=\"b\"} 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected a valid start token",
        ),
        (
            "digit start",
            "1foo 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected a valid start token",
        ),
        (
            "unterminated labels",
            "foo{a=\"b\" 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected label name",
        ),
        (
            "unterminated value",
            "foo{a=\"b} 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected label value",
        ),
        (
            "no equal",
            "foo{a\"b\"} 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected equal",
        ),
        (
            "unquoted value",
            "foo{a=b} 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected label value",
        ),
        (
            "label name digit",
            "foo{1a=\"b\"} 1\n",
            1,
            ParseErrorKind::Syntax,
            "expected label name",
        ),
        (
            "bad type",
            "# TYPE foo bar\n",
            1,
            ParseErrorKind::InvalidType,
            "invalid metric type \"bar\"",
        ),
        (
            "help without text",
            "# HELP foo\n",
            1,
            ParseErrorKind::Syntax,
            "expected text in HELP",
        ),
        (
            "help without name",
            "# HELP  \n",
            1,
            ParseErrorKind::Syntax,
            "expected metric name after HELP",
        ),
    ];
    for (name, body, line, kind, msg) in cases {
        let err = flat(body, Format::Text).expect_err(name);
        assert_eq!(err.line, line, "case {name}: {err}");
        assert_eq!(err.kind, kind, "case {name}: {err}");
        assert!(err.msg.contains(msg), "case {name}: {err}");
    }
    // Invalid UTF-8 in a label value and in help text.
    let err = Parser::new(b"foo{a=\"\xff\"} 1\n", Format::Text)
        .next()
        .and_then(|r| r.err())
        .expect("error");
    assert_eq!(err.kind, ParseErrorKind::InvalidUtf8);
    let err = Parser::new(b"# HELP foo \xfe\n", Format::Text)
        .next()
        .and_then(|r| r.err())
        .expect("error");
    assert_eq!(err.kind, ParseErrorKind::InvalidUtf8);
}

#[test]
fn openmetrics_valid_bodies() {
    let cases: Vec<(&str, &str, Vec<E>)> = vec![
        ("only eof", "# EOF\n", vec![]),
        ("eof without newline", "# EOF", vec![]),
        (
            "full family",
            "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Some \\\"text\\\".\nfoo_seconds_total{a=\"b\"} 1.5 1520879607.789\nfoo_seconds_created 1520872607.123\n# EOF\n",
            vec![
                E::Type("foo_seconds".into(), MetricType::Counter),
                E::Unit("foo_seconds".into(), "seconds".into()),
                E::Help("foo_seconds".into(), "Some \"text\".".into()),
                s("foo_seconds_total", &[("a", "b")], "1.5", Some(1520879607789)),
                s("foo_seconds_created", &[], "1520872607.123", None),
            ],
        ),
        (
            "exemplars skipped",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2 # {trace_id=\"abc\"} 0.5 123.4\nh_bucket{le=\"+Inf\"} 3 1.0 # {} 2\n# EOF\n",
            vec![
                E::Type("h".into(), MetricType::Histogram),
                s("h_bucket", &[("le", "1")], "2.0", None),
                s("h_bucket", &[("le", "+Inf")], "3.0", Some(1000)),
            ],
        ),
        (
            "all types",
            "# TYPE a gaugehistogram\n# TYPE b info\n# TYPE c stateset\n# TYPE d unknown\n# EOF\n",
            vec![
                E::Type("a".into(), MetricType::GaugeHistogram),
                E::Type("b".into(), MetricType::Info),
                E::Type("c".into(), MetricType::Stateset),
                E::Type("d".into(), MetricType::Unknown),
            ],
        ),
        (
            "negative fractional timestamp truncates toward zero",
            "a 1 -0.0015\n# EOF\n",
            vec![s("a", &[], "1.0", Some(-1))],
        ),
        ("empty unit", "# UNIT a \n# EOF\n", vec![E::Unit("a".into(), "".into())]),
    ];
    for (name, body, want) in cases {
        assert_eq!(flat(body, Format::OpenMetrics), Ok(want), "case {name}");
    }
}

#[test]
fn openmetrics_errors() {
    let cases: Vec<(&str, &str, usize, ParseErrorKind, &str)> = vec![
        (
            "missing eof",
            "a 1\n",
            2,
            ParseErrorKind::MissingEof,
            "data does not end with # EOF",
        ),
        (
            "missing eof, no newline",
            "a 1",
            1,
            ParseErrorKind::MissingEof,
            "data does not end with # EOF",
        ),
        (
            "data after eof",
            "# EOF\na 1\n",
            1,
            ParseErrorKind::DataAfterEof,
            "unexpected data after # EOF",
        ),
        (
            "blank line",
            "a 1\n\n# EOF\n",
            2,
            ParseErrorKind::Syntax,
            "expected a valid start token",
        ),
        (
            "two spaces",
            "a  1\n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected value after metric",
        ),
        (
            "free comment",
            "# hello\n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected a valid start token",
        ),
        (
            "space in labels",
            "a{b=\"c\", d=\"e\"} 1\n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected label name",
        ),
        (
            "no comma",
            "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected comma or brace close",
        ),
        (
            "bad unit",
            "# UNIT foo_bytes seconds\n# EOF\n",
            1,
            ParseErrorKind::InvalidUnit,
            "not a suffix",
        ),
        (
            "untyped is text-only",
            "# TYPE a untyped\n# EOF\n",
            1,
            ParseErrorKind::InvalidType,
            "invalid metric type",
        ),
        (
            "inf timestamp",
            "a 1 +Inf\n# EOF\n",
            1,
            ParseErrorKind::InvalidNumber,
            "invalid timestamp",
        ),
        (
            "bad exemplar",
            "a 1 # x\n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected label name",
        ),
        (
            "trailing space",
            "a 1 \n# EOF\n",
            1,
            ParseErrorKind::Syntax,
            "expected timestamp",
        ),
    ];
    for (name, body, line, kind, msg) in cases {
        let err = flat(body, Format::OpenMetrics).expect_err(name);
        assert_eq!(err.line, line, "case {name}: {err}");
        assert_eq!(err.kind, kind, "case {name}: {err}");
        assert!(err.msg.contains(msg), "case {name}: {err}");
    }
}

#[test]
fn series_bytes_are_the_name_and_labels_as_written() {
    let body = b"foo{a=\"b\"} 1 5\nbar 2\n  baz { x=\"y\" } 3\n";
    let got: Vec<&[u8]> = Parser::new(body, Format::Text)
        .filter_map(|e| match e {
            Ok(Entry::Series(s)) => Some(s.series),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![&b"foo{a=\"b\"}"[..], &b"bar"[..], &b"baz { x=\"y\" }"[..]]
    );
}

#[test]
fn parser_stops_after_first_error() {
    let mut p = Parser::new(b"a 1\nb x\nc 3\n", Format::Text);
    assert!(matches!(p.next(), Some(Ok(_))));
    assert!(matches!(p.next(), Some(Err(_))));
    assert!(p.next().is_none());
}

#[test]
fn content_type_negotiation() {
    let cases = [
        ("text/plain; version=0.0.4; charset=utf-8", Format::Text),
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::OpenMetrics,
        ),
        ("Application/OpenMetrics-Text", Format::OpenMetrics),
        ("", Format::Text),
        ("application/json", Format::Text),
    ];
    for (ct, want) in cases {
        assert_eq!(Format::from_content_type(ct), want, "{ct}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap in-test sweep; the cargo-fuzz target in fuzz/ goes much further.
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::default();
    let strat = proptest::collection::vec(
        prop_oneof![
            Just(b'{'),
            Just(b'}'),
            Just(b'"'),
            Just(b'\\'),
            Just(b'='),
            Just(b','),
            Just(b' '),
            Just(b'\n'),
            Just(b'#'),
            Just(b'a'),
            Just(b'1'),
            any::<u8>()
        ],
        0..64,
    );
    runner
        .run(&strat, |bytes| {
            for f in [Format::Text, Format::OpenMetrics] {
                for e in Parser::new(&bytes, f) {
                    if let Ok(Entry::Series(s)) = e {
                        let _ = s.labels().count();
                    }
                }
            }
            Ok(())
        })
        .expect("no panic");
}

#[test]
fn seed_corpus_parses_completely() {
    // The fuzz seeds are real or carefully written bodies: each must parse without error, so
    // the fuzzer starts from valid inputs and this test catches regressions on real data.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/textparse");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let body = std::fs::read(&path).expect("read");
        let format = if path.extension().is_some_and(|e| e == "om") {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let mut series = 0;
        for e in Parser::new(&body, format) {
            match e {
                Ok(Entry::Series(s)) => {
                    series += 1;
                    assert!(s.labels().all(|(n, _)| !n.is_empty()));
                }
                Ok(_) => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        assert!(series > 0, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 3);
}

/// Parses `body` in streaming mode, cut into pieces after each `cut` line end.
fn flat_partial(body: &str, cut: usize) -> (Result<Vec<String>, ParseError>, bool) {
    let mut out = Vec::new();
    let mut eof = false;
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    for piece in lines.chunks(cut.max(1)) {
        let text = piece.concat();
        let mut p = Parser::new_partial(text.as_bytes(), Format::OpenMetrics);
        for e in p.by_ref() {
            match e {
                Ok(Entry::Series(s)) => out.push(format!(
                    "{} {:?} {:?} {:?}",
                    s.name,
                    s.labels()
                        .map(|(n, v)| (n.to_string(), v.into_owned()))
                        .collect::<Vec<_>>(),
                    s.value,
                    s.timestamp_ms
                )),
                Ok(_) => {}
                Err(e) => return (Err(e), eof),
            }
        }
        eof |= p.saw_eof();
    }
    (Ok(out), eof)
}

#[test]
fn streaming_mode_parses_pieces_like_the_whole_body() {
    // Repeated series (the fast path), a series that is a prefix of the next, escapes,
    // exemplars, no labels, and an error on a repeated series' value.
    let cases: Vec<(&str, &str, bool)> = vec![
        (
            "repeats",
            "# TYPE a gauge\na{x=\"1\"} 1 1\na{x=\"1\"} 2 2\na{x=\"1\"} 3 3 # {t=\"1\"} 1\na{x=\"10\"} 4 4\na 5 5\na 6 6\nab 7 7\n# EOF\n",
            true,
        ),
        (
            "escapes",
            "b{p=\"x\\\"y\\n\"} 1 1.5\nb{p=\"x\\\"y\\n\"} 2 2.5\n# EOF\n",
            true,
        ),
        ("no eof yet", "a 1 1\na 2 2\n", false),
        ("bad repeated value", "a{x=\"1\"} 1 1\na{x=\"1\"} zz 2\n# EOF\n", false),
        ("bad repeated timestamp", "a 1 1\na 1 1 1\n# EOF\n", false),
        ("repeat without value", "a 1 1\na \n# EOF\n", false),
    ];
    for (name, body, want_eof) in cases {
        let whole = flat(body, Format::OpenMetrics);
        for cut in [1, 2, 3, 100] {
            let (got, eof) = flat_partial(body, cut);
            match (&whole, &got) {
                (Ok(w), Ok(g)) => {
                    let series = w.iter().filter(|e| matches!(e, E::S(..))).count();
                    assert_eq!(series, g.len(), "case {name} cut {cut}");
                    assert_eq!(eof, want_eof, "case {name} cut {cut}");
                }
                // A body without `# EOF` is an error only for the whole-body parser.
                (Err(w), Ok(_)) => {
                    assert_eq!(w.kind, ParseErrorKind::MissingEof, "case {name}");
                    assert!(!eof, "case {name}");
                }
                (Err(w), Err(g)) => {
                    assert_eq!((w.kind, &w.msg), (g.kind, &g.msg), "case {name} cut {cut}")
                }
                (Ok(_), Err(g)) => panic!("case {name} cut {cut}: {g:?}"),
            }
        }
        if let (Ok(w), (Ok(g), _)) = (&whole, flat_partial(body, 100)) {
            let w: Vec<String> = w
                .iter()
                .filter_map(|e| match e {
                    E::S(n, l, v, t) => Some(format!("{n} {l:?} {v} {t:?}")),
                    _ => None,
                })
                .collect();
            assert_eq!(w, g, "case {name}");
        }
    }
}

#[test]
fn fast_decimal_path_gives_the_full_parsers_bits() {
    let table = [
        "0",
        "-0",
        "1",
        "-1",
        "0.1",
        "0.3",
        "-2.5",
        "123456789012345",
        "1234567890.12345",
        "0.000000000000001",
        "5.",
        ".5",
        "-.5",
        "1795887315",
        "44821",
        "9007199254740993",
        "1.7976931348623157",
        "1e3",
        "+1",
        "1.2.3",
        "-",
        ".",
        "",
        "12a",
    ];
    let mut cases: Vec<String> = table.iter().map(|s| s.to_string()).collect();
    // A deterministic spread of decimals with 0..=15 digits and 0..=15 fraction digits.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let digits = (x % 16) as usize;
        let m = (x >> 8) % 10u64.pow(digits as u32).max(1);
        let s = format!("{m:0digits$}");
        let at = ((x >> 40) as usize) % (s.len() + 1);
        let neg = if x & 1 == 1 { "-" } else { "" };
        cases.push(format!("{neg}{}.{}", &s[..at], &s[at..]));
        cases.push(format!("{neg}{s}"));
    }
    for c in &cases {
        let want = c.parse::<f64>().ok().map(f64::to_bits);
        let got = parse_float(c.as_bytes()).map(f64::to_bits);
        if want.is_some() || got.is_some() {
            assert_eq!(got, want, "{c:?}");
        }
        if let Some(v) = fast_decimal(c.as_bytes()) {
            assert_eq!(Some(v.to_bits()), want, "fast path {c:?}");
        }
    }
}
