//! Runs Prometheus's own PromQL test scripts (`../shared/promql-tests/upstream/*.test`, or the
//! directory in `EDGEPROM_PROMQL_TESTS`) and this project's extra scripts (`tests/promql/*.test`)
//! against the engine, following the pass rules in `../shared/promql-tests/FORMAT.md`: each instant
//! statement also runs with `@` pinned at several times and as a range query around its time.
//!
//! Prints per-file pass counts and fails when the total of upstream passes drops below
//! `tests/promql/FLOOR`. Set `EDGEPROM_PROMQL_VERBOSE=1` to print every failing statement.
//! Native-histogram statements are skipped (edgeprom stores no native histograms).

#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use edgeprom::model::{stale_nan, Labels};
use edgeprom::promql::{
    parse, parse_duration, Engine, EngineOptions, MemStore, QueryResult, Value,
};

const EPS: f64 = 1e-6;
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

fn almost_equal(a: f64, b: f64) -> bool {
    let sa = edgeprom::model::is_stale_nan(a);
    let sb = edgeprom::model::is_stale_nan(b);
    if sa || sb {
        return sa && sb;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let d = (a - b).abs();
    let s = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || s < MIN_NORMAL {
        return d < EPS * MIN_NORMAL;
    }
    d / s.min(f64::MAX) < EPS
}

fn go_unquote(s: &str) -> Option<(String, usize)> {
    // Returns the unquoted string and the number of bytes consumed.
    let b = s.as_bytes();
    let q = *b.first()?;
    if q == b'`' {
        let end = s[1..].find('`')? + 1;
        return Some((s[1..end].to_string(), end + 1));
    }
    if q != b'"' && q != b'\'' {
        return None;
    }
    let mut out = String::new();
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        if c == q {
            return Some((out, i + 1));
        }
        if c == b'\\' {
            i += 1;
            let e = *b.get(i)?;
            i += 1;
            match e {
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'\\' => out.push('\\'),
                b'"' => out.push('"'),
                b'\'' => out.push('\''),
                b'u' => {
                    let v = u32::from_str_radix(s.get(i..i + 4)?, 16).ok()?;
                    out.push(char::from_u32(v)?);
                    i += 4;
                }
                b'x' => {
                    let v = u8::from_str_radix(s.get(i..i + 2)?, 16).ok()?;
                    out.push(v as char);
                    i += 2;
                }
                _ => {
                    out.push('\\');
                    out.push(e as char);
                }
            }
            continue;
        }
        let ch = s[i..].chars().next()?;
        out.push(ch);
        i += ch.len_utf8();
    }
    None
}

/// Parses `name{a="b", ...}` at the start of `s`; returns labels and the rest of the line.
fn parse_series(s: &str) -> Option<(Labels, &str)> {
    let s = s.trim_start();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'{' {
        i += 1;
    }
    if i > 0 {
        pairs.push(("__name__".into(), s[..i].to_string()));
    }
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            if b[i] == b'}' {
                i += 1;
                break;
            }
            let name = if b[i] == b'"' || b[i] == b'\'' {
                let (n, used) = go_unquote(&s[i..])?;
                i += used;
                n
            } else {
                let st = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b':'
                        || b[i] == b'.')
                {
                    i += 1;
                }
                s[st..i].to_string()
            };
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i < b.len() && b[i] == b'=' {
                i += 1;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                let (v, used) = go_unquote(&s[i..])?;
                i += used;
                pairs.push((name, v));
            } else {
                // lone quoted metric name
                pairs.push(("__name__".into(), name));
            }
        }
    }
    Some((Labels::from_pairs(pairs), &s[i..]))
}

#[derive(Clone, Copy, Debug)]
enum Item {
    Val(f64),
    Missing,
}

fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(h) = l.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    s.replace('_', "").parse().ok()
}

