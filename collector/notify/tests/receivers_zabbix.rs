//! The Zabbix sender protocol checked against the real `zabbix_sender`
//! (Debian package zabbix-agent): both talk to a local listener that
//! answers as a Zabbix server does, and Lookout's bytes must equal
//! zabbix_sender's for the same values.
//!
//! What zabbix_sender 6.0 sends (found by these captures):
//! - `-s -k -o` (no `-T`): items `{"host","key","value"}` only, no clock
//!   and no top-level clock/ns;
//! - `-T -i file`: items gain `"clock"` (seconds, a number), and the
//!   request gains top-level `"clock"` and `"ns"`: the sender's time when
//!   it sent;
//! - `-T -N -i file`: items carry `"clock"` and `"ns"`: Lookout's form.
//!
//! Header `ZBXD` 0x01, u32 LE length, u32 LE 0; the value is always a
//! JSON string; non-ASCII goes out as raw UTF-8 and `/` unescaped, as
//! serde_json writes them.

mod receivers_common;

use std::process::Stdio;
use std::time::Duration;

use lookout_notify::receivers::NotifyError;
use receivers_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ZABBIX_SENDER: &str = "/usr/bin/zabbix_sender";

/// One captured request: the 13-byte header and the JSON.
#[derive(Debug)]
struct Captured {
    header: [u8; 13],
    json: String,
}

/// Accepts `n` connections, records each request and answers `reply`.
async fn zabbix_server(n: usize, reply: &str) -> (u16, tokio::task::JoinHandle<Vec<Captured>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let reply = reply.as_bytes().to_vec();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut header = [0u8; 13];
            sock.read_exact(&mut header).await.expect("header");
            let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
            let mut json = vec![0u8; len];
            sock.read_exact(&mut json).await.expect("body");
            let mut answer = b"ZBXD\x01".to_vec();
            answer.extend_from_slice(&(reply.len() as u32).to_le_bytes());
            answer.extend_from_slice(&0u32.to_le_bytes());
            answer.extend_from_slice(&reply);
            sock.write_all(&answer).await.expect("answer");
            let _ = sock.shutdown().await;
            out.push(Captured {
                header,
                json: String::from_utf8(json).expect("utf-8"),
            });
        }
        out
    });
    (port, task)
}

const SUCCESS_2: &str =
    r#"{"response":"success","info":"processed: 2; failed: 0; total: 2; seconds spent: 0.000055"}"#;

async fn run_sender(args: &[&str]) {
    let status = tokio::process::Command::new(ZABBIX_SENDER)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("zabbix_sender runs");
    assert!(status.success(), "zabbix_sender {args:?}: {status}");
}

