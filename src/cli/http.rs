//! A small blocking HTTP/1.1 client over `std::net`, for the terminal commands (`edgeprom query`)
//! and for whole-binary tests that talk to a server or a WebDriver.
//!
//! The terminal client runs once per command over SSH on a board; pulling an async runtime and a
//! connection pool into that path buys nothing. One request per connection (`Connection: close`),
//! `Content-Length` and chunked bodies, a timeout on connect, read and write. Plain `http://` only:
//! `https://` is refused with a typed error (TLS for the client is pending).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
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
    /// `https://` URLs are not supported by this client yet.
    #[error("{url}: https is not supported by the terminal client yet; use http://")]
    HttpsUnsupported {
        /// The URL as given.
        url: String,
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
    /// TCP port (80 when not given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |reason| HttpError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(HttpError::HttpsUnsupported {
                url: url.to_string(),
            });
        } else {
            return Err(bad("must start with http://"));
        };
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
                "" => 80,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("invalid port"))?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Url { host, port, path })
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

/// Sends one request and reads the whole response. `headers` are sent as given, after `Host`,
/// `Connection: close` and (with a body) `Content-Length`.
pub fn request(
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
    let mut stream = None;
    for sa in sockets {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match stream {
        Some(s) => s,
        None => {
            return Err(io("connecting to")(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
            })))
        }
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io("configuring"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io("configuring"))?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: edgeprom/{}\r\n",
        u.path,
        if u.port == 80 {
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
    let mut w = &stream;
    w.write_all(head.as_bytes()).map_err(io("writing to"))?;
    if let Some(b) = body {
        w.write_all(b).map_err(io("writing to"))?;
    }
    w.flush().map_err(io("writing to"))?;
    read_response(BufReader::new(&stream), &addr, method == "HEAD")
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
                    path: path.into()
                },
                "{u}"
            );
        };
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
        assert!(matches!(
            Url::parse("https://pi:9090"),
            Err(HttpError::HttpsUnsupported { .. })
        ));
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