/// Expands a value sequence; `None` when it holds native histograms.
fn parse_values(s: &str) -> Option<Vec<Item>> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok.contains("{{") {
            return None;
        }
        if tok == "_" {
            out.push(Item::Missing);
            continue;
        }
        if tok == "stale" {
            out.push(Item::Val(stale_nan()));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().ok()?;
            out.extend(std::iter::repeat(Item::Missing).take(n));
            continue;
        }
        if let Some(xi) = tok.rfind('x') {
            let (base, n) = (&tok[..xi], &tok[xi + 1..]);
            if let Ok(n) = n.parse::<usize>() {
                // a, a+b or a-b (b unsigned); find an operator after the first char
                let mut split = None;
                for (i, c) in base.char_indices().skip(1) {
                    if (c == '+' || c == '-') && !base[..i].ends_with(['e', 'E']) {
                        split = Some(i);
                    }
                }
                let (a, step) = match split {
                    Some(i) => {
                        let a = parse_number(&base[..i])?;
                        let st = parse_number(&base[i + 1..])?;
                        (a, if &base[i..i + 1] == "-" { -st } else { st })
                    }
                    None => (parse_number(base)?, 0.0),
                };
                let mut v = a;
                for _ in 0..=n {
                    out.push(Item::Val(v));
                    v += step;
                }
                continue;
            }
        }
        out.push(Item::Val(parse_number(tok)?));
    }
    Some(out)
}

/// A start-timestamp line (`name{labels}@st items`, FORMAT.md section 3): the labels of the series
/// it describes and the rest of the line.
fn split_st_line(line: &str) -> Option<(Labels, &str)> {
    let first = line.split_whitespace().next()?;
    let series = first.strip_suffix("@st")?;
    let (labels, _) = parse_series(series)?;
    Some((labels, &line[first.len()..]))
}

/// A signed duration in ms (`-30s`, `+1m`, `0`, `-0ms`).
fn signed_duration(s: &str) -> Option<i64> {
    match s.as_bytes().first()? {
        b'-' => parse_duration(&s[1..]).map(|d| -d),
        b'+' => parse_duration(&s[1..]),
        _ => parse_duration(s),
    }
}

/// Expands the items of a start-timestamp line into per-position offsets from each sample's
/// own time: `_`, `_xN` (N positions), `d`, `dxN`, `d+ExN`, `d-ExN` (N+1 positions).
fn parse_starts(s: &str) -> Option<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat(None).take(n.parse().ok()?));
            continue;
        }
        let (base, n) = match tok.rsplit_once('x') {
            Some((b, n)) => (b, n.parse::<usize>().ok()?),
            None => (tok, 0),
        };
        // The step operator is the last sign after the first character.
        let (a, step) = match base
            .char_indices()
            .skip(1)
            .filter(|&(_, c)| c == '+' || c == '-')
            .last()
        {
            Some((i, c)) => {
                let step = parse_duration(&base[i + 1..])?;
                (
                    signed_duration(&base[..i])?,
                    if c == '-' { -step } else { step },
                )
            }
            None => (signed_duration(base)?, 0),
        };
        out.extend((0..=n as i64).map(|k| Some(a + k * step)));
    }
    Some(out)
}

#[derive(Debug, Default)]
struct Expect {
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    warn: bool,
    no_warn: bool,
    info: bool,
    no_info: bool,
    warn_pats: Vec<(bool, String)>,
    info_pats: Vec<(bool, String)>,
    ordered: bool,
    range_vector: Option<(i64, i64, i64)>,
    string: Option<String>,
    scalar: Option<f64>,
    series: Vec<(Labels, Vec<Item>)>,
    native: bool,
}

struct Stmt {
    line: usize,
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    exp: Expect,
}

#[derive(Default)]
struct Counts {
    pass: usize,
    fail: usize,
    skip: usize,
}

fn eval_opts() -> EngineOptions {
    EngineOptions {
        lookback_delta: std::time::Duration::from_secs(300),
        timeout: std::time::Duration::from_secs(100),
        max_samples: 50_000_000,
        max_concurrency: 4,
    }
}

