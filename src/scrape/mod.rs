//! The scraper: pulls metrics from targets over HTTP(S) with Prometheus's semantics and appends
//! them to storage.
//!
//! - [`textparse`]: the exposition-format parsers (text 0.0.4, OpenMetrics 1.0.0);
//! - `manager`: pools per job, reload and discovery reconciliation ([`ScrapeManager`]);
//! - `scrape_loop`: one loop per target (fetch, parse, label, append, report, staleness);
//! - `cache`: raw series text -> (ref, labels), so steady scrapes skip label work;
//! - `target`: target labels (`PopulateLabels`), URLs, status;
//! - file-based discovery lives in `crate::discovery` (shared with the notifier);
//! - `api`: the targets and metadata JSON APIs.

mod api;
mod cache;
mod manager;
mod metrics;
mod scrape_loop;
mod target;
pub mod textparse;

pub use manager::{Error, MetricMeta, ScrapeManager};
