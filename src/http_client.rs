//! One HTTP/1.1 client (hyper + rustls) built from a config's [`HttpClientConfig`], for scrapes
//! and any other outbound request edgeprom makes.
//!
//! Why our own small pool instead of a generic client: a scrape loop fetches one URL again and
//! again; keeping its keep-alive connection (per scheme, host and port) and reading the body
//! into the caller's reusable buffer, with a size limit, makes a steady scrape allocate and
//! handshake nothing. The caller bounds the whole exchange with its own timeout.
//!
//! Behaviour copied from Prometheus's `common/config` HTTP client:
//! - `basic_auth` (password or `password_file`) and `authorization` (`credentials` or
//!   `credentials_file`) are applied on every request; files are re-read each time and trimmed;
//! - `follow_redirects` follows up to 10 redirects, as Go's client does;
//! - `proxy_url` (http://) forwards plain requests in absolute form and tunnels HTTPS with
//!   `CONNECT`;
//! - `tls_config`: `ca_file`, `cert_file`/`key_file`, `server_name`, `insecure_skip_verify`,
//!   `min_version`. Without `ca_file` the system bundle is used.
//! - A self-signed certificate that marks itself as a CA (what `openssl req -x509` makes), when
//!   presented by the server and byte-identical to a certificate in `ca_file`, is accepted as Go
//!   accepts it; rustls's WebPKI verifier alone refuses it (`CaUsedAsEndEntity`). Its validity
//!   period is still checked (WebPKI checks it before the CA flag) and so is its name.
//! - TLS failures are reported with Go's wording (`x509: certificate signed by unknown
//!   authority`, `x509: certificate is valid for ..., not ...`, `x509: certificate has expired
//!   or is not yet valid`), which is what users search for.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};

/// Go's `http.Client` gives up after 10 redirects.
const MAX_REDIRECTS: usize = 10;
/// Idle connections kept per (scheme, host, port): a scrape loop needs one; a few cover jobs
/// whose targets share a host, and the cap bounds file descriptors on small boards.
const MAX_IDLE_PER_HOST: usize = 4;

/// Why a request or the client's construction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file named in the config could not be read.
    #[error("unable to read {what} {}: {source}", .path.display())]
    File {
        /// Which setting (`ca_file`, `cert_file`...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS settings are unusable (bad PEM, unsupported version...).
    #[error("invalid tls_config: {0}")]
    TlsConfig(String),
    /// The URL cannot be requested.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// TCP connect failed (refused, unreachable, DNS).
    #[error("dial tcp {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed; `reason` is precise (unknown CA, name mismatch, expired...).
    #[error("{reason}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// Go-worded reason.
        reason: String,
    },
    /// The proxy refused or broke the tunnel.
    #[error("proxyconnect {addr}: {reason}")]
    Proxy {
        /// The proxy's `host:port`.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The HTTP exchange failed (connection reset, malformed response...).
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// More than 10 redirects.
    #[error("stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// The response body exceeded the caller's limit.
    #[error("body size limit exceeded")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A credentials file is unusable as a header value.
    #[error("invalid credentials: {0}")]
    Credentials(String),
}

/// Status and headers of a response whose body went into the caller's buffer.
#[derive(Debug)]
pub struct ResponseHead {
    /// Final status (after redirects).
    pub status: StatusCode,
    /// Final response headers.
    pub headers: HeaderMap,
    /// The URL that answered (differs from the requested one after redirects).
    pub url: Uri,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
}

#[derive(Clone, Debug)]
struct Proxy {
    host: String,
    port: u16,
}

