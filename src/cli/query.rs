//! `edgeprom query instant|range|series|labels`: the query API from a terminal, for people who
//! manage their boards over SSH. Like `promtool query`, but answers are printed as aligned tables
//! and a range query also draws a small line chart in Unicode braille (2×4 dots per cell).
//!
//! It speaks the Prometheus HTTP API, so it works against Prometheus too.

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http;

/// Arguments of `edgeprom query`.
#[derive(clap::Args, Debug)]
pub struct QueryCmd {
    #[command(subcommand)]
    kind: QueryKind,
}

#[derive(clap::Subcommand, Debug)]
enum QueryKind {
    /// Evaluate an expression at one instant (now by default).
    Instant {
        #[command(flatten)]
        common: Common,
        /// Evaluation time: RFC 3339, Unix seconds, `now` or `now-<duration>`.
        #[arg(long)]
        time: Option<String>,
        /// The PromQL expression.
        expr: String,
    },
    /// Evaluate an expression over a time range and chart it.
    Range {
        #[command(flatten)]
        common: Common,
        /// Start time (default: one hour before the end).
        #[arg(long)]
        start: Option<String>,
        /// End time (default: now).
        #[arg(long)]
        end: Option<String>,
        /// Resolution step: a duration (`15s`, `1m`) or seconds (default: range / 240, at least 1s).
        #[arg(long)]
        step: Option<String>,
        /// Print every sample after the chart.
        #[arg(long)]
        values: bool,
        /// Do not draw the chart.
        #[arg(long)]
        no_chart: bool,
        /// Chart height in text rows.
        #[arg(long, default_value_t = 12)]
        height: usize,
        /// The PromQL expression.
        expr: String,
    },
    /// List the series that match one or more selectors.
    Series {
        #[command(flatten)]
        common: Common,
        /// Start time.
        #[arg(long)]
        start: Option<String>,
        /// End time.
        #[arg(long)]
        end: Option<String>,
        /// Series selectors, e.g. `up` or `{job="node"}`.
        #[arg(required = true)]
        matchers: Vec<String>,
    },
    /// List label names, or the values of one label.
    Labels {
        #[command(flatten)]
        common: Common,
        /// Only labels of series matching these selectors.
        #[arg(long = "match")]
        matchers: Vec<String>,
        /// Start time.
        #[arg(long)]
        start: Option<String>,
        /// End time.
        #[arg(long)]
        end: Option<String>,
        /// A label name: list its values instead of the names.
        name: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct Common {
    /// The server's base URL (with its route prefix, if any).
    #[arg(long, env = "EDGEPROM_SERVER", default_value = "http://localhost:9090")]
    server: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// For https: PEM file of the CA (or the self-signed certificate) to trust instead of the
    /// system bundle.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// For https: accept any server certificate (no protection against interception).
    #[arg(long)]
    insecure_skip_verify: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Aligned text tables (and a chart for range queries).
    Table,
    /// The API's `data` as JSON.
    Json,
}

/// Why a query command failed.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(
        "invalid {what} {value:?}: expected RFC 3339, Unix seconds, `now` or `now-<duration>`"
    )]
    BadTime { what: &'static str, value: String },
    #[error("invalid step {0:?}: expected a duration such as 15s or 1m, or seconds")]
    BadStep(String),
    #[error("the server answered {status}: {errortype}: {error}")]
    Api {
        status: u16,
        errortype: String,
        error: String,
    },
    #[error("the server answered {status} with a body that is not Prometheus API JSON: {snippet}")]
    NotApi { status: u16, snippet: String },
    #[error("writing the output")]
    Output(#[source] std::io::Error),
}

/// Runs `edgeprom query ...`: prints the answer on stdout, errors on stderr. Colours are used
/// only on a terminal without `NO_COLOR`; the chart is as wide as `$COLUMNS` (80 by default).
pub fn run(cmd: QueryCmd) -> ExitCode {
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    run_with(
        cmd,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
        color,
    )
}

/// [`run`] writing to the given streams (for tests and embedding).
pub fn run_with(cmd: QueryCmd, out: &mut dyn Write, err: &mut dyn Write, color: bool) -> ExitCode {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(80)
        .clamp(30, 400);
    let mut out = out;
    match execute(cmd, &mut out, now_secs(), Style { color, width }) {
        Ok(()) => {
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = out.flush();
            let mut msg = format!("edgeprom query: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let _ = write!(msg, ": {s}");
                src = s.source();
            }
            let _ = writeln!(err, "{msg}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Style {
    color: bool,
    width: usize,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn execute(cmd: QueryCmd, out: &mut impl Write, now: f64, style: Style) -> Result<(), QueryError> {
    let w = |r: std::io::Result<()>| r.map_err(QueryError::Output);
    match cmd.kind {
        QueryKind::Instant { common, time, expr } => {
            let mut form = vec![("query", expr)];
            if let Some(t) = time {
                form.push(("time", fmt_num(parse_time(&t, now, "time")?)));
            }
            let data = call(&common, "query", &form)?;
            if common.format == Format::Json {
                return w(writeln!(out, "{data}"));
            }
            w(out.write_all(render_instant(&data).as_bytes()))
        }
        QueryKind::Range {
            common,
            start,
            end,
            step,
            values,
            no_chart,
            height,
            expr,
        } => {
            let end = match end {
                Some(e) => parse_time(&e, now, "end")?,
                None => now,
            };
            let start = match start {
                Some(s) => parse_time(&s, now, "start")?,
                None => end - 3600.0,
            };
            let step = match step {
                Some(s) => parse_step(&s)?,
                None => ((end - start) / 240.0).max(1.0).round(),
            };
            let form = vec![
                ("query", expr),
                ("start", fmt_num(start)),
                ("end", fmt_num(end)),
                ("step", fmt_num(step)),
            ];
            let data = call(&common, "query_range", &form)?;
            if common.format == Format::Json {
                return w(writeln!(out, "{data}"));
            }
            let series = matrix(&data);
            if series.is_empty() {
                return w(writeln!(out, "Empty query result."));
            }
            let mut text = String::new();
            if !no_chart {
                text.push_str(&render_chart(
                    &series,
                    start,
                    end,
                    height.clamp(2, 100),
                    style,
                ));
            }
            text.push_str(&render_range_table(&series, style));
            if values {
                for s in &series {
                    let _ = writeln!(text, "\n{}", s.name);
                    for (t, v) in &s.points {
                        let _ = writeln!(text, "  {}  {}", fmt_time(*t), fmt_value(*v));
                    }
                }
            }
            w(out.write_all(text.as_bytes()))
        }
        QueryKind::Series {
            common,
            start,
            end,
            matchers,
        } => {
            let mut form: Vec<(&str, String)> =
                matchers.into_iter().map(|m| ("match[]", m)).collect();
            push_range(&mut form, start, end, now)?;
            let data = call(&common, "series", &form)?;
            if common.format == Format::Json {
                return w(writeln!(out, "{data}"));
            }
            let mut text = String::new();
            for s in data.as_array().into_iter().flatten() {
                let _ = writeln!(text, "{}", series_name(s));
            }
            if text.is_empty() {
                text.push_str("No series match.\n");
            }
            w(out.write_all(text.as_bytes()))
        }
        QueryKind::Labels {
            common,
            matchers,
            start,
            end,
            name,
        } => {
            let mut form: Vec<(&str, String)> =
                matchers.into_iter().map(|m| ("match[]", m)).collect();
            push_range(&mut form, start, end, now)?;
            let path = match &name {
                Some(n) => format!("label/{}/values", encode_path(n)),
                None => "labels".to_string(),
            };
            let data = call(&common, &path, &form)?;
            if common.format == Format::Json {
                return w(writeln!(out, "{data}"));
            }
            let mut text = String::new();
            for v in data.as_array().into_iter().flatten() {
                let _ = writeln!(text, "{}", v.as_str().unwrap_or(""));
            }
            w(out.write_all(text.as_bytes()))
        }
    }
}

fn push_range(
    form: &mut Vec<(&str, String)>,
    start: Option<String>,
    end: Option<String>,
    now: f64,
) -> Result<(), QueryError> {
    if let Some(s) = start {
        form.push(("start", fmt_num(parse_time(&s, now, "start")?)));
    }
    if let Some(e) = end {
        form.push(("end", fmt_num(parse_time(&e, now, "end")?)));
    }
    Ok(())
}

fn encode_path(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Calls `api/v1/<path>` and returns `data`. Queries, series and label names go as a POST form,
/// so long expressions fit; label values are GET-only in Prometheus, as Grafana's client knows.
fn call(common: &Common, path: &str, form: &[(&str, String)]) -> Result<Value, QueryError> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let url = format!("{}/api/v1/{path}", common.server.trim_end_matches('/'));
    let timeout = Duration::from_secs_f64(common.timeout.clamp(0.1, 86400.0));
    let tls = http::TlsOptions {
        ca_file: common.ca_file.clone(),
        insecure_skip_verify: common.insecure_skip_verify,
    };
    let resp = if path.starts_with("label/") {
        let sep = if body.is_empty() { "" } else { "?" };
        http::request_with(
            &tls,
            "GET",
            &format!("{url}{sep}{body}"),
            &[],
            None,
            timeout,
        )?
    } else {
        http::request_with(
            &tls,
            "POST",
            &url,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
            timeout,
        )?
    };
    api_data(resp.status, &resp.body)
}

/// Unwraps a Prometheus API envelope.
fn api_data(status: u16, body: &[u8]) -> Result<Value, QueryError> {
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.chars().take(200).collect();
            return Err(QueryError::NotApi { status, snippet });
        }
    };
    if json.get("status").and_then(Value::as_str) == Some("success") {
        return Ok(json.get("data").cloned().unwrap_or(Value::Null));
    }
    let s = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if json.get("status").is_none() {
        let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
        return Err(QueryError::NotApi { status, snippet });
    }
    Err(QueryError::Api {
        status,
        errortype: s("errorType"),
        error: s("error"),
    })
}

// ---- times ----

fn parse_step(s: &str) -> Result<f64, QueryError> {
    let v = s
        .parse::<f64>()
        .ok()
        .or_else(|| parse_duration(s))
        .filter(|v| v.is_finite() && *v > 0.0);
    v.ok_or_else(|| QueryError::BadStep(s.to_string()))
}

/// `1h30m`, `500ms`, `2d` -> seconds (Prometheus's duration syntax).
fn parse_duration(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    let mut total = 0f64;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: f64 = s.get(start..i)?.parse().ok()?;
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match s.get(unit_start..i)? {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            "y" => 31_536_000.0,
            _ => return None,
        };
        total += n * mult;
    }
    Some(total)
}

/// RFC 3339, Unix seconds, `now`, `now-1h` or `-1h` -> Unix seconds.
fn parse_time(s: &str, now: f64, what: &'static str) -> Result<f64, QueryError> {
    let bad = || QueryError::BadTime {
        what,
        value: s.to_string(),
    };
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() { Ok(v) } else { Err(bad()) };
    }
    if t == "now" {
        return Ok(now);
    }
    if let Some(rel) = t.strip_prefix("now-").or_else(|| t.strip_prefix('-')) {
        return parse_duration(rel).map(|d| now - d).ok_or_else(bad);
    }
    if let Some(rel) = t.strip_prefix("now+") {
        return parse_duration(rel).map(|d| now + d).ok_or_else(bad);
    }
    parse_rfc3339(t).ok_or_else(bad)
}

/// `2024-01-02T03:04:05(.123)?(Z|+01:00)` -> Unix seconds.
fn parse_rfc3339(s: &str) -> Option<f64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let p = s.get(a..b)?;
        if p.bytes().all(|c| c.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = s.get(start..i)?.parse::<f64>().ok()?;
    }
    let offset = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds -> `2024-01-02 03:04:05Z` (UTC: the terminal may be on another zone than the board).
fn fmt_time(t: f64) -> String {
    let secs = t.floor() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let r = secs.rem_euclid(86400);
    let ms = ((t - t.floor()) * 1000.0).round() as i64;
    let base = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    );
    if ms > 0 && ms < 1000 {
        format!("{base}.{ms:03}Z")
    } else {
        format!("{base}Z")
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// 1234567 -> `1.23M` (SI prefixes).
fn humanize(v: f64) -> String {
    if !v.is_finite() {
        return fmt_value(v);
    }
    if v == 0.0 {
        return "0".into();
    }
    const P: [(f64, &str); 13] = [
        (1e24, "Y"),
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
        (1e-12, "p"),
    ];
    let a = v.abs();
    for (f, p) in P {
        if a >= f * 0.9995 {
            let x = v / f;
            let s = if x.abs() >= 99.95 {
                format!("{x:.0}")
            } else if x.abs() >= 9.995 {
                format!("{x:.1}")
            } else {
                format!("{x:.2}")
            };
            let s = if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
            return format!("{s}{p}");
        }
    }
    format!("{v:.2e}")
}

/// An axis label: humanized, unless that would make neighbouring labels equal (a narrow range
/// far from zero), in which case plain digits fine enough to tell the three labels apart.
fn axis_label(v: f64, range: f64) -> String {
    let scale = v.abs().max(range.abs());
    if range <= 0.0 || range / scale >= 0.05 {
        return humanize(v);
    }
    let prec = (-(range / 2.0).log10()).ceil().clamp(0.0, 12.0) as usize;
    format!("{v:.prec$}")
}

// ---- result shapes ----

fn label_map(metric: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = metric
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `{__name__:"up", job:"x"}` -> `up{job="x"}`.
fn series_name(metric: &Value) -> String {
    let labels = label_map(metric);
    let name = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if name.is_empty() || !rest.is_empty() {
        format!("{name}{{{}}}", rest.join(", "))
    } else {
        name.to_string()
    }
}

fn sample(v: &Value) -> Option<(f64, f64)> {
    let a = v.as_array()?;
    let t = a.first()?.as_f64()?;
    let val = parse_value(a.get(1)?.as_str()?);
    Some((t, val))
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

/// An aligned table: one column per label name present, then the value.
fn render_instant(data: &Value) -> String {
    let rtype = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data.get("result").cloned().unwrap_or(Value::Null);
    match rtype {
        "scalar" | "string" => {
            let (t, v) = match result.as_array() {
                Some(a) => (
                    a.first().and_then(Value::as_f64).unwrap_or(0.0),
                    a.get(1).and_then(Value::as_str).unwrap_or("").to_string(),
                ),
                None => (0.0, String::new()),
            };
            table(
                &["TYPE".into(), "VALUE".into(), "TIME".into()],
                &[vec![rtype.to_string(), v, fmt_time(t)]],
                &[false, true, false],
            )
        }
        "vector" => {
            let rows = result.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                return "Empty query result.\n".into();
            }
            let mut names: Vec<String> = rows
                .iter()
                .flat_map(|r| label_map(r.get("metric").unwrap_or(&Value::Null)))
                .map(|(k, _)| k)
                .collect();
            names.sort_by(|a, b| (a != "__name__", a).cmp(&(b != "__name__", b)));
            names.dedup();
            let mut header: Vec<String> = names
                .iter()
                .map(|n| {
                    if n == "__name__" {
                        "NAME".to_string()
                    } else {
                        n.clone()
                    }
                })
                .collect();
            header.push("VALUE".into());
            let mut right = vec![false; names.len()];
            right.push(true);
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let labels = label_map(r.get("metric").unwrap_or(&Value::Null));
                    let mut row: Vec<String> = names
                        .iter()
                        .map(|n| {
                            labels
                                .iter()
                                .find(|(k, _)| k == n)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    row.push(
                        r.get("value")
                            .and_then(sample)
                            .map(|(_, v)| fmt_value(v))
                            .unwrap_or_else(|| "(histogram)".into()),
                    );
                    row
                })
                .collect();
            table(&header, &body, &right)
        }
        "matrix" => {
            let mut s = String::new();
            for r in result.as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "{}",
                    series_name(r.get("metric").unwrap_or(&Value::Null))
                );
                for v in r
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some((t, val)) = sample(v) {
                        let _ = writeln!(s, "  {}  {}", fmt_time(t), fmt_value(val));
                    }
                }
            }
            if s.is_empty() {
                s.push_str("Empty query result.\n");
            }
            s
        }
        other => format!("Unexpected result type {other:?}.\n"),
    }
}

