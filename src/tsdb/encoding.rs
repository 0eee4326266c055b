//! The scrape-aware sample encoding used inside segment records, before zstd.
//!
//! A record holds the samples one flush made durable, sorted by series id and then time. It is
//! laid out as columns so that zstd sees long runs of near-identical bytes from one flush to the
//! next (same series in the same order, same timestamp steps, same small value steps):
//!
//! ```text
//! uvarint n_series
//! n_series x uvarint  sid delta      (first: sid itself; then sid - previous sid, > 0)
//! n_series x uvarint  sample count   (>= 1)
//! n_series x u8       value mode     (0..=MAX_SCALE: decimal scale d; RAW_MODE (0xff): raw
//!                                     bits; d | NEIGHBOUR (0x40): decimal, neighbour-predicted)
//! uvarint ts_len, then ts_len bytes: per sample, zigzag varint delta-of-delta of the timestamp
//! values column to the end:           per sample, by the series' mode:
//!     decimal d: zigzag varint of round(v*10^d) - round(prev*10^d)   (prev: previous value)
//!     raw:       8 bytes little endian of v.to_bits() ^ prev.to_bits()
//!     neighbour: zigzag varint of (this delta - the previous series' delta for the same
//!                sample index); used when the previous series in the record has the same
//!                scale and the same timestamps and it makes the column smaller (histogram
//!                buckets, per-CPU modes and rx/tx pairs move together)
//! ```
//!
//! Format 2 (segment version 2) keeps every column above but the last: instead of varints and
//! 8-byte XORs, the value column is one range-coded stream ([`ValueCoder`]) of the same
//! numbers (the zigzag decimal delta, neighbour-predicted or not, or the raw XOR), each coded as
//! its bit length under the context (value kind, bit length of the series' previous number),
//! two adaptive bits below its top bit and the rest verbatim. The probabilities carry from one
//! record to the next within a segment. zstd codes literal bytes with one Huffman table for all
//! series and never below a bit per byte; a sensor delta of 0 here costs a fraction of a bit,
//! and a byte counter's noise costs what it holds. On the 24 h gen.py file this takes the
//! segments from 0.871 to 0.693 bytes per sample (see `exp`). Format-2 records also pick
//! neighbour prediction by bit length instead of varint length.
//!
//! Every series carries state across records of one segment ([`SeriesState`]: previous
//! timestamp, previous timestamp step, previous value bits), so a steady scrape costs a zero
//! timestamp delta-of-delta and a small value delta per sample. Decimal mode is used only when
//! every sample of the series in the record decodes back to the identical `f64` bits, so any bit
//! pattern (NaN payloads, the staleness marker, -0.0, infinities, subnormals) round-trips through
//! raw mode. Decoders keep a sticky error and never panic on malformed input.

use super::rangecoder;

/// Largest decimal scale tried: sensor gauges and node counters rarely have more decimals.
pub const MAX_SCALE: u8 = 9;
/// Mode byte for raw (XOR with the previous value) encoding.
pub const RAW_MODE: u8 = 0xff;
/// Mode flag: decimal deltas are stored minus the previous series' deltas in the record.
pub const NEIGHBOUR: u8 = 0x40;

