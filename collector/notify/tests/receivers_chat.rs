//! Each chat kind against a local server that checks the request as the
//! vendor documents it: DingTalk's signed URL and Feishu's signed body
//! (recomputed here, and compared with vectors computed by Python's hmac
//! module), WeCom's 4096-byte limit, Telegram's HTML, Slack's sections,
//! Teams' adaptive card, and the vendors' error codes.

mod receivers_common;

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use lookout_notify::receivers::NotifyError;
use lookout_notify::{Alert, Notification};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use receivers_common::*;
use serde_json::json;
use sha2::Sha256;

const DINGTALK_SECRET: &str =
    "SECf3c0e2a1b9d84e7c6a5b4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2";
const FEISHU_SECRET: &str = "lookout-feishu-secret";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// DingTalk's documented recipe, written out independently of the crate:
/// HMAC-SHA256(key = secret, message = timestamp "\n" secret), base64,
/// then URL-encoded like Python's `quote_plus`.
fn dingtalk_expected_sign(secret: &str, ts: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{ts}\n{secret}").as_bytes());
    utf8_percent_encode(&b64(&mac.finalize().into_bytes()), NON_ALPHANUMERIC).to_string()
}

/// Feishu's recipe: the key is timestamp "\n" secret, the message empty.
fn feishu_expected_sign(secret: &str, ts: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{ts}\n{secret}").as_bytes()).expect("key");
    b64(&mac.finalize().into_bytes())
}

#[tokio::test]
async fn dingtalk_signed_markdown() {
    // python3 -c 'import hmac,hashlib,base64,urllib.parse; s="SECf3c0…f3a2"; t="1700000000000";
    //   print(urllib.parse.quote_plus(base64.b64encode(hmac.new(s.encode(), (t+"\n"+s).encode(), hashlib.sha256).digest())))'
    let known = "bsz4cpqKJl0ZVBKGZbYXRpRElFhDXuKO%2BjBjZQEQNCg%3D";
    assert_eq!(
        dingtalk_expected_sign(DINGTALK_SECRET, "1700000000000"),
        known
    );

    // The server plays DingTalk: a bad signature or token gets 310000.
    let server = TestServer::start(|r| {
        let ts = r.raw_query("timestamp").unwrap_or_default();
        let ok = r.path == "/robot/send"
            && r.raw_query("access_token").as_deref() == Some("tok123")
            && r.raw_query("sign") == Some(dingtalk_expected_sign(DINGTALK_SECRET, &ts));
        if ok {
            Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)
        } else {
            Reply::new(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#)
        }
    })
    .await;
    let ctx = context_at(at_ms(1_700_000_000_000));
    let yaml = format!(
        "name: ops\ndingtalk_configs:\n  - webhook_url: {}\n    secret: {DINGTALK_SECRET}\n    at_mobiles: ['13800000000']\n",
        server.url("/robot/send?access_token=tok123")
    );
    let notifier = one_notifier(&yaml, &ctx);
    assert_eq!(notifier.name(), "dingtalk/ops");
    notifier.notify(&sample()).await.expect("delivered");

    let req = &server.requests()[0];
    assert_eq!(req.raw_query("timestamp").as_deref(), Some("1700000000000"));
    assert_eq!(req.raw_query("sign").as_deref(), Some(known));
    assert_eq!(
        req.uri,
        format!("/robot/send?access_token=tok123&timestamp=1700000000000&sign={known}")
    );
    let body = req.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(
        body["markdown"]["title"],
        "[FIRING:2] KubePodCrashLooping (prod)"
    );
    let text = body["markdown"]["text"].as_str().expect("text");
    assert!(
        text.starts_with("#### [FIRING:2] KubePodCrashLooping (prod)\n\n**Firing · 2**\n\n"),
        "{text}"
    );
    assert!(
        text.contains("**[critical] KubePodCrashLooping**\n\nPod prod/web-1 is crash looping."),
        "{text}"
    );
    assert!(text.ends_with("\n\n@13800000000"), "{text}");
    assert_eq!(
        body["at"],
        json!({"atMobiles": ["13800000000"], "isAtAll": false})
    );
    assert_eq!(ctx.stats().get("ops", "dingtalk").map(|s| s.sent), Some(1));
}

