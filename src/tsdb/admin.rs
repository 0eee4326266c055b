//! The storage side of Prometheus's TSDB admin API: deleting series (tombstones), cleaning
//! tombstones (rewriting sealed segments without the deleted data) and snapshots.
//!
//! # Why it exists
//! Segments are write-once, so deleting data cannot edit them in place. As in Prometheus, a
//! deletion first writes *tombstones*, intervals `(series, [mint, maxt])` that every read
//! filters out, and `clean_tombstones` later rewrites the affected sealed segments without the
//! covered samples. A snapshot is what a backup tool needs: a directory that opens as a data
//! directory by itself, made of hard links to the sealed (immutable) segments and copies of
//! what is still being written.
//!
//! # Semantics (Prometheus 2.42's `tsdb.DB.Delete`, `CleanTombstones`, `Snapshot`)
//! * A deletion is clamped to the data present when it is made (Prometheus clamps head
//!   tombstones to each series' current time range): samples appended later, after the
//!   series' newest sample, stay visible. A deletion that starts at or before a series' first
//!   sample is stored with `mint = i64::MIN`; when it also reaches the series' newest sample
//!   the series is *hidden*: gone from series, label names, label values and status counts,
//!   until it gets a newer sample.
//! * Cleaning first seals the live segment when it may hold deleted data (Prometheus leaves
//!   head tombstones for the next head compaction; sealing early here removes every deleted
//!   byte at the cost of one more segment file), rewrites each sealed segment holding deleted
//!   samples (new file in `.rewrite/`, fsync, rename over the data directory, old name
//!   removed; a segment left empty is removed), then keeps only the tombstones still needed:
//!   those that hide a series, and those over a segment that could not be rewritten (damaged).
//! * A snapshot with the head (`skip_head=false`) flushes first and copies the live segment
//!   as of that flush, sealed under its final name; `skip_head=true` takes only the sealed
//!   segments, as Prometheus then takes only persisted blocks. Snapshots live in
//!   `<data>/snapshots/`, which neither the store nor retention counts, as Prometheus's
//!   size-based retention counts its blocks, WAL and head chunks, never `snapshots/`.
//!
//! # The tombstones file (`tombstones`, in the data directory)
//! ```text
//! magic "EPTMB\0" | version u16 LE (1) | count u32 LE
//! count x (series id u32 LE | mint i64 LE | maxt i64 LE)   sorted by id, then mint
//! crc32 u32 LE (IEEE, of every byte before it)
//! ```
//! It is replaced atomically (write `tombstones.tmp`, fsync, rename, fsync the directory) and
//! removed when no tombstone is left. A damaged file makes `Tsdb::open` fail with an error
//! naming it: starting without it would bring deleted data back.

use super::encoding::RawSample;
use super::index::Index;
use super::segment::{self, SegmentInfo, SegmentWriter};
use super::{inc, io_err, lock, read, serieslog, Error, Inner, Tsdb};
use crate::model::Matcher;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// File name of the tombstones inside the data directory.
pub const TOMBSTONES_FILE: &str = "tombstones";
/// Directory (inside the data directory) where snapshots are made.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Scratch directory for segments being rewritten; emptied at open.
const REWRITE_DIR: &str = ".rewrite";
const MAGIC: &[u8; 6] = b"EPTMB\0";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 12;
const ENTRY_LEN: usize = 20;
/// Samples per record when a segment is rewritten (bounds the rewrite's memory).
const REWRITE_CHUNK: usize = 1 << 16;

/// Deleted intervals per series: sorted, non-overlapping, inclusive `[mint, maxt]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tombstones {
    by_sid: BTreeMap<u32, Vec<(i64, i64)>>,
    /// Whether some interval starts at `i64::MIN` (may hide a whole series).
    any_full: bool,
}

impl Tombstones {
    /// Whether there is no tombstone.
    pub fn is_empty(&self) -> bool {
        self.by_sid.is_empty()
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.by_sid.values().map(Vec::len).sum()
    }

