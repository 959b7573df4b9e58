//! Zabbix trapper items, over the sender protocol (what `zabbix_sender`
//! speaks to port 10051): one value per alert, so a Zabbix trigger on the
//! item sees every firing and resolution.
//!
//! The request is byte for byte what `zabbix_sender -T -N` (6.0) sends for
//! the same values: `ZBXD`, flags `0x01`, u32 LE length, u32 LE reserved 0,
//! then `{"request":"sender data","data":[{"host","key","value","clock",
//! "ns"},…],"clock":…,"ns":…}` with the keys in that order and non-ASCII
//! left unescaped. Each value carries the time it was sent (nanoseconds
//! stepped by one per value, so Zabbix keeps their order) rather than the
//! alert's start: Zabbix triggers read the newest value by clock, and an
//! old timestamp on a resolution could sort it before the firing it ends.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::{DEFAULT_ZABBIX_PORT, Problems, ZabbixConfig};
use super::delivery::Shared;
use super::message::{CustomTemplate, Limit, TemplateFuncs, key_labels, severity_level, truncate};
use super::template_data::single_alert_data;
use super::{Notifier, NotifyError, NotifyFuture};
use crate::alert::{Alert, AlertStatus, Notification};

/// Zabbix text items hold up to 65,535 bytes.
const MAX_VALUE_BYTES: usize = 65_535;
/// Answers are a line of JSON; anything larger is not a Zabbix server.
const MAX_REPLY_BYTES: u64 = 1 << 20;

const FLAG_PROTOCOL: u8 = 0x01;
const FLAG_COMPRESSED: u8 = 0x02;
const FLAG_LARGE: u8 = 0x04;

#[derive(Clone)]
pub(crate) struct Spec {
    server_host: String,
    server_port: u16,
    host: Option<String>,
    host_label: Option<String>,
    key: String,
    value: Option<Arc<CustomTemplate>>,
    timeout: Duration,
}

impl Spec {
    pub(crate) fn rate_key(&self) -> String {
        self.display()
    }

    pub(crate) fn display(&self) -> String {
        if self.server_host.contains(':') {
            format!("[{}]:{}", self.server_host, self.server_port)
        } else {
            format!("{}:{}", self.server_host, self.server_port)
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
pub(crate) fn parse_server(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("required: the Zabbix server or proxy, host[:port]".to_string());
    }
    let port_of = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("bad port {p:?}")),
        Ok(port) => Ok(port),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing ] after the IPv6 address".to_string());
        };
        return match after {
            "" => Ok((host.to_string(), DEFAULT_ZABBIX_PORT)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host.to_string(), port_of(p)?)),
                None => Err(format!("unexpected {after:?} after the address")),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok((s.to_string(), DEFAULT_ZABBIX_PORT)),
        1 => {
            let (host, port) = s.split_once(':').unwrap_or((s, ""));
            if host.is_empty() {
                return Err("missing host".to_string());
            }
            Ok((host.to_string(), port_of(port)?))
        }
        _ => Ok((s.to_string(), DEFAULT_ZABBIX_PORT)),
    }
}

pub(crate) fn resolve(
    c: &ZabbixConfig,
    field: &str,
    funcs: &TemplateFuncs,
    p: &mut Problems,
) -> Option<Spec> {
    let server = match parse_server(&c.server) {
        Ok(s) => Some(s),
        Err(msg) => {
            p.push(&format!("{field}.server"), msg);
            None
        }
    };
    if c.key.trim().is_empty() {
        p.push(
            &format!("{field}.key"),
            "required: the key of the trapper item",
        );
    }
    let host = c.host.clone().filter(|h| !h.trim().is_empty());
    let host_label = c.host_label.clone().filter(|h| !h.trim().is_empty());
    if host.is_none() && host_label.is_none() {
        p.push(
            field,
            "set host (the Zabbix host name), host_label (take it from an alert label), or both",
        );
    }
    let value = CustomTemplate::parse(p, &format!("{field}.value"), &c.value, funcs).map(Arc::new);
    let (server_host, server_port) = server?;
    Some(Spec {
        server_host,
        server_port,
        host,
        host_label,
        key: c.key.trim().to_string(),
        value,
        timeout: c.timeout,
    })
}

#[derive(Serialize)]
struct Request<'a> {
    request: &'static str,
    data: Vec<Item<'a>>,
    clock: u64,
    ns: u32,
}

#[derive(Serialize)]
struct Item<'a> {
    host: &'a str,
    key: &'a str,
    value: String,
    clock: u64,
    ns: u32,
}

/// The frame around a JSON body: `ZBXD`, protocol flag, u32 LE length,
/// u32 LE reserved (the uncompressed size, unused without compression).
pub(crate) fn frame(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + json.len());
    out.extend_from_slice(b"ZBXD");
    out.push(FLAG_PROTOCOL);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(json);
    out
}

