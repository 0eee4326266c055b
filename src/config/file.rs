//! serde mirrors of the YAML files edgeprom reads: exactly what the user typed, with every key
//! Prometheus accepts and `deny_unknown_fields` everywhere so a typo is an error. This is the only
//! file that names `serde_yaml`; `super` turns these mirrors into validated types.

// Some keys are accepted so that Prometheus configs load unchanged, but edgeprom does not act on
// them (remote_read, storage, tracing, enable_http2, send_exemplars, global limits): they are
// parsed and then left unread on purpose.
#![allow(dead_code)]

use serde::Deserialize;
use std::collections::BTreeMap;

/// Declares a mirror struct that also carries the HTTP client keys Prometheus accepts inline
/// (serde's `flatten` cannot be combined with `deny_unknown_fields`, so the keys are repeated
/// by this macro instead), plus an `http()` accessor that gathers them.
macro_rules! with_http_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            pub tls_config: Option<TlsFile>,
            pub basic_auth: Option<BasicAuthFile>,
            pub authorization: Option<AuthorizationFile>,
            pub bearer_token: Option<String>,
            pub bearer_token_file: Option<String>,
            pub follow_redirects: Option<bool>,
            pub enable_http2: Option<bool>,
            pub proxy_url: Option<String>,
        }
        impl $name {
            /// Moves the HTTP client keys out.
            pub fn take_http(&mut self) -> HttpFile {
                HttpFile {
                    tls_config: self.tls_config.take(),
                    basic_auth: self.basic_auth.take(),
                    authorization: self.authorization.take(),
                    bearer_token: self.bearer_token.take(),
                    bearer_token_file: self.bearer_token_file.take(),
                    follow_redirects: self.follow_redirects.take(),
                    enable_http2: self.enable_http2.take(),
                    proxy_url: self.proxy_url.take(),
                }
            }
        }
    };
}

/// The top-level config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub global: Option<GlobalFile>,
    #[serde(default)]
    pub alerting: Option<AlertingFile>,
    #[serde(default)]
    pub rule_files: Option<Vec<String>>,
    #[serde(default)]
    pub scrape_config_files: Option<Vec<String>>,
    #[serde(default)]
    pub scrape_configs: Option<Vec<ScrapeFile>>,
    #[serde(default)]
    pub remote_write: Option<Vec<RemoteWriteFile>>,
    #[serde(default)]
    pub remote_read: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    pub storage: Option<serde_yaml::Value>,
    #[serde(default)]
    pub tracing: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    pub scrape_interval: Option<String>,
    pub scrape_timeout: Option<String>,
    pub evaluation_interval: Option<String>,
    pub rule_query_offset: Option<String>,
    pub query_log_file: Option<String>,
    pub external_labels: Option<BTreeMap<String, String>>,
    pub body_size_limit: Option<String>,
    pub sample_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub target_limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingFile {
    pub alert_relabel_configs: Option<Vec<RelabelFile>>,
    pub alertmanagers: Option<Vec<AlertmanagerFile>>,
}

with_http_fields! {
    pub struct AlertmanagerFile {
    pub scheme: Option<String>,
    pub timeout: Option<String>,
    pub path_prefix: Option<String>,
    pub api_version: Option<String>,
    pub static_configs: Option<Vec<StaticFile>>,
    pub file_sd_configs: Option<Vec<FileSdFile>>,
    pub relabel_configs: Option<Vec<RelabelFile>>,
    }
}

/// The HTTP client settings shared by scrape configs, Alertmanagers and remote write.
#[derive(Debug, Default)]
pub struct HttpFile {
    pub tls_config: Option<TlsFile>,
    pub basic_auth: Option<BasicAuthFile>,
    pub authorization: Option<AuthorizationFile>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
    pub proxy_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub min_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthFile {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationFile {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFile {
    pub targets: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdFile {
    pub files: Option<Vec<String>>,
    pub refresh_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelFile {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

with_http_fields! {
    pub struct ScrapeFile {
    pub job_name: Option<String>,
    pub scrape_interval: Option<String>,
    pub scrape_timeout: Option<String>,
    pub metrics_path: Option<String>,
    pub scheme: Option<String>,
    pub params: Option<BTreeMap<String, Vec<String>>>,
    pub honor_labels: Option<bool>,
    pub honor_timestamps: Option<bool>,
    pub static_configs: Option<Vec<StaticFile>>,
    pub file_sd_configs: Option<Vec<FileSdFile>>,
    pub relabel_configs: Option<Vec<RelabelFile>>,
    pub metric_relabel_configs: Option<Vec<RelabelFile>>,
    pub sample_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub body_size_limit: Option<String>,
    pub target_limit: Option<u64>,
    }
}

with_http_fields! {
    pub struct RemoteWriteFile {
    pub url: Option<String>,
    pub remote_timeout: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub name: Option<String>,
    pub write_relabel_configs: Option<Vec<RelabelFile>>,
    pub queue_config: Option<QueueFile>,
    pub metadata_config: Option<MetadataFile>,
    pub send_exemplars: Option<bool>,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    pub capacity: Option<u64>,
    pub max_shards: Option<u64>,
    pub min_shards: Option<u64>,
    pub max_samples_per_send: Option<u64>,
    pub batch_send_deadline: Option<String>,
    pub min_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub retry_on_http_429: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataFile {
    pub send: Option<bool>,
    pub send_interval: Option<String>,
    pub max_samples_per_send: Option<u64>,
}

/// A YAML error with the path to the offending key and its position.
#[derive(Debug)]
pub struct YamlError {
    /// Dotted path like `scrape_configs[0]` (of the mapping holding the bad key).
    pub path: String,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub column: Option<usize>,
    /// serde's message.
    pub message: String,
}

/// Parses YAML text into `T`, reporting the path and position of the first error.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    // An empty file is an empty mapping, as in Prometheus.
    let text = if text.trim().is_empty() { "{}" } else { text };
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let loc = inner.location();
        YamlError {
            path,
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: inner.to_string(),
        }
    })
}

/// Renders a value as YAML (for the status API); never fails visibly.
pub fn to_yaml<T: serde::Serialize>(v: &T) -> String {
    serde_yaml::to_string(v).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}