#[tokio::test]
async fn dingtalk_error_codes() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\ndingtalk_configs:\n  - webhook_url: {}\n    rate_limit: {{per_minute: 0}}\n",
        server.url("/robot/send?access_token=t")
    );
    let notifier = one_notifier(&yaml, &ctx);
    // Keywords not matched (310000): final.
    server.script([Reply::new(
        200,
        r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
    )]);
    let err = notifier.notify(&sample()).await.expect_err("refused");
    assert!(
        matches!(&err, NotifyError::Permanent { message } if message.contains("310000")),
        "{err}"
    );
    // Too fast (130101): retried after the minute DingTalk asks for, so
    // with the 2-minute budget it is tried again; here the budget is
    // shorter and it gives up at once.
    let yaml_short = yaml.replace("rate_limit", "give_up_after: 5s\n    rate_limit");
    let short = one_notifier(&yaml_short, &ctx);
    server.script([Reply::new(
        200,
        r#"{"errcode":130101,"errmsg":"send too fast"}"#,
    )]);
    let err = short.notify(&sample()).await.expect_err("gave up");
    assert!(
        matches!(&err, NotifyError::Retryable { retry_after: Some(d), .. } if *d == Duration::from_secs(60)),
        "{err}"
    );
    let stats = ctx.stats().get("ops", "dingtalk").expect("stats");
    assert_eq!((stats.failed, stats.dropped, stats.retried), (1, 1, 0));
    assert_eq!(server.requests().len(), 2);
    // No URL parameters are added without a secret.
    assert_eq!(server.requests()[0].uri, "/robot/send?access_token=t");
}

