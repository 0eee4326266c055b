//! `textfile` collector: re-exposes `*.prom` files from `--collector.textfile.directory`, the
//! way Pi users publish cron-job results, with `node_textfile_mtime_seconds{file}` and
//! `node_textfile_scrape_error`.
//!
//! node_exporter's rules: a file that fails to parse or carries client-side timestamps is skipped
//! whole and sets the error gauge; a family without HELP gets "Metric read from <path>"; samples
//! of a family missing some of its labels get them as ""; a family that another collector already
//! produced, or that another file declared with a different HELP or TYPE, is dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::expo::{Type, W};
use super::{Ctx, NodeError};

/// One parsed sample: full series name (may carry `_sum`, `_bucket`, ...), labels, value.
struct Sample {
    name: String,
    labels: LabelPairs,
    value: f64,
}

struct Family {
    help: Option<String>,
    typ: Type,
    samples: Vec<Sample>,
}

/// Unescapes HELP text (`\\` and `\n`).
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Which family a series name belongs to, given the families declared so far.
fn family_of<'a>(name: &'a str, fams: &BTreeMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(f) = fams.get(base) {
                if matches!(f.typ, Type::Histogram | Type::Summary) {
                    return base;
                }
            }
        }
    }
    name
}

/// Owned label pairs as parsed.
type LabelPairs = Vec<(String, String)>;

/// Parses `{a="b",c="d"}` at the start of `s`; returns labels and the rest.
fn parse_labels(s: &str) -> Result<(LabelPairs, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("expected '=' in label")?;
        let name = rest[..eq].trim();
        if !valid_name(name) || name.contains(':') {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..].trim_start();
        rest = rest.strip_prefix('"').ok_or("expected '\"' after '='")?;
        let mut val = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => val.push('\n'),
                    Some((_, '\\')) => val.push('\\'),
                    Some((_, '"')) => val.push('"'),
                    _ => return Err("invalid escape in label value".into()),
                },
                Some((_, c)) => val.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        labels.push((name.to_string(), val));
        rest = rest[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after label".into());
        }
    }
}

/// Parses one text-format file into families.
fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let ln = n + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start();
            let mut parts = c.splitn(3, [' ', '\t']);
            match parts.next() {
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or(format!("line {ln}: HELP without name"))?;
                    let help = unescape_help(parts.next().unwrap_or("").trim_start());
                    let f = fams.entry(name.to_string()).or_insert(Family {
                        help: None,
                        typ: Type::Untyped,
                        samples: Vec::new(),
                    });
                    if f.help.is_some() {
                        return Err(format!(
                            "line {ln}: second HELP line for metric name {name:?}"
                        ));
                    }
                    f.help = Some(help);
                }
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or(format!("line {ln}: TYPE without name"))?;
                    let t = parts.next().unwrap_or("").trim();
                    let t =
                        Type::parse(t).ok_or(format!("line {ln}: unknown metric type {t:?}"))?;
                    let f = fams.entry(name.to_string()).or_insert(Family {
                        help: None,
                        typ: Type::Untyped,
                        samples: Vec::new(),
                    });
                    if !f.samples.is_empty() {
                        return Err(format!("line {ln}: TYPE for {name:?} after its samples"));
                    }
                    f.typ = t;
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("line {ln}: invalid metric name {name:?}"));
        }
        let mut rest = line[name_end..].trim_start();
        let mut labels = Vec::new();
        if rest.starts_with('{') {
            let (l, r) = parse_labels(rest).map_err(|e| format!("line {ln}: {e}"))?;
            labels = l;
            rest = r.trim_start();
        }
        let mut f = rest.split_whitespace();
        let v = f.next().ok_or(format!("line {ln}: missing value"))?;
        let value: f64 = match v {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => v
                .parse()
                .map_err(|_| format!("line {ln}: invalid value {v:?}"))?,
        };
        if f.next().is_some() {
            return Err(format!(
                "line {ln}: textfile contains unsupported client-side timestamps"
            ));
        }
        let fam = family_of(name, &fams).to_string();
        fams.entry(fam)
            .or_insert(Family {
                help: None,
                typ: Type::Untyped,
                samples: Vec::new(),
            })
            .samples
            .push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
    }
    Ok(fams)
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let mut errored = false;
    let mut merged: BTreeMap<String, Family> = BTreeMap::new();
    let mut mtimes: Vec<(String, f64)> = Vec::new();
    if let Some(dir) = cx.opts.textfile_dir.clone() {
        match std::fs::read_dir(&dir) {
            Err(e) => {
                errored = true;
                tracing::error!(path = %dir.display(), error = %e, "failed to read textfile collector directory");
            }
            Ok(rd) => {
                let mut files: Vec<_> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "prom"))
                    .collect();
                files.sort();
                for path in files {
                    if let Err(e) = process(&path, &mut merged, &mut mtimes) {
                        errored = true;
                        tracing::error!(path = %path.display(), error = %e, "failed to collect textfile data");
                    }
                }
            }
        }
    }
    for (name, f) in &merged {
        if w.has_family(name) {
            tracing::error!(family = %name, "textfile family collides with a collector's family, dropped");
            continue;
        }
        // Every label any sample has, so the others get it as "" (node_exporter fills them).
        let mut all: Vec<&str> = f
            .samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(n, _)| n.as_str()))
            .filter(|n| *n != "le" && *n != "quantile")
            .collect();
        all.sort_unstable();
        all.dedup();
        let help = f.help.clone().unwrap_or_default();
        w.family(&[name], &[&help], f.typ);
        for s in &f.samples {
            let mut l: Vec<(&str, &str)> = s
                .labels
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            for n in &all {
                if !l.iter().any(|(k, _)| k == n) {
                    l.push((n, ""));
                }
            }
            l.sort_by(|a, b| a.0.cmp(b.0));
            w.sample(&[&s.name], &l, s.value);
        }
    }
    if !mtimes.is_empty() {
        mtimes.sort_by(|a, b| a.0.cmp(&b.0));
        w.family(
            &["node_textfile_mtime_seconds"],
            &["Unixtime mtime of textfiles successfully read."],
            Type::Gauge,
        );
        for (file, t) in &mtimes {
            w.sample(&["node_textfile_mtime_seconds"], &[("file", file)], *t);
        }
    }
    w.single(
        "node_textfile_scrape_error",
        "1 if there was an error opening or reading a file, 0 otherwise",
        Type::Gauge,
        if errored { 1.0 } else { 0.0 },
    );
    Ok(())
}