fn run_file(path: &Path, native_lines: &HashSet<usize>, verbose: bool) -> Counts {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let store = MemStore::new();
    let engine = Engine::new(eval_opts());
    let inst_re = regex::Regex::new(
        r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$",
    )
    .unwrap();
    let range_re = regex::Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .unwrap();
    let expect_re = regex::Regex::new(
        r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$",
    )
    .unwrap();
    let rv_re =
        regex::Regex::new(r"^expect\s+range\s+vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$")
            .unwrap();
    let mut counts = Counts::default();
    let mut i = 0;
    let mut native_data = false;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("clear") {
            store.clear();
            native_data = false;
            i += 1;
            continue;
        }
        if lower.starts_with("load") {
            let interval = l
                .split_whitespace()
                .nth(1)
                .and_then(parse_duration)
                .unwrap_or(60_000);
            i += 1;
            type Starts = Vec<Option<i64>>;
            let mut block: Vec<(Labels, Vec<Item>, Starts)> = Vec::new();
            // Start timestamps from an `@st` line, for the series on the next line.
            let mut pending: Option<(Labels, Starts)> = None;
            while i < lines.len() && !lines[i].is_empty() {
                let line = &lines[i];
                i += 1;
                if let Some((labels, rest)) = split_st_line(line) {
                    pending = parse_starts(rest).map(|st| (labels, st));
                    continue;
                }
                let Some((labels, rest)) = parse_series(line) else {
                    continue;
                };
                let starts = match pending.take() {
                    Some((l, st)) if l == labels => st,
                    _ => Vec::new(),
                };
                match parse_values(rest) {
                    Some(v) => {
                        block.retain(|(l, _, _)| *l != labels);
                        block.push((labels, v, starts));
                    }
                    None => native_data = true,
                }
            }
            for (labels, vals, starts) in block {
                for (k, it) in vals.iter().enumerate() {
                    if let Item::Val(v) = it {
                        let t = k as i64 * interval;
                        let st = starts.get(k).copied().flatten().map(|d| t + d);
                        store.add_with_start(&labels, t, *v, st);
                    }
                }
            }
            continue;
        }
        if lower.starts_with("eval") {
            let line_no = i + 1;
            let mut st = Stmt {
                line: line_no,
                expr: String::new(),
                range: None,
                at: 0,
                exp: Expect::default(),
            };
            let mut ok_header = true;
            if let Some(c) = range_re.captures(l) {
                let s = parse_duration(c[2].trim()).unwrap_or(0);
                let e = parse_duration(c[3].trim()).unwrap_or(0);
                let stp = parse_duration(c[4].trim()).unwrap_or(1);
                st.range = Some((s, e, stp));
                st.expr = c[5].to_string();
                match c.get(1).map(|m| m.as_str()) {
                    Some("fail") => st.exp.fail = true,
                    Some("warn") => st.exp.warn = true,
                    Some("info") => st.exp.info = true,
                    _ => {}
                }
            } else if let Some(c) = inst_re.captures(l) {
                st.at = c
                    .get(2)
                    .and_then(|m| parse_duration(m.as_str()))
                    .unwrap_or(0);
                st.expr = c[3].to_string();
                match c.get(1).map(|m| m.as_str()) {
                    Some("fail") => st.exp.fail = true,
                    Some("warn") => st.exp.warn = true,
                    Some("info") => st.exp.info = true,
                    Some("ordered") => st.exp.ordered = true,
                    _ => {}
                }
            } else {
                ok_header = false;
            }
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                let b = lines[i].clone();
                i += 1;
                if b.split_whitespace().next() == Some("expect") {
                    if let Some(c) = rv_re.captures(&b) {
                        st.exp.range_vector = Some((
                            parse_duration(&c[1]).unwrap_or(0),
                            parse_duration(&c[2]).unwrap_or(0),
                            parse_duration(&c[3]).unwrap_or(1),
                        ));
                        continue;
                    }
                    if let Some(rest) = b.strip_prefix("expect string") {
                        let r = rest.trim();
                        st.exp.string = go_unquote(r).map(|x| x.0);
                        continue;
                    }
                    if let Some(c) = expect_re.captures(&b) {
                        let kind = c[1].to_string();
                        let pat = c
                            .get(3)
                            .map(|m| (c[2] == *"regex", m.as_str().trim().to_string()));
                        match kind.as_str() {
                            "fail" => {
                                st.exp.fail = true;
                                if let Some((is_re, p)) = pat {
                                    if is_re {
                                        st.exp.fail_regex = Some(p);
                                    } else {
                                        st.exp.fail_msg = Some(p);
                                    }
                                }
                            }
                            "warn" => {
                                st.exp.warn = true;
                                if let Some(p) = pat {
                                    st.exp.warn_pats.push(p);
                                }
                            }
                            "info" => {
                                st.exp.info = true;
                                if let Some(p) = pat {
                                    st.exp.info_pats.push(p);
                                }
                            }
                            "no_warn" => st.exp.no_warn = true,
                            "no_info" => st.exp.no_info = true,
                            _ => st.exp.ordered = true,
                        }
                    }
                    continue;
                }
                if let Some(rest) = b.strip_prefix("expected_fail_message") {
                    st.exp.fail_msg = Some(rest.trim().to_string());
                    continue;
                }
                if let Some(rest) = b.strip_prefix("expected_fail_regexp") {
                    st.exp.fail_regex = Some(rest.trim().to_string());
                    continue;
                }
                if b.contains("{{") {
                    st.exp.native = true;
                    continue;
                }
                if let Some(v) = parse_number(b.trim()) {
                    st.exp.scalar = Some(v);
                    continue;
                }
                match parse_series(&b) {
                    Some((labels, rest)) => match parse_values(rest) {
                        Some(v) => st.exp.series.push((labels, v)),
                        None => st.exp.native = true,
                    },
                    None => ok_header = false,
                }
            }
            let skip = st.exp.native
                || native_lines.contains(&line_no)
                || (native_lines.is_empty() && native_data && st.expr.contains("histogram"));
            if skip {
                counts.skip += 1;
                continue;
            }
            let res = if ok_header {
                run_stmt(&engine, &store, &st)
            } else {
                Err("bad statement header".into())
            };
            match res {
                Ok(()) => counts.pass += 1,
                Err(why) => {
                    counts.fail += 1;
                    if verbose {
                        println!(
                            "  FAIL {}:{} {} -- {}",
                            path.file_name().unwrap_or_default().to_string_lossy(),
                            st.line,
                            st.expr,
                            why
                        );
                    }
                }
            }
            continue;
        }
        i += 1;
    }
    counts
}

