//! The evaluator. Every node is evaluated once over the whole step grid of the query (an instant
//! query is a grid of one step), as Prometheus's `promql/engine.go` does, but selectors stream:
//! an instant selector walks each series' iterator once across all steps, and functions over range
//! selectors slide a window over the iterator, so memory follows the output (series x steps) plus
//! the current window, never all raw samples of the range.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::ast::*;
use super::functions;
use super::parse::parse;
use super::value::{exec, Error, QueryResult, QueryTimings, Sample, Series, Value};
use crate::model::{is_stale_nan, Labels, MatchType, METRIC_NAME};
use crate::storage::{Querier, Queryable, SampleIter, SelectHints, VecSampleIter};

/// Engine settings, after Prometheus's `--query.*` flags.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// `--query.lookback-delta` (5m).
    pub lookback_delta: Duration,
    /// `--query.timeout` (2m).
    pub timeout: Duration,
    /// `--query.max-samples` (50,000,000).
    pub max_samples: usize,
    /// `--query.max-concurrency` (20).
    pub max_concurrency: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_concurrency: 20,
        }
    }
}

/// Most points a range query may return per series (Prometheus's limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Default step of subqueries without one (Prometheus: the global evaluation interval, 1m).
const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

/// The PromQL engine. Cheap to share between threads.
pub struct Engine {
    opts: EngineOptions,
    per_step_stats: bool,
    running: Mutex<usize>,
    slot_free: Condvar,
}

struct Slot<'a>(&'a Engine);
impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.running.lock() {
            *n = n.saturating_sub(1);
        }
        self.0.slot_free.notify_one();
    }
}

impl Engine {
    /// A new engine.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine {
            opts,
            per_step_stats: false,
            running: Mutex::new(0),
            slot_free: Condvar::new(),
        }
    }

    /// The options it was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Turns on `--enable-feature=promql-per-step-stats`: results then carry
    /// [`QueryResult::samples_per_step`] (the counts are kept either way; they are small).
    pub fn with_per_step_stats(mut self, on: bool) -> Engine {
        self.per_step_stats = on;
        self
    }

    /// Whether per-step sample statistics are enabled.
    pub fn per_step_stats(&self) -> bool {
        self.per_step_stats
    }

    fn acquire(&self, deadline: Instant) -> Result<Slot<'_>, Error> {
        let max = self.opts.max_concurrency.max(1);
        let mut n = self
            .running
            .lock()
            .map_err(|_| Error::Execution("engine lock poisoned".into()))?;
        while *n >= max {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout("query queue"));
            }
            n = self
                .slot_free
                .wait_timeout(n, deadline - now)
                .map_err(|_| Error::Execution("engine lock poisoned".into()))?
                .0;
        }
        *n += 1;
        Ok(Slot(self))
    }

    /// Evaluates `expr` at `t_ms`.
    pub fn instant(&self, q: &dyn Queryable, expr: &str, t_ms: i64) -> Result<Value, Error> {
        self.instant_full(q, expr, t_ms, None).map(|r| r.value)
    }

    /// Evaluates `expr` from `start_ms` to `end_ms` every `step_ms`; always returns a matrix.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, Error> {
        self.range_full(q, expr, start_ms, end_ms, step_ms, None)
            .map(|r| r.value)
    }

    /// [`Engine::instant`] with annotations and an optional per-query timeout.
    pub fn instant_full(
        &self,
        q: &dyn Queryable,
        expr: &str,
        t_ms: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryResult, Error> {
        let e = parse(expr)?;
        self.exec(q, &e, expr, t_ms, t_ms, 0, false, timeout)
    }

    /// [`Engine::range`] with annotations and an optional per-query timeout.
    pub fn range_full(
        &self,
        q: &dyn Queryable,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryResult, Error> {
        let e = parse(expr)?;
        if step_ms <= 0 {
            return Err(exec("zero or negative query resolution step widths are not accepted. Try a positive integer"));
        }
        if end_ms < start_ms {
            return Err(exec("end timestamp must not be before start time"));
        }
        if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
            return Err(exec("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
        }
        self.exec(q, &e, expr, start_ms, end_ms, step_ms, true, timeout)
    }

    /// Evaluates a parsed expression. `range` selects range-query semantics (matrix result).
    #[allow(clippy::too_many_arguments)]
    pub fn exec(
        &self,
        q: &dyn Queryable,
        e: &Expr,
        text: &str,
        start: i64,
        end: i64,
        step: i64,
        range: bool,
        timeout: Option<Duration>,
    ) -> Result<QueryResult, Error> {
        let exec_start = Instant::now();
        let resolved;
        let e = if e.has_dur_exprs() {
            let mut c = e.clone();
            c.resolve_durations(if range { step } else { 0 }, start, end)
                .map_err(Error::Execution)?;
            resolved = c;
            &resolved
        } else {
            e
        };
        let timeout = timeout.unwrap_or(self.opts.timeout).min(self.opts.timeout);
        let deadline = Instant::now() + timeout;
        let queue_start = Instant::now();
        let _slot = self.acquire(deadline)?;
        let mut timings = QueryTimings {
            exec_queue: queue_start.elapsed(),
            ..Default::default()
        };
        let eval_start = Instant::now();
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        let (mint, maxt) = time_range(e, start, end, start, end, lookback);
        let querier = q.querier(mint, maxt)?;
        let mut ev = Ev {
            q: querier.as_ref(),
            text,
            qstart: start,
            qend: end,
            qstep: if range { step } else { 0 },
            lookback,
            max_samples: self.opts.max_samples,
            cur_samples: 0,
            peak_samples: 0,
            per_step: Vec::new(),
            sub_depth: 0,
            sub_total: 0,
            deadline,
            warnings: Vec::new(),
            infos: Vec::new(),
            range_query: range,
        };
        let g = Grid {
            start,
            end,
            step: if step <= 0 { 1 } else { step },
        };
        ev.per_step = vec![0; g.n()];
        if range {
            match e.value_type() {
                ValueType::Scalar | ValueType::Vector => {}
                t => {
                    return Err(exec(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        t.doc_name()
                    )))
                }
            }
        }
        timings.query_preparation = eval_start.elapsed();
        let inner_start = Instant::now();
        let v = ev.eval(e, g)?;
        timings.inner_eval = inner_start.elapsed();
        let sort_start = Instant::now();
        let value = match v {
            V::Scalar(vals) => {
                if range {
                    let pts: Vec<(i64, f64)> = (0..g.n()).map(|i| (g.t(i), vals[i])).collect();
                    Value::Matrix(vec![Series {
                        metric: Labels::empty(),
                        points: pts,
                    }])
                } else {
                    Value::Scalar {
                        t: start,
                        v: vals.first().copied().unwrap_or(f64::NAN),
                    }
                }
            }
            V::Str(s) => Value::String { t: start, s },
            V::Mat(m) => Value::Matrix(m),
            V::Vec(series) => {
                let series = finalize_names(series)?;
                if range {
                    let mut out: Vec<Series> = series
                        .into_iter()
                        .filter(|s| !s.pts.is_empty())
                        .map(|s| Series {
                            metric: s.labels,
                            points: s.pts,
                        })
                        .collect();
                    out.sort_by(|a, b| a.metric.cmp(&b.metric));
                    Value::Matrix(out)
                } else {
                    Value::Vector(
                        series
                            .into_iter()
                            .filter_map(|s| {
                                s.pts.first().map(|p| Sample {
                                    metric: s.labels.clone(),
                                    t: start,
                                    v: p.1,
                                })
                            })
                            .collect(),
                    )
                }
            }
        };
        timings.result_sort = sort_start.elapsed();
        timings.eval_total = eval_start.elapsed();
        timings.exec_total = exec_start.elapsed();
        Ok(QueryResult {
            value,
            warnings: ev.warnings,
            infos: ev.infos,
            samples: ev.per_step.iter().sum(),
            peak_samples: ev.peak_samples,
            samples_per_step: if self.per_step_stats {
                ev.per_step
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (g.t(i), *c))
                    .collect()
            } else {
                Vec::new()
            },
            timings,
        })
    }
}

