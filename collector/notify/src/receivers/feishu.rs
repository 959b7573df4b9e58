//! Feishu / Lark custom bots (自定义机器人): an interactive card with a
//! red (firing) or green (resolved) header and a markdown body; with a
//! signature secret, `timestamp` and `sign` go in the body.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::config::{FeishuConfig, Problems, Secret, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, HttpResponse, webhook_endpoint};
use super::message::{Limit, Messages, Style, TemplateFuncs, truncate, truncation_marker};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::{AlertStatus, Notification};

/// Feishu caps a bot's request body at 20 KB; the card's JSON around the
/// text needs some of it.
const MAX_TEXT_BYTES: usize = 18_000;

/// Signature did not match, or the timestamp is more than an hour off.
const ERR_BAD_SIGNATURE: i64 = 19_021;
/// Too many requests (unverified code; Feishu allows 100 a minute and 5 a
/// second per bot).
const ERR_RATE_LIMITED: i64 = 11_232;

#[derive(Clone)]
pub(crate) struct Spec {
    endpoint: Endpoint,
    secret: Option<Secret>,
    messages: Arc<Messages>,
    timeout: Duration,
}

impl Spec {
    pub(crate) fn rate_key(&self) -> String {
        self.endpoint.uri.to_string()
    }

    pub(crate) fn display(&self) -> String {
        self.endpoint.display.clone()
    }
}

pub(crate) fn resolve(
    c: &FeishuConfig,
    field: &str,
    funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let endpoint = webhook_endpoint(
        p,
        field,
        &c.webhook_url,
        &c.webhook_url_file,
        &c.webhook_url_env,
    );
    let secret = resolve_secret(
        p,
        &format!("{field}.secret"),
        &c.secret,
        &c.secret_file,
        &c.secret_env,
        false,
    );
    // Parsed before the endpoint is unwrapped, so that template errors
    // are reported even when the URL is wrong too.
    let messages = Messages::parse(p, field, c.language, &c.title, &c.text, funcs);
    Some(Spec {
        endpoint: endpoint?,
        secret,
        messages,
        timeout: c.timeout,
    })
}

/// Feishu's signature: base64 of HMAC-SHA256 whose *key* is
/// `timestamp + "\n" + secret` over an empty message.
pub(crate) fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        // HMAC takes keys of any length; this branch cannot be reached.
        return String::new();
    };
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Serialize)]
struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign: Option<String>,
    msg_type: &'static str,
    card: Card,
}

#[derive(Serialize)]
struct Card {
    config: CardConfig,
    header: Header,
    elements: Vec<Element>,
}

#[derive(Serialize)]
struct CardConfig {
    wide_screen_mode: bool,
}

#[derive(Serialize)]
struct Header {
    template: &'static str,
    title: PlainText,
}

#[derive(Serialize)]
struct PlainText {
    tag: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Element {
    tag: &'static str,
    content: String,
}

#[derive(serde::Deserialize)]
struct Answer {
    code: Option<i64>,
    msg: Option<String>,
    // Older bot versions answer in this form.
    #[serde(rename = "StatusCode")]
    status_code: Option<i64>,
    #[serde(rename = "StatusMessage")]
    status_message: Option<String>,
}

pub(crate) struct Feishu {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl Feishu {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Feishu {
        Feishu { spec, name, shared }
    }

    fn body(&self, n: &Notification) -> Vec<u8> {
        let m = &self.spec.messages;
        let r = m.render(n, &self.name, Style::Markdown, |_| {
            Limit::bytes(MAX_TEXT_BYTES)
        });
        let text = truncate(
            &r.text,
            Limit::bytes(MAX_TEXT_BYTES),
            truncation_marker(m.language),
        );
        let (timestamp, sign) = match &self.spec.secret {
            Some(secret) => {
                let now = (self.shared.clock)();
                let ts = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                (Some(ts.to_string()), Some(sign(secret.expose(), ts)))
            }
            None => (None, None),
        };
        let template = match n.status() {
            AlertStatus::Firing => "red",
            AlertStatus::Resolved => "green",
        };
        let payload = Payload {
            timestamp,
            sign,
            msg_type: "interactive",
            card: Card {
                config: CardConfig {
                    wide_screen_mode: true,
                },
                header: Header {
                    template,
                    title: PlainText {
                        tag: "plain_text",
                        content: r.title,
                    },
                },
                elements: vec![Element {
                    tag: "markdown",
                    content: text,
                }],
            },
        };
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let ep = &self.spec.endpoint;
        let resp = self
            .shared
            .http
            .post_json(ep, &ep.uri, self.body(n), &[], self.spec.timeout)
            .await?;
        check_answer(ep, &resp)
    }
}

fn check_answer(ep: &Endpoint, resp: &HttpResponse) -> Result<(), NotifyError> {
    // Feishu puts its code in the body, with 200 or with 400, so the body
    // is read first and the status only decides when there is no code.
    let answer = serde_json::from_slice::<Answer>(&resp.body).ok();
    let code = answer.as_ref().and_then(|a| a.code.or(a.status_code));
    let Some(code) = code else {
        resp.check_status(ep)?;
        return Err(NotifyError::Permanent {
            message: format!(
                "POST {}: not a Feishu answer: {}",
                ep.display,
                resp.excerpt()
            ),
        });
    };
    let msg = answer
        .as_ref()
        .and_then(|a| a.msg.clone().or_else(|| a.status_message.clone()))
        .unwrap_or_default();
    match code {
        0 => resp.check_status(ep),
        ERR_BAD_SIGNATURE => Err(NotifyError::Permanent {
            message: format!(
                "POST {}: Feishu error {code}: {msg} (wrong secret, or this host's clock is off by more than an hour)",
                ep.display
            ),
        }),
        ERR_RATE_LIMITED => Err(NotifyError::Retryable {
            message: format!("POST {}: Feishu error {code}: {msg}", ep.display),
            retry_after: Some(Duration::from_secs(10)),
        }),
        _ if resp.status.is_server_error() => Err(NotifyError::Retryable {
            message: format!("POST {}: Feishu error {code}: {msg}", ep.display),
            retry_after: resp.retry_after,
        }),
        _ => Err(NotifyError::Permanent {
            message: format!("POST {}: Feishu error {code}: {msg}", ep.display),
        }),
    }
}

impl Notifier for Feishu {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed with Python's hmac module (see receivers_feishu.rs).
        assert_eq!(
            sign("lookout-feishu-secret", 1_599_360_473),
            "7Be/L4XjwyflysdLLnTZKGRnwCbqbd9paM29lZVMvNg="
        );
    }
}
