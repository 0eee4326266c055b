//! `--web.config.file`: TLS, basic authentication and extra response headers for the HTTP
//! side, in the format of Prometheus's exporter-toolkit (`docs/web-configuration.md` and
//! `web/tls_config.go`, `web/handler.go` in prometheus/exporter-toolkit).
//!
//! A board on a shared network answers anyone who asks; this file is how an operator makes it
//! answer only to the right people. Two phases, as for the main config: a serde mirror of what
//! the user typed (strict, so a typo is an error with its line), then a validated [`WebConfig`]
//! holding a ready `rustls` server config, the parsed users and headers.
//!
//! Behaviour copied from the toolkit:
//! - keys `tls_server_config`, `http_server_config`, `basic_auth_users`, `rate_limit`; relative
//!   paths are relative to the web config file; TLS is on when any TLS key is set;
//! - `client_auth_type` values and their meaning, "client CA's have been configured without a
//!   Client Auth Policy", TLS 1.2..1.3 by default, `cipher_suites` (Go names) apply to TLS 1.2 only;
//! - only the five allowed headers may be set, with the same enumerated values;
//! - bcrypt hashes are checked at load; a wrong or unknown user gets `401` with
//!   `WWW-Authenticate: Basic` and the body `Unauthorized`; verification results are cached and
//!   only one bcrypt runs at a time (a cost-10 hash takes ~1 s of CPU on a Pi 3);
//! - the file (and the certificates it names) are re-read when they change
//!   ([`WebConfigWatcher`]), keeping the last good config when the new one is bad.
//!
//! Differences, all stricter: TLS 1.0/1.1 are never offered (rustls does not implement them;
//! `min_version: TLS10` acts as `TLS12`); Go cipher names that rustls lacks (CBC, RSA key
//! exchange) and `CurveP521` are load errors; a verifying client auth type needs a client CA
//! (Go would fall back to the system roots); `client_allowed_sans` matches DNS and IP SANs only;
//! HTTP/2 is not served (`http2` is accepted and ignored).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Largest file we read for a certificate, key or CA bundle. Real ones are a few KiB; the bound
/// keeps a config naming `/dev/zero` or a log file from eating memory.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Largest web config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Cached bcrypt verdicts per config. The toolkit keeps 100; a board has a handful of users and
/// dashboards, and each entry is 33 bytes, so a few hundred is plenty and bounded.
const AUTH_CACHE_ENTRIES: usize = 256;

/// How often [`WebConfigWatcher::current`] looks at file modification times at most. A second
/// keeps the cost per connection at a few `stat` calls per second under any load while a
/// changed certificate or password is picked up before an operator can re-test.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a web config could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// A file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not match the schema (unknown key, wrong type).
    #[error("{}: {message}", .file.display())]
    Yaml {
        /// The web config file.
        file: PathBuf,
        /// Message with line and key path.
        message: String,
    },
    /// A value is invalid (bad hash, unknown client auth type, missing key file...).
    #[error("{}: {field}: {message}", .file.display())]
    Invalid {
        /// The web config file.
        file: PathBuf,
        /// The key at fault, dotted (`tls_server_config.client_auth_type`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Serde mirror: exactly what the user may type.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMirror {
    tls_server_config: Option<TlsMirror>,
    http_server_config: Option<HttpMirror>,
    rate_limit: Option<RateMirror>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsMirror {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpMirror {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateMirror {
    interval: Option<String>,
    burst: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Validated form.

/// A validated web config: TLS acceptor (if TLS is on), users, headers, rate limit.
pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Headers set on every response, in order; an empty value removes the header.
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// user -> bcrypt hash.
    users: BTreeMap<String, String>,
    /// Hash used for unknown users so their timing matches a known one.
    decoy_hash: Option<String>,
    /// SHA-256(user, hash, password) -> verdict. Guarded by its own mutex; held only for a
    /// lookup or insert, never across a bcrypt run.
    cache: Mutex<HashMap<[u8; 32], bool>>,
    /// Serialises bcrypt runs: parallel wrong passwords cost one core, not all of them.
    bcrypt_lock: Mutex<()>,
    rate: Option<Mutex<TokenBucket>>,
    http2: bool,
    /// Files whose change means a reload (the config itself, certificates, CA).
    watched: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .finish()
    }
}

/// Security headers every response carries unless the web config overrides them: no MIME
/// sniffing, no framing (clickjacking). Same names and values the toolkit allows.
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "deny"),
];

