//! The rule-file loader (`rule_files:`, `check rules`) on arbitrary text, with expressions
//! checked by the real PromQL parser; every template of a loaded alerting rule is then expanded
//! with sample labels and value. Errors are fine; panics are not.
#![no_main]

use edgeprom::model::Labels;
use edgeprom::rules::file::{parse_rules, RuleKind};
use edgeprom::rules::template::{ExecContext, Template, TemplateData};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static PARSE: OnceLock<edgeprom::rules::ParseFn> = OnceLock::new();
    let parse = PARSE.get_or_init(edgeprom::check::promql_parse_fn);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(groups) = parse_rules("fuzz.yml", text, parse) else {
        return;
    };
    let tdata = TemplateData {
        labels: Labels::from_pairs([("instance", "node-0:9100"), ("job", "node")]),
        external_labels: Labels::from_pairs([("site", "berlin")]),
        external_url: "http://127.0.0.1:9090".into(),
        value: 0.25,
    };
    let ctx = ExecContext {
        t_ms: 1_700_000_000_000,
        external_url: "http://127.0.0.1:9090".into(),
        ..ExecContext::default()
    };
    for g in &groups {
        for r in &g.rules {
            if r.kind != RuleKind::Alerting {
                continue;
            }
            for (k, v) in r.labels.iter().chain(r.annotations.iter()) {
                if let Ok(t) = Template::parse(k, v) {
                    let _ = t.expand(&tdata, &ctx);
                }
            }
        }
    }
});
