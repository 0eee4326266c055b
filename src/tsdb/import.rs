//! Backfill: streams an OpenMetrics file with timestamps (what `promtool tsdb
//! create-blocks-from openmetrics` takes) into the store with bounded memory.
//!
//! The exposition parser of `scrape::textparse` is not on `main` yet, so this module carries a
//! small, allocation-light line parser for the subset a backfill needs: `# ...` lines are
//! skipped (`# EOF` ends the input), sample lines are `name{l="v",...} value timestamp` with
//! OpenMetrics escapes in label values, timestamps in seconds (fractions allowed), and an
//! optional exemplar after ` # ` is ignored. Consecutive lines of the same series (the usual
//! layout: one series' points in time order) reuse the series ref without parsing labels.
//!
//! Memory is bounded by flushing whenever `FLUSH_EVERY` samples wait; the flush runs on a
//! second thread so parsing and compression overlap.

use super::{Error, Options, Tsdb};
use crate::model::{Labels, LabelsBuilder};
use crate::storage::{Appendable, SeriesRef, StorageError};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples buffered before a flush: 1 M samples hold 24 MiB, and a flush then writes about
/// 70 records that compress as well as the whole file would.
const FLUSH_EVERY: u64 = 1_000_000;
/// Samples per commit (commits take the store's lock once each).
const BATCH: usize = 20_000;

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportStats {
    /// Input lines read.
    pub lines: u64,
    /// Samples stored (identical re-imports of stored samples are not counted).
    pub samples: u64,
    /// Samples refused (out of order, duplicate, out of bounds).
    pub skipped: u64,
    /// Series parsed (each distinct series of a metric family once).
    pub series_runs: u64,
    /// Bytes of input.
    pub bytes_read: u64,
    /// Bytes written to disk.
    pub bytes_written: u64,
    /// Bytes of the store on disk afterwards.
    pub disk_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Imports `file` into the store at `opts.path` (created if needed), then flushes and closes it.
pub fn import_openmetrics(file: &Path, opts: Options) -> Result<ImportStats, Error> {
    let started = Instant::now();
    let f = std::fs::File::open(file).map_err(super::io_err("opening", file))?;
    let mut rd = BufReader::with_capacity(1 << 20, f);
    let db = Tsdb::open(Options {
        // The data is old by nature: time retention would refuse it as out of bounds.
        retention_time: Duration::ZERO,
        ..opts
    })?;
    let mut st = ImportStats::default();
    let written_before = db.bytes_written();
    let appended_before = db.samples_appended();
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let flusher = {
        let db: Arc<Tsdb> = db.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            while rx.recv().is_ok() {
                db.flush()?;
            }
            Ok(())
        })
    };
    let mut line = String::new();
    let mut app = db.appender();
    let mut in_batch = 0usize;
    let mut since_flush = 0u64;
    let mut lineno = 0u64;
    // Series text -> (ref, labels) within the current metric family: histogram points
    // interleave their bucket series line by line.
    let mut family_cache: std::collections::HashMap<
        String,
        (SeriesRef, Labels),
        xxhash_rust::xxh3::Xxh3Builder,
    > = Default::default();
    let perr = |lineno: u64, msg: String| Error::Parse {
        path: file.to_path_buf(),
        line: lineno,
        msg,
    };
    loop {
        line.clear();
        let n = rd
            .read_line(&mut line)
            .map_err(super::io_err("reading", file))?;
        if n == 0 {
            break;
        }
        st.bytes_read += n as u64;
        lineno += 1;
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            continue;
        }
        if l.starts_with('#') {
            if l == "# EOF" {
                break;
            }
            // A new family: series of the previous one will not come back (usually).
            if family_cache.len() > 4096 || l.starts_with("# TYPE") {
                family_cache.clear();
            }
            continue;
        }
        let (series, value, ts) = split_sample(l).map_err(|m| perr(lineno, m.into()))?;
        if !family_cache.contains_key(series) {
            let labels = parse_series(series).map_err(|m| perr(lineno, m))?;
            st.series_runs += 1;
            family_cache.insert(series.to_string(), (SeriesRef(0), labels));
        }
        let Some((r, labels)) = family_cache.get_mut(series) else {
            continue; // inserted just above
        };
        let v = parse_value(value).ok_or_else(|| perr(lineno, format!("bad value {value:?}")))?;
        let Some(ts) = ts else {
            return Err(perr(lineno, "sample without timestamp".into()));
        };
        let t =
            parse_ts_seconds(ts).ok_or_else(|| perr(lineno, format!("bad timestamp {ts:?}")))?;
        match app.append(*r, labels, t, v) {
            Ok(nr) => {
                *r = nr;
                in_batch += 1;
            }
            Err(e) if e.is_sample_error() => st.skipped += 1,
            Err(source) => {
                return Err(Error::Append {
                    path: file.to_path_buf(),
                    line: lineno,
                    source,
                })
            }
        }
        if in_batch >= BATCH {
            commit(&db, &mut app, file, lineno)?;
            since_flush += in_batch as u64;
            in_batch = 0;
            if since_flush >= FLUSH_EVERY {
                since_flush = 0;
                // Blocks while the previous flush still runs: memory stays bounded.
                let _ = tx.send(());
            }
        }
    }
    st.lines = lineno;
    commit(&db, &mut app, file, lineno)?;
    drop(tx);
    match flusher.join() {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::Io {
                op: "flushing (flush thread panicked) into",
                path: db.inner.opts.path.clone(),
                source: std::io::Error::other("flush thread panicked"),
            })
        }
    }
    db.close()?;
    st.samples = db.samples_appended() - appended_before;
    st.bytes_written = db.bytes_written() - written_before;
    st.disk_bytes = db.disk_bytes();
    st.elapsed = started.elapsed();
    Ok(st)
}