/// Headers the toolkit lets a web config set, with their allowed values (empty = any).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl Default for WebConfig {
    /// No TLS, no users, the default security headers: what runs without `--web.config.file`.
    fn default() -> Self {
        WebConfig {
            tls: None,
            headers: default_headers(),
            users: BTreeMap::new(),
            decoy_hash: None,
            cache: Mutex::new(HashMap::new()),
            bcrypt_lock: Mutex::new(()),
            rate: None,
            http2: false,
            watched: Vec::new(),
        }
    }
}

fn default_headers() -> Vec<(HeaderName, Option<HeaderValue>)> {
    DEFAULT_HEADERS
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_static(lower(k)),
                Some(HeaderValue::from_static(v)),
            )
        })
        .collect()
}

/// `HeaderName::from_static` wants lower case; our constants are spelled as the toolkit spells
/// them, so map the two we use.
fn lower(k: &'static str) -> &'static str {
    match k {
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        _ => "x-unknown",
    }
}

/// Loads and validates a web config file; relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = read_bounded(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8(text).map_err(|_| WebConfigError::Yaml {
        file: path.to_path_buf(),
        message: "file is not valid UTF-8".into(),
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut cfg = parse_str(&text, path, dir)?;
    cfg.watched.insert(0, path.to_path_buf());
    Ok(cfg)
}

/// Validates web config text; `file` names it in errors, `dir` anchors relative paths. Files
/// it names (certificates, keys, CAs) are read, at most 1 MiB each. Exposed for fuzzing.
pub fn parse_str(text: &str, file: &Path, dir: &Path) -> Result<WebConfig, WebConfigError> {
    let v = Validator { file, dir };
    let mirror: FileMirror = v.yaml(text)?;
    let mut watched = Vec::new();
    let tls = match mirror.tls_server_config {
        Some(t) => v.tls(t, &mut watched)?,
        None => None,
    };
    let (http2, headers) = match mirror.http_server_config {
        Some(h) => (
            h.http2.unwrap_or(true),
            v.headers(h.headers.unwrap_or_default())?,
        ),
        None => (true, default_headers()),
    };
    let users = mirror.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(v.invalid(
                format!("basic_auth_users.{user}"),
                "not a bcrypt hash (want $2a$/$2b$/$2y$, cost and 53 characters of salt and hash; generate one with htpasswd -nBC 10 \"\")",
            ));
        }
    }
    let rate = match mirror.rate_limit {
        Some(r) => v.rate(r)?,
        None => None,
    };
    Ok(WebConfig {
        tls,
        headers,
        decoy_hash: users.values().next().cloned(),
        users,
        cache: Mutex::new(HashMap::new()),
        bcrypt_lock: Mutex::new(()),
        rate,
        http2,
        watched,
    })
}

