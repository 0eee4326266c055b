//! Prometheus duration (`1y2w3d4h5m6s7ms`, `90s`) and byte-size (`512MB`, `4GB`) syntax.
//!
//! Durations follow Prometheus's `model.ParseDuration`: units y, w, d, h, m, s, ms in that order,
//! each at most once, integers only; `0` alone is allowed. A year is 365 days. Sizes follow
//! `units.ParseBase2Bytes`: B, KB, MB, GB, TB, PB, EB with a base of 1024 (also KiB...).

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration. The error text matches Prometheus's (`not a valid duration string: "x"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".to_string());
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0; // index into UNITS: units must appear in order
    let mut total: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
        let n: u64 = s[start..i].parse().map_err(|_| err())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let pos = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(err)?;
        if pos < next_unit {
            return Err(err());
        }
        next_unit = pos + 1;
        total = n
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    if total > i64::MAX as u64 {
        return Err("duration out of range".to_string());
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus prints it (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (u, f) in UNITS {
        if ms >= *f {
            out.push_str(&(ms / f).to_string());
            out.push_str(u);
            ms %= f;
        }
    }
    out
}

/// Parses a base-2 byte size (`512MB` = 512 MiB). A bare `0` is allowed and means "off".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let err = || {
        format!("invalid size {s:?}: want a number with a unit B, KB, MB, GB, TB, PB or EB (e.g. 512MB)")
    };
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        "PB" | "PIB" => 1 << 50,
        "EB" | "EIB" => 1 << 60,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Formats a byte size in the largest unit that divides it exactly (`10485760` -> `10MB`), so
/// that [`parse_size`] reads it back; `0` stays `0`.
pub fn format_size(n: u64) -> String {
    if n == 0 {
        return "0".to_string();
    }
    for (unit, shift) in [
        ("EB", 60),
        ("PB", 50),
        ("TB", 40),
        ("GB", 30),
        ("MB", 20),
        ("KB", 10),
    ] {
        if n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `config_load` fuzz target: a rendered config printed `body_size_limit` as a
    /// bare byte count, which does not load again.
    #[test]
    fn sizes_round_trip_through_format() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (1, "1B"),
            (1023, "1023B"),
            (1024, "1KB"),
            (10 << 20, "10MB"),
            ((10 << 20) + 1, "10485761B"),
            (3 << 30, "3GB"),
            (u64::MAX, "18446744073709551615B"),
            (1 << 63, "8EB"),
        ];
        for &(n, text) in cases {
            assert_eq!(format_size(n), text);
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
    }

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("90s", 90_000),
            ("1h30m", 5_400_000),
            ("15d", 15 * 86_400_000),
            (
                "1y2w3d4h5m6s7ms",
                31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_400_000 + 300_000 + 6_000 + 7,
            ),
            ("500ms", 500),
            ("0s", 0),
        ];
        for &(s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "1", "s", "1.5h", "1m1h", "1h1h", "-1s", "5 m", "1x"] {
            assert!(parse_duration(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn duration_round_trip() {
        for s in ["15s", "1h30m", "2w", "1y", "5m", "10s", "1m30s500ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("512MB", 512 << 20),
            ("4GB", 4 << 30),
            ("1KB", 1024),
            ("10B", 10),
            ("1TiB", 1 << 40),
        ];
        for &(s, n) in ok {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for s in ["", "MB", "1.5GB", "12", "-1GB", "3XB"] {
            assert!(parse_size(s).is_err(), "{s:?} should fail");
        }
    }
}
