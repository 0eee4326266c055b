//! The scraper: pulls metrics from targets over HTTP(S) with Prometheus's semantics.

pub mod textparse;
