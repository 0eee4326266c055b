//! Binary operators (<https://prometheus.io/docs/prometheus/latest/querying/operators/>):
//! arithmetic, comparison (filtering or `bool`), set operators and vector matching with
//! `on`/`ignoring`/`group_left`/`group_right`, with Prometheus's errors for ambiguous matches.

use std::collections::HashMap;

use super::ast::{BinOp, Card, VectorMatching};
use super::engine::{Ev, Grid, Out, Steps, SS, V};
use super::value::{exec, Error};
use crate::model::{Label, Labels, METRIC_NAME};

/// Applies an arithmetic or comparison operator; `None` means "filtered out".
pub(crate) fn scalar_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (l % r, true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

fn drops_name(op: BinOp) -> bool {
    !op.is_comparison() && !op.is_set()
}

/// Go's `labels.String()`: `{a="b", c="d"}` with the name as an ordinary label.
pub(crate) fn labels_braces(l: &Labels) -> String {
    let mut s = String::from("{");
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&lb.name);
        s.push('=');
        s.push_str(&super::ast::quote(&lb.value));
    }
    s.push('}');
    s
}

/// The matching signature of a series: the `on` labels, or all but the `ignoring` labels and the name.
fn signature(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        Labels::from_sorted_unchecked(
            l.iter()
                .filter(|lb| m.labels.contains(&lb.name))
                .cloned()
                .collect(),
        )
    } else {
        Labels::from_sorted_unchecked(
            l.iter()
                .filter(|lb| lb.name != METRIC_NAME && !m.labels.contains(&lb.name))
                .cloned()
                .collect(),
        )
    }
}

