//! Sending alerts to Alertmanager the way Prometheus does: every alert,
//! as `POST /api/v2/alerts`, re-sent while firing so Alertmanager never
//! resolves it for lack of news.

use std::time::Duration;

use serde::Serialize;

use crate::alert::{Alert, LabelSet};
use crate::receivers::NotifyError;
use crate::receivers::delivery::BuildContext;
use crate::receivers::http::{Endpoint, HttpClient};
use crate::receivers::template_data::format_time;

/// One Alertmanager instance.
pub struct AlertmanagerClient {
    endpoint: Endpoint,
    http: HttpClient,
    timeout: Duration,
}

/// Alertmanager's `postableAlert`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: &'a LabelSet,
    annotations: &'a LabelSet,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

impl AlertmanagerClient {
    /// `base_url` is the Alertmanager's address, e.g. `http://am:9093`.
    pub fn new(
        ctx: &BuildContext,
        base_url: &str,
        timeout: Duration,
    ) -> Result<AlertmanagerClient, String> {
        let url = format!("{}/api/v2/alerts", base_url.trim_end_matches('/'));
        Ok(AlertmanagerClient {
            endpoint: Endpoint::parse(&url)?,
            http: ctx.http(),
            timeout,
        })
    }

    /// Where alerts go, without credentials, for logs.
    pub fn display(&self) -> &str {
        &self.endpoint.display
    }

    /// The request body for a batch of alerts.
    pub fn body(alerts: &[Alert]) -> Vec<u8> {
        let items: Vec<PostableAlert<'_>> = alerts
            .iter()
            .map(|a| PostableAlert {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: format_time(a.starts_at_ms),
                ends_at: a.ends_at_ms.map(format_time),
                generator_url: &a.generator_url,
            })
            .collect();
        serde_json::to_vec(&items).unwrap_or_else(|_| b"[]".to_vec())
    }

    pub async fn send(&self, alerts: &[Alert]) -> Result<(), NotifyError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let resp = self
            .http
            .post_json(
                &self.endpoint,
                &self.endpoint.uri,
                Self::body(alerts),
                &[],
                self.timeout,
            )
            .await?;
        resp.check_status(&self.endpoint)
    }
}