/// Column-aligned text; `right` marks right-aligned (numeric) columns.
fn table(header: &[String], rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate().take(cols) {
            let pad = w[i].saturating_sub(c.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < cols {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(header);
    for r in rows {
        line(r);
    }
    s
}

/// One series of a range result.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

fn matrix(data: &Value) -> Vec<Line> {
    data.get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| Line {
            name: series_name(r.get("metric").unwrap_or(&Value::Null)),
            points: r
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(sample)
                .collect(),
        })
        .collect()
}

/// ANSI colours for series (bright enough on dark and light terminals).
const COLORS: [u8; 6] = [34, 31, 32, 35, 33, 36];

fn render_range_table(series: &[Line], style: Style) -> String {
    let header: Vec<String> = ["", "SERIES", "MIN", "MAX", "LAST", "POINTS"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<String>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let finite = s.points.iter().map(|p| p.1).filter(|v| v.is_finite());
            let min = finite.clone().fold(f64::INFINITY, f64::min);
            let max = finite.fold(f64::NEG_INFINITY, f64::max);
            let last = s.points.last().map(|p| p.1).unwrap_or(f64::NAN);
            let mark = if style.color {
                format!("\x1b[{}m●\x1b[0m", COLORS[i % COLORS.len()])
            } else {
                format!("{}", i + 1)
            };
            vec![
                mark,
                s.name.clone(),
                if min.is_finite() {
                    humanize(min)
                } else {
                    "-".into()
                },
                if max.is_finite() {
                    humanize(max)
                } else {
                    "-".into()
                },
                humanize(last),
                s.points.len().to_string(),
            ]
        })
        .collect();
    // The colour escape codes are invisible: align on the visible text.
    let mut t = table(&header, &rows, &[false, false, true, true, true, true]);
    if style.color {
        t = t.replace("\x1b[0m ", "\x1b[0m").replace('●', "● ");
    }
    t
}

/// A braille line chart: each text cell holds 2×4 dots; a line is drawn between consecutive points.
fn render_chart(series: &[Line], start: f64, end: f64, height: usize, style: Style) -> String {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &(_, v) in &s.points {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !lo.is_finite() {
        return "(no finite values to chart)\n".into();
    }
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= d;
        hi += d;
    }
    let labels = [hi, (hi + lo) / 2.0, lo].map(|v| axis_label(v, hi - lo));
    let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let cols = style.width.saturating_sub(lw + 3).max(10);
    let (dw, dh) = (cols * 2, height * 4);
    // Per cell: the dot bits and the colour of the last series that drew there.
    let mut dots = vec![0u8; cols * height];
    let mut color = vec![usize::MAX; cols * height];
    let span = (end - start).max(1e-9);
    let mut plot = |x: i64, y: i64, si: usize| {
        if x < 0 || y < 0 || x as usize >= dw || y as usize >= dh {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        let cell = (y / 4) * cols + x / 2;
        // Braille dot numbering: left column 1,2,3,7; right column 4,5,6,8.
        const BITS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
        dots[cell] |= BITS[x % 2][y % 4];
        color[cell] = si;
    };
    for (si, s) in series.iter().enumerate() {
        let mut prev: Option<(i64, i64)> = None;
        for &(t, v) in &s.points {
            if !v.is_finite() {
                prev = None;
                continue;
            }
            let x = ((t - start) / span * (dw as f64 - 1.0)).round() as i64;
            let y = ((hi - v) / (hi - lo) * (dh as f64 - 1.0)).round() as i64;
            match prev {
                Some((px, py)) => {
                    // Bresenham between the previous point and this one.
                    let (dx, dy) = ((x - px).abs(), -(y - py).abs());
                    let (sx, sy) = (if px < x { 1 } else { -1 }, if py < y { 1 } else { -1 });
                    let (mut cx, mut cy, mut err) = (px, py, dx + dy);
                    loop {
                        plot(cx, cy, si);
                        if cx == x && cy == y {
                            break;
                        }
                        let e2 = 2 * err;
                        if e2 >= dy {
                            err += dy;
                            cx += sx;
                        }
                        if e2 <= dx {
                            err += dx;
                            cy += sy;
                        }
                    }
                }
                None => plot(x, y, si),
            }
            prev = Some((x, y));
        }
    }
    let mut out = String::new();
    for row in 0..height {
        let label = if row == 0 {
            &labels[0]
        } else if row == height / 2 {
            &labels[1]
        } else if row == height - 1 {
            &labels[2]
        } else {
            ""
        };
        let _ = write!(out, "{label:>lw$} ┤");
        for c in 0..cols {
            let i = row * cols + c;
            let ch = char::from_u32(0x2800 + u32::from(dots[i])).unwrap_or(' ');
            if style.color && dots[i] != 0 {
                let _ = write!(out, "\x1b[{}m{ch}\x1b[0m", COLORS[color[i] % COLORS.len()]);
            } else {
                out.push(ch);
            }
        }
        out.push('\n');
    }
    let (a, b) = (fmt_time(start), fmt_time(end));
    let gap = (cols + 1)
        .saturating_sub(a.chars().count() + b.chars().count())
        .max(1);
    let _ = writeln!(out, "{:lw$} └{}", "", "─".repeat(cols));
    let _ = writeln!(out, "{:lw$}  {a}{}{b}", "", " ".repeat(gap));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAIN: Style = Style {
        color: false,
        width: 60,
    };

    #[test]
    fn times() {
        let now = 1_700_000_000.0;
        let cases: &[(&str, Option<f64>)] = &[
            ("now", Some(now)),
            ("1700000123", Some(1_700_000_123.0)),
            ("1700000123.5", Some(1_700_000_123.5)),
            ("now-1h", Some(now - 3600.0)),
            ("-90s", Some(now - 90.0)),
            ("now+1m", Some(now + 60.0)),
            ("now-1h30m", Some(now - 5400.0)),
            ("1970-01-01T00:00:00Z", Some(0.0)),
            ("2023-11-14T22:13:20Z", Some(1_700_000_000.0)),
            ("2023-11-14T23:13:20+01:00", Some(1_700_000_000.0)),
            ("2023-11-14T22:13:20.250Z", Some(1_700_000_000.25)),
            ("2000-02-29T00:00:00Z", Some(951_782_400.0)),
            ("2023-13-01T00:00:00Z", None),
            ("2023-11-14", None),
            ("yesterday", None),
            ("now-", None),
            ("now-5x", None),
            ("NaN", None),
            ("2023-11-14T22:13:20", None),
        ];
        for (input, want) in cases {
            let got = parse_time(input, now, "time").ok();
            assert_eq!(got, *want, "{input}");
        }
        assert_eq!(fmt_time(1_700_000_000.0), "2023-11-14 22:13:20Z");
        assert_eq!(fmt_time(951_782_400.5), "2000-02-29 00:00:00.500Z");
        for s in [0i64, 951_782_400, 1_700_000_000, -86_400, 4_102_444_800] {
            let (y, m, d) = civil_from_days(s.div_euclid(86400));
            assert_eq!(days_from_civil(y, m, d) * 86400, s - s.rem_euclid(86400));
        }
    }

    #[test]
    fn steps() {
        let cases: &[(&str, Option<f64>)] = &[
            ("15", Some(15.0)),
            ("0.5", Some(0.5)),
            ("15s", Some(15.0)),
            ("1m", Some(60.0)),
            ("1h5m", Some(3900.0)),
            ("250ms", Some(0.25)),
            ("0", None),
            ("-5", None),
            ("abc", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_step(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn humanizes() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (999.0, "999"),
            (1234.0, "1.23k"),
            (1_500_000.0, "1.5M"),
            (-2_000_000_000.0, "-2G"),
            (0.0125, "12.5m"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (123.456, "123"),
        ];
        for (v, want) in cases {
            assert_eq!(humanize(*v), *want, "{v}");
        }
    }

    #[test]
    fn api_envelopes() {
        let ok = api_data(
            200,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
        )
        .expect("success");
        assert_eq!(ok["resultType"], "scalar");
        let cases: &[(u16, &[u8], &str)] = &[
            (
                400,
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
                "the server answered 400: bad_data: parse error at char 3",
            ),
            (404, b"404 page not found", "404 page not found"),
            (200, b"{}", "not Prometheus API JSON"),
        ];
        for (status, body, want) in cases {
            let err = api_data(*status, body).expect_err("error").to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn instant_tables_align_labels_and_values() {
        let data = json!({"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"node","instance":"localhost:9100"},"value":[1700000000,"1"]},
            {"metric":{"__name__":"up","job":"edgeprom-self","instance":"h:9090"},"value":[1700000000,"0.25"]},
            {"metric":{"job":"x"},"value":[1700000000,"NaN"]}
        ]});
        let got = render_instant(&data);
        let want = "\
NAME  instance        job            VALUE
up    localhost:9100  node               1
up    h:9090          edgeprom-self   0.25
                      x                NaN
";
        assert_eq!(got, want);
        assert_eq!(
            render_instant(&json!({"resultType":"vector","result":[]})),
            "Empty query result.\n"
        );
        assert_eq!(
            render_instant(&json!({"resultType":"scalar","result":[1700000000,"2"]})),
            "TYPE    VALUE  TIME\nscalar      2  2023-11-14 22:13:20Z\n"
        );
        assert!(render_instant(&json!({"resultType":"matrix","result":[
            {"metric":{"__name__":"a"},"values":[[1700000000,"1"],[1700000015,"2"]]}]}))
        .contains("a\n  2023-11-14 22:13:20Z  1\n  2023-11-14 22:13:35Z  2\n"));
        assert!(render_instant(&json!(null)).starts_with("Unexpected"));
    }

    fn dot_rows(chart: &str) -> Vec<Vec<u8>> {
        chart
            .lines()
            .filter(|l| l.contains('┤'))
            .map(|l| {
                l.split('┤')
                    .nth(1)
                    .unwrap_or("")
                    .chars()
                    .map(|c| (c as u32).wrapping_sub(0x2800) as u8)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn chart_draws_a_rising_line_from_bottom_left_to_top_right() {
        let s = Line {
            name: "x".into(),
            points: (0..=100).map(|i| (f64::from(i), f64::from(i))).collect(),
        };
        let chart = render_chart(&[s], 0.0, 100.0, 5, PLAIN);
        let rows = dot_rows(&chart);
        assert_eq!(rows.len(), 5);
        let cols = rows[0].len();
        assert!(cols >= 10);
        // Bottom-left and top-right cells are inked, top-left and bottom-right are not.
        assert_ne!(rows[4][0], 0, "{chart}");
        assert_ne!(rows[0][cols - 1], 0, "{chart}");
        assert_eq!(rows[0][0], 0, "{chart}");
        assert_eq!(rows[4][cols - 1], 0, "{chart}");
        // A continuous line inks every column.
        for c in 0..cols {
            assert!(rows.iter().any(|r| r[c] != 0), "column {c} empty:\n{chart}");
        }
        assert!(chart.contains("100 ┤"), "{chart}");
        assert!(chart.contains("0 ┤"), "{chart}");
        assert!(chart.contains("1970-01-01 00:00:00Z"));
    }

    #[test]
    fn chart_breaks_lines_at_nan_and_survives_odd_input() {
        let s = Line {
            name: "x".into(),
            points: vec![(0.0, 1.0), (50.0, f64::NAN), (100.0, 1.0)],
        };
        let chart = render_chart(&[s], 0.0, 100.0, 4, PLAIN);
        let rows = dot_rows(&chart);
        let inked: usize = rows
            .iter()
            .map(|r| r.iter().filter(|c| **c != 0).count())
            .sum();
        assert_eq!(inked, 2, "only the two isolated points:\n{chart}");
        // Nothing finite, all equal, a zero-length range: no panic, something sensible.
        let none = Line {
            name: "n".into(),
            points: vec![(0.0, f64::NAN)],
        };
        assert!(render_chart(&[none], 0.0, 0.0, 3, PLAIN).contains("no finite"));
        let flat = Line {
            name: "f".into(),
            points: vec![(0.0, 5.0), (1.0, 5.0)],
        };
        assert_eq!(
            dot_rows(&render_chart(&[flat], 0.0, 1.0, 3, PLAIN)).len(),
            3
        );
    }

    #[test]
    fn axis_labels_stay_distinct() {
        let cases: &[(f64, f64, &str)] = &[
            (1500.0, 3000.0, "1.5k"),
            (1.01, 0.01, "1.010"),
            (1.005, 0.01, "1.005"),
            (1_000_000.5, 1.0, "1000000.5"),
            (0.0, 0.0, "0"),
        ];
        for (v, range, want) in cases {
            assert_eq!(axis_label(*v, *range), *want, "{v} in {range}");
        }
    }

    #[test]
    fn range_table_lists_min_max_last() {
        let s = Line {
            name: "up{job=\"x\"}".into(),
            points: vec![(0.0, 3.0), (1.0, 1500.0), (2.0, 2.0)],
        };
        let t = render_range_table(&[s], PLAIN);
        assert_eq!(
            t,
            "   SERIES       MIN   MAX  LAST  POINTS\n1  up{job=\"x\"}    2  1.5k     2       3\n"
        );
    }
}
