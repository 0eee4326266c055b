//! Hand-written protobuf encoding of the Prometheus remote write 1.0 and remote read messages,
//! with snappy block compression around them.
//!
//! Why by hand: the messages are five small structs, and a code generator (prost + build.rs +
//! protoc) would cost more build time on a Pi than the ~300 lines below. The field numbers follow
//! `prompb/types.proto` and `prompb/remote.proto` of prometheus/prometheus:
//!
//! ```text
//! WriteRequest   { 1: repeated TimeSeries timeseries; 3: repeated MetricMetadata metadata }
//! TimeSeries     { 1: repeated Label labels; 2: repeated Sample samples; 3,4: exemplars, histograms (skipped) }
//! Label          { 1: string name; 2: string value }
//! Sample         { 1: double value; 2: int64 timestamp }
//! MetricMetadata { 1: enum type; 2: string metric_family_name; 4: string help; 5: string unit }
//! ReadRequest    { 1: repeated Query queries; 2: repeated enum accepted_response_types }
//! Query          { 1: int64 start_timestamp_ms; 2: int64 end_timestamp_ms; 3: repeated LabelMatcher matchers; 4: hints }
//! LabelMatcher   { 1: enum type (EQ, NEQ, RE, NRE); 2: string name; 3: string value }
//! ReadResponse   { 1: repeated QueryResult results }
//! QueryResult    { 1: repeated TimeSeries timeseries }
//! ```
//!
//! Decoding treats its input as hostile: every length is checked against what is left, nesting
//! is fixed by the schema (no recursion on unknown data), unknown fields are skipped, and the
//! snappy-decompressed size is bounded before anything is allocated. Encoders append to the
//! caller's buffer, so a queue reuses one buffer for every request.

use crate::model::{Label, Labels, MatchType};

/// The largest decompressed body accepted (Prometheus's remote read limit is 32 MiB too).
pub const MAX_DECOMPRESSED: usize = 32 << 20;

/// Why a body could not be decoded; `offset` is the byte position in the decompressed message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The snappy block is corrupt.
    #[error("snappy: {0}")]
    Snappy(String),
    /// The decompressed size exceeds [`MAX_DECOMPRESSED`].
    #[error("decompressed size {size} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Claimed size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The message ended inside a field.
    #[error("truncated message at offset {offset}")]
    Truncated {
        /// Where.
        offset: usize,
    },
    /// A varint longer than 10 bytes.
    #[error("malformed varint at offset {offset}")]
    Varint {
        /// Where.
        offset: usize,
    },
    /// A wire type that the field cannot have, or an unknown one.
    #[error("unexpected wire type {wire} for field {field} at offset {offset}")]
    WireType {
        /// Field number.
        field: u64,
        /// Wire type found.
        wire: u8,
        /// Where.
        offset: usize,
    },
    /// A string field that is not UTF-8.
    #[error("invalid UTF-8 in string field at offset {offset}")]
    Utf8 {
        /// Where.
        offset: usize,
    },
    /// An enum value outside the schema (label matcher type).
    #[error("unknown matcher type {value} at offset {offset}")]
    MatcherType {
        /// The value.
        value: u64,
        /// Where.
        offset: usize,
    },
}

