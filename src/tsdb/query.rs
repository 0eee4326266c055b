//! The read side: a `Querier` over a time range.
//!
//! Series are chosen in the index (postings) without touching samples. Sample data comes from
//! the segments that overlap the range (from the read cache, or decoded once per select and
//! then cached, see `cache`) and from the committed-but-unflushed samples, snapshotted together
//! under the `shared` lock so that every sample is seen exactly once.

use super::cache::{Chunk, Lookup};
use super::{admin, encoding::RawSample, index::Index, lock, read, segment, Inner, SegmentInfo};
use crate::model::{Labels, Matcher};
use crate::storage::{
    Querier, SampleIter, SelectHints, Series, SeriesSet, StorageError, VecSeriesSet,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A read view of `[mint, maxt]`.
pub struct TsdbQuerier {
    db: Arc<Inner>,
    mint: i64,
    maxt: i64,
}

impl TsdbQuerier {
    pub(super) fn new(db: Arc<Inner>, mint: i64, maxt: i64) -> Self {
        TsdbQuerier { db, mint, maxt }
    }

    /// Which series label and series queries see, from the index alone: those whose time
    /// bounds (`Index::time_bounds`) overlap the querier's range clamped to what the store
    /// holds (so series whose data retention removed are gone, and series never stored are
    /// never listed), and that no deletion hides through their newest sample. After a restart
    /// the bounds of old series are loose, so a series may be listed for a range it has no
    /// sample in, as Prometheus lists every series of a block that overlaps the range.
    fn visible<'a>(&self, ix: &'a Index) -> impl Fn(u32) -> bool + 'a {
        let (min_t, max_t, tomb) = {
            let sh = lock(&self.db.shared);
            (sh.min_t, sh.max_t, sh.tombstones.clone())
        };
        let (lo, hi) = (self.mint.max(min_t), self.maxt.min(max_t));
        move |s: u32| {
            lo <= hi
                && ix
                    .time_bounds(s)
                    .is_some_and(|(first, last)| first <= hi && last >= lo)
                && !(tomb.hides_any() && admin::hidden(&tomb, ix, s))
        }
    }

    /// Series matching `ms` that [`Self::visible`] accepts.
    fn sids_in_range(&self, ix: &Index, ms: &[Matcher]) -> Vec<u32> {
        let keep = self.visible(ix);
        let mut sids = ix.select(ms);
        sids.retain(|&s| keep(s));
        sids
    }
}

impl TsdbQuerier {
    /// Appends the samples in range of the selected series (`sids`, `slot`: sid -> index in
    /// `out`) from segment `s`: from the read cache when it holds them all for this length of
    /// the segment, else by decoding the segment, whose series are then cached (see `cache`)
    /// unless the cache's generation moved on from `gen` (read with the segment list).
    fn read_segment_into(
        &self,
        s: &SegmentInfo,
        gen: u64,
        sids: &[u32],
        slot: &[u32],
        bound: u32,
        out: &mut [Vec<(i64, f64)>],
    ) {
        let (mint, maxt) = (self.mint, self.maxt);
        let cache = &self.db.cache;
        if let Lookup::Hit(chunks) = cache.lookup(s.seq, s.len, sids) {
            for (k, c) in chunks.iter().enumerate() {
                if let Some(c) = c {
                    out[k].reserve(c.len());
                    c.for_each_in(mint, maxt, |t, v| out[k].push((t, v)));
                }
            }
            return;
        }
        let Some(bytes) = read_segment(&self.db, s) else {
            return;
        };
        let in_range = |t: i64| t >= mint && t <= maxt;
        let r = if !cache.enabled() {
            segment::decode(&bytes, bound, mint, maxt, |sid, t, v| {
                if let Some(&k) = slot.get(sid as usize) {
                    if k != u32::MAX {
                        out[k as usize].push((t, v));
                    }
                }
            })
        } else if cache.want_all(s.len) {
            // Small enough to keep every series: later selects of any series hit.
            let mut all: Vec<Chunk> = Vec::new();
            let r = segment::decode(&bytes, bound, i64::MIN, i64::MAX, |sid, t, v| {
                let i = sid as usize;
                if i >= all.len() {
                    all.resize_with(i + 1, Chunk::default);
                }
                all[i].push(t, v);
                if let Some(&k) = slot.get(i) {
                    if k != u32::MAX && in_range(t) {
                        out[k as usize].push((t, v));
                    }
                }
            });
            if r.is_ok() {
                let chunks = all
                    .into_iter()
                    .enumerate()
                    .filter(|(_, c)| c.len() > 0)
                    .map(|(sid, c)| (sid as u32, c))
                    .collect();
                cache.insert(s.seq, s.len, gen, true, chunks);
            }
            r
        } else {
            let mut mine: Vec<Chunk> = vec![Chunk::default(); sids.len()];
            let r = segment::decode(&bytes, bound, i64::MIN, i64::MAX, |sid, t, v| {
                if let Some(&k) = slot.get(sid as usize) {
                    if k != u32::MAX {
                        mine[k as usize].push(t, v);
                        if in_range(t) {
                            out[k as usize].push((t, v));
                        }
                    }
                }
            });
            if r.is_ok() {
                cache.insert(
                    s.seq,
                    s.len,
                    gen,
                    false,
                    sids.iter().copied().zip(mine).collect(),
                );
            }
            r
        };
        if let Err(d) = r {
            self.db.stats.corruptions.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(file = %s.path.display(), damage = %d, "damaged segment read; the rest of it is skipped");
        }
    }
}

