//! Configuration: the Prometheus config file schema, validated, with Prometheus's defaults.
//!
//! Two phases, as ripgrep does it: `file` mirrors what the user typed (serde, strict about
//! unknown keys), and this module turns that mirror into ready-to-use types, filling defaults
//! and inheriting from `global` exactly as Prometheus does, and rejecting what Prometheus rejects.

mod file;
pub mod units;

use crate::model::relabel::{RelabelConfig, RelabelSpec};
use crate::model::Labels;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use units::{format_duration, format_size, parse_duration, parse_size};

/// The config edgeprom runs on when no `--config.file` is given and `edgeprom.yml` does not
/// exist: it scrapes itself and its own node metrics every 15 s.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yml");

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not fit the schema (unknown key, wrong type, bad syntax).
    #[error("{file}: {message}")]
    Yaml {
        /// The file (or `<embedded default>`).
        file: String,
        /// Human message with line and path.
        message: String,
    },
    /// The YAML is well-formed but a value is invalid.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong and where.
        message: String,
    },
}

/// A secret string: never logged, and shown as `<secret>` in the status API.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn ser_size<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_size(*n))
}

fn ser_labels<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(l.len()))?;
    for x in l {
        m.serialize_entry(&x.name, &x.value)?;
    }
    m.end()
}

fn ser_relabels<S: Serializer>(v: &[RelabelConfig], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for c in v {
        let mut m = BTreeMap::new();
        if !c.source_labels.is_empty() {
            m.insert("source_labels", serde_json::json!(c.source_labels));
        }
        m.insert("separator", serde_json::json!(c.separator));
        m.insert("regex", serde_json::json!(c.regex_src));
        if c.modulus != 0 {
            m.insert("modulus", serde_json::json!(c.modulus));
        }
        if !c.target_label.is_empty() {
            m.insert("target_label", serde_json::json!(c.target_label));
        }
        m.insert("replacement", serde_json::json!(c.replacement));
        m.insert("action", serde_json::json!(c.action.as_str()));
        seq.serialize_element(&m)?;
    }
    seq.end()
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &usize) -> bool {
    *n == 0
}
fn is_zero64(n: &u64) -> bool {
    *n == 0
}

/// A validated config.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Global defaults.
    pub global: GlobalConfig,
    /// Alertmanagers and alert relabeling.
    pub alerting: AlertingConfig,
    /// Rule file globs, made relative to the config file's directory.
    pub rule_files: Vec<String>,
    /// Scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Remote write endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Where this config came from (a path, or `<embedded default>`).
    #[serde(skip)]
    pub source: String,
}

/// `global:`.
#[derive(Clone, Debug, Serialize)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    #[serde(serialize_with = "ser_duration")]
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s, at most the interval).
    #[serde(serialize_with = "ser_duration")]
    pub scrape_timeout: Duration,
    /// Default rule evaluation interval (1m).
    #[serde(serialize_with = "ser_duration")]
    pub evaluation_interval: Duration,
    /// How far in the past rule groups without their own `query_offset` query (0s).
    #[serde(
        serialize_with = "ser_duration",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub rule_query_offset: Duration,
    /// Labels added to alerts and remote-written series.
    #[serde(
        serialize_with = "ser_labels",
        skip_serializing_if = "Labels::is_empty"
    )]
    pub external_labels: Labels,
}

/// `alerting:`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertingConfig {
    /// Relabeling applied to alerts before sending.
    #[serde(serialize_with = "ser_relabels", skip_serializing_if = "Vec::is_empty")]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// Alertmanagers to send to.
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alerting.alertmanagers[]` entry.
#[derive(Clone, Debug, Serialize)]
pub struct AlertmanagerConfig {
    /// http or https.
    pub scheme: String,
    /// Per-request timeout (10s).
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Prefix before `/api/v2/alerts`.
    pub path_prefix: String,
    /// Only `v2` is supported (as in Prometheus 2.42+).
    pub api_version: String,
    /// HTTP client settings.
    #[serde(flatten)]
    pub http: HttpClientConfig,
    /// Static Alertmanager addresses (`host:port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    /// File-discovered Alertmanagers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabeling of discovered Alertmanagers.
    #[serde(serialize_with = "ser_relabels", skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
}

