//! The browser pages (`/graph`, `/targets`, `/alerts`, `/rules`, `/status`, `/flags`, `/config`,
//! `/tsdb-status`) and their static assets, embedded in the binary.
//!
//! A Pi is often on a network without internet access, so every byte a page needs ships inside the
//! executable: plain HTML, CSS and JavaScript from `src/web/ui/`, no CDN, no build step. Pages read
//! their data from the Prometheus-compatible JSON API with *relative* URLs (`api/v1/query` from a
//! page at `<prefix>/graph`), which is what makes them work under `--web.route-prefix` without
//! rewriting.
//!
//! Every page is the same small HTML shell (`page.html`) naming its script; the shell's asset URLs
//! carry a version derived from the content of all assets (`?v=<hash>`), so assets can be cached for
//! a long time while pages revalidate on every load (`Cache-Control: no-cache` plus an ETag, answered
//! with `304 Not Modified` when unchanged). Each asset is gzip-compressed once, on first use, and the
//! compressed form is kept for the life of the process.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    VARY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// The shell every page uses; `{{TITLE}}`, `{{PAGE}}`, `{{SCRIPTS}}` and `{{V}}` are filled in once.
const PAGE_TEMPLATE: &str = include_str!("ui/page.html");

/// The pages: (route, title shown in the tab, scripts under `static/` after `common.js`).
const PAGES: &[(&str, &str, &[&str])] = &[
    ("graph", "Graph", &["chart.js", "graph.js"]),
    ("targets", "Targets", &["targets.js"]),
    ("alerts", "Alerts", &["alerts.js"]),
    ("rules", "Rules", &["rules.js"]),
    ("status", "Status", &["status.js"]),
    ("flags", "Command-line flags", &["flags.js"]),
    ("config", "Configuration", &["config.js"]),
    ("tsdb-status", "TSDB status", &["chart.js", "tsdb.js"]),
];

/// The static assets: (path under the route prefix, content type, bytes).
const STATIC: &[(&str, &str, &[u8])] = &[
    (
        "static/style.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/style.css"),
    ),
    (
        "static/common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/common.js"),
    ),
    (
        "static/graph.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/graph.js"),
    ),
    (
        "static/chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/chart.js"),
    ),
    (
        "static/targets.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/targets.js"),
    ),
    (
        "static/alerts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/alerts.js"),
    ),
    (
        "static/rules.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/rules.js"),
    ),
    (
        "static/status.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/status.js"),
    ),
    (
        "static/flags.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/flags.js"),
    ),
    (
        "static/config.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/config.js"),
    ),
    (
        "static/tsdb.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/tsdb.js"),
    ),
    (
        "static/favicon.svg",
        "image/svg+xml",
        include_bytes!("ui/favicon.svg"),
    ),
];

/// Pages are small and change with the binary: always revalidate (cheap with the ETag).
const PAGE_CACHE: &str = "no-cache";
/// Assets are requested with a content-derived `?v=` from the page, so a new binary means new URLs.
const ASSET_CACHE: &str = "public, max-age=604800";
/// Pages load scripts and styles from the same origin only; inline `style` attributes are used by
/// the chart legend swatches.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   object-src 'none'; base-uri 'self'; frame-ancestors 'self'";

/// One servable representation set of an asset, built once.
struct Asset {
    content_type: &'static str,
    cache_control: &'static str,
    body: Bytes,
    etag: String,
    /// The gzip form, if it is smaller than the plain one.
    gzip: Option<(Bytes, String)>,
}

/// All assets, keyed by their path without a leading slash.
fn assets() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(build_assets)
}

fn build_assets() -> HashMap<&'static str, Asset> {
    let mut out = HashMap::new();
    // The version covers every static asset, so any change to any of them changes every page's URLs.
    let mut all = Vec::new();
    for (_, _, b) in STATIC {
        all.extend_from_slice(b);
    }
    let version = format!("{:012x}", xxhash_rust::xxh3::xxh3_64(&all) >> 16);
    for (path, ctype, body) in STATIC {
        out.insert(
            *path,
            make_asset(ctype, ASSET_CACHE, Bytes::from_static(body)),
        );
    }
    for (route, title, scripts) in PAGES {
        let tags: String = scripts
            .iter()
            .map(|s| format!("<script src=\"static/{s}?v={{{{V}}}}\" defer></script>\n"))
            .collect();
        let html = PAGE_TEMPLATE
            .replace("{{TITLE}}", title)
            .replace("{{PAGE}}", route)
            .replace("{{SCRIPTS}}", &tags)
            .replace("{{V}}", &version);
        out.insert(
            *route,
            make_asset("text/html; charset=utf-8", PAGE_CACHE, Bytes::from(html)),
        );
    }
    out
}

