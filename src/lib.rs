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
//! - `discovery`: file-based service discovery, shared by `scrape` and `notifier`.
//! - `node`: the node_exporter-compatible self-exporter (`/node/metrics`).
//! - `remote`: remote write (storage-backed queues), `/federate` and remote read.
//! - `tsdb`: the storage engine (flash-friendly, append-only, zstd-compressed).
//! - `rules`: rule files, recording and alerting rules, templates, `/api/v1/rules|alerts`.
//! - `notifier`: the Alertmanager client with its bounded queue, `/api/v1/alertmanagers`.
//!
//! Data flows one way: scrape -> storage (append); query engine -> storage (read);
//! rules -> query engine + notifier; web -> everything (read-only views).

pub mod app;
pub mod build_info;
pub mod check;
pub mod cli;
pub mod config;
pub(crate) mod discovery;
pub mod http_client;
pub mod logging;
pub mod model;
pub mod node;
pub mod notifier;
pub mod promql;
pub mod remote;
pub mod rules;
pub mod scrape;
pub mod sdnotify;
pub mod selfmetrics;
pub mod shutdown;
pub mod storage;
pub mod tsdb;
pub mod web;