const POW10: [f64; MAX_SCALE as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers beyond 2^53 are not exact in f64: decimal mode stays below.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Per-series encoder/decoder state, reset at the start of every segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeriesState {
    /// Previous timestamp (ms).
    pub prev_t: i64,
    /// Previous timestamp step (ms).
    pub prev_dt: i64,
    /// Previous value's bits.
    pub prev_v: u64,
    /// Bit length of the previous stored value number (format 2's coding context).
    pub prev_b: u8,
}

impl SeriesState {
    /// Fresh state for a segment whose timestamps are relative to `base_t`.
    pub fn new(base_t: i64) -> Self {
        SeriesState {
            prev_t: base_t,
            prev_dt: 0,
            prev_v: 0,
            prev_b: 0,
        }
    }
}

/// Appends `x` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends `x` zigzag-encoded as a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// A read cursor with a sticky error: after the first failure every read returns 0.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    bad: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            bad: false,
        }
    }
    /// Whether a read ran past the end or met a malformed varint.
    pub fn is_bad(&self) -> bool {
        self.bad
    }
    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Reads an unsigned varint.
    #[inline]
    pub fn uvarint(&mut self) -> u64 {
        let mut x = 0u64;
        let mut shift = 0u32;
        while let Some(&b) = self.buf.get(self.pos) {
            self.pos += 1;
            if shift == 63 && b > 1 {
                break;
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return x;
            }
            shift += 7;
            if shift > 63 {
                break;
            }
        }
        self.bad = true;
        self.pos = self.buf.len();
        0
    }
    /// Reads a zigzag varint.
    #[inline]
    pub fn varint(&mut self) -> i64 {
        let u = self.uvarint();
        ((u >> 1) as i64) ^ -((u & 1) as i64)
    }
    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> u8 {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => {
                self.bad = true;
                0
            }
        }
    }
    /// Reads 8 bytes little endian.
    #[inline]
    pub fn u64le(&mut self) -> u64 {
        match self.buf.get(self.pos..self.pos + 8) {
            Some(b) => {
                self.pos += 8;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a)
            }
            None => {
                self.bad = true;
                self.pos = self.buf.len();
                0
            }
        }
    }
    /// Borrows the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(b) => {
                self.pos += n;
                b
            }
            None => {
                self.bad = true;
                self.pos = self.buf.len();
                &[]
            }
        }
    }
}

/// The smallest decimal scale at which `v` is exactly `int / 10^d`, if any.
#[inline]
fn min_scale(v: f64) -> Option<u8> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_SCALE).find(|&d| scaled_exact(v, d).is_some())
}

/// `round(v * 10^d)` when it decodes back to exactly `v`.
#[inline]
fn scaled_exact(v: f64, d: u8) -> Option<i64> {
    let p = POW10[d as usize];
    let x = (v * p).round();
    if x.is_nan() || x.abs() >= EXACT_LIMIT {
        return None;
    }
    let i = x as i64;
    ((i as f64 / p).to_bits() == v.to_bits()).then_some(i)
}

/// The delta base for decimal mode: the previous value scaled, or 0 if that is not representable.
/// Encoder and decoder compute it from identical bits, so it needs no exactness.
#[inline]
fn scaled_base(prev_bits: u64, d: u8) -> i64 {
    let x = (f64::from_bits(prev_bits) * POW10[d as usize]).round();
    if x.abs() < EXACT_LIMIT {
        x as i64
    } else {
        0
    }
}

/// A sample as kept in memory between commit and flush: series id, time, value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawSample {
    /// Series id.
    pub sid: u32,
    /// Timestamp in ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// Encodes `samples` (sorted by sid, then t; non-empty groups) into `out`, advancing `states`
