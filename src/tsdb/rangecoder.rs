//! An adaptive binary range coder for the value column of format-2 records.
//!
//! zstd's entropy stage codes literal bytes with one Huffman table per block: it cannot spend
//! less than one bit on a byte, and it codes the deltas of a temperature sensor (mostly 0 and
//! +-1) with the same table as those of a byte counter. Here each stored integer is split into
//! its bit length (0..=64), coded with adaptive probabilities under a context the caller picks
//! (for values: the series' previous bit length and the value mode), the two bits below its top
//! bit (adaptive, per bit length), and the remaining low bits, which are close to uniform, at
//! one bit each. A sensor delta of 0 then costs a fraction of a bit, a counter step costs what
//! its noise holds.
//!
//! The coder is the classic carry-less LZMA-style range coder (11-bit probabilities, adaptation
//! shift 5, 32-bit range, byte-wise normalisation); its output is not compressible further.
//! Probabilities live in [`ValueModel`], which the caller keeps across the records of one
//! segment, as it keeps each series' previous value. [`CostSink`] runs the same model without
//! output and sums `-log2 p`, for the encoding experiment.

/// Probability bits.
const PROB_BITS: u32 = 11;
/// Initial probability (one half).
const PROB_INIT: u16 = 1 << (PROB_BITS - 1);
/// Adaptation speed.
const MOVE_BITS: u32 = 5;
/// Range below which the coder shifts out a byte.
const TOP: u32 = 1 << 24;

/// Where coded bits go: the range encoder, or a cost counter.
pub trait BitSink {
    /// Codes `bit` (0 or 1) with the adaptive probability `p` of a zero, and adapts `p`.
    fn bit(&mut self, p: &mut u16, bit: u32);
    /// Codes the low `n` bits of `v` (n <= 64) at one bit each, most significant first.
    fn direct(&mut self, v: u64, n: u32);
}

#[inline]
fn adapt(p: &mut u16, bit: u32) {
    if bit == 0 {
        *p += ((1u16 << PROB_BITS) - *p) >> MOVE_BITS;
    } else {
        *p -= *p >> MOVE_BITS;
    }
}

/// The range encoder.
pub struct Encoder<'a> {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder {
            low: 0,
            range: u32::MAX,
            cache: 0,
            cache_size: 1,
            start: out.len(),
            out,
        }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low as u32) >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = u64::from((self.low as u32) << 8);
    }

    /// Writes out the pending state. The first byte the coder ever emits is always zero and is
    /// dropped; [`Decoder::new`] puts it back.
    pub fn finish(mut self) {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out.remove(self.start);
    }
}

impl BitSink for Encoder<'_> {
    #[inline]
    fn bit(&mut self, p: &mut u16, bit: u32) {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        if bit == 0 {
            self.range = bound;
        } else {
            self.low += u64::from(bound);
            self.range -= bound;
        }
        adapt(p, bit);
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    #[inline]
    fn direct(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.range >>= 1;
            if (v >> i) & 1 != 0 {
                self.low += u64::from(self.range);
            }
            while self.range < TOP {
                self.range <<= 8;
                self.shift_low();
            }
        }
    }
}

