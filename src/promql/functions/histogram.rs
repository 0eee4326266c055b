//! `histogram_quantile` and `histogram_fraction` over classic (`le`-bucketed) histograms
//! (<https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile>).
//! Native histograms are not stored by edgeprom, so the native-only functions return nothing.

/// One cumulative bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < eps
}

/// Sorts, merges equal bounds and enforces monotonicity. Returns (forced_monotonic).
fn prepare(buckets: &mut Vec<Bucket>) -> bool {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
    let mut forced = false;
    if buckets.is_empty() {
        return false;
    }
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    forced
}

/// Prometheus's `BucketQuantile`; second value: the input had to be fixed for monotonicity.
pub(crate) fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    let forced = prepare(&mut buckets);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let obs = buckets[buckets.len() - 1].count;
    if obs == 0.0 || obs.is_nan() {
        return (f64::NAN, forced);
    }
    let mut rank = q * obs;
    let n = buckets.len() - 1;
    let b = buckets[..n]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(n);
    if b == n {
        return (buckets[n - 1].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Prometheus's `BucketFraction`: the estimated share of observations in `[lower, upper]`,
/// interpolating linearly inside finite buckets; a bucket of infinite width that an edge falls
/// into is not interpolated (the first bucket starts at 0 when its bound is positive).
pub(crate) fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    prepare(&mut buckets);
    if buckets.is_empty() || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 || total.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let rank = |x: f64| -> f64 {
        if x == f64::NEG_INFINITY {
            return 0.0;
        }
        if x == f64::INFINITY {
            return total;
        }
        let mut prev_upper = if buckets[0].upper > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        if x <= prev_upper {
            return 0.0;
        }
        let mut prev_count = 0.0;
        for b in &buckets {
            if x <= b.upper {
                if prev_upper == f64::NEG_INFINITY {
                    return b.count;
                }
                if b.upper == f64::INFINITY {
                    return prev_count;
                }
                return prev_count
                    + (b.count - prev_count) * (x - prev_upper) / (b.upper - prev_upper);
            }
            prev_upper = b.upper;
            prev_count = b.count;
        }
        total
    };
    let lo = rank(lower).max(0.0);
    let hi = rank(upper).min(total);
    (hi - lo) / total
}
