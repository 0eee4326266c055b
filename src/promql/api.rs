//! The Prometheus query HTTP API (<https://prometheus.io/docs/prometheus/latest/querying/api/>) as
//! one function, independent of the web server: the router hands over the path after its prefix and
//! the query-string plus form-body parameters, and gets back a status code and Prometheus's JSON.
//!
//! Covered: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/format_query`, `/api/v1/parse_query`,
//! `/api/v1/query_exemplars`. Errors use Prometheus's `errorType`s and status codes
//! (bad_data 400, execution 422, timeout/canceled 503, internal 500).

use std::io::Write;
use std::time::Duration;

use super::ast::{format_number, At, Card, Expr};
use super::engine::{Engine, MAX_POINTS_PER_SERIES};
use super::lexer::parse_duration;
use super::parse::parse;
use super::value::{Error, QueryResult, Value};
use crate::model::{Labels, Matcher};
use crate::storage::{Queryable, SelectHints};

/// What a handler needs.
pub struct ApiContext<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The storage.
    pub queryable: &'a dyn Queryable,
    /// "Now" in ms (the default `time` of instant queries).
    pub now_ms: i64,
}

/// A response: status code and JSON body.
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Earliest time accepted when `start` is omitted (far past, still safe to subtract from).
const MIN_TIME: i64 = i64::MIN / 4;
/// Latest time accepted when `end` is omitted.
const MAX_TIME: i64 = i64::MAX / 4;

struct ApiError {
    kind: &'static str,
    msg: String,
}

impl ApiError {
    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError {
            kind: "bad_data",
            msg: msg.into(),
        }
    }
    fn status(&self) -> u16 {
        match self.kind {
            "bad_data" => 400,
            "execution" => 422,
            "timeout" | "canceled" => 503,
            _ => 500,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError {
            kind: e.error_type(),
            msg: e.to_string(),
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> ApiError {
        ApiError {
            kind: "internal",
            msg: e.to_string(),
        }
    }
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn params_all<'p>(params: &'p [(String, String)], name: &str) -> Vec<&'p str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Handles one API request; `None` when `path` is not an endpoint of this module.
pub fn handle(path: &str, params: &[(String, String)], ctx: &ApiContext) -> Option<ApiResponse> {
    let r = match path {
        "/api/v1/query" => query(params, ctx),
        "/api/v1/query_range" => query_range(params, ctx),
        "/api/v1/series" => series(params, ctx),
        "/api/v1/labels" => labels(params, ctx),
        "/api/v1/format_query" => format_query(params),
        "/api/v1/parse_query" => parse_query(params),
        "/api/v1/query_exemplars" => exemplars(params),
        p => match p
            .strip_prefix("/api/v1/label/")
            .and_then(|r| r.strip_suffix("/values"))
        {
            Some(name) => label_values(name, params, ctx),
            None => return None,
        },
    };
    Some(match r {
        Ok(body) => ApiResponse { status: 200, body },
        Err(e) => {
            let mut b = Vec::new();
            let _ = write!(
                b,
                "{{\"status\":\"error\",\"errorType\":\"{}\",\"error\":",
                e.kind
            );
            json_str(&mut b, &e.msg);
            b.push(b'}');
            ApiResponse {
                status: e.status(),
                body: b,
            }
        }
    })
}

/// Parses a time parameter: Unix seconds (float) or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        return Some((f * 1000.0).round() as i64);
    }
    parse_rfc3339(s)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |a: usize, e: usize| -> Option<i64> { s.get(a..e)?.parse().ok() };
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(st..i)?;
        if frac.is_empty() {
            return None;
        }
        let padded: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
        ms = padded.parse().ok()?;
    }
    let off = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        b'+' | b'-' if i + 6 == b.len() && b[i + 3] == b':' => {
            let v = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if b[i] == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant)
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se - off) * 1000 + ms)
}

fn time_param(params: &[(String, String)], name: &str, default: i64) -> Result<i64, ApiError> {
    match param(params, name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::bad(format!(
                "invalid parameter \"{name}\": cannot parse {:?} to a valid timestamp",
                v
            ))
        }),
    }
}

