//! Alertmanager's generic webhook, payload version "4", so anything that
//! takes Alertmanager's webhook takes Lookout's.

use std::time::Duration;

use base64::Engine as _;
use hyper::header::{self, HeaderName, HeaderValue};
use serde::Serialize;

use super::config::{Problems, WebhookConfig, resolve_secret};
use super::delivery::Shared;
use super::http::{Endpoint, endpoint_of};
use super::message::TemplateFuncs;
use super::template_data::{ends_at, format_time};
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::{LabelSet, Notification};

#[derive(Clone)]
pub(crate) struct Spec {
    endpoint: Endpoint,
    authorization: Option<HeaderValue>,
    max_alerts: u64,
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
    c: &WebhookConfig,
    field: &str,
    _funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let url = resolve_secret(
        p,
        &format!("{field}.url"),
        &c.url,
        &c.url_file,
        &c.url_env,
        true,
    );
    let endpoint = endpoint_of(p, &format!("{field}.url"), url);
    let hc = &c.http_config;
    let mut authorization = None;
    if hc.authorization.is_some() && hc.basic_auth.is_some() {
        p.push(
            &format!("{field}.http_config"),
            "set only one of authorization and basic_auth",
        );
    } else if let Some(auth) = &hc.authorization {
        let f = format!("{field}.http_config.authorization");
        if auth.kind.trim().is_empty() || auth.kind.contains(char::is_whitespace) {
            p.push(&format!("{f}.type"), "must be one word, e.g. Bearer");
        }
        let cred = resolve_secret(
            p,
            &format!("{f}.credentials"),
            &auth.credentials,
            &auth.credentials_file,
            &auth.credentials_env,
            true,
        );
        if let Some(cred) = cred {
            authorization = header_value(p, &f, &format!("{} {}", auth.kind.trim(), cred.expose()));
        }
    } else if let Some(basic) = &hc.basic_auth {
        let f = format!("{field}.http_config.basic_auth");
        if basic.username.is_empty() {
            p.push(&format!("{f}.username"), "required");
        }
        let password = resolve_secret(
            p,
            &format!("{f}.password"),
            &basic.password,
            &basic.password_file,
            &basic.password_env,
            false,
        );
        let pair = format!(
            "{}:{}",
            basic.username,
            password.as_ref().map_or("", |s| s.expose())
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        authorization = header_value(p, &f, &format!("Basic {encoded}"));
    }
    Some(Spec {
        endpoint: endpoint?,
        authorization,
        max_alerts: c.max_alerts,
        timeout: c.timeout,
    })
}

fn header_value(p: &mut Problems, field: &str, value: &str) -> Option<HeaderValue> {
    match HeaderValue::from_str(value) {
        Ok(mut v) => {
            // Keeps it out of hyper's debug output and HPACK tables.
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            p.push(
                field,
                "the credentials contain characters not allowed in an HTTP header",
            );
            None
        }
    }
}

pub(crate) struct Webhook {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl Webhook {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Webhook {
        Webhook { spec, name, shared }
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = payload(n, self.spec.max_alerts);
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        if let Some(auth) = &self.spec.authorization {
            headers.push((header::AUTHORIZATION, auth.clone()));
        }
        let resp = self
            .shared
            .http
            .post_json(
                &self.spec.endpoint,
                &self.spec.endpoint.uri,
                body,
                &headers,
                self.spec.timeout,
            )
            .await?;
        resp.check_status(&self.spec.endpoint)
    }
}

impl Notifier for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.send(n))
    }
}

/// Alertmanager's `webhook.Message`, version 4. Field names and order as
/// documented; maps serialize sorted by key, as Go's encoder does.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: u64,
    status: &'static str,
    receiver: &'a str,
    group_labels: &'a LabelSet,
    common_labels: LabelSet,
    common_annotations: LabelSet,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    /// New in Alertmanager 0.34; left out when the pipeline gives no reason.
    #[serde(rename = "notification_reason", skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    alerts: Vec<AlertJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson<'a> {
    status: &'static str,
    labels: &'a LabelSet,
    annotations: &'a LabelSet,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

/// The JSON body for `n`: at most `max_alerts` alerts (0 = all), the rest
/// counted in `truncatedAlerts`. As in Alertmanager, status and common
/// labels are those of the alerts sent.
pub fn payload(n: &Notification, max_alerts: u64) -> Vec<u8> {
    let keep = match usize::try_from(max_alerts) {
        Ok(0) | Err(_) => n.alerts.len(),
        Ok(m) => m.min(n.alerts.len()),
    };
    let truncated = (n.alerts.len() - keep) as u64;
    let kept;
    let n = if keep < n.alerts.len() {
        kept = Notification {
            alerts: n.alerts[..keep].to_vec(),
            ..n.clone()
        };
        &kept
    } else {
        n
    };
    let msg = Message {
        version: "4",
        group_key: &n.group_key,
        truncated_alerts: truncated,
        status: n.status().as_str(),
        receiver: &n.receiver,
        group_labels: &n.group_labels,
        common_labels: n.common_labels(),
        common_annotations: n.common_annotations(),
        external_url: &n.external_url,
        reason: &n.reason,
        alerts: n
            .alerts
            .iter()
            .map(|a| AlertJson {
                status: a.status_at(n.now_ms).as_str(),
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: format_time(a.starts_at_ms),
                ends_at: ends_at(a, n.now_ms),
                generator_url: &a.generator_url,
                fingerprint: a.fingerprint_hex(),
            })
            .collect(),
    };
    // Serializing maps of strings into memory cannot fail.
    serde_json::to_vec(&msg).unwrap_or_default()
}
