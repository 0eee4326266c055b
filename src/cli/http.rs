//! A small blocking HTTP/1.1 client over `std::net`, for the terminal commands (`edgeprom query`)
//! and for whole-binary tests that talk to a server or a WebDriver.
//!
//! The terminal client runs once per command over SSH on a board; pulling an async runtime and a
//! connection pool into that path buys nothing. One request per connection (`Connection: close`),
//! `Content-Length` and chunked bodies, a timeout on connect, read and write. `https://` goes
//! through rustls, trusting the system bundle or a given CA file. A self-signed certificate made
//! with `openssl req -x509` marks itself as a CA, which webpki refuses as a server certificate; as
//! Go's TLS (and so Prometheus) accepts it when it is in the trusted roots, a certificate that is
//! byte-for-byte one of the CA file's certificates is accepted too (an exact pin).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body accepted (a query answer the terminal can show is far smaller).
const MAX_BODY: usize = 256 << 20;
/// Largest status line or header line accepted.
const MAX_LINE: usize = 64 << 10;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not of the form `http://host[:port][/path]`.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS set-up could not be built (CA file unreadable or empty, bad server name).
    #[error("TLS for {addr}: {reason}")]
    Tls {
        /// host:port.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting, writing or reading failed.
    #[error("{what} {addr}")]
    Io {
        /// What was being done ("connecting to", "reading from", ...).
        what: &'static str,
        /// host:port.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server's answer is not valid HTTP/1.x.
    #[error("malformed response from {addr}: {reason}")]
    BadResponse {
        /// host:port.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed URL: host, port and the path with its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// TCP port (80, or 443 for https, when not given).
    pub port: u16,
    /// Whether the scheme is `https`.
    pub tls: bool,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `http[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |reason| HttpError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (rest, tls) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes().get(i) == Some(&b'?') => {
                (&rest[..i], format!("/{}", &rest[i..]))
            }
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(bad("user info in URLs is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in host"))?;
            let host = &v6[..end];
            let port = match &v6[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("invalid port"))?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Url {
            host,
            port,
            path,
            tls,
        })
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A response: status, headers (names lower-cased) and the whole body.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header (name, value) pairs in order; names are lower-case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// TLS settings for `https://` URLs.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM file of CA certificates to trust instead of the system bundle.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (for a board's throw-away certificate; says so in `--help`).
    pub insecure_skip_verify: bool,
}

/// A connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Sends one request and reads the whole response. `headers` are sent as given, after `Host`,
/// `Connection: close` and (with a body) `Content-Length`.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request_with(&TlsOptions::default(), method, url, headers, body, timeout)
}

/// [`request`] with TLS settings for `https://` URLs.
pub fn request_with(
    tls: &TlsOptions,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let u = Url::parse(url)?;
    let addr = u.addr();
    let io = |what: &'static str| {
        let addr = addr.clone();
        move |source| HttpError::Io { what, addr, source }
    };
    let sockets = addr.to_socket_addrs().map_err(io("resolving"))?;
    let mut last = None;
    let mut tcp = None;
    for sa in sockets {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match tcp {
        Some(s) => s,
        None => {
            return Err(io("connecting to")(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
            })))
        }
    };
    tcp.set_read_timeout(Some(timeout))
        .map_err(io("configuring"))?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(io("configuring"))?;
    let mut stream = if u.tls {
        let config = tls_config(tls, &addr)?;
        let name = rustls::pki_types::ServerName::try_from(u.host.clone()).map_err(|e| {
            HttpError::Tls {
                addr: addr.clone(),
                reason: format!("server name {:?}: {e}", u.host),
            }
        })?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| HttpError::Tls {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    } else {
        Stream::Plain(tcp)
    };
    let default_port = if u.tls { 443 } else { 80 };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: edgeprom/{}\r\n",
        u.path,
        if u.port == default_port {
            u.host.clone()
        } else {
            addr.clone()
        },
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(io("writing to"))?;
    if let Some(b) = body {
        stream.write_all(b).map_err(io("writing to"))?;
    }
    stream.flush().map_err(io("writing to"))?;
    read_response(BufReader::new(stream), &addr, method == "HEAD")
}

