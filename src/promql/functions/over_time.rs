//! Functions over a range of samples of one series
//! (<https://prometheus.io/docs/prometheus/latest/querying/functions/#aggregation_over_time>):
//! the `*_over_time` family, `changes`, `resets`, `deriv`, `predict_linear` and
//! `double_exponential_smoothing` (`holt_winters` in 2.x).

use crate::promql::aggregate::{kahan_inc, quantile};
use crate::promql::ast::Ext;
use crate::promql::engine::{anchor_index, Window};
use crate::promql::functions::rate::start_reset;

/// The `*_over_time` function `name` (without a parameter), or `None` if it is not one.
pub(crate) fn simple(name: &str, w: &Window<'_>) -> Option<Option<f64>> {
    let mut s = w.pts;
    if w.ext == Ext::Anchored && matches!(name, "changes" | "resets") {
        // Count from the last sample at or before the window start (Prometheus 3.7
        // `pickFirstSampleIndex`); nothing when no sample lies inside the window.
        match s.last() {
            Some(l) if l.0 > w.start => s = &s[anchor_index(s, w.start)..],
            _ => return Some(None),
        }
    }
    let r = match name {
        "count_over_time" => (!s.is_empty()).then_some(s.len() as f64),
        "present_over_time" => (!s.is_empty()).then_some(1.0),
        "last_over_time" => s.last().map(|p| p.1),
        "first_over_time" => s.first().map(|p| p.1),
        "ts_of_last_over_time" => s.last().map(|p| p.0 as f64 / 1000.0),
        "ts_of_first_over_time" => s.first().map(|p| p.0 as f64 / 1000.0),
        "sum_over_time" => {
            if s.is_empty() {
                None
            } else {
                let (mut sum, mut c) = (0.0, 0.0);
                for p in s {
                    (sum, c) = kahan_inc(p.1, sum, c);
                }
                Some(if sum.is_infinite() { sum } else { sum + c })
            }
        }
        "avg_over_time" => avg(s),
        "min_over_time" | "ts_of_min_over_time" => {
            let mut best: Option<(i64, f64)> = None;
            for &p in s {
                match best {
                    None => best = Some(p),
                    Some(b) => {
                        if (p.1 <= b.1 || b.1.is_nan()) && !(p.1 == b.1 && name == "min_over_time")
                        {
                            best = Some(p);
                        }
                    }
                }
            }
            best.map(|b| {
                if name == "min_over_time" {
                    b.1
                } else {
                    b.0 as f64 / 1000.0
                }
            })
        }
        "max_over_time" | "ts_of_max_over_time" => {
            let mut best: Option<(i64, f64)> = None;
            for &p in s {
                match best {
                    None => best = Some(p),
                    Some(b) => {
                        if (p.1 >= b.1 || b.1.is_nan()) && !(p.1 == b.1 && name == "max_over_time")
                        {
                            best = Some(p);
                        }
                    }
                }
            }
            best.map(|b| {
                if name == "max_over_time" {
                    b.1
                } else {
                    b.0 as f64 / 1000.0
                }
            })
        }
        "stddev_over_time" | "stdvar_over_time" => {
            if s.is_empty() {
                None
            } else {
                let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for p in s {
                    count += 1.0;
                    let delta = p.1 - (mean + cmean);
                    (mean, cmean) = kahan_inc(delta / count, mean, cmean);
                    (aux, caux) = kahan_inc(delta * (p.1 - (mean + cmean)), aux, caux);
                }
                let var = (aux + caux) / count;
                Some(if name == "stddev_over_time" {
                    var.sqrt()
                } else {
                    var
                })
            }
        }
        "mad_over_time" => {
            if s.is_empty() {
                None
            } else if s.iter().any(|p| p.1.is_nan()) {
                Some(f64::NAN)
            } else {
                let mut vals: Vec<f64> = s.iter().map(|p| p.1).collect();
                let median = quantile(0.5, &mut vals);
                let mut dev: Vec<f64> = s.iter().map(|p| (p.1 - median).abs()).collect();
                Some(quantile(0.5, &mut dev))
            }
        }
        "changes" => {
            if s.is_empty() {
                None
            } else {
                let mut n = 0.0;
                let mut prev = s[0].1;
                for p in &s[1..] {
                    if p.1 != prev && !(p.1.is_nan() && prev.is_nan()) {
                        n += 1.0;
                    }
                    prev = p.1;
                }
                Some(n)
            }
        }
        "resets" => {
            if s.is_empty() {
                None
            } else {
                // Start timestamps of the same samples (the anchored cut drops a prefix).
                let sts = w.sts.get(w.pts.len() - s.len()..).unwrap_or(&[]);
                let mut n = 0.0;
                for (i, pair) in s.windows(2).enumerate() {
                    let (prev, cur) = (pair[0], pair[1]);
                    let st_reset =
                        sts.len() == s.len() && start_reset(sts[i], prev.0, sts[i + 1], cur.0);
                    if cur.1 < prev.1 || st_reset {
                        n += 1.0;
                    }
                }
                Some(n)
            }
        }
        "deriv" => {
            if s.len() < 2 {
                None
            } else {
                Some(linear_regression(s, s[0].0).0)
            }
        }
        _ => return None,
    };
    Some(r)
}

fn avg(s: &[(i64, f64)]) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    if s.len() == 1 {
        return Some(s[0].1);
    }
    // Direct mean with Kahan summation while the sum does not overflow, then incremental mean.
    let (mut sum, mut c, mut mean, mut incremental) = (s[0].1, 0.0, 0.0, false);
    let mut count = 1.0;
    for p in &s[1..] {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(p.1, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if p.1.is_infinite() && (mean > 0.0) == (p.1 > 0.0) {
                continue;
            }
            if !p.1.is_infinite() && !p.1.is_nan() {
                continue;
            }
        }
        let cur = mean + c;
        (mean, c) = kahan_inc(p.1 / count - cur / count, mean, c);
    }
    Some(if incremental {
        mean + c
    } else {
        sum / count + c / count
    })
}

/// Least-squares fit `(slope, intercept)` with x measured in seconds from `intercept_t`.
pub(crate) fn linear_regression(s: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = s[0].1;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.1 != init {
            const_y = false;
        }
        n += 1.0;
        let x = (p.0 - intercept_t) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.1, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.1, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// `predict_linear(v[range], t)`: the fitted value `t` seconds after the evaluation time.
pub(crate) fn predict_linear(w: &Window<'_>, t_secs: f64, eval_t: i64) -> Option<f64> {
    if w.pts.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(w.pts, eval_t);
    Some(slope * t_secs + intercept)
}

/// `double_exponential_smoothing(v[range], sf, tf)`.
pub(crate) fn double_exponential_smoothing(w: &Window<'_>, sf: f64, tf: f64) -> Option<f64> {
    let s = w.pts;
    if s.len() < 2 {
        return None;
    }
    let trend = |i: usize, s0: f64, s1: f64, b: f64| {
        if i == 0 {
            b
        } else {
            tf * (s1 - s0) + (1.0 - tf) * b
        }
    };
    let mut s0 = 0.0;
    let mut s1 = s[0].1;
    let mut b = s[1].1 - s[0].1;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.1;
        b = trend(i - 1, s0, s1, b);
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `quantile_over_time(q, v[range])`.
pub(crate) fn quantile_over_time(w: &Window<'_>, q: f64) -> Option<f64> {
    if w.pts.is_empty() {
        return None;
    }
    let mut vals: Vec<f64> = w.pts.iter().map(|p| p.1).collect();
    Some(quantile(q, &mut vals))
}
