//! The Prometheus rule-file format: parsing, validation and `check rules` output.
//!
//! A file holds `groups:`, each with `name`, `interval`, `limit`, `query_offset` and `rules:`;
//! a rule is either `record:` or `alert:` with `expr`, and for alerts `for`, `keep_firing_for`,
//! `labels` and `annotations`. Unknown keys are errors. Validation follows `promtool check rules`
//! (Prometheus `model/rulefmt/rulefmt.go`): messages read `group "g", rule 1, "name": ...`, prefixed
//! with the `line:column` of the offending YAML node where it is known.
//!
//! serde_yaml gives no positions for values, so [`Locator`] finds them in the text for the usual
//! block-style layout; for flow-style files the message simply carries no position.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::template::Template;
use super::ParseFn;

/// One validated rule group, as loaded from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleGroupSpec {
    /// Group name, unique within its file.
    pub name: String,
    /// The file it came from, as given.
    pub file: String,
    /// Evaluation interval; `None` means the global `evaluation_interval`.
    pub interval: Option<Duration>,
    /// Evaluate this far in the past (`query_offset`); `None` means the global default.
    pub query_offset: Option<Duration>,
    /// Maximum series a rule may produce (recording) or alerts it may hold (alerting); 0 = no limit.
    pub limit: usize,
    /// Rules in file order.
    pub rules: Vec<RuleSpec>,
}

/// Recording or alerting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `record:`
    Recording,
    /// `alert:`
    Alerting,
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// Recording or alerting.
    pub kind: RuleKind,
    /// The recorded metric name or the alert name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// `for`: how long an alert stays pending before it fires.
    pub for_: Duration,
    /// `keep_firing_for`: how long a firing alert keeps firing after its condition clears.
    pub keep_firing_for: Duration,
    /// Extra labels (templates for alerting rules), sorted by name.
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates), sorted by name.
    pub annotations: BTreeMap<String, String>,
}

/// One problem found in a rule file; `Display` reads like promtool's line for it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct RuleFileError {
    /// The file, as given.
    pub file: String,
    /// 1-based line and column of the offending node, when known.
    pub pos: Option<(usize, usize)>,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}: {l}:{c}: {}", self.file, self.msg),
            None => write!(f, "{}: {}", self.file, self.msg),
        }
    }
}

// ---- serde mirror of the YAML ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    #[serde(default)]
    groups: Option<Vec<GroupYaml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    rules: Option<Vec<RuleYaml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleYaml {
    #[serde(default)]
    record: Option<serde_yaml::Value>,
    #[serde(default)]
    alert: Option<serde_yaml::Value>,
    #[serde(default)]
    expr: Option<serde_yaml::Value>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, serde_yaml::Value>>,
}

/// A YAML scalar as Go's yaml decoder turns it into a string (numbers and booleans as written).
fn scalar(v: &serde_yaml::Value) -> Result<String, String> {
    match v {
        serde_yaml::Value::Null => Ok(String::new()),
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        _ => Err("expected a string".to_string()),
    }
}

/// Rule files use the config file's duration syntax (`1h30m`, `5m`, `0`), units largest first.
pub use crate::config::units::{format_duration, parse_duration};

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// Whether `s` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch == ':' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch == ':' || ch.is_ascii_alphanumeric())
}

// ---- positions ----

/// Finds 1-based positions of nodes in block-style YAML text.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