impl TsdbQuerier {
    /// The series of a `series`-hint select (`/api/v1/series`), sorted, without samples: like
    /// Prometheus, series whose data overlaps the range by the index's time bounds, skipping
    /// those whose data in the range is wholly deleted; no sample is read.
    fn series_only(&self, matchers: &[Matcher]) -> Vec<Series> {
        let (mint, maxt) = (self.mint, self.maxt);
        let tomb = lock(&self.db.shared).tombstones.clone();
        let labels: Vec<Labels> = {
            let ix = read(&self.db.index);
            self.sids_in_range(&ix, matchers)
                .into_iter()
                .filter(|&s| {
                    let Some((first, last)) = ix.time_bounds(s) else {
                        return false;
                    };
                    !tomb.covers_range(s, first.max(mint), last.min(maxt))
                })
                .map(|s| ix.labels(s))
                .collect()
        };
        let mut series: Vec<Series> = labels
            .into_iter()
            .map(|labels| Series {
                labels,
                samples: Box::new(SliceIter {
                    s: Vec::new(),
                    pos: 0,
                }),
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }
}

/// Samples of one series: a vector with a cursor; `seek` is a binary search.
struct SliceIter {
    s: Vec<(i64, f64)>,
    pos: usize,
}

impl Iterator for SliceIter {
    type Item = (i64, f64);
    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        let r = self.s.get(self.pos).copied();
        if r.is_some() {
            self.pos += 1;
        }
        r
    }
}

impl SampleIter for SliceIter {
    fn seek(&mut self, t_ms: i64) -> Option<(i64, f64)> {
        if let Some(&(t, _)) = self.s.get(self.pos) {
            if t < t_ms {
                self.pos += self.s[self.pos..].partition_point(|&(t, _)| t < t_ms);
            }
        }
        self.s.get(self.pos).copied()
    }
    fn take_err(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// The sealed file of segment `seq` beside `path` (`SEQ_MINT_MAXT.seg`), if there is one.
fn sealed_sibling(path: &std::path::Path, seq: u64) -> Option<std::path::PathBuf> {
    let prefix = format!("{seq:010}_");
    std::fs::read_dir(path.parent()?)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".seg"))
        })
}

