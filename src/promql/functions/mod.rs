//! PromQL functions (<https://prometheus.io/docs/prometheus/latest/querying/functions/>): the
//! signature table the parser checks calls against, and one file per family of implementations.

pub(crate) mod histogram;
pub(crate) mod labels;
pub(crate) mod math;
pub(crate) mod over_time;
pub(crate) mod rate;
pub(crate) mod time;

use super::ast::ValueType;
use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as IV};

/// A function's signature.
#[derive(Debug, PartialEq)]
pub struct FuncDef {
    /// Name as written in queries.
    pub name: &'static str,
    /// Argument types; with `variadic != 0` the last one is optional (and repeatable).
    pub args: &'static [ValueType],
    /// 0: fixed arity; n > 0: up to n extra arguments of the last type; -1: unlimited.
    pub variadic: i32,
    /// Return type.
    pub ret: ValueType,
}

const fn f(
    name: &'static str,
    args: &'static [ValueType],
    variadic: i32,
    ret: ValueType,
) -> FuncDef {
    FuncDef {
        name,
        args,
        variadic,
        ret,
    }
}

/// Every function, as in Prometheus 3.x (`holt_winters` kept as the 2.x name of
/// `double_exponential_smoothing`).
pub static FUNCTIONS: &[FuncDef] = &[
    f("abs", &[IV], 0, IV),
    f("absent", &[IV], 0, IV),
    f("absent_over_time", &[M], 0, IV),
    f("acos", &[IV], 0, IV),
    f("acosh", &[IV], 0, IV),
    f("asin", &[IV], 0, IV),
    f("asinh", &[IV], 0, IV),
    f("atan", &[IV], 0, IV),
    f("atanh", &[IV], 0, IV),
    f("avg_over_time", &[M], 0, IV),
    f("ceil", &[IV], 0, IV),
    f("changes", &[M], 0, IV),
    f("clamp", &[IV, S, S], 0, IV),
    f("clamp_max", &[IV, S], 0, IV),
    f("clamp_min", &[IV, S], 0, IV),
    f("cos", &[IV], 0, IV),
    f("cosh", &[IV], 0, IV),
    f("count_over_time", &[M], 0, IV),
    f("days_in_month", &[IV], 1, IV),
    f("day_of_month", &[IV], 1, IV),
    f("day_of_week", &[IV], 1, IV),
    f("day_of_year", &[IV], 1, IV),
    f("deg", &[IV], 0, IV),
    f("delta", &[M], 0, IV),
    f("deriv", &[M], 0, IV),
    f("double_exponential_smoothing", &[M, S, S], 0, IV),
    f("exp", &[IV], 0, IV),
    f("first_over_time", &[M], 0, IV),
    f("end", &[], 0, S),
    f("floor", &[IV], 0, IV),
    f("histogram_avg", &[IV], 0, IV),
    f("histogram_count", &[IV], 0, IV),
    f("histogram_fraction", &[S, S, IV], 0, IV),
    f("histogram_quantile", &[S, IV], 0, IV),
    f("histogram_quantiles", &[IV, Str, S, S], -1, IV),
    f("histogram_stddev", &[IV], 0, IV),
    f("histogram_stdvar", &[IV], 0, IV),
    f("histogram_sum", &[IV], 0, IV),
    f("holt_winters", &[M, S, S], 0, IV),
    f("hour", &[IV], 1, IV),
    f("idelta", &[M], 0, IV),
    f("increase", &[M], 0, IV),
    f("info", &[IV, IV], 1, IV),
    f("irate", &[M], 0, IV),
    f("label_join", &[IV, Str, Str, Str], -1, IV),
    f("label_replace", &[IV, Str, Str, Str, Str], 0, IV),
    f("last_over_time", &[M], 0, IV),
    f("ln", &[IV], 0, IV),
    f("log10", &[IV], 0, IV),
    f("log2", &[IV], 0, IV),
    f("mad_over_time", &[M], 0, IV),
    f("max_of", &[S, S], 0, S),
    f("max_over_time", &[M], 0, IV),
    f("min_of", &[S, S], 0, S),
    f("min_over_time", &[M], 0, IV),
    f("minute", &[IV], 1, IV),
    f("month", &[IV], 1, IV),
    f("pi", &[], 0, S),
    f("predict_linear", &[M, S], 0, IV),
    f("present_over_time", &[M], 0, IV),
    f("quantile_over_time", &[S, M], 0, IV),
    f("range", &[], 0, S),
    f("rad", &[IV], 0, IV),
    f("rate", &[M], 0, IV),
    f("resets", &[M], 0, IV),
    f("round", &[IV, S], 1, IV),
    f("scalar", &[IV], 0, S),
    f("sgn", &[IV], 0, IV),
    f("sin", &[IV], 0, IV),
    f("sinh", &[IV], 0, IV),
    f("sort", &[IV], 0, IV),
    f("sort_by_label", &[IV, Str], -1, IV),
    f("sort_by_label_desc", &[IV, Str], -1, IV),
    f("sort_desc", &[IV], 0, IV),
    f("sqrt", &[IV], 0, IV),
    f("start", &[], 0, S),
    f("start_timestamp", &[IV], 0, IV),
    f("step", &[], 0, S),
    f("stddev_over_time", &[M], 0, IV),
    f("stdvar_over_time", &[M], 0, IV),
    f("sum_over_time", &[M], 0, IV),
    f("tan", &[IV], 0, IV),
    f("tanh", &[IV], 0, IV),
    f("time", &[], 0, S),
    f("timestamp", &[IV], 0, IV),
    f("ts_of_first_over_time", &[M], 0, IV),
    f("ts_of_last_over_time", &[M], 0, IV),
    f("ts_of_max_over_time", &[M], 0, IV),
    f("ts_of_min_over_time", &[M], 0, IV),
    f("vector", &[S], 0, IV),
    f("year", &[IV], 1, IV),
];

