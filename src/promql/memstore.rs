//! A small in-memory [`Queryable`] for tests of the engine, the API and the rule engine: series in
//! a sorted map, read through the same iterator contract as the real TSDB.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::model::{Labels, Matcher};
use crate::storage::{
    Querier, Queryable, Result, SelectHints, Series, SeriesSet, VecSampleIter, VecSeriesSet,
};

type Data = Arc<RwLock<BTreeMap<Labels, Vec<(i64, f64)>>>>;

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
        let Ok(mut d) = self.data.write() else { return };
        let s = d.entry(labels.clone()).or_default();
        match s.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => s[i].1 = v,
            Err(i) => s.insert(i, (t, v)),
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
    fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
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
                let pts: Vec<(i64, f64)> =
                    s.into_iter().filter(|p| p.0 >= lo && p.0 <= hi).collect();
                (!pts.is_empty()).then(|| Series {
                    labels,
                    samples: Box::new(VecSampleIter::new(pts)),
                })
            })
            .collect();
        Box::new(VecSeriesSet::new(series))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .into_iter()
            .filter(|(_, s)| s.iter().any(|p| p.0 >= self.mint && p.0 <= self.maxt))
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
            .filter(|(_, s)| s.iter().any(|p| p.0 >= self.mint && p.0 <= self.maxt))
            .filter_map(|(l, _)| l.get(name).map(|v| v.to_string()))
            .collect();
        vals.sort();
        vals.dedup();
        Ok(vals)
    }
}