/// One series of a write request or a read response: labels and samples `(t_ms, value)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSeries {
    /// Labels, as sent (sorted when built from [`Labels`]).
    pub labels: Vec<Label>,
    /// Samples in time order.
    pub samples: Vec<(i64, f64)>,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricMetadata {
    /// Metric type enum: 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
    /// 5 summary, 6 info, 7 stateset.
    pub kind: u64,
    /// Metric family name.
    pub metric_family_name: String,
    /// HELP text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

impl MetricMetadata {
    /// The protobuf enum value of an exposition-format type name (`counter` -> 1, ...);
    /// anything unknown is 0 (`UNKNOWN`).
    pub fn kind_of(name: &str) -> u64 {
        match name {
            "counter" => 1,
            "gauge" => 2,
            "histogram" => 3,
            "gaugehistogram" => 4,
            "summary" => 5,
            "info" => 6,
            "stateset" => 7,
            _ => 0,
        }
    }
}

/// `prometheus.WriteRequest`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRequest {
    /// The series.
    pub timeseries: Vec<TimeSeries>,
    /// Metadata entries.
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatcher {
    /// Comparison.
    pub kind: MatchType,
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
}

/// `prometheus.Query` (hints are skipped: they are optional and only advisory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Inclusive start in ms.
    pub start_timestamp_ms: i64,
    /// Inclusive end in ms.
    pub end_timestamp_ms: i64,
    /// Matchers, all of which must match.
    pub matchers: Vec<LabelMatcher>,
}

/// `prometheus.ReadRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// Queries, answered in order.
    pub queries: Vec<Query>,
    /// 0 = SAMPLES, 1 = STREAMED_XOR_CHUNKS; empty means SAMPLES.
    pub accepted_response_types: Vec<u64>,
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u8) {
    put_varint(out, (field << 3) | u64::from(wire));
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_int64_field(out: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        put_key(out, field, 0);
        put_varint(out, v as u64);
    }
}

fn label_len(name: &str, value: &str) -> usize {
    1 + varint_len(name.len() as u64)
        + name.len()
        + 1
        + varint_len(value.len() as u64)
        + value.len()
}

fn sample_len(t: i64, v: f64) -> usize {
    let mut n = 0;
    if v.to_bits() != 0 {
        n += 9;
    }
    if t != 0 {
        n += 1 + varint_len(t as u64);
    }
    n
}

/// Appends one `TimeSeries` message (with its field-1 key and length) as field `field`.
/// Samples are given as a slice so callers can encode from their own buffers without copying.
pub fn encode_series(out: &mut Vec<u8>, field: u64, labels: &[Label], samples: &[(i64, f64)]) {
    let mut body = 0usize;
    for l in labels {
        let n = label_len(&l.name, &l.value);
        body += 1 + varint_len(n as u64) + n;
    }
    for &(t, v) in samples {
        let n = sample_len(t, v);
        body += 1 + varint_len(n as u64) + n;
    }
    put_key(out, field, 2);
    put_varint(out, body as u64);
    for l in labels {
        put_key(out, 1, 2);
        put_varint(out, label_len(&l.name, &l.value) as u64);
        put_bytes_field(out, 1, l.name.as_bytes());
        put_bytes_field(out, 2, l.value.as_bytes());
    }
    for &(t, v) in samples {
        put_key(out, 2, 2);
        put_varint(out, sample_len(t, v) as u64);
        if v.to_bits() != 0 {
            put_key(out, 1, 1);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        put_int64_field(out, 2, t);
    }
}

fn metadata_body(m: &MetricMetadata, out: &mut Vec<u8>) {
    if m.kind != 0 {
        put_key(out, 1, 0);
        put_varint(out, m.kind);
    }
    for (f, s) in [(2, &m.metric_family_name), (4, &m.help), (5, &m.unit)] {
        if !s.is_empty() {
            put_bytes_field(out, f, s.as_bytes());
        }
    }
}

impl WriteRequest {
    /// Appends the uncompressed protobuf encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for ts in &self.timeseries {
            encode_series(out, 1, &ts.labels, &ts.samples);
        }
        let mut tmp = Vec::new();
        for m in &self.metadata {
            tmp.clear();
            metadata_body(m, &mut tmp);
            put_bytes_field(out, 3, &tmp);
        }
    }

    /// Decodes an uncompressed `WriteRequest` (exemplars and histograms are skipped).
    pub fn decode(buf: &[u8]) -> Result<WriteRequest, DecodeError> {
        let mut r = Reader::new(buf, 0);
        let mut req = WriteRequest::default();
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 2) => {
                    let (sub, base) = r.bytes()?;
                    req.timeseries.push(decode_series(sub, base)?);
                }
                (3, 2) => {
                    let (sub, base) = r.bytes()?;
                    req.metadata.push(decode_metadata(sub, base)?);
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(req)
    }
}

