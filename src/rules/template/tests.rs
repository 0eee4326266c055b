//! Template cases: Prometheus's documented examples (template reference and template examples
//! pages) plus Go text/template behaviour rule authors rely on.

use std::sync::Arc;

use super::*;

fn data(value: f64, labels: &[(&str, &str)]) -> TemplateData {
    TemplateData {
        labels: Labels::from_pairs(labels.iter().copied()),
        external_labels: Labels::from_pairs([("cluster", "edge-1")]),
        external_url: "http://pi.local:9090/prom".to_string(),
        value,
    }
}

fn ctx() -> ExecContext {
    // A fake engine: `up` has two series; `some_metric` one; anything else is empty.
    let q: QueryFn = Arc::new(|q: &str, t: i64| {
        let s = |pairs: &[(&str, &str)], v: f64| (Labels::from_pairs(pairs.iter().copied()), v);
        Ok(match q {
            "up" => vec![
                s(
                    &[("__name__", "up"), ("instance", "b:9100"), ("job", "node")],
                    0.0,
                ),
                s(
                    &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
                    1.0,
                ),
            ],
            "some_metric{instance='someinstance'}" => {
                vec![s(&[("instance", "someinstance")], 1234567.0)]
            }
            "time()" => vec![(Labels::empty(), t as f64 / 1000.0)],
            "bad(" => return Err("1:5: parse error: unclosed left parenthesis".to_string()),
            _ => vec![],
        })
    });
    ExecContext {
        query: Some(q),
        t_ms: 1_435_065_584_128,
        external_url: "http://pi.local:9090/prom".to_string(),
    }
}

fn expand(text: &str, value: f64, labels: &[(&str, &str)]) -> Result<String, TemplateError> {
    Template::parse("__alert_T", text)?.expand(&data(value, labels), &ctx())
}

