//! `lookout query`: runs a PromQL expression against a running collector's
//! HTTP API and prints the answer for a terminal (or as the raw JSON).

use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// What to ask and where.
pub struct QueryRequest {
    pub url: String,
    pub expr: String,
    pub time: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub step: Option<String>,
    pub timeout: Duration,
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// One HTTP exchange with the collector: status and body (at most
/// 512 MiB), or an error that names the URL.
pub async fn request(
    method: hyper::Method,
    uri: &hyper::Uri,
    body: Option<(&str, String)>,
    timeout: Duration,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(timeout));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let mut builder = hyper::Request::builder().method(method).uri(uri.clone());
    let payload = match body {
        Some((content_type, b)) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
            Bytes::from(b)
        }
        None => Bytes::new(),
    };
    let request = builder.body(Full::new(payload))?;
    let resp = tokio::time::timeout(timeout, client.request(request))
        .await
        .with_context(|| format!("{uri}: no answer within {timeout:?}"))?
        .with_context(|| format!("{uri}: cannot reach the collector"))?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), 512 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{uri}: reading the answer failed: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

/// Sends the query and returns the answer's JSON body.
pub async fn fetch(req: &QueryRequest) -> anyhow::Result<Value> {
    let base = req.url.trim_end_matches('/');
    if base.starts_with("https://") {
        bail!("--url {base}: this command speaks plain HTTP; query the collector's HTTP address");
    }
    let (path, body) = match &req.start {
        Some(start) => {
            let end = req.end.clone().unwrap_or_else(now_secs);
            let step = req.step.clone().unwrap_or_else(|| "60".into());
            (
                "query_range",
                form(&[
                    ("query", &req.expr),
                    ("start", start),
                    ("end", &end),
                    ("step", &step),
                ]),
            )
        }
        None => {
            let mut pairs = vec![("query", req.expr.as_str())];
            if let Some(t) = &req.time {
                pairs.push(("time", t));
            }
            ("query", form(&pairs))
        }
    };
    let uri: hyper::Uri = format!("{base}/api/v1/{path}")
        .parse()
        .with_context(|| format!("--url {base:?} is not a URL like http://127.0.0.1:9780"))?;
    let (status, bytes) = request(
        hyper::Method::POST,
        &uri,
        Some(("application/x-www-form-urlencoded", body)),
        req.timeout,
    )
    .await?;
    let json: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{uri}: answered HTTP {status} with a body that is not JSON"))?;
    if json["status"] != "success" {
        bail!(
            "{}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"]
                .as_str()
                .unwrap_or("the collector refused the query")
        );
    }
    Ok(json)
}

fn now_secs() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.3}", now.as_secs_f64())
}

fn metric_text(m: &Value) -> String {
    let Some(obj) = m.as_object() else {
        return "{}".into();
    };
    let name = obj.get("__name__").and_then(Value::as_str).unwrap_or("");
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn point_text(p: &Value) -> String {
    format!("{} @{}", p[1].as_str().unwrap_or("?"), p[0])
}

/// The answer as lines for a terminal: one series a line for vectors, a
/// series header and its points for matrices.
pub fn render(answer: &Value) -> String {
    let data = &answer["data"];
    let mut out = String::new();
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.push_str(&point_text(&data["result"]));
            out.push('\n');
        }
        Some("vector") => {
            for s in data["result"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{} => {}\n",
                    metric_text(&s["metric"]),
                    point_text(&s["value"])
                ));
            }
        }
        Some("matrix") => {
            for s in data["result"].as_array().into_iter().flatten() {
                out.push_str(&format!("{} =>\n", metric_text(&s["metric"])));
                for p in s["values"].as_array().into_iter().flatten() {
                    out.push_str(&format!("  {}\n", point_text(p)));
                }
            }
        }
        _ => out.push_str(&format!("{data}\n")),
    }
    for key in ["warnings", "infos"] {
        for w in answer[key].as_array().into_iter().flatten() {
            out.push_str(&format!("# {}\n", w.as_str().unwrap_or_default()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_render_for_a_terminal() {
        let v: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"node"},"value":[10,"1"]}]},"warnings":["w"]}"#,
        )
        .unwrap_or_default();
        assert_eq!(render(&v), "up{job=\"node\"} => 1 @10\n# w\n");
    }
}
