//! Custom message templates go through lookout-template (Go's
//! text/template) over Alertmanager's data model.

mod receivers_common;

use lookout_notify::ReceiverConfig;
use receivers_common::*;

#[tokio::test]
async fn custom_title_and_text() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let ctx = context();
    let yaml = format!(
        r#"name: ops
dingtalk_configs:
  - webhook_url: {}
    title: '{{{{ .Status }}}}: {{{{ .CommonLabels.alertname }}}}'
    text: |-
      {{{{ range .Alerts.Firing }}}}* {{{{ .Labels.pod }}}} since {{{{ .StartsAt | date "2006-01-02 15:04:05" }}}}
      {{{{ end }}}}{{{{ range .Alerts.Resolved }}}}{{{{ .EndsAt | date "15:04 MST" }}}} {{{{ end }}}}{{{{ len .Alerts.Resolved }}}} resolved; receiver {{{{ .Receiver }}}}
"#,
        server.url("/robot/send?access_token=t")
    );
    one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect("delivered");
    let body = server.requests()[0].json();
    assert_eq!(body["markdown"]["title"], "firing: KubePodCrashLooping");
    assert_eq!(
        body["markdown"]["text"],
        "* web-1 since 2023-11-14 22:13:20\n* web-2 since 2023-11-14 22:13:20\n22:12 UTC 1 resolved; receiver ops"
    );
}

#[tokio::test]
async fn zabbix_value_template_per_alert() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut header = [0u8; 13];
        sock.read_exact(&mut header).await.expect("header");
        let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
        let mut json = vec![0u8; len];
        sock.read_exact(&mut json).await.expect("body");
        let reply = br#"{"response":"success","info":"processed: 3; failed: 0; total: 3"}"#;
        let mut answer = b"ZBXD\x01".to_vec();
        answer.extend_from_slice(&(reply.len() as u32).to_le_bytes());
        answer.extend_from_slice(&[0; 4]);
        answer.extend_from_slice(reply);
        sock.write_all(&answer).await.expect("answer");
        serde_json::from_slice::<serde_json::Value>(&json).expect("json")
    });
    let yaml = format!(
        "name: ops\nzabbix_configs:\n  - server: 127.0.0.1:{port}\n    host: k8s\n    key: k\n    value: '{{{{ .Status }}}} {{{{ .Labels.pod }}}} {{{{ .Receiver }}}} {{{{ .EndsAt | date \"2006\" }}}}'\n"
    );
    one_notifier(&yaml, &context())
        .notify(&sample())
        .await
        .expect("delivered");
    let request = task.await.expect("server");
    let values: Vec<&str> = request["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|d| d["value"].as_str())
        .collect();
    assert_eq!(
        values,
        [
            "firing web-1 ops 0001",
            "firing web-2 ops 0001",
            "resolved web-0 ops 2023"
        ]
    );
}

#[test]
fn template_syntax_errors_are_reported_with_their_path() {
    let cfg: ReceiverConfig = serde_yaml_ng::from_str(
        "name: ops\nslack_configs: [{api_url: 'https://x/', text: '{{ if }}'}]\n",
    )
    .expect("yaml");
    let problems = cfg.validate("notify.receivers[0]");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].path == "notify.receivers[0].slack_configs[0].text",
        "{problems:?}"
    );
}

#[test]
fn a_bad_url_does_not_hide_a_bad_template() {
    for kind in ["dingtalk", "feishu", "teams", "wecom"] {
        let cfg: ReceiverConfig = serde_yaml_ng::from_str(&format!(
            "name: ops\n{kind}_configs: [{{webhook_url: 'not a url', title: '{{{{ end }}}}'}}]\n"
        ))
        .expect("yaml");
        let mut paths: Vec<String> = cfg
            .validate("notify.receivers[0]")
            .into_iter()
            .map(|p| p.path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                format!("notify.receivers[0].{kind}_configs[0].title"),
                format!("notify.receivers[0].{kind}_configs[0].webhook_url"),
            ],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn failing_template_falls_back_to_the_built_in_text() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\nwecom_configs:\n  - webhook_url: {}\n    text: '{{{{ index .Alerts 99 }}}}'\n",
        server.url("/send?key=k")
    );
    one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect("delivered");
    let body = server.requests()[0].json();
    let content = body["markdown"]["content"].as_str().unwrap_or_default();
    assert!(
        content.contains("**[critical] KubePodCrashLooping**"),
        "{content}"
    );
}