/// A configured client; cheap to share (`Arc`) between the targets of one scrape pool.
pub struct HttpClient {
    tls: Arc<ClientConfig>,
    server_name: Option<String>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    follow_redirects: bool,
    proxy: Option<Proxy>,
    /// Idle keep-alive connections; locked only to push or pop, never across an await.
    idle: Mutex<HashMap<PoolKey, Vec<SendRequest<Full<Bytes>>>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("server_name", &self.server_name)
            .field("follow_redirects", &self.follow_redirects)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds a client; reads the CA, certificate and key files now (auth files are read per
    /// request, as Prometheus does).
    pub fn new(cfg: &HttpClientConfig) -> Result<Self, Error> {
        let tls = build_tls(&cfg.tls)?;
        let proxy = match &cfg.proxy_url {
            None => None,
            Some(u) => {
                let uri: Uri = u.parse().map_err(|_| Error::InvalidUrl {
                    url: u.clone(),
                    reason: "cannot parse proxy_url",
                })?;
                if uri.scheme_str() != Some("http") {
                    return Err(Error::InvalidUrl {
                        url: u.clone(),
                        reason: "only http:// proxies are supported",
                    });
                }
                let (host, port) = host_port(&uri, false).ok_or_else(|| Error::InvalidUrl {
                    url: u.clone(),
                    reason: "proxy_url has no host",
                })?;
                Some(Proxy { host, port })
            }
        };
        Ok(HttpClient {
            tls: Arc::new(tls),
            server_name: cfg.tls.server_name.clone(),
            basic_auth: cfg.basic_auth.clone(),
            authorization: cfg.authorization.clone(),
            follow_redirects: cfg.follow_redirects,
            proxy,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// GETs `url` with `headers` (plus auth), following redirects if configured, and appends
    /// the raw (possibly compressed) body to `body`, failing once it exceeds `limit` bytes
    /// (0 = no limit). The caller bounds the whole call with its timeout.
    pub async fn get_into(
        &self,
        url: &Uri,
        headers: &HeaderMap,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<ResponseHead, Error> {
        self.request_into(Method::GET, url, headers, Bytes::new(), body, limit)
            .await
    }

    /// Sends a request with `payload` and appends the response body to `body` (see
    /// [`HttpClient::get_into`]). 307/308 redirects repeat the method and payload; 301-303 turn
    /// into a GET, as in Go.
    pub async fn request_into(
        &self,
        mut method: Method,
        url: &Uri,
        headers: &HeaderMap,
        mut payload: Bytes,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<ResponseHead, Error> {
        let mut url = url.clone();
        let start_len = body.len();
        for _ in 0..=MAX_REDIRECTS {
            body.truncate(start_len);
            let head = self
                .send_once(&method, &url, headers, payload.clone(), body, limit)
                .await?;
            let redirect = matches!(head.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if !(redirect && self.follow_redirects) {
                return Ok(head);
            }
            let Some(next) = head
                .headers
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resolve_location(&url, l))
            else {
                return Ok(head); // Go returns the 3xx when Location is missing.
            };
            if matches!(head.status.as_u16(), 301..=303) && method != Method::HEAD {
                method = Method::GET;
                payload = Bytes::new();
            }
            url = next;
        }
        Err(Error::TooManyRedirects)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Uri,
        headers: &HeaderMap,
        payload: Bytes,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<ResponseHead, Error> {
        let https = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(Error::InvalidUrl {
                    url: url.to_string(),
                    reason: "unsupported protocol scheme",
                })
            }
        };
        let (host, port) = host_port(url, https).ok_or_else(|| Error::InvalidUrl {
            url: url.to_string(),
            reason: "no host in request URL",
        })?;
        let key = PoolKey { https, host, port };
        let mut sender = self.checkout(&key).await?;

        // Plain HTTP through a proxy uses the absolute form; everything else the origin form.
        let target: Uri = if self.proxy.is_some() && !https {
            url.clone()
        } else {
            url.path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/")
                .parse()
                .map_err(|_| Error::InvalidUrl {
                    url: url.to_string(),
                    reason: "bad path",
                })?
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(target)
            .body(Full::new(payload))
            .map_err(|_| Error::InvalidUrl {
                url: url.to_string(),
                reason: "cannot build request",
            })?;
        let h = req.headers_mut();
        let default_port = if https { 443 } else { 80 };
        let host_header = if key.port == default_port {
            bracket_ipv6(&key.host)
        } else {
            format!("{}:{}", bracket_ipv6(&key.host), key.port)
        };
        if let Ok(v) = HeaderValue::from_str(&host_header) {
            h.insert(HOST, v);
        }
        for (k, v) in headers {
            h.insert(k.clone(), v.clone());
        }
        if let Some(v) = self.auth_header()? {
            h.insert(AUTHORIZATION, v);
        }

        let resp = sender.send_request(req).await.map_err(Error::Http)?;
        let (parts, mut incoming) = resp.into_parts();
        let start = body.len();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(Error::Http)?;
            if let Ok(data) = frame.into_data() {
                if limit > 0 && (body.len() - start + data.len()) as u64 > limit {
                    return Err(Error::BodyTooLarge { limit });
                }
                body.extend_from_slice(&data);
            }
        }
        // The body is fully read, so the connection can serve the next request.
        self.checkin(key, sender);
        Ok(ResponseHead {
            status: parts.status,
            headers: parts.headers,
            url: url.clone(),
        })
    }

    fn auth_header(&self) -> Result<Option<HeaderValue>, Error> {
        if let Some(b) = &self.basic_auth {
            let password = match (&b.password, &b.password_file) {
                (Some(p), _) => p.0.clone(),
                (None, Some(f)) => read_secret_file("password_file", f)?,
                (None, None) => String::new(),
            };
            let mut v = String::from("Basic ");
            base64_encode(format!("{}:{}", b.username, password).as_bytes(), &mut v);
            return HeaderValue::from_str(&v)
                .map(Some)
                .map_err(|_| Error::Credentials("basic auth contains invalid characters".into()));
        }
        if let Some(a) = &self.authorization {
            let creds = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.0.clone(),
                (None, Some(f)) => read_secret_file("credentials_file", f)?,
                (None, None) => String::new(),
            };
            let kind = if a.kind.is_empty() { "Bearer" } else { &a.kind };
            return HeaderValue::from_str(&format!("{kind} {creds}"))
                .map(|mut v| {
                    v.set_sensitive(true);
                    Some(v)
                })
                .map_err(|_| {
                    Error::Credentials("authorization contains invalid characters".into())
                });
        }
        Ok(None)
    }

    async fn checkout(&self, key: &PoolKey) -> Result<SendRequest<Full<Bytes>>, Error> {
        loop {
            let cached = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.get_mut(key).and_then(|v| v.pop())
            };
            let Some(mut s) = cached else { break };
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Ok(s);
            }
        }
        self.connect(key).await
    }

    fn checkin(&self, key: PoolKey, s: SendRequest<Full<Bytes>>) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let v = idle.entry(key).or_default();
        if v.len() < MAX_IDLE_PER_HOST {
            v.push(s);
        }
    }

    /// Number of idle pooled connections (for tests of connection reuse).
    pub fn idle_connections(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }

    async fn connect(&self, key: &PoolKey) -> Result<SendRequest<Full<Bytes>>, Error> {
        let addr = format!("{}:{}", bracket_ipv6(&key.host), key.port);
        let (dial_host, dial_port) = match &self.proxy {
            Some(p) => (p.host.as_str(), p.port),
            None => (key.host.as_str(), key.port),
        };
        let dial_addr = format!("{}:{}", bracket_ipv6(dial_host), dial_port);
        let mut tcp = TcpStream::connect((dial_host, dial_port))
            .await
            .map_err(|source| Error::Connect {
                addr: dial_addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = if key.https {
            if self.proxy.is_some() {
                connect_tunnel(&mut tcp, &addr, &dial_addr).await?;
            }
            let name = self.server_name.as_deref().unwrap_or(&key.host);
            let sni = ServerName::try_from(name.to_string()).map_err(|_| Error::Tls {
                addr: addr.clone(),
                reason: format!("invalid server name {name:?}"),
            })?;
            let tls = TlsConnector::from(self.tls.clone())
                .connect(sni, tcp)
                .await
                .map_err(|e| Error::Tls {
                    addr: addr.clone(),
                    reason: describe_tls_error(&e),
                })?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        // The connection task ends when the server closes or every sender is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// Opens an HTTP CONNECT tunnel to `target` through an already connected proxy socket.
async fn connect_tunnel(tcp: &mut TcpStream, target: &str, proxy: &str) -> Result<(), Error> {
    let perr = |reason: String| Error::Proxy {
        addr: proxy.to_string(),
        reason,
    };
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| perr(e.to_string()))?;
    // Read the response head byte-wise-bounded: the tunnel's payload must stay in the socket.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(perr("response head too large".into()));
        }
        let n = tcp.read(&mut byte).await.map_err(|e| perr(e.to_string()))?;
        if n == 0 {
            return Err(perr("connection closed".into()));
        }
        head.push(byte[0]);
    }
    let status_line =
        String::from_utf8_lossy(head.split(|&c| c == b'\r').next().unwrap_or(&[])).into_owned();
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(perr(format!("unexpected response {status_line:?}")));
    }
    Ok(())
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Host (without IPv6 brackets) and port (scheme default when absent).
fn host_port(uri: &Uri, https: bool) -> Option<(String, u16)> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Some((host.to_string(), port))
}

/// Resolves a `Location` header against the URL that sent it.
fn resolve_location(base: &Uri, loc: &str) -> Option<Uri> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let auth = base.authority()?.as_str();
    if let Some(rest) = loc.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let path = if loc.starts_with('/') {
        loc.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{dir}/{loc}")
    };
    format!("{scheme}://{auth}{path}").parse().ok()
}

fn read_secret_file(what: &'static str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::File {
            what,
            path: path.to_path_buf(),
            source,
        })
}