/// HTTP client settings shared by scrapes, Alertmanagers and remote write.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpClientConfig {
    /// TLS settings.
    #[serde(rename = "tls_config")]
    pub tls: TlsConfig,
    /// Basic authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header (bearer_token and bearer_token_file fold into this).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Whether redirects are followed (true).
    pub follow_redirects: bool,
    /// HTTP proxy URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
}

/// `tls_config`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsConfig {
    /// CA certificates (PEM) that verify the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (and SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip verification entirely.
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
}

/// `basic_auth`.
#[derive(Clone, Debug, Serialize)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Password, read from a file at request time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// `authorization`.
#[derive(Clone, Debug, Serialize)]
pub struct Authorization {
    /// Scheme, `Bearer` by default.
    #[serde(rename = "type")]
    pub kind: String,
    /// Credentials, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    /// Credentials, read from a file at request time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

/// `static_configs[]`.
#[derive(Clone, Debug, Serialize)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(
        serialize_with = "ser_labels",
        skip_serializing_if = "Labels::is_empty"
    )]
    pub labels: Labels,
}

/// `file_sd_configs[]`.
#[derive(Clone, Debug, Serialize)]
pub struct FileSdConfig {
    /// File globs, made relative to the config file's directory.
    pub files: Vec<String>,
    /// How often files are re-read (5m).
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
}

/// `scrape_configs[]`.
#[derive(Clone, Debug, Serialize)]
pub struct ScrapeConfig {
    /// Unique job name.
    pub job_name: String,
    /// Scrape interval (global default).
    #[serde(serialize_with = "ser_duration")]
    pub scrape_interval: Duration,
    /// Scrape timeout (global default, at most the interval).
    #[serde(serialize_with = "ser_duration")]
    pub scrape_timeout: Duration,
    /// Path (`/metrics`).
    pub metrics_path: String,
    /// `http` or `https`.
    pub scheme: String,
    /// URL parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep scraped labels on clashes instead of renaming them `exported_*`.
    pub honor_labels: bool,
    /// Use timestamps the target exposes (true).
    pub honor_timestamps: bool,
    /// HTTP client settings.
    #[serde(flatten)]
    pub http: HttpClientConfig,
    /// Static targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    /// File-discovered targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Target relabeling.
    #[serde(serialize_with = "ser_relabels", skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Sample relabeling.
    #[serde(serialize_with = "ser_relabels", skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Max samples per scrape (0 = no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub sample_limit: usize,
    /// Max labels per sample (0 = no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub label_limit: usize,
    /// Max label name length (0 = no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub label_name_length_limit: usize,
    /// Max label value length (0 = no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub label_value_length_limit: usize,
    /// Max uncompressed body size in bytes (0 = no limit).
    #[serde(skip_serializing_if = "is_zero64", serialize_with = "ser_size")]
    pub body_size_limit: u64,
    /// Max targets after relabeling (0 = no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub target_limit: usize,
}

/// `remote_write[]` (sending is a later issue; parsed and validated now).
#[derive(Clone, Debug, Serialize)]
pub struct RemoteWriteConfig {
    /// Receiver URL.
    pub url: String,
    /// Per-request timeout (30s).
    #[serde(serialize_with = "ser_duration")]
    pub remote_timeout: Duration,
    /// Extra headers (values are secrets).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// Queue name (defaults to a hash of the config).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// HTTP client settings.
    #[serde(flatten)]
    pub http: HttpClientConfig,
    /// Relabeling before sending.
    #[serde(serialize_with = "ser_relabels", skip_serializing_if = "Vec::is_empty")]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Queue tuning.
    pub queue_config: QueueConfig,
    /// Metadata sending.
    pub metadata_config: MetadataConfig,
}