/// Removes `__name__` where an operation asked for it (delayed name removal) and checks that
/// no two series collide afterwards.
pub(crate) fn finalize_names(series: Vec<SS>) -> Result<Vec<SS>, Error> {
    if !series
        .iter()
        .any(|s| s.drop_name && s.labels.get(METRIC_NAME).is_some())
    {
        return Ok(series);
    }
    let mut out: Vec<SS> = Vec::with_capacity(series.len());
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    for mut s in series {
        if s.drop_name {
            s.labels = drop_name_labels(&s.labels);
            s.drop_name = false;
        }
        if s.pts.is_empty() {
            continue;
        }
        match idx.get(&s.labels) {
            Some(&i) => {
                // Merge when the timestamps do not overlap, else it is a real collision.
                let o = &mut out[i];
                let mut merged = Vec::with_capacity(o.pts.len() + s.pts.len());
                let (mut a, mut b) = (0, 0);
                while a < o.pts.len() || b < s.pts.len() {
                    if b >= s.pts.len() || (a < o.pts.len() && o.pts[a].0 < s.pts[b].0) {
                        merged.push(o.pts[a]);
                        a += 1;
                    } else if a >= o.pts.len() || s.pts[b].0 < o.pts[a].0 {
                        merged.push(s.pts[b]);
                        b += 1;
                    } else {
                        return Err(exec("vector cannot contain metrics with the same labelset"));
                    }
                }
                o.pts = merged;
            }
            None => {
                idx.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The labels without `__name__` and the `__type__`/`__unit__` labels that travel with it.
pub(crate) fn drop_name_labels(l: &Labels) -> Labels {
    Labels::from_sorted_unchecked(
        l.iter()
            .filter(|x| x.name != METRIC_NAME && x.name != "__type__" && x.name != "__unit__")
            .cloned()
            .collect(),
    )
}

/// The earliest and latest sample times `e` can read when evaluated over `[start, end]`.
fn time_range(e: &Expr, start: i64, end: i64, qstart: i64, qend: i64, lookback: i64) -> (i64, i64) {
    let at_t = |at: &Option<At>| -> Option<i64> {
        at.map(|a| match a {
            At::Time(t) => t,
            At::Start => qstart,
            At::End => qend,
        })
    };
    let merge = |a: (i64, i64), b: (i64, i64)| (a.0.min(b.0), a.1.max(b.1));
    match e {
        Expr::Number(..) | Expr::String(..) => (i64::MAX, i64::MIN),
        Expr::Vector(vs) => {
            let (s, en) = match at_t(&vs.at) {
                Some(t) => (t, t),
                None => (start, end),
            };
            let ahead = if vs.ext == Ext::Smoothed { lookback } else { 0 };
            (s - vs.offset - lookback, en - vs.offset + ahead)
        }
        Expr::Matrix(vs, r) => {
            let (s, en) = match at_t(&vs.at) {
                Some(t) => (t, t),
                None => (start, end),
            };
            let (back, ahead) = ext_margins(vs.ext, lookback);
            (s - vs.offset - r - back, en - vs.offset + ahead)
        }
        Expr::Subquery {
            expr,
            range,
            offset,
            at,
            ..
        } => {
            let (s, en) = match at_t(at) {
                Some(t) => (t, t),
                None => (start, end),
            };
            time_range(
                expr,
                s - offset - range,
                en - offset,
                qstart,
                qend,
                lookback,
            )
        }
        Expr::Paren(x, _) | Expr::Neg(x, _) => time_range(x, start, end, qstart, qend, lookback),
        Expr::Binary { lhs, rhs, .. } => merge(
            time_range(lhs, start, end, qstart, qend, lookback),
            time_range(rhs, start, end, qstart, qend, lookback),
        ),
        Expr::Aggregate { expr, param, .. } => {
            let a = time_range(expr, start, end, qstart, qend, lookback);
            match param {
                Some(p) => merge(a, time_range(p, start, end, qstart, qend, lookback)),
                None => a,
            }
        }
        Expr::Call { func, args, .. } => {
            let r = args
                .iter()
                .map(|a| time_range(a, start, end, qstart, qend, lookback))
                .fold((i64::MAX, i64::MIN), merge);
            // info() reads info series with the lookback delta at the times its argument reads.
            if func.name == "info" && r.0 <= r.1 {
                (r.0 - lookback, r.1)
            } else {
                r
            }
        }
    }
}

/// How far an `anchored` / `smoothed` range selector reads before its window start and after
/// its end: one lookback delta back for both, and one ahead for `smoothed` (Prometheus widens
/// the buffered range the same way).
fn ext_margins(ext: Ext, lookback: i64) -> (i64, i64) {
    match ext {
        Ext::None => (0, 0),
        Ext::Anchored => (lookback, 0),
        Ext::Smoothed => (lookback, lookback),
    }
}

/// The evaluation grid: `start, start+step, ..., end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub fn n(&self) -> usize {
        ((self.end - self.start) / self.step + 1).max(0) as usize
    }
    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
    pub fn idx(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// What an instant selector yields per point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The sample's value.
    Value,
    /// The sample's timestamp in seconds (`timestamp()`).
    SampleTime,
    /// The sample's start timestamp in seconds, 0 when unknown (`start_timestamp()`).
    StartTime,
}

/// One series of an instant-vector-valued node: a point per step where it has a value.
#[derive(Clone, Debug)]
pub(crate) struct SS {
    pub labels: Labels,
    /// Delayed `__name__` removal: drop the name when the result is final.
    pub drop_name: bool,
    /// `(step time, value)`, in step order.
    pub pts: Vec<(i64, f64)>,
}

/// The value of a node over the whole grid.
pub(crate) enum V {
    Scalar(Vec<f64>),
    Str(String),
    Vec(Vec<SS>),
    /// Only from an instant query of a range selector or subquery.
    Mat(Vec<Series>),
}

/// Collects output series keyed by labels, one point per step at most.
pub(crate) struct Out {
    index: HashMap<Labels, usize>,
    pub series: Vec<SS>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            index: HashMap::new(),
            series: Vec::new(),
        }
    }
    pub fn slot(&mut self, labels: Labels, drop_name: bool) -> usize {
        if let Some(&i) = self.index.get(&labels) {
            self.series[i].drop_name |= drop_name;
            return i;
        }
        let i = self.series.len();
        self.index.insert(labels.clone(), i);
        self.series.push(SS {
            labels,
            drop_name,
            pts: Vec::new(),
        });
        i
    }
    pub fn push_at(&mut self, i: usize, t: i64, v: f64) -> Result<(), Error> {
        let s = &mut self.series[i];
        if s.pts.last().is_some_and(|p| p.0 == t) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
        s.pts.push((t, v));
        Ok(())
    }
    pub fn push(&mut self, labels: Labels, drop_name: bool, t: i64, v: f64) -> Result<(), Error> {
        let i = self.slot(labels, drop_name);
        self.push_at(i, t, v)
    }
}

/// Walks a set of series step by step, yielding the `(series index, value)` pairs present at each step.
pub(crate) struct Steps<'a> {
    series: &'a [SS],
    cur: Vec<usize>,
    buf: Vec<(usize, f64)>,
}

