//! `check rules` on a generated rule file (200 groups x 10 rules, half alerting with templated
//! labels and annotations): edgeprom's validation against `promtool check rules` on the same
//! file, medians of 7 runs each, in one command:
//!
//! ```text
//! cargo bench --bench rules_check
//! ```
//!
//! Caveats, printed with the figures: promtool is timed as a process (start-up included, measured
//! separately on an empty file and also reported), and edgeprom's expression check here is the
//! injected `ParseFn`, a stand-in that accepts everything until the PromQL parser is wired, so
//! promtool does strictly more work per rule.
//! Also times template expansion of one typical annotation (no peer: Prometheus has no CLI for it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeprom::model::Labels;
use edgeprom::rules::template::{ExecContext, Template, TemplateData};
use edgeprom::rules::{check_rules_files, ParseFn};

fn rule_file(groups: usize, rules: usize) -> String {
    let mut s = String::from("groups:\n");
    for g in 0..groups {
        s.push_str(&format!(
            "  - name: group_{g}\n    interval: 30s\n    rules:\n"
        ));
        for r in 0..rules {
            if r % 2 == 0 {
                s.push_str(&format!(
                    "      - record: job:metric_{r}:rate5m\n        expr: sum by (job) (rate(metric_{r}_total[5m]))\n"
                ));
            } else {
                s.push_str(&format!(
                    "      - alert: Alert{g}_{r}\n        expr: metric_{r} > 100\n        for: 5m\n        labels:\n          severity: page\n          team: \"{{{{ $labels.team }}}}\"\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} of {{{{ $labels.job }}}} is at {{{{ $value | humanize }}}}\"\n          description: \"{{{{ if gt $value 200.0 }}}}very {{{{ end }}}}high since {{{{ humanizeTimestamp 1700000000 }}}}\"\n"
                ));
            }
        }
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_n(n: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

#[allow(clippy::print_stdout)]
fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rules.yml");
    let empty = dir.path().join("empty.yml");
    std::fs::write(&file, rule_file(200, 10)).expect("write rules");
    std::fs::write(&empty, "").expect("write empty");
    let parse: ParseFn = Arc::new(|_: &str| Ok(()));
    let files: Vec<PathBuf> = vec![file.clone()];
    let (out, code) = check_rules_files(&files, &parse);
    assert_eq!(code, 0, "{out}");
    let ours = time_n(7, || {
        let _ = check_rules_files(&files, &parse);
    });
    println!("edgeprom check_rules_files (2000 rules): median {ours:?}");

    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let run = |p: &PathBuf| {
        let o = Command::new(&promtool)
            .args(["check", "rules"])
            .arg(p)
            .output();
        matches!(o, Ok(ref o) if o.status.success())
    };
    if run(&file) {
        let peer = time_n(7, || {
            run(&file);
        });
        let startup = time_n(7, || {
            run(&empty);
        });
        let work = peer.saturating_sub(startup);
        println!("promtool check rules (2000 rules): median {peer:?} (empty file: {startup:?}, difference {work:?})");
        println!(
            "ratio promtool/edgeprom: {:.1}x whole process, {:.1}x without promtool start-up",
            peer.as_secs_f64() / ours.as_secs_f64(),
            work.as_secs_f64() / ours.as_secs_f64()
        );
        println!(
            "note: edgeprom's ParseFn here accepts every expression (no PromQL parser wired yet)"
        );
    } else {
        println!("promtool not available: no peer figure");
    }

    let t = Template::parse(
        "__alert_X",
        "{{ $labels.instance }} of {{ $labels.job }} is at {{ $value | humanize }}",
    )
    .expect("template");
    let data = TemplateData {
        labels: Labels::from_pairs([("instance", "pi-1:9100"), ("job", "node")]),
        value: 1234567.0,
        ..Default::default()
    };
    let ctx = ExecContext::default();
    let n = 20_000;
    let per = time_n(5, || {
        for _ in 0..n {
            let _ = t.expand(&data, &ctx);
        }
    }) / n;
    println!("template expansion (3 actions, humanize): median {per:?} per expansion");
}