/// `queue_config` with Prometheus's defaults.
#[derive(Clone, Debug, Serialize)]
pub struct QueueConfig {
    /// Samples buffered per shard (10000).
    pub capacity: usize,
    /// Max parallel senders (50).
    pub max_shards: usize,
    /// Min parallel senders (1).
    pub min_shards: usize,
    /// Max samples per request (2000).
    pub max_samples_per_send: usize,
    /// Max wait before sending a partial batch (5s).
    #[serde(serialize_with = "ser_duration")]
    pub batch_send_deadline: Duration,
    /// Initial retry backoff (30ms).
    #[serde(serialize_with = "ser_duration")]
    pub min_backoff: Duration,
    /// Max retry backoff (5s).
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    /// Retry on HTTP 429.
    #[serde(skip_serializing_if = "is_false")]
    pub retry_on_http_429: bool,
}

/// `metadata_config`.
#[derive(Clone, Debug, Serialize)]
pub struct MetadataConfig {
    /// Send metadata (true).
    pub send: bool,
    /// How often (1m).
    #[serde(serialize_with = "ser_duration")]
    pub send_interval: Duration,
    /// Max metadata per request (500).
    pub max_samples_per_send: usize,
}

/// Loads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &path.display().to_string(), &dir)
}

/// Loads the embedded default config, scraping edgeprom at `self_address` (`host:port`).
pub fn load_default(self_address: &str) -> Config {
    let text = EMBEDDED_DEFAULT.replace("SELF_ADDRESS", self_address);
    // The embedded default is part of the build and covered by a unit test; an odd address
    // only changes a target string, which the config accepts as is.
    load_str(&text, "<embedded default>", Path::new("")).expect("embedded default config is valid")
}

/// Loads a config from text; `file` names it in errors, `dir` anchors relative paths.
pub fn load_str(text: &str, file: &str, dir: &Path) -> Result<Config, ConfigError> {
    let mirror: file::ConfigFile = file::from_yaml(text).map_err(|e| yaml_error(file, e))?;
    let mut cfg = Validator { file, dir }.config(mirror)?;
    cfg.source = file.to_string();
    Ok(cfg)
}

/// Known keys per mirror, for "did you mean" suggestions (serde's message lists them too, but
/// only for the struct at fault; this list is what we search).
fn yaml_error(file: &str, e: file::YamlError) -> ConfigError {
    let mut msg = e.message.clone();
    // serde_yaml: "scrape_configs[0]: unknown field `scarpe_interval`, expected one of `job_name`, ... at line 3 column 5"
    if let Some(rest) = e
        .message
        .find("unknown field `")
        .map(|i| &e.message[i + 15..])
    {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let suggestion = expected
            .iter()
            .map(|k| (strsim(field, k), *k))
            .filter(|(d, k)| *d <= 3.max(k.len() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| format!(", did you mean \"{k}\"?"))
            .unwrap_or_default();
        // Path points at the unknown key; show the mapping that holds it.
        let holder = match e.path.rfind('.') {
            Some(i) => e.path[..i].to_string(),
            None if e.path == field || e.path == "." => String::new(),
            None => e.path.clone(),
        };
        let place = if holder.is_empty() {
            "the top level".to_string()
        } else {
            holder
        };
        msg = format!("unknown field \"{field}\" in {place}{suggestion}");
    } else {
        // Drop serde_yaml's own " at line X column Y" suffix; we print the line in front.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        if !e.path.is_empty() && e.path != "." {
            msg = format!("{}: {msg}", e.path);
        }
    }
    let message = match e.line {
        Some(l) => format!("line {l}: {msg}"),
        None => msg,
    };
    ConfigError::Yaml {
        file: file.to_string(),
        message,
    }
}

/// Levenshtein distance, for key suggestions.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn is_valid_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && it.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

struct Validator<'a> {
    file: &'a str,
    dir: &'a Path,
}

