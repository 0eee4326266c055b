//! Scale-out: remote write to a central store, `/federate` and remote read.
//!
//! - [`write`]: queues per `remote_write[]` entry that read from edgeprom's own storage, so the
//!   TSDB doubles as the offline buffer (no second copy on flash); only a checkpoint is written.
//! - [`federate`]: `GET /federate?match[]=...`, latest values in text format.
//! - [`read`]: `POST /api/v1/read`, remote read with a samples response.
//! - [`proto`]: the protobuf messages and snappy framing they share (hostile-input safe).
//!
//! The lead wires `/federate` and `/api/v1/read` into the web router and runs
//! [`write::RemoteWriter`] from `app`; see `README.md` beside this file for the fleet set-up.

pub mod federate;
pub mod proto;
pub mod read;
mod selector;
pub mod write;

pub use federate::federate;
pub use read::{remote_read, remote_read_with_labels};
pub use selector::{parse_selector, SelectorError};
pub use write::{MetadataSource, QueueStatus, RemoteWriter, WriterOptions};

/// A `Vec`-backed `Queryable` for unit tests of the handlers.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::model::{Labels, Matcher};
    use crate::storage::{
        Querier, Queryable, Result, SelectHints, Series, SeriesSet, VecSampleIter, VecSeriesSet,
    };

    /// Series with their samples, sorted by labels on construction.
    pub(crate) struct VecStore(pub Vec<(Labels, Vec<(i64, f64)>)>);

    struct VecQuerier {
        data: Vec<(Labels, Vec<(i64, f64)>)>,
        mint: i64,
        maxt: i64,
    }

    impl Queryable for VecStore {
        fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
            let mut data = self.0.clone();
            data.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Box::new(VecQuerier { data, mint, maxt }))
        }
    }

    impl Querier for VecQuerier {
        fn select(&self, _h: &SelectHints, ms: &[Matcher]) -> Box<dyn SeriesSet> {
            let v = self
                .data
                .iter()
                .filter(|(l, _)| ms.iter().all(|m| m.matches_labels(l)))
                .map(|(l, s)| Series {
                    labels: l.clone(),
                    samples: Box::new(VecSampleIter::new(
                        s.iter()
                            .copied()
                            .filter(|&(t, _)| t >= self.mint && t <= self.maxt)
                            .collect(),
                    )),
                })
                .collect();
            Box::new(VecSeriesSet::new(v))
        }
        fn label_names(&self, _ms: &[Matcher]) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn label_values(&self, _n: &str, _ms: &[Matcher]) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
    }
}
