//! Telegram bots: `sendMessage` with `parse_mode: HTML`, at most 4096
//! characters, values HTML-escaped.

use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use serde::Serialize;

use super::config::{ChatId, DEFAULT_TELEGRAM_API_URL, Problems, TelegramConfig, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, HttpResponse};
use super::message::{
    CustomTemplate, Limit, Messages, Style, TemplateFuncs, escape_html, truncate_html,
    truncation_marker,
};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::Notification;

/// Telegram's limit on a message's text.
pub(crate) const MAX_TEXT_CHARS: usize = 4096;

#[derive(Clone)]
pub(crate) struct Spec {
    /// The API base, for display; the real target is `send_uri`.
    endpoint: Endpoint,
    send_uri: Uri,
    chat_id: ChatId,
    message_thread_id: Option<i64>,
    disable_notification: bool,
    messages: Arc<Messages>,
    timeout: Duration,
}

impl Spec {
    pub(crate) fn rate_key(&self) -> String {
        // Telegram's limit is per chat.
        format!("{} {}", self.send_uri, self.chat_id)
    }

    pub(crate) fn display(&self) -> String {
        self.endpoint.display.clone()
    }
}

pub(crate) fn resolve(
    c: &TelegramConfig,
    field: &str,
    funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let token = resolve_secret(
        p,
        &format!("{field}.bot_token"),
        &c.bot_token,
        &c.bot_token_file,
        &c.bot_token_env,
        true,
    );
    let base = c
        .api_url
        .as_deref()
        .unwrap_or(DEFAULT_TELEGRAM_API_URL)
        .trim_end_matches('/');
    let endpoint = match Endpoint::parse(base) {
        Ok(e) => Some(e),
        Err(msg) => {
            p.push(&format!("{field}.api_url"), msg);
            None
        }
    };
    let send_uri = token.and_then(|token| {
        if token.expose().contains(['/', '?', '#', ' ']) {
            p.push(
                &format!("{field}.bot_token"),
                "does not look like a bot token (it has /, ?, # or a space)",
            );
            return None;
        }
        match format!("{base}/bot{}/sendMessage", token.expose()).parse::<Uri>() {
            Ok(uri) => Some(uri),
            Err(_) => {
                p.push(&format!("{field}.bot_token"), "does not make a valid URL");
                None
            }
        }
    });
    match &c.chat_id {
        ChatId::Id(0) => p.push(&format!("{field}.chat_id"), "required"),
        ChatId::Name(name) if name.trim().is_empty() => {
            p.push(&format!("{field}.chat_id"), "required")
        }
        _ => {}
    }
    let message = CustomTemplate::parse(p, &format!("{field}.message"), &c.message, funcs);
    Some(Spec {
        endpoint: endpoint?,
        send_uri: send_uri?,
        chat_id: c.chat_id.clone(),
        message_thread_id: c.message_thread_id,
        disable_notification: c.disable_notifications,
        messages: Arc::new(Messages::new(c.language, None, message)),
        timeout: c.timeout,
    })
}

#[derive(Serialize)]
struct Payload<'a> {
    chat_id: &'a ChatId,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    text: String,
    parse_mode: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_notification: bool,
    link_preview_options: LinkPreview,
}

#[derive(Serialize)]
struct LinkPreview {
    is_disabled: bool,
}

#[derive(serde::Deserialize, Default)]
struct Answer {
    ok: Option<bool>,
    error_code: Option<i64>,
    #[serde(default)]
    description: String,
    parameters: Option<Parameters>,
}

#[derive(serde::Deserialize, Default)]
struct Parameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

pub(crate) struct Telegram {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl Telegram {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Telegram {
        Telegram { spec, name, shared }
    }

    /// The message in Telegram's HTML: the escaped title in bold, then the
    /// body, cut to 4096 characters without breaking a tag.
    pub(crate) fn text(&self, n: &Notification) -> String {
        let m = &self.spec.messages;
        let heading = |title: &str| format!("<b>{}</b>\n\n", escape_html(title));
        let r = m.render(n, &self.name, Style::Html, |title| {
            Limit::chars(MAX_TEXT_CHARS.saturating_sub(heading(title).chars().count()))
        });
        let text = if r.custom_text {
            r.text
        } else {
            format!("{}{}", heading(&r.title), r.text)
        };
        truncate_html(&text, MAX_TEXT_CHARS, truncation_marker(m.language))
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let payload = Payload {
            chat_id: &self.spec.chat_id,
            message_thread_id: self.spec.message_thread_id,
            text: self.text(n),
            parse_mode: "HTML",
            disable_notification: self.spec.disable_notification,
            link_preview_options: LinkPreview { is_disabled: true },
        };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let ep = &self.spec.endpoint;
        let resp = self
            .shared
            .http
            .post_json(ep, &self.spec.send_uri, body, &[], self.spec.timeout)
            .await?;
        check_answer(ep, &resp)
    }
}

fn check_answer(ep: &Endpoint, resp: &HttpResponse) -> Result<(), NotifyError> {
    let answer = serde_json::from_slice::<Answer>(&resp.body).unwrap_or_default();
    if resp.status.is_success() && answer.ok != Some(false) {
        return Ok(());
    }
    let params = answer.parameters.unwrap_or_default();
    let code = answer.error_code.unwrap_or(i64::from(resp.status.as_u16()));
    let mut message = format!(
        "POST {}/bot<token>/sendMessage: Telegram error {code}: {}",
        ep.display, answer.description
    );
    if let Some(to) = params.migrate_to_chat_id {
        message.push_str(&format!(
            " (the group became a supergroup: set chat_id to {to})"
        ));
    }
    // Telegram puts its wait in the body; `Retry-After` is a fallback.
    let retry_after = params
        .retry_after
        .map(Duration::from_secs)
        .or(resp.retry_after);
    if code == 429 || resp.status.is_server_error() {
        Err(NotifyError::Retryable {
            message,
            retry_after,
        })
    } else {
        Err(NotifyError::Permanent { message })
    }
}

impl Notifier for Telegram {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}