fn read_segment(db: &Inner, s: &SegmentInfo) -> Option<Vec<u8>> {
    let mut path = s.path.clone();
    for _ in 0..3 {
        match std::fs::read(&path) {
            Ok(mut b) => {
                b.truncate(s.len as usize);
                return Some(b);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Sealed (renamed) or removed by retention since the snapshot.
                let now = lock(&db.shared)
                    .segments
                    .iter()
                    .find(|x| x.seq == s.seq)
                    .map(|x| x.path.clone());
                match now {
                    Some(p) if p != path => path = p,
                    // Renamed by a seal that is not published yet: find it by its number.
                    Some(_) => match sealed_sibling(&path, s.seq) {
                        Some(p) => path = p,
                        None => return None,
                    },
                    None => return None,
                }
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "reading segment failed");
                return None;
            }
        }
    }
    None
}

impl Querier for TsdbQuerier {
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Box<dyn SeriesSet> {
        let (mint, maxt) = (self.mint, self.maxt);
        if hints.func.as_deref() == Some("series") {
            return Box::new(VecSeriesSet::new(self.series_only(matchers)));
        }
        let (sids, bound, mut labelled): (Vec<u32>, u32, Vec<(Labels, u32)>) = {
            let ix = read(&self.db.index);
            let sids = ix.select(matchers);
            let l = sids.iter().map(|&s| (ix.labels(s), s)).collect();
            (sids, ix.id_bound(), l)
        };
        if sids.is_empty() || mint > maxt {
            return Box::new(VecSeriesSet::new(Vec::new()));
        }
        // sid -> slot in `out`.
        let mut slot = vec![u32::MAX; bound as usize];
        for (i, &s) in sids.iter().enumerate() {
            slot[s as usize] = i as u32;
        }
        let mut out: Vec<Vec<(i64, f64)>> = vec![Vec::new(); sids.len()];
        let (segs, pending, tomb, gen): (Vec<SegmentInfo>, Vec<RawSample>, _, u64) = {
            let sh = lock(&self.db.shared);
            // Segments leave the cache under this lock (retention, rewrites): an insert from
            // a decode of this snapshot is refused once one of them went.
            let gen = self.db.cache.generation();
            let segs = sh
                .segments
                .iter()
                .filter(|s| s.min_t <= maxt && s.max_t >= mint)
                .cloned()
                .collect();
            let p = sh
                .unflushed
                .iter()
                .filter(|r| {
                    r.t >= mint
                        && r.t <= maxt
                        && slot.get(r.sid as usize).is_some_and(|&x| x != u32::MAX)
                })
                .copied()
                .collect();
            (segs, p, sh.tombstones.clone(), gen)
        };
        for s in &segs {
            self.read_segment_into(s, gen, &sids, &slot, bound, &mut out);
        }
        for r in pending {
            out[slot[r.sid as usize] as usize].push((r.t, r.v));
        }
        // Segments of older partitions written after newer ones (backfill, late data) can
        // interleave; a series' samples are unique by construction, so sorting suffices.
        for v in out.iter_mut() {
            if !v.windows(2).all(|w| w[0].0 < w[1].0) {
                v.sort_by_key(|x| x.0);
                v.dedup_by_key(|x| x.0);
            }
        }
        // Deleted samples (tombstones) are not returned; a series left empty is dropped below.
        if !tomb.is_empty() {
            for (i, &sid) in sids.iter().enumerate() {
                if let Some(iv) = tomb.intervals(sid) {
                    admin::retain_visible(&mut out[i], iv);
                }
            }
        }
        labelled.sort_by(|a, b| a.0.cmp(&b.0));
        let series: Vec<Series> = labelled
            .into_iter()
            .filter_map(|(labels, sid)| {
                let s = std::mem::take(&mut out[slot[sid as usize] as usize]);
                (!s.is_empty()).then(|| Series {
                    labels,
                    samples: Box::new(SliceIter { s, pos: 0 }),
                })
            })
            .collect();
        Box::new(VecSeriesSet::new(series))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let ix = read(&self.db.index);
        if matchers.is_empty() {
            return Ok(ix.label_names_where(&self.visible(&ix)));
        }
        Ok(ix.label_names(&self.sids_in_range(&ix, matchers)))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let ix = read(&self.db.index);
        if matchers.is_empty() {
            return Ok(ix.label_values_where(name, &self.visible(&ix)));
        }
        Ok(ix.label_values(name, &self.sids_in_range(&ix, matchers)))
    }
}
