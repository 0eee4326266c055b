//! The HTTP side: one hyper server, a router, lifecycle endpoints and the status API.
//!
//! `web` only reads: it holds views of the other components (engine, storage, scrape and rule
//! snapshots) and asks `app` to reload or quit through channels; it never builds them.

mod lifecycle;
pub use status::PROMETHEUS_COMPAT_VERSION;
mod status;
pub mod ui;
pub mod webconfig;

use crate::config::Config;
use crate::selfmetrics::{Registry, DEFAULT_BUCKETS};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// A request to `app` to reload the config; the answer says whether it worked.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Largest request body accepted (form-encoded queries, remote write batches). 8 MiB bounds
/// memory per connection on a 1 GB board while fitting any realistic query or write batch.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// A parsed request: method, path below the route prefix, query and form parameters.
pub struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path with the route prefix removed, always starting with `/`.
    pub path: String,
    /// Query-string then form-body parameters, in order.
    pub params: Vec<(String, String)>,
    /// Request headers.
    pub headers: http::HeaderMap,
    /// Raw body (for non-form content types such as remote write).
    pub body: Bytes,
}

impl Req {
    /// First value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A header as a string.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Mutable runtime facts shown by `/api/v1/status/runtimeinfo`.
#[derive(Debug, Default)]
pub struct RuntimeFacts {
    /// Whether the last reload worked.
    pub reload_success: bool,
    /// When the current config was applied (ms).
    pub last_config_ms: i64,
}

/// A plug-in API: given a path and parameters, maybe answers with (status, JSON body).
pub type ApiFn = Arc<dyn Fn(&str, &[(String, String)]) -> Option<(u16, Vec<u8>)> + Send + Sync>;

/// A plug-in handler that needs the whole request (e.g. `/federate`, `/api/v1/read`).
pub type RawFn = Arc<dyn Fn(&Req) -> Option<Resp> + Send + Sync>;

/// A plug-in text endpoint (e.g. `/node/metrics`).
pub type TextFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the web side shows, handed over by `app`.
pub struct WebState {
    /// Flag values for `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
    /// `--web.enable-lifecycle`.
    pub enable_lifecycle: bool,
    /// `--web.enable-admin-api`.
    pub enable_admin_api: bool,
    /// Route prefix without trailing slash ("" for none).
    pub route_prefix: String,
    /// External URL for links.
    pub external_url: String,
    /// Set once storage is open and the first config applied.
    pub ready: AtomicBool,
    /// The config in force (replaced on reload).
    pub config: RwLock<Arc<Config>>,
    /// Runtime facts.
    pub runtime: RwLock<RuntimeFacts>,
    /// Process start (ms).
    pub start_ms: i64,
    /// Storage retention as shown in runtimeinfo ("15d", "15d or 512MiB").
    pub storage_retention: String,
    /// Asks `app` to reload.
    pub reload_tx: mpsc::Sender<ReloadRequest>,
    /// Asks `app` to quit.
    pub quit_tx: mpsc::Sender<()>,
    /// Plug-in JSON APIs tried in order for paths under `/api/v1/` not handled here.
    pub apis: Vec<ApiFn>,
    /// Plug-in handlers that see the whole request, tried before the JSON APIs.
    pub raws: Vec<RawFn>,
    /// Plug-in text endpoints by path (`/node/metrics`).
    pub texts: BTreeMap<String, TextFn>,
    /// `--web.config.file` (TLS, basic auth, headers), re-read on change;
    /// `WebConfigWatcher::disabled()` without the flag.
    pub web_config: Arc<webconfig::WebConfigWatcher>,
}

impl WebState {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON response from raw bytes.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"status":"success","data":...}`.
pub fn api_ok(data: serde_json::Value) -> Resp {
    let body = serde_json::to_vec(&serde_json::json!({"status": "success", "data": data}))
        .unwrap_or_default();
    json_bytes(StatusCode::OK, body)
}

/// `{"status":"error","errorType":...,"error":...}` with Prometheus's status codes.
pub fn api_err(status: StatusCode, error_type: &str, msg: &str) -> Resp {
    let body = serde_json::to_vec(
        &serde_json::json!({"status": "error", "errorType": error_type, "error": msg}),
    )
    .unwrap_or_default();
    json_bytes(status, body)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Serves until shutdown. `max_connections` bounds concurrent connections; `read_timeout`
/// bounds how long a client may take to send its headers.
pub async fn serve(
    listener: TcpListener,
    state: Arc<WebState>,
    max_connections: usize,
    read_timeout: Duration,
    mut shutdown: Shutdown,
) {
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.started() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.started() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning, as a bad target must not
                    // take the server down either.
                    tracing::warn!(err = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // The web config in force when the connection arrives decides TLS for its lifetime.
            let tls = state.web_config.current().tls_acceptor();
            match tls {
                None => serve_conn(stream, state, peer, read_timeout, conn_shutdown).await,
                Some(acceptor) => {
                    // The handshake counts against the read timeout: a client that stalls in
                    // it cannot hold a connection slot longer than one sending slow headers.
                    match tokio::time::timeout(read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_conn(tls, state, peer, read_timeout, conn_shutdown).await
                        }
                        Ok(Err(e)) => tracing::debug!(err = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection (plain or TLS) until it ends or shutdown starts.
async fn serve_conn<I>(
    io: I,
    state: Arc<WebState>,
    peer: SocketAddr,
    read_timeout: Duration,
    mut shutdown: Shutdown,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(state, req, peer, read_timeout).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(err = %e, %peer, "connection ended with error"); } }
        _ = shutdown.started() => { conn.as_mut().graceful_shutdown(); let _ = conn.await; }
    }
}

async fn handle(
    state: Arc<WebState>,
    req: hyper::Request<Incoming>,
    _peer: SocketAddr,
    read_timeout: Duration,
) -> Resp {
    let wc = state.web_config.current();
    let mut resp = handle_inner(&state, &wc, req, read_timeout).await;
    wc.apply_headers(resp.headers_mut());
    resp
}

async fn handle_inner(
    state: &Arc<WebState>,
    wc: &Arc<webconfig::WebConfig>,
    req: hyper::Request<Incoming>,
    read_timeout: Duration,
) -> Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // Authentication first, for every path (as the toolkit wraps the whole mux). bcrypt may
    // take a second on a Pi: run it off the I/O threads.
    let denied = if wc.has_users() {
        let (wc, headers) = (wc.clone(), parts.headers.clone());
        tokio::task::spawn_blocking(move || wc.check_auth(&headers))
            .await
            .unwrap_or_else(|_| {
                Some(text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "auth check failed\n",
                ))
            })
    } else {
        wc.check_auth(&parts.headers)
    };
    if let Some(r) = denied {
        return r;
    }
    let raw_path = parts.uri.path().to_string();
    let path = match strip_prefix(&raw_path, &state.route_prefix) {
        Some(p) => p,
        None => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    // The read timeout covers the body too: a client trickling bytes cannot hold the slot.
    let body = match tokio::time::timeout(
        read_timeout,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read request body: {e}\n"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "timed out reading the request body\n",
            )
        }
    };
    let mut params: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form && parts.method == Method::POST {
        params.extend(form_urlencoded::parse(&body).into_owned());
    }
    let req = Req {
        method: parts.method,
        path,
        params,
        headers: parts.headers,
        body,
    };
    let (handler, resp) = route(state, &req).await;
    let code = resp.status().as_u16().to_string();
    let reg = Registry::global();
    reg.counter(
        "prometheus_http_requests_total",
        "Counter of HTTP requests.",
        &[("code", &code), ("handler", handler)],
    )
    .inc();
    reg.histogram(
        "prometheus_http_request_duration_seconds",
        "Histogram of latencies for HTTP requests.",
        &[("handler", handler)],
        DEFAULT_BUCKETS,
    )
    .observe(started.elapsed().as_secs_f64());
    resp
}

fn strip_prefix(path: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some(path.to_string());
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/".to_string())
    } else if rest.starts_with('/') {
        Some(rest.to_string())
    } else {
        None
    }
}

/// Routes a request; returns the handler label for metrics and the response.
async fn route(state: &Arc<WebState>, req: &Req) -> (&'static str, Resp) {
    let p = req.path.as_str();
    match p {
        "/-/healthy" => ("/-/healthy", lifecycle::healthy(req)),
        "/-/ready" => ("/-/ready", lifecycle::ready(state, req)),
        "/-/reload" => ("/-/reload", lifecycle::reload(state, req).await),
        "/-/quit" => ("/-/quit", lifecycle::quit(state, req).await),
        "/metrics" => {
            let mut out = String::with_capacity(16 << 10);
            Registry::global().expose(&mut out);
            let mut r = text(StatusCode::OK, out);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            ("/metrics", r)
        }
        "/api/v1/status/buildinfo" => ("/api/v1/status/buildinfo", status::buildinfo()),
        "/api/v1/status/flags" => (
            "/api/v1/status/flags",
            api_ok(serde_json::json!(state.flags)),
        ),
        "/api/v1/status/config" => {
            let yaml = state.config.read().map(|c| c.to_yaml()).unwrap_or_default();
            (
                "/api/v1/status/config",
                api_ok(serde_json::json!({ "yaml": yaml })),
            )
        }
        "/api/v1/status/runtimeinfo" => ("/api/v1/status/runtimeinfo", status::runtimeinfo(state)),
        _ => {
            if let Some(f) = state.texts.get(p) {
                let f = f.clone();
                let body = tokio::task::spawn_blocking(move || f())
                    .await
                    .unwrap_or_default();
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return ("other", r);
            }
            if let Some(r) = admin_gate(state, req) {
                return ("/api/v1/admin", r);
            }
            if !state.raws.is_empty() {
                // Raw handlers read storage: tell the runtime this thread may block.
                if let Some(r) =
                    tokio::task::block_in_place(|| state.raws.iter().find_map(|f| f(req)))
                {
                    return (raw_handler_label(p), r);
                }
            }
            if p == "/" {
                let mut r = text(StatusCode::FOUND, "");
                let loc = format!("{}/graph", state.route_prefix);
                if let Ok(v) = header::HeaderValue::from_str(&loc) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return ("/", r);
            }
            if req.method == Method::GET || req.method == Method::HEAD {
                if let Some(r) = ui::serve(
                    p,
                    req.header(header::ACCEPT_ENCODING),
                    req.header(header::IF_NONE_MATCH),
                ) {
                    return ("/static", r);
                }
            }
            if p.starts_with("/api/v1/") {
                // Plug-in APIs may evaluate queries: keep them off the I/O threads.
                let apis = state.apis.clone();
                let path = p.to_string();
                let params = req.params.clone();
                let res = tokio::task::spawn_blocking(move || {
                    apis.iter().find_map(|f| f(&path, &params))
                })
                .await;
                return match res {
                    // No Content carries no body and no content type (admin actions).
                    Ok(Some((204, _))) => {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        (api_handler_label(p), r)
                    }
                    Ok(Some((code, body))) => (
                        api_handler_label(p),
                        json_bytes(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body),
                    ),
                    Ok(None) if ADMIN_PATHS.contains(&p) => (
                        "/api/v1/admin",
                        api_err(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            &format!("{p}: the storage engine does not provide this admin action"),
                        ),
                    ),
                    Ok(None) => (
                        "other",
                        api_err(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            &format!("unknown API endpoint {p}"),
                        ),
                    ),
                    Err(e) => (
                        "other",
                        api_err(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            &format!("handler failed: {e}"),
                        ),
                    ),
                };
            }
            ("other", text(StatusCode::NOT_FOUND, "404 page not found\n"))
        }
    }
}

fn raw_handler_label(p: &str) -> &'static str {
    match p {
        "/federate" => "/federate",
        "/api/v1/read" => "/api/v1/read",
        _ => "other",
    }
}

/// Prometheus's admin endpoints (POST or PUT; `--web.enable-admin-api`).
const ADMIN_PATHS: &[&str] = &[
    "/api/v1/admin/tsdb/delete_series",
    "/api/v1/admin/tsdb/clean_tombstones",
    "/api/v1/admin/tsdb/snapshot",
];

/// Answers admin requests that must not reach the storage engine, as Prometheus does: another
/// method than POST/PUT is `405`, and without `--web.enable-admin-api` every admin call is
/// `503` `unavailable` "admin APIs disabled". `None` lets an allowed call through.
fn admin_gate(state: &WebState, req: &Req) -> Option<Resp> {
    if !ADMIN_PATHS.contains(&req.path.as_str()) {
        return None;
    }
    if req.method != Method::POST && req.method != Method::PUT {
        return Some(text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"));
    }
    if !state.enable_admin_api {
        return Some(api_err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "admin APIs disabled",
        ));
    }
    None
}

/// Prometheus's TSDB admin API over `db`, as a plug-in for [`WebState::apis`]:
/// `delete_series` (`match[]`, `start`, `end`; 204), `clean_tombstones` (204) and `snapshot`
/// (`skip_head`; 200 `{"name": ...}`), with Prometheus 2.42's parameters, error types and
/// messages (`web/api/v1/api.go`: `deleteSeries`, `cleanTombstones`, `snapshot`). The method and
/// `--web.enable-admin-api` are checked by the router's gate before this runs.
pub fn tsdb_admin_api(db: Arc<crate::tsdb::Tsdb>) -> ApiFn {
    Arc::new(move |path, params| {
        let r = match path {
            "/api/v1/admin/tsdb/delete_series" => admin_delete(&db, params),
            "/api/v1/admin/tsdb/clean_tombstones" => db
                .clean_tombstones()
                .map(|_| None)
                .map_err(|e| ("internal", admin_error_chain(&e))),
            "/api/v1/admin/tsdb/snapshot" => admin_snapshot(&db, params),
            _ => return None,
        };
        let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
        Some(match r {
            Ok(None) => (204, Vec::new()),
            Ok(Some(data)) => (
                200,
                json(serde_json::json!({"status": "success", "data": data})),
            ),
            Err((kind, msg)) => (
                if kind == "bad_data" { 400 } else { 500 },
                json(serde_json::json!({"status": "error", "errorType": kind, "error": msg})),
            ),
        })
    })
}

use crate::logging::error_chain as admin_error_chain;

/// An admin answer: data (`None`: 204 No Content) or (errorType, message).
type AdminResult = Result<Option<serde_json::Value>, (&'static str, String)>;

fn admin_param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn admin_delete(db: &crate::tsdb::Tsdb, params: &[(String, String)]) -> AdminResult {
    let bad = |m: String| ("bad_data", m);
    let selectors: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if selectors.is_empty() {
        return Err(bad("no match[] parameter provided".into()));
    }
    let time = |name: &str, default: i64| {
        match admin_param(params, name) {
        None => Ok(default),
        Some(v) => crate::promql::api::parse_time(v).ok_or_else(|| {
            bad(format!(
                "invalid parameter \"{name}\": Invalid time value for '{name}': cannot parse {v:?} to a valid timestamp"
            ))
        }),
    }
    };
    let start = time("start", i64::MIN)?;
    let end = time("end", i64::MAX)?;
    let mut sets = Vec::with_capacity(selectors.len());
    for m in selectors {
        match crate::promql::parse(m) {
            Ok(crate::promql::Expr::Vector(vs)) => sets.push(vs.matchers),
            Ok(_) => {
                return Err(bad(format!(
                    "invalid parameter \"match[]\": 1:1: parse error: expected type instant vector in match[] {m:?}"
                )))
            }
            Err(e) => return Err(bad(format!("invalid parameter \"match[]\": {e}"))),
        }
    }
    db.delete_series(&sets, start, end)
        .map(|_| None)
        .map_err(|e| ("internal", admin_error_chain(&e)))
}

fn admin_snapshot(db: &crate::tsdb::Tsdb, params: &[(String, String)]) -> AdminResult {
    let skip_head = match admin_param(params, "skip_head") {
        None => false,
        // Go's strconv.ParseBool.
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        Some(v) => {
            return Err((
                "bad_data",
                format!("invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"),
            ))
        }
    };
    db.snapshot(skip_head)
        .map(|name| Some(serde_json::json!({ "name": name })))
        .map_err(|e| {
            (
                "internal",
                format!("create snapshot: {}", admin_error_chain(&e)),
            )
        })
}

/// A bounded set of handler labels, so metrics cardinality does not follow user input.
fn api_handler_label(p: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/query_exemplars",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/metadata",
        "/api/v1/targets",
        "/api/v1/targets/metadata",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/alertmanagers",
        "/api/v1/format_query",
        "/api/v1/parse_query",
        "/api/v1/status/tsdb",
        "/api/v1/read",
        "/api/v1/write",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == p) {
        return k;
    }
    if ADMIN_PATHS.contains(&p) {
        return "/api/v1/admin";
    }
    if p.starts_with("/api/v1/label/") {
        return "/api/v1/label/:name/values";
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_stripping() {
        let cases = [
            ("/metrics", "", Some("/metrics")),
            ("/p/metrics", "/p", Some("/metrics")),
            ("/p", "/p", Some("/")),
            ("/px/metrics", "/p", None),
            ("/metrics", "/p", None),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(
                strip_prefix(path, prefix).as_deref(),
                want,
                "{path} {prefix}"
            );
        }
    }

    #[test]
    fn handler_labels_are_bounded() {
        assert_eq!(
            api_handler_label("/api/v1/label/job/values"),
            "/api/v1/label/:name/values"
        );
        assert_eq!(api_handler_label("/api/v1/whatever/x"), "other");
    }
}
