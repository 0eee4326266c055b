//! `edgeprom_rpi` collector: Raspberry Pi health that node_exporter lacks, wherever the kernel
//! exposes it (on other boards the collector succeeds with no output).
//!
//! - Throttling: the firmware's `get_throttled` bit mask
//!   (`<sysfs>/devices/platform/soc/soc:firmware/get_throttled`, searched under
//!   `devices/platform/*/*firmware/` on other layouts); bits 0-3 are the current state, bits
//!   16-19 latch once the condition happened since boot.
//! - Under-voltage alarm: the firmware hwmon chip `rpi_volt`'s `in0_lcrit_alarm`.
//! - SoC temperature: the thermal zone of type `cpu-thermal`.
//! - SD/eMMC wear hints: `<sysfs>/block/*/device/life_time` and `pre_eol_info` (eMMC 5.0+), and
//!   the card's identity (`type`, `name`, `manfid`, `oemid`, `date`).
//! - Board model from the device tree.
//!
//! The metric names are documented in `src/node/README.md`.

use std::path::{Path, PathBuf};

use super::expo::{Type, W};
use super::{list_dir, read_attr, Ctx, NodeError};

/// get_throttled bits: (bit of the current state, flag label). "Since boot" is bit + 16.
const FLAGS: [(u32, &str); 4] = [
    (0, "under_voltage"),
    (1, "arm_frequency_capped"),
    (2, "throttled"),
    (3, "soft_temperature_limit"),
];

