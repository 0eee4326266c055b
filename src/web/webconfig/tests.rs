use super::*;

fn parse(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
    parse_str(text, Path::new("web.yml"), dir)
}

fn err(text: &str, dir: &Path) -> String {
    match parse(text, dir) {
        Ok(c) => panic!("accepted {text:?}: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A self-signed CA, a server cert it signs, and a client cert it signs, written to `dir`.
fn write_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&srv_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), srv.pem()).unwrap();
    std::fs::write(dir.join("server.key"), srv_key.serialize_pem()).unwrap();
}

#[test]
fn rejects_bad_configs_with_place() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path());
    let cases: &[(&str, &str)] = &[
        ("tls_server_config:\n  cert_flie: x\n", "line 2"),
        ("tls_server_config:\n  cert_flie: x\n", "unknown field `cert_flie`"),
        ("basic_auth: {}\n", "unknown field `basic_auth`"),
        ("basic_auth_users:\n  alice: plain\n", "basic_auth_users.alice: not a bcrypt hash"),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: me\n",
            "HTTP header \"X-Powered-By\" can not be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "invalid value for X-Frame-Options",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n",
            "missing one of key or key_file",
        ),
        (
            "tls_server_config:\n  key_file: server.key\n",
            "missing one of cert or cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: server.key\n",
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n",
            "client CA's have been configured without a Client Auth Policy",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            "invalid ClientAuth: Sometimes",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: SSL3\n",
            "unknown TLS version: SSL3",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  max_version: TLS11\n",
            "no TLS version",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_FOO]\n",
            "unknown cipher: TLS_FOO",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            "is not supported by this server",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  curve_preferences: [CurveP521]\n",
            "CurveP521 is not supported",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_allowed_sans: [a]\n",
            "client_allowed_sans requires client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: ca.pem\n  key_file: server.key\n",
            "certificate and key do not form a pair",
        ),
        (
            "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
            "no CERTIFICATE block",
        ),
        ("rate_limit:\n  interval: soon\n", "rate_limit.interval"),
        ("- a\n- b\n", "invalid type"),
    ];
    for (text, want) in cases {
        let e = err(text, dir.path());
        assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
        assert!(e.starts_with("web.yml: "), "{e}");
    }
}

#[test]
fn accepts_toolkit_examples() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path());
    let cases: &[(&str, bool)] = &[
        ("", false),
        ("# only a comment\n", false),
        ("tls_server_config: {}\n", false),
        ("http_server_config:\n  http2: false\n", false),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n", true),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n",
            true,
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [client.example, 127.0.0.1]\n",
            true,
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
            true,
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
            true,
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequestClientCert\n  min_version: TLS10\n",
            true,
        ),
    ];
    for (text, tls) in cases {
        let c = parse(text, dir.path()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(c.tls_acceptor().is_some(), *tls, "{text:?}");
    }
    // Inline PEM instead of files.
    let cert = std::fs::read_to_string(dir.path().join("server.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("server.key")).unwrap();
    let text = serde_json::json!({"tls_server_config": {"cert": cert, "key": key}}).to_string();
    let c = parse(&text, Path::new("/nonexistent")).unwrap();
    assert!(c.tls_acceptor().is_some());
}

#[test]
fn reading_is_bounded_to_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = err(
        "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
        dir.path(),
    );
    assert!(e.contains("not a regular file"), "{e}");
}

fn basic(user: &str, pass: &str) -> HeaderMap {
    use base64::Engine as _;
    let mut h = HeaderMap::new();
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
    );
    h
}

