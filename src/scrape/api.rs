//! JSON for `/api/v1/targets`, `/api/v1/targets/metadata` and `/api/v1/metadata`, in
//! Prometheus's shapes (field names, ordering, zero values), so dashboards and scripts written
//! against Prometheus read edgeprom unchanged.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::manager::ScrapeManager;
use super::target::{public_labels, Target};
use crate::config::format_duration;
use crate::model::{Labels, MatchType, Matcher};

fn labels_json(l: &Labels) -> Value {
    let mut m = Map::new();
    for x in l {
        m.insert(x.name.clone(), Value::String(x.value.clone()));
    }
    Value::Object(m)
}

fn ok(data: Value) -> (u16, Vec<u8>) {
    let body = json!({"status": "success", "data": data});
    (200, serde_json::to_vec(&body).unwrap_or_default())
}

fn err(code: u16, kind: &str, msg: &str) -> (u16, Vec<u8>) {
    let body = json!({"status": "error", "errorType": kind, "error": msg});
    (code, serde_json::to_vec(&body).unwrap_or_default())
}

/// RFC 3339 with nanoseconds, as Go's `time.RFC3339Nano` (trailing zeros trimmed); the zero
/// time for "never".
fn rfc3339_nano(t: Option<SystemTime>) -> String {
    let Some(d) = t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else {
        return "0001-01-01T00:00:00Z".into();
    };
    let secs = d.as_secs() as i64;
    let (y, mo, day) = crate::logging::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn global_url(url: &str) -> String {
    // Prometheus replaces a loopback host with the machine's hostname.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        return url.to_string();
    }
    for lo in ["//localhost:", "//127.0.0.1:", "//[::1]:"] {
        if let Some(i) = url.find(lo) {
            return format!("{}//{host}:{}", &url[..i], &url[i + lo.len()..]);
        }
    }
    url.to_string()
}

fn target_json(pool: &str, t: &Target) -> Value {
    let st = t.status();
    json!({
        "discoveredLabels": labels_json(&t.discovered),
        "labels": labels_json(&public_labels(&t.labels)),
        "scrapePool": pool,
        "scrapeUrl": t.url,
        "globalUrl": global_url(&t.url),
        "lastError": st.last_error,
        "lastScrape": rfc3339_nano(st.last_scrape),
        "lastScrapeDuration": st.last_duration.as_secs_f64(),
        "health": st.health.as_str(),
        "scrapeInterval": format_duration(t.interval),
        "scrapeTimeout": format_duration(t.timeout),
    })
}

pub(crate) fn handle(
    m: &ScrapeManager,
    path: &str,
    params: &[(String, String)],
) -> Option<(u16, Vec<u8>)> {
    match path {
        "/api/v1/targets" => Some(targets(m, params)),
        "/api/v1/targets/metadata" => Some(targets_metadata(m, params)),
        "/api/v1/metadata" => Some(metadata(m, params)),
        _ => None,
    }
}

fn targets(m: &ScrapeManager, params: &[(String, String)]) -> (u16, Vec<u8>) {
    let state = param(params, "state").unwrap_or("").to_ascii_lowercase();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let pool_filter = param(params, "scrapePool").filter(|p| !p.is_empty());
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for p in m.pools() {
        if pool_filter.is_some_and(|f| f != p.job()) {
            continue;
        }
        let st = p.state.lock().unwrap_or_else(|e| e.into_inner());
        if show_active {
            for t in st.targets() {
                active.push(target_json(p.job(), &t));
            }
        }
        if show_dropped {
            for d in &st.dropped {
                dropped.push(json!({"discoveredLabels": labels_json(d)}));
            }
        }
    }
    ok(json!({"activeTargets": active, "droppedTargets": dropped}))
}

/// Parses a series selector of label matchers: `{job="a", instance=~"b.*"}` (a metric name
/// before the braces is accepted as `__name__`).
pub(crate) fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.trim();
    let bad = || format!("invalid parameter \"match_target\": cannot parse {s:?}");
    let (name, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), &s[i..]),
        None => (s, ""),
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        out.push(Matcher::equal("__name__", name));
    }
    if rest.is_empty() {
        return if out.is_empty() { Err(bad()) } else { Ok(out) };
    }
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let b = inner.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ns = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let lname = &inner[ns..i];
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let op = match (b.get(i), b.get(i + 1)) {
            (Some(b'='), Some(b'~')) => MatchType::Regex,
            (Some(b'!'), Some(b'~')) => MatchType::NotRegex,
            (Some(b'!'), Some(b'=')) => MatchType::NotEqual,
            (Some(b'='), _) => MatchType::Equal,
            _ => return Err(bad()),
        };
        i += if op == MatchType::Equal { 1 } else { 2 };
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let q = *b.get(i).ok_or_else(bad)?;
        if q != b'"' && q != b'\'' {
            return Err(bad());
        }
        i += 1;
        let mut val = String::new();
        loop {
            let c = *b.get(i).ok_or_else(bad)?;
            if c == q {
                i += 1;
                break;
            }
            if c == b'\\' {
                let e = *b.get(i + 1).ok_or_else(bad)?;
                val.push(match e {
                    b'n' => '\n',
                    b't' => '\t',
                    other => other as char,
                });
                i += 2;
                continue;
            }
            // Copy a whole UTF-8 character.
            let ch = inner[i..].chars().next().ok_or_else(bad)?;
            val.push(ch);
            i += ch.len_utf8();
        }
        if lname.is_empty() {
            return Err(bad());
        }
        out.push(Matcher::new(op, lname, val).map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn parse_limit(params: &[(String, String)], name: &str) -> Result<Option<usize>, String> {
    match param(params, name) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            Ok(_) => Ok(None),
            Err(_) => Err(format!(
                "invalid parameter \"{name}\": strconv.ParseInt: parsing {v:?}: invalid syntax"
            )),
        },
    }
}