    /// Bytes of the tombstones file holding these (0 when there is none): counted as storage.
    pub fn file_len(&self) -> u64 {
        match self.len() {
            0 => 0,
            n => (HEADER_LEN + n * ENTRY_LEN + 4) as u64,
        }
    }

    /// Adds `[mint, maxt]` for `sid`, merging with overlapping or adjacent intervals. Returns
    /// whether anything changed.
    pub fn add(&mut self, sid: u32, mint: i64, maxt: i64) -> bool {
        if mint > maxt {
            return false;
        }
        let v = self.by_sid.entry(sid).or_default();
        if v.iter().any(|&(a, b)| a <= mint && b >= maxt) {
            return false;
        }
        v.push((mint, maxt));
        v.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        *v = out;
        self.any_full |= mint == i64::MIN;
        true
    }

    /// The intervals of `sid`, if any.
    #[inline]
    pub fn intervals(&self, sid: u32) -> Option<&[(i64, i64)]> {
        if self.by_sid.is_empty() {
            return None;
        }
        self.by_sid.get(&sid).map(Vec::as_slice)
    }

    /// Whether the sample `(sid, t)` is deleted.
    #[inline]
    pub fn covers(&self, sid: u32, t: i64) -> bool {
        self.intervals(sid).is_some_and(|iv| in_intervals(iv, t))
    }

    /// Whether `[a, b]` of `sid` is wholly deleted (intervals are merged, so one must cover
    /// it); false for an empty range.
    pub fn covers_range(&self, sid: u32, a: i64, b: i64) -> bool {
        a <= b
            && self
                .intervals(sid)
                .is_some_and(|iv| iv.iter().any(|&(x, y)| x <= a && y >= b))
    }

    /// Whether some tombstone may hide a whole series.
    #[inline]
    pub fn hides_any(&self) -> bool {
        self.any_full
    }

    /// Whether `sid` is hidden: deleted from before its first sample through its newest one
    /// (`last`, `i64::MIN` when unknown since open: then it got no sample after the deletion).
    #[inline]
    pub fn hides(&self, sid: u32, last: i64) -> bool {
        self.any_full
            && self
                .intervals(sid)
                .and_then(|iv| iv.first())
                .is_some_and(|&(a, b)| a == i64::MIN && (last == i64::MIN || b >= last))
    }