fn base64_encode(input: &[u8], out: &mut String) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::File {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(what, path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| Error::TlsConfig(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::TlsConfig(format!(
            "{what} {}: no PEM certificates found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Where Debian, Fedora and Alpine keep the system CA bundle (Go looks in the same places).
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn build_tls(cfg: &TlsConfig) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg
        .min_version
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("") | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(v @ ("TLS10" | "TLS11")) => {
            return Err(Error::TlsConfig(format!(
                "min_version {v} is not supported (TLS 1.2 is the minimum)"
            )))
        }
        Some(v) => return Err(Error::TlsConfig(format!("unknown min_version {v:?}"))),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| Error::TlsConfig(e.to_string()))?;

    let verifier: Arc<dyn ServerCertVerifier> = if cfg.insecure_skip_verify {
        Arc::new(NoVerify(provider.clone()))
    } else {
        let mut roots = RootCertStore::empty();
        let mut configured = Vec::new();
        match &cfg.ca_file {
            Some(p) => {
                let certs = load_certs("ca_file", p)?;
                for c in &certs {
                    roots
                        .add(c.clone())
                        .map_err(|e| Error::TlsConfig(format!("ca_file {}: {e}", p.display())))?;
                }
                configured = certs;
            }
            None => {
                let env = std::env::var("SSL_CERT_FILE").ok();
                let files = env
                    .iter()
                    .map(String::as_str)
                    .chain(SYSTEM_CA_FILES.iter().copied());
                for f in files {
                    if let Ok(pem) = std::fs::read(f) {
                        for c in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                            let _ = roots.add(c);
                        }
                        break;
                    }
                }
            }
        }
        let inner = if roots.is_empty() {
            None
        } else {
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| Error::TlsConfig(e.to_string()))?,
            )
        };
        Arc::new(Verifier {
            inner,
            configured_cas: configured,
            provider: provider.clone(),
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => {
            let certs = load_certs("cert_file", c)?;
            let pem = read_file("key_file", k)?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
                .map_err(|e| Error::TlsConfig(format!("key_file {}: {e}", k.display())))?
                .ok_or_else(|| {
                    Error::TlsConfig(format!(
                        "key_file {}: no PEM private key found",
                        k.display()
                    ))
                })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::TlsConfig(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::TlsConfig(
                "cert_file and key_file must both be set".into(),
            ))
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// WebPKI verification, plus acceptance of a self-signed CA certificate presented as the leaf
/// when it is byte-identical to a configured CA (see the module doc).
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    configured_cas: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    // rustls wraps this webpki error in `CertificateError::Other`; its text is the variant name.
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
        if o.to_string().contains("CaUsedAsEndEntity"))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self
                        .configured_cas
                        .iter()
                        .any(|ca| ca.as_ref() == end_entity.as_ref()) =>
            {
                // WebPKI checked the validity period before refusing the CA flag; the leaf is
                // a trust anchor itself, so only its name is left to check.
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

/// `insecure_skip_verify`: accepts any certificate but still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Go-worded reason for a failed handshake.
fn describe_tls_error(e: &io::Error) -> String {
    let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("tls: {e}");
    };
    match re {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer => {
                "x509: certificate signed by unknown authority".into()
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => {
                let mut s = String::from("x509: certificate is valid for ");
                if presented.is_empty() {
                    s.push_str("no names");
                } else {
                    s.push_str(&presented.join(", "));
                }
                let want = match expected {
                    ServerName::DnsName(d) => d.as_ref().to_string(),
                    ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                    other => format!("{other:?}"),
                };
                let _ = write!(s, ", not {want}");
                s
            }
            CertificateError::NotValidForName => {
                "x509: certificate is not valid for the requested name".into()
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                format!("x509: certificate has expired or is not yet valid: {ce}")
            }
            CertificateError::BadSignature => "x509: certificate signature is invalid".into(),
            other => format!("x509: {other}"),
        },
        rustls::Error::AlertReceived(a) => {
            format!("remote error: tls: {}", format!("{a:?}").to_lowercase())
        }
        other => format!("tls: {other}"),
    }
}

/// The header name Prometheus sends with the scrape timeout.
pub const SCRAPE_TIMEOUT_HEADER: HeaderName =
    HeaderName::from_static("x-prometheus-scrape-timeout-seconds");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, want) in cases {
            let mut s = String::new();
            base64_encode(i.as_bytes(), &mut s);
            assert_eq!(s, want, "{i}");
        }
    }

    #[test]
    fn redirect_locations_resolve_like_a_browser() {
        let base: Uri = "http://h:1/a/b?x=1".parse().expect("uri");
        let cases = [
            ("/c", "http://h:1/c"),
            ("c", "http://h:1/a/c"),
            ("https://o:2/p", "https://o:2/p"),
            ("//o:3/q", "http://o:3/q"),
        ];
        for (loc, want) in cases {
            assert_eq!(
                resolve_location(&base, loc).map(|u| u.to_string()),
                Some(want.to_string()),
                "{loc}"
            );
        }
    }

    #[test]
    fn min_version_validation() {
        for (v, ok) in [
            ("TLS12", true),
            ("TLS13", true),
            ("TLS10", false),
            ("x", false),
        ] {
            let cfg = TlsConfig {
                min_version: Some(v.into()),
                insecure_skip_verify: true,
                ..Default::default()
            };
            assert_eq!(build_tls(&cfg).is_ok(), ok, "{v}");
        }
    }
}