fn indent_of(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

fn is_blank(l: &str) -> bool {
    let t = l.trim();
    t.is_empty() || t.starts_with('#') || t == "---"
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// Items of the block sequence that is the value of the key at (line, col) (0-based).
    /// Each item is (first line, content column, end line exclusive).
    fn seq_items(&self, key_line: usize, key_col: usize) -> Vec<(usize, usize, usize)> {
        let mut items: Vec<(usize, usize, usize)> = Vec::new();
        let mut dash_indent = None;
        let mut i = key_line + 1;
        while i < self.lines.len() {
            let l = self.lines[i];
            if is_blank(l) {
                i += 1;
                continue;
            }
            let ind = indent_of(l);
            let rest = &l[ind..];
            let is_dash = rest == "-" || rest.starts_with("- ");
            match dash_indent {
                None if is_dash && ind >= key_col => dash_indent = Some(ind),
                None => break,
                Some(d) if ind < d || (ind == d && !is_dash) => break,
                _ => {}
            }
            if Some(ind) == dash_indent && is_dash {
                if let Some(last) = items.last_mut() {
                    last.2 = i;
                }
                let after = &rest[1..];
                let content = ind + 1 + (after.len() - after.trim_start_matches(' ').len());
                items.push((i, content, self.lines.len()));
            }
            i += 1;
        }
        if let (Some(last), true) = (items.last_mut(), i < self.lines.len()) {
            last.2 = i;
        }
        items
    }

    /// The key `key` directly inside the mapping item `(start, col, end)`: (line, key col, value col).
    fn key_in(&self, item: (usize, usize, usize), key: &str) -> Option<(usize, usize, usize)> {
        let (start, col, end) = item;
        for i in start..end.min(self.lines.len()) {
            let l = self.lines[i];
            if l.len() <= col || (i != start && indent_of(l) != col) {
                continue;
            }
            let rest = &l[col..];
            for q in ["", "\"", "'"] {
                let k = format!("{q}{key}{q}:");
                if rest == k || rest.starts_with(&format!("{k} ")) {
                    let after = &rest[k.len()..];
                    let vcol = col + k.len() + (after.len() - after.trim_start().len());
                    return Some((i, col, vcol));
                }
            }
        }
        None
    }

    fn groups(&self) -> Vec<(usize, usize, usize)> {
        match self.lines.iter().position(|l| l.starts_with("groups:")) {
            Some(k) => self.seq_items(k, 0),
            None => Vec::new(),
        }
    }

    fn rules(&self, group: (usize, usize, usize)) -> Vec<(usize, usize, usize)> {
        match self.key_in(group, "rules") {
            Some((l, c, _)) => self.seq_items(l, c),
            None => Vec::new(),
        }
    }
}

/// Position of the value of `key` in rule `ri` of group `gi`, 1-based.
fn value_pos(
    loc: &Locator,
    groups: &[(usize, usize, usize)],
    gi: usize,
    ri: usize,
    key: &str,
) -> Option<(usize, usize)> {
    let g = *groups.get(gi)?;
    let r = *loc.rules(g).get(ri)?;
    loc.key_in(r, key).map(|(l, _, v)| (l + 1, v + 1))
}

// ---- parsing and validation ----

/// Parses and validates one rule file's text. `file` is used in messages and stored in groups.
pub fn parse_rules(
    file: &str,
    text: &str,
    parse: &ParseFn,
) -> Result<Vec<RuleGroupSpec>, Vec<RuleFileError>> {
    let err = |pos, msg: String| RuleFileError {
        file: file.to_string(),
        pos,
        msg,
    };
    let y: FileYaml = if text.trim().is_empty() {
        FileYaml::default()
    } else {
        let de = serde_yaml::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, Option<FileYaml>>(de) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let pos = inner.location().map(|l| (l.line(), l.column()));
                let mut msg = inner.to_string();
                // serde_yaml appends " at line L column C"; the position is printed in front instead.
                if let Some(i) = msg.find(" at line ") {
                    msg.truncate(i);
                }
                let msg = if path.is_empty() || path == "." {
                    format!("yaml: {msg}")
                } else {
                    format!("yaml: {path}: {msg}")
                };
                return Err(vec![err(pos, msg)]);
            }
        }
    };
    let loc = Locator::new(text);
    let gpos = loc.groups();
    let mut errs = Vec::new();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (gi, g) in y.groups.unwrap_or_default().into_iter().enumerate() {
        let group_node = gpos.get(gi).map(|&(l, c, _)| (l + 1, c + 1));
        let name = g.name.unwrap_or_default();
        if name.is_empty() {
            errs.push(err(group_node, "Groupname must not be empty".to_string()));
        } else if !seen.insert(name.clone()) {
            errs.push(err(
                group_node,
                format!("groupname: {name:?} is repeated in the same file"),
            ));
        }
        let gkey = |k: &str| {
            gpos.get(gi)
                .and_then(|&g| loc.key_in(g, k))
                .map(|(l, _, v)| (l + 1, v + 1))
        };
        let mut dur = |key: &str, v: &Option<String>| -> Option<Duration> {
            let s = v.as_deref()?;
            match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    errs.push(err(gkey(key), format!("group {name:?}: {e}")));
                    None
                }
            }
        };
        let interval = dur("interval", &g.interval);
        let query_offset = dur("query_offset", &g.query_offset);
        if interval == Some(Duration::ZERO) {
            errs.push(err(
                gkey("interval"),
                format!("group {name:?}: interval must be greater than zero"),
            ));
        }
        let mut rules = Vec::new();
        for (ri, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
            let pos = |k: &str| value_pos(&loc, &gpos, gi, ri, k);
            let text_of = |v: &Option<serde_yaml::Value>| {
                v.as_ref()
                    .map(scalar)
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            let mut rerrs: Vec<RuleFileError> = Vec::new();
            let (record, alert, expr) =
                match (text_of(&r.record), text_of(&r.alert), text_of(&r.expr)) {
                    (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                    _ => {
                        errs.push(err(
                            pos("expr"),
                            format!(
                                "group {name:?}, rule {}: record, alert and expr must be strings",
                                ri + 1
                            ),
                        ));
                        continue;
                    }
                };
            let rname = if record.is_empty() { &alert } else { &record };
            let prefix = format!("group {name:?}, rule {}, {rname:?}", ri + 1);
            let mut rerr = |p: Option<(usize, usize)>, m: String| {
                rerrs.push(err(p, format!("{prefix}: {m}")));
            };
            if !record.is_empty() && !alert.is_empty() {
                rerr(
                    pos("record"),
                    "only one of 'record' and 'alert' must be set".into(),
                );
            }
            if record.is_empty() && alert.is_empty() {
                rerr(None, "one of 'record' or 'alert' must be set".into());
            }
            if expr.is_empty() {
                rerr(pos("expr"), "field 'expr' must be set in rule".into());
            } else if let Err(e) = parse(&expr) {
                rerr(pos("expr"), format!("could not parse expression: {e}"));
            }
            let mut rdur = |key: &str, v: &Option<String>| -> Duration {
                match v.as_deref().map(parse_duration) {
                    None => Duration::ZERO,
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        rerr(pos(key), e);
                        Duration::ZERO
                    }
                }
            };
            let for_ = rdur("for", &r.for_);
            let keep_firing_for = rdur("keep_firing_for", &r.keep_firing_for);
            let mut map = |m: Option<BTreeMap<String, serde_yaml::Value>>, what: &str| {
                let mut out = BTreeMap::new();
                for (k, v) in m.unwrap_or_default() {
                    match scalar(&v) {
                        Ok(s) => {
                            out.insert(k, s);
                        }
                        Err(e) => rerrs.push(err(None, format!("{prefix}: {what} {k:?}: {e}"))),
                    }
                }
                out
            };
            let labels = map(r.labels, "label");
            let annotations = map(r.annotations, "annotation");
            let mut rerr = |p: Option<(usize, usize)>, m: String| {
                rerrs.push(err(p, format!("{prefix}: {m}")));
            };
            if !record.is_empty() {
                if !annotations.is_empty() {
                    rerr(
                        pos("record"),
                        "invalid field 'annotations' in recording rule".into(),
                    );
                }
                if !for_.is_zero() {
                    rerr(
                        pos("record"),
                        "invalid field 'for' in recording rule".into(),
                    );
                }
                if !keep_firing_for.is_zero() {
                    rerr(
                        pos("record"),
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    );
                }
                if !is_metric_name(&record) {
                    rerr(
                        pos("record"),
                        format!("invalid recording rule name: {record}"),
                    );
                }
            }
            for k in labels.keys() {
                if !is_label_name(k) || k == crate::model::METRIC_NAME {
                    rerr(None, format!("invalid label name: {k}"));
                }
            }
            for k in annotations.keys() {
                if !is_label_name(k) {
                    rerr(None, format!("invalid annotation name: {k}"));
                }
            }
            if !alert.is_empty() {
                let tname = format!("__alert_{alert}");
                for (what, m) in [("label", &labels), ("annotation", &annotations)] {
                    for (k, v) in m {
                        if let Err(e) = Template::parse(&tname, v) {
                            rerr(None, format!("{what} {k:?}: {e}"));
                        }
                    }
                }
            }
            if rerrs.is_empty() {
                rules.push(RuleSpec {
                    kind: if record.is_empty() {
                        RuleKind::Alerting
                    } else {
                        RuleKind::Recording
                    },
                    name: rname.clone(),
                    expr,
                    for_,
                    keep_firing_for,
                    labels,
                    annotations,
                });
            }
            errs.extend(rerrs);
        }
        out.push(RuleGroupSpec {
            name,
            file: file.to_string(),
            interval,
            query_offset,
            limit: g.limit.unwrap_or(0),
            rules,
        });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Reads and validates one rule file.
pub fn load_file(path: &Path, parse: &ParseFn) -> Result<Vec<RuleGroupSpec>, Vec<RuleFileError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_rules(&file, &text, parse),
        Err(e) => Err(vec![RuleFileError {
            file,
            pos: None,
            msg: e.to_string(),
        }]),
    }
}