/// Debian's CA bundle, unless `SSL_CERT_FILE` names another.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_config(opts: &TlsOptions, addr: &str) -> Result<Arc<rustls::ClientConfig>, HttpError> {
    let err = |reason: String| HttpError::Tls {
        addr: addr.to_string(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let pinned = if opts.insecure_skip_verify {
        Vec::new()
    } else {
        let path = match &opts.ca_file {
            Some(p) => p.clone(),
            None => std::env::var_os("SSL_CERT_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE)),
        };
        let pem = std::fs::read(&path)
            .map_err(|e| err(format!("reading CA file {}: {e}", path.display())))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("CA file {}: {e}", path.display())))?;
        let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(err(format!("no usable certificate in {}", path.display())));
        }
        // Only an explicit CA file pins; the system bundle holds no server certificates.
        if opts.ca_file.is_some() {
            certs
        } else {
            Vec::new()
        }
    };
    let inner = if opts.insecure_skip_verify {
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| err(e.to_string()))?,
        )
    };
    let verifier = Verifier {
        inner,
        pinned,
        algs: provider.signature_verification_algorithms,
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    ))
}

/// webpki's verification, plus: a server certificate identical to one in the CA file is trusted
/// (the self-signed `openssl req -x509` case); with no inner verifier, everything is trusted.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(e) => {
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref())
                {
                    Ok(rustls::client::danger::ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn read_line(r: &mut impl BufRead, addr: &str) -> Result<String, HttpError> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .map_err(|source| HttpError::Io {
            what: "reading from",
            addr: addr.to_string(),
            source,
        })?;
    if n == 0 {
        return Err(bad_response(addr, "connection closed early"));
    }
    if !buf.ends_with(b"\n") {
        return Err(bad_response(addr, "line too long"));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| bad_response(addr, "header is not UTF-8"))
}

fn bad_response(addr: &str, reason: &str) -> HttpError {
    HttpError::BadResponse {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

fn read_response(mut r: impl BufRead, addr: &str, head_only: bool) -> Result<Response, HttpError> {
    let status_line = read_line(&mut r, addr)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad_response(addr, &format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_response(addr, &format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut r, addr)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad_response(addr, &format!("header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        if headers.len() > 1000 {
            return Err(bad_response(addr, "too many headers"));
        }
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let io = |source| HttpError::Io {
        what: "reading from",
        addr: addr.to_string(),
        source,
    };
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line = read_line(&mut r, addr)?;
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad_response(addr, &format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the final empty line.
                while !read_line(&mut r, addr)?.is_empty() {}
                break;
            }
            if resp.body.len().saturating_add(size) > MAX_BODY {
                return Err(bad_response(addr, "body too large"));
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..]).map_err(io)?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).map_err(io)?;
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad_response(addr, "invalid Content-Length"))?;
        if len > MAX_BODY {
            return Err(bad_response(addr, "body too large"));
        }
        resp.body.resize(len, 0);
        r.read_exact(&mut resp.body).map_err(io)?;
    } else {
        r.take(MAX_BODY as u64 + 1)
            .read_to_end(&mut resp.body)
            .map_err(io)?;
        if resp.body.len() > MAX_BODY {
            return Err(bad_response(addr, "body too large"));
        }
    }
    Ok(resp)
}

/// `GET url`.
pub fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    request("GET", url, &[], None, timeout)
}

/// `POST url` with an `application/x-www-form-urlencoded` body.
pub fn post_form(url: &str, form: &str, timeout: Duration) -> Result<Response, HttpError> {
    request(
        "POST",
        url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
        timeout,
    )
}

