//! `hwmon` collector: hardware sensors from `<sysfs>/class/hwmon/hwmon*` with node_exporter
//! 1.5's naming: chip names derived from the `device` link (`<type>_<name>`), falling back to the
//! `name` file and then the hwmon directory; one family per sensor type and property
//! (`node_hwmon_temp_celsius`, `node_hwmon_in_volts`, `node_hwmon_fan_rpm`, ...), unit-converted.
//!
//! On a Raspberry Pi this includes the firmware's `rpi_volt` under-voltage alarm
//! (`node_hwmon_in_lcrit_alarm_volts`, named by node_exporter's generic rule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::expo::{Type, W};
use super::{Ctx, NodeError};

/// Sensor types node_exporter reads; other files are ignored.
const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// node_exporter's `cleanMetricName`: lower case, `[^a-z0-9:_]` -> `_`, trimmed of `_`.
fn clean(name: &str) -> String {
    let s: String = name
        .trim_end_matches('\n')
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

/// Splits `temp1_input` into ("temp", "1", "input") like `^([^0-9]+)([0-9]*)?(_(.+))?$`.
fn explode(file: &str) -> Option<(&str, &str, &str)> {
    let t_end = file
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(file.len());
    if t_end == 0 {
        return None;
    }
    let (ty, rest) = file.split_at(t_end);
    let n_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (num, rest) = rest.split_at(n_end);
    let prop = if rest.is_empty() {
        ""
    } else {
        rest.strip_prefix('_').filter(|p| !p.is_empty())?
    };
    Some((ty, num, prop))
}

/// The chip label for a hwmon directory.
fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev.file_name().and_then(|n| n.to_str()).map(clean);
        let ty = dev
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .map(clean);
        match (ty, name) {
            (Some(t), Some(n)) if !t.is_empty() && !n.is_empty() => {
                return Some(format!("{t}_{n}"))
            }
            (_, Some(n)) if !n.is_empty() => return Some(n),
            _ => {}
        }
    }
    if let Ok(raw) = std::fs::read_to_string(dir.join("name")) {
        let c = clean(&raw);
        if !c.is_empty() {
            return Some(c);
        }
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let c = clean(real.file_name()?.to_str()?);
    (!c.is_empty()).then_some(c)
}

/// Reads sensor files of `dir` into `data[sensor][property]`.
fn sensor_data(dir: &Path, data: &mut BTreeMap<String, BTreeMap<String, String>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let fname = e.file_name();
        let Some(f) = fname.to_str() else { continue };
        let Some((ty, num, prop)) = explode(f) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&ty) {
            continue;
        }
        let Ok(v) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        data.entry(format!("{ty}{num}"))
            .or_default()
            .insert(prop.to_string(), v.trim().to_string());
    }
}