fn check_annotations(exp: &Expect, r: &QueryResult) -> Result<(), String> {
    let check = |want: bool,
                 no: bool,
                 pats: &[(bool, String)],
                 got: &[String],
                 kind: &str|
     -> Result<(), String> {
        if no && !got.is_empty() {
            return Err(format!("unexpected {kind}: {got:?}"));
        }
        if want && got.is_empty() {
            return Err(format!("expected a {kind}, got none"));
        }
        if !pats.is_empty() {
            let matches = |(is_re, p): &(bool, String), g: &str| {
                if *is_re {
                    regex::Regex::new(p).map(|r| r.is_match(g)).unwrap_or(false)
                } else {
                    p == g
                }
            };
            for p in pats {
                if !got.iter().any(|g| matches(p, g)) {
                    return Err(format!("{kind} {p:?} not found in {got:?}"));
                }
            }
            for g in got {
                if !pats.iter().any(|p| matches(p, g)) {
                    return Err(format!("unexpected {kind} {g:?}"));
                }
            }
        }
        Ok(())
    };
    check(
        exp.warn,
        exp.no_warn,
        &exp.warn_pats,
        &r.warnings,
        "warning",
    )?;
    check(exp.info, exp.no_info, &exp.info_pats, &r.infos, "info")
}