/// Template, `$value`, `$labels`, expected output.
type Case<'a> = (&'a str, f64, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn documented_examples_and_go_semantics() {
    let inst = &[("instance", "localhost:3000"), ("job", "node")][..];
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // Template reference: humanize family (Prometheus docs and template_test.go values).
        ("{{ humanize $value }}", 1234567.0, &[], "1.235M"),
        ("{{ humanize $value }}", 0.0, &[], "0"),
        ("{{ humanize $value }}", 0.00123, &[], "1.23m"),
        ("{{ humanize $value }}", -12345.0, &[], "-12.35k"),
        ("{{ humanize1024 $value }}", 1048576.0, &[], "1Mi"),
        ("{{ humanize1024 $value }}", 0.5, &[], "0.5"),
        ("{{ humanizeDuration $value }}", 899.99, &[], "14m 59s"),
        ("{{ humanizeDuration $value }}", 90061.0, &[], "1d 1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 1.5, &[], "1.5s"),
        ("{{ humanizeDuration $value }}", 0.1, &[], "100ms"),
        ("{{ humanizeDuration $value }}", 0.0, &[], "0s"),
        ("{{ humanizePercentage $value }}", 0.1234567, &[], "12.35%"),
        ("{{ $value | humanizeTimestamp }}", 1435065584.128, &[], "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ \"aa bb CC\" | title }}", 0.0, &[], "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}", 0.0, &[], "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}", 0.0, &[], "aa bb cc"),
        ("{{ match \"a+\" \"aa\" }}", 0.0, &[], "true"),
        ("{{ reReplaceAll \"localhost:(.*)\" \"my.domain:$1\" $labels.instance }}", 0.0, inst, "my.domain:3000"),
        ("{{ $labels.instance | stripPort }}", 0.0, inst, "localhost"),
        ("{{ \"foo.example.com:9100\" | stripDomain }}", 0.0, &[], "foo:9100"),
        ("{{ graphLink \"up == 0\" }}", 0.0, &[], "/graph?g0.expr=up+%3D%3D+0&g0.tab=0"),
        ("{{ tableLink \"up\" }}", 0.0, &[], "/graph?g0.expr=up&g0.tab=1"),
        ("{{ \"1h2m\" | parseDuration }}", 0.0, &[], "3720"),
        ("{{ 3723.5 | toDuration }}", 0.0, &[], "1h2m3.5s"),
        ("{{ 1435065584.128 | toTime }}", 0.0, &[], "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ pathPrefix }}|{{ externalURL }}", 0.0, &[], "/prom|http://pi.local:9090/prom"),
        // Variables Prometheus predefines.
        ("{{ $labels.instance }} of {{ $labels.job }} is {{ $value }}", 0.5, inst, "localhost:3000 of node is 0.5"),
        ("{{ .Labels.job }}/{{ .Value }}", 1234567.0, inst, "node/1.234567e+06"),
        ("{{ $externalLabels.cluster }} {{ $externalURL }}", 0.0, &[], "edge-1 http://pi.local:9090/prom"),
        ("[{{ $labels.missing }}]", 0.0, &[], "[]"),
        // Template examples page: queries.
        ("{{ with query \"some_metric{instance='someinstance'}\" }}{{ . | first | value | humanize }}{{ end }}", 0.0, &[], "1.235M"),
        ("{{ range query \"up\" }}{{ .Labels.instance }} {{ .Value }};{{ end }}", 0.0, &[], "b:9100 0;a:9100 1;"),
        ("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }};{{ end }}", 0.0, &[], "a:9100;b:9100;"),
        ("{{ query \"up\" | first | label \"job\" }}", 0.0, &[], "node"),
        ("{{ with query \"nothing\" }}yes{{ else }}none{{ end }}", 0.0, &[], "none"),
        ("{{ query \"time()\" | first | value | humanizeTimestamp }}", 0.0, &[], "2015-06-23 13:19:44.128 +0000 UTC"),
        // Control structures, pipelines, printf, comparisons, trimming, comments.
        ("{{ if gt $value 80.0 }}hot{{ else if gt $value 50.0 }}warm{{ else }}cold{{ end }}", 60.0, &[], "warm"),
        ("{{ if and $labels.job (eq $labels.job \"node\" \"x\") }}y{{ end }}", 0.0, inst, "y"),
        ("{{ if not $labels.nope }}absent{{ end }}", 0.0, &[], "absent"),
        ("{{ printf \"%.2f\" $value }}", 2.0 / 3.0, &[], "0.67"),
        ("{{ printf \"%s=%d %5.1f|%-4s|%03d %q %v %g\" \"a\" 7 3.14159 \"x\" 5 \"q\" true 1e21 }}", 0.0, &[], "a=7   3.1|x   |005 \"q\" true 1e+21"),
        ("{{ printf \"%d\" 1.5 }}", 0.0, &[], "%!d(float64=1.5)"),
        ("{{ printf \"%s %s\" \"a\" }}", 0.0, &[], "a %!s(MISSING)"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", 0.0, &[], "2"),
        ("{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}", 0.0, inst, "instance=localhost:3000,job=node,"),
        ("{{ range $i, $s := query \"up\" }}{{ $i }}{{ end }}", 0.0, &[], "01"),
        ("a  {{- 1 -}}  b", 0.0, &[], "a1b"),
        ("a {{/* a comment */}}b{{- /* trimmed */ -}} c", 0.0, &[], "a bc"),
        ("{{ len $labels }} {{ index $labels \"job\" }} {{ len \"abc\" }}", 0.0, inst, "2 node 3"),
        ("{{ print 1 2 \"x\" 3 }}|{{ println \"a\" 1 }}", 0.0, &[], "1 2x3|a 1\n"),
        ("{{ html \"<b>&\" }} {{ urlquery \"a b&c\" }} {{ js \"it's\" }}", 0.0, &[], "&lt;b&gt;&amp; a+b%26c it\\'s"),
        ("{{ slice \"abcdef\" 1 3 }}", 0.0, &[], "bc"),
        ("{{ (query \"up\" | first).Labels.instance }}", 0.0, &[], "b:9100"),
        ("{{ `raw {{ text` }}", 0.0, &[], "raw {{ text"),
        ("{{ args 1 \"x\" }}", 0.0, &[], "map[arg0:1 arg1:x]"),
        ("{{ $labels }}", 0.0, inst, "map[instance:localhost:3000 job:node]"),
        ("{{ -1.5 }} {{ 0x1F }} {{ 'a' }} {{ nil | not }}", 0.0, &[], "-1.5 31 97 true"),
        ("line1\n{{ $value | humanize }}\n", 1e-9, &[], "line1\n1n\n"),
    ];
    for &(tmpl, value, labels, want) in cases {
        match expand(tmpl, value, labels) {
            Ok(got) => assert_eq!(got, want, "template {tmpl:?}"),
            Err(e) => panic!("template {tmpl:?}: {e}"),
        }
    }
}

#[test]
fn parse_errors_like_go() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("{{ foo $labels.x }}", "template: __alert_T:1: function \"foo\" not defined"),
        ("{{ $labels.x", "template: __alert_T:1: unclosed action"),
        ("a\n{{ if true }}x", "template: __alert_T:2: unexpected EOF"),
        ("{{ end }}", "template: __alert_T:1: unexpected {{end}}"),
        ("{{ \"abc }}", "template: __alert_T:1: unterminated quoted string"),
        ("{{ template \"x\" }}", "template: __alert_T:1: {{template}} is not supported"),
        ("{{ if true }}{{ else }}{{ else }}{{ end }}", "template: __alert_T:1: expected end; found {{else}}"),
        ("{{ 1 | }}", "template: __alert_T:1: missing command"),
        ("{{ $nope }}", "template: __alert_T:1: undefined variable \"$nope\""),
        ("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", "template: __alert_T:1: undefined variable \"$x\""),
        ("{{ $y = 1 }}", "template: __alert_T:1: undefined variable \"$y\""),
    ];
    for &(tmpl, want) in cases {
        match Template::parse("__alert_T", tmpl) {
            Ok(_) => panic!("{tmpl:?} parsed"),
            Err(e) => assert_eq!(e.to_string(), want, "{tmpl:?}"),
        }
    }
}

#[test]
fn execution_errors_name_the_function() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("{{ query \"nothing\" | first }}", "error calling first: first() called on vector with no elements"),
        ("{{ query \"bad(\" }}", "error calling query: 1:5: parse error"),
        ("{{ humanize \"abc\" }}", "error calling humanize: strconv.ParseFloat"),
        ("{{ gt $value 1 }}", "incompatible types for comparison"),
        ("{{ $value 1 }}", "can't give argument to non-function"),
        ("{{ .Nope }}", "can't evaluate field Nope"),
    ];
    for &(tmpl, want) in cases {
        match expand(tmpl, 1.0, &[]) {
            Ok(s) => panic!("{tmpl:?} expanded to {s:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{tmpl:?}: {e}"),
        }
    }
}
