//! The in-memory series index: interned symbols, each series' labels as symbol ids, an inverted
//! index (postings: label name -> value -> sorted series ids) and each series' newest sample.
//!
//! Selecting series by matchers, listing label names and values all run here and never touch
//! sample data. Label strings are interned once, so a series costs a few words per label
//! instead of two heap strings.

use crate::model::{Label, Labels, MatchType, Matcher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The newest accepted sample of a series (for out-of-order and duplicate checks).
/// Written under the commit lock, read lock-free by appenders.
pub struct Last {
    /// Timestamp, `i64::MIN` when none.
    pub t: AtomicI64,
    /// Value bits.
    pub v: AtomicU64,
    /// Timestamp of the series' first sample when this process saw it (series created since
    /// open); `i64::MIN` when unknown (the series may have samples from any time on).
    pub first: AtomicI64,
}

impl Last {
    fn empty() -> Self {
        Last {
            t: AtomicI64::new(i64::MIN),
            v: AtomicU64::new(0),
            first: AtomicI64::new(i64::MIN),
        }
    }
    /// Current (t, value bits).
    #[inline]
    pub fn get(&self) -> (i64, u64) {
        (
            self.t.load(Ordering::Acquire),
            self.v.load(Ordering::Acquire),
        )
    }
    /// Stores a newer sample.
    #[inline]
    pub fn set(&self, t: i64, v: u64) {
        self.v.store(v, Ordering::Release);
        self.t.store(t, Ordering::Release);
    }
}

/// A series' labels as (name symbol, value symbol) pairs.
type SymPairs = Box<[(u32, u32)]>;

/// Symbols, series and postings. Guarded by one `RwLock` in the store: written only when a
/// series is created, read by every append (for `lasts`) and every select.
#[derive(Default)]
pub struct Index {
    sym_ids: HashMap<Arc<str>, u32>,
    syms: Vec<Arc<str>>,
    /// sid -> (name sym, value sym) pairs sorted by name; `None` for ids lost to corruption.
    series: Vec<Option<SymPairs>>,
    /// name sym -> value sym -> ascending sids.
    postings: HashMap<u32, HashMap<u32, Vec<u32>>>,
    /// sid -> newest sample.
    pub lasts: Vec<Last>,
    live: usize,
    /// Series ids below this were loaded at open: their first sample time is unknown.
    pub loaded_bound: u32,
    /// For loaded series whose newest sample was not recovered at open (it is older than the
    /// segments open decodes): an upper bound of that sample's time.
    pub unrecovered_last: i64,
}

impl Index {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.sym_ids.get(s) {
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = self.syms.len() as u32;
        self.syms.push(a.clone());
        self.sym_ids.insert(a, id);
        id
    }

    /// Number of series ids handed out (the exclusive upper bound of sids).
    pub fn id_bound(&self) -> u32 {
        self.series.len() as u32
    }

    /// A time range that holds every sample of `sid` (bounds may be loose: see `Last::first`
    /// and `unrecovered_last`); `None` for a series without any sample.
    pub fn time_bounds(&self, sid: u32) -> Option<(i64, i64)> {
        let l = self.lasts.get(sid as usize)?;
        let last = l.t.load(Ordering::Acquire);
        let first = l.first.load(Ordering::Acquire);
        if last != i64::MIN {
            return Some((first, last));
        }
        (sid < self.loaded_bound).then_some((i64::MIN, self.unrecovered_last))
    }

    /// Number of series with labels.
    pub fn num_series(&self) -> usize {
        self.live
    }

    /// Makes `id_bound()` at least `bound`, leaving the new ids without labels: ids that
    /// segments use but whose labels were lost to a damaged series log. They are never handed
    /// to a new series, so lost samples cannot reappear under another series' labels.
    pub fn reserve(&mut self, bound: u32) {
        while self.series.len() < bound as usize {
            self.series.push(None);
            self.lasts.push(Last::empty());
        }
    }

    /// Adds a series under `sid` (which must not be in use), growing the tables as needed.
    pub fn insert(&mut self, sid: u32, labels: &Labels) {
        let pairs: Box<[(u32, u32)]> = labels
            .iter()
            .map(|l| (self.intern(&l.name), self.intern(&l.value)))
            .collect();
        let i = sid as usize;
        while self.series.len() <= i {
            self.series.push(None);
            self.lasts.push(Last::empty());
        }
        if self.series[i].is_some() {
            return;
        }
        for &(n, v) in pairs.iter() {
            let list = self.postings.entry(n).or_default().entry(v).or_default();
            match list.last() {
                Some(&l) if l > sid => {
                    let at = list.partition_point(|&x| x < sid);
                    list.insert(at, sid);
                }
                _ => list.push(sid),
            }
        }
        self.series[i] = Some(pairs);
        self.live += 1;
    }

    /// Whether `sid` has exactly these labels.
    pub fn labels_eq(&self, sid: u32, labels: &Labels) -> bool {
        let Some(Some(p)) = self.series.get(sid as usize) else {
            return false;
        };
        p.len() == labels.len()
            && p.iter().zip(labels.iter()).all(|(&(n, v), l)| {
                *self.syms[n as usize] == *l.name && *self.syms[v as usize] == *l.value
            })
    }

    /// The labels of `sid`.
    pub fn labels(&self, sid: u32) -> Labels {
        let Some(Some(p)) = self.series.get(sid as usize) else {
            return Labels::empty();
        };
        Labels::from_sorted_unchecked(
            p.iter()
                .map(|&(n, v)| Label {
                    name: self.syms[n as usize].to_string(),
                    value: self.syms[v as usize].to_string(),
                })
                .collect(),
        )
    }

    /// The labels of `sid` as owned pairs (for the series log).
    pub fn label_pairs(&self, sid: u32) -> Vec<(String, String)> {
        self.labels(sid)
            .into_vec()
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect()
    }

    fn all(&self) -> Vec<u32> {
        (0..self.series.len() as u32)
            .filter(|&s| self.series[s as usize].is_some())
            .collect()
    }

    /// Union of the postings of every value of `name` for which `pred` holds.
    fn union_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> Vec<u32> {
        let Some(vals) = self.sym_ids.get(name).and_then(|n| self.postings.get(n)) else {
            return Vec::new();
        };
        let mut lists: Vec<&Vec<u32>> = vals
            .iter()
            .filter(|(v, _)| pred(&self.syms[**v as usize]))
            .map(|(_, l)| l)
            .collect();
        match lists.len() {
            0 => Vec::new(),
            1 => lists[0].clone(),
            _ => {
                lists.sort_by_key(|l| l.len());
                let mut out: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }

    fn postings_for(&self, m: &Matcher) -> Vec<u32> {
        if m.kind == MatchType::Equal && !m.value.is_empty() {
            return self
                .sym_ids
                .get(m.name.as_str())
                .zip(self.sym_ids.get(m.value.as_str()))
                .and_then(|(n, v)| self.postings.get(n)?.get(v))
                .cloned()
                .unwrap_or_default();
        }
        if !m.matches_empty() {
            return self.union_where(&m.name, |v| m.matches(v));
        }
        // Matches series without the label too: everything minus the non-matching values.
        let not = self.union_where(&m.name, |v| !m.matches(v));
        let all = self.all();
        difference(&all, &not)
    }

    /// Sorted sids of series matching every matcher (all series when empty).
    pub fn select(&self, ms: &[Matcher]) -> Vec<u32> {
        // Narrow with the most selective (non-empty-matching) matchers first.
        let mut order: Vec<&Matcher> = ms.iter().collect();
        order.sort_by_key(|m| (m.matches_empty(), m.kind != MatchType::Equal));
        let mut acc: Option<Vec<u32>> = None;
        for m in order {
            if let Some(a) = &acc {
                if a.is_empty() {
                    break;
                }
                if m.matches_empty() {
                    // Filter the few remaining series directly instead of building big lists.
                    let keep: Vec<u32> = a
                        .iter()
                        .copied()
                        .filter(|&s| m.matches(self.value_of(s, &m.name).unwrap_or("")))
                        .collect();
                    acc = Some(keep);
                    continue;
                }
            }
            let p = self.postings_for(m);
            acc = Some(match acc {
                None => p,
                Some(a) => intersect(&a, &p),
            });
        }
        acc.unwrap_or_else(|| self.all())
    }

    fn value_of(&self, sid: u32, name: &str) -> Option<&str> {
        let n = *self.sym_ids.get(name)?;
        let p = self.series.get(sid as usize)?.as_ref()?;
        p.iter()
            .find(|&&(k, _)| k == n)
            .map(|&(_, v)| &*self.syms[v as usize])
    }

    /// Sorted label names over `sids` (every series: [`Self::label_names_where`]).
    pub fn label_names(&self, sids: &[u32]) -> Vec<String> {
        let mut names: Vec<u32> = sids
            .iter()
            .filter_map(|&sid| self.series.get(sid as usize)?.as_ref())
            .flat_map(|p| p.iter().map(|&(n, _)| n))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut out: Vec<String> = names
            .iter()
            .map(|&n| self.syms[n as usize].to_string())
            .collect();
        out.sort();
        out
    }

    /// Sorted values of `name` over `sids` (every series: [`Self::label_values_where`]).
    pub fn label_values(&self, name: &str, sids: &[u32]) -> Vec<String> {
        let Some(&n) = self.sym_ids.get(name) else {
            return Vec::new();
        };
        let mut vals: Vec<u32> = sids
            .iter()
            .filter_map(|&sid| self.series.get(sid as usize)?.as_ref())
            .filter_map(|p| p.iter().find(|&&(k, _)| k == n).map(|&(_, v)| v))
            .collect();
        vals.sort_unstable();
        vals.dedup();
        let mut out: Vec<String> = vals
            .iter()
            .map(|&v| self.syms[v as usize].to_string())
            .collect();
        out.sort();
        out
    }

    /// Sorted label names having at least one series that `keep` accepts: the postings are
    /// walked, stopping at the first kept series of each value, so a label query without
    /// matchers but with a time range touches few series.
    pub fn label_names_where(&self, keep: &dyn Fn(u32) -> bool) -> Vec<String> {
        let mut out: Vec<String> = self
            .postings
            .iter()
            .filter(|(_, vals)| vals.values().any(|l| l.iter().any(|&s| keep(s))))
            .map(|(n, _)| self.syms[*n as usize].to_string())
            .collect();
        out.sort();
        out
    }

    /// Sorted values of `name` having at least one series that `keep` accepts (see
    /// `label_names_where`).
    pub fn label_values_where(&self, name: &str, keep: &dyn Fn(u32) -> bool) -> Vec<String> {
        let Some(m) = self.sym_ids.get(name).and_then(|n| self.postings.get(n)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = m
            .iter()
            .filter(|(_, l)| l.iter().any(|&s| keep(s)))
            .map(|(v, _)| self.syms[*v as usize].to_string())
            .collect();
        out.sort();
        out
    }

    /// Statistics in the shape of Prometheus's postings stats: per label name, the number of
    /// distinct values and the bytes of values times series; per pair and per metric name,
    /// the series count. Returns (name -> (values, bytes)), pairs, metric names, label pairs.
    pub fn stats(&self) -> IndexStats {
        self.stats_where(None)
    }

    /// [`Index::stats`] over the series for which `keep` holds (all when `None`).
    pub fn stats_where(&self, keep: Option<&dyn Fn(u32) -> bool>) -> IndexStats {
        let mut s = IndexStats::default();
        let metric = self.sym_ids.get(crate::model::METRIC_NAME).copied();
        for (&n, vals) in &self.postings {
            let name = &self.syms[n as usize];
            let mut bytes = 0u64;
            let mut distinct = 0u64;
            for (&v, l) in vals {
                let count = match keep {
                    None => l.len() as u64,
                    Some(k) => l.iter().filter(|&&sid| k(sid)).count() as u64,
                };
                if count == 0 {
                    continue;
                }
                distinct += 1;
                let value = &self.syms[v as usize];
                bytes += value.len() as u64 * count;
                s.pairs.push((format!("{name}={value}"), count));
                if Some(n) == metric {
                    s.metric_names.push((value.to_string(), count));
                }
            }
            if distinct == 0 && keep.is_some() {
                continue;
            }
            s.num_label_pairs += distinct;
            s.values_by_name.push((name.to_string(), distinct));
            s.bytes_by_name.push((name.to_string(), bytes));
        }
        s
    }

    /// Approximate heap bytes held (for the memory-per-series figure).
    pub fn approx_bytes(&self) -> usize {
        let syms: usize = self.syms.iter().map(|s| s.len() + 16 + 8 + 24).sum();
        let series: usize = self
            .series
            .iter()
            .map(|p| 16 + p.as_ref().map_or(0, |p| p.len() * 8))
            .sum();
        let postings: usize = self
            .postings
            .values()
            .map(|m| m.values().map(|l| l.capacity() * 4 + 40).sum::<usize>())
            .sum();
        syms + series + postings + self.lasts.len() * 16
    }
}

/// Counts for the status page.
#[derive(Default)]
pub struct IndexStats {
    /// (name, distinct values)
    pub values_by_name: Vec<(String, u64)>,
    /// (name, value bytes x series)
    pub bytes_by_name: Vec<(String, u64)>,
    /// ("name=value", series)
    pub pairs: Vec<(String, u64)>,
    /// (metric name, series)
    pub metric_names: Vec<(String, u64)>,
    /// Distinct label pairs.
    pub num_label_pairs: u64,
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix() -> Index {
        let mut ix = Index::default();
        let rows = [
            [("__name__", "up"), ("job", "node"), ("instance", "a")],
            [("__name__", "up"), ("job", "node"), ("instance", "b")],
            [("__name__", "up"), ("job", "api"), ("instance", "a")],
            [("__name__", "temp"), ("job", "node"), ("instance", "a")],
        ];
        for (i, r) in rows.iter().enumerate() {
            ix.insert(i as u32, &Labels::from_pairs(r.iter().copied()));
        }
        ix.insert(
            5,
            &Labels::from_pairs([("__name__", "temp"), ("room", "x")]),
        );
        ix
    }

    fn m(k: MatchType, n: &str, v: &str) -> Matcher {
        Matcher::new(k, n, v).expect("valid matcher")
    }

    #[test]
    fn select_table() {
        use MatchType::*;
        let ix = ix();
        let cases: Vec<(Vec<Matcher>, Vec<u32>)> = vec![
            (vec![m(Equal, "__name__", "up")], vec![0, 1, 2]),
            (
                vec![m(Equal, "__name__", "up"), m(Equal, "job", "node")],
                vec![0, 1],
            ),
            (
                vec![m(Equal, "__name__", "up"), m(NotEqual, "job", "node")],
                vec![2],
            ),
            (
                vec![m(Regex, "__name__", "up|temp"), m(Equal, "instance", "a")],
                vec![0, 2, 3],
            ),
            (
                vec![m(Equal, "__name__", "temp"), m(Equal, "job", "")],
                vec![5],
            ),
            (
                vec![m(Equal, "__name__", "temp"), m(NotRegex, "room", "x")],
                vec![3],
            ),
            (vec![m(Regex, "job", ".+")], vec![0, 1, 2, 3]),
            (vec![m(Equal, "job", "")], vec![5]),
            (vec![m(Equal, "__name__", "nope")], vec![]),
            (vec![], vec![0, 1, 2, 3, 5]),
        ];
        for (ms, want) in cases {
            assert_eq!(ix.select(&ms), want, "{ms:?}");
        }
    }

    #[test]
    fn names_values_and_labels() {
        let ix = ix();
        assert_eq!(
            ix.label_names_where(&|_| true),
            ["__name__", "instance", "job", "room"]
        );
        assert_eq!(ix.label_names(&[5]), ["__name__", "room"]);
        assert_eq!(ix.label_values_where("job", &|_| true), ["api", "node"]);
        assert_eq!(ix.label_values("instance", &[1, 3]), ["a", "b"]);
        let l = ix.labels(2);
        assert_eq!(l.get("job"), Some("api"));
        assert!(ix.labels_eq(2, &l));
        assert!(!ix.labels_eq(1, &l));
        assert_eq!(ix.num_series(), 5);
        assert_eq!(ix.id_bound(), 6);
    }
}