fn check_error(exp: &Expect, err: &str) -> Result<(), String> {
    if let Some(m) = &exp.fail_msg {
        if m != err {
            return Err(format!("error {err:?}, want {m:?}"));
        }
    }
    if let Some(r) = &exp.fail_regex {
        let re = regex::Regex::new(r).map_err(|e| e.to_string())?;
        if !re.is_match(err) {
            return Err(format!("error {err:?} does not match {r:?}"));
        }
    }
    Ok(())
}

fn compare_instant(exp: &Expect, v: &Value) -> Result<(), String> {
    if let Some(s) = &exp.string {
        return match v {
            Value::String { s: got, .. } if got == s => Ok(()),
            other => Err(format!("want string {s:?}, got {other:?}")),
        };
    }
    if let Some(want) = exp.scalar {
        return match v {
            Value::Scalar { v: got, .. } if almost_equal(*got, want) => Ok(()),
            other => Err(format!("want scalar {want}, got {other:?}")),
        };
    }
    if let Some((s, _e, step)) = exp.range_vector {
        let Value::Matrix(m) = v else {
            return Err(format!("want matrix, got {v:?}"));
        };
        if m.len() != exp.series.len() {
            return Err(format!(
                "want {} series, got {}: {m:?}",
                exp.series.len(),
                m.len()
            ));
        }
        for (labels, vals) in &exp.series {
            let Some(got) = m.iter().find(|x| &x.metric == labels) else {
                return Err(format!("missing series {labels}"));
            };
            let want: Vec<(i64, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(k, it)| match it {
                    Item::Val(x) => Some((s + k as i64 * step, *x)),
                    Item::Missing => None,
                })
                .collect();
            if want.len() != got.points.len()
                || want
                    .iter()
                    .zip(got.points.iter())
                    .any(|(a, b)| a.0 != b.0 || !almost_equal(a.1, b.1))
            {
                return Err(format!(
                    "series {labels}: want {want:?}, got {:?}",
                    got.points
                ));
            }
        }
        return Ok(());
    }
    let got: Vec<(Labels, f64)> = match v {
        Value::Vector(s) => s.iter().map(|x| (x.metric.clone(), x.v)).collect(),
        Value::Scalar { v, .. } => return Err(format!("want vector, got scalar {v}")),
        Value::Matrix(m) if m.is_empty() && exp.series.is_empty() => vec![],
        other => return Err(format!("want vector, got {other:?}")),
    };
    compare_vec(exp, &got)
}

fn compare_vec(exp: &Expect, got: &[(Labels, f64)]) -> Result<(), String> {
    if got.len() != exp.series.len() {
        return Err(format!(
            "want {} series, got {}: {:?}",
            exp.series.len(),
            got.len(),
            got.iter()
                .map(|(l, v)| format!("{l} {v}"))
                .collect::<Vec<_>>()
        ));
    }
    for (k, (labels, vals)) in exp.series.iter().enumerate() {
        let want = match vals.first() {
            Some(Item::Val(x)) => *x,
            _ => return Err("bad expectation".into()),
        };
        let found = if exp.ordered {
            got.get(k).filter(|g| &g.0 == labels)
        } else {
            got.iter().find(|g| &g.0 == labels)
        };
        match found {
            Some((_, v)) if almost_equal(*v, want) => {}
            Some((_, v)) => return Err(format!("{labels}: want {want}, got {v}")),
            None => {
                return Err(format!(
                    "missing series {labels} (ordered: {}); got {:?}",
                    exp.ordered,
                    got.iter()
                        .map(|(l, v)| format!("{l} {v}"))
                        .collect::<Vec<_>>()
                ))
            }
        }
    }
    Ok(())
}