impl ReadRequest {
    /// Appends the uncompressed protobuf encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut q = Vec::new();
        let mut m = Vec::new();
        for query in &self.queries {
            q.clear();
            put_int64_field(&mut q, 1, query.start_timestamp_ms);
            put_int64_field(&mut q, 2, query.end_timestamp_ms);
            for lm in &query.matchers {
                m.clear();
                let t = match lm.kind {
                    MatchType::Equal => 0,
                    MatchType::NotEqual => 1,
                    MatchType::Regex => 2,
                    MatchType::NotRegex => 3,
                };
                if t != 0 {
                    put_key(&mut m, 1, 0);
                    put_varint(&mut m, t);
                }
                put_bytes_field(&mut m, 2, lm.name.as_bytes());
                put_bytes_field(&mut m, 3, lm.value.as_bytes());
                put_bytes_field(&mut q, 3, &m);
            }
            put_bytes_field(out, 1, &q);
        }
        for &t in &self.accepted_response_types {
            put_key(out, 2, 0);
            put_varint(out, t);
        }
    }

    /// Decodes an uncompressed `ReadRequest`.
    pub fn decode(buf: &[u8]) -> Result<ReadRequest, DecodeError> {
        let mut r = Reader::new(buf, 0);
        let mut req = ReadRequest::default();
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 2) => {
                    let (sub, base) = r.bytes()?;
                    req.queries.push(decode_query(sub, base)?);
                }
                (2, 0) => req.accepted_response_types.push(r.varint()?),
                (2, 2) => {
                    // Packed repeated enum.
                    let (sub, base) = r.bytes()?;
                    let mut p = Reader::new(sub, base);
                    while !p.done() {
                        req.accepted_response_types.push(p.varint()?);
                    }
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(req)
    }
}

/// Appends a `ReadResponse` with one `QueryResult` per element of `results`; each result is
/// already a sequence of encoded field-1 `TimeSeries` (see [`encode_series`]).
pub fn encode_read_response(out: &mut Vec<u8>, results: &[Vec<u8>]) {
    for r in results {
        put_bytes_field(out, 1, r);
    }
}

/// Decodes a `ReadResponse` into its results' series.
pub fn decode_read_response(buf: &[u8]) -> Result<Vec<Vec<TimeSeries>>, DecodeError> {
    let mut r = Reader::new(buf, 0);
    let mut out = Vec::new();
    while let Some((field, wire)) = r.key()? {
        if (field, wire) == (1, 2) {
            let (sub, base) = r.bytes()?;
            let mut q = Reader::new(sub, base);
            let mut series = Vec::new();
            while let Some((f, w)) = q.key()? {
                if (f, w) == (1, 2) {
                    let (s, b) = q.bytes()?;
                    series.push(decode_series(s, b)?);
                } else {
                    q.skip(f, w)?;
                }
            }
            out.push(series);
        } else {
            r.skip(field, wire)?;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole message, for error positions.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn off(&self) -> usize {
        self.base + self.pos
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.off();
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError::Truncated { offset: start })?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint { offset: start })
    }
    fn key(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
        if self.done() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }
    fn take(&mut self, n: usize) -> Result<(&'a [u8], usize), DecodeError> {
        let start = self.off();
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { offset: start })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok((s, start))
    }
    fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated { offset: self.off() })?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let (b, off) = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8 { offset: off })
    }
    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let (b, _) = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn skip(&mut self, field: u64, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(DecodeError::WireType {
                field,
                wire,
                offset: self.off(),
            }),
        }
    }
    fn expect(&self, field: u64, wire: u8, want: u8) -> Result<(), DecodeError> {
        if wire == want {
            Ok(())
        } else {
            Err(DecodeError::WireType {
                field,
                wire,
                offset: self.off(),
            })
        }
    }
}

