//! A bounded in-memory cache of decoded samples per (segment, series), so that repeated reads
//! (dashboards refreshing the same panels) do not decode the same segment again and again.
//!
//! # Why it exists
//! A segment is one zstd stream whose value coder adapts from record to record, so reading any
//! series of it means decoding all of it from the start (format 2: about 150 ns per sample).
//! Writing a second, series-ordered copy would cost flash writes (see `tsdb`'s budget), so the
//! reorganisation happens in memory instead, bounded by `--storage.tsdb.read-cache-size`:
//!
//! * A select that misses decodes the segment once and keeps the selected series' samples
//!   here, or every series' when the whole segment fits comfortably (a Pi's few thousand
//!   series), in a compact per-series form ([`Chunk`], about 4-6 bytes per sample against 16
//!   decoded).
//! * The flusher appends each new record's samples to the cached series of the live segment
//!   ([`ReadCache::extend`]), so the segment being written stays cached as it grows.
//! * Least recently used series are evicted beyond the budget. Nothing here touches disk.
//!
//! # Consistency
//! An entry set is valid for one segment length (`upto`): a reader uses it only when the
//! segment length of its own snapshot matches, so it never sees samples twice or misses the
//! ones still waiting for a flush. Segments rewritten (admin API) or removed (retention) are
//! dropped, and a generation number refuses inserts decoded from a file that changed meanwhile.

use super::encoding::{put_varint, Cursor, RawSample};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Fixed memory an entry costs beside its bytes (map slot, `Arc`, chunk header), for the
/// budget.
const ENTRY_OVERHEAD: usize = 144;

/// Cached bytes per segment byte, roughly (4-6 bytes per sample in memory against 0.7-0.9 on
/// disk); a segment is cached whole when this estimate is at most a quarter of the budget.
const MEMORY_PER_DISK_BYTE: u64 = 6;

/// One series' samples within one segment: timestamps as zigzag varints of their
/// delta-of-delta, values as the XOR with the previous value's bits, stored as a header byte
/// (0: unchanged; else 1 + 8 x leading zero bytes + trailing zero bytes) and the bytes between.
/// Every `f64` bit pattern round-trips.
#[derive(Clone, Debug, Default)]
pub(super) struct Chunk {
    buf: Vec<u8>,
    n: u32,
    min_t: i64,
    max_t: i64,
    last_t: i64,
    last_d: i64,
    last_v: u64,
}