fn compare_range(exp: &Expect, v: &Value, (s, _e, step): (i64, i64, i64)) -> Result<(), String> {
    let Value::Matrix(m) = v else {
        return Err(format!("want matrix, got {v:?}"));
    };
    for w in m.windows(2) {
        if w[0].metric >= w[1].metric {
            return Err("matrix not sorted by labels".into());
        }
    }
    let nonempty: Vec<_> = exp
        .series
        .iter()
        .filter(|(_, v)| v.iter().any(|x| matches!(x, Item::Val(_))))
        .collect();
    if m.len() != nonempty.len() {
        return Err(format!(
            "want {} series, got {}: {:?}",
            nonempty.len(),
            m.len(),
            m.iter().map(|x| x.metric.to_string()).collect::<Vec<_>>()
        ));
    }
    for (labels, vals) in nonempty {
        let Some(got) = m.iter().find(|x| &x.metric == labels) else {
            return Err(format!("missing series {labels}"));
        };
        let want: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(k, it)| match it {
                Item::Val(x) => Some((s + k as i64 * step, *x)),
                Item::Missing => None,
            })
            .collect();
        if want.len() != got.points.len()
            || want
                .iter()
                .zip(got.points.iter())
                .any(|(a, b)| a.0 != b.0 || !almost_equal(a.1, b.1))
        {
            return Err(format!(
                "series {labels}: want {want:?}, got {:?}",
                got.points
            ));
        }
    }
    Ok(())
}

const NO_AT_FUNCS: &[&str] = &[
    "time(",
    "timestamp(",
    "minute(",
    "hour(",
    "day_of_month(",
    "day_of_week(",
    "day_of_year(",
    "days_in_month(",
    "month(",
    "year(",
    "predict_linear(",
    "start(",
    "end(",
    "step(",
    "range(",
];