#[tokio::test]
async fn feishu_signed_card() {
    // python3 -c 'import hmac,hashlib,base64; t="1599360473"; s="lookout-feishu-secret";
    //   print(base64.b64encode(hmac.new((t+"\n"+s).encode(), b"", hashlib.sha256).digest()).decode())'
    let known = "7Be/L4XjwyflysdLLnTZKGRnwCbqbd9paM29lZVMvNg=";
    assert_eq!(feishu_expected_sign(FEISHU_SECRET, "1599360473"), known);

    let server = TestServer::start(|r| {
        let body = r.json();
        let ts = body["timestamp"].as_str().unwrap_or_default().to_string();
        if body["sign"].as_str() == Some(feishu_expected_sign(FEISHU_SECRET, &ts).as_str()) {
            Reply::new(200, r#"{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}"#)
        } else {
            Reply::new(200, r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#)
        }
    })
    .await;
    let ctx = context_at(at_ms(1_599_360_473_000));
    let yaml = format!(
        "name: ops\nfeishu_configs:\n  - webhook_url: {}\n    secret: {FEISHU_SECRET}\n    language: zh\n",
        server.url("/open-apis/bot/v2/hook/abc-123")
    );
    one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect("delivered");
    let body = server.requests()[0].json();
    assert_eq!(body["timestamp"], "1599360473");
    assert_eq!(body["sign"], known);
    assert_eq!(body["msg_type"], "interactive");
    assert_eq!(
        body["card"]["header"],
        json!({"template": "red", "title": {"tag": "plain_text", "content": "[告警:2] KubePodCrashLooping (prod)"}})
    );
    let content = body["card"]["elements"][0]["content"]
        .as_str()
        .expect("markdown");
    assert_eq!(body["card"]["elements"][0]["tag"], "markdown");
    assert!(
        content.starts_with("**告警中 · 2**\n**[严重] KubePodCrashLooping**\n"),
        "{content}"
    );
    assert!(content.contains("\n\n**已恢复 · 1**\n"), "{content}");
    assert!(
        content.contains("开始时间：2023-11-14 21:13:20 UTC，恢复时间：2023-11-14 22:12:20 UTC"),
        "{content}"
    );

    // Resolved: green header.
    one_notifier(&yaml, &ctx)
        .notify(&all_resolved(&sample()))
        .await
        .expect("delivered");
    let body = server.requests()[1].json();
    assert_eq!(body["card"]["header"]["template"], "green");
    assert!(
        body["card"]["header"]["title"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("[已恢复] ")
    );
}

#[tokio::test]
async fn feishu_bad_signature_is_final() {
    let server = TestServer::start(|_| {
        Reply::new(200, r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#)
    })
    .await;
    // A clock two hours off: Feishu would refuse the timestamp.
    let ctx = context_at(at_ms(1_599_360_473_000 - 7_200_000));
    let yaml = format!(
        "name: ops\nfeishu_configs:\n  - webhook_url: {}\n    secret: {FEISHU_SECRET}\n",
        server.url("/open-apis/bot/v2/hook/x")
    );
    let err = one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, NotifyError::Permanent { message } if message.contains("19021")),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        ctx.stats()
            .get("ops", "feishu")
            .map(|s| (s.failed, s.retried)),
        Some((1, 0))
    );
}

fn wecom_yaml(url: &str) -> String {
    format!(
        "name: ops\nwecom_configs:\n  - webhook_url: {url}\n    language: zh\n    rate_limit: {{per_minute: 0}}\n"
    )
}

fn chinese_alert(i: usize, description: &str) -> Alert {
    Alert {
        labels: labels(&[
            ("alertname", "节点磁盘将满"),
            ("instance", &format!("节点-{i:03}")),
            ("severity", "warning"),
        ]),
        annotations: labels(&[
            (
                "summary",
                &format!("节点-{i:03} 的根分区使用率超过 90%，预计四小时内写满。"),
            ),
            ("description", description),
        ]),
        starts_at_ms: T0,
        ends_at_ms: None,
        generator_url: String::new(),
    }
}

fn notification_of(alerts: Vec<Alert>) -> Notification {
    Notification {
        receiver: "ops".into(),
        group_key: "{}:{}".into(),
        group_labels: labels(&[("alertname", "节点磁盘将满")]),
        alerts,
        now_ms: T0 + 1000,
        external_url: String::new(),
        reason: String::new(),
    }
}

#[tokio::test]
async fn wecom_content_stays_within_4096_bytes() {
    let server = TestServer::start(|r| {
        let content = r.json()["markdown"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if content.len() > 4096 {
            Reply::new(
                200,
                r#"{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}"#,
            )
        } else {
            Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)
        }
    })
    .await;
    let ctx = context();
    let notifier = one_notifier(
        &wecom_yaml(&server.url("/cgi-bin/webhook/send?key=k-1")),
        &ctx,
    );

    // Many alerts: as many as fit, then a count of the rest.
    let many = notification_of(
        (0..300)
            .map(|i| chinese_alert(i, "根分区 / 的可用空间持续下降。"))
            .collect(),
    );
    notifier.notify(&many).await.expect("delivered");
    // One alert longer than the limit on its own: cut, with the marker.
    let huge = notification_of(vec![chinese_alert(1, &"磁盘空间不足，".repeat(2000))]);
    notifier.notify(&huge).await.expect("delivered");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.json()["msgtype"], "markdown");
        // The body is valid UTF-8 JSON; a cut inside a character would not be.
        let content = r.json()["markdown"]["content"]
            .as_str()
            .expect("content")
            .to_string();
        assert!(content.len() <= 4096, "{} bytes", content.len());
        assert!(!content.contains('\u{fffd}'));
        assert!(
            content.starts_with("<font color=\"warning\">**[告警:300] 节点磁盘将满**</font>\n")
                || content
                    .starts_with("<font color=\"warning\">**[告警:1] 节点磁盘将满**</font>\n"),
            "{content}"
        );
    }
    let first = reqs[0].json()["markdown"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains("**[警告] 节点磁盘将满**\n节点-000 的根分区使用率超过 90%"),
        "{first}"
    );
    assert!(first.trim_end().ends_with("条未显示"), "{first}");
    assert!(
        first.len() > 3500,
        "fills the message: {} bytes",
        first.len()
    );
    let second = reqs[1].json()["markdown"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(second.ends_with("\n……(内容过长，已截断)"), "{second}");
    assert!(second.len() > 4000, "{} bytes", second.len());
}

#[tokio::test]
async fn wecom_key_and_rate_limit_code() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    server.script([Reply::new(
        200,
        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
    )]);
    let ctx = context();
    let yaml = format!(
        "name: ops\nwecom_configs:\n  - key: 'a b/c'\n    api_url: {}\n    give_up_after: 1s\n",
        server.url("/cgi-bin/webhook/send")
    );
    let err = one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("rate limited");
    assert!(
        matches!(&err, NotifyError::Retryable { message, .. } if message.contains("45009")),
        "{err}"
    );
    assert_eq!(
        server.requests()[0].uri,
        "/cgi-bin/webhook/send?key=a%20b%2Fc"
    );
    assert_eq!(ctx.stats().get("ops", "wecom").map(|s| s.dropped), Some(1));
}

