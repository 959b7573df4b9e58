//! Slack incoming webhooks: `text` for notifications and clients without
//! blocks, and mrkdwn section blocks (at most 3000 characters each) for
//! the message itself.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::{Problems, SlackConfig, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, endpoint_of};
use super::message::{Limit, Messages, Style, TemplateFuncs, split_chars, truncation_marker};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::Notification;

/// Slack rejects a section whose text is longer.
const SECTION_CHARS: usize = 3000;
/// Slack allows 50 blocks; one is the title.
const MAX_BODY_SECTIONS: usize = 49;
/// The built-in body stays readable well before Slack's limits.
const DEFAULT_BODY_CHARS: usize = 12_000;

#[derive(Clone)]
pub(crate) struct Spec {
    endpoint: Endpoint,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    messages: Arc<Messages>,
    timeout: Duration,
}

impl Spec {
    pub(crate) fn rate_key(&self) -> String {
        format!(
            "{} {}",
            self.endpoint.uri,
            self.channel.as_deref().unwrap_or("")
        )
    }

    pub(crate) fn display(&self) -> String {
        self.endpoint.display.clone()
    }
}

pub(crate) fn resolve(
    c: &SlackConfig,
    field: &str,
    funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let url = resolve_secret(
        p,
        &format!("{field}.api_url"),
        &c.api_url,
        &c.api_url_file,
        &c.api_url_env,
        true,
    );
    let endpoint = endpoint_of(p, &format!("{field}.api_url"), url);
    // Parsed before the endpoint is unwrapped, so that template errors
    // are reported even when the URL is wrong too.
    let messages = Messages::parse(p, field, c.language, &c.title, &c.text, funcs);
    Some(Spec {
        endpoint: endpoint?,
        channel: c.channel.clone(),
        username: c.username.clone(),
        icon_emoji: c.icon_emoji.clone(),
        icon_url: c.icon_url.clone(),
        messages,
        timeout: c.timeout,
    })
}

pub(crate) struct Slack {
    spec: Spec,
    name: String,
    shared: Shared,
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_url: Option<&'a str>,
    text: String,
    blocks: Vec<Block>,
}

#[derive(Serialize)]
struct Block {
    #[serde(rename = "type")]
    kind: &'static str,
    text: TextObject,
}

#[derive(Serialize)]
struct TextObject {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

fn section(text: String) -> Block {
    Block {
        kind: "section",
        text: TextObject {
            kind: "mrkdwn",
            text,
        },
    }
}

impl Slack {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Slack {
        Slack { spec, name, shared }
    }

    pub(crate) fn body(&self, n: &Notification) -> Vec<u8> {
        let m = &self.spec.messages;
        let r = m.render(n, &self.name, Style::Slack, |_| {
            Limit::chars(DEFAULT_BODY_CHARS)
        });
        let title = if r.custom_title {
            r.title
        } else {
            Style::Slack.escape(&r.title).into_owned()
        };
        let title = split_chars(&title, SECTION_CHARS - 2)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut blocks = vec![section(format!("*{title}*"))];
        let mut parts = split_chars(&r.text, SECTION_CHARS);
        if parts.len() > MAX_BODY_SECTIONS {
            parts.truncate(MAX_BODY_SECTIONS);
            let marker = truncation_marker(m.language);
            if let Some(last) = parts.last_mut() {
                let keep = SECTION_CHARS - marker.chars().count();
                if let Some((i, _)) = last.char_indices().nth(keep) {
                    last.truncate(i);
                }
                last.push_str(marker);
            }
        }
        blocks.extend(parts.into_iter().map(section));
        let payload = Payload {
            channel: self.spec.channel.as_deref(),
            username: self.spec.username.as_deref(),
            icon_emoji: self.spec.icon_emoji.as_deref(),
            icon_url: self.spec.icon_url.as_deref(),
            text: title,
            blocks,
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
        resp.check_status(ep)?;
        // Webhooks answer `ok`; the Web API (chat.postMessage) answers 200
        // with `{"ok":false,"error":...}` when it refuses.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body)
            && v.get("ok").and_then(serde_json::Value::as_bool) == Some(false)
        {
            let error = v
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown error");
            return Err(NotifyError::Permanent {
                message: format!("POST {}: Slack refused: {error}", ep.display),
            });
        }
        Ok(())
    }
}

impl Notifier for Slack {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}