/// The range decoder over one record's coded bytes. Reading past the end yields zero bytes and
/// sets a sticky flag ([`Decoder::overrun`]), so malformed input decodes to garbage that the
/// caller rejects, never to a panic.
pub struct Decoder<'a> {
    code: u32,
    range: u32,
    buf: &'a [u8],
    pos: usize,
    past_end: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` as [`Encoder::finish`] left it.
    pub fn new(buf: &'a [u8]) -> Self {
        let mut d = Decoder {
            code: 0,
            range: u32::MAX,
            buf,
            pos: 0,
            past_end: 0,
        };
        // The dropped leading zero byte, then four more.
        for _ in 0..4 {
            d.code = (d.code << 8) | u32::from(d.next());
        }
        d
    }

    #[inline]
    fn next(&mut self) -> u8 {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => {
                self.past_end += 1;
                0
            }
        }
    }

    /// Whether the decoder needed bytes beyond its input (the input was not what an encoder
    /// produced for these reads).
    pub fn overrun(&self) -> bool {
        self.past_end > 0
    }

    /// Decodes one bit with the adaptive probability `p`.
    #[inline]
    pub fn bit(&mut self, p: &mut u16) -> u32 {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        let bit = if self.code < bound {
            self.range = bound;
            0
        } else {
            self.code -= bound;
            self.range -= bound;
            1
        };
        adapt(p, bit);
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(self.next());
        }
        bit
    }

    /// Decodes `n` direct bits (n <= 64).
    #[inline]
    pub fn direct(&mut self, n: u32) -> u64 {
        let mut v = 0u64;
        for _ in 0..n {
            self.range >>= 1;
            let bit = if self.code >= self.range {
                self.code -= self.range;
                1
            } else {
                0
            };
            v = (v << 1) | bit;
            while self.range < TOP {
                self.range <<= 8;
                self.code = (self.code << 8) | u32::from(self.next());
            }
        }
        v
    }
}

/// Sums the cost in bits of what would be coded, adapting probabilities as the coder would.
#[cfg(test)]
#[derive(Default)]
pub struct CostSink {
    /// Bits so far.
    pub bits: f64,
}

#[cfg(test)]
impl BitSink for CostSink {
    fn bit(&mut self, p: &mut u16, bit: u32) {
        let p0 = f64::from(*p) / f64::from(1u32 << PROB_BITS);
        self.bits -= if bit == 0 { p0 } else { 1.0 - p0 }.log2();
        adapt(p, bit);
    }
    fn direct(&mut self, _v: u64, n: u32) {
        self.bits += f64::from(n);
    }
}

/// Bit-length tree nodes per context (7 levels: lengths 0..=127, of which 0..=64 occur).
const LEN_NODES: usize = 128;
/// Mantissa bits below the top bit that are coded adaptively.
const MANT_MODELED: u32 = 2;
/// Nodes of the mantissa tree per bit length.
const MANT_NODES: usize = 1 << MANT_MODELED;

/// Adaptive probabilities for coding 64-bit unsigned integers under a small context.
#[derive(Clone)]
pub struct ValueModel {
    len: Vec<u16>,
    mant: Vec<u16>,
}

impl ValueModel {
    /// A model with `contexts` bit-length contexts, every probability at one half.
    pub fn new(contexts: usize) -> Self {
        ValueModel {
            len: vec![PROB_INIT; contexts * LEN_NODES],
            mant: vec![PROB_INIT; 65 * MANT_NODES],
        }
    }

    /// Codes `u` under context `ctx` (< `contexts`). Returns `u`'s bit length.
    #[inline]
    pub fn encode(&mut self, sink: &mut impl BitSink, ctx: usize, u: u64) -> u8 {
        let n = 64 - u.leading_zeros();
        let tree = &mut self.len[ctx * LEN_NODES..(ctx + 1) * LEN_NODES];
        let mut m = 1usize;
        for i in (0..7).rev() {
            let b = (n >> i) & 1;
            sink.bit(&mut tree[m], b);
            m = (m << 1) | b as usize;
        }
        if n >= 2 {
            let below = n - 1; // bits under the top bit
            let k = below.min(MANT_MODELED);
            let mant = &mut self.mant[n as usize * MANT_NODES..(n as usize + 1) * MANT_NODES];
            let mut m = 1usize;
            for i in 0..k {
                let b = ((u >> (below - 1 - i)) & 1) as u32;
                sink.bit(&mut mant[m], b);
                m = (m << 1) | b as usize;
            }
            let rest = below - k;
            if rest > 0 {
                sink.direct(u & ((1u64 << rest) - 1), rest);
            }
        }
        n as u8
    }

    /// Decodes a value coded by [`ValueModel::encode`] under `ctx`; returns it and its bit
    /// length. `None` for a bit length over 64 (malformed input).
    #[inline]
    pub fn decode(&mut self, d: &mut Decoder<'_>, ctx: usize) -> Option<(u64, u8)> {
        let tree = &mut self.len[ctx * LEN_NODES..(ctx + 1) * LEN_NODES];
        let mut m = 1usize;
        for _ in 0..7 {
            m = (m << 1) | d.bit(&mut tree[m]) as usize;
        }
        let n = (m - LEN_NODES) as u32;
        if n > 64 {
            return None;
        }
        if n == 0 {
            return Some((0, 0));
        }
        let below = n - 1;
        let k = below.min(MANT_MODELED);
        let mant = &mut self.mant[n as usize * MANT_NODES..(n as usize + 1) * MANT_NODES];
        let mut m = 1usize;
        let mut v = 1u64;
        for _ in 0..k {
            let b = d.bit(&mut mant[m]);
            m = (m << 1) | b as usize;
            v = (v << 1) | u64::from(b);
        }
        let rest = below - k;
        if rest > 0 {
            v = (v << rest) | d.direct(rest);
        }
        Some((v, n as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(vals: &[(usize, u64)], contexts: usize) -> Vec<u64> {
        let mut buf = Vec::new();
        let mut m = ValueModel::new(contexts);
        let mut e = Encoder::new(&mut buf);
        for &(c, u) in vals {
            m.encode(&mut e, c, u);
        }
        e.finish();
        let mut m = ValueModel::new(contexts);
        let mut d = Decoder::new(&buf);
        let out = vals
            .iter()
            .map(|&(c, _)| m.decode(&mut d, c).expect("length").0)
            .collect();
        assert!(!d.overrun());
        out
    }

    #[test]
    fn table_of_edge_values() {
        let vals: Vec<(usize, u64)> = [
            0,
            1,
            2,
            3,
            4,
            255,
            256,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) - 1,
            0x8000_0000,
            12345,
        ]
        .iter()
        .enumerate()
        .map(|(i, &u)| (i % 3, u))
        .collect();
        let want: Vec<u64> = vals.iter().map(|v| v.1).collect();
        assert_eq!(roundtrip(&vals, 3), want);
        assert_eq!(roundtrip(&[], 1), Vec::<u64>::new());
    }

    #[test]
    fn skewed_input_costs_less_than_a_bit_per_value() {
        // 10,000 zeros with a one every 50: the adaptive model learns the skew.
        let vals: Vec<(usize, u64)> = (0..10_000).map(|i| (0, u64::from(i % 50 == 0))).collect();
        let mut buf = Vec::new();
        let mut m = ValueModel::new(1);
        let mut e = Encoder::new(&mut buf);
        for &(c, u) in &vals {
            m.encode(&mut e, c, u);
        }
        e.finish();
        assert!(buf.len() * 8 < vals.len() / 2, "{} bytes", buf.len());
        assert_eq!(
            roundtrip(&vals, 1),
            vals.iter().map(|v| v.1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn garbage_input_never_panics() {
        for seed in 0u64..200 {
            let buf: Vec<u8> = (0..(seed % 17))
                .map(|i| (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i * 3)) as u8)
                .collect();
            let mut m = ValueModel::new(2);
            let mut d = Decoder::new(&buf);
            for k in 0..50 {
                if m.decode(&mut d, k % 2).is_none() {
                    break;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_values_roundtrip(vals in proptest::collection::vec((0usize..4, any::<u64>(), 0u32..65), 0..300)) {
            // Mix bit lengths evenly: shift random values down.
            let vals: Vec<(usize, u64)> = vals
                .into_iter()
                .map(|(c, u, s)| (c, if s == 64 { 0 } else { u >> s }))
                .collect();
            let want: Vec<u64> = vals.iter().map(|v| v.1).collect();
            prop_assert_eq!(roundtrip(&vals, 4), want);
        }
    }
}