struct Validator<'a> {
    file: &'a Path,
    dir: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            file: self.file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn yaml(&self, text: &str) -> Result<FileMirror, WebConfigError> {
        // An empty file is an empty mapping, as in the toolkit.
        let text = if text.trim().is_empty() { "{}" } else { text };
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let mut msg = inner.to_string();
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            if !path.is_empty() && path != "." && !msg.starts_with(&path) {
                msg = format!("{path}: {msg}");
            }
            WebConfigError::Yaml {
                file: self.file.to_path_buf(),
                message: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            }
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Reads `file_key` if set (remembering it for reloads), else the inline `inline`.
    fn pem(
        &self,
        field: &str,
        file: &Option<String>,
        inline: &Option<String>,
        watched: &mut Vec<PathBuf>,
    ) -> Result<Option<Vec<u8>>, WebConfigError> {
        match (file.as_deref().filter(|s| !s.is_empty()), inline) {
            (Some(f), _) => {
                let p = self.path(f);
                let data = read_bounded(&p, MAX_PEM_BYTES).map_err(|e| match e {
                    WebConfigError::Read { path, source } => self.invalid(
                        format!("tls_server_config.{field}"),
                        format!("cannot read {}: {source}", path.display()),
                    ),
                    other => other,
                })?;
                watched.push(p);
                Ok(Some(data))
            }
            (None, Some(s)) if !s.is_empty() => Ok(Some(s.as_bytes().to_vec())),
            _ => Ok(None),
        }
    }

    fn tls(
        &self,
        t: TlsMirror,
        watched: &mut Vec<PathBuf>,
    ) -> Result<Option<tokio_rustls::TlsAcceptor>, WebConfigError> {
        let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
        let enabled = set(&t.cert)
            || set(&t.key)
            || set(&t.client_ca)
            || set(&t.cert_file)
            || set(&t.key_file)
            || set(&t.client_ca_file)
            || set(&t.client_auth_type);
        if !enabled {
            return Ok(None);
        }
        let f = |k: &str| format!("tls_server_config.{k}");
        let cert_pem = self
            .pem("cert_file", &t.cert_file, &t.cert, watched)?
            .ok_or_else(|| self.invalid(f("cert_file"), "missing one of cert or cert_file"))?;
        let key_pem = self
            .pem("key_file", &t.key_file, &t.key, watched)?
            .ok_or_else(|| self.invalid(f("key_file"), "missing one of key or key_file"))?;
        let ca_pem = self.pem("client_ca_file", &t.client_ca_file, &t.client_ca, watched)?;

        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| self.invalid(f("cert_file"), format!("bad PEM: {e}")))?;
        if certs.is_empty() {
            return Err(self.invalid(f("cert_file"), "no CERTIFICATE block found"));
        }
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| self.invalid(f("key_file"), format!("bad PEM: {e}")))?
            .ok_or_else(|| self.invalid(f("key_file"), "no PRIVATE KEY block found"))?;

        // Protocol versions.
        let version = |field: &str,
                       v: &Option<String>,
                       default: u8|
         -> Result<u8, WebConfigError> {
            match v.as_deref() {
                None | Some("") => Ok(default),
                Some("TLS10") => Ok(10),
                Some("TLS11") => Ok(11),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some(other) => Err(self.invalid(f(field), format!("unknown TLS version: {other}"))),
            }
        };
        let min = version("min_version", &t.min_version, 12)?;
        let max = version("max_version", &t.max_version, 13)?;
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if min <= 13 && max >= 13 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= 12 && max >= 12 {
            versions.push(&rustls::version::TLS12);
        }
        if versions.is_empty() {
            return Err(self.invalid(
                f("max_version"),
                format!("no TLS version between min_version and max_version is supported (this server speaks TLS12 and TLS13; got {:?}..{:?})", t.min_version.as_deref().unwrap_or("TLS12"), t.max_version.as_deref().unwrap_or("TLS13")),
            ));
        }

        // Crypto provider: TLS 1.3 suites always (Go does not let them be chosen), TLS 1.2
        // suites as listed, curves as listed.
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
            let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
            let mut chosen: Vec<rustls::SupportedCipherSuite> = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            for name in names {
                let found = all.iter().find(|s| {
                    s.version() == &rustls::version::TLS12 && format!("{:?}", s.suite()) == *name
                });
                match found {
                    Some(s) => chosen.push(*s),
                    None if GO_ONLY_CIPHERS.contains(&name.as_str()) => {
                        return Err(self.invalid(
                            f("cipher_suites"),
                            format!(
                                "cipher {name} is not supported by this server (supported: {})",
                                tls12_names().join(", ")
                            ),
                        ))
                    }
                    None => {
                        return Err(
                            self.invalid(f("cipher_suites"), format!("unknown cipher: {name}"))
                        )
                    }
                }
            }
            provider.cipher_suites = chosen;
        }
        if let Some(curves) = t.curve_preferences.as_ref().filter(|c| !c.is_empty()) {
            use rustls::crypto::ring::kx_group;
            let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
            for c in curves {
                groups.push(match c.as_str() {
                    "CurveP256" => kx_group::SECP256R1,
                    "CurveP384" => kx_group::SECP384R1,
                    "X25519" => kx_group::X25519,
                    "CurveP521" => {
                        return Err(self.invalid(
                            f("curve_preferences"),
                            "curve CurveP521 is not supported by this server (supported: CurveP256, CurveP384, X25519)",
                        ))
                    }
                    other => {
                        return Err(self.invalid(f("curve_preferences"), format!("unknown curve: {other}")))
                    }
                });
            }
            provider.kx_groups = groups;
        }
        let provider = Arc::new(provider);

        // Client authentication.
        let auth = t.client_auth_type.as_deref().unwrap_or("");
        let roots = match &ca_pem {
            Some(pem) => {
                let mut store = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut &pem[..]) {
                    let c =
                        c.map_err(|e| self.invalid(f("client_ca_file"), format!("bad PEM: {e}")))?;
                    store.add(c).map_err(|e| {
                        self.invalid(f("client_ca_file"), format!("bad CA certificate: {e}"))
                    })?;
                }
                if store.is_empty() {
                    return Err(self.invalid(f("client_ca_file"), "no CERTIFICATE block found"));
                }
                Some(Arc::new(store))
            }
            None => None,
        };
        let need_roots = |kind: &str| {
            roots.clone().ok_or_else(|| {
                self.invalid(
                    f("client_ca_file"),
                    format!("client_auth_type {kind} needs client_ca_file or client_ca to verify client certificates"),
                )
            })
        };
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
            "" | "NoClientCert" => {
                if roots.is_some() {
                    return Err(self.invalid(
                        f("client_auth_type"),
                        "client CA's have been configured without a Client Auth Policy",
                    ));
                }
                None
            }
            "RequestClientCert" => Some(Arc::new(AnyClientCert {
                mandatory: false,
                provider: provider.clone(),
            })),
            "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyClientCert {
                mandatory: true,
                provider: provider.clone(),
            })),
            "VerifyClientCertIfGiven" => Some(
                WebPkiClientVerifier::builder_with_provider(need_roots(auth)?, provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| self.invalid(f("client_ca_file"), e.to_string()))?,
            ),
            "RequireAndVerifyClientCert" => Some(
                WebPkiClientVerifier::builder_with_provider(need_roots(auth)?, provider.clone())
                    .build()
                    .map_err(|e| self.invalid(f("client_ca_file"), e.to_string()))?,
            ),
            other => {
                return Err(self.invalid(
                    f("client_auth_type"),
                    format!("invalid ClientAuth: {other}"),
                ))
            }
        };
        let verifier = match (t.client_allowed_sans, verifier) {
            (Some(sans), Some(inner)) if matches!(auth, "RequireAnyClientCert" | "RequireClientCert" | "RequireAndVerifyClientCert") => {
                let mut names = Vec::new();
                for s in sans {
                    match ServerName::try_from(s.clone()) {
                        Ok(n) => names.push(n),
                        Err(_) => {
                            return Err(self.invalid(
                                f("client_allowed_sans"),
                                format!("{s:?}: only DNS names and IP addresses can be matched by this server"),
                            ))
                        }
                    }
                }
                Arc::new(AllowedSans { inner, names }) as Arc<dyn ClientCertVerifier>
            }
            (Some(_), _) => {
                return Err(self.invalid(
                    f("client_allowed_sans"),
                    "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
                ))
            }
            (None, Some(v)) => v,
            (None, None) => Arc::new(rustls::server::NoClientAuth) as Arc<dyn ClientCertVerifier>,
        };

        let mut sc = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| self.invalid(f("cipher_suites"), e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| {
                self.invalid(
                    f("key_file"),
                    format!("certificate and key do not form a pair: {e}"),
                )
            })?;
        sc.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
        // HTTP/1.1 only (see module doc).
        sc.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(sc))))
    }

    fn headers(
        &self,
        given: BTreeMap<String, String>,
    ) -> Result<Vec<(HeaderName, Option<HeaderValue>)>, WebConfigError> {
        let mut out = default_headers();
        for (k, v) in given {
            let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == k) else {
                return Err(self.invalid(
                    format!("http_server_config.headers.{k}"),
                    format!("HTTP header {k:?} can not be configured"),
                ));
            };
            if !allowed.is_empty() && !v.is_empty() && !allowed.contains(&v.as_str()) {
                return Err(self.invalid(
                    format!("http_server_config.headers.{k}"),
                    format!("invalid value for {k}. Expected one of: {allowed:?}, but got: {v:?}"),
                ));
            }
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| {
                self.invalid(format!("http_server_config.headers.{k}"), e.to_string())
            })?;
            let value = if v.is_empty() {
                None
            } else {
                Some(HeaderValue::from_str(&v).map_err(|e| {
                    self.invalid(format!("http_server_config.headers.{k}"), e.to_string())
                })?)
            };
            out.retain(|(n, _)| *n != name);
            out.push((name, value));
        }
        Ok(out)
    }

    fn rate(&self, r: RateMirror) -> Result<Option<Mutex<TokenBucket>>, WebConfigError> {
        let interval = match r.interval.as_deref() {
            None | Some("") | Some("0") | Some("0s") => return Ok(None),
            Some(s) => crate::config::parse_duration(s)
                .map_err(|e| self.invalid("rate_limit.interval", e))?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = r.burst.unwrap_or(0);
        Ok(Some(Mutex::new(TokenBucket {
            every: interval,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        })))
    }
}