/// `check rules FILE...` as promtool prints it: per file `Checking FILE`, then
/// `  SUCCESS: N rules found` or `  FAILED:` with one line per problem. Exit code 1 if any failed.
pub fn check_rules_files(paths: &[PathBuf], parse: &ParseFn) -> (String, i32) {
    let mut out = String::new();
    let mut code = 0;
    for p in paths {
        out.push_str(&format!("Checking {}\n", p.display()));
        match load_file(p, parse) {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                out.push_str(&format!("  SUCCESS: {n} rules found\n"));
            }
            Err(errs) => {
                code = 1;
                out.push_str("  FAILED:\n");
                for e in errs {
                    out.push_str(&format!("{e}\n"));
                }
            }
        }
        out.push('\n');
    }
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A stand-in for the PromQL parser: rejects unbalanced parentheses with a positioned message.
    pub(crate) fn fake_parse() -> ParseFn {
        Arc::new(|e: &str| {
            let mut depth = 0i32;
            for c in e.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            if depth != 0 {
                Err(format!(
                    "1:{}: parse error: unclosed left parenthesis",
                    e.len() + 1
                ))
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("500ms", Some(500)),
            ("1d", Some(86_400_000)),
            ("1w", Some(604_800_000)),
            ("1y", Some(31_536_000_000)),
            ("1m1h", None),
            ("5x", None),
            ("", None),
            ("m", None),
            ("1.5s", None),
        ];
        for &(s, want) in cases {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis() as u64),
                want,
                "{s}"
            );
        }
        assert_eq!(format_duration(Duration::from_millis(5_400_000)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn good_file_parses() {
        let text = "groups:\n  - name: g1\n    interval: 30s\n    limit: 5\n    query_offset: 1m\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        keep_firing_for: 1m\n        labels:\n          severity: page\n          n: 1\n        annotations:\n          summary: \"{{ $labels.instance }} down\"\n";
        let g = parse_rules("f.yml", text, &fake_parse()).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(g[0].query_offset, Some(Duration::from_secs(60)));
        assert_eq!(g[0].limit, 5);
        assert_eq!(g[0].rules.len(), 2);
        let a = &g[0].rules[1];
        assert_eq!(a.kind, RuleKind::Alerting);
        assert_eq!(a.for_, Duration::from_secs(300));
        assert_eq!(a.keep_firing_for, Duration::from_secs(60));
        assert_eq!(a.labels.get("n").map(String::as_str), Some("1"));
    }

    /// Each row: file text, and the messages promtool 2.42 prints for it (positions included).
    #[test]
    fn validation_messages_like_promtool() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "bad expression with its position",
                "groups:\n  - name: g1\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up\n",
                &["f.yml: 5:15: group \"g1\", rule 1, \"job:up:sum\": could not parse expression: 1:17: parse error: unclosed left parenthesis"],
            ),
            (
                "record and alert",
                "groups:\n  - name: g1\n    rules:\n      - alert: Down\n        record: x\n        expr: up == 0\n",
                &["f.yml: 5:17: group \"g1\", rule 1, \"x\": only one of 'record' and 'alert' must be set"],
            ),
            (
                "unknown template function",
                "groups:\n  - name: g1\n    rules:\n      - alert: Down2\n        expr: up\n        annotations:\n          s: \"{{ foo $labels.x }}\"\n",
                &["f.yml: group \"g1\", rule 1, \"Down2\": annotation \"s\": template: __alert_Down2:1: function \"foo\" not defined"],
            ),
            (
                "bad names and repeated group",
                "groups:\n  - name: g1\n    rules:\n      - record: \"bad name\"\n        expr: up\n        labels:\n          \"0x\": y\n  - name: g1\n    rules: []\n",
                &[
                    "f.yml: 4:17: group \"g1\", rule 1, \"bad name\": invalid recording rule name: bad name",
                    "f.yml: group \"g1\", rule 1, \"bad name\": invalid label name: 0x",
                    "f.yml: 8:5: groupname: \"g1\" is repeated in the same file",
                ],
            ),
            (
                "recording rule with alert fields, empty rule, empty group name",
                "groups:\n  - name: g1\n    rules:\n      - record: a\n        expr: up\n        for: 5m\n        annotations: {a: b}\n      - alert: Y\n        expr: up\n        labels:\n          __name__: x\n      - {}\n  - name: \"\"\n",
                &[
                    "f.yml: 4:17: group \"g1\", rule 1, \"a\": invalid field 'annotations' in recording rule",
                    "f.yml: 4:17: group \"g1\", rule 1, \"a\": invalid field 'for' in recording rule",
                    "f.yml: group \"g1\", rule 2, \"Y\": invalid label name: __name__",
                    "f.yml: group \"g1\", rule 3, \"\": one of 'record' or 'alert' must be set",
                    "f.yml: group \"g1\", rule 3, \"\": field 'expr' must be set in rule",
                    "f.yml: 13:5: Groupname must not be empty",
                ],
            ),
            (
                "unclosed action",
                "groups:\n - name: a\n   rules:\n   - alert: a\n     expr: up\n     labels: {a: \"{{ $labels.x\"}\n",
                &["f.yml: group \"a\", rule 1, \"a\": label \"a\": template: __alert_a:1: unclosed action"],
            ),
            (
                "bad duration",
                "groups:\n - name: a\n   rules:\n   - alert: a\n     expr: up\n     for: 5x\n",
                &["f.yml: 6:11: group \"a\", rule 1, \"a\": not a valid duration string: \"5x\""],
            ),
        ];
        for (name, text, want) in cases {
            let got: Vec<String> = match parse_rules("f.yml", text, &fake_parse()) {
                Ok(_) => vec![],
                Err(e) => e.iter().map(|e| e.to_string()).collect(),
            };
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let text = "groups:\n  - name: g1\n    rules:\n      - alert: X\n        expr: up\n        bogus: 1\n";
        let e = parse_rules("f.yml", text, &fake_parse()).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].pos, Some((6, 9)), "{}", e[0]);
        assert!(e[0].msg.contains("unknown field `bogus`"), "{}", e[0]);
        let e = parse_rules("f.yml", "foo: [", &fake_parse()).unwrap_err();
        assert!(e[0].msg.starts_with("yaml: "), "{}", e[0]);
    }

    #[test]
    fn check_output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yml");
        std::fs::write(
            &good,
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n",
        )
        .unwrap();
        let empty = dir.path().join("empty.yml");
        std::fs::write(&empty, "").unwrap();
        let (out, code) = check_rules_files(&[good.clone(), empty.clone()], &fake_parse());
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!(
                "Checking {}\n  SUCCESS: 1 rules found\n\nChecking {}\n  SUCCESS: 0 rules found\n\n",
                good.display(),
                empty.display()
            )
        );
        let missing = dir.path().join("missing.yml");
        let (out, code) = check_rules_files(&[missing, good], &fake_parse());
        assert_eq!(code, 1);
        assert!(out.contains("  FAILED:\n"), "{out}");
        assert!(out.contains("SUCCESS: 1 rules found"), "{out}");
    }
}