/// Parses a duration parameter: float seconds or a Prometheus duration.
fn parse_dur(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f * 1000.0 > i64::MAX as f64 || f * 1000.0 < i64::MIN as f64 {
            return None;
        }
        return Some((f * 1000.0).round() as i64);
    }
    parse_duration(s)
}

fn timeout_param(params: &[(String, String)]) -> Result<Option<Duration>, ApiError> {
    match param(params, "timeout") {
        None | Some("") => Ok(None),
        Some(v) => match parse_dur(v) {
            Some(ms) if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
            _ => Err(ApiError::bad(format!(
                "invalid parameter \"timeout\": cannot parse {v:?} to a valid duration"
            ))),
        },
    }
}

fn query_param(params: &[(String, String)]) -> Result<(&str, Expr), ApiError> {
    let q = param(params, "query").unwrap_or("");
    let e = parse(q).map_err(|e| ApiError::bad(format!("invalid parameter \"query\": {e}")))?;
    Ok((q, e))
}

fn query(params: &[(String, String)], ctx: &ApiContext) -> Result<Vec<u8>, ApiError> {
    let (q, e) = query_param(params)?;
    let t = time_param(params, "time", ctx.now_ms)?;
    let timeout = timeout_param(params)?;
    let r = ctx
        .engine
        .exec(ctx.queryable, &e, q, t, t, 0, false, timeout)?;
    Ok(success_result(&r, stats_param(params)))
}

fn query_range(params: &[(String, String)], ctx: &ApiContext) -> Result<Vec<u8>, ApiError> {
    let start = match param(params, "start") {
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::bad(format!(
                "invalid parameter \"start\": cannot parse {v:?} to a valid timestamp"
            ))
        })?,
        None => {
            return Err(ApiError::bad(
                "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
            ))
        }
    };
    let end = match param(params, "end") {
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::bad(format!(
                "invalid parameter \"end\": cannot parse {v:?} to a valid timestamp"
            ))
        })?,
        None => {
            return Err(ApiError::bad(
                "invalid parameter \"end\": cannot parse \"\" to a valid timestamp",
            ))
        }
    };
    if end < start {
        return Err(ApiError::bad("end timestamp must not be before start time"));
    }
    let step_s = param(params, "step").unwrap_or("");
    let step = parse_dur(step_s).ok_or_else(|| {
        ApiError::bad(format!(
            "invalid parameter \"step\": cannot parse {step_s:?} to a valid duration"
        ))
    })?;
    if step <= 0 {
        return Err(ApiError::bad("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
    }
    let timeout = timeout_param(params)?;
    let (q, e) = query_param(params)?;
    let r = ctx
        .engine
        .exec(ctx.queryable, &e, q, start, end, step, true, timeout)?;
    Ok(success_result(&r, stats_param(params)))
}

fn matchers_params(params: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for m in params_all(params, "match[]") {
        let e =
            parse(m).map_err(|e| ApiError::bad(format!("invalid parameter \"match[]\": {e}")))?;
        match e {
            Expr::Vector(vs) => out.push(vs.matchers),
            _ => return Err(ApiError::bad(format!("invalid parameter \"match[]\": 1:1: parse error: expected type instant vector in match[] {m:?}"))),
        }
    }
    Ok(out)
}

fn limit_param(params: &[(String, String)]) -> Result<usize, ApiError> {
    match param(params, "limit") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad("limit must be a positive number")),
    }
}

fn series(params: &[(String, String)], ctx: &ApiContext) -> Result<Vec<u8>, ApiError> {
    let sets = matchers_params(params)?;
    if sets.is_empty() {
        return Err(ApiError::bad("no match[] parameter provided"));
    }
    let start = time_param(params, "start", MIN_TIME)?;
    let end = time_param(params, "end", MAX_TIME)?;
    let limit = limit_param(params)?;
    let q = ctx.queryable.querier(start, end)?;
    let mut all: Vec<Labels> = Vec::new();
    for ms in &sets {
        let hints = SelectHints {
            start,
            end,
            step: 0,
            range: 0,
            func: Some("series".into()),
        };
        let mut set = q.select(&hints, ms);
        for s in set.by_ref() {
            all.push(s.labels);
        }
        set.take_err()?;
    }
    all.sort();
    all.dedup();
    let mut warnings = Vec::new();
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    let mut b = Vec::new();
    b.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        json_labels(&mut b, l);
    }
    b.push(b']');
    json_annotations(&mut b, &warnings, &[]);
    b.push(b'}');
    Ok(b)
}

