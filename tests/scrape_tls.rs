//! The HTTP client against real HTTPS servers with certificates made by the `openssl` CLI the
//! way Pi owners make them, plus auth headers and proxies, and one scrape through the manager
//! to see a TLS failure as the target's lastError.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgeprom::config::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig};
use edgeprom::http_client::HttpClient;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// A CA (`openssl req -x509`, CA:TRUE) named `name`.
fn make_ca(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    let subj = format!("/CN={name}");
    let mut a = vec!["req", "-x509"];
    a.extend(EC);
    a.extend([
        "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj,
    ]);
    openssl(dir, &a);
}

/// A leaf `name` signed by CA `ca`, with `ext` lines (SAN, usage) and `days` (negative: expired).
fn make_leaf(dir: &Path, ca: &str, name: &str, ext: &str, days: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    let extf = format!("{name}.ext");
    std::fs::write(dir.join(&extf), ext).unwrap();
    let mut a = vec!["req"];
    a.extend(EC);
    a.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", "/CN=leaf"]);
    openssl(dir, &a);
    let cacrt = format!("{ca}.crt");
    let cakey = format!("{ca}.key");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &cacrt,
            "-CAkey",
            &cakey,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            days,
            "-extfile",
            &extf,
        ],
    );
}

/// What Pi owners run: one self-signed certificate that is its own CA.
fn make_self_signed(dir: &Path, name: &str, san: &str) {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    let addext = format!("subjectAltName={san}");
    let mut a = vec!["req", "-x509"];
    a.extend(EC);
    a.extend([
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "30",
        "-subj",
        "/CN=pi.local",
        "-addext",
        &addext,
    ]);
    openssl(dir, &a);
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(p: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let pem = std::fs::read(p).unwrap();
    rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.unwrap())
        .collect()
}

fn key(p: &Path) -> rustls::pki_types::PrivateKeyDer<'static> {
    let pem = std::fs::read(p).unwrap();
    rustls_pemfile::private_key(&mut pem.as_slice())
        .unwrap()
        .unwrap()
}

fn server_tls(dir: &Path, name: &str, client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    let b = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(&dir.join(format!("{ca}.crt"))) {
                roots.add(c).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(
        b.with_single_cert(
            certs(&dir.join(format!("{name}.crt"))),
            key(&dir.join(format!("{name}.key"))),
        )
        .unwrap(),
    )
}

type Seen = Arc<Mutex<Vec<(String, http::HeaderMap)>>>;

/// Serves `ok 1` on every path over TLS (or plain HTTP), recording request URIs and headers.
async fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let tls = tls.clone();
            let seen = s2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    seen.lock()
                        .unwrap()
                        .push((req.uri().to_string(), req.headers().clone()));
                    async {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"ok 1\n",
                        ))))
                    }
                });
                let b = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn client(tls: TlsConfig) -> HttpClient {
    HttpClient::new(&HttpClientConfig {
        tls,
        follow_redirects: true,
        ..Default::default()
    })
    .expect("client")
}

async fn get(c: &HttpClient, url: &str) -> Result<String, String> {
    let mut body = Vec::new();
    let uri: http::Uri = url.parse().unwrap();
    match tokio::time::timeout(
        Duration::from_secs(10),
        c.get_into(&uri, &http::HeaderMap::new(), &mut body, 0),
    )
    .await
    {
        Err(_) => Err("timeout".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(h)) => Ok(format!(
            "{} {}",
            h.status.as_u16(),
            String::from_utf8_lossy(&body).trim_end()
        )),
    }
}