/// Go's secure and insecure TLS 1.0-1.2 suite names that rustls does not implement: named so
/// the error says "not supported" rather than "unknown".
const GO_ONLY_CIPHERS: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

fn tls12_names() -> Vec<String> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS12)
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

/// Reads at most `max` bytes of a regular file (not a FIFO or device, which could block or
/// never end).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, WebConfigError> {
    let err = |source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    if meta.len() > max {
        return Err(err(std::io::Error::other(format!(
            "larger than {max} bytes"
        ))));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max).read_to_end(&mut buf))
        .map_err(err)?;
    Ok(buf)
}

/// `RequestClientCert` / `RequireAnyClientCert`: ask for a certificate and accept any, as Go
/// does (the handshake still proves the client holds its key).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier, the client's certificate must carry one of
/// the listed names as a SAN.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .names
            .iter()
            .any(|n| cert.verify_is_valid_for_subject_name(n).is_ok())
        {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The toolkit's `rate_limit`: a token bucket refilled one token per `every`, holding `burst`.
#[derive(Debug)]
struct TokenBucket {
    every: Duration,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn allow(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() / self.every.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Response type of [`WebConfig::check_auth`].
pub type AuthResponse = Response<Full<Bytes>>;

fn plain(status: StatusCode, body: &'static str) -> AuthResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Splits `Authorization: Basic base64(user:pass)` as Go's `Request.BasicAuth` does.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    use base64::Engine as _;
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let prefix = b"basic ";
    if v.len() < prefix.len() || !v[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&v[prefix.len()..])
        .ok()?;
    let i = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..i].to_vec()).ok()?;
    Some((user, decoded[i + 1..].to_vec()))
}

impl WebConfig {
    /// The TLS acceptor when TLS is on; `None` means plain HTTP.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// Whether basic authentication is required (a check may then run bcrypt: call
    /// [`WebConfig::check_auth`] off the I/O threads).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the config asks for HTTP/2 (accepted, but only HTTP/1.1 is served).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Rate limit, then basic authentication. `None` = allowed; `Some(resp)` = the response to
    /// send instead (`429`, or `401` with `WWW-Authenticate: Basic`). May run bcrypt (tens of
    /// milliseconds to a second) the first time a user/password pair is seen.
    pub fn check_auth(&self, headers: &HeaderMap) -> Option<AuthResponse> {
        if let Some(rate) = &self.rate {
            let allowed = rate
                .lock()
                .map(|mut b| b.allow(Instant::now()))
                .unwrap_or(true);
            if !allowed {
                return Some(plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"));
            }
        }
        if self.users.is_empty() {
            return None;
        }
        if let Some((user, pass)) = basic_credentials(headers) {
            let known = self.users.get(&user);
            // An unknown user is checked against a real hash so that timing does not tell
            // which users exist; the verdict is false whatever bcrypt says.
            let hash = known.or(self.decoy_hash.as_ref())?;
            let key = cache_key(&user, hash, &pass);
            let cached = self.cache.lock().ok().and_then(|c| c.get(&key).copied());
            let ok = match cached {
                Some(v) => v,
                None => {
                    let verdict = {
                        let _one_at_a_time = self.bcrypt_lock.lock();
                        // Passwords over 72 bytes are refused, not truncated, as Go does.
                        bcrypt::non_truncating_verify(&pass, hash).unwrap_or(false)
                    };
                    let v = known.is_some() && verdict;
                    if let Ok(mut c) = self.cache.lock() {
                        if c.len() >= AUTH_CACHE_ENTRIES {
                            // Drop one arbitrary entry: bounded memory whatever clients send.
                            if let Some(k) = c.keys().next().copied() {
                                c.remove(&k);
                            }
                        }
                        c.insert(key, v);
                    }
                    v
                }
            };
            if ok && known.is_some() {
                return None;
            }
        }
        let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        Some(r)
    }

    /// Sets the configured (or default) security headers on a response.
    pub fn apply_headers(&self, h: &mut HeaderMap) {
        for (name, value) in &self.headers {
            match value {
                Some(v) => {
                    h.insert(name.clone(), v.clone());
                }
                None => {
                    h.remove(name);
                }
            }
        }
    }

    /// Files this config was built from; a change in any means a reload.
    fn watched(&self) -> &[PathBuf] {
        &self.watched
    }
}

/// SHA-256 of the length-prefixed user, hash and password: the cache never holds a password.
fn cache_key(user: &str, hash: &str, pass: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), pass] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A file's identity for change detection: modification time, length, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Holds the web config in force and re-reads it when the file or a file it names changes
/// (checked at most once per second, from [`WebConfigWatcher::current`]). A bad new version
/// is logged and the last good one kept, so a typo never locks the operator out.
pub struct WebConfigWatcher {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    /// (last check, stamps of the watched files at the last load attempt).
    check: Mutex<(Instant, Vec<Stamp>)>,
}

impl std::fmt::Debug for WebConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigWatcher")
            .field("path", &self.path)
            .finish()
    }
}