#[tokio::test]
async fn wecom_english_single_alert_reads_well() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\nwecom_configs:\n  - webhook_url: {}\n",
        server.url("/send?key=k")
    );
    let mut n = sample();
    n.alerts.truncate(1);
    one_notifier(&yaml, &ctx)
        .notify(&n)
        .await
        .expect("delivered");
    let content = server.requests()[0].json()["markdown"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        content,
        "<font color=\"warning\">**[FIRING:1] KubePodCrashLooping (prod)**</font>\n\
         **[critical] KubePodCrashLooping**\n\
         Pod prod/web-1 is crash looping.\n\
         Pod prod/web-1 (app) restarted 5 times in 10 minutes.\n\
         Labels: namespace=prod, node=n1, pod=web-1, container=app, job=kube-state-metrics\n\
         Started: 2023-11-14 22:13:20 UTC\n\
         [Runbook](https://runbooks.example/KubePodCrashLooping) | [Source](http://lookout:9190/graph?g0.expr=x)"
    );
}

#[tokio::test]
async fn telegram_html_message() {
    let server =
        TestServer::start(|_| Reply::new(200, r#"{"ok":true,"result":{"message_id":1}}"#)).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\ntelegram_configs:\n  - api_url: {}\n    bot_token: '123456:ABC-def'\n    chat_id: -1001234567890\n    message_thread_id: 7\n",
        server.url("")
    );
    let mut n = sample();
    n.alerts[0].labels.insert("pod".into(), "<script>&x".into());
    n.alerts[0]
        .annotations
        .insert("summary".into(), "a < b & c > d".into());
    one_notifier(&yaml, &ctx)
        .notify(&n)
        .await
        .expect("delivered");
    let req = &server.requests()[0];
    assert_eq!(req.path, "/bot123456:ABC-def/sendMessage");
    let body = req.json();
    assert_eq!(body["chat_id"], -1001234567890i64);
    assert_eq!(body["message_thread_id"], 7);
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with("<b>[FIRING:2] KubePodCrashLooping (prod)</b>\n\n<b>Firing · 2</b>\n"),
        "{text}"
    );
    assert!(text.contains("pod=&lt;script&gt;&amp;x"), "{text}");
    assert!(text.contains("\na &lt; b &amp; c &gt; d\n"), "{text}");
    assert!(
        text.contains("<a href=\"https://runbooks.example/KubePodCrashLooping\">Runbook</a>"),
        "{text}"
    );
    assert!(!text.contains("<script>"));
}

#[tokio::test]
async fn telegram_long_message_and_retry_after() {
    let server = TestServer::start(|_| Reply::new(200, r#"{"ok":true}"#)).await;
    server.script([Reply::new(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#,
    )]);
    let ctx = context();
    let yaml = format!(
        "name: ops\ntelegram_configs:\n  - api_url: {}\n    bot_token_env: LOOKOUT_TEST_TELEGRAM_TOKEN\n    chat_id: '@alerts'\n",
        server.url("/tg/")
    );
    // SAFETY: this test binary sets no other variable and reads it only here.
    unsafe { std::env::set_var("LOOKOUT_TEST_TELEGRAM_TOKEN", "42:XYZ\n") };
    let notifier = one_notifier(&yaml, &ctx);
    let many = notification_of(
        (0..200)
            .map(|i| chinese_alert(i, "<b>not a tag</b>"))
            .collect(),
    );
    notifier
        .notify(&many)
        .await
        .expect("delivered after the wait");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].path, "/tg/bot42:XYZ/sendMessage");
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(990),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    let body = reqs[1].json();
    assert_eq!(body["chat_id"], "@alerts");
    let text = body["text"].as_str().expect("text");
    assert!(text.chars().count() <= 4096, "{}", text.chars().count());
    assert!(text.contains("&lt;b&gt;not a tag&lt;/b&gt;"));
    assert!(text.ends_with("more"), "{text}");
    let stats = ctx.stats().get("ops", "telegram").expect("stats");
    assert_eq!((stats.sent, stats.retried), (1, 1));
}

