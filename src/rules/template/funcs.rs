//! Template functions: Go's builtins and the ones Prometheus adds (`template/template.go`,
//! documented at <https://prometheus.io/docs/prometheus/latest/configuration/template_reference/>).

use std::collections::BTreeMap;

use super::gofmt::{format_e, format_f, format_g, format_time_ms};
use super::{ExecContext, Value};

const FUNCS: &[&str] = &[
    // Go builtins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "slice",
    // Prometheus.
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
];

/// Whether `name` is a known function (checked when a template is parsed).
pub(super) fn exists(name: &str) -> bool {
    FUNCS.contains(&name)
}

fn want_args(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: got {} want {n}", args.len()));
    }
    Ok(())
}

fn as_str(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// Prometheus's `convertToFloat`: floats, ints, and strings that parse as floats.
fn as_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(d) => Ok(*d),
        Value::Str(s) => parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn sample_fields(v: &Value) -> Result<(&BTreeMap<String, Value>, f64), String> {
    if let Value::Struct(fs) = v {
        let labels = fs.iter().find(|(n, _)| *n == "Labels").map(|(_, v)| v);
        let value = fs.iter().find(|(n, _)| *n == "Value").map(|(_, v)| v);
        if let (Some(Value::Map(m)), Some(Value::Float(f))) = (labels, value) {
            return Ok((m, *f));
        }
    }
    Err(format!(
        "wrong type for value; expected *template.sample; got {}",
        v.type_name()
    ))
}

fn kind_order(v: &Value) -> Result<u8, String> {
    Ok(match v {
        Value::Bool(_) => 0,
        Value::Int(_) => 1,
        Value::Float(_) => 2,
        Value::Str(_) => 3,
        Value::Nil => 4,
        _ => return Err("invalid type for comparison".to_string()),
    })
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    if kind_order(a)? != kind_order(b)? {
        return Err("incompatible types for comparison".to_string());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Less),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => Ordering::Equal,
    })
}

/// `%.4g` with a suffix, the shape of every `humanize*` result.
fn g4(v: f64, suffix: &str) -> String {
    format!("{}{suffix}", format_g(v, Some(4), false))
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return g4(v, prefix);
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    g4(v, prefix)
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    g4(v, prefix)
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    if v == 0.0 {
        return g4(v, "s");
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}", g4(v, "s"));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    g4(v, &format!("{prefix}s"))
}

/// Prometheus's `floatToTime`: seconds to a millisecond timestamp.
fn float_to_time(v: f64) -> Result<i64, String> {
    if v.is_nan() || v.is_infinite() {
        return Err("value is NaN or Inf".to_string());
    }
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            super::gofmt::format_v(v)
        ));
    }
    Ok((ns as i64).div_euclid(1_000_000))
}

fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_sep(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn query_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_string());
    }
    out
}

