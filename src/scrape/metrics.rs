//! The scraper's self metrics, under Prometheus's names.

use std::sync::{Arc, OnceLock};

use crate::selfmetrics::{Counter, Histogram, Registry};

/// Handles to the process-wide scrape counters.
pub(crate) struct Metrics {
    pub exceeded_sample_limit: Arc<Counter>,
    pub exceeded_body_size_limit: Arc<Counter>,
    pub out_of_order: Arc<Counter>,
    pub duplicate: Arc<Counter>,
    pub out_of_bounds: Arc<Counter>,
    pub exceeded_label_limits: Arc<Counter>,
    pub pool_reloads: Arc<Counter>,
    pub pool_reloads_failed: Arc<Counter>,
    pub pools_total: Arc<Counter>,
    pub pools_failed: Arc<Counter>,
    pub exceeded_target_limit: Arc<Counter>,
}

/// Buckets for prometheus_target_interval_length_seconds: around common intervals.
const INTERVAL_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0];

impl Metrics {
    pub fn get() -> &'static Metrics {
        static M: OnceLock<Metrics> = OnceLock::new();
        M.get_or_init(|| {
            let r = Registry::global();
            let c = |n: &str, h: &str| r.counter(n, h, &[]);
            Metrics {
                exceeded_sample_limit: c(
                    "prometheus_target_scrapes_exceeded_sample_limit_total",
                    "Total number of scrapes that hit the sample limit and were rejected.",
                ),
                exceeded_body_size_limit: c(
                    "prometheus_target_scrapes_exceeded_body_size_limit_total",
                    "Total number of scrapes that hit the body size limit",
                ),
                out_of_order: c(
                    "prometheus_target_scrapes_sample_out_of_order_total",
                    "Total number of samples rejected due to not being out of the expected order.",
                ),
                duplicate: c(
                    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
                    "Total number of samples rejected due to duplicate timestamps but different values.",
                ),
                out_of_bounds: c(
                    "prometheus_target_scrapes_sample_out_of_bounds_total",
                    "Total number of samples rejected due to timestamp falling outside of the time bounds.",
                ),
                exceeded_label_limits: c(
                    "prometheus_target_scrape_pool_exceeded_label_limits_total",
                    "Total number of times scrape pools hit the label limits, during sync or config reload.",
                ),
                pool_reloads: c(
                    "prometheus_target_scrape_pool_reloads_total",
                    "Total number of scrape pool reloads.",
                ),
                pool_reloads_failed: c(
                    "prometheus_target_scrape_pool_reloads_failed_total",
                    "Total number of failed scrape pool reloads.",
                ),
                pools_total: c(
                    "prometheus_target_scrape_pools_total",
                    "Total number of scrape pool creation attempts.",
                ),
                pools_failed: c(
                    "prometheus_target_scrape_pools_failed_total",
                    "Total number of scrape pool creations that failed.",
                ),
                exceeded_target_limit: c(
                    "prometheus_target_scrape_pool_exceeded_target_limit_total",
                    "Total number of times scrape pools hit the target limit, during sync or config reload.",
                ),
            }
        })
    }

    /// prometheus_target_interval_length_seconds for one configured interval.
    pub fn interval_length(interval: &str) -> Arc<Histogram> {
        Registry::global().histogram(
            "prometheus_target_interval_length_seconds",
            "Actual intervals between scrapes.",
            &[("interval", interval)],
            INTERVAL_BUCKETS,
        )
    }

    /// prometheus_target_scrape_pool_targets{scrape_job}.
    pub fn pool_targets(job: &str) -> Arc<crate::selfmetrics::Gauge> {
        Registry::global().gauge(
            "prometheus_target_scrape_pool_targets",
            "Current number of targets in this scrape pool.",
            &[("scrape_job", job)],
        )
    }
}