#[tokio::test]
async fn slack_sections_and_rate_limit() {
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\nslack_configs:\n  - api_url_file: {}\n    channel: '#ops'\n",
        write_temp(&server.url("/services/T0/B0/XXXX"))
    );
    let notifier = one_notifier(&yaml, &ctx);
    let many = notification_of((0..60).map(|i| chinese_alert(i, "x")).collect());
    notifier.notify(&many).await.expect("delivered");
    // Slack's one message a second per webhook: the second waits.
    notifier.notify(&sample()).await.expect("delivered");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/services/T0/B0/XXXX");
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(900));
    let stats = ctx.stats().get("ops", "slack").expect("stats");
    assert_eq!((stats.sent, stats.rate_limited_waits), (2, 1));

    let body = reqs[0].json();
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["text"], "[FIRING:60] 节点磁盘将满");
    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(
        blocks.len() >= 3,
        "the body needs several sections: {}",
        blocks.len()
    );
    assert_eq!(
        blocks[0],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "*[FIRING:60] 节点磁盘将满*"}})
    );
    for b in blocks {
        assert_eq!(b["type"], "section");
        assert_eq!(b["text"]["type"], "mrkdwn");
        assert!(b["text"]["text"].as_str().map_or(0, |t| t.chars().count()) <= 3000);
    }
    let second = reqs[1].json();
    let text = second["blocks"][1]["text"]["text"].as_str().expect("text");
    assert!(
        text.contains("<https://runbooks.example/KubePodCrashLooping|Runbook>"),
        "{text}"
    );
}

#[tokio::test]
async fn slack_web_api_refusal_is_final() {
    let server =
        TestServer::start(|_| Reply::new(200, r#"{"ok":false,"error":"invalid_blocks"}"#)).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\nslack_configs:\n  - api_url: {}\n",
        server.url("/api/chat.postMessage")
    );
    let err = one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("invalid_blocks"), "{err}");
}

#[tokio::test]
async fn teams_adaptive_card() {
    let server = TestServer::start(|_| Reply::new(202, "")).await;
    let ctx = context();
    let yaml = format!(
        "name: ops\nteams_configs:\n  - webhook_url: {}\n",
        server.url("/workflows/abc/triggers/manual/paths/invoke?sig=s")
    );
    let notifier = one_notifier(&yaml, &ctx);
    notifier.notify(&sample()).await.expect("delivered");
    notifier
        .notify(&all_resolved(&sample()))
        .await
        .expect("delivered");
    let reqs = server.requests();
    for (req, title, colour) in [
        (
            &reqs[0],
            "[FIRING:2] KubePodCrashLooping (prod)",
            "Attention",
        ),
        (&reqs[1], "[RESOLVED] KubePodCrashLooping (prod)", "Good"),
    ] {
        let got = req.json();
        let body_text = got["attachments"][0]["content"]["body"][1]["text"].clone();
        assert!(
            body_text
                .as_str()
                .unwrap_or("")
                .contains("**[critical] KubePodCrashLooping**\n\nPod prod/web-1")
        );
        let expected = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                         "wrap": true, "style": "heading", "color": colour},
                        {"type": "TextBlock", "text": body_text, "wrap": true}
                    ],
                    "msteams": {"width": "full"}
                }
            }]
        });
        assert_eq!(got, expected);
    }
}

fn write_temp(content: &str) -> String {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{content}\n")).expect("write");
    let (_, path) = file.keep().expect("keep");
    path.display().to_string()
}
