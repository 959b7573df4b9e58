//! WeCom (企业微信) group robots: markdown messages of at most 4096 bytes.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::utf8_percent_encode;
use serde::Serialize;

use super::config::{DEFAULT_WECOM_API_URL, Problems, WeComConfig, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, ErrcodeApi, QUERY_VALUE, webhook_endpoint};
use super::message::{Limit, Messages, Style, TemplateFuncs, truncate, truncation_marker};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::{AlertStatus, Notification};

/// WeCom refuses longer markdown content (error 40058), counting UTF-8
/// bytes, so a Chinese character costs three.
pub(crate) const MAX_CONTENT_BYTES: usize = 4096;

/// "api freq out of limit": more than 20 messages a minute.
const ERR_RATE_LIMITED: i64 = 45_009;
/// "system busy". Every other code is final: 93000 a bad webhook key,
/// 40058 content too long.
const ERR_BUSY: i64 = -1;

#[derive(Clone)]
pub(crate) struct Spec {
    endpoint: Endpoint,
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
    c: &WeComConfig,
    field: &str,
    funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let has_url =
        c.webhook_url.is_some() || c.webhook_url_file.is_some() || c.webhook_url_env.is_some();
    let has_key = c.key.is_some() || c.key_file.is_some() || c.key_env.is_some();
    let endpoint = if has_url && has_key {
        p.push(
            field,
            "set either webhook_url (with its key) or key, not both",
        );
        None
    } else if has_key {
        let key = resolve_secret(
            p,
            &format!("{field}.key"),
            &c.key,
            &c.key_file,
            &c.key_env,
            true,
        );
        let base = c.api_url.as_deref().unwrap_or(DEFAULT_WECOM_API_URL);
        key.and_then(|key| {
            let key = utf8_percent_encode(key.expose(), QUERY_VALUE);
            let sep = if base.contains('?') { '&' } else { '?' };
            match Endpoint::parse(&format!("{base}{sep}key={key}")) {
                Ok(e) => Some(e),
                Err(msg) => {
                    p.push(&format!("{field}.api_url"), msg);
                    None
                }
            }
        })
    } else {
        if c.api_url.is_some() {
            p.push(
                &format!("{field}.api_url"),
                "only used with key; webhook_url is the whole URL",
            );
        }
        webhook_endpoint(
            p,
            field,
            &c.webhook_url,
            &c.webhook_url_file,
            &c.webhook_url_env,
        )
    };
    // Parsed before the endpoint is unwrapped, so that template errors
    // are reported even when the URL is wrong too.
    let messages = Messages::parse(p, field, c.language, &c.title, &c.text, funcs);
    Some(Spec {
        endpoint: endpoint?,
        messages,
        timeout: c.timeout,
    })
}

#[derive(Serialize)]
struct Payload {
    msgtype: &'static str,
    markdown: Markdown,
}

#[derive(Serialize)]
struct Markdown {
    content: String,
}

pub(crate) struct WeCom {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl WeCom {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> WeCom {
        WeCom { spec, name, shared }
    }

    /// The markdown content: the title in WeCom's warning (orange) or info
    /// (green) colour, then the body; never over [`MAX_CONTENT_BYTES`].
    pub(crate) fn content(&self, n: &Notification) -> String {
        let m = &self.spec.messages;
        let colour = match n.status() {
            AlertStatus::Firing => "warning",
            AlertStatus::Resolved => "info",
        };
        let limit = Limit::bytes(MAX_CONTENT_BYTES);
        let heading = |title: &str| format!("<font color=\"{colour}\">**{title}**</font>\n");
        let r = m.render(n, &self.name, Style::Markdown, |title| {
            Limit::bytes(MAX_CONTENT_BYTES.saturating_sub(heading(title).len()))
        });
        let content = if r.custom_text {
            r.text
        } else {
            format!("{}{}", heading(&r.title), r.text)
        };
        truncate(&content, limit, truncation_marker(m.language))
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let ep = &self.spec.endpoint;
        let payload = Payload {
            msgtype: "markdown",
            markdown: Markdown {
                content: self.content(n),
            },
        };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let resp = self
            .shared
            .http
            .post_json(ep, &ep.uri, body, &[], self.spec.timeout)
            .await?;
        ErrcodeApi {
            vendor: "WeCom",
            rate_limited: ERR_RATE_LIMITED,
            busy: ERR_BUSY,
        }
        .check(ep, &resp)
    }
}

impl Notifier for WeCom {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}