/// zabbix_sender's input-file quoting: in double quotes, `"` and `\`
/// escaped with a backslash.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Replaces the request's top-level `"clock":N,"ns":M` (the time it was
/// sent, different for each sender) with a placeholder.
fn without_send_time(json: &str) -> String {
    let re = regex::Regex::new(r#","clock":\d+,"ns":\d+\}$"#).expect("regex");
    re.replace(json, r#","clock":T,"ns":T}"#).into_owned()
}

fn zabbix_yaml(port: u16) -> String {
    format!(
        "name: ops\nzabbix_configs:\n  - server: 127.0.0.1:{port}\n    host_label: node\n    host: kubernetes\n    key: lookout.alert\n"
    )
}

#[tokio::test]
async fn request_matches_zabbix_sender() {
    if !std::path::Path::new(ZABBIX_SENDER).exists()
        && may_skip("zabbix_sender (apt-get install zabbix-agent)")
    {
        return;
    }
    // Lookout first, with a clock of 1700000000.123456789 s.
    let (port, server) = zabbix_server(1, SUCCESS_2).await;
    let ctx = context_at(std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789));
    let mut n = sample();
    n.alerts.truncate(2);
    n.alerts[1].annotations.insert(
        "summary".into(),
        "Pod \"web-2\" 重启中 / restarting\tnow".into(),
    );
    one_notifier(&zabbix_yaml(port), &ctx)
        .notify(&n)
        .await
        .expect("delivered");
    let lookout = server.await.expect("server").remove(0);

    let request: serde_json::Value = serde_json::from_str(&lookout.json).expect("json");
    let data = request["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "one value per alert");
    let value0 = data[0]["value"].as_str().expect("value").to_string();
    let value1 = data[1]["value"].as_str().expect("value").to_string();
    assert_eq!(
        value0,
        "FIRING [4] KubePodCrashLooping {namespace=prod, node=n1, pod=web-1, container=app, job=kube-state-metrics}: \
         Pod prod/web-1 is crash looping."
    );
    assert!(
        value1.ends_with(": Pod \"web-2\" 重启中 / restarting\tnow"),
        "{value1}"
    );
    assert_eq!(
        (data[0]["host"].as_str(), data[1]["host"].as_str()),
        (Some("n1"), Some("n2"))
    );
    assert_eq!(
        (data[0]["clock"].as_u64(), data[0]["ns"].as_u64()),
        (Some(1_700_000_000), Some(123_456_789))
    );
    assert_eq!(
        (data[1]["clock"].as_u64(), data[1]["ns"].as_u64()),
        (Some(1_700_000_000), Some(123_456_790))
    );
    assert_eq!(
        (request["clock"].as_u64(), request["ns"].as_u64()),
        (Some(1_700_000_000), Some(123_456_789))
    );

    // The same values through zabbix_sender -T -N -i file.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.txt");
    let lines = format!(
        "n1 lookout.alert 1700000000 123456789 {}\nn2 lookout.alert 1700000000 123456790 {}\n",
        quote(&value0),
        quote(&value1)
    );
    std::fs::write(&file, lines).expect("write");
    let (port, server) = zabbix_server(1, SUCCESS_2).await;
    let file_arg = file.display().to_string();
    run_sender(&[
        "-z",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-T",
        "-N",
        "-i",
        &file_arg,
    ])
    .await;
    let sender = server.await.expect("server").remove(0);

    // Header: magic, flags, length, reserved.
    assert_eq!(&sender.header[..5], b"ZBXD\x01");
    assert_eq!(&lookout.header[..5], &sender.header[..5]);
    assert_eq!(&lookout.header[9..], &sender.header[9..], "reserved bytes");
    for c in [&lookout, &sender] {
        let len = u32::from_le_bytes([c.header[5], c.header[6], c.header[7], c.header[8]]) as usize;
        assert_eq!(len, c.json.len());
    }
    // Byte for byte, but for the moment each sent it.
    assert_eq!(
        without_send_time(&lookout.json),
        without_send_time(&sender.json)
    );
    assert!(
        without_send_time(&sender.json).ends_with(r#","clock":T,"ns":T}"#),
        "{}",
        sender.json
    );
    let sender_value: serde_json::Value = serde_json::from_str(&sender.json).expect("json");
    assert!(sender_value["clock"].is_u64() && sender_value["ns"].is_u64());
}

#[tokio::test]
async fn zabbix_sender_forms_without_ns() {
    if !std::path::Path::new(ZABBIX_SENDER).exists()
        && may_skip("zabbix_sender (apt-get install zabbix-agent)")
    {
        return;
    }
    // -o: no clock anywhere.
    let (port, server) = zabbix_server(1, SUCCESS_2).await;
    run_sender(&[
        "-z",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-s",
        "n1",
        "-k",
        "lookout.alert",
        "-o",
        "v 1",
    ])
    .await;
    let plain = server.await.expect("server").remove(0);
    assert_eq!(
        plain.json,
        r#"{"request":"sender data","data":[{"host":"n1","key":"lookout.alert","value":"v 1"}]}"#
    );

    // -T -i: items with clock only; top-level clock and ns.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.txt");
    std::fs::write(&file, "n1 lookout.alert 1700000000 \"v 1\"\n").expect("write");
    let (port, server) = zabbix_server(1, SUCCESS_2).await;
    let file_arg = file.display().to_string();
    run_sender(&[
        "-z",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-T",
        "-i",
        &file_arg,
    ])
    .await;
    let timed = server.await.expect("server").remove(0);
    assert_eq!(
        without_send_time(&timed.json),
        r#"{"request":"sender data","data":[{"host":"n1","key":"lookout.alert","value":"v 1","clock":1700000000}],"clock":T,"ns":T}"#
    );
}

#[tokio::test]
async fn failed_values_are_a_final_error() {
    let reply = r#"{"response":"success","info":"processed: 1; failed: 1; total: 2; seconds spent: 0.000041"}"#;
    let (port, server) = zabbix_server(1, reply).await;
    let ctx = context();
    let mut n = sample();
    n.alerts.truncate(2);
    let err = one_notifier(&zabbix_yaml(port), &ctx)
        .notify(&n)
        .await
        .expect_err("rejected");
    let NotifyError::Permanent { message } = &err else {
        panic!("permanent expected: {err}")
    };
    assert!(message.contains("rejected 1 of 2 values"), "{message}");
    assert!(message.contains("\"lookout.alert\""), "{message}");
    assert!(message.contains("n1, n2"), "{message}");
    assert_eq!(server.await.expect("server").len(), 1);
    let stats = ctx.stats().get("ops", "zabbix").expect("stats");
    assert_eq!((stats.failed, stats.retried, stats.sent), (1, 0, 0));
}

#[tokio::test]
async fn host_falls_back_and_resolved_values() {
    let (port, server) = zabbix_server(1, SUCCESS_2).await;
    let ctx = context();
    let mut n = all_resolved(&sample());
    n.alerts.truncate(2);
    n.alerts[1].labels.remove("node");
    one_notifier(&zabbix_yaml(port), &ctx)
        .notify(&n)
        .await
        .expect("delivered");
    let got = server.await.expect("server").remove(0);
    let v: serde_json::Value = serde_json::from_str(&got.json).expect("json");
    assert_eq!(v["data"][0]["host"], "n1");
    assert_eq!(v["data"][1]["host"], "kubernetes");
    assert!(
        v["data"][0]["value"]
            .as_str()
            .unwrap_or("")
            .starts_with("RESOLVED [4] KubePodCrashLooping {")
    );
}

#[tokio::test]
async fn refused_request_and_unreachable_server() {
    let (port, server) =
        zabbix_server(1, r#"{"response":"failed","info":"cannot parse data"}"#).await;
    let ctx = context();
    let err = one_notifier(&zabbix_yaml(port), &ctx)
        .notify(&sample())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, NotifyError::Permanent { message } if message.contains("cannot parse data")),
        "{err}"
    );
    server.await.expect("server");

    let yaml = "name: ops\nzabbix_configs:\n  - server: 127.0.0.1:1\n    host: h\n    key: k\n    give_up_after: 100ms\n";
    let err = one_notifier(yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("unreachable");
    assert!(
        matches!(&err, NotifyError::Retryable { message, .. } if message.contains("127.0.0.1:1")),
        "{err}"
    );
    assert_eq!(
        ctx.stats()
            .get("ops", "zabbix")
            .map(|s| (s.failed, s.dropped)),
        Some((1, 1))
    );
}