/// Family name -> (help, type, samples of (label pairs, value)).
type Families = BTreeMap<String, (String, Type, Vec<(Vec<(&'static str, String)>, f64)>)>;

fn add(
    fams: &mut Families,
    name: String,
    help: String,
    t: Type,
    labels: Vec<(&'static str, String)>,
    v: f64,
) {
    fams.entry(name)
        .or_insert_with(|| (help, t, Vec::new()))
        .2
        .push((labels, v));
}

fn update_chip(dir: &Path, fams: &mut Families) -> Result<(), NodeError> {
    let chip = chip_name(dir)
        .ok_or_else(|| NodeError::parse(dir, "could not derive a monitoring name"))?;
    let mut data = BTreeMap::new();
    sensor_data(dir, &mut data);
    if dir.join("device").exists() {
        sensor_data(&dir.join("device"), &mut data);
    }
    if let Ok(raw) = std::fs::read_to_string(dir.join("name")) {
        let c = clean(&raw);
        if !c.is_empty() {
            add(
                fams,
                "node_hwmon_chip_names".into(),
                "Annotation metric for human-readable chip names".into(),
                Type::Gauge,
                vec![("chip", chip.clone()), ("chip_name", c)],
                1.0,
            );
        }
    }
    for (sensor, props) in &data {
        let Some((ty, _, _)) = explode(sensor) else {
            continue;
        };
        let labels = || vec![("chip", chip.clone()), ("sensor", sensor.clone())];
        if let Some(label) = props.get("label") {
            add(
                fams,
                "node_hwmon_sensor_label".into(),
                "Label for given chip and sensor".into(),
                Type::Gauge,
                vec![
                    ("chip", chip.clone()),
                    ("label", label.clone()),
                    ("sensor", sensor.clone()),
                ],
                1.0,
            );
        }
        match ty {
            "beep_enable" => {
                let v = if props.get("").map(String::as_str) == Some("1") {
                    1.0
                } else {
                    0.0
                };
                add(
                    fams,
                    "node_hwmon_beep_enabled".into(),
                    "Hardware beep enabled".into(),
                    Type::Gauge,
                    labels(),
                    v,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = props.get("").and_then(|s| s.parse::<f64>().ok()) {
                    add(
                        fams,
                        "node_hwmon_voltage_regulator_version".into(),
                        "Hardware voltage regulator".into(),
                        Type::Gauge,
                        labels(),
                        v,
                    );
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = props.get("").and_then(|s| s.parse::<f64>().ok()) {
                    add(
                        fams,
                        "node_hwmon_update_interval_seconds".into(),
                        "Hardware monitor update interval".into(),
                        Type::Gauge,
                        labels(),
                        v * 0.001,
                    );
                }
                continue;
            }
            _ => {}
        }
        let prefix = format!("node_hwmon_{ty}");
        for (element, raw) in props {
            if element == "label" {
                continue;
            }
            let mut name = prefix.clone();
            if element == "input" {
                if props.contains_key("") {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                name.push_str(&clean(element));
            }
            let Ok(v) = raw.parse::<f64>() else { continue };
            let (name, help, t, v) = if element == "fault" || element == "alarm" {
                (
                    name,
                    format!("Hardware sensor {element} status ({ty})"),
                    Type::Gauge,
                    v,
                )
            } else if element == "beep" {
                (
                    format!("{name}_enabled"),
                    "Hardware monitor sensor has beeping enabled".into(),
                    Type::Gauge,
                    v,
                )
            } else if ty == "in" || ty == "cpu" {
                (
                    format!("{name}_volts"),
                    format!("Hardware monitor for voltage ({element})"),
                    Type::Gauge,
                    v * 0.001,
                )
            } else if ty == "temp" && element != "type" {
                let el = if element.is_empty() {
                    "input"
                } else {
                    element.as_str()
                };
                (
                    format!("{name}_celsius"),
                    format!("Hardware monitor for temperature ({el})"),
                    Type::Gauge,
                    v * 0.001,
                )
            } else if ty == "curr" {
                (
                    format!("{name}_amps"),
                    format!("Hardware monitor for current ({element})"),
                    Type::Gauge,
                    v * 0.001,
                )
            } else if ty == "energy" {
                (
                    format!("{name}_joule_total"),
                    format!("Hardware monitor for joules used so far ({element})"),
                    Type::Counter,
                    v / 1_000_000.0,
                )
            } else if ty == "power" && element == "accuracy" {
                (
                    name,
                    "Hardware monitor power meter accuracy, as a ratio".into(),
                    Type::Gauge,
                    v / 1_000_000.0,
                )
            } else if ty == "power"
                && matches!(
                    element.as_str(),
                    "average_interval" | "average_interval_min" | "average_interval_max"
                )
            {
                (
                    format!("{name}_seconds"),
                    format!("Hardware monitor power usage update interval ({element})"),
                    Type::Gauge,
                    v * 0.001,
                )
            } else if ty == "power" {
                (
                    format!("{name}_watt"),
                    format!("Hardware monitor for power usage in watts ({element})"),
                    Type::Gauge,
                    v / 1_000_000.0,
                )
            } else if ty == "humidity" {
                (name, format!("Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({element})"), Type::Gauge, v / 1_000_000.0)
            } else if ty == "fan" && matches!(element.as_str(), "input" | "min" | "max" | "target")
            {
                (
                    format!("{name}_rpm"),
                    format!("Hardware monitor for fan revolutions per minute ({element})"),
                    Type::Gauge,
                    v,
                )
            } else {
                (
                    name,
                    format!("Hardware monitor {ty} element {element}"),
                    Type::Gauge,
                    v,
                )
            };
            add(fams, name, help, t, labels(), v);
        }
    }
    Ok(())
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let base: PathBuf = cx.files.path(&cx.opts.sysfs, "class/hwmon").to_path_buf();
    let rd = match std::fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NodeError::NoData(
                "hwmon collector metrics are not available for this system",
            ))
        }
        Err(e) => return Err(NodeError::io(&base, e)),
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut fams = Families::new();
    for d in &dirs {
        // node_exporter 1.5 drops per-chip errors (it returns nil), so one odd chip does not
        // hide the others.
        if let Err(e) = update_chip(d, &mut fams) {
            tracing::debug!(error = %e, "hwmon chip skipped");
        }
    }
    for (name, (help, t, mut samples)) in fams {
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        w.family(&[&name], &[&help], t);
        for (labels, v) in &samples {
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            w.sample(&[&name], &l, *v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_file_names() {
        let cases = [
            ("temp1_input", Some(("temp", "1", "input"))),
            ("in0_lcrit_alarm", Some(("in", "0", "lcrit_alarm"))),
            ("beep_enable", Some(("beep_enable", "", ""))),
            ("update_interval", Some(("update_interval", "", ""))),
            ("fan2", Some(("fan", "2", ""))),
            ("name", Some(("name", "", ""))),
            ("1abc", None),
            ("temp1_", None),
        ];
        for (f, want) in cases {
            assert_eq!(explode(f), want, "{f}");
        }
    }

    #[test]
    fn metric_name_cleaning() {
        let cases = [
            ("soc:firmware", "soc:firmware"),
            ("raspberrypi-hwmon", "raspberrypi_hwmon"),
            ("Core 0\n", "core_0"),
            ("__x__", "x"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw), want);
        }
    }
}
