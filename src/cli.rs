//! Command-line flags, spelled as Prometheus spells them (`--config.file`, `--web.listen-address`),
//! and the subcommands (`check`, `import`, `query`). Both `--flag=value` and `--flag value` work.

pub mod http;
pub mod query;

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

fn size(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
}

/// edgeprom: a Prometheus-compatible monitoring server for small boards.
#[derive(Debug, Parser)]
#[command(name = "edgeprom", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Server flags (used when no subcommand is given).
    #[command(flatten)]
    pub server: ServerFlags,
    /// A subcommand; without one, edgeprom runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate configuration or rule files, like `promtool check`.
    #[command(subcommand)]
    Check(CheckCmd),
    /// Import data into the store (backfill).
    #[command(subcommand)]
    Import(ImportCmd),
    /// Query a running server (like `promtool query`), with tables and terminal charts.
    Query(query::QueryCmd),
}

/// `edgeprom check ...`.
#[derive(Debug, Subcommand)]
pub enum CheckCmd {
    /// Check config files and the rule files they name.
    Config {
        /// Config files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check rule files.
    Rules {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `edgeprom import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Import an OpenMetrics file with timestamps (as promtool tsdb create-blocks-from openmetrics takes).
    Openmetrics(ImportArgs),
}

/// Arguments of `import openmetrics`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The OpenMetrics file to read.
    pub file: PathBuf,
    /// Store to write into.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub storage_path: PathBuf,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `ts=... level=info msg="..."`, as Prometheus logs.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// The server's flags. Defaults are chosen for a 1 GB board; each says why.
#[derive(Debug, Clone, Args)]
pub struct ServerFlags {
    /// Prometheus configuration file. When not given and ./edgeprom.yml does not exist, an
    /// embedded default that scrapes edgeprom and its node metrics is used.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Base path for metrics storage.
    #[arg(
        long = "storage.tsdb.path",
        default_value = "data/",
        value_name = "DIR"
    )]
    pub storage_path: PathBuf,
    /// How long to retain samples in storage (0 = off when a size limit is set).
    #[arg(long = "storage.tsdb.retention.time", value_parser = duration, value_name = "DURATION")]
    pub retention_time: Option<Duration>,
    /// Maximum bytes of storage on disk, everything counted (e.g. 512MB, 4GB; 0 = off).
    #[arg(long = "storage.tsdb.retention.size", value_parser = size, default_value = "0", value_name = "SIZE")]
    pub retention_size: u64,
    /// How often accepted samples are made durable; a power cut loses at most this window.
    /// Longer means fewer, larger writes to flash. Default: the storage engine's (see README).
    #[arg(long = "storage.tsdb.flush-interval", value_parser = duration, value_name = "DURATION")]
    pub flush_interval: Option<Duration>,
    /// Memory for decoded samples kept so that repeated queries (dashboards) do not decode the
    /// same data again (e.g. 16MB, 256MB; 0 = off).
    #[arg(long = "storage.tsdb.read-cache-size", value_parser = size, default_value = "64MB", value_name = "SIZE")]
    pub read_cache_size: u64,
    /// Maximum number of active series; new series beyond it are refused (0 = no limit).
    #[arg(
        long = "storage.tsdb.max-series",
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_series: usize,

    /// Address to listen on for the UI, API and telemetry.
    #[arg(
        long = "web.listen-address",
        default_value = "0.0.0.0:9090",
        value_name = "ADDR"
    )]
    pub listen_address: String,
    /// Enable shutdown and reload via HTTP request.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Enable API endpoints for admin control actions.
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,
    /// Web config file (TLS, basic auth), exporter-toolkit format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// The URL under which edgeprom is externally reachable (for generated links and the route prefix).
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,
    /// Prefix for the internal routes of web endpoints (defaults to the path of --web.external-url).
    #[arg(long = "web.route-prefix", value_name = "PATH")]
    pub route_prefix: Option<String>,
    /// Maximum number of simultaneous connections. 128 is plenty for a board's dashboards and
    /// bounds memory (Prometheus: 512).
    #[arg(long = "web.max-connections", default_value_t = 128, value_name = "N")]
    pub max_connections: usize,
    /// Maximum duration before timing out read of the request (headers and body).
    #[arg(long = "web.read-timeout", value_parser = duration, default_value = "5m", value_name = "DURATION")]
    pub read_timeout: Duration,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", value_parser = duration, default_value = "2m", value_name = "DURATION")]
    pub query_timeout: Duration,
    /// Maximum number of samples a single query can load into memory. 5,000,000 samples is about
    /// 80 MB of points, a safe share of a 1 GB board (Prometheus: 50,000,000).
    #[arg(
        long = "query.max-samples",
        default_value_t = 5_000_000,
        value_name = "N"
    )]
    pub query_max_samples: usize,
    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(long = "query.lookback-delta", value_parser = duration, default_value = "5m", value_name = "DURATION")]
    pub lookback_delta: Duration,
    /// Maximum number of queries executed concurrently. 4 matches a Pi's cores (Prometheus: 20).
    #[arg(long = "query.max-concurrency", default_value_t = 4, value_name = "N")]
    pub query_max_concurrency: usize,
    /// Comma separated feature names to enable (repeatable). Known: promql-per-step-stats.
    /// Unknown names are accepted and ignored, as Prometheus does.
    #[arg(long = "enable-feature", value_delimiter = ',', value_name = "FEATURE")]
    pub enable_feature: Vec<String>,

    /// Max time to tolerate an outage for restoring the `for` state of alerts.
    #[arg(long = "rules.alert.for-outage-tolerance", value_parser = duration, default_value = "1h", value_name = "DURATION")]
    pub rules_outage_tolerance: Duration,
    /// Minimum duration between an alert and its restored `for` state; kept only for alerts
    /// whose `for` is longer than this.
    #[arg(long = "rules.alert.for-grace-period", value_parser = duration, default_value = "10m", value_name = "DURATION")]
    pub rules_for_grace_period: Duration,
    /// Minimum amount of time to wait before resending an alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", value_parser = duration, default_value = "1m", value_name = "DURATION")]
    pub rules_resend_delay: Duration,
    /// The capacity of the queue for pending Alertmanager notifications; when full, the oldest
    /// are dropped and counted.
    #[arg(
        long = "alertmanager.notification-queue-capacity",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub notification_queue_capacity: usize,

    /// procfs mountpoint for the node metrics.
    #[arg(long = "path.procfs", default_value = "/proc", value_name = "DIR")]
    pub procfs: PathBuf,
    /// sysfs mountpoint for the node metrics.
    #[arg(long = "path.sysfs", default_value = "/sys", value_name = "DIR")]
    pub sysfs: PathBuf,
    /// rootfs mountpoint for the node metrics.
    #[arg(long = "path.rootfs", default_value = "/", value_name = "DIR")]
    pub rootfs: PathBuf,
    /// Directory to read *.prom text files from (node_exporter's textfile collector).
    #[arg(long = "collector.textfile.directory", value_name = "DIR")]
    pub textfile_directory: Option<PathBuf>,

    /// `--collector.<name>` / `--no-collector.<name>` switches, taken out of argv before clap
    /// parses it (their names depend on the collector list).
    #[arg(skip)]
    pub collector_switches: Vec<(String, bool)>,
}

impl ServerFlags {
    /// Whether `--enable-feature` named `name` (e.g. `promql-per-step-stats`).
    pub fn feature_enabled(&self, name: &str) -> bool {
        self.enable_feature.iter().any(|f| f.trim() == name)
    }

    /// The retention time in force: the flag, or 15d when neither time nor size is set.
    pub fn effective_retention_time(&self) -> Duration {
        match self.retention_time {
            Some(t) => t,
            None if self.retention_size > 0 => Duration::ZERO,
            None => Duration::from_secs(15 * 24 * 3600),
        }
    }

    /// Every flag with its value, for `/api/v1/status/flags` (Prometheus shows all as strings).
    pub fn as_map(&self) -> BTreeMap<String, String> {
        use crate::config::format_duration as d;
        let p = |p: &PathBuf| p.display().to_string();
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(
            "config.file",
            self.config_file
                .as_ref()
                .map(p)
                .unwrap_or_else(|| "edgeprom.yml".into()),
        );
        put("storage.tsdb.path", p(&self.storage_path));
        put(
            "rules.alert.for-outage-tolerance",
            d(self.rules_outage_tolerance),
        );
        put(
            "rules.alert.for-grace-period",
            d(self.rules_for_grace_period),
        );
        put("rules.alert.resend-delay", d(self.rules_resend_delay));
        put(
            "alertmanager.notification-queue-capacity",
            self.notification_queue_capacity.to_string(),
        );
        put(
            "storage.tsdb.retention.time",
            d(self.effective_retention_time()),
        );
        put(
            "storage.tsdb.retention.size",
            format!("{}B", self.retention_size),
        );
        put(
            "storage.tsdb.flush-interval",
            self.flush_interval.map(d).unwrap_or_default(),
        );
        put("storage.tsdb.max-series", self.max_series.to_string());
        put(
            "storage.tsdb.read-cache-size",
            format!("{}B", self.read_cache_size),
        );
        put("web.listen-address", self.listen_address.clone());
        put("web.enable-lifecycle", self.enable_lifecycle.to_string());
        put("web.enable-admin-api", self.enable_admin_api.to_string());
        put(
            "web.config.file",
            self.web_config_file.as_ref().map(p).unwrap_or_default(),
        );
        put(
            "web.external-url",
            self.external_url.clone().unwrap_or_default(),
        );
        put(
            "web.route-prefix",
            self.route_prefix.clone().unwrap_or_default(),
        );
        put("web.max-connections", self.max_connections.to_string());
        put("web.read-timeout", d(self.read_timeout));
        put("log.level", format!("{:?}", self.log_level).to_lowercase());
        put(
            "log.format",
            format!("{:?}", self.log_format).to_lowercase(),
        );
        put("query.timeout", d(self.query_timeout));
        put("query.max-samples", self.query_max_samples.to_string());
        put("query.lookback-delta", d(self.lookback_delta));
        put(
            "query.max-concurrency",
            self.query_max_concurrency.to_string(),
        );
        put("enable-feature", self.enable_feature.join(","));
        put("path.procfs", p(&self.procfs));
        put("path.sysfs", p(&self.sysfs));
        put("path.rootfs", p(&self.rootfs));
        put(
            "collector.textfile.directory",
            self.textfile_directory.as_ref().map(p).unwrap_or_default(),
        );
        for (name, on) in &self.collector_switches {
            put(&format!("collector.{name}"), on.to_string());
        }
        m
    }
}

/// Splits `--collector.<name>` and `--no-collector.<name>` switches out of argv (except
/// `--collector.textfile.directory`, a normal flag), returning the rest and the switches.
pub fn split_collector_switches(args: Vec<String>) -> (Vec<String>, Vec<(String, bool)>) {
    let mut rest = Vec::with_capacity(args.len());
    let mut switches = Vec::new();
    for a in args {
        if let Some(name) = a.strip_prefix("--no-collector.") {
            switches.push((name.to_string(), false));
        } else if let Some(name) = a
            .strip_prefix("--collector.")
            .filter(|n| !n.contains('.') && !n.contains('='))
        {
            switches.push((name.to_string(), true));
        } else {
            rest.push(a);
        }
    }
    (rest, switches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("edgeprom").chain(args.iter().copied()))
    }

    #[test]
    fn both_flag_spellings() {
        let a = parse(&[
            "--web.listen-address=127.0.0.1:1",
            "--storage.tsdb.retention.time",
            "10d",
        ])
        .unwrap();
        assert_eq!(a.server.listen_address, "127.0.0.1:1");
        assert_eq!(a.server.retention_time, Some(Duration::from_secs(864_000)));
    }

    /// `--enable-feature` takes comma lists and repeats, like Prometheus's flag.
    #[test]
    fn enable_feature_lists() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["--enable-feature=promql-per-step-stats"], true),
            (
                &["--enable-feature=memory-snapshot-on-shutdown,promql-per-step-stats"],
                true,
            ),
            (
                &[
                    "--enable-feature=x",
                    "--enable-feature",
                    "promql-per-step-stats",
                ],
                true,
            ),
            (&["--enable-feature=promql-per-step-stats-not"], false),
        ];
        for (args, want) in cases {
            let a = parse(args).unwrap();
            assert_eq!(
                a.server.feature_enabled("promql-per-step-stats"),
                *want,
                "{args:?}"
            );
        }
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.server.storage_path, PathBuf::from("data/"));
        assert_eq!(
            a.server.effective_retention_time(),
            Duration::from_secs(15 * 86_400)
        );
        assert_eq!(a.server.lookback_delta, Duration::from_secs(300));
        assert_eq!(a.server.query_timeout, Duration::from_secs(120));
        assert_eq!(a.server.listen_address, "0.0.0.0:9090");
        let b = parse(&["--storage.tsdb.retention.size=512MB"]).unwrap();
        assert_eq!(b.server.retention_size, 512 << 20);
        assert_eq!(b.server.effective_retention_time(), Duration::ZERO);
    }

    #[test]
    fn bad_values_are_errors() {
        for args in [
            &["--storage.tsdb.retention.time=10x"][..],
            &["--storage.tsdb.retention.size=1QB"],
            &["--log.level=loud"],
            &["--no-such-flag"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn subcommands() {
        let a = parse(&["check", "config", "a.yml", "b.yml"]).unwrap();
        assert!(
            matches!(a.command, Some(Command::Check(CheckCmd::Config { ref files })) if files.len() == 2)
        );
        let a = parse(&["import", "openmetrics", "f.om", "--storage.tsdb.path", "d"]).unwrap();
        assert!(
            matches!(a.command, Some(Command::Import(ImportCmd::Openmetrics(ref i))) if i.storage_path == std::path::Path::new("d"))
        );
    }

    #[test]
    fn collector_switches_split() {
        let (rest, sw) = split_collector_switches(
            [
                "edgeprom",
                "--collector.textfile.directory=/x",
                "--no-collector.hwmon",
                "--collector.ntp",
                "--log.level=debug",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            rest,
            vec![
                "edgeprom",
                "--collector.textfile.directory=/x",
                "--log.level=debug"
            ]
        );
        assert_eq!(
            sw,
            vec![("hwmon".to_string(), false), ("ntp".to_string(), true)]
        );
    }
}