impl<'a> Steps<'a> {
    pub fn new(series: &'a [SS]) -> Steps<'a> {
        Steps {
            series,
            cur: vec![0; series.len()],
            buf: Vec::new(),
        }
    }
    /// The samples at step time `t`; steps must be visited in increasing order.
    pub fn at(&mut self, t: i64) -> &[(usize, f64)] {
        self.buf.clear();
        for (i, s) in self.series.iter().enumerate() {
            let c = &mut self.cur[i];
            while *c < s.pts.len() && s.pts[*c].0 < t {
                *c += 1;
            }
            if *c < s.pts.len() && s.pts[*c].0 == t {
                self.buf.push((i, s.pts[*c].1));
            }
        }
        &self.buf
    }
}

/// Evaluation state of one query.
pub(crate) struct Ev<'a> {
    q: &'a dyn Querier,
    pub text: &'a str,
    pub qstart: i64,
    pub qend: i64,
    /// The query step in ms (0 for instant queries).
    pub qstep: i64,
    lookback: i64,
    max_samples: usize,
    cur_samples: usize,
    peak_samples: usize,
    /// Queryable samples per step of the query's own grid (Prometheus's
    /// `totalQueryableSamplesPerStep`): a vector selector adds 1 per series with a sample in the
    /// lookback window, a range argument the samples in its window at each step; a subquery adds
    /// everything its inner expression counted, all at the last step (Prometheus's engine.go,
    /// `SubqueryExpr` case: the child evaluator's total goes to `ev.endTimestamp`).
    per_step: Vec<usize>,
    /// How many subqueries deep the evaluation is; per-step counting happens only at depth 0.
    sub_depth: usize,
    /// What the innermost running subquery counted so far.
    sub_total: usize,
    deadline: Instant,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub range_query: bool,
}

/// What a function over a range sees at one step.
pub(crate) struct Window<'w> {
    /// Samples inside `(start, end]`, stale markers removed. With `anchored`, also those up to one
    /// lookback delta before `start`; with `smoothed`, also up to one lookback delta after `end`.
    pub pts: &'w [(i64, f64)],
    /// The selector's extended-range modifier.
    pub ext: Ext,
    /// Left (exclusive) bound of the window in ms.
    pub start: i64,
    /// Right (inclusive) bound in ms.
    pub end: i64,
    /// Range in ms.
    pub range: i64,
    /// The output step's time.
    pub t: i64,
    /// Start timestamps parallel to `pts` (0 = unknown, as in Prometheus), or empty when the
    /// function did not ask for them or no sample of the window has one. Only samples read from
    /// storage carry them: subqueries cut their propagation.
    pub sts: &'w [i64],
}