    /// Smallest `mint` and largest `maxt` over every interval.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mn = self
            .by_sid
            .values()
            .filter_map(|v| v.first())
            .map(|x| x.0)
            .min()?;
        let mx = self
            .by_sid
            .values()
            .filter_map(|v| v.last())
            .map(|x| x.1)
            .max()?;
        Some((mn, mx))
    }

    fn iter(&self) -> impl Iterator<Item = (u32, i64, i64)> + '_ {
        self.by_sid
            .iter()
            .flat_map(|(&s, v)| v.iter().map(move |&(a, b)| (s, a, b)))
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.len();
        let mut b = Vec::with_capacity(HEADER_LEN + n * ENTRY_LEN + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(n as u32).to_le_bytes());
        for (s, a, z) in self.iter() {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&a.to_le_bytes());
            b.extend_from_slice(&z.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a file's bytes; the error says what is wrong (the caller adds the path).
    pub fn decode(b: &[u8]) -> Result<Tombstones, String> {
        if b.len() < HEADER_LEN + 4 {
            return Err(format!("{} bytes, shorter than an empty file", b.len()));
        }
        if &b[0..6] != MAGIC {
            return Err("bad magic".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != want {
            return Err("checksum mismatch".into());
        }
        let version = u16::from_le_bytes([b[6], b[7]]);
        if version == 0 || version > VERSION {
            return Err(format!(
                "unsupported format version {version} (newest known {VERSION})"
            ));
        }
        let n = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        let entries = &body[HEADER_LEN..];
        if Some(entries.len()) != n.checked_mul(ENTRY_LEN) {
            return Err(format!(
                "{n} entries announced, {} bytes of entries found",
                entries.len()
            ));
        }
        let mut t = Tombstones::default();
        for e in entries.chunks_exact(ENTRY_LEN) {
            let sid = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let mut x = [0u8; 8];
            x.copy_from_slice(&e[4..12]);
            let a = i64::from_le_bytes(x);
            x.copy_from_slice(&e[12..20]);
            let z = i64::from_le_bytes(x);
            if a > z {
                return Err(format!("interval {a}..{z} of series {sid} is reversed"));
            }
            t.add(sid, a, z);
        }
        Ok(t)
    }
}

#[inline]
fn in_intervals(iv: &[(i64, i64)], t: i64) -> bool {
    // Few intervals per series: a linear scan beats a binary search.
    iv.iter().any(|&(a, b)| a <= t && t <= b)
}

/// Keeps the samples of one series that no interval covers (`samples` sorted by time).
pub(super) fn retain_visible(samples: &mut Vec<(i64, f64)>, iv: &[(i64, i64)]) {
    samples.retain(|&(t, _)| !in_intervals(iv, t));
}

/// Whether `sid`'s newest known sample is hidden by `tomb` (see [`Tombstones::hides`]).
pub(super) fn hidden(tomb: &Tombstones, ix: &Index, sid: u32) -> bool {
    let last = ix.lasts.get(sid as usize).map_or(i64::MIN, |l| l.get().0);
    tomb.hides(sid, last)
}

/// Loads the tombstones of the data directory `dir` (none when the file is missing).
pub(super) fn load(dir: &Path) -> Result<Tombstones, Error> {
    let path = dir.join(TOMBSTONES_FILE);
    match fs::read(&path) {
        Ok(b) => Tombstones::decode(&b).map_err(|msg| Error::Corrupt { path, msg }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::default()),
        Err(e) => Err(Error::Io {
            op: "reading",
            path,
            source: e,
        }),
    }
}

/// Removes what an interrupted admin action may have left in `dir`: a half-written
/// tombstones file and segments being rewritten (the originals are intact).
pub(super) fn remove_leftovers(dir: &Path) {
    let _ = fs::remove_file(dir.join(format!("{TOMBSTONES_FILE}.tmp")));
    let rw = dir.join(REWRITE_DIR);
    if rw.exists() {
        if let Err(e) = fs::remove_dir_all(&rw) {
            tracing::warn!(dir = %rw.display(), error = %e, "removing unfinished segment rewrites failed");
        }
    }
}

/// After a crash between renaming a rewritten segment into place and removing the original
/// under its older name, both share a sequence number: keeps the rewrite (its time range lies
/// within the original's, and the tombstones, still on disk, hide the same samples in both)
/// and removes the original.
pub(super) fn drop_superseded(segments: &mut Vec<SegmentInfo>) {
    segments.sort_by_key(|s| (s.seq, s.max_t.saturating_sub(s.min_t)));
    let mut keep: Vec<SegmentInfo> = Vec::with_capacity(segments.len());
    for s in segments.drain(..) {
        match keep.last() {
            Some(k) if k.seq == s.seq && !s.live => {
                tracing::warn!(file = %s.path.display(), kept = %k.path.display(), "segment superseded by its rewrite removed");
                let _ = fs::remove_file(&s.path);
            }
            _ => keep.push(s),
        }
    }
    *segments = keep;
}

/// Writes `t` as `dir/tombstones` atomically, or removes the file when `t` is empty.
fn store(dir: &Path, t: &Tombstones) -> Result<u64, Error> {
    let path = dir.join(TOMBSTONES_FILE);
    if t.is_empty() {
        match fs::remove_file(&path) {
            Ok(()) => segment::sync_dir(dir).map_err(io_err("syncing", dir))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &path)(e)),
        }
        return Ok(0);
    }
    let bytes = t.encode();
    write_atomic(dir, TOMBSTONES_FILE, &bytes)?;
    Ok(bytes.len() as u64)
}

