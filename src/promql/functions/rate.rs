//! `rate`, `increase`, `delta` (<https://prometheus.io/docs/prometheus/latest/querying/functions/#rate>)
//! with Prometheus's extrapolation and counter-reset handling, and `irate`/`idelta` from the last two
//! samples (<https://prometheus.io/docs/prometheus/latest/querying/functions/#irate>).

use crate::promql::ast::Ext;
use crate::promql::engine::{window_edges, Window};

/// Prometheus's `extrapolatedRate`: the change over the window, corrected for counter resets and
/// extrapolated towards the window edges (by at most half a sample interval, and for counters not
/// below zero).
pub(crate) fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.ext != Ext::None {
        return extended_rate(w, is_counter, is_rate);
    }
    let s = w.pts;
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = first.1;
        for p in &s[1..] {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
    }
    let mut to_start = (first.0 - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (s.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (is_rate) and `idelta`: from the last two samples.
pub(crate) fn instant_value(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let s = w.pts;
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// `rate`/`increase`/`delta` over an `anchored` or `smoothed` window (Prometheus 3.7
/// `extendedRate`): no extrapolation; the change from the value at the window start (the last
/// sample at or before it, or for `smoothed` the value interpolated there) to the value at the
/// end, corrected for counter resets strictly inside the window.
fn extended_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let smoothed = w.ext == Ext::Smoothed;
    let s = w.pts;
    let (mut first, mut last, left, right) = window_edges(s, w.start, w.end, smoothed, is_counter)?;
    let mut result = right - left;
    if is_counter {
        // Resets at the edges are already in `left`/`right`; only samples strictly inside count.
        if s[first].0 <= w.start {
            first += 1;
        }
        let end_excl = if s[last].0 >= w.end { last } else { last + 1 };
        last = end_excl;
        let mut prev = left;
        if first < last {
            for p in &s[first..last] {
                if p.1 < prev {
                    result += prev;
                }
                prev = p.1;
            }
        }
        if right < prev {
            result += prev;
        }
    }
    if is_rate {
        result /= w.range as f64 / 1000.0;
    }
    Some(result)
}
