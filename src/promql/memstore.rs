//! A small in-memory [`Queryable`] for tests of the engine, the API and the rule engine: series in
//! a sorted map, read through the same iterator contract as the real TSDB. Unlike the TSDB it can
//! keep a start timestamp per sample ([`MemStore::add_with_start`]), which the conformance scripts'
//! `@st` lines need.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::model::{Labels, Matcher};
use crate::storage::{
    Querier, Queryable, Result, SampleIter, SelectHints, Series, SeriesSet, VecSeriesSet,
};

/// One series: samples sorted by time and, parallel to them, start timestamps (`None` = unknown).
/// `starts` stays empty until the series gets its first start timestamp.
#[derive(Clone, Default)]
struct Stored {
    samples: Vec<(i64, f64)>,
    starts: Vec<Option<i64>>,
}

type Data = Arc<RwLock<BTreeMap<Labels, Stored>>>;

/// Series kept in memory, sorted by labels.
#[derive(Clone, Default)]
pub struct MemStore {
    data: Data,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Adds a sample; samples of a series are kept sorted (a sample at an existing time replaces it).
    pub fn add(&self, labels: &Labels, t: i64, v: f64) {
        self.add_with_start(labels, t, v, None);
    }

    /// Adds a sample with the start timestamp `st` (ms) of the counter or delta it belongs to
    /// (Prometheus 3.x per-sample start time); `None` when unknown.
    pub fn add_with_start(&self, labels: &Labels, t: i64, v: f64, st: Option<i64>) {
        let Ok(mut d) = self.data.write() else { return };
        let s = d.entry(labels.clone()).or_default();
        if st.is_some() && s.starts.len() < s.samples.len() {
            s.starts.resize(s.samples.len(), None);
        }
        let track = !s.starts.is_empty() || st.is_some();
        match s.samples.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => {
                s.samples[i].1 = v;
                if track {
                    s.starts[i] = st;
                }
            }
            Err(i) => {
                s.samples.insert(i, (t, v));
                if track {
                    s.starts.insert(i, st);
                }
            }
        }
    }

    /// Removes a series entirely.
    pub fn remove(&self, labels: &Labels) {
        if let Ok(mut d) = self.data.write() {
            d.remove(labels);
        }
    }

    /// Removes everything.
    pub fn clear(&self) {
        if let Ok(mut d) = self.data.write() {
            d.clear();
        }
    }
}

struct MemQuerier {
    data: Data,
    mint: i64,
    maxt: i64,
}

impl Queryable for MemStore {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        Ok(Box::new(MemQuerier {
            data: self.data.clone(),
            mint,
            maxt,
        }))
    }
}

impl MemQuerier {
    fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Stored)> {
        let Ok(d) = self.data.read() else {
            return vec![];
        };
        d.iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.matches_labels(l)))
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }
}

impl Querier for MemQuerier {
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Box<dyn SeriesSet> {
        let (lo, hi) = (hints.start.max(self.mint), hints.end.min(self.maxt));
        let series = self
            .matching(matchers)
            .into_iter()
            .filter_map(|(labels, s)| {
                let from = s.samples.partition_point(|p| p.0 < lo);
                let to = s.samples.partition_point(|p| p.0 <= hi).max(from);
                let starts = if s.starts.is_empty() {
                    Vec::new()
                } else {
                    s.starts[from..to].to_vec()
                };
                (to > from).then(|| Series {
                    labels,
                    samples: Box::new(MemIter {
                        samples: s.samples[from..to].to_vec(),
                        starts,
                        pos: 0,
                        cur: None,
                    }),
                })
            })
            .collect();
        Box::new(VecSeriesSet::new(series))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .into_iter()
            .filter(|(_, s)| {
                s.samples
                    .iter()
                    .any(|p| p.0 >= self.mint && p.0 <= self.maxt)
            })
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut vals: Vec<String> = self
            .matching(matchers)
            .into_iter()
            .filter(|(_, s)| {
                s.samples
                    .iter()
                    .any(|p| p.0 >= self.mint && p.0 <= self.maxt)
            })
            .filter_map(|(l, _)| l.get(name).map(|v| v.to_string()))
            .collect();
        vals.sort();
        vals.dedup();
        Ok(vals)
    }
}

/// Iterates one series' samples and reports each one's start timestamp.
struct MemIter {
    samples: Vec<(i64, f64)>,
    /// Empty when the series has no start timestamps, else parallel to `samples`.
    starts: Vec<Option<i64>>,
    pos: usize,
    /// Index of the sample last returned by `next` or `seek`.
    cur: Option<usize>,
}

impl Iterator for MemIter {
    type Item = (i64, f64);
    fn next(&mut self) -> Option<(i64, f64)> {
        let s = self.samples.get(self.pos).copied();
        if s.is_some() {
            self.cur = Some(self.pos);
            self.pos += 1;
        }
        s
    }
}

impl SampleIter for MemIter {
    fn seek(&mut self, t_ms: i64) -> Option<(i64, f64)> {
        if self.samples.get(self.pos).is_some_and(|p| p.0 < t_ms) {
            self.pos += self.samples[self.pos..].partition_point(|p| p.0 < t_ms);
        }
        let s = self.samples.get(self.pos).copied();
        if s.is_some() {
            self.cur = Some(self.pos);
        }
        s
    }
    fn take_err(&mut self) -> Result<()> {
        Ok(())
    }
    fn start_timestamp(&self) -> Option<i64> {
        self.starts.get(self.cur?).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_timestamps_follow_the_iterator() {
        let s = MemStore::new();
        let l = Labels::from_pairs([("__name__", "c_total".to_string())]);
        s.add(&l, 1_000, 1.0);
        s.add_with_start(&l, 2_000, 2.0, Some(500));
        s.add(&l, 3_000, 3.0);
        let q = s.querier(0, 10_000).expect("querier");
        let hints = SelectHints {
            start: 0,
            end: 10_000,
            ..Default::default()
        };
        let mut set = q.select(&hints, &[]);
        let mut series = set.next().expect("one series");
        let it = &mut series.samples;
        // (call, expected sample, expected start timestamp)
        type Case = (&'static str, Option<(i64, f64)>, Option<i64>);
        let cases: [Case; 5] = [
            ("next", Some((1_000, 1.0)), None),
            ("next", Some((2_000, 2.0)), Some(500)),
            ("seek", Some((3_000, 3.0)), None),
            ("next", Some((3_000, 3.0)), None),
            ("next", None, None),
        ];
        for (call, want, st) in cases {
            let got = if call == "next" {
                it.next()
            } else {
                it.seek(2_500)
            };
            assert_eq!(got, want, "{call}");
            assert_eq!(it.start_timestamp(), st, "{call} -> {want:?}");
        }
    }
}
