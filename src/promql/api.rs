//! The Prometheus query HTTP API (<https://prometheus.io/docs/prometheus/latest/querying/api/>).