fn p(dir: &Path, f: &str) -> Option<PathBuf> {
    Some(dir.join(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_cases() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_ca(dir, "ca");
    make_ca(dir, "otherca");
    let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    make_leaf(dir, "ca", "good", server_ext, "2");
    make_leaf(dir, "ca", "expired", server_ext, "-1");
    make_leaf(
        dir,
        "ca",
        "othername",
        "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n",
        "2",
    );
    make_self_signed(dir, "selfsigned", "IP:127.0.0.1,DNS:pi.local");
    make_self_signed(dir, "selfsigned2", "IP:127.0.0.1");

    let tls = |ca: Option<&str>| TlsConfig {
        ca_file: ca.and_then(|c| p(dir, c)),
        ..Default::default()
    };
    // (server cert, client tls_config, Ok(body) or Err(fragment))
    let cases: Vec<(&str, &str, TlsConfig, Result<&str, &str>)> = vec![
        (
            "ca-signed leaf",
            "good",
            tls(Some("ca.crt")),
            Ok("200 ok 1"),
        ),
        (
            "unknown CA",
            "good",
            tls(Some("otherca.crt")),
            Err("x509: certificate signed by unknown authority"),
        ),
        (
            "system roots only",
            "good",
            tls(None),
            Err("x509: certificate signed by unknown authority"),
        ),
        (
            "expired",
            "expired",
            tls(Some("ca.crt")),
            Err("x509: certificate has expired or is not yet valid"),
        ),
        (
            "name mismatch",
            "othername",
            tls(Some("ca.crt")),
            Err("x509: certificate is valid for other.example, not 127.0.0.1"),
        ),
        (
            "server_name override",
            "othername",
            TlsConfig {
                server_name: Some("other.example".into()),
                ..tls(Some("ca.crt"))
            },
            Ok("200 ok 1"),
        ),
        (
            "openssl req -x509 self-signed as its own ca_file",
            "selfsigned",
            tls(Some("selfsigned.crt")),
            Ok("200 ok 1"),
        ),
        (
            "self-signed, server_name must still match",
            "selfsigned",
            TlsConfig {
                server_name: Some("wrong.example".into()),
                ..tls(Some("selfsigned.crt"))
            },
            Err("x509: certificate is valid for 127.0.0.1, pi.local, not wrong.example"),
        ),
        (
            "a different self-signed certificate is not trusted",
            "selfsigned",
            tls(Some("selfsigned2.crt")),
            Err("x509: certificate signed by unknown authority"),
        ),
        (
            "insecure_skip_verify",
            "othername",
            TlsConfig {
                insecure_skip_verify: true,
                ..Default::default()
            },
            Ok("200 ok 1"),
        ),
    ];
    for (name, server, cfg, want) in cases {
        let (addr, _) = serve(Some(server_tls(dir, server, None))).await;
        let got = get(&client(cfg), &format!("https://{addr}/metrics")).await;
        match (&got, want) {
            (Ok(b), Ok(w)) => assert_eq!(b, w, "{name}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
            _ => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_ca(dir, "ca");
    make_leaf(
        dir,
        "ca",
        "srv",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "2",
    );
    make_leaf(dir, "ca", "cli", "extendedKeyUsage=clientAuth\n", "2");
    let (addr, _) = serve(Some(server_tls(dir, "srv", Some("ca")))).await;
    let url = format!("https://{addr}/metrics");
    let without = get(
        &client(TlsConfig {
            ca_file: p(dir, "ca.crt"),
            ..Default::default()
        }),
        &url,
    )
    .await;
    assert!(without.is_err(), "{without:?}");
    let with = get(
        &client(TlsConfig {
            ca_file: p(dir, "ca.crt"),
            cert_file: p(dir, "cli.crt"),
            key_file: p(dir, "cli.key"),
            ..Default::default()
        }),
        &url,
    )
    .await;
    assert_eq!(with, Ok("200 ok 1".to_string()));
    // Bad settings are reported when the client is built.
    let e = HttpClient::new(&HttpClientConfig {
        tls: TlsConfig {
            cert_file: p(dir, "cli.crt"),
            ..Default::default()
        },
        ..Default::default()
    })
    .expect_err("key_file missing");
    assert!(e.to_string().contains("cert_file and key_file"), "{e}");
    let e = HttpClient::new(&HttpClientConfig {
        tls: TlsConfig {
            ca_file: p(dir, "nope.crt"),
            ..Default::default()
        },
        ..Default::default()
    })
    .expect_err("missing file");
    assert!(e.to_string().contains("nope.crt"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_headers_and_connection_reuse() {
    let d = tempfile::tempdir().unwrap();
    let pwfile = d.path().join("pw");
    std::fs::write(&pwfile, "s3cret\n").unwrap();
    let (addr, seen) = serve(None).await;
    let url = format!("http://{addr}/metrics");
    let cases = [
        (
            HttpClientConfig {
                basic_auth: Some(BasicAuth {
                    username: "user".into(),
                    password: Some(Secret("pass".into())),
                    password_file: None,
                }),
                ..Default::default()
            },
            "Basic dXNlcjpwYXNz",
        ),
        (
            HttpClientConfig {
                basic_auth: Some(BasicAuth {
                    username: "user".into(),
                    password: None,
                    password_file: Some(pwfile.clone()),
                }),
                ..Default::default()
            },
            "Basic dXNlcjpzM2NyZXQ=",
        ),
        (
            HttpClientConfig {
                authorization: Some(Authorization {
                    kind: "Bearer".into(),
                    credentials: Some(Secret("tok".into())),
                    credentials_file: None,
                }),
                ..Default::default()
            },
            "Bearer tok",
        ),
    ];
    for (cfg, want) in cases {
        let c = HttpClient::new(&cfg).unwrap();
        assert_eq!(get(&c, &url).await, Ok("200 ok 1".into()));
        assert_eq!(get(&c, &url).await, Ok("200 ok 1".into()));
        assert_eq!(
            c.idle_connections(),
            1,
            "the connection is kept for the next request"
        );
        let last = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.1.get("authorization").unwrap(), want);
    }
}

/// A minimal HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded as they are.
async fn proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let l2 = lines.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            let lines = l2.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let first = text.lines().next().unwrap_or("").to_string();
                lines.lock().unwrap().push(first.clone());
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or("");
                let target = parts.next().unwrap_or("").to_string();
                if method == "CONNECT" {
                    let Ok(mut up) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = c
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
                } else {
                    let uri: http::Uri = target.parse().unwrap();
                    let Ok(mut up) = TcpStream::connect(uri.authority().unwrap().as_str()).await
                    else {
                        return;
                    };
                    let _ = up.write_all(&head).await;
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
                }
            });
        }
    });
    (addr, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_plain_and_connect() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_self_signed(dir, "ss", "IP:127.0.0.1");
    let (plain, _) = serve(None).await;
    let (secure, _) = serve(Some(server_tls(dir, "ss", None))).await;
    let (paddr, lines) = proxy().await;
    let c = HttpClient::new(&HttpClientConfig {
        proxy_url: Some(format!("http://{paddr}")),
        tls: TlsConfig {
            ca_file: p(dir, "ss.crt"),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        get(&c, &format!("http://{plain}/m")).await,
        Ok("200 ok 1".into())
    );
    assert_eq!(
        get(&c, &format!("https://{secure}/m")).await,
        Ok("200 ok 1".into())
    );
    let l = lines.lock().unwrap().clone();
    assert_eq!(l[0], format!("GET http://{plain}/m HTTP/1.1"));
    assert_eq!(l[1], format!("CONNECT {secure} HTTP/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_over_https_reports_tls_errors_as_last_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_self_signed(dir, "ss", "IP:127.0.0.1");
    make_self_signed(dir, "other", "IP:127.0.0.1");
    let (addr, _) = serve(Some(server_tls(dir, "ss", None))).await;
    let yaml = format!(
        "scrape_configs:
  - job_name: good
    scheme: https
    scrape_interval: 200ms
    scrape_timeout: 150ms
    tls_config: {{ca_file: ss.crt}}
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: bad
    scheme: https
    scrape_interval: 200ms
    scrape_timeout: 150ms
    tls_config: {{ca_file: other.crt}}
    static_configs: [{{targets: ['{addr}']}}]
"
    );
    let cfg = edgeprom::config::load_str(&yaml, "t.yml", dir).unwrap();
    struct Null;
    struct NullApp;
    impl edgeprom::storage::Appendable for Null {
        fn appender(&self) -> Box<dyn edgeprom::storage::Appender> {
            Box::new(NullApp)
        }
    }
    impl edgeprom::storage::Appender for NullApp {
        fn append(
            &mut self,
            _: edgeprom::storage::SeriesRef,
            _: &edgeprom::model::Labels,
            _: i64,
            _: f64,
        ) -> edgeprom::storage::Result<edgeprom::storage::SeriesRef> {
            Ok(edgeprom::storage::SeriesRef(1))
        }
        fn commit(self: Box<Self>) -> edgeprom::storage::Result<()> {
            Ok(())
        }
        fn rollback(self: Box<Self>) {}
    }
    let m = edgeprom::scrape::ScrapeManager::new(Arc::new(Null));
    m.apply_config(&cfg.scrape_configs).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = m.handle_api("/api/v1/targets", &[]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let t = v["data"]["activeTargets"].as_array().unwrap().clone();
        let get = |job: &str| t.iter().find(|x| x["scrapePool"] == job).cloned().unwrap();
        let (good, bad) = (get("good"), get("bad"));
        if good["health"] != "unknown" && bad["health"] != "unknown" {
            assert_eq!(good["health"], "up", "{good}");
            assert_eq!(bad["health"], "down");
            assert_eq!(
                bad["lastError"],
                format!(
                    "Get \"https://{addr}/metrics\": x509: certificate signed by unknown authority"
                )
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scrape happened: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    m.stop().await;
}
