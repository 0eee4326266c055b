//! PromQL: the parser, a streaming evaluator and the query HTTP API logic, matching Prometheus
//! (<https://prometheus.io/docs/prometheus/latest/querying/basics/>) value for value.
//!
//! - `parse`: text -> [`Expr`], with Prometheus's precedence and `line:col` errors.
//! - `engine`: [`Engine`] evaluates over a step grid, pulling samples through
//!   [`crate::storage::Querier`] iterators (memory follows output size and window, not raw data).
//! - `binary`, `aggregate`, `functions`: operator, aggregation and function semantics.
//! - `api`: `/api/v1/query` and friends as plain functions, independent of the HTTP server.
//!
//! Behaviour follows Prometheus 3.x where it differs from 2.x (the conformance corpus is 3.x):
//! left-open range and lookback windows, numbers as durations, Kahan summation, the rate
//! extrapolation cap, NaN in stddev/stdvar, delayed `__name__` removal (names are dropped when the
//! result is final, so `label_replace(rate(x[5m]), "__name__", ...)` works). 2.x dashboards keep
//! working: `holt_winters` remains as an alias of `double_exponential_smoothing`.
//!
//! The parser is our own rather than the `promql-parser` crate: it gives Prometheus's error text
//! with `line:col` positions, bounds nesting depth (10,000 nested parentheses are an error, not a
//! stack overflow), parses the 3.x syntax the corpus uses (duration expressions, `fill()`
//! modifiers, quoted UTF-8 names) and adds no dependency.

mod aggregate;
pub mod api;
mod ast;
mod binary;
mod engine;
mod functions;
mod lexer;
mod memstore;
mod parse;
mod value;

pub use ast::{
    format_duration, AggOp, At, BinOp, Card, Expr, Ext, ValueType, VectorMatching, VectorSelector,
};
pub use engine::{Engine, EngineOptions, MAX_POINTS_PER_SERIES};
pub use functions::FuncDef;
pub use lexer::parse_duration;
pub use memstore::MemStore;
pub use parse::{parse, ParseError, MAX_DEPTH};
pub use value::{Error, QueryResult, Sample, Series, Value};