impl<'a> Ev<'a> {
    fn check_deadline(&self, what: &'static str) -> Result<(), Error> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout(what));
        }
        Ok(())
    }

    /// Adds a series to an evaluator's output unless it has no points, charging its points
    /// against `--query.max-samples`.
    fn keep_series(
        &mut self,
        out: &mut Vec<SS>,
        labels: Labels,
        drop_name: bool,
        pts: Vec<(i64, f64)>,
    ) -> Result<(), Error> {
        if !pts.is_empty() {
            self.charge(pts.len())?;
            out.push(SS {
                labels,
                drop_name,
                pts,
            });
        }
        Ok(())
    }

    pub fn charge(&mut self, n: usize) -> Result<(), Error> {
        self.cur_samples += n;
        self.peak_samples = self.peak_samples.max(self.cur_samples);
        if self.cur_samples > self.max_samples {
            return Err(Error::TooManySamples);
        }
        Ok(())
    }

    /// Adds `n` queryable samples at step `i` of the query grid (outside subqueries only).
    fn count_at(&mut self, i: usize, n: usize) {
        if self.sub_depth > 0 {
            self.sub_total += n;
        } else if let Some(c) = self.per_step.get_mut(i) {
            *c += n;
        }
    }

    pub fn release(&mut self, n: usize) {
        self.cur_samples = self.cur_samples.saturating_sub(n);
    }

    fn pos_str(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = self.text.get(..pos).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let ls = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        format!("{}:{}", line, pos - ls + 1)
    }

    /// Adds a `PromQL warning: msg (line:col)` annotation once.
    pub fn warn(&mut self, msg: &str, pos: usize) {
        let s = format!("PromQL warning: {msg} ({})", self.pos_str(pos));
        if !self.warnings.contains(&s) {
            self.warnings.push(s);
        }
    }

    /// Adds a `PromQL info: msg (line:col)` annotation once.
    pub fn info(&mut self, msg: &str, pos: usize) {
        let s = format!("PromQL info: {msg} ({})", self.pos_str(pos));
        if !self.infos.contains(&s) {
            self.infos.push(s);
        }
    }

    pub fn at_time(&self, at: &Option<At>) -> Option<i64> {
        at.map(|a| match a {
            At::Time(t) => t,
            At::Start => self.qstart,
            At::End => self.qend,
        })
    }

    pub fn eval(&mut self, e: &Expr, g: Grid) -> Result<V, Error> {
        self.check_deadline("expression evaluation")?;
        match e {
            Expr::Number(v, _) => Ok(V::Scalar(vec![*v; g.n()])),
            Expr::String(s, _) => Ok(V::Str(s.clone())),
            Expr::Paren(x, _) => self.eval(x, g),
            Expr::Vector(vs) => Ok(V::Vec(self.eval_selector(vs, g, Pick::Value)?)),
            Expr::Matrix(..) | Expr::Subquery { .. } => self.eval_range_raw(e, g),
            Expr::Neg(x, _) => match self.eval(x, g)? {
                V::Scalar(v) => Ok(V::Scalar(v.into_iter().map(|x| -x).collect())),
                V::Vec(mut ss) => {
                    for s in &mut ss {
                        s.drop_name = true;
                        for p in &mut s.pts {
                            p.1 = -p.1;
                        }
                    }
                    Ok(V::Vec(ss))
                }
                _ => Err(exec("unary minus on a non-numeric value")),
            },
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
            } => {
                let l = self.eval(lhs, g)?;
                let r = self.eval(rhs, g)?;
                let out = super::binary::eval_binary(
                    self,
                    *op,
                    l,
                    r,
                    matching.as_ref(),
                    *return_bool,
                    g,
                )?;
                Ok(out)
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                pos,
                ..
            } => {
                let p = match param {
                    Some(p) => Some(self.eval(p, g)?),
                    None => None,
                };
                let inner = match self.eval(expr, g)? {
                    V::Vec(v) => v,
                    _ => return Err(exec("aggregation over a non-vector")),
                };
                let n: usize = inner.iter().map(|s| s.pts.len()).sum();
                let r = super::aggregate::eval_aggregate(
                    self,
                    *op,
                    inner,
                    p,
                    grouping,
                    *without,
                    g,
                    *pos,
                    param.as_ref().map(|p| p.pos()).unwrap_or(*pos),
                );
                self.release(n);
                r
            }
            Expr::Call { func, args, pos } => self.eval_call(func, args, *pos, g),
        }
    }

    /// Samples of one series from a select, streamed; `None` when the iterator errs.
    fn select(
        &mut self,
        vs: &VectorSelector,
        hints: SelectHints,
    ) -> Box<dyn crate::storage::SeriesSet> {
        self.q.select(&hints, &vs.matchers)
    }

    /// Evaluates an instant selector over the grid; `pick` says what each point's value is.
    pub fn eval_selector(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
        pick: Pick,
    ) -> Result<Vec<SS>, Error> {
        if vs.ext == Ext::Smoothed && pick == Pick::Value {
            return self.eval_smoothed_selector(vs, g);
        }
        let n = g.n();
        let at = self.at_time(&vs.at);
        let refs = |i: usize| at.unwrap_or(g.t(i)) - vs.offset;
        let (lo, hi) = (refs(0), refs(n.saturating_sub(1)));
        let hints = SelectHints {
            start: lo.min(hi) - self.lookback + 1,
            end: lo.max(hi),
            step: g.step,
            range: 0,
            func: None,
        };
        let value = |p: (i64, f64), st: Option<i64>| match pick {
            Pick::Value => p.1,
            Pick::SampleTime => p.0 as f64 / 1000.0,
            Pick::StartTime => st.unwrap_or(0) as f64 / 1000.0,
        };
        let want_st = pick == Pick::StartTime;
        let mut set = self.select(vs, hints);
        let mut out = Vec::new();
        let mut count = 0usize;
        for mut series in set.by_ref() {
            count += 1;
            if count % 64 == 0 {
                self.check_deadline("query execution")?;
            }
            let mut pts = Vec::new();
            let mut last: Option<(i64, f64)> = None;
            let mut last_st: Option<i64> = None;
            let mut peek: Option<(i64, f64)> = None;
            let it = &mut series.samples;
            let mut first = true;
            // With `@` every step sees the same sample: the value found at the first step.
            let mut cached: Option<Option<f64>> = None;
            for i in 0..n {
                let rt = refs(i);
                if let Some(c) = cached {
                    if let Some(v) = c {
                        pts.push((g.t(i), v));
                        self.count_at(i, 1);
                    }
                    continue;
                }
                if first {
                    // `seek` positions without consuming; `next` then yields that sample.
                    it.seek(rt - self.lookback + 1);
                    peek = it.next();
                    first = false;
                }
                while let Some(p) = peek {
                    if p.0 > rt {
                        break;
                    }
                    last = Some(p);
                    if want_st {
                        // `p` is still the sample the iterator returned last.
                        last_st = it.start_timestamp();
                    }
                    peek = it.next();
                }
                let found = match last {
                    Some(p) if p.0 > rt - self.lookback && !is_stale_nan(p.1) => {
                        Some(value(p, last_st))
                    }
                    _ => None,
                };
                if at.is_some() {
                    cached = Some(found);
                }
                if let Some(v) = found {
                    pts.push((g.t(i), v));
                    self.count_at(i, 1);
                }
            }
            it.take_err()?;
            self.keep_series(&mut out, series.labels, false, pts)?;
        }
        set.take_err()?;
        Ok(out)
    }

    /// `foo smoothed`: at every step the value is interpolated linearly between the last sample
    /// before and the first sample after the step time (each at most one lookback delta away);
    /// a sample exactly at the step is taken as is, and after the last sample its value is carried
    /// forward. Stale markers are skipped (Prometheus's `smoothSeries`).
    fn eval_smoothed_selector(&mut self, vs: &VectorSelector, g: Grid) -> Result<Vec<SS>, Error> {
        let n = g.n();
        let at = self.at_time(&vs.at);
        let refs = |i: usize| at.unwrap_or(g.t(i)) - vs.offset;
        let lb = self.lookback;
        let (first, last) = (refs(0), refs(n.saturating_sub(1)));
        let hints = SelectHints {
            start: first.min(last) - lb + 1,
            end: first.max(last) + lb,
            step: g.step,
            range: 0,
            func: None,
        };
        let mut set = self.select(vs, hints);
        let mut out = Vec::new();
        let mut count = 0usize;
        // Non-stale samples in `(rt - lb, rt + lb]`, reused across series.
        let mut buf: std::collections::VecDeque<(i64, f64)> = std::collections::VecDeque::new();
        for mut series in set.by_ref() {
            count += 1;
            if count % 64 == 0 {
                self.check_deadline("query execution")?;
            }
            buf.clear();
            let it = &mut series.samples;
            let mut peek: Option<(i64, f64)> = None;
            let mut started = false;
            let mut pts = Vec::new();
            for i in 0..n {
                let rt = refs(i);
                let (lo, hi) = (rt - lb, rt + lb);
                while buf.front().is_some_and(|p| p.0 <= lo) {
                    buf.pop_front();
                }
                if !started || (buf.is_empty() && peek.is_some_and(|p| p.0 <= lo)) {
                    it.seek(lo + 1);
                    peek = it.next();
                    started = true;
                }
                while let Some(p) = peek {
                    if p.0 > hi {
                        break;
                    }
                    if p.0 > lo && !is_stale_nan(p.1) {
                        buf.push_back(p);
                    }
                    peek = it.next();
                }
                // First buffered sample at or after the step time.
                let k = buf.partition_point(|p| p.0 < rt);
                let v = match (k.checked_sub(1).and_then(|j| buf.get(j)), buf.get(k)) {
                    (_, Some(next)) if next.0 == rt => Some(next.1),
                    (Some(prev), Some(next)) => Some(interpolate(*prev, *next, rt, false)),
                    (Some(prev), None) => Some(prev.1),
                    (None, _) => None,
                };
                if let Some(v) = v {
                    pts.push((g.t(i), v));
                    self.count_at(i, 1);
                }
            }
            it.take_err()?;
            self.keep_series(&mut out, series.labels, false, pts)?;
        }
        set.take_err()?;
        Ok(out)
    }

    /// Resolves a range argument (range selector or subquery, possibly in parentheses) to a set of
    /// sample sources plus the window geometry.
    fn range_source(&mut self, e: &Expr, g: Grid) -> Result<RangeSource, Error> {
        match e {
            Expr::Paren(x, _) => self.range_source(x, g),
            Expr::Matrix(vs, range) => {
                let at = self.at_time(&vs.at);
                let first_ref = at.unwrap_or(g.start) - vs.offset;
                let last_ref = at.unwrap_or(g.end) - vs.offset;
                let (back, ahead) = ext_margins(vs.ext, self.lookback);
                let hints = SelectHints {
                    start: first_ref - range - back + 1,
                    end: last_ref + ahead,
                    step: g.step,
                    range: *range,
                    func: None,
                };
                let set = self.select(vs, hints);
                Ok(RangeSource {
                    series: SourceSet::Store(set),
                    range: *range,
                    offset: vs.offset,
                    at,
                    ext: vs.ext,
                    back,
                    ahead,
                })
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
                ..
            } => {
                let at_t = self.at_time(at);
                let step = if *step > 0 {
                    *step
                } else {
                    DEFAULT_SUBQUERY_STEP
                };
                let first_ref = at_t.unwrap_or(g.start) - offset;
                let last_ref = at_t.unwrap_or(g.end) - offset;
                let lo = first_ref - range;
                // First multiple of the step after the window's (open) left edge.
                let mut s = lo.div_euclid(step) * step;
                if s <= lo {
                    s += step;
                }
                let inner = Grid {
                    start: s,
                    end: last_ref.max(s - step),
                    step,
                };
                let outer_total = std::mem::take(&mut self.sub_total);
                self.sub_depth += 1;
                let v = if inner.end < inner.start {
                    Ok(V::Vec(vec![]))
                } else {
                    self.eval(expr, inner)
                };
                self.sub_depth -= 1;
                let inner_total = std::mem::replace(&mut self.sub_total, outer_total);
                // Everything the subquery read, charged at the last step like Prometheus does.
                self.count_at(g.n().saturating_sub(1), inner_total);
                let v = v?;
                let series = match v {
                    V::Vec(v) => v,
                    V::Scalar(vals) => vec![SS {
                        labels: Labels::empty(),
                        drop_name: false,
                        pts: (0..inner.n()).map(|i| (inner.t(i), vals[i])).collect(),
                    }],
                    _ => return Err(exec("subquery over a non-vector")),
                };
                Ok(RangeSource {
                    series: SourceSet::Mem(series.into_iter()),
                    range: *range,
                    offset: *offset,
                    at: at_t,
                    ext: Ext::None,
                    back: 0,
                    ahead: 0,
                })
            }
            _ => Err(exec("expected a range vector")),
        }
    }

    /// Instant query of a range selector or subquery: the raw samples in the window.
    fn eval_range_raw(&mut self, e: &Expr, g: Grid) -> Result<V, Error> {
        let mut src = self.range_source(e, g)?;
        let t = g.start;
        let rt = src.at.unwrap_or(t) - src.offset;
        let mut out = Vec::new();
        let (lo, hi) = (rt - src.range - src.back, rt + src.ahead);
        // A range selector's samples count at the (only) step; a subquery counted its own.
        let from_store = matches!(src.series, SourceSet::Store(_));
        while let Some((labels, drop_name, mut it)) = src.next() {
            let mut pts = Vec::new();
            it.seek(lo + 1);
            let mut p = it.next();
            while let Some(s) = p {
                if s.0 > hi {
                    break;
                }
                if !is_stale_nan(s.1) {
                    pts.push(s);
                }
                p = it.next();
            }
            it.take_err()?;
            if src.ext != Ext::None {
                pts = extend_floats(&pts, rt - src.range, rt, src.ext == Ext::Smoothed);
            }
            if !pts.is_empty() {
                self.charge(pts.len())?;
                if from_store {
                    self.count_at(0, pts.len());
                }
                let metric = if drop_name {
                    drop_name_labels(&labels)
                } else {
                    labels
                };
                out.push(Series {
                    metric,
                    points: pts,
                });
            }
        }
        src.take_err()?;
        Ok(V::Mat(out))
    }

    /// Slides the window of a range argument over the grid, calling `f` once per step with the
    /// samples in `(t - range, t]`. Returns one output series per input series that produced points.
    pub fn over_windows(
        &mut self,
        arg: &Expr,
        g: Grid,
        f: impl FnMut(&mut Ev<'a>, &Window<'_>, usize, &Labels) -> Result<Option<f64>, Error>,
    ) -> Result<Vec<SS>, Error> {
        self.slide(arg, g, false, f)
    }

    /// [`Ev::over_windows`] with the samples' start timestamps in [`Window::sts`] (for the
    /// functions Prometheus's `use-start-timestamps` feature changes).
    pub fn over_windows_st(
        &mut self,
        arg: &Expr,
        g: Grid,
        f: impl FnMut(&mut Ev<'a>, &Window<'_>, usize, &Labels) -> Result<Option<f64>, Error>,
    ) -> Result<Vec<SS>, Error> {
        self.slide(arg, g, true, f)
    }

    fn slide(
        &mut self,
        arg: &Expr,
        g: Grid,
        want_st: bool,
        mut f: impl FnMut(&mut Ev<'a>, &Window<'_>, usize, &Labels) -> Result<Option<f64>, Error>,
    ) -> Result<Vec<SS>, Error> {
        let mut src = self.range_source(arg, g)?;
        let n = g.n();
        let mut out = Vec::new();
        let mut buf: std::collections::VecDeque<(i64, f64)> = std::collections::VecDeque::new();
        // Start timestamps parallel to `buf`, kept only once the series showed one (most
        // storages record none, and then this costs one call per sample and nothing else).
        let mut sts: std::collections::VecDeque<i64> = std::collections::VecDeque::new();
        let mut count = 0usize;
        while let Some((labels, drop_name, mut it)) = src.next() {
            count += 1;
            if count % 64 == 0 {
                self.check_deadline("query execution")?;
            }
            buf.clear();
            sts.clear();
            let mut st_on = false;
            // Non-zero start timestamps currently in `sts`.
            let mut st_known = 0usize;
            let mut peek: Option<(i64, f64)> = None;
            let mut started = false;
            let mut pts = Vec::new();
            let mut peak = 0usize;
            // With `@` the window is the same at every step, but scalar arguments and the
            // evaluation time (predict_linear) may still vary, so `f` runs at every step.
            for i in 0..n {
                let t = g.t(i);
                let rt = src.at.unwrap_or(t) - src.offset;
                // The buffer covers `(lo, hi]`: the window, widened for `anchored`/`smoothed`.
                let lo = rt - src.range - src.back;
                let hi = rt + src.ahead;
                // Drop what left the window; skip ahead when the window moved past the buffer.
                while buf.front().is_some_and(|p| p.0 <= lo) {
                    buf.pop_front();
                    if st_on && sts.pop_front().is_some_and(|x| x != 0) {
                        st_known -= 1;
                    }
                }
                if !started || (buf.is_empty() && peek.is_some_and(|p| p.0 <= lo)) {
                    it.seek(lo + 1);
                    peek = it.next();
                    started = true;
                }
                while let Some(p) = peek {
                    if p.0 > hi {
                        break;
                    }
                    if p.0 > lo && !is_stale_nan(p.1) {
                        buf.push_back(p);
                        if want_st {
                            let st = it.start_timestamp();
                            if st.is_some() && !st_on {
                                st_on = true;
                                sts.resize(buf.len() - 1, 0);
                            }
                            if st_on {
                                let st = st.unwrap_or(0);
                                st_known += usize::from(st != 0);
                                sts.push_back(st);
                            }
                        }
                    }
                    peek = it.next();
                }
                peak = peak.max(buf.len());
                self.count_at(i, buf.len());
                let w = Window {
                    pts: buf.make_contiguous(),
                    ext: src.ext,
                    start: rt - src.range,
                    end: rt,
                    range: src.range,
                    t,
                    sts: if st_known > 0 {
                        sts.make_contiguous()
                    } else {
                        &[]
                    },
                };
                let v = f(self, &w, i, &labels)?;
                if let Some(v) = v {
                    pts.push((t, v));
                }
            }
            it.take_err()?;
            self.charge(peak)?;
            self.release(peak);
            self.keep_series(&mut out, labels, drop_name, pts)?;
        }
        src.take_err()?;
        Ok(out)
    }

    fn eval_call(
        &mut self,
        func: &'static functions::FuncDef,
        args: &[Expr],
        pos: usize,
        g: Grid,
    ) -> Result<V, Error> {
        functions::call(self, func, args, pos, g)
    }

    /// Evaluates an argument that must be a scalar, one value per step.
    pub fn eval_scalar(&mut self, e: &Expr, g: Grid) -> Result<Vec<f64>, Error> {
        match self.eval(e, g)? {
            V::Scalar(v) => Ok(v),
            _ => Err(exec("expected a scalar")),
        }
    }

    /// Evaluates an argument that must be an instant vector.
    pub fn eval_vector(&mut self, e: &Expr, g: Grid) -> Result<Vec<SS>, Error> {
        match self.eval(e, g)? {
            V::Vec(v) => Ok(v),
            _ => Err(exec("expected an instant vector")),
        }
    }

    /// Evaluates a string argument.
    pub fn eval_string(&mut self, e: &Expr, g: Grid) -> Result<String, Error> {
        match self.eval(e, g)? {
            V::Str(s) => Ok(s),
            _ => Err(exec("expected a string")),
        }
    }
}

