//! The HTTP client the chat and webhook receivers share: hyper-util's
//! pooled client over rustls (ring provider, webpki roots), plain HTTP
//! allowed for in-cluster webhooks. URLs carry tokens, so they are only
//! ever shown as scheme and host ([`Endpoint::display`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::NotifyError;
use super::config::{Problems, Secret, resolve_secret};

/// Bodies of answers are read up to this size: vendors answer with a few
/// bytes of JSON, and a misbehaving proxy must not fill memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("Lookout/", env!("CARGO_PKG_VERSION"));

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
}

impl HttpClient {
    pub(crate) fn new(connect_timeout: Duration) -> Result<HttpClient, rustls::Error> {
        let mut http = HttpConnector::new();
        // The TLS layer needs the URL's scheme passed through.
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(HttpClient { client })
    }

    /// POSTs a JSON body and reads the answer, all within `timeout`.
    /// Network errors and timeouts are retryable; the status is left to
    /// the caller, which knows the vendor's error codes.
    pub(crate) async fn post_json(
        &self,
        endpoint: &Endpoint,
        uri: &Uri,
        body: Vec<u8>,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<HttpResponse, NotifyError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| NotifyError::Permanent {
                message: format!("POST {}: cannot build the request: {err}", endpoint.display),
            })?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|err| NotifyError::Retryable {
                    message: format!("POST {}: {}", endpoint.display, error_chain(&err)),
                    retry_after: None,
                })?;
            let (parts, mut body) = resp.into_parts();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|err| NotifyError::Retryable {
                    message: format!(
                        "POST {}: reading the answer: {}",
                        endpoint.display,
                        error_chain(&err)
                    ),
                    retry_after: None,
                })?;
                if let Ok(data) = frame.into_data() {
                    let room = MAX_RESPONSE_BYTES.saturating_sub(buf.len());
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok(HttpResponse {
                status: parts.status,
                retry_after: parts
                    .headers
                    .get(header::RETRY_AFTER)
                    .and_then(parse_retry_after),
                body: buf,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(NotifyError::Retryable {
                message: format!(
                    "POST {}: no answer within {}",
                    endpoint.display,
                    humantime::format_duration(timeout)
                ),
                retry_after: None,
            }),
        }
    }
}

pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    /// The answer's start, for error messages.
    pub(crate) fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text.to_string(),
        }
    }

    /// The usual reading of a status: 2xx delivered; 408, 429 and 5xx worth
    /// retrying (after `Retry-After` if given); other codes final.
    pub(crate) fn check_status(&self, endpoint: &Endpoint) -> Result<(), NotifyError> {
        let status = self.status;
        if status.is_success() {
            return Ok(());
        }
        let message = format!(
            "POST {}: HTTP {}: {}",
            endpoint.display,
            status.as_u16(),
            self.excerpt()
        );
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Err(NotifyError::Retryable {
                message,
                retry_after: self.retry_after,
            })
        } else {
            Err(NotifyError::Permanent { message })
        }
    }
}

/// A target URL and what may be shown of it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) uri: Uri,
    /// `scheme://host[:port]`, never the path or query, which hold tokens.
    pub(crate) display: String,
}

impl Endpoint {
    /// Parses an http(s) URL. The error never repeats the URL.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|err| format!("not a valid URL ({err})"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            Some(_) => return Err("the URL must start with http:// or https://".to_string()),
            None => return Err("not an absolute URL (http:// or https://)".to_string()),
        };
        let Some(authority) = uri.authority() else {
            return Err("the URL has no host".to_string());
        };
        // Credentials in the authority (user:pass@host) are left out too.
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        let display = format!("{scheme}://{host}");
        Ok(Endpoint { uri, display })
    }

    /// The URL with query parameters appended (already encoded).
    pub(crate) fn with_query(&self, params: &[(&str, &str)]) -> Result<Uri, NotifyError> {
        let mut url = self.uri.to_string();
        for (k, v) in params {
            let sep = if url.contains('?') { '&' } else { '?' };
            let _ = write!(url, "{sep}{k}={v}");
        }
        url.parse().map_err(|err| NotifyError::Permanent {
            message: format!(
                "POST {}: cannot add the signature to the URL: {err}",
                self.display
            ),
        })
    }
}

