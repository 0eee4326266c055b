//! PromQL: the parser, a streaming evaluator and the query HTTP API logic, matching Prometheus
//! (<https://prometheus.io/docs/prometheus/latest/querying/basics/>) value for value.
//!
//! - `parse`: text -> [`Expr`], with Prometheus's precedence and `line:col` errors.
//! - `engine`: [`Engine`] evaluates over a step grid, pulling samples through
//!   [`crate::storage::Querier`] iterators (memory follows output size and window, not raw data).
//! - `binary`, `aggregate`, `functions`: operator, aggregation and function semantics.
//! - `api`: `/api/v1/query` and friends as plain functions, independent of the HTTP server.

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
    format_duration, AggOp, At, BinOp, Card, Expr, ValueType, VectorMatching, VectorSelector,
};
pub use engine::{Engine, EngineOptions, MAX_POINTS_PER_SERIES};
pub use functions::FuncDef;
pub use lexer::parse_duration;
pub use memstore::MemStore;
pub use parse::{parse, ParseError, MAX_DEPTH};
pub use value::{Error, QueryResult, Sample, Series, Value};