enum SourceSet {
    Store(Box<dyn crate::storage::SeriesSet>),
    Mem(std::vec::IntoIter<SS>),
}

struct RangeSource {
    series: SourceSet,
    range: i64,
    offset: i64,
    at: Option<i64>,
    ext: Ext,
    /// Extra read before the window start / after its end (`anchored`, `smoothed`).
    back: i64,
    ahead: i64,
}

impl RangeSource {
    fn next(&mut self) -> Option<(Labels, bool, Box<dyn SampleIter>)> {
        match &mut self.series {
            SourceSet::Store(s) => s.next().map(|s| (s.labels, false, s.samples)),
            SourceSet::Mem(m) => m.next().map(|s| {
                let it: Box<dyn SampleIter> = Box::new(VecSampleIter::new(s.pts));
                (s.labels, s.drop_name, it)
            }),
        }
    }
    fn take_err(&mut self) -> Result<(), Error> {
        if let SourceSet::Store(s) = &mut self.series {
            s.take_err()?;
        }
        Ok(())
    }
}

/// Linear interpolation between two samples at time `t` (Prometheus's `interpolate`). A counter
/// that dropped between them is modelled as restarting from zero at the first sample, so the
/// interpolated value lies on the post-reset counter (the reset itself is then counted by the
/// caller's reset correction).
pub(crate) fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, counter: bool) -> f64 {
    let y2 = p2.1;
    let y1 = if counter && y2 < p1.1 { 0.0 } else { p1.1 };
    y1 + (y2 - y1) * (t - p1.0) as f64 / (p2.0 - p1.0) as f64
}