fn run_stmt(engine: &Engine, store: &MemStore, st: &Stmt) -> Result<(), String> {
    // A statement that expects failure may fail when the query is created (FORMAT.md, section 10).
    let expr = match parse(&st.expr) {
        Ok(e) => e,
        Err(e) if st.exp.fail => return check_error(&st.exp, &e.to_string()),
        Err(e) => return Err(format!("parse: {e}")),
    };
    if let Some((s, e, step)) = st.range {
        let r = engine.exec(store, &expr, &st.expr, s, e, step, true, None);
        return match r {
            Err(err) => {
                if st.exp.fail {
                    check_error(&st.exp, &err.to_string())
                } else {
                    Err(format!("error: {err}"))
                }
            }
            Ok(r) => {
                if st.exp.fail {
                    return Err("expected failure, got success".into());
                }
                check_annotations(&st.exp, &r)?;
                compare_range(&st.exp, &r.value, (s, e, step))
            }
        };
    }
    let t = st.at;
    let mut runs: Vec<(edgeprom::promql::Expr, i64, bool)> = vec![(expr.clone(), t, true)];
    if !NO_AT_FUNCS.iter().any(|f| st.expr.contains(f)) {
        let mut pinned = expr.clone();
        pinned.pin_at(t);
        let times: Vec<i64> = if t == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * t, 0, t / 5, t, 10 * t]
        };
        for et in times {
            runs.push((pinned.clone(), et, true));
        }
    }
    let range_mode = !(st.exp.range_vector.is_some()
        || st.exp.string.is_some()
        || st.exp.fail
        || ["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| st.expr.contains(f)));
    for (k, (e, at, _)) in runs.iter().enumerate() {
        let r = engine.exec(store, e, &st.expr, *at, *at, 0, false, None);
        match r {
            Err(err) => {
                if !st.exp.fail {
                    return Err(format!("run {k} at {at}: error: {err}"));
                }
                check_error(&st.exp, &err.to_string())?;
            }
            Ok(r) => {
                if st.exp.fail {
                    return Err(format!("run {k}: expected failure, got {:?}", r.value));
                }
                check_annotations(&st.exp, &r).map_err(|x| format!("run {k}: {x}"))?;
                compare_instant(&st.exp, &r.value).map_err(|x| format!("run {k} at {at}: {x}"))?;
            }
        }
        if range_mode {
            let rr = engine
                .exec(
                    store,
                    e,
                    &st.expr,
                    t - 60_000,
                    t + 60_000,
                    60_000,
                    true,
                    None,
                )
                .map_err(|err| format!("range-mode run {k}: error: {err}"))?;
            if st.exp.ordered {
                continue;
            }
            let Value::Matrix(m) = &rr.value else {
                return Err("range-mode: not a matrix".into());
            };
            for w in m.windows(2) {
                if w[0].metric >= w[1].metric {
                    return Err("range-mode: matrix not sorted".into());
                }
            }
            let at_t: Vec<(Labels, f64)> = m
                .iter()
                .filter_map(|s| {
                    s.points
                        .iter()
                        .find(|p| p.0 == t)
                        .map(|p| (s.metric.clone(), p.1))
                })
                .collect();
            if let Some(want) = st.exp.scalar {
                match at_t.as_slice() {
                    [(_, v)] if almost_equal(*v, want) => {}
                    other => {
                        return Err(format!(
                            "range-mode run {k}: want scalar {want}, got {other:?}"
                        ))
                    }
                }
            } else {
                compare_vec(&st.exp, &at_t).map_err(|x| format!("range-mode run {k}: {x}"))?;
            }
        }
    }
    Ok(())
}

fn native_lines(tsv: &Path) -> std::collections::HashMap<String, HashSet<usize>> {
    let mut out: std::collections::HashMap<String, HashSet<usize>> =
        std::collections::HashMap::new();
    let Ok(text) = std::fs::read_to_string(tsv) else {
        return out;
    };
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() > 3 && f[3] == "yes" {
            if let Ok(n) = f[1].parse() {
                out.entry(f[0].to_string()).or_default().insert(n);
            }
        }
    }
    out
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "test"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn promql_conformance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var("EDGEPROM_PROMQL_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            // The checkout sits beside `shared/`; a git worktree one level deeper.
            let a = root.join("../shared/promql-tests/upstream");
            if a.is_dir() {
                a
            } else {
                root.join("../../shared/promql-tests/upstream")
            }
        });
    let verbose = std::env::var("EDGEPROM_PROMQL_VERBOSE").is_ok();
    let only = std::env::var("EDGEPROM_PROMQL_ONLY").ok();
    let native = native_lines(&dir.join("../prometheus-2.42-results.tsv"));
    let empty = HashSet::new();
    let files = test_files(&dir);
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    println!("upstream PromQL scripts from {}", dir.display());
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let c = run_file(f, native.get(&name).unwrap_or(&empty), verbose);
        println!(
            "{name:<28} {:>4} passed {:>4} failed {:>4} skipped (native histograms)",
            c.pass, c.fail, c.skip
        );
        pass += c.pass;
        fail += c.fail;
        skip += c.skip;
    }
    println!("upstream total: {pass} passed, {fail} failed, {skip} skipped");
    // Our own scripts must pass completely.
    let mut own_fail = 0;
    for f in test_files(&root.join("tests/promql")) {
        let c = run_file(&f, &empty, true);
        println!(
            "own {:<24} {:>4} passed {:>4} failed",
            f.file_name().unwrap_or_default().to_string_lossy(),
            c.pass,
            c.fail
        );
        own_fail += c.fail;
    }
    assert_eq!(own_fail, 0, "tests/promql/*.test must all pass");
    if files.is_empty() {
        println!("no upstream scripts found; set EDGEPROM_PROMQL_TESTS");
        return;
    }
    if only.is_some() {
        return;
    }
    let floor: usize = std::fs::read_to_string(root.join("tests/promql/FLOOR"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| !l.starts_with('#') && !l.trim().is_empty())
                .and_then(|l| l.trim().parse().ok())
        })
        .unwrap_or(0);
    assert!(
        pass >= floor,
        "upstream pass count {pass} dropped below the floor {floor} (tests/promql/FLOOR)"
    );
    if pass > floor {
        println!("pass count {pass} is above the floor {floor}: raise tests/promql/FLOOR");
    }
}