/// The built-in value: `FIRING [4] KubePodCrashLooping {namespace=prod,
/// pod=web-1}: summary`. Status words stay English in every language so
/// trigger expressions can match them; the number is Zabbix's severity.
pub(crate) fn default_value(a: &Alert, now_ms: i64) -> String {
    let status = match a.status_at(now_ms) {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    };
    let mut out = format!("{status} [{}] {}", severity_level(&a.labels), a.name());
    let labels = key_labels(&a.labels);
    if !labels.is_empty() {
        let list: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" {{{}}}", list.join(", ")));
    }
    let summary = ["summary", "message", "description"]
        .iter()
        .find_map(|k| a.annotations.get(*k).filter(|s| !s.trim().is_empty()));
    if let Some(s) = summary {
        out.push_str(": ");
        out.push_str(s.trim());
    }
    out
}

/// What the server said: `processed: N; failed: M; total: T; …`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) success: bool,
    pub(crate) info: String,
    pub(crate) processed: Option<u64>,
    pub(crate) failed: Option<u64>,
    pub(crate) total: Option<u64>,
}

/// Reads the reply's JSON leniently: only `response` is required, `info`
/// is split on `;` and `:` whatever its spacing.
pub(crate) fn parse_reply(json: &[u8]) -> Result<Reply, String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|err| {
        format!(
            "not JSON ({err}): {}",
            String::from_utf8_lossy(&json[..json.len().min(200)])
        )
    })?;
    let response = v
        .get("response")
        .and_then(serde_json::Value::as_str)
        .ok_or("no \"response\" in the answer")?;
    let info = v
        .get("info")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut reply = Reply {
        success: response == "success",
        info: info.clone(),
        ..Reply::default()
    };
    for part in info.split(';') {
        let Some((name, value)) = part.split_once(':') else {
            continue;
        };
        let value = value.trim().parse::<u64>().ok();
        match name.trim() {
            "processed" => reply.processed = value,
            "failed" => reply.failed = value,
            "total" => reply.total = value,
            _ => {}
        }
    }
    Ok(reply)
}

pub(crate) struct Zabbix {
    spec: Spec,
    name: String,
    shared: Shared,
}

impl Zabbix {
    pub(crate) fn new(spec: Spec, name: String, shared: Shared) -> Zabbix {
        Zabbix { spec, name, shared }
    }

    fn host_of<'a>(&'a self, a: &'a Alert) -> Option<&'a str> {
        self.spec
            .host_label
            .as_ref()
            .and_then(|l| a.labels.get(l))
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .or(self.spec.host.as_deref())
    }

    fn value_of(&self, n: &Notification, a: &Alert) -> String {
        let custom = self
            .spec
            .value
            .as_ref()
            .and_then(|t| t.render_or_log(&single_alert_data(n, a), &self.name));
        let value = custom.unwrap_or_else(|| default_value(a, n.now_ms));
        truncate(&value, Limit::bytes(MAX_VALUE_BYTES), "…")
    }

    /// The JSON request for `n`, and the names of alerts that had no host.
    pub(crate) fn request(&self, n: &Notification) -> (Vec<u8>, Vec<String>) {
        let now = (self.shared.clock)()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let base = now.as_nanos();
        let at = |i: usize| {
            let t = base + i as u128;
            ((t / 1_000_000_000) as u64, (t % 1_000_000_000) as u32)
        };
        let mut data = Vec::with_capacity(n.alerts.len());
        let mut homeless = Vec::new();
        for a in &n.alerts {
            let Some(host) = self.host_of(a) else {
                homeless.push(a.name().to_string());
                continue;
            };
            let (clock, ns) = at(data.len());
            data.push(Item {
                host,
                key: &self.spec.key,
                value: self.value_of(n, a),
                clock,
                ns,
            });
        }
        let (clock, ns) = at(0);
        let req = Request {
            request: "sender data",
            data,
            clock,
            ns,
        };
        (serde_json::to_vec(&req).unwrap_or_default(), homeless)
    }