/// Index of the last sample at or before `start` among all but the last sample, or 0 (the
/// anchor of an `anchored`/`smoothed` window; Prometheus searches all but the last element).
pub(crate) fn anchor_index(pts: &[(i64, f64)], start: i64) -> usize {
    let n = pts.len().saturating_sub(1);
    pts[..n].partition_point(|p| p.0 <= start).saturating_sub(1)
}

/// The boundary values of an `anchored` (`smoothed == false`) or `smoothed` window `(start, end]`
/// over the widened samples `pts`: `(first, last, left, right)` where `first..=last` are the
/// sample indexes used and `left`/`right` the values at the window edges. `None` when no sample
/// lies after `start`.
pub(crate) fn window_edges(
    pts: &[(i64, f64)],
    start: i64,
    end: i64,
    smoothed: bool,
    counter: bool,
) -> Option<(usize, usize, f64, f64)> {
    if pts.is_empty() {
        return None;
    }
    let first = anchor_index(pts, start);
    let mut last = pts.len() - 1;
    if smoothed {
        last = pts[..last].partition_point(|p| p.0 < end);
    }
    // Nothing when all samples lie before the window or all after it.
    if pts[last].0 <= start || pts[first].0 > end {
        return None;
    }
    let left = if smoothed && pts[first].0 < start {
        interpolate(pts[first], pts[first + 1], start, counter)
    } else {
        pts[first].1
    };
    let right = if smoothed && last > 0 && pts[last].0 > end {
        interpolate(pts[last - 1], pts[last], end, counter)
    } else {
        pts[last].1
    };
    Some((first, last, left, right))
}

