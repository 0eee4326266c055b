//! Aggregation operators (<https://prometheus.io/docs/prometheus/latest/querying/operators/#aggregation-operators>):
//! sum, min, max, avg, group, stddev, stdvar, count, count_values, topk, bottomk, quantile, limitk,
//! limit_ratio, with `by`/`without`, Kahan summation and Prometheus's NaN rules.

use std::collections::HashMap;

use super::ast::{format_number, AggOp};
use super::engine::{Ev, Grid, Out, Steps, SS, V};
use super::value::{exec, Error};
use crate::model::{Labels, METRIC_NAME};

/// Neumaier-compensated addition, as Prometheus's `kahanSumInc`.
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The φ-quantile of `vals` (sorted in place), Prometheus's `quantile`.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort.Float64s: NaN sorts first.
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    vals[lower as usize] * (1.0 - w) + vals[upper as usize] * w
}

/// Prometheus's `labels.Hash()` (xxHash64 over name, 0xff, value, 0xff ...), used by limit_ratio.
fn prom_hash(l: &Labels) -> u64 {
    let mut b = Vec::with_capacity(256);
    for lb in l.iter() {
        b.extend_from_slice(lb.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(lb.value.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

fn group_key(l: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        Labels::from_sorted_unchecked(
            l.iter()
                .filter(|lb| {
                    lb.name != METRIC_NAME
                        && lb.name != "__type__"
                        && lb.name != "__unit__"
                        && !grouping.contains(&lb.name)
                })
                .cloned()
                .collect(),
        )
    } else {
        Labels::from_sorted_unchecked(
            l.iter()
                .filter(|lb| grouping.contains(&lb.name))
                .cloned()
                .collect(),
        )
    }
}

#[derive(Clone, Default)]
struct Acc {
    n: f64,
    v: f64,
    c: f64,
    mean: f64,
    incremental: bool,
    nan_inf: bool,
    seen: bool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_aggregate(
    ev: &mut Ev<'_>,
    op: AggOp,
    inner: Vec<SS>,
    param: Option<V>,
    grouping: &[String],
    without: bool,
    g: Grid,
    _pos: usize,
    param_pos: usize,
) -> Result<V, Error> {
    // Group of every input series, computed once.
    let mut group_index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    // With delayed name removal, a group keyed by `__name__` drops it at the end if any member
    // was going to drop it.
    let by_name = !without && grouping.iter().any(|g| g == METRIC_NAME);
    let mut group_drop: Vec<bool> = Vec::new();
    let series_group: Vec<usize> = inner
        .iter()
        .map(|s| {
            let k = group_key(&s.labels, grouping, without);
            let i = match group_index.get(&k) {
                Some(&i) => i,
                None => {
                    let i = groups.len();
                    group_index.insert(k.clone(), i);
                    groups.push(k);
                    group_drop.push(false);
                    i
                }
            };
            group_drop[i] |= by_name && s.drop_name;
            i
        })
        .collect();
    let scalar_param = match &param {
        Some(V::Scalar(v)) => Some(v.clone()),
        _ => None,
    };
    let string_param = match &param {
        Some(V::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let mut out = Out::new();
    let mut steps = Steps::new(&inner);
    let mut accs: Vec<Acc> = vec![Acc::default(); groups.len()];
    let mut buckets: Vec<Vec<(usize, f64)>> = vec![Vec::new(); groups.len()];
    let group_slots: Vec<usize> = match op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk | AggOp::LimitRatio | AggOp::CountValues => {
            vec![]
        }
        _ => groups
            .iter()
            .zip(group_drop.iter())
            .map(|(l, d)| out.slot(l.clone(), *d))
            .collect(),
    };
    // topk and friends keep the input series; slots are taken in output order so that an
    // instant query lists them as Prometheus does (best first).
    let mut series_slots: Vec<Option<usize>> = vec![None; inner.len()];
    if op == AggOp::CountValues {
        let l = string_param.clone().unwrap_or_default();
        if !is_valid_label_name(&l) {
            return Err(exec(format!("invalid label name {}", go_quote(&l))));
        }
    }
    for i in 0..g.n() {
        let t = g.t(i);
        let p = scalar_param.as_ref().map(|v| v[i]).unwrap_or(f64::NAN);
        match op {
            AggOp::Topk | AggOp::Bottomk | AggOp::Limitk if p.is_nan() => {
                return Err(exec("Parameter value is NaN"));
            }
            AggOp::LimitRatio if p.is_nan() => return Err(exec("Ratio value is NaN")),
            _ => {}
        }
        let at = steps.at(t);
        if at.is_empty() {
            continue;
        }
        match op {
            AggOp::Topk | AggOp::Bottomk | AggOp::Limitk => {
                if p.is_nan() {
                    return Err(exec("Parameter value is NaN"));
                }
                if !(-9.223372036854776e18..9.223372036854776e18).contains(&p) {
                    return Err(exec(format!(
                        "Scalar value {} overflows int64",
                        format_number(p)
                    )));
                }
                let k = p as i64;
                if k < 1 {
                    continue;
                }
                for b in buckets.iter_mut() {
                    b.clear();
                }
                for &(j, v) in at {
                    buckets[series_group[j]].push((j, v));
                }
                for b in buckets.iter_mut() {
                    if b.is_empty() {
                        continue;
                    }
                    if op != AggOp::Limitk {
                        let desc = op == AggOp::Topk;
                        // NaN sorts as the smallest value for both.
                        b.sort_by(|x, y| {
                            let (a, c) = (x.1, y.1);
                            match (a.is_nan(), c.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ => {
                                    if desc {
                                        c.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal)
                                    } else {
                                        a.partial_cmp(&c).unwrap_or(std::cmp::Ordering::Equal)
                                    }
                                }
                            }
                        });
                    }
                    for &(j, v) in b.iter().take(k.min(b.len() as i64) as usize) {
                        let slot = *series_slots[j].get_or_insert_with(|| {
                            out.slot(inner[j].labels.clone(), inner[j].drop_name)
                        });
                        out.push_at(slot, t, v)?;
                    }
                }
            }
            AggOp::LimitRatio => {
                if p.is_nan() {
                    return Err(exec("Ratio value is NaN"));
                }
                let r = p.clamp(-1.0, 1.0);
                if !(-1.0..=1.0).contains(&p) {
                    ev.warn("ratio value should be between -1 and 1", param_pos);
                }
                for &(j, v) in at {
                    let off = prom_hash(&inner[j].labels) as f64 / u64::MAX as f64;
                    if (r >= 0.0 && off < r) || (r < 0.0 && off >= 1.0 + r) {
                        let slot = *series_slots[j].get_or_insert_with(|| {
                            out.slot(inner[j].labels.clone(), inner[j].drop_name)
                        });
                        out.push_at(slot, t, v)?;
                    }
                }
            }
            AggOp::CountValues => {
                let name = string_param.as_deref().unwrap_or("");
                let mut counts: Vec<(Labels, f64)> = Vec::new();
                let mut idx: HashMap<Labels, usize> = HashMap::new();
                for &(j, v) in at {
                    let mut b = groups[series_group[j]].builder();
                    b.set(name.to_string(), format_number(v));
                    let l = b.into_labels();
                    match idx.get(&l) {
                        Some(&k) => counts[k].1 += 1.0,
                        None => {
                            idx.insert(l.clone(), counts.len());
                            counts.push((l, 1.0));
                        }
                    }
                }
                for (l, c) in counts {
                    out.push(l, false, t, c)?;
                }
            }
            AggOp::Quantile => {
                if !(0.0..=1.0).contains(&p) {
                    ev.warn(
                        &format!(
                            "quantile value should be between 0 and 1, got {}",
                            format_number(p)
                        ),
                        param_pos,
                    );
                }
                for b in buckets.iter_mut() {
                    b.clear();
                }
                for &(j, v) in at {
                    buckets[series_group[j]].push((j, v));
                }
                for (gi, b) in buckets.iter().enumerate() {
                    if b.is_empty() {
                        continue;
                    }
                    let mut vals: Vec<f64> = b.iter().map(|x| x.1).collect();
                    out.push_at(group_slots[gi], t, quantile(p, &mut vals))?;
                }
            }
            _ => {
                for a in accs.iter_mut() {
                    *a = Acc::default();
                }
                for &(j, v) in at {
                    let a = &mut accs[series_group[j]];
                    if !a.seen {
                        a.seen = true;
                        a.n = 1.0;
                        match op {
                            AggOp::Stddev | AggOp::Stdvar => {
                                a.mean = v;
                                a.v = 0.0;
                                a.nan_inf = v.is_nan() || v.is_infinite();
                            }
                            AggOp::Count => a.v = 1.0,
                            AggOp::Group => a.v = 1.0,
                            _ => a.v = v,
                        }
                        continue;
                    }
                    a.n += 1.0;
                    match op {
                        AggOp::Sum => {
                            let (s, c) = kahan_inc(v, a.v, a.c);
                            a.v = s;
                            a.c = c;
                        }
                        AggOp::Avg => {
                            if !a.incremental {
                                let (s, c) = kahan_inc(v, a.v, a.c);
                                if !s.is_infinite() {
                                    a.v = s;
                                    a.c = c;
                                    continue;
                                }
                                // Overflow: switch to an incremental mean.
                                a.incremental = true;
                                a.mean = a.v / (a.n - 1.0);
                                a.c /= a.n - 1.0;
                            }
                            if a.mean.is_infinite() {
                                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                                    continue;
                                }
                                if !v.is_infinite() && !v.is_nan() {
                                    continue;
                                }
                            }
                            let (m, c) = kahan_inc(v / a.n - (a.mean + a.c) / a.n, a.mean, a.c);
                            a.mean = m;
                            a.c = c;
                        }
                        AggOp::Count => a.v += 1.0,
                        AggOp::Group => {}
                        AggOp::Min if a.v > v || a.v.is_nan() => a.v = v,
                        AggOp::Max if a.v < v || a.v.is_nan() => a.v = v,
                        AggOp::Stddev | AggOp::Stdvar => {
                            if v.is_nan() || v.is_infinite() {
                                a.nan_inf = true;
                            }
                            let delta = v - a.mean;
                            a.mean += delta / a.n;
                            a.v += delta * (v - a.mean);
                        }
                        _ => {}
                    }
                }
                for (gi, a) in accs.iter().enumerate() {
                    if !a.seen {
                        continue;
                    }
                    let v = match op {
                        AggOp::Sum => a.v + a.c,
                        AggOp::Avg => {
                            if a.incremental {
                                a.mean + a.c
                            } else {
                                a.v / a.n + a.c / a.n
                            }
                        }
                        AggOp::Stddev | AggOp::Stdvar => {
                            if a.nan_inf {
                                f64::NAN
                            } else {
                                let var = a.v / a.n;
                                if op == AggOp::Stddev {
                                    var.sqrt()
                                } else {
                                    var
                                }
                            }
                        }
                        _ => a.v,
                    };
                    out.push_at(group_slots[gi], t, v)?;
                }
            }
        }
    }
    let res: Vec<SS> = out
        .series
        .into_iter()
        .filter(|s| !s.pts.is_empty())
        .collect();
    ev.charge(res.iter().map(|s| s.pts.len()).sum())?;
    Ok(V::Vec(res))
}

/// Whether `s` is a valid label name (UTF-8 names are valid in Prometheus 3.x).
pub(crate) fn is_valid_label_name(s: &str) -> bool {
    !s.is_empty() && std::str::from_utf8(s.as_bytes()).is_ok()
}

/// Go's `%q` for a string.
pub(crate) fn go_quote(s: &str) -> String {
    super::ast::quote(s)
}