fn decode_series(buf: &[u8], base: usize) -> Result<TimeSeries, DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut ts = TimeSeries::default();
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(field, wire, 2)?;
                let (sub, b) = r.bytes()?;
                let mut lr = Reader::new(sub, b);
                let (mut name, mut value) = (String::new(), String::new());
                while let Some((f, w)) = lr.key()? {
                    match f {
                        1 => {
                            lr.expect(f, w, 2)?;
                            name = lr.string()?;
                        }
                        2 => {
                            lr.expect(f, w, 2)?;
                            value = lr.string()?;
                        }
                        _ => lr.skip(f, w)?,
                    }
                }
                ts.labels.push(Label { name, value });
            }
            2 => {
                r.expect(field, wire, 2)?;
                let (sub, b) = r.bytes()?;
                let mut sr = Reader::new(sub, b);
                let (mut t, mut v) = (0i64, 0f64);
                while let Some((f, w)) = sr.key()? {
                    match f {
                        1 => {
                            sr.expect(f, w, 1)?;
                            v = f64::from_bits(sr.fixed64()?);
                        }
                        2 => {
                            sr.expect(f, w, 0)?;
                            t = sr.varint()? as i64;
                        }
                        _ => sr.skip(f, w)?,
                    }
                }
                ts.samples.push((t, v));
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(ts)
}

fn decode_metadata(buf: &[u8], base: usize) -> Result<MetricMetadata, DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut m = MetricMetadata::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 0) => m.kind = r.varint()?,
            (2, 2) => m.metric_family_name = r.string()?,
            (4, 2) => m.help = r.string()?,
            (5, 2) => m.unit = r.string()?,
            _ => r.skip(field, wire)?,
        }
    }
    Ok(m)
}

fn decode_query(buf: &[u8], base: usize) -> Result<Query, DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut q = Query::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 0) => q.start_timestamp_ms = r.varint()? as i64,
            (2, 0) => q.end_timestamp_ms = r.varint()? as i64,
            (3, 2) => {
                let (sub, b) = r.bytes()?;
                let mut mr = Reader::new(sub, b);
                let mut m = LabelMatcher {
                    kind: MatchType::Equal,
                    name: String::new(),
                    value: String::new(),
                };
                while let Some((f, w)) = mr.key()? {
                    match (f, w) {
                        (1, 0) => {
                            let off = mr.off();
                            m.kind = match mr.varint()? {
                                0 => MatchType::Equal,
                                1 => MatchType::NotEqual,
                                2 => MatchType::Regex,
                                3 => MatchType::NotRegex,
                                value => {
                                    return Err(DecodeError::MatcherType { value, offset: off })
                                }
                            };
                        }
                        (2, 2) => m.name = mr.string()?,
                        (3, 2) => m.value = mr.string()?,
                        _ => mr.skip(f, w)?,
                    }
                }
                q.matchers.push(m);
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(q)
}

// ---------------------------------------------------------------------------------------------
// Snappy

/// Compresses `src` as one snappy block (the framing remote write uses), into `out` (cleared).
pub fn snappy_compress(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(snap::raw::max_compress_len(src.len()), 0);
    // `out` is sized to `max_compress_len`, the documented bound, so the encoder cannot fail for
    // lack of room; an error would only come from an input over ~4 GiB, which we never build.
    let n = snap::raw::Encoder::new().compress(src, out).unwrap_or(0);
    out.truncate(n);
}