/// Finds a function by its exact name.
pub fn lookup(name: &str) -> Option<&'static FuncDef> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

use super::ast::Expr;
use super::engine::{absent_labels, Ev, Grid, Out, Pick, Steps, SS, V};
use super::value::{exec, Error};
use crate::model::{Labels, METRIC_NAME};

fn unwrap_paren(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(x, _) => unwrap_paren(x),
        _ => e,
    }
}

/// Applies `f` to every point, marking the name for removal.
fn map_points(
    mut v: Vec<SS>,
    g: Grid,
    drop: bool,
    mut f: impl FnMut(f64, usize) -> Option<f64>,
) -> Vec<SS> {
    for s in &mut v {
        s.pts.retain_mut(|p| match f(p.1, g.idx(p.0)) {
            Some(x) => {
                p.1 = x;
                true
            }
            None => false,
        });
        if drop {
            s.drop_name = true;
        }
    }
    v.retain(|s| !s.pts.is_empty());
    v
}

fn sort_key_cmp(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Evaluates a call of `f`.
pub(crate) fn call(
    ev: &mut Ev<'_>,
    f: &'static FuncDef,
    args: &[Expr],
    pos: usize,
    g: Grid,
) -> Result<V, Error> {
    let name = f.name;
    let n = g.n();
    check_extended_range(name, args)?;
    // Scalar-valued functions.
    match name {
        "time" => return Ok(V::Scalar((0..n).map(|i| g.t(i) as f64 / 1000.0).collect())),
        "pi" => return Ok(V::Scalar(vec![std::f64::consts::PI; n])),
        "start" => return Ok(V::Scalar(vec![ev.qstart as f64 / 1000.0; n])),
        "end" => return Ok(V::Scalar(vec![ev.qend as f64 / 1000.0; n])),
        "range" => return Ok(V::Scalar(vec![(ev.qend - ev.qstart) as f64 / 1000.0; n])),
        "step" => return Ok(V::Scalar(vec![ev.qstep as f64 / 1000.0; n])),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(&args[0], g)?;
            let b = ev.eval_scalar(&args[1], g)?;
            return Ok(V::Scalar(
                a.iter()
                    .zip(b.iter())
                    .map(|(&x, &y)| {
                        if x.is_nan() || y.is_nan() {
                            f64::NAN
                        } else if name == "min_of" {
                            x.min(y)
                        } else {
                            x.max(y)
                        }
                    })
                    .collect(),
            ));
        }
        "scalar" => {
            let v = ev.eval_vector(&args[0], g)?;
            let mut out = vec![f64::NAN; n];
            let mut cnt = vec![0u32; n];
            for s in &v {
                for p in &s.pts {
                    let i = g.idx(p.0);
                    cnt[i] += 1;
                    out[i] = p.1;
                }
            }
            for i in 0..n {
                if cnt[i] != 1 {
                    out[i] = f64::NAN;
                }
            }
            return Ok(V::Scalar(out));
        }
        "vector" => {
            let s = ev.eval_scalar(&args[0], g)?;
            let pts = (0..n).map(|i| (g.t(i), s[i])).collect();
            return Ok(V::Vec(vec![SS {
                labels: Labels::empty(),
                drop_name: false,
                pts,
            }]));
        }
        _ => {}
    }
    if let Some(fun) = math::unary(name) {
        let v = ev.eval_vector(&args[0], g)?;
        return Ok(V::Vec(map_points(v, g, true, |x, _| Some(fun(x)))));
    }
    if time::date_fn(name, 0.0).is_some() {
        if args.is_empty() {
            let pts = (0..n)
                .filter_map(|i| time::date_fn(name, g.t(i) as f64 / 1000.0).map(|v| (g.t(i), v)))
                .collect();
            return Ok(V::Vec(vec![SS {
                labels: Labels::empty(),
                drop_name: false,
                pts,
            }]));
        }
        let v = ev.eval_vector(&args[0], g)?;
        return Ok(V::Vec(map_points(v, g, true, |x, _| {
            time::date_fn(name, x)
        })));
    }
    match name {
        "round" => {
            let v = ev.eval_vector(&args[0], g)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, g)?,
                None => vec![1.0; n],
            };
            Ok(V::Vec(map_points(v, g, true, |x, i| {
                Some(math::round(x, to[i]))
            })))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(&args[0], g)?;
            let a = ev.eval_scalar(&args[1], g)?;
            let b = match args.get(2) {
                Some(e) => Some(ev.eval_scalar(e, g)?),
                None => None,
            };
            Ok(V::Vec(map_points(v, g, true, |x, i| match name {
                "clamp" => {
                    let (lo, hi) = (a[i], b.as_ref().map(|b| b[i]).unwrap_or(f64::NAN));
                    if hi < lo {
                        None
                    } else {
                        Some(math::clamp(x, lo, hi))
                    }
                }
                "clamp_min" => Some(if x.is_nan() || a[i].is_nan() {
                    f64::NAN
                } else {
                    x.max(a[i])
                }),
                _ => Some(if x.is_nan() || a[i].is_nan() {
                    f64::NAN
                } else {
                    x.min(a[i])
                }),
            })))
        }
        "start_timestamp" => {
            // Only a selector's samples carry start timestamps; any other expression gives
            // nothing (Prometheus's `funcStartTimestamp`).
            let mut v = match unwrap_paren(&args[0]) {
                Expr::Vector(vs) => ev.eval_selector(vs, g, Pick::StartTime)?,
                other => {
                    ev.eval_vector(other, g)?;
                    Vec::new()
                }
            };
            for s in &mut v {
                s.drop_name = true;
            }
            Ok(V::Vec(v))
        }
        "timestamp" => {
            let inner = unwrap_paren(&args[0]);
            let mut v = match inner {
                Expr::Vector(vs) => ev.eval_selector(vs, g, Pick::SampleTime)?,
                _ => {
                    let v = ev.eval_vector(inner, g)?;
                    map_points(v, g, false, |_, i| Some(g.t(i) as f64 / 1000.0))
                }
            };
            for s in &mut v {
                s.drop_name = true;
            }
            Ok(V::Vec(v))
        }
        "absent" => {
            let v = ev.eval_vector(&args[0], g)?;
            let mut present = vec![false; n];
            for s in &v {
                for p in &s.pts {
                    present[g.idx(p.0)] = true;
                }
            }
            let pts: Vec<(i64, f64)> = (0..n)
                .filter(|&i| !present[i])
                .map(|i| (g.t(i), 1.0))
                .collect();
            let out = if pts.is_empty() {
                vec![]
            } else {
                vec![SS {
                    labels: absent_labels(&args[0]),
                    drop_name: false,
                    pts,
                }]
            };
            Ok(V::Vec(out))
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(&args[0], g)?;
            if ev.range_query {
                ev.warn("sort is ineffective for range queries since results are always ordered by labels", pos);
                return Ok(V::Vec(v));
            }
            match name {
                "sort" | "sort_desc" => {
                    let desc = name == "sort_desc";
                    v.sort_by(|a, b| {
                        sort_key_cmp(
                            a.pts.first().map(|p| p.1).unwrap_or(f64::NAN),
                            b.pts.first().map(|p| p.1).unwrap_or(f64::NAN),
                            desc,
                        )
                    });
                }
                _ => {
                    let mut keys = Vec::new();
                    for a in &args[1..] {
                        keys.push(ev.eval_string(a, g)?);
                    }
                    let desc = name == "sort_by_label_desc";
                    v.sort_by(|a, b| {
                        for k in &keys {
                            let o = natural_cmp(
                                a.labels.get(k).unwrap_or(""),
                                b.labels.get(k).unwrap_or(""),
                            );
                            if o != std::cmp::Ordering::Equal {
                                return if desc { o.reverse() } else { o };
                            }
                        }
                        let o = a.labels.cmp(&b.labels);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                }
            }
            Ok(V::Vec(v))
        }
        "label_replace" => {
            let v = ev.eval_vector(&args[0], g)?;
            let dst = ev.eval_string(&args[1], g)?;
            let repl = ev.eval_string(&args[2], g)?;
            let src = ev.eval_string(&args[3], g)?;
            let re = ev.eval_string(&args[4], g)?;
            let r = labels::Replace::new(&dst, &repl, &src, &re)?;
            let mut out = Out::new();
            for s in v {
                let (l, drop) = match r.apply(&s.labels) {
                    Some(l) => (l, if r.sets_name() { false } else { s.drop_name }),
                    None => (s.labels, s.drop_name),
                };
                let i = out.slot(l, drop);
                for p in s.pts {
                    out.push_at(i, p.0, p.1)?;
                }
            }
            for s in &mut out.series {
                s.pts.sort_by_key(|p| p.0);
            }
            Ok(V::Vec(out.series))
        }
        "label_join" => {
            let v = ev.eval_vector(&args[0], g)?;
            let dst = ev.eval_string(&args[1], g)?;
            let sep = ev.eval_string(&args[2], g)?;
            let mut srcs = Vec::new();
            for a in &args[3..] {
                srcs.push(ev.eval_string(a, g)?);
            }
            if dst.is_empty() || std::str::from_utf8(dst.as_bytes()).is_err() {
                return Err(exec(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut out = Out::new();
            for s in v {
                let l = labels::join(&s.labels, &dst, &sep, &srcs);
                let drop = if dst == METRIC_NAME {
                    false
                } else {
                    s.drop_name
                };
                let i = out.slot(l, drop);
                for p in s.pts {
                    out.push_at(i, p.0, p.1)?;
                }
            }
            for s in &mut out.series {
                s.pts.sort_by_key(|p| p.0);
            }
            Ok(V::Vec(out.series))
        }
        "info" => info(ev, args, g),
        "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
            hist(ev, name, args, pos, g)
        }
        "histogram_avg" | "histogram_count" | "histogram_sum" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Only native histograms have these; edgeprom stores none.
            let _ = ev.eval_vector(&args[0], g)?;
            Ok(V::Vec(vec![]))
        }
        _ => range_call(ev, name, args, pos, g),
    }
}

/// `anchored` and `smoothed` windows hold samples outside the range, so only some functions may
/// take them (Prometheus's `AnchoredSafeFunctions` / `SmoothedSafeFunctions`); the error is raised
/// at evaluation, before any data is read, as Prometheus does.
fn check_extended_range(name: &str, args: &[Expr]) -> Result<(), Error> {
    const ANCHORED: &[&str] = &["changes", "delta", "increase", "rate", "resets"];
    const SMOOTHED: &[&str] = &["delta", "increase", "rate"];
    for a in args {
        if let Expr::Matrix(vs, _) = unwrap_paren(a) {
            let safe = match vs.ext {
                super::ast::Ext::None => continue,
                super::ast::Ext::Anchored => ANCHORED,
                super::ast::Ext::Smoothed => SMOOTHED,
            };
            if !safe.contains(&name) {
                return Err(exec(format!(
                    "{} modifier can only be used with: {} - not with {name}",
                    vs.ext.as_str(),
                    safe.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Compares strings with runs of digits compared as numbers (Prometheus's sort_by_label).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

fn hist(ev: &mut Ev<'_>, name: &str, args: &[Expr], pos: usize, g: Grid) -> Result<V, Error> {
    let n = g.n();
    // Quantile columns: one for histogram_quantile, one per extra argument for
    // histogram_quantiles (each adding a label with the quantile).
    let mut qs: Vec<(Option<String>, Vec<f64>)> = Vec::new();
    let mut qlabel = String::new();
    let (q, lower, upper, vec_arg) = if name == "histogram_quantile" {
        let q = ev.eval_scalar(&args[0], g)?;
        qs.push((None, q.clone()));
        (Some(q), None, None, &args[1])
    } else if name == "histogram_quantiles" {
        qlabel = ev.eval_string(&args[1], g)?;
        for a in &args[2..] {
            let q = ev.eval_scalar(a, g)?;
            let mut txt = super::ast::format_number(q.first().copied().unwrap_or(f64::NAN));
            if !txt.contains(['.', 'e', 'I', 'N']) {
                txt.push_str(".0");
            }
            qs.push((Some(txt), q));
        }
        (Some(vec![f64::NAN; 0]), None, None, &args[0])
    } else {
        (
            None,
            Some(ev.eval_scalar(&args[0], g)?),
            Some(ev.eval_scalar(&args[1], g)?),
            &args[2],
        )
    };
    let v = ev.eval_vector(vec_arg, g)?;
    // Group series by labels without `le` (and without the name).
    let mut groups: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut series_group: Vec<Option<(usize, f64)>> = Vec::with_capacity(v.len());
    for s in &v {
        let le = s.labels.get("le").and_then(parse_le);
        match le {
            None => {
                let metric = s.labels.metric_name().unwrap_or("").to_string();
                let raw = s.labels.get("le").unwrap_or("");
                ev.warn(
                    &format!("bucket label \"le\" is missing or has a malformed value of {} for metric name {}", super::ast::quote(raw), super::ast::quote(&metric)),
                    vec_arg.pos(),
                );
                series_group.push(None);
            }
            Some(le) => {
                // The name stays in the key and is dropped at the end (delayed name removal),
                // so two histograms that differ only by name collide as in Prometheus.
                let mut b = s.labels.builder();
                b.del("le");
                let k = b.into_labels();
                let gi = *groups.entry(k.clone()).or_insert_with(|| {
                    group_labels.push(k);
                    group_labels.len() - 1
                });
                series_group.push(Some((gi, le)));
            }
        }
    }
    for (_, q) in &qs {
        for &x in q.iter() {
            if !(0.0..=1.0).contains(&x) {
                ev.warn(
                    &format!(
                        "quantile value should be between 0 and 1, got {}",
                        super::ast::format_number(x)
                    ),
                    args[0].pos(),
                );
                break;
            }
        }
    }
    let mut out = Out::new();
    let ncols = qs.len().max(1);
    let mut slots: Vec<usize> = Vec::with_capacity(group_labels.len() * ncols);
    for l in &group_labels {
        if qs.is_empty() {
            slots.push(out.slot(l.clone(), true));
        }
        for (txt, _) in &qs {
            let l = match txt {
                Some(t) => {
                    let mut b = l.builder();
                    b.set(qlabel.clone(), t.clone());
                    b.into_labels()
                }
                None => l.clone(),
            };
            slots.push(out.slot(l, true));
        }
    }
    let mut steps = Steps::new(&v);
    let mut buckets: Vec<Vec<histogram::Bucket>> = vec![Vec::new(); group_labels.len()];
    for i in 0..n {
        let t = g.t(i);
        for b in buckets.iter_mut() {
            b.clear();
        }
        for &(j, val) in steps.at(t) {
            if let Some((gi, le)) = series_group[j] {
                buckets[gi].push(histogram::Bucket {
                    upper: le,
                    count: val,
                });
            }
        }
        for (gi, b) in buckets.iter().enumerate() {
            if b.is_empty() {
                continue;
            }
            if q.is_some() {
                for (qi, (_, qv)) in qs.iter().enumerate() {
                    let (r, forced) = histogram::bucket_quantile(qv[i], b.clone());
                    if forced {
                        let metric = v
                            .iter()
                            .find(|s| s.labels.get("le").is_some())
                            .and_then(|s| s.labels.metric_name())
                            .unwrap_or("");
                        let metric = metric.strip_suffix("_bucket").unwrap_or(metric).to_string();
                        ev.info(
                            &format!("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {}", super::ast::quote(&metric)),
                            vec_arg.pos(),
                        );
                    }
                    out.push_at(slots[gi * ncols + qi], t, r)?;
                }
                continue;
            }
            let val = histogram::bucket_fraction(
                lower.as_ref().map(|l| l[i]).unwrap_or(f64::NAN),
                upper.as_ref().map(|u| u[i]).unwrap_or(f64::NAN),
                b.clone(),
            );
            out.push_at(slots[gi], t, val)?;
        }
    }
    let _ = pos;
    Ok(V::Vec(
        out.series
            .into_iter()
            .filter(|s| !s.pts.is_empty())
            .collect(),
    ))
}

fn parse_le(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}

fn range_call(ev: &mut Ev<'_>, name: &str, args: &[Expr], pos: usize, g: Grid) -> Result<V, Error> {
    let n = g.n();
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let res = match name {
        "rate" | "increase" | "delta" => {
            let counter = name != "delta";
            let is_rate = name == "rate";
            let mut warned = false;
            ev.over_windows_st(&args[0], g, |ev, w, _, labels| {
                if counter && !warned {
                    if let Some(m) = labels.metric_name() {
                        if !(m.ends_with("_total") || m.ends_with("_sum") || m.ends_with("_count") || m.ends_with("_bucket")) {
                            ev.info(&format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}", super::ast::quote(m)), args[0].pos());
                            warned = true;
                        }
                    }
                }
                let r = rate::extrapolated_rate(w, counter, is_rate);
                if r.overlap {
                    // `warn` keeps one copy per message, i.e. per metric name.
                    let m = labels.metric_name().unwrap_or("");
                    ev.warn(&format!("sample has start time that overlaps with previous sample timestamp for metric {}", super::ast::quote(m)), args[0].pos());
                }
                Ok(r.v)
            })?
        }
        "irate" => {
            ev.over_windows_st(&args[0], g, |_, w, _, _| Ok(rate::instant_value(w, true)))?
        }
        "idelta" => ev.over_windows(&args[0], g, |_, w, _, _| Ok(rate::instant_value(w, false)))?,
        "predict_linear" => {
            let t = ev.eval_scalar(&args[1], g)?;
            ev.over_windows(&args[0], g, |_, w, i, _| {
                Ok(over_time::predict_linear(w, t[i], w.t))
            })?
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let sf = ev.eval_scalar(&args[1], g)?;
            let tf = ev.eval_scalar(&args[2], g)?;
            ev.over_windows(&args[0], g, |_, w, i, _| {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(exec(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        go_float(sf[i])
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(exec(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        go_float(tf[i])
                    )));
                }
                Ok(over_time::double_exponential_smoothing(w, sf[i], tf[i]))
            })?
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(&args[0], g)?;
            if let Some(&bad) = q.iter().find(|x| !(0.0..=1.0).contains(*x)) {
                ev.warn(
                    &format!(
                        "quantile value should be between 0 and 1, got {}",
                        super::ast::format_number(bad)
                    ),
                    args[0].pos(),
                );
            }
            ev.over_windows(&args[1], g, |_, w, i, _| {
                Ok(over_time::quantile_over_time(w, q[i]))
            })?
        }
        "absent_over_time" => {
            let mut present = vec![false; n];
            ev.over_windows(&args[0], g, |_, w, i, _| {
                if !w.pts.is_empty() {
                    present[i] = true;
                }
                Ok(None)
            })?;
            let pts: Vec<(i64, f64)> = (0..n)
                .filter(|&i| !present[i])
                .map(|i| (g.t(i), 1.0))
                .collect();
            let out = if pts.is_empty() {
                vec![]
            } else {
                vec![SS {
                    labels: absent_labels(&args[0]),
                    drop_name: false,
                    pts,
                }]
            };
            return Ok(V::Vec(out));
        }
        _ => {
            if over_time::simple(
                name,
                &super::engine::Window {
                    pts: &[],
                    ext: super::ast::Ext::None,
                    start: 0,
                    end: 0,
                    range: 1,
                    t: 0,
                    sts: &[],
                },
            )
            .is_none()
            {
                return Err(exec(format!("function {name} is not implemented")));
            }
            let f = |_: &mut Ev<'_>, w: &super::engine::Window<'_>, _, _: &Labels| {
                Ok(over_time::simple(name, w).flatten())
            };
            if name == "resets" {
                ev.over_windows_st(&args[0], g, f)?
            } else {
                ev.over_windows(&args[0], g, f)?
            }
        }
    };
    let _ = pos;
    let mut res = res;
    if !keeps_name {
        for s in &mut res {
            s.drop_name = true;
        }
    }
    Ok(V::Vec(res))
}

/// Go's `%f` formatting (six decimals).
fn go_float(v: f64) -> String {
    format!("{v:.6}")
}

/// The time at which `info()` looks up info series, relative to the evaluation time: the `@` and
/// `offset` of the first selector in its argument, together with those of the subqueries around
/// that selector. `(Some(t), off)` means `t - off` at every step, `(None, off)` means `step - off`.
fn info_ref_time(ev: &Ev<'_>, e: &Expr, acc: (Option<i64>, i64)) -> Option<(Option<i64>, i64)> {
    let apply = |acc: (Option<i64>, i64), at: Option<i64>, off: i64| match at {
        Some(t) => (Some(t), off),
        None => (acc.0, acc.1 + off),
    };
    match e {
        Expr::Vector(vs) | Expr::Matrix(vs, _) => Some(apply(acc, ev.at_time(&vs.at), vs.offset)),
        Expr::Subquery {
            expr, offset, at, ..
        } => info_ref_time(ev, expr, apply(acc, ev.at_time(at), *offset)),
        Expr::Paren(x, _) | Expr::Neg(x, _) => info_ref_time(ev, x, acc),
        Expr::Binary { lhs, rhs, .. } => {
            info_ref_time(ev, lhs, acc).or_else(|| info_ref_time(ev, rhs, acc))
        }
        Expr::Aggregate { expr, param, .. } => info_ref_time(ev, expr, acc)
            .or_else(|| param.as_ref().and_then(|p| info_ref_time(ev, p, acc))),
        Expr::Call { args, .. } => args.iter().find_map(|a| info_ref_time(ev, a, acc)),
        Expr::Number(..) | Expr::String(..) => None,
    }
}

/// `info(v, {selector})` (Prometheus 3.x experimental, `promql/info.go`): adds the data labels of
/// info series (`target_info` by default) that share `instance` and `job` with each series of `v`.
///
/// - Info series are looked up as of the time the first selector of `v` reads (its `@` and
///   `offset`, and those of enclosing subqueries), with the lookback delta; of two info series
///   with the same name and identifying labels, the one with the newer sample wins.
/// - With only negative `__name__` matchers, `__name__=~".+_info"` is implied; without any,
///   `__name__="target_info"`. Series of `v` whose name matches those are passed through.
/// - Without a matching info series, a sample is kept unchanged unless a data-label matcher
///   rejects the empty value.
fn info(ev: &mut Ev<'_>, args: &[Expr], g: Grid) -> Result<V, Error> {
    use crate::model::{MatchType, Matcher};
    use std::collections::{HashMap, HashSet};
    const IDENT: [&str; 2] = ["instance", "job"];
    let base = ev.eval_vector(&args[0], g)?;
    let sel: Vec<Matcher> = match args.get(1).map(unwrap_paren) {
        Some(Expr::Vector(vs)) => vs.matchers.clone(),
        Some(_) => {
            return Err(exec(
                "expected a label selector as the second argument of info()",
            ))
        }
        None => vec![],
    };
    let mut name_ms: Vec<Matcher> = sel
        .iter()
        .filter(|m| m.name == METRIC_NAME)
        .cloned()
        .collect();
    if name_ms.is_empty() {
        name_ms.push(Matcher::equal(METRIC_NAME, "target_info"));
    } else if !name_ms
        .iter()
        .any(|m| matches!(m.kind, MatchType::Equal | MatchType::Regex))
    {
        let any_info = Matcher::new(MatchType::Regex, METRIC_NAME, ".+_info")
            .map_err(|e| exec(e.to_string()))?;
        name_ms.insert(0, any_info);
    }
    let data_ms: Vec<Matcher> = sel
        .iter()
        .filter(|m| m.name != METRIC_NAME)
        .cloned()
        .collect();
    // Info series themselves are not enriched.
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let name = s.labels.metric_name().unwrap_or("");
            name_ms.iter().all(|m| m.matches(name))
        })
        .collect();
    // Identifying-label values of the series to enrich; info series must carry one of them.
    let mut id_values: [HashSet<&str>; 2] = [HashSet::new(), HashSet::new()];
    for (s, _) in base.iter().zip(&ignored).filter(|(_, ig)| !**ig) {
        for (k, l) in IDENT.iter().enumerate() {
            if let Some(v) = s.labels.get(l) {
                id_values[k].insert(v);
            }
        }
    }
    let infos: Vec<SS> = if id_values.iter().all(|v| v.is_empty()) {
        Vec::new()
    } else {
        let mut all = name_ms.clone();
        all.extend(data_ms.iter().cloned());
        // Some matcher must not match the empty string for the store to select by it.
        if !all.iter().any(|m| !m.matches_empty()) {
            all.push(
                Matcher::new(MatchType::Regex, METRIC_NAME, ".+")
                    .map_err(|e| exec(e.to_string()))?,
            );
        }
        let (at, offset) = info_ref_time(ev, &args[0], (None, 0)).unwrap_or((None, 0));
        let vs = super::ast::VectorSelector {
            name: None,
            matchers: all,
            offset,
            at: at.map(super::ast::At::Time),
            pos: 0,
            durs: None,
            ext: super::ast::Ext::None,
        };
        // Values are the info samples' own timestamps (seconds), to pick the newest.
        let mut v = ev.eval_selector(&vs, g, Pick::SampleTime)?;
        v.retain(|s| {
            IDENT.iter().enumerate().all(|(k, l)| {
                id_values[k].is_empty() || s.labels.get(l).is_some_and(|x| id_values[k].contains(x))
            })
        });
        v
    };
    let key = |name: &str, l: &Labels| -> (String, String, String) {
        (
            name.to_string(),
            l.get(IDENT[0]).unwrap_or("").to_string(),
            l.get(IDENT[1]).unwrap_or("").to_string(),
        )
    };
    let mut names: Vec<&str> = infos
        .iter()
        .map(|s| s.labels.metric_name().unwrap_or(""))
        .collect();
    names.sort_unstable();
    names.dedup();
    let info_keys: Vec<(String, String, String)> = infos
        .iter()
        .map(|s| key(s.labels.metric_name().unwrap_or(""), &s.labels))
        .collect();
    let base_keys: Vec<Vec<(String, String, String)>> = base
        .iter()
        .map(|s| names.iter().map(|n| key(n, &s.labels)).collect())
        .collect();
    let empty_ok = data_ms.iter().all(|m| m.matches_empty());
    let mut out = Out::new();
    let mut steps_base = Steps::new(&base);
    let mut steps_info = Steps::new(&infos);
    // Per step: the newest info sample per (name, instance, job).
    let mut current: HashMap<&(String, String, String), (usize, f64)> = HashMap::new();
    // Per base series: the info series it was last enriched from, and the output slot.
    let mut last: Vec<Option<(Vec<usize>, usize)>> = vec![None; base.len()];
    let mut chosen: Vec<usize> = Vec::new();
    for i in 0..g.n() {
        let t = g.t(i);
        current.clear();
        for &(k, ts) in steps_info.at(t) {
            match current.get(&info_keys[k]) {
                Some(&(other, ots)) if ots == ts => {
                    return Err(exec(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        super::binary::labels_braces(&infos[other].labels),
                        (ots * 1000.0).round() as i64,
                        super::binary::labels_braces(&infos[k].labels),
                        (ts * 1000.0).round() as i64
                    )));
                }
                Some(&(_, ots)) if ots > ts => {}
                _ => {
                    current.insert(&info_keys[k], (k, ts));
                }
            }
        }
        for &(j, v) in steps_base.at(t) {
            let s = &base[j];
            chosen.clear();
            if !ignored[j] {
                for bk in &base_keys[j] {
                    if let Some(&(k, _)) = current.get(bk) {
                        chosen.push(k);
                    }
                }
                if chosen.is_empty() && !empty_ok {
                    continue;
                }
            }
            if let Some((prev, slot)) = &last[j] {
                if *prev == chosen {
                    out.push_at(*slot, t, v)?;
                    continue;
                }
            }
            let mut add: Vec<(&str, &str)> = Vec::new();
            for &k in &chosen {
                for lb in infos[k].labels.iter() {
                    if lb.name == METRIC_NAME
                        || (!data_ms.is_empty() && !data_ms.iter().any(|m| m.name == lb.name))
                    {
                        continue;
                    }
                    match add.iter().find(|(n, _)| *n == lb.name) {
                        Some((_, old)) if *old != lb.value => {
                            return Err(exec(format!("conflicting label: {}", lb.name)));
                        }
                        Some(_) => {}
                        None if s.labels.get(&lb.name).is_some() => {}
                        None => add.push((&lb.name, &lb.value)),
                    }
                }
            }
            let mut b = s.labels.builder();
            for (n, v) in add {
                b.set(n.to_string(), v.to_string());
            }
            let slot = out.slot(b.into_labels(), s.drop_name);
            out.push_at(slot, t, v)?;
            last[j] = Some((chosen.clone(), slot));
        }
    }
    Ok(V::Vec(
        out.series
            .into_iter()
            .filter(|s| !s.pts.is_empty())
            .collect(),
    ))
}
