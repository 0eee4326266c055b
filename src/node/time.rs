//! `time` collector: system time, time zone offset and clock sources.
//!
//! The clock sources come from `<sysfs>/devices/system/clocksource/clocksource*/`; the `device`
//! label is the position in that sorted list, as node_exporter numbers them.

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::expo::{Type, W};
use super::{list_dir, read_attr, Ctx, NodeError};

/// The local time zone's abbreviation and UTC offset in seconds, from localtime_r(3).
fn zone(now_secs: i64, name: &mut String) -> f64 {
    name.clear();
    let t: libc::time_t = now_secs as libc::time_t;
    // SAFETY: `tm` is plain old data that localtime_r fills; a null return leaves it unused.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        name.push_str("UTC");
        return 0.0;
    }
    if !tm.tm_zone.is_null() {
        // SAFETY: tm_zone points at a NUL-terminated static string owned by libc.
        let z = unsafe { CStr::from_ptr(tm.tm_zone) };
        name.push_str(&z.to_string_lossy());
    }
    tm.tm_gmtoff as f64
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = now.as_nanos() as f64;
    w.single(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        Type::Gauge,
        nanos / 1e9,
    );
    let offset = zone(now.as_secs() as i64, &mut cx.name);
    w.family(
        &["node_time_zone_offset_seconds"],
        &["System time zone offset in seconds."],
        Type::Gauge,
    );
    w.sample(
        &["node_time_zone_offset_seconds"],
        &[("time_zone", &cx.name)],
        offset,
    );

    let base = cx
        .files
        .path(&cx.opts.sysfs, "devices/system/clocksource")
        .to_path_buf();
    if list_dir(&base, "clocksource", &mut cx.names).is_err() {
        return Ok(());
    }
    let mut dev = String::new();
    for (fam, file, help) in [
        (
            "node_time_clocksource_available_info",
            "available_clocksource",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
        ),
        (
            "node_time_clocksource_current_info",
            "current_clocksource",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
        ),
    ] {
        w.family(&[fam], &[help], Type::Gauge);
        for (i, d) in cx.names.iter().enumerate() {
            let p = base.join(d).join(file);
            let Some(v) = read_attr(&p, &mut cx.buf2) else {
                continue;
            };
            dev.clear();
            dev.push_str(&i.to_string());
            for cs in v.split_whitespace() {
                w.sample(&[fam], &[("clocksource", cs), ("device", &dev)], 1.0);
            }
        }
    }
    Ok(())
}
