//! edgeprom: a Prometheus-compatible monitoring server for small ARM boards.
//!
//! # Layout
//! - `model`: labels, matchers, samples; pure.
//! - `storage`: the contracts (`Appender`, `Querier`, iterators) between engines and the TSDB.
//! - `selfmetrics`: edgeprom's own metrics registry and exposition.
//! - `shutdown`: the shared shutdown signal.
//!
//! Data flows one way: scrape -> storage (append); query engine -> storage (read);
//! rules -> query engine + notifier; web -> everything (read-only views).

pub mod cli;
pub mod model;
pub mod selfmetrics;
pub mod shutdown;
pub mod storage;
pub mod web;