fn make_asset(content_type: &'static str, cache_control: &'static str, body: Bytes) -> Asset {
    let hash = xxhash_rust::xxh3::xxh3_64(&body);
    let etag = format!("\"{hash:016x}\"");
    let gzip = gzip(&body)
        .filter(|gz| gz.len() < body.len())
        .map(|gz| (Bytes::from(gz), format!("\"{hash:016x}-gz\"")));
    Asset {
        content_type,
        cache_control,
        body,
        etag,
        gzip,
    }
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Whether an `Accept-Encoding` header value allows gzip (RFC 9110 §12.5.3: a coding listed with
/// `q=0` is refused; `*` covers codings not listed).
fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut star = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f64;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    star.unwrap_or(false)
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110 §13.1.2 asks).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| -> String { t.trim().trim_start_matches("W/").to_string() };
    let want = strip(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == want)
}

/// The route names of all pages (without a leading slash), e.g. for the router or tests.
pub fn pages() -> impl Iterator<Item = &'static str> {
    PAGES.iter().map(|(route, _, _)| *route)
}

/// Serves an embedded page or asset for `path` (after the route prefix; "/" is NOT handled here,
/// the router redirects it to "graph"). A query string in `path` is ignored.
///
/// Handles Cache-Control, ETag/If-None-Match (answering 304) and gzip when `accept_encoding`
/// allows it. Returns `None` for a path that is not an embedded page or asset.
pub fn serve(
    path: &str,
    accept_encoding: Option<&str>,
    if_none_match: Option<&str>,
) -> Option<Response<Full<Bytes>>> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let key = path.trim_start_matches('/');
    let asset = assets().get(key)?;
    let use_gzip = asset.gzip.is_some() && accept_encoding.is_some_and(accepts_gzip);
    let (body, etag) = match (&asset.gzip, use_gzip) {
        (Some((gz, tag)), true) => (gz.clone(), tag.as_str()),
        _ => (asset.body.clone(), asset.etag.as_str()),
    };
    let not_modified = if_none_match.is_some_and(|inm| etag_matches(inm, etag));
    let mut resp = Response::new(Full::new(if not_modified {
        Bytes::new()
    } else {
        body.clone()
    }));
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    // Every value below is ASCII we built ourselves; from_str cannot fail on it, but stay total.
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache_control));
    if asset.gzip.is_some() {
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if !not_modified {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        if use_gzip {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if asset.content_type.starts_with("text/html") {
            h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        }
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Read;

    fn body_bytes(resp: Response<Full<Bytes>>) -> Bytes {
        // Full's body is ready at once: poll it on a throwaway runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async { resp.into_body().collect().await.expect("body").to_bytes() })
    }

    fn header<'a>(resp: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
        resp.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn unknown_paths_are_none() {
        for p in [
            "",
            "/",
            "/nope",
            "/static/nope.js",
            "/static/",
            "/../Cargo.toml",
            "/graph/",
            "/api/v1/query",
            "/ui/page.html",
        ] {
            assert!(serve(p, None, None).is_none(), "{p:?} should not be served");
        }
    }

    #[test]
    fn every_page_is_served_with_its_script_and_versioned_assets() {
        for (route, title, scripts) in PAGES {
            for p in [
                format!("/{route}"),
                route.to_string(),
                format!("/{route}?g0.expr=up"),
            ] {
                let resp = serve(&p, None, None).unwrap_or_else(|| panic!("{p} missing"));
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(
                    header(&resp, "content-type"),
                    Some("text/html; charset=utf-8")
                );
                assert_eq!(header(&resp, "cache-control"), Some(PAGE_CACHE));
                let html = String::from_utf8(body_bytes(resp).to_vec()).expect("utf8");
                assert!(html.contains(&format!("<title>{title}")), "{route}");
                for script in *scripts {
                    assert!(html.contains(&format!("static/{script}?v=")), "{route}");
                }
                assert!(!html.contains("{{"), "{route}: unfilled placeholder");
                // Relative URLs only, so the page works under --web.route-prefix.
                assert!(!html.contains("src=\"/"), "{route}: absolute src");
                assert!(!html.contains("href=\"/"), "{route}: absolute href");
            }
        }
    }

    #[test]
    fn every_referenced_asset_exists_and_no_script_uses_absolute_urls() {
        let html =
            String::from_utf8(body_bytes(serve("graph", None, None).expect("graph")).to_vec())
                .expect("utf8");
        for (path, _, body) in STATIC {
            assert!(serve(path, None, None).is_some(), "{path}");
            let text = String::from_utf8_lossy(body);
            for bad in [
                "fetch(\"/",
                "fetch('/",
                "href=\"/",
                "src=\"/",
                "http://",
                "https://",
            ] {
                // The SVG namespace URI is an identifier, not a request.
                let hits = text.matches(bad).count()
                    - text.matches("http://www.w3.org/2000/svg").count()
                        * usize::from(bad == "http://");
                assert_eq!(hits, 0, "{path} contains {bad}");
            }
        }
        for needle in [
            "static/style.css?v=",
            "static/common.js?v=",
            "static/favicon.svg?v=",
        ] {
            assert!(html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn etag_and_304() {
        let first = serve("/static/common.js", None, None).expect("asset");
        let etag = header(&first, "etag").expect("etag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_eq!(header(&first, "cache-control"), Some(ASSET_CACHE));
        let cases: &[(&str, StatusCode)] = &[
            (etag.as_str(), StatusCode::NOT_MODIFIED),
            (&format!("W/{etag}"), StatusCode::NOT_MODIFIED),
            (&format!("\"other\", {etag}"), StatusCode::NOT_MODIFIED),
            ("*", StatusCode::NOT_MODIFIED),
            ("\"other\"", StatusCode::OK),
            ("", StatusCode::OK),
        ];
        for (inm, want) in cases {
            let resp = serve("/static/common.js", None, Some(inm)).expect("asset");
            assert_eq!(resp.status(), *want, "If-None-Match: {inm}");
            assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
            let empty = body_bytes(resp).is_empty();
            assert_eq!(empty, *want == StatusCode::NOT_MODIFIED, "{inm}");
        }
        // The gzip representation has its own tag: a cached plain copy is not a gzip copy.
        let gz = serve("/static/common.js", Some("gzip"), Some(&etag)).expect("asset");
        assert_eq!(gz.status(), StatusCode::OK);
        let gz_tag = header(&gz, "etag").expect("etag").to_string();
        assert_ne!(gz_tag, etag);
        let again = serve("/static/common.js", Some("gzip, br"), Some(&gz_tag)).expect("asset");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn gzip_negotiation() {
        let plain = body_bytes(serve("/graph", None, None).expect("page"));
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("deflate, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip;q=0.0, *"), false),
            (Some("br"), false),
            (Some("identity"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("x-gzip"), true),
            (Some("gzip;q=garbage"), false),
        ];
        for (ae, want_gzip) in cases {
            let resp = serve("/graph", *ae, None).expect("page");
            let enc = header(&resp, "content-encoding").map(str::to_string);
            assert_eq!(enc.as_deref() == Some("gzip"), *want_gzip, "{ae:?}");
            assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"));
            let len: usize = header(&resp, "content-length")
                .and_then(|v| v.parse().ok())
                .expect("length");
            let body = body_bytes(resp);
            assert_eq!(len, body.len());
            let decoded = if *want_gzip {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .expect("valid gzip");
                out
            } else {
                body.to_vec()
            };
            assert_eq!(decoded, plain.to_vec(), "{ae:?}");
        }
    }

    #[test]
    fn total_compressed_size_is_under_budget() {
        let total: usize = assets()
            .values()
            .map(|a| a.gzip.as_ref().map_or(a.body.len(), |(gz, _)| gz.len()))
            .sum();
        assert!(total < 300 * 1024, "compressed assets take {total} bytes");
    }
}
