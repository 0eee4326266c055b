//! Whole-binary tests of `--web.config.file` (TLS, client certificates, basic auth, reload),
//! security headers and the admin API gate. Certificates are generated per test with rcgen;
//! the client side is rustls speaking HTTP/1.1 over loopback.

mod common;

use common::{free_port, write_file};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running edgeprom whose readiness we check ourselves (it may speak TLS or want a password).
struct Proc {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(dir: tempfile::TempDir, args: &[&str]) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_edgeprom"))
            .current_dir(dir.path())
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.path=data")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("edgeprom.log")).unwrap())
            .spawn()
            .expect("start edgeprom");
        Proc { child, addr, dir }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edgeprom.log")).unwrap_or_default()
    }
    /// Retries `f` until it returns Some or 20 s pass.
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Some(v) = f() {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; log:\n{}", self.log());
    }
}

/// Response: status, lower-cased headers, body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn exchange<S: Read + Write>(
    s: &mut S,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Resp> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    // rustls reports a peer that closes without close_notify as an error after the data.
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {text:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

fn plain(addr: &str, method: &str, path: &str, extra: &[(&str, &str)]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    exchange(&mut s, method, path, extra)
}

/// Test PKI: a CA, a server certificate for localhost/127.0.0.1, a client certificate, and a
/// client certificate from an unrelated CA.
struct Pki {
    ca_pem: String,
    client: (String, String),
    stranger: (String, String),
}

fn make_ca() -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

fn leaf(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: &[&str],
    client: bool,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_pki(dir: &Path) -> Pki {
    let (ca, issuer) = make_ca();
    let (srv_cert, srv_key) = leaf(&issuer, &["localhost", "127.0.0.1"], false);
    let client = leaf(&issuer, &["client.local"], true);
    let (_, other) = make_ca();
    let stranger = leaf(&other, &["client.local"], true);
    write_file(dir, "tls/ca.pem", &ca.pem());
    write_file(dir, "tls/server.pem", &srv_cert);
    write_file(dir, "tls/server.key", &srv_key);
    Pki {
        ca_pem: ca.pem(),
        client,
        stranger,
    }
}

fn tls_client(ca_pem: &str, client: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
    };
    Arc::new(cfg)
}

fn https(
    addr: &str,
    cfg: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Resp> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    exchange(&mut s, method, path, extra)
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn tls_serves_health_over_https_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path());
    // Paths in the web config are relative to the web config's own directory.
    write_file(
        dir.path(),
        "tls/web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    );
    let p = Proc::start(dir, &["--web.config.file=tls/web.yml"]);
    let cfg = tls_client(&pki.ca_pem, None);
    let r = p.wait("/-/healthy over https", || {
        https(&p.addr, &cfg, "GET", "/-/healthy", &[]).ok()
    });
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let m = https(&p.addr, &cfg, "GET", "/metrics", &[]).unwrap();
    assert_eq!(m.status, 200);
    assert!(m
        .body
        .contains("edgeprom_web_config_last_reload_successful 1"));
    // Plain HTTP on a TLS port gets no HTTP answer.
    if let Ok(r) = plain(&p.addr, "GET", "/-/healthy", &[]) {
        panic!("plain HTTP answered {} {}", r.status, r.body);
    }
}

#[test]
fn client_certificate_required_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path());
    write_file(
        dir.path(),
        "tls/web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let p = Proc::start(dir, &["--web.config.file=tls/web.yml"]);
    let good = tls_client(&pki.ca_pem, Some(&pki.client));
    let r = p.wait("https with a client cert", || {
        https(&p.addr, &good, "GET", "/-/healthy", &[]).ok()
    });
    assert_eq!(r.status, 200);
    let cases: &[(&str, Arc<rustls::ClientConfig>)] = &[
        ("no client certificate", tls_client(&pki.ca_pem, None)),
        (
            "certificate from another CA",
            tls_client(&pki.ca_pem, Some(&pki.stranger)),
        ),
    ];
    for (name, cfg) in cases {
        let r = https(&p.addr, cfg, "GET", "/-/healthy", &[]);
        assert!(
            r.is_err(),
            "{name}: got {}",
            r.map(|r| r.status).unwrap_or(0)
        );
    }
    // The server still serves the good client after refusing the others.
    assert_eq!(
        https(&p.addr, &good, "GET", "/-/healthy", &[])
            .unwrap()
            .status,
        200
    );
}