/// `dir/name` replaced by `bytes`: temp file, fsync, rename, directory fsync.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let res =
        fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("writing", &tmp)(e));
    }
    fs::rename(&tmp, &path).map_err(io_err("renaming to", &path))?;
    segment::sync_dir(dir).map_err(io_err("syncing", dir))
}

/// Copies the first `len` bytes of `from` to `to` and fsyncs the copy.
fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<(), Error> {
    let mut src = fs::File::open(from).map_err(io_err("opening", from))?;
    let mut dst = fs::File::create(to).map_err(io_err("creating", to))?;
    let n = std::io::copy(&mut std::io::Read::take(&mut src, len), &mut dst)
        .map_err(io_err("copying to", to))?;
    if n != len {
        return Err(Error::Io {
            op: "copying from",
            path: from.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{n} bytes read, {len} expected"),
            ),
        });
    }
    dst.sync_all().map_err(io_err("syncing", to))
}

/// What `clean_tombstones` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Sealed segments rewritten without their deleted samples.
    pub rewritten: usize,
    /// Segments removed because every sample in them was deleted.
    pub removed: usize,
    /// Samples physically removed.
    pub samples_removed: u64,
    /// Segment bytes before minus after.
    pub bytes_freed: i64,
    /// Tombstone intervals left (those hiding whole series, or over damaged segments).
    pub tombstones_left: usize,
}

