//! `lookout silence`: add, list and expire silences on a running
//! collector through its Alertmanager-compatible API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use lookout_notify::matchers::parse_matcher;
use lookout_notify::{GettableSilence, PostableSilence, SilenceMatcher, rfc3339};
use serde_json::Value;

use crate::query_cli::request;

fn uri(base: &str, path: &str) -> anyhow::Result<hyper::Uri> {
    let base = base.trim_end_matches('/');
    if base.starts_with("https://") {
        bail!("--url {base}: this command speaks plain HTTP; use the collector's HTTP address");
    }
    format!("{base}{path}")
        .parse()
        .with_context(|| format!("--url {base:?} is not a URL like http://127.0.0.1:9780"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The answer's body when the status is 2xx; the collector's message
/// otherwise.
fn checked(status: hyper::StatusCode, body: &[u8], what: &str) -> anyhow::Result<Value> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let message = match &json {
        Value::String(s) => s.clone(),
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    bail!("{what}: HTTP {}: {}", status.as_u16(), message.trim())
}

/// Creates a silence; returns its id.
pub async fn add(
    url: &str,
    matchers: &[String],
    duration: Duration,
    author: &str,
    comment: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    if matchers.is_empty() {
        bail!("give at least one matcher, e.g. alertname=NodeDown or 'node=~\"n[12]\"'");
    }
    let mut parsed = Vec::new();
    for m in matchers {
        let matcher = parse_matcher(m).map_err(|e| anyhow::anyhow!("matcher {m:?}: {e}"))?;
        parsed.push(SilenceMatcher::from_matcher(&matcher));
    }
    let now = now_ms();
    let silence = PostableSilence {
        id: None,
        matchers: parsed,
        starts_at: now,
        ends_at: now + duration.as_millis() as i64,
        created_by: author.to_string(),
        comment: comment.to_string(),
    };
    let body = serde_json::to_string(&silence)?;
    let (status, bytes) = request(
        hyper::Method::POST,
        &uri(url, "/api/v2/silences")?,
        Some(("application/json", body)),
        timeout,
    )
    .await?;
    let json = checked(status, &bytes, "adding the silence")?;
    json["silenceID"]
        .as_str()
        .map(str::to_string)
        .context("the collector's answer has no silenceID")
}

/// Silences as a table; expired ones only with `all`.
pub async fn list(url: &str, all: bool, timeout: Duration) -> anyhow::Result<String> {
    let (status, bytes) = request(
        hyper::Method::GET,
        &uri(url, "/api/v2/silences")?,
        None,
        timeout,
    )
    .await?;
    let json = checked(status, &bytes, "listing silences")?;
    let silences: Vec<GettableSilence> = serde_json::from_value(json)
        .context("the collector's silence list is not in the expected shape")?;
    Ok(render(&silences, all))
}

pub fn render(silences: &[GettableSilence], all: bool) -> String {
    let mut out = String::from(
        "ID                                    STATE    ENDS                      CREATED BY   MATCHERS / COMMENT\n",
    );
    for s in silences {
        let state = s.status.state.as_str();
        if !all && state == "expired" {
            continue;
        }
        let matchers: Vec<String> = s
            .matchers
            .iter()
            .filter_map(|m| m.compile().ok().map(|c| c.to_string()))
            .collect();
        out.push_str(&format!(
            "{:<37} {:<8} {:<25} {:<12} {} {}\n",
            s.id,
            state,
            rfc3339::format(s.ends_at),
            s.created_by,
            matchers.join(","),
            if s.comment.is_empty() {
                String::new()
            } else {
                format!("# {}", s.comment)
            }
        ));
    }
    out
}

pub async fn expire(url: &str, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let (status, bytes) = request(
        hyper::Method::DELETE,
        &uri(url, &format!("/api/v2/silence/{id}"))?,
        None,
        timeout,
    )
    .await?;
    checked(status, &bytes, &format!("expiring silence {id}"))?;
    Ok(())
}