/// The raw samples of an `anchored`/`smoothed` range selector in an instant query: the samples
/// strictly inside the window plus one synthetic sample at each edge (Prometheus's `extendFloats`).
fn extend_floats(pts: &[(i64, f64)], start: i64, end: i64, smoothed: bool) -> Vec<(i64, f64)> {
    let Some((first, last, left, right)) = window_edges(pts, start, end, smoothed, false) else {
        return Vec::new();
    };
    // The real samples on the edges are replaced by the synthetic ones.
    let from = first + usize::from(pts[first].0 <= start);
    let to = if pts[last].0 >= end { last } else { last + 1 };
    let mut out = Vec::with_capacity(to.saturating_sub(from) + 2);
    out.push((start, left));
    if from < to {
        out.extend_from_slice(&pts[from..to]);
    }
    out.push((end, right));
    out
}

/// Labels for `absent()`/`absent_over_time()`: the equality matchers of the selector, except
/// names that appear more than once.
pub(crate) fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::Vector(vs) | Expr::Matrix(vs, _) => vs,
        Expr::Paren(x, _) => return absent_labels(x),
        _ => return Labels::empty(),
    };
    let mut seen: HashMap<&str, Option<&str>> = HashMap::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let e = seen.entry(m.name.as_str()).or_insert(None);
        if m.kind == MatchType::Equal && e.is_none() {
            *e = Some(m.value.as_str());
        } else {
            *e = Some("");
        }
    }
    let mut dup: HashMap<&str, usize> = HashMap::new();
    for m in &vs.matchers {
        *dup.entry(m.name.as_str()).or_default() += 1;
    }
    Labels::from_pairs(
        vs.matchers
            .iter()
            .filter(|m| {
                m.name != METRIC_NAME
                    && m.kind == MatchType::Equal
                    && dup.get(m.name.as_str()) == Some(&1)
            })
            .map(|m| (m.name.clone(), m.value.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::MemStore;

    fn store(series: usize, points: i64) -> MemStore {
        let s = MemStore::new();
        for i in 0..series {
            let l = Labels::from_pairs([
                ("__name__", "x_total".to_string()),
                ("i", i.to_string()),
                ("job", (i % 3).to_string()),
            ]);
            for k in 0..points {
                s.add(&l, k * 15_000, (k * (i as i64 + 1)) as f64);
            }
        }
        s
    }

    #[test]
    fn limits_give_prometheus_errors() {
        let s = store(50, 100);
        let small = Engine::new(EngineOptions {
            max_samples: 10,
            ..Default::default()
        });
        let none = Engine::new(EngineOptions {
            timeout: Duration::ZERO,
            ..Default::default()
        });
        let e = Engine::new(EngineOptions::default());
        let cases: Vec<(&Engine, &str, bool, &str)> = vec![
            (
                &small,
                "x_total",
                false,
                "query processing would load too many samples into memory in query execution",
            ),
            (
                &small,
                "sum(rate(x_total[5m]))",
                true,
                "query processing would load too many samples into memory in query execution",
            ),
            (&none, "x_total", false, "query timed out in"),
            (
                &e,
                "x_total",
                true,
                "exceeded maximum resolution of 11,000 points per timeseries",
            ),
            (
                &e,
                "x_total + on(job) x_total",
                false,
                "found duplicate series for the match group {job=",
            ),
        ];
        for (eng, q, range, want) in cases {
            let r = if range {
                eng.range(
                    &s,
                    q,
                    0,
                    if want.contains("11,000") {
                        1_000_000_000
                    } else {
                        1_500_000
                    },
                    15_000,
                )
            } else {
                eng.instant(&s, q, 1_000_000)
            };
            let err = r.expect_err(q).to_string();
            assert!(err.starts_with(want), "{q}: {err}");
        }
    }

    #[test]
    fn instant_and_range_agree() {
        let s = store(6, 200);
        let e = Engine::new(EngineOptions::default());
        let q = "sum by (job) (rate(x_total[5m]))";
        let Value::Matrix(m) = e.range(&s, q, 600_000, 1_200_000, 60_000).expect("range") else {
            panic!("not a matrix")
        };
        for series in &m {
            for &(t, v) in &series.points {
                let Value::Vector(inst) = e.instant(&s, q, t).expect("instant") else {
                    panic!("not a vector")
                };
                let got = inst.iter().find(|x| x.metric == series.metric).map(|x| x.v);
                assert_eq!(got, Some(v), "{} at {t}", series.metric);
            }
        }
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn rules_view_of_a_vector() {
        let s = store(3, 100);
        let e = Engine::new(EngineOptions::default());
        // At 990 s the samples are 66 * (i + 1): 66, 132, 198.
        let mut v = e
            .instant(&s, "x_total > 100", 990_000)
            .expect("query")
            .into_samples()
            .expect("vector");
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        let vals: Vec<f64> = v.iter().map(|x| x.1).collect();
        assert_eq!(vals, vec![132.0, 198.0]);
        assert_eq!(v[0].0.get("i"), Some("1"));
    }

    /// Queryable-sample counts per step, derived by hand the way Prometheus's engine counts them
    /// (engine.go: `IncrementSamplesAtStep` / `IncrementSamplesAtTimestamp`). Store: `a{i="0"}`
    /// at 0, 15, 30, 45, 60 s and `a{i="1"}` at 30, 60 s; range queries run 0..60 s step 30 s.
    #[test]
    fn per_step_stats_count_like_prometheus() {
        let s = MemStore::new();
        for (i, ts) in [("0", &[0, 15, 30, 45, 60][..]), ("1", &[30, 60][..])] {
            let l = Labels::from_pairs([("__name__", "a".to_string()), ("i", i.to_string())]);
            for t in ts {
                s.add(&l, t * 1000, 1.0);
            }
        }
        let e = Engine::new(EngineOptions::default()).with_per_step_stats(true);
        let off = Engine::new(EngineOptions::default());
        // (query, range?, counts per step); instant queries run at 60 s.
        let cases: &[(&str, bool, &[usize])] = &[
            // A selector: 1 per series with a sample in the lookback window.
            ("a", true, &[1, 2, 2]),
            // Aggregations and binary operators add nothing; each selector counts.
            ("sum(a)", true, &[1, 2, 2]),
            ("a + a", true, &[2, 4, 4]),
            ("a @ 30", true, &[2, 2, 2]),
            // A function over a range: the samples in each (t - 30s, t] window.
            ("rate(a[30s])", true, &[1, 3, 3]),
            // Subquery: its inner selector's 0+1+2+2 = 5 at the last step, plus the windows
            // (t - 60s, t] over its result points (i=0 at 0, 30, 60; i=1 at 30, 60).
            ("max_over_time(a[60s:30s])", true, &[1, 3, 4 + 5]),
            ("a", false, &[2]),
            // An instant range selector: its samples in (30s, 60s].
            ("a[30s]", false, &[3]),
            // Inner steps 30, 60 (2 + 2), then the window over the 4 result points.
            ("count_over_time(a[1m:30s])", false, &[4 + 4]),
            // A subquery alone: only what it read, not its result again.
            ("a[1m:30s]", false, &[4]),
            ("vector(1)", true, &[0, 0, 0]),
        ];
        for (q, range, want) in cases {
            let r = if *range {
                e.range_full(&s, q, 0, 60_000, 30_000, None)
            } else {
                e.instant_full(&s, q, 60_000, None)
            };
            let r = match r {
                Ok(r) => r,
                Err(err) => panic!("{q}: {err}"),
            };
            let got: Vec<usize> = r.samples_per_step.iter().map(|p| p.1).collect();
            assert_eq!(&got, want, "{q}");
            let times: Vec<i64> = r.samples_per_step.iter().map(|p| p.0).collect();
            let want_times: Vec<i64> = if *range {
                vec![0, 30_000, 60_000]
            } else {
                vec![60_000]
            };
            assert_eq!(times, want_times, "{q}");
            assert_eq!(r.samples, want.iter().sum::<usize>(), "{q}");
            // Without the feature the total stays; the per-step list is empty.
            let r2 = if *range {
                off.range_full(&s, q, 0, 60_000, 30_000, None)
            } else {
                off.instant_full(&s, q, 60_000, None)
            };
            let r2 = match r2 {
                Ok(r) => r,
                Err(err) => panic!("{q}: {err}"),
            };
            assert!(r2.samples_per_step.is_empty(), "{q}");
            assert_eq!(r2.samples, r.samples, "{q}");
        }
    }
}
