//! Recording and alerting rules, evaluated as Prometheus evaluates them.
//!
//! Rules are handed functions, not an engine (as Prometheus's `rules` package is): a [`QueryFn`]
//! evaluates instant queries, a [`ParseFn`] validates expressions, a [`NotifyFn`] hands alerts to
//! the notifier, and an [`Appendable`](crate::storage::Appendable) stores recorded series,
//! `ALERTS` and `ALERTS_FOR_STATE`. `app` builds the closures, so this module imports neither the
//! PromQL engine nor the HTTP client.
//!
//! - [`file`]: the rule-file format, validation, and `check rules` output.
//! - [`template`]: the Go text/template subset used in labels and annotations.
//! - `alerting`: the inactive -> pending -> firing state machine of one alerting rule.
//! - `group`: one group's evaluation, staleness and metrics.
//! - [`manager`]: loading, reloading, scheduling, and the `/api/v1/rules` and `/api/v1/alerts` JSON.

use std::sync::Arc;

use crate::model::Labels;

mod alerting;
mod api;
pub mod file;
mod group;
pub mod manager;
pub mod template;

pub use crate::notifier::Alert;
pub use file::{check_rules_files, parse_duration, RuleFileError, RuleGroupSpec, RuleSpec};
pub use manager::{RuleManager, RuleManagerOptions, RuleSettings};

/// Evaluates an instant query at `t_ms`; returns the instant vector (a scalar result as one
/// sample with empty labels).
pub type QueryFn = Arc<dyn Fn(&str, i64) -> Result<Vec<(Labels, f64)>, String> + Send + Sync>;

/// Validates an expression; `Err` carries Prometheus-style `1:8: parse error: ...` text.
pub type ParseFn = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Hands firing and resolved alerts to the notifier. Must not block (the notifier queues).
pub type NotifyFn = Arc<dyn Fn(Vec<Alert>) + Send + Sync>;