pub(crate) fn eval_binary(
    ev: &mut Ev<'_>,
    op: BinOp,
    l: V,
    r: V,
    matching: Option<&VectorMatching>,
    return_bool: bool,
    g: Grid,
) -> Result<V, Error> {
    match (l, r) {
        (V::Scalar(a), V::Scalar(b)) => Ok(V::Scalar(
            a.iter()
                .zip(b.iter())
                .map(|(&x, &y)| {
                    let (v, keep) = scalar_op(op, x, y);
                    if op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (V::Vec(mut vs), V::Scalar(s)) => {
            vector_scalar(&mut vs, &s, op, return_bool, false, g);
            Ok(V::Vec(vs))
        }
        (V::Scalar(s), V::Vec(mut vs)) => {
            vector_scalar(&mut vs, &s, op, return_bool, true, g);
            Ok(V::Vec(vs))
        }
        (V::Vec(a), V::Vec(b)) => {
            let n: usize = a.iter().chain(b.iter()).map(|s| s.pts.len()).sum();
            let default = VectorMatching {
                card: if op.is_set() {
                    Card::ManyToMany
                } else {
                    Card::OneToOne
                },
                labels: vec![],
                on: false,
                explicit: false,
                include: vec![],
                fill_left: None,
                fill_right: None,
            };
            let m = matching.unwrap_or(&default);
            let r = match op {
                BinOp::And | BinOp::Or | BinOp::Unless => set_op(op, a, b, m, g),
                _ => vector_vector(op, a, b, m, return_bool, g),
            };
            ev.release(n);
            let r = r?;
            ev.charge(r.iter().map(|s| s.pts.len()).sum())?;
            Ok(V::Vec(r))
        }
        _ => Err(exec(
            "binary expression must contain only scalar and instant vector types",
        )),
    }
}

fn vector_scalar(vs: &mut Vec<SS>, s: &[f64], op: BinOp, return_bool: bool, swap: bool, g: Grid) {
    for series in vs.iter_mut() {
        series.pts.retain_mut(|p| {
            let sv = s[g.idx(p.0)];
            let (lv, rv) = if swap { (sv, p.1) } else { (p.1, sv) };
            let (mut v, keep) = scalar_op(op, lv, rv);
            if op.is_comparison() && swap {
                v = rv;
            }
            if return_bool {
                p.1 = if keep { 1.0 } else { 0.0 };
                return true;
            }
            p.1 = v;
            keep
        });
        if return_bool || drops_name(op) {
            series.drop_name = true;
        }
    }
    vs.retain(|s| !s.pts.is_empty());
}

fn set_op(
    op: BinOp,
    a: Vec<SS>,
    b: Vec<SS>,
    m: &VectorMatching,
    g: Grid,
) -> Result<Vec<SS>, Error> {
    let sa: Vec<Labels> = a.iter().map(|s| signature(&s.labels, m)).collect();
    let sb: Vec<Labels> = b.iter().map(|s| signature(&s.labels, m)).collect();
    // Per step, which signatures each side has.
    let mut out = Out::new();
    let mut steps_a = Steps::new(&a);
    let mut steps_b = Steps::new(&b);
    let mut set: std::collections::HashSet<&Labels> = std::collections::HashSet::new();
    let slots_a: Vec<usize> = a
        .iter()
        .map(|s| out.slot(s.labels.clone(), s.drop_name))
        .collect();
    let slots_b: Vec<Option<usize>> = match op {
        BinOp::Or => b
            .iter()
            .map(|s| Some(out.slot(s.labels.clone(), s.drop_name)))
            .collect(),
        _ => vec![None; b.len()],
    };
    for i in 0..g.n() {
        let t = g.t(i);
        let la: Vec<(usize, f64)> = steps_a.at(t).to_vec();
        let lb = steps_b.at(t);
        set.clear();
        match op {
            BinOp::And => {
                for &(j, _) in lb {
                    set.insert(&sb[j]);
                }
                for &(j, v) in &la {
                    if set.contains(&sa[j]) {
                        out.push_at(slots_a[j], t, v)?;
                    }
                }
            }
            BinOp::Unless => {
                for &(j, _) in lb {
                    set.insert(&sb[j]);
                }
                for &(j, v) in &la {
                    if !set.contains(&sa[j]) {
                        out.push_at(slots_a[j], t, v)?;
                    }
                }
            }
            _ => {
                for &(j, v) in &la {
                    set.insert(&sa[j]);
                    out.push_at(slots_a[j], t, v)?;
                }
                for &(j, v) in lb {
                    if !set.contains(&sb[j]) {
                        if let Some(s) = slots_b[j] {
                            out.push_at(s, t, v)?;
                        }
                    }
                }
            }
        }
    }
    Ok(out
        .series
        .into_iter()
        .filter(|s| !s.pts.is_empty())
        .collect())
}

fn result_labels(
    l: &SS,
    r: &SS,
    op: BinOp,
    m: &VectorMatching,
    return_bool: bool,
) -> (Labels, bool) {
    let mut drop = l.drop_name || return_bool || drops_name(op);
    let mut b = l.labels.builder();
    if m.card == Card::OneToOne {
        if m.on {
            b.retain(|lb: &Label| m.labels.contains(&lb.name));
        } else {
            for n in &m.labels {
                b.del(n);
            }
        }
    }
    if m.card == Card::ManyToOne || m.card == Card::OneToMany {
        for n in &m.include {
            match r.labels.get(n) {
                Some(v) => {
                    b.set(n.clone(), v.to_string());
                }
                None => {
                    b.del(n);
                }
            }
        }
        if m.include.iter().any(|n| n == METRIC_NAME) {
            drop = r.drop_name;
        }
    }
    (b.into_labels(), drop)
}

/// Labels of a result whose many-side operand was filled in: the present side's match-group
/// labels (Prometheus's `MatchLabels`: the `on` labels, or all but the `ignoring` labels and the
/// name).
fn fill_labels(l: &Labels, m: &VectorMatching) -> Labels {
    let mut b = l.builder();
    b.del(METRIC_NAME);
    if m.on {
        b.retain(|lb: &Label| m.labels.contains(&lb.name));
    } else {
        for n in &m.labels {
            b.del(n);
        }
    }
    b.into_labels()
}

fn vector_vector(
    op: BinOp,
    a: Vec<SS>,
    b: Vec<SS>,
    m: &VectorMatching,
    return_bool: bool,
    g: Grid,
) -> Result<Vec<SS>, Error> {
    // For group_right the "many" side is the right one: swap so `lhs` is always the many side.
    let swap = m.card == Card::OneToMany;
    let (lhs, rhs) = if swap { (&b, &a) } else { (&a, &b) };
    let sl: Vec<Labels> = lhs.iter().map(|s| signature(&s.labels, m)).collect();
    let sr: Vec<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = Out::new();
    let mut steps_l = Steps::new(lhs);
    let mut steps_r = Steps::new(rhs);
    let mut cache: HashMap<(usize, usize), usize> = HashMap::new();
    let mut right: HashMap<&Labels, (usize, f64)> = HashMap::new();
    let mut matched: HashMap<&Labels, Option<std::collections::HashSet<Labels>>> = HashMap::new();
    for i in 0..g.n() {
        let t = g.t(i);
        right.clear();
        for &(j, v) in steps_r.at(t) {
            if let Some(&(prev, _)) = right.get(&sr[j]) {
                let (first, second) = (&rhs[prev].labels, &rhs[j].labels);
                let side = if swap { "left" } else { "right" };
                return Err(exec(format!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    labels_braces(&sr[j]),
                    side,
                    labels_braces(first),
                    labels_braces(second)
                )));
            }
            right.insert(&sr[j], (j, v));
        }
        matched.clear();
        let ls: Vec<(usize, f64)> = steps_l.at(t).to_vec();
        // Fill values by operand position after the swap, as Prometheus applies them: with
        // group_right, `fill_right` fills the "one" side (the left operand) and `fill_left` the
        // "many" side (fill-modifier.test expects exactly this).
        let (fill_lhs, fill_rhs) = (m.fill_left, m.fill_right);
        if let Some(f) = fill_lhs {
            let present: std::collections::HashSet<&Labels> =
                ls.iter().map(|&(j, _)| &sl[j]).collect();
            let mut missing: Vec<(usize, f64)> = right
                .values()
                .filter(|(k, _)| !present.contains(&sr[*k]))
                .copied()
                .collect();
            missing.sort_by_key(|x| x.0);
            for (k, rv) in missing {
                let (x, y) = if swap { (rv, f) } else { (f, rv) };
                let (value, keep) = scalar_op(op, x, y);
                let labels = fill_labels(&rhs[k].labels, m);
                let slot = out.slot(labels, true);
                if return_bool {
                    out.push_at(slot, t, if keep { 1.0 } else { 0.0 })?;
                } else if keep {
                    out.push_at(slot, t, value)?;
                }
            }
        }
        for (j, v) in ls {
            let Some(&(k, rv)) = right.get(&sl[j]) else {
                if let Some(f) = fill_rhs {
                    let (x, y) = if swap { (f, v) } else { (v, f) };
                    let (value, keep) = scalar_op(op, x, y);
                    let empty = SS {
                        labels: Labels::empty(),
                        drop_name: false,
                        pts: vec![],
                    };
                    let (labels, drop) = result_labels(&lhs[j], &empty, op, m, return_bool);
                    let slot = out.slot(labels, drop);
                    if return_bool {
                        out.push_at(slot, t, if keep { 1.0 } else { 0.0 })?;
                    } else if keep {
                        out.push_at(slot, t, value)?;
                    }
                }
                continue;
            };
            let (x, y) = if swap { (rv, v) } else { (v, rv) };
            // Comparisons keep the value of the original left operand.
            let (value, keep) = scalar_op(op, x, y);
            let slot = match cache.get(&(j, k)) {
                Some(&s) => s,
                None => {
                    let (labels, drop) = result_labels(&lhs[j], &rhs[k], op, m, return_bool);
                    let s = out.slot(labels, drop);
                    cache.insert((j, k), s);
                    s
                }
            };
            // Cardinality checks come before filtering, as in Prometheus 3.9.
            let entry = matched.entry(&sl[j]);
            match m.card {
                Card::OneToOne => {
                    if let std::collections::hash_map::Entry::Occupied(_) = entry {
                        return Err(exec("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"));
                    }
                    entry.or_insert(None);
                }
                _ => {
                    let set = entry.or_insert_with(|| Some(std::collections::HashSet::new()));
                    if let Some(set) = set {
                        if !set.insert(out.series[slot].labels.clone()) {
                            return Err(exec("multiple matches for labels: grouping labels must ensure unique matches"));
                        }
                    }
                }
            }
            if return_bool {
                out.push_at(slot, t, if keep { 1.0 } else { 0.0 })?;
            } else if keep {
                out.push_at(slot, t, value)?;
            }
        }
    }
    Ok(out
        .series
        .into_iter()
        .filter(|s| !s.pts.is_empty())
        .collect())
}
