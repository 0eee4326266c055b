//! edgeprom: a Prometheus-compatible monitoring server for small ARM boards.
//!
//! # Layout
//! - `model`: labels, matchers, samples; pure.
//! - `storage`: the contracts (`Appender`, `Querier`, iterators) between engines and the TSDB.
//! - `selfmetrics`: edgeprom's own metrics registry and exposition.
//! - `shutdown`: the shared shutdown signal.
//! - `config`: the Prometheus config schema, validated; `cli`: flags and subcommands.
//! - `app`: builds every component, runs reloads, signals and the shutdown order.
//! - `web`: the HTTP server, lifecycle and status endpoints, plug-in APIs.
//! - `check`: the offline `check` and `import` subcommands.
//! - `logging`, `sdnotify`, `build_info`: process plumbing.
//! - `node`: the node_exporter-compatible self-exporter (`/node/metrics`).
//! - `tsdb`: the storage engine (flash-friendly, append-only, zstd-compressed).
//!
//! Data flows one way: scrape -> storage (append); query engine -> storage (read);
//! rules -> query engine + notifier; web -> everything (read-only views).

pub mod app;
pub mod build_info;
pub mod check;
pub mod cli;
pub mod config;
pub mod http_client;
pub mod logging;
pub mod model;
pub mod node;
pub mod scrape;
pub mod sdnotify;
pub mod selfmetrics;
pub mod shutdown;
pub mod storage;
pub mod tsdb;
pub mod web;