impl Chunk {
    /// Appends a sample (any order of timestamps is stored faithfully).
    #[inline]
    pub fn push(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        if self.n == 0 {
            put_varint(&mut self.buf, t);
            (self.min_t, self.max_t) = (t, t);
            self.last_d = 0;
        } else {
            let d = t.wrapping_sub(self.last_t);
            put_varint(&mut self.buf, d.wrapping_sub(self.last_d));
            self.last_d = d;
            self.min_t = self.min_t.min(t);
            self.max_t = self.max_t.max(t);
        }
        let x = bits ^ self.last_v;
        if x == 0 {
            self.buf.push(0);
        } else {
            let lead = x.leading_zeros() / 8;
            let trail = x.trailing_zeros() / 8;
            self.buf.push((1 + lead * 8 + trail) as u8);
            let n = (8 - lead - trail) as usize;
            let b = (x >> (trail * 8)).to_le_bytes();
            self.buf.extend_from_slice(&b[..n]);
        }
        self.n += 1;
        self.last_t = t;
        self.last_v = bits;
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Memory the chunk holds, for the budget.
    fn cost(&self) -> usize {
        self.buf.capacity() + ENTRY_OVERHEAD
    }

    /// Calls `f` for every sample with `mint <= t <= maxt`, in stored order.
    pub fn for_each_in(&self, mint: i64, maxt: i64, mut f: impl FnMut(i64, f64)) {
        if self.n == 0 || self.min_t > maxt || self.max_t < mint {
            return;
        }
        let mut c = Cursor::new(&self.buf);
        let (mut t, mut d, mut v) = (0i64, 0i64, 0u64);
        for i in 0..self.n {
            if i == 0 {
                t = c.varint();
            } else {
                d = d.wrapping_add(c.varint());
                t = t.wrapping_add(d);
            }
            let h = c.u8();
            if h != 0 {
                let k = u32::from(h - 1);
                let (lead, trail) = (k / 8, k % 8);
                let n = 8usize.saturating_sub((lead + trail) as usize);
                let mut b = [0u8; 8];
                let src = c.bytes(n);
                b[..src.len()].copy_from_slice(src);
                v ^= u64::from_le_bytes(b) << (trail * 8);
            }
            if c.is_bad() {
                return; // cannot happen for a chunk built by `push`
            }
            if t >= mint && t <= maxt {
                f(t, f64::from_bits(v));
            }
        }
    }
}

/// What a lookup found.
pub(super) enum Lookup {
    /// One entry per asked series, in order; `None`: no samples in the segment.
    Hit(Vec<Option<Arc<Chunk>>>),
    /// Something is missing: decode, then [`ReadCache::insert`].
    Miss,
}

struct Entry {
    chunk: Arc<Chunk>,
    used: u64,
}

/// Cached series of one segment, valid for its first `upto` bytes.
struct SegEntries {
    upto: u64,
    /// Every series with samples in the segment has an entry (absent: no samples).
    complete: bool,
    series: HashMap<u32, Entry>,
}

impl SegEntries {
    /// Memory its entries hold, as counted in `State::bytes`.
    fn cost(&self) -> usize {
        self.series.values().map(|e| e.chunk.cost()).sum()
    }
}

#[derive(Default)]
struct State {
    segs: HashMap<u64, SegEntries>,
    bytes: usize,
    tick: u64,
    gen: u64,
    hits: u64,
    misses: u64,
    evicted: u64,
}

/// The cache; cheap to share behind the store.
pub(super) struct ReadCache {
    budget: usize,
    state: Mutex<State>,
}

impl ReadCache {
    /// A cache holding at most `budget` bytes; 0 disables it.
    pub fn new(budget: usize) -> Self {
        ReadCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation a reader must pass to [`Self::insert`]: read it in the same critical
    /// section (the store's `shared` lock) as the segment list it decodes from, since segments
    /// are dropped under that lock too.
    pub fn generation(&self) -> u64 {
        self.lock().gen
    }

    /// Whether caching is on.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Whether a decode of a segment of `len` bytes should keep every series, not only the
    /// selected ones.
    pub fn want_all(&self, len: u64) -> bool {
        len.saturating_mul(MEMORY_PER_DISK_BYTE) <= self.budget as u64 / 4
    }

    /// The entries of `sids` in segment `seq` read up to `len` bytes.
    pub fn lookup(&self, seq: u64, len: u64, sids: &[u32]) -> Lookup {
        let mut st = self.lock();
        if self.budget == 0 {
            return Lookup::Miss;
        }
        st.tick += 1;
        let tick = st.tick;
        let Some(se) = st.segs.get_mut(&seq) else {
            st.misses += 1;
            return Lookup::Miss;
        };
        if se.upto != len {
            st.misses += 1;
            return Lookup::Miss;
        }
        let mut out = Vec::with_capacity(sids.len());
        for s in sids {
            match se.series.get_mut(s) {
                Some(e) => {
                    e.used = tick;
                    out.push(Some(e.chunk.clone()));
                }
                None if se.complete => out.push(None),
                None => {
                    st.misses += 1;
                    return Lookup::Miss;
                }
            }
        }
        st.hits += 1;
        Lookup::Hit(out)
    }

    /// Keeps `chunks` (every series of the segment when `complete`) decoded from segment `seq`
    /// up to `len` bytes, unless the cache moved on meanwhile (`gen`, a longer entry set).
    pub fn insert(&self, seq: u64, len: u64, gen: u64, complete: bool, chunks: Vec<(u32, Chunk)>) {
        if self.budget == 0 {
            return;
        }
        let mut chunks = chunks;
        for (_, c) in chunks.iter_mut() {
            c.buf.shrink_to_fit();
        }
        let mut st = self.lock();
        if st.gen != gen {
            return;
        }
        st.tick += 1;
        let tick = st.tick;
        let mut freed = 0usize;
        let se = st.segs.entry(seq).or_insert_with(|| SegEntries {
            upto: len,
            complete: false,
            series: HashMap::new(),
        });
        if se.upto > len {
            return;
        }
        if se.upto < len {
            freed += se.cost();
            se.series.clear();
            se.complete = false;
            se.upto = len;
        }
        let mut added = 0usize;
        for (sid, c) in chunks {
            added += c.cost();
            let e = Entry {
                chunk: Arc::new(c),
                used: tick,
            };
            if let Some(old) = se.series.insert(sid, e) {
                freed += old.chunk.cost();
            }
        }
        se.complete |= complete;
        st.bytes = st.bytes + added - freed.min(st.bytes + added);
        self.evict(&mut st);
    }

    /// The flusher appended a record of `group` (sorted by series, then time) to segment `seq`,
    /// growing it from `old_len` to `new_len` bytes: cached series of that segment take the new
    /// samples, so the entry set stays valid.
    pub fn extend(&self, seq: u64, old_len: u64, new_len: u64, group: &[RawSample]) {
        if self.budget == 0 {
            return;
        }
        let mut st = self.lock();
        let tick = st.tick;
        let Some(se) = st.segs.get_mut(&seq) else {
            return;
        };
        if se.upto != old_len {
            let freed = se.cost();
            st.segs.remove(&seq);
            st.bytes = st.bytes.saturating_sub(freed);
            return;
        }
        let (mut added, mut freed) = (0usize, 0usize);
        for run in group.chunk_by(|a, b| a.sid == b.sid) {
            let sid = run[0].sid;
            let e = match se.series.get_mut(&sid) {
                Some(e) => {
                    // Counted at its current size; a copy made below for a reader still
                    // holding it is counted afresh.
                    freed += e.chunk.cost();
                    e
                }
                None if se.complete => se.series.entry(sid).or_insert(Entry {
                    chunk: Arc::new(Chunk::default()),
                    used: tick,
                }),
                None => continue,
            };
            let c = Arc::make_mut(&mut e.chunk);
            for s in run {
                c.push(s.t, s.v);
            }
            added += c.cost();
        }
        se.upto = new_len;
        st.bytes = (st.bytes + added).saturating_sub(freed);
        self.evict(&mut st);
    }

    /// Forgets segment `seq` (removed or rewritten) and refuses inserts decoded before now.
    pub fn drop_segment(&self, seq: u64) {
        let mut st = self.lock();
        st.gen += 1;
        if let Some(se) = st.segs.remove(&seq) {
            let freed = se.cost();
            st.bytes = st.bytes.saturating_sub(freed);
        }
        if st.segs.is_empty() {
            st.bytes = 0;
        }
    }

    /// Evicts least recently used entries down to three quarters of the budget once over it.
    fn evict(&self, st: &mut State) {
        if st.bytes <= self.budget {
            return;
        }
        let mut all: Vec<(u64, u64, u32, usize)> = st
            .segs
            .iter()
            .flat_map(|(&seq, se)| {
                se.series
                    .iter()
                    .map(move |(&sid, e)| (e.used, seq, sid, e.chunk.cost()))
            })
            .collect();
        all.sort_unstable_by_key(|x| x.0);
        let target = self.budget / 4 * 3;
        for (_, seq, sid, cost) in all {
            if st.bytes <= target {
                break;
            }
            if let Some(se) = st.segs.get_mut(&seq) {
                if se.series.remove(&sid).is_some() {
                    se.complete = false;
                    st.bytes = st.bytes.saturating_sub(cost);
                    st.evicted += 1;
                }
            }
        }
        st.segs.retain(|_, se| !se.series.is_empty());
        if st.segs.is_empty() {
            st.bytes = 0;
        }
    }

    /// The bytes held, counted afresh (tests compare it with the running count).
    #[cfg(test)]
    fn recount(&self) -> usize {
        let st = self.lock();
        st.segs
            .values()
            .flat_map(|se| se.series.values())
            .map(|e| e.chunk.cost())
            .sum()
    }

    /// (bytes held, segment lookups answered, segment lookups missed, entries evicted).
    pub fn stats(&self) -> (usize, u64, u64, u64) {
        let st = self.lock();
        (st.bytes, st.hits, st.misses, st.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(c: &Chunk) -> Vec<(i64, u64)> {
        let mut v = Vec::new();
        c.for_each_in(i64::MIN, i64::MAX, |t, x| v.push((t, x.to_bits())));
        v
    }

    #[test]
    fn chunk_round_trips_every_bit_pattern_and_time() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let cases: &[&[(i64, f64)]] = &[
            &[],
            &[(0, 0.0)],
            &[(i64::MIN, -0.0), (i64::MAX, f64::NAN), (0, stale)],
            &[(1000, 1.0), (2000, 1.0), (3000, 2.5), (4000, f64::INFINITY)],
            &[
                (5, f64::MIN_POSITIVE),
                (4, f64::MAX),
                (-3, -1e-300),
                (7, f64::NEG_INFINITY),
            ],
        ];
        for case in cases {
            let mut c = Chunk::default();
            for &(t, v) in *case {
                c.push(t, v);
            }
            let want: Vec<(i64, u64)> = case.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            assert_eq!(samples(&c), want);
            assert_eq!(c.len(), case.len());
        }
        // A pseudo-random walk of bit patterns and irregular times.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut c = Chunk::default();
        let mut want = Vec::new();
        let mut t = 1_700_000_000_000i64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += (x % 30_000) as i64 - 1_000;
            let bits = if x % 3 == 0 {
                x
            } else {
                ((x % 1000) as f64 / 100.0).to_bits()
            };
            c.push(t, f64::from_bits(bits));
            want.push((t, bits));
        }
        assert_eq!(samples(&c), want);
    }

    #[test]
    fn chunk_range_filter() {
        let mut c = Chunk::default();
        for i in 0..10 {
            c.push(i * 10, i as f64);
        }
        let mut got = Vec::new();
        c.for_each_in(25, 60, |t, _| got.push(t));
        assert_eq!(got, vec![30, 40, 50, 60]);
        got.clear();
        c.for_each_in(100, 200, |t, _| got.push(t));
        assert!(got.is_empty());
    }

    fn chunk_of(pts: &[(i64, f64)]) -> Chunk {
        let mut c = Chunk::default();
        for &(t, v) in pts {
            c.push(t, v);
        }
        c
    }

    fn ts(l: &Lookup) -> Option<Vec<Option<Vec<i64>>>> {
        match l {
            Lookup::Miss => None,
            Lookup::Hit(v) => Some(
                v.iter()
                    .map(|c| {
                        c.as_ref().map(|c| {
                            let mut t = Vec::new();
                            c.for_each_in(i64::MIN, i64::MAX, |x, _| t.push(x));
                            t
                        })
                    })
                    .collect(),
            ),
        }
    }

    /// The generation to insert with, after checking that `l` missed.
    fn gen(c: &ReadCache, l: Lookup) -> u64 {
        assert!(matches!(l, Lookup::Miss), "expected a miss");
        c.generation()
    }

    #[test]
    fn lookup_insert_extend_and_invalidate() {
        let c = ReadCache::new(1 << 20);
        let g = gen(&c, c.lookup(1, 100, &[3]));
        c.insert(1, 100, g, false, vec![(3, chunk_of(&[(10, 1.0)]))]);
        assert_eq!(ts(&c.lookup(1, 100, &[3])), Some(vec![Some(vec![10])]));
        // Another series of the same segment was not kept: a miss.
        assert!(ts(&c.lookup(1, 100, &[3, 4])).is_none());
        // A reader whose snapshot has another length misses.
        assert!(ts(&c.lookup(1, 90, &[3])).is_none());
        // The flusher appends a record: series 3 takes its samples, 4 stays unknown.
        let rec = [
            RawSample {
                sid: 3,
                t: 20,
                v: 2.0,
            },
            RawSample {
                sid: 4,
                t: 20,
                v: 5.0,
            },
        ];
        c.extend(1, 100, 150, &rec);
        assert_eq!(ts(&c.lookup(1, 150, &[3])), Some(vec![Some(vec![10, 20])]));
        assert!(ts(&c.lookup(1, 100, &[3])).is_none());
        // An extend that does not start where the cache is drops the segment's entries.
        c.extend(1, 160, 170, &rec);
        assert!(ts(&c.lookup(1, 150, &[3])).is_none());
        assert_eq!(c.stats().0, 0);

        // A complete entry set answers for series without samples, and takes new series.
        let g = gen(&c, c.lookup(2, 50, &[1]));
        c.insert(2, 50, g, true, vec![(1, chunk_of(&[(5, 1.0)]))]);
        assert_eq!(
            ts(&c.lookup(2, 50, &[1, 9])),
            Some(vec![Some(vec![5]), None])
        );
        c.extend(
            2,
            50,
            60,
            &[RawSample {
                sid: 9,
                t: 6,
                v: 0.0,
            }],
        );
        assert_eq!(
            ts(&c.lookup(2, 60, &[1, 9])),
            Some(vec![Some(vec![5]), Some(vec![6])])
        );
        // An older decode does not replace a newer entry set.
        c.insert(2, 50, g, false, vec![(1, chunk_of(&[(1, 1.0)]))]);
        assert_eq!(ts(&c.lookup(2, 60, &[1])), Some(vec![Some(vec![5])]));

        // Dropping a segment refuses inserts from decodes that started before.
        let g = gen(&c, c.lookup(3, 10, &[1]));
        c.drop_segment(3);
        c.insert(3, 10, g, true, vec![(1, chunk_of(&[(1, 1.0)]))]);
        assert!(ts(&c.lookup(3, 10, &[1])).is_none());
        c.drop_segment(2);
        assert!(ts(&c.lookup(2, 60, &[1])).is_none());
    }

    #[test]
    fn readers_holding_a_chunk_keep_their_copy_while_the_flusher_appends() {
        let c = ReadCache::new(1 << 20);
        let g = gen(&c, c.lookup(1, 10, &[1]));
        c.insert(1, 10, g, false, vec![(1, chunk_of(&[(1, 1.0)]))]);
        let Lookup::Hit(held) = c.lookup(1, 10, &[1]) else {
            panic!("miss")
        };
        c.extend(
            1,
            10,
            20,
            &[RawSample {
                sid: 1,
                t: 2,
                v: 2.0,
            }],
        );
        assert_eq!(held[0].as_ref().unwrap().len(), 1);
        assert_eq!(ts(&c.lookup(1, 20, &[1])), Some(vec![Some(vec![1, 2])]));
        // The running byte count stays exact when every extend copies a held chunk, and when
        // empty entries (selected series without samples) start getting samples.
        let g = c.generation();
        c.insert(1, 20, g, false, vec![(2, Chunk::default())]);
        for k in 0..500u64 {
            let Lookup::Hit(_held) = c.lookup(1, 20 + k, &[1, 2]) else {
                panic!("miss at {k}")
            };
            let t = 3 + k as i64;
            let rec = [
                RawSample {
                    sid: 1,
                    t,
                    v: k as f64,
                },
                RawSample { sid: 2, t, v: 0.5 },
            ];
            c.extend(1, 20 + k, 21 + k, &rec);
            assert_eq!(c.stats().0, c.recount(), "after extend {k}");
        }
        c.drop_segment(1);
        assert_eq!((c.stats().0, c.recount()), (0, 0));
    }

    #[test]
    fn eviction_keeps_the_budget_and_the_recently_used() {
        let budget = 64 * 1024;
        let c = ReadCache::new(budget);
        let big: Vec<(i64, f64)> = (0..2_000).map(|i| (i * 15_000, i as f64 * 0.37)).collect();
        for sid in 0..20u32 {
            let g = gen(&c, c.lookup(7, 1, &[sid]));
            c.insert(7, 1, g, false, vec![(sid, chunk_of(&big))]);
            // Series 0 is read between inserts, so it stays.
            let _ = c.lookup(7, 1, &[0]);
            assert!(c.stats().0 <= budget, "{} > {budget}", c.stats().0);
            assert_eq!(c.stats().0, c.recount());
        }
        assert!(matches!(c.lookup(7, 1, &[0]), Lookup::Hit(_)));
        assert!(matches!(c.lookup(7, 1, &[1]), Lookup::Miss));
        assert!(c.stats().3 > 0);
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let c = ReadCache::new(0);
        assert!(!c.enabled());
        c.insert(1, 1, 0, true, vec![(1, chunk_of(&[(1, 1.0)]))]);
        assert!(matches!(c.lookup(1, 1, &[1]), Lookup::Miss));
        assert_eq!(c.stats().0, 0);
    }
}
