//! `timex` collector: the kernel clock discipline (NTP) state from `adjtimex(2)` called in
//! read-only mode: sync status, offset, frequency adjustment, error bounds and PPS counters.
//!
//! This reads the running kernel, not files, so `--path.procfs` does not redirect it.

use super::expo::{Type, W};
use super::{Ctx, NodeError};

/// `STA_UNSYNC`: the clock is not synchronised.
const STA_UNSYNC: i64 = 0x0040;
/// `STA_NANO`: offsets are in nanoseconds rather than microseconds.
const STA_NANO: i64 = 0x2000;
/// Frequencies are parts per million scaled by 2^16.
const PPM16FRAC: f64 = 1_000_000.0 * 65_536.0;

pub(super) fn collect(_cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    // SAFETY: a zeroed timex with modes = 0 asks adjtimex to read the state and change nothing.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        return Err(NodeError::Io {
            path: "adjtimex(2)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let status = tx.status as i64;
    let divisor = if status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let sync = if status & STA_UNSYNC == 0 { 1.0 } else { 0.0 };
    // (name, help, type, value), sorted by name as node_exporter prints them.
    let rows: &[(&str, &str, Type, f64)] = &[
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            Type::Gauge,
            tx.esterror as f64 / 1e6,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            Type::Gauge,
            1.0 + tx.freq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            Type::Gauge,
            tx.constant as f64,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            Type::Gauge,
            tx.maxerror as f64 / 1e6,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            Type::Gauge,
            tx.offset as f64 / divisor,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            Type::Counter,
            tx.calcnt as f64,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            Type::Counter,
            tx.errcnt as f64,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            Type::Gauge,
            tx.ppsfreq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            Type::Gauge,
            tx.jitter as f64 / divisor,
        ),
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            Type::Counter,
            tx.jitcnt as f64,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            Type::Gauge,
            tx.shift as f64,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            Type::Counter,
            tx.stbcnt as f64,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            Type::Gauge,
            tx.stabil as f64 / PPM16FRAC,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            Type::Gauge,
            status as f64,
        ),
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            Type::Gauge,
            sync,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            Type::Gauge,
            tx.tai as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            Type::Gauge,
            tx.tick as f64 / 1e6,
        ),
    ];
    for (name, help, t, v) in rows {
        w.single(name, help, *t, *v);
    }
    Ok(())
}