fn pad(s: String, width: Option<usize>, left: bool, zero: bool) -> String {
    let Some(w) = width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        let (sign, digits) = match s.strip_prefix('-') {
            Some(d) => ("-", d.to_string()),
            None => match s.strip_prefix('+') {
                Some(d) => ("+", d.to_string()),
                None => ("", s.clone()),
            },
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

/// `fmt.Sprintf` for the verbs templates use: `%v %s %d %f %F %e %E %g %G %q %x %X %t %%`.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus, mut sharp) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                '#' => sharp = true,
                ' ' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let bad = || format!("%!{verb}({}={arg})", arg.type_name());
        let signed = |s: String| {
            if plus && !s.starts_with('-') {
                format!("+{s}")
            } else {
                s
            }
        };
        let s = match (verb, arg) {
            ('v', Value::Float(f)) => signed(format_g(*f, prec, false)),
            ('v', a) => a.to_string(),
            ('s', Value::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', Value::Time(_) | Value::Duration(_)) => arg.to_string(),
            ('d', Value::Int(i)) => signed(i.to_string()),
            ('f' | 'F', Value::Float(f)) => signed(format_f(*f, prec.unwrap_or(6))),
            ('e' | 'E', Value::Float(f)) => signed(format_e(*f, prec.unwrap_or(6), verb == 'E')),
            ('g' | 'G', Value::Float(f)) => signed(format_g(*f, prec, verb == 'G')),
            ('q', Value::Str(s)) => format!("{s:?}"),
            ('q', Value::Int(i)) => {
                format!("{:?}", char::from_u32(*i as u32).unwrap_or('\u{fffd}'))
            }
            ('x', Value::Int(i)) => format!("{}{i:x}", if sharp { "0x" } else { "" }),
            ('X', Value::Int(i)) => format!("{}{i:X}", if sharp { "0X" } else { "" }),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('t', Value::Bool(b)) => b.to_string(),
            ('c', Value::Int(i)) => char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
            _ => bad(),
        };
        let numeric = matches!(arg, Value::Int(_) | Value::Float(_));
        out.push_str(&pad(s, width, left, zero && numeric && !left));
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| format!("{}={a}", a.type_name()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Calls function `name` (known to exist) with evaluated arguments.
pub(super) fn call(name: &str, args: Vec<Value>, ctx: &ExecContext) -> Result<Value, String> {
    let one_float = |args: &[Value]| -> Result<f64, String> {
        want_args(args, 1)?;
        as_float(&args[0])
    };
    let one_str = |args: &[Value]| -> Result<String, String> {
        want_args(args, 1)?;
        as_str(&args[0])
    };
    Ok(match name {
        "and" => {
            if args.is_empty() {
                return Err("wrong number of args for and: want at least 1 got 0".into());
            }
            args.iter()
                .find(|a| !a.truthy())
                .cloned()
                .unwrap_or_else(|| args[args.len() - 1].clone())
        }
        "or" => {
            if args.is_empty() {
                return Err("wrong number of args for or: want at least 1 got 0".into());
            }
            args.iter()
                .find(|a| a.truthy())
                .cloned()
                .unwrap_or_else(|| args[args.len() - 1].clone())
        }
        "not" => {
            want_args(&args, 1)?;
            Value::Bool(!args[0].truthy())
        }
        "len" => {
            want_args(&args, 1)?;
            Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("len of type {}", other.type_name())),
            } as i64)
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Map(m), Value::Str(s)) => {
                        m.get(s).cloned().unwrap_or(Value::Str(String::new()))
                    }
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?,
                    (Value::Nil, _) => return Err("index of untyped nil".into()),
                    (c, _) => return Err(format!("can't index item of type {}", c.type_name())),
                };
            }
            v
        }
        "slice" => {
            let Some((first, idx)) = args.split_first() else {
                return Err("wrong number of args for slice: want at least 1 got 0".into());
            };
            let bounds: Vec<usize> = idx
                .iter()
                .map(|i| match i {
                    Value::Int(i) if *i >= 0 => Ok(*i as usize),
                    _ => Err("cannot index slice/array with nil".to_string()),
                })
                .collect::<Result<_, _>>()?;
            match first {
                Value::Str(s) => {
                    let lo = bounds.first().copied().unwrap_or(0);
                    let hi = bounds.get(1).copied().unwrap_or(s.len());
                    Value::Str(
                        s.get(lo..hi)
                            .ok_or_else(|| format!("index out of range: {hi}"))?
                            .to_string(),
                    )
                }
                Value::List(l) => {
                    let lo = bounds.first().copied().unwrap_or(0);
                    let hi = bounds.get(1).copied().unwrap_or(l.len());
                    Value::List(
                        l.get(lo..hi)
                            .ok_or_else(|| format!("index out of range: {hi}"))?
                            .to_vec(),
                    )
                }
                other => return Err(format!("can't slice item of type {}", other.type_name())),
            }
        }
        "print" => Value::Str(sprint(&args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            Value::Str(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Value::Str(sprintf(&as_str(f)?, rest))
        }
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("missing argument for comparison".into());
            };
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for r in rest {
                if compare(first, r)? == std::cmp::Ordering::Equal {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(&args, 2)?;
            let o = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "html" => Value::Str(html_escape(&sprint(&args))),
        "js" => Value::Str(js_escape(&sprint(&args))),
        "urlquery" => Value::Str(query_escape(&sprint(&args))),
        "query" => {
            let q = one_str(&args)?;
            let Some(f) = &ctx.query else {
                return Err("queries are not available here".into());
            };
            let res = f(&q, ctx.t_ms)?;
            Value::List(
                res.into_iter()
                    .map(|(l, v)| {
                        Value::Struct(vec![
                            ("Labels", Value::from_labels(&l)),
                            ("Value", Value::Float(v)),
                        ])
                    })
                    .collect(),
            )
        }
        "first" => {
            want_args(&args, 1)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or("first() called on vector with no elements")?,
                other => {
                    return Err(format!(
                        "wrong type for value; expected template.queryResult; got {}",
                        other.type_name()
                    ))
                }
            }
        }
        "label" => {
            want_args(&args, 2)?;
            let l = as_str(&args[0])?;
            let (m, _) = sample_fields(&args[1])?;
            m.get(&l).cloned().unwrap_or(Value::Str(String::new()))
        }
        "value" => {
            want_args(&args, 1)?;
            Value::Float(sample_fields(&args[0])?.1)
        }
        "strvalue" => {
            want_args(&args, 1)?;
            let (m, _) = sample_fields(&args[0])?;
            m.get("__value__")
                .cloned()
                .unwrap_or(Value::Str(String::new()))
        }
        "sortByLabel" => {
            want_args(&args, 2)?;
            let l = as_str(&args[0])?;
            let Value::List(mut list) = args[1].clone() else {
                return Err("wrong type for value; expected template.queryResult".into());
            };
            let key = |v: &Value| {
                sample_fields(v)
                    .ok()
                    .and_then(|(m, _)| m.get(&l).map(|v| v.to_string()))
                    .unwrap_or_default()
            };
            list.sort_by_key(key);
            Value::List(list)
        }
        "args" => Value::Map(
            args.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect(),
        ),
        "reReplaceAll" => {
            want_args(&args, 3)?;
            let (pat, repl, text) = (as_str(&args[0])?, as_str(&args[1])?, as_str(&args[2])?);
            let re = regex::Regex::new(&pat).map_err(|e| e.to_string())?;
            Value::Str(re.replace_all(&text, repl.as_str()).into_owned())
        }
        "match" => {
            want_args(&args, 2)?;
            let re = regex::Regex::new(&as_str(&args[0])?).map_err(|e| e.to_string())?;
            Value::Bool(re.is_match(&as_str(&args[1])?))
        }
        "safeHtml" => Value::Str(one_str(&args)?),
        "title" => Value::Str(title(&one_str(&args)?)),
        "toUpper" => Value::Str(one_str(&args)?.to_uppercase()),
        "toLower" => Value::Str(one_str(&args)?.to_lowercase()),
        "graphLink" => Value::Str(format!(
            "/graph?g0.expr={}&g0.tab=0",
            query_escape(&one_str(&args)?)
        )),
        "tableLink" => Value::Str(format!(
            "/graph?g0.expr={}&g0.tab=1",
            query_escape(&one_str(&args)?)
        )),
        "humanize" => Value::Str(humanize(one_float(&args)?)),
        "humanize1024" => Value::Str(humanize1024(one_float(&args)?)),
        "humanizeDuration" => Value::Str(humanize_duration(one_float(&args)?)),
        "humanizePercentage" => Value::Str(g4(one_float(&args)? * 100.0, "%")),
        "humanizeTimestamp" => {
            let v = one_float(&args)?;
            if v.is_nan() || v.is_infinite() {
                Value::Str(g4(v, ""))
            } else {
                Value::Str(format_time_ms(float_to_time(v)?))
            }
        }
        "toTime" => Value::Time(float_to_time(one_float(&args)?)?),
        "toDuration" => {
            let v = one_float(&args)?;
            if v.is_nan() || v.is_infinite() {
                return Err("value is NaN or Inf".into());
            }
            Value::Duration(v)
        }
        "parseDuration" => {
            let s = one_str(&args)?;
            let d = crate::rules::file::parse_duration(&s)?;
            Value::Float(d.as_secs_f64())
        }
        "pathPrefix" => {
            want_args(&args, 0)?;
            let u = &ctx.external_url;
            let after_scheme = u.split_once("://").map_or(u.as_str(), |(_, r)| r);
            Value::Str(
                after_scheme
                    .find('/')
                    .map_or("", |i| &after_scheme[i..])
                    .to_string(),
            )
        }
        "externalURL" => {
            want_args(&args, 0)?;
            Value::Str(ctx.external_url.clone())
        }
        "stripPort" => {
            let s = one_str(&args)?;
            Value::Str(split_host_port(&s).map_or(s.clone(), |(h, _)| h.to_string()))
        }
        "stripDomain" => {
            let s = one_str(&args)?;
            let (host, port) = match split_host_port(&s) {
                Some((h, p)) => (h.to_string(), Some(p.to_string())),
                None => (s.clone(), None),
            };
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(Value::Str(s));
            }
            let short = host.split('.').next().unwrap_or("").to_string();
            Value::Str(match port {
                Some(p) => format!("{short}:{p}"),
                None => short,
            })
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}
