//! The numbers of `/api/v1/status/tsdb`, in the JSON shape of Prometheus's `data` object.

use super::{lock, read, Tsdb};
use serde::Serialize;

/// `data` of `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStatus {
    /// Head statistics.
    pub head_stats: HeadStats,
    /// Series per metric name, largest first.
    pub series_count_by_metric_name: Vec<Stat>,
    /// Distinct values per label name, largest first.
    pub label_value_count_by_label_name: Vec<Stat>,
    /// Bytes of label values times series per label name, largest first.
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    /// Series per `name=value` pair, largest first.
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// `headStats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    /// Series known to the index.
    pub num_series: u64,
    /// Distinct label pairs.
    pub num_label_pairs: u64,
    /// Series with samples waiting for the next flush (the closest thing to head chunks).
    pub chunk_count: u64,
    /// Oldest stored timestamp (ms); as Prometheus, a huge value when empty.
    pub min_time: i64,
    /// Newest stored timestamp (ms); as Prometheus, a tiny value when empty.
    pub max_time: i64,
}

/// One `{name, value}` entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stat {
    /// Metric name, label name or `name=value`.
    pub name: String,
    /// The count.
    pub value: u64,
}

fn top(mut v: Vec<(String, u64)>, limit: usize) -> Vec<Stat> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v.into_iter()
        .map(|(name, value)| Stat { name, value })
        .collect()
}

pub(super) fn build(db: &Tsdb, limit: usize) -> TsdbStatus {
    let tomb = lock(&db.inner.shared).tombstones.clone();
    let (st, num_series) = {
        let ix = read(&db.inner.index);
        if tomb.hides_any() {
            // Series deleted through their newest sample (admin API) are not counted.
            let keep = |sid: u32| !super::admin::hidden(&tomb, &ix, sid);
            let st = ix.stats_where(Some(&keep));
            let n = ix.select(&[]).into_iter().filter(|&s| keep(s)).count();
            (st, n as u64)
        } else {
            (ix.stats(), ix.num_series() as u64)
        }
    };
    let (chunks, min_t, max_t) = {
        let sh = lock(&db.inner.shared);
        let mut sids: Vec<u32> = sh.unflushed.iter().map(|s| s.sid).collect();
        sids.sort_unstable();
        sids.dedup();
        (sids.len() as u64, sh.min_t, sh.max_t)
    };
    TsdbStatus {
        head_stats: HeadStats {
            num_series,
            num_label_pairs: st.num_label_pairs,
            chunk_count: chunks,
            min_time: min_t,
            max_time: max_t,
        },
        series_count_by_metric_name: top(st.metric_names, limit),
        label_value_count_by_label_name: top(st.values_by_name, limit),
        memory_in_bytes_by_label_name: top(st.bytes_by_name, limit),
        series_count_by_label_value_pair: top(st.pairs, limit),
    }
}