/// (indexed by sid; grown as needed with `SeriesState::new(base_t)`). With `model` the value
/// column is range-coded (format 2, see [`ValueCoder`]); without, it is format 1's varints.
pub fn encode_record(
    samples: &[RawSample],
    states: &mut Vec<SeriesState>,
    base_t: i64,
    out: &mut Vec<u8>,
    ts_buf: &mut Vec<u8>,
    model: Option<&mut ValueCoder>,
) {
    ts_buf.clear();
    // Group boundaries.
    let mut groups: Vec<(usize, usize, u8)> = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        let sid = samples[i].sid;
        let mut j = i;
        while j < samples.len() && samples[j].sid == sid {
            j += 1;
        }
        groups.push((i, j, 0));
        i = j;
    }
    // Mode per group.
    for g in groups.iter_mut() {
        let mut d = 0u8;
        let mut ok = true;
        for s in &samples[g.0..g.1] {
            match min_scale(s.v) {
                Some(m) => d = d.max(m),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok
            && samples[g.0..g.1]
                .iter()
                .any(|s| scaled_exact(s.v, d).is_none())
        {
            ok = false;
        }
        g.2 = if ok { d } else { RAW_MODE };
    }
    // Timestamps, and each sample's value delta (decimal) or XOR (raw), advancing states.
    let mut deltas: Vec<i64> = Vec::with_capacity(samples.len());
    for g in &groups {
        let sid = samples[g.0].sid as usize;
        if states.len() <= sid {
            states.resize(sid + 1, SeriesState::new(base_t));
        }
        let st = &mut states[sid];
        for s in &samples[g.0..g.1] {
            let dt = s.t.wrapping_sub(st.prev_t);
            put_varint(ts_buf, dt.wrapping_sub(st.prev_dt));
            st.prev_dt = dt;
            st.prev_t = s.t;
            let bits = s.v.to_bits();
            deltas.push(if g.2 == RAW_MODE {
                (bits ^ st.prev_v) as i64
            } else {
                // Checked above: exact at this scale.
                let x = scaled_exact(s.v, g.2).unwrap_or(0);
                x.wrapping_sub(scaled_base(st.prev_v, g.2))
            });
            st.prev_v = bits;
        }
    }
    // Neighbour prediction: series next to each other in a record are often parts of one
    // thing (histogram buckets, rx/tx, per-CPU modes) that move together at the same
    // timestamps; then the difference of their deltas is smaller than the delta itself.
    for k in 1..groups.len() {
        let (p, g) = (groups[k - 1], groups[k]);
        let same_shape = p.2 & !NEIGHBOUR == g.2
            && g.2 != RAW_MODE
            && p.1 - p.0 == g.1 - g.0
            && samples[p.0..p.1]
                .iter()
                .zip(&samples[g.0..g.1])
                .all(|(a, b)| a.t == b.t);
        if !same_shape {
            continue;
        }
        let cost = if model.is_some() { zz_bits } else { zz_len };
        let own: usize = deltas[g.0..g.1].iter().map(|&d| cost(d)).sum();
        let rel: usize = deltas[g.0..g.1]
            .iter()
            .zip(&deltas[p.0..p.1])
            .map(|(&d, &n)| cost(d.wrapping_sub(n)))
            .sum();
        if rel < own {
            groups[k].2 |= NEIGHBOUR;
        }
    }
    put_uvarint(out, groups.len() as u64);
    let mut prev_sid = 0u32;
    for (k, g) in groups.iter().enumerate() {
        let sid = samples[g.0].sid;
        put_uvarint(out, u64::from(if k == 0 { sid } else { sid - prev_sid }));
        prev_sid = sid;
    }
    for g in &groups {
        put_uvarint(out, (g.1 - g.0) as u64);
    }
    for g in &groups {
        out.push(g.2);
    }
    put_uvarint(out, ts_buf.len() as u64);
    out.extend_from_slice(ts_buf);
    if let Some(m) = model {
        let mut enc = rangecoder::Encoder::new(out);
        for (k, g) in groups.iter().enumerate() {
            let st = &mut states[samples[g.0].sid as usize];
            let kind = value_kind(g.2);
            for (j, &d) in deltas[g.0..g.1].iter().enumerate() {
                let u = match kind {
                    KIND_RAW => d as u64,
                    KIND_NEIGHBOUR => zigzag(d.wrapping_sub(deltas[groups[k - 1].0 + j])),
                    _ => zigzag(d),
                };
                st.prev_b = m.model.encode(&mut enc, value_ctx(kind, st.prev_b), u);
            }
        }
        enc.finish();
        return;
    }
    for (k, g) in groups.iter().enumerate() {
        if g.2 == RAW_MODE {
            for &d in &deltas[g.0..g.1] {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
        } else if g.2 & NEIGHBOUR != 0 {
            let p = groups[k - 1];
            for (&d, &n) in deltas[g.0..g.1].iter().zip(&deltas[p.0..p.1]) {
                put_varint(out, d.wrapping_sub(n));
            }
        } else {
            for &d in &deltas[g.0..g.1] {
                put_varint(out, d);
            }
        }
    }
}

#[inline]
fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bit length of `x` zigzagged, plus one: what format 2 roughly spends on it.
#[inline]
fn zz_bits(x: i64) -> usize {
    65 - zigzag(x).leading_zeros() as usize
}

const KIND_PLAIN: usize = 0;
const KIND_NEIGHBOUR: usize = 1;
const KIND_RAW: usize = 2;
/// Coding contexts of format 2: value kind (plain decimal, neighbour-predicted decimal, raw
/// XOR) times the series' previous bit length (0..=64).
const CONTEXTS: usize = 3 * 65;

#[inline]
fn value_kind(mode: u8) -> usize {
    if mode == RAW_MODE {
        KIND_RAW
    } else if mode & NEIGHBOUR != 0 {
        KIND_NEIGHBOUR
    } else {
        KIND_PLAIN
    }
}

#[inline]
fn value_ctx(kind: usize, prev_b: u8) -> usize {
    kind * 65 + usize::from(prev_b.min(64))
}

/// Format 2's value-column coder: adaptive probabilities that, like [`SeriesState`], carry from
/// one record to the next within a segment (about 50 KiB per open segment).
///
/// Each stored number (the zigzag decimal delta, or the raw XOR) is range-coded as its bit
/// length under the context (value kind, the series' previous bit length), two adaptive bits
/// below its top bit and the rest as plain bits; see `rangecoder`.
pub struct ValueCoder {
    model: rangecoder::ValueModel,
}

impl Default for ValueCoder {
    fn default() -> Self {
        ValueCoder {
            model: rangecoder::ValueModel::new(CONTEXTS),
        }
    }
}

/// Bytes of `x` as a zigzag varint.
#[inline]
fn zz_len(x: i64) -> usize {
    let u = ((x << 1) ^ (x >> 63)) as u64;
    (64 - u.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed record: {0}")]
pub struct DecodeError(pub &'static str);

/// Decodes one record, advancing `states`, calling `f(sid, t, v)` for each sample in order.
/// `max_sid` bounds series ids (ids at or above it are malformed).
/// `model` must be given exactly when the record was encoded with one (format 2).
pub fn decode_record(
    raw: &[u8],
    states: &mut Vec<SeriesState>,
    base_t: i64,
    max_sid: u32,
    scratch: &mut Vec<(u32, u32, u8)>,
    mut model: Option<&mut ValueCoder>,
    mut f: impl FnMut(u32, i64, f64),
) -> Result<(), DecodeError> {
    let mut c = Cursor::new(raw);
    let n = c.uvarint();
    if n > raw.len() as u64 {
        return Err(DecodeError("series count exceeds record size"));
    }
    scratch.clear();
    let mut sid = 0u64;
    for k in 0..n {
        let d = c.uvarint();
        if k > 0 && d == 0 {
            return Err(DecodeError("series ids not ascending"));
        }
        sid = sid.saturating_add(d);
        if sid >= u64::from(max_sid) {
            return Err(DecodeError("unknown series id"));
        }
        scratch.push((sid as u32, 0, 0));
    }
    let mut total = 0u64;
    for e in scratch.iter_mut() {
        let cnt = c.uvarint();
        if cnt == 0 || cnt > raw.len() as u64 {
            return Err(DecodeError("bad sample count"));
        }
        total += cnt;
        e.1 = cnt as u32;
    }
    if total > raw.len() as u64 {
        return Err(DecodeError("sample count exceeds record size"));
    }
    for e in scratch.iter_mut() {
        e.2 = c.u8();
        if (e.2 & !NEIGHBOUR) > MAX_SCALE && e.2 != RAW_MODE {
            return Err(DecodeError("unknown value mode"));
        }
    }
    let ts_len = c.uvarint() as usize;
    let ts = c.bytes(ts_len);
    if c.is_bad() {
        return Err(DecodeError("truncated header"));
    }
    let mut tc = Cursor::new(ts);
    let mut vc = Cursor::new(&raw[c.pos()..]);
    let mut rc = rangecoder::Decoder::new(&raw[c.pos()..]);
    if let Some(&(max, _, _)) = scratch.last() {
        if states.len() <= max as usize {
            states.resize(max as usize + 1, SeriesState::new(base_t));
        }
    }
    // The previous series' value deltas, for neighbour-predicted series.
    let mut prev_d: Vec<i64> = Vec::new();
    let mut cur_d: Vec<i64> = Vec::new();
    let mut prev_mode = RAW_MODE;
    for &(sid, cnt, mode) in scratch.iter() {
        let st = &mut states[sid as usize];
        let neighbour = mode != RAW_MODE && mode & NEIGHBOUR != 0;
        let scale = if mode == RAW_MODE {
            RAW_MODE
        } else {
            mode & !NEIGHBOUR
        };
        if neighbour
            && (prev_mode == RAW_MODE
                || prev_mode & !NEIGHBOUR != scale
                || prev_d.len() != cnt as usize)
        {
            return Err(DecodeError(
                "neighbour prediction without a matching neighbour",
            ));
        }
        cur_d.clear();
        #[allow(clippy::needless_range_loop)] // prev_d is read only for neighbour series
        for j in 0..cnt as usize {
            let dod = tc.varint();
            let dt = st.prev_dt.wrapping_add(dod);
            let t = st.prev_t.wrapping_add(dt);
            st.prev_dt = dt;
            st.prev_t = t;
            let coded = match model.as_deref_mut() {
                Some(m) => {
                    let kind = value_kind(mode);
                    let Some((u, nb)) = m.model.decode(&mut rc, value_ctx(kind, st.prev_b)) else {
                        return Err(DecodeError("bad value bit length"));
                    };
                    st.prev_b = nb;
                    Some(u)
                }
                None => None,
            };
            let bits = if scale == RAW_MODE {
                coded.unwrap_or_else(|| vc.u64le()) ^ st.prev_v
            } else {
                let mut d = match coded {
                    Some(u) => unzigzag(u),
                    None => vc.varint(),
                };
                if neighbour {
                    d = d.wrapping_add(prev_d[j]);
                }
                cur_d.push(d);
                let x = scaled_base(st.prev_v, scale).wrapping_add(d);
                (x as f64 / POW10[scale as usize]).to_bits()
            };
            st.prev_v = bits;
            if tc.is_bad() || vc.is_bad() || (model.is_some() && rc.overrun()) {
                return Err(DecodeError("truncated columns"));
            }
            f(sid, t, f64::from_bits(bits));
        }
        std::mem::swap(&mut prev_d, &mut cur_d);
        prev_mode = mode;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    /// Encodes and decodes `records` in format 1 and in format 2; both must agree.
    fn roundtrip(records: &[Vec<RawSample>]) -> Vec<RawSample> {
        let v1 = roundtrip_format(records, false);
        let v2 = roundtrip_format(records, true);
        assert!(same(&v1, &v2), "formats 1 and 2 decode differently");
        v2
    }

    fn roundtrip_format(records: &[Vec<RawSample>], v2: bool) -> Vec<RawSample> {
        let base = 1_000;
        let mut enc = Vec::new();
        let mut dec = Vec::new();
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut ecoder = v2.then(ValueCoder::default);
        let mut dcoder = v2.then(ValueCoder::default);
        for r in records {
            let mut buf = Vec::new();
            let mut ts = Vec::new();
            encode_record(r, &mut enc, base, &mut buf, &mut ts, ecoder.as_mut());
            decode_record(
                &buf,
                &mut dec,
                base,
                u32::MAX,
                &mut scratch,
                dcoder.as_mut(),
                |sid, t, v| out.push(RawSample { sid, t, v }),
            )
            .expect("decodes");
        }
        out
    }

    fn same(a: &[RawSample], b: &[RawSample]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.sid == y.sid && x.t == y.t && x.v.to_bits() == y.v.to_bits())
    }

    #[test]
    fn table_of_special_values() {
        let vals = [
            0.0,
            -0.0,
            1.5,
            0.1 + 0.2,
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 2.0,
            f64::MAX,
            1e300,
            123456.789,
            9_007_199_254_740_993.0,
        ];
        let recs: Vec<Vec<RawSample>> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                vec![
                    RawSample {
                        sid: 0,
                        t: i as i64 * 15_000,
                        v,
                    },
                    RawSample {
                        sid: 3,
                        t: i as i64 * 15_000 + 7,
                        v: -v,
                    },
                ]
            })
            .collect();
        let want: Vec<RawSample> = recs.iter().flatten().copied().collect();
        assert!(same(&roundtrip(&recs), &want));
    }

    #[test]
    fn steady_counter_is_tiny() {
        let mut st = Vec::new();
        let mut ts = Vec::new();
        let mut total = 0;
        for i in 0..100i64 {
            let mut buf = Vec::new();
            let r = [RawSample {
                sid: 1,
                t: 1000 + i * 15_000,
                v: (i * 3) as f64,
            }];
            encode_record(&r, &mut st, 1000, &mut buf, &mut ts, None);
            if i >= 2 {
                total += buf.len();
            }
        }
        // n, sid, count, mode, ts_len, dod and value delta: one byte each once steady.
        assert_eq!(total, 98 * 7);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut st = Vec::new();
        let mut sc = Vec::new();
        for raw in [
            &[][..],
            &[5],
            &[1, 0, 1, 0],
            &[1, 0, 1, 0, 9, 0],
            &[0xff; 20],
        ] {
            let _ = decode_record(raw, &mut st, 0, 10, &mut sc, None, |_, _, _| {});
            let mut coder = ValueCoder::default();
            let _ = decode_record(raw, &mut st, 0, 10, &mut sc, Some(&mut coder), |_, _, _| {});
        }
        assert!(decode_record(
            &[1, 20, 1, 0, 1, 0, 0],
            &mut st,
            0,
            10,
            &mut sc,
            None,
            |_, _, _| {}
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn shared_timestamps_and_neighbour_prediction_roundtrip(
            steps in proptest::collection::vec(proptest::collection::vec((0i64..50, arb_value()), 6), 1..30),
            scale in 0u32..3,
        ) {
            // Six "buckets" sharing each scrape's timestamp; cumulative decimal values mostly,
            // with arbitrary values mixed in.
            let mut acc = [0i64; 6];
            let mut records = Vec::new();
            for (k, row) in steps.iter().enumerate() {
                let mut r = Vec::new();
                let mut run = 0;
                for (i, &(inc, any)) in row.iter().enumerate() {
                    run += inc;
                    acc[i] += run;
                    let v = if inc == 7 { any } else { acc[i] as f64 / 10f64.powi(scale as i32) };
                    r.push(RawSample { sid: i as u32, t: 1_000 + k as i64 * 15_000, v });
                }
                records.push(r);
            }
            let want: Vec<RawSample> = records.iter().flatten().copied().collect();
            prop_assert!(same(&roundtrip(&records), &want));
        }
    }

    #[test]
    fn histogram_buckets_use_neighbour_prediction() {
        let mut st = Vec::new();
        let mut buf = Vec::new();
        let r: Vec<RawSample> = (0..4u32)
            .map(|i| RawSample {
                sid: i,
                t: 1,
                v: f64::from(1000 + i),
            })
            .collect();
        encode_record(&r, &mut st, 0, &mut buf, &mut Vec::new(), None);
        // modes follow n, 4 sid deltas, 4 counts
        let modes = &buf[9..13];
        assert_eq!(modes, &[0, NEIGHBOUR, NEIGHBOUR, NEIGHBOUR]);
        let mut dec = Vec::new();
        let mut got = Vec::new();
        decode_record(&buf, &mut dec, 0, 10, &mut Vec::new(), None, |_, _, v| {
            got.push(v)
        })
        .expect("ok");
        assert_eq!(got, [1000.0, 1001.0, 1002.0, 1003.0]);
    }

    fn arb_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(i, d)| i as f64 / 10f64.powi(d as i32)),
            Just(f64::from_bits(STALE_NAN_BITS)),
            Just(-0.0),
        ]
    }

    proptest! {
        #[test]
        fn any_samples_roundtrip(
            recs in proptest::collection::vec(
                proptest::collection::vec((0u32..20, -5_000i64..5_000, arb_value()), 0..40),
                1..8,
            ),
            t0 in any::<i64>(),
        ) {
            // Build per-record sorted (sid, t) with strictly increasing t per series across records.
            let mut last: std::collections::HashMap<u32, i64> = Default::default();
            let mut records = Vec::new();
            for r in recs {
                let mut r: Vec<RawSample> = r.into_iter().map(|(sid, dt, v)| RawSample { sid, t: dt, v }).collect();
                r.sort_by_key(|s| s.sid);
                for s in r.iter_mut() {
                    let l = last.entry(s.sid).or_insert(t0);
                    *l = l.wrapping_add(s.t.abs() + 1);
                    s.t = *l;
                }
                records.push(r);
            }
            let want: Vec<RawSample> = records.iter().flatten().copied().collect();
            prop_assert!(same(&roundtrip(&records), &want));
        }
    }
}
