//! DingTalk custom robots (自定义机器人): markdown messages, signed URLs
//! (加签) and DingTalk's own error codes in a 200 answer.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::utf8_percent_encode;
use serde::Serialize;
use sha2::Sha256;

use super::config::{DingTalkConfig, Problems, Secret, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, ErrcodeApi, QUERY_VALUE, webhook_endpoint};
use super::message::{Limit, Messages, Style, TemplateFuncs, truncate, truncation_marker};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::Notification;

/// Kept under the size DingTalk documents for robot message parameters
/// (15,000 bytes for the app robot API; the webhook robot is not
/// documented, so the same bound is used).
const MAX_TEXT_BYTES: usize = 15_000;

/// "send too fast, exceed 20 times per minute": the robot is muted for a
/// while, so the next try waits a minute.
const ERR_RATE_LIMITED: i64 = 130_101;
/// "system busy". Every other code is final: 310000 covers a bad
/// signature, a stale timestamp, missing keywords and IPs not on the
/// robot's list; 300001 a bad token.
const ERR_BUSY: i64 = -1;

#[derive(Clone)]
pub(crate) struct Spec {
    endpoint: Endpoint,
    secret: Option<Secret>,
    at_mobiles: Vec<String>,
    at_user_ids: Vec<String>,
    at_all: bool,
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
    c: &DingTalkConfig,
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
        at_mobiles: c.at_mobiles.clone(),
        at_user_ids: c.at_user_ids.clone(),
        at_all: c.at_all,
        messages,
        timeout: c.timeout,
    })
}

/// DingTalk's signature: base64 of HMAC-SHA256 keyed with the secret over
/// `timestamp + "\n" + secret`, not yet URL-encoded.
pub(crate) fn sign(secret: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this branch cannot be reached.
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(crate) struct DingTalk {
    spec: Spec,
    name: String,
    shared: Shared,
}

#[derive(Serialize)]
struct Payload<'a> {
    msgtype: &'static str,
    markdown: Markdown,
    at: At<'a>,
}

#[derive(Serialize)]
struct Markdown {
    title: String,
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct At<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    at_mobiles: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    at_user_ids: &'a [String],
    is_at_all: bool,
}

fn heading(title: &str) -> String {
    format!("#### {title}\n\n")
}

impl DingTalk {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> DingTalk {
        DingTalk { spec, name, shared }
    }

    fn body(&self, n: &Notification) -> Vec<u8> {
        let m = &self.spec.messages;
        // DingTalk shows only `text` in the chat; `title` is the preview
        // in the conversation list, so the text repeats it as a heading.
        let mentions: String = self
            .spec
            .at_mobiles
            .iter()
            .map(|m| format!(" @{m}"))
            .collect();
        let r = m.render(n, &self.name, Style::Paragraphs, |title| {
            Limit::bytes(MAX_TEXT_BYTES.saturating_sub(heading(title).len() + mentions.len() + 2))
        });
        let mut text = if r.custom_text {
            r.text
        } else {
            format!("{}{}", heading(&r.title), r.text)
        };
        // A mention only notifies when the number also appears in the text.
        let missing: String = self
            .spec
            .at_mobiles
            .iter()
            .filter(|m| !text.contains(&format!("@{m}")))
            .map(|m| format!(" @{m}"))
            .collect();
        let marker = truncation_marker(m.language);
        text = truncate(
            &text,
            Limit::bytes(MAX_TEXT_BYTES.saturating_sub(missing.len())),
            marker,
        );
        if !missing.is_empty() {
            text.push_str("\n\n");
            text.push_str(missing.trim_start());
        }
        let payload = Payload {
            msgtype: "markdown",
            markdown: Markdown {
                title: r.title,
                text,
            },
            at: At {
                at_mobiles: &self.spec.at_mobiles,
                at_user_ids: &self.spec.at_user_ids,
                is_at_all: self.spec.at_all,
            },
        };
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let ep = &self.spec.endpoint;
        let uri = match &self.spec.secret {
            Some(secret) => {
                let now = (self.shared.clock)();
                let ts = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let sig = sign(secret.expose(), ts);
                let sig = utf8_percent_encode(&sig, QUERY_VALUE).to_string();
                ep.with_query(&[("timestamp", &ts.to_string()), ("sign", &sig)])?
            }
            None => ep.uri.clone(),
        };
        let resp = self
            .shared
            .http
            .post_json(ep, &uri, self.body(n), &[], self.spec.timeout)
            .await?;
        ErrcodeApi {
            vendor: "DingTalk",
            rate_limited: ERR_RATE_LIMITED,
            busy: ERR_BUSY,
        }
        .check(ep, &resp)
    }
}

impl Notifier for DingTalk {
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
        // Computed with Python's hmac module (see receivers_dingtalk.rs).
        let secret = "SECf3c0e2a1b9d84e7c6a5b4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2";
        assert_eq!(
            sign(secret, 1_700_000_000_000),
            "bsz4cpqKJl0ZVBKGZbYXRpRElFhDXuKO+jBjZQEQNCg="
        );
    }
}
