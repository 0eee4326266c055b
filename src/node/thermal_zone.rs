//! `thermal_zone` collector: `node_thermal_zone_temp{type,zone}` from
//! `<sysfs>/class/thermal/thermal_zone*` and the cooling devices' throttle states.
//!
//! As in node_exporter, a zone whose `type`, `policy` or `temp` cannot be read is skipped (the
//! kernel answers EINVAL/ENODATA for disabled sensors), while a non-numeric temperature fails the
//! collector.

use std::path::PathBuf;

use super::expo::{Type, W};
use super::{list_dir, read_attr, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let base: PathBuf = cx.files.path(&cx.opts.sysfs, "class/thermal").to_path_buf();
    match list_dir(&base, "thermal_zone", &mut cx.names) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Err(NodeError::NoData("no thermal class")),
        Err(e) => return Err(e),
    }
    // (zone, type, celsius)
    let mut zones: Vec<(String, String, f64)> = Vec::new();
    for d in &cx.names {
        let dir = base.join(d);
        let Some(ty) = read_attr(&dir.join("type"), &mut cx.buf2).map(str::to_string) else {
            continue;
        };
        if read_attr(&dir.join("policy"), &mut cx.buf2).is_none() {
            continue;
        }
        let Some(t) = read_attr(&dir.join("temp"), &mut cx.buf2) else {
            continue;
        };
        let milli: i64 = t.parse().map_err(|_| {
            NodeError::parse(&dir.join("temp"), format!("invalid temperature {t:?}"))
        })?;
        let zone = d.trim_start_matches("thermal_zone").to_string();
        zones.push((zone, ty, milli as f64 / 1000.0));
    }
    w.family(
        &["node_thermal_zone_temp"],
        &["Zone temperature in Celsius"],
        Type::Gauge,
    );
    for (zone, ty, c) in &zones {
        w.sample(
            &["node_thermal_zone_temp"],
            &[("type", ty), ("zone", zone)],
            *c,
        );
    }

    // Cooling devices: (name, type, cur, max)
    let mut cooling: Vec<(String, String, f64, f64)> = Vec::new();
    list_dir(&base, "cooling_device", &mut cx.names)?;
    for d in &cx.names {
        let dir = base.join(d);
        let Some(ty) = read_attr(&dir.join("type"), &mut cx.buf2).map(str::to_string) else {
            continue;
        };
        let Some(max) =
            read_attr(&dir.join("max_state"), &mut cx.buf2).and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let Some(cur) =
            read_attr(&dir.join("cur_state"), &mut cx.buf2).and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let name = d.trim_start_matches("cooling_device").to_string();
        cooling.push((name, ty, cur, max));
    }
    w.family(
        &["node_cooling_device_cur_state"],
        &["Current throttle state of the cooling device"],
        Type::Gauge,
    );
    for (name, ty, cur, _) in &cooling {
        w.sample(
            &["node_cooling_device_cur_state"],
            &[("name", name), ("type", ty)],
            *cur,
        );
    }
    w.family(
        &["node_cooling_device_max_state"],
        &["Maximum throttle state of the cooling device"],
        Type::Gauge,
    );
    for (name, ty, _, max) in &cooling {
        w.sample(
            &["node_cooling_device_max_state"],
            &[("name", name), ("type", ty)],
            *max,
        );
    }
    Ok(())
}
