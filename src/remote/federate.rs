//! `GET /federate`: the latest value of every selected series, in text format 0.0.4, so a
//! central Prometheus can scrape a board's current values.
//!
//! Behaviour follows Prometheus's `web/federate.go`: the `match[]` selectors are unioned; each
//! series contributes its newest sample within `[now - lookback, now]`; stale markers are left
//! out; families are ordered by metric name (series within a family by labels) and typed
//! `untyped`; labels with empty values are omitted, the series' own labels come first, then the
//! external labels it does not have, in name order, with `instance=""` standing in when the
//! external labels lack an `instance`; every line carries its timestamp. No `match[]` gives an
//! empty 200, a bad selector a 400 with the parse error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::selector::parse_selector;
use crate::model::{is_stale_nan, Labels};
use crate::node::expo::{escape_label_value, fmt_go_float};
use crate::storage::{Queryable, SelectHints};

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers `/federate` with `(status, body)`; the body is text format or, on error, the message.
pub fn federate(
    queryable: &dyn Queryable,
    params: &[(String, String)],
    now_ms: i64,
    lookback_ms: i64,
    external_labels: &Labels,
) -> (u16, String) {
    let mut sets = Vec::new();
    for (k, v) in params {
        if k == "match[]" {
            match parse_selector(v) {
                Ok(m) => sets.push(m),
                Err(e) => return (400, format!("{e}\n")),
            }
        }
    }
    let mint = now_ms.saturating_sub(lookback_ms);
    let maxt = now_ms;
    let q = match queryable.querier(mint, maxt) {
        Ok(q) => q,
        Err(e) => return (500, format!("{e}\n")),
    };
    let hints = SelectHints {
        start: mint,
        end: maxt,
        ..Default::default()
    };
    // Union of the sets, deduplicated and ordered by labels.
    let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
    for ms in &sets {
        let mut set = q.select(&hints, ms);
        for mut s in set.by_ref() {
            if latest.contains_key(&s.labels) {
                continue;
            }
            let mut last = None;
            for (t, v) in s.samples.by_ref() {
                if t > maxt {
                    break;
                }
                if t >= mint {
                    last = Some((t, v));
                }
            }
            if let Err(e) = s.samples.take_err() {
                return (500, format!("{e}\n"));
            }
            if let Some((t, v)) = last {
                if !is_stale_nan(v) {
                    latest.insert(s.labels, (t, v));
                }
            }
        }
        if let Err(e) = set.take_err() {
            return (500, format!("{e}\n"));
        }
    }
    // Stable sort by metric name keeps label order within a family.
    let mut vec: Vec<(&Labels, &(i64, f64))> = latest.iter().collect();
    vec.sort_by(|a, b| a.0.get("__name__").cmp(&b.0.get("__name__")));

    let mut ext: Vec<(&str, &str)> = external_labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    if external_labels.get("instance").is_none() {
        ext.push(("instance", ""));
        ext.sort();
    }
    let mut out = String::new();
    let mut last_name: Option<&str> = None;
    for (labels, &(t, v)) in vec {
        let Some(name) = labels.get("__name__").filter(|n| !n.is_empty()) else {
            tracing::warn!(metric = %labels, "Ignoring nameless metric during federation");
            continue;
        };
        if last_name != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            last_name = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        let mut put = |out: &mut String, n: &str, v: &str| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(n);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        };
        for l in labels.iter() {
            if l.name == "__name__" || l.value.is_empty() {
                continue;
            }
            put(&mut out, &l.name, &l.value);
        }
        for &(n, ev) in &ext {
            if labels.get(n).filter(|v| !v.is_empty()).is_none() {
                put(&mut out, n, ev);
            }
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        fmt_go_float(&mut out, v);
        let _ = writeln!(out, " {t}");
    }
    (200, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;
    use crate::remote::testutil::VecStore;

    fn l(p: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(p.iter().copied())
    }

    fn store() -> VecStore {
        VecStore(vec![
            (
                l(&[("__name__", "up"), ("job", "b"), ("instance", "x:1")]),
                vec![(1_000, 0.0), (9_000, 1.0)],
            ),
            (l(&[("__name__", "up"), ("job", "a")]), vec![(8_000, 1.0)]),
            (l(&[("__name__", "old"), ("job", "a")]), vec![(1_000, 5.0)]),
            (
                l(&[("__name__", "gone"), ("job", "a")]),
                vec![(8_000, 5.0), (9_000, stale_nan())],
            ),
            (
                l(&[("__name__", "temp"), ("job", "a"), ("zone", "q\"\\\n")]),
                vec![(9_500, 1.5e-7)],
            ),
            (
                l(&[("__name__", "board_info"), ("board", "own")]),
                vec![(9_000, 1.0)],
            ),
        ])
    }

    fn params(ms: &[&str]) -> Vec<(String, String)> {
        ms.iter()
            .map(|m| ("match[]".to_string(), m.to_string()))
            .collect()
    }

    #[test]
    fn federation_output_as_prometheus() {
        let ext = l(&[("board", "pi-7")]);
        let cases: &[(&str, Vec<&str>, &Labels, u16, &str)] = &[
            (
                "latest value, families by name then series by labels, external labels and instance=\"\" appended",
                vec!["{job=~\"a|b\"}", "up"],
                &ext,
                200,
                "# TYPE temp untyped\ntemp{job=\"a\",zone=\"q\\\"\\\\\\n\",board=\"pi-7\",instance=\"\"} 1.5e-07 9500\n\
                 # TYPE up untyped\nup{instance=\"x:1\",job=\"b\",board=\"pi-7\"} 1 9000\nup{job=\"a\",board=\"pi-7\",instance=\"\"} 1 8000\n",
            ),
            (
                "own label wins over the external one",
                vec!["board_info"],
                &ext,
                200,
                "# TYPE board_info untyped\nboard_info{board=\"own\",instance=\"\"} 1 9000\n",
            ),
            ("no match[] gives an empty answer", vec![], &ext, 200, ""),
            ("stale and out-of-lookback series are left out", vec!["gone", "old"], &ext, 200, ""),
        ];
        for (name, ms, ext, code, want) in cases {
            let (c, body) = federate(&store(), &params(ms), 10_000, 5_000, ext);
            assert_eq!((c, body.as_str()), (*code, *want), "{name}");
        }
        let (c, body) = federate(&store(), &params(&["up{"]), 10_000, 5_000, &ext);
        assert_eq!(c, 400);
        assert!(body.contains("parse error"), "{body}");
        let (c, _) = federate(&store(), &params(&["{job=~\".*\"}"]), 10_000, 5_000, &ext);
        assert_eq!(c, 400, "a selector matching everything empty is refused");
    }
}
