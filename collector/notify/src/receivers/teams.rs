//! Microsoft Teams through a Power Automate "Workflows" webhook: an
//! Adaptive Card 1.2 with a heading (`Attention` while firing, `Good` once
//! resolved) and the body. The legacy Office 365 connector's MessageCard
//! is refused by Workflows, so it is not offered.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::{Problems, TeamsConfig};
use super::delivery::Shared;
use super::http::{Endpoint, webhook_endpoint};
use super::message::{Limit, Messages, Style, TemplateFuncs, truncate, truncation_marker};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::{AlertStatus, Notification};

/// Teams takes cards up to about 28 KB.
const MAX_TEXT_BYTES: usize = 20_000;

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
    c: &TeamsConfig,
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
    #[serde(rename = "type")]
    kind: &'static str,
    attachments: Vec<Attachment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    content_type: &'static str,
    /// Workflows expects the key, with null.
    content_url: Option<String>,
    content: Card,
}

#[derive(Serialize)]
struct Card {
    #[serde(rename = "$schema")]
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
    body: Vec<TextBlock>,
    msteams: MsTeams,
}

#[derive(Serialize)]
struct TextBlock {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<&'static str>,
    wrap: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    style: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<&'static str>,
}

#[derive(Serialize)]
struct MsTeams {
    width: &'static str,
}

pub(crate) struct Teams {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl Teams {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Teams {
        Teams { spec, name, shared }
    }

    fn body(&self, n: &Notification) -> Vec<u8> {
        let m = &self.spec.messages;
        let r = m.render(n, &self.name, Style::Paragraphs, |_| {
            Limit::bytes(MAX_TEXT_BYTES)
        });
        let text = truncate(
            &r.text,
            Limit::bytes(MAX_TEXT_BYTES),
            truncation_marker(m.language),
        );
        let color = match n.status() {
            AlertStatus::Firing => "Attention",
            AlertStatus::Resolved => "Good",
        };
        let payload = Payload {
            kind: "message",
            attachments: vec![Attachment {
                content_type: "application/vnd.microsoft.card.adaptive",
                content_url: None,
                content: Card {
                    schema: "http://adaptivecards.io/schemas/adaptive-card.json",
                    kind: "AdaptiveCard",
                    version: "1.2",
                    body: vec![
                        TextBlock {
                            kind: "TextBlock",
                            text: r.title,
                            weight: Some("Bolder"),
                            size: Some("Medium"),
                            wrap: true,
                            style: Some("heading"),
                            color: Some(color),
                        },
                        TextBlock {
                            kind: "TextBlock",
                            text,
                            weight: None,
                            size: None,
                            wrap: true,
                            style: None,
                            color: None,
                        },
                    ],
                    msteams: MsTeams { width: "full" },
                },
            }],
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
        // Workflows answers 202 Accepted with an empty body.
        resp.check_status(ep)
    }
}

impl Notifier for Teams {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}