/// Characters escaped in a query value: all but RFC 3986's unreserved
/// ones, so `+`, `/` and `=` of base64 signatures are encoded as DingTalk's
/// own examples (Python's `quote_plus`) encode them.
pub(crate) const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The endpoint of a resolved URL secret; a bad URL is a problem at
/// `field` (which never repeats the URL).
pub(crate) fn endpoint_of(p: &mut Problems, field: &str, url: Option<Secret>) -> Option<Endpoint> {
    match Endpoint::parse(url?.expose()) {
        Ok(e) => Some(e),
        Err(msg) => {
            p.push(field, msg);
            None
        }
    }
}

/// How a chat robot API in the `{"errcode": 0, "errmsg": "ok"}` style
/// (DingTalk, WeCom) answers: the HTTP status is 200 whatever happened, and
/// the code says whether the message was taken.
pub(crate) struct ErrcodeApi {
    pub vendor: &'static str,
    /// Too many messages: retried after a minute, the APIs' window.
    pub rate_limited: i64,
    /// "System busy": retried.
    pub busy: i64,
}

#[derive(serde::Deserialize)]
struct ErrcodeAnswer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
}

impl ErrcodeApi {
    pub(crate) fn check(&self, ep: &Endpoint, resp: &HttpResponse) -> Result<(), NotifyError> {
        resp.check_status(ep)?;
        let vendor = self.vendor;
        let answer: ErrcodeAnswer =
            serde_json::from_slice(&resp.body).map_err(|_| NotifyError::Permanent {
                message: format!(
                    "POST {}: not a {vendor} answer: {}",
                    ep.display,
                    resp.excerpt()
                ),
            })?;
        let said = |code: i64| {
            format!(
                "POST {}: {vendor} error {code}: {}",
                ep.display, answer.errmsg
            )
        };
        match answer.errcode {
            Some(0) => Ok(()),
            Some(code) if code == self.rate_limited => Err(NotifyError::Retryable {
                message: said(code),
                retry_after: Some(Duration::from_secs(60)),
            }),
            Some(code) if code == self.busy => Err(NotifyError::Retryable {
                message: said(code),
                retry_after: None,
            }),
            // A bad key, signature or keyword, or content too long: the
            // same message fails the same way again.
            Some(code) => Err(NotifyError::Permanent {
                message: said(code),
            }),
            None => Err(NotifyError::Permanent {
                message: format!(
                    "POST {}: {vendor} answer without errcode: {}",
                    ep.display,
                    resp.excerpt()
                ),
            }),
        }
    }
}

/// A robot's `webhook_url`, set inline, in a file or in the environment
/// (exactly one), as an endpoint; problems are reported at `field.webhook_url`.
pub(crate) fn webhook_endpoint(
    p: &mut Problems,
    field: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    env: &Option<String>,
) -> Option<Endpoint> {
    let field = format!("{field}.webhook_url");
    let url = resolve_secret(p, &field, inline, file, env, true);
    endpoint_of(p, &field, url)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An error and its causes on one line: hyper's top-level message
/// ("client error (Connect)") alone does not say what went wrong.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_path_query_and_userinfo() {
        let e = Endpoint::parse("https://oapi.dingtalk.com/robot/send?access_token=abc")
            .expect("valid");
        assert_eq!(e.display, "https://oapi.dingtalk.com");
        let e = Endpoint::parse("http://user:pw@127.0.0.1:8080/hook/tok").expect("valid");
        assert_eq!(e.display, "http://127.0.0.1:8080");
        let err = Endpoint::parse("ftp://x/secret-token")
            .err()
            .unwrap_or_default();
        assert!(!err.contains("secret-token"), "{err}");
        assert!(Endpoint::parse("/relative/secret").is_err());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