/// `POST url` with a JSON body.
pub fn post_json(url: &str, json: &str, timeout: Duration) -> Result<Response, HttpError> {
    request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(json.as_bytes()),
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let ok = |u: &str, host: &str, port: u16, path: &str| {
            assert_eq!(
                Url::parse(u).expect(u),
                Url {
                    host: host.into(),
                    port,
                    path: path.into(),
                    tls: u.starts_with("https"),
                },
                "{u}"
            );
        };
        ok("https://pi", "pi", 443, "/");
        ok("https://pi:9090/x", "pi", 9090, "/x");
        ok("http://localhost:9090", "localhost", 9090, "/");
        ok(
            "http://127.0.0.1:9090/api/v1/query?query=up",
            "127.0.0.1",
            9090,
            "/api/v1/query?query=up",
        );
        ok("http://pi", "pi", 80, "/");
        ok("http://pi?x=1", "pi", 80, "/?x=1");
        ok("http://[::1]:9090/x", "::1", 9090, "/x");
        ok("http://[::1]/x", "::1", 80, "/x");
        for bad in [
            "localhost:9090",
            "ftp://x",
            "http://",
            "http://:80/",
            "http://h:port/",
            "http://[::1",
            "http://u@h/",
        ] {
            assert!(
                matches!(Url::parse(bad), Err(HttpError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    /// Serves one canned response on a real socket and returns what the client sent.
    fn serve_once(resp: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/p?q=1", l.local_addr().expect("addr"));
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the request head and any body that arrived with it.
            s.set_read_timeout(Some(Duration::from_millis(300))).ok();
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") && !got.starts_with(b"POST") {
                    break;
                }
            }
            s.write_all(resp).ok();
            got
        });
        (url, h)
    }

    #[test]
    fn reads_bodies_of_every_framing() {
        let cases: &[(&str, &'static [u8], u16, &str)] = &[
            ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello"),
            (
                "chunked",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nT: v\r\n\r\n",
                200,
                "hello",
            ),
            ("eof", b"HTTP/1.0 404 Not Found\r\nX: y\r\n\r\nnope", 404, "nope"),
            ("304", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", 304, ""),
        ];
        for (name, raw, status, body) in cases {
            let (url, h) = serve_once(raw);
            let r = get(&url, Duration::from_secs(5)).expect(name);
            assert_eq!(r.status, *status, "{name}");
            assert_eq!(r.text(), *body, "{name}");
            let sent = String::from_utf8(h.join().expect("server")).expect("utf8");
            assert!(
                sent.starts_with("GET /p?q=1 HTTP/1.1\r\n"),
                "{name}: {sent}"
            );
            assert!(sent.contains("Connection: close"), "{name}");
        }
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: &[&'static [u8]] = &[
            b"",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ];
        for raw in cases {
            let (url, h) = serve_once(raw);
            let r = get(&url, Duration::from_secs(5));
            assert!(r.is_err(), "{:?} -> {r:?}", String::from_utf8_lossy(raw));
            h.join().ok();
        }
    }

    #[test]
    fn posts_forms() {
        let (url, h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let r = post_form(&url, "query=1%2B1", Duration::from_secs(5)).expect("post");
        assert_eq!(r.text(), "ok");
        let sent = String::from_utf8(h.join().expect("server")).expect("utf8");
        assert!(sent.contains("Content-Type: application/x-www-form-urlencoded\r\n"));
        assert!(sent.contains("Content-Length: 11\r\n"));
        assert!(sent.ends_with("\r\n\r\nquery=1%2B1"), "{sent}");
    }

    #[test]
    fn connection_refused_names_the_address() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let err = get(&format!("http://{addr}/"), Duration::from_secs(2)).expect_err("refused");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::Command;

    /// A certificate made the way Pi owners make them: `openssl req -x509` (which marks it CA:TRUE).
    fn self_signed(dir: &std::path::Path, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", &format!("/CN={cn}")])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        (cert, key)
    }

    /// Serves HTTPS on loopback with the given certificate, answering every request with "tls ok".
    fn serve_tls(cert: &std::path::Path, key: &std::path::Path, conns: usize) -> u16 {
        let certs: Vec<_> = rustls_pemfile::certs(&mut &std::fs::read(cert).expect("cert")[..])
            .collect::<Result<_, _>>()
            .expect("certs");
        let key = rustls_pemfile::private_key(&mut &std::fs::read(key).expect("key")[..])
            .expect("key")
            .expect("a key");
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config"),
        );
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for _ in 0..conns {
                let Ok((tcp, _)) = l.accept() else { return };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ntls ok");
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        });
        port
    }

    #[test]
    fn https_with_a_self_signed_ca_file_and_its_failures() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = self_signed(dir.path(), "board");
        let (other, _) = self_signed(dir.path(), "other");
        let t = Duration::from_secs(5);
        let cases: &[(&str, TlsOptions, Option<&str>)] = &[
            (
                "the board's own certificate as CA file",
                TlsOptions {
                    ca_file: Some(cert.clone()),
                    insecure_skip_verify: false,
                },
                None,
            ),
            (
                "insecure_skip_verify",
                TlsOptions {
                    ca_file: None,
                    insecure_skip_verify: true,
                },
                None,
            ),
            (
                "another certificate as CA file",
                TlsOptions {
                    ca_file: Some(other.clone()),
                    insecure_skip_verify: false,
                },
                Some("certificate"),
            ),
            (
                "a CA file that does not exist",
                TlsOptions {
                    ca_file: Some(dir.path().join("nope.pem")),
                    insecure_skip_verify: false,
                },
                Some("nope.pem"),
            ),
        ];
        let port = serve_tls(&cert, &key, cases.len());
        for (name, opts, want_err) in cases {
            let r = request_with(
                opts,
                "GET",
                &format!("https://127.0.0.1:{port}/"),
                &[],
                None,
                t,
            );
            match (want_err, r) {
                (None, Ok(r)) => assert_eq!(r.text(), "tls ok", "{name}"),
                (Some(w), Err(e)) => {
                    let mut msg = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        msg.push_str(&format!(": {s}"));
                        src = s.source();
                    }
                    assert!(msg.to_lowercase().contains(w), "{name}: {msg}");
                }
                (w, r) => panic!("{name}: wanted error {w:?}, got {r:?}"),
            }
        }
    }
}