    async fn exchange(&self, framed: &[u8]) -> Result<Vec<u8>, NotifyError> {
        let server = self.spec.display();
        let retry = |what: &str, err: std::io::Error| NotifyError::Retryable {
            message: format!("zabbix server {server}: {what}: {err}"),
            retry_after: None,
        };
        let mut stream =
            TcpStream::connect((self.spec.server_host.as_str(), self.spec.server_port))
                .await
                .map_err(|e| retry("connect", e))?;
        stream
            .write_all(framed)
            .await
            .map_err(|e| retry("send", e))?;
        stream.flush().await.map_err(|e| retry("send", e))?;

        let mut head = [0u8; 5];
        let mut got = 0;
        while got < head.len() {
            let k = stream
                .read(&mut head[got..])
                .await
                .map_err(|e| retry("read the answer", e))?;
            if k == 0 {
                break;
            }
            got += k;
        }
        if got == 0 {
            return Err(NotifyError::Retryable {
                message: format!("zabbix server {server}: closed the connection without answering"),
                retry_after: None,
            });
        }
        if &head[..got.min(4)] != b"ZBXD" || got < 5 {
            // Very old servers answered bare JSON.
            let mut rest = head[..got].to_vec();
            (&mut stream)
                .take(MAX_REPLY_BYTES)
                .read_to_end(&mut rest)
                .await
                .map_err(|e| retry("read the answer", e))?;
            return Ok(rest);
        }
        let flags = head[4];
        let len = if flags & FLAG_LARGE != 0 {
            let mut b = [0u8; 16];
            stream
                .read_exact(&mut b)
                .await
                .map_err(|e| retry("read the answer", e))?;
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        } else {
            let mut b = [0u8; 8];
            stream
                .read_exact(&mut b)
                .await
                .map_err(|e| retry("read the answer", e))?;
            u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if len > MAX_REPLY_BYTES {
            return Err(NotifyError::Permanent {
                message: format!(
                    "zabbix server {server}: answer of {len} bytes is not a sender reply"
                ),
            });
        }
        if flags & FLAG_COMPRESSED != 0 {
            return Err(NotifyError::Permanent {
                message: format!(
                    "zabbix server {server}: answered compressed, which Lookout does not read"
                ),
            });
        }
        let mut body = vec![0u8; len as usize];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| retry("read the answer", e))?;
        Ok(body)
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        if n.alerts.is_empty() {
            return Ok(());
        }
        let server = self.spec.display();
        let (json, homeless) = self.request(n);
        let no_host = || NotifyError::Permanent {
            message: format!(
                "zabbix: no Zabbix host for alert(s) {} (label {:?} missing and no host set)",
                homeless.join(", "),
                self.spec.host_label.as_deref().unwrap_or("")
            ),
        };
        if homeless.len() == n.alerts.len() {
            return Err(no_host());
        }
        let framed = frame(&json);
        let answer = match tokio::time::timeout(self.spec.timeout, self.exchange(&framed)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(NotifyError::Retryable {
                    message: format!(
                        "zabbix server {server}: no answer within {}",
                        humantime::format_duration(self.spec.timeout)
                    ),
                    retry_after: None,
                });
            }
        };
        let reply = parse_reply(&answer).map_err(|msg| NotifyError::Permanent {
            message: format!("zabbix server {server}: {msg}"),
        })?;
        if !reply.success {
            return Err(NotifyError::Permanent {
                message: format!("zabbix server {server} refused the data: {}", reply.info),
            });
        }
        if let Some(failed) = reply.failed.filter(|f| *f > 0) {
            let mut hosts: Vec<&str> = n.alerts.iter().filter_map(|a| self.host_of(a)).collect();
            hosts.sort_unstable();
            hosts.dedup();
            return Err(NotifyError::Permanent {
                message: format!(
                    "zabbix server {server} rejected {failed} of {} values for item {:?} on host(s) {} ({}): \
                     is it a trapper item, on that host, with this collector in its Allowed hosts?",
                    reply.total.unwrap_or(n.alerts.len() as u64),
                    self.spec.key,
                    hosts.join(", "),
                    reply.info
                ),
            });
        }
        if !homeless.is_empty() {
            return Err(no_host());
        }
        Ok(())
    }
}

impl Notifier for Zabbix {
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
    fn servers() {
        assert_eq!(parse_server("zbx"), Ok(("zbx".into(), 10051)));
        assert_eq!(parse_server("zbx:10052"), Ok(("zbx".into(), 10052)));
        assert_eq!(parse_server("[::1]:7"), Ok(("::1".into(), 7)));
        assert_eq!(parse_server("[::1]"), Ok(("::1".into(), 10051)));
        assert_eq!(parse_server("fe80::1"), Ok(("fe80::1".into(), 10051)));
        assert!(parse_server("zbx:0").is_err());
        assert!(parse_server("zbx:x").is_err());
        assert!(parse_server(" ").is_err());
    }

    #[test]
    fn replies() {
        let r = parse_reply(br#"{"response":"success","info":"processed: 1; failed: 2; total: 3; seconds spent: 0.000055"}"#);
        let r = r.expect("parses");
        assert!(r.success);
        assert_eq!(
            (r.processed, r.failed, r.total),
            (Some(1), Some(2), Some(3))
        );
        let r = parse_reply(br#"{"response":"success","info":"processed:5;failed:0;total:5"}"#)
            .expect("parses");
        assert_eq!(r.failed, Some(0));
        let r = parse_reply(br#"{"response":"failed","info":"cannot parse"}"#).expect("parses");
        assert!(!r.success);
        assert!(parse_reply(b"garbage").is_err());
        assert!(parse_reply(br#"{"info":"x"}"#).is_err());
    }

    #[test]
    fn header() {
        let f = frame(b"{}");
        assert_eq!(
            f,
            [
                b'Z', b'B', b'X', b'D', 1, 2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'
            ]
        );
    }
}
