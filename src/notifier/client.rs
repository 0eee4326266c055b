//! POSTing alert batches: through the shared [`crate::http_client::HttpClient`] (TLS,
//! basic_auth, authorization, proxy) for Alertmanagers from the config, or through a minimal
//! hyper-util client for plain `http://` endpoints given without HTTP settings.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL could not be used.
    #[error("bad URL {url:?}: {msg}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Connecting or transferring failed.
    #[error("{0}")]
    Transport(String),
    /// No answer within the timeout.
    #[error("context deadline exceeded after {0:?}")]
    Timeout(Duration),
    /// The server answered with a non-2xx status.
    #[error("bad response status {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
}

/// A pooled HTTP/1 client.
#[derive(Clone)]
pub struct HttpPoster {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpPoster {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpPoster {
    /// A new client; connections are reused between batches.
    pub fn new() -> Self {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(10)));
        conn.set_nodelay(true);
        HttpPoster {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(conn),
        }
    }

    /// POSTs a JSON body; succeeds on any 2xx status.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(), PostError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| PostError::Url {
                url: url.to_string(),
                msg: e.to_string(),
            })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(PostError::Url {
                    url: url.to_string(),
                    msg: "https is not supported yet by the notifier's client".to_string(),
                })
            }
            _ => {
                return Err(PostError::Url {
                    url: url.to_string(),
                    msg: "scheme must be http".to_string(),
                })
            }
        }
        let req = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("edgeprom/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| PostError::Transport(e.to_string()))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| PostError::Transport(error_chain(&e)))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| PostError::Transport(e.to_string()))?
                .to_bytes();
            if status.is_success() {
                Ok(())
            } else {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                Err(PostError::Status {
                    status: status.as_u16(),
                    body: text,
                })
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| PostError::Timeout(timeout))?
    }
}

/// POSTs a JSON body through the shared client; succeeds on any 2xx status.
pub async fn post_with(
    client: &crate::http_client::HttpClient,
    url: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<(), PostError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| PostError::Url {
            url: url.to_string(),
            msg: e.to_string(),
        })?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let mut resp = Vec::new();
    // The answer of an Alertmanager is tiny; 64 KiB bounds a misbehaving one.
    let fut = client.request_into(
        http::Method::POST,
        &uri,
        &headers,
        body,
        &mut resp,
        64 * 1024,
    );
    let head = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| PostError::Timeout(timeout))?
        .map_err(|e| PostError::Transport(error_chain(&e)))?;
    if head.status.is_success() {
        Ok(())
    } else {
        Err(PostError::Status {
            status: head.status.as_u16(),
            body: String::from_utf8_lossy(&resp[..resp.len().min(512)]).into_owned(),
        })
    }
}

use crate::logging::error_chain;