/// UTC `YYYYMMDDTHHMMSSZ` of Unix seconds `s` (Go's `20060102T150405Z0700` in UTC).
pub fn utc_stamp(s: i64) -> String {
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let (y, m, d) = crate::logging::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A random non-negative 63-bit number (Go's `rand.Int63`), from std's per-process random
/// hash keys.
fn random63() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() >> 1
}

impl Tsdb {
    /// Deletes the samples in `[start, end]` (ms, inclusive) of every series matching any of
    /// `selectors` (each a list of matchers that must all match; an empty list matches
    /// nothing, as in Prometheus). The deletion is durable when this returns: tombstones are
    /// written to disk; committed-but-unflushed samples it covers are dropped. Reads stop
    /// returning the data at once; `clean_tombstones` removes it from disk.
    pub fn delete_series(
        &self,
        selectors: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<(), Error> {
        let db = &*self.inner;
        let mut fs = lock(&db.flush);
        if db.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if start > end {
            return Ok(());
        }
        // Every id a tombstone names must be in the series log, or a restart could hand it to
        // another series.
        db.log_new_series(&mut fs)?;
        let (store_min, old) = {
            let sh = lock(&db.shared);
            (sh.min_t, sh.tombstones.clone())
        };
        let mut new = (*old).clone();
        let mut changed = false;
        {
            let ix = read(&db.index);
            let mut sids: Vec<u32> = selectors
                .iter()
                .filter(|ms| !ms.is_empty())
                .flat_map(|ms| ix.select(ms))
                .collect();
            sids.sort_unstable();
            sids.dedup();
            for sid in sids {
                // No sample at all: nothing to delete.
                let Some((first, last)) = ix.time_bounds(sid) else {
                    continue;
                };
                let first = if first == i64::MIN { store_min } else { first };
                let lo = if start <= first { i64::MIN } else { start };
                let hi = end.min(last);
                changed |= new.add(sid, lo, hi);
            }
        }
        if !changed {
            return Ok(());
        }
        let dir = &db.opts.path;
        store(dir, &new)?;
        let new = Arc::new(new);
        let mut sh = lock(&db.shared);
        sh.tombstones = new.clone();
        // The flusher is held off (we own `flush`), so the buffer may shrink under it.
        sh.unflushed.retain(|s| !new.covers(s.sid, s.t));
        tracing::info!(tombstones = new.len(), start, end, "series deleted");
        Ok(())
    }

    /// Removes deleted samples from disk: seals the live segment if it may hold some, rewrites
    /// every sealed segment that holds deleted samples (write new, fsync, rename; a segment
    /// left empty is removed), then drops the tombstones that no longer apply.
    pub fn clean_tombstones(&self) -> Result<CleanStats, Error> {
        let started = Instant::now();
        let db = &*self.inner;
        let mut fs = lock(&db.flush);
        let mut st = CleanStats::default();
        let tomb = lock(&db.shared).tombstones.clone();
        let Some((tmin, tmax)) = tomb.time_range() else {
            return Ok(st);
        };
        let dir = db.opts.path.clone();
        // 1. The live segment takes part once sealed.
        let live_overlaps = fs.live.as_ref().is_some_and(|w| {
            let i = w.info();
            i.min_t <= tmax && i.max_t >= tmin
        });
        if live_overlaps {
            let mut sealed = Vec::new();
            db.seal_live(&mut fs, &mut sealed);
            let mut sh = lock(&db.shared);
            for (seq, info) in sealed {
                sh.segments.retain(|s| s.seq != seq);
                if let Some(i) = info {
                    sh.segments.push(i);
                }
            }
            sh.segments.sort_by_key(|s| s.seq);
        }
        // 2. Sealed segments whose range meets a tombstone.
        let segs: Vec<SegmentInfo> = lock(&db.shared)
            .segments
            .iter()
            .filter(|s| !s.live && s.min_t <= tmax && s.max_t >= tmin)
            .cloned()
            .collect();
        let bound = read(&db.index).id_bound();
        // Time ranges of segments that could not be cleaned: tombstones over them stay.
        let mut unclean: Vec<(i64, i64)> = Vec::new();
        for s in segs {
            match clean_segment(db, &dir, &s, &tomb, bound) {
                Ok(Outcome::Untouched) => {}
                Ok(Outcome::Removed { samples }) => {
                    {
                        let mut sh = lock(&db.shared);
                        sh.segments.retain(|x| x.seq != s.seq);
                        db.cache.drop_segment(s.seq);
                    }
                    fs::remove_file(&s.path).map_err(io_err("removing", &s.path))?;
                    segment::sync_dir(&dir).map_err(io_err("syncing", &dir))?;
                    st.removed += 1;
                    st.samples_removed += samples;
                    st.bytes_freed += s.len as i64;
                    tracing::info!(file = %s.path.display(), "segment emptied by deletions removed");
                }
                Ok(Outcome::Rewritten { info, samples }) => {
                    let new_len = info.len;
                    let new_path = info.path.clone();
                    {
                        // Published before the old name goes: a reader holding the old info
                        // finds the new file by its sequence number.
                        let mut sh = lock(&db.shared);
                        sh.segments.retain(|x| x.seq != s.seq);
                        sh.segments.push(info);
                        sh.segments.sort_by_key(|x| x.seq);
                        // Under `shared`: readers of the old list cannot cache the old file.
                        db.cache.drop_segment(s.seq);
                    }
                    if new_path != s.path {
                        fs::remove_file(&s.path).map_err(io_err("removing", &s.path))?;
                    }
                    segment::sync_dir(&dir).map_err(io_err("syncing", &dir))?;
                    st.rewritten += 1;
                    st.samples_removed += samples;
                    st.bytes_freed += s.len as i64 - new_len as i64;
                    tracing::info!(file = %new_path.display(), old_bytes = s.len, new_bytes = new_len, samples_removed = samples, "segment rewritten without deleted samples");
                }
                Err(e) => {
                    tracing::warn!(file = %s.path.display(), error = %super::error_chain(&e), "segment not cleaned; its tombstones stay");
                    unclean.push((s.min_t, s.max_t));
                }
            }
        }
        // 3. Tombstones still needed.
        let mut keep = Tombstones::default();
        {
            let ix = read(&db.index);
            for (sid, a, b) in tomb.iter() {
                let over_unclean = unclean.iter().any(|&(x, y)| a <= y && b >= x);
                let last = ix.lasts.get(sid as usize).map_or(i64::MIN, |l| l.get().0);
                let hides = a == i64::MIN && (last == i64::MIN || b >= last);
                if over_unclean || hides {
                    keep.add(sid, a, b);
                }
            }
        }
        st.tombstones_left = keep.len();
        if keep != *tomb {
            store(&dir, &keep)?;
        }
        let keep = Arc::new(keep);
        {
            let mut sh = lock(&db.shared);
            // Samples committed since the deletion that it covers (series whose newest sample
            // was unknown) go too, before their tombstones do.
            sh.unflushed.retain(|s| !tomb.covers(s.sid, s.t));
            sh.tombstones = keep;
        }
        drop(fs);
        crate::selfmetrics::Registry::global()
            .histogram(
                "prometheus_tsdb_tombstone_cleanup_seconds",
                "The time taken to recompact blocks to remove tombstones.",
                &[],
                crate::selfmetrics::DEFAULT_BUCKETS,
            )
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            ?st,
            took_ms = started.elapsed().as_millis() as u64,
            "tombstones cleaned"
        );
        Ok(st)
    }

    /// Makes a snapshot under `<data>/snapshots/<YYYYMMDDTHHMMSSZ>-<16 hex>` and returns its
    /// name (Prometheus's naming). See [`Tsdb::snapshot_to`].
    pub fn snapshot(&self, skip_head: bool) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let name = format!("{}-{:016x}", utc_stamp(now), random63());
        let dir = self.inner.opts.path.join(SNAPSHOTS_DIR).join(&name);
        self.snapshot_to(&dir, skip_head)?;
        Ok(name)
    }

    /// Writes a snapshot into `dir` (created; it should be new or empty): hard links of the
    /// sealed segments (copies where linking fails), copies of the series log and the
    /// tombstones and, unless `skip_head`, a flush and then the live segment as of that
    /// flush, under its sealed name. The directory opens as a data directory by itself.
    pub fn snapshot_to(&self, dir: &Path, skip_head: bool) -> Result<(), Error> {
        let db = &*self.inner;
        if !skip_head {
            db.flush()?;
        }
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let fs_guard = lock(&db.flush);
        let (segs, tomb) = {
            let sh = lock(&db.shared);
            (sh.segments.clone(), sh.tombstones.clone())
        };
        for s in &segs {
            if s.live {
                if skip_head || s.min_t > s.max_t {
                    continue;
                }
                let to = dir.join(segment::sealed_name(s.seq, s.min_t, s.max_t));
                copy_prefix(&s.path, &to, s.len)?;
                continue;
            }
            let Some(name) = s.path.file_name() else {
                continue;
            };
            let to = dir.join(name);
            if fs::hard_link(&s.path, &to).is_err() {
                copy_prefix(&s.path, &to, s.len)?;
            }
        }
        let log = fs_guard.log.path().to_path_buf();
        copy_prefix(&log, &dir.join(serieslog::FILE_NAME), fs_guard.log.len())?;
        drop(fs_guard);
        if !tomb.is_empty() {
            store(dir, &tomb)?;
        }
        segment::sync_dir(dir).map_err(io_err("syncing", dir))?;
        if let Some(parent) = dir.parent() {
            segment::sync_dir(parent).map_err(io_err("syncing", parent))?;
        }
        tracing::info!(dir = %dir.display(), segments = segs.len(), skip_head, "snapshot made");
        Ok(())
    }

    /// Tombstone intervals in force (for status and tests).
    pub fn tombstone_count(&self) -> usize {
        lock(&self.inner.shared).tombstones.len()
    }
}

