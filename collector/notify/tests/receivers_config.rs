//! Receiver configuration: YAML in Alertmanager's shape, secrets from
//! files and the environment, validation with paths, and secrets that
//! never print.

mod receivers_common;

use lookout_notify::ReceiverConfig;
use lookout_notify::receivers::config::{ChatId, Language, Secret};
use lookout_notify::receivers::{BuildError, build};
use receivers_common::*;

fn parse(yaml: &str) -> ReceiverConfig {
    serde_yaml_ng::from_str(yaml).expect("valid YAML")
}

#[test]
fn every_kind_parses_with_defaults() {
    let cfg = parse(
        r#"
name: ops
webhook_configs: [{url: "http://am:9093/hook", max_alerts: 5, timeout: 3s}]
slack_configs: [{api_url: "https://hooks.slack.com/services/T/B/X", send_resolved: false}]
dingtalk_configs: [{webhook_url: "https://oapi.dingtalk.com/robot/send?access_token=t", secret: SECx, language: zh}]
feishu_configs: [{webhook_url: "https://open.feishu.cn/open-apis/bot/v2/hook/x", rate_limit: {per_minute: 100, burst: 5}}]
wecom_configs: [{key: k}]
telegram_configs: [{bot_token: "1:a", chat_id: -100123}]
teams_configs: [{webhook_url: "https://x.logic.azure.com/workflows/1"}]
zabbix_configs: [{server: zabbix, host: k8s, key: lookout.alert}]
"#,
    );
    assert_eq!(cfg.integration_count(), 8);
    assert_eq!(
        cfg.webhook_configs[0].timeout,
        std::time::Duration::from_secs(3)
    );
    assert!(!cfg.slack_configs[0].send_resolved);
    assert!(cfg.teams_configs[0].send_resolved);
    assert_eq!(cfg.dingtalk_configs[0].language, Language::Zh);
    assert_eq!(cfg.dingtalk_configs[0].secret, Some(Secret::new("SECx")));
    assert_eq!(cfg.telegram_configs[0].chat_id, ChatId::Id(-100123));
    assert_eq!(
        cfg.zabbix_configs[0].timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        cfg.zabbix_configs[0].give_up_after,
        std::time::Duration::from_secs(120)
    );
    assert!(
        cfg.validate("notify.receivers[0]").is_empty(),
        "{:?}",
        cfg.validate("notify.receivers[0]")
    );
    let ctx = context();
    assert_eq!(build(&cfg, &ctx).expect("builds").len(), 8);

    // Dumped back, the config carries no secret.
    let dumped = serde_yaml_ng::to_string(&cfg).expect("dump");
    assert!(
        !dumped.contains("SECx") && !dumped.contains("access_token=t") && !dumped.contains("1:a"),
        "{dumped}"
    );
    assert!(dumped.contains("<secret>"));
    assert!(!format!("{cfg:?}").contains("SECx"));
}

#[test]
fn unknown_keys_are_errors() {
    let err = serde_yaml_ng::from_str::<ReceiverConfig>(
        "name: x\nslack_configs: [{api_url: u, chanel: c}]\n",
    )
    .expect_err("misspelt key");
    assert!(err.to_string().contains("chanel"), "{err}");
}

#[test]
fn validate_reports_each_problem_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let yaml = format!(
        r#"
name: chat
dingtalk_configs:
  - webhook_url: "https://oapi.dingtalk.com/robot/send?access_token=t"
    secret_file: {missing}
  - webhook_url_env: LOOKOUT_TEST_UNSET_VARIABLE
webhook_configs:
  - url: "ftp://example/secret-token"
  - url: "http://x/"
    url_file: /etc/hostname
  - {{}}
telegram_configs: [{{bot_token: "1:a"}}]
zabbix_configs: [{{server: "zbx:99999", key: ""}}]
wecom_configs: [{{key: k, webhook_url: "https://x/"}}]
slack_configs: [{{api_url: "https://x/", timeout: 0s, rate_limit: {{per_minute: 5, burst: 0}}}}]
"#,
        missing = missing.display()
    );
    let problems: Vec<String> = parse(&yaml)
        .validate("notify.receivers[2]")
        .iter()
        .map(ToString::to_string)
        .collect();
    let p = "notify.receivers[2]";
    let expected = vec![
        format!("{p}.webhook_configs[0].url: the URL must start with http:// or https://"),
        format!("{p}.webhook_configs[1].url: set only one of url, url_file and url_env"),
        format!("{p}.webhook_configs[2].url: required: set url, url_file or url_env"),
        format!("{p}.slack_configs[0].timeout: must be positive"),
        format!("{p}.slack_configs[0].rate_limit.burst: must be at least 1"),
        format!(
            "{p}.dingtalk_configs[0].secret_file: cannot read {}: No such file or directory (os error 2)",
            missing.display()
        ),
        format!(
            "{p}.dingtalk_configs[1].webhook_url_env: environment variable LOOKOUT_TEST_UNSET_VARIABLE is not set"
        ),
        format!("{p}.wecom_configs[0]: set either webhook_url (with its key) or key, not both"),
        format!("{p}.telegram_configs[0].chat_id: required"),
        format!("{p}.zabbix_configs[0].server: bad port \"99999\""),
        format!("{p}.zabbix_configs[0].key: required: the key of the trapper item"),
        format!(
            "{p}.zabbix_configs[0]: set host (the Zabbix host name), host_label (take it from an alert label), or both"
        ),
    ];
    assert_eq!(problems, expected);
    // No message repeats a URL (they carry tokens).
    assert!(problems.iter().all(|m| !m.contains("secret-token")));

    // build refuses the same config, listing everything.
    let err = match build(&parse(&yaml), &context()) {
        Err(err) => err,
        Ok(_) => panic!("must not build"),
    };
    let BuildError::Config { receiver, problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(receiver, "chat");
    assert_eq!(problems.len(), expected.len());
    assert!(
        err.to_string()
            .starts_with("receiver \"chat\": webhook_configs[0].url: the URL must start"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_from_files_and_environment() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = dir.path().join("url");
    std::fs::write(
        &url_file,
        format!("  {}\n", server.url("/robot/send?access_token=from-file")),
    )
    .expect("write");
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var("LOOKOUT_TEST_DINGTALK_SECRET", "SECfromenv") };
    let yaml = format!(
        "name: ops\ndingtalk_configs:\n  - webhook_url_file: {}\n    secret_env: LOOKOUT_TEST_DINGTALK_SECRET\n",
        url_file.display()
    );
    let ctx = context();
    one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect("delivered");
    let req = &server.requests()[0];
    assert!(
        req.uri
            .starts_with("/robot/send?access_token=from-file&timestamp="),
        "{}",
        req.uri
    );
    assert!(req.raw_query("sign").is_some());
}

#[test]
fn names_number_repeated_kinds() {
    let cfg = parse(
        "name: ops\nwebhook_configs: [{url: 'http://a/'}, {url: 'http://b/'}]\nteams_configs: [{webhook_url: 'http://c/'}]\n",
    );
    let names: Vec<String> = build(&cfg, &context())
        .expect("builds")
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    assert_eq!(names, ["webhook/ops", "webhook[1]/ops", "teams/ops"]);
    assert!(
        build(&parse("name: blackhole\n"), &context())
            .expect("builds")
            .is_empty()
    );
}