fn string_list(values: Vec<String>, limit: usize) -> Vec<u8> {
    let mut values = values;
    let mut warnings = Vec::new();
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    let mut b = Vec::new();
    b.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        json_str(&mut b, v);
    }
    b.push(b']');
    json_annotations(&mut b, &warnings, &[]);
    b.push(b'}');
    b
}

fn labels(params: &[(String, String)], ctx: &ApiContext) -> Result<Vec<u8>, ApiError> {
    let sets = matchers_params(params)?;
    let start = time_param(params, "start", MIN_TIME)?;
    let end = time_param(params, "end", MAX_TIME)?;
    let limit = limit_param(params)?;
    let q = ctx.queryable.querier(start, end)?;
    let mut names: Vec<String> = Vec::new();
    if sets.is_empty() {
        names = q.label_names(&[])?;
    } else {
        for ms in &sets {
            names.extend(q.label_names(ms)?);
        }
        names.sort();
        names.dedup();
    }
    Ok(string_list(names, limit))
}

fn label_values(
    name: &str,
    params: &[(String, String)],
    ctx: &ApiContext,
) -> Result<Vec<u8>, ApiError> {
    // Prometheus 3 accepts `U__`-escaped UTF-8 names; plain names are taken as they are.
    let name = unescape_label_name(name);
    if name.is_empty() || name.contains('/') {
        return Err(ApiError::bad(format!("invalid label name: {name:?}")));
    }
    let sets = matchers_params(params)?;
    let start = time_param(params, "start", MIN_TIME)?;
    let end = time_param(params, "end", MAX_TIME)?;
    let limit = limit_param(params)?;
    let q = ctx.queryable.querier(start, end)?;
    let mut vals: Vec<String> = Vec::new();
    if sets.is_empty() {
        vals = q.label_values(&name, &[])?;
    } else {
        for ms in &sets {
            vals.extend(q.label_values(&name, ms)?);
        }
        vals.sort();
        vals.dedup();
    }
    Ok(string_list(vals, limit))
}

/// Decodes Prometheus's `U__` label-name escaping (`U__http_2e_method` -> `http.method`):
/// `__` is `_`, `_<hex>_` a code point; anything malformed is taken literally.
fn unescape_label_name(s: &str) -> String {
    let Some(rest) = s.strip_prefix("U__") else {
        return s.to_string();
    };
    let c: Vec<char> = rest.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] != '_' {
            out.push(c[i]);
            i += 1;
            continue;
        }
        if c.get(i + 1) == Some(&'_') {
            out.push('_');
            i += 2;
            continue;
        }
        let Some(j) = c[i + 1..].iter().position(|x| *x == '_') else {
            return s.to_string();
        };
        let hex: String = c[i + 1..i + 1 + j].iter().collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return s.to_string(),
        }
        i += j + 2;
    }
    out
}

fn format_query(params: &[(String, String)]) -> Result<Vec<u8>, ApiError> {
    let (_, e) = query_param(params)?;
    let mut b = Vec::new();
    b.extend_from_slice(b"{\"status\":\"success\",\"data\":");
    json_str(&mut b, &e.to_string());
    b.push(b'}');
    Ok(b)
}

fn parse_query(params: &[(String, String)]) -> Result<Vec<u8>, ApiError> {
    let (_, e) = query_param(params)?;
    let v = ast_json(&e);
    let mut b = Vec::new();
    b.extend_from_slice(b"{\"status\":\"success\",\"data\":");
    let _ = serde_json::to_writer(&mut b, &v);
    b.push(b'}');
    Ok(b)
}

