//! The storage contracts: the only thing the scraper, the rule engine and the PromQL engine see of
//! the time-series database. `tsdb` implements them; tests may implement them with fakes.
//!
//! Writes go through an [`Appender`] (one batch per scrape or rule evaluation, visible atomically
//! on commit). Reads go through a [`Querier`] that streams series and samples through iterators so
//! the query engine never has to load a whole range into memory.

use crate::model::{Labels, Matcher};

/// Opaque, per-process handle to a series; `SeriesRef(0)` means "not known yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeriesRef(pub u64);

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A sample older than the newest one of its series (Prometheus: "out of order sample").
    #[error("out of order sample")]
    OutOfOrder,
    /// Same timestamp as the newest sample of its series, with a different value
    /// (Prometheus: "duplicate sample for timestamp").
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    /// Older than what the store still accepts (Prometheus: "out of bounds").
    #[error("out of bounds")]
    OutOfBounds,
    /// The global series limit is reached; new series are refused.
    #[error("series limit of {limit} reached, new series refused")]
    SeriesLimit {
        /// The configured limit.
        limit: usize,
    },
    /// Writing failed (disk full, read-only file system...); already-stored data is unaffected.
    #[error("write failed: {0}")]
    Write(String),
    /// A read failed (I/O or corrupt data found at query time).
    #[error("read failed: {0}")]
    Read(String),
    /// The store is closed (shutting down).
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
    /// Whether the error concerns only one sample (the batch can go on without it), as Prometheus
    /// treats out-of-order, duplicate and out-of-bounds samples during a scrape.
    pub fn is_sample_error(&self) -> bool {
        matches!(
            self,
            StorageError::OutOfOrder | StorageError::DuplicateTimestamp | StorageError::OutOfBounds
        )
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Something that hands out appenders.
pub trait Appendable: Send + Sync {
    /// A new batch.
    fn appender(&self) -> Box<dyn Appender>;
}

/// One batch (one scrape, one rule evaluation), owned by one task. Dropping it rolls back.
pub trait Appender: Send {
    /// Adds a sample. `r` is the ref returned for the same labels last time, or `SeriesRef(0)`.
    /// Returns the ref to pass next time, so a steady scrape skips the label lookup.
    /// Per-sample errors (see [`StorageError::is_sample_error`]) leave the batch usable.
    fn append(&mut self, r: SeriesRef, labels: &Labels, t_ms: i64, v: f64) -> Result<SeriesRef>;
    /// Makes the whole batch visible to queries at once.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Discards the batch.
    fn rollback(self: Box<Self>);
}

/// Hints for a select: the time range needed and, where known, the evaluation shape.
#[derive(Clone, Debug, Default)]
pub struct SelectHints {
    /// Inclusive lower bound in ms.
    pub start: i64,
    /// Inclusive upper bound in ms.
    pub end: i64,
    /// Query step in ms (0 for instant queries).
    pub step: i64,
    /// Range of a range selector in ms (0 for instant selectors).
    pub range: i64,
    /// Surrounding function name, if any.
    pub func: Option<String>,
}

/// Yields `(t_ms, value)` in increasing time order. `None` means exhausted *or* failed:
/// call [`SampleIter::take_err`] once, after the loop.
pub trait SampleIter: Iterator<Item = (i64, f64)> + Send {
    /// Advances to the first sample at or after `t_ms` and returns it; same end-of-stream contract
    /// as `next`. Seeking backwards is a no-op that returns the current sample.
    fn seek(&mut self, t_ms: i64) -> Option<(i64, f64)>;
    /// The error that ended iteration early, if any.
    fn take_err(&mut self) -> Result<()>;
    /// The start timestamp (ms) of the sample last returned by `next` or `seek`: when the counter
    /// or delta it belongs to began accumulating (Prometheus 3.x's experimental per-sample start
    /// time, OpenMetrics' `_created`). The query engine uses it in `rate`, `increase`, `irate`,
    /// `resets` and `start_timestamp()`. `None` when unknown; the default, for storages that do
    /// not record start timestamps.
    fn start_timestamp(&self) -> Option<i64> {
        None
    }
}

/// One selected series: its labels and an iterator over its samples in the selected range.
pub struct Series {
    /// The series' labels, including `__name__`.
    pub labels: Labels,
    /// Its samples (owned, so it can outlive the querier call that produced it).
    pub samples: Box<dyn SampleIter>,
}

/// Series in label order. Same error contract as [`SampleIter`].
pub trait SeriesSet: Iterator<Item = Series> + Send {
    /// The error that ended iteration early, if any.
    fn take_err(&mut self) -> Result<()>;
}

/// Something that hands out queriers over a time range.
pub trait Queryable: Send + Sync {
    /// A read view of `[mint, maxt]` (ms, inclusive); a consistent snapshot of committed data.
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>>;
}

/// A read view over a time range.
pub trait Querier: Send {
    /// Series matching all `matchers`, sorted by labels, with samples inside the hinted range.
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Box<dyn SeriesSet>;
    /// Sorted label names of series matching `matchers` (all series when empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;
    /// Sorted values of label `name` over series matching `matchers` (all series when empty).
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;
}

/// A `SampleIter` over an owned vector; handy for tests, fakes and small in-memory results.
pub struct VecSampleIter {
    samples: Vec<(i64, f64)>,
    pos: usize,
}

impl VecSampleIter {
    /// Wraps samples that are sorted by time.
    pub fn new(samples: Vec<(i64, f64)>) -> Self {
        VecSampleIter { samples, pos: 0 }
    }
}

impl Iterator for VecSampleIter {
    type Item = (i64, f64);
    fn next(&mut self) -> Option<(i64, f64)> {
        let s = self.samples.get(self.pos).copied();
        if s.is_some() {
            self.pos += 1;
        }
        s
    }
}

impl SampleIter for VecSampleIter {
    fn seek(&mut self, t_ms: i64) -> Option<(i64, f64)> {
        while let Some(&(t, _)) = self.samples.get(self.pos) {
            if t >= t_ms {
                break;
            }
            self.pos += 1;
        }
        self.samples.get(self.pos).copied()
    }
    fn take_err(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A `SeriesSet` over an owned vector of series; for tests, fakes and merged results.
pub struct VecSeriesSet {
    inner: std::vec::IntoIter<Series>,
}

impl VecSeriesSet {
    /// Wraps series that are already sorted by labels.
    pub fn new(series: Vec<Series>) -> Self {
        VecSeriesSet {
            inner: series.into_iter(),
        }
    }
}

impl Iterator for VecSeriesSet {
    type Item = Series;
    fn next(&mut self) -> Option<Series> {
        self.inner.next()
    }
}

impl SeriesSet for VecSeriesSet {
    fn take_err(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_iter_seek() {
        let mut it = VecSampleIter::new(vec![(1, 1.0), (5, 2.0), (9, 3.0)]);
        assert_eq!(it.seek(4), Some((5, 2.0)));
        assert_eq!(it.seek(0), Some((5, 2.0)));
        assert_eq!(it.next(), Some((5, 2.0)));
        assert_eq!(it.next(), Some((9, 3.0)));
        assert_eq!(it.seek(100), None);
        assert!(it.take_err().is_ok());
        // Storages without start timestamps inherit the default.
        assert_eq!(it.start_timestamp(), None);
    }
}