#[test]
fn basic_auth_allows_only_the_right_password() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let text = format!("basic_auth_users:\n  alice: {hash}\n  bob: {hash}\n");
    let c = parse(&text, Path::new(".")).unwrap();
    assert!(c.has_users());
    let long = "x".repeat(80);
    let cases: &[(&str, Option<HeaderMap>, bool)] = &[
        ("right password", Some(basic("alice", "s3cret")), true),
        ("second user", Some(basic("bob", "s3cret")), true),
        (
            "right password again (cached)",
            Some(basic("alice", "s3cret")),
            true,
        ),
        ("wrong password", Some(basic("alice", "secret")), false),
        (
            "unknown user with a valid password",
            Some(basic("carol", "s3cret")),
            false,
        ),
        ("empty password", Some(basic("alice", "")), false),
        ("password over 72 bytes", Some(basic("alice", &long)), false),
        ("no header", None, false),
        (
            "bearer",
            {
                let mut h = HeaderMap::new();
                h.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_static("Bearer abc"),
                );
                Some(h)
            },
            false,
        ),
        (
            "bad base64",
            {
                let mut h = HeaderMap::new();
                h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
                Some(h)
            },
            false,
        ),
    ];
    for (name, headers, allowed) in cases {
        let r = c.check_auth(&headers.clone().unwrap_or_default());
        assert_eq!(r.is_none(), *allowed, "{name}");
        if let Some(r) = r {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
            assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Basic", "{name}");
        }
    }
    // Verdicts are cached: the repeated pair did not add an entry; each distinct pair did.
    let n = c.cache.lock().unwrap().len();
    assert_eq!(n, 6, "one entry per distinct user/password pair tried");
}

#[test]
fn auth_cache_stays_bounded() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let c = parse(&format!("basic_auth_users:\n  u: {hash}\n"), Path::new(".")).unwrap();
    for i in 0..(AUTH_CACHE_ENTRIES + 40) {
        assert!(c.check_auth(&basic("u", &format!("wrong{i}"))).is_some());
    }
    assert!(c.cache.lock().unwrap().len() <= AUTH_CACHE_ENTRIES);
    assert!(c.check_auth(&basic("u", "pw")).is_none());
}

#[test]
fn headers_default_override_and_remove() {
    type Want<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: &[(&str, Want)] = &[
        (
            "",
            &[("x-content-type-options", Some("nosniff")), ("x-frame-options", Some("deny"))],
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n    Strict-Transport-Security: max-age=31536000\n",
            &[
                ("x-frame-options", Some("sameorigin")),
                ("strict-transport-security", Some("max-age=31536000")),
                ("x-content-type-options", Some("nosniff")),
            ],
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: \"\"\n",
            &[("x-frame-options", None)],
        ),
    ];
    for (text, want) in cases {
        let c = parse(text, Path::new(".")).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-frame-options", HeaderValue::from_static("from-handler"));
        c.apply_headers(&mut h);
        for (name, value) in *want {
            assert_eq!(
                h.get(*name).and_then(|v| v.to_str().ok()),
                *value,
                "{text:?} {name}"
            );
        }
    }
}

#[test]
fn rate_limit_refuses_beyond_burst() {
    let c = parse("rate_limit:\n  interval: 1h\n  burst: 2\n", Path::new(".")).unwrap();
    let codes: Vec<Option<u16>> = (0..4)
        .map(|_| c.check_auth(&HeaderMap::new()).map(|r| r.status().as_u16()))
        .collect();
    assert_eq!(codes, vec![None, None, Some(429), Some(429)]);
}

#[test]
fn watcher_reloads_and_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("web.yml");
    std::fs::write(&p, "").unwrap();
    let w = WebConfigWatcher::new(&p).unwrap();
    assert!(!w.current().has_users());
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&p, format!("basic_auth_users:\n  u: {hash}\n")).unwrap();
    // Force the next look (the watcher looks at most once per second).
    w.check.lock().unwrap().0 -= CHECK_EVERY;
    assert!(w.current().has_users(), "reloaded after the change");
    std::fs::write(&p, "basic_auth_users: [oops\n").unwrap();
    w.check.lock().unwrap().0 -= CHECK_EVERY;
    assert!(
        w.current().has_users(),
        "a bad file keeps the last good config"
    );
    std::fs::write(&p, "").unwrap();
    w.check.lock().unwrap().0 -= CHECK_EVERY;
    assert!(!w.current().has_users(), "a fixed file is picked up");
}

#[test]
fn loading_a_missing_file_names_it() {
    let e = load(Path::new("/nonexistent/web.yml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/web.yml"), "{e}");
}