fn find_get_throttled(sysfs: &Path) -> Option<PathBuf> {
    let fixed = sysfs.join("devices/platform/soc/soc:firmware/get_throttled");
    if fixed.is_file() {
        return Some(fixed);
    }
    let platform = sysfs.join("devices/platform");
    for bus in std::fs::read_dir(&platform).ok()?.flatten() {
        let Ok(children) = std::fs::read_dir(bus.path()) else {
            continue;
        };
        for c in children.flatten() {
            if c.file_name().to_string_lossy().ends_with("firmware") {
                let p = c.path().join("get_throttled");
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// Parses `0x50005` or `50005` (the firmware prints hex without prefix through sysfs).
fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u32::from_str_radix(s, 16).ok()
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let sysfs = cx.opts.sysfs.clone();
    let mut buf = std::mem::take(&mut cx.buf2);

    // Board model: NUL-terminated string in the device tree.
    for p in [
        cx.opts.procfs.join("device-tree/model"),
        sysfs.join("firmware/devicetree/base/model"),
    ] {
        if let Some(m) = read_attr(&p, &mut buf) {
            let m = m.trim_end_matches('\0');
            w.family(
                &["edgeprom_rpi_board_info"],
                &["Board model from the device tree, as a label; constant 1."],
                Type::Gauge,
            );
            w.sample(&["edgeprom_rpi_board_info"], &[("model", m)], 1.0);
            break;
        }
    }

    if let Some(p) = find_get_throttled(&sysfs) {
        if let Some(bits) = read_attr(&p, &mut buf).and_then(parse_hex) {
            w.single(
                "edgeprom_rpi_throttled_raw",
                "Raw bit mask from the Raspberry Pi firmware's get_throttled.",
                Type::Gauge,
                f64::from(bits),
            );
            w.family(
                &["edgeprom_rpi_throttle_flag"],
                &["Raspberry Pi firmware throttling flags: 1 if the condition holds now (period=\"now\") or has happened since boot (period=\"since_boot\")."],
                Type::Gauge,
            );
            for (bit, flag) in FLAGS {
                for (period, shift) in [("now", 0), ("since_boot", 16)] {
                    let on = bits >> (bit + shift) & 1;
                    w.sample(
                        &["edgeprom_rpi_throttle_flag"],
                        &[("flag", flag), ("period", period)],
                        f64::from(on),
                    );
                }
            }
        }
    }

    // Under-voltage alarm of the firmware hwmon chip.
    let hwmon = sysfs.join("class/hwmon");
    if list_dir(&hwmon, "hwmon", &mut cx.names).is_ok() {
        for d in &cx.names {
            let dir = hwmon.join(d);
            if read_attr(&dir.join("name"), &mut buf) != Some("rpi_volt") {
                continue;
            }
            let mut alarm = read_attr(&dir.join("in0_lcrit_alarm"), &mut buf)
                .and_then(|s| s.parse::<f64>().ok());
            if alarm.is_none() {
                alarm = read_attr(&dir.join("device/in0_lcrit_alarm"), &mut buf)
                    .and_then(|s| s.parse::<f64>().ok());
            }
            if let Some(a) = alarm {
                w.single(
                    "edgeprom_rpi_under_voltage_alarm",
                    "1 while the firmware's rpi_volt sensor reports under-voltage (in0_lcrit_alarm).",
                    Type::Gauge,
                    a,
                );
                break;
            }
        }
    }

    // SoC temperature: the cpu-thermal zone.
    let thermal = sysfs.join("class/thermal");
    if list_dir(&thermal, "thermal_zone", &mut cx.names).is_ok() {
        for d in &cx.names {
            let dir = thermal.join(d);
            let is_soc = matches!(
                read_attr(&dir.join("type"), &mut buf),
                Some("cpu-thermal" | "cpu_thermal")
            );
            if !is_soc {
                continue;
            }
            if let Some(t) =
                read_attr(&dir.join("temp"), &mut buf).and_then(|s| s.parse::<i64>().ok())
            {
                w.single(
                    "edgeprom_rpi_soc_temperature_celsius",
                    "SoC temperature from the cpu-thermal zone, in degrees Celsius.",
                    Type::Gauge,
                    t as f64 / 1000.0,
                );
                break;
            }
        }
    }

    // SD card / eMMC identity and wear.
    let block = sysfs.join("block");
    // (device, type, name, manfid, oemid, date, life A, life B, pre-EOL)
    type Card = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<u32>,
        Option<u32>,
        Option<u32>,
    );
    let mut cards: Vec<Card> = Vec::new();
    if list_dir(&block, "", &mut cx.names).is_ok() {
        for d in &cx.names {
            let dev = block.join(d).join("device");
            let Some(ty) = read_attr(&dev.join("type"), &mut buf).map(str::to_string) else {
                continue;
            };
            if !matches!(ty.as_str(), "SD" | "MMC" | "SDIO") {
                continue;
            }
            let mut attr = |f: &str| read_attr(&dev.join(f), &mut buf).unwrap_or("").to_string();
            let (name, manfid, oemid, date) =
                (attr("name"), attr("manfid"), attr("oemid"), attr("date"));
            let life = read_attr(&dev.join("life_time"), &mut buf).map(str::to_string);
            let (a, b) = match life.as_deref().map(|l| {
                let mut it = l.split_whitespace().map(parse_hex);
                (it.next().flatten(), it.next().flatten())
            }) {
                Some((a, b)) => (a, b),
                None => (None, None),
            };
            let eol = read_attr(&dev.join("pre_eol_info"), &mut buf).and_then(parse_hex);
            cards.push((d.clone(), ty, name, manfid, oemid, date, a, b, eol));
        }
    }
    w.family(
        &["edgeprom_mmc_info"],
        &["SD card or eMMC identity from sysfs; constant 1."],
        Type::Gauge,
    );
    for c in &cards {
        w.sample(
            &["edgeprom_mmc_info"],
            &[
                ("date", &c.5),
                ("device", &c.0),
                ("manfid", &c.3),
                ("name", &c.2),
                ("oemid", &c.4),
                ("type", &c.1),
            ],
            1.0,
        );
    }
    w.family(
        &["edgeprom_mmc_life_time_estimate"],
        &["eMMC device life time estimate (JEDEC DEVICE_LIFE_TIME_EST_TYP_A/B): 1 means 0-10% of the rated life used, each step 10% more, 11 exceeded."],
        Type::Gauge,
    );
    for c in &cards {
        for (t, v) in [("A", c.6), ("B", c.7)] {
            if let Some(v) = v {
                w.sample(
                    &["edgeprom_mmc_life_time_estimate"],
                    &[("device", &c.0), ("type", t)],
                    f64::from(v),
                );
            }
        }
    }
    w.family(
        &["edgeprom_mmc_pre_eol_info"],
        &["eMMC pre-end-of-life state (JEDEC PRE_EOL_INFO): 1 normal, 2 warning (80% of reserved blocks used), 3 urgent."],
        Type::Gauge,
    );
    for c in &cards {
        if let Some(v) = c.8 {
            w.sample(
                &["edgeprom_mmc_pre_eol_info"],
                &[("device", &c.0)],
                f64::from(v),
            );
        }
    }
    cx.buf2 = buf;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_values() {
        let cases = [
            ("0", Some(0)),
            ("50005", Some(0x50005)),
            ("0x50005\n", Some(0x50005)),
            ("0x01", Some(1)),
            ("zz", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_hex(s), want, "{s}");
        }
    }
}