fn targets_metadata(m: &ScrapeManager, params: &[(String, String)]) -> (u16, Vec<u8>) {
    let limit = match parse_limit(params, "limit") {
        Ok(l) => l,
        Err(e) => return err(400, "bad_data", &e),
    };
    let matchers = match param(params, "match_target").filter(|s| !s.is_empty()) {
        Some(s) => match parse_selector(s) {
            Ok(m) => m,
            Err(e) => return err(400, "bad_data", &e),
        },
        None => Vec::new(),
    };
    let metric = param(params, "metric").unwrap_or("");
    let mut res = Vec::new();
    'outer: for p in m.pools() {
        let targets = p.state.lock().unwrap_or_else(|e| e.into_inner()).targets();
        for t in targets {
            let pl = public_labels(&t.labels);
            if !matchers.iter().all(|mt| mt.matches_labels(&pl)) {
                continue;
            }
            let md = t.metadata.lock().unwrap_or_else(|e| e.into_inner());
            let push = |res: &mut Vec<Value>, name: Option<&str>, x: &super::target::Meta| {
                let mut o = Map::new();
                o.insert("target".into(), labels_json(&pl));
                if let Some(n) = name {
                    o.insert("metric".into(), Value::String(n.to_string()));
                }
                o.insert("type".into(), Value::String(x.kind.to_string()));
                o.insert("help".into(), Value::String(x.help.clone()));
                o.insert("unit".into(), Value::String(x.unit.clone()));
                res.push(Value::Object(o));
            };
            if metric.is_empty() {
                for (n, x) in md.iter() {
                    if limit.is_some_and(|l| res.len() >= l) {
                        break 'outer;
                    }
                    push(&mut res, Some(n), x);
                }
            } else if let Some(x) = md.get(metric) {
                if limit.is_some_and(|l| res.len() >= l) {
                    break 'outer;
                }
                push(&mut res, None, x);
            }
        }
    }
    if res.is_empty() {
        return err(404, "not_found", "specified metadata not found");
    }
    ok(Value::Array(res))
}

fn metadata(m: &ScrapeManager, params: &[(String, String)]) -> (u16, Vec<u8>) {
    let limit = match parse_limit(params, "limit") {
        Ok(l) => l,
        Err(e) => return err(400, "bad_data", &e),
    };
    let per_metric = match parse_limit(params, "limit_per_metric") {
        Ok(l) => l,
        Err(e) => return err(400, "bad_data", &e),
    };
    let metric = param(params, "metric").unwrap_or("");
    let mut all: BTreeMap<String, Vec<super::target::Meta>> = BTreeMap::new();
    for p in m.pools() {
        let targets = p.state.lock().unwrap_or_else(|e| e.into_inner()).targets();
        for t in targets {
            let md = t.metadata.lock().unwrap_or_else(|e| e.into_inner());
            for (n, x) in md.iter() {
                if !metric.is_empty() && n != metric {
                    continue;
                }
                let v = all.entry(n.clone()).or_default();
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
        }
    }
    let mut out = Map::new();
    for (n, v) in all {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let items: Vec<Value> = v
            .iter()
            .take(per_metric.unwrap_or(usize::MAX))
            .map(|x| json!({"type": x.kind, "help": x.help, "unit": x.unit}))
            .collect();
        out.insert(n, Value::Array(items));
    }
    ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_nano_formats() {
        let cases = [
            (None, "0001-01-01T00:00:00Z"),
            (
                Some(Duration::from_millis(1_700_000_000_123)),
                "2023-11-14T22:13:20.123Z",
            ),
            (Some(Duration::from_secs(0)), "1970-01-01T00:00:00Z"),
        ];
        for (d, want) in cases {
            assert_eq!(rfc3339_nano(d.map(|d| UNIX_EPOCH + d)), want);
        }
    }

    #[test]
    fn selectors() {
        let l = Labels::from_pairs([("job", "node"), ("instance", "a:1")]);
        let cases = [
            ("{job=\"node\"}", Some(true)),
            ("{job!=\"node\"}", Some(false)),
            ("{job=~\"no.*\", instance!~'b.*'}", Some(true)),
            ("{job=\"x\",}", Some(false)),
            ("{job}", None),
            ("{job=\"x\"", None),
            ("", None),
        ];
        for (s, want) in cases {
            let got = parse_selector(s)
                .ok()
                .map(|ms| ms.iter().all(|m| m.matches_labels(&l)));
            assert_eq!(got, want, "{s}");
        }
    }
}
