//! Query results: scalar, string, instant vector and matrix, as Prometheus's API returns them,
//! plus the error type of the engine.

use crate::model::Labels;

use super::parse::ParseError;

/// One sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: Labels,
    /// Timestamp in ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: Labels,
    /// `(t_ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar {
        /// Timestamp in ms.
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Timestamp in ms.
        t: i64,
        /// Value.
        s: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (also every range query's result).
    Matrix(Vec<Series>),
}

impl Value {
    /// The `resultType` name in the API.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }

    /// The instant vector as `(labels, value)` pairs, for the rule engine; a scalar becomes one
    /// pair with empty labels. `None` for strings and matrices.
    pub fn into_samples(self) -> Option<Vec<(Labels, f64)>> {
        match self {
            Value::Vector(v) => Some(v.into_iter().map(|s| (s.metric, s.v)).collect()),
            Value::Scalar { v, .. } => Some(vec![(Labels::empty(), v)]),
            _ => None,
        }
    }
}

/// A successful result with the annotations Prometheus would attach.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// `PromQL warning: ...` annotations.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` annotations.
    pub infos: Vec<String>,
    /// Queryable samples touched, counted as Prometheus counts them (`totalQueryableSamples`).
    pub samples: usize,
    /// Most samples held in memory at once (`peakSamples` in `stats`).
    pub peak_samples: usize,
    /// `(step time ms, queryable samples)` per step when the engine has per-step statistics on
    /// (`totalQueryableSamplesPerStep`); empty otherwise. `samples` is their sum.
    pub samples_per_step: Vec<(i64, usize)>,
    /// Where the time went (`stats.timings`).
    pub timings: QueryTimings,
}

/// Query timings as Prometheus reports them with `stats` (`util/stats`): queue wait, preparation
/// (parse-time work and opening the querier), inner evaluation and result sorting; `eval_total`
/// spans the last three and `exec_total` everything including the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryTimings {
    /// `evalTotalTime`.
    pub eval_total: std::time::Duration,
    /// `resultSortTime`.
    pub result_sort: std::time::Duration,
    /// `queryPreparationTime`.
    pub query_preparation: std::time::Duration,
    /// `innerEvalTime`.
    pub inner_eval: std::time::Duration,
    /// `execQueueTime`.
    pub exec_queue: std::time::Duration,
    /// `execTotalTime`.
    pub exec_total: std::time::Duration,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The expression does not parse or type-check.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// Evaluation failed (bad argument, many-to-many matching, ...).
    #[error("{0}")]
    Execution(String),
    /// The query loaded more samples than `max_samples`.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran past its timeout.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query was cancelled.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Storage failed.
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
}

impl Error {
    /// The API's `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Parse(_) => "bad_data",
            Error::Execution(_) | Error::TooManySamples => "execution",
            Error::Timeout(_) => "timeout",
            Error::Canceled(_) => "canceled",
            Error::Storage(_) => "internal",
        }
    }
}

pub(crate) fn exec(msg: impl Into<String>) -> Error {
    Error::Execution(msg.into())
}