/// Parses one file and merges its families; the file's mtime is recorded on success.
fn process(
    path: &Path,
    merged: &mut BTreeMap<String, Family>,
    mtimes: &mut Vec<(String, f64)>,
) -> Result<(), NodeError> {
    let text = std::fs::read_to_string(path).map_err(|e| NodeError::io(path, e))?;
    let meta = std::fs::metadata(path).map_err(|e| NodeError::io(path, e))?;
    let fams = parse(&text).map_err(|e| NodeError::parse(path, e))?;
    let shown = path.to_string_lossy().into_owned();
    for (name, mut f) in fams {
        if f.samples.is_empty() {
            continue;
        }
        if f.help.is_none() {
            f.help = Some(format!("Metric read from {shown}"));
        }
        match merged.get_mut(&name) {
            None => {
                merged.insert(name, f);
            }
            Some(m) if m.help == f.help && m.typ == f.typ => m.samples.append(&mut f.samples),
            Some(_) => tracing::error!(
                family = name.as_str(),
                file = shown.as_str(),
                "family has inconsistent HELP or TYPE across text files, dropped"
            ),
        }
    }
    let secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as f64)
        .unwrap_or(0.0);
    mtimes.push((shown, secs));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::expo::{escape_help, escape_label_value, fmt_go_float};
    use super::*;

    #[test]
    fn parse_cases() {
        // (input, Ok(number of families) or Err(substring))
        let cases: &[(&str, Result<usize, &str>)] = &[
            ("a 1\n", Ok(1)),
            ("# HELP a x\n# TYPE a gauge\na{b=\"c\"} 1\na{b=\"d\"} 2\n", Ok(1)),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", Ok(1)),
            ("a 1 1700000000000\n", Err("timestamps")),
            ("a{b=\"c} 1\n", Err("unterminated")),
            ("1a 1\n", Err("invalid metric name")),
            ("a one\n", Err("invalid value")),
            ("# TYPE a bogus\n", Err("unknown metric type")),
            ("a{b=\"1\",b=\"2\"} 1\n", Err("duplicate label")),
        ];
        for (input, want) in cases {
            match (parse(input), want) {
                (Ok(f), Ok(n)) => assert_eq!(f.len(), *n, "{input}"),
                (Err(e), Err(sub)) => assert!(e.contains(sub), "{input}: {e}"),
                (got, want) => panic!("{input}: got {:?}, want {want:?}", got.map(|f| f.len())),
            }
        }
    }

    #[test]
    fn help_round_trip() {
        let mut s = String::new();
        escape_help(&mut s, &unescape_help("a\\\\b\\nc"));
        assert_eq!(s, "a\\\\b\\nc");
        let mut v = String::new();
        escape_label_value(&mut v, "x");
        fmt_go_float(&mut v, 1.5);
        assert_eq!(v, "x1.5");
    }
}