/// Appends `buf` as one record and empties it.
fn put(w: &mut SegmentWriter, buf: &mut Vec<RawSample>) -> std::io::Result<u64> {
    let n = w.append(buf)?;
    buf.clear();
    Ok(n)
}

enum Outcome {
    Untouched,
    Removed { samples: u64 },
    Rewritten { info: SegmentInfo, samples: u64 },
}

/// Rewrites one sealed segment without the samples `tomb` covers, into `dir/.rewrite/` and
/// then renamed into `dir` (the caller publishes it and removes the old name).
fn clean_segment(
    db: &Inner,
    dir: &Path,
    s: &SegmentInfo,
    tomb: &Tombstones,
    bound: u32,
) -> Result<Outcome, Error> {
    let mut bytes = fs::read(&s.path).map_err(io_err("reading", &s.path))?;
    bytes.truncate(s.len as usize);
    let corrupt = |msg: String| Error::Corrupt {
        path: s.path.clone(),
        msg,
    };
    let h = segment::parse_header(&bytes).map_err(corrupt)?;
    // Pass 1: count, so that a segment without deleted samples is not written again.
    let (mut dropped, mut kept) = (0u64, 0u64);
    segment::decode(&bytes, bound, i64::MIN, i64::MAX, |sid, t, _| {
        if tomb.covers(sid, t) {
            dropped += 1
        } else {
            kept += 1
        }
    })
    .map_err(corrupt)?;
    if dropped == 0 {
        return Ok(Outcome::Untouched);
    }
    if kept == 0 {
        return Ok(Outcome::Removed { samples: dropped });
    }
    // Pass 2: rewrite. Records are cut where the (series, time) order restarts, which is
    // where the original records began, so the new file keeps their layout.
    let rw = dir.join(REWRITE_DIR);
    fs::create_dir_all(&rw).map_err(io_err("creating", &rw))?;
    let _ = fs::remove_file(rw.join(format!("{:010}.live", s.seq)));
    let (mut w, mut written) =
        SegmentWriter::create_bulk(&rw, s.seq, h.partition).map_err(io_err("creating in", &rw))?;
    let mut buf: Vec<RawSample> = Vec::with_capacity(4096);
    let mut prev: Option<(u32, i64)> = None;
    let mut failed: Option<std::io::Error> = None;
    segment::decode(&bytes, bound, i64::MIN, i64::MAX, |sid, t, v| {
        if failed.is_some() || tomb.covers(sid, t) {
            return;
        }
        if prev.is_some_and(|p| (sid, t) <= p) || buf.len() >= REWRITE_CHUNK {
            match put(&mut w, &mut buf) {
                Ok(n) => written += n,
                Err(e) => failed = Some(e),
            }
        }
        prev = Some((sid, t));
        buf.push(RawSample { sid, t, v });
    })
    .map_err(corrupt)?;
    let tmp_live = rw.join(format!("{:010}.live", s.seq));
    if failed.is_none() && !buf.is_empty() {
        match put(&mut w, &mut buf) {
            Ok(n) => written += n,
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        drop(w);
        let _ = fs::remove_file(&tmp_live);
        return Err(io_err("writing", &tmp_live)(e));
    }
    let info = w
        .seal()
        .map_err(io_err("sealing", &tmp_live))?
        .ok_or_else(|| corrupt("rewrite came out empty".into()))?;
    inc(&db.stats.bytes_written, written);
    let name = segment::sealed_name(info.seq, info.min_t, info.max_t);
    let to: PathBuf = dir.join(name);
    fs::rename(&info.path, &to).map_err(io_err("renaming to", &to))?;
    segment::sync_dir(dir).map_err(io_err("syncing", dir))?;
    let _ = fs::remove_dir(&rw);
    Ok(Outcome::Rewritten {
        info: SegmentInfo { path: to, ..info },
        samples: dropped,
    })
}

#[cfg(test)]
mod tests;