impl WebConfigWatcher {
    /// Loads `path` (an error here should stop start-up) and watches it.
    pub fn new(path: &Path) -> Result<Self, WebConfigError> {
        let cfg = load(path)?;
        let stamps = cfg.watched().iter().map(|p| stamp(p)).collect();
        reload_gauge().set(1.0);
        Ok(WebConfigWatcher {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Arc::new(cfg)),
            check: Mutex::new((Instant::now(), stamps)),
        })
    }

    /// No web config file: plain HTTP, no users, default headers.
    pub fn disabled() -> Self {
        WebConfigWatcher {
            path: None,
            current: RwLock::new(Arc::new(WebConfig::default())),
            check: Mutex::new((Instant::now(), Vec::new())),
        }
    }

    /// The config in force, reloaded first if a watched file changed since the last look.
    pub fn current(&self) -> Arc<WebConfig> {
        if let Some(path) = &self.path {
            self.maybe_reload(path);
        }
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn maybe_reload(&self, path: &Path) {
        let Ok(mut check) = self.check.try_lock() else {
            return; // another connection is checking right now
        };
        if check.0.elapsed() < CHECK_EVERY {
            return;
        }
        check.0 = Instant::now();
        let watched: Vec<PathBuf> = match self.current.read() {
            Ok(c) => c.watched().to_vec(),
            Err(_) => return,
        };
        let stamps: Vec<Stamp> = watched.iter().map(|p| stamp(p)).collect();
        if stamps == check.1 {
            return;
        }
        check.1 = stamps;
        match load(path) {
            Ok(cfg) => {
                tracing::info!(file = %path.display(), "reloaded web config");
                // The new config may name other files: watch those from now on.
                check.1 = cfg.watched().iter().map(|p| stamp(p)).collect();
                reload_gauge().set(1.0);
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(cfg);
                }
            }
            Err(e) => {
                reload_gauge().set(0.0);
                tracing::error!(err = %crate::app::error_chain(&e), "cannot reload web config, keeping the previous one");
            }
        }
    }
}

fn reload_gauge() -> Arc<crate::selfmetrics::Gauge> {
    crate::selfmetrics::Registry::global().gauge(
        "edgeprom_web_config_last_reload_successful",
        "Whether the last load of --web.config.file worked (1) or failed (0, the previous one stays in force).",
        &[],
    )
}

#[cfg(test)]
mod tests;