/// Decompresses one snappy block, refusing a claimed size over `limit` before allocating it.
pub fn snappy_decompress(src: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(src).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > limit {
        return Err(DecodeError::TooLarge { size, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(src)
        .map_err(|e| DecodeError::Snappy(e.to_string()))
}

/// Labels of a decoded series as [`Labels`] (sorted; duplicates kept as sent).
pub fn to_labels(v: &[Label]) -> Labels {
    Labels::from_pairs(v.iter().map(|l| (l.name.clone(), l.value.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: pairs
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn write_request_round_trips() {
        let cases = vec![
            WriteRequest::default(),
            WriteRequest {
                timeseries: vec![
                    series(&[("__name__", "up"), ("job", "a")], &[(1, 1.0), (2, 0.0)]),
                    series(&[("__name__", "x")], &[(-5, -2.5), (0, f64::INFINITY)]),
                    series(&[], &[]),
                ],
                metadata: vec![MetricMetadata {
                    kind: 1,
                    metric_family_name: "x_total".into(),
                    help: "Help ü".into(),
                    unit: String::new(),
                }],
            },
        ];
        for req in cases {
            let mut buf = vec![0xAA];
            req.encode(&mut buf);
            assert_eq!(buf[0], 0xAA, "existing bytes survive");
            assert_eq!(WriteRequest::decode(&buf[1..]).unwrap(), req);
            let mut z = Vec::new();
            snappy_compress(&buf[1..], &mut z);
            let back = snappy_decompress(&z, MAX_DECOMPRESSED).unwrap();
            assert_eq!(back, &buf[1..]);
        }
    }

    /// Bytes produced by the Go protobuf encoder for
    /// `WriteRequest{timeseries:[{labels:[{a,b}], samples:[{value:1.5, timestamp:1000}]}]}`,
    /// worked out by hand from the wire format: pins our field numbers and wire types.
    #[test]
    fn write_request_matches_reference_bytes() {
        let want: Vec<u8> = vec![
            0x0a, 0x16, // field 1, len 22
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // label
            0x12, 0x0c, // sample, len 12
            0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // double 1.5
            0x10, 0xe8, 0x07, // timestamp 1000
        ];
        let req = WriteRequest {
            timeseries: vec![series(&[("a", "b")], &[(1000, 1.5)])],
            metadata: vec![],
        };
        let mut buf = Vec::new();
        req.encode(&mut buf);
        assert_eq!(buf, want);
    }

    #[test]
    fn read_request_round_trips() {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 10,
                end_timestamp_ms: 20_000,
                matchers: vec![
                    LabelMatcher {
                        kind: MatchType::Equal,
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    LabelMatcher {
                        kind: MatchType::NotRegex,
                        name: "job".into(),
                        value: "a.*".into(),
                    },
                ],
            }],
            accepted_response_types: vec![0],
        };
        let mut buf = Vec::new();
        req.encode(&mut buf);
        assert_eq!(ReadRequest::decode(&buf).unwrap(), req);
    }

    #[test]
    fn hostile_input_is_an_error() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated length", vec![0x0a, 0x05, 0x01]),
            ("huge length", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            (
                "long varint",
                vec![0x08; 1].into_iter().chain([0xff; 11]).collect(),
            ),
            ("bad wire type", vec![0x0f]),
            ("label as varint", vec![0x0a, 0x02, 0x08, 0x01]),
            ("bad utf8", vec![0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff]),
            ("truncated double", vec![0x0a, 0x04, 0x12, 0x02, 0x09, 0x00]),
        ];
        for (name, buf) in cases {
            assert!(WriteRequest::decode(&buf).is_err(), "{name}");
            let _ = ReadRequest::decode(&buf);
            let _ = decode_read_response(&buf);
        }
        // A snappy header claiming 4 GiB is refused before allocating.
        let claim = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert!(matches!(
            snappy_decompress(&claim, MAX_DECOMPRESSED),
            Err(DecodeError::TooLarge { .. }) | Err(DecodeError::Snappy(_))
        ));
        assert!(snappy_decompress(&[0xff, 0xff], MAX_DECOMPRESSED).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // field 15 varint, field 14 fixed32, then an empty timeseries.
        let buf = vec![0x78, 0x01, 0x75, 1, 2, 3, 4, 0x0a, 0x00];
        let req = WriteRequest::decode(&buf).unwrap();
        assert_eq!(req.timeseries.len(), 1);
    }
}