impl Validator<'_> {
    fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            message: message.into(),
        }
    }

    fn duration(
        &self,
        what: &str,
        s: Option<&String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match s {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| self.err(format!("{what}: {e}"))),
        }
    }

    fn path(&self, p: Option<String>) -> Option<PathBuf> {
        p.filter(|s| !s.is_empty()).map(|s| self.join(&s))
    }

    fn join(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() || self.dir.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn config(&self, m: file::ConfigFile) -> Result<Config, ConfigError> {
        let global = self.global(m.global.unwrap_or_default())?;
        let mut scrape_configs: Vec<ScrapeConfig> = Vec::new();
        for (i, s) in m.scrape_configs.unwrap_or_default().into_iter().enumerate() {
            let sc = self.scrape(i, s, &global)?;
            if scrape_configs.iter().any(|o| o.job_name == sc.job_name) {
                return Err(self.err(format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                )));
            }
            scrape_configs.push(sc);
        }
        let alerting = self.alerting(m.alerting.unwrap_or_default())?;
        let rule_files = m
            .rule_files
            .unwrap_or_default()
            .into_iter()
            .map(|g| {
                glob::Pattern::new(&g)
                    .map_err(|e| self.err(format!("invalid rule file path {g:?}: {e}")))?;
                Ok(self.join(&g).to_string_lossy().into_owned())
            })
            .collect::<Result<_, ConfigError>>()?;
        let mut remote_write = Vec::new();
        for (i, r) in m.remote_write.unwrap_or_default().into_iter().enumerate() {
            let rw = self.remote_write(i, r)?;
            if !rw.name.is_empty()
                && remote_write
                    .iter()
                    .any(|o: &RemoteWriteConfig| o.name == rw.name)
            {
                return Err(self.err(format!(
                    "found multiple remote write configs with job name {:?}",
                    rw.name
                )));
            }
            remote_write.push(rw);
        }
        Ok(Config {
            global,
            alerting,
            rule_files,
            scrape_configs,
            remote_write,
            source: String::new(),
        })
    }

    fn global(&self, g: file::GlobalFile) -> Result<GlobalConfig, ConfigError> {
        let scrape_interval = self.duration(
            "global.scrape_interval",
            g.scrape_interval.as_ref(),
            Duration::from_secs(60),
        )?;
        let default_timeout = Duration::from_secs(10).min(scrape_interval);
        let scrape_timeout = self.duration(
            "global.scrape_timeout",
            g.scrape_timeout.as_ref(),
            default_timeout,
        )?;
        if scrape_timeout > scrape_interval {
            return Err(self.err("global scrape timeout greater than scrape interval"));
        }
        let evaluation_interval = self.duration(
            "global.evaluation_interval",
            g.evaluation_interval.as_ref(),
            Duration::from_secs(60),
        )?;
        let rule_query_offset = self.duration(
            "global.rule_query_offset",
            g.rule_query_offset.as_ref(),
            Duration::ZERO,
        )?;
        let mut external_labels = Labels::empty().builder();
        for (k, v) in g.external_labels.unwrap_or_default() {
            if !is_valid_label_name(&k) {
                return Err(self.err(format!("{k:?} is not a valid label name")));
            }
            if k == "__name__" {
                return Err(self.err("\"__name__\" is not a valid external label name"));
            }
            external_labels.set(k, v);
        }
        Ok(GlobalConfig {
            scrape_interval,
            scrape_timeout,
            evaluation_interval,
            rule_query_offset,
            external_labels: external_labels.into_labels(),
        })
    }

    fn relabels(
        &self,
        what: &str,
        v: Option<Vec<file::RelabelFile>>,
    ) -> Result<Vec<RelabelConfig>, ConfigError> {
        v.unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                RelabelConfig::new(RelabelSpec {
                    source_labels: r.source_labels.unwrap_or_default(),
                    separator: r.separator,
                    regex: r.regex,
                    modulus: r.modulus,
                    target_label: r.target_label,
                    replacement: r.replacement,
                    action: r.action,
                })
                .map_err(|e| self.err(format!("{what}[{i}]: {e}")))
            })
            .collect()
    }

    fn http(&self, what: &str, h: file::HttpFile) -> Result<HttpClientConfig, ConfigError> {
        let tls = h.tls_config.unwrap_or_default();
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(self.err(format!(
                "{what}: tls_config needs both cert_file and key_file, or neither"
            )));
        }
        if let Some(v) = &tls.min_version {
            if !matches!(v.as_str(), "TLS10" | "TLS11" | "TLS12" | "TLS13") {
                return Err(self.err(format!("{what}: unknown TLS version: {v}")));
            }
        }
        let tls = TlsConfig {
            ca_file: self.path(tls.ca_file),
            cert_file: self.path(tls.cert_file),
            key_file: self.path(tls.key_file),
            server_name: tls.server_name.filter(|s| !s.is_empty()),
            insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
            min_version: tls.min_version,
        };
        let basic_auth = match h.basic_auth {
            None => None,
            Some(b) => {
                if b.password.is_some() && b.password_file.is_some() {
                    return Err(self.err(format!("{what}: at most one of basic_auth password & password_file must be configured")));
                }
                Some(BasicAuth {
                    username: b.username.unwrap_or_default(),
                    password: b.password.map(Secret),
                    password_file: self.path(b.password_file),
                })
            }
        };
        let mut authorization = h.authorization.map(|a| Authorization {
            kind: a
                .kind
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "Bearer".to_string()),
            credentials: a.credentials.map(Secret),
            credentials_file: self.path(a.credentials_file),
        });
        if let Some(a) = &authorization {
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err(self.err(format!("{what}: authorization type cannot be set to \"basic\", use \"basic_auth\" instead")));
            }
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(self.err(format!("{what}: at most one of authorization credentials & credentials_file must be configured")));
            }
        }
        if h.bearer_token.is_some() || h.bearer_token_file.is_some() {
            if h.bearer_token.is_some() && h.bearer_token_file.is_some() {
                return Err(self.err(format!(
                    "{what}: at most one of bearer_token & bearer_token_file must be configured"
                )));
            }
            if authorization.is_some() || basic_auth.is_some() {
                return Err(self.err(format!("{what}: at most one of basic_auth, bearer_token & bearer_token_file, authorization must be configured")));
            }
            authorization = Some(Authorization {
                kind: "Bearer".to_string(),
                credentials: h.bearer_token.map(Secret),
                credentials_file: self.path(h.bearer_token_file),
            });
        }
        if basic_auth.is_some() && authorization.is_some() {
            return Err(self.err(format!("{what}: at most one of basic_auth, oauth2, bearer_token & bearer_token_file, authorization must be configured")));
        }
        if let Some(p) = &h.proxy_url {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(self.err(format!(
                    "{what}: proxy_url must be an http(s) URL, got {p:?}"
                )));
            }
        }
        Ok(HttpClientConfig {
            tls,
            basic_auth,
            authorization,
            follow_redirects: h.follow_redirects.unwrap_or(true),
            proxy_url: h.proxy_url.filter(|s| !s.is_empty()),
        })
    }

    fn statics(
        &self,
        what: &str,
        v: Option<Vec<file::StaticFile>>,
    ) -> Result<Vec<StaticConfig>, ConfigError> {
        v.unwrap_or_default()
            .into_iter()
            .map(|s| {
                let mut labels = Labels::empty().builder();
                for (k, val) in s.labels.unwrap_or_default() {
                    if !is_valid_label_name(&k) {
                        return Err(self.err(format!("{what}: {k:?} is not a valid label name")));
                    }
                    labels.set(k, val);
                }
                let targets = s.targets.unwrap_or_default();
                for t in &targets {
                    if t.contains('/') {
                        return Err(self.err(format!("{what}: {t:?} is not a valid hostname")));
                    }
                }
                Ok(StaticConfig {
                    targets,
                    labels: labels.into_labels(),
                })
            })
            .collect()
    }

    fn file_sds(
        &self,
        what: &str,
        v: Option<Vec<file::FileSdFile>>,
    ) -> Result<Vec<FileSdConfig>, ConfigError> {
        v.unwrap_or_default()
            .into_iter()
            .map(|f| {
                let files = f.files.unwrap_or_default();
                if files.is_empty() {
                    return Err(self.err(format!(
                        "{what}: file service discovery config must contain at least one path name"
                    )));
                }
                let mut out = Vec::new();
                for name in files {
                    let ext_ok = [".json", ".yml", ".yaml"].iter().any(|e| name.ends_with(e));
                    if !ext_ok {
                        return Err(self.err(format!(
                            "{what}: path name {name:?} is not valid for file discovery"
                        )));
                    }
                    out.push(self.join(&name).to_string_lossy().into_owned());
                }
                let refresh_interval = self.duration(
                    &format!("{what}.refresh_interval"),
                    f.refresh_interval.as_ref(),
                    Duration::from_secs(300),
                )?;
                Ok(FileSdConfig {
                    files: out,
                    refresh_interval,
                })
            })
            .collect()
    }

    fn scrape(
        &self,
        i: usize,
        mut s: file::ScrapeFile,
        g: &GlobalConfig,
    ) -> Result<ScrapeConfig, ConfigError> {
        let job_name = s
            .job_name
            .clone()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| self.err(format!("scrape_configs[{i}]: job_name is empty")))?;
        let what = format!("scrape_configs[{i}] (job {job_name:?})");
        let scrape_interval = self.duration(
            &format!("{what}.scrape_interval"),
            s.scrape_interval.as_ref(),
            g.scrape_interval,
        )?;
        let default_timeout = g.scrape_timeout.min(scrape_interval);
        let scrape_timeout = self.duration(
            &format!("{what}.scrape_timeout"),
            s.scrape_timeout.as_ref(),
            default_timeout,
        )?;
        if scrape_timeout > scrape_interval {
            return Err(self.err(format!("scrape timeout greater than scrape interval for scrape config with job name {job_name:?}")));
        }
        if scrape_interval.is_zero() {
            return Err(self.err(format!("{what}: scrape_interval must be greater than 0")));
        }
        let scheme = s
            .scheme
            .clone()
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "http".to_string());
        if scheme != "http" && scheme != "https" {
            return Err(self.err(format!(
                "{what}: invalid scheme {scheme:?}, want http or https"
            )));
        }
        let metrics_path = s
            .metrics_path
            .clone()
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "/metrics".to_string());
        if !metrics_path.starts_with('/') {
            return Err(self.err(format!(
                "{what}: metrics_path {metrics_path:?} must start with /"
            )));
        }
        let body_size_limit = match &s.body_size_limit {
            None => 0,
            Some(b) => {
                parse_size(b).map_err(|e| self.err(format!("{what}.body_size_limit: {e}")))?
            }
        };
        let http = self.http(&what, s.take_http())?;
        let to_usize = |v: Option<u64>| v.unwrap_or(0) as usize;
        Ok(ScrapeConfig {
            scrape_interval,
            scrape_timeout,
            metrics_path,
            scheme,
            params: s.params.take().unwrap_or_default(),
            honor_labels: s.honor_labels.unwrap_or(false),
            honor_timestamps: s.honor_timestamps.unwrap_or(true),
            http,
            static_configs: self
                .statics(&format!("{what}.static_configs"), s.static_configs.take())?,
            file_sd_configs: self
                .file_sds(&format!("{what}.file_sd_configs"), s.file_sd_configs.take())?,
            relabel_configs: self
                .relabels(&format!("{what}.relabel_configs"), s.relabel_configs.take())?,
            metric_relabel_configs: self.relabels(
                &format!("{what}.metric_relabel_configs"),
                s.metric_relabel_configs.take(),
            )?,
            sample_limit: to_usize(s.sample_limit),
            label_limit: to_usize(s.label_limit),
            label_name_length_limit: to_usize(s.label_name_length_limit),
            label_value_length_limit: to_usize(s.label_value_length_limit),
            body_size_limit,
            target_limit: to_usize(s.target_limit),
            job_name,
        })
    }

    fn alerting(&self, a: file::AlertingFile) -> Result<AlertingConfig, ConfigError> {
        let alert_relabel_configs =
            self.relabels("alerting.alert_relabel_configs", a.alert_relabel_configs)?;
        let mut alertmanagers = Vec::new();
        for (i, mut am) in a.alertmanagers.unwrap_or_default().into_iter().enumerate() {
            let what = format!("alerting.alertmanagers[{i}]");
            let scheme = am
                .scheme
                .clone()
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "http".to_string());
            if scheme != "http" && scheme != "https" {
                return Err(self.err(format!(
                    "{what}: invalid scheme {scheme:?}, want http or https"
                )));
            }
            let api_version = am.api_version.clone().unwrap_or_else(|| "v2".to_string());
            if api_version != "v2" {
                return Err(self.err(format!("{what}: expected Alertmanager api version to be one of [v2] but got {api_version}")));
            }
            alertmanagers.push(AlertmanagerConfig {
                scheme,
                timeout: self.duration(
                    &format!("{what}.timeout"),
                    am.timeout.as_ref(),
                    Duration::from_secs(10),
                )?,
                path_prefix: am.path_prefix.clone().unwrap_or_default(),
                api_version,
                http: self.http(&what, am.take_http())?,
                static_configs: self
                    .statics(&format!("{what}.static_configs"), am.static_configs.take())?,
                file_sd_configs: self.file_sds(
                    &format!("{what}.file_sd_configs"),
                    am.file_sd_configs.take(),
                )?,
                relabel_configs: self.relabels(
                    &format!("{what}.relabel_configs"),
                    am.relabel_configs.take(),
                )?,
            });
        }
        Ok(AlertingConfig {
            alert_relabel_configs,
            alertmanagers,
        })
    }

    fn remote_write(
        &self,
        i: usize,
        mut r: file::RemoteWriteFile,
    ) -> Result<RemoteWriteConfig, ConfigError> {
        let what = format!("remote_write[{i}]");
        let url = r
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| self.err(format!("{what}: url for remote_write is empty")))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(self.err(format!("{what}: url {url:?} must be an http(s) URL")));
        }
        let q = r.queue_config.take().unwrap_or_default();
        let qw = format!("{what}.queue_config");
        let queue_config = QueueConfig {
            capacity: q.capacity.unwrap_or(10_000) as usize,
            max_shards: q.max_shards.unwrap_or(50) as usize,
            min_shards: q.min_shards.unwrap_or(1) as usize,
            max_samples_per_send: q.max_samples_per_send.unwrap_or(2_000) as usize,
            batch_send_deadline: self.duration(
                &format!("{qw}.batch_send_deadline"),
                q.batch_send_deadline.as_ref(),
                Duration::from_secs(5),
            )?,
            min_backoff: self.duration(
                &format!("{qw}.min_backoff"),
                q.min_backoff.as_ref(),
                Duration::from_millis(30),
            )?,
            max_backoff: self.duration(
                &format!("{qw}.max_backoff"),
                q.max_backoff.as_ref(),
                Duration::from_secs(5),
            )?,
            retry_on_http_429: q.retry_on_http_429.unwrap_or(false),
        };
        if queue_config.min_shards > queue_config.max_shards || queue_config.max_shards == 0 {
            return Err(self.err(format!(
                "{qw}: min_shards must be at most max_shards, and max_shards at least 1"
            )));
        }
        let md = r.metadata_config.take().unwrap_or_default();
        let metadata_config = MetadataConfig {
            send: md.send.unwrap_or(true),
            send_interval: self.duration(
                &format!("{what}.metadata_config.send_interval"),
                md.send_interval.as_ref(),
                Duration::from_secs(60),
            )?,
            max_samples_per_send: md.max_samples_per_send.unwrap_or(500) as usize,
        };
        Ok(RemoteWriteConfig {
            remote_timeout: self.duration(
                &format!("{what}.remote_timeout"),
                r.remote_timeout.as_ref(),
                Duration::from_secs(30),
            )?,
            headers: r
                .headers
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Secret(v)))
                .collect(),
            name: r.name.clone().unwrap_or_default(),
            http: self.http(&what, r.take_http())?,
            write_relabel_configs: self.relabels(
                &format!("{what}.write_relabel_configs"),
                r.write_relabel_configs.take(),
            )?,
            queue_config,
            metadata_config,
            url,
        })
    }
}

impl Config {
    /// The config as YAML with defaults filled in and secrets shown as `<secret>`, for
    /// `/api/v1/status/config` and the config page.
    pub fn to_yaml(&self) -> String {
        file::to_yaml(self)
    }
}

#[cfg(test)]
mod tests;