#[test]
fn basic_auth_good_and_bad_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("hunter2", 5).unwrap();
    write_file(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  grafana: {hash}\n"),
    );
    let p = Proc::start(dir, &["--web.config.file=web.yml"]);
    let good = basic("grafana", "hunter2");
    p.wait("healthy with auth", || {
        plain(&p.addr, "GET", "/-/healthy", &[("Authorization", &good)])
            .ok()
            .filter(|r| r.status == 200)
    });
    let wrong = basic("grafana", "hunter3");
    let stranger = basic("mallory", "hunter2");
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("good password", "/-/healthy", Some(&good), 200),
        ("good password, metrics", "/metrics", Some(&good), 200),
        ("good password, unknown path", "/nope", Some(&good), 404),
        ("wrong password", "/-/healthy", Some(&wrong), 401),
        ("unknown user", "/-/healthy", Some(&stranger), 401),
        ("no credentials", "/-/healthy", None, 401),
        ("no credentials, unknown path", "/nope", None, 401),
        ("no credentials, api", "/api/v1/status/buildinfo", None, 401),
    ];
    for (name, path, auth, want) in cases {
        let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = plain(&p.addr, "GET", path, &extra).unwrap();
        assert_eq!(r.status, *want, "{name}: {}", r.body);
        if *want == 401 {
            assert_eq!(r.header("www-authenticate"), Some("Basic"), "{name}");
            assert_eq!(r.body, "Unauthorized\n", "{name}");
        }
        assert_eq!(r.header("x-frame-options"), Some("deny"), "{name}");
    }
}

#[test]
fn web_config_changes_are_picked_up_and_bad_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let h1 = bcrypt::hash("one", 4).unwrap();
    let h2 = bcrypt::hash("two", 4).unwrap();
    let web = write_file(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  u: {h1}\n"),
    );
    let p = Proc::start(dir, &["--web.config.file=web.yml"]);
    let (one, two) = (basic("u", "one"), basic("u", "two"));
    let status = |auth: &str| {
        plain(&p.addr, "GET", "/-/healthy", &[("Authorization", auth)])
            .map(|r| r.status)
            .unwrap_or(0)
    };
    p.wait("first password works", || {
        (status(&one) == 200).then_some(())
    });
    assert_eq!(status(&two), 401);

    std::fs::write(&web, format!("basic_auth_users:\n  u: {h2}\n")).unwrap();
    p.wait("new password works", || (status(&two) == 200).then_some(()));
    assert_eq!(status(&one), 401, "old password refused after reload");

    // A broken file is logged and the last good config stays in force.
    std::fs::write(&web, "basic_auth_users:\n  u: [\n").unwrap();
    p.wait("reload error logged", || {
        status(&two);
        p.log().contains("cannot reload web config").then_some(())
    });
    assert_eq!(status(&two), 200);
    assert_eq!(status(&one), 401);

    // Removing the users opens the server again.
    std::fs::write(&web, "").unwrap();
    p.wait("auth off", || {
        (plain(&p.addr, "GET", "/-/healthy", &[])
            .map(|r| r.status)
            .ok()
            == Some(200))
        .then_some(())
    });
}

#[test]
fn bad_web_config_at_start_is_a_clear_error() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "tls_server_config:\n  cert: x\n  certfile: y\n",
            &["web.yml", "line 3", "certfile"],
        ),
        (
            "missing certificate file",
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n",
            &["tls_server_config.cert_file", "missing.pem"],
        ),
        (
            "plain-text password",
            "basic_auth_users:\n  admin: admin\n",
            &["basic_auth_users.admin", "bcrypt"],
        ),
    ];
    for (name, text, wants) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "web.yml", text);
        let (code, _out, err) = common::run(
            dir.path(),
            &[
                "--web.config.file=web.yml",
                &format!("--web.listen-address=127.0.0.1:{}", free_port()),
                "--storage.tsdb.path=data",
            ],
        );
        assert_ne!(code, 0, "{name}: started anyway");
        for w in *wants {
            assert!(err.contains(w), "{name}: stderr lacks {w:?}:\n{err}");
        }
    }
}

#[test]
fn admin_api_only_with_flag() {
    let off = common::Server::start(&[]);
    let on = common::Server::start(&["--web.enable-admin-api"]);
    let paths = [
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        "/api/v1/admin/tsdb/clean_tombstones",
        "/api/v1/admin/tsdb/snapshot",
    ];
    for path in paths {
        for method in ["POST", "PUT"] {
            let (code, body) = common::request(&off.addr, method, path, None);
            assert_eq!(code, 503, "{method} {path}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["errorType"], "unavailable");
            assert_eq!(v["error"], "admin APIs disabled");

            let (_, body) = common::request(&on.addr, method, path, None);
            assert!(
                !body.contains("admin APIs disabled"),
                "{method} {path} with the flag: {body}"
            );
        }
        for srv in [&off, &on] {
            let (code, _) = common::request(&srv.addr, "GET", path, None);
            assert_eq!(code, 405, "GET {path}");
        }
    }
}

#[test]
fn security_headers_without_web_config() {
    let s = common::Server::start(&[]);
    for path in [
        "/-/healthy",
        "/metrics",
        "/nope",
        "/api/v1/status/buildinfo",
    ] {
        let r = plain(&s.addr, "GET", path, &[]).unwrap();
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("deny"), "{path}");
    }
}
