//! The per-target scrape cache: raw series text -> (series ref, final labels), plus the
//! bookkeeping for staleness markers.
//!
//! Why: a steady target exposes the same series text every scrape. Looking the bytes up here
//! skips label parsing, target-label merging, metric relabeling and the storage's label lookup,
//! which is most of the per-sample work (Prometheus's `scrapeCache` does the same).
//!
//! Staleness follows Prometheus: a series that was appended without an explicit timestamp in the
//! previous append round and is absent from the current one gets a stale marker. A failed scrape
//! is an append round with no series, so every series of the target goes stale at once.

use std::collections::HashMap;

use xxhash_rust::xxh3::Xxh3Builder;

use crate::model::relabel::{self, RelabelConfig};
use crate::model::{Labels, LabelsBuilder, METRIC_NAME};
use crate::storage::SeriesRef;

/// Entries unseen for this many append rounds are dropped from the cache.
const EVICT_AFTER_ROUNDS: u64 = 10;

/// One cached series.
pub(crate) struct CacheEntry {
    /// Storage ref returned by the last append (0 until the first append).
    pub r: SeriesRef,
    /// Final labels (after target labels and metric relabeling).
    pub labels: Labels,
    /// The append round in which the series was last seen.
    pub seen: u64,
    /// The value of `seen` before this round marked it (restored if the round is aborted).
    pub prev_seen: u64,
    /// Whether the series was last seen without a timestamp (only those are staleness-tracked).
    pub track_stale: bool,
    /// metric_relabel_configs dropped it.
    pub dropped: bool,
}

/// See the module doc.
pub(crate) struct ScrapeCache {
    map: HashMap<Box<[u8]>, CacheEntry, Xxh3Builder>,
    /// Current append round (incremented by [`ScrapeCache::begin_round`]).
    round: u64,
    /// The last round that completed; its series are the "previous scrape" for staleness.
    prev: u64,
}

impl Default for ScrapeCache {
    fn default() -> Self {
        ScrapeCache {
            map: HashMap::with_hasher(Xxh3Builder::new()),
            round: 0,
            prev: 0,
        }
    }
}

impl ScrapeCache {
    /// Starts an append round.
    pub fn begin_round(&mut self) {
        self.round += 1;
    }

    /// The entry for `series`, marked as seen this round.
    #[inline]
    pub fn get_mut(&mut self, series: &[u8]) -> Option<&mut CacheEntry> {
        let round = self.round;
        let e = self.map.get_mut(series)?;
        if e.seen != round {
            e.prev_seen = e.seen;
            e.seen = round;
        }
        Some(e)
    }

    /// Inserts a new entry for `series`, seen this round.
    pub fn insert(&mut self, series: &[u8], labels: Option<Labels>) -> &mut CacheEntry {
        let e = CacheEntry {
            r: SeriesRef(0),
            dropped: labels.is_none(),
            labels: labels.unwrap_or_default(),
            seen: self.round,
            prev_seen: 0,
            track_stale: false,
        };
        self.map.entry(series.into()).or_insert(e)
    }

    /// Forgets `series` (the storage refused it: caching it would hold memory for every series
    /// of a flood that the global series limit keeps out).
    pub fn remove(&mut self, series: &[u8]) {
        self.map.remove(series);
    }

    /// Calls `f` for every tracked series of the last completed round not seen in this one.
    pub fn for_each_stale(&mut self, mut f: impl FnMut(&mut CacheEntry)) {
        let prev = self.prev;
        if prev == 0 || prev == self.round {
            return;
        }
        for e in self.map.values_mut() {
            if e.seen == prev && e.track_stale && !e.dropped {
                f(e);
            }
        }
    }

    /// Completes the round: its series become the "previous scrape".
    pub fn end_round(&mut self) {
        self.prev = self.round;
        self.evict();
    }

    /// Undoes this round's marks (its appends were rolled back); the previous scrape stays.
    pub fn abort_round(&mut self) {
        let round = self.round;
        for e in self.map.values_mut() {
            if e.seen == round {
                e.seen = e.prev_seen;
            }
        }
    }

    /// Drops entries not seen for a while.
    fn evict(&mut self) {
        if self.round % EVICT_AFTER_ROUNDS == 0 {
            let round = self.round;
            self.map.retain(|_, e| e.seen + EVICT_AFTER_ROUNDS >= round);
            // A target that once exposed far more series than now must not keep the table's
            // memory for good.
            if self.map.capacity() > 4 * self.map.len() + 1024 {
                self.map.shrink_to_fit();
            }
        }
    }
}

/// Merges a scraped sample's labels with the target's labels as Prometheus's
/// `mutateSampleLabels` does, then applies `metric_relabel_configs`. `None` means dropped.
pub(crate) fn mutate_sample_labels<'a>(
    name: &str,
    pairs: impl Iterator<Item = (&'a str, std::borrow::Cow<'a, str>)>,
    target: &Labels,
    honor_labels: bool,
    metric_relabel: &[RelabelConfig],
) -> Result<Option<Labels>, String> {
    let mut b = LabelsBuilder::new();
    b.set(METRIC_NAME, name);
    let mut count = 1usize;
    for (n, v) in pairs {
        if b.get(n).is_some() {
            return Err(format!("label name {n:?} is not unique: invalid sample"));
        }
        count += 1;
        b.set(n, v.into_owned());
    }
    let _ = count;
    if honor_labels {
        for l in target {
            if b.get(&l.name).is_none() {
                b.set(l.name.clone(), l.value.clone());
            }
        }
    } else {
        // Clashing scraped labels are renamed exported_<name> (repeatedly, if that name is
        // taken too), then the target's labels are set.
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for l in target {
            if let Some(v) = b.get(&l.name) {
                conflicts.push((l.name.clone(), v.to_string()));
            }
        }
        for (n, v) in conflicts {
            let mut new_name = format!("exported_{n}");
            while b.get(&new_name).is_some() || target.get(&new_name).is_some() {
                new_name = format!("exported_{new_name}");
            }
            b.set(new_name, v);
        }
        for l in target {
            b.set(l.name.clone(), l.value.clone());
        }
    }
    let lset = b.into_labels();
    if metric_relabel.is_empty() {
        return Ok(Some(lset));
    }
    Ok(relabel::process(&lset, metric_relabel))
}