fn commit(
    db: &Arc<Tsdb>,
    app: &mut Box<dyn crate::storage::Appender>,
    file: &Path,
    line: u64,
) -> Result<(), Error> {
    let full = std::mem::replace(app, db.appender());
    let mut res = full.commit();
    // A failing commit here means too many samples wait: wait for the flusher and retry once.
    if let Err(StorageError::Write(_)) = &res {
        db.flush()?;
        res = Ok(());
    }
    res.map_err(|source| Error::Append {
        path: file.to_path_buf(),
        line,
        source,
    })
}

/// Splits a sample line into (series text, value, timestamp).
fn split_sample(l: &str) -> Result<(&str, &str, Option<&str>), &'static str> {
    // The series part ends after the closing brace (values may hold spaces) or at the first space.
    let end = match l.find('{') {
        Some(open) if l[..open].find(' ').is_none() => {
            let b = l.as_bytes();
            let mut i = open + 1;
            let mut in_q = false;
            loop {
                match b.get(i) {
                    None => return Err("unterminated label set"),
                    Some(b'\\') if in_q => i += 1,
                    Some(b'"') => in_q = !in_q,
                    Some(b'}') if !in_q => break,
                    _ => {}
                }
                i += 1;
            }
            i + 1
        }
        _ => l.find(' ').ok_or("sample line without value")?,
    };
    let series = &l[..end];
    let rest = l[end..].trim_start();
    let rest = rest.split(" # ").next().unwrap_or(rest);
    let mut it = rest.split_ascii_whitespace();
    let value = it.next().ok_or("sample line without value")?;
    Ok((series, value, it.next()))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_ts_seconds(s: &str) -> Option<i64> {
    if let Ok(i) = s.parse::<i64>() {
        return i.checked_mul(1000);
    }
    let f: f64 = s.parse().ok()?;
    let ms = (f * 1000.0).round();
    (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
}

/// Parses `name` or `name{a="b",...}` into labels.
fn parse_series(s: &str) -> Result<Labels, String> {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], Some(&s[i + 1..s.len() - 1])),
        None => (s, None),
    };
    if name.is_empty() && rest.is_none() {
        return Err("empty metric name".into());
    }
    let mut b = LabelsBuilder::new();
    if !name.is_empty() {
        b.set(crate::model::METRIC_NAME, name);
    }
    let Some(mut rest) = rest else {
        return Ok(b.build());
    };
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("label without '=' in {s:?}"))?;
        let lname = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| format!("unquoted label value in {s:?}"))?;
        let mut val = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => val.push('\n'),
                    Some((_, c2)) => val.push(c2),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => val.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {s:?}"))?;
        if lname.is_empty() {
            return Err(format!("empty label name in {s:?}"));
        }
        b.set(lname, val);
        rest = &body[end + 1..];
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_table() {
        type Split<'a> = Result<(&'a str, &'a str, Option<&'a str>), &'a str>;
        let cases: &[(&str, Split)] = &[
            ("up 1 1700000000", Ok(("up", "1", Some("1700000000")))),
            (
                r#"a{b="x y",c="}"} 2.5 17.5"#,
                Ok((r#"a{b="x y",c="}"}"#, "2.5", Some("17.5"))),
            ),
            (
                r#"a{b="q\"}"} NaN 1 # {t="1"} 1"#,
                Ok((r#"a{b="q\"}"}"#, "NaN", Some("1"))),
            ),
            ("up", Err("sample line without value")),
            (r#"a{b="x 1 2"#, Err("unterminated label set")),
        ];
        for (l, want) in cases {
            assert_eq!(&split_sample(l), want, "{l}");
        }
        let l = parse_series(r#"m{z="1",a="x\"y\\n\n"}"#).expect("parses");
        assert_eq!(l.get("a"), Some("x\"y\\n\n"));
        assert_eq!(l.metric_name(), Some("m"));
        assert!(parse_series(r#"m{a=1}"#).is_err());
        assert_eq!(parse_ts_seconds("1.5"), Some(1500));
        assert_eq!(parse_ts_seconds("17"), Some(17_000));
        assert_eq!(parse_ts_seconds("x"), None);
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
    }
}
