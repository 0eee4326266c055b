//! Date functions (<https://prometheus.io/docs/prometheus/latest/querying/functions/#day_of_month>,
//! `day_of_week`, `day_of_year`, `days_in_month`, `hour`, `minute`, `month`, `year`), all in UTC.

use crate::logging::civil_from_days as civil;

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// Applies the date function `name` to a Unix time in seconds; `None` if `name` is not one.
pub(crate) fn date_fn(name: &str, secs: f64) -> Option<f64> {
    if !matches!(
        name,
        "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "days_in_month"
            | "hour"
            | "minute"
            | "month"
            | "year"
    ) {
        return None;
    }
    if secs.is_nan() || secs.is_infinite() {
        return Some(f64::NAN);
    }
    let s = secs.floor() as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    Some(match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut n = d;
            for mm in 1..m {
                n += days_in(y, mm);
            }
            n as f64
        }
        "days_in_month" => days_in(y, m) as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        _ => y as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        let cases = [
            ("year", 2024.0),
            ("month", 2.0),
            ("day_of_month", 29.0),
            ("days_in_month", 29.0),
            ("hour", 13.0),
            ("minute", 45.0),
            ("day_of_week", 4.0),
            ("day_of_year", 60.0),
        ];
        for (n, want) in cases {
            assert_eq!(date_fn(n, t), Some(want), "{n}");
        }
    }
}