/// Checks the scrape config's label limits as Prometheus's `verifyLabelLimits`.
pub(crate) fn verify_label_limits(
    lset: &Labels,
    label_limit: usize,
    name_len: usize,
    value_len: usize,
) -> Result<(), String> {
    let metric = lset.metric_name().unwrap_or("");
    let metric: String = metric.chars().take(50).collect();
    if label_limit > 0 && lset.len() > label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {label_limit})",
            lset.len()
        ));
    }
    if name_len == 0 && value_len == 0 {
        return Ok(());
    }
    for l in lset {
        let short: String = l.name.chars().take(50).collect();
        if name_len > 0 && l.name.chars().count() > name_len {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {short}, length: {}, limit: {name_len})",
                l.name.chars().count()
            ));
        }
        if value_len > 0 && l.value.chars().count() > value_len {
            let v: String = l.value.chars().take(50).collect();
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {short}, value: {v:?}, length: {}, limit: {value_len})",
                l.value.chars().count()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn pairs<'a>(p: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
        p.iter().map(|(a, b)| (*a, Cow::Borrowed(*b)))
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of (scraped labels, honor_labels, want)
    fn target_label_clashes() {
        let target = Labels::from_pairs([("job", "j"), ("instance", "i:1")]);
        // (scraped labels, honor_labels, want)
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                &[],
                false,
                vec![("__name__", "m"), ("instance", "i:1"), ("job", "j")],
            ),
            (
                &[("job", "x")],
                false,
                vec![
                    ("__name__", "m"),
                    ("exported_job", "x"),
                    ("instance", "i:1"),
                    ("job", "j"),
                ],
            ),
            (
                &[("job", "x"), ("exported_job", "y")],
                false,
                vec![
                    ("__name__", "m"),
                    ("exported_exported_job", "x"),
                    ("exported_job", "y"),
                    ("instance", "i:1"),
                    ("job", "j"),
                ],
            ),
            (
                &[("job", "x")],
                true,
                vec![("__name__", "m"), ("instance", "i:1"), ("job", "x")],
            ),
            (
                &[("job", "")],
                true,
                vec![("__name__", "m"), ("instance", "i:1"), ("job", "j")],
            ),
        ];
        for (scraped, honor, want) in cases {
            let got = mutate_sample_labels("m", pairs(scraped), &target, honor, &[])
                .expect("valid")
                .expect("kept");
            assert_eq!(
                got,
                Labels::from_pairs(want.clone()),
                "{scraped:?} honor={honor}"
            );
        }
    }

    #[test]
    fn duplicate_label_names_fail() {
        let err = mutate_sample_labels(
            "m",
            pairs(&[("a", "1"), ("a", "2")]),
            &Labels::empty(),
            false,
            &[],
        )
        .expect_err("dup");
        assert!(err.contains("not unique"), "{err}");
    }

    #[test]
    fn label_limits() {
        let l = Labels::from_pairs([("__name__", "m"), ("abcdef", "0123456789")]);
        let cases = [
            ((0, 0, 0), None),
            ((1, 0, 0), Some("label_limit exceeded (metric: m, number of labels: 2, limit: 1)")),
            ((2, 0, 0), None),
            ((0, 5, 0), Some("label_name_length_limit exceeded (metric: m, label name: __name__, length: 8, limit: 5)")),
            ((0, 0, 5), Some("label_value_length_limit exceeded (metric: m, label name: abcdef, value: \"0123456789\", length: 10, limit: 5)")),
        ];
        for ((a, b, c), want) in cases {
            assert_eq!(
                verify_label_limits(&l, a, b, c).err().as_deref(),
                want,
                "{a} {b} {c}"
            );
        }
    }

    #[test]
    fn stale_tracking_across_rounds() {
        let mut c = ScrapeCache::default();
        let count = |c: &mut ScrapeCache| {
            let mut n = 0;
            c.for_each_stale(|_| n += 1);
            n
        };
        c.begin_round();
        for k in [&b"a"[..], b"b", b"t"] {
            c.insert(k, Some(Labels::empty())).track_stale = k != b"t";
        }
        assert_eq!(count(&mut c), 0, "first scrape: nothing stale");
        c.end_round();

        c.begin_round();
        assert!(c.get_mut(b"a").is_some());
        assert_eq!(count(&mut c), 1, "only b vanished; t had a timestamp");
        c.end_round();

        c.begin_round(); // a scrape that fails half-way: a is marked, then rolled back
        assert!(c.get_mut(b"a").is_some());
        c.abort_round();
        c.begin_round(); // the empty round that follows a failure
        assert_eq!(count(&mut c), 1, "a goes stale");
        c.end_round();

        c.begin_round();
        assert_eq!(count(&mut c), 0, "no repeat markers");
        c.end_round();
    }
}