fn exemplars(params: &[(String, String)]) -> Result<Vec<u8>, ApiError> {
    query_param(params)?;
    Ok(b"{\"status\":\"success\",\"data\":[]}".to_vec())
}

fn at_json(at: &Option<At>) -> (serde_json::Value, serde_json::Value) {
    use serde_json::Value as J;
    match at {
        Some(At::Time(t)) => (J::from(*t), J::Null),
        Some(At::Start) => (J::Null, J::from("start")),
        Some(At::End) => (J::Null, J::from("end")),
        None => (J::Null, J::Null),
    }
}

/// The syntax tree as JSON, in the shape of Prometheus's `translateAST` (used by its UI).
fn ast_json(e: &Expr) -> serde_json::Value {
    use serde_json::json;
    let matchers = |ms: &[Matcher]| -> serde_json::Value {
        ms.iter()
            .map(|m| json!({"type": m.kind.to_string(), "name": m.name, "value": m.value}))
            .collect()
    };
    match e {
        Expr::Number(v, _) => json!({"type": "numberLiteral", "val": format_number(*v)}),
        Expr::String(s, _) => json!({"type": "stringLiteral", "val": s}),
        Expr::Paren(x, _) => json!({"type": "parenExpr", "expr": ast_json(x)}),
        Expr::Neg(x, _) => json!({"type": "unaryExpr", "op": "-", "expr": ast_json(x)}),
        Expr::Vector(vs) => {
            let (ts, se) = at_json(&vs.at);
            json!({"type": "vectorSelector", "name": vs.name.clone().unwrap_or_default(), "offset": vs.offset,
                   "matchers": matchers(&vs.matchers), "timestamp": ts, "startOrEnd": se})
        }
        Expr::Matrix(vs, r) => {
            let (ts, se) = at_json(&vs.at);
            json!({"type": "matrixSelector", "name": vs.name.clone().unwrap_or_default(), "range": r, "offset": vs.offset,
                   "matchers": matchers(&vs.matchers), "timestamp": ts, "startOrEnd": se})
        }
        Expr::Subquery {
            expr,
            range,
            step,
            offset,
            at,
            ..
        } => {
            let (ts, se) = at_json(at);
            json!({"type": "subquery", "expr": ast_json(expr), "range": range, "offset": offset, "step": step,
                   "timestamp": ts, "startOrEnd": se})
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
        } => {
            let m = matching.as_ref().map(|m| {
                let card = match m.card {
                    Card::OneToOne => "one-to-one",
                    Card::ManyToOne => "many-to-one",
                    Card::OneToMany => "one-to-many",
                    Card::ManyToMany => "many-to-many",
                };
                json!({"card": card, "labels": m.labels, "on": m.on, "include": m.include})
            });
            json!({"type": "binaryExpr", "op": op.as_str(), "lhs": ast_json(lhs), "rhs": ast_json(rhs),
                   "matching": m, "bool": return_bool})
        }
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => json!({
            "type": "aggregation", "op": op.as_str(), "expr": ast_json(expr),
            "param": param.as_ref().map(|p| ast_json(p)), "grouping": grouping, "without": without}),
        Expr::Call { func, args, .. } => json!({
            "type": "call",
            "func": {"name": func.name, "argTypes": func.args.iter().map(|a| a.name()).collect::<Vec<_>>(),
                     "variadic": func.variadic, "returnType": func.ret.name()},
            "args": args.iter().map(ast_json).collect::<Vec<_>>()}),
    }
}

fn json_str(b: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *b, s);
}

