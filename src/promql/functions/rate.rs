//! `rate`, `increase`, `delta` (<https://prometheus.io/docs/prometheus/latest/querying/functions/#rate>)
//! with Prometheus's extrapolation and counter-reset handling, and `irate`/`idelta` from the last two
//! samples (<https://prometheus.io/docs/prometheus/latest/querying/functions/#irate>).

use crate::promql::ast::Ext;
use crate::promql::engine::{window_edges, Window};

/// Prometheus's `extrapolatedRate`: the change over the window, corrected for counter resets and
/// extrapolated towards the window edges (by at most half a sample interval, and for counters not
/// below zero).
///
/// With start timestamps (Prometheus 3.x `use-start-timestamps`, counters only): a sample whose
/// start timestamp says the counter restarted after the previous sample counts as a reset even
/// when the value did not drop, and when the first sample's start timestamp lies inside the
/// window, the counter is taken to have been zero then, instead of extrapolating to the left
/// (which also gives a result for a single sample). Semantics from Prometheus's
/// `promql/functions.go` (`extrapolatedRate`, `isStartTimestampReset`).
pub(crate) fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> RateOut {
    if w.ext != Ext::None {
        return RateOut::value(extended_rate(w, is_counter, is_rate));
    }
    let s = w.pts;
    let sts = if is_counter { w.sts } else { &[] };
    if s.is_empty() || (s.len() < 2 && sts.is_empty()) {
        return RateOut::value(None);
    }
    let mut overlap = false;
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = first;
        for (i, p) in s.iter().enumerate().skip(1) {
            let st_reset = match (sts.get(i - 1), sts.get(i)) {
                (Some(&prev_st), Some(&cur_st)) => {
                    overlap |= overlaps(prev_st, prev.0, cur_st);
                    start_reset(prev_st, prev.0, cur_st, p.0)
                }
                _ => false,
            };
            if p.1 < prev.1 || st_reset {
                result += prev.1;
            }
            prev = *p;
        }
    }
    let mut to_start = (first.0 - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last.0) as f64 / 1000.0;
    let mut sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = if s.len() > 1 {
        sampled / (s.len() - 1) as f64
    } else {
        0.0
    };
    let threshold = avg * 1.1;
    match sts.first() {
        Some(&st) if st != 0 && st > w.start && st < first.0 => {
            // The counter was zero at its start time, inside the window: no left extrapolation.
            to_start = 0.0;
            sampled = (last.0 - st) as f64 / 1000.0;
            result += first.1;
        }
        _ if s.len() < 2 => return RateOut { v: None, overlap },
        _ => {
            if to_start >= threshold {
                to_start = avg / 2.0;
            }
            if is_counter && result > 0.0 && first.1 >= 0.0 {
                let to_zero = sampled * (first.1 / result);
                if to_zero < to_start {
                    to_start = to_zero;
                }
            }
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    RateOut {
        v: Some(result * factor),
        overlap,
    }
}

/// The result of [`extrapolated_rate`] for one window.
pub(crate) struct RateOut {
    /// The value, if the window gives one.
    pub v: Option<f64>,
    /// A sample's start time overlaps the previous sample (Prometheus warns once per query).
    pub overlap: bool,
}

impl RateOut {
    fn value(v: Option<f64>) -> RateOut {
        RateOut { v, overlap: false }
    }
}

/// Whether the start timestamps say the counter was reset between the previous sample (start
/// `prev_st`, time `prev_t`) and the current one (`cur_st`, `cur_t`); 0 means unknown.
/// A start at or after the current sample is invalid or OpenTelemetry's "unknown start" and no
/// reset; a start after the previous sample is a reset; a start exactly at the previous sample is
/// a reset for deltas (the previous sample had its own, earlier start) but not for a cumulative
/// series whose start is unknown (previous start 0, equal to its time, or invalid).
pub(crate) fn start_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t || cur_st < prev_t {
        return false;
    }
    if cur_st > prev_t {
        return true;
    }
    prev_st <= prev_t && prev_st != 0 && prev_st != prev_t
}

/// A sample starts before the previous sample's time without sharing its start: the two
/// accumulations overlap (a cumulative series keeps its start, a delta starts at the previous
/// sample).
fn overlaps(prev_st: i64, prev_t: i64, cur_st: i64) -> bool {
    cur_st != 0 && cur_st < prev_t && cur_st != prev_st
}

/// `irate` (is_rate) and `idelta`: from the last two samples. For `irate` a start timestamp after
/// the previous sample also marks a counter reset.
pub(crate) fn instant_value(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let s = w.pts;
    if s.len() < 2 {
        return None;
    }
    let k = s.len() - 2;
    let (prev, last) = (s[k], s[k + 1]);
    let st_reset =
        is_rate && w.sts.len() == s.len() && start_reset(w.sts[k], prev.0, w.sts[k + 1], last.0);
    let mut v = if is_rate && (last.1 < prev.1 || st_reset) {
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
