//! Go's `fmt` and `time` text formats, as templates print numbers, times and durations.
//!
//! Rule authors see these strings in alert annotations, so they must match Go's output:
//! `%v` of a float is shortest `%g` (`1.5e+06`, `0.001`), `%.4g` trims zeros (`1.235k` in
//! `humanize`), times print as `2015-06-23 13:19:44.128 +0000 UTC`, durations as `1h2m3.5s`.

/// Decimal digits of |v| (no leading/trailing zeros) and the decimal point position:
/// v = 0.d1d2d3... * 10^dp. `sig` = significant digits to round to, `None` = shortest.
fn digits(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    let s = match sig {
        None => format!("{:e}", v.abs()),
        Some(n) => format!("{:.*e}", n.max(1) - 1, v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return (d, 0);
    }
    (d, exp + 1)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

fn fmt_e(out: &mut String, d: &[u8], dp: i32, prec: usize, upper: bool) {
    out.push(d.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
}

fn fmt_f(out: &mut String, d: &[u8], dp: i32, prec: usize) {
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            out.push(if j < 0 {
                '0'
            } else {
                d.get(j as usize).map_or('0', |&c| c as char)
            });
        }
    }
}

/// Go's `%g` (`prec` = None is the shortest representation, as `%v` uses).
pub fn format_g(v: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    let (d, dp) = digits(v, prec.map(|p| p.max(1)));
    let nd = d.len() as i32;
    let mut out = String::new();
    if v.is_sign_negative() && v != 0.0 {
        out.push('-');
    }
    let shortest = prec.is_none();
    let mut p = match prec {
        None => nd,
        Some(p) => p.max(1) as i32,
    };
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if !d.is_empty() && (exp < -4 || exp >= eprec) {
        if p > nd {
            p = nd;
        }
        fmt_e(&mut out, &d, dp, (p - 1).max(0) as usize, upper);
        return out;
    }
    if p > dp {
        p = nd;
    }
    fmt_f(&mut out, &d, dp, (p - dp).max(0) as usize);
    out
}

/// Go's `%e` with precision (default 6).
pub fn format_e(v: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    let (d, dp) = digits(v, Some(prec + 1));
    let mut out = String::new();
    if v.is_sign_negative() && v != 0.0 {
        out.push('-');
    }
    fmt_e(&mut out, &d, dp, prec, upper);
    out
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: shortest digits in exponent form (`1e+00`), as the
/// alerts API prints values.
pub fn format_e_shortest(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    let (d, dp) = digits(v, None);
    let mut out = String::new();
    if v.is_sign_negative() && v != 0.0 {
        out.push('-');
    }
    fmt_e(&mut out, &d, dp, d.len().saturating_sub(1), false);
    out
}

/// RFC 3339 with up to millisecond precision in UTC (Go's `time.RFC3339Nano` of a UTC time).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Go's `%f` with precision (default 6).
pub fn format_f(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    format!("{v:.prec$}")
}

/// `fmt.Sprint(float64)`.
pub fn format_v(v: f64) -> String {
    format_g(v, None, false)
}

pub use crate::logging::civil_from_days;

/// Go's `time.Time.String()` of a UTC time given in ms: `2015-06-23 13:19:44.128 +0000 UTC`.
pub fn format_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Go's `time.Duration.String()` for a duration in seconds (nanosecond resolution).
pub fn format_go_duration(secs: f64) -> String {
    let ns = (secs * 1e9) as i128;
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Below one second Go uses the largest of ns, µs, ms that fits.
        let (div, unit) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        out.push_str(&frac_str(u, div));
        out.push_str(unit);
        return out;
    }
    let total_s = u / 1_000_000_000;
    let h = total_s / 3600;
    let m = total_s / 60 % 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac_str(u % 60_000_000_000, 1_000_000_000));
    out.push('s');
    out
}

fn frac_str(v: u128, div: u128) -> String {
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let mut f = format!("{frac:0width$}");
    while f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        let cases: &[(f64, Option<usize>, &str)] = &[
            (1.0, None, "1"),
            (0.5, None, "0.5"),
            (1234567.0, None, "1.234567e+06"),
            (123456.0, None, "123456"),
            (1e6, None, "1e+06"),
            (0.0001, None, "0.0001"),
            (0.00001, None, "1e-05"),
            (0.0, None, "0"),
            (-2.5, None, "-2.5"),
            (1234.5, Some(4), "1234"),
            (1235.5, Some(4), "1236"),
            (12345.0, Some(4), "1.234e+04"),
            (1000.0, Some(4), "1000"),
            (100000.0, Some(4), "1e+05"),
            (1.2345678, Some(4), "1.235"),
            (0.0, Some(4), "0"),
            (f64::NAN, Some(4), "NaN"),
            (f64::INFINITY, None, "+Inf"),
        ];
        for &(v, p, want) in cases {
            assert_eq!(format_g(v, p, false), want, "{v} {p:?}");
        }
        assert_eq!(format_e(1234.5, 2, false), "1.23e+03");
        assert_eq!(format_e(0.0, 1, false), "0.0e+00");
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
        assert_eq!(format_e_shortest(1.0), "1e+00");
        assert_eq!(format_e_shortest(1234.5), "1.2345e+03");
        assert_eq!(
            format_rfc3339_ms(1_435_065_584_120),
            "2015-06-23T13:19:44.12Z"
        );
    }

    #[test]
    fn times_and_durations_like_go() {
        assert_eq!(
            format_time_ms(1_435_065_584_128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(format_time_ms(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(format_time_ms(1500), "1970-01-01 00:00:01.5 +0000 UTC");
        let cases: &[(f64, &str)] = &[
            (0.0, "0s"),
            (3723.5, "1h2m3.5s"),
            (60.0, "1m0s"),
            (0.25, "250ms"),
            (-90.0, "-1m30s"),
        ];
        for &(s, want) in cases {
            assert_eq!(format_go_duration(s), want, "{s}");
        }
    }
}
