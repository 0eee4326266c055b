//! `POST /api/v1/read`: Prometheus remote read (samples response), so a central Prometheus can
//! read a board's history with `remote_read`.
//!
//! As Prometheus's read handler: the body is a snappy-compressed `ReadRequest`; each query's
//! matchers select series in `[start, end]`; matchers on external label names are dropped (the
//! board's own data does not carry them) and the external labels are added to every series
//! returned (the series' own value wins); the answer is a snappy-compressed `ReadResponse` with
//! one `QueryResult` per query. Only the SAMPLES response type is implemented: a request that
//! accepts only streamed chunks gets a 400, as Prometheus answers an unsupported type.

use super::proto::{
    encode_read_response, encode_series, snappy_compress, snappy_decompress, ReadRequest,
    MAX_DECOMPRESSED,
};
use crate::model::{Label, Labels, Matcher};
use crate::storage::{Queryable, SelectHints};

/// Content type of a successful answer (also send `Content-Encoding: snappy`).
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// Content type of an error answer (plain text, not compressed).
pub const ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Answers a remote read request: `(status, body, content type)`. On 200 the body is snappy
/// compressed protobuf (set `Content-Encoding: snappy`); otherwise it is the error text.
pub fn remote_read(queryable: &dyn Queryable, body: &[u8]) -> (u16, Vec<u8>, &'static str) {
    remote_read_with_labels(queryable, body, &Labels::empty())
}

/// [`remote_read`] for a server with `global.external_labels`.
pub fn remote_read_with_labels(
    queryable: &dyn Queryable,
    body: &[u8],
    external_labels: &Labels,
) -> (u16, Vec<u8>, &'static str) {
    let bad = |msg: String| (400, msg.into_bytes(), ERROR_CONTENT_TYPE);
    let raw = match snappy_decompress(body, MAX_DECOMPRESSED) {
        Ok(r) => r,
        Err(e) => return bad(format!("decoding remote read request: {e}")),
    };
    let req = match ReadRequest::decode(&raw) {
        Ok(r) => r,
        Err(e) => return bad(format!("decoding remote read request: {e}")),
    };
    if !req.accepted_response_types.is_empty() && !req.accepted_response_types.contains(&0) {
        return bad(format!(
            "none of requested response types are implemented: {:?}",
            req.accepted_response_types
        ));
    }
    let mut results = Vec::with_capacity(req.queries.len());
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut lbls: Vec<Label> = Vec::new();
    for q in &req.queries {
        let mut ms = Vec::with_capacity(q.matchers.len());
        for m in &q.matchers {
            if external_labels.get(&m.name).is_some() {
                continue;
            }
            match Matcher::new(m.kind, m.name.clone(), m.value.clone()) {
                Ok(m) => ms.push(m),
                Err(e) => return bad(e.to_string()),
            }
        }
        let (start, end) = (q.start_timestamp_ms, q.end_timestamp_ms);
        let querier = match queryable.querier(start, end) {
            Ok(x) => x,
            Err(e) => return (500, e.to_string().into_bytes(), ERROR_CONTENT_TYPE),
        };
        let hints = SelectHints {
            start,
            end,
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut set = querier.select(&hints, &ms);
        for mut s in set.by_ref() {
            samples.clear();
            samples.extend(s.samples.by_ref().filter(|&(t, _)| t >= start && t <= end));
            if let Err(e) = s.samples.take_err() {
                return (500, e.to_string().into_bytes(), ERROR_CONTENT_TYPE);
            }
            if samples.is_empty() {
                continue;
            }
            lbls.clear();
            lbls.extend(s.labels.iter().cloned());
            for e in external_labels.iter() {
                if s.labels.get(&e.name).is_none() {
                    lbls.push(e.clone());
                }
            }
            lbls.sort();
            encode_series(&mut out, 1, &lbls, &samples);
        }
        if let Err(e) = set.take_err() {
            return (500, e.to_string().into_bytes(), ERROR_CONTENT_TYPE);
        }
        results.push(out);
    }
    let mut resp = Vec::new();
    encode_read_response(&mut resp, &results);
    let mut z = Vec::new();
    snappy_compress(&resp, &mut z);
    (200, z, CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchType;
    use crate::remote::proto::{decode_read_response, LabelMatcher, Query};
    use crate::remote::testutil::VecStore;

    fn req(q: Vec<Query>, types: Vec<u64>) -> Vec<u8> {
        let mut raw = Vec::new();
        ReadRequest {
            queries: q,
            accepted_response_types: types,
        }
        .encode(&mut raw);
        let mut z = Vec::new();
        snappy_compress(&raw, &mut z);
        z
    }

    fn m(kind: MatchType, n: &str, v: &str) -> LabelMatcher {
        LabelMatcher {
            kind,
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn answers_each_query_with_its_samples() {
        let store = VecStore(vec![
            (
                Labels::from_pairs([("__name__", "a"), ("job", "x")]),
                vec![(1, 1.0), (5, 2.0), (9, 3.0)],
            ),
            (
                Labels::from_pairs([("__name__", "b"), ("job", "x")]),
                vec![(5, 7.0)],
            ),
        ]);
        let ext = Labels::from_pairs([("board", "pi")]);
        let body = req(
            vec![
                Query {
                    start_timestamp_ms: 2,
                    end_timestamp_ms: 9,
                    matchers: vec![
                        m(MatchType::Equal, "__name__", "a"),
                        m(MatchType::Equal, "board", "pi"),
                    ],
                },
                Query {
                    start_timestamp_ms: 0,
                    end_timestamp_ms: 100,
                    matchers: vec![
                        m(MatchType::Regex, "job", "x|y"),
                        m(MatchType::NotEqual, "__name__", "a"),
                    ],
                },
            ],
            vec![0],
        );
        let (code, z, ct) = remote_read_with_labels(&store, &body, &ext);
        assert_eq!((code, ct), (200, CONTENT_TYPE));
        let raw = snappy_decompress(&z, MAX_DECOMPRESSED).unwrap();
        let res = decode_read_response(&raw).unwrap();
        assert_eq!(res.len(), 2);
        assert_eq!(res[0].len(), 1);
        assert_eq!(res[0][0].samples, vec![(5, 2.0), (9, 3.0)]);
        let names: Vec<_> = res[0][0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("__name__", "a"), ("board", "pi"), ("job", "x")]
        );
        assert_eq!(res[1].len(), 1);
        assert_eq!(res[1][0].samples, vec![(5, 7.0)]);
    }

    #[test]
    fn bad_requests_are_400() {
        let store = VecStore(vec![]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not snappy", vec![0xff, 0xff, 0xff]),
            ("snappy of garbage", {
                let mut z = Vec::new();
                snappy_compress(&[0x0a, 0x05, 0x01], &mut z);
                z
            }),
            ("streamed chunks only", req(vec![], vec![1])),
            (
                "bad regex",
                req(
                    vec![Query {
                        start_timestamp_ms: 0,
                        end_timestamp_ms: 1,
                        matchers: vec![m(MatchType::Regex, "a", "(")],
                    }],
                    vec![],
                ),
            ),
        ];
        for (name, body) in cases {
            let (code, _, ct) = remote_read(&store, &body);
            assert_eq!((code, ct), (400, ERROR_CONTENT_TYPE), "{name}");
        }
    }
}
