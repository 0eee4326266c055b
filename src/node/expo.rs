//! Prometheus text format 0.0.4 writer shared by the node collectors.
//!
//! Values are printed the way node_exporter (Go's `strconv.FormatFloat(v, 'g', -1, 64)`) prints
//! them, so a byte comparison with node_exporter's output is meaningful: shortest round-trip
//! digits, exponent form when the decimal exponent is below -4 or at least 6 (`1.6777216e+07`,
//! `6.1905e-05`), plain form otherwise (`479017`, `0.000345956`). Nothing here allocates beyond
//! growing the caller's `String`.

use std::fmt::Write as _;

/// The metric types node collectors emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Counter,
    Gauge,
    Untyped,
    Summary,
    Histogram,
}

impl Type {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Untyped => "untyped",
            Type::Summary => "summary",
            Type::Histogram => "histogram",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "counter" => Type::Counter,
            "gauge" => Type::Gauge,
            "untyped" => Type::Untyped,
            "summary" => Type::Summary,
            "histogram" => Type::Histogram,
            _ => return None,
        })
    }
}

/// Appends exposition lines to a borrowed `String`.
///
/// A family header with no sample after it is removed again (node_exporter prints no empty
/// families), by remembering where the open header started.
pub(crate) struct W<'a> {
    out: &'a mut String,
    /// Byte offset of the open family's `# HELP` line, if it has no sample yet.
    empty_header_at: Option<usize>,
}

impl<'a> W<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        W {
            out,
            empty_header_at: None,
        }
    }

    /// Drops a trailing header that got no samples; call when a collector is done.
    pub(crate) fn finish(&mut self) {
        if let Some(at) = self.empty_header_at.take() {
            self.out.truncate(at);
        }
    }

    /// `# HELP` and `# TYPE` lines; `name` and `help` are concatenations of their parts so callers
    /// can build names such as `node_memory_<field>_bytes` without allocating.
    pub(crate) fn family(&mut self, name: &[&str], help: &[&str], t: Type) {
        self.finish();
        self.empty_header_at = Some(self.out.len());
        self.out.push_str("# HELP ");
        name.iter().for_each(|p| self.out.push_str(p));
        self.out.push(' ');
        for p in help {
            escape_help(self.out, p);
        }
        self.out.push_str("\n# TYPE ");
        name.iter().for_each(|p| self.out.push_str(p));
        self.out.push(' ');
        self.out.push_str(t.as_str());
        self.out.push('\n');
    }

    /// One sample line. `labels` must already be sorted by name (client_golang's order).
    pub(crate) fn sample(&mut self, name: &[&str], labels: &[(&str, &str)], v: f64) {
        self.empty_header_at = None;
        name.iter().for_each(|p| self.out.push_str(p));
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        fmt_go_float(self.out, v);
        self.out.push('\n');
    }

    /// True if `name` already has a family header in the output.
    pub(crate) fn has_family(&self, name: &str) -> bool {
        let mut at = 0;
        while let Some(i) = self.out[at..].find("# TYPE ") {
            let start = at + i + 7;
            let rest = &self.out[start..];
            if rest.starts_with(name) && rest[name.len()..].starts_with(' ') {
                return true;
            }
            at = start;
        }
        false
    }

    /// A family with one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, help: &str, t: Type, v: f64) {
        self.family(&[name], &[help], t);
        self.sample(&[name], &[], v);
    }
}

/// Escapes a HELP text: backslash and newline.
pub(crate) fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub(crate) fn escape_label_value(out: &mut String, s: &str) {
    if !s.contains(['\\', '"', '\n']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A fixed stack buffer to format into without allocating.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes `v` like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, with client_golang's spellings
/// of the special values (`NaN`, `+Inf`, `-Inf`).
pub(crate) fn fmt_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    // Fast path: small integers print as themselves in both notations.
    if v.fract() == 0.0 && v.abs() < 1e6 && !(v == 0.0 && v.is_sign_negative()) {
        let _ = write!(out, "{}", v as i64);
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's -1 precision does.
    let mut sb = StackBuf {
        buf: [0; 48],
        len: 0,
    };
    if write!(sb, "{v:e}").is_err() {
        let _ = write!(out, "{v}");
        return;
    }
    let s = std::str::from_utf8(&sb.buf[..sb.len]).unwrap_or("0e0");
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (d0, rest) = mant.split_once('.').unwrap_or((mant, ""));
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(d0);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(d0);
        out.push_str(rest);
    } else {
        // exp in 0..6: the first exp+1 digits are the integer part.
        let int_digits = exp as usize + 1;
        out.push_str(d0);
        let rest_b = rest.as_bytes();
        let from_rest = int_digits - 1;
        if rest_b.len() <= from_rest {
            out.push_str(rest);
            for _ in rest_b.len()..from_rest {
                out.push('0');
            }
        } else {
            out.push_str(&rest[..from_rest]);
            out.push('.');
            out.push_str(&rest[from_rest..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting() {
        // Expected strings are what node_exporter 1.5 printed for these values.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (479017.0, "479017"),
            (1464.0, "1464"),
            (1.795970534e9, "1.795970534e+09"),
            (1.6777216e7, "1.6777216e+07"),
            (2.097152e6, "2.097152e+06"),
            (0.99, "0.99"),
            (40.666430999999996, "40.666430999999996"),
            (0.000345956, "0.000345956"),
            (6.1905e-05, "6.1905e-05"),
            (4.9011e-05, "4.9011e-05"),
            (73.054, "73.054"),
            (1.79597117220014e9, "1.79597117220014e+09"),
            (3.5184372087808e13, "3.5184372087808e+13"),
            (123456.5, "123456.5"),
            (1e6, "1e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (100.0, "100"),
            (120.5, "120.5"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            fmt_go_float(&mut s, *v);
            assert_eq!(&s, want, "value {v:?}");
        }
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd");
        assert_eq!(s, "a\\\\b\\\"c\\nd");
        let mut h = String::new();
        escape_help(&mut h, "x\\y\nz\"");
        assert_eq!(h, "x\\\\y\\nz\"");
    }
}
