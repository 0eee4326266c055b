//! `/-/healthy`, `/-/ready`, `/-/reload` and `/-/quit`, with Prometheus's status codes and the
//! lifecycle flag check.

use super::{text, Req, Resp, WebState};
use http::{Method, StatusCode};
use std::sync::Arc;
use tokio::sync::oneshot;

const LIFECYCLE_DISABLED: &str = "Lifecycle API is not enabled.";

fn only_get_head(req: &Req) -> Option<Resp> {
    (req.method != Method::GET && req.method != Method::HEAD)
        .then(|| text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"))
}

fn only_post_put(req: &Req) -> Option<Resp> {
    (req.method != Method::POST && req.method != Method::PUT)
        .then(|| text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"))
}

/// Always 200 while the process serves HTTP.
pub fn healthy(req: &Req) -> Resp {
    only_get_head(req).unwrap_or_else(|| text(StatusCode::OK, "edgeprom Server is Healthy.\n"))
}

/// 503 until storage is open and the first config applied.
pub fn ready(state: &WebState, req: &Req) -> Resp {
    if let Some(r) = only_get_head(req) {
        return r;
    }
    if state.is_ready() {
        text(StatusCode::OK, "edgeprom Server is Ready.\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
    }
}

/// Asks `app` to reload; 403 without `--web.enable-lifecycle`, 500 with the error on failure.
pub async fn reload(state: &Arc<WebState>, req: &Req) -> Resp {
    if let Some(r) = only_post_put(req) {
        return r;
    }
    if !state.enable_lifecycle {
        return text(StatusCode::FORBIDDEN, LIFECYCLE_DISABLED);
    }
    let (tx, rx) = oneshot::channel();
    if state.reload_tx.send(tx).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match rx.await {
        Ok(Ok(())) => text(StatusCode::OK, ""),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// Starts a graceful shutdown; 403 without `--web.enable-lifecycle`.
pub async fn quit(state: &Arc<WebState>, req: &Req) -> Resp {
    if let Some(r) = only_post_put(req) {
        return r;
    }
    if !state.enable_lifecycle {
        return text(StatusCode::FORBIDDEN, LIFECYCLE_DISABLED);
    }
    let _ = state.quit_tx.send(()).await;
    text(StatusCode::OK, "Requesting termination... Goodbye!")
}