/// Prometheus's timestamp encoding: seconds with exactly three decimals when not whole.
fn json_ts(b: &mut Vec<u8>, t: i64) {
    let (neg, t) = if t < 0 {
        (true, -(t as i128))
    } else {
        (false, t as i128)
    };
    if neg {
        b.push(b'-');
    }
    let _ = write!(b, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(b, ".{frac:03}");
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with `+Inf`/`-Inf`/`NaN`.
fn json_val(b: &mut Vec<u8>, v: f64) {
    b.push(b'"');
    b.extend_from_slice(format_number(v).as_bytes());
    b.push(b'"');
}

fn json_labels(b: &mut Vec<u8>, l: &Labels) {
    b.push(b'{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        json_str(b, &lb.name);
        b.push(b':');
        json_str(b, &lb.value);
    }
    b.push(b'}');
}

fn json_annotations(b: &mut Vec<u8>, warnings: &[String], infos: &[String]) {
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(b, ",\"{key}\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            json_str(b, w);
        }
        b.push(b']');
    }
}

/// The JSON of a successful query, exactly as Prometheus's API shapes it.
pub fn result_json(r: &QueryResult) -> Vec<u8> {
    success_result(r, Stats::None)
}

/// What the `stats` parameter asks for: nothing, the built-in statistics, or (`stats=all`) also
/// the per-step counts, as Prometheus's API decides it.
#[derive(Clone, Copy, PartialEq)]
enum Stats {
    None,
    Builtin,
    All,
}

fn stats_param(params: &[(String, String)]) -> Stats {
    match param(params, "stats") {
        None | Some("") => Stats::None,
        Some("all") => Stats::All,
        Some(_) => Stats::Builtin,
    }
}

fn success_result(r: &QueryResult, stats: Stats) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    let _ = write!(
        b,
        "{{\"status\":\"success\",\"data\":{{\"resultType\":\"{}\",\"result\":",
        r.value.type_name()
    );
    match &r.value {
        Value::Scalar { t, v } => {
            b.push(b'[');
            json_ts(&mut b, *t);
            b.push(b',');
            json_val(&mut b, *v);
            b.push(b']');
        }
        Value::String { t, s } => {
            b.push(b'[');
            json_ts(&mut b, *t);
            b.push(b',');
            json_str(&mut b, s);
            b.push(b']');
        }
        Value::Vector(v) => {
            b.push(b'[');
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(b"{\"metric\":");
                json_labels(&mut b, &s.metric);
                b.extend_from_slice(b",\"value\":[");
                json_ts(&mut b, s.t);
                b.push(b',');
                json_val(&mut b, s.v);
                b.extend_from_slice(b"]}");
            }
            b.push(b']');
        }
        Value::Matrix(m) => {
            b.push(b'[');
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(b"{\"metric\":");
                json_labels(&mut b, &s.metric);
                b.extend_from_slice(b",\"values\":[");
                for (k, p) in s.points.iter().enumerate() {
                    if k > 0 {
                        b.push(b',');
                    }
                    b.push(b'[');
                    json_ts(&mut b, p.0);
                    b.push(b',');
                    json_val(&mut b, p.1);
                    b.push(b']');
                }
                b.extend_from_slice(b"]}");
            }
            b.push(b']');
        }
    }
    if stats != Stats::None {
        // Prometheus's `util/stats` shape; durations in seconds.
        let t = &r.timings;
        let _ = write!(
            b,
            ",\"stats\":{{\"timings\":{{\"evalTotalTime\":{},\"resultSortTime\":{},\"queryPreparationTime\":{},\"innerEvalTime\":{},\"execQueueTime\":{},\"execTotalTime\":{}}},\"samples\":{{",
            t.eval_total.as_secs_f64(),
            t.result_sort.as_secs_f64(),
            t.query_preparation.as_secs_f64(),
            t.inner_eval.as_secs_f64(),
            t.exec_queue.as_secs_f64(),
            t.exec_total.as_secs_f64(),
        );
        // `[[<unix seconds>, <count>], ...]`, omitted when empty (Prometheus's `omitempty`).
        if stats == Stats::All && !r.samples_per_step.is_empty() {
            b.extend_from_slice(b"\"totalQueryableSamplesPerStep\":[");
            for (k, (ts, c)) in r.samples_per_step.iter().enumerate() {
                if k > 0 {
                    b.push(b',');
                }
                b.push(b'[');
                json_ts(&mut b, *ts);
                let _ = write!(b, ",{c}]");
            }
            b.extend_from_slice(b"],");
        }
        let _ = write!(
            b,
            "\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
            r.samples, r.peak_samples
        );
    }
    b.push(b'}');
    json_annotations(&mut b, &r.warnings, &r.infos);
    b.push(b'}');
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{EngineOptions, MemStore};

    fn store() -> MemStore {
        let s = MemStore::new();
        for (job, inst, mult) in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 3.0)] {
            let l =
                Labels::from_pairs([("__name__", "up_total"), ("job", job), ("instance", inst)]);
            for i in 0..=10 {
                s.add(&l, i * 60_000, i as f64 * mult);
            }
        }
        s
    }

    fn call(path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let s = store();
        let e = Engine::new(EngineOptions::default());
        let ctx = ApiContext {
            engine: &e,
            queryable: &s,
            now_ms: 600_000,
        };
        let p: Vec<(String, String)> = params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        match handle(path, &p, &ctx) {
            Some(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
            None => (404, String::new()),
        }
    }

    /// `stats=all` reports real timings (seconds) and sample counts, nested as Prometheus nests
    /// them: the total covers the queue and evaluation, evaluation covers its parts.
    #[test]
    fn stats_report_real_timings() {
        for (path, params) in [
            (
                "/api/v1/query",
                &[
                    ("query", "sum(rate(up_total[5m]))"),
                    ("time", "600"),
                    ("stats", "all"),
                ][..],
            ),
            (
                "/api/v1/query_range",
                &[
                    ("query", "up_total * 2"),
                    ("start", "0"),
                    ("end", "600"),
                    ("step", "60"),
                    ("stats", "all"),
                ][..],
            ),
        ] {
            let (code, body) = call(path, params);
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            let st = &v["data"]["stats"];
            let t = |k: &str| st["timings"][k].as_f64().unwrap_or(-1.0);
            for k in [
                "evalTotalTime",
                "resultSortTime",
                "queryPreparationTime",
                "innerEvalTime",
                "execQueueTime",
                "execTotalTime",
            ] {
                assert!(t(k) >= 0.0, "{path} {k}: {body}");
            }
            assert!(t("execTotalTime") > 0.0, "{path}: {body}");
            assert!(t("innerEvalTime") > 0.0, "{path}: {body}");
            assert!(t("evalTotalTime") >= t("innerEvalTime"), "{path}: {body}");
            assert!(t("execTotalTime") >= t("evalTotalTime"), "{path}: {body}");
            let total = st["samples"]["totalQueryableSamples"].as_u64().unwrap_or(0);
            let peak = st["samples"]["peakSamples"].as_u64().unwrap_or(0);
            assert!(total > 0 && peak > 0 && peak <= total, "{path}: {body}");
        }
        // Without `stats` there is no stats object.
        let (_, body) = call("/api/v1/query", &[("query", "up_total"), ("time", "600")]);
        assert!(!body.contains("\"stats\""), "{body}");
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
        let cases: &[Case] = &[
            (
                "/api/v1/query",
                &[("query", "1+1"), ("time", "10")],
                200,
                r#"{"status":"success","data":{"resultType":"scalar","result":[10,"2"]}}"#,
            ),
            (
                "/api/v1/query",
                &[("query", "\"hi\""), ("time", "1.5")],
                200,
                r#"{"status":"success","data":{"resultType":"string","result":[1.500,"hi"]}}"#,
            ),
            (
                "/api/v1/query",
                &[
                    ("query", "sum by (job) (up_total)"),
                    ("time", "1970-01-01T00:10:00Z"),
                ],
                200,
                r#""result":[{"metric":{"job":"api"},"value":[600,"30"]},{"metric":{"job":"db"},"value":[600,"30"]}]"#,
            ),
            (
                "/api/v1/query",
                &[("query", "up_total{job=\"db\"} / 0"), ("time", "600")],
                200,
                r#""value":[600,"+Inf"]"#,
            ),
            (
                "/api/v1/query",
                &[("query", "0/0")],
                200,
                r#""result":[600,"NaN"]"#,
            ),
            (
                "/api/v1/query",
                &[("query", "rate(up_total{job=\"db\"}[5m])"), ("time", "600")],
                200,
                r#""value":[600,"0.05"]"#,
            ),
            (
                "/api/v1/query",
                &[("query", "sum(")],
                400,
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"#,
            ),
            (
                "/api/v1/query",
                &[("query", "up_total"), ("time", "yesterday")],
                400,
                r#"invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp"#,
            ),
            (
                "/api/v1/query",
                &[("query", "up_total + on(job) up_total")],
                422,
                r#""errorType":"execution""#,
            ),
            (
                "/api/v1/query_range",
                &[
                    ("query", "up_total{job=\"db\"}"),
                    ("start", "0"),
                    ("end", "120"),
                    ("step", "1m"),
                ],
                200,
                r#""result":[{"metric":{"__name__":"up_total","instance":"a","job":"db"},"values":[[0,"0"],[60,"3"],[120,"6"]]}]"#,
            ),
            (
                "/api/v1/query_range",
                &[
                    ("query", "time()"),
                    ("start", "0"),
                    ("end", "60"),
                    ("step", "30"),
                ],
                200,
                r#""values":[[0,"0"],[30,"30"],[60,"60"]]"#,
            ),
            (
                "/api/v1/query_range",
                &[("query", "1"), ("start", "10"), ("end", "0"), ("step", "1")],
                400,
                "end timestamp must not be before start time",
            ),
            (
                "/api/v1/query_range",
                &[
                    ("query", "1"),
                    ("start", "0"),
                    ("end", "100000"),
                    ("step", "1"),
                ],
                400,
                "exceeded maximum resolution of 11,000 points per timeseries",
            ),
            (
                "/api/v1/query_range",
                &[("query", "1"), ("start", "0"), ("end", "10"), ("step", "0")],
                400,
                "zero or negative query resolution step widths are not accepted",
            ),
            (
                "/api/v1/query_range",
                &[
                    ("query", "up_total[5m]"),
                    ("start", "0"),
                    ("end", "10"),
                    ("step", "1"),
                ],
                422,
                "invalid expression type \\\"range vector\\\" for range query",
            ),
            (
                "/api/v1/series",
                &[("match[]", "up_total{instance=\"b\"}")],
                200,
                r#"{"status":"success","data":[{"__name__":"up_total","instance":"b","job":"api"}]}"#,
            ),
            ("/api/v1/series", &[], 400, "no match[] parameter provided"),
            (
                "/api/v1/labels",
                &[],
                200,
                r#"{"status":"success","data":["__name__","instance","job"]}"#,
            ),
            (
                "/api/v1/label/job/values",
                &[],
                200,
                r#"{"status":"success","data":["api","db"]}"#,
            ),
            (
                "/api/v1/label/instance/values",
                &[("match[]", "{job=\"db\"}")],
                200,
                r#"{"status":"success","data":["a"]}"#,
            ),
            (
                "/api/v1/label/job/values",
                &[("limit", "1")],
                200,
                r#"{"status":"success","data":["api"],"warnings":["results truncated due to limit"]}"#,
            ),
            (
                "/api/v1/format_query",
                &[("query", "sum(rate(x[5m]))by(job)")],
                200,
                r#"{"status":"success","data":"sum by (job) (rate(x[5m]))"}"#,
            ),
            (
                "/api/v1/parse_query",
                &[("query", "x")],
                200,
                r#""type":"vectorSelector""#,
            ),
            (
                "/api/v1/query_exemplars",
                &[("query", "x")],
                200,
                r#"{"status":"success","data":[]}"#,
            ),
            ("/api/v1/nope", &[], 404, ""),
        ];
        for (path, params, status, want) in cases {
            let (st, body) = call(path, params);
            assert_eq!(st, *status, "{path} {params:?}: {body}");
            assert!(
                body.contains(want),
                "{path} {params:?}: body {body} lacks {want}"
            );
        }
    }

    #[test]
    fn times() {
        let cases = [
            ("0", Some(0)),
            ("1.5", Some(1500)),
            ("2015-07-01T20:10:51.781Z", Some(1_435_781_451_781)),
            ("2015-07-01T22:10:51+02:00", Some(1_435_781_451_000)),
            ("nope", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_time(s), want, "{s}");
        }
    }
}
